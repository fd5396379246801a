//! What the operator sells: services (groups of meters), plans (services and quotas) and offers (a base
//! plan with add-on plans), in the shape of Azure Stack Hub's plans and offers.
//!
//! - A [`Service`] groups meters, the way a price list's SKUs group them ("compute", "storage").
//!   [`Catalogue::default_services`] groups the compiled meter catalogue by category.
//! - A [`Plan`] makes services available and sets quotas ("vcpus": 100). A plan without services is
//!   allowed: an add-on plan often only raises quotas.
//! - An [`Offer`] bundles a base plan with add-on plans. Its meters are those of all its plans' services;
//!   its quotas are the base plan's plus every add-on's (add-ons add to the base).
//!
//! Offer states: `Private` and `Public` switch freely; either may become `Decommissioned`, which is
//! final. New subscriptions take a public offer, or a private one when the operator creates them; a
//! decommissioned offer takes no new subscriptions, but the subscriptions already on it keep working (the
//! catalogue keeps it and its plans).
//!
//! Everything is added or replaced through `put_*`, which runs the matching `check_*` first; nothing is
//! removed, so a reference that was valid stays valid. Deserialising checks the whole catalogue.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CmsError, Location};
use crate::model::meter::{Category, MeterId, catalogue as meter_catalogue};

/// A group of meters sold together (a SKU family).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Stable id ("compute").
    pub id: String,
    /// Display name.
    pub name: String,
    /// The meters it covers; at least one.
    pub meters: BTreeSet<MeterId>,
}

/// Services made available together, with quotas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Ids of the services it makes available, each once.
    #[serde(default)]
    pub services: Vec<String>,
    /// Quota name (`vcpus`, `storage_gb`) -> limit; never negative.
    #[serde(default)]
    pub quotas: BTreeMap<String, Decimal>,
}

/// Who may subscribe to an offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferState {
    /// Only the operator creates subscriptions on it.
    #[default]
    Private,
    /// Anyone allowed to create subscriptions may pick it.
    Public,
    /// No new subscriptions; existing ones keep working. Final.
    Decommissioned,
}

impl OfferState {
    /// The snake_case name used in files and APIs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Public => "public",
            Self::Decommissioned => "decommissioned",
        }
    }

    /// Whether an offer in this state may move to `next`: private and public switch, either may be
    /// decommissioned, and nothing leaves decommissioned (staying put is not a transition).
    pub const fn can_become(self, next: Self) -> bool {
        matches!(
            (self, next),
            (Self::Private, Self::Public | Self::Decommissioned)
                | (Self::Public, Self::Private | Self::Decommissioned)
        )
    }
}

impl fmt::Display for OfferState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A base plan and add-on plans that subscriptions are created from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The plan every subscription on the offer gets.
    pub base_plan: String,
    /// Plans that add services and quotas; none is the base plan, none repeats.
    #[serde(default)]
    pub addon_plans: Vec<String>,
    /// Who may subscribe.
    #[serde(default)]
    pub state: OfferState,
}

impl Offer {
    /// The base plan, then the add-ons.
    pub fn plan_ids(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.base_plan.as_str()).chain(self.addon_plans.iter().map(String::as_str))
    }
}

/// Services, plans and offers by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "CatalogueTables")]
pub struct Catalogue {
    services: BTreeMap<String, Service>,
    plans: BTreeMap<String, Plan>,
    offers: BTreeMap<String, Offer>,
}

/// The serialised form of [`Catalogue`], checked on the way in.
#[derive(Deserialize)]
struct CatalogueTables {
    #[serde(default)]
    services: BTreeMap<String, Service>,
    #[serde(default)]
    plans: BTreeMap<String, Plan>,
    #[serde(default)]
    offers: BTreeMap<String, Offer>,
}

impl TryFrom<CatalogueTables> for Catalogue {
    type Error = CmsError;

    fn try_from(tables: CatalogueTables) -> Result<Self, Self::Error> {
        let mut catalogue = Self::new();
        for (key, service) in tables.services {
            check_key("service", &key, &service.id)?;
            catalogue.put_service(service)?;
        }
        for (key, plan) in tables.plans {
            check_key("plan", &key, &plan.id)?;
            catalogue.put_plan(plan)?;
        }
        for (key, offer) in tables.offers {
            check_key("offer", &key, &offer.id)?;
            // A stored offer may already be decommissioned; only its references are checked.
            catalogue.check_offer_contents(&offer)?;
            catalogue.offers.insert(key, offer);
        }
        Ok(catalogue)
    }
}

