//! The one error type of the core.
//!
//! Every variant has a stable snake_case [`CmsError::code`]; once published a code keeps its meaning.
//! Messages name the record at fault (source, line or record index, key) so an operator can find it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a bad record sits: a source name (file or page) and a position inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// File name, page name or another label of the input.
    pub source: String,
    /// Where inside the source.
    pub position: Position,
}

/// A position inside a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// The whole source.
    Whole,
    /// A 1-based line number (CSV files, counting the header as line 1).
    Line(u64),
    /// A 0-based record index (Usage API pages: index into `value[]`).
    Record(u64),
    /// A field of the source (JSON documents such as plan.json).
    Field(String),
}

impl Location {
    /// A location for the whole source.
    pub fn whole(source: impl Into<String>) -> Self {
        Self { source: source.into(), position: Position::Whole }
    }
    /// A 1-based line of a text source.
    pub fn line(source: impl Into<String>, line: u64) -> Self {
        Self { source: source.into(), position: Position::Line(line) }
    }
    /// A 0-based record index of a page.
    pub fn record(source: impl Into<String>, index: u64) -> Self {
        Self { source: source.into(), position: Position::Record(index) }
    }
    /// A named field of a document.
    pub fn field(source: impl Into<String>, field: &str) -> Self {
        Self { source: source.into(), position: Position::Field(field.to_owned()) }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.position {
            Position::Whole => write!(f, "{}", self.source),
            Position::Line(line) => write!(f, "{} line {line}", self.source),
            Position::Record(index) => write!(f, "{} record {index}", self.source),
            Position::Field(field) => write!(f, "{} field {field}", self.source),
        }
    }
}

