//! Header-checked CSV reading: columns are found by name (any order, extra columns ignored), every error
//! names the file and line.
//!
//! Every CSV reader of the crate ([`CsvInput`] and the FOCUS reader) reads through one [`GuardedReader`],
//! which covers three things the csv crate leaves to its caller:
//! - line numbers on CRLF files: the crate counts lines by `\n` and, on `\r\n` (or lone `\r`) record
//!   terminators, gives each record the line of the one before it;
//! - a UTF-8 byte order mark (Azure writes one): the crate strips it only when its first read returns at
//!   least three bytes, otherwise it stays in the first column name;
//! - record size: a record longer than [`MAX_RECORD_BYTES`] is refused, so a hostile file cannot make the
//!   reader buffer without bound.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

use rust_decimal::Decimal;

use crate::error::{CmsError, Location};
use crate::model::money::parse_decimal;

/// The longest record (header or row, in bytes) the CSV readers accept.
pub const MAX_RECORD_BYTES: u64 = 1 << 20;

/// The csv reader's buffer; the size cap allows for what it may have read ahead.
const BUFFER_BYTES: u64 = 64 * 1024;

/// A CSV reader that knows where each wanted column is.
pub struct CsvInput<R: Read> {
    reader: GuardedReader<R>,
    columns: Vec<usize>,
    record: csv::ByteRecord,
    line: u64,
}

/// A csv reader over guarded input: byte order mark dropped, record terminators normalised so that line
/// numbers are right on CRLF files, and each record capped at [`MAX_RECORD_BYTES`]. The first record is
/// the header.
pub struct GuardedReader<R: Read> {
    reader: csv::Reader<GuardedInput<R>>,
    /// How many bytes the input may deliver before the current record is declared too long.
    limit: Rc<Cell<u64>>,
    /// Set by the input when it refused a read for going past `limit`.
    tripped: Rc<Cell<bool>>,
    source: String,
}

impl<R: Read> GuardedReader<R> {
    /// Wrap `input`; `source` names it in errors.
    pub fn new(input: R, source: &str) -> Self {
        let limit = Rc::new(Cell::new(record_limit(0)));
        let tripped = Rc::new(Cell::new(false));
        let guarded = GuardedInput::new(input, Rc::clone(&limit), Rc::clone(&tripped));
        let reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .buffer_capacity(usize::try_from(BUFFER_BYTES).unwrap_or(8 * 1024))
            .from_reader(guarded);
        Self { reader, limit, tripped, source: source.to_owned() }
    }

    /// The header record (line 1), read on the first call.
    pub fn header(&mut self) -> Result<&csv::ByteRecord, CmsError> {
        let Self { reader, tripped, source, .. } = self;
        reader.byte_headers().map_err(|error| guarded_error(source, tripped, &error, 1))
    }

    /// Read the next row into `record` (reading the header first if [`Self::header`] was not called);
    /// returns its 1-based line, or `None` at the end of the input.
    ///
    /// Errors: `bad_record` for invalid UTF-8, a wrong number of fields, bad quoting or a record longer
    /// than [`MAX_RECORD_BYTES`] (named by the line it starts on); `io` when the input fails.
    pub fn read(&mut self, record: &mut csv::ByteRecord) -> Result<Option<u64>, CmsError> {
        // The header gets its own limit rather than sharing one with the first row.
        self.header()?;
        let start = self.reader.position().clone();
        self.limit.set(record_limit(start.byte()));
        match self.reader.read_byte_record(record) {
            Ok(true) => Ok(Some(record.position().map_or(start.line(), csv::Position::line))),
            Ok(false) => Ok(None),
            Err(error) => Err(guarded_error(&self.source, &self.tripped, &error, start.line())),
        }
    }

