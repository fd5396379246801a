//! Rating: usage rows -> deduplicated monthly quantities per (subscription, meter), through a mergeable
//! accumulator. Pricing the quantities into lines happens in [`crate::billing`], against
//! [`crate::model::terms::CommercialTerms`].

pub mod accumulator;

pub use accumulator::{
    Correction, IngestStats, MeterQuantity, Outcome, Quantities, SeriesId, SeriesQuantity, UsageAccumulator,
    from_micros, to_micros,
};
