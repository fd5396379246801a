//! The engine's side of monitoring: facts gathered from the store (cost day by day, usage hours, the
//! latest usage per region), budget statuses, alert evaluation, the scheduler's `tick`, and the dashboard.
//! The rules themselves live in [`crate::monitoring`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, Duration, NaiveDate};
use rust_decimal::Decimal;

use crate::billing::MonthEndReport;
use crate::engine::{Cms, DocumentState, Event, PLATFORM_ID, Principal};
use crate::error::CmsError;
use crate::governance::rbac::Action;
use crate::model::hierarchy::{NodeIndex, NodeKind};
use crate::model::meter::MeterId;
use crate::model::money::Currency;
use crate::model::time::{Instant, Period};
use crate::monitoring::alerts::{Alert, AlertChange, AlertKind, Finding, Severity};
use crate::monitoring::budgets::{self, Budget, BudgetState, BudgetStatus};
use crate::monitoring::dashboard::{Amount, Dashboard, DayCost, DocumentsInState, Ranked, RegionHealth};
use crate::monitoring::detect::{self, hour_index};
use crate::monitoring::jobs::{Job, JobOutcome, JobRun, TickReport, slot};
use crate::source::{Checkpoint, UsageSource};
use crate::store::Store;

/// What the scheduler needs from the embedding application: usage sources per region, alert delivery,
/// and (optionally) a wall clock for job end times. Every method has a default, so an application
/// implements only what it uses.
pub trait TickHooks {
    /// The regions to pull.
    fn regions(&self) -> Vec<String> {
        Vec::new()
    }

    /// A source of a region's usage from its checkpoints up to `until`.
    fn source<'a>(
        &'a mut self,
        region: &str,
        checkpoints: &[Checkpoint],
        until: Instant,
    ) -> Result<Box<dyn UsageSource + 'a>, CmsError> {
        let _ = (checkpoints, until);
        Err(CmsError::InvalidValue {
            at: crate::error::Location::whole("region"),
            text: region.to_owned(),
            reason: "no usage source is configured for it".into(),
        })
    }

    /// Deliver an alert change (a webhook, e-mail). An error is reported in the tick's report.
    fn deliver(&mut self, alert: &Alert, change: AlertChange) -> Result<(), String> {
        let _ = (alert, change);
        Ok(())
    }

    /// The wall clock, for when a job ended (`None`: the tick's instant).
    fn now(&self) -> Option<Instant> {
        None
    }
}

/// A cost line's key: (tenant, folded subscription, meter, currency).
pub type LineKey = (String, String, MeterId, Currency);

/// A job's work: it gets the engine and the hooks, and returns its counts.
type JobWork<'w, S> =
    dyn FnMut(&mut Cms<S>, &mut dyn TickHooks) -> Result<BTreeMap<String, u64>, CmsError> + 'w;

/// Hooks that do nothing: no regions, no delivery.
pub struct NoHooks;

impl TickHooks for NoHooks {}

/// Cost day by day: per (tenant, subscription, meter, currency) the cost of each day of the period up to
/// an instant (the last day may be partial).
#[derive(Debug, Clone, Default)]
pub struct CostSeries {
    /// The days covered, in order.
    pub days: Vec<NaiveDate>,
    /// How many of them are complete.
    pub complete_days: usize,
    /// Cost per line key and day.
    pub lines: BTreeMap<LineKey, Vec<Decimal>>,
    /// The month-to-date report (the last day's).
    pub report: Option<MonthEndReport>,
}

impl CostSeries {
    /// Sum of lines matching `keep`, per currency, per day.
    fn daily(&self, keep: &dyn Fn(&LineKey) -> bool) -> BTreeMap<Currency, Vec<Decimal>> {
        let mut out: BTreeMap<Currency, Vec<Decimal>> = BTreeMap::new();
        for (key, days) in self.lines.iter().filter(|(key, _)| keep(key)) {
            let sums = out.entry(key.3).or_insert_with(|| vec![Decimal::ZERO; self.days.len()]);
            for (sum, day) in sums.iter_mut().zip(days) {
                *sum += day;
            }
        }
        out
    }
}

/// Usage facts of a period up to an instant, for the detection rules.
#[derive(Debug, Default)]
struct UsageFacts {
    /// Latest usage end per folded region (location).
    last_usage: BTreeMap<String, Instant>,
    /// Hours with hourly records per (folded subscription, resource, meter).
    hours: BTreeMap<(String, String, MeterId), BTreeSet<i64>>,
    /// Latest hour of usage per folded subscription, with the quantity per meter in it.
    latest: BTreeMap<String, (i64, BTreeMap<MeterId, Decimal>)>,
    /// Region (location) of each folded subscription's latest usage.
    region_of: BTreeMap<String, String>,
    /// Records of meters no catalogue knows: meter -> (records, subscriptions).
    unknown_meters: BTreeMap<MeterId, (u64, BTreeSet<String>)>,
}

impl<S: Store> Cms<S> {
    /// The nodes a scope covers: `None` for the whole platform.
    fn within(&self, scope: NodeIndex, id: &str) -> bool {
        let hierarchy = &self.state.hierarchy;
        hierarchy.find_ignoring_case(id).is_some_and(|node| hierarchy.is_within(node, scope))
    }

