//! Alerts: what an evaluation finds ([`Finding`]), and the alert records built from findings over time
//! ([`AlertBook`]).
//!
//! Rules:
//! - A finding names a *key* (its kind and subject, e.g. `budget_breach:b-1:2026-11`). While an alert of
//!   that key is open (open or acknowledged) a new finding of it updates the alert's `last_seen`, severity
//!   and message: one alert, however often it is found (deduplicated while open).
//! - An evaluation is complete: an open alert whose key it did not find is resolved at the evaluation's
//!   instant. A key found again after its alert was resolved opens a new alert.
//! - Acknowledging keeps an alert open (it is still deduplicated and still resolves by itself); resolving
//!   by hand closes it (a later finding opens a new one).
//! - Alerts carry the node they concern (`scope`): a principal sees the alerts of its subtree only.
//!
//! The library produces alerts; delivery (webhook, e-mail, chat) is the embedding application's, through
//! [`crate::engine::monitoring::TickHooks::deliver`] (the scheduler hands it each [`AlertChange`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::CmsError;
use crate::model::time::Instant;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Month-to-date cost reached a budget's warning percentage.
    BudgetWarning,
    /// Month-to-date cost reached a budget's breach percentage.
    BudgetBreach,
    /// The month-end forecast reaches a budget's breach percentage (the actual cost does not yet).
    BudgetForecast,
    /// A subscription's concurrent use (its latest hour) approaches a quota of its offer.
    QuotaApproach,
    /// An offer in use grants a quota that no meters measure (`MonitoringSettings::quota_meters`): its use
    /// is not checked.
    QuotaUnchecked,
    /// No new usage from a region for longer than its allowed silence.
    IngestionStale,
    /// Missing hours for a resource that was running before and after them.
    UsageGap,
    /// Usage of meters no catalogue knows (kept, not priced).
    UnknownMeter,
    /// The latest pull of a region refused records.
    RefusedRecords,
    /// The latest pull of a region held usage of invoiced periods beyond the look-back window.
    LateUsage,
    /// A scheduled job failed.
    JobFailure,
    /// A day's cost far above its trailing average.
    UsageAnomaly,
}

impl AlertKind {
    /// The kind's name, as serialised (`budget_breach`).
    pub fn name(self) -> &'static str {
        match self {
            Self::BudgetWarning => "budget_warning",
            Self::BudgetBreach => "budget_breach",
            Self::BudgetForecast => "budget_forecast",
            Self::QuotaApproach => "quota_approach",
            Self::QuotaUnchecked => "quota_unchecked",
            Self::IngestionStale => "ingestion_stale",
            Self::UsageGap => "usage_gap",
            Self::UnknownMeter => "unknown_meter",
            Self::RefusedRecords => "refused_records",
            Self::LateUsage => "late_usage",
            Self::JobFailure => "job_failure",
            Self::UsageAnomaly => "usage_anomaly",
        }
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Needs attention soon.
    Warning,
    /// Needs attention now.
    Critical,
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Found and not yet acknowledged.
    Open,
    /// Someone has seen it; still found.
    Acknowledged,
    /// No longer found, or closed by hand.
    Resolved,
}

/// What one evaluation found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Dedupe key: the kind and the subject (`usage_gap:sub-1:/subscriptions/.../vm-1`).
    pub key: String,
    /// Kind.
    pub kind: AlertKind,
    /// Severity.
    pub severity: Severity,
    /// The node it concerns (who may see it).
    pub scope: String,
    /// What was found, for people.
    pub message: String,
    /// The object it is about (a budget id, a region, a resource, a job key), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<String>,
}

impl Finding {
    /// A finding whose key is `kind:subject`.
    pub fn new(kind: AlertKind, severity: Severity, scope: &str, subject: &str, message: String) -> Self {
        Self {
            key: format!("{}:{subject}", kind.name()),
            kind,
            severity,
            scope: scope.to_owned(),
            message,
            related: Some(subject.to_owned()),
        }
    }
}

/// An alert record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Id, in order of opening.
    pub id: u64,
    /// Dedupe key.
    pub key: String,
    /// Kind.
    pub kind: AlertKind,
    /// Severity (the latest finding's).
    pub severity: Severity,
    /// The node it concerns.
    pub scope: String,
    /// The latest finding's message.
    pub message: String,
    /// The object it is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub related: Option<String>,
    /// Status.
    pub status: AlertStatus,
    /// When it was first found.
    pub first_seen: Instant,
    /// When it was last found.
    pub last_seen: Instant,
    /// Who acknowledged it, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<(String, Instant)>,
    /// When it was resolved (and by whom, when by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<(Option<String>, Instant)>,
    /// A note left when acknowledging or resolving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Alert {
    /// Open or acknowledged.
    pub fn is_open(&self) -> bool {
        self.status != AlertStatus::Resolved
    }
}

/// What an evaluation changed, for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertChange {
    /// A new alert.
    Opened,
    /// An open alert got worse (a higher severity).
    Escalated,
    /// An alert was resolved.
    Resolved,
}

