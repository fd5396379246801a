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

    // December: November's budget alerts resolve; the region is stale until usage arrives again.
    let report = cms.tick(&scheduler(), at(12, 1, 1), &mut NoHooks).unwrap();
    assert_eq!(only(&cms, AlertKind::BudgetBreach).resolved, Some((None, at(12, 1, 1))));
    assert!(report.alert_changes.contains(&(breach.id, AlertChange::Resolved)), "{report:#?}");
    let draft = report.runs.iter().find(|run| run.job == Job::Draft { period: november() }).unwrap();
    assert_eq!(draft.counts["drafts"], 1, "T1's November invoice is drafted");
    assert!(!report.runs.iter().any(|run| matches!(run.job, Job::Issue { .. })), "auto_issue is off");
    ingest(&mut cms, &[record("s1", VM, at(12, 1, 1), "8")]);
    cms.tick(&scheduler(), at(12, 1, 3), &mut NoHooks).unwrap();
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
        quotas: BTreeMap::from([("vcpus".into(), dec("10"))]),
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

    // The missing hours arrive late, day 9 is normal again, S1 scales down: all three resolve.
    let mut late: Vec<UsageRecord> = [4, 5, 6].map(|hour| record("s2", VM, at(11, 3, hour), "1")).to_vec();
    late.push(record("s3", VM, at(11, 9, 12), "1"));
    late.push(record("s1", VM, at(11, 3, 10), "4"));
    ingest(&mut cms, &late);
    cms.evaluate_alerts(&scheduler(), at(11, 10, 0)).unwrap();
    for kind in [AlertKind::UsageGap, AlertKind::UsageAnomaly, AlertKind::QuotaApproach] {
        assert_eq!(only(&cms, kind).status, AlertStatus::Resolved, "{kind:?}");
    }
    assert_eq!(only(&cms, AlertKind::UnknownMeter).status, AlertStatus::Open, "still in the month's usage");
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