    /// Cost day by day of `period` up to `at` (every tenant invoice line, unscoped).
    pub(crate) fn cost_series(&self, period: Period, at: Instant) -> Result<CostSeries, CmsError> {
        let until = at.min(period.end);
        if until <= period.start {
            return Ok(CostSeries::default());
        }
        let mut cutoffs = Vec::new();
        let mut days = Vec::new();
        let mut day_start = period.start;
        while day_start < until {
            let day_end = (day_start + Duration::days(1)).min(period.end);
            days.push(day_start.date_naive());
            cutoffs.push(day_end.min(until));
            day_start = day_end;
        }
        let complete_days =
            cutoffs.iter().zip(&days).filter(|(cutoff, day)| cutoff.date_naive() != **day).count();
        let reports =
            self.compute_month_ends_until(self.billing_context(), period, self.state.rules, &cutoffs)?;
        let mut lines: BTreeMap<LineKey, Vec<Decimal>> = BTreeMap::new();
        let mut previous: BTreeMap<LineKey, Decimal> = BTreeMap::new();
        for (day, report) in reports.iter().enumerate() {
            let mut running: BTreeMap<LineKey, Decimal> = BTreeMap::new();
            for invoice in report.invoices.iter().filter(|invoice| invoice.buyer_kind == NodeKind::Tenant) {
                for line in &invoice.lines {
                    *running
                        .entry((
                            invoice.buyer.clone(),
                            line.subscription.to_ascii_lowercase(),
                            line.meter,
                            invoice.currency,
                        ))
                        .or_default() += line.amount;
                }
            }
            let keys: BTreeSet<_> = running.keys().chain(previous.keys()).cloned().collect();
            for key in keys {
                let now = running.get(&key).copied().unwrap_or_default();
                let before = previous.get(&key).copied().unwrap_or_default();
                lines.entry(key).or_insert_with(|| vec![Decimal::ZERO; days.len()])[day] = now - before;
            }
            previous = running;
        }
        Ok(CostSeries { days, complete_days, lines, report: reports.into_iter().last() })
    }

    /// Usage facts of `period` up to `at`.
    fn usage_facts(&self, period: Period, at: Instant) -> Result<UsageFacts, CmsError> {
        let mut facts = UsageFacts::default();
        self.store.for_each_usage(&period, &mut |record| {
            if record.start >= at {
                return Ok(());
            }
            let subscription = record.subscription.to_ascii_lowercase();
            let region = record.location.to_ascii_lowercase();
            if !region.is_empty() {
                let last = facts.last_usage.entry(region.clone()).or_insert(record.end);
                *last = (*last).max(record.end);
                facts.region_of.insert(subscription.clone(), region);
            }
            if record.meter.info().is_none() {
                let entry = facts.unknown_meters.entry(record.meter).or_default();
                entry.0 += 1;
                entry.1.insert(subscription.clone());
            }
            if (record.end - record.start).num_seconds() == 3_600 {
                let hour = hour_index(record.start);
                facts
                    .hours
                    .entry((subscription.clone(), record.resource_uri.to_ascii_lowercase(), record.meter))
                    .or_default()
                    .insert(hour);
                let latest = facts.latest.entry(subscription).or_insert((hour, BTreeMap::new()));
                if hour > latest.0 {
                    *latest = (hour, BTreeMap::new());
                }
                if hour == latest.0 {
                    *latest.1.entry(record.meter).or_default() += record.quantity_as_billed_in(None);
                }
            }
            Ok(())
        })?;
        Ok(facts)
    }

    /// The latest usage end per folded region, over `period` and the one before it.
    fn last_usage(
        &self,
        period: Period,
        at: Instant,
        facts: &UsageFacts,
    ) -> Result<BTreeMap<String, Instant>, CmsError> {
        let mut last = facts.last_usage.clone();
        let previous = previous_month(period)?;
        self.store.for_each_usage(&previous, &mut |record| {
            let region = record.location.to_ascii_lowercase();
            if !region.is_empty() && record.start < at {
                let entry = last.entry(region).or_insert(record.end);
                *entry = (*entry).max(record.end);
            }
            Ok(())
        })?;
        Ok(last)
    }

    /// A budget's status in `period` as of `at`, from a cost series.
    fn budget_status(
        &self,
        budget: &Budget,
        period: Period,
        at: Instant,
        series: &CostSeries,
    ) -> Option<BudgetStatus> {
        let hierarchy = &self.state.hierarchy;
        let node = hierarchy.find(&budget.node)?;
        let mut unconverted = 0u64;
        let mut daily = vec![Decimal::ZERO; series.days.len()];
        for ((_, subscription, _, currency), days) in &series.lines {
            if !hierarchy.find_ignoring_case(subscription).is_some_and(|sub| hierarchy.is_within(sub, node)) {
                continue;
            }
            let rate = if *currency == budget.currency {
                Some(Decimal::ONE)
            } else {
                self.state.terms.fx.rate(*currency, budget.currency, at)
            };
            let Some(rate) = rate else {
                unconverted += 1;
                continue;
            };
            for (sum, day) in daily.iter_mut().zip(days) {
                *sum += day * rate;
            }
        }
        let actual: Decimal = daily.iter().copied().sum();
        let forecast = budgets::forecast(period, at, &daily);
        Some(budgets::status(budget, period, at, actual, forecast, unconverted))
    }

    /// Budgets of the principal's subtree in `period` as of `at`.
    pub fn budget_statuses(
        &self,
        principal: &Principal,
        period: Period,
        at: Instant,
    ) -> Result<Vec<BudgetStatus>, CmsError> {
        self.authorize_read(principal, Action::ReadBilling)?;
        let scope = self.scope_of(principal)?;
        let series = self.cost_series(period, at)?;
        Ok(self
            .state
            .budgets
            .values()
            .filter(|budget| self.within(scope, &budget.node))
            .filter_map(|budget| self.budget_status(budget, period, at, &series))
            .collect())
    }

    /// Set (or replace) a budget.
    pub fn set_budget(
        &mut self,
        principal: &Principal,
        at: Instant,
        budget: Budget,
    ) -> Result<u64, CmsError> {
        self.execute(principal, at, &Event::BudgetSet { budget })
    }

    /// Alerts of the principal's subtree: open ones, or all.
    pub fn alerts(&self, principal: &Principal, include_resolved: bool) -> Result<Vec<Alert>, CmsError> {
        self.authorize_read(principal, Action::ReadUsage)?;
        let scope = self.scope_of(principal)?;
        Ok(self
            .state
            .alerts
            .alerts
            .values()
            .filter(|alert| include_resolved || alert.is_open())
            .filter(|alert| self.within(scope, &alert.scope))
            .cloned()
            .collect())
    }