/// Every error the core can return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmsError {
    /// An input could not be read at all (missing file, permission, broken stream).
    #[error("{at}: cannot read: {message}")]
    Io {
        /// The input.
        at: Location,
        /// What the operating system said.
        message: String,
    },
    /// A CSV header lacks a required column.
    #[error("{at}: bad header: expected column {expected:?}, found {found:?}")]
    BadHeader {
        /// The file (line 1).
        at: Location,
        /// The missing column.
        expected: String,
        /// The header as read.
        found: Vec<String>,
    },
    /// A record is malformed (wrong number of fields, bad quoting, invalid UTF-8, an empty required field).
    #[error("{at}: bad record: {reason}")]
    BadRecord {
        /// The record.
        at: Location,
        /// What is wrong with it.
        reason: String,
    },
    /// A field that must be a decimal number is not one.
    #[error("{at}: bad decimal {text:?} in {field}")]
    BadDecimal {
        /// The record.
        at: Location,
        /// The field.
        field: String,
        /// The text as read.
        text: String,
    },
    /// A field that must be a timestamp is not one.
    #[error("{at}: bad timestamp {text:?} in {field} (expected ISO 8601 / RFC 3339)")]
    BadTimestamp {
        /// The record.
        at: Location,
        /// The field.
        field: String,
        /// The text as read.
        text: String,
    },
    /// A meter id is not a GUID (32 hex digits, with or without dashes).
    #[error("{at}: bad meter id {text:?} (expected a GUID, 32 hex digits with or without dashes)")]
    BadMeterId {
        /// The record.
        at: Location,
        /// The text as read.
        text: String,
    },
    /// A usage quantity is negative.
    #[error("{at}: negative quantity {quantity} for meter {meter}")]
    NegativeQuantity {
        /// The record.
        at: Location,
        /// The meter.
        meter: String,
        /// The quantity as read.
        quantity: String,
    },
    /// A usage interval ends at or before it starts.
    #[error("{at}: usage interval ends at {end}, not after its start {start}")]
    BadInterval {
        /// The record.
        at: Location,
        /// Start as read.
        start: String,
        /// End as read.
        end: String,
    },
    /// Usage names a subscription that is not in the channel.
    #[error("{at}: unknown subscription {subscription:?}")]
    UnknownSubscription {
        /// The record.
        at: Location,
        /// The subscription id as read.
        subscription: String,
    },
    /// A node id was referenced but does not exist (or is outside the caller's reach).
    #[error("unknown {kind} {id:?}{}", context_suffix(.context.as_ref()))]
    UnknownNode {
        /// What kind of node was expected.
        kind: String,
        /// The id.
        id: String,
        /// Where it was referenced, if from an input.
        context: Option<Location>,
    },
    /// A node id is already taken.
    #[error("duplicate node id {id:?}{}", context_suffix(.context.as_ref()))]
    DuplicateNode {
        /// The id.
        id: String,
        /// Where it was defined a second time.
        context: Option<Location>,
    },
    /// A node would break the channel shape (wrong parent kind, a cycle, a kind that is not known).
    #[error("invalid hierarchy at {id:?}: {reason}{}", context_suffix(.context.as_ref()))]
    InvalidHierarchy {
        /// The node at fault.
        id: String,
        /// Why.
        reason: String,
        /// Where it was defined.
        context: Option<Location>,
    },
    /// Two tiers (or commission bands) start at the same amount.
    #[error("tiers of {schedule} overlap: two tiers start at {from}")]
    TierOverlap {
        /// The meter or plan the tiers belong to.
        schedule: String,
        /// The repeated start.
        from: String,
    },
    /// A tier schedule does not start at zero, or is empty.
    #[error("tiers of {schedule} must start at 0 (first tier starts at {first})")]
    TierStart {
        /// The meter or plan.
        schedule: String,
        /// The first start found ("none" when empty).
        first: String,
    },
    /// A billing period could not be parsed or is empty.
    #[error("invalid period {text:?}: {reason}")]
    InvalidPeriod {
        /// The text as read.
        text: String,
        /// Why.
        reason: String,
    },
    /// A plan, option or configuration value is invalid.
    #[error("{at}: invalid value {text:?}: {reason}")]
    InvalidValue {
        /// Where the value came from.
        at: Location,
        /// The value as read.
        text: String,
        /// What would be valid.
        reason: String,
    },
    /// A JSON document does not match its schema.
    #[error("{at}: bad JSON: {message}")]
    BadJson {
        /// The document.
        at: Location,
        /// What serde_json said.
        message: String,
    },
    /// Usage was found for meters no price list prices, and the run was strict about it.
    #[error("{count} usage row(s) of meter {meter} have no price (first at {first})")]
    UnpricedMeter {
        /// The meter.
        meter: String,
        /// How many rows.
        count: u64,
        /// The first row.
        first: Location,
    },
    /// One document would mix currencies (price lists of different currencies reach one tenant).
    #[error("{document} mixes currencies {first} and {second}")]
    CurrencyMismatch {
        /// The document (e.g. "invoice of tenant t1").
        document: String,
        /// The first currency.
        first: String,
        /// The other currency.
        second: String,
    },
    /// An amount could not be represented (overflow of 28 significant digits).
    #[error("arithmetic overflow computing {what}")]
    Overflow {
        /// What was being computed.
        what: String,
    },
    /// One subscription reports both hourly and daily usage in one period; mixing would double count.
    #[error("{at}: subscription {subscription} would mix granularities: {detail}")]
    MixedGranularity {
        /// The record that would mix.
        at: Location,
        /// The subscription.
        subscription: String,
        /// Which granularities, in which period.
        detail: String,
    },
    /// Usage arrived for a period invoiced longer ago than the look-back window allows.
    #[error(
        "{at}: usage of {period} arrived after that period was invoiced and beyond the look-back window of {window} period(s)"
    )]
    LateUsageRefused {
        /// The record.
        at: Location,
        /// The period the usage belongs to.
        period: String,
        /// The look-back window, in periods.
        window: u32,
    },
    /// An HTTP exchange failed (connection, TLS, timeout, or an unexpected status after retries).
    #[error("HTTP {method} {url}: {message}")]
    Http {
        /// Method.
        method: String,
        /// URL (without secrets).
        url: String,
        /// Status code, when a response arrived.
        status: Option<u16>,
        /// What went wrong.
        message: String,
    },
    /// The Usage API answered with one of its documented error codes.
    #[error("Usage API {url}: {api_code}: {message}")]
    UsageApi {
        /// URL (without secrets).
        url: String,
        /// The API's code (`NoApiVersion`, `InvalidProperty`, `RequestEndTimeIsInFuture`,
        /// `SubscriberIdIsNotDirectTenant`, `SubscriptionIdMissingInRequest`, `InvalidAggregationGranularity`,
        /// `ServiceUnavailable`, ...).
        api_code: String,
        /// The API's message.
        message: String,
    },
    /// A token could not be obtained from the identity provider (Entra ID or AD FS).
    #[error("authentication at {authority} failed: {message}")]
    Auth {
        /// Authority URL.
        authority: String,
        /// What the identity provider said.
        message: String,
    },
    /// A store could not complete an operation.
    #[error("store failure: {message}")]
    Store {
        /// What the store said.
        message: String,
    },
    /// Another writer committed first: nothing was written; refresh and retry.
    #[error("conflict: {what}")]
    Conflict {
        /// What collided.
        what: String,
    },
    /// The principal may see the object but holds no role that allows the action there.
    #[error("forbidden: {principal} may not {action} at {scope}")]
    Forbidden {
        /// The principal's id.
        principal: String,
        /// The action.
        action: String,
        /// Where.
        scope: String,
    },
    /// A governance policy refuses the command.
    #[error("refused by policy {policy}: {reason}")]
    PolicyRefused {
        /// The policy.
        policy: String,
        /// Why.
        reason: String,
    },
    /// The audit trail or a document does not verify.
    #[error("audit trail broken at record {seq}: {reason}")]
    AuditBroken {
        /// The first broken record.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
}

