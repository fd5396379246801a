//! Commercial terms of a channel: which price list, commission plan and override rate applies where.
//!
//! Assignments hang on nodes of the [`Hierarchy`]. Resolution walks up from the node:
//! - price: subscription > tenant > partner > distributor > platform; the most specific list *that prices
//!   the meter* wins, so a partner list with a few meters falls back to the platform list for the rest;
//! - commission plan: a partner's own plan, else the nearest ancestor's (its distributor's, then the
//!   platform's);
//! - distributor override rate: the distributor's own, else the platform's.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::CmsError;
use crate::model::hierarchy::{Hierarchy, NodeIndex};
use crate::model::meter::MeterId;
use crate::model::money::Currency;
use crate::model::pricing::{CommissionPlan, MeterPrice, PriceList};
use crate::model::time::Instant;

/// Price lists, commission plans and override rates, and the nodes they are assigned to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommercialTerms {
    /// Price lists by id.
    pub price_lists: BTreeMap<String, PriceList>,
    /// Node id -> price list id.
    pub price_assignments: HashMap<String, String>,
    /// Commission plans by id.
    pub commission_plans: BTreeMap<String, CommissionPlan>,
    /// Node id -> commission plan id.
    pub commission_assignments: HashMap<String, String>,
    /// Node id (a distributor, or the platform as the default) -> override rate (0.02 for 2 %).
    pub override_rates: HashMap<String, Decimal>,
    /// Dated exchange rates.
    #[serde(default)]
    pub fx: FxTable,
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
}

/// A resolved price: the list it came from and the meter's price in it.
#[derive(Debug, Clone, Copy)]
pub struct ResolvedPrice<'a> {
    /// The list.
    pub list: &'a PriceList,
    /// The meter's price.
    pub price: &'a MeterPrice,
}

impl CommercialTerms {
    /// Add or replace a price list.
    pub fn put_price_list(&mut self, list: PriceList) {
        self.price_lists.insert(list.id.clone(), list);
    }

    /// Assign a price list to a node.
    pub fn assign_price_list(&mut self, node: &str, list: &str) -> Result<(), CmsError> {
        if !self.price_lists.contains_key(list) {
            return Err(CmsError::UnknownNode { kind: "price list".into(), id: list.into(), context: None });
        }
        self.price_assignments.insert(node.to_owned(), list.to_owned());
        Ok(())
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

    /// The price of `meter` for the subscription at `subscription`, by precedence.
    pub fn price<'a>(
        &'a self,
        hierarchy: &Hierarchy,
        subscription: NodeIndex,
        meter: MeterId,
    ) -> Option<ResolvedPrice<'a>> {
        hierarchy.ancestry(subscription).find_map(|node| {
            let list = self.price_lists.get(self.price_assignments.get(&hierarchy.node(node).id)?)?;
            Some(ResolvedPrice { list, price: list.price(meter)? })
        })
    }

    /// The list that prices pass-through costs for the subscription at `subscription`: the most specific
    /// list with an uplift.
    pub fn pass_through<'a>(
        &'a self,
        hierarchy: &Hierarchy,
        subscription: NodeIndex,
    ) -> Option<&'a PriceList> {
        hierarchy.ancestry(subscription).find_map(|node| {
            let list = self.price_lists.get(self.price_assignments.get(&hierarchy.node(node).id)?)?;
            list.pass_through_uplift.is_some().then_some(list)
        })
    }

    /// The commission plan of a partner (or distributor), own or inherited.
    pub fn commission_plan(&self, hierarchy: &Hierarchy, node: NodeIndex) -> Option<&CommissionPlan> {
        hierarchy.ancestry(node).find_map(|current| {
            self.commission_plans.get(self.commission_assignments.get(&hierarchy.node(current).id)?)
        })
    }

    /// The override rate of a distributor, own or the platform's.
    pub fn override_rate(&self, hierarchy: &Hierarchy, distributor: NodeIndex) -> Option<Decimal> {
        hierarchy
            .ancestry(distributor)
            .find_map(|current| self.override_rates.get(&hierarchy.node(current).id).copied())
    }
}
