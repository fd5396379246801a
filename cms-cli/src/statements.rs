//! `cms commission statement` and `cms showback`: what agents earn on the documents issued in a period, and
//! what each department (tenant) cost, on a SQLite file (`./cms.db` unless `--db`), as the operator.
//!
//! - commission statements count the documents *issued* in the period (credit notes claw back there), so
//!   the period to ask for is the one the invoices were issued in, not the one they bill;
//! - showback reads the period's tenant invoices (drafts or as issued) with the chargeback settings'
//!   shared costs; `--journal` (or `--format csv`) prints the balanced journal lines instead.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use cms_core::CmsError;
use cms_core::Decimal;
use cms_core::billing::chargeback::{ShowbackReport, journal_csv};
use cms_core::billing::statements::CommissionReport;
use cms_core::model::tiers::BandAmount;

use crate::invoice::{emit, json, open_existing, period};
use crate::tables::table;

/// What `cms commission` does.
#[derive(Subcommand)]
pub enum CommissionCommand {
    /// Commission and override statements from the documents issued in a period.
    Statement {
        /// The period the documents were issued in, `YYYY-MM`.
        #[arg(long)]
        period: String,
        /// Only this partner's statement (or this distributor's override).
        #[arg(long)]
        partner: Option<String>,
        /// Output format (`json`: the report; decimals as strings).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

/// Text or JSON.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// Tables.
    Text,
    /// JSON (decimals as strings).
    Json,
}

/// Formats of `showback`.
#[derive(Clone, Copy, ValueEnum)]
pub enum ShowbackFormat {
    /// Tables.
    Text,
    /// JSON (decimals as strings).
    Json,
    /// The chargeback journal lines as CSV.
    Csv,
}

/// `cms showback`'s options.
#[derive(Args)]
pub struct ShowbackOptions {
    /// The billing period, `YYYY-MM`.
    #[arg(long)]
    period: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ShowbackFormat::Text)]
    format: ShowbackFormat,
    /// Print the chargeback journal lines (CSV; a JSON array with `--format json`).
    #[arg(long)]
    journal: bool,
    /// The SQLite database (made by `cms demo` or `cms ingest`).
    #[arg(long, default_value = "cms.db")]
    db: PathBuf,
}

pub fn commission(command: CommissionCommand, db: &Path) -> Result<(), CmsError> {
    let CommissionCommand::Statement { period: text, partner, format } = command;
    let period = period(&text)?;
    let cms = open_existing(db)?;
    let mut report = cms.commission_report(&crate::actor::operator(), period)?;
    if let Some(partner) = &partner {
        if cms.state().hierarchy.find(partner).is_none() {
            return Err(CmsError::UnknownNode { kind: "partner".into(), id: partner.clone(), context: None });
        }
        report.statements.retain(|statement| statement.partner.eq_ignore_ascii_case(partner));
        report.overrides.retain(|statement| statement.distributor.eq_ignore_ascii_case(partner));
    }
    match format {
        Format::Json => emit(json(&report)?)?,
        Format::Text => print_commission(&report, partner.is_some())?,
    }
    Ok(())
}

pub fn showback(options: &ShowbackOptions) -> Result<(), CmsError> {
    let period = period(&options.period)?;
    let cms = open_existing(&options.db)?;
    let operator = crate::actor::operator();
    if options.journal || matches!(options.format, ShowbackFormat::Csv) {
        let lines = cms.chargeback_journal(&operator, period)?;
        match options.format {
            ShowbackFormat::Json => emit(json(&lines)?)?,
            ShowbackFormat::Text | ShowbackFormat::Csv => emit(journal_csv(&lines)?.trim_end_matches('\n'))?,
        }
        return Ok(());
    }
    let report = cms.showback(&operator, period)?;
    match options.format {
        ShowbackFormat::Json => emit(json(&report)?)?,
        ShowbackFormat::Text | ShowbackFormat::Csv => print_showback(&report)?,
    }
    Ok(())
}

fn shown(value: Decimal) -> String {
    value.normalize().to_string()
}

