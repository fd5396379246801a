//! The row end of the fast month-end parsers (`usage.csv` blocks and Usage API pages): what to do with one
//! row's field bytes once a parser has found them.
//!
//! - The series of a row is found by the exact bytes of its (subscription, meter, resource) in an index of
//!   spellings (`formats::key_index`, which also lets a parser bring a batch of rows' spellings into the CPU
//!   caches together), so the case-folded lookup, the UTF-8 checks and the check that the subscription is in the
//!   channel run once per spelling, not once per row.
//! - Times go through a month-cached timestamp reader; quantities with at most 6 decimals are read straight
//!   into micro-units (`i64`), exactly.
//! - Anything unusual ([`Prepared::Slow`]) sends the row (or the page) through the simple path's rules,
//!   which accept it the same way or name it in the error.
//!
//! A row is handled in two steps, [`FastRows::prepare`] (checks, no effect) and [`FastRows::store`], so a
//! page parser can check a whole page before storing any of it, as pages are accepted or refused whole.

use chrono::Datelike;

use crate::error::{CmsError, Location};
use crate::formats::key_index::KeyIndex;
use crate::model::meter::MeterId;
use crate::model::time::{Period, parse_timestamp_seconds};
use crate::rating::{SeriesId, UsageAccumulator};

/// Bytes of the subscription and resource that go into a spelling's hash: their ends, where spellings differ
/// (a resource id's start repeats the subscription). Equality still compares every byte.
const HASHED_SUBSCRIPTION_BYTES: usize = 12;
const HASHED_RESOURCE_BYTES: usize = 48;

/// Timestamps of one month repeat their `YYYY-MM-` prefix: the day count of the month's first day is kept,
/// so the common `YYYY-MM-DDTHH:MM:SS+00:00` (or `...Z`) costs a few digit reads. Anything else goes to
/// [`parse_timestamp_seconds`].
#[derive(Debug, Default)]
struct TimestampCache {
    /// The `YYYY-MM-` bytes of the month remembered, as a word (0: none yet).
    prefix: u64,
    month_start_days: i64,
    month_days: u32,
}

#[inline]
fn digits2(bytes: &[u8], at: usize) -> Option<u32> {
    let (high, low) = (bytes[at].wrapping_sub(b'0'), bytes[at + 1].wrapping_sub(b'0'));
    (high < 10 && low < 10).then(|| u32::from(high) * 10 + u32::from(low))
}

/// Eight bytes of `bytes` from `at`, little-endian.
#[inline]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut buffer = [0u8; 8];
    buffer.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buffer)
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
/// `DDTHH:MM` (bytes 8 to 15 of a timestamp) with zeros for digits: the separators, and what digits are
/// counted from.
const CLOCK_ZEROS: u64 = u64::from_le_bytes(*b"00T00:00");
/// The separator bytes of `DDTHH:MM`.
const CLOCK_SEPARATORS: u64 = u64::from_le_bytes([0, 0, 0xFF, 0, 0, 0xFF, 0, 0]);

/// Day, hour and minute of the `DDTHH:MM` word, all eight bytes checked at once (separators in place, every
/// digit an ASCII digit); `None` for anything else.
#[inline]
fn day_hour_minute(word: u64) -> Option<(u32, u32, u32)> {
    if word & CLOCK_SEPARATORS != CLOCK_ZEROS & CLOCK_SEPARATORS || word & HIGH_BITS != 0 {
        return None;
    }
    // Every byte is ASCII, so neither sum crosses into the next byte: a high bit marks a byte below '0'
    // (first) or above '9' (second). The separators sit above '0' and are checked already.
    let below_zero = !((word | HIGH_BITS) - LOW_BITS * u64::from(b'0')) & HIGH_BITS;
    let above_nine = (word + LOW_BITS * (0x80 - u64::from(b'9') - 1)) & HIGH_BITS;
    if (below_zero | above_nine) & !(CLOCK_SEPARATORS & HIGH_BITS) != 0 {
        return None;
    }
    let values = word - CLOCK_ZEROS;
    let digit = |at: u32| ((values >> (8 * at)) & 0xFF) as u32;
    Some((digit(0) * 10 + digit(1), digit(3) * 10 + digit(4), digit(6) * 10 + digit(7)))
}

/// `+00:00` in the low six bytes of a word.
const UTC_SUFFIX: u64 = u64::from_le_bytes(*b"+00:00\0\0");

