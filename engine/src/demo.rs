//! Deterministic demo data generator: realistic marketing data in three
//! Parquet tables (`profiles`, `events`, `identifiers`).
//!
//! The same [`DemoOptions`] always produce byte-identical files: every random
//! stream is a [`StdRng`] seeded from the options (one stream per chunk of
//! profiles and one per day of events, keyed by the calendar date), nothing
//! depends on hash-map order, the wall clock or thread scheduling.
//!
//! Memory stays bounded when scaled up: profiles are generated in chunks of
//! [`PROFILE_CHUNK`], only a compact per-profile state (~24 bytes) is kept for
//! the event generation, and events are generated, sorted and written one day
//! at a time (at most two days are in flight, on the blocking thread pool).
//!
//! Layout under `root`:
//! - `profiles/part-NNNNN.parquet` (one part per [`PROFILE_CHUNK`] profiles),
//! - `identifiers/part-NNNNN.parquet` (one part per chunk of people),
//! - `events/event_date=YYYY-MM-DD/part-00000.parquet` (hive partitioning by
//!   day, one file per day even when the day is empty; the `event_date`
//!   column is not stored in the files).

use std::f64::consts::TAU;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int32Builder, StringBuilder,
    TimestampMicrosecondArray, new_null_array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, Days, NaiveDate, Weekday};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Errors of the demo generator.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo data: object store error: {0}")]
    ObjectStore(#[from] object_store::Error),

    #[error("demo data: parquet error: {0}")]
    Parquet(#[from] ParquetError),

    #[error("demo data: arrow error: {0}")]
    Arrow(#[from] ArrowError),

    /// The options are out of the supported range.
    #[error("demo data: invalid options: {0}")]
    InvalidOptions(String),

    /// A generation task could not run to completion (runtime shutting down).
    #[error("demo data: generation task failed: {0}")]
    Task(String),
}

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// Number of profiles (default 100 000). About 10 % more people exist
    /// only in `identifiers` (no profile).
    pub profiles: u64,
    /// Seed of every random stream (default 42).
    pub seed: u64,
    /// Number of days of events, ending at `end_date` included (default 365).
    pub days: u32,
    /// The last day of events (default 2026-11-01).
    pub end_date: NaiveDate,
    /// The order of the rows of each day's event file (default by
    /// `event_type`, then time).
    pub event_order: EventOrder,
    /// Maximum rows per row group of the event files (default
    /// [`MAX_ROW_GROUP_ROWS`]; a day holds ~140 events per 1 000 profiles).
    pub event_row_group_rows: usize,
}

/// The order of the rows of a day's event file (also declared as the
/// files' Parquet `sorting_columns`). Both orders hold the same rows with
/// the same `event_id`s (numbered in time order).
///
/// The default is [`EventOrder::TypeThenTime`]: segment queries filter on
/// `event_type` (and on a window of days, which the `event_date` partitions
/// prune), so with the page index (on by default, see
/// `Engine::session_state`) a scan reads only the pages of the types it asks
/// for. Measured in benchmarks/README.md ("Settings"): the suite
/// runs ~20 % faster at SF 10 than on files sorted by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventOrder {
    /// By `event_time`.
    Time,
    /// By `event_type`, then `event_time`: the row group and page
    /// statistics of `event_type` become selective.
    #[default]
    TypeThenTime,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            profiles: 100_000,
            seed: 42,
            days: 365,
            end_date: NaiveDate::from_ymd_opt(2026, 11, 1).expect("valid date"),
            event_order: EventOrder::default(),
            event_row_group_rows: MAX_ROW_GROUP_ROWS,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DemoSummary {
    /// Rows of `profiles`.
    pub profiles: u64,
    /// Rows of `events`.
    pub events: u64,
    /// Rows of `identifiers` (one per record and identifier).
    pub identifiers: u64,
    /// Files written under `events/` (one per day).
    pub event_files: u64,
}

/// The largest supported number of profiles (phone numbers and ids stay unique below it).
pub const MAX_PROFILES: u64 = 90_000_000;

/// Profiles per `profiles` / `identifiers` part file.
pub const PROFILE_CHUNK: u64 = 500_000;

/// Maximum rows per Parquet row group.
pub const MAX_ROW_GROUP_ROWS: usize = 1_000_000;

/// The values of `events.event_type`.
pub const EVENT_TYPES: [&str; 14] = [
    "page_view",
    "product_view",
    "add_to_cart",
    "purchase",
    "email_sent",
    "email_open",
    "email_click",
    "sms_sent",
    "sms_click",
    "push_sent",
    "push_open",
    "ad_impression",
    "ad_click",
    "store_visit",
];

/// The values of `events.channel`.
pub const CHANNELS: [&str; 7] = ["web", "app", "email", "sms", "push", "ads", "store"];

/// The values of `events.source`.
pub const EVENT_SOURCES: [&str; 5] = ["web", "app", "store", "crm", "ads"];

/// The values of `events.category`.
pub const CATEGORIES: [&str; 8] = [
    "electronics",
    "fashion",
    "home",
    "beauty",
    "sports",
    "books",
    "toys",
    "grocery",
];

/// The values of `identifiers.source`.
pub const IDENTIFIER_SOURCES: [&str; 4] = ["web", "app", "store", "crm"];

/// The values of `identifiers.id_type`.
pub const ID_TYPES: [&str; 4] = ["email", "phone", "customer_id", "device_id"];

/// Schema of `profiles`.
pub fn profiles_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("profile_id", DataType::Utf8, false),
        Field::new("email", DataType::Utf8, true),
        Field::new("phone", DataType::Utf8, true),
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("first_name", DataType::Utf8, false),
        Field::new("city", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("birth_year", DataType::Int32, true),
        Field::new("gender", DataType::Utf8, true),
        Field::new("signup_date", DataType::Date32, false),
        Field::new("consent_email", DataType::Boolean, false),
        Field::new("consent_sms", DataType::Boolean, false),
        Field::new("consent_push", DataType::Boolean, false),
        Field::new("consent_ads", DataType::Boolean, false),
    ]))
}

/// Schema of `events` as stored in the files (without the `event_date`
/// partition column). `received_at` is when the HTTP collector received an
/// event (it deduplicates by it after a restart, see docs/collector.md):
/// always NULL in generated rows, which were never received by it.
pub fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Utf8, false),
        Field::new("profile_id", DataType::Utf8, true),
        Field::new("device_id", DataType::Utf8, true),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, true),
        Field::new("product_id", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new(
            "received_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

/// Schema of `identifiers`.
pub fn identifiers_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("record_id", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, false),
        Field::new("id_type", DataType::Utf8, false),
        Field::new("id_value", DataType::Utf8, true),
    ]))
}

/// Writes the three demo tables as Parquet under `root` in `store`:
/// - `{root}/profiles/part-00000.parquet` (one part per [`PROFILE_CHUNK`] profiles),
/// - `{root}/events/event_date=YYYY-MM-DD/part-00000.parquet` (hive partitioning
///   by day; the `event_date` column is not stored in the file),
/// - `{root}/identifiers/part-00000.parquet` (one part per chunk of people).
///
/// `progress` is called with `(done_units, total_units)` as work proceeds
/// (one unit per chunk of profiles and one per day of events).
///
/// Must run inside a Tokio runtime: the CPU-bound work runs on the blocking
/// thread pool (at most two days in flight).
pub async fn generate(
    store: Arc<dyn ObjectStore>,
    root: &Path,
    opts: &DemoOptions,
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<DemoSummary, DemoError> {
    let cfg = Arc::new(Config::new(opts)?);
    let n_chunks = cfg.profiles.div_ceil(PROFILE_CHUNK).max(1);
    let total = n_chunks + u64::from(opts.days);
    let mut done = 0;
    progress(done, total);

    let mut summary = DemoSummary::default();
    let mut states = Vec::with_capacity(usize::try_from(cfg.profiles).unwrap_or(0));
    let mut activity = Vec::with_capacity(states.capacity());
    let mut counters = [0u64; 4];
    for chunk in 0..n_chunks {
        let start = chunk * PROFILE_CHUNK;
        let end = (start + PROFILE_CHUNK).min(cfg.profiles);
        let c = Arc::clone(&cfg);
        let out = blocking(move || people_chunk(&c, chunk, start, end, counters)).await?;
        counters = out.counters;
        summary.profiles += end - start;
        summary.identifiers += out.identifier_rows;
        states.extend_from_slice(&out.states);
        activity.extend_from_slice(&out.activity);
        let part = format!("part-{chunk:05}.parquet");
        store
            .put(
                &root.clone().join("profiles").join(part.as_str()),
                PutPayload::from(out.profiles),
            )
            .await?;
        store
            .put(
                &root.clone().join("identifiers").join(part.as_str()),
                PutPayload::from(out.identifiers),
            )
            .await?;
        done += 1;
        progress(done, total);
    }

    let c = Arc::clone(&cfg);
    let ctx = Arc::new(blocking(move || Ok(EventCtx::new(c, states, &activity))).await?);
    let dates: Vec<NaiveDate> = (0..opts.days)
        .map(|d| cfg.end_date - Days::new(u64::from(opts.days - 1 - d)))
        .collect();
    let mut days = futures::stream::iter(dates)
        .map(|date| {
            let ctx = Arc::clone(&ctx);
            async move { (date, blocking(move || ctx.day_file(date)).await) }
        })
        .buffered(2);
    while let Some((date, result)) = days.next().await {
        let (bytes, rows) = result?;
        let dir = format!("event_date={}", date.format("%Y-%m-%d"));
        store
            .put(
                &root
                    .clone()
                    .join("events")
                    .join(dir.as_str())
                    .join("part-00000.parquet"),
                PutPayload::from(bytes),
            )
            .await?;
        summary.events += rows;
        summary.event_files += 1;
        done += 1;
        progress(done, total);
    }
    Ok(summary)
}

async fn blocking<T, F>(f: F) -> Result<T, DemoError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, DemoError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(DemoError::Task(e.to_string())),
    }
}

// ---------------------------------------------------------------------------
// Configuration, seeds and small numeric helpers
// ---------------------------------------------------------------------------

const STREAM_PEOPLE: u64 = 1;
const STREAM_DAY: u64 = 2;
const STREAM_KEYS: u64 = 3;

const DAY_US: u64 = 86_400_000_000;
const MINUTE_US: u64 = 60_000_000;
const SECOND_US: u64 = 1_000_000;
const NONE: u32 = u32::MAX;
const NO_CAT: u8 = u8::MAX;

/// splitmix64's finalizer: a bijection of u64 with good mixing.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn sub_seed(seed: u64, stream: u64, index: u64) -> u64 {
    mix64(mix64(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_add(index))
}

fn stream_rng(seed: u64, stream: u64, index: u64) -> StdRng {
    StdRng::seed_from_u64(sub_seed(seed, stream, index))
}

/// An affine permutation of `0..m` (a bijection when gcd(a, m) = 1).
#[derive(Debug, Clone, Copy)]
struct Perm {
    a: u64,
    b: u64,
    m: u64,
}

impl Perm {
    fn new(a: u64, key: u64, m: u64) -> Self {
        Self { a, b: key % m, m }
    }

    fn apply(&self, i: u64) -> u64 {
        ((u128::from(i) * u128::from(self.a) + u128::from(self.b)) % u128::from(self.m)) as u64
    }
}

fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

fn epoch_days(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - 719_163
}

fn unit(rng: &mut StdRng) -> f64 {
    rng.random::<f64>()
}

/// Standard normal deviate (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - unit(rng);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}

/// Number of failures before the first success, success probability `p`.
fn geometric(rng: &mut StdRng, p: f64) -> u64 {
    let u = 1.0 - unit(rng);
    let g = (u.ln() / (1.0 - p).ln()).floor();
    if g.is_finite() && g >= 0.0 {
        g as u64
    } else {
        u64::MAX / 4
    }
}

fn poisson(rng: &mut StdRng, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        0
    } else if lambda < 30.0 {
        let limit = (-lambda).exp();
        let mut k = 0;
        let mut p = unit(rng);
        while p > limit {
            k += 1;
            p *= unit(rng);
        }
        k
    } else {
        (lambda + lambda.sqrt() * normal(rng)).round().max(0.0) as u64
    }
}

fn weighted(rng: &mut StdRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = unit(rng) * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

fn weighted_by<T>(rng: &mut StdRng, items: &[T], weight: impl Fn(&T) -> f64) -> usize {
    let total: f64 = items.iter().map(&weight).sum();
    let mut x = unit(rng) * total;
    for (i, item) in items.iter().enumerate() {
        let w = weight(item);
        if x < w {
            return i;
        }
        x -= w;
    }
    items.len() - 1
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn prob_u16(p: f64) -> u16 {
    (p.clamp(0.0, 1.0) * 65535.0).round() as u16
}

/// Writes `n` zero-padded into the whole of `out` (ASCII digits).
fn write_digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn ascii(buf: &[u8]) -> &str {
    std::str::from_utf8(buf).expect("generated identifiers are ASCII")
}

/// Everything derived from the options that the generation tasks share.
#[derive(Debug, Clone)]
struct Config {
    seed: u64,
    profiles: u64,
    /// Anonymous devices (visitors never identified).
    anon_pool: u64,
    end_date: NaiveDate,
    end_day: i32,
    device_key: u64,
    email_perm: Perm,
    phone_perm: Perm,
    customer_perm: Perm,
    customer_width: usize,
    record_width: usize,
    event_order: EventOrder,
    event_row_group_rows: usize,
}

impl Config {
    fn new(opts: &DemoOptions) -> Result<Self, DemoError> {
        if opts.profiles > MAX_PROFILES {
            return Err(DemoError::InvalidOptions(format!(
                "at most {MAX_PROFILES} profiles are supported, got {}",
                opts.profiles
            )));
        }
        if opts.days > 36_500 {
            return Err(DemoError::InvalidOptions(format!(
                "at most 36500 days are supported, got {}",
                opts.days
            )));
        }
        if opts.event_row_group_rows == 0 {
            return Err(DemoError::InvalidOptions(
                "event_row_group_rows must be at least 1".into(),
            ));
        }
        if opts.end_date.year() < 1900 || opts.end_date.year() > 9000 {
            return Err(DemoError::InvalidOptions(format!(
                "end_date {} is out of range",
                opts.end_date
            )));
        }
        let profiles = opts.profiles;
        let extras = profiles / 10;
        let persons = profiles + extras;
        let key = |i| sub_seed(opts.seed, STREAM_KEYS, i);
        let customer_width = digits(persons).max(7);
        Ok(Self {
            seed: opts.seed,
            profiles,
            anon_pool: (profiles / 2).max(16),
            end_date: opts.end_date,
            end_day: epoch_days(opts.end_date),
            device_key: key(4),
            // Prime multipliers: coprime with any modulus used here.
            email_perm: Perm::new(2_654_435_761, key(1), (2 * persons).max(1000)),
            phone_perm: Perm::new(2_246_822_519, key(2), 100_000_000),
            customer_perm: Perm::new(3_266_489_917, key(3), 10u64.pow(customer_width as u32)),
            customer_width,
            record_width: digits(2 * persons).max(6),
            event_order: opts.event_order,
            event_row_group_rows: opts.event_row_group_rows,
        })
    }

    /// A UUID-like device id; unique per `device` index (the low 64 bits are
    /// a bijection of the index).
    fn device_id(&self, device: u32, out: &mut [u8; 36]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let lo = mix64(self.device_key.wrapping_add(u64::from(device)));
        let hi = mix64(lo ^ 0x5bd1_e995_5bd1_e995);
        let mut nibbles = [0u8; 32];
        for (i, n) in nibbles.iter_mut().enumerate() {
            let word = if i < 16 { hi } else { lo };
            *n = ((word >> (4 * (15 - (i % 16)))) & 0xf) as u8;
        }
        nibbles[12] = 4; // "version 4"
        let mut j = 0;
        for (i, b) in out.iter_mut().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                *b = b'-';
            } else {
                *b = HEX[usize::from(nibbles[j])];
                j += 1;
            }
        }
    }
}