    /// Acknowledge an open alert.
    pub fn acknowledge_alert(
        &mut self,
        principal: &Principal,
        at: Instant,
        id: u64,
        note: Option<&str>,
    ) -> Result<u64, CmsError> {
        self.visible_alert(principal, id)?;
        let event = Event::AlertAcknowledged { id, by: principal.id.clone(), note: note.map(str::to_owned) };
        self.execute(principal, at, &event)
    }

    /// Resolve an alert by hand.
    pub fn resolve_alert(
        &mut self,
        principal: &Principal,
        at: Instant,
        id: u64,
        note: Option<&str>,
    ) -> Result<u64, CmsError> {
        self.visible_alert(principal, id)?;
        let event = Event::AlertResolved { id, by: principal.id.clone(), note: note.map(str::to_owned) };
        self.execute(principal, at, &event)
    }

    fn visible_alert(&self, principal: &Principal, id: u64) -> Result<(), CmsError> {
        let scope = self.scope_of(principal)?;
        self.state
            .alerts
            .alerts
            .get(&id)
            .filter(|alert| self.within(scope, &alert.scope))
            .map(drop)
            .ok_or_else(|| CmsError::UnknownNode { kind: "alert".into(), id: id.to_string(), context: None })
    }

    /// Job runs, newest first (platform principals with a role that reads usage).
    pub fn job_runs(&self, principal: &Principal, limit: usize) -> Result<Vec<JobRun>, CmsError> {
        self.authorize_read(principal, Action::ReadUsage)?;
        if self.scope_of(principal)? != self.state.hierarchy.root() {
            return Err(crate::governance::rbac::not_found(PLATFORM_ID));
        }
        Ok(self.state.jobs.runs.iter().rev().take(limit).cloned().collect())
    }

    /// Everything the detection rules find at `at`: the current calendar month's facts, and the budgets of
    /// each month that ended since the latest complete evaluation, as of its end ([`Self::closing_months`]).
    pub fn findings(&self, at: Instant) -> Result<Vec<Finding>, CmsError> {
        let period = month_of(at)?;
        let mut findings = Vec::new();
        for closing in self.closing_months(at)? {
            let series = self.cost_series(closing, closing.end)?;
            self.budget_findings(closing, closing.end, &series, &mut findings);
        }
        let series = self.cost_series(period, at)?;
        let facts = self.usage_facts(period, at)?;
        let last_usage = self.last_usage(period, at, &facts)?;
        self.budget_findings(period, at, &series, &mut findings);
        self.usage_findings(period, at, &facts, &last_usage, &mut findings)?;
        self.job_findings(&mut findings);
        self.anomaly_findings(&series, &mut findings);
        Ok(findings)
    }

    /// The months whose budgets an evaluation at `at` checks once more as of their end, oldest first: every
    /// month that ended after the latest complete evaluation (the first evaluation: the month before `at`'s).
    /// A month's end is thus evaluated once, however late the tick that sees it: a breach reached in a
    /// month's last hours, or during a silence of the scheduler, is found (and resolves at the next
    /// evaluation, as every ended month's budget alerts do).
    pub fn closing_months(&self, at: Instant) -> Result<Vec<Period>, CmsError> {
        let last = self.state.alerts.evaluated();
        let mut months = Vec::new();
        let mut month = previous_month(month_of(at)?)?;
        loop {
            months.push(month);
            if last.is_none_or(|last| month.start <= last) {
                break;
            }
            month = previous_month(month)?;
        }
        months.retain(|month| last.is_none_or(|last| month.end > last));
        months.reverse();
        Ok(months)
    }

    /// The id of a subscription's node (the platform's when it is not in the channel).
    fn node_of(&self, subscription: &str) -> String {
        let hierarchy = &self.state.hierarchy;
        hierarchy
            .find_ignoring_case(subscription)
            .map_or_else(|| PLATFORM_ID.to_owned(), |node| hierarchy.node(node).id.clone())
    }

    /// Budget warnings, breaches and forecast breaches.
    fn budget_findings(&self, period: Period, at: Instant, series: &CostSeries, findings: &mut Vec<Finding>) {
        // Budgets.
        for budget in self.state.budgets.values() {
            let Some(status) = self.budget_status(budget, period, at, series) else { continue };
            let subject = format!("{}:{period}", budget.id);
            let money = |amount: Decimal| format!("{} {}", amount.round_dp(2), budget.currency);
            if status.state == BudgetState::Breach {
                findings.push(Finding::new(
                    AlertKind::BudgetBreach,
                    Severity::Critical,
                    &budget.node,
                    &subject,
                    format!(
                        "budget {} of {}: {} spent in {period}, {}% of {} (breach at {}%)",
                        budget.id,
                        budget.node,
                        money(status.actual),
                        status.percent,
                        money(budget.amount),
                        budget.breach_percent
                    ),
                ));
            } else if status.state >= BudgetState::Warning {
                findings.push(Finding::new(
                    AlertKind::BudgetWarning,
                    Severity::Warning,
                    &budget.node,
                    &subject,
                    format!(
                        "budget {} of {}: {} spent in {period}, {}% of {} (warning at {}%)",
                        budget.id,
                        budget.node,
                        money(status.actual),
                        status.percent,
                        money(budget.amount),
                        budget.warning_percent
                    ),
                ));
            }
            if status.state != BudgetState::Breach
                && budget.forecast
                && status.forecast * Decimal::ONE_HUNDRED >= budget.breach_percent * budget.amount
            {
                findings.push(Finding::new(
                    AlertKind::BudgetForecast,
                    Severity::Warning,
                    &budget.node,
                    &subject,
                    format!(
                        "budget {} of {}: {period} is forecast to end at {}, {}% of {} (run rate of the last complete days)",
                        budget.id, budget.node, money(status.forecast), status.forecast_percent, money(budget.amount)
                    ),
                ));
            }
        }
    }

