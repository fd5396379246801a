//! Budgets, alerts, the scheduler and dashboard data, driven by the clock through November 2026.
//!
//! The channel: platform > Contoso (partner) > T1 (tenant) > S1, S2; platform > Fabrikam (partner) > T3 >
//! S3. One price: 0.05 per vCore-hour (Base VM Size Hours). S1 runs 8 vCores every hour: 24 x 8 x 0.05 =
//! 9.60 a day. T1's budget: 250.00 a month, warning at 80 % (200.00), breach at 100 %.
//! - Forecast (run rate of the complete days): after day 1, 9.60 + 9.60 x 29 remaining days = 288.00, at
//!   least 250.00, so the forecast alert opens at the first evaluation, on 2 November.
//! - Warning: 9.60 x d reaches 200.00 at d = 21 (201.60; d = 20 gives 192.00): opens on 22 November 00:00.
//! - Breach: 9.60 x d reaches 250.00 at d = 27 (259.20; d = 26 gives 249.60): opens on 28 November 00:00,
//!   and the warning and the forecast resolve (the breach supersedes them).

use std::collections::BTreeMap;

use chrono::{Duration, TimeZone, Utc};
use cms_core::engine::monitoring::{NoHooks, TickHooks};
use cms_core::engine::{Cms, DocumentState, Event, Principal};
use cms_core::formats::usage_api::UsagePage;
use cms_core::governance::rbac::{Role, RoleAssignment};
use cms_core::model::catalogue::{Offer, OfferState, Plan};
use cms_core::model::channel::SubscriptionInfo;
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::meter::MeterId;
use cms_core::model::money::{Currency, parse_decimal};
use cms_core::model::price_book::{BookList, PriceScope, PriceVersion};
use cms_core::model::pricing::{MeterPrice, PriceModel};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::UsageRecord;
use cms_core::monitoring::alerts::{Alert, AlertChange, AlertKind, AlertStatus, Finding, Severity};
use cms_core::monitoring::budgets::{Budget, forecast};
use cms_core::monitoring::jobs::{Job, MonitoringSettings};
use cms_core::source::{Checkpoint, Granularity, PageOrigin, ReportedWindow, SourcedPage, UsageSource};
use cms_core::store::{MemoryStore, Store};
use cms_core::{CmsError, Decimal};
use proptest::prelude::*;

const VM: &str = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5";
const UNKNOWN: &str = "00000000-0000-0000-0000-0000000000AA";

fn dec(text: &str) -> Decimal {
    parse_decimal(text).unwrap()
}

fn meter(text: &str) -> MeterId {
    text.parse().unwrap()
}

fn at(month: u32, day: u32, hour: u32) -> Instant {
    Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0).unwrap()
}

fn november() -> Period {
    Period::month(2026, 11).unwrap()
}

fn operator() -> Principal {
    Principal::platform("operator")
}

fn scheduler() -> Principal {
    Principal::platform("scheduler")
}

fn add(id: &str, kind: NodeKind, parent: Option<&str>) -> Event {
    Event::NodeAdded { id: id.into(), kind, parent: parent.map(Into::into), name: format!("{id} name") }
}

fn setup() -> Cms<MemoryStore> {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    let mut list = BookList::new("std", "Standard", Currency::USD);
    list.versions.push(PriceVersion::own(
        at(1, 1, 0),
        [(meter(VM), MeterPrice::new("vCore-hours", PriceModel::per_unit(dec("0.05"))))]
            .into_iter()
            .collect(),
    ));
    let events = vec![
        add("contoso", NodeKind::Partner, None),
        add("fabrikam", NodeKind::Partner, None),
        add("t1", NodeKind::Tenant, Some("contoso")),
        add("t3", NodeKind::Tenant, Some("fabrikam")),
        add("s1", NodeKind::Subscription, Some("t1")),
        add("s2", NodeKind::Subscription, Some("t1")),
        add("s3", NodeKind::Subscription, Some("t3")),
        Event::PriceListCreated { list },
        Event::PriceListAssigned { scope: PriceScope::Default, list: "std".into() },
        Event::BudgetSet { budget: budget("b-t1", "t1", "250") },
    ];
    cms.execute_all(&operator(), at(10, 1, 0), &events).unwrap();
    cms
}

fn budget(id: &str, node: &str, amount: &str) -> Budget {
    Budget {
        id: id.into(),
        node: node.into(),
        amount: dec(amount),
        currency: Currency::USD,
        warning_percent: dec("80"),
        breach_percent: dec("100"),
        forecast: true,
    }
}

fn record(subscription: &str, meter_id: &str, start: Instant, quantity: &str) -> UsageRecord {
    UsageRecord {
        subscription: subscription.into(),
        meter: meter(meter_id),
        start,
        end: start + Duration::hours(1),
        quantity: dec(quantity),
        resource_uri: format!("/subscriptions/{subscription}/resourceGroups/rg/providers/x/vm"),
        location: "local".into(),
        ..UsageRecord::default()
    }
}

/// S1's usage of one day: 8 vCores every hour.
fn day_of_s1(day: u32) -> Vec<UsageRecord> {
    (0..24).map(|hour| record("s1", VM, at(11, day, hour), "8")).collect()
}

fn ingest(cms: &mut Cms<MemoryStore>, records: &[UsageRecord]) {
    let summary = cms.ingest(records, &PageOrigin::named("test page")).unwrap();
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
}

fn settings(change: impl FnOnce(&mut MonitoringSettings)) -> Event {
    let mut settings = MonitoringSettings::default();
    change(&mut settings);
    Event::MonitoringSettingsSet { settings }
}

fn of_kind(cms: &Cms<MemoryStore>, kind: AlertKind) -> Vec<Alert> {
    cms.state().alerts.alerts.values().filter(|alert| alert.kind == kind).cloned().collect()
}

fn only(cms: &Cms<MemoryStore>, kind: AlertKind) -> Alert {
    let alerts = of_kind(cms, kind);
    assert_eq!(alerts.len(), 1, "{kind:?}: {alerts:#?}");
    alerts.into_iter().next().unwrap()
}

