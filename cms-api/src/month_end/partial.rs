//! The month-end in pieces, for distributed engines (Dask, Spark): rate any partition of the usage
//! anywhere into a partial (an accumulator in its stable binary form, `cms_core::rating::accumulator::wire`),
//! ship the partials to one place, merge them and finish once. The result is the single-process month-end,
//! byte for byte, when the usage is **partitioned by subscription**, each partition holding its rows in
//! file order:
//!
//! - every natural key (subscription, meter, resource, hour) then lives in one partition, so a duplicate
//!   is dropped and a correction applied where the single process would (the later row wins);
//! - partials of disjoint subscriptions merge in any order and grouping to the same accumulator
//!   (property-tested in `cms-core`'s `rating/accumulator.rs`, and here in `tests/partials.rs`).
//!
//! Partitions that share subscriptions still give the same *outputs* when merged in file order (a key's
//! later row wins on merge too), but **a correction landing in another partition than the row it corrects
//! is not detected as such**: merging keeps the quantity of the partial merged last, whatever the rows'
//! order in the file, and the summary's duplicate and correction counts may differ from one process's.
//! Nothing in a partial records when a row was read, so no merge can restore file order across partitions;
//! partitioning by subscription makes the question moot, since every row of a key then lies in one
//! partition, in file order. `cms.distributed` in the Python binding therefore hashes the folded
//! subscription id to pick a partition and keeps each partition's rows in file order.
//!
//! Every partial carries the SHA-256 digest of the setup it was rated under ([`Setup::partial`]), and the
//! accumulator's form its own digest: [`Setup::finish`] refuses a damaged partial, a partial rated under
//! another setup (another month, channel or price list) and a partial holding a subscription the setup does
//! not know, each naming the partial, instead of billing a month that is quietly wrong.
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
use sha2::{Digest, Sha256};

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
    digest: [u8; 32],
}

/// The digest of the setup files: SHA-256 of a label, then each of [`SETUP_FILES`] in order as its name, a
/// zero byte, its length (8 bytes, little endian) and its bytes.
fn setup_digest(files: &[&[u8]; 5]) -> [u8; 32] {
    let mut digest = Sha256::new();
    digest.update(b"cms month-end setup\0");
    for (name, bytes) in SETUP_FILES.iter().zip(files) {
        digest.update(name.as_bytes());
        digest.update([0]);
        digest.update((bytes.len() as u64).to_le_bytes());
        digest.update(bytes);
    }
    digest.finalize().into()
}

/// The first bytes of a digest in hex, to name it in messages.
fn short_hex(digest: &[u8]) -> String {
    digest.iter().take(8).fold(String::with_capacity(16), |mut text, byte| {
        text.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        text.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
        text
    })
}

/// A partial's error renamed to the partial (its index in the input), as `partials record N`.
fn in_partial(index: usize, error: CmsError) -> CmsError {
    match error {
        CmsError::BadRecord { reason, .. } => {
            CmsError::BadRecord { at: Location::record("partials", index as u64), reason }
        }
        other => other,
    }
}

/// Merge partials into one (in the order given: see the module documentation), keeping the setup digest
/// they share: a tree of merges (on workers, say) gives what [`Setup::finish`] would merge from the leaves.
///
/// Errors: `bad_record` naming the partial (`partials record N`) for a damaged one or one rated under
/// another setup than the first; `bad_record` for no partials at all; `invalid_period` for another month.
pub fn merge<'p>(partials: impl IntoIterator<Item = &'p [u8]>) -> Result<Vec<u8>, CmsError> {
    let mut merged: Option<(UsageAccumulator, Vec<u8>)> = None;
    for (index, bytes) in partials.into_iter().enumerate() {
        let (part, origin) =
            UsageAccumulator::from_bytes_with_origin(bytes).map_err(|error| in_partial(index, error))?;
        match &mut merged {
            None => merged = Some((part, origin)),
            Some((total, first)) => {
                if origin != *first {
                    return Err(in_partial(
                        index,
                        CmsError::BadRecord {
                            at: Location::whole("partials"),
                            reason: format!(
                                "rated under another setup (setup digest {}) than partial 0 ({})",
                                short_hex(&origin),
                                short_hex(first)
                            ),
                        },
                    ));
                }
                total.merge(part)?;
            }
        }
    }
    let (mut total, origin) = merged.ok_or_else(|| CmsError::BadRecord {
        at: Location::whole("partials"),
        reason: "no partials to merge".into(),
    })?;
    Ok(total.to_bytes_with_origin(&origin))
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
        let digest = setup_digest(&[
            file(SETUP_FILES[0])?,
            file(SETUP_FILES[1])?,
            file(SETUP_FILES[2])?,
            file(SETUP_FILES[3])?,
            file(SETUP_FILES[4])?,
        ]);
        Ok(Self { plan, hierarchy, terms, known, digest })
    }

    /// The SHA-256 digest of the setup files (see the module documentation), which every partial rated
    /// under this setup carries.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
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

    /// An accumulator's partial: its binary form carrying this setup's [`digest`](Self::digest), as
    /// [`Self::finish`] and [`merge`] expect it.
    pub fn partial(&self, accumulator: &mut UsageAccumulator) -> Vec<u8> {
        accumulator.to_bytes_with_origin(&self.digest)
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
    ///
    /// Partials must come from usage partitioned by subscription for the result to be the single-process
    /// month-end: a correction whose row lies in another partition than the row it corrects is not detected
    /// (the partial merged last wins).
    ///
    /// Errors name the partial (`partials record N`): `bad_record` for a damaged one or one rated under
    /// another setup (or written without a setup digest), `unknown_subscription` for one holding usage of a
    /// subscription outside this setup's channel.
    pub fn finish<'p>(
        &self,
        partials: impl IntoIterator<Item = &'p [u8]>,
        options: &FinishOptions<'_>,
    ) -> Result<Summary, CmsError> {
        let started = Instant::now();
        let mut total = self.accumulator();
        let mut count = 0u64;
        for (index, bytes) in partials.into_iter().enumerate() {
            let (part, origin) =
                UsageAccumulator::from_bytes_with_origin(bytes).map_err(|error| in_partial(index, error))?;
            if origin != self.digest {
                let reason = if origin.is_empty() {
                    "carries no setup digest: write partials with the setup (Setup::partial), not the bare \
                     accumulator"
                        .to_owned()
                } else {
                    format!(
                        "rated under another setup (setup digest {}, period {}) than this month-end's ({}, \
                         period {}): rate every partition with the same setup files",
                        short_hex(&origin),
                        part.period(),
                        short_hex(&self.digest),
                        self.period()
                    )
                };
                return Err(in_partial(
                    index,
                    CmsError::BadRecord { at: Location::whole("partials"), reason },
                ));
            }
            if let Some(unknown) = part.subscriptions().find(|subscription| !self.knows(subscription)) {
                return Err(CmsError::UnknownSubscription {
                    at: Location::record("partials", index as u64),
                    subscription: unknown.to_owned(),
                });
            }
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