    /// Quotas approached, stale regions, gaps and unknown meters, from the usage facts.
    fn usage_findings(
        &self,
        period: Period,
        at: Instant,
        facts: &UsageFacts,
        last_usage: &BTreeMap<String, Instant>,
        findings: &mut Vec<Finding>,
    ) -> Result<(), CmsError> {
        let settings = &self.state.monitoring;
        let node_of = |subscription: &str| self.node_of(subscription);
        let hierarchy = &self.state.hierarchy;
        // Quotas; those of offers in use that no meters measure are reported once per offer.
        let mut unchecked: BTreeSet<(String, String)> = BTreeSet::new();
        for (subscription, latest) in &facts.latest {
            let Some(offer) = hierarchy
                .find_ignoring_case(subscription)
                .and_then(|node| self.state.channel.subscription(&hierarchy.node(node).id))
                .and_then(|info| info.offer.clone())
            else {
                continue;
            };
            let quotas = self.state.catalogue.quota_of_offer(&offer)?;
            for quota in quotas.keys().filter(|quota| !settings.quota_meters.contains_key(*quota)) {
                unchecked.insert((offer.clone(), quota.clone()));
            }
            for used in detect::quotas_approached(Some(latest), &quotas, settings) {
                let node = node_of(subscription);
                findings.push(Finding::new(
                    AlertKind::QuotaApproach,
                    if used.used >= used.limit { Severity::Critical } else { Severity::Warning },
                    &node,
                    &format!("{node}:{}", used.quota),
                    format!(
                        "subscription {node} used {} of its {} quota {} in the hour from {} (offer {offer})",
                        used.used,
                        used.quota,
                        used.limit,
                        used.hour.to_rfc3339()
                    ),
                ));
            }
        }
        for (offer, quota) in &unchecked {
            findings.push(Finding::new(
                AlertKind::QuotaUnchecked,
                Severity::Info,
                PLATFORM_ID,
                &format!("{offer}:{quota}"),
                format!(
                    "offer {offer} grants a {quota} quota that is not checked: no meters measure it (monitoring settings, quota_meters)"
                ),
            ));
        }
        // Stale regions.
        for stale in detect::stale_regions(last_usage, settings, at) {
            let since = stale.last_usage.map_or_else(
                || "never had usage".to_owned(),
                |last| format!("last usage ended {}", last.to_rfc3339()),
            );
            findings.push(Finding::new(
                AlertKind::IngestionStale,
                Severity::Critical,
                PLATFORM_ID,
                &stale.region,
                format!(
                    "region {}: no new usage for more than {} hours ({since})",
                    stale.region, stale.allowed_hours
                ),
            ));
        }
        // Gaps.
        for ((subscription, resource, meter), hours) in &facts.hours {
            let Some(gap) = detect::gaps(hours, settings.gap_context_hours) else { continue };
            let node = node_of(subscription);
            findings.push(Finding::new(
                AlertKind::UsageGap,
                Severity::Warning,
                &node,
                &format!("{node}:{resource}:{meter}"),
                format!(
                    "{resource} ({node}, meter {meter}): {} hours missing between {} and {}",
                    gap.missing,
                    gap.first.to_rfc3339(),
                    (gap.last + Duration::hours(1)).to_rfc3339()
                ),
            ));
        }
        // Unknown meters.
        for (meter, (records, subscriptions)) in &facts.unknown_meters {
            findings.push(Finding::new(
                AlertKind::UnknownMeter,
                Severity::Warning,
                PLATFORM_ID,
                &meter.to_string(),
                format!(
                    "meter {meter} is unknown: {records} records of {} subscriptions in {period} are kept, not priced",
                    subscriptions.len()
                ),
            ));
        }
        Ok(())
    }

    /// Failed jobs, and refused and late records of the latest pulls.
    fn job_findings(&self, findings: &mut Vec<Finding>) {
        // The latest runs of each job: failures, refused and late records of pulls.
        // An evaluation's own failure is not a finding: this evaluation supersedes it (and a failing one
        // raises its failure itself, in `tick`).
        for run in self.state.jobs.latest_per_job().filter(|run| run.job != Job::Evaluate) {
            if let JobOutcome::Failed { code, message } = &run.outcome {
                findings.push(Finding::new(
                    AlertKind::JobFailure,
                    Severity::Critical,
                    PLATFORM_ID,
                    &run.job.name(),
                    format!("job {} failed at {}: [{code}] {message}", run.key, run.started.to_rfc3339()),
                ));
            }
            let subject = match &run.job {
                Job::Pull { region } => format!("region {region}"),
                Job::Ingest { source } => format!("ingestion of {source}"),
                _ => continue,
            };
            let related = match &run.job {
                Job::Pull { region } => region.clone(),
                job => job.name(),
            };
            let count = |name: &str| run.counts.get(name).copied().unwrap_or_default();
            if count("refused") > 0 {
                findings.push(Finding::new(
                    AlertKind::RefusedRecords,
                    Severity::Warning,
                    PLATFORM_ID,
                    &related,
                    format!("{subject}: the run {} refused {} records", run.key, count("refused")),
                ));
            }
            if count("late_refused") > 0 {
                findings.push(Finding::new(
                    AlertKind::LateUsage,
                    Severity::Warning,
                    PLATFORM_ID,
                    &related,
                    format!(
                        "{subject}: the run {} held {} records of invoiced periods beyond the look-back window (refused)",
                        run.key,
                        count("late_refused")
                    ),
                ));
            }
        }
    }

