//! # cms-core
//!
//! The pure domain of CMS, the commerce and governance core for Azure Stack Hub operators: exact money,
//! meters, the platform > distributor > partner > tenant > subscription channel, price lists and commission
//! plans, usage dedupe and rating, invoices and commission statements.
//!
//! No I/O, no clock, no threads: callers hand in bytes and readers, and get data back. Edges are traits:
//! [`store::Store`] (state and usage) and [`source::UsageSource`] (usage pages).
//!
//! Where a rule lives:
//! - [`model`]: ids, money and rounding, time and periods, hierarchy, meters, tiers, prices, terms;
//! - [`formats`]: CSV and Usage API parsing, month-end outputs;
//! - [`rating`]: dedupe and monthly quantities (the mergeable accumulator);
//! - [`billing`]: invoices, commissions, overrides;
//! - [`engine`]: the facade that applies commands and runs month-end on a store;
//! - [`governance`]: roles and permissions, policies, the hash-chained audit trail;
//! - [`monitoring`]: budgets, alerts and their detection rules, scheduled jobs, dashboard data.
#![forbid(unsafe_code)]

pub mod billing;
pub mod engine;
pub mod error;
pub mod formats;
pub mod governance;
pub mod model;
pub mod monitoring;
pub mod rating;
pub mod source;
pub mod store;

pub use error::{CmsError, Location, Result};
pub use rust_decimal::Decimal;
