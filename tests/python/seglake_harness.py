"""Process and client helpers for the Seglake end-to-end tests.

Nothing here is a pytest fixture: ``conftest.py`` wires these into fixtures.
The one place that knows how a *topology* (the set of processes behind one
Flight SQL endpoint) is started is :class:`Launcher`; tests only ever see a
:class:`Deployment` (an endpoint URI plus ``connect``/``stop``).
"""

from __future__ import annotations

import math
import os
import queue
import re
import signal
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import adbc_driver_flightsql
import adbc_driver_flightsql.dbapi as flightsql
import adbc_driver_manager
from adbc_driver_manager import AdbcStatusCode

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "seglake"

# Generous: a debug build opening an S3 warehouse on a loaded 2-core machine.
STARTUP_TIMEOUT_S = float(os.environ.get("SEGLAKE_TEST_STARTUP_TIMEOUT", "60"))
SHUTDOWN_TIMEOUT_S = float(os.environ.get("SEGLAKE_TEST_SHUTDOWN_TIMEOUT", "30"))
DEMO_TIMEOUT_S = float(os.environ.get("SEGLAKE_TEST_DEMO_TIMEOUT", "180"))
# Client-side RPC timeouts, so that a hung server fails a test instead of the run.
RPC_TIMEOUT_S = "120"

DEFAULT_USER = "seglake"
DEFAULT_PASSWORD = "seglake"

LISTENING_RE = re.compile(r"^listening on (127\.0\.0\.1:\d+)$")
# Printed second when the server runs the HTTP event collector (--collect).
COLLECTOR_RE = re.compile(r"^collector listening on (127\.0\.0\.1:\d+)$")

# Topologies the suite runs against (SEGLAKE_TEST_TOPOLOGIES, default
# "single,distributed"; which tests run on "distributed" is decided by
# `topologies_for`): "single" is one `seglake serve`; "distributed" is
# SEGLAKE_TEST_WORKERS (3) `seglake worker` processes and a `seglake serve
# --workers ...` coordinator, all on 127.0.0.1:0; the coordinator reaches the
# workers (and they each other) over TLS (`cluster_certs`), and clients reach
# the coordinator's Flight SQL and collector over TLS too (`grpc+tls://`,
# `https://`, verified with the same test CA).
KNOWN_TOPOLOGIES = ("single", "distributed")
# The secret coordinator and workers of the distributed topology share
# (SEGLAKE_CLUSTER_SECRET): every worker call of the suite is authenticated.
CLUSTER_SECRET = "python-suite-cluster-secret-4f1c"
TEST_WORKERS = int(os.environ.get("SEGLAKE_TEST_WORKERS", "3"))
# Coordinator flags of the distributed topology: small scan partitions so
# that the small test warehouses are spread over every worker, and fast
# health checks.
COORDINATOR_ARGS = (
    "--scan-bytes-per-partition",
    "65536",
    "--worker-probe-interval-ms",
    "500",
    "--worker-probe-timeout-ms",
    "2000",
)


@dataclass(frozen=True)
class ClusterCerts:
    """PEM files of the distributed topology's TLS: a CA, and one server
    certificate (127.0.0.1, localhost) with its key that every worker
    serves."""

    ca: Path
    cert: Path
    key: Path


_CLUSTER_CERTS: dict[Path, ClusterCerts] = {}


def https_context(ca: Path | None = None) -> ssl.SSLContext:
    """An SSL context verifying servers with the system's roots, the
    suite's cluster CAs (`cluster_certs`) and `ca`."""
    context = ssl.create_default_context()
    for c in [*(certs.ca for certs in _CLUSTER_CERTS.values()), *([ca] if ca else [])]:
        context.load_verify_locations(cafile=str(c))
    return context


def cluster_certs(directory: Path) -> ClusterCerts:
    """The TLS files of the coordinator-to-worker links, generated (trustme)
    once per directory: once per test session."""
    directory = Path(directory)
    if directory not in _CLUSTER_CERTS:
        import trustme

        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        certs = ClusterCerts(directory / "ca.pem", directory / "worker.pem", directory / "worker.key")
        ca.cert_pem.write_to_path(str(certs.ca))
        server.private_key_pem.write_to_path(str(certs.key))
        with open(certs.cert, "wb") as f:
            for blob in server.cert_chain_pems:
                f.write(blob.bytes())
        _CLUSTER_CERTS[directory] = certs
    return _CLUSTER_CERTS[directory]


