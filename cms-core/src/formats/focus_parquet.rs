//! FOCUS 1.2 cost data in Parquet files (cargo feature `parquet`): the format Azure Cost Management
//! (`FocusCost` exports), AWS Data Exports (FOCUS 1.2) and `BigQuery` exports of the Google Cloud FOCUS view
//! write besides CSV.
//!
//! A Parquet file reads into exactly the [`FocusCharge`]s and [`FocusReadSummary`] that the same data as CSV
//! gives [`read_focus_csv`](crate::formats::focus::read_focus_csv): each cell is turned into the text a CSV
//! export carries, and that row goes through the CSV reader's own validation (column matching, mandatory
//! columns, allowed values, exact decimals, UTC instants, key-value JSON, `x_` columns). So every rule of
//! [`focus`](crate::formats::focus) holds here too.
//!
//! # Columns
//!
//! The header is the file's top-level fields, by name. Only FOCUS 1.2 columns and `x_` columns are decoded;
//! the others are listed in [`FocusReadSummary::ignored_columns`] and never read. Cells become text as follows:
//!
//! - null (and an empty string) is null;
//! - strings as they are; binary values must be UTF-8 (else `bad_record`, as for a CSV cell);
//! - `DECIMAL(p, s)` (`INT32`, `INT64`, fixed or variable length bytes, up to 64 bytes) exactly, with `s`
//!   decimal places (`4.6080000000`); trailing zeros past the 28 places a [`Decimal`](crate::Decimal) holds are
//!   dropped, and a value that needs more is refused, as in CSV;
//! - `DOUBLE` and `FLOAT` (AWS and some Azure exports write costs as doubles) through their shortest
//!   round-trip decimal text, the digits a CSV export of the same file prints (`0.0416`, `1.5E-7` as
//!   `0.00000015`): the exact decimal those digits spell, never the binary fraction's expansion nor arithmetic
//!   on the float. NaN and infinities are refused (`bad_decimal`) in decimal columns;
//! - timestamps (`INT64` millis, micros or nanos, adjusted to UTC or not; legacy `INT96`) as UTC instants:
//!   FOCUS date-times are UTC, so a timestamp not adjusted to UTC is read as UTC wall time. As in CSV, a
//!   non-zero fraction of a second is refused (`bad_timestamp`);
//! - integers and booleans as their text; dates as `YYYY-MM-DD`;
//! - maps, lists and structs as compact JSON (keys in file order): AWS writes `Tags` and `x_` columns as
//!   `MAP<STRING, STRING>` and `BigQuery` repeated records as lists of structs, which read like the JSON text
//!   of the CSV exports.
//!
//! # Errors
//!
//! Row errors carry the file and the 0-based row index ([`Location::record`]: `aws.parquet record 12`) and
//! name the column, with the codes of the CSV reader. A file that is not Parquet, is truncated or corrupt,
//! uses a codec this build lacks, or is encrypted is a `bad_record` error on the whole file (or on the row
//! being decoded), never a panic: the parquet crate's row API panics on some malformed input (it has
//! `unimplemented!` and `expect` paths), so every call into it runs under [`catch_unwind`] and a panic
//! becomes that error (the default panic hook still prints its message to standard error).
//!
//! Codecs: uncompressed, snappy, gzip and zstd (see the workspace `Cargo.toml`).
//!
//! # Memory on hostile sizes
//!
//! The parquet crate allocates what a file declares: a page's uncompressed size before decompressing it, a
//! dictionary's value count before decoding it, a statistics value's length before reading it (each up to
//! 2 GiB, Parquet sizes being `i32`). So before any row is decoded, every page header of every column chunk
//! the reader will read is scanned (a few bytes each: the Thrift header, not the data), and the file is
//! refused (`bad_record` on the whole file, naming the column, row group and byte offset) when:
//!
//! - a column chunk lies past the end of the file, or a page's compressed size, or a length inside its
//!   header, runs past the end of its column chunk;
//! - a page declares more than [`MAX_PARQUET_PAGE_BYTES`] uncompressed (writers cut pages at about 1 MiB);
//! - a dictionary page declares more values than its uncompressed size can hold (a value takes at least
//!   one bit for booleans, its width for fixed-width types, 4 bytes for byte arrays).
//!
//! The reader then holds at most one page (and one dictionary) per read column at a time, each bounded by
//! those checks. Not bounded by these checks: the value counts that DELTA encodings write inside a page's
//! data (the crate sizes a buffer by them); FOCUS exports of Azure, AWS and Google Cloud use PLAIN and
//! dictionary encodings.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Read as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use chrono::DateTime;
use parquet::basic::{Compression, LogicalType, TimeUnit, Type as PhysicalType};
use parquet::data_type::Decimal as ParquetDecimal;
use parquet::errors::ParquetError;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::reader::{ChunkReader, FileReader, Length, SerializedFileReader};
use parquet::record::{Field, Row};
use parquet::schema::types::Type;

