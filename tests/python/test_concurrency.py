"""Several connections at once."""

import threading
from concurrent.futures import ThreadPoolExecutor

import adbc_driver_manager
import pyarrow as pa
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

QUERIES = [
    "SELECT country, count(*) FROM profiles GROUP BY 1",
    "SELECT source, count(*), sum(amount) FROM events WHERE event_type = 'purchase' GROUP BY 1",
    "SELECT p.country, count(DISTINCT e.profile_id) FROM events e JOIN profiles p ON e.profile_id = p.profile_id GROUP BY 1",
    "SELECT channel, count(DISTINCT profile_id) FROM events GROUP BY 1",
    "SELECT id_type, count(*) FROM identifiers GROUP BY 1",
]

TIMEOUT_S = 120


def run_together(n: int, fn):
    """Runs fn(i, barrier) on n threads that start together; returns results in order."""
    barrier = threading.Barrier(n, timeout=TIMEOUT_S)
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(fn, i, barrier) for i in range(n)]
        return [f.result(timeout=TIMEOUT_S) for f in futures]


def test_concurrent_queries(server, duck):
    expected = {q: duck.rows(q) for q in QUERIES}
    conns = [server.connect() for _ in range(2)]
    try:
        def work(i, barrier):
            barrier.wait()
            out = []
            for round_ in range(3):
                for q in QUERIES[i:] + QUERIES[:i]:
                    out.append((q, h.rows(h.run_sql(conns[i], q))))
            return out

        for results in run_together(2, work):
            assert len(results) == 3 * len(QUERIES)
            for q, got in results:
                h.assert_rows_equal(got, expected[q])
    finally:
        for c in conns:
            c.close()


def test_ingest_is_visible_to_another_connection(connect, unique):
    a, b = connect(), connect()
    t = unique()
    data = pa.table({"id": pa.array(range(1000), pa.int64()), "s": pa.array([str(i) for i in range(1000)])})
    with a.cursor() as cur:
        cur.adbc_ingest(t, data, mode="create")
    # b never saw the table before; it must see it right away, rows and metadata.
    assert h.rows(h.run_sql(b, f"SELECT count(*), sum(id) FROM {t}")) == [(1000, 999 * 1000 // 2)]
    assert b.adbc_get_table_schema(t).names == ["id", "s"]
    with a.cursor() as cur:
        cur.adbc_ingest(t, data.slice(0, 10), mode="append")
    assert h.rows(h.run_sql(b, f"SELECT count(*) FROM {t}")) == [(1010,)]
    with b.cursor() as cur:
        cur.adbc_ingest(t, data.slice(0, 1), mode="replace")
    assert h.rows(h.run_sql(a, f"SELECT id, s FROM {t}")) == [(0, "0")]
    h.run_command(b, f"DROP TABLE {t}")
    with pytest.raises(adbc_driver_manager.Error) as ei:
        h.run_sql(a, f"SELECT * FROM {t}")
    assert h.status_of(ei.value) == AdbcStatusCode.NOT_FOUND


def test_concurrent_ddl_and_appends(server, duck, unique):
    """Catalog updates from 4 connections at once all commit (optimistic
    concurrency on the catalog log), and concurrent appends all land."""
    n = 4
    names = [unique() for _ in range(n)]
    shared = unique()
    conns = [server.connect() for _ in range(n)]
    try:
        with conns[0].cursor() as cur:
            # One seed row: the ADBC Go driver sends no DoPut message at all for
            # an empty reader (so no command), whatever the server.
            cur.adbc_ingest(shared, pa.table({"worker": pa.array([-1], pa.int64()), "i": pa.array([0], pa.int64())}),
                            mode="create")

        def work(i, barrier):
            c = conns[i]
            barrier.wait()
            h.run_command(c, f"CREATE EXTERNAL TABLE {names[i]} STORED AS PARQUET LOCATION 'demo/profiles'")
            with c.cursor() as cur:
                for round_ in range(3):
                    cur.adbc_ingest(shared, pa.table({"worker": [i] * 100, "i": list(range(100))}), mode="append")
            return True

        assert run_together(n, work) == [True] * n
        profiles = duck.scalar("SELECT count(*) FROM profiles")
        for name in names:
            assert h.rows(h.run_sql(conns[0], f"SELECT count(*) FROM {name}")) == [(profiles,)]
        assert h.rows(h.run_sql(conns[0], f"SELECT worker, count(*), sum(i) FROM {shared} GROUP BY 1 ORDER BY 1")) == [
            (-1, 1, 0)
        ] + [(i, 300, 3 * 4950) for i in range(n)]
        for name in names + [shared]:
            h.run_command(conns[0], f"DROP TABLE {name}")
    finally:
        for c in conns:
            c.close()


def test_concurrent_create_append(server, unique):
    """Both ingests start (schema and first batch sent) before either ends,
    so both find the table missing; both must still succeed."""
    t = unique()
    conns = [server.connect() for _ in range(2)]
    schema = pa.schema([("worker", pa.int64()), ("i", pa.int64())])
    first_sent = threading.Barrier(2, timeout=30)

    def batches(worker):
        yield pa.record_batch([pa.array([worker] * 100, pa.int64()), pa.array(range(100), pa.int64())], schema=schema)
        # Wait until the other ingest has sent its first batch too.
        first_sent.wait()
        yield pa.record_batch([pa.array([worker] * 100, pa.int64()), pa.array(range(100, 200), pa.int64())],
                              schema=schema)

    def work(i, barrier):
        barrier.wait()
        with conns[i].cursor() as cur:
            return cur.adbc_ingest(t, pa.RecordBatchReader.from_batches(schema, batches(i)), mode="create_append")

    try:
        try:
            results = run_together(2, work)
        finally:
            first_sent.abort()
        assert results == [200, 200]
        assert h.rows(h.run_sql(conns[0], f"SELECT worker, count(*) FROM {t} GROUP BY 1 ORDER BY 1")) == [
            (0, 200), (1, 200)
        ]
    finally:
        h.run_command(conns[0], f"DROP TABLE IF EXISTS {t}")
        for c in conns:
            c.close()


def test_catalog_commits_under_contention(launch, make_demo):
    """Two servers on one warehouse, two connections each, creating and
    dropping their own schemas as fast as they can: no statement may fail,
    and nothing may be left behind. Stops at the first failure (the bug
    shows within about a hundred commits), else after 2000 commits."""
    wh = make_demo(profiles=50)
    deps = [launch.start(wh) for _ in range(2)]
    conns = [d.connect() for d in deps for _ in range(2)]
    try:
        commits, errors = h.catalog_contention(conns, max_commits=2000, max_seconds=60)
        assert errors == [], f"after {commits} successful commits"
        objs = conns[0].adbc_get_objects(depth="db_schemas").read_all().to_pylist()
        left = [s["db_schema_name"] for s in objs[0]["catalog_db_schemas"] if s["db_schema_name"].startswith("c")]
        assert left == []
        assert commits >= 100
    finally:
        for c in conns:
            c.close()
        for d in deps:
            d.stop()
