"""Limits of the HTTP event collector against slow and too many clients,
over real sockets: a client that trickles its request head or its body is
cut off within `--collect-header-timeout-secs` / `--collect-body-timeout-secs`
(plain and TLS) while other clients are served; `--collect-max-connections`
makes further connections wait in the accept queue until one closes.
What a cut-off request carried is never committed (counted through ADBC)."""

from __future__ import annotations

import json
import random
import socket
import ssl
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

import collector_client as cc
import seglake_harness as h

# The bound on "cut off within the timeout" (1 s) in these tests: generous
# for a loaded machine, far below what a missing limit would give.
CUT_OFF_WITHIN_S = 5.0
SLOW = (
    "--collect",
    "127.0.0.1:0",
    "--collect-flush-ms",
    "30",
    "--collect-header-timeout-secs",
    "1",
    "--collect-body-timeout-secs",
    "1",
)


@pytest.fixture(scope="module")
def slow(launch, tmp_path_factory):
    """A collector with 1-second head and body timeouts."""
    dep = launch.start(tmp_path_factory.mktemp("limits-wh"), args=SLOW)
    yield dep
    dep.stop()


def prefix() -> str:
    return f"l{uuid.uuid4().hex[:10]}"


def address(dep) -> tuple[str, int]:
    host, port = dep.endpoint.collector_address.rsplit(":", 1)
    return host, int(port)


def count_prefix(dep, p: str) -> int:
    conn = dep.connect()
    try:
        return h.run_sql(conn, "SELECT count(*) FROM events WHERE profile_id LIKE ?", [f"{p}-%"]).column(0)[0].as_py()
    finally:
        conn.close()


def read_until_closed(sock, limit_s: float) -> bytes:
    """Everything the server sends until it closes the connection; fails
    if it is still open after `limit_s` seconds."""
    deadline = time.monotonic() + limit_s
    data = b""
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the server kept the connection open for {limit_s}s; received {data[:200]!r}"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue  # the assertion above ends the loop at the deadline
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return data
        if not chunk:
            return data
        data += chunk


def read_response(sock, limit_s: float) -> tuple[int, bytes]:
    """One HTTP/1.1 response with a Content-Length body: (status, body)."""
    deadline = time.monotonic() + limit_s
    data = b""
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if len(rest) >= length:
                return int(head.split(b" ")[1]), rest[:length]
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no complete response within {limit_s}s; received {data[:200]!r}"
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection; received {data[:200]!r}"
        data += chunk


def post_request(body: bytes, *, host: str, close: bool = False) -> bytes:
    """The head of `POST /v1/events` with the default user's Basic auth."""
    return (
        f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: {cc.basic()}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
    ).encode()


def health_request(host: str, *, close: bool = False) -> bytes:
    return f"GET /health HTTP/1.1\r\nHost: {host}\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n".encode()


def assert_posts(dep, n: int = 3) -> None:
    """A normal client is served: its events are committed."""
    p = prefix()
    status, _, body = cc.post_events(dep.collector_url, cc.make_events(random.Random(n), p, n))
    assert status == 200 and body == {"accepted": n, "duplicates": 0, "forgotten": 0}, body
    assert count_prefix(dep, p) == n


def test_a_client_that_stops_sending_its_head_is_cut_off(slow):
    host, port = address(slow)
    with socket.create_connection((host, port)) as sock, ThreadPoolExecutor(1) as pool:
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Ty")
        started = time.monotonic()
        # Meanwhile, another client is served.
        served = pool.submit(assert_posts, slow)
        assert read_until_closed(sock, CUT_OFF_WITHIN_S) == b"", "no answer to a request without its head"
        elapsed = time.monotonic() - started
        assert 0.5 <= elapsed < CUT_OFF_WITHIN_S, elapsed
        served.result(timeout=120)


