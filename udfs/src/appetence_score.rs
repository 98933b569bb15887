//! `appetence_score(is_engagement, event_time, as_of, half_life_days) -> DOUBLE`:
//! the time-decayed, smoothed engagement rate of a profile on a channel.
//!
//! Each usable row weighs `w = 0.5 ^ (age_days / half_life_days)` with
//! `age_days = (as_of - event_time)` in fractional days. `E` sums the weights
//! of engagement rows, `S` those of exposure rows, and the score is
//! `min(1, (E + 1) / (S + 2))` (0.5 for a group without usable rows).
//!
//! The intermediate state is `(E, S)`, two `Float64` fields that add up
//! across partitions, so the function works as a grouped aggregate over
//! millions of groups with 16 bytes of state per group
//! ([`AppetenceGroupsAccumulator`]).

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use arrow::buffer::NullBuffer;
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field, FieldRef, Float64Type, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::{ScalarValue, exec_err, not_impl_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
    Signature, Volatility,
};

use crate::docs::SECTION_AGGREGATE;

/// Nanoseconds in one day.
const NANOS_PER_DAY: f64 = 86_400.0 * 1e9;

/// The score of a state `(E, S)`.
pub fn score(engagement: f64, exposure: f64) -> f64 {
    ((engagement + 1.0) / (exposure + 2.0)).min(1.0)
}