fn check_key(kind: &str, key: &str, id: &str) -> Result<(), CmsError> {
    if key == id {
        Ok(())
    } else {
        Err(invalid(kind, key, "id", id, "the id must match the key it is stored under"))
    }
}

/// An invalid field of a catalogue item.
fn invalid(kind: &str, id: &str, field: &str, text: &str, reason: &str) -> CmsError {
    CmsError::InvalidValue {
        at: Location::field(format!("{kind} {id}"), field),
        text: text.to_owned(),
        reason: reason.to_owned(),
    }
}

fn check_id(kind: &str, id: &str) -> Result<(), CmsError> {
    if !id.is_empty() && id.trim() == id {
        Ok(())
    } else {
        Err(invalid(kind, id, "id", id, "an id is not empty and has no surrounding spaces"))
    }
}

fn unknown(kind: &str, id: &str, referrer: &str, field: &str) -> CmsError {
    CmsError::UnknownNode {
        kind: kind.to_owned(),
        id: id.to_owned(),
        context: Some(Location::field(referrer, field)),
    }
}

/// The stable service id and display name of a meter category.
pub const fn category_service(category: Category) -> (&'static str, &'static str) {
    match category {
        Category::Compute => ("compute", "Compute"),
        Category::Storage => ("storage", "Storage"),
        Category::Network => ("network", "Network"),
        Category::ManagedDisks => ("managed-disks", "Managed disks"),
        Category::SqlMySql => ("sql-mysql", "SQL Server and MySQL"),
        Category::KeyVault => ("key-vault", "Key Vault"),
        Category::AppService => ("app-service", "App Service"),
    }
}

impl Catalogue {
    /// An empty catalogue.
    pub fn new() -> Self {
        Self::default()
    }

    /// One service per meter category of the compiled meter catalogue (ids from [`category_service`]:
    /// "compute", "storage", "network", "managed-disks", "sql-mysql", "key-vault", "app-service"), sorted by
    /// id. Every known meter is in exactly one of them, deprecated ones included (old data still uses them).
    pub fn default_services() -> Vec<Service> {
        let mut services: BTreeMap<&str, Service> = BTreeMap::new();
        for meter in meter_catalogue() {
            let (id, name) = category_service(meter.category);
            services
                .entry(id)
                .or_insert_with(|| Service {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    meters: BTreeSet::new(),
                })
                .meters
                .insert(meter.id);
        }
        services.into_values().collect()
    }

    /// A catalogue holding [`Self::default_services`] and no plans or offers.
    pub fn with_default_services() -> Self {
        let services =
            Self::default_services().into_iter().map(|service| (service.id.clone(), service)).collect();
        Self { services, ..Self::default() }
    }

    /// Services by id.
    pub fn services(&self) -> &BTreeMap<String, Service> {
        &self.services
    }

    /// Plans by id.
    pub fn plans(&self) -> &BTreeMap<String, Plan> {
        &self.plans
    }

    /// Offers by id.
    pub fn offers(&self) -> &BTreeMap<String, Offer> {
        &self.offers
    }

