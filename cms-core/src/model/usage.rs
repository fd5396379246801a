//! Usage records and their natural key.
//!
//! The natural key of a record is (subscription, meter, usage start, usage end, resource uri). An exact
//! repeat is a duplicate and counts once; the same key with another quantity is a correction that replaces
//! the earlier value and is reported.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::meter::MeterId;
use crate::model::time::Instant;

/// One usage record: a quantity of a meter consumed by a resource in `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The tenant subscription that consumed it.
    pub subscription: String,
    /// The meter.
    pub meter: MeterId,
    /// Usage start (UTC, inclusive).
    pub start: Instant,
    /// Usage end (UTC, exclusive).
    pub end: Instant,
    /// Quantity in the meter's unit, exact.
    pub quantity: Decimal,
    /// Fully qualified resource id (may be empty when the source has none).
    pub resource_uri: String,
    /// Region (Azure Stack Hub location) that reported it.
    pub location: String,
    /// The user's resource tags, if any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

impl UsageRecord {
    /// The natural key.
    pub fn key(&self) -> UsageKey {
        UsageKey {
            subscription: self.subscription.clone(),
            meter: self.meter,
            start: self.start,
            end: self.end,
            resource_uri: self.resource_uri.clone(),
        }
    }
}

/// The natural key of a usage record.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct UsageKey {
    /// Subscription.
    pub subscription: String,
    /// Meter.
    pub meter: MeterId,
    /// Usage start.
    pub start: Instant,
    /// Usage end.
    pub end: Instant,
    /// Resource.
    pub resource_uri: String,
}

/// A usage row borrowed from a parser's buffer: the allocation-free form the rating hot path takes.
/// Times are Unix seconds, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageRow<'a> {
    /// Subscription id as spelled in the source.
    pub subscription: &'a str,
    /// Meter.
    pub meter: MeterId,
    /// Usage start, Unix seconds.
    pub start: i64,
    /// Usage end, Unix seconds.
    pub end: i64,
    /// Quantity.
    pub quantity: Decimal,
    /// Resource uri.
    pub resource_uri: &'a str,
    /// Region.
    pub location: &'a str,
}

impl UsageRecord {
    /// The borrowed form of this record.
    pub fn as_row(&self) -> UsageRow<'_> {
        UsageRow {
            subscription: &self.subscription,
            meter: self.meter,
            start: self.start.timestamp(),
            end: self.end.timestamp(),
            quantity: self.quantity,
            resource_uri: &self.resource_uri,
            location: &self.location,
        }
    }
}
