//! Enterprise IT mode: showback, shared-cost allocation and the chargeback journal, with hand-checked
//! figures, refusals, and properties of the exact split (proptest).

use std::collections::BTreeMap;
use std::str::FromStr;

use cms_core::Decimal;
use cms_core::billing::{
    AllocationMethod, ChargebackSettings, Invoice, InvoiceLine, LineKind, MonthEndReport, SharedCost,
    SharedSource, ShowbackReport, allocate, allocate_even, journal, journal_csv, showback,
};
use cms_core::error::{CmsError, Location};
use cms_core::model::hierarchy::{Hierarchy, NodeKind};
use cms_core::model::meter::MeterId;
use cms_core::model::money::Currency;
use cms_core::model::time::Period;
use cms_core::rating::IngestStats;
use proptest::prelude::*;

const COMPUTE: MeterId = MeterId::from_u128(0x6dab_500f_a4fd_49c4_956d_229b_b9c8_c793);
const STORAGE: MeterId = MeterId::from_u128(0x09f8_879e_87e9_4305_a572_4b7b_e209_f857);

fn dec(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn march() -> Period {
    "2025-03".parse().unwrap()
}

fn line(subscription: &str, meter: MeterId, quantity: &str, amount: &str) -> InvoiceLine {
    InvoiceLine {
        subscription: subscription.to_owned(),
        meter,
        unit: "hours".to_owned(),
        quantity: dec(quantity),
        price_list: "internal".to_owned(),
        amount_exact: dec(amount),
        amount: dec(amount),
        kind: LineKind::Usage,
        price_effective: None,
        fx: None,
        partner: None,
        distributor: None,
    }
}

fn credit(amount: &str) -> InvoiceLine {
    InvoiceLine {
        subscription: String::new(),
        meter: MeterId::from_u128(0),
        unit: String::new(),
        quantity: Decimal::ZERO,
        price_list: String::new(),
        kind: LineKind::Credit { credit: "goodwill".to_owned(), reason: "outage".to_owned() },
        ..line("", MeterId::from_u128(0), "0", amount)
    }
}

fn invoice(tenant: &str, name: &str, currency: Currency, lines: Vec<InvoiceLine>) -> Invoice {
    let total = lines.iter().map(|line| line.amount).sum();
    Invoice {
        issuer: "it".to_owned(),
        issuer_name: "Central IT".to_owned(),
        buyer: tenant.to_owned(),
        buyer_name: name.to_owned(),
        buyer_kind: NodeKind::Tenant,
        bill_to: tenant.to_owned(),
        payment_terms_days: 30,
        period: march(),
        currency,
        lines,
        total,
    }
}

fn report(invoices: Vec<Invoice>) -> MonthEndReport {
    MonthEndReport {
        period: march(),
        invoices,
        commissions: Vec::new(),
        overrides: Vec::new(),
        margins: Vec::new(),
        not_billed: Vec::new(),
        stats: IngestStats::default(),
    }
}

/// Central IT > Engineering (web, data), Finance (erp), Operations (shared monitoring, tools).
fn hierarchy() -> Hierarchy {
    let mut tree = Hierarchy::new("it", "Central IT");
    for (id, name) in [("eng", "Engineering"), ("fin", "Finance"), ("ops", "Operations")] {
        tree.add(id, NodeKind::Tenant, None, name, None).unwrap();
    }
    for (id, parent, name) in [
        ("sub-eng-web", "eng", "Web shop"),
        ("sub-eng-data", "eng", "Data lake"),
        ("sub-fin-erp", "fin", "ERP"),
        ("sub-ops-shared", "ops", "Monitoring"),
        ("sub-ops-tools", "ops", "Tooling"),
    ] {
        tree.add(id, NodeKind::Subscription, Some(parent), name, None).unwrap();
    }
    tree
}

/// Invoices: Engineering 120.00 + 80.50 - 10.00 = 190.50; Finance 45.25; Operations 100.00 + 0.01 (the
/// shared monitoring subscription, once spelled in upper case) + 30.00 = 130.01. Together 365.76.
fn month() -> MonthEndReport {
    report(vec![
        invoice(
            "eng",
            "Engineering",
            Currency::USD,
            vec![
                line("sub-eng-data", STORAGE, "50", "80.50"),
                line("sub-eng-web", COMPUTE, "100", "120.00"),
                credit("-10.00"),
            ],
        ),
        invoice("fin", "Finance", Currency::USD, vec![line("sub-fin-erp", COMPUTE, "40", "45.25")]),
        invoice(
            "ops",
            "Operations",
            Currency::USD,
            vec![
                line("sub-ops-shared", COMPUTE, "10", "100.00"),
                line("SUB-OPS-SHARED", STORAGE, "5", "0.01"),
                line("sub-ops-tools", STORAGE, "20", "30.00"),
            ],
        ),
    ])
}

fn shared(id: &str, source: SharedSource, method: AllocationMethod, targets: &[&str]) -> SharedCost {
    SharedCost {
        id: id.to_owned(),
        name: format!("{id} (shared)"),
        source,
        method,
        targets: targets.iter().map(|&target| target.to_owned()).collect(),
    }
}

fn usd(amount: &str) -> SharedSource {
    SharedSource::Amount { amount: dec(amount), currency: Currency::USD }
}

fn weights(pairs: &[(&str, &str)]) -> AllocationMethod {
    AllocationMethod::Weights {
        weights: pairs.iter().map(|&(tenant, weight)| (tenant.to_owned(), dec(weight))).collect(),
    }
}

fn settings() -> ChargebackSettings {
    ChargebackSettings {
        cost_centres: [("eng", "CC-100"), ("fin", "CC-200"), ("it", "CC-900"), ("SUB-ENG-WEB", "CC-101")]
            .into_iter()
            .map(|(id, code)| (id.to_owned(), code.to_owned()))
            .collect(),
        shared: vec![
            shared("platform-ops", usd("1000.00"), AllocationMethod::Even, &[]),
            shared(
                "monitoring",
                SharedSource::Subscription { id: "sub-ops-shared".to_owned() },
                AllocationMethod::Cost,
                &[],
            ),
            shared("licences", usd("500.00"), weights(&[("eng", "3"), ("fin", "1"), ("ops", "2")]), &[]),
            shared("vpn-gateway", usd("90"), AllocationMethod::Usage { meter: COMPUTE }, &["fin", "eng"]),
        ],
        ..ChargebackSettings::default()
    }
}

fn texts<'a>(amounts: impl IntoIterator<Item = &'a Decimal>) -> Vec<String> {
    amounts.into_iter().map(ToString::to_string).collect()
}

