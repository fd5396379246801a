//! `cms_api::month_end::run` on real files in temporary folders: the outputs byte for byte (the first
//! month-end vector, checked against the DuckDB peer), the summary, threads, FOCUS exports, errors.

use std::path::{Path, PathBuf};

use cms_api::month_end::{OUTPUT_FILES, Options, Summary, run};
use serde_json::{Value, json};

fn case(index: usize) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/month_end.json");
    let document: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    document["cases"][index].clone()
}

fn write_case(dir: &Path, case: &Value) {
    for (name, text) in case["files"].as_object().unwrap() {
        std::fs::write(dir.join(name), text.as_str().unwrap()).unwrap();
    }
}

fn options(data: &Path, out: &Path, threads: usize) -> Options {
    Options { threads: Some(threads), ..Options::new(data, out) }
}

#[test]
fn outputs_are_the_vectors_byte_for_byte_on_one_and_two_threads() {
    let dir = tempfile::tempdir().unwrap();
    let case = case(0);
    write_case(dir.path(), &case);
    let mut summaries = Vec::new();
    for threads in [1, 2] {
        let out = dir.path().join(format!("out-{threads}"));
        let summary = run(&options(dir.path(), &out, threads)).unwrap();
        for (name, expected) in case["expect"].as_object().unwrap() {
            let written = std::fs::read_to_string(out.join(name)).unwrap();
            assert_eq!(&written, expected.as_str().unwrap(), "{name} on {threads} thread(s)");
        }
        let listed: Vec<String> =
            OUTPUT_FILES.iter().map(|name| out.join(name).display().to_string()).collect();
        assert_eq!(summary.outputs, listed);
        assert_eq!(summary.threads, threads as u64);
        summaries.push(summary);
    }
    let strip =
        |summary: &Summary| Summary { outputs: Vec::new(), threads: 0, elapsed_ms: 0, ..summary.clone() };
    assert_eq!(strip(&summaries[0]), strip(&summaries[1]));
    // 23 rows: 2 exact repeats, one of September, one of November; 4 invoices (0.90 + 0.13 + 0.22 + 1.56).
    let summary = &summaries[0];
    assert_eq!(
        (
            summary.usage_rows,
            summary.counted,
            summary.duplicates,
            summary.before_period,
            summary.after_period
        ),
        (23, 19, 2, 1, 1)
    );
    assert_eq!(
        (summary.invoices, summary.invoice_lines, summary.commission_statements, summary.overrides),
        (4, 5, 3, 2)
    );
    assert_eq!(summary.period, "2026-10");
    assert!(summary.unpriced.is_empty());
    // Decimals serialise as strings.
    let json = serde_json::to_value(summary).unwrap();
    assert_eq!(json["totals"], json!({"USD": "2.81"}));
}

#[test]
fn focus_exports_are_listed_after_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    write_case(dir.path(), &case(0));
    let focus = dir.path().join("focus");
    let summary =
        run(&Options { focus_out: Some(focus.clone()), ..options(dir.path(), &dir.path().join("out"), 1) })
            .unwrap();
    let exports = &summary.outputs[OUTPUT_FILES.len()..];
    assert!(!exports.is_empty(), "{:?}", summary.outputs);
    for export in exports {
        let path = Path::new(export);
        assert!(path.starts_with(&focus) && path.is_file(), "{export}");
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.starts_with("BilledCost,") || text.contains("x_TenantId"),
            "{export}: {}",
            &text[..80.min(text.len())]
        );
    }
}

#[test]
fn unpriced_usage_is_reported_or_refused_when_strict() {
    let dir = tempfile::tempdir().unwrap();
    let case = case(2);
    write_case(dir.path(), &case);
    let summary = run(&options(dir.path(), &dir.path().join("out"), 1)).unwrap();
    let unpriced: Vec<(String, String, String)> = summary
        .unpriced
        .iter()
        .map(|entry| {
            (entry.subscription.clone(), entry.meter.clone(), entry.quantity.normalize().to_string())
        })
        .collect();
    assert_eq!(
        unpriced,
        [(
            "0bb4db71-be57-4209-851d-3d24f4c0cf83".to_owned(),
            "00000000-0000-4000-8000-00000000BEEF".to_owned(),
            "5".to_owned()
        )]
    );
    let strict = Options { strict: true, ..options(dir.path(), &dir.path().join("strict"), 1) };
    let error = run(&strict).unwrap_err();
    assert_eq!(error.code(), "unpriced_meter", "{error}");
    assert!(!dir.path().join("strict").exists(), "nothing is written when refused");
}

