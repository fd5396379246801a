//! Hybrid clouds through FOCUS 1.2: other clouds' cost data imported and billed by pass-through pricing
//! (cost x exchange rate x (1 + uplift)), corrections of invoiced periods, and billed data exported per
//! hierarchy level.

use chrono::{TimeZone, Utc};
use cms_core::Decimal;
use cms_core::billing::{BillingRules, LineKind, MonthEndReport, NotBilledReason};
use cms_core::engine::{Cms, Event};
use cms_core::formats::focus::{ChargeCategory, ChargeClass, FocusCharge, read_focus_csv, write_focus_csv};
use cms_core::formats::focus_usage::{
    AccountMap, EXPORT_EXTENSIONS, billed_total, charge_to_usage, charge_to_usage_mapped, export_charges,
    focus_meter,
};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::meter::MeterId;
use cms_core::model::money::{Currency, parse_decimal};
use cms_core::model::pricing::PriceList;
use cms_core::model::time::Period;
use cms_core::model::usage::UsageRecord;
use cms_core::source::PageOrigin;
use cms_core::store::MemoryStore;

const HEADER: &str = "BilledCost,BillingAccountId,BillingAccountName,BillingCurrency,BillingPeriodEnd,BillingPeriodStart,\
ChargeCategory,ChargeClass,ChargeDescription,ChargePeriodEnd,ChargePeriodStart,ContractedCost,EffectiveCost,\
InvoiceIssuerName,ListCost,PricingQuantity,PricingUnit,ProviderName,PublisherName,ServiceCategory,ServiceName,\
SubAccountId,ConsumedQuantity,ConsumedUnit,ResourceId,RegionId,SkuId,Tags";

/// One AWS-shaped row: cost, category, class, usage day of October 2026, quantity, SKU.
fn row(cost: &str, category: &str, class: &str, day: u32, quantity: &str, sku: &str) -> String {
    format!(
        "{cost},111122223333,Payer,USD,2026-11-01T00:00:00Z,2026-10-01T00:00:00Z,{category},{class},{sku} usage,\
         2026-10-{:02}T00:00:00Z,2026-10-{day:02}T00:00:00Z,{cost},{cost},\"Amazon Web Services, Inc.\",{cost},{quantity},Hrs,AWS,AWS,Compute,\
         Amazon Elastic Compute Cloud,444455556666,{quantity},Hrs,i-0abc,us-east-1,{sku},\"{{\"\"team\"\":\"\"web\"\"}}\"",
        day + 1
    )
}

fn file(rows: &[String]) -> String {
    let mut text = HEADER.to_owned();
    for row in rows {
        text.push('\n');
        text.push_str(row);
    }
    text.push('\n');
    text
}

fn charges(text: &str) -> Vec<FocusCharge> {
    let mut out = Vec::new();
    read_focus_csv(text.as_bytes(), "aws-focus.csv", |charge, _| {
        out.push(charge.clone());
        Ok(())
    })
    .unwrap();
    out
}

fn records(text: &str) -> Vec<UsageRecord> {
    charges(text).iter().filter_map(charge_to_usage).collect()
}

fn dec(text: &str) -> Decimal {
    parse_decimal(text).unwrap()
}

fn october() -> Period {
    Period::month(2026, 10).unwrap()
}

/// platform > d > p > t (AWS account 444455556666 as a subscription); a EUR list with a 10 % pass-through
/// uplift at the partner; USD -> EUR at 0.9 from September.
fn engine(with_fx: bool) -> Cms<MemoryStore> {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    let add = |id: &str, kind, parent: Option<&str>| Event::NodeAdded {
        id: id.into(),
        kind,
        parent: parent.map(Into::into),
        name: format!("{id} name"),
    };
    let mut list = PriceList::new("hybrid", Currency::EUR);
    list.pass_through_uplift = Some(dec("0.10"));
    let mut events = vec![
        add("d", NodeKind::Distributor, None),
        add("p", NodeKind::Partner, Some("d")),
        add("t", NodeKind::Tenant, Some("p")),
        add("444455556666", NodeKind::Subscription, Some("t")),
        Event::PriceListCreated {
            list: cms_core::model::terms::sheet_list(list, "List", cms_core::model::time::Instant::MIN_UTC),
        },
        Event::PriceListAssigned {
            scope: cms_core::model::price_book::PriceScope::Node("p".into()),
            list: "hybrid".into(),
        },
    ];
    if with_fx {
        events.push(Event::ExchangeRateSet {
            from: Currency::USD,
            to: Currency::EUR,
            effective: Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap(),
            rate: dec("0.9"),
        });
    }
    for event in events {
        cms.execute(&op(), recorded_at(), &event).unwrap();
    }
    cms
}

