//! Distributed execution: a coordinator and 3 in-process workers on
//! `127.0.0.1:0` sharing a demo warehouse, checked against a single node on
//! the same warehouse.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use seglake_engine::{Engine, EngineConfig, Outcome, Session};
use seglake_tests::{TEST_WORKERS, TestServer, Topology, fetch};

/// appetence_score (UDAF), stitch_identities (table function and custom
/// plan node), normalize_email (UDF), joins and aggregations.
const MARKETING_QUERY: &str = "
WITH persons AS (
    SELECT record_id, person_id FROM stitch_identities('identifiers')
),
scores AS (
    SELECT profile_id,
           appetence_score(
               event_type IN ('email_open', 'email_click', 'sms_click', 'push_open', 'ad_click'),
               event_time, TIMESTAMP '2026-11-01 00:00:00', 30) AS appetence
    FROM events
    WHERE profile_id IS NOT NULL
    GROUP BY profile_id
),
linked AS (
    SELECT p.profile_id, min(ps.person_id) AS person_id
    FROM profiles p
    JOIN identifiers i ON i.id_type = 'email' AND normalize_email(i.id_value) = normalize_email(p.email)
    JOIN persons ps ON ps.record_id = i.record_id
    GROUP BY p.profile_id
)
SELECT p.country,
       count(*) AS profiles,
       count(l.person_id) AS stitched,
       count(DISTINCT l.person_id) AS persons,
       round(sum(s.appetence), 6) AS appetence
FROM profiles p
JOIN scores s ON s.profile_id = p.profile_id
LEFT JOIN linked l ON l.profile_id = p.profile_id
GROUP BY p.country
ORDER BY p.country";

/// Rows as text, for comparisons.
fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = vec![];
    for b in batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).unwrap())
            .collect();
        for r in 0..b.num_rows() {
            out.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out
}

async fn query(session: &Session, sql: &str) -> Vec<RecordBatch> {
    match session.execute(sql, vec![]).await.expect("query plans") {
        Outcome::Rows { stream, .. } => datafusion::physical_plan::common::collect(stream)
            .await
            .expect("query runs"),
        Outcome::Done { .. } => vec![],
    }
}

