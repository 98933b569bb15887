"""A seeded generator of random SQL over the demo tables, for
``test_random_sql.py``.

``Generator(seed).statement()`` returns a :class:`Statement`: the SQL for
Seglake and, when the statement only uses the SQL subset Seglake and DuckDB
share with the same meaning, the SQL DuckDB runs for the expected result
(``duck_sql``; ``None`` means "only check how Seglake fails or succeeds").
The same seed always gives the same statements.

Expressions are generated *typed* (int, double, str, bool, date, ts), so
that comparable statements are well-typed in both engines. What the
comparable subset leaves out, and why (each is a documented difference
between the engines, not a bug):

- ``/`` on integers: DataFusion divides integers (``7 / 2 = 3``), DuckDB
  returns a double (``3.5``); comparable statements divide doubles by a
  non-zero literal only.
- division or modulo by zero: DataFusion fails (``INVALID_ARGUMENT``),
  DuckDB returns NULL.
- ``CAST(double AS INT)``: DataFusion truncates, DuckDB rounds.
- ``round(double, n)`` with n > 0: the binary value of 277.65 is not a
  half-way case, and the two engines round it differently (277.7 / 277.6);
  comparable statements round to integers.
- ``CAST(double/timestamp AS VARCHAR)``: the two print floats and
  timestamps differently.
- NULL ordering: DataFusion sorts NULLs last ascending and first
  descending, DuckDB last in both; comparable ``ORDER BY`` keys say
  ``NULLS FIRST``/``LAST``, and results are compared as multisets.
- a ``LIMIT`` needs a total order to pick the same rows: comparable
  ``LIMIT`` queries order by every output column, and none of them is a
  float (sums of floats differ in their last bits with the order of
  addition, which could break a tie differently).
- ``date_trunc`` of a DATE, DATE ± INTERVAL, DATE - DATE: the result types
  differ (timestamp vs date, interval vs integer).
- overflowing integer arithmetic: DuckDB widens (``sum`` of INTEGER is a
  HUGEINT), DataFusion wraps or fails.
- ``regexp_*``, ``to_char``, ``string_agg`` and ``array_agg`` orders:
  dialect differences.
- Seglake's own functions, ``table_at`` over other versions than the ones
  registered in DuckDB, system tables and segment statements have no DuckDB
  counterpart.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

# ---------------------------------------------------------------------------
# The data model (demo/src/schema.rs) and constants of the demo data
# ---------------------------------------------------------------------------

INT, DOUBLE, STR, BOOL, DATE, TS = "int", "double", "str", "bool", "date", "ts"

TABLES: dict[str, dict[str, str]] = {
    "profiles": {
        "profile_id": STR,
        "email": STR,
        "phone": STR,
        "customer_id": STR,
        "first_name": STR,
        "city": STR,
        "country": STR,
        "birth_year": INT,
        "gender": STR,
        "signup_date": DATE,
        "consent_email": BOOL,
        "consent_sms": BOOL,
        "consent_push": BOOL,
        "consent_ads": BOOL,
    },
    "events": {
        "event_id": STR,
        "profile_id": STR,
        "device_id": STR,
        "event_time": TS,
        "event_type": STR,
        "channel": STR,
        "source": STR,
        "category": STR,
        "product_id": STR,
        "amount": DOUBLE,
        "received_at": TS,
        "event_date": DATE,
    },
    "identifiers": {"record_id": STR, "source": STR, "id_type": STR, "id_value": STR},
}

# Columns that identify a row (a total order for row_number, lag, ...).
KEYS = {"profiles": ["profile_id"], "events": ["event_id"], "identifiers": ["record_id", "id_type", "id_value", "source"]}
ALIASES = {"profiles": "p", "events": "e", "identifiers": "i"}

# Low-cardinality columns: good grouping and partitioning keys.
GROUPABLE = {
    "profiles": ["country", "gender", "city", "consent_email", "consent_sms", "birth_year"],
    "events": ["event_type", "channel", "source", "category", "event_date"],
    "identifiers": ["source", "id_type"],
}

STR_VALUES = {
    "country": ["FR", "DE", "GB", "US", "ES", "IT", "XX"],
    "gender": ["M", "F", "X"],
    "event_type": ["page_view", "product_view", "add_to_cart", "purchase", "email_sent", "email_open",
                   "email_click", "sms_sent", "push_open", "ad_click", "store_visit", "nope"],
    "channel": ["web", "app", "email", "sms", "push", "ads", "store"],
    "source": ["web", "app", "store", "crm", "ads"],
    "category": ["electronics", "fashion", "home", "beauty", "books", "toys"],
    "id_type": ["email", "phone", "customer_id", "device_id"],
    "city": ["Paris", "Nice", "Berlin", "London", "Grenoble"],
}
GENERIC_STRINGS = ["", "a", "abc", "p000000001", "x@y.z", "é", "ÄÖü", "it''s", "%", "_", " ", "NULL", "0"]
LIKE_PATTERNS = ["%a%", "p0%", "%@gmail.com", "_", "%", "", "%.%", "A%", "%e_", "ad\\_%"]

DAYS = ["2025-11-02", "2026-01-01", "2026-06-15", "2026-09-01", "2026-10-01", "2026-10-15", "2026-10-25",
        "2026-11-01", "2027-01-01"]

# Seglake's own names: what the edge-argument statements use.
BIG_INTS = ["0", "1", "-1", "5", "6", "2147483647", "-2147483648", "9223372036854775807", "-9223372036854775807",
            "99999999999999999999", "1.5", "-0.0", "'1'", "'x'", "NULL", "TRUE", "1e308", "CAST('NaN' AS DOUBLE)",
            "CAST('inf' AS DOUBLE)"]
EDGE_STRINGS = ["''", "' '", "NULL", "'a@b'", "'a@b.c'", "'@b.c'", "'a@'", "'A.B+tag@GoogleMail.COM'", "'a@@b.c'",
                "'é@ü.fr'", "'a b@c.d'", "repeat('x', 5000)", "repeat('a@', 300)", "'0612345678'", "'+33 6 12 34 56 78'",
                "'0033612345678'", "'+1 (650) 253-0000'", "'12'", "'++++'", "'+'", "'999999999999999999999999'",
                "'tel:+33612345678'", "'٠٦١٢٣٤٥٦٧٨'", "repeat('1', 251)", "repeat('1', 250)", "chr(0)", "'\\x00'",
                "1", "-1", "1.5", "TRUE", "DATE '2026-01-01'", "email", "phone", "country", "first_name"]
REGIONS = ["'FR'", "'fr'", "'US'", "'GB'", "'XX'", "''", "NULL", "'FRA'", "'001'", "'ZZ'", "country", "1", "'é'",
           "repeat('F', 1000)", "gender"]


@dataclass
class Statement:
    """One generated statement: `sql` for Seglake; `duck_sql`, when set,
    the statement DuckDB runs for the expected rows. `kind` names the
    production (for the report)."""

    sql: str
    kind: str
    duck_sql: str | None = None

    @property
    def comparable(self) -> bool:
        return self.duck_sql is not None


def q(s: str) -> str:
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


class Scope:
    """The columns a clause may name: (SQL reference, type, base name)."""

    def __init__(self, cols: list[tuple[str, str, str]]):
        self.cols = cols

    def of(self, ty: str) -> list[tuple[str, str, str]]:
        return [c for c in self.cols if c[1] == ty]

    @staticmethod
    def table(table: str, alias: str | None = None) -> Scope:
        prefix = f"{alias}." if alias else ""
        return Scope([(f"{prefix}{c}", t, c) for c, t in TABLES[table].items()])

    def __add__(self, other: Scope) -> Scope:
        return Scope(self.cols + other.cols)


class Generator:
    """The grammar. `statement()` draws one statement; `comparable` queries
    are the bulk, the rest probe error paths and Seglake's own features."""

    def __init__(self, seed: int, avoid_known_bugs: bool = True):
        self.r = random.Random(seed)
        # No ORDER BY ... LIMIT over outer joins (test_random_sql.AVOIDED_BUGS).
        self.avoid_known_bugs = avoid_known_bugs
        self.seed = seed
        self.segments: list[str] = []
        self.counter = 0

    # -- helpers -----------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def pick(self, seq):
        return self.r.choice(seq)

    # -- typed expressions ------------------------------------------------

    def literal(self, ty: str, col: str | None = None) -> str:
        r = self.r
        if ty == INT:
            if col == "birth_year" and self.chance(0.7):
                return str(r.randint(1940, 2010))
            return str(self.pick([0, 1, 2, 3, -1, -7, 10, 100, 1000, 1990, r.randint(-50, 50)]))
        if ty == DOUBLE:
            return self.pick(["0.0", "1.5", "-2.25", "10.0", "99.99", "100.0", "0.001", "250.5", "1e3", "-1e-3"])
        if ty == STR:
            if col in STR_VALUES and self.chance(0.8):
                return q(self.pick(STR_VALUES[col]))
            if col in ("profile_id",) and self.chance(0.8):
                return q(f"p{r.randint(1, 220):09d}")
            return "'" + self.pick(GENERIC_STRINGS) + "'"
        if ty == BOOL:
            return self.pick(["TRUE", "FALSE"])
        if ty == DATE:
            return f"DATE '{self.pick(DAYS)}'"
        if ty == TS:
            return f"TIMESTAMP '{self.pick(DAYS)} {r.randint(0, 23):02d}:{self.pick(['00', '30', '59'])}:00'"
        raise ValueError(ty)

    def null(self, ty: str) -> str:
        sql_ty = {INT: "INT", DOUBLE: "DOUBLE", STR: "VARCHAR", BOOL: "BOOLEAN", DATE: "DATE",
                  TS: "TIMESTAMP"}[ty]
        if ty == TS:
            # A typed NULL of the column's type (with its time zone).
            return "CAST(NULL AS TIMESTAMP)"
        return f"CAST(NULL AS {sql_ty})"

    def column(self, scope: Scope, ty: str) -> str | None:
        cols = scope.of(ty)
        return self.pick(cols)[0] if cols else None

    def expr(self, scope: Scope, ty: str, depth: int = 2) -> str:
        """An expression of type `ty` over `scope`."""
        col = self.column(scope, ty)
        if depth <= 0 or self.chance(0.35):
            if ty == BOOL and col is None and self.chance(0.8):
                return self.compare(scope, 0)
            if col is not None and self.chance(0.75):
                return col
            if ty == TS:
                # Timestamps without a column: keep the time zone of the data.
                c = self.column(scope, TS)
                return c if c else "CAST(NULL AS TIMESTAMP)"
            if self.chance(0.1) and ty != TS:
                return self.null(ty)
            return self.literal(ty)
        d = depth - 1
        g = getattr(self, f"expr_{ty}")
        return g(scope, d)

    def case(self, scope: Scope, ty: str, d: int) -> str:
        whens = " ".join(
            f"WHEN {self.expr(scope, BOOL, d)} THEN {self.expr(scope, ty, d)}" for _ in range(self.r.randint(1, 2))
        )
        other = f" ELSE {self.expr(scope, ty, d)}" if self.chance(0.7) else ""
        return f"CASE {whens}{other} END"

    def expr_int(self, scope: Scope, d: int) -> str:
        e = lambda: self.expr(scope, INT, d)  # noqa: E731
        k = self.r.randint(0, 13)
        if k == 0:
            return f"({e()} + {e()})"
        if k == 1:
            return f"({e()} - {self.literal(INT)})"
        if k == 2:
            return f"({e()} * {self.pick(['2', '3', '-1', '0'])})"
        if k == 3:
            return f"({e()} % {self.pick(['2', '3', '7', '10'])})"
        if k == 4:
            return f"abs({e()})"
        if k == 5:
            return f"length({self.expr(scope, STR, d)})"
        if k == 6:
            return self.case(scope, INT, d)
        if k == 7:
            return f"COALESCE({e()}, {e()})"
        if k == 8:
            return f"CAST({self.expr(scope, BOOL, d)} AS INT)"
        if k == 9:
            return f"EXTRACT({self.pick(['YEAR', 'MONTH', 'DAY'])} FROM {self.expr(scope, DATE, d)})"
        if k == 10:
            return f"strpos({self.expr(scope, STR, d)}, {self.pick(['a', 'e', '@', '0', ''])!r})"
        if k == 11:
            return f"{self.pick(['greatest', 'least'])}({e()}, {e()})"
        if k == 12:
            return f"NULLIF({e()}, {self.literal(INT)})"
        if self.chance(0.5):
            return f"CAST({e()} AS BIGINT)"
        return f"CAST({self.pick(['42', '-3', '0', '2026'])!r} AS {self.pick(['INT', 'BIGINT'])})"

    def expr_double(self, scope: Scope, d: int) -> str:
        e = lambda: self.expr(scope, DOUBLE, d)  # noqa: E731
        k = self.r.randint(0, 9)
        if k == 0:
            return f"({e()} + {e()})"
        if k == 1:
            return f"({e()} * {self.pick(['2.0', '0.5', '-1.0'])})"
        if k == 2:
            return f"({e()} / {self.pick(['2.0', '3.0', '-4.0', '0.5'])})"
        if k == 3:
            return f"CAST({self.expr(scope, INT, d)} AS DOUBLE)"
        if k == 4:
            # To an integer only: a decimal digit's half-way cases are not
            # exact in binary, and the engines round them differently.
            return f"round({e()})"
        if k == 5:
            return f"abs({e()})"
        if k == 6:
            return f"{self.pick(['ceil', 'floor'])}({e()})"
        if k == 7:
            return f"COALESCE({e()}, {self.literal(DOUBLE)})"
        if k == 8:
            return self.case(scope, DOUBLE, d)
        return f"sqrt(abs({e()}))"

    def expr_str(self, scope: Scope, d: int) -> str:
        e = lambda: self.expr(scope, STR, d)  # noqa: E731
        k = self.r.randint(0, 16)
        if k == 0:
            return f"{self.pick(['upper', 'lower', 'trim', 'reverse'])}({e()})"
        if k == 1:
            return f"substr({e()}, {self.r.randint(1, 5)}, {self.r.randint(0, 6)})"
        if k == 2:
            return f"{self.pick(['left', 'right'])}({e()}, {self.r.randint(0, 4)})"
        if k == 3:
            return f"concat({e()}, {e()})"
        if k == 4:
            return f"({e()} || {e()})"
        if k == 5:
            return f"replace({e()}, {self.pick(['a', '@', '.', 'p0'])!r}, {self.pick(['', 'X', '--'])!r})"
        if k == 6:
            return f"{self.pick(['lpad', 'rpad'])}({e()}, {self.r.randint(0, 12)}, {self.pick(['x', '*', 'ab'])!r})"
        if k == 7:
            return f"split_part({e()}, {self.pick(['@', '.', '-', 'e'])!r}, {self.r.randint(1, 3)})"
        if k == 8:
            return self.case(scope, STR, d)
        if k == 9:
            return f"COALESCE({e()}, {e()})"
        if k == 10:
            return f"CAST({self.expr(scope, INT, d)} AS VARCHAR)"
        if k == 11:
            return f"CAST({self.expr(scope, DATE, d)} AS VARCHAR)"
        if k == 12:
            return f"md5({e()})"
        if k == 13:
            return f"NULLIF({e()}, {self.literal(STR)})"
        if k == 14:
            return f"CAST({self.expr(scope, BOOL, d)} AS VARCHAR)"
        if k == 15:
            return f"{self.pick(['ltrim', 'rtrim'])}({e()}, {self.pick(['p', 'x', '0', 'e'])!r})"
        return f"repeat({e()}, {self.r.randint(0, 3)})"

    def compare(self, scope: Scope, d: int) -> str:
        ty = self.pick([INT, INT, DOUBLE, STR, STR, DATE, TS, BOOL])
        cols = scope.of(ty)
        left = self.expr(scope, ty, d)
        base = self.pick(cols)[2] if cols else None
        right = self.literal(ty, base) if self.chance(0.6) else self.expr(scope, ty, d)
        if ty == TS and self.chance(0.3):
            # A timestamp without time zone (UTC in both engines' sessions).
            right = f"CAST({self.expr(scope, DATE, d)} AS TIMESTAMP)"
        if ty == TS and not right.startswith("TIMESTAMP") and scope.of(TS) == []:
            right = self.literal(TS)
        op = self.pick(["=", "<>", "<", "<=", ">", ">=", "IS DISTINCT FROM", "IS NOT DISTINCT FROM"])
        if ty == BOOL:
            op = self.pick(["=", "<>", "IS DISTINCT FROM"])
        # Parenthesised: the dialects disagree on the precedence of
        # IS [NOT] DISTINCT FROM, NOT and LIKE against the comparisons.
        return f"(({left}) {op} ({right}))"

    def expr_bool(self, scope: Scope, d: int) -> str:
        e = lambda: self.expr(scope, BOOL, d)  # noqa: E731
        k = self.r.randint(0, 11)
        if k <= 2:
            return self.compare(scope, d)
        if k == 3:
            return f"({e()} {self.pick(['AND', 'OR'])} {e()})"
        if k == 4:
            return f"NOT ({e()})"
        if k == 5:
            ty = self.pick([INT, STR, DATE, DOUBLE, BOOL, TS])
            return f"({self.expr(scope, ty, d)}) IS {self.pick(['', 'NOT '])}NULL"
        if k == 6:
            cols = scope.of(STR)
            c = self.pick(cols) if cols else ("'abc'", STR, "")
            vals = [self.literal(STR, c[2]) for _ in range(self.r.randint(1, 4))]
            if self.chance(0.2):
                vals.append("NULL")
            return f"({c[0]} {self.pick(['IN', 'NOT IN'])} ({', '.join(vals)}))"
        if k == 7:
            ty = self.pick([INT, DATE, DOUBLE])
            lo, hi = sorted([self.literal(ty), self.literal(ty)]) if ty != INT else (self.literal(INT), self.literal(INT))
            return f"(({self.expr(scope, ty, d)}) {self.pick(['', 'NOT '])}BETWEEN {lo} AND {hi})"
        if k == 8:
            like = self.pick(['LIKE', 'NOT LIKE', 'ILIKE'])
            return f"(({self.expr(scope, STR, d)}) {like} {q(self.pick(LIKE_PATTERNS))})"
        if k == 9:
            return f"starts_with({self.expr(scope, STR, d)}, {self.literal(STR)})"
        if k == 10:
            return f"({self.expr(scope, BOOL, d)}) IS {self.pick(['TRUE', 'NOT TRUE', 'FALSE', 'NOT FALSE'])}"
        return self.case(scope, BOOL, d)

    def expr_date(self, scope: Scope, d: int) -> str:
        k = self.r.randint(0, 4)
        ts = self.column(scope, TS)
        if k == 0 and ts:
            return f"CAST({ts} AS DATE)"
        if k == 4:
            return f"CAST({q(self.pick(DAYS))} AS DATE)"
        if k == 1:
            return f"COALESCE({self.expr(scope, DATE, d)}, {self.literal(DATE)})"
        if k == 2:
            return self.case(scope, DATE, d)
        return f"{self.pick(['greatest', 'least'])}({self.expr(scope, DATE, d)}, {self.literal(DATE)})"

    def expr_ts(self, scope: Scope, d: int) -> str:
        ts = self.column(scope, TS)
        if ts is None:
            return "CAST(NULL AS TIMESTAMP)"
        k = self.r.randint(0, 2)
        if k == 0:
            return f"date_trunc({self.pick(['year', 'month', 'day', 'hour'])!r}, {ts})"
        if k == 1:
            return f"({ts} {self.pick(['+', '-'])} INTERVAL '{self.r.randint(1, 40)} {self.pick(['days', 'hours', 'minutes'])}')"
        return ts

    # -- queries ------------------------------------------------------------

    def from_clause(self) -> tuple[str, Scope, list[str], str]:
        """(FROM text, scope, unique key refs or [], main table)."""
        k = self.r.randint(0, 9)
        if k <= 5:
            t = self.pick(["profiles", "events", "events", "identifiers"])
            if self.chance(0.5):
                a = ALIASES[t]
                return f"{t} {a}", Scope.table(t, a), [f"{a}.{c}" for c in KEYS[t]], t
            return t, Scope.table(t), list(KEYS[t]), t
        if k <= 8:
            join = self.pick(["JOIN", "LEFT JOIN", "INNER JOIN", "RIGHT JOIN"])
            on = "p.profile_id = e.profile_id"
            if self.chance(0.3):
                on += f" AND {self.expr(Scope.table('events', 'e'), BOOL, 1)}"
            scope = Scope.table("profiles", "p") + Scope.table("events", "e")
            return f"profiles p {join} events e ON {on}", scope, ["p.profile_id", "e.event_id"], "events"
        join = self.pick(["JOIN", "LEFT JOIN"])
        scope = Scope.table("profiles", "p") + Scope.table("identifiers", "i")
        keys = ["p.profile_id"] + [f"i.{c}" for c in KEYS["identifiers"]]
        return (f"profiles p {join} identifiers i ON i.id_type = 'email' AND i.id_value = p.email", scope, keys,
                "profiles")

    def where(self, scope: Scope, outer: str | None) -> str:
        """A WHERE clause (or nothing); `outer` is the name a correlated
        subquery qualifies the outer columns with when they have no alias."""
        conds = []
        if self.chance(0.6):
            conds.append(self.expr(scope, BOOL, 2))
        if self.chance(0.15):
            conds.append(self.subquery_predicate(scope, outer))
        return f" WHERE {' AND '.join(conds)}" if conds else ""

    def subquery_predicate(self, scope: Scope, outer: str | None) -> str:
        pid = next((c[0] for c in scope.cols if c[2] == "profile_id"), None)
        if pid is None:
            return self.expr(scope, BOOL, 1)
        if "." not in pid and outer:
            pid = f"{outer}.{pid}"
        k = self.r.randint(0, 3)
        inner = Scope.table("events", "e2")
        cond = self.expr(inner, BOOL, 1)
        if k == 0:
            return f"{pid} {self.pick(['IN', 'NOT IN'])} (SELECT e2.profile_id FROM events e2 WHERE {cond})"
        if k == 1:
            return f"{self.pick(['', 'NOT '])}EXISTS (SELECT 1 FROM events e2 WHERE e2.profile_id = {pid} AND {cond})"
        if k == 2:
            return (f"{pid} IN (SELECT p2.profile_id FROM profiles p2 WHERE "
                    f"{self.expr(Scope.table('profiles', 'p2'), BOOL, 1)})")
        return (f"(SELECT count(*) FROM events e2 WHERE e2.profile_id = {pid} AND {cond}) "
                f"{self.pick(['>', '=', '<'])} {self.r.randint(0, 3)}")

    def projection(self, scope: Scope, n: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(n):
            ty = self.pick([INT, INT, DOUBLE, STR, STR, STR, BOOL, DATE, TS])
            out.append((self.expr(scope, ty, self.r.randint(0, 2)), ty))
        return out

    def order_limit(self, exprs: list[tuple[str, str]], frm: str = "") -> str:
        """ORDER BY every output column (a total order on the output) and
        LIMIT; no LIMIT when an output column is a float."""
        if not self.chance(0.35):
            return ""
        if self.avoid_known_bugs and re.search(r"\b(LEFT|RIGHT) JOIN\b", frm):
            return ""
        keys = []
        for i, (_, _ty) in enumerate(exprs):
            keys.append(f"{i + 1} {self.pick(['ASC', 'DESC'])} {self.pick(['NULLS FIRST', 'NULLS LAST'])}")
        text = " ORDER BY " + ", ".join(keys)
        if any(ty == DOUBLE for _, ty in exprs):
            return text
        return text + f" LIMIT {self.pick([0, 1, 3, 10, 50])}"

    def select_simple(self) -> str:
        frm, scope, _, main = self.from_clause()
        exprs = self.projection(scope, self.r.randint(1, 4))
        distinct = "DISTINCT " if self.chance(0.2) else ""
        sel = ", ".join(f"{e} AS c{i}" for i, (e, _) in enumerate(exprs))
        ol = self.order_limit(exprs, frm)
        return f"SELECT {distinct}{sel} FROM {frm}{self.where(scope, main)}{ol}"

    def aggregate(self, scope: Scope) -> tuple[str, str]:
        k = self.r.randint(0, 11)
        ty = self.pick([INT, DOUBLE])
        if k == 0:
            return "count(*)", INT
        if k == 1:
            return f"count({self.expr(scope, self.pick([STR, INT, DOUBLE, DATE]), 1)})", INT
        if k == 2:
            return f"count(DISTINCT {self.expr(scope, self.pick([STR, INT, DATE, BOOL]), 1)})", INT
        if k == 3:
            return f"sum({self.expr(scope, ty, 1)})", ty
        if k == 4:
            return f"sum(DISTINCT {self.expr(scope, INT, 1)})", INT
        if k == 5:
            t = self.pick([INT, STR, DATE, TS, DOUBLE])
            return f"{self.pick(['min', 'max'])}({self.expr(scope, t, 1)})", t
        if k == 6:
            return f"avg({self.expr(scope, ty, 1)})", DOUBLE
        if k == 7:
            return f"count(*) FILTER (WHERE {self.expr(scope, BOOL, 1)})", INT
        if k == 8:
            return f"{self.pick(['bool_and', 'bool_or'])}({self.expr(scope, BOOL, 1)})", BOOL
        if k == 9:
            return f"avg(DISTINCT {self.expr(scope, INT, 1)})", DOUBLE
        if k == 10:
            return f"sum({self.expr(scope, ty, 1)}) FILTER (WHERE {self.expr(scope, BOOL, 1)})", ty
        return f"(count(*) + {self.literal(INT)})", INT

    def select_group(self) -> str:
        frm, scope, _, main = self.from_clause()
        groupable = [c for c in scope.cols if c[2] in GROUPABLE.get(main, []) + GROUPABLE["profiles"]]
        ngroups = self.r.randint(0, 2)
        groups = []
        for _ in range(ngroups):
            if groupable and self.chance(0.7):
                c = self.pick(groupable)
                groups.append((c[0], c[1]))
            else:
                ty = self.pick([INT, STR, BOOL, DATE])
                groups.append((self.expr(scope, ty, 1), ty))
        aggs = [self.aggregate(scope) for _ in range(self.r.randint(1, 3))]
        exprs = groups + aggs
        sel = ", ".join(f"{e} AS c{i}" for i, (e, _) in enumerate(exprs))
        sql = f"SELECT {sel} FROM {frm}{self.where(scope, main)}"
        if groups:
            sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(groups)))
            if self.chance(0.3):
                agg, ty = self.aggregate(scope)
                if ty in (INT, DOUBLE):
                    sql += f" HAVING {agg} {self.pick(['>', '<', '>=', '<>'])} {self.literal(ty)}"
                else:
                    sql += " HAVING count(*) > 1"
        ol = self.order_limit(exprs, frm)
        return sql + ol

    def select_window(self) -> str:
        t = self.pick(["profiles", "events", "identifiers"])
        scope = Scope.table(t)
        keys = KEYS[t]
        part = self.pick(GROUPABLE[t])
        ob = lambda: ", ".join(f"{k} {self.pick(['ASC', 'DESC'])}" for k in keys)  # noqa: E731
        funcs = []
        for _ in range(self.r.randint(1, 3)):
            k = self.r.randint(0, 6)
            pb = f"PARTITION BY {part} " if self.chance(0.8) else ""
            if k == 0:
                funcs.append((f"row_number() OVER ({pb}ORDER BY {ob()})", INT))
            elif k == 1:
                g = self.pick(GROUPABLE[t])
                funcs.append((f"{self.pick(['rank', 'dense_rank'])}() OVER ({pb}ORDER BY {g} NULLS FIRST)", INT))
            elif k == 2:
                funcs.append((f"sum({self.expr(scope, INT, 1)}) OVER ({pb.strip()})", INT))
            elif k == 3:
                funcs.append((f"count(*) OVER ({pb.strip()})", INT))
            elif k == 4:
                c = self.pick(scope.of(STR))[0]
                funcs.append((f"{self.pick(['lag', 'lead'])}({c}) OVER ({pb}ORDER BY {ob()})", STR))
            elif k == 5:
                funcs.append((f"ntile({self.r.randint(1, 5)}) OVER ({pb}ORDER BY {ob()})", INT))
            else:
                funcs.append((f"{self.pick(['min', 'max'])}({self.pick(scope.of(STR))[0]}) OVER ({pb.strip()})", STR))
        cols = [self.pick(keys)] + ([part] if self.chance(0.5) else [])
        exprs = [(c, STR) for c in cols] + funcs
        sel = ", ".join(f"{e} AS c{i}" for i, (e, _) in enumerate(exprs))
        sql = f"SELECT {sel} FROM {t}{self.where(scope, t)}"
        if exprs[-1][1] == INT and self.chance(0.3):
            # Filter on a window result through a derived table.
            sql = f"SELECT * FROM ({sql}) w WHERE c{len(exprs) - 1} {self.pick(['<=', '>', '='])} {self.r.randint(1, 3)}"
        return sql

    def select_union(self) -> str:
        # Both branches project the same types.
        types = [self.pick([INT, STR, DATE, BOOL]) for _ in range(self.r.randint(1, 3))]
        parts = []
        for _ in range(self.r.randint(2, 3)):
            t = self.pick(["profiles", "events", "identifiers"])
            scope = Scope.table(t)
            sel = ", ".join(f"{self.expr(scope, ty, 1)} AS c{i}" for i, ty in enumerate(types))
            parts.append(f"SELECT {sel} FROM {t}{self.where(scope, t)}")
        return f" {self.pick(['UNION ALL', 'UNION ALL', 'UNION'])} ".join(parts)

    def select_cte(self) -> str:
        t = self.pick(["events", "profiles"])
        g = self.pick(GROUPABLE[t])
        scope = Scope.table(t)
        agg, ty = self.aggregate(scope)
        inner = f"SELECT {g} AS k, {agg} AS v FROM {t}{self.where(scope, t)} GROUP BY 1"
        s2 = Scope([("k", TABLES[t][g], g), ("v", ty, "v")])
        outer_where = f" WHERE {self.expr(s2, BOOL, 1)}" if self.chance(0.6) else ""
        if self.chance(0.5):
            return f"WITH c AS ({inner}) SELECT k, v FROM c{outer_where}"
        return f"SELECT count(*), count(DISTINCT k) FROM ({inner}) c{outer_where}"

    def select_scalar_subquery(self) -> str:
        cond = self.expr(Scope.table("events", "e"), BOOL, 1)
        agg = self.pick(["count(*)", "sum(e.amount)", "max(e.event_time)", "count(DISTINCT e.channel)"])
        where = self.where(Scope.table("profiles", "p"), None)
        return (f"SELECT p.profile_id, (SELECT {agg} FROM events e WHERE e.profile_id = p.profile_id AND {cond}) AS c1"
                f" FROM profiles p{where}")

    def comparable_query(self) -> Statement:
        k = self.r.randint(0, 11)
        if k <= 3:
            sql = self.select_simple()
        elif k <= 6:
            sql = self.select_group()
        elif k == 7:
            sql = self.select_window()
        elif k == 8:
            sql = self.select_union()
        elif k == 9:
            sql = self.select_cte()
        elif k == 10:
            sql = self.select_scalar_subquery()
        else:
            sql = self.table_at_comparable()
            return Statement(sql[0], "table_at", sql[1])
        return Statement(sql, "query", sql)

    # -- Seglake's own features, edge arguments -----------------------------

    def table_at_comparable(self) -> tuple[str, str]:
        """`table_at` at versions the test registers in DuckDB: events v0
        (before the test's DELETE) and v1, profiles and identifiers v0."""
        t, v, duck = self.pick([
            ("events", "0", "events_v0"), ("public.events", "1", "events"), ("events", "1", "events"),
            ("profiles", "0", "profiles"), ("identifiers", "0", "identifiers"),
            ("events", "TIMESTAMP '2100-01-01 00:00:00'", "events"),
        ])
        base = t.split(".")[-1]
        scope = Scope.table(base)
        where = f" WHERE {self.expr(scope, BOOL, 1)}" if self.chance(0.7) else ""
        g = self.pick(GROUPABLE[base])
        agg, _ = self.aggregate(scope)
        tail = f"{where} GROUP BY 1"
        return (f"SELECT {g}, {agg} FROM table_at('{t}', {v}){tail}",
                f"SELECT {g}, {agg} FROM {duck}{tail}")

    def udf_call(self, scope: Scope | None) -> str:
        k = self.r.randint(0, 3)
        if k == 0:
            return f"normalize_email({self.pick(EDGE_STRINGS)})"
        if k == 1:
            return f"normalize_phone({self.pick(EDGE_STRINGS)}, {self.pick(REGIONS)})"
        if k == 2:
            return f"rfm_segment({self.pick(BIG_INTS)}, {self.pick(BIG_INTS)})"
        # Wrong arities.
        f = self.pick(["normalize_email", "normalize_phone", "rfm_segment"])
        args = ", ".join(self.pick(EDGE_STRINGS) for _ in range(self.pick([0, 1, 3])))
        return f"{f}({args})"

    def udf_statement(self) -> Statement:
        k = self.r.randint(0, 5)
        if k <= 1:
            calls = ", ".join(self.udf_call(None) for _ in range(self.r.randint(1, 3)))
            uses_cols = any(c in calls for c in ("email", "phone", "country", "first_name", "gender"))
            frm = " FROM profiles" if uses_cols or self.chance(0.3) else ""
            return Statement(f"SELECT {calls}{frm}", "udf")
        if k == 2:
            # In a predicate and a grouping.
            call = self.udf_call(None)
            return Statement(f"SELECT {call} AS v, count(*) FROM profiles GROUP BY 1", "udf")
        if k == 3:
            # rfm_segment over NTILE scores (unsigned integers), as in the recipe.
            return Statement(
                "SELECT rfm_segment(NTILE(5) OVER (ORDER BY birth_year NULLS FIRST, profile_id), "
                f"NTILE({self.pick([5, 6, 1, 10])}) OVER (ORDER BY signup_date, profile_id)) AS s FROM profiles",
                "udf")
        if k == 4:
            return self.appetence_statement()
        return self.stitch_statement()

    def appetence_statement(self) -> Statement:
        eng = self.pick(["event_type IN ('email_open', 'email_click')", "TRUE", "NULL", "amount > 10",
                         "channel", "1", "CAST(NULL AS BOOLEAN)"])
        t = self.pick(["event_time", "received_at", "CAST(event_date AS TIMESTAMP)", "NULL", "event_date",
                       "'2026-01-01'", "CAST(event_time AS TIMESTAMP)"])
        as_of = self.pick(["TIMESTAMP '2026-11-01 00:00:00'", "now()", "event_time", "NULL",
                           "TIMESTAMP '1970-01-01 00:00:00'", "CAST('2026-11-01T00:00:00+02:00' AS TIMESTAMPTZ)",
                           "DATE '2026-11-01'", "'x'"])
        hl = self.pick(["30", "0.5", "1e-300", "1e308", "0", "-1", "NULL", "'30'", "amount", "CAST('NaN' AS DOUBLE)",
                        "9223372036854775807", "CAST('inf' AS DOUBLE)"])
        group = self.pick(["", " GROUP BY profile_id", " GROUP BY channel", " GROUP BY profile_id, channel"])
        keys = group.replace(" GROUP BY ", "")
        sel = f"{keys + ', ' if keys else ''}appetence_score({eng}, {t}, {as_of}, {hl})"
        where = f" WHERE {self.expr(Scope.table('events'), BOOL, 1)}" if self.chance(0.4) else ""
        return Statement(f"SELECT {sel} FROM events{where}{group}", "appetence_score")

    def stitch_statement(self) -> Statement:
        fn = self.pick(["stitch_identities", "stitch_identities", "stitch_dropped_identifiers"])
        valid = ["'identifiers'", "'public.identifiers'",
                 "'SELECT record_id, id_type, id_value FROM identifiers WHERE source = ''crm'''",
                 "'SELECT record_id, id_type, normalize_email(id_value) AS id_value FROM identifiers'",
                 "'SELECT profile_id AS record_id, ''email'' AS id_type, email AS id_value FROM profiles'"]
        src = self.pick(valid) if self.chance(0.5) else self.pick([
            "'identifiers'", "'public.identifiers'", "'no_such_table'", "''",
            "'SELECT record_id, id_type, id_value FROM identifiers WHERE source = ''crm'''",
            "'SELECT record_id, id_type, normalize_email(id_value) AS id_value FROM identifiers'",
            "'SELECT record_id FROM identifiers'", "'SELECT 1'", "'SELECT 1 AS record_id, 2 AS id_type, 3 AS id_value'",
            "'SELECT profile_id AS record_id, ''email'' AS id_type, email AS id_value FROM profiles'",
            "'profiles'", "'SELECT * FROM identifiers; DROP TABLE profiles'", "'DROP TABLE profiles'",
            "'SELEC'", "NULL", "1", "'system.queries'", "'identifiers WHERE 1=1'",
        ])
        args = [src]
        if self.chance(0.6):
            args.append(self.pick(["1", "2", "100", "0", "-1", "9223372036854775807", "99999999999999999999", "1.5",
                                   "'x'", "NULL", "1 + 1"]))
        if self.chance(0.05):
            args.append("3")
        tail = self.pick(["", " LIMIT 5", " ORDER BY 1 LIMIT 3", ""])
        sel = self.pick(["*", "count(*)", "count(DISTINCT 2)"]) if fn == "stitch_identities" else "*"
        if sel == "count(DISTINCT 2)":
            sel = "count(DISTINCT person_id), max(cluster_size)"
            tail = ""
        return Statement(f"SELECT {sel} FROM {fn}({', '.join(args)}){tail}", "stitch")

    def table_at_statement(self) -> Statement:
        t = self.pick(["'profiles'", "'events'", "'public.events'", "'identifiers'", "'no_such'", "''",
                       "'system.queries'", "'public.no_such'", "'a.b.c.d'", "'PROFILES'", "NULL", "1", "profiles",
                       "'segment_data.fz_1'", "'information_schema.tables'"])
        v = self.pick(["0", "1", "2", "-1", "99", "9223372036854775807", "99999999999999999999", "1.5", "NULL",
                       "TIMESTAMP '1970-01-01 00:00:00'", "TIMESTAMP '2100-01-01 00:00:00'", "'2026-11-20'",
                       "'garbage'", "'2026-11-20T08:00:00Z'", "now()", "DATE '2026-01-01'", "1 + 1", "''"])
        args = [t, v] if self.chance(0.9) else self.pick([[t], [t, v, v], []])
        sql = f"SELECT count(*) FROM table_at({', '.join(args)})"
        if self.chance(0.2):
            sql = f"SELECT p.country, count(*) FROM table_at({', '.join(args)}) p JOIN profiles q USING (profile_id) GROUP BY 1"
        return Statement(sql, "table_at")

    def segment_name(self) -> str:
        if self.chance(0.08):
            return self.pick(["_fz", "\"a@b\"", "select", "\"fz 1\"", "x" * 300, "\"é\"", "fz-1", "1fz",
                              "segment_data", "\"\"", "\"a/b\"", "\"..\"", "\"../x\"", "x" * 128])
        if self.segments and self.chance(0.6):
            return self.pick(self.segments)
        return f"fz_{self.r.randint(0, 7)}"

    def segment_query(self) -> str:
        k = self.r.randint(0, 7)
        if k <= 2:
            return f"SELECT profile_id FROM profiles WHERE {self.expr(Scope.table('profiles'), BOOL, 2)}"
        if k == 3:
            return f"SELECT DISTINCT profile_id FROM events WHERE {self.expr(Scope.table('events'), BOOL, 1)}"
        if k == 4 and self.segments:
            other = self.pick(self.segments)
            return f"SELECT profile_id FROM segments.{other} WHERE profile_id > {q(self.literal(STR, 'profile_id').strip(chr(39)))}"
        if k == 5:
            return self.pick(["SELECT country FROM profiles", "SELECT 1 AS profile_id", "SELEC profile_id",
                              "SELECT profile_id, profile_id FROM profiles", "SELECT NULL AS profile_id",
                              "SELECT profile_id FROM no_such_table", "SELECT profile_id FROM segments.no_such"])
        if k == 6:
            return ("SELECT profile_id, count(*) AS n FROM events WHERE profile_id IS NOT NULL "
                    f"GROUP BY profile_id HAVING count(*) > {self.r.randint(1, 80)}")
        return "SELECT profile_id, birth_year, rfm_segment(1, 5) AS rfm FROM profiles"

    def segment_statement(self) -> Statement:
        k = self.r.randint(0, 11)
        name = self.segment_name()
        if k <= 2:
            orr = "OR REPLACE " if self.chance(0.4) else ""
            comment = f" COMMENT {q(self.pick(['fuzz', '', 'it''s'])) }" if self.chance(0.3) else ""
            sql = f"CREATE {orr}SEGMENT {name}{comment} AS {self.segment_query()}"
            if name.startswith("fz_") and name not in self.segments:
                self.segments.append(name)
            return Statement(sql, "segment")
        if k <= 4:
            return Statement(f"REFRESH SEGMENT {name}", "segment")
        if k == 5:
            ie = "IF EXISTS " if self.chance(0.5) else ""
            if name in self.segments and self.chance(0.5):
                self.segments.remove(name)
            return Statement(f"DROP SEGMENT {ie}{name}", "segment")
        if k == 6:
            return Statement(self.pick(["SHOW SEGMENTS", f"DESCRIBE SEGMENT {name}"]), "segment")
        if k == 7:
            pid = self.pick(["'p000000001'", "'p000000150'", "''", "'nobody'", "NULL", "1"])
            return Statement(f"EXPLAIN MEMBERSHIP {pid} IN SEGMENT {name}", "segment")
        if k == 8:
            every = self.pick(["'100 days'", "'12 hours'", "'0 seconds'", "'-5 minutes'", "'1 fortnight'", "''",
                               "'99999999999999999999 days'", "'1.5 hours'", "5"])
            tail = self.pick([f"SET REFRESH EVERY {every}", "SET REFRESH MANUAL", "SET REFRESH", "SET"])
            return Statement(f"ALTER SEGMENT {name} {tail}", "segment")
        if k == 9:
            where = f" WHERE profile_id {self.pick(['<', '>'])} 'p000000100'" if self.chance(0.5) else ""
            return Statement(f"SELECT count(*) FROM {self.pick(['segments', 'segment_data'])}.{name}{where}", "segment")
        if k == 10:
            table = self.pick(["segments", "segment_versions", "segment_history", "segment_changes", "segment_overlap"])
            return Statement(f"SELECT * FROM system.{table} LIMIT 20", "segment")
        return Statement("REFRESH SEGMENTS" if self.chance(0.3) else f"REFRESH SEGMENT {name}", "segment")

    def system_statement(self) -> Statement:
        t = self.pick(["queries", "segments", "table_history", "users", "grants", "workers", "audit", "erasures",
                       "destinations", "activations", "ingest_keys", "segment_versions", "no_such"])
        k = self.r.randint(0, 2)
        if k == 0:
            return Statement(f"SELECT * FROM system.{t} LIMIT {self.r.randint(0, 20)}", "system")
        if k == 1:
            return Statement(f"SELECT count(*) FROM system.{t}", "system")
        return Statement(self.pick([
            "SHOW TABLES", "SHOW ALL", "SELECT * FROM information_schema.columns WHERE table_name = 'events'",
            "SHOW COLUMNS FROM profiles", "DESCRIBE events", "SET datafusion.execution.batch_size = 0",
            "SET seglake.no_such = 1", "SHOW datafusion.execution.batch_size", "SET TIME ZONE 'Mars/Olympus'",
        ]), "system")

    def edge_statement(self) -> Statement:
        """Arithmetic and casts at the edges; typing errors."""
        return Statement(self.pick([
            "SELECT 9223372036854775807 + birth_year FROM profiles",
            "SELECT -9223372036854775807 - 2",
            "SELECT CAST(9223372036854775807 AS INT)",
            "SELECT abs(-9223372036854775808)",
            "SELECT CAST('1e400' AS DOUBLE)",
            "SELECT birth_year % 0 FROM profiles",
            "SELECT birth_year / (birth_year - birth_year) FROM profiles",
            "SELECT CAST('2026-13-45' AS DATE)",
            "SELECT CAST('' AS INT)",
            "SELECT CAST(country AS INT) FROM profiles",
            "SELECT CAST(signup_date AS BOOLEAN) FROM profiles",
            "SELECT sum(country) FROM profiles",
            "SELECT avg(signup_date) FROM profiles",
            "SELECT upper(1)",
            "SELECT birth_year + 'abc' FROM profiles",
            "SELECT substr(first_name, -3, -1) FROM profiles",
            "SELECT substr(first_name, 9223372036854775807, 1) FROM profiles",
            "SELECT lpad('x', -5, 'y')",
            "SELECT repeat('ab', -1)",
            "SELECT repeat('ab', 100000)",
            "SELECT left(first_name, -9223372036854775807) FROM profiles",
            "SELECT split_part(email, '@', 0) FROM profiles",
            "SELECT split_part(email, '', -1) FROM profiles",
            "SELECT date_trunc('fortnight', event_time) FROM events",
            "SELECT event_time + INTERVAL '9999999 years' FROM events",
            "SELECT to_timestamp(9223372036854775807)",
            "SELECT make_date(2026, 2, 30)",
            "SELECT make_date(99999, 1, 1)",
            "SELECT chr(-1)",
            "SELECT chr(1114112)",
            "SELECT round(amount, 9223372036854775807) FROM events",
            "SELECT round(amount, -9223372036854775807) FROM events",
            "SELECT power(10.0, 400)",
            "SELECT ln(0.0), ln(-1.0), log(0, 10)",
            "SELECT sqrt(-1.0)",
            "SELECT ntile(0) OVER (ORDER BY profile_id) FROM profiles",
            "SELECT ntile(-1) OVER (ORDER BY profile_id) FROM profiles",
            "SELECT lag(profile_id, -1) OVER (ORDER BY profile_id) FROM profiles",
            "SELECT lag(profile_id, 9223372036854775807) OVER (ORDER BY profile_id) FROM profiles",
            "SELECT nth_value(profile_id, 0) OVER (ORDER BY profile_id) FROM profiles",
            "SELECT * FROM profiles LIMIT -1",
            "SELECT * FROM profiles LIMIT 9223372036854775807",
            "SELECT * FROM profiles OFFSET 9223372036854775807",
            "SELECT * FROM profiles ORDER BY 99",
            "SELECT country FROM profiles GROUP BY 2",
            "SELECT (SELECT profile_id FROM profiles)",
            "SELECT * FROM generate_series(1, 3)",
            "SELECT * FROM range(1, 10, 0)",
            "SELECT array_agg(country ORDER BY country)[1] FROM profiles",
            "SELECT regexp_replace(email, '(', 'x') FROM profiles",
            "SELECT regexp_like(email, '[') FROM profiles",
            "SELECT arrow_cast(birth_year, 'Int8') FROM profiles",
            "SELECT arrow_cast(1, 'NoSuchType')",
            "SELECT CAST(amount AS DECIMAL(3, 2)) FROM events",
            "SELECT CAST(1e10 AS DECIMAL(38, 38))",
            "SELECT 1 FROM profiles p, profiles q, profiles r "
            "WHERE p.profile_id = q.profile_id AND q.profile_id = r.profile_id AND p.birth_year > 2100",
            "SELECT named_struct('a', 1)['b']",
            "SELECT make_array(1, 2)[0]",
            "SELECT get_field(named_struct('a', 1), 'b')",
            "SELECT unnest(make_array(1, NULL, 3))",
            "SELECT * FROM unnest(make_array())",
            "SELECT to_date('2026-99-99')",
            "SELECT to_timestamp('garbage')",
            "SELECT date_bin(INTERVAL '0 minutes', event_time) FROM events",
            "SELECT date_part('fortnight', event_time) FROM events",
            "SELECT interval '1 fortnight'",
            "VALUES (1, 'a'), (2)",
            "SELECT * FROM (VALUES (1), ('a')) t(x)",
            "EXPLAIN SELECT * FROM no_such",
            "EXPLAIN ANALYZE SELECT count(*) FROM events",
            "EXPLAIN VERBOSE SELECT country, count(*) FROM profiles GROUP BY 1",
            "PREPARE p1 AS SELECT 1",
            "EXECUTE p1",
            "COPY profiles TO '/tmp/x.csv'",
            "CREATE EXTERNAL TABLE fz_ext STORED AS PARQUET LOCATION '/etc'",
            "SELECT * FROM 'demo/profiles/part-00000.parquet'",
        ]), "edge")

    def mutate(self, sql: str) -> str:
        """A broken variant of a statement: a token dropped, repeated,
        swapped or replaced, or the text cut short."""
        toks = sql.split(" ")
        k = self.r.randint(0, 5)
        if len(toks) < 2:
            return sql + " )"
        i = self.r.randrange(len(toks))
        if k == 0:
            del toks[i]
        elif k == 1:
            toks.insert(i, toks[i])
        elif k == 2:
            j = self.r.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
        elif k == 3:
            toks[i] = self.pick(["(", ")", ",", "SELECT", "FROM", "NULL", "'", "\"", "*", "OVER", "JOIN", "1e999",
                                 "--", "/*", ";", "$1", "?", "::INT", "[", "ORDER", "É", "\\"])
        elif k == 4:
            return " ".join(toks[: max(1, i)])
        else:
            toks[i] = toks[i].upper() if toks[i].islower() else toks[i] + "x"
        return " ".join(toks)

    def statement(self) -> Statement:
        self.counter += 1
        k = self.r.random()
        if k < 0.62:
            return self.comparable_query()
        if k < 0.72:
            return self.udf_statement()
        if k < 0.76:
            return self.table_at_statement()
        if k < 0.81:
            return self.segment_statement()
        if k < 0.83:
            return self.system_statement()
        if k < 0.88:
            return self.edge_statement()
        base = self.comparable_query().sql
        if self.chance(0.3):
            # A Seglake-only call inside a query shape.
            return Statement(base.replace("SELECT ", f"SELECT {self.udf_call(None)} AS u, ", 1), "udf")
        return Statement(self.mutate(base), "mutation")