#[test]
fn budgets_cross_their_thresholds_on_the_expected_days_and_a_silent_region_goes_stale() {
    let mut cms = setup();
    cms.execute(&operator(), at(10, 1, 0), &settings(|s| s.regions = BTreeMap::from([("local".into(), 6)])))
        .unwrap();
    let mut warned_on = None;
    for day in 1..=28 {
        ingest(&mut cms, &day_of_s1(day));
        let now = at(11, day, 0) + Duration::days(1);
        let report = cms.tick(&scheduler(), now, &mut NoHooks).unwrap();
        assert!(!report.failed(), "{report:#?}");
        let status = &cms.budget_statuses(&operator(), november(), now).unwrap()[0];
        assert_eq!(status.actual, dec("9.60") * Decimal::from(day), "day {day}");
        if warned_on.is_none() && !of_kind(&cms, AlertKind::BudgetWarning).is_empty() {
            warned_on = Some(day + 1);
        }
    }
    assert_eq!(warned_on, Some(22));
    let forecast = only(&cms, AlertKind::BudgetForecast);
    assert_eq!(forecast.first_seen, at(11, 2, 0));
    assert_eq!(forecast.resolved, Some((None, at(11, 28, 0))));
    assert_eq!(forecast.scope, "t1");
    assert!(forecast.message.contains("288.00 USD"), "{}", forecast.message);
    let warning = only(&cms, AlertKind::BudgetWarning);
    assert_eq!((warning.first_seen, warning.status), (at(11, 22, 0), AlertStatus::Resolved));
    let breach = only(&cms, AlertKind::BudgetBreach);
    assert_eq!((breach.first_seen, breach.last_seen), (at(11, 28, 0), at(11, 29, 0)));
    assert_eq!((breach.status, breach.severity), (AlertStatus::Open, Severity::Critical));
    assert!(breach.message.contains("268.80 USD"), "the latest finding's: {}", breach.message);

    // The last usage ended on 29 November 00:00; 6 hours of silence are allowed.
    assert!(of_kind(&cms, AlertKind::IngestionStale).is_empty());
    for hour in 1..=6 {
        cms.tick(&scheduler(), at(11, 29, hour), &mut NoHooks).unwrap();
    }
    assert!(of_kind(&cms, AlertKind::IngestionStale).is_empty(), "silent for 6 hours is allowed");
    cms.tick(&scheduler(), at(11, 29, 7), &mut NoHooks).unwrap();
    let stale = only(&cms, AlertKind::IngestionStale);
    assert_eq!((stale.first_seen, stale.related.as_deref()), (at(11, 29, 7), Some("local")));
    cms.tick(&scheduler(), at(11, 30, 12), &mut NoHooks).unwrap();
    assert_eq!(only(&cms, AlertKind::IngestionStale).last_seen, at(11, 30, 12), "one alert while open");

    // December: the first evaluation checks November's budget once more as of its end (found again: still
    // open, seen now); the next one resolves it. The region is stale until usage arrives again.
    let report = cms.tick(&scheduler(), at(12, 1, 1), &mut NoHooks).unwrap();
    let closing = only(&cms, AlertKind::BudgetBreach);
    assert_eq!((closing.id, closing.status, closing.last_seen), (breach.id, AlertStatus::Open, at(12, 1, 1)));
    assert!(closing.message.contains("268.80 USD spent in 2026-11"), "{}", closing.message);
    let draft = report.runs.iter().find(|run| run.job == Job::Draft { period: november() }).unwrap();
    assert_eq!(draft.counts["drafts"], 1, "T1's November invoice is drafted");
    assert!(!report.runs.iter().any(|run| matches!(run.job, Job::Issue { .. })), "auto_issue is off");
    ingest(&mut cms, &[record("s1", VM, at(12, 1, 1), "8")]);
    let report = cms.tick(&scheduler(), at(12, 1, 3), &mut NoHooks).unwrap();
    assert_eq!(only(&cms, AlertKind::BudgetBreach).resolved, Some((None, at(12, 1, 3))));
    assert!(report.alert_changes.contains(&(breach.id, AlertChange::Resolved)), "{report:#?}");
    assert_eq!(only(&cms, AlertKind::IngestionStale).resolved, Some((None, at(12, 1, 3))));
}

#[test]
fn ticking_twice_at_one_instant_does_no_work_twice() {
    let mut cms = setup();
    ingest(&mut cms, &day_of_s1(1));
    let first = cms.tick(&scheduler(), at(11, 2, 0), &mut NoHooks).unwrap();
    let keys: Vec<&str> = first.runs.iter().map(|run| run.key.as_str()).collect();
    assert_eq!(keys, ["draft:2026-10", "purge:2026-11-02", "evaluate:2026-11-02T00:00:00+00:00"]);
    let events = cms.store().events().unwrap().len();
    let alerts = cms.state().alerts.clone();
    let second = cms.tick(&scheduler(), at(11, 2, 0), &mut NoHooks).unwrap();
    assert!(second.runs.is_empty(), "{second:#?}");
    assert_eq!(second.skipped, keys);
    assert_eq!(cms.store().events().unwrap().len(), events, "nothing recorded");
    assert_eq!(cms.state().alerts, alerts);
    // Within the same hour the evaluation is not due again; the next hour it is.
    let later = cms.tick(&scheduler(), at(11, 2, 0) + Duration::minutes(30), &mut NoHooks).unwrap();
    assert!(later.runs.is_empty());
    let next = cms.tick(&scheduler(), at(11, 2, 1), &mut NoHooks).unwrap();
    assert_eq!(next.runs.len(), 1);
    assert_eq!(next.runs[0].job, Job::Evaluate);
}

#[test]
fn the_scheduler_issues_invoices_after_the_delay_when_asked_to() {
    let mut cms = setup();
    let delay = Event::InvoiceSettingsSet {
        settings: cms_core::billing::invoice::InvoiceSettings { issue_delay_days: 2, ..Default::default() },
    };
    cms.execute_all(&operator(), at(10, 1, 0), &[delay, settings(|s| s.auto_issue = true)]).unwrap();
    ingest(&mut cms, &day_of_s1(5));
    let early = cms.tick(&scheduler(), at(12, 2, 0), &mut NoHooks).unwrap();
    assert!(!early.runs.iter().any(|run| matches!(run.job, Job::Issue { .. })), "not before 3 December");
    let report = cms.tick(&scheduler(), at(12, 3, 0), &mut NoHooks).unwrap();
    let issue = report.runs.iter().find(|run| run.job == Job::Issue { period: november() }).unwrap();
    assert_eq!(issue.counts["issued"], 1);
    let documents = cms.invoice_documents(&operator(), Some(november())).unwrap();
    assert_eq!(documents.len(), 1);
    assert_eq!((documents[0].state, documents[0].document.total), (DocumentState::Issued, dec("9.60")));
    // Never twice, even at a later tick.
    let again = cms.tick(&scheduler(), at(12, 4, 0), &mut NoHooks).unwrap();
    assert!(!again.runs.iter().any(|run| matches!(run.job, Job::Issue { .. })));
    assert_eq!(cms.invoice_documents(&operator(), Some(november())).unwrap().len(), 1);
}

/// A region whose pulls fail on demand, and a sink that records (or refuses) deliveries.
#[derive(Default)]
struct East {
    fail_next: bool,
    pages: Vec<Vec<UsageRecord>>,
    asked: Vec<(usize, Instant)>,
    delivered: Vec<(u64, AlertChange)>,
    refuse_delivery: bool,
}

struct Pages {
    pages: std::vec::IntoIter<Vec<UsageRecord>>,
    until: Instant,
}

impl UsageSource for Pages {
    fn next_page(&mut self) -> Result<Option<SourcedPage>, CmsError> {
        Ok(self.pages.next().map(|records| SourcedPage {
            origin: PageOrigin {
                name: "east page".into(),
                region: "east".into(),
                subscriber: None,
                window: Some(ReportedWindow {
                    start: self.until - Duration::hours(1),
                    end: self.until,
                    granularity: Granularity::Hourly,
                }),
                completes_window: true,
            },
            page: UsagePage { records, next_link: None, api: None },
        }))
    }
}

impl TickHooks for East {
    fn regions(&self) -> Vec<String> {
        vec!["east".into()]
    }

    fn source<'a>(
        &'a mut self,
        region: &str,
        checkpoints: &[Checkpoint],
        until: Instant,
    ) -> Result<Box<dyn UsageSource + 'a>, CmsError> {
        assert_eq!(region, "east");
        self.asked.push((checkpoints.len(), until));
        if std::mem::take(&mut self.fail_next) {
            return Err(CmsError::Http {
                method: "GET".into(),
                url: "https://adminmanagement.east.local/usage".into(),
                status: Some(503),
                message: "service unavailable after 5 tries".into(),
            });
        }
        Ok(Box::new(Pages { pages: std::mem::take(&mut self.pages).into_iter(), until }))
    }

    fn deliver(&mut self, alert: &Alert, change: AlertChange) -> Result<(), String> {
        if self.refuse_delivery {
            return Err(format!("webhook down for alert {}", alert.id));
        }
        self.delivered.push((alert.id, change));
        Ok(())
    }
}

