//! # cms-uniffi
//!
//! CMS for Kotlin, Swift and Ruby through Mozilla's uniffi (proc-macros, no UDL): a thin layer over
//! `cms-api`, the bindings' common layer, with the same JSON conventions as every other binding.
//!
//! - [`CmsSession`]: the engine on a memory store or a SQLite file; [`CmsSession::call`]`(method,
//!   params_json) -> result_json` reaches every method of `cms_api::methods()`;
//! - [`month_end`]: the WORKLOAD.md month-end on a folder of files, returning its summary as JSON;
//! - [`error_codes`], [`version`]: introspection.
//!
//! Decimals are strings inside the JSON (`"0.05"`), instants RFC 3339 strings, periods `"YYYY-MM"`.
//! Errors are [`CmsError`], one variant per family (input, channel, billing, ingestion, remote, governance,
//! internal), each carrying the stable snake_case `code` (`CmsError::CODES` of the core) and the message.
//! Kotlin sees `CmsException.Input(code, reason)`, Swift `CmsError.Input(code:reason:)`, Ruby
//! `CmsUniffi::CmsError::Input`.
//!
//! Generating the bindings (the generator is behind the `cli` feature, see `Cargo.toml`):
//!
//! ```text
//! cargo build -p cms-uniffi
//! cargo run -p cms-uniffi --features cli --bin uniffi-bindgen -- generate \
//!     target/debug/libcms_uniffi.so --language kotlin --no-format --out-dir OUT
//! ```

use std::sync::{Arc, Mutex, PoisonError};

use cms_api::{CmsError as CoreError, Session, StoreSpec};

uniffi::setup_scaffolding!();

/// Every error of this library: the family of the core's error, with its stable code and message.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Error)]
pub enum CmsError {
    /// Input files, pages, records and parameters (`io`, `bad_header`, `bad_record`, `bad_decimal`,
    /// `bad_timestamp`, `bad_meter_id`, `negative_quantity`, `bad_interval`, `bad_json`).
    Input {
        /// The stable snake_case code.
        code: String,
        /// The message, naming the record or field at fault.
        reason: String,
    },
    /// The channel and values (`unknown_subscription`, `unknown_node`, `duplicate_node`,
    /// `invalid_hierarchy`, `invalid_period`, `invalid_value`).
    Channel {
        /// The stable snake_case code.
        code: String,
        /// The message, naming the record or field at fault.
        reason: String,
    },
    /// Prices and billing (`tier_overlap`, `tier_start`, `unpriced_meter`, `currency_mismatch`,
    /// `overflow`).
    Billing {
        /// The stable snake_case code.
        code: String,
        /// The message, naming the record or field at fault.
        reason: String,
    },
    /// Usage ingestion rules (`mixed_granularity`, `late_usage_refused`).
    Ingestion {
        /// The stable snake_case code.
        code: String,
        /// The message, naming the record or field at fault.
        reason: String,
    },
    /// Remote stamps: the Usage API and its identity provider (`http`, `usage_api`, `auth`).
    Remote {
        /// The stable snake_case code.
        code: String,
        /// The message, naming the request at fault.
        reason: String,
    },
    /// Storage and governance (`store`, `conflict`, `forbidden`, `policy_refused`, `audit_broken`).
    Governance {
        /// The stable snake_case code.
        code: String,
        /// The message.
        reason: String,
    },
    /// An internal error: `panic` when an earlier call on the session panicked (the panic itself surfaces as
    /// the binding's own internal error, and the session is unusable), or a code newer than this mapping.
    Internal {
        /// The code.
        code: String,
        /// The message.
        reason: String,
    },
}

impl CmsError {
    /// The stable snake_case code (the core's, the same in every language).
    pub fn code(&self) -> &str {
        match self {
            Self::Input { code, .. }
            | Self::Channel { code, .. }
            | Self::Billing { code, .. }
            | Self::Ingestion { code, .. }
            | Self::Remote { code, .. }
            | Self::Governance { code, .. }
            | Self::Internal { code, .. } => code,
        }
    }

