//! Usage records and their natural key.
//!
//! The natural key of a record is (subscription, meter, usage start, usage end, resource uri). An exact
//! repeat is a duplicate and counts once; the same key with another quantity is a correction that replaces
//! the earlier value and is reported.
//!
//! A record that arrives (or is corrected) after its period was invoiced carries [`Adjustment`]s: the
//! quantity it added, and the later period whose invoice bills that difference. The quantity the closed
//! period was invoiced on stays derivable (`quantity - sum of deltas`), so an issued month re-rates to the
//! same figures.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::model::meter::MeterId;
use crate::model::money::Currency;
use crate::model::time::{Instant, Period};

/// A change to a record after its period was closed: `delta` of quantity, billed on the invoice of
/// `billed_in` (the first open period after the close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    /// The period whose invoice carries the adjustment.
    pub billed_in: Period,
    /// Quantity added (negative when a correction lowered it).
    pub delta: Decimal,
    /// The record did not exist before this adjustment (it arrived after the close).
    #[serde(default)]
    pub new_record: bool,
    /// For a record with a source cost: the cost added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_delta: Option<Decimal>,
}

/// A cost given by the source (FOCUS cost data from other clouds), billed by pass-through pricing instead
/// of a meter price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCost {
    /// The amount (FOCUS `BilledCost`).
    pub amount: Decimal,
    /// Its currency.
    pub currency: Currency,
}

/// One usage record: a quantity of a meter consumed by a resource in `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The record's `additionalInfo` (OS type, image type, ...), values as text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_info: BTreeMap<String, String>,
    /// The cost the source gives, for pass-through pricing (`None` for Azure Stack Hub usage, which CMS prices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<SourceCost>,
    /// Changes made after the record's period was invoiced (see the module documentation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adjustments: Vec<Adjustment>,
}

impl UsageRecord {
    /// The quantity as it stood when the invoice of `period` was built: deltas billed in later periods
    /// are taken out. With `None`, the quantity before any adjustment (what the record's own period was
    /// invoiced on).
    pub fn quantity_as_billed_in(&self, period: Option<&Period>) -> Decimal {
        self.adjustments
            .iter()
            .filter(|adjustment| period.is_none_or(|period| adjustment.billed_in.start > period.start))
            .fold(self.quantity, |quantity, adjustment| quantity - adjustment.delta)
    }

    /// The source cost as it stood when the invoice of `period` was built (see
    /// [`Self::quantity_as_billed_in`]); `None` for a record without a source cost.
    pub fn cost_as_billed_in(&self, period: Option<&Period>) -> Option<Decimal> {
        let cost = self.cost?;
        Some(
            self.adjustments
                .iter()
                .filter(|adjustment| period.is_none_or(|period| adjustment.billed_in.start > period.start))
                .fold(cost.amount, |amount, adjustment| amount - adjustment.cost_delta.unwrap_or_default()),
        )
    }

    /// Whether the record existed when its period was closed (false for a record that arrived late).
    pub fn existed_at_close(&self) -> bool {
        self.adjustments.first().is_none_or(|first| !first.new_record)
    }

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
