"""The catalog lives in the warehouse: a restarted server sees the same tables."""

from pathlib import Path

import adbc_driver_manager
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h
from conftest import Duck, duckdb_over


def table_names(conn, schema: str) -> set[str]:
    objs = conn.adbc_get_objects(depth="tables", db_schema_filter=schema).read_all().to_pylist()
    schemas = objs[0]["catalog_db_schemas"] or []
    return {t["table_name"] for s in schemas for t in (s["db_schema_tables"] or [])}


def snapshot(conn, queries):
    return {q: h.rows(h.run_sql(conn, q)) for q in queries}


def test_restart_keeps_the_catalog(launch, make_demo):
    wh = Path(make_demo(profiles=500))
    duck = Duck(duckdb_over(wh))
    data = pa.table({"k": pa.array(["a", "b", None, "d"]), "v": pa.array([1.5, None, 3.0, -4.25])})
    more = pa.table({"k": pa.array(["e"]), "v": pa.array([5.0])})

    dep = launch.start(wh)
    c = dep.connect()
    with c.cursor() as cur:
        cur.adbc_ingest("kept", data, mode="create")
        cur.adbc_ingest("kept", more, mode="append")
    h.run_command(c, "CREATE SCHEMA mart")
    h.run_command(c, "CREATE EXTERNAL TABLE mart.people STORED AS PARQUET LOCATION 'demo/profiles'")
    h.run_command(c, "CREATE EXTERNAL TABLE mart.ev STORED AS PARQUET PARTITIONED BY (event_date) LOCATION 'demo/events'")
    with c.cursor() as cur:
        cur.adbc_ingest("scores", data, mode="create", db_schema_name="mart")
    h.run_command(c, "CREATE EXTERNAL TABLE gone STORED AS PARQUET LOCATION 'demo/identifiers'")
    h.run_command(c, "DROP TABLE gone")
    queries = [
        "SELECT k, v FROM kept",
        "SELECT k, v FROM mart.scores",
        "SELECT country, count(*) FROM mart.people GROUP BY 1",
        "SELECT event_type, count(*) FROM mart.ev WHERE event_date >= '2026-09-01' GROUP BY 1",
        "SELECT country, count(*) FROM profiles GROUP BY 1",
    ]
    before = snapshot(c, queries)
    c.close()
    dep.stop()  # graceful: exit code 0

    # Independent expectations.
    h.assert_rows_equal(before["SELECT k, v FROM kept"], h.rows(pa.concat_tables([data, more])))
    h.assert_rows_equal(before["SELECT k, v FROM mart.scores"], h.rows(data))
    h.assert_rows_equal(before["SELECT country, count(*) FROM mart.people GROUP BY 1"],
                        duck.rows("SELECT country, count(*) FROM profiles GROUP BY 1"))
    h.assert_rows_equal(
        before["SELECT event_type, count(*) FROM mart.ev WHERE event_date >= '2026-09-01' GROUP BY 1"],
        duck.rows("SELECT event_type, count(*) FROM events WHERE event_date >= DATE '2026-09-01' GROUP BY 1"),
    )

    dep = launch.start(wh)
    c = dep.connect()
    try:
        assert {"kept", "profiles", "events", "identifiers"} <= table_names(c, "public")
        assert "gone" not in table_names(c, "public")
        assert table_names(c, "mart") == {"people", "ev", "scores"}
        after = snapshot(c, queries)
        for q in queries:
            h.assert_rows_equal(after[q], before[q])
        # Still writable after the restart.
        with c.cursor() as cur:
            cur.adbc_ingest("kept", more, mode="append")
        assert h.rows(h.run_sql(c, "SELECT count(*) FROM kept")) == [(6,)]
        h.run_command(c, "DROP SCHEMA mart CASCADE")
    finally:
        c.close()
    dep = launch.restart(dep)
    c = dep.connect()
    try:
        with pytest.raises(adbc_driver_manager.Error) as ei:
            h.run_sql(c, "SELECT * FROM mart.people")
        assert h.status_of(ei.value) == AdbcStatusCode.NOT_FOUND
        assert h.rows(h.run_sql(c, "SELECT count(*) FROM kept")) == [(6,)]
    finally:
        c.close()
    dep.stop()
    duck.con.close()


def test_serve_demo_installs_once(launch, tmp_path):
    """`serve --demo` fills an empty warehouse, and only an empty one."""
    wh = tmp_path / "wh"
    dep = launch.start(wh, args=["--demo", "--profiles", "300"])
    c = dep.connect()
    files = sorted((wh / "demo").rglob("*.parquet"))
    assert files
    profiles = pq.read_table(wh / "demo" / "profiles")
    assert h.rows(h.run_sql(c, "SELECT count(*) FROM profiles")) == [(profiles.num_rows,)] == [(300,)]
    with c.cursor() as cur:
        cur.adbc_ingest("mine", pa.table({"x": [1, 2, 3]}), mode="create")
    c.close()
    mtimes = {f: f.stat().st_mtime_ns for f in files}

    dep = launch.restart(dep)
    c = dep.connect()
    try:
        assert {f: f.stat().st_mtime_ns for f in sorted((wh / "demo").rglob("*.parquet"))} == mtimes
        assert h.rows(h.run_sql(c, "SELECT sum(x) FROM mine")) == [(6,)]
        assert h.rows(h.run_sql(c, "SELECT count(*) FROM profiles")) == [(300,)]
    finally:
        c.close()
    dep.stop()
