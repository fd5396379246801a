//! Policies: rules on what may be done, as data ([`Policies`], set by `Event::PoliciesSet`), evaluated in
//! one place ([`evaluate`]) before a command's events apply; a refusal is `policy_refused` and audited like
//! every refusal.
//!
//! - self-provisioning: whether partners may onboard tenants, and tenants create subscriptions, themselves
//!   (a principal with an admin role above them always may);
//! - minimum margin (off by default): a derived price version never prices below the list it derives
//!   from (a reseller's selling list derived from its cost list): markup at least 0, and a floor of at
//!   least 0 when it overrides prices; lists named in the exceptions (a wholesale list derived below
//!   retail, say) are exempt;
//! - four eyes: a change set above the threshold (a percent rise; any fixed-amount change) is applied only
//!   after one admin requested it and another approved it, unchanged;
//! - notice: a change set that raises prices takes effect at least the notice period after it is
//!   recorded;
//! - invoice visibility: the roles that may read invoices, statements and showback;
//! - retention: how long raw usage of invoiced periods is kept ([`crate::engine::Cms::purge_usage`]).

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::engine::{Event, Principal, State};
use crate::error::CmsError;
use crate::governance::rbac::Role;
use crate::model::hierarchy::NodeKind;
use crate::model::price_book::{ChangeSet, VersionContent};
use crate::model::pricing::PriceChange;
use crate::model::time::Instant;

/// The platform's policies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policies {
    /// Partner admins may onboard tenants under their partner.
    pub partners_create_tenants: bool,
    /// Tenant admins may create subscriptions in their tenant.
    pub tenants_create_subscriptions: bool,
    /// Derived price versions never price below the list they derive from.
    pub minimum_margin: bool,
    /// Lists exempt from the minimum margin.
    #[serde(default)]
    pub margin_exceptions: BTreeSet<String>,
    /// The largest percent rise (0.1 for 10 %) applied without a second approver; `None`: no four-eyes rule.
    #[serde(default)]
    pub four_eyes_above: Option<Decimal>,
    /// Days between recording a price rise and its effective date.
    #[serde(default)]
    pub increase_notice_days: u32,
    /// Roles that may read invoices, statements and showback.
    pub invoice_visibility: BTreeSet<Role>,
    /// Retention: raw usage of an invoiced period is purged this many months after the period ends (and
    /// only once late usage can no longer reach it); `None` keeps it.
    #[serde(default)]
    pub usage_retention_months: Option<u32>,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            partners_create_tenants: true,
            tenants_create_subscriptions: false,
            minimum_margin: false,
            margin_exceptions: BTreeSet::new(),
            four_eyes_above: None,
            increase_notice_days: 0,
            invoice_visibility: Role::ALL.into_iter().collect(),
            usage_retention_months: None,
        }
    }
}

/// A change set waiting for (or given) a second approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRequest {
    /// The change set.
    pub change_set: ChangeSet,
    /// Who requested it.
    pub requested_by: String,
    /// Who approved it.
    pub approved_by: Option<String>,
}

/// Change requests by the change set's id.
pub type ChangeRequests = BTreeMap<String, ChangeRequest>;

fn refused(policy: &str, reason: String) -> CmsError {
    CmsError::PolicyRefused { policy: policy.to_owned(), reason }
}

/// Whether a change set raises prices.
fn raises(change: &PriceChange) -> bool {
    match change {
        PriceChange::Percent(rate) | PriceChange::Fixed(rate) => rate.is_sign_positive() && !rate.is_zero(),
    }
}

