//! Seeds, random streams and small numeric helpers.
//!
//! Every random stream is a [`StdRng`] seeded from the options' seed, a
//! stream kind and an index (a chunk of profiles, a day), so that streams
//! are independent of each other and of the order they run in.

use std::f64::consts::TAU;

use chrono::{Datelike, NaiveDate};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub(crate) const STREAM_PEOPLE: u64 = 1;
pub(crate) const STREAM_DAY: u64 = 2;
pub(crate) const STREAM_KEYS: u64 = 3;

/// splitmix64's finalizer: a bijection of u64 with good mixing.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(crate) fn sub_seed(seed: u64, stream: u64, index: u64) -> u64 {
    mix64(mix64(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)).wrapping_add(index))
}

pub(crate) fn stream_rng(seed: u64, stream: u64, index: u64) -> StdRng {
    StdRng::seed_from_u64(sub_seed(seed, stream, index))
}

/// An affine permutation of `0..m` (a bijection when gcd(a, m) = 1).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Perm {
    a: u64,
    b: u64,
    m: u64,
}

impl Perm {
    pub(crate) fn new(a: u64, key: u64, m: u64) -> Self {
        Self { a, b: key % m, m }
    }

    pub(crate) fn apply(&self, i: u64) -> u64 {
        ((u128::from(i) * u128::from(self.a) + u128::from(self.b)) % u128::from(self.m)) as u64
    }
}

pub(crate) fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

pub(crate) fn epoch_days(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - 719_163
}

pub(crate) fn unit(rng: &mut StdRng) -> f64 {
    rng.random::<f64>()
}

/// Standard normal deviate (Box-Muller).
pub(crate) fn normal(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - unit(rng);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
}

/// Number of failures before the first success, success probability `p`.
pub(crate) fn geometric(rng: &mut StdRng, p: f64) -> u64 {
    let u = 1.0 - unit(rng);
    let g = (u.ln() / (1.0 - p).ln()).floor();
    if g.is_finite() && g >= 0.0 {
        g as u64
    } else {
        u64::MAX / 4
    }
}

pub(crate) fn poisson(rng: &mut StdRng, lambda: f64) -> u64 {
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

pub(crate) fn weighted(rng: &mut StdRng, weights: &[f64]) -> usize {
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

pub(crate) fn weighted_by<T>(rng: &mut StdRng, items: &[T], weight: impl Fn(&T) -> f64) -> usize {
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

pub(crate) fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

pub(crate) fn prob_u16(p: f64) -> u16 {
    (p.clamp(0.0, 1.0) * 65535.0).round() as u16
}

/// Writes `n` zero-padded into the whole of `out` (ASCII digits).
pub(crate) fn write_digits(out: &mut [u8], mut n: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

pub(crate) fn ascii(buf: &[u8]) -> &str {
    std::str::from_utf8(buf).expect("generated identifiers are ASCII")
}
