//! The month accumulator: dedupe usage by natural key and sum quantities per subscription and meter.
//!
//! It is the mergeable core of every month-end: feed it batches in any size ([`UsageAccumulator::ingest`]),
//! build partial accumulators anywhere and [`UsageAccumulator::merge`] them, then
//! [`UsageAccumulator::finish`] once.
//!
//! State is bounded by series x hours, not by rows: a *series* is one (subscription, meter, resource),
//! and each series keeps one slot per hour of the period holding that hour's quantity. Hour-aligned
//! one-hour records (the Usage API's hourly buckets) go to the slots; any other interval (daily buckets,
//! per-minute App Service records) goes to a small ordered map of the series keyed by (start, end).
//! Keeping the quantity (not only a "seen" bit) is what makes duplicates exact across merges and lets a
//! correction replace the earlier value.
//!
//! Quantities in slots are scaled integers (micro-units, i64) when the decimal has at most 6 fraction
//! digits after normalisation and fits; any other value is kept as a `Decimal` beside the slot. Sums are
//! exact either way; a property test checks them against plain `Decimal` sums.
//!
//! Subscription ids and resource uris compare ASCII-case-insensitively (both are case-insensitive in
//! Azure; `resourceGroups` and `resourcegroups` are both seen); the first spelling seen is kept.
//!
//! Merging is associative. It is commutative when no key carries two different quantities; when one does,
//! the right-hand (later) accumulator's value wins, as a later record wins in one stream. Partials that
//! share no subscription (usage partitioned by subscription, as the distributed month-end does) merge in
//! any order and grouping to the very same accumulator, first spellings included.
//!
//! [`UsageAccumulator::to_bytes`] and [`UsageAccumulator::from_bytes`] give it a stable, versioned binary
//! form (`accumulator/wire.rs`) to ship partials between processes.

mod wire;

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use hashbrown::{Equivalent, HashMap};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CmsError, Location};
use crate::model::meter::MeterId;
use crate::model::time::Period;
use crate::model::usage::UsageRow;

const EMPTY: i64 = i64::MIN;
const SPILLED: i64 = i64::MIN + 1;
const MICRO_SCALE: u32 = 6;
const SECONDS_PER_HOUR: i64 = 3600;
/// At most this many corrections are kept with their details; the count is always exact.
const CORRECTION_SAMPLES: usize = 100;

/// Exact conversion of a quantity to micro-units, when it has at most 6 fraction digits and fits.
pub fn to_micros(quantity: Decimal) -> Option<i64> {
    let quantity = if quantity.scale() > MICRO_SCALE { quantity.normalize() } else { quantity };
    let scale = quantity.scale();
    if scale > MICRO_SCALE {
        return None;
    }
    let micros = quantity.mantissa().checked_mul(10_i128.pow(MICRO_SCALE - scale))?;
    i64::try_from(micros).ok().filter(|&value| value != EMPTY && value != SPILLED)
}

/// A quantity of micro-units back as a decimal at scale 6.
pub fn from_micros(micros: i128) -> Decimal {
    Decimal::from_i128_with_scale(micros, MICRO_SCALE)
}

fn hash_folded<H: Hasher>(text: &str, state: &mut H) {
    let mut buffer = [0u8; 64];
    for chunk in text.as_bytes().chunks(buffer.len()) {
        let folded = &mut buffer[..chunk.len()];
        folded.copy_from_slice(chunk);
        folded.make_ascii_lowercase();
        state.write(folded);
    }
    state.write_u8(0xFF);
}

/// An owned string that hashes and compares ASCII-case-insensitively.
#[derive(Debug, Clone)]
struct Folded(Box<str>);

impl Hash for Folded {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_folded(&self.0, state);
    }
}
impl PartialEq for Folded {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for Folded {}

/// A borrowed lookup key for [`Folded`].
struct FoldedRef<'a>(&'a str);
impl Hash for FoldedRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_folded(self.0, state);
    }
}
impl Equivalent<Folded> for FoldedRef<'_> {
    fn equivalent(&self, key: &Folded) -> bool {
        self.0.eq_ignore_ascii_case(&key.0)
    }
}

#[derive(Debug, Clone)]
struct SeriesKey {
    subscription: Folded,
    meter: MeterId,
    resource: Folded,
}

impl Hash for SeriesKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_folded(&self.subscription.0, state);
        self.meter.hash(state);
        hash_folded(&self.resource.0, state);
    }
}
impl PartialEq for SeriesKey {
    fn eq(&self, other: &Self) -> bool {
        self.meter == other.meter
            && self.subscription == other.subscription
            && self.resource == other.resource
    }
}
impl Eq for SeriesKey {}

struct SeriesKeyRef<'a> {
    subscription: &'a str,
    meter: MeterId,
    resource: &'a str,
}
impl Hash for SeriesKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_folded(self.subscription, state);
        self.meter.hash(state);
        hash_folded(self.resource, state);
    }
}
impl Equivalent<SeriesKey> for SeriesKeyRef<'_> {
    fn equivalent(&self, key: &SeriesKey) -> bool {
        self.meter == key.meter
            && self.subscription.eq_ignore_ascii_case(&key.subscription.0)
            && self.resource.eq_ignore_ascii_case(&key.resource.0)
    }
}

/// Per-series state outside the hourly slots: values that are not micro-units, and non-hourly intervals.
/// Cold: touched only by rare rows.
#[derive(Debug, Clone)]
struct Series {
    subscription: u32,
    location: u32,
    spilled: BTreeMap<u32, Decimal>,
    intervals: BTreeMap<(i64, i64), Decimal>,
}

