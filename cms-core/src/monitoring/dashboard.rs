//! Dashboard data: the KPIs of a scope (a principal's subtree) for a period as of an instant. Costs are
//! what [`crate::monitoring::budgets`] measures (tenants' invoice lines, rounded, before taxes), per
//! currency; nothing is converted here.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::engine::DocumentState;
use crate::model::money::Currency;
use crate::model::time::{Instant, Period};
use crate::monitoring::alerts::Alert;
use crate::monitoring::budgets::BudgetStatus;

/// An amount in a currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Currency.
    pub currency: Currency,
    /// Amount.
    pub amount: Decimal,
}

/// One entry of a ranking (a tenant, a meter, a region, a partner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranked {
    /// Id (node id, meter id, region name).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Currency.
    pub currency: Currency,
    /// Amount.
    pub amount: Decimal,
}

/// A day's cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCost {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Currency.
    pub currency: Currency,
    /// The day's cost.
    pub amount: Decimal,
}

/// Issued documents of a state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentsInState {
    /// Draft, issued or voided.
    pub state: DocumentState,
    /// Currency.
    pub currency: Currency,
    /// How many.
    pub count: u64,
    /// Their totals (with taxes).
    pub total: Decimal,
}

/// The health of a region's usage pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionHealth {
    /// The region.
    pub region: String,
    /// The end of its latest stored usage.
    pub last_usage: Option<Instant>,
    /// Hours from that end to the dashboard's instant.
    pub lag_hours: Option<i64>,
    /// Whether that lag exceeds the silence allowed.
    pub stale: bool,
    /// Series (subscription, resource, meter) with missing hours this period.
    pub gaps: u64,
    /// Records refused (late ones apart) by the region's ingestion runs that started in the period up to the
    /// dashboard's instant: its scheduled pulls, and the recorded runs of sources naming it
    /// (`Cms::record_ingestion` with a source `<kind>:<region>`, as `cms ingest folder --region east` records
    /// `folder:east`). Runs of sources naming no region (`pages`, `focus`) count in no region; their refused
    /// records raise a `refused_records` alert of their own.
    pub refused_records: u64,
    /// When the region was last pulled, and whether that pull succeeded.
    pub last_pull: Option<(Instant, bool)>,
}

/// The dashboard of a scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    /// The scope (the principal's node).
    pub scope: String,
    /// Its display name.
    pub scope_name: String,
    /// The period.
    pub period: Period,
    /// As of when.
    pub at: Instant,
    /// Cost to date, per currency.
    pub month_to_date: Vec<Amount>,
    /// The month-end projection ([`crate::monitoring::budgets::forecast`]), per currency.
    pub projection: Vec<Amount>,
    /// The previous period's cost, per currency.
    pub previous_period: Vec<Amount>,
    /// Tenants by cost, highest first (at most ten per currency).
    pub top_tenants: Vec<Ranked>,
    /// Meters by cost, highest first (at most ten per currency).
    pub top_meters: Vec<Ranked>,
    /// Cost by region (the usage's location), highest first.
    pub by_region: Vec<Ranked>,
    /// Cost by day.
    pub by_day: Vec<DayCost>,
    /// Documents of the period by state (drafts: what would be issued now).
    pub invoices: Vec<DocumentsInState>,
    /// Commissions earned to date by partners in the scope (in their tenants' invoice currency), and the
    /// overrides of its distributors (named "NAME (override)").
    pub commissions: Vec<Ranked>,
    /// The usage pipeline per region (for principals at the platform only; empty otherwise).
    pub regions: Vec<RegionHealth>,
    /// Open alerts of the scope.
    pub alerts: Vec<Alert>,
    /// Budgets of the scope.
    pub budgets: Vec<BudgetStatus>,
}