fn profile_id(idx: u32, out: &mut [u8; 10]) {
    out[0] = b'p';
    write_digits(&mut out[1..], u64::from(idx) + 1);
}

// ---------------------------------------------------------------------------
// Reference data
// ---------------------------------------------------------------------------

struct CountryData {
    code: &'static str,
    weight: f64,
    calling_code: &'static str,
    /// National trunk prefix ("0") or "" when the national form has none.
    trunk: &'static str,
    /// Groups of digits of the national form (trunk + NSN).
    national_groups: &'static [usize],
    /// Groups of digits of the NSN in the international form.
    intl_groups: &'static [usize],
    /// Share of messy phone values written in national form.
    national_share: f64,
    cities: &'static [(&'static str, f64)],
    female: &'static [&'static str],
    male: &'static [&'static str],
    last: &'static [&'static str],
    domains: &'static [(&'static str, f64)],
}

const COUNTRIES: [CountryData; 7] = [
    CountryData {
        code: "FR",
        weight: 70.0,
        calling_code: "33",
        trunk: "0",
        national_groups: &[2, 2, 2, 2, 2],
        intl_groups: &[1, 2, 2, 2, 2],
        national_share: 0.6,
        cities: &[
            ("Paris", 22.0),
            ("Marseille", 8.0),
            ("Lyon", 8.0),
            ("Toulouse", 6.0),
            ("Nice", 5.0),
            ("Nantes", 5.0),
            ("Bordeaux", 5.0),
            ("Lille", 5.0),
            ("Montpellier", 4.0),
            ("Strasbourg", 4.0),
            ("Rennes", 4.0),
            ("Grenoble", 3.0),
            ("Reims", 2.0),
            ("Le Havre", 2.0),
            ("Saint-Étienne", 2.0),
            ("Toulon", 2.0),
            ("Dijon", 2.0),
            ("Angers", 2.0),
            ("Nîmes", 2.0),
            ("Clermont-Ferrand", 2.0),
            ("Tours", 2.0),
            ("Orléans", 2.0),
            ("Rouen", 2.0),
            ("Limoges", 1.0),
            ("Metz", 1.0),
            ("Perpignan", 1.0),
            ("Besançon", 1.0),
            ("Caen", 1.0),
            ("Nancy", 1.0),
            ("Brest", 1.0),
            ("Annecy", 1.0),
        ],
        female: &[
            "Marie",
            "Camille",
            "Léa",
            "Manon",
            "Chloé",
            "Emma",
            "Inès",
            "Sarah",
            "Julie",
            "Laura",
            "Claire",
            "Sophie",
            "Nathalie",
            "Isabelle",
            "Céline",
            "Aurélie",
            "Émilie",
            "Charlotte",
            "Lucie",
            "Anne",
            "Hélène",
            "Élodie",
            "Pauline",
            "Mathilde",
            "Juliette",
            "Louise",
            "Alice",
            "Jade",
            "Clara",
            "Océane",
            "Valérie",
            "Sandrine",
            "Christine",
            "Catherine",
            "Monique",
            "Françoise",
        ],
        male: &[
            "Jean",
            "Pierre",
            "Nicolas",
            "Thomas",
            "Julien",
            "Alexandre",
            "Maxime",
            "Lucas",
            "Hugo",
            "Louis",
            "Antoine",
            "Mathieu",
            "Sébastien",
            "Guillaume",
            "François",
            "Olivier",
            "Laurent",
            "David",
            "Philippe",
            "Michel",
            "Christophe",
            "Romain",
            "Kevin",
            "Théo",
            "Nathan",
            "Léo",
            "Gabriel",
            "Arthur",
            "Paul",
            "Benoît",
            "Éric",
            "Stéphane",
            "Frédéric",
            "Vincent",
            "Jérôme",
        ],
        last: &[
            "Martin",
            "Bernard",
            "Dubois",
            "Thomas",
            "Robert",
            "Richard",
            "Petit",
            "Durand",
            "Leroy",
            "Moreau",
            "Simon",
            "Laurent",
            "Lefebvre",
            "Michel",
            "Garcia",
            "David",
            "Bertrand",
            "Roux",
            "Vincent",
            "Fournier",
            "Morel",
            "Girard",
            "André",
            "Lefèvre",
            "Mercier",
            "Dupont",
            "Lambert",
            "Bonnet",
            "François",
            "Martinez",
            "Legrand",
            "Garnier",
            "Faure",
            "Rousseau",
            "Blanc",
            "Guérin",
            "Muller",
            "Henry",
            "Roussel",
            "Nicolas",
            "Perrin",
            "Morin",
            "Mathieu",
            "Clément",
            "Gauthier",
            "Dumont",
            "Lopez",
            "Fontaine",
            "Chevalier",
            "Robin",
        ],
        domains: &[
            ("gmail.com", 34.0),
            ("hotmail.fr", 12.0),
            ("orange.fr", 12.0),
            ("free.fr", 8.0),
            ("yahoo.fr", 7.0),
            ("outlook.fr", 6.0),
            ("sfr.fr", 5.0),
            ("laposte.net", 5.0),
            ("wanadoo.fr", 4.0),
            ("icloud.com", 4.0),
            ("hotmail.com", 3.0),
        ],
    },
    CountryData {
        code: "DE",
        weight: 7.0,
        calling_code: "49",
        trunk: "0",
        national_groups: &[4, 8],
        intl_groups: &[3, 8],
        national_share: 0.2,
        cities: &[
            ("Berlin", 30.0),
            ("Hamburg", 15.0),
            ("München", 14.0),
            ("Köln", 10.0),
            ("Frankfurt am Main", 8.0),
            ("Stuttgart", 6.0),
            ("Düsseldorf", 6.0),
            ("Leipzig", 5.0),
            ("Dortmund", 5.0),
            ("Bremen", 4.0),
        ],
        female: &[
            "Anna",
            "Laura",
            "Julia",
            "Lena",
            "Sarah",
            "Lisa",
            "Katharina",
            "Sophie",
            "Hannah",
            "Lea",
            "Sabine",
            "Petra",
            "Claudia",
            "Monika",
        ],
        male: &[
            "Lukas",
            "Leon",
            "Jonas",
            "Felix",
            "Maximilian",
            "Paul",
            "Thomas",
            "Michael",
            "Andreas",
            "Stefan",
            "Tobias",
            "Florian",
            "Jürgen",
            "Klaus",
        ],
        last: &[
            "Müller",
            "Schmidt",
            "Schneider",
            "Fischer",
            "Weber",
            "Meyer",
            "Wagner",
            "Becker",
            "Schulz",
            "Hoffmann",
            "Schäfer",
            "Koch",
            "Bauer",
            "Richter",
            "Klein",
            "Wolf",
        ],
        domains: &[
            ("gmail.com", 30.0),
            ("web.de", 20.0),
            ("gmx.de", 20.0),
            ("t-online.de", 12.0),
            ("outlook.de", 8.0),
            ("yahoo.de", 5.0),
            ("icloud.com", 5.0),
        ],
    },
    CountryData {
        code: "ES",
        weight: 6.0,
        calling_code: "34",
        trunk: "",
        national_groups: &[3, 2, 2, 2],
        intl_groups: &[3, 2, 2, 2],
        national_share: 0.2,
        cities: &[
            ("Madrid", 30.0),
            ("Barcelona", 25.0),
            ("Valencia", 10.0),
            ("Sevilla", 9.0),
            ("Málaga", 7.0),
            ("Zaragoza", 6.0),
            ("Bilbao", 6.0),
            ("Alicante", 4.0),
            ("Palma", 3.0),
        ],
        female: &[
            "María", "Lucía", "Carmen", "Laura", "Ana", "Paula", "Marta", "Sara", "Elena",
            "Cristina", "Isabel", "Sofía",
        ],
        male: &[
            "Antonio",
            "José",
            "Manuel",
            "Francisco",
            "David",
            "Javier",
            "Daniel",
            "Carlos",
            "Alejandro",
            "Pablo",
            "Sergio",
            "Jorge",
        ],
        last: &[
            "García",
            "Fernández",
            "González",
            "Rodríguez",
            "López",
            "Martínez",
            "Sánchez",
            "Pérez",
            "Gómez",
            "Martín",
            "Jiménez",
            "Ruiz",
            "Hernández",
            "Díaz",
        ],
        domains: &[
            ("gmail.com", 45.0),
            ("hotmail.es", 20.0),
            ("yahoo.es", 10.0),
            ("outlook.es", 10.0),
            ("icloud.com", 10.0),
            ("telefonica.net", 5.0),
        ],
    },
    CountryData {
        code: "IT",
        weight: 6.0,
        calling_code: "39",
        trunk: "",
        national_groups: &[3, 3, 4],
        intl_groups: &[3, 3, 4],
        national_share: 0.2,
        cities: &[
            ("Roma", 25.0),
            ("Milano", 25.0),
            ("Napoli", 12.0),
            ("Torino", 10.0),
            ("Bologna", 7.0),
            ("Firenze", 7.0),
            ("Palermo", 6.0),
            ("Genova", 5.0),
            ("Venezia", 3.0),
        ],
        female: &[
            "Giulia",
            "Francesca",
            "Chiara",
            "Sara",
            "Martina",
            "Valentina",
            "Alessia",
            "Elena",
            "Federica",
            "Silvia",
            "Paola",
            "Anna",
        ],
        male: &[
            "Marco",
            "Alessandro",
            "Andrea",
            "Luca",
            "Giuseppe",
            "Francesco",
            "Matteo",
            "Lorenzo",
            "Davide",
            "Simone",
            "Giovanni",
            "Stefano",
        ],
        last: &[
            "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci",
            "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca",
        ],
        domains: &[
            ("gmail.com", 40.0),
            ("libero.it", 20.0),
            ("hotmail.it", 12.0),
            ("yahoo.it", 10.0),
            ("virgilio.it", 8.0),
            ("outlook.it", 5.0),
            ("icloud.com", 5.0),
        ],
    },
    CountryData {
        code: "GB",
        weight: 4.0,
        calling_code: "44",
        trunk: "0",
        national_groups: &[5, 6],
        intl_groups: &[4, 6],
        national_share: 0.3,
        cities: &[
            ("London", 40.0),
            ("Manchester", 10.0),
            ("Birmingham", 10.0),
            ("Leeds", 7.0),
            ("Glasgow", 7.0),
            ("Liverpool", 7.0),
            ("Bristol", 6.0),
            ("Edinburgh", 6.0),
            ("Sheffield", 4.0),
            ("Newcastle upon Tyne", 3.0),
        ],
        female: &[
            "Olivia",
            "Amelia",
            "Emily",
            "Sophie",
            "Jessica",
            "Charlotte",
            "Emma",
            "Hannah",
            "Lucy",
            "Sarah",
            "Rebecca",
            "Laura",
        ],
        male: &[
            "Oliver", "Jack", "Harry", "George", "James", "William", "Thomas", "Daniel", "Samuel",
            "Joshua", "David", "Matthew",
        ],
        last: &[
            "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
            "Johnson", "Roberts", "Walker", "Wright", "Robinson", "O'Brien",
        ],
        domains: &[
            ("gmail.com", 35.0),
            ("hotmail.co.uk", 15.0),
            ("outlook.com", 15.0),
            ("yahoo.co.uk", 10.0),
            ("btinternet.com", 10.0),
            ("icloud.com", 10.0),
            ("sky.com", 5.0),
        ],
    },
    CountryData {
        code: "US",
        weight: 3.0,
        calling_code: "1",
        trunk: "",
        national_groups: &[3, 3, 4],
        intl_groups: &[3, 3, 4],
        national_share: 0.3,
        cities: &[
            ("New York", 25.0),
            ("Los Angeles", 15.0),
            ("Chicago", 12.0),
            ("Houston", 8.0),
            ("Boston", 7.0),
            ("Phoenix", 6.0),
            ("Philadelphia", 6.0),
            ("Miami", 6.0),
            ("San Antonio", 5.0),
            ("San Diego", 5.0),
            ("Dallas", 5.0),
        ],
        female: &[
            "Emily",
            "Jessica",
            "Ashley",
            "Sarah",
            "Jennifer",
            "Olivia",
            "Emma",
            "Madison",
            "Elizabeth",
            "Megan",
            "Lauren",
            "Hannah",
        ],
        male: &[
            "Michael",
            "James",
            "John",
            "Robert",
            "David",
            "William",
            "Christopher",
            "Matthew",
            "Joshua",
            "Daniel",
            "Andrew",
            "Ryan",
        ],
        last: &[
            "Smith",
            "Johnson",
            "Williams",
            "Brown",
            "Jones",
            "Miller",
            "Davis",
            "Garcia",
            "Rodriguez",
            "Wilson",
            "Anderson",
            "Taylor",
            "Moore",
            "Jackson",
        ],
        domains: &[
            ("gmail.com", 45.0),
            ("yahoo.com", 15.0),
            ("icloud.com", 12.0),
            ("outlook.com", 10.0),
            ("hotmail.com", 10.0),
            ("aol.com", 8.0),
        ],
    },
    CountryData {
        code: "BE",
        weight: 4.0,
        calling_code: "32",
        trunk: "0",
        national_groups: &[4, 2, 2, 2],
        intl_groups: &[3, 2, 2, 2],
        national_share: 0.5,
        cities: &[
            ("Bruxelles", 30.0),
            ("Antwerpen", 15.0),
            ("Gent", 10.0),
            ("Liège", 10.0),
            ("Charleroi", 8.0),
            ("Brugge", 6.0),
            ("Namur", 6.0),
            ("Leuven", 5.0),
            ("Mons", 5.0),
        ],
        female: &[
            "Marie",
            "Emma",
            "Louise",
            "Olivia",
            "Elise",
            "Julie",
            "Laura",
            "Sarah",
            "Charlotte",
            "Lotte",
            "Nathalie",
            "Sophie",
        ],
        male: &[
            "Lucas", "Louis", "Noah", "Arthur", "Adam", "Thomas", "Maxime", "Nicolas", "Pieter",
            "Jan", "Wout", "Kevin",
        ],
        last: &[
            "Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens",
            "Wouters", "De Smet", "Dubois", "Lambert", "Dupont", "Martin",
        ],
        domains: &[
            ("gmail.com", 35.0),
            ("hotmail.com", 15.0),
            ("telenet.be", 15.0),
            ("skynet.be", 12.0),
            ("outlook.be", 10.0),
            ("icloud.com", 8.0),
            ("proximus.be", 5.0),
        ],
    },
];

