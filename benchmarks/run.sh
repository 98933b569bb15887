#!/usr/bin/env bash
# One command for the whole benchmark: Python environment, release build,
# data (generated if missing), every measurement, result files in
# benchmarks/results/. Scales: SEGLAKE_BENCH_SCALES (default "1 10").
#
# SF 100 (about 10 GB of disk, generated in ~6 min) runs last, once every
# other measurement is written: one timed repetition after the checking run,
# Flight SQL against DuckDB, both under the same memory limit
# (SEGLAKE_BENCH_SF100_MEMORY_MB, default 16384). Every result is checked
# against DuckDB's, q09's 9.7 M rows included (the comparison is columnar).
# See benchmarks/README.md.
#   SEGLAKE_BENCH_SCALES="1 10 100" benchmarks/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH=benchmarks
SCALES=${SEGLAKE_BENCH_SCALES:-"1 10"}
REPS=${SEGLAKE_BENCH_REPS:-5}
SF10_REPS=${SEGLAKE_BENCH_SF10_REPS:-3}
SF100_REPS=${SEGLAKE_BENCH_SF100_REPS:-1}
SF100_MEMORY_MB=${SEGLAKE_BENCH_SF100_MEMORY_MB:-16384}
SF100_QUERIES=${SEGLAKE_BENCH_SF100_QUERIES:-} # default: the whole suite

if [ ! -x "$BENCH/.venv/bin/python" ]; then
    python3 -m venv "$BENCH/.venv"
fi
"$BENCH/.venv/bin/python" -m pip install --quiet -r "$BENCH/requirements.txt"

cargo build --release --locked --bin seglake --bin seglake-bench
TARGET=${CARGO_TARGET_DIR:-target}
BIN="$TARGET/release/seglake-bench"
has_scale() { [[ " $SCALES " == *" $1 "* ]]; }

for sf in $SCALES; do
    "$BIN" generate --scale "$sf"
done
for sf in $SCALES; do
    case "$sf" in
        100) ;;
        10) "$BIN" run --scale 10 --reps "$SF10_REPS" --label sf10 ;;
        *) "$BIN" run --scale "$sf" --reps "$REPS" --label "sf$sf" ;;
    esac
done
# Memory: the SF 10 suite under a 2 GiB pool (Flight SQL path, DuckDB with the same limit).
if has_scale 10; then
    "$BIN" run --scale 10 --reps 1 --engines seglake-flight,duckdb --memory-limit-mb 2048 --label sf10-mem2g
fi
# Settings (issue 7): each against DuckDB in the same run, Seglake in process
# (the setting, not the Flight SQL path, is what is measured).
SET_REPS=${SEGLAKE_BENCH_SETTINGS_REPS:-3}
PUSHDOWN=datafusion.execution.parquet.pushdown_filters=true,datafusion.execution.parquet.reorder_filters=true
NO_PAGE_INDEX=datafusion.execution.parquet.enable_page_index=false # on by default
run_set() { # SF LABEL [flags...]
    local sf=$1 label=$2
    shift 2
    "$BIN" run --scale "$sf" --reps "$SET_REPS" --engines seglake-inproc,duckdb --label "sf$sf-set-$label" "$@"
}
for sf in 1 10; do
    has_scale "$sf" || continue
    run_set "$sf" default
    run_set "$sf" pushdown --set "$PUSHDOWN"
    run_set "$sf" no-page-index --set "$NO_PAGE_INDEX"
done
# Layout of the event files (the default: by event_type, then time, 1 M rows
# per row group): by time instead, and 16 k rows per row group, each
# generated into its own data directory (the same rows). DuckDB reads the
# same files, so compare both engines' times, not only the ratio.
for sf in 1 10; do
    has_scale "$sf" || continue
    time_dir="$BENCH/data/sf$sf-time"
    rg_dir="$BENCH/data/sf$sf-rg16k"
    "$BIN" generate --scale "$sf" --out "$time_dir" --event-order time
    "$BIN" generate --scale "$sf" --out "$rg_dir" --event-row-group-rows 16384
    run_set "$sf" layout-time --data "$time_dir"
    run_set "$sf" layout-time-no-page-index --data "$time_dir" --set "$NO_PAGE_INDEX"
    run_set "$sf" layout-rg16k --data "$rg_dir"
    run_set "$sf" layout-rg16k-pushdown --data "$rg_dir" --set "$PUSHDOWN"
done
if has_scale 1; then
    run_set 1 batch32k --batch-size 32768
    run_set 1 tp1 --target-partitions 1
    run_set 1 tp4 --target-partitions 4
fi
"$BIN" stitch --rows 1000000 --label stitch-1m
"$BIN" stitch --rows 10000000 --label stitch-10m
"$BIN" transfer --scale 10 --label transfer-10m -- --rows 10000000 --reps 3
"$BIN" ingest --scale 10 --label ingest-1m -- --rows 1000000 --reps 3
"$BIN" collect --scale 10 --label collect-1m-p16 -- --rows 1000000 --batch 1000 --posters 16 --reps 3
"$BIN" concurrency --scale 1 --label concurrency-sf1 -- --clients 1,4,16 --passes 2 --exclude q09
if has_scale 100; then
    "$BIN" run --scale 100 --reps "$SF100_REPS" --engines seglake-flight,duckdb \
        --memory-limit-mb "$SF100_MEMORY_MB" ${SF100_QUERIES:+--queries "$SF100_QUERIES"} --label sf100
fi
echo "results: $BENCH/results/"
