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
//! - lines of the usual file are split by guessing each field's width from the line before, and confirmed
//!   by what the row's checks read (see [`FastUsageParser::feed_unquoted`]); other lines with `memchr`;
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

/// The fields of the usual file ([`USAGE_COLUMNS`] in order) whose width is guessed from the line before:
/// all but the quantity and the location, which are scanned.
const GUESSED: [bool; 6] = [true, true, true, true, false, true];
/// Of those, the fields that only a known spelling vouches for (subscription, resource): when the row's
/// spelling turns out new, its line is found and split again by scanning. The others (meter, times) are
/// checked byte by byte however the row goes.
const SPELLED: [bool; 6] = [true, false, false, false, false, true];

/// A guessed line's fields, and whether a spelled field's width was guessed; `None` when the line does not
/// split into seven fields.
type GuessedFields<'r> = Option<([&'r [u8]; 7], bool)>;

/// One line of the usual file as [`FastUsageParser::split_guessed`] found it: the line is only known to
/// end at `end` once its row is accepted (see [`FastUsageParser::feed_unquoted`]).
#[derive(Clone, Copy)]
struct Guess<'r> {
    start: usize,
    /// The newline that ends the line (or the block's end).
    end: usize,
    line: u64,
    fields: GuessedFields<'r>,
    hash: u64,
}

