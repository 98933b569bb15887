"""Hostile data: files in the warehouse damaged or changed behind Seglake's
back. Each case must give a clear error (naming the table, or the file
where the table's path names it), never a panic, and leave the rest of the
warehouse queryable; a corrupt newest catalog version falls back to the
previous one with a warning in the log.

The damage is done with plain file operations on a local warehouse, the
expected values come from pyarrow reading the demo files.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import adbc_driver_manager
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

PROFILES = 300
S = AdbcStatusCode


@pytest.fixture(scope="module")
def wh(make_demo, tmp_path_factory) -> Path:
    return Path(make_demo(tmp_path_factory.mktemp("hostile"), profiles=PROFILES))


@pytest.fixture(scope="module")
def dep(launch, wh):
    d = launch.start(wh)
    yield d
    d.stop()  # a graceful exit (code 0): nothing the damage did stopped it


@pytest.fixture
def c(dep):
    conn = dep.connect()
    yield conn
    conn.close()


def name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def profiles_count(wh: Path) -> int:
    return pq.read_table(wh / "demo" / "profiles").num_rows


def log_text(dep) -> str:
    return dep.endpoint.log_path.read_text(errors="replace")


def still_serving(c, dep, wh: Path) -> None:
    """Another table answers, and the server has not panicked."""
    assert h.rows(h.run_sql(c, "SELECT count(*) FROM profiles")) == [(profiles_count(wh),)]
    assert "panicked" not in log_text(dep)


def data_error(c, sql: str, statuses: set[AdbcStatusCode]) -> str:
    """The error of `sql` (at GetFlightInfo or while fetching): its status
    is one of `statuses`; returns the message."""
    with pytest.raises(adbc_driver_manager.Error) as ei:
        h.run_sql(c, sql)
    message = str(ei.value)
    assert h.status_of(ei.value) in statuses, f"{sql}: {message}"
    assert "panic" not in message.lower(), message
    return message


def managed_dir(wh: Path, table: str, schema: str = "public") -> Path:
    (directory,) = wh.glob(f"tables/{schema}/{table}/*/")
    return directory


def data_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.parquet"))


def next_log_entry(directory: Path) -> Path:
    """The file of the next Delta commit of a table."""
    newest = max(int(p.stem) for p in (directory / "_delta_log").glob("*.json"))
    return directory / "_delta_log" / f"{newest + 1:020}.json"


def external_table(c, wh: Path, table: pa.Table) -> tuple[str, Path]:
    """An external Parquet table over a new folder of the warehouse holding
    `table` as good.parquet."""
    t = name()
    folder = wh / f"ext-{t}"
    folder.mkdir()
    pq.write_table(table, folder / "good.parquet")
    h.run_command(c, f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{folder}/'")
    return t, folder


def test_truncated_parquet_file_of_an_external_table(c, dep, wh):
    t, folder = external_table(c, wh, pa.table({"a": pa.array(range(1000), pa.int64())}))
    assert h.rows(h.run_sql(c, f"SELECT sum(a) FROM {t}")) == [(sum(range(1000)),)]
    whole = (folder / "good.parquet").read_bytes()
    (folder / "cut.parquet").write_bytes(whole[: len(whole) // 2])
    message = data_error(c, f"SELECT sum(a) FROM {t}", {S.INTERNAL, S.INVALID_ARGUMENT, S.IO})
    assert "Parquet" in message and ("footer" in message or "cut.parquet" in message), message
    assert f"reading public.{t}" in message, message
    # Listing does not open files: the table is still listed.
    assert t in {r["table_name"] for r in h.run_sql(c, "SHOW TABLES").to_pylist()}
    still_serving(c, dep, wh)
    # Removing the damaged file repairs the table.
    (folder / "cut.parquet").unlink()
    assert h.rows(h.run_sql(c, f"SELECT sum(a) FROM {t}")) == [(sum(range(1000)),)]


def test_parquet_file_whose_schema_disagrees_with_an_external_table(c, dep, wh):
    t, folder = external_table(c, wh, pa.table({"a": pa.array([1, 2, 3], pa.int64())}))
    pq.write_table(pa.table({"a": ["x", "y"]}), folder / "strings.parquet")
    message = data_error(c, f"SELECT sum(a) FROM {t}", {S.INVALID_ARGUMENT, S.INTERNAL})
    assert "'x'" in message and "Int64" in message, message
    assert f"reading public.{t}" in message, message
    still_serving(c, dep, wh)


def test_missing_data_file_of_a_managed_table(c, dep, wh):
    t = name()
    h.run_command(c, f"CREATE TABLE {t} (a INT)")
    h.run_command(c, f"INSERT INTO {t} VALUES (1), (2)")
    h.run_command(c, f"INSERT INTO {t} VALUES (3)")
    directory = managed_dir(wh, t)
    files = data_files(directory)
    assert len(files) == 2
    files[0].unlink()
    message = data_error(c, f"SELECT sum(a) FROM {t}", {S.INTERNAL, S.NOT_FOUND, S.IO})
    # The file is named, and its path names the table.
    assert files[0].name in message and f"tables/public/{t}/" in message, message
    still_serving(c, dep, wh)


def test_truncated_data_file_of_a_managed_table(c, dep, wh):
    t = name()
    h.run_command(c, f"CREATE TABLE {t} (a INT)")
    h.run_command(c, f"INSERT INTO {t} VALUES (1), (2)")
    (f,) = data_files(managed_dir(wh, t))
    whole = f.read_bytes()
    f.write_bytes(whole[: len(whole) // 2])
    message = data_error(c, f"SELECT sum(a) FROM {t}", {S.INTERNAL, S.INVALID_ARGUMENT, S.IO})
    assert f.name in message and f"tables/public/{t}/" in message, message
    still_serving(c, dep, wh)


def test_corrupt_delta_log_entry(c, dep, wh):
    t = name()
    h.run_command(c, f"CREATE TABLE {t} (a INT)")
    h.run_command(c, f"INSERT INTO {t} VALUES (1), (2)")
    assert h.rows(h.run_sql(c, f"SELECT sum(a) FROM {t}")) == [(3,)]
    directory = managed_dir(wh, t)
    next_log_entry(directory).write_text('{"add": {"path": garbage, no json here\n')
    message = data_error(c, f"SELECT sum(a) FROM {t}", {S.INTERNAL, S.INVALID_ARGUMENT})
    assert f"public.{t}" in message, message
    assert "Json" in message or "JSON" in message or "json" in message, message
    # Writes to the table fail too, and commit nothing over the bad entry.
    with pytest.raises(adbc_driver_manager.Error):
        h.run_command(c, f"INSERT INTO {t} VALUES (4)")
    still_serving(c, dep, wh)


def test_managed_table_log_entry_pointing_to_a_file_of_another_schema(c, dep, wh):
    """A Delta commit (written by hand) adds a file whose column has another
    type than the table's."""
    t = name()
    h.run_command(c, f"CREATE TABLE {t} (a INT)")
    h.run_command(c, f"INSERT INTO {t} VALUES (1), (2)")
    assert h.rows(h.run_sql(c, f"SELECT sum(a) FROM {t}")) == [(3,)]
    directory = managed_dir(wh, t)
    wrong = directory / "part-00000-wrong-schema.parquet"
    pq.write_table(pa.table({"a": ["x", "y"]}), wrong)
    now = int(time.time() * 1000)
    entry = next_log_entry(directory)
    entry.write_text(
        json.dumps({"commitInfo": {"timestamp": now, "operation": "WRITE"}}) + "\n"
        + json.dumps({"add": {"path": wrong.name, "partitionValues": {}, "size": wrong.stat().st_size,
                              "modificationTime": now, "dataChange": True}}) + "\n"
    )
    message = data_error(c, f"SELECT sum(a) FROM {t}", {S.INVALID_ARGUMENT, S.INTERNAL})
    assert "'x'" in message and "Int32" in message, message
    assert f"public.{t}" in message, message
    still_serving(c, dep, wh)
    # Undoing the hand-written commit repairs the table.
    entry.unlink()
    assert h.rows(h.run_sql(c, f"SELECT sum(a) FROM {t}")) == [(3,)]


