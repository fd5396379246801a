//! Invoices as documents on the engine: preview, issue (gapless numbers, content hash, due date, taxes per
//! rate), the issue delay, void with a credit note and issue again, late usage on the next invoice,
//! re-rating a corrected period into debit and credit notes, progressive (interim) billing, commission
//! statements from issued documents with clawbacks, renderings, tamper detection and scoping.
//!
//! The channel: platform > Northwind (distributor, 2 % override) > Contoso (partner, bands 10 % to 1000,
//! 15 % above) > Tenant 1 (NL) and Tenant 2 (DE); platform > Fabrikam (partner, no plan) > Tenant 3 (no
//! jurisdiction). Prices: 0.05 per vCore-hour, 0.004 per IP-hour. Taxes: NL 21 %, NL network 0 %, DE 19 %.
//!
//! October: S1 (Tenant 1) 1000 vCore-hours = 50.00 and 720 IP-hours = 2.88; S2 (Tenant 2) 2000 vCore-hours
//! = 100.00; S3 (Tenant 3) 400 vCore-hours = 20.00. Every expected figure is worked out in the comments.

use chrono::{Duration, TimeZone, Utc};
use cms_core::Decimal;
use cms_core::billing::LineKind;
use cms_core::billing::invoice::{
    DocumentKind, InvoiceDocument, InvoiceSettings, LineGrouping, TaxRule, body, content_hash, parse_body,
    to_csv, to_markdown,
};
use cms_core::engine::{Cms, DocumentState, Event, INVOICE_DOCUMENT, Principal};
use cms_core::model::adjustments::{Credit, CreditScope, Recurrence};
use cms_core::model::channel::BillingProfile;
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::meter::{Category, MeterId};
use cms_core::model::money::{Currency, parse_decimal};
use cms_core::model::price_book::{BookList, PriceScope, PriceVersion};
use cms_core::model::pricing::{CommissionPlan, MeterPrice, PriceModel};
use cms_core::model::tiers::{Tier, TierMode};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::UsageRecord;
use cms_core::source::PageOrigin;
use cms_core::store::{Document, MemoryStore, Store};

const VM: &str = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5";
const IP: &str = "F271A8A3-88C4-4D93-956A-063E1D2FA80B";

fn dec(text: &str) -> Decimal {
    parse_decimal(text).unwrap()
}

fn meter(text: &str) -> MeterId {
    text.parse().unwrap()
}

fn utc(month: u32, day: u32, hour: u32) -> Instant {
    Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0).unwrap()
}

fn october() -> Period {
    Period::month(2026, 10).unwrap()
}

fn november() -> Period {
    Period::month(2026, 11).unwrap()
}

fn december() -> Period {
    Period::month(2026, 12).unwrap()
}

fn operator() -> Principal {
    Principal::platform("operator")
}

fn add(id: &str, kind: NodeKind, parent: Option<&str>) -> Event {
    Event::NodeAdded { id: id.into(), kind, parent: parent.map(Into::into), name: format!("{id} name") }
}

fn prices(vm: &str, effective: Instant) -> PriceVersion {
    PriceVersion::own(
        effective,
        [
            (meter(VM), MeterPrice::new("vCore-hours", PriceModel::per_unit(dec(vm)))),
            (meter(IP), MeterPrice::new("IP-hours", PriceModel::per_unit(dec("0.004")))),
        ]
        .into_iter()
        .collect(),
    )
}

fn jurisdiction(node: &str, code: &str) -> Event {
    Event::BillingProfileSet {
        node: node.into(),
        profile: BillingProfile { jurisdiction: Some(code.into()), ..BillingProfile::default() },
    }
}

fn tax(id: &str, jurisdiction: &str, category: Option<Category>, rate: &str) -> Event {
    Event::TaxRuleSet {
        rule: TaxRule {
            id: id.into(),
            name: format!("{id} tax"),
            jurisdiction: jurisdiction.into(),
            issuer: None,
            category,
            rate: dec(rate),
        },
    }
}

