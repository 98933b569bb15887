"""Load: many concurrent ADBC clients against one `seglake serve`, mixing the
benchmark suite's queries with bulk ingests and HTTP collector posts, under
admission control and a memory pool. Issue 22's "Load" measurement.

    benchmarks/.venv/bin/python benchmarks/python/load.py \
        --bin target/release/seglake --warehouse benchmarks/data/sf1 \
        --clients 64 --seconds 120 --max-running 4 --memory-mb 2048 \
        --out benchmarks/results/load-64

Each client loops until the time is up: 80 % a query of the suite (drawn at
random, `--exclude` leaves some out), 10 % an ADBC bulk ingest of 200 event
rows into `load_ingest`, 10 % a collector post of 20 events. Recorded: every
operation's latency and outcome (an error is listed with its ADBC status),
the statements' queue wait (`started_at - queued_at` of system.queries), the
server's peak resident memory (sampled from /proc every 200 ms).

Prints (and writes to OUT.json / OUT.md) queries/s, p50/p95/p99 latency per
kind, queue wait percentiles, errors by status, peak RSS against the pool.
`tests/python/test_load.py` runs a short version in CI.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa

USER, PASSWORD = "seglake", "seglake"
LISTENING = re.compile(r"^listening on (127\.0\.0\.1:\d+)$")
COLLECTING = re.compile(r"^collector listening on (127\.0\.0\.1:\d+)$")
INGEST_TABLE = "load_ingest"


def suite_queries(directory: Path, exclude: set[str]) -> dict[str, str]:
    """The benchmark suite's queries by name (q01, ...)."""
    out = {}
    for path in sorted(directory.glob("q*.sql")):
        name = path.name.split("_", 1)[0]
        if name not in exclude:
            out[name] = path.read_text()
    return out


class Server:
    """`seglake serve` on 127.0.0.1:0 with the HTTP collector; its
    addresses are read from the lines it prints."""

    def __init__(self, binary: str, warehouse: str, flags: list[str], log: Path):
        argv = [binary, "serve", "--warehouse", warehouse, "--listen", "127.0.0.1:0",
                "--collect", "127.0.0.1:0", *flags]
        self.log = open(log, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.uri = self.collector = None
        deadline = time.monotonic() + 120
        while self.uri is None or self.collector is None:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"seglake serve exited (code {self.proc.wait()}), see {log}")
            if time.monotonic() > deadline:
                raise RuntimeError("seglake serve did not start in 120 s")
            if m := LISTENING.match(line.strip()):
                self.uri = f"grpc://{m.group(1)}"
            elif m := COLLECTING.match(line.strip()):
                self.collector = f"http://{m.group(1)}"
        # Keep reading stdout so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(timeout=60)
        self.log.close()
        return code


def connect(uri: str):
    import adbc_driver_flightsql.dbapi as flightsql

    return flightsql.connect(uri, db_kwargs={"username": USER, "password": PASSWORD}, autocommit=True)


def status_name(error: BaseException) -> str:
    code = getattr(error, "status_code", None)
    return getattr(code, "name", None) or type(error).__name__


def ingest_batch(rng: random.Random, client: int, n: int = 200) -> pa.Table:
    base = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    return pa.table({
        "event_id": [f"load-{client}-{rng.getrandbits(48):x}" for _ in range(n)],
        "profile_id": [f"p{rng.randrange(100_000)}" for _ in range(n)],
        "event_time": pa.array([base + dt.timedelta(seconds=rng.randrange(86400 * 30)) for _ in range(n)],
                               pa.timestamp("us", "UTC")),
        "event_type": [rng.choice(["page_view", "purchase", "email_open"]) for _ in range(n)],
        "amount": [round(rng.uniform(1, 500), 2) for _ in range(n)],
    })


