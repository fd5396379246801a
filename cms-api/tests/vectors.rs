//! Every conformance vector (`tests/vectors/*.json` and `tests/vectors/calls/*.json`) replayed through the
//! facade, on a memory store and on SQLite files (reopened where a case says so), every public error
//! code expected by at least one vector, and every method of the facade called by at least one vector.

use std::path::PathBuf;

use cms_api::vectors::{Backing, EVALUATE, expected_codes, json_files, run_all};
use cms_core::CmsError;
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

fn run(backing: Backing) {
    let outcome = run_all(&vectors_dir(), backing).expect("the vectors load");
    assert!(
        outcome.failures.is_empty(),
        "{} vector(s) failed on {backing:?}, {} passed:\n{}",
        outcome.failures.len(),
        outcome.passed,
        outcome.failures.join("\n")
    );
    // The case files alone hold over 60 cases; the call files add well over 100 steps.
    assert!(outcome.passed > 180, "only {} vectors ran", outcome.passed);
}

#[test]
fn every_vector_passes_on_memory() {
    run(Backing::Memory);
}

#[test]
fn every_vector_passes_on_sqlite_files() {
    run(Backing::Sqlite);
}

/// `conflict` included: `tests/vectors/concurrency.json` has a rival writer commit first on the same SQLite
/// file until the engine's retries run out.
#[test]
fn every_error_code_is_expected_by_a_vector() {
    let codes = expected_codes(&vectors_dir()).unwrap();
    let missing: Vec<&str> = CmsError::CODES.iter().copied().filter(|code| !codes.contains(*code)).collect();
    assert!(missing.is_empty(), "codes no vector expects: {missing:?}");
}

/// Every step of the call files: (method, expected error code).
fn call_steps() -> Vec<(String, Option<String>)> {
    let mut steps = Vec::new();
    for path in json_files(&vectors_dir().join("calls")).unwrap() {
        let document: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        for case in document["cases"].as_array().unwrap() {
            for step in case["steps"].as_array().into_iter().flatten() {
                if let Some(method) = step["method"].as_str() {
                    steps.push((method.to_owned(), step["error"]["code"].as_str().map(str::to_owned)));
                }
            }
        }
    }
    steps
}

#[test]
fn every_method_is_called_by_a_vector() {
    let steps = call_steps();
    assert!(steps.len() > 150, "only {} call steps", steps.len());
    // `evaluate_vector` replays every case of the case files.
    let called: std::collections::BTreeSet<&str> =
        steps.iter().map(|(method, _)| method.as_str()).chain([EVALUATE]).collect();
    let known: Vec<&str> = cms_api::methods().iter().map(|method| method.name).collect();
    let missing: Vec<&&str> = known.iter().filter(|name| !called.contains(**name)).collect();
    assert!(missing.is_empty(), "methods no call vector calls: {missing:?}");
    // A step calling a method the facade lacks must expect that refusal (a misspelt name would otherwise
    // only ever test `invalid_value`).
    let misspelt: Vec<&str> = steps
        .iter()
        .filter(|(method, code)| {
            !known.contains(&method.as_str()) && code.as_deref() != Some("invalid_value")
        })
        .map(|(method, _)| method.as_str())
        .collect();
    assert!(misspelt.is_empty(), "vectors call methods the facade lacks: {misspelt:?}");
}