impl TimestampCache {
    #[inline]
    fn seconds(&mut self, bytes: &[u8]) -> Option<i64> {
        let utc = match bytes.len() {
            25 => word(bytes, 17) >> 16 == UTC_SUFFIX,
            20 => bytes[19] == b'Z',
            _ => false,
        };
        if !utc {
            return parse_timestamp_seconds(bytes);
        }
        let head = word(bytes, 0);
        if head != self.prefix {
            return self.new_month(bytes, head);
        }
        // DDTHH:MM, then :SS.
        let middle = word(bytes, 8);
        if bytes[16] != b':' {
            return parse_timestamp_seconds(bytes);
        }
        let (Some((day, hour, minute)), Some(second)) = (day_hour_minute(middle), digits2(bytes, 17)) else {
            return parse_timestamp_seconds(bytes);
        };
        if day == 0 || day > self.month_days || hour > 23 || minute > 59 || second > 59 {
            return parse_timestamp_seconds(bytes);
        }
        Some(
            (self.month_start_days + i64::from(day) - 1) * 86_400
                + i64::from(hour * 3600 + minute * 60 + second),
        )
    }

    /// A timestamp of a month not seen last: parsed the slow way, and the month remembered.
    #[cold]
    fn new_month(&mut self, bytes: &[u8], head: u64) -> Option<i64> {
        let seconds = parse_timestamp_seconds(bytes)?;
        let year = i32::try_from(digits2(bytes, 0)? * 100 + digits2(bytes, 2)?).ok()?;
        let month = digits2(bytes, 5)?;
        let first = chrono::NaiveDate::from_ymd_opt(year, month, 1)?;
        let next = if month == 12 {
            chrono::NaiveDate::from_ymd_opt(year + 1, 1, 1)?
        } else {
            first.with_month(month + 1)?
        };
        self.prefix = head;
        self.month_start_days = first.and_hms_opt(0, 0, 0)?.and_utc().timestamp().div_euclid(86_400);
        self.month_days = u32::try_from((next - first).num_days()).ok()?;
        Some(seconds)
    }
}

/// Parse `digits[.digits]` with at most 6 fraction digits into micro-units; `None` for anything else (a sign,
/// an exponent, more digits), which the exact path then handles.
pub fn parse_micros(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 18 {
        return None;
    }
    let mut value: i64 = 0;
    let mut index = 0;
    while index < bytes.len() && bytes[index].is_ascii_digit() {
        value = value * 10 + i64::from(bytes[index] - b'0');
        index += 1;
    }
    if index == 0 {
        return None;
    }
    let mut fraction_digits: u32 = 0;
    if index < bytes.len() {
        if bytes[index] != b'.' {
            return None;
        }
        index += 1;
        while index < bytes.len() && bytes[index].is_ascii_digit() {
            value = value * 10 + i64::from(bytes[index] - b'0');
            fraction_digits += 1;
            index += 1;
        }
        if fraction_digits == 0 || fraction_digits > 6 || index != bytes.len() {
            return None;
        }
    }
    // At most 18 digits: the value fits, and so does the scaled one.
    value.checked_mul(10_i64.pow(6 - fraction_digits))
}

fn is_padded(field: &[u8]) -> bool {
    field.first().is_some_and(u8::is_ascii_whitespace) || field.last().is_some_and(u8::is_ascii_whitespace)
}

/// The field bytes of one row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RowBytes<'r> {
    pub subscription: &'r [u8],
    pub meter: &'r [u8],
    pub start: &'r [u8],
    pub end: &'r [u8],
    pub quantity: &'r [u8],
    pub resource: &'r [u8],
    pub location: &'r [u8],
}

/// A row checked and ready to store.
#[derive(Debug)]
pub(crate) struct Ready {
    start: i64,
    end: i64,
    micros: i64,
    series: Result<SeriesId, NewSeries>,
}

impl Ready {
    /// The row's series, when its spelling was known.
    pub fn series(&self) -> Option<SeriesId> {
        self.series.as_ref().ok().copied()
    }
}

/// A spelling not seen before, checked: the raw bytes of subscription, meter and resource as they appear in
/// the file, and the hash they are remembered under.
#[derive(Debug)]
struct NewSeries {
    meter: MeterId,
    spelling: [Box<[u8]>; 3],
    hash: u64,
    location: String,
}