def seglake_bin() -> Path:
    return Path(os.environ.get("SEGLAKE_BIN", str(DEFAULT_BIN)))


def topologies() -> list[str]:
    """The topologies of the run (SEGLAKE_TEST_TOPOLOGIES, default both)."""
    raw = os.environ.get("SEGLAKE_TEST_TOPOLOGIES", "single,distributed")
    names = [t.strip() for t in raw.split(",") if t.strip()]
    unknown = [t for t in names if t not in KNOWN_TOPOLOGIES]
    if unknown:
        raise ValueError(f"SEGLAKE_TEST_TOPOLOGIES: unknown topologies {unknown} (known: {KNOWN_TOPOLOGIES})")
    return names or ["single"]


ALL_TOPOLOGIES = KNOWN_TOPOLOGIES


def topologies_for(module) -> list[str]:
    """The topologies `module`'s tests run on: those of the run that the
    module declares in ``TOPOLOGIES`` (default: "single" only). The
    distributed topology costs three workers and a coordinator per
    deployment, so only modules whose results depend on where the plan runs
    (queries, functions, managed-table and S3 scans, segments, errors raised
    while streaming) declare it."""
    wanted = getattr(module, "TOPOLOGIES", ("single",))
    unknown = [t for t in wanted if t not in KNOWN_TOPOLOGIES]
    if unknown:
        raise ValueError(f"{module.__name__}.TOPOLOGIES: unknown topologies {unknown}")
    return [t for t in topologies() if t in wanted]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process: ours without any SEGLAKE_* or
    AWS_* variable (so the developer's shell cannot change what a test
    means), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEGLAKE_", "AWS_"))}
    env.setdefault("RUST_LOG", "info")
    env["NO_COLOR"] = "1"
    env["RUST_BACKTRACE"] = "1"
    if extra:
        env.update(extra)
    return env


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(text.splitlines()[-lines:])


class LineReader:
    """Reads a pipe line by line on a daemon thread; `next_line(timeout)`
    blocks on a queue (no polling). `None` in the queue means end of file."""

    def __init__(self, pipe, name: str):
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._run, args=(pipe,), name=f"reader-{name}", daemon=True)
        self._thread.start()

    def _run(self, pipe) -> None:
        try:
            for line in pipe:
                line = line.rstrip("\r\n")
                self.lines.append(line)
                self._queue.put(line)
        finally:
            self._queue.put(None)

    def next_line(self, deadline: float) -> str | None:
        """The next line, or None at end of file; raises queue.Empty at the deadline."""
        remaining = max(0.0, deadline - time.monotonic())
        return self._queue.get(timeout=remaining)


class ServerProcess:
    """One `seglake serve` or `seglake worker` process started with
    --listen 127.0.0.1:0."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], log_path: Path, name: str):
        self.argv = list(argv)
        self.name = name
        self.log_path = log_path
        self.address: str | None = None
        # host:port of the HTTP event collector when started with --collect.
        self.collector_address: str | None = None
        self.returncode: int | None = None
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=dict(env),
            text=True,
            bufsize=1,
        )
        self._stdout = LineReader(self.proc.stdout, name)
        try:
            self._wait_listening()
        except BaseException:
            self.kill()
            raise

    def _fail(self, why: str) -> AssertionError:
        return AssertionError(
            f"{self.name}: {why}\ncommand: {' '.join(self.argv)}\n"
            f"stdout: {self._stdout.lines!r}\n--- stderr ({self.log_path}) ---\n{tail(self.log_path)}"
        )

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        try:
            line = self._stdout.next_line(deadline)
        except queue.Empty:
            raise self._fail(f"no 'listening on' line within {STARTUP_TIMEOUT_S:.0f}s") from None
        if line is None:
            rc = self.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
            raise self._fail(f"exited with code {rc} before listening")
        m = LISTENING_RE.match(line)
        if not m:
            raise self._fail(f"first stdout line is {line!r}, expected 'listening on 127.0.0.1:PORT'")
        self.address = m.group(1)
        if "--collect" in self.argv:
            try:
                line = self._stdout.next_line(deadline)
            except queue.Empty:
                raise self._fail(f"no 'collector listening on' line within {STARTUP_TIMEOUT_S:.0f}s") from None
            m = COLLECTOR_RE.match(line or "")
            if not m:
                raise self._fail(f"second stdout line is {line!r}, expected 'collector listening on 127.0.0.1:PORT'")
            self.collector_address = m.group(1)

    @property
    def uri(self) -> str:
        return f"grpc://{self.address}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit code (kills after the timeout)."""
        if self.returncode is not None:
            return self.returncode
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise self._fail(f"did not exit within {SHUTDOWN_TIMEOUT_S:.0f}s of SIGTERM") from None
        finally:
            self._log.close()
        return self.returncode

    def stop_gracefully(self) -> None:
        """SIGTERM and assert a clean exit (code 0)."""
        rc = self.stop()
        if rc != 0:
            raise self._fail(f"exited with code {rc} after SIGTERM (expected a graceful exit with 0)")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.returncode = self.proc.wait()
        if not self._log.closed:
            self._log.close()

    def stdout_after_listening(self) -> list[str]:
        return self._stdout.lines[2 if self.collector_address else 1 :]