    /// Anomalous days of each subscription's cost.
    fn anomaly_findings(&self, series: &CostSeries, findings: &mut Vec<Finding>) {
        let settings = &self.state.monitoring;
        let node_of = |subscription: &str| self.node_of(subscription);
        // Anomalies: each subscription's daily cost per currency.
        let mut per_subscription: BTreeMap<(&str, Currency), Vec<Decimal>> = BTreeMap::new();
        for ((_, subscription, _, currency), days) in &series.lines {
            let sums = per_subscription
                .entry((subscription, *currency))
                .or_insert_with(|| vec![Decimal::ZERO; days.len()]);
            for (sum, day) in sums.iter_mut().zip(days) {
                *sum += day;
            }
        }
        for ((subscription, currency), daily) in &per_subscription {
            if let Some(anomaly) = detect::anomaly(daily, series.complete_days, settings) {
                let node = node_of(subscription);
                let day = series.days.get(anomaly.day).map(ToString::to_string).unwrap_or_default();
                findings.push(Finding::new(
                    AlertKind::UsageAnomaly,
                    Severity::Warning,
                    &node,
                    &format!("{node}:{currency}"),
                    format!(
                        "subscription {node}: cost on {day} was {} {currency}, above {}x its trailing average of {} {currency}",
                        anomaly.cost,
                        settings.anomaly_factor,
                        anomaly.average.round_dp(2)
                    ),
                ));
            }
        }
    }

    /// Evaluate budgets and alerts at `at` and record the evaluation: new alerts open, found ones are
    /// updated, the rest resolve. Returns the changes.
    pub fn evaluate_alerts(
        &mut self,
        principal: &Principal,
        at: Instant,
    ) -> Result<Vec<(u64, AlertChange)>, CmsError> {
        self.refresh()?;
        let findings = self.findings(at)?;
        let before = self.state.alerts.clone();
        self.execute(principal, at, &Event::AlertsEvaluated { findings, partial: false })?;
        Ok(alert_changes(&before, &self.state.alerts))
    }

    /// Run whatever is due at `now`, as `principal` (give it the Service role): pull each region from its
    /// checkpoints, draft the invoices of every ended month not yet done and issue them after the issue
    /// delay (when the settings say so; after a silence, each month it missed, oldest first: see
    /// `billing_periods`), purge by retention once a day, then evaluate budgets and alerts (with the budgets
    /// of the months that ended since the last evaluation: [`Self::closing_months`]) and deliver their
    /// changes through the hooks. Every job run is recorded (`JobRecorded`); a job whose slot
    /// already ran to completion is skipped, so ticking twice at one instant does no work twice. A failed
    /// job is recorded, raises a `job_failure` alert, and is tried again by a later tick.
    pub fn tick(
        &mut self,
        principal: &Principal,
        now: Instant,
        hooks: &mut dyn TickHooks,
    ) -> Result<TickReport, CmsError> {
        self.refresh()?;
        let settings = self.state.monitoring.clone();
        let mut report = TickReport { at: Some(now), ..TickReport::default() };
        // Pulls.
        let pull_slot = slot(now, settings.pull_every_hours);
        for region in hooks.regions() {
            let job = Job::Pull { region: region.clone() };
            let key = format!("{}:{}", job.name(), pull_slot.to_rfc3339());
            self.run_job(principal, now, hooks, key, job, &mut report, &mut |cms, hooks| {
                cms.pull_region(principal, now, hooks, &region)
            })?;
        }
        // Invoices: every month from the oldest the scheduler has not settled to the previous one.
        let delay = Duration::days(i64::from(self.state.invoice_settings.issue_delay_days));
        for period in self.billing_periods(now)? {
            let job = Job::Draft { period };
            let key = job.name();
            self.run_job(principal, now, hooks, key, job, &mut report, &mut |cms, _| {
                let drafts = cms.preview_invoices(principal, period, None)?;
                Ok(BTreeMap::from([("drafts".to_owned(), drafts.len() as u64)]))
            })?;
            if settings.auto_issue && now >= period.end + delay {
                let job = Job::Issue { period };
                let key = job.name();
                self.run_job(principal, now, hooks, key, job, &mut report, &mut |cms, _| {
                    let issued = cms.issue_invoices(principal, now, period, None)?;
                    Ok(BTreeMap::from([("issued".to_owned(), issued.len() as u64)]))
                })?;
            }
        }
        // Retention, once a day.
        let key = format!("purge:{}", now.date_naive());
        self.run_job(principal, now, hooks, key, Job::Purge, &mut report, &mut |cms, _| {
            let purged = cms.purge_usage(principal, now)?;
            Ok(BTreeMap::from([
                ("periods".to_owned(), purged.len() as u64),
                ("records".to_owned(), purged.iter().map(|(_, records)| records).sum()),
            ]))
        })?;
        // Budgets and alerts, last: they see this tick's pulls and failures (and run again within their slot
        // when other jobs ran now).
        let key = format!("evaluate:{}", slot(now, settings.evaluate_every_hours).to_rfc3339());
        let before = self.state.alerts.clone();
        let evaluated =
            self.run_job(principal, now, hooks, key.clone(), Job::Evaluate, &mut report, &mut |cms, _| {
                let changes = cms.evaluate_alerts(principal, now)?;
                let opened =
                    changes.iter().filter(|(_, change)| *change == AlertChange::Opened).count() as u64;
                let resolved =
                    changes.iter().filter(|(_, change)| *change == AlertChange::Resolved).count() as u64;
                Ok(BTreeMap::from([("opened".to_owned(), opened), ("resolved".to_owned(), resolved)]))
            })?;
        if evaluated == Some(false) {
            // The evaluation itself failed: raise its failure without resolving anything.
            let findings: Vec<Finding> = self
                .state
                .jobs
                .latest(&key)
                .and_then(|run| match &run.outcome {
                    JobOutcome::Failed { code, message } => Some(Finding::new(
                        AlertKind::JobFailure,
                        Severity::Critical,
                        PLATFORM_ID,
                        &run.job.name(),
                        format!("job {key} failed at {}: [{code}] {message}", run.started.to_rfc3339()),
                    )),
                    JobOutcome::Done => None,
                })
                .into_iter()
                .collect();
            self.execute(principal, now, &Event::AlertsEvaluated { findings, partial: true })?;
        }
        // What changed, delivered.
        report.alert_changes = alert_changes(&before, &self.state.alerts);
        for (id, change) in &report.alert_changes {
            if let Some(alert) = self.state.alerts.alerts.get(id)
                && let Err(error) = hooks.deliver(alert, *change)
            {
                report.delivery_failures.push((*id, error));
            }
        }
        Ok(report)
    }

