//! A session: the engine ([`cms_core::engine::Cms`]) opened on a store, driven by JSON calls.
//!
//! ```
//! use cms_api::{Session, StoreSpec};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), cms_core::CmsError> {
//! let mut session = Session::open(&StoreSpec::Memory)?;
//! let operator = json!({"id": "operator", "node": "platform"});
//! session.call("execute", json!({
//!     "principal": operator,
//!     "at": "2026-09-01T00:00:00Z",
//!     "event": {"type": "node_added", "id": "contoso", "kind": "partner", "parent": null, "name": "Contoso"},
//! }))?;
//! let nodes = session.call("nodes", json!({"principal": operator, "at": "2026-09-02T00:00:00Z"}))?;
//! assert_eq!(nodes[1]["id"], "contoso");
//! # Ok(())
//! # }
//! ```

use cms_core::CmsError;
use cms_core::engine::{Cms, IngestSummary};
use cms_core::source::PageOrigin;
use serde_json::Value;

use crate::methods;
use crate::store::{AnyStore, StoreSpec};

/// The engine on a store, and the JSON calls every binding makes on it.
pub struct Session {
    engine: Cms<AnyStore>,
    spec: StoreSpec,
}

impl Session {
    /// Open a session: open the store (a SQLite file is created if missing) and replay its events.
    pub fn open(spec: &StoreSpec) -> Result<Self, CmsError> {
        Ok(Self { engine: Cms::open(spec.open()?)?, spec: spec.clone() })
    }

    /// A session on a fresh in-memory store.
    pub fn memory() -> Result<Self, CmsError> {
        Self::open(&StoreSpec::Memory)
    }

    /// A session on a SQLite file.
    pub fn sqlite(path: impl Into<std::path::PathBuf>) -> Result<Self, CmsError> {
        Self::open(&StoreSpec::Sqlite(path.into()))
    }

    /// Where this session keeps its state.
    pub fn store_spec(&self) -> &StoreSpec {
        &self.spec
    }

    /// Call a method by name with its parameters (a JSON object; `null` for none) and get its result as
    /// JSON. [`crate::methods()`] lists the methods; `crate::methods` documents the conventions. Commands
    /// that are refused change nothing.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, CmsError> {
        methods::dispatch(Some(&mut self.engine), method, params)
    }

    /// Ingest one Usage API response page, given as its JSON text (exact quantities are read from the
    /// text, so it is not parsed into a JSON value first), named `source` in errors and in the audit trail.
    pub fn ingest_page(&mut self, page: &[u8], source: &str) -> Result<IngestSummary, CmsError> {
        methods::ingest_page_bytes(&mut self.engine, page, &PageOrigin::named(source), None)
    }

    /// The engine, for Rust callers that want its typed API.
    pub fn engine(&self) -> &Cms<AnyStore> {
        &self.engine
    }

    /// The engine, mutable.
    pub fn engine_mut(&mut self) -> &mut Cms<AnyStore> {
        &mut self.engine
    }
}
