//! The vocabulary of the domain: ids, money and rounding, time and periods, the channel hierarchy,
//! organisation and subscription attributes and billing relationships, the meter catalogue, services,
//! plans and offers, tier math, price lists and commission plans, usage records.

pub mod adjustments;
pub mod catalogue;
pub mod channel;
pub mod hierarchy;
pub mod meter;
pub mod money;
pub mod price_book;
pub mod pricing;
pub mod terms;
pub mod tiers;
pub mod time;
pub mod usage;
