//! `cms tick`, `cms budget` and `cms alerts`: the scheduler run once (for cron or a systemd timer), budgets,
//! and alerts, on a SQLite file (`./cms.db` unless `--db`).
//!
//! `cms tick` pulls the regions given by `--region CONFIG.json` (the files of `cms ingest region`), drafts
//! and (when the monitoring settings say so) issues the invoices of every ended month not yet done (after a
//! silence, each month it missed, oldest first), purges by retention,
//! evaluates budgets and alerts, and delivers alert changes to `--webhook URL` (a JSON POST per change)
//! if given. It acts as the principal `--as` (default `scheduler`, which needs the Service role once roles
//! are in use) at `--at` (default: now). Running it twice at one instant does no work twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use cms_azure_stack::{RegionConfig, UsageApiClient};
use cms_core::CmsError;
use cms_core::Decimal;
use cms_core::engine::monitoring::TickHooks;
use cms_core::engine::{Event, Principal};
use cms_core::error::Location;
use cms_core::model::money::Currency;
use cms_core::model::time::{Instant, parse_timestamp};
use cms_core::monitoring::alerts::{Alert, AlertChange};
use cms_core::monitoring::budgets::Budget;
use cms_core::monitoring::jobs::MonitoringSettings;
use cms_core::source::{Checkpoint, UsageSource};
use serde::Serialize;

use crate::invoice::{emit, json, open_existing};
use crate::tables::table;

/// Who acts and when: `--as`, `--node`, `--at`.
#[derive(Args, Clone)]
pub struct Acting {
    /// The principal acting (default: the operator at the terminal; `scheduler` for `cms tick`).
    #[arg(long = "as", global = true)]
    pub principal: Option<String>,
    /// The node the principal acts in (default: the platform).
    #[arg(long, global = true, default_value = "platform")]
    pub node: String,
    /// The instant to act at, RFC 3339 (default: now).
    #[arg(long, global = true)]
    pub at: Option<String>,
}

impl Acting {
    /// The principal, or `default` (the operator when `None`).
    pub fn principal(&self, default: Option<&str>) -> Principal {
        match (&self.principal, default) {
            (Some(id), _) => Principal::at(id, &self.node),
            (None, Some(id)) => Principal::at(id, &self.node),
            (None, None) => {
                let operator = crate::actor::operator();
                Principal::at(&operator.id, &self.node)
            }
        }
    }

    /// The instant.
    pub fn at(&self) -> Result<Instant, CmsError> {
        instant(self.at.as_deref(), "--at")
    }
}

/// An instant given on the command line (now when absent).
pub fn instant(text: Option<&str>, flag: &str) -> Result<Instant, CmsError> {
    match text {
        None => Ok(crate::actor::now()),
        Some(text) => parse_timestamp(text).ok_or_else(|| CmsError::InvalidValue {
            at: Location::whole(flag.to_owned()),
            text: text.to_owned(),
            reason: "expected an RFC 3339 instant".into(),
        }),
    }
}

/// `cms tick`'s options.
#[derive(Args)]
pub struct TickOptions {
    /// The SQLite database.
    #[arg(long, default_value = "cms.db")]
    pub db: PathBuf,
    /// A region to pull (a `cms ingest region` configuration file); repeat for several.
    #[arg(long = "region")]
    pub regions: Vec<PathBuf>,
    /// Deliver each alert change as a JSON POST to this URL.
    #[arg(long)]
    pub webhook: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub acting: Acting,
}

/// The hooks of a command-line tick: region clients and a webhook.
struct Hooks {
    regions: BTreeMap<String, RegionConfig>,
    webhook: Option<String>,
}

/// What the webhook receives.
#[derive(Serialize)]
struct Delivery<'a> {
    change: AlertChange,
    alert: &'a Alert,
}

impl TickHooks for Hooks {
    fn regions(&self) -> Vec<String> {
        self.regions.keys().cloned().collect()
    }

