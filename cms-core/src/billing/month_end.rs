//! Month-end: rated quantities -> invoice lines -> invoices -> partner commissions -> distributor overrides.
//!
//! Rules (DESIGN.md, WORKLOAD.md):
//! - one line per (subscription, meter) with counted usage and a price; amount = the meter's tier schedule
//!   on the monthly quantity, rounded once, to the document's scale;
//! - invoice total per tenant = sum of its rounded lines;
//! - partner revenue = sum of its tenants' invoice totals; commission = its bands (own or inherited) on that
//!   revenue, rounded;
//! - distributor override = its rate x the revenue of its whole network (every tenant below it), rounded.
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

use crate::error::CmsError;
use crate::model::hierarchy::{Hierarchy, NodeIndex, NodeKind};
use crate::model::meter::{MeterId, MeterInfo};
use crate::model::money::{Currency, Rounding, RoundingMode};
use crate::model::terms::{CommercialTerms, ResolvedPrice};
use crate::model::tiers::{BandAmount, checked_mul};
use crate::model::time::Period;
use crate::rating::{IngestStats, MeterQuantity, Quantities};

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
}

/// Kinds of invoice line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
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
}

/// A tenant's invoice for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// Tenant id.
    pub tenant: String,
    /// Tenant display name.
    pub tenant_name: String,
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
    /// Override rate.
    pub rate: Decimal,
    /// Rounded override.
    pub amount: Decimal,
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
    /// A pass-through cost is in a currency with no exchange rate into the list's currency.
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
    /// Deduplicated usage quantities of the period.
    pub quantities: &'a Quantities,
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
    /// Invoices sorted by tenant id.
    pub invoices: Vec<Invoice>,
    /// Commission statements sorted by partner id.
    pub commissions: Vec<CommissionStatement>,
    /// Override statements sorted by distributor id.
    pub overrides: Vec<OverrideStatement>,
    /// Usage not billed, with the reason, sorted by subscription and meter.
    pub not_billed: Vec<NotBilled>,
    /// What ingestion did.
    pub stats: IngestStats,
}

/// Finds subscription nodes by id, exactly or ignoring ASCII case (subscription GUIDs are case-insensitive).
struct SubscriptionLookup<'a> {
    hierarchy: &'a Hierarchy,
}

impl<'a> SubscriptionLookup<'a> {
    fn new(hierarchy: &'a Hierarchy) -> Self {
        Self { hierarchy }
    }

    fn find(&self, id: &str) -> Option<NodeIndex> {
        self.hierarchy
            .find_ignoring_case(id)
            .filter(|&index| self.hierarchy.node(index).kind == NodeKind::Subscription)
    }
}

/// Bill a period from its usage quantities only (no adjustments, no pass-through charges).
pub fn bill(
    hierarchy: &Hierarchy,
    terms: &CommercialTerms,
    rules: BillingRules,
    quantities: &Quantities,
) -> Result<MonthEndReport, CmsError> {
    bill_with(hierarchy, terms, rules, BillingInput { quantities, adjustments: &[], pass_through: &[] })
}

/// Builds invoices line by line.
struct InvoiceBuilder<'a> {
    hierarchy: &'a Hierarchy,
    terms: &'a CommercialTerms,
    rules: BillingRules,
    period: Period,
    lookup: SubscriptionLookup<'a>,
    invoices: BTreeMap<NodeIndex, Invoice>,
    not_billed: Vec<NotBilled>,
}

impl<'a> InvoiceBuilder<'a> {
    /// The subscription's node and its tenant, or `None` (reported) when the subscription is not in the channel.
    fn place(
        &mut self,
        subscription: &str,
        meter: MeterId,
        quantity: Decimal,
    ) -> Result<Option<(NodeIndex, NodeIndex)>, CmsError> {
        let Some(node) = self.lookup.find(subscription) else {
            self.skip(subscription.to_owned(), meter, quantity, NotBilledReason::UnknownSubscription);
            return Ok(None);
        };
        let tenant = self.hierarchy.ancestor_of_kind(node, NodeKind::Tenant).ok_or_else(|| {
            CmsError::InvalidHierarchy {
                id: subscription.to_owned(),
                reason: "subscription is not under a tenant".into(),
                context: None,
            }
        })?;
        Ok(Some((node, tenant)))
    }

    fn skip(&mut self, subscription: String, meter: MeterId, quantity: Decimal, reason: NotBilledReason) {
        self.not_billed.push(NotBilled { subscription, meter, quantity, reason });
    }

