//! `cms demo`: the tour for a newcomer.
//!
//! Builds a channel (one distributor, two partners, four tenants, three subscriptions) through the engine,
//! prices it (a platform list, a partner list that overrides one meter, graduated and volume tiers),
//! sets commission bands (one partner with its own whole-amount plan, one inheriting its distributor's
//! marginal bands) and an override; loads the sample Usage API page (`tests/data/`); extends each resource's
//! hourly reading to every hour of March 2025, so the month has realistic totals (the two real hours
//! arrive again and are deduplicated); rates the month; prints invoices and statements.

use std::collections::BTreeMap;
use std::path::Path;

use cms_core::CmsError;
use cms_core::Decimal;
use cms_core::billing::{BillingRules, MonthEndReport, NotBilledReason};
use cms_core::engine::{Cms, Event};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::meter::MeterId;
use cms_core::model::money::{Currency, parse_decimal};
use cms_core::model::price_book::PriceScope;
use cms_core::model::pricing::{CommissionPlan, PriceList};
use cms_core::model::terms::sheet_list;
use cms_core::model::tiers::{Tier, TierMode};
use cms_core::model::time::Instant;
use cms_core::model::time::Period;
use cms_core::model::usage::UsageRecord;
use cms_core::source::{PageBytesSource, PageOrigin};
use cms_core::store::Store;
use cms_sqlite::SqliteStore;

use crate::tables::table;

/// The sample page, compiled in so `cms demo` runs from anywhere.
const SAMPLE_PAGE: &str = include_str!("../../tests/data/azure-stack-hub-sample-usage.json");

fn dec(text: &str) -> Decimal {
    // Literals below are valid decimals; a typo would show as 0 in the demo's figures, never a panic.
    parse_decimal(text).unwrap_or_default()
}

fn meter(text: &str) -> MeterId {
    text.parse().unwrap_or(MeterId::from_u128(0))
}

fn tiers(pairs: &[(&str, &str)]) -> Vec<Tier> {
    pairs.iter().map(|(from, rate)| Tier { from: dec(from), rate: dec(rate) }).collect()
}

fn add(id: &str, kind: NodeKind, parent: Option<&str>, name: &str) -> Event {
    Event::NodeAdded { id: id.into(), kind, parent: parent.map(Into::into), name: name.into() }
}

fn price_lists() -> Result<[PriceList; 2], CmsError> {
    let mut standard = PriceList::new("list-standard", Currency::USD);
    let graduated = TierMode::Graduated;
    // Microsoft's 2017 list prices where known (usage reference, section 3), per hour where the meter is hourly.
    standard.set(
        meter("FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5"),
        "vCPU-hours",
        graduated,
        tiers(&[("0", "0.008"), ("1000", "0.0072")]),
    )?;
    standard.set_flat(meter("9CD92D4C-BAFD-4492-B278-BEDC2DE8232A"), "vCPU-hours", dec("0.046"));
    standard.set_flat(meter("F271A8A388C44D93956A063E1D2FA80B"), "IP-hours", dec("0.004"));
    standard.set_flat(meter("9E2739BA86744796B465F64674B822BA"), "IP-hours", dec("0.004"));
    standard.set_flat(meter("09F8879E-87E9-4305-A572-4B7BE209F857"), "GB-hours", dec("0.0000082"));
    standard.set_flat(meter("B5C15376-6C94-4FDD-B655-1A69D138ACA3"), "GB-hours", dec("0.000025"));
    standard.set_flat(meter("B4438D5D-453B-4EE1-B42A-DC72E377F1E4"), "GB-hours", dec("0.0000247"));
    standard.set_flat(meter("43DAF82B-4618-444A-B994-40C23F7CD438"), "10k transactions", dec("0.0036"));
    standard.set_flat(meter("EB43DD12-1AA6-4C4B-872C-FAF15A6785EA"), "10k transactions", dec("0.0036"));
    standard.set(
        meter("3023FEF4-ECA5-4D7B-87B3-CFBC061931E8"),
        "GB",
        graduated,
        tiers(&[("0", "0"), ("5", "0.087")]),
    )?;
    standard.set_flat(meter("CBCFEF9A-B91F-4597-A4D3-01FE334BED82"), "MB-hours", dec("0.0000013"));
    standard.set_flat(meter("EBF13B9F-B3EA-46FE-BF54-396E93D48AB4"), "10k transactions", dec("0.03"));
    standard.set_flat(meter("88039D51-A206-3A89-E9DE-C5117E2D10A6"), "instance-hours", dec("0.10"));
    standard.set(
        meter("67CC4AFC-0691-48E1-A4B8-D744D1FEDBDE"),
        "10 requests",
        TierMode::Volume,
        tiers(&[("0", "0.00002"), ("50000", "0.000016")]),
    )?;
    // VM size hours (6DAB500F) double counts with the core-hour meters: deliberately not priced.
    let mut fabrikam = PriceList::new("list-fabrikam", Currency::USD);
    fabrikam.set_flat(meter("9CD92D4C-BAFD-4492-B278-BEDC2DE8232A"), "vCPU-hours", dec("0.042"));

    Ok([standard, fabrikam])
}

