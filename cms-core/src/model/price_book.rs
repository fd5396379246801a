//! The price book: versioned, effective-dated price lists, where they are assigned, resale chains, bulk
//! changes and the cost calculator.
//!
//! # Lists and versions
//! A [`BookList`] is a named list in one currency with a history of [`PriceVersion`]s. A version applies on
//! `[effective, next version's effective)`; the last one is open-ended; before the first version the list
//! prices nothing. Versions are only appended, each strictly after the last, and never change once added,
//! so there is never a gap or an overlap, and an issued invoice can always be re-priced as it was.
//!
//! # Exemptions
//! A version created by a change set may exempt tenants. Resolving for an exempt tenant skips that version:
//! the tenant gets the latest earlier version that does not exempt it, or no price at all when there is
//! none. Exemptions are per version: a later change set that does not exempt the tenant builds on the latest
//! version (the one that included the earlier increase), so the tenant then gets both increases. Tenant ids
//! are compared ignoring ASCII case. Exemptions also apply along a resale chain: a derived list resolved for
//! an exempt tenant reads its parent for that tenant too.
//!
//! # Derived lists (resale chains)
//! A [`VersionContent::Derived`] version prices a meter from its parent list at the same instant:
//! - an override in the version, if present, else `parent.amount(q) x (1 + markup)` (exact, at the amount
//!   level, so tiers and packages of the parent carry through);
//! - with `floor: Some(f)`, the amount is never below `parent.amount(q) x (1 + f)` (f = 0: never below the
//!   parent), for overrides too (an override of a meter the parent does not price stands alone);
//! - when the parent does not price the meter at that instant and there is no override, the derived list
//!   does not price it either.
//!
//! Parents share the child's currency, and derivation never forms a cycle: every put and append checks the
//! graph of all parents of all versions (not only those in effect together), so resolution terminates.
//!
//! # Precedence
//! [`PriceBook::resolve`] takes the node ids of a path from the most specific (the subscription, or a buyer
//! organisation) upwards, *without* the platform: the platform-wide list is the [`PriceScope::Default`]
//! scope. It tries each node of the path in order, then the region default of the Azure Stack Hub region
//! (compared ignoring ASCII case), then the platform default; the first scope whose assigned list prices
//! the meter at that instant (with exemptions and derivation applied) wins. A platform node id given in the
//! path is treated like any other node.
//!
//! # Change sets
//! A [`ChangeSet`] is a bulk increase (or decrease): a new version per list in scope, effective at one
//! instant, see [`PriceBook::plan_change_set`].

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CmsError, Location};
use crate::model::meter::{Category, MeterId};
use crate::model::money::Currency;
use crate::model::pricing::{MeterPrice, PriceChange};
use crate::model::tiers::{checked_add, checked_mul};
use crate::model::time::Instant;

/// Where a price list is assigned.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceScope {
    /// A node of the channel by id: a distributor, partner, tenant or subscription (the book does not know
    /// kinds; the caller passes paths). Compared exactly.
    Node(String),
    /// The default list of an Azure Stack Hub region (location), compared ignoring ASCII case (kept in
    /// lower case once assigned).
    Region(String),
    /// The platform-wide default.
    Default,
}

impl PriceScope {
    /// The form the book keeps assignments in: regions in ASCII lower case.
    fn normalized(self) -> Self {
        match self {
            Self::Region(region) => Self::Region(region.to_ascii_lowercase()),
            other => other,
        }
    }

    /// The key of a node or (lower-case) region scope.
    fn key(&self) -> &str {
        match self {
            Self::Node(id) | Self::Region(id) => id,
            Self::Default => "",
        }
    }
}

/// Where tiers count the monthly quantity of a meter (the billing code applies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierScope {
    /// Per subscription and meter (the default).
    #[default]
    Subscription,
    /// Per tenant and meter: the tenant's subscriptions count together.
    Tenant,
    /// Per price list and meter: every subscription priced by the list counts together.
    PriceList,
}

/// What a version prices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VersionContent {
    /// The version states its own prices.
    Own {
        /// Prices by meter.
        prices: BTreeMap<MeterId, MeterPrice>,
    },
    /// The version derives its prices from a parent list at the same instant (see the module docs).
    Derived {
        /// The parent list's id (same currency).
        parent: String,
        /// Markup on the parent's amount (0.2 for +20 %; at least -1).
        markup: Decimal,
        /// Prices that replace the derived ones.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        overrides: BTreeMap<MeterId, MeterPrice>,
        /// No amount below `parent x (1 + floor)` (0: never below the parent; at least -1).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        floor: Option<Decimal>,
    },
}

/// One effective-dated version of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceVersion {
    /// From when the version applies (until the next version's instant).
    pub effective: Instant,
    /// What it prices.
    pub content: VersionContent,
    /// The change set that created it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_set: Option<String>,
    /// Tenants for whom this version does not apply (compared ignoring ASCII case).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub exempt_tenants: BTreeSet<String>,
}

