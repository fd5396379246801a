//! The channel and catalogue domain model: moves over time (property tests against a brute-force replay),
//! organisation status, subscription attributes, billing relationships, and the catalogue of services,
//! plans and offers.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, TimeZone, Utc};
use cms_core::Decimal;
use cms_core::model::catalogue::{Catalogue, Offer, OfferState, Plan, Service};
use cms_core::model::channel::{
    BillingProfile, ChannelAttributes, Relationship, SubscriptionInfo, SubscriptionState,
};
use cms_core::model::hierarchy::{Hierarchy, NodeIndex, NodeKind};
use cms_core::model::meter::{self, Category, MeterId};
use cms_core::model::money::Currency;
use cms_core::model::time::Instant;
use proptest::prelude::*;

fn at(hour: i64) -> Instant {
    Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap() + Duration::hours(hour)
}

fn ids(tree: &Hierarchy, nodes: impl IntoIterator<Item = NodeIndex>) -> Vec<String> {
    nodes.into_iter().map(|node| tree.node(node).id.clone()).collect()
}

// ---- moves: property tests against a brute-force replay -------------------------------------------

#[derive(Debug, Clone)]
struct MoveScenario {
    distributors: usize,
    partners: Vec<usize>,
    tenants: Vec<usize>,
    subscriptions: Vec<usize>,
    moves: Vec<(usize, usize, i64)>,
    windows: Vec<(i64, i64)>,
}

fn move_scenario() -> impl Strategy<Value = MoveScenario> {
    (
        1usize..3,
        proptest::collection::vec(0usize..10, 0..4),
        proptest::collection::vec(0usize..100, 1..6),
        proptest::collection::vec(0usize..100, 0..8),
        proptest::collection::vec((0usize..100, 0usize..100, 0i64..48), 0..40),
        proptest::collection::vec((-2i64..50, -2i64..50), 1..6),
    )
        .prop_map(|(distributors, partners, tenants, subscriptions, moves, windows)| MoveScenario {
            distributors,
            partners,
            tenants,
            subscriptions,
            moves,
            windows,
        })
}

/// Builds the channel: distributors under the platform, partners under distributors, tenants under any
/// organisation above them, subscriptions under tenants.
fn build(scenario: &MoveScenario) -> Hierarchy {
    let mut tree = Hierarchy::new("platform", "Operator");
    for d in 0..scenario.distributors {
        tree.add(&format!("d{d}"), NodeKind::Distributor, None, "", None).unwrap();
    }
    for (p, &parent) in scenario.partners.iter().enumerate() {
        let parent = format!("d{}", parent % scenario.distributors);
        tree.add(&format!("p{p}"), NodeKind::Partner, Some(&parent), "", None).unwrap();
    }
    let organisations: Vec<String> = tree.nodes().map(|(_, node)| node.id.clone()).collect();
    for (t, &parent) in scenario.tenants.iter().enumerate() {
        let parent = &organisations[parent % organisations.len()];
        tree.add(&format!("t{t}"), NodeKind::Tenant, Some(parent), "", None).unwrap();
    }
    for (s, &parent) in scenario.subscriptions.iter().enumerate() {
        let parent = format!("t{}", parent % scenario.tenants.len());
        tree.add(&format!("s{s}"), NodeKind::Subscription, Some(&parent), "", None).unwrap();
    }
    tree
}

