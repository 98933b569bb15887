"""Bad input gets the right status and leaves the server (and the
connection) working."""

import adbc_driver_manager
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

# Results depend on where the plan runs: every topology of the run.
TOPOLOGIES = h.ALL_TOPOLOGIES

S = AdbcStatusCode

BAD_STATEMENTS = {
    "syntax-error": ("SELEC 1", None, {S.INVALID_ARGUMENT}),
    "incomplete-statement": ("SELECT * FROM", None, {S.INVALID_ARGUMENT}),
    "unknown-table": ("SELECT * FROM no_such_table", None, {S.NOT_FOUND}),
    "unknown-schema": ("SELECT * FROM no_such_schema.profiles", None, {S.NOT_FOUND}),
    "unknown-catalog": ("SELECT * FROM other_catalog.public.profiles", None, {S.NOT_FOUND}),
    # DataFusion reports a missing column as a schema error.
    "unknown-column": ("SELECT no_such_column FROM profiles", None, {S.INVALID_ARGUMENT, S.NOT_FOUND}),
    "unknown-function": ("SELECT no_such_function(1)", None, {S.INVALID_ARGUMENT}),
    "wrong-argument-type": ("SELECT sqrt('abc', 1)", None, {S.INVALID_ARGUMENT}),
    "constant-division-by-zero": ("SELECT 1 / 0", None, {S.INVALID_ARGUMENT}),
    "division-by-zero-while-streaming": (
        "SELECT count(*) / (count(*) - count(*)) FROM events GROUP BY event_type", None, {S.INVALID_ARGUMENT}),
    "constant-cast-error": ("SELECT CAST('x' AS INT)", None, {S.INVALID_ARGUMENT}),
    "cast-error-while-streaming": ("SELECT CAST(event_type AS INT) FROM events", None, {S.INVALID_ARGUMENT}),
    "too-many-parameters": ("SELECT count(*) FROM profiles WHERE country = ?", ("FR", "DE"), {S.INVALID_ARGUMENT}),
    "too-few-parameters": ("SELECT count(*) FROM profiles WHERE country = ? AND birth_year > ?", ("FR",),
                           {S.INVALID_ARGUMENT}),
    "parameters-but-no-placeholder": ("SELECT 1", (1,), {S.INVALID_ARGUMENT}),
    "placeholder-without-parameters": ("SELECT count(*) FROM profiles WHERE country = ?", None, {S.INVALID_ARGUMENT}),
    "parameter-of-wrong-type": ("SELECT count(*) FROM profiles WHERE birth_year > ?", ("not a number",),
                                {S.INVALID_ARGUMENT}),
    "drop-unknown-table": ("DROP TABLE no_such_table", None, {S.NOT_FOUND}),
    "insert-into-unknown-table": ("INSERT INTO no_such_table VALUES (1)", None, {S.NOT_FOUND}),
    "two-statements": ("SELECT 1; SELECT 2", None, {S.INVALID_ARGUMENT, S.NOT_IMPLEMENTED}),
}


def check_still_works(conn, expected_profiles: int):
    assert h.rows(h.run_sql(conn, "SELECT count(*) FROM profiles")) == [(expected_profiles,)]
    assert h.rows(h.run_sql(conn, "SELECT count(*) FROM profiles WHERE country = ?", ("__none__",))) == [(0,)]


@pytest.mark.parametrize("name", list(BAD_STATEMENTS))
def test_bad_statement(server, conn, connect, duck, name):
    sql, params, statuses = BAD_STATEMENTS[name]
    n = duck.scalar("SELECT count(*) FROM profiles")
    # On a fresh cursor, then on a cursor that already ran a query.
    with conn.cursor() as cur:
        for attempt in range(2):
            with pytest.raises(adbc_driver_manager.Error) as ei:
                if params is None:
                    cur.execute(sql)
                else:
                    cur.execute(sql, parameters=params)
                cur.fetchall()
            assert h.status_of(ei.value) in statuses, f"{sql!r}: {ei.value}"
            cur.execute("SELECT count(*) FROM profiles")
            assert cur.fetchall() == [(n,)]
    assert server.alive()
    check_still_works(conn, n)
    check_still_works(connect(), n)


def test_error_messages_are_useful(conn):
    def message(sql):
        with pytest.raises(adbc_driver_manager.Error) as ei:
            h.run_sql(conn, sql)
        return str(ei.value)

    assert "no_such_table" in message("SELECT * FROM no_such_table")
    assert "no_such_function" in message("SELECT no_such_function(1)")
    assert "SELEC" in message("SELEC 1")


def test_cancelled_stream_does_not_break_the_connection(conn, duck):
    """Read one batch of a big result, then abandon it."""
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM events")
        reader = cur.fetch_record_batch()
        first = reader.read_next_batch()
        assert first.num_rows > 0
    assert h.rows(h.run_sql(conn, "SELECT count(*) FROM events")) == [(duck.scalar("SELECT count(*) FROM events"),)]


def test_session_survives_many_errors(server, conn, duck):
    n = duck.scalar("SELECT count(*) FROM profiles")
    for i in range(30):
        with pytest.raises(adbc_driver_manager.Error):
            h.run_sql(conn, f"SELECT * FROM missing_{i}")
    check_still_works(conn, n)
    assert server.alive()
