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

use std::io::Read;

use wide::u8x16;

use crate::error::{CmsError, Location};
use crate::formats::csv_input::{
    CsvInput, column_positions, csv_error, field_decimal, field_required, field_text,
};
pub use crate::formats::fast_rows::parse_micros;
use crate::formats::fast_rows::{FastRows, Prepared, RowBytes};
use crate::model::meter::MeterId;
use crate::model::time::{Period, parse_timestamp_seconds};
use crate::model::usage::UsageRow;
use crate::rating::UsageAccumulator;

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

/// Wanted fields whose every byte the fast path checks (meter, times, quantity): a comma cannot hide in
/// them, so their width can be guessed from the row before and confirmed by one byte.
const CHECKED_FIELDS: [usize; 4] = [1, 2, 3, 4];
/// Wanted fields a known spelling vouches for (subscription, resource): a guessed width is trusted only when
/// the row's spelling is found; a new spelling is split again by scanning.
const SPELLED_FIELDS: [usize; 2] = [0, 5];

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

/// The length of the first record of `buffer` (its terminator included) as the csv crate reads it, or `None`
/// when `buffer` ends before the record does. Quotes are followed exactly as the csv crate follows them,
/// malformed ones included.
pub fn first_record(buffer: &[u8]) -> Option<usize> {
    let mut reader = csv_core::Reader::new();
    let (mut output, mut ends) = ([0u8; 4096], [0usize; 64]);
    let mut consumed = 0;
    loop {
        if consumed == buffer.len() {
            // Input ran out inside the record (an empty input would tell the reader the file ended).
            return None;
        }
        let (result, read, _, _) = reader.read_record(&buffer[consumed..], &mut output, &mut ends);
        consumed += read;
        match result {
            csv_core::ReadRecordResult::Record => return Some(consumed),
            csv_core::ReadRecordResult::End => return None,
            // The field bytes are not needed: the scratch buffers are reused.
            csv_core::ReadRecordResult::InputEmpty
            | csv_core::ReadRecordResult::OutputFull
            | csv_core::ReadRecordResult::OutputEndsFull => {}
        }
    }
}

/// The length of the longest prefix of `buffer` that holds only whole records, as the csv crate reads them
/// (quotes included). `buffer` must start at a record boundary. Returns 0 when no record ends in it.
pub fn whole_records(buffer: &[u8]) -> usize {
    if memchr::memchr(b'"', buffer).is_none() {
        return memchr::memrchr(b'\n', buffer).map_or(0, |newline| newline + 1);
    }
    let mut end = 0;
    while let Some(length) = first_record(&buffer[end..]) {
        let terminator = end + length - 1;
        match buffer[terminator] {
            // A `\r` at the very end may be the first half of a `\r\n`: not known to be whole yet.
            b'\r' if terminator + 1 == buffer.len() => break,
            // Keep a `\r\n` together: a block never starts with the `\n` of the record before it.
            b'\r' if buffer[terminator + 1] == b'\n' => end = terminator + 2,
            b'\n' | b'\r' => end = terminator + 1,
            // Cut short by the end of the buffer: not whole.
            _ => break,
        }
    }
    end
}

/// Lines split and looked up together by [`FastUsageParser::feed_unquoted`]: enough for their memory waits to
/// overlap, few enough that their fields stay in the first-level cache.
const GROUP_LINES: usize = 32;

/// A split line's fields, in [`USAGE_COLUMNS`] order, as the row the fast path checks.
fn row_bytes<'r>(fields: &[&'r [u8]; 7]) -> RowBytes<'r> {
    RowBytes {
        subscription: fields[0],
        meter: fields[1],
        start: fields[2],
        end: fields[3],
        quantity: fields[4],
        resource: fields[5],
        location: fields[6],
    }
}

/// One column of the file, as the fast path splits it.
#[derive(Debug, Clone, Copy)]
struct Column {
    /// The wanted field it holds ([`USAGE_COLUMNS`] order), if any.
    wanted: Option<usize>,
    /// Its width is remembered to guess the next row's: a checked or spelled field.
    measured: bool,
    /// A spelled field: its guessed width is trusted only when the row's spelling is known.
    spelled: bool,
    /// Its width in the row before (0: none to guess from).
    width: usize,
}