fn month_end(cms: &Cms<MemoryStore>, period: Period) -> MonthEndReport {
    cms.month_end(period, BillingRules::default()).unwrap()
}

#[test]
fn focus_costs_are_passed_through_with_fx_and_uplift() {
    let text = file(&[
        row("10.00", "Usage", "", 1, "24", "BoxUsage:m5.large"),
        row("10.00", "Usage", "", 2, "24", "BoxUsage:m5.large"),
        row("-3.00", "Credit", "", 3, "0", "Credit"),
        row("1.80", "Tax", "", 3, "0", "Tax"),
    ]);
    let imported = records(&text);
    assert_eq!(imported.len(), 3, "the tax row is not imported");
    assert_eq!(imported[0].subscription, "444455556666");
    assert_eq!(imported[0].tags.get("team").map(String::as_str), Some("web"));
    assert_eq!(imported[0].meter, imported[1].meter, "one SKU, one meter");
    assert_ne!(imported[0].meter, imported[2].meter);
    let mut cms = engine(true);
    let summary = cms.ingest(&imported, &PageOrigin::named("aws-focus.csv")).unwrap();
    assert_eq!((summary.stored, summary.unknown_meters.len()), (3, 0), "FOCUS meters are not unknown meters");
    let report = month_end(&cms, october());
    let invoice = &report.invoices[0];
    assert_eq!(invoice.currency, Currency::EUR);
    let usage = invoice.lines.iter().find(|line| line.amount.is_sign_positive()).unwrap();
    assert_eq!(usage.kind, LineKind::PassThrough { uplift: dec("0.10"), fx_rate: dec("0.9") });
    assert_eq!((usage.quantity, usage.amount), (dec("48"), dec("19.80")), "20 USD x 0.9 x 1.1");
    assert_eq!(invoice.total, dec("16.83"), "19.80 - 2.97 of credit");
    let again = cms.ingest(&imported, &PageOrigin::named("aws-focus.csv")).unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 3), "a re-import changes nothing");
    assert_eq!(month_end(&cms, october()), report);
}

#[test]
fn costs_without_an_exchange_rate_or_a_list_are_not_billed() {
    let text = file(&[row("10.00", "Usage", "", 1, "24", "BoxUsage:m5.large")]);
    let mut cms = engine(false);
    cms.ingest(&records(&text), &PageOrigin::named("aws.csv")).unwrap();
    let report = month_end(&cms, october());
    assert!(report.invoices.is_empty());
    assert_eq!(report.not_billed[0].reason, NotBilledReason::NoExchangeRate);
}

#[test]
fn a_corrected_cost_of_an_invoiced_period_is_an_adjustment() {
    let mut cms = engine(true);
    let first = file(&[row("10.00", "Usage", "", 1, "24", "BoxUsage:m5.large")]);
    cms.ingest(&records(&first), &PageOrigin::named("aws.csv")).unwrap();
    let issued = month_end(&cms, october());
    assert_eq!(issued.invoices[0].total, dec("9.90"));
    cms.close_period(&op(), recorded_at(), october()).unwrap();
    // The provider re-states the day at 12.50 USD.
    let restated = file(&[row("12.50", "Usage", "", 1, "24", "BoxUsage:m5.large")]);
    let summary = cms.ingest(&records(&restated), &PageOrigin::named("aws.csv")).unwrap();
    assert_eq!(summary.late_adjustments, 1);
    assert_eq!(month_end(&cms, october()), issued, "the invoiced period stays as issued");
    let november = month_end(&cms, october().next_month().unwrap());
    let line = &november.invoices[0].lines[0];
    assert_eq!(line.kind, LineKind::Adjustment { adjusts: october() });
    assert_eq!(line.amount, dec("2.48"), "round(12.50 x 0.99) - round(10.00 x 0.99) = 12.38 - 9.90");
    let exported = export_charges(&november, &cms.state().hierarchy, cms.state().hierarchy.root());
    assert_eq!(exported[0].charge_class, Some(ChargeClass::Correction));
    assert_eq!(exported[0].charge_period_start, october().start);
    assert_eq!(exported[0].billing_period_start, october().next_month().unwrap().start);
}

