"""An S3 warehouse, on a real S3-compatible server (moto) on the loopback
interface. Expected values come from pyarrow reading the same objects."""

from __future__ import annotations

import collections
import uuid

import adbc_driver_manager
import botocore.exceptions
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

# Results depend on where the plan runs: every topology of the run.
TOPOLOGIES = h.ALL_TOPOLOGIES
from s3_server import ACCESS_KEY, REGION, SECRET_KEY  # the moto fixture is in conftest.py

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def s3_demo(moto, make_demo):
    bucket = moto.new_bucket()
    warehouse = f"s3://{bucket}/wh"
    make_demo(warehouse, profiles=1000, env=moto.env())
    return bucket, warehouse


@pytest.fixture(scope="module")
def s3_server(launch, moto, s3_demo):
    dep = launch.start(s3_demo[1], env=moto.env())
    yield dep
    dep.stop()


@pytest.fixture(scope="module")
def s3_files(moto, s3_demo):
    """The demo tables as pyarrow reads them from the bucket (read once)."""
    bucket, _ = s3_demo
    return {t: read_demo(moto, bucket, t) for t in ("profiles", "events", "identifiers")}


@pytest.fixture
def s3_conn(s3_server):
    c = s3_server.connect()
    yield c
    c.close()


def test_moto_honours_conditional_puts(moto):
    """The catalog commits with If-None-Match: * (PutMode::Create); the S3
    server under test must refuse the second create of a key with 412, or
    the catalog tests below prove nothing."""
    s3 = moto.boto()
    bucket = moto.new_bucket()
    s3.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")
    with pytest.raises(botocore.exceptions.ClientError) as ei:
        s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch="*")
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412, (
        f"moto accepted or mis-answered a conditional put (If-None-Match: *): {ei.value.response}"
    )
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"1"


def read_demo(moto, bucket: str, table: str) -> pa.Table:
    fs = moto.filesystem()
    if table == "events":
        return ds.dataset(f"{bucket}/wh/demo/events", filesystem=fs, format="parquet", partitioning="hive").to_table()
    return pq.read_table(f"{bucket}/wh/demo/{table}", filesystem=fs)


def group_count(table: pa.Table, key: str) -> list[tuple]:
    return list(collections.Counter(table.column(key).to_pylist()).items())


def test_demo_tables_on_s3(moto, s3_demo, s3_files, s3_conn):
    bucket, _ = s3_demo
    # The catalog and the data are objects in the bucket.
    assert moto.keys(bucket, "wh/_seglake/catalog/")
    assert len(moto.keys(bucket, "wh/demo/events/")) > 300
    for table in ("profiles", "events", "identifiers"):
        expected = s3_files[table]
        assert h.rows(h.run_sql(s3_conn, f"SELECT count(*) FROM {table}")) == [(expected.num_rows,)]
    profiles = s3_files["profiles"]
    h.assert_rows_equal(h.rows(h.run_sql(s3_conn, "SELECT country, count(*) FROM profiles GROUP BY 1")),
                        group_count(profiles, "country"))
    events = s3_files["events"]
    h.assert_rows_equal(h.rows(h.run_sql(s3_conn, "SELECT event_type, count(*) FROM events GROUP BY 1")),
                        group_count(events, "event_type"))
    purchases = events.filter(pc.equal(events["event_type"], "purchase"))
    (row,) = h.rows(h.run_sql(s3_conn, "SELECT count(*), sum(amount) FROM events WHERE event_type = 'purchase'"))
    h.assert_rows_equal([row], [(purchases.num_rows, pc.sum(purchases["amount"]).as_py())])
    # Partition pruning on S3.
    march = events.filter(pc.starts_with(pc.cast(events["event_date"], pa.string()), "2026-03"))
    assert h.rows(h.run_sql(
        s3_conn, "SELECT count(*) FROM events WHERE event_date BETWEEN DATE '2026-03-01' AND DATE '2026-03-31'"
    )) == [(march.num_rows,)]


def test_ingest_on_s3(moto, s3_demo, s3_conn):
    bucket, _ = s3_demo
    t = f"t_{uuid.uuid4().hex[:12]}"
    data = pa.table({"id": pa.array(range(1000), pa.int64()), "s": pa.array([None if i % 5 == 0 else f"v{i}" for i in range(1000)])})
    with s3_conn.cursor() as cur:
        assert cur.adbc_ingest(t, data, mode="create") == 1000
        assert cur.adbc_ingest(t, data.slice(0, 100), mode="append") == 100
        with pytest.raises(adbc_driver_manager.Error) as ei:
            cur.adbc_ingest(t, data, mode="create")
        assert h.status_of(ei.value) == AdbcStatusCode.ALREADY_EXISTS
    got = h.run_sql(s3_conn, f"SELECT id, s FROM {t}").sort_by([("id", "ascending"), ("s", "ascending")])
    expected = pa.concat_tables([data, data.slice(0, 100)]).sort_by([("id", "ascending"), ("s", "ascending")])
    assert got.column("id").combine_chunks().equals(expected.column("id").combine_chunks())
    assert got.column("s").combine_chunks().equals(expected.column("s").combine_chunks())
    all_keys = moto.keys(bucket, f"wh/tables/public/{t}/")
    keys = [k for k in all_keys if "/_delta_log/" not in k]
    assert len(keys) == 2 and all(k.endswith(".parquet") for k in keys)
    # One commit to create, one per ingest (conditional puts on S3).
    assert len([k for k in all_keys if k.endswith(".json")]) == 3
    # The files are plain Parquet: pyarrow reads the same rows.
    on_s3 = pa.concat_tables([pq.read_table(f"{bucket}/{k}", filesystem=moto.filesystem()) for k in keys])
    assert on_s3.num_rows == 1100
    h.run_command(s3_conn, f"DROP TABLE {t}")
    assert moto.keys(bucket, f"wh/tables/public/{t}/") == []


