//! `FORGET PROFILE` against the write paths and failures: a write racing
//! an erasure, an erasure that fails half way, and what stays on disk.

use std::sync::Arc;

use arrow::array::{AsArray, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::TableReference;
use futures::{StreamExt, TryStreamExt};

use crate::{Engine, EngineConfig, ErrorKind, IngestMode, Outcome};

async fn open(dir: &tempfile::TempDir) -> Arc<Engine> {
    Engine::open(EngineConfig::new(dir.path().to_str().unwrap()))
        .await
        .unwrap()
}

async fn run(engine: &Arc<Engine>, sql: &str) -> crate::Result<Vec<RecordBatch>> {
    let session = engine.session("test").unwrap();
    match session.execute(sql, vec![]).await? {
        Outcome::Rows { stream, .. } => Ok(stream.try_collect().await?),
        Outcome::Done { .. } => Ok(vec![]),
    }
}

/// The first column of every row, as text.
async fn column(engine: &Arc<Engine>, sql: &str) -> Vec<String> {
    let batches = run(
        engine,
        &format!("SELECT CAST(x AS VARCHAR) FROM ({sql}) AS q(x)"),
    )
    .await
    .unwrap();
    let mut out: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            arrow::compute::cast(b.column(0), &DataType::Utf8)
                .unwrap()
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or("NULL").to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

fn events(rows: &[(&str, i32)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, true),
        Field::new("n", DataType::Int32, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1))),
        ],
    )
    .unwrap()
}

/// An ingest of `first`, then of what the returned sender sends, into
/// `table`; the receiver fires once the write consumed its first batch
/// (it read the tombstones before that).
fn slow_ingest(
    engine: &Arc<Engine>,
    table: &'static str,
    first: RecordBatch,
) -> (
    tokio::task::JoinHandle<crate::Result<u64>>,
    tokio::sync::oneshot::Receiver<()>,
    tokio::sync::mpsc::Sender<crate::Result<RecordBatch>>,
) {
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (more_tx, more_rx) = tokio::sync::mpsc::channel::<crate::Result<RecordBatch>>(1);
    let schema = first.schema();
    let head = futures::stream::once(async move {
        let _ = started_tx.send(());
        Ok(first)
    });
    let rest =
        futures::stream::unfold(
            more_rx,
            |mut rx| async move { rx.recv().await.map(|b| (b, rx)) },
        );
    let stream = Box::pin(head.chain(rest));
    let engine = Arc::clone(engine);
    let task = tokio::spawn(async move {
        engine
            .session("collector")
            .unwrap()
            .ingest(
                &TableReference::bare(table),
                IngestMode::Append,
                schema,
                stream,
            )
            .await
    });
    (task, started_rx, more_tx)
}

/// An engine whose table `ev (profile_id, n)` holds `values`.
async fn with_events(values: &str) -> (tempfile::TempDir, Arc<Engine>) {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir).await;
    run(&engine, "CREATE TABLE ev (profile_id VARCHAR, n INT)")
        .await
        .unwrap();
    run(&engine, &format!("INSERT INTO ev VALUES {values}"))
        .await
        .unwrap();
    (dir, engine)
}

/// An ingest that read the tombstones before `FORGET PROFILE` wrote its
/// own commits the profile's rows after the erasure scanned the table
/// (which held none of them): the writer erases them after its commit.
#[tokio::test]
async fn a_write_racing_an_erasure_keeps_none_of_the_profile() {
    let (_dir, engine) = with_events("('p1', 1)").await;

    let (ingest, started, more) = slow_ingest(&engine, "ev", events(&[("p2", 3), ("p3", 4)]));
    started.await.unwrap();
    run(&engine, "FORGET PROFILE 'p2'").await.unwrap();
    more.send(Ok(events(&[("p2", 5)]))).await.unwrap();
    drop(more);
    let written = ingest.await.unwrap().unwrap();
    assert_eq!(written, 3, "the write itself did not know of the erasure");

    assert_eq!(
        column(&engine, "SELECT profile_id FROM ev").await,
        ["p1", "p3"]
    );
    // Later writes drop p2 at once.
    run(&engine, "INSERT INTO ev VALUES ('p2', 6), ('p4', 7)")
        .await
        .unwrap();
    assert_eq!(
        column(&engine, "SELECT profile_id FROM ev").await,
        ["p1", "p3", "p4"]
    );
}

