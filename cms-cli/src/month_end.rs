//! `cms month-end`: open the workload files, run the core's month-end, write the four outputs.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::time::Instant;

use cms_core::CmsError;
use cms_core::billing::NotBilledReason;
use cms_core::formats::workload::{self, OutputSinks, PageBytes, UsageInput, WorkloadInputs};

use crate::io_error;

fn open(path: &Path) -> Result<BufReader<File>, CmsError> {
    File::open(path)
        .map(|file| BufReader::with_capacity(1 << 20, file))
        .map_err(|error| io_error(path, &error))
}

/// The `*.json` files of a folder, sorted by file name, read one at a time.
pub fn page_files(folder: &Path) -> Result<impl Iterator<Item = PageBytes>, CmsError> {
    let entries = std::fs::read_dir(folder).map_err(|error| io_error(folder, &error))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(|error| io_error(folder, &error))?.path();
        if path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("json")) && path.is_file()
        {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths.into_iter().map(|path| {
        let name = path
            .file_name()
            .map_or_else(|| path.display().to_string(), |name| name.to_string_lossy().into_owned());
        std::fs::read(&path).map(|bytes| (name, bytes)).map_err(|error| io_error(&path, &error))
    }))
}

pub fn run(data: &Path, out: &Path, pages: Option<&Path>, strict: bool) -> Result<(), CmsError> {
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
    let mut usage_csv: Box<dyn Read> = match pages {
        None => Box::new(open(&data.join("usage.csv"))?),
        Some(_) => Box::new(std::io::empty()),
    };
    let mut page_iterator: Box<dyn Iterator<Item = PageBytes>>;
    let report = workload::month_end(WorkloadInputs {
        plan: &plan,
        hierarchy: &mut open(&data.join("hierarchy.csv"))?,
        subscriptions: &mut open(&data.join("subscriptions.csv"))?,
        prices: &mut open(&data.join("prices.csv"))?,
        commission: &mut open(&data.join("commission.csv"))?,
        usage: match pages {
            None => UsageInput::Csv(&mut usage_csv),
            Some(folder) => {
                page_iterator = Box::new(page_files(folder)?);
                UsageInput::Pages(&mut page_iterator)
            }
        },
    })?;
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
        &report,
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
