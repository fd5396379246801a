//! What each command needs: the permission, and the nodes it touches ([`crate::governance::rbac`]).
//!
//! - channel changes need `ManageChannel` at the parent (or the node itself for renames and moves);
//!   subscriptions need `ManageSubscriptions`;
//! - terms that a level grants to the level below (commission plans, override rates, billing profiles)
//!   need the permission at the node's parent: nobody sets their own;
//! - price lists need `ManagePrices` where they are assigned (the platform for region and default lists);
//! - platform settings (catalogue, taxes, rules, exchange rates, policies) and period closing need the
//!   platform; documents need `ManageBilling` at their issuer.

use crate::engine::{Event, PLATFORM_ID, State};
use crate::governance::rbac::Action;
use crate::model::adjustments::{CreditScope, DiscountScope};
use crate::model::hierarchy::NodeKind;
use crate::model::price_book::PriceScope;

/// One requirement: an action at every listed node (none: at the principal's own scope).
pub(crate) type Requirement = (Action, Vec<String>);

fn platform() -> Vec<String> {
    vec![PLATFORM_ID.to_owned()]
}

/// The parent of `id` (the platform for top-level nodes and unknown ids, which fail elsewhere).
fn parent_of(state: &State, id: &str) -> String {
    let hierarchy = &state.hierarchy;
    hierarchy
        .find(id)
        .and_then(|node| hierarchy.parent(node))
        .map_or_else(|| PLATFORM_ID.to_owned(), |parent| hierarchy.node(parent).id.clone())
}

fn is_subscription(state: &State, id: &str) -> bool {
    state.hierarchy.get(id).is_some_and(|node| node.kind == NodeKind::Subscription)
}

/// Where a list is assigned: its nodes, the platform for region and default assignments.
fn list_places(state: &State, list: &str) -> Vec<String> {
    let mut places: Vec<String> = state
        .terms
        .book
        .assignments()
        .filter(|(_, assigned)| *assigned == list)
        .map(|(scope, _)| match scope {
            PriceScope::Node(node) => node.clone(),
            PriceScope::Region(_) | PriceScope::Default => PLATFORM_ID.to_owned(),
        })
        .collect();
    places.sort();
    places.dedup();
    places
}