    fn source<'a>(
        &'a mut self,
        region: &str,
        checkpoints: &[Checkpoint],
        until: Instant,
    ) -> Result<Box<dyn UsageSource + 'a>, CmsError> {
        Ok(Box::new(UsageApiClient::for_region(&self.regions, region, checkpoints, until)?))
    }

    fn deliver(&mut self, alert: &Alert, change: AlertChange) -> Result<(), String> {
        let Some(url) = &self.webhook else { return Ok(()) };
        let body = serde_json::to_string(&Delivery { change, alert }).map_err(|error| error.to_string())?;
        ureq::post(url)
            .header("Content-Type", "application/json")
            .send(body.as_bytes())
            .map(drop)
            .map_err(|error| format!("POST {url}: {error}"))
    }

    fn now(&self) -> Option<Instant> {
        Some(crate::actor::now())
    }
}

/// `cms tick`.
pub fn tick(options: &TickOptions) -> Result<(), CmsError> {
    let mut cms = open_existing(&options.db)?;
    let principal = options.acting.principal(Some("scheduler"));
    let at = options.acting.at()?;
    let mut regions = BTreeMap::new();
    for path in &options.regions {
        let config = crate::ingest::region_config(path)?;
        regions.insert(config.region.clone(), config);
    }
    let mut hooks = Hooks { regions, webhook: options.webhook.clone() };
    let report = cms.tick(&principal, at, &mut hooks)?;
    if options.json {
        return emit(json(&report)?);
    }
    let rows = report
        .runs
        .iter()
        .map(|run| {
            let outcome = match &run.outcome {
                cms_core::monitoring::jobs::JobOutcome::Done => "done".to_owned(),
                cms_core::monitoring::jobs::JobOutcome::Failed { code, message } => {
                    format!("failed [{code}]: {message}")
                }
            };
            let counts: Vec<String> =
                run.counts.iter().map(|(name, count)| format!("{name} {count}")).collect();
            vec![run.key.clone(), outcome, counts.join(", ")]
        })
        .collect();
    emit(format!("tick at {}", at.to_rfc3339()))?;
    emit(table(&["job", "outcome", "counts"], &[], rows))?;
    if !report.skipped.is_empty() {
        emit(format!("not due (ran already): {}", report.skipped.join(", ")))?;
    }
    for (id, change) in &report.alert_changes {
        if let Some(alert) = cms.state().alerts.alerts.get(id) {
            emit(format!("alert {id} {change:?}: [{}] {}", alert.kind.name(), alert.message).to_lowercase())?;
        }
    }
    for (id, error) in &report.delivery_failures {
        emit(format!("delivery of alert {id} failed: {error}"))?;
    }
    if report.failed() {
        return Err(CmsError::InvalidValue {
            at: Location::whole("cms tick"),
            text: at.to_rfc3339(),
            reason: "a job failed (see above; a job_failure alert is open)".into(),
        });
    }
    Ok(())
}

