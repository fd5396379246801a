//! The `cms` binary as a user runs it: exit codes, messages, outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn cms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cms")).args(args).output().expect("run cms")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The first month-end vector: a small channel whose expected outputs are known.
fn base_case() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/month_end.json");
    let document: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    document["cases"][0].clone()
}

fn write_case(dir: &Path, case: &Value) {
    for (name, contents) in case["files"].as_object().unwrap() {
        std::fs::write(dir.join(name), contents.as_str().unwrap()).unwrap();
    }
}

fn month_end(data: &Path, out: &Path) -> Output {
    cms(&["month-end", "--data", data.to_str().unwrap(), "--out", out.to_str().unwrap()])
}

#[test]
fn month_end_writes_the_four_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let case = base_case();
    write_case(dir.path(), &case);
    let out = dir.path().join("out/nested");
    let output = month_end(dir.path(), &out);
    assert!(output.status.success(), "{}", stderr(&output));
    for (name, expected) in case["expect"].as_object().unwrap() {
        let written = std::fs::read_to_string(out.join(name)).unwrap();
        assert_eq!(&written, expected.as_str().unwrap(), "{name}");
    }
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(
        summary.contains("19 counted, 2 duplicates") && summary.contains("1 before the period, 1 after"),
        "{summary}"
    );
}

/// Each bad input exits 2 with `error[code]: <file> line N ...`, never a panic.
#[test]
fn bad_inputs_exit_2_with_the_line() {
    let case = base_case();
    let usage = case["files"]["usage.csv"].as_str().unwrap().to_owned();
    let lines: Vec<&str> = usage.lines().collect();
    let with_line = |number: usize, text: String| {
        let mut edited: Vec<String> = lines.iter().map(|line| (*line).to_owned()).collect();
        edited[number - 1] = text;
        edited.join("\n") + "\n"
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "usage.csv",
            with_line(3, lines[2].replace("10.000000", "ten")),
            "error[bad_decimal]: usage.csv line 3: bad decimal \"ten\"",
        ),
        (
            "usage.csv",
            with_line(4, lines[3].replacen("0bb4db71", "deadbeef", 1)),
            "error[unknown_subscription]: usage.csv line 4",
        ),
        ("usage.csv", with_line(2, lines[1].replace("2026-10-01T00:00:00+00:00", "2026-10-01")), ""),
        (
            "usage.csv",
            usage.replace("quantity", "qty"),
            "error[bad_header]: usage.csv line 1: bad header: expected column \"quantity\"",
        ),
        (
            "usage.csv",
            with_line(5, lines[4].replace("2026-10-01T04:00:00+00:00", "not a time")),
            "error[bad_timestamp]: usage.csv line 5",
        ),
        (
            "prices.csv",
            "meter_id,unit,tier_from,unit_price\nFAB6EB84-500B-4A09-A8CA-7358F8BBAEA5,h,0,1.2.3\n".into(),
            "error[bad_decimal]: prices.csv line 2",
        ),
        (
            "plan.json",
            "{\"month\": \"October\", \"distributor_override_rate\": 0.02}".into(),
            "error[invalid_value]: plan.json field month",
        ),
    ];
    for (file, contents, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        write_case(dir.path(), &case);
        std::fs::write(dir.path().join(file), contents).unwrap();
        let output = month_end(dir.path(), &dir.path().join("out"));
        let message = stderr(&output);
        if expected.is_empty() {
            // A date without a time is still a valid UTC instant (midnight): accepted.
            assert!(output.status.success(), "{message}");
            continue;
        }
        assert_eq!(output.status.code(), Some(2), "{file}: {message}");
        assert!(message.starts_with(expected), "{file}: expected {expected:?}, got {message:?}");
        assert!(!message.contains("panicked") && !message.contains("RUST_BACKTRACE"), "{message}");
        assert!(!dir.path().join("out").exists(), "no output is written when the input is bad");
    }
}

#[test]
fn missing_files_and_folders_are_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let output = month_end(&dir.path().join("nowhere"), &dir.path().join("out"));
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with("error[io]: ") && stderr(&output).contains("nowhere"),
        "{}",
        stderr(&output)
    );
    write_case(dir.path(), &base_case());
    std::fs::remove_file(dir.path().join("usage.csv")).unwrap();
    let output = month_end(dir.path(), &dir.path().join("out"));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("usage.csv: cannot read"), "{}", stderr(&output));
}

