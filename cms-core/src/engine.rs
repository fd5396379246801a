//! The engine facade: commercial commands become events, events are persisted through a [`Store`] and
//! applied to the in-memory state; usage goes to the store; month-end rates a period from the store.
//!
//! This is the seam later layers hang on: access checks and audit (governance) wrap [`Cms::execute`], the
//! `SQLite` and `PostgreSQL` stores implement [`Store`], the Usage API client implements [`UsageSource`].
//! State is rebuilt by replaying events when a store is opened, so a second run continues where the first
//! stopped.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::billing::{BillingRules, MonthEndReport, bill};
use crate::error::CmsError;
use crate::model::hierarchy::{Hierarchy, NodeKind};
use crate::model::pricing::{CommissionPlan, PriceList};
use crate::model::terms::CommercialTerms;
use crate::model::time::Period;
use crate::model::usage::UsageRecord;
use crate::rating::UsageAccumulator;
use crate::source::{Checkpoint, UsageSource};
use crate::store::{Store, UsageWrite};

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
}

/// The state events build: the channel and its commercial terms.
#[derive(Debug, Clone)]
pub struct State {
    /// The channel.
    pub hierarchy: Hierarchy,
    /// Price lists, commission plans, override rates and where they apply.
    pub terms: CommercialTerms,
}

impl Default for State {
    fn default() -> Self {
        Self { hierarchy: Hierarchy::new(PLATFORM_ID, "Platform"), terms: CommercialTerms::default() }
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
            Event::LabelSet { .. } | Event::PriceListPut { .. } | Event::CommissionPlanPut { .. } => Ok(()),
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
                        at: crate::error::Location::whole("override rate"),
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
        }
        Ok(())
    }
}

/// What pulling a usage source did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullSummary {
    /// Pages read.
    pub pages: u64,
    /// Records read.
    pub records: u64,
    /// What the store did with them.
    pub write: UsageWrite,
    /// Records of meters the catalogue does not know (kept, and flagged here).
    pub unknown_meters: Vec<crate::model::meter::MeterId>,
}

/// The engine: state in memory, persisted through `S`.
pub struct Cms<S: Store> {
    store: S,
    state: State,
}

impl<S: Store> Cms<S> {
    /// Open an engine on a store, replaying its events.
    pub fn open(store: S) -> Result<Self, CmsError> {
        let mut state = State::default();
        for event in store.events()? {
            state.apply(&event)?;
        }
        Ok(Self { store, state })
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Check, persist, then apply one command. Refused commands change nothing.
    pub fn execute(&mut self, event: &Event) -> Result<(), CmsError> {
        self.state.check(event)?;
        self.store.append_events(std::slice::from_ref(event))?;
        self.state.apply(event)
    }

    /// Store usage records (deduplicated by natural key).
    pub fn ingest(&mut self, records: &[UsageRecord]) -> Result<UsageWrite, CmsError> {
        self.store.put_usage(records, None)
    }

    /// Pull every page of a source into the store. Each page is stored whole or not at all.
    pub fn pull(&mut self, source: &mut dyn UsageSource) -> Result<PullSummary, CmsError> {
        let mut summary = PullSummary::default();
        while let Some(sourced) = source.next_page()? {
            let page = &sourced.page;
            summary.pages += 1;
            summary.records += page.records.len() as u64;
            for record in &page.records {
                if record.meter.info().is_none() && !summary.unknown_meters.contains(&record.meter) {
                    summary.unknown_meters.push(record.meter);
                }
            }
            let write = self.store.put_usage(&page.records, Checkpoint::after(&sourced.origin).as_ref())?;
            summary.write.inserted += write.inserted;
            summary.write.duplicates += write.duplicates;
            summary.write.corrections.extend(write.corrections);
        }
        Ok(summary)
    }

    /// Rate a period from stored usage and build its invoices and statements.
    pub fn month_end(&self, period: Period, rules: BillingRules) -> Result<MonthEndReport, CmsError> {
        let mut accumulator = UsageAccumulator::new(period);
        self.store.for_each_usage(&period, &mut |record| {
            accumulator
                .ingest(&record.as_row(), || {
                    crate::error::Location::whole(format!("stored usage of {}", record.subscription))
                })
                .map(drop)
        })?;
        bill(&self.state.hierarchy, &self.state.terms, rules, &accumulator.finish())
    }
}