/// The requirements of one event.
pub(crate) fn requirements(state: &State, event: &Event) -> Vec<Requirement> {
    use Action as A;
    let one = |action: Action, targets: Vec<String>| vec![(action, targets)];
    match event {
        Event::NodeAdded { kind, parent, .. } => {
            let action =
                if *kind == NodeKind::Subscription { A::ManageSubscriptions } else { A::ManageChannel };
            one(action, vec![parent.clone().unwrap_or_else(|| PLATFORM_ID.to_owned())])
        }
        Event::NodeRenamed { id, .. } => {
            let action = if is_subscription(state, id) { A::ManageSubscriptions } else { A::ManageChannel };
            one(action, vec![id.clone()])
        }
        Event::NodeMoved { id, parent, .. } => {
            let action = if is_subscription(state, id) { A::ManageSubscriptions } else { A::ManageChannel };
            one(action, vec![id.clone(), parent.clone()])
        }
        Event::OrganisationSuspended { id, .. } | Event::OrganisationReenabled { id, .. } => {
            one(A::ManageChannel, vec![parent_of(state, id)])
        }
        Event::SubscriptionSet { id, .. } => one(A::ManageSubscriptions, vec![id.clone()]),
        Event::BillingProfileSet { node, .. }
        | Event::CommissionPlanAssigned { node, .. }
        | Event::OverrideRateSet { node, .. }
        | Event::OverridePlanAssigned { node, .. } => {
            let action = if matches!(event, Event::BillingProfileSet { .. }) {
                A::ManageChannel
            } else {
                A::ManageTerms
            };
            one(action, vec![parent_of(state, node)])
        }
        Event::PriceListCreated { .. } | Event::CommissionPlanPut { .. } => {
            let action = if matches!(event, Event::PriceListCreated { .. }) {
                A::ManagePrices
            } else {
                A::ManageTerms
            };
            one(action, Vec::new())
        }
        Event::PriceVersionAdded { list, .. } => one(A::ManagePrices, list_places(state, list)),
        Event::PriceListCloned { source, .. } => one(A::ReadPrices, list_places(state, source)),
        Event::PriceListAssigned { scope, .. } | Event::PriceListUnassigned { scope } => match scope {
            PriceScope::Node(node) => one(A::ManagePrices, vec![node.clone()]),
            PriceScope::Region(_) | PriceScope::Default => one(A::ManagePrices, platform()),
        },
        Event::ChangeSetApplied { .. } | Event::ChangeRequested { .. } => one(A::ManagePrices, platform()),
        Event::DiscountSet { discount } => {
            let node = match &discount.scope {
                DiscountScope::Tenant(id) | DiscountScope::Subscription(id) => id.clone(),
                DiscountScope::Resource { subscription, .. } => subscription.clone(),
            };
            one(A::ManageTerms, vec![parent_of(state, &node)])
        }
        Event::CreditGranted { credit } => {
            let node = match &credit.scope {
                CreditScope::Tenant(id) | CreditScope::Subscription(id) => id.clone(),
                CreditScope::MeterLine { subscription, .. } => subscription.clone(),
            };
            one(A::ManageTerms, vec![parent_of(state, &node)])
        }
        Event::LabelSet { .. }
        | Event::ExchangeRateSet { .. }
        | Event::IngestPolicySet { .. }
        | Event::BillingRulesSet { .. }
        | Event::ServicePut { .. }
        | Event::PlanPut { .. }
        | Event::OfferPut { .. }
        | Event::OfferStateSet { .. }
        | Event::InvoiceSettingsSet { .. }
        | Event::TaxRuleSet { .. }
        | Event::TaxRuleRemoved { .. }
        | Event::ChargebackSettingsSet { .. }
        | Event::PoliciesSet { .. }
        | Event::MonitoringSettingsSet { .. } => one(A::ManageSettings, platform()),
        Event::PeriodClosed { .. } | Event::UsagePurged { .. } => one(A::ManageBilling, platform()),
        Event::DocumentIssued { issuer, .. } => one(A::ManageBilling, vec![issuer.clone()]),
        Event::InvoiceVoided { number, .. } => {
            let issuer = state
                .issued
                .get(number)
                .map_or_else(|| PLATFORM_ID.to_owned(), |issued| issued.issuer.clone());
            one(A::ManageBilling, vec![issuer])
        }
        Event::Correction { event, .. } => {
            let mut all = one(A::ManageBilling, platform());
            all.extend(requirements(state, event));
            all
        }
        Event::ChangeApproved { .. } => one(A::ApproveChanges, platform()),
        Event::BudgetSet { .. }
        | Event::BudgetRemoved { .. }
        | Event::AlertsEvaluated { .. }
        | Event::JobRecorded { .. }
        | Event::AlertAcknowledged { .. }
        | Event::AlertResolved { .. } => monitoring_requirements(state, event),
        // Checked by the role rules themselves.
        Event::RoleAssigned { .. } | Event::RoleRevoked { .. } => Vec::new(),
    }
}

/// What monitoring events need: budgets are managed at their node (and, when one replaces another of its
/// id, at the old one's), alerts at the node they concern; evaluations and job runs are the scheduler's.
fn monitoring_requirements(state: &State, event: &Event) -> Vec<Requirement> {
    use Action as A;
    match event {
        Event::BudgetSet { budget } => {
            let mut targets = vec![budget.node.clone()];
            targets.extend(state.budgets.get(&budget.id).map(|old| old.node.clone()));
            vec![(A::ManageBudgets, targets)]
        }
        Event::BudgetRemoved { id } => vec![(
            A::ManageBudgets,
            vec![state.budgets.get(id).map_or_else(|| PLATFORM_ID.to_owned(), |budget| budget.node.clone())],
        )],
        Event::AlertAcknowledged { id, .. } | Event::AlertResolved { id, .. } => vec![(
            A::ManageAlerts,
            vec![
                state
                    .alerts
                    .alerts
                    .get(id)
                    .map_or_else(|| PLATFORM_ID.to_owned(), |alert| alert.scope.clone()),
            ],
        )],
        _ => vec![(A::RunJobs, platform())],
    }
}
