//! The month-end files of `bench/WORKLOAD.md`.
//!
//! Inputs: `hierarchy.csv` (`node_id, parent_id, kind`), `subscriptions.csv` (`subscription_id, tenant_id`),
//! `prices.csv` (`meter_id, unit, tier_from, unit_price`: graduated tiers), `commission.csv`
//! (`revenue_from, rate`: marginal bands), `plan.json` (`month, rounding, scale, distributor_override_rate`)
//! and `usage.csv` (`subscription_id, meter_id, usage_start_time, usage_end_time, quantity, resource_uri,
//! location`).
//! Outputs: `invoice_lines.csv`, `invoices.csv`, `commissions.csv`, `overrides.csv`, sorted by their leading
//! columns, decimals at their natural scale (quantities at least 6 decimals, amounts at the plan's scale).

use std::collections::BTreeMap;
use std::io::{Read, Write};

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::billing::{BillingRules, MonthEndReport};
use crate::error::{CmsError, Location};
use crate::formats::csv_input::CsvInput;
pub use crate::formats::usage_csv::read_usage;
use crate::model::hierarchy::{Hierarchy, NodeKind};
use crate::model::meter::MeterId;
use crate::model::money::{Currency, RoundingMode, parse_decimal};
use crate::model::pricing::{CommissionPlan, PriceList};
use crate::model::tiers::{Tier, TierMode};
use crate::model::time::Period;
use crate::model::usage::UsageRow;

/// The id the month-end gives the platform root of a workload hierarchy.
pub const PLATFORM_ID: &str = "platform";
/// The id of the one price list of a workload.
pub const PRICE_LIST_ID: &str = "prices";
/// The id of the one commission plan of a workload.
pub const COMMISSION_PLAN_ID: &str = "commission";

/// `plan.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadPlan {
    /// The month billed.
    pub period: Period,
    /// Rounding of shown amounts.
    pub rules: BillingRules,
    /// Distributor override rate.
    pub override_rate: Decimal,
}

#[derive(Deserialize)]
struct PlanData<'a> {
    month: String,
    #[serde(default)]
    rounding: Option<String>,
    #[serde(default, borrow)]
    scale: Option<&'a RawValue>,
    #[serde(borrow)]
    distributor_override_rate: &'a RawValue,
}

/// The text of a JSON number or string holding a number, without going through f64.
pub(crate) fn number_text(raw: &RawValue) -> &str {
    let text = raw.get().trim();
    text.strip_prefix('"').and_then(|inner| inner.strip_suffix('"')).unwrap_or(text)
}

/// Parse `plan.json`.
pub fn read_plan(bytes: &[u8], source: &str) -> Result<WorkloadPlan, CmsError> {
    let data: PlanData<'_> = serde_json::from_slice(bytes)
        .map_err(|error| CmsError::BadJson { at: Location::whole(source), message: error.to_string() })?;
    let period: Period = data.month.parse().map_err(|_| CmsError::InvalidValue {
        at: Location::field(source, "month"),
        text: data.month.clone(),
        reason: "expected a calendar month YYYY-MM".into(),
    })?;
    let mode = match &data.rounding {
        None => RoundingMode::HalfAwayFromZero,
        Some(text) => text.parse().map_err(|reason| CmsError::InvalidValue {
            at: Location::field(source, "rounding"),
            text: text.clone(),
            reason,
        })?,
    };
    let scale = match data.scale {
        None => 2,
        Some(raw) => number_text(raw).parse::<u32>().ok().filter(|&scale| scale <= 12).ok_or_else(|| {
            CmsError::InvalidValue {
                at: Location::field(source, "scale"),
                text: raw.get().to_owned(),
                reason: "expected a whole number of decimals, 0 to 12".into(),
            }
        })?,
    };
    let rate_text = number_text(data.distributor_override_rate);
    let override_rate =
        parse_decimal(rate_text).filter(|rate| !rate.is_sign_negative()).ok_or_else(|| {
            CmsError::InvalidValue {
                at: Location::field(source, "distributor_override_rate"),
                text: rate_text.to_owned(),
                reason: "expected a non-negative decimal".into(),
            }
        })?;
    Ok(WorkloadPlan {
        period,
        rules: BillingRules { mode, scale: Some(scale), price_double_counting: false },
        override_rate,
    })
}

