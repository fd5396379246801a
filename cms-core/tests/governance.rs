//! Governance on the engine: roles reaching subtrees only (no existence leak), assignment rules, the audit
//! trail of done and refused commands, policies (self-provisioning, four eyes, notice, minimum margin,
//! invoice visibility), retention, and a property test of every (principal, action, object) against a
//! small reference model written independently here.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, TimeZone, Utc};
use cms_core::Decimal;
use cms_core::engine::{Cms, Event, Principal};
use cms_core::governance::audit::Outcome;
use cms_core::governance::policy::Policies;
use cms_core::governance::rbac::{Role, RoleAssignment};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::money::Currency;
use cms_core::model::price_book::{BookList, ChangeScope, ChangeSet, MeterFilter, PriceVersion};
use cms_core::model::pricing::PriceChange;
use cms_core::model::time::Instant;
use cms_core::store::MemoryStore;
use proptest::prelude::*;

fn at(day: u32) -> Instant {
    Utc.with_ymd_and_hms(2026, 10, day, 9, 0, 0).unwrap()
}

fn add(id: &str, kind: NodeKind, parent: Option<&str>) -> Event {
    Event::NodeAdded { id: id.into(), kind, parent: parent.map(Into::into), name: id.into() }
}

fn assign(principal: &str, role: Role, node: &str) -> Event {
    Event::RoleAssigned {
        assignment: RoleAssignment { principal: principal.into(), role, node: node.into() },
    }
}

fn root() -> Principal {
    Principal::platform("root")
}

/// platform > d1 > p1 > t1 > s1; d1 > p2 > t2; platform > d2. Roles: root platform admin, dave
/// distributor admin at d1, pam partner admin at p1, pat partner reader at p1, tim tenant admin at t1, svc
/// service.
fn governed() -> Cms<MemoryStore> {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    let setup = [
        add("d1", NodeKind::Distributor, None),
        add("d2", NodeKind::Distributor, None),
        add("p1", NodeKind::Partner, Some("d1")),
        add("p2", NodeKind::Partner, Some("d1")),
        add("t1", NodeKind::Tenant, Some("p1")),
        add("t2", NodeKind::Tenant, Some("p2")),
        add("s1", NodeKind::Subscription, Some("t1")),
        assign("root", Role::PlatformAdmin, "platform"),
        assign("dave", Role::DistributorAdmin, "d1"),
        assign("pam", Role::PartnerAdmin, "p1"),
        assign("pat", Role::PartnerReader, "p1"),
        assign("tim", Role::TenantAdmin, "t1"),
        assign("svc", Role::Service, "platform"),
    ];
    for event in setup {
        cms.execute(&root(), at(1), &event).unwrap_or_else(|error| panic!("{event:?}: {error}"));
    }
    cms
}

fn code(result: Result<u64, cms_core::CmsError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(error) => error.code(),
    }
}

#[test]
fn the_first_role_must_be_a_platform_admin_and_then_everything_is_checked() {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    cms.execute(&root(), at(1), &add("d1", NodeKind::Distributor, None)).unwrap();
    // Setup mode: nothing is checked, but the first role must be platform admin at the platform.
    assert_eq!(
        code(cms.execute(&root(), at(1), &assign("x", Role::DistributorAdmin, "d1"))),
        "invalid_value"
    );
    cms.execute(&root(), at(1), &assign("root", Role::PlatformAdmin, "platform")).unwrap();
    // From now on a principal without a role is answered "not found".
    let stranger = Principal::platform("stranger");
    assert_eq!(code(cms.execute(&stranger, at(2), &add("d9", NodeKind::Distributor, None))), "unknown_node");
    assert_eq!(cms.nodes(&stranger, at(2)).unwrap_err().code(), "unknown_node");
    // The last platform admin stays.
    let revoke = Event::RoleRevoked {
        assignment: RoleAssignment {
            principal: "root".into(),
            role: Role::PlatformAdmin,
            node: "platform".into(),
        },
    };
    assert_eq!(code(cms.execute(&root(), at(2), &revoke)), "invalid_value");
}