/// The hourly slots of every series, stored by column and split by temperature. `present` (one bit an
/// hour of each series, side by side) and `micros` (each series' running sum) are read on every row and
/// stay small enough for the CPU caches (about 100 bytes and 16 bytes a series); `values` (8 bytes an hour)
/// is only written for a new hour, and read back only for a repeat, so the common row never waits on a
/// cache miss there.
#[derive(Debug, Clone)]
struct Slots {
    hours: usize,
    words: usize,
    present: Vec<u64>,
    micros: Vec<i128>,
    values: Vec<Box<[i64]>>,
}

impl Slots {
    fn new(hours: usize) -> Self {
        Self { hours, words: hours.div_ceil(64), present: Vec::new(), micros: Vec::new(), values: Vec::new() }
    }

    fn add_series(&mut self) {
        self.present.resize(self.present.len() + self.words, 0);
        self.micros.push(0);
        self.values.push(Box::default());
    }

    /// The present slots of a series, in order.
    fn slots(&self, series: usize) -> impl Iterator<Item = usize> + '_ {
        let words = &self.present[series * self.words..(series + 1) * self.words];
        words.iter().enumerate().flat_map(|(word_index, &word)| {
            let mut bits = word;
            std::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let bit = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                Some(word_index * 64 + bit)
            })
        })
    }

    /// The value in a present slot.
    fn value(&self, series: usize, slot: usize, spilled: &BTreeMap<u32, Decimal>) -> SlotValue {
        let raw = self.values[series][slot];
        if raw == SPILLED { SlotValue::Exact(slot_value(raw, spilled, slot)) } else { SlotValue::Micros(raw) }
    }

    /// Store `value` in a slot of a series; `spilled` is that series' map of values that are not micro-units.
    fn put(
        &mut self,
        series: usize,
        slot: usize,
        value: SlotValue,
        spilled: &mut BTreeMap<u32, Decimal>,
    ) -> Change {
        let micros = match value {
            SlotValue::Micros(micros) => Some(micros),
            SlotValue::Exact(value) => to_micros(value),
        };
        let slot_key = u32::try_from(slot).unwrap_or(u32::MAX);
        let (word, bit) = (series * self.words + slot / 64, 1_u64 << (slot % 64));
        if self.present[word] & bit == 0 {
            self.present[word] |= bit;
            let values = &mut self.values[series];
            if values.is_empty() {
                *values = vec![0; self.hours].into_boxed_slice();
            }
            if let Some(micros) = micros {
                values[slot] = micros;
                self.micros[series] += i128::from(micros);
            } else {
                values[slot] = SPILLED;
                spilled.insert(slot_key, value.decimal());
            }
            return Change::New;
        }
        let raw = self.values[series][slot];
        if micros == Some(raw) {
            // The common repeat: an exact copy, compared without decimals.
            return Change::Same;
        }
        let old = slot_value(raw, spilled, slot);
        if old == value.decimal() {
            return Change::Same;
        }
        if raw == SPILLED {
            spilled.remove(&slot_key);
        } else {
            self.micros[series] -= i128::from(raw);
        }
        if let Some(micros) = micros {
            self.values[series][slot] = micros;
            self.micros[series] += i128::from(micros);
        } else {
            self.values[series][slot] = SPILLED;
            spilled.insert(slot_key, value.decimal());
        }
        Change::Replaced(old)
    }
}

/// A series (subscription, meter, resource) of one accumulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeriesId(u32);

impl SeriesId {
    /// A series id made up for a test.
    #[cfg(test)]
    pub(crate) fn from_index(index: u32) -> Self {
        Self(index)
    }
}

/// What happened to one ingested row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New usage, counted.
    Accepted,
    /// An exact repeat of a counted record; counted once.
    Duplicate,
    /// Same key, another quantity: the new quantity replaced the old one.
    Correction,
    /// Usage start before the period: a late record of an earlier period, not billed here.
    BeforePeriod,
    /// Usage start at or after the period's end: belongs to a later period.
    AfterPeriod,
}

/// A replaced quantity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    /// Subscription.
    pub subscription: String,
    /// Meter.
    pub meter: MeterId,
    /// Resource.
    pub resource_uri: String,
    /// Usage start, Unix seconds.
    pub start: i64,
    /// Usage end, Unix seconds.
    pub end: i64,
    /// The value that was replaced.
    pub old_quantity: Decimal,
    /// The value now counted.
    pub new_quantity: Decimal,
}

/// Counts of what ingestion did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestStats {
    /// Rows offered.
    pub rows: u64,
    /// Rows counted as new usage.
    pub accepted: u64,
    /// Exact repeats.
    pub duplicates: u64,
    /// Rows that replaced an earlier quantity.
    pub corrections: u64,
    /// Rows whose usage started before the period (late records of earlier periods).
    pub before_period: u64,
    /// Rows whose usage started after the period.
    pub after_period: u64,
    /// The first corrections, with details (at most 100).
    pub correction_samples: Vec<Correction>,
}

impl IngestStats {
    fn add(&mut self, other: &Self) {
        self.rows += other.rows;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        self.corrections += other.corrections;
        self.before_period += other.before_period;
        self.after_period += other.after_period;
        let room = CORRECTION_SAMPLES.saturating_sub(self.correction_samples.len());
        self.correction_samples.extend(other.correction_samples.iter().take(room).cloned());
    }
}

/// Monthly quantity of one (subscription, meter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterQuantity {
    /// Subscription, first spelling seen.
    pub subscription: String,
    /// Meter.
    pub meter: MeterId,
    /// Sum of the deduplicated quantities, exact.
    pub quantity: Decimal,
}