fn setup() -> Cms<MemoryStore> {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    let mut list = BookList::new("std", "Standard", Currency::USD);
    list.versions.push(prices("0.05", Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()));
    let plan = CommissionPlan::new(
        "bands",
        TierMode::Graduated,
        vec![Tier { from: dec("0"), rate: dec("0.10") }, Tier { from: dec("1000"), rate: dec("0.15") }],
    )
    .unwrap();
    let events = vec![
        add("northwind", NodeKind::Distributor, None),
        add("contoso", NodeKind::Partner, Some("northwind")),
        add("fabrikam", NodeKind::Partner, None),
        add("t1", NodeKind::Tenant, Some("contoso")),
        add("t2", NodeKind::Tenant, Some("contoso")),
        add("t3", NodeKind::Tenant, Some("fabrikam")),
        add("s1", NodeKind::Subscription, Some("t1")),
        add("s2", NodeKind::Subscription, Some("t2")),
        add("s3", NodeKind::Subscription, Some("t3")),
        Event::PriceListCreated { list },
        Event::PriceListAssigned { scope: PriceScope::Default, list: "std".into() },
        Event::CommissionPlanPut { plan },
        Event::CommissionPlanAssigned { node: "contoso".into(), plan: "bands".into() },
        Event::OverrideRateSet { node: "northwind".into(), rate: dec("0.02") },
        jurisdiction("t1", "NL"),
        jurisdiction("t2", "DE"),
        tax("nl", "NL", None, "0.21"),
        tax("nl-network", "NL", Some(Category::Network), "0"),
        tax("de", "DE", None, "0.19"),
    ];
    for event in events {
        cms.execute(&operator(), utc(9, 1, 0), &event).unwrap_or_else(|error| panic!("{event:?}: {error}"));
    }
    cms
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

fn ingest(cms: &mut Cms<MemoryStore>, records: &[UsageRecord], name: &str) {
    let summary = cms.ingest(records, &PageOrigin::named(name)).unwrap();
    assert!(summary.refused.is_empty(), "{:?}", summary.refused);
}

fn october_usage(cms: &mut Cms<MemoryStore>) {
    ingest(
        cms,
        &[
            record("s1", VM, utc(10, 3, 0), "1000"),
            record("s1", IP, utc(10, 3, 0), "720"),
            record("s2", VM, utc(10, 3, 0), "2000"),
            record("s3", VM, utc(10, 3, 0), "400"),
        ],
        "october",
    );
}

fn by_buyer<'a>(documents: &'a [InvoiceDocument], buyer: &str) -> &'a InvoiceDocument {
    documents
        .iter()
        .find(|document| document.buyer == buyer)
        .unwrap_or_else(|| panic!("no document of {buyer}"))
}

fn stored_bodies(cms: &Cms<MemoryStore>) -> Vec<Document> {
    cms.store().documents(INVOICE_DOCUMENT, "").unwrap()
}

fn check_sums(document: &InvoiceDocument) {
    let lines: Decimal = document.lines.iter().map(|line| line.amount).sum();
    let taxes: Decimal = document.taxes.iter().map(|tax| tax.amount).sum();
    assert_eq!(document.subtotal, lines, "{:?}", document.number);
    assert_eq!(document.total, lines + taxes, "{:?}", document.number);
}

#[test]
fn a_preview_shows_lines_taxes_per_rate_and_totals() {
    let mut cms = setup();
    october_usage(&mut cms);
    let drafts = cms.preview_invoices(&operator(), october(), None).unwrap();
    assert_eq!(drafts.len(), 3);
    let t1 = by_buyer(&drafts, "t1");
    assert_eq!(t1.number, None);
    assert_eq!(t1.jurisdiction.as_deref(), Some("NL"));
    // IP 720 x 0.004 = 2.88 at 0 % (network exempt in NL); VM 1000 x 0.05 = 50.00 at 21 %.
    let amounts: Vec<(Option<MeterId>, Decimal, Decimal)> =
        t1.lines.iter().map(|line| (line.meter, line.amount, line.tax_rate)).collect();
    assert!(amounts.contains(&(Some(meter(IP)), dec("2.88"), dec("0"))), "{amounts:?}");
    assert!(amounts.contains(&(Some(meter(VM)), dec("50.00"), dec("0.21"))), "{amounts:?}");
    assert_eq!(t1.subtotal, dec("52.88"));
    // Only the non-zero rate is listed: 21 % of 50.00 = 10.50.
    assert_eq!(t1.taxes.len(), 1);
    assert_eq!(
        (t1.taxes[0].rate, t1.taxes[0].base, t1.taxes[0].amount),
        (dec("0.21"), dec("50.00"), dec("10.50"))
    );
    assert_eq!(t1.total, dec("63.38"));
    // DE 19 % of 100.00 = 19.00; Tenant 3 has no jurisdiction: no tax.
    assert_eq!(by_buyer(&drafts, "t2").total, dec("119.00"));
    assert_eq!(by_buyer(&drafts, "t3").total, dec("20.00"));
    assert!(by_buyer(&drafts, "t3").taxes.is_empty());
    for draft in &drafts {
        check_sums(draft);
    }
}

#[test]
fn credits_are_lines_taxed_at_the_general_rate_and_reduce_the_tax_base() {
    let mut cms = setup();
    let credit = Credit {
        id: "goodwill".into(),
        scope: CreditScope::Tenant("t1".into()),
        amount: dec("5"),
        currency: Currency::USD,
        recurrence: Recurrence::OneOff { period: october() },
        reason: "outage".into(),
    };
    cms.execute(&operator(), utc(9, 2, 0), &Event::CreditGranted { credit }).unwrap();
    october_usage(&mut cms);
    let drafts = cms.preview_invoices(&operator(), october(), Some(&["t1".to_owned()])).unwrap();
    let t1 = &drafts[0];
    let credit = t1.lines.iter().find(|line| matches!(line.kind, LineKind::Credit { .. })).unwrap();
    assert_eq!((credit.amount, credit.tax_rate, credit.meter), (dec("-5.00"), dec("0.21"), None));
    assert_eq!(credit.description, "Credit goodwill: outage");
    // 52.88 - 5.00 = 47.88; 21 % of (50.00 - 5.00) = 9.45; total 57.33.
    assert_eq!(
        (t1.subtotal, t1.taxes[0].base, t1.taxes[0].amount, t1.total),
        (dec("47.88"), dec("45.00"), dec("9.45"), dec("57.33"))
    );
    check_sums(t1);
}

