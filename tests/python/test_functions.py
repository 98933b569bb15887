"""Seglake's marketing SQL functions through the ADBC Flight SQL driver.

Every expected value comes from an independent Python reference over the
same demo files (read with DuckDB), written from the function specs in
docs/functions.md; `normalize_phone` is checked against the Python port of
libphonenumber (`phonenumbers`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timezone

import phonenumbers
import pytest

import seglake_harness as h

# Results depend on where the plan runs (functions run on workers too).
TOPOLOGIES = h.ALL_TOPOLOGIES


def fetch(conn, sql, params=None):
    cur = conn.cursor()
    try:
        cur.execute(sql, params)
        return cur.fetchall()
    finally:
        cur.close()


# ---------------------------------------------------------------- rfm_segment

GRID = {
    1: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
    2: ["Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"],
    3: ["About To Sleep", "About To Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"],
    4: ["Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers", "Loyal Customers"],
    5: ["New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"],
}


def test_rfm_segment_grid(conn):
    rows = fetch(
        conn,
        "SELECT r, f, rfm_segment(r, f) FROM (SELECT * FROM (VALUES (0),(1),(2),(3),(4),(5),(6)) AS a(r) "
        "CROSS JOIN (VALUES (0),(1),(2),(3),(4),(5),(6), (NULL)) AS b(f)) ORDER BY r, f",
    )
    assert len(rows) == 7 * 8
    for r, f, seg in rows:
        expected = GRID[r][f - 1] if f is not None and 1 <= r <= 5 and 1 <= f <= 5 else None
        assert seg == expected, (r, f)


# ------------------------------------------------------------ normalize_email


def reference_email(s):
    if s is None:
        return None
    s = s.strip().lower()
    if s.count("@") != 1 or any(c.isspace() for c in s):
        return None
    local, domain = s.split("@")
    if not local or not domain or "." not in domain:
        return None
    if domain in ("gmail.com", "googlemail.com"):
        domain = "gmail.com"
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return None
    return f"{local}@{domain}"


def test_normalize_email_matches_reference(conn, duck):
    raw = [v for (v,) in duck.rows("SELECT id_value FROM identifiers WHERE id_type = 'email'")]
    assert len(raw) > 1000
    got = dict(
        fetch(conn, "SELECT id_value, normalize_email(id_value) FROM identifiers WHERE id_type = 'email'")
    )
    mismatches = [(v, got[v], reference_email(v)) for v in raw if v is not None and got[v] != reference_email(v)]
    assert not mismatches, mismatches[:10]
    # Messy forms of one address meet again.
    (row,) = fetch(conn, "SELECT normalize_email(?), normalize_email(?)", (" Jean.Dupont@GoogleMail.com", "jeandupont+promo@gmail.com"))
    assert row == ("jeandupont@gmail.com", "jeandupont@gmail.com")


# ------------------------------------------------------------ normalize_phone


def reference_phone(s, region):
    if s is None:
        return None
    try:
        n = phonenumbers.parse(s, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(n):
        return None
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164)


def test_normalize_phone_matches_libphonenumber(conn, duck):
    raw = [v for (v,) in duck.rows("SELECT DISTINCT id_value FROM identifiers WHERE id_type = 'phone'")]
    assert len(raw) > 500
    got = dict(fetch(conn, "SELECT DISTINCT id_value, normalize_phone(id_value, 'FR') FROM identifiers WHERE id_type = 'phone'"))
    mismatches = [(v, got[v], reference_phone(v, "FR")) for v in raw if v is not None and got[v] != reference_phone(v, "FR")]
    assert not mismatches, mismatches[:10]
    (row,) = fetch(conn, "SELECT normalize_phone(?, ?), normalize_phone(?, ?)", ("(650) 253-0000", "us", "12", "FR"))
    assert row == ("+16502530000", None)


# ------------------------------------------------------------ appetence_score

ENGAGEMENT = ("email_open", "email_click", "sms_click", "push_open", "ad_click")
AS_OF = datetime(2026, 11, 1, tzinfo=timezone.utc)


def test_appetence_score_matches_reference(conn, duck):
    where = "profile_id IS NOT NULL AND profile_id < 'p000000300'"
    events = duck.rows(f"SELECT profile_id, channel, event_type, event_time FROM events WHERE {where}")
    sums = defaultdict(lambda: [0.0, 0.0])
    for profile, channel, event_type, t in events:
        key = (profile, channel)
        sums[key]  # every group appears, even with no usable row
        if t > AS_OF:
            continue
        age_days = (AS_OF - t).total_seconds() / 86400
        w = 0.5 ** (age_days / 30)
        sums[key][0 if event_type in ENGAGEMENT else 1] += w
    expected = {k: min(1.0, (e + 1) / (s + 2)) for k, (e, s) in sums.items()}
    got = fetch(
        conn,
        "SELECT profile_id, channel, appetence_score(event_type IN ('email_open','email_click','sms_click','push_open','ad_click'), "
        f"event_time, TIMESTAMP '2026-11-01 00:00:00', 30) FROM events WHERE {where} GROUP BY 1, 2",
    )
    assert len(got) == len(expected) > 100
    for profile, channel, score in got:
        assert math.isclose(score, expected[(profile, channel)], rel_tol=1e-9, abs_tol=1e-12), (profile, channel)
    with pytest.raises(Exception, match="half_life"):
        fetch(conn, "SELECT appetence_score(true, TIMESTAMP '2026-01-01', TIMESTAMP '2026-02-01', 0)")


# ---------------------------------------------------------- stitch_identities


def reference_stitch(rows, max_records):
    """Union-find over (id_type, id_value) shared by at most max_records records."""
    records = sorted({r for r, _, _ in rows if r is not None})
    by_identifier = defaultdict(set)
    for record, id_type, id_value in rows:
        if record is not None and id_type is not None and id_value:
            by_identifier[(id_type, id_value)].add(record)
    parent = {r: r for r in records}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    dropped = {}
    for ident, members in by_identifier.items():
        if len(members) > max_records:
            dropped[ident] = len(members)
            continue
        members = sorted(members)
        for m in members[1:]:
            a, b = find(members[0]), find(m)
            if a != b:
                parent[max(a, b)] = min(a, b)
    clusters = defaultdict(list)
    for r in records:
        clusters[find(r)].append(r)
    out = {}
    for members in clusters.values():
        person = min(members)
        for m in members:
            out[m] = (person, len(members))
    return out, dropped


SOURCE = (
    "SELECT record_id, id_type, CASE id_type WHEN ''email'' THEN normalize_email(id_value) "
    "WHEN ''phone'' THEN normalize_phone(id_value, ''FR'') ELSE id_value END AS id_value FROM identifiers"
)


@pytest.mark.parametrize("max_records", [100, 5])
def test_stitch_identities_matches_union_find(conn, max_records):
    normalized = fetch(conn, SOURCE.replace("''", "'"))
    expected, dropped = reference_stitch(normalized, max_records)
    got = fetch(conn, f"SELECT record_id, person_id, cluster_size FROM stitch_identities('{SOURCE}', {max_records})")
    assert len(got) == len(expected)
    assert {r: (p, n) for r, p, n in got} == expected
    got_dropped = fetch(conn, f"SELECT id_type, id_value, record_count FROM stitch_dropped_identifiers('{SOURCE}', {max_records})")
    assert {(t, v): n for t, v, n in got_dropped} == dropped
    if max_records == 5:
        assert dropped, "the demo has shared identifiers above 5 records"