/// The fast month-end parser of `usage.csv` blocks (see the module documentation).
pub struct FastUsageParser<'a> {
    layout: UsageLayout,
    source: &'a str,
    rows: FastRows<'a>,
    /// For each column of the file, the wanted field it holds ([`USAGE_COLUMNS`] order), if any.
    columns: Vec<Option<usize>>,
    /// The file has exactly the columns of [`USAGE_COLUMNS`], in that order: its lines are split by guessing.
    in_order: bool,
    /// The widths of the fields of the line before (0: none to guess from).
    widths: [usize; 6],
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
                .map(|column| layout.columns.iter().position(|&at| at == column))
                .collect(),
            in_order: layout.fields == 7 && layout.columns == [0, 1, 2, 3, 4, 5, 6],
            widths: [0; 6],
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
        if !needs_csv_reader(block) {
            return self.feed_unquoted(block, first_line);
        }
        let mut line = first_line;
        let mut offset = 0;
        'block: while offset < block.len() {
            let mut record_start = offset;
            for position in
                memchr::memchr3_iter(b'\n', b'"', b'\r', &block[offset..]).map(|found| offset + found)
            {
                match block[position] {
                    // The first half of a `\r\n`: the record ends at its `\n`.
                    b'\r' if block.get(position + 1) == Some(&b'\n') => {}
                    // A line end; a lone `\r` ends a line too, as the simple path reads it.
                    b'\n' | b'\r' => {
                        self.record(&block[record_start..position], line)?;
                        line += 1;
                        record_start = position + 1;
                    }
                    _ => {
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
                        // Every record terminator ends a line, a lone `\r` too, and so does each `\n` inside quotes.
                        line += memchr::memchr_iter(b'\n', text).count() as u64 + 1;
                        offset = record_end + 1;
                        continue 'block;
                    }
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

    /// [`Self::feed`] for a block that [`needs_csv_reader`] passes (no quote, and a `\r` only before a `\n`):
    /// the usual case, and the fast one. Blocks may then be cut at any newline.
    ///
    /// In the usual file, a line is split without looking at most of its bytes: each field's width is guessed
    /// from the line before and confirmed by the comma after it, the quantity and the location are scanned, and
    /// the newline that ends the location ends the line. That end holds once the row is accepted, because then
    /// every byte before it is accounted for: the times, the quantity and the meter are read byte by byte, and
    /// the subscription and resource equal a spelling taken from a line split by scanning (so none holds a
    /// newline). A row that is not accepted so (a new spelling under a guessed width, a value the fast
    /// readers decline, a line that does not split) has its line found by searching for its newline, and goes
    /// through [`Self::record`]; if that line ends elsewhere than guessed, the lines after it are split again.
    ///
    /// Lines go [`GROUP_LINES`] at a time: all are split and their spellings hashed and brought into the CPU
    /// caches together (see `formats::key_index`), then each is checked and stored in order, exactly as one
    /// at a time. Files with other columns have each line found by searching for its newline.
    pub fn feed_unquoted(&mut self, block: &[u8], first_line: u64) -> Result<u64, CmsError> {
        let mut line = first_line;
        let mut start = 0;
        if !self.in_order {
            while start < block.len() {
                let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |found| start + found);
                self.record(&block[start..end], line)?;
                line += 1;
                start = end + 1;
            }
            return Ok(line - first_line);
        }
        let mut group: Vec<Guess<'_>> = Vec::with_capacity(GROUP_LINES);
        while start < block.len() {
            group.clear();
            let (mut at, mut number) = (start, line);
            while group.len() < GROUP_LINES && at < block.len() {
                let (end, fields) = self.split_guessed(block, at);
                let hash = fields.map_or(0, |(fields, _)| self.rows.spelling_hash(&row_bytes(&fields)));
                group.push(Guess { start: at, end, line: number, fields, hash });
                number += 1;
                at = end + 1;
            }
            self.rows.touch_all(group.iter().filter(|guess| guess.fields.is_some()).map(|guess| guess.hash));
            (start, line) = (at, number);
            for guess in &group {
                if let Some((fields, guessed)) = guess.fields
                    && self.fast_fields(guess.line, &fields, guessed, guess.hash)?
                {
                    continue;
                }
                let end = memchr::memchr(b'\n', &block[guess.start..])
                    .map_or(block.len(), |found| guess.start + found);
                self.record(&block[guess.start..end], guess.line)?;
                if end != guess.end {
                    // The guessed line was not the line: split again from the real one's end.
                    (start, line) = (end + 1, guess.line + 1);
                    break;
                }
            }
        }
        Ok(line - first_line)
    }

    /// The line of the usual file that starts at `start` in `bytes`, split by guessing (see
    /// [`Self::feed_unquoted`]): where it seems to end, and its fields with whether a spelled field's width
    /// was guessed (`None` when it does not split into seven fields: the caller then finds the line by its
    /// newline). Scans stop at the first comma or newline, so no line costs more than its own bytes.
    #[inline]
    fn split_guessed<'r>(&mut self, bytes: &'r [u8], start: usize) -> (usize, GuessedFields<'r>) {
        let mut fields: [&[u8]; 7] = [&[]; 7];
        let mut from = start;
        let mut guessed_spelled = false;
        for index in 0..6 {
            let width = self.widths[index];
            let end = if GUESSED[index] && width > 0 && bytes.get(from + width) == Some(&b',') {
                guessed_spelled |= SPELLED[index];
                from + width
            } else {
                match separator(bytes, from) {
                    Some(at) if bytes[at] == b',' => at,
                    found => return (found.unwrap_or(bytes.len()), None),
                }
            };
            fields[index] = &bytes[from..end];
            self.widths[index] = end - from;
            from = end + 1;
        }
        let end = match separator(bytes, from) {
            Some(at) if bytes[at] == b'\n' => at,
            // A seventh comma: more fields than the header.
            Some(at) => return (at, None),
            None => bytes.len(),
        };
        let location = &bytes[from.min(end)..end];
        fields[6] = if let [head @ .., b'\r'] = location { head } else { location };
        (end, Some((fields, guessed_spelled)))
    }

    /// One record (a whole line, without its newline): split by scanning, through the fast path or the
    /// simple one.
    fn record(&mut self, mut record: &[u8], line: u64) -> Result<(), CmsError> {
        if let [head @ .., b'\r'] = record {
            record = head;
        }
        if record.is_empty() {
            return Ok(());
        }
        let fast = match self.split(record) {
            Some(fields) => {
                let hash = self.rows.spelling_hash(&row_bytes(&fields));
                self.fast_fields(line, &fields, false, hash)?
            }
            None => false,
        };
        if !fast {
            self.slow_record(record, line)?;
        }
        Ok(())
    }

    /// Split a whole line without quotes into the wanted fields, or `None` when its field count differs from
    /// the header's.
    fn split<'r>(&self, record: &'r [u8]) -> Option<[&'r [u8]; 7]> {
        let mut fields: [&[u8]; 7] = [&[]; 7];
        let mut rest = record;
        let last = self.columns.len() - 1;
        for (index, &wanted) in self.columns.iter().enumerate() {
            let field = if index == last {
                if memchr::memchr(b',', rest).is_some() {
                    return None;
                }
                rest
            } else {
                let comma = memchr::memchr(b',', rest)?;
                let field = &rest[..comma];
                rest = &rest[comma + 1..];
                field
            };
            if let Some(wanted) = wanted {
                fields[wanted] = field;
            }
        }
        Some(fields)
    }

    /// The common row, split and its spelling hashed; `Ok(false)` when the line needs to be found by its
    /// newline and split by scanning (a guessed spelled width under a new spelling), or the simple path.
    fn fast_fields(
        &mut self,
        line: u64,
        fields: &[&[u8]; 7],
        guessed: bool,
        hash: u64,
    ) -> Result<bool, CmsError> {
        let source = self.source;
        let at = || Location::line(source, line);
        match self.rows.prepare_hashed(&row_bytes(fields), guessed, hash, at)? {
            Prepared::Ready(ready) => self.rows.store(ready, at).map(|()| true),
            Prepared::Slow | Prepared::Resplit => Ok(false),
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

/// Whether a block of whole records holds a quote or a carriage return that does not end a line: its records
/// then end where the csv crate says (a quoted field may hold newlines, a lone `\r` ends a record), and
/// [`FastUsageParser::feed_unquoted`] cannot take it.
pub fn needs_csv_reader(block: &[u8]) -> bool {
    memchr::memchr2_iter(b'"', b'\r', block).any(|at| block[at] == b'"' || block.get(at + 1) != Some(&b'\n'))
}

/// The first comma or newline of `bytes` at or after `from`. Most fields that are scanned (quantities,
/// locations) are short: the first 16 bytes are compared at once (SSE2 compares and a byte mask, through the
/// `wide` crate), and only a longer field pays for `memchr`'s setup.
#[inline]
fn separator(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    let Some(head) = rest.get(..16) else {
        return memchr::memchr2(b',', b'\n', rest).map(|at| from + at);
    };
    let vector = u8x16::new(<[u8; 16]>::try_from(head).unwrap_or_default());
    let found = (vector.simd_eq(u8x16::splat(b',')) | vector.simd_eq(u8x16::splat(b'\n'))).to_bitmask();
    if found != 0 {
        return Some(from + found.trailing_zeros() as usize);
    }
    memchr::memchr2(b',', b'\n', &rest[16..]).map(|at| from + 16 + at)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::money::parse_decimal;
    use crate::rating::to_micros;

    proptest! {
        /// The separator search finds the first comma or newline where a byte loop does, at any length.
        #[test]
        fn separator_is_the_first_comma_or_newline(
            bytes in proptest::collection::vec(prop_oneof![Just(b','), Just(b'\n'), Just(b'.'), any::<u8>()], 0..64),
            from in 0usize..70,
        ) {
            let expected = bytes.iter().enumerate().skip(from).find(|(_, byte)| matches!(byte, b',' | b'\n')).map(|(at, _)| at);
            prop_assert_eq!(separator(&bytes, from), expected);
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
