"""Queries over the demo data, checked against DuckDB reading the same files."""

import datetime as dt
from decimal import Decimal

import adbc_driver_manager
import pyarrow as pa
import pytest

import seglake_harness as h

# Results depend on where the plan runs: every topology of the run.
TOPOLOGIES = h.ALL_TOPOLOGIES


UTC = dt.timezone.utc

# The same SQL text runs in Seglake and in DuckDB (views of the same names).
QUERIES = {
    "profiles_by_country": ("SELECT country, count(*) FROM profiles GROUP BY 1 ORDER BY 1", True),
    "purchases_by_source": (
        "SELECT source, count(*), sum(amount), avg(amount), min(amount), max(amount) "
        "FROM events WHERE event_type = 'purchase' GROUP BY 1",
        False,
    ),
    "event_types_in_date_range": (
        "SELECT event_type, count(*) FROM events "
        "WHERE event_date BETWEEN DATE '2026-03-01' AND DATE '2026-03-31' GROUP BY 1",
        False,
    ),
    "join_profiles_events": (
        "SELECT p.country, count(*), count(DISTINCT e.profile_id), sum(e.amount) "
        "FROM events e JOIN profiles p ON e.profile_id = p.profile_id "
        "WHERE e.event_type = 'purchase' GROUP BY 1",
        False,
    ),
    "distinct_profiles_per_channel": (
        "SELECT channel, count(DISTINCT profile_id), count(*) - count(profile_id) FROM events GROUP BY 1",
        False,
    ),
    "identifiers_by_type": (
        "SELECT id_type, source, count(*), count(id_value), count(DISTINCT record_id) FROM identifiers GROUP BY 1, 2",
        False,
    ),
    "top_categories_ordered": (
        "SELECT category, count(*) AS n FROM events WHERE category IS NOT NULL "
        "GROUP BY 1 ORDER BY n DESC, category",
        True,
    ),
    "events_per_month": (
        "SELECT date_trunc('month', event_time) AS m, count(*) FROM events GROUP BY 1 ORDER BY 1",
        True,
    ),
    "profiles_without_events": (
        "SELECT count(*) FROM profiles p WHERE NOT EXISTS "
        "(SELECT 1 FROM events e WHERE e.profile_id = p.profile_id)",
        True,
    ),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_query_matches_duckdb(conn, duck, name):
    sql, ordered = QUERIES[name]
    expected = duck.rows(sql)
    assert expected, "the expected result should not be empty"
    h.assert_rows_equal(h.rows(h.run_sql(conn, sql)), expected, ordered=ordered)


PARAM_QUERIES = {
    "string_and_float": (
        "SELECT source, count(*), sum(amount) FROM events WHERE event_type = ? AND amount > ? GROUP BY 1",
        ("purchase", 50.25),
    ),
    "ints": (
        "SELECT country, count(*) FROM profiles WHERE birth_year >= ? AND birth_year < ? GROUP BY 1",
        (1980, 1990),
    ),
    "dates": (
        "SELECT event_type, count(*) FROM events WHERE event_date >= ? AND event_date < ? GROUP BY 1",
        (dt.date(2026, 3, 1), dt.date(2026, 4, 1)),
    ),
    "timestamps": (
        "SELECT channel, count(*) FROM events WHERE event_time >= ? AND event_time < ? GROUP BY 1",
        (dt.datetime(2026, 5, 1, tzinfo=UTC), dt.datetime(2026, 5, 15, 12, 30, tzinfo=UTC)),
    ),
    "bool_and_string": (
        "SELECT gender, count(*) FROM profiles WHERE consent_email = ? AND country <> ? GROUP BY 1",
        (True, "FR"),
    ),
    "join_with_params": (
        "SELECT p.country, count(DISTINCT e.profile_id) FROM events e JOIN profiles p "
        "ON e.profile_id = p.profile_id WHERE e.channel = ? AND p.birth_year < ? GROUP BY 1",
        ("email", 1975),
    ),
}


@pytest.mark.parametrize("name", list(PARAM_QUERIES))
def test_parameterized_query_matches_duckdb(conn, duck, name):
    sql, params = PARAM_QUERIES[name]
    expected = duck.rows(sql, params)
    assert expected, "the expected result should not be empty"
    h.assert_rows_equal(h.rows(h.run_sql(conn, sql, params)), expected)


def test_same_statement_with_different_parameters(conn, duck):
    """One cursor, one SQL text, several parameter sets (the driver reuses
    the prepared statement)."""
    sql = "SELECT count(*), sum(amount) FROM events WHERE event_type = ? AND event_date >= ?"
    with conn.cursor() as cur:
        for params in [("purchase", dt.date(2026, 1, 1)), ("add_to_cart", dt.date(2026, 6, 1)), ("none", dt.date(2026, 1, 1))]:
            cur.execute(sql, parameters=params)
            h.assert_rows_equal(cur.fetchall(), duck.rows(sql, params))


def test_parameter_in_select_list(conn):
    got = h.rows(h.run_sql(conn, "SELECT CAST(? AS BIGINT) * 2, upper(CAST(? AS VARCHAR))", (21, "abc")))
    assert got == [(42, "ABC")]


def test_select_star_streams_the_whole_table(conn, duck):
    """Every row of events, same schema as GetTables reports, same content
    as DuckDB reading the files."""
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM events")
        got = cur.fetch_arrow_table()
    schema = conn.adbc_get_table_schema("events")
    assert got.schema.remove_metadata() == schema.remove_metadata()
    n = duck.scalar("SELECT count(*) FROM events")
    assert n > 50_000
    assert got.num_rows == n
    expected = duck.table("SELECT * FROM events ORDER BY event_id")
    got = got.sort_by("event_id")
    for name in schema.names:
        a, e = got.column(name), expected.column(name)
        assert a.type == e.type, name
        assert a.combine_chunks().equals(e.combine_chunks()), f"column {name} differs"


def test_empty_result(conn):
    schema = conn.adbc_get_table_schema("events")
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM events WHERE event_type = 'no-such-type'")
        got = cur.fetch_arrow_table()
    assert got.num_rows == 0
    assert got.schema.remove_metadata() == schema.remove_metadata()
    with conn.cursor() as cur:
        cur.execute("SELECT country, count(*) FROM profiles WHERE 1 = 0 GROUP BY 1")
        assert cur.fetchall() == []
        assert [d[0] for d in cur.description] == ["country", "count(*)"]


def test_dates_timestamps_decimals_booleans(conn, duck):
    sql = (
        "SELECT profile_id, min(event_time) AS first_seen, max(event_date) AS last_day, "
        "CAST(sum(amount) AS DECIMAL(18, 2)) AS revenue, bool_or(event_type = 'purchase') AS buyer "
        "FROM events WHERE profile_id IS NOT NULL GROUP BY 1"
    )
    got = h.run_sql(conn, sql)
    assert got.schema.field("first_seen").type == pa.timestamp("us", tz="UTC")
    assert got.schema.field("last_day").type == pa.date32()
    assert got.schema.field("revenue").type == pa.decimal128(18, 2)
    assert got.schema.field("buyer").type == pa.bool_()
    expected = duck.rows(sql)
    assert any(r[3] is not None for r in expected) and any(r[3] is None for r in expected)
    h.assert_rows_equal(h.rows(got), expected)


def test_profile_column_types(conn, duck):
    """Booleans, dates and a decimal cast, checked row by row against the
    files (Python computes the decimal)."""
    got = h.run_sql(
        conn,
        "SELECT profile_id, signup_date, consent_email, consent_sms, "
        "CAST(birth_year AS DECIMAL(9, 2)) AS birth_dec FROM profiles",
    )
    assert [f.type for f in got.schema] == [pa.string(), pa.date32(), pa.bool_(), pa.bool_(), pa.decimal128(9, 2)]
    files = duck.rows("SELECT profile_id, signup_date, consent_email, consent_sms, birth_year FROM profiles")
    expected = [
        (pid, signup, email, sms, None if year is None else Decimal(year).quantize(Decimal("0.01")))
        for pid, signup, email, sms, year in files
    ]
    assert any(r[4] is None for r in expected)
    h.assert_rows_equal(h.rows(got), expected)


def test_timestamp_literals_and_functions(conn, duck):
    sql = (
        "SELECT event_type, count(*) FROM events "
        "WHERE event_time >= TIMESTAMP '2026-07-01 00:00:00+00' AND event_time < TIMESTAMP '2026-07-02 06:00:00+00' "
        "AND extract(hour FROM event_time) BETWEEN 8 AND 20 GROUP BY 1"
    )
    h.assert_rows_equal(h.rows(h.run_sql(conn, sql)), duck.rows(sql))


def test_a_union_announces_its_coerced_types(conn):
    """The FlightInfo schema is the union's coerced type (text here, as in
    PostgreSQL and DuckDB), not its first input's: the rows then stream
    as announced instead of failing to cast 'email' to a double."""
    table = h.run_sql(conn, "SELECT 1.5 AS c1 UNION ALL SELECT 'email'")
    assert str(table.schema.field("c1").type) in ("string", "large_string", "string_view"), table.schema
    assert sorted(table.column("c1").to_pylist()) == ["1.5", "email"]
