//! What the channel knows about its organisations and subscriptions beyond the tree: organisation status,
//! subscription attributes and billing relationships.
//!
//! [`Hierarchy`] stays about the shape of the tree (nodes, parents, moves, labels); [`ChannelAttributes`]
//! is a side store keyed by node id that reads the tree when a rule needs it (an ancestor's status, the
//! nearest reseller). Keeping them apart lets the engine record each kind of change as its own event and
//! lets the hot rating path hold a tree without attribute tables.
//!
//! # Organisation status
//! A distributor, partner or tenant is [`OrganisationStatus::Active`] or [`OrganisationStatus::Suspended`].
//! Status changes are dated and kept (per organisation, in time order). An organisation counts as
//! suspended at an instant when it, or any of its ancestors at that instant, is suspended: nothing can be
//! onboarded below it ([`ChannelAttributes::check_can_onboard_under`]).
//!
//! # Subscriptions
//! A subscription carries a [`SubscriptionInfo`]: its offer, its Azure Stack Hub state, the external ids it
//! is known by (Azure Stack Hub subscription GUIDs, compared ignoring ASCII case, each belonging to at most
//! one subscription) and its region. The state follows Azure Stack Hub; [`SubscriptionState::can_become`]
//! is the transition graph, and `Deleted` is final. That an offer exists and takes new subscriptions is the
//! catalogue's rule ([`crate::model::catalogue::Catalogue::check_subscribable`]); the engine checks both.
//!
//! # Billing relationships
//! Each distributor and partner is in one of two relationships with the level above it:
//! - [`Relationship::Resale`]: it buys from the level above and invoices the level below at its own
//!   prices. The seller above invoices *it*; it invoices its own customers.
//! - [`Relationship::Agency`] (the default): it sells on behalf of the level above. The platform, or the
//!   nearest reseller above it, invoices the tenants directly, and the agent earns commission.
//!
//! So the issuer of a buyer's invoice is the nearest reseller above the buyer, else the platform
//! ([`ChannelAttributes::issuer_of`]), and the usage of one subscription is invoiced once per reseller on
//! its way up plus once to its tenant ([`ChannelAttributes::billing_chain`]). Tenants buy and never resell;
//! the platform heads every chain. Both resolutions read the tree at an instant, so a tenant that moves
//! from an agent to a reseller is billed by the platform before the move and by the reseller after it.
//!
//! `bill_to` names the node that receives an organisation's invoices: itself by default, or one of its
//! ancestors (a partner that pays for a tenant it manages). A currency set on an organisation applies to
//! everything below it that sets none.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{CmsError, Location};
use crate::model::hierarchy::{Hierarchy, NodeIndex, NodeKind};
use crate::model::money::Currency;
use crate::model::time::Instant;

/// Whether an organisation may trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrganisationStatus {
    /// Trading normally.
    #[default]
    Active,
    /// Suspended by the level above: nothing new can be onboarded below it.
    Suspended,
}

impl OrganisationStatus {
    /// The lower-case name used in files and APIs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
        }
    }
}

impl fmt::Display for OrganisationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An organisation's status from an instant on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChange {
    /// When the status takes effect.
    pub effective: Instant,
    /// The status from then on.
    pub status: OrganisationStatus,
}

/// The state of an Azure Stack Hub subscription.
///
/// Allowed transitions (any other, and staying in the same state, is refused):
///
/// | from        | to                                                  |
/// |-------------|-----------------------------------------------------|
/// | `Enabled`   | `Warned`, `PastDue`, `Suspended`, `Disabled`, `Deleted` |
/// | `Warned`    | `Enabled`, `PastDue`, `Suspended`, `Disabled`, `Deleted` |
/// | `PastDue`   | `Enabled`, `Warned`, `Suspended`, `Disabled`, `Deleted` |
/// | `Suspended` | `Enabled`, `Disabled`, `Deleted`                    |
/// | `Disabled`  | `Enabled`, `Deleted`                                |
/// | `Deleted`   | nothing: deletion is final                          |
///
/// The three trading states (`Enabled`, `Warned`, `PastDue`) move freely among themselves; a suspended
/// subscription is reinstated (back to `Enabled`) before it can be warned again; a disabled one is only
/// re-enabled or deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionState {
    /// In use.
    #[default]
    Enabled,
    /// In use, with a warning (payment or policy) outstanding.
    Warned,
    /// In use, with a payment overdue.
    PastDue,
    /// Stopped by the operator; can be reinstated.
    Suspended,
    /// Disabled; resources are deallocated, data kept, can be re-enabled.
    Disabled,
    /// Deleted; final.
    Deleted,
}

