"""Segments through ADBC: error codes, at-least-once webhook delivery when
the receiver is down for a whole refresh (the walk-through covers the main
path: test_segments_walkthrough.py), and the webhook egress policy."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

# Results depend on where the plan runs: every topology of the run.
TOPOLOGIES = h.ALL_TOPOLOGIES


def run(conn, sql):
    return h.rows(h.run_sql(conn, sql))


@pytest.mark.parametrize(
    "sql, status, message",
    [
        ("CREATE SEGMENT {s} AS SELECT country FROM profiles", AdbcStatusCode.INVALID_ARGUMENT, "must return a profile_id column"),
        ("CREATE SEGMENT {s} AS SELECT profile_id FROM nowhere", AdbcStatusCode.INVALID_ARGUMENT, "does not plan"),
        ("CREATE SEGMENT {s} AS SELECT profile_id FROM segments.nope_{s}", AdbcStatusCode.INVALID_ARGUMENT, "does not plan"),
        ("REFRESH SEGMENT nope_{s}", AdbcStatusCode.NOT_FOUND, "segment 'nope_"),
        ("DROP SEGMENT nope_{s}", AdbcStatusCode.NOT_FOUND, "not found"),
        ("ACTIVATE SEGMENT nope_{s} TO d", AdbcStatusCode.NOT_FOUND, "not found"),
        ("CREATE DESTINATION {s} TYPE ftp OPTIONS (url 'x')", AdbcStatusCode.INVALID_ARGUMENT, "not supported"),
        ("CREATE DESTINATION {s} TYPE webhook OPTIONS (url 'ftp://x')", AdbcStatusCode.INVALID_ARGUMENT, "http"),
        ("CREATE DESTINATION {s} TYPE webhook OPTIONS (url 'http://x', batch_size '0')", AdbcStatusCode.INVALID_ARGUMENT, "batch_size"),
        ("ALTER SEGMENT {s} SET REFRESH EVERY 'often'", AdbcStatusCode.INVALID_ARGUMENT, "interval"),
        ("CREATE SEGMENT {s} AS SELECT profile_id FROM profiles extra words", AdbcStatusCode.INVALID_ARGUMENT, "unexpected"),
    ],
)
def test_errors(conn, unique, sql, status, message):
    with pytest.raises(Exception, match=message) as info:
        run(conn, sql.format(s=unique("seg")))
    assert h.status_of(info.value) == status


def test_duplicate_and_cycle(conn, unique):
    a, b = unique("a"), unique("b")
    run(conn, f"CREATE SEGMENT {a} AS SELECT profile_id FROM profiles WHERE country = 'FR'")
    with pytest.raises(Exception, match="already exists") as info:
        run(conn, f"CREATE SEGMENT {a} AS SELECT profile_id FROM profiles")
    assert h.status_of(info.value) == AdbcStatusCode.ALREADY_EXISTS
    run(conn, f"CREATE SEGMENT {b} AS SELECT profile_id FROM segments.{a}")
    with pytest.raises(Exception, match="cycle") as info:
        run(conn, f"CREATE OR REPLACE SEGMENT {a} AS SELECT profile_id FROM segments.{b}")
    assert h.status_of(info.value) == AdbcStatusCode.INVALID_ARGUMENT
    # The failed replace changed nothing.
    assert run(conn, f"SELECT max(version) FROM system.segment_versions WHERE segment = '{a}'") == [(1,)]
    run(conn, f"DROP SEGMENT {b}")
    run(conn, f"DROP SEGMENT {a}")


class FlakyReceiver:
    """Answers 503 while `down`, records (key, body) otherwise."""

    def __init__(self):
        self.down = True
        self.received: list[tuple[str, dict]] = []
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.down:
                    outer.refused += 1
                    self.send_response(503)
                else:
                    outer.received.append((self.headers["Idempotency-Key"], json.loads(body)))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hooks(launch, tmp_path_factory):
    """A deployment whose webhooks may reach 127.0.0.1, where the tests'
    receivers listen (loopback is refused by default)."""
    dep = launch.start(tmp_path_factory.mktemp("hooks"), args=("--allow-webhook", "127.0.0.1"))
    yield dep
    dep.stop()


@pytest.fixture
def hook_conn(hooks):
    c = hooks.connect()
    yield c
    c.close()


def test_undelivered_changes_are_sent_after_the_next_refresh(hook_conn, unique):
    conn = hook_conn
    receiver = FlakyReceiver()
    table, seg, dest = unique("people"), unique("seg"), unique("hook")
    try:
        run(conn, f"CREATE TABLE {table} (profile_id VARCHAR, vip BOOLEAN, ok BOOLEAN)")
        run(conn, f"INSERT INTO {table} VALUES ('a', true, true), ('b', true, false), ('c', false, true)")
        run(conn, f"CREATE SEGMENT {seg} AS SELECT profile_id FROM {table} WHERE vip")
        run(conn, f"CREATE DESTINATION {dest} TYPE webhook OPTIONS (url '{receiver.url}', batch_size '1')")
        run(conn, f"ACTIVATE SEGMENT {seg} TO {dest} CONSENT COLUMN ok PROFILES {table}")

        # Refresh 1 while the receiver is down: a, b enter; only a consents.
        assert h.execute_update(conn, f"REFRESH SEGMENT {seg}") == 2
        (status, attempts, error) = run(
            conn, f"SELECT status, attempts, error FROM system.activations WHERE segment = '{seg}' AND change = 'entered'"
        )[0]
        assert (status, attempts) == ("failed", 5) and "503" in error
        assert receiver.refused == 5 and receiver.received == []

        # The receiver is back; c becomes vip, a leaves.
        receiver.down = False
        run(conn, f"UPDATE {table} SET vip = NOT vip WHERE profile_id IN ('a', 'c')")
        h.run_command(conn, f"REFRESH SEGMENT {seg}")
        rids = [r[0] for r in run(conn, f"SELECT refresh_id FROM system.segment_history WHERE segment = '{seg}' ORDER BY refreshed_at")]
        got = [(key.rsplit(":", 1)[0], [r["profile_id"] for r in body["rows"]]) for key, body in receiver.received]
        # Oldest first: refresh 1's entered (a; b has no consent), then
        # refresh 2's entered (c) and exited (a).
        assert got == [
            (f"{rids[0]}:entered", ["a"]),
            (f"{rids[1]}:entered", ["c"]),
            (f"{rids[1]}:exited", ["a"]),
        ]
        ok = run(
            conn,
            f"SELECT refresh_id, change, rows_sent FROM system.activations WHERE segment = '{seg}' AND status = 'ok' ORDER BY at",
        )
        assert ok == [(rids[0], "entered", 1), (rids[0], "exited", 0), (rids[1], "entered", 1), (rids[1], "exited", 1)]
    finally:
        receiver.stop()
        run(conn, f"DEACTIVATE SEGMENT {seg} FROM {dest}")
        run(conn, f"DROP DESTINATION {dest}")
        run(conn, f"DROP SEGMENT {seg}")


def test_segments_on_s3(launch, moto):
    """Refresh, history, snapshot time travel and a Parquet file activation
    on an s3:// warehouse (moto), surviving a restart."""
    import io

    import pyarrow.parquet as pq

    bucket = moto.new_bucket()
    dep = launch.start(f"s3://{bucket}/wh", env=moto.env())
    try:
        c = dep.connect()
        run(c, "CREATE TABLE people (profile_id VARCHAR, tier VARCHAR, consent BOOLEAN)")
        run(c, "INSERT INTO people VALUES ('a', 'gold', true), ('b', 'gold', true), ('c', 'silver', true)")
        run(c, "CREATE SEGMENT gold AS SELECT profile_id FROM people WHERE tier = 'gold'")
        run(c, "CREATE DESTINATION out TYPE file OPTIONS (path 'exports', format 'parquet')")
        run(c, "ACTIVATE SEGMENT gold TO out COLUMNS (profile_id, tier) CONSENT COLUMN consent PROFILES people")
        assert h.execute_update(c, "REFRESH SEGMENT gold") == 2
        run(c, "UPDATE people SET tier = CASE WHEN profile_id = 'a' THEN 'silver' ELSE 'gold' END WHERE profile_id IN ('a', 'c')")
        assert h.execute_update(c, "REFRESH SEGMENT gold") == 2
        c.close()
        dep = launch.restart(dep)
        c = dep.connect()
        assert run(c, "SELECT size, entered, exited FROM system.segment_history ORDER BY refreshed_at") == [(2, 2, 0), (2, 1, 1)]
        assert sorted(run(c, "SELECT profile_id FROM table_at('segment_data.gold', 1)")) == [("a",), ("b",)]
        assert sorted(run(c, "SELECT profile_id FROM segment_data.gold")) == [("b",), ("c",)]
        (r2,) = run(c, "SELECT refresh_id FROM system.segment_history ORDER BY refreshed_at DESC LIMIT 1")[0]
        s3 = moto.boto()

        def exported(change):
            body = s3.get_object(Bucket=bucket, Key=f"wh/exports/gold/{r2}-{change}.parquet")["Body"].read()
            return pq.read_table(io.BytesIO(body)).to_pylist()

        # The exit is sent with the profile's current attributes.
        assert exported("entered") == [{"profile_id": "c", "tier": "gold"}]
        assert exported("exited") == [{"profile_id": "a", "tier": "silver"}]
        c.close()
    finally:
        dep.stop()


