//! Month-end: rated usage -> invoice lines -> invoices -> partner commissions -> distributor overrides ->
//! resellers' margins.
//!
//! Rules (DESIGN.md, WORKLOAD.md):
//! - usage is priced by [`crate::billing::rating`] at every level of its billing chain: the tenant, and in
//!   resale each reseller buying from the level above; each buyer gets one invoice per issuer and period;
//! - one line per (subscription, meter, price list version, branch, exchange rate) with counted usage and a
//!   price; amount = the price's tiers on the month's quantity (continued across parts of the month),
//!   converted into the invoice's currency, rounded once, to the document's scale;
//! - on a tenant's invoice, discounts are lines of their own (the percent of the exact amount they cover),
//!   a list's minimum commitment adds a true-up line when the buyer's lines priced by it fall short, and
//!   credits come last, each reducing what its scope was charged (never below zero);
//! - invoice total = sum of its rounded lines;
//! - an agency partner's revenue = the net lines (after discounts and credits) of the tenant invoices
//!   attributed to it (the branch a tenant was on when the usage started); commission = its bands (own or
//!   inherited) on that revenue, rounded;
//! - an agency distributor's override = its rate x the revenue of its whole network, rounded;
//! - a reseller's margin = what it invoiced minus what it was invoiced.
//!
//! Usage that is not billed comes back in [`MonthEndReport::not_billed`] with the reason (no price, a meter
//! that double counts, a subscription outside the channel, no exchange rate), so the caller can refuse or
//! report it.
//!
//! Two more kinds of line join the usage lines ([`BillingInput`]):
//! - adjustments: usage that arrived (or was corrected) after an earlier period was invoiced, billed here
//!   as `round(price(quantity after)) - round(price(quantity before))` for that (subscription, meter,
//!   period), so the invoiced amounts of a line always add up to the re-rated line;
//! - pass-through charges: costs given by the source (FOCUS data of other clouds), billed as
//!   `cost x exchange rate x (1 + uplift)` with the uplift of the most specific price list that has one.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::billing::rating::{BillingContext, Parts, PricedPart, Rater, UsageSlice};
use crate::error::{CmsError, Location};
use crate::model::channel::{ChannelAttributes, Relationship};
use crate::model::hierarchy::{Hierarchy, NodeIndex, NodeKind};
use crate::model::meter::MeterId;
use crate::model::money::{Currency, Rounding, RoundingMode};
use crate::model::price_book::PriceScope;
use crate::model::terms::CommercialTerms;
use crate::model::tiers::{BandAmount, checked_mul};
use crate::model::time::{Instant, Period};
use crate::rating::{IngestStats, Quantities};

/// How shown amounts are rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BillingRules {
    /// Midpoint rule for every shown amount.
    pub mode: RoundingMode,
    /// Digits after the point; `None` uses each currency's minor unit.
    pub scale: Option<u32>,
    /// Price meters that double count with others (VM size hours) when a list prices them. Off by default:
    /// their usage is reported as not billed.
    #[serde(default)]
    pub price_double_counting: bool,
}

impl BillingRules {
    /// The rounding of shown amounts in `currency`.
    pub fn rounding(&self, currency: Currency) -> Rounding {
        Rounding::new(self.scale.unwrap_or(currency.minor_unit), self.mode)
    }
}

/// One invoice line: a subscription's monthly use of one meter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    /// Subscription id.
    pub subscription: String,
    /// Meter.
    pub meter: MeterId,
    /// Unit of quantity, from the price list.
    pub unit: String,
    /// Monthly quantity, exact.
    pub quantity: Decimal,
    /// The price list that priced it.
    pub price_list: String,
    /// Exact amount before rounding.
    pub amount_exact: Decimal,
    /// Rounded amount, as shown.
    pub amount: Decimal,
    /// What kind of line this is (serialised flat: `"kind": "usage"`, or `"adjustment"` with `adjusts`).
    #[serde(flatten)]
    pub kind: LineKind,
    /// From when the price list version that priced it applies (usage lines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_effective: Option<Instant>,
    /// The exchange rate applied, when the price list's currency is not the invoice's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fx: Option<FxApplied>,
    /// The partner the usage's tenant was under when it started (who earns commission on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    /// The distributor likewise (who earns the override on it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distributor: Option<String>,
}

/// An exchange rate applied to a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FxApplied {
    /// The price list's currency.
    pub from: Currency,
    /// The rate: one `from` is worth `rate` of the invoice's currency.
    pub rate: Decimal,
}

/// Kinds of invoice line.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LineKind {
    /// Usage of the invoice's period, priced by the meter's tiers.
    #[default]
    Usage,
    /// Late or corrected usage of an earlier, already invoiced period.
    Adjustment {
        /// The period the usage belongs to.
        adjusts: Period,
    },
    /// A cost given by the source, passed through with an uplift.
    PassThrough {
        /// The uplift applied (0.08 for 8 %).
        uplift: Decimal,
        /// The exchange rate applied to the source currency.
        fx_rate: Decimal,
    },
    /// A discount on usage lines (negative).
    Discount {
        /// The discount's id.
        discount: String,
        /// Its percent (0.1 for 10 %).
        percent: Decimal,
    },
    /// The true-up of a price list's minimum commitment for the period.
    MinimumCommitment {
        /// The commitment.
        commitment: Decimal,
    },
    /// A credit (negative).
    Credit {
        /// The credit's id.
        credit: String,
        /// Why it was granted.
        reason: String,
    },
}

