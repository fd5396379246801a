//! The month-end in pieces, for distributed engines (Dask, Spark): rate any partition of the usage
//! anywhere into a partial (an accumulator in its stable binary form, `cms_core::rating::accumulator::wire`),
//! ship the partials to one place, merge them and finish once. The result is the single-process month-end,
//! byte for byte, when the usage is **partitioned by subscription**, each partition holding its rows in
//! file order:
//!
//! - every natural key (subscription, meter, resource, hour) then lives in one partition, so a duplicate
//!   is dropped and a correction applied where the single process would (the later row wins);
//! - partials of disjoint subscriptions merge in any order and grouping to the same accumulator
//!   (property-tested in `cms-core`'s `rating/accumulator/wire.rs`).
//!
//! Partitions that share subscriptions still give the same *outputs* when merged in file order (a key's
//! later row wins on merge too), but the summary's duplicate and correction counts may differ when one key
//! is corrected across partitions; `cms.distributed` in the Python binding therefore hashes the folded
//! subscription id to pick a partition and keeps each partition's rows in file order.
//!
//! What a worker needs is the workload's setup (`plan.json`, `hierarchy.csv`, `subscriptions.csv`,
//! `prices.csv`, `commission.csv`: [`SETUP_FILES`], a few kilobytes to megabytes), shipped as bytes
//! ([`Setup::from_files`]); the usage rows never leave their partition except as a partial.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::Instant;

use cms_core::CmsError;
use cms_core::billing::bill;
use cms_core::error::Location;
use cms_core::formats::usage_csv::usage_row;
use cms_core::formats::workload::{self, KnownSubscriptions, UsageInput, WorkloadInputs, WorkloadPlan};
use cms_core::model::hierarchy::Hierarchy;
use cms_core::model::terms::CommercialTerms;
use cms_core::model::time::Period;
use cms_core::rating::UsageAccumulator;

use super::{Summary, io_error, open};

/// The setup files of a workload folder, in the order [`Setup::from_files`] reads them.
pub const SETUP_FILES: [&str; 5] =
    ["plan.json", "hierarchy.csv", "subscriptions.csv", "prices.csv", "commission.csv"];

/// A workload's setup, read once per process: the plan (period, rules), the channel and the prices.
pub struct Setup {
    pub(super) plan: WorkloadPlan,
    pub(super) hierarchy: Hierarchy,
    pub(super) terms: CommercialTerms,
    known: KnownSubscriptions,
}

impl Setup {
    /// Read the setup files of a workload folder (a missing folder or file is an `io` error naming it).
    pub fn read(data: &Path) -> Result<Self, CmsError> {
        if !data.is_dir() {
            return Err(io_error(
                data,
                &std::io::Error::new(std::io::ErrorKind::NotFound, "no such data folder"),
            ));
        }
        let mut files = BTreeMap::new();
        for name in SETUP_FILES {
            let path = data.join(name);
            let mut bytes = Vec::new();
            open(&path)?.read_to_end(&mut bytes).map_err(|error| io_error(&path, &error))?;
            files.insert(name.to_owned(), bytes);
        }
        Self::from_files(&files)
    }

    /// The setup from the files' contents by name (what a driver ships to its workers); other names are
    /// ignored, a missing one is an `io` error naming it.
    pub fn from_files(files: &BTreeMap<String, Vec<u8>>) -> Result<Self, CmsError> {
        let file = |name: &str| {
            files.get(name).map(Vec::as_slice).ok_or_else(|| CmsError::Io {
                at: Location::whole(name),
                message: "missing from the setup files".into(),
            })
        };
        let (plan, hierarchy, terms) = workload::read_setup(&mut WorkloadInputs {
            plan: file(SETUP_FILES[0])?,
            hierarchy: &mut file(SETUP_FILES[1])?,
            subscriptions: &mut file(SETUP_FILES[2])?,
            prices: &mut file(SETUP_FILES[3])?,
            commission: &mut file(SETUP_FILES[4])?,
            usage: UsageInput::Csv(&mut std::io::empty()),
        })?;
        let known = KnownSubscriptions::new(&hierarchy);
        Ok(Self { plan, hierarchy, terms, known })
    }

    /// The month billed.
    pub fn period(&self) -> Period {
        self.plan.period
    }

    /// Whether a subscription is in the channel.
    pub fn knows(&self, subscription: &str) -> bool {
        self.known.contains(subscription)
    }

    /// An empty accumulator of the period, to [`ingest`](Self::ingest) a partition's rows into.
    pub fn accumulator(&self) -> UsageAccumulator {
        UsageAccumulator::new(self.plan.period)
    }

    /// Apply one usage row given as the text of its fields in `usage.csv`'s column order
    /// ([`cms_core::formats::usage_csv::USAGE_COLUMNS`]), by the month-end's rules (the rules of the CSV
    /// path, whose simple form this is): a bad field or a subscription outside the channel is an error
    /// naming `at`, and nothing of the row is applied.
    pub fn ingest(
        &self,
        accumulator: &mut UsageAccumulator,
        fields: [&[u8]; 7],
        at: &dyn Fn() -> Location,
    ) -> Result<(), CmsError> {
        let row = usage_row(fields, at)?;
        if !self.known.contains(row.subscription) {
            return Err(CmsError::UnknownSubscription {
                at: at(),
                subscription: row.subscription.to_owned(),
            });
        }
        accumulator.ingest(&row, at).map(drop)
    }

    /// Merge partials in their binary form (in the order given: see the module documentation), bill, and
    /// write the outputs as [`super::run`] does; returns its summary (`threads` is the number of partials).
    pub fn finish<'p>(
        &self,
        partials: impl IntoIterator<Item = &'p [u8]>,
        options: &FinishOptions<'_>,
    ) -> Result<Summary, CmsError> {
        let started = Instant::now();
        let mut total = self.accumulator();
        let mut count = 0u64;
        for (index, bytes) in partials.into_iter().enumerate() {
            let part = UsageAccumulator::from_bytes(bytes).map_err(|error| match error {
                CmsError::BadRecord { reason, .. } => {
                    CmsError::BadRecord { at: Location::record("partials", index as u64), reason }
                }
                other => other,
            })?;
            total.merge(part)?;
            count += 1;
        }
        let report = bill(&self.hierarchy, &self.terms, self.plan.rules, &total.finish())?;
        let mut summary = super::report_outputs(&report, &self.hierarchy, options)?;
        summary.threads = count;
        summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(summary)
    }
}

/// Where and how [`Setup::finish`] writes: the output folder, strictness about unpriced usage, and an
/// optional folder of FOCUS 1.2 exports (as in [`super::Options`]).
#[derive(Debug, Clone, Copy)]
pub struct FinishOptions<'a> {
    /// The output folder (created if missing).
    pub out: &'a Path,
    /// Refuse unpriced usage (`unpriced_meter`) instead of reporting it.
    pub strict: bool,
    /// A folder for FOCUS 1.2 exports.
    pub focus_out: Option<&'a Path>,
}
