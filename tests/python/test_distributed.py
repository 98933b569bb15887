"""Distributed execution: `seglake serve --workers ...` with 3 `seglake
worker` processes on 127.0.0.1:0 (started by the harness's "distributed"
topology; skipped when SEGLAKE_TEST_TOPOLOGIES leaves "distributed" out).

- work really runs on the workers (plan stages, system.workers counters);
- a worker killed (SIGKILL) in the middle of a query: the query is retried
  on the remaining workers or fails cleanly with UNAVAILABLE naming the
  worker, the coordinator keeps serving, the next query succeeds, the dead
  worker is marked down and taken back once it answers again.

Expected values come from DuckDB over the same Parquet files.
"""

from __future__ import annotations

import subprocess
import threading
import time

import adbc_driver_manager
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

# Results depend on where the plan runs: every topology of the run.
TOPOLOGIES = h.ALL_TOPOLOGIES

pytestmark = pytest.mark.skipif(
    "distributed" not in h.topologies(), reason="SEGLAKE_TEST_TOPOLOGIES leaves out distributed"
)

# Long enough (seconds on a debug build) to kill a worker while it runs;
# one result batch, produced at the end: a lost worker means a retry.
HEAVY_QUERY = (
    "SELECT count(*) AS pairs, CAST(sum(length(a.event_id) + length(b.event_id)) AS BIGINT) AS chars "
    "FROM events a JOIN events b ON a.profile_id = b.profile_id"
)


@pytest.fixture(scope="module")
def cluster_launch(seglake_bin, logs_dir):
    launcher = h.Launcher(seglake_bin, "distributed", logs_dir)
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture
def cluster(cluster_launch, demo_warehouse):
    """A fresh coordinator + 3 workers on the session's demo warehouse."""
    dep = cluster_launch.start(demo_warehouse)
    yield dep
    # Workers a test killed are gone; every other process must stop cleanly.
    dep.processes = [p for p in dep.processes if p.returncode is None]
    dep.stop()


def workers_table(conn) -> dict[str, dict]:
    t = h.run_sql(conn, "SELECT url, state, last_seen, queries, tasks, last_error FROM system.workers")
    return {r["url"]: r for r in t.to_pylist()}


def url_of(worker: h.ServerProcess) -> str:
    return f"{h.worker_url(worker.address)}/"


def test_work_runs_on_the_workers(cluster, duck):
    conn = cluster.connect()
    try:
        before = workers_table(conn)
        assert set(before) == {url_of(w) for w in cluster.workers}
        assert all(w["state"] == "up" and w["last_seen"] is not None for w in before.values()), before

        sql = (
            "SELECT p.country, e.channel, count(*) AS n, round(sum(coalesce(e.amount, 0)), 2) AS amount "
            "FROM events e JOIN profiles p ON p.profile_id = e.profile_id GROUP BY 1, 2"
        )
        h.assert_rows_equal(h.rows(h.run_sql(conn, sql)), duck.rows(sql), rel=1e-9, abs_=1e-6)

        plan = "\n".join(str(v) for r in h.rows(h.run_sql(conn, "EXPLAIN " + sql)) for v in r)
        assert "DistributedExec" in plan, plan
        assert "NetworkShuffleExec" in plan or "NetworkCoalesceExec" in plan, plan
        assert "Stage 1" in plan, plan
        # The demo tables are Delta: their scans are split over the tasks.
        assert "DistributedLeafExec" in plan and "DeltaTableScanExec" in plan, plan

        after = workers_table(conn)
        for url, w in after.items():
            assert w["queries"] > before[url]["queries"], (url, before[url], w)
            assert w["tasks"] > before[url]["tasks"], (url, before[url], w)

        analyzed = "\n".join(
            str(v)
            for r in h.rows(h.run_sql(conn, "EXPLAIN ANALYZE SELECT channel, count(*) FROM events GROUP BY 1"))
            for v in r
        )
        assert "Stage" in analyzed and "output_rows" in analyzed, analyzed
    finally:
        conn.close()


