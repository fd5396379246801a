//! Roles and permissions (DESIGN.md, "Governance").
//!
//! - Nine built-in roles; each is held at a node of its level (platform roles and Service at the platform,
//!   distributor roles at a distributor, ...) and reaches that node's subtree only.
//! - A principal acts at a node (its scope, [`crate::engine::Principal::node`]). It may act there when it
//!   holds a role at that node or above it; every object a command or query touches must lie in the
//!   scope's subtree. An object outside it, and a scope the principal holds no role over, answer "not
//!   found" (`unknown_node`): nothing tells whether it exists. A reachable object without the permission
//!   answers `forbidden`.
//! - Only admins assign roles, at nodes of their subtree, of the level of that node: never above
//!   themselves. The Service role (automation: ingestion, billing runs) is assigned by platform admins.
//! - Until the first role is assigned, the engine is in setup mode and checks nothing; the first
//!   assignment must make someone platform admin. From then on every command and query is checked.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::CmsError;
use crate::model::hierarchy::{Hierarchy, NodeIndex, NodeKind};

/// A built-in role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, everywhere.
    PlatformAdmin,
    /// Reads everything.
    PlatformReader,
    /// Runs a distributor's network: onboarding, subscriptions, its resale prices, its customers' terms,
    /// billing of its resale customers, roles below it.
    DistributorAdmin,
    /// Reads a distributor's network.
    DistributorReader,
    /// Runs a partner's customers: onboarding (policy permitting), subscriptions, its resale prices, roles.
    PartnerAdmin,
    /// Reads a partner's customers.
    PartnerReader,
    /// Runs a tenant: subscriptions (policy permitting), roles in the tenant.
    TenantAdmin,
    /// Reads a tenant.
    TenantReader,
    /// Automation at the platform: ingests usage, runs billing, reads.
    Service,
}

/// What a command or query needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// See nodes, their attributes, offers.
    ReadChannel,
    /// Onboard, rename, move, suspend organisations; set billing profiles.
    ManageChannel,
    /// Create and change subscriptions.
    ManageSubscriptions,
    /// See price lists and estimates.
    ReadPrices,
    /// Create, assign and change price lists.
    ManagePrices,
    /// Discounts, credits, commission plans, override rates.
    ManageTerms,
    /// See usage.
    ReadUsage,
    /// Ingest usage.
    IngestUsage,
    /// See invoices, statements, showback.
    ReadBilling,
    /// Close periods, issue, void and re-rate documents.
    ManageBilling,
    /// Platform settings: catalogue, taxes, rules, policies, exchange rates.
    ManageSettings,
    /// Assign and revoke roles.
    AssignRoles,
    /// Read and export the audit trail.
    ReadAudit,
    /// Approve another admin's request (four eyes).
    ApproveChanges,
    /// Set and remove budgets.
    ManageBudgets,
    /// Acknowledge and resolve alerts.
    ManageAlerts,
    /// Run scheduled jobs and record their runs and alert evaluations.
    RunJobs,
}

impl Role {
    /// Every role.
    pub const ALL: [Self; 9] = [
        Self::PlatformAdmin,
        Self::PlatformReader,
        Self::DistributorAdmin,
        Self::DistributorReader,
        Self::PartnerAdmin,
        Self::PartnerReader,
        Self::TenantAdmin,
        Self::TenantReader,
        Self::Service,
    ];

    /// The level of node the role is held at.
    pub fn level(self) -> NodeKind {
        match self {
            Self::PlatformAdmin | Self::PlatformReader | Self::Service => NodeKind::Platform,
            Self::DistributorAdmin | Self::DistributorReader => NodeKind::Distributor,
            Self::PartnerAdmin | Self::PartnerReader => NodeKind::Partner,
            Self::TenantAdmin | Self::TenantReader => NodeKind::Tenant,
        }
    }

    /// Whether it is an admin role (may assign roles).
    pub fn is_admin(self) -> bool {
        matches!(self, Self::PlatformAdmin | Self::DistributorAdmin | Self::PartnerAdmin | Self::TenantAdmin)
    }

