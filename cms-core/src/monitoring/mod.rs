//! Monitoring: budgets, alerts, scheduled jobs and dashboard data.
//!
//! - [`budgets`]: monthly budgets per node, their status and the forecast (its method is stated there);
//! - [`alerts`]: findings, alert records (deduplicated while open) and their changes, for delivery;
//! - [`detect`]: the detection rules (stale ingestion, gaps, anomalies, quotas), stated and pure;
//! - [`jobs`]: settings, the jobs a scheduler tick runs and their run records;
//! - [`dashboard`]: the KPI data a dashboard shows.
//!
//! The engine side (gathering facts from the store, `tick`, the scoped queries) is
//! [`crate::engine::monitoring`].

pub mod alerts;
pub mod budgets;
pub mod dashboard;
pub mod detect;
pub mod jobs;
