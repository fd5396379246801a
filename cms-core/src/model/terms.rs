//! Commercial terms of a channel: the price book, commission plans, override rates, exchange rates,
//! discounts and credits, and where they apply.
//!
//! - prices: the [`PriceBook`] (versioned lists assigned to scopes; precedence subscription > tenant >
//!   partner > distributor > region default > platform default, the most specific list *that prices the
//!   meter* wins);
//! - commission plan: a partner's own plan, else the nearest ancestor's (its distributor's, then the
//!   platform's);
//! - distributor override rate: the distributor's own, else the platform's;
//! - discounts and credits: see [`crate::model::adjustments`].

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::CmsError;
use crate::model::adjustments::{Credit, Discount};
use crate::model::hierarchy::{Hierarchy, NodeIndex};
use crate::model::money::Currency;
use crate::model::price_book::{BookList, PriceBook, PriceScope, PriceVersion};
use crate::model::pricing::{CommissionPlan, PriceList};
use crate::model::time::Instant;

/// Price book, commission plans, override rates, exchange rates, discounts and credits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommercialTerms {
    /// Versioned price lists and where they are assigned.
    #[serde(default)]
    pub book: PriceBook,
    /// Commission plans by id.
    pub commission_plans: BTreeMap<String, CommissionPlan>,
    /// Node id -> commission plan id.
    pub commission_assignments: HashMap<String, String>,
    /// Node id (a distributor, or the platform as the default) -> override rate (0.02 for 2 %).
    pub override_rates: HashMap<String, Decimal>,
    /// Node id (a distributor, or the platform as the default) -> the commission plan whose bands give its
    /// override on its network's revenue (instead of a flat rate).
    #[serde(default)]
    pub override_plans: HashMap<String, String>,
    /// Dated exchange rates.
    #[serde(default)]
    pub fx: FxTable,
    /// Discounts by id.
    #[serde(default)]
    pub discounts: BTreeMap<String, Discount>,
    /// Credits by id.
    #[serde(default)]
    pub credits: BTreeMap<String, Credit>,
}

/// How a distributor's override is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideBasis<'a> {
    /// Bands of a commission plan on the network's revenue.
    Plan(&'a CommissionPlan),
    /// A flat rate of the network's revenue.
    Rate(Decimal),
}

impl OverrideBasis<'_> {
    /// The exact override of `base` (bands applied to its size, signed like it) and the bands applied.
    pub fn exact(&self, base: Decimal) -> Result<(Decimal, Vec<crate::model::tiers::BandAmount>), CmsError> {
        match self {
            Self::Rate(rate) => Ok((crate::model::tiers::checked_mul(*rate, base)?, Vec::new())),
            Self::Plan(plan) => {
                let bands = plan.bands.breakdown(base.abs())?;
                let size: Decimal = bands.iter().map(|band| band.amount).sum();
                Ok((if base.is_sign_negative() { -size } else { size }, bands))
            }
        }
    }

    /// The flat rate, if it is one.
    pub fn rate(&self) -> Option<Decimal> {
        match self {
            Self::Rate(rate) => Some(*rate),
            Self::Plan(_) => None,
        }
    }

    /// The plan's id, if it is one.
    pub fn plan(&self) -> Option<&str> {
        match self {
            Self::Plan(plan) => Some(&plan.id),
            Self::Rate(_) => None,
        }
    }
}

/// Exchange rates with the instant each takes effect: `1 from = rate to`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxTable {
    /// `"FROM/TO"` -> effective from -> rate.
    pub rates: BTreeMap<String, BTreeMap<Instant, Decimal>>,
}

impl FxTable {
    /// Record that from `effective`, one `from` is worth `rate` of `to`.
    pub fn set(&mut self, from: Currency, to: Currency, effective: Instant, rate: Decimal) {
        self.rates.entry(format!("{from}/{to}")).or_default().insert(effective, rate);
    }

    /// The rate in effect at `at` (the latest set at or before it); 1 for a currency into itself.
    pub fn rate(&self, from: Currency, to: Currency, at: Instant) -> Option<Decimal> {
        if from == to {
            return Some(Decimal::ONE);
        }
        let dated = self.rates.get(&format!("{from}/{to}"))?;
        dated.range(..=at).next_back().map(|(_, rate)| *rate)
    }