    /// The message.
    pub fn reason(&self) -> &str {
        match self {
            Self::Input { reason, .. }
            | Self::Channel { reason, .. }
            | Self::Billing { reason, .. }
            | Self::Ingestion { reason, .. }
            | Self::Remote { reason, .. }
            | Self::Governance { reason, .. }
            | Self::Internal { reason, .. } => reason,
        }
    }

    fn internal(reason: impl Into<String>) -> Self {
        Self::Internal { code: "panic".into(), reason: reason.into() }
    }
}

impl std::fmt::Display for CmsError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "[{}] {}", self.code(), self.reason())
    }
}

impl std::error::Error for CmsError {}

impl From<CoreError> for CmsError {
    fn from(error: CoreError) -> Self {
        family(error.code().to_owned(), error.to_string())
    }
}

/// The family of a code. By code rather than by the core's variant: the core's enum is non-exhaustive, and
/// its codes are the stable vocabulary (the groups are cms-ffi's status ranges).
fn family(code: String, reason: String) -> CmsError {
    match code.as_str() {
        "io" | "bad_header" | "bad_record" | "bad_decimal" | "bad_timestamp" | "bad_meter_id"
        | "negative_quantity" | "bad_interval" | "bad_json" => CmsError::Input { code, reason },
        "unknown_subscription"
        | "unknown_node"
        | "duplicate_node"
        | "invalid_hierarchy"
        | "invalid_period"
        | "invalid_value" => CmsError::Channel { code, reason },
        "tier_overlap" | "tier_start" | "unpriced_meter" | "currency_mismatch" | "overflow" => {
            CmsError::Billing { code, reason }
        }
        "mixed_granularity" | "late_usage_refused" => CmsError::Ingestion { code, reason },
        "http" | "usage_api" | "auth" => CmsError::Remote { code, reason },
        "store" | "conflict" | "forbidden" | "policy_refused" | "audit_broken" => {
            CmsError::Governance { code, reason }
        }
        _ => CmsError::Internal { code, reason },
    }
}

/// A JSON text that does not parse, as the facade's `bad_json` naming where it came from.
fn bad_json(at: &str, error: &serde_json::Error) -> CmsError {
    CmsError::Input { code: "bad_json".into(), reason: format!("{at}: bad JSON: {error}") }
}

/// The method that panics inside [`CmsSession::call`], in debug builds only.
#[cfg(debug_assertions)]
const TEST_PANIC: &str = "__test_panic";

/// The engine on a store, driven by JSON calls. Calls from several threads are serialised.
#[derive(uniffi::Object)]
pub struct CmsSession {
    /// `None` once closed (or after an internal error in a call).
    session: Mutex<Option<Session>>,
    store: String,
}

impl CmsSession {
    fn open(spec: &StoreSpec) -> Result<Arc<Self>, CmsError> {
        let store = match spec {
            StoreSpec::Memory => "memory".to_owned(),
            StoreSpec::Sqlite(path) => format!("sqlite:{}", path.display()),
        };
        Ok(Arc::new(Self { session: Mutex::new(Some(Session::open(spec)?)), store }))
    }
}

#[uniffi::export]
impl CmsSession {
    /// A session on a fresh in-memory store.
    #[uniffi::constructor]
    pub fn memory() -> Result<Arc<Self>, CmsError> {
        Self::open(&StoreSpec::Memory)
    }

    /// A session on the SQLite file at `path` (created with its schema if missing; its events replayed).
    #[uniffi::constructor]
    pub fn sqlite(path: String) -> Result<Arc<Self>, CmsError> {
        Self::open(&StoreSpec::Sqlite(path.into()))
    }

    /// Where this session keeps its state: `"memory"` or `"sqlite:<path>"`.
    pub fn store(&self) -> String {
        self.store.clone()
    }

