"""The HTTP event collector (`seglake serve --collect`): posted events are
read back through ADBC and compared with rows computed in Python from the
posted JSON; re-sent batches are not duplicated; bad batches are refused
whole; auth; concurrent posts; graceful shutdown commits what it received.

Every test runs on a local warehouse and on an S3 warehouse (the moto
server), through the ``storage`` fixture."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import collector_client as cc
import seglake_harness as h

COLLECT = ("--collect", "127.0.0.1:0", "--collect-flush-ms", "30", "--collect-max-body-bytes", "1000000")


@pytest.fixture(scope="module")
def collector(launch, storage):
    """A server with the collector on a fresh warehouse (no tables: the
    collector creates public.events)."""
    dep = launch.start(storage.new_warehouse("collector-wh"), args=COLLECT, env=storage.env)
    yield dep
    dep.stop()


@pytest.fixture
def cconn(collector):
    c = collector.connect()
    yield c
    c.close()


def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def rows_with_prefix(conn, p: str) -> list[tuple]:
    return h.rows(h.run_sql(conn, f"{cc.SELECT_ROWS} WHERE profile_id LIKE ?", [f"{p}-%"]))


def count_prefix(conn, p: str) -> int:
    return h.run_sql(conn, "SELECT count(*) FROM events WHERE profile_id LIKE ?", [f"{p}-%"]).column(0)[0].as_py()


def test_health_needs_no_auth(collector):
    status, _, body = cc.request(f"{collector.collector_url}/health")
    assert status == 200 and body == {"status": "ok", "pending_rows": 0}


def test_posted_events_are_read_back(collector, cconn):
    p = prefix()
    events = cc.make_events(random.Random(1), p, 40)
    before = dt.datetime.now(cc.UTC)
    status, _, body = cc.post_events(collector.collector_url, events)
    after = dt.datetime.now(cc.UTC)
    assert status == 200, body
    assert body == {"accepted": 40, "duplicates": 0, "forgotten": 0}
    h.assert_rows_equal(rows_with_prefix(cconn, p), [cc.expected_row(e) for e in events])
    # received_at: filled by the server when the request arrived.
    received = h.run_sql(cconn, "SELECT DISTINCT received_at FROM events WHERE profile_id LIKE ?", [f"{p}-%"])
    (t,) = received.column(0).to_pylist()
    assert before - dt.timedelta(seconds=1) <= t <= after + dt.timedelta(seconds=1), (before, t, after)


def test_event_ids_are_generated_when_absent(collector, cconn):
    p = prefix()
    events = cc.make_events(random.Random(2), p, 10, with_ids=False)
    status, _, body = cc.post_events(collector.collector_url, events)
    assert status == 200 and body["accepted"] == 10, body
    got = rows_with_prefix(cconn, p)
    ids = [r[0] for r in got]
    assert len(set(ids)) == 10
    for i in ids:
        assert uuid.UUID(i).version == 7, i
    h.assert_rows_equal([(None, *r[1:]) for r in got], [cc.expected_row(e) for e in events])


def test_resent_batch_is_not_duplicated(collector, cconn):
    p = prefix()
    events = cc.make_events(random.Random(3), p, 25)
    assert cc.post_events(collector.collector_url, events)[2]["accepted"] == 25
    status, _, body = cc.post_events(collector.collector_url, events)
    assert status == 200 and body == {"accepted": 0, "duplicates": 25, "forgotten": 0}, body
    # A batch mixing old and new events, with a repeat inside the batch.
    more = cc.make_events(random.Random(4), p, 30)[25:]  # ids e25..e29, new
    status, _, body = cc.post_events(collector.collector_url, events[:5] + more + more[:2])
    assert status == 200 and body == {"accepted": 5, "duplicates": 7, "forgotten": 0}, body
    assert count_prefix(cconn, p) == 30
    got_ids = sorted(r[0] for r in rows_with_prefix(cconn, p))
    assert got_ids == sorted(f"{p}-e{i}" for i in range(30))


@pytest.mark.parametrize(
    "row,field,bad",
    [
        (3, "event_time", {"event_time": "yesterday at noon"}),
        (0, "amount", {"amount": "12.50"}),
        (4, "event_type", {"event_type": None}),
        (2, "colour", {"colour": "red"}),
        (1, "received_at", {"received_at": "2026-11-01T00:00:00Z"}),
        (3, "event_time", {"event_time": "2026-11-01 08:00:00"}),  # no offset
    ],
)
def test_bad_row_rejects_the_whole_batch(collector, cconn, row, field, bad):
    p = prefix()
    events = cc.make_events(random.Random(5), p, 5)
    events[row].update(bad)
    status, _, body = cc.post_events(collector.collector_url, events)
    assert status == 400, body
    assert body["row"] == row and body["field"] == field, body
    assert f"row {row}" in body["error"] and field in body["error"], body
    assert count_prefix(cconn, p) == 0


def test_malformed_bodies(collector):
    url = collector.collector_url
    for raw in (b"{not json", b'{"event_type": "x"}', b"[1, 2]"):
        status, _, body = cc.post_events(url, None, raw=raw)
        assert status == 400 and "error" in body, (raw, body)
    status, _, body = cc.post_events(url, None, raw=b"[]")
    assert status == 200 and body["accepted"] == 0
    big = json.dumps(cc.make_events(random.Random(6), prefix(), 6000)).encode()
    assert len(big) > 1_000_000
    status, _, _ = cc.post_events(url, None, raw=big)
    assert status == 413


def test_large_batch(collector, cconn):
    p = prefix()
    events = cc.make_events(random.Random(11), p, 2000)
    assert 256 * 1024 < len(json.dumps(events)) < 1_000_000
    status, _, body = cc.post_events(collector.collector_url, events)
    assert status == 200 and body["accepted"] == 2000, body
    h.assert_rows_equal(rows_with_prefix(cconn, p), [cc.expected_row(e) for e in events])


def test_auth_is_required(collector, cconn):
    p = prefix()
    events = cc.make_events(random.Random(7), p, 3)
    for authorization in (None, cc.basic("seglake", "wrong"), cc.basic("nobody", "seglake"), "Bearer abc"):
        req_auth = authorization if authorization is not None else ""
        status, headers, body = cc.request(
            f"{collector.collector_url}/v1/events",
            method="POST",
            body=json.dumps(events).encode(),
            authorization=req_auth,
        )
        assert status == 401, (authorization, body)
        assert headers["WWW-Authenticate"].startswith("Basic"), headers
    assert count_prefix(cconn, p) == 0


def test_concurrent_posts_count_every_acknowledged_row(collector, cconn):
    p = prefix()
    threads, posts = 6, 8
    acknowledged = [0] * threads

    def work(t: int) -> None:
        rng = random.Random(100 + t)
        for k in range(posts):
            events = cc.make_events(rng, f"{p}-{t}-{k}", rng.randrange(1, 40))
            status, _, body = cc.post_events(collector.collector_url, events)
            assert status == 200, body
            assert body["duplicates"] == 0
            acknowledged[t] += body["accepted"]

    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(work, t) for t in range(threads)]:
            f.result(timeout=300)
    assert count_prefix(cconn, p) == sum(acknowledged)


def test_dedup_survives_a_restart_and_shutdown_commits_pending_rows(launch, storage):
    # Long flush interval: only the shutdown can commit the second request.
    wh = storage.new_warehouse()
    args = ("--collect", "127.0.0.1:0", "--collect-flush-ms", "600000")
    dep = launch.start(wh, args=args, env=storage.env)
    p = prefix()
    events = cc.make_events(random.Random(8), p, 20)
    answers = []
    poster = threading.Thread(target=lambda: answers.append(cc.post_events(dep.collector_url, events)))
    poster.start()
    # Wait until the committer holds the request's rows (it then waits for
    # the flush interval, which is long).
    deadline = time.monotonic() + 60
    while cc.health(dep.collector_url).get("pending_rows") != 20:
        assert time.monotonic() < deadline and poster.is_alive(), "the request never reached the committer"
        time.sleep(0.02)  # poll until the deadline
    assert not answers, "answered before any commit could happen"
    dep.stop()  # SIGTERM: the pending batch is committed, then the server exits 0
    poster.join(timeout=60)
    assert answers and answers[0][0] == 200, answers
    assert answers[0][2]["accepted"] == 20

    dep = launch.start(wh, args=("--collect", "127.0.0.1:0", "--collect-flush-ms", "20"), env=storage.env)
    status, _, body = cc.post_events(dep.collector_url, events)
    assert status == 200 and body == {"accepted": 0, "duplicates": 20, "forgotten": 0}, body
    c = dep.connect()
    try:
        h.assert_rows_equal(rows_with_prefix(c, p), [cc.expected_row(e) for e in events])
    finally:
        c.close()
    dep.stop()


def test_collector_writes_the_demo_events_table(launch, make_demo, storage):
    """On a demo warehouse the collector appends to the demo's managed
    `events` table and fills its received_at column (NULL in the generated
    rows); after a restart a re-sent *old* event (event_time days before the
    one-hour window) is still recognised, because the deduplication window
    is rebuilt from received_at."""
    wh = make_demo(storage.new_warehouse("demo"), profiles=200, env=storage.env)
    dep = launch.start(wh, args=("--collect", "127.0.0.1:0", "--collect-flush-ms", "20"), env=storage.env)
    p = prefix()
    events = cc.make_events(random.Random(9), p, 15)
    old = dt.datetime.now(cc.UTC) - dt.timedelta(hours=2)
    assert all(dt.datetime.fromisoformat(e["event_time"]) < old for e in events)
    c = dep.connect()
    try:
        before = h.run_sql(c, "SELECT count(*) FROM events").column(0)[0].as_py()
        assert before > 0
        assert h.run_sql(c, "SELECT count(*) FROM events WHERE received_at IS NOT NULL").column(0)[0].as_py() == 0
        status, _, body = cc.post_events(dep.collector_url, events)
        assert status == 200 and body["accepted"] == 15, body
        assert cc.post_events(dep.collector_url, events)[2]["duplicates"] == 15
        h.assert_rows_equal(rows_with_prefix(c, p), [cc.expected_row(e) for e in events])
        assert h.run_sql(c, "SELECT count(*) FROM events").column(0)[0].as_py() == before + 15
        received = h.rows(h.run_sql(c, "SELECT profile_id LIKE ? FROM events WHERE received_at IS NOT NULL", [f"{p}-%"]))
        assert received == [(True,)] * 15
    finally:
        c.close()

    dep = launch.restart(dep)
    status, _, body = cc.post_events(dep.collector_url, events)
    assert status == 200 and body == {"accepted": 0, "duplicates": 15, "forgotten": 0}, body
    c = dep.connect()
    try:
        assert h.run_sql(c, "SELECT count(*) FROM events").column(0)[0].as_py() == before + 15
    finally:
        c.close()
    dep.stop()


def test_events_of_a_forgotten_profile_are_dropped(collector, cconn):
    p = prefix()
    events = cc.make_events(random.Random(10), p, 12)
    victim = events[0]["profile_id"]
    h.run_command(cconn, f"FORGET PROFILE '{victim}'")
    status, _, body = cc.post_events(collector.collector_url, events)
    expected = [e for e in events if e["profile_id"] != victim]
    assert status == 200, body
    assert body == {"accepted": len(expected), "duplicates": 0, "forgotten": len(events) - len(expected)}, body
    h.assert_rows_equal(rows_with_prefix(cconn, p), [cc.expected_row(e) for e in expected])
