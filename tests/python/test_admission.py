"""Admission control through the real client (docs/server.md, "Limits"): with
one slot and a queue of two, a long query runs, the next statements wait
`queued`, the one past the queue is refused at once with RESOURCE_EXHAUSTED;
system.queries, SHOW, SET and KILL QUERY still answer, and the collector still
commits (its reserved share); killing the running query lets the queued ones
run to their right results. Fairness across users is covered by the unit
tests of engine/src/admission.rs."""

from __future__ import annotations

import random
import threading
import time
import uuid

import adbc_driver_manager
from adbc_driver_manager import AdbcStatusCode

import collector_client as cc
import seglake_harness as h

# Counts a range far too long to finish: runs until stopped.
ENDLESS = "SELECT count(*) FROM generate_series(1, 10000000000)"
# Statements with a known answer, computed here.
SUM = "SELECT sum(value) FROM generate_series(1, 1000)"
SUM_RESULT = 1000 * 1001 // 2
PRODUCT = "SELECT 6 * 7"
REFUSED = "SELECT 'past the queue'"

ARGS = (
    "--max-running-queries", "1",
    "--max-queued-queries", "2",
    "--collect", "127.0.0.1:0",
    "--collect-flush-ms", "30",
)


def start(conn, sql):
    """Runs `sql` on `conn` in a thread; the dict gets its rows or its error."""
    outcome = {}

    def run():
        try:
            outcome["rows"] = h.rows(h.run_sql(conn, sql))
        except adbc_driver_manager.Error as e:
            outcome["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, outcome


def in_state(conn, sql: str, state: str):
    """(query_id, started_at IS NULL) of `sql` once system.queries shows it in `state`."""
    return h.wait_for(
        lambda: h.rows(h.run_sql(
            conn,
            "SELECT query_id, started_at IS NULL FROM system.queries WHERE sql = ? AND state = ?",
            [sql, state],
        )),
        30, f"'{sql}' to be {state}",
    )[0]


def test_a_saturated_server_queues_refuses_and_still_serves_admins_and_the_collector(launch, tmp_path):
    dep = launch.start(tmp_path / "wh", args=ARGS)
    conns = []

    def connect():
        c = dep.connect()
        conns.append(c)
        return c

    try:
        watcher = connect()
        runner, runner_outcome = start(connect(), ENDLESS)
        running_id, not_started = in_state(watcher, ENDLESS, "running")
        assert not not_started

        # The next two wait for the slot, in the queue.
        queued = [start(connect(), sql) for sql in (SUM, PRODUCT)]
        for sql in (SUM, PRODUCT):
            _, not_started = in_state(watcher, sql, "queued")
            assert not_started, f"a queued statement has no start time: {sql}"

        # The queue is full: the next one is refused at once.
        refused = connect()
        began = time.monotonic()
        try:
            h.run_sql(refused, REFUSED)
            raise AssertionError("a statement past the queue ran")
        except adbc_driver_manager.Error as e:
            # ADBC has no RESOURCE_EXHAUSTED status: it reports the gRPC
            # code in the message.
            message = str(e)
            assert "(ResourceExhausted;" in message, message
            assert "--max-queued-queries 2" in message and "--max-running-queries 1" in message, message
        assert time.monotonic() - began < 10, "the refusal waited"
        assert h.rows(h.run_sql(
            watcher, "SELECT state FROM system.queries WHERE sql = ?", [REFUSED]
        )) == [("failed",)]

        # What needs no slot still answers: system.queries, SHOW, SET.
        states = dict(h.rows(h.run_sql(
            watcher, "SELECT sql, state FROM system.queries WHERE finished_at IS NULL AND sql IN (?, ?, ?)",
            [ENDLESS, SUM, PRODUCT],
        )))
        assert states == {ENDLESS: "running", SUM: "queued", PRODUCT: "queued"}, states
        h.run_command(watcher, "SET datafusion.execution.batch_size = 1000")
        assert h.rows(h.run_sql(watcher, "SHOW datafusion.execution.batch_size")) == [
            ("datafusion.execution.batch_size", "1000")
        ]

        # The collector still commits: its reserved share.
        p = f"t{uuid.uuid4().hex[:10]}"
        events = cc.make_events(random.Random(3), p, 12)
        status, _, body = cc.post_events(dep.collector_url, events)
        assert status == 200 and body == {"accepted": 12, "duplicates": 0, "forgotten": 0}, body
        assert runner.is_alive() and all(t.is_alive() for t, _ in queued), "the slot was freed meanwhile"

        # Killing the running query lets the queued ones run.
        h.run_command(watcher, f"KILL QUERY '{running_id}'")
        runner.join(timeout=30)
        assert not runner.is_alive()
        assert h.status_of(runner_outcome["error"]) == AdbcStatusCode.CANCELLED, runner_outcome
        for t, _ in queued:
            t.join(timeout=60)
            assert not t.is_alive(), "a queued statement never ran"
        assert queued[0][1] == {"rows": [(SUM_RESULT,)]}, queued[0][1]
        assert queued[1][1] == {"rows": [(42,)]}, queued[1][1]

        # What the collector committed while the server was saturated.
        committed = h.rows(h.run_sql(
            watcher, "SELECT count(*) FROM events WHERE profile_id LIKE ?", [f"{p}-%"]
        ))
        assert committed == [(12,)], committed
        # And the slot is free again.
        assert h.rows(h.run_sql(watcher, REFUSED)) == [("past the queue",)]
    finally:
        for c in conns:
            c.close()
        dep.stop()