#[test]
fn roles_reach_their_subtree_only_and_probes_outside_answer_not_found() {
    let mut cms = governed();
    let pam = Principal::at("pam", "p1");
    // Inside: a partner admin onboards a tenant under its partner.
    assert_eq!(code(cms.execute(&pam, at(2), &add("t3", NodeKind::Tenant, Some("p1")))), "ok");
    // A sibling partner, an existing one and one that does not exist: the same answer.
    assert_eq!(code(cms.execute(&pam, at(2), &add("t4", NodeKind::Tenant, Some("p2")))), "unknown_node");
    assert_eq!(code(cms.execute(&pam, at(2), &add("t4", NodeKind::Tenant, Some("p404")))), "unknown_node");
    // Acting at a scope it holds no role over (its distributor) is not found either.
    let pam_at_d1 = Principal::at("pam", "d1");
    assert_eq!(
        code(cms.execute(&pam_at_d1, at(2), &add("p9", NodeKind::Partner, Some("d1")))),
        "unknown_node"
    );
    // A reader may see but not change.
    let pat = Principal::at("pat", "p1");
    assert_eq!(code(cms.execute(&pat, at(2), &add("t5", NodeKind::Tenant, Some("p1")))), "forbidden");
    let seen: BTreeSet<String> = cms.nodes(&pat, at(2)).unwrap().into_iter().map(|node| node.id).collect();
    assert_eq!(seen, BTreeSet::from(["p1", "t1", "t3", "s1"].map(String::from)));
    assert_eq!(cms.node(&pat, "t2", at(2)).unwrap_err().code(), "unknown_node");
    // Nobody sets their own terms: a partner's commission plan is set from its distributor.
    let plan = Event::OverrideRateSet { node: "p1".into(), rate: Decimal::new(1, 2) };
    assert_eq!(code(cms.execute(&pam, at(2), &plan)), "unknown_node");
    let dave = Principal::at("dave", "d1");
    assert_eq!(code(cms.execute(&dave, at(2), &plan)), "ok");
    // Platform settings need the platform.
    let policies = Event::PoliciesSet { policies: Policies::default() };
    assert_eq!(code(cms.execute(&dave, at(2), &policies)), "unknown_node");
}

#[test]
fn admins_assign_roles_within_their_subtree_and_never_above_themselves() {
    let mut cms = governed();
    let pam = Principal::at("pam", "p1");
    assert_eq!(code(cms.execute(&pam, at(2), &assign("tara", Role::TenantReader, "t1"))), "ok");
    assert_eq!(code(cms.execute(&pam, at(2), &assign("pete", Role::PartnerAdmin, "p1"))), "ok");
    // Above itself, or in a sibling branch: not found.
    assert_eq!(code(cms.execute(&pam, at(2), &assign("x", Role::DistributorAdmin, "d1"))), "unknown_node");
    assert_eq!(code(cms.execute(&pam, at(2), &assign("x", Role::PartnerAdmin, "p2"))), "unknown_node");
    assert_eq!(code(cms.execute(&pam, at(2), &assign("x", Role::Service, "platform"))), "unknown_node");
    // A role of another level than its node's.
    assert_eq!(code(cms.execute(&pam, at(2), &assign("x", Role::PartnerAdmin, "t1"))), "invalid_value");
    // Readers do not assign.
    let pat = Principal::at("pat", "p1");
    assert_eq!(code(cms.execute(&pat, at(2), &assign("y", Role::TenantReader, "t1"))), "forbidden");
    // The new tenant reader reads its tenant only.
    let tara = Principal::at("tara", "t1");
    let seen: Vec<String> = cms.nodes(&tara, at(3)).unwrap().into_iter().map(|node| node.id).collect();
    assert_eq!(seen, ["t1", "s1"]);
}

