//! Commercial commands and queries of the engine: onboarding a subscription, bulk price changes (preview,
//! then apply), the cost calculator, reprocessing drafts after a price change, and the month-end as a
//! principal may see it.

use std::collections::BTreeMap;

use chrono::Datelike;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::billing::{BillingContext, BillingRules, Invoice, MonthEndReport};
use crate::engine::{Cms, Event, Principal};
use crate::error::{CmsError, Location};
use crate::model::channel::{Relationship, SubscriptionInfo};
use crate::model::hierarchy::{NodeIndex, NodeKind};
use crate::model::meter::MeterId;
use crate::model::money::Currency;
use crate::model::price_book::{ChangeScope, ChangeSet, EstimateLine};
use crate::model::terms::CommercialTerms;
use crate::model::time::{Instant, Period};
use crate::store::{Document, Store};

/// Old and new totals of one tenant or partner under a bulk change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impact {
    /// Tenant or partner id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Currency of the totals.
    pub currency: Currency,
    /// What was invoiced for the period (a partner: its network's revenue).
    pub old: Decimal,
    /// What the same usage costs at the new prices.
    pub new: Decimal,
    /// `new - old`.
    pub change: Decimal,
}

/// What a bulk change would do to the last closed period's revenue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSetPreview {
    /// The change set.
    pub change_set: String,
    /// The period whose usage was priced (the last closed one).
    pub period: Period,
    /// The lists that would get a new version.
    pub lists: Vec<String>,
    /// Per tenant, by id.
    pub tenants: Vec<Impact>,
    /// Per agency partner (its network's revenue), by id.
    pub partners: Vec<Impact>,
}

/// How a reprocessed draft changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DraftChange {
    /// The draft's key (`period/issuer/buyer`).
    pub key: String,
    /// Its total before (`None`: there was no draft).
    pub old: Option<Decimal>,
    /// Its total now.
    pub new: Decimal,
}

/// What reprocessing did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reprocessed {
    /// Drafts recomputed and stored.
    pub drafts: Vec<DraftChange>,
    /// Closed months in the range, left as invoiced (later changes reach them as adjustments).
    pub closed: Vec<Period>,
}

/// One level of a resale chain for one usage quantity: who sells to whom, at what price, and the seller's
/// margin (what it sells for minus what it paid the level above; the platform paid nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLevel {
    /// Who sells (the platform, or a reseller).
    pub seller: String,
    /// Who buys (a reseller, or the tenant at the end).
    pub buyer: String,
    /// The list that prices it.
    pub list: String,
    /// Its currency.
    pub currency: Currency,
    /// The exact amount the buyer pays.
    pub amount: Decimal,
    /// The seller's margin on it (exact; for the platform, its whole revenue).
    pub margin: Decimal,
}

/// The kind of stored draft invoices.
pub const DRAFT_INVOICE: &str = "draft_invoice";

impl<S: Store> Cms<S> {
    /// Onboard a subscription under a tenant with its attributes (offer, state, external ids, region), as
    /// one command.
    pub fn onboard_subscription(
        &mut self,
        principal: &Principal,
        at: Instant,
        id: &str,
        tenant: &str,
        name: &str,
        info: SubscriptionInfo,
    ) -> Result<u64, CmsError> {
        self.visible(principal, tenant)?;
        self.execute_all(
            principal,
            at,
            &[
                Event::NodeAdded {
                    id: id.to_owned(),
                    kind: NodeKind::Subscription,
                    parent: Some(tenant.to_owned()),
                    name: name.to_owned(),
                },
                Event::SubscriptionSet { id: id.to_owned(), info },
            ],
        )
    }

    /// The scope of a bulk change on one tenant: the lists assigned at the tenant and at its subscriptions.
    pub fn tenant_scope(&self, tenant: &str) -> Result<ChangeScope, CmsError> {
        let hierarchy = &self.state.hierarchy;
        let node = hierarchy.expect_kind(tenant, NodeKind::Tenant)?;
        Ok(ChangeScope::Nodes(
            hierarchy.subtree(node).into_iter().map(|index| hierarchy.node(index).id.clone()).collect(),
        ))
    }

