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
//! Usage of meters that no price list prices is not billed and comes back in [`MonthEndReport::unpriced`],
//! so the caller can refuse or report it.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CmsError, Location};
use crate::model::hierarchy::{Hierarchy, NodeIndex, NodeKind};
use crate::model::meter::MeterId;
use crate::model::money::{Currency, Rounding, RoundingMode};
use crate::model::terms::CommercialTerms;
use crate::model::tiers::{BandAmount, checked_mul};
use crate::model::time::Period;
use crate::rating::{IngestStats, Quantities};

/// How shown amounts are rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BillingRules {
    /// Midpoint rule for every shown amount.
    pub mode: RoundingMode,
    /// Digits after the point; `None` uses each currency's minor unit.
    pub scale: Option<u32>,
}

impl BillingRules {
    fn rounding(&self, currency: Currency) -> Rounding {
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

/// Usage that no price list prices: not billed, reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnpricedUsage {
    /// Subscription.
    pub subscription: String,
    /// Meter.
    pub meter: MeterId,
    /// Monthly quantity.
    pub quantity: Decimal,
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
    /// Usage not billed for want of a price, sorted by subscription and meter.
    pub unpriced: Vec<UnpricedUsage>,
    /// What ingestion did.
    pub stats: IngestStats,
}

/// Finds subscription nodes by id, exactly or ignoring ASCII case (subscription GUIDs are case-insensitive).
struct SubscriptionLookup<'a> {
    hierarchy: &'a Hierarchy,
    folded: HashMap<String, NodeIndex>,
}

impl<'a> SubscriptionLookup<'a> {
    fn new(hierarchy: &'a Hierarchy) -> Self {
        let folded = hierarchy
            .nodes()
            .filter(|(_, node)| node.kind == NodeKind::Subscription)
            .map(|(index, node)| (node.id.to_ascii_lowercase(), index))
            .collect();
        Self { hierarchy, folded }
    }

    fn find(&self, id: &str) -> Option<NodeIndex> {
        self.hierarchy
            .find(id)
            .filter(|&index| self.hierarchy.node(index).kind == NodeKind::Subscription)
            .or_else(|| self.folded.get(&id.to_ascii_lowercase()).copied())
    }
}

/// Bill a period: rate `quantities` with `terms` over `hierarchy` and build every document.
pub fn bill(
    hierarchy: &Hierarchy,
    terms: &CommercialTerms,
    rules: BillingRules,
    quantities: &Quantities,
) -> Result<MonthEndReport, CmsError> {
    let lookup = SubscriptionLookup::new(hierarchy);
    let mut invoices: BTreeMap<NodeIndex, Invoice> = BTreeMap::new();
    let mut unpriced = Vec::new();
    for entry in &quantities.by_meter {
        let subscription = lookup.find(&entry.subscription).ok_or_else(|| CmsError::UnknownSubscription {
            at: Location::whole(format!("usage of {}", quantities.period)),
            subscription: entry.subscription.clone(),
        })?;
        let tenant = hierarchy.ancestor_of_kind(subscription, NodeKind::Tenant).ok_or_else(|| {
            CmsError::InvalidHierarchy {
                id: entry.subscription.clone(),
                reason: "subscription is not under a tenant".into(),
                context: None,
            }
        })?;
        let Some(resolved) = terms.price(hierarchy, subscription, entry.meter) else {
            unpriced.push(UnpricedUsage {
                subscription: hierarchy.node(subscription).id.clone(),
                meter: entry.meter,
                quantity: entry.quantity,
            });
            continue;
        };
        let currency = resolved.list.currency;
        let amount_exact = resolved.price.amount(entry.quantity)?;
        let line = InvoiceLine {
            subscription: hierarchy.node(subscription).id.clone(),
            meter: entry.meter,
            unit: resolved.price.unit.clone(),
            quantity: entry.quantity,
            price_list: resolved.list.id.clone(),
            amount_exact,
            amount: rules.rounding(currency).apply(amount_exact),
        };
        let invoice = invoices.entry(tenant).or_insert_with(|| Invoice {
            tenant: hierarchy.node(tenant).id.clone(),
            tenant_name: hierarchy.node(tenant).name.clone(),
            period: quantities.period,
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
    }
    let mut invoices: Vec<(NodeIndex, Invoice)> = invoices.into_iter().collect();
    for (_, invoice) in &mut invoices {
        invoice.lines.sort_by(|left, right| {
            left.subscription.cmp(&right.subscription).then(left.meter.cmp(&right.meter))
        });
        invoice.total = invoice.lines.iter().map(|line| line.amount).sum();
        invoice.total.rescale(rules.rounding(invoice.currency).scale);
    }
    invoices.sort_by(|left, right| left.1.tenant.cmp(&right.1.tenant));

    let commissions = commission_statements(hierarchy, terms, rules, quantities.period, &invoices)?;
    let overrides = override_statements(hierarchy, terms, rules, quantities.period, &invoices)?;
    unpriced
        .sort_by(|left, right| left.subscription.cmp(&right.subscription).then(left.meter.cmp(&right.meter)));
    Ok(MonthEndReport {
        period: quantities.period,
        invoices: invoices.into_iter().map(|(_, invoice)| invoice).collect(),
        commissions,
        overrides,
        unpriced,
        stats: quantities.stats.clone(),
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