#[test]
fn every_command_done_or_refused_is_audited_in_a_chain_that_verifies() {
    let mut cms = governed();
    let before = cms.store().audit_records_len();
    let pam = Principal::at("pam", "p1");
    cms.execute(&pam, at(3), &add("t3", NodeKind::Tenant, Some("p1"))).unwrap();
    cms.execute(&pam, at(3), &add("t4", NodeKind::Tenant, Some("p2"))).unwrap_err();
    let records = cms.audit_records(&root()).unwrap();
    assert_eq!(records.len(), before + 2);
    let done = &records[before];
    assert_eq!(
        (done.actor.as_str(), done.command.as_str(), done.target.as_str()),
        ("pam", "node_added", "t3")
    );
    assert_eq!(done.outcome, Outcome::Done);
    assert!(done.events.is_some());
    assert_ne!(done.before, done.after);
    let refused = &records[before + 1];
    assert!(
        matches!(&refused.outcome, Outcome::Refused { code, .. } if code == "unknown_node"),
        "{refused:?}"
    );
    assert_eq!((refused.events, refused.before.clone()), (None, refused.after.clone()));
    let verification = cms.verify_audit(None).unwrap();
    assert_eq!(verification.broken, None);
    assert_eq!(verification.records, records.len() as u64);
    // Only principals who may read the trail get it.
    assert_eq!(cms.audit_records(&pam).unwrap_err().code(), "forbidden");
    // Ingestion by the service is audited with the batch's content hash; by a partner admin, refused.
    let svc = Principal::platform("svc");
    let summary =
        cms.ingest_as(&svc, at(4), &[], &cms_core::source::PageOrigin::named("empty page")).unwrap();
    assert_eq!(summary.stored, 0);
    let last = cms.audit_records(&root()).unwrap().pop().unwrap();
    assert_eq!((last.command.as_str(), last.content.is_some()), ("ingest", true));
    assert!(cms.ingest_as(&pam, at(4), &[], &cms_core::source::PageOrigin::named("p")).is_err());
    assert_eq!(cms.verify_audit(None).unwrap().broken, None);
}

trait AuditLen {
    fn audit_records_len(&self) -> usize;
}

impl AuditLen for MemoryStore {
    fn audit_records_len(&self) -> usize {
        use cms_core::store::Store;
        self.audit_records().unwrap().len()
    }
}

fn rise(id: &str, percent: Decimal, effective: Instant) -> ChangeSet {
    ChangeSet {
        id: id.into(),
        scope: ChangeScope::All,
        meters: MeterFilter::All,
        change: PriceChange::Percent(percent),
        effective,
        scale: 6,
        exempt_tenants: BTreeSet::new(),
    }
}

#[test]
fn policies_self_provisioning_four_eyes_notice_and_margin() {
    let mut cms = governed();
    let mut list = BookList::new("std", "Standard", Currency::USD);
    let vm: cms_core::model::meter::MeterId = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5".parse().unwrap();
    let price = cms_core::model::pricing::MeterPrice::new(
        "vCore-hours",
        cms_core::model::pricing::PriceModel::per_unit(Decimal::new(5, 2)),
    );
    list.versions.push(PriceVersion::own(at(1), BTreeMap::from([(vm, price)])));
    cms.execute(&root(), at(1), &Event::PriceListCreated { list }).unwrap();
    cms.execute(&root(), at(1), &assign("ann", Role::PlatformAdmin, "platform")).unwrap();
    let policies = Policies {
        partners_create_tenants: false,
        tenants_create_subscriptions: true,
        minimum_margin: true,
        four_eyes_above: Some(Decimal::new(5, 2)),
        increase_notice_days: 30,
        ..Policies::default()
    };
    cms.execute(&root(), at(2), &Event::PoliciesSet { policies }).unwrap();
    // Self-provisioning: partners may not onboard tenants any more (their distributor may); tenants may
    // create subscriptions.
    let pam = Principal::at("pam", "p1");
    assert_eq!(code(cms.execute(&pam, at(3), &add("t9", NodeKind::Tenant, Some("p1")))), "policy_refused");
    let dave = Principal::at("dave", "d1");
    assert_eq!(code(cms.execute(&dave, at(3), &add("t9", NodeKind::Tenant, Some("p1")))), "ok");
    let tim = Principal::at("tim", "t1");
    assert_eq!(code(cms.execute(&tim, at(3), &add("s9", NodeKind::Subscription, Some("t1")))), "ok");
    // Notice: a rise effective in 10 days is refused; in 40 days it needs four eyes (10 % > 5 %).
    let soon = rise("soon", Decimal::new(10, 2), at(3) + Duration::days(10));
    assert_eq!(
        code(cms.execute(&root(), at(3), &Event::ChangeSetApplied { change_set: soon })),
        "policy_refused"
    );
    let later = rise("later", Decimal::new(10, 2), at(3) + Duration::days(40));
    let apply = Event::ChangeSetApplied { change_set: later.clone() };
    assert_eq!(code(cms.execute(&root(), at(3), &apply)), "policy_refused");
    let request = Event::ChangeRequested { change_set: later.clone(), requested_by: "root".into() };
    cms.execute(&root(), at(3), &request).unwrap();
    // The requester may not approve, nor approve in someone else's name; another admin may.
    let self_approval = Event::ChangeApproved { id: "later".into(), approved_by: "root".into() };
    assert_eq!(code(cms.execute(&root(), at(3), &self_approval)), "policy_refused");
    let ann = Principal::platform("ann");
    let approval = Event::ChangeApproved { id: "later".into(), approved_by: "ann".into() };
    assert_eq!(code(cms.execute(&root(), at(3), &approval)), "policy_refused");
    assert_eq!(code(cms.execute(&ann, at(3), &approval)), "ok");
    // An altered change set is not the approved one.
    let mut altered = later.clone();
    altered.change = PriceChange::Percent(Decimal::new(20, 2));
    assert_eq!(
        code(cms.execute(&root(), at(4), &Event::ChangeSetApplied { change_set: altered })),
        "policy_refused"
    );
    assert_eq!(code(cms.execute(&root(), at(4), &apply)), "ok");
    // A small rise needs no second approver.
    let small = rise("small", Decimal::new(3, 2), at(4) + Duration::days(60));
    assert_eq!(code(cms.execute(&root(), at(4), &Event::ChangeSetApplied { change_set: small })), "ok");
    // Minimum margin: a derived list below its parent is refused unless exempt.
    let mut below = BookList::new("cheap", "Cheap", Currency::USD);
    below.versions.push(PriceVersion::derived(at(1), "std", Decimal::new(-10, 2)));
    let create = Event::PriceListCreated { list: below };
    assert_eq!(code(cms.execute(&root(), at(5), &create)), "policy_refused");
    let records = cms.audit_records(&root()).unwrap();
    let refusals = records
        .iter()
        .filter(|record| matches!(&record.outcome, Outcome::Refused { code, .. } if code == "policy_refused"))
        .count();
    // Tenant by a partner, soon, later unapproved, self-approval, approval in another name, altered, margin.
    assert_eq!(refusals, 7, "every policy refusal is audited");
}