/// Read `hierarchy.csv` into `hierarchy` (nodes with an empty parent go under the platform). Rows may come in
/// any order: parents are added before their children.
pub fn read_hierarchy(input: impl Read, source: &str, hierarchy: &mut Hierarchy) -> Result<(), CmsError> {
    let mut csv = CsvInput::new(input, source, &["node_id", "parent_id", "kind"])?;
    let mut rows = Vec::new();
    while csv.next_record()? {
        let id = csv.required(0, "node_id")?.to_owned();
        let parent = csv.text(1, "parent_id")?;
        let parent = (!parent.is_empty()).then(|| parent.to_owned());
        let kind_text = csv.required(2, "kind")?;
        let kind: NodeKind = kind_text.parse().map_err(|reason| CmsError::InvalidValue {
            at: csv.location(),
            text: kind_text.to_owned(),
            reason,
        })?;
        if !matches!(kind, NodeKind::Distributor | NodeKind::Partner | NodeKind::Tenant) {
            return Err(CmsError::InvalidValue {
                at: csv.location(),
                text: kind_text.to_owned(),
                reason: "hierarchy.csv holds distributors, partners and tenants".into(),
            });
        }
        rows.push((kind, id, parent, csv.location()));
    }
    // Parents are of a higher level than their children, so adding level by level adds parents first.
    rows.sort_by_key(|row| row.0);
    for (kind, id, parent, at) in rows {
        hierarchy.add(&id, kind, parent.as_deref(), &id, Some(&at))?;
    }
    Ok(())
}

/// Read `subscriptions.csv`: each subscription becomes a node under its tenant.
pub fn read_subscriptions(input: impl Read, source: &str, hierarchy: &mut Hierarchy) -> Result<(), CmsError> {
    let mut csv = CsvInput::new(input, source, &["subscription_id", "tenant_id"])?;
    while csv.next_record()? {
        let subscription = csv.required(0, "subscription_id")?;
        let tenant = csv.required(1, "tenant_id")?;
        let at = csv.location();
        if hierarchy.get(tenant).is_none_or(|node| node.kind != NodeKind::Tenant) {
            return Err(CmsError::UnknownNode {
                kind: "tenant".into(),
                id: tenant.to_owned(),
                context: Some(at),
            });
        }
        hierarchy.add(subscription, NodeKind::Subscription, Some(tenant), subscription, Some(&at))?;
    }
    Ok(())
}

/// Read `prices.csv`: graduated tiers per meter, in `currency`.
pub fn read_prices(input: impl Read, source: &str, currency: Currency) -> Result<PriceList, CmsError> {
    let mut csv = CsvInput::new(input, source, &["meter_id", "unit", "tier_from", "unit_price"])?;
    let mut tiers: BTreeMap<MeterId, (String, Vec<Tier>)> = BTreeMap::new();
    while csv.next_record()? {
        let meter_text = csv.required(0, "meter_id")?;
        let meter: MeterId = meter_text
            .parse()
            .map_err(|_| CmsError::BadMeterId { at: csv.location(), text: meter_text.to_owned() })?;
        let unit = csv.text(1, "unit")?.to_owned();
        let from = csv.decimal(2, "tier_from")?;
        let rate = csv.decimal(3, "unit_price")?;
        if from.is_sign_negative() || rate.is_sign_negative() {
            return Err(CmsError::InvalidValue {
                at: csv.location(),
                text: format!("{from} / {rate}"),
                reason: "tier_from and unit_price must not be negative".into(),
            });
        }
        tiers.entry(meter).or_insert_with(|| (unit, Vec::new())).1.push(Tier { from, rate });
    }
    let mut list = PriceList::new(PRICE_LIST_ID, currency);
    for (meter, (unit, meter_tiers)) in tiers {
        list.set(meter, &unit, TierMode::Graduated, meter_tiers)?;
    }
    Ok(list)
}