    /// The meter's price for the subscription, or `None` (reported) when it is not billed.
    fn price(&mut self, node: NodeIndex, meter: MeterId, quantity: Decimal) -> Option<ResolvedPrice<'a>> {
        let (hierarchy, terms) = (self.hierarchy, self.terms);
        let id = hierarchy.node(node).id.clone();
        if !self.rules.price_double_counting && meter.info().is_some_and(MeterInfo::double_counts) {
            self.skip(id, meter, quantity, NotBilledReason::DoubleCounts);
            return None;
        }
        let resolved = terms.price(hierarchy, node, meter);
        if resolved.is_none() {
            self.skip(id, meter, quantity, NotBilledReason::NoPrice);
        }
        resolved
    }

    fn add_usage(&mut self, entry: &MeterQuantity) -> Result<(), CmsError> {
        let Some((node, tenant)) = self.place(&entry.subscription, entry.meter, entry.quantity)? else {
            return Ok(());
        };
        let Some(resolved) = self.price(node, entry.meter, entry.quantity) else { return Ok(()) };
        let currency = resolved.list.currency;
        let amount_exact = resolved.price.amount(entry.quantity)?;
        let line = InvoiceLine {
            subscription: self.hierarchy.node(node).id.clone(),
            meter: entry.meter,
            unit: resolved.price.unit.clone(),
            quantity: entry.quantity,
            price_list: resolved.list.id.clone(),
            amount_exact,
            amount: self.rules.rounding(currency).apply(amount_exact),
            kind: LineKind::Usage,
        };
        self.push(tenant, currency, line)
    }

    fn add_adjustment(&mut self, change: &AdjustmentQuantity) -> Result<(), CmsError> {
        let delta = change.after - change.before;
        let Some((node, tenant)) = self.place(&change.subscription, change.meter, delta)? else {
            return Ok(());
        };
        let Some(resolved) = self.price(node, change.meter, delta) else { return Ok(()) };
        let currency = resolved.list.currency;
        let rounding = self.rules.rounding(currency);
        let before = resolved.price.amount(change.before)?;
        let after = resolved.price.amount(change.after)?;
        let line = InvoiceLine {
            subscription: self.hierarchy.node(node).id.clone(),
            meter: change.meter,
            unit: resolved.price.unit.clone(),
            quantity: delta,
            price_list: resolved.list.id.clone(),
            amount_exact: after - before,
            amount: rounding.apply(after) - rounding.apply(before),
            kind: LineKind::Adjustment { adjusts: change.period },
        };
        self.push(tenant, currency, line)
    }

    fn add_pass_through(&mut self, charge: &PassThroughCharge) -> Result<(), CmsError> {
        let Some((node, tenant)) = self.place(&charge.subscription, charge.meter, charge.quantity)? else {
            return Ok(());
        };
        let id = self.hierarchy.node(node).id.clone();
        let Some(list) = self.terms.pass_through(self.hierarchy, node) else {
            self.skip(id, charge.meter, charge.quantity, NotBilledReason::NoPrice);
            return Ok(());
        };
        let Some(fx_rate) = self.terms.fx.rate(charge.currency, list.currency, self.period.start) else {
            self.skip(id, charge.meter, charge.quantity, NotBilledReason::NoExchangeRate);
            return Ok(());
        };
        let uplift = list.pass_through_uplift.unwrap_or_default();
        let price = |cost: Decimal| checked_mul(checked_mul(cost, fx_rate)?, Decimal::ONE + uplift);
        let rounding = self.rules.rounding(list.currency);
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
        let line = InvoiceLine {
            subscription: id,
            meter: charge.meter,
            unit: charge.unit.clone(),
            quantity,
            price_list: list.id.clone(),
            amount_exact,
            amount,
            kind,
        };
        let currency = list.currency;
        self.push(tenant, currency, line)
    }

    fn push(&mut self, tenant: NodeIndex, currency: Currency, line: InvoiceLine) -> Result<(), CmsError> {
        let (hierarchy, period) = (self.hierarchy, self.period);
        let invoice = self.invoices.entry(tenant).or_insert_with(|| Invoice {
            tenant: hierarchy.node(tenant).id.clone(),
            tenant_name: hierarchy.node(tenant).name.clone(),
            period,
            currency,
            lines: Vec::new(),
            total: Decimal::ZERO,
        });
        if invoice.currency != currency {
            return Err(CmsError::CurrencyMismatch {
                document: format!("invoice of tenant {}", invoice.tenant),
                first: invoice.currency.to_string(),
                second: currency.to_string(),
            });
        }
        invoice.lines.push(line);
        Ok(())
    }
}

