//! Reported-time windows: boundaries and the next window to ask for.

use chrono::{DateTime, TimeDelta};
use cms_core::model::time::Instant;
use cms_core::source::{Granularity, ReportedWindow};

/// `instant` rounded down to its bucket boundary: the hour (hourly) or UTC midnight (daily).
pub fn align_down(instant: Instant, granularity: Granularity) -> Instant {
    let bucket = granularity.seconds();
    let seconds = instant.timestamp().div_euclid(bucket) * bucket;
    // Rounding down an instant chrono represents stays representable (its range starts on a midnight).
    DateTime::from_timestamp(seconds, 0).unwrap_or(instant)
}

/// The window starting at `start`: `length` long, cut at `end`; `None` when `start` is not before `end`.
pub(crate) fn next_window(
    start: Instant,
    end: Instant,
    length: TimeDelta,
    granularity: Granularity,
) -> Option<ReportedWindow> {
    if start >= end {
        return None;
    }
    let window_end = start.checked_add_signed(length).map_or(end, |candidate| candidate.min(end));
    Some(ReportedWindow { start, end: window_end, granularity })
}

/// The API's spelling of a window boundary: ISO 8601 with an explicit `+00:00` offset, as the docs show.
pub(crate) fn api_time(instant: Instant) -> String {
    instant.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

#[cfg(test)]
mod tests {
    use cms_core::model::time::parse_timestamp;

    use super::*;

    fn at(text: &str) -> Instant {
        parse_timestamp(text).unwrap()
    }

    #[test]
    fn boundaries() {
        let instant = at("2025-03-10T13:59:59Z");
        assert_eq!(align_down(instant, Granularity::Hourly), at("2025-03-10T13:00:00Z"));
        assert_eq!(align_down(instant, Granularity::Daily), at("2025-03-10T00:00:00Z"));
        assert_eq!(align_down(at("1969-12-31T23:30:00Z"), Granularity::Hourly), at("1969-12-31T23:00:00Z"));
        assert_eq!(api_time(at("2025-03-10T13:00:00Z")), "2025-03-10T13:00:00+00:00");
    }

    #[test]
    fn windows_are_cut_at_the_end() {
        let (start, end) = (at("2025-03-10T00:00:00Z"), at("2025-03-11T05:00:00Z"));
        let first = next_window(start, end, TimeDelta::days(1), Granularity::Hourly).unwrap();
        assert_eq!(first.end, at("2025-03-11T00:00:00Z"));
        let second = next_window(first.end, end, TimeDelta::days(1), Granularity::Hourly).unwrap();
        assert_eq!(second.end, end);
        assert_eq!(next_window(end, end, TimeDelta::days(1), Granularity::Hourly), None);
    }
}