/// Read `commission.csv`: marginal commission bands.
pub fn read_commission(input: impl Read, source: &str) -> Result<CommissionPlan, CmsError> {
    let mut csv = CsvInput::new(input, source, &["revenue_from", "rate"])?;
    let mut bands = Vec::new();
    while csv.next_record()? {
        let from = csv.decimal(0, "revenue_from")?;
        let rate = csv.decimal(1, "rate")?;
        if from.is_sign_negative() || rate.is_sign_negative() {
            return Err(CmsError::InvalidValue {
                at: csv.location(),
                text: format!("{from} / {rate}"),
                reason: "revenue_from and rate must not be negative".into(),
            });
        }
        bands.push(Tier { from, rate });
    }
    CommissionPlan::new(COMMISSION_PLAN_ID, TierMode::Graduated, bands)
}

/// The four output files, written to the given sinks.
pub struct OutputSinks<'a> {
    /// `invoice_lines.csv`.
    pub invoice_lines: &'a mut dyn Write,
    /// `invoices.csv`.
    pub invoices: &'a mut dyn Write,
    /// `commissions.csv`.
    pub commissions: &'a mut dyn Write,
    /// `overrides.csv`.
    pub overrides: &'a mut dyn Write,
}

/// A quantity at its natural scale, but at least 6 decimals (the workload's quantity column).
pub fn quantity_text(quantity: Decimal) -> String {
    let mut shown = quantity;
    if shown.scale() < 6 {
        shown.rescale(6);
    }
    shown.to_string()
}

fn write_csv(
    sink: &mut dyn Write,
    name: &str,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> Result<(), CmsError> {
    let io = |error: &dyn std::fmt::Display| CmsError::Io {
        at: Location::whole(name),
        message: error.to_string(),
    };
    let mut writer = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(sink);
    writer.write_record(header).map_err(|error| io(&error))?;
    for row in rows {
        writer.write_record(&row).map_err(|error| io(&error))?;
    }
    writer.flush().map_err(|error| io(&error))
}

/// Write the four outputs of a month-end report.
pub fn write_outputs(report: &MonthEndReport, sinks: &mut OutputSinks<'_>) -> Result<(), CmsError> {
    let lines = report.invoices.iter().flat_map(|invoice| {
        invoice.lines.iter().map(|line| {
            vec![
                invoice.buyer.clone(),
                line.subscription.clone(),
                line.meter.canonical(),
                quantity_text(line.quantity),
                line.amount.to_string(),
            ]
        })
    });
    write_csv(
        sinks.invoice_lines,
        "invoice_lines.csv",
        &["tenant_id", "subscription_id", "meter_id", "quantity", "amount"],
        lines,
    )?;
    let invoices =
        report.invoices.iter().map(|invoice| vec![invoice.buyer.clone(), invoice.total.to_string()]);
    write_csv(sinks.invoices, "invoices.csv", &["tenant_id", "total"], invoices)?;
    let commissions = report.commissions.iter().map(|statement| {
        vec![statement.partner.clone(), statement.revenue.to_string(), statement.commission.to_string()]
    });
    write_csv(sinks.commissions, "commissions.csv", &["partner_id", "revenue", "commission"], commissions)?;
    let overrides = report.overrides.iter().map(|statement| {
        vec![statement.distributor.clone(), statement.revenue.to_string(), statement.amount.to_string()]
    });
    write_csv(sinks.overrides, "overrides.csv", &["distributor_id", "revenue", "override"], overrides)
}

/// The six inputs of a workload month-end, as readers.
pub struct WorkloadInputs<'a> {
    /// `plan.json`, whole.
    pub plan: &'a [u8],
    /// `hierarchy.csv`.
    pub hierarchy: &'a mut dyn Read,
    /// `subscriptions.csv`.
    pub subscriptions: &'a mut dyn Read,
    /// `prices.csv`.
    pub prices: &'a mut dyn Read,
    /// `commission.csv`.
    pub commission: &'a mut dyn Read,
    /// The usage, streamed: rows are never all held in memory.
    pub usage: UsageInput<'a>,
}

/// One Usage API page as `(name, bytes)`, or the error reading it.
pub type PageBytes = Result<(String, Vec<u8>), CmsError>;

