"""docs/segments.md, executed as written through ADBC, checked independently.

Every ```sql block of the walk-through runs in order on a fresh demo
warehouse. Two placeholders of the doc are replaced: the webhook URL (a
receiver started here, on a free port, that fails its first two requests)
and the buyer's profile id in EXPLAIN MEMBERSHIP. Expected memberships are
computed with DuckDB over the demo's Parquet files (and a Python
implementation of appetence_score), never with Seglake; then history,
changes, overlaps and activation deltas are checked against set
differences, and everything is checked again after a restart.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import re
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

import seglake_harness as h

# Results depend on where the plan runs: every topology of the run.
TOPOLOGIES = h.ALL_TOPOLOGIES
from test_functions import reference_email

DOC = h.REPO_ROOT / "docs" / "segments.md"
DOC_WEBHOOK = "https://ads.example.com/seglake/audiences"
DOC_PROFILE = "'p000000000'"
SECRET = "change-me"
AS_OF = datetime(2026, 11, 1, tzinfo=timezone.utc)
BUYER_EVENT = "walkthrough-purchase-1"


class Receiver:
    """An HTTP receiver on a free port; answers 503 to the first `fail_first`
    requests, records the others."""

    def __init__(self, fail_first: int):
        self.fail_left = fail_first
        self.failed = 0
        self.received: list[tuple[dict, bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server API)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    fail = receiver.fail_left > 0
                    if fail:
                        receiver.fail_left -= 1
                        receiver.failed += 1
                    else:
                        receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(503 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/audiences"

    def batches(self) -> dict[str, dict]:
        """Received bodies by Idempotency-Key (repeats dropped), signatures checked."""
        out = {}
        with self.lock:
            received = list(self.received)
        for headers, body in received:
            want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
            assert headers["x-seglake-signature"] == want
            out[headers["idempotency-key"]] = json.loads(body)
        return out

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def doc_blocks() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 15, "the walk-through lost its SQL blocks"
    return [b.strip() for b in blocks]


def run(conn, sql: str):
    return h.rows(h.run_sql(conn, sql))


# ----------------------------------------------------------------- expected


class Expected:
    """Segment memberships computed by DuckDB + Python over the demo files."""

    def __init__(self, warehouse: Path):
        demo = Path(warehouse) / "demo"
        # The files as generated, listed now: later inserts add files.
        self.event_files = sorted(str(p) for p in (demo / "events").rglob("*.parquet") if "_delta_log" not in p.parts)
        self.profile_files = sorted(str(p) for p in (demo / "profiles").glob("*.parquet"))
        self.extra_events: list[tuple] = []

    def duck(self) -> duckdb.DuckDBPyConnection:
        d = duckdb.connect()
        d.execute("SET TimeZone = 'UTC'")
        d.execute(f"CREATE VIEW profiles AS SELECT * FROM read_parquet({self.profile_files!r})")
        d.execute(
            "CREATE TABLE events AS SELECT profile_id, event_time, event_type, channel, category, amount "
            f"FROM read_parquet({self.event_files!r}, hive_partitioning = true)"
        )
        for row in self.extra_events:
            d.execute("INSERT INTO events VALUES (?, CAST(? AS TIMESTAMPTZ), ?, ?, ?, ?)", row)
        return d

    def segments(self) -> dict[str, set[str]]:
        d = self.duck()
        ids = lambda sql: {r[0] for r in d.execute(sql).fetchall()}  # noqa: E731
        window = lambda days: f"event_time > TIMESTAMPTZ '2026-11-01 00:00:00+00' - INTERVAL {days} DAY"  # noqa: E731
        # RFM table: Champions = R5 F4-5, Loyal Customers = R3-5 F4-5.
        high_value = ids(
            f"""WITH purchases AS (
                  SELECT profile_id, max(event_time) AS lp, count(*) AS orders FROM events
                  WHERE event_type = 'purchase' AND profile_id IS NOT NULL AND {window(365)}
                  GROUP BY profile_id),
                scored AS (
                  SELECT profile_id, ntile(5) OVER (ORDER BY lp, profile_id) AS r,
                         ntile(5) OVER (ORDER BY orders, profile_id) AS f FROM purchases)
                SELECT profile_id FROM scored WHERE r >= 3 AND f >= 4"""
        )
        viewed = ids(
            f"SELECT profile_id FROM events WHERE event_type = 'product_view' AND category = 'electronics' AND {window(30)} AND profile_id IS NOT NULL"
        )
        bought = ids(
            f"SELECT profile_id FROM events WHERE event_type = 'purchase' AND category = 'electronics' AND {window(30)} AND profile_id IS NOT NULL"
        )
        consent_email = ids("SELECT profile_id FROM profiles WHERE consent_email")
        # appetence_score: weights 0.5^(age/30), (E + 1) / (S + 2), events after AS_OF ignored.
        sums = defaultdict(lambda: [0.0, 0.0])
        as_of_us = int(AS_OF.timestamp()) * 1_000_000
        for pid, t_us, event_type in d.execute(
            "SELECT profile_id, epoch_us(event_time), event_type FROM events WHERE channel = 'email' AND profile_id IS NOT NULL"
        ).fetchall():
            sums[pid]
            if t_us > as_of_us:
                continue
            w = 0.5 ** ((as_of_us - t_us) / 1e6 / 86400 / 30)
            sums[pid][0 if event_type in ("email_open", "email_click") else 1] += w
        score = {p: min(1.0, (e + 1) / (s + 2)) for p, (e, s) in sums.items()}
        # Scores within 1e-9 of the threshold may go either way (summation order).
        self.appetence_undecided = {p for p, v in score.items() if abs(v - 0.5) <= 1e-9}
        appetent = {p for p, v in score.items() if v > 0.5 + 1e-9}
        browsers = (consent_email & viewed & appetent) - bought
        sent = dict(
            d.execute(
                f"SELECT profile_id, count(*) FROM events WHERE event_type IN ('email_sent', 'sms_sent', 'push_sent') AND {window(7)} GROUP BY 1"
            ).fetchall()
        )
        pressure_ok = {p for p in ids("SELECT profile_id FROM profiles") if sent.get(p, 0) <= 3}
        self.profiles = {
            r[0]: r[1:] for r in d.execute("SELECT profile_id, email, country, consent_email, consent_ads FROM profiles").fetchall()
        }
        d.close()
        return {
            "high_value": high_value,
            "electronics_browsers": browsers,
            "pressure_ok": pressure_ok,
            "electronics_campaign": browsers & pressure_ok,
        }


def assert_same_members(got: set[str], want: set[str], undecided: set[str], what: str):
    assert got - undecided == want - undecided, (
        what,
        sorted(got - want - undecided)[:10],
        sorted(want - got - undecided)[:10],
    )


def email_hash(email):
    e = reference_email(email)
    return None if e is None else hashlib.sha256(e.encode()).hexdigest()


# --------------------------------------------------------------------- test


@pytest.fixture
def walkthrough(make_demo, launch):
    warehouse = make_demo()
    receiver = Receiver(fail_first=2)
    # The receiver is on loopback, which webhooks only reach when allowed.
    dep = launch.start(warehouse, args=("--refresh-tick-ms", "200", "--allow-webhook", "127.0.0.1"))
    yield warehouse, dep, receiver
    receiver.stop()
    dep.stop()


def test_walkthrough(walkthrough, launch):
    warehouse, dep, receiver = walkthrough
    expected = Expected(warehouse)
    conn = dep.connect()
    blocks = doc_blocks()
    names = ["electronics_browsers", "electronics_campaign", "high_value", "pressure_ok"]

    def execute_until(marker: str):
        """Runs the doc's blocks up to and including the first containing `marker`."""
        while blocks:
            sql = blocks.pop(0).replace(DOC_WEBHOOK, receiver.url)
            if "EXPLAIN MEMBERSHIP" in sql:
                (buyer,) = run(conn, f"SELECT profile_id FROM events WHERE event_id = '{BUYER_EVENT}'")[0]
                sql = sql.replace(DOC_PROFILE, f"'{buyer}'")
                explained[buyer] = run(conn, sql)
            else:
                results.append((sql, run(conn, sql)))
            if marker in sql:
                return
        raise AssertionError(f"no block with {marker!r}")

    results: list = []
    explained: dict = {}

    # ---- definitions, up to the first refresh
    execute_until("REFRESH SEGMENTS")
    want1 = expected.segments()
    undecided = expected.appetence_undecided
    assert len(want1["high_value"]) > 50 and len(want1["electronics_campaign"]) >= 2, {k: len(v) for k, v in want1.items()}
    snap1 = {n: {r[0] for r in run(conn, f"SELECT profile_id FROM segment_data.{n}")} for n in names}
    for n in names:
        assert_same_members(snap1[n], want1[n], undecided, n)
    live = {r[0] for r in run(conn, "SELECT profile_id FROM segments.electronics_campaign")}
    assert live == snap1["electronics_campaign"]

    history = run(conn, "SELECT segment, size, entered, exited, version FROM system.segment_history ORDER BY segment")
    assert history == [(n, len(snap1[n]), len(snap1[n]), 0, 1) for n in names]

    overlap = {(a, b): (sa, sb, i, j) for a, b, sa, sb, i, j in run(conn, "SELECT * FROM system.segment_overlap")}
    assert len(overlap) == 6
    for (a, b), (sa, sb, i, j) in overlap.items():
        inter = len(snap1[a] & snap1[b])
        union = len(snap1[a] | snap1[b])
        assert (sa, sb, i) == (len(snap1[a]), len(snap1[b]), inter), (a, b)
        assert j == pytest.approx(inter / union if union else 0.0)

    # ---- activation of refresh 1
    crm = Path(warehouse) / "exports" / "crm" / "electronics_campaign"

    def csv_rows(path: Path):
        with path.open() as f:
            return list(csv.DictReader(f))

    (refresh1,) = run(conn, "SELECT refresh_id FROM system.segment_history WHERE segment = 'electronics_campaign'")[0]
    entered_file = csv_rows(crm / f"{refresh1}-entered.csv")
    assert {r["profile_id"] for r in entered_file} == snap1["electronics_campaign"]  # all consent to email
    for r in entered_file:
        assert (r["email_sha256"] or None) == email_hash(expected.profiles[r["profile_id"]][0]), r
    assert csv_rows(crm / f"{refresh1}-exited.csv") == []

    consent_ads = {p for p, v in expected.profiles.items() if v[3]}

    def webhook_rows(refresh_id: str, change: str) -> list[dict]:
        out = []
        for key, body in receiver.batches().items():
            if key.startswith(f"{refresh_id}:{change}:"):
                assert (body["segment"], body["refresh_id"], body["change"]) == ("high_value", refresh_id, change)
                assert 0 < len(body["rows"]) <= 50
                out.extend(body["rows"])
        return out

    (hv1,) = run(conn, "SELECT refresh_id FROM system.segment_history WHERE segment = 'high_value'")[0]
    sent = webhook_rows(hv1, "entered")
    assert sorted(r["profile_id"] for r in sent) == sorted(snap1["high_value"] & consent_ads)
    for r in sent:
        p = expected.profiles[r["profile_id"]]
        assert (r["email_sha256"], r["country"]) == (email_hash(p[0]), p[1])
    assert receiver.failed == 2
    deliveries = run(
        conn,
        "SELECT destination, segment, change, rows_sent, status, attempts FROM system.activations ORDER BY destination, change",
    )
    assert deliveries == [
        ("ads_audience", "high_value", "entered", len(sent), "ok", deliveries[0][5]),
        ("ads_audience", "high_value", "exited", 0, "ok", 0),
        ("crm_exports", "electronics_campaign", "entered", len(entered_file), "ok", 1),
        ("crm_exports", "electronics_campaign", "exited", 0, "ok", 1),
    ]
    # The two 503s were retried within the first batch.
    assert deliveries[0][5] == -(-len(sent) // 50) + 2

    # ---- a purchase, EXPLAIN MEMBERSHIP, refresh 2
    execute_until("INSERT INTO events")
    buyer = min(snap1["electronics_campaign"])
    expected.extra_events.append((buyer, "2026-10-31 12:00:00+00", "purchase", "web", "electronics", 899.0))
    execute_until("EXPLAIN MEMBERSHIP")
    rows = {(c, e): (r, m) for c, e, r, m in explained[buyer]}
    assert rows[("member now", None)] == ("no", False)
    assert rows[("member at last refresh", None)] == ("yes", True)
    failed = [e for (c, e), (r, m) in rows.items() if c.startswith("WHERE") and r == "failed"]
    assert len(failed) == 1 and failed[0].startswith("profile_id NOT IN"), explained[buyer]
    satisfied = [e for (c, e), (r, m) in rows.items() if c.startswith("WHERE") and r.startswith("satisfied")]
    assert len(satisfied) == 3

    execute_until("REFRESH SEGMENTS")
    want2 = expected.segments()
    snap2 = {n: {r[0] for r in run(conn, f"SELECT profile_id FROM segment_data.{n}")} for n in names}
    for n in names:
        assert_same_members(snap2[n], want2[n], undecided | expected.appetence_undecided, n)
    assert buyer in snap1["electronics_campaign"] and buyer not in snap2["electronics_campaign"]

    for n in names:
        (rid, size, entered, exited) = run(
            conn,
            f"SELECT refresh_id, size, entered, exited FROM system.segment_history WHERE segment = '{n}' ORDER BY refreshed_at DESC LIMIT 1",
        )[0]
        assert (size, entered, exited) == (len(snap2[n]), len(snap2[n] - snap1[n]), len(snap1[n] - snap2[n])), n
        changes = run(conn, f"SELECT profile_id, change FROM system.segment_changes WHERE refresh_id = '{rid}'")
        assert {p for p, c in changes if c == "entered"} == snap2[n] - snap1[n]
        assert {p for p, c in changes if c == "exited"} == snap1[n] - snap2[n]
        if n == "electronics_campaign":
            assert [r["profile_id"] for r in csv_rows(crm / f"{rid}-exited.csv")] == [buyer]
            assert csv_rows(crm / f"{rid}-entered.csv") == [
                {"profile_id": p, "email_sha256": email_hash(expected.profiles[p][0]) or ""}
                for p in sorted(snap2[n] - snap1[n])
            ]
        if n == "high_value":
            for change, want in (("entered", snap2[n] - snap1[n]), ("exited", snap1[n] - snap2[n])):
                assert sorted(r["profile_id"] for r in webhook_rows(rid, change)) == sorted(want & consent_ads)

    # The remaining blocks (changes listing, time travel) run as written.
    while blocks:
        execute_until(blocks[0])
    changes_block = next(r for sql, r in results if "FROM system.segment_changes" in sql)
    assert ("electronics_campaign", buyer, "exited") in changes_block
    time_travel = next(r for sql, r in results if "table_at(" in sql)
    assert time_travel == [(len(snap1["electronics_campaign"]),)]
    # ---- restart: definitions, history, schedules and activations survive
    keys_before = set(receiver.batches())
    run(conn, "ALTER SEGMENT pressure_ok SET REFRESH EVERY '1 second'")
    conn.close()
    dep = launch.restart(dep)
    conn = dep.connect()
    shown = run(conn, "SHOW SEGMENTS")
    assert [(r[0], r[3], r[4]) for r in shown] == [
        ("electronics_browsers", None, len(snap2["electronics_browsers"])),
        ("electronics_campaign", "15 minutes", len(snap2["electronics_campaign"])),
        ("high_value", None, len(snap2["high_value"])),
        ("pressure_ok", "1 second", len(snap2["pressure_ok"])),
    ]
    assert [r[6] for r in shown] == [None, "crm_exports", "ads_audience", None]
    versions = run(conn, "DESCRIBE SEGMENT high_value")
    assert len(versions) == 1 and versions[0][0] == 1 and "rfm_segment" in versions[0][5]

    # The scheduler, restarted with the server, refreshes pressure_ok again.
    count = lambda: run(conn, "SELECT count(*) FROM system.segment_history WHERE segment = 'pressure_ok'")[0][0]  # noqa: E731
    after_restart = count()
    deadline = time.monotonic() + 60
    while count() < after_restart + 2:
        assert time.monotonic() < deadline, "the scheduled refresh did not run after the restart"
        time.sleep(0.2)  # poll the history until the deadline
    run(conn, "ALTER SEGMENT pressure_ok SET REFRESH MANUAL")

    # A manual refresh with no movement sends nothing, and nothing is re-sent.
    assert run(conn, "SELECT count(*) FROM segments.high_value")[0][0] == len(snap2["high_value"])
    h.run_command(conn, "REFRESH SEGMENT high_value")
    last = run(
        conn,
        "SELECT entered, exited FROM system.segment_history WHERE segment = 'high_value' ORDER BY refreshed_at DESC LIMIT 1",
    )
    assert last == [(0, 0)]
    assert set(receiver.batches()) == keys_before
    conn.close()