    /// The permission table.
    pub fn permits(self, action: Action) -> bool {
        use Action as A;
        let read = matches!(action, A::ReadChannel | A::ReadPrices | A::ReadUsage | A::ReadBilling);
        match self {
            Self::PlatformAdmin => true,
            Self::PlatformReader => read || action == A::ReadAudit,
            Self::DistributorAdmin => {
                read || matches!(
                    action,
                    A::ManageChannel
                        | A::ManageSubscriptions
                        | A::ManagePrices
                        | A::ManageTerms
                        | A::ManageBilling
                        | A::AssignRoles
                        | A::ApproveChanges
                        | A::ManageBudgets
                        | A::ManageAlerts
                )
            }
            Self::PartnerAdmin => {
                read || matches!(
                    action,
                    A::ManageChannel
                        | A::ManageSubscriptions
                        | A::ManagePrices
                        | A::AssignRoles
                        | A::ApproveChanges
                        | A::ManageBudgets
                        | A::ManageAlerts
                )
            }
            Self::TenantAdmin => {
                read || matches!(
                    action,
                    A::ManageSubscriptions | A::AssignRoles | A::ManageBudgets | A::ManageAlerts
                )
            }
            Self::DistributorReader | Self::PartnerReader | Self::TenantReader => read,
            Self::Service => {
                read || matches!(action, A::IngestUsage | A::ManageBilling | A::ManageAlerts | A::RunJobs)
            }
        }
    }
}

/// A role held by a principal at a node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoleAssignment {
    /// The principal's id.
    pub principal: String,
    /// The role.
    pub role: Role,
    /// The node it is held at.
    pub node: String,
}

/// Every role assignment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    /// The assignments.
    pub assignments: BTreeSet<RoleAssignment>,
}

/// Not found: the same answer for an object outside the scope and one that does not exist.
pub fn not_found(id: &str) -> CmsError {
    CmsError::UnknownNode { kind: "node".into(), id: id.to_owned(), context: None }
}

impl Roles {
    /// Whether roles are in use (after the first assignment): until then nothing is checked.
    pub fn active(&self) -> bool {
        !self.assignments.is_empty()
    }