/// What `cms budget` does.
#[derive(Subcommand)]
pub enum BudgetCommand {
    /// Set (or replace) a monthly budget of a node.
    Set {
        /// The budget's id.
        id: String,
        /// The node (distributor, partner, tenant or subscription).
        #[arg(long = "for")]
        node: String,
        /// The amount per month.
        #[arg(long)]
        amount: Decimal,
        /// Its currency (ISO 4217).
        #[arg(long, default_value = "USD")]
        currency: String,
        /// Warn at this percentage.
        #[arg(long, default_value = "80")]
        warning: Decimal,
        /// Breach at this percentage.
        #[arg(long, default_value = "100")]
        breach: Decimal,
        /// No forecast alerts.
        #[arg(long)]
        no_forecast: bool,
    },
    /// Remove a budget.
    Remove {
        /// The budget's id.
        id: String,
    },
    /// Budgets and where they stand in a month.
    List {
        /// The month, `YYYY-MM` (default: the month of `--at`).
        #[arg(long)]
        period: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Set the monitoring and scheduler settings from a JSON file (see `MonitoringSettings`).
    Settings {
        /// The JSON file.
        file: PathBuf,
    },
}

/// `cms budget`.
pub fn budget(command: BudgetCommand, db: &Path, acting: &Acting) -> Result<(), CmsError> {
    let mut cms = open_existing(db)?;
    let principal = acting.principal(None);
    let at = acting.at()?;
    match command {
        BudgetCommand::Set { id, node, amount, currency, warning, breach, no_forecast } => {
            let currency: Currency = serde_json::from_value(serde_json::Value::String(currency.clone()))
                .map_err(|error| CmsError::InvalidValue {
                    at: Location::whole("--currency"),
                    text: currency,
                    reason: error.to_string(),
                })?;
            let budget = Budget {
                id: id.clone(),
                node,
                amount,
                currency,
                warning_percent: warning,
                breach_percent: breach,
                forecast: !no_forecast,
            };
            cms.set_budget(&principal, at, budget)?;
            emit(format!("budget {id} set"))
        }
        BudgetCommand::Remove { id } => {
            cms.execute(&principal, at, &Event::BudgetRemoved { id: id.clone() })?;
            emit(format!("budget {id} removed"))
        }
        BudgetCommand::List { period, json: as_json } => {
            let period = match period {
                Some(text) => crate::invoice::period(&text)?,
                None => cms_core::engine::monitoring::month_of(at)?,
            };
            let statuses = cms.budget_statuses(&principal, period, at)?;
            if as_json {
                return emit(json(&statuses)?);
            }
            let rows = statuses
                .iter()
                .map(|status| {
                    vec![
                        status.budget.id.clone(),
                        status.budget.node.clone(),
                        format!("{} {}", status.budget.amount, status.budget.currency),
                        status.actual.round_dp(2).to_string(),
                        format!("{}%", status.percent),
                        status.forecast.round_dp(2).to_string(),
                        name(&status.state),
                    ]
                })
                .collect();
            emit(format!("budgets in {period} as of {}", at.to_rfc3339()))?;
            emit(table(&["budget", "node", "amount", "spent", "used", "forecast", "state"], &[3, 4, 5], rows))
        }
        BudgetCommand::Settings { file } => {
            let bytes = std::fs::read(&file).map_err(|error| crate::io_error(&file, &error))?;
            let settings: MonitoringSettings =
                serde_json::from_slice(&bytes).map_err(|error| CmsError::BadJson {
                    at: Location::whole(file.display().to_string()),
                    message: error.to_string(),
                })?;
            cms.execute(&principal, at, &Event::MonitoringSettingsSet { settings })?;
            emit("monitoring settings set")
        }
    }
}

/// What `cms alerts` does.
#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Open alerts of the principal's branch (`--all`: resolved ones too).
    List {
        /// Resolved alerts too.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge an open alert.
    Ack {
        /// The alert's id.
        id: u64,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Resolve an alert by hand.
    Resolve {
        /// The alert's id.
        id: u64,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
}

/// `cms alerts`.
pub fn alerts(command: AlertsCommand, db: &Path, acting: &Acting) -> Result<(), CmsError> {
    let mut cms = open_existing(db)?;
    let principal = acting.principal(None);
    let at = acting.at()?;
    match command {
        AlertsCommand::List { all, json: as_json } => {
            let alerts = cms.alerts(&principal, all)?;
            if as_json {
                return emit(json(&alerts)?);
            }
            emit(alert_table(&alerts))
        }
        AlertsCommand::Ack { id, note } => {
            cms.acknowledge_alert(&principal, at, id, note.as_deref())?;
            emit(format!("alert {id} acknowledged"))
        }
        AlertsCommand::Resolve { id, note } => {
            cms.resolve_alert(&principal, at, id, note.as_deref())?;
            emit(format!("alert {id} resolved"))
        }
    }
}

/// Alerts as a terminal table.
pub fn alert_table(alerts: &[Alert]) -> comfy_table::Table {
    let rows = alerts
        .iter()
        .map(|alert| {
            vec![
                alert.id.to_string(),
                name(&alert.severity),
                alert.kind.name().to_owned(),
                alert.scope.clone(),
                name(&alert.status),
                alert.first_seen.format("%Y-%m-%d %H:%M").to_string(),
                alert.message.clone(),
            ]
        })
        .collect();
    table(&["id", "severity", "kind", "scope", "status", "since", "message"], &[0], rows)
}

/// An enum's serialised name (`forecast_breach`).
pub fn name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|value| value.as_str().map(str::to_owned)).unwrap_or_default()
}