impl SubscriptionState {
    /// Every state, in the order of the transition table.
    pub const ALL: [Self; 6] =
        [Self::Enabled, Self::Warned, Self::PastDue, Self::Suspended, Self::Disabled, Self::Deleted];

    /// The snake_case name used in files and APIs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Warned => "warned",
            Self::PastDue => "past_due",
            Self::Suspended => "suspended",
            Self::Disabled => "disabled",
            Self::Deleted => "deleted",
        }
    }

    /// Whether a subscription in this state may move to `next` (see the table on the type).
    pub const fn can_become(self, next: Self) -> bool {
        use SubscriptionState::{Deleted, Disabled, Enabled, PastDue, Suspended, Warned};
        match self {
            Enabled => matches!(next, Warned | PastDue | Suspended | Disabled | Deleted),
            Warned => matches!(next, Enabled | PastDue | Suspended | Disabled | Deleted),
            PastDue => matches!(next, Enabled | Warned | Suspended | Disabled | Deleted),
            Suspended => matches!(next, Enabled | Disabled | Deleted),
            Disabled => matches!(next, Enabled | Deleted),
            Deleted => false,
        }
    }

    /// Whether no transition leaves this state.
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Deleted)
    }
}

impl FromStr for SubscriptionState {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        Self::ALL
            .into_iter()
            .find(|state| {
                state.as_str().eq_ignore_ascii_case(wanted)
                    || state.as_str().replace('_', "").eq_ignore_ascii_case(wanted)
            })
            .ok_or_else(|| {
                format!(
                    "unknown subscription state {text:?} (expected enabled, warned, past_due, suspended, disabled or deleted)"
                )
            })
    }
}

impl fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the channel knows of a subscription besides its place in the tree.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    /// The offer it was created from (an id of the catalogue), if any.
    #[serde(default)]
    pub offer: Option<String>,
    /// Its Azure Stack Hub state.
    #[serde(default)]
    pub state: SubscriptionState,
    /// Other ids it is known by: Azure Stack Hub subscription GUIDs, compared ignoring ASCII case.
    #[serde(default)]
    pub external_ids: Vec<String>,
    /// The Azure Stack Hub region it lives in, if known.
    #[serde(default)]
    pub region: Option<String>,
}

/// How an organisation trades with the level above it (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    /// Buys from the level above and invoices the level below at its own prices.
    Resale,
    /// Sells on behalf of the level above, which invoices the tenants; earns commission.
    #[default]
    Agency,
}

/// The default payment terms, in days.
pub const DEFAULT_PAYMENT_TERMS_DAYS: u32 = 30;

/// The longest payment terms accepted, in days (a longer value is taken for a typo).
pub const MAX_PAYMENT_TERMS_DAYS: u32 = 365;

fn default_payment_terms_days() -> u32 {
    DEFAULT_PAYMENT_TERMS_DAYS
}

/// How an organisation is billed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingProfile {
    /// Resale or agency; only distributors and partners may resell.
    #[serde(default)]
    pub relationship: Relationship,
    /// The node that receives this organisation's invoices: itself (`None`) or one of its ancestors.
    #[serde(default)]
    pub bill_to: Option<String>,
    /// The currency it is invoiced in; `None` inherits the nearest ancestor's.
    #[serde(default)]
    pub currency: Option<Currency>,
    /// Days between issue and due date.
    #[serde(default = "default_payment_terms_days")]
    pub payment_terms_days: u32,
    /// The tax jurisdiction it is invoiced in (tax rules name it); `None` inherits the nearest ancestor's.
    #[serde(default)]
    pub jurisdiction: Option<String>,
}

impl Default for BillingProfile {
    fn default() -> Self {
        Self {
            relationship: Relationship::Agency,
            bill_to: None,
            currency: None,
            payment_terms_days: DEFAULT_PAYMENT_TERMS_DAYS,
            jurisdiction: None,
        }
    }
}