/// The fast month-end parser of `usage.csv` blocks (see the module documentation).
pub struct FastUsageParser<'a> {
    layout: UsageLayout,
    source: &'a str,
    rows: FastRows<'a>,
    /// For each column of the file: the wanted field it holds, if any, and how its width is guessed.
    columns: Vec<Column>,
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
            rows: FastRows::new(period, known),
            columns: (0..layout.fields)
                .map(|column| {
                    let wanted = layout.columns.iter().position(|&at| at == column);
                    let is = |set: &[usize]| wanted.is_some_and(|wanted| set.contains(&wanted));
                    Column {
                        wanted,
                        measured: is(&CHECKED_FIELDS) || is(&SPELLED_FIELDS),
                        spelled: is(&SPELLED_FIELDS),
                        width: 0,
                    }
                })
                .collect(),
        }
    }

    /// The accumulator, every row applied, to merge or finish.
    pub fn into_accumulator(self) -> UsageAccumulator {
        self.rows.into_accumulator()
    }

    /// Take a block of whole records whose first line is line `first_line` of the file (the header is line
    /// 1); returns the number of lines it held. Stops at the first bad record with an error naming its line;
    /// rows before it are kept.
    pub fn feed(&mut self, block: &[u8], first_line: u64) -> Result<u64, CmsError> {
        if memchr::memchr(b'"', block).is_none() {
            return self.feed_unquoted(block, first_line);
        }
        let mut line = first_line;
        let mut offset = 0;
        'block: while offset < block.len() {
            let mut record_start = offset;
            for position in memchr::memchr2_iter(b'\n', b'"', &block[offset..]).map(|found| offset + found) {
                if block[position] == b'\n' {
                    self.record(&block[record_start..position], line)?;
                    line += 1;
                    record_start = position + 1;
                } else {
                    // A quoted field may hold commas and newlines: the record ends where the csv crate says it
                    // does.
                    let record_end = match first_record(&block[record_start..]) {
                        Some(length) => {
                            // The terminator; a `\r\n` ends at its `\n`.
                            let end = record_start + length - 1;
                            if block[end] == b'\r' && block.get(end + 1) == Some(&b'\n') {
                                end + 1
                            } else {
                                end
                            }
                        }
                        None => block.len(),
                    };
                    let text = &block[record_start..record_end];
                    self.slow_record(text, line)?;
                    line += memchr::memchr_iter(b'\n', text).count() as u64 + 1;
                    offset = record_end + 1;
                    continue 'block;
                }
            }
            if record_start < block.len() {
                // The last record of the file, without a newline.
                self.record(&block[record_start..], line)?;
                line += 1;
            }
            break;
        }
        Ok(line - first_line)
    }

    /// [`Self::feed`] for a block the caller knows holds no quote (the usual case, and the fast one: lines
    /// and free-text fields split with SIMD search, checked fields by width). Blocks may then be cut at any
    /// newline.
    ///
    /// Lines go [`GROUP_LINES`] at a time: all are split and their spellings hashed and brought into the CPU
    /// caches together (see `formats::key_index`), then each is checked and stored in order, exactly as one
    /// at a time (a line that needs the simple path, or splitting again, still gets it in its turn).
    pub fn feed_unquoted(&mut self, block: &[u8], first_line: u64) -> Result<u64, CmsError> {
        let mut line = first_line;
        let mut start = 0;
        let mut group = Vec::with_capacity(GROUP_LINES);
        while start < block.len() {
            group.clear();
            while group.len() < GROUP_LINES && start < block.len() {
                let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |found| start + found);
                let mut record = &block[start..end];
                if let [head @ .., b'\r'] = record {
                    record = head;
                }
                let split = if record.is_empty() { None } else { self.split(record, true) };
                let hash = split.map(|(fields, _)| self.rows.spelling_hash(&row_bytes(&fields)));
                group.push((record, line, split, hash));
                line += 1;
                start = end + 1;
            }
            self.rows.touch_all(group.iter().filter_map(|item| item.3));
            for &(record, line, split, hash) in &group {
                if record.is_empty() {
                    continue;
                }
                let fast = match (split, hash) {
                    (Some((fields, guessed)), Some(hash)) => {
                        self.fast_fields(record, line, &fields, guessed, hash)?
                    }
                    _ => false,
                };
                if !fast {
                    self.slow_record(record, line)?;
                }
            }
        }
        Ok(line - first_line)
    }

    /// One record (without its newline).
    fn record(&mut self, mut record: &[u8], line: u64) -> Result<(), CmsError> {
        if let [head @ .., b'\r'] = record {
            record = head;
        }
        if record.is_empty() {
            return Ok(());
        }
        if !self.fast_record(record, line, true)? {
            self.slow_record(record, line)?;
        }
        Ok(())
    }

    /// Split a record without quotes into the wanted fields, or `None` when its field count differs from the
    /// header's. A checked field's width is guessed from the row before and confirmed by the comma after it
    /// (its bytes are all checked later, so no comma hides inside); other fields are scanned for their comma.
    ///
    /// With `guess_spelled`, the subscription and resource widths are guessed too; the second value says
    /// whether such a guess was used, so the caller can split again when the spelling turns out new.
    fn split<'r>(&mut self, record: &'r [u8], guess_spelled: bool) -> Option<([&'r [u8]; 7], bool)> {
        let mut fields: [&[u8]; 7] = [&[]; 7];
        let mut start = 0;
        let mut guessed_spelled = false;
        let last = self.layout.fields - 1;
        for (index, column) in self.columns.iter_mut().enumerate() {
            let end = if index == last {
                if comma(&record[start..]).is_some() {
                    return None;
                }
                record.len()
            } else {
                let guess = start + column.width;
                if column.width > 0 && (guess_spelled || !column.spelled) && record.get(guess) == Some(&b',')
                {
                    guessed_spelled |= column.spelled;
                    guess
                } else {
                    start + comma(record.get(start..)?)?
                }
            };
            if let Some(wanted) = column.wanted {
                fields[wanted] = &record[start..end];
                if column.measured {
                    column.width = end - start;
                }
            }
            start = end + 1;
        }
        Some((fields, guessed_spelled))
    }

    /// The common row; `Ok(false)` when the line needs the simple path.
    fn fast_record(&mut self, record: &[u8], line: u64, guess_spelled: bool) -> Result<bool, CmsError> {
        let Some((fields, guessed)) = self.split(record, guess_spelled) else { return Ok(false) };
        let hash = self.rows.spelling_hash(&row_bytes(&fields));
        self.fast_fields(record, line, &fields, guessed, hash)
    }

    /// [`Self::fast_record`] once the line is split and its spelling hashed.
    fn fast_fields(
        &mut self,
        record: &[u8],
        line: u64,
        fields: &[&[u8]; 7],
        guessed: bool,
        hash: u64,
    ) -> Result<bool, CmsError> {
        let source = self.source;
        let at = || Location::line(source, line);
        match self.rows.prepare_hashed(&row_bytes(fields), guessed, hash, at)? {
            Prepared::Ready(ready) => self.rows.store(ready, at).map(|()| true),
            Prepared::Slow => Ok(false),
            // A new spelling cannot vouch for a guessed width: split this row by scanning.
            Prepared::Resplit => self.fast_record(record, line, false),
        }
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
        if !self.rows.known(row.subscription) {
            return Err(CmsError::UnknownSubscription {
                at: at(),
                subscription: row.subscription.to_owned(),
            });
        }
        self.rows.accumulator().ingest(&row, at).map(drop)
    }
}

/// The first comma of a field's bytes. Most fields that are searched (quantities, locations) are short: their
/// first 16 bytes are compared at once (one SSE2 compare and byte mask, through the `wide` crate), and only a
/// longer field pays for `memchr`'s setup.
fn comma(bytes: &[u8]) -> Option<usize> {
    let Some(head) = bytes.get(..16) else {
        return bytes.iter().position(|&byte| byte == b',');
    };
    let commas =
        u8x16::new(<[u8; 16]>::try_from(head).unwrap_or_default()).simd_eq(u8x16::splat(b',')).to_bitmask();
    if commas != 0 {
        return Some(commas.trailing_zeros() as usize);
    }
    memchr::memchr(b',', &bytes[16..]).map(|at| at + 16)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::money::parse_decimal;
    use crate::rating::to_micros;

    proptest! {
        /// The short-field comma search finds the first comma where a byte loop does, at any length.
        #[test]
        fn comma_is_the_first_comma(bytes in proptest::collection::vec(prop_oneof![Just(b','), Just(b'.'), any::<u8>()], 0..48)) {
            prop_assert_eq!(comma(&bytes), bytes.iter().position(|&byte| byte == b','));
        }
    }

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