def collector_post(url: str, rng: random.Random, client: int, n: int = 20) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    events = [{
        "event_id": f"load-post-{client}-{rng.getrandbits(48):x}",
        "profile_id": f"p{rng.randrange(100_000)}",
        "event_time": (now - dt.timedelta(seconds=rng.randrange(3600))).isoformat(),
        "event_type": rng.choice(["page_view", "purchase", "email_open"]),
        "channel": "web",
        "source": "web",
    } for _ in range(n)]
    auth = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    req = urllib.request.Request(f"{url}/v1/events", data=json.dumps(events).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": auth})
    try:
        with urllib.request.urlopen(req, timeout=300) as response:
            response.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"collector HTTP {e.code}: {e.read()[:200]!r}") from e


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = (len(values) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def run_load(server: Server, queries: dict[str, str], *, clients: int, seconds: float,
             seed: int = 7, mix: tuple[float, float] = (0.8, 0.9)) -> dict:
    """Runs the load; the report (a dict)."""
    setup = connect(server.uri)
    with setup.cursor() as cur:
        cur.adbc_ingest(INGEST_TABLE, ingest_batch(random.Random(seed), -1, 1), mode="create_append")
    setup.close()
    names = sorted(queries)
    lock = threading.Lock()
    ops: list[tuple[str, float, str | None]] = []  # (kind, seconds, error)
    errors: list[str] = []
    stop_at = time.monotonic() + seconds
    peak = {"rss": server.rss_bytes()}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            if server.alive():
                peak["rss"] = max(peak["rss"], server.rss_bytes())

    def client(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        conn = connect(server.uri)
        try:
            while time.monotonic() < stop_at:
                r = rng.random()
                kind = "query" if r < mix[0] else "ingest" if r < mix[1] else "collect"
                started = time.monotonic()
                error = None
                try:
                    if kind == "query":
                        name = rng.choice(names)
                        kind = f"query:{name}"
                        with conn.cursor() as cur:
                            cur.execute(queries[name])
                            cur.fetch_arrow_table()
                    elif kind == "ingest":
                        with conn.cursor() as cur:
                            cur.adbc_ingest(INGEST_TABLE, ingest_batch(rng, i), mode="append")
                    else:
                        collector_post(server.collector, rng, i)
                except Exception as e:  # noqa: BLE001 - every failure is counted
                    error = f"{status_name(e)}: {str(e).splitlines()[0][:200]}"
                took = time.monotonic() - started
                with lock:
                    ops.append((kind, took, error))
                    if error:
                        errors.append(f"{kind}: {error}")
        finally:
            conn.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()

    # A new session: the server keeps --max-sessions-per-user sessions per
    # user, the clients' included.
    last = connect(server.uri)
    with last.cursor() as cur:
        cur.execute("SELECT kind, queued_at, started_at FROM system.queries WHERE started_at IS NOT NULL")
        waits = cur.fetch_arrow_table().to_pylist()
    last.close()
    queue_wait_ms = [(w["started_at"] - w["queued_at"]).total_seconds() * 1000 for w in waits]

    by_kind: dict[str, list[float]] = {}
    for kind, took, error in ops:
        if error is None:
            by_kind.setdefault(kind.split(":")[0], []).append(took * 1000)
    error_counts: dict[str, int] = {}
    for e in errors:
        status = e.split(": ", 2)[1] if ": " in e else e
        error_counts[status] = error_counts.get(status, 0) + 1
    queries_done = len(by_kind.get("query", []))
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "operations": len(ops),
        "queries": queries_done,
        "queries_per_s": round(queries_done / elapsed, 2),
        "latency_ms": {
            kind: {"n": len(v), "p50": round(percentile(v, 0.5), 1), "p95": round(percentile(v, 0.95), 1),
                   "p99": round(percentile(v, 0.99), 1)}
            for kind, v in sorted(by_kind.items())
        },
        "queue_wait_ms": {
            "n": len(queue_wait_ms),
            "p50": round(percentile(queue_wait_ms, 0.5) or 0, 1),
            "p95": round(percentile(queue_wait_ms, 0.95) or 0, 1),
            "p99": round(percentile(queue_wait_ms, 0.99) or 0, 1),
        },
        "errors": len(errors),
        "errors_by_status": error_counts,
        "error_samples": errors[:20],
        "peak_rss_bytes": peak["rss"],
        "server_alive": server.alive(),
    }


def markdown(report: dict, flags: list[str], label: str) -> str:
    lines = [
        f"### load (`{label}`)",
        "",
        f"- {report['clients']} ADBC clients for {report['seconds']} s; server flags: `{' '.join(flags)}`; "
        f"commit {report.get('commit', '?')}, finished {report.get('finished', '?')}, "
        f"load average at the end {report.get('load_average', '?')}",
        f"- {report['operations']} operations, {report['queries']} queries, "
        f"**{report['queries_per_s']} queries/s**; errors: {report['errors']} {report['errors_by_status'] or ''}",
        f"- server peak RSS {report['peak_rss_bytes'] / 2**20:.0f} MiB; server alive at the end: {report['server_alive']}",
        f"- queue wait (system.queries, last {report['queue_wait_ms']['n']} statements): "
        f"p50 {report['queue_wait_ms']['p50']} ms, p95 {report['queue_wait_ms']['p95']} ms, "
        f"p99 {report['queue_wait_ms']['p99']} ms",
        "",
        "| kind | n | p50 | p95 | p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, s in report["latency_ms"].items():
        lines.append(f"| {kind} | {s['n']} | {s['p50']} ms | {s['p95']} ms | {s['p99']} ms |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", default="target/release/seglake")
    parser.add_argument("--warehouse", default="benchmarks/data/sf1")
    parser.add_argument("--queries", default=str(Path(__file__).resolve().parents[1] / "queries"))
    parser.add_argument("--exclude", default="", help="comma-separated query names (q09,...)")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--max-running", type=int, default=4)
    parser.add_argument("--memory-mb", type=int, default=2048)
    parser.add_argument("--out", default="benchmarks/results/load-64")
    args = parser.parse_args()
    flags = ["--max-running-queries", str(args.max_running), "--memory-limit-mb", str(args.memory_mb),
             "--max-sessions-per-user", str(args.clients + 8)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    server = Server(args.bin, args.warehouse, flags, out.with_suffix(".log"))
    try:
        queries = suite_queries(Path(args.queries), set(filter(None, args.exclude.split(","))))
        report = run_load(server, queries, clients=args.clients, seconds=args.seconds)
    finally:
        code = server.stop()
    report["finished"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    report["commit"] = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                                      text=True).stdout.strip()
    report["load_average"] = os.getloadavg()
    report["server_exit_code"] = code
    report["memory_pool_bytes"] = args.memory_mb * 2**20
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report, flags, out.name)
    out.with_suffix(".md").write_text(text)
    print(text)
    return 0 if report["errors"] == 0 and report["server_alive"] else 1


if __name__ == "__main__":
    sys.exit(main())
