//! `usage.csv`: the simple reader (the oracle) and the fast block parser of the month-end.
//!
//! Both read the same columns (`subscription_id, meter_id, usage_start_time, usage_end_time, quantity,
//! resource_uri, location`, found by name in any order) and share one set of rules, [`usage_row`], so a bad
//! record gives the same error either way.
//!
//! ## The fast path
//!
//! [`FastUsageParser`] takes blocks of whole records ([`whole_records`] finds where a buffer can be cut:
//! after a newline outside quotes) and feeds an [`UsageAccumulator`] directly, without the csv crate, UTF-8
//! checks or decimals on the common row:
//! - fields are split on commas with SIMD search (`memchr`);
//! - the series of a row is found by the exact bytes of its (subscription, meter, resource uri) in a small
//!   map of spellings, so the case-folded lookup, the UTF-8 check and the check that the subscription is in
//!   the channel run once per spelling, not once per row;
//! - times go through the hand-written timestamp parser; quantities with at most 6 decimals are parsed
//!   straight into micro-units (`i64`), exactly (a property test checks them against `Decimal`);
//! - anything unusual on a line (a quote, surrounding spaces, a field count that differs from the header,
//!   a value the fast parsers decline) sends that one line through the simple path's rules, which either
//!   accept it the same way or name it in the error.
//!
//! The parser is single-threaded and pure; callers run one per thread on separate blocks and merge the
//! accumulators (`cms month-end` does). Line numbers in errors are absolute: each block comes with the
//! number of its first line.

use std::hash::{Hash, Hasher};
use std::io::Read;

use hashbrown::{Equivalent, HashMap};

use crate::error::{CmsError, Location};
use crate::formats::csv_input::{
    CsvInput, column_positions, csv_error, field_decimal, field_required, field_text,
};
use crate::model::meter::MeterId;
use crate::model::time::{Period, parse_timestamp_seconds};
use crate::model::usage::UsageRow;
use crate::rating::{SeriesId, UsageAccumulator};

/// The columns of `usage.csv`, in the order [`usage_row`] takes them.
pub const USAGE_COLUMNS: [&str; 7] = [
    "subscription_id",
    "meter_id",
    "usage_start_time",
    "usage_end_time",
    "quantity",
    "resource_uri",
    "location",
];

/// The rules of one usage record, shared by both paths: `fields` in [`USAGE_COLUMNS`] order.
pub fn usage_row<'a>(fields: [&'a [u8]; 7], at: &dyn Fn() -> Location) -> Result<UsageRow<'a>, CmsError> {
    let subscription = field_required(fields[0], USAGE_COLUMNS[0], at)?;
    let meter = MeterId::parse_bytes(fields[1]).map_err(|_| CmsError::BadMeterId {
        at: at(),
        text: String::from_utf8_lossy(fields[1]).into_owned(),
    })?;
    let timestamp = |index: usize| {
        parse_timestamp_seconds(fields[index]).ok_or_else(|| CmsError::BadTimestamp {
            at: at(),
            field: USAGE_COLUMNS[index].to_owned(),
            text: String::from_utf8_lossy(fields[index]).into_owned(),
        })
    };
    let (start, end) = (timestamp(2)?, timestamp(3)?);
    let quantity = field_decimal(fields[4], USAGE_COLUMNS[4], at)?;
    if quantity.is_sign_negative() && !quantity.is_zero() {
        return Err(CmsError::NegativeQuantity {
            at: at(),
            meter: meter.canonical(),
            quantity: quantity.to_string(),
        });
    }
    Ok(UsageRow {
        subscription,
        meter,
        start,
        end,
        quantity,
        resource_uri: field_text(fields[5], USAGE_COLUMNS[5], at)?,
        location: field_text(fields[6], USAGE_COLUMNS[6], at)?,
    })
}

/// Stream `usage.csv` with the csv crate, calling `visit` with each row and its location: the simple path,
/// kept as the oracle of the fast one. Stops at the first bad row with an error naming its line.
pub fn read_usage(
    input: impl Read,
    source: &str,
    mut visit: impl FnMut(&UsageRow<'_>, &dyn Fn() -> Location) -> Result<(), CmsError>,
) -> Result<(), CmsError> {
    let mut csv = CsvInput::new(input, source, &USAGE_COLUMNS)?;
    while csv.next_record()? {
        let at = || csv.location();
        let fields = std::array::from_fn(|index| csv.bytes(index));
        let row = usage_row(fields, &at)?;
        visit(&row, &at)?;
    }
    Ok(())
}

/// Where the usage columns sit in the file, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageLayout {
    columns: [usize; 7],
    fields: usize,
}

impl UsageLayout {
    /// Read the header line (without its newline).
    pub fn from_header(header: &[u8], source: &str) -> Result<Self, CmsError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(header);
        let mut record = csv::ByteRecord::new();
        reader.read_byte_record(&mut record).map_err(|error| csv_error(source, &error))?;
        let positions = column_positions(&record, source, &USAGE_COLUMNS)?;
        let mut columns = [0; 7];
        columns.copy_from_slice(&positions);
        Ok(Self { columns, fields: record.len() })
    }
}

