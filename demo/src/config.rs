//! The configuration shared by the generation tasks and the identifiers
//! derived from it (profile ids, device ids).

use chrono::{Datelike, NaiveDate};

use crate::random::{Perm, STREAM_KEYS, digits, epoch_days, mix64, sub_seed, write_digits};
use crate::{DemoError, DemoOptions, EventOrder, MAX_PROFILES};

/// Everything derived from the options that the generation tasks share.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) seed: u64,
    pub(crate) profiles: u64,
    /// Anonymous devices (visitors never identified).
    pub(crate) anon_pool: u64,
    pub(crate) end_date: NaiveDate,
    pub(crate) end_day: i32,
    device_key: u64,
    pub(crate) email_perm: Perm,
    pub(crate) phone_perm: Perm,
    pub(crate) customer_perm: Perm,
    pub(crate) customer_width: usize,
    pub(crate) record_width: usize,
    pub(crate) event_order: EventOrder,
    pub(crate) event_row_group_rows: usize,
}

impl Config {
    pub(crate) fn new(opts: &DemoOptions) -> Result<Self, DemoError> {
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
    pub(crate) fn device_id(&self, device: u32, out: &mut [u8; 36]) {
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

pub(crate) fn profile_id(idx: u32, out: &mut [u8; 10]) {
    out[0] = b'p';
    write_digits(&mut out[1..], u64::from(idx) + 1);
}