    /// The months a tick at `now` drafts (and, with `auto_issue`, issues), oldest first: from the oldest
    /// month the scheduler has not settled up to the month before `now`. A month is settled once its
    /// `draft:<period>` ran to completion and, with `auto_issue`, its `issue:<period>` did too (or, never
    /// tried, the month was closed by other means: invoiced by hand). The range also starts no later than
    /// the month after the newest month the scheduler ever drafted, so months a long silence skipped are
    /// caught up; before the scheduler's first draft, it starts at the oldest month with stored usage that
    /// is not closed (one pass over the stored usage, once). Months already done are skipped by their keys.
    fn billing_periods(&self, now: Instant) -> Result<Vec<Period>, CmsError> {
        let previous = previous_month(month_of(now)?)?;
        let jobs = &self.state.jobs;
        let auto_issue = self.state.monitoring.auto_issue;
        let settled = |period: &Period| {
            let issued = || {
                jobs.latest(&Job::Issue { period: *period }.name())
                    .map_or_else(|| self.state.closed_periods.contains(period), JobRun::succeeded)
            };
            jobs.succeeded(&Job::Draft { period: *period }.name()) && (!auto_issue || issued())
        };
        let mut start = previous;
        if let Some(newest) = jobs.billed_periods().next_back() {
            start = start.min(newest.next_month()?);
            if let Some(oldest) = jobs.billed_periods().find(|period| !settled(period)) {
                start = start.min(*oldest);
            }
        } else if let Some(oldest) = self.oldest_open_usage_month(previous)? {
            start = start.min(oldest);
        }
        let mut periods = Vec::new();
        let mut period = start;
        while period <= previous {
            periods.push(period);
            period = period.next_month()?;
        }
        Ok(periods)
    }

    /// The oldest calendar month before `before` with stored usage, among the months not closed.
    fn oldest_open_usage_month(&self, before: Period) -> Result<Option<Period>, CmsError> {
        let epoch = Instant::UNIX_EPOCH;
        if before.start <= epoch {
            return Ok(None);
        }
        let mut oldest: Option<Instant> = None;
        let closed = &self.state.closed_periods;
        self.store.for_each_usage(&Period::new(epoch, before.start)?, &mut |record| {
            if oldest.is_none_or(|oldest| record.start < oldest)
                && !closed.iter().any(|period| period.contains(record.start))
            {
                oldest = Some(record.start);
            }
            Ok(())
        })?;
        oldest.map(month_of).transpose()
    }

    /// Pull one region from its checkpoints up to the hour, ingesting as `principal` at `now`.
    fn pull_region(
        &mut self,
        principal: &Principal,
        now: Instant,
        hooks: &mut dyn TickHooks,
        region: &str,
    ) -> Result<BTreeMap<String, u64>, CmsError> {
        let cms = self;
        let checkpoints: Vec<Checkpoint> = cms
            .checkpoints()?
            .into_iter()
            .filter(|checkpoint| checkpoint.region.eq_ignore_ascii_case(region))
            .collect();
        let until = slot(now, 1);
        let mut source = hooks.source(region, &checkpoints, until)?;
        let mut counts = BTreeMap::new();
        while let Some(sourced) = source.next_page()? {
            let mut summary = cms.ingest_as(principal, now, &sourced.page.records, &sourced.origin)?;
            summary.pages = 1;
            add_counts(&mut counts, &summary);
        }
        Ok(counts)
    }

    /// Record usage ingested outside the scheduler (a `cms ingest` run, an application's own batches) as a
    /// job run of `Job::Ingest { source }`, so that its refused and late records raise alerts at the next
    /// evaluation (and a clean run of the same source resolves them).
    pub fn record_ingestion(
        &mut self,
        principal: &Principal,
        at: Instant,
        source: &str,
        summary: &crate::engine::IngestSummary,
    ) -> Result<u64, CmsError> {
        let job = Job::Ingest { source: source.to_owned() };
        let mut counts = BTreeMap::new();
        add_counts(&mut counts, summary);
        let run = JobRun {
            key: format!("{}:{}", job.name(), at.to_rfc3339()),
            job,
            started: at,
            finished: at,
            outcome: JobOutcome::Done,
            counts,
        };
        self.execute(principal, at, &Event::JobRecorded { run })
    }

    /// Run one job if its key is due (the evaluation also when this tick ran other jobs: their outcomes
    /// are new facts), and record the run. Returns whether it ran and succeeded (`None`: it
    /// was not due).
    #[allow(clippy::too_many_arguments)]
    fn run_job(
        &mut self,
        principal: &Principal,
        now: Instant,
        hooks: &mut dyn TickHooks,
        key: String,
        job: Job,
        report: &mut TickReport,
        work: &mut JobWork<'_, S>,
    ) -> Result<Option<bool>, CmsError> {
        if !self.state.jobs.is_due(&key, now) && (job != Job::Evaluate || report.runs.is_empty()) {
            report.skipped.push(key);
            return Ok(None);
        }
        let started = hooks.now().unwrap_or(now).max(now);
        let result = work(self, hooks);
        let finished = hooks.now().unwrap_or(now).max(started);
        let (outcome, counts) = match result {
            Ok(counts) => (JobOutcome::Done, counts),
            Err(error) => (
                JobOutcome::Failed { code: error.code().to_owned(), message: error.to_string() },
                BTreeMap::new(),
            ),
        };
        let run = JobRun { key, job, started, finished, outcome, counts };
        let succeeded = run.succeeded();
        self.execute(principal, now, &Event::JobRecorded { run: run.clone() })?;
        report.runs.push(run);
        Ok(Some(succeeded))
    }

