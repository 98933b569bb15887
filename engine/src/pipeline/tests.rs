//! The pipeline's steps on a real warehouse (a temporary directory).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use futures::TryStreamExt;

use super::{Access, Object, Source, check};
use crate::{Engine, EngineConfig, EngineError, Outcome, Session};

async fn open(dir: &tempfile::TempDir) -> Arc<Engine> {
    Engine::open(EngineConfig::new(dir.path().to_str().unwrap()))
        .await
        .unwrap()
}

async fn run(session: &Session, sql: &str) {
    match session.execute(sql, vec![]).await.unwrap() {
        Outcome::Rows { stream, .. } => {
            let _: Vec<_> = stream.try_collect().await.unwrap();
        }
        Outcome::Done { .. } => {}
    }
}

async fn count(session: &Session, table: &str) -> i64 {
    let Outcome::Rows { stream, .. } = session
        .execute(&format!("SELECT count(*) FROM {table}"), vec![])
        .await
        .unwrap()
    else {
        panic!("not a query")
    };
    let batches: Vec<_> = stream.try_collect().await.unwrap();
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

/// A warehouse with managed tables `m (a)` and `n (b)`, one row each.
async fn warehouse() -> (tempfile::TempDir, Session) {
    let dir = tempfile::tempdir().unwrap();
    let session = open(&dir).await.session("alice").unwrap();
    run(&session, "CREATE TABLE m AS SELECT 1 AS a").await;
    run(&session, "CREATE TABLE n AS SELECT 2 AS b").await;
    (dir, session)
}

/// The read and write sets the check sees for `sql`.
async fn access(session: &Session, sql: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let cx = session.begin(Source::Sql).await.unwrap();
    let (plan, _) = session.plan(&cx, sql, &[], false).await.unwrap();
    let Access { reads, writes } = Access::of(&cx, &plan).unwrap();
    let names = |set: BTreeSet<Object>| {
        set.into_iter()
            .map(|o| match o {
                Object::Table { schema, table } => format!("{schema}.{table}"),
                other => format!("{other:?}"),
            })
            .collect()
    };
    (names(reads), names(writes))
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn the_access_covers_the_whole_plan() {
    let (_dir, session) = warehouse().await;
    for (sql, reads, writes) in [
        ("SELECT * FROM m", set(&["public.m"]), set(&[])),
        (
            "SELECT * FROM m WHERE a IN (SELECT b FROM n)",
            set(&["public.m", "public.n"]),
            set(&[]),
        ),
        (
            "SELECT (SELECT max(b) FROM public.n) FROM m",
            set(&["public.m", "public.n"]),
            set(&[]),
        ),
        (
            "EXPLAIN ANALYZE SELECT * FROM m JOIN n ON a = b",
            set(&["public.m", "public.n"]),
            set(&[]),
        ),
        (
            "INSERT INTO m SELECT b FROM n",
            set(&["public.n"]),
            set(&["public.m"]),
        ),
        (
            "EXPLAIN INSERT INTO m SELECT b FROM n",
            set(&["public.n"]),
            set(&["public.m"]),
        ),
        (
            "DELETE FROM m WHERE a IN (SELECT b FROM n)",
            set(&["public.m", "public.n"]),
            set(&["public.m"]),
        ),
        (
            "UPDATE m SET a = 3 WHERE a = 1",
            set(&["public.m"]),
            set(&["public.m"]),
        ),
        (
            "SELECT * FROM table_at('n', 0)",
            set(&["public.n"]),
            set(&[]),
        ),
        // Table functions: the generating ones read nothing, identity
        // stitching reads its source (a table or a query).
        ("SELECT * FROM generate_series(1, 3)", set(&[]), set(&[])),
        (
            "SELECT count(*) FROM range(10) JOIN m ON value = a",
            set(&["public.m"]),
            set(&[]),
        ),
        (
            "SELECT * FROM stitch_identities('n', 5)",
            set(&["public.n"]),
            set(&[]),
        ),
        (
            "SELECT * FROM stitch_identities('SELECT CAST(a AS VARCHAR) AS record_id, ''t'' AS id_type, \
             CAST(b AS VARCHAR) AS id_value FROM m JOIN n ON a = b', 5)",
            set(&["public.m", "public.n"]),
            set(&[]),
        ),
        ("OPTIMIZE TABLE n", set(&[]), set(&["public.n"])),
        ("FORGET PROFILE 'p'", set(&[]), set(&["AllTables"])),
        (
            "CREATE TABLE c AS SELECT * FROM m",
            set(&["public.m"]),
            set(&["public.c"]),
        ),
        ("DROP TABLE n", set(&[]), set(&["public.n"])),
        (
            "SET datafusion.execution.batch_size = 100",
            set(&[]),
            set(&["Settings"]),
        ),
        (
            "CREATE SEGMENT s AS SELECT a AS profile_id FROM m",
            set(&["public.m"]),
            set(&["Segment(Some(\"s\"))"]),
        ),
    ] {
        assert_eq!(access(&session, sql).await, (reads, writes), "{sql}");
    }
}

#[tokio::test]
async fn writes_hidden_in_a_statement_are_refused_and_change_nothing() {
    let (dir, session) = warehouse().await;
    let target = dir.path().join("copied");
    for sql in [
        "EXPLAIN ANALYZE INSERT INTO m VALUES (5)".to_string(),
        "EXPLAIN ANALYZE INSERT INTO m SELECT b FROM n".to_string(),
        format!(
            "EXPLAIN ANALYZE COPY (SELECT * FROM m) TO '{}' STORED AS PARQUET",
            target.display()
        ),
        format!(
            "COPY (SELECT * FROM m) TO '{}' STORED AS PARQUET",
            target.display()
        ),
        "PREPARE p AS INSERT INTO m VALUES (6)".to_string(),
        "PREPARE q AS SELECT * FROM m".to_string(),
    ] {
        let e = session.execute(&sql, vec![]).await.unwrap_err();
        assert!(
            matches!(e, EngineError::PermissionDenied { .. }),
            "{sql}: {e}"
        );
        // The check refuses at prepare time too (Flight SQL's prepared
        // statements plan first).
        let e = session.prepare(&sql, &[]).await.unwrap_err();
        assert!(
            matches!(e, EngineError::PermissionDenied { .. }),
            "{sql}: {e}"
        );
    }
    assert_eq!(count(&session, "m").await, 1);
    assert!(!target.exists());
    // A query under EXPLAIN ANALYZE still runs.
    run(&session, "EXPLAIN ANALYZE SELECT * FROM m").await;
}

#[tokio::test]
async fn a_statement_plans_against_its_own_snapshot() {
    let (_dir, session) = warehouse().await;
    let first = session.begin(Source::Sql).await.unwrap();
    run(&session, "CREATE TABLE later AS SELECT 1 AS x").await;
    let second = session.begin(Source::Sql).await.unwrap();
    let sees = |cx: &super::StatementContext| {
        cx.context()
            .catalog(crate::DEFAULT_CATALOG)
            .and_then(|c| c.schema("public"))
            .is_some_and(|s| s.table_exist("later"))
    };
    // Another statement of the session began since: the first one still
    // plans against the catalog it started with.
    assert!(!sees(&first));
    assert!(sees(&second));
    assert!(first.snapshot().version < second.snapshot().version);
    assert_ne!(first.id(), second.id());
    // The session's own context holds no snapshot at all.
    assert!(session.context().catalog(crate::DEFAULT_CATALOG).is_none());
}

#[tokio::test]
async fn the_check_sees_ingest_and_scheduler_statements() {
    let (_dir, session) = warehouse().await;
    let cx = session.begin(Source::Scheduler).await.unwrap();
    let plan = super::Plan::Ingest {
        replace: false,
        schema: "public".into(),
        table: "m".into(),
    };
    let access = check(&cx, &plan).unwrap();
    assert_eq!(
        access.writes,
        BTreeSet::from([Object::Table {
            schema: "public".into(),
            table: "m".into()
        }])
    );
    assert!(access.reads.is_empty());
    assert_eq!(plan.kind().label(), "ingest");
}

/// The rule a refused statement names.
async fn refusal(session: &Session, sql: &str) -> &'static str {
    match session.execute(sql, vec![]).await {
        Err(EngineError::PermissionDenied { rule, .. }) => rule,
        other => panic!("{sql}: not refused: {:?}", other.err()),
    }
}

#[tokio::test]
async fn each_write_bypass_names_its_rule() {
    let (dir, session) = warehouse().await;
    let out = dir.path().join("out");
    std::fs::create_dir_all(dir.path().join("ext")).unwrap();
    run(
        &session,
        "CREATE EXTERNAL TABLE ext (a BIGINT) STORED AS PARQUET LOCATION 'ext'",
    )
    .await;
    let copy = format!("COPY (SELECT 1) TO '{}/x.parquet'", out.display());
    for (sql, rule) in [
        (copy.clone(), "no-copy"),
        (format!("EXPLAIN {copy}"), "no-copy"),
        (format!("EXPLAIN ANALYZE {copy}"), "no-copy"),
        ("INSERT INTO ext VALUES (1)".into(), "managed-writes-only"),
        (
            "INSERT INTO ext WITH x AS (SELECT 1 AS a) SELECT a FROM x".into(),
            "managed-writes-only",
        ),
        (
            "EXPLAIN INSERT INTO ext VALUES (1)".into(),
            "managed-writes-only",
        ),
        ("DELETE FROM ext".into(), "managed-writes-only"),
        ("UPDATE ext SET a = 2".into(), "managed-writes-only"),
        (
            "EXPLAIN ANALYZE INSERT INTO m VALUES (7)".into(),
            "explain-analyze-queries-only",
        ),
        (
            "EXPLAIN ANALYZE DELETE FROM m".into(),
            "explain-analyze-queries-only",
        ),
        ("PREPARE p AS SELECT 1".into(), "no-sql-prepare"),
        ("EXECUTE p".into(), "no-sql-prepare"),
        ("DEALLOCATE p".into(), "no-sql-prepare"),
    ] {
        assert_eq!(refusal(&session, &sql).await, rule, "{sql}");
    }
    assert_eq!(count(&session, "m").await, 1);
    assert!(!out.exists(), "a refused COPY left {}", out.display());
}

#[tokio::test]
async fn locations_stay_inside_the_warehouse() {
    let (dir, session) = warehouse().await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.parquet"), b"not parquet").unwrap();
    let o = outside.path().display();
    for (sql, rule) in [
        (
            format!("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{o}'"),
            "confined-locations",
        ),
        (
            format!("CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'file://{o}/'"),
            "confined-locations",
        ),
        (
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/'".into(),
            "confined-locations",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}/../'",
                dir.path().display()
            ),
            "confined-locations",
        ),
        (
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '_seglake'".into(),
            "warehouse-internal",
        ),
        (
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION 'tables/public'".into(),
            "warehouse-internal",
        ),
        (
            format!(
                "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '{}'",
                dir.path().display()
            ),
            "warehouse-internal",
        ),
        (
            format!("CREATE DESTINATION d TYPE file OPTIONS (path '{o}')"),
            "confined-locations",
        ),
        (
            "CREATE DESTINATION d TYPE file OPTIONS (path '_seglake/x')".into(),
            "warehouse-internal",
        ),
    ] {
        assert_eq!(refusal(&session, &sql).await, rule, "{sql}");
    }
    // Nothing was registered.
    let cx = session.begin(Source::Sql).await.unwrap();
    assert!(cx.snapshot().state.table("public", "t").is_err());
    assert!(cx.snapshot().state.destinations.is_empty());
}