fn context_suffix(context: Option<&Location>) -> String {
    context.map(|at| format!(" ({at})")).unwrap_or_default()
}

impl CmsError {
    /// The stable snake_case code of this error, the same in Rust, Python, Node and C.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::BadHeader { .. } => "bad_header",
            Self::BadRecord { .. } => "bad_record",
            Self::BadDecimal { .. } => "bad_decimal",
            Self::BadTimestamp { .. } => "bad_timestamp",
            Self::BadMeterId { .. } => "bad_meter_id",
            Self::NegativeQuantity { .. } => "negative_quantity",
            Self::BadInterval { .. } => "bad_interval",
            Self::UnknownSubscription { .. } => "unknown_subscription",
            Self::UnknownNode { .. } => "unknown_node",
            Self::DuplicateNode { .. } => "duplicate_node",
            Self::InvalidHierarchy { .. } => "invalid_hierarchy",
            Self::TierOverlap { .. } => "tier_overlap",
            Self::TierStart { .. } => "tier_start",
            Self::InvalidPeriod { .. } => "invalid_period",
            Self::InvalidValue { .. } => "invalid_value",
            Self::BadJson { .. } => "bad_json",
            Self::UnpricedMeter { .. } => "unpriced_meter",
            Self::CurrencyMismatch { .. } => "currency_mismatch",
            Self::Overflow { .. } => "overflow",
            Self::MixedGranularity { .. } => "mixed_granularity",
            Self::LateUsageRefused { .. } => "late_usage_refused",
            Self::Http { .. } => "http",
            Self::UsageApi { .. } => "usage_api",
            Self::Auth { .. } => "auth",
            Self::Store { .. } => "store",
            Self::Conflict { .. } => "conflict",
            Self::Forbidden { .. } => "forbidden",
            Self::PolicyRefused { .. } => "policy_refused",
            Self::AuditBroken { .. } => "audit_broken",
        }
    }

    /// The location of the record at fault, for errors that name one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Io { at, .. }
            | Self::BadHeader { at, .. }
            | Self::BadRecord { at, .. }
            | Self::BadDecimal { at, .. }
            | Self::BadTimestamp { at, .. }
            | Self::BadMeterId { at, .. }
            | Self::NegativeQuantity { at, .. }
            | Self::BadInterval { at, .. }
            | Self::UnknownSubscription { at, .. }
            | Self::InvalidValue { at, .. }
            | Self::BadJson { at, .. }
            | Self::MixedGranularity { at, .. }
            | Self::LateUsageRefused { at, .. } => Some(at),
            Self::UnknownNode { context, .. }
            | Self::DuplicateNode { context, .. }
            | Self::InvalidHierarchy { context, .. } => context.as_ref(),
            Self::UnpricedMeter { first, .. } => Some(first),
            Self::TierOverlap { .. }
            | Self::TierStart { .. }
            | Self::InvalidPeriod { .. }
            | Self::CurrencyMismatch { .. }
            | Self::Overflow { .. }
            | Self::Http { .. }
            | Self::UsageApi { .. }
            | Self::Auth { .. }
            | Self::Store { .. }
            | Self::Conflict { .. }
            | Self::Forbidden { .. }
            | Self::PolicyRefused { .. }
            | Self::AuditBroken { .. } => None,
        }
    }

    /// The location of the record at fault, to adjust it (a parser that saw a part of a file knows lines
    /// relative to that part).
    pub fn location_mut(&mut self) -> Option<&mut Location> {
        match self {
            Self::Io { at, .. }
            | Self::BadHeader { at, .. }
            | Self::BadRecord { at, .. }
            | Self::BadDecimal { at, .. }
            | Self::BadTimestamp { at, .. }
            | Self::BadMeterId { at, .. }
            | Self::NegativeQuantity { at, .. }
            | Self::BadInterval { at, .. }
            | Self::UnknownSubscription { at, .. }
            | Self::InvalidValue { at, .. }
            | Self::BadJson { at, .. }
            | Self::MixedGranularity { at, .. }
            | Self::LateUsageRefused { at, .. } => Some(at),
            Self::UnknownNode { context, .. }
            | Self::DuplicateNode { context, .. }
            | Self::InvalidHierarchy { context, .. } => context.as_mut(),
            Self::UnpricedMeter { first, .. } => Some(first),
            Self::TierOverlap { .. }
            | Self::TierStart { .. }
            | Self::InvalidPeriod { .. }
            | Self::CurrencyMismatch { .. }
            | Self::Overflow { .. }
            | Self::Http { .. }
            | Self::UsageApi { .. }
            | Self::Auth { .. }
            | Self::Store { .. }
            | Self::Conflict { .. }
            | Self::Forbidden { .. }
            | Self::PolicyRefused { .. }
            | Self::AuditBroken { .. } => None,
        }
    }

    /// Every code the core can return, for bindings and conformance checks.
    pub const CODES: &'static [&'static str] = &[
        "io",
        "bad_header",
        "bad_record",
        "bad_decimal",
        "bad_timestamp",
        "bad_meter_id",
        "negative_quantity",
        "bad_interval",
        "unknown_subscription",
        "unknown_node",
        "duplicate_node",
        "invalid_hierarchy",
        "tier_overlap",
        "tier_start",
        "invalid_period",
        "invalid_value",
        "bad_json",
        "unpriced_meter",
        "currency_mismatch",
        "overflow",
        "mixed_granularity",
        "late_usage_refused",
        "http",
        "usage_api",
        "auth",
        "store",
        "conflict",
        "forbidden",
        "policy_refused",
        "audit_broken",
    ];
}

/// The core's result type.
pub type Result<T, E = CmsError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_record() {
        let error = CmsError::BadDecimal {
            at: Location::line("usage.csv", 12),
            field: "quantity".into(),
            text: "1,5".into(),
        };
        assert_eq!(error.to_string(), "usage.csv line 12: bad decimal \"1,5\" in quantity");
        assert_eq!(error.code(), "bad_decimal");
    }

    #[test]
    fn codes_are_unique_snake_case() {
        let mut seen = std::collections::BTreeSet::new();
        for code in CmsError::CODES {
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{code}");
            assert!(seen.insert(code), "duplicate code {code}");
        }
    }
}