fn code_of(result: Result<ShowbackReport, CmsError>) -> &'static str {
    result.unwrap_err().code()
}

#[test]
fn golden_showback() {
    let showback = showback(&month(), &hierarchy(), &settings()).unwrap();
    assert_eq!(showback.currency, Some(Currency::USD));
    assert_eq!(
        (showback.provider.as_str(), showback.provider_cost_centre.as_deref()),
        ("it", Some("CC-900"))
    );

    // platform-ops, 1000.00 even over eng, fin, ops: 333.33 each and the cent left to the first.
    // monitoring, 100.00 + 0.01 = 100.01 off Operations, by direct cost 190.50 : 45.25 : 30.00 (265.75):
    //   exact 71.6910.., 17.0298.., 11.2900..: floors 71.69, 17.02, 11.28 (99.99); the two cents left go to
    //   the largest remainders, ops (.9934) then fin (.8984): 71.69, 17.03, 11.29.
    // licences, 500.00 by weights 3 : 1 : 2: 250.00, 83.333.., 166.666..: floors leave one cent, to ops.
    // vpn-gateway, 90 by compute hours of fin (40) and eng (100; the shared subscription's 10 hours are not
    //   Operations' own, and ops is no target): 64.2857.., 25.7142..: the cent to eng.
    let by_id: BTreeMap<&str, Vec<(String, String)>> = showback
        .shared
        .iter()
        .map(|allocation| {
            let shares = allocation
                .shares
                .iter()
                .map(|share| (share.tenant.clone(), share.amount.to_string()))
                .collect();
            (allocation.id.as_str(), shares)
        })
        .collect();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter().map(|&(tenant, amount)| (tenant.to_owned(), amount.to_owned())).collect()
    };
    assert_eq!(
        by_id.keys().copied().collect::<Vec<_>>(),
        ["licences", "monitoring", "platform-ops", "vpn-gateway"]
    );
    assert_eq!(by_id["platform-ops"], pairs(&[("eng", "333.34"), ("fin", "333.33"), ("ops", "333.33")]));
    assert_eq!(by_id["monitoring"], pairs(&[("eng", "71.69"), ("fin", "17.03"), ("ops", "11.29")]));
    assert_eq!(by_id["licences"], pairs(&[("eng", "250.00"), ("fin", "83.33"), ("ops", "166.67")]));
    assert_eq!(by_id["vpn-gateway"], pairs(&[("eng", "64.29"), ("fin", "25.71")]));

    let monitoring = showback.shared.iter().find(|allocation| allocation.id == "monitoring").unwrap();
    assert_eq!(monitoring.amount.to_string(), "100.01");
    assert_eq!(monitoring.owners, ["ops"]);
    assert_eq!(texts(monitoring.shares.iter().map(|share| &share.basis)), ["190.50", "45.25", "30.00"]);

    let departments: Vec<_> =
        showback.departments.iter().map(|department| department.tenant.as_str()).collect();
    assert_eq!(departments, ["eng", "fin", "ops"]);
    let [eng, fin, ops] = &showback.departments[..] else { panic!("three departments") };

    // Engineering: direct 190.50 (web 120.00, data 80.50, the credit -10.00 under `other`);
    // 190.50 + 250.00 + 71.69 + 333.34 + 64.29 = 909.82.
    assert_eq!((eng.name.as_str(), eng.cost_centre.as_deref()), ("Engineering", Some("CC-100")));
    assert_eq!(
        texts([&eng.invoiced, &eng.direct, &eng.other, &eng.total]),
        ["190.50", "190.50", "-10.00", "909.82"]
    );
    let projects: Vec<_> = eng
        .projects
        .iter()
        .map(|project| {
            (
                project.subscription.as_str(),
                project.name.as_deref(),
                project.cost_centre.as_deref(),
                project.amount.to_string(),
            )
        })
        .collect();
    assert_eq!(
        projects,
        [
            ("sub-eng-data", Some("Data lake"), None, "80.50".to_owned()),
            ("sub-eng-web", Some("Web shop"), Some("CC-101"), "120.00".to_owned()),
        ]
    );
    let shares: Vec<_> =
        eng.shared.iter().map(|share| (share.shared.as_str(), share.amount.to_string())).collect();
    assert_eq!(
        shares,
        [
            ("licences", "250.00".to_owned()),
            ("monitoring", "71.69".to_owned()),
            ("platform-ops", "333.34".to_owned()),
            ("vpn-gateway", "64.29".to_owned()),
        ]
    );

    // Finance: 45.25 + 83.33 + 17.03 + 333.33 + 25.71 = 504.65.
    assert_eq!(
        texts([&fin.invoiced, &fin.direct, &fin.other, &fin.total]),
        ["45.25", "45.25", "0.00", "504.65"]
    );
    // Operations: invoiced 130.01, direct 30.00 (the monitoring lines moved out);
    // 30.00 + 166.67 + 11.29 + 333.33 = 541.29.
    assert_eq!(ops.cost_centre, None);
    assert_eq!(texts([&ops.invoiced, &ops.direct, &ops.total]), ["130.01", "30.00", "541.29"]);
    assert_eq!(ops.projects.len(), 1);
    assert_eq!(ops.shared.len(), 3);

    // 909.82 + 504.65 + 541.29 = 1955.76 = 365.76 invoiced + 1590.00 of fixed shared costs.
    assert_eq!(
        texts([&showback.invoiced, &showback.overhead, &showback.reallocated, &showback.total]),
        ["365.76", "1590.00", "100.01", "1955.76"]
    );
}