/// What [`FastRows::prepare`] found.
#[derive(Debug)]
pub(crate) enum Prepared {
    /// The row is fine: store it.
    Ready(Ready),
    /// The row needs the simple path.
    Slow,
    /// The row's spelling is new while its parser guessed where a spelled field ends: split it again.
    Resplit,
}

/// The fast path's state: the accumulator, the known spellings, the timestamp cache.
pub(crate) struct FastRows<'a> {
    known: &'a (dyn Fn(&str) -> bool + Sync),
    accumulator: UsageAccumulator,
    /// The series of each spelling (subscription, meter, resource bytes) seen.
    spellings: KeyIndex,
    times: TimestampCache,
}

impl<'a> FastRows<'a> {
    pub fn new(period: Period, known: &'a (dyn Fn(&str) -> bool + Sync)) -> Self {
        Self {
            known,
            accumulator: UsageAccumulator::new(period),
            spellings: KeyIndex::hashing_ends([HASHED_SUBSCRIPTION_BYTES, usize::MAX, HASHED_RESOURCE_BYTES]),
            times: TimestampCache::default(),
        }
    }

    /// Whether the channel has this subscription.
    pub fn known(&self, subscription: &str) -> bool {
        (self.known)(subscription)
    }

    /// The accumulator, for rows taken by the simple path (which stores each at once, after the rows kept
    /// so far).
    pub fn accumulator(&mut self) -> &mut UsageAccumulator {
        &mut self.accumulator
    }

    /// The accumulator, every row applied.
    pub fn into_accumulator(mut self) -> UsageAccumulator {
        self.accumulator.flush();
        self.accumulator
    }

    /// The hash a row's spelling is remembered under, for [`Self::touch_all`] and [`Self::prepare_hashed`].
    pub fn spelling_hash(&self, row: &RowBytes<'_>) -> u64 {
        self.spellings.hash([row.subscription, row.meter, row.resource])
    }

    /// Bring the spellings remembered under `hashes` into the CPU caches (see `formats::key_index`); changes
    /// nothing.
    pub fn touch_all(&self, hashes: impl IntoIterator<Item = u64>) {
        self.spellings.touch_all(hashes);
    }

    /// Check a row without storing it. A new spelling is checked the way the simple path checks a row (the
    /// meter, UTF-8, then the subscription: `Err` when it is not in the channel). With `guessed`, the caller
    /// guessed where a spelled field ends, and a new spelling asks for [`Prepared::Resplit`].
    pub fn prepare(
        &mut self,
        row: &RowBytes<'_>,
        guessed: bool,
        at: impl Fn() -> Location,
    ) -> Result<Prepared, CmsError> {
        let hash = self.spelling_hash(row);
        self.prepare_hashed(row, guessed, hash, at)
    }

    /// [`Self::prepare`] with the row's [`Self::spelling_hash`] already known.
    pub fn prepare_hashed(
        &mut self,
        row: &RowBytes<'_>,
        guessed: bool,
        hash: u64,
        at: impl Fn() -> Location,
    ) -> Result<Prepared, CmsError> {
        let (subscription, resource, location) = (row.subscription, row.resource, row.location);
        if subscription.is_empty() || is_padded(subscription) || is_padded(resource) || is_padded(location) {
            return Ok(Prepared::Slow);
        }
        let Some((start, end, micros)) = self.values(row.start, row.end, row.quantity) else {
            return Ok(Prepared::Slow);
        };
        let series = if let Some(series) = self.spellings.get(hash, [subscription, row.meter, resource]) {
            Ok(series)
        } else if guessed {
            return Ok(Prepared::Resplit);
        } else {
            let Ok(meter) = MeterId::parse_bytes(row.meter) else { return Ok(Prepared::Slow) };
            let (Ok(subscription_text), Ok(_), Ok(location_text)) = (
                std::str::from_utf8(subscription),
                std::str::from_utf8(resource),
                std::str::from_utf8(location),
            ) else {
                return Ok(Prepared::Slow);
            };
            if !(self.known)(subscription_text) {
                return Err(CmsError::UnknownSubscription {
                    at: at(),
                    subscription: subscription_text.to_owned(),
                });
            }
            Err(NewSeries {
                meter,
                spelling: [subscription, row.meter, resource].map(Box::from),
                hash,
                location: location_text.to_owned(),
            })
        };
        Ok(Prepared::Ready(Ready { start, end, micros, series }))
    }

