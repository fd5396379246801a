//! The month-end of `../shared/bench/WORKLOAD.md` on a folder of files: read the workload's setup files,
//! stream its usage (`usage.csv`, or a folder of Usage API pages) on worker threads, rate, invoice and
//! commission, then write the four outputs (and, if asked, FOCUS 1.2 exports). `cms month-end` and every
//! language binding run this one function.
//!
//! ```no_run
//! use cms_api::month_end::{Options, run};
//!
//! # fn main() -> Result<(), cms_core::CmsError> {
//! let summary = run(&Options::new("month/", "out/"))?;
//! println!("{} invoices for {}", summary.invoices, summary.period);
//! # Ok(())
//! # }
//! ```

mod parallel;
pub mod partial;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cms_core::billing::{MonthEndReport, NotBilledReason, bill};
use cms_core::formats::focus::write_focus_csv;
use cms_core::formats::focus_usage::{EXPORT_EXTENSIONS, export_charges};
use cms_core::formats::workload::{self, OutputSinks};
use cms_core::model::hierarchy::{Hierarchy, NodeKind};
use cms_core::{CmsError, Decimal, Location};
use serde::{Deserialize, Serialize};

/// The four output files, in the order they are written.
pub const OUTPUT_FILES: [&str; 4] = ["invoice_lines.csv", "invoices.csv", "commissions.csv", "overrides.csv"];

/// What to run: the folders and the options of `cms month-end`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// The workload folder: `hierarchy.csv`, `subscriptions.csv`, `prices.csv`, `commission.csv`,
    /// `plan.json` and (unless `pages` is given) `usage.csv`.
    pub data: PathBuf,
    /// The output folder (created if missing).
    pub out: PathBuf,
    /// A folder of Usage API response pages (`*.json`, read in file-name order) to read instead of
    /// `usage.csv`.
    #[serde(default)]
    pub pages: Option<PathBuf>,
    /// Refuse usage of meters that no price prices (`unpriced_meter`), instead of reporting it in
    /// [`Summary::unpriced`] and billing the rest.
    #[serde(default)]
    pub strict: bool,
    /// Worker threads parsing usage; `None` uses every core, `1` runs single-threaded.
    #[serde(default)]
    pub threads: Option<usize>,
    /// A folder for FOCUS 1.2 exports of the billed data, one file per issuing level.
    #[serde(default)]
    pub focus_out: Option<PathBuf>,
}

impl Options {
    /// The month-end of `data` into `out`, from `usage.csv`, on every core, not strict, without exports.
    pub fn new(data: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            data: data.into(),
            out: out.into(),
            pages: None,
            strict: false,
            threads: None,
            focus_out: None,
        }
    }
}

/// Usage of a (subscription, meter) that no price prices: reported, not billed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unpriced {
    /// The subscription as spelled in the usage.
    pub subscription: String,
    /// The meter, canonical (upper-case 8-4-4-4-12).
    pub meter: String,
    /// The quantity not billed, exact.
    pub quantity: Decimal,
}

/// What a month-end did. Decimals serialise as strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// The period (`YYYY-MM`).
    pub period: String,
    /// Usage rows (or page records) read.
    pub usage_rows: u64,
    /// Rows counted in the period (after dedupe).
    pub counted: u64,
    /// Exact repeats, counted once.
    pub duplicates: u64,
    /// Rows that replaced an earlier quantity of their key.
    pub corrections: u64,
    /// Rows before the period (late usage of an earlier one), not billed here.
    pub before_period: u64,
    /// Rows after the period, not billed here.
    pub after_period: u64,
    /// Invoices written.
    pub invoices: u64,
    /// Invoice lines written.
    pub invoice_lines: u64,
    /// Commission statements written.
    pub commission_statements: u64,
    /// Distributor override statements written.
    pub overrides: u64,
    /// The sum of the invoices' totals, per currency code.
    pub totals: BTreeMap<String, Decimal>,
    /// Usage that no price prices (empty when everything was priced).
    pub unpriced: Vec<Unpriced>,
    /// The files written, in order: the four outputs, then the FOCUS exports.
    pub outputs: Vec<String>,
    /// Worker threads used.
    pub threads: u64,
    /// Wall time, in milliseconds.
    pub elapsed_ms: u64,
}

/// An I/O error on `path`, as the core's error (code `io`).
pub(crate) fn io_error(path: &Path, error: &std::io::Error) -> CmsError {
    CmsError::Io { at: Location::whole(path.display().to_string()), message: error.to_string() }
}

fn open(path: &Path) -> Result<BufReader<File>, CmsError> {
    File::open(path)
        .map(|file| BufReader::with_capacity(1 << 20, file))
        .map_err(|error| io_error(path, &error))
}

