//! Month-end partials for distributed engines (`cms.distributed`): a workload's setup built from the files
//! a driver ships, usage rated from Arrow data into a partial (the accumulator's stable binary form, carrying
//! the setup's digest), partials merged (anywhere, in any tree) and finished into the four outputs. See
//! `cms_api::month_end::partial` for the rules.
//!
//! Arrow data comes through the Arrow `PyCapsule` interface (`__arrow_c_stream__`: pyarrow Tables, record
//! batch readers, and anything else that speaks it), imported zero-copy with arrow-rs's C stream reader:
//! the string columns are read in place, never copied into Python objects.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema, from_ffi_and_data_type};
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::types::{Int64Type, UInt64Type};
use arrow_array::{Array, RecordBatch, RecordBatchOptions, StructArray};
use arrow_schema::{DataType, Schema};
use cms_api::month_end::partial::{FinishOptions, Setup, merge};
use cms_core::formats::usage_csv::USAGE_COLUMNS;
use cms_core::{CmsError, Location};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule};

use crate::errors::PyCmsError;

/// The capsule name the Arrow `PyCapsule` interface gives a C stream.
const STREAM_CAPSULE: &std::ffi::CStr = c"arrow_array_stream";
/// An optional column of row numbers that errors name instead of the row's index in its table.
const ROW_COLUMN: &str = "row";

fn bad_arrow(source: &str, reason: impl Into<String>) -> CmsError {
    CmsError::BadRecord { at: Location::whole(source), reason: reason.into() }
}

/// A workload's setup (`cms_api::month_end::partial::Setup`), built once per process from the setup
/// files' contents and shared by the rating calls made on it.
#[pyclass(name = "MonthEndSetup", module = "cms._cms", frozen)]
pub struct PySetup {
    setup: Arc<Setup>,
}

/// One table's usage columns, resolved by name: for each of `USAGE_COLUMNS`, its string column.
struct Columns<'a> {
    fields: [StringColumn<'a>; 7],
    rows: Option<RowNumbers<'a>>,
}

enum StringColumn<'a> {
    Small(&'a arrow_array::StringArray),
    Large(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
}

impl StringColumn<'_> {
    /// The text of a row (a null is empty text, which the rules refuse where a value is required).
    fn bytes(&self, row: usize) -> &[u8] {
        let (valid, text) = match self {
            Self::Small(array) => (array.is_valid(row), array.value(row)),
            Self::Large(array) => (array.is_valid(row), array.value(row)),
            Self::View(array) => (array.is_valid(row), array.value(row)),
        };
        if valid { text.as_bytes() } else { b"" }
    }
}

enum RowNumbers<'a> {
    Signed(&'a arrow_array::Int64Array),
    Unsigned(&'a arrow_array::UInt64Array),
}

impl RowNumbers<'_> {
    fn get(&self, row: usize) -> Option<u64> {
        match self {
            Self::Signed(array) => {
                array.is_valid(row).then(|| array.value(row)).and_then(|n| u64::try_from(n).ok())
            }
            Self::Unsigned(array) => array.is_valid(row).then(|| array.value(row)),
        }
    }
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch, source: &str) -> Result<Self, CmsError> {
        let schema = batch.schema_ref();
        let mut fields = Vec::with_capacity(7);
        for name in USAGE_COLUMNS {
            let index = schema.index_of(name).map_err(|_| {
                bad_arrow(
                    source,
                    format!("no column {name} (the columns of usage.csv are needed, as strings)"),
                )
            })?;
            let column = batch.column(index);
            let column = match column.data_type() {
                DataType::Utf8 => StringColumn::Small(column.as_string::<i32>()),
                DataType::LargeUtf8 => StringColumn::Large(column.as_string::<i64>()),
                DataType::Utf8View => StringColumn::View(column.as_string_view()),
                other => {
                    return Err(bad_arrow(
                        source,
                        format!(
                            "column {name} is {other}, not strings: read usage as text so decimals and \
                             instants stay exact"
                        ),
                    ));
                }
            };
            fields.push(column);
        }
        let rows = match schema.index_of(ROW_COLUMN).map(|index| batch.column(index)) {
            Err(_) => None,
            Ok(column) => match column.data_type() {
                DataType::Int64 => Some(RowNumbers::Signed(column.as_primitive::<Int64Type>())),
                DataType::UInt64 => Some(RowNumbers::Unsigned(column.as_primitive::<UInt64Type>())),
                other => {
                    return Err(bad_arrow(
                        source,
                        format!("column {ROW_COLUMN} is {other}, not 64-bit integers"),
                    ));
                }
            },
        };
        let fields: [StringColumn<'a>; 7] =
            fields.try_into().map_err(|_| bad_arrow(source, "usage columns"))?;
        Ok(Self { fields, rows })
    }
}

