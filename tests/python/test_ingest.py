"""Bulk ingest (Flight SQL CommandStatementIngest through ADBC adbc_ingest)."""

import datetime as dt

import adbc_driver_manager
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

UTC = dt.timezone.utc

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("score", pa.float64()),
        ("name", pa.string()),
        ("flag", pa.bool_()),
        ("ts", pa.timestamp("us", tz="UTC")),
        ("day", pa.date32()),
    ]
)


def sample(n: int = 1000, start: int = 0) -> pa.Table:
    ids = range(start, start + n)
    base = dt.datetime(2026, 1, 1, tzinfo=UTC)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "score": pa.array([i * 0.5 - 7.25 for i in ids], pa.float64()),
            "name": pa.array([None if i % 7 == 0 else f"name-{i}-é" for i in ids], pa.string()),
            "flag": pa.array([None if i % 11 == 0 else i % 3 == 0 for i in ids], pa.bool_()),
            "ts": pa.array(
                [None if i % 13 == 0 else base + dt.timedelta(seconds=i * 37, microseconds=i) for i in ids],
                pa.timestamp("us", tz="UTC"),
            ),
            "day": pa.array([dt.date(2025, 6, 1) + dt.timedelta(days=i % 400) for i in ids], pa.date32()),
        },
        schema=SCHEMA,
    )


def ingest(conn, name, data, mode, **kw) -> int:
    with conn.cursor() as cur:
        return cur.adbc_ingest(name, data, mode=mode, **kw)


def expect_ingest_error(conn, name, data, mode, status, **kw) -> str:
    with pytest.raises(adbc_driver_manager.Error) as ei:
        ingest(conn, name, data, mode, **kw)
    assert h.status_of(ei.value) == status, str(ei.value)
    return str(ei.value)


def read_back(conn, table: str, order_by: str = "id") -> pa.Table:
    return h.run_sql(conn, f"SELECT * FROM {table}").sort_by(order_by)


def assert_table_equals(got: pa.Table, expected: pa.Table):
    """Same column names, types and values (row order by the first column)."""
    expected = expected.sort_by(expected.column_names[0])
    assert got.column_names == expected.column_names
    assert got.num_rows == expected.num_rows
    for name in expected.column_names:
        a, e = got.column(name), expected.column(name)
        assert a.type == e.type, f"column {name}: {a.type} != {e.type}"
        assert a.combine_chunks().equals(e.combine_chunks()), f"column {name} differs"


def test_create_append_replace(conn, connect, unique):
    t = unique()
    first, second, third = sample(500), sample(300, start=500), sample(50, start=10_000)
    assert ingest(conn, t, first, "create") == 500
    assert_table_equals(read_back(conn, t), first)
    schema = conn.adbc_get_table_schema(t)
    assert [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in SCHEMA]

    assert ingest(conn, t, second, "append") == 300
    assert_table_equals(read_back(conn, t), pa.concat_tables([first, second]))

    # Several record batches in one append.
    batches = sample(90, start=900).to_batches(max_chunksize=30)
    assert len(batches) == 3
    assert ingest(conn, t, pa.RecordBatchReader.from_batches(SCHEMA, batches), "append") == 90
    assert_table_equals(read_back(conn, t), pa.concat_tables([first, second, sample(90, start=900)]))

    assert ingest(conn, t, third, "replace") == 50
    assert_table_equals(read_back(conn, t), third)
    # Another connection sees the same.
    assert_table_equals(read_back(connect(), t), third)

    # SQL over ingested data, checked in Python.
    got = h.rows(h.run_sql(conn, f"SELECT flag, count(*), count(name), sum(score) FROM {t} GROUP BY 1"))
    expected = {}
    for r in third.to_pylist():
        c = expected.setdefault(r["flag"], [0, 0, 0.0])
        c[0] += 1
        c[1] += r["name"] is not None
        c[2] += r["score"]
    h.assert_rows_equal(got, [(k, *v) for k, v in expected.items()])
    h.run_command(conn, f"DROP TABLE {t}")


def test_create_append_mode(conn, unique):
    t = unique()
    a, b = sample(100), sample(100, start=100)
    assert ingest(conn, t, a, "create_append") == 100  # creates
    assert ingest(conn, t, b, "create_append") == 100  # appends
    assert_table_equals(read_back(conn, t), pa.concat_tables([a, b]))
    # replace of a missing table creates it.
    t2 = unique()
    assert ingest(conn, t2, b, "replace") == 100
    assert_table_equals(read_back(conn, t2), b)
    for name in (t, t2):
        h.run_command(conn, f"DROP TABLE {name}")


