//! Commercial events (what commands record and the store persists) and the state they build.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Datelike;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::billing::BillingRules;
use crate::billing::chargeback::ChargebackSettings;
use crate::billing::invoice::{DocumentKind, InvoiceSettings, TaxRule, TaxTable};
use crate::engine::ingest::IngestPolicy;
use crate::engine::invoicing::{IssuedDocument, Sequence};
use crate::error::{CmsError, Location};
use crate::governance::policy::{ChangeRequest, ChangeRequests, Policies};
use crate::governance::rbac::{RoleAssignment, Roles};
use crate::model::adjustments::{Credit, Discount, Recurrence};
use crate::model::catalogue::{Catalogue, Offer, OfferState, Plan, Service};
use crate::model::channel::{BillingProfile, ChannelAttributes, SubscriptionInfo};
use crate::model::hierarchy::{Hierarchy, NodeKind};
use crate::model::money::Currency;
use crate::model::price_book::{BookList, ChangeSet, PriceScope, PriceVersion};
use crate::model::pricing::CommissionPlan;
use crate::model::terms::CommercialTerms;
use crate::model::time::{Instant, Period};
use crate::monitoring::alerts::{AlertBook, Finding};
use crate::monitoring::budgets::Budget;
use crate::monitoring::jobs::{JobLog, JobRun, MonitoringSettings};

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
    /// A price list was created, with its first versions (if any).
    PriceListCreated {
        /// The list.
        list: BookList,
    },
    /// A price list got a new version, effective after its last one.
    PriceVersionAdded {
        /// The list's id.
        list: String,
        /// The version.
        version: PriceVersion,
    },
    /// A price list was assigned to a scope (a node, a region, the platform default), replacing the list
    /// assigned there before.
    PriceListAssigned {
        /// Where.
        scope: PriceScope,
        /// The list's id.
        list: String,
    },
    /// A scope lost its price list.
    PriceListUnassigned {
        /// Where.
        scope: PriceScope,
    },
    /// A price list was copied, every version, under a new id (to assign it to another scope).
    PriceListCloned {
        /// The list copied.
        source: String,
        /// The copy's id.
        id: String,
        /// The copy's name.
        name: String,
    },
    /// A bulk price change was applied: a new version of every list in its scope.
    ChangeSetApplied {
        /// The change set.
        change_set: ChangeSet,
    },
    /// A discount was granted (or replaced, by id).
    DiscountSet {
        /// The discount.
        discount: Discount,
    },
    /// A credit was granted (or replaced, by id).
    CreditGranted {
        /// The credit.
        credit: Credit,
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
    /// A distributor's (or the platform's default) override is computed by a commission plan's bands.
    OverridePlanAssigned {
        /// Node id.
        node: String,
        /// Plan id.
        plan: String,
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
    /// How documents round amounts (and whether double-counting meters are priced) changed; periods
    /// closed from now on are invoiced with these rules.
    BillingRulesSet {
        /// The rules.
        rules: BillingRules,
    },
    /// A tenant moved to another partner (or distributor, or the platform), or a subscription to another
    /// tenant: usage starting at or after `effective` is billed and commissioned on the new branch.
    NodeMoved {
        /// The node moved.
        id: String,
        /// Its new parent.
        parent: String,
        /// From when.
        effective: Instant,
    },
    /// A distributor, partner or tenant was suspended: nothing new is onboarded below it.
    OrganisationSuspended {
        /// The organisation.
        id: String,
        /// From when.
        effective: Instant,
    },
    /// A suspended organisation was enabled again.
    OrganisationReenabled {
        /// The organisation.
        id: String,
        /// From when.
        effective: Instant,
    },
    /// A subscription's attributes were set: offer, state, external ids, region.
    SubscriptionSet {
        /// The subscription's node id.
        id: String,
        /// Its attributes.
        info: SubscriptionInfo,
    },
    /// An organisation's billing relationship, bill-to party, currency and payment terms were set.
    BillingProfileSet {
        /// The organisation.
        node: String,
        /// The profile.
        profile: BillingProfile,
    },
    /// A service (a group of meters, a SKU) was defined or replaced.
    ServicePut {
        /// The service.
        service: Service,
    },
    /// A plan (services and quotas) was defined or replaced.
    PlanPut {
        /// The plan.
        plan: Plan,
    },
    /// An offer (a base plan and add-on plans) was defined or replaced.
    OfferPut {
        /// The offer.
        offer: Offer,
    },
    /// An offer became private, public or decommissioned.
    OfferStateSet {
        /// The offer.
        offer: String,
        /// Its new state.
        state: OfferState,
    },
    /// A billing period was invoiced: its invoices are final, later usage of it becomes adjustments.
    PeriodClosed {
        /// The period (a calendar month).
        period: Period,
    },
    /// Invoice settings (issue delay, line grouping, progressive-billing thresholds) were set.
    InvoiceSettingsSet {
        /// The settings.
        settings: InvoiceSettings,
    },
    /// A tax rule was added or replaced (by id).
    TaxRuleSet {
        /// The rule.
        rule: TaxRule,
    },
    /// A tax rule was removed.
    TaxRuleRemoved {
        /// Its id.
        id: String,
    },
    /// Chargeback settings (cost centres, shared costs, accounts) were set.
    ChargebackSettingsSet {
        /// The settings.
        settings: ChargebackSettings,
    },
    /// A document was issued: its body (stored under [`crate::engine::INVOICE_DOCUMENT`]) hashes to `hash`.
    DocumentIssued {
        /// Its number: the issuer's next in sequence.
        number: String,
        /// What it is.
        kind: DocumentKind,
        /// The billing period.
        period: Period,
        /// The issuer.
        issuer: String,
        /// The buyer.
        buyer: String,
        /// SHA-256 of its JSON body, lowercase hex.
        hash: String,
        /// The invoice a credit or debit note corrects.
        #[serde(default)]
        corrects: Option<String>,
    },
    /// An invoice was voided by a credit note (issued in the same command).
    InvoiceVoided {
        /// The invoice.
        number: String,
        /// The credit note.
        credit_note: String,
    },
    /// A role was assigned to a principal at a node.
    RoleAssigned {
        /// The assignment.
        assignment: RoleAssignment,
    },
    /// A role assignment was removed.
    RoleRevoked {
        /// The assignment.
        assignment: RoleAssignment,
    },
    /// The platform's policies were set.
    PoliciesSet {
        /// The policies.
        policies: Policies,
    },
    /// An admin asked for a change set to be approved by another (four eyes).
    ChangeRequested {
        /// The change set (its id names the request).
        change_set: ChangeSet,
        /// The requesting principal (the one recording the event).
        requested_by: String,
    },
    /// Another admin approved a requested change set.
    ChangeApproved {
        /// The change set's id.
        id: String,
        /// The approving principal (the one recording the event).
        approved_by: String,
    },
    /// The raw usage of an invoiced period was purged (retention): its month-end and documents stay.
    UsagePurged {
        /// The period.
        period: Period,
    },
    /// A budget was set (or replaced, by id).
    BudgetSet {
        /// The budget.
        budget: Budget,
    },
    /// A budget was removed.
    BudgetRemoved {
        /// Its id.
        id: String,
    },
    /// Monitoring and scheduler settings were set.
    MonitoringSettingsSet {
        /// The settings.
        settings: MonitoringSettings,
    },
    /// An evaluation of alerts (complete: open alerts it did not find are resolved; or, when `partial`, only
    /// raising what it found).
    AlertsEvaluated {
        /// What it found.
        findings: Vec<Finding>,
        /// Raise only: resolve nothing.
        #[serde(default)]
        partial: bool,
    },
    /// An open alert was acknowledged.
    AlertAcknowledged {
        /// The alert.
        id: u64,
        /// The principal (the one recording the event).
        by: String,
        /// A note.
        #[serde(default)]
        note: Option<String>,
    },
    /// An alert was resolved by hand.
    AlertResolved {
        /// The alert.
        id: u64,
        /// The principal (the one recording the event).
        by: String,
        /// A note.
        #[serde(default)]
        note: Option<String>,
    },
    /// A scheduled job ran.
    JobRecorded {
        /// The run.
        run: JobRun,
    },
    /// A change that takes effect inside a closed (invoiced) period, made on purpose: issued documents
    /// stay as they are; re-rating the period issues credit or debit notes for the difference.
    Correction {
        /// Why.
        reason: String,
        /// The change.
        event: Box<Event>,
    },
}

/// The state events build: the channel and its commercial terms.
#[derive(Debug, Clone)]
pub struct State {
    /// The channel.
    pub hierarchy: Hierarchy,
    /// Organisation statuses, subscription attributes, billing profiles.
    pub channel: ChannelAttributes,
    /// Services, plans and offers.
    pub catalogue: Catalogue,
    /// Price lists, commission plans, override rates and where they apply.
    pub terms: CommercialTerms,
    /// How usage is ingested.
    pub ingest_policy: IngestPolicy,
    /// Periods already invoiced.
    pub closed_periods: BTreeSet<Period>,
    /// How documents round amounts.
    pub rules: BillingRules,
    /// Invoice settings.
    pub invoice_settings: InvoiceSettings,
    /// Tax rules.
    pub taxes: TaxTable,
    /// Chargeback settings.
    pub chargeback: ChargebackSettings,
    /// Role assignments.
    pub roles: Roles,
    /// Policies.
    pub policies: Policies,
    /// Change sets requested for a second approver.
    pub change_requests: ChangeRequests,
    /// Periods whose raw usage was purged.
    pub purged_periods: BTreeSet<Period>,
    /// Issued documents by number.
    pub issued: BTreeMap<String, IssuedDocument>,
    /// The last number issued per issuer.
    pub sequences: BTreeMap<String, Sequence>,
    /// Budgets by id.
    pub budgets: BTreeMap<String, Budget>,
    /// Monitoring and scheduler settings.
    pub monitoring: MonitoringSettings,
    /// Alerts.
    pub alerts: AlertBook,
    /// Scheduled job runs.
    pub jobs: JobLog,
}

impl Default for State {
    fn default() -> Self {
        Self {
            hierarchy: Hierarchy::new(PLATFORM_ID, "Platform"),
            channel: ChannelAttributes::new(),
            catalogue: Catalogue::with_default_services(),
            terms: CommercialTerms::default(),
            ingest_policy: IngestPolicy::default(),
            closed_periods: BTreeSet::new(),
            rules: BillingRules::default(),
            invoice_settings: InvoiceSettings::default(),
            taxes: TaxTable::default(),
            chargeback: ChargebackSettings::default(),
            roles: Roles::default(),
            policies: Policies::default(),
            change_requests: ChangeRequests::new(),
            purged_periods: BTreeSet::new(),
            issued: BTreeMap::new(),
            sequences: BTreeMap::new(),
            budgets: BTreeMap::new(),
            monitoring: MonitoringSettings::default(),
            alerts: AlertBook::default(),
            jobs: JobLog::default(),
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

    /// Refuse a change that would take effect at `effective`, before the end of the latest closed period:
    /// its invoices are issued and never change (corrections go on an open period, as credits).
    fn check_open(&self, effective: Instant, what: &str) -> Result<(), CmsError> {
        match self.closed_periods.iter().next_back() {
            Some(closed) if effective < closed.end => Err(CmsError::InvalidValue {
                at: Location::whole(what.to_owned()),
                text: effective.to_rfc3339(),
                reason: format!(
                    "takes effect before the end of {closed}, which is closed: its invoices are issued"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// The earliest instant a dated event takes effect, for events that change how usage is billed.
    fn effective_of(event: &Event) -> Option<(Instant, &'static str)> {
        match event {
            Event::NodeMoved { effective, .. } => Some((*effective, "move")),
            Event::PriceVersionAdded { version, .. } => Some((version.effective, "price version")),
            Event::ChangeSetApplied { change_set } => Some((change_set.effective, "change set")),
            Event::DiscountSet { discount } => Some((discount.from, "discount")),
            Event::ExchangeRateSet { effective, .. } => Some((*effective, "exchange rate")),
            Event::CreditGranted { credit } => Some((
                match credit.recurrence {
                    Recurrence::OneOff { period } | Recurrence::Recurring { from: period, .. } => {
                        period.start
                    }
                },
                "credit",
            )),
            _ => None,
        }
    }

    /// Apply an event recorded at `at`. An event that does not apply is refused with the reason and
    /// changes nothing.
    pub fn apply(&mut self, at: Instant, event: &Event) -> Result<(), CmsError> {
        if let Event::Correction { reason, event } = event {
            if reason.trim().is_empty() {
                return Err(CmsError::InvalidValue {
                    at: Location::field("correction", "reason"),
                    text: reason.clone(),
                    reason: "a correction needs a reason".into(),
                });
            }
            if Self::effective_of(event).is_none() {
                return Err(CmsError::InvalidValue {
                    at: Location::whole("correction"),
                    text: format!("{event:?}"),
                    reason: "only dated changes (prices, moves, discounts, credits, exchange rates) are corrections"
                        .into(),
                });
            }
            return self.apply_unchecked(at, event);
        }
        if let Some((effective, what)) = Self::effective_of(event) {
            self.check_open(effective, what)?;
        }
        self.apply_unchecked(at, event)
    }

    /// Apply without the closed-period check.
    fn apply_unchecked(&mut self, at: Instant, event: &Event) -> Result<(), CmsError> {
        match event {
            Event::NodeAdded { id, kind, parent, name } => {
                if let Some(parent) = parent {
                    self.channel.check_can_onboard_under(&self.hierarchy, parent, at)?;
                }
                self.hierarchy.add(id, *kind, parent.as_deref(), name, None)?;
            }
            Event::NodeRenamed { id, name } => {
                self.node_exists(id)?;
                self.hierarchy.rename(id, name)?;
            }
            Event::LabelSet { kind, label } => self.hierarchy.set_label(*kind, label),
            Event::NodeMoved { id, parent, effective } => {
                self.channel.check_can_onboard_under(&self.hierarchy, parent, *effective)?;
                self.hierarchy.move_node(id, parent, *effective)?;
            }
            Event::OrganisationSuspended { id, effective } => {
                self.channel.suspend(&self.hierarchy, id, *effective)?;
            }
            Event::OrganisationReenabled { id, effective } => {
                self.channel.reenable(&self.hierarchy, id, *effective)?;
            }
            Event::SubscriptionSet { id, info } => {
                if let Some(offer) = info.offer.as_ref().filter(|offer| self.catalogue.offer(offer).is_none())
                {
                    return Err(CmsError::UnknownNode {
                        kind: "offer".into(),
                        id: offer.clone(),
                        context: Some(Location::field(format!("subscription {id}"), "offer")),
                    });
                }
                self.channel.put_subscription(&self.hierarchy, id, info.clone())?;
            }
            Event::BillingProfileSet { node, profile } => {
                self.channel.set_billing_profile(&self.hierarchy, node, profile.clone())?;
            }
            Event::ServicePut { service } => self.catalogue.put_service(service.clone())?,
            Event::PlanPut { plan } => self.catalogue.put_plan(plan.clone())?,
            Event::OfferPut { offer } => self.catalogue.put_offer(offer.clone())?,
            Event::OfferStateSet { offer, state } => self.catalogue.set_offer_state(offer, *state)?,
            Event::PriceListCreated { .. }
            | Event::PriceVersionAdded { .. }
            | Event::PriceListAssigned { .. }
            | Event::PriceListUnassigned { .. }
            | Event::PriceListCloned { .. }
            | Event::ChangeSetApplied { .. }
            | Event::DiscountSet { .. }
            | Event::CreditGranted { .. }
            | Event::CommissionPlanPut { .. }
            | Event::CommissionPlanAssigned { .. }
            | Event::OverrideRateSet { .. }
            | Event::OverridePlanAssigned { .. }
            | Event::ExchangeRateSet { .. } => self.apply_terms(event)?,
            Event::IngestPolicySet { policy } => self.ingest_policy = policy.clone(),
            Event::BillingRulesSet { rules } => self.rules = *rules,
            Event::InvoiceSettingsSet { .. }
            | Event::TaxRuleSet { .. }
            | Event::TaxRuleRemoved { .. }
            | Event::ChargebackSettingsSet { .. }
            | Event::DocumentIssued { .. }
            | Event::InvoiceVoided { .. } => self.apply_billing(at, event)?,
            Event::Correction { .. } => {}
            Event::UsagePurged { period } => {
                if !self.closed_periods.contains(period) {
                    return Err(CmsError::InvalidPeriod {
                        text: period.to_string(),
                        reason: "only invoiced (closed) periods are purged".into(),
                    });
                }
                self.purged_periods.insert(*period);
            }
            Event::RoleAssigned { .. }
            | Event::RoleRevoked { .. }
            | Event::PoliciesSet { .. }
            | Event::ChangeRequested { .. }
            | Event::ChangeApproved { .. } => self.apply_governance(event)?,
            Event::BudgetSet { .. }
            | Event::BudgetRemoved { .. }
            | Event::MonitoringSettingsSet { .. }
            | Event::AlertsEvaluated { .. }
            | Event::AlertAcknowledged { .. }
            | Event::AlertResolved { .. }
            | Event::JobRecorded { .. } => self.apply_monitoring(at, event)?,
            Event::PeriodClosed { period } => {
                let month = Period::month(period.start.year(), period.start.month())?;
                if month != *period {
                    return Err(CmsError::InvalidPeriod {
                        text: period.to_string(),
                        reason: "only calendar months are closed".into(),
                    });
                }
                if !self.closed_periods.insert(*period) {
                    return Err(CmsError::InvalidPeriod {
                        text: period.to_string(),
                        reason: "already closed".into(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Apply an event of billing: invoice settings, taxes, chargeback settings, issued documents.
    fn apply_billing(&mut self, at: Instant, event: &Event) -> Result<(), CmsError> {
        match event {
            Event::InvoiceSettingsSet { settings } => {
                settings.validate()?;
                self.invoice_settings = settings.clone();
            }
            Event::TaxRuleSet { rule } => {
                rule.validate()?;
                if let Some(issuer) = &rule.issuer {
                    self.node_exists(issuer)?;
                }
                self.taxes.rules.insert(rule.id.clone(), rule.clone());
            }
            Event::TaxRuleRemoved { id } if self.taxes.rules.remove(id).is_none() => {
                return Err(CmsError::UnknownNode { kind: "tax rule".into(), id: id.clone(), context: None });
            }
            Event::ChargebackSettingsSet { settings } => {
                crate::billing::chargeback::check_settings(&self.hierarchy, settings)?;
                self.chargeback = settings.clone();
            }
            Event::DocumentIssued { number, kind, period, issuer, buyer, hash, corrects } => {
                self.apply_issued(at, number, *kind, *period, issuer, buyer, hash, corrects.as_deref())?;
            }
            Event::InvoiceVoided { number, credit_note } => self.apply_voided(number, credit_note)?,
            _ => {}
        }
        Ok(())
    }

    /// Apply an event of monitoring: budgets, settings, alerts, job runs.
    fn apply_monitoring(&mut self, at: Instant, event: &Event) -> Result<(), CmsError> {
        match event {
            Event::BudgetSet { budget } => {
                budget.validate()?;
                self.node_exists(&budget.node)?;
                self.budgets.insert(budget.id.clone(), budget.clone());
            }
            Event::BudgetRemoved { id } if self.budgets.remove(id).is_none() => {
                return Err(CmsError::UnknownNode { kind: "budget".into(), id: id.clone(), context: None });
            }
            Event::MonitoringSettingsSet { settings } => {
                settings.validate()?;
                self.monitoring = settings.clone();
            }
            Event::AlertsEvaluated { findings, partial } => {
                if *partial {
                    self.alerts.raise(at, findings);
                } else {
                    self.alerts.evaluate(at, findings);
                }
            }
            Event::AlertAcknowledged { id, by, note } => {
                self.alerts.acknowledge(*id, by, at, note.as_deref())?;
            }
            Event::AlertResolved { id, by, note } => {
                self.alerts.resolve(*id, by, at, note.as_deref())?;
            }
            Event::JobRecorded { run } => self.jobs.record(run.clone()),
            _ => {}
        }
        Ok(())
    }

    /// Apply an event of governance: roles, policies, change requests.
    fn apply_governance(&mut self, event: &Event) -> Result<(), CmsError> {
        match event {
            Event::RoleAssigned { assignment } => self.roles.insert(&self.hierarchy, assignment.clone())?,
            Event::RoleRevoked { assignment } => self.roles.remove(&self.hierarchy, assignment)?,
            Event::PoliciesSet { policies } => self.policies = policies.clone(),
            Event::ChangeRequested { change_set, requested_by } => {
                if self.change_requests.contains_key(&change_set.id) {
                    return Err(CmsError::InvalidValue {
                        at: Location::whole("change request"),
                        text: change_set.id.clone(),
                        reason: "a change set of this id was requested already".into(),
                    });
                }
                self.change_requests.insert(
                    change_set.id.clone(),
                    ChangeRequest {
                        change_set: change_set.clone(),
                        requested_by: requested_by.clone(),
                        approved_by: None,
                    },
                );
            }
            Event::ChangeApproved { id, approved_by } => {
                let request = self.change_requests.get_mut(id).ok_or_else(|| CmsError::UnknownNode {
                    kind: "change request".into(),
                    id: id.clone(),
                    context: None,
                })?;
                if request.approved_by.is_some() {
                    return Err(CmsError::InvalidValue {
                        at: Location::whole("change approval"),
                        text: id.clone(),
                        reason: "already approved".into(),
                    });
                }
                request.approved_by = Some(approved_by.clone());
            }
            _ => {}
        }
        Ok(())
    }

    /// Apply an event that changes the commercial terms (prices, commissions, exchange rates, discounts,
    /// credits).
    fn apply_terms(&mut self, event: &Event) -> Result<(), CmsError> {
        match event {
            Event::PriceListCreated { list } => self.terms.book.put_list(list.clone())?,
            Event::PriceVersionAdded { list, version } => {
                self.terms.book.append_version(list, version.clone())?;
            }
            Event::PriceListAssigned { scope, list } => {
                if let PriceScope::Node(node) = scope {
                    self.node_exists(node)?;
                }
                self.terms.book.assign(scope.clone(), list)?;
            }
            Event::PriceListUnassigned { scope } if self.terms.book.unassign(scope).is_none() => {
                return Err(CmsError::InvalidValue {
                    at: Location::whole("price list assignment"),
                    text: format!("{scope:?}"),
                    reason: "no list is assigned there".into(),
                });
            }
            Event::PriceListCloned { source, id, name } => self.terms.book.clone_list(source, id, name)?,
            Event::ChangeSetApplied { change_set } => {
                self.terms.book.apply_change_set(change_set)?;
            }
            Event::DiscountSet { discount } => {
                discount.validate()?;
                self.terms.discounts.insert(discount.id.clone(), discount.clone());
            }
            Event::CreditGranted { credit } => {
                credit.validate()?;
                self.terms.credits.insert(credit.id.clone(), credit.clone());
            }
            Event::CommissionPlanPut { plan } => self.terms.put_commission_plan(plan.clone()),
            Event::CommissionPlanAssigned { node, plan } => {
                self.node_exists(node)?;
                self.terms.assign_commission_plan(node, plan)?;
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
                self.terms.set_override_rate(node, *rate);
            }
            Event::OverridePlanAssigned { node, plan } => {
                self.node_exists(node)?;
                self.terms.assign_override_plan(node, plan)?;
            }
            Event::ExchangeRateSet { from, to, effective, rate } => {
                if rate.is_sign_negative() || rate.is_zero() {
                    return Err(CmsError::InvalidValue {
                        at: Location::whole("exchange rate"),
                        text: rate.to_string(),
                        reason: "must be positive".into(),
                    });
                }
                self.terms.fx.set(*from, *to, *effective, *rate);
            }
            _ => {}
        }
        Ok(())
    }
}
