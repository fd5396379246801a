//! One store type for every session: the engine is generic over its [`Store`], a session chooses the store
//! at run time (memory or a SQLite file), so the facade holds a boxed store and forwards every method to
//! it (the store's own versions included, not the trait's defaults).

use std::path::{Path, PathBuf};

use cms_core::CmsError;
use cms_core::engine::Event;
use cms_core::governance::audit::{AuditHead, AuditRecord};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::{UsageKey, UsageRecord};
use cms_core::source::Checkpoint;
use cms_core::store::{Commit, Document, EventRecord, MemoryStore, Store, UsageWrite};
use cms_sqlite::SqliteStore;
use serde::{Deserialize, Serialize};

/// Where a session keeps its state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreSpec {
    /// In memory: gone when the session is dropped (tests, previews, notebooks).
    Memory,
    /// A SQLite file, created (with its schema) if missing, brought up to date if older.
    Sqlite(PathBuf),
}

impl StoreSpec {
    /// Open the store.
    pub fn open(&self) -> Result<AnyStore, CmsError> {
        match self {
            Self::Memory => Ok(AnyStore::new(MemoryStore::new())),
            Self::Sqlite(path) => Ok(AnyStore::new(open_sqlite(path)?)),
        }
    }
}

fn open_sqlite(path: &Path) -> Result<SqliteStore, CmsError> {
    SqliteStore::open(path)
}

/// A boxed store of any kind.
pub struct AnyStore(Box<dyn Store + Send>);

impl AnyStore {
    /// Box a store.
    pub fn new(store: impl Store + Send + 'static) -> Self {
        Self(Box::new(store))
    }
}

impl Store for AnyStore {
    fn commit(&mut self, commit: &Commit<'_>) -> Result<u64, CmsError> {
        self.0.commit(commit)
    }

    fn append_events(&mut self, actor: &str, at: Instant, events: &[Event]) -> Result<u64, CmsError> {
        self.0.append_events(actor, at, events)
    }

    fn events(&self) -> Result<Vec<EventRecord>, CmsError> {
        self.0.events()
    }

    fn events_after(&self, seq: u64) -> Result<Vec<EventRecord>, CmsError> {
        self.0.events_after(seq)
    }

    fn audit_records(&self) -> Result<Vec<AuditRecord>, CmsError> {
        self.0.audit_records()
    }

    fn audit_head(&self) -> Result<AuditHead, CmsError> {
        self.0.audit_head()
    }

    fn put_documents(&mut self, documents: &[Document]) -> Result<(), CmsError> {
        self.0.put_documents(documents)
    }

    fn documents(&self, kind: &str, key_prefix: &str) -> Result<Vec<Document>, CmsError> {
        self.0.documents(kind, key_prefix)
    }

    fn put_usage(
        &mut self,
        records: &[UsageRecord],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<UsageWrite, CmsError> {
        self.0.put_usage(records, checkpoint)
    }

    fn put_usage_audited(
        &mut self,
        records: &[UsageRecord],
        checkpoint: Option<&Checkpoint>,
        audit: Option<&AuditRecord>,
    ) -> Result<UsageWrite, CmsError> {
        self.0.put_usage_audited(records, checkpoint, audit)
    }

    fn purge_usage(&mut self, period: &Period, audit: Option<&AuditRecord>) -> Result<u64, CmsError> {
        self.0.purge_usage(period, audit)
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>, CmsError> {
        self.0.checkpoints()
    }

    fn usage(&self, key: &UsageKey) -> Result<Option<UsageRecord>, CmsError> {
        self.0.usage(key)
    }

    fn sample_interval(
        &self,
        subscription: &str,
        period: &Period,
    ) -> Result<Option<(Instant, Instant)>, CmsError> {
        self.0.sample_interval(subscription, period)
    }

    fn for_each_usage(
        &self,
        period: &Period,
        visit: &mut dyn FnMut(&UsageRecord) -> Result<(), CmsError>,
    ) -> Result<(), CmsError> {
        self.0.for_each_usage(period, visit)
    }
}