def test_a_client_that_trickles_its_head_is_cut_off(slow):
    # Sending a header line every 200 ms keeps the connection busy but the
    # head never ends: the timeout is on the whole head, not between bytes.
    host, port = address(slow)
    with socket.create_connection((host, port)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        i = 0
        while not closed:
            assert time.monotonic() - started < CUT_OFF_WITHIN_S, "the trickling client was never cut off"
            try:
                sock.sendall(f"X-Slow-{i}: y\r\n".encode())
                sock.settimeout(0.2)
                closed = sock.recv(4096) == b""
            except socket.timeout:
                pass  # still open: send the next line
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            i += 1
        elapsed = time.monotonic() - started
        assert 0.5 <= elapsed < CUT_OFF_WITHIN_S, elapsed


def test_a_client_that_stops_sending_its_body_gets_408_and_nothing_is_written(slow):
    host, port = address(slow)
    p = prefix()
    events = cc.make_events(random.Random(21), p, 20)
    body = json.dumps(events).encode()
    assert len(body) > 1000
    with socket.create_connection((host, port)) as sock:
        sock.sendall(post_request(body, host=host) + body[:10])
        started = time.monotonic()
        answer = read_until_closed(sock, CUT_OFF_WITHIN_S)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"--collect-body-timeout-secs" in answer, answer
    assert 0.5 <= elapsed < CUT_OFF_WITHIN_S, elapsed
    assert count_prefix(slow, p) == 0
    # The same events sent whole are new to the collector: all written.
    status, _, ack = cc.post_events(slow.collector_url, events)
    assert status == 200 and ack == {"accepted": 20, "duplicates": 0, "forgotten": 0}, ack
    assert count_prefix(slow, p) == 20


def test_a_prompt_client_on_a_kept_alive_connection_is_served(slow):
    # The head timeout does not cut a connection that sends its requests
    # in time: two requests on one connection, each answered.
    host, port = address(slow)
    p = prefix()
    with socket.create_connection((host, port)) as sock:
        for i in range(2):
            body = json.dumps(cc.make_events(random.Random(30 + i), f"{p}{i}", 4)).encode()
            sock.sendall(post_request(body, host=host) + body)
            status, answer = read_response(sock, 60)
            assert status == 200 and json.loads(answer)["accepted"] == 4, answer
    assert count_prefix(slow, f"{p}0") == 4 and count_prefix(slow, f"{p}1") == 4


def test_limits_apply_over_tls(launch, tmp_path_factory):
    certs = launch.certs
    dep = launch.start(
        tmp_path_factory.mktemp("limits-tls-wh"),
        args=(*SLOW, "--tls-cert", str(certs.cert), "--tls-key", str(certs.key)),
    )
    try:
        host, port = address(dep)
        context = h.https_context(certs.ca)
        # A client that never starts its TLS handshake.
        with socket.create_connection((host, port)) as raw:
            started = time.monotonic()
            assert read_until_closed(raw, CUT_OFF_WITHIN_S) == b""
            assert time.monotonic() - started < CUT_OFF_WITHIN_S
        # A client that stops in the middle of its head, after the handshake.
        with context.wrap_socket(socket.create_connection((host, port)), server_hostname=host) as tls:
            tls.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
            started = time.monotonic()
            assert read_until_closed(tls, CUT_OFF_WITHIN_S) == b""
            assert time.monotonic() - started < CUT_OFF_WITHIN_S
        # A body that stops: 408.
        p = prefix()
        body = json.dumps(cc.make_events(random.Random(41), p, 5)).encode()
        with context.wrap_socket(socket.create_connection((host, port)), server_hostname=host) as tls:
            tls.sendall(post_request(body, host=host) + body[:10])
            answer = read_until_closed(tls, CUT_OFF_WITHIN_S)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        # A prompt HTTPS client is served.
        with context.wrap_socket(socket.create_connection((host, port)), server_hostname=host) as tls:
            tls.sendall(post_request(body, host=host) + body)
            status, answer = read_response(tls, 60)
        assert status == 200 and json.loads(answer)["accepted"] == 5, answer
    finally:
        dep.stop()


def test_connections_beyond_the_cap_wait_until_one_closes(launch, tmp_path_factory):
    # Long head timeout: idle kept-alive connections keep their slot.
    dep = launch.start(
        tmp_path_factory.mktemp("limits-cap-wh"),
        args=(
            "--collect",
            "127.0.0.1:0",
            "--collect-flush-ms",
            "30",
            "--collect-max-connections",
            "4",
            "--collect-header-timeout-secs",
            "120",
        ),
    )
    host, port = address(dep)
    held = []
    try:
        # Four kept-alive connections, each after a complete request.
        for _ in range(4):
            sock = socket.create_connection((host, port))
            held.append(sock)
            sock.sendall(health_request(host))
            status, _ = read_response(sock, 60)
            assert status == 200
        # A fifth connects (the kernel's accept queue) but is not served...
        fifth = socket.create_connection((host, port))
        held.append(fifth)
        fifth.sendall(health_request(host, close=True))
        fifth.settimeout(1.5)
        with pytest.raises(socket.timeout):
            fifth.recv(4096)
        # ...until one of the four closes.
        held.pop(0).close()
        status, body = read_response(fifth, 30)
        assert status == 200 and json.loads(body)["status"] == "ok", body
        assert read_until_closed(fifth, 30) == b""  # it asked for `Connection: close`
        # Its slot is free again: a new client posts.
        assert_posts(dep)
    finally:
        for sock in held:
            sock.close()
        dep.stop()


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--collect-max-connections", "0", "--collect-max-connections must be between 1 and 1048576"),
        ("--collect-header-timeout-secs", "0", "must be positive"),
        ("--collect-body-timeout-secs", "0", "must be positive"),
        ("--collect-dedup-max-ids", "0", "must be positive"),
    ],
)
def test_limits_that_would_stop_the_collector_are_refused_at_start(seglake_bin, tmp_path, flag, value, message):
    argv = [str(seglake_bin), "serve", "--warehouse", str(tmp_path / "wh"), "--listen", "127.0.0.1:0"]
    argv += ["--collect", "127.0.0.1:0", flag, value]
    done = subprocess.run(argv, env=h.child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "listening on" not in done.stdout, (done.returncode, done.stdout)
    assert message in done.stderr, done.stderr[-2000:]