/// An invoice for a period: from an issuer (the platform, or a reseller) to a buyer (a tenant, or a
/// reseller buying from the level above).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// Who issues it.
    pub issuer: String,
    /// Its display name.
    pub issuer_name: String,
    /// Who buys: a tenant id, or a reseller's.
    pub buyer: String,
    /// Its display name.
    pub buyer_name: String,
    /// Its level.
    pub buyer_kind: NodeKind,
    /// Who receives the invoice (the buyer, or the ancestor its billing profile names).
    pub bill_to: String,
    /// Days to pay.
    pub payment_terms_days: u32,
    /// Billing period.
    pub period: Period,
    /// Currency of every line.
    pub currency: Currency,
    /// Lines sorted by subscription, then meter.
    pub lines: Vec<InvoiceLine>,
    /// Sum of the rounded lines.
    pub total: Decimal,
}

/// A tenant's share of a partner's revenue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRevenue {
    /// Tenant id.
    pub tenant: String,
    /// Its invoice total.
    pub revenue: Decimal,
}

/// A partner's commission for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommissionStatement {
    /// Who pays it: the issuer of the tenants' invoices (the platform, or a reselling distributor).
    pub payer: String,
    /// Partner id.
    pub partner: String,
    /// Partner display name.
    pub partner_name: String,
    /// Billing period.
    pub period: Period,
    /// Sum of its tenants' invoice totals.
    pub revenue: Decimal,
    /// The commission plan applied (own or inherited); `None` when no plan reaches the partner.
    pub plan: Option<String>,
    /// The bands applied, exact.
    pub bands: Vec<BandAmount>,
    /// Rounded commission.
    pub commission: Decimal,
    /// Revenue by tenant, sorted by tenant id.
    pub tenants: Vec<TenantRevenue>,
}

/// A distributor's override on its network for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideStatement {
    /// Distributor id.
    pub distributor: String,
    /// Distributor display name.
    pub distributor_name: String,
    /// Billing period.
    pub period: Period,
    /// Revenue of every tenant below the distributor.
    pub revenue: Decimal,
    /// Override rate (zero when a plan's bands give the override).
    pub rate: Decimal,
    /// The plan whose bands give the override, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// The bands applied, with a plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<BandAmount>,
    /// Rounded override.
    pub amount: Decimal,
}

/// What a reseller bought and sold in a period, and its margin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarginStatement {
    /// The reseller.
    pub reseller: String,
    /// Its display name.
    pub reseller_name: String,
    /// Billing period.
    pub period: Period,
    /// Currency.
    pub currency: Currency,
    /// Total of the invoices it issued.
    pub sold: Decimal,
    /// Total of the invoices issued to it.
    pub bought: Decimal,
    /// `sold - bought`.
    pub margin: Decimal,
}

/// Why usage was not billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotBilledReason {
    /// No price list reaching the subscription prices the meter.
    NoPrice,
    /// The meter counts what other meters already count (VM size hours); not priced unless the rules say so.
    DoubleCounts,
    /// The subscription is not in the channel (yet): its usage is kept until it is onboarded.
    UnknownSubscription,
    /// No exchange rate from the price list's (or the source's) currency into the invoice's.
    NoExchangeRate,
}

/// Usage that was not billed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotBilled {
    /// Subscription.
    pub subscription: String,
    /// Meter.
    pub meter: MeterId,
    /// Monthly quantity.
    pub quantity: Decimal,
    /// Why.
    pub reason: NotBilledReason,
    /// For a reseller's missing buying price (the tenant was billed): the reseller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer: Option<String>,
}

/// The quantities of one (subscription, meter) of an earlier period before and after the changes billed now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustmentQuantity {
    /// Subscription.
    pub subscription: String,
    /// Meter.
    pub meter: MeterId,
    /// The earlier period.
    pub period: Period,
    /// Its quantity as invoiced so far.
    pub before: Decimal,
    /// Its quantity with the changes billed now.
    pub after: Decimal,
}

/// A pass-through charge: quantity and cost given by the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassThroughCharge {
    /// Subscription.
    pub subscription: String,
    /// Meter (for FOCUS data, derived from the SKU).
    pub meter: MeterId,
    /// Unit of quantity.
    pub unit: String,
    /// Quantity.
    pub quantity: Decimal,
    /// Cost in the source currency.
    pub cost: Decimal,
    /// The source currency.
    pub currency: Currency,
    /// For changes to an earlier, invoiced period: that period and what it was invoiced on. The line then
    /// bills `round(price(cost)) - round(price(cost before))` as an adjustment.
    pub adjusts: Option<PassThroughBefore>,
}

/// What an earlier period's pass-through charge was invoiced on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassThroughBefore {
    /// The earlier period.
    pub period: Period,
    /// Its quantity as invoiced so far.
    pub quantity: Decimal,
    /// Its cost as invoiced so far.
    pub cost: Decimal,
}

/// Everything to bill for a period.
#[derive(Debug, Clone, Copy)]
pub struct BillingInput<'a> {
    /// The period, cut where pricing changes.
    pub parts: &'a Parts,
    /// Deduplicated usage of the period, by part.
    pub usage: &'a [UsageSlice],
    /// What ingestion did.
    pub stats: &'a IngestStats,
    /// Changes to earlier, invoiced periods, billed in this one.
    pub adjustments: &'a [AdjustmentQuantity],
    /// Costs passed through.
    pub pass_through: &'a [PassThroughCharge],
}