    /// The dashboard of the principal's subtree for `period` as of `at`.
    pub fn dashboard(
        &self,
        principal: &Principal,
        period: Period,
        at: Instant,
    ) -> Result<Dashboard, CmsError> {
        self.authorize_read(principal, Action::ReadBilling)?;
        let scope = self.scope_of(principal)?;
        let hierarchy = &self.state.hierarchy;
        let series = self.cost_series(period, at)?;
        let in_scope = |key: &LineKey| self.within(scope, &key.1);
        let daily = series.daily(&in_scope);
        let as_of = at.min(period.end);
        let month_to_date: Vec<Amount> = daily
            .iter()
            .map(|(currency, days)| Amount { currency: *currency, amount: days.iter().copied().sum() })
            .collect();
        let projection = daily
            .iter()
            .map(|(currency, days)| Amount {
                currency: *currency,
                amount: budgets::forecast(period, as_of, days).round_dp(currency.minor_unit),
            })
            .collect();
        let by_day = daily
            .iter()
            .flat_map(|(currency, days)| {
                series.days.iter().zip(days).map(|(day, amount)| DayCost {
                    day: *day,
                    currency: *currency,
                    amount: *amount,
                })
            })
            .collect();
        let previous_period = self.previous_cost(scope, period)?;
        // Rankings.
        let name_of = |id: &str| hierarchy.get(id).map_or_else(|| id.to_owned(), |node| node.name.clone());
        let facts = self.usage_facts(period, at)?;
        let mut tenants: BTreeMap<(String, Currency), Decimal> = BTreeMap::new();
        let mut meters: BTreeMap<(MeterId, Currency), Decimal> = BTreeMap::new();
        let mut regions: BTreeMap<(String, Currency), Decimal> = BTreeMap::new();
        for (key, days) in series.lines.iter().filter(|(key, _)| in_scope(key)) {
            let total: Decimal = days.iter().copied().sum();
            *tenants.entry((key.0.clone(), key.3)).or_default() += total;
            *meters.entry((key.2, key.3)).or_default() += total;
            let region = facts.region_of.get(&key.1).cloned().unwrap_or_else(|| "unknown".into());
            *regions.entry((region, key.3)).or_default() += total;
        }
        let top_tenants = ranked(
            tenants.into_iter().map(|((id, currency), amount)| (name_of(&id), id, currency, amount)),
            10,
        );
        let top_meters = ranked(
            meters.into_iter().map(|((meter, currency), amount)| {
                (
                    meter.info().map_or_else(|| meter.to_string(), |info| info.name.to_owned()),
                    meter.to_string(),
                    currency,
                    amount,
                )
            }),
            10,
        );
        let by_region = ranked(
            regions
                .into_iter()
                .map(|((region, currency), amount)| (region.clone(), region, currency, amount)),
            usize::MAX,
        );
        let commissions = self.commissions_to_date(scope, &series);
        let invoices = self.documents_by_state(principal, period)?;
        // Regions, for the platform.
        let regions =
            if scope == hierarchy.root() { self.region_health(period, at, &facts)? } else { Vec::new() };
        let alerts = self.alerts(principal, false)?;
        let budgets = self
            .state
            .budgets
            .values()
            .filter(|budget| self.within(scope, &budget.node))
            .filter_map(|budget| self.budget_status(budget, period, as_of, &series))
            .collect();
        Ok(Dashboard {
            scope: hierarchy.node(scope).id.clone(),
            scope_name: hierarchy.node(scope).name.clone(),
            period,
            at,
            month_to_date,
            projection,
            previous_period,
            top_tenants,
            top_meters,
            by_region,
            by_day,
            invoices,
            commissions,
            regions,
            alerts,
            budgets,
        })
    }

    /// The previous period's cost of a scope, per currency: its month-end (as frozen, when closed).
    fn previous_cost(&self, scope: NodeIndex, period: Period) -> Result<Vec<Amount>, CmsError> {
        let previous = previous_month(period)?;
        let mut costs: BTreeMap<Currency, Decimal> = BTreeMap::new();
        for invoice in self
            .month_end(previous, self.state.rules)?
            .invoices
            .iter()
            .filter(|invoice| invoice.buyer_kind == NodeKind::Tenant)
        {
            for line in invoice.lines.iter().filter(|line| self.within(scope, &line.subscription)) {
                *costs.entry(invoice.currency).or_default() += line.amount;
            }
        }
        Ok(costs.into_iter().map(|(currency, amount)| Amount { currency, amount }).collect())
    }

    /// Commissions earned to date by the scope's partners, and overrides by its distributors, in the
    /// currency of the invoices they are computed on (a partner's network bills in one currency, or its
    /// month-end fails): the payer's invoice to the partner's first tenant, or to any tenant below the
    /// distributor. An override appears under the distributor's id, its name followed by "(override)".
    fn commissions_to_date(&self, scope: NodeIndex, series: &CostSeries) -> Vec<Ranked> {
        let Some(report) = series.report.as_ref() else { return Vec::new() };
        let hierarchy = &self.state.hierarchy;
        let tenant_invoice = |issuer: Option<&str>, keep: &dyn Fn(&str) -> bool| {
            report.invoices.iter().find(|invoice| {
                invoice.buyer_kind == NodeKind::Tenant
                    && issuer.is_none_or(|issuer| invoice.issuer == issuer)
                    && keep(&invoice.buyer)
            })
        };
        let commissions =
            report.commissions.iter().filter(|statement| self.within(scope, &statement.partner)).filter_map(
                |statement| {
                    let tenant = statement.tenants.first()?;
                    let invoice = tenant_invoice(Some(&statement.payer), &|buyer| buyer == tenant.tenant)?;
                    Some(Ranked {
                        id: statement.partner.clone(),
                        name: statement.partner_name.clone(),
                        currency: invoice.currency,
                        amount: statement.commission,
                    })
                },
            );
        let overrides = report
            .overrides
            .iter()
            .filter(|statement| self.within(scope, &statement.distributor))
            .filter_map(|statement| {
                let distributor = hierarchy.find(&statement.distributor)?;
                let below = |buyer: &str| {
                    hierarchy.find(buyer).is_some_and(|node| hierarchy.is_within(node, distributor))
                };
                let invoice = tenant_invoice(None, &below)?;
                Some(Ranked {
                    id: statement.distributor.clone(),
                    name: format!("{} (override)", statement.distributor_name),
                    currency: invoice.currency,
                    amount: statement.amount,
                })
            });
        commissions.chain(overrides).collect()
    }

