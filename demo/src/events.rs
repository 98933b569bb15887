//! Events: sessions drawn by activity level, anonymous visitors and message
//! campaigns, with seasonality, generated one day at a time.

use std::sync::Arc;

use arrow::array::{Float64Builder, StringBuilder, TimestampMicrosecondArray, new_null_array};
use arrow::datatypes::{DataType, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use chrono::{Datelike, Days, NaiveDate, Weekday};
use rand::Rng;
use rand::rngs::StdRng;

use crate::config::{Config, profile_id};
use crate::people::{
    CONSENT_ADS, CONSENT_EMAIL, CONSENT_PUSH, CONSENT_SMS, HAS_APP, ProfileState, SessionKind,
};
use crate::random::{
    STREAM_DAY, ascii, epoch_days, geometric, poisson, stream_rng, unit, weighted, write_digits,
};
use crate::reference::{
    AD_CLICK, AD_IMPRESSION, ADD_TO_CART, ADS, APP, CATEGORY_CODES, CATEGORY_WEIGHTS, EMAIL,
    EMAIL_CLICK, EMAIL_OPEN, EMAIL_SENT, PAGE_VIEW, PRODUCT_VIEW, PRODUCTS_PER_CATEGORY, PURCHASE,
    PUSH, PUSH_OPEN, PUSH_SENT, SMS, SMS_CLICK, SMS_SENT, SOURCE_OF_CHANNEL, STORE, STORE_VISIT,
    WEB, product_price_cents,
};
use crate::write::{encode, events_props};
use crate::{CATEGORIES, CHANNELS, DemoError, EVENT_TYPES, EventOrder, events_schema};

const DAY_US: u64 = 86_400_000_000;
const MINUTE_US: u64 = 60_000_000;
const SECOND_US: u64 = 1_000_000;
const NONE: u32 = u32::MAX;
const NO_CAT: u8 = u8::MAX;

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
pub(crate) struct EventCtx {
    cfg: Arc<Config>,
    states: Vec<ProfileState>,
    alias: Alias,
    season_norm: (f64, f64),
    web_hours: Hours,
    app_hours: Hours,
    store_hours: Hours,
}

impl EventCtx {
    pub(crate) fn new(cfg: Arc<Config>, states: Vec<ProfileState>, activity: &[f32]) -> Self {
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

    pub(crate) fn day_file(&self, date: NaiveDate) -> Result<(Vec<u8>, u64), DemoError> {
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
