//! Budgets: a monthly amount per node (a distributor, partner, tenant or subscription) with warning and
//! breach percentages, and the month-end forecast that can warn before the breach.
//!
//! What a budget measures: the month-to-date *cost* of the node's subtree, that is the rounded lines of the
//! invoices its tenants receive (usage, adjustments, pass-through charges; before credits, discounts
//! applied at document level, and taxes), in the budget's currency. Lines in another currency are
//! converted at the exchange rate in force at the evaluation instant; lines without one are left out and
//! counted in [`BudgetStatus::unconverted_lines`].
//!
//! The forecast (stated method): *linear run rate of the trailing complete days*. With `d` complete days
//! elapsed in the month (at most the last [`FORECAST_TRAILING_DAYS`] of them counted) the forecast is
//! `cost to date + (cost of those days / their number) x days remaining`, where "days remaining" counts from
//! the evaluation instant to the month's end in fractional days. Before the first complete day there is no
//! forecast (it is the cost to date).

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CmsError, Location};
use crate::model::money::Currency;
use crate::model::time::{Instant, Period};

/// Complete days the forecast's run rate averages.
pub const FORECAST_TRAILING_DAYS: usize = 7;

/// A monthly budget of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Id.
    pub id: String,
    /// The node whose subtree's cost it bounds.
    pub node: String,
    /// The amount per month.
    pub amount: Decimal,
    /// Its currency.
    pub currency: Currency,
    /// Warn at this percentage of the amount (80 for 80 %).
    #[serde(default = "default_warning")]
    pub warning_percent: Decimal,
    /// Breach at this percentage (100 for the amount itself).
    #[serde(default = "default_breach")]
    pub breach_percent: Decimal,
    /// Whether the forecast raises a "forecast breach" alert.
    #[serde(default = "default_true")]
    pub forecast: bool,
}

fn default_warning() -> Decimal {
    Decimal::from(80)
}

fn default_breach() -> Decimal {
    Decimal::from(100)
}

fn default_true() -> bool {
    true
}

impl Budget {
    /// Check the amounts and percentages.
    pub fn validate(&self) -> Result<(), CmsError> {
        let invalid = |field: &str, text: String, reason: &str| CmsError::InvalidValue {
            at: Location::field(format!("budget {}", self.id), field),
            text,
            reason: reason.into(),
        };
        if self.id.trim().is_empty() {
            return Err(invalid("id", self.id.clone(), "a budget has an id"));
        }
        if self.amount <= Decimal::ZERO {
            return Err(invalid("amount", self.amount.to_string(), "must be positive"));
        }
        if self.warning_percent <= Decimal::ZERO {
            return Err(invalid("warning_percent", self.warning_percent.to_string(), "must be positive"));
        }
        if self.breach_percent < self.warning_percent {
            return Err(invalid(
                "breach_percent",
                self.breach_percent.to_string(),
                "must not be below the warning percentage",
            ));
        }
        Ok(())
    }
}

/// Where a budget stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetState {
    /// Below the warning percentage, and the forecast below the breach.
    Ok,
    /// The forecast reaches the breach percentage.
    ForecastBreach,
    /// The cost reached the warning percentage.
    Warning,
    /// The cost reached the breach percentage.
    Breach,
}

/// A budget in a period, as of an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetStatus {
    /// The budget.
    pub budget: Budget,
    /// The month.
    pub period: Period,
    /// As of when.
    pub at: Instant,
    /// Month-to-date cost, in the budget's currency.
    pub actual: Decimal,
    /// The month-end forecast.
    pub forecast: Decimal,
    /// `actual / amount x 100`, two decimals.
    pub percent: Decimal,
    /// `forecast / amount x 100`, two decimals.
    pub forecast_percent: Decimal,
    /// The state.
    pub state: BudgetState,
    /// Lines left out: in another currency with no exchange rate.
    pub unconverted_lines: u64,
}

/// The forecast of a month from its daily costs (`daily[i]` is day `i + 1`'s cost), as of `at`.
pub fn forecast(period: Period, at: Instant, daily: &[Decimal]) -> Decimal {
    let actual: Decimal = daily.iter().copied().sum();
    if at >= period.end {
        return actual;
    }
    let elapsed = (at - period.start).num_seconds().max(0);
    let complete = usize::try_from(elapsed / 86_400).unwrap_or(0).min(daily.len());
    if complete == 0 {
        return actual;
    }
    let counted = complete.min(FORECAST_TRAILING_DAYS);
    let window: Decimal = daily[complete - counted..complete].iter().copied().sum();
    let rate = window / Decimal::from(counted);
    let remaining = Decimal::from((period.end - at).num_seconds()) / Decimal::from(86_400);
    actual + rate * remaining
}

/// The status of a budget from its cost to date and forecast.
pub fn status(
    budget: &Budget,
    period: Period,
    at: Instant,
    actual: Decimal,
    forecast: Decimal,
    unconverted_lines: u64,
) -> BudgetStatus {
    let hundred = Decimal::ONE_HUNDRED;
    let percent = (actual * hundred / budget.amount).round_dp(2);
    let forecast_percent = (forecast * hundred / budget.amount).round_dp(2);
    let state = if actual * hundred >= budget.breach_percent * budget.amount {
        BudgetState::Breach
    } else if actual * hundred >= budget.warning_percent * budget.amount {
        BudgetState::Warning
    } else if budget.forecast && forecast * hundred >= budget.breach_percent * budget.amount {
        BudgetState::ForecastBreach
    } else {
        BudgetState::Ok
    };
    BudgetStatus {
        budget: budget.clone(),
        period,
        at,
        actual,
        forecast,
        percent,
        forecast_percent,
        state,
        unconverted_lines,
    }
}