    /// The source name.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// A read error: a record too long when the guard tripped (at `line`, where the record starts), otherwise
/// the csv crate's error.
fn guarded_error(source: &str, tripped: &Cell<bool>, error: &csv::Error, line: u64) -> CmsError {
    if tripped.get() {
        CmsError::BadRecord {
            at: Location::line(source, line),
            reason: format!("record longer than {MAX_RECORD_BYTES} bytes"),
        }
    } else {
        csv_error(source, error)
    }
}

/// Where each name of `wanted` sits in a header record (names compared trimmed, ignoring ASCII case).
pub fn column_positions(
    header: &csv::ByteRecord,
    source: &str,
    wanted: &[&str],
) -> Result<Vec<usize>, CmsError> {
    let names: Vec<String> =
        header.iter().map(|name| String::from_utf8_lossy(name).trim().to_owned()).collect();
    wanted
        .iter()
        .map(|want| {
            names.iter().position(|name| name.eq_ignore_ascii_case(want)).ok_or_else(|| CmsError::BadHeader {
                at: Location::line(source, 1),
                expected: (*want).to_owned(),
                found: names.clone(),
            })
        })
        .collect()
}

/// A field as UTF-8 text, trimmed; `name` is for errors.
pub fn field_text<'a>(bytes: &'a [u8], name: &str, at: &dyn Fn() -> Location) -> Result<&'a str, CmsError> {
    std::str::from_utf8(bytes)
        .map(str::trim)
        .map_err(|_| CmsError::BadRecord { at: at(), reason: format!("{name} is not valid UTF-8") })
}

/// A field as non-empty text.
pub fn field_required<'a>(
    bytes: &'a [u8],
    name: &str,
    at: &dyn Fn() -> Location,
) -> Result<&'a str, CmsError> {
    let text = field_text(bytes, name, at)?;
    if text.is_empty() {
        return Err(CmsError::BadRecord { at: at(), reason: format!("{name} is empty") });
    }
    Ok(text)
}

/// A field as an exact decimal.
pub fn field_decimal(bytes: &[u8], name: &str, at: &dyn Fn() -> Location) -> Result<Decimal, CmsError> {
    let text = field_text(bytes, name, at)?;
    parse_decimal(text).ok_or_else(|| CmsError::BadDecimal {
        at: at(),
        field: name.to_owned(),
        text: text.to_owned(),
    })
}

impl<R: Read> CsvInput<R> {
    /// Open a CSV stream whose header must contain every name of `wanted`.
    pub fn new(input: R, source: &str, wanted: &[&str]) -> Result<Self, CmsError> {
        let mut reader = GuardedReader::new(input, source);
        let columns = column_positions(reader.header()?, source, wanted)?;
        Ok(Self { reader, columns, record: csv::ByteRecord::new(), line: 1 })
    }

    /// The current record.
    pub fn record(&self) -> &csv::ByteRecord {
        &self.record
    }

    /// The positions of the wanted columns.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }

    /// The source name.
    pub fn source(&self) -> &str {
        self.reader.source()
    }

