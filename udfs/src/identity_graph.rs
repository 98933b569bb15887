//! The identity stitching algorithm, independent of DataFusion.
//!
//! Rows `(record_id, id_type, id_value)` are interned into dense `u32` ids
//! (records, and identifiers `(id_type, id_value)`), with hash tables over
//! the bytes kept in one arena per kind: no per-row allocation. The two
//! tables are independent, so [`IdentityGraphBuilder::add_chunk`] can fill
//! them on two threads (the ids stay those of row order). Every usable
//! row becomes a link `identifier -> record`. [`IdentityGraphBuilder::finish`]
//! sorts and deduplicates the links, drops identifiers shared by more than
//! `max_records_per_identifier` distinct records (the over-merge guard), and
//! unions the records of every remaining identifier in a union-find (path
//! compression + union by size). The person of a record is the smallest
//! record id (byte order) of its connected component: it does not depend on
//! the input order nor on how the input was partitioned.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

/// A hash table entry: the dense id and 32 bits of the value's hash, so that
/// growing the table and most mismatches never touch the arena.
#[derive(Clone, Copy)]
struct Entry {
    id: u32,
    hash: u32,
}

/// Spreads a 32-bit hash over 64 bits (hashbrown takes its control bits
/// from the top of the hash).
#[inline]
fn widen(hash: u32) -> u64 {
    (hash as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline]
fn narrow(hash: u64) -> u32 {
    (hash >> 32) as u32 ^ hash as u32
}

/// Interns byte strings into dense ids `0..len`.
#[derive(Default)]
struct ByteInterner {
    hasher: DefaultHashBuilder,
    table: HashTable<Entry>,
    bytes: Vec<u8>,
    /// `offsets[i]..offsets[i + 1]` are the bytes of id `i`.
    offsets: Vec<usize>,
}

impl ByteInterner {
    fn new() -> Self {
        Self {
            offsets: vec![0],
            ..Default::default()
        }
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn get(&self, id: u32) -> &[u8] {
        let id = id as usize;
        &self.bytes[self.offsets[id]..self.offsets[id + 1]]
    }

    fn intern(&mut self, value: &[u8]) -> u32 {
        let hash = narrow(self.hasher.hash_one(value));
        let Self {
            table,
            bytes,
            offsets,
            ..
        } = self;
        let found = table.find(widen(hash), |e| {
            e.hash == hash && &bytes[offsets[e.id as usize]..offsets[e.id as usize + 1]] == value
        });
        if let Some(e) = found {
            return e.id;
        }
        let id = u32::try_from(offsets.len() - 1).expect("more than 4 billion distinct values");
        table.insert_unique(widen(hash), Entry { id, hash }, |e| widen(e.hash));
        bytes.extend_from_slice(value);
        offsets.push(bytes.len());
        id
    }

    fn memory_size(&self) -> usize {
        self.table.allocation_size()
            + self.bytes.capacity()
            + self.offsets.capacity() * size_of::<usize>()
    }
}

/// Interns `(id_type, id_value)` pairs; types are interned separately (there
/// are few of them) and values live in one arena.
#[derive(Default)]
struct IdentifierInterner {
    types: ByteInterner,
    last_type: Option<u32>,
    hasher: DefaultHashBuilder,
    table: HashTable<Entry>,
    type_of: Vec<u32>,
    bytes: Vec<u8>,
    offsets: Vec<usize>,
}

impl IdentifierInterner {
    fn new() -> Self {
        Self {
            types: ByteInterner::new(),
            offsets: vec![0],
            ..Default::default()
        }
    }

    fn len(&self) -> usize {
        self.type_of.len()
    }

    fn get(&self, id: u32) -> (&[u8], &[u8]) {
        let i = id as usize;
        (
            self.types.get(self.type_of[i]),
            &self.bytes[self.offsets[i]..self.offsets[i + 1]],
        )
    }

    fn intern(&mut self, id_type: &[u8], value: &[u8]) -> u32 {
        // Few types, repeated row after row: compare with the last one
        // before hashing.
        let type_id = match self.last_type {
            Some(t) if self.types.get(t) == id_type => t,
            _ => {
                let t = self.types.intern(id_type);
                self.last_type = Some(t);
                t
            }
        };
        let hash = narrow(self.hasher.hash_one((type_id, value)));
        let Self {
            table,
            type_of,
            bytes,
            offsets,
            ..
        } = self;
        let found = table.find(widen(hash), |e| {
            let i = e.id as usize;
            e.hash == hash && type_of[i] == type_id && &bytes[offsets[i]..offsets[i + 1]] == value
        });
        if let Some(e) = found {
            return e.id;
        }
        let id = u32::try_from(type_of.len()).expect("more than 4 billion distinct identifiers");
        table.insert_unique(widen(hash), Entry { id, hash }, |e| widen(e.hash));
        type_of.push(type_id);
        bytes.extend_from_slice(value);
        offsets.push(bytes.len());
        id
    }

    fn memory_size(&self) -> usize {
        self.types.memory_size()
            + self.table.allocation_size()
            + self.type_of.capacity() * size_of::<u32>()
            + self.bytes.capacity()
            + self.offsets.capacity() * size_of::<usize>()
    }
}

/// Union-find over dense ids, with path compression and union by size.
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
        }
    }

    /// The root of `x`'s set; compresses the path to it.
    pub fn find(&mut self, x: u32) -> u32 {
        let mut root = x;
        while self.parent[root as usize] != root {
            root = self.parent[root as usize];
        }
        let mut x = x;
        while self.parent[x as usize] != root {
            let next = self.parent[x as usize];
            self.parent[x as usize] = root;
            x = next;
        }
        root
    }

    /// Merges the sets of `a` and `b`; returns the new root.
    pub fn union(&mut self, a: u32, b: u32) -> u32 {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return a;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
        a
    }

    /// Size of the set whose root is `root`.
    pub fn root_size(&self, root: u32) -> u32 {
        self.size[root as usize]
    }
}