/// Refuse string and binary columns whose offsets buffer is not aligned to its offset width: arrow-rs reads
/// the last offset through that pointer while importing (aligning the buffers only afterwards), which a
/// misaligned pointer makes undefined behaviour (and an abort in debug builds). Producers align their
/// buffers; buffers unpickled from another process may not be (`cms.distributed` copies those first).
fn check_offsets_aligned(array: &FFI_ArrowArray, data_type: &DataType, name: &str) -> Result<(), String> {
    let width = match data_type {
        DataType::Utf8 | DataType::Binary => Some(4),
        DataType::LargeUtf8 | DataType::LargeBinary => Some(8),
        _ => None,
    };
    if let Some(width) = width
        && array.num_buffers() > 1
    {
        let offsets = array.buffer(1);
        if !offsets.is_null() && !(offsets as usize).is_multiple_of(width) {
            return Err(format!(
                "column {name}: its offsets buffer is not aligned on {width} bytes (copy the data first, e.g. \
                 pyarrow's Table.take)"
            ));
        }
    }
    let children: Vec<(String, DataType)> = match data_type {
        DataType::Struct(fields) => {
            fields.iter().map(|field| (field.name().clone(), field.data_type().clone())).collect()
        }
        DataType::List(field) | DataType::LargeList(field) => {
            vec![(field.name().clone(), field.data_type().clone())]
        }
        _ => Vec::new(),
    };
    for (index, (child, child_type)) in children.iter().enumerate().take(array.num_children()) {
        check_offsets_aligned(array.child(index), child_type, child)?;
    }
    Ok(())
}

/// The record batches of an object speaking the Arrow `PyCapsule` stream interface, imported one by one
/// through the C stream callbacks (each checked by [`check_offsets_aligned`] before arrow-rs reads it).
pub(crate) fn batches(object: &Bound<'_, PyAny>, source: &str) -> PyResult<Vec<RecordBatch>> {
    let fail = |reason: String| -> PyErr { PyCmsError(bad_arrow(source, reason)).into() };
    if !object.hasattr("__arrow_c_stream__")? {
        return Err(fail(
            "not Arrow data: expected an object with __arrow_c_stream__ (a pyarrow Table or RecordBatchReader)"
                .into(),
        ));
    }
    let capsule = object.call_method0("__arrow_c_stream__")?;
    let capsule = capsule.cast::<PyCapsule>()?;
    let pointer = capsule.pointer_checked(Some(STREAM_CAPSULE))?;
    // SAFETY: the capsule named "arrow_array_stream" holds an `ArrowArrayStream` (the PyCapsule
    // interface's contract); `from_raw` moves it out and leaves a released stream behind, so the capsule's
    // destructor has nothing left to release. Ours releases it when dropped.
    let mut stream =
        unsafe { FFI_ArrowArrayStream::from_raw(pointer.cast::<FFI_ArrowArrayStream>().as_ptr()) };
    let producer_error = |stream: &mut FFI_ArrowArrayStream, code: i32| -> String {
        let message = stream.get_last_error().and_then(|last_error| {
            // SAFETY: the callback is the stream's own, called on it; its string lives until the next call.
            let text = unsafe { last_error(stream) };
            (!text.is_null())
                .then(|| unsafe { std::ffi::CStr::from_ptr(text) }.to_string_lossy().into_owned())
        });
        format!("the Arrow stream failed (code {code}): {}", message.unwrap_or_default())
    };
    let get_schema = stream.get_schema().ok_or_else(|| fail("the Arrow stream has no get_schema".into()))?;
    let get_next = stream.get_next().ok_or_else(|| fail("the Arrow stream has no get_next".into()))?;
    let mut ffi_schema = FFI_ArrowSchema::empty();
    // SAFETY: the stream's own callback, on the stream, writing into an empty schema we own.
    let code = unsafe { get_schema(&raw mut stream, &raw mut ffi_schema) };
    if code != 0 {
        return Err(fail(producer_error(&mut stream, code)));
    }
    let schema = Arc::new(Schema::try_from(&ffi_schema).map_err(|error| fail(error.to_string()))?);
    let data_type = DataType::Struct(schema.fields().clone());
    let mut batches = Vec::new();
    loop {
        let mut array = FFI_ArrowArray::empty();
        // SAFETY: as above, writing into an empty array we own.
        let code = unsafe { get_next(&raw mut stream, &raw mut array) };
        if code != 0 {
            return Err(fail(producer_error(&mut stream, code)));
        }
        if array.is_released() {
            return Ok(batches);
        }
        check_offsets_aligned(&array, &data_type, "batch").map_err(fail)?;
        // SAFETY: the array came from the stream whose schema gave `data_type`; its offsets are aligned.
        let data = unsafe { from_ffi_and_data_type(array, data_type.clone()) }
            .map_err(|error| fail(error.to_string()))?;
        let rows = data.len();
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(&schema),
            StructArray::from(data).into_parts().1,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|error| fail(error.to_string()))?;
        batches.push(batch);
    }
}