#[test]
fn golden_journal() {
    let settings = settings();
    let showback = showback(&month(), &hierarchy(), &settings).unwrap();
    let lines = journal(&showback, &settings);
    assert_eq!(lines.len(), 6);
    let debits: Decimal = lines.iter().map(|line| line.debit).sum();
    let credits: Decimal = lines.iter().map(|line| line.credit).sum();
    assert_eq!((debits.to_string(), credits.to_string()), ("1955.76".to_owned(), "1955.76".to_owned()));
    let csv = journal_csv(&lines).unwrap();
    let expected = "\
period,document,account,cost_centre,debit,credit,memo
2025-03,CB-2025-03-eng,6100,CC-100,909.82,0.00,Chargeback 2025-03: Engineering (eng)
2025-03,CB-2025-03-eng,4900,CC-900,0.00,909.82,Chargeback 2025-03: Engineering (eng)
2025-03,CB-2025-03-fin,6100,CC-200,504.65,0.00,Chargeback 2025-03: Finance (fin)
2025-03,CB-2025-03-fin,4900,CC-900,0.00,504.65,Chargeback 2025-03: Finance (fin)
2025-03,CB-2025-03-ops,6100,,541.29,0.00,Chargeback 2025-03: Operations (ops)
2025-03,CB-2025-03-ops,4900,CC-900,0.00,541.29,Chargeback 2025-03: Operations (ops)
";
    assert_eq!(csv, expected);
}

