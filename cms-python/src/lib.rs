//! # cms-python
//!
//! The native part of the Python package `cms`: the module `cms._cms`, thin over [`cms_api`]. It converts
//! (JSON text in and out: the facade's JSON, decimals as strings), calls the facade with the GIL
//! released, and maps the error to the exception family of its code ([`errors`]). Everything a Python
//! user sees (`cms.Cms`, `cms.month_end`, decimals as `decimal.Decimal`, instants as aware `datetime`,
//! `DataFrames`) is built on these few functions by the package's Python modules (`python/cms/`).
//!
//! Usage crosses as Arrow data instead of JSON where it is bulk: [`ingest_arrow`] reads the columns of
//! anything with `__arrow_c_stream__` in place into usage records (`Cms.ingest_frame`), [`usage_arrow`] lays
//! stored usage out in Arrow columns for pyarrow to import (`Cms.usage_table`), and [`partials`] rates Arrow
//! usage into month-end partials (`cms.distributed`).

mod errors;
mod ingest_arrow;
mod partials;
mod usage_arrow;

use std::sync::{Mutex, MutexGuard, PoisonError};

use cms_api::{Session, StoreSpec};
use cms_core::CmsError;
use pyo3::prelude::*;
use pyo3::types::PyType;
use serde_json::Value;

use crate::errors::PyCmsError;

/// Parse the JSON text of a call's parameters (an empty text is no parameters).
fn parse_params(method: &str, params: &str) -> Result<Value, CmsError> {
    if params.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(params).map_err(|error| CmsError::BadJson {
        at: cms_core::Location::whole(format!("{method} params")),
        message: error.to_string(),
    })
}

/// Serialise a result as JSON text.
fn to_text(method: &str, value: &Value) -> Result<String, CmsError> {
    serde_json::to_string(value).map_err(|error| CmsError::BadJson {
        at: cms_core::Location::field(method, "result"),
        message: error.to_string(),
    })
}

/// Call a method that needs no session (`month_end`, `parse_usage_page`, `methods`, `error_codes`,
/// `version`, `evaluate_vector`), with the GIL released.
///
/// Args:
///     method: the method's name (`methods` lists them).
///     params: its parameters as the facade's JSON text (an object; `""` or `"null"` for none).
///
/// Returns:
///     The result as the facade's JSON text (decimals as strings, instants as RFC 3339).
///
/// Raises:
///     `CmsError`: the subclass of the error's family, with `.code` and `.location`.
#[pyfunction]
fn call(py: Python<'_>, method: &str, params: &str) -> PyResult<String> {
    py.detach(|| {
        let params = parse_params(method, params)?;
        let result = cms_api::call(method, params)?;
        to_text(method, &result)
    })
    .map_err(|error| PyCmsError(error).into())
}

/// The exception class an error code raises: its family's subclass of `CmsError` (the base class for a
/// code the mapping does not know).
///
/// Args:
///     code: an error code (`error_codes` lists them).
///
/// Returns:
///     The class, e.g. `InputError` for `bad_decimal`.
#[pyfunction]
fn error_class<'py>(py: Python<'py>, code: &str) -> Bound<'py, PyType> {
    errors::family(py, code)
}

/// The engine on a store (`cms_api::Session`), driven by JSON calls. Python code uses `cms.Cms`, which
/// wraps this class; it is public for tools that speak the facade's JSON directly.
#[pyclass(name = "Session", module = "cms._cms", frozen)]
struct PySession {
    /// The open session; `None` once closed. The mutex is taken with the GIL released, so a long call
    /// in one thread never blocks Python in the others.
    inner: Mutex<Option<Session>>,
    /// The store spec as given (`"memory"` or `{"sqlite": path}`), for `repr` and reopening.
    spec: String,
}

impl PySession {
    fn lock(&self) -> MutexGuard<'_, Option<Session>> {
        // A panic in another call cannot leave a session half-changed: commands are transactional.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Run `work` on the open session, with the GIL released.
    fn with_session<T: Send>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&mut Session) -> Result<T, CmsError> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut guard = self.lock();
            let session = guard.as_mut().ok_or_else(|| CmsError::Store {
                message: format!("the session on {} is closed", self.spec),
            })?;
            work(session)
        })
        .map_err(|error| PyCmsError(error).into())
    }
}

