//! `cms report` (the dashboard's figures as terminal tables, or JSON) and `cms report dashboard --out
//! FILE.html` (one self-contained HTML page with charts: nothing is fetched to view it).
//!
//! The scope is the principal's subtree (`--as ID --node NODE`; default: the operator at the platform), the
//! period `--period YYYY-MM` (default: the month of `--at`, which defaults to now).

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use cms_core::CmsError;
use cms_core::Decimal;
use cms_core::monitoring::dashboard::{Amount, Dashboard, Ranked};

use crate::invoice::{emit, json, open_existing};
use crate::monitor::{Acting, alert_table};
use crate::tables::table;

/// What `cms report` reads.
#[derive(Args, Clone)]
pub struct ReportArgs {
    /// The SQLite database.
    #[arg(long, default_value = "cms.db")]
    pub db: PathBuf,
    /// The month, `YYYY-MM` (default: the month of `--at`).
    #[arg(long)]
    pub period: Option<String>,
    #[command(flatten)]
    pub acting: Acting,
}

/// `cms report` subcommands.
#[derive(Subcommand)]
pub enum ReportCommand {
    /// Write the dashboard as one self-contained HTML page.
    Dashboard {
        /// The HTML file to write.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        args: ReportArgs,
    },
}

/// Build the dashboard the arguments ask for.
fn dashboard(args: &ReportArgs) -> Result<Dashboard, CmsError> {
    let cms = open_existing(&args.db)?;
    let at = args.acting.at()?;
    let period = match &args.period {
        Some(text) => crate::invoice::period(text)?,
        None => cms_core::engine::monitoring::month_of(at)?,
    };
    cms.dashboard(&args.acting.principal(None), period, at)
}

/// `cms report`.
pub fn run(command: Option<ReportCommand>, args: &ReportArgs, as_json: bool) -> Result<(), CmsError> {
    match command {
        Some(ReportCommand::Dashboard { out, args }) => {
            let board = dashboard(&args)?;
            let html = crate::dashboard_html::render(&board);
            std::fs::write(&out, html).map_err(|error| crate::io_error(&out, &error))?;
            emit(format!("dashboard of {} for {} written to {}", board.scope, board.period, out.display()))
        }
        None => {
            let board = dashboard(args)?;
            if as_json {
                return emit(json(&board)?);
            }
            emit(text(&board))
        }
    }
}

/// Amounts in several currencies as `12.50 USD<separator>3.10 EUR`, `0` for none.
pub(crate) fn amounts_joined(amounts: &[Amount], separator: &str) -> String {
    if amounts.is_empty() {
        return "0".into();
    }
    amounts
        .iter()
        .map(|amount| format!("{} {}", amount.amount, amount.currency))
        .collect::<Vec<_>>()
        .join(separator)
}

fn amounts(amounts: &[Amount]) -> String {
    amounts_joined(amounts, ", ")
}

fn ranking(title: &str, entries: &[Ranked]) -> String {
    let rows = entries
        .iter()
        .map(|entry| {
            vec![entry.name.clone(), entry.id.clone(), format!("{} {}", entry.amount, entry.currency)]
        })
        .collect();
    format!("{title}\n{}", table(&["name", "id", "amount"], &[2], rows))
}

/// The dashboard as text for a terminal.
pub fn text(board: &Dashboard) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}), {} as of {}",
        board.scope_name,
        board.scope,
        board.period,
        board.at.format("%Y-%m-%d %H:%M UTC")
    );
    let kpis = vec![
        vec!["month to date".into(), amounts(&board.month_to_date)],
        vec!["projected month end".into(), amounts(&board.projection)],
        vec!["previous period".into(), amounts(&board.previous_period)],
        vec!["open alerts".into(), board.alerts.len().to_string()],
    ];
    let _ = writeln!(out, "{}", table(&["figure", "value"], &[1], kpis));
    let peak = board.by_day.iter().map(|day| day.amount).max().unwrap_or_default();
    let days = board
        .by_day
        .iter()
        .map(|day| {
            vec![day.day.to_string(), format!("{} {}", day.amount, day.currency), bar(day.amount, peak, 30)]
        })
        .collect();
    let _ = writeln!(out, "cost by day\n{}", table(&["day", "cost", ""], &[1], days));
    let _ = writeln!(out, "{}", ranking("top tenants", &board.top_tenants));
    let _ = writeln!(out, "{}", ranking("top meters", &board.top_meters));
    let _ = writeln!(out, "{}", ranking("cost by region", &board.by_region));
    let documents = board
        .invoices
        .iter()
        .map(|state| {
            vec![
                crate::monitor::name(&state.state),
                state.count.to_string(),
                format!("{} {}", state.total, state.currency),
            ]
        })
        .collect();
    let _ = writeln!(out, "invoices\n{}", table(&["state", "count", "total"], &[1, 2], documents));
    let _ = writeln!(out, "{}", ranking("commissions to date", &board.commissions));
    if !board.regions.is_empty() {
        let regions = board
            .regions
            .iter()
            .map(|region| {
                vec![
                    region.region.clone(),
                    region
                        .last_usage
                        .map_or_else(|| "never".into(), |last| last.format("%Y-%m-%d %H:%M").to_string()),
                    region.lag_hours.map_or_else(|| "-".into(), |lag| format!("{lag} h")),
                    if region.stale { "stale".into() } else { "ok".into() },
                    region.gaps.to_string(),
                    region.refused_records.to_string(),
                ]
            })
            .collect();
        let _ = writeln!(
            out,
            "region health\n{}",
            table(&["region", "last usage", "lag", "state", "gaps", "refused"], &[2, 4, 5], regions)
        );
    }
    if !board.budgets.is_empty() {
        let budgets = board
            .budgets
            .iter()
            .map(|status| {
                vec![
                    status.budget.id.clone(),
                    status.budget.node.clone(),
                    format!("{} {}", status.actual.round_dp(2), status.budget.currency),
                    format!("{}%", status.percent),
                    crate::monitor::name(&status.state),
                ]
            })
            .collect();
        let _ = writeln!(
            out,
            "budgets\n{}",
            table(&["budget", "node", "spent", "used", "state"], &[2, 3], budgets)
        );
    }
    let _ = write!(out, "open alerts\n{}", alert_table(&board.alerts));
    out
}

/// A bar of `width` cells for `value` of `peak`.
fn bar(value: Decimal, peak: Decimal, width: u32) -> String {
    if peak <= Decimal::ZERO || value <= Decimal::ZERO {
        return String::new();
    }
    let cells = (value * Decimal::from(width) / peak).round();
    "█".repeat(usize::try_from(cells.mantissa()).unwrap_or(0).max(1))
}
