//! Queries, scoped to the principal: a principal sees its own node's subtree (in the latest structure) and
//! nothing of a sibling branch. A node outside the scope is reported as unknown, so a query never tells
//! whether something exists in another branch.

use serde::{Deserialize, Serialize};

use crate::engine::{Cms, Principal};
use crate::error::CmsError;
use crate::governance::audit::AuditRecord;
use crate::governance::rbac::{Action, not_found};
use crate::model::channel::{BillingProfile, SubscriptionInfo};
use crate::model::hierarchy::{NodeIndex, NodeKind};
use crate::model::time::Instant;
use crate::store::Store;

/// One node as a query returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// Id.
    pub id: String,
    /// Level.
    pub kind: NodeKind,
    /// The level's display label ("Department" for tenants in enterprise mode).
    pub label: String,
    /// Display name.
    pub name: String,
    /// Parent id (latest structure); `None` for the platform.
    pub parent: Option<String>,
    /// Depth below the principal's node (0: the node itself).
    pub depth: usize,
    /// For organisations: active or suspended at the instant asked (own status or an ancestor's).
    pub suspended: bool,
    /// For organisations: the billing profile set on it, if any.
    pub billing: Option<BillingProfile>,
    /// For subscriptions: offer, state, external ids, region.
    pub subscription: Option<SubscriptionInfo>,
}

impl<S: Store> Cms<S> {
    /// The principal's node; unknown if it is not in the channel, or (once roles are in use) if the
    /// principal holds no role there or above.
    pub fn scope_of(&self, principal: &Principal) -> Result<NodeIndex, CmsError> {
        let hierarchy = &self.state.hierarchy;
        let scope = hierarchy.find(&principal.node).ok_or_else(|| CmsError::UnknownNode {
            kind: "principal scope".into(),
            id: principal.node.clone(),
            context: None,
        })?;
        let roles = &self.state.roles;
        if roles.active() && roles.reaching(hierarchy, &principal.id, scope).next().is_none() {
            return Err(not_found(&principal.node));
        }
        Ok(scope)
    }

    /// Check that `principal` may run a query needing `action` at its scope. Reading billing also needs a
    /// role the invoice-visibility policy lists.
    pub fn authorize_read(&self, principal: &Principal, action: Action) -> Result<(), CmsError> {
        let (hierarchy, roles) = (&self.state.hierarchy, &self.state.roles);
        roles.authorize(hierarchy, &principal.id, &principal.node, action, &[])?;
        if roles.active() && action == Action::ReadBilling {
            let scope = self.scope_of(principal)?;
            let visible = roles.reaching(hierarchy, &principal.id, scope).any(|role| {
                role.permits(Action::ReadBilling) && self.state.policies.invoice_visibility.contains(&role)
            });
            if !visible {
                return Err(CmsError::PolicyRefused {
                    policy: "invoice_visibility".into(),
                    reason: format!("no role of {} at {} may read invoices", principal.id, principal.node),
                });
            }
        }
        Ok(())
    }

    /// The audit trail, for a principal that may read it.
    pub fn audit_records(&self, principal: &Principal) -> Result<Vec<AuditRecord>, CmsError> {
        self.authorize_read(principal, Action::ReadAudit)?;
        self.store.audit_records()
    }

    /// A node the principal may see, by id; unknown when it does not exist or lies outside the scope.
    pub fn visible(&self, principal: &Principal, id: &str) -> Result<NodeIndex, CmsError> {
        let scope = self.scope_of(principal)?;
        let hierarchy = &self.state.hierarchy;
        hierarchy
            .find(id)
            .filter(|&node| hierarchy.is_within(node, scope))
            .ok_or_else(|| CmsError::UnknownNode { kind: "node".into(), id: id.to_owned(), context: None })
    }

    /// Every node of the principal's subtree, top-down (the principal's node first), as of `at` for
    /// statuses.
    pub fn nodes(&self, principal: &Principal, at: Instant) -> Result<Vec<NodeView>, CmsError> {
        let scope = self.scope_of(principal)?;
        Ok(self.state.hierarchy.subtree(scope).into_iter().map(|node| self.view(scope, node, at)).collect())
    }

    /// One node of the principal's subtree.
    pub fn node(&self, principal: &Principal, id: &str, at: Instant) -> Result<NodeView, CmsError> {
        let node = self.visible(principal, id)?;
        Ok(self.view(self.scope_of(principal)?, node, at))
    }

    /// The subscriptions of the principal's subtree.
    pub fn subscriptions(&self, principal: &Principal, at: Instant) -> Result<Vec<NodeView>, CmsError> {
        Ok(self
            .nodes(principal, at)?
            .into_iter()
            .filter(|node| node.kind == NodeKind::Subscription)
            .collect())
    }

    fn view(&self, scope: NodeIndex, index: NodeIndex, at: Instant) -> NodeView {
        let (hierarchy, channel) = (&self.state.hierarchy, &self.state.channel);
        let node = hierarchy.node(index);
        let organisation = matches!(node.kind, NodeKind::Distributor | NodeKind::Partner | NodeKind::Tenant);
        NodeView {
            id: node.id.clone(),
            kind: node.kind,
            label: hierarchy.label(node.kind).to_owned(),
            name: node.name.clone(),
            parent: node.parent.clone(),
            depth: hierarchy.ancestry(index).take_while(|&ancestor| ancestor != scope).count(),
            suspended: organisation && channel.is_suspended_at(hierarchy, index, at),
            billing: channel.billing_profile(&node.id).cloned(),
            subscription: (node.kind == NodeKind::Subscription)
                .then(|| channel.subscription(&node.id).cloned().unwrap_or_default()),
        }
    }
}
