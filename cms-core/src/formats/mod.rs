//! Parsers and writers on bytes. Nothing here opens a file: callers hand in readers and writers, and a
//! source name that errors quote.
//!
//! - [`csv_input`]: header-checked CSV reading shared by every CSV format;
//! - [`workload`]: the month-end files of `bench/WORKLOAD.md` (hierarchy, subscriptions, prices, commission
//!   bands, plan, usage) and its four outputs;
//! - [`focus`], [`focus_usage`]: FOCUS 1.2 cost data: the CSV format, and how it maps to usage (import)
//!   and from invoices (export); `focus_parquet` (cargo feature `parquet`): the same rows from Parquet files;
//! - [`usage_api`]: Azure Stack Hub Usage API response pages;
//! - [`usage_csv`]: `usage.csv`, with the simple reader and the fast block parser of the month-end.

pub mod csv_input;
mod fast_rows;
pub mod focus;
#[cfg(feature = "parquet")]
pub mod focus_parquet;
pub mod focus_usage;
mod key_index;
pub mod page_scan;
pub mod usage_api;
pub mod usage_csv;
pub mod workload;
