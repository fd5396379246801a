//! UTC instants, timestamp parsing and billing periods.
//!
//! All usage times are UTC instants: an offset such as `-08:00` is converted, never dropped; a timestamp
//! without an offset is taken as UTC. Billing periods are half-open `[start, end)` and usage belongs to
//! the period of its usage start.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::error::CmsError;

/// A point in time, UTC.
pub type Instant = DateTime<Utc>;

/// Seconds since the Unix epoch of a timestamp text, UTC. Returns `None` when the text is not an
/// ISO 8601 / RFC 3339 date-time.
///
/// The common shape `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]` is parsed by hand (this runs for every usage
/// row); anything else falls back to chrono's RFC 3339 and naive parsers.
pub fn parse_timestamp_seconds(text: &[u8]) -> Option<i64> {
    parse_fast(text).or_else(|| parse_slow(std::str::from_utf8(text).ok()?))
}

/// The instant of a timestamp text (see [`parse_timestamp_seconds`]).
pub fn parse_timestamp(text: &str) -> Option<Instant> {
    DateTime::from_timestamp(parse_timestamp_seconds(text.as_bytes())?, 0)
}

fn two(text: &[u8], at: usize) -> Option<u32> {
    let high = text[at].wrapping_sub(b'0');
    let low = text[at + 1].wrapping_sub(b'0');
    (high < 10 && low < 10).then(|| u32::from(high) * 10 + u32::from(low))
}

fn parse_fast(text: &[u8]) -> Option<i64> {
    if text.len() < 19 || text[4] != b'-' || text[7] != b'-' || !matches!(text[10], b'T' | b't' | b' ') {
        return None;
    }
    if text[13] != b':' || text[16] != b':' {
        return None;
    }
    let year = i32::try_from(two(text, 0)? * 100 + two(text, 2)?).ok()?;
    let (month, day) = (two(text, 5)?, two(text, 8)?);
    let (hour, minute, second) = (two(text, 11)?, two(text, 14)?, two(text, 17)?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut rest = &text[19..];
    if let [b'.', tail @ ..] = rest {
        // Fractions of a second are allowed only when they are zero: usage buckets start on whole
        // seconds, and a fraction elsewhere goes to the exact slow path.
        let digits = tail.iter().take_while(|byte| byte.is_ascii_digit()).count();
        if digits == 0 || tail[..digits].iter().any(|&byte| byte != b'0') {
            return None;
        }
        rest = &tail[digits..];
    }
    let offset_seconds = match rest {
        [] | [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] | [sign @ (b'+' | b'-'), _, _, _, _] => {
            let hours = i64::from(two(rest, 1)?);
            let minutes = i64::from(two(rest, rest.len() - 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let magnitude = hours * 3600 + minutes * 60;
            if *sign == b'+' { magnitude } else { -magnitude }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day)?;
    Some(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_seconds)
}

/// Days since 1970-01-01 of a valid proleptic Gregorian date (Howard Hinnant's `days_from_civil`), or `None`
/// for a month or day that does not exist.
fn days_from_civil(year: i32, month: u32, day: u32) -> Option<i64> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > month_days {
        return None;
    }
    let year = i64::from(year) - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let shifted_month = i64::from((month + 9) % 12);
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

fn parse_slow(text: &str) -> Option<i64> {
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return (instant.timestamp_subsec_nanos() == 0).then(|| instant.timestamp());
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(naive.and_utc().timestamp());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp());
    }
    None
}

/// A billing period `[start, end)`, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Period {
    /// First instant inside the period.
    pub start: Instant,
    /// First instant after the period.
    pub end: Instant,
}

impl Period {
    /// The period `[start, end)`; fails unless `start < end`.
    pub fn new(start: Instant, end: Instant) -> Result<Self, CmsError> {
        if start < end {
            Ok(Self { start, end })
        } else {
            Err(CmsError::InvalidPeriod {
                text: format!("{start} .. {end}"),
                reason: "start must be before end".into(),
            })
        }
    }

    /// The calendar month `year-month` in UTC.
    pub fn month(year: i32, month: u32) -> Result<Self, CmsError> {
        let invalid = || CmsError::InvalidPeriod {
            text: format!("{year:04}-{month:02}"),
            reason: "not a calendar month".into(),
        };
        let start = Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).single().ok_or_else(invalid)?;
        let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
        let end = Utc.with_ymd_and_hms(next_year, next_month, 1, 0, 0, 0).single().ok_or_else(invalid)?;
        Ok(Self { start, end })
    }

    /// Whether `instant` lies inside `[start, end)`.
    pub fn contains(&self, instant: Instant) -> bool {
        self.start <= instant && instant < self.end
    }

    /// Start as Unix seconds.
    pub fn start_seconds(&self) -> i64 {
        self.start.timestamp()
    }

    /// End as Unix seconds.
    pub fn end_seconds(&self) -> i64 {
        self.end.timestamp()
    }

    /// Whole hours in the period (rounded up).
    pub fn hours(&self) -> u32 {
        let seconds = self.end_seconds() - self.start_seconds();
        u32::try_from((seconds + 3599) / 3600).unwrap_or(u32::MAX)
    }

    /// The period right after this one, of the same calendar shape when this is a calendar month.
    pub fn next_month(&self) -> Result<Self, CmsError> {
        let (year, month) = (self.start.year(), self.start.month());
        if month == 12 { Self::month(year + 1, 1) } else { Self::month(year, month + 1) }
    }

    /// `YYYY-MM` when the period is a calendar month, otherwise `start/end` in RFC 3339.
    pub fn label(&self) -> String {
        self.to_string()
    }
}

