//! How values are written to columns and read back, exactly.
//!
//! - Decimals are TEXT as `Decimal::to_string` writes them and are parsed back with their scale, so `1.50`
//!   reads back as `1.50` (and a negative zero, `-0.00`, keeps its sign).
//! - Usage instants are INTEGER nanoseconds since the Unix epoch, UTC: exact for every instant from
//!   1677-09-21 to 2262-04-11, and they sort and compare as the instants do. Other instants are refused with
//!   an error rather than stored inexactly.
//! - Recorded instants (event times, checkpoints) are RFC 3339 TEXT in UTC with nine fraction digits
//!   (`2026-10-05T08:30:00.000000000Z`): readable, exact, and in years 0000 to 9999 they sort as text.
//! - Maps and lists (tags, additional info, adjustments) and events are JSON through serde.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use cms_core::model::meter::MeterId;
use cms_core::model::money::Currency;
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::{SourceCost, UsageKey, UsageRecord};
use cms_core::source::{Checkpoint, Granularity};
use cms_core::{CmsError, Decimal};
use rusqlite::Row;

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

/// A usage instant as nanoseconds since the epoch.
pub(crate) fn nanos_of(instant: Instant) -> Result<i64, String> {
    // A leap second (sub-second part of a second or more) would fold onto the next second.
    if instant.timestamp_subsec_nanos() >= 1_000_000_000 {
        return Err(format!("{instant} is a leap second, which the SQLite store cannot keep exactly"));
    }
    instant.timestamp_nanos_opt().ok_or_else(|| {
        format!("{instant} is outside the instants the SQLite store keeps (1677-09-21 to 2262-04-11 UTC)")
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
        return Err(format!("{instant} is outside the years 0000 to 9999 the SQLite store keeps"));
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

/// A usage key with subscription and resource uri folded, in column form.
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
    pub cost_minor_unit: Option<u32>,
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
            cost_minor_unit: currency.map(|currency| currency.minor_unit),
            adjustments,
        })
    }
}

/// The columns [`record_of_row`] reads, in its order.
pub(crate) const RECORD_COLUMNS: &str = "subscription, meter, start_ns, end_ns, resource_uri, quantity, \
    location, tags, additional_info, cost_amount, cost_currency, cost_minor_unit, adjustments";

/// A usage record of a row selected with [`RECORD_COLUMNS`].
pub(crate) fn record_of_row(row: &Row<'_>) -> Result<UsageRecord, CmsError> {
    let subscription: String = row.get(0).or_store(|| "read usage: subscription".into())?;
    let context = || format!("read usage of subscription {subscription}");
    let read = || -> Result<UsageRecord, String> {
        let get_error = |error: rusqlite::Error| error.to_string();
        let meter: String = row.get(1).map_err(get_error)?;
        let meter = MeterId::from_str(&meter).map_err(|_| format!("bad meter id {meter:?}"))?;
        let json_map = |text: Option<String>, what: &str| {
            text.map(|text| {
                serde_json::from_str(&text).map_err(|error| format!("bad {what} {text:?}: {error}"))
            })
            .transpose()
            .map(Option::unwrap_or_default)
        };
        let cost_amount: Option<String> = row.get(9).map_err(get_error)?;
        let cost_currency: Option<String> = row.get(10).map_err(get_error)?;
        let cost_minor_unit: Option<u32> = row.get(11).map_err(get_error)?;
        let cost = match (cost_amount, cost_currency, cost_minor_unit) {
            (Some(amount), Some(code), Some(minor_unit)) => {
                let mut currency =
                    Currency::from_code(&code).ok_or_else(|| format!("bad currency code {code:?}"))?;
                currency.minor_unit = minor_unit;
                Some(SourceCost { amount: decimal_of(&amount)?, currency })
            }
            (None, None, None) => None,
            _ => return Err("a source cost with missing parts".into()),
        };
        let adjustments: Option<String> = row.get(12).map_err(get_error)?;
        Ok(UsageRecord {
            subscription: subscription.clone(),
            meter,
            start: instant_of_nanos(row.get(2).map_err(get_error)?),
            end: instant_of_nanos(row.get(3).map_err(get_error)?),
            resource_uri: row.get(4).map_err(get_error)?,
            quantity: decimal_of(&row.get::<_, String>(5).map_err(get_error)?)?,
            location: row.get(6).map_err(get_error)?,
            tags: json_map(row.get(7).map_err(get_error)?, "tags")?,
            additional_info: json_map(row.get(8).map_err(get_error)?, "additional info")?,
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
pub(crate) fn checkpoint_of_row(row: &Row<'_>) -> Result<Checkpoint, CmsError> {
    let region: String = row.get(0).or_store(|| "read a checkpoint: region".into())?;
    let read = || -> Result<Checkpoint, String> {
        let granularity: String = row.get(2).map_err(|error| error.to_string())?;
        let reported_until: String = row.get(3).map_err(|error| error.to_string())?;
        Ok(Checkpoint {
            region: region.clone(),
            subscriber: row.get(1).map_err(|error| error.to_string())?,
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
        let far = Period::month(2300, 1).unwrap();
        assert_eq!(period_nanos(&far), None);
        let ancient = Period::month(1600, 1).unwrap();
        assert_eq!(period_nanos(&ancient), None);
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
}
