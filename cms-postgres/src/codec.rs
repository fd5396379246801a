//! How values are written to columns and read back, exactly (the conventions of cms-sqlite).
//!
//! - Decimals are TEXT as `Decimal::to_string` writes them and are parsed back with their scale, so `1.50`
//!   reads back as `1.50` (and a negative zero, `-0.00`, keeps its sign). PostgreSQL's `numeric` keeps the
//!   scale too, but not a negative zero, and `rust_decimal`'s 28 fraction digits would need checking at every
//!   read; text is exact by construction.
//! - Usage instants are BIGINT nanoseconds since the Unix epoch, UTC: exact for every instant from
//!   1677-09-21 to 2262-04-11, and they sort and compare as the instants do. `timestamptz` keeps only
//!   microseconds. Other instants are refused with an error rather than stored inexactly.
//! - Recorded instants (event times, checkpoints) are RFC 3339 TEXT in UTC with nine fraction digits
//!   (`2026-10-05T08:30:00.000000000Z`): readable, exact, and in years 0000 to 9999 they sort as text.
//! - Maps and lists (tags, additional info, adjustments), events and audit records are JSON text through
//!   serde, kept byte for byte (`jsonb` would reorder keys).

use std::fmt::{self, Write as _};
use std::str::FromStr;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use cms_core::model::meter::MeterId;
use cms_core::model::money::Currency;
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::{SourceCost, UsageKey, UsageRecord};
use cms_core::source::{Checkpoint, Granularity};
use cms_core::{CmsError, Decimal};
use postgres::Row;

/// Turns any error into [`CmsError::Store`], prefixed by what was being done.
pub(crate) trait OrStore<T> {
    /// The error as a store error whose message starts with `context()`.
    fn or_store(self, context: impl FnOnce() -> String) -> Result<T, CmsError>;
}

impl<T, E: fmt::Display> OrStore<T> for Result<T, E> {
    fn or_store(self, context: impl FnOnce() -> String) -> Result<T, CmsError> {
        self.map_err(|error| CmsError::Store { message: format!("{}: {error}", context()) })
    }
}

/// A PostgreSQL client error with its cause: the server's message (severity, SQLSTATE, detail, hint) or
/// the I/O error (`postgres::Error`'s `Display` names only the kind).
pub(crate) fn describe(error: &postgres::Error) -> String {
    if let Some(database) = error.as_db_error() {
        let mut text = format!("{} {}: {}", database.severity(), database.code().code(), database.message());
        if let Some(detail) = database.detail() {
            let _ = write!(text, " ({detail})");
        }
        if let Some(hint) = database.hint() {
            let _ = write!(text, " (hint: {hint})");
        }
        return text;
    }
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}

/// A usage instant as nanoseconds since the epoch.
pub(crate) fn nanos_of(instant: Instant) -> Result<i64, String> {
    // A leap second (sub-second part of a second or more) would fold onto the next second.
    if instant.timestamp_subsec_nanos() >= 1_000_000_000 {
        return Err(format!("{instant} is a leap second, which the PostgreSQL store cannot keep exactly"));
    }
    instant.timestamp_nanos_opt().ok_or_else(|| {
        format!("{instant} is outside the instants the PostgreSQL store keeps (1677-09-21 to 2262-04-11 UTC)")
    })
}

/// The usage instant of nanoseconds since the epoch.
pub(crate) fn instant_of_nanos(nanos: i64) -> Instant {
    DateTime::from_timestamp_nanos(nanos)
}

/// The usage starts of `period` as an inclusive range of nanoseconds; `None` when no storable instant lies
/// in the period.
pub(crate) fn period_nanos(period: &Period) -> Option<(i64, i64)> {
    let low = match period.start.timestamp_nanos_opt() {
        Some(nanos) => nanos,
        None if period.start < DateTime::UNIX_EPOCH => i64::MIN,
        None => return None,
    };
    let high = match period.end.timestamp_nanos_opt() {
        Some(nanos) => nanos.checked_sub(1)?,
        None if period.end > DateTime::UNIX_EPOCH => i64::MAX,
        None => return None,
    };
    (low <= high).then_some((low, high))
}

/// A recorded instant as RFC 3339 text.
pub(crate) fn text_of(instant: Instant) -> Result<String, String> {
    if !(0..=9999).contains(&instant.year()) {
        return Err(format!("{instant} is outside the years 0000 to 9999 the PostgreSQL store keeps"));
    }
    Ok(instant.to_rfc3339_opts(SecondsFormat::Nanos, true))
}

/// The recorded instant of RFC 3339 text.
pub(crate) fn instant_of_text(text: &str) -> Result<Instant, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|instant| instant.with_timezone(&Utc))
        .map_err(|error| format!("bad instant {text:?}: {error}"))
}

/// A decimal of its stored text, with its scale.
pub(crate) fn decimal_of(text: &str) -> Result<Decimal, String> {
    let mut value = Decimal::from_str(text).map_err(|error| format!("bad decimal {text:?}: {error}"))?;
    // `to_string` writes a negative zero as `-0.00` but parsing drops that sign.
    if value.is_zero() && text.starts_with('-') {
        value.set_sign_negative(true);
    }
    Ok(value)
}