/// Where a month-end reads its usage from.
pub enum UsageInput<'a> {
    /// `usage.csv`.
    Csv(&'a mut dyn Read),
    /// Usage API response pages as `(name, bytes)`, in the order to read them (the CLI sorts page files by
    /// name). Each page is parsed whole; a bad page stops the run with an error naming the page and record.
    Pages(&'a mut dyn Iterator<Item = PageBytes>),
}

/// Stream the usage of `input`, calling `visit` with each row and its location.
pub fn read_usage_input(
    input: UsageInput<'_>,
    mut visit: impl FnMut(&UsageRow<'_>, &dyn Fn() -> Location) -> Result<(), CmsError>,
) -> Result<(), CmsError> {
    match input {
        UsageInput::Csv(reader) => read_usage(reader, "usage.csv", visit),
        UsageInput::Pages(pages) => {
            for page in pages {
                let (name, bytes) = page?;
                let parsed = crate::formats::usage_api::parse_page(&bytes, &name)?;
                for (index, record) in parsed.records.iter().enumerate() {
                    visit(&record.as_row(), &|| Location::record(name.clone(), index as u64))?;
                }
            }
            Ok(())
        }
    }
}

/// The channel and terms a workload describes: the hierarchy under a platform root, one price list and one
/// commission plan at the platform, the override rate at the platform.
pub fn read_setup(
    inputs: &mut WorkloadInputs<'_>,
) -> Result<(WorkloadPlan, Hierarchy, crate::model::terms::CommercialTerms), CmsError> {
    let plan = read_plan(inputs.plan, "plan.json")?;
    let mut hierarchy = Hierarchy::new(PLATFORM_ID, "Platform");
    read_hierarchy(&mut *inputs.hierarchy, "hierarchy.csv", &mut hierarchy)?;
    read_subscriptions(&mut *inputs.subscriptions, "subscriptions.csv", &mut hierarchy)?;
    let mut terms = crate::model::terms::CommercialTerms::default();
    terms.put_price_list(read_prices(&mut *inputs.prices, "prices.csv", Currency::USD)?)?;
    terms.assign_price_list(crate::model::price_book::PriceScope::Default, PRICE_LIST_ID)?;
    terms.put_commission_plan(read_commission(&mut *inputs.commission, "commission.csv")?);
    terms.assign_commission_plan(PLATFORM_ID, COMMISSION_PLAN_ID)?;
    terms.set_override_rate(PLATFORM_ID, plan.override_rate);
    Ok((plan, hierarchy, terms))
}

/// Run the workload month-end: read the setup, stream the usage through one accumulator, bill.
///
/// This is the simple single-threaded path; it stays as the oracle that faster paths are tested against.
pub fn month_end(mut inputs: WorkloadInputs<'_>) -> Result<MonthEndReport, CmsError> {
    let (plan, hierarchy, terms) = read_setup(&mut inputs)?;
    let known = KnownSubscriptions::new(&hierarchy);
    let mut accumulator = crate::rating::UsageAccumulator::new(plan.period);
    read_usage_input(inputs.usage, |row, at| {
        if !known.contains(row.subscription) {
            return Err(CmsError::UnknownSubscription {
                at: at(),
                subscription: row.subscription.to_owned(),
            });
        }
        accumulator.ingest(row, at).map(drop)
    })?;
    crate::billing::bill(&hierarchy, &terms, plan.rules, &accumulator.finish())
}

/// The subscription ids of a hierarchy, matched exactly or ignoring ASCII case.
pub struct KnownSubscriptions {
    exact: std::collections::HashSet<String>,
    folded: std::collections::HashSet<String>,
}

impl KnownSubscriptions {
    /// Every subscription node of `hierarchy`.
    pub fn new(hierarchy: &Hierarchy) -> Self {
        let exact: std::collections::HashSet<String> = hierarchy
            .nodes()
            .filter(|(_, node)| node.kind == NodeKind::Subscription)
            .map(|(_, node)| node.id.clone())
            .collect();
        let folded = exact.iter().map(|id| id.to_ascii_lowercase()).collect();
        Self { exact, folded }
    }

    /// Whether `id` names a subscription.
    pub fn contains(&self, id: &str) -> bool {
        self.exact.contains(id) || self.folded.contains(&id.to_ascii_lowercase())
    }
}