/// Every alert, open and resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertBook {
    /// Alerts by id.
    pub alerts: BTreeMap<u64, Alert>,
    /// Open alerts' ids by key.
    open: BTreeMap<String, u64>,
    /// The instant of the latest complete evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    evaluated: Option<Instant>,
}

impl AlertBook {
    /// The open alert of a key.
    pub fn open_alert(&self, key: &str) -> Option<&Alert> {
        self.open.get(key).and_then(|id| self.alerts.get(id))
    }

    /// The instant of the latest complete evaluation, if any.
    pub fn evaluated(&self) -> Option<Instant> {
        self.evaluated
    }

    /// Open alerts, by id.
    pub fn open_alerts(&self) -> impl Iterator<Item = &Alert> {
        self.open.values().filter_map(|id| self.alerts.get(id))
    }

    /// Apply a complete evaluation made at `at`: update or open an alert per finding, resolve open
    /// alerts not found. Returns the changes.
    pub fn evaluate(&mut self, at: Instant, findings: &[Finding]) -> Vec<(u64, AlertChange)> {
        let mut changes = self.raise(at, findings);
        self.evaluated = Some(self.evaluated.map_or(at, |evaluated| evaluated.max(at)));
        let found: std::collections::BTreeSet<&str> = findings.iter().map(|f| f.key.as_str()).collect();
        let gone: Vec<(String, u64)> = self
            .open
            .iter()
            .filter(|(key, _)| !found.contains(key.as_str()))
            .map(|(key, id)| (key.clone(), *id))
            .collect();
        for (key, id) in gone {
            self.open.remove(&key);
            if let Some(alert) = self.alerts.get_mut(&id) {
                alert.status = AlertStatus::Resolved;
                alert.resolved = Some((None, at));
                changes.push((id, AlertChange::Resolved));
            }
        }
        changes
    }

    /// Apply findings without resolving anything (a partial evaluation, such as a failed job's).
    pub fn raise(&mut self, at: Instant, findings: &[Finding]) -> Vec<(u64, AlertChange)> {
        let mut changes = Vec::new();
        for finding in findings {
            if let Some(alert) = self.open.get(&finding.key).and_then(|id| self.alerts.get_mut(id)) {
                if finding.severity > alert.severity {
                    changes.push((alert.id, AlertChange::Escalated));
                }
                alert.severity = finding.severity;
                alert.message.clone_from(&finding.message);
                alert.related.clone_from(&finding.related);
                alert.last_seen = at;
                continue;
            }
            let id = self.alerts.keys().next_back().map_or(1, |last| last + 1);
            self.alerts.insert(
                id,
                Alert {
                    id,
                    key: finding.key.clone(),
                    kind: finding.kind,
                    severity: finding.severity,
                    scope: finding.scope.clone(),
                    message: finding.message.clone(),
                    related: finding.related.clone(),
                    status: AlertStatus::Open,
                    first_seen: at,
                    last_seen: at,
                    acknowledged: None,
                    resolved: None,
                    note: None,
                },
            );
            self.open.insert(finding.key.clone(), id);
            changes.push((id, AlertChange::Opened));
        }
        changes
    }

    /// Acknowledge an open alert.
    pub fn acknowledge(
        &mut self,
        id: u64,
        by: &str,
        at: Instant,
        note: Option<&str>,
    ) -> Result<(), CmsError> {
        let alert = self.alerts.get_mut(&id).ok_or_else(|| unknown(id))?;
        if alert.status != AlertStatus::Open {
            return Err(CmsError::InvalidValue {
                at: crate::error::Location::whole(format!("alert {id}")),
                text: format!("{:?}", alert.status).to_lowercase(),
                reason: "only an open alert is acknowledged".into(),
            });
        }
        alert.status = AlertStatus::Acknowledged;
        alert.acknowledged = Some((by.to_owned(), at));
        if let Some(note) = note {
            alert.note = Some(note.to_owned());
        }
        Ok(())
    }

    /// Resolve an open (or acknowledged) alert by hand.
    pub fn resolve(&mut self, id: u64, by: &str, at: Instant, note: Option<&str>) -> Result<(), CmsError> {
        let alert = self.alerts.get_mut(&id).ok_or_else(|| unknown(id))?;
        if !alert.is_open() {
            return Err(CmsError::InvalidValue {
                at: crate::error::Location::whole(format!("alert {id}")),
                text: "resolved".into(),
                reason: "the alert is resolved already".into(),
            });
        }
        alert.status = AlertStatus::Resolved;
        alert.resolved = Some((Some(by.to_owned()), at));
        if let Some(note) = note {
            alert.note = Some(note.to_owned());
        }
        self.open.remove(&alert.key);
        Ok(())
    }
}

fn unknown(id: u64) -> CmsError {
    CmsError::UnknownNode { kind: "alert".into(), id: id.to_string(), context: None }
}
