"""Crash safety of the HTTP collector next to ADBC ingests: the server is
killed (SIGKILL) while several threads post events and others append with
`adbc_ingest` and `INSERT`, then restarted on the same warehouse. Every acknowledged row
is present exactly once; an unacknowledged batch is present whole or not at
all, and re-sending it after the restart never duplicates it; the tables
stay readable. On a local warehouse and on S3 (moto)."""

from __future__ import annotations

import threading
from collections import Counter

import adbc_driver_manager
import pyarrow as pa

import collector_client as cc
import seglake_harness as h

EVENTS_PER_POST = 20
ROWS_PER_INGEST = 30
ARGS = ("--collect", "127.0.0.1:0", "--collect-flush-ms", "20")


def batch(w: int, seq: int) -> list[dict]:
    return [
        {
            "event_id": f"c{w}-{seq}-{i}",
            "profile_id": f"w{w}",
            "event_time": f"2026-11-01T{i % 24:02d}:00:00Z",
            "event_type": "page_view",
            "channel": "web",
            "source": "web",
            "amount": float(seq),
        }
        for i in range(EVENTS_PER_POST)
    ]


def is_insert(seq: int) -> bool:
    return seq % 4 == 3


def rows_of(seq: int) -> int:
    return 1 if is_insert(seq) else ROWS_PER_INGEST


def scalar(conn, sql: str):
    return h.run_sql(conn, sql).column(0)[0].as_py()


def test_sigkill_during_posts_and_ingests(launch, storage):
    wh = storage.new_warehouse()
    dep = launch.start(wh, args=ARGS, env=storage.env)
    c = dep.connect()
    h.run_command(c, "CREATE TABLE hits (writer INT, seq INT, n INT)")
    c.close()

    posters, ingesters = 3, 2
    posted: list[list[int]] = [[] for _ in range(posters)]  # acknowledged seqs
    in_flight: list[int | None] = [None] * posters  # the post the kill interrupted
    ingested: list[list[int]] = [[] for _ in range(ingesters)]
    progress = threading.Condition()
    stop = threading.Event()

    def acked() -> None:
        with progress:
            progress.notify_all()

    def post(w: int) -> None:
        seq = 0
        while not stop.is_set():
            try:
                status, _, body = cc.post_events(dep.collector_url, batch(w, seq))
            except OSError:
                in_flight[w] = seq  # no answer: may or may not be committed
                return
            if status != 200:
                in_flight[w] = seq
                return
            assert body == {"accepted": EVENTS_PER_POST, "duplicates": 0, "forgotten": 0}, body
            posted[w].append(seq)
            acked()
            seq += 1

    def ingest(w: int) -> None:
        conn = dep.connect()
        seq = 0
        try:
            while not stop.is_set():
                data = pa.table({
                    "writer": pa.array([w] * ROWS_PER_INGEST, pa.int32()),
                    "seq": pa.array([seq] * ROWS_PER_INGEST, pa.int32()),
                    "n": pa.array(range(ROWS_PER_INGEST), pa.int32()),
                })
                try:
                    if is_insert(seq):
                        # An INSERT: one row, one commit like an ingest.
                        h.run_command(conn, f"INSERT INTO hits VALUES ({w}, {seq}, 0)")
                    else:
                        with conn.cursor() as cur:
                            cur.adbc_ingest("hits", data, mode="append")
                except adbc_driver_manager.Error:
                    return  # the server is gone
                ingested[w].append(seq)
                acked()
                seq += 1
        finally:
            try:
                conn.close()
            except Exception:
                pass

    threads = [threading.Thread(target=post, args=(w,)) for w in range(posters)]
    threads += [threading.Thread(target=ingest, args=(w,)) for w in range(ingesters)]
    for t in threads:
        t.start()
    with progress:
        ok = progress.wait_for(
            lambda: all(len(a) >= 5 for a in posted + ingested) or not all(t.is_alive() for t in threads),
            timeout=120,
        )
    assert ok and all(t.is_alive() for t in threads), (posted, ingested)
    dep.kill()  # SIGKILL in the middle of the stream
    stop.set()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive()

    dep = launch.start(wh, args=ARGS, env=storage.env)
    # Re-send what the kill interrupted: committed once at most, whole.
    for w, seq in enumerate(in_flight):
        if seq is None:
            continue
        status, _, body = cc.post_events(dep.collector_url, batch(w, seq))
        assert status == 200, body
        assert (body["accepted"], body["duplicates"]) in ((EVENTS_PER_POST, 0), (0, EVENTS_PER_POST)), body
        posted[w].append(seq)

    c = dep.connect()
    try:
        # Events: every id at most once; every acknowledged post whole.
        ids = Counter(h.rows(h.run_sql(c, "SELECT event_id FROM events")))
        assert not [i for i, n in ids.items() if n > 1], "duplicated events"
        per_post = Counter(i.rsplit("-", 1)[0] for (i,) in ids)
        for key, n in per_post.items():
            assert n == EVENTS_PER_POST, f"post {key} is partial: {n} rows"
        for w, seqs in enumerate(posted):
            for seq in seqs:
                assert per_post.get(f"c{w}-{seq}") == EVENTS_PER_POST, f"acknowledged post c{w}-{seq} lost"
        assert scalar(c, "SELECT count(*) FROM events") == sum(per_post.values())
        assert sum(len(s) for s in posted) >= 5 * posters

        # Ingests: every acknowledged one once and whole; others whole or absent.
        got = Counter(h.rows(h.run_sql(c, "SELECT writer, seq FROM hits")))
        for (w, seq), n in got.items():
            assert n == rows_of(seq), f"write {w}/{seq} has {n} rows"
        for w, seqs in enumerate(ingested):
            for seq in seqs:
                assert got.get((w, seq)) == rows_of(seq), f"acknowledged write {w}/{seq} lost"
        # After the crash the table still takes writes.
        h.run_command(c, "INSERT INTO hits VALUES (99, 0, 0)")
        assert scalar(c, "SELECT count(*) FROM hits WHERE writer = 99") == 1

        # Both tables readable through their whole history.
        assert scalar(c, "SELECT count(*) FROM system.table_history WHERE table_name IN ('events', 'hits')") >= 2
    finally:
        c.close()
    dep.stop()
