//! The `Store` trait: where the engine keeps commercial events and usage. Adapters (SQLite, PostgreSQL)
//! implement it at the edge; [`MemoryStore`] implements it here for tests and the demo.
//!
//! Contract, which every implementation passes (see the conformance suite in this module's tests):
//! - events are appended atomically per call, in order, numbered from 1 without gaps, and read back in that
//!   order with who recorded them and when;
//! - documents (drafts now; issued invoices and statements later) are replaced by kind and key, one call
//!   one transaction, and listed by kind and key prefix in key order;
//! - usage is keyed by its natural key (subscription and resource uri compared ignoring ASCII case):
//!   an exact repeat ([`same_values`]) is a duplicate and changes nothing; the same key with another quantity
//!   or source cost replaces the stored record and is reported as a correction; one call is one transaction;
//! - `for_each_usage` visits the records whose usage start lies in the period.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::engine::Event;
use crate::error::CmsError;
use crate::governance::audit::{AuditHead, AuditRecord};
use crate::model::time::{Instant, Period};
use crate::model::usage::{UsageKey, UsageRecord};
use crate::source::Checkpoint;

/// What a usage write did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageWrite {
    /// New records stored.
    pub inserted: u64,
    /// Exact repeats, ignored.
    pub duplicates: u64,
    /// Records that replaced a stored quantity.
    pub corrections: Vec<StoredCorrection>,
}

/// A stored quantity replaced by a later record of the same key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCorrection {
    /// The key.
    pub key: UsageKey,
    /// The quantity that was stored.
    pub old_quantity: Decimal,
    /// The quantity stored now.
    pub new_quantity: Decimal,
}

/// An event as recorded: its place in the log, who recorded it and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Sequence number, from 1, without gaps.
    pub seq: u64,
    /// The principal that recorded it.
    pub actor: String,
    /// When it was recorded (given by the caller: the core has no clock).
    pub at: Instant,
    /// What changed.
    pub event: Event,
}

/// A stored document: a draft invoice or statement now, issued documents later. `body` is JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// What it is (`"draft_invoice"`, ...).
    pub kind: String,
    /// Its key within the kind (e.g. `"2026-10/tenant-a"`).
    pub key: String,
    /// The document as JSON text.
    pub body: String,
}

/// One command's writes, committed together or not at all.
#[derive(Debug, Clone, Copy)]
pub struct Commit<'a> {
    /// Who.
    pub actor: &'a str,
    /// When.
    pub at: Instant,
    /// Events to append (numbered after the last one stored).
    pub events: &'a [Event],
    /// New documents (issued invoices): refused with [`CmsError::Conflict`] if one of the same kind and key
    /// is stored already.
    pub documents: &'a [Document],
    /// The command's audit record. It must extend the stored chain (its `seq` the head's + 1, its `prev` the
    /// head's hash) and name exactly the event numbers this commit gives; otherwise another writer got
    /// there first and the commit is refused with [`CmsError::Conflict`], changing nothing.
    pub audit: Option<&'a AuditRecord>,
}

/// Check that `audit` extends `head` and names the events `first..first + count`.
pub fn check_extends(audit: &AuditRecord, head: &AuditHead, first: u64, count: u64) -> Result<(), CmsError> {
    let events = (count > 0).then(|| (first, first + count - 1));
    if audit.seq != head.seq + 1 || audit.prev != head.hash || audit.events != events {
        return Err(CmsError::Conflict {
            what: format!(
                "audit record {} (events {:?}) after head {} (next event {first})",
                audit.seq, audit.events, head.seq
            ),
        });
    }
    Ok(())
}

