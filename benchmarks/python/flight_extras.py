"""Flight SQL transfer, ingest and concurrency measurements for
`seglake-bench transfer` / `seglake-bench concurrency`. Prints one JSON
document on standard output.

  flight_extras.py transfer    --uri URI --data WAREHOUSE --rows N --reps R
  flight_extras.py ingest      --uri URI --data WAREHOUSE --rows N --reps R
  flight_extras.py collect     --uri URI --collector URL --data WAREHOUSE --rows N --batch B --posters P --reps R
  flight_extras.py concurrency --uri URI --clients 1,4,16 --passes P [--exclude q09]
"""

import argparse
import base64
import concurrent.futures as cf
import datetime as dt
import glob
import json
import multiprocessing as mp
import os
import random
import time
import urllib.request

import pyarrow as pa
import pyarrow.dataset as ds

COLUMNS = ["event_id", "profile_id", "device_id", "event_time", "event_type",
           "channel", "source", "category", "product_id", "amount"]


def connect(uri):
    import adbc_driver_flightsql.dbapi as flightsql
    return flightsql.connect(uri, db_kwargs={"username": "seglake", "password": "seglake"}, autocommit=True)


def fetch(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetch_arrow_table()


def local_events(data, rows):
    dataset = ds.dataset(os.path.join(data, "demo", "events"), format="parquet", partitioning="hive")
    return dataset.head(rows, columns=COLUMNS)


def _pb_bytes(number, value):
    """A length-delimited protobuf field (enough for the one message below)."""
    def varint(n):
        out = bytearray()
        while True:
            b, n = n & 0x7F, n >> 7
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)
    return varint((number << 3) | 2) + varint(len(value)) + value