impl PriceVersion {
    /// A version with its own prices.
    pub fn own(effective: Instant, prices: BTreeMap<MeterId, MeterPrice>) -> Self {
        Self {
            effective,
            content: VersionContent::Own { prices },
            change_set: None,
            exempt_tenants: BTreeSet::new(),
        }
    }

    /// A version deriving every price from `parent` with `markup` (no overrides, no floor).
    pub fn derived(effective: Instant, parent: &str, markup: Decimal) -> Self {
        Self {
            effective,
            content: VersionContent::Derived {
                parent: parent.to_owned(),
                markup,
                overrides: BTreeMap::new(),
                floor: None,
            },
            change_set: None,
            exempt_tenants: BTreeSet::new(),
        }
    }

    /// Whether this version does not apply to `tenant`.
    pub fn exempts(&self, tenant: &str) -> bool {
        self.exempt_tenants.iter().any(|exempt| exempt.eq_ignore_ascii_case(tenant))
    }

    /// The parent list, for a derived version.
    pub fn parent(&self) -> Option<&str> {
        match &self.content {
            VersionContent::Own { .. } => None,
            VersionContent::Derived { parent, .. } => Some(parent),
        }
    }
}

/// A price list of the book: one currency, a history of versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookList {
    /// Stable id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Currency of every price (and of the parent, for derived versions).
    pub currency: Currency,
    /// Where tiers count the monthly quantity.
    #[serde(default)]
    pub tier_scope: TierScope,
    /// Minimum charge per period and per buyer: a buyer whose invoice lines priced by this list add up to
    /// less gets a true-up line for the difference. It applies to every buyer the list priced that period,
    /// and to the buyers it is assigned to (a tenant, a subscription's tenant, a reseller) even when it
    /// priced nothing for them; at least 0.
    pub minimum_commitment: Option<Decimal>,
    /// Pass-through pricing of source costs: cost x (1 + uplift), at least -1; `None`: not priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_through_uplift: Option<Decimal>,
    /// Versions, by strictly increasing `effective`.
    #[serde(default)]
    pub versions: Vec<PriceVersion>,
}

impl BookList {
    /// A list without versions (it prices nothing until one is appended).
    pub fn new(id: &str, name: &str, currency: Currency) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            currency,
            tier_scope: TierScope::default(),
            minimum_commitment: None,
            pass_through_uplift: None,
            versions: Vec::new(),
        }
    }

    /// The index of the version in effect at `at` for `tenant` (skipping versions that exempt it), or
    /// `None` before the first version (or when every earlier version exempts the tenant).
    pub fn version_index_at(&self, at: Instant, tenant: Option<&str>) -> Option<usize> {
        let end = self.versions.partition_point(|version| version.effective <= at);
        (0..end).rev().find(|&index| tenant.is_none_or(|tenant| !self.versions[index].exempts(tenant)))
    }

    /// The version in effect at `at` for `tenant` (see [`Self::version_index_at`]).
    pub fn version_at(&self, at: Instant, tenant: Option<&str>) -> Option<&PriceVersion> {
        self.version_index_at(at, tenant).map(|index| &self.versions[index])
    }

    fn parents(&self) -> impl Iterator<Item = &str> {
        self.versions.iter().filter_map(PriceVersion::parent)
    }
}

/// Which meters a change set or a discount touches.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterFilter {
    /// Every meter.
    #[default]
    All,
    /// These meters.
    Meters(BTreeSet<MeterId>),
    /// Meters of these catalogue categories (snake_case names such as `compute`, `managed_disks`,
    /// compared ignoring ASCII case). Meters outside the catalogue belong to no category.
    Categories(BTreeSet<String>),
}

impl MeterFilter {
    /// Whether `meter` passes, taking its category from the built-in meter catalogue.
    pub fn matches(&self, meter: MeterId) -> bool {
        match self {
            Self::Categories(_) => {
                let category = meter.info().and_then(|info| category_name(info.category));
                self.matches_with(meter, category.as_deref())
            }
            Self::All | Self::Meters(_) => self.matches_with(meter, None),
        }
    }

    /// Whether `meter` passes, with its category given by the caller (a catalogue of custom meters).
    pub fn matches_with(&self, meter: MeterId, category: Option<&str>) -> bool {
        match self {
            Self::All => true,
            Self::Meters(meters) => meters.contains(&meter),
            Self::Categories(categories) => category.is_some_and(|category| {
                categories.iter().any(|wanted| wanted.eq_ignore_ascii_case(category))
            }),
        }
    }
}

/// The snake_case name of a catalogue category, as it is serialised.
fn category_name(category: Category) -> Option<String> {
    match serde_json::to_value(category) {
        Ok(serde_json::Value::String(name)) => Some(name),
        _ => None,
    }
}

/// Which lists a change set versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeScope {
    /// These lists.
    Lists(Vec<String>),
    /// The list assigned to this region's default scope.
    Region(String),
    /// The lists assigned at these node scopes (nodes without a list are skipped; the engine expands a
    /// tenant into its node and its subscriptions).
    Nodes(Vec<String>),
    /// Every list of the book.
    All,
}

