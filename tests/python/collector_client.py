"""A minimal HTTP client for the event collector (standard library only)
and generators of test events whose expected rows are computed here, in
Python, independently of the server."""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
import urllib.error
import urllib.request

import seglake_harness as h

UTC = dt.timezone.utc
HTTP_TIMEOUT_S = 120

COLUMNS = (
    "event_id",
    "profile_id",
    "device_id",
    "event_time",
    "event_type",
    "channel",
    "source",
    "category",
    "product_id",
    "amount",
)


def basic(user: str = h.DEFAULT_USER, password: str = h.DEFAULT_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    authorization: str | None = None,
    headers: dict[str, str] | None = None,
):
    """(status, headers, parsed JSON body or None)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    if body is not None:
        req.add_header("Content-Type", "application/json")
    if authorization:
        req.add_header("Authorization", authorization)
    try:
        # An https:// collector of the suite is verified with its test CA.
        context = h.https_context() if url.startswith("https://") else None
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S, context=context) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode(errors="replace")
    return status, headers, payload


def health(base_url: str) -> dict:
    """The collector's /health answer (no authentication)."""
    status, _, body = request(f"{base_url}/health")
    assert status == 200, body
    return body


def post_events(
    base_url: str,
    events,
    *,
    authorization: str | None = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
):
    body = raw if raw is not None else json.dumps(events).encode()
    return request(
        f"{base_url}/v1/events",
        method="POST",
        body=body,
        authorization=authorization or basic(),
        headers=headers,
    )


def make_events(rng: random.Random, prefix: str, n: int, *, with_ids: bool = True) -> list[dict]:
    """`n` valid events whose profile ids start with `prefix` (and event ids
    too, when `with_ids`); times in various UTC offsets."""
    out = []
    base = dt.datetime(2026, 10, 30, 22, 0, tzinfo=UTC)
    for i in range(n):
        offset = dt.timezone(dt.timedelta(hours=rng.choice([-5, 0, 1, 2, 9])))
        t = (base + dt.timedelta(seconds=rng.randrange(0, 3 * 86400), microseconds=rng.randrange(0, 10**6))).astimezone(offset)
        e = {
            "profile_id": f"{prefix}-p{rng.randrange(5)}",
            "event_time": t.isoformat(),
            "event_type": rng.choice(["page_view", "purchase", "email_open"]),
            "channel": rng.choice(["web", "app", "email"]),
            "source": rng.choice(["web", "app", "crm"]),
        }
        if with_ids:
            e["event_id"] = f"{prefix}-e{i}"
        if rng.random() < 0.7:
            e["device_id"] = f"d{rng.randrange(100)}"
        if e["event_type"] == "purchase":
            e["category"] = rng.choice(["books", "home"])
            e["product_id"] = f"sku{rng.randrange(50)}"
            e["amount"] = round(rng.uniform(1, 500), 2)
        elif rng.random() < 0.2:
            e["device_id"] = None  # explicit null
        out.append(e)
    return out


def expected_row(e: dict) -> tuple:
    """The row an event must become (event_id excluded when generated):
    columns COLUMNS + event_date, times in UTC."""
    t = dt.datetime.fromisoformat(e["event_time"]).astimezone(UTC)
    return (
        e.get("event_id"),
        e.get("profile_id"),
        e.get("device_id"),
        t,
        e["event_type"],
        e["channel"],
        e["source"],
        e.get("category"),
        e.get("product_id"),
        float(e["amount"]) if e.get("amount") is not None else None,
        t.date(),
    )


SELECT_ROWS = "SELECT " + ", ".join(COLUMNS) + ", event_date FROM events"