#[test]
fn issuing_numbers_gaplessly_hashes_bodies_and_is_idempotent() {
    let mut cms = setup();
    october_usage(&mut cms);
    let preview = cms.preview_invoices(&operator(), october(), None).unwrap();
    let issued = cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
    assert_eq!(issued.len(), 3);
    let numbers: Vec<&str> = issued.iter().filter_map(|document| document.number.as_deref()).collect();
    assert_eq!(numbers, ["platform-000001", "platform-000002", "platform-000003"]);
    // The preview at close equals what was issued, but for number, issue instant and due date.
    for document in &issued {
        let mut as_draft = document.clone();
        as_draft.number = None;
        as_draft.issued_at = None;
        as_draft.due = None;
        assert_eq!(&as_draft, by_buyer(&preview, &document.buyer));
        // Due: 2026-11-01 + 30 days = 2026-12-01.
        assert_eq!(document.due, Some(chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()));
    }
    assert!(cms.state().closed_periods.contains(&october()), "issuing closes the period");
    // The stored bodies hash to what the events recorded.
    for (number, record) in &cms.state().issued {
        let (_, document) = cms.issued_document(&operator(), number).unwrap();
        assert_eq!(content_hash(&body(&document).unwrap()), record.hash);
    }
    // A second run issues nothing, and nothing is left to preview.
    assert!(cms.issue_invoices(&operator(), utc(11, 2, 6), october(), None).unwrap().is_empty());
    assert!(cms.preview_invoices(&operator(), october(), None).unwrap().is_empty());
    let listed = cms.invoice_documents(&operator(), Some(october())).unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|entry| entry.state == DocumentState::Issued && entry.hash.is_some()));
    assert_eq!(cms.verify_documents().unwrap(), Vec::<String>::new());
}

#[test]
fn issuing_one_tenant_leaves_the_others_as_drafts_of_the_closed_period() {
    let mut cms = setup();
    october_usage(&mut cms);
    let only = ["t2".to_owned()];
    let issued = cms.issue_invoices(&operator(), utc(11, 1, 6), october(), Some(&only)).unwrap();
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].number.as_deref(), Some("platform-000001"));
    let drafts = cms.preview_invoices(&operator(), october(), None).unwrap();
    let buyers: Vec<&str> = drafts.iter().map(|draft| draft.buyer.as_str()).collect();
    assert_eq!(buyers, ["t1", "t3"]);
    let rest = cms.issue_invoices(&operator(), utc(11, 1, 7), october(), None).unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[1].number.as_deref(), Some("platform-000003"));
}

#[test]
fn the_issue_delay_is_honoured() {
    let mut cms = setup();
    let settings = InvoiceSettings { issue_delay_days: 5, ..InvoiceSettings::default() };
    cms.execute(&operator(), utc(9, 2, 0), &Event::InvoiceSettingsSet { settings }).unwrap();
    october_usage(&mut cms);
    let early = cms.issue_invoices(&operator(), utc(11, 5, 23), october(), None).unwrap_err();
    assert_eq!(early.code(), "invalid_value");
    assert!(early.to_string().contains("2026-11-06"), "{early}");
    assert!(!cms.state().closed_periods.contains(&october()), "a refused issue changes nothing");
    assert_eq!(cms.issue_invoices(&operator(), utc(11, 6, 0), october(), None).unwrap().len(), 3);
}

#[test]
fn voiding_issues_a_cancelling_credit_note_and_the_invoice_can_be_issued_again() {
    let mut cms = setup();
    october_usage(&mut cms);
    cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
    let before = stored_bodies(&cms);
    let note = cms.void_invoice(&operator(), utc(11, 3, 0), "platform-000001", "wrong address").unwrap();
    assert_eq!(note.kind, DocumentKind::CreditNote);
    assert_eq!(note.number.as_deref(), Some("platform-000004"));
    assert_eq!(note.corrects.as_deref(), Some("platform-000001"));
    // Tenant 1's invoice was 52.88 + 10.50 = 63.38: the note is its exact negative.
    assert_eq!((note.subtotal, note.total), (dec("-52.88"), dec("-63.38")));
    check_sums(&note);
    // Voiding again is refused; so is voiding a credit note.
    assert_eq!(
        cms.void_invoice(&operator(), utc(11, 3, 1), "platform-000001", "again").unwrap_err().code(),
        "invalid_value"
    );
    assert_eq!(
        cms.void_invoice(&operator(), utc(11, 3, 1), "platform-000004", "no").unwrap_err().code(),
        "invalid_value"
    );
    // The voided invoice's body did not change.
    let after = stored_bodies(&cms);
    for document in &before {
        assert!(after.contains(document), "{} changed", document.key);
    }
    let listed = cms.invoice_documents(&operator(), Some(october())).unwrap();
    let voided =
        listed.iter().find(|entry| entry.document.number.as_deref() == Some("platform-000001")).unwrap();
    assert_eq!(voided.state, DocumentState::Voided);
    assert_eq!(voided.voided_by.as_deref(), Some("platform-000004"));
    // Tenant 1 has a draft again, for the whole; issuing it gives the next number.
    let drafts = cms.preview_invoices(&operator(), october(), None).unwrap();
    assert_eq!(drafts.len(), 1);
    assert_eq!(drafts[0].total, dec("63.38"));
    let again = cms.issue_invoices(&operator(), utc(11, 4, 0), october(), None).unwrap();
    assert_eq!(again[0].number.as_deref(), Some("platform-000005"));
}