#[test]
fn without_shared_costs_showback_is_the_invoices() {
    let showback = showback(&month(), &hierarchy(), &ChargebackSettings::default()).unwrap();
    assert!(showback.shared.is_empty());
    let totals: Vec<_> = showback.departments.iter().map(|department| department.total.to_string()).collect();
    assert_eq!(totals, ["190.50", "45.25", "130.01"]);
    assert_eq!(showback.total.to_string(), "365.76");
    let ops = &showback.departments[2];
    assert_eq!(ops.projects.len(), 2, "the monitoring subscription is an ordinary project now");
}

#[test]
fn a_target_without_an_invoice_still_gets_its_share() {
    let month = report(vec![invoice(
        "eng",
        "Engineering",
        Currency::USD,
        vec![line("sub-eng-web", COMPUTE, "1", "10.00")],
    )]);
    let settings = ChargebackSettings {
        shared: vec![shared("platform-ops", usd("0.05"), AllocationMethod::Even, &["fin", "eng"])],
        ..ChargebackSettings::default()
    };
    let showback = showback(&month, &hierarchy(), &settings).unwrap();
    let departments: Vec<_> = showback
        .departments
        .iter()
        .map(|department| {
            (department.tenant.as_str(), department.name.as_str(), department.total.to_string())
        })
        .collect();
    // 0.05 even over eng, fin (sorted): 0.03, 0.02.
    assert_eq!(
        departments,
        [("eng", "Engineering", "10.03".to_owned()), ("fin", "Finance", "0.02".to_owned())]
    );
}

