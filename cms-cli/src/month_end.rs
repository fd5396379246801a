//! `cms month-end`: open the workload files, run the core's month-end, write the four outputs.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

use cms_core::CmsError;
use cms_core::billing::NotBilledReason;
use cms_core::billing::{MonthEndReport, bill};
use cms_core::formats::focus::write_focus_csv;
use cms_core::formats::focus_usage::{EXPORT_EXTENSIONS, export_charges};
use cms_core::formats::workload::{self, KnownSubscriptions, OutputSinks, UsageInput, WorkloadInputs};
use cms_core::model::hierarchy::{Hierarchy, NodeKind};

use crate::{io_error, parallel};

fn open(path: &Path) -> Result<BufReader<File>, CmsError> {
    File::open(path)
        .map(|file| BufReader::with_capacity(1 << 20, file))
        .map_err(|error| io_error(path, &error))
}

/// What `cms month-end` does.
pub struct Options<'a> {
    /// The workload folder.
    pub data: &'a Path,
    /// The output folder.
    pub out: &'a Path,
    /// Usage API pages to read instead of `usage.csv`.
    pub pages: Option<&'a Path>,
    /// Refuse unpriced usage.
    pub strict: bool,
    /// Worker threads (1: the single-threaded path).
    pub threads: usize,
    /// A folder for FOCUS 1.2 exports of the billed data, one file per issuing level.
    pub focus_out: Option<&'a Path>,
}

pub fn run(options: &Options<'_>) -> Result<(), CmsError> {
    let (data, out, strict) = (options.data, options.out, options.strict);
    let started = Instant::now();
    if !data.is_dir() {
        return Err(io_error(
            data,
            &std::io::Error::new(std::io::ErrorKind::NotFound, "no such data folder"),
        ));
    }
    let plan_path = data.join("plan.json");
    let mut plan = Vec::new();
    open(&plan_path)?.read_to_end(&mut plan).map_err(|error| io_error(&plan_path, &error))?;
    let (plan, hierarchy, terms) = workload::read_setup(&mut WorkloadInputs {
        plan: &plan,
        hierarchy: &mut open(&data.join("hierarchy.csv"))?,
        subscriptions: &mut open(&data.join("subscriptions.csv"))?,
        prices: &mut open(&data.join("prices.csv"))?,
        commission: &mut open(&data.join("commission.csv"))?,
        usage: UsageInput::Csv(&mut std::io::empty()),
    })?;
    let subscriptions = KnownSubscriptions::new(&hierarchy);
    let known = |id: &str| subscriptions.contains(id);
    let accumulator = match options.pages {
        None => parallel::csv_usage(&data.join("usage.csv"), plan.period, &known, options.threads)?,
        Some(folder) => {
            parallel::page_usage(&parallel::page_paths(folder)?, plan.period, &known, options.threads)?
        }
    };
    let report = bill(&hierarchy, &terms, plan.rules, &accumulator.finish())?;
    let unpriced: Vec<_> =
        report.not_billed.iter().filter(|entry| entry.reason == NotBilledReason::NoPrice).collect();
    if let Some(first) = unpriced.first() {
        let rows = unpriced.len();
        if strict {
            return Err(CmsError::UnpricedMeter {
                meter: first.meter.canonical(),
                count: rows as u64,
                first: cms_core::Location::whole(format!("usage.csv, subscription {}", first.subscription)),
            });
        }
        eprintln!(
            "warning: {rows} (subscription, meter) pair(s) have usage but no price and were not billed:"
        );
        for entry in unpriced.iter().take(10) {
            eprintln!("  {} {} quantity {}", entry.subscription, entry.meter, entry.quantity);
        }
    }
    write_outputs(&report, out)?;
    if let Some(folder) = options.focus_out {
        write_focus(&report, &hierarchy, folder)?;
    }
    let stats = &report.stats;
    let line_count: usize = report.invoices.iter().map(|invoice| invoice.lines.len()).sum();
    println!(
        "month-end {}: {} usage rows, {} counted, {} duplicates, {} corrections, {} before the period, {} after; \
         {} lines, {} invoices, {} commission statements, {} overrides in {:.3} s",
        report.period,
        stats.rows,
        stats.accepted,
        stats.duplicates,
        stats.corrections,
        stats.before_period,
        stats.after_period,
        line_count,
        report.invoices.len(),
        report.commissions.len(),
        report.overrides.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The four workload outputs into `out`.
fn write_outputs(report: &MonthEndReport, out: &Path) -> Result<(), CmsError> {
    std::fs::create_dir_all(out).map_err(|error| io_error(out, &error))?;
    let create = |name: &str| {
        let path = out.join(name);
        File::create(&path).map(BufWriter::new).map_err(|error| io_error(&path, &error))
    };
    let (mut lines, mut invoices, mut commissions, mut overrides) = (
        create("invoice_lines.csv")?,
        create("invoices.csv")?,
        create("commissions.csv")?,
        create("overrides.csv")?,
    );
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
        ("invoice_lines.csv", &mut lines),
        ("invoices.csv", &mut invoices),
        ("commissions.csv", &mut commissions),
        ("overrides.csv", &mut overrides),
    ] {
        writer.flush().map_err(|error| io_error(&out.join(name), &error))?;
    }
    Ok(())
}

/// The billed data as FOCUS 1.2, one file per issuing level (platform, distributors, partners) with invoices
/// below it.
fn write_focus(report: &MonthEndReport, hierarchy: &Hierarchy, folder: &Path) -> Result<(), CmsError> {
    std::fs::create_dir_all(folder).map_err(|error| io_error(folder, &error))?;
    let issuers = hierarchy.nodes().filter(|(_, node)| {
        matches!(node.kind, NodeKind::Platform | NodeKind::Distributor | NodeKind::Partner)
    });
    for (issuer, node) in issuers {
        let charges = export_charges(report, hierarchy, issuer);
        if charges.is_empty() {
            continue;
        }
        let path = folder.join(format!("focus-{}.csv", node.id));
        let mut file = BufWriter::new(File::create(&path).map_err(|error| io_error(&path, &error))?);
        write_focus_csv(&charges, &EXPORT_EXTENSIONS, &mut file)?;
        file.flush().map_err(|error| io_error(&path, &error))?;
    }
    Ok(())
}