def test_ingest_errors_leave_the_table_unchanged(conn, unique):
    t = unique()
    data = sample(200)
    expect_ingest_error(conn, t, data, "append", AdbcStatusCode.NOT_FOUND)
    expect_error_sql = pytest.raises(adbc_driver_manager.Error)
    with expect_error_sql as ei:
        h.run_sql(conn, f"SELECT * FROM {t}")
    assert h.status_of(ei.value) == AdbcStatusCode.NOT_FOUND

    ingest(conn, t, data, "create")
    msg = expect_ingest_error(conn, t, sample(5), "create", AdbcStatusCode.ALREADY_EXISTS)
    assert t in msg
    # Wrong columns: missing, extra, renamed.
    expect_ingest_error(conn, t, sample(5).drop_columns(["name"]), "append", AdbcStatusCode.INVALID_ARGUMENT)
    expect_ingest_error(
        conn, t, sample(5).append_column("extra", pa.array([1] * 5, pa.int64())), "append", AdbcStatusCode.INVALID_ARGUMENT
    )
    expect_ingest_error(conn, t, sample(5).rename_columns(["ID", "score", "name", "flag", "ts", "day"]), "append",
                        AdbcStatusCode.INVALID_ARGUMENT)
    # A type that cannot be cast.
    bad = sample(5).set_column(5, "day", pa.array([[1]] * 5, pa.list_(pa.int64())))
    expect_ingest_error(conn, t, bad, "append", AdbcStatusCode.INVALID_ARGUMENT)
    assert_table_equals(read_back(conn, t), data)

    # Unsupported options and unknown places.
    expect_ingest_error(conn, t, data, "append", AdbcStatusCode.NOT_IMPLEMENTED, temporary=True)
    expect_ingest_error(conn, t, data, "create", AdbcStatusCode.NOT_FOUND, db_schema_name="no_such_schema_x")
    expect_ingest_error(conn, t, data, "create", AdbcStatusCode.NOT_FOUND, catalog_name="no_such_catalog_x")
    assert_table_equals(read_back(conn, t), data)
    h.run_command(conn, f"DROP TABLE {t}")


def test_append_with_castable_types(conn, unique):
    """An int32 id and a large_string name are widened to the table's types."""
    t = unique()
    data = sample(20)
    ingest(conn, t, data, "create")
    more = sample(10, start=20)
    more = more.set_column(0, "id", more.column("id").cast(pa.int32()))
    more = more.set_column(2, "name", more.column("name").cast(pa.large_string()))
    assert ingest(conn, t, more, "append") == 10
    assert_table_equals(read_back(conn, t), pa.concat_tables([data, sample(10, start=20)]))
    h.run_command(conn, f"DROP TABLE {t}")


LOSSY_APPENDS = {
    # table column type, values the table holds, appended values (another type) that do not fit
    "unparseable-string": (pa.int64(), [1, 2], pa.array(["3", "x"], pa.string())),
    "int-overflow": (pa.int32(), [1, 2], pa.array([3, 2**40], pa.int64())),
}


@pytest.mark.parametrize("case", list(LOSSY_APPENDS))
def test_append_with_lossy_values_is_refused(conn, unique, case):
    column_type, existing, appended = LOSSY_APPENDS[case]
    t = unique()
    data = pa.table({"id": pa.array(existing, column_type)})
    ingest(conn, t, data, "create")
    try:
        expect_ingest_error(conn, t, pa.table({"id": appended}), "append", AdbcStatusCode.INVALID_ARGUMENT)
    finally:
        got = read_back(conn, t)
        h.run_command(conn, f"DROP TABLE {t}")
    assert_table_equals(got, data)


def test_ingest_into_a_schema(conn, unique):
    s, t = unique("s"), unique()
    h.run_command(conn, f"CREATE SCHEMA {s}")
    data = sample(64)
    assert ingest(conn, t, data, "create", db_schema_name=s) == 64
    assert_table_equals(read_back(conn, f"{s}.{t}"), data)
    assert ingest(conn, t, data.slice(0, 10), "append", db_schema_name=s, catalog_name="seglake") == 10
    assert h.rows(h.run_sql(conn, f"SELECT count(*) FROM seglake.{s}.{t}")) == [(74,)]
    # Not visible in public.
    with pytest.raises(adbc_driver_manager.Error) as ei:
        h.run_sql(conn, f"SELECT * FROM public.{t}")
    assert h.status_of(ei.value) == AdbcStatusCode.NOT_FOUND
    h.run_command(conn, f"DROP SCHEMA {s} CASCADE")


