//! Criterion micro-benchmarks of Seglake's marketing functions, through SQL
//! on seeded in-memory data (8192-row batches).
//!
//! `cargo bench -p seglake-benchmarks --bench udfs`

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use criterion::{Criterion, criterion_group, criterion_main};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const BATCH: usize = 8192;
const BATCHES: usize = 16;

fn data() -> Vec<RecordBatch> {
    let mut rng = StdRng::seed_from_u64(42);
    let schema = Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("phone", DataType::Utf8, true),
        Field::new("engaged", DataType::Boolean, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("r", DataType::Int64, false),
        Field::new("f", DataType::Int64, false),
    ]));
    let base = 1_790_000_000_000_000i64;
    (0..BATCHES)
        .map(|b| {
            let n = BATCH;
            let ids: Vec<String> = (0..n).map(|i| format!("p{}", (b * n + i) % 5000)).collect();
            let emails: Vec<String> = (0..n)
                .map(|i| match i % 3 {
                    0 => format!("  John.Doe+{i}@GoogleMail.com "),
                    1 => format!("user{i}@example.org"),
                    _ => format!("User.{i}@Orange.FR"),
                })
                .collect();
            let phones: Vec<String> = (0..n)
                .map(|_| {
                    format!(
                        "06 {:02} {:02} {:02} {:02}",
                        rng.random_range(10..99),
                        rng.random_range(10..99),
                        rng.random_range(10..99),
                        rng.random_range(10..99)
                    )
                })
                .collect();
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(StringArray::from(emails)),
                Arc::new(StringArray::from(phones)),
                Arc::new(BooleanArray::from(
                    (0..n).map(|_| rng.random_bool(0.2)).collect::<Vec<_>>(),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from(
                        (0..n)
                            .map(|_| base - rng.random_range(0..90 * 86_400_000_000i64))
                            .collect::<Vec<_>>(),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from(
                    (0..n).map(|_| rng.random_range(1..=5)).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    (0..n).map(|_| rng.random_range(1..=5)).collect::<Vec<_>>(),
                )),
            ];
            RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch")
        })
        .collect()
}

fn context(rt: &tokio::runtime::Runtime) -> SessionContext {
    let mut state =
        SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1)).state();
    seglake_udfs::register_all(&mut state).expect("register");
    let ctx = SessionContext::new_with_state(state);
    let batches = data();
    let table = MemTable::try_new(batches[0].schema(), vec![batches]).expect("table");
    ctx.register_table("t", Arc::new(table))
        .expect("register table");
    // Links for stitching: one identifier per row (email), 5000 profiles.
    rt.block_on(async {
        ctx.sql(
            "CREATE TABLE links AS SELECT profile_id AS record_id, 'email' AS id_type, normalize_email(email) AS id_value FROM t",
        )
        .await?
        .collect()
        .await
    })
    .expect("links");
    ctx
}

fn bench_sql(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    ctx: &SessionContext,
    name: &str,
    sql: &str,
) {
    c.bench_function(name, |b| {
        b.iter(|| {
            rt.block_on(async {
                ctx.sql(sql)
                    .await
                    .expect("plan")
                    .collect()
                    .await
                    .expect("run")
            })
        })
    });
}

fn udfs(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ctx = context(&rt);
    bench_sql(
        c,
        &rt,
        &ctx,
        "normalize_email 131k rows",
        "SELECT normalize_email(email) FROM t",
    );
    bench_sql(
        c,
        &rt,
        &ctx,
        "normalize_phone 131k rows",
        "SELECT normalize_phone(phone, 'FR') FROM t",
    );
    bench_sql(
        c,
        &rt,
        &ctx,
        "rfm_segment 131k rows",
        "SELECT rfm_segment(r, f) FROM t",
    );
    bench_sql(
        c,
        &rt,
        &ctx,
        "appetence_score 131k rows, 5000 groups",
        "SELECT profile_id, appetence_score(engaged, event_time, TIMESTAMP '2026-09-22 00:00:00', 30) FROM t GROUP BY profile_id",
    );
    bench_sql(
        c,
        &rt,
        &ctx,
        "stitch_identities 131k links",
        "SELECT count(*) FROM stitch_identities('links', 100)",
    );
}

criterion_group!(benches, udfs);
criterion_main!(benches);