use crate::error::{CmsError, Location};
use crate::formats::focus::{FocusCharge, FocusReadSummary, Layout, RowCells, Tally, charge_of_row, excerpt};

/// The 4 bytes a Parquet file starts and ends with. A FOCUS file that starts with them is Parquet (CSV text
/// cannot: its header starts with a column name).
pub const PARQUET_MAGIC: [u8; 4] = *b"PAR1";

/// The footer of an encrypted Parquet file ends with these instead.
const ENCRYPTED_MAGIC: [u8; 4] = *b"PARE";

/// Magic, footer length, magic: the smallest possible Parquet file.
const MIN_FILE_BYTES: u64 = 12;

/// Widest decimal read (`BigQuery` `BIGNUMERIC` is 32 bytes).
const MAX_DECIMAL_BYTES: usize = 64;

/// The largest uncompressed page decoded, in bytes (see the module documentation). Parquet writers cut
/// pages at about 1 MiB (`parquet-mr`, arrow, `pyarrow`, `BigQuery`); a page far larger is refused before
/// its buffer is allocated.
pub const MAX_PARQUET_PAGE_BYTES: u64 = 64 << 20;

/// Thrift structures nested deeper than this in a page header are refused (a page header nests 3 deep).
const MAX_THRIFT_DEPTH: u32 = 16;

/// Whether a file that begins with `head` is Parquet (its first four bytes are [`PARQUET_MAGIC`]).
pub fn is_parquet(head: &[u8]) -> bool {
    head.starts_with(&PARQUET_MAGIC)
}

/// Read a FOCUS 1.2 Parquet file held in memory, calling `visit` with each row and its location (`source`
/// record N, N the 0-based row index). Stops at the first bad file, row or value, or at the first error
/// `visit` returns.
///
/// Errors: those of [`read_focus_csv`](crate::formats::focus::read_focus_csv) (`bad_header` for a missing
/// mandatory column, `invalid_value`, `bad_decimal`, `bad_timestamp`, `bad_json`, `bad_record`), located by
/// row; `bad_record` on the whole file when it is not a readable Parquet file (see the module
/// documentation).
///
/// ```
/// use cms_core::formats::focus_parquet::{is_parquet, read_focus_parquet};
///
/// // AWS-shaped: DOUBLE costs, gzip, timestamps in milliseconds.
/// let bytes = include_bytes!("../../../tests/data/focus/aws-focus.parquet").to_vec();
/// assert!(is_parquet(&bytes));
/// let mut billed = Vec::new();
/// let summary = read_focus_parquet(bytes, "aws.parquet", |charge, at| {
///     billed.push(format!("{at}: {} {}", charge.billed_cost, charge.billing_currency));
///     Ok(())
/// })?;
/// assert_eq!(billed[0], "aws.parquet record 0: 0.0416 USD");
/// assert_eq!(summary.rows, 5);
/// # Ok::<(), cms_core::CmsError>(())
/// ```
pub fn read_focus_parquet(
    bytes: Vec<u8>,
    source: &str,
    visit: impl FnMut(&FocusCharge, &Location) -> Result<(), CmsError>,
) -> Result<FocusReadSummary, CmsError> {
    read(bytes::Bytes::from(bytes), source, visit)
}

/// Read a FOCUS 1.2 Parquet file the caller opened, as [`read_focus_parquet`] does, without loading it
/// whole: the footer, then one row group's column chunks at a time.
///
/// Errors: as [`read_focus_parquet`]; `io` when the file cannot be read.
pub fn read_focus_parquet_file(
    file: File,
    source: &str,
    visit: impl FnMut(&FocusCharge, &Location) -> Result<(), CmsError>,
) -> Result<FocusReadSummary, CmsError> {
    read(file, source, visit)
}

fn bad_file(source: &str, reason: impl Into<String>) -> CmsError {
    CmsError::BadRecord { at: Location::whole(source), reason: reason.into() }
}

/// Run a call into the parquet crate, turning its error or its panic into a message.
fn guarded<T>(call: impl FnOnce() -> Result<T, ParquetError>) -> Result<T, String> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(error.to_string()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            Err(format!("the Parquet reader failed on malformed data ({})", excerpt(&message)))
        }
    }
}

/// The magic at both ends, checked before the parquet crate parses the footer, for clear errors.
fn check_magic<R: ChunkReader>(input: &R, source: &str) -> Result<(), CmsError> {
    let length = input.len();
    let head = guarded(|| input.get_bytes(0, 4)).map_err(|error| bad_file(source, error))?;
    if !is_parquet(&head) {
        return Err(bad_file(source, "not a Parquet file (it does not start with PAR1)"));
    }
    if length < MIN_FILE_BYTES {
        return Err(bad_file(source, format!("truncated Parquet file ({length} bytes)")));
    }
    let tail = guarded(|| input.get_bytes(length - 4, 4)).map_err(|error| bad_file(source, error))?;
    if tail.as_ref() == ENCRYPTED_MAGIC {
        return Err(bad_file(source, "encrypted Parquet files are not supported"));
    }
    if tail.as_ref() != PARQUET_MAGIC {
        return Err(bad_file(
            source,
            "truncated Parquet file (it does not end with PAR1: the footer is missing)",
        ));
    }
    Ok(())
}

