//! Tier math, shared by prices (per meter) and commission plans (per partner): one implementation.
//!
//! A schedule is a list of tiers `(from, rate)` sorted by `from`, the first starting at 0. A tier runs
//! from its `from` to the next tier's `from`; the last one is open-ended.
//!
//! - Graduated (marginal): each band is charged at its own rate:
//!   `sum over tiers with from < q (the first always counts) of rate x (min(q, to) - from)`.
//! - Volume (whole amount): every unit is charged at the rate of the band reached, the last tier with
//!   `from < q` (the first tier for q <= 0). A quantity exactly on a breakpoint is still in the lower band,
//!   as with graduated tiers, whose upper band then contributes nothing.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::CmsError;

/// How tiers combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TierMode {
    /// Each band at its own rate (prices: "graduated"; commissions: "marginal").
    #[default]
    Graduated,
    /// All units at the rate of the band reached (prices: "volume"; commissions: "whole amount").
    Volume,
}

/// One tier: from where it starts, and its rate (a unit price, or a commission fraction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tier {
    /// Where the tier starts (inclusive of what lies above it).
    pub from: Decimal,
    /// Price per unit, or commission rate (0.05 for 5 %).
    pub rate: Decimal,
}

/// The part of a quantity that fell in one tier, and what it cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BandAmount {
    /// Index of the tier in the schedule.
    pub tier: usize,
    /// Start of the tier.
    pub from: Decimal,
    /// End of the tier (`None` when open-ended).
    pub to: Option<Decimal>,
    /// Rate of the tier.
    pub rate: Decimal,
    /// Quantity charged in this tier.
    pub quantity: Decimal,
    /// `rate x quantity`, exact.
    pub amount: Decimal,
}

/// A validated, sorted tier schedule.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "TierScheduleData", into = "TierScheduleData")]
pub struct TierSchedule {
    mode: TierMode,
    tiers: Vec<Tier>,
}

#[derive(Serialize, Deserialize)]
struct TierScheduleData {
    #[serde(default)]
    mode: TierMode,
    tiers: Vec<Tier>,
}

impl TryFrom<TierScheduleData> for TierSchedule {
    type Error = CmsError;
    fn try_from(data: TierScheduleData) -> Result<Self, Self::Error> {
        Self::new(data.mode, data.tiers, "schedule")
    }
}

impl From<TierSchedule> for TierScheduleData {
    fn from(schedule: TierSchedule) -> Self {
        Self { mode: schedule.mode, tiers: schedule.tiers }
    }
}

impl TierSchedule {
    /// Sort and validate: at least one tier, the first from 0, no two with the same start.
    /// `name` names the meter or plan in errors.
    pub fn new(mode: TierMode, mut tiers: Vec<Tier>, name: &str) -> Result<Self, CmsError> {
        tiers.sort_by_key(|tier| tier.from);
        match tiers.first() {
            Some(first) if first.from.is_zero() => {}
            first => {
                return Err(CmsError::TierStart {
                    schedule: name.to_owned(),
                    first: first.map_or_else(|| "none".to_owned(), |tier| tier.from.to_string()),
                });
            }
        }
        if let Some(pair) = tiers.windows(2).find(|pair| pair[0].from == pair[1].from) {
            return Err(CmsError::TierOverlap { schedule: name.to_owned(), from: pair[1].from.to_string() });
        }
        Ok(Self { mode, tiers })
    }

    /// One tier from 0 at `rate`: a flat per-unit price or a flat commission rate.
    pub fn flat(rate: Decimal) -> Self {
        Self { mode: TierMode::Graduated, tiers: vec![Tier { from: Decimal::ZERO, rate }] }
    }

    /// How the tiers combine.
    pub fn mode(&self) -> TierMode {
        self.mode
    }