fn channel() -> Result<Vec<Event>, CmsError> {
    let [standard, fabrikam] = price_lists()?;
    let northwind = CommissionPlan::new(
        "bands-northwind",
        TierMode::Graduated,
        tiers(&[("0", "0.05"), ("100", "0.08"), ("500", "0.12")]),
    )?;
    let contoso =
        CommissionPlan::new("bands-contoso", TierMode::Volume, tiers(&[("0", "0.06"), ("50", "0.09")]))?;
    Ok(vec![
        add("dist-northwind", NodeKind::Distributor, None, "Northwind Distribution"),
        add("partner-contoso", NodeKind::Partner, Some("dist-northwind"), "Contoso Cloud Partners"),
        add("partner-fabrikam", NodeKind::Partner, Some("dist-northwind"), "Fabrikam Solutions"),
        add("tenant-adatum", NodeKind::Tenant, Some("partner-contoso"), "Adatum Web"),
        add("tenant-tailspin", NodeKind::Tenant, Some("partner-contoso"), "Tailspin Toys"),
        add("tenant-woodgrove", NodeKind::Tenant, Some("partner-fabrikam"), "Woodgrove Bank"),
        add(
            "tenant-litware",
            NodeKind::Tenant,
            Some("partner-fabrikam"),
            "Litware (onboarded, no usage yet)",
        ),
        add(
            "3f2a6c1e-8b4d-4e1a-9c7f-2d5b8e0a1c11",
            NodeKind::Subscription,
            Some("tenant-adatum"),
            "adatum-prod",
        ),
        add(
            "c41e8f73-6a2b-4d9c-b05e-8e3f1a7d4c33",
            NodeKind::Subscription,
            Some("tenant-tailspin"),
            "tailspin-aks",
        ),
        add(
            "7b9d0e42-1c3f-4a6b-8e2d-5f7a9c1b3d22",
            NodeKind::Subscription,
            Some("tenant-woodgrove"),
            "woodgrove-sql",
        ),
        Event::PriceListCreated { list: sheet_list(standard, "Standard", Instant::MIN_UTC) },
        Event::PriceListCreated { list: sheet_list(fabrikam, "Fabrikam", Instant::MIN_UTC) },
        Event::PriceListAssigned { scope: PriceScope::Default, list: "list-standard".into() },
        Event::PriceListAssigned {
            scope: PriceScope::Node("partner-fabrikam".into()),
            list: "list-fabrikam".into(),
        },
        Event::CommissionPlanPut { plan: northwind },
        Event::CommissionPlanPut { plan: contoso },
        Event::CommissionPlanAssigned { node: "dist-northwind".into(), plan: "bands-northwind".into() },
        Event::CommissionPlanAssigned { node: "partner-contoso".into(), plan: "bands-contoso".into() },
        Event::OverrideRateSet { node: "dist-northwind".into(), rate: dec("0.02") },
    ])
}

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

fn short(text: &str) -> &str {
    text.get(..8).unwrap_or(text)
}

fn shown(quantity: Decimal) -> String {
    quantity.normalize().to_string()
}