/// A bulk price change: new versions of the lists in scope, effective at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    /// Stable id, recorded on every version it creates.
    pub id: String,
    /// Which lists.
    pub scope: ChangeScope,
    /// Which meters.
    #[serde(default)]
    pub meters: MeterFilter,
    /// Percent or fixed amount.
    pub change: PriceChange,
    /// From when the new prices apply.
    pub effective: Instant,
    /// Digits of the new prices (rounded half away from zero); at most 28.
    pub scale: u32,
    /// Tenants that keep the old prices.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub exempt_tenants: BTreeSet<String>,
}

/// One step of a resolved derivation chain.
#[derive(Debug, Clone, Copy)]
enum Rule<'a> {
    /// The list's own price.
    Own(&'a MeterPrice),
    /// A derived list's override, floored against the parent when a level below follows.
    Override { price: &'a MeterPrice, floor: Option<Decimal> },
    /// The parent's amount with a markup (and a floor).
    Markup { markup: Decimal, floor: Option<Decimal> },
}

#[derive(Debug, Clone, Copy)]
struct Level<'a> {
    list: &'a BookList,
    version_index: usize,
    rule: Rule<'a>,
}

/// The price of a meter at an instant, as one list (and its parents) give it.
#[derive(Debug, Clone)]
pub struct Resolved<'a> {
    scope: Option<&'a PriceScope>,
    /// The list first, then its parents as far as the price needs them.
    levels: Vec<Level<'a>>,
}

/// The amount at one level of a resale chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelAmount<'a> {
    /// The list of this level.
    pub list: &'a str,
    /// The index of its version in effect.
    pub version_index: usize,
    /// Its exact amount.
    pub amount: Decimal,
}

impl<'a> Resolved<'a> {
    fn top(&self) -> &Level<'a> {
        &self.levels[0]
    }

    /// The list that priced the meter.
    pub fn list(&self) -> &'a BookList {
        self.top().list
    }

    /// Its id.
    pub fn list_id(&self) -> &'a str {
        &self.top().list.id
    }

    /// Its currency.
    pub fn currency(&self) -> Currency {
        self.top().list.currency
    }

    /// Where tiers count the quantity, as the list says.
    pub fn tier_scope(&self) -> TierScope {
        self.top().list.tier_scope
    }

    /// The scope the list was assigned at (`None` from [`PriceBook::price_of_list`]).
    pub fn scope(&self) -> Option<&'a PriceScope> {
        self.scope
    }

    /// The index of the list's version in effect.
    pub fn version_index(&self) -> usize {
        self.top().version_index
    }

    /// That version.
    pub fn version(&self) -> &'a PriceVersion {
        &self.top().list.versions[self.top().version_index]
    }

    /// From when that version applies.
    pub fn effective(&self) -> Instant {
        self.version().effective
    }

    /// The change set that created that version, if any.
    pub fn change_set(&self) -> Option<&'a str> {
        self.version().change_set.as_deref()
    }

    /// The price the list states itself (its own price or an override); `None` when it derives the price
    /// by markup from its parent.
    pub fn own_price(&self) -> Option<&'a MeterPrice> {
        match self.top().rule {
            Rule::Own(price) | Rule::Override { price, .. } => Some(price),
            Rule::Markup { .. } => None,
        }
    }

    /// The unit of quantity: of the first price stated along the chain.
    pub fn unit(&self) -> &'a str {
        self.levels
            .iter()
            .find_map(|level| match level.rule {
                Rule::Own(price) | Rule::Override { price, .. } => Some(price.unit.as_str()),
                Rule::Markup { .. } => None,
            })
            .unwrap_or_default()
    }

    /// The exact amount for a monthly quantity, evaluating the derivation chain.
    pub fn amount(&self, quantity: Decimal) -> Result<Decimal, CmsError> {
        if let [Level { rule: Rule::Own(price) | Rule::Override { price, .. }, .. }] = self.levels.as_slice()
        {
            return price.amount(quantity);
        }
        Ok(self.level_amounts(quantity)?[0].amount)
    }

    /// The exact amount at every level of the chain, this list first, then each parent the price
    /// needed. The margin of a level is its amount minus the next one's.
    pub fn level_amounts(&self, quantity: Decimal) -> Result<Vec<LevelAmount<'a>>, CmsError> {
        let floored = |own: Decimal, below: Option<Decimal>, floor: Option<Decimal>| match (below, floor) {
            (Some(below), Some(floor)) => Ok(own.max(checked_mul(below, checked_add(Decimal::ONE, floor)?)?)),
            _ => Ok::<_, CmsError>(own),
        };
        let mut amounts = Vec::with_capacity(self.levels.len());
        let mut below = None;
        for level in self.levels.iter().rev() {
            let amount = match level.rule {
                Rule::Own(price) => price.amount(quantity)?,
                Rule::Override { price, floor } => floored(price.amount(quantity)?, below, floor)?,
                Rule::Markup { markup, floor } => {
                    // A chain always ends in a stated price, so a markup level has one below it.
                    let parent = below.ok_or_else(|| CmsError::InvalidValue {
                        at: Location::whole(format!("price list {}", level.list.id)),
                        text: markup.to_string(),
                        reason: "a derived price without a parent price".into(),
                    })?;
                    floored(checked_mul(parent, checked_add(Decimal::ONE, markup)?)?, below, floor)?
                }
            };
            amounts.push(LevelAmount { list: &level.list.id, version_index: level.version_index, amount });
            below = Some(amount);
        }
        amounts.reverse();
        Ok(amounts)
    }
}

