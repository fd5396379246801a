//! Price lists: per-meter price models in one currency.
//!
//! A price list prices some meters; which list applies to a subscription is decided by precedence
//! (subscription > tenant > partner > distributor > platform default: the most specific list that prices
//! the meter wins), see [`crate::engine`]. Tiers count the monthly quantity per subscription and meter.
//!
//! A meter's price follows one [`PriceModel`]:
//! - tiered ([`TierSchedule`]): per unit (one tier from 0), graduated or volume;
//! - package: a price per *started* block of `size` units (`ceil(q / size) x price`, exact);
//! - flat fee: one amount per period once the quantity is above zero.
//!
//! Versioned, effective-dated lists and derived (resale) lists live in
//! [`crate::model::price_book`]; this module holds the price models they share with the unversioned
//! [`PriceList`] of the month-end path.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::{CmsError, Location};
use crate::model::meter::MeterId;
use crate::model::money::{Currency, Rounding, RoundingMode};
use crate::model::tiers::{Tier, TierMode, TierSchedule, checked_add, checked_mul};

/// How a meter's monthly quantity turns into an amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PriceModel {
    /// Unit prices by tier: per unit (one tier from 0), graduated or volume (see [`TierSchedule`]).
    Tiered(TierSchedule),
    /// `price` per started block of `size` units: `ceil(q / size) x price` for `q > 0`, 0 otherwise.
    Package {
        /// Units per block (> 0).
        size: Decimal,
        /// Price of one block.
        price: Decimal,
    },
    /// `amount` once per period when the quantity is above zero, else 0.
    FlatFee {
        /// The fee.
        amount: Decimal,
    },
}

/// A bulk change of prices (a change set's "percent or fixed amount").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriceChange {
    /// Multiply every unit rate, package price and flat amount by `1 + p` (0.05 for +5 %, -0.1 for -10 %).
    Percent(Decimal),
    /// Add this amount to every unit rate, package price and flat amount (negative to lower them).
    Fixed(Decimal),
}

impl PriceChange {
    /// The changed value of one rate, rounded to `scale` digits half away from zero. A result below zero is
    /// an error naming `name` (the meter and list).
    fn apply(&self, value: Decimal, scale: u32, name: &str) -> Result<Decimal, CmsError> {
        let changed = match *self {
            Self::Percent(percent) => checked_mul(value, checked_add(Decimal::ONE, percent)?)?,
            Self::Fixed(amount) => checked_add(value, amount)?,
        };
        let mut rounded = Rounding::new(scale, RoundingMode::HalfAwayFromZero).apply(changed);
        if rounded.is_sign_negative() && !rounded.is_zero() {
            return Err(CmsError::InvalidValue {
                at: Location::whole(name),
                text: rounded.to_string(),
                reason: format!("the change {self:?} takes the rate {value} below zero"),
            });
        }
        // 0 x a negative factor is a negative zero; prices print as plain 0.
        rounded.set_sign_positive(true);
        Ok(rounded)
    }
}

impl PriceModel {
    /// A flat per-unit price: one tier from 0.
    pub fn per_unit(unit_price: Decimal) -> Self {
        Self::Tiered(TierSchedule::flat(unit_price))
    }

    /// The exact amount for a monthly quantity.
    pub fn amount(&self, quantity: Decimal) -> Result<Decimal, CmsError> {
        match self {
            Self::Tiered(schedule) => schedule.amount(quantity),
            Self::Package { size, price } => checked_mul(package_blocks(quantity, *size)?, *price),
            Self::FlatFee { amount } => Ok(if quantity > Decimal::ZERO { *amount } else { Decimal::ZERO }),
        }
    }

