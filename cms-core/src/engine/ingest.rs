//! Usage ingestion rules: what the engine does with each record before the store deduplicates it.
//!
//! For each record, in order:
//! 1. a subscription on the exclusion list (the default provider subscription, infrastructure and admin
//!    subscriptions: their usage is not billable) is counted as excluded and dropped;
//! 2. a Usage API record must be an hourly bucket (at most one hour; per-minute App Service records count
//!    as hourly) or a daily bucket (UTC midnight to midnight), and one subscription keeps one granularity per
//!    period: a record that would mix hourly and daily usage is refused (`mixed_granularity`);
//! 3. a record of an already invoiced (closed) period is late: within the look-back window (default 2
//!    periods before the latest closed one, that one included) it is stored with an [`Adjustment`] (the
//!    quantity it adds and, for a record with a source cost, the cost it adds) that the next open period's
//!    invoice bills; beyond it, it is refused (`late_usage_refused`);
//! 4. everything else goes to the store, which counts duplicates and corrections by natural key.
//!
//! Refused records are listed in the summary with their position; the other records of the page are
//! stored. Malformed pages never get here: the parser refuses them whole.
//!
//! Meters at daily granularity: Microsoft's IP and SQL/MySQL meters report `value x hours` for a daily
//! bucket, where an hourly bucket reports the value for its one hour. Both are therefore unit-hours (IP-hours,
//! MB-hours) and add up alike; CMS keeps them as reported and never rescales them. Other meters are sums of
//! their hourly values in either granularity.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, Timelike};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CmsError, Location};
use crate::model::meter::{MeterId, MeterInfo};
use crate::model::time::Period;
use crate::model::usage::{Adjustment, UsageRecord};
use crate::source::{Checkpoint, Granularity};
use crate::store::{StoredCorrection, folded_key};

/// How usage is ingested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestPolicy {
    /// Subscriptions whose usage is not billable (compared ignoring ASCII case).
    #[serde(default)]
    pub excluded_subscriptions: BTreeSet<String>,
    /// How many closed periods late usage may reach back (counting the latest closed one).
    #[serde(default = "default_look_back")]
    pub look_back_periods: u32,
}

fn default_look_back() -> u32 {
    2
}

impl Default for IngestPolicy {
    fn default() -> Self {
        Self { excluded_subscriptions: BTreeSet::new(), look_back_periods: default_look_back() }
    }
}

impl IngestPolicy {
    /// Whether usage of `subscription` is excluded.
    pub fn excludes(&self, subscription: &str) -> bool {
        self.excluded_subscriptions.iter().any(|excluded| excluded.eq_ignore_ascii_case(subscription))
    }
}

/// A record that was not stored, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRecord {
    /// Where it was (page and record index).
    pub at: Location,
    /// Its subscription.
    pub subscription: String,
    /// Its meter.
    pub meter: MeterId,
    /// Its usage start.
    pub start: crate::model::time::Instant,
    /// The error code.
    pub code: String,
    /// The error message.
    pub message: String,
}

impl RefusedRecord {
    fn new(record: &UsageRecord, error: &CmsError) -> Self {
        let at = match error {
            CmsError::MixedGranularity { at, .. }
            | CmsError::LateUsageRefused { at, .. }
            | CmsError::BadInterval { at, .. } => at.clone(),
            _ => Location::whole("usage"),
        };
        Self {
            at,
            subscription: record.subscription.clone(),
            meter: record.meter,
            start: record.start,
            code: error.code().to_owned(),
            message: error.to_string(),
        }
    }
}