#[test]
fn a_negative_department_is_credited() {
    let month = report(vec![invoice("fin", "Finance", Currency::USD, vec![credit("-25.00")])]);
    let settings = ChargebackSettings::default();
    let showback = showback(&month, &hierarchy(), &settings).unwrap();
    let lines = journal(&showback, &settings);
    let sides: Vec<_> = lines
        .iter()
        .map(|line| (line.account.as_str(), line.debit.to_string(), line.credit.to_string()))
        .collect();
    assert_eq!(
        sides,
        [("6100", "0.00".to_owned(), "25.00".to_owned()), ("4900", "25.00".to_owned(), "0.00".to_owned())]
    );
}

#[test]
fn an_empty_month_shows_nothing() {
    let showback = showback(&report(Vec::new()), &hierarchy(), &ChargebackSettings::default()).unwrap();
    assert_eq!(showback.currency, None);
    assert!(showback.departments.is_empty());
    assert_eq!(showback.total.to_string(), "0.00");
    assert!(journal(&showback, &ChargebackSettings::default()).is_empty());
}

#[test]
fn settings_round_trip_through_json() {
    let settings = settings();
    let json = serde_json::to_value(&settings).unwrap();
    assert_eq!(json["shared"][1]["source"]["kind"], "subscription");
    assert_eq!(json["shared"][2]["method"]["kind"], "weights");
    assert_eq!(json["shared"][2]["method"]["weights"]["eng"], "3");
    let back: ChargebackSettings = serde_json::from_value(json).unwrap();
    assert_eq!(back, settings);
    let defaults: ChargebackSettings = serde_json::from_str("{}").unwrap();
    assert_eq!((defaults.expense_account.as_str(), defaults.recovery_account.as_str()), ("6100", "4900"));
}

fn with_shared(costs: Vec<SharedCost>) -> ChargebackSettings {
    ChargebackSettings { shared: costs, ..ChargebackSettings::default() }
}

#[test]
fn refuses_unknown_targets_and_subscriptions() {
    let (month, tree) = (month(), hierarchy());
    let unknown = with_shared(vec![shared("x", usd("1"), AllocationMethod::Even, &["nobody"])]);
    let error = showback(&month, &tree, &unknown).unwrap_err();
    assert_eq!(error.code(), "unknown_node");
    assert_eq!(error.location(), Some(&Location::field("chargeback settings", "shared[0].targets")));
    let not_a_tenant = with_shared(vec![shared("x", usd("1"), AllocationMethod::Even, &["sub-fin-erp"])]);
    assert_eq!(code_of(showback(&month, &tree, &not_a_tenant)), "unknown_node");
    let twice = with_shared(vec![shared("x", usd("1"), AllocationMethod::Even, &["eng", "eng"])]);
    assert_eq!(code_of(showback(&month, &tree, &twice)), "invalid_value");
    let subscription = |id: &str| SharedSource::Subscription { id: id.to_owned() };
    let no_such = with_shared(vec![shared("x", subscription("sub-none"), AllocationMethod::Even, &[])]);
    assert_eq!(code_of(showback(&month, &tree, &no_such)), "unknown_node");
    let a_tenant = with_shared(vec![shared("x", subscription("ops"), AllocationMethod::Even, &[])]);
    assert_eq!(code_of(showback(&month, &tree, &a_tenant)), "unknown_node");
    let shared_twice = with_shared(vec![
        shared("x", subscription("sub-ops-shared"), AllocationMethod::Even, &[]),
        shared("y", subscription("SUB-OPS-SHARED"), AllocationMethod::Cost, &[]),
    ]);
    assert_eq!(code_of(showback(&month, &tree, &shared_twice)), "invalid_value");
    let same_id = with_shared(vec![
        shared("x", usd("1"), AllocationMethod::Even, &[]),
        shared("x", usd("2"), AllocationMethod::Even, &[]),
    ]);
    assert_eq!(code_of(showback(&month, &tree, &same_id)), "invalid_value");
}

