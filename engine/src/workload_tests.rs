//! `system.queries`, `KILL QUERY` and statement timeouts, across sessions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;

use crate::{Engine, EngineConfig, EngineError, ErrorKind, Outcome, Session};

/// Sums a range far too long to finish: runs until stopped.
const ENDLESS: &str = "SELECT sum(value) FROM generate_series(1, 1000000000000)";

async fn engine(timeout: Duration) -> (tempfile::TempDir, Arc<Engine>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path().to_str().unwrap());
    config.administrators = Some(vec!["root".into()]);
    config.statement_timeout = timeout;
    let engine = Engine::open(config).await.unwrap();
    (dir, engine)
}

async fn run(session: &Session, sql: &str) -> crate::Result<Vec<Vec<String>>> {
    let batches: Vec<_> = match session.execute(sql, vec![]).await? {
        Outcome::Rows { stream, .. } => stream.try_collect().await?,
        Outcome::Done { .. } => return Ok(vec![]),
    };
    Ok(crate::test_text::as_text(&batches))
}

/// Runs `sql` in the background as `session`; the result and how long
/// it took.
fn spawn(
    session: Session,
    sql: &'static str,
) -> tokio::task::JoinHandle<(crate::Result<()>, Instant)> {
    tokio::spawn(async move {
        let result = run(&session, sql).await.map(|_| ());
        (result, Instant::now())
    })
}

/// The id of `user`'s running statement `sql`, once it runs.
async fn running(root: &Session, user: &str, sql: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = run(
            root,
            &format!(
                "SELECT query_id, kind, state, client_address FROM system.queries \
                 WHERE user_name = '{user}' AND sql = '{}' AND state = 'running'",
                sql.replace('\'', "''")
            ),
        )
        .await
        .unwrap();
        if let Some(row) = rows.first() {
            assert_eq!(row[1], "query");
            return row[0].clone();
        }
        assert!(Instant::now() < deadline, "{user}'s statement never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_query_is_listed_and_killed_from_another_session() {
    let (_dir, engine) = engine(Duration::from_secs(3600)).await;
    let root = engine.session("root").unwrap();
    for sql in [
        "CREATE USER ann PASSWORD 'pw'",
        "CREATE USER bob PASSWORD 'pw'",
    ] {
        run(&root, sql).await.unwrap();
    }
    let task = spawn(engine.session("ann").unwrap(), ENDLESS);
    let id = running(&root, "ann", ENDLESS).await;

    // Users see their own statements only; bob cannot kill ann's.
    let bob = engine.session("bob").unwrap();
    let seen = run(
        &bob,
        "SELECT count(*) FROM system.queries WHERE user_name = 'ann'",
    )
    .await;
    assert_eq!(seen.unwrap(), [["0"]]);
    let refused = run(&bob, &format!("KILL QUERY '{id}'")).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::PermissionDenied, "{refused}");
    let missing = run(&root, "KILL QUERY 'no-such-statement'")
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    assert!(!task.is_finished());

    let killed_at = Instant::now();
    run(&root, &format!("KILL QUERY '{id}'")).await.unwrap();
    let (result, ended_at) = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the killed query stops")
        .unwrap();
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    assert!(e.to_string().contains("killed by root"), "{e}");
    assert!(
        ended_at - killed_at < Duration::from_secs(1),
        "{:?}",
        ended_at - killed_at
    );
    let row = run(
        &root,
        &format!("SELECT state, error LIKE '%killed by root%', finished_at IS NOT NULL FROM system.queries WHERE query_id = '{id}'"),
    )
    .await
    .unwrap();
    assert_eq!(row, [["cancelled", "true", "true"]]);
    // Ann may kill her own.
    let task = spawn(engine.session("ann").unwrap(), ENDLESS);
    let id = running(&root, "ann", ENDLESS).await;
    let ann = engine.session("ann").unwrap();
    run(&ann, &format!("KILL '{id}'")).await.unwrap();
    let (result, _) = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_time_out_at_the_shorter_of_the_server_and_session_limits() {
    let (_dir, engine) = engine(Duration::from_millis(1500)).await;
    let root = engine.session("root").unwrap();
    // The session's shorter limit.
    run(&root, "SET seglake.statement_timeout = '200ms'")
        .await
        .unwrap();
    let started = Instant::now();
    let e = run(&root, ENDLESS).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DeadlineExceeded, "{e}");
    assert!(
        matches!(
            e,
            EngineError::DataFusion(_) | EngineError::DeadlineExceeded(_)
        ),
        "{e:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(1400),
        "{took:?}"
    );
    // A longer session limit does not lift the server's.
    run(&root, "SET seglake.statement_timeout = '2h'")
        .await
        .unwrap();
    let started = Instant::now();
    let e = run(&root, ENDLESS).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DeadlineExceeded, "{e}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let states = run(
        &root,
        "SELECT state FROM system.queries WHERE sql LIKE 'SELECT sum(value)%' ORDER BY queued_at",
    )
    .await
    .unwrap();
    assert_eq!(states, [["timed_out"], ["timed_out"]]);
    assert!(
        run(&root, "SET seglake.statement_timeout = 'soon'")
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_stopped_midway_is_on_the_audit_trail() {
    let (_dir, engine) = engine(Duration::from_secs(3600)).await;
    let root = engine.session("root").unwrap();
    run(&root, "CREATE TABLE totals (v BIGINT)").await.unwrap();
    // Its SELECT never ends: the write is killed before it commits.
    const ENDLESS_INSERT: &str =
        "INSERT INTO totals SELECT sum(value) FROM generate_series(1, 1000000000000)";
    let task = spawn(engine.session("root").unwrap(), ENDLESS_INSERT);
    let deadline = Instant::now() + Duration::from_secs(30);
    let id = loop {
        let rows = run(
            &root,
            &format!(
                "SELECT query_id FROM system.queries WHERE sql = '{ENDLESS_INSERT}' AND state = 'running'"
            ),
        )
        .await
        .unwrap();
        if let Some(row) = rows.first() {
            break row[0].clone();
        }
        assert!(Instant::now() < deadline, "the insert never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    run(&root, &format!("KILL QUERY '{id}'")).await.unwrap();
    let (result, _) = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the killed insert stops")
        .unwrap();
    assert_eq!(result.unwrap_err().kind(), ErrorKind::Cancelled);
    engine.flush_audit().await.unwrap();
    let trail = run(
        &root,
        &format!(
            "SELECT kind, objects, outcome, message LIKE '%KILL QUERY%' FROM system.audit WHERE statement_id = '{id}'"
        ),
    )
    .await
    .unwrap();
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0][0], "dml");
    assert!(trail[0][1].contains("totals"), "{trail:?}");
    assert_eq!(trail[0][2..], ["cancelled", "true"]);
    assert_eq!(
        run(&root, "SELECT count(*) FROM totals").await.unwrap(),
        [["0"]]
    );
}