#[test]
fn strict_refuses_unpriced_usage() {
    let dir = tempfile::tempdir().unwrap();
    let case = base_case();
    write_case(dir.path(), &case);
    let mut usage = case["files"]["usage.csv"].as_str().unwrap().to_owned();
    usage.push_str(
        "0bb4db71-be57-4209-851d-3d24f4c0cf83,00000000-0000-4000-8000-00000000beef,2026-10-07T00:00:00+00:00,\
         2026-10-07T01:00:00+00:00,5,/r,local\n",
    );
    std::fs::write(dir.path().join("usage.csv"), usage).unwrap();
    let relaxed = month_end(dir.path(), &dir.path().join("out"));
    assert!(relaxed.status.success());
    assert!(stderr(&relaxed).contains("no price and were not billed"), "{}", stderr(&relaxed));
    let strict = cms(&[
        "month-end",
        "--strict",
        "--data",
        dir.path().to_str().unwrap(),
        "--out",
        dir.path().join("out2").to_str().unwrap(),
    ]);
    assert_eq!(strict.status.code(), Some(2));
    assert!(stderr(&strict).starts_with("error[unpriced_meter]: "), "{}", stderr(&strict));
}

/// The demo on a fresh SQLite file, then again on the same file: the second run continues from it (no
/// duplicate channel, every usage record a duplicate) and prints the same documents.
#[test]
fn demo_prints_invoices_and_statements_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let output = cms(&["demo", "--db", db.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("a new channel"), "{text}");
    let again = cms(&["demo", "--db", db.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    let second = String::from_utf8_lossy(&again.stdout);
    assert!(second.contains("continuing from"), "{second}");
    assert!(second.contains(" 0 stored"), "the second run stores nothing new: {second}");
    let section = |text: &str, from: &str, to: &str| {
        let start = text.find(from).unwrap_or(0);
        let end = text[start..].find(to).map_or(text.len(), |end| start + end);
        text[start..end].to_owned()
    };
    assert_eq!(
        section(&text, "Invoice 2025-03", "2025-03 is closed"),
        section(&second, "Invoice 2025-03", "2025-03 is closed"),
        "March's documents again"
    );
    assert_eq!(
        section(&text, "Invoices 2025-04", "Scheduler tick"),
        section(&second, "Invoices 2025-04", "Scheduler tick")
    );
    // Monitoring: the first run's tick runs the slot's jobs, the second finds them done; the budget is
    // breached in both; the dashboard page is written beside the database.
    assert!(
        text.contains("Scheduler tick at 2025-04-30T12:00:00+00:00: ran draft:2025-03, purge:2025-04-30"),
        "{text}"
    );
    assert!(second.contains("nothing due, the 3 jobs of this slot ran already"), "{second}");
    for run in [&text, &second] {
        assert!(run.contains("budget_breach") && run.contains("109.29% of 53.92 USD"), "{run}");
    }
    let page = std::fs::read_to_string(dir.path().join("cms-dashboard.html")).unwrap();
    assert!(page.contains("Cost by day") && page.contains("278.35 USD"));
    assert!(text.contains("Preview of rise-2025-04-compute on 2025-03 usage"), "{text}");
    assert!(second.contains("change set is already applied"), "{second}");
    for expected in [
        "Invoice 2025-03 from Northwind Distribution to Adatum Web",
        "Invoice 2025-03 from Northwind Distribution to Woodgrove Bank",
        "Invoice 2025-03 from Platform to Northwind Distribution",
        "list-northwind-wholesale",
        "list-fabrikam",
        "Commission statements 2025-03",
        "bands-contoso",
        "Resellers' margins 2025-04",
        "double counts with the core-hour meters",
        "20 duplicate(s)",
        "splits its 5 meter(s) into 10 line(s) at the move",
    ] {
        assert!(text.contains(expected), "demo output lacks {expected:?}:\n{text}");
    }
    assert!(!text.contains("to Litware"), "a tenant without usage gets no invoice");
}

#[test]
fn usage_errors_exit_2() {
    let output = cms(&["month-end", "--data"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn month_end_from_pages_names_a_bad_page_and_record() {
    let dir = tempfile::tempdir().unwrap();
    write_case(dir.path(), &base_case());
    let pages = dir.path().join("pages");
    std::fs::create_dir(&pages).unwrap();
    let record = |quantity: &str| {
        format!(
            r#"{{"properties":{{"subscriptionId":"0bb4db71-be57-4209-851d-3d24f4c0cf83","usageStartTime":"2026-10-01T00:00:00+00:00","usageEndTime":"2026-10-01T01:00:00+00:00","meterId":"FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5","quantity":{quantity},"instanceData":"{{\"Microsoft.Resources\":{{\"resourceUri\":\"/r\",\"location\":\"local\"}}}}"}}}}"#
        )
    };
    std::fs::write(
        pages.join("page-000000.json"),
        format!(r#"{{"value":[{}],"nextLink":"page-000001.json"}}"#, record("120")),
    )
    .unwrap();
    std::fs::write(
        pages.join("page-000001.json"),
        format!(r#"{{"value":[{},{}]}}"#, record("120"), record("-1")),
    )
    .unwrap();
    std::fs::write(pages.join("notes.txt"), "not a page").unwrap();
    let output = cms(&[
        "month-end",
        "--data",
        dir.path().to_str().unwrap(),
        "--pages",
        pages.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output)
            .starts_with("error[negative_quantity]: page-000001.json record 1: negative quantity -1"),
        "{}",
        stderr(&output)
    );
    std::fs::write(pages.join("page-000001.json"), format!(r#"{{"value":[{}]}}"#, record("120"))).unwrap();
    let output = cms(&[
        "month-end",
        "--data",
        dir.path().to_str().unwrap(),
        "--pages",
        pages.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let lines = std::fs::read_to_string(dir.path().join("out/invoice_lines.csv")).unwrap();
    assert_eq!(
        lines,
        "tenant_id,subscription_id,meter_id,quantity,amount\nt1,0bb4db71-be57-4209-851d-3d24f4c0cf83,FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5,120.000000,0.90\n",
        "the repeated record counts once"
    );
}

/// The base case's usage repeated `copies` times (each copy on its own resources, so nothing is a
/// duplicate): several MiB, so the workers split it into many blocks.
fn big_usage(case: &Value, copies: usize, quoted_copy: Option<usize>) -> String {
    let usage = case["files"]["usage.csv"].as_str().unwrap();
    let mut lines = usage.lines();
    let mut big = format!("{}\n", lines.next().unwrap());
    let rows: Vec<&str> = lines.collect();
    for copy in 0..copies {
        for row in &rows {
            let mut fields: Vec<String> = row.split(',').map(str::to_owned).collect();
            fields[5] = format!("{}-copy{copy}", fields[5]);
            if Some(copy) == quoted_copy {
                // Quoted fields, one with a comma and one with an escaped quote inside.
                fields[5] = format!("\"{}\"", fields[5].replace("copy", "co,\"\"py"));
                fields[6] = format!("\"{}\"", fields[6]);
            }
            big.push_str(&fields.join(","));
            big.push('\n');
        }
    }
    big
}

fn month_end_threads(data: &Path, out: &Path, threads: &str) -> Output {
    cms(&[
        "month-end",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--threads",
        threads,
    ])
}

fn read_outputs(out: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// A usage file of many blocks gives the same outputs on 1, 2 and 3 workers, with or without quoted
/// fields (which switch the reading to cutting between records), and a bad record deep in the file is
/// named by its absolute line however the blocks fell.
#[test]
fn many_blocks_same_outputs_and_absolute_error_lines() {
    let case = base_case();
    let copies = 700;
    let rows_per_copy = case["files"]["usage.csv"].as_str().unwrap().lines().count() - 1;
    let mut reference = None;
    for quoted in [None, Some(copies / 2)] {
        let dir = tempfile::tempdir().unwrap();
        write_case(dir.path(), &case);
        let usage = big_usage(&case, copies, quoted);
        assert!(usage.len() > 4 << 20, "the file spans several 1 MiB blocks");
        std::fs::write(dir.path().join("usage.csv"), &usage).unwrap();
        for threads in ["1", "2", "3"] {
            let out = dir.path().join(format!("out{threads}"));
            let output = month_end_threads(dir.path(), &out, threads);
            assert!(output.status.success(), "{}", stderr(&output));
            let outputs = read_outputs(&out);
            let lines = &outputs.iter().find(|(name, _)| name == "invoice_lines.csv").unwrap().1;
            assert!(lines.lines().count() > 1, "{lines}");
            match &reference {
                None => reference = Some(outputs),
                Some(expected) => assert_eq!(&outputs, expected, "threads {threads}, quoted {quoted:?}"),
            }
        }
        // A bad quantity on a line far past the first blocks.
        for bad_line in [rows_per_copy * (copies - 3) + 5, rows_per_copy * 200 + 2] {
            let mut edited: Vec<String> = usage.lines().map(str::to_owned).collect();
            assert!(
                edited[bad_line - 1].contains(",10.000000,"),
                "line {bad_line} holds a quantity to spoil"
            );
            edited[bad_line - 1] = edited[bad_line - 1].replacen(",10.000000,", ",ten,", 1);
            std::fs::write(dir.path().join("usage.csv"), edited.join("\n") + "\n").unwrap();
            for threads in ["1", "2", "3"] {
                let output = month_end_threads(dir.path(), &dir.path().join("bad"), threads);
                let message = stderr(&output);
                assert_eq!(output.status.code(), Some(2), "{message}");
                let expected = format!("error[bad_decimal]: usage.csv line {bad_line}: bad decimal \"ten\"");
                assert!(
                    message.starts_with(&expected),
                    "threads {threads}: expected {expected:?}, got {message:?}"
                );
            }
        }
    }
}