/// The length of the longest prefix of `buffer` that holds only whole records: up to and including the last
/// newline that is not inside a quoted field. `buffer` must start at a record boundary. Returns 0 when no
/// record ends in it.
pub fn whole_records(buffer: &[u8]) -> usize {
    let mut quotes = memchr::memchr_iter(b'"', buffer).count();
    let mut end = buffer.len();
    while let Some(newline) = memchr::memrchr(b'\n', &buffer[..end]) {
        // Quotes after this newline are not part of the prefix.
        quotes -= memchr::memchr_iter(b'"', &buffer[newline..end]).count();
        if quotes.is_multiple_of(2) {
            return newline + 1;
        }
        end = newline;
    }
    0
}

/// The spelling of a series as it appears in the file.
#[derive(Debug)]
struct Spelling {
    subscription: Box<[u8]>,
    meter: MeterId,
    resource: Box<[u8]>,
}

impl Hash for Spelling {
    fn hash<H: Hasher>(&self, state: &mut H) {
        SpellingRef { subscription: &self.subscription, meter: self.meter, resource: &self.resource }
            .hash(state);
    }
}

impl PartialEq for Spelling {
    fn eq(&self, other: &Self) -> bool {
        self.meter == other.meter
            && self.subscription == other.subscription
            && self.resource == other.resource
    }
}

impl Eq for Spelling {}

struct SpellingRef<'a> {
    subscription: &'a [u8],
    meter: MeterId,
    resource: &'a [u8],
}

impl Hash for SpellingRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.subscription);
        self.meter.hash(state);
        state.write(self.resource);
    }
}

impl Equivalent<Spelling> for SpellingRef<'_> {
    fn equivalent(&self, key: &Spelling) -> bool {
        self.meter == key.meter && *self.subscription == *key.subscription && *self.resource == *key.resource
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

/// The fast month-end parser of `usage.csv` blocks (see the module documentation).
pub struct FastUsageParser<'a> {
    layout: UsageLayout,
    source: &'a str,
    known: &'a (dyn Fn(&str) -> bool + Sync),
    accumulator: UsageAccumulator,
    spellings: HashMap<Spelling, SeriesId>,
    fields: Vec<(usize, usize)>,
}

impl<'a> FastUsageParser<'a> {
    /// A parser for `period`, with the file's layout; `known` tells whether a subscription is in the channel
    /// (a row of any other subscription is an `unknown_subscription` error naming its line).
    pub fn new(
        layout: UsageLayout,
        period: Period,
        source: &'a str,
        known: &'a (dyn Fn(&str) -> bool + Sync),
    ) -> Self {
        Self {
            layout,
            source,
            known,
            accumulator: UsageAccumulator::new(period),
            spellings: HashMap::new(),
            fields: Vec::with_capacity(layout.fields + 1),
        }
    }

    /// The accumulator so far.
    pub fn accumulator(&self) -> &UsageAccumulator {
        &self.accumulator
    }

    /// The accumulator, to merge or finish.
    pub fn into_accumulator(self) -> UsageAccumulator {
        self.accumulator
    }