/// What an ingestion did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestSummary {
    /// Pages read.
    pub pages: u64,
    /// Records received.
    pub received: u64,
    /// New records stored.
    pub stored: u64,
    /// Exact repeats, ignored.
    pub duplicates: u64,
    /// Records that replaced a stored quantity.
    pub corrections: Vec<StoredCorrection>,
    /// Records of excluded subscriptions, dropped.
    pub excluded: u64,
    /// FOCUS tax rows, not imported (CMS computes the taxes of its own invoices).
    #[serde(default)]
    pub tax_rows_skipped: u64,
    /// Records of closed periods stored as adjustments for the next open period.
    pub late_adjustments: u64,
    /// Records refused, with the reason.
    pub refused: Vec<RefusedRecord>,
    /// Records by meters the catalogue does not know (kept), by meter.
    pub unknown_meters: BTreeMap<MeterId, u64>,
    /// Records of subscriptions not in the channel (kept until they are onboarded), by subscription.
    pub unknown_subscriptions: BTreeMap<String, u64>,
    /// Records of meters not priced by default because they double count (VM size hours), kept.
    pub double_counting: u64,
    /// Records by usage period (`YYYY-MM`).
    pub by_period: BTreeMap<String, u64>,
    /// Checkpoints recorded.
    pub checkpoints: Vec<Checkpoint>,
}

impl IngestSummary {
    /// Add another summary's counts to this one.
    pub fn add(&mut self, other: Self) {
        self.pages += other.pages;
        self.received += other.received;
        self.stored += other.stored;
        self.duplicates += other.duplicates;
        self.corrections.extend(other.corrections);
        self.excluded += other.excluded;
        self.tax_rows_skipped += other.tax_rows_skipped;
        self.late_adjustments += other.late_adjustments;
        self.refused.extend(other.refused);
        for (meter, count) in other.unknown_meters {
            *self.unknown_meters.entry(meter).or_default() += count;
        }
        for (subscription, count) in other.unknown_subscriptions {
            *self.unknown_subscriptions.entry(subscription).or_default() += count;
        }
        self.double_counting += other.double_counting;
        for (period, count) in other.by_period {
            *self.by_period.entry(period).or_default() += count;
        }
        self.checkpoints.extend(other.checkpoints);
    }
}

/// The calendar month (UTC) holding an instant.
pub fn month_of(instant: crate::model::time::Instant) -> Result<Period, CmsError> {
    Period::month(instant.year(), instant.month())
}

/// Months from `from` to `to` (negative when `to` is earlier).
pub fn months_between(from: &Period, to: &Period) -> i64 {
    let index = |period: &Period| i64::from(period.start.year()) * 12 + i64::from(period.start.month());
    index(to) - index(from)
}

/// The granularity of a Usage API record's bucket, or `None` when it is neither hourly nor daily.
pub fn granularity_of(
    start: crate::model::time::Instant,
    end: crate::model::time::Instant,
) -> Option<Granularity> {
    let seconds = (end - start).num_seconds();
    if seconds == Granularity::Daily.seconds() && start.num_seconds_from_midnight() == 0 {
        Some(Granularity::Daily)
    } else if seconds > 0 && seconds <= Granularity::Hourly.seconds() {
        Some(Granularity::Hourly)
    } else {
        None
    }
}

/// Looks up what the store already holds, for the rules above.
pub trait IngestLookup {
    /// A stored record with the same natural key.
    fn stored(&self, record: &UsageRecord) -> Result<Option<UsageRecord>, CmsError>;
    /// The granularity already stored for a subscription in a period.
    fn stored_granularity(
        &self,
        subscription: &str,
        period: &Period,
    ) -> Result<Option<Granularity>, CmsError>;
    /// Whether the channel has this subscription.
    fn known_subscription(&self, subscription: &str) -> bool;
}

/// The records to store after applying the rules, and the summary so far (the store adds its counts).
pub struct Classified {
    /// Records for the store, in order.
    pub to_store: Vec<UsageRecord>,
    /// Counts.
    pub summary: IngestSummary,
}

