//! Commercial events (what commands record and the store persists) and the state they build.

use std::collections::BTreeSet;

use chrono::Datelike;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::engine::ingest::IngestPolicy;
use crate::error::{CmsError, Location};
use crate::model::hierarchy::{Hierarchy, NodeKind};
use crate::model::money::Currency;
use crate::model::pricing::{CommissionPlan, PriceList};
use crate::model::terms::CommercialTerms;
use crate::model::time::{Instant, Period};

/// The id of the platform root in every engine.
pub const PLATFORM_ID: &str = "platform";

/// A commercial change, as commanded and as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A distributor, partner, tenant or subscription joined the channel.
    NodeAdded {
        /// Node id.
        id: String,
        /// Level.
        kind: NodeKind,
        /// Parent id (`None`: the platform).
        parent: Option<String>,
        /// Display name.
        name: String,
    },
    /// A node was renamed.
    NodeRenamed {
        /// Node id.
        id: String,
        /// New display name.
        name: String,
    },
    /// A level got a new display label ("Department" for tenants).
    LabelSet {
        /// The level.
        kind: NodeKind,
        /// The label.
        label: String,
    },
    /// A price list was created or replaced.
    PriceListPut {
        /// The list.
        list: PriceList,
    },
    /// A price list was assigned to a node.
    PriceListAssigned {
        /// Node id.
        node: String,
        /// List id.
        list: String,
    },
    /// A commission plan was created or replaced.
    CommissionPlanPut {
        /// The plan.
        plan: CommissionPlan,
    },
    /// A commission plan was assigned to a node.
    CommissionPlanAssigned {
        /// Node id.
        node: String,
        /// Plan id.
        plan: String,
    },
    /// A distributor's (or the platform's default) override rate was set.
    OverrideRateSet {
        /// Node id.
        node: String,
        /// Rate (0.02 for 2 %).
        rate: Decimal,
    },
    /// An exchange rate takes effect: from `effective`, one `from` is worth `rate` of `to`.
    ExchangeRateSet {
        /// Source currency.
        from: Currency,
        /// Target currency.
        to: Currency,
        /// When it takes effect.
        effective: Instant,
        /// The rate.
        rate: Decimal,
    },
    /// How usage is ingested (exclusions, look-back window) changed.
    IngestPolicySet {
        /// The new policy.
        policy: IngestPolicy,
    },
    /// A billing period was invoiced: its invoices are final, later usage of it becomes adjustments.
    PeriodClosed {
        /// The period (a calendar month).
        period: Period,
    },
}

/// The state events build: the channel and its commercial terms.
#[derive(Debug, Clone)]
pub struct State {
    /// The channel.
    pub hierarchy: Hierarchy,
    /// Price lists, commission plans, override rates and where they apply.
    pub terms: CommercialTerms,
    /// How usage is ingested.
    pub ingest_policy: IngestPolicy,
    /// Periods already invoiced.
    pub closed_periods: BTreeSet<Period>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            hierarchy: Hierarchy::new(PLATFORM_ID, "Platform"),
            terms: CommercialTerms::default(),
            ingest_policy: IngestPolicy::default(),
            closed_periods: BTreeSet::new(),
        }
    }
}

impl State {
    fn node_exists(&self, id: &str) -> Result<(), CmsError> {
        if self.hierarchy.find(id).is_some() {
            Ok(())
        } else {
            Err(CmsError::UnknownNode { kind: "node".into(), id: id.to_owned(), context: None })
        }
    }

    /// Whether `event` would apply cleanly, without applying it.
    pub fn check(&self, event: &Event) -> Result<(), CmsError> {
        match event {
            Event::NodeAdded { id, kind, parent, .. } => {
                self.hierarchy.check_add(id, *kind, parent.as_deref(), None).map(drop)
            }
            Event::NodeRenamed { id, .. } => self.node_exists(id),
            Event::LabelSet { .. }
            | Event::PriceListPut { .. }
            | Event::CommissionPlanPut { .. }
            | Event::IngestPolicySet { .. } => Ok(()),
            Event::ExchangeRateSet { rate, .. } => {
                if rate.is_sign_negative() || rate.is_zero() {
                    return Err(CmsError::InvalidValue {
                        at: Location::whole("exchange rate"),
                        text: rate.to_string(),
                        reason: "must be positive".into(),
                    });
                }
                Ok(())
            }
            Event::PeriodClosed { period } => {
                let month = Period::month(period.start.year(), period.start.month())?;
                if month != *period {
                    return Err(CmsError::InvalidPeriod {
                        text: period.to_string(),
                        reason: "only calendar months are closed".into(),
                    });
                }
                if self.closed_periods.contains(period) {
                    return Err(CmsError::InvalidPeriod {
                        text: period.to_string(),
                        reason: "already closed".into(),
                    });
                }
                Ok(())
            }
            Event::PriceListAssigned { node, list } => {
                self.node_exists(node)?;
                if self.terms.price_lists.contains_key(list) {
                    Ok(())
                } else {
                    Err(CmsError::UnknownNode { kind: "price list".into(), id: list.clone(), context: None })
                }
            }
            Event::CommissionPlanAssigned { node, plan } => {
                self.node_exists(node)?;
                if self.terms.commission_plans.contains_key(plan) {
                    Ok(())
                } else {
                    Err(CmsError::UnknownNode {
                        kind: "commission plan".into(),
                        id: plan.clone(),
                        context: None,
                    })
                }
            }
            Event::OverrideRateSet { node, rate } => {
                self.node_exists(node)?;
                if rate.is_sign_negative() {
                    return Err(CmsError::InvalidValue {
                        at: Location::whole("override rate"),
                        text: rate.to_string(),
                        reason: "must not be negative".into(),
                    });
                }
                Ok(())
            }
        }
    }

    /// Apply an event (checked first: an event that does not apply changes nothing).
    pub fn apply(&mut self, event: &Event) -> Result<(), CmsError> {
        self.check(event)?;
        match event {
            Event::NodeAdded { id, kind, parent, name } => {
                self.hierarchy.add(id, *kind, parent.as_deref(), name, None)?;
            }
            Event::NodeRenamed { id, name } => self.hierarchy.rename(id, name)?,
            Event::LabelSet { kind, label } => self.hierarchy.set_label(*kind, label),
            Event::PriceListPut { list } => self.terms.put_price_list(list.clone()),
            Event::PriceListAssigned { node, list } => self.terms.assign_price_list(node, list)?,
            Event::CommissionPlanPut { plan } => self.terms.put_commission_plan(plan.clone()),
            Event::CommissionPlanAssigned { node, plan } => self.terms.assign_commission_plan(node, plan)?,
            Event::OverrideRateSet { node, rate } => self.terms.set_override_rate(node, *rate),
            Event::ExchangeRateSet { from, to, effective, rate } => {
                self.terms.fx.set(*from, *to, *effective, *rate);
            }
            Event::IngestPolicySet { policy } => self.ingest_policy = policy.clone(),
            Event::PeriodClosed { period } => {
                self.closed_periods.insert(*period);
            }
        }
        Ok(())
    }
}