def catalog_files(wh: Path) -> list[Path]:
    return sorted((wh / "_seglake" / "catalog").glob("*.json"))


def table_exists(c, t: str) -> bool:
    try:
        h.run_sql(c, f"SELECT count(*) FROM {t}")
        return True
    except adbc_driver_manager.Error as e:
        assert h.status_of(e) == S.NOT_FOUND, str(e)
        return False


def test_corrupt_newest_catalog_version_falls_back(launch, make_demo, tmp_path):
    """Garbage in the newest catalog version, written while the server is
    stopped: the server starts, serves the previous version, warns naming
    the bad file, and its next commit goes after the bad version."""
    wh = Path(make_demo(tmp_path / "wh", profiles=PROFILES))
    d = launch.start(wh)
    c = d.connect()
    h.run_command(c, "CREATE TABLE kept AS VALUES (1), (2)")
    h.run_command(c, "CREATE TABLE lost AS VALUES (3)")
    c.close()
    d.stop()

    newest = catalog_files(wh)[-1]
    assert '"lost"' in newest.read_text()
    newest.write_bytes(b'{"schemas": {"public": \x00 truncated')

    d = launch.start(wh)
    c = d.connect()
    try:
        # The previous version: `kept` is there, `lost` (only in the
        # corrupt version) is not; its files stay where they were.
        assert h.rows(h.run_sql(c, "SELECT sum(column1) FROM kept")) == [(3,)]
        assert not table_exists(c, "lost")
        assert h.rows(h.run_sql(c, "SELECT count(*) FROM profiles")) == [(profiles_count(wh),)]
        warning = h.wait_for(
            lambda: [l for l in log_text(d).splitlines() if "WARN" in l and newest.name in l],
            10,
            "a warning naming the corrupt catalog version",
        )
        assert "corrupt" in warning[0], warning
        # A commit after the fallback: the next version after the corrupt one.
        h.run_command(c, "CREATE TABLE after_fallback AS VALUES (10)")
        files = catalog_files(wh)
        assert int(files[-1].stem) == int(newest.stem) + 1, [f.name for f in files]
        assert newest.exists(), "the corrupt file is left for the operator"
    finally:
        c.close()
    d.stop()
    assert "panicked" not in log_text(d)

    # After a restart: the commit made after the fallback is the catalog.
    d = launch.start(wh)
    c = d.connect()
    try:
        assert h.rows(h.run_sql(c, "SELECT sum(column1) FROM kept")) == [(3,)]
        assert h.rows(h.run_sql(c, "SELECT sum(column1) FROM after_fallback")) == [(10,)]
        assert not table_exists(c, "lost")
    finally:
        c.close()
    d.stop()


