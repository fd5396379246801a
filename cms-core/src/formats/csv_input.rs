//! Header-checked CSV reading: columns are found by name (any order, extra columns ignored), every error
//! names the file and line.

use std::io::Read;

use rust_decimal::Decimal;

use crate::error::{CmsError, Location};
use crate::model::money::parse_decimal;

/// A CSV reader that knows where each wanted column is.
pub struct CsvInput<R: Read> {
    reader: csv::Reader<R>,
    source: String,
    columns: Vec<usize>,
    record: csv::ByteRecord,
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
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
        let header = reader.byte_headers().map_err(|error| csv_error(source, &error))?.clone();
        let columns = column_positions(&header, source, wanted)?;
        Ok(Self { reader, source: source.to_owned(), columns, record: csv::ByteRecord::new() })
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
        &self.source
    }

    /// Advance to the next record; `false` at the end.
    pub fn next_record(&mut self) -> Result<bool, CmsError> {
        self.reader.read_byte_record(&mut self.record).map_err(|error| csv_error(&self.source, &error))
    }

    /// The 1-based line of the current record.
    pub fn line(&self) -> u64 {
        self.record.position().map_or(0, csv::Position::line)
    }

    /// Where the current record is.
    pub fn location(&self) -> Location {
        Location::line(self.source.clone(), self.line())
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