    /// Advance to the next record; `false` at the end.
    pub fn next_record(&mut self) -> Result<bool, CmsError> {
        match self.reader.read(&mut self.record)? {
            Some(line) => {
                self.line = line;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The 1-based line of the current record (1, the header, before the first [`Self::next_record`]).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Where the current record is.
    pub fn location(&self) -> Location {
        Location::line(self.source(), self.line)
    }

    /// The bytes of wanted column `index` (its position in `wanted`) in the current record.
    pub fn bytes(&self, index: usize) -> &[u8] {
        self.record.get(self.columns[index]).unwrap_or_default()
    }

    /// Wanted column `index` as UTF-8 text (trimmed); `name` is for errors.
    pub fn text(&self, index: usize, name: &str) -> Result<&str, CmsError> {
        field_text(self.bytes(index), name, &|| self.location())
    }

    /// Wanted column `index` as non-empty text.
    pub fn required(&self, index: usize, name: &str) -> Result<&str, CmsError> {
        field_required(self.bytes(index), name, &|| self.location())
    }

    /// Wanted column `index` as an exact decimal.
    pub fn decimal(&self, index: usize, name: &str) -> Result<Decimal, CmsError> {
        field_decimal(self.bytes(index), name, &|| self.location())
    }
}

/// Map a csv crate error to ours, with the line where the reader stopped.
pub fn csv_error(source: &str, error: &csv::Error) -> CmsError {
    let line = error.position().map_or(0, csv::Position::line);
    match error.kind() {
        csv::ErrorKind::Io(io) => CmsError::Io { at: Location::whole(source), message: io.to_string() },
        csv::ErrorKind::Utf8 { .. } => {
            CmsError::BadRecord { at: Location::line(source, line), reason: "invalid UTF-8".into() }
        }
        csv::ErrorKind::UnequalLengths { expected_len, len, .. } => CmsError::BadRecord {
            at: Location::line(source, line),
            reason: format!("{len} fields where the header has {expected_len}"),
        },
        _ => CmsError::BadRecord { at: Location::line(source, line), reason: error.to_string() },
    }
}

/// How many bytes the reader may have taken from the input once the record starting at `start` is read.
fn record_limit(start: u64) -> u64 {
    // Two bytes of slack for a CRLF terminator after a record of exactly the maximum length.
    start.saturating_add(MAX_RECORD_BYTES + 2 + BUFFER_BYTES)
}

/// Wraps the input for the csv reader:
/// - drops a UTF-8 byte order mark (Azure writes one; the csv crate strips it only from a first read of
///   three bytes or more, and otherwise keeps it in the first column name);
/// - turns record terminators (`\r\n`, lone `\r`) into `\n`, leaving line breaks inside quoted fields as
///   they are: the csv crate counts lines by `\n` and, on CRLF input, would give each record the line
///   of the one before it;
/// - fails once more bytes are asked for than the current record may span (the limit moves forward after
///   each record), so the csv reader never buffers more than one maximal record.
struct GuardedInput<R> {
    inner: R,
    delivered: u64,
    limit: Rc<Cell<u64>>,
    tripped: Rc<Cell<bool>>,
    sniffed: bool,
    prefix: [u8; 3],
    prefix_start: usize,
    prefix_end: usize,
    state: LineState,
}

/// Where the line-end normaliser is, with the csv parser's quoting rules (a quote opens a quoted field
/// only at the start of a field; `""` inside one is a literal quote).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineState {
    FieldStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
    AfterCarriageReturn,
}

impl<R: Read> GuardedInput<R> {
    fn new(inner: R, limit: Rc<Cell<u64>>, tripped: Rc<Cell<bool>>) -> Self {
        Self {
            inner,
            delivered: 0,
            limit,
            tripped,
            sniffed: false,
            prefix: [0; 3],
            prefix_start: 0,
            prefix_end: 0,
            state: LineState::FieldStart,
        }
    }

    fn sniff_byte_order_mark(&mut self) -> io::Result<()> {
        self.sniffed = true;
        let mut filled = 0;
        while filled < self.prefix.len() {
            match self.inner.read(&mut self.prefix[filled..]) {
                Ok(0) => break,
                Ok(count) => filled += count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        self.prefix_end = if self.prefix[..filled] == [0xEF, 0xBB, 0xBF] { 0 } else { filled };
        Ok(())
    }

    fn read_raw(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.prefix_start < self.prefix_end {
            let count = (self.prefix_end - self.prefix_start).min(buffer.len());
            buffer[..count].copy_from_slice(&self.prefix[self.prefix_start..self.prefix_start + count]);
            self.prefix_start += count;
            Ok(count)
        } else {
            self.inner.read(buffer)
        }
    }

    /// Rewrite `bytes` in place with normalised line ends; returns how many bytes are kept.
    fn normalise(&mut self, bytes: &mut [u8]) -> usize {
        let mut kept = 0;
        for index in 0..bytes.len() {
            let byte = bytes[index];
            let state = if self.state == LineState::AfterCarriageReturn {
                if byte == b'\n' {
                    self.state = LineState::FieldStart;
                    continue;
                }
                LineState::FieldStart
            } else {
                self.state
            };
            let (next, out) = match (state, byte) {
                (LineState::Quoted, b'"') => (LineState::QuoteInQuoted, byte),
                (LineState::Quoted, _) | (LineState::QuoteInQuoted | LineState::FieldStart, b'"') => {
                    (LineState::Quoted, byte)
                }
                (_, b'\r') => (LineState::AfterCarriageReturn, b'\n'),
                (_, b',' | b'\n') => (LineState::FieldStart, byte),
                _ => (LineState::Unquoted, byte),
            };
            self.state = next;
            bytes[kept] = out;
            kept += 1;
        }
        kept
    }
}

impl<R: Read> Read for GuardedInput<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if buffer.is_empty() {
            return Ok(0);
        }
        if !self.sniffed {
            self.sniff_byte_order_mark()?;
        }
        let limit = self.limit.get();
        if self.delivered >= limit {
            self.tripped.set(true);
            return Err(io::Error::other("record too long"));
        }
        let room = usize::try_from(limit - self.delivered).unwrap_or(usize::MAX).min(buffer.len());
        loop {
            let count = self.read_raw(&mut buffer[..room])?;
            if count == 0 {
                return Ok(0);
            }
            // A chunk may shrink to nothing (the `\n` of a `\r\n`); read on rather than report the end.
            let kept = self.normalise(&mut buffer[..count]);
            if kept > 0 {
                self.delivered = self.delivered.saturating_add(u64::try_from(kept).unwrap_or(u64::MAX));
                return Ok(kept);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_input_drops_the_byte_order_mark_and_caps_reads() {
        let limit = Rc::new(Cell::new(5));
        let tripped = Rc::new(Cell::new(false));
        let mut input =
            GuardedInput::new(&b"\xEF\xBB\xBFabcdefgh"[..], Rc::clone(&limit), Rc::clone(&tripped));
        let mut buffer = [0_u8; 16];
        let count = input.read(&mut buffer).unwrap();
        assert_eq!(&buffer[..count], b"abcde");
        assert!(input.read(&mut buffer).is_err());
        assert!(tripped.get());
        limit.set(100);
        let count = input.read(&mut buffer).unwrap();
        assert_eq!(&buffer[..count], b"fgh");

        let mut short = GuardedInput::new(&b"ab"[..], Rc::new(Cell::new(100)), Rc::new(Cell::new(false)));
        let count = short.read(&mut buffer).unwrap();
        assert_eq!(&buffer[..count], b"ab");
        assert_eq!(short.read(&mut buffer).unwrap(), 0);
    }

    /// Reads its bytes a few at a time, to put chunk boundaries everywhere.
    struct Trickle<'a> {
        bytes: &'a [u8],
        sizes: Vec<usize>,
        turn: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.turn % self.sizes.len()].min(buffer.len()).min(self.bytes.len());
            self.turn += 1;
            buffer[..size].copy_from_slice(&self.bytes[..size]);
            self.bytes = &self.bytes[size..];
            Ok(size)
        }
    }

    fn parse(input: impl Read) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(input);
        let mut records = Vec::new();
        let mut record = csv::ByteRecord::new();
        while reader.read_byte_record(&mut record).unwrap() {
            let line = record.position().map_or(0, csv::Position::line);
            records.push((line, record.iter().map(<[u8]>::to_vec).collect()));
        }
        records
    }

    fn guarded(bytes: &[u8], sizes: Vec<usize>) -> GuardedInput<Trickle<'_>> {
        let trickle = Trickle { bytes, sizes, turn: 0 };
        GuardedInput::new(trickle, Rc::new(Cell::new(u64::MAX)), Rc::new(Cell::new(false)))
    }