const US_AREA_CODES: [&str; 10] = [
    "212", "310", "312", "713", "617", "602", "215", "305", "210", "214",
];

/// Shared landlines of shops, typed into many store records instead of the
/// customer's phone (an over-merge trap).
const SHOP_PHONES: [&str; 10] = [
    "01 42 60 34 12",
    "04 78 37 21 90",
    "04 91 54 33 10",
    "05 61 22 48 75",
    "03 20 55 71 40",
    "02 40 89 16 33",
    "05 56 44 10 27",
    "04 93 88 62 01",
    "03 88 32 49 50",
    "02 99 78 11 64",
];

/// Placeholder emails typed by shop staff (another over-merge trap).
const JUNK_EMAILS: [&str; 3] = ["noemail@noemail.com", "client@magasin.fr", "aucun@aucun.fr"];

const CATEGORY_CODES: [&str; 8] = ["ELE", "FAS", "HOM", "BEA", "SPO", "BOO", "TOY", "GRO"];
const CATEGORY_WEIGHTS: [f64; 8] = [12.0, 20.0, 14.0, 14.0, 10.0, 9.0, 8.0, 13.0];
/// Price range (euros) of each category's products.
const CATEGORY_PRICES: [(f64, f64); 8] = [
    (15.0, 1200.0),
    (8.0, 250.0),
    (5.0, 600.0),
    (4.0, 120.0),
    (8.0, 400.0),
    (4.0, 45.0),
    (6.0, 150.0),
    (1.5, 40.0),
];
const PRODUCTS_PER_CATEGORY: u16 = 2000;

/// Deterministic price (cents) of a product: log-uniform in the category's
/// range, with retail endings (.99, .90, .50, .00).
fn product_price_cents(cat: u8, product: u16) -> u32 {
    let h = mix64((u64::from(cat) << 32) | u64::from(product) | 0x7072_6963_0000_0000);
    let u = (h >> 11) as f64 / (1u64 << 53) as f64;
    let (lo, hi) = CATEGORY_PRICES[usize::from(cat)];
    let euros = (lo * (hi / lo).powf(u)).floor() as u32;
    let cents = match h & 0xf {
        0..=7 => 99,
        8..=10 => 90,
        11 | 12 => 50,
        _ => 0,
    };
    (euros * 100 + cents).max(99)
}

// Event types (indexes into EVENT_TYPES).
const PAGE_VIEW: u8 = 0;
const PRODUCT_VIEW: u8 = 1;
const ADD_TO_CART: u8 = 2;
const PURCHASE: u8 = 3;
const EMAIL_SENT: u8 = 4;
const EMAIL_OPEN: u8 = 5;
const EMAIL_CLICK: u8 = 6;
const SMS_SENT: u8 = 7;
const SMS_CLICK: u8 = 8;
const PUSH_SENT: u8 = 9;
const PUSH_OPEN: u8 = 10;
const AD_IMPRESSION: u8 = 11;
const AD_CLICK: u8 = 12;
const STORE_VISIT: u8 = 13;

// Channels (indexes into CHANNELS).
const WEB: u8 = 0;
const APP: u8 = 1;
const EMAIL: u8 = 2;
const SMS: u8 = 3;
const PUSH: u8 = 4;
const ADS: u8 = 5;
const STORE: u8 = 6;

/// The source system of each channel (`events.source`).
const SOURCE_OF_CHANNEL: [&str; 7] = ["web", "app", "crm", "crm", "crm", "ads", "store"];

// ---------------------------------------------------------------------------
// People: profiles and identifiers
// ---------------------------------------------------------------------------

// Profile flags.
const CONSENT_EMAIL: u8 = 1;
const CONSENT_SMS: u8 = 2;
const CONSENT_PUSH: u8 = 4;
const CONSENT_ADS: u8 = 8;
const HAS_WEB: u8 = 16;
const HAS_APP: u8 = 32;
const STORE_SHOPPER: u8 = 64;

/// The compact per-profile state kept for the event generation.
#[derive(Debug, Clone, Copy)]
struct ProfileState {
    signup_day: i32,
    flags: u8,
    fav_cat: u8,
    /// Cumulative thresholds (out of 65535) of the session kinds web | app | store | ads.
    mix: [u16; 3],
    /// Engagement probabilities (out of 65535).
    email_open: u16,
    email_click: u16,
    sms_click: u16,
    push_open: u16,
    ad_click: u16,
    /// Purchase propensity, in thousandths (1000 = average).
    propensity: u16,
}

impl ProfileState {
    fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionKind {
    Web,
    App,
    Store,
    Ads,
}

impl ProfileState {
    fn session_kind(&self, r: u16) -> SessionKind {
        if r < self.mix[0] {
            SessionKind::Web
        } else if r < self.mix[1] {
            SessionKind::App
        } else if r < self.mix[2] {
            SessionKind::Store
        } else {
            SessionKind::Ads
        }
    }
}

struct Email {
    local: String,
    domain: &'static str,
}

impl Email {
    fn write_clean(&self, out: &mut String) {
        out.push_str(&self.local);
        out.push('@');
        out.push_str(self.domain);
    }

    fn clean(&self) -> String {
        let mut s = String::with_capacity(self.local.len() + 1 + self.domain.len());
        self.write_clean(&mut s);
        s
    }
}

struct Phone {
    country: usize,
    /// National significant number (digits after the calling code).
    nsn: String,
}

impl Phone {
    fn write_e164(&self, out: &mut String) {
        out.push('+');
        out.push_str(COUNTRIES[self.country].calling_code);
        out.push_str(&self.nsn);
    }

    fn e164(&self) -> String {
        let mut s = String::with_capacity(16);
        self.write_e164(&mut s);
        s
    }
}

struct Person {
    country: usize,
    gender: Option<&'static str>,
    first: &'static str,
    email: Option<Email>,
    phone: Option<Phone>,
    customer_id: Option<String>,
}

/// Lower-case ASCII form of a name for email addresses ("Hélène" -> "helene",
/// "O'Brien" -> "obrien").
fn fold_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for ch in name.chars() {
        let c = match ch {
            'à' | 'á' | 'â' | 'ä' | 'ã' | 'å' | 'À' | 'Á' | 'Â' | 'Ä' => 'a',
            'ç' | 'Ç' => 'c',
            'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'Î' | 'Ï' => 'i',
            'ñ' | 'Ñ' => 'n',
            'ò' | 'ó' | 'ô' | 'ö' | 'õ' | 'Ô' | 'Ö' => 'o',
            'ù' | 'ú' | 'û' | 'ü' | 'Ü' => 'u',
            'ß' => {
                out.push_str("ss");
                continue;
            }
            c if c.is_ascii_alphanumeric() => c.to_ascii_lowercase(),
            _ => continue,
        };
        out.push(c);
    }
    out
}

/// Appends `digits` cut in groups of the given sizes (the last group takes
/// the rest), separated by `sep`.
fn write_grouped(out: &mut String, digits: &str, groups: &[usize], sep: char) {
    let mut rest = digits;
    for (i, g) in groups.iter().enumerate() {
        if rest.is_empty() {
            break;
        }
        let take = if i + 1 == groups.len() {
            rest.len()
        } else {
            (*g).min(rest.len())
        };
        if i > 0 {
            out.push(sep);
        }
        out.push_str(&rest[..take]);
        rest = &rest[take..];
    }
}

/// Appends a phone number as people type it: national or international, with
/// spaces, dots or dashes.
fn messy_phone(rng: &mut StdRng, phone: &Phone, national_share: f64, out: &mut String) {
    let c = &COUNTRIES[phone.country];
    if unit(rng) < national_share {
        let mut buf = [0u8; 20];
        let n = c.trunk.len() + phone.nsn.len();
        buf[..c.trunk.len()].copy_from_slice(c.trunk.as_bytes());
        buf[c.trunk.len()..n].copy_from_slice(phone.nsn.as_bytes());
        let national = ascii(&buf[..n]);
        if c.code == "US" && rng.random_bool(0.4) {
            out.push('(');
            out.push_str(&national[..3]);
            out.push_str(") ");
            out.push_str(&national[3..6]);
            out.push('-');
            out.push_str(&national[6..]);
            return;
        }
        match rng.random_range(0..10) {
            0..=3 => write_grouped(out, national, c.national_groups, ' '),
            4 | 5 => out.push_str(national),
            6 | 7 => write_grouped(out, national, c.national_groups, '.'),
            _ => write_grouped(out, national, c.national_groups, '-'),
        }
    } else {
        match rng.random_range(0..20) {
            0..=7 => phone.write_e164(out),
            8..=14 => {
                out.push('+');
                out.push_str(c.calling_code);
                out.push(' ');
                write_grouped(out, &phone.nsn, c.intl_groups, ' ');
            }
            15..=17 => {
                out.push_str("00");
                out.push_str(c.calling_code);
                out.push_str(&phone.nsn);
            }
            _ if !c.trunk.is_empty() => {
                out.push('+');
                out.push_str(c.calling_code);
                out.push_str(" (");
                out.push_str(c.trunk);
                out.push(')');
                write_grouped(out, &phone.nsn, c.intl_groups, ' ');
            }
            _ => {
                out.push('+');
                out.push_str(c.calling_code);
                out.push('-');
                write_grouped(out, &phone.nsn, c.intl_groups, '-');
            }
        }
    }
}

/// Upper-cases the first letter of `out[start..end]` and every letter after
/// '.', '_' or '-' (ASCII only).
fn title_case(out: &mut String, start: usize, end: usize) {
    let mut up = true;
    for i in start..end {
        let b = out.as_bytes()[i];
        if up {
            out[i..=i].make_ascii_uppercase();
        }
        up = matches!(b, b'.' | b'_' | b'-');
    }
}

/// Appends an email address as people type it: case, surrounding spaces and
/// (for Gmail, where dots do not matter) dots added or removed.
fn messy_email(rng: &mut StdRng, email: &Email, out: &mut String) {
    let dots = email.domain == "gmail.com" && rng.random_bool(0.35);
    let case = rng.random_range(0..20);
    let spaces = rng.random_range(0..100);
    if matches!(spaces, 12..=18) {
        out.push(' ');
    }
    let start = out.len();
    let local = email.local.as_str();
    if dots && local.contains('.') {
        out.extend(local.chars().filter(|c| *c != '.'));
    } else if dots && local.len() > 2 {
        let at = rng.random_range(1..local.len() - 1);
        out.push_str(&local[..at]);
        out.push('.');
        out.push_str(&local[at..]);
    } else {
        out.push_str(local);
    }
    let at_sign = out.len();
    out.push('@');
    out.push_str(email.domain);
    match case {
        0..=10 => {}
        11..=15 => {
            // "Jean.Dupont@Gmail.com"
            title_case(out, start, at_sign);
            out[at_sign + 1..at_sign + 2].make_ascii_uppercase();
        }
        16 | 17 => out[start..].make_ascii_uppercase(),
        _ => title_case(out, start, at_sign),
    }
    if matches!(spaces, 0..=11 | 17 | 18) {
        out.push(' ');
    }
}

fn push_device(cfg: &Config, device: u32, out: &mut String) {
    let mut buf = [0u8; 36];
    cfg.device_id(device, &mut buf);
    out.push_str(ascii(&buf));
}

/// The identifier records of a chunk, stored flat (the values in one arena)
/// so that millions of records cost no per-value allocation.
#[derive(Default)]
struct Records {
    arena: String,
    ids: Vec<IdRow>,
    records: Vec<RecordRef>,
}

#[derive(Debug, Clone, Copy)]
struct IdRow {
    kind: u8,
    valid: bool,
    start: usize,
    end: usize,
}

#[derive(Debug, Clone, Copy)]
struct RecordRef {
    source: u8,
    first: usize,
    len: usize,
}

impl Records {
    fn begin(&mut self, source: u8) {
        self.records.push(RecordRef {
            source,
            first: self.ids.len(),
            len: 0,
        });
    }

    fn push_row(&mut self, row: IdRow) {
        self.ids.push(row);
        if let Some(r) = self.records.last_mut() {
            r.len += 1;
        }
    }

    /// Adds an identifier whose value `write` appends to the given string.
    fn with(&mut self, kind: u8, write: impl FnOnce(&mut String)) {
        let start = self.arena.len();
        write(&mut self.arena);
        let end = self.arena.len();
        self.push_row(IdRow {
            kind,
            valid: true,
            start,
            end,
        });
    }

    fn value(&mut self, kind: u8, value: &str) {
        self.with(kind, |s| s.push_str(value));
    }

    fn null(&mut self, kind: u8) {
        self.push_row(IdRow {
            kind,
            valid: false,
            start: 0,
            end: 0,
        });
    }

    /// Closes the current record; records without identifier are dropped.
    fn end(&mut self) {
        if self.records.last().is_some_and(|r| r.len == 0) {
            self.records.pop();
        }
    }
}

// Identifier sources (indexes into IDENTIFIER_SOURCES) and id types (ID_TYPES).
const SRC_WEB: u8 = 0;
const SRC_APP: u8 = 1;
const SRC_STORE: u8 = 2;
const SRC_CRM: u8 = 3;
const ID_EMAIL: u8 = 0;
const ID_PHONE: u8 = 1;
const ID_CUSTOMER: u8 = 2;
const ID_DEVICE: u8 = 3;

struct PeopleChunk {
    profiles: Vec<u8>,
    identifiers: Vec<u8>,
    identifier_rows: u64,
    states: Vec<ProfileState>,
    activity: Vec<f32>,
    counters: [u64; 4],
}

struct ProfileBuilders {
    profile_id: StringBuilder,
    email: StringBuilder,
    phone: StringBuilder,
    customer_id: StringBuilder,
    first_name: StringBuilder,
    city: StringBuilder,
    country: StringBuilder,
    birth_year: Int32Builder,
    gender: StringBuilder,
    signup_date: Date32Builder,
    consent: [BooleanBuilder; 4],
}

impl ProfileBuilders {
    fn new(n: usize) -> Self {
        Self {
            profile_id: StringBuilder::with_capacity(n, n * 10),
            email: StringBuilder::with_capacity(n, n * 26),
            phone: StringBuilder::with_capacity(n, n * 13),
            customer_id: StringBuilder::with_capacity(n, n * 8),
            first_name: StringBuilder::with_capacity(n, n * 7),
            city: StringBuilder::with_capacity(n, n * 8),
            country: StringBuilder::with_capacity(n, n * 2),
            birth_year: Int32Builder::with_capacity(n),
            gender: StringBuilder::with_capacity(n, n),
            signup_date: Date32Builder::with_capacity(n),
            consent: std::array::from_fn(|_| BooleanBuilder::with_capacity(n)),
        }
    }