# ------------------------------------------------------------ webhook egress


class StubReceiver:
    """Answers every request with `status`, `headers` and `body`; records
    each request as (method, Idempotency-Key) in `requests` (any method: a
    client following a 302 turns the POST into a GET)."""

    def __init__(self, status: int, headers: dict[str, str] | None = None, body: bytes = b""):
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append((self.command, self.headers.get("Idempotency-Key")))
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = do_PUT = answer  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def everything_readable(conn) -> str:
    """Every row of the tables where a delivery leaves a trace, as text."""
    return repr(
        [
            run(conn, "SELECT * FROM system.activations"),
            run(conn, "SELECT * FROM system.destinations"),
            run(conn, 'SELECT * FROM segment_data."_activations"'),
        ]
    )


def activate_one_profile(conn, unique, url: str) -> tuple[str, str]:
    """A segment with one consenting profile, activated to a webhook at
    `url`, refreshed once; returns the segment's and the table's names."""
    table, seg, dest = unique("people"), unique("seg"), unique("hook")
    run(conn, f"CREATE TABLE {table} (profile_id VARCHAR, ok BOOLEAN)")
    run(conn, f"INSERT INTO {table} VALUES ('a', true)")
    run(conn, f"CREATE SEGMENT {seg} AS SELECT profile_id FROM {table}")
    run(conn, f"CREATE DESTINATION {dest} TYPE webhook OPTIONS (url '{url}')")
    run(conn, f"ACTIVATE SEGMENT {seg} TO {dest} CONSENT COLUMN ok PROFILES {table}")
    assert h.execute_update(conn, f"REFRESH SEGMENT {seg}") == 1
    return seg, table


