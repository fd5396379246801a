//! Enterprise IT mode: showback and chargeback of a month-end, with shared costs spread over departments.
//!
//! In an enterprise the tenants are departments and the subscriptions their projects; the platform is the
//! IT provider. [`showback`] reads the tenant invoices of a [`MonthEndReport`] and says what each department
//! cost: its own projects, plus its share of the shared costs the [`ChargebackSettings`] name. [`journal`]
//! turns a showback into balanced double-entry lines (chargeback), and [`journal_csv`] writes them.
//!
//! Rules:
//! - a department's *direct* cost is the sum of its tenant-invoice lines, minus the lines of shared
//!   subscriptions; lines without a subscription (tenant-wide credits, minimum-commitment true-ups) are
//!   counted in [`Department::other`], the rest by project in [`Department::projects`];
//! - a shared cost is a fixed amount ([`SharedSource::Amount`], e.g. platform operations: *added* to the
//!   month) or a shared subscription ([`SharedSource::Subscription`]: its lines are taken *off* the
//!   department that was invoiced for them and spread, so the month's total does not change);
//! - each shared cost is split over its targets ([`SharedCost::targets`]; none named = every department
//!   with a tenant invoice, or for fixed weights the tenants weighted) evenly, by direct cost, by usage of
//!   one meter or by fixed weights, with [`allocate`] at the currency's minor unit, so the shares add up to
//!   the shared cost exactly. Shares are computed from direct costs only, never from other shares;
//! - hence the grand total = the tenant invoices' totals + the fixed shared costs, to the cent.
//!
//! Everything comes out sorted by id, so the same inputs give the same documents.

use std::collections::{BTreeMap, BTreeSet};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::billing::allocation::{allocate, allocate_even};
use crate::billing::{Invoice, LineKind, MonthEndReport};
use crate::error::{CmsError, Location};
use crate::model::hierarchy::{Hierarchy, NodeKind};
use crate::model::meter::MeterId;
use crate::model::money::Currency;
use crate::model::time::Period;

/// The account a department's chargeback is debited to by default (an operating expense: IT services).
pub const DEFAULT_EXPENSE_ACCOUNT: &str = "6100";
/// The account the IT provider's recovery is credited to by default (internal recharges recovered).
pub const DEFAULT_RECOVERY_ACCOUNT: &str = "4900";

/// What errors about the settings name as their source.
const SETTINGS: &str = "chargeback settings";

/// Where the money of a shared cost comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SharedSource {
    /// A fixed overhead of the month (platform operations, licences): added to what departments pay.
    Amount {
        /// The amount, a whole number of the currency's minor units.
        amount: Decimal,
        /// Its currency: the one of the tenant invoices.
        currency: Currency,
    },
    /// A shared subscription: its cost (the tenant-invoice lines whose subscription is this id, ignoring
    /// ASCII case) is taken off the department invoiced for it and spread.
    Subscription {
        /// The subscription id.
        id: String,
    },
}

/// How a shared cost is split over its targets.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AllocationMethod {
    /// Equal shares.
    #[default]
    Even,
    /// In proportion to each target's direct cost (which may be negative after credits, as long as the
    /// targets' direct costs do not sum to zero).
    Cost,
    /// In proportion to each target's quantity of one meter on its usage lines (shared subscriptions'
    /// lines excluded).
    Usage {
        /// The meter.
        meter: MeterId,
    },
    /// In proportion to fixed, non-negative weights by tenant id; every target needs one.
    Weights {
        /// Weight by tenant id.
        weights: BTreeMap<String, Decimal>,
    },
}

/// A cost shared by departments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedCost {
    /// Stable id (shown on each department's share).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where its money comes from.
    pub source: SharedSource,
    /// How it is split.
    pub method: AllocationMethod,
    /// Tenant ids to split over. Empty: every department with a tenant invoice in the report (for
    /// [`AllocationMethod::Weights`], the tenants weighted).
    #[serde(default)]
    pub targets: Vec<String>,
}

/// How a month-end is shown back and charged back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChargebackSettings {
    /// Cost-centre code by node id: departments (tenants), projects (subscriptions, matched ignoring ASCII
    /// case) and the platform (the IT provider, used on the recovery side of the journal).
    pub cost_centres: BTreeMap<String, String>,
    /// Shared costs to spread; ids are unique and a subscription is shared at most once.
    pub shared: Vec<SharedCost>,
    /// Debited with each department's chargeback ([`DEFAULT_EXPENSE_ACCOUNT`] by default).
    pub expense_account: String,
    /// Credited with what the IT provider recovers ([`DEFAULT_RECOVERY_ACCOUNT`] by default).
    pub recovery_account: String,
}