def test_dropping_a_managed_table_deletes_its_files(conn, demo_warehouse, unique):
    t = unique()
    ingest(conn, t, sample(30), "create")
    files = [p for p in (demo_warehouse / "tables" / "public" / t).rglob("*") if p.is_file()]
    data = [p for p in files if "_delta_log" not in p.parts]
    assert data and all(p.suffix == ".parquet" for p in data)
    assert any(p.name == "00000000000000000000.json" for p in files)  # a Delta table
    h.run_command(conn, f"DROP TABLE {t}")
    assert [p for p in (demo_warehouse / "tables" / "public" / t).rglob("*") if p.is_file()] == []
    # The name can be used again, with another schema.
    other = pa.table({"x": pa.array(["a", "b"])})
    ingest(conn, t, other, "create")
    assert h.rows(h.run_sql(conn, f"SELECT x FROM {t} ORDER BY x")) == [("a",), ("b",)]
    h.run_command(conn, f"DROP TABLE {t}")


@pytest.mark.slow
def test_large_ingest_round_trips(conn, unique):
    """2M rows (~70 MiB) in 8 record batches of ~8.5 MiB each: above gRPC's
    4 MiB default message limit (the server raises its own), below the ADBC
    Go client's 16 MiB send limit. Then fetched back whole."""
    n, per_batch = 2_000_000, 250_000
    ids = pa.array(range(n), pa.int64())
    data = pa.table(
        {
            "id": ids,
            "x": pc.multiply(pc.cast(ids, pa.float64()), 0.001),
            "s": pc.binary_join_element_wise("row-", pc.cast(ids, pa.string()), "-payload", ""),
        }
    )
    batches = data.to_batches(max_chunksize=per_batch)
    assert len(batches) == 8
    assert data.nbytes > 64 * 1024 * 1024
    assert 4 * 1024 * 1024 < min(b.nbytes for b in batches) <= max(b.nbytes for b in batches) < 15 * 1024 * 1024
    t = unique()
    assert ingest(conn, t, pa.RecordBatchReader.from_batches(data.schema, batches), "create") == n

    got = h.rows(h.run_sql(conn, f"SELECT count(*), sum(id), min(s), max(s), count(DISTINCT s) FROM {t}"))
    strings = data.column("s")
    assert got == [(n, n * (n - 1) // 2, pc.min(strings).as_py(), pc.max(strings).as_py(), n)]
    back = h.run_sql(conn, f"SELECT * FROM {t}")
    assert back.num_rows == n
    assert_table_equals(back.sort_by("id"), data)
    h.run_command(conn, f"DROP TABLE {t}")


def _pb_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _pb_field(number: int, value) -> bytes:
    if isinstance(value, int):
        return _pb_varint(number << 3) + _pb_varint(value)
    return _pb_varint((number << 3) | 2) + _pb_varint(len(value)) + value


def ingest_command(table: str, *, if_not_exist: int, if_exists: int) -> bytes:
    """A packed Any(CommandStatementIngest) (Flight SQL protocol, hand-encoded):
    if_not_exist 1=CREATE 2=FAIL, if_exists 1=FAIL 2=APPEND 3=REPLACE."""
    options = _pb_field(1, if_not_exist) + _pb_field(2, if_exists)
    cmd = _pb_field(1, options) + _pb_field(2, table.encode())
    return _pb_field(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementIngest") + _pb_field(2, cmd)


def test_empty_ingest_with_a_raw_flight_client(server, conn, unique):
    """A DoPut whose stream has the schema and no batch creates an empty
    table. (Not through ADBC: its Go driver sends no message at all for an
    empty reader, so the server cannot even see the command.)"""
    import pyarrow.flight as flight

    t = unique()
    client = flight.FlightClient(server.uri)
    try:
        header = client.authenticate_basic_token(h.DEFAULT_USER, h.DEFAULT_PASSWORD)
        options = flight.FlightCallOptions(headers=[header])
        descriptor = flight.FlightDescriptor.for_command(ingest_command(t, if_not_exist=1, if_exists=1))
        writer, _ = client.do_put(descriptor, SCHEMA, options=options)
        writer.done_writing()
        writer.close()
    finally:
        client.close()
    got = h.run_sql(conn, f"SELECT * FROM {t}")
    assert got.num_rows == 0
    assert [(f.name, f.type) for f in got.schema] == [(f.name, f.type) for f in SCHEMA]
    assert ingest(conn, t, sample(10), "append") == 10
    assert_table_equals(read_back(conn, t), sample(10))
    h.run_command(conn, f"DROP TABLE {t}")
