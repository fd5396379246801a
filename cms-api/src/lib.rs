//! # cms-api
//!
//! The one place every language binding calls, so each binding stays thin (convert, call, map the error):
//!
//! - [`month_end`]: the month-end job of `../shared/bench/WORKLOAD.md` on a folder of files (what
//!   `cms month-end` runs), returning a serialisable [`month_end::Summary`];
//! - [`Session`]: the engine ([`cms_core::engine::Cms`]) on a memory store or a SQLite file, with every
//!   public command and query reachable through [`Session::call`]`(method, params) -> result`, JSON in
//!   and out (decimals as strings, instants as RFC 3339, principals as `{"id", "node"}`);
//! - [`methods()`]: the list of methods (name, signature, one-line doc), from the single dispatch table
//!   in [`mod@methods`];
//! - [`vectors`]: the conformance vectors as facade calls, and the reference runner.
//!
//! Errors are the core's [`CmsError`], whose stable [`CmsError::code`] every language exposes. An unknown
//! method is `invalid_value` at `call field method`; a bad parameter names the method and the field
//! (`issue_invoices field period: ...`).

pub mod methods;
pub mod month_end;
pub mod params;
pub mod session;
pub mod store;
pub mod vectors;

pub use cms_core::CmsError;
pub use methods::Method;
pub use session::Session;
pub use store::{AnyStore, StoreSpec};

/// Call a method that needs no session (`month_end`, `parse_usage_page`, `methods`, `error_codes`,
/// `version`, `evaluate_vector`); the others are refused with `invalid_value` (open a [`Session`]).
pub fn call(method: &str, params: serde_json::Value) -> Result<serde_json::Value, CmsError> {
    methods::dispatch(None, method, params)
}

/// Every method: the dispatch table of [`mod@methods`].
pub fn methods() -> &'static [Method] {
    methods::METHODS
}