/// Persistence for the engine.
pub trait Store {
    /// Commit one command's events, documents and audit record in one transaction; returns the sequence
    /// number of the last event (1-based; the current last when there are none).
    fn commit(&mut self, commit: &Commit<'_>) -> Result<u64, CmsError>;

    /// Append events in one transaction, recorded by `actor` at `at`, without an audit record; returns the
    /// sequence number of the last one (1-based; the current last when `events` is empty).
    fn append_events(&mut self, actor: &str, at: Instant, events: &[Event]) -> Result<u64, CmsError> {
        self.commit(&Commit { actor, at, events, documents: &[], audit: None })
    }

    /// Every event, in append order.
    fn events(&self) -> Result<Vec<EventRecord>, CmsError>;

    /// The events after `seq`, in order (what another writer appended since).
    fn events_after(&self, seq: u64) -> Result<Vec<EventRecord>, CmsError> {
        Ok(self.events()?.into_iter().filter(|record| record.seq > seq).collect())
    }

    /// Every audit record, in chain order.
    fn audit_records(&self) -> Result<Vec<AuditRecord>, CmsError>;

    /// The last audit record's number and hash.
    fn audit_head(&self) -> Result<AuditHead, CmsError> {
        Ok(self.audit_records()?.last().map_or_else(AuditHead::genesis, |record| AuditHead {
            seq: record.seq,
            hash: record.hash.clone(),
        }))
    }

    /// Store documents in one transaction, each replacing the one of the same kind and key.
    fn put_documents(&mut self, documents: &[Document]) -> Result<(), CmsError>;

    /// The documents of `kind` whose key starts with `key_prefix`, in key order.
    fn documents(&self, kind: &str, key_prefix: &str) -> Result<Vec<Document>, CmsError>;

    /// Store usage records in one transaction, deduplicating by natural key. When `checkpoint` is given it
    /// is recorded in the same transaction (replacing the one of its region and subscriber), so a crash
    /// never leaves a checkpoint ahead of the usage it covers.
    fn put_usage(
        &mut self,
        records: &[UsageRecord],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<UsageWrite, CmsError> {
        self.put_usage_audited(records, checkpoint, None)
    }

    /// [`Store::put_usage`] with the ingestion's audit record in the same transaction (checked as in
    /// [`Commit::audit`], naming no events).
    fn put_usage_audited(
        &mut self,
        records: &[UsageRecord],
        checkpoint: Option<&Checkpoint>,
        audit: Option<&AuditRecord>,
    ) -> Result<UsageWrite, CmsError>;

    /// Delete the raw usage records whose usage start lies in `period` (retention), with the purge's audit
    /// record (checked as in [`Commit::audit`], naming no events) in the same transaction; returns how
    /// many were deleted.
    fn purge_usage(&mut self, period: &Period, audit: Option<&AuditRecord>) -> Result<u64, CmsError>;

    /// Every checkpoint, one per (region, subscriber).
    fn checkpoints(&self) -> Result<Vec<Checkpoint>, CmsError>;

    /// The stored record with this natural key (subscription and resource compared ignoring ASCII case).
    fn usage(&self, key: &UsageKey) -> Result<Option<UsageRecord>, CmsError>;

    /// The interval `(start, end)` of any one stored record of `subscription` (ignoring ASCII case) whose
    /// usage starts in `period` and that carries no source cost: what the engine needs to keep one
    /// granularity per subscription and period.
    fn sample_interval(
        &self,
        subscription: &str,
        period: &Period,
    ) -> Result<Option<(Instant, Instant)>, CmsError>;

    /// Visit every stored record whose usage start is in `period`.
    fn for_each_usage(
        &self,
        period: &Period,
        visit: &mut dyn FnMut(&UsageRecord) -> Result<(), CmsError>,
    ) -> Result<(), CmsError>;
}

/// The natural key with subscription and resource uri folded to lower case, as stores compare it.
pub fn folded_key(record: &UsageRecord) -> UsageKey {
    UsageKey {
        subscription: record.subscription.to_ascii_lowercase(),
        meter: record.meter,
        start: record.start,
        end: record.end,
        resource_uri: record.resource_uri.to_ascii_lowercase(),
    }
}

/// Whether two records of one key carry the same values: an exact repeat. Quantities (and source costs)
/// compare as numbers, so `1.5` equals `1.50`.
pub fn same_values(stored: &UsageRecord, incoming: &UsageRecord) -> bool {
    stored.quantity == incoming.quantity && stored.cost == incoming.cost
}

/// A store in memory: for tests, the demo, and embedding apps that persist elsewhere.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    events: Vec<EventRecord>,
    audit: Vec<AuditRecord>,
    documents: BTreeMap<(String, String), Document>,
    usage: BTreeMap<UsageKey, UsageRecord>,
    checkpoints: BTreeMap<(String, Option<String>), Checkpoint>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl MemoryStore {
    fn head(&self) -> AuditHead {
        self.audit.last().map_or_else(AuditHead::genesis, |record| AuditHead {
            seq: record.seq,
            hash: record.hash.clone(),
        })
    }
}

impl Store for MemoryStore {
    fn commit(&mut self, commit: &Commit<'_>) -> Result<u64, CmsError> {
        let first = self.events.len() as u64 + 1;
        if let Some(audit) = commit.audit {
            check_extends(audit, &self.head(), first, commit.events.len() as u64)?;
        }
        if let Some(taken) = commit
            .documents
            .iter()
            .find(|document| self.documents.contains_key(&(document.kind.clone(), document.key.clone())))
        {
            return Err(CmsError::Conflict { what: format!("document {} {} exists", taken.kind, taken.key) });
        }
        for event in commit.events {
            let seq = self.events.len() as u64 + 1;
            self.events.push(EventRecord {
                seq,
                actor: commit.actor.to_owned(),
                at: commit.at,
                event: event.clone(),
            });
        }
        for document in commit.documents {
            self.documents.insert((document.kind.clone(), document.key.clone()), document.clone());
        }
        if let Some(audit) = commit.audit {
            self.audit.push(audit.clone());
        }
        Ok(self.events.len() as u64)
    }

    fn audit_records(&self) -> Result<Vec<AuditRecord>, CmsError> {
        Ok(self.audit.clone())
    }

    fn events(&self) -> Result<Vec<EventRecord>, CmsError> {
        Ok(self.events.clone())
    }

    fn put_documents(&mut self, documents: &[Document]) -> Result<(), CmsError> {
        for document in documents {
            self.documents.insert((document.kind.clone(), document.key.clone()), document.clone());
        }
        Ok(())
    }

    fn documents(&self, kind: &str, key_prefix: &str) -> Result<Vec<Document>, CmsError> {
        Ok(self
            .documents
            .range((kind.to_owned(), key_prefix.to_owned())..)
            .take_while(|((stored_kind, key), _)| stored_kind == kind && key.starts_with(key_prefix))
            .map(|(_, document)| document.clone())
            .collect())
    }

    fn put_usage_audited(
        &mut self,
        records: &[UsageRecord],
        checkpoint: Option<&Checkpoint>,
        audit: Option<&AuditRecord>,
    ) -> Result<UsageWrite, CmsError> {
        if let Some(audit) = audit {
            check_extends(audit, &self.head(), self.events.len() as u64 + 1, 0)?;
            self.audit.push(audit.clone());
        }
        let mut write = UsageWrite::default();
        if let Some(checkpoint) = checkpoint {
            self.checkpoints
                .insert((checkpoint.region.clone(), checkpoint.subscriber.clone()), checkpoint.clone());
        }
        for record in records {
            let key = folded_key(record);
            match self.usage.get_mut(&key) {
                None => {
                    self.usage.insert(key, record.clone());
                    write.inserted += 1;
                }
                Some(stored) if same_values(stored, record) => write.duplicates += 1,
                Some(stored) => {
                    write.corrections.push(StoredCorrection {
                        key: record.key(),
                        old_quantity: stored.quantity,
                        new_quantity: record.quantity,
                    });
                    *stored = record.clone();
                }
            }
        }
        Ok(write)
    }

    fn purge_usage(&mut self, period: &Period, audit: Option<&AuditRecord>) -> Result<u64, CmsError> {
        if let Some(audit) = audit {
            check_extends(audit, &self.head(), self.events.len() as u64 + 1, 0)?;
            self.audit.push(audit.clone());
        }
        let before = self.usage.len();
        self.usage.retain(|_, record| !period.contains(record.start));
        Ok((before - self.usage.len()) as u64)
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>, CmsError> {
        Ok(self.checkpoints.values().cloned().collect())
    }

    fn usage(&self, key: &UsageKey) -> Result<Option<UsageRecord>, CmsError> {
        let folded = UsageKey {
            subscription: key.subscription.to_ascii_lowercase(),
            resource_uri: key.resource_uri.to_ascii_lowercase(),
            ..key.clone()
        };
        Ok(self.usage.get(&folded).cloned())
    }

    fn sample_interval(
        &self,
        subscription: &str,
        period: &Period,
    ) -> Result<Option<(Instant, Instant)>, CmsError> {
        let subscription = subscription.to_ascii_lowercase();
        let from = UsageKey {
            subscription: subscription.clone(),
            meter: crate::model::meter::MeterId::from_u128(0),
            start: Instant::MIN_UTC,
            end: Instant::MIN_UTC,
            resource_uri: String::new(),
        };
        Ok(self
            .usage
            .range(from..)
            .take_while(|(key, _)| key.subscription == subscription)
            .find(|(_, record)| record.cost.is_none() && period.contains(record.start))
            .map(|(_, record)| (record.start, record.end)))
    }

    fn for_each_usage(
        &self,
        period: &Period,
        visit: &mut dyn FnMut(&UsageRecord) -> Result<(), CmsError>,
    ) -> Result<(), CmsError> {
        self.usage.values().filter(|record| period.contains(record.start)).try_for_each(visit)
    }
}

/// The store conformance suite: every `Store` implementation runs these checks on a fresh, empty store.
pub mod conformance {
    use rust_decimal::Decimal;

    use super::{Checkpoint, Document, Event, Period, Store, UsageRecord};
    use crate::model::hierarchy::NodeKind;
    use crate::model::money::parse_decimal;
    use crate::model::time::parse_timestamp;

    fn record(subscription: &str, hour: u32, quantity: &str) -> UsageRecord {
        let start = parse_timestamp(&format!("2026-10-01T{hour:02}:00:00Z")).unwrap_or_default();
        UsageRecord {
            subscription: subscription.into(),
            meter: "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5"
                .parse()
                .unwrap_or(crate::model::meter::MeterId::from_u128(1)),
            start,
            end: start + chrono::Duration::hours(1),
            quantity: parse_decimal(quantity).unwrap_or_default(),
            resource_uri: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
                .into(),
            location: "local".into(),
            ..UsageRecord::default()
        }
    }

    /// Run every check; returns a description of the first failure.
    pub fn run(store: &mut dyn Store) -> Result<(), String> {
        events_and_documents(store)?;
        usage(store)
    }

    fn events_and_documents(store: &mut dyn Store) -> Result<(), String> {
        let events = [
            Event::NodeAdded { id: "d".into(), kind: NodeKind::Distributor, parent: None, name: "D".into() },
            Event::NodeRenamed { id: "d".into(), name: "D2".into() },
        ];
        let at = parse_timestamp("2026-10-05T08:30:00Z").unwrap_or_default();
        let last = store.append_events("alice", at, &events).map_err(|error| error.to_string())?;
        check(last == 2, "append_events returns the last sequence number")?;
        let later = parse_timestamp("2026-10-05T09:00:00+01:00").unwrap_or_default();
        let third = [Event::LabelSet { kind: NodeKind::Tenant, label: "Department".into() }];
        check(
            store.append_events("bob", later, &third).map_err(|error| error.to_string())? == 3,
            "numbering goes on",
        )?;
        check(
            store.append_events("bob", later, &[]).map_err(|error| error.to_string())? == 3,
            "nothing appended",
        )?;
        let recorded = store.events().map_err(|error| error.to_string())?;
        let read: Vec<_> = recorded
            .iter()
            .map(|record| (record.seq, record.actor.as_str(), record.at, &record.event))
            .collect();
        check(
            read == [
                (1, "alice", at, &events[0]),
                (2, "alice", at, &events[1]),
                (3, "bob", later, &third[0]),
            ],
            "events come back in order, with actor, instant and sequence",
        )?;

        let document = |kind: &str, key: &str, body: &str| Document {
            kind: kind.into(),
            key: key.into(),
            body: body.into(),
        };
        store
            .put_documents(&[
                document("draft_invoice", "2026-10/t2", r#"{"total":"2"}"#),
                document("draft_invoice", "2026-10/t1", r#"{"total":"1"}"#),
                document("draft_invoice", "2026-11/t1", r#"{"total":"3"}"#),
                document("draft_statement", "2026-10/p1", r#"{"total":"4"}"#),
            ])
            .map_err(|error| error.to_string())?;
        store
            .put_documents(&[document("draft_invoice", "2026-10/t2", r#"{"total":"2.5"}"#)])
            .map_err(|error| error.to_string())?;
        let october_drafts =
            store.documents("draft_invoice", "2026-10/").map_err(|error| error.to_string())?;
        check(
            october_drafts
                == [
                    document("draft_invoice", "2026-10/t1", r#"{"total":"1"}"#),
                    document("draft_invoice", "2026-10/t2", r#"{"total":"2.5"}"#),
                ],
            "documents by kind and key prefix, in key order, replaced by key",
        )?;
        check(
            store.documents("draft_invoice", "").map_err(|error| error.to_string())?.len() == 3,
            "an empty prefix lists the kind",
        )?;
        check(
            store.documents("issued_invoice", "").map_err(|error| error.to_string())?.is_empty(),
            "no such kind",
        )?;

        Ok(())
    }

    fn usage(store: &mut dyn Store) -> Result<(), String> {
        let batch = [record("sub-a", 0, "1.5"), record("sub-a", 1, "2"), record("sub-b", 0, "3")];
        let first = store.put_usage(&batch, None).map_err(|error| error.to_string())?;
        check(first.inserted == 3 && first.duplicates == 0, "a new batch is inserted")?;
        let again = store.put_usage(&batch, None).map_err(|error| error.to_string())?;
        check(
            again.inserted == 0 && again.duplicates == 3 && again.corrections.is_empty(),
            "a replay is all duplicates",
        )?;
        let mut shouted = record("SUB-A", 0, "1.50");
        shouted.resource_uri = shouted.resource_uri.to_uppercase();
        let folded = store.put_usage(&[shouted], None).map_err(|error| error.to_string())?;
        check(folded.duplicates == 1, "keys ignore case of subscription and resource; 1.5 equals 1.50")?;
        let checkpoint = Checkpoint {
            region: "east".into(),
            subscriber: Some("sub-a".into()),
            granularity: crate::source::Granularity::Hourly,
            reported_until: parse_timestamp("2026-10-02T00:00:00Z").unwrap_or_default(),
        };
        let corrected = store
            .put_usage(&[record("sub-a", 1, "2.25")], Some(&checkpoint))
            .map_err(|error| error.to_string())?;
        check(corrected.corrections.len() == 1 && corrected.inserted == 0, "a new quantity is a correction")?;
        check(
            store.checkpoints().map_err(|error| error.to_string())? == [checkpoint.clone()],
            "a checkpoint is stored",
        )?;
        let later = Checkpoint {
            reported_until: parse_timestamp("2026-10-03T00:00:00Z").unwrap_or_default(),
            ..checkpoint
        };
        store.put_usage(&[], Some(&later)).map_err(|error| error.to_string())?;
        check(
            store.checkpoints().map_err(|error| error.to_string())? == [later],
            "a checkpoint replaces its predecessor",
        )?;

        let mut costly = record("sub-c", 2, "1");
        costly.cost = Some(crate::model::usage::SourceCost {
            amount: parse_decimal("4.5").unwrap_or_default(),
            currency: crate::model::money::Currency::USD,
        });
        store.put_usage(std::slice::from_ref(&costly), None).map_err(|error| error.to_string())?;
        let mut restated = costly.clone();
        restated.cost = Some(crate::model::usage::SourceCost {
            amount: parse_decimal("4.75").unwrap_or_default(),
            currency: crate::model::money::Currency::USD,
        });
        let cost_change = store.put_usage(&[restated.clone()], None).map_err(|error| error.to_string())?;
        check(cost_change.corrections.len() == 1, "another source cost for the same key is a correction")?;
        let kept = store.usage(&restated.key()).map_err(|error| error.to_string())?;
        check(kept.is_some_and(|found| found.cost == restated.cost), "the new cost is kept")?;
        let stored = store.usage(&record("SUB-A", 1, "0").key()).map_err(|error| error.to_string())?;
        check(
            stored.is_some_and(|found| found.quantity == parse_decimal("2.25").unwrap_or_default()),
            "usage by key",
        )?;
        check(
            store.usage(&record("sub-z", 1, "0").key()).map_err(|error| error.to_string())?.is_none(),
            "no such key",
        )?;

        let october = Period::month(2026, 10).map_err(|error| error.to_string())?;
        let sample = store.sample_interval("SUB-B", &october).map_err(|error| error.to_string())?;
        check(
            sample.is_some_and(|(start, end)| end - start == chrono::Duration::hours(1)),
            "a sample interval",
        )?;
        let september = Period::month(2026, 9).map_err(|error| error.to_string())?;
        check(
            store.sample_interval("sub-b", &september).map_err(|error| error.to_string())?.is_none(),
            "none outside",
        )?;
        let mut total = Decimal::ZERO;
        let mut count = 0;
        store
            .for_each_usage(&october, &mut |record| {
                total += record.quantity;
                count += 1;
                Ok(())
            })
            .map_err(|error| error.to_string())?;
        check(
            count == 4 && total == parse_decimal("7.75").unwrap_or_default(),
            "usage reads back with the correction",
        )?;
        let november = october.next_month().map_err(|error| error.to_string())?;
        let mut outside = 0;
        store
            .for_each_usage(&november, &mut |_| {
                outside += 1;
                Ok(())
            })
            .map_err(|error| error.to_string())?;
        check(outside == 0, "for_each_usage keeps to the period")
    }

    fn check(condition: bool, what: &str) -> Result<(), String> {
        if condition { Ok(()) } else { Err(format!("store conformance: {what}")) }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn memory_store_conforms() {
            super::run(&mut crate::store::MemoryStore::new()).unwrap();
        }
    }
}