impl Default for ChargebackSettings {
    fn default() -> Self {
        Self {
            cost_centres: BTreeMap::new(),
            shared: Vec::new(),
            expense_account: DEFAULT_EXPENSE_ACCOUNT.to_owned(),
            recovery_account: DEFAULT_RECOVERY_ACCOUNT.to_owned(),
        }
    }
}

/// A project's (subscription's) direct cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// Subscription id (as the hierarchy spells it, when it knows it).
    pub subscription: String,
    /// Display name, when the hierarchy knows the subscription.
    pub name: Option<String>,
    /// Its cost-centre code, when the settings give one (no fallback to the department's).
    pub cost_centre: Option<String>,
    /// Sum of its invoice lines.
    pub amount: Decimal,
}

/// A department's share of one shared cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedShare {
    /// The shared cost's id.
    pub shared: String,
    /// The share.
    pub amount: Decimal,
}

/// What one department (tenant) cost in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    /// Tenant id.
    pub tenant: String,
    /// Display name.
    pub name: String,
    /// Its cost-centre code, when the settings give one.
    pub cost_centre: Option<String>,
    /// Total of its tenant invoices (shared subscriptions' lines included).
    pub invoiced: Decimal,
    /// Its own cost: `invoiced` minus the lines of shared subscriptions = projects + `other`.
    pub direct: Decimal,
    /// Direct cost by subscription, sorted by subscription id.
    pub projects: Vec<Project>,
    /// Direct lines without a subscription (tenant-wide credits, minimum-commitment true-ups).
    pub other: Decimal,
    /// Its share of each shared cost it is a target of, sorted by shared cost id.
    pub shared: Vec<SharedShare>,
    /// `direct` + its shares: what it is charged.
    pub total: Decimal,
}

/// One target's part of a shared cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantShare {
    /// Tenant id.
    pub tenant: String,
    /// What the split was proportional to: 1 (even), its direct cost, its quantity of the meter, or its
    /// weight.
    pub basis: Decimal,
    /// The share.
    pub amount: Decimal,
}

/// How one shared cost was split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedAllocation {
    /// Shared cost id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where its money came from.
    pub source: SharedSource,
    /// How it was split.
    pub method: AllocationMethod,
    /// The amount split.
    pub amount: Decimal,
    /// For a shared subscription: the departments invoiced for it (sorted), whose direct cost excludes it.
    pub owners: Vec<String>,
    /// Shares by tenant, sorted by tenant id; they sum exactly to `amount`.
    pub shares: Vec<TenantShare>,
}

/// Showback of a period: what each department cost, shared costs included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowbackReport {
    /// Billing period.
    #[serde(with = "crate::billing::invoice::period_text")]
    pub period: Period,
    /// Currency of every amount; `None` only when there is nothing to show (no tenant invoice and no
    /// fixed shared cost).
    pub currency: Option<Currency>,
    /// The IT provider: the platform's id.
    pub provider: String,
    /// Its display name.
    pub provider_name: String,
    /// Its cost-centre code, when the settings give one.
    pub provider_cost_centre: Option<String>,
    /// Departments sorted by tenant id: those with a tenant invoice and those receiving a share.
    pub departments: Vec<Department>,
    /// Shared costs sorted by id.
    pub shared: Vec<SharedAllocation>,
    /// Total of the tenant invoices.
    pub invoiced: Decimal,
    /// Total of the fixed shared costs ([`SharedSource::Amount`]): added to `invoiced`.
    pub overhead: Decimal,
    /// Total of the shared subscriptions: moved between departments, not added.
    pub reallocated: Decimal,
    /// Sum of the departments' totals = `invoiced` + `overhead`.
    pub total: Decimal,
}

/// One line of the chargeback journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalLine {
    /// The period (`YYYY-MM` for a calendar month).
    pub period: String,
    /// The entry it belongs to: `CB-<period>-<tenant id>`.
    pub document: String,
    /// Ledger account.
    pub account: String,
    /// Cost-centre code, when known.
    pub cost_centre: Option<String>,
    /// Debit (zero on a credit line).
    pub debit: Decimal,
    /// Credit (zero on a debit line).
    pub credit: Decimal,
    /// What it is.
    pub memo: String,
}

