//! Commission statements from issued documents (DESIGN.md, "Commissions").
//!
//! - Base: the net amount (lines after credits and discounts, before tax) of documents issued to tenants
//!   in the statement's period, line by line attributed to the partner (and distributor) the usage's
//!   tenant was under when it started. Credit notes issued in the period count negative: they claw back
//!   there. Only agents in an agency relationship earn;
//! - a partner's commission = its bands (own or inherited; marginal or whole-amount) on the base,
//!   rounded once; a negative base (more credited than invoiced) gives the negative of the bands on its
//!   size (a clawback);
//! - a distributor's override = its plan's bands on the base of its whole network (signed like it), or
//!   its flat rate x that base, rounded ([`crate::model::terms::OverrideBasis`]);
//! - each statement's total is split over its tenants in proportion to their base, by largest
//!   remainder, so the shares sum exactly to it;
//! - per tenant: revenue = commission shares + override shares + retained, exactly; the totals per
//!   currency reconcile the same way.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::billing::allocation::allocate;
use crate::billing::invoice::{DocumentKind, InvoiceDocument};
use crate::billing::month_end::BillingRules;
use crate::billing::rating::BillingContext;
use crate::error::CmsError;
use crate::model::channel::Relationship;
use crate::model::hierarchy::NodeKind;
use crate::model::money::Currency;
use crate::model::tiers::BandAmount;
use crate::model::time::Period;

/// A tenant's part of a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantShare {
    /// The tenant.
    pub tenant: String,
    /// Its base (net documented amount attributed to the agent).
    pub base: Decimal,
    /// Its share of the statement's total.
    pub amount: Decimal,
}

/// A partner's commission statement for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerStatement {
    /// The partner.
    pub partner: String,
    /// Its name.
    pub partner_name: String,
    /// Who pays it (the issuer of the tenants' invoices).
    pub payer: String,
    /// The statement period (documents issued in it).
    pub period: String,
    /// Currency.
    pub currency: Currency,
    /// Net of the invoices (and debit notes) counted.
    pub invoiced: Decimal,
    /// Net of the credit notes counted (negative or zero).
    pub clawbacks: Decimal,
    /// `invoiced + clawbacks`.
    pub base: Decimal,
    /// The commission plan applied.
    pub plan: Option<String>,
    /// The bands applied to the base's size.
    pub bands: Vec<BandAmount>,
    /// The commission, rounded.
    pub commission: Decimal,
    /// Per tenant: base and share of the commission.
    pub tenants: Vec<TenantShare>,
    /// Numbers of the documents counted.
    pub documents: Vec<String>,
}

/// A distributor's override statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverrideStatementDoc {
    /// The distributor.
    pub distributor: String,
    /// Its name.
    pub distributor_name: String,
    /// Who pays it.
    pub payer: String,
    /// The statement period.
    pub period: String,
    /// Currency.
    pub currency: Currency,
    /// Base of its whole network.
    pub base: Decimal,
    /// Its flat override rate, if the override is one.
    pub rate: Option<Decimal>,
    /// The commission plan whose bands give the override, if one does.
    pub plan: Option<String>,
    /// The bands applied, with a plan.
    pub bands: Vec<BandAmount>,
    /// The override, rounded.
    pub amount: Decimal,
    /// Per tenant: base and share.
    pub tenants: Vec<TenantShare>,
}

/// Where one tenant's net revenue goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantReconciliation {
    /// The tenant.
    pub tenant: String,
    /// Currency.
    pub currency: Currency,
    /// Net documented revenue in the period.
    pub revenue: Decimal,
    /// Its shares of partner commissions.
    pub commissions: Decimal,
    /// Its shares of distributor overrides.
    pub overrides: Decimal,
    /// What the issuer keeps: revenue - commissions - overrides.
    pub retained: Decimal,
}