    fn finish(mut self) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.profile_id.finish()),
            Arc::new(self.email.finish()),
            Arc::new(self.phone.finish()),
            Arc::new(self.customer_id.finish()),
            Arc::new(self.first_name.finish()),
            Arc::new(self.city.finish()),
            Arc::new(self.country.finish()),
            Arc::new(self.birth_year.finish()),
            Arc::new(self.gender.finish()),
            Arc::new(self.signup_date.finish()),
        ];
        for b in &mut self.consent {
            columns.push(Arc::new(b.finish()));
        }
        RecordBatch::try_new(profiles_schema(), columns)
    }
}

/// Generates profiles `start..end` (plus the people without profile that go
/// with them), their identifier records and their event-generation state.
fn people_chunk(
    cfg: &Config,
    chunk: u64,
    start: u64,
    end: u64,
    mut counters: [u64; 4],
) -> Result<PeopleChunk, DemoError> {
    let mut rng = stream_rng(cfg.seed, STREAM_PEOPLE, chunk);
    let n = usize::try_from(end - start).unwrap_or(0);
    let mut builders = ProfileBuilders::new(n);
    let mut states = Vec::with_capacity(n);
    let mut activity = Vec::with_capacity(n);
    let mut recs = Records {
        arena: String::with_capacity(n * 100),
        ids: Vec::with_capacity(n * 4),
        records: Vec::with_capacity(n * 3),
    };
    let mut id_buf = [0u8; 10];

    for idx in start..end {
        let person = make_person(&mut rng, cfg, idx, true);
        let state = profile_row(&mut rng, cfg, &person, &mut builders, &mut activity);
        profile_id(idx as u32, &mut id_buf);
        builders.profile_id.append_value(ascii(&id_buf));
        profile_records(&mut rng, cfg, &person, &state, idx as u32, &mut recs);
        states.push(state);
    }
    // People without a profile: customers only known in store, web visitors
    // who left an email, CRM prospects.
    for extra in start / 10..end / 10 {
        let person = make_person(&mut rng, cfg, cfg.profiles + extra, false);
        let device = (cfg.profiles + extra) as u32;
        extra_records(&mut rng, cfg, &person, device, &mut recs);
    }

    let profiles = encode(
        &builders.finish()?,
        profiles_props(&["profile_id", "email", "phone", "customer_id"])?,
    )?;

    let Records {
        arena,
        ids,
        mut records,
    } = recs;
    records.shuffle(&mut rng);
    let rows = ids.len();
    let mut record_id = StringBuilder::with_capacity(rows, rows * (cfg.record_width + 6));
    let mut source = StringBuilder::with_capacity(rows, rows * 4);
    let mut id_type = StringBuilder::with_capacity(rows, rows * 6);
    let mut id_value = StringBuilder::with_capacity(rows, arena.len());
    let mut rid = String::new();
    let mut num = vec![0u8; cfg.record_width];
    for rec in &records {
        let src = usize::from(rec.source);
        counters[src] += 1;
        rid.clear();
        rid.push_str(IDENTIFIER_SOURCES[src]);
        rid.push('-');
        write_digits(&mut num, counters[src]);
        rid.push_str(ascii(&num));
        for id in &ids[rec.first..rec.first + rec.len] {
            record_id.append_value(&rid);
            source.append_value(IDENTIFIER_SOURCES[src]);
            id_type.append_value(ID_TYPES[usize::from(id.kind)]);
            if id.valid {
                id_value.append_value(&arena[id.start..id.end]);
            } else {
                id_value.append_null();
            }
        }
    }
    let batch = RecordBatch::try_new(
        identifiers_schema(),
        vec![
            Arc::new(record_id.finish()),
            Arc::new(source.finish()),
            Arc::new(id_type.finish()),
            Arc::new(id_value.finish()),
        ],
    )?;
    let identifiers = encode(&batch, profiles_props(&["record_id"])?)?;
    Ok(PeopleChunk {
        profiles,
        identifiers,
        identifier_rows: rows as u64,
        states,
        activity,
        counters,
    })
}

fn make_person(rng: &mut StdRng, cfg: &Config, identity: u64, has_profile: bool) -> Person {
    let country = weighted_by(rng, &COUNTRIES, |c| c.weight);
    let c = &COUNTRIES[country];
    let g = unit(rng);
    let gender = if g < 0.51 {
        Some("F")
    } else if g < 0.97 {
        Some("M")
    } else {
        None
    };
    let female = match gender {
        Some(g) => g == "F",
        None => rng.random_bool(0.5),
    };
    let first = pick(rng, if female { c.female } else { c.male });
    let last = pick(rng, c.last);

    let email = rng
        .random_bool(if has_profile { 0.95 } else { 0.8 })
        .then(|| {
            let f = fold_name(first);
            let l = fold_name(last);
            let n = cfg.email_perm.apply(identity);
            let i = &f[..1];
            // The trailing number is unique per person, so addresses are unique.
            let local = match rng.random_range(0..10) {
                0..=2 => format!("{f}.{l}{n}"),
                3 => format!("{f}{l}{n}"),
                4 => format!("{i}{l}{n}"),
                5 => format!("{f}_{l}{n}"),
                6 => format!("{l}.{f}{n}"),
                7 => format!("{f}.{l}.{n}"),
                8 => format!("{f}-{l}{n}"),
                _ => format!("{i}.{l}{n}"),
            };
            Email {
                local,
                domain: c.domains[weighted_by(rng, c.domains, |d| d.1)].0,
            }
        });

    let phone = rng
        .random_bool(if has_profile { 0.8 } else { 0.6 })
        .then(|| {
            let sub = cfg.phone_perm.apply(identity);
            let s8 = format!("{sub:08}");
            let nsn = match c.code {
                "FR" => format!("{}{s8}", if rng.random_bool(0.85) { '6' } else { '7' }),
                "DE" => format!("15{}{s8}", pick(rng, &['1', '2', '7', '9'])),
                "ES" => format!("6{s8}"),
                "IT" => format!("3{}{s8}", rng.random_range(2..10)),
                "GB" => format!("7{}{s8}", rng.random_range(4..10)),
                "US" => format!("{}{}", US_AREA_CODES[(sub / 10_000_000) as usize], &s8[1..]),
                _ => format!("4{s8}"),
            };
            Phone { country, nsn }
        });

    let customer_id = rng
        .random_bool(if has_profile { 0.6 } else { 0.5 })
        .then(|| {
            let mut buf = vec![b'C'; cfg.customer_width + 1];
            write_digits(&mut buf[1..], cfg.customer_perm.apply(identity));
            ascii(&buf).to_owned()
        });

    Person {
        country,
        gender,
        first,
        email,
        phone,
        customer_id,
    }
}

/// Appends the profile's row (all columns but profile_id) and returns its state.
fn profile_row(
    rng: &mut StdRng,
    cfg: &Config,
    person: &Person,
    b: &mut ProfileBuilders,
    activity: &mut Vec<f32>,
) -> ProfileState {
    let c = &COUNTRIES[person.country];
    b.email
        .append_option(person.email.as_ref().map(Email::clean));
    b.phone
        .append_option(person.phone.as_ref().map(Phone::e164));
    b.customer_id.append_option(person.customer_id.as_deref());
    b.first_name.append_value(person.first);
    b.city
        .append_value(c.cities[weighted_by(rng, c.cities, |x| x.1)].0);
    b.country.append_value(c.code);
    let age = 18.0 + 62.0 * (unit(rng) + unit(rng)) / 2.0;
    let birth_year = cfg.end_date.year() - age as i32;
    b.birth_year
        .append_option(rng.random_bool(0.92).then_some(birth_year));
    b.gender.append_option(person.gender);

    // A quarter of the profiles signed up during the last year, the others
    // since 2015 (more recently more often).
    let origin = epoch_days(NaiveDate::from_ymd_opt(2015, 1, 1).expect("valid date"));
    let signup_day = if rng.random_bool(0.25) || cfg.end_day - 365 <= origin {
        cfg.end_day - rng.random_range(0..365)
    } else {
        let span = f64::from(cfg.end_day - 365 - origin);
        origin + (span * unit(rng).powf(0.7)) as i32
    };
    b.signup_date.append_value(signup_day);

    let has_web = rng.random_bool(0.9);
    let has_app = rng.random_bool(0.55);
    let store_shopper = rng.random_bool(0.4);
    let consent_email = person.email.is_some() && rng.random_bool(0.74);
    let consent_sms = person.phone.is_some() && rng.random_bool(0.5);
    let consent_push = has_app && rng.random_bool(0.9);
    let consent_ads = rng.random_bool(0.6);
    for (builder, v) in
        b.consent
            .iter_mut()
            .zip([consent_email, consent_sms, consent_push, consent_ads])
    {
        builder.append_value(v);
    }
    let mut flags = 0;
    for (on, flag) in [
        (consent_email, CONSENT_EMAIL),
        (consent_sms, CONSENT_SMS),
        (consent_push, CONSENT_PUSH),
        (consent_ads, CONSENT_ADS),
        (has_web, HAS_WEB),
        (has_app, HAS_APP),
        (store_shopper, STORE_SHOPPER),
    ] {
        if on {
            flags |= flag;
        }
    }

    // Heavy-tailed activity: many quiet profiles, a few very active ones.
    let level = if rng.random_bool(0.15) {
        0.04
    } else {
        (1.25 * normal(rng)).exp()
    };
    activity.push(level as f32);

    // Channel appetence: the mix of session kinds.
    let w_web = if has_web {
        0.25 + 0.75 * unit(rng)
    } else {
        0.0
    };
    let w_app = if has_app {
        0.25 + 0.75 * unit(rng)
    } else {
        0.0
    };
    let w_store = if store_shopper {
        0.1 + 0.4 * unit(rng)
    } else {
        0.02
    };
    let w_ads = if consent_ads {
        0.3 + 0.9 * unit(rng)
    } else {
        0.0
    };
    let total = w_web + w_app + w_store + w_ads;
    let mix = [
        prob_u16(w_web / total),
        prob_u16((w_web + w_app) / total),
        prob_u16((w_web + w_app + w_store) / total),
    ];

    ProfileState {
        signup_day,
        flags,
        fav_cat: weighted(rng, &CATEGORY_WEIGHTS) as u8,
        mix,
        email_open: prob_u16(0.02 + 0.55 * unit(rng).powf(1.5)),
        email_click: prob_u16(0.05 + 0.3 * unit(rng).powi(2)),
        sms_click: prob_u16(0.01 + 0.12 * unit(rng).powi(2)),
        push_open: prob_u16(0.02 + 0.2 * unit(rng).powi(2)),
        ad_click: prob_u16(0.005 + 0.06 * unit(rng).powi(2)),
        propensity: ((0.6 * normal(rng)).exp().min(6.0) * 1000.0) as u16,
    }
}

/// The phone of a store record: usually the customer's phone in national
/// form, sometimes the shop's own line or junk.
fn store_phone(rng: &mut StdRng, rec: &mut Records, phone: Option<&Phone>) {
    let r = unit(rng);
    if r < 0.05 {
        let shop = pick(rng, &SHOP_PHONES);
        rec.value(ID_PHONE, shop);
    } else if r < 0.065 {
        rec.value(ID_PHONE, "0000000000");
    } else if r < 0.08 {
        rec.value(ID_PHONE, "");
    } else if r < 0.09 {
        rec.null(ID_PHONE);
    } else if let Some(p) = phone {
        rec.with(ID_PHONE, |s| messy_phone(rng, p, 0.85, s));
    }
}

fn store_record(rng: &mut StdRng, rec: &mut Records, person: &Person, customer_share: f64) {
    rec.begin(SRC_STORE);
    if let Some(cid) = &person.customer_id
        && rng.random_bool(customer_share)
    {
        rec.value(ID_CUSTOMER, cid);
    }
    if rng.random_bool(0.75) {
        store_phone(rng, rec, person.phone.as_ref());
    }
    let r = unit(rng);
    if r < 0.03 {
        let junk = pick(rng, &JUNK_EMAILS);
        rec.value(ID_EMAIL, junk);
    } else if r < 0.23
        && let Some(e) = &person.email
    {
        rec.with(ID_EMAIL, |s| messy_email(rng, e, s));
    }
    rec.end();
}

fn profile_records(
    rng: &mut StdRng,
    cfg: &Config,
    person: &Person,
    state: &ProfileState,
    device: u32,
    rec: &mut Records,
) {
    let national = COUNTRIES[person.country].national_share;
    if rng.random_bool(0.85) {
        rec.begin(SRC_CRM);
        if let Some(e) = &person.email {
            if rng.random_bool(0.9) {
                rec.with(ID_EMAIL, |s| e.write_clean(s));
            } else {
                rec.with(ID_EMAIL, |s| messy_email(rng, e, s));
            }
        }
        if let Some(p) = &person.phone
            && rng.random_bool(0.7)
        {
            rec.with(ID_PHONE, |s| messy_phone(rng, p, national, s));
        }
        if let Some(cid) = &person.customer_id {
            rec.value(ID_CUSTOMER, cid);
        }
        rec.end();
    }
    if state.has(HAS_WEB) && rng.random_bool(0.8) {
        let accounts = if rng.random_bool(0.06) { 2 } else { 1 };
        for _ in 0..accounts {
            rec.begin(SRC_WEB);
            if let Some(e) = &person.email {
                rec.with(ID_EMAIL, |s| messy_email(rng, e, s));
            }
            if rng.random_bool(0.4) {
                rec.with(ID_DEVICE, |s| push_device(cfg, device, s));
            }
            rec.end();
        }
    }
    if state.has(HAS_APP) && rng.random_bool(0.9) {
        rec.begin(SRC_APP);
        rec.with(ID_DEVICE, |s| push_device(cfg, device, s));
        if let Some(e) = &person.email
            && rng.random_bool(0.65)
        {
            rec.with(ID_EMAIL, |s| messy_email(rng, e, s));
        }
        if let Some(p) = &person.phone
            && rng.random_bool(0.2)
        {
            rec.with(ID_PHONE, |s| messy_phone(rng, p, national, s));
        }
        rec.end();
    }
    if state.has(STORE_SHOPPER) && rng.random_bool(0.85) {
        store_record(rng, rec, person, 0.9);
    }
}