#[test]
fn late_usage_of_an_issued_period_is_an_adjustment_on_the_next_invoice() {
    let mut cms = setup();
    october_usage(&mut cms);
    cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
    let before = stored_bodies(&cms);
    // 100 more vCore-hours of October arrive on 2026-11-10: 100 x 0.05 = 5.00 on November's invoice.
    ingest(&mut cms, &[record("s1", VM, utc(10, 20, 0), "100")], "late");
    ingest(&mut cms, &[record("s1", VM, utc(11, 2, 0), "200")], "november");
    let drafts = cms.preview_invoices(&operator(), november(), None).unwrap();
    let t1 = by_buyer(&drafts, "t1");
    let late: Vec<_> = t1
        .lines
        .iter()
        .filter(|line| matches!(line.kind, LineKind::Adjustment { adjusts } if adjusts == october()))
        .collect();
    assert_eq!(late.len(), 1);
    assert_eq!((late[0].amount, late[0].tax_rate), (dec("5.00"), dec("0.21")));
    // November: 200 x 0.05 = 10.00 + the adjustment 5.00 = 15.00; tax 21 % = 3.15.
    assert_eq!((t1.subtotal, t1.total), (dec("15.00"), dec("18.15")));
    assert_eq!(stored_bodies(&cms), before, "October's documents are as issued");
    // Usage older than the look-back window is refused.
    cms.issue_invoices(&operator(), utc(12, 1, 6), november(), None).unwrap();
    cms.close_period(&operator(), utc(12, 31, 0), december()).unwrap();
    let refused =
        cms.ingest(&[record("s1", VM, utc(10, 21, 0), "1")], &PageOrigin::named("too late")).unwrap();
    assert_eq!(refused.refused.len(), 1);
}

#[test]
fn rerating_a_corrected_period_issues_notes_for_exactly_the_difference() {
    let mut cms = setup();
    october_usage(&mut cms);
    let issued = cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
    let before = stored_bodies(&cms);
    // A plain price change inside the issued period is refused...
    let change = Event::PriceVersionAdded { list: "std".into(), version: prices("0.06", october().start) };
    assert_eq!(cms.execute(&operator(), utc(11, 5, 0), &change).unwrap_err().code(), "invalid_value");
    // ... and accepted as a correction.
    let correction = Event::Correction { reason: "October list was wrong".into(), event: Box::new(change) };
    cms.execute(&operator(), utc(11, 5, 0), &correction).unwrap();
    let notes = cms.rerate(&operator(), utc(11, 5, 1), october(), "VM price corrected to 0.06").unwrap();
    assert_eq!(notes.len(), 3);
    // Tenant 1: 1000 x (0.06 - 0.05) = 10.00, 21 % tax 2.10, total 12.10.
    let t1 = by_buyer(&notes, "t1");
    assert_eq!(t1.kind, DocumentKind::DebitNote);
    assert_eq!(t1.corrects, by_buyer(&issued, "t1").number);
    assert_eq!(t1.lines.len(), 1, "only the VM line changed: {:?}", t1.lines);
    assert_eq!((t1.lines[0].quantity, t1.lines[0].amount), (Some(dec("0")), dec("10.00")));
    assert_eq!((t1.subtotal, t1.total), (dec("10.00"), dec("12.10")));
    // Tenant 2: 2000 x 0.01 = 20.00 + 19 % = 23.80. Tenant 3: 400 x 0.01 = 4.00.
    assert_eq!(by_buyer(&notes, "t2").total, dec("23.80"));
    assert_eq!(by_buyer(&notes, "t3").total, dec("4.00"));
    // new - old, exactly: the invoice plus its note is what the corrected prices give.
    let corrected = cms.month_end(october(), cms.billing_rules()).unwrap();
    for document in &issued {
        let note = by_buyer(&notes, &document.buyer);
        let owed = corrected.invoices.iter().find(|invoice| invoice.buyer == document.buyer).unwrap().total;
        assert_eq!(document.subtotal + note.subtotal, owed);
    }
    // Issued documents are byte-identical; a second re-rating finds nothing.
    let after = stored_bodies(&cms);
    for document in &before {
        assert!(after.contains(document), "{} changed", document.key);
    }
    assert!(cms.rerate(&operator(), utc(11, 6, 0), october(), "again").unwrap().is_empty());
    // Lowering the price back below the original gives credit notes: 1000 x (0.04 - 0.06) = -20.00.
    let lower = Event::PriceVersionAdded {
        list: "std".into(),
        version: prices("0.04", october().start + Duration::hours(1)),
    };
    cms.execute(
        &operator(),
        utc(11, 7, 0),
        &Event::Correction { reason: "discounted".into(), event: Box::new(lower) },
    )
    .unwrap();
    let credits = cms.rerate(&operator(), utc(11, 7, 1), october(), "price lowered").unwrap();
    let t1 = by_buyer(&credits, "t1");
    assert_eq!(t1.kind, DocumentKind::CreditNote);
    assert_eq!((t1.subtotal, t1.total), (dec("-20.00"), dec("-24.20")));
}