    /// Check that no price is negative and that a package size is above zero. `name` names the meter and
    /// list in errors.
    pub fn validate(&self, name: &str) -> Result<(), CmsError> {
        let negative = |value: Decimal, what: &str| CmsError::InvalidValue {
            at: Location::whole(name),
            text: value.to_string(),
            reason: format!("{what} must not be negative"),
        };
        match self {
            Self::Tiered(schedule) => {
                if let Some(tier) = schedule.tiers().iter().find(|tier| tier.rate.is_sign_negative()) {
                    return Err(negative(tier.rate, &format!("the rate of the tier from {}", tier.from)));
                }
            }
            Self::Package { size, price } => {
                if *size <= Decimal::ZERO {
                    return Err(CmsError::InvalidValue {
                        at: Location::whole(name),
                        text: size.to_string(),
                        reason: "a package size must be above zero".into(),
                    });
                }
                if price.is_sign_negative() {
                    return Err(negative(*price, "a package price"));
                }
            }
            Self::FlatFee { amount } => {
                if amount.is_sign_negative() {
                    return Err(negative(*amount, "a flat fee"));
                }
            }
        }
        Ok(())
    }

    /// This model with `change` applied to every unit rate, package price and flat amount, each rounded to
    /// `scale` digits half away from zero. Tier breakpoints and package sizes never change. A result below
    /// zero is an error.
    pub fn adjusted(&self, change: &PriceChange, scale: u32) -> Result<PriceModel, CmsError> {
        self.adjusted_named(change, scale, "price")
    }

    /// [`Self::adjusted`], naming the meter and list in errors.
    pub(crate) fn adjusted_named(
        &self,
        change: &PriceChange,
        scale: u32,
        name: &str,
    ) -> Result<PriceModel, CmsError> {
        Ok(match self {
            Self::Tiered(schedule) => {
                let tiers = schedule
                    .tiers()
                    .iter()
                    .map(|tier| Ok(Tier { from: tier.from, rate: change.apply(tier.rate, scale, name)? }))
                    .collect::<Result<Vec<_>, CmsError>>()?;
                Self::Tiered(TierSchedule::new(schedule.mode(), tiers, name)?)
            }
            Self::Package { size, price } => {
                Self::Package { size: *size, price: change.apply(*price, scale, name)? }
            }
            Self::FlatFee { amount } => Self::FlatFee { amount: change.apply(*amount, scale, name)? },
        })
    }
}

/// The number of started blocks of `size` in `quantity` (`ceil(quantity / size)`, 0 for `quantity <= 0`),
/// computed exactly on the integer mantissas: a decimal division would round a quotient such as
/// `3.0000000000000000000000000001 / 3` to 1 before the ceiling is taken.
fn package_blocks(quantity: Decimal, size: Decimal) -> Result<Decimal, CmsError> {
    if size <= Decimal::ZERO {
        return Err(CmsError::InvalidValue {
            at: Location::whole("package price"),
            text: size.to_string(),
            reason: "a package size must be above zero".into(),
        });
    }
    if quantity <= Decimal::ZERO {
        return Ok(Decimal::ZERO);
    }
    let overflow = || CmsError::Overflow { what: format!("ceil({quantity} / {size})") };
    // Both mantissas are below 2^96, so they fit u128; the scales are at most 28.
    let quantity_units = quantity.mantissa().unsigned_abs();
    let size_units = size.mantissa().unsigned_abs();
    let (quantity_scale, size_scale) = (quantity.scale(), size.scale());
    let blocks = if quantity_scale >= size_scale {
        // quantity / size = quantity_units / (size_units x 10^(difference)).
        match 10u128.checked_pow(quantity_scale - size_scale).and_then(|power| size_units.checked_mul(power))
        {
            Some(divisor) => quantity_units.div_ceil(divisor),
            // The divisor is above 2^128 > quantity_units: one started block.
            None => 1,
        }
    } else {
        // quantity / size = quantity_units x 10^(difference) / size_units: long division, one decimal digit
        // of the scaled dividend at a time, so nothing grows past 10 x size_units < 2^100.
        let mut quotient = quantity_units / size_units;
        let mut remainder = quantity_units % size_units;
        for _ in 0..size_scale - quantity_scale {
            let widened = remainder * 10;
            quotient = quotient
                .checked_mul(10)
                .and_then(|q| q.checked_add(widened / size_units))
                .ok_or_else(overflow)?;
            remainder = widened % size_units;
        }
        quotient.checked_add(u128::from(remainder != 0)).ok_or_else(overflow)?
    };
    let blocks = i128::try_from(blocks).map_err(|_| overflow())?;
    Decimal::try_from_i128_with_scale(blocks, 0).map_err(|_| overflow())
}

