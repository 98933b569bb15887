"""Seglake's settings (`seglake.*`) and the operator's `--datafusion-config`
defaults, through the real binary and the ADBC driver."""

import subprocess
from pathlib import Path

import adbc_driver_manager
import pyarrow.parquet as pq
import pytest
from adbc_driver_manager import AdbcStatusCode

import seglake_harness as h

ROW_GROUP = "seglake.write_row_group_rows"


def setting(conn, name: str) -> str:
    rows = h.rows(h.run_sql(conn, "SELECT value FROM information_schema.df_settings WHERE name = ?", (name,)))
    assert len(rows) == 1, f"{name}: {rows}"
    return rows[0][0]


def row_groups(warehouse: Path, table: str) -> list[int]:
    """Rows per row group of every Parquet file of a managed table
    (tables/public/<table>/<generation>/*.parquet)."""
    files = sorted((Path(warehouse) / "tables" / "public" / table).glob("*/*.parquet"))
    assert files, f"no data files for {table}"
    sizes = []
    for f in files:
        meta = pq.ParquetFile(f).metadata
        sizes += [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    return sizes


def test_seglake_settings_are_listed_set_and_used(conn, connect, demo_warehouse, unique):
    assert setting(conn, ROW_GROUP) == str(1024 * 1024)
    shown = {r["name"] for r in h.run_sql(conn, "SHOW ALL").to_pylist()}
    assert ROW_GROUP in shown
    h.run_command(conn, f"SET {ROW_GROUP} = 2")
    assert setting(conn, ROW_GROUP) == "2"
    # Per session: another connection keeps the default.
    assert setting(connect(), ROW_GROUP) == str(1024 * 1024)
    t = unique()
    h.run_command(conn, f"CREATE TABLE {t} AS SELECT * FROM (VALUES (1), (2), (3), (4), (5)) AS v(a)")
    # 5 rows in groups of at most 2: 2 + 2 + 1.
    assert sorted(row_groups(demo_warehouse, t)) == [1, 2, 2]
    assert h.rows(h.run_sql(conn, f"SELECT sum(a) FROM {t}")) == [(15,)]
    for bad, status in [
        (f"SET {ROW_GROUP} = 'many'", AdbcStatusCode.INVALID_ARGUMENT),
        ("SET seglake.no_such_setting = 1", AdbcStatusCode.INVALID_ARGUMENT),
    ]:
        with pytest.raises(adbc_driver_manager.Error) as ei:
            h.run_command(conn, bad)
        assert h.status_of(ei.value) == status, f"{bad}: {ei.value}"
    # A refused SET changes nothing.
    assert setting(conn, ROW_GROUP) == "2"
    h.run_command(conn, f"DROP TABLE {t}")


def test_datafusion_config_sets_server_defaults(launch, tmp_path):
    dep = launch.start(
        tmp_path,
        args=("--datafusion-config", f"{ROW_GROUP}=3,datafusion.execution.batch_size=4"),
    )
    try:
        conn = dep.connect()
        assert setting(conn, ROW_GROUP) == "3"
        assert setting(conn, "datafusion.execution.batch_size") == "4"
        h.run_command(conn, "CREATE TABLE t AS SELECT * FROM (VALUES (1), (2), (3), (4), (5), (6), (7)) AS v(a)")
        assert sorted(row_groups(tmp_path, "t")) == [1, 3, 3]
        # Sessions may still change a default.
        h.run_command(conn, f"SET {ROW_GROUP} = 100")
        assert setting(conn, ROW_GROUP) == "100"
        conn.close()
    finally:
        dep.stop()


@pytest.mark.parametrize(
    "value, complaint",
    [
        ("seglake.no_such_setting=1", "seglake.no_such_setting"),
        (f"{ROW_GROUP}=many", ROW_GROUP),
        ("no_equals_sign", "KEY=VALUE"),
    ],
)
def test_a_bad_default_stops_the_start(seglake_bin, tmp_path, value, complaint):
    res = subprocess.run(
        [str(seglake_bin), "serve", "--warehouse", str(tmp_path), "--listen", "127.0.0.1:0",
         "--datafusion-config", value],
        env=h.child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode != 0
    assert complaint in res.stderr, res.stderr
    assert "listening" not in res.stdout
