//! Price lists: per-meter tier schedules in one currency.
//!
//! A price list prices some meters; which list applies to a subscription is decided by precedence
//! (subscription > tenant > partner > distributor > platform default: the most specific list that prices
//! the meter wins), see [`crate::engine`]. Tiers count the monthly quantity per subscription and meter.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::CmsError;
use crate::model::meter::MeterId;
use crate::model::money::Currency;
use crate::model::tiers::{Tier, TierMode, TierSchedule};

/// The price of one meter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterPrice {
    /// Unit of quantity, as the price list states it.
    pub unit: String,
    /// Tiers of unit prices.
    pub schedule: TierSchedule,
}

impl MeterPrice {
    /// The exact amount for a monthly quantity.
    pub fn amount(&self, quantity: Decimal) -> Result<Decimal, CmsError> {
        self.schedule.amount(quantity)
    }
}

/// A named set of meter prices in one currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceList {
    /// Stable id.
    pub id: String,
    /// Currency of every price.
    pub currency: Currency,
    /// Prices by meter.
    pub prices: BTreeMap<MeterId, MeterPrice>,
    /// Pass-through pricing of costs given by the source (FOCUS data of other clouds): the cost, converted
    /// to this list's currency, times `1 + uplift` (0.08 for 8 %). `None`: this list does not price them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_through_uplift: Option<Decimal>,
}

impl PriceList {
    /// An empty list.
    pub fn new(id: &str, currency: Currency) -> Self {
        Self { id: id.to_owned(), currency, prices: BTreeMap::new(), pass_through_uplift: None }
    }

    /// Set a meter's price from tiers `(from, unit price)`.
    pub fn set(
        &mut self,
        meter: MeterId,
        unit: &str,
        mode: TierMode,
        tiers: Vec<Tier>,
    ) -> Result<(), CmsError> {
        let schedule = TierSchedule::new(mode, tiers, &format!("meter {meter} in price list {}", self.id))?;
        self.prices.insert(meter, MeterPrice { unit: unit.to_owned(), schedule });
        Ok(())
    }

    /// Set a flat per-unit price.
    pub fn set_flat(&mut self, meter: MeterId, unit: &str, unit_price: Decimal) {
        self.prices
            .insert(meter, MeterPrice { unit: unit.to_owned(), schedule: TierSchedule::flat(unit_price) });
    }

    /// The price of a meter, if this list prices it.
    pub fn price(&self, meter: MeterId) -> Option<&MeterPrice> {
        self.prices.get(&meter)
    }
}

/// Commission bands of a partner or distributor: marginal (graduated) by default, or whole-amount (volume).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommissionPlan {
    /// Stable id.
    pub id: String,
    /// Bands `(revenue from, rate)`.
    pub bands: TierSchedule,
}

impl CommissionPlan {
    /// A plan from bands `(revenue from, rate)`.
    pub fn new(id: &str, mode: TierMode, bands: Vec<Tier>) -> Result<Self, CmsError> {
        Ok(Self {
            id: id.to_owned(),
            bands: TierSchedule::new(mode, bands, &format!("commission plan {id}"))?,
        })
    }

    /// The exact (unrounded) commission on a revenue.
    pub fn commission(&self, revenue: Decimal) -> Result<Decimal, CmsError> {
        self.bands.amount(revenue)
    }
}