    /// Preview a bulk change on the last closed period: each tenant's invoiced total against what the same
    /// usage costs at the prices the change would put in effect, and each agency partner's network revenue
    /// likewise. Nothing is recorded.
    pub fn preview_change_set(
        &self,
        principal: &Principal,
        change_set: &ChangeSet,
        rules: BillingRules,
    ) -> Result<ChangeSetPreview, CmsError> {
        let period =
            *self.state.closed_periods.iter().next_back().ok_or_else(|| CmsError::InvalidPeriod {
                text: change_set.id.clone(),
                reason: "a preview prices the last closed period, and no period is closed yet".into(),
            })?;
        let lists =
            self.state.terms.book.plan_change_set(change_set)?.into_iter().map(|(list, _)| list).collect();
        let old = self.month_end_for(principal, period, rules)?;
        let terms = CommercialTerms {
            book: self.state.terms.book.with_change_set(change_set)?,
            ..self.state.terms.clone()
        };
        let context = BillingContext {
            prices_at: Some(change_set.effective),
            ..BillingContext::new(&self.state.hierarchy, &self.state.channel, &terms)
        };
        let new = self.scoped(principal, self.month_end_in(context, period, rules)?)?;
        Ok(ChangeSetPreview {
            change_set: change_set.id.clone(),
            period,
            lists,
            tenants: self.impacts(&old, &new, |invoice| Some(vec![(invoice.buyer.clone(), invoice.total)])),
            partners: self.impacts(&old, &new, |invoice| {
                Some(
                    invoice
                        .lines
                        .iter()
                        .filter_map(|line| Some((line.partner.clone()?, line.amount)))
                        .filter(|(partner, _)| self.is_agent(partner))
                        .collect(),
                )
            }),
        })
    }

    /// Whether a partner or distributor earns on its network (an agency relationship).
    fn is_agent(&self, id: &str) -> bool {
        let hierarchy = &self.state.hierarchy;
        hierarchy
            .find(id)
            .is_some_and(|node| self.state.channel.relationship_of(hierarchy, node) == Relationship::Agency)
    }

    /// Sum tenant invoices of `old` and `new` by the keys `by` gives, into impacts.
    fn impacts(
        &self,
        old: &MonthEndReport,
        new: &MonthEndReport,
        by: impl Fn(&Invoice) -> Option<Vec<(String, Decimal)>>,
    ) -> Vec<Impact> {
        let mut sums: BTreeMap<String, (Currency, Decimal, Decimal)> = BTreeMap::new();
        for (report, is_new) in [(old, false), (new, true)] {
            for invoice in report.invoices.iter().filter(|invoice| invoice.buyer_kind == NodeKind::Tenant) {
                for (id, amount) in by(invoice).unwrap_or_default() {
                    let entry = sums.entry(id).or_insert((invoice.currency, Decimal::ZERO, Decimal::ZERO));
                    if is_new {
                        entry.2 += amount;
                    } else {
                        entry.1 += amount;
                    }
                }
            }
        }
        sums.into_iter()
            .map(|(id, (currency, old, new))| Impact {
                name: self.state.hierarchy.get(&id).map(|node| node.name.clone()).unwrap_or_default(),
                id,
                currency,
                old,
                new,
                change: new - old,
            })
            .collect()
    }

    /// Apply a bulk change: a new version of every list in its scope, effective at its instant. Issued
    /// invoices never change (their periods are priced by the versions in effect then).
    pub fn apply_change_set(
        &mut self,
        principal: &Principal,
        at: Instant,
        change_set: ChangeSet,
    ) -> Result<u64, CmsError> {
        self.execute(principal, at, &Event::ChangeSetApplied { change_set })
    }

    /// The cost calculator: a month of the given meters and quantities, priced for `node` (a subscription,
    /// or a tenant or reseller as buyer) as its prices stand at `at`.
    pub fn estimate(
        &self,
        principal: &Principal,
        node: &str,
        items: &[(MeterId, Decimal)],
        at: Instant,
    ) -> Result<Vec<EstimateLine>, CmsError> {
        let index = self.visible(principal, node)?;
        let hierarchy = &self.state.hierarchy;
        // A subscription is priced as its tenant buys it.
        let buyer = hierarchy.ancestor_of_kind_at(index, NodeKind::Tenant, at).unwrap_or(index);
        let issuer = self.state.channel.issuer_of(hierarchy, buyer, at);
        let path = crate::billing::rating::price_path(hierarchy, index, issuer, at);
        let region = self.state.channel.subscription(node).and_then(|info| info.region.as_deref());
        let tenant = hierarchy
            .ancestor_of_kind_at(index, NodeKind::Tenant, at)
            .map(|tenant| hierarchy.node(tenant).id.as_str());
        self.state.terms.book.estimate(&path, region, tenant, at, items)
    }