def deliveries(conn, seg: str) -> list[tuple]:
    return run(
        conn,
        f"SELECT change, status, attempts, error, rows_sent FROM system.activations WHERE segment = '{seg}' ORDER BY at",
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        # Names and other spellings of internal addresses.
        "http://localhost:{port}/hook",
        "http://2130706433:{port}/hook",
        "http://0x7f.1:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://[::1]:{port}/hook",
        # Cloud metadata, private and unspecified addresses.
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/hook",
        "http://192.168.1.1/hook",
        "http://0.0.0.0:{port}/hook",
    ],
)
def test_internal_webhooks_are_refused_by_default(conn, unique, url):
    receiver = StubReceiver(200)
    dest = unique("hook")
    try:
        with pytest.raises(Exception, match="webhook-egress") as info:
            run(conn, f"CREATE DESTINATION {dest} TYPE webhook OPTIONS (url '{url.format(port=receiver.port)}')")
        assert h.status_of(info.value) == AdbcStatusCode.UNAUTHORIZED, str(info.value)
        assert run(conn, f"SELECT name FROM system.destinations WHERE name = '{dest}'") == []
        with pytest.raises(Exception, match="not found"):
            run(conn, f"DROP DESTINATION {dest}")
        assert receiver.requests == []
    finally:
        receiver.stop()


