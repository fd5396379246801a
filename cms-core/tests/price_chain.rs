//! One usage quantity priced at every level of a resale chain (`Cms::price_chain`), against hand-computed
//! figures, and the same chain through a month-end's invoices.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use cms_core::Decimal;
use cms_core::engine::{Cms, Event, Principal};
use cms_core::model::channel::{BillingProfile, Relationship};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::meter::MeterId;
use cms_core::model::money::{Currency, parse_decimal};
use cms_core::model::price_book::{BookList, PriceScope, PriceVersion};
use cms_core::model::pricing::{MeterPrice, PriceModel};
use cms_core::model::time::Instant;
use cms_core::store::MemoryStore;

const VM: &str = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5";

fn dec(text: &str) -> Decimal {
    parse_decimal(text).unwrap()
}

fn op() -> Principal {
    Principal::platform("test-operator")
}

fn at() -> Instant {
    Utc.with_ymd_and_hms(2026, 10, 5, 0, 0, 0).unwrap()
}

fn resale(node: &str) -> Event {
    Event::BillingProfileSet {
        node: node.into(),
        profile: BillingProfile {
            relationship: Relationship::Resale,
            bill_to: None,
            currency: None,
            payment_terms_days: 30,
            jurisdiction: None,
        },
    }
}

/// Platform > D (resale) > P (resale) > T > S. The platform's default list: 1 per vCPU-hour. P buys from D
/// at D's price for P: a list at P derived from the default, +10 %. T buys from P at a list at T derived
/// from P's, +20 %. D buys at the default (no list at D).
fn engine() -> Cms<MemoryStore> {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    let add = |id: &str, kind, parent: Option<&str>| Event::NodeAdded {
        id: id.into(),
        kind,
        parent: parent.map(Into::into),
        name: id.to_uppercase(),
    };
    let vm: MeterId = VM.parse().unwrap();
    let mut platform = BookList::new("platform-list", "Platform", Currency::USD);
    platform.versions.push(PriceVersion::own(
        Instant::MIN_UTC,
        BTreeMap::from([(vm, MeterPrice::new("vCPU-hours", PriceModel::per_unit(dec("1"))))]),
    ));
    let mut for_p = BookList::new("d-sells-to-p", "D to P", Currency::USD);
    for_p.versions.push(PriceVersion::derived(Instant::MIN_UTC, "platform-list", dec("0.10")));
    let mut for_t = BookList::new("p-sells-to-t", "P to T", Currency::USD);
    for_t.versions.push(PriceVersion::derived(Instant::MIN_UTC, "d-sells-to-p", dec("0.20")));
    let mut events = vec![
        add("d", NodeKind::Distributor, None),
        add("p", NodeKind::Partner, Some("d")),
        add("t", NodeKind::Tenant, Some("p")),
        add("s", NodeKind::Subscription, Some("t")),
    ];
    events.extend([
        resale("d"),
        resale("p"),
        Event::PriceListCreated { list: platform },
        Event::PriceListCreated { list: for_p },
        Event::PriceListCreated { list: for_t },
        Event::PriceListAssigned { scope: PriceScope::Default, list: "platform-list".into() },
        Event::PriceListAssigned { scope: PriceScope::Node("p".into()), list: "d-sells-to-p".into() },
        Event::PriceListAssigned { scope: PriceScope::Node("t".into()), list: "p-sells-to-t".into() },
    ]);
    cms.execute_all(&op(), at(), &events).unwrap();
    cms
}

#[test]
fn every_level_of_a_resale_chain_and_its_margins() {
    let cms = engine();
    let levels = cms.price_chain(&op(), "s", VM.parse().unwrap(), dec("10"), at()).unwrap();
    let read: Vec<_> = levels
        .iter()
        .map(|level| {
            (level.seller.as_str(), level.buyer.as_str(), level.list.as_str(), level.amount, level.margin)
        })
        .collect();
    // 10 hours: the platform sells to D at 1 (10.00); D to P at 1 x 1.1 (11.00, margin 1.00); P to T at
    // 1.1 x 1.2 = 1.32 (13.20, margin 2.20). Margins 10 + 1 + 2.2 = 13.2, what T pays.
    assert_eq!(
        read,
        [
            ("platform", "d", "platform-list", dec("10"), dec("10")),
            ("d", "p", "d-sells-to-p", dec("11.0"), dec("1.0")),
            ("p", "t", "p-sells-to-t", dec("13.20"), dec("2.20")),
        ]
    );
    let margins: Decimal = levels.iter().map(|level| level.margin).sum();
    assert_eq!(margins, levels.last().unwrap().amount);
}

#[test]
fn a_sibling_principal_cannot_price_another_branch() {
    let mut cms = engine();
    cms.execute(
        &op(),
        at(),
        &Event::NodeAdded {
            id: "p2".into(),
            kind: NodeKind::Partner,
            parent: Some("d".into()),
            name: "P2".into(),
        },
    )
    .unwrap();
    let outsider = Principal::at("p2-admin", "p2");
    let error = cms.price_chain(&outsider, "s", VM.parse().unwrap(), dec("1"), at()).unwrap_err();
    assert_eq!(error.code(), "unknown_node");
}
