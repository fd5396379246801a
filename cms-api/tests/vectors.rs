//! Every conformance vector (`tests/vectors/*.json` and `tests/vectors/calls/*.json`) replayed through the
//! facade, on a memory store and on SQLite files (reopened where a case says so), and every public error
//! code expected by at least one vector.

use std::path::PathBuf;

use cms_api::vectors::{Backing, expected_codes, run_all};
use cms_core::CmsError;

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

/// Codes no single caller can provoke through the facade, with the reason. `conflict`: a store refuses a
/// commit that does not extend its audit chain, and the engine then plans the command again on the fresh
/// state, so a conflict reaches a caller only after its retries run out under concurrent writers (the
/// store conformance tests of `cms-core/src/store.rs` and `cms-postgres/tests/store.rs` provoke it).
const UNREACHABLE: &[&str] = &["conflict"];

#[test]
fn every_error_code_is_expected_by_a_vector() {
    let codes = expected_codes(&vectors_dir()).unwrap();
    let missing: Vec<&str> = CmsError::CODES
        .iter()
        .copied()
        .filter(|code| !codes.contains(*code) && !UNREACHABLE.contains(code))
        .collect();
    assert!(missing.is_empty(), "codes no vector expects: {missing:?}");
    for code in UNREACHABLE {
        assert!(CmsError::CODES.contains(code), "{code} is no longer a code");
        assert!(!codes.contains(*code), "{code} is reached by a vector now: take it off UNREACHABLE");
    }
}