#[test]
fn billed_data_exports_per_level_and_reads_back() {
    let mut cms = engine(true);
    let text = file(&[
        row("10.00", "Usage", "", 1, "24", "BoxUsage:m5.large"),
        row("4.00", "Usage", "", 2, "5", "EBS:VolumeUsage"),
    ]);
    cms.ingest(&records(&text), &PageOrigin::named("aws.csv")).unwrap();
    let report = month_end(&cms, october());
    let hierarchy = &cms.state().hierarchy;
    let platform = export_charges(&report, hierarchy, hierarchy.root());
    let partner = export_charges(&report, hierarchy, hierarchy.find("p").unwrap());
    assert_eq!(platform.len(), 2);
    assert_eq!(billed_total(&platform), report.invoices[0].total, "the export reconciles with the invoices");
    assert_eq!(partner[0].invoice_issuer_name, "p name");
    assert_eq!(platform[0].invoice_issuer_name, "Platform");
    assert_eq!(partner[0].extensions.get("x_DistributorId").map(String::as_str), Some("d"));
    assert_eq!(partner[0].extensions.get("x_TenantId").map(String::as_str), Some("t"));
    assert!(export_charges(&report, hierarchy, hierarchy.find("d").unwrap()).len() == 2);
    let mut bytes = Vec::new();
    write_focus_csv(&partner, &EXPORT_EXTENSIONS, &mut bytes).unwrap();
    let read_back = charges(&String::from_utf8(bytes).unwrap());
    assert_eq!(read_back, partner, "the export is valid FOCUS 1.2 and round-trips");
    assert!(read_back.iter().all(|charge| charge.charge_category == ChargeCategory::Usage));
}

#[test]
fn focus_meters_are_stable_guids() {
    let charge = &charges(&file(&[row("1.00", "Usage", "", 1, "1", "BoxUsage:m5.large")]))[0];
    let meter = focus_meter(charge);
    assert_eq!(meter, focus_meter(&charge.clone()));
    let canonical = meter.canonical();
    assert_eq!(&canonical[14..15], "8", "version 8: {canonical}");
    assert!(matches!(&canonical[19..20], "8" | "9" | "A" | "B"), "variant: {canonical}");
    assert_eq!(canonical.parse::<MeterId>().unwrap(), meter);
    assert!(meter.info().is_none());
}

/// The operator recording the test's commands.
fn op() -> cms_core::engine::Principal {
    cms_core::engine::Principal::platform("test-operator")
}

/// When the test's commands are recorded (the core has no clock).
fn recorded_at() -> cms_core::model::time::Instant {
    cms_core::model::time::parse_timestamp("2026-11-26T12:00:00Z").unwrap()
}

/// Accounts are mapped to subscriptions when a map says so (Azure's `/subscriptions/<guid>` to the channel's
/// `<guid>`, an AWS account to a subscription of its own); otherwise the account id is the subscription.
#[test]
fn accounts_map_to_subscriptions() {
    const AZURE: &str = "/subscriptions/0BB4DB71-BE57-4209-851D-3D24F4C0CF83";
    let azure_row = row("3.00", "Usage", "", 2, "24", "D2s").replace("444455556666", AZURE);
    // Account-level charges have no SubAccountId: the billing account is mapped.
    let account_level = row("1.00", "Purchase", "", 3, "1", "Support").replace(",444455556666,", ",,");
    let text = file(&[row("10.00", "Usage", "", 1, "24", "m5.large"), azure_row, account_level]);
    let charges = charges(&text);

    // By default: the account ids as written.
    let plain: Vec<String> =
        charges.iter().filter_map(charge_to_usage).map(|record| record.subscription).collect();
    assert_eq!(plain, ["444455556666", AZURE, "111122223333"]);

    let map_csv = "subscription,account,note\n\
        0bb4db71-be57-4209-851d-3d24f4c0cf83,/subscriptions/0bb4db71-be57-4209-851d-3d24f4c0cf83,azure\n\
        sub-payer,111122223333,\n\
        sub-payer,111122223333,the same pair twice is fine\n";
    let accounts = AccountMap::read_csv(map_csv.as_bytes(), "map.csv").unwrap();
    assert_eq!(accounts.len(), 2);
    let mapped: Vec<String> = charges
        .iter()
        .filter_map(|charge| charge_to_usage_mapped(charge, &accounts))
        .map(|record| record.subscription)
        .collect();
    assert_eq!(
        mapped,
        ["444455556666", "0bb4db71-be57-4209-851d-3d24f4c0cf83", "sub-payer"],
        "matched ignoring case; an account the map lacks stays itself"
    );
    // Only the subscription changes.
    let (plain_record, mapped_record) =
        (charge_to_usage(&charges[1]).unwrap(), charge_to_usage_mapped(&charges[1], &accounts).unwrap());
    assert_eq!(
        UsageRecord { subscription: plain_record.subscription.clone(), ..mapped_record },
        plain_record
    );

    for (csv, code, message) in [
        ("account\nx\n", "bad_header", "map.csv"),
        ("account,subscription\nx,\n", "bad_record", "map.csv line 2"),
        ("account,subscription\nA,s1\na,s2\n", "invalid_value", "map.csv line 3"),
    ] {
        let error = AccountMap::read_csv(csv.as_bytes(), "map.csv").unwrap_err();
        assert_eq!(error.code(), code, "{error}");
        assert!(error.to_string().starts_with(message), "{error}");
    }
}
