//! End-to-end tests of [`generate`](crate::generate): determinism, the
//! layout and properties of the files, and what the data looks like.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Int32Type, TimestampMicrosecondType};
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::basic::Compression;
use parquet::file::metadata::PageIndexPolicy;

use arrow::record_batch::RecordBatch;
use chrono::Datelike;

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
    for (_, bytes) in files.range("demo/identifiers/".to_owned().."demo/identifiers0".to_owned()) {
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
                c.len() == 8 && c.starts_with('C') && c[1..].chars().all(|c| c.is_ascii_digit()),
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
    let anonymous = web.iter().filter(|e| e.profile.is_none()).count() as f64 / web.len() as f64;
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
/// `cargo test --release -p seglake-demo --lib tests::speed -- --ignored --nocapture`
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