def test_webhook_urls_with_credentials_are_refused(hook_conn, unique):
    dest = unique("hook")
    with pytest.raises(Exception, match="credentials") as info:
        run(hook_conn, f"CREATE DESTINATION {dest} TYPE webhook OPTIONS (url 'http://user:hunter2@127.0.0.1:9/x')")
    assert h.status_of(info.value) == AdbcStatusCode.INVALID_ARGUMENT
    assert "hunter2" not in str(info.value)
    assert run(hook_conn, f"SELECT name FROM system.destinations WHERE name = '{dest}'") == []


def test_the_allow_list_is_exact(hook_conn, unique):
    """--allow-webhook 127.0.0.1 opens that address, not loopback."""
    receiver = StubReceiver(200)
    try:
        with pytest.raises(Exception, match="127.0.0.2 is a loopback address") as info:
            run(hook_conn, f"CREATE DESTINATION {unique('hook')} TYPE webhook OPTIONS (url 'http://127.0.0.2:{receiver.port}/')")
        assert h.status_of(info.value) == AdbcStatusCode.UNAUTHORIZED
        assert receiver.requests == []
    finally:
        receiver.stop()


def test_redirects_are_not_followed(hook_conn, unique):
    marker = f"first-receiver-body-{uuid.uuid4().hex}"
    second = StubReceiver(200)
    first = StubReceiver(302, headers={"Location": second.url}, body=marker.encode())
    try:
        seg, _ = activate_one_profile(hook_conn, unique, first.url)
        # One attempt (a redirect is final), nothing reaches the second
        # receiver, and the delivery waits for the next refresh.
        assert len(first.requests) == 1 and second.requests == []
        [(change, status, attempts, error, rows_sent)] = deliveries(hook_conn, seg)
        assert (change, status, attempts, rows_sent) == ("entered", "failed", 1, 0)
        assert "302" in error and "redirect" in error, error
        assert marker not in everything_readable(hook_conn)
    finally:
        first.stop()
        second.stop()


def test_receiver_errors_do_not_echo_the_body(hook_conn, unique):
    marker = f"internal-stack-trace-{uuid.uuid4().hex}"
    receiver = StubReceiver(500, body=marker.encode())
    try:
        seg, _ = activate_one_profile(hook_conn, unique, receiver.url)
        [(change, status, attempts, error, _)] = deliveries(hook_conn, seg)
        assert (change, status, attempts) == ("entered", "failed", 5)
        assert "500" in error, error
        assert len(receiver.requests) == 5
        assert marker not in everything_readable(hook_conn)
    finally:
        receiver.stop()


def test_connection_failures_do_not_say_why(hook_conn, unique):
    """A closed port answers "connection refused" to the server; SQL users
    only read that the connection failed (no port scanner)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on `port` now.
    seg, _ = activate_one_profile(hook_conn, unique, f"http://127.0.0.1:{port}/hook")
    [(change, status, attempts, error, _)] = deliveries(hook_conn, seg)
    assert (change, status, attempts) == ("entered", "failed", 5)
    assert error == "connection failed"


def test_every_delivery_checks_the_policy_again(hooks, launch, unique):
    """A destination allowed by one server is refused at delivery by a
    server (on the same warehouse) that does not allow it."""
    receiver = StubReceiver(200)
    c = hooks.connect()
    strict = None
    try:
        seg, table = activate_one_profile(c, unique, receiver.url)
        assert len(receiver.requests) == 1
        assert [d[:3] for d in deliveries(c, seg)] == [("entered", "ok", 1), ("exited", "ok", 0)]
        run(c, f"INSERT INTO {table} VALUES ('b', true)")
        strict = launch.start(hooks.warehouse, args=("--refresh-scheduler", "false"))
        s = strict.connect()
        assert h.execute_update(s, f"REFRESH SEGMENT {seg}") == 2
        failed = [d for d in deliveries(s, seg) if d[1] == "failed"]
        # b's entry is not sent: no attempt, nothing at the receiver.
        assert [(d[0], d[2], d[3], d[4]) for d in failed] == [
            ("entered", 0, "refused by the egress policy: 127.0.0.1 is a loopback address", 0)
        ]
        assert len(receiver.requests) == 1
        s.close()
    finally:
        c.close()
        receiver.stop()
        if strict is not None:
            strict.stop()