def test_parallelism_settings(cluster):
    conn = cluster.connect()
    try:
        sql = "EXPLAIN SELECT channel, count(*) FROM events GROUP BY 1"
        plan = "\n".join(str(v) for r in h.rows(h.run_sql(conn, sql)) for v in r)
        assert "tasks=3" in plan, plan
        h.run_command(conn, "SET distributed.max_tasks_per_stage = 2")
        plan = "\n".join(str(v) for r in h.rows(h.run_sql(conn, sql)) for v in r)
        assert "tasks=3" not in plan and "tasks=2" in plan, plan
    finally:
        conn.close()


def test_worker_killed_mid_query(cluster, cluster_launch, duck):
    expected = duck.rows(HEAVY_QUERY)
    victim = cluster.workers[0]
    victim_url = url_of(victim)
    watcher = cluster.connect()
    runner = cluster.connect()
    outcome: dict = {}

    def run():
        try:
            outcome["rows"] = h.rows(h.run_sql(runner, HEAVY_QUERY))
        except adbc_driver_manager.Error as e:  # a clean failure
            outcome["error"] = e
        finally:
            outcome["done"] = time.monotonic()

    try:
        tasks_before = workers_table(watcher)[victim_url]["tasks"]
        thread = threading.Thread(target=run, name="heavy-query")
        thread.start()
        # Kill the worker once the query has sent it a task.
        h.wait_for(lambda: workers_table(watcher)[victim_url]["tasks"] > tasks_before, 60, "a task on the victim")
        killed_at = time.monotonic()
        victim.kill()
        thread.join(timeout=300)
        assert not thread.is_alive(), "the query hangs after a worker died"
        assert outcome["done"] > killed_at, "the query ended before the worker was killed: make HEAVY_QUERY heavier"

        if "rows" in outcome:
            # Retried on the remaining workers.
            h.assert_rows_equal(outcome["rows"], expected)
        else:
            err = outcome["error"]
            assert h.status_of(err) in {AdbcStatusCode.IO}, err  # gRPC UNAVAILABLE
            assert victim.address in str(err), err

        # The coordinator keeps serving; the next query succeeds on the
        # remaining workers; the dead worker is down.
        assert cluster.processes[-1].alive()
        h.assert_rows_equal(h.rows(h.run_sql(watcher, HEAVY_QUERY)), expected)
        table = h.wait_for(
            lambda: (t := workers_table(watcher))[victim_url]["state"] == "down" and t, 10, "the victim marked down"
        )
        assert table[victim_url]["last_error"], table
        assert sorted(w["state"] for w in table.values()) == ["down", "up", "up"], table

        # A worker answering again on the same address is taken back.
        argv = cluster_launch.worker_argv(cluster.warehouse, victim.address)
        revived = h.ServerProcess(argv, h.child_env(cluster.env), victim.log_path.with_suffix(".revived.log"), "revived")
        cluster.processes.remove(victim)
        cluster.workers.remove(victim)
        cluster.processes.insert(0, revived)
        cluster.workers.insert(0, revived)
        h.wait_for(lambda: workers_table(watcher)[victim_url]["state"] == "up", 20, "the worker taken back")
        tasks = workers_table(watcher)[victim_url]["tasks"]
        h.assert_rows_equal(h.rows(h.run_sql(watcher, HEAVY_QUERY)), expected)
        assert workers_table(watcher)[victim_url]["tasks"] > tasks
    finally:
        watcher.close()
        runner.close()


def test_every_worker_gone_runs_on_the_coordinator(cluster, duck):
    conn = cluster.connect()
    try:
        for w in list(cluster.workers):
            w.kill()
            cluster.processes.remove(w)
        cluster.workers.clear()
        sql = "SELECT channel, count(*) FROM events GROUP BY 1"
        # The first query may fail (UNAVAILABLE) if it was planned before
        # the health check noticed; it must not hang, and later ones work.
        h.wait_for(
            lambda: all(w["state"] == "down" for w in workers_table(conn).values()), 10, "every worker down"
        )
        h.assert_rows_equal(h.rows(h.run_sql(conn, sql)), duck.rows(sql))
        plan = "\n".join(str(v) for r in h.rows(h.run_sql(conn, "EXPLAIN " + sql)) for v in r)
        assert "DistributedExec" not in plan, plan
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# Authenticated workers (the whole suite's distributed topology runs with
# SEGLAKE_CLUSTER_SECRET on coordinator and workers: see the harness)
# ---------------------------------------------------------------------------