/// Totals per currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconciliationTotals {
    /// Currency.
    pub currency: Currency,
    /// Net documented revenue.
    pub revenue: Decimal,
    /// Commissions.
    pub commissions: Decimal,
    /// Overrides.
    pub overrides: Decimal,
    /// Retained.
    pub retained: Decimal,
}

/// Every statement of a period, and how the revenue splits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommissionReport {
    /// The period (`YYYY-MM`).
    pub period: String,
    /// Partner statements.
    pub statements: Vec<PartnerStatement>,
    /// Distributor overrides.
    pub overrides: Vec<OverrideStatementDoc>,
    /// Per tenant.
    pub tenants: Vec<TenantReconciliation>,
    /// Per currency.
    pub totals: Vec<ReconciliationTotals>,
}

/// An agent's network being summed: tenant -> base; currency; documents; invoiced and clawed back.
#[derive(Default)]
struct Network {
    currency: Option<Currency>,
    tenants: BTreeMap<String, Decimal>,
    invoiced: Decimal,
    clawbacks: Decimal,
    documents: Vec<String>,
}

impl Network {
    fn add(&mut self, document: &InvoiceDocument, amount: Decimal, agent: &str) -> Result<(), CmsError> {
        match self.currency {
            Some(currency) if currency != document.currency => {
                return Err(CmsError::CurrencyMismatch {
                    document: format!("statement of {agent}"),
                    first: currency.to_string(),
                    second: document.currency.to_string(),
                });
            }
            _ => self.currency = Some(document.currency),
        }
        *self.tenants.entry(document.buyer.clone()).or_default() += amount;
        if document.kind == DocumentKind::CreditNote {
            self.clawbacks += amount;
        } else {
            self.invoiced += amount;
        }
        if let Some(number) = &document.number
            && self.documents.last() != Some(number)
        {
            self.documents.push(number.clone());
        }
        Ok(())
    }

    fn shares(&self, total: Decimal, scale: u32) -> Result<Vec<TenantShare>, CmsError> {
        let weights: Vec<Decimal> = self.tenants.values().copied().collect();
        let amounts = if weights.iter().copied().sum::<Decimal>().is_zero() {
            vec![Decimal::ZERO; weights.len()]
        } else {
            allocate(total, &weights, scale)?
        };
        Ok(self
            .tenants
            .iter()
            .zip(amounts)
            .map(|((tenant, base), amount)| TenantShare { tenant: tenant.clone(), base: *base, amount })
            .collect())
    }
}