#[test]
fn refuses_bad_weights() {
    let (month, tree) = (month(), hierarchy());
    let missing = with_shared(vec![shared("x", usd("1"), weights(&[("eng", "1")]), &["eng", "fin"])]);
    let error = showback(&month, &tree, &missing).unwrap_err();
    assert_eq!(error.code(), "invalid_value");
    assert!(error.to_string().contains("every target needs a weight"), "{error}");
    let negative = with_shared(vec![shared("x", usd("1"), weights(&[("eng", "1"), ("fin", "-1")]), &[])]);
    assert_eq!(code_of(showback(&month, &tree, &negative)), "invalid_value");
    let not_target =
        with_shared(vec![shared("x", usd("1"), weights(&[("eng", "1"), ("fin", "1")]), &["eng"])]);
    assert_eq!(code_of(showback(&month, &tree, &not_target)), "invalid_value");
    let unknown = with_shared(vec![shared("x", usd("1"), weights(&[("nobody", "1")]), &[])]);
    assert_eq!(code_of(showback(&month, &tree, &unknown)), "unknown_node");
    let all_zero = with_shared(vec![shared("x", usd("1"), weights(&[("eng", "0"), ("fin", "0")]), &[])]);
    let error = showback(&month, &tree, &all_zero).unwrap_err();
    assert_eq!(error.code(), "invalid_value");
    assert_eq!(error.location(), Some(&Location::field("chargeback settings", "shared cost x")));
}

#[test]
fn refuses_amounts_that_cannot_be_split() {
    let (month, tree) = (month(), hierarchy());
    let sub_cent = with_shared(vec![shared("x", usd("10.005"), AllocationMethod::Even, &[])]);
    let error = showback(&month, &tree, &sub_cent).unwrap_err();
    assert_eq!(error.code(), "invalid_value");
    assert_eq!(error.location(), Some(&Location::field("chargeback settings", "shared cost x")));
    // fin has no storage usage: nothing to split in proportion to.
    let no_usage =
        with_shared(vec![shared("x", usd("1"), AllocationMethod::Usage { meter: STORAGE }, &["fin"])]);
    assert_eq!(code_of(showback(&month, &tree, &no_usage)), "invalid_value");
    let nobody = with_shared(vec![shared("x", usd("1"), AllocationMethod::Even, &[])]);
    assert_eq!(code_of(showback(&report(Vec::new()), &tree, &nobody)), "invalid_value");
}

#[test]
fn refuses_mixed_currencies() {
    let tree = hierarchy();
    let mut mixed = month();
    mixed.invoices[1].currency = Currency::EUR;
    let error = showback(&mixed, &tree, &ChargebackSettings::default()).unwrap_err();
    assert_eq!(
        error,
        CmsError::CurrencyMismatch {
            document: "showback of 2025-03".to_owned(),
            first: "USD".to_owned(),
            second: "EUR".to_owned()
        }
    );
    let euros = with_shared(vec![shared(
        "x",
        SharedSource::Amount { amount: dec("1"), currency: Currency::EUR },
        AllocationMethod::Even,
        &[],
    )]);
    assert_eq!(code_of(showback(&month(), &tree, &euros)), "currency_mismatch");
}

#[test]
fn allocate_even_spreads_the_remainder_first() {
    assert_eq!(texts(&allocate_even(dec("1.00"), 3, 2).unwrap()), ["0.34", "0.33", "0.33"]);
    assert_eq!(texts(&allocate_even(dec("-100"), 3, 0).unwrap()), ["-33", "-33", "-34"]);
}

/// A random month: tenants with their own lines (at least 1000.00 each, so direct costs are positive),
/// a credit, and lines of the shared subscription.
#[derive(Debug, Clone)]
struct Month {
    tenants: Vec<TenantMonth>,
    overhead: i64,
    weights: Vec<u32>,
    even_targets: Vec<bool>,
}

/// One tenant's lines: (project 0..3, cents, compute hours), a credit in cents, shared-subscription cents.
#[derive(Debug, Clone)]
struct TenantMonth {
    lines: Vec<(usize, i64, u32)>,
    credit_cents: i64,
    shared_cents: Vec<i64>,
}