/// Build the showback of a month-end from its tenant invoices (`buyer_kind` tenant).
///
/// Refused: tenant invoices (or fixed shared costs) in two currencies ([`CmsError::CurrencyMismatch`]);
/// settings naming an unknown tenant or subscription ([`CmsError::UnknownNode`]); duplicate shared cost
/// ids, targets or shared subscriptions, missing or negative weights, a shared cost with nothing to split
/// over, bases summing to zero, or a fixed amount finer than the currency's minor unit
/// ([`CmsError::InvalidValue`], located at the shared cost).
pub fn showback(
    report: &MonthEndReport,
    hierarchy: &Hierarchy,
    settings: &ChargebackSettings,
) -> Result<ShowbackReport, CmsError> {
    let period = report.period;
    check_settings(hierarchy, settings)?;
    let invoices: Vec<&Invoice> =
        report.invoices.iter().filter(|invoice| invoice.buyer_kind == NodeKind::Tenant).collect();
    let mut currency = None;
    for invoice in &invoices {
        same_currency(&mut currency, invoice.currency, &format!("showback of {period}"))?;
    }
    for shared in &settings.shared {
        if let SharedSource::Amount { currency: fixed, .. } = &shared.source {
            let document = format!("shared cost {} in the showback of {period}", shared.id);
            same_currency(&mut currency, *fixed, &document)?;
        }
    }
    let scale = currency.map_or(2, |currency| currency.minor_unit);

    let Reading { drafts, mut moved, invoiced } = read_invoices(&invoices, hierarchy, settings)?;

    let mut allocations = Vec::with_capacity(settings.shared.len());
    let mut shares_by_tenant: BTreeMap<String, Vec<SharedShare>> = BTreeMap::new();
    let (mut overhead, mut reallocated) = (Decimal::ZERO, Decimal::ZERO);
    for (index, shared) in settings.shared.iter().enumerate() {
        let (amount, owners, allocation_scale) = match &shared.source {
            SharedSource::Amount { amount, .. } => {
                overhead = plus(overhead, *amount)?;
                (*amount, BTreeSet::new(), scale)
            }
            SharedSource::Subscription { .. } => {
                let (amount, owners) = moved.remove(&index).unwrap_or_default();
                reallocated = plus(reallocated, amount)?;
                // Lines are rounded to the billing rules' scale, which may be finer than the minor unit.
                (amount, owners, scale.max(amount.normalize().scale()))
            }
        };
        let shares = split(shared, amount, allocation_scale, &drafts)?;
        for share in &shares {
            shares_by_tenant
                .entry(share.tenant.clone())
                .or_default()
                .push(SharedShare { shared: shared.id.clone(), amount: share.amount });
        }
        allocations.push(SharedAllocation {
            id: shared.id.clone(),
            name: shared.name.clone(),
            source: shared.source.clone(),
            method: shared.method.clone(),
            amount: shown(amount, allocation_scale),
            owners: owners.into_iter().collect(),
            shares,
        });
    }
    allocations.sort_by(|left, right| left.id.cmp(&right.id));

    let (departments, total) = departments_of(drafts, shares_by_tenant, hierarchy, settings, scale)?;
    let provider = hierarchy.node(hierarchy.root());
    Ok(ShowbackReport {
        period,
        currency,
        provider: provider.id.clone(),
        provider_name: provider.name.clone(),
        provider_cost_centre: cost_centre_of(settings, &provider.id),
        departments,
        shared: allocations,
        invoiced: shown(invoiced, scale),
        overhead: shown(overhead, scale),
        reallocated: shown(reallocated, scale),
        total: shown(total, scale),
    })
}

/// The chargeback of a showback as double-entry journal lines: per department with a non-zero total, a
/// debit to the expense account on its cost centre and a credit to the recovery account on the provider's
/// cost centre, for the same amount (a negative total swaps the sides). Debits and credits balance exactly.
pub fn journal(showback: &ShowbackReport, settings: &ChargebackSettings) -> Vec<JournalLine> {
    let period = showback.period.to_string();
    let mut lines = Vec::with_capacity(showback.departments.len() * 2);
    for department in showback.departments.iter().filter(|department| !department.total.is_zero()) {
        let amount = department.total.abs();
        let zero = Decimal::new(0, amount.scale());
        let (charged, recovered) = if department.total.is_sign_positive() {
            ((amount, zero), (zero, amount))
        } else {
            ((zero, amount), (amount, zero))
        };
        let document = format!("CB-{period}-{}", department.tenant);
        let memo = format!("Chargeback {period}: {} ({})", department.name, department.tenant);
        lines.push(JournalLine {
            period: period.clone(),
            document: document.clone(),
            account: settings.expense_account.clone(),
            cost_centre: department.cost_centre.clone(),
            debit: charged.0,
            credit: charged.1,
            memo: memo.clone(),
        });
        lines.push(JournalLine {
            period: period.clone(),
            document,
            account: settings.recovery_account.clone(),
            cost_centre: showback.provider_cost_centre.clone(),
            debit: recovered.0,
            credit: recovered.1,
            memo,
        });
    }
    lines
}