    /// The period's documents the principal sees, counted by state and currency.
    fn documents_by_state(
        &self,
        principal: &Principal,
        period: Period,
    ) -> Result<Vec<DocumentsInState>, CmsError> {
        let mut documents: BTreeMap<(DocumentState, Currency), (u64, Decimal)> = BTreeMap::new();
        for listed in self.invoice_documents(principal, Some(period))? {
            let entry = documents.entry((listed.state, listed.document.currency)).or_default();
            entry.0 += 1;
            entry.1 += listed.document.total;
        }
        Ok(documents
            .into_iter()
            .map(|((state, currency), (count, total))| DocumentsInState { state, currency, count, total })
            .collect())
    }

    fn region_health(
        &self,
        period: Period,
        at: Instant,
        facts: &UsageFacts,
    ) -> Result<Vec<RegionHealth>, CmsError> {
        let settings = &self.state.monitoring;
        let last_usage = self.last_usage(period, at, facts)?;
        let stale: BTreeSet<String> =
            detect::stale_regions(&last_usage, settings, at).into_iter().map(|stale| stale.region).collect();
        let mut names: BTreeSet<String> = last_usage.keys().cloned().collect();
        names.extend(settings.regions.keys().map(|region| region.to_ascii_lowercase()));
        let pulls: BTreeMap<String, &JobRun> = self
            .state
            .jobs
            .latest_per_job()
            .filter_map(|run| match &run.job {
                Job::Pull { region } => Some((region.to_ascii_lowercase(), run)),
                _ => None,
            })
            .collect();
        names.extend(pulls.keys().cloned());
        // Every ingestion run of a region that started in the period (up to `at`): its pulls, and the runs
        // of sources that name it (`folder:<region>`).
        let runs: Vec<(String, &JobRun)> = self
            .state
            .jobs
            .runs
            .iter()
            .filter(|run| period.contains(run.started) && run.started <= at)
            .filter_map(|run| match &run.job {
                Job::Pull { region } => Some((region.to_ascii_lowercase(), run)),
                Job::Ingest { source } => {
                    source.split_once(':').map(|(_, region)| (region.to_ascii_lowercase(), run))
                }
                _ => None,
            })
            .filter(|(region, _)| !region.is_empty())
            .collect();
        names.extend(runs.iter().map(|(region, _)| region.clone()));
        Ok(names
            .into_iter()
            .map(|region| {
                let last = last_usage.get(&region).copied();
                let gaps = facts
                    .hours
                    .iter()
                    .filter(|((subscription, _, _), hours)| {
                        facts.region_of.get(subscription) == Some(&region)
                            && detect::gaps(hours, settings.gap_context_hours).is_some()
                    })
                    .count() as u64;
                let pull = pulls.get(&region);
                let refused_records = runs
                    .iter()
                    .filter(|(name, _)| *name == region)
                    .map(|(_, run)| run.counts.get("refused").copied().unwrap_or_default())
                    .sum();
                RegionHealth {
                    last_usage: last,
                    lag_hours: last.map(|last| (at - last).num_hours()),
                    stale: stale.contains(&region),
                    gaps,
                    refused_records,
                    last_pull: pull.map(|run| (run.started, run.succeeded())),
                    region,
                }
            })
            .collect())
    }
}

/// Add an ingestion summary's counts to a job run's.
fn add_counts(counts: &mut BTreeMap<String, u64>, summary: &crate::engine::IngestSummary) {
    let late = summary.refused.iter().filter(|refused| refused.code == "late_usage_refused").count() as u64;
    for (name, value) in [
        ("pages", summary.pages),
        ("received", summary.received),
        ("stored", summary.stored),
        ("duplicates", summary.duplicates),
        ("corrections", summary.corrections.len() as u64),
        ("refused", summary.refused.len() as u64 - late),
        ("late_refused", late),
        ("late_adjustments", summary.late_adjustments),
        ("unknown_meter_records", summary.unknown_meters.values().sum()),
    ] {
        *counts.entry(name.to_owned()).or_insert(0) += value;
    }
}

/// The alerts opened, escalated or resolved between two books.
fn alert_changes(
    before: &crate::monitoring::alerts::AlertBook,
    after: &crate::monitoring::alerts::AlertBook,
) -> Vec<(u64, AlertChange)> {
    let mut changes = Vec::new();
    for (id, alert) in &after.alerts {
        match before.alerts.get(id) {
            None if alert.is_open() => changes.push((*id, AlertChange::Opened)),
            Some(old) if old.is_open() && !alert.is_open() => changes.push((*id, AlertChange::Resolved)),
            Some(old) if alert.severity > old.severity => changes.push((*id, AlertChange::Escalated)),
            _ => {}
        }
    }
    changes
}

/// Rank (name, id, currency, amount) entries by amount, highest first, at most `limit` per currency.
fn ranked(entries: impl Iterator<Item = (String, String, Currency, Decimal)>, limit: usize) -> Vec<Ranked> {
    let mut all: Vec<Ranked> =
        entries.map(|(name, id, currency, amount)| Ranked { id, name, currency, amount }).collect();
    all.sort_by(|a, b| a.currency.cmp(&b.currency).then(b.amount.cmp(&a.amount)).then(a.id.cmp(&b.id)));
    let mut kept: BTreeMap<Currency, usize> = BTreeMap::new();
    all.retain(|entry| {
        let count = kept.entry(entry.currency).or_default();
        *count += 1;
        *count <= limit
    });
    all
}

/// The calendar month an instant falls in.
pub fn month_of(at: Instant) -> Result<Period, CmsError> {
    Period::month(at.year(), at.month())
}

/// The calendar month before a period's start.
pub fn previous_month(period: Period) -> Result<Period, CmsError> {
    month_of(period.start - Duration::seconds(1))
}