/// Records of a person without profile; `device` is one of the anonymous
/// devices, so some anonymous events can be tied to these records.
fn extra_records(rng: &mut StdRng, cfg: &Config, person: &Person, device: u32, rec: &mut Records) {
    let national = COUNTRIES[person.country].national_share;
    let r = unit(rng);
    if r < 0.45 {
        store_record(rng, rec, person, 0.95);
    } else if r < 0.75 {
        rec.begin(SRC_WEB);
        if let Some(e) = &person.email {
            rec.with(ID_EMAIL, |s| messy_email(rng, e, s));
        }
        if rng.random_bool(0.5) {
            rec.with(ID_DEVICE, |s| push_device(cfg, device, s));
        }
        rec.end();
        if rng.random_bool(0.3) {
            store_record(rng, rec, person, 0.9);
        }
    } else {
        rec.begin(SRC_CRM);
        if let Some(e) = &person.email {
            rec.with(ID_EMAIL, |s| e.write_clean(s));
        }
        if let Some(p) = &person.phone {
            rec.with(ID_PHONE, |s| messy_phone(rng, p, national, s));
        }
        rec.end();
    }
}

// ---------------------------------------------------------------------------
// Parquet
// ---------------------------------------------------------------------------

fn base_props() -> Result<parquet::file::properties::WriterPropertiesBuilder, ParquetError> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_statistics_enabled(EnabledStatistics::Page))
}

fn profiles_props(unique_columns: &[&str]) -> Result<WriterProperties, ParquetError> {
    let mut b = base_props()?;
    for c in unique_columns {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
    }
    Ok(b.build())
}

fn events_props(
    order: EventOrder,
    row_group_rows: usize,
) -> Result<WriterProperties, ParquetError> {
    let schema = events_schema();
    let column = |name: &str| SortingColumn {
        column_idx: schema.index_of(name).expect("an events column") as i32,
        descending: false,
        nulls_first: false,
    };
    let sorting = match order {
        EventOrder::Time => vec![column("event_time")],
        EventOrder::TypeThenTime => vec![column("event_type"), column("event_time")],
    };
    Ok(base_props()?
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_column_dictionary_enabled(ColumnPath::from("event_id"), false)
        .set_sorting_columns(Some(sorting))
        .build())
}

fn encode(batch: &RecordBatch, props: WriterProperties) -> Result<Vec<u8>, DemoError> {
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(buf)
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/// Interaction sessions (web, app, store, ads) per profile and year, before
/// the activity level (mean 1) and seasonality.
const SESSIONS_PER_PROFILE_YEAR: f64 = 9.5;
/// Sessions of never-identified visitors, per profile and year.
const ANON_SESSIONS_PER_PROFILE_YEAR: f64 = 0.6;
/// Share of the sessions of not-yet-signed-up profiles that happen
/// (anonymously, with the device only).
const PRESIGNUP_SESSIONS: f64 = 0.5;

/// Walker/Vose alias table to draw profiles proportionally to their activity.
struct Alias {
    prob: Vec<f32>,
    alias: Vec<u32>,
}

impl Alias {
    fn new(weights: &[f32]) -> Self {
        let n = weights.len();
        let total: f64 = weights.iter().map(|w| f64::from(*w)).sum();
        let mut scaled: Vec<f64> = weights
            .iter()
            .map(|w| f64::from(*w) * n as f64 / total)
            .collect();
        let mut prob = vec![1.0f32; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let mut small = Vec::new();
        let mut large = Vec::new();
        for (i, s) in scaled.iter().enumerate() {
            if *s < 1.0 {
                small.push(i as u32);
            } else {
                large.push(i as u32);
            }
        }
        while let (Some(&s), Some(&l)) = (small.last(), large.last()) {
            small.pop();
            prob[s as usize] = scaled[s as usize] as f32;
            alias[s as usize] = l;
            scaled[l as usize] += scaled[s as usize] - 1.0;
            if scaled[l as usize] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Self { prob, alias }
    }

    fn sample(&self, rng: &mut StdRng) -> u32 {
        let r: u64 = rng.random();
        let i = (((r >> 32) * self.prob.len() as u64) >> 32) as usize;
        let u = (r & 0xffff_ffff) as f32 / 4_294_967_296.0;
        if u < self.prob[i] {
            i as u32
        } else {
            self.alias[i]
        }
    }
}

/// Cumulative hour-of-day weights.
struct Hours([f64; 24]);

impl Hours {
    fn new(weights: [f64; 24]) -> Self {
        let mut cum = weights;
        for i in 1..24 {
            cum[i] += cum[i - 1];
        }
        Self(cum)
    }

    fn sample(&self, rng: &mut StdRng) -> u64 {
        let x = unit(rng) * self.0[23];
        let hour = self.0.iter().position(|c| x < *c).unwrap_or(23) as u64;
        hour * 3600 * SECOND_US + rng.random_range(0..3600 * SECOND_US)
    }
}

const WEB_HOURS: [f64; 24] = [
    0.7, 0.4, 0.25, 0.15, 0.15, 0.25, 0.6, 1.3, 2.2, 2.8, 3.1, 3.3, 3.6, 3.7, 3.4, 3.3, 3.4, 3.8,
    4.3, 4.9, 5.4, 5.3, 4.1, 2.0,
];
const APP_HOURS: [f64; 24] = [
    0.9, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 1.8, 2.3, 2.2, 2.3, 2.6, 3.2, 3.1, 2.6, 2.5, 2.7, 3.2, 3.9,
    4.8, 5.8, 6.2, 5.2, 2.6,
];
const STORE_HOURS: [f64; 24] = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.8, 1.8, 2.5, 2.6, 2.4, 2.5, 2.8, 3.2, 3.5, 3.4,
    2.2, 0.6, 0.0, 0.0, 0.0,
];

const MONTH_FACTOR: [f64; 12] = [
    1.05, 0.88, 0.93, 0.95, 0.97, 1.0, 0.97, 0.82, 0.95, 1.0, 1.3, 1.45,
];
const WEEKDAY_WEB: [f64; 7] = [1.04, 1.0, 1.0, 0.98, 0.92, 0.94, 1.12];
const WEEKDAY_STORE: [f64; 7] = [0.7, 0.9, 1.05, 0.95, 1.1, 1.9, 0.4];

fn black_friday(year: i32) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, 11, Weekday::Fri, 4).expect("valid date")
}

/// Seasonality of online activity and store traffic (not normalised).
fn raw_season(date: NaiveDate) -> (f64, f64) {
    let month = MONTH_FACTOR[date.month0() as usize];
    let wd = date.weekday().num_days_from_monday() as usize;
    let bf = black_friday(date.year());
    let since_bf = (date - bf).num_days();
    let (md, year) = ((date.month(), date.day()), date.year());
    let jan_sales =
        NaiveDate::from_weekday_of_month_opt(year, 1, Weekday::Wed, 2).expect("valid date");
    let summer_sales =
        NaiveDate::from_weekday_of_month_opt(year, 6, Weekday::Wed, 4).expect("valid date");
    let special = match since_bf {
        0 => 2.3,
        1 | 2 => 1.4,
        3 => 1.7,
        -4..=-1 => 1.2,
        _ => match md {
            (12, 24) => 0.75,
            (12, 25) => 0.5,
            (12, 31) => 0.7,
            (1, 1) => 0.55,
            (12, d) if d < 24 => 1.1,
            _ if (0..7).contains(&(date - jan_sales).num_days()) => 1.3,
            _ if (0..7).contains(&(date - summer_sales).num_days()) => 1.2,
            _ => 1.0,
        },
    };
    let store_special = match md {
        (12, 25) | (1, 1) | (5, 1) => 0.05,
        _ => special,
    };
    (
        month * WEEKDAY_WEB[wd] * special,
        month * WEEKDAY_STORE[wd] * store_special,
    )
}

#[derive(Debug, Clone, Copy)]
struct Season {
    web: f64,
    store: f64,
    /// max(web, store): sessions are drawn at this rate, then thinned per kind.
    envelope: f64,
}

/// A message campaign of the day.
struct Campaign {
    channel: u8,
    /// Share of the (consenting) profiles targeted.
    share: f64,
    start: u64,
}

fn campaigns(date: NaiveDate) -> Vec<Campaign> {
    let wd = date.weekday();
    let since_bf = (date - black_friday(date.year())).num_days();
    let bf_week = (-4..=3).contains(&since_bf);
    let december = date.month() == 12 && date.day() < 24;
    let h = |hour: u64, minute: u64| (hour * 60 + minute) * MINUTE_US;
    let mut out = Vec::new();
    if matches!(wd, Weekday::Tue | Weekday::Thu) || bf_week || (december && wd == Weekday::Sat) {
        let minute = u64::from(date.ordinal() % 4) * 30;
        out.push(Campaign {
            channel: EMAIL,
            share: 0.11,
            start: h(9, minute),
        });
    }
    if (wd == Weekday::Sat && date.iso_week().week().is_multiple_of(2))
        || since_bf == 0
        || (december && wd == Weekday::Wed)
    {
        out.push(Campaign {
            channel: SMS,
            share: 0.22,
            start: h(11, 30),
        });
    }
    if matches!(
        wd,
        Weekday::Mon | Weekday::Wed | Weekday::Fri | Weekday::Sun
    ) || bf_week
    {
        out.push(Campaign {
            channel: PUSH,
            share: 0.07,
            start: h(18, 15),
        });
    }
    out
}

/// One generated event (strings are produced when building the batch).
#[derive(Debug, Clone, Copy)]
struct Ev {
    /// Microseconds since midnight UTC.
    t: u64,
    /// Rank of the event in the day's time order (its `event_id`).
    seq: u32,
    profile: u32,
    device: u32,
    cents: u32,
    product: u16,
    kind: u8,
    channel: u8,
    cat: u8,
}

#[derive(Debug, Clone, Copy)]
struct Who {
    profile: u32,
    device: u32,
}

#[derive(Debug, Clone, Copy)]
struct Visitor {
    who: Who,
    fav_cat: u8,
    propensity: f64,
    can_buy: bool,
    has_app: bool,
}

impl Visitor {
    fn known(p: u32, st: &ProfileState) -> Self {
        Self {
            who: Who {
                profile: p,
                device: p,
            },
            fav_cat: st.fav_cat,
            propensity: f64::from(st.propensity) / 1000.0,
            can_buy: true,
            has_app: st.has(HAS_APP),
        }
    }

    fn anonymous(device: u32, fav_cat: u8) -> Self {
        Self {
            who: Who {
                profile: NONE,
                device,
            },
            fav_cat,
            propensity: 0.6,
            can_buy: false,
            has_app: false,
        }
    }
}

/// Shared, read-only state of the event generation.
struct EventCtx {
    cfg: Arc<Config>,
    states: Vec<ProfileState>,
    alias: Alias,
    season_norm: (f64, f64),
    web_hours: Hours,
    app_hours: Hours,
    store_hours: Hours,
}

impl EventCtx {
    fn new(cfg: Arc<Config>, states: Vec<ProfileState>, activity: &[f32]) -> Self {
        // Normalise seasonality over the year that ends at end_date, so that
        // the yearly volume does not depend on the calendar.
        let (mut web, mut store) = (0.0, 0.0);
        for d in 0..365 {
            let (w, s) = raw_season(cfg.end_date - Days::new(d));
            web += w;
            store += s;
        }
        Self {
            alias: Alias::new(activity),
            cfg,
            states,
            season_norm: (web / 365.0, store / 365.0),
            web_hours: Hours::new(WEB_HOURS),
            app_hours: Hours::new(APP_HOURS),
            store_hours: Hours::new(STORE_HOURS),
        }
    }

    fn season(&self, date: NaiveDate) -> Season {
        let (w, s) = raw_season(date);
        let web = w / self.season_norm.0;
        let store = s / self.season_norm.1;
        Season {
            web,
            store,
            envelope: web.max(store),
        }
    }

    fn day_file(&self, date: NaiveDate) -> Result<(Vec<u8>, u64), DemoError> {
        let events = self.day_events(date);
        let batch = self.events_batch(date, &events)?;
        let props = events_props(self.cfg.event_order, self.cfg.event_row_group_rows)?;
        Ok((encode(&batch, props)?, events.len() as u64))
    }

    fn day_events(&self, date: NaiveDate) -> Vec<Ev> {
        let day = epoch_days(date);
        let season = self.season(date);
        let expected = self.cfg.profiles as f64 * 60.0 / 365.0 * season.envelope;
        let mut day_gen = DayGen {
            ctx: self,
            rng: stream_rng(self.cfg.seed, STREAM_DAY, day as u64),
            day,
            evs: Vec::with_capacity(expected as usize + 16),
        };
        day_gen.sessions(season);
        day_gen.anonymous(season);
        for campaign in campaigns(date) {
            day_gen.campaign(&campaign);
        }
        let mut evs = day_gen.evs;
        evs.sort_by_key(|e| e.t); // stable: ties keep the generation order
        for (seq, e) in evs.iter_mut().enumerate() {
            e.seq = seq as u32;
        }
        if self.cfg.event_order == EventOrder::TypeThenTime {
            evs.sort_by_key(|e| EVENT_TYPES[usize::from(e.kind)]); // stable: by time within a type
        }
        evs
    }

    fn events_batch(&self, date: NaiveDate, evs: &[Ev]) -> Result<RecordBatch, ArrowError> {
        let n = evs.len();
        let day_start = i64::from(epoch_days(date)) * DAY_US as i64;
        let mut event_id = StringBuilder::with_capacity(n, n * 18);
        let mut profile = StringBuilder::with_capacity(n, n * 10);
        let mut device = StringBuilder::with_capacity(n, n * 36);
        let mut times = Vec::with_capacity(n);
        let mut event_type = StringBuilder::with_capacity(n, n * 12);
        let mut channel = StringBuilder::with_capacity(n, n * 5);
        let mut source = StringBuilder::with_capacity(n, n * 4);
        let mut category = StringBuilder::with_capacity(n, n * 4);
        let mut product = StringBuilder::with_capacity(n, n * 4);
        let mut amount = Float64Builder::with_capacity(n);

        // "e" + YYYYMMDD + 9-digit sequence number of the day.
        let mut id_buf = [0u8; 18];
        id_buf[0] = b'e';
        let ymd =
            date.year() as u64 * 10_000 + u64::from(date.month()) * 100 + u64::from(date.day());
        write_digits(&mut id_buf[1..9], ymd);
        let mut pid_buf = [0u8; 10];
        let mut dev_buf = [0u8; 36];
        let mut product_buf = *b"XXX-00000";

        for e in evs {
            write_digits(&mut id_buf[9..], u64::from(e.seq));
            event_id.append_value(ascii(&id_buf));
            if e.profile == NONE {
                profile.append_null();
            } else {
                profile_id(e.profile, &mut pid_buf);
                profile.append_value(ascii(&pid_buf));
            }
            if e.device == NONE {
                device.append_null();
            } else {
                self.cfg.device_id(e.device, &mut dev_buf);
                device.append_value(ascii(&dev_buf));
            }
            times.push(day_start + e.t as i64);
            event_type.append_value(EVENT_TYPES[usize::from(e.kind)]);
            channel.append_value(CHANNELS[usize::from(e.channel)]);
            source.append_value(SOURCE_OF_CHANNEL[usize::from(e.channel)]);
            if e.cat == NO_CAT {
                category.append_null();
                product.append_null();
            } else {
                category.append_value(CATEGORIES[usize::from(e.cat)]);
                product_buf[..3].copy_from_slice(CATEGORY_CODES[usize::from(e.cat)].as_bytes());
                write_digits(&mut product_buf[4..], u64::from(e.product));
                product.append_value(ascii(&product_buf));
            }
            if e.cents == 0 {
                amount.append_null();
            } else {
                amount.append_value(f64::from(e.cents) / 100.0);
            }
        }
        RecordBatch::try_new(
            events_schema(),
            vec![
                Arc::new(event_id.finish()),
                Arc::new(profile.finish()),
                Arc::new(device.finish()),
                Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
                Arc::new(event_type.finish()),
                Arc::new(channel.finish()),
                Arc::new(source.finish()),
                Arc::new(category.finish()),
                Arc::new(product.finish()),
                Arc::new(amount.finish()),
                new_null_array(
                    &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    n,
                ),
            ],
        )
    }
}

