//! The accumulator's stable binary form, for shipping partial month-ends between processes (Dask and
//! Spark workers, files): rate a partition anywhere, send its accumulator, merge, finalise once.
//!
//! Layout (format version 2): the 8 bytes `CMSACC\0\x02` (magic and format version), a [`postcard`]
//! encoding of [`Snapshot`], then the 32-byte SHA-256 digest of everything before it. postcard's wire
//! format is specified and stable since its 1.0 (varint integers, length prefixed sequences), so version 2
//! of this form reads the same with any postcard 1.x. Any change to [`Snapshot`] or to the layout takes a
//! new version number; readers refuse versions they do not know (version 1 had neither the origin nor the
//! digest).
//!
//! The snapshot starts with an *origin*: opaque bytes naming what the accumulator was rated under (the
//! month-end's setup digest in `cms_api::month_end::partial`), empty when none was given; a reader gets it
//! back with [`UsageAccumulator::from_bytes_with_origin`] and decides whether it fits.
//!
//! Hourly slots travel as each series' presence bitmap and the values of its present hours in order (micro-
//! units, zigzag varints: a few bytes an hour); values that are not micro-units as exact decimal text.
//! Reading first checks the digest, so a changed or cut byte anywhere (a bit flipped in storage or
//! transit, a truncated file) is refused with `bad_record` before anything is decoded; it then checks every
//! invariant (indices, bitmap sizes, value counts, period), so even a well-formed hostile input is refused
//! with `bad_record`, never a panic. The digest detects damage, not forgery: anyone can write a valid form.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    EMPTY, Folded, IngestStats, SPILLED, Series, SeriesKey, UsageAccumulator, intern, intern_folded,
};
use crate::error::{CmsError, Location};
use crate::model::meter::MeterId;
use crate::model::time::Period;

/// Magic bytes and the format version.
pub const MAGIC: &[u8; 8] = b"CMSACC\0\x02";
/// The format version this library writes and reads (the last byte of [`MAGIC`]).
pub const VERSION: u8 = MAGIC[7];
/// Bytes of the SHA-256 digest that ends the form.
pub const DIGEST_BYTES: usize = 32;

/// What version 2 holds. Only plain types (integers, strings, sequences) so the form never depends on how
/// another type chooses to serialise itself; decimals travel as their exact text.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// What the accumulator was rated under (opaque to this module; empty when not given).
    origin: Vec<u8>,
    /// The period's start and end, Unix seconds.
    period: (i64, i64),
    subscriptions: Vec<String>,
    locations: Vec<String>,
    series: Vec<SeriesSnapshot>,
    stats: StatsSnapshot,
}

#[derive(Serialize, Deserialize)]
struct StatsSnapshot {
    rows: u64,
    accepted: u64,
    duplicates: u64,
    corrections: u64,
    before_period: u64,
    after_period: u64,
    /// (subscription, meter, resource, start, end, old quantity, new quantity)
    samples: Vec<(String, u128, String, i64, i64, String, String)>,
}

#[derive(Serialize, Deserialize)]
struct SeriesSnapshot {
    /// The series key's subscription spelling (the first seen for this series).
    key_subscription: String,
    meter: u128,
    resource: String,
    /// Index into `subscriptions` (the subscription's first spelling overall).
    subscription: u32,
    location: u32,
    /// One bit an hour; empty when no hour is present.
    present: Vec<u64>,
    /// Values of the present hours in order; `SPILLED` where `spilled` holds the value.
    values: Vec<i64>,
    spilled: Vec<(u32, String)>,
    intervals: Vec<(i64, i64, String)>,
}

fn decimal(text: &str) -> Result<Decimal, CmsError> {
    text.parse().map_err(|_| damaged(format!("{text:?} is not a decimal")))
}

fn damaged(reason: impl Into<String>) -> CmsError {
    CmsError::BadRecord { at: Location::whole("accumulator bytes"), reason: reason.into() }
}

impl UsageAccumulator {
    /// The accumulator in its stable binary form (see [`self::wire`](crate::rating::accumulator)), with no
    /// origin. Batched rows are applied first.
    pub fn to_bytes(&mut self) -> Vec<u8> {
        self.to_bytes_with_origin(&[])
    }