/// The price of one meter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "MeterPriceData")]
pub struct MeterPrice {
    /// Unit of quantity, as the price list states it.
    pub unit: String,
    /// How the quantity is priced.
    pub model: PriceModel,
}

/// The stored shape of a [`MeterPrice`]; `schedule` is the shape written before price models existed
/// (events already stored keep loading).
#[derive(Deserialize)]
struct MeterPriceData {
    unit: String,
    #[serde(default)]
    model: Option<PriceModel>,
    #[serde(default)]
    schedule: Option<TierSchedule>,
}

impl TryFrom<MeterPriceData> for MeterPrice {
    type Error = String;
    fn try_from(data: MeterPriceData) -> Result<Self, Self::Error> {
        match (data.model, data.schedule) {
            (Some(model), None) => Ok(Self { unit: data.unit, model }),
            (None, Some(schedule)) => Ok(Self { unit: data.unit, model: PriceModel::Tiered(schedule) }),
            _ => Err("a meter price has exactly one of `model` and (older) `schedule`".to_owned()),
        }
    }
}

impl MeterPrice {
    /// A price of `unit` following `model`.
    pub fn new(unit: &str, model: PriceModel) -> Self {
        Self { unit: unit.to_owned(), model }
    }

    /// The exact amount for a monthly quantity.
    pub fn amount(&self, quantity: Decimal) -> Result<Decimal, CmsError> {
        self.model.amount(quantity)
    }

    /// The tier schedule, when the model is tiered.
    pub fn schedule(&self) -> Option<&TierSchedule> {
        match &self.model {
            PriceModel::Tiered(schedule) => Some(schedule),
            PriceModel::Package { .. } | PriceModel::FlatFee { .. } => None,
        }
    }

    /// This price with `change` applied (see [`PriceModel::adjusted`]).
    pub fn adjusted(&self, change: &PriceChange, scale: u32) -> Result<MeterPrice, CmsError> {
        Ok(Self { unit: self.unit.clone(), model: self.model.adjusted(change, scale)? })
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
        self.prices.insert(meter, MeterPrice::new(unit, PriceModel::Tiered(schedule)));
        Ok(())
    }

    /// Set a flat per-unit price.
    pub fn set_flat(&mut self, meter: MeterId, unit: &str, unit_price: Decimal) {
        self.prices.insert(meter, MeterPrice::new(unit, PriceModel::per_unit(unit_price)));
    }