def test_external_tables_on_s3(moto, s3_demo, s3_files, s3_conn):
    bucket, warehouse = s3_demo
    t1, t2 = f"t_{uuid.uuid4().hex[:12]}", f"t_{uuid.uuid4().hex[:12]}"
    h.run_command(s3_conn, f"CREATE EXTERNAL TABLE {t1} STORED AS PARQUET LOCATION 'demo/identifiers'")
    h.run_command(s3_conn, f"CREATE EXTERNAL TABLE {t2} STORED AS PARQUET PARTITIONED BY (event_date) "
                           f"LOCATION '{warehouse}/demo/events/'")
    identifiers = s3_files["identifiers"]
    h.assert_rows_equal(h.rows(h.run_sql(s3_conn, f"SELECT id_type, count(*) FROM {t1} GROUP BY 1")),
                        group_count(identifiers, "id_type"))
    events = s3_files["events"]
    assert h.rows(h.run_sql(s3_conn, f"SELECT count(*) FROM {t2}")) == [(events.num_rows,)]
    for t in (t1, t2):
        h.run_command(s3_conn, f"DROP TABLE {t}")
    # External data stays.
    assert len(moto.keys(bucket, "wh/demo/identifiers/")) >= 1


def test_restart_on_s3_keeps_the_catalog(launch, moto, make_demo):
    bucket = moto.new_bucket()
    warehouse = f"s3://{bucket}/wh"
    make_demo(warehouse, profiles=200, env=moto.env())
    profiles = pq.read_table(f"{bucket}/wh/demo/profiles", filesystem=moto.filesystem())
    data = pa.table({"k": pa.array(["a", "b", "c"]), "v": pa.array([1.0, None, 3.5])})

    dep = launch.start(warehouse, env=moto.env())
    c = dep.connect()
    with c.cursor() as cur:
        cur.adbc_ingest("kept", data, mode="create")
    h.run_command(c, "CREATE SCHEMA mart")
    h.run_command(c, "CREATE EXTERNAL TABLE mart.people STORED AS PARQUET LOCATION 'demo/profiles'")
    c.close()
    dep.stop()

    # Restart configured through the SEGLAKE_S3_* variables instead of AWS_*.
    seglake_env = {
        "SEGLAKE_S3_ENDPOINT": moto.endpoint,
        "SEGLAKE_S3_REGION": REGION,
        "SEGLAKE_S3_ACCESS_KEY_ID": ACCESS_KEY,
        "SEGLAKE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
        "SEGLAKE_S3_ALLOW_HTTP": "true",
    }
    for env in (moto.env(), seglake_env):
        dep = launch.start(warehouse, env=env)
        c = dep.connect()
        try:
            h.assert_rows_equal(h.rows(h.run_sql(c, "SELECT k, v FROM kept")), h.rows(data))
            assert h.rows(h.run_sql(c, "SELECT count(*) FROM mart.people")) == [(profiles.num_rows,)]
            assert h.rows(h.run_sql(c, "SELECT count(*) FROM profiles")) == [(profiles.num_rows,)]
        finally:
            c.close()
        dep.stop()


def test_two_servers_share_an_s3_warehouse(launch, moto, make_demo):
    """Two server processes on one S3 warehouse see each other's catalog
    changes and data right away."""
    bucket = moto.new_bucket()
    warehouse = f"s3://{bucket}/wh"
    make_demo(warehouse, profiles=100, env=moto.env())
    deps = [launch.start(warehouse, env=moto.env()) for _ in range(2)]
    a, b = (d.connect() for d in deps)
    try:
        h.run_command(a, "CREATE EXTERNAL TABLE from_a STORED AS PARQUET LOCATION 'demo/identifiers'")
        identifiers = pq.read_table(f"{bucket}/wh/demo/identifiers", filesystem=moto.filesystem())
        assert h.rows(h.run_sql(b, "SELECT count(*) FROM from_a")) == [(identifiers.num_rows,)]
        with b.cursor() as cur:
            cur.adbc_ingest("from_b", pa.table({"x": [1, 2, 3]}), mode="create")
        assert h.rows(h.run_sql(a, "SELECT sum(x) FROM from_b")) == [(6,)]
        with a.cursor() as cur:
            cur.adbc_ingest("from_b", pa.table({"x": [4]}), mode="append")
        assert h.rows(h.run_sql(b, "SELECT sum(x) FROM from_b")) == [(10,)]
        h.run_command(b, "DROP TABLE from_a")
        with pytest.raises(adbc_driver_manager.Error) as ei:
            h.run_sql(a, "SELECT * FROM from_a")
        assert h.status_of(ei.value) == AdbcStatusCode.NOT_FOUND
    finally:
        a.close()
        b.close()
        for d in deps:
            d.stop()