/// A line of the cost calculator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EstimateLine {
    /// The meter.
    pub meter: MeterId,
    /// The monthly quantity asked for.
    pub quantity: Decimal,
    /// The price found; `None`: no list prices the meter for this buyer ("no pricing").
    pub price: Option<EstimatePrice>,
}

impl EstimateLine {
    /// Whether a list prices the line.
    pub fn is_priced(&self) -> bool {
        self.price.is_some()
    }
}

/// What a priced estimate line costs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EstimatePrice {
    /// Unit of quantity.
    pub unit: String,
    /// The list that priced it.
    pub list: String,
    /// The scope that list was assigned at.
    pub scope: PriceScope,
    /// Currency of the amount.
    pub currency: Currency,
    /// Exact (unrounded) amount.
    pub amount: Decimal,
}

/// Exact totals of estimate lines per currency (unpriced lines are left out).
pub fn estimate_totals(lines: &[EstimateLine]) -> Result<BTreeMap<Currency, Decimal>, CmsError> {
    let mut totals = BTreeMap::new();
    for price in lines.iter().filter_map(|line| line.price.as_ref()) {
        let total: &mut Decimal = totals.entry(price.currency).or_default();
        *total = checked_add(*total, price.amount)?;
    }
    Ok(totals)
}

/// A list assigned at a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assigned {
    scope: PriceScope,
    list: String,
}

/// Versioned price lists and their assignments to scopes.
///
/// Assignments are kept per kind of scope, so resolving a path looks node ids up without allocating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceBook {
    lists: BTreeMap<String, BookList>,
    /// Node id -> assignment.
    nodes: BTreeMap<String, Assigned>,
    /// Lower-case region -> assignment.
    regions: BTreeMap<String, Assigned>,
    default: Option<Assigned>,
}

fn unknown_list(id: &str) -> CmsError {
    CmsError::UnknownNode { kind: "price list".into(), id: id.to_owned(), context: None }
}

fn invalid(source: impl Into<String>, text: impl Into<String>, reason: impl Into<String>) -> CmsError {
    CmsError::InvalidValue { at: Location::whole(source), text: text.into(), reason: reason.into() }
}

/// A rate that must be at least -1 (a markup, floor or uplift: the price never goes below zero).
fn check_factor(value: Option<Decimal>, source: &str, what: &str) -> Result<(), CmsError> {
    match value {
        Some(value) if value < Decimal::NEGATIVE_ONE => {
            Err(invalid(source, value.to_string(), format!("{what} must be at least -1 (-100 %)")))
        }
        _ => Ok(()),
    }
}

fn check_prices(prices: &BTreeMap<MeterId, MeterPrice>, list_id: &str) -> Result<(), CmsError> {
    prices.iter().try_for_each(|(meter, price)| {
        price.model.validate(&format!("meter {meter} in price list {list_id}"))
    })
}

/// Checks of one version on its own (amounts, ids, exemptions); links to other lists are checked by the book.
fn check_version(list_id: &str, version: &PriceVersion) -> Result<(), CmsError> {
    let source = format!("price list {list_id} version of {}", version.effective.to_rfc3339());
    if version.exempt_tenants.iter().any(|tenant| tenant.trim().is_empty()) {
        return Err(invalid(source, "", "an exempt tenant id must not be empty"));
    }
    match &version.content {
        VersionContent::Own { prices } => check_prices(prices, list_id),
        VersionContent::Derived { parent, markup, overrides, floor } => {
            if parent.trim().is_empty() {
                return Err(invalid(source, parent.as_str(), "a derived version names its parent list"));
            }
            check_factor(Some(*markup), &source, "a markup")?;
            check_factor(*floor, &source, "a floor")?;
            check_prices(overrides, list_id)
        }
    }
}

/// Checks of a list on its own: id, amounts, versions in strictly increasing order.
fn check_list(list: &BookList) -> Result<(), CmsError> {
    let source = format!("price list {}", list.id);
    if list.id.trim().is_empty() {
        return Err(invalid("price list", list.id.as_str(), "a price list id must not be empty"));
    }
    if let Some(minimum) =
        list.minimum_commitment.filter(|minimum| minimum.is_sign_negative() && !minimum.is_zero())
    {
        return Err(invalid(source, minimum.to_string(), "a minimum commitment must not be negative"));
    }
    check_factor(list.pass_through_uplift, &source, "a pass-through uplift")?;
    if let Some(pair) = list.versions.windows(2).find(|pair| pair[1].effective <= pair[0].effective) {
        return Err(invalid(
            source,
            pair[1].effective.to_rfc3339(),
            format!(
                "versions must be effective strictly after each other (after {})",
                pair[0].effective.to_rfc3339()
            ),
        ));
    }
    list.versions.iter().try_for_each(|version| check_version(&list.id, version))
}