#[test]
fn progressive_billing_issues_interim_invoices_and_the_final_one_deducts_them() {
    let mut cms = setup();
    let mut settings = InvoiceSettings::default();
    settings.thresholds.insert("t2".into(), dec("60"));
    cms.execute(&operator(), utc(9, 2, 0), &Event::InvoiceSettingsSet { settings }).unwrap();
    // 1000 vCore-hours = 50.00: below 60, nothing.
    ingest(&mut cms, &[record("s2", VM, utc(10, 2, 0), "1000")], "day 2");
    assert!(cms.issue_interim(&operator(), utc(10, 10, 0)).unwrap().is_empty());
    // 400 more = 70.00 running: an interim invoice of 70.00 + 19 % 13.30 = 83.30.
    ingest(&mut cms, &[record("s2", VM, utc(10, 11, 0), "400")], "day 11");
    let interim = cms.issue_interim(&operator(), utc(10, 12, 0)).unwrap();
    assert_eq!(interim.len(), 1);
    assert_eq!(interim[0].kind, DocumentKind::Interim);
    assert_eq!((interim[0].subtotal, interim[0].total), (dec("70.00"), dec("83.30")));
    // 600 more = 30.00 not yet invoiced: below 60 again.
    ingest(&mut cms, &[record("s2", VM, utc(10, 20, 0), "600")], "day 20");
    assert!(cms.issue_interim(&operator(), utc(10, 21, 0)).unwrap().is_empty());
    // The final invoice bills the rest: 600 vCore-hours, 30.00, and names the interim it deducts.
    let finals = cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
    let last = by_buyer(&finals, "t2");
    assert_eq!(last.deducts, [interim[0].number.clone().unwrap()]);
    assert_eq!(last.lines.len(), 1);
    assert_eq!((last.lines[0].quantity, last.lines[0].amount), (Some(dec("600")), dec("30.00")));
    assert_eq!((last.subtotal, last.total), (dec("30.00"), dec("35.70")));
    // Interim billing of a closed period is refused.
    assert_eq!(cms.issue_interim(&operator(), utc(10, 30, 0)).unwrap_err().code(), "invalid_value");
}

#[test]
fn commission_statements_count_documents_issued_in_the_period_and_claw_back_credit_notes() {
    let mut cms = setup();
    october_usage(&mut cms);
    cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
    // Nothing was issued in October.
    assert!(cms.commission_report(&operator(), october()).unwrap().statements.is_empty());
    let report = cms.commission_report(&operator(), november()).unwrap();
    // Contoso: Tenant 1 52.88 + Tenant 2 100.00 = 152.88 (net before tax); 10 % = 15.288 -> 15.29.
    let contoso = report.statements.iter().find(|statement| statement.partner == "contoso").unwrap();
    assert_eq!((contoso.base, contoso.commission), (dec("152.88"), dec("15.29")));
    // Shares: 15.29 x 52.88 / 152.88 = 5.2886..., x 100 / 152.88 = 10.0013...: floors 5.28 + 10.00, the
    // remaining cent to the larger remainder (Tenant 1).
    let shares: Vec<(&str, Decimal)> =
        contoso.tenants.iter().map(|share| (share.tenant.as_str(), share.amount)).collect();
    assert_eq!(shares, [("t1", dec("5.29")), ("t2", dec("10.00"))]);
    // Fabrikam has no plan (none own, none inherited): commission 0.
    let fabrikam = report.statements.iter().find(|statement| statement.partner == "fabrikam").unwrap();
    assert_eq!((fabrikam.base, fabrikam.commission, fabrikam.plan.clone()), (dec("20.00"), dec("0"), None));
    // Northwind's override: 2 % x 152.88 = 3.0576 -> 3.06, split 1.0584 / 2.0016 -> 1.05 + 2.00 + 0.01 to
    // Tenant 1.
    let northwind = &report.overrides[0];
    assert_eq!((northwind.base, northwind.amount), (dec("152.88"), dec("3.06")));
    assert_eq!(
        northwind.tenants.iter().map(|share| share.amount).collect::<Vec<_>>(),
        [dec("1.06"), dec("2.00")]
    );
    // Per tenant: revenue = commissions + overrides + retained. Tenant 1: 52.88 - 5.29 - 1.06 = 46.53.
    let t1 = report.tenants.iter().find(|row| row.tenant == "t1").unwrap();
    assert_eq!(
        (t1.revenue, t1.commissions, t1.overrides, t1.retained),
        (dec("52.88"), dec("5.29"), dec("1.06"), dec("46.53"))
    );
    let totals = &report.totals[0];
    assert_eq!(totals.revenue, dec("172.88"));
    assert_eq!(totals.commissions + totals.overrides + totals.retained, totals.revenue);
    // A credit note issued in December claws back there: -52.88 -> -(10 % of 52.88 = 5.288 -> 5.29).
    cms.void_invoice(&operator(), utc(12, 2, 0), "platform-000001", "disputed").unwrap();
    let december_report = cms.commission_report(&operator(), december()).unwrap();
    let contoso = december_report.statements.iter().find(|statement| statement.partner == "contoso").unwrap();
    assert_eq!(
        (contoso.invoiced, contoso.clawbacks, contoso.commission),
        (dec("0"), dec("-52.88"), dec("-5.29"))
    );
}