/// How a top-level column's values become text.
#[derive(Clone, Copy)]
enum Kind {
    /// An `INT64` timestamp in this unit (the row API gives nanoseconds as plain integers).
    Timestamp(TimeUnit),
    /// Anything else, by the value's own type.
    Plain,
}

fn kind(field: &Type) -> Kind {
    if !field.is_primitive() {
        return Kind::Plain;
    }
    match field.get_basic_info().logical_type_ref() {
        Some(LogicalType::Timestamp(timestamp)) => Kind::Timestamp(timestamp.unit),
        _ => Kind::Plain,
    }
}

fn read<R: ChunkReader + 'static>(
    input: R,
    source: &str,
    mut visit: impl FnMut(&FocusCharge, &Location) -> Result<(), CmsError>,
) -> Result<FocusReadSummary, CmsError> {
    let input = Shared(Arc::new(input));
    check_magic(&input, source)?;
    let length = input.len();
    let reader = guarded(|| SerializedFileReader::new(input.clone()))
        .map_err(|error| bad_file(source, format!("unreadable Parquet footer: {error}")))?;
    let root = reader.metadata().file_metadata().schema();
    let fields = root.get_fields();
    let names = fields.iter().map(|field| field.name().to_owned()).collect();
    let layout = Layout::new(names, &Location::whole(source))?;
    // Decode only the columns the layout reads: the others may be of any type, and cost nothing.
    let positions: Vec<usize> = (0..fields.len()).filter(|index| layout.is_read(*index)).collect();
    let read_fields: Vec<Arc<Type>> = positions.iter().map(|index| fields[*index].clone()).collect();
    check_chunks(&reader, &input, &read_fields, length, source)?;
    let kinds: Vec<Kind> = read_fields.iter().map(|field| kind(field)).collect();
    let projection = guarded(|| Type::group_type_builder(root.name()).with_fields(read_fields).build())
        .map_err(|error| bad_file(source, format!("unreadable Parquet schema: {error}")))?;
    let mut rows = guarded(|| reader.get_row_iter(Some(projection)))
        .map_err(|error| bad_file(source, format!("unreadable Parquet schema: {error}")))?;
    let mut cells = ParquetCells { cells: vec![Vec::new(); fields.len()] };
    let mut tally = Tally::default();
    let mut index: u64 = 0;
    loop {
        let at = Location::record(source, index);
        let next = guarded(|| rows.next().transpose()).map_err(|error| CmsError::BadRecord {
            at: at.clone(),
            reason: format!("cannot decode the row: {error}"),
        })?;
        let Some(row) = next else { break };
        cells.fill(&row, &positions, &kinds, &at)?;
        let charge = charge_of_row(&cells, &layout, &at)?;
        tally.add(&charge);
        visit(&charge, &at)?;
        index += 1;
    }
    Ok(tally.summary(layout))
}

/// The file, shared by the parquet crate's reader and the page-header scan of [`check_pages`].
struct Shared<R>(Arc<R>);

impl<R> Clone for Shared<R> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<R: Length> Length for Shared<R> {
    fn len(&self) -> u64 {
        self.0.len()
    }
}

impl<R: ChunkReader> ChunkReader for Shared<R> {
    type T = R::T;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        self.0.get_read(start)
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<bytes::Bytes, ParquetError> {
        self.0.get_bytes(start, length)
    }
}

/// Refuse, before decoding, a column chunk compressed with a codec this build lacks, lying past the end of
/// the file, or holding a page whose header declares hostile sizes (see the module documentation), naming
/// the column and row group.
fn check_chunks<R: ChunkReader + 'static>(
    reader: &SerializedFileReader<Shared<R>>,
    input: &Shared<R>,
    read_fields: &[Arc<Type>],
    length: u64,
    source: &str,
) -> Result<(), CmsError> {
    for (group_index, group) in reader.metadata().row_groups().iter().enumerate() {
        for column in group.columns() {
            let path = column.column_path();
            let Some(top) = path.parts().first() else { continue };
            if !read_fields.iter().any(|field| field.name() == top) {
                continue;
            }
            let codec = match column.compression() {
                Compression::UNCOMPRESSED
                | Compression::SNAPPY
                | Compression::GZIP(_)
                | Compression::ZSTD(_) => None,
                Compression::LZO => Some("LZO"),
                Compression::BROTLI(_) => Some("BROTLI"),
                Compression::LZ4 | Compression::LZ4_RAW => Some("LZ4"),
            };
            if let Some(codec) = codec {
                return Err(bad_file(
                    source,
                    format!(
                        "column {} of row group {group_index} is compressed with {codec}; this build reads \
                         uncompressed, SNAPPY, GZIP and ZSTD Parquet",
                        path.string()
                    ),
                ));
            }
            // What `byte_range` computes, without its assertion on negative values.
            let start = column.dictionary_page_offset().unwrap_or_else(|| column.data_page_offset());
            let range = u64::try_from(start).ok().zip(u64::try_from(column.compressed_size()).ok());
            if range.and_then(|(start, size)| start.checked_add(size)).is_none_or(|end| end > length) {
                return Err(bad_file(
                    source,
                    format!(
                        "corrupt Parquet file: column {} of row group {group_index} lies past the end of the file",
                        path.string()
                    ),
                ));
            }
            if let Some((start, size)) = range {
                let chunk = Chunk { start, size, column, group_index };
                check_pages(input, &chunk).map_err(|reason| bad_file(source, reason))?;
            }
        }
    }
    Ok(())
}