#[test]
fn invoice_visibility_is_a_policy_per_role() {
    let mut cms = governed();
    let tim = Principal::at("tim", "t1");
    let october = cms_core::model::time::Period::month(2026, 10).unwrap();
    assert!(cms.invoice_documents(&tim, Some(october)).is_ok());
    let mut policies = Policies::default();
    policies.invoice_visibility.remove(&Role::TenantAdmin);
    cms.execute(&root(), at(2), &Event::PoliciesSet { policies }).unwrap();
    assert_eq!(cms.invoice_documents(&tim, Some(october)).unwrap_err().code(), "policy_refused");
    assert!(cms.invoice_documents(&root(), Some(october)).is_ok());
}

// ---- the reference model ---------------------------------------------------------------------------

/// The channel as a parent map: independent of the engine's hierarchy.
#[derive(Debug, Clone)]
struct Tree {
    parent: BTreeMap<String, Option<String>>,
    kind: BTreeMap<String, NodeKind>,
}

impl Tree {
    fn ancestors_or_self(&self, id: &str) -> Vec<String> {
        let mut out = vec![id.to_owned()];
        let mut current = id.to_owned();
        while let Some(Some(parent)) = self.parent.get(&current) {
            out.push(parent.clone());
            current = parent.clone();
        }
        out
    }
}

fn reference_can(role: Role, write: bool) -> bool {
    // Written from the table: admins manage the channel below them; readers and tenant admins do
    // not manage the channel; the service does not either.
    if write {
        matches!(role, Role::PlatformAdmin | Role::DistributorAdmin | Role::PartnerAdmin)
    } else {
        true
    }
}

/// The reference decision for `principal` acting at `scope` on `target`: `ok`, `unknown_node` or
/// `forbidden`.
fn reference(
    tree: &Tree,
    held: &[(String, Role, String)],
    principal: &str,
    scope: &str,
    target: &str,
    write: bool,
) -> &'static str {
    let scope_chain = tree.ancestors_or_self(scope);
    let roles: Vec<Role> = held
        .iter()
        .filter(|(who, _, node)| who == principal && scope_chain.contains(node))
        .map(|(_, role, _)| *role)
        .collect();
    if roles.is_empty()
        || !tree.parent.contains_key(target)
        || !tree.ancestors_or_self(target).iter().any(|node| node == scope)
    {
        return "unknown_node";
    }
    if roles.iter().any(|role| reference_can(*role, write)) { "ok" } else { "forbidden" }
}

/// Nodes (id, kind, parent) and assignments (principal, role, node).
type Channel = (Vec<(String, NodeKind, Option<String>)>, Vec<(String, Role, String)>);