/// When the erasure rewrote the table a write had read, and dropped the
/// log history before the rewrite, the write fails cleanly (retryable,
/// nothing written) and its retry drops the erased profile.
#[tokio::test]
async fn a_write_whose_table_an_erasure_rewrote_fails_cleanly() {
    let (_dir, engine) = with_events("('p1', 1), ('p2', 2)").await;

    let (ingest, started, more) = slow_ingest(&engine, "ev", events(&[("p2", 3), ("p3", 4)]));
    started.await.unwrap();
    run(&engine, "FORGET PROFILE 'p2'").await.unwrap();
    drop(more);
    let e = ingest.await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("run the write again"), "{e}");
    assert_eq!(column(&engine, "SELECT profile_id FROM ev").await, ["p1"]);

    let (ingest, started, more) = slow_ingest(&engine, "ev", events(&[("p2", 3), ("p3", 4)]));
    started.await.unwrap();
    drop(more);
    assert_eq!(ingest.await.unwrap().unwrap(), 1);
    assert_eq!(
        column(&engine, "SELECT profile_id FROM ev").await,
        ["p1", "p3"]
    );
}

/// The newest `_delta_log` entry of table `t`'s directory.
fn log_dir(engine_dir: &tempfile::TempDir, location: &str) -> std::path::PathBuf {
    let root = url::Url::parse(location).unwrap().to_file_path().unwrap();
    assert!(root.starts_with(engine_dir.path()));
    root.join("_delta_log")
}

/// A table that cannot be erased leaves the receipt pending, the others
/// erased and the tombstone in force; running FORGET again finishes.
#[tokio::test]
async fn a_failed_erasure_is_finished_by_running_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir).await;
    for t in ["a", "b"] {
        run(
            &engine,
            &format!("CREATE TABLE {t} (profile_id VARCHAR, n INT)"),
        )
        .await
        .unwrap();
        run(
            &engine,
            &format!("INSERT INTO {t} VALUES ('p1', 1), ('p2', 2)"),
        )
        .await
        .unwrap();
    }
    // Break b: a garbage next commit in its log.
    let location = engine
        .catalog()
        .await
        .unwrap()
        .state
        .table("public", "b")
        .unwrap()
        .location
        .clone();
    let garbage = log_dir(&dir, &location).join(format!("{:020}.json", 2));
    std::fs::write(&garbage, "not json\n").unwrap();

    let e = run(&engine, "FORGET PROFILE 'p1'").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let message = e.to_string();
    assert!(
        message.contains("public.b") && message.contains("run it again") && !message.contains("p1"),
        "{message}"
    );
    assert_eq!(column(&engine, "SELECT profile_id FROM a").await, ["p2"]);
    assert_eq!(
        column(
            &engine,
            "SELECT state || ' ' || coalesce(table_name, '-') || ' ' || CAST(error IS NOT NULL AS VARCHAR) \
             || ' ' || CAST(completed_at IS NULL AS VARCHAR) FROM system.erasures"
        )
        .await,
        ["pending a true true"]
    );
    // The tombstone is in force while pending.
    run(&engine, "INSERT INTO a VALUES ('p1', 3), ('p3', 4)")
        .await
        .unwrap();
    assert_eq!(
        column(&engine, "SELECT profile_id FROM a").await,
        ["p2", "p3"]
    );

    std::fs::remove_file(&garbage).unwrap();
    let removed = run(&engine, "FORGET PROFILE 'p1'").await;
    assert!(removed.is_ok(), "{removed:?}");
    assert_eq!(column(&engine, "SELECT profile_id FROM b").await, ["p2"]);
    assert_eq!(
        column(
            &engine,
            "SELECT state || ' ' || table_name || ' ' || CAST(rows_removed AS VARCHAR) \
             || ' ' || CAST(error IS NULL AND completed_at >= erased_at AS VARCHAR) FROM system.erasures"
        )
        .await,
        ["done a 1 true", "done b 1 true"]
    );
}

/// Every file under `root` that contains `needle`.
fn files_containing(root: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    out.push(path.display().to_string());
                }
            }
        }
    }
    out
}