/// Everything a month-end produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthEndReport {
    /// Billing period.
    pub period: Period,
    /// Invoices sorted by issuer id, then buyer id.
    pub invoices: Vec<Invoice>,
    /// Commission statements sorted by partner id.
    pub commissions: Vec<CommissionStatement>,
    /// Override statements sorted by distributor id.
    pub overrides: Vec<OverrideStatement>,
    /// Resellers' margins, sorted by reseller id.
    #[serde(default)]
    pub margins: Vec<MarginStatement>,
    /// Usage not billed, with the reason, sorted by subscription and meter.
    pub not_billed: Vec<NotBilled>,
    /// What ingestion did.
    pub stats: IngestStats,
}

/// The usage of rated quantities as slices of a single part (the workload's month-end: no price changes
/// within the month).
pub fn slices_of(quantities: &Quantities) -> Vec<UsageSlice> {
    quantities
        .by_meter
        .iter()
        .map(|entry| UsageSlice {
            subscription: entry.subscription.clone(),
            meter: entry.meter,
            part: 0,
            resource: None,
            quantity: entry.quantity,
        })
        .collect()
}

/// Bill a period from its usage quantities only (no adjustments, no pass-through charges, no channel
/// attributes): the workload's month-end. Refused when prices, branches or discounts change within the
/// period, since monthly quantities do not say when their usage started.
pub fn bill(
    hierarchy: &Hierarchy,
    terms: &CommercialTerms,
    rules: BillingRules,
    quantities: &Quantities,
) -> Result<MonthEndReport, CmsError> {
    let channel = ChannelAttributes::new();
    let context = BillingContext::new(hierarchy, &channel, terms);
    let parts = Parts::of(&context, quantities.period);
    if !parts.is_whole() {
        return Err(CmsError::InvalidValue {
            at: Location::whole("month-end"),
            text: quantities.period.to_string(),
            reason: "prices, branches or discounts change within the period: bill stored usage through the \
                     engine, which knows when each record started"
                .into(),
        });
    }
    let usage = slices_of(quantities);
    let input = BillingInput {
        parts: &parts,
        usage: &usage,
        stats: &quantities.stats,
        adjustments: &[],
        pass_through: &[],
    };
    bill_with(context, rules, input)
}

/// Line kinds in the order an invoice lists them.
fn kind_order(kind: &LineKind) -> u8 {
    match kind {
        LineKind::Usage => 0,
        LineKind::Discount { .. } => 1,
        LineKind::PassThrough { .. } => 2,
        LineKind::Adjustment { .. } => 3,
        LineKind::MinimumCommitment { .. } => 4,
        LineKind::Credit { .. } => 5,
    }
}

/// What makes a usage or discount line: parts with the same key add up into one line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct LineKey {
    subscription: String,
    meter: MeterId,
    discount: Option<String>,
    effective: Instant,
    list: String,
    partner: Option<String>,
    distributor: Option<String>,
    fx: Option<(Currency, Decimal)>,
}

/// A line being summed.
#[derive(Debug, Clone)]
struct LineSum {
    unit: String,
    quantity: Decimal,
    amount_exact: Decimal,
    percent: Decimal,
}

/// An invoice being built: one issuer, one buyer.
struct Draft {
    issuer: NodeIndex,
    buyer: NodeIndex,
    currency: Currency,
    lines: BTreeMap<LineKey, LineSum>,
    /// Lines already rounded (adjustments, pass-through charges).
    finished: Vec<InvoiceLine>,
    /// Lists with a minimum commitment: list -> (commitment, its currency, exact amount priced by it).
    committed: BTreeMap<String, (Decimal, Currency, Decimal)>,
}

/// Builds every invoice of a period.
struct Documents<'a> {
    context: BillingContext<'a>,
    rules: BillingRules,
    parts: &'a Parts,
    drafts: BTreeMap<(NodeIndex, NodeIndex), Draft>,
    not_billed: Vec<NotBilled>,
}

impl<'a> Documents<'a> {
    fn id(&self, node: NodeIndex) -> String {
        self.context.hierarchy.node(node).id.clone()
    }

    fn skip(&mut self, subscription: String, meter: MeterId, quantity: Decimal, reason: NotBilledReason) {
        self.not_billed.push(NotBilled { subscription, meter, quantity, reason, buyer: None });
    }

    /// The draft from `issuer` to `buyer`; its currency is the buyer's, else the first line's.
    fn draft(
        &mut self,
        issuer: NodeIndex,
        buyer: NodeIndex,
        line_currency: Currency,
    ) -> Result<&mut Draft, CmsError> {
        let (hierarchy, channel, at) =
            (self.context.hierarchy, self.context.channel, self.parts.period().start);
        let draft = self.drafts.entry((issuer, buyer)).or_insert_with(|| Draft {
            issuer,
            buyer,
            currency: channel.currency_of(hierarchy, buyer, at).unwrap_or(line_currency),
            lines: BTreeMap::new(),
            finished: Vec::new(),
            committed: BTreeMap::new(),
        });
        if channel.currency_of(hierarchy, buyer, at).is_none() && draft.currency != line_currency {
            return Err(CmsError::CurrencyMismatch {
                document: format!("invoice of {}", hierarchy.node(buyer).id),
                first: draft.currency.to_string(),
                second: line_currency.to_string(),
            });
        }
        Ok(draft)
    }

