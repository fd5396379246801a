//! `cms demo`: the tour for a newcomer, on a SQLite file (`./cms.db` unless `--db`).
//!
//! - Sets up a channel through the engine (first run only): a reselling distributor (Northwind buys at a
//!   wholesale list derived from the platform's, -20 %, and invoices its tenants), two agency partners
//!   (commission bands: one partner's own whole-amount plan, one inheriting the distributor's marginal
//!   bands; Fabrikam's tenants get Fabrikam's price for one meter), four tenants, three subscriptions on a
//!   public offer (an infrastructure plan with a SQL add-on).
//! - March 2025: loads the sample Usage API page (`tests/data/`), extends each resource's hourly reading to
//!   every hour of the month (the two real hours arrive again and are deduplicated), rates the month,
//!   prints invoices, statements and margins, then closes March.
//! - April: previews a 5 % rise of the compute meters of the platform list on March's usage (Adatum
//!   exempt), applies it from April 1, moves Tailspin from Contoso to Fabrikam on April 16, rates April.
//!
//! - Monitoring: a budget for Adatum (90 % of its April cost, so it is breached), one scheduler tick at
//!   30 April 12:00 (drafts March, evaluates budgets and alerts), the open alerts, and the dashboard as one
//!   HTML page beside the database (`cms-dashboard.html`).
//!
//! A second run on the same file continues from it: the channel, the closed period, the rise and the move
//! are already recorded, and every usage record arrives again as a duplicate.

mod channel;
mod print;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::TimeZone;
use cms_core::CmsError;
use cms_core::billing::BillingRules;
use cms_core::engine::{Cms, Event, Principal};
use cms_core::model::meter::MeterId;
use cms_core::model::price_book::{ChangeScope, ChangeSet, MeterFilter};
use cms_core::model::pricing::PriceChange;
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::UsageRecord;
use cms_core::source::{PageBytesSource, PageOrigin};
use cms_core::store::Store;
use cms_sqlite::SqliteStore;

use self::channel::dec;

/// The sample page, compiled in so `cms demo` runs from anywhere.
const SAMPLE_PAGE: &str = include_str!("../../../tests/data/azure-stack-hub-sample-usage.json");

/// The April rise, as a change set.
const RISE: &str = "rise-2025-04-compute";

/// Each resource's latest hourly reading, repeated for every hour of the period.
fn steady_month(records: &[UsageRecord], period: Period) -> Vec<UsageRecord> {
    let mut latest: BTreeMap<(String, MeterId, String), &UsageRecord> = BTreeMap::new();
    for record in records {
        let key = (record.subscription.clone(), record.meter, record.resource_uri.clone());
        latest
            .entry(key)
            .and_modify(|kept| {
                if record.start > kept.start {
                    *kept = record;
                }
            })
            .or_insert(record);
    }
    let hour = chrono::Duration::hours(1);
    let mut out = Vec::new();
    for record in latest.values() {
        let mut start = period.start;
        while start < period.end {
            out.push(UsageRecord { start, end: start + hour, ..(*record).clone() });
            start += hour;
        }
    }
    out
}

fn utc(year: i32, month: u32, day: u32) -> Instant {
    chrono::Utc.with_ymd_and_hms(year, month, day, 0, 0, 0).single().unwrap_or_default()
}

/// Ingest `records` and say what happened.
fn ingest(cms: &mut Cms<SqliteStore>, records: &[UsageRecord], what: &str) -> Result<(), CmsError> {
    let write = cms.ingest(records, &PageOrigin::named(what))?;
    println!(
        "{what}: {} record(s): {} stored, {} duplicate(s), {} correction(s)",
        records.len(),
        write.stored,
        write.duplicates,
        write.corrections.len()
    );
    Ok(())
}

/// The stored records of `period`, each resource's latest hour repeated over `month`.
fn steady_from(cms: &Cms<SqliteStore>, period: Period, month: Period) -> Result<Vec<UsageRecord>, CmsError> {
    let mut records = Vec::new();
    cms.store().for_each_usage(&period, &mut |record| {
        records.push(record.clone());
        Ok(())
    })?;
    Ok(steady_month(&records, month))
}

pub fn run(db: &Path) -> Result<(), CmsError> {
    let mut cms = crate::open_engine(db)?;
    let operator = crate::actor::operator();
    let recorded = cms.store().events()?.len();
    if recorded == 0 {
        cms.execute_all(&operator, crate::actor::now(), &channel::setup()?)?;
        println!("CMS demo on {}: a new channel ({} events)\n", db.display(), cms.store().events()?.len());
    } else {
        println!("CMS demo on {}: continuing from {recorded} recorded events\n", db.display());
    }
    print::channel(&cms);

    let march = Period::month(2025, 3)?;
    let mut source = PageBytesSource::new([(
        "azure-stack-hub-sample-usage.json".to_owned(),
        SAMPLE_PAGE.as_bytes().to_vec(),
    )]);
    let pulled = cms.pull(&mut source)?;
    println!(
        "\nUsage API sample page: {} record(s) on {} page(s): {} stored, {} duplicate(s), {} unknown meter(s), \
         {} record(s) of a meter not priced by default (double counting)",
        pulled.received,
        pulled.pages,
        pulled.stored,
        pulled.duplicates,
        pulled.unknown_meters.len(),
        pulled.double_counting
    );
    let month = steady_from(&cms, march, march)?;
    ingest(&mut cms, &month, &format!("Steady month (each resource's latest hour repeated over {march})"))?;
    let report = cms.month_end(march, BillingRules::default())?;
    print::report(&cms, &report, true);
    if !cms.state().closed_periods.contains(&march) {
        cms.close_period(&operator, crate::actor::now(), march)?;
    }
    println!("\n{march} is closed: usage arriving for it later is billed as an adjustment.");

    april(&mut cms, &operator, march, db)
}

