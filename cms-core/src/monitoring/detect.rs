//! The detection rules, pure: each takes facts the engine gathered from the store and returns what it
//! found. The rules, stated:
//!
//! - **Stale ingestion**: a region whose latest stored usage ended more than its allowed silence
//!   ([`MonitoringSettings::stale_hours`]) before now. Regions named in the settings are watched even
//!   before their first usage (then stale from the settings' first evaluation on). A region is a usage
//!   record's `location`, compared without case.
//! - **Gap**: for hourly usage of one (subscription, resource, meter), hours with no record between two
//!   runs of at least `gap_context_hours` consecutive hours with records: the resource was running steadily
//!   before and after them (a resource that runs an hour now and then has no gaps). Daily usage is not
//!   checked.
//! - **Usage anomaly**: a subscription's cost on the latest complete day is above `anomaly_factor` times
//!   the average of its `anomaly_trailing_days` complete days before it (days of the month only), when at
//!   least `anomaly_min_days` of those had cost, and it exceeds that average by at least
//!   `anomaly_min_amount`.
//! - **Quota approach**: a subscription's use of a quota in its latest hour of usage (the summed quantity
//!   of the quota's meters, [`MonitoringSettings::quota_meters`]) reaches `quota_percent` of the quota
//!   its offer grants.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;

use crate::model::meter::MeterId;
use crate::model::time::Instant;
use crate::monitoring::jobs::MonitoringSettings;

/// Hours since the Unix epoch.
pub fn hour_index(instant: Instant) -> i64 {
    instant.timestamp().div_euclid(3_600)
}

/// The instant an hour index starts.
pub fn hour_start(index: i64) -> Instant {
    chrono::DateTime::from_timestamp(index * 3_600, 0).unwrap_or_default()
}

/// A region found stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    /// The region.
    pub region: String,
    /// Its latest usage end, if it ever had usage.
    pub last_usage: Option<Instant>,
    /// The silence allowed, hours.
    pub allowed_hours: u32,
}

/// Stale regions among those seen (`last_usage` by folded region name) and those the settings watch.
pub fn stale_regions(
    last_usage: &BTreeMap<String, Instant>,
    settings: &MonitoringSettings,
    now: Instant,
) -> Vec<Stale> {
    let mut regions: BTreeSet<String> = last_usage.keys().cloned().collect();
    regions.extend(settings.regions.keys().map(|region| region.to_ascii_lowercase()));
    regions
        .into_iter()
        .filter_map(|region| {
            let allowed_hours = settings.stale_hours(&region);
            let last = last_usage.get(&region).copied();
            let silent_since = last.unwrap_or(Instant::MIN_UTC);
            let stale = (now - silent_since).num_seconds() > i64::from(allowed_hours) * 3_600;
            stale.then_some(Stale { region, last_usage: last, allowed_hours })
        })
        .collect()
}

/// Missing hours of one series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// How many hours are missing.
    pub missing: u32,
    /// The first missing hour.
    pub first: Instant,
    /// The last missing hour.
    pub last: Instant,
}

/// The gaps of a series given the hours (indices) it has records for: missing runs with at least
/// `context` consecutive hours of records right before and right after them.
pub fn gaps(hours: &BTreeSet<i64>, context: u32) -> Option<Gap> {
    // Runs of consecutive hours: (first, last).
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &hour in hours {
        match runs.last_mut() {
            Some(run) if run.1 + 1 == hour => run.1 = hour,
            _ => runs.push((hour, hour)),
        }
    }
    let context = i64::from(context.max(1));
    let mut missing = 0u32;
    let mut first = None;
    let mut last = None;
    for pair in runs.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        if before.1 - before.0 + 1 >= context && after.1 - after.0 + 1 >= context {
            missing = missing.saturating_add(u32::try_from(after.0 - before.1 - 1).unwrap_or(u32::MAX));
            first.get_or_insert(before.1 + 1);
            last = Some(after.0 - 1);
        }
    }
    Some(Gap { missing, first: hour_start(first?), last: hour_start(last?) })
}

/// An anomalous day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// The day (index into the month's daily costs; 0 is the 1st).
    pub day: usize,
    /// Its cost.
    pub cost: Decimal,
    /// The trailing average it is compared with.
    pub average: Decimal,
}

/// Whether the latest complete day (`complete` days have ended; `daily[i]` is day `i + 1`'s cost) is an
/// anomaly by the settings' rule.
pub fn anomaly(daily: &[Decimal], complete: usize, settings: &MonitoringSettings) -> Option<Anomaly> {
    let day = complete.checked_sub(1)?;
    let cost = *daily.get(day)?;
    let trailing = usize::try_from(settings.anomaly_trailing_days).unwrap_or(usize::MAX).min(day);
    let window = &daily[day - trailing..day];
    let with_cost = window.iter().filter(|cost| !cost.is_zero()).count();
    if trailing == 0 || with_cost < usize::try_from(settings.anomaly_min_days).unwrap_or(usize::MAX) {
        return None;
    }
    let average = window.iter().copied().sum::<Decimal>() / Decimal::from(trailing);
    (cost > average * settings.anomaly_factor && cost - average >= settings.anomaly_min_amount)
        .then_some(Anomaly { day, cost, average })
}

/// A quota approached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUse {
    /// The quota's name.
    pub quota: String,
    /// Use in the latest hour.
    pub used: Decimal,
    /// The limit.
    pub limit: Decimal,
    /// That hour.
    pub hour: Instant,
}

/// The quotas a subscription approaches, given its latest hour of usage (`latest`: hour and quantity per
/// meter in it) and its offer's quotas.
pub fn quotas_approached(
    latest: Option<&(i64, BTreeMap<MeterId, Decimal>)>,
    quotas: &BTreeMap<String, Decimal>,
    settings: &MonitoringSettings,
) -> Vec<QuotaUse> {
    let Some((hour, quantities)) = latest else { return Vec::new() };
    quotas
        .iter()
        .filter_map(|(quota, limit)| {
            let meters = settings.quota_meters.get(quota)?;
            let used: Decimal = meters.iter().filter_map(|meter| quantities.get(meter)).copied().sum();
            (used * Decimal::ONE_HUNDRED >= settings.quota_percent * *limit && !used.is_zero())
                .then(|| QuotaUse { quota: quota.clone(), used, limit: *limit, hour: hour_start(*hour) })
        })
        .collect()
}
