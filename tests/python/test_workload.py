"""Workload management through the real client: a long query is listed in
system.queries, killed from a second connection and stops using CPU at
once; a statement past its timeout answers DEADLINE_EXCEEDED
(docs/sql.md, "Statements in progress")."""

import os
import threading
import time
from pathlib import Path

import adbc_driver_manager
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

# Killing must stop the work on the workers too.
TOPOLOGIES = h.ALL_TOPOLOGIES

# Sums a range far too long to finish: runs until stopped.
ENDLESS = "SELECT sum(value) FROM generate_series(1, 1000000000000)"


def cpu_seconds(dep) -> float:
    """User and system CPU time of every process of the deployment."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in dep.processes:
        fields = Path(f"/proc/{p.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def cpu_over(dep, seconds: float) -> float:
    """CPU time the deployment uses over the next `seconds` (a measurement
    window, not a wait for something to happen)."""
    before = cpu_seconds(dep)
    time.sleep(seconds)
    return cpu_seconds(dep) - before


def start(conn, sql):
    """Runs `sql` on `conn` in a thread; the dict gets its error."""
    outcome = {}

    def run():
        try:
            h.run_sql(conn, sql)
            outcome["finished"] = True
        except adbc_driver_manager.Error as e:
            outcome["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, outcome


def running_query_id(conn) -> str:
    """The query_id of ENDLESS, once system.queries shows it running."""
    return h.wait_for(
        lambda: h.rows(h.run_sql(
            conn, "SELECT query_id FROM system.queries WHERE sql = ? AND state = 'running'", [ENDLESS]
        )),
        30, "the query to run",
    )[0][0]


def test_a_long_query_is_listed_killed_and_stops_using_cpu(server, connect):
    runner, watcher = connect(), connect()
    thread, outcome = start(runner, ENDLESS)
    query_id = running_query_id(watcher)
    row = h.rows(h.run_sql(
        watcher,
        "SELECT user_name, kind, client_address IS NOT NULL, finished_at IS NULL FROM system.queries WHERE query_id = ?",
        [query_id],
    ))
    assert row == [(h.DEFAULT_USER, "query", True, True)], row
    busy = cpu_over(server, 1.0)
    assert busy > 0.5, f"the query should keep a core busy, used {busy:.2f} s of CPU in 1 s"

    h.run_command(watcher, f"KILL QUERY '{query_id}'")
    thread.join(timeout=10)
    assert not thread.is_alive(), "the killed query's client is still waiting"
    assert "error" in outcome, outcome
    assert h.status_of(outcome["error"]) == AdbcStatusCode.CANCELLED, outcome["error"]
    assert "killed by" in str(outcome["error"])
    # Within a second of the kill the work is gone: the processes idle.
    time.sleep(1.0)  # the one second the work has to stop
    idle = cpu_over(server, 2.0)
    assert idle < 0.3, f"{idle:.2f} s of CPU in 2 s after the kill"
    state = h.rows(h.run_sql(
        watcher, "SELECT state, error LIKE '%killed by%' FROM system.queries WHERE query_id = ?", [query_id]
    ))
    assert state == [("cancelled", True)], state


def test_a_statement_past_its_timeout_answers_deadline_exceeded(connect):
    conn = connect()
    h.run_command(conn, "SET seglake.statement_timeout = '300ms'")
    started = time.monotonic()
    try:
        h.run_sql(conn, ENDLESS)
        raise AssertionError("the endless query finished")
    except adbc_driver_manager.Error as e:
        assert h.status_of(e) == AdbcStatusCode.TIMEOUT, e
    took = time.monotonic() - started
    assert 0.3 <= took < 10, took
    rows = h.rows(h.run_sql(
        conn, "SELECT state FROM system.queries WHERE sql = ? ORDER BY queued_at DESC LIMIT 1", [ENDLESS]
    ))
    assert rows == [("timed_out",)], rows
    # A bad duration is the client's error.
    try:
        h.run_command(conn, "SET seglake.statement_timeout = 'soon'")
        raise AssertionError("accepted")
    except adbc_driver_manager.Error as e:
        assert h.status_of(e) == AdbcStatusCode.INVALID_ARGUMENT, e


def test_users_see_and_kill_only_their_own_statements(server, connect, unique):
    root = connect()
    user, password = unique("u"), "pw-workload-1"
    h.run_command(root, f"CREATE USER {user} PASSWORD '{password}'")
    other = connect(user, password)
    thread, outcome = start(root, ENDLESS)
    query_id = running_query_id(root)
    assert h.rows(h.run_sql(other, "SELECT count(*) FROM system.queries WHERE query_id = ?", [query_id])) == [(0,)]
    try:
        h.run_command(other, f"KILL QUERY '{query_id}'")
        raise AssertionError("another user's statement was killed")
    except adbc_driver_manager.Error as e:
        assert h.status_of(e) == AdbcStatusCode.UNAUTHORIZED, e
    assert thread.is_alive()
    h.run_command(root, f"KILL QUERY '{query_id}'")
    thread.join(timeout=10)
    assert h.status_of(outcome["error"]) == AdbcStatusCode.CANCELLED
