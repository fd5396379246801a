//! Exact splitting of money: an amount cut into parts that are whole units of a scale and add up to it
//! exactly.
//!
//! The method is the largest remainder: each part's exact share `total x weight / sum of weights` is floored
//! to the unit, and the units left over go one each to the parts with the largest fractional remainders,
//! the earlier part first on a tie. Every part is therefore within one unit of its exact share, and the
//! result depends only on the inputs (not on the order of equal remainders in memory).
//!
//! The arithmetic is done in whole units on `i128`, so it is exact; inputs whose products do not fit
//! (about 10^38 units x weight units) are refused with [`CmsError::Overflow`], never a panic.

use rust_decimal::Decimal;

use crate::error::{CmsError, Location};

/// What errors of this module name as their source.
const SOURCE: &str = "allocation";

/// The largest scale a [`Decimal`] holds.
const MAX_SCALE: u32 = 28;

/// Split `total` into parts proportional to `weights`, each a whole multiple of `10^-scale` written with
/// exactly `scale` digits, that sum exactly to `total`.
///
/// Weights may have mixed signs (a clawback makes a tenant's revenue negative) as long as their sum is not
/// zero. A zero `total` gives all zeros whatever the weights.
///
/// Refused ([`CmsError::InvalidValue`]): no weights; a scale above 28; a `total` that is not a multiple of
/// `10^-scale`; weights summing to zero while `total` is not zero. Inputs too large to split exactly give
/// [`CmsError::Overflow`].
///
/// ```
/// use cms_core::billing::allocate;
/// use cms_core::Decimal;
///
/// let parts = allocate(Decimal::new(10000, 2), &[Decimal::ONE; 3], 2).unwrap();
/// let texts: Vec<String> = parts.iter().map(ToString::to_string).collect();
/// assert_eq!(texts, ["33.34", "33.33", "33.33"]);
/// ```
pub fn allocate(total: Decimal, weights: &[Decimal], scale: u32) -> Result<Vec<Decimal>, CmsError> {
    if weights.is_empty() {
        return Err(invalid(total.to_string(), "there are no weights to split over".into()));
    }
    if scale > MAX_SCALE {
        return Err(invalid(scale.to_string(), format!("the scale must be at most {MAX_SCALE} digits")));
    }
    let total_units = units_of(total, scale)?;
    let weight_scale = weights.iter().map(|weight| weight.normalize().scale()).max().unwrap_or(0);
    let mut weight_units = Vec::with_capacity(weights.len());
    for weight in weights {
        weight_units.push(integer_at(*weight, weight_scale)?);
    }
    let mut weight_sum: i128 = 0;
    for weight in &weight_units {
        weight_sum = weight_sum.checked_add(*weight).ok_or_else(|| overflow("the sum of the weights"))?;
    }
    if total_units == 0 {
        return weights.iter().map(|_| decimal_of(0, scale)).collect();
    }
    if weight_sum == 0 {
        return Err(invalid(
            join(weights),
            format!("the weights sum to zero, so {total} cannot be split in proportion to them"),
        ));
    }
    // A positive divisor makes the Euclidean floor and remainder read naturally: 0 <= remainder < divisor.
    let (divisor, sign) = if weight_sum < 0 { (-weight_sum, -1) } else { (weight_sum, 1) };
    let mut floors = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    let mut floor_sum: i128 = 0;
    for weight in &weight_units {
        let numerator = total_units
            .checked_mul(*weight)
            .and_then(|product| product.checked_mul(sign))
            .ok_or_else(|| overflow("a share of the total"))?;
        let floor = numerator.div_euclid(divisor);
        floors.push(floor);
        remainders.push(numerator.rem_euclid(divisor));
        floor_sum = floor_sum.checked_add(floor).ok_or_else(|| overflow("the sum of the shares"))?;
    }
    // The exact shares sum to the total, the floors fall short by (sum of remainders) / divisor units:
    // a whole number below the number of parts.
    let left_over = total_units.checked_sub(floor_sum).ok_or_else(|| overflow("the units left over"))?;
    let left_over = usize::try_from(left_over).map_err(|_| overflow("the units left over"))?;
    let mut order: Vec<usize> = (0..weights.len()).collect();
    // Stable sort: equal remainders keep the earlier index first.
    order.sort_by(|&left, &right| remainders[right].cmp(&remainders[left]));
    for &index in order.iter().take(left_over) {
        if let Some(floor) = floors.get_mut(index) {
            *floor += 1;
        }
    }
    floors.into_iter().map(|units| decimal_of(units, scale)).collect()
}

/// Split `total` into `parts` equal shares (see [`allocate`]): the first shares get the units left over.
///
/// ```
/// use cms_core::billing::allocate_even;
/// use cms_core::Decimal;
///
/// let parts = allocate_even(Decimal::new(5, 2), 2, 2).unwrap();
/// assert_eq!(parts, [Decimal::new(3, 2), Decimal::new(2, 2)]);
/// ```
pub fn allocate_even(total: Decimal, parts: usize, scale: u32) -> Result<Vec<Decimal>, CmsError> {
    if parts == 0 {
        return Err(invalid(total.to_string(), "there are no parts to split into".into()));
    }
    allocate(total, &vec![Decimal::ONE; parts], scale)
}