/// Quantity of one series (subscription, meter, resource), for resource-level reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeriesQuantity {
    /// Subscription.
    pub subscription: String,
    /// Meter.
    pub meter: MeterId,
    /// Resource.
    pub resource_uri: String,
    /// Region of the first record.
    pub location: String,
    /// Sum of the deduplicated quantities, exact.
    pub quantity: Decimal,
}

/// The result of [`UsageAccumulator::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantities {
    /// The period.
    pub period: Period,
    /// One entry per (subscription, meter) with at least one counted row, sorted by subscription then meter.
    pub by_meter: Vec<MeterQuantity>,
    /// One entry per series, sorted by subscription, meter, resource.
    pub by_series: Vec<SeriesQuantity>,
    /// What ingestion did.
    pub stats: IngestStats,
}

/// Deduplicates and sums usage of one period. See the module documentation.
#[derive(Debug, Clone)]
pub struct UsageAccumulator {
    period: Period,
    start: i64,
    end: i64,
    subscriptions: HashMap<Folded, u32>,
    subscription_names: Vec<Box<str>>,
    locations: HashMap<Box<str>, u32>,
    location_names: Vec<Box<str>>,
    index: HashMap<SeriesKey, u32>,
    keys: Vec<SeriesKey>,
    series: Vec<Series>,
    slots: Slots,
    pending: Vec<PendingSlot>,
    ordered: Vec<PendingSlot>,
    stats: IngestStats,
}

/// An admitted hourly row waiting to be applied (see [`UsageAccumulator::put_micros_batched`]).
#[derive(Debug, Clone, Copy)]
struct PendingSlot {
    series: u32,
    slot: u32,
    micros: i64,
}

/// Rows kept before a batch is applied: 16 bytes each, 4 MiB a batch.
const BATCH_ROWS: usize = 1 << 18;
/// Series per partition when a batch is applied: their slots (about 6 KiB a series for a month) stay in the
/// CPU's second-level cache while the partition's rows are applied.
const SERIES_PER_PARTITION: usize = 64;

impl UsageAccumulator {
    /// An empty accumulator for `period`.
    pub fn new(period: Period) -> Self {
        Self {
            period,
            start: period.start_seconds(),
            end: period.end_seconds(),
            subscriptions: HashMap::new(),
            subscription_names: Vec::new(),
            locations: HashMap::new(),
            location_names: Vec::new(),
            index: HashMap::new(),
            keys: Vec::new(),
            series: Vec::new(),
            slots: Slots::new(usize::try_from(period.hours()).unwrap_or(usize::MAX)),
            pending: Vec::new(),
            ordered: Vec::new(),
            stats: IngestStats::default(),
        }
    }

    /// The period.
    pub fn period(&self) -> Period {
        self.period
    }

    /// Counts so far (rows kept by [`Self::put_micros_batched`] count once [`Self::flush`]ed).
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Number of series (subscription, meter, resource) seen.
    pub fn series_count(&self) -> usize {
        self.series.len()
    }

    /// The subscriptions of the series seen, each once in its first spelling, in the order first seen.
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> {
        self.subscription_names.iter().map(AsRef::as_ref)
    }

    /// Take one row. `at` names the row for errors and is only called on error.
    ///
    /// Refuses (without changing anything) a row whose interval does not end after it starts.
    pub fn ingest(&mut self, row: &UsageRow<'_>, at: impl FnOnce() -> Location) -> Result<Outcome, CmsError> {
        if let Some(outcome) = self.admit(row.start, row.end, at)? {
            return Ok(outcome);
        }
        let series = self.series_index(row.subscription, row.meter, row.resource_uri, row.location);
        Ok(self.put(series, row.start, row.end, SlotValue::Exact(row.quantity)))
    }

    /// The series of (subscription, meter, resource), created on first sight; `location` is kept from the
    /// first row. For callers that cache the series of each spelling (the fast parsers).
    pub fn series(&mut self, subscription: &str, meter: MeterId, resource: &str, location: &str) -> SeriesId {
        SeriesId(self.series_index(subscription, meter, resource, location))
    }

    /// The fast path, first step: count a row and tell whether it belongs to the period (`Ok(false)`: counted
    /// as before or after it, nothing more to do). Refuses a backwards interval. Resolve the row's series only
    /// after this, so rows outside the period create none (as [`Self::ingest`] does).
    pub fn admits(&mut self, start: i64, end: i64, at: impl FnOnce() -> Location) -> Result<bool, CmsError> {
        Ok(self.admit(start, end, at)?.is_none())
    }

    /// The fast path, second step: store an admitted row of a known series with its quantity in micro-units
    /// (see [`to_micros`]).
    pub fn put_micros(&mut self, series: SeriesId, start: i64, end: i64, micros: i64) -> Outcome {
        let value = if micros == EMPTY || micros == SPILLED {
            SlotValue::Exact(from_micros(i128::from(micros)))
        } else {
            SlotValue::Micros(micros)
        };
        self.put(series.0, start, end, value)
    }