/// The statements of documents issued in `period` (pass only those; drafts are ignored).
pub fn commission_report(
    context: &BillingContext<'_>,
    rules: BillingRules,
    period: Period,
    documents: &[InvoiceDocument],
) -> Result<CommissionReport, CmsError> {
    let (hierarchy, channel, terms) = (context.hierarchy, context.channel, context.terms);
    let agency = |id: &str| {
        hierarchy.find(id).filter(|&node| channel.relationship_of(hierarchy, node) == Relationship::Agency)
    };
    let mut partners: BTreeMap<(String, String), Network> = BTreeMap::new();
    let mut distributors: BTreeMap<(String, String), Network> = BTreeMap::new();
    let mut revenue: BTreeMap<String, (Currency, Decimal)> = BTreeMap::new();
    let tenant_documents = documents
        .iter()
        .filter(|document| document.number.is_some() && document.buyer_kind == NodeKind::Tenant);
    for document in tenant_documents {
        let entry = revenue.entry(document.buyer.clone()).or_insert((document.currency, Decimal::ZERO));
        if entry.0 != document.currency {
            return Err(CmsError::CurrencyMismatch {
                document: format!("revenue of tenant {}", document.buyer),
                first: entry.0.to_string(),
                second: document.currency.to_string(),
            });
        }
        for line in &document.lines {
            entry.1 += line.amount;
            if let Some(partner) = line.partner.as_deref().filter(|id| agency(id).is_some()) {
                partners.entry((partner.to_owned(), document.issuer.clone())).or_default().add(
                    document,
                    line.amount,
                    partner,
                )?;
            }
            if let Some(distributor) = line.distributor.as_deref().filter(|id| agency(id).is_some()) {
                distributors.entry((distributor.to_owned(), document.issuer.clone())).or_default().add(
                    document,
                    line.amount,
                    distributor,
                )?;
            }
        }
    }
    let mut shares: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    let mut statements = Vec::new();
    for ((partner_id, payer), network) in partners {
        let Some(partner) = hierarchy.find(&partner_id) else { continue };
        let Some(currency) = network.currency else { continue };
        let base = network.invoiced + network.clawbacks;
        let plan = terms.commission_plan(hierarchy, partner);
        let bands = plan.map(|plan| plan.bands.breakdown(base.abs())).transpose()?.unwrap_or_default();
        let size = rules.rounding(currency).apply(bands.iter().map(|band| band.amount).sum());
        let commission = if base.is_sign_negative() { -size } else { size };
        let tenants = network.shares(commission, rules.rounding(currency).scale)?;
        for share in &tenants {
            shares.entry(share.tenant.clone()).or_default().0 += share.amount;
        }
        statements.push(PartnerStatement {
            partner_name: hierarchy.node(partner).name.clone(),
            partner: partner_id,
            payer,
            period: period.to_string(),
            currency,
            invoiced: network.invoiced,
            clawbacks: network.clawbacks,
            base,
            plan: plan.map(|plan| plan.id.clone()),
            bands,
            commission,
            tenants,
            documents: network.documents,
        });
    }
    let mut overrides = Vec::new();
    for ((distributor_id, payer), network) in distributors {
        let Some(distributor) = hierarchy.find(&distributor_id) else { continue };
        let (Some(currency), Some(basis)) = (network.currency, terms.override_basis(hierarchy, distributor))
        else {
            continue;
        };
        let base = network.invoiced + network.clawbacks;
        let (exact, bands) = basis.exact(base)?;
        let amount = rules.rounding(currency).apply(exact);
        let tenants = network.shares(amount, rules.rounding(currency).scale)?;
        for share in &tenants {
            shares.entry(share.tenant.clone()).or_default().1 += share.amount;
        }
        overrides.push(OverrideStatementDoc {
            distributor_name: hierarchy.node(distributor).name.clone(),
            distributor: distributor_id,
            payer,
            period: period.to_string(),
            currency,
            base,
            rate: basis.rate(),
            plan: basis.plan().map(str::to_owned),
            bands,
            amount,
            tenants,
        });
    }
    let (tenants, totals) = reconcile(revenue, &shares);
    Ok(CommissionReport { period: period.to_string(), statements, overrides, tenants, totals })
}

/// Per tenant and per currency: revenue = commission shares + override shares + retained.
fn reconcile(
    revenue: BTreeMap<String, (Currency, Decimal)>,
    shares: &BTreeMap<String, (Decimal, Decimal)>,
) -> (Vec<TenantReconciliation>, Vec<ReconciliationTotals>) {
    let mut totals: BTreeMap<Currency, ReconciliationTotals> = BTreeMap::new();
    let tenants: Vec<TenantReconciliation> = revenue
        .into_iter()
        .map(|(tenant, (currency, revenue))| {
            let (commissions, overrides) = shares.get(&tenant).copied().unwrap_or_default();
            let row = TenantReconciliation {
                tenant,
                currency,
                revenue,
                commissions,
                overrides,
                retained: revenue - commissions - overrides,
            };
            let total = totals.entry(currency).or_insert(ReconciliationTotals {
                currency,
                revenue: Decimal::ZERO,
                commissions: Decimal::ZERO,
                overrides: Decimal::ZERO,
                retained: Decimal::ZERO,
            });
            total.revenue += row.revenue;
            total.commissions += row.commissions;
            total.overrides += row.overrides;
            total.retained += row.retained;
            row
        })
        .collect();
    (tenants, totals.into_values().collect())
}