/// When a parent does not price the meter, a chain keeps what stands without it: everything down to the
/// last override (an override needs its parent only for the floor), or nothing.
fn without_parent(mut levels: Vec<Level<'_>>) -> Option<Vec<Level<'_>>> {
    let last = levels.iter().rposition(|level| matches!(level.rule, Rule::Override { .. }))?;
    levels.truncate(last + 1);
    Some(levels)
}

impl PriceBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// A list by id.
    pub fn list(&self, id: &str) -> Option<&BookList> {
        self.lists.get(id)
    }

    /// Every list, by id.
    pub fn lists(&self) -> impl Iterator<Item = &BookList> {
        self.lists.values()
    }

    /// Every assignment, scope and list id: nodes, then regions, then the default.
    pub fn assignments(&self) -> impl Iterator<Item = (&PriceScope, &str)> {
        self.nodes
            .values()
            .chain(self.regions.values())
            .chain(&self.default)
            .map(|assigned| (&assigned.scope, assigned.list.as_str()))
    }

    /// The assignment at a scope (given in any case for a region).
    fn slot(&self, scope: &PriceScope) -> Option<&Assigned> {
        match scope {
            PriceScope::Node(id) => self.nodes.get(id),
            PriceScope::Region(region) => self.region_slot(region),
            PriceScope::Default => self.default.as_ref(),
        }
    }

    /// The assignment of a region, compared ignoring ASCII case (regions are few; no allocation).
    fn region_slot(&self, region: &str) -> Option<&Assigned> {
        self.regions.get(region).or_else(|| {
            self.regions
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(region))
                .map(|(_, assigned)| assigned)
        })
    }

    /// The list assigned at `scope`, if any.
    pub fn assigned(&self, scope: &PriceScope) -> Option<&BookList> {
        self.lists.get(&self.slot(scope)?.list)
    }

    fn get(&self, id: &str) -> Result<&BookList, CmsError> {
        self.lists.get(id).ok_or_else(|| unknown_list(id))
    }

    /// Whether following parents from `start` reaches `target`, where `pending` (a list not in the book
    /// yet) stands for its id.
    fn reaches(&self, start: &str, target: &str, pending: Option<&BookList>) -> bool {
        let mut seen = BTreeSet::new();
        let mut stack = vec![start];
        while let Some(id) = stack.pop() {
            if id == target {
                return true;
            }
            if !seen.insert(id) {
                continue;
            }
            let list = match pending {
                Some(pending) if pending.id == id => Some(pending),
                _ => self.lists.get(id),
            };
            stack.extend(list.into_iter().flat_map(BookList::parents));
        }
        false
    }

    /// Check that each parent of `list` exists (or is `pending`), has its currency, and does not lead back.
    fn check_parents<'p>(
        &self,
        list: &BookList,
        parents: impl Iterator<Item = &'p str>,
        pending: Option<&BookList>,
    ) -> Result<(), CmsError> {
        for parent in parents {
            let parent_list = match pending {
                Some(pending) if pending.id == parent => pending,
                _ => self.get(parent)?,
            };
            if parent_list.currency != list.currency {
                return Err(CmsError::CurrencyMismatch {
                    document: format!("price list {} derived from {parent}", list.id),
                    first: list.currency.to_string(),
                    second: parent_list.currency.to_string(),
                });
            }
            if self.reaches(parent, &list.id, pending) {
                return Err(invalid(
                    format!("price list {}", list.id),
                    parent,
                    "deriving from this list would form a derivation cycle",
                ));
            }
        }
        Ok(())
    }

    /// Add a new list (with any versions it already has), after checking it: a fresh id, no negative
    /// amounts, versions in strictly increasing order, parents that exist in the same currency, no cycle.
    pub fn put_list(&mut self, list: BookList) -> Result<(), CmsError> {
        check_list(&list)?;
        if self.lists.contains_key(&list.id) {
            return Err(invalid(
                "price book",
                list.id.as_str(),
                "a price list with this id exists already (lists only get new versions)",
            ));
        }
        self.check_parents(&list, list.parents(), Some(&list))?;
        self.lists.insert(list.id.clone(), list);
        Ok(())
    }

    /// Append a version to a list; it must be effective strictly after the list's last version. Nothing
    /// changes on error.
    pub fn append_version(&mut self, list_id: &str, version: PriceVersion) -> Result<(), CmsError> {
        self.check_append(list_id, &version)?;
        self.lists.get_mut(list_id).ok_or_else(|| unknown_list(list_id))?.versions.push(version);
        Ok(())
    }

    fn check_append(&self, list_id: &str, version: &PriceVersion) -> Result<(), CmsError> {
        let list = self.get(list_id)?;
        if let Some(last) = list.versions.last().filter(|last| version.effective <= last.effective) {
            return Err(invalid(
                format!("price list {list_id}"),
                version.effective.to_rfc3339(),
                format!(
                    "a new version must be effective strictly after the last one ({}); versions are only appended",
                    last.effective.to_rfc3339()
                ),
            ));
        }
        check_version(list_id, version)?;
        self.check_parents(list, version.parent().into_iter(), None)
    }

    /// Assign a list to a scope; a scope has one list, so this replaces any earlier assignment.
    pub fn assign(&mut self, scope: PriceScope, list_id: &str) -> Result<(), CmsError> {
        self.get(list_id)?;
        if let PriceScope::Node(id) | PriceScope::Region(id) = &scope
            && id.trim().is_empty()
        {
            return Err(invalid("price book", "", "a node or region scope needs an id"));
        }
        let scope = scope.normalized();
        let key = scope.key().to_owned();
        let assigned = Assigned { scope, list: list_id.to_owned() };
        match &assigned.scope {
            PriceScope::Node(_) => self.nodes.insert(key, assigned),
            PriceScope::Region(_) => self.regions.insert(key, assigned),
            PriceScope::Default => self.default.replace(assigned),
        };
        Ok(())
    }

    /// Remove the assignment of a scope; returns the list that was assigned.
    pub fn unassign(&mut self, scope: &PriceScope) -> Option<String> {
        let removed = match scope.clone().normalized() {
            PriceScope::Node(id) => self.nodes.remove(&id),
            PriceScope::Region(region) => self.regions.remove(&region),
            PriceScope::Default => self.default.take(),
        };
        removed.map(|assigned| assigned.list)
    }

    /// Copy a list, every version included, under a new id and name (the caller then assigns it).
    pub fn clone_list(&mut self, source_id: &str, new_id: &str, name: &str) -> Result<(), CmsError> {
        let mut copy = self.get(source_id)?.clone();
        new_id.clone_into(&mut copy.id);
        name.clone_into(&mut copy.name);
        self.put_list(copy)
    }

    /// The price of `meter` in one list at `at` for `tenant` (exemptions and derivation applied), or `None`
    /// when the list does not price it then.
    pub fn price_of_list(
        &self,
        list_id: &str,
        meter: MeterId,
        at: Instant,
        tenant: Option<&str>,
    ) -> Result<Option<Resolved<'_>>, CmsError> {
        Ok(self.chain(list_id, meter, at, tenant)?.map(|levels| Resolved { scope: None, levels }))
    }

    /// Follow a list's derivation at `at` down to a stated price.
    fn chain(
        &self,
        list_id: &str,
        meter: MeterId,
        at: Instant,
        tenant: Option<&str>,
    ) -> Result<Option<Vec<Level<'_>>>, CmsError> {
        let mut levels: Vec<Level<'_>> = Vec::new();
        let mut list = self.get(list_id)?;
        loop {
            if levels.len() > self.lists.len() {
                // Puts and appends refuse cycles; this guards resolution all the same.
                return Err(invalid(format!("price list {list_id}"), list.id.as_str(), "derivation cycle"));
            }
            let Some(version_index) = list.version_index_at(at, tenant) else {
                return Ok(without_parent(levels));
            };
            match &list.versions[version_index].content {
                VersionContent::Own { prices } => {
                    let Some(price) = prices.get(&meter) else { return Ok(without_parent(levels)) };
                    levels.push(Level { list, version_index, rule: Rule::Own(price) });
                    return Ok(Some(levels));
                }
                VersionContent::Derived { parent, markup, overrides, floor } => {
                    let rule = match overrides.get(&meter) {
                        Some(price) => Rule::Override { price, floor: *floor },
                        None => Rule::Markup { markup: *markup, floor: *floor },
                    };
                    levels.push(Level { list, version_index, rule });
                    if matches!(rule, Rule::Override { floor: None, .. }) {
                        return Ok(Some(levels));
                    }
                    list = self.get(parent)?;
                }
            }
        }
    }

    /// The price of `meter` at `at` for a buyer: `path` lists node ids from the most specific (the
    /// subscription) upwards, without the platform; then the `region` default, then the platform default.
    /// The first scope whose list prices the meter then (for `tenant`, with exemptions) wins.
    pub fn resolve(
        &self,
        path: &[&str],
        region: Option<&str>,
        meter: MeterId,
        at: Instant,
        tenant: Option<&str>,
    ) -> Result<Option<Resolved<'_>>, CmsError> {
        for assigned in self.precedence(path, region) {
            if let Some(levels) = self.chain(&assigned.list, meter, at, tenant)? {
                return Ok(Some(Resolved { scope: Some(&assigned.scope), levels }));
            }
        }
        Ok(None)
    }

    /// The assignments along a path in precedence order: its nodes, the region, the default.
    fn precedence<'s, 'p>(
        &'s self,
        path: &'p [&'p str],
        region: Option<&'p str>,
    ) -> impl Iterator<Item = &'s Assigned> + use<'s, 'p> {
        let nodes = path.iter().filter_map(|node| self.nodes.get(*node));
        nodes.chain(region.and_then(|region| self.region_slot(region))).chain(&self.default)
    }

    /// The most specific list along the same precedence that prices pass-through costs (has an uplift).
    pub fn pass_through(&self, path: &[&str], region: Option<&str>) -> Option<&BookList> {
        self.precedence(path, region)
            .filter_map(|assigned| self.lists.get(&assigned.list))
            .find(|list| list.pass_through_uplift.is_some())
    }

    /// Every instant `t` with `from < t < to` where some list's version takes effect, sorted and without
    /// repeats: the billing code cuts a period there so each part is priced by the versions in effect.
    pub fn change_instants(&self, from: Instant, to: Instant) -> Vec<Instant> {
        let instants: BTreeSet<Instant> = self
            .lists
            .values()
            .flat_map(|list| list.versions.iter().map(|version| version.effective))
            .filter(|&instant| from < instant && instant < to)
            .collect();
        instants.into_iter().collect()
    }

    /// The cost calculator: each `(meter, monthly quantity)` priced for a buyer at `at`, as
    /// [`Self::resolve`] finds it. A meter without a price gives an unpriced line, not an error; a negative
    /// quantity is an error.
    pub fn estimate(
        &self,
        path: &[&str],
        region: Option<&str>,
        tenant: Option<&str>,
        at: Instant,
        items: &[(MeterId, Decimal)],
    ) -> Result<Vec<EstimateLine>, CmsError> {
        items
            .iter()
            .enumerate()
            .map(|(index, &(meter, quantity))| {
                if quantity.is_sign_negative() && !quantity.is_zero() {
                    return Err(CmsError::NegativeQuantity {
                        at: Location::record("estimate", u64::try_from(index).unwrap_or(u64::MAX)),
                        meter: meter.to_string(),
                        quantity: quantity.to_string(),
                    });
                }
                let price = match self.resolve(path, region, meter, at, tenant)? {
                    Some(resolved) => Some(EstimatePrice {
                        unit: resolved.unit().to_owned(),
                        list: resolved.list_id().to_owned(),
                        scope: resolved.scope().cloned().unwrap_or(PriceScope::Default),
                        currency: resolved.currency(),
                        amount: resolved.amount(quantity)?,
                    }),
                    None => None,
                };
                Ok(EstimateLine { meter, quantity, price })
            })
            .collect()
    }
}