/// The smallest text greater than every text that starts with `prefix` (in byte order, which is code point
/// order for UTF-8); `None` when there is none (an empty prefix, or one of only `char::MAX`).
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // The next scalar value: `char::from_u32` refuses surrogates, which are skipped.
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// A usage key with subscription and resource uri folded, in column form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct KeyColumns {
    pub subscription_folded: String,
    pub meter: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub resource_uri_folded: String,
}

impl KeyColumns {
    /// The columns of a key; folds it (stores compare subscription and resource ignoring ASCII case).
    pub(crate) fn of(key: &UsageKey) -> Result<Self, String> {
        Self::new(&key.subscription, key.meter, key.start, key.end, &key.resource_uri)
    }

    /// The columns of a record's key.
    pub(crate) fn of_record(record: &UsageRecord) -> Result<Self, String> {
        Self::new(&record.subscription, record.meter, record.start, record.end, &record.resource_uri)
    }

    fn new(
        subscription: &str,
        meter: MeterId,
        start: Instant,
        end: Instant,
        resource_uri: &str,
    ) -> Result<Self, String> {
        Ok(Self {
            subscription_folded: subscription.to_ascii_lowercase(),
            meter: meter.canonical(),
            start_ns: nanos_of(start).map_err(|error| format!("usage start {error}"))?,
            end_ns: nanos_of(end).map_err(|error| format!("usage end {error}"))?,
            resource_uri_folded: resource_uri.to_ascii_lowercase(),
        })
    }
}

/// The value columns of a usage record (everything but the folded key).
pub(crate) struct ValueColumns {
    pub quantity: String,
    pub tags: Option<String>,
    pub additional_info: Option<String>,
    pub cost_amount: Option<String>,
    pub cost_currency: Option<String>,
    pub cost_minor_unit: Option<i64>,
    pub adjustments: Option<String>,
}

impl ValueColumns {
    /// The value columns of `record`; fails for a currency code that would not read back the same.
    pub(crate) fn of(record: &UsageRecord) -> Result<Self, String> {
        let json = |what: &str, value: Result<String, serde_json::Error>| {
            value.map_err(|error| format!("{what} as JSON: {error}"))
        };
        let tags = (!record.tags.is_empty())
            .then(|| json("tags", serde_json::to_string(&record.tags)))
            .transpose()?;
        let additional_info = (!record.additional_info.is_empty())
            .then(|| json("additional info", serde_json::to_string(&record.additional_info)))
            .transpose()?;
        let adjustments = (!record.adjustments.is_empty())
            .then(|| json("adjustments", serde_json::to_string(&record.adjustments)))
            .transpose()?;
        let currency = record.cost.map(|cost| cost.currency);
        if let Some(currency) = currency {
            // Read back through `Currency::from_code`, which only gives upper-case letters.
            let code = currency.code();
            if Currency::from_code(code).is_none_or(|known| known.code() != code) {
                return Err(format!("currency code {code:?} is not three upper-case letters"));
            }
        }
        Ok(Self {
            quantity: record.quantity.to_string(),
            tags,
            additional_info,
            cost_amount: record.cost.map(|cost| cost.amount.to_string()),
            cost_currency: currency.map(|currency| currency.code().to_owned()),
            cost_minor_unit: currency.map(|currency| i64::from(currency.minor_unit)),
            adjustments,
        })
    }
}

/// The columns [`record_of_row`] reads, in its order.
pub(crate) const RECORD_COLUMNS: &str = "subscription, meter, start_ns, end_ns, resource_uri, quantity, \
    location, tags, additional_info, cost_amount, cost_currency, cost_minor_unit, adjustments";