/// Bill a period: rate usage, adjustments and pass-through charges with `terms` over `hierarchy` and build
/// every document.
pub fn bill_with(
    hierarchy: &Hierarchy,
    terms: &CommercialTerms,
    rules: BillingRules,
    input: BillingInput<'_>,
) -> Result<MonthEndReport, CmsError> {
    let period = input.quantities.period;
    let mut builder = InvoiceBuilder {
        hierarchy,
        terms,
        rules,
        period,
        lookup: SubscriptionLookup::new(hierarchy),
        invoices: BTreeMap::new(),
        not_billed: Vec::new(),
    };
    for entry in &input.quantities.by_meter {
        builder.add_usage(entry)?;
    }
    for change in input.adjustments {
        builder.add_adjustment(change)?;
    }
    for charge in input.pass_through {
        builder.add_pass_through(charge)?;
    }

    let mut not_billed = builder.not_billed;
    let mut invoices: Vec<(NodeIndex, Invoice)> = builder.invoices.into_iter().collect();
    for (_, invoice) in &mut invoices {
        invoice.lines.sort_by(|left, right| {
            let kind_order = |line: &InvoiceLine| match line.kind {
                LineKind::Usage => (0, None),
                LineKind::PassThrough { .. } => (1, None),
                LineKind::Adjustment { adjusts } => (2, Some(adjusts.start)),
            };
            kind_order(left)
                .cmp(&kind_order(right))
                .then(left.subscription.cmp(&right.subscription))
                .then(left.meter.cmp(&right.meter))
        });
        invoice.total = invoice.lines.iter().map(|line| line.amount).sum();
        invoice.total.rescale(rules.rounding(invoice.currency).scale);
    }
    invoices.sort_by(|left, right| left.1.tenant.cmp(&right.1.tenant));

    let commissions = commission_statements(hierarchy, terms, rules, period, &invoices)?;
    let overrides = override_statements(hierarchy, terms, rules, period, &invoices)?;
    not_billed
        .sort_by(|left, right| left.subscription.cmp(&right.subscription).then(left.meter.cmp(&right.meter)));
    Ok(MonthEndReport {
        period,
        invoices: invoices.into_iter().map(|(_, invoice)| invoice).collect(),
        commissions,
        overrides,
        not_billed,
        stats: input.quantities.stats.clone(),
    })
}

/// Revenue of a network: owner id -> (owner, currency, each tenant's part).
type Networks = BTreeMap<String, (NodeIndex, Currency, Vec<TenantRevenue>)>;

/// Sum invoice totals by the nearest ancestor of `kind`, keeping each tenant's part. A statement is in
/// one currency: a network whose tenants are invoiced in different currencies is refused.
fn revenue_by(
    hierarchy: &Hierarchy,
    invoices: &[(NodeIndex, Invoice)],
    kind: NodeKind,
) -> Result<Networks, CmsError> {
    let mut out = Networks::new();
    for (tenant, invoice) in invoices {
        let Some(owner) = hierarchy.ancestor_of_kind(*tenant, kind) else {
            continue;
        };
        let owner_id = &hierarchy.node(owner).id;
        let entry = out.entry(owner_id.clone()).or_insert_with(|| (owner, invoice.currency, Vec::new()));
        if entry.1 != invoice.currency {
            return Err(CmsError::CurrencyMismatch {
                document: format!("statement of {kind} {owner_id}"),
                first: entry.1.to_string(),
                second: invoice.currency.to_string(),
            });
        }
        entry.2.push(TenantRevenue { tenant: invoice.tenant.clone(), revenue: invoice.total });
    }
    Ok(out)
}

fn commission_statements(
    hierarchy: &Hierarchy,
    terms: &CommercialTerms,
    rules: BillingRules,
    period: Period,
    invoices: &[(NodeIndex, Invoice)],
) -> Result<Vec<CommissionStatement>, CmsError> {
    let mut statements = Vec::new();
    for (partner_id, (partner, currency, tenants)) in revenue_by(hierarchy, invoices, NodeKind::Partner)? {
        let revenue: Decimal = tenants.iter().map(|share| share.revenue).sum();
        let plan = terms.commission_plan(hierarchy, partner);
        let bands = plan.map(|plan| plan.bands.breakdown(revenue)).transpose()?.unwrap_or_default();
        let exact: Decimal = bands.iter().map(|band| band.amount).sum();
        statements.push(CommissionStatement {
            partner_name: hierarchy.node(partner).name.clone(),
            partner: partner_id,
            period,
            revenue,
            plan: plan.map(|plan| plan.id.clone()),
            bands,
            commission: rules.rounding(currency).apply(exact),
            tenants,
        });
    }
    Ok(statements)
}

fn override_statements(
    hierarchy: &Hierarchy,
    terms: &CommercialTerms,
    rules: BillingRules,
    period: Period,
    invoices: &[(NodeIndex, Invoice)],
) -> Result<Vec<OverrideStatement>, CmsError> {
    let mut statements = Vec::new();
    for (distributor_id, (distributor, currency, tenants)) in
        revenue_by(hierarchy, invoices, NodeKind::Distributor)?
    {
        let Some(rate) = terms.override_rate(hierarchy, distributor) else {
            continue;
        };
        let revenue: Decimal = tenants.iter().map(|share| share.revenue).sum();
        statements.push(OverrideStatement {
            distributor_name: hierarchy.node(distributor).name.clone(),
            distributor: distributor_id,
            period,
            revenue,
            rate,
            amount: rules.rounding(currency).apply(checked_mul(rate, revenue)?),
        });
    }
    Ok(statements)
}