/// April: a price rise previewed on March and applied, a tenant moved mid-month, the month rated.
fn april(cms: &mut Cms<SqliteStore>, operator: &Principal, march: Period, db: &Path) -> Result<(), CmsError> {
    let april = march.next_month()?;
    let rise = ChangeSet {
        id: RISE.into(),
        scope: ChangeScope::Lists(vec!["list-standard".into()]),
        meters: MeterFilter::Categories(BTreeSet::from(["compute".to_owned()])),
        change: PriceChange::Percent(dec("0.05")),
        effective: april.start,
        scale: 6,
        exempt_tenants: BTreeSet::from(["tenant-adatum".to_owned()]),
    };
    let applied =
        cms.state().terms.book.list("list-standard").is_some_and(|list| {
            list.versions.iter().any(|version| version.change_set.as_deref() == Some(RISE))
        });
    if applied {
        println!("\nThe {RISE} change set is already applied (from {}).", april.start.date_naive());
    } else {
        let preview = cms.preview_change_set(operator, &rise, BillingRules::default())?;
        print::preview(&preview);
        cms.apply_change_set(operator, crate::actor::now(), rise)?;
        println!(
            "Applied: the compute meters of list-standard cost 5 % more from {}.",
            april.start.date_naive()
        );
    }
    let moved = utc(2025, 4, 16);
    let hierarchy = &cms.state().hierarchy;
    let tailspin_parent = hierarchy.get("tenant-tailspin").and_then(|node| node.parent.clone());
    if tailspin_parent.as_deref() == Some("partner-contoso") {
        cms.execute(
            operator,
            crate::actor::now(),
            &Event::NodeMoved {
                id: "tenant-tailspin".into(),
                parent: "partner-fabrikam".into(),
                effective: moved,
            },
        )?;
    }
    println!("Tailspin Toys moves from Contoso to Fabrikam on {}.\n", moved.date_naive());
    let month = steady_from(cms, march, april)?;
    ingest(cms, &month, &format!("Steady month ({april})"))?;
    let report = cms.month_end(april, BillingRules::default())?;
    print::report(cms, &report, false);
    let lines: BTreeMap<_, _> = report
        .invoices
        .iter()
        .filter(|invoice| invoice.buyer == "tenant-tailspin")
        .flat_map(|invoice| &invoice.lines)
        .map(|line| ((line.meter, line.partner.clone()), line.amount))
        .collect();
    let split: BTreeSet<MeterId> = lines.keys().map(|(meter, _)| *meter).collect();
    println!(
        "\nTailspin's April invoice splits its {} meter(s) into {} line(s) at the move: each part is \
         commissioned to the partner Tailspin was under when the usage started.",
        split.len(),
        lines.len(),
    );
    let adatum: cms_core::Decimal = report
        .invoices
        .iter()
        .filter(|invoice| invoice.buyer == "tenant-adatum")
        .map(|invoice| invoice.total)
        .sum();
    monitoring(cms, operator, april, adatum, db)
}

/// A budget, one scheduler tick, the alerts and the dashboard page.
fn monitoring(
    cms: &mut Cms<SqliteStore>,
    operator: &Principal,
    april: Period,
    adatum: cms_core::Decimal,
    db: &Path,
) -> Result<(), CmsError> {
    let budget = cms_core::monitoring::budgets::Budget {
        id: "budget-adatum".into(),
        node: "tenant-adatum".into(),
        amount: (adatum * dec("0.9")).round_dp(2),
        currency: cms_core::model::money::Currency::USD,
        warning_percent: dec("80"),
        breach_percent: dec("100"),
        forecast: true,
    };
    if !cms.state().budgets.contains_key(&budget.id) {
        cms.set_budget(operator, crate::actor::now(), budget.clone())?;
    }
    let at = utc(2025, 4, 30) + chrono::Duration::hours(12);
    let report =
        cms.tick(&Principal::platform("scheduler"), at, &mut cms_core::engine::monitoring::NoHooks)?;
    let ran: Vec<&str> = report.runs.iter().map(|run| run.key.as_str()).collect();
    if ran.is_empty() {
        println!(
            "\nScheduler tick at {}: nothing due, the {} jobs of this slot ran already.",
            at.to_rfc3339(),
            report.skipped.len()
        );
    } else {
        println!("\nScheduler tick at {}: ran {}.", at.to_rfc3339(), ran.join(", "));
    }
    println!("Budget {} for Adatum: {} USD a month. Open alerts:", budget.id, budget.amount);
    println!("{}", crate::monitor::alert_table(&cms.alerts(operator, false)?));
    let board = cms.dashboard(operator, april, at)?;
    let page = db.with_file_name("cms-dashboard.html");
    std::fs::write(&page, crate::dashboard_html::render(&board))
        .map_err(|error| crate::io_error(&page, &error))?;
    println!(
        "Dashboard of {april} (month to date {}) written to {} (`cms report --period {april} --at {}` prints it).",
        board
            .month_to_date
            .iter()
            .map(|amount| format!("{} {}", amount.amount, amount.currency))
            .collect::<Vec<_>>()
            .join(", "),
        page.display(),
        at.to_rfc3339()
    );
    Ok(())
}
