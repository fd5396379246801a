//! Money and quantities: exact decimals, explicit rounding, currencies with their minor unit.
//!
//! Every amount and quantity is a [`Decimal`]; nothing in the data path is a float. Rounding happens only
//! where a document shows an amount, and every call site names its rule through [`Rounding`].

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// How a midpoint is rounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RoundingMode {
    /// 0.125 -> 0.13, -0.125 -> -0.13 (the default, and what invoices conventionally use).
    #[default]
    HalfAwayFromZero,
    /// 0.125 -> 0.12, 0.135 -> 0.14 (banker's rounding).
    HalfEven,
}

impl RoundingMode {
    fn strategy(self) -> RoundingStrategy {
        match self {
            Self::HalfAwayFromZero => RoundingStrategy::MidpointAwayFromZero,
            Self::HalfEven => RoundingStrategy::MidpointNearestEven,
        }
    }
}

impl FromStr for RoundingMode {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "half-away-from-zero" | "half_away_from_zero" | "half-up" => Ok(Self::HalfAwayFromZero),
            "half-even" | "half_even" | "bankers" => Ok(Self::HalfEven),
            _ => Err("expected \"half-away-from-zero\" or \"half-even\"".to_owned()),
        }
    }
}

impl fmt::Display for RoundingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HalfAwayFromZero => "half-away-from-zero",
            Self::HalfEven => "half-even",
        })
    }
}

/// A rounding rule: a scale (digits after the point) and a midpoint mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rounding {
    /// Digits after the decimal point.
    pub scale: u32,
    /// Midpoint rule.
    pub mode: RoundingMode,
}

impl Rounding {
    /// Two decimals, half away from zero: the default for invoice amounts in most currencies.
    pub const CENTS: Self = Self { scale: 2, mode: RoundingMode::HalfAwayFromZero };

    /// A rule with this scale and mode.
    pub const fn new(scale: u32, mode: RoundingMode) -> Self {
        Self { scale, mode }
    }

    /// Round `amount` and print it at exactly `scale` digits (0 becomes "0.00", 1.5 becomes "1.50").
    pub fn apply(self, amount: Decimal) -> Decimal {
        let mut rounded = amount.round_dp_with_strategy(self.scale, self.mode.strategy());
        rounded.rescale(self.scale);
        rounded
    }
}

impl Default for Rounding {
    fn default() -> Self {
        Self::CENTS
    }
}

/// A currency: ISO 4217 code and the number of digits of its minor unit. Serialised as its code
/// (`"USD"`); a currency of a non-standard minor unit as `{"code": "XYZ", "minor_unit": 4}`. Reads both, and
/// the byte-array form of earlier stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    /// Digits of the minor unit (2 for USD and EUR, 0 for JPY, 3 for BHD).
    pub minor_unit: u32,
}

impl Currency {
    /// US dollar.
    pub const USD: Self = Self { code: *b"USD", minor_unit: 2 };
    /// Euro.
    pub const EUR: Self = Self { code: *b"EUR", minor_unit: 2 };

