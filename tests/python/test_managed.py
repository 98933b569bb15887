"""Managed (Delta Lake) tables through ADBC, on a local warehouse and on an
S3-compatible server (moto): ingest, INSERT, UPDATE, DELETE, MERGE (upsert),
time travel, history, OPTIMIZE, VACUUM (files no commit references
included), FORGET PROFILE (with a literal or a bound parameter), concurrent
appends.

Expected values come from a Python model of the table (a dict applying the
same changes) or from pyarrow reading the demo's Parquet files before any
change; never from Seglake's own answers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import adbc_driver_manager
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

# Results depend on where the plan runs: every topology of the run.
TOPOLOGIES = h.ALL_TOPOLOGIES

UTC = dt.timezone.utc
PROFILES = 400


@pytest.fixture(scope="module", params=["local", "s3"])
def place(request, make_demo, tmp_path_factory):
    """A demo warehouse (local directory or s3:// bucket on moto) and the env
    that reaches it."""
    if request.param == "local":
        wh = make_demo(tmp_path_factory.mktemp("managed"), profiles=PROFILES)
        return {"kind": "local", "warehouse": str(wh), "env": {}, "moto": None}
    moto = request.getfixturevalue("moto")
    bucket = moto.new_bucket()
    wh = f"s3://{bucket}/wh"
    make_demo(wh, profiles=PROFILES, env=moto.env())
    return {"kind": "s3", "warehouse": wh, "env": moto.env(), "moto": moto, "bucket": bucket}


@pytest.fixture(scope="module")
def demo_files(place) -> dict[str, pa.Table]:
    """`events` and `profiles` as pyarrow reads the demo's Parquet files,
    read before the server starts (so before any change)."""
    return {t: read_demo_files(place, t) for t in ("events", "profiles")}


@pytest.fixture(scope="module")
def dep(launch, place, demo_files):
    d = launch.start(place["warehouse"], env=place["env"])
    yield d
    d.stop()


@pytest.fixture
def c(dep):
    conn = dep.connect()
    yield conn
    conn.close()


def update(conn, sql: str) -> int:
    """Runs a statement through ADBC ExecuteUpdate: the affected row count."""
    with conn.cursor() as cur:
        cur.adbc_statement.set_sql_query(sql)
        return cur.adbc_statement.execute_update()


def name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def table_rows(conn, table: str, cols: str = "*", at: str | None = None) -> list[tuple]:
    src = f"table_at('{table}', {at})" if at is not None else table
    return h.rows(h.run_sql(conn, f"SELECT {cols} FROM {src}"))


def model_rows(model: dict) -> list[tuple]:
    return [(k, *v) for k, v in model.items()]


def test_dml_against_a_model(c):
    """INSERT, UPDATE, DELETE and MERGE, each one commit, checked after every
    step against a dict applying the same change; then every version is read
    back with time travel and compared with the model's snapshot."""
    t = name()
    assert update(c, f"CREATE TABLE {t} (profile_id VARCHAR, channel VARCHAR, score BIGINT)") == 0
    model: dict[str, tuple] = {}
    versions = {0: {}}

    def check(version: int):
        h.assert_rows_equal(table_rows(c, t), model_rows(model))
        versions[version] = dict(model)

    rows = [(f"p{i}", ["email", "sms", "push"][i % 3], i * 10) for i in range(30)]
    values = ", ".join(f"('{p}', '{ch}', {s})" for p, ch, s in rows)
    assert update(c, f"INSERT INTO {t} VALUES {values}") == 30
    model.update({p: (ch, s) for p, ch, s in rows})
    check(1)

    n = update(c, f"UPDATE {t} SET score = score * 2 + 1 WHERE channel = 'email' AND score >= 60")
    expected_n = 0
    for p, (ch, s) in list(model.items()):
        if ch == "email" and s >= 60:
            model[p] = (ch, s * 2 + 1)
            expected_n += 1
    assert n == expected_n
    check(2)

    # With a bound parameter (prepared statement).
    h.run_command(c, f"DELETE FROM {t} WHERE channel = 'sms' OR score < ?", params=(25,))
    doomed = [p for p, (ch, s) in model.items() if ch == "sms" or s < 25]
    for p in doomed:
        del model[p]
    check(3)

    # Upsert: half the source rows exist (updated), half are new (inserted).
    source = [(f"p{i}", "email", 1000 + i) for i in range(20, 40)]
    src_sql = " UNION ALL ".join(f"SELECT '{p}' AS profile_id, '{ch}' AS channel, CAST({s} AS BIGINT) AS score" for p, ch, s in source)
    n = update(
        c,
        f"MERGE INTO {t} AS t USING ({src_sql}) AS s ON t.profile_id = s.profile_id "
        "WHEN MATCHED THEN UPDATE SET channel = s.channel, score = s.score "
        "WHEN NOT MATCHED THEN INSERT (profile_id, channel, score) VALUES (s.profile_id, s.channel, s.score)",
    )
    for p, ch, s in source:
        model[p] = (ch, s)
    assert n == len(source)
    check(4)

    # Every version, through time travel.
    for v, snapshot in versions.items():
        h.assert_rows_equal(table_rows(c, t, at=str(v)), model_rows(snapshot))

    # And by timestamp: the commit time of each version selects it.
    hist = h.rows(h.run_sql(
        c, f"SELECT version, committed_at, operation FROM system.table_history WHERE table_name = '{t}' ORDER BY version"
    ))
    assert [r[0] for r in hist] == [0, 1, 2, 3, 4]
    assert [r[2] for r in hist] == ["CREATE TABLE", "WRITE", "UPDATE", "DELETE", "MERGE"]
    for v, committed_at, _ in hist:
        ts = committed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        h.assert_rows_equal(table_rows(c, t, at=f"TIMESTAMP '{ts}'"), model_rows(versions[v]))


def test_ingest_modes_and_history(c):
    t = name()
    schema = pa.schema([("id", pa.int64()), ("v", pa.string())])
    batch = lambda lo, hi: pa.table({"id": list(range(lo, hi)), "v": [f"v{i}" for i in range(lo, hi)]}, schema=schema)  # noqa: E731
    with c.cursor() as cur:
        assert cur.adbc_ingest(t, batch(0, 100), mode="create") == 100
        assert cur.adbc_ingest(t, batch(100, 150), mode="append") == 50
        assert cur.adbc_ingest(t, batch(150, 160), mode="create_append") == 10
    assert table_rows(c, t, "count(*), sum(id)") == [(160, sum(range(160)))]
    with c.cursor() as cur:
        assert cur.adbc_ingest(t, batch(1000, 1005), mode="replace") == 5
    h.assert_rows_equal(table_rows(c, t), [(i, f"v{i}") for i in range(1000, 1005)])
    # The replaced data is still reachable by time travel until vacuumed.
    assert table_rows(c, t, "count(*)", at="3") == [(160,)]
    hist = h.rows(h.run_sql(
        c, f"SELECT version, operation, rows_added FROM system.table_history WHERE table_name = '{t}' ORDER BY version"
    ))
    assert hist == [(0, "CREATE TABLE", None), (1, "WRITE", 100), (2, "WRITE", 50), (3, "WRITE", 10), (4, "WRITE", 5)]


def test_optimize_compacts_small_appends(c):
    t = name()
    with c.cursor() as cur:
        for k in range(8):
            data = pa.table({"id": pa.array(range(k * 10, k * 10 + 10), pa.int64())})
            cur.adbc_ingest(t, data, mode="create_append")
    assert update(c, f"OPTIMIZE TABLE {t}") == 8
    assert table_rows(c, t, "count(*), sum(id)") == [(80, sum(range(80)))]
    (row,) = h.rows(h.run_sql(
        c, f"SELECT files_added, files_removed FROM system.table_history WHERE table_name = '{t}' AND operation = 'OPTIMIZE'"
    ))
    assert row == (1, 8)
    # Vacuum without retention deletes the 8 compacted files.
    assert update(c, f"VACUUM TABLE {t} RETAIN 0 HOURS DRY RUN") == 8
    assert update(c, f"VACUUM TABLE {t} RETAIN 0 HOURS") == 8
    assert table_rows(c, t, "count(*)") == [(80,)]


def test_concurrent_appends_lose_nothing(dep):
    t = name()
    conns = [dep.connect() for _ in range(4)]
    try:
        h.run_command(conns[0], f"CREATE TABLE {t} (writer INT, seq INT)")
        acknowledged = [0] * len(conns)
        barrier = threading.Barrier(len(conns), timeout=60)

        def work(i):
            barrier.wait()
            for k in range(5):
                data = pa.table({"writer": pa.array([i] * 7, pa.int32()), "seq": pa.array([k] * 7, pa.int32())})
                with conns[i].cursor() as cur:
                    cur.adbc_ingest(t, data, mode="append")
                acknowledged[i] += 7
                h.run_command(conns[i], f"INSERT INTO {t} VALUES ({i}, {100 + k})")
                acknowledged[i] += 1

        with ThreadPoolExecutor(len(conns)) as pool:
            for f in [pool.submit(work, i) for i in range(len(conns))]:
                f.result(timeout=600)
        got = h.rows(h.run_sql(conns[0], f"SELECT writer, count(*) FROM {t} GROUP BY writer"))
        h.assert_rows_equal(got, [(i, acknowledged[i]) for i in range(len(conns))])
        (versions,) = h.rows(h.run_sql(conns[0], f"SELECT max(version) FROM system.table_history WHERE table_name = '{t}'"))
        assert versions == (sum(acknowledged) // 8 * 2,)
    finally:
        for x in conns:
            x.close()


def test_external_tables_are_read_only(c, place):
    if place["kind"] != "local":
        pytest.skip("the external Parquet files are written locally")
    t = name()
    # Inside the warehouse: locations outside it need --allow-location.
    folder = Path(place["warehouse"]) / f"ext-{t}"
    folder.mkdir()
    pq.write_table(pa.table({"profile_id": ["a", "b"]}), folder / "x.parquet")
    h.run_command(c, f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{folder}/'")
    for sql in (f"DELETE FROM {t}", f"UPDATE {t} SET profile_id = 'c'", f"INSERT INTO {t} VALUES ('c')"):
        with pytest.raises(adbc_driver_manager.Error) as ei:
            h.run_command(c, sql)
        assert "managed" in str(ei.value) or "read-only" in str(ei.value), str(ei.value)
    assert table_rows(c, t, "count(*)") == [(2,)]


def test_vacuum_deletes_files_no_commit_references(c, place):
    """A failed write can leave data files that no commit references (a write
    uploads its files before its commit). VACUUM deletes them once they are
    older than the retention, when the retention is at least 24 hours; with a
    shorter one it leaves them, since they may belong to a write in
    progress."""
    if place["kind"] != "local":
        pytest.skip("the orphan's age is set with the local file's modification time")
    t = name()
    h.run_command(c, f"CREATE TABLE {t} (a INT)")
    h.run_command(c, f"INSERT INTO {t} VALUES (1), (2)")
    (directory,) = Path(place["warehouse"]).glob(f"tables/public/{t}/*/")
    stale = directory / "part-00000-stale-orphan.parquet"
    fresh = directory / "part-00000-fresh-orphan.parquet"
    for f in (stale, fresh):
        pq.write_table(pa.table({"a": pa.array([9], pa.int32())}), f)
    month_ago = time.time() - 30 * 86400
    os.utime(stale, (month_ago, month_ago))

    assert update(c, f"VACUUM TABLE {t} RETAIN 1 HOURS DRY RUN") == 0
    assert update(c, f"VACUUM TABLE {t} RETAIN 1 HOURS") == 0
    assert stale.exists() and fresh.exists()
    # The default retention (7 days): the month-old file goes, the new one stays.
    assert update(c, f"VACUUM TABLE {t} DRY RUN") == 1
    assert stale.exists()
    assert update(c, f"VACUUM TABLE {t}") == 1
    assert not stale.exists() and fresh.exists()
    assert sorted(table_rows(c, t)) == [(1,), (2,)]


def test_errors_are_clear(c):
    t = name()
    h.run_command(c, f"CREATE TABLE {t} (a INT)")
    cases = [
        (f"UPDATE {t} SET nope = 1", AdbcStatusCode.INVALID_ARGUMENT, "nope"),
        (f"DELETE FROM {t} WHERE nope = 1", AdbcStatusCode.INVALID_ARGUMENT, "nope"),
        (f"SELECT * FROM table_at('{t}', 7)", None, "no version"),
        ("DELETE FROM no_such_table", AdbcStatusCode.NOT_FOUND, "no_such_table"),
        ("VACUUM TABLE x RETAIN many HOURS", AdbcStatusCode.INVALID_ARGUMENT, "RETAIN"),
    ]
    for sql, status, text in cases:
        with pytest.raises(adbc_driver_manager.Error) as ei:
            h.run_command(c, sql)
        if status is not None:
            assert h.status_of(ei.value) == status, f"{sql}: {ei.value}"
        assert text in str(ei.value), f"{sql}: {ei.value}"
    # Nothing was committed by the failures.
    assert h.rows(h.run_sql(c, f"SELECT count(*) FROM system.table_history WHERE table_name = '{t}'")) == [(1,)]


def read_demo_files(place, table: str) -> pa.Table:
    """The demo table as pyarrow reads its Parquet files (before changes)."""
    if place["kind"] == "local":
        root = Path(place["warehouse"]) / "demo" / table
        fs = None
        path = str(root)
    else:
        fs = place["moto"].filesystem()
        path = f"{place['bucket']}/wh/demo/{table}"
    kw = {"partitioning": "hive"} if table == "events" else {}
    dataset = ds.dataset(path, filesystem=fs, format="parquet", exclude_invalid_files=True,
                         ignore_prefixes=["_delta_log", ".", "_"], **kw)
    return dataset.to_table()


def all_objects(place) -> dict[str, bytes]:
    """Every object of the warehouse's demo and table data, with its bytes."""
    out = {}
    if place["kind"] == "local":
        for p in Path(place["warehouse"]).rglob("*"):
            if p.is_file():
                out[str(p)] = p.read_bytes()
    else:
        s3 = place["moto"].boto()
        for key in place["moto"].keys(place["bucket"], "wh/"):
            out[key] = s3.get_object(Bucket=place["bucket"], Key=key)["Body"].read()
    return out


def erasure_hash(objects: dict[str, bytes], profile_id: str) -> str:
    """What system.erasures should show for `profile_id`: HMAC-SHA256 under
    the warehouse's erasure key (`_seglake/keys/erasure`, 64 hex digits)."""
    [key] = [v for k, v in objects.items() if k.endswith("_seglake/keys/erasure")]
    return hmac.new(bytes.fromhex(key.decode()), profile_id.encode(), hashlib.sha256).hexdigest()


def test_forget_profile(c, place, demo_files):
    """FORGET PROFILE removes every row of the person from every managed
    table with a profile_id column (counts from pyarrow over the original
    files), deletes the old files and log entries that held them, records a
    receipt, and later writes of that profile are dropped."""
    events = demo_files["events"]
    profiles = demo_files["profiles"]
    counts = pc.value_counts(events["profile_id"]).to_pylist()
    # A profile with several events.
    victim = max((x for x in counts if x["values"] is not None), key=lambda x: (x["counts"], x["values"]))["values"]
    n_events = pc.sum(pc.equal(events["profile_id"], victim)).as_py()
    n_profiles = pc.sum(pc.equal(profiles["profile_id"], victim)).as_py()
    assert n_events > 1 and n_profiles == 1
    total_events = events.num_rows

    removed = update(c, f"FORGET PROFILE '{victim}'")
    assert removed == n_events + n_profiles
    assert table_rows(c, "events", "count(*)") == [(total_events - n_events,)]
    for t in ("events", "profiles"):
        assert h.rows(h.run_sql(c, f"SELECT count(*) FROM {t} WHERE profile_id = '{victim}'")) == [(0,)]
    objects = all_objects(place)
    receipt = h.rows(h.run_sql(
        c, "SELECT table_name, rows_removed, files_rewritten > 0, files_deleted > 0, state FROM system.erasures "
           "WHERE profile_hash = ? AND rows_removed > 0",
        [erasure_hash(objects, victim)],
    ))
    h.assert_rows_equal(receipt, [("events", n_events, True, True, "done"), ("profiles", n_profiles, True, True, "done")])

    # The bytes are gone: no remaining data file holds the profile, and no
    # other file of the warehouse mentions it (log entries and their column
    # statistics, checkpoints, the catalog and its receipts, the audit).
    for path, data in objects.items():
        if path.endswith(".parquet") and "_delta_log" not in path:
            t = pq.read_table(pa.BufferReader(data))
            if "profile_id" in t.column_names:
                ids = pc.cast(t["profile_id"], pa.string())  # delta-rs may write string_view
                assert pc.sum(pc.equal(ids, victim)).as_py() in (0, None), path
        else:
            assert victim.encode() not in data, f"{path} still mentions the profile"
    # Old versions holding the profile cannot be read any more.
    with pytest.raises(adbc_driver_manager.Error):
        h.run_sql(c, "SELECT count(*) FROM table_at('events', 0)")

    # The tombstone: later writes of the profile are dropped.
    t = name()
    with c.cursor() as cur:
        cur.adbc_ingest(t, pa.table({"profile_id": [victim, "someone-else"], "v": [1, 2]}), mode="create")
    assert table_rows(c, t, "profile_id") == [("someone-else",)]
    # An UPDATE that would bring the id back is refused and changes nothing.
    with pytest.raises(adbc_driver_manager.Error) as ei:
        h.run_command(c, f"UPDATE {t} SET profile_id = '{victim}'")
    assert h.status_of(ei.value) == AdbcStatusCode.INVALID_ARGUMENT, ei.value
    assert "erased" in str(ei.value) and victim not in str(ei.value)
    assert table_rows(c, t, "profile_id") == [("someone-else",)]


def test_forget_profile_with_a_bound_parameter(c, place, demo_files):
    """`FORGET PROFILE ?` and `FORGET PROFILE $1` take the profile id as a
    bound parameter of a prepared statement: its rows are gone (counts from
    pyarrow over the demo files) and system.erasures has the receipt."""
    events = demo_files["events"]
    profiles = demo_files["profiles"]
    counts = [x for x in pc.value_counts(events["profile_id"]).to_pylist() if x["values"] is not None and x["counts"] > 1]
    # The least active profiles (test_forget_profile erases the most active one).
    counts.sort(key=lambda x: (x["counts"], x["values"]))
    total_events = table_rows(c, "events", "count(*)")[0][0]
    for x, how in zip(counts[:2], ("dbapi", "prepared")):
        victim, n_events = x["values"], x["counts"]
        n_profiles = pc.sum(pc.equal(profiles["profile_id"], victim)).as_py()
        assert n_profiles == 1
        if how == "dbapi":
            # DB-API: a prepared statement with `?` and the value bound.
            h.run_command(c, "FORGET PROFILE ?", params=(victim,))
        else:
            with c.cursor() as cur:
                cur.adbc_statement.set_sql_query("FORGET PROFILE $1")
                cur.adbc_statement.prepare()
                cur.adbc_statement.bind(pa.record_batch([pa.array([victim])], names=["p"]))
                assert cur.adbc_statement.execute_update() == n_events + n_profiles
        total_events -= n_events
        assert table_rows(c, "events", "count(*)") == [(total_events,)]
        for t in ("events", "profiles"):
            assert h.rows(h.run_sql(c, f"SELECT count(*) FROM {t} WHERE profile_id = ?", [victim])) == [(0,)]
        receipt = h.rows(h.run_sql(
            c, "SELECT table_name, rows_removed, \"user\" FROM system.erasures WHERE profile_hash = ? AND rows_removed > 0",
            [erasure_hash(all_objects(place), victim)],
        ))
        h.assert_rows_equal(receipt, [("events", n_events, h.DEFAULT_USER), ("profiles", n_profiles, h.DEFAULT_USER)])

    # The id must be a non-empty string.
    for bad in (42, "", None):
        with pytest.raises(adbc_driver_manager.Error) as ei:
            h.run_command(c, "FORGET PROFILE ?", params=(bad,))
        assert h.status_of(ei.value) == AdbcStatusCode.INVALID_ARGUMENT, f"{bad!r}: {ei.value}"
        assert "FORGET PROFILE" in str(ei.value), f"{bad!r}: {ei.value}"
    assert table_rows(c, "events", "count(*)") == [(total_events,)]
