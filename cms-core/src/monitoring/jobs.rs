//! Scheduled work: the settings of monitoring and the scheduler, the jobs a tick runs, and the record of
//! each job run.
//!
//! A job run has a *key*: the job and the slot it is due for (`pull:east:2026-11-26T10:00:00Z`,
//! `issue:2026-10`, `evaluate:2026-11-26T10:00:00Z`, `purge:2026-11-26`). A key that ran to completion is
//! never run again, so a second tick at the same instant (or within the same slot) does no work twice; a
//! failed key is tried again by a later tick.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CmsError, Location};
use crate::model::meter::MeterId;
use crate::model::time::{Instant, Period};

/// How monitoring and the scheduler behave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitoringSettings {
    /// A region without new usage for longer than this is stale.
    #[serde(default = "default_stale_hours")]
    pub stale_after_hours: u32,
    /// Per-region silences allowed (overrides `stale_after_hours`); regions named here are watched even
    /// before their first usage.
    #[serde(default)]
    pub regions: BTreeMap<String, u32>,
    /// Missing hours are a gap only between runs of at least this many consecutive hours of usage.
    #[serde(default = "default_gap_context")]
    pub gap_context_hours: u32,
    /// A day's cost is an anomaly when above this multiple of its trailing average ...
    #[serde(default = "default_anomaly_factor")]
    pub anomaly_factor: Decimal,
    /// ... over this many complete days before it ...
    #[serde(default = "default_trailing_days")]
    pub anomaly_trailing_days: u32,
    /// ... of which at least this many had cost ...
    #[serde(default = "default_min_days")]
    pub anomaly_min_days: u32,
    /// ... and when it exceeds that average by at least this amount (in the cost's currency).
    #[serde(default = "default_anomaly_amount")]
    pub anomaly_min_amount: Decimal,
    /// A quota is approached when the latest hour's use reaches this percentage of it.
    #[serde(default = "default_quota_percent")]
    pub quota_percent: Decimal,
    /// Which meters measure which quota: the latest hour's quantity of these meters is the concurrent use.
    #[serde(default = "default_quota_meters")]
    pub quota_meters: BTreeMap<String, Vec<MeterId>>,
    /// Pull each region once per this many hours.
    #[serde(default = "one")]
    pub pull_every_hours: u32,
    /// Evaluate budgets and alerts once per this many hours.
    #[serde(default = "one")]
    pub evaluate_every_hours: u32,
    /// Issue invoices once the issue delay has passed (otherwise the scheduler only drafts them).
    #[serde(default)]
    pub auto_issue: bool,
}

fn default_stale_hours() -> u32 {
    8
}
fn default_gap_context() -> u32 {
    3
}
fn default_anomaly_factor() -> Decimal {
    Decimal::from(3)
}
fn default_trailing_days() -> u32 {
    7
}
fn default_min_days() -> u32 {
    3
}
fn default_anomaly_amount() -> Decimal {
    Decimal::ONE
}
fn default_quota_percent() -> Decimal {
    Decimal::from(90)
}
fn one() -> u32 {
    1
}

/// Base VM Size Hours (vCore-hours): one hour's quantity is the vCPUs running.
pub const VCPU_HOURS: MeterId = MeterId::from_u128(0xFAB6_EB84_500B_4A09_A8CA_7358_F8BB_AEA5);
/// Public IP Address Usage: one hour's quantity is the addresses held.
pub const PUBLIC_IP_HOURS: MeterId = MeterId::from_u128(0xF114_CB19_EA64_40B5_CBD7_AEE4_74B6_2853);

fn default_quota_meters() -> BTreeMap<String, Vec<MeterId>> {
    BTreeMap::from([("vcpus".to_owned(), vec![VCPU_HOURS]), ("public_ips".to_owned(), vec![PUBLIC_IP_HOURS])])
}

impl Default for MonitoringSettings {
    fn default() -> Self {
        Self {
            stale_after_hours: default_stale_hours(),
            regions: BTreeMap::new(),
            gap_context_hours: default_gap_context(),
            anomaly_factor: default_anomaly_factor(),
            anomaly_trailing_days: default_trailing_days(),
            anomaly_min_days: default_min_days(),
            anomaly_min_amount: default_anomaly_amount(),
            quota_percent: default_quota_percent(),
            quota_meters: default_quota_meters(),
            pull_every_hours: 1,
            evaluate_every_hours: 1,
            auto_issue: false,
        }
    }
}

impl MonitoringSettings {
    /// Check the numbers.
    pub fn validate(&self) -> Result<(), CmsError> {
        let invalid = |field: &str, text: String, reason: &str| CmsError::InvalidValue {
            at: Location::field("monitoring settings", field),
            text,
            reason: reason.into(),
        };
        if self.stale_after_hours == 0 || self.regions.values().any(|hours| *hours == 0) {
            return Err(invalid("stale_after_hours", "0".into(), "a silence allowed is at least one hour"));
        }
        if self.anomaly_factor <= Decimal::ONE {
            return Err(invalid("anomaly_factor", self.anomaly_factor.to_string(), "must be above 1"));
        }
        if self.anomaly_trailing_days == 0 || self.anomaly_min_days > self.anomaly_trailing_days {
            return Err(invalid(
                "anomaly_min_days",
                self.anomaly_min_days.to_string(),
                "must be at most anomaly_trailing_days, which is at least 1",
            ));
        }
        if self.quota_percent <= Decimal::ZERO {
            return Err(invalid("quota_percent", self.quota_percent.to_string(), "must be positive"));
        }
        if self.pull_every_hours == 0 || self.evaluate_every_hours == 0 {
            return Err(invalid("pull_every_hours", "0".into(), "intervals are at least one hour"));
        }
        Ok(())
    }

