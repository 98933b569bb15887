//! A synthetic identity graph for the stitching benchmark: identifier links
//! `(record_id, id_type, id_value)` with a realistic cluster-size
//! distribution.
//!
//! - People have 1 to 5 records most of the time (45 % one, 25 % two, 15 %
//!   three, 8 % four, 4 % five) and a tail of 6 to 30 records (3 %).
//! - A person's first record carries the person's e-mail and phone; every
//!   later record carries one of the two (so the person is connected), and
//!   half of the records also a device id of their own.
//! - Hub identifiers: about one record in a thousand also carries a shared
//!   device id from a small pool whose sizes follow a power law from 2 to
//!   5 000 records (kiosks, family tablets, placeholder values). Hubs above
//!   the over-merge guard are dropped by every engine; smaller ones really
//!   merge people.
//!
//! Deterministic for a given number of rows and seed.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::{IoContext, Result};

/// Schema of the links file.
pub fn links_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("record_id", DataType::Utf8, false),
        Field::new("id_type", DataType::Utf8, false),
        Field::new("id_value", DataType::Utf8, false),
    ]))
}

/// Records of one person: 1..=5 mostly, a tail up to 30.
pub fn records_per_person(rng: &mut impl Rng) -> usize {
    let u: f64 = rng.random();
    match u {
        u if u < 0.45 => 1,
        u if u < 0.70 => 2,
        u if u < 0.85 => 3,
        u if u < 0.93 => 4,
        u if u < 0.97 => 5,
        _ => rng.random_range(6..=30),
    }
}

/// Sizes of the hub identifiers: a power law (exponent 2) from 2 to 5 000.
pub fn hub_size(rng: &mut impl Rng) -> usize {
    let u: f64 = rng.random_range(0.0..1.0);
    let (lo, hi) = (2.0f64, 5000.0f64);
    // Inverse CDF of p(x) ~ x^-2 on [lo, hi].
    let x = 1.0 / (1.0 / lo - u * (1.0 / lo - 1.0 / hi));
    x.round().clamp(lo, hi) as usize
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GraphSummary {
    pub rows: u64,
    pub records: u64,
    pub people: u64,
    pub hubs: u64,
}

struct Writer {
    writer: ArrowWriter<File>,
    record: StringBuilder,
    id_type: StringBuilder,
    id_value: StringBuilder,
    pending: usize,
    rows: u64,
}

impl Writer {
    fn push(&mut self, record: &str, id_type: &str, value: &str) -> Result<()> {
        self.record.append_value(record);
        self.id_type.append_value(id_type);
        self.id_value.append_value(value);
        self.pending += 1;
        self.rows += 1;
        if self.pending == 1 << 20 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.record.finish()),
            Arc::new(self.id_type.finish()),
            Arc::new(self.id_value.finish()),
        ];
        self.writer
            .write(&RecordBatch::try_new(links_schema(), columns)?)?;
        self.pending = 0;
        Ok(())
    }
}

/// Writes about `rows` identifier links (stops at the first person that
/// reaches it) to `path` as Parquet.
pub fn generate(path: &Path, rows: u64, seed: u64) -> Result<GraphSummary> {
    let mut rng = StdRng::seed_from_u64(seed);
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let file = File::create(path).at(path)?;
    let mut w = Writer {
        writer: ArrowWriter::try_new(file, links_schema(), Some(props))?,
        record: StringBuilder::new(),
        id_type: StringBuilder::new(),
        id_value: StringBuilder::new(),
        pending: 0,
        rows: 0,
    };
    // Hub pool: one hub per ~1 000 records, each with a size budget.
    let expected_records = rows / 2;
    let n_hubs = (expected_records / 50_000).max(1);
    let mut hubs: Vec<(String, usize)> = (0..n_hubs)
        .map(|h| (format!("hub-{h:06}"), hub_size(&mut rng)))
        .collect();
    let mut summary = GraphSummary {
        hubs: n_hubs,
        ..GraphSummary::default()
    };
    let mut record_no: u64 = 0;
    let mut person: u64 = 0;
    while w.rows < rows {
        let email = format!("p{person}@example.com");
        let phone = format!("+3361{person:08}");
        for j in 0..records_per_person(&mut rng) {
            let rid = format!("r{record_no:010}");
            record_no += 1;
            if j == 0 {
                w.push(&rid, "email", &email)?;
                w.push(&rid, "phone", &phone)?;
            } else if rng.random_bool(0.5) {
                w.push(&rid, "email", &email)?;
            } else {
                w.push(&rid, "phone", &phone)?;
            }
            if rng.random_bool(0.5) {
                w.push(&rid, "device_id", &format!("d{record_no}"))?;
            }
            if rng.random_bool(0.001) {
                let h = rng.random_range(0..hubs.len());
                let (name, left) = &mut hubs[h];
                if *left > 0 {
                    *left -= 1;
                    w.push(&rid, "device_id", name)?;
                }
            }
        }
        person += 1;
    }
    w.flush()?;
    w.writer.close()?;
    summary.rows = w.rows;
    summary.records = record_no;
    summary.people = person;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_sizes_are_mostly_small() {
        let mut rng = StdRng::seed_from_u64(1);
        let sizes: Vec<usize> = (0..100_000).map(|_| records_per_person(&mut rng)).collect();
        let small = sizes.iter().filter(|s| **s <= 5).count() as f64 / sizes.len() as f64;
        assert!((0.96..0.98).contains(&small), "{small}");
        assert!(sizes.iter().all(|s| (1..=30).contains(s)));
        let ones = sizes.iter().filter(|s| **s == 1).count() as f64 / sizes.len() as f64;
        assert!((0.44..0.46).contains(&ones), "{ones}");
    }

    #[test]
    fn hub_sizes_follow_a_power_law() {
        let mut rng = StdRng::seed_from_u64(2);
        let sizes: Vec<usize> = (0..100_000).map(|_| hub_size(&mut rng)).collect();
        assert!(sizes.iter().all(|s| (2..=5000).contains(s)));
        let big = sizes.iter().filter(|s| **s > 100).count() as f64 / sizes.len() as f64;
        // P(X > 100) = (1/100 - 1/5000) / (1/2 - 1/5000) ~ 1.96 %.
        assert!((0.015..0.025).contains(&big), "{big}");
        let median =
            crate::stats::quantile(&sizes.iter().map(|s| *s as f64).collect::<Vec<_>>(), 0.5)
                .unwrap();
        assert!((3.0..=5.0).contains(&median), "{median}");
    }

    #[test]
    fn writes_a_deterministic_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = generate(&dir.path().join("a.parquet"), 10_000, 7).unwrap();
        let b = generate(&dir.path().join("b.parquet"), 10_000, 7).unwrap();
        assert_eq!(a, b);
        assert!(a.rows >= 10_000 && a.rows < 10_100, "{a:?}");
        assert!(a.records > a.people);
        let bytes_a = std::fs::read(dir.path().join("a.parquet")).unwrap();
        let bytes_b = std::fs::read(dir.path().join("b.parquet")).unwrap();
        assert_eq!(bytes_a, bytes_b);
    }
}
