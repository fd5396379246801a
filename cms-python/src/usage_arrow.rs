//! Usage out as Arrow data (`Cms.usage_table`, `Session.stored_usage_arrow`): the stored records laid out
//! in Arrow columns in Rust and handed to Python through the Arrow C stream interface (an object with
//! `__arrow_c_stream__`, which `pyarrow.table` imports without copying), with no JSON and no Python object
//! per value.
//!
//! Columns (those of `cms.frames.USAGE_COLUMNS`): `subscription`, `meter`, `resource_uri`, `location` as
//! strings; `start`, `end` as `timestamp[us, UTC]` (`ns` when an instant has digits past microseconds);
//! `quantity` as `decimal128(38, s)`, `s` the largest scale of the column's values so each is exact
//! (`decimal256(76, s)` when a value would need more than 38 digits at that scale).

use std::sync::Arc;

use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::types::{Decimal256Type, TimestampMicrosecondType, TimestampNanosecondType};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, Decimal128Array, Decimal256Array, PrimitiveArray, RecordBatch,
    RecordBatchIterator, StringArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use cms_core::model::time::Instant;
use cms_core::model::usage::UsageRecord;
use cms_core::{CmsError, Location};
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

/// Arrow's 256-bit integer (arrow-buffer's `i256`, reached through the array crate).
type I256 = <Decimal256Type as ArrowPrimitiveType>::Native;

/// The capsule name the Arrow `PyCapsule` interface gives a C stream.
const STREAM_CAPSULE: &std::ffi::CStr = c"arrow_array_stream";

fn arrow_error(error: &ArrowError) -> CmsError {
    CmsError::BadRecord { at: Location::whole("usage table"), reason: error.to_string() }
}

/// Instants as a timestamp column in UTC: microseconds, or nanoseconds when one needs them.
fn times(records: &[UsageRecord], of: impl Fn(&UsageRecord) -> Instant) -> Result<ArrayRef, CmsError> {
    let utc: Arc<str> = Arc::from("UTC");
    let fine = records.iter().any(|record| !of(record).timestamp_subsec_nanos().is_multiple_of(1_000));
    if fine {
        let values = records
            .iter()
            .map(|record| {
                of(record).timestamp_nanos_opt().ok_or_else(|| CmsError::BadRecord {
                    at: Location::whole("usage table"),
                    reason: format!("{} is out of range for nanoseconds", of(record)),
                })
            })
            .collect::<Result<Vec<i64>, CmsError>>()?;
        Ok(Arc::new(PrimitiveArray::<TimestampNanosecondType>::from(values).with_timezone(utc)))
    } else {
        let values: Vec<i64> = records.iter().map(|record| of(record).timestamp_micros()).collect();
        Ok(Arc::new(PrimitiveArray::<TimestampMicrosecondType>::from(values).with_timezone(utc)))
    }
}

/// Quantities as one decimal column at the largest scale of its values, every value exact.
fn quantities(records: &[UsageRecord]) -> Result<(ArrayRef, DataType), CmsError> {
    let scale = records.iter().map(|record| record.quantity.scale()).max().unwrap_or(0);
    let scaled: Option<Vec<i128>> = records
        .iter()
        .map(|record| {
            let quantity = record.quantity;
            10i128
                .checked_pow(scale - quantity.scale())
                .and_then(|factor| quantity.mantissa().checked_mul(factor))
        })
        .collect();
    let scale_i8 = i8::try_from(scale).unwrap_or(i8::MAX);
    let fits = |values: &[i128]| values.iter().all(|value| value.unsigned_abs() < 10u128.pow(38));
    match scaled {
        Some(values) if fits(&values) => {
            let array = Decimal128Array::from(values)
                .with_precision_and_scale(38, scale_i8)
                .map_err(|error| arrow_error(&error))?;
            Ok((Arc::new(array), DataType::Decimal128(38, scale_i8)))
        }
        _ => {
            // Past 38 digits at the column's scale: 256-bit integers, scaled exactly (a rust_decimal has at
            // most 29 digits and a scale of at most 28: 57 digits, well within 76).
            let values = records
                .iter()
                .map(|record| {
                    I256::from_i128(10)
                        .checked_pow(scale - record.quantity.scale())
                        .and_then(|factor| I256::from_i128(record.quantity.mantissa()).checked_mul(factor))
                        .ok_or_else(|| CmsError::BadRecord {
                            at: Location::whole("usage table"),
                            reason: format!("quantity {} does not fit at scale {scale}", record.quantity),
                        })
                })
                .collect::<Result<Vec<I256>, CmsError>>()?;
            let array = Decimal256Array::from(values)
                .with_precision_and_scale(76, scale_i8)
                .map_err(|error| arrow_error(&error))?;
            Ok((Arc::new(array), DataType::Decimal256(76, scale_i8)))
        }
    }
}

/// The records as one record batch of the usage columns.
pub(crate) fn usage_batch(records: &[UsageRecord]) -> Result<RecordBatch, CmsError> {
    let text = |of: &dyn Fn(&UsageRecord) -> String| -> ArrayRef {
        Arc::new(records.iter().map(|record| Some(of(record))).collect::<StringArray>())
    };
    let start = times(records, |record| record.start)?;
    let end = times(records, |record| record.end)?;
    let (quantity, quantity_type) = quantities(records)?;
    let schema = Schema::new(vec![
        Field::new("subscription", DataType::Utf8, true),
        Field::new("meter", DataType::Utf8, true),
        Field::new("start", start.data_type().clone(), true),
        Field::new("end", end.data_type().clone(), true),
        Field::new("quantity", quantity_type, true),
        Field::new("resource_uri", DataType::Utf8, true),
        Field::new("location", DataType::Utf8, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            text(&|record| record.subscription.clone()),
            text(&|record| record.meter.to_string()),
            start,
            end,
            quantity,
            text(&|record| record.resource_uri.clone()),
            text(&|record| record.location.clone()),
        ],
    )
    .map_err(|error| arrow_error(&error))
}

/// Arrow data made in Rust, for Python: `__arrow_c_stream__` exports it (as often as asked; each export
/// shares the same buffers), so `pyarrow.table(stream)` imports it without copying.
#[pyclass(name = "ArrowStream", module = "cms._cms", frozen)]
pub struct PyArrowStream {
    pub(crate) batch: RecordBatch,
}

#[pymethods]
impl PyArrowStream {
    /// The Arrow `PyCapsule` stream interface: a capsule named `arrow_array_stream` holding a C stream of
    /// the data (a requested schema is not honoured: the data has one layout).
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        drop(requested_schema);
        let batch = self.batch.clone();
        let reader = RecordBatchIterator::new([Ok(batch)], self.batch.schema());
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        // The consumer moves the stream out of the capsule (leaving it released); one that does not leaves
        // it to be released when the capsule is collected.
        PyCapsule::new_with_value(py, stream, STREAM_CAPSULE)
    }

    /// The number of rows.
    #[getter]
    fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
}