#[test]
fn pulls_are_recorded_and_failures_and_refused_records_raise_alerts_that_resolve() {
    let mut cms = setup();
    let mut east = East { fail_next: true, ..East::default() };
    let report = cms.tick(&scheduler(), at(11, 3, 10) + Duration::minutes(20), &mut east).unwrap();
    let pull = &report.runs[0];
    assert_eq!(pull.key, "pull:east:2026-11-03T10:00:00+00:00");
    assert!(!pull.succeeded());
    assert_eq!(east.asked, [(0, at(11, 3, 10))], "asked up to the hour, no checkpoint yet");
    let failure = only(&cms, AlertKind::JobFailure);
    assert_eq!((failure.related.as_deref(), failure.severity), (Some("pull:east"), Severity::Critical));
    assert!(
        failure.message.contains("[http]") && failure.message.contains("service unavailable"),
        "{}",
        failure.message
    );
    assert_eq!(east.delivered, [(failure.id, AlertChange::Opened)]);

    // The same instant again: the failed pull is not retried (no work twice) ...
    let again = cms.tick(&scheduler(), at(11, 3, 10) + Duration::minutes(20), &mut east).unwrap();
    assert!(again.runs.is_empty());
    // ... a later tick retries it: it succeeds, with one record refused (a daily record where S1 is hourly).
    let mut daily = record("s1", VM, at(11, 3, 0), "192");
    daily.end = at(11, 4, 0);
    east.pages = vec![vec![record("s1", VM, at(11, 3, 9), "8")], vec![daily]];
    let report = cms.tick(&scheduler(), at(11, 3, 10) + Duration::minutes(40), &mut east).unwrap();
    let pull = &report.runs[0];
    assert!(pull.succeeded(), "{pull:#?}");
    assert_eq!((pull.counts["pages"], pull.counts["stored"], pull.counts["refused"]), (2, 1, 1));
    assert_eq!(cms.checkpoints().unwrap().len(), 1);
    assert_eq!(only(&cms, AlertKind::JobFailure).status, AlertStatus::Resolved);
    let refused = only(&cms, AlertKind::RefusedRecords);
    assert_eq!(refused.related.as_deref(), Some("east"));
    assert!(east.delivered.contains(&(failure.id, AlertChange::Resolved)));
    assert!(east.delivered.contains(&(refused.id, AlertChange::Opened)));

    // A clean pull an hour later resolves it; a sink that fails is reported, the alert still resolves.
    east.pages = vec![vec![record("s1", VM, at(11, 3, 10), "8")]];
    east.refuse_delivery = true;
    let report = cms.tick(&scheduler(), at(11, 3, 11), &mut east).unwrap();
    assert_eq!(east.asked.last(), Some(&(1, at(11, 3, 11))), "resumes from the region's checkpoint");
    assert_eq!(only(&cms, AlertKind::RefusedRecords).status, AlertStatus::Resolved);
    assert_eq!(report.delivery_failures, [(refused.id, format!("webhook down for alert {}", refused.id))]);
    let runs = cms.job_runs(&operator(), 100).unwrap();
    assert_eq!(runs.iter().filter(|run| matches!(run.job, Job::Pull { .. })).count(), 3);
}

#[test]
fn gaps_quotas_unknown_meters_and_anomalies_are_found_by_their_stated_rules() {
    let mut cms = setup();
    let plan = Plan {
        id: "p".into(),
        name: "P".into(),
        services: vec![],
        quotas: BTreeMap::from([("vcpus".into(), dec("10")), ("storage_gb".into(), dec("100"))]),
    };
    let offer = Offer {
        id: "o".into(),
        name: "O".into(),
        base_plan: "p".into(),
        addon_plans: vec![],
        state: OfferState::Public,
    };
    cms.execute_all(
        &operator(),
        at(10, 1, 0),
        &[
            Event::PlanPut { plan },
            Event::OfferPut { offer },
            Event::SubscriptionSet {
                id: "s1".into(),
                info: SubscriptionInfo { offer: Some("o".into()), ..SubscriptionInfo::default() },
            },
        ],
    )
    .unwrap();
    // S1: 9 vCores of a 10 vCPU quota (90 %: approached). S2: hours 0-3 and 7-9 of 3 November (3 missing
    // between runs of 4 and 3 hours). S3 runs one hour a day (no gaps: no steady run around them).
    // S3: 1 vCore-hour (0.05) a day for seven days, then 30 on day 8 (1.50: 30 times the average).
    let mut records: Vec<UsageRecord> = (0..10).map(|hour| record("s1", VM, at(11, 3, hour), "9")).collect();
    records.extend([0, 1, 2, 3, 7, 8, 9].map(|hour| record("s2", VM, at(11, 3, hour), "1")));
    records.extend((1..=7).map(|day| record("s3", VM, at(11, day, 12), "1")));
    records.push(record("s3", VM, at(11, 8, 12), "30"));
    records.push(record("s2", UNKNOWN, at(11, 3, 5), "2"));
    ingest(&mut cms, &records);
    cms.evaluate_alerts(&scheduler(), at(11, 9, 0)).unwrap();

    let quota = only(&cms, AlertKind::QuotaApproach);
    assert_eq!((quota.scope.as_str(), quota.severity), ("s1", Severity::Warning));
    assert!(quota.message.contains("used 9 of its vcpus quota 10"), "{}", quota.message);
    // No meters measure storage_gb by default: the quota is reported as unchecked, not silently skipped.
    let unchecked = only(&cms, AlertKind::QuotaUnchecked);
    assert_eq!(
        (unchecked.scope.as_str(), unchecked.severity, unchecked.related.as_deref()),
        ("platform", Severity::Info, Some("o:storage_gb"))
    );
    assert!(unchecked.message.contains("offer o grants a storage_gb quota that is not checked"));
    let gap = only(&cms, AlertKind::UsageGap);
    assert_eq!(gap.scope, "s2");
    assert!(
        gap.message
            .contains("3 hours missing between 2026-11-03T04:00:00+00:00 and 2026-11-03T07:00:00+00:00"),
        "{}",
        gap.message
    );
    let unknown = only(&cms, AlertKind::UnknownMeter);
    assert!(unknown.message.contains("1 records of 1 subscriptions"), "{}", unknown.message);
    let anomaly = only(&cms, AlertKind::UsageAnomaly);
    assert_eq!(anomaly.scope, "s3");
    assert!(anomaly.message.contains("cost on 2026-11-08 was 1.50 USD"), "{}", anomaly.message);
    assert!(anomaly.message.contains("average of 0.05 USD"), "{}", anomaly.message);

    // S1 reaches its quota: the same alert, escalated to critical.
    ingest(&mut cms, &[record("s1", VM, at(11, 3, 10), "10")]);
    let changes = cms.evaluate_alerts(&scheduler(), at(11, 9, 1)).unwrap();
    let escalated = only(&cms, AlertKind::QuotaApproach);
    assert_eq!((escalated.id, escalated.severity), (quota.id, Severity::Critical));
    assert!(escalated.message.contains("used 10 of its vcpus quota 10"), "{}", escalated.message);
    assert_eq!(changes, [(quota.id, AlertChange::Escalated)]);

    // The missing hours arrive late, day 9 is normal again, S1 scales down: all three resolve.
    let mut late: Vec<UsageRecord> = [4, 5, 6].map(|hour| record("s2", VM, at(11, 3, hour), "1")).to_vec();
    late.push(record("s3", VM, at(11, 9, 12), "1"));
    late.push(record("s1", VM, at(11, 3, 11), "4"));
    ingest(&mut cms, &late);
    cms.evaluate_alerts(&scheduler(), at(11, 10, 0)).unwrap();
    for kind in [AlertKind::UsageGap, AlertKind::UsageAnomaly, AlertKind::QuotaApproach] {
        assert_eq!(only(&cms, kind).status, AlertStatus::Resolved, "{kind:?}");
    }
    assert_eq!(only(&cms, AlertKind::UnknownMeter).status, AlertStatus::Open, "still in the month's usage");
    assert_eq!(only(&cms, AlertKind::QuotaUnchecked).status, AlertStatus::Open, "the offer is still in use");
}