    /// The rate from `from` into the invoice currency of `buyer` at `at`, or `None` (reported).
    fn rate_into(&mut self, from: Currency, into: Currency, at: Instant) -> Option<Decimal> {
        self.context.terms.fx.rate(from, into, at)
    }

    fn add_part(&mut self, part: &PricedPart) -> Result<(), CmsError> {
        let hierarchy = self.context.hierarchy;
        let at = self.parts.start(part.part);
        let currency = self.draft(part.issuer, part.buyer, part.currency)?.currency;
        let Some(rate) = self.rate_into(part.currency, currency, at) else {
            self.not_billed.push(NotBilled {
                subscription: self.id(part.subscription),
                meter: part.meter,
                quantity: part.quantity,
                reason: NotBilledReason::NoExchangeRate,
                buyer: (part.buyer != part.tenant).then(|| self.id(part.buyer)),
            });
            return Ok(());
        };
        let fx = (part.currency != currency).then_some((part.currency, rate));
        let key = LineKey {
            subscription: hierarchy.node(part.subscription).id.clone(),
            meter: part.meter,
            discount: None,
            effective: part.effective,
            list: part.list.clone(),
            partner: part.partner.map(|node| self.id(node)),
            distributor: part.distributor.map(|node| self.id(node)),
            fx,
        };
        let commitment = self.context.terms.book.list(&part.list).and_then(|list| list.minimum_commitment);
        let draft = self.draft(part.issuer, part.buyer, part.currency)?;
        let converted = checked_mul(part.amount, rate)?;
        let unit = part.unit.clone();
        let sum = draft.lines.entry(key.clone()).or_insert_with(|| LineSum {
            unit,
            quantity: Decimal::ZERO,
            amount_exact: Decimal::ZERO,
            percent: Decimal::ZERO,
        });
        sum.quantity += part.quantity;
        sum.amount_exact += converted;
        for discount in &part.discounts {
            let key = LineKey { discount: Some(discount.id.clone()), ..key.clone() };
            let sum = draft.lines.entry(key).or_insert_with(|| LineSum {
                unit: part.unit.clone(),
                quantity: Decimal::ZERO,
                amount_exact: Decimal::ZERO,
                percent: discount.percent,
            });
            sum.quantity += discount.quantity;
            sum.amount_exact -= checked_mul(discount.amount, rate)?;
        }
        if let Some(commitment) = commitment {
            let entry = draft.committed.entry(part.list.clone()).or_insert((
                commitment,
                part.currency,
                Decimal::ZERO,
            ));
            entry.2 += converted;
        }
        Ok(())
    }

    /// A list with a minimum commitment assigned to a buyer (a tenant, a subscription's tenant, a reseller)
    /// commits it even in a period the list priced nothing for it: the buyer gets an invoice with a true-up.
    fn add_assigned_commitments(&mut self) -> Result<(), CmsError> {
        let (hierarchy, channel, terms) = (self.context.hierarchy, self.context.channel, self.context.terms);
        let at = self.parts.period().start;
        for (scope, list_id) in terms.book.assignments() {
            let (PriceScope::Node(node), Some(list)) = (scope, terms.book.list(list_id)) else { continue };
            let (Some(commitment), Some(index)) = (list.minimum_commitment, hierarchy.find(node)) else {
                continue;
            };
            let buyer = match hierarchy.node(index).kind {
                NodeKind::Tenant => Some(index),
                NodeKind::Subscription => hierarchy.ancestor_of_kind_at(index, NodeKind::Tenant, at),
                NodeKind::Distributor | NodeKind::Partner
                    if channel.relationship_of(hierarchy, index) == Relationship::Resale =>
                {
                    Some(index)
                }
                _ => None,
            };
            let Some(buyer) = buyer else { continue };
            let issuer = channel.issuer_of(hierarchy, buyer, at);
            let draft = self.draft(issuer, buyer, list.currency)?;
            draft.committed.entry(list.id.clone()).or_insert((commitment, list.currency, Decimal::ZERO));
        }
        Ok(())
    }

    /// Where a subscription stood at `at`: its node, tenant, and the tenant's issuer; `None` (reported)
    /// when it is not in the channel.
    fn place(
        &mut self,
        subscription: &str,
        meter: MeterId,
        quantity: Decimal,
        at: Instant,
    ) -> Result<Option<(NodeIndex, NodeIndex, NodeIndex)>, CmsError> {
        let hierarchy = self.context.hierarchy;
        let node = hierarchy
            .find_ignoring_case(subscription)
            .or_else(|| {
                self.context
                    .channel
                    .find_subscription_by_external(hierarchy, subscription)
                    .and_then(|id| hierarchy.find(id))
            })
            .filter(|&index| hierarchy.node(index).kind == NodeKind::Subscription);
        let Some(node) = node else {
            self.skip(subscription.to_owned(), meter, quantity, NotBilledReason::UnknownSubscription);
            return Ok(None);
        };
        let tenant = hierarchy.ancestor_of_kind_at(node, NodeKind::Tenant, at).ok_or_else(|| {
            CmsError::InvalidHierarchy {
                id: subscription.to_owned(),
                reason: "subscription is not under a tenant".into(),
                context: None,
            }
        })?;
        Ok(Some((node, tenant, self.context.channel.issuer_of(hierarchy, tenant, at))))
    }

