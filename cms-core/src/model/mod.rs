//! The vocabulary of the domain: ids, money and rounding, time and periods, the channel hierarchy,
//! the meter catalogue, tier math, price lists and commission plans, usage records.

pub mod hierarchy;
pub mod meter;
pub mod money;
pub mod pricing;
pub mod terms;
pub mod tiers;
pub mod time;
pub mod usage;