#[test]
fn alerts_and_budgets_are_scoped_to_a_branch_and_acknowledged_by_its_admins() {
    let mut cms = setup();
    let assign = |principal: &str, role, node: &str| Event::RoleAssigned {
        assignment: RoleAssignment { principal: principal.into(), role, node: node.into() },
    };
    cms.execute_all(
        &operator(),
        at(10, 1, 0),
        &[
            assign("operator", Role::PlatformAdmin, "platform"),
            assign("scheduler", Role::Service, "platform"),
            assign("ingest", Role::Service, "platform"),
            assign("ann", Role::PartnerAdmin, "contoso"),
            assign("bob", Role::PartnerAdmin, "fabrikam"),
            assign("tia", Role::TenantReader, "t1"),
        ],
    )
    .unwrap();
    let ann = Principal::at("ann", "contoso");
    let bob = Principal::at("bob", "fabrikam");
    let tia = Principal::at("tia", "t1");
    // Bob sets a budget for his tenant; not for Contoso's.
    cms.set_budget(&bob, at(11, 1, 0), budget("b-t3", "t3", "0.10")).unwrap();
    let error = cms.set_budget(&bob, at(11, 1, 0), budget("b-t1-bob", "t1", "1")).unwrap_err();
    assert_eq!(error.code(), "unknown_node");
    let error = cms.set_budget(&tia, at(11, 1, 0), budget("b-t1-tia", "t1", "1")).unwrap_err();
    assert_eq!(error.code(), "forbidden", "readers do not set budgets");
    ingest(&mut cms, &day_of_s1(1));
    ingest(&mut cms, &[record("s3", VM, at(11, 1, 5), "4")]);
    cms.tick(&scheduler(), at(11, 2, 0), &mut NoHooks).unwrap();
    let kinds = |principal: &Principal| -> Vec<(AlertKind, String)> {
        cms.alerts(principal, false).unwrap().into_iter().map(|alert| (alert.kind, alert.scope)).collect()
    };
    assert_eq!(kinds(&ann), [(AlertKind::BudgetForecast, "t1".to_owned())]);
    assert_eq!(kinds(&tia), [(AlertKind::BudgetForecast, "t1".to_owned())]);
    assert_eq!(kinds(&bob), [(AlertKind::BudgetBreach, "t3".to_owned())]);
    assert_eq!(kinds(&operator()).len(), 2);
    let budgets: Vec<String> = cms
        .budget_statuses(&bob, november(), at(11, 2, 0))
        .unwrap()
        .into_iter()
        .map(|s| s.budget.id)
        .collect();
    assert_eq!(budgets, ["b-t3"]);

    let contoso_alert = cms.alerts(&ann, false).unwrap()[0].id;
    assert_eq!(
        cms.acknowledge_alert(&bob, at(11, 2, 1), contoso_alert, None).unwrap_err().code(),
        "unknown_node"
    );
    assert_eq!(
        cms.acknowledge_alert(&tia, at(11, 2, 1), contoso_alert, None).unwrap_err().code(),
        "forbidden"
    );
    cms.acknowledge_alert(&ann, at(11, 2, 1), contoso_alert, Some("expected: migration")).unwrap();
    assert_eq!(
        cms.acknowledge_alert(&ann, at(11, 2, 1), contoso_alert, None).unwrap_err().code(),
        "invalid_value",
        "acknowledged already"
    );
    // Still found: the same alert, still acknowledged, seen again.
    cms.tick(&scheduler(), at(11, 2, 1), &mut NoHooks).unwrap();
    let alert = cms.alerts(&ann, false).unwrap().remove(0);
    assert_eq!(
        (alert.id, alert.status, alert.last_seen),
        (contoso_alert, AlertStatus::Acknowledged, at(11, 2, 1))
    );
    assert_eq!(alert.acknowledged, Some(("ann".to_owned(), at(11, 2, 1))));
    assert_eq!(alert.note.as_deref(), Some("expected: migration"));
    // Resolved by hand, then found again: a new alert.
    cms.resolve_alert(&ann, at(11, 2, 2), contoso_alert, Some("handled")).unwrap();
    cms.tick(&scheduler(), at(11, 2, 3), &mut NoHooks).unwrap();
    let reopened = cms.alerts(&ann, false).unwrap().remove(0);
    assert_ne!(reopened.id, contoso_alert);
    assert_eq!(reopened.status, AlertStatus::Open);
    // Only the platform sees the jobs.
    assert_eq!(cms.job_runs(&ann, 10).unwrap_err().code(), "unknown_node");
    // Acting as someone else is refused.
    let event = Event::AlertAcknowledged { id: reopened.id, by: "operator".into(), note: None };
    assert_eq!(cms.execute(&ann, at(11, 2, 3), &event).unwrap_err().code(), "forbidden");
}

/// The dashboard scenario's extras: Contoso earns 10 % of its tenants' revenue (Fabrikam has no plan); S2
/// reports a meter no catalogue prices (no cost) for hours 0-3 and 7-9 of 3 November: one gap. A folder of
/// region "local" then brings a daily record of it (S2 is hourly: refused), and a page file with no region
/// a daily record of S1 (refused too, but attributed to no region).
fn commission_gap_and_refusals(cms: &mut Cms<MemoryStore>) {
    let ten_percent = cms_core::model::pricing::CommissionPlan::new(
        "ten",
        cms_core::model::tiers::TierMode::Graduated,
        vec![cms_core::model::tiers::Tier { from: dec("0"), rate: dec("0.10") }],
    )
    .unwrap();
    cms.execute_all(
        &operator(),
        at(11, 1, 0),
        &[
            Event::CommissionPlanPut { plan: ten_percent },
            Event::CommissionPlanAssigned { node: "contoso".into(), plan: "ten".into() },
        ],
    )
    .unwrap();
    ingest(cms, &[0, 1, 2, 3, 7, 8, 9].map(|hour| record("s2", UNKNOWN, at(11, 3, hour), "1")));
    let mut daily = record("s2", UNKNOWN, at(11, 2, 0), "24");
    daily.end = at(11, 3, 0);
    let folder = cms.ingest(&[daily], &PageOrigin::named("local/day.json")).unwrap();
    assert_eq!(folder.refused.len(), 1);
    cms.record_ingestion(&operator(), at(11, 3, 12), "folder:local", &folder).unwrap();
    let mut daily = record("s1", VM, at(11, 2, 0), "192");
    daily.end = at(11, 3, 0);
    let pages = cms.ingest(&[daily], &PageOrigin::named("pages.json")).unwrap();
    assert_eq!(pages.refused.len(), 1);
    cms.record_ingestion(&operator(), at(11, 3, 13), "pages", &pages).unwrap();
}