fn bands_text(bands: &[BandAmount]) -> String {
    bands
        .iter()
        .map(|band| format!("{}% of {}", shown(band.rate * Decimal::ONE_HUNDRED), shown(band.quantity)))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// Statements, then each one's tenant shares, overrides, and the reconciliation.
fn print_commission(report: &CommissionReport, filtered: bool) -> Result<(), CmsError> {
    emit(format_args!("Commission statements {} (documents issued in it)", report.period))?;
    if report.statements.is_empty() {
        emit("no partner statement")?;
    } else {
        let rows = report
            .statements
            .iter()
            .map(|statement| {
                vec![
                    format!("{} ({})", statement.partner_name, statement.partner),
                    statement.payer.clone(),
                    statement.invoiced.to_string(),
                    statement.clawbacks.to_string(),
                    format!("{} {}", statement.base, statement.currency),
                    statement.plan.clone().unwrap_or_else(|| "(no plan)".into()),
                    bands_text(&statement.bands),
                    format!("{} {}", statement.commission, statement.currency),
                ]
            })
            .collect();
        emit(table(
            &["partner", "paid by", "invoiced", "clawbacks", "base", "plan", "bands applied", "commission"],
            &[2, 3, 4, 7],
            rows,
        ))?;
        for statement in &report.statements {
            emit(format_args!("\n{}: shares by tenant", statement.partner_name))?;
            let rows = statement
                .tenants
                .iter()
                .map(|share| vec![share.tenant.clone(), share.base.to_string(), share.amount.to_string()])
                .collect();
            emit(table(&["tenant", "base", "commission share"], &[1, 2], rows))?;
        }
    }
    if !report.overrides.is_empty() {
        emit(format_args!("\nDistributor overrides {}", report.period))?;
        let rows = report
            .overrides
            .iter()
            .map(|statement| {
                let how = match (statement.rate, &statement.plan) {
                    (Some(rate), _) => format!("{}%", shown(rate * Decimal::ONE_HUNDRED)),
                    (None, Some(plan)) => format!("{plan}: {}", bands_text(&statement.bands)),
                    (None, None) => String::new(),
                };
                vec![
                    format!("{} ({})", statement.distributor_name, statement.distributor),
                    statement.payer.clone(),
                    format!("{} {}", statement.base, statement.currency),
                    how,
                    format!("{} {}", statement.amount, statement.currency),
                ]
            })
            .collect();
        emit(table(&["distributor", "paid by", "network base", "override", "amount"], &[2, 4], rows))?;
    }
    if filtered {
        return Ok(());
    }
    if !report.tenants.is_empty() {
        emit(format_args!("\nWhere each tenant's revenue goes {}", report.period))?;
        let rows = report
            .tenants
            .iter()
            .map(|tenant| {
                vec![
                    tenant.tenant.clone(),
                    format!("{} {}", tenant.revenue, tenant.currency),
                    tenant.commissions.to_string(),
                    tenant.overrides.to_string(),
                    tenant.retained.to_string(),
                ]
            })
            .collect();
        emit(table(&["tenant", "revenue", "commissions", "overrides", "retained"], &[1, 2, 3, 4], rows))?;
    }
    let rows: Vec<Vec<String>> = report
        .totals
        .iter()
        .map(|totals| {
            vec![
                totals.currency.to_string(),
                totals.revenue.to_string(),
                totals.commissions.to_string(),
                totals.overrides.to_string(),
                totals.retained.to_string(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        emit(format_args!(
            "\nReconciliation {}: revenue = commissions + overrides + retained",
            report.period
        ))?;
        emit(table(&["currency", "revenue", "commissions", "overrides", "retained"], &[1, 2, 3, 4], rows))?;
    }
    Ok(())
}

/// Departments, shared costs and totals.
fn print_showback(report: &ShowbackReport) -> Result<(), CmsError> {
    let currency = report.currency.map(|currency| currency.to_string()).unwrap_or_default();
    emit(format_args!(
        "Showback {} of {} ({}), {currency}",
        report.period, report.provider_name, report.provider
    ))?;
    let rows = report
        .departments
        .iter()
        .map(|department| {
            let shared: Decimal = department.shared.iter().map(|share| share.amount).sum();
            vec![
                format!("{} ({})", department.name, department.tenant),
                department.cost_centre.clone().unwrap_or_default(),
                department.invoiced.to_string(),
                department.direct.to_string(),
                shared.to_string(),
                department.total.to_string(),
            ]
        })
        .collect();
    emit(table(
        &["department", "cost centre", "invoiced", "direct", "shared", "total"],
        &[2, 3, 4, 5],
        rows,
    ))?;
    for department in report.departments.iter().filter(|department| !department.projects.is_empty()) {
        emit(format_args!("\n{}: projects", department.name))?;
        let mut rows: Vec<Vec<String>> = department
            .projects
            .iter()
            .map(|project| {
                vec![
                    project.name.clone().unwrap_or_else(|| project.subscription.clone()),
                    project.cost_centre.clone().unwrap_or_default(),
                    project.amount.to_string(),
                ]
            })
            .collect();
        if !department.other.is_zero() {
            rows.push(vec!["(tenant-wide lines)".into(), String::new(), department.other.to_string()]);
        }
        emit(table(&["project", "cost centre", "amount"], &[2], rows))?;
    }
    if !report.shared.is_empty() {
        emit("\nShared costs")?;
        let rows = report
            .shared
            .iter()
            .map(|shared| {
                let shares = shared
                    .shares
                    .iter()
                    .map(|share| format!("{} {}", share.tenant, share.amount))
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![format!("{} ({})", shared.name, shared.id), shared.amount.to_string(), shares]
            })
            .collect();
        emit(table(&["shared cost", "amount", "shares"], &[1], rows))?;
    }
    emit(format_args!(
        "\ninvoiced {} + overhead {} = total {} {currency} ({} moved between departments)",
        report.invoiced, report.overhead, report.total, report.reallocated
    ))
}