/// A column chunk: its byte range in the file, and what names it in messages.
struct Chunk<'a> {
    start: u64,
    size: u64,
    column: &'a ColumnChunkMetaData,
    group_index: usize,
}

/// Walk the page headers of a column chunk (the headers only, not the data) and refuse hostile sizes.
fn check_pages<R: ChunkReader>(input: &Shared<R>, chunk: &Chunk<'_>) -> Result<(), String> {
    let column = chunk.column;
    let name = || format!("column {} of row group {}", column.column_path().string(), chunk.group_index);
    let (mut offset, mut remaining) = (chunk.start, chunk.size);
    while remaining > 0 {
        let read = guarded(|| input.get_read(offset))
            .map_err(|error| format!("corrupt Parquet file: {}: {error}", name()))?;
        let mut thrift = Thrift { input: read, used: 0, limit: remaining };
        let header = thrift.page_header().map_err(|error| {
            format!("corrupt Parquet file: {}: unreadable page header at byte {offset}: {error}", name())
        })?;
        remaining -= thrift.used;
        let at = offset;
        let declared = |what: &str, value: i64, limit: String| {
            format!(
                "corrupt Parquet file: {}: the page at byte {at} declares {what} {value}, {limit}",
                name()
            )
        };
        let compressed =
            u64::try_from(header.compressed).ok().filter(|size| *size <= remaining).ok_or_else(|| {
                let limit = format!("more than the {remaining} bytes left in its column chunk");
                declared("a compressed size of", header.compressed.into(), limit)
            })?;
        let uncompressed = u64::try_from(header.uncompressed)
            .ok()
            .filter(|size| *size <= MAX_PARQUET_PAGE_BYTES)
            .ok_or_else(|| {
                let limit = format!("over the limit of {MAX_PARQUET_PAGE_BYTES} bytes a page may hold");
                declared("an uncompressed size of", header.uncompressed.into(), limit)
            })?;
        if let Some(values) = header.dictionary_values {
            // Bits one value takes at the least.
            let bits = match column.column_type() {
                PhysicalType::BOOLEAN => 1,
                PhysicalType::INT32 | PhysicalType::FLOAT | PhysicalType::BYTE_ARRAY => 32,
                PhysicalType::INT64 | PhysicalType::DOUBLE => 64,
                PhysicalType::INT96 => 96,
                PhysicalType::FIXED_LEN_BYTE_ARRAY => {
                    8 * u64::try_from(column.column_descr().type_length()).unwrap_or(0).max(1)
                }
            };
            let most = uncompressed.saturating_mul(8) / bits;
            if u64::try_from(values).map_or(true, |values| values > most) {
                let limit = format!("more than the {most} its {uncompressed} bytes can hold");
                return Err(declared("a dictionary of", values.into(), limit));
            }
        }
        remaining -= compressed;
        offset += thrift.used + compressed;
    }
    Ok(())
}

/// What [`check_pages`] reads of a page header.
struct PageSizes {
    uncompressed: i32,
    compressed: i32,
    /// `num_values` of a dictionary page header.
    dictionary_values: Option<i32>,
}

/// A reader of the Thrift compact protocol that only walks a page header, reading at most `limit` bytes
/// and allocating nothing for what it skips.
struct Thrift<R> {
    input: R,
    used: u64,
    limit: u64,
}

impl<R: std::io::Read> Thrift<R> {
    fn byte(&mut self) -> Result<u8, String> {
        if self.used >= self.limit {
            return Err("it runs past the end of its column chunk".into());
        }
        let mut byte = [0];
        self.input.read_exact(&mut byte).map_err(|error| error.to_string())?;
        self.used += 1;
        Ok(byte[0])
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0_u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("a variable-length integer of more than 10 bytes".into())
    }

    fn i32(&mut self) -> Result<i32, String> {
        let zigzag = self.varint()?;
        let value = i64::try_from(zigzag >> 1).unwrap_or(i64::MAX) ^ -i64::try_from(zigzag & 1).unwrap_or(0);
        i32::try_from(value).map_err(|_| format!("{value} is not a 32-bit integer"))
    }