    /// The tiers, sorted by start.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    fn upper(&self, index: usize) -> Option<Decimal> {
        self.tiers.get(index + 1).map(|tier| tier.from)
    }

    /// Index of the band reached by `quantity`: the last tier with `from < quantity`, else the first.
    pub fn band_reached(&self, quantity: Decimal) -> usize {
        self.tiers.iter().rposition(|tier| tier.from < quantity).unwrap_or(0)
    }

    /// The exact (unrounded) amount for `quantity`.
    pub fn amount(&self, quantity: Decimal) -> Result<Decimal, CmsError> {
        match self.mode {
            TierMode::Graduated => {
                let mut total = Decimal::ZERO;
                for (index, tier) in self.tiers.iter().enumerate() {
                    if index > 0 && tier.from >= quantity {
                        break;
                    }
                    let top = self.upper(index).map_or(quantity, |to| to.min(quantity));
                    total = checked_add(total, checked_mul(tier.rate, top - tier.from)?)?;
                }
                Ok(total)
            }
            TierMode::Volume => checked_mul(self.tiers[self.band_reached(quantity)].rate, quantity),
        }
    }

    /// The amount split by band, for documents that show "bands applied". Sums exactly to [`Self::amount`].
    pub fn breakdown(&self, quantity: Decimal) -> Result<Vec<BandAmount>, CmsError> {
        let band = |index: usize, tier: &Tier, charged: Decimal| -> Result<BandAmount, CmsError> {
            Ok(BandAmount {
                tier: index,
                from: tier.from,
                to: self.upper(index),
                rate: tier.rate,
                quantity: charged,
                amount: checked_mul(tier.rate, charged)?,
            })
        };
        match self.mode {
            TierMode::Graduated => self
                .tiers
                .iter()
                .enumerate()
                .take_while(|(index, tier)| *index == 0 || tier.from < quantity)
                .map(|(index, tier)| {
                    let top = self.upper(index).map_or(quantity, |to| to.min(quantity));
                    band(index, tier, top - tier.from)
                })
                .collect(),
            TierMode::Volume => {
                let index = self.band_reached(quantity);
                Ok(vec![band(index, &self.tiers[index], quantity)?])
            }
        }
    }
}

pub(crate) fn checked_mul(left: Decimal, right: Decimal) -> Result<Decimal, CmsError> {
    left.checked_mul(right).ok_or_else(|| CmsError::Overflow { what: format!("{left} x {right}") })
}