fn tree_strategy() -> impl Strategy<Value = Channel> {
    // 1-3 distributors, each 1-2 partners, each 1-2 tenants; assignments picked among its nodes.
    (1usize..4, prop::collection::vec(1usize..3, 3), prop::collection::vec(1usize..3, 6)).prop_flat_map(
        |(distributors, partners, tenants)| {
            let mut nodes = Vec::new();
            let mut tenant_index = 0;
            for (d, partner_count) in partners.iter().enumerate().take(distributors) {
                nodes.push((format!("d{d}"), NodeKind::Distributor, None));
                for p in 0..*partner_count {
                    let partner = format!("d{d}p{p}");
                    nodes.push((partner.clone(), NodeKind::Partner, Some(format!("d{d}"))));
                    for t in 0..tenants[tenant_index % tenants.len()] {
                        nodes.push((format!("{partner}t{t}"), NodeKind::Tenant, Some(partner.clone())));
                    }
                    tenant_index += 1;
                }
            }
            let count = nodes.len();
            let roles = [
                Role::DistributorAdmin,
                Role::DistributorReader,
                Role::PartnerAdmin,
                Role::PartnerReader,
                Role::TenantAdmin,
                Role::TenantReader,
            ];
            let picks = prop::collection::vec((0usize..4, 0usize..count, 0usize..6), 1..8);
            (Just(nodes), picks).prop_map(move |(nodes, picks)| {
                let assignments = picks
                    .into_iter()
                    .filter_map(|(who, index, role)| {
                        let (node, kind, _) = &nodes[index];
                        let role = roles[role];
                        (role.level() == *kind).then(|| (format!("u{who}"), role, node.clone()))
                    })
                    .collect();
                (nodes, assignments)
            })
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Every (principal, scope, target, read or write) decision equals the reference model's, and no read
    /// returns a node outside the scope.
    #[test]
    fn every_decision_matches_the_reference_model((nodes, assignments) in tree_strategy()) {
        let mut cms = Cms::open(MemoryStore::new()).unwrap();
        let mut tree = Tree { parent: BTreeMap::new(), kind: BTreeMap::new() };
        tree.parent.insert("platform".into(), None);
        tree.kind.insert("platform".into(), NodeKind::Platform);
        for (id, kind, parent) in &nodes {
            cms.execute(&root(), at(1), &add(id, *kind, parent.as_deref())).unwrap();
            tree.parent.insert(id.clone(), Some(parent.clone().unwrap_or_else(|| "platform".into())));
            tree.kind.insert(id.clone(), *kind);
        }
        cms.execute(&root(), at(1), &assign("root", Role::PlatformAdmin, "platform")).unwrap();
        for (who, role, node) in &assignments {
            cms.execute(&root(), at(1), &assign(who, *role, node)).unwrap();
        }
        let ids: Vec<String> = tree.parent.keys().cloned().collect();
        let mut decisions = 0;
        for who in ["u0", "u1", "u2", "u3"] {
            for scope in &ids {
                let principal = Principal::at(who, scope);
                // Reads: the nodes listed are exactly the scope's subtree, or "not found".
                match cms.nodes(&principal, at(2)) {
                    Ok(seen) => {
                        prop_assert_eq!(reference(&tree, &assignments, who, scope, scope, false), "ok");
                        for node in &seen {
                            prop_assert!(tree.ancestors_or_self(&node.id).contains(scope), "{} outside {}", node.id, scope);
                        }
                        let expected = ids.iter().filter(|id| tree.ancestors_or_self(id).contains(scope)).count();
                        prop_assert_eq!(seen.len(), expected);
                    }
                    Err(error) => {
                        prop_assert_eq!(error.code(), reference(&tree, &assignments, who, scope, scope, false));
                    }
                }
                // Writes: rename every node (a rename changes nothing the next decision depends on).
                for target in &ids {
                    if target == "platform" || tree.kind[target] == NodeKind::Subscription {
                        continue;
                    }
                    let rename = Event::NodeRenamed { id: target.clone(), name: format!("{target} by {who}") };
                    let actual = code(cms.execute(&principal, at(3), &rename));
                    prop_assert_eq!(actual, reference(&tree, &assignments, who, scope, target, true), "{} at {} renames {}", who, scope, target);
                    decisions += 1;
                }
            }
        }
        prop_assert!(decisions > 0);
        prop_assert_eq!(cms.verify_audit(None).unwrap().broken, None);
    }
}
