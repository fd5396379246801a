//! The runner of `tests/scenarios/invoicing.json` (the golden invoicing scenario every binding replays),
//! generic over the store: each step's outcome is compared with the hand-checked figures. Included by the
//! memory-store test here and by the SQLite store's tests (`#[path]`).

use std::path::PathBuf;

use chrono::Duration;
use cms_core::CmsError;
use cms_core::billing::invoice::InvoiceDocument;
use cms_core::engine::{Cms, Event, Principal};
use cms_core::model::money::parse_decimal;
use cms_core::model::time::{Period, parse_timestamp};
use cms_core::model::usage::UsageRecord;
use cms_core::source::PageOrigin;
use cms_core::store::Store;
use serde_json::{Value, json};

/// The scenario.
pub fn vector() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/scenarios/invoicing.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_else(|| panic!("field {key} in {value}"))
}

fn same_decimal(actual: &Value, expected: &Value) -> bool {
    match (actual.as_str().and_then(parse_decimal), expected.as_str().and_then(parse_decimal)) {
        (Some(left), Some(right)) => left == right,
        _ => actual == expected,
    }
}

/// Every field of `expected` is in `actual` with the same value (decimals compared as numbers, arrays
/// element by element, objects field by field).
fn matches(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match expected {
        Value::Object(fields) => {
            for (key, value) in fields {
                matches(&actual[key], value, &format!("{path}.{key}"))?;
            }
            Ok(())
        }
        Value::Array(items) => {
            let actual_items =
                actual.as_array().ok_or_else(|| format!("{path}: expected an array, got {actual}"))?;
            if actual_items.len() != items.len() {
                return Err(format!(
                    "{path}: expected {} items, got {}: {actual}",
                    items.len(),
                    actual_items.len()
                ));
            }
            for (index, (left, right)) in actual_items.iter().zip(items).enumerate() {
                matches(left, right, &format!("{path}[{index}]"))?;
            }
            Ok(())
        }
        _ if same_decimal(actual, expected) => Ok(()),
        _ => Err(format!("{path}: expected {expected}, got {actual}")),
    }
}

fn documents(result: Result<Vec<InvoiceDocument>, CmsError>) -> Value {
    match result {
        Ok(documents) => json!({"documents": documents}),
        Err(error) => json!({"error": {"code": error.code(), "message": error.to_string()}}),
    }
}

/// Replay every step on `cms` (set up from empty), passing the engine through `reopen` before each step
/// (a persistent store closes and opens it again); returns the engine at the end.
pub fn replay<S: Store>(mut cms: Cms<S>, reopen: &mut dyn FnMut(Cms<S>) -> Cms<S>) -> Cms<S> {
    let vector = vector();
    let operator = Principal::platform("operator");
    let setup_at = parse_timestamp(text(&vector, "setup_at")).unwrap();
    for event in vector["setup"].as_array().unwrap() {
        let event: Event =
            serde_json::from_value(event.clone()).unwrap_or_else(|error| panic!("{event}: {error}"));
        cms.execute(&operator, setup_at, &event).unwrap_or_else(|error| panic!("{event:?}: {error}"));
    }
    let meter_id = |alias: &str| vector["meters"][alias].as_str().unwrap_or(alias).parse().unwrap();
    let period = |value: &Value| -> Period { text(value, "period").parse().unwrap() };
    for (index, step) in vector["steps"].as_array().unwrap().iter().enumerate() {
        let at = parse_timestamp(text(step, "at")).unwrap();
        cms = reopen(cms);
        let outcome = if let Some(records) = step["ingest"].as_array() {
            let records: Vec<UsageRecord> = records
                .iter()
                .map(|record| {
                    let start = parse_timestamp(text(record, "start")).unwrap();
                    let subscription = text(record, "subscription");
                    UsageRecord {
                        subscription: subscription.into(),
                        meter: meter_id(text(record, "meter")),
                        start,
                        end: start + Duration::hours(1),
                        quantity: parse_decimal(text(record, "quantity")).unwrap(),
                        resource_uri: format!(
                            "/subscriptions/{subscription}/resourceGroups/rg/providers/x/vm"
                        ),
                        location: "local".into(),
                        ..UsageRecord::default()
                    }
                })
                .collect();
            let summary = cms.ingest(&records, &PageOrigin::named(format!("step {index}"))).unwrap();
            json!({"stored": summary.stored, "refused": summary.refused.len()})
        } else if step.get("preview").is_some() {
            documents(cms.preview_invoices(&operator, period(&step["preview"]), None))
        } else if step.get("issue").is_some() {
            documents(cms.issue_invoices(&operator, at, period(&step["issue"]), None))
        } else if let Some(void) = step.get("void") {
            documents(
                cms.void_invoice(&operator, at, text(void, "number"), text(void, "reason"))
                    .map(|note| vec![note]),
            )
        } else if let Some(rerate) = step.get("rerate") {
            documents(cms.rerate(&operator, at, period(rerate), text(rerate, "reason")))
        } else if step.get("interim").is_some() {
            documents(cms.issue_interim(&operator, at))
        } else if let Some(event) = step.get("execute") {
            let event: Event = serde_json::from_value(event.clone()).unwrap();
            match cms.execute(&operator, at, &event) {
                Ok(_) => json!({}),
                Err(error) => json!({"error": {"code": error.code(), "message": error.to_string()}}),
            }
        } else if let Some(commission) = step.get("commission") {
            match cms.commission_report(&operator, period(commission)) {
                Ok(report) => {
                    let shares = |tenants: &[cms_core::billing::statements::TenantShare]| -> Value {
                        tenants.iter().map(|share| (share.tenant.clone(), json!(share.amount))).collect()
                    };
                    let totals = report.totals.first().map_or(Value::Null, |totals| json!(totals));
                    json!({
                        "statements": report.statements.iter().map(|statement| json!({
                            "partner": statement.partner, "base": statement.base,
                            "commission": statement.commission, "shares": shares(&statement.tenants)
                        })).collect::<Vec<_>>(),
                        "overrides": report.overrides.iter().map(|statement| json!({
                            "distributor": statement.distributor, "base": statement.base,
                            "amount": statement.amount, "shares": shares(&statement.tenants)
                        })).collect::<Vec<_>>(),
                        "totals": totals,
                    })
                }
                Err(error) => json!({"error": {"code": error.code(), "message": error.to_string()}}),
            }
        } else {
            panic!("step {index}: unknown step {step}");
        };
        let expected = step.get("expect").cloned().unwrap_or_else(|| json!({}));
        if expected.get("error").is_none()
            && let Some(error) = outcome.get("error")
        {
            panic!("step {index}: unexpected error {error}");
        }
        if let Err(message) = matches(&outcome, &expected, &format!("step {index}")) {
            panic!("{message}\nstep: {step}\noutcome: {outcome}");
        }
    }
    cms
}