/// Weight of a row `age_days` old.
pub fn weight(age_days: f64, half_life_days: f64) -> f64 {
    (-age_days / half_life_days).exp2()
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        SECTION_AGGREGATE,
        "Returns the time-decayed, smoothed engagement rate of a group of events \
         (typically one profile on one channel), between 0 and 1. \
         Each row weighs `w = 0.5 ^ (age_days / half_life_days)` with \
         `age_days = as_of - event_time` in fractional days: an event `half_life_days` old \
         counts half as much as one at `as_of`. With `E` the sum of the weights of the \
         engagement rows (`is_engagement` true) and `S` the sum of the weights of the \
         exposure rows (`is_engagement` false), the result is `min(1, (E + 1) / (S + 2))`: \
         a group without any usable row gives 0.5. Rows with a NULL argument or with \
         `event_time > as_of` are ignored. `as_of` and `half_life_days` are meant to be \
         constant within a group (they are read row by row); a `half_life_days` <= 0 is an \
         error. Timestamps of any unit are accepted; when `event_time` and `as_of` have \
         different time zones, `as_of` is converted to the time zone of `event_time`.",
        "appetence_score(is_engagement, event_time, as_of, half_life_days)",
    )
    .with_sql_example(
        r#"```sql
> SELECT profile_id, channel,
         appetence_score(
           event_type IN ('email_open', 'email_click', 'sms_click', 'push_open', 'ad_click'),
           event_time, TIMESTAMP '2026-11-01 00:00:00', 30) AS appetence
  FROM events
  GROUP BY 1, 2;
```
For one profile with an email sent on 2026-10-02 (30 days before `as_of`: w = 0.5), an email sent on 2026-11-01 (w = 1) and an open on 2026-11-01 (w = 1): E = 1, S = 1.5, score = (1 + 1) / (1.5 + 2) = 0.5714285714285714."#,
    )
    .with_argument(
        "is_engagement",
        "Boolean: true for an engagement event (open, click, ...), false for an exposure \
         (send, impression, ...).",
    )
    .with_argument("event_time", "Timestamp of the event (any unit and time zone).")
    .with_argument(
        "as_of",
        "Timestamp the ages are measured from; events after it are ignored.",
    )
    .with_argument(
        "half_life_days",
        "Half-life of an event's weight in days, any numeric expression > 0 (coerced to DOUBLE).",
    )
    .build()
});

/// Implementation of `appetence_score`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AppetenceScore {
    signature: Signature,
}

impl Default for AppetenceScore {
    fn default() -> Self {
        Self::new()
    }
}

impl AppetenceScore {
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// `appetence_score` as an [`AggregateUDF`].
pub fn appetence_score_udaf() -> Arc<AggregateUDF> {
    Arc::new(AggregateUDF::new_from_impl(AppetenceScore::new()))
}

fn coerce_timestamp(t: &DataType, what: &str) -> Result<DataType> {
    match t {
        DataType::Timestamp(_, _) => Ok(t.clone()),
        DataType::Date32 | DataType::Date64 => Ok(DataType::Timestamp(TimeUnit::Millisecond, None)),
        DataType::Null | DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            Ok(DataType::Timestamp(TimeUnit::Nanosecond, None))
        }
        t => plan_err!("appetence_score expects a timestamp {what}, got {t}"),
    }
}

impl AggregateUDFImpl for AppetenceScore {
    fn name(&self) -> &str {
        "appetence_score"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [is_engagement, event_time, as_of, half_life] = arg_types else {
            return plan_err!(
                "appetence_score expects 4 arguments (is_engagement, event_time, as_of, \
                 half_life_days), got {}",
                arg_types.len()
            );
        };
        let is_engagement = match is_engagement {
            DataType::Boolean | DataType::Null => DataType::Boolean,
            t => return plan_err!("appetence_score expects a boolean is_engagement, got {t}"),
        };
        let event_time = coerce_timestamp(event_time, "event_time")?;
        let as_of = match (coerce_timestamp(as_of, "as_of")?, &event_time) {
            // Same time zone as the events, so that both are compared as DataFusion
            // compares them.
            (DataType::Timestamp(unit, tz), DataType::Timestamp(_, event_tz))
                if tz != *event_tz =>
            {
                DataType::Timestamp(unit, event_tz.clone())
            }
            (t, _) => t,
        };
        let half_life = match half_life {
            t if t.is_numeric() || t.is_null() => DataType::Float64,
            t => return plan_err!("appetence_score expects a numeric half_life_days, got {t}"),
        };
        Ok(vec![is_engagement, event_time, as_of, half_life])
    }

    fn accumulator(&self, acc_args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        if acc_args.is_distinct {
            return not_impl_err!("appetence_score(DISTINCT ...) is not supported");
        }
        Ok(Box::new(AppetenceAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "engagement_weight"),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "exposure_weight"),
                DataType::Float64,
                true,
            )),
        ])
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs<'_>) -> bool {
        !args.is_distinct
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs<'_>,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if args.is_distinct {
            return not_impl_err!("appetence_score(DISTINCT ...) is not supported");
        }
        Ok(Box::new(AppetenceGroupsAccumulator::default()))
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(Some(score(0.0, 0.0))))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

/// A timestamp column read as raw values plus their scale.
struct TimestampColumn<'a> {
    values: &'a [i64],
    nulls: Option<&'a NullBuffer>,
    nanos_per_unit: i128,
}

impl TimestampColumn<'_> {
    fn is_null(&self, i: usize) -> bool {
        self.nulls.is_some_and(|n| n.is_null(i))
    }

    fn nanos(&self, i: usize) -> i128 {
        self.values[i] as i128 * self.nanos_per_unit
    }
}

fn timestamp_column<'a>(array: &'a ArrayRef, what: &str) -> Result<TimestampColumn<'a>> {
    macro_rules! column {
        ($t:ty, $scale:expr) => {{
            let a = array.as_primitive::<$t>();
            TimestampColumn {
                values: a.values(),
                nulls: a.nulls(),
                nanos_per_unit: $scale,
            }
        }};
    }
    Ok(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => column!(TimestampSecondType, 1_000_000_000),
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            column!(TimestampMillisecondType, 1_000_000)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            column!(TimestampMicrosecondType, 1_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => column!(TimestampNanosecondType, 1),
        t => return exec_err!("appetence_score: {what} must be a timestamp, got {t}"),
    })
}

/// Calls `f(row, is_engagement, weight)` for every usable row of a batch of
/// arguments; validates `half_life_days`.
fn for_each_usable_row(
    values: &[ArrayRef],
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, bool, f64),
) -> Result<()> {
    let [is_engagement, event_time, as_of, half_life] = values else {
        return exec_err!("appetence_score expects 4 arguments, got {}", values.len());
    };
    let is_engagement = match is_engagement.data_type() {
        DataType::Boolean => Arc::clone(is_engagement),
        _ => cast(is_engagement, &DataType::Boolean)?,
    };
    let is_engagement = is_engagement.as_boolean();
    let half_life = match half_life.data_type() {
        DataType::Float64 => Arc::clone(half_life),
        _ => cast(half_life, &DataType::Float64)?,
    };
    let half_life = half_life.as_primitive::<Float64Type>();
    let event_time = timestamp_column(event_time, "event_time")?;
    let as_of = timestamp_column(as_of, "as_of")?;

    for row in 0..is_engagement.len() {
        if let Some(filter) = filter
            && !(filter.is_valid(row) && filter.value(row))
        {
            continue;
        }
        if half_life.is_null(row) {
            continue;
        }
        let half_life = half_life.value(row);
        // also rejects NaN
        if half_life.is_nan() || half_life <= 0.0 {
            return exec_err!("appetence_score: half_life_days must be > 0, got {half_life}");
        }
        if is_engagement.is_null(row) || event_time.is_null(row) || as_of.is_null(row) {
            continue;
        }
        let (event_time, as_of) = (event_time.nanos(row), as_of.nanos(row));
        if event_time > as_of {
            continue;
        }
        let age_days = (as_of - event_time) as f64 / NANOS_PER_DAY;
        f(row, is_engagement.value(row), weight(age_days, half_life));
    }
    Ok(())
}

fn add_states(states: &[ArrayRef], mut f: impl FnMut(usize, f64, f64)) -> Result<()> {
    let [engagement, exposure] = states else {
        return exec_err!(
            "appetence_score expects 2 state columns, got {}",
            states.len()
        );
    };
    let engagement = engagement.as_primitive::<Float64Type>();
    let exposure = exposure.as_primitive::<Float64Type>();
    for row in 0..engagement.len() {
        let e = if engagement.is_null(row) {
            0.0
        } else {
            engagement.value(row)
        };
        let s = if exposure.is_null(row) {
            0.0
        } else {
            exposure.value(row)
        };
        f(row, e, s);
    }
    Ok(())
}

/// Single-group accumulator.
#[derive(Debug, Default)]
pub struct AppetenceAccumulator {
    engagement: f64,
    exposure: f64,
}

impl Accumulator for AppetenceAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for_each_usable_row(values, None, |_, is_engagement, w| {
            if is_engagement {
                self.engagement += w;
            } else {
                self.exposure += w;
            }
        })
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(Some(score(
            self.engagement,
            self.exposure,
        ))))
    }

    fn size(&self) -> usize {
        size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(Some(self.engagement)),
            ScalarValue::Float64(Some(self.exposure)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        add_states(states, |_, e, s| {
            self.engagement += e;
            self.exposure += s;
        })
    }
}

/// Accumulator of many groups: two `f64` per group.
#[derive(Debug, Default)]
pub struct AppetenceGroupsAccumulator {
    engagement: Vec<f64>,
    exposure: Vec<f64>,
}

impl AppetenceGroupsAccumulator {
    fn resize(&mut self, total_num_groups: usize) {
        self.engagement.resize(total_num_groups, 0.0);
        self.exposure.resize(total_num_groups, 0.0);
    }
}

impl GroupsAccumulator for AppetenceGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let (engagement, exposure) = (&mut self.engagement, &mut self.exposure);
        for_each_usable_row(values, opt_filter, |row, is_engagement, w| {
            let group = group_indices[row];
            if is_engagement {
                engagement[group] += w;
            } else {
                exposure[group] += w;
            }
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let engagement = emit_to.take_needed(&mut self.engagement);
        let exposure = emit_to.take_needed(&mut self.exposure);
        let scores = engagement.iter().zip(&exposure).map(|(e, s)| score(*e, *s));
        Ok(Arc::new(Float64Array::from_iter_values(scores)))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let engagement = emit_to.take_needed(&mut self.engagement);
        let exposure = emit_to.take_needed(&mut self.exposure);
        Ok(vec![
            Arc::new(Float64Array::from(engagement)),
            Arc::new(Float64Array::from(exposure)),
        ])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let (engagement, exposure) = (&mut self.engagement, &mut self.exposure);
        add_states(values, |row, e, s| {
            let group = group_indices[row];
            engagement[group] += e;
            exposure[group] += s;
        })
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = values.first().map(|v| v.len()).unwrap_or(0);
        let mut engagement = vec![0.0; rows];
        let mut exposure = vec![0.0; rows];
        for_each_usable_row(values, opt_filter, |row, is_engagement, w| {
            if is_engagement {
                engagement[row] = w;
            } else {
                exposure[row] = w;
            }
        })?;
        Ok(vec![
            Arc::new(Float64Array::from(engagement)),
            Arc::new(Float64Array::from(exposure)),
        ])
    }

    fn size(&self) -> usize {
        (self.engagement.capacity() + self.exposure.capacity()) * size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{TimestampMicrosecondArray, TimestampNanosecondArray, TimestampSecondArray};
    use datafusion::prelude::SessionConfig;

    use super::*;

    const DAY_NS: i64 = 86_400_000_000_000;
    /// 2026-11-01T00:00:00Z in nanoseconds
    const AS_OF: i64 = 1_793_491_200 * 1_000_000_000;

    fn args(eng: Vec<Option<bool>>, event_ns: Vec<Option<i64>>, half_life: f64) -> Vec<ArrayRef> {
        let n = eng.len();
        vec![
            Arc::new(BooleanArray::from(eng)),
            Arc::new(TimestampNanosecondArray::from(event_ns)),
            Arc::new(TimestampNanosecondArray::from(vec![AS_OF; n])),
            Arc::new(Float64Array::from(vec![half_life; n])),
        ]
    }

    fn eval(values: &[ArrayRef]) -> Result<f64> {
        let mut acc = AppetenceAccumulator::default();
        acc.update_batch(values)?;
        match acc.evaluate()? {
            ScalarValue::Float64(Some(v)) => Ok(v),
            other => panic!("{other:?}"),
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn empty_group_is_one_half() {
        assert_eq!(eval(&args(vec![], vec![], 30.0)).unwrap(), 0.5);
        let mut acc = AppetenceAccumulator::default();
        assert_eq!(acc.evaluate().unwrap(), ScalarValue::Float64(Some(0.5)));
    }

    #[test]
    fn weights_and_formula() {
        // exposure 30 days old (w = 0.5), exposure at as_of (w = 1), open at as_of (w = 1)
        // E = 1, S = 1.5 -> (1 + 1) / (1.5 + 2) = 4/7
        let v = eval(&args(
            vec![Some(false), Some(false), Some(true)],
            vec![Some(AS_OF - 30 * DAY_NS), Some(AS_OF), Some(AS_OF)],
            30.0,
        ))
        .unwrap();
        assert!(close(v, 4.0 / 7.0), "{v}");
        // fractional days: 12 hours with a half-life of 1 day -> w = 0.5^0.5
        let v = eval(&args(vec![Some(true)], vec![Some(AS_OF - DAY_NS / 2)], 1.0)).unwrap();
        assert!(close(v, (0.5f64.sqrt() + 1.0) / 2.0), "{v}");
    }

    #[test]
    fn capped_at_one() {
        // three fresh engagements, no exposure: (3 + 1) / 2 = 2 -> 1
        let v = eval(&args(vec![Some(true); 3], vec![Some(AS_OF); 3], 30.0)).unwrap();
        assert_eq!(v, 1.0);
    }

    #[test]
    fn nulls_and_future_rows_are_ignored() {
        let v = eval(&args(
            vec![None, Some(true), Some(false), Some(true)],
            vec![Some(AS_OF), None, Some(AS_OF + 1), Some(AS_OF)],
            30.0,
        ))
        .unwrap();
        // only the last row: E = 1 -> 2 / 2 = 1
        assert_eq!(v, 1.0);

        // NULL half-life or as_of: ignored
        let mut values = args(vec![Some(true)], vec![Some(AS_OF)], 30.0);
        values[3] = Arc::new(Float64Array::from(vec![None::<f64>]));
        assert_eq!(eval(&values).unwrap(), 0.5);
        let mut values = args(vec![Some(true)], vec![Some(AS_OF)], 30.0);
        values[2] = Arc::new(TimestampNanosecondArray::from(vec![None::<i64>]));
        assert_eq!(eval(&values).unwrap(), 0.5);
    }

    #[test]
    fn invalid_half_life() {
        for hl in [0.0, -1.0, f64::NAN] {
            let err = eval(&args(vec![Some(true)], vec![Some(AS_OF)], hl)).unwrap_err();
            assert!(
                err.to_string().contains("half_life_days must be > 0"),
                "{err}"
            );
        }
    }

    #[test]
    fn mixed_units() {
        // event in seconds, as_of in microseconds: 60 days old with a 30-day half-life
        let values: Vec<ArrayRef> = vec![
            Arc::new(BooleanArray::from(vec![false])),
            Arc::new(TimestampSecondArray::from(vec![
                AS_OF / 1_000_000_000 - 60 * 86_400,
            ])),
            Arc::new(TimestampMicrosecondArray::from(vec![AS_OF / 1_000]).with_timezone("UTC")),
            Arc::new(Float64Array::from(vec![30.0])),
        ];
        // S = 0.25 -> 1 / 2.25
        assert!(close(eval(&values).unwrap(), 1.0 / 2.25));
    }

    #[test]
    fn state_merge_matches_single_pass() {
        let all = args(
            vec![
                Some(true),
                Some(false),
                Some(false),
                Some(true),
                Some(false),
            ],
            vec![
                Some(AS_OF - 3 * DAY_NS),
                Some(AS_OF - 10 * DAY_NS),
                Some(AS_OF - DAY_NS / 3),
                Some(AS_OF - 45 * DAY_NS),
                Some(AS_OF),
            ],
            14.0,
        );
        let expected = eval(&all).unwrap();
        let mut merged = AppetenceAccumulator::default();
        for (start, len) in [(0, 2), (2, 3)] {
            let part: Vec<ArrayRef> = all.iter().map(|a| a.slice(start, len)).collect();
            let mut acc = AppetenceAccumulator::default();
            acc.update_batch(&part).unwrap();
            let state: Vec<ArrayRef> = acc
                .state()
                .unwrap()
                .iter()
                .map(|s| s.to_array().unwrap())
                .collect();
            merged.merge_batch(&state).unwrap();
        }
        let ScalarValue::Float64(Some(v)) = merged.evaluate().unwrap() else {
            panic!()
        };
        assert!(close(v, expected));
    }

    #[test]
    fn groups_accumulator_matches_accumulator() {
        let n = 10_000usize;
        let eng: Vec<Option<bool>> = (0..n)
            .map(|i| if i % 13 == 0 { None } else { Some(i % 3 == 0) })
            .collect();
        let ev: Vec<Option<i64>> = (0..n)
            .map(|i| {
                if i % 17 == 0 {
                    None
                } else {
                    Some(
                        AS_OF - (i as i64 % 50) * DAY_NS / 7 + if i % 29 == 0 { DAY_NS } else { 0 },
                    )
                }
            })
            .collect();
        let values = args(eng, ev, 21.0);
        let groups: Vec<usize> = (0..n).map(|i| (i * 7919) % 97).collect();
        let filter = BooleanArray::from(
            (0..n)
                .map(|i| (i % 11 != 0).then_some(i % 5 != 0))
                .collect::<Vec<_>>(),
        );

        let mut ga = AppetenceGroupsAccumulator::default();
        // two batches, the second sees more groups
        let half = n / 2;
        let first: Vec<ArrayRef> = values.iter().map(|a| a.slice(0, half)).collect();
        let second: Vec<ArrayRef> = values.iter().map(|a| a.slice(half, n - half)).collect();
        let f1 = filter.slice(0, half);
        let f2 = filter.slice(half, n - half);
        let max1 = groups[..half].iter().max().unwrap() + 1;
        ga.update_batch(&first, &groups[..half], Some(&f1), max1)
            .unwrap();
        ga.update_batch(&second, &groups[half..], Some(&f2), 97)
            .unwrap();
        // round-trip half of the groups through state/merge (EmitTo::First)
        let state = ga.state(EmitTo::First(40)).unwrap();
        let mut ga2 = AppetenceGroupsAccumulator::default();
        ga2.merge_batch(&state, &(0..40).collect::<Vec<_>>(), 40)
            .unwrap();
        let head = ga2.evaluate(EmitTo::All).unwrap();
        let tail = ga.evaluate(EmitTo::All).unwrap();
        assert_eq!(head.len() + tail.len(), 97);
        let scores: Vec<f64> = head
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .chain(tail.as_primitive::<Float64Type>().values().iter())
            .copied()
            .collect();

        for (g, score) in scores.iter().enumerate() {
            let rows: Vec<u32> = (0..n)
                .filter(|&i| groups[i] == g && filter.is_valid(i) && filter.value(i))
                .map(|i| i as u32)
                .collect();
            let idx = arrow::array::UInt32Array::from(rows);
            let part: Vec<ArrayRef> = values
                .iter()
                .map(|a| arrow::compute::take(a.as_ref(), &idx, None).unwrap())
                .collect();
            let expected = eval(&part).unwrap();
            assert!(close(*score, expected), "group {g}: {score} vs {expected}");
        }

        // convert_to_state then merge gives the same as update
        let state = ga.convert_to_state(&values, Some(&filter)).unwrap();
        let mut ga3 = AppetenceGroupsAccumulator::default();
        ga3.merge_batch(&state, &groups, 97).unwrap();
        let out = ga3.evaluate(EmitTo::All).unwrap();
        for (a, b) in out
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .zip(&scores)
        {
            assert!(close(*a, *b));
        }
    }

    #[test]
    fn groups_accumulator_empty_groups_and_errors() {
        let mut ga = AppetenceGroupsAccumulator::default();
        ga.update_batch(&args(vec![], vec![], 30.0), &[], None, 3)
            .unwrap();
        let out = ga.evaluate(EmitTo::All).unwrap();
        assert_eq!(
            out.as_primitive::<Float64Type>().values().to_vec(),
            vec![0.5; 3]
        );
        assert_eq!(out.null_count(), 0);
        let err = ga
            .update_batch(
                &args(vec![Some(true)], vec![Some(AS_OF)], -3.0),
                &[0],
                None,
                1,
            )
            .unwrap_err();
        assert!(err.to_string().contains("half_life_days"));
    }

    #[test]
    fn coercion() {
        let f = AppetenceScore::new();
        let ns_utc = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
        let got = f
            .coerce_types(&[
                DataType::Boolean,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                DataType::Int64,
            ])
            .unwrap();
        assert_eq!(
            got,
            vec![
                DataType::Boolean,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                ns_utc,
                DataType::Float64
            ]
        );
        assert!(
            f.coerce_types(&[
                DataType::Int32,
                DataType::Date32,
                DataType::Date32,
                DataType::Int32
            ])
            .is_err()
        );
        assert!(
            f.coerce_types(&[
                DataType::Boolean,
                DataType::Int64,
                DataType::Date32,
                DataType::Int32
            ])
            .is_err()
        );
        assert!(
            f.coerce_types(&[
                DataType::Boolean,
                DataType::Date32,
                DataType::Date32,
                DataType::Utf8
            ])
            .is_err()
        );
        assert!(f.coerce_types(&[DataType::Boolean]).is_err());
    }

    /// Many groups through SQL, with several partitions and a small batch size
    /// so that partial/final aggregation and state merging are exercised; the
    /// score is checked against the formula written in plain SQL.
    #[tokio::test]
    async fn many_groups_through_sql() {
        let ctx = crate::test_util::ctx_with_config(
            SessionConfig::new()
                .with_target_partitions(4)
                .with_batch_size(1024),
        );
        // 1793491200 = 2026-11-01T00:00:00Z
        let sql = "
            WITH events AS (
              SELECT value % 5000 AS profile_id,
                     value % 3 = 0 AS is_engagement,
                     CAST(value % 90 AS DOUBLE) AS age_days,
                     to_timestamp_seconds(1793491200 - (value % 90) * 86400) AS event_time
              FROM generate_series(1, 60000)
            )
            SELECT count(*) AS groups, max(abs(s - e)) AS max_diff
            FROM (
              SELECT profile_id,
                     appetence_score(is_engagement, event_time,
                                     TIMESTAMP '2026-11-01 00:00:00', 30) AS s,
                     least(1.0,
                       (sum(CASE WHEN is_engagement THEN power(0.5, age_days / 30.0) ELSE 0.0 END) + 1)
                       / (sum(CASE WHEN is_engagement THEN 0.0 ELSE power(0.5, age_days / 30.0) END) + 2)) AS e
              FROM events
              GROUP BY profile_id
            )";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let groups = ScalarValue::try_from_array(batches[0].column(0), 0).unwrap();
        assert_eq!(groups, ScalarValue::Int64(Some(5000)));
        let ScalarValue::Float64(Some(diff)) =
            ScalarValue::try_from_array(batches[0].column(1), 0).unwrap()
        else {
            panic!("no diff")
        };
        assert!(diff < 1e-9, "{diff}");
    }
}