/// The journal as CSV: a header `period,document,account,cost_centre,debit,credit,memo`, then one row a
/// line (an unknown cost centre is an empty cell), `\n` line ends.
pub fn journal_csv(lines: &[JournalLine]) -> Result<String, CmsError> {
    let io = |error: &dyn std::fmt::Display| CmsError::Io {
        at: Location::whole("chargeback journal"),
        message: error.to_string(),
    };
    let mut writer =
        csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
    writer
        .write_record(["period", "document", "account", "cost_centre", "debit", "credit", "memo"])
        .map_err(|error| io(&error))?;
    for line in lines {
        let (debit, credit) = (line.debit.to_string(), line.credit.to_string());
        writer
            .write_record([
                line.period.as_str(),
                line.document.as_str(),
                line.account.as_str(),
                line.cost_centre.as_deref().unwrap_or(""),
                debit.as_str(),
                credit.as_str(),
                line.memo.as_str(),
            ])
            .map_err(|error| io(&error))?;
    }
    let bytes = writer.into_inner().map_err(|error| io(&error))?;
    String::from_utf8(bytes).map_err(|error| io(&error))
}

/// A department as its invoices are read.
#[derive(Default)]
struct Draft {
    name: String,
    invoiced: Decimal,
    direct: Decimal,
    projects: BTreeMap<String, Decimal>,
    other: Decimal,
    usage: BTreeMap<MeterId, Decimal>,
}

impl Draft {
    fn named(name: &str) -> Self {
        Self { name: name.to_owned(), ..Self::default() }
    }
}

/// The departments as read from their tenant invoices, and the shared subscriptions' lines taken off them.
struct Reading {
    drafts: BTreeMap<String, Draft>,
    /// Cost and owning departments by index of the shared cost (in the settings) spreading it.
    moved: BTreeMap<usize, (Decimal, BTreeSet<String>)>,
    invoiced: Decimal,
}

fn read_invoices(
    invoices: &[&Invoice],
    hierarchy: &Hierarchy,
    settings: &ChargebackSettings,
) -> Result<Reading, CmsError> {
    let shared_subscriptions: Vec<(usize, &str)> = settings
        .shared
        .iter()
        .enumerate()
        .filter_map(|(index, shared)| match &shared.source {
            SharedSource::Subscription { id } => Some((index, id.as_str())),
            SharedSource::Amount { .. } => None,
        })
        .collect();
    let shared_of = |subscription: &str| {
        shared_subscriptions
            .iter()
            .find(|(_, id)| !subscription.is_empty() && id.eq_ignore_ascii_case(subscription))
            .map(|(index, _)| *index)
    };
    let mut reading = Reading { drafts: BTreeMap::new(), moved: BTreeMap::new(), invoiced: Decimal::ZERO };
    for invoice in invoices {
        reading.invoiced = plus(reading.invoiced, invoice.total)?;
        let draft =
            reading.drafts.entry(invoice.buyer.clone()).or_insert_with(|| Draft::named(&invoice.buyer_name));
        draft.invoiced = plus(draft.invoiced, invoice.total)?;
        for line in &invoice.lines {
            if let Some(index) = shared_of(&line.subscription) {
                let entry = reading.moved.entry(index).or_default();
                entry.0 = plus(entry.0, line.amount)?;
                entry.1.insert(invoice.buyer.clone());
                continue;
            }
            draft.direct = plus(draft.direct, line.amount)?;
            if line.subscription.is_empty() {
                draft.other = plus(draft.other, line.amount)?;
            } else {
                let key = subscription_node(hierarchy, &line.subscription)
                    .map_or_else(|| line.subscription.clone(), |(id, _)| id.to_owned());
                let project = draft.projects.entry(key).or_default();
                *project = plus(*project, line.amount)?;
            }
            if line.kind == LineKind::Usage {
                let quantity = draft.usage.entry(line.meter).or_default();
                *quantity = plus(*quantity, line.quantity)?;
            }
        }
    }
    Ok(reading)
}

