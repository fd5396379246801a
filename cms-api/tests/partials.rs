//! Month-end partials: the usage of the month-end vector's workload (tests/vectors/calls/workload), with a
//! correction added, rated in partitions by subscription, shipped as bytes, merged in every order and
//! finished, writes the very bytes (and summary counts) of the single-process run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cms_api::month_end::partial::{FinishOptions, SETUP_FILES, Setup};
use cms_api::month_end::{OUTPUT_FILES, Options, Summary, run};
use cms_core::Location;

fn workload() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/calls/workload")
}

/// The workload in a scratch folder, its usage with one more row: a correction of the first row's key.
fn workload_with_correction(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for name in SETUP_FILES {
        std::fs::copy(workload().join(name), data.join(name)).unwrap();
    }
    let usage = std::fs::read_to_string(workload().join("usage.csv")).unwrap();
    let first: Vec<&str> = usage.lines().nth(1).unwrap().split(',').collect();
    let mut corrected = first.clone();
    corrected[4] = "12.500000";
    let usage = format!("{}\n{}\n", usage.trim_end(), corrected.join(","));
    std::fs::write(data.join("usage.csv"), usage).unwrap();
    data
}

fn rows(data: &Path) -> Vec<Vec<String>> {
    let usage = std::fs::read_to_string(data.join("usage.csv")).unwrap();
    usage.lines().skip(1).map(|line| line.split(',').map(str::to_owned).collect()).collect()
}

/// Rate `rows` (with their 0-based indices) into a partial.
fn partial(setup: &Setup, rows: &[(usize, &Vec<String>)]) -> Vec<u8> {
    let mut accumulator = setup.accumulator();
    for (index, row) in rows {
        let fields: [&[u8]; 7] = std::array::from_fn(|column| row[column].as_bytes());
        setup.ingest(&mut accumulator, fields, &|| Location::record("usage", *index as u64)).unwrap();
    }
    accumulator.to_bytes()
}

fn outputs(out: &Path) -> BTreeMap<&'static str, Vec<u8>> {
    OUTPUT_FILES.iter().map(|name| (*name, std::fs::read(out.join(name)).unwrap())).collect()
}

fn counts(summary: &Summary) -> (u64, u64, u64, u64, u64, u64) {
    (
        summary.usage_rows,
        summary.counted,
        summary.duplicates,
        summary.corrections,
        summary.before_period,
        summary.after_period,
    )
}

#[test]
fn partitions_by_subscription_merge_in_any_order_to_the_single_process_result() {
    let dir = tempfile::tempdir().unwrap();
    let data = workload_with_correction(dir.path());
    let mut single = Options::new(&data, dir.path().join("single"));
    single.threads = Some(1);
    let expected = run(&single).unwrap();
    assert_eq!(expected.corrections, 1, "the added row corrects an earlier one");
    let expected_files = outputs(&dir.path().join("single"));

    let setup = Setup::read(&data).unwrap();
    let rows = rows(&data);
    let subscriptions: Vec<String> = {
        let mut ids: Vec<String> = rows.iter().map(|row| row[0].to_ascii_lowercase()).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    assert!(subscriptions.len() >= 2, "{subscriptions:?}");
    // One partition per subscription, each in file order.
    let partials: Vec<Vec<u8>> = subscriptions
        .iter()
        .map(|id| {
            let mine: Vec<(usize, &Vec<String>)> =
                rows.iter().enumerate().filter(|(_, row)| &row[0].to_ascii_lowercase() == id).collect();
            partial(&setup, &mine)
        })
        .collect();
    let orders: Vec<Vec<usize>> = {
        let n = partials.len();
        let forward: Vec<usize> = (0..n).collect();
        let backward: Vec<usize> = (0..n).rev().collect();
        let rotated: Vec<usize> = (0..n).map(|i| (i + 1) % n).collect();
        vec![forward, backward, rotated]
    };
    for (number, order) in orders.iter().enumerate() {
        let out = dir.path().join(format!("merged-{number}"));
        let options = FinishOptions { out: &out, strict: false, focus_out: None };
        let summary = setup.finish(order.iter().map(|&index| partials[index].as_slice()), &options).unwrap();
        assert_eq!(outputs(&out), expected_files, "order {order:?}");
        assert_eq!(counts(&summary), counts(&expected), "order {order:?}");
        assert_eq!(
            (summary.totals.clone(), summary.threads),
            (expected.totals.clone(), partials.len() as u64)
        );
    }
}

#[test]
fn file_order_partitions_merged_in_order_write_the_same_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let data = workload_with_correction(dir.path());
    let mut single = Options::new(&data, dir.path().join("single"));
    single.threads = Some(1);
    run(&single).unwrap();
    let setup = Setup::read(&data).unwrap();
    let rows = rows(&data);
    let indexed: Vec<(usize, &Vec<String>)> = rows.iter().enumerate().collect();
    let partials: Vec<Vec<u8>> = indexed.chunks(5).map(|chunk| partial(&setup, chunk)).collect();
    let out = dir.path().join("merged");
    let options = FinishOptions { out: &out, strict: false, focus_out: None };
    setup.finish(partials.iter().map(Vec::as_slice), &options).unwrap();
    assert_eq!(outputs(&out), outputs(&dir.path().join("single")));
}

#[test]
fn setup_from_shipped_files_and_bad_input_name_what_is_wrong() {
    let files: BTreeMap<String, Vec<u8>> = SETUP_FILES
        .iter()
        .map(|name| ((*name).to_owned(), std::fs::read(workload().join(name)).unwrap()))
        .collect();
    let setup = Setup::from_files(&files).unwrap();
    assert_eq!(setup.period().to_string(), "2026-10");
    let mut missing = files.clone();
    missing.remove("prices.csv");
    let error = Setup::from_files(&missing).err().unwrap();
    assert_eq!((error.code(), error.to_string().starts_with("prices.csv")), ("io", true), "{error}");

    let mut accumulator = setup.accumulator();
    let at = || Location::record("part-3", 7);
    let row = |subscription: &'static str, quantity: &'static str| -> [&'static [u8]; 7] {
        [
            subscription.as_bytes(),
            b"FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5",
            b"2026-10-01T00:00:00+00:00",
            b"2026-10-01T01:00:00+00:00",
            quantity.as_bytes(),
            b"/r",
            b"local",
        ]
    };
    let error = setup.ingest(&mut accumulator, row("nobody", "1"), &at).unwrap_err();
    assert_eq!(error.code(), "unknown_subscription");
    assert!(error.to_string().contains("part-3"), "{error}");
    let known = "0bb4db71-be57-4209-851d-3d24f4c0cf83";
    let error = setup.ingest(&mut accumulator, row(known, "1,5"), &at).unwrap_err();
    assert_eq!(error.code(), "bad_decimal");
    let dir = tempfile::tempdir().unwrap();
    let options = FinishOptions { out: dir.path(), strict: false, focus_out: None };
    let error = setup.finish([&b"CMSACC\0\x01garbage"[..]], &options).unwrap_err();
    assert_eq!(error.code(), "bad_record");
    assert!(error.to_string().contains("partials"), "{error}");
}