    /// The accumulator in its stable binary form, carrying `origin` (what it was rated under, e.g. a digest
    /// of the setup) for [`Self::from_bytes_with_origin`] to hand back. Batched rows are applied first.
    pub fn to_bytes_with_origin(&mut self, origin: &[u8]) -> Vec<u8> {
        self.flush();
        let words = self.slots.words;
        let series = self
            .keys
            .iter()
            .zip(&self.series)
            .enumerate()
            .map(|(index, (key, series))| {
                let present = &self.slots.present[index * words..(index + 1) * words];
                let values: Vec<i64> =
                    self.slots.slots(index).map(|slot| self.slots.values[index][slot]).collect();
                SeriesSnapshot {
                    key_subscription: key.subscription.0.to_string(),
                    meter: key.meter.as_u128(),
                    resource: key.resource.0.to_string(),
                    subscription: series.subscription,
                    location: series.location,
                    present: if values.is_empty() { Vec::new() } else { present.to_vec() },
                    values,
                    spilled: series.spilled.iter().map(|(slot, value)| (*slot, value.to_string())).collect(),
                    intervals: series
                        .intervals
                        .iter()
                        .map(|((start, end), value)| (*start, *end, value.to_string()))
                        .collect(),
                }
            })
            .collect();
        let stats = &self.stats;
        let snapshot = Snapshot {
            origin: origin.to_vec(),
            period: (self.start, self.end),
            subscriptions: self.subscription_names.iter().map(ToString::to_string).collect(),
            locations: self.location_names.iter().map(ToString::to_string).collect(),
            series,
            stats: StatsSnapshot {
                rows: stats.rows,
                accepted: stats.accepted,
                duplicates: stats.duplicates,
                corrections: stats.corrections,
                before_period: stats.before_period,
                after_period: stats.after_period,
                samples: stats
                    .correction_samples
                    .iter()
                    .map(|sample| {
                        (
                            sample.subscription.clone(),
                            sample.meter.as_u128(),
                            sample.resource_uri.clone(),
                            sample.start,
                            sample.end,
                            sample.old_quantity.to_string(),
                            sample.new_quantity.to_string(),
                        )
                    })
                    .collect(),
            },
        };
        let mut bytes = MAGIC.to_vec();
        // Serialising plain data into a Vec cannot fail; an empty tail would be refused on reading.
        bytes.extend(postcard::to_allocvec(&snapshot).unwrap_or_default());
        let digest = Sha256::digest(&bytes);
        bytes.extend_from_slice(&digest);
        bytes
    }