    /// Every instant `t` with `from < t < to` where a rate takes effect.
    pub fn change_instants(&self, from: Instant, to: Instant) -> impl Iterator<Item = Instant> + '_ {
        self.rates.values().flat_map(BTreeMap::keys).copied().filter(move |&at| from < at && at < to)
    }
}

/// A price sheet (one list of meter prices) as a book list whose one version applies from `effective`.
pub fn sheet_list(sheet: PriceList, name: &str, effective: Instant) -> BookList {
    let mut list = BookList::new(&sheet.id, name, sheet.currency);
    list.pass_through_uplift = sheet.pass_through_uplift;
    list.versions.push(PriceVersion::own(effective, sheet.prices));
    list
}

impl CommercialTerms {
    /// Add a price sheet as a list that applies from the beginning of time (the workload's single list,
    /// tests).
    pub fn put_price_list(&mut self, sheet: PriceList) -> Result<(), CmsError> {
        let name = sheet.id.clone();
        self.book.put_list(sheet_list(sheet, &name, Instant::MIN_UTC))
    }

    /// Assign a price list to a scope.
    pub fn assign_price_list(&mut self, scope: PriceScope, list: &str) -> Result<(), CmsError> {
        self.book.assign(scope, list)
    }

    /// Add or replace a commission plan.
    pub fn put_commission_plan(&mut self, plan: CommissionPlan) {
        self.commission_plans.insert(plan.id.clone(), plan);
    }

    /// Assign a commission plan to a node (a partner, a distributor for its partners, or the platform).
    pub fn assign_commission_plan(&mut self, node: &str, plan: &str) -> Result<(), CmsError> {
        if !self.commission_plans.contains_key(plan) {
            return Err(CmsError::UnknownNode {
                kind: "commission plan".into(),
                id: plan.into(),
                context: None,
            });
        }
        self.commission_assignments.insert(node.to_owned(), plan.to_owned());
        Ok(())
    }

    /// Set the override rate of a distributor (or the platform default).
    pub fn set_override_rate(&mut self, node: &str, rate: Decimal) {
        self.override_rates.insert(node.to_owned(), rate);
    }

    /// The commission plan of a partner (or distributor), own or inherited.
    pub fn commission_plan(&self, hierarchy: &Hierarchy, node: NodeIndex) -> Option<&CommissionPlan> {
        hierarchy.ancestry(node).find_map(|current| {
            self.commission_plans.get(self.commission_assignments.get(&hierarchy.node(current).id)?)
        })
    }

    /// How a distributor's override is computed: the nearest level (the distributor, then its ancestors)
    /// with an override plan or rate decides; at one level a plan wins over a rate.
    pub fn override_basis(&self, hierarchy: &Hierarchy, distributor: NodeIndex) -> Option<OverrideBasis<'_>> {
        hierarchy.ancestry(distributor).find_map(|current| {
            let id = &hierarchy.node(current).id;
            self.override_plans
                .get(id)
                .and_then(|plan| self.commission_plans.get(plan))
                .map(OverrideBasis::Plan)
                .or_else(|| self.override_rates.get(id).copied().map(OverrideBasis::Rate))
        })
    }

    /// Assign the commission plan whose bands give a distributor's override (or the platform default).
    pub fn assign_override_plan(&mut self, node: &str, plan: &str) -> Result<(), CmsError> {
        if !self.commission_plans.contains_key(plan) {
            return Err(CmsError::UnknownNode {
                kind: "commission plan".into(),
                id: plan.into(),
                context: None,
            });
        }
        self.override_plans.insert(node.to_owned(), plan.to_owned());
        Ok(())
    }

    /// The override rate of a distributor, own or the platform's.
    pub fn override_rate(&self, hierarchy: &Hierarchy, distributor: NodeIndex) -> Option<Decimal> {
        hierarchy
            .ancestry(distributor)
            .find_map(|current| self.override_rates.get(&hierarchy.node(current).id).copied())
    }
}