/// The departments, with their shares, sorted by tenant id; and the sum of their totals.
fn departments_of(
    mut drafts: BTreeMap<String, Draft>,
    mut shares_by_tenant: BTreeMap<String, Vec<SharedShare>>,
    hierarchy: &Hierarchy,
    settings: &ChargebackSettings,
    scale: u32,
) -> Result<(Vec<Department>, Decimal), CmsError> {
    for tenant in shares_by_tenant.keys() {
        if !drafts.contains_key(tenant) {
            let name = hierarchy.get(tenant).map(|node| node.name.clone()).unwrap_or_default();
            drafts.insert(tenant.clone(), Draft::named(&name));
        }
    }
    let mut departments = Vec::with_capacity(drafts.len());
    let mut total = Decimal::ZERO;
    for (tenant, draft) in drafts {
        let mut shared = shares_by_tenant.remove(&tenant).unwrap_or_default();
        shared.sort_by(|left, right| left.shared.cmp(&right.shared));
        let mut department_total = draft.direct;
        for share in &shared {
            department_total = plus(department_total, share.amount)?;
        }
        total = plus(total, department_total)?;
        let projects = draft
            .projects
            .into_iter()
            .map(|(subscription, amount)| Project {
                name: subscription_node(hierarchy, &subscription).map(|(_, name)| name.to_owned()),
                cost_centre: cost_centre_of(settings, &subscription),
                subscription,
                amount: shown(amount, scale),
            })
            .collect();
        departments.push(Department {
            cost_centre: cost_centre_of(settings, &tenant),
            tenant,
            name: draft.name,
            invoiced: shown(draft.invoiced, scale),
            direct: shown(draft.direct, scale),
            projects,
            other: shown(draft.other, scale),
            shared,
            total: shown(department_total, scale),
        });
    }
    Ok((departments, total))
}

/// Split one shared cost over its targets; errors are located at the shared cost.
fn split(
    shared: &SharedCost,
    amount: Decimal,
    scale: u32,
    drafts: &BTreeMap<String, Draft>,
) -> Result<Vec<TenantShare>, CmsError> {
    let at = Location::field(SETTINGS, &format!("shared cost {}", shared.id));
    let targets = targets_of(shared, drafts);
    if targets.is_empty() {
        if amount.is_zero() {
            return Ok(Vec::new());
        }
        return Err(CmsError::InvalidValue {
            at,
            text: amount.to_string(),
            reason: "nothing to split over: no targets are named and no department has a tenant invoice \
                     (or no tenant is weighted)"
                .into(),
        });
    }
    let bases: Vec<Decimal> = targets.iter().map(|target| basis(shared, target, drafts)).collect();
    let amounts = if matches!(shared.method, AllocationMethod::Even) {
        allocate_even(amount, targets.len(), scale)
    } else {
        allocate(amount, &bases, scale)
    }
    .map_err(|error| relocated(error, &at))?;
    Ok(targets
        .into_iter()
        .zip(bases)
        .zip(amounts)
        .map(|((tenant, basis), amount)| TenantShare { tenant, basis, amount })
        .collect())
}

/// Refuse settings that cannot be applied, naming the shared cost and the value at fault.
pub fn check_settings(hierarchy: &Hierarchy, settings: &ChargebackSettings) -> Result<(), CmsError> {
    let mut ids = BTreeSet::new();
    let mut subscriptions = BTreeSet::new();
    for (index, shared) in settings.shared.iter().enumerate() {
        let field = |name: &str| Location::field(SETTINGS, &format!("shared[{index}].{name}"));
        let invalid = |name: &str, text: &str, reason: String| CmsError::InvalidValue {
            at: field(name),
            text: text.to_owned(),
            reason,
        };
        if shared.id.is_empty() {
            return Err(invalid("id", "", "a shared cost needs an id".into()));
        }
        if !ids.insert(shared.id.as_str()) {
            return Err(invalid("id", &shared.id, "another shared cost has this id".into()));
        }
        if let SharedSource::Subscription { id } = &shared.source {
            if subscription_node(hierarchy, id).is_none() {
                return Err(CmsError::UnknownNode {
                    kind: NodeKind::Subscription.as_str().into(),
                    id: id.clone(),
                    context: Some(field("source")),
                });
            }
            if !subscriptions.insert(id.to_ascii_lowercase()) {
                return Err(invalid("source", id, "another shared cost spreads this subscription".into()));
            }
        }
        let unknown_tenant = |id: &str, name: &str| CmsError::UnknownNode {
            kind: NodeKind::Tenant.as_str().into(),
            id: id.to_owned(),
            context: Some(field(name)),
        };
        let mut targets = BTreeSet::new();
        for target in &shared.targets {
            if !is_tenant(hierarchy, target) {
                return Err(unknown_tenant(target, "targets"));
            }
            if !targets.insert(target.as_str()) {
                return Err(invalid("targets", target, "a tenant is named twice among the targets".into()));
            }
        }
        if let AllocationMethod::Weights { weights } = &shared.method {
            for (tenant, weight) in weights {
                if !is_tenant(hierarchy, tenant) {
                    return Err(unknown_tenant(tenant, "method.weights"));
                }
                if *weight < Decimal::ZERO {
                    return Err(invalid(
                        "method.weights",
                        &format!("{tenant}: {weight}"),
                        "weights must not be negative".into(),
                    ));
                }
                if !targets.is_empty() && !targets.contains(tenant.as_str()) {
                    return Err(invalid("method.weights", tenant, "this tenant is not a target".into()));
                }
            }
            if let Some(missing) = targets.iter().find(|target| !weights.contains_key(**target)) {
                return Err(invalid("method.weights", missing, "every target needs a weight".into()));
            }
        }
    }
    Ok(())
}

