"""The query memory pool through the real binary and the ADBC driver: its
default size, a sort larger than the pool that spills and completes, a
query that cannot spill refused with RESOURCE_EXHAUSTED naming it (the
server goes on), `peak_memory_bytes`, and `datafusion.runtime.*` refused
to administrators."""

import re

import adbc_driver_manager
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

POOL_MB = 16
POOL = POOL_MB * 1024 * 1024
ROWS = 500_000
# A prime above ROWS: value * 7919 % P is a permutation of the values.
P = 500_009
# ~36 MB of 60-character keys, sorted in a 16 MiB pool.
SORT = (
    f"SELECT value, lpad(CAST(value * 7919 % {P} AS VARCHAR), 60, '0') AS k "
    f"FROM generate_series(1, {ROWS}) ORDER BY k"
)
# One list of 500,000 strings of 200 characters (100 MB): an aggregate
# without groups holds its state, it cannot spill it.
TOO_BIG = (
    f"SELECT cardinality(array_agg(lpad(CAST(value AS VARCHAR), 200, 'x'))) "
    f"FROM generate_series(1, {ROWS})"
)


# One partition: DataFusion 55 merges each partition's spilled runs with all
# the memory it can get, and with several their final merge can find a small
# pool empty.
@pytest.fixture(scope="module")
def small(launch, tmp_path_factory):
    dep = launch.start(tmp_path_factory.mktemp("memory"), args=("--memory-limit-mb", str(POOL_MB), "--target-partitions", "1"))
    yield dep
    dep.stop()


def log_of(process) -> str:
    return process.log_path.read_text(errors="replace")


def test_the_pool_size_is_logged_default_and_flag(launch, small, tmp_path):
    log = log_of(small.endpoint)
    assert re.search(r"query memory pool \(--memory-limit-mb\) pool=16\.0 MiB", log), log
    dep = launch.start(tmp_path)
    try:
        log = log_of(dep.endpoint)
        m = re.search(r"query memory pool: 70 %.* pool=([0-9.]+) MiB memory=([0-9.]+) MiB", log)
        assert m, log
        pool, memory = float(m.group(1)), float(m.group(2))
        assert memory > 0 and abs(pool - 0.7 * memory) <= 0.01 * memory, (pool, memory)
    finally:
        dep.stop()


def test_a_worker_takes_the_flag(seglake_bin, tmp_path):
    worker = h.ServerProcess(
        [
            str(seglake_bin),
            "worker",
            "--warehouse",
            str(tmp_path),
            "--listen",
            "127.0.0.1:0",
            "--memory-limit-mb",
            "32",
        ],
        h.child_env(),
        tmp_path / "worker.log",
        "memory-worker",
    )
    try:
        assert re.search(r"query memory pool \(--memory-limit-mb\) pool=32\.0 MiB", log_of(worker)), log_of(worker)
    finally:
        worker.stop()


def test_a_sort_larger_than_the_pool_spills_and_completes(small):
    conn = small.connect()
    try:
        table = h.run_sql(conn, SORT)
        assert table.nbytes > 2 * POOL, table.nbytes
        values = table.column("value").to_pylist()
        keys = table.column("k").to_pylist()
        assert keys == [f"{v * 7919 % P:060d}" for v in values]
        assert keys == sorted(keys)
        assert sorted(values) == list(range(1, ROWS + 1))
        peak = h.rows(
            h.run_sql(
                conn,
                "SELECT peak_memory_bytes FROM system.queries WHERE sql = ? AND state = 'finished'",
                (SORT,),
            )
        )
        assert len(peak) == 1, peak
        assert 0 < peak[0][0] <= POOL, peak
    finally:
        conn.close()


def test_a_query_too_big_is_refused_naming_itself_and_the_server_goes_on(small):
    conn = small.connect()
    try:
        with pytest.raises(adbc_driver_manager.Error) as ei:
            h.run_sql(conn, TOO_BIG)
        # ADBC has no RESOURCE_EXHAUSTED status: it reports the gRPC code
        # in the message.
        message = str(ei.value)
        assert "(ResourceExhausted;" in message, message
        rows = h.rows(h.run_sql(conn, "SELECT query_id, state FROM system.queries WHERE sql = ?", (TOO_BIG,)))
        assert len(rows) == 1 and rows[0][1] == "failed", rows
        assert f"statement {rows[0][0]}" in message, message
        # The server answers the next query, on this connection and a new one.
        assert h.rows(h.run_sql(conn, f"SELECT count(*) FROM generate_series(1, {ROWS})")) == [(ROWS,)]
        other = small.connect()
        assert h.rows(h.run_sql(other, "SELECT 41 + 1")) == [(42,)]
        other.close()
    finally:
        conn.close()
    assert small.alive()


@pytest.mark.parametrize(
    "sql",
    [
        "SET datafusion.runtime.memory_limit = '1G'",
        "RESET datafusion.runtime.memory_limit",
        "SET datafusion.runtime.temp_directory = '/tmp'",
    ],
)
def test_runtime_settings_are_refused_to_administrators(small, sql):
    conn = small.connect()  # a --user: an administrator
    try:
        with pytest.raises(adbc_driver_manager.Error) as ei:
            h.run_command(conn, sql)
        assert h.status_of(ei.value) == AdbcStatusCode.UNAUTHORIZED, f"{sql}: {ei.value}"
        assert "no-runtime-settings" in str(ei.value), str(ei.value)
        if "memory_limit" in sql:
            assert "--memory-limit-mb" in str(ei.value), str(ei.value)
        # The pool is still the server's 16 MiB: the big query still fails.
        with pytest.raises(adbc_driver_manager.Error) as ei:
            h.run_sql(conn, TOO_BIG)
        assert "(ResourceExhausted;" in str(ei.value), str(ei.value)
    finally:
        conn.close()
