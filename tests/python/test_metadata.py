"""Flight SQL metadata: GetSqlInfo, GetTableTypes, GetCatalogs/DbSchemas/Tables
(ADBC get_objects) and table schemas, on a warehouse no other test changes."""

from pathlib import Path

import adbc_driver_manager
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h
from conftest import duckdb_over

DEMO_TABLES = {"profiles", "events", "identifiers"}


@pytest.fixture(scope="module")
def pristine(launch, make_demo):
    """A deployment on its own demo warehouse: the catalog holds exactly the demo tables."""
    wh = make_demo(profiles=300)
    dep = launch.start(wh)
    yield dep, Path(wh)
    dep.stop()


@pytest.fixture
def pconn(pristine):
    c = pristine[0].connect()
    yield c
    c.close()


def parquet_schema(warehouse: Path, table: str) -> pa.Schema:
    """The Arrow schema stored in the demo files of `table` (every file must agree)."""
    files = sorted((warehouse / "demo" / table).rglob("*.parquet"))
    assert files, f"no Parquet files for {table}"
    schemas = {pq.read_schema(f).remove_metadata() for f in files[:5] + files[-5:]}
    assert len(schemas) == 1, schemas
    return schemas.pop()


def expected_table_schema(warehouse: Path, table: str) -> pa.Schema:
    schema = parquet_schema(warehouse, table)
    if table == "events":
        # The hive partition column, a DATE, after the file columns
        # (nullable: a Delta partition value may be null).
        schema = schema.append(pa.field("event_date", pa.date32(), nullable=True))
    return schema


def assert_same_fields(actual: pa.Schema, expected: pa.Schema, *, check_nullable: bool = True):
    assert actual.names == expected.names
    for a, e in zip(actual, expected):
        assert a.type == e.type, f"column {a.name}: {a.type} != {e.type}"
        if check_nullable:
            assert a.nullable == e.nullable, f"column {a.name}: nullable {a.nullable} != {e.nullable}"


def test_get_info(pconn):
    info = pconn.adbc_get_info()
    assert info["vendor_name"] == "Seglake"
    assert isinstance(info.get("vendor_version"), str) and info["vendor_version"]


def test_table_types(pconn):
    assert pconn.adbc_get_table_types() == ["TABLE", "VIEW"]


def _objects(conn, **kw):
    return conn.adbc_get_objects(**kw).read_all().to_pylist()


def test_get_objects_lists_the_demo_tables(pconn, pristine):
    _, wh = pristine
    catalogs = _objects(pconn)
    assert [c["catalog_name"] for c in catalogs] == ["seglake"]
    schemas = {s["db_schema_name"]: s for s in catalogs[0]["catalog_db_schemas"]}
    assert "public" in schemas and "information_schema" in schemas
    public = {t["table_name"]: t for t in schemas["public"]["db_schema_tables"]}
    assert set(public) == DEMO_TABLES
    for name, t in public.items():
        assert t["table_type"] == "TABLE"
        expected = expected_table_schema(wh, name)
        cols = t["table_columns"]
        assert [c["column_name"] for c in cols] == expected.names
        assert [c["ordinal_position"] for c in cols] == list(range(1, len(expected) + 1))
    # information_schema is made of views.
    assert {t["table_type"] for t in schemas["information_schema"]["db_schema_tables"]} == {"VIEW"}


def test_get_objects_filters(pconn, pristine):
    _, wh = pristine
    catalogs = _objects(pconn, catalog_filter="seglake", db_schema_filter="public", table_name_filter="ev%")
    assert len(catalogs) == 1 and catalogs[0]["catalog_name"] == "seglake"
    (schema,) = catalogs[0]["catalog_db_schemas"]
    assert schema["db_schema_name"] == "public"
    (table,) = schema["db_schema_tables"]
    assert table["table_name"] == "events"
    assert [c["column_name"] for c in table["table_columns"]] == expected_table_schema(wh, "events").names

    # Column filter.
    catalogs = _objects(pconn, db_schema_filter="public", table_name_filter="profiles", column_name_filter="consent%")
    (table,) = catalogs[0]["catalog_db_schemas"][0]["db_schema_tables"]
    assert [c["column_name"] for c in table["table_columns"]] == [
        "consent_email", "consent_sms", "consent_push", "consent_ads"
    ]

    # No match anywhere.
    catalogs = _objects(pconn, catalog_filter="seglake", db_schema_filter="public", table_name_filter="no_such%")
    assert catalogs[0]["catalog_db_schemas"][0]["db_schema_tables"] in ([], None)

    # Table types filter: the demo tables are TABLEs, not VIEWs.
    catalogs = _objects(pconn, db_schema_filter="public", table_types_filter=["VIEW"])
    tables = [t for s in catalogs[0]["catalog_db_schemas"] for t in (s["db_schema_tables"] or [])]
    assert tables == []


def test_get_objects_depths(pconn):
    (cat,) = _objects(pconn, depth="catalogs")
    assert cat["catalog_name"] == "seglake"
    (cat,) = _objects(pconn, depth="db_schemas")
    names = [s["db_schema_name"] for s in cat["catalog_db_schemas"]]
    assert "public" in names
    assert all(s["db_schema_tables"] is None for s in cat["catalog_db_schemas"])
    (cat,) = _objects(pconn, depth="tables", db_schema_filter="public")
    (public,) = cat["catalog_db_schemas"]
    assert {t["table_name"] for t in public["db_schema_tables"]} == DEMO_TABLES
    assert all(t["table_columns"] is None for t in public["db_schema_tables"])


@pytest.mark.parametrize("table", sorted(DEMO_TABLES))
def test_table_schema_matches_the_parquet_files(pconn, pristine, table):
    _, wh = pristine
    expected = expected_table_schema(wh, table)
    actual = pconn.adbc_get_table_schema(table)
    assert_same_fields(actual, expected)
    # Qualified lookups give the same schema.
    qualified = pconn.adbc_get_table_schema(table, catalog_filter="seglake", db_schema_filter="public")
    assert_same_fields(qualified, expected)
    # DuckDB reading the same files (hive partitioning) sees the same names and types.
    d = duckdb_over(wh)
    try:
        duck_schema = d.sql(f"SELECT * FROM {table} LIMIT 0").to_arrow_table().schema
    finally:
        d.close()
    assert_same_fields(actual, duck_schema, check_nullable=False)


def test_table_schema_of_unknown_table(pconn):
    with pytest.raises(adbc_driver_manager.Error) as ei:
        pconn.adbc_get_table_schema("no_such_table")
    assert h.status_of(ei.value) == AdbcStatusCode.NOT_FOUND, str(ei.value)