    /// Skip `count` bytes, which must lie within the limit.
    fn skip(&mut self, count: u64) -> Result<(), String> {
        if count > self.limit - self.used {
            return Err(format!("a length of {count} bytes runs past the end of its column chunk"));
        }
        let copied = std::io::copy(&mut (&mut self.input).take(count), &mut std::io::sink())
            .map_err(|error| error.to_string())?;
        if copied != count {
            return Err("the file ends inside a page header".into());
        }
        self.used += count;
        Ok(())
    }

    /// Skip a value of compact type `kind` (`in_collection`: a boolean takes a byte of its own).
    fn skip_value(&mut self, kind: u8, in_collection: bool, depth: u32) -> Result<(), String> {
        if depth > MAX_THRIFT_DEPTH {
            return Err("structures nested too deep".into());
        }
        match kind {
            1 | 2 if !in_collection => Ok(()),
            1..=3 => self.skip(1),
            4..=6 => self.varint().map(drop),
            7 => self.skip(8),
            8 => {
                let length = self.varint()?;
                self.skip(length)
            }
            9 | 10 => {
                let header = self.byte()?;
                let count = match header >> 4 {
                    15 => self.varint()?,
                    short => u64::from(short),
                };
                self.skip_elements(count, &[header & 0x0F], depth)
            }
            11 => {
                let count = self.varint()?;
                if count == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                self.skip_elements(count, &[kinds >> 4, kinds & 0x0F], depth)
            }
            12 => self.skip_struct(depth + 1),
            other => Err(format!("unknown Thrift type {other}")),
        }
    }

    fn skip_elements(&mut self, count: u64, kinds: &[u8], depth: u32) -> Result<(), String> {
        // Every element takes a byte at the least.
        if count > self.limit - self.used {
            return Err(format!("a collection of {count} elements runs past the end of its column chunk"));
        }
        for _ in 0..count {
            for kind in kinds {
                self.skip_value(*kind, true, depth + 1)?;
            }
        }
        Ok(())
    }

    /// The next field's id and type, or `None` at the end of a structure.
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, String> {
        let header = self.byte()?;
        let kind = header & 0x0F;
        if kind == 0 {
            return Ok(None);
        }
        let id = match header >> 4 {
            0 => i16::try_from(self.i32()?).map_err(|_| "a field id out of range".to_owned())?,
            delta => last.checked_add(i16::from(delta)).ok_or("a field id out of range")?,
        };
        *last = id;
        Ok(Some((id, kind)))
    }

    fn skip_struct(&mut self, depth: u32) -> Result<(), String> {
        let mut last = 0;
        while let Some((_, kind)) = self.field(&mut last)? {
            self.skip_value(kind, false, depth)?;
        }
        Ok(())
    }

    /// A `PageHeader`: fields 2 and 3 (the sizes), and field 1 of field 7 (the dictionary page header's
    /// `num_values`); everything else skipped.
    fn page_header(&mut self) -> Result<PageSizes, String> {
        let (mut uncompressed, mut compressed, mut dictionary_values) = (None, None, None);
        let mut last = 0;
        while let Some((id, kind)) = self.field(&mut last)? {
            match (id, kind) {
                (2, 5) => uncompressed = Some(self.i32()?),
                (3, 5) => compressed = Some(self.i32()?),
                (7, 12) => {
                    let mut last = 0;
                    while let Some((id, kind)) = self.field(&mut last)? {
                        match (id, kind) {
                            (1, 5) => dictionary_values = Some(self.i32()?),
                            _ => self.skip_value(kind, false, 2)?,
                        }
                    }
                }
                _ => self.skip_value(kind, false, 1)?,
            }
        }
        Ok(PageSizes {
            uncompressed: uncompressed.ok_or("no uncompressed_page_size")?,
            compressed: compressed.ok_or("no compressed_page_size")?,
            dictionary_values,
        })
    }
}

/// One row's cells as text, by header position (columns not read stay null).
struct ParquetCells {
    cells: Vec<Vec<u8>>,
}

impl RowCells for ParquetCells {
    fn cell(&self, index: usize) -> &[u8] {
        self.cells.get(index).map_or(&[], Vec::as_slice)
    }
}

impl ParquetCells {
    fn fill(
        &mut self,
        row: &Row,
        positions: &[usize],
        kinds: &[Kind],
        at: &Location,
    ) -> Result<(), CmsError> {
        if row.len() != positions.len() {
            return Err(CmsError::BadRecord {
                at: at.clone(),
                reason: format!("the row has {} columns, the schema {}", row.len(), positions.len()),
            });
        }
        for ((name, field), (&position, &kind)) in row.get_column_iter().zip(positions.iter().zip(kinds)) {
            let cell = &mut self.cells[position];
            cell.clear();
            let render = Render { column: name, at };
            match (kind, field) {
                (Kind::Timestamp(unit), Field::Long(value)) => {
                    let mut text = String::new();
                    render.instant(*value, unit, &mut text)?;
                    cell.extend_from_slice(text.as_bytes());
                }
                _ => render.value(field, cell)?,
            }
        }
        Ok(())
    }
}