#[pymethods]
impl PySession {
    /// Open a session: open the store (a SQLite file is created if missing) and replay its events.
    ///
    /// Args:
    ///     store: the store spec as JSON text: `"memory"` or `{"sqlite": "path/to/cms.db"}`.
    ///
    /// Raises:
    ///     `CmsError`: `store` (`StorageError`) if the store cannot be opened, `bad_json` if the spec is bad.
    #[new]
    fn new(py: Python<'_>, store: &str) -> PyResult<Self> {
        let session = py
            .detach(|| {
                let spec: StoreSpec = serde_json::from_str(store).map_err(|error| CmsError::BadJson {
                    at: cms_core::Location::whole("store"),
                    message: error.to_string(),
                })?;
                Session::open(&spec)
            })
            .map_err(PyCmsError)?;
        Ok(Self { inner: Mutex::new(Some(session)), spec: store.to_owned() })
    }

    /// Call any method of `methods()` by name, with the GIL released.
    ///
    /// Args:
    ///     method: the method's name.
    ///     params: its parameters as the facade's JSON text (an object; `""` or `"null"` for none).
    ///
    /// Returns:
    ///     The result as the facade's JSON text.
    ///
    /// Raises:
    ///     `CmsError`: the subclass of the error's family; a refused command changes nothing.
    fn call(&self, py: Python<'_>, method: &str, params: &str) -> PyResult<String> {
        self.with_session(py, |session| {
            let params = parse_params(method, params)?;
            let result = session.call(method, params)?;
            to_text(method, &result)
        })
    }

    /// Ingest usage given as Arrow data through the ingestion rules, reading its columns in place (no
    /// Python object per row or value, no JSON): see the module `ingest_arrow` for the columns and types.
    ///
    /// Args:
    ///     data: an object with `__arrow_c_stream__` (a pyarrow `Table` or `RecordBatchReader`, ...).
    ///     source: its name in errors (`frame record 3`).
    ///     params: `ingest_records`' other parameters as JSON text: `origin?`, `principal?` and `at?`.
    ///
    /// Returns:
    ///     The ingestion summary as JSON text.
    ///
    /// Raises:
    ///     `CmsError`: a column missing or of a type that cannot be exact (`bad_decimal` for floats), or
    ///     the first bad value at `<source> record <row>`; nothing is stored then.
    fn ingest_arrow(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        source: &str,
        params: &str,
    ) -> PyResult<String> {
        let batches = partials::batches(data, source)?;
        self.with_session(py, |session| {
            let records = ingest_arrow::usage_records(&batches, source)?;
            let params = parse_params("ingest_arrow", params)?;
            let summary =
                cms_api::methods::ingest_usage(session.engine_mut(), "ingest_arrow", &records, params)?;
            serde_json::to_string(&summary).map_err(|error| CmsError::BadJson {
                at: cms_core::Location::field("ingest_arrow", "result"),
                message: error.to_string(),
            })
        })
    }

    /// The usage records stored for a period that a principal may read (`stored_usage`), laid out in Arrow
    /// columns in Rust (see the module `usage_arrow`), with the GIL released.
    ///
    /// Args:
    ///     params: `stored_usage`'s parameters as JSON text: `principal, period`.
    ///
    /// Returns:
    ///     An object with `__arrow_c_stream__` (`pyarrow.table` imports it without copying).
    ///
    /// Raises:
    ///     `CmsError`: as `stored_usage`.
    fn stored_usage_arrow(&self, py: Python<'_>, params: &str) -> PyResult<usage_arrow::PyArrowStream> {
        self.with_session(py, |session| {
            let params = parse_params("stored_usage_arrow", params)?;
            let records =
                cms_api::methods::stored_usage_records(session.engine(), "stored_usage_arrow", params)?;
            Ok(usage_arrow::PyArrowStream { batch: usage_arrow::usage_batch(&records)? })
        })
    }

    /// Close the session: the store is released (a SQLite file can be opened again). Later calls raise
    /// `StorageError` (code `store`). Closing twice does nothing.
    fn close(&self, py: Python<'_>) {
        let session = py.detach(|| self.lock().take());
        drop(session);
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        py.detach(|| self.lock().is_none())
    }

    /// The store spec the session was opened with, as JSON text.
    #[getter]
    fn store(&self) -> &str {
        &self.spec
    }

    fn __repr__(&self) -> String {
        format!("Session(store={})", self.spec)
    }
}

/// The native module `cms._cms`.
#[pymodule]
fn _cms(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(call, module)?)?;
    module.add_function(wrap_pyfunction!(error_class, module)?)?;
    module.add_class::<PySession>()?;
    module.add_class::<partials::PySetup>()?;
    module.add_class::<usage_arrow::PyArrowStream>()?;
    // The month-end's column and file names, from the core (cms.distributed uses them).
    module.add("USAGE_COLUMNS", cms_core::formats::usage_csv::USAGE_COLUMNS.to_vec())?;
    module.add("SETUP_FILES", cms_api::month_end::partial::SETUP_FILES.to_vec())?;
    errors::register(module)?;
    Ok(())
}