def test_every_catalog_version_corrupt_refuses_to_start(launch, make_demo, tmp_path):
    """No readable catalog: the server exits with an error naming the
    catalog folder (it does not start over with an empty catalog)."""
    wh = Path(make_demo(tmp_path / "wh", profiles=PROFILES))
    files = catalog_files(wh)
    assert files
    backup = files[-1].read_bytes()
    for f in files:
        f.write_bytes(b"garbage")
    with pytest.raises(AssertionError) as ei:
        launch.start(wh)
    assert "exited with code" in str(ei.value), str(ei.value)
    # The newest log of the launcher is the failed server's stderr.
    log = max(launch.log_dir.glob("*.log"), key=lambda p: p.stat().st_mtime_ns)
    text = log.read_text(errors="replace")
    assert "no readable catalog version" in text and "_seglake/catalog" in text, text[-3000:]
    assert all(f.read_bytes() == b"garbage" for f in files), "nothing was overwritten"
    # Restoring the newest version from a backup repairs the warehouse.
    files[-1].write_bytes(backup)
    d = launch.start(wh)
    c = d.connect()
    try:
        assert h.rows(h.run_sql(c, "SELECT count(*) FROM profiles")) == [(profiles_count(wh),)]
    finally:
        c.close()
    d.stop()