fn invalid(text: String, reason: String) -> CmsError {
    CmsError::InvalidValue { at: Location::whole(SOURCE), text, reason }
}

fn overflow(what: &str) -> CmsError {
    CmsError::Overflow { what: format!("{what} in an allocation") }
}

fn join(weights: &[Decimal]) -> String {
    weights.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// `10^exponent`, for exponents up to 38.
fn power_of_ten(exponent: u32) -> Result<i128, CmsError> {
    10_i128.checked_pow(exponent).ok_or_else(|| overflow("a power of ten"))
}

/// `value x 10^scale` as an integer; `value` must have no more than `scale` significant decimals.
fn integer_at(value: Decimal, scale: u32) -> Result<i128, CmsError> {
    let value = value.normalize();
    let shift = scale.checked_sub(value.scale()).ok_or_else(|| overflow("a weight"))?;
    value.mantissa().checked_mul(power_of_ten(shift)?).ok_or_else(|| overflow("a weight"))
}

/// The total in whole units of `10^-scale`; refused unless it is a multiple of the unit.
fn units_of(total: Decimal, scale: u32) -> Result<i128, CmsError> {
    let normal = total.normalize();
    if normal.scale() > scale {
        return Err(invalid(
            total.to_string(),
            format!("the amount to split must be a whole number of units of {scale} decimal(s)"),
        ));
    }
    let shift = scale - normal.scale();
    normal.mantissa().checked_mul(power_of_ten(shift)?).ok_or_else(|| overflow("the total"))
}

fn decimal_of(units: i128, scale: u32) -> Result<Decimal, CmsError> {
    Decimal::try_from_i128_with_scale(units, scale).map_err(|_| overflow("a share"))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn dec(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn texts(parts: &[Decimal]) -> Vec<String> {
        parts.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_hundred_over_three() {
        let parts = allocate(dec("100.00"), &[dec("1"), dec("1"), dec("1")], 2).unwrap();
        assert_eq!(texts(&parts), ["33.34", "33.33", "33.33"]);
        let parts = allocate_even(dec("100"), 3, 2).unwrap();
        assert_eq!(texts(&parts), ["33.34", "33.33", "33.33"]);
    }

    #[test]
    fn ties_go_to_the_earlier_part() {
        assert_eq!(texts(&allocate(dec("0.05"), &[dec("1"), dec("1")], 2).unwrap()), ["0.03", "0.02"]);
        assert_eq!(texts(&allocate(dec("-0.05"), &[dec("1"), dec("1")], 2).unwrap()), ["-0.02", "-0.03"]);
    }

    #[test]
    fn largest_remainder_wins_the_unit() {
        // Exact shares 3.333.., 6.666..: floors 3 and 6, the second has the larger remainder.
        assert_eq!(texts(&allocate(dec("10"), &[dec("1"), dec("2")], 0).unwrap()), ["3", "7"]);
        // Exact shares 16.25, 33.75, 50.00 -> floors 16, 33, 50 and one unit to 33 (remainder .75).
        let parts = allocate(dec("100"), &[dec("0.65"), dec("1.35"), dec("2")], 0).unwrap();
        assert_eq!(texts(&parts), ["16", "34", "50"]);
    }

    #[test]
    fn negative_weights() {
        // Sum of weights 100: exact shares 150.00, -50.00.
        let parts = allocate(dec("100.00"), &[dec("150"), dec("-50")], 2).unwrap();
        assert_eq!(texts(&parts), ["150.00", "-50.00"]);
        // Sum of weights 3: exact shares 3.3333.., -1.6666.., 8.3333..; floors 3.33, -1.67, 8.33 (sum 9.99)
        // and the cent goes to the largest remainder (.33.. on the first, earlier of two equal ones).
        let parts = allocate(dec("10.00"), &[dec("1"), dec("-0.5"), dec("2.5")], 2).unwrap();
        assert_eq!(texts(&parts), ["3.34", "-1.67", "8.33"]);
        // A negative sum of weights.
        let parts = allocate(dec("1.00"), &[dec("-1"), dec("-2")], 2).unwrap();
        assert_eq!(texts(&parts), ["0.33", "0.67"]);
    }

    #[test]
    fn zero_total_and_scale() {
        assert_eq!(texts(&allocate(dec("0"), &[dec("1"), dec("-1")], 2).unwrap()), ["0.00", "0.00"]);
        assert_eq!(texts(&allocate(dec("5"), &[dec("3")], 3).unwrap()), ["5.000"]);
    }

    #[test]
    fn refusals() {
        let code = |result: Result<Vec<Decimal>, CmsError>| result.unwrap_err().code();
        assert_eq!(code(allocate(dec("1"), &[], 2)), "invalid_value");
        assert_eq!(code(allocate_even(dec("1"), 0, 2)), "invalid_value");
        assert_eq!(code(allocate(dec("1"), &[dec("1"), dec("-1")], 2)), "invalid_value");
        assert_eq!(code(allocate(dec("1.005"), &[dec("1")], 2)), "invalid_value");
        assert_eq!(code(allocate(dec("1"), &[dec("1")], 29)), "invalid_value");
        assert_eq!(code(allocate(Decimal::MAX, &[Decimal::MAX, dec("1")], 10)), "overflow");
    }
}
