//! The exceptions of `cms`, declared here once and mapped from the core's error in one place
//! ([`family`]): `CmsError` is the base, with one subclass per family of codes. Every exception carries
//! `.code` (the stable snake_case code, the same in Rust, Python, Node and C), `.location` (where the
//! record at fault is, as text: `usage.csv line 12`, `page-3.json record 4`, `nodes field at`; `None` when
//! the error names no record) and `.source` (the file, page or method of that location). `cms.exceptions`
//! re-exports them.

use cms_core::CmsError as CoreError;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::{PyTypeInfo, create_exception};

create_exception!(
    cms,
    CmsError,
    PyException,
    "The base of every CMS error: `.code` is the stable snake_case code, `.location` the record at fault."
);
create_exception!(
    cms,
    InputError,
    CmsError,
    "Bad input: a file, page, parameter or document that does not read or does not validate."
);
create_exception!(
    cms,
    NotFoundError,
    CmsError,
    "A node or subscription that does not exist (or is outside the principal's reach)."
);
create_exception!(
    cms,
    ConflictError,
    CmsError,
    "A clash with what is stored: a duplicate id, or another writer that committed first."
);
create_exception!(
    cms,
    ForbiddenError,
    CmsError,
    "Refused by governance: the principal's roles do not allow it, or a policy refuses it."
);
create_exception!(
    cms,
    BillingError,
    CmsError,
    "Usage or prices that cannot be billed as asked: unpriced meters (strict), mixed currencies, overflow."
);
create_exception!(
    cms,
    IngestError,
    CmsError,
    "Usage refused by the ingestion rules: mixed granularities, late usage beyond the look-back window."
);
create_exception!(
    cms,
    StorageError,
    CmsError,
    "Files and stores: an input that cannot be read, a store that fails or is closed."
);
create_exception!(
    cms,
    RemoteError,
    CmsError,
    "A stamp's Usage API or identity provider: HTTP failures, API error codes, authentication."
);
create_exception!(cms, AuditError, CmsError, "The audit trail or an issued document does not verify.");

/// The family of each error code: the one mapping table. A code the table does not know (one added to
/// the core later) raises the base class; the test suite checks that every code of `error_codes` maps
/// to a family.
pub(crate) fn family<'py>(py: Python<'py>, code: &str) -> Bound<'py, pyo3::types::PyType> {
    match code {
        "bad_header" | "bad_record" | "bad_decimal" | "bad_timestamp" | "bad_meter_id"
        | "negative_quantity" | "bad_interval" | "invalid_hierarchy" | "tier_overlap" | "tier_start"
        | "invalid_period" | "invalid_value" | "bad_json" => InputError::type_object(py),
        "unknown_subscription" | "unknown_node" => NotFoundError::type_object(py),
        "duplicate_node" | "conflict" => ConflictError::type_object(py),
        "forbidden" | "policy_refused" => ForbiddenError::type_object(py),
        "unpriced_meter" | "currency_mismatch" | "overflow" => BillingError::type_object(py),
        "mixed_granularity" | "late_usage_refused" => IngestError::type_object(py),
        "io" | "store" => StorageError::type_object(py),
        "http" | "usage_api" | "auth" => RemoteError::type_object(py),
        "audit_broken" => AuditError::type_object(py),
        _ => CmsError::type_object(py),
    }
}

/// A core error on its way to Python.
pub(crate) struct PyCmsError(pub(crate) CoreError);

impl From<PyCmsError> for PyErr {
    fn from(PyCmsError(error): PyCmsError) -> Self {
        Python::attach(|py| {
            let class = family(py, error.code());
            let raised = PyErr::from_type(class, error.to_string());
            let value = raised.value(py);
            let location = error.location();
            // Setting attributes on a fresh exception instance only fails if memory runs out; the
            // exception is still raised then, with its message.
            let _ = value.setattr("code", error.code());
            let _ = value.setattr("location", location.map(ToString::to_string));
            let _ = value.setattr("source", location.map(|at| at.source.clone()));
            raised
        })
    }
}

/// Add the exception classes to the module.
pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add("CmsError", CmsError::type_object(py))?;
    module.add("InputError", InputError::type_object(py))?;
    module.add("NotFoundError", NotFoundError::type_object(py))?;
    module.add("ConflictError", ConflictError::type_object(py))?;
    module.add("ForbiddenError", ForbiddenError::type_object(py))?;
    module.add("BillingError", BillingError::type_object(py))?;
    module.add("IngestError", IngestError::type_object(py))?;
    module.add("StorageError", StorageError::type_object(py))?;
    module.add("RemoteError", RemoteError::type_object(py))?;
    module.add("AuditError", AuditError::type_object(py))?;
    Ok(())
}
