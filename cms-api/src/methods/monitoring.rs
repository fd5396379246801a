//! Monitoring through the facade: budgets, alerts, the scheduler's tick, job runs and dashboard data
//! (`cms_core::engine::monitoring`). The tick pulls regions given as parameters and delivers nothing itself:
//! it returns each alert change with the alert, for the embedding application to deliver (a webhook, mail).

use std::collections::BTreeMap;

use cms_azure_stack::{RegionConfig, UsageApiClient};
use cms_core::CmsError;
use cms_core::engine::IngestSummary;
use cms_core::engine::monitoring::TickHooks;
use cms_core::model::time::Instant;
use cms_core::monitoring::alerts::{Alert, AlertChange};
use cms_core::monitoring::budgets::Budget;
use cms_core::source::{Checkpoint, UsageSource};
use serde_json::{Value, json};

use super::{Engine, principal_at, region_config, seq, to_json};
use crate::params::Params;

/// Job runs returned when no `limit` is given.
const DEFAULT_JOB_RUNS: u64 = 100;

pub(super) fn set_budget(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    let budget: Budget = params.typed("budget")?;
    params.finish()?;
    Ok(seq(engine.set_budget(&principal, at, budget)?))
}

pub(super) fn budget_statuses(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let period = params.period("period")?;
    let at = params.instant("at")?;
    params.finish()?;
    to_json("budget_statuses", engine.budget_statuses(&principal, period, at)?)
}

pub(super) fn alerts(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let include_resolved = params.flag("include_resolved", false)?;
    params.finish()?;
    to_json("alerts", engine.alerts(&principal, include_resolved)?)
}

/// `id` and `note?` of an alert command.
fn alert_id(params: &mut Params) -> Result<(u64, Option<String>), CmsError> {
    let id = params
        .opt_count("id")?
        .ok_or_else(|| crate::params::bad_field(params.method(), "id", "required, missing"))?;
    Ok((id, params.opt_string("note")?))
}

pub(super) fn acknowledge_alert(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    let (id, note) = alert_id(&mut params)?;
    params.finish()?;
    Ok(seq(engine.acknowledge_alert(&principal, at, id, note.as_deref())?))
}

pub(super) fn resolve_alert(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    let (id, note) = alert_id(&mut params)?;
    params.finish()?;
    Ok(seq(engine.resolve_alert(&principal, at, id, note.as_deref())?))
}

/// Alert changes as `[{id, change}]`.
fn changes(changes: &[(u64, AlertChange)]) -> Result<Value, CmsError> {
    changes
        .iter()
        .map(|(id, change)| Ok(json!({ "id": id, "change": to_json("alert change", change)? })))
        .collect::<Result<Vec<Value>, CmsError>>()
        .map(Value::Array)
}

pub(super) fn evaluate_alerts(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    params.finish()?;
    changes(&engine.evaluate_alerts(&principal, at)?)
}

pub(super) fn findings(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let at = params.instant("at")?;
    params.finish()?;
    to_json("findings", engine.findings(at)?)
}

pub(super) fn job_runs(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let limit = params.opt_count("limit")?.unwrap_or(DEFAULT_JOB_RUNS);
    params.finish()?;
    to_json("job_runs", engine.job_runs(&principal, usize::try_from(limit).unwrap_or(usize::MAX))?)
}

pub(super) fn record_ingestion(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    let source = params.string("source")?;
    let summary: IngestSummary = params.typed("summary")?;
    params.finish()?;
    Ok(seq(engine.record_ingestion(&principal, at, &source, &summary)?))
}

pub(super) fn dashboard(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let period = params.period("period")?;
    let at = params.instant("at")?;
    params.finish()?;
    to_json("dashboard", engine.dashboard(&principal, period, at)?)
}

/// The scheduler's hooks in the facade: the regions given to `tick`, and alert changes kept for the caller.
struct Hooks {
    regions: BTreeMap<String, RegionConfig>,
    delivered: Vec<(AlertChange, Alert)>,
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
        self.delivered.push((change, alert.clone()));
        Ok(())
    }
}

pub(super) fn tick(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, now) = principal_at(&mut params)?;
    let mut regions = BTreeMap::new();
    if let Some(list) = params.take("regions") {
        let Value::Array(list) = list else {
            return Err(crate::params::bad_field("tick", "regions", "expected a list of region objects"));
        };
        for (index, region) in list.into_iter().enumerate() {
            let mut fields = Params::new(&format!("tick regions[{index}]"), region)?;
            let config = region_config(&mut fields)?;
            fields.finish()?;
            if regions.insert(config.region.to_ascii_lowercase(), config).is_some() {
                return Err(crate::params::bad_field(
                    "tick",
                    "regions",
                    format!("region {index} is listed twice"),
                ));
            }
        }
    }
    params.finish()?;
    let mut hooks = Hooks { regions, delivered: Vec::new() };
    let report = engine.tick(&principal, now, &mut hooks)?;
    let mut result = to_json("tick", &report)?;
    let deliveries = hooks
        .delivered
        .iter()
        .map(|(change, alert)| {
            Ok(json!({ "change": to_json("tick", change)?, "alert": to_json("tick", alert)? }))
        })
        .collect::<Result<Vec<Value>, CmsError>>()?;
    result["deliveries"] = Value::Array(deliveries);
    Ok(result)
}
