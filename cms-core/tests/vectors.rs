//! Runs the conformance vectors of `tests/vectors/*.json` (the same cases every binding runs) on the core
//! alone; the `concurrent_writers` cases need SQLite and run in cms-api's runner and the bindings'.

use std::path::PathBuf;

use cms_core::CmsError;
use cms_core::billing::NotBilledReason;
use cms_core::formats::usage_api::parse_page;
use cms_core::formats::workload::{self, OutputSinks, UsageInput, WorkloadInputs};
use cms_core::model::meter::MeterId;
use cms_core::model::money::{Rounding, parse_decimal};
use cms_core::model::tiers::{Tier, TierMode, TierSchedule};
use cms_core::model::time::parse_timestamp;
use serde_json::{Value, json};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn text(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_else(|| panic!("field {key} in {value}")).to_owned()
}

fn dec(text: &str) -> cms_core::Decimal {
    parse_decimal(text).unwrap_or_else(|| panic!("bad decimal in vector: {text}"))
}

/// `{"error": {"code", "message"}}` for an error.
fn error_value(error: &CmsError) -> Value {
    json!({"error": {"code": error.code(), "message": error.to_string()}})
}

fn check_error(case: &Value, actual: &Value) -> Result<(), String> {
    let expected = &case["expect"]["error"];
    if actual["error"]["code"] != expected["code"] {
        return Err(format!("expected error {}, got {actual}", expected["code"]));
    }
    if let Some(fragment) = expected["message_contains"].as_str() {
        let message = actual["error"]["message"].as_str().unwrap_or_default();
        if !message.contains(fragment) {
            return Err(format!("message {message:?} lacks {fragment:?}"));
        }
    }
    Ok(())
}

fn run_tier(case: &Value) -> Value {
    let mode = if text(case, "mode") == "volume" { TierMode::Volume } else { TierMode::Graduated };
    let tiers = case["tiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| Tier { from: dec(pair[0].as_str().unwrap()), rate: dec(pair[1].as_str().unwrap()) })
        .collect();
    let quantity = dec(&text(case, "quantity"));
    match TierSchedule::new(mode, tiers, "schedule").and_then(|schedule| {
        let amount = schedule.amount(quantity)?;
        let bands = schedule.breakdown(quantity)?;
        // Exact amounts compare as numbers: the vectors hold them normalised.
        let exact = |value: cms_core::Decimal| value.normalize().to_string();
        Ok(json!({"amount": exact(amount), "bands": bands.iter().map(|band| exact(band.amount)).collect::<Vec<_>>()}))
    }) {
        Ok(value) => value,
        Err(error) => error_value(&error),
    }
}

fn run_round(case: &Value) -> Value {
    let scale = u32::try_from(case["scale"].as_u64().unwrap()).unwrap();
    let rounding = Rounding::new(scale, text(case, "mode").parse().unwrap());
    json!({"value": rounding.apply(dec(&text(case, "amount"))).to_string()})
}

fn run_meter(case: &Value) -> Value {
    match text(case, "input").parse::<MeterId>() {
        Ok(meter) => match meter.info() {
            Some(info) => json!({"canonical": meter.canonical(), "known": true, "name": info.name}),
            None => json!({"canonical": meter.canonical(), "known": false}),
        },
        Err(_) => json!({"error": {"code": "bad_meter_id"}}),
    }
}

fn run_timestamp(case: &Value) -> Value {
    match parse_timestamp(&text(case, "input")) {
        Some(instant) => json!({"utc": instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()}),
        None => json!({"error": {"code": "bad_timestamp"}}),
    }
}

fn run_page(case: &Value) -> Value {
    match parse_page(text(case, "page").as_bytes(), &text(case, "source")) {
        Ok(page) => {
            let records: Vec<Value> = page
                .records
                .iter()
                .map(|record| {
                    json!([
                        record.subscription,
                        record.meter.canonical(),
                        record.start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        record.end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                        record.quantity.to_string(),
                        record.resource_uri,
                        record.location
                    ])
                })
                .collect();
            json!({"records": records, "next_link": page.next_link})
        }
        Err(error) => error_value(&error),
    }
}

fn run_month_end(case: &Value) -> Value {
    let files = &case["files"];
    let file = |name: &str| text(files, name).into_bytes();
    let plan = file("plan.json");
    let result = workload::month_end(WorkloadInputs {
        plan: &plan,
        hierarchy: &mut file("hierarchy.csv").as_slice(),
        subscriptions: &mut file("subscriptions.csv").as_slice(),
        prices: &mut file("prices.csv").as_slice(),
        commission: &mut file("commission.csv").as_slice(),
        usage: UsageInput::Csv(&mut file("usage.csv").as_slice()),
    });
    match result {
        Ok(report) => {
            let (mut lines, mut invoices, mut commissions, mut overrides) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            workload::write_outputs(
                &report,
                &mut OutputSinks {
                    invoice_lines: &mut lines,
                    invoices: &mut invoices,
                    commissions: &mut commissions,
                    overrides: &mut overrides,
                },
            )
            .unwrap();
            let string = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
            let mut out = json!({
                "invoice_lines.csv": string(lines),
                "invoices.csv": string(invoices),
                "commissions.csv": string(commissions),
                "overrides.csv": string(overrides),
            });
            let unpriced: Vec<_> =
                report.not_billed.iter().filter(|entry| entry.reason == NotBilledReason::NoPrice).collect();
            if !unpriced.is_empty() {
                out["unpriced"] = unpriced
                    .iter()
                    .map(|entry| {
                        json!([
                            entry.subscription,
                            entry.meter.canonical(),
                            workload::quantity_text(entry.quantity)
                        ])
                    })
                    .collect();
            }
            out
        }
        Err(error) => error_value(&error),
    }
}

#[test]
fn every_vector_passes() {
    let mut files: Vec<_> = std::fs::read_dir(vectors_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "vectors missing: {files:?}");
    let (mut passed, mut failures) = (0, Vec::new());
    for path in files {
        let document: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for (index, case) in document["cases"].as_array().unwrap().iter().enumerate() {
            let actual = match case["kind"].as_str().unwrap() {
                "tier_amount" => run_tier(case),
                "round" => run_round(case),
                "meter_id" => run_meter(case),
                "timestamp" => run_timestamp(case),
                "usage_page" => run_page(case),
                "month_end" => run_month_end(case),
                // Two engines on one SQLite file: a case for the facade's runner (cms-api/tests/vectors.rs)
                // and every binding's, which evaluate it through `evaluate_vector`; the core has no store
                // but memory.
                "concurrent_writers" => continue,
                other => panic!("unknown vector kind {other}"),
            };
            let outcome = if case["expect"].get("error").is_some() {
                check_error(case, &actual)
            } else if actual == case["expect"] {
                Ok(())
            } else {
                Err(format!("expected {}\n     got {actual}", case["expect"]))
            };
            match outcome {
                Ok(()) => passed += 1,
                Err(why) => failures.push(format!(
                    "{} #{index} ({}): {why}",
                    path.file_name().unwrap().to_string_lossy(),
                    case["name"].as_str().unwrap_or("")
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} vector(s) failed, {passed} passed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(passed > 50, "only {passed} vectors ran");
}