/// Evaluate every policy on one event `principal` is about to record at `at` on `state`.
pub fn evaluate(state: &State, principal: &Principal, at: Instant, event: &Event) -> Result<(), CmsError> {
    let policies = &state.policies;
    let hierarchy = &state.hierarchy;
    let roles = &state.roles;
    // The highest level at which the principal holds an admin role reaching `node` (the platform first).
    let admin_above = |node: &str, level: NodeKind| {
        hierarchy.find(node).is_some_and(|index| {
            roles
                .reaching(hierarchy, &principal.id, index)
                .any(|role| role.is_admin() && role.level() < level)
        })
    };
    match event {
        Event::NodeAdded { kind: NodeKind::Tenant, parent: Some(parent), .. }
            if roles.active()
                && !policies.partners_create_tenants
                && !admin_above(parent, NodeKind::Partner) =>
        {
            Err(refused("self_provisioning", format!("partners may not onboard tenants (under {parent})")))
        }
        Event::NodeAdded { kind: NodeKind::Subscription, parent: Some(parent), .. }
            if roles.active()
                && !policies.tenants_create_subscriptions
                && !admin_above(parent, NodeKind::Tenant) =>
        {
            Err(refused("self_provisioning", format!("tenants may not create subscriptions (in {parent})")))
        }
        Event::PriceVersionAdded { list, version } => check_margin(policies, list, &version.content),
        Event::PriceListCreated { list } => {
            list.versions.iter().try_for_each(|version| check_margin(policies, &list.id, &version.content))
        }
        Event::ChangeSetApplied { change_set } => {
            check_notice(policies, at, change_set)?;
            check_four_eyes(policies, &state.change_requests, change_set)
        }
        Event::ChangeRequested { change_set, requested_by } => {
            if requested_by != &principal.id {
                return Err(refused(
                    "four_eyes",
                    format!("{} may not request as {requested_by}", principal.id),
                ));
            }
            check_notice(policies, at, change_set)
        }
        Event::ChangeApproved { id, approved_by } => {
            let request = state.change_requests.get(id).ok_or_else(|| CmsError::UnknownNode {
                kind: "change request".into(),
                id: id.clone(),
                context: None,
            })?;
            if approved_by != &principal.id {
                return Err(refused(
                    "four_eyes",
                    format!("{} may not approve as {approved_by}", principal.id),
                ));
            }
            if request.requested_by == principal.id {
                return Err(refused(
                    "four_eyes",
                    format!("{} requested change set {id}: another admin approves", principal.id),
                ));
            }
            Ok(())
        }
        Event::Correction { event, .. } => evaluate(state, principal, at, event),
        _ => Ok(()),
    }
}

fn check_margin(policies: &Policies, list: &str, content: &VersionContent) -> Result<(), CmsError> {
    if !policies.minimum_margin || policies.margin_exceptions.contains(list) {
        return Ok(());
    }
    if let VersionContent::Derived { parent, markup, overrides, floor } = content {
        if markup.is_sign_negative() && !markup.is_zero() {
            return Err(refused(
                "minimum_margin",
                format!("list {list} sells below its parent {parent} (markup {markup})"),
            ));
        }
        let floor_ok = floor.is_some_and(|floor| !floor.is_sign_negative() || floor.is_zero());
        if !overrides.is_empty() && !floor_ok {
            return Err(refused(
                "minimum_margin",
                format!("list {list} overrides prices of {parent} without a floor of at least 0"),
            ));
        }
        if floor.is_some_and(|floor| floor.is_sign_negative() && !floor.is_zero()) {
            return Err(refused(
                "minimum_margin",
                format!("list {list} has a floor below its parent {parent}"),
            ));
        }
    }
    Ok(())
}

fn check_notice(policies: &Policies, at: Instant, change_set: &ChangeSet) -> Result<(), CmsError> {
    let notice = Duration::days(i64::from(policies.increase_notice_days));
    if policies.increase_notice_days > 0 && raises(&change_set.change) && change_set.effective < at + notice {
        return Err(refused(
            "increase_notice",
            format!(
                "change set {} raises prices from {}: at least {} days' notice (from {})",
                change_set.id,
                change_set.effective.to_rfc3339(),
                policies.increase_notice_days,
                (at + notice).to_rfc3339()
            ),
        ));
    }
    Ok(())
}

fn check_four_eyes(
    policies: &Policies,
    requests: &ChangeRequests,
    change_set: &ChangeSet,
) -> Result<(), CmsError> {
    let Some(threshold) = policies.four_eyes_above else { return Ok(()) };
    let small = match change_set.change {
        PriceChange::Percent(rate) => rate <= threshold,
        PriceChange::Fixed(amount) => !amount.is_sign_positive() || amount.is_zero(),
    };
    if small {
        return Ok(());
    }
    match requests.get(&change_set.id) {
        Some(request) if request.approved_by.is_some() && &request.change_set == change_set => Ok(()),
        Some(request) if request.approved_by.is_some() => {
            Err(refused("four_eyes", format!("change set {} differs from the one approved", change_set.id)))
        }
        _ => Err(refused(
            "four_eyes",
            format!(
                "change set {} is above {threshold}: request it, and have another admin approve it",
                change_set.id
            ),
        )),
    }
}
