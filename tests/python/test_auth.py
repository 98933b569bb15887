"""Logging in, users, sessions, message sizes, and graceful shutdown."""

import subprocess
import time

import adbc_driver_manager
import pyarrow as pa
import pyarrow.flight as fl
import pytest
from adbc_driver_manager import AdbcStatusCode
from argon2 import PasswordHasher

import collector_client as cc
import seglake_harness as h


def test_connect_with_password(conn):
    assert h.rows(h.run_sql(conn, "SELECT 41 + 1 AS answer")) == [(42,)]


@pytest.mark.parametrize(
    "user,password",
    [("seglake", "wrong"), ("seglake", ""), ("nobody", "seglake"), ("", "")],
    ids=["wrong-password", "empty-password", "unknown-user", "empty-user"],
)
def test_bad_credentials_are_unauthenticated(server, user, password):
    with pytest.raises(adbc_driver_manager.Error) as ei:
        c = server.connect(user, password)
        # Should the driver ever log in lazily, the first call must fail.
        try:
            h.run_sql(c, "SELECT 1")
        finally:
            c.close()
    assert h.status_of(ei.value) == AdbcStatusCode.UNAUTHENTICATED, str(ei.value)
    # The server is still fine.
    assert server.alive()
    ok = server.connect()
    try:
        assert h.rows(h.run_sql(ok, "SELECT 1")) == [(1,)]
    finally:
        ok.close()


def test_configured_users_replace_the_default(launch, demo_warehouse):
    """--user flags and SEGLAKE_USERS: only the listed users get in."""
    dep = launch.start(demo_warehouse, args=["--user", "alice:s3cret", "--user", "bob:hunter2"])
    try:
        for user, password in [("alice", "s3cret"), ("bob", "hunter2")]:
            c = dep.connect(user, password)
            try:
                assert h.rows(h.run_sql(c, "SELECT 7")) == [(7,)]
            finally:
                c.close()
        for user, password in [("seglake", "seglake"), ("alice", "hunter2")]:
            with pytest.raises(adbc_driver_manager.Error) as ei:
                dep.connect(user, password).close()
            assert h.status_of(ei.value) == AdbcStatusCode.UNAUTHENTICATED
    finally:
        dep.stop()

    dep = launch.start(demo_warehouse, env={"SEGLAKE_USERS": "carol:pw1,dave:pw2"})
    try:
        for user, password in [("carol", "pw1"), ("dave", "pw2")]:
            c = dep.connect(user, password)
            try:
                assert h.rows(h.run_sql(c, "SELECT 8")) == [(8,)]
            finally:
                c.close()
        with pytest.raises(adbc_driver_manager.Error) as ei:
            dep.connect("seglake", "seglake").close()
        assert h.status_of(ei.value) == AdbcStatusCode.UNAUTHENTICATED
    finally:
        dep.stop()


def test_graceful_shutdown_with_open_connection(launch, demo_warehouse, duck):
    """SIGTERM with a connected client: the server exits with code 0 and
    prints nothing more on stdout."""
    dep = launch.start(demo_warehouse)
    c = dep.connect()
    try:
        assert h.rows(h.run_sql(c, "SELECT count(*) FROM profiles")) == [(duck.scalar("SELECT count(*) FROM profiles"),)]
    finally:
        c.close()
    dep.stop()  # asserts exit code 0
    for p in dep.processes:
        assert p.stdout_after_listening() == []


# ---------------------------------------------------------------------------
# Secrets in --help, password hashes
# ---------------------------------------------------------------------------