    #[test]
    fn crlf_records_get_their_own_line() {
        let crlf = b"a,b\r\n1,\"x\r\ny\"\r\n2,z\r\n";
        let lines: Vec<u64> = parse(guarded(crlf, vec![64])).iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [1, 2, 4]);
        let records = parse(guarded(crlf, vec![1]));
        assert_eq!(records[1].1[1], b"x\r\ny", "a line break inside quotes is data");
    }

    proptest::proptest! {
        /// The csv parser sees the same records, field for field, through the normaliser, wherever the chunk
        /// boundaries fall; with `\n` line ends only, the lines are the same too.
        #[test]
        fn normalising_keeps_every_field(
            bytes in proptest::collection::vec(proptest::sample::select(b"ab,\"\r\n".to_vec()), 0..64),
            sizes in proptest::collection::vec(1usize..5, 1..4),
        ) {
            let fields = |records: Vec<(u64, Vec<Vec<u8>>)>| {
                records.into_iter().map(|(_, fields)| fields).collect::<Vec<_>>()
            };
            let through = fields(parse(guarded(&bytes, sizes.clone())));
            proptest::prop_assert_eq!(fields(parse(&bytes[..])), through);
            if !bytes.contains(&b'\r') {
                proptest::prop_assert_eq!(parse(&bytes[..]), parse(guarded(&bytes, sizes)));
            }
        }
    }

    fn lines_and_fields(input: &[u8], wanted: &[&str]) -> Result<Vec<(u64, Vec<String>)>, CmsError> {
        let mut csv = CsvInput::new(input, "t.csv", wanted)?;
        let mut rows = Vec::new();
        while csv.next_record()? {
            let fields = (0..wanted.len()).map(|index| csv.text(index, wanted[index]).map(str::to_owned));
            rows.push((csv.line(), fields.collect::<Result<_, _>>()?));
        }
        Ok(rows)
    }

    #[test]
    fn crlf_input_gives_each_record_its_own_line() {
        let crlf = b"name,qty\r\nalpha,1\r\n\"be\r\nta\",2\r\ngamma,3\r\n";
        let rows = lines_and_fields(crlf, &["name", "qty"]).unwrap();
        let lines: Vec<u64> = rows.iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 3, 5], "the quoted record spans lines 3 and 4");
        assert_eq!(rows[1].1, ["be\r\nta", "2"], "a line break inside quotes is data");

        let lone_carriage_returns = b"name,qty\ralpha,1\rbeta,2\r";
        let rows = lines_and_fields(lone_carriage_returns, &["qty"]).unwrap();
        assert_eq!(rows, [(2, vec!["1".to_owned()]), (3, vec!["2".to_owned()])]);

        let bad = b"name,qty\r\nalpha,1\r\nbeta,1x.5\r\n";
        let mut csv = CsvInput::new(&bad[..], "usage.csv", &["qty"]).unwrap();
        assert!(csv.next_record().unwrap());
        csv.decimal(0, "qty").unwrap();
        assert!(csv.next_record().unwrap());
        let error = csv.decimal(0, "qty").unwrap_err();
        assert_eq!(error.code(), "bad_decimal");
        assert_eq!(error.to_string(), r#"usage.csv line 3: bad decimal "1x.5" in qty"#);
    }

    #[test]
    fn errors_of_the_csv_crate_name_the_right_line_on_crlf_input() {
        let error = lines_and_fields(b"a,b\r\n1,2\r\n3,4\r\n5\r\n", &["a"]).unwrap_err();
        assert_eq!(error.to_string(), "t.csv line 4: bad record: 1 fields where the header has 2");
    }

    #[test]
    fn a_header_after_a_byte_order_mark_is_found_by_name() {
        let file = b"\xEF\xBB\xBFnode_id,kind\r\nt1,tenant\r\n";
        let one_byte_at_a_time = Trickle { bytes: file, sizes: vec![1], turn: 0 };
        let whole = lines_and_fields(file, &["node_id", "kind"]).unwrap();
        let mut csv = CsvInput::new(one_byte_at_a_time, "t.csv", &["node_id", "kind"]).unwrap();
        assert_eq!(csv.columns(), [0, 1]);
        assert!(csv.next_record().unwrap());
        assert_eq!((csv.line(), csv.text(0, "node_id").unwrap()), (2, "t1"));
        assert_eq!(whole, [(2, vec!["t1".to_owned(), "tenant".to_owned()])]);
    }

    #[test]
    fn records_over_the_size_cap_are_refused_at_their_line() {
        let near = usize::try_from(MAX_RECORD_BYTES).unwrap() - 4096;
        let fits = format!("id,note\r\n1,{}\r\n", "n".repeat(near));
        let rows = lines_and_fields(fits.as_bytes(), &["note"]).unwrap();
        assert_eq!((rows[0].0, rows[0].1[0].len()), (2, near));

        let over = format!("id,note\r\n1,ok\r\n2,\"{}\"\r\n3,ok\r\n", "n".repeat(2 << 20));
        let error = lines_and_fields(over.as_bytes(), &["note"]).unwrap_err();
        assert_eq!(error.code(), "bad_record");
        assert_eq!(
            error.to_string(),
            format!("t.csv line 3: bad record: record longer than {MAX_RECORD_BYTES} bytes")
        );

        let long_header = format!("id,{}\n1,2\n", "h".repeat(2 << 20));
        let Err(error) = CsvInput::new(long_header.as_bytes(), "t.csv", &["id"]) else {
            panic!("a header over the cap is refused")
        };
        assert_eq!(
            error.to_string(),
            format!("t.csv line 1: bad record: record longer than {MAX_RECORD_BYTES} bytes")
        );
    }

    #[test]
    fn guarded_reader_reads_the_header_before_the_first_row() {
        let mut reader = GuardedReader::new(&b"a,b\r\n1,2\r\n"[..], "t.csv");
        let mut record = csv::ByteRecord::new();
        assert_eq!(reader.read(&mut record).unwrap(), Some(2));
        assert_eq!(&record, vec!["1", "2"]);
        assert_eq!(reader.header().unwrap(), &vec!["a", "b"]);
        assert_eq!(reader.read(&mut record).unwrap(), None);
    }
}