    /// The fast path, second step, batched: like [`Self::put_micros`], but an hourly row is kept and applied
    /// with others in a batch, partitioned by series so that the slots written stay in the CPU caches (rows
    /// of one series are applied in the order they came, so a later row still wins). The statistics count
    /// the kept rows once they are applied: by [`Self::flush`], which [`Self::merge`] and [`Self::finish`]
    /// call, and before any row that is not batched.
    pub fn put_micros_batched(&mut self, series: SeriesId, start: i64, end: i64, micros: i64) {
        let offset = start - self.start;
        let hourly = end - start == SECONDS_PER_HOUR && offset % SECONDS_PER_HOUR == 0;
        if !hourly || micros == EMPTY || micros == SPILLED {
            self.flush();
            self.put_micros(series, start, end, micros);
            return;
        }
        // offset / 3600 < hours because start < end of period, and hours fit in u32.
        let slot = u32::try_from(offset / SECONDS_PER_HOUR).unwrap_or(u32::MAX);
        self.pending.push(PendingSlot { series: series.0, slot, micros });
        if self.pending.len() >= BATCH_ROWS {
            self.flush();
        }
    }

    /// Apply the rows kept by [`Self::put_micros_batched`]: a stable counting sort by partition of series,
    /// then each partition's rows in order.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let partitions = self.series.len().div_ceil(SERIES_PER_PARTITION).max(1);
        let mut starts = vec![0usize; partitions + 1];
        for row in &pending {
            starts[row.series as usize / SERIES_PER_PARTITION + 1] += 1;
        }
        for index in 1..=partitions {
            starts[index] += starts[index - 1];
        }
        let mut ordered = std::mem::take(&mut self.ordered);
        ordered.clear();
        ordered.resize(pending.len(), PendingSlot { series: 0, slot: 0, micros: 0 });
        for row in &pending {
            let partition = row.series as usize / SERIES_PER_PARTITION;
            ordered[starts[partition]] = *row;
            starts[partition] += 1;
        }
        for &row in &ordered {
            let (index, slot) = (row.series as usize, row.slot as usize);
            let change =
                self.slots.put(index, slot, SlotValue::Micros(row.micros), &mut self.series[index].spilled);
            let start = self.start + i64::from(row.slot) * SECONDS_PER_HOUR;
            self.count(row.series, start, start + SECONDS_PER_HOUR, change, || {
                from_micros(i128::from(row.micros))
            });
        }
        // Keep both buffers' allocations for the next batch.
        self.pending = pending;
        self.pending.clear();
        self.ordered = ordered;
    }

    /// Count the row and tell whether it falls outside the period; refuse a backwards interval.
    fn admit(
        &mut self,
        start: i64,
        end: i64,
        at: impl FnOnce() -> Location,
    ) -> Result<Option<Outcome>, CmsError> {
        if end <= start {
            let show = |seconds: i64| {
                chrono::DateTime::from_timestamp(seconds, 0)
                    .map_or_else(|| seconds.to_string(), |t| t.to_rfc3339())
            };
            return Err(CmsError::BadInterval { at: at(), start: show(start), end: show(end) });
        }
        self.stats.rows += 1;
        if start < self.start {
            self.stats.before_period += 1;
            return Ok(Some(Outcome::BeforePeriod));
        }
        if start >= self.end {
            self.stats.after_period += 1;
            return Ok(Some(Outcome::AfterPeriod));
        }
        Ok(None)
    }

    fn put(&mut self, series_index: u32, start: i64, end: i64, value: SlotValue) -> Outcome {
        self.flush();
        let offset = start - self.start;
        let hourly = end - start == SECONDS_PER_HOUR && offset % SECONDS_PER_HOUR == 0;
        let index = series_index as usize;
        let change = if hourly {
            // offset / 3600 < hours because start < end of period.
            let slot = usize::try_from(offset / SECONDS_PER_HOUR).unwrap_or(usize::MAX);
            self.slots.put(index, slot, value, &mut self.series[index].spilled)
        } else {
            let quantity = value.decimal();
            match self.series[index].intervals.insert((start, end), quantity) {
                None => Change::New,
                Some(old) if old == quantity => Change::Same,
                Some(old) => Change::Replaced(old),
            }
        };
        self.count(series_index, start, end, change, || value.decimal())
    }

    /// Count what storing a row did.
    fn count(
        &mut self,
        series_index: u32,
        start: i64,
        end: i64,
        change: Change,
        new: impl FnOnce() -> Decimal,
    ) -> Outcome {
        match change {
            Change::New => {
                self.stats.accepted += 1;
                Outcome::Accepted
            }
            Change::Same => {
                self.stats.duplicates += 1;
                Outcome::Duplicate
            }
            Change::Replaced(old) => {
                self.stats.corrections += 1;
                let key = &self.keys[series_index as usize];
                self.stats.record_correction(Correction {
                    subscription: key.subscription.0.to_string(),
                    meter: key.meter,
                    resource_uri: key.resource.0.to_string(),
                    start,
                    end,
                    old_quantity: old,
                    new_quantity: new(),
                });
                Outcome::Correction
            }
        }
    }

    fn series_index(&mut self, subscription: &str, meter: MeterId, resource: &str, location: &str) -> u32 {
        let lookup = SeriesKeyRef { subscription, meter, resource };
        if let Some(&index) = self.index.get(&lookup) {
            return index;
        }
        let subscription_index =
            intern_folded(&mut self.subscriptions, &mut self.subscription_names, subscription);
        let location_index = intern(&mut self.locations, &mut self.location_names, location);
        let index = next_index(self.series.len());
        let key =
            SeriesKey { subscription: Folded(subscription.into()), meter, resource: Folded(resource.into()) };
        self.index.insert(key.clone(), index);
        self.keys.push(key);
        self.series.push(Series {
            subscription: subscription_index,
            location: location_index,
            spilled: BTreeMap::new(),
            intervals: BTreeMap::new(),
        });
        self.slots.add_series();
        index
    }

    /// Fold `other` (the later partial) into `self`. Both must cover the same period.
    pub fn merge(&mut self, mut other: Self) -> Result<(), CmsError> {
        self.flush();
        other.flush();
        if other.period != self.period {
            return Err(CmsError::InvalidPeriod {
                text: other.period.to_string(),
                reason: format!("cannot merge usage of {} into usage of {}", other.period, self.period),
            });
        }
        let mut extra = IngestStats::default();
        for (source, (key, series)) in other.keys.into_iter().zip(other.series).enumerate() {
            let location = &other.location_names[series.location as usize];
            let target =
                self.series_index(&key.subscription.0, key.meter, &key.resource.0, location) as usize;
            let mut note = |previous: Option<Decimal>, value: Decimal, start: i64, end: i64| match previous {
                None => {}
                Some(old) if old == value => {
                    extra.duplicates += 1;
                    extra.accepted += 1;
                }
                Some(old) => {
                    extra.corrections += 1;
                    extra.accepted += 1;
                    extra.record_correction(Correction {
                        subscription: key.subscription.0.to_string(),
                        meter: key.meter,
                        resource_uri: key.resource.0.to_string(),
                        start,
                        end,
                        old_quantity: old,
                        new_quantity: value,
                    });
                }
            };
            for slot in other.slots.slots(source) {
                let value = other.slots.value(source, slot, &series.spilled);
                let previous = match self.slots.put(target, slot, value, &mut self.series[target].spilled) {
                    Change::New => None,
                    Change::Same => Some(value.decimal()),
                    Change::Replaced(old) => Some(old),
                };
                if previous.is_some() {
                    let start = self.start + i64::try_from(slot).unwrap_or(0) * SECONDS_PER_HOUR;
                    note(previous, value.decimal(), start, start + SECONDS_PER_HOUR);
                }
            }
            for ((start, end), value) in series.intervals {
                let previous = self.series[target].intervals.insert((start, end), value);
                note(previous, value, start, end);
            }
        }
        // Rows counted as accepted on both sides but found equal (or replaced) on merge are not new usage.
        self.stats.add(&other.stats);
        self.stats.accepted -= extra.accepted;
        extra.accepted = 0;
        self.stats.add(&extra);
        Ok(())
    }

    /// Sum every series and group by (subscription, meter).
    pub fn finish(mut self) -> Quantities {
        self.flush();
        let mut by_series = Vec::with_capacity(self.series.len());
        for (index, (key, series)) in self.keys.iter().zip(&self.series).enumerate() {
            by_series.push((
                series.subscription,
                key,
                series.location,
                series_total(self.slots.micros[index], series),
            ));
        }
        by_series.sort_by(|left, right| {
            let name = |entry: &(u32, &SeriesKey, u32, Decimal)| &self.subscription_names[entry.0 as usize];
            name(left)
                .cmp(name(right))
                .then(left.1.meter.cmp(&right.1.meter))
                .then(left.1.resource.0.cmp(&right.1.resource.0))
        });
        let mut by_meter: Vec<MeterQuantity> = Vec::new();
        let mut last: Option<(u32, MeterId)> = None;
        for &(subscription, key, _, quantity) in &by_series {
            if last == Some((subscription, key.meter)) {
                if let Some(entry) = by_meter.last_mut() {
                    entry.quantity += quantity;
                }
            } else {
                by_meter.push(MeterQuantity {
                    subscription: self.subscription_names[subscription as usize].to_string(),
                    meter: key.meter,
                    quantity,
                });
                last = Some((subscription, key.meter));
            }
        }
        let by_series = by_series
            .into_iter()
            .map(|(subscription, key, location, quantity)| SeriesQuantity {
                subscription: self.subscription_names[subscription as usize].to_string(),
                meter: key.meter,
                resource_uri: key.resource.0.to_string(),
                location: self.location_names[location as usize].to_string(),
                quantity,
            })
            .collect();
        Quantities { period: self.period, by_meter, by_series, stats: self.stats }
    }
}

