//! `cms`: the command-line face of CMS.
//!
//! - `cms demo [--db FILE]`: a small channel on the sample Usage API page, rated for a month, printed as
//!   tables, on a SQLite file (`./cms.db` by default) that a second run continues from;
//! - `cms month-end --data DIR --out DIR`: the month-end of `bench/WORKLOAD.md`;
//! - `cms ingest pages|folder|focus|region [--db FILE]`: usage through the engine's ingestion rules into the
//!   SQLite store, with a summary;
//! - `cms invoice preview|issue|void|rerate|interim|list|show|verify [--db FILE]`: invoice documents;
//! - `cms commission statement [--db FILE]`: commission statements of the documents issued in a period;
//! - `cms showback [--db FILE]`: what each department cost, or the chargeback journal;
//! - `cms tick`, `cms budget`, `cms alerts`: the scheduler run once, budgets, alerts;
//! - `cms report [dashboard --out FILE.html]`: the dashboard's figures as text, JSON or one HTML page.
//!
//! Commands on `--db` act as the operator (the platform principal named after the OS user) at the current
//! time.
//!
//! Every error prints `error[code]: message` (the message names the file and line at fault) and exits 2.

mod actor;
mod dashboard_html;
mod demo;
mod ingest;
mod invoice;
mod monitor;
mod month_end;
mod report;
mod statements;
mod tables;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cms_core::CmsError;

/// CMS: the commerce and governance core for Azure Stack Hub.
#[derive(Parser)]
#[command(name = "cms", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a small channel, load the sample Usage API page, rate a month, print invoices and statements.
    /// Runs on a SQLite file, created on first run; a second run continues from it.
    Demo {
        /// The SQLite database.
        #[arg(long, default_value = "cms.db")]
        db: PathBuf,
    },
    /// Ingest usage (Usage API pages, an exported folder, live regions) and print what happened to it.
    Ingest {
        #[command(subcommand)]
        source: ingest::Source,
        #[command(flatten)]
        options: ingest::Options,
    },
    /// Run the WORKLOAD.md month-end: dedupe, rate, invoice, commission.
    MonthEnd {
        /// Folder with hierarchy.csv, subscriptions.csv, prices.csv, commission.csv, plan.json, usage.csv.
        #[arg(long)]
        data: PathBuf,
        /// Folder for the outputs `invoice_lines.csv`, `invoices.csv`, `commissions.csv`, `overrides.csv` (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Read usage from a folder of Usage API response pages (`*.json`, in file-name order) instead of
        /// `DATA/usage.csv`.
        #[arg(long)]
        pages: Option<PathBuf>,
        /// Refuse usage of meters that no price prices, instead of reporting it and billing the rest.
        #[arg(long)]
        strict: bool,
        /// Worker threads parsing usage (default: every core; 1 runs single-threaded).
        #[arg(long)]
        threads: Option<usize>,
        /// Also write the billed data as FOCUS 1.2, one file per issuing level (platform, distributors,
        /// partners), into this folder.
        #[arg(long)]
        focus_out: Option<PathBuf>,
    },
    /// Invoice documents: preview drafts, issue, void, re-rate, interim billing, list, show, verify.
    Invoice {
        #[command(subcommand)]
        command: invoice::Command,
        /// The SQLite database (made by `cms demo` or `cms ingest`).
        #[arg(long, global = true, default_value = "cms.db")]
        db: PathBuf,
    },
    /// Commission statements from the documents issued in a period.
    Commission {
        #[command(subcommand)]
        command: statements::CommissionCommand,
        /// The SQLite database (made by `cms demo` or `cms ingest`).
        #[arg(long, global = true, default_value = "cms.db")]
        db: PathBuf,
    },
    /// Showback: what each department (tenant) and project cost in a period, shared costs included; or
    /// the chargeback journal.
    Showback(statements::ShowbackOptions),
    /// Run whatever is due once (for cron or a systemd timer): pull regions, draft and issue invoices,
    /// purge by retention, evaluate budgets and alerts, deliver alert changes.
    Tick(monitor::TickOptions),
    /// Budgets per node, and the monitoring settings.
    Budget {
        #[command(subcommand)]
        command: monitor::BudgetCommand,
        /// The SQLite database.
        #[arg(long, global = true, default_value = "cms.db")]
        db: PathBuf,
        #[command(flatten)]
        acting: monitor::Acting,
    },
    /// Alerts of the principal's branch: list, acknowledge, resolve.
    Alerts {
        #[command(subcommand)]
        command: monitor::AlertsCommand,
        /// The SQLite database.
        #[arg(long, global = true, default_value = "cms.db")]
        db: PathBuf,
        #[command(flatten)]
        acting: monitor::Acting,
    },
    /// The dashboard's figures for a scope and period: as text (or `--json`), or `dashboard --out FILE.html`.
    Report {
        #[command(subcommand)]
        command: Option<report::ReportCommand>,
        #[command(flatten)]
        args: report::ReportArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { db } => demo::run(&db),
        Command::Ingest { source, options } => ingest::run(source, &options),
        Command::MonthEnd { data, out, pages, strict, threads, focus_out } => {
            month_end::run(&cms_api::month_end::Options { data, out, pages, strict, threads, focus_out })
        }
        Command::Invoice { command, db } => invoice::run(command, &db),
        Command::Commission { command, db } => statements::commission(command, &db),
        Command::Showback(options) => statements::showback(&options),
        Command::Tick(options) => monitor::tick(&options),
        Command::Budget { command, db, acting } => monitor::budget(command, &db, &acting),
        Command::Alerts { command, db, acting } => monitor::alerts(command, &db, &acting),
        Command::Report { command, args, json } => report::run(command, &args, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error[{}]: {error}", error.code());
            ExitCode::from(2)
        }
    }
}

/// Open (or create) the SQLite store at `path`, and the engine on it.
pub(crate) fn open_engine(
    path: &std::path::Path,
) -> Result<cms_core::engine::Cms<cms_sqlite::SqliteStore>, CmsError> {
    cms_core::engine::Cms::open(cms_sqlite::SqliteStore::open(path)?)
}

/// Map an I/O error on `path` to the core's error.
pub(crate) fn io_error(path: &std::path::Path, error: &std::io::Error) -> CmsError {
    CmsError::Io { at: cms_core::Location::whole(path.display().to_string()), message: error.to_string() }
}