    fn path(&self, subscription: NodeIndex, issuer: NodeIndex, at: Instant) -> Vec<&'a str> {
        crate::billing::rating::price_path(self.context.hierarchy, subscription, issuer, at)
    }

    fn region(&self, subscription: NodeIndex) -> Option<&'a str> {
        let id = &self.context.hierarchy.node(subscription).id;
        self.context.channel.subscription(id).and_then(|info| info.region.as_deref())
    }

    fn attribution(&self, subscription: NodeIndex, at: Instant) -> (Option<String>, Option<String>) {
        let hierarchy = self.context.hierarchy;
        let above = |kind| hierarchy.ancestor_of_kind_at(subscription, kind, at).map(|node| self.id(node));
        (above(NodeKind::Partner), above(NodeKind::Distributor))
    }

    /// A change to an earlier, invoiced period, billed to the tenant as it stood then, at the price then:
    /// `round(price(after)) - round(price(before))`.
    fn add_adjustment(&mut self, change: &AdjustmentQuantity) -> Result<(), CmsError> {
        let delta = change.after - change.before;
        let at = change.period.start;
        let Some((node, tenant, issuer)) = self.place(&change.subscription, change.meter, delta, at)? else {
            return Ok(());
        };
        let id = self.id(node);
        if !self.rules.price_double_counting
            && change.meter.info().is_some_and(crate::model::meter::MeterInfo::double_counts)
        {
            self.skip(id, change.meter, delta, NotBilledReason::DoubleCounts);
            return Ok(());
        }
        let path = self.path(node, issuer, at);
        let book = &self.context.terms.book;
        let tenant_id = self.id(tenant);
        let priced_at = self.context.prices_at.unwrap_or(at);
        let Some(price) =
            book.resolve(&path, self.region(node), change.meter, priced_at, Some(&tenant_id))?
        else {
            self.skip(id, change.meter, delta, NotBilledReason::NoPrice);
            return Ok(());
        };
        let currency = self.draft(issuer, tenant, price.currency())?.currency;
        let Some(rate) = self.rate_into(price.currency(), currency, at) else {
            self.skip(id, change.meter, delta, NotBilledReason::NoExchangeRate);
            return Ok(());
        };
        let rounding = self.rules.rounding(currency);
        let before = checked_mul(price.amount(change.before)?, rate)?;
        let after = checked_mul(price.amount(change.after)?, rate)?;
        let (partner, distributor) = self.attribution(node, at);
        let line = InvoiceLine {
            subscription: id,
            meter: change.meter,
            unit: price.unit().to_owned(),
            quantity: delta,
            price_list: price.list_id().to_owned(),
            amount_exact: after - before,
            amount: rounding.apply(after) - rounding.apply(before),
            kind: LineKind::Adjustment { adjusts: change.period },
            price_effective: Some(price.effective()),
            fx: (price.currency() != currency).then_some(FxApplied { from: price.currency(), rate }),
            partner,
            distributor,
        };
        self.draft(issuer, tenant, price.currency())?.finished.push(line);
        Ok(())
    }

    /// A cost given by the source, billed to the tenant as `cost x exchange rate x (1 + uplift)` with the
    /// uplift of the most specific list that has one.
    fn add_pass_through(&mut self, charge: &PassThroughCharge) -> Result<(), CmsError> {
        let at = self.parts.period().start;
        let Some((node, tenant, issuer)) =
            self.place(&charge.subscription, charge.meter, charge.quantity, at)?
        else {
            return Ok(());
        };
        let id = self.id(node);
        let path = self.path(node, issuer, at);
        let Some(list) = self.context.terms.book.pass_through(&path, self.region(node)) else {
            self.skip(id, charge.meter, charge.quantity, NotBilledReason::NoPrice);
            return Ok(());
        };
        let (list_id, list_currency) = (list.id.clone(), list.currency);
        let uplift = list.pass_through_uplift.unwrap_or_default();
        let Some(fx_rate) = self.rate_into(charge.currency, list_currency, at) else {
            self.skip(id, charge.meter, charge.quantity, NotBilledReason::NoExchangeRate);
            return Ok(());
        };
        let currency = self.draft(issuer, tenant, list_currency)?.currency;
        let Some(into) = self.rate_into(list_currency, currency, at) else {
            self.skip(id, charge.meter, charge.quantity, NotBilledReason::NoExchangeRate);
            return Ok(());
        };
        let price = |cost: Decimal| {
            checked_mul(checked_mul(checked_mul(cost, fx_rate)?, Decimal::ONE + uplift)?, into)
        };
        let rounding = self.rules.rounding(currency);
        let amount_exact = price(charge.cost)?;
        let (quantity, amount_exact, amount, kind) = match charge.adjusts {
            None => (
                charge.quantity,
                amount_exact,
                rounding.apply(amount_exact),
                LineKind::PassThrough { uplift, fx_rate },
            ),
            Some(before) => {
                let before_exact = price(before.cost)?;
                (
                    charge.quantity - before.quantity,
                    amount_exact - before_exact,
                    rounding.apply(amount_exact) - rounding.apply(before_exact),
                    LineKind::Adjustment { adjusts: before.period },
                )
            }
        };
        let (partner, distributor) = self.attribution(node, at);
        let line = InvoiceLine {
            subscription: id,
            meter: charge.meter,
            unit: charge.unit.clone(),
            quantity,
            price_list: list_id,
            amount_exact,
            amount,
            kind,
            price_effective: None,
            fx: (list_currency != currency).then_some(FxApplied { from: list_currency, rate: into }),
            partner,
            distributor,
        };
        self.draft(issuer, tenant, list_currency)?.finished.push(line);
        Ok(())
    }

    /// Round every line, add commitment true-ups and credits, total each invoice.
    fn finish(self) -> Result<(Vec<Invoice>, Vec<NotBilled>), CmsError> {
        let (hierarchy, channel, period) =
            (self.context.hierarchy, self.context.channel, self.parts.period());
        let last = self.parts.start(self.parts.len() - 1);
        let mut invoices = Vec::with_capacity(self.drafts.len());
        for draft in self.drafts.into_values() {
            let rounding = self.rules.rounding(draft.currency);
            let mut lines: Vec<InvoiceLine> = draft
                .lines
                .into_iter()
                .map(|(key, sum)| InvoiceLine {
                    subscription: key.subscription,
                    meter: key.meter,
                    unit: sum.unit,
                    quantity: sum.quantity,
                    price_list: key.list,
                    amount_exact: sum.amount_exact,
                    amount: rounding.apply(sum.amount_exact),
                    kind: match key.discount {
                        None => LineKind::Usage,
                        Some(discount) => LineKind::Discount { discount, percent: sum.percent },
                    },
                    price_effective: Some(key.effective),
                    fx: key.fx.map(|(from, rate)| FxApplied { from, rate }),
                    partner: key.partner,
                    distributor: key.distributor,
                })
                .collect();
            lines.extend(draft.finished);
            let buyer = hierarchy.node(draft.buyer);
            let (partner, distributor) = {
                let above = |kind| {
                    hierarchy
                        .ancestor_of_kind_at(draft.buyer, kind, last)
                        .map(|node| hierarchy.node(node).id.clone())
                };
                (above(NodeKind::Partner), above(NodeKind::Distributor))
            };
            for (list, (commitment, list_currency, priced)) in draft.committed {
                let rate =
                    self.context.terms.fx.rate(list_currency, draft.currency, period.start).ok_or_else(
                        || CmsError::InvalidValue {
                            at: Location::whole(format!("minimum commitment of price list {list}")),
                            text: format!("{list_currency}/{}", draft.currency),
                            reason: "no exchange rate into the invoice's currency".into(),
                        },
                    )?;
                let due = checked_mul(commitment, rate)?;
                if priced < due {
                    lines.push(InvoiceLine {
                        subscription: String::new(),
                        meter: MeterId::from_u128(0),
                        unit: String::new(),
                        quantity: Decimal::ZERO,
                        price_list: list,
                        amount_exact: due - priced,
                        amount: rounding.apply(due - priced),
                        kind: LineKind::MinimumCommitment { commitment: due },
                        price_effective: None,
                        fx: (list_currency != draft.currency)
                            .then_some(FxApplied { from: list_currency, rate }),
                        partner: partner.clone(),
                        distributor: distributor.clone(),
                    });
                }
            }
            if buyer.kind == NodeKind::Tenant {
                apply_credits(self.context.terms, &buyer.id, draft.currency, rounding, period, &mut lines)?;
            }
            lines.sort_by(|left, right| {
                kind_order(&left.kind)
                    .cmp(&kind_order(&right.kind))
                    .then_with(|| left.subscription.cmp(&right.subscription))
                    .then_with(|| left.meter.cmp(&right.meter))
                    .then_with(|| left.price_effective.cmp(&right.price_effective))
            });
            let mut total: Decimal = lines.iter().map(|line| line.amount).sum();
            total.rescale(rounding.scale);
            let issuer = hierarchy.node(draft.issuer);
            invoices.push(Invoice {
                issuer: issuer.id.clone(),
                issuer_name: issuer.name.clone(),
                buyer: buyer.id.clone(),
                buyer_name: buyer.name.clone(),
                buyer_kind: buyer.kind,
                bill_to: hierarchy.node(channel.invoice_recipient(hierarchy, draft.buyer, last)).id.clone(),
                payment_terms_days: channel.payment_terms_days(&buyer.id),
                period,
                currency: draft.currency,
                lines,
                total,
            });
        }
        invoices
            .sort_by(|left, right| left.issuer.cmp(&right.issuer).then_with(|| left.buyer.cmp(&right.buyer)));
        Ok((invoices, self.not_billed))
    }
}

