//! Usage in from Arrow data (`Cms.ingest_frame`, `Session.ingest_arrow`): the columns of a pyarrow Table,
//! a record batch reader, or anything else speaking the Arrow `PyCapsule` stream interface, imported through
//! the C stream (see `partials::batches`) and read in place into the core's usage records. No Python object
//! is made per row or per value: strings are read from the Arrow buffers, decimals from their 128- or
//! 256-bit integers and scale, instants from their 64-bit counts.
//!
//! Columns, by name (order and extra row-number columns do not matter):
//! - `subscription`, `meter`, `resource_uri`, `location`: strings (`string`, `large_string`, `string_view`);
//! - `start`, `end`: timestamps with a time zone (any unit; a timestamp without one is refused: the engine
//!   cannot guess its zone), or RFC 3339 strings;
//! - `quantity`: `decimal128`/`decimal256` (scale at most 28), integers, or decimal strings; floats are
//!   refused (`bad_decimal`): quantities are never floats;
//! - optional `tags`, `additional_info`: JSON object text (or null), as `ingest_records` takes them.
//!
//! A value that does not read is the core's error for it (`bad_decimal`, `bad_timestamp`,
//! `bad_meter_id`, `bad_record`) at `<source> record <n>`, `n` counting rows from 0 across batches.

use std::collections::BTreeMap;
use std::str::FromStr;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal128Type, Decimal256Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use cms_core::model::meter::MeterId;
use cms_core::model::money::parse_decimal;
use cms_core::model::time::Instant;
use cms_core::model::usage::UsageRecord;
use cms_core::{CmsError, Location};

/// The columns a usage record needs.
const REQUIRED: [&str; 7] = ["subscription", "meter", "start", "end", "quantity", "resource_uri", "location"];
/// The optional ones (JSON object text).
const OPTIONAL: [&str; 2] = ["tags", "additional_info"];
/// Record fields this path does not read.
const UNCARRIED: [&str; 2] = ["cost", "adjustments"];

fn bad_column(source: &str, name: &str, reason: impl Into<String>) -> CmsError {
    CmsError::BadRecord { at: Location::field(source, name), reason: reason.into() }
}

/// A string column of any Arrow string layout.
enum Text<'a> {
    Small(&'a arrow_array::StringArray),
    Large(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
}

impl<'a> Text<'a> {
    fn of(column: &'a ArrayRef) -> Option<Self> {
        match column.data_type() {
            DataType::Utf8 => Some(Self::Small(column.as_string::<i32>())),
            DataType::LargeUtf8 => Some(Self::Large(column.as_string::<i64>())),
            DataType::Utf8View => Some(Self::View(column.as_string_view())),
            _ => None,
        }
    }

    /// The row's text; `None` for a null.
    fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            Self::Small(array) => array.is_valid(row).then(|| array.value(row)),
            Self::Large(array) => array.is_valid(row).then(|| array.value(row)),
            Self::View(array) => array.is_valid(row).then(|| array.value(row)),
        }
    }
}

/// A `start`/`end` column: timestamps (with their unit) or text.
enum Times<'a> {
    Stamps { values: &'a [i64], nulls: &'a dyn Array, unit: TimeUnit },
    Text(Text<'a>),
}

impl<'a> Times<'a> {
    fn of(column: &'a ArrayRef, source: &str, name: &str) -> Result<Self, CmsError> {
        if let Some(text) = Text::of(column) {
            return Ok(Self::Text(text));
        }
        let DataType::Timestamp(unit, zone) = column.data_type() else {
            return Err(bad_column(
                source,
                name,
                format!(
                    "column {name} is {}: expected timestamps with a time zone or RFC 3339 text",
                    column.data_type()
                ),
            ));
        };
        if zone.is_none() {
            return Err(CmsError::BadTimestamp {
                at: Location::field(source, name),
                field: name.to_owned(),
                text: format!("{} (a timestamp without a time zone)", column.data_type()),
            });
        }
        let values: &[i64] = match unit {
            TimeUnit::Second => column.as_primitive::<TimestampSecondType>().values(),
            TimeUnit::Millisecond => column.as_primitive::<TimestampMillisecondType>().values(),
            TimeUnit::Microsecond => column.as_primitive::<TimestampMicrosecondType>().values(),
            TimeUnit::Nanosecond => column.as_primitive::<TimestampNanosecondType>().values(),
        };
        Ok(Self::Stamps { values, nulls: column.as_ref(), unit: *unit })
    }

