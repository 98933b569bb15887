//! The memory pool: its default size, spilling, refusals that name the
//! statement, `system.queries.peak_memory_bytes`, and runtime settings
//! that no session changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use datafusion::execution::memory_pool::MemoryLimit;
use futures::TryStreamExt;

use crate::{Engine, EngineConfig, ErrorKind, Outcome, Session};

/// The pool of the tests: far smaller than what the queries below read.
/// A sort's final merges hold one batch per spilled run and partition:
/// with [`BATCH`] rows a batch of the sort below is ~150 KiB, so that they
/// fit.
const POOL: usize = 8 * 1024 * 1024;
const BATCH: usize = 1024;
/// Rows of the queries below.
const ROWS: i64 = 300_000;
/// A prime above `ROWS`: `value * 7919 % P` is a permutation of the values.
const P: i64 = 300_007;

async fn engine(memory_limit: Option<usize>) -> (tempfile::TempDir, Arc<Engine>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path().to_str().unwrap());
    config.administrators = Some(vec!["root".into()]);
    config.memory_limit = memory_limit;
    // One partition: DataFusion 55 merges each partition's spilled runs
    // with all the memory it can get, and with two partitions their final
    // merge then finds a small pool empty.
    config.target_partitions = Some(1);
    config.batch_size = Some(BATCH);
    let engine = Engine::open(config).await.unwrap();
    (dir, engine)
}

async fn batches(session: &Session, sql: &str) -> crate::Result<Vec<RecordBatch>> {
    match session.execute(sql, vec![]).await? {
        Outcome::Rows { stream, .. } => Ok(stream.try_collect().await?),
        Outcome::Done { .. } => Ok(vec![]),
    }
}

/// Every value of `sql`'s rows as text.
async fn strings(session: &Session, sql: &str) -> Vec<Vec<String>> {
    crate::test_text::as_text(&batches(session, sql).await.unwrap())
}

/// Waits until the server's pool holds nothing (the tasks of a failed
/// query are dropped asynchronously).
async fn pool_empties(engine: &Engine) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while engine.runtime().memory_pool.reserved() != 0 {
        assert!(
            Instant::now() < deadline,
            "the pool still holds {} bytes",
            engine.runtime().memory_pool.reserved()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sort_larger_than_the_pool_spills_and_is_complete() {
    let (_dir, engine) = engine(Some(POOL)).await;
    let root = engine.session("root").unwrap();
    // 300,000 rows with a 60-character key, ordered by it: ~22 MB to sort
    // in an 8 MiB pool.
    let sql = format!(
        "SELECT value, lpad(CAST(value * 7919 % {P} AS VARCHAR), 60, '0') AS k \
         FROM generate_series(1, {ROWS}) ORDER BY k"
    );
    let out = batches(&root, &sql).await.unwrap();
    let size: usize = out.iter().map(|b| b.get_array_memory_size()).sum();
    assert!(size > 2 * POOL, "the result ({size} bytes) fits the pool");
    let mut values = vec![];
    let mut keys = vec![];
    for b in &out {
        let v = b.column(0).as_primitive::<Int64Type>();
        let k = b.column(1).as_string::<i32>();
        for i in 0..b.num_rows() {
            values.push(v.value(i));
            keys.push(k.value(i).to_string());
        }
    }
    // Each key is its value's, computed here; the keys are in order, and
    // every value is there once.
    for (v, k) in values.iter().zip(&keys) {
        assert_eq!(k, &format!("{:060}", v * 7919 % P));
    }
    assert!(keys.windows(2).all(|w| w[0] <= w[1]), "not sorted");
    let mut sorted = values.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=ROWS).collect::<Vec<_>>());

    // Its peak in the pool: something, never more than the pool.
    let rows = strings(
        &root,
        &format!(
            "SELECT state, peak_memory_bytes FROM system.queries WHERE sql = '{}'",
            sql.replace('\'', "''")
        ),
    )
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][0], "finished");
    let peak: usize = rows[0][1].parse().unwrap();
    assert!(peak > 0 && peak <= POOL, "peak {peak}");
    pool_empties(&engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_cannot_spill_fails_naming_itself_and_the_server_goes_on() {
    let (_dir, engine) = engine(Some(POOL)).await;
    let root = engine.session("root").unwrap();
    // One list of 300,000 strings of 100 characters (30 MB): an aggregate
    // without groups holds its state, it cannot spill it.
    let sql = format!(
        "SELECT cardinality(array_agg(lpad(CAST(value AS VARCHAR), 100, 'x'))) \
         FROM generate_series(1, {ROWS})"
    );
    let e = batches(&root, &sql).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResourceExhausted, "{e}");
    let rows = strings(
        &root,
        &format!(
            "SELECT query_id, state, error FROM system.queries WHERE sql = '{}'",
            sql.replace('\'', "''")
        ),
    )
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (id, state, error) = (&rows[0][0], &rows[0][1], &rows[0][2]);
    assert_eq!(state, "failed");
    assert!(e.to_string().contains(&format!("statement {id}")), "{e}");
    assert!(error.contains(id.as_str()), "{error}");
    // Its memory is back in the pool, and the next query runs.
    pool_empties(&engine).await;
    assert_eq!(
        strings(
            &root,
            &format!("SELECT count(*) FROM generate_series(1, {ROWS})")
        )
        .await,
        [[ROWS.to_string()]]
    );
}