/// A column of byte strings the builder reads rows from (an Arrow string
/// array of any layout in `stitch_identities`; plain vectors in tests).
pub trait ByteColumn: Sync {
    /// Number of rows.
    fn len(&self) -> usize;
    /// The bytes of row `i`, `None` for NULL.
    fn value(&self, i: usize) -> Option<&[u8]>;
    /// Whether the column has no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Rows of the input, column by column: `record_id`, `id_type`, `id_value`
/// (the same number of rows in each).
pub struct Rows<C> {
    pub record_id: C,
    pub id_type: C,
    pub id_value: C,
}

/// Interns records; remembers the previous row's record.
struct RecordInterner {
    records: ByteInterner,
    /// The record of the previous row: identifier tables list a record's
    /// identifiers one after the other, so most rows repeat it, and a
    /// comparison with bytes still in cache saves a hash table probe.
    last: Option<u32>,
}

impl RecordInterner {
    fn intern(&mut self, record_id: &[u8]) -> u32 {
        match self.last {
            Some(r) if self.records.get(r) == record_id => r,
            _ => {
                let r = self.records.intern(record_id);
                self.last = Some(r);
                r
            }
        }
    }

    /// The record of every row of `chunk`, in row order.
    fn intern_chunk<C: ByteColumn>(&mut self, chunk: &[Rows<C>]) -> Vec<Option<u32>> {
        let mut out = Vec::with_capacity(chunk.iter().map(|c| c.record_id.len()).sum());
        for rows in chunk {
            for i in 0..rows.record_id.len() {
                out.push(rows.record_id.value(i).map(|r| self.intern(r)));
            }
        }
        out
    }
}

impl IdentifierInterner {
    /// The identifier of every row of `chunk` that links its record: a
    /// record id, an id type and a non-empty id value.
    fn intern_chunk<C: ByteColumn>(&mut self, chunk: &[Rows<C>]) -> Vec<Option<u32>> {
        let mut out = Vec::with_capacity(chunk.iter().map(|c| c.record_id.len()).sum());
        for rows in chunk {
            for i in 0..rows.record_id.len() {
                let identifier = match (
                    rows.record_id.value(i),
                    rows.id_type.value(i),
                    rows.id_value.value(i),
                ) {
                    (Some(_), Some(t), Some(v)) if !v.is_empty() => Some(self.intern(t, v)),
                    _ => None,
                };
                out.push(identifier);
            }
        }
        out
    }
}

/// Accumulates input rows.
pub struct IdentityGraphBuilder {
    records: RecordInterner,
    identifiers: IdentifierInterner,
    /// `(identifier << 32) | record`
    links: Vec<u64>,
    rows: u64,
}

impl Default for IdentityGraphBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl IdentityGraphBuilder {
    pub fn new() -> Self {
        Self {
            records: RecordInterner {
                records: ByteInterner::new(),
                last: None,
            },
            identifiers: IdentifierInterner::new(),
            links: Vec::new(),
            rows: 0,
        }
    }