#[test]
fn the_dashboard_reports_costs_documents_regions_and_alerts_of_its_scope() {
    let mut cms = setup();
    cms.execute(&operator(), at(10, 1, 0), &settings(|s| s.regions = BTreeMap::from([("west".into(), 6)])))
        .unwrap();
    // October: S1 100 vCore-hours (5.00), issued. November: S1 days 1-3 (9.60 each), S3 20 vCore-hours on
    // day 2 (1.00).
    ingest(&mut cms, &[record("s1", VM, at(10, 10, 0), "100")]);
    cms.issue_invoices(&operator(), at(11, 1, 0), Period::month(2026, 10).unwrap(), None).unwrap();
    for day in 1..=3 {
        ingest(&mut cms, &day_of_s1(day));
    }
    ingest(&mut cms, &[record("s3", VM, at(11, 2, 7), "20")]);
    commission_gap_and_refusals(&mut cms);
    let now = at(11, 4, 0);
    cms.tick(&scheduler(), now, &mut NoHooks).unwrap();
    let board = cms.dashboard(&operator(), november(), now).unwrap();
    let usd = |amount: &str| (Currency::USD, dec(amount));
    assert_eq!(
        board.month_to_date.iter().map(|a| (a.currency, a.amount)).collect::<Vec<_>>(),
        [usd("29.80")]
    );
    // Run rate of the 3 complete days: 29.80 / 3 per day for 27 more days: 29.80 x 10 = 298.00.
    assert_eq!(board.projection[0].amount, dec("298.00"));
    assert_eq!(board.previous_period[0].amount, dec("5.00"));
    let days: Vec<(String, Decimal)> = board.by_day.iter().map(|d| (d.day.to_string(), d.amount)).collect();
    assert_eq!(
        days,
        [
            ("2026-11-01".into(), dec("9.60")),
            ("2026-11-02".into(), dec("10.60")),
            ("2026-11-03".into(), dec("9.60"))
        ]
    );
    let tenants: Vec<(String, Decimal)> =
        board.top_tenants.iter().map(|r| (r.id.clone(), r.amount)).collect();
    assert_eq!(tenants, [("t1".into(), dec("28.80")), ("t3".into(), dec("1.00"))]);
    assert_eq!(board.top_meters[0].name, "Base VM Size Hours");
    assert_eq!((board.by_region[0].id.as_str(), board.by_region[0].amount), ("local", dec("29.80")));
    let states: Vec<(DocumentState, u64)> = board.invoices.iter().map(|d| (d.state, d.count)).collect();
    assert_eq!(states, [(DocumentState::Draft, 2)], "November's drafts; October's invoice is October's");
    let local = board.regions.iter().find(|r| r.region == "local").unwrap();
    assert_eq!((local.last_usage, local.lag_hours, local.stale), (Some(now), Some(0), false));
    assert_eq!((local.gaps, local.refused_records), (1, 1), "the folder's refusal, not the page file's");
    let commissions: Vec<(&str, Currency, Decimal)> =
        board.commissions.iter().map(|c| (c.id.as_str(), c.currency, c.amount)).collect();
    assert_eq!(
        commissions,
        [("contoso", Currency::USD, dec("2.88")), ("fabrikam", Currency::USD, dec("0"))],
        "10 % of T1's 28.80; Fabrikam has no plan"
    );
    let west = board.regions.iter().find(|r| r.region == "west").unwrap();
    assert!(west.stale && west.last_usage.is_none(), "watched, never had usage");
    assert!(board.alerts.iter().any(|a| a.kind == AlertKind::IngestionStale));
    assert_eq!(board.budgets[0].actual, dec("28.80"));

    // A partner's dashboard: its tenants only, no regions, no platform alerts.
    cms.execute(
        &operator(),
        now,
        &Event::RoleAssigned {
            assignment: RoleAssignment {
                principal: "operator".into(),
                role: Role::PlatformAdmin,
                node: "platform".into(),
            },
        },
    )
    .unwrap();
    cms.execute(
        &operator(),
        now,
        &Event::RoleAssigned {
            assignment: RoleAssignment {
                principal: "bob".into(),
                role: Role::PartnerAdmin,
                node: "fabrikam".into(),
            },
        },
    )
    .unwrap();
    let board = cms.dashboard(&Principal::at("bob", "fabrikam"), november(), now).unwrap();
    assert_eq!(board.month_to_date[0].amount, dec("1.00"));
    assert_eq!(board.top_tenants.len(), 1);
    assert!(board.regions.is_empty() && board.alerts.is_empty() && board.budgets.is_empty());
    assert_eq!(board.commissions.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["fabrikam"]);
    let october = cms.dashboard(&operator(), Period::month(2026, 10).unwrap(), now).unwrap();
    let states: Vec<(DocumentState, u64)> = october.invoices.iter().map(|d| (d.state, d.count)).collect();
    assert_eq!(states, [(DocumentState::Issued, 1)]);
    assert_eq!(october.month_to_date[0].amount, dec("5.00"));
}

#[test]
fn budgets_and_settings_are_validated() {
    let mut cms = setup();
    for (bad, field) in [
        (budget("b", "t1", "0"), "amount"),
        (Budget { warning_percent: dec("120"), ..budget("b", "t1", "10") }, "breach_percent"),
        (Budget { id: " ".into(), ..budget("b", "t1", "10") }, "id"),
    ] {
        let error = cms.set_budget(&operator(), at(11, 1, 0), bad).unwrap_err();
        assert_eq!(error.code(), "invalid_value");
        assert!(error.to_string().contains(field), "{error}");
    }
    assert_eq!(
        cms.set_budget(&operator(), at(11, 1, 0), budget("b", "nowhere", "10")).unwrap_err().code(),
        "unknown_node"
    );
    let error =
        cms.execute(&operator(), at(11, 1, 0), &settings(|s| s.anomaly_factor = dec("1"))).unwrap_err();
    assert!(error.to_string().contains("anomaly_factor"), "{error}");
    let error =
        cms.execute(&operator(), at(11, 1, 0), &Event::BudgetRemoved { id: "none".into() }).unwrap_err();
    assert_eq!(error.code(), "unknown_node");
}