impl IngestStats {
    fn record_correction(&mut self, correction: Correction) {
        if self.correction_samples.len() < CORRECTION_SAMPLES {
            self.correction_samples.push(correction);
        }
    }
}

fn next_index(length: usize) -> u32 {
    // More than four billion series would not fit in memory long before this saturates.
    u32::try_from(length).unwrap_or(u32::MAX)
}

fn intern_folded(map: &mut HashMap<Folded, u32>, names: &mut Vec<Box<str>>, text: &str) -> u32 {
    if let Some(&index) = map.get(&FoldedRef(text)) {
        return index;
    }
    let index = next_index(names.len());
    map.insert(Folded(text.into()), index);
    names.push(text.into());
    index
}

fn intern(map: &mut HashMap<Box<str>, u32>, names: &mut Vec<Box<str>>, text: &str) -> u32 {
    if let Some(&index) = map.get(text) {
        return index;
    }
    let index = next_index(names.len());
    map.insert(text.into(), index);
    names.push(text.into());
    index
}

fn slot_value(raw: i64, spilled: &BTreeMap<u32, Decimal>, slot: usize) -> Decimal {
    if raw == SPILLED {
        u32::try_from(slot).ok().and_then(|slot| spilled.get(&slot)).copied().unwrap_or_default()
    } else {
        from_micros(i128::from(raw))
    }
}

/// A quantity on its way into a slot.
#[derive(Debug, Clone, Copy)]
enum SlotValue {
    /// Micro-units (never one of the sentinels).
    Micros(i64),
    /// Any decimal.
    Exact(Decimal),
}

