"""One engine of the segment suite, in its own process.

Started by `seglake-bench run`; reads JSON requests on standard input, one
per line, and answers each with one JSON line on standard output:

  {"op": "info"}                         -> {"ok": true, "engine": ..., "version": ..., "pid": ...}
  {"op": "run", "sql": ..., "out": path} -> {"ok": true, "seconds": ..., "rows": ..., "bytes": ...}
  {"op": "quit"}

`seconds` runs from submitting the SQL to holding the whole result as an
Arrow table in this process. With `out`, the result is also written there as
an Arrow IPC file (after the clock stopped) for the comparison of engines.

Engines:
  flight --uri grpc://HOST:PORT --user U --password P   Seglake through Flight SQL (ADBC)
  duckdb --data WAREHOUSE [--threads N] [--memory-limit-mb M]  DuckDB in-process on the same Parquet
"""

import argparse
import json
import os
import sys
import time

import pyarrow as pa
import pyarrow.ipc


def write_ipc(table, path):
    with pa.OSFile(path, "wb") as sink:
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)


class Flight:
    def __init__(self, args):
        import adbc_driver_flightsql
        import adbc_driver_flightsql.dbapi as flightsql

        self.conn = flightsql.connect(
            args.uri,
            db_kwargs={"username": args.user, "password": args.password},
            autocommit=True,
        )
        self.version = "adbc-driver-flightsql " + adbc_driver_flightsql.__version__
        # One cursor, reused, as DB-API intends (DuckDB's side runs on one
        # connection too): a fresh ADBC cursor per query adds ~3 ms of the
        # driver's own to every query (benchmarks/README.md, findings).
        self.cur = self.conn.cursor()

    def run(self, sql):
        self.cur.execute(sql)
        return self.cur.fetch_arrow_table()


class DuckDB:
    def __init__(self, args):
        import duckdb

        config = {}
        if args.threads:
            config["threads"] = args.threads
        if args.memory_limit_mb:
            config["memory_limit"] = f"{args.memory_limit_mb}MB"
        self.con = duckdb.connect(config=config)
        self.version = "duckdb " + duckdb.__version__
        self.con.execute("SET TimeZone = 'UTC'")
        demo = os.path.join(args.data, "demo")
        self.con.execute(
            f"CREATE VIEW profiles AS SELECT * FROM read_parquet('{demo}/profiles/*.parquet')"
        )
        self.con.execute(
            f"CREATE VIEW events AS SELECT * FROM read_parquet('{demo}/events/*/*.parquet', hive_partitioning = true)"
        )
        self.con.execute(
            f"CREATE VIEW identifiers AS SELECT * FROM read_parquet('{demo}/identifiers/*.parquet')"
        )
        macros = os.path.join(os.path.dirname(__file__), "..", "queries", "duckdb_macros.sql")
        with open(macros) as f:
            self.con.execute(f.read())

    def run(self, sql):
        return self.con.execute(sql).to_arrow_table()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("engine", choices=["flight", "duckdb"])
    p.add_argument("--uri")
    p.add_argument("--user", default="seglake")
    p.add_argument("--password", default="seglake")
    p.add_argument("--data")
    p.add_argument("--threads", type=int)
    p.add_argument("--memory-limit-mb", type=int)
    args = p.parse_args()
    engine = Flight(args) if args.engine == "flight" else DuckDB(args)
    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        op = req.get("op")
        if op == "quit":
            break
        try:
            if op == "info":
                resp = {"ok": True, "engine": args.engine, "version": engine.version, "pid": os.getpid()}
            elif op == "run":
                start = time.perf_counter()
                table = engine.run(req["sql"])
                seconds = time.perf_counter() - start
                if req.get("out"):
                    write_ipc(table, req["out"])
                resp = {"ok": True, "seconds": seconds, "rows": table.num_rows, "bytes": table.nbytes}
            else:
                resp = {"ok": False, "error": f"unknown op {op!r}"}
        except Exception as e:  # reported to the runner, which records the failure
            resp = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(resp) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