/// The largest scale a decimal holds.
const MAX_SCALE: u32 = 28;

impl ChangeSet {
    fn source(&self) -> String {
        format!("change set {}", self.id)
    }

    fn check(&self) -> Result<(), CmsError> {
        if self.id.trim().is_empty() {
            return Err(invalid("change set", "", "a change set id must not be empty"));
        }
        if self.scale > MAX_SCALE {
            return Err(invalid(self.source(), self.scale.to_string(), "the scale is at most 28 digits"));
        }
        if self.exempt_tenants.iter().any(|tenant| tenant.trim().is_empty()) {
            return Err(invalid(self.source(), "", "an exempt tenant id must not be empty"));
        }
        Ok(())
    }
}

impl PriceBook {
    /// The ids of the lists a change set's scope names.
    fn lists_in_scope(&self, change_set: &ChangeSet) -> Result<BTreeSet<&str>, CmsError> {
        let assigned = |scope: PriceScope| self.slot(&scope).map(|assigned| assigned.list.as_str());
        let lists: BTreeSet<&str> = match &change_set.scope {
            ChangeScope::Lists(ids) => {
                ids.iter().map(|id| Ok(self.get(id)?.id.as_str())).collect::<Result<_, CmsError>>()?
            }
            ChangeScope::Region(region) => assigned(PriceScope::Region(region.clone())).into_iter().collect(),
            ChangeScope::Nodes(nodes) => {
                nodes.iter().filter_map(|node| assigned(PriceScope::Node(node.clone()))).collect()
            }
            ChangeScope::All => self.lists.keys().map(String::as_str).collect(),
        };
        if lists.is_empty() {
            return Err(invalid(
                change_set.source(),
                format!("{:?}", change_set.scope),
                "no price list in scope",
            ));
        }
        Ok(lists)
    }