fn random_month() -> impl Strategy<Value = Month> {
    (
        proptest::collection::vec(
            (
                proptest::collection::vec((0usize..3, 1i64..10_000_000, 0u32..1000), 0..6),
                0i64..50_000,
                proptest::collection::vec(-1000i64..100_000, 0..3),
            )
                .prop_map(|(lines, credit_cents, shared_cents)| TenantMonth {
                    lines,
                    credit_cents,
                    shared_cents,
                }),
            1..6,
        ),
        -1_000_000i64..10_000_000,
        proptest::collection::vec(0u32..50, 6),
        proptest::collection::vec(any::<bool>(), 6),
    )
        .prop_map(|(tenants, overhead, weights, even_targets)| Month {
            tenants,
            overhead,
            weights,
            even_targets,
        })
}

fn build(month: &Month) -> (Hierarchy, MonthEndReport, ChargebackSettings) {
    let mut tree = Hierarchy::new("it", "Central IT");
    tree.add("shared", NodeKind::Tenant, None, "Shared services", None).unwrap();
    tree.add("sub-shared", NodeKind::Subscription, Some("shared"), "Shared", None).unwrap();
    let mut invoices = vec![invoice(
        "shared",
        "Shared services",
        Currency::USD,
        vec![line("sub-shared", COMPUTE, "1", "12.34")],
    )];
    for (index, TenantMonth { lines, credit_cents, shared_cents }) in month.tenants.iter().enumerate() {
        let tenant = format!("t{index}");
        tree.add(&tenant, NodeKind::Tenant, None, &tenant, None).unwrap();
        for project in 0..3 {
            tree.add(&format!("{tenant}-s{project}"), NodeKind::Subscription, Some(&tenant), "p", None)
                .unwrap();
        }
        let mut invoice_lines = vec![line(&format!("{tenant}-s0"), STORAGE, "1", "1000.00")];
        for (project, cents, hours) in lines {
            let mut priced = line(&format!("{tenant}-s{project}"), COMPUTE, "0", "0");
            priced.quantity = Decimal::from(*hours);
            priced.amount = Decimal::new(*cents, 2);
            invoice_lines.push(priced);
        }
        invoice_lines.push(credit(&Decimal::new(-credit_cents, 2).to_string()));
        for cents in shared_cents {
            let mut priced = line("SUB-SHARED", STORAGE, "1", "0");
            priced.amount = Decimal::new(*cents, 2);
            invoice_lines.push(priced);
        }
        invoices.push(invoice(&tenant, &tenant, Currency::USD, invoice_lines));
    }
    let tenants = month.tenants.len();
    let weighted: BTreeMap<String, Decimal> =
        (0..tenants).map(|index| (format!("t{index}"), Decimal::from(month.weights[index] + 1))).collect();
    let even_targets: Vec<String> =
        (0..tenants).filter(|&index| month.even_targets[index]).map(|index| format!("t{index}")).collect();
    let settings = ChargebackSettings {
        shared: vec![
            SharedCost {
                id: "overhead".to_owned(),
                name: "Overhead".to_owned(),
                source: SharedSource::Amount {
                    amount: Decimal::new(month.overhead, 2),
                    currency: Currency::USD,
                },
                method: AllocationMethod::Even,
                targets: even_targets,
            },
            SharedCost {
                id: "shared".to_owned(),
                name: "Shared subscription".to_owned(),
                source: SharedSource::Subscription { id: "sub-shared".to_owned() },
                method: AllocationMethod::Cost,
                targets: Vec::new(),
            },
            SharedCost {
                id: "weighted".to_owned(),
                name: "Weighted".to_owned(),
                source: SharedSource::Amount {
                    amount: Decimal::new(month.overhead / 3, 2),
                    currency: Currency::USD,
                },
                method: AllocationMethod::Weights { weights: weighted },
                targets: Vec::new(),
            },
        ],
        ..ChargebackSettings::default()
    };
    (tree, report(invoices), settings)
}