    fn get(&self, row: usize, name: &str, at: &dyn Fn() -> Location) -> Result<Instant, CmsError> {
        let bad = |text: String| CmsError::BadTimestamp { at: at(), field: name.to_owned(), text };
        match self {
            Self::Stamps { values, nulls, unit } => {
                if nulls.is_null(row) {
                    return Err(bad("null".into()));
                }
                let value = values[row];
                let (per_second, nanos_per_unit) = match unit {
                    TimeUnit::Second => (1, 1_000_000_000),
                    TimeUnit::Millisecond => (1_000, 1_000_000),
                    TimeUnit::Microsecond => (1_000_000, 1_000),
                    TimeUnit::Nanosecond => (1_000_000_000, 1),
                };
                let seconds = value.div_euclid(per_second);
                let nanos = u32::try_from(value.rem_euclid(per_second) * nanos_per_unit).ok();
                nanos
                    .and_then(|nanos| Instant::from_timestamp(seconds, nanos))
                    .ok_or_else(|| bad(format!("{value} ({unit:?}) is out of range")))
            }
            Self::Text(text) => {
                let text = text.get(row).ok_or_else(|| bad("null".into()))?;
                Instant::from_str(text).map_err(|_| bad(text.to_owned()))
            }
        }
    }
}

/// A `quantity` column: Arrow decimals, integers, or decimal text.
enum Quantities<'a> {
    Decimal128(&'a arrow_array::Decimal128Array, u32),
    Decimal256(&'a arrow_array::Decimal256Array, u32),
    Integers(Box<dyn Fn(usize) -> Option<i128> + 'a>),
    Text(Text<'a>),
}

impl<'a> Quantities<'a> {
    fn of(column: &'a ArrayRef, source: &str) -> Result<Self, CmsError> {
        if let Some(text) = Text::of(column) {
            return Ok(Self::Text(text));
        }
        let scale = |scale: i8| {
            u32::try_from(scale).ok().filter(|scale| *scale <= 28).ok_or_else(|| CmsError::BadDecimal {
                at: Location::field(source, "quantity"),
                field: "quantity".into(),
                text: format!(
                    "{} (scale {scale}: 0 to 28 digits after the point are exact)",
                    column.data_type()
                ),
            })
        };
        Ok(match column.data_type() {
            DataType::Decimal128(_, s) => {
                Self::Decimal128(column.as_primitive::<Decimal128Type>(), scale(*s)?)
            }
            DataType::Decimal256(_, s) => {
                Self::Decimal256(column.as_primitive::<Decimal256Type>(), scale(*s)?)
            }
            DataType::Int8 => integers::<Int8Type>(column),
            DataType::Int16 => integers::<Int16Type>(column),
            DataType::Int32 => integers::<Int32Type>(column),
            DataType::Int64 => integers::<Int64Type>(column),
            DataType::UInt8 => integers::<UInt8Type>(column),
            DataType::UInt16 => integers::<UInt16Type>(column),
            DataType::UInt32 => integers::<UInt32Type>(column),
            DataType::UInt64 => integers::<UInt64Type>(column),
            other => {
                return Err(CmsError::BadDecimal {
                    at: Location::field(source, "quantity"),
                    field: "quantity".into(),
                    text: format!(
                        "a {other} column (quantities are never floats: use Decimal objects, decimal strings or \
                         an Arrow decimal column)"
                    ),
                });
            }
        })
    }

    fn get(&self, row: usize, at: &dyn Fn() -> Location) -> Result<cms_core::Decimal, CmsError> {
        let bad = |text: String| CmsError::BadDecimal { at: at(), field: "quantity".into(), text };
        let exact = |units: Option<i128>, scale: u32, shown: &dyn Fn() -> String| {
            units
                .and_then(|units| cms_core::Decimal::try_from_i128_with_scale(units, scale).ok())
                .ok_or_else(|| bad(shown()))
        };
        match self {
            Self::Decimal128(array, scale) => {
                if array.is_null(row) {
                    return Err(bad("null".into()));
                }
                let units = array.value(row);
                exact(Some(units), *scale, &|| format!("{units}e-{scale} (more than 28 significant digits)"))
            }
            Self::Decimal256(array, scale) => {
                if array.is_null(row) {
                    return Err(bad("null".into()));
                }
                let units = array.value(row);
                exact(units.to_i128(), *scale, &|| {
                    format!("{units}e-{scale} (more than 28 significant digits)")
                })
            }
            Self::Integers(values) => {
                let units = values(row).ok_or_else(|| bad("null".into()))?;
                exact(Some(units), 0, &|| units.to_string())
            }
            Self::Text(text) => {
                let text = text.get(row).ok_or_else(|| bad("null".into()))?;
                parse_decimal(text).ok_or_else(|| bad(text.to_owned()))
            }
        }
    }
}

/// An integer column as exact whole quantities, read in place.
fn integers<T: arrow_array::ArrowPrimitiveType>(column: &ArrayRef) -> Quantities<'_>
where
    T::Native: Into<i128>,
{
    let array = column.as_primitive::<T>();
    Quantities::Integers(Box::new(move |row| array.is_valid(row).then(|| array.value(row).into())))
}

/// One batch's columns, resolved by name and type.
struct Columns<'a> {
    subscription: Text<'a>,
    meter: Text<'a>,
    start: Times<'a>,
    end: Times<'a>,
    quantity: Quantities<'a>,
    resource_uri: Text<'a>,
    location: Text<'a>,
    tags: Option<Text<'a>>,
    additional_info: Option<Text<'a>>,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch, source: &str) -> Result<Self, CmsError> {
        let schema = batch.schema_ref();
        let column = |name: &str| -> Option<&'a ArrayRef> {
            schema.index_of(name).ok().map(|index| batch.column(index))
        };
        let required = |name: &str| {
            column(name).ok_or_else(|| {
                bad_column(
                    source,
                    name,
                    format!("no column {name} (a usage table has {})", REQUIRED.join(", ")),
                )
            })
        };
        let text = |name: &str| -> Result<Text<'a>, CmsError> {
            let array = required(name)?;
            Text::of(array).ok_or_else(|| {
                bad_column(source, name, format!("column {name} is {}, not strings", array.data_type()))
            })
        };
        let optional = |name: &str| -> Result<Option<Text<'a>>, CmsError> {
            match column(name) {
                None => Ok(None),
                Some(array) if array.data_type() == &DataType::Null => Ok(None),
                Some(array) => Text::of(array).map(Some).ok_or_else(|| {
                    bad_column(
                        source,
                        name,
                        format!("column {name} is {}, not strings (JSON object text)", array.data_type()),
                    )
                }),
            }
        };
        Ok(Self {
            subscription: text("subscription")?,
            meter: text("meter")?,
            start: Times::of(required("start")?, source, "start")?,
            end: Times::of(required("end")?, source, "end")?,
            quantity: Quantities::of(required("quantity")?, source)?,
            resource_uri: text("resource_uri")?,
            location: text("location")?,
            tags: optional("tags")?,
            additional_info: optional("additional_info")?,
        })
    }

    fn record(&self, row: usize, at: &dyn Fn() -> Location) -> Result<UsageRecord, CmsError> {
        let required = |column: &Text<'_>, name: &str| -> Result<String, CmsError> {
            column
                .get(row)
                .map(str::to_owned)
                .ok_or_else(|| CmsError::BadRecord { at: at(), reason: format!("{name} is null") })
        };
        let map = |column: &Option<Text<'_>>, name: &str| -> Result<BTreeMap<String, String>, CmsError> {
            match column.as_ref().and_then(|column| column.get(row)) {
                None => Ok(BTreeMap::new()),
                Some(text) => serde_json::from_str(text).map_err(|error| CmsError::BadRecord {
                    at: at(),
                    reason: format!("{name} is not a JSON object of strings: {error}"),
                }),
            }
        };
        let meter = required(&self.meter, "meter")?;
        let meter = MeterId::from_str(&meter).map_err(|_| CmsError::BadMeterId { at: at(), text: meter })?;
        Ok(UsageRecord {
            subscription: required(&self.subscription, "subscription")?,
            meter,
            start: self.start.get(row, "start", at)?,
            end: self.end.get(row, "end", at)?,
            quantity: self.quantity.get(row, at)?,
            resource_uri: required(&self.resource_uri, "resource_uri")?,
            location: required(&self.location, "location")?,
            tags: map(&self.tags, "tags")?,
            additional_info: map(&self.additional_info, "additional_info")?,
            ..UsageRecord::default()
        })
    }
}

/// Other columns are not read (as `ingest_records` ignores other keys), except the record fields this path
/// does not carry: `cost` and `adjustments` are refused rather than dropped.
fn check_names(batch: &RecordBatch, source: &str) -> Result<(), CmsError> {
    for name in UNCARRIED {
        if batch.schema_ref().index_of(name).is_ok() {
            return Err(bad_column(
                source,
                name,
                format!(
                    "column {name} is not read from Arrow data (a usage table has {}, and optionally {}): pass \
                     such records to ingest_records",
                    REQUIRED.join(", "),
                    OPTIONAL.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The usage records of the batches, rows counted from 0 across them; the first bad value is an error
/// naming `<source> record <row>`.
pub(crate) fn usage_records(batches: &[RecordBatch], source: &str) -> Result<Vec<UsageRecord>, CmsError> {
    let mut records = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    let mut offset = 0u64;
    for batch in batches {
        check_names(batch, source)?;
        let columns = Columns::of(batch, source)?;
        for row in 0..batch.num_rows() {
            let at = || Location::record(source, offset + row as u64);
            records.push(columns.record(row, &at)?);
        }
        offset += batch.num_rows() as u64;
    }
    Ok(records)
}