/// Organisation statuses, subscription attributes and billing profiles, keyed by node id.
///
/// Every change goes through a `check_*` function (validate only, for the engine's command check) and a
/// mutator that runs the same check. Deserialising checks what can be checked without the tree (status
/// histories in time order, external ids unique); the rest was checked when each change was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "AttributeTables")]
pub struct ChannelAttributes {
    /// Organisation id -> status changes, in time order.
    statuses: BTreeMap<String, Vec<StatusChange>>,
    /// Subscription id -> attributes.
    subscriptions: BTreeMap<String, SubscriptionInfo>,
    /// Organisation id -> billing profile.
    billing: BTreeMap<String, BillingProfile>,
    /// External id folded to lower case -> subscription id; derived from `subscriptions`.
    #[serde(skip)]
    external: HashMap<String, String>,
}

/// The serialised form of [`ChannelAttributes`] (without the derived external-id index).
#[derive(Deserialize)]
struct AttributeTables {
    #[serde(default)]
    statuses: BTreeMap<String, Vec<StatusChange>>,
    #[serde(default)]
    subscriptions: BTreeMap<String, SubscriptionInfo>,
    #[serde(default)]
    billing: BTreeMap<String, BillingProfile>,
}

impl TryFrom<AttributeTables> for ChannelAttributes {
    type Error = CmsError;

    fn try_from(tables: AttributeTables) -> Result<Self, Self::Error> {
        for (id, changes) in &tables.statuses {
            let mut previous: Option<&StatusChange> = None;
            for change in changes {
                let status = previous.map_or(OrganisationStatus::Active, |previous| previous.status);
                if previous.is_some_and(|previous| change.effective <= previous.effective)
                    || change.status == status
                {
                    return Err(invalid(
                        id,
                        "status",
                        change.status.as_str(),
                        "status changes must be in time order, each changing the status",
                    ));
                }
                previous = Some(change);
            }
        }
        let mut external = HashMap::new();
        for (id, info) in &tables.subscriptions {
            for external_id in &info.external_ids {
                if let Some(owner) = external.insert(external_id.to_ascii_lowercase(), id.clone()) {
                    return Err(invalid(
                        id,
                        "external_ids",
                        external_id,
                        &format!("also listed by subscription {owner}"),
                    ));
                }
            }
        }
        Ok(Self {
            statuses: tables.statuses,
            subscriptions: tables.subscriptions,
            billing: tables.billing,
            external,
        })
    }
}