/// Apply the credits of a tenant's invoice, most specific first: each takes from what its scope was
/// charged (the rounded lines it covers, net of discounts and earlier credits), never below zero; what it
/// cannot use is lost.
fn apply_credits(
    terms: &CommercialTerms,
    tenant: &str,
    currency: Currency,
    rounding: Rounding,
    period: Period,
    lines: &mut Vec<InvoiceLine>,
) -> Result<(), CmsError> {
    let mut credits: Vec<_> = terms.credits.values().filter(|credit| credit.applies_in(&period)).collect();
    crate::model::adjustments::Credit::order(&mut credits);
    let mut left: Vec<Decimal> = lines.iter().map(|line| line.amount).collect();
    for credit in credits {
        let covered: Vec<usize> = (0..lines.len())
            .filter(|&index| {
                let line = &lines[index];
                match &credit.scope {
                    crate::model::adjustments::CreditScope::Tenant(id) => id.eq_ignore_ascii_case(tenant),
                    scope => scope.covers(&line.subscription, tenant, line.meter),
                }
            })
            .collect();
        if covered.is_empty() {
            continue;
        }
        if credit.currency != currency {
            return Err(CmsError::CurrencyMismatch {
                document: format!("credit {} on the invoice of {tenant}", credit.id),
                first: currency.to_string(),
                second: credit.currency.to_string(),
            });
        }
        // What the scope still owes, net of discounts and earlier credits: the credit never goes below it.
        let owed: Decimal = covered.iter().map(|&index| left[index]).sum();
        let mut available = rounding.apply(credit.amount).min(owed.max(Decimal::ZERO));
        let mut used = Decimal::ZERO;
        for &index in &covered {
            let take = available.min(left[index].max(Decimal::ZERO));
            left[index] -= take;
            available -= take;
            used += take;
        }
        if used.is_zero() {
            continue;
        }
        let first = &lines[covered[0]];
        let (subscription, meter) = match &credit.scope {
            crate::model::adjustments::CreditScope::Tenant(_) => (String::new(), MeterId::from_u128(0)),
            crate::model::adjustments::CreditScope::Subscription(_) => {
                (first.subscription.clone(), MeterId::from_u128(0))
            }
            crate::model::adjustments::CreditScope::MeterLine { .. } => {
                (first.subscription.clone(), first.meter)
            }
        };
        let (partner, distributor) = (first.partner.clone(), first.distributor.clone());
        lines.push(InvoiceLine {
            subscription,
            meter,
            unit: String::new(),
            quantity: Decimal::ZERO,
            price_list: String::new(),
            amount_exact: -used,
            amount: -used,
            kind: LineKind::Credit { credit: credit.id.clone(), reason: credit.reason.clone() },
            price_effective: None,
            fx: None,
            partner,
            distributor,
        });
        left.push(Decimal::ZERO);
    }
    Ok(())
}