    /// Take a block of whole records whose first line is line `first_line` of the file (the header is line
    /// 1). Stops at the first bad record with an error naming its line; rows before it are kept.
    pub fn feed(&mut self, block: &[u8], first_line: u64) -> Result<(), CmsError> {
        let mut line = first_line;
        let mut start = 0;
        while start < block.len() {
            let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |offset| start + offset);
            let mut record = &block[start..end];
            if memchr::memchr(b'"', record).is_some() {
                // A quoted field may hold newlines: take lines until the quotes balance.
                let mut record_end = end;
                while memchr::memchr_iter(b'"', &block[start..record_end]).count() % 2 == 1
                    && record_end < block.len()
                {
                    record_end = memchr::memchr(b'\n', &block[record_end + 1..])
                        .map_or(block.len(), |offset| record_end + 1 + offset);
                }
                let text = &block[start..record_end];
                self.slow_record(text, line)?;
                line += memchr::memchr_iter(b'\n', text).count() as u64 + 1;
                start = record_end + 1;
                continue;
            }
            if let [head @ .., b'\r'] = record {
                record = head;
            }
            if !record.is_empty() && !self.fast_record(record, line)? {
                self.slow_record(record, line)?;
            }
            line += 1;
            start = end + 1;
        }
        Ok(())
    }

    /// The common row; `Ok(false)` when the line needs the simple path.
    fn fast_record(&mut self, record: &[u8], line: u64) -> Result<bool, CmsError> {
        self.fields.clear();
        let mut field_start = 0;
        for comma in memchr::memchr_iter(b',', record) {
            self.fields.push((field_start, comma));
            field_start = comma + 1;
            if self.fields.len() > self.layout.fields {
                return Ok(false);
            }
        }
        self.fields.push((field_start, record.len()));
        if self.fields.len() != self.layout.fields {
            return Ok(false);
        }
        let field: [&[u8]; 7] = std::array::from_fn(|index| {
            let (from, to) = self.fields[self.layout.columns[index]];
            &record[from..to]
        });
        let (subscription, resource, location) = (field[0], field[5], field[6]);
        if subscription.is_empty() || is_padded(subscription) || is_padded(resource) || is_padded(location) {
            return Ok(false);
        }
        let Ok(meter) = MeterId::parse_bytes(field[1]) else { return Ok(false) };
        let (Some(start), Some(end), Some(micros)) =
            (parse_timestamp_seconds(field[2]), parse_timestamp_seconds(field[3]), parse_micros(field[4]))
        else {
            return Ok(false);
        };
        let at = || Location::line(self.source, line);
        let series = if let Some(&series) = self.spellings.get(&SpellingRef { subscription, meter, resource })
        {
            series
        } else {
            let (Ok(subscription_text), Ok(resource_text), Ok(location_text)) = (
                std::str::from_utf8(subscription),
                std::str::from_utf8(resource),
                std::str::from_utf8(location),
            ) else {
                return Ok(false);
            };
            if !(self.known)(subscription_text) {
                return Err(CmsError::UnknownSubscription {
                    at: at(),
                    subscription: subscription_text.to_owned(),
                });
            }
            let series = self.accumulator.series(subscription_text, meter, resource_text, location_text);
            let spelling = Spelling { subscription: subscription.into(), meter, resource: resource.into() };
            self.spellings.insert(spelling, series);
            series
        };
        self.accumulator.ingest_micros(series, start, end, micros, at)?;
        Ok(true)
    }

    /// One record through the simple path's rules.
    fn slow_record(&mut self, text: &[u8], line: u64) -> Result<(), CmsError> {
        let at = || Location::line(self.source, line);
        let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(text);
        let mut record = csv::ByteRecord::new();
        let found =
            reader.read_byte_record(&mut record).map_err(|error| match csv_error(self.source, &error) {
                CmsError::BadRecord { reason, .. } => CmsError::BadRecord { at: at(), reason },
                other => other,
            })?;
        if !found {
            return Ok(());
        }
        if record.len() != self.layout.fields {
            return Err(CmsError::BadRecord {
                at: at(),
                reason: format!("{} fields where the header has {}", record.len(), self.layout.fields),
            });
        }
        let fields = std::array::from_fn(|index| record.get(self.layout.columns[index]).unwrap_or_default());
        let row = usage_row(fields, &at)?;
        if !(self.known)(row.subscription) {
            return Err(CmsError::UnknownSubscription {
                at: at(),
                subscription: row.subscription.to_owned(),
            });
        }
        self.accumulator.ingest(&row, at).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::money::parse_decimal;
    use crate::rating::to_micros;

    #[test]
    fn micro_units_by_hand() {
        assert_eq!(parse_micros(b"261.896630"), Some(261_896_630));
        assert_eq!(parse_micros(b"1"), Some(1_000_000));
        assert_eq!(parse_micros(b"0.5"), Some(500_000));
        for declined in [
            &b""[..],
            b"-1",
            b"+1",
            b"1.",
            b".5",
            b"1e3",
            b"1.0000001",
            b"12345678901234567890",
            b"1,5",
            b" 1",
        ] {
            assert_eq!(parse_micros(declined), None, "{}", String::from_utf8_lossy(declined));
        }
    }

    proptest! {
        /// Whenever the fast quantity parser accepts a text, it agrees exactly with the decimal path.
        #[test]
        fn micros_agree_with_decimals(whole in 0u64..10_000_000_000, fraction in 0u32..1_000_000, digits in 0usize..8) {
            let text = if digits == 0 { whole.to_string() } else {
                let fraction = format!("{fraction:06}");
                let fraction = if digits <= 6 { fraction[..digits].to_owned() } else { format!("{fraction}9") };
                format!("{whole}.{fraction}")
            };
            let exact = parse_decimal(&text).unwrap();
            match parse_micros(text.as_bytes()) {
                Some(micros) => prop_assert_eq!(Some(micros), to_micros(exact)),
                None => prop_assert!(digits > 6 || text.len() > 18),
            }
        }

        /// Cutting anywhere then extending to whole records never splits a record, quotes included.
        #[test]
        fn whole_records_cut_between_records(
            rows in proptest::collection::vec(("[a-z]{0,5}", any::<bool>(), "[a-z\n,]{0,6}"), 1..20),
            cut in 0usize..400,
        ) {
            let mut text = String::new();
            let mut ends = vec![0];
            for (plain, quoted, inner) in &rows {
                if *quoted { text += &[plain.as_str(), ",\"", inner, "\"\n"].concat() } else { text += &[plain.as_str(), ",x\n"].concat() }
                ends.push(text.len());
            }
            let cut = cut.min(text.len());
            let prefix = whole_records(&text.as_bytes()[..cut]);
            prop_assert!(ends.contains(&prefix), "cut {} gave {} not a record end in {:?}", cut, prefix, ends);
            prop_assert!(prefix <= cut);
            prop_assert!(ends.iter().filter(|&&end| end <= cut).max() == Some(&prefix));
        }
    }
}