/// Run the month-end. A missing data folder is an `io` error naming it; a bad input stops the run with
/// the error naming the file and line (or page and record) before any output is written.
pub fn run(options: &Options) -> Result<Summary, CmsError> {
    let started = Instant::now();
    let data = options.data.as_path();
    let threads =
        options.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let threads = threads.max(1);
    let setup = partial::Setup::read(data)?;
    let known = |id: &str| setup.knows(id);
    let period = setup.period();
    let accumulator = match options.pages.as_deref() {
        None => parallel::csv_usage(&data.join("usage.csv"), period, &known, threads)?,
        Some(folder) => parallel::page_usage(&parallel::page_paths(folder)?, period, &known, threads)?,
    };
    let report = bill(&setup.hierarchy, &setup.terms, setup.plan.rules, &accumulator.finish())?;
    let finish = partial::FinishOptions {
        out: &options.out,
        strict: options.strict,
        focus_out: options.focus_out.as_deref(),
    };
    let mut summary = report_outputs(&report, &setup.hierarchy, &finish)?;
    summary.threads = threads as u64;
    summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(summary)
}

/// Check unpriced usage (refused when strict), write the outputs (and FOCUS exports), and summarise.
/// `threads` and `elapsed_ms` are left for the caller.
fn report_outputs(
    report: &MonthEndReport,
    hierarchy: &Hierarchy,
    options: &partial::FinishOptions<'_>,
) -> Result<Summary, CmsError> {
    let unpriced: Vec<Unpriced> = report
        .not_billed
        .iter()
        .filter(|entry| entry.reason == NotBilledReason::NoPrice)
        .map(|entry| Unpriced {
            subscription: entry.subscription.clone(),
            meter: entry.meter.canonical(),
            quantity: entry.quantity,
        })
        .collect();
    if options.strict
        && let Some(first) = unpriced.first()
    {
        return Err(CmsError::UnpricedMeter {
            meter: first.meter.clone(),
            count: unpriced.len() as u64,
            first: Location::whole(format!("usage.csv, subscription {}", first.subscription)),
        });
    }
    let mut outputs = write_outputs(report, options.out)?;
    if let Some(folder) = options.focus_out {
        outputs.extend(write_focus(report, hierarchy, folder)?);
    }
    let mut totals: BTreeMap<String, Decimal> = BTreeMap::new();
    for invoice in &report.invoices {
        *totals.entry(invoice.currency.to_string()).or_default() += invoice.total;
    }
    let stats = &report.stats;
    Ok(Summary {
        period: report.period.to_string(),
        usage_rows: stats.rows,
        counted: stats.accepted,
        duplicates: stats.duplicates,
        corrections: stats.corrections,
        before_period: stats.before_period,
        after_period: stats.after_period,
        invoices: report.invoices.len() as u64,
        invoice_lines: report.invoices.iter().map(|invoice| invoice.lines.len() as u64).sum(),
        commission_statements: report.commissions.len() as u64,
        overrides: report.overrides.len() as u64,
        totals,
        unpriced,
        outputs: outputs.iter().map(|path| path.display().to_string()).collect(),
        threads: 0,
        elapsed_ms: 0,
    })
}

/// The four workload outputs into `out`; returns their paths.
fn write_outputs(report: &MonthEndReport, out: &Path) -> Result<Vec<PathBuf>, CmsError> {
    std::fs::create_dir_all(out).map_err(|error| io_error(out, &error))?;
    let create = |name: &str| {
        let path = out.join(name);
        File::create(&path).map(BufWriter::new).map_err(|error| io_error(&path, &error))
    };
    let [lines_name, invoices_name, commissions_name, overrides_name] = OUTPUT_FILES;
    let (mut lines, mut invoices, mut commissions, mut overrides) =
        (create(lines_name)?, create(invoices_name)?, create(commissions_name)?, create(overrides_name)?);
    workload::write_outputs(
        report,
        &mut OutputSinks {
            invoice_lines: &mut lines,
            invoices: &mut invoices,
            commissions: &mut commissions,
            overrides: &mut overrides,
        },
    )?;
    for (name, writer) in [
        (lines_name, &mut lines),
        (invoices_name, &mut invoices),
        (commissions_name, &mut commissions),
        (overrides_name, &mut overrides),
    ] {
        writer.flush().map_err(|error| io_error(&out.join(name), &error))?;
    }
    Ok(OUTPUT_FILES.iter().map(|name| out.join(name)).collect())
}

/// The billed data as FOCUS 1.2, one file per issuing level (platform, distributors, partners) with invoices
/// below it; returns the files written.
fn write_focus(
    report: &MonthEndReport,
    hierarchy: &Hierarchy,
    folder: &Path,
) -> Result<Vec<PathBuf>, CmsError> {
    std::fs::create_dir_all(folder).map_err(|error| io_error(folder, &error))?;
    let issuers = hierarchy.nodes().filter(|(_, node)| {
        matches!(node.kind, NodeKind::Platform | NodeKind::Distributor | NodeKind::Partner)
    });
    let mut written = Vec::new();
    for (issuer, node) in issuers {
        let charges = export_charges(report, hierarchy, issuer);
        if charges.is_empty() {
            continue;
        }
        let path = folder.join(format!("focus-{}.csv", node.id));
        let mut file = BufWriter::new(File::create(&path).map_err(|error| io_error(&path, &error))?);
        write_focus_csv(&charges, &EXPORT_EXTENSIONS, &mut file)?;
        file.flush().map_err(|error| io_error(&path, &error))?;
        written.push(path);
    }
    Ok(written)
}