/// The tenants a shared cost is split over, sorted by id.
fn targets_of(shared: &SharedCost, drafts: &BTreeMap<String, Draft>) -> Vec<String> {
    let mut targets: Vec<String> = if !shared.targets.is_empty() {
        shared.targets.clone()
    } else if let AllocationMethod::Weights { weights } = &shared.method {
        weights.keys().cloned().collect()
    } else {
        drafts.keys().cloned().collect()
    };
    targets.sort();
    targets
}

/// What a target's share is proportional to.
fn basis(shared: &SharedCost, target: &str, drafts: &BTreeMap<String, Draft>) -> Decimal {
    let draft = drafts.get(target);
    match &shared.method {
        AllocationMethod::Even => Decimal::ONE,
        AllocationMethod::Cost => draft.map_or(Decimal::ZERO, |draft| draft.direct),
        AllocationMethod::Usage { meter } => {
            draft.and_then(|draft| draft.usage.get(meter)).copied().unwrap_or(Decimal::ZERO)
        }
        AllocationMethod::Weights { weights } => weights.get(target).copied().unwrap_or(Decimal::ZERO),
    }
}

fn is_tenant(hierarchy: &Hierarchy, id: &str) -> bool {
    hierarchy.get(id).is_some_and(|node| node.kind == NodeKind::Tenant)
}

/// A subscription's id and name as the hierarchy spells them (ids compared ignoring ASCII case).
fn subscription_node<'a>(hierarchy: &'a Hierarchy, id: &str) -> Option<(&'a str, &'a str)> {
    let node = hierarchy.node(hierarchy.find_ignoring_case(id)?);
    (node.kind == NodeKind::Subscription).then_some((node.id.as_str(), node.name.as_str()))
}

/// A node's cost-centre code: an exact key first, then one equal ignoring ASCII case.
fn cost_centre_of(settings: &ChargebackSettings, id: &str) -> Option<String> {
    settings
        .cost_centres
        .get(id)
        .or_else(|| {
            settings.cost_centres.iter().find(|(key, _)| key.eq_ignore_ascii_case(id)).map(|(_, code)| code)
        })
        .cloned()
}

fn same_currency(seen: &mut Option<Currency>, currency: Currency, document: &str) -> Result<(), CmsError> {
    match *seen {
        None => {
            *seen = Some(currency);
            Ok(())
        }
        Some(first) if first == currency => Ok(()),
        Some(first) => Err(CmsError::CurrencyMismatch {
            document: document.to_owned(),
            first: first.to_string(),
            second: currency.to_string(),
        }),
    }
}

fn plus(left: Decimal, right: Decimal) -> Result<Decimal, CmsError> {
    left.checked_add(right).ok_or_else(|| CmsError::Overflow { what: "a showback amount".into() })
}

/// An amount written with at least `scale` digits (sums of nothing are `0`, shown as `0.00`).
fn shown(mut amount: Decimal, scale: u32) -> Decimal {
    if amount.scale() < scale {
        amount.rescale(scale);
    }
    amount
}

/// An allocation's error, located at the shared cost being split.
fn relocated(mut error: CmsError, at: &Location) -> CmsError {
    if let Some(location) = error.location_mut() {
        *location = at.clone();
    }
    error
}