    /// The silence allowed for a region.
    pub fn stale_hours(&self, region: &str) -> u32 {
        self.regions
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(region))
            .map_or(self.stale_after_hours, |(_, hours)| *hours)
    }
}

/// A job the scheduler runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Job {
    /// Pull a region's usage from its checkpoints.
    Pull {
        /// The region.
        region: String,
    },
    /// Draft a period's invoices (when it ends).
    Draft {
        /// The period.
        period: Period,
    },
    /// Issue a period's invoices (after the issue delay).
    Issue {
        /// The period.
        period: Period,
    },
    /// Evaluate budgets and alerts.
    Evaluate,
    /// Usage ingested outside the scheduler (`cms ingest`, an application's own batches), recorded so
    /// that refused and late records raise alerts like a pull's.
    Ingest {
        /// What was ingested (`pages`, `folder:east`, `focus`).
        source: String,
    },
    /// Purge raw usage by retention.
    Purge,
}

impl Job {
    /// The job's name and subject, without the slot (`pull:east`, `issue:2026-10`, `evaluate`).
    pub fn name(&self) -> String {
        match self {
            Self::Pull { region } => format!("pull:{region}"),
            Self::Draft { period } => format!("draft:{period}"),
            Self::Issue { period } => format!("issue:{period}"),
            Self::Evaluate => "evaluate".into(),
            Self::Ingest { source } => format!("ingest:{source}"),
            Self::Purge => "purge".into(),
        }
    }
}

/// How a job run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum JobOutcome {
    /// It did its work.
    Done,
    /// It failed: the error's code and message.
    Failed {
        /// Error code.
        code: String,
        /// Error message.
        message: String,
    },
}

/// One job run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRun {
    /// The key: the job's name and its slot.
    pub key: String,
    /// The job.
    #[serde(flatten)]
    pub job: Job,
    /// When it started.
    pub started: Instant,
    /// When it ended.
    pub finished: Instant,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: JobOutcome,
    /// What it did (`accepted`, `refused`, `issued`, `opened`, ...).
    #[serde(default)]
    pub counts: BTreeMap<String, u64>,
}

impl JobRun {
    /// Whether it ran to completion.
    pub fn succeeded(&self) -> bool {
        self.outcome == JobOutcome::Done
    }
}

/// Every job run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLog {
    /// Runs in the order recorded.
    pub runs: Vec<JobRun>,
    /// The latest run of each key.
    latest_of_key: BTreeMap<String, usize>,
    /// The latest run of each job name.
    latest_of_job: BTreeMap<String, usize>,
    /// The periods with a draft or issue run.
    #[serde(default)]
    billed_periods: BTreeSet<Period>,
}

impl JobLog {
    /// Record a run.
    pub fn record(&mut self, run: JobRun) {
        let index = self.runs.len();
        self.latest_of_key.insert(run.key.clone(), index);
        self.latest_of_job.insert(run.job.name(), index);
        if let Job::Draft { period } | Job::Issue { period } = &run.job {
            self.billed_periods.insert(*period);
        }
        self.runs.push(run);
    }

    /// The periods the scheduler drafted or issued (or tried to), in order.
    pub fn billed_periods(&self) -> impl DoubleEndedIterator<Item = &Period> {
        self.billed_periods.iter()
    }

    /// Whether a key's latest run succeeded.
    pub fn succeeded(&self, key: &str) -> bool {
        self.latest(key).is_some_and(JobRun::succeeded)
    }

    /// The latest run of a key.
    pub fn latest(&self, key: &str) -> Option<&JobRun> {
        self.latest_of_key.get(key).map(|index| &self.runs[*index])
    }

    /// The latest run of each job (by name), in name order.
    pub fn latest_per_job(&self) -> impl Iterator<Item = &JobRun> {
        self.latest_of_job.values().map(|index| &self.runs[*index])
    }

    /// Whether a key is due at `now`: never run, or its latest run failed at an earlier instant.
    pub fn is_due(&self, key: &str, now: Instant) -> bool {
        self.latest(key).is_none_or(|run| !run.succeeded() && run.started < now)
    }
}

/// The slot an instant falls in, for jobs run every `hours` hours (slots start at multiples of `hours`
/// hours from the Unix epoch).
pub fn slot(now: Instant, hours: u32) -> Instant {
    let width = i64::from(hours.max(1)) * 3_600;
    let start = now.timestamp().div_euclid(width) * width;
    chrono::DateTime::from_timestamp(start, 0).unwrap_or(now)
}

/// What a tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickReport {
    /// The tick's instant.
    pub at: Option<Instant>,
    /// Jobs run now.
    pub runs: Vec<JobRun>,
    /// Keys due that had already run (skipped).
    pub skipped: Vec<String>,
    /// Alerts opened, escalated or resolved now, by id.
    pub alert_changes: Vec<(u64, crate::monitoring::alerts::AlertChange)>,
    /// Deliveries that failed (alert id, error).
    pub delivery_failures: Vec<(u64, String)>,
}

impl TickReport {
    /// Whether any job failed.
    pub fn failed(&self) -> bool {
        self.runs.iter().any(|run| !run.succeeded())
    }
}