    /// Check a row of a series the caller already found (by bytes that settle its spelling, as the page
    /// reader does with the raw `instanceData`): only its times and quantity are read. `None` when they need
    /// the simple path.
    pub fn prepare_known(
        &mut self,
        series: SeriesId,
        start: &[u8],
        end: &[u8],
        quantity: &[u8],
    ) -> Option<Ready> {
        let (start, end, micros) = self.values(start, end, quantity)?;
        Some(Ready { start, end, micros, series: Ok(series) })
    }

    /// A row's start and end (seconds) and quantity (micro-units), or `None` when any needs the simple path.
    fn values(&mut self, start: &[u8], end: &[u8], quantity: &[u8]) -> Option<(i64, i64, i64)> {
        Some((self.times.seconds(start)?, self.times.seconds(end)?, parse_micros(quantity)?))
    }

    /// Store a prepared row: count it, and keep it if it belongs to the period.
    pub fn store(&mut self, ready: Ready, at: impl FnOnce() -> Location) -> Result<(), CmsError> {
        if !self.accumulator.admits(ready.start, ready.end, at)? {
            return Ok(());
        }
        let series = match ready.series {
            Ok(series) => series,
            Err(new) => {
                // The bytes were checked as UTF-8 when the row was prepared; a spelling prepared twice before
                // it was stored (two rows of one page) finds the series the first one made.
                let [subscription, meter, resource] = &new.spelling;
                let (subscription_text, resource_text) = (
                    std::str::from_utf8(subscription).unwrap_or_default(),
                    std::str::from_utf8(resource).unwrap_or_default(),
                );
                let series =
                    self.accumulator.series(subscription_text, new.meter, resource_text, &new.location);
                let key = [&**subscription, &**meter, &**resource];
                if self.spellings.get(new.hash, key).is_none() {
                    self.spellings.insert(new.hash, key, series);
                }
                series
            }
        };
        self.accumulator.put_micros_batched(series, ready.start, ready.end, ready.micros);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A timestamp, or one with a byte changed: the cached reader reads what the general parser reads.
    fn timestamp() -> impl Strategy<Value = Vec<u8>> {
        let valid = (2023u32..2027, 1u32..13, 0u32..32, 0u32..25, 0u32..61, 0u32..61, any::<bool>())
            .prop_map(|(year, month, day, hour, minute, second, zulu)| {
                let zone = if zulu { "Z" } else { "+00:00" };
                format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{zone}").into_bytes()
            });
        (
            valid,
            any::<bool>(),
            any::<usize>(),
            prop_oneof![any::<u8>(), proptest::sample::select(b"0189:T/+-Z \x80".to_vec())],
        )
            .prop_map(|(mut bytes, change, at, byte)| {
                if change {
                    let at = at % bytes.len();
                    bytes[at] = byte;
                }
                bytes
            })
    }

    proptest! {
        #[test]
        fn the_cached_reader_reads_what_the_parser_reads(stamps in proptest::collection::vec(timestamp(), 1..40)) {
            let mut cache = TimestampCache::default();
            for stamp in stamps {
                prop_assert_eq!(cache.seconds(&stamp), parse_timestamp_seconds(&stamp), "{:?}", String::from_utf8_lossy(&stamp));
            }
        }

        #[test]
        fn the_clock_word_is_read_like_byte_by_byte(
            digits in proptest::collection::vec(b'0'..=b'9', 6),
            change: Option<(usize, u8)>,
            special in proptest::sample::select(b"/:T \x80\xff".to_vec()),
            use_special: bool,
        ) {
            let mut bytes = vec![digits[0], digits[1], b'T', digits[2], digits[3], b':', digits[4], digits[5]];
            if let Some((at, byte)) = change {
                bytes[at % 8] = if use_special { special } else { byte };
            }
            let expected = (bytes[2] == b'T' && bytes[5] == b':' && [0, 1, 3, 4, 6, 7].iter().all(|&at| bytes[at].is_ascii_digit()))
                .then(|| {
                    let number = |at: usize| u32::from(bytes[at] - b'0') * 10 + u32::from(bytes[at + 1] - b'0');
                    (number(0), number(3), number(6))
                });
            prop_assert_eq!(day_hour_minute(word(&bytes, 0)), expected);
        }
    }
}