    /// Matching prices of `prices` with the change applied, or `None` when no meter matches.
    fn adjusted_prices(
        prices: &BTreeMap<MeterId, MeterPrice>,
        change_set: &ChangeSet,
        list_id: &str,
    ) -> Result<Option<BTreeMap<MeterId, MeterPrice>>, CmsError> {
        let mut changed = false;
        let mut adjusted = prices.clone();
        for (meter, price) in &mut adjusted {
            if change_set.meters.matches(*meter) {
                let name = format!("meter {meter} in price list {list_id} (change set {})", change_set.id);
                price.model = price.model.adjusted_named(&change_set.change, change_set.scale, &name)?;
                changed = true;
            }
        }
        Ok(changed.then_some(adjusted))
    }

    /// The versions a change set would append, one per list it changes, without appending them.
    ///
    /// Each list in scope must have a version in effect at `effective` and none at or after it. The new
    /// version copies the one in effect then (the latest, whatever its exemptions) with the matching meters
    /// adjusted: an own version's prices; a derived version's overrides only, since markup-derived prices
    /// follow the parent by themselves (put the parent in scope to change them). Lists where no meter
    /// matches get no version; a change set that changes no price at all is an error. New versions record
    /// the change set id and its exempt tenants.
    pub fn plan_change_set(&self, change_set: &ChangeSet) -> Result<Vec<(String, PriceVersion)>, CmsError> {
        change_set.check()?;
        let mut plan = Vec::new();
        for list_id in self.lists_in_scope(change_set)? {
            let list = self.get(list_id)?;
            let Some(latest) = list.versions.last() else {
                return Err(invalid(
                    change_set.source(),
                    list_id,
                    format!(
                        "price list {list_id} has no version in effect at {}",
                        change_set.effective.to_rfc3339()
                    ),
                ));
            };
            if latest.effective >= change_set.effective {
                return Err(invalid(
                    change_set.source(),
                    list_id,
                    format!(
                        "price list {list_id} has a version effective at {}, not before the change set's {}",
                        latest.effective.to_rfc3339(),
                        change_set.effective.to_rfc3339()
                    ),
                ));
            }
            let content = match &latest.content {
                VersionContent::Own { prices } => Self::adjusted_prices(prices, change_set, list_id)?
                    .map(|prices| VersionContent::Own { prices }),
                VersionContent::Derived { parent, markup, overrides, floor } => {
                    Self::adjusted_prices(overrides, change_set, list_id)?.map(|overrides| {
                        VersionContent::Derived {
                            parent: parent.clone(),
                            markup: *markup,
                            overrides,
                            floor: *floor,
                        }
                    })
                }
            };
            if let Some(content) = content {
                let version = PriceVersion {
                    effective: change_set.effective,
                    content,
                    change_set: Some(change_set.id.clone()),
                    exempt_tenants: change_set.exempt_tenants.clone(),
                };
                plan.push((list_id.to_owned(), version));
            }
        }
        if plan.is_empty() {
            return Err(invalid(
                change_set.source(),
                format!("{:?}", change_set.meters),
                "no price in scope matches the meter filter (markup-derived prices change with their parent)",
            ));
        }
        Ok(plan)
    }