/// Turns one column's values into text, naming the column and row in errors.
struct Render<'a> {
    column: &'a str,
    at: &'a Location,
}

impl Render<'_> {
    fn bad_timestamp(&self, text: String) -> CmsError {
        CmsError::BadTimestamp { at: self.at.clone(), field: self.column.to_owned(), text }
    }

    /// A top-level cell: scalars as CSV text, nested values as JSON.
    fn value(&self, field: &Field, out: &mut Vec<u8>) -> Result<(), CmsError> {
        let mut text = String::new();
        match field {
            Field::Null => {}
            Field::Str(value) => out.extend_from_slice(value.as_bytes()),
            Field::Bytes(value) => out.extend_from_slice(value.data()),
            Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => {
                self.json(field, &mut text)?;
                out.extend_from_slice(text.as_bytes());
            }
            _ => {
                self.scalar(field, &mut text)?;
                out.extend_from_slice(text.as_bytes());
            }
        }
        Ok(())
    }

    /// A primitive value other than null, strings and bytes, as text.
    fn scalar(&self, field: &Field, out: &mut String) -> Result<(), CmsError> {
        // Writing to a String cannot fail: the `fmt::Result`s are ignored.
        let _ = match field {
            Field::Bool(value) => write!(out, "{value}"),
            Field::Byte(value) => write!(out, "{value}"),
            Field::Short(value) => write!(out, "{value}"),
            Field::Int(value) => write!(out, "{value}"),
            Field::Long(value) => write!(out, "{value}"),
            Field::UByte(value) => write!(out, "{value}"),
            Field::UShort(value) => write!(out, "{value}"),
            Field::UInt(value) => write!(out, "{value}"),
            Field::ULong(value) => write!(out, "{value}"),
            // `Display` of a float prints the shortest digits that read back as the same float, in plain
            // notation: the text a CSV export of the value carries.
            Field::Float16(value) => write!(out, "{value}"),
            Field::Float(value) => write!(out, "{value}"),
            Field::Double(value) => write!(out, "{value}"),
            Field::Decimal(value) => {
                self.decimal(value, out)?;
                Ok(())
            }
            Field::Date(days) => {
                let date = DateTime::from_timestamp(i64::from(*days) * 86_400, 0)
                    .ok_or_else(|| self.bad_timestamp(format!("{days} days since 1970-01-01")))?;
                write!(out, "{}", date.format("%Y-%m-%d"))
            }
            Field::TimeMillis(millis) => write!(out, "{}", time_of_day(i64::from(*millis) * 1_000_000)),
            Field::TimeMicros(micros) => write!(out, "{}", time_of_day(micros.saturating_mul(1_000))),
            Field::TimestampMillis(millis) => {
                self.instant(*millis, TimeUnit::MILLIS, out)?;
                Ok(())
            }
            Field::TimestampMicros(micros) => {
                self.instant(*micros, TimeUnit::MICROS, out)?;
                Ok(())
            }
            Field::Null | Field::Str(_) | Field::Bytes(_) => Ok(()),
            Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => {
                return self.json(field, out);
            }
        };
        Ok(())
    }

    /// A timestamp in `unit` since the epoch, as FOCUS date-time text (a fraction only when not zero).
    fn instant(&self, value: i64, unit: TimeUnit, out: &mut String) -> Result<(), CmsError> {
        let (instant, unit_name) = match unit {
            TimeUnit::MILLIS => (DateTime::from_timestamp_millis(value), "milliseconds"),
            TimeUnit::MICROS => (DateTime::from_timestamp_micros(value), "microseconds"),
            TimeUnit::NANOS => (Some(DateTime::from_timestamp_nanos(value)), "nanoseconds"),
        };
        let instant =
            instant.ok_or_else(|| self.bad_timestamp(format!("{value} {unit_name} since 1970-01-01")))?;
        let _ = write!(out, "{}", instant.format("%Y-%m-%dT%H:%M:%S%.fZ"));
        Ok(())
    }

    /// A Parquet decimal as exact plain text with its scale.
    fn decimal(&self, value: &ParquetDecimal, out: &mut String) -> Result<(), CmsError> {
        let bad =
            |text: String| CmsError::BadDecimal { at: self.at.clone(), field: self.column.to_owned(), text };
        let data = value.data();
        if data.len() > MAX_DECIMAL_BYTES {
            return Err(bad(format!("a {}-byte decimal", data.len())));
        }
        let (negative, digits) = twos_complement_digits(data);
        let scale = value.scale();
        if negative {
            out.push('-');
        }
        if scale <= 0 {
            // A negative scale multiplies by a power of ten; the exponent form reads exactly.
            out.push_str(&digits);
            if scale < 0 {
                let _ = write!(out, "E{}", -i64::from(scale));
            }
            return Ok(());
        }
        let scale = usize::try_from(scale).unwrap_or(usize::MAX);
        if scale > MAX_DECIMAL_BYTES * 3 {
            return Err(bad(format!("{digits} with scale {scale}")));
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        // A Decimal holds at most 28 places: zeros past them carry no value.
        let mut fraction = fraction;
        while fraction.len() > 28 && fraction.ends_with('0') {
            fraction = &fraction[..fraction.len() - 1];
        }
        out.push_str(whole);
        if !fraction.is_empty() {
            out.push('.');
            out.push_str(fraction);
        }
        Ok(())
    }

    /// A value as compact JSON (inside maps, lists and structs).
    fn json(&self, field: &Field, out: &mut String) -> Result<(), CmsError> {
        match field {
            Field::Null => out.push_str("null"),
            Field::Bool(value) => out.push_str(if *value { "true" } else { "false" }),
            Field::Str(value) => json_string(value, out),
            Field::Bytes(value) => {
                let text = std::str::from_utf8(value.data()).map_err(|_| CmsError::BadRecord {
                    at: self.at.clone(),
                    reason: format!("{} is not valid UTF-8", self.column),
                })?;
                json_string(text, out);
            }
            Field::Float16(_) | Field::Float(_) | Field::Double(_) => {
                let mut text = String::new();
                self.scalar(field, &mut text)?;
                if text.bytes().all(|byte| byte.is_ascii_digit() || matches!(byte, b'-' | b'.')) {
                    out.push_str(&text);
                } else {
                    json_string(&text, out); // NaN and infinities are not JSON numbers
                }
            }
            Field::Byte(_)
            | Field::Short(_)
            | Field::Int(_)
            | Field::Long(_)
            | Field::UByte(_)
            | Field::UShort(_)
            | Field::UInt(_)
            | Field::ULong(_)
            | Field::Decimal(_) => self.scalar(field, out)?,
            Field::Date(_)
            | Field::TimeMillis(_)
            | Field::TimeMicros(_)
            | Field::TimestampMillis(_)
            | Field::TimestampMicros(_) => {
                let mut text = String::new();
                self.scalar(field, &mut text)?;
                json_string(&text, out);
            }
            Field::Group(row) => {
                out.push('{');
                for (index, (name, value)) in row.get_column_iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    json_string(name, out);
                    out.push(':');
                    self.json(value, out)?;
                }
                out.push('}');
            }
            Field::ListInternal(list) => {
                out.push('[');
                for (index, value) in list.elements().iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    self.json(value, out)?;
                }
                out.push(']');
            }
            Field::MapInternal(map) => {
                out.push('{');
                for (index, (key, value)) in map.entries().iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    let mut key_text = Vec::new();
                    self.value(key, &mut key_text)?;
                    json_string(&String::from_utf8_lossy(&key_text), out);
                    out.push(':');
                    self.json(value, out)?;
                }
                out.push('}');
            }
        }
        Ok(())
    }
}