async fn text(session: &Session, sql: &str) -> String {
    rows(&query(session, sql).await)
        .into_iter()
        .map(|r| r.join(" | "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn single_node(server: &TestServer) -> impl Future<Output = std::sync::Arc<Engine>> {
    let path = server.dir.path().to_str().unwrap().to_string();
    async move { Engine::open(EngineConfig::new(path)).await.unwrap() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn marketing_query_on_three_workers_equals_single_node() {
    let server = TestServer::start_topology(Topology::Distributed, true).await;
    let cluster = server.engine.cluster().expect("a coordinator");
    assert_eq!(cluster.live_urls().len(), TEST_WORKERS);
    let coordinator = server.engine.session("alice").unwrap();
    let single = single_node(&server).await.session("alice").unwrap();

    let expected = rows(&query(&single, MARKETING_QUERY).await);
    assert!(!expected.is_empty());
    let got = rows(&query(&coordinator, MARKETING_QUERY).await);
    assert_eq!(got, expected);

    // Ordered results over sorted Parquet files (the events are sorted by
    // event_time) stay ordered and correct whatever the arrival order of
    // the shuffled streams.
    let ordered = "SELECT date_trunc('month', event_time) AS m, channel, count(*) FROM events GROUP BY 1, 2 ORDER BY 1, 2";
    let expected = rows(&query(&single, ordered).await);
    for _ in 0..5 {
        assert_eq!(rows(&query(&coordinator, ordered).await), expected);
    }

    // The plan has network boundaries (stages run on the workers)...
    let plan = text(&coordinator, &format!("EXPLAIN {MARKETING_QUERY}")).await;
    assert!(plan.contains("DistributedExec"), "{plan}");
    assert!(
        plan.contains("NetworkShuffleExec") || plan.contains("NetworkCoalesceExec"),
        "{plan}"
    );
    assert!(plan.contains("StitchIdentitiesExec"), "{plan}");
    // ... and single-node plans have none.
    let plan = text(&single, &format!("EXPLAIN {MARKETING_QUERY}")).await;
    assert!(!plan.contains("DistributedExec"), "{plan}");

    // Every worker received tasks: system.workers counts them.
    let workers = query(
        &coordinator,
        "SELECT url, state, queries, tasks, last_seen IS NOT NULL FROM system.workers ORDER BY url",
    )
    .await;
    let workers = rows(&workers);
    assert_eq!(workers.len(), TEST_WORKERS, "{workers:?}");
    for w in &workers {
        assert_eq!(w[1], "up", "{w:?}");
        assert!(w[2].parse::<u64>().unwrap() >= 1, "{w:?}");
        assert!(w[3].parse::<u64>().unwrap() >= 1, "{w:?}");
        assert_eq!(w[4], "true", "{w:?}");
    }

    // EXPLAIN ANALYZE shows per-stage, per-task metrics.
    let analyzed = text(
        &coordinator,
        "EXPLAIN ANALYZE SELECT channel, count(*) FROM events GROUP BY channel",
    )
    .await;
    assert!(analyzed.contains("Stage"), "{analyzed}");
    assert!(analyzed.contains("output_rows"), "{analyzed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallelism_is_a_session_setting() {
    let server = TestServer::start_topology(Topology::Distributed, true).await;
    let session = server.engine.session("alice").unwrap();
    let sql = "EXPLAIN SELECT channel, count(*) FROM events GROUP BY channel";
    let plan = text(&session, sql).await;
    assert!(
        plan.contains("tasks=3") || plan.contains("input_tasks=3"),
        "{plan}"
    );
    query(&session, "SET distributed.max_tasks_per_stage = 2").await;
    let plan = text(&session, sql).await;
    assert!(!plan.contains("tasks=3"), "{plan}");
    assert!(plan.contains("tasks=2"), "{plan}");
    // Another session keeps the server's setting.
    let other = server.engine.session("bob").unwrap();
    let plan = text(&other, sql).await;
    assert!(
        plan.contains("tasks=3") || plan.contains("input_tasks=3"),
        "{plan}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_worker_is_dropped_and_taken_back() {
    let mut server = TestServer::start_topology(Topology::Distributed, true).await;
    let session = server.engine.session("alice").unwrap();
    let sql = "SELECT count(*), count(DISTINCT profile_id) FROM events";
    let expected = text(&session, sql).await;

    let workers = server.workers.as_mut().unwrap();
    let stopped = workers.urls()[0].clone();
    workers.stop(0).await;
    // The next query runs on the other workers (dropped by the health
    // check, or retried after the failed attempt).
    assert_eq!(text(&session, sql).await, expected);
    let cluster = server.engine.cluster().unwrap();
    cluster.refresh().await;
    let live: Vec<String> = cluster
        .live_urls()
        .iter()
        .map(|u| u.as_str().trim_end_matches('/').to_string())
        .collect();
    assert_eq!(live.len(), TEST_WORKERS - 1);
    assert!(!live.contains(&stopped));
    let state = text(
        &session,
        &format!("SELECT state FROM system.workers WHERE url = '{stopped}/'"),
    )
    .await;
    assert_eq!(state, "down");

    // Every worker gone: the coordinator runs queries alone.
    let workers = server.workers.as_mut().unwrap();
    workers.stop(1).await;
    workers.stop(2).await;
    cluster.refresh().await;
    assert!(cluster.live_urls().is_empty());
    assert_eq!(text(&session, sql).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flight_sql_through_the_coordinator() {
    let server = TestServer::start_topology(Topology::Distributed, true).await;
    let mut client = server.client("alice", "secret").await;
    let info = client
        .execute(
            "SELECT count(*) AS n FROM events e JOIN profiles p USING (profile_id)".into(),
            None,
        )
        .await
        .unwrap();
    let (_, batches) = fetch(&mut client, info).await.unwrap();
    let n = batches[0]
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .value(0);
    let single = single_node(&server).await.session("alice").unwrap();
    let expected = text(
        &single,
        "SELECT count(*) FROM events e JOIN profiles p USING (profile_id)",
    )
    .await;
    assert_eq!(n.to_string(), expected);
    assert!(batches[0].column(0).len() == 1);
}