    /// Plan a change set and append every version it plans, all or nothing; returns the lists versioned.
    pub fn apply_change_set(&mut self, change_set: &ChangeSet) -> Result<Vec<String>, CmsError> {
        let plan = self.plan_change_set(change_set)?;
        for (list_id, version) in &plan {
            self.check_append(list_id, version)?;
        }
        let mut versioned = Vec::with_capacity(plan.len());
        for (list_id, version) in plan {
            self.lists.get_mut(&list_id).ok_or_else(|| unknown_list(&list_id))?.versions.push(version);
            versioned.push(list_id);
        }
        Ok(versioned)
    }

    /// A copy of the book with a change set applied, to preview its effect (revenue impact) before
    /// applying it.
    pub fn with_change_set(&self, change_set: &ChangeSet) -> Result<PriceBook, CmsError> {
        let mut preview = self.clone();
        preview.apply_change_set(change_set)?;
        Ok(preview)
    }
}

/// One assignment as stored.
#[derive(Serialize, Deserialize)]
struct AssignmentData {
    scope: PriceScope,
    list: String,
}

/// The stored shape of a book: its lists and assignments; loading checks everything a put would.
#[derive(Serialize, Deserialize)]
struct PriceBookData {
    #[serde(default)]
    lists: Vec<BookList>,
    #[serde(default)]
    assignments: Vec<AssignmentData>,
}

impl Serialize for PriceBook {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Assignment<'a> {
            scope: &'a PriceScope,
            list: &'a str,
        }
        #[derive(Serialize)]
        struct Book<'a> {
            lists: Vec<&'a BookList>,
            assignments: Vec<Assignment<'a>>,
        }
        Book {
            lists: self.lists.values().collect(),
            assignments: self.assignments().map(|(scope, list)| Assignment { scope, list }).collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PriceBook {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let data = PriceBookData::deserialize(deserializer)?;
        Self::try_from(data).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<PriceBookData> for PriceBook {
    type Error = CmsError;
    fn try_from(data: PriceBookData) -> Result<Self, Self::Error> {
        let mut book = Self::new();
        for list in data.lists {
            check_list(&list)?;
            if book.lists.contains_key(&list.id) {
                return Err(invalid("price book", list.id.as_str(), "two price lists have this id"));
            }
            book.lists.insert(list.id.clone(), list);
        }
        for list in book.lists.values() {
            book.check_parents(list, list.parents(), None)?;
        }
        for assignment in data.assignments {
            book.assign(assignment.scope, &assignment.list)?;
        }
        Ok(book)
    }
}