proptest! {
    /// The parts add up to the total exactly, are whole units of the scale, and each is within one unit of
    /// its exact share: |part x W - total x w| < unit x |W|.
    #[test]
    fn allocate_conserves_the_total(
        mantissa in -10_i64.pow(12)..10_i64.pow(12),
        scale in 0u32..6,
        weights in proptest::collection::vec((-1_000_000i64..1_000_000, 0u32..4), 1..12),
    ) {
        let total = Decimal::new(mantissa, scale);
        let weights: Vec<Decimal> = weights.into_iter().map(|(value, scale)| Decimal::new(value, scale)).collect();
        let weight_sum: Decimal = weights.iter().copied().sum();
        prop_assume!(!weight_sum.is_zero());
        let parts = allocate(total, &weights, scale).unwrap();
        prop_assert_eq!(parts.len(), weights.len());
        prop_assert_eq!(parts.iter().copied().sum::<Decimal>(), total);
        let unit = Decimal::new(1, scale);
        for (part, weight) in parts.iter().zip(&weights) {
            prop_assert_eq!(part.scale(), scale);
            prop_assert!((*part * weight_sum - total * *weight).abs() < unit * weight_sum.abs());
        }
    }

    /// Weights that sum to zero are refused unless there is nothing to split.
    #[test]
    fn allocate_refuses_zero_weights(mantissa in -1000i64..1000, weight in -1000i64..1000) {
        let total = Decimal::new(mantissa, 2);
        let weights = [Decimal::new(weight, 1), Decimal::new(-weight, 1)];
        match allocate(total, &weights, 2) {
            Ok(parts) => prop_assert!(total.is_zero() && parts.iter().all(Decimal::is_zero)),
            Err(error) => prop_assert_eq!(error.code(), "invalid_value"),
        }
    }

    /// Shares sum to their shared cost; each department's total is its direct cost plus its shares; the
    /// grand total is the invoices plus the fixed shared costs; the journal balances.
    #[test]
    fn showback_totals_and_journal_balance(month in random_month()) {
        let (tree, report, settings) = build(&month);
        let showback = showback(&report, &tree, &settings).unwrap();
        let invoiced: Decimal = report.invoices.iter().map(|invoice| invoice.total).sum();
        let overhead = Decimal::new(month.overhead, 2) + Decimal::new(month.overhead / 3, 2);
        prop_assert_eq!(showback.invoiced, invoiced);
        prop_assert_eq!(showback.overhead, overhead);
        prop_assert_eq!(showback.total, invoiced + overhead);
        for allocation in &showback.shared {
            prop_assert_eq!(allocation.shares.iter().map(|share| share.amount).sum::<Decimal>(), allocation.amount);
        }
        let mut direct = Decimal::ZERO;
        for department in &showback.departments {
            let shares: Decimal = department.shared.iter().map(|share| share.amount).sum();
            prop_assert_eq!(department.total, department.direct + shares);
            let projects: Decimal = department.projects.iter().map(|project| project.amount).sum();
            prop_assert_eq!(department.direct, projects + department.other);
            direct += department.direct;
        }
        prop_assert_eq!(direct + showback.reallocated, invoiced);
        let lines = journal(&showback, &settings);
        let debits: Decimal = lines.iter().map(|line| line.debit).sum();
        let credits: Decimal = lines.iter().map(|line| line.credit).sum();
        prop_assert_eq!(debits, credits);
        let charged: Decimal = showback.departments.iter().map(|department| department.total.abs()).sum();
        prop_assert_eq!(debits, charged);
        let csv = journal_csv(&lines).unwrap();
        prop_assert_eq!(csv.lines().count(), lines.len() + 1);
    }
}