# Variables holding secrets; clap prints a variable's value in --help
# unless the flag hides it.
SECRET_VARIABLES = ("SEGLAKE_USERS", "SEGLAKE_S3_SECRET_ACCESS_KEY", "SEGLAKE_CLUSTER_SECRET")


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_help_does_not_print_secret_variables(seglake_bin, command):
    markers = {name: f"marker-{i}-do-not-print" for i, name in enumerate(SECRET_VARIABLES)}
    env = {name: f"alice:{marker}" if name == "SEGLAKE_USERS" else marker for name, marker in markers.items()}
    res = subprocess.run(
        [str(seglake_bin), command, "--help"],
        env=h.child_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    for name, marker in markers.items():
        assert marker not in out, f"{name}'s value is printed by `{command} --help`"
    if command == "serve":
        assert "SEGLAKE_USERS" in out  # the flag is there, its value is not


def independent_hash(password: str) -> str:
    """An argon2id PHC string made by argon2-cffi (cheap parameters: the
    debug build verifies it on every test login that misses the cache)."""
    return PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(password)


def test_hash_password_command(seglake_bin):
    """`seglake hash-password` reads stdin and prints a hash that an
    independent argon2 implementation verifies."""
    res = subprocess.run(
        [str(seglake_bin), "hash-password"],
        env=h.child_env(),
        input="correct horse, battery:staple\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    phc = res.stdout.strip()
    assert phc.startswith("$argon2id$v=19$"), phc
    assert "correct horse" not in res.stdout + res.stderr
    assert PasswordHasher().verify(phc, "correct horse, battery:staple")
    with pytest.raises(Exception):
        PasswordHasher().verify(phc, "correct horse")


def test_argon2_hashes_in_user_flag_and_variable(launch, tmp_path):
    """`--user NAME:$argon2id$...` and the same in SEGLAKE_USERS next to a
    clear password (the hash holds commas: m=...,t=...,p=...)."""
    password = "tr0ub4dor&3"
    phc = independent_hash(password)
    assert ",t=1," in phc
    for start in (
        lambda: launch.start(tmp_path / "a", args=["--user", f"alice:{phc}"]),
        lambda: launch.start(tmp_path / "b", env={"SEGLAKE_USERS": f"alice:{phc},bob:pw"}),
    ):
        dep = start()
        try:
            c = dep.connect("alice", password)
            try:
                assert h.rows(h.run_sql(c, "SELECT 5 AS five")) == [(5,)]
            finally:
                c.close()
            for user, wrong in [("alice", "tr0ub4dor"), ("alice", phc), ("seglake", "seglake")]:
                with pytest.raises(adbc_driver_manager.Error) as ei:
                    dep.connect(user, wrong).close()
                assert h.status_of(ei.value) == AdbcStatusCode.UNAUTHENTICATED, str(ei.value)
            if "SEGLAKE_USERS" in dep.env:
                c = dep.connect("bob", "pw")
                try:
                    assert h.rows(h.run_sql(c, "SELECT 6")) == [(6,)]
                finally:
                    c.close()
        finally:
            dep.stop()


# ---------------------------------------------------------------------------
# Sessions: idle expiry, lifetime, per-user cap
# ---------------------------------------------------------------------------

IDLE_SECS = 1
LIFETIME_SECS = 3


@pytest.fixture(scope="module")
def short_sessions(launch, tmp_path_factory):
    dep = launch.start(
        tmp_path_factory.mktemp("short-sessions"),
        args=[
            "--user",
            "alice:pw",
            "--session-idle-timeout-secs",
            str(IDLE_SECS),
            "--session-max-lifetime-secs",
            str(LIFETIME_SECS),
        ],
    )
    yield dep
    dep.stop()


def flight_login(dep, user: str, password: str):
    """A pyarrow.flight client and the call options carrying the bearer
    token its handshake returned."""
    client = fl.FlightClient(dep.uri)
    header = client.authenticate_basic_token(user, password)
    assert header[1].startswith(b"Bearer "), header
    return client, fl.FlightCallOptions(headers=[header], timeout=60)


def call_with_token(client, options):
    """One authenticated call (ListActions)."""
    return list(client.list_actions(options))


def wait_until(deadline: float) -> None:
    """Sleeps until the monotonic clock passes `deadline` (the condition
    here is time itself: the token must stay unused until then)."""
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(left)


def test_idle_session_is_refused_on_its_next_use(short_sessions):
    client, options = flight_login(short_sessions, "alice", "pw")
    try:
        assert call_with_token(client, options)
        # The server marked the session used before this answer arrived:
        # by the deadline it has been idle for longer than the timeout.
        last_use = time.monotonic()
        wait_until(last_use + IDLE_SECS + 0.2)
        with pytest.raises(fl.FlightUnauthenticatedError) as ei:
            call_with_token(client, options)
        assert "session expired" in str(ei.value), str(ei.value)
        # Gone for good, and a new login works.
        with pytest.raises(fl.FlightUnauthenticatedError):
            call_with_token(client, options)
        client2, options2 = flight_login(short_sessions, "alice", "pw")
        assert call_with_token(client2, options2)
        client2.close()
    finally:
        client.close()


def test_busy_session_ends_at_its_lifetime(short_sessions):
    before_login = time.monotonic()
    client, options = flight_login(short_sessions, "alice", "pw")
    after_login = time.monotonic()
    try:
        # Used more often than the idle timeout, until shortly before the
        # lifetime (counted from before the login: the server's clock
        # started later): alive.
        while time.monotonic() < before_login + LIFETIME_SECS - 0.6:
            assert call_with_token(client, options)
            time.sleep(IDLE_SECS / 3)
        # Past the lifetime (counted from after the login): refused, though
        # the last use is recent.
        wait_until(after_login + LIFETIME_SECS + 0.2)
        with pytest.raises(fl.FlightUnauthenticatedError) as ei:
            call_with_token(client, options)
        assert "session expired" in str(ei.value), str(ei.value)
    finally:
        client.close()


@pytest.fixture(scope="module")
def limited(launch, tmp_path_factory):
    """A server with small limits: 1 MiB DoPut messages, 2 sessions per user."""
    dep = launch.start(
        tmp_path_factory.mktemp("limited"),
        args=["--user", "alice:pw", "--user", "bob:pw", "--max-message-mb", "1", "--max-sessions-per-user", "2"],
    )
    yield dep
    dep.stop()


def test_session_cap_per_user_closes_the_least_recently_used(limited):
    first = limited.connect("alice", "pw")
    second = limited.connect("alice", "pw")
    try:
        assert h.rows(h.run_sql(second, "SELECT 2")) == [(2,)]
        third = limited.connect("alice", "pw")  # closes `first`'s session
        try:
            with pytest.raises(adbc_driver_manager.Error) as ei:
                h.run_sql(first, "SELECT 1")
            assert h.status_of(ei.value) == AdbcStatusCode.UNAUTHENTICATED, str(ei.value)
            for c, n in [(second, 2), (third, 3)]:
                assert h.rows(h.run_sql(c, f"SELECT {n}")) == [(n,)]
            # Another user is not affected by alice's sessions.
            b = limited.connect("bob", "pw")
            try:
                assert h.rows(h.run_sql(b, "SELECT 4")) == [(4,)]
            finally:
                b.close()
        finally:
            third.close()
    finally:
        second.close()
        try:
            first.close()
        except adbc_driver_manager.Error:
            pass


# ---------------------------------------------------------------------------
# Message sizes
# ---------------------------------------------------------------------------

MIB = 1024 * 1024


def assert_still_serving(dep, user="bob"):
    c = dep.connect(user, "pw")
    try:
        assert h.rows(h.run_sql(c, "SELECT 42")) == [(42,)]
    finally:
        c.close()


def test_oversized_command_is_refused_unread(limited):
    """A GetFlightInfo command above the limit: tonic refuses it from its
    length prefix (OUT_OF_RANGE, which pyarrow reports as invalid)."""
    client, options = flight_login(limited, "bob", "pw")
    try:
        descriptor = fl.FlightDescriptor.for_command(b"\0" * (2 * MIB))
        with pytest.raises(pa.ArrowException) as ei:
            client.get_flight_info(descriptor, options)
        message = str(ei.value)
        assert "decoded message length too large" in message, message
        assert "out-of-range" in message.lower() or "out_of_range" in message.lower(), message
    finally:
        client.close()
    assert_still_serving(limited)


def test_oversized_ingest_message_is_refused(limited, unique):
    t = unique("big")
    small = pa.table({"x": pa.array(range(MIB // 16), pa.int64())})  # 0.5 MiB
    big = pa.table({"x": pa.array(range(MIB // 4), pa.int64())})  # 2 MiB, one batch
    c = limited.connect("bob", "pw")
    try:
        cur = c.cursor()
        try:
            assert cur.adbc_ingest(t, small, mode="create") == small.num_rows
            with pytest.raises(adbc_driver_manager.Error) as ei:
                cur.adbc_ingest(t, big, mode="append")
            assert "decoded message length too large" in str(ei.value), str(ei.value)
        finally:
            cur.close()
    finally:
        c.close()
    assert_still_serving(limited)
    c = limited.connect("bob", "pw")
    try:
        assert h.rows(h.run_sql(c, f"SELECT count(*) FROM {t}")) == [(small.num_rows,)]
    finally:
        c.close()


def test_prepared_parameter_rows_are_bounded(limited, unique):
    """executemany with more parameter rows than one call may bind (100 000):
    refused before any row runs."""
    t = unique("params")
    c = limited.connect("bob", "pw")
    try:
        h.run_command(c, f"CREATE TABLE {t} (x BIGINT)")
        cur = c.cursor()
        try:
            with pytest.raises(adbc_driver_manager.Error) as ei:
                cur.executemany(f"INSERT INTO {t} VALUES (?)", [(i,) for i in range(100_001)])
            # ADBC has no RESOURCE_EXHAUSTED status: it reports the gRPC
            # code in the message.
            message = str(ei.value)
            assert "(ResourceExhausted;" in message, message
            assert "limited to 100000 rows" in message, message
        finally:
            cur.close()
        assert h.rows(h.run_sql(c, f"SELECT count(*) FROM {t}")) == [(0,)]
    finally:
        c.close()
    assert_still_serving(limited)


# ---------------------------------------------------------------------------
# Failed logins: throttled per user and address, logged escaped
# ---------------------------------------------------------------------------

FREE_FAILURES_PER_USER = 5


@pytest.fixture(scope="module")
def throttled(launch, tmp_path_factory):
    dep = launch.start(
        tmp_path_factory.mktemp("throttled"),
        args=[
            "--user", "alice:right", "--user", "bob:right", "--user", "carol:right",
            "--collect", "127.0.0.1:0",
        ],
    )
    yield dep
    dep.stop()


def test_failed_logins_are_throttled(throttled):
    for _ in range(FREE_FAILURES_PER_USER):
        with pytest.raises(adbc_driver_manager.Error) as ei:
            throttled.connect("alice", "wrong").close()
        assert h.status_of(ei.value) == AdbcStatusCode.UNAUTHENTICATED
        assert "too many failed logins" not in str(ei.value)
    last_failure = time.monotonic()
    # The right password is now refused without being checked.
    with pytest.raises(adbc_driver_manager.Error) as ei:
        throttled.connect("alice", "right").close()
    assert h.status_of(ei.value) == AdbcStatusCode.UNAUTHENTICATED
    assert "too many failed logins" in str(ei.value), str(ei.value)
    # Another user from the same address still logs in.
    b = throttled.connect("bob", "right")
    try:
        assert h.rows(h.run_sql(b, "SELECT 1")) == [(1,)]
    finally:
        b.close()
    # The first delay is one second: after it, the right password works.
    wait_until(last_failure + 1.2)
    a = throttled.connect("alice", "right")
    try:
        assert h.rows(h.run_sql(a, "SELECT 2")) == [(2,)]
    finally:
        a.close()


def test_collector_logins_are_throttled_too(throttled):
    url = f"{throttled.collector_url}/v1/events"

    def post(user, password):
        return cc.request(url, method="POST", body=b"[]", authorization=cc.basic(user, password))

    for _ in range(FREE_FAILURES_PER_USER):
        status, _, body = post("carol", "wrong")
        assert status == 401, body
    status, headers, body = post("carol", "right")
    assert status == 429, body
    assert int(headers["Retry-After"]) >= 1, headers
    assert "too many failed logins" in body["error"], body
    # The count is the same over Flight SQL.
    with pytest.raises(adbc_driver_manager.Error) as ei:
        throttled.connect("carol", "right").close()
    assert "too many failed logins" in str(ei.value), str(ei.value)
    status, _, body = post("bob", "right")
    assert status == 200 and body == {"accepted": 0, "duplicates": 0, "forgotten": 0}, body


def test_failed_login_is_logged_escaped(throttled):
    """A user name with a newline cannot forge a log line; the password is
    never logged."""
    # No ':' in the name: Basic credentials split at the first one.
    forged = "mallory\nINFO login user=admin"
    with pytest.raises(adbc_driver_manager.Error):
        throttled.connect(forged, "pw-never-logged").close()
    log = throttled.endpoint.log_path.read_text(errors="replace")
    assert "pw-never-logged" not in log
    refused = [line for line in log.splitlines() if "login refused" in line]
    assert any(r'user="mallory\nINFO login user=admin"' in line for line in refused), refused
    assert not any(line.startswith("INFO login") for line in log.splitlines())
