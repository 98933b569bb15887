"""The write guard and confined locations through the real ADBC driver
(docs/server.md, "Security"). Every refusal is PERMISSION_DENIED naming its
rule; the tests look at the filesystem and the catalog afterwards, not only
at the error."""

from __future__ import annotations

import os
from pathlib import Path

import adbc_driver_manager
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

PEOPLE = pa.table({"profile_id": ["p1", "p2", "p3"], "score": [3, 1, 2]})


def denied(conn, sql: str, rule: str, params=None) -> None:
    with pytest.raises(adbc_driver_manager.Error) as ei:
        if params is None:
            h.run_command(conn, sql)
        else:
            h.run_sql(conn, sql, params)
    assert h.status_of(ei.value) == AdbcStatusCode.UNAUTHORIZED, f"{sql!r}: {ei.value}"
    assert f"permission denied ({rule})" in str(ei.value), f"{sql!r}: {ei.value}"


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


@pytest.fixture(scope="module")
def places(tmp_path_factory, moto):
    """An empty warehouse, a folder and an S3 prefix the server allows, and a
    folder it does not."""
    root = tmp_path_factory.mktemp("security")
    allowed, outside = root / "allowed", root / "outside"
    for d in (allowed, outside):
        d.mkdir()
    pq.write_table(PEOPLE, allowed / "people.parquet")
    pq.write_table(PEOPLE, outside / "people.parquet")
    (allowed / "escape").symlink_to(outside, target_is_directory=True)
    bucket = moto.new_bucket()
    fs = moto.filesystem()
    for prefix in ("allowed", "other"):
        with fs.open_output_stream(f"{bucket}/{prefix}/people/part-0.parquet") as f:
            pq.write_table(PEOPLE, f)
    return {"warehouse": root / "wh", "allowed": allowed, "outside": outside, "bucket": bucket}


@pytest.fixture(scope="module")
def dep(launch, places, moto):
    d = launch.start(
        places["warehouse"],
        args=("--allow-location", str(places["allowed"]), "--allow-location", f"s3://{places['bucket']}/allowed"),
        env=moto.env(),
    )
    yield d
    d.stop()


@pytest.fixture
def c(dep):
    conn = dep.connect()
    yield conn
    conn.close()