def worker_url(address: str) -> str:
    """The address the distributed topology's coordinator is given for a
    worker listening on `address` (host:port)."""
    return f"https://{address}"


def connect(
    uri: str,
    user: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    tls_root: Path | None = None,
):
    """A DB-API connection (autocommit) to a Seglake endpoint; a
    `grpc+tls://` one is verified with `tls_root` (a CA's PEM file)."""
    opts = adbc_driver_flightsql.DatabaseOptions
    db_kwargs = {
        "username": user,
        "password": password,
        opts.TIMEOUT_QUERY.value: RPC_TIMEOUT_S,
        opts.TIMEOUT_FETCH.value: RPC_TIMEOUT_S,
        opts.TIMEOUT_UPDATE.value: RPC_TIMEOUT_S,
    }
    if tls_root is not None:
        db_kwargs[opts.TLS_ROOT_CERTS.value] = Path(tls_root).read_text()
    return flightsql.connect(uri, db_kwargs=db_kwargs, autocommit=True)


@dataclass
class Deployment:
    """One Flight SQL endpoint and the processes behind it."""

    topology: str
    warehouse: str
    processes: list[ServerProcess]
    uri: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    stopped: bool = False
    # The worker processes of a distributed deployment (also in `processes`).
    workers: list[ServerProcess] = field(default_factory=list)
    # The CA verifying the endpoint when it serves TLS (`uri` is then
    # `grpc+tls://`, `collector_url` `https://`).
    tls_root: Path | None = None

    def connect(self, user: str = DEFAULT_USER, password: str = DEFAULT_PASSWORD):
        return connect(self.uri, user, password, self.tls_root)

    @property
    def endpoint(self) -> ServerProcess:
        """The process clients talk to (the coordinator of a distributed
        deployment)."""
        return next(p for p in reversed(self.processes) if p not in self.workers)

    @property
    def collector_url(self) -> str:
        """Base URL of the HTTP event collector (started with --collect)."""
        addr = self.endpoint.collector_address
        assert addr, "the deployment was started without --collect"
        return f"{'https' if self.tls_root else 'http'}://{addr}"

    def https_context(self) -> ssl.SSLContext:
        """What verifies `collector_url` (the test CA when it is https)."""
        return https_context(self.tls_root)

    def alive(self) -> bool:
        return all(p.alive() for p in self.processes)

    def stop(self) -> None:
        """Graceful stop of every process (SIGTERM); asserts each exits 0."""
        if self.stopped:
            return
        self.stopped = True
        errors = []
        # Reverse start order: workers before the coordinator, once there are any.
        for p in reversed(self.processes):
            try:
                p.stop_gracefully()
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            raise AssertionError("\n\n".join(errors))

    def kill(self) -> None:
        self.stopped = True
        for p in self.processes:
            p.kill()