fn json_string(text: &str, out: &mut String) {
    // Serialising a string to JSON cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_default());
}

/// `HH:MM:SS[.fraction]` of a time of day in nanoseconds.
fn time_of_day(nanos: i64) -> String {
    let seconds = nanos.div_euclid(1_000_000_000);
    let fraction = nanos.rem_euclid(1_000_000_000);
    let mut text = format!(
        "{:02}:{:02}:{:02}",
        seconds.div_euclid(3600),
        seconds.rem_euclid(3600) / 60,
        seconds.rem_euclid(60)
    );
    if fraction != 0 {
        let _ = write!(text, ".{fraction:09}");
        while text.ends_with('0') {
            text.pop();
        }
    }
    text
}

/// The sign and decimal digits of a big-endian two's complement integer of any width.
fn twos_complement_digits(bytes: &[u8]) -> (bool, String) {
    let negative = bytes.first().is_some_and(|first| first & 0x80 != 0);
    // The magnitude, big-endian: the bytes themselves, or their two's complement negation.
    let mut magnitude = bytes.to_vec();
    if negative {
        for byte in &mut magnitude {
            *byte = !*byte;
        }
        for byte in magnitude.iter_mut().rev() {
            let (sum, carry) = byte.overflowing_add(1);
            *byte = sum;
            if !carry {
                break;
            }
        }
    }
    // Repeated division by 10^9 of the base-256 number gives base-10^9 limbs, least significant first.
    let mut limbs: Vec<u32> = Vec::new();
    let mut number: Vec<u8> = magnitude.into_iter().skip_while(|byte| *byte == 0).collect();
    while !number.is_empty() {
        let mut remainder: u64 = 0;
        let mut quotient = Vec::with_capacity(number.len());
        for byte in &number {
            let current = (remainder << 8) | u64::from(*byte);
            let digit = current / 1_000_000_000;
            remainder = current % 1_000_000_000;
            if !(quotient.is_empty() && digit == 0) {
                quotient.push(u8::try_from(digit).unwrap_or(u8::MAX));
            }
        }
        limbs.push(u32::try_from(remainder).unwrap_or(u32::MAX));
        number = quotient;
    }
    let mut digits = limbs.last().map_or_else(|| "0".to_owned(), ToString::to_string);
    for limb in limbs.iter().rev().skip(1) {
        let _ = write!(digits, "{limb:09}");
    }
    (negative, digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twos_complement_of_any_width() {
        let digits = |value: i128| {
            let (negative, digits) = twos_complement_digits(&value.to_be_bytes());
            format!("{}{digits}", if negative { "-" } else { "" })
        };
        for value in
            [0, 1, -1, 127, -128, 1_000_000_000, -1_000_000_001, i128::MAX, i128::MIN, 46_080_000_000]
        {
            assert_eq!(digits(value), value.to_string());
        }
        assert_eq!(twos_complement_digits(&[]), (false, "0".to_owned()));
        assert_eq!(twos_complement_digits(&[0xFF, 0xFF, 0xFF, 0xFE]), (true, "2".to_owned()));
        // 2^256 - 1 in 33 bytes, beyond i128.
        let mut wide = vec![0_u8];
        wide.extend([0xFF; 32]);
        assert_eq!(
            twos_complement_digits(&wide).1,
            "115792089237316195423570985008687907853269984665640564039457584007913129639935"
        );
    }

    fn decimal_text(unscaled: i128, scale: i32) -> Result<String, CmsError> {
        let at = Location::record("f.parquet", 3);
        let render = Render { column: "BilledCost", at: &at };
        let mut out = String::new();
        let value = ParquetDecimal::from_bytes(unscaled.to_be_bytes().to_vec().into(), 38, scale);
        render.decimal(&value, &mut out).map(|()| out)
    }

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(decimal_text(46_080_000_000, 10).unwrap(), "4.6080000000");
        assert_eq!(decimal_text(-15, 8).unwrap(), "-0.00000015");
        assert_eq!(decimal_text(0, 2).unwrap(), "0.00");
        assert_eq!(decimal_text(1250, 0).unwrap(), "1250");
        assert_eq!(decimal_text(125, -1).unwrap(), "125E1");
        // BIGNUMERIC-like: 38 places, zeros past the 28th dropped (the value then reads), others kept (it
        // is then refused as needing more than 28 places).
        assert_eq!(decimal_text(15 * 10_i128.pow(37), 38).unwrap(), format!("1.5{}", "0".repeat(27)));
        assert_eq!(decimal_text(1, 38).unwrap(), "0.00000000000000000000000000000000000001");
        let error = decimal_text(1, 1000).unwrap_err();
        assert_eq!(error.code(), "bad_decimal");
        assert!(error.to_string().starts_with("f.parquet record 3: bad decimal"), "{error}");
    }

    #[test]
    fn floats_print_their_shortest_round_trip_digits() {
        let at = Location::whole("f");
        let render = Render { column: "c", at: &at };
        let text = |field: Field| {
            let mut out = String::new();
            render.scalar(&field, &mut out).unwrap();
            out
        };
        assert_eq!(text(Field::Double(0.0416)), "0.0416");
        assert_eq!(text(Field::Double(1.5e-7)), "0.00000015");
        assert_eq!(text(Field::Double(5.787_037_037_037_037e-6)), "0.000005787037037037037");
        assert_eq!(text(Field::Double(-2.469e-3)), "-0.002469");
        assert_eq!(text(Field::Double(74.4)), "74.4");
        assert_eq!(text(Field::Double(1e21)), "1000000000000000000000");
        assert_eq!(text(Field::Float(0.1)), "0.1");
        assert_eq!(text(Field::Double(f64::NAN)), "NaN");
    }

    #[test]
    fn instants_in_every_unit() {
        let at = Location::whole("f");
        let render = Render { column: "ChargePeriodStart", at: &at };
        let text = |value: i64, unit: TimeUnit| {
            let mut out = String::new();
            render.instant(value, unit, &mut out).map(|()| out)
        };
        let seconds = 1_746_057_600_i64; // 2025-05-01T00:00:00Z
        assert_eq!(text(seconds * 1_000, TimeUnit::MILLIS).unwrap(), "2025-05-01T00:00:00Z");
        assert_eq!(text(seconds * 1_000_000, TimeUnit::MICROS).unwrap(), "2025-05-01T00:00:00Z");
        assert_eq!(text(seconds * 1_000_000_000, TimeUnit::NANOS).unwrap(), "2025-05-01T00:00:00Z");
        assert_eq!(text(seconds * 1_000 + 5, TimeUnit::MILLIS).unwrap(), "2025-05-01T00:00:00.005Z");
        let error = text(i64::MAX, TimeUnit::MICROS).unwrap_err();
        assert_eq!(error.code(), "bad_timestamp");
        assert_eq!(time_of_day(3_723_500_000_000), "01:02:03.5");
    }
}