    /// A currency from its code. Known codes get their ISO 4217 minor unit; other three-letter codes
    /// get 2 digits (the common case). Returns `None` unless the code is three ASCII letters.
    pub fn from_code(code: &str) -> Option<Self> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return None;
        }
        let upper =
            [bytes[0].to_ascii_uppercase(), bytes[1].to_ascii_uppercase(), bytes[2].to_ascii_uppercase()];
        let minor_unit = match &upper {
            b"JPY" | b"KRW" | b"ISK" | b"CLP" | b"VND" | b"UGX" | b"XAF" | b"XOF" | b"PYG" => 0,
            b"BHD" | b"KWD" | b"OMR" | b"JOD" | b"TND" | b"LYD" | b"IQD" => 3,
            _ => 2,
        };
        Some(Self { code: upper, minor_unit })
    }

    /// The three-letter code.
    pub fn code(&self) -> &str {
        // Built only from ASCII letters.
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// The rounding of a shown amount in this currency with the given midpoint rule.
    pub const fn rounding(&self, mode: RoundingMode) -> Rounding {
        Rounding { scale: self.minor_unit, mode }
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        if Self::from_code(self.code()).is_some_and(|standard| standard.minor_unit == self.minor_unit) {
            return serializer.serialize_str(self.code());
        }
        let mut state = serializer.serialize_struct("Currency", 2)?;
        state.serialize_field("code", self.code())?;
        state.serialize_field("minor_unit", &self.minor_unit)?;
        state.end()
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Code {
            Text(String),
            Bytes([u8; 3]),
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Code(String),
            Full { code: Code, minor_unit: u32 },
        }
        let (code, minor_unit) = match Form::deserialize(deserializer)? {
            Form::Code(code) => (code, None),
            Form::Full { code: Code::Text(code), minor_unit } => (code, Some(minor_unit)),
            Form::Full { code: Code::Bytes(bytes), minor_unit } => {
                (String::from_utf8_lossy(&bytes).into_owned(), Some(minor_unit))
            }
        };
        let currency = Self::from_code(&code)
            .ok_or_else(|| serde::de::Error::custom(format!("bad currency code {code:?}")))?;
        Ok(Self { minor_unit: minor_unit.unwrap_or(currency.minor_unit), ..currency })
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Parse a decimal from its text without going through a float. Accepts an optional sign, digits, an
/// optional fraction and an optional exponent (`1.5e-3`, as JSON numbers may be written).
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().any(|byte| byte == b'e' || byte == b'E') {
        return Decimal::from_scientific(text).ok();
    }
    if !text.bytes().all(|byte| byte.is_ascii_digit() || matches!(byte, b'.' | b'-' | b'+')) {
        return None;
    }
    Decimal::from_str_exact(text).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn currencies_serialise_as_their_code_and_read_every_earlier_form() {
        let usd = Currency::USD;
        assert_eq!(serde_json::to_string(&usd).unwrap(), "\"USD\"");
        let odd = Currency { minor_unit: 4, ..usd };
        let text = serde_json::to_string(&odd).unwrap();
        assert_eq!(text, r#"{"code":"USD","minor_unit":4}"#);
        assert_eq!(serde_json::from_str::<Currency>(&text).unwrap(), odd);
        assert_eq!(
            serde_json::from_str::<Currency>(r#"{"code":[69,85,82],"minor_unit":2}"#).unwrap(),
            Currency::EUR
        );
        assert_eq!(serde_json::from_str::<Currency>("\"jpy\"").unwrap().minor_unit, 0);
        assert!(serde_json::from_str::<Currency>("\"EURO\"").is_err());
    }

    use proptest::prelude::*;

    use super::*;

    fn dec(text: &str) -> Decimal {
        parse_decimal(text).unwrap()
    }

    #[test]
    fn midpoints() {
        let away = Rounding::new(2, RoundingMode::HalfAwayFromZero);
        let even = Rounding::new(2, RoundingMode::HalfEven);
        assert_eq!(away.apply(dec("0.125")).to_string(), "0.13");
        assert_eq!(away.apply(dec("-0.125")).to_string(), "-0.13");
        assert_eq!(even.apply(dec("0.125")).to_string(), "0.12");
        assert_eq!(even.apply(dec("0.135")).to_string(), "0.14");
        assert_eq!(away.apply(dec("0")).to_string(), "0.00");
        assert_eq!(away.apply(dec("1.5")).to_string(), "1.50");
    }

    #[test]
    fn currencies() {
        assert_eq!(Currency::from_code("jpy").unwrap().minor_unit, 0);
        assert_eq!(Currency::from_code("BHD").unwrap().minor_unit, 3);
        assert_eq!(Currency::from_code("usd").unwrap(), Currency::USD);
        assert!(Currency::from_code("US").is_none());
        assert!(Currency::from_code("U$D").is_none());
    }

    #[test]
    fn decimal_text() {
        assert_eq!(dec("2.4000000000").to_string(), "2.4000000000");
        assert_eq!(dec("1.5e-3"), dec("0.0015"));
        assert_eq!(dec("+7"), dec("7"));
        for bad in ["", "1,5", "abc", "1.2.3", "0x10", "NaN", "inf"] {
            assert!(parse_decimal(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        /// A rounded amount is within half a unit of the last digit, and rounding is idempotent.
        #[test]
        fn rounding_is_close_and_idempotent(mantissa in -10_i64.pow(15)..10_i64.pow(15), scale in 0u32..12,
                                           to in 0u32..6, even: bool) {
            let amount = Decimal::new(mantissa, scale);
            let rule = Rounding::new(to, if even { RoundingMode::HalfEven } else { RoundingMode::HalfAwayFromZero });
            let rounded = rule.apply(amount);
            prop_assert_eq!(rounded.scale(), to);
            prop_assert!((rounded - amount).abs() <= Decimal::new(5, to + 1));
            prop_assert_eq!(rule.apply(rounded), rounded);
        }
    }
}