def tables(conn) -> set[str]:
    got = h.run_sql(conn, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
    return {r["table_name"] for r in got.to_pylist()}


def test_writes_hidden_in_a_statement_are_refused_and_write_nothing(c, places, tmp_path):
    h.run_command(c, "CREATE TABLE IF NOT EXISTS guarded AS SELECT * FROM (VALUES (1), (2)) AS v(a)")
    h.run_command(c, f"CREATE EXTERNAL TABLE IF NOT EXISTS ext_people STORED AS PARQUET LOCATION '{places['allowed']}/people.parquet'")
    target = tmp_path / "copied"
    for sql, rule in [
        (f"COPY (SELECT * FROM guarded) TO '{target}/a.parquet'", "no-copy"),
        (f"EXPLAIN ANALYZE COPY (SELECT * FROM guarded) TO '{target}/b.parquet'", "no-copy"),
        (f"EXPLAIN COPY guarded TO '{target}/c.csv'", "no-copy"),
        ("EXPLAIN ANALYZE INSERT INTO guarded VALUES (3)", "explain-analyze-queries-only"),
        ("EXPLAIN ANALYZE DELETE FROM guarded", "explain-analyze-queries-only"),
        ("INSERT INTO ext_people SELECT * FROM ext_people", "managed-writes-only"),
        ("INSERT INTO ext_people WITH x AS (SELECT * FROM ext_people) SELECT * FROM x", "managed-writes-only"),
        ("INSERT INTO ext_people SELECT * FROM ext_people WHERE score IN (SELECT a FROM guarded)", "managed-writes-only"),
        ("INSERT INTO ext_people SELECT * FROM ext_people UNION ALL SELECT * FROM ext_people", "managed-writes-only"),
        ("DELETE FROM ext_people", "managed-writes-only"),
        ("PREPARE p AS INSERT INTO guarded VALUES (4)", "no-sql-prepare"),
        ("EXECUTE p", "no-sql-prepare"),
    ]:
        denied(c, sql, rule)
    # Through a Flight SQL prepared statement too (planned and checked when
    # prepared, run when executed).
    denied(c, f"COPY (SELECT * FROM guarded WHERE a = ?) TO '{target}/d.parquet'", "no-copy", params=(1,))
    denied(c, "EXPLAIN ANALYZE INSERT INTO guarded SELECT a FROM guarded WHERE a = ?", "explain-analyze-queries-only", params=(1,))
    assert not target.exists()
    assert h.rows(h.run_sql(c, "SELECT a FROM guarded ORDER BY a")) == [(1,), (2,)]
    assert pq.read_table(places["allowed"] / "people.parquet").num_rows == 3
    # ADBC bulk ingest into an external table is a write outside the managed tables.
    with pytest.raises(adbc_driver_manager.Error) as ei:
        with c.cursor() as cur:
            cur.adbc_ingest("ext_people", PEOPLE, mode="append")
    assert h.status_of(ei.value) == AdbcStatusCode.UNAUTHORIZED, str(ei.value)
    assert pq.read_table(places["allowed"] / "people.parquet").num_rows == 3
    assert files_under(places["allowed"]) == [places["allowed"] / "people.parquet"]


def test_locations_inside_the_allowed_prefixes(c, places):
    allowed = places["allowed"]
    expected = sorted(zip(PEOPLE["profile_id"].to_pylist(), PEOPLE["score"].to_pylist()))
    for t, location in [
        ("one_file", f"{allowed}/people.parquet"),
        ("folder", f"{allowed}/"),
        ("folder_url", f"file://{allowed}"),
        ("dotted", f"{allowed}/../allowed/people.parquet"),
        ("s3_allowed", f"s3://{places['bucket']}/allowed/people/"),
    ]:
        h.run_command(c, f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{location}'")
        got = h.rows(h.run_sql(c, f"SELECT profile_id, score FROM {t} ORDER BY profile_id"))
        assert got == expected, t


def test_locations_outside_are_refused_and_register_nothing(c, places):
    allowed, outside, bucket = places["allowed"], places["outside"], places["bucket"]
    before = tables(c)
    for location, rule in [
        (f"{outside}/people.parquet", "confined-locations"),
        (f"{outside}/", "confined-locations"),
        (f"file://{outside}", "confined-locations"),
        (f"{allowed}/../outside/", "confined-locations"),
        (f"file://{allowed}/../outside/people.parquet", "confined-locations"),
        (f"{allowed}//..//outside", "confined-locations"),
        (f"{allowed}/escape/", "confined-locations"),  # a symlink pointing out
        (f"{allowed}/escape/people.parquet", "confined-locations"),
        ("/", "confined-locations"),
        ("/etc/", "confined-locations"),
        (f"s3://{bucket}/other/people/", "confined-locations"),
        (f"s3://{bucket}/allowedx/", "confined-locations"),
        (f"s3://{bucket}/", "confined-locations"),
        ("_seglake/catalog", "warehouse-internal"),
        ("tables/", "warehouse-internal"),
        (f"{places['warehouse']}/", "warehouse-internal"),
    ]:
        denied(c, f"CREATE EXTERNAL TABLE nope STORED AS PARQUET LOCATION '{location}'", rule)
    assert tables(c) == before
    # A file destination is confined the same way, and nothing is written.
    for path, rule in [(str(outside / "exports"), "confined-locations"), ("_seglake/x", "warehouse-internal")]:
        denied(c, f"CREATE DESTINATION nope TYPE file OPTIONS (path '{path}')", rule)
    assert h.rows(h.run_sql(c, "SELECT count(*) FROM system.destinations WHERE name = 'nope'")) == [(0,)]
    assert files_under(outside) == [outside / "people.parquet"]


def test_a_file_destination_inside_an_allowed_prefix(c, places):
    h.run_command(c, f"CREATE DESTINATION ok_files TYPE file OPTIONS (path '{places['allowed']}/exports')")
    assert h.rows(h.run_sql(c, "SELECT count(*) FROM system.destinations WHERE name = 'ok_files'")) == [(1,)]
    h.run_command(c, "DROP DESTINATION ok_files")


def test_allow_location_must_be_absolute(seglake_bin, tmp_path):
    import subprocess

    out = subprocess.run(
        [str(seglake_bin), "serve", "--warehouse", str(tmp_path / "wh"), "--listen", "127.0.0.1:0", "--allow-location", "relative/dir"],
        capture_output=True,
        text=True,
        timeout=60,
        env=h.child_env(),
    )
    assert out.returncode != 0
    assert "--allow-location 'relative/dir' must be an absolute path" in out.stderr