/// After FORGET PROFILE no file of the warehouse holds the id: not the
/// data files, the Delta logs and checkpoints, the catalog, the receipts
/// or the audit trail.
#[tokio::test]
async fn no_file_of_the_warehouse_keeps_an_erased_id() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir).await;
    let id = "victim-7f3a@example.com";
    run(&engine, "CREATE TABLE ev (profile_id VARCHAR, n INT)")
        .await
        .unwrap();
    run(
        &engine,
        "CREATE TABLE profiles (profile_id VARCHAR, country VARCHAR, age INT)",
    )
    .await
    .unwrap();
    for i in 0..3 {
        run(
            &engine,
            &format!("INSERT INTO ev VALUES ('{id}', {i}), ('p{i}', {i})"),
        )
        .await
        .unwrap();
    }
    run(
        &engine,
        &format!("INSERT INTO profiles VALUES ('{id}', 'FR', 40), ('p1', 'DE', 30)"),
    )
    .await
    .unwrap();
    run(&engine, "UPDATE profiles SET age = age + 1")
        .await
        .unwrap();
    // The grep finds the id before the erasure (in column statistics of
    // the log at least), so it would find what the erasure leaves behind.
    assert!(!files_containing(dir.path(), id.as_bytes()).is_empty());

    run(&engine, &format!("FORGET PROFILE '{id}'"))
        .await
        .unwrap();
    engine.flush_audit().await.unwrap();
    assert_eq!(
        files_containing(dir.path(), id.as_bytes()),
        Vec::<String>::new()
    );
    assert_eq!(column(&engine, "SELECT count(*) FROM ev").await, ["3"]);
}

/// Copies the directory `from` to `to`, every file last modified `age` ago.
fn copy_dir(from: &std::path::Path, to: &std::path::Path, age: std::time::Duration) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target, age);
        } else {
            std::fs::copy(&path, &target).unwrap();
            let f = std::fs::File::options().write(true).open(&target).unwrap();
            f.set_modified(std::time::SystemTime::now() - age).unwrap();
        }
    }
}

fn file_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            if p.is_dir() { file_count(&p) } else { 1 }
        })
        .sum()
}

/// `VACUUM WAREHOUSE` deletes table directories no catalog entry names
/// once they are older than the retention (never younger than a day: a
/// CREATE TABLE in progress writes before the catalog names it), and
/// nothing else.
#[tokio::test]
async fn vacuum_warehouse_sweeps_orphan_table_directories() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir).await;
    run(&engine, "CREATE TABLE t (profile_id VARCHAR, n INT)")
        .await
        .unwrap();
    run(&engine, "INSERT INTO t VALUES ('p1', 1), ('p2', 2)")
        .await
        .unwrap();
    let location = engine
        .catalog()
        .await
        .unwrap()
        .state
        .table("public", "t")
        .unwrap()
        .location
        .clone();
    let live = url::Url::parse(&location).unwrap().to_file_path().unwrap();
    let table_dir = live.parent().unwrap();
    // The data of a replaced generation whose deletion failed (two days
    // old), of a dropped table (two days old), and of a CREATE TABLE in
    // progress (an hour old).
    let day = std::time::Duration::from_secs(86_400);
    let replaced = table_dir.join("00000000-old-generation");
    let dropped = dir.path().join("tables/public/gone/11111111-dropped");
    let in_progress = dir.path().join("tables/public/new/22222222-in-progress");
    copy_dir(&live, &replaced, 2 * day);
    copy_dir(&live, &dropped, 2 * day);
    copy_dir(&live, &in_progress, day / 24);
    let old_files = file_count(&replaced) + file_count(&dropped);
    let live_files = file_count(&live);

    let dry = run(&engine, "VACUUM WAREHOUSE RETAIN 0 HOURS DRY RUN")
        .await
        .unwrap();
    assert!(dry.is_empty());
    assert!(replaced.exists() && dropped.exists());
    let session = engine.session("test").unwrap();
    let Outcome::Done { rows_affected } = session
        .execute("VACUUM WAREHOUSE RETAIN 0 HOURS", vec![])
        .await
        .unwrap()
    else {
        panic!("VACUUM returns no rows")
    };
    assert_eq!(rows_affected, Some(old_files as u64));
    assert!(!replaced.exists() || file_count(&replaced) == 0);
    assert!(!dropped.exists() || file_count(&dropped) == 0);
    assert_eq!(file_count(&in_progress), live_files, "younger than a day");
    assert_eq!(file_count(&live), live_files);
    assert_eq!(
        column(&engine, "SELECT profile_id FROM t").await,
        ["p1", "p2"]
    );
}
