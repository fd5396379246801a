//! The demo's channel, catalogue and terms, as the events that set them up.

use std::collections::BTreeMap;

use cms_core::CmsError;
use cms_core::Decimal;
use cms_core::engine::Event;
use cms_core::model::catalogue::{Offer, OfferState, Plan};
use cms_core::model::channel::{BillingProfile, Relationship, SubscriptionInfo, SubscriptionState};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::meter::MeterId;
use cms_core::model::money::{Currency, parse_decimal};
use cms_core::model::price_book::{BookList, PriceScope, PriceVersion, VersionContent};
use cms_core::model::pricing::{CommissionPlan, MeterPrice, PriceList, PriceModel};
use cms_core::model::terms::sheet_list;
use cms_core::model::tiers::{Tier, TierMode};
use cms_core::model::time::Instant;

pub fn dec(text: &str) -> Decimal {
    // Literals below are valid decimals; a typo would show as 0 in the demo's figures, never a panic.
    parse_decimal(text).unwrap_or_default()
}

pub fn meter(text: &str) -> MeterId {
    text.parse().unwrap_or(MeterId::from_u128(0))
}

fn tiers(pairs: &[(&str, &str)]) -> Vec<Tier> {
    pairs.iter().map(|(from, rate)| Tier { from: dec(from), rate: dec(rate) }).collect()
}

fn add(id: &str, kind: NodeKind, parent: Option<&str>, name: &str) -> Event {
    Event::NodeAdded { id: id.into(), kind, parent: parent.map(Into::into), name: name.into() }
}

/// The subscriptions: (id, tenant, name).
pub const SUBSCRIPTIONS: [(&str, &str, &str); 3] = [
    ("3f2a6c1e-8b4d-4e1a-9c7f-2d5b8e0a1c11", "tenant-adatum", "adatum-prod"),
    ("c41e8f73-6a2b-4d9c-b05e-8e3f1a7d4c33", "tenant-tailspin", "tailspin-aks"),
    ("7b9d0e42-1c3f-4a6b-8e2d-5f7a9c1b3d22", "tenant-woodgrove", "woodgrove-sql"),
];

/// The platform's list: Microsoft's 2017 list prices where known, graduated and volume tiers.
fn standard_list() -> Result<PriceList, CmsError> {
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
    Ok(standard)
}

/// Fabrikam's price for its tenants: one meter cheaper than the platform's.
fn fabrikam_list() -> BookList {
    let mut fabrikam = PriceList::new("list-fabrikam", Currency::USD);
    fabrikam.set_flat(meter("9CD92D4C-BAFD-4492-B278-BEDC2DE8232A"), "vCPU-hours", dec("0.042"));
    sheet_list(fabrikam, "Fabrikam customers", Instant::MIN_UTC)
}

/// Northwind resells: it buys at the platform's prices less 20 %, never below cost price for the SQL
/// meter, which it buys at a fixed rate.
fn wholesale_list() -> BookList {
    let mut wholesale = BookList::new("list-northwind-wholesale", "Northwind wholesale", Currency::USD);
    let sql_hours = MeterPrice::new("instance-hours", PriceModel::per_unit(dec("0.08")));
    wholesale.versions.push(PriceVersion {
        content: VersionContent::Derived {
            parent: "list-standard".into(),
            markup: dec("-0.20"),
            overrides: BTreeMap::from([(meter("88039D51-A206-3A89-E9DE-C5117E2D10A6"), sql_hours)]),
            floor: None,
        },
        ..PriceVersion::derived(Instant::MIN_UTC, "list-standard", Decimal::ZERO)
    });
    wholesale
}

/// Every event that sets the demo up, in order.
pub fn setup() -> Result<Vec<Event>, CmsError> {
    let northwind = CommissionPlan::new(
        "bands-northwind",
        TierMode::Graduated,
        tiers(&[("0", "0.05"), ("100", "0.08"), ("500", "0.12")]),
    )?;
    let contoso =
        CommissionPlan::new("bands-contoso", TierMode::Volume, tiers(&[("0", "0.06"), ("50", "0.09")]))?;
    let mut events = vec![
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
        Event::BillingProfileSet {
            node: "dist-northwind".into(),
            profile: BillingProfile {
                relationship: Relationship::Resale,
                bill_to: None,
                currency: None,
                payment_terms_days: 45,
                jurisdiction: None,
            },
        },
        Event::PlanPut {
            plan: Plan {
                id: "plan-iaas".into(),
                name: "IaaS".into(),
                services: vec!["compute".into(), "storage".into(), "network".into()],
                quotas: BTreeMap::from([("vcpus".into(), dec("64")), ("storage_gb".into(), dec("2048"))]),
            },
        },
        Event::PlanPut {
            plan: Plan {
                id: "plan-sql".into(),
                name: "SQL add-on".into(),
                services: vec!["sql-mysql".into()],
                quotas: BTreeMap::from([("databases".into(), dec("10"))]),
            },
        },
        Event::OfferPut {
            offer: Offer {
                id: "offer-standard".into(),
                name: "Standard".into(),
                base_plan: "plan-iaas".into(),
                addon_plans: vec!["plan-sql".into()],
                state: OfferState::Private,
            },
        },
        Event::OfferStateSet { offer: "offer-standard".into(), state: OfferState::Public },
    ];
    for (id, tenant, name) in SUBSCRIPTIONS {
        events.push(add(id, NodeKind::Subscription, Some(tenant), name));
        events.push(Event::SubscriptionSet {
            id: id.into(),
            info: SubscriptionInfo {
                offer: Some("offer-standard".into()),
                state: SubscriptionState::Enabled,
                external_ids: Vec::new(),
                region: Some("local".into()),
            },
        });
    }
    events.extend([
        Event::PriceListCreated { list: sheet_list(standard_list()?, "Standard", Instant::MIN_UTC) },
        Event::PriceListCreated { list: fabrikam_list() },
        Event::PriceListCreated { list: wholesale_list() },
        Event::PriceListAssigned { scope: PriceScope::Default, list: "list-standard".into() },
        Event::PriceListAssigned {
            scope: PriceScope::Node("partner-fabrikam".into()),
            list: "list-fabrikam".into(),
        },
        Event::PriceListAssigned {
            scope: PriceScope::Node("dist-northwind".into()),
            list: "list-northwind-wholesale".into(),
        },
        Event::CommissionPlanPut { plan: northwind },
        Event::CommissionPlanPut { plan: contoso },
        Event::CommissionPlanAssigned { node: "dist-northwind".into(), plan: "bands-northwind".into() },
        Event::CommissionPlanAssigned { node: "partner-contoso".into(), plan: "bands-contoso".into() },
    ]);
    Ok(events)
}