#[test]
fn documents_render_as_json_csv_and_markdown() {
    let mut cms = setup();
    october_usage(&mut cms);
    let issued = cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
    let t1 = by_buyer(&issued, "t1");
    let json = body(t1).unwrap();
    assert!(json.contains("\"period\":\"2026-10\""), "{json}");
    assert!(json.contains("\"total\":\"63.38\""), "{json}");
    assert_eq!(&parse_body(&json, "t1").unwrap(), t1);
    let csv = to_csv(std::slice::from_ref(t1)).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[0].starts_with("number,kind,period"));
    assert!(csv.contains("platform-000001,invoice,2026-10,platform,t1,USD,usage,s1,"), "{csv}");
    let markdown = to_markdown(t1);
    assert!(markdown.starts_with("# Invoice platform-000001"), "{markdown}");
    assert!(markdown.contains("| **Total** | **63.38** |"), "{markdown}");
    assert!(markdown.contains("Due: 2026-12-01"), "{markdown}");
}

#[test]
fn grouping_by_meter_merges_subscriptions() {
    let mut cms = setup();
    let settings = InvoiceSettings { grouping: LineGrouping::Meter, ..InvoiceSettings::default() };
    cms.execute(&operator(), utc(9, 2, 0), &Event::InvoiceSettingsSet { settings }).unwrap();
    cms.execute(&operator(), utc(9, 2, 0), &add("s1b", NodeKind::Subscription, Some("t1"))).unwrap();
    october_usage(&mut cms);
    ingest(&mut cms, &[record("s1b", VM, utc(10, 4, 0), "10")], "s1b");
    let drafts = cms.preview_invoices(&operator(), october(), Some(&["t1".to_owned()])).unwrap();
    let vm: Vec<_> = drafts[0].lines.iter().filter(|line| line.meter == Some(meter(VM))).collect();
    // 1000 + 10 vCore-hours on one line: 50.00 + 0.50.
    assert_eq!(vm.len(), 1);
    assert_eq!(
        (vm[0].subscription.clone(), vm[0].quantity, vm[0].amount),
        (None, Some(dec("1010")), dec("50.50"))
    );
}

#[test]
fn an_altered_body_is_detected_and_refused() {
    let mut cms = setup();
    october_usage(&mut cms);
    cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
    let mut store = cms.into_store();
    let mut tampered = store.documents(INVOICE_DOCUMENT, "").unwrap().remove(0);
    tampered.body = tampered.body.replace("63.38", "6.38");
    store.put_documents(&[tampered]).unwrap();
    let cms = Cms::open(store).unwrap();
    assert_eq!(cms.verify_documents().unwrap(), ["platform-000001"]);
    let error = cms.issued_document(&operator(), "platform-000001").unwrap_err();
    assert!(error.to_string().contains("altered"), "{error}");
}

#[test]
fn principals_see_only_documents_of_their_subtree() {
    let mut cms = setup();
    october_usage(&mut cms);
    cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
    let fabrikam = Principal::at("fabrikam-admin", "fabrikam");
    let listed = cms.invoice_documents(&fabrikam, None).unwrap();
    let buyers: Vec<&str> = listed.iter().map(|entry| entry.tenant.as_str()).collect();
    assert_eq!(buyers, ["t3"]);
    assert_eq!(cms.issued_document(&fabrikam, "platform-000001").unwrap_err().code(), "unknown_node");
    let report = cms.commission_report(&fabrikam, november()).unwrap();
    assert_eq!(report.statements.len(), 1);
    assert_eq!(report.statements[0].partner, "fabrikam");
}