    /// Adds the rows of `chunk`. A NULL `record_id` ignores the row; a NULL
    /// `id_type`, or a NULL or empty `id_value`, registers the record
    /// without linking it.
    ///
    /// With `parallel`, records are interned on a second thread while this
    /// one interns the identifiers: the two hash tables are independent,
    /// and each still sees the rows in order, so the ids (and the result)
    /// are the same as without. Interning is most of the work and is bound
    /// by cache misses in tables of millions of entries; a spawn per chunk
    /// costs tens of microseconds, so give it chunks of tens of thousands of
    /// rows.
    pub fn add_chunk<C: ByteColumn>(&mut self, chunk: &[Rows<C>], parallel: bool) {
        let Self {
            records,
            identifiers,
            links,
            rows,
        } = self;
        let (record_of, identifier_of) = if parallel {
            std::thread::scope(|s| {
                let records = s.spawn(|| records.intern_chunk(chunk));
                let identifiers = identifiers.intern_chunk(chunk);
                let records = records
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (records, identifiers)
            })
        } else {
            (records.intern_chunk(chunk), identifiers.intern_chunk(chunk))
        };
        for (record, identifier) in record_of.into_iter().zip(identifier_of) {
            let Some(record) = record else { continue };
            *rows += 1;
            if let Some(identifier) = identifier {
                links.push(((identifier as u64) << 32) | record as u64);
            }
        }
    }

    /// Rows added so far (NULL record ids excluded).
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Approximate heap memory in use, in bytes.
    pub fn memory_size(&self) -> usize {
        self.records.records.memory_size()
            + self.identifiers.memory_size()
            + self.links.capacity() * size_of::<u64>()
    }

    /// Computes the connected components.
    pub fn finish(self, max_records_per_identifier: u64) -> IdentityGraph {
        let Self {
            records,
            identifiers,
            mut links,
            ..
        } = self;
        let records = records.records;
        links.sort_unstable();
        links.dedup();

        let mut uf = UnionFind::new(records.len());
        let mut dropped = Vec::new();
        let mut kept_identifiers = 0u64;
        let mut start = 0;
        while start < links.len() {
            let identifier = (links[start] >> 32) as u32;
            let mut end = start + 1;
            while end < links.len() && (links[end] >> 32) as u32 == identifier {
                end += 1;
            }
            let count = (end - start) as u64;
            if count > max_records_per_identifier {
                dropped.push((identifier, count));
            } else {
                kept_identifiers += 1;
                let first = links[start] as u32;
                for link in &links[start + 1..end] {
                    uf.union(first, *link as u32);
                }
            }
            start = end;
        }
        drop(links);

        // The person of a component is its smallest record id (byte order).
        let n = records.len();
        let mut smallest = vec![u32::MAX; n];
        let mut root_of = vec![0u32; n];
        for r in 0..n as u32 {
            let root = uf.find(r);
            root_of[r as usize] = root;
            let best = &mut smallest[root as usize];
            if *best == u32::MAX || records.get(r) < records.get(*best) {
                *best = r;
            }
        }
        let mut person = Vec::with_capacity(n);
        let mut cluster_size = Vec::with_capacity(n);
        for root in root_of {
            person.push(smallest[root as usize]);
            cluster_size.push(uf.root_size(root));
        }
        IdentityGraph {
            records,
            identifiers,
            person,
            cluster_size,
            dropped,
            kept_identifiers,
        }
    }
}

/// The result of identity stitching.
pub struct IdentityGraph {
    records: ByteInterner,
    identifiers: IdentifierInterner,
    person: Vec<u32>,
    cluster_size: Vec<u32>,
    dropped: Vec<(u32, u64)>,
    kept_identifiers: u64,
}

impl IdentityGraph {
    /// Number of distinct records.
    pub fn num_records(&self) -> usize {
        self.person.len()
    }