proptest! {
    /// With costs that are not negative the forecast is at least the cost to date, and at the period's end
    /// it is the cost.
    #[test]
    fn the_forecast_never_undercuts_the_actual(
        cents in proptest::collection::vec(0u32..100_000, 0..30),
        hour in 0u32..720,
    ) {
        let daily: Vec<Decimal> = cents.iter().map(|cents| Decimal::new(i64::from(*cents), 2)).collect();
        let period = november();
        let now = period.start + Duration::hours(i64::from(hour));
        let complete = usize::try_from(hour / 24).unwrap();
        let daily = &daily[..daily.len().min(complete + 1)];
        let actual: Decimal = daily.iter().copied().sum();
        prop_assert!(forecast(period, now, daily) >= actual);
        prop_assert_eq!(forecast(period, period.end, daily), actual);
    }

    /// After a complete evaluation, the open alerts are exactly the keys found, each once.
    #[test]
    fn open_alerts_are_the_findings_of_the_last_evaluation(
        rounds in proptest::collection::vec(proptest::collection::btree_set(0u8..12, 0..8), 1..12),
    ) {
        let mut book = cms_core::monitoring::alerts::AlertBook::default();
        for (round, keys) in rounds.iter().enumerate() {
            let findings: Vec<Finding> = keys
                .iter()
                .map(|key| Finding::new(AlertKind::UsageGap, Severity::Warning, "platform", &key.to_string(), String::new()))
                .collect();
            book.evaluate(at(11, 1, 0) + Duration::hours(i64::try_from(round).unwrap()), &findings);
            let open: Vec<String> = book.open_alerts().map(|alert| alert.related.clone().unwrap()).collect();
            let mut expected: Vec<String> = keys.iter().map(ToString::to_string).collect();
            expected.sort();
            let mut open_sorted = open.clone();
            open_sorted.sort();
            prop_assert_eq!(open_sorted, expected);
            prop_assert_eq!(open.len(), book.alerts.values().filter(|alert| alert.is_open()).count());
        }
    }
}

#[test]
fn ingestion_outside_the_scheduler_raises_late_usage_and_refused_record_alerts_once_recorded() {
    let mut cms = setup();
    let mut policy = cms.state().ingest_policy.clone();
    policy.look_back_periods = 0;
    cms.execute(&operator(), at(10, 1, 0), &Event::IngestPolicySet { policy }).unwrap();
    ingest(&mut cms, &[record("s1", VM, at(10, 5, 0), "8")]);
    cms.close_period(&operator(), at(11, 1, 0), Period::month(2026, 10).unwrap()).unwrap();
    // A record of closed October arrives in November: beyond a look-back window of 0 periods, refused.
    let summary =
        cms.ingest(&[record("s1", VM, at(10, 6, 0), "8")], &PageOrigin::named("late page")).unwrap();
    assert_eq!(summary.refused[0].code, "late_usage_refused");
    cms.record_ingestion(&operator(), at(11, 2, 0), "pages", &summary).unwrap();
    cms.evaluate_alerts(&scheduler(), at(11, 2, 1)).unwrap();
    let late = only(&cms, AlertKind::LateUsage);
    assert_eq!(late.related.as_deref(), Some("ingest:pages"));
    assert!(
        late.message
            .starts_with("ingestion of pages: the run ingest:pages:2026-11-02T00:00:00+00:00 held 1 records")
    );
    assert!(of_kind(&cms, AlertKind::RefusedRecords).is_empty(), "late records are counted apart");
    // A clean run of the same source resolves it.
    let clean = cms.ingest(&day_of_s1(2), &PageOrigin::named("clean page")).unwrap();
    cms.record_ingestion(&operator(), at(11, 3, 0), "pages", &clean).unwrap();
    cms.evaluate_alerts(&scheduler(), at(11, 3, 1)).unwrap();
    assert_eq!(only(&cms, AlertKind::LateUsage).status, AlertStatus::Resolved);
}

/// Months the scheduler missed: its first tick after a long silence drafts and issues each of them, under
/// its own keys, and evaluates the budgets of every month that ended since its last evaluation once.
#[test]
fn a_tick_after_a_long_silence_drafts_and_issues_every_month_it_missed() {
    let mut cms = setup();
    cms.execute_all(
        &operator(),
        at(10, 1, 0),
        &[settings(|s| s.auto_issue = true), Event::BudgetSet { budget: budget("b-t3", "t3", "1.00") }],
    )
    .unwrap();
    // The scheduler runs on 15 October (September: nothing to bill), then is silent until 10 December.
    ingest(&mut cms, &[record("s1", VM, at(10, 10, 0), "100")]);
    let october = cms.tick(&scheduler(), at(10, 15, 0), &mut NoHooks).unwrap();
    let keys: Vec<&str> = october.runs.iter().map(|run| run.key.as_str()).collect();
    assert_eq!(
        keys,
        ["draft:2026-09", "issue:2026-09", "purge:2026-10-15", "evaluate:2026-10-15T00:00:00+00:00"]
    );
    // After that tick: T3 spends 1.50 of its 1.00 in October (a breach no evaluation saw happen), and both
    // tenants use November.
    ingest(&mut cms, &[record("s3", VM, at(10, 20, 0), "30"), record("s1", VM, at(11, 5, 0), "40")]);
    ingest(&mut cms, &[record("s3", VM, at(11, 6, 0), "2")]);
    let report = cms.tick(&scheduler(), at(12, 10, 0), &mut NoHooks).unwrap();
    assert!(!report.failed(), "{report:#?}");
    let runs: Vec<(&str, u64)> = report
        .runs
        .iter()
        .filter(|run| matches!(run.job, Job::Draft { .. } | Job::Issue { .. }))
        .map(|run| {
            (run.key.as_str(), run.counts.get("drafts").or(run.counts.get("issued")).copied().unwrap())
        })
        .collect();
    assert_eq!(
        runs,
        [("draft:2026-10", 2), ("issue:2026-10", 2), ("draft:2026-11", 2), ("issue:2026-11", 2)],
        "September is settled; October and November each once, in order"
    );
    for (month, totals) in [(10, ["5.00", "1.50"]), (11, ["2.00", "0.10"])] {
        let documents =
            cms.invoice_documents(&operator(), Some(Period::month(2026, month).unwrap())).unwrap();
        let issued: Vec<(DocumentState, String, Decimal)> = documents
            .iter()
            .map(|listed| (listed.state, listed.document.buyer.clone(), listed.document.total))
            .collect();
        assert_eq!(
            issued,
            [
                (DocumentState::Issued, "t1".to_owned(), dec(totals[0])),
                (DocumentState::Issued, "t3".to_owned(), dec(totals[1]))
            ],
            "2026-{month}"
        );
    }
    // October's end was evaluated once, late: T3's breach is raised (and delivered as opened) ...
    let breach = only(&cms, AlertKind::BudgetBreach);
    assert_eq!((breach.key.as_str(), breach.first_seen), ("budget_breach:b-t3:2026-10", at(12, 10, 0)));
    assert!(breach.message.contains("1.50 USD spent in 2026-10"), "{}", breach.message);
    assert!(report.alert_changes.contains(&(breach.id, AlertChange::Opened)));
    // ... and nothing runs twice at the same instant.
    let events = cms.store().events().unwrap().len();
    let again = cms.tick(&scheduler(), at(12, 10, 0), &mut NoHooks).unwrap();
    assert!(again.runs.is_empty(), "{again:#?}");
    assert_eq!(
        again.skipped,
        ["draft:2026-11", "issue:2026-11", "purge:2026-12-10", "evaluate:2026-12-10T00:00:00+00:00"],
        "settled months are no longer listed; November is still the previous month"
    );
    assert_eq!(cms.store().events().unwrap().len(), events);
    // The next evaluation no longer looks at October: its breach resolves, as an ended month's do.
    cms.tick(&scheduler(), at(12, 10, 1), &mut NoHooks).unwrap();
    assert_eq!(only(&cms, AlertKind::BudgetBreach).resolved, Some((None, at(12, 10, 1))));
}

