//! # cms-node
//!
//! CMS for Node.js (napi-rs): the package `cms-node` (`require('./cms-node')` after `npm install && npm run
//! build` in this folder). A thin layer over `cms-api`, the bindings' common layer: it converts arguments,
//! calls the facade and maps errors; no business rule lives here.
//!
//! - `Cms`: the engine on a `MemoryStore` or a `SqliteStore`; `call(method, params)` reaches every method of
//!   `cms_api::methods()`, and each has a typed method (`camelCase`); each runs on the session's own thread and
//!   returns a Promise (`callSync` waits instead);
//! - `monthEnd(dataDir, outDir, options?)`: the month-end job on files, on a libuv thread, as a Promise;
//! - `methods()`, `errorCodes()`, `version()`: introspection; `parseUsagePage(page, source?)` and
//!   `evaluateVector(testCase)`, the other methods that need no store.
//!
//! Decimals are strings both ways; instants are `Date`s or RFC 3339 strings in, RFC 3339 strings out.
//! Errors are JavaScript `Error`s whose `code` is the core's stable snake_case code (`CmsError::CODES`), the
//! same string as in Rust, Python and C.

mod convert;
mod month_end;
mod session;

use cms_api::CmsError;
use napi::Env;
use napi::bindgen_prelude::Unknown;
use napi_derive::napi;
use serde_json::Value;

use crate::convert::{Arguments, js_error};

pub use month_end::{MonthEndOptions, MonthEndSummary, MonthEndTask, Unpriced, month_end};
pub use session::{JsCms, JsMemoryStore, JsSqliteStore};

/// Who acts: a principal id and the node whose subtree it acts in (the platform when `node` is left out).
/// The TypeScript shape of the plain object the methods take.
#[napi(object)]
pub struct Principal {
    /// The principal's id (a user or a service).
    pub id: String,
    /// The node it acts at (`"platform"` when left out).
    pub node: Option<String>,
}

/// Options of `Cms.ingestPage` (the TypeScript shape of the plain object it takes).
#[napi(object)]
pub struct IngestPageOptions {
    /// The region the page comes from (checkpoints are kept per region).
    pub region: Option<String>,
    /// Who ingests (with `at`); by default the ingestion principal at the batch's latest usage end.
    pub principal: Option<Principal>,
    /// When (with `principal`).
    #[napi(ts_type = "Date | string")]
    pub at: Option<String>,
}

/// Options of `Cms.ingestRecords` (the TypeScript shape of the plain object it takes).
#[napi(object)]
pub struct IngestRecordsOptions {
    /// The records' origin: a page name, or the core's `PageOrigin` JSON.
    #[napi(ts_type = "string | Record<string, unknown>")]
    pub origin: Option<String>,
    /// Who ingests (with `at`); by default the ingestion principal at the batch's latest usage end.
    pub principal: Option<Principal>,
    /// When (with `principal`).
    #[napi(ts_type = "Date | string")]
    pub at: Option<String>,
}

/// One method `Cms.call` accepts.
#[napi(object)]
pub struct MethodInfo {
    /// Its name, as passed to `call`.
    pub name: String,
    /// Its parameters (`name?`: optional) and what it returns.
    pub signature: String,
    /// What it does, in one line.
    pub doc: String,
    /// Whether it needs a session (every method does through `Cms.call`; those that do not also run
    /// without a store).
    pub session: bool,
}

/// Every method `Cms.call` accepts, from the facade's dispatch table.
#[napi]
pub fn methods() -> Vec<MethodInfo> {
    cms_api::methods()
        .iter()
        .map(|method| MethodInfo {
            name: method.name.to_owned(),
            signature: method.signature.to_owned(),
            doc: method.doc.to_owned(),
            session: method.needs_session(),
        })
        .collect()
}

/// Every error code an `Error` of this package can carry in `code` (besides `panic`, an internal error).
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    CmsError::CODES.to_vec()
}

/// The library's version.
#[napi]
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Parse a Usage API response page (its JSON text: quantities are read exactly from it) into usage records
/// without storing them; `source` names the page in errors (default `"page"`). Synchronous: a page is
/// parsed in about a millisecond. Throws an `Error` with `code` (`bad_json`, `bad_meter_id`, ...).
#[napi(
    ts_args_type = "page: string, source?: string",
    ts_return_type = "{ records: any[]; next_link: string | null }"
)]
pub fn parse_usage_page(env: Env, page: Unknown<'_>, source: Option<Unknown<'_>>) -> napi::Result<Value> {
    free_call(env, "parse_usage_page", |arguments| {
        let arguments = arguments.with("page", page)?;
        match source {
            Some(source) => arguments.with("source", source),
            None => Ok(arguments),
        }
    })
    .map(|mut params| {
        if let Value::Object(fields) = &mut params {
            fields.entry("source").or_insert_with(|| Value::String("page".into()));
        }
        params
    })
    .and_then(|params| cms_api::call("parse_usage_page", params))
    .map_err(|error| js_error(env, &error))
}

/// Evaluate a conformance case of `tests/vectors/*.json` (its `kind` and `input`) and return what it gives,
/// to compare with its `expect`. Throws an `Error` with `code` for a case that fails.
#[napi(ts_args_type = "testCase: Record<string, unknown>", ts_return_type = "any")]
pub fn evaluate_vector(env: Env, test_case: Unknown<'_>) -> napi::Result<Value> {
    free_call(env, "evaluate_vector", |arguments| arguments.with("case", test_case))
        .and_then(|params| cms_api::call("evaluate_vector", params))
        .map_err(|error| js_error(env, &error))
}

/// The parameters of a free method from its arguments.
fn free_call(
    env: Env,
    method: &str,
    arguments: impl FnOnce(Arguments<'_>) -> Result<Arguments<'_>, CmsError>,
) -> Result<Value, CmsError> {
    arguments(Arguments::new(env, method)).map(Arguments::finish)
}