    /// The roles `principal` holds at `node` or above it.
    pub fn reaching<'a>(
        &'a self,
        hierarchy: &'a Hierarchy,
        principal: &'a str,
        node: NodeIndex,
    ) -> impl Iterator<Item = Role> + 'a {
        self.assignments
            .iter()
            .filter(move |assignment| {
                assignment.principal == principal
                    && hierarchy.find(&assignment.node).is_some_and(|held| hierarchy.is_within(node, held))
            })
            .map(|assignment| assignment.role)
    }

    /// Check that `principal`, acting at `scope`, may do `action` at each of `targets` (node ids). The
    /// scope must be reached by one of its roles and every target lie in the scope's subtree, else "not
    /// found"; one role reaching the scope must permit the action, else forbidden.
    pub fn authorize(
        &self,
        hierarchy: &Hierarchy,
        principal: &str,
        scope: &str,
        action: Action,
        targets: &[&str],
    ) -> Result<(), CmsError> {
        if !self.active() {
            return Ok(());
        }
        let scope_node = hierarchy.find(scope).ok_or_else(|| not_found(scope))?;
        let held: Vec<Role> = self.reaching(hierarchy, principal, scope_node).collect();
        if held.is_empty() {
            return Err(not_found(scope));
        }
        for target in targets {
            let inside = hierarchy.find(target).is_some_and(|node| hierarchy.is_within(node, scope_node));
            if !inside {
                return Err(not_found(target));
            }
        }
        if held.iter().any(|role| role.permits(action)) {
            Ok(())
        } else {
            Err(CmsError::Forbidden {
                principal: principal.to_owned(),
                action: format!("{action:?}"),
                scope: scope.to_owned(),
            })
        }
    }

    /// Record an assignment (checked by [`Self::check_assignment`] when it was made). The first one must
    /// make someone platform admin at the platform.
    pub fn insert(&mut self, hierarchy: &Hierarchy, assignment: RoleAssignment) -> Result<(), CmsError> {
        let root = &hierarchy.node(hierarchy.root()).id;
        if !self.active() && (assignment.role != Role::PlatformAdmin || &assignment.node != root) {
            return Err(CmsError::InvalidValue {
                at: crate::error::Location::whole("first role assignment"),
                text: format!("{:?} at {}", assignment.role, assignment.node),
                reason: "the first role assigned must be platform admin at the platform".into(),
            });
        }
        let node = hierarchy.find(&assignment.node).ok_or_else(|| not_found(&assignment.node))?;
        if hierarchy.node(node).kind != assignment.role.level() {
            return Err(CmsError::InvalidValue {
                at: crate::error::Location::whole("role assignment"),
                text: format!("{:?} at {}", assignment.role, assignment.node),
                reason: format!("a {:?} is held at a {} node", assignment.role, assignment.role.level()),
            });
        }
        if assignment.principal.trim().is_empty() {
            return Err(CmsError::InvalidValue {
                at: crate::error::Location::whole("role assignment"),
                text: assignment.principal,
                reason: "the principal id must not be empty".into(),
            });
        }
        self.assignments.insert(assignment);
        Ok(())
    }

    /// Remove an assignment; the last platform admin stays.
    pub fn remove(&mut self, hierarchy: &Hierarchy, assignment: &RoleAssignment) -> Result<(), CmsError> {
        if !self.assignments.contains(assignment) {
            return Err(CmsError::UnknownNode {
                kind: "role assignment".into(),
                id: format!("{} {:?} at {}", assignment.principal, assignment.role, assignment.node),
                context: None,
            });
        }
        let root = &hierarchy.node(hierarchy.root()).id;
        let platform_admins = self
            .assignments
            .iter()
            .filter(|held| held.role == Role::PlatformAdmin && &held.node == root)
            .count();
        if assignment.role == Role::PlatformAdmin && platform_admins == 1 {
            return Err(CmsError::InvalidValue {
                at: crate::error::Location::whole("role revocation"),
                text: assignment.principal.clone(),
                reason: "the last platform admin cannot be revoked".into(),
            });
        }
        self.assignments.remove(assignment);
        Ok(())
    }

    /// Whether `principal` acting at `scope` may assign or revoke `assignment`: an admin role reaching the
    /// scope, the assignment's node inside it, the role of that node's level. In setup mode anyone may
    /// make the first platform admin.
    pub fn check_assignment(
        &self,
        hierarchy: &Hierarchy,
        principal: &str,
        scope: &str,
        assignment: &RoleAssignment,
    ) -> Result<(), CmsError> {
        if !self.active() {
            return Ok(());
        }
        self.authorize(hierarchy, principal, scope, Action::AssignRoles, &[&assignment.node])?;
        self.check_level(hierarchy, principal, scope, assignment)
    }

    /// The role must be of the node's level, and (for platform roles) the assigner a platform admin.
    fn check_level(
        &self,
        hierarchy: &Hierarchy,
        principal: &str,
        scope: &str,
        assignment: &RoleAssignment,
    ) -> Result<(), CmsError> {
        let node = hierarchy.find(&assignment.node).ok_or_else(|| not_found(&assignment.node))?;
        if hierarchy.node(node).kind != assignment.role.level() {
            return Err(CmsError::InvalidValue {
                at: crate::error::Location::whole("role assignment"),
                text: format!("{:?} at {}", assignment.role, assignment.node),
                reason: format!("a {:?} is held at a {} node", assignment.role, assignment.role.level()),
            });
        }
        let scope_node = hierarchy.find(scope).ok_or_else(|| not_found(scope))?;
        let assigner_is_admin_there = self.reaching(hierarchy, principal, scope_node).any(Role::is_admin);
        if !assigner_is_admin_there {
            return Err(CmsError::Forbidden {
                principal: principal.to_owned(),
                action: "AssignRoles".into(),
                scope: scope.to_owned(),
            });
        }
        Ok(())
    }
}
