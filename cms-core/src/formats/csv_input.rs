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

impl<R: Read> CsvInput<R> {
    /// Open a CSV stream whose header must contain every name of `wanted`.
    pub fn new(input: R, source: &str, wanted: &[&str]) -> Result<Self, CmsError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
        let header = reader.byte_headers().map_err(|error| csv_error(source, &error))?.clone();
        let names: Vec<String> =
            header.iter().map(|name| String::from_utf8_lossy(name).trim().to_owned()).collect();
        let columns = wanted
            .iter()
            .map(|want| {
                names.iter().position(|name| name.eq_ignore_ascii_case(want)).ok_or_else(|| {
                    CmsError::BadHeader {
                        at: Location::line(source, 1),
                        expected: (*want).to_owned(),
                        found: names.clone(),
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { reader, source: source.to_owned(), columns, record: csv::ByteRecord::new() })
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
        std::str::from_utf8(self.bytes(index)).map(str::trim).map_err(|_| CmsError::BadRecord {
            at: self.location(),
            reason: format!("{name} is not valid UTF-8"),
        })
    }

    /// Wanted column `index` as non-empty text.
    pub fn required(&self, index: usize, name: &str) -> Result<&str, CmsError> {
        let text = self.text(index, name)?;
        if text.is_empty() {
            return Err(CmsError::BadRecord { at: self.location(), reason: format!("{name} is empty") });
        }
        Ok(text)
    }

    /// Wanted column `index` as an exact decimal.
    pub fn decimal(&self, index: usize, name: &str) -> Result<Decimal, CmsError> {
        let text = self.text(index, name)?;
        parse_decimal(text).ok_or_else(|| CmsError::BadDecimal {
            at: self.location(),
            field: name.to_owned(),
            text: text.to_owned(),
        })
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