#[tokio::test]
async fn runtime_settings_are_refused_to_administrators_too() {
    let (_dir, engine) = engine(Some(POOL)).await;
    let root = engine.session("root").unwrap();
    for sql in [
        "SET datafusion.runtime.memory_limit = '1G'",
        "SET DataFusion.Runtime.Memory_Limit = '1G'",
        "RESET datafusion.runtime.memory_limit",
        "SET datafusion.runtime.temp_directory = '/tmp/elsewhere'",
        "SET datafusion.runtime.list_files_cache_limit = '1M'",
    ] {
        let e = batches(&root, sql).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{sql}: {e}");
        let message = e.to_string();
        assert!(message.contains("no-runtime-settings"), "{message}");
        if sql.to_lowercase().contains("memory_limit") {
            assert!(message.contains("--memory-limit-mb"), "{message}");
        }
    }
    // Other settings still change, and the session keeps the server's pool.
    batches(&root, "SET datafusion.execution.batch_size = 100")
        .await
        .unwrap();
    assert!(Arc::ptr_eq(
        &root.context().state().runtime_env().memory_pool,
        &engine.runtime().memory_pool
    ));
    assert!(matches!(
        engine.runtime().memory_pool.memory_limit(),
        MemoryLimit::Finite(POOL)
    ));
}

#[tokio::test]
async fn the_default_pool_is_seventy_percent_of_the_memory() {
    let (_dir, engine) = engine(None).await;
    let expected =
        crate::memory::default_pool_size(crate::memory::available_memory()).unwrap_or(usize::MAX);
    assert_eq!(engine.memory_pool_size(), expected);
    assert!(matches!(
        engine.runtime().memory_pool.memory_limit(),
        MemoryLimit::Finite(n) if n == expected
    ));
    // A sort's merge reservation fits a small pool: an eighth of it per
    // partition at most, DataFusion's 10 MiB otherwise.
    let (_dir, small) = self::engine(Some(POOL)).await;
    let state = small.session_state().unwrap();
    assert_eq!(
        state
            .config()
            .options()
            .execution
            .sort_spill_reservation_bytes,
        POOL / 8
    );
    let state = engine.session_state().unwrap();
    assert_eq!(
        state
            .config()
            .options()
            .execution
            .sort_spill_reservation_bytes,
        (10 * 1024 * 1024).min(expected / 8)
    );
}
