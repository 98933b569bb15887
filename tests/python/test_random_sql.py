"""Random SQL: seeded statements from a grammar (``random_sql.py``) over
the demo tables and Seglake's own functions and statements.

- No statement may crash the server or break the connection: the server
  answers ``SELECT 1`` every ``CHECK_EVERY`` statements and after every
  error that is not the client's fault, and its process is alive.
- Every error is classified: the client's fault (INVALID_ARGUMENT,
  NOT_FOUND, PERMISSION_DENIED, ALREADY_EXISTS, FAILED_PRECONDITION,
  UNIMPLEMENTED, ...) or ours (INTERNAL, UNKNOWN, UNAVAILABLE, a lost
  connection, a deadline on this tiny warehouse). Any of ours fails the
  test, listing the seed and the SQL.
- Differential testing: statements in the subset Seglake and DuckDB share
  (``Statement.duck_sql``) run in DuckDB too, over the same rows exported
  once through ADBC (and checked against the Parquet files); results are
  compared as multisets (floats with a tolerance). A difference, or
  Seglake failing where DuckDB answers, fails the test unless it is a
  documented semantic difference (``ALLOWED``) or a filed bug recognised
  by what it does (``KNOWN_BUGS``, counted in the summary).

CI runs ``SEGLAKE_FUZZ_STATEMENTS`` (default 2000) statements with the
fixed seed ``SEGLAKE_FUZZ_SEED`` (default below); the long mode runs
100 000 (``SEGLAKE_FUZZ_STATEMENTS=100000``, see tests/python/README.md).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
import duckdb
import pytest

import seglake_harness as h
from random_sql import Generator, Statement

# One deployment of the run's topologies: "single" unless
# SEGLAKE_FUZZ_TOPOLOGIES says more (e.g. "single,distributed"; CI's time
# budget is for one).
TOPOLOGIES = tuple(t.strip() for t in os.environ.get("SEGLAKE_FUZZ_TOPOLOGIES", "single").split(",") if t.strip())
STATEMENTS = int(os.environ.get("SEGLAKE_FUZZ_STATEMENTS", "2000"))
SEED = int(os.environ.get("SEGLAKE_FUZZ_SEED", "20261206"))
# A small warehouse: the statements' cost is per file and per row.
PROFILES = 200
# The test deletes the older events (a Delta DELETE: version 1 of
# `events`), so that scans read ~30 daily files instead of 365 and
# `table_at('events', 0)` differs from the current version.
KEEP_EVENTS_FROM = "2026-10-01"
CHECK_EVERY = 100
# A statement on this warehouse that runs this long is a bug (a hang).
STATEMENT_TIMEOUT_S = 30
CLIENT_TIMEOUT_S = STATEMENT_TIMEOUT_S + 15
# Where the failures of a run are written too (long mode).
REPORT = Path(os.environ.get("SEGLAKE_FUZZ_REPORT", "")) if os.environ.get("SEGLAKE_FUZZ_REPORT") else None

# gRPC codes (as the Flight SQL driver names them in its messages) that are
# the client's fault, and the ADBC statuses they map to when the message
# does not name one.
CLIENT_CODES = {"InvalidArgument", "NotFound", "PermissionDenied", "AlreadyExists", "FailedPrecondition",
                "Unimplemented", "OutOfRange", "Unauthenticated"}
# Neither: a limit of the server or a commit conflict to retry (the
# scheduler may refresh a segment at the same time). Counted, not failing.
LIMIT_CODES = {"ResourceExhausted", "Aborted"}
S = adbc_driver_manager.AdbcStatusCode
CLIENT_STATUSES = {S.INVALID_ARGUMENT, S.NOT_FOUND, S.UNAUTHORIZED, S.NOT_IMPLEMENTED, S.ALREADY_EXISTS,
                   S.INVALID_STATE, S.UNAUTHENTICATED}
GRPC_CODE_RE = re.compile(r"\((\w+); [^()]*\)\s*$")

# Documented differences between the two engines on statements the
# generator marks comparable: (regex on the SQL or on Seglake's error,
# reason). Each one is a semantic difference, not a bug (the others the
# generator avoids are listed in random_sql.py's docstring).
ALLOWED: list[tuple[str, str]] = [
    (r"LIKE '[^']*\\", "backslash is LIKE's default escape in DataFusion (as in PostgreSQL), a plain character in DuckDB"),
]

# Known bugs, each filed: a failure they explain is counted in the summary
# instead of failing the run. Each is recognised by what it does, not by
# the SQL, so that a new bug is never taken for one of them; remove an
# entry when its bug is fixed (the run then checks those statements again).
#   (name, description)
KNOWN_BUGS = {
    "delta-metadata-scan-physical-limit": (
        "a LIMIT that appears only in the physical plan over a Delta scan that reads no column is lost: "
        "ORDER BY a constant drops the sort, its fetch becomes a limit pushed into deltalake-core's "
        "DeltaScanMetaExec, which claims limit pushdown without applying it (the scan-level LIMIT is "
        "handled: engine/src/storage/delta_scan.rs keep_limit); e.g. SELECT FALSE FROM events ORDER BY 1 "
        "LIMIT 10 returns every row"),
    "datafusion-duplicate-simplified-name": (
        "DataFusion 55 refuses two different aggregates that simplify to the same expression: "
        "SELECT sum(DISTINCT CAST(NULL AS INT)), sum(DISTINCT CAST(CAST(NULL AS BOOLEAN) AS INT)) FROM t "
        "-> 'Schema contains duplicate unqualified field name \"sum(DISTINCT NULL)\"' (INVALID_ARGUMENT for "
        "valid SQL; the generator's output columns all have distinct aliases)"),
    "datafusion-duplicate-window": (
        "DataFusion 55 cannot plan two window functions that simplify to the same expression: "
        "SELECT sum(abs(1)) OVER (PARTITION BY id_type), sum(CAST(100 IS DISTINCT FROM 1990 AS INT)) OVER "
        "(PARTITION BY id_type) FROM identifiers -> NOT_IMPLEMENTED 'Physical plan does not support logical "
        "expression WindowFunction(...)'"),
}

# Known bugs the generator steers clear of in comparable statements (the
# wrong rows cannot be told from another bug's): `SEGLAKE_FUZZ_KNOWN_BUGS=1`
# generates them again, to check a fix.
AVOIDED_BUGS = {
    "datafusion-outer-join-constant-sort": (
        "DataFusion 55 drops an ORDER BY over a column of the nullable side of an outer join when a filter "
        "makes it constant on that side: SELECT t2.b FROM (VALUES (1),(2)) t1(a) LEFT JOIN (SELECT * FROM "
        "(VALUES (1,'x'),(3,'x')) v(a,b) WHERE b='x') t2 ON t1.a = t2.a ORDER BY 1 NULLS FIRST returns 'x' "
        "before NULL (the NULL padding is not constant); with LIMIT the wrong rows come out. Avoided: no "
        "ORDER BY ... LIMIT over outer joins"),
}
AVOID_KNOWN_BUGS = os.environ.get("SEGLAKE_FUZZ_KNOWN_BUGS") != "1"


def classify(exc: adbc_driver_manager.Error) -> tuple[str, str]:
    """("client" | "limit" | "ours", code) of an ADBC error."""
    m = GRPC_CODE_RE.search(str(exc))
    if m:
        code = m.group(1)
        if code in LIMIT_CODES:
            return "limit", code
        return ("client" if code in CLIENT_CODES else "ours"), code
    status = S(exc.status_code)
    return ("client" if status in CLIENT_STATUSES else "ours"), status.name


# ---------------------------------------------------------------------------
# Comparing results
# ---------------------------------------------------------------------------


def norm(v):
    """A value both engines should agree on: numbers as int or float
    (Decimal from DuckDB's HUGEINT sums), dates as midnight timestamps
    (``date_trunc`` of a date), timestamps as naive UTC."""
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return v
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return v
    if isinstance(v, dt.date):
        return dt.datetime(v.year, v.month, v.day)
    if isinstance(v, (list, tuple)):
        return tuple(norm(x) for x in v)
    return v


def rows_of(table) -> list[tuple]:
    """Rows as Python values; a value Python cannot hold (a date past year
    9999) as its type and raw value."""
    cols = []
    for c in table.columns:
        try:
            cols.append(c.to_pylist())
        except (OverflowError, ValueError):
            out = []
            for s in c:
                try:
                    out.append(s.as_py())
                except (OverflowError, ValueError):
                    out.append(f"<{s.type}: {s.value}>")
            cols.append(out)
    return list(zip(*cols)) if cols else []


def sort_key(row):
    out = []
    for v in row:
        if v is None:
            out.append((0, ""))
        elif isinstance(v, bool):
            out.append((1, int(v)))
        elif isinstance(v, (int, float)):
            f = float(v)
            out.append((2, "nan" if math.isnan(f) else float(f"{f:.6g}")))
        elif isinstance(v, str):
            out.append((3, v))
        elif isinstance(v, dt.datetime):
            out.append((4, v.isoformat()))
        else:
            out.append((5, repr(v)))
    return tuple(out)


def same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        fa, fb = float(a), float(b)
        if math.isnan(fa) or math.isnan(fb):
            return math.isnan(fa) and math.isnan(fb)
        return math.isclose(fa, fb, rel_tol=1e-6, abs_tol=1e-6)
    return type(a) is type(b) and a == b


def diff(actual: list[tuple], expected: list[tuple]) -> str | None:
    """None when the two multisets of rows agree, else a description."""
    if len(actual) != len(expected):
        return f"{len(actual)} rows, DuckDB {len(expected)}:\n  {actual[:5]}\n  vs\n  {expected[:5]}"
    a = sorted((tuple(norm(v) for v in r) for r in actual), key=sort_key)
    e = sorted((tuple(norm(v) for v in r) for r in expected), key=sort_key)
    for i, (x, y) in enumerate(zip(a, e)):
        if len(x) != len(y) or not all(same(p, q) for p, q in zip(x, y)):
            return f"row {i} differs:\n  seglake {x}\n  duckdb  {y}"
    return None


def allowed(sql: str, message: str) -> str | None:
    for pattern, reason in ALLOWED:
        if re.search(pattern, sql) or re.search(pattern, message):
            return reason
    return None


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def duck_reference(conn, warehouse: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB with the demo tables as exported through ADBC (`SELECT *`),
    each checked against the Parquet files the demo wrote: the reference
    does not depend on our scan being right."""
    d = duckdb.connect()
    d.execute("SET TimeZone = 'UTC'").fetchall()
    demo = Path(warehouse) / "demo"
    files = {
        "profiles": f"read_parquet('{demo}/profiles/*.parquet')",
        "events_v0": f"read_parquet('{demo}/events/**/*.parquet', hive_partitioning = true)",
        "identifiers": f"read_parquet('{demo}/identifiers/*.parquet')",
    }
    for name, source in [("profiles", "profiles"), ("events_v0", "events"), ("identifiers", "identifiers")]:
        exported = h.run_sql(conn, f"SELECT * FROM {source}")
        d.register(f"{name}_arrow", exported)
        d.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_arrow").fetchall()
        d.unregister(f"{name}_arrow")
        cols = ", ".join(f'"{c}"' for c in exported.column_names)
        (n,) = d.execute(f"SELECT count(*) FROM (SELECT {cols} FROM {name} EXCEPT ALL "
                         f"SELECT {cols} FROM {files[name]})").fetchall()[0]
        (m,) = d.execute(f"SELECT count(*) FROM (SELECT {cols} FROM {files[name]} EXCEPT ALL "
                         f"SELECT {cols} FROM {name})").fetchall()[0]
        assert (n, m) == (0, 0), f"the ADBC export of {source} differs from its Parquet files ({n}, {m} rows)"
        assert exported.num_rows > 0
    d.execute(f"CREATE TABLE events AS SELECT * FROM events_v0 WHERE event_date >= DATE '{KEEP_EVENTS_FROM}'").fetchall()
    return d


@pytest.fixture(scope="module")
def fuzz_deployment(make_demo, launch):
    warehouse = make_demo(profiles=PROFILES)
    dep = launch.start(warehouse, args=["--statement-timeout-secs", str(STATEMENT_TIMEOUT_S)])
    yield dep
    dep.stop()


class Run:
    def __init__(self, dep, duck: duckdb.DuckDBPyConnection):
        self.dep = dep
        self.duck = duck
        self.conn = self.connect()
        self.stats: Counter = Counter()
        self.codes: Counter = Counter()
        self.succeeded: Counter = Counter()
        self.failures: list[str] = []
        self.known_bugs: list[str] = []
        self.explained = False
        self.slowest: list[tuple[float, str]] = []

    def connect(self):
        """A connection whose calls give up after CLIENT_TIMEOUT_S: a
        statement still running then (past the server's own deadline) is
        reported as a hang instead of stopping the run."""
        opts = adbc_driver_flightsql.DatabaseOptions
        timeout = str(CLIENT_TIMEOUT_S)
        db_kwargs = {
            "username": h.DEFAULT_USER,
            "password": h.DEFAULT_PASSWORD,
            opts.TIMEOUT_QUERY.value: timeout,
            opts.TIMEOUT_FETCH.value: timeout,
            opts.TIMEOUT_UPDATE.value: timeout,
        }
        if self.dep.tls_root is not None:
            db_kwargs[opts.TLS_ROOT_CERTS.value] = Path(self.dep.tls_root).read_text()
        return flightsql.connect(self.dep.uri, db_kwargs=db_kwargs, autocommit=True)

    def fail(self, i: int, st: Statement, why: str) -> None:
        self.failures.append(f"[seed {SEED} #{i} {st.kind}] {why}\n  SQL: {st.sql}")

    def known(self, i: int, st: Statement, bug: str) -> None:
        self.explained = True
        self.stats[f"known bug: {bug}"] += 1
        self.known_bugs.append(f"[seed {SEED} #{i} {bug}] {st.sql}")

    def seglake(self, sql: str) -> list[tuple]:
        """The rows of `sql`; raises the ADBC error."""
        with self.conn.cursor() as cur:
            cur.execute(sql)
            table = cur.fetch_arrow_table()
        return rows_of(table)

    def alive(self) -> str | None:
        """None when the server answers SELECT 1 (on a new connection
        when the current one broke), else why not."""
        if not self.dep.alive():
            return "the server process exited"
        try:
            assert self.seglake("SELECT 1") == [(1,)]
            return None
        except Exception as e:  # noqa: BLE001 - any failure here is the finding
            broken = f"the connection broke: SELECT 1 failed with {e}"
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            self.conn = self.connect()
            assert self.seglake("SELECT 1") == [(1,)]
        except Exception as e:  # noqa: BLE001
            return f"{broken}; a new connection failed too: {e}"
        return broken

    def step(self, i: int, st: Statement) -> bool:
        """Runs one statement; False when the server is gone."""
        self.stats[st.kind] += 1
        # Whether a known bug explains this statement's failure.
        self.explained = False
        started = time.monotonic()
        try:
            rows = self.seglake(st.sql)
            error = None
        except adbc_driver_manager.Error as e:
            rows, error = None, e
        elapsed = time.monotonic() - started
        self.slowest = sorted([*self.slowest, (elapsed, st.sql)], reverse=True)[:5]
        if error is not None:
            cls, code = classify(error)
            self.codes[(cls, code)] += 1
            if cls == "ours":
                self.fail(i, st, f"error not classified as the client's fault ({code}): {error}")
            if cls != "client":
                why = self.alive()
                if why is not None:
                    self.fail(i, st, why)
                    return self.dep.alive()
        else:
            self.codes[("ok", "")] += 1
            self.succeeded[st.kind] += 1
        if st.comparable:
            self.compare(i, st, rows, error)
        if i % CHECK_EVERY == 0:
            why = self.alive()
            if why is not None:
                self.fail(i, st, f"after this statement: {why}")
                return self.dep.alive()
        return True

    def compare(self, i: int, st: Statement, rows, error) -> None:
        try:
            expected = self.duck.execute(st.duck_sql).fetchall()
            duck_error = None
        except duckdb.Error as e:
            expected, duck_error = None, e
        if duck_error is not None:
            # DuckDB does not accept it: nothing to compare.
            self.stats["duckdb refused"] += 1
            return
        if error is not None:
            reason = allowed(st.sql, str(error))
            if reason:
                self.stats[f"allowed: {reason[:40]}"] += 1
                return
            if self.explained:
                return
            if "Schema contains duplicate unqualified field name" in str(error):
                self.known(i, st, "datafusion-duplicate-simplified-name")
                return
            if "Physical plan does not support logical expression WindowFunction" in str(error):
                self.known(i, st, "datafusion-duplicate-window")
                return
            self.fail(i, st, f"Seglake failed where DuckDB answers ({len(expected)} rows): {error}")
            return
        d = diff(rows, expected)
        if d is None:
            self.stats["compared equal"] += 1
            return
        reason = allowed(st.sql, d)
        if reason:
            self.stats[f"allowed: {reason[:40]}"] += 1
            return
        m = re.search(r"\bORDER BY\b.*\bLIMIT (\d+)$", st.sql)
        if m and len(rows) > int(m.group(1)) and len(expected) <= int(m.group(1)):
            self.known(i, st, "delta-metadata-scan-physical-limit")
            return
        self.fail(i, st, f"results differ from DuckDB's: {d}\n  DuckDB SQL: {st.duck_sql}")

    def report(self, elapsed: float) -> str:
        lines = [f"random SQL: seed {SEED}, {STATEMENTS} statements in {elapsed:.1f} s"]
        lines.append("  kinds: " + ", ".join(f"{k}={v}" for k, v in sorted(self.stats.items())))
        lines.append("  succeeded: " + ", ".join(f"{k}={v}" for k, v in sorted(self.succeeded.items())))
        lines.append("  outcomes: " + ", ".join(f"{c}/{code}={n}" for (c, code), n in sorted(self.codes.items())))
        lines.append("  slowest: " + "; ".join(f"{t:.2f}s {sql[:100]}" for t, sql in self.slowest))
        return "\n".join(lines)


# The suite's per-test limit (pytest.ini) is too short for a run that
# reports a few hangs (CLIENT_TIMEOUT_S each); the long mode gets ~0.1 s a
# statement.
@pytest.mark.timeout(max(600, STATEMENTS // 10))
def test_random_sql(fuzz_deployment, capsys):
    dep = fuzz_deployment
    setup = dep.connect()
    try:
        duck = duck_reference(setup, Path(dep.warehouse))
        # Version 1 of `events`: the older events deleted.
        h.run_command(setup, f"DELETE FROM events WHERE event_date < DATE '{KEEP_EVENTS_FROM}'")
        (n,) = duck.execute("SELECT count(*) FROM events").fetchall()[0]
        assert h.rows(h.run_sql(setup, "SELECT count(*) FROM events")) == [(n,)]
    finally:
        setup.close()

    run = Run(dep, duck)
    gen = Generator(SEED, avoid_known_bugs=AVOID_KNOWN_BUGS)
    started = time.monotonic()
    print(f"random SQL: seed {SEED} (SEGLAKE_FUZZ_SEED), {STATEMENTS} statements (SEGLAKE_FUZZ_STATEMENTS)")
    for i in range(1, STATEMENTS + 1):
        st = gen.statement()
        if not run.step(i, st):
            break
    why = run.alive()
    if why is not None:
        run.fail(STATEMENTS, Statement("SELECT 1", "final"), why)
    # The demo tables are as they were: no statement changed them.
    for table in ("profiles", "events", "identifiers"):
        (n,) = duck.execute(f"SELECT count(*) FROM {table}").fetchall()[0]
        got = h.rows(h.run_sql(run.conn, f"SELECT count(*) FROM {table}"))
        if got != [(n,)]:
            run.fail(STATEMENTS, Statement(f"SELECT count(*) FROM {table}", "final"), f"{got}, expected {n} rows")
    run.conn.close()
    summary = run.report(time.monotonic() - started)
    with capsys.disabled():
        print("\n" + summary)
    if run.known_bugs:
        with capsys.disabled():
            print(f"  {len(run.known_bugs)} statements hit known bugs (KNOWN_BUGS), the first:\n  "
                  + "\n  ".join(s[:300] for s in run.known_bugs[:5]))
    if REPORT is not None:
        REPORT.write_text(summary + "\n\n" + "\n\n".join(run.failures) + "\n\nknown bugs:\n"
                          + "\n".join(run.known_bugs) + "\n")
    assert not run.failures, (f"{len(run.failures)} failures (seed {SEED}):\n\n" + "\n\n".join(run.failures[:60])
                              + ("\n..." if len(run.failures) > 60 else "") + "\n\n" + summary)
