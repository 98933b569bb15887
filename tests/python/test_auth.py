"""Logging in, users, and graceful shutdown."""

import adbc_driver_manager
import pytest
from adbc_driver_manager import AdbcStatusCode

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
