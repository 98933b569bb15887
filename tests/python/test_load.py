"""Load, shortened for CI (the full run is benchmarks/python/load.py, 64
clients for 2 minutes; benchmarks/README.md): 16 ADBC clients for 20 s
run the benchmark suite's queries mixed with bulk ingests and collector
posts against one server with `--max-running-queries 2` and a 512 MiB
pool. Nothing fails (the queue is large enough), the server stays up, and
its memory stays under the pool plus a stated overhead."""

import sys
from pathlib import Path

import seglake_harness as h

sys.path.insert(0, str(h.REPO_ROOT / "benchmarks" / "python"))
import load  # noqa: E402

POOL_MB = 512
# Beyond the pool: the binary, the runtime, 16 sessions' buffers in flight,
# the collector's buffer and the allocator's slack (documented in
# docs/server.md, "Sizing").
OVERHEAD_MB = 768


class Deployed:
    """What load.run_load needs of a harness deployment."""

    def __init__(self, dep):
        self.dep = dep
        self.uri = dep.uri
        self.collector = dep.collector_url
        self.pid = dep.endpoint.proc.pid

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def alive(self) -> bool:
        return self.dep.alive()


def test_sixteen_clients_mixed_load_without_errors(launch, make_demo, tmp_path):
    warehouse = make_demo(tmp_path / "wh")
    dep = launch.start(
        warehouse,
        args=("--collect", "127.0.0.1:0", "--collect-flush-ms", "200",
              "--max-running-queries", "2", "--memory-limit-mb", str(POOL_MB)),
    )
    queries = load.suite_queries(h.REPO_ROOT / "benchmarks" / "queries", exclude={"q09"})
    assert len(queries) >= 10, queries
    report = load.run_load(Deployed(dep), queries, clients=16, seconds=20)
    print(load.markdown(report, [], "ci"))
    assert report["errors"] == 0, report["error_samples"]
    assert report["server_alive"]
    assert report["queries"] > 16, report
    kinds = set(report["latency_ms"])
    assert {"query", "ingest", "collect"} <= kinds, kinds
    # Admission: statements waited in the queue (16 clients, 2 slots).
    assert report["queue_wait_ms"]["p95"] > 0, report["queue_wait_ms"]
    assert report["peak_rss_bytes"] < (POOL_MB + OVERHEAD_MB) * 2**20, report["peak_rss_bytes"]
    dep.stop()