class RawFlightSql:
    """The same query through pyarrow's own Flight client (C++ gRPC), with
    the Flight SQL command encoded by hand: GetFlightInfo, then DoGet of
    its ticket. Separates the server's and the ADBC driver's shares of
    the transfer time."""

    def __init__(self, uri):
        import pyarrow.flight as flight
        self.flight = flight
        self.client = flight.FlightClient(uri)
        header = self.client.authenticate_basic_token("seglake", "seglake")
        self.options = flight.FlightCallOptions(headers=[header])

    def fetch(self, sql):
        query = _pb_bytes(1, sql.encode())
        command = (_pb_bytes(1, b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery")
                   + _pb_bytes(2, query))
        info = self.client.get_flight_info(self.flight.FlightDescriptor.for_command(command), self.options)
        batches = []
        for endpoint in info.endpoints:
            batches.extend(self.client.do_get(endpoint.ticket, self.options).read_all().to_batches())
        return pa.Table.from_batches(batches, schema=info.schema)


def transfer(args):
    conn = connect(args.uri)
    raw = RawFlightSql(args.uri)
    sql = f"SELECT {', '.join(COLUMNS)} FROM events LIMIT {args.rows}"
    paths = {
        "flight": lambda: fetch(conn, sql),
        "flight_raw": lambda: raw.fetch(sql),
        "pyarrow_local": lambda: local_events(args.data, args.rows),
    }
    out = {"rows": args.rows, **{path: [] for path in paths}}
    for _ in range(args.reps):
        # Alternate: ADBC, pyarrow.flight, then the local read of the same columns.
        for path, run in paths.items():
            start = time.perf_counter()
            t = run()
            s = time.perf_counter() - start
            out[path].append({"seconds": s, "rows": t.num_rows, "bytes": t.nbytes,
                              "mb_per_s": t.nbytes / s / 1e6})
            del t
    return out


def ingest(args):
    conn = connect(args.uri)
    table = local_events(args.data, args.rows)
    # The Go driver refuses gRPC messages over 16 MiB: send 64k-row batches.
    table = pa.Table.from_batches(table.to_batches(max_chunksize=65536))
    out = {"rows": table.num_rows, "bytes": table.nbytes, "runs": []}
    for i in range(args.reps):
        name = f"bench_ingest_{os.getpid()}_{i}"
        with conn.cursor() as cur:
            start = time.perf_counter()
            cur.adbc_ingest(name, table, mode="create")
            s = time.perf_counter() - start
        count = fetch(conn, f"SELECT count(*) AS n FROM {name}")["n"][0].as_py()
        out["runs"].append({"seconds": s, "rows_per_s": table.num_rows / s,
                            "mb_per_s": table.nbytes / s / 1e6, "rows_read_back": count})
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE {name}")
    return out


def collect_bodies(data, rows, batch, run):
    """JSON request bodies of `batch` events each, from the benchmark's own
    events (columns the collector accepts; event ids made unique per run so
    that no run is deduplicated against an earlier one)."""
    t = local_events(data, rows)
    cols = {c: t.column(c).to_pylist() for c in COLUMNS}
    times = [ts.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") for ts in cols["event_time"]]
    events = []
    for i in range(t.num_rows):
        e = {c: cols[c][i] for c in COLUMNS if c != "event_time"}
        e["event_id"] = f"r{run}-{e['event_id']}"
        e["event_time"] = times[i]
        events.append(e)
    return [json.dumps(events[i:i + batch]).encode() for i in range(0, len(events), batch)]


def post(url, auth, body):
    req = urllib.request.Request(url + "/v1/events", data=body, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": auth})
    start = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as resp:
        answer = json.loads(resp.read())
    return time.perf_counter() - start, answer


def collect(args):
    conn = connect(args.uri)
    auth = "Basic " + base64.b64encode(b"seglake:seglake").decode()
    out = {"rows": args.rows, "batch": args.batch, "clients": args.posters, "runs": []}
    committed = 0
    for run in range(args.reps):
        bodies = collect_bodies(args.data, args.rows, args.batch, run)
        start = time.perf_counter()
        with cf.ThreadPoolExecutor(max_workers=args.posters) as pool:
            answers = list(pool.map(lambda b: post(args.collector, auth, b), bodies))
        s = time.perf_counter() - start
        accepted = sum(a["accepted"] for _, a in answers)
        committed += accepted
        count = fetch(conn, "SELECT count(*) AS n FROM events")["n"][0].as_py()
        if accepted != args.rows or count != committed:
            raise SystemExit(f"collect: {accepted} of {args.rows} rows accepted, {count} in the table, {committed} expected")
        out["runs"].append({"seconds": s, "rows_per_s": accepted / s, "requests": len(bodies),
                            "request_p95": percentile([t for t, _ in answers], 95), "rows_in_table": count})
    return out


def load_queries(exclude):
    qdir = os.path.join(os.path.dirname(__file__), "..", "queries")
    queries = []
    for path in sorted(glob.glob(os.path.join(qdir, "q*.sql"))):
        name = os.path.basename(path)[:-4]
        if any(name.startswith(e) for e in exclude):
            continue
        with open(path) as f:
            sql = "\n".join(l for l in f.read().splitlines() if not l.startswith("-- "))
        queries.append((name, sql.strip().rstrip(";")))
    return queries


def client(uri, queries, passes, seed, barrier, results):
    conn = connect(uri)
    rng = random.Random(seed)
    latencies, errors = [], []
    barrier.wait()
    for _ in range(passes):
        order = list(queries)
        rng.shuffle(order)
        for name, sql in order:
            start = time.perf_counter()
            try:
                fetch(conn, sql)
                latencies.append(time.perf_counter() - start)
            except Exception as e:
                errors.append(f"{name}: {type(e).__name__}: {e}"[:300])
    conn.close()
    results.put({"latencies": latencies, "errors": errors})


def percentile(values, q):
    import numpy as np
    return float(np.percentile(values, q)) if values else None


def concurrency(args):
    queries = load_queries([e for e in args.exclude.split(",") if e])
    out = {"queries": [q[0] for q in queries], "passes": args.passes, "levels": []}
    for n in [int(c) for c in args.clients.split(",")]:
        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(n + 1)
        results = ctx.Queue()
        procs = [ctx.Process(target=client, args=(args.uri, queries, args.passes, i, barrier, results))
                 for i in range(n)]
        for p in procs:
            p.start()
        barrier.wait()
        start = time.perf_counter()
        collected = [results.get() for _ in procs]
        wall = time.perf_counter() - start
        for p in procs:
            p.join()
        lat = [l for c in collected for l in c["latencies"]]
        errs = [e for c in collected for e in c["errors"]]
        out["levels"].append({
            "clients": n, "wall_seconds": wall, "queries": len(lat), "errors": len(errs),
            "error_samples": errs[:5], "queries_per_s": len(lat) / wall,
            "median": percentile(lat, 50), "p95": percentile(lat, 95),
        })
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["transfer", "ingest", "collect", "concurrency"])
    p.add_argument("--uri", required=True)
    p.add_argument("--collector", help="http://ADDR of the server's HTTP collector (collect)")
    p.add_argument("--batch", type=int, default=1000, help="events per collector request (collect)")
    p.add_argument("--data")
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--clients", default="1,4,16")
    p.add_argument("--posters", type=int, default=16,
                   help="concurrent HTTP clients (collect); their rows in flight must fill a commit "
                        "(--collect-batch-rows) or every commit waits for the flush timer")
    p.add_argument("--passes", type=int, default=2)
    p.add_argument("--exclude", default="")
    args = p.parse_args()
    result = {"transfer": transfer, "ingest": ingest, "collect": collect,
              "concurrency": concurrency}[args.what](args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