/// Bill a period: rate usage at every level of its billing chain, add adjustments and pass-through
/// charges, and build every document.
pub fn bill_with(
    context: BillingContext<'_>,
    rules: BillingRules,
    input: BillingInput<'_>,
) -> Result<MonthEndReport, CmsError> {
    let period = input.parts.period();
    let rated = Rater::new(context, input.parts, rules.price_double_counting).rate(input.usage)?;
    let mut documents =
        Documents { context, rules, parts: input.parts, drafts: BTreeMap::new(), not_billed: Vec::new() };
    for unpriced in rated.unpriced {
        documents.not_billed.push(NotBilled {
            subscription: unpriced.subscription,
            meter: unpriced.meter,
            quantity: unpriced.quantity,
            reason: unpriced.reason,
            buyer: unpriced.buyer,
        });
    }
    for part in &rated.parts {
        documents.add_part(part)?;
    }
    documents.add_assigned_commitments()?;
    for change in input.adjustments {
        documents.add_adjustment(change)?;
    }
    for charge in input.pass_through {
        documents.add_pass_through(charge)?;
    }
    let (invoices, mut not_billed) = documents.finish()?;
    let commissions = commission_statements(&context, rules, period, &invoices)?;
    let overrides = override_statements(&context, rules, period, &invoices)?;
    let margins = margin_statements(&context, period, &invoices)?;
    not_billed.sort_by(|left, right| {
        (&left.subscription, left.meter, &left.buyer, reason_order(left.reason)).cmp(&(
            &right.subscription,
            right.meter,
            &right.buyer,
            reason_order(right.reason),
        ))
    });
    // Parts of the period were rated apart: one entry per subscription, meter, buyer and reason.
    not_billed.dedup_by(|later, kept| {
        let same = (&later.subscription, later.meter, &later.buyer, later.reason)
            == (&kept.subscription, kept.meter, &kept.buyer, kept.reason);
        if same {
            kept.quantity += later.quantity;
        }
        same
    });
    Ok(MonthEndReport {
        period,
        invoices,
        commissions,
        overrides,
        margins,
        not_billed,
        stats: input.stats.clone(),
    })
}

fn reason_order(reason: NotBilledReason) -> u8 {
    match reason {
        NotBilledReason::NoPrice => 0,
        NotBilledReason::DoubleCounts => 1,
        NotBilledReason::UnknownSubscription => 2,
        NotBilledReason::NoExchangeRate => 3,
    }
}

/// Revenue of agents: (agent id, payer id) -> (agent, currency, each tenant's part, a second currency met).
type Networks =
    BTreeMap<(String, String), (NodeIndex, Currency, BTreeMap<String, Decimal>, Option<Currency>)>;