impl FromStr for Period {
    type Err = CmsError;

    /// `YYYY-MM` (a calendar month, UTC) or `START/END` with two RFC 3339 instants.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid =
            |reason: &str| CmsError::InvalidPeriod { text: text.to_owned(), reason: reason.to_owned() };
        if let Some((start, end)) = text.split_once('/') {
            let start = parse_timestamp(start).ok_or_else(|| invalid("bad start instant"))?;
            let end = parse_timestamp(end).ok_or_else(|| invalid("bad end instant"))?;
            return Self::new(start, end).map_err(|_| invalid("start must be before end"));
        }
        let (year, month) = text.split_once('-').ok_or_else(|| invalid("expected YYYY-MM"))?;
        if year.len() != 4 || month.len() != 2 {
            return Err(invalid("expected YYYY-MM"));
        }
        let year: i32 = year.parse().map_err(|_| invalid("bad year"))?;
        let month: u32 = month.parse().map_err(|_| invalid("bad month"))?;
        Self::month(year, month).map_err(|_| invalid("not a calendar month"))
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Ok(month) = Self::month(self.start.year(), self.start.month())
            && month == *self
        {
            return write!(f, "{:04}-{:02}", self.start.year(), self.start.month());
        }
        write!(f, "{}/{}", self.start.to_rfc3339(), self.end.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn offsets_are_converted() {
        let utc = parse_timestamp_seconds(b"2026-10-01T08:00:00+00:00").unwrap();
        assert_eq!(parse_timestamp_seconds(b"2026-10-01T00:00:00-08:00"), Some(utc));
        assert_eq!(parse_timestamp_seconds(b"2026-10-01T09:30:00+01:30"), Some(utc));
        assert_eq!(parse_timestamp_seconds(b"2026-10-01T08:00:00Z"), Some(utc));
        assert_eq!(parse_timestamp_seconds(b"2026-10-01T08:00:00.000Z"), Some(utc));
        assert_eq!(parse_timestamp_seconds(b"2026-10-01T08:00:00"), Some(utc));
        assert_eq!(parse_timestamp_seconds(b"2026-10-01 08:00:00"), Some(utc));
        assert_eq!(parse_timestamp_seconds(b"2026-10-01T08:00:00+0000"), Some(utc));
    }

    #[test]
    fn garbage_is_refused() {
        for text in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-10-01T24:00:00Z",
            "2026-10-01T00:00:00+25:00",
        ] {
            assert_eq!(parse_timestamp_seconds(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn months_are_half_open() {
        let october: Period = "2026-10".parse().unwrap();
        assert_eq!(october.hours(), 744);
        assert!(october.contains(parse_timestamp("2026-10-01T00:00:00Z").unwrap()));
        assert!(october.contains(parse_timestamp("2026-10-31T23:00:00Z").unwrap()));
        assert!(!october.contains(parse_timestamp("2026-11-01T00:00:00Z").unwrap()));
        assert!(!october.contains(parse_timestamp("2026-09-30T23:00:00Z").unwrap()));
        assert_eq!(october.to_string(), "2026-10");
        assert_eq!("2026-12".parse::<Period>().unwrap().next_month().unwrap().to_string(), "2027-01");
        assert!("2026-13".parse::<Period>().is_err());
        assert!("2026-1".parse::<Period>().is_err());
    }

    proptest! {
        /// The civil-date arithmetic agrees with chrono on every date, valid or not.
        #[test]
        fn days_from_civil_matches_chrono(year in 1i32..9999, month in 0u32..14, day in 0u32..33) {
            let expected = NaiveDate::from_ymd_opt(year, month, day)
                .map(|date| i64::from(date.num_days_from_ce()) - 719_163);
            prop_assert_eq!(days_from_civil(year, month, day), expected);
        }

        /// The hand-written fast path agrees with chrono for every instant and offset.
        #[test]
        fn fast_path_matches_chrono(seconds in 0i64..4_102_444_800, offset_minutes in -1439i32..1440) {
            let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).unwrap();
            let instant = DateTime::from_timestamp(seconds, 0).unwrap().with_timezone(&offset);
            let text = instant.to_rfc3339();
            prop_assert_eq!(parse_fast(text.as_bytes()), Some(seconds));
        }
    }
}
