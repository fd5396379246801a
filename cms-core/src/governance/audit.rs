//! The audit trail: one record per command, done or refused, hash-chained.
//!
//! Each record names the actor, the instant (the caller's clock: the core has none), the command, its
//! target, the outcome (done, or refused with the error's code and message), the events it recorded, a
//! content hash where the command carried content (an ingestion batch, issued documents), and the state
//! digest before and after it. The state digest is a running SHA-256 over the event log (each event's
//! canonical JSON with its sequence number, actor and instant), so it changes exactly when the state does.
//!
//! `hash = SHA-256(prev || canonical JSON of every other field)`, `prev` being the previous record's hash
//! (64 zeros for the first). [`verify`] walks the chain and the event log together and names the first
//! broken link: a record edited, deleted, inserted or moved, events edited or missing, or a chain shorter
//! than a head exported earlier.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::CmsError;
use crate::model::time::Instant;
use crate::store::EventRecord;

/// The `prev` of the first record, and the state digest of an empty log.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Done: its events were recorded.
    Done,
    /// Refused: nothing changed.
    Refused {
        /// The error's stable code.
        code: String,
        /// The error's message.
        message: String,
    },
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1 without gaps.
    pub seq: u64,
    /// When (the instant the command was given).
    pub at: Instant,
    /// Who.
    pub actor: String,
    /// The node the actor acted at.
    pub scope: String,
    /// The command (`node_added`, `issue_invoices`, `ingest`, ...).
    pub command: String,
    /// What it was aimed at (a node, a list, a period, a document number, a batch name).
    pub target: String,
    /// Done or refused.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The first and last event sequence numbers it recorded (none when refused or event-less).
    pub events: Option<(u64, u64)>,
    /// SHA-256 of the content it carried (the ingestion batch; the issued documents' hashes), if any.
    pub content: Option<String>,
    /// State digest before.
    pub before: String,
    /// State digest after.
    pub after: String,
    /// The previous record's hash.
    pub prev: String,
    /// This record's hash.
    pub hash: String,
}

/// The end of a chain: what an export carries, to check a copy later against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditHead {
    /// The last record's sequence number (0: empty).
    pub seq: u64,
    /// Its hash ([`GENESIS`] when empty).
    pub hash: String,
}

impl AuditHead {
    /// The head of an empty chain.
    pub fn genesis() -> Self {
        Self { seq: 0, hash: GENESIS.to_owned() }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// SHA-256 of bytes, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The canonical bytes a record's hash covers: every field but `hash`, as JSON in field order.
fn canonical(record: &AuditRecord) -> Result<Vec<u8>, CmsError> {
    let mut unhashed = record.clone();
    unhashed.hash = String::new();
    serde_json::to_vec(&unhashed)
        .map_err(|error| CmsError::Store { message: format!("audit record: {error}") })
}

impl AuditRecord {
    /// The hash this record should carry.
    pub fn compute_hash(&self) -> Result<String, CmsError> {
        let mut hasher = Sha256::new();
        hasher.update(self.prev.as_bytes());
        hasher.update(canonical(self)?);
        Ok(hex(&hasher.finalize()))
    }

    /// Set `hash` from the other fields.
    pub fn seal(mut self) -> Result<Self, CmsError> {
        self.hash = self.compute_hash()?;
        Ok(self)
    }
}

/// The state digest after `record`, from the digest before it.
pub fn next_digest(before: &str, record: &EventRecord) -> Result<String, CmsError> {
    let bytes = serde_json::to_vec(record)
        .map_err(|error| CmsError::Store { message: format!("event {}: {error}", record.seq) })?;
    let mut hasher = Sha256::new();
    hasher.update(before.as_bytes());
    hasher.update(bytes);
    Ok(hex(&hasher.finalize()))
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenLink {
    /// The sequence number of the first record that does not hold (or the count expected, for a chain cut
    /// short).
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Records checked.
    pub records: u64,
    /// Events checked.
    pub events: u64,
    /// The chain's head.
    pub head: AuditHead,
    /// The first broken link, if any.
    pub broken: Option<BrokenLink>,
}

/// Walk the chain and the event log together: sequence numbers from 1 without gaps, each `prev` the hash
/// before, each hash recomputed, the events each record names present and in order, the state digests
/// recomputed from the events, every event covered by a record, and (if given) the chain at least as long as
/// `expected` with the same hash there.
pub fn verify(records: &[AuditRecord], events: &[EventRecord], expected: Option<&AuditHead>) -> Verification {
    let mut digest = GENESIS.to_owned();
    let mut prev = GENESIS.to_owned();
    let mut next_event = 1u64;
    let broken = |seq: u64, reason: String| Some(BrokenLink { seq, reason });
    let mut found = None;
    let mut head = AuditHead::genesis();
    for (index, record) in records.iter().enumerate() {
        let seq = index as u64 + 1;
        if record.seq != seq {
            found =
                broken(seq, format!("record {seq} is missing or out of place (found {} there)", record.seq));
            break;
        }
        if record.prev != prev {
            found = broken(seq, "does not follow the record before it (prev hash differs)".into());
            break;
        }
        match record.compute_hash() {
            Ok(hash) if hash == record.hash => {}
            _ => {
                found = broken(seq, "its content does not match its hash (edited)".into());
                break;
            }
        }
        if record.before != digest {
            found = broken(seq, "the state before it differs from the events recorded before it".into());
            break;
        }
        if let Some((first, last)) = record.events {
            if first != next_event || last < first {
                found =
                    broken(seq, format!("names events {first}..={last}, expected to start at {next_event}"));
                break;
            }
            for event_seq in first..=last {
                let Some(event) = usize::try_from(event_seq - 1).ok().and_then(|at| events.get(at)) else {
                    found = broken(seq, format!("event {event_seq} it recorded is missing"));
                    break;
                };
                if event.seq != event_seq {
                    found = broken(seq, format!("event {event_seq} it recorded is missing or moved"));
                    break;
                }
                match next_digest(&digest, event) {
                    Ok(next) => digest = next,
                    Err(error) => {
                        found = broken(seq, error.to_string());
                        break;
                    }
                }
            }
            if found.is_some() {
                break;
            }
            next_event = last + 1;
        }
        if record.after != digest {
            found = broken(seq, "the state after it differs from its events (an event was edited)".into());
            break;
        }
        prev.clone_from(&record.hash);
        head = AuditHead { seq, hash: record.hash.clone() };
    }
    if found.is_none() && (next_event - 1) < events.len() as u64 {
        found = broken(head.seq + 1, format!("event {next_event} is recorded by no audit record"));
    }
    if found.is_none()
        && let Some(expected) = expected
    {
        let at = usize::try_from(expected.seq)
            .ok()
            .and_then(|seq| seq.checked_sub(1))
            .and_then(|index| records.get(index));
        match at {
            _ if expected.seq == 0 => {}
            Some(record) if record.hash == expected.hash => {}
            Some(_) => found = broken(expected.seq, "differs from the head exported earlier".into()),
            None => {
                found = broken(
                    head.seq + 1,
                    format!("the chain ends at {} but an exported head reaches {}", head.seq, expected.seq),
                );
            }
        }
    }
    Verification { records: records.len() as u64, events: events.len() as u64, head, broken: found }
}