    /// A service by id.
    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.get(id)
    }

    /// A plan by id.
    pub fn plan(&self, id: &str) -> Option<&Plan> {
        self.plans.get(id)
    }

    /// An offer by id.
    pub fn offer(&self, id: &str) -> Option<&Offer> {
        self.offers.get(id)
    }

    /// Check that [`Self::put_service`] would accept a service: a clean id and at least one meter.
    pub fn check_service(&self, service: &Service) -> Result<(), CmsError> {
        check_id("service", &service.id)?;
        if service.meters.is_empty() {
            return Err(invalid("service", &service.id, "meters", "", "a service covers at least one meter"));
        }
        Ok(())
    }

    /// Add or replace a service.
    pub fn put_service(&mut self, service: Service) -> Result<(), CmsError> {
        self.check_service(&service)?;
        self.services.insert(service.id.clone(), service);
        Ok(())
    }

    /// Check that [`Self::put_plan`] would accept a plan: a clean id, known services each listed once,
    /// named quotas that are not negative.
    pub fn check_plan(&self, plan: &Plan) -> Result<(), CmsError> {
        check_id("plan", &plan.id)?;
        let referrer = format!("plan {}", plan.id);
        for (position, service) in plan.services.iter().enumerate() {
            if !self.services.contains_key(service) {
                return Err(unknown("service", service, &referrer, "services"));
            }
            if plan.services[..position].contains(service) {
                return Err(invalid("plan", &plan.id, "services", service, "listed twice"));
            }
        }
        for (name, limit) in &plan.quotas {
            if name.trim().is_empty() {
                return Err(invalid("plan", &plan.id, "quotas", name, "a quota has a name"));
            }
            if limit.is_sign_negative() && !limit.is_zero() {
                return Err(invalid(
                    "plan",
                    &plan.id,
                    &format!("quotas.{name}"),
                    &limit.to_string(),
                    "must not be negative",
                ));
            }
        }
        Ok(())
    }

    /// Add or replace a plan.
    pub fn put_plan(&mut self, plan: Plan) -> Result<(), CmsError> {
        self.check_plan(&plan)?;
        self.plans.insert(plan.id.clone(), plan);
        Ok(())
    }

    /// The checks of an offer that do not depend on its history: clean id, known plans, no add-on that is
    /// the base plan or repeats.
    fn check_offer_contents(&self, offer: &Offer) -> Result<(), CmsError> {
        check_id("offer", &offer.id)?;
        let referrer = format!("offer {}", offer.id);
        if !self.plans.contains_key(&offer.base_plan) {
            return Err(unknown("plan", &offer.base_plan, &referrer, "base_plan"));
        }
        for (position, addon) in offer.addon_plans.iter().enumerate() {
            if !self.plans.contains_key(addon) {
                return Err(unknown("plan", addon, &referrer, "addon_plans"));
            }
            if *addon == offer.base_plan {
                return Err(invalid(
                    "offer",
                    &offer.id,
                    "addon_plans",
                    addon,
                    "the base plan is not an add-on",
                ));
            }
            if offer.addon_plans[..position].contains(addon) {
                return Err(invalid("offer", &offer.id, "addon_plans", addon, "listed twice"));
            }
        }
        Ok(())
    }

    /// Check that [`Self::put_offer`] would accept an offer: its contents (clean id, known plans, no add-on
    /// that is the base plan or repeats) and its state. A new offer starts private or public; a replaced
    /// one may change state only along [`OfferState::can_become`]; a decommissioned offer does not change.
    pub fn check_offer(&self, offer: &Offer) -> Result<(), CmsError> {
        self.check_offer_contents(offer)?;
        let refuse =
            |state: OfferState, reason: &str| invalid("offer", &offer.id, "state", state.as_str(), reason);
        let Some(existing) = self.offers.get(&offer.id) else {
            if offer.state == OfferState::Decommissioned {
                return Err(refuse(offer.state, "a new offer starts private or public"));
            }
            return Ok(());
        };
        if existing.state == OfferState::Decommissioned && existing != offer {
            return Err(refuse(existing.state, "a decommissioned offer does not change"));
        }
        if existing.state != offer.state && !existing.state.can_become(offer.state) {
            return Err(refuse(
                offer.state,
                &format!("a {} offer cannot become {}", existing.state, offer.state),
            ));
        }
        Ok(())
    }

    /// Add or replace an offer.
    pub fn put_offer(&mut self, offer: Offer) -> Result<(), CmsError> {
        self.check_offer(&offer)?;
        self.offers.insert(offer.id.clone(), offer);
        Ok(())
    }

    /// Check that [`Self::set_offer_state`] would accept a state change: the offer exists and the change
    /// follows [`OfferState::can_become`].
    pub fn check_offer_state(&self, offer_id: &str, state: OfferState) -> Result<(), CmsError> {
        let offer = self.offers.get(offer_id).ok_or_else(|| CmsError::UnknownNode {
            kind: "offer".into(),
            id: offer_id.to_owned(),
            context: None,
        })?;
        if offer.state.can_become(state) {
            Ok(())
        } else {
            Err(invalid(
                "offer",
                offer_id,
                "state",
                state.as_str(),
                &format!("a {} offer cannot become {state}", offer.state),
            ))
        }
    }

    /// Publish, hide or decommission an offer.
    pub fn set_offer_state(&mut self, offer_id: &str, state: OfferState) -> Result<(), CmsError> {
        self.check_offer_state(offer_id, state)?;
        if let Some(offer) = self.offers.get_mut(offer_id) {
            offer.state = state;
        }
        Ok(())
    }

    /// Check that a new subscription may be created on an offer: it exists, is not decommissioned, and is
    /// public unless `by_operator` (the operator may use private offers). Returns the offer.
    pub fn check_subscribable(&self, offer_id: &str, by_operator: bool) -> Result<&Offer, CmsError> {
        let offer = self.offers.get(offer_id).ok_or_else(|| CmsError::UnknownNode {
            kind: "offer".into(),
            id: offer_id.to_owned(),
            context: None,
        })?;
        match offer.state {
            OfferState::Private if !by_operator => Err(invalid(
                "offer",
                offer_id,
                "state",
                offer.state.as_str(),
                "a private offer takes new subscriptions only from the operator",
            )),
            OfferState::Decommissioned => Err(invalid(
                "offer",
                offer_id,
                "state",
                offer.state.as_str(),
                "a decommissioned offer takes no new subscriptions",
            )),
            OfferState::Private | OfferState::Public => Ok(offer),
        }
    }

    fn offer_plans<'a>(&'a self, offer_id: &str) -> Result<impl Iterator<Item = &'a Plan>, CmsError> {
        let offer = self.offers.get(offer_id).ok_or_else(|| CmsError::UnknownNode {
            kind: "offer".into(),
            id: offer_id.to_owned(),
            context: None,
        })?;
        // References were checked when the offer and its plans were stored, and nothing is removed.
        Ok(offer.plan_ids().filter_map(|plan| self.plans.get(plan)))
    }

    /// Every meter an offer covers: those of the services of its base plan and its add-ons.
    pub fn meters_of_offer(&self, offer_id: &str) -> Result<BTreeSet<MeterId>, CmsError> {
        let mut meters = BTreeSet::new();
        for plan in self.offer_plans(offer_id)? {
            for service in plan.services.iter().filter_map(|service| self.services.get(service)) {
                meters.extend(service.meters.iter().copied());
            }
        }
        Ok(meters)
    }

    /// An offer's quotas: the base plan's, plus each add-on's (a quota only an add-on names starts at 0).
    pub fn quota_of_offer(&self, offer_id: &str) -> Result<BTreeMap<String, Decimal>, CmsError> {
        let mut quotas: BTreeMap<String, Decimal> = BTreeMap::new();
        for plan in self.offer_plans(offer_id)? {
            for (name, limit) in &plan.quotas {
                let total = quotas.entry(name.clone()).or_default();
                *total = total.checked_add(*limit).ok_or_else(|| CmsError::Overflow {
                    what: format!("quota {name} of offer {offer_id}"),
                })?;
            }
        }
        Ok(quotas)
    }

    /// Whether an offer covers a meter; `false` for an unknown offer.
    pub fn offer_covers(&self, offer_id: &str, meter: MeterId) -> bool {
        self.offer_plans(offer_id).is_ok_and(|mut plans| {
            plans.any(|plan| {
                plan.services
                    .iter()
                    .filter_map(|service| self.services.get(service))
                    .any(|service| service.meters.contains(&meter))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offer_state_transitions() {
        use OfferState::{Decommissioned, Private, Public};
        let table = [
            (Private, [false, true, true]),
            (Public, [true, false, true]),
            (Decommissioned, [false, false, false]),
        ];
        for (from, row) in table {
            for (to, allowed) in [Private, Public, Decommissioned].into_iter().zip(row) {
                assert_eq!(from.can_become(to), allowed, "{from} -> {to}");
            }
        }
        assert_eq!(serde_json::to_string(&Decommissioned).unwrap(), "\"decommissioned\"");
    }

    #[test]
    fn default_services_have_stable_ids() {
        let ids: Vec<_> = Catalogue::default_services().into_iter().map(|service| service.id).collect();
        assert_eq!(
            ids,
            ["app-service", "compute", "key-vault", "managed-disks", "network", "sql-mysql", "storage"]
        );
    }
}