// pyo3 hands arguments over by value.
#[allow(clippy::needless_pass_by_value)]
#[pymethods]
impl PySetup {
    /// Build the setup from the files' contents by name (`plan.json`, `hierarchy.csv`,
    /// `subscriptions.csv`, `prices.csv`, `commission.csv`).
    ///
    /// Raises:
    ///     `CmsError`: a missing or bad setup file, named.
    #[new]
    fn new(py: Python<'_>, files: BTreeMap<String, Bound<'_, PyBytes>>) -> PyResult<Self> {
        let files: BTreeMap<String, Vec<u8>> =
            files.iter().map(|(name, bytes)| (name.clone(), bytes.as_bytes().to_vec())).collect();
        py.detach(|| Setup::from_files(&files))
            .map(|setup| Self { setup: Arc::new(setup) })
            .map_err(|error| PyCmsError(error).into())
    }

    /// The period billed, `YYYY-MM`.
    #[getter]
    fn period(&self) -> String {
        self.setup.period().to_string()
    }

    /// Rate usage given as Arrow data, tables in order (their rows in file order), into one partial.
    ///
    /// Args:
    ///     tables: objects with `__arrow_c_stream__` holding the columns of `usage.csv` as strings (and,
    ///         optionally, `row`: 64-bit row numbers errors name).
    ///     sources: one name per table, for errors (`usage.csv block 3`).
    ///
    /// Returns:
    ///     The partial: the accumulator's binary form (bytes).
    ///
    /// Raises:
    ///     `CmsError`: the first bad row, naming its table and row.
    fn rate_arrow<'py>(
        &self,
        py: Python<'py>,
        tables: Vec<Bound<'py, PyAny>>,
        sources: Vec<String>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if tables.len() != sources.len() {
            return Err(PyCmsError(bad_arrow("rate_arrow", "one source name per table is needed")).into());
        }
        let mut imported = Vec::with_capacity(tables.len());
        for (table, source) in tables.iter().zip(&sources) {
            imported.push(batches(table, source)?);
        }
        let setup = Arc::clone(&self.setup);
        let bytes = py
            .detach(|| -> Result<Vec<u8>, CmsError> {
                let mut accumulator = setup.accumulator();
                for (batches, source) in imported.iter().zip(&sources) {
                    let mut offset = 0u64;
                    for batch in batches {
                        let columns = Columns::of(batch, source)?;
                        for row in 0..batch.num_rows() {
                            let fields = std::array::from_fn(|index| columns.fields[index].bytes(row));
                            let number = columns.rows.as_ref().and_then(|rows| rows.get(row));
                            let at =
                                || Location::record(source.as_str(), number.unwrap_or(offset + row as u64));
                            setup.ingest(&mut accumulator, fields, &at)?;
                        }
                        offset += batch.num_rows() as u64;
                    }
                }
                Ok(setup.partial(&mut accumulator))
            })
            .map_err(PyCmsError)?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Merge partials (in the order given) into one partial, without a setup: for merging a tree of partials
    /// on workers before the driver finishes. All must come from one setup.
    ///
    /// Raises:
    ///     `CmsError`: a damaged partial or one of another setup (`bad_record`, naming it as
    ///         `partials record N`), or no partials.
    #[staticmethod]
    fn merge<'py>(py: Python<'py>, partials: Vec<Bound<'py, PyBytes>>) -> PyResult<Bound<'py, PyBytes>> {
        let parts: Vec<&[u8]> = partials.iter().map(PyBytesMethods::as_bytes).collect();
        let merged = py.detach(|| merge(parts.iter().copied())).map_err(PyCmsError)?;
        Ok(PyBytes::new(py, &merged))
    }

    /// Merge partials (in the order given), bill, and write the four outputs (and FOCUS exports); returns
    /// the month-end summary as JSON text.
    #[pyo3(signature = (partials, out, strict = false, focus_out = None))]
    fn finish(
        &self,
        py: Python<'_>,
        partials: Vec<Bound<'_, PyBytes>>,
        out: PathBuf,
        strict: bool,
        focus_out: Option<PathBuf>,
    ) -> PyResult<String> {
        let parts: Vec<&[u8]> = partials.iter().map(PyBytesMethods::as_bytes).collect();
        let setup = Arc::clone(&self.setup);
        py.detach(|| {
            let options = FinishOptions { out: &out, strict, focus_out: focus_out.as_deref() };
            let summary = setup.finish(parts.iter().copied(), &options)?;
            serde_json::to_string(&summary).map_err(|error| CmsError::BadJson {
                at: Location::whole("month-end summary"),
                message: error.to_string(),
            })
        })
        .map_err(|error| PyCmsError(error).into())
    }
}