/// The first tick ever catches up from the oldest month with usage that is not closed.
#[test]
fn the_first_tick_starts_at_the_oldest_open_month_with_usage() {
    let mut cms = setup();
    cms.execute(&operator(), at(10, 1, 0), &settings(|s| s.auto_issue = true)).unwrap();
    // August is invoiced by hand; September has no usage; October and November have.
    ingest(&mut cms, &[record("s1", VM, at(8, 3, 0), "10")]);
    cms.issue_invoices(&operator(), at(9, 1, 0), Period::month(2026, 8).unwrap(), None).unwrap();
    ingest(&mut cms, &[record("s1", VM, at(10, 3, 0), "10"), record("s1", VM, at(11, 3, 0), "10")]);
    let report = cms.tick(&scheduler(), at(12, 10, 0), &mut NoHooks).unwrap();
    let keys: Vec<&str> = report
        .runs
        .iter()
        .filter(|run| matches!(run.job, Job::Draft { .. } | Job::Issue { .. }))
        .map(|run| run.key.as_str())
        .collect();
    assert_eq!(keys, ["draft:2026-10", "issue:2026-10", "draft:2026-11", "issue:2026-11"]);
    for month in [10, 11] {
        let documents =
            cms.invoice_documents(&operator(), Some(Period::month(2026, month).unwrap())).unwrap();
        let issued: Vec<(DocumentState, Decimal)> =
            documents.iter().map(|listed| (listed.state, listed.document.total)).collect();
        assert_eq!(issued, [(DocumentState::Issued, dec("0.50"))], "2026-{month}");
    }
    let august = cms.invoice_documents(&operator(), Some(Period::month(2026, 8).unwrap())).unwrap();
    assert_eq!(august.len(), 1, "August stays as issued by hand");
    let events = cms.store().events().unwrap().len();
    let again = cms.tick(&scheduler(), at(12, 10, 0), &mut NoHooks).unwrap();
    assert!(again.runs.is_empty(), "{again:#?}");
    assert_eq!(cms.store().events().unwrap().len(), events, "nothing recorded");
}

/// A hierarchy with a distributor: platform > dist (distributor) > p1 (partner) > t1 > s1, s2; and p2
/// (partner, billed in EUR) > t2 > s4. S1 runs 8 vCores every hour: 9.60 USD a day.
fn distributor_setup() -> Cms<MemoryStore> {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    let list = |id: &str, currency: Currency| {
        let mut list = BookList::new(id, id, currency);
        list.versions.push(PriceVersion::own(
            at(1, 1, 0),
            [(meter(VM), MeterPrice::new("vCore-hours", PriceModel::per_unit(dec("0.05"))))]
                .into_iter()
                .collect(),
        ));
        list
    };
    let ten_percent = cms_core::model::pricing::CommissionPlan::new(
        "ten",
        cms_core::model::tiers::TierMode::Graduated,
        vec![cms_core::model::tiers::Tier { from: dec("0"), rate: dec("0.10") }],
    )
    .unwrap();
    let events = vec![
        add("dist", NodeKind::Distributor, None),
        add("p1", NodeKind::Partner, Some("dist")),
        add("t1", NodeKind::Tenant, Some("p1")),
        add("s1", NodeKind::Subscription, Some("t1")),
        add("s2", NodeKind::Subscription, Some("t1")),
        add("p2", NodeKind::Partner, None),
        add("t2", NodeKind::Tenant, Some("p2")),
        add("s4", NodeKind::Subscription, Some("t2")),
        Event::PriceListCreated { list: list("std", Currency::USD) },
        Event::PriceListCreated { list: list("eur", Currency::EUR) },
        Event::PriceListAssigned { scope: PriceScope::Default, list: "std".into() },
        Event::PriceListAssigned { scope: PriceScope::Node("p2".into()), list: "eur".into() },
        Event::CommissionPlanPut { plan: ten_percent },
        Event::CommissionPlanAssigned { node: "p1".into(), plan: "ten".into() },
        Event::CommissionPlanAssigned { node: "p2".into(), plan: "ten".into() },
        Event::OverrideRateSet { node: "dist".into(), rate: dec("0.02") },
        // One USD is worth 0.50 EUR.
        Event::ExchangeRateSet {
            from: Currency::USD,
            to: Currency::EUR,
            effective: at(1, 1, 0),
            rate: dec("0.5"),
        },
    ];
    cms.execute_all(&operator(), at(10, 1, 0), &events).unwrap();
    cms
}

/// Budgets of a subscription, a partner and a distributor (one in EUR, converted; one in a currency with no
/// rate) cross their thresholds on the days the arithmetic says; the dashboard's commissions carry the
/// partners' own currencies and the distributor's override.
#[test]
fn budgets_of_subscriptions_partners_and_distributors_cross_on_the_expected_days() {
    let mut cms = distributor_setup();
    let quiet = |id: &str, node: &str, amount: &str, currency: Currency| Budget {
        currency,
        forecast: false,
        ..budget(id, node, amount)
    };
    let gbp = Currency::from_code("GBP").unwrap();
    // 9.60 a day: S1 100 warns at 80 (day 9: 86.40) and breaches on day 11 (105.60); P1 150 warns at 120
    // (day 13: 124.80) and breaches on day 16 (153.60); DIST 200 warns at 160 (day 17: 163.20) and breaches
    // on day 21 (201.60); DIST 40 EUR is 80 USD: warns at 32 EUR (day 7: 67.20 USD = 33.60 EUR) and
    // breaches on day 9 (86.40 USD = 43.20 EUR). S2's budget sees none of S1's cost.
    let budgets = [
        quiet("b-s1", "s1", "100", Currency::USD),
        quiet("b-p1", "p1", "150", Currency::USD),
        quiet("b-dist", "dist", "200", Currency::USD),
        quiet("b-dist-eur", "dist", "40", Currency::EUR),
        quiet("b-dist-gbp", "dist", "1", gbp),
        quiet("b-s2", "s2", "1", Currency::USD),
    ];
    for budget in budgets {
        cms.set_budget(&operator(), at(10, 1, 0), budget).unwrap();
    }
    ingest(&mut cms, &[record("s4", VM, at(11, 1, 0), "100")]);
    let mut opened: BTreeMap<(String, AlertKind), u32> = BTreeMap::new();
    for day in 1..=22 {
        ingest(&mut cms, &day_of_s1(day));
        cms.tick(&scheduler(), at(11, day, 0) + Duration::days(1), &mut NoHooks).unwrap();
        for alert in cms.state().alerts.alerts.values() {
            if let Some(budget) =
                alert.related.as_deref().and_then(|related| related.strip_suffix(":2026-11"))
            {
                opened.entry((budget.to_owned(), alert.kind)).or_insert(day + 1);
            }
        }
    }
    let expected: BTreeMap<(String, AlertKind), u32> = [
        ("b-s1", AlertKind::BudgetWarning, 10),
        ("b-s1", AlertKind::BudgetBreach, 12),
        ("b-p1", AlertKind::BudgetWarning, 14),
        ("b-p1", AlertKind::BudgetBreach, 17),
        ("b-dist", AlertKind::BudgetWarning, 18),
        ("b-dist", AlertKind::BudgetBreach, 22),
        ("b-dist-eur", AlertKind::BudgetWarning, 8),
        ("b-dist-eur", AlertKind::BudgetBreach, 10),
    ]
    .into_iter()
    .map(|(budget, kind, day)| ((budget.to_owned(), kind), day))
    .collect();
    assert_eq!(opened, expected);
    for (budget, scope) in [("b-s1", "s1"), ("b-p1", "p1"), ("b-dist", "dist")] {
        let breach = cms.state().alerts.open_alert(&format!("budget_breach:{budget}:2026-11")).unwrap();
        assert_eq!(breach.scope, scope);
    }
    let now = at(11, 23, 0);
    let statuses: BTreeMap<String, (Decimal, u64)> = cms
        .budget_statuses(&operator(), november(), now)
        .unwrap()
        .into_iter()
        .map(|status| (status.budget.id, (status.actual, status.unconverted_lines)))
        .collect();
    assert_eq!(statuses["b-dist"], (dec("211.20"), 0));
    assert_eq!(statuses["b-dist-eur"], (dec("105.60"), 0), "211.20 USD at 0.50");
    assert_eq!(statuses["b-dist-gbp"], (dec("0"), 1), "no USD-GBP rate: S1's line is left out");
    assert_eq!(statuses["b-s2"], (dec("0"), 0));
    // A partner's admin sees the budgets of its branch: its subscription's and its own, not the
    // distributor's.
    let p1_admin = Principal::at("pia", "p1");
    let mut visible: Vec<String> =
        cms.budget_statuses(&p1_admin, november(), now).unwrap().into_iter().map(|s| s.budget.id).collect();
    visible.sort();
    assert_eq!(visible, ["b-p1", "b-s1", "b-s2"]);

    // Commissions to date: 10 % of each partner's revenue, in its tenants' currency; the distributor's
    // override is 2 % of its network's revenue.
    let board = cms.dashboard(&operator(), november(), now).unwrap();
    let commissions: Vec<(String, String, Currency, Decimal)> = board
        .commissions
        .iter()
        .map(|entry| (entry.id.clone(), entry.name.clone(), entry.currency, entry.amount))
        .collect();
    assert_eq!(
        commissions,
        [
            ("p1".to_owned(), "p1 name".to_owned(), Currency::USD, dec("21.12")),
            ("p2".to_owned(), "p2 name".to_owned(), Currency::EUR, dec("0.50")),
            ("dist".to_owned(), "dist name (override)".to_owned(), Currency::USD, dec("4.22")),
        ]
    );
    let p2_board = cms.dashboard(&Principal::at("pat", "p2"), november(), now).unwrap();
    assert_eq!(p2_board.commissions.len(), 1, "a partner sees its own commission only");
    assert_eq!(p2_board.commissions[0].currency, Currency::EUR);
}