#[tokio::test]
async fn an_allowed_prefix_and_a_single_file_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    let shared = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path().to_str().unwrap());
    config.allow_locations = vec![shared.path().display().to_string()];
    let session = Engine::open(config)
        .await
        .unwrap()
        .session("alice")
        .unwrap();
    let file = shared.path().join("people.parquet");
    run(
        &session,
        "CREATE TABLE src AS SELECT * FROM (VALUES ('a'), ('b'), ('c')) AS v(profile_id)",
    )
    .await;
    // Written by hand (COPY is refused): three rows.
    let batch = arrow::record_batch::RecordBatch::try_from_iter([(
        "profile_id",
        Arc::new(arrow::array::StringArray::from(vec!["a", "b", "c"])) as _,
    )])
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&file).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    run(
        &session,
        &format!(
            "CREATE EXTERNAL TABLE one STORED AS PARQUET LOCATION '{}'",
            file.display()
        ),
    )
    .await;
    assert_eq!(count(&session, "one").await, 3);
    run(
        &session,
        &format!(
            "CREATE EXTERNAL TABLE dir STORED AS PARQUET LOCATION 'file://{}/'",
            shared.path().display()
        ),
    )
    .await;
    assert_eq!(count(&session, "dir").await, 3);
}

/// The privilege matrix of `docs/security.md`, run as written there (see
/// the text above the table).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_privilege_matrix_holds() {
    const DOC: &str = include_str!("../../../docs/security.md");
    let table = DOC
        .split("<!-- privilege-matrix:start -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- privilege-matrix:end -->").next())
        .expect("the matrix markers");
    let mut rows = vec![];
    for line in table.lines().map(str::trim).filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line
            .trim_matches('|')
            .split(" | ")
            .map(|c| c.trim())
            .collect();
        if cells[0] == "statement" || cells[0].starts_with("---") {
            continue;
        }
        assert_eq!(cells.len(), 5, "{line}");
        let sql = cells[0].trim_matches('`').to_string();
        let allowed: Vec<bool> = cells[1..]
            .iter()
            .map(|c| match *c {
                "✓" => true,
                "✗" => false,
                other => panic!("{line}: cell {other:?}"),
            })
            .collect();
        rows.push((sql, allowed));
    }
    assert!(rows.len() >= 25, "{} rows", rows.len());

    let (dir, engine) = secured().await;
    let root = engine.session("root").unwrap();
    // The matrix's columns, in its order.
    let users = ["root", "rita", "ann", "nobody"];
    for sql in [
        "CREATE SCHEMA other",
        "CREATE TABLE public.t AS SELECT 'p1' AS profile_id, CAST(1 AS BIGINT) AS n",
        "CREATE TABLE other.u AS SELECT 'p1' AS profile_id",
        "CREATE SEGMENT base AS SELECT profile_id FROM public.t",
        "CREATE ROLE analysts",
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO analysts",
        "GRANT INSERT ON TABLE public.t TO analysts",
        "GRANT CREATE ON SCHEMA public TO analysts",
        "GRANT SEGMENTS ON WAREHOUSE TO analysts",
        "CREATE USER rita PASSWORD 'rita-pw'",
        "CREATE USER ann PASSWORD 'ann-pw'",
        "CREATE USER nobody PASSWORD 'nobody-pw'",
        "GRANT reader TO rita",
        "GRANT analysts TO ann",
    ] {
        run(&root, sql).await;
    }
    for u in users {
        run(
            &root,
            &format!("CREATE DESTINATION out_{u} TYPE file OPTIONS (path 'exports/out_{u}')"),
        )
        .await;
    }
    // A Parquet file for the external table.
    std::fs::create_dir_all(dir.path().join("files")).unwrap();
    let batch = arrow::array::RecordBatch::try_from_iter([(
        "x",
        Arc::new(arrow::array::Int64Array::from(vec![1])) as arrow::array::ArrayRef,
    )])
    .unwrap();
    let file = std::fs::File::create(dir.path().join("files/x.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let sessions: Vec<Session> = users.iter().map(|u| engine.session(u).unwrap()).collect();
    // Refusals first (nobody, ann, rita, root): what an allowed statement
    // changes cannot hide a refusal.
    let mut failures = vec![];
    for (sql, allowed) in &rows {
        for i in (0..users.len()).rev() {
            let sql = sql.replace("{u}", users[i]);
            let before = engine.catalog().await.unwrap().version;
            let outcome = match sessions[i].execute(&sql, vec![]).await {
                Ok(Outcome::Rows { stream, .. }) => stream
                    .try_collect::<Vec<_>>()
                    .await
                    .map(|_| ())
                    .map_err(EngineError::from),
                Ok(Outcome::Done { .. }) => Ok(()),
                Err(e) => Err(e),
            };
            match (allowed[i], outcome) {
                (true, Ok(())) => {}
                (false, Err(EngineError::PermissionDenied { message, .. })) => {
                    let after = engine.catalog().await.unwrap().version;
                    if after != before {
                        failures.push(format!("{}: {sql}: refused but committed", users[i]));
                    }
                    if !message.contains(users[i]) && !sql.contains("datafusion.runtime") {
                        failures.push(format!("{}: {sql}: {message}", users[i]));
                    }
                }
                (expected, got) => failures.push(format!(
                    "{}: {sql}: expected {}, got {got:?}",
                    users[i],
                    if expected {
                        "success"
                    } else {
                        "PERMISSION_DENIED"
                    }
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `schema.table` of every table `session` lists (`information_schema`
/// itself left out).
async fn listed(session: &Session) -> Vec<String> {
    query_strings(
        session,
        "SELECT table_schema || '.' || table_name FROM information_schema.tables \
         WHERE table_schema <> 'information_schema' ORDER BY 1",
    )
    .await
}

/// The first column of `sql`'s rows, as text.
async fn query_strings(session: &Session, sql: &str) -> Vec<String> {
    let Outcome::Rows { stream, .. } = session.execute(sql, vec![]).await.unwrap() else {
        panic!("not a query")
    };
    let batches: Vec<_> = stream.try_collect().await.unwrap();
    batches
        .iter()
        .flat_map(|b| {
            let column = b.column(0).as_string::<i32>();
            (0..b.num_rows()).map(move |i| column.value(i).to_string())
        })
        .collect()
}

/// An engine with access control, `root` its administrator.
async fn secured() -> (tempfile::TempDir, Arc<Engine>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path().to_str().unwrap());
    config.administrators = Some(vec!["root".into()]);
    let engine = Engine::open(config).await.unwrap();
    (dir, engine)
}

/// Listings show what a user may read, nothing else.
#[tokio::test]
async fn listings_follow_grants() {
    let (_dir, engine) = secured().await;
    let root = engine.session("root").unwrap();
    for sql in [
        "CREATE SCHEMA other",
        "CREATE TABLE public.a AS SELECT 1 AS x",
        "CREATE TABLE public.b AS SELECT 1 AS x",
        "CREATE TABLE other.c AS SELECT 1 AS x",
        "CREATE USER ann PASSWORD 'pw'",
        "GRANT SELECT ON TABLE public.a TO ann",
    ] {
        run(&root, sql).await;
    }
    let ann = engine.session("ann").unwrap();
    // system.grants is everyone's, with the user's own rows only (not
    // listed: ann sees the one table she was given).
    assert_eq!(listed(&ann).await, ["public.a"]);
    run(&root, "CREATE USER bob PASSWORD 'pw'").await;
    run(&root, "GRANT SELECT ON TABLE public.b TO bob").await;
    let own = query_strings(
        &ann,
        "SELECT grantee || ' ' || privilege || ' ' || object FROM system.grants",
    )
    .await;
    assert_eq!(own, ["ann SELECT public.a"]);
    let tables: Vec<String> = ann
        .tables(false)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.schema != "information_schema")
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    assert_eq!(tables, ["public.a"]);
    let schemas = ann.schemas().await.unwrap();
    assert_eq!(schemas, ["information_schema", "public"]);
    // A name that is not listed still answers PERMISSION_DENIED, not
    // NOT_FOUND, naming what is missing.
    let err = ann
        .execute("SELECT * FROM public.b", vec![])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::PermissionDenied { message, .. }
            if message.contains("SELECT ON TABLE public.b")),
        "{err}"
    );
    // DESCRIBE shows columns: of readable tables only.
    run(&ann, "DESCRIBE public.a").await;
    let err = ann.execute("DESCRIBE public.b", vec![]).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::PermissionDenied { message, .. }
            if message.contains("SELECT ON TABLE public.b")),
        "{err}"
    );
    run(&root, "GRANT reader TO ann").await;
    let all = listed(&ann).await;
    assert!(
        ["other.c", "public.a", "public.b", "system.segments"]
            .iter()
            .all(|t| all.contains(&t.to_string())),
        "{all:?}"
    );
    assert!(!all.contains(&"system.users".to_string()), "{all:?}");
    // The administrator sees everything.
    assert!(listed(&root).await.contains(&"system.users".to_string()));
}

/// A refresh delivers to the segment's activations with the rights of
/// whoever activated each: when they are gone, the refresh is refused,
/// naming the activation, and delivers nothing.
#[tokio::test]
async fn deliveries_run_with_the_rights_of_whoever_activated() {
    let (_dir, engine) = secured().await;
    let root = engine.session("root").unwrap();
    for sql in [
        "CREATE TABLE public.t AS SELECT 'p1' AS profile_id, 1 AS n",
        "CREATE TABLE public.u AS SELECT 'p1' AS profile_id, 'a@example.com' AS email",
        "CREATE SEGMENT s AS SELECT profile_id FROM public.t",
        "CREATE USER mia PASSWORD 'pw'",
        "GRANT ACTIVATE ON WAREHOUSE TO mia",
        "GRANT SELECT ON TABLE public.u TO mia",
    ] {
        run(&root, sql).await;
    }
    let mia = engine.session("mia").unwrap();
    run(
        &mia,
        "CREATE DESTINATION d TYPE file OPTIONS (path 'exports/d')",
    )
    .await;
    run(
        &mia,
        "ACTIVATE SEGMENT s TO d COLUMNS (email) PROFILES public.u",
    )
    .await;
    run(&root, "REFRESH SEGMENT s").await;

    for (revoke, missing) in [
        (
            "REVOKE SELECT ON TABLE public.u FROM mia",
            "SELECT ON TABLE public.u",
        ),
        (
            "REVOKE ACTIVATE ON WAREHOUSE FROM mia",
            "ACTIVATE ON WAREHOUSE",
        ),
    ] {
        run(&root, revoke).await;
        let err = root.execute("REFRESH SEGMENT s", vec![]).await.unwrap_err();
        assert!(
            matches!(&err, EngineError::PermissionDenied { message, .. }
                if message.contains("'d'") && message.contains("'mia'") && message.contains(missing)),
            "{err}"
        );
        run(&root, "GRANT SELECT ON TABLE public.u TO mia").await;
    }
    // Activated again by an administrator: delivered with its rights.
    run(&root, "DEACTIVATE SEGMENT s FROM d").await;
    run(
        &root,
        "ACTIVATE SEGMENT s TO d COLUMNS (email) PROFILES public.u",
    )
    .await;
    run(&root, "REFRESH SEGMENT s").await;
}
