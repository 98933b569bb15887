"""Fixtures of the Seglake end-to-end suite.

- ``seglake_bin``: the binary (built by the test script, never here).
- ``make_demo`` / ``demo_warehouse``: demo warehouses (`seglake demo`).
- ``topology`` / ``launch``: the factory that starts a deployment of the
  topology under test on any warehouse, with extra flags and environment.
  Every server of the suite is started through it, so a new topology
  (coordinator + workers) is one more entry in ``topologies()`` and one more
  branch in ``Launcher._start_topology``; no test changes.
- ``server``: the shared deployment on the demo warehouse.
- ``connect`` / ``conn``: DB-API connections, closed after the test.
- ``duck``: DuckDB over the same Parquet files, for expected values.
- ``storage``: where a test's own warehouses live, local directory or
  ``s3://`` bucket on the session's moto server (parametrized: the test runs
  on both; ``-m "not s3"`` keeps the local one).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import duckdb
import pytest

import seglake_harness as h
from s3_server import Moto

DEMO_PROFILES = 2000


@pytest.fixture(scope="session")
def seglake_bin() -> Path:
    path = h.seglake_bin()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"seglake binary not found at {path}: build it first with "
            "`cargo build -p seglake-flight-server`, or point SEGLAKE_BIN at it",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def make_demo(seglake_bin, tmp_path_factory):
    """`make_demo(warehouse=None, profiles=..., env=None)` runs `seglake demo`
    and returns the warehouse (a new temporary directory unless given)."""

    def _make(warehouse=None, *, profiles: int = DEMO_PROFILES, seed=None, env=None):
        if warehouse is None:
            warehouse = tmp_path_factory.mktemp("warehouse")
        h.run_demo(seglake_bin, warehouse, profiles=profiles, seed=seed, env=env)
        return warehouse

    return _make


@pytest.fixture(scope="session")
def demo_warehouse(make_demo) -> Path:
    return make_demo()


def pytest_generate_tests(metafunc):
    """Parametrizes ``topology``: a test that starts a deployment runs on the
    topologies of the run (SEGLAKE_TEST_TOPOLOGIES, default
    "single,distributed") that its module runs on (``h.topologies_for``:
    modules whose results depend on where the plan runs declare
    ``TOPOLOGIES = h.ALL_TOPOLOGIES``; the others run on "single")."""
    if "topology" not in metafunc.fixturenames:
        return
    metafunc.parametrize("topology", h.topologies_for(metafunc.module), indirect=True, scope="session")


@pytest.fixture(scope="session")
def topology(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def launch(seglake_bin, topology, logs_dir):
    """The deployment factory: ``launch.start(warehouse, args=(), env=None)``,
    ``launch.restart(deployment)``. Whatever is still running at the end of
    the session is stopped with SIGTERM and must exit 0."""
    launcher = h.Launcher(seglake_bin, topology, logs_dir)
    try:
        yield launcher
    finally:
        launcher.stop_all()


@pytest.fixture(scope="session")
def server(launch, demo_warehouse):
    """The shared deployment on the session's demo warehouse. Tests that
    change the catalog use unique names (see ``unique``)."""
    dep = launch.start(demo_warehouse)
    yield dep
    dep.stop()  # asserts a graceful exit (code 0)


@pytest.fixture
def connect(server):
    """``connect(user="seglake", password="seglake", deployment=None)``: a
    new connection to ``server`` (or to another deployment), closed after
    the test."""
    opened = []

    def _connect(user: str = h.DEFAULT_USER, password: str = h.DEFAULT_PASSWORD, *, deployment=None):
        c = (deployment or server).connect(user, password)
        opened.append(c)
        return c

    yield _connect
    for c in opened:
        try:
            c.close()
        except Exception:  # the deployment may already be stopped
            pass


@pytest.fixture
def conn(connect):
    return connect()


def duckdb_over(warehouse: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB with views profiles/events/identifiers over a demo warehouse's files."""
    d = duckdb.connect()
    d.execute("SET TimeZone = 'UTC'")
    demo = Path(warehouse) / "demo"
    d.execute(f"CREATE VIEW profiles AS SELECT * FROM read_parquet('{demo}/profiles/*.parquet')")
    d.execute(
        f"CREATE VIEW events AS SELECT * FROM read_parquet('{demo}/events/**/*.parquet', hive_partitioning = true)"
    )
    d.execute(f"CREATE VIEW identifiers AS SELECT * FROM read_parquet('{demo}/identifiers/*.parquet')")
    return d


class Duck:
    """Expected values from DuckDB (used from the test thread only)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con

    def table(self, sql: str, params=None):
        return self.con.sql(sql, params=params).to_arrow_table()

    def rows(self, sql: str, params=None) -> list[tuple]:
        return h.rows(self.table(sql, params))

    def scalar(self, sql: str, params=None):
        (row,) = self.rows(sql, params)
        (value,) = row
        return value


@pytest.fixture(scope="session")
def duck(demo_warehouse) -> Duck:
    con = duckdb_over(demo_warehouse)
    yield Duck(con)
    con.close()


@pytest.fixture
def unique():
    """``unique(prefix="t")``: a fresh lower-case identifier (never starting with 'ev')."""

    def _unique(prefix: str = "t") -> str:
        return f"{prefix}_{uuid.uuid4().hex[:12]}"

    return _unique


@pytest.fixture(scope="session")
def moto(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 (random port) for the whole session."""
    m = Moto(tmp_path_factory.mktemp("moto") / "moto.log")
    yield m
    m.stop()


class Storage:
    """Fresh warehouses on one kind of store. ``kind`` is "local" or "s3";
    ``env`` is what a seglake process needs to reach it (pass it to
    ``launch.start`` and ``make_demo``)."""

    def __init__(self, kind: str, tmp_path_factory, moto: Moto | None = None):
        self.kind = kind
        self.moto = moto
        self.env = moto.env() if moto is not None else {}
        self._tmp = tmp_path_factory

    def new_warehouse(self, name: str = "wh") -> str:
        """An empty warehouse: a new directory, or a prefix of a new bucket."""
        if self.kind == "local":
            return str(self._tmp.mktemp(name))
        return f"s3://{self.moto.new_bucket()}/{name}"

    def __repr__(self) -> str:
        return f"Storage({self.kind})"


@pytest.fixture(scope="module", params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request, tmp_path_factory) -> Storage:
    """The store of the test's own warehouses: each test using it runs once
    on a local directory and once on S3 (moto, started only when needed)."""
    if request.param == "local":
        return Storage("local", tmp_path_factory)
    return Storage("s3", tmp_path_factory, request.getfixturevalue("moto"))