/// Sum the lines of tenant invoices by the agent of `kind` they are attributed to, keeping each tenant's
/// part. Only agents in an agency relationship earn on their network. A network invoiced in two
/// currencies is marked: its statement (if it gets one) is refused, since a statement has one currency.
fn revenue_by(context: &BillingContext<'_>, invoices: &[Invoice], kind: NodeKind) -> Networks {
    let hierarchy = context.hierarchy;
    let mut out = Networks::new();
    for invoice in invoices.iter().filter(|invoice| invoice.buyer_kind == NodeKind::Tenant) {
        for line in &invoice.lines {
            let agent = match kind {
                NodeKind::Partner => line.partner.as_deref(),
                _ => line.distributor.as_deref(),
            };
            let Some(agent_id) = agent else { continue };
            let Some(agent) = hierarchy.find(agent_id) else { continue };
            if context.channel.relationship_of(hierarchy, agent) != Relationship::Agency {
                continue;
            }
            let entry = out
                .entry((agent_id.to_owned(), invoice.issuer.clone()))
                .or_insert_with(|| (agent, invoice.currency, BTreeMap::new(), None));
            if entry.1 != invoice.currency {
                entry.3 = Some(invoice.currency);
            }
            *entry.2.entry(invoice.buyer.clone()).or_default() += line.amount;
        }
    }
    out
}

/// A statement of a network invoiced in two currencies is refused.
fn one_currency(
    kind: NodeKind,
    agent: &str,
    first: Currency,
    second: Option<Currency>,
) -> Result<(), CmsError> {
    match second {
        Some(second) => Err(CmsError::CurrencyMismatch {
            document: format!("statement of {kind} {agent}"),
            first: first.to_string(),
            second: second.to_string(),
        }),
        None => Ok(()),
    }
}

fn commission_statements(
    context: &BillingContext<'_>,
    rules: BillingRules,
    period: Period,
    invoices: &[Invoice],
) -> Result<Vec<CommissionStatement>, CmsError> {
    let (hierarchy, terms) = (context.hierarchy, context.terms);
    let mut statements = Vec::new();
    for ((partner_id, payer), (partner, currency, tenants, second)) in
        revenue_by(context, invoices, NodeKind::Partner)
    {
        one_currency(NodeKind::Partner, &partner_id, currency, second)?;
        let revenue: Decimal = tenants.values().copied().sum();
        let plan = terms.commission_plan(hierarchy, partner);
        let bands = plan.map(|plan| plan.bands.breakdown(revenue)).transpose()?.unwrap_or_default();
        let exact: Decimal = bands.iter().map(|band| band.amount).sum();
        statements.push(CommissionStatement {
            payer,
            partner_name: hierarchy.node(partner).name.clone(),
            partner: partner_id,
            period,
            revenue,
            plan: plan.map(|plan| plan.id.clone()),
            bands,
            commission: rules.rounding(currency).apply(exact),
            tenants: tenants.into_iter().map(|(tenant, revenue)| TenantRevenue { tenant, revenue }).collect(),
        });
    }
    Ok(statements)
}

fn override_statements(
    context: &BillingContext<'_>,
    rules: BillingRules,
    period: Period,
    invoices: &[Invoice],
) -> Result<Vec<OverrideStatement>, CmsError> {
    let (hierarchy, terms) = (context.hierarchy, context.terms);
    let mut statements = Vec::new();
    for ((distributor_id, _payer), (distributor, currency, tenants, second)) in
        revenue_by(context, invoices, NodeKind::Distributor)
    {
        let Some(basis) = terms.override_basis(hierarchy, distributor) else {
            continue;
        };
        one_currency(NodeKind::Distributor, &distributor_id, currency, second)?;
        let revenue: Decimal = tenants.values().copied().sum();
        let (exact, bands) = basis.exact(revenue)?;
        statements.push(OverrideStatement {
            distributor_name: hierarchy.node(distributor).name.clone(),
            distributor: distributor_id,
            period,
            revenue,
            rate: basis.rate().unwrap_or_default(),
            plan: basis.plan().map(str::to_owned),
            bands,
            amount: rules.rounding(currency).apply(exact),
        });
    }
    Ok(statements)
}

/// Each reseller's sales (invoices it issued) and purchases (invoices issued to it).
fn margin_statements(
    context: &BillingContext<'_>,
    period: Period,
    invoices: &[Invoice],
) -> Result<Vec<MarginStatement>, CmsError> {
    let hierarchy = context.hierarchy;
    let mut by_reseller: BTreeMap<&str, (Currency, Decimal, Decimal)> = BTreeMap::new();
    for invoice in invoices {
        for (reseller, sold, bought) in [
            (invoice.issuer.as_str(), invoice.total, Decimal::ZERO),
            (invoice.buyer.as_str(), Decimal::ZERO, invoice.total),
        ] {
            let Some(node) = hierarchy.find(reseller) else { continue };
            if context.channel.relationship_of(hierarchy, node) != Relationship::Resale {
                continue;
            }
            let entry =
                by_reseller.entry(reseller).or_insert((invoice.currency, Decimal::ZERO, Decimal::ZERO));
            if entry.0 != invoice.currency {
                return Err(CmsError::CurrencyMismatch {
                    document: format!("margin statement of {reseller}"),
                    first: entry.0.to_string(),
                    second: invoice.currency.to_string(),
                });
            }
            entry.1 += sold;
            entry.2 += bought;
        }
    }
    Ok(by_reseller
        .into_iter()
        .map(|(reseller, (currency, sold, bought))| MarginStatement {
            reseller: reseller.to_owned(),
            reseller_name: hierarchy.get(reseller).map(|node| node.name.clone()).unwrap_or_default(),
            period,
            currency,
            sold,
            bought,
            margin: sold - bought,
        })
        .collect())
}