#[test]
fn issued_documents_survive_a_reopen_and_numbers_continue() {
    let mut cms = setup();
    october_usage(&mut cms);
    cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
    let mut cms = Cms::open(cms.into_store()).unwrap();
    assert_eq!(cms.state().issued.len(), 3);
    let note = cms.void_invoice(&operator(), utc(11, 2, 0), "platform-000003", "test").unwrap();
    assert_eq!(note.number.as_deref(), Some("platform-000004"));
    // Issuing with an instant before the issuer's last document is refused.
    let error = cms.void_invoice(&operator(), utc(11, 1, 0), "platform-000002", "back in time").unwrap_err();
    assert_eq!(error.code(), "invalid_value");
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Whole vCore-hours and IP-hours per (subscription, chunk): three chunks of the month.
    fn chunks() -> impl Strategy<Value = Vec<(u8, u16, u16)>> {
        prop::collection::vec((0u8..3, 0u16..3000, 0u16..900), 1..7)
    }

    fn subscription(index: u8) -> &'static str {
        ["s1", "s2", "s3"][usize::from(index % 3)]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Whatever the usage, taxes and thresholds: every document adds up; what is issued to a buyer for
        /// a period adds up to what the period's month-end bills it, before and after a void and a
        /// re-rating; issued bodies never change under later commands.
        #[test]
        fn documents_add_up_and_issued_bodies_never_change(
            usage in chunks(),
            nl in 0u32..30,
            de in 0u32..30,
            threshold in prop::option::of(1u32..200),
            new_price in 1u32..12,
        ) {
            let mut cms = setup();
            let rate = |percent: u32| Decimal::new(i64::from(percent), 2);
            cms.execute(&operator(), utc(9, 2, 0), &tax("nl", "NL", None, &rate(nl).to_string())).unwrap();
            cms.execute(&operator(), utc(9, 2, 0), &tax("de", "DE", None, &rate(de).to_string())).unwrap();
            if let Some(threshold) = threshold {
                let mut settings = InvoiceSettings::default();
                settings.thresholds.insert("t2".into(), Decimal::from(threshold));
                cms.execute(&operator(), utc(9, 2, 0), &Event::InvoiceSettingsSet { settings }).unwrap();
            }
            let mut documents: Vec<InvoiceDocument> = Vec::new();
            for (index, (sub, vm, ip)) in usage.iter().enumerate() {
                let day = 1 + u32::try_from(index).unwrap() * 4;
                ingest(
                    &mut cms,
                    &[
                        record(subscription(*sub), VM, utc(10, day, 1), &vm.to_string()),
                        record(subscription(*sub), IP, utc(10, day, 2), &ip.to_string()),
                    ],
                    &format!("chunk {index}"),
                );
                documents.extend(cms.issue_interim(&operator(), utc(10, day, 3)).unwrap());
            }
            documents.extend(cms.issue_invoices(&operator(), utc(11, 1, 0), october(), None).unwrap());
            let owed = |cms: &Cms<MemoryStore>| -> Vec<(String, Decimal)> {
                cms.month_end(october(), cms.billing_rules())
                    .unwrap()
                    .invoices
                    .iter()
                    .map(|invoice| (invoice.buyer.clone(), invoice.total))
                    .collect()
            };
            let issued_sum = |cms: &Cms<MemoryStore>, buyer: &str| -> Decimal {
                cms.invoice_documents(&operator(), Some(october()))
                    .unwrap()
                    .iter()
                    .filter(|entry| entry.document.number.is_some() && entry.tenant == buyer)
                    .map(|entry| entry.document.subtotal)
                    .sum()
            };
            for document in &documents {
                check_sums(document);
            }
            for (buyer, total) in owed(&cms) {
                prop_assert_eq!(issued_sum(&cms, &buyer), total, "{}", buyer);
            }
            let before = stored_bodies(&cms);
            // Void the first invoice (if any), issue it again, correct the price, re-rate.
            let first = documents.iter().find(|document| document.kind == DocumentKind::Invoice).cloned();
            if let Some(first) = first {
                let number = first.number.unwrap();
                check_sums(&cms.void_invoice(&operator(), utc(11, 2, 0), &number, "property").unwrap());
                for again in cms.issue_invoices(&operator(), utc(11, 2, 1), october(), None).unwrap() {
                    check_sums(&again);
                }
            }
            let price = Decimal::new(i64::from(new_price), 2).to_string();
            let change = Event::PriceVersionAdded { list: "std".into(), version: prices(&price, october().start) };
            cms.execute(&operator(), utc(11, 3, 0), &Event::Correction { reason: "p".into(), event: Box::new(change) })
                .unwrap();
            for note in cms.rerate(&operator(), utc(11, 3, 1), october(), "property").unwrap() {
                check_sums(&note);
            }
            for (buyer, total) in owed(&cms) {
                prop_assert_eq!(issued_sum(&cms, &buyer), total, "{} after re-rating", buyer);
            }
            let after = stored_bodies(&cms);
            for document in &before {
                prop_assert!(after.contains(document), "{} changed", document.key);
            }
            prop_assert!(cms.verify_documents().unwrap().is_empty());
            // Statements: shares sum to each total; revenue splits exactly.
            let report = cms.commission_report(&operator(), november()).unwrap();
            for statement in &report.statements {
                prop_assert_eq!(statement.tenants.iter().map(|share| share.amount).sum::<Decimal>(), statement.commission);
            }
            for statement in &report.overrides {
                prop_assert_eq!(statement.tenants.iter().map(|share| share.amount).sum::<Decimal>(), statement.amount);
            }
            for row in &report.tenants {
                prop_assert_eq!(row.commissions + row.overrides + row.retained, row.revenue);
            }
        }
    }
}