#[test]
fn a_missing_folder_or_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let error = run(&Options::new(&missing, dir.path().join("out"))).unwrap_err();
    assert_eq!(error.code(), "io");
    assert!(
        error.to_string().contains("nowhere") && error.to_string().contains("no such data folder"),
        "{error}"
    );
    assert!(!dir.path().join("out").exists());
    write_case(dir.path(), &case(0));
    std::fs::remove_file(dir.path().join("prices.csv")).unwrap();
    let error = run(&Options::new(dir.path(), dir.path().join("out"))).unwrap_err();
    assert_eq!(error.code(), "io");
    assert!(error.to_string().contains("prices.csv: cannot read"), "{error}");
}

/// Line ends as `\r\n`, and as a lone `\r` (which the simple path reads as a line end too, so the fast
/// path's workers hand the file to the csv crate's reader): the same outputs, and a bad row's line counts
/// the lone `\r` lines.
#[test]
fn carriage_return_line_ends_give_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let case = case(0);
    write_case(dir.path(), &case);
    let usage = case["files"]["usage.csv"].as_str().unwrap();
    for (name, text) in [("crlf", usage.replace('\n', "\r\n")), ("lone-cr", usage.replacen('\n', "\r", 4))] {
        std::fs::write(dir.path().join("usage.csv"), &text).unwrap();
        for threads in [1, 2] {
            let out = dir.path().join(format!("out-{name}-{threads}"));
            run(&options(dir.path(), &out, threads)).unwrap();
            for (file, expected) in case["expect"].as_object().unwrap() {
                let written = std::fs::read_to_string(out.join(file)).unwrap();
                assert_eq!(&written, expected.as_str().unwrap(), "{file}, {name}, {threads} thread(s)");
            }
        }
    }
    // The third line's end is a lone `\r`; the fourth row is bad.
    let lines: Vec<&str> = usage.split_inclusive('\n').collect();
    let bad_fourth = lines[4].replacen('0', "x", 1);
    let text = [lines[0], lines[1], &lines[2].replace('\n', "\r"), lines[3], &bad_fourth].concat();
    std::fs::write(dir.path().join("usage.csv"), text).unwrap();
    for threads in [1, 2] {
        let error = run(&options(dir.path(), &dir.path().join("out-bad"), threads)).unwrap_err();
        assert!(error.to_string().starts_with("usage.csv line 5:"), "{error}");
    }
}

#[test]
fn a_bad_row_names_its_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let case = case(0);
    write_case(dir.path(), &case);
    let usage = case["files"]["usage.csv"].as_str().unwrap().replacen("10.000000", "ten", 1);
    std::fs::write(dir.path().join("usage.csv"), usage).unwrap();
    for threads in [1, 2] {
        let out = dir.path().join(format!("out-{threads}"));
        let error = run(&options(dir.path(), &out, threads)).unwrap_err();
        assert_eq!(error.code(), "bad_decimal");
        assert!(error.to_string().starts_with("usage.csv line 2: bad decimal \"ten\""), "{error}");
        assert!(!out.exists());
    }
}

#[test]
fn the_facade_call_runs_the_same_job() {
    let dir = tempfile::tempdir().unwrap();
    write_case(dir.path(), &case(0));
    let out = dir.path().join("out");
    let direct = run(&options(dir.path(), &out, 1)).unwrap();
    let called = cms_api::call(
        "month_end",
        json!({"data": dir.path().to_str().unwrap(), "out": out.to_str().unwrap(), "threads": 1}),
    )
    .unwrap();
    let called: Summary = serde_json::from_value(called).unwrap();
    assert_eq!(Summary { elapsed_ms: 0, ..called }, Summary { elapsed_ms: 0, ..direct });
    let error = cms_api::call("month_end", json!({"data": dir.path().to_str().unwrap()})).unwrap_err();
    assert_eq!(error.to_string(), "month_end field out: bad JSON: required, missing");
}