    /// Call any method of `cms_api::methods()` (the `methods` call lists them) with its parameters as a
    /// JSON object text (`""` or `"null"`: none); returns the result as JSON text. A refused command
    /// changes nothing.
    ///
    /// # Panics
    /// Debug builds (the tests') panic on the method `__test_panic` while holding the session, so the
    /// tests reach that path: the call fails with the binding's internal error (uniffi catches the
    /// panic), and every later call on the session with `CmsError::Internal` of code `panic`. Release
    /// builds do not have it (an unknown method, `invalid_value`).
    pub fn call(&self, method: &str, params_json: &str) -> Result<String, CmsError> {
        let params = if params_json.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(params_json)
                .map_err(|error| bad_json(&format!("{method} params"), &error))?
        };
        let mut guard = self.session.lock().map_err(|_| CmsError::internal("an earlier call panicked"))?;
        let session = guard.as_mut().ok_or_else(|| CmsError::Channel {
            code: "invalid_value".into(),
            reason: format!("{method}: this session is closed: open a new one"),
        })?;
        #[cfg(debug_assertions)]
        assert!(method != TEST_PANIC, "{TEST_PANIC} was called: the tests' way to reach the panic path");
        let result = session.call(method, params)?;
        Ok(result.to_string())
    }

    /// Close the store now (a SQLite file is closed), without waiting for the object to be freed (Kotlin's
    /// `close()`/`destroy()`, Swift's deinit, Ruby's garbage collector); later calls are refused with
    /// `invalid_value`.
    pub fn close_store(&self) {
        self.session.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

/// The month-end of `../shared/bench/WORKLOAD.md` on the folder `data_dir` (`usage.csv`, or the Usage API
/// pages of `pages_dir`), writing the four outputs into `out_dir` byte-identical to `cms month-end`;
/// returns the summary as JSON (decimals as strings). A missing folder is an `io` error.
#[uniffi::export]
pub fn month_end(data_dir: String, out_dir: String, pages_dir: Option<String>) -> Result<String, CmsError> {
    let mut options = cms_api::month_end::Options::new(data_dir, out_dir);
    options.pages = pages_dir.map(Into::into);
    let summary = cms_api::month_end::run(&options)?;
    serde_json::to_string(&summary).map_err(|error| bad_json("month_end result", &error))
}

/// Every error code the library can return (the core's `CmsError::CODES`).
#[uniffi::export]
pub fn error_codes() -> Vec<String> {
    CoreError::CODES.iter().map(|code| (*code).to_owned()).collect()
}

/// The library's version.
#[uniffi::export]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_code_has_a_family() {
        for code in CoreError::CODES {
            let error = family((*code).to_owned(), "why".into());
            assert!(!matches!(error, CmsError::Internal { .. }), "{code} has no family");
            assert_eq!((error.code(), error.reason()), (*code, "why"));
        }
    }

    #[test]
    fn calls_return_json_and_errors_keep_the_core_code() {
        let session = CmsSession::memory().unwrap();
        let version: serde_json::Value = serde_json::from_str(&session.call("version", "").unwrap()).unwrap();
        assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
        let error = session.call("no_such_method", "{}").unwrap_err();
        assert!(matches!(&error, CmsError::Channel { code, .. } if code == "invalid_value"), "{error}");
        let error = session.call("nodes", "{not json").unwrap_err();
        assert!(matches!(&error, CmsError::Input { code, .. } if code == "bad_json"), "{error}");
        session.close_store();
        let error = session.call("version", "").unwrap_err();
        assert!(error.reason().contains("closed"), "{error}");
    }

    #[cfg(debug_assertions)]
    #[test]
    fn a_panic_leaves_its_session_refusing_calls_and_the_others_alone() {
        let (broken, other) = (CmsSession::memory().unwrap(), CmsSession::memory().unwrap());
        // uniffi's scaffolding catches the panic of an exported call the same way.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| broken.call(TEST_PANIC, "")));
        let payload = panicked.unwrap_err();
        let message = payload.downcast_ref::<String>().unwrap();
        assert!(message.starts_with("__test_panic was called"), "{message}");
        let error = broken.call("version", "").unwrap_err();
        assert_eq!(
            error,
            CmsError::Internal { code: "panic".into(), reason: "an earlier call panicked".into() }
        );
        assert!(other.call("version", "").is_ok(), "another session works on");
        // Closing still releases the store, and the session stays unusable.
        broken.close_store();
        assert_eq!(broken.call("version", "").unwrap_err().code(), "panic");
    }
}