impl SlotValue {
    fn decimal(self) -> Decimal {
        match self {
            Self::Micros(micros) => from_micros(i128::from(micros)),
            Self::Exact(value) => value,
        }
    }
}

/// What storing a value did to its slot.
#[derive(Clone, Copy)]
enum Change {
    New,
    Same,
    Replaced(Decimal),
}

fn series_total(micros: i128, series: &Series) -> Decimal {
    let mut total = from_micros(micros);
    for value in series.spilled.values().chain(series.intervals.values()) {
        total += *value;
    }
    total
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::money::parse_decimal;

    fn october() -> Period {
        Period::month(2026, 10).unwrap()
    }

    fn meter(n: u128) -> MeterId {
        MeterId::from_u128(n)
    }

    #[derive(Debug, Clone)]
    struct Row {
        subscription: String,
        meter: MeterId,
        start: i64,
        end: i64,
        quantity: Decimal,
        resource: String,
    }

    impl Row {
        fn borrow(&self) -> UsageRow<'_> {
            UsageRow {
                subscription: &self.subscription,
                meter: self.meter,
                start: self.start,
                end: self.end,
                quantity: self.quantity,
                resource_uri: &self.resource,
                location: "local",
            }
        }
    }

    fn row(subscription: &str, hour: i64, quantity: &str) -> Row {
        let start = october().start_seconds() + hour * 3600;
        Row {
            subscription: subscription.into(),
            meter: meter(1),
            start,
            end: start + 3600,
            quantity: parse_decimal(quantity).unwrap(),
            resource: "/subscriptions/s/resourceGroups/rg/vm".into(),
        }
    }

    fn run(rows: &[Row]) -> UsageAccumulator {
        let mut accumulator = UsageAccumulator::new(october());
        for row in rows {
            accumulator.ingest(&row.borrow(), || Location::whole("test")).unwrap();
        }
        accumulator
    }

    #[test]
    fn duplicates_count_once_and_corrections_replace() {
        let mut accumulator = UsageAccumulator::new(october());
        let first = row("s", 0, "2.5");
        let at = || Location::whole("t");
        assert_eq!(accumulator.ingest(&first.borrow(), at).unwrap(), Outcome::Accepted);
        assert_eq!(accumulator.ingest(&first.borrow(), at).unwrap(), Outcome::Duplicate);
        let same_value = row("S", 0, "2.50");
        assert_eq!(accumulator.ingest(&same_value.borrow(), at).unwrap(), Outcome::Duplicate);
        let corrected = row("s", 0, "3");
        assert_eq!(accumulator.ingest(&corrected.borrow(), at).unwrap(), Outcome::Correction);
        let late = row("s", -1, "1");
        assert_eq!(accumulator.ingest(&late.borrow(), at).unwrap(), Outcome::BeforePeriod);
        let next = row("s", 744, "1");
        assert_eq!(accumulator.ingest(&next.borrow(), at).unwrap(), Outcome::AfterPeriod);
        let last_hour = row("s", 743, "1");
        assert_eq!(accumulator.ingest(&last_hour.borrow(), at).unwrap(), Outcome::Accepted);
        let stats = accumulator.stats().clone();
        assert_eq!((stats.rows, stats.accepted, stats.duplicates, stats.corrections), (7, 2, 2, 1));
        assert_eq!(stats.correction_samples[0].old_quantity, parse_decimal("2.5").unwrap());
        let quantities = accumulator.finish();
        assert_eq!(quantities.by_meter.len(), 1);
        assert_eq!(quantities.by_meter[0].quantity, parse_decimal("4").unwrap());
        assert_eq!(quantities.by_meter[0].subscription, "s");
    }

    #[test]
    fn non_hourly_intervals_and_bad_intervals() {
        let mut accumulator = UsageAccumulator::new(october());
        let mut daily = row("s", 0, "24");
        daily.end = daily.start + 86_400;
        accumulator.ingest(&daily.borrow(), || Location::whole("t")).unwrap();
        accumulator.ingest(&daily.borrow(), || Location::whole("t")).unwrap();
        let mut minute = row("s", 0, "0.25");
        minute.start += 60;
        minute.end = minute.start + 60;
        accumulator.ingest(&minute.borrow(), || Location::whole("t")).unwrap();
        let mut backwards = row("s", 3, "1");
        backwards.end = backwards.start;
        let error = accumulator.ingest(&backwards.borrow(), || Location::line("usage.csv", 9)).unwrap_err();
        assert_eq!(error.code(), "bad_interval");
        assert!(error.to_string().starts_with("usage.csv line 9"));
        assert_eq!(accumulator.finish().by_meter[0].quantity, parse_decimal("24.25").unwrap());
    }

    #[test]
    fn micro_units_are_exact() {
        for text in ["0", "1", "2.4000000000", "0.000001", "-3.5", "9223372.036854"] {
            let value = parse_decimal(text).unwrap();
            assert_eq!(from_micros(i128::from(to_micros(value).unwrap())), value, "{text}");
        }
        for text in ["0.0000001", "9223372036854.775808", "1e20", "-9223372036854.775808"] {
            assert_eq!(to_micros(parse_decimal(text).unwrap()), None, "{text}");
        }
    }

    #[test]
    fn other_format_versions_are_refused_naming_the_version() {
        let mut bytes = run(&[row("s", 0, "1.5")]).to_bytes();
        assert_eq!(&bytes[..8], wire::MAGIC);
        for version in [1u8, wire::VERSION + 1, 255] {
            bytes[7] = version;
            let error = UsageAccumulator::from_bytes(&bytes).unwrap_err();
            assert_eq!(error.code(), "bad_record");
            let message = error.to_string();
            assert!(
                message.contains(&format!(
                    "format version {version} (this library reads version {})",
                    wire::VERSION
                )),
                "{message}"
            );
        }
        let error = UsageAccumulator::from_bytes(b"PAR1\0\0\0\x02").unwrap_err();
        assert!(error.to_string().contains("not a CMS accumulator"), "{error}");
    }

    #[test]
    fn the_origin_travels_with_the_bytes() {
        let mut accumulator = run(&[row("s", 0, "1.5"), row("T", 3, "2")]);
        let (_, origin) = UsageAccumulator::from_bytes_with_origin(&accumulator.to_bytes()).unwrap();
        assert!(origin.is_empty());
        let bytes = accumulator.to_bytes_with_origin(b"setup 42");
        let (read, origin) = UsageAccumulator::from_bytes_with_origin(&bytes).unwrap();
        assert_eq!(origin, b"setup 42");
        assert_eq!(read.subscriptions().collect::<Vec<_>>(), ["s", "T"]);
        assert_eq!(read.finish(), accumulator.finish());
    }

    fn arbitrary_rows() -> impl Strategy<Value = Vec<Row>> {
        let quantity = prop_oneof![
            (0i64..10_000_000_000).prop_map(|m| Decimal::new(m, 6)),
            (0i64..1_000_000_000_000).prop_map(|m| Decimal::new(m, 10)),
            (0i64..1000).prop_map(Decimal::from),
        ];
        let one = (0usize..3, 0u128..3, -2i64..746, quantity, 0usize..2, 0u8..10).prop_map(
            |(subscription, meter_id, hour, quantity, resource, shape)| {
                let start = october().start_seconds() + hour * 3600 + if shape == 0 { 1800 } else { 0 };
                Row {
                    subscription: ["a", "b", "C"][subscription].to_owned(),
                    meter: meter(meter_id),
                    start,
                    end: start + if shape == 1 { 86_400 } else { 3600 },
                    quantity,
                    resource: ["/r/x", "/r/Y"][resource].to_owned(),
                }
            },
        );
        proptest::collection::vec(one, 0..60)
    }

    /// The oracle: a plain map from natural key to the last quantity seen, summed with `Decimal`.
    fn oracle(rows: &[Row]) -> BTreeMap<(String, MeterId), Decimal> {
        let period = october();
        let mut last = BTreeMap::new();
        for row in rows {
            if row.start >= period.start_seconds() && row.start < period.end_seconds() {
                let key = (
                    row.subscription.to_lowercase(),
                    row.meter,
                    row.start,
                    row.end,
                    row.resource.to_lowercase(),
                );
                last.insert(key, row.quantity);
            }
        }
        let mut sums = BTreeMap::new();
        for ((subscription, meter, ..), quantity) in last {
            *sums.entry((subscription, meter)).or_insert(Decimal::ZERO) += quantity;
        }
        sums
    }

    fn totals(quantities: &Quantities) -> BTreeMap<(String, MeterId), Decimal> {
        quantities
            .by_meter
            .iter()
            .map(|entry| ((entry.subscription.to_lowercase(), entry.meter), entry.quantity))
            .collect()
    }

    proptest! {
        /// Replaying a batch any number of times changes nothing.
        #[test]
        fn replay_changes_nothing(rows in arbitrary_rows(), times in 1usize..4) {
            let once = run(&rows).finish();
            let mut replayed = Vec::new();
            for _ in 0..times { replayed.extend(rows.iter().cloned()); }
            let many = run(&replayed).finish();
            prop_assert_eq!(totals(&once), totals(&many));
        }

        /// Scaled-integer slots give exactly the sums of plain decimals (last value per key wins).
        #[test]
        fn sums_match_the_decimal_oracle(rows in arbitrary_rows()) {
            prop_assert_eq!(totals(&run(&rows).finish()), oracle(&rows));
        }

        /// The binary form reads back to an accumulator that finishes the same, and that accepts more rows
        /// the same way.
        #[test]
        fn bytes_round_trip(rows in arbitrary_rows(), cut in 0usize..60) {
            let cut = cut.min(rows.len());
            let mut first = run(&rows[..cut]);
            let mut read = UsageAccumulator::from_bytes(&first.to_bytes()).unwrap();
            prop_assert_eq!(read.to_bytes(), first.to_bytes(), "stable: written again, the same bytes");
            for (mut accumulator, rest) in [(first, &rows[cut..]), (read, &rows[cut..])].map(|(a, r)| (a, r)) {
                for row in rest {
                    accumulator.ingest(&row.borrow(), || Location::whole("test")).unwrap();
                }
                prop_assert_eq!(accumulator.finish(), run(&rows).finish());
            }
        }

        /// Partials that share no subscription (usage partitioned by subscription), shipped as bytes, merge
        /// in any order and any grouping to exactly the whole: sums, first spellings and counts.
        #[test]
        fn partitions_merge_in_any_order_and_grouping(
            rows in arbitrary_rows(),
            owner in proptest::collection::vec(0usize..4, 3),
            order in Just(()).prop_perturb(|(), mut rng| {
                let mut order: Vec<usize> = (0..4).collect();
                for index in (1..order.len()).rev() {
                    order.swap(index, rng.random_range(0..=index));
                }
                order
            }),
            nested in any::<bool>(),
        ) {
            // Subscription a, b or C (any case) goes to partial owner[i].
            let mut parts: Vec<Vec<Row>> = vec![Vec::new(); 4];
            for row in &rows {
                let which = ["a", "b", "c"].iter().position(|s| row.subscription.eq_ignore_ascii_case(s)).unwrap();
                parts[owner[which]].push(row.clone());
            }
            let shipped: Vec<Vec<u8>> = parts.iter().map(|part| run(part).to_bytes()).collect();
            let read = |index: usize| UsageAccumulator::from_bytes(&shipped[index]).unwrap();
            let merged = if nested {
                // (p0 + (p1 + (p2 + p3))) in the shuffled order.
                let mut tail = read(order[3]);
                for &index in order[..3].iter().rev() {
                    let mut head = read(index);
                    head.merge(tail).unwrap();
                    tail = head;
                }
                tail
            } else {
                // ((p0 + p1) + (p2 + p3)) in the shuffled order.
                let mut left = read(order[0]);
                left.merge(read(order[1])).unwrap();
                let mut right = read(order[2]);
                right.merge(read(order[3])).unwrap();
                left.merge(right).unwrap();
                left
            };
            let whole = run(&rows);
            let whole_stats = whole.stats().clone();
            let stats = merged.stats().clone();
            let (merged, whole) = (merged.finish(), whole.finish());
            prop_assert_eq!(&merged.by_meter, &whole.by_meter);
            prop_assert_eq!(&merged.by_series, &whole.by_series);
            prop_assert_eq!(
                (stats.rows, stats.accepted, stats.duplicates, stats.corrections, stats.before_period, stats.after_period),
                (whole_stats.rows, whole_stats.accepted, whole_stats.duplicates, whole_stats.corrections,
                 whole_stats.before_period, whole_stats.after_period)
            );
        }

        /// Merging is associative for any cuts of one stream: (a + b) + c finishes as a + (b + c).
        #[test]
        fn merging_is_associative(rows in arbitrary_rows(), cut_a in 0usize..60, cut_b in 0usize..60) {
            let (cut_a, cut_b) = (cut_a.min(rows.len()), cut_b.min(rows.len()));
            let (low, high) = (cut_a.min(cut_b), cut_a.max(cut_b));
            let part = |range: std::ops::Range<usize>| run(&rows[range]);
            let mut left = part(0..low);
            left.merge(part(low..high)).unwrap();
            left.merge(part(high..rows.len())).unwrap();
            let mut right = part(low..high);
            right.merge(part(high..rows.len())).unwrap();
            let mut first = part(0..low);
            first.merge(right).unwrap();
            prop_assert_eq!(left.finish(), first.finish());
        }

        /// Hostile bytes are refused, never a panic: arbitrary input, with or without the magic bytes.
        #[test]
        fn hostile_bytes_are_refused(noise in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(UsageAccumulator::from_bytes(&noise).unwrap_err().code(), "bad_record");
            let mut with_magic = wire::MAGIC.to_vec();
            with_magic.extend(&noise);
            prop_assert_eq!(UsageAccumulator::from_bytes(&with_magic).unwrap_err().code(), "bad_record");
        }

        /// Damage is detected: any byte of a real accumulator changed (to any other value), or any truncation,
        /// is refused with `bad_record`, never read as other usage.
        #[test]
        fn any_changed_byte_or_truncation_is_refused(
            rows in arbitrary_rows(),
            origin in proptest::collection::vec(any::<u8>(), 0..40),
            position in any::<usize>(),
            change in 1u8..=255,
            cut in any::<usize>(),
        ) {
            let bytes = run(&rows).to_bytes_with_origin(&origin);
            let (read, read_origin) = UsageAccumulator::from_bytes_with_origin(&bytes).unwrap();
            prop_assert_eq!(&read_origin, &origin);
            prop_assert_eq!(read.finish(), run(&rows).finish());
            let mut changed = bytes.clone();
            changed[position % bytes.len()] ^= change;
            let error = UsageAccumulator::from_bytes(&changed).unwrap_err();
            prop_assert_eq!(error.code(), "bad_record", "{}", error);
            let error = UsageAccumulator::from_bytes(&bytes[..cut % bytes.len()]).unwrap_err();
            prop_assert_eq!(error.code(), "bad_record", "{}", error);
            let mut longer = bytes.clone();
            longer.push(change);
            prop_assert_eq!(UsageAccumulator::from_bytes(&longer).unwrap_err().code(), "bad_record");
        }

        /// Split a stream anywhere, accumulate the parts, merge them in order: the same as one stream.
        #[test]
        fn split_merge_equals_whole(rows in arbitrary_rows(), cut_a in 0usize..60, cut_b in 0usize..60) {
            let (cut_a, cut_b) = (cut_a.min(rows.len()), cut_b.min(rows.len()));
            let (low, high) = (cut_a.min(cut_b), cut_a.max(cut_b));
            let whole = run(&rows);
            let whole_stats = whole.stats().clone();
            let whole = whole.finish();
            let mut left = run(&rows[..low]);
            let mut middle = run(&rows[low..high]);
            middle.merge(run(&rows[high..])).unwrap();
            left.merge(middle).unwrap();
            let stats = left.stats().clone();
            let merged = left.finish();
            prop_assert_eq!(totals(&merged), totals(&whole));
            prop_assert_eq!(&merged.by_meter, &whole.by_meter, "first spellings and sums");
            prop_assert_eq!(&merged.by_series, &whole.by_series, "series, resources and locations");
            prop_assert_eq!((stats.rows, stats.accepted, stats.duplicates + stats.corrections),
                (whole_stats.rows, whole_stats.accepted, whole_stats.duplicates + whole_stats.corrections));
        }
    }
}