/// The ancestry of `node` after replaying, in time order, every accepted move effective at or before `t`.
fn replay(
    original: &[Option<NodeIndex>],
    accepted: &[(NodeIndex, NodeIndex, Instant)],
    node: NodeIndex,
    t: Instant,
) -> Vec<NodeIndex> {
    let mut parents = original.to_vec();
    let mut in_time_order = accepted.to_vec();
    in_time_order.sort_by_key(|&(_, _, effective)| effective);
    for (moved, to, effective) in in_time_order {
        if effective <= t {
            parents[moved.get()] = Some(to);
        }
    }
    let mut out = vec![node];
    while let Some(parent) = parents[out.last().unwrap().get()] {
        out.push(parent);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// `ancestry_at` equals a replay of the moves effective at or before the instant; `changes_between`
    /// names exactly the instants where `ancestry_at` changes; the latest structure has every move applied;
    /// a move is accepted exactly when the rules say so, and a refused one changes nothing.
    #[test]
    fn moves_replay(scenario in move_scenario()) {
        let mut tree = build(&scenario);
        let all: Vec<NodeIndex> = tree.nodes().map(|(index, _)| index).collect();
        let original: Vec<Option<NodeIndex>> = all.iter().map(|&node| tree.parent(node)).collect();
        let mut latest = original.clone();
        let mut last_move: BTreeMap<NodeIndex, Instant> = BTreeMap::new();
        let mut accepted = Vec::new();
        for &(node, parent, hour) in &scenario.moves {
            let (node, parent, effective) = (all[node % all.len()], all[parent % all.len()], at(hour));
            let (kind, parent_kind) = (tree.node(node).kind, tree.node(parent).kind);
            let kinds_fit = match kind {
                NodeKind::Tenant => parent_kind < NodeKind::Tenant,
                NodeKind::Subscription => parent_kind == NodeKind::Tenant,
                _ => false,
            };
            let in_order = last_move.get(&node).is_none_or(|&last| effective > last);
            let expected = kinds_fit && in_order && latest[node.get()] != Some(parent);
            let (id, parent_id) = (tree.node(node).id.clone(), tree.node(parent).id.clone());
            let checked = tree.check_move(&id, &parent_id, effective);
            let before = tree.moves().len();
            let result = tree.move_node(&id, &parent_id, effective);
            prop_assert_eq!(checked.is_ok(), result.is_ok());
            prop_assert_eq!(result.is_ok(), expected, "{} -> {} at {}: {:?}", id, parent_id, hour, result);
            if let Err(error) = result {
                prop_assert_eq!(error.code(), "invalid_hierarchy");
                prop_assert_eq!(tree.moves().len(), before);
            } else {
                latest[node.get()] = Some(parent);
                last_move.insert(node, effective);
                accepted.push((node, parent, effective));
                let recorded = tree.moves().last().unwrap();
                prop_assert_eq!(&recorded.node, &id);
                prop_assert_eq!(&recorded.to, &parent_id);
                prop_assert_eq!(recorded.effective, effective);
            }
        }
        prop_assert_eq!(tree.moves().len(), accepted.len());

        for &node in &all {
            // Every hour, and one before and after all moves: moves are on whole hours, so this sees every
            // piece of constant ancestry.
            for hour in -1..=49 {
                let expected = replay(&original, &accepted, node, at(hour));
                prop_assert_eq!(tree.ancestry_at(node, at(hour)).collect::<Vec<_>>(), expected.clone());
                prop_assert_eq!(tree.parent_at(node, at(hour)), expected.get(1).copied());
                for kind in NodeKind::ALL {
                    let nearest = expected.iter().copied().find(|&n| tree.node(n).kind == kind);
                    prop_assert_eq!(tree.ancestor_of_kind_at(node, kind, at(hour)), nearest);
                }
                for &root in &all {
                    prop_assert_eq!(tree.is_in_subtree_at(node, root, at(hour)), expected.contains(&root));
                }
            }
            for &(from, to) in &scenario.windows {
                let expected: Vec<Instant> = (from + 1..to)
                    .filter(|&hour| {
                        tree.ancestry_at(node, at(hour)).ne(tree.ancestry_at(node, at(hour - 1)))
                    })
                    .map(at)
                    .collect();
                prop_assert_eq!(tree.changes_between(node, at(from), at(to)), expected.clone());
                // Bounds between whole hours: a change at an hour inside the window is inside.
                let wider = tree.changes_between(node, at(from) - Duration::minutes(30), at(to) + Duration::minutes(30));
                let expected_wider: Vec<Instant> = (from..=to)
                    .filter(|&hour| {
                        tree.ancestry_at(node, at(hour)).ne(tree.ancestry_at(node, at(hour - 1)))
                    })
                    .map(at)
                    .collect();
                prop_assert_eq!(wider, expected_wider);
            }
            // The latest structure: every move applied.
            let final_ancestry = replay(&original, &accepted, node, at(1000));
            prop_assert_eq!(tree.ancestry(node).collect::<Vec<_>>(), final_ancestry.clone());
            let parent_id = final_ancestry.get(1).map(|&parent| tree.node(parent).id.clone());
            prop_assert_eq!(tree.node(node).parent.clone(), parent_id);
            let children: BTreeSet<NodeIndex> = tree.children(node).iter().copied().collect();
            let expected_children: BTreeSet<NodeIndex> =
                all.iter().copied().filter(|&child| latest[child.get()] == Some(node)).collect();
            prop_assert_eq!(children.len(), tree.children(node).len(), "no child listed twice");
            prop_assert_eq!(children, expected_children);
        }
        prop_assert_eq!(tree.subtree(tree.root()).len(), all.len());
    }
}

// ---- organisation status ----------------------------------------------------------------------------

/// platform > dist > p1 > t1 > s1, with a second partner p2 (with tenant t2 > s2) and a direct tenant.
fn channel() -> Hierarchy {
    let mut tree = Hierarchy::new("platform", "Operator");
    tree.add("dist", NodeKind::Distributor, None, "Northwind", None).unwrap();
    tree.add("p1", NodeKind::Partner, Some("dist"), "Contoso", None).unwrap();
    tree.add("p2", NodeKind::Partner, Some("dist"), "Fabrikam", None).unwrap();
    tree.add("t1", NodeKind::Tenant, Some("p1"), "Tenant one", None).unwrap();
    tree.add("t2", NodeKind::Tenant, Some("p2"), "Tenant two", None).unwrap();
    tree.add("direct", NodeKind::Tenant, None, "Direct", None).unwrap();
    tree.add("s1", NodeKind::Subscription, Some("t1"), "Prod", None).unwrap();
    tree.add("s2", NodeKind::Subscription, Some("t2"), "Prod", None).unwrap();
    tree
}

#[test]
fn suspension_blocks_onboarding_below() {
    let mut tree = channel();
    let mut attributes = ChannelAttributes::new();
    attributes.suspend(&tree, "dist", at(5)).unwrap();
    // Before the suspension, and outside the suspended branch, onboarding is fine.
    assert_eq!(attributes.check_can_onboard_under(&tree, "t1", at(4)).unwrap(), tree.find("t1").unwrap());
    attributes.check_can_onboard_under(&tree, "direct", at(6)).unwrap();
    attributes.check_can_onboard_under(&tree, "platform", at(6)).unwrap();
    // At and after it, under the distributor or anything below it, it is refused.
    for parent in ["dist", "p1", "t1"] {
        let error = attributes.check_can_onboard_under(&tree, parent, at(5)).unwrap_err();
        assert_eq!(error.code(), "invalid_hierarchy", "{parent}");
        assert!(error.to_string().contains("dist is suspended"), "{error}");
    }
    assert_eq!(attributes.check_can_onboard_under(&tree, "nope", at(5)).unwrap_err().code(), "unknown_node");
    let s1 = tree.find("s1").unwrap();
    assert!(attributes.is_suspended_at(&tree, s1, at(6)));
    assert_eq!(attributes.suspended_ancestor_at(&tree, s1, at(6)), tree.find("dist"));
    // A tenant moved out of the suspended branch is no longer suspended from the move on.
    tree.move_node("t1", "platform", at(7)).unwrap();
    assert!(attributes.is_suspended_at(&tree, s1, at(6)));
    assert!(!attributes.is_suspended_at(&tree, s1, at(7)));
    // Suspending the tenant itself, then re-enabling the distributor.
    attributes.suspend(&tree, "t1", at(8)).unwrap();
    attributes.reenable(&tree, "dist", at(9)).unwrap();
    attributes.check_can_onboard_under(&tree, "p1", at(9)).unwrap();
    assert_eq!(
        attributes.check_can_onboard_under(&tree, "t1", at(9)).unwrap_err().code(),
        "invalid_hierarchy"
    );
    assert_eq!(attributes.suspended_ancestor_at(&tree, s1, at(9)), tree.find("t1"));
    // Out of order, repeated and misplaced changes are refused and change nothing.
    assert_eq!(attributes.reenable(&tree, "t1", at(8)).unwrap_err().code(), "invalid_value");
    assert_eq!(attributes.suspend(&tree, "t1", at(10)).unwrap_err().code(), "invalid_value");
    assert_eq!(attributes.suspend(&tree, "s1", at(10)).unwrap_err().code(), "invalid_value");
    assert_eq!(attributes.status_history("t1").len(), 1);
}

// ---- subscription attributes --------------------------------------------------------------------------

fn info(external_ids: &[&str]) -> SubscriptionInfo {
    SubscriptionInfo {
        offer: Some("gold".into()),
        state: SubscriptionState::Enabled,
        external_ids: external_ids.iter().map(|&id| id.to_owned()).collect(),
        region: Some("local".into()),
    }
}

#[test]
fn external_ids_are_unique_and_found_ignoring_case() {
    let mut tree = channel();
    tree.add("s3", NodeKind::Subscription, Some("t1"), "Dev", None).unwrap();
    let mut attributes = ChannelAttributes::new();
    let guid = "9A4C3E2B-1D0F-4E6A-8B7C-5D4E3F2A1B0C";
    attributes.put_subscription(&tree, "s1", info(&[guid])).unwrap();
    assert_eq!(attributes.find_subscription_by_external(&tree, &guid.to_ascii_lowercase()), Some("s1"));
    assert_eq!(attributes.find_subscription_by_external(&tree, guid), Some("s1"));
    // The node id itself matches too, ignoring case; other kinds of node do not.
    assert_eq!(attributes.find_subscription_by_external(&tree, "S2"), Some("s2"));
    assert_eq!(attributes.find_subscription_by_external(&tree, "t1"), None);
    assert_eq!(attributes.find_subscription_by_external(&tree, "unknown"), None);

    let refused: [(&str, &[&str]); 5] = [
        ("s2", &["9a4c3e2b-1d0f-4e6a-8b7c-5d4e3f2a1b0c"]), // s1's, in another case
        ("s2", &["S1"]),                                   // s1's node id
        ("s2", &["x", "X"]),                               // listed twice
        ("s2", &[""]),                                     // empty
        ("s2", &[" y"]),                                   // surrounding space
    ];
    for (id, external) in refused {
        let error = attributes.put_subscription(&tree, id, info(external)).unwrap_err();
        assert_eq!(error.code(), "invalid_value", "{external:?}");
    }
    assert!(attributes.subscription("s2").is_none(), "a refused put stores nothing");
    assert_eq!(attributes.put_subscription(&tree, "t1", info(&[])).unwrap_err().code(), "unknown_node");
    assert_eq!(attributes.put_subscription(&tree, "nope", info(&[])).unwrap_err().code(), "unknown_node");

    // Its own id and the same id again are fine; replacing frees the old external ids.
    attributes.put_subscription(&tree, "s1", info(&[guid, "s1"])).unwrap();
    attributes.put_subscription(&tree, "s1", info(&["other"])).unwrap();
    assert_eq!(attributes.find_subscription_by_external(&tree, guid), None);
    attributes.put_subscription(&tree, "s3", info(&[guid])).unwrap();
    assert_eq!(attributes.find_subscription_by_external(&tree, guid), Some("s3"));
    assert_eq!(attributes.find_subscription_by_external(&tree, "OTHER"), Some("s1"));
}

#[test]
fn subscription_states_follow_the_graph() {
    use SubscriptionState::{Deleted, Disabled, Enabled, PastDue, Suspended, Warned};
    let tree = channel();
    let mut attributes = ChannelAttributes::new();
    assert_eq!(attributes.subscription_state("s1"), Enabled);
    let steps = [
        (Warned, true),
        (Warned, false), // no change is not a transition
        (PastDue, true),
        (Suspended, true),
        (Warned, false), // reinstate first
        (Enabled, true),
        (Disabled, true),
        (PastDue, false),
        (Deleted, true),
        (Enabled, false), // final
    ];
    for (state, allowed) in steps {
        let result = attributes.set_subscription_state(&tree, "s1", state);
        assert_eq!(result.is_ok(), allowed, "-> {state}: {result:?}");
    }
    assert_eq!(attributes.subscription_state("s1"), Deleted);
    // A deleted subscription changes no more, not even its offer; it is still found by its ids.
    let mut changed = attributes.subscription("s1").unwrap().clone();
    changed.offer = Some("silver".into());
    assert_eq!(attributes.put_subscription(&tree, "s1", changed).unwrap_err().code(), "invalid_value");
    let same = attributes.subscription("s1").unwrap().clone();
    attributes.put_subscription(&tree, "s1", same).unwrap();
    assert_eq!(attributes.find_subscription_by_external(&tree, "S1"), Some("s1"));
}

// ---- billing relationships -------------------------------------------------------------------------

fn resale() -> BillingProfile {
    BillingProfile { relationship: Relationship::Resale, ..BillingProfile::default() }
}

#[test]
fn billing_chains_of_the_three_shapes() {
    let tree = channel();
    let s1 = tree.find("s1").unwrap();
    let t1 = tree.find("t1").unwrap();
    let chain = |attributes: &ChannelAttributes| ids(&tree, attributes.billing_chain(&tree, s1, at(0)));

    // All agency: the platform invoices the tenant.
    let mut attributes = ChannelAttributes::new();
    assert_eq!(chain(&attributes), ["t1"]);
    assert_eq!(attributes.issuer_of(&tree, t1, at(0)), tree.root());

    // Agency distributor, reseller partner: the platform invoices P, P invoices the tenant.
    attributes.set_billing_profile(&tree, "p1", resale()).unwrap();
    assert_eq!(chain(&attributes), ["p1", "t1"]);
    assert_eq!(attributes.issuer_of(&tree, t1, at(0)), tree.find("p1").unwrap());
    assert_eq!(attributes.issuer_of(&tree, tree.find("p1").unwrap(), at(0)), tree.root());

    // Reseller distributor and partner: the platform invoices D, D invoices P, P invoices the tenant.
    attributes.set_billing_profile(&tree, "dist", resale()).unwrap();
    assert_eq!(chain(&attributes), ["dist", "p1", "t1"]);
    assert_eq!(attributes.issuer_of(&tree, tree.find("p1").unwrap(), at(0)), tree.find("dist").unwrap());

    // Reseller distributor, agency partner: D invoices the tenant directly.
    attributes.set_billing_profile(&tree, "p1", BillingProfile::default()).unwrap();
    assert_eq!(chain(&attributes), ["dist", "t1"]);
    assert_eq!(attributes.issuer_of(&tree, t1, at(0)), tree.find("dist").unwrap());

    // The chain of an organisation ends at it; the platform buys from nobody.
    assert_eq!(ids(&tree, attributes.billing_chain(&tree, tree.find("p2").unwrap(), at(0))), ["dist", "p2"]);
    assert!(attributes.billing_chain(&tree, tree.root(), at(0)).is_empty());
    assert_eq!(attributes.issuer_of(&tree, tree.root(), at(0)), tree.root());
}

#[test]
fn a_move_to_a_reseller_changes_the_chain_from_its_instant() {
    let mut tree = channel();
    let mut attributes = ChannelAttributes::new();
    attributes.set_billing_profile(&tree, "p2", resale()).unwrap();
    tree.move_node("t1", "p2", at(10)).unwrap();
    let (s1, t1) = (tree.find("s1").unwrap(), tree.find("t1").unwrap());
    assert_eq!(ids(&tree, attributes.billing_chain(&tree, s1, at(9))), ["t1"]);
    assert_eq!(attributes.issuer_of(&tree, t1, at(9)), tree.root());
    assert_eq!(ids(&tree, attributes.billing_chain(&tree, s1, at(10))), ["p2", "t1"]);
    assert_eq!(attributes.issuer_of(&tree, t1, at(10)), tree.find("p2").unwrap());
    // The period containing the move is cut where the chain changes.
    assert_eq!(tree.changes_between(s1, at(0), at(24)), [at(10)]);
}

#[test]
fn billing_profiles_are_validated_and_currency_is_inherited() {
    let mut tree = channel();
    let mut attributes = ChannelAttributes::new();
    let bill_to = |target: &str| BillingProfile { bill_to: Some(target.into()), ..BillingProfile::default() };
    let refused = [
        ("t1", resale(), "invalid_value"),                  // tenants do not resell
        ("platform", resale(), "invalid_value"),            // nor does the platform (it heads every chain)
        ("s1", BillingProfile::default(), "invalid_value"), // subscriptions are billed through their tenant
        ("t1", bill_to("p2"), "invalid_value"),             // not an ancestor
        ("t1", bill_to("s1"), "invalid_value"),             // below it
        ("t1", bill_to("nope"), "unknown_node"),
        ("nope", BillingProfile::default(), "unknown_node"),
        ("t1", BillingProfile { payment_terms_days: 366, ..BillingProfile::default() }, "invalid_value"),
    ];
    for (id, profile, code) in refused {
        let error = attributes.set_billing_profile(&tree, id, profile.clone()).unwrap_err();
        assert_eq!(error.code(), code, "{id} {profile:?}");
    }
    assert!(attributes.billing_profile("t1").is_none());
    assert_eq!(attributes.payment_terms_days("t1"), 30);

    // bill_to: the tenant's invoices go to its partner, while the partner is its ancestor.
    attributes
        .set_billing_profile(&tree, "t1", BillingProfile { payment_terms_days: 14, ..bill_to("p1") })
        .unwrap();
    attributes.set_billing_profile(&tree, "t2", bill_to("t2")).unwrap();
    let t1 = tree.find("t1").unwrap();
    assert_eq!(attributes.invoice_recipient(&tree, t1, at(0)), tree.find("p1").unwrap());
    assert_eq!(attributes.payment_terms_days("t1"), 14);

    // Currency: own, else the nearest ancestor's as of the instant, else none.
    let s1 = tree.find("s1").unwrap();
    assert_eq!(attributes.currency_of(&tree, s1, at(0)), None);
    let eur = Currency::EUR;
    let gbp = Currency::from_code("gbp").unwrap();
    attributes
        .set_billing_profile(
            &tree,
            "platform",
            BillingProfile { currency: Some(eur), ..BillingProfile::default() },
        )
        .unwrap();
    attributes
        .set_billing_profile(
            &tree,
            "dist",
            BillingProfile { currency: Some(gbp), ..BillingProfile::default() },
        )
        .unwrap();
    assert_eq!(attributes.currency_of(&tree, s1, at(0)), Some(gbp));
    assert_eq!(attributes.currency_of(&tree, tree.find("direct").unwrap(), at(0)), Some(eur));

    // After the tenant moves to the platform, its currency is the platform's and its invoices come back
    // to it (its old partner is no longer above it).
    tree.move_node("t1", "platform", at(10)).unwrap();
    assert_eq!(attributes.currency_of(&tree, s1, at(9)), Some(gbp));
    assert_eq!(attributes.currency_of(&tree, s1, at(10)), Some(eur));
    assert_eq!(attributes.invoice_recipient(&tree, t1, at(9)), tree.find("p1").unwrap());
    assert_eq!(attributes.invoice_recipient(&tree, t1, at(10)), t1);
}

// ---- catalogue ------------------------------------------------------------------------------------

fn meter_of(category: Category) -> MeterId {
    meter::catalogue().iter().find(|info| info.category == category).unwrap().id
}

fn plan(id: &str, services: &[&str], quotas: &[(&str, i64)]) -> Plan {
    Plan {
        id: id.into(),
        name: id.to_uppercase(),
        services: services.iter().map(|&service| service.to_owned()).collect(),
        quotas: quotas.iter().map(|&(name, limit)| (name.to_owned(), Decimal::from(limit))).collect(),
    }
}

fn offer(id: &str, base: &str, addons: &[&str], state: OfferState) -> Offer {
    Offer {
        id: id.into(),
        name: id.into(),
        base_plan: base.into(),
        addon_plans: addons.iter().map(|&addon| addon.to_owned()).collect(),
        state,
    }
}

fn sample_catalogue() -> Catalogue {
    let mut catalogue = Catalogue::with_default_services();
    catalogue
        .put_plan(plan("base", &["compute", "storage"], &[("vcpus", 100), ("storage_gb", 1000)]))
        .unwrap();
    catalogue.put_plan(plan("more-cpu", &[], &[("vcpus", 50)])).unwrap();
    catalogue.put_plan(plan("sql", &["sql-mysql"], &[("databases", 10)])).unwrap();
    catalogue.put_offer(offer("gold", "base", &["more-cpu", "sql"], OfferState::Public)).unwrap();
    catalogue.put_offer(offer("internal", "base", &[], OfferState::Private)).unwrap();
    catalogue
}

#[test]
fn default_services_cover_every_known_meter_once() {
    let services = Catalogue::default_services();
    let mut seen: BTreeMap<MeterId, usize> = BTreeMap::new();
    for service in &services {
        assert!(!service.meters.is_empty(), "{}", service.id);
        for &meter in &service.meters {
            *seen.entry(meter).or_default() += 1;
            let (expected_service, _) =
                cms_core::model::catalogue::category_service(meter.info().unwrap().category);
            assert_eq!(service.id, expected_service);
        }
    }
    let known: BTreeSet<MeterId> = meter::catalogue().iter().map(|info| info.id).collect();
    assert_eq!(seen.keys().copied().collect::<BTreeSet<_>>(), known);
    assert!(seen.values().all(|&count| count == 1));
    assert_eq!(seen.len(), 84);
}

#[test]
fn catalogue_rules() {
    let mut catalogue = sample_catalogue();
    let refused_plans = [
        (plan("p", &["nope"], &[]), "unknown_node"),
        (plan("p", &["compute", "compute"], &[]), "invalid_value"),
        (plan("p", &[], &[("vcpus", -1)]), "invalid_value"),
        (plan("p", &[], &[("", 1)]), "invalid_value"),
        (plan("", &[], &[]), "invalid_value"),
    ];
    for (bad, code) in refused_plans {
        assert_eq!(catalogue.put_plan(bad.clone()).unwrap_err().code(), code, "{bad:?}");
    }
    let empty = Service { id: "empty".into(), name: "Empty".into(), meters: BTreeSet::new() };
    assert_eq!(catalogue.put_service(empty).unwrap_err().code(), "invalid_value");
    let refused_offers = [
        (offer("o", "nope", &[], OfferState::Public), "unknown_node"),
        (offer("o", "base", &["nope"], OfferState::Public), "unknown_node"),
        (offer("o", "base", &["base"], OfferState::Public), "invalid_value"),
        (offer("o", "base", &["sql", "sql"], OfferState::Public), "invalid_value"),
        (offer("o", "base", &[], OfferState::Decommissioned), "invalid_value"),
    ];
    for (bad, code) in refused_offers {
        assert_eq!(catalogue.put_offer(bad.clone()).unwrap_err().code(), code, "{bad:?}");
    }
    assert!(catalogue.offer("o").is_none());

    // Subscribing: public for anyone, private for the operator only, decommissioned for nobody.
    assert_eq!(catalogue.check_subscribable("gold", false).unwrap().id, "gold");
    assert_eq!(catalogue.check_subscribable("internal", false).unwrap_err().code(), "invalid_value");
    catalogue.check_subscribable("internal", true).unwrap();
    assert_eq!(catalogue.check_subscribable("nope", true).unwrap_err().code(), "unknown_node");

    // State transitions.
    catalogue.set_offer_state("internal", OfferState::Public).unwrap();
    assert_eq!(
        catalogue.set_offer_state("internal", OfferState::Public).unwrap_err().code(),
        "invalid_value"
    );
    catalogue.set_offer_state("internal", OfferState::Private).unwrap();
    catalogue.set_offer_state("gold", OfferState::Decommissioned).unwrap();
    for state in [OfferState::Private, OfferState::Public, OfferState::Decommissioned] {
        assert!(catalogue.set_offer_state("gold", state).is_err(), "{state}");
    }
    assert_eq!(catalogue.check_subscribable("gold", true).unwrap_err().code(), "invalid_value");
    let mut renamed = catalogue.offer("gold").unwrap().clone();
    renamed.name = "Gold (old)".into();
    assert_eq!(catalogue.put_offer(renamed).unwrap_err().code(), "invalid_value");
    // Replacing a live offer may change its plans and move its state along the graph.
    catalogue.put_offer(offer("internal", "base", &["sql"], OfferState::Public)).unwrap();

    // Existing subscriptions on a decommissioned offer keep working: its meters and quotas still resolve.
    let compute = meter_of(Category::Compute);
    let sql = meter_of(Category::SqlMySql);
    let network = meter_of(Category::Network);
    assert!(catalogue.offer_covers("gold", compute));
    assert!(catalogue.offer_covers("gold", sql));
    assert!(!catalogue.offer_covers("gold", network));
    assert!(!catalogue.offer_covers("nope", compute));
    let meters = catalogue.meters_of_offer("gold").unwrap();
    let expected: BTreeSet<MeterId> = ["compute", "storage", "sql-mysql"]
        .iter()
        .flat_map(|service| catalogue.service(service).unwrap().meters.iter().copied())
        .collect();
    assert_eq!(meters, expected);
    let quotas = catalogue.quota_of_offer("gold").unwrap();
    let expected: BTreeMap<String, Decimal> = [("databases", 10), ("storage_gb", 1000), ("vcpus", 150)]
        .map(|(k, v)| (k.to_owned(), Decimal::from(v)))
        .into();
    assert_eq!(quotas, expected);
    assert_eq!(catalogue.meters_of_offer("nope").unwrap_err().code(), "unknown_node");
    assert_eq!(catalogue.quota_of_offer("nope").unwrap_err().code(), "unknown_node");
}

#[test]
fn catalogue_serde_round_trip_is_checked() {
    let catalogue = sample_catalogue();
    let json = serde_json::to_string(&catalogue).unwrap();
    assert!(json.contains(r#""vcpus":"100""#), "decimals cross as strings: {json}");
    let back: Catalogue = serde_json::from_str(&json).unwrap();
    assert_eq!(back, catalogue);

    let dangling =
        r#"{"plans":{"p":{"id":"p","name":"P"}},"offers":{"o":{"id":"o","name":"O","base_plan":"q"}}}"#;
    assert!(serde_json::from_str::<Catalogue>(dangling).is_err());
    let mismatched = r#"{"plans":{"p":{"id":"x","name":"P"}}}"#;
    assert!(serde_json::from_str::<Catalogue>(mismatched).is_err());
    // A stored decommissioned offer loads (it may have subscriptions).
    let old = r#"{"plans":{"p":{"id":"p","name":"P"}},"offers":{"o":{"id":"o","name":"O","base_plan":"p","state":"decommissioned"}}}"#;
    let loaded: Catalogue = serde_json::from_str(old).unwrap();
    assert_eq!(loaded.offer("o").unwrap().state, OfferState::Decommissioned);
    assert!(loaded.offer("o").unwrap().addon_plans.is_empty());
}
