"""DDL through execute: schemas, external tables, INSERT INTO, errors."""

from pathlib import Path

import adbc_driver_manager
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

PROFILES_BY_COUNTRY = "SELECT country, count(*) FROM {t} GROUP BY 1"


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


def expect_error(conn, sql: str, status: AdbcStatusCode) -> str:
    with pytest.raises(adbc_driver_manager.Error) as ei:
        h.run_command(conn, sql)
    assert h.status_of(ei.value) == status, f"{sql!r}: {ei.value}"
    return str(ei.value)


def shown_tables(conn, schema: str = "public") -> set[str]:
    shown = h.run_sql(conn, "SHOW TABLES").to_pylist()
    return {r["table_name"] for r in shown if r["table_schema"] == schema and r["table_catalog"] == "seglake"}


def info_schema_tables(conn, schema: str = "public") -> dict[str, str]:
    got = h.run_sql(
        conn,
        "SELECT table_name, table_type FROM information_schema.tables WHERE table_catalog = 'seglake' AND table_schema = ?",
        (schema,),
    )
    return dict(h.rows(got))


def test_external_table_relative_location(conn, connect, duck, demo_warehouse, unique):
    t = unique()
    before = files_under(demo_warehouse / "demo" / "profiles")
    h.run_command(conn, f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION 'demo/profiles'")
    expected = duck.rows(PROFILES_BY_COUNTRY.format(t="profiles"))
    h.assert_rows_equal(h.rows(h.run_sql(conn, PROFILES_BY_COUNTRY.format(t=t))), expected)
    assert conn.adbc_get_table_schema(t).names == conn.adbc_get_table_schema("profiles").names
    # Visible in SHOW TABLES, information_schema and GetTables, from another connection too.
    other = connect()
    for c in (conn, other):
        assert t in shown_tables(c)
        assert info_schema_tables(c).get(t) == "BASE TABLE"
    objs = other.adbc_get_objects(depth="tables", db_schema_filter="public", table_name_filter=t).read_all().to_pylist()
    assert [tb["table_name"] for tb in objs[0]["catalog_db_schemas"][0]["db_schema_tables"]] == [t]

    h.run_command(conn, f"DROP TABLE {t}")
    for c in (conn, other):
        assert t not in shown_tables(c)
        assert t not in info_schema_tables(c)
        with pytest.raises(adbc_driver_manager.Error) as ei:
            h.run_sql(c, f"SELECT count(*) FROM {t}")
        assert h.status_of(ei.value) == AdbcStatusCode.NOT_FOUND
    # Dropping an external table leaves its files alone.
    assert files_under(demo_warehouse / "demo" / "profiles") == before
    h.assert_rows_equal(h.rows(h.run_sql(conn, PROFILES_BY_COUNTRY.format(t="profiles"))), expected)


def test_external_table_schema_matches_the_files(conn, demo_warehouse, unique):
    t = unique()
    h.run_command(conn, f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION 'demo/profiles'")
    try:
        parquet = [f for f in files_under(demo_warehouse / "demo" / "profiles") if f.suffix == ".parquet" and "_delta_log" not in f.parts]
        expected = pq.read_schema(parquet[0])
        actual = conn.adbc_get_table_schema(t)
        assert [(f.name, f.type) for f in actual] == [(f.name, f.type) for f in expected]
        got = h.run_sql(conn, f"SELECT * FROM {t} LIMIT 1")
        assert [(f.name, f.type) for f in got.schema] == [(f.name, f.type) for f in expected]
    finally:
        h.run_command(conn, f"DROP TABLE {t}")


def test_external_table_absolute_path_and_file_url(conn, duck, demo_warehouse, unique):
    sql = "SELECT id_type, count(*), count(id_value) FROM {t} GROUP BY 1"
    expected = duck.rows(sql.format(t="identifiers"))
    root = Path(demo_warehouse).resolve()
    t1, t2 = unique(), unique()
    h.run_command(conn, f"CREATE EXTERNAL TABLE {t1} STORED AS PARQUET LOCATION '{root}/demo/identifiers'")
    h.run_command(conn, f"CREATE EXTERNAL TABLE {t2} STORED AS PARQUET LOCATION 'file://{root}/demo/identifiers/'")
    for t in (t1, t2):
        h.assert_rows_equal(h.rows(h.run_sql(conn, sql.format(t=t))), expected)
        h.run_command(conn, f"DROP TABLE {t}")


def test_partitioned_external_table(conn, duck, unique):
    t = unique()
    # Without declared columns, the partition column is a string.
    h.run_command(conn, f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET PARTITIONED BY (event_date) LOCATION 'demo/events'")
    schema = conn.adbc_get_table_schema(t)
    events = conn.adbc_get_table_schema("events")
    assert schema.names == events.names
    assert schema.field("event_date").type == pa.string()
    sql = "SELECT event_date, count(*), sum(amount) FROM {t} WHERE event_date >= '2026-10-01' GROUP BY 1"
    expected = [
        (d.isoformat(), n, s)
        for d, n, s in duck.rows(sql.replace("event_date >= '2026-10-01'", "event_date >= DATE '2026-10-01'").format(t="events"))
    ]
    assert len(expected) == 32
    h.assert_rows_equal(h.rows(h.run_sql(conn, sql.format(t=t))), expected)
    # Partition pruning must not change counts: whole table too.
    assert h.rows(h.run_sql(conn, f"SELECT count(*) FROM {t}")) == [(duck.scalar("SELECT count(*) FROM events"),)]
    h.run_command(conn, f"DROP TABLE {t}")


def test_partitioned_external_table_with_declared_columns(conn, duck, unique):
    t = unique()
    h.run_command(
        conn,
        f"CREATE EXTERNAL TABLE {t} (event_id VARCHAR NOT NULL, event_type VARCHAR NOT NULL, amount DOUBLE, "
        f"event_date DATE) STORED AS PARQUET PARTITIONED BY (event_date) LOCATION 'demo/events'",
    )
    schema = conn.adbc_get_table_schema(t)
    assert schema.names == ["event_id", "event_type", "amount", "event_date"]
    assert schema.field("event_date").type == pa.date32()
    sql = (
        "SELECT event_date, event_type, count(*), sum(amount) FROM {t} "
        "WHERE event_date BETWEEN DATE '2026-04-01' AND DATE '2026-04-10' GROUP BY 1, 2"
    )
    h.assert_rows_equal(h.rows(h.run_sql(conn, sql.format(t=t))), duck.rows(sql.format(t="events")))
    h.run_command(conn, f"DROP TABLE {t}")


def test_schemas(conn, duck, demo_warehouse, unique):
    s, t = unique("s"), unique()
    h.run_command(conn, f"CREATE SCHEMA {s}")
    expect_error(conn, f"CREATE SCHEMA {s}", AdbcStatusCode.ALREADY_EXISTS)
    h.run_command(conn, f"CREATE SCHEMA IF NOT EXISTS {s}")
    h.run_command(conn, f"CREATE EXTERNAL TABLE {s}.{t} STORED AS PARQUET LOCATION 'demo/profiles'")
    h.assert_rows_equal(
        h.rows(h.run_sql(conn, PROFILES_BY_COUNTRY.format(t=f"{s}.{t}"))),
        duck.rows(PROFILES_BY_COUNTRY.format(t="profiles")),
    )
    h.assert_rows_equal(
        h.rows(h.run_sql(conn, PROFILES_BY_COUNTRY.format(t=f"seglake.{s}.{t}"))),
        duck.rows(PROFILES_BY_COUNTRY.format(t="profiles")),
    )
    assert t in shown_tables(conn, s)
    assert t not in shown_tables(conn, "public")
    objs = conn.adbc_get_objects(depth="tables", db_schema_filter=s).read_all().to_pylist()
    (schema,) = objs[0]["catalog_db_schemas"]
    assert schema["db_schema_name"] == s
    assert [tb["table_name"] for tb in schema["db_schema_tables"]] == [t]
    # A schema with tables is only dropped with CASCADE.
    expect_error(conn, f"DROP SCHEMA {s}", AdbcStatusCode.INVALID_ARGUMENT)
    before = files_under(demo_warehouse / "demo" / "profiles")
    h.run_command(conn, f"DROP SCHEMA {s} CASCADE")
    expect_error(conn, f"SELECT * FROM {s}.{t}", AdbcStatusCode.NOT_FOUND)
    objs = conn.adbc_get_objects(depth="db_schemas").read_all().to_pylist()
    assert s not in [x["db_schema_name"] for x in objs[0]["catalog_db_schemas"]]
    assert files_under(demo_warehouse / "demo" / "profiles") == before
    expect_error(conn, f"DROP SCHEMA {s}", AdbcStatusCode.NOT_FOUND)
    h.run_command(conn, f"DROP SCHEMA IF EXISTS {s}")
    # An empty schema drops without CASCADE.
    h.run_command(conn, f"CREATE SCHEMA {s}")
    h.run_command(conn, f"DROP SCHEMA {s}")


def test_ddl_errors_and_if_clauses(conn, duck, unique):
    t = unique()
    h.run_command(conn, f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION 'demo/profiles'")
    msg = expect_error(conn, f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION 'demo/identifiers'", AdbcStatusCode.ALREADY_EXISTS)
    assert t in msg
    # IF NOT EXISTS is a no-op: the table still reads the profiles.
    h.run_command(conn, f"CREATE EXTERNAL TABLE IF NOT EXISTS {t} STORED AS PARQUET LOCATION 'demo/identifiers'")
    assert h.rows(h.run_sql(conn, f"SELECT count(*) FROM {t}")) == [(duck.scalar("SELECT count(*) FROM profiles"),)]
    h.run_command(conn, f"DROP TABLE {t}")
    expect_error(conn, f"DROP TABLE {t}", AdbcStatusCode.NOT_FOUND)
    h.run_command(conn, f"DROP TABLE IF EXISTS {t}")
    expect_error(conn, f"DROP TABLE no_such_schema_x.{t}", AdbcStatusCode.NOT_FOUND)
    expect_error(conn, f"CREATE EXTERNAL TABLE no_such_schema_x.{t} STORED AS PARQUET LOCATION 'demo/profiles'", AdbcStatusCode.NOT_FOUND)
    # Locations that cannot work.
    expect_error(conn, f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '../outside'", AdbcStatusCode.INVALID_ARGUMENT)
    expect_error(conn, f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION 'no/such/dir'", AdbcStatusCode.INVALID_ARGUMENT)
    expect_error(conn, f"CREATE EXTERNAL TABLE {t} STORED AS CSV LOCATION 'demo/profiles'", AdbcStatusCode.NOT_IMPLEMENTED)
    # Managed tables refuse what they cannot keep.
    expect_error(conn, f"CREATE TEMPORARY TABLE {t} (a INT)", AdbcStatusCode.NOT_IMPLEMENTED)
    expect_error(conn, f"CREATE TABLE {t} (a INT) PARTITIONED BY (b)", AdbcStatusCode.INVALID_ARGUMENT)
    # Nothing was created by the failures.
    assert t not in shown_tables(conn)


def test_insert_into_managed_table(conn, connect, duck, demo_warehouse, unique):
    t = unique()
    assert h.execute_update(conn, f"CREATE TABLE {t} (id BIGINT, name VARCHAR, score DOUBLE)") == 0
    assert h.rows(h.run_sql(conn, f"SELECT count(*) FROM {t}")) == [(0,)]
    n = h.execute_update(conn, f"INSERT INTO {t} VALUES (1, 'a', 1.5), (2, NULL, NULL), (3, 'c', -0.25)")
    assert n == 3
    n = h.execute_update(conn, f"INSERT INTO {t} SELECT CAST(birth_year AS BIGINT), country, 0.5 FROM profiles WHERE birth_year = 1990")
    other = connect()
    got = h.rows(h.run_sql(other, f"SELECT id, name, score FROM {t} WHERE id < 4"))
    h.assert_rows_equal(got, [(1, "a", 1.5), (2, None, None), (3, "c", -0.25)])
    assert n == duck.scalar("SELECT count(*) FROM profiles WHERE birth_year = 1990") > 0
    assert h.rows(h.run_sql(other, f"SELECT count(*) FROM {t} WHERE id = 1990")) == [(n,)]
    # Through execute() (ExecuteQuery) as DB-API tools do, with parameters.
    h.run_command(conn, f"INSERT INTO {t} VALUES (?, ?, ?)", (4, "d", 4.0))
    assert h.rows(h.run_sql(other, f"SELECT name, score FROM {t} WHERE id = 4")) == [("d", 4.0)]
    # The rows are in plain Parquet files of the Delta table, readable by anyone.
    root = Path(demo_warehouse) / "tables" / "public" / t
    files = [f for f in files_under(root) if "_delta_log" not in f.parts]
    assert files and all(f.suffix == ".parquet" for f in files)
    d = duckdb.connect()
    try:
        got = d.sql(f"SELECT id, name, score FROM read_parquet('{root}/*/*.parquet') WHERE id < 4").fetchall()
        total = d.sql(f"SELECT count(*) FROM read_parquet('{root}/*/*.parquet')").fetchall()
    finally:
        d.close()
    h.assert_rows_equal(got, [(1, "a", 1.5), (2, None, None), (3, "c", -0.25)])
    assert total == [(4 + n,)]
    h.run_command(conn, f"DROP TABLE {t}")
    assert not root.exists() or not any(root.rglob("*.parquet"))


def test_external_tables_are_read_only(conn, unique):
    t = unique()
    h.run_command(conn, f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION 'demo/profiles'")
    before = h.rows(h.run_sql(conn, f"SELECT count(*) FROM {t}"))
    # PERMISSION_DENIED (ADBC: UNAUTHORIZED) naming the rule (issue 20).
    msg = expect_error(conn, f"INSERT INTO {t} (profile_id) VALUES ('x')", AdbcStatusCode.UNAUTHORIZED)
    assert "read-only" in msg and "managed-writes-only" in msg
    assert h.rows(h.run_sql(conn, f"SELECT count(*) FROM {t}")) == before
    h.run_command(conn, f"DROP TABLE {t}")


def test_set_statement(conn, duck):
    h.run_command(conn, "SET datafusion.execution.batch_size = 100")
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM profiles")
        reader = cur.fetch_record_batch()
        sizes = [b.num_rows for b in reader]
    assert sum(sizes) == duck.scalar("SELECT count(*) FROM profiles")
    assert max(sizes) <= 100
    expect_error(conn, "SET datafusion.no_such_option = 1", AdbcStatusCode.INVALID_ARGUMENT)