def run_worker(seglake_bin, warehouse, listen: str, env=None, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(seglake_bin), "worker", "--warehouse", str(warehouse), "--listen", listen, *flags],
        env=h.child_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0"])
def test_a_worker_on_a_public_address_needs_a_secret(seglake_bin, tmp_path, listen):
    warehouse = tmp_path / "wh"
    res = run_worker(seglake_bin, warehouse, listen)
    assert res.returncode != 0, res.stderr
    assert f"refusing to listen on {listen} without a cluster secret" in res.stderr, res.stderr
    assert "listening on" not in res.stdout
    # Refused before the warehouse is opened: nothing was created.
    assert not warehouse.exists()


def test_a_bad_secret_stops_the_start_without_showing_it(seglake_bin, tmp_path):
    short = "tiny-secret"
    res = run_worker(seglake_bin, tmp_path / "wh", "127.0.0.1:0", {"SEGLAKE_CLUSTER_SECRET": short})
    assert res.returncode != 0, res.stderr
    assert "at least 16 characters" in res.stderr, res.stderr
    assert short not in res.stdout + res.stderr
    missing = tmp_path / "no-such-secret"
    res = run_worker(seglake_bin, tmp_path / "wh", "127.0.0.1:0", None, "--cluster-secret-file", str(missing))
    assert res.returncode != 0, res.stderr
    assert "cannot read the cluster secret file" in res.stderr, res.stderr


def test_only_a_coordinator_with_the_secret_uses_the_worker(cluster_launch, logs_dir, tmp_path):
    """A worker reading its secret from a file; a coordinator with the same
    secret (from the environment) uses it, one with another secret sees it
    unusable and says why. No log line shows the secret."""
    warehouse = str(tmp_path / "wh")
    secret_file = tmp_path / "cluster-secret"
    secret_file.write_text(h.CLUSTER_SECRET + "\n")
    other = "another-cluster-secret-0000"
    procs: list[h.ServerProcess] = []
    try:
        argv = [*cluster_launch.worker_argv(warehouse), "--cluster-secret-file", str(secret_file)]
        worker = h.ServerProcess(argv, h.child_env(), logs_dir / "auth-worker.log", "auth-worker")
        procs.append(worker)
        for name, secret in (("good", h.CLUSTER_SECRET), ("bad", other)):
            argv = [
                str(cluster_launch.binary),
                "serve",
                "--warehouse",
                warehouse,
                "--listen",
                "127.0.0.1:0",
                "--workers",
                h.worker_url(worker.address),
                "--cluster-ca",
                str(cluster_launch.certs.ca),
                *h.COORDINATOR_ARGS,
            ]
            env = h.child_env({"SEGLAKE_CLUSTER_SECRET": secret})
            procs.append(h.ServerProcess(argv, env, logs_dir / f"auth-{name}.log", f"auth-{name}"))
        good, bad = procs[1], procs[2]
        for coordinator, state in ((good, "up"), (bad, "unusable")):
            conn = h.connect(coordinator.uri)
            try:
                rows = h.wait_for(
                    lambda: [r for r in workers_table(conn).values() if r["state"] == state],
                    10,
                    f"the worker {state}",
                )
                if state == "unusable":
                    assert "the worker refused the cluster secret" in rows[0]["last_error"], rows
                else:
                    assert rows[0]["last_error"] is None, rows
                # Queries run (on the worker, or the coordinator alone).
                assert h.rows(h.run_sql(conn, "SELECT 40 + 2")) == [(42,)]
            finally:
                conn.close()
    finally:
        for p in reversed(procs):
            p.stop()
    for p in procs:
        text = p.log_path.read_text(errors="replace")
        assert h.CLUSTER_SECRET not in text and other not in text, p.log_path