/// Retention inside the tick: an invoiced period whose retention has passed loses its raw usage once.
#[test]
fn the_tick_purges_usage_by_retention_once_a_day() {
    let mut cms = setup();
    let mut policies = cms.state().policies.clone();
    policies.usage_retention_months = Some(1);
    let mut ingest_policy = cms.state().ingest_policy.clone();
    ingest_policy.look_back_periods = 0;
    cms.execute_all(
        &operator(),
        at(8, 1, 0),
        &[Event::PoliciesSet { policies }, Event::IngestPolicySet { policy: ingest_policy }],
    )
    .unwrap();
    let september = Period::month(2026, 9).unwrap();
    let records: Vec<UsageRecord> = (0..5).map(|hour| record("s1", VM, at(9, 3, hour), "8")).collect();
    ingest(&mut cms, &records);
    ingest(&mut cms, &[record("s1", VM, at(10, 3, 0), "8")]);
    cms.issue_invoices(&operator(), at(10, 1, 0), september, None).unwrap();
    let stored = |cms: &Cms<MemoryStore>, period: &Period| {
        let mut count = 0;
        cms.store()
            .for_each_usage(period, &mut |_| {
                count += 1;
                Ok(())
            })
            .unwrap();
        count
    };
    // 31 October: September ended a month ago on 1 November only.
    let early = cms.tick(&scheduler(), at(10, 31, 0), &mut NoHooks).unwrap();
    let purge = early.runs.iter().find(|run| run.job == Job::Purge).unwrap();
    assert_eq!(purge.counts["records"], 0);
    assert_eq!(stored(&cms, &september), 5);
    let report = cms.tick(&scheduler(), at(11, 2, 0), &mut NoHooks).unwrap();
    let purge = report.runs.iter().find(|run| run.job == Job::Purge).unwrap();
    assert_eq!(
        (purge.key.as_str(), purge.counts["periods"], purge.counts["records"]),
        ("purge:2026-11-02", 1, 5)
    );
    assert_eq!(stored(&cms, &september), 0);
    assert_eq!(stored(&cms, &Period::month(2026, 10).unwrap()), 1, "October is not closed: kept");
    assert!(cms.state().purged_periods.contains(&september));
    // The month-end and the invoice stay.
    assert_eq!(cms.month_end(september, cms.state().rules).unwrap().invoices[0].lines[0].amount, dec("2.00"));
    let later = cms.tick(&scheduler(), at(11, 2, 5), &mut NoHooks).unwrap();
    assert!(!later.runs.iter().any(|run| run.job == Job::Purge), "once a day");
    assert!(later.skipped.contains(&"purge:2026-11-02".to_owned()));
}

/// A failed evaluation raises a job failure alert; the next evaluation that succeeds resolves it at once.
#[test]
fn an_evaluation_that_fails_raises_an_alert_that_the_next_successful_one_resolves() {
    let mut cms = setup();
    // Two plans whose vCPU quotas add up beyond what a decimal holds: the evaluation cannot sum them.
    let huge = Decimal::MAX.to_string();
    let plan = |id: &str, vcpus: &str| Plan {
        id: id.into(),
        name: id.into(),
        services: vec![],
        quotas: BTreeMap::from([("vcpus".into(), dec(vcpus))]),
    };
    let offer = Offer {
        id: "o".into(),
        name: "O".into(),
        base_plan: "base".into(),
        addon_plans: vec!["more".into()],
        state: OfferState::Public,
    };
    cms.execute_all(
        &operator(),
        at(10, 1, 0),
        &[
            Event::PlanPut { plan: plan("base", &huge) },
            Event::PlanPut { plan: plan("more", &huge) },
            Event::OfferPut { offer },
            Event::SubscriptionSet {
                id: "s1".into(),
                info: SubscriptionInfo { offer: Some("o".into()), ..SubscriptionInfo::default() },
            },
        ],
    )
    .unwrap();
    ingest(&mut cms, &day_of_s1(1));
    let mut east = East::default();
    let failed = cms.tick(&scheduler(), at(11, 2, 0), &mut NoHooks).unwrap();
    let evaluation = failed.runs.iter().find(|run| run.job == Job::Evaluate).unwrap();
    assert!(!evaluation.succeeded(), "{evaluation:#?}");
    let failure = only(&cms, AlertKind::JobFailure);
    assert_eq!((failure.related.as_deref(), failure.status), (Some("evaluate"), AlertStatus::Open));
    assert!(failure.message.contains("[overflow]"), "{}", failure.message);
    // The quotas are corrected; the next hour's evaluation succeeds and resolves the failure now.
    cms.execute_all(
        &operator(),
        at(11, 2, 0),
        &[Event::PlanPut { plan: plan("base", "10") }, Event::PlanPut { plan: plan("more", "4") }],
    )
    .unwrap();
    let report = cms.tick(&scheduler(), at(11, 2, 1), &mut east).unwrap();
    assert!(!report.failed(), "{report:#?}");
    assert_eq!(only(&cms, AlertKind::JobFailure).resolved, Some((None, at(11, 2, 1))));
    assert!(east.delivered.contains(&(failure.id, AlertChange::Resolved)));
}