/// An invalid attribute of a node.
fn invalid(id: &str, field: &str, text: &str, reason: &str) -> CmsError {
    CmsError::InvalidValue {
        at: Location::field(format!("node {id}"), field),
        text: text.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Whether an id is usable: not empty, no surrounding white space.
fn is_clean(text: &str) -> bool {
    !text.is_empty() && text.trim() == text
}

impl ChannelAttributes {
    /// An empty store: every organisation active and agency-billed, no subscription attributes.
    pub fn new() -> Self {
        Self::default()
    }

    // ---- organisation status -------------------------------------------------------------------

    /// Check that [`Self::suspend`] (`Suspended`) or [`Self::reenable`] (`Active`) would accept the change,
    /// without making it; returns the organisation's index.
    ///
    /// Only distributors, partners and tenants have a status; the status must change; changes of one
    /// organisation come in time order (each after its previous one).
    pub fn check_status_change(
        &self,
        hierarchy: &Hierarchy,
        id: &str,
        status: OrganisationStatus,
        at: Instant,
    ) -> Result<NodeIndex, CmsError> {
        let node = hierarchy.find(id).ok_or_else(|| CmsError::UnknownNode {
            kind: "organisation".into(),
            id: id.to_owned(),
            context: None,
        })?;
        let kind = hierarchy.node(node).kind;
        if !matches!(kind, NodeKind::Distributor | NodeKind::Partner | NodeKind::Tenant) {
            return Err(invalid(
                id,
                "status",
                status.as_str(),
                &format!(
                    "only distributors, partners and tenants are suspended or re-enabled; {id} is a {kind}"
                ),
            ));
        }
        let history = self.status_history(id);
        if let Some(last) = history.last()
            && at <= last.effective
        {
            return Err(invalid(
                id,
                "status",
                &at.to_rfc3339(),
                &format!(
                    "status changes come in time order; the last one is at {}",
                    last.effective.to_rfc3339()
                ),
            ));
        }
        let current = history.last().map_or(OrganisationStatus::Active, |last| last.status);
        if current == status {
            return Err(invalid(id, "status", status.as_str(), &format!("{id} is already {status}")));
        }
        Ok(node)
    }

    /// Suspend an organisation from `at` on: nothing can be onboarded below it while it is suspended.
    pub fn suspend(&mut self, hierarchy: &Hierarchy, id: &str, at: Instant) -> Result<(), CmsError> {
        self.change_status(hierarchy, id, OrganisationStatus::Suspended, at)
    }

    /// Re-enable a suspended organisation from `at` on.
    pub fn reenable(&mut self, hierarchy: &Hierarchy, id: &str, at: Instant) -> Result<(), CmsError> {
        self.change_status(hierarchy, id, OrganisationStatus::Active, at)
    }

    fn change_status(
        &mut self,
        hierarchy: &Hierarchy,
        id: &str,
        status: OrganisationStatus,
        at: Instant,
    ) -> Result<(), CmsError> {
        self.check_status_change(hierarchy, id, status, at)?;
        self.statuses.entry(id.to_owned()).or_default().push(StatusChange { effective: at, status });
        Ok(())
    }

    /// An organisation's status changes, in time order (empty: active all along).
    pub fn status_history(&self, id: &str) -> &[StatusChange] {
        self.statuses.get(id).map_or(&[], Vec::as_slice)
    }

    /// An organisation's own status at `at` (ancestors not considered); active before any change.
    pub fn status_at(&self, id: &str, at: Instant) -> OrganisationStatus {
        let history = self.status_history(id);
        let applied = history.partition_point(|change| change.effective <= at);
        applied.checked_sub(1).map_or(OrganisationStatus::Active, |last| history[last].status)
    }

    /// The nearest node at or above `node` (in the tree as of `at`) that is suspended at `at`.
    pub fn suspended_ancestor_at(
        &self,
        hierarchy: &Hierarchy,
        node: NodeIndex,
        at: Instant,
    ) -> Option<NodeIndex> {
        if self.statuses.is_empty() {
            return None;
        }
        hierarchy
            .ancestry_at(node, at)
            .find(|&current| self.status_at(&hierarchy.node(current).id, at) == OrganisationStatus::Suspended)
    }

    /// Whether `node`, or any of its ancestors as of `at`, is suspended at `at`.
    pub fn is_suspended_at(&self, hierarchy: &Hierarchy, node: NodeIndex, at: Instant) -> bool {
        self.suspended_ancestor_at(hierarchy, node, at).is_some()
    }

    /// Check that a new child may be onboarded (added, or moved in) under `parent` at `at`: the parent
    /// exists and neither it nor an ancestor is suspended. Returns the parent's index.
    pub fn check_can_onboard_under(
        &self,
        hierarchy: &Hierarchy,
        parent: &str,
        at: Instant,
    ) -> Result<NodeIndex, CmsError> {
        let node = hierarchy.find(parent).ok_or_else(|| CmsError::UnknownNode {
            kind: "parent".into(),
            id: parent.to_owned(),
            context: None,
        })?;
        match self.suspended_ancestor_at(hierarchy, node, at) {
            None => Ok(node),
            Some(suspended) => Err(CmsError::InvalidHierarchy {
                id: parent.to_owned(),
                reason: format!(
                    "nothing can be onboarded under it: {} is suspended at {}",
                    hierarchy.node(suspended).id,
                    at.to_rfc3339()
                ),
                context: None,
            }),
        }
    }

    // ---- subscriptions --------------------------------------------------------------------------

    /// Check that [`Self::put_subscription`] would accept these attributes, without storing them; returns
    /// the subscription's index.
    ///
    /// The node must be a subscription. When it already has attributes, a changed state must be an allowed
    /// transition ([`SubscriptionState::can_become`]) and a deleted subscription changes no more. External
    /// ids must be non-empty, listed once, and neither claimed by another subscription nor equal to another
    /// subscription's id (all ignoring ASCII case). Offer and region, when set, must not be empty.
    pub fn check_subscription(
        &self,
        hierarchy: &Hierarchy,
        id: &str,
        info: &SubscriptionInfo,
    ) -> Result<NodeIndex, CmsError> {
        let node = hierarchy.expect_kind(id, NodeKind::Subscription)?;
        if let Some(existing) = self.subscriptions.get(id) {
            if existing.state.is_final() && existing != info {
                return Err(invalid(
                    id,
                    "state",
                    existing.state.as_str(),
                    "a deleted subscription does not change",
                ));
            }
            if existing.state != info.state && !existing.state.can_become(info.state) {
                return Err(invalid(
                    id,
                    "state",
                    info.state.as_str(),
                    &format!("a {} subscription cannot become {}", existing.state, info.state),
                ));
            }
        }
        if info.offer.as_deref().is_some_and(|offer| !is_clean(offer)) {
            return Err(invalid(
                id,
                "offer",
                info.offer.as_deref().unwrap_or_default(),
                "an offer id is not empty",
            ));
        }
        if info.region.as_deref().is_some_and(|region| !is_clean(region)) {
            return Err(invalid(
                id,
                "region",
                info.region.as_deref().unwrap_or_default(),
                "a region name is not empty",
            ));
        }
        let mut seen: Vec<String> = Vec::with_capacity(info.external_ids.len());
        for external_id in &info.external_ids {
            if !is_clean(external_id) {
                return Err(invalid(id, "external_ids", external_id, "an external id is not empty"));
            }
            let folded = external_id.to_ascii_lowercase();
            if seen.contains(&folded) {
                return Err(invalid(id, "external_ids", external_id, "listed twice"));
            }
            if let Some(owner) = self.external.get(&folded).filter(|owner| *owner != id) {
                return Err(invalid(
                    id,
                    "external_ids",
                    external_id,
                    &format!("already belongs to subscription {owner}"),
                ));
            }
            if let Some(other) = hierarchy
                .find_ignoring_case(external_id)
                .filter(|&other| other != node && hierarchy.node(other).kind == NodeKind::Subscription)
            {
                return Err(invalid(
                    id,
                    "external_ids",
                    external_id,
                    &format!("is the id of subscription {}", hierarchy.node(other).id),
                ));
            }
            seen.push(folded);
        }
        Ok(node)
    }

    /// Store (or replace) a subscription's attributes, after [`Self::check_subscription`].
    pub fn put_subscription(
        &mut self,
        hierarchy: &Hierarchy,
        id: &str,
        info: SubscriptionInfo,
    ) -> Result<(), CmsError> {
        self.check_subscription(hierarchy, id, &info)?;
        if let Some(previous) = self.subscriptions.get(id) {
            for external_id in &previous.external_ids {
                self.external.remove(&external_id.to_ascii_lowercase());
            }
        }
        for external_id in &info.external_ids {
            self.external.insert(external_id.to_ascii_lowercase(), id.to_owned());
        }
        self.subscriptions.insert(id.to_owned(), info);
        Ok(())
    }

    /// Move a subscription to another state (see [`SubscriptionState::can_become`]). A subscription without
    /// attributes counts as enabled.
    pub fn set_subscription_state(
        &mut self,
        hierarchy: &Hierarchy,
        id: &str,
        state: SubscriptionState,
    ) -> Result<(), CmsError> {
        let mut info = self.subscriptions.get(id).cloned().unwrap_or_default();
        if info.state == state {
            return Err(invalid(id, "state", state.as_str(), &format!("{id} is already {state}")));
        }
        info.state = state;
        self.put_subscription(hierarchy, id, info)
    }

    /// A subscription's attributes, if any were stored.
    pub fn subscription(&self, id: &str) -> Option<&SubscriptionInfo> {
        self.subscriptions.get(id)
    }

    /// A subscription's state: as stored, else enabled.
    pub fn subscription_state(&self, id: &str) -> SubscriptionState {
        self.subscriptions.get(id).map_or(SubscriptionState::Enabled, |info| info.state)
    }

    /// Every subscription with attributes, by id.
    pub fn subscriptions(&self) -> &BTreeMap<String, SubscriptionInfo> {
        &self.subscriptions
    }

    /// The id of the subscription known as `id`, ignoring ASCII case: a subscription node whose id it is
    /// (that wins), else the subscription that lists it among its external ids.
    pub fn find_subscription_by_external<'a>(
        &'a self,
        hierarchy: &'a Hierarchy,
        id: &str,
    ) -> Option<&'a str> {
        if let Some(node) = hierarchy
            .find_ignoring_case(id)
            .filter(|&node| hierarchy.node(node).kind == NodeKind::Subscription)
        {
            return Some(hierarchy.node(node).id.as_str());
        }
        if self.external.is_empty() {
            return None;
        }
        self.external.get(&id.to_ascii_lowercase()).map(String::as_str)
    }

    // ---- billing relationships -------------------------------------------------------------------

    /// Check that [`Self::set_billing_profile`] would accept a profile, without storing it; returns the
    /// organisation's index.
    ///
    /// Subscriptions have no profile (they are billed through their tenant). Only distributors and partners
    /// resell. `bill_to` must be the organisation itself or one of its ancestors in the latest structure.
    /// Payment terms are at most [`MAX_PAYMENT_TERMS_DAYS`].
    pub fn check_billing_profile(
        &self,
        hierarchy: &Hierarchy,
        id: &str,
        profile: &BillingProfile,
    ) -> Result<NodeIndex, CmsError> {
        let node = hierarchy.find(id).ok_or_else(|| CmsError::UnknownNode {
            kind: "organisation".into(),
            id: id.to_owned(),
            context: None,
        })?;
        let kind = hierarchy.node(node).kind;
        if kind == NodeKind::Subscription {
            return Err(invalid(id, "billing", id, "a subscription is billed through its tenant"));
        }
        if profile.relationship == Relationship::Resale
            && !matches!(kind, NodeKind::Distributor | NodeKind::Partner)
        {
            return Err(invalid(
                id,
                "relationship",
                "resale",
                &format!("only distributors and partners resell; {id} is a {kind}"),
            ));
        }
        if let Some(bill_to) = &profile.bill_to {
            let target = hierarchy.find(bill_to).ok_or_else(|| CmsError::UnknownNode {
                kind: "bill-to node".into(),
                id: bill_to.clone(),
                context: Some(Location::field(format!("node {id}"), "bill_to")),
            })?;
            if !hierarchy.is_within(node, target) {
                return Err(invalid(
                    id,
                    "bill_to",
                    bill_to,
                    &format!("invoices go to {id} itself or one of its ancestors"),
                ));
            }
        }
        if profile.payment_terms_days > MAX_PAYMENT_TERMS_DAYS {
            return Err(invalid(
                id,
                "payment_terms_days",
                &profile.payment_terms_days.to_string(),
                &format!("at most {MAX_PAYMENT_TERMS_DAYS} days"),
            ));
        }
        Ok(node)
    }

    /// Set (or replace) an organisation's billing profile, after [`Self::check_billing_profile`].
    pub fn set_billing_profile(
        &mut self,
        hierarchy: &Hierarchy,
        id: &str,
        profile: BillingProfile,
    ) -> Result<(), CmsError> {
        self.check_billing_profile(hierarchy, id, &profile)?;
        self.billing.insert(id.to_owned(), profile);
        Ok(())
    }

    /// An organisation's own billing profile, if one was set.
    pub fn billing_profile(&self, id: &str) -> Option<&BillingProfile> {
        self.billing.get(id)
    }

    /// An organisation's relationship: its profile's for a distributor or partner, agency otherwise.
    pub fn relationship_of(&self, hierarchy: &Hierarchy, node: NodeIndex) -> Relationship {
        let node = hierarchy.node(node);
        if !matches!(node.kind, NodeKind::Distributor | NodeKind::Partner) {
            return Relationship::Agency;
        }
        self.billing.get(&node.id).map_or(Relationship::Agency, |profile| profile.relationship)
    }

    /// An organisation's payment terms in days: its profile's, else [`DEFAULT_PAYMENT_TERMS_DAYS`].
    pub fn payment_terms_days(&self, id: &str) -> u32 {
        self.billing.get(id).map_or(DEFAULT_PAYMENT_TERMS_DAYS, |profile| profile.payment_terms_days)
    }

    /// Who invoices `buyer` at `at`: the nearest reseller strictly above it in the tree as of `at`, else
    /// the platform (also for the platform itself, which heads every chain).
    pub fn issuer_of(&self, hierarchy: &Hierarchy, buyer: NodeIndex, at: Instant) -> NodeIndex {
        if self.billing.is_empty() {
            return hierarchy.root();
        }
        hierarchy
            .ancestry_at(buyer, at)
            .skip(1)
            .find(|&above| self.relationship_of(hierarchy, above) == Relationship::Resale)
            .unwrap_or_else(|| hierarchy.root())
    }

    /// The buyers, top-down, that receive an invoice for the usage of `subscription` at `at`: every
    /// reseller above it, then the organisation that owns it (its tenant). The first is invoiced by the
    /// platform and each next one by the one before it. For an all-agency channel that is just the tenant;
    /// with a reseller partner P under an agency distributor, `[P, tenant]`; with reseller distributor D
    /// and reseller partner P, `[D, P, tenant]`. Empty when the platform itself owns the subscription.
    ///
    /// Given an organisation instead of a subscription, the chain ends at that organisation.
    pub fn billing_chain(
        &self,
        hierarchy: &Hierarchy,
        subscription: NodeIndex,
        at: Instant,
    ) -> Vec<NodeIndex> {
        let root = hierarchy.root();
        let Some(owner) = hierarchy
            .ancestry_at(subscription, at)
            .find(|&node| hierarchy.node(node).kind != NodeKind::Subscription)
        else {
            return Vec::new();
        };
        let mut chain = Vec::new();
        let mut buyer = owner;
        while buyer != root {
            chain.push(buyer);
            buyer = self.issuer_of(hierarchy, buyer, at);
        }
        chain.reverse();
        chain
    }

    /// The node that receives `buyer`'s invoices at `at`: its `bill_to` when that is still one of its
    /// ancestors as of `at` (a move can take it out of that branch), else the buyer itself.
    pub fn invoice_recipient(&self, hierarchy: &Hierarchy, buyer: NodeIndex, at: Instant) -> NodeIndex {
        self.billing
            .get(&hierarchy.node(buyer).id)
            .and_then(|profile| profile.bill_to.as_deref())
            .and_then(|bill_to| hierarchy.find(bill_to))
            .filter(|&target| hierarchy.is_in_subtree_at(buyer, target, at))
            .unwrap_or(buyer)
    }

    /// The tax jurisdiction of `node` at `at`: its own, else the nearest ancestor's, else `None`.
    pub fn jurisdiction_of(&self, hierarchy: &Hierarchy, node: NodeIndex, at: Instant) -> Option<&str> {
        hierarchy.ancestry_at(node, at).find_map(|current| {
            self.billing.get(&hierarchy.node(current).id).and_then(|profile| profile.jurisdiction.as_deref())
        })
    }

    /// The currency `node` is invoiced in at `at`: its own, else the nearest ancestor's as of `at`, else
    /// `None` (the caller then uses the price list's).
    pub fn currency_of(&self, hierarchy: &Hierarchy, node: NodeIndex, at: Instant) -> Option<Currency> {
        if self.billing.is_empty() {
            return None;
        }
        hierarchy.ancestry_at(node, at).find_map(|current| {
            self.billing.get(&hierarchy.node(current).id).and_then(|profile| profile.currency)
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(hour: i64) -> Instant {
        chrono::Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap() + chrono::Duration::hours(hour)
    }

    fn channel() -> Hierarchy {
        let mut tree = Hierarchy::new("platform", "Operator");
        tree.add("dist", NodeKind::Distributor, None, "Northwind", None).unwrap();
        tree.add("p1", NodeKind::Partner, Some("dist"), "Contoso", None).unwrap();
        tree.add("t1", NodeKind::Tenant, Some("p1"), "Tenant one", None).unwrap();
        tree.add("s1", NodeKind::Subscription, Some("t1"), "Prod", None).unwrap();
        tree.add("s2", NodeKind::Subscription, Some("t1"), "Test", None).unwrap();
        tree
    }

    #[test]
    fn subscription_state_transition_table() {
        use SubscriptionState::{Deleted, Disabled, Enabled, PastDue, Suspended, Warned};
        // Rows: from; columns: to, in the order of ALL.
        let table = [
            (Enabled, [false, true, true, true, true, true]),
            (Warned, [true, false, true, true, true, true]),
            (PastDue, [true, true, false, true, true, true]),
            (Suspended, [true, false, false, false, true, true]),
            (Disabled, [true, false, false, false, false, true]),
            (Deleted, [false, false, false, false, false, false]),
        ];
        for (from, row) in table {
            for (to, allowed) in SubscriptionState::ALL.into_iter().zip(row) {
                assert_eq!(from.can_become(to), allowed, "{from} -> {to}");
            }
        }
        for state in SubscriptionState::ALL {
            assert_eq!(state.as_str().parse::<SubscriptionState>(), Ok(state));
            assert_eq!(serde_json::to_string(&state).unwrap(), format!("\"{state}\""));
        }
        assert_eq!("PastDue".parse::<SubscriptionState>(), Ok(PastDue));
        assert!("gone".parse::<SubscriptionState>().is_err());
    }

    #[test]
    fn status_history_is_dated() {
        let tree = channel();
        let mut attributes = ChannelAttributes::new();
        attributes.suspend(&tree, "p1", at(10)).unwrap();
        attributes.reenable(&tree, "p1", at(20)).unwrap();
        let s1 = tree.find("s1").unwrap();
        assert!(!attributes.is_suspended_at(&tree, s1, at(9)));
        assert!(attributes.is_suspended_at(&tree, s1, at(10)));
        assert!(!attributes.is_suspended_at(&tree, tree.find("dist").unwrap(), at(10)));
        assert!(!attributes.is_suspended_at(&tree, s1, at(20)));
        assert_eq!(attributes.status_at("p1", at(15)), OrganisationStatus::Suspended);
        assert_eq!(attributes.status_history("p1").len(), 2);
        let refused = [
            ("p1", OrganisationStatus::Active, at(30), "invalid_value"), // already active
            ("p1", OrganisationStatus::Suspended, at(20), "invalid_value"), // not after the last change
            ("s1", OrganisationStatus::Suspended, at(30), "invalid_value"), // subscriptions have states
            ("platform", OrganisationStatus::Suspended, at(30), "invalid_value"),
            ("nope", OrganisationStatus::Suspended, at(30), "unknown_node"),
        ];
        for (id, status, when, code) in refused {
            assert_eq!(
                attributes.check_status_change(&tree, id, status, when).unwrap_err().code(),
                code,
                "{id}"
            );
        }
        assert_eq!(attributes.status_history("p1").len(), 2);
    }

    #[test]
    fn serde_round_trip_rebuilds_the_external_index() {
        let tree = channel();
        let mut attributes = ChannelAttributes::new();
        attributes.suspend(&tree, "t1", at(1)).unwrap();
        let info = SubscriptionInfo {
            offer: Some("gold".into()),
            state: SubscriptionState::Warned,
            external_ids: vec!["AAAA-1".into()],
            region: Some("local".into()),
        };
        attributes.put_subscription(&tree, "s1", info).unwrap();
        attributes
            .set_billing_profile(
                &tree,
                "p1",
                BillingProfile { relationship: Relationship::Resale, ..Default::default() },
            )
            .unwrap();
        let json = serde_json::to_string(&attributes).unwrap();
        let back: ChannelAttributes = serde_json::from_str(&json).unwrap();
        assert_eq!(back, attributes);
        assert_eq!(back.find_subscription_by_external(&tree, "aaaa-1"), Some("s1"));
        // A hand-edited document that lists one external id twice is refused.
        let broken = r#"{"subscriptions":{"s1":{"external_ids":["x"]},"s2":{"external_ids":["X"]}}}"#;
        assert!(serde_json::from_str::<ChannelAttributes>(broken).is_err());
        let unordered = r#"{"statuses":{"p1":[{"effective":"2026-10-01T00:00:00Z","status":"active"}]}}"#;
        assert!(serde_json::from_str::<ChannelAttributes>(unordered).is_err());
        let defaults: BillingProfile = serde_json::from_str("{}").unwrap();
        assert_eq!(defaults, BillingProfile::default());
        assert_eq!(defaults.payment_terms_days, 30);
    }
}