#[test]
fn a_distributor_override_can_follow_a_plans_bands_instead_of_a_flat_rate() {
    let mut cms = setup();
    let plan = Event::OverridePlanAssigned { node: "northwind".into(), plan: "bands".into() };
    cms.execute(&operator(), utc(9, 2, 0), &plan).unwrap();
    october_usage(&mut cms);
    // The month-end's override: the bands (10 % up to 1000) on Northwind's network, 152.88 -> 15.288 -> 15.29.
    let month_end = cms.month_end(october(), cms.billing_rules()).unwrap();
    assert_eq!(month_end.overrides[0].plan.as_deref(), Some("bands"));
    assert_eq!(month_end.overrides[0].amount, dec("15.29"));
    cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
    let report = cms.commission_report(&operator(), november()).unwrap();
    let northwind = &report.overrides[0];
    assert_eq!(
        (northwind.rate, northwind.plan.as_deref(), northwind.amount),
        (None, Some("bands"), dec("15.29"))
    );
    assert_eq!(northwind.tenants.iter().map(|share| share.amount).sum::<Decimal>(), dec("15.29"));
    // An unknown plan is refused.
    let unknown = Event::OverridePlanAssigned { node: "northwind".into(), plan: "nope".into() };
    assert_eq!(cms.execute(&operator(), utc(11, 2, 0), &unknown).unwrap_err().code(), "unknown_node");
}

#[test]
fn showback_and_chargeback_on_the_engine_allocate_shared_costs_exactly() {
    use cms_core::billing::chargeback::{AllocationMethod, ChargebackSettings, SharedCost, SharedSource};
    let mut cms = setup();
    let mut settings = ChargebackSettings::default();
    settings.cost_centres.insert("t1".into(), "CC-100".into());
    settings.cost_centres.insert("s1".into(), "CC-101".into());
    settings.shared.push(SharedCost {
        id: "ops".into(),
        name: "Platform operations".into(),
        source: SharedSource::Amount { amount: dec("100.00"), currency: Currency::USD },
        method: AllocationMethod::Even,
        targets: Vec::new(),
    });
    cms.execute(&operator(), utc(9, 2, 0), &Event::ChargebackSettingsSet { settings }).unwrap();
    october_usage(&mut cms);
    let showback = cms.showback(&operator(), october()).unwrap();
    // 100.00 over three departments: 33.34 (the first by id), 33.33, 33.33.
    let totals: Vec<(&str, Decimal)> = showback
        .departments
        .iter()
        .map(|department| (department.tenant.as_str(), department.total))
        .collect();
    assert_eq!(totals, [("t1", dec("86.22")), ("t2", dec("133.33")), ("t3", dec("53.33"))]);
    assert_eq!(showback.departments[0].cost_centre.as_deref(), Some("CC-100"));
    assert_eq!(showback.departments[0].projects[0].cost_centre.as_deref(), Some("CC-101"));
    // 52.88 + 100.00 + 20.00 invoiced + 100.00 overhead.
    assert_eq!(showback.total, dec("272.88"));
    let journal = cms.chargeback_journal(&operator(), october()).unwrap();
    let debits: Decimal = journal.iter().map(|line| line.debit).sum();
    let credits: Decimal = journal.iter().map(|line| line.credit).sum();
    assert_eq!((debits, credits), (dec("272.88"), dec("272.88")));
    // Settings naming an unknown department are refused when set.
    let mut bad = ChargebackSettings::default();
    bad.shared.push(SharedCost {
        id: "x".into(),
        name: "x".into(),
        source: SharedSource::Amount { amount: dec("1"), currency: Currency::USD },
        method: AllocationMethod::Even,
        targets: vec!["nobody".into()],
    });
    assert!(
        cms.execute(&operator(), utc(11, 1, 0), &Event::ChargebackSettingsSet { settings: bad }).is_err()
    );
}

#[test]
fn retention_purges_raw_usage_of_old_invoiced_periods_and_keeps_their_documents() {
    use cms_core::governance::policy::Policies;
    let mut cms = setup();
    let policies = Policies { usage_retention_months: Some(1), ..Policies::default() };
    cms.execute(&operator(), utc(9, 2, 0), &Event::PoliciesSet { policies }).unwrap();
    october_usage(&mut cms);
    cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
    let issued_before = cms.month_end(october(), cms.billing_rules()).unwrap();
    // October is the latest closed period: late usage may still reach it, nothing is purged.
    assert!(cms.purge_usage(&operator(), utc(12, 15, 0)).unwrap().is_empty());
    cms.close_period(&operator(), utc(12, 1, 0), november()).unwrap();
    cms.close_period(&operator(), utc(12, 31, 0), december()).unwrap();
    // Two periods later and a month after October ended: its 4 records go.
    let when = Utc.with_ymd_and_hms(2027, 1, 5, 0, 0, 0).unwrap();
    assert_eq!(cms.purge_usage(&operator(), when).unwrap(), [(october(), 4)]);
    assert!(cms.purge_usage(&operator(), when).unwrap().is_empty(), "nothing left to purge");
    let mut left = 0;
    cms.store()
        .for_each_usage(&october(), &mut |_| {
            left += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(left, 0);
    // The month-end and documents stay; re-rating is refused; the purge is audited.
    assert_eq!(cms.month_end(october(), cms.billing_rules()).unwrap(), issued_before);
    assert!(cms.verify_documents().unwrap().is_empty());
    assert_eq!(cms.rerate(&operator(), when, october(), "late").unwrap_err().code(), "invalid_value");
    let records = cms.audit_records(&operator()).unwrap();
    assert!(records.iter().any(|record| record.command == "usage_purged" && record.target == "2026-10"));
    assert_eq!(cms.verify_audit(None).unwrap().broken, None);
}