/// A usage record of a row selected with [`RECORD_COLUMNS`].
pub(crate) fn record_of_row(row: &Row) -> Result<UsageRecord, CmsError> {
    let subscription: String =
        row.try_get(0).map_err(|error| describe(&error)).or_store(|| "read usage: subscription".into())?;
    let context = || format!("read usage of subscription {subscription}");
    let read = || -> Result<UsageRecord, String> {
        let get_error = |error: postgres::Error| describe(&error);
        let meter: String = row.try_get(1).map_err(get_error)?;
        let meter = MeterId::from_str(&meter).map_err(|_| format!("bad meter id {meter:?}"))?;
        let json_map = |text: Option<String>, what: &str| {
            text.map(|text| {
                serde_json::from_str(&text).map_err(|error| format!("bad {what} {text:?}: {error}"))
            })
            .transpose()
            .map(Option::unwrap_or_default)
        };
        let cost_amount: Option<String> = row.try_get(9).map_err(get_error)?;
        let cost_currency: Option<String> = row.try_get(10).map_err(get_error)?;
        let cost_minor_unit: Option<i64> = row.try_get(11).map_err(get_error)?;
        let cost = match (cost_amount, cost_currency, cost_minor_unit) {
            (Some(amount), Some(code), Some(minor_unit)) => {
                let mut currency =
                    Currency::from_code(&code).ok_or_else(|| format!("bad currency code {code:?}"))?;
                currency.minor_unit =
                    u32::try_from(minor_unit).map_err(|_| format!("bad minor unit {minor_unit}"))?;
                Some(SourceCost { amount: decimal_of(&amount)?, currency })
            }
            (None, None, None) => None,
            _ => return Err("a source cost with missing parts".into()),
        };
        let adjustments: Option<String> = row.try_get(12).map_err(get_error)?;
        Ok(UsageRecord {
            subscription: subscription.clone(),
            meter,
            start: instant_of_nanos(row.try_get(2).map_err(get_error)?),
            end: instant_of_nanos(row.try_get(3).map_err(get_error)?),
            resource_uri: row.try_get(4).map_err(get_error)?,
            quantity: decimal_of(&row.try_get::<_, String>(5).map_err(get_error)?)?,
            location: row.try_get(6).map_err(get_error)?,
            tags: json_map(row.try_get(7).map_err(get_error)?, "tags")?,
            additional_info: json_map(row.try_get(8).map_err(get_error)?, "additional info")?,
            cost,
            adjustments: adjustments
                .map(|text| {
                    serde_json::from_str(&text).map_err(|error| format!("bad adjustments {text:?}: {error}"))
                })
                .transpose()?
                .unwrap_or_default(),
        })
    };
    read().or_store(context)
}

/// The `granularity` and `reported_until` columns of a checkpoint (region and subscriber are text as given).
pub(crate) fn checkpoint_columns(checkpoint: &Checkpoint) -> Result<(String, String), String> {
    Ok((checkpoint.granularity.to_string(), text_of(checkpoint.reported_until)?))
}

/// A checkpoint of a row `(region, subscriber, granularity, reported_until)`.
pub(crate) fn checkpoint_of_row(row: &Row) -> Result<Checkpoint, CmsError> {
    let region: String =
        row.try_get(0).map_err(|error| describe(&error)).or_store(|| "read a checkpoint: region".into())?;
    let read = || -> Result<Checkpoint, String> {
        let granularity: String = row.try_get(2).map_err(|error| describe(&error))?;
        let reported_until: String = row.try_get(3).map_err(|error| describe(&error))?;
        Ok(Checkpoint {
            region: region.clone(),
            subscriber: row.try_get(1).map_err(|error| describe(&error))?,
            granularity: Granularity::from_str(&granularity)?,
            reported_until: instant_of_text(&reported_until)?,
        })
    };
    read().or_store(|| format!("read the checkpoint of region {region:?}"))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn instants_round_trip_exactly() {
        let instant = Utc.with_ymd_and_hms(2026, 10, 5, 8, 30, 0).unwrap() + chrono::Duration::nanoseconds(7);
        assert_eq!(instant_of_nanos(nanos_of(instant).unwrap()), instant);
        let text = text_of(instant).unwrap();
        assert_eq!(text, "2026-10-05T08:30:00.000000007Z");
        assert_eq!(instant_of_text(&text).unwrap(), instant);
        let far = Utc.with_ymd_and_hms(2300, 1, 1, 0, 0, 0).unwrap();
        assert!(nanos_of(far).unwrap_err().contains("outside"));
        assert!(text_of(far).is_ok());
    }

    #[test]
    fn periods_become_inclusive_nanosecond_ranges() {
        let october = Period::month(2026, 10).unwrap();
        let (low, high) = period_nanos(&october).unwrap();
        assert_eq!(low, nanos_of(october.start).unwrap());
        assert_eq!(high, nanos_of(october.end).unwrap() - 1);
        let everything = Period::new(Instant::MIN_UTC, Instant::MAX_UTC).unwrap();
        assert_eq!(period_nanos(&everything), Some((i64::MIN, i64::MAX)));
        assert_eq!(period_nanos(&Period::month(2300, 1).unwrap()), None);
        assert_eq!(period_nanos(&Period::month(1600, 1).unwrap()), None);
    }

    #[test]
    fn decimals_keep_their_scale() {
        for text in ["1.50", "0", "-0.000", "123456789.123456789", "0.0000000000000000000000000001"] {
            let value = decimal_of(text).unwrap();
            assert_eq!(value.to_string(), text);
            assert_eq!(value.is_sign_negative(), text.starts_with('-'));
        }
        assert!(decimal_of("1,5").is_err());
    }

    #[test]
    fn the_prefix_bound_is_the_next_text_after_every_extension() {
        assert_eq!(prefix_upper_bound("2026-10/").as_deref(), Some("2026-100"));
        assert_eq!(prefix_upper_bound("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_upper_bound("ab\u{10FFFF}").as_deref(), Some("ac"));
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        let bound = prefix_upper_bound("é").unwrap();
        for extended in ["é", "é\u{10FFFF}", "éz"] {
            assert!(extended.as_bytes() < bound.as_bytes(), "{extended}");
        }
    }
}