    /// One usage quantity of a subscription priced at every level of its billing chain at `at`: the
    /// platform selling to the first buyer, each reseller selling to the next, the tenant last. The margins
    /// add up to what the tenant pays (one currency along the chain; a level without a price is an error
    /// naming it).
    pub fn price_chain(
        &self,
        principal: &Principal,
        subscription: &str,
        meter: MeterId,
        quantity: Decimal,
        at: Instant,
    ) -> Result<Vec<ChainLevel>, CmsError> {
        let index = self.visible(principal, subscription)?;
        let (hierarchy, channel) = (&self.state.hierarchy, &self.state.channel);
        let tenant = hierarchy.ancestor_of_kind_at(index, NodeKind::Tenant, at).ok_or_else(|| {
            CmsError::InvalidHierarchy {
                id: subscription.to_owned(),
                reason: "subscription is not under a tenant".into(),
                context: None,
            }
        })?;
        let tenant_id = hierarchy.node(tenant).id.as_str();
        let region = channel.subscription(subscription).and_then(|info| info.region.as_deref());
        let mut levels: Vec<ChainLevel> = Vec::new();
        for buyer in channel.billing_chain(hierarchy, index, at) {
            let issuer = channel.issuer_of(hierarchy, buyer, at);
            let from = if buyer == tenant { index } else { buyer };
            let path = crate::billing::rating::price_path(hierarchy, from, issuer, at);
            let buyer_id = hierarchy.node(buyer).id.clone();
            let price =
                self.state.terms.book.resolve(&path, region, meter, at, Some(tenant_id))?.ok_or_else(
                    || CmsError::InvalidValue {
                        at: Location::whole(format!("price of {buyer_id}")),
                        text: meter.canonical(),
                        reason: "no list prices this meter for this buyer".into(),
                    },
                )?;
            let amount = price.amount(quantity)?;
            let paid = levels.last().map_or(Decimal::ZERO, |level| level.amount);
            if let Some(previous) = levels.last().filter(|previous| previous.currency != price.currency()) {
                return Err(CmsError::CurrencyMismatch {
                    document: format!("resale chain of {subscription}"),
                    first: previous.currency.to_string(),
                    second: price.currency().to_string(),
                });
            }
            levels.push(ChainLevel {
                seller: hierarchy.node(issuer).id.clone(),
                buyer: buyer_id,
                list: price.list_id().to_owned(),
                currency: price.currency(),
                amount,
                margin: amount - paid,
            });
        }
        Ok(levels)
    }

    /// Recompute the draft invoices of the open months that `range` touches, for one tenant and/or one
    /// region (subscriptions whose region matches), and store them (kind [`DRAFT_INVOICE`], key
    /// `YYYY-MM/issuer/buyer`), reporting each draft's old and new total. Closed months are left as
    /// invoiced.
    pub fn reprocess(
        &mut self,
        principal: &Principal,
        range: Period,
        tenant: Option<&str>,
        region: Option<&str>,
        rules: BillingRules,
    ) -> Result<Reprocessed, CmsError> {
        let tenant_node = tenant.map(|tenant| self.visible(principal, tenant)).transpose()?;
        let mut reprocessed = Reprocessed::default();
        let mut month = Period::month(range.start.year(), range.start.month())?;
        let mut documents = Vec::new();
        while month.start < range.end {
            if self.state.closed_periods.contains(&month) {
                reprocessed.closed.push(month);
            } else {
                let report = self.month_end_for(principal, month, rules)?;
                for invoice in &report.invoices {
                    if !self.touches(invoice, tenant_node, region) {
                        continue;
                    }
                    let key = format!("{}/{}/{}", month, invoice.issuer, invoice.buyer);
                    let old =
                        self.store.documents(DRAFT_INVOICE, &key)?.into_iter().find(|doc| doc.key == key);
                    let old_total = old
                        .and_then(|doc| serde_json::from_str::<Invoice>(&doc.body).ok())
                        .map(|invoice| invoice.total);
                    let body = serde_json::to_string(invoice)
                        .map_err(|error| CmsError::Store { message: format!("draft {key}: {error}") })?;
                    documents.push(Document { kind: DRAFT_INVOICE.into(), key: key.clone(), body });
                    reprocessed.drafts.push(DraftChange { key, old: old_total, new: invoice.total });
                }
            }
            month = month.next_month()?;
        }
        self.store.put_documents(&documents)?;
        Ok(reprocessed)
    }