/// The generation of one day of events.
struct DayGen<'a> {
    ctx: &'a EventCtx,
    rng: StdRng,
    day: i32,
    evs: Vec<Ev>,
}

impl DayGen<'_> {
    fn push(&mut self, t: u64, who: Who, kind: u8, channel: u8) {
        self.push_product(t, who, kind, channel, NO_CAT, 0, 0);
    }

    #[allow(clippy::too_many_arguments)]
    fn push_product(
        &mut self,
        t: u64,
        who: Who,
        kind: u8,
        channel: u8,
        cat: u8,
        product: u16,
        cents: u32,
    ) {
        self.evs.push(Ev {
            t: t.min(DAY_US - 1),
            seq: 0, // numbered once the day is sorted by time
            profile: who.profile,
            device: who.device,
            cents,
            product,
            kind,
            channel,
            cat,
        });
    }

    /// A few seconds to a couple of minutes between two hits of a session.
    fn gap(&mut self) -> u64 {
        5 * SECOND_US + (-(1.0 - unit(&mut self.rng)).ln() * 40.0 * SECOND_US as f64) as u64
    }

    /// `t` plus an exponential delay of the given mean, kept within the day.
    fn delay(&mut self, t: u64, mean: u64) -> u64 {
        if t + 2 >= DAY_US {
            return DAY_US - 1;
        }
        let d = (-(1.0 - unit(&mut self.rng)).ln() * mean as f64) as u64;
        if t + d < DAY_US {
            t + d
        } else {
            t + self.rng.random_range(1..DAY_US - t)
        }
    }

    fn category(&mut self, fav: u8) -> u8 {
        if fav != NO_CAT && self.rng.random_bool(0.65) {
            fav
        } else {
            weighted(&mut self.rng, &CATEGORY_WEIGHTS) as u8
        }
    }

    /// A product of a category, popular ones more often.
    fn product(&mut self) -> u16 {
        let u = unit(&mut self.rng);
        ((f64::from(PRODUCTS_PER_CATEGORY) * u.powf(2.2)) as u16).min(PRODUCTS_PER_CATEGORY - 1)
    }

    fn quantity(&mut self) -> u32 {
        match self.rng.random_range(0..20) {
            0..=15 => 1,
            16..=18 => 2,
            _ => 3,
        }
    }

    fn web_or_app(&mut self, v: &Visitor, app_share: f64) -> u8 {
        if v.has_app && self.rng.random_bool(app_share) {
            APP
        } else {
            WEB
        }
    }

    /// A web or app session: page views, product views, maybe a cart and a purchase.
    fn browse(&mut self, v: &Visitor, t0: u64, channel: u8, short: bool) {
        let mut t = t0;
        let pages = 1 + geometric(&mut self.rng, if short { 0.6 } else { 0.42 }).min(30);
        for i in 0..pages {
            if i > 0 {
                t += self.gap();
            }
            self.push(t, v.who, PAGE_VIEW, channel);
        }
        if !self.rng.random_bool(if short { 0.6 } else { 0.75 }) {
            return;
        }
        let cat = self.category(v.fav_cat);
        let views = 1 + geometric(&mut self.rng, 0.5).min(20);
        let mut product = 0;
        for _ in 0..views {
            t += self.gap();
            product = self.product();
            self.push_product(t, v.who, PRODUCT_VIEW, channel, cat, product, 0);
        }
        if !self.rng.random_bool((0.16 * v.propensity).min(0.7)) {
            return;
        }
        t += self.gap();
        self.push_product(t, v.who, ADD_TO_CART, channel, cat, product, 0);
        if v.can_buy && self.rng.random_bool(0.33) {
            t += MINUTE_US + self.rng.random_range(0..4 * MINUTE_US);
            let cents = product_price_cents(cat, product) * self.quantity();
            self.push_product(t, v.who, PURCHASE, channel, cat, product, cents);
        }
    }

    /// Interaction sessions of the profiles, drawn by activity level.
    fn sessions(&mut self, season: Season) {
        let ctx = self.ctx;
        if ctx.states.is_empty() {
            return;
        }
        let lambda = SESSIONS_PER_PROFILE_YEAR * ctx.cfg.profiles as f64 / 365.0 * season.envelope;
        for _ in 0..poisson(&mut self.rng, lambda) {
            let p = ctx.alias.sample(&mut self.rng);
            let st = &ctx.states[p as usize];
            let kind = st.session_kind(self.rng.random());
            let rate = match kind {
                SessionKind::Store => season.store,
                _ => season.web,
            } / season.envelope;
            if rate < 1.0 && unit(&mut self.rng) >= rate {
                continue;
            }
            let known = st.signup_day <= self.day;
            match kind {
                SessionKind::Web | SessionKind::App => {
                    let (channel, hours) = if kind == SessionKind::Web {
                        (WEB, &ctx.web_hours)
                    } else if st.has(HAS_APP) {
                        (APP, &ctx.app_hours)
                    } else {
                        continue;
                    };
                    let t0 = hours.sample(&mut self.rng);
                    if known {
                        self.browse(&Visitor::known(p, st), t0, channel, false);
                    } else if self.rng.random_bool(PRESIGNUP_SESSIONS) {
                        self.browse(&Visitor::anonymous(p, st.fav_cat), t0, channel, false);
                    }
                }
                SessionKind::Store if known => self.store_visit(p, st),
                SessionKind::Ads if known && st.has(CONSENT_ADS) => self.ads(p, st),
                _ => {}
            }
        }
    }

    fn store_visit(&mut self, p: u32, st: &ProfileState) {
        let who = Who {
            profile: p,
            device: NONE,
        };
        let t0 = self.ctx.store_hours.sample(&mut self.rng);
        self.push(t0, who, STORE_VISIT, STORE);
        let propensity = f64::from(st.propensity) / 1000.0;
        if self.rng.random_bool((0.45 * propensity).min(0.9)) {
            let cat = self.category(st.fav_cat);
            let product = self.product();
            let cents = product_price_cents(cat, product) * self.quantity();
            let t = t0 + 5 * MINUTE_US + self.rng.random_range(0..35 * MINUTE_US);
            self.push_product(t, who, PURCHASE, STORE, cat, product, cents);
        }
    }

    fn ads(&mut self, p: u32, st: &ProfileState) {
        let who = Who {
            profile: p,
            device: p,
        };
        let mut t = self.ctx.web_hours.sample(&mut self.rng);
        let impressions = 1 + geometric(&mut self.rng, 0.5).min(20);
        for i in 0..impressions {
            if i > 0 {
                t += 10 * SECOND_US + self.rng.random_range(0..20 * MINUTE_US);
            }
            self.push(t, who, AD_IMPRESSION, ADS);
            if self.rng.random::<u16>() < st.ad_click {
                t += 2 * SECOND_US + self.rng.random_range(0..18 * SECOND_US);
                self.push(t, who, AD_CLICK, ADS);
                let v = Visitor::known(p, st);
                let channel = self.web_or_app(&v, 0.3);
                self.browse(&v, t + 3 * SECOND_US, channel, true);
                break;
            }
        }
    }

    /// Visitors never identified (only a device id).
    fn anonymous(&mut self, season: Season) {
        let ctx = self.ctx;
        let lambda = ANON_SESSIONS_PER_PROFILE_YEAR * ctx.cfg.profiles as f64 / 365.0 * season.web;
        for _ in 0..poisson(&mut self.rng, lambda) {
            let u = unit(&mut self.rng);
            let a = ((ctx.cfg.anon_pool as f64 * u * u) as u64).min(ctx.cfg.anon_pool - 1);
            let device = (ctx.cfg.profiles + a) as u32;
            let fav = weighted(&mut self.rng, &CATEGORY_WEIGHTS) as u8;
            let (channel, hours) = if self.rng.random_bool(0.8) {
                (WEB, &ctx.web_hours)
            } else {
                (APP, &ctx.app_hours)
            };
            let t0 = hours.sample(&mut self.rng);
            self.browse(&Visitor::anonymous(device, fav), t0, channel, false);
        }
    }

    /// Sends a campaign to a random share of the profiles, then opens and
    /// clicks according to each profile's appetence for the channel.
    fn campaign(&mut self, c: &Campaign) {
        let ctx = self.ctx;
        let n = ctx.states.len() as u64;
        let mut i = geometric(&mut self.rng, c.share);
        while i < n {
            let p = i as u32;
            let st = &ctx.states[i as usize];
            if st.signup_day <= self.day {
                match c.channel {
                    EMAIL if st.has(CONSENT_EMAIL) => self.email(p, st, c.start),
                    SMS if st.has(CONSENT_SMS) => self.sms(p, st, c.start),
                    PUSH if st.has(CONSENT_PUSH) && st.has(HAS_APP) => {
                        self.push_message(p, st, c.start)
                    }
                    _ => {}
                }
            }
            i = i.saturating_add(1 + geometric(&mut self.rng, c.share));
        }
    }

    fn email(&mut self, p: u32, st: &ProfileState, start: u64) {
        let who = Who {
            profile: p,
            device: NONE,
        };
        let sent = start + self.rng.random_range(0..40 * MINUTE_US);
        self.push(sent, who, EMAIL_SENT, EMAIL);
        if self.rng.random::<u16>() >= st.email_open {
            return;
        }
        let open = self.delay(sent, 90 * MINUTE_US);
        self.push(open, who, EMAIL_OPEN, EMAIL);
        if self.rng.random::<u16>() >= st.email_click {
            return;
        }
        let click = open + 3 * SECOND_US + self.rng.random_range(0..3 * MINUTE_US);
        self.push(click, who, EMAIL_CLICK, EMAIL);
        let v = Visitor::known(p, st);
        let channel = self.web_or_app(&v, 0.25);
        self.browse(&v, click + 2 * SECOND_US, channel, true);
    }

    fn sms(&mut self, p: u32, st: &ProfileState, start: u64) {
        let who = Who {
            profile: p,
            device: NONE,
        };
        let sent = start + self.rng.random_range(0..20 * MINUTE_US);
        self.push(sent, who, SMS_SENT, SMS);
        if self.rng.random::<u16>() >= st.sms_click {
            return;
        }
        let click = self.delay(sent, 15 * MINUTE_US);
        self.push(click, who, SMS_CLICK, SMS);
        self.browse(&Visitor::known(p, st), click + 2 * SECOND_US, WEB, true);
    }

    fn push_message(&mut self, p: u32, st: &ProfileState, start: u64) {
        let who = Who {
            profile: p,
            device: p,
        };
        let sent = start + self.rng.random_range(0..10 * MINUTE_US);
        self.push(sent, who, PUSH_SENT, PUSH);
        if self.rng.random::<u16>() >= st.push_open {
            return;
        }
        let open = self.delay(sent, 30 * MINUTE_US);
        self.push(open, who, PUSH_OPEN, PUSH);
        if self.rng.random_bool(0.6) {
            self.browse(&Visitor::known(p, st), open + SECOND_US, APP, true);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Date32Type, Int32Type, TimestampMicrosecondType};
    use bytes::Bytes;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;
    use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
    use parquet::basic::Compression;
    use parquet::file::metadata::PageIndexPolicy;

    use super::*;

    type Files = BTreeMap<String, Bytes>;

    fn opts(profiles: u64, days: u32, seed: u64) -> DemoOptions {
        DemoOptions {
            profiles,
            seed,
            days,
            ..DemoOptions::default()
        }
    }

    fn assert_send<T: Send>(_: &T) {}

    async fn run(o: &DemoOptions) -> (DemoSummary, Files, Vec<(u64, u64)>) {
        let store = Arc::new(InMemory::new());
        let calls = std::sync::Mutex::new(Vec::new());
        let progress = |done, total| calls.lock().unwrap().push((done, total));
        let dyn_store: Arc<dyn ObjectStore> = Arc::clone(&store) as Arc<dyn ObjectStore>;
        let root = Path::from("demo");
        let fut = generate(dyn_store, &root, o, &progress);
        assert_send(&fut);
        let summary = fut.await.unwrap();
        let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
        let mut files = Files::new();
        for m in metas {
            let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
            files.insert(m.location.to_string(), bytes);
        }
        (summary, files, calls.into_inner().unwrap())
    }

    fn read(bytes: &Bytes) -> Vec<RecordBatch> {
        ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
    }

    fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    }

    fn bools(batch: &RecordBatch, name: &str) -> Vec<bool> {
        let a = batch.column_by_name(name).unwrap().as_boolean();
        assert_eq!(a.null_count(), 0, "{name} has nulls");
        a.iter().map(Option::unwrap).collect()
    }

    #[derive(Debug, Clone)]
    struct Profile {
        id: String,
        email: Option<String>,
        phone: Option<String>,
        customer_id: Option<String>,
        country: String,
        gender: Option<String>,
        birth_year: Option<i32>,
        consent: [bool; 4],
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Event {
        dir_date: String,
        event_id: String,
        profile: Option<String>,
        device: Option<String>,
        time: i64,
        event_type: String,
        channel: String,
        source: String,
        category: Option<String>,
        product: Option<String>,
        amount: Option<f64>,
    }

    #[derive(Debug, Clone)]
    struct Ident {
        record_id: String,
        source: String,
        id_type: String,
        value: Option<String>,
    }

    fn profiles_of(files: &Files) -> Vec<Profile> {
        let mut out = Vec::new();
        for (path, bytes) in files.range("demo/profiles/".to_owned().."demo/profiles0".to_owned()) {
            assert!(path.ends_with(".parquet"));
            for b in read(bytes) {
                assert_eq!(b.schema(), profiles_schema());
                let (id, email, phone, cid) = (
                    strings(&b, "profile_id"),
                    strings(&b, "email"),
                    strings(&b, "phone"),
                    strings(&b, "customer_id"),
                );
                let (country, gender) = (strings(&b, "country"), strings(&b, "gender"));
                let years = b
                    .column_by_name("birth_year")
                    .unwrap()
                    .as_primitive::<Int32Type>()
                    .clone();
                let _signup = b
                    .column_by_name("signup_date")
                    .unwrap()
                    .as_primitive::<Date32Type>()
                    .clone();
                let consents: Vec<Vec<bool>> = [
                    "consent_email",
                    "consent_sms",
                    "consent_push",
                    "consent_ads",
                ]
                .iter()
                .map(|c| bools(&b, c))
                .collect();
                for i in 0..b.num_rows() {
                    out.push(Profile {
                        id: id[i].clone().unwrap(),
                        email: email[i].clone(),
                        phone: phone[i].clone(),
                        customer_id: cid[i].clone(),
                        country: country[i].clone().unwrap(),
                        gender: gender[i].clone(),
                        birth_year: years.is_valid(i).then(|| years.value(i)),
                        consent: [
                            consents[0][i],
                            consents[1][i],
                            consents[2][i],
                            consents[3][i],
                        ],
                    });
                }
            }
        }
        out
    }

    fn events_of(files: &Files) -> Vec<Event> {
        let mut out = Vec::new();
        for (path, bytes) in files.range("demo/events/".to_owned().."demo/events0".to_owned()) {
            let rest = path
                .strip_prefix("demo/events/event_date=")
                .expect("hive partition directory");
            let (dir_date, file) = rest.split_once('/').unwrap();
            assert_eq!(file, "part-00000.parquet");
            for b in read(bytes) {
                assert_eq!(b.schema(), events_schema());
                let received_at = b.column_by_name("received_at").unwrap();
                assert_eq!(received_at.null_count(), b.num_rows());
                let ids = strings(&b, "event_id");
                let (profile, device) = (strings(&b, "profile_id"), strings(&b, "device_id"));
                let times = b
                    .column_by_name("event_time")
                    .unwrap()
                    .as_primitive::<TimestampMicrosecondType>()
                    .clone();
                let (et, ch, src) = (
                    strings(&b, "event_type"),
                    strings(&b, "channel"),
                    strings(&b, "source"),
                );
                let (cat, product) = (strings(&b, "category"), strings(&b, "product_id"));
                let amount = b
                    .column_by_name("amount")
                    .unwrap()
                    .as_primitive::<arrow::datatypes::Float64Type>()
                    .clone();
                for i in 0..b.num_rows() {
                    out.push(Event {
                        dir_date: dir_date.to_owned(),
                        event_id: ids[i].clone().unwrap(),
                        profile: profile[i].clone(),
                        device: device[i].clone(),
                        time: times.value(i),
                        event_type: et[i].clone().unwrap(),
                        channel: ch[i].clone().unwrap(),
                        source: src[i].clone().unwrap(),
                        category: cat[i].clone(),
                        product: product[i].clone(),
                        amount: amount.is_valid(i).then(|| amount.value(i)),
                    });
                }
            }
        }
        out
    }

    fn identifiers_of(files: &Files) -> Vec<Ident> {
        let mut out = Vec::new();
        for (_, bytes) in
            files.range("demo/identifiers/".to_owned().."demo/identifiers0".to_owned())
        {
            for b in read(bytes) {
                assert_eq!(b.schema(), identifiers_schema());
                let (rid, src, ty, val) = (
                    strings(&b, "record_id"),
                    strings(&b, "source"),
                    strings(&b, "id_type"),
                    strings(&b, "id_value"),
                );
                for i in 0..b.num_rows() {
                    out.push(Ident {
                        record_id: rid[i].clone().unwrap(),
                        source: src[i].clone().unwrap(),
                        id_type: ty[i].clone().unwrap(),
                        value: val[i].clone(),
                    });
                }
            }
        }
        out
    }

    /// The channels and sources the spec allows for each event type.
    fn allowed(event_type: &str) -> (&'static [&'static str], &'static [&'static str]) {
        match event_type {
            "page_view" | "product_view" | "add_to_cart" => (&["web", "app"], &["web", "app"]),
            "purchase" => (&["web", "app", "store"], &["web", "app", "store"]),
            "email_sent" | "email_open" | "email_click" => (&["email"], &["crm"]),
            "sms_sent" | "sms_click" => (&["sms"], &["crm"]),
            "push_sent" | "push_open" => (&["push"], &["crm"]),
            "ad_impression" | "ad_click" => (&["ads"], &["ads"]),
            "store_visit" => (&["store"], &["store"]),
            other => panic!("unexpected event_type {other:?}"),
        }
    }

    fn normalize_email(v: &str) -> String {
        let v = v.trim().to_lowercase();
        match v.split_once('@') {
            Some((local, "gmail.com")) => format!("{}@gmail.com", local.replace('.', "")),
            _ => v,
        }
    }

    /// Checks everything the spec says about one generated data set.
    fn check_dataset(
        o: &DemoOptions,
        summary: &DemoSummary,
        files: &Files,
    ) -> (Vec<Profile>, Vec<Event>, Vec<Ident>) {
        let profiles = profiles_of(files);
        let events = events_of(files);
        let idents = identifiers_of(files);

        // Summary and layout.
        assert_eq!(summary.profiles, o.profiles);
        assert_eq!(summary.profiles, profiles.len() as u64);
        assert_eq!(summary.events, events.len() as u64);
        assert_eq!(summary.identifiers, idents.len() as u64);
        let event_files = files
            .keys()
            .filter(|k| k.starts_with("demo/events/"))
            .count() as u64;
        assert_eq!(summary.event_files, event_files);
        assert_eq!(event_files, u64::from(o.days));
        assert!(files.contains_key("demo/profiles/part-00000.parquet"));
        assert!(files.contains_key("demo/identifiers/part-00000.parquet"));
        let dirs: BTreeSet<String> = files
            .keys()
            .filter_map(|k| k.strip_prefix("demo/events/event_date="))
            .map(|k| k[..10].to_owned())
            .collect();
        let expected: BTreeSet<String> = (0..o.days)
            .map(|d| {
                (o.end_date - Days::new(u64::from(d)))
                    .format("%Y-%m-%d")
                    .to_string()
            })
            .collect();
        assert_eq!(dirs, expected);

        // Parquet properties: ZSTD, page index, row groups of at most 1M rows.
        for (path, bytes) in files {
            let b = ParquetRecordBatchReaderBuilder::try_new_with_options(
                bytes.clone(),
                ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
            )
            .unwrap();
            let md = b.metadata();
            for rg in md.row_groups() {
                assert!(rg.num_rows() <= 1_000_000);
                for c in rg.columns() {
                    assert!(matches!(c.compression(), Compression::ZSTD(_)), "{path}");
                }
            }
            if md.file_metadata().num_rows() > 0 {
                assert!(md.column_index().is_some(), "{path} has no page index");
                assert!(
                    md.row_group(0).column(0).statistics().is_some(),
                    "{path} has no statistics"
                );
            }
        }

        // Profiles.
        let countries = ["FR", "DE", "ES", "IT", "GB", "US", "BE"];
        let mut seen = HashSet::new();
        let mut by_country: HashMap<&str, usize> = HashMap::new();
        for (i, p) in profiles.iter().enumerate() {
            assert_eq!(
                p.id,
                format!("p{:09}", i + 1),
                "profile ids are zero-padded and ordered"
            );
            assert!(countries.contains(&p.country.as_str()));
            *by_country.entry(p.country.as_str()).or_default() += 1;
            assert!(matches!(p.gender.as_deref(), None | Some("F") | Some("M")));
            if let Some(y) = p.birth_year {
                assert!((1940..=2010).contains(&y), "birth year {y}");
            }
            if let Some(e) = &p.email {
                assert!(
                    e.contains('@') && e.trim() == e && e.to_lowercase() == *e,
                    "clean email {e:?}"
                );
                assert!(seen.insert(e.clone()), "duplicate email {e}");
            }
            if let Some(ph) = &p.phone {
                assert!(
                    ph.starts_with('+') && ph[1..].chars().all(|c| c.is_ascii_digit()),
                    "{ph}"
                );
                assert!((10..=14).contains(&ph.len()), "{ph}");
                assert!(seen.insert(ph.clone()), "duplicate phone {ph}");
            }
            if let Some(c) = &p.customer_id {
                assert!(
                    c.len() == 8
                        && c.starts_with('C')
                        && c[1..].chars().all(|c| c.is_ascii_digit()),
                    "{c}"
                );
                assert!(seen.insert(c.clone()), "duplicate customer id {c}");
            }
            // No consent to email / SMS without the address / number.
            assert!(!p.consent[0] || p.email.is_some());
            assert!(!p.consent[1] || p.phone.is_some());
        }
        let fr = by_country.get("FR").copied().unwrap_or(0);
        assert!(
            by_country.values().all(|n| *n <= fr),
            "FR is the main country: {by_country:?}"
        );
        let by_id: HashMap<&str, &Profile> = profiles.iter().map(|p| (p.id.as_str(), p)).collect();

        // Events.
        let product_events = ["product_view", "add_to_cart", "purchase"];
        let mut event_ids = HashSet::new();
        let mut last: Option<(&str, (&str, i64))> = None;
        for e in &events {
            assert!(
                event_ids.insert(e.event_id.as_str()),
                "duplicate event_id {}",
                e.event_id
            );
            let (channels, sources) = allowed(&e.event_type);
            assert!(channels.contains(&e.channel.as_str()), "{e:?}");
            assert!(sources.contains(&e.source.as_str()), "{e:?}");
            if ["web", "app", "store"].contains(&e.channel.as_str()) {
                assert_eq!(e.channel, e.source, "{e:?}");
            }
            let day = chrono::DateTime::from_timestamp_micros(e.time)
                .unwrap()
                .date_naive();
            assert_eq!(day.format("%Y-%m-%d").to_string(), e.dir_date, "{e:?}");
            // Within a day: by time, or by type then time.
            let key = match o.event_order {
                EventOrder::Time => ("", e.time),
                EventOrder::TypeThenTime => (e.event_type.as_str(), e.time),
            };
            if let Some((dir, k)) = last
                && dir == e.dir_date
            {
                assert!(
                    k <= key,
                    "events of a day are sorted as {:?}",
                    o.event_order
                );
            }
            last = Some((e.dir_date.as_str(), key));
            match e.amount {
                Some(a) => {
                    assert_eq!(e.event_type, "purchase");
                    assert!(
                        a > 0.0 && ((a * 100.0).round() - a * 100.0).abs() < 1e-6,
                        "{a}"
                    );
                }
                None => assert_ne!(e.event_type, "purchase", "{e:?}"),
            }
            let is_product = product_events.contains(&e.event_type.as_str());
            assert_eq!(e.category.is_some(), is_product, "{e:?}");
            assert_eq!(e.product.is_some(), is_product, "{e:?}");
            if let Some(c) = &e.category {
                assert!(
                    [
                        "electronics",
                        "fashion",
                        "home",
                        "beauty",
                        "sports",
                        "books",
                        "toys",
                        "grocery"
                    ]
                    .contains(&c.as_str())
                );
            }
            match &e.profile {
                Some(pid) => {
                    let p = by_id
                        .get(pid.as_str())
                        .unwrap_or_else(|| panic!("unknown profile {pid}"));
                    match e.channel.as_str() {
                        "email" => {
                            assert!(p.consent[0], "email to a profile without consent: {e:?}")
                        }
                        "sms" => assert!(p.consent[1], "sms to a profile without consent: {e:?}"),
                        "push" => assert!(p.consent[2], "push to a profile without consent: {e:?}"),
                        _ => {}
                    }
                }
                None => {
                    assert!(e.device.is_some(), "anonymous events have a device: {e:?}");
                    assert!(["web", "app"].contains(&e.channel.as_str()), "{e:?}");
                    assert_ne!(e.event_type, "purchase");
                }
            }
        }

        // Identifiers.
        let mut record_source: HashMap<&str, &str> = HashMap::new();
        let mut pairs = HashSet::new();
        for i in &idents {
            assert!(
                ["web", "app", "store", "crm"].contains(&i.source.as_str()),
                "{i:?}"
            );
            assert!(
                ["email", "phone", "customer_id", "device_id"].contains(&i.id_type.as_str()),
                "{i:?}"
            );
            assert!(i.record_id.starts_with(&format!("{}-", i.source)), "{i:?}");
            let prev = record_source.insert(i.record_id.as_str(), i.source.as_str());
            assert!(
                prev.is_none_or(|s| s == i.source),
                "a record has one source"
            );
            assert!(
                pairs.insert((i.record_id.as_str(), i.id_type.as_str())),
                "{i:?}"
            );
        }
        (profiles, events, idents)
    }

    #[tokio::test]
    async fn deterministic_and_consistent() {
        let o = opts(500, 30, 7);
        let (summary, files, calls) = run(&o).await;
        let (again, files_again, _) = run(&o).await;
        assert_eq!(summary, again);
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            files_again.keys().collect::<Vec<_>>()
        );
        for (k, v) in &files {
            assert_eq!(
                v, &files_again[k],
                "{k} differs between two runs with the same seed"
            );
        }
        let (other, other_files, _) = run(&opts(500, 30, 8)).await;
        assert_eq!(other.profiles, 500);
        assert_ne!(
            other_files["demo/profiles/part-00000.parquet"],
            files["demo/profiles/part-00000.parquet"]
        );
        assert_ne!(
            other_files["demo/identifiers/part-00000.parquet"],
            files["demo/identifiers/part-00000.parquet"]
        );
        let day = "demo/events/event_date=2026-11-01/part-00000.parquet";
        assert_ne!(other_files[day], files[day]);

        // Progress goes from 0 to total, monotonically.
        assert_eq!(calls.first().map(|c| c.0), Some(0));
        let (done, total) = *calls.last().unwrap();
        assert_eq!(done, total);
        assert!(
            calls
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 == w[1].1)
        );

        let (_, events, _) = check_dataset(&o, &summary, &files);
        // About 50 events per profile and year: 500 profiles over 30 days.
        let expected = 500.0 * 50.0 * 30.0 / 365.0;
        assert!(
            (0.6 * expected..=1.6 * expected).contains(&(events.len() as f64)),
            "{summary:?}"
        );
    }

    /// Sorting columns and row-group sizes of every event file.
    fn event_layout(files: &Files) -> Vec<(Vec<i32>, Vec<i64>)> {
        files
            .range("demo/events/".to_owned().."demo/events0".to_owned())
            .map(|(_, bytes)| {
                let b = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).unwrap();
                let md = b.metadata();
                let sorting: Vec<i32> = md
                    .row_groups()
                    .first()
                    .and_then(|rg| rg.sorting_columns())
                    .into_iter()
                    .flatten()
                    .map(|c| c.column_idx)
                    .collect();
                let sizes = md.row_groups().iter().map(|rg| rg.num_rows()).collect();
                (sorting, sizes)
            })
            .collect()
    }

    #[tokio::test]
    async fn event_order_and_row_group_size() {
        let by_time = DemoOptions {
            event_order: EventOrder::Time,
            ..opts(300, 6, 11)
        };
        let by_type = DemoOptions {
            event_order: EventOrder::TypeThenTime,
            event_row_group_rows: 10,
            ..by_time.clone()
        };
        let (s1, time_files, _) = run(&by_time).await;
        let (s2, type_files, _) = run(&by_type).await;
        assert_eq!(s1, s2);
        // Only the event files differ.
        for (k, v) in &time_files {
            if !k.starts_with("demo/events/") {
                assert_eq!(v, &type_files[k], "{k}");
            }
        }
        // The same events (ids numbered in time order), in another order.
        let time_events = events_of(&time_files);
        let type_events = events_of(&type_files);
        assert_ne!(time_events, type_events);
        let by_id = |mut v: Vec<Event>| {
            v.sort_by(|a, b| (&a.dir_date, &a.event_id).cmp(&(&b.dir_date, &b.event_id)));
            v
        };
        let time_sorted = by_id(time_events.clone());
        assert_eq!(time_sorted, by_id(type_events.clone()));
        // Time order: event ids follow event_time within a day.
        assert_eq!(time_sorted, time_events);
        // Type order: (event_type, event_time) within a day, so a row
        // group's event_type statistics span few types.
        for w in type_events.windows(2) {
            if w[0].dir_date == w[1].dir_date {
                assert!(
                    (&w[0].event_type, w[0].time) <= (&w[1].event_type, w[1].time),
                    "{w:?}"
                );
            }
        }
        let schema = events_schema();
        let (time_col, type_col) = (
            schema.index_of("event_time").unwrap() as i32,
            schema.index_of("event_type").unwrap() as i32,
        );
        let layout = event_layout(&time_files);
        assert_eq!(layout.len(), 6);
        for (sorting, sizes) in layout {
            assert_eq!(sorting, vec![time_col]);
            assert_eq!(
                sizes.len(),
                1,
                "one row group of every event of the day: {sizes:?}"
            );
        }
        let layout = event_layout(&type_files);
        assert!(
            layout.iter().any(|(_, sizes)| sizes.len() > 2),
            "{layout:?}"
        );
        for (sorting, sizes) in layout {
            assert_eq!(sorting, vec![type_col, time_col]);
            assert!(sizes.iter().all(|&n| n <= 10), "{sizes:?}");
        }
        // A row group size of 0 is refused.
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let zero = DemoOptions {
            event_row_group_rows: 0,
            ..by_time
        };
        let err = generate(store, &Path::from("demo"), &zero, &|_, _| {})
            .await
            .unwrap_err();
        assert!(matches!(err, DemoError::InvalidOptions(_)), "{err}");
    }

    #[tokio::test]
    async fn realistic_year() {
        let o = opts(2000, 365, 42);
        let (summary, files, _) = run(&o).await;
        let (profiles, events, idents) = check_dataset(&o, &summary, &files);

        // Volume: about 50 events per profile over 365 days.
        let per_profile = events.len() as f64 / 2000.0;
        assert!(
            (35.0..=70.0).contains(&per_profile),
            "{per_profile} events per profile"
        );

        // Null and consent rates of the profiles.
        let share =
            |f: &dyn Fn(&Profile) -> bool| profiles.iter().filter(|p| f(p)).count() as f64 / 2000.0;
        let in_range = |v: f64, target: f64, tol: f64| (v - target).abs() <= tol;
        assert!(in_range(share(&|p| p.email.is_none()), 0.05, 0.03));
        assert!(in_range(share(&|p| p.phone.is_none()), 0.20, 0.04));
        assert!(in_range(share(&|p| p.customer_id.is_none()), 0.40, 0.05));
        assert!(in_range(share(&|p| p.country == "FR"), 0.70, 0.05));
        assert!(in_range(share(&|p| p.consent[0]), 0.70, 0.05));
        assert!(in_range(share(&|p| p.consent[1]), 0.40, 0.05));
        assert!(in_range(share(&|p| p.consent[2]), 0.50, 0.05));
        assert!(in_range(share(&|p| p.consent[3]), 0.60, 0.05));
        assert!(share(&|p| p.gender.is_none()) > 0.0);
        assert!(share(&|p| p.birth_year.is_none()) > 0.0);

        // Funnels.
        let mut count: HashMap<&str, usize> = HashMap::new();
        for e in &events {
            *count.entry(e.event_type.as_str()).or_default() += 1;
        }
        let c = |t: &str| count.get(t).copied().unwrap_or(0);
        assert!(
            c("product_view") > c("add_to_cart")
                && c("add_to_cart") > c("purchase")
                && c("purchase") > 0
        );
        // Online, 2-3 % of the product views convert.
        let online = |t: &str| {
            events
                .iter()
                .filter(|e| e.event_type == t && e.channel != "store")
                .count()
        };
        let conversion = online("purchase") as f64 / online("product_view") as f64;
        assert!(
            (0.015..=0.04).contains(&conversion),
            "conversion {conversion}"
        );
        assert!(
            c("email_sent") > c("email_open")
                && c("email_open") > c("email_click")
                && c("email_click") > 0
        );
        assert!(c("sms_sent") > c("sms_click") && c("sms_click") > 0);
        assert!(c("push_sent") > c("push_open") && c("push_open") > 0);
        assert!(c("ad_impression") > c("ad_click") && c("ad_click") > 0);
        assert!(c("page_view") > c("product_view"));
        assert!(c("store_visit") > 0);
        for t in EVENT_TYPES {
            assert!(c(t) > 0, "no {t} event");
        }

        // About 15 % of the web events are anonymous.
        let web: Vec<&Event> = events.iter().filter(|e| e.channel == "web").collect();
        let anonymous =
            web.iter().filter(|e| e.profile.is_none()).count() as f64 / web.len() as f64;
        assert!(
            (0.08..=0.25).contains(&anonymous),
            "anonymous share {anonymous}"
        );
        // Known profiles' web/app events may carry their device id.
        assert!(
            events
                .iter()
                .any(|e| e.profile.is_some() && e.device.is_some())
        );

        // Heavy-tailed activity: the 10 % most active profiles make a large share.
        let mut per: HashMap<&str, usize> = HashMap::new();
        for e in events
            .iter()
            .filter(|e| !["email", "sms", "push"].contains(&e.channel.as_str()))
        {
            if let Some(p) = &e.profile {
                *per.entry(p.as_str()).or_default() += 1;
            }
        }
        let mut counts: Vec<usize> = per.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let total: usize = counts.iter().sum();
        let top: usize = counts.iter().take(200).sum();
        assert!(
            top as f64 > 0.3 * total as f64,
            "top 10% make {top} of {total}"
        );

        // Seasonality: December busier than August, Saturdays busier in store.
        let mut per_month = [0usize; 12];
        let mut store_by_weekday = [0usize; 7];
        for e in &events {
            let d = chrono::DateTime::from_timestamp_micros(e.time)
                .unwrap()
                .date_naive();
            per_month[d.month0() as usize] += 1;
            if e.event_type == "store_visit" {
                store_by_weekday[d.weekday().num_days_from_monday() as usize] += 1;
            }
        }
        assert!(
            per_month[11] as f64 > 1.3 * per_month[7] as f64,
            "{per_month:?}"
        );
        assert!(
            store_by_weekday[5] > 2 * store_by_weekday[6],
            "{store_by_weekday:?}"
        );

        // Amounts are realistic prices.
        let amounts: Vec<f64> = events.iter().filter_map(|e| e.amount).collect();
        let mean = amounts.iter().sum::<f64>() / amounts.len() as f64;
        assert!((10.0..=500.0).contains(&mean), "mean basket {mean}");

        // Identifiers: the profiles' identifiers appear, in messy forms.
        let values: Vec<&str> = idents.iter().filter_map(|i| i.value.as_deref()).collect();
        let emails: HashSet<String> = idents
            .iter()
            .filter(|i| i.id_type == "email")
            .filter_map(|i| i.value.as_deref())
            .map(normalize_email)
            .collect();
        let with_email: Vec<&Profile> = profiles.iter().filter(|p| p.email.is_some()).collect();
        let found = with_email
            .iter()
            .filter(|p| emails.contains(&normalize_email(p.email.as_deref().unwrap())))
            .count();
        assert!(
            found as f64 > 0.8 * with_email.len() as f64,
            "{found} of {}",
            with_email.len()
        );
        let cids: HashSet<&str> = idents
            .iter()
            .filter(|i| i.id_type == "customer_id")
            .filter_map(|i| i.value.as_deref())
            .collect();
        assert!(
            profiles
                .iter()
                .filter_map(|p| p.customer_id.as_deref())
                .filter(|c| cids.contains(c))
                .count()
                > 600
        );
        assert!(
            values
                .iter()
                .any(|v| v.ends_with(' ') || v.starts_with(' ')),
            "emails with spaces"
        );
        assert!(
            values
                .iter()
                .any(|v| v.contains('@') && v.chars().any(|c| c.is_ascii_uppercase()))
        );
        assert!(
            values.iter().any(|v| v.starts_with("0033")),
            "international 00 prefix"
        );
        assert!(
            values.iter().any(|v| v.starts_with("+33 ")),
            "international with spaces"
        );
        assert!(
            values
                .iter()
                .any(|v| v.len() == 14 && (v.starts_with("06 ") || v.starts_with("07 "))),
            "French national format"
        );
        assert!(values.contains(&"0000000000"));
        assert!(values.contains(&""));
        assert!(idents.iter().any(|i| i.value.is_none()));
        // A phone shared by many records (a shop's line): the over-merge trap.
        let mut phone_records: HashMap<&str, HashSet<&str>> = HashMap::new();
        for i in idents.iter().filter(|i| i.id_type == "phone") {
            if let Some(v) = i
                .value
                .as_deref()
                .filter(|v| !v.is_empty() && *v != "0000000000")
            {
                phone_records
                    .entry(v)
                    .or_default()
                    .insert(i.record_id.as_str());
            }
        }
        assert!(phone_records.values().any(|r| r.len() >= 3));
        // Records come from several sources for one person, and the devices of
        // app records are the devices seen in the events.
        let sources: HashSet<&str> = idents.iter().map(|i| i.source.as_str()).collect();
        assert_eq!(sources.len(), 4);
        let devices: HashSet<&str> = events.iter().filter_map(|e| e.device.as_deref()).collect();
        let app_devices: Vec<&str> = idents
            .iter()
            .filter(|i| i.source == "app" && i.id_type == "device_id")
            .filter_map(|i| i.value.as_deref())
            .collect();
        assert!(!app_devices.is_empty());
        let matched = app_devices.iter().filter(|d| devices.contains(**d)).count();
        assert!(
            matched as f64 > 0.5 * app_devices.len() as f64,
            "{matched} of {}",
            app_devices.len()
        );
    }

    #[test]
    fn schemas() {
        let e = events_schema();
        assert!(e.field_with_name("event_date").is_err());
        assert_eq!(
            e.field_with_name("event_time").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert!(!e.field_with_name("event_id").unwrap().is_nullable());
        // The collector's arrival time: same type as event_time, nullable.
        let received_at = e.field_with_name("received_at").unwrap();
        assert!(received_at.is_nullable());
        assert_eq!(
            received_at.data_type(),
            e.field_with_name("event_time").unwrap().data_type()
        );
        assert_eq!(e.fields().len(), 11);
        assert_eq!(profiles_schema().fields().len(), 14);
        assert_eq!(identifiers_schema().fields().len(), 4);
    }

    #[test]
    fn identifiers_are_unique() {
        let cfg = Config::new(&opts(1000, 1, 1)).unwrap();
        let mut seen = HashSet::new();
        for d in 0..2000u32 {
            let mut s = String::new();
            push_device(&cfg, d, &mut s);
            assert_eq!(s.len(), 36);
            assert!(seen.insert(s));
        }
        for p in [cfg.email_perm, cfg.phone_perm, cfg.customer_perm] {
            let values: HashSet<u64> = (0..1100).map(|i| p.apply(i)).collect();
            assert_eq!(values.len(), 1100);
        }
        assert_eq!(fold_name("Hélène"), "helene");
        assert_eq!(fold_name("O'Brien"), "obrien");
        assert_eq!(fold_name("Müller"), "muller");
        let fr = Phone {
            country: 0,
            nsn: "612345678".into(),
        };
        assert_eq!(fr.e164(), "+33612345678");
        let mut s = String::new();
        write_grouped(&mut s, "0612345678", COUNTRIES[0].national_groups, ' ');
        assert_eq!(s, "06 12 34 56 78");
        // Messy forms of one phone number and one email address.
        let mut rng = StdRng::seed_from_u64(1);
        let phones: BTreeSet<String> = (0..2000)
            .map(|_| {
                let mut s = String::new();
                messy_phone(&mut rng, &fr, 0.5, &mut s);
                s
            })
            .collect();
        for form in [
            "+33612345678",
            "+33 6 12 34 56 78",
            "0033612345678",
            "06 12 34 56 78",
            "0612345678",
            "06.12.34.56.78",
            "06-12-34-56-78",
            "+33 (0)6 12 34 56 78",
        ] {
            assert!(phones.contains(form), "{form} missing from {phones:?}");
        }
        assert_eq!(phones.len(), 8, "{phones:?}");
        let email = Email {
            local: "jean.dupont12".into(),
            domain: "gmail.com",
        };
        let emails: BTreeSet<String> = (0..2000)
            .map(|_| {
                let mut s = String::new();
                messy_email(&mut rng, &email, &mut s);
                s
            })
            .collect();
        for form in [
            "jean.dupont12@gmail.com",
            "Jean.Dupont12@Gmail.com ",
            "jeandupont12@gmail.com",
            " JEAN.DUPONT12@GMAIL.COM",
        ] {
            assert!(emails.contains(form), "{form} missing from {emails:?}");
        }
        for e in &emails {
            let e = e.trim().to_lowercase();
            assert_eq!(e.replace('.', ""), "jeandupont12@gmailcom", "{e}");
        }
    }

    #[tokio::test]
    async fn rejects_too_many_profiles() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let err = generate(
            store,
            &Path::from("x"),
            &opts(MAX_PROFILES + 1, 1, 1),
            &|_, _| {},
        )
        .await;
        assert!(matches!(err, Err(DemoError::InvalidOptions(_))));
    }

    #[tokio::test]
    async fn empty_profiles() {
        let (summary, files, _) = run(&opts(0, 3, 1)).await;
        assert_eq!(
            summary,
            DemoSummary {
                profiles: 0,
                events: 0,
                identifiers: 0,
                event_files: 3
            }
        );
        assert_eq!(files.len(), 5);
    }

    /// Generation speed at the default size (100k profiles, 365 days):
    /// `cargo test --release -p seglake-engine --lib demo::tests::speed -- --ignored --nocapture`
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "slow: measures the generation speed at the default size"]
    async fn speed() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let started = std::time::Instant::now();
        let summary = generate(
            Arc::clone(&store),
            &Path::from("demo"),
            &DemoOptions::default(),
            &|_, _| {},
        )
        .await
        .unwrap();
        let elapsed = started.elapsed();
        let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
        let bytes: u64 = metas.iter().map(|m| m.size).sum();
        eprintln!(
            "{summary:?} in {elapsed:?}, {} MB of Parquet",
            bytes / 1_000_000
        );
    }
}