/// Apply the ingestion rules to one batch. `source` names the batch (page) in refusals.
pub fn classify(
    records: &[UsageRecord],
    source: &str,
    policy: &IngestPolicy,
    closed: &BTreeSet<Period>,
    lookup: &dyn IngestLookup,
) -> Result<Classified, CmsError> {
    let mut summary = IngestSummary { received: records.len() as u64, ..IngestSummary::default() };
    let mut to_store: Vec<UsageRecord> = Vec::with_capacity(records.len());
    let mut granularities: HashMap<(String, Period), Granularity> = HashMap::new();
    let mut pending_late: HashMap<crate::model::usage::UsageKey, usize> = HashMap::new();
    let latest_closed = closed.iter().next_back().copied();
    for (index, record) in records.iter().enumerate() {
        let at = || Location::record(source, index as u64);
        if policy.excludes(&record.subscription) {
            summary.excluded += 1;
            continue;
        }
        let period = month_of(record.start)?;
        if record.cost.is_none() {
            let Some(granularity) = granularity_of(record.start, record.end) else {
                let error = CmsError::BadInterval {
                    at: at(),
                    start: record.start.to_rfc3339(),
                    end: format!("{} (neither an hourly nor a daily bucket)", record.end.to_rfc3339()),
                };
                summary.refused.push(RefusedRecord::new(record, &error));
                continue;
            };
            let cache_key = (record.subscription.to_ascii_lowercase(), period);
            let existing = match granularities.get(&cache_key) {
                Some(found) => Some(*found),
                None => lookup.stored_granularity(&record.subscription, &period)?,
            };
            if let Some(existing) = existing.filter(|existing| *existing != granularity) {
                let error = CmsError::MixedGranularity {
                    at: at(),
                    subscription: record.subscription.clone(),
                    detail: format!(
                        "{granularity} usage in {period}, where {existing} usage is already stored"
                    ),
                };
                summary.refused.push(RefusedRecord::new(record, &error));
                continue;
            }
            granularities.insert(cache_key, granularity);
        }
        let mut stored_form = record.clone();
        if closed.contains(&period) {
            let latest = latest_closed.unwrap_or(period);
            if months_between(&period, &latest) >= i64::from(policy.look_back_periods) {
                let error = CmsError::LateUsageRefused {
                    at: at(),
                    period: period.to_string(),
                    window: policy.look_back_periods,
                };
                summary.refused.push(RefusedRecord::new(record, &error));
                continue;
            }
            let mut billed_in = period.next_month()?;
            while closed.contains(&billed_in) {
                billed_in = billed_in.next_month()?;
            }
            let key = folded_key(record);
            let previous = match pending_late.get(&key) {
                Some(&position) => Some(to_store[position].clone()),
                None => lookup.stored(record)?,
            };
            let cost_of = |record: &UsageRecord| record.cost.map(|cost| cost.amount);
            if previous.as_ref().is_some_and(|previous| {
                previous.quantity == record.quantity && cost_of(previous) == cost_of(record)
            }) {
                summary.duplicates += 1;
                continue;
            }
            let delta =
                record.quantity - previous.as_ref().map_or(Decimal::ZERO, |previous| previous.quantity);
            let cost_delta =
                cost_of(record).map(|cost| cost - previous.as_ref().and_then(cost_of).unwrap_or_default());
            let new_record = previous.is_none();
            stored_form.adjustments = previous.map(|previous| previous.adjustments).unwrap_or_default();
            stored_form.adjustments.push(Adjustment { billed_in, delta, new_record, cost_delta });
            summary.late_adjustments += 1;
            pending_late.insert(key, to_store.len());
        }
        if record.cost.is_none() {
            match record.meter.info() {
                None => *summary.unknown_meters.entry(record.meter).or_default() += 1,
                Some(info) if MeterInfo::double_counts(info) => summary.double_counting += 1,
                Some(_) => {}
            }
        }
        if !lookup.known_subscription(&record.subscription) {
            *summary.unknown_subscriptions.entry(record.subscription.clone()).or_default() += 1;
        }
        *summary.by_period.entry(period.to_string()).or_default() += 1;
        to_store.push(stored_form);
    }
    Ok(Classified { to_store, summary })
}