    /// Read an accumulator written by [`Self::to_bytes`] (its origin, if any, is ignored). A damaged,
    /// truncated or foreign input, or another format version, is refused with `bad_record`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CmsError> {
        Self::from_bytes_with_origin(bytes).map(|(accumulator, _)| accumulator)
    }

    /// Read an accumulator written by [`Self::to_bytes_with_origin`], with the origin it carries (empty
    /// when none was given). Refusals as [`Self::from_bytes`].
    pub fn from_bytes_with_origin(bytes: &[u8]) -> Result<(Self, Vec<u8>), CmsError> {
        let Some(checked) = bytes.strip_prefix(&MAGIC[..]) else {
            return Err(match (bytes.get(..7), bytes.get(7)) {
                (Some(head), Some(version)) if head == &MAGIC[..7] => {
                    damaged(format!("format version {version} (this library reads version {VERSION})"))
                }
                _ => damaged("not a CMS accumulator (the magic bytes are missing)"),
            });
        };
        let Some(split) = checked.len().checked_sub(DIGEST_BYTES) else {
            return Err(damaged(format!("{} bytes: truncated (shorter than its digest)", bytes.len())));
        };
        let (payload, digest) = checked.split_at(split);
        if Sha256::digest(&bytes[..MAGIC.len() + split])[..] != *digest {
            return Err(damaged(format!(
                "damaged: the SHA-256 digest of its {} bytes does not match (changed or truncated in storage \
                 or transit)",
                bytes.len()
            )));
        }
        let (snapshot, rest): (Snapshot, &[u8]) =
            postcard::take_from_bytes(payload).map_err(|error| damaged(format!("undecodable: {error}")))?;
        if !rest.is_empty() {
            return Err(damaged(format!("{} bytes after the end", rest.len())));
        }
        let origin = snapshot.origin;
        let (start, end) = snapshot.period;
        let instant = |seconds: i64| chrono::DateTime::from_timestamp(seconds, 0);
        let period = match (instant(start), instant(end)) {
            (Some(start), Some(end)) if end > start && (end - start).num_hours() <= 24 * 366 => {
                Period::new(start, end)?
            }
            _ => return Err(damaged(format!("period {start}..{end} is not a billing period"))),
        };
        let mut accumulator = Self::new(period);
        for name in &snapshot.subscriptions {
            let before = accumulator.subscription_names.len();
            intern_folded(&mut accumulator.subscriptions, &mut accumulator.subscription_names, name);
            if accumulator.subscription_names.len() == before {
                return Err(damaged(format!("subscription {name} appears twice")));
            }
        }
        for name in &snapshot.locations {
            let before = accumulator.location_names.len();
            intern(&mut accumulator.locations, &mut accumulator.location_names, name);
            if accumulator.location_names.len() == before {
                return Err(damaged(format!("location {name} appears twice")));
            }
        }
        for (number, series) in snapshot.series.into_iter().enumerate() {
            accumulator.read_series(number, series)?;
        }
        let stats = snapshot.stats;
        let mut samples = Vec::with_capacity(stats.samples.len().min(super::CORRECTION_SAMPLES));
        for (subscription, meter, resource_uri, start, end, old, new) in stats.samples {
            samples.push(super::Correction {
                subscription,
                meter: MeterId::from_u128(meter),
                resource_uri,
                start,
                end,
                old_quantity: decimal(&old)?,
                new_quantity: decimal(&new)?,
            });
        }
        accumulator.stats = IngestStats {
            rows: stats.rows,
            accepted: stats.accepted,
            duplicates: stats.duplicates,
            corrections: stats.corrections,
            before_period: stats.before_period,
            after_period: stats.after_period,
            correction_samples: samples,
        };
        Ok((accumulator, origin))
    }

    fn read_series(&mut self, number: usize, snapshot: SeriesSnapshot) -> Result<(), CmsError> {
        let at = |reason: String| damaged(format!("series {number}: {reason}"));
        if snapshot.subscription as usize >= self.subscription_names.len()
            || snapshot.location as usize >= self.location_names.len()
        {
            return Err(at("a subscription or location index is out of range".into()));
        }
        let key = SeriesKey {
            subscription: Folded(snapshot.key_subscription.into()),
            meter: MeterId::from_u128(snapshot.meter),
            resource: Folded(snapshot.resource.into()),
        };
        if self.index.contains_key(&key) {
            return Err(at("appears twice".into()));
        }
        let index = super::next_index(self.keys.len());
        self.index.insert(key.clone(), index);
        self.keys.push(key);
        self.slots.add_series();
        let series_index = index as usize;
        let words = self.slots.words;
        let hours = self.slots.hours;
        let mut spilled = BTreeMap::new();
        for (slot, text) in &snapshot.spilled {
            spilled.insert(*slot, decimal(text)?);
        }
        let mut intervals = BTreeMap::new();
        for (start, end, text) in &snapshot.intervals {
            if end <= start {
                return Err(at(format!("interval {start}..{end} does not end after it starts")));
            }
            intervals.insert((*start, *end), decimal(text)?);
        }
        if !snapshot.present.is_empty() {
            if snapshot.present.len() != words {
                return Err(at(format!("{} bitmap words for {words}", snapshot.present.len())));
            }
            self.slots.present[series_index * words..(series_index + 1) * words]
                .copy_from_slice(&snapshot.present);
            let present: Vec<usize> = self.slots.slots(series_index).collect();
            if present.last().is_some_and(|last| *last >= hours) {
                return Err(at("an hour beyond the period is marked".into()));
            }
            if present.len() != snapshot.values.len() {
                return Err(at(format!("{} hours marked, {} values", present.len(), snapshot.values.len())));
            }
            let mut values = vec![0; hours].into_boxed_slice();
            let mut sum: i128 = 0;
            for (slot, value) in present.into_iter().zip(snapshot.values) {
                if value == EMPTY {
                    return Err(at(format!("hour {slot} holds no value")));
                }
                if value == SPILLED {
                    if !spilled.contains_key(&u32::try_from(slot).unwrap_or(u32::MAX)) {
                        return Err(at(format!("hour {slot}'s exact value is missing")));
                    }
                } else {
                    sum += i128::from(value);
                }
                values[slot] = value;
            }
            self.slots.values[series_index] = values;
            self.slots.micros[series_index] = sum;
        } else if !snapshot.values.is_empty() {
            return Err(at("values without hours".into()));
        }
        spilled.retain(|slot, _| {
            let slot = *slot as usize;
            slot < hours && self.slots.values[series_index].get(slot) == Some(&SPILLED)
        });
        self.series.push(Series {
            subscription: snapshot.subscription,
            location: snapshot.location,
            spilled,
            intervals,
        });
        Ok(())
    }
}
