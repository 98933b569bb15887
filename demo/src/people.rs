//! People: profiles and the identifier records of the source systems
//! (CRM, web, app, store), with identifiers typed the way people type them.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanBuilder, Date32Builder, Int32Builder, StringBuilder};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::config::{Config, profile_id};
use crate::random::{
    STREAM_PEOPLE, ascii, epoch_days, normal, pick, prob_u16, stream_rng, unit, weighted,
    weighted_by, write_digits,
};
use crate::reference::{CATEGORY_WEIGHTS, COUNTRIES, JUNK_EMAILS, SHOP_PHONES, US_AREA_CODES};
use crate::write::{encode, profiles_props};
use crate::{DemoError, ID_TYPES, IDENTIFIER_SOURCES, identifiers_schema, profiles_schema};

// Profile flags.
pub(crate) const CONSENT_EMAIL: u8 = 1;
pub(crate) const CONSENT_SMS: u8 = 2;
pub(crate) const CONSENT_PUSH: u8 = 4;
pub(crate) const CONSENT_ADS: u8 = 8;
const HAS_WEB: u8 = 16;
pub(crate) const HAS_APP: u8 = 32;
const STORE_SHOPPER: u8 = 64;

/// The compact per-profile state kept for the event generation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProfileState {
    pub(crate) signup_day: i32,
    flags: u8,
    pub(crate) fav_cat: u8,
    /// Cumulative thresholds (out of 65535) of the session kinds web | app | store | ads.
    mix: [u16; 3],
    /// Engagement probabilities (out of 65535).
    pub(crate) email_open: u16,
    pub(crate) email_click: u16,
    pub(crate) sms_click: u16,
    pub(crate) push_open: u16,
    pub(crate) ad_click: u16,
    /// Purchase propensity, in thousandths (1000 = average).
    pub(crate) propensity: u16,
}

impl ProfileState {
    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionKind {
    Web,
    App,
    Store,
    Ads,
}

impl ProfileState {
    pub(crate) fn session_kind(&self, r: u16) -> SessionKind {
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

pub(crate) struct PeopleChunk {
    pub(crate) profiles: Vec<u8>,
    pub(crate) identifiers: Vec<u8>,
    pub(crate) identifier_rows: u64,
    pub(crate) states: Vec<ProfileState>,
    pub(crate) activity: Vec<f32>,
    pub(crate) counters: [u64; 4],
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
pub(crate) fn people_chunk(
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use rand::SeedableRng;

    use super::*;
    use crate::DemoOptions;

    #[test]
    fn identifiers_are_unique() {
        let cfg = Config::new(&DemoOptions {
            profiles: 1000,
            seed: 1,
            days: 1,
            ..DemoOptions::default()
        })
        .unwrap();
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
}