pub(crate) fn checked_add(left: Decimal, right: Decimal) -> Result<Decimal, CmsError> {
    left.checked_add(right).ok_or_else(|| CmsError::Overflow { what: format!("{left} + {right}") })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::money::parse_decimal;

    fn dec(text: &str) -> Decimal {
        parse_decimal(text).unwrap()
    }

    fn schedule(mode: TierMode, tiers: &[(&str, &str)]) -> TierSchedule {
        TierSchedule::new(
            mode,
            tiers.iter().map(|(from, rate)| Tier { from: dec(from), rate: dec(rate) }).collect(),
            "t",
        )
        .unwrap()
    }

    #[test]
    fn graduated_by_hand() {
        let vm = schedule(TierMode::Graduated, &[("0", "0.008"), ("5000", "0.0072"), ("20000", "0.0065")]);
        assert_eq!(vm.amount(dec("0")).unwrap(), dec("0"));
        assert_eq!(vm.amount(dec("100")).unwrap(), dec("0.8"));
        // 5000 x 0.008 + 15000 x 0.0072 + 1000 x 0.0065
        assert_eq!(vm.amount(dec("21000")).unwrap(), dec("40") + dec("108") + dec("6.5"));
        let parts = vm.breakdown(dec("21000")).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1].quantity, dec("15000"));
    }

    #[test]
    fn volume_by_hand() {
        let vm = schedule(TierMode::Volume, &[("0", "0.008"), ("5000", "0.0072")]);
        assert_eq!(vm.amount(dec("5000")).unwrap(), dec("40"));
        assert_eq!(vm.amount(dec("5001")).unwrap(), dec("36.0072"));
    }

    #[test]
    fn invalid_schedules() {
        let tier = |from: &str| Tier { from: dec(from), rate: dec("1") };
        assert_eq!(TierSchedule::new(TierMode::Graduated, vec![], "m").unwrap_err().code(), "tier_start");
        assert_eq!(
            TierSchedule::new(TierMode::Graduated, vec![tier("5")], "m").unwrap_err().code(),
            "tier_start"
        );
        assert_eq!(
            TierSchedule::new(TierMode::Graduated, vec![tier("0"), tier("5"), tier("5.0")], "m")
                .unwrap_err()
                .code(),
            "tier_overlap"
        );
    }

    fn arbitrary_schedule(mode: TierMode) -> impl Strategy<Value = TierSchedule> {
        proptest::collection::btree_set(1u32..1_000_000, 0..5).prop_flat_map(move |starts| {
            let count = starts.len() + 1;
            proptest::collection::vec(0u32..100_000, count).prop_map(move |rates| {
                let froms = std::iter::once(0).chain(starts.iter().copied());
                let tiers = froms
                    .zip(rates)
                    .map(|(from, rate)| Tier {
                        from: Decimal::from(from),
                        rate: Decimal::new(rate.into(), 6),
                    })
                    .collect();
                TierSchedule::new(mode, tiers, "p").unwrap()
            })
        })
    }

    proptest! {
        /// Graduated amounts never fall as quantity grows (rates are non-negative).
        #[test]
        fn graduated_is_monotone(schedule in arbitrary_schedule(TierMode::Graduated),
                                 low in 0u64..2_000_000_000, step in 0u64..2_000_000_000) {
            let low_q = Decimal::new(i64::try_from(low).unwrap(), 3);
            let high_q = low_q + Decimal::new(i64::try_from(step).unwrap(), 3);
            prop_assert!(schedule.amount(low_q).unwrap() <= schedule.amount(high_q).unwrap());
        }

        /// Graduated amounts are continuous at every breakpoint: just above a breakpoint the amount grows
        /// by exactly the upper tier's rate times the step, and at the breakpoint it equals the sum of the
        /// full lower bands.
        #[test]
        fn graduated_is_continuous(schedule in arbitrary_schedule(TierMode::Graduated), epsilon in 1u32..1000) {
            let epsilon = Decimal::new(epsilon.into(), 6);
            let tiers = schedule.tiers();
            for index in 1..tiers.len() {
                let at = tiers[index].from;
                let full_lower: Decimal = (0..index).map(|i| tiers[i].rate * (tiers[i + 1].from - tiers[i].from)).sum();
                prop_assert_eq!(schedule.amount(at).unwrap(), full_lower);
                prop_assert_eq!(schedule.amount(at + epsilon).unwrap() - full_lower, tiers[index].rate * epsilon);
                prop_assert_eq!(full_lower - schedule.amount(at - epsilon).unwrap(), tiers[index - 1].rate * epsilon);
            }
        }

        /// Volume pricing is the unit price of the band reached times the whole quantity.
        #[test]
        fn volume_is_band_price_times_quantity(schedule in arbitrary_schedule(TierMode::Volume), q in 0u64..2_000_000_000) {
            let quantity = Decimal::new(i64::try_from(q).unwrap(), 3);
            let band = schedule.tiers().iter().rfind(|tier| tier.from < quantity)
                .unwrap_or(&schedule.tiers()[0]);
            prop_assert_eq!(schedule.amount(quantity).unwrap(), band.rate * quantity);
        }

        /// The breakdown by band sums to the amount, for both modes.
        #[test]
        fn breakdown_sums_to_amount(schedule in arbitrary_schedule(TierMode::Graduated), volume: bool, q in 0u64..2_000_000_000) {
            let schedule = if volume { TierSchedule { mode: TierMode::Volume, ..schedule } } else { schedule };
            let quantity = Decimal::new(i64::try_from(q).unwrap(), 3);
            let parts = schedule.breakdown(quantity).unwrap();
            prop_assert_eq!(parts.iter().map(|part| part.amount).sum::<Decimal>(), schedule.amount(quantity).unwrap());
        }
    }
}