    /// Whether an invoice concerns `tenant` (its buyer is the tenant, or it bills the tenant's usage) and
    /// `region` (one of its lines is of a subscription in that region).
    fn touches(&self, invoice: &Invoice, tenant: Option<NodeIndex>, region: Option<&str>) -> bool {
        let hierarchy = &self.state.hierarchy;
        let tenant_ok = tenant.is_none_or(|tenant| {
            invoice.lines.iter().any(|line| {
                hierarchy
                    .find(&line.subscription)
                    .is_some_and(|subscription| hierarchy.is_within(subscription, tenant))
            }) || invoice.buyer == hierarchy.node(tenant).id
        });
        let region_ok = region.is_none_or(|region| {
            invoice.lines.iter().any(|line| {
                self.state
                    .channel
                    .subscription(&line.subscription)
                    .and_then(|info| info.region.as_deref())
                    .is_some_and(|own| own.eq_ignore_ascii_case(region))
            })
        });
        tenant_ok && region_ok
    }

    /// The stored drafts of a month, as invoices, that `principal` may see (as in [`Self::month_end_for`]).
    pub fn drafts(&self, principal: &Principal, month: Period) -> Result<Vec<Invoice>, CmsError> {
        let invoices = self
            .store
            .documents(DRAFT_INVOICE, &format!("{month}/"))?
            .into_iter()
            .map(|doc| {
                serde_json::from_str(&doc.body).map_err(|error| CmsError::BadJson {
                    at: Location::whole(format!("draft {}", doc.key)),
                    message: error.to_string(),
                })
            })
            .collect::<Result<Vec<Invoice>, CmsError>>()?;
        let report = MonthEndReport {
            period: month,
            invoices,
            commissions: Vec::new(),
            overrides: Vec::new(),
            margins: Vec::new(),
            not_billed: Vec::new(),
            stats: crate::rating::IngestStats::default(),
        };
        Ok(self.scoped(principal, report)?.invoices)
    }

    /// The month-end as `principal` may see it: invoices it issues or receives, or that bill its subtree's
    /// usage; statements of agents in its subtree; usage not billed of its subscriptions.
    pub fn month_end_for(
        &self,
        principal: &Principal,
        period: Period,
        rules: BillingRules,
    ) -> Result<MonthEndReport, CmsError> {
        self.authorize_read(principal, crate::governance::rbac::Action::ReadBilling)?;
        let report = self.month_end(period, rules)?;
        self.scoped(principal, report)
    }

    /// A report cut down to what `principal` may see: invoices whose buyer, issuer or bill-to party lay
    /// in its subtree at some time in the period (a tenant that moved away later keeps its past invoices
    /// with the branch that billed them), or with a line attributed to an agent in it; statements of
    /// agents and resellers in it; usage not billed of its subscriptions.
    fn scoped(&self, principal: &Principal, mut report: MonthEndReport) -> Result<MonthEndReport, CmsError> {
        let scope = self.scope_of(principal)?;
        if scope == self.state.hierarchy.root() {
            return Ok(report);
        }
        let hierarchy = &self.state.hierarchy;
        let parts = crate::billing::Parts::of(&self.billing_context(), report.period);
        let instants: Vec<Instant> = (0..parts.len()).map(|part| parts.start(part)).collect();
        let within = |id: &str| {
            hierarchy
                .find(id)
                .is_some_and(|node| instants.iter().any(|&at| hierarchy.is_in_subtree_at(node, scope, at)))
        };
        report.invoices.retain(|invoice| {
            within(&invoice.buyer)
                || within(&invoice.issuer)
                || within(&invoice.bill_to)
                || invoice.lines.iter().any(|line| {
                    line.partner.as_deref().is_some_and(&within)
                        || line.distributor.as_deref().is_some_and(&within)
                })
        });
        report.commissions.retain(|statement| within(&statement.partner));
        report.overrides.retain(|statement| within(&statement.distributor));
        report.margins.retain(|statement| within(&statement.reseller));
        report.not_billed.retain(|entry| within(&entry.subscription));
        // The counts of rated usage cover the principal's subscriptions only (rated as the month-end rates
        // them: usage that existed at the close, without a pass-through cost); whole-platform counts would
        // tell a branch how much usage the others have.
        let mut rows = 0;
        self.store.for_each_usage(&report.period, &mut |record| {
            if record.existed_at_close() && record.cost.is_none() && within(&record.subscription) {
                rows += 1;
            }
            Ok(())
        })?;
        report.stats = crate::rating::IngestStats {
            rows,
            accepted: rows,
            correction_samples: report
                .stats
                .correction_samples
                .into_iter()
                .filter(|correction| within(&correction.subscription))
                .collect(),
            ..crate::rating::IngestStats::default()
        };
        Ok(report)
    }
}