    /// `(record_id, person_id, cluster_size)` of the `i`-th distinct record
    /// (records are numbered in order of first appearance).
    pub fn record(&self, i: usize) -> (&[u8], &[u8], u64) {
        (
            self.records.get(i as u32),
            self.records.get(self.person[i]),
            self.cluster_size[i] as u64,
        )
    }

    /// Number of identifiers dropped by the over-merge guard.
    pub fn num_dropped(&self) -> usize {
        self.dropped.len()
    }

    /// `(id_type, id_value, record_count)` of the `i`-th dropped identifier.
    pub fn dropped(&self, i: usize) -> (&[u8], &[u8], u64) {
        let (identifier, count) = self.dropped[i];
        let (t, v) = self.identifiers.get(identifier);
        (t, v, count)
    }

    /// Number of distinct usable identifiers.
    pub fn num_identifiers(&self) -> usize {
        self.identifiers.len()
    }

    /// Number of identifiers that were used as links.
    pub fn num_kept_identifiers(&self) -> u64 {
        self.kept_identifiers
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    use super::*;

    type Row = (Option<String>, Option<String>, Option<String>);
    /// record -> (person, cluster size), and the dropped identifiers
    type Stitched = (
        BTreeMap<String, (String, u64)>,
        BTreeSet<(String, String, u64)>,
    );

    /// Naive reference: adjacency lists between records, BFS per component.
    fn reference(rows: &[Row], max: u64) -> Stitched {
        let mut records: BTreeSet<String> = BTreeSet::new();
        let mut by_identifier: HashMap<(String, String), BTreeSet<String>> = HashMap::new();
        for (r, t, v) in rows {
            let Some(r) = r else { continue };
            records.insert(r.clone());
            if let (Some(t), Some(v)) = (t, v)
                && !v.is_empty()
            {
                by_identifier
                    .entry((t.clone(), v.clone()))
                    .or_default()
                    .insert(r.clone());
            }
        }
        let mut adjacency: HashMap<String, Vec<String>> = HashMap::new();
        let mut dropped = BTreeSet::new();
        for ((t, v), members) in &by_identifier {
            if members.len() as u64 > max {
                dropped.insert((t.clone(), v.clone(), members.len() as u64));
                continue;
            }
            let members: Vec<&String> = members.iter().collect();
            for a in &members {
                for b in &members {
                    if a != b {
                        adjacency
                            .entry((*a).clone())
                            .or_default()
                            .push((*b).clone());
                    }
                }
            }
        }
        let mut result = BTreeMap::new();
        for start in &records {
            if result.contains_key(start) {
                continue;
            }
            let mut seen = BTreeSet::from([start.clone()]);
            let mut queue = VecDeque::from([start.clone()]);
            while let Some(x) = queue.pop_front() {
                for y in adjacency.get(&x).into_iter().flatten() {
                    if seen.insert(y.clone()) {
                        queue.push_back(y.clone());
                    }
                }
            }
            let person = seen.iter().next().unwrap().clone();
            for m in &seen {
                result.insert(m.clone(), (person.clone(), seen.len() as u64));
            }
        }
        (result, dropped)
    }

    /// One column of test rows.
    struct Col(Vec<Option<Vec<u8>>>);

    impl ByteColumn for Col {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn value(&self, i: usize) -> Option<&[u8]> {
            self.0[i].as_deref()
        }
    }

    /// Rows cut into pieces of `piece` rows (one `Rows` each), `per_chunk`
    /// pieces per chunk.
    fn chunks(rows: &[Row], piece: usize, per_chunk: usize) -> Vec<Vec<Rows<Col>>> {
        let col = |rows: &[Row], f: fn(&Row) -> &Option<String>| {
            Col(rows
                .iter()
                .map(|r| f(r).as_ref().map(|s| s.as_bytes().to_vec()))
                .collect())
        };
        let pieces: Vec<Rows<Col>> = rows
            .chunks(piece)
            .map(|p| Rows {
                record_id: col(p, |r| &r.0),
                id_type: col(p, |r| &r.1),
                id_value: col(p, |r| &r.2),
            })
            .collect();
        let mut out = vec![];
        let mut pieces = pieces.into_iter().peekable();
        while pieces.peek().is_some() {
            out.push(pieces.by_ref().take(per_chunk).collect());
        }
        out
    }

    fn stitch(rows: &[Row], max: u64, chunked: &[Vec<Rows<Col>>], parallel: bool) -> Stitched {
        let mut b = IdentityGraphBuilder::new();
        for chunk in chunked {
            b.add_chunk(chunk, parallel);
        }
        assert_eq!(
            b.rows(),
            rows.iter().filter(|r| r.0.is_some()).count() as u64
        );
        let g = b.finish(max);
        let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        let mut out = BTreeMap::new();
        for i in 0..g.num_records() {
            let (r, p, c) = g.record(i);
            assert!(out.insert(s(r), (s(p), c)).is_none(), "duplicate record");
        }
        let dropped = (0..g.num_dropped())
            .map(|i| {
                let (t, v, c) = g.dropped(i);
                (s(t), s(v), c)
            })
            .collect();
        (out, dropped)
    }

    /// Stitches `rows` in one chunk on one thread, and in chunks of several
    /// pieces on two threads: both must agree.
    fn run(rows: &[Row], max: u64) -> Stitched {
        let serial = stitch(rows, max, &chunks(rows, rows.len().max(1), 1), false);
        let parallel = stitch(rows, max, &chunks(rows, 7, 3), true);
        assert_eq!(serial, parallel, "serial and parallel interning differ");
        serial
    }

    fn row(r: &str, t: &str, v: &str) -> Row {
        (Some(r.into()), Some(t.into()), Some(v.into()))
    }

    #[test]
    fn small_example() {
        let rows = vec![
            row("r3", "email", "a@x.com"),
            row("r1", "email", "a@x.com"),
            row("r1", "phone", "+331"),
            row("r7", "phone", "+331"),
            row("r9", "email", "z@x.com"),
            (Some("r5".into()), Some("email".into()), None),
            row("r6", "email", ""),
            (None, Some("email".into()), Some("a@x.com".into())),
            // same value, different type: no link with r1/r3
            row("r8", "phone", "a@x.com"),
        ];
        let (out, dropped) = run(&rows, 100);
        let expected: BTreeMap<String, (String, u64)> = [
            ("r1", "r1", 3),
            ("r3", "r1", 3),
            ("r7", "r1", 3),
            ("r9", "r9", 1),
            ("r5", "r5", 1),
            ("r6", "r6", 1),
            ("r8", "r8", 1),
        ]
        .into_iter()
        .map(|(a, b, c)| (a.to_string(), (b.to_string(), c)))
        .collect();
        assert_eq!(out, expected);
        assert!(dropped.is_empty());
    }

    #[test]
    fn runs_of_one_record_and_of_one_type() {
        // The builder remembers the previous row's record and type: runs,
        // a record coming back after another, types that are prefixes of
        // each other, and NULLs between rows of a run.
        let rows = vec![
            row("a", "email", "x"),
            row("a", "phone", "1"),
            row("a", "phone", "1"),
            (None, Some("phone".into()), Some("2".into())),
            row("a", "e", "x"),
            row("b", "emai", "x"),
            row("b", "phone", "2"),
            row("a", "email", "y"),
            row("c", "e", "x"),
            (Some("c".into()), None, Some("x".into())),
            row("c", "phone", "2"),
            row("d", "email", "y"),
            row("ab", "email", "q"),
        ];
        let expected = reference(&rows, 100);
        assert_eq!(run(&rows, 100), expected);
        // a, c (e/x), b (phone 2 with c), d (email y with a); ab alone.
        let person = |r: &str| expected.0[r].clone();
        for r in ["a", "b", "c", "d"] {
            assert_eq!(person(r), ("a".into(), 4), "{r}");
        }
        assert_eq!(person("ab"), ("ab".into(), 1));
    }

    #[test]
    fn over_merge_guard_counts_distinct_records() {
        let mut rows = vec![];
        for i in 0..4 {
            rows.push(row(&format!("r{i}"), "device", "shared"));
            // duplicates do not count twice
            rows.push(row(&format!("r{i}"), "device", "shared"));
        }
        rows.push(row("r0", "email", "e"));
        rows.push(row("r1", "email", "e"));
        let (out, dropped) = run(&rows, 3);
        assert_eq!(
            dropped,
            BTreeSet::from([("device".into(), "shared".into(), 4)])
        );
        assert_eq!(out["r0"], ("r0".into(), 2));
        assert_eq!(out["r1"], ("r0".into(), 2));
        assert_eq!(out["r2"], ("r2".into(), 1));
        let (out, dropped) = run(&rows, 4);
        assert!(dropped.is_empty());
        assert_eq!(out["r3"], ("r0".into(), 4));
    }

    #[test]
    fn empty_input() {
        let (out, dropped) = run(&[], 100);
        assert!(out.is_empty() && dropped.is_empty());
    }

    #[test]
    fn byte_order_and_unicode() {
        let rows = vec![
            row("b", "k", "1"),
            row("B", "k", "1"),
            row("é", "k", "1"),
            row("aa", "k", "1"),
        ];
        let (out, _) = run(&rows, 100);
        // 'B' (0x42) < 'aa' (0x61) < 'b' < 'é' (0xC3)
        assert!(out.values().all(|(p, c)| p == "B" && *c == 4));
    }

    #[test]
    fn long_chain() {
        let n = 200_000;
        let mut rows = Vec::with_capacity(2 * n);
        for i in 0..n {
            rows.push(row(&format!("rec{i:07}"), "link", &i.to_string()));
            rows.push(row(&format!("rec{:07}", i + 1), "link", &i.to_string()));
        }
        rows.reverse();
        let (out, _) = run(&rows, 2);
        assert_eq!(out.len(), n + 1);
        assert!(
            out.values()
                .all(|(p, c)| p == "rec0000000" && *c == (n + 1) as u64)
        );
    }

    fn random_rows(rng: &mut StdRng, records: usize, rows: usize) -> Vec<Row> {
        let types = ["email", "phone", "device", "cookie"];
        let mut out = Vec::with_capacity(rows + records);
        for _ in 0..rows {
            let r = rng.random_range(0..records);
            let record = if rng.random_ratio(1, 50) {
                None
            } else {
                Some(format!("r{r}"))
            };
            let t = if rng.random_ratio(1, 80) {
                None
            } else {
                Some(types[rng.random_range(0..types.len())].to_string())
            };
            let v = match rng.random_range(0..100) {
                0..3 => None,
                3..5 => Some(String::new()),
                // a few hub values shared by many records
                5..8 => Some("hub".to_string()),
                _ => Some(format!("v{}", rng.random_range(0..records))),
            };
            out.push((record, t, v));
        }
        // long chain
        for i in 0..records / 10 {
            out.push(row(&format!("c{i}"), "chain", &format!("x{i}")));
            out.push(row(&format!("c{}", i + 1), "chain", &format!("x{i}")));
        }
        // star
        for i in 0..records / 20 {
            out.push(row(&format!("s{i}"), "email", "star@example.com"));
            out.push(row("star-center", "device", &format!("d{i}")));
            out.push(row(&format!("s{i}"), "device", &format!("d{i}")));
        }
        // self links and duplicates
        for i in 0..records / 10 {
            out.push(row(&format!("r{i}"), "email", &format!("self{i}")));
            out.push(row(&format!("r{i}"), "email", &format!("self{i}")));
        }
        out
    }

    #[test]
    fn random_graphs_match_reference_and_are_order_independent() {
        let mut rng = StdRng::seed_from_u64(42);
        for (records, rows, max) in [
            (10, 30, 100),
            (50, 200, 3),
            (300, 600, 5),
            (2_000, 3_000, 10),
            (1_000, 5_000, 1),
        ] {
            let mut input = random_rows(&mut rng, records, rows);
            let expected = reference(&input, max);
            let got = run(&input, max);
            assert_eq!(got, expected, "records={records} rows={rows} max={max}");
            input.shuffle(&mut rng);
            assert_eq!(run(&input, max), expected, "shuffled");
        }
    }

    #[test]
    fn union_find_basics() {
        let mut uf = UnionFind::new(6);
        uf.union(0, 1);
        uf.union(2, 3);
        uf.union(1, 3);
        assert_eq!(uf.find(0), uf.find(2));
        assert_ne!(uf.find(0), uf.find(4));
        let root = uf.find(3);
        assert_eq!(uf.root_size(root), 4);
        assert_eq!(uf.union(5, 5), 5);
    }
}