pub fn run(db: &Path) -> Result<(), CmsError> {
    let mut cms = crate::open_engine(db)?;
    let operator = crate::actor::operator();
    let recorded = cms.store().events()?.len();
    if recorded == 0 {
        cms.execute_all(&operator, crate::actor::now(), &channel()?)?;
        println!("CMS demo on {}: a new channel ({} events)\n", db.display(), cms.store().events()?.len());
    } else {
        println!("CMS demo on {}: continuing from {recorded} recorded events\n", db.display());
    }
    let hierarchy = &cms.state().hierarchy;
    for index in hierarchy.subtree(hierarchy.root()) {
        let node = hierarchy.node(index);
        let depth = hierarchy.ancestry(index).count() - 1;
        println!("{}{} {} ({})", "  ".repeat(depth), hierarchy.label(node.kind), node.name, node.id);
    }

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
    let period = Period::month(2025, 3)?;
    let mut page_records = Vec::new();
    cms.store().for_each_usage(&period, &mut |record| {
        page_records.push(record.clone());
        Ok(())
    })?;
    let month = steady_month(&page_records, period);
    let write = cms.ingest(&month, &PageOrigin::named("steady month"))?;
    println!(
        "Steady month (each resource's latest hour repeated over {period}): {} record(s): {} stored, {} duplicate(s) \
         (the page's own hours), {} correction(s)",
        month.len(),
        write.stored,
        write.duplicates,
        write.corrections.len()
    );

    let report = cms.month_end(period, BillingRules::default())?;
    print_report(&cms, &report);
    Ok(())
}

fn print_report(cms: &Cms<SqliteStore>, report: &MonthEndReport) {
    let hierarchy = &cms.state().hierarchy;
    let name = |id: &str| hierarchy.get(id).map_or_else(|| id.to_owned(), |node| node.name.clone());
    print_invoices(report, &name);
    print_statements(report);
    print_unpriced(report, &name);
}

fn print_invoices(report: &MonthEndReport, name: &dyn Fn(&str) -> String) {
    for invoice in &report.invoices {
        println!(
            "\nInvoice {} from {} to {} ({}), {}",
            report.period, invoice.issuer_name, invoice.buyer_name, invoice.buyer, invoice.currency
        );
        let rows = invoice
            .lines
            .iter()
            .map(|line| {
                let meter_name = line.meter.info().map_or("unknown meter", |info| info.name);
                vec![
                    name(&line.subscription),
                    format!("{meter_name} ({})", short(&line.meter.canonical())),
                    shown(line.quantity),
                    line.unit.clone(),
                    line.price_list.clone(),
                    line.amount.to_string(),
                ]
            })
            .chain(std::iter::once(vec![
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                "total".into(),
                invoice.total.to_string(),
            ]))
            .collect();
        println!(
            "{}",
            table(&["subscription", "meter", "quantity", "unit", "price list", "amount"], &[2, 5], rows)
        );
    }
}

fn print_statements(report: &MonthEndReport) {
    println!("\nCommission statements {}", report.period);
    let rows = report
        .commissions
        .iter()
        .map(|statement| {
            let bands = statement
                .bands
                .iter()
                .map(|band| {
                    format!("{}% of {}", shown(band.rate * Decimal::ONE_HUNDRED), shown(band.quantity))
                })
                .collect::<Vec<_>>()
                .join(" + ");
            vec![
                statement.partner_name.clone(),
                statement.revenue.to_string(),
                statement.plan.clone().unwrap_or_else(|| "(no plan)".into()),
                bands,
                statement.commission.to_string(),
            ]
        })
        .collect();
    println!("{}", table(&["partner", "revenue", "plan", "bands applied", "commission"], &[1, 4], rows));
    println!("\nDistributor overrides {}", report.period);
    let rows = report
        .overrides
        .iter()
        .map(|statement| {
            vec![
                statement.distributor_name.clone(),
                statement.revenue.to_string(),
                format!("{}%", shown(statement.rate * Decimal::ONE_HUNDRED)),
                statement.amount.to_string(),
            ]
        })
        .collect();
    println!("{}", table(&["distributor", "network revenue", "rate", "override"], &[1, 2, 3], rows));
}

fn print_unpriced(report: &MonthEndReport, name: &dyn Fn(&str) -> String) {
    if !report.not_billed.is_empty() {
        println!("\nNot billed");
        let rows = report
            .not_billed
            .iter()
            .map(|entry| {
                let why = match entry.reason {
                    NotBilledReason::NoPrice => "no price list prices the meter",
                    NotBilledReason::DoubleCounts => "double counts with the core-hour meters",
                    NotBilledReason::UnknownSubscription => "subscription not in the channel",
                    NotBilledReason::NoExchangeRate => "no exchange rate",
                };
                let meter_name = entry.meter.info().map_or("unknown meter", |info| info.name);
                vec![
                    name(&entry.subscription),
                    format!("{meter_name} ({})", short(&entry.meter.canonical())),
                    shown(entry.quantity),
                    why.into(),
                ]
            })
            .collect();
        println!("{}", table(&["subscription", "meter", "quantity", "why"], &[2], rows));
    }
}