    /// Set a meter's price to any model, after checking it (no negative price, a package size above zero).
    pub fn set_model(&mut self, meter: MeterId, unit: &str, model: PriceModel) -> Result<(), CmsError> {
        model.validate(&format!("meter {meter} in price list {}", self.id))?;
        self.prices.insert(meter, MeterPrice::new(unit, model));
        Ok(())
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::money::parse_decimal;

    fn dec(text: &str) -> Decimal {
        parse_decimal(text).unwrap()
    }

    fn package(size: &str, price: &str) -> PriceModel {
        PriceModel::Package { size: dec(size), price: dec(price) }
    }

    #[test]
    fn package_goldens() {
        let model = package("10", "5");
        for (quantity, amount) in
            [("-3", "0"), ("0", "0"), ("0.0001", "5"), ("1", "5"), ("10", "5"), ("10.01", "10"), ("25", "15")]
        {
            assert_eq!(model.amount(dec(quantity)).unwrap(), dec(amount), "q = {quantity}");
        }
        assert_eq!(package("0.3", "1").amount(dec("1000")).unwrap(), dec("3334"));
        assert_eq!(package("2.5", "0.4").amount(dec("5")).unwrap(), dec("0.8"));
    }

    #[test]
    fn package_blocks_are_exact() {
        assert_eq!(package_blocks(dec("10.000001"), dec("0.000001")).unwrap(), dec("10000001"));
        assert_eq!(package_blocks(dec("10"), dec("0.000001")).unwrap(), dec("10000000"));
        // A decimal division rounds this quotient to exactly 1 before the ceiling.
        let quantity = dec("3.0000000000000000000000000001");
        assert_eq!((quantity / dec("3")).ceil(), dec("1"));
        assert_eq!(package_blocks(quantity, dec("3")).unwrap(), dec("2"));
        assert_eq!(package_blocks(dec("0.0000000000000000000000000001"), Decimal::MAX).unwrap(), dec("1"));
        assert_eq!(package_blocks(Decimal::MAX, Decimal::MAX).unwrap(), dec("1"));
        assert_eq!(package_blocks(Decimal::MAX, dec("0.0000001")).unwrap_err().code(), "overflow");
        // A package size of zero is refused, never divided by.
        assert_eq!(package("0", "1").amount(dec("1")).unwrap_err().code(), "invalid_value");
        assert_eq!(package("-1", "1").amount(dec("1")).unwrap_err().code(), "invalid_value");
    }

    #[test]
    fn flat_fee_and_tiers() {
        let fee = PriceModel::FlatFee { amount: dec("20") };
        assert_eq!(fee.amount(dec("0")).unwrap(), dec("0"));
        assert_eq!(fee.amount(dec("-1")).unwrap(), dec("0"));
        assert_eq!(fee.amount(dec("0.000001")).unwrap(), dec("20"));
        assert_eq!(fee.amount(dec("1000000")).unwrap(), dec("20"));
        assert_eq!(PriceModel::per_unit(dec("0.046")).amount(dec("744")).unwrap(), dec("34.224"));
        let graduated = TierSchedule::new(
            TierMode::Graduated,
            vec![Tier { from: dec("0"), rate: dec("1") }, Tier { from: dec("10"), rate: dec("0.5") }],
            "m",
        )
        .unwrap();
        assert_eq!(PriceModel::Tiered(graduated).amount(dec("14")).unwrap(), dec("12"));
    }

    #[test]
    fn adjustments_round_half_away_from_zero() {
        let tiers =
            vec![Tier { from: dec("0"), rate: dec("0.01") }, Tier { from: dec("100"), rate: dec("0.0072") }];
        let model = PriceModel::Tiered(TierSchedule::new(TierMode::Volume, tiers, "m").unwrap());
        let raised = model.adjusted(&PriceChange::Percent(dec("0.25")), 3).unwrap();
        let PriceModel::Tiered(schedule) = &raised else { panic!("still tiered") };
        assert_eq!(schedule.mode(), TierMode::Volume);
        // 0.0125 -> 0.013 (half away from zero), 0.009 stays; breakpoints unchanged; printed at scale 3.
        assert_eq!(schedule.tiers()[0].rate.to_string(), "0.013");
        assert_eq!(schedule.tiers()[1].rate.to_string(), "0.009");
        assert_eq!(schedule.tiers()[1].from, dec("100"));
        let fixed = package("10", "5").adjusted(&PriceChange::Fixed(dec("0.255")), 2).unwrap();
        assert_eq!(fixed, package("10", "5.26"));
        let fee = PriceModel::FlatFee { amount: dec("20") }
            .adjusted(&PriceChange::Percent(dec("-0.1")), 2)
            .unwrap();
        assert_eq!(fee, PriceModel::FlatFee { amount: dec("18.00") });
        let zero_rate =
            PriceModel::per_unit(dec("0")).adjusted(&PriceChange::Percent(dec("-0.5")), 2).unwrap();
        let PriceModel::Tiered(schedule) = zero_rate else { panic!("still tiered") };
        assert_eq!(schedule.tiers()[0].rate.to_string(), "0.00");
    }

    #[test]
    fn adjustments_below_zero_are_refused() {
        let error = PriceModel::per_unit(dec("0.008"))
            .adjusted_named(&PriceChange::Fixed(dec("-0.01")), 4, "meter M in price list L")
            .unwrap_err();
        assert_eq!(error.code(), "invalid_value");
        assert!(error.to_string().contains("meter M in price list L"), "{error}");
        assert!(package("1", "1").adjusted(&PriceChange::Percent(dec("-1.5")), 2).is_err());
        // Rounding to zero is not below zero.
        let tiny =
            PriceModel::per_unit(dec("0.004")).adjusted(&PriceChange::Fixed(dec("-0.005")), 2).unwrap();
        assert_eq!(tiny, PriceModel::per_unit(dec("0.00")));
    }

    #[test]
    fn set_model_validates() {
        let meter = MeterId::from_u128(7);
        let mut list = PriceList::new("l", Currency::USD);
        list.set_model(meter, "GB", package("100", "1.5")).unwrap();
        assert_eq!(list.price(meter).unwrap().amount(dec("150")).unwrap(), dec("3"));
        for bad in [
            package("0", "1"),
            package("1", "-1"),
            PriceModel::FlatFee { amount: dec("-1") },
            PriceModel::per_unit(dec("-0.1")),
        ] {
            assert_eq!(list.set_model(meter, "GB", bad).unwrap_err().code(), "invalid_value");
        }
        assert_eq!(list.price(meter).unwrap().model, package("100", "1.5"));
    }

    #[test]
    fn meter_prices_load_the_older_shape() {
        let older = r#"{"unit":"h","schedule":{"mode":"volume","tiers":[{"from":"0","rate":"2"}]}}"#;
        let price: MeterPrice = serde_json::from_str(older).unwrap();
        assert_eq!(price.amount(dec("3")).unwrap(), dec("6"));
        assert_eq!(price.schedule().unwrap().mode(), TierMode::Volume);
        for model in
            [package("10", "5"), PriceModel::FlatFee { amount: dec("1.5") }, PriceModel::per_unit(dec("0.1"))]
        {
            let price = MeterPrice::new("u", model);
            let text = serde_json::to_string(&price).unwrap();
            assert_eq!(serde_json::from_str::<MeterPrice>(&text).unwrap(), price, "{text}");
        }
        let text = serde_json::to_string(&MeterPrice::new("u", package("10", "5"))).unwrap();
        assert_eq!(text, r#"{"unit":"u","model":{"kind":"package","size":"10","price":"5"}}"#);
        assert!(serde_json::from_str::<MeterPrice>(r#"{"unit":"h"}"#).is_err());
    }

    proptest! {
        /// Started blocks agree with rational arithmetic: `blocks x size >= q > (blocks - 1) x size`.
        #[test]
        fn package_blocks_match_rationals(quantity in 1i64..1_000_000_000, quantity_scale in 0u32..12,
                                          size in 1i64..1_000_000_000, size_scale in 0u32..12) {
            let blocks = package_blocks(Decimal::new(quantity, quantity_scale), Decimal::new(size, size_scale)).unwrap();
            // q / s = (quantity x 10^size_scale) / (size x 10^quantity_scale), in i128.
            let numerator = i128::from(quantity) * 10i128.pow(size_scale);
            let denominator = i128::from(size) * 10i128.pow(quantity_scale);
            let expected = (numerator + denominator - 1) / denominator;
            prop_assert_eq!(blocks, Decimal::from_i128_with_scale(expected, 0));
        }
    }
}