class Launcher:
    """Starts deployments of one topology; the single place that knows how."""

    def __init__(self, binary: Path, topology: str, log_dir: Path):
        if topology not in KNOWN_TOPOLOGIES:
            raise ValueError(f"unknown topology {topology!r} (known: {', '.join(KNOWN_TOPOLOGIES)})")
        self.binary = binary
        self.topology = topology
        self.log_dir = log_dir
        self.deployments: list[Deployment] = []
        self._count = 0

    @property
    def certs(self) -> ClusterCerts:
        return cluster_certs(self.log_dir / "cluster-tls")

    def worker_argv(self, warehouse: str, listen: str = "127.0.0.1:0") -> list[str]:
        """A `seglake worker` of the distributed topology: TLS with the
        session's certificate, and its CA to verify the workers it reads
        from."""
        c = self.certs
        return [
            str(self.binary),
            "worker",
            "--warehouse",
            warehouse,
            "--listen",
            listen,
            "--tls-cert",
            str(c.cert),
            "--tls-key",
            str(c.key),
            "--cluster-ca",
            str(c.ca),
        ]

    def start(
        self,
        warehouse: str | os.PathLike,
        *,
        args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Deployment:
        """Starts a deployment serving `warehouse` (a local dir or s3:// URL).
        `args` are extra `seglake serve` flags; `env` extra variables."""
        warehouse = str(warehouse)
        args = tuple(args)
        env = dict(env or {})
        dep = self._start_topology(warehouse, args, env)
        self.deployments.append(dep)
        return dep

    def restart(self, dep: Deployment) -> Deployment:
        """Stops `dep` gracefully and starts the same topology on the same
        warehouse with the same flags."""
        dep.stop()
        return self.start(dep.warehouse, args=dep.args, env=dep.env)

    def _start_topology(self, warehouse: str, args: tuple[str, ...], env: dict[str, str]) -> Deployment:
        self._count += 1
        if self.topology == "single":
            name = f"seglake-{self._count}"
            argv = [str(self.binary), "serve", "--warehouse", warehouse, "--listen", "127.0.0.1:0", *args]
            proc = ServerProcess(argv, child_env(env), self.log_dir / f"{name}.log", name)
            return Deployment("single", warehouse, [proc], proc.uri, args, env)
        # "distributed": workers first, then a coordinator pointing at them;
        # the coordinator is the deployment's endpoint.
        env = {"SEGLAKE_CLUSTER_SECRET": CLUSTER_SECRET, **env}
        workers: list[ServerProcess] = []
        try:
            for i in range(TEST_WORKERS):
                name = f"seglake-{self._count}-worker{i}"
                argv = self.worker_argv(warehouse)
                workers.append(ServerProcess(argv, child_env(env), self.log_dir / f"{name}.log", name))
            # The coordinator-to-worker links run over TLS, and so do the
            # clients' (Flight SQL, the collector): the workers' certificate
            # names 127.0.0.1 too.
            urls = ",".join(worker_url(w.address) for w in workers)
            name = f"seglake-{self._count}-coordinator"
            argv = [
                str(self.binary),
                "serve",
                "--warehouse",
                warehouse,
                "--listen",
                "127.0.0.1:0",
                "--workers",
                urls,
                "--cluster-ca",
                str(self.certs.ca),
                "--tls-cert",
                str(self.certs.cert),
                "--tls-key",
                str(self.certs.key),
                *COORDINATOR_ARGS,
                *args,
            ]
            coordinator = ServerProcess(argv, child_env(env), self.log_dir / f"{name}.log", name)
        except BaseException:
            for w in workers:
                w.kill()
            raise
        return Deployment(
            "distributed",
            warehouse,
            [*workers, coordinator],
            f"grpc+tls://{coordinator.address}",
            args,
            env,
            workers=workers,
            tls_root=self.certs.ca,
        )

    def stop_all(self) -> None:
        errors = []
        for dep in self.deployments:
            if not dep.stopped:
                try:
                    dep.stop()
                except AssertionError as e:
                    errors.append(str(e))
        if errors:
            raise AssertionError("\n\n".join(errors))


def run_demo(
    binary: Path,
    warehouse: str | os.PathLike,
    *,
    profiles: int = 2000,
    seed: int | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    argv = [str(binary), "demo", "--warehouse", str(warehouse), "--profiles", str(profiles)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    res = subprocess.run(
        argv,
        env=child_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_S,
    )
    if res.returncode != 0:
        raise AssertionError(
            f"`{' '.join(argv)}` exited with {res.returncode}\nstdout: {res.stdout}\nstderr:\n{res.stderr[-4000:]}"
        )


# ---------------------------------------------------------------------------
# Assertions
# ---------------------------------------------------------------------------


def status_of(exc: BaseException) -> AdbcStatusCode:
    assert isinstance(exc, adbc_driver_manager.Error), f"not an ADBC error: {exc!r}"
    return AdbcStatusCode(exc.status_code)


def _sort_key(row):
    # None sorts first; values of mixed types compare by type name first.
    return tuple((v is not None, type(v).__name__, v) if v is not None else (False, "", 0) for v in row)


def _same_value(a, b, rel: float, abs_: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
    # Strict otherwise: same Python type (so 1 != True, date != datetime) and equal.
    return type(a) is type(b) and a == b


def assert_rows_equal(actual, expected, *, ordered: bool = False, rel: float = 1e-9, abs_: float = 1e-6) -> None:
    """Compares two lists of row tuples exactly, except floats (tolerance).
    Unless `ordered`, both are sorted first."""
    actual = [tuple(r) for r in actual]
    expected = [tuple(r) for r in expected]
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}:\n{actual[:20]}\nvs\n{expected[:20]}"
    if not ordered:
        actual = sorted(actual, key=_sort_key)
        expected = sorted(expected, key=_sort_key)
    for i, (a, e) in enumerate(zip(actual, expected)):
        assert len(a) == len(e), f"row {i}: {len(a)} columns, expected {len(e)}: {a} vs {e}"
        for j, (x, y) in enumerate(zip(a, e)):
            assert _same_value(x, y, rel, abs_), f"row {i} column {j}: {x!r} != {y!r}\nrow: {a}\nexpected: {e}"


def rows(table) -> list[tuple]:
    """A pyarrow Table as a list of tuples in column order."""
    cols = [c.to_pylist() for c in table.columns]
    return list(zip(*cols)) if cols else []


def run_sql(conn, sql: str, params=None):
    """Executes and fetches the whole result as a pyarrow Table."""
    with conn.cursor() as cur:
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, parameters=params)
        return cur.fetch_arrow_table()


def run_command(conn, sql: str, params=None) -> int:
    with conn.cursor() as cur:
        if params is None:
            cur.execute(sql)
        else:
            cur.execute(sql, parameters=params)
        return cur.rowcount


def execute_update(conn, sql: str) -> int:
    """Runs a statement through ADBC ExecuteUpdate: the affected row count
    (DB-API's ``rowcount`` is always -1 with this driver)."""
    with conn.cursor() as cur:
        cur.adbc_statement.set_sql_query(sql)
        return cur.adbc_statement.execute_update()


def catalog_contention(connections, *, max_commits: int, max_seconds: float) -> tuple[int, list[str]]:
    """Hammers the catalog: one thread per connection, all started together,
    each creating and dropping its own schemas (``CREATE SCHEMA c<i>_<k>``,
    ``DROP SCHEMA c<i>_<k>``), so no statement can legitimately fail. Stops
    at the first error, after `max_commits` commits in all, or after
    `max_seconds`. Returns (commits done, errors as 'statement: message')."""
    import itertools
    from concurrent.futures import ThreadPoolExecutor

    stop = threading.Event()
    errors: list[str] = []
    lock = threading.Lock()
    done = itertools.count()
    committed = [0]
    barrier = threading.Barrier(len(connections), timeout=60)
    deadline = time.monotonic() + max_seconds

    def work(i: int) -> None:
        conn = connections[i]
        barrier.wait()
        for k in itertools.count():
            # Stop only between pairs, so that every created schema is dropped.
            if stop.is_set() or time.monotonic() > deadline or next(done) >= max_commits // 2:
                stop.set()
                return
            for sql in (f"CREATE SCHEMA c{i}_{k}", f"DROP SCHEMA c{i}_{k}"):
                try:
                    run_command(conn, sql)
                    with lock:
                        committed[0] += 1
                except adbc_driver_manager.Error as e:
                    with lock:
                        errors.append(f"{sql}: {e}")
                    stop.set()
                    return

    with ThreadPoolExecutor(len(connections)) as pool:
        for f in [pool.submit(work, i) for i in range(len(connections))]:
            f.result(timeout=max_seconds + 120)
    return committed[0], errors


def wait_for(predicate, timeout: float, what: str):
    """Polls `predicate` until it returns something true (returned), or
    fails after `timeout` seconds naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)  # poll until the deadline
