//! Month-end partials: the usage of the month-end vector's workload (tests/vectors/calls/workload), with a
//! correction added, rated in partitions by subscription, shipped as bytes, merged in every order and
//! grouping and finished, writes the very bytes (and summary counts) of the single-process run. The
//! partial of the whole workload is pinned byte for byte (tests/data/partials/vectors-workload.bin), and
//! partials that are damaged, from another setup or hold unknown subscriptions are refused.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cms_api::month_end::partial::{FinishOptions, SETUP_FILES, Setup, merge};
use cms_api::month_end::{OUTPUT_FILES, Options, Summary, run};
use cms_core::Location;
use cms_core::model::meter::MeterId;
use cms_core::model::usage::UsageRow;
use proptest::prelude::*;

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
    setup.partial(&mut accumulator)
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

/// The checked-in partial of the whole vectors workload (every row, in file order, one partition).
fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/partials/vectors-workload.bin")
}

/// The binary form is pinned: the workload's partial is the checked-in bytes (written again with
/// `CMS_BLESS_PARTIALS=1` after a deliberate format change, which also takes a new format version), and
/// those bytes finish to the single-process outputs and to the vector's DuckDB-checked summary.
#[test]
fn the_workload_partial_is_the_checked_in_bytes_and_finishes_to_the_known_outputs() {
    let setup = Setup::read(&workload()).unwrap();
    let rows = rows(&workload());
    let indexed: Vec<(usize, &Vec<String>)> = rows.iter().enumerate().collect();
    let bytes = partial(&setup, &indexed);
    if std::env::var_os("CMS_BLESS_PARTIALS").is_some() {
        std::fs::create_dir_all(golden_path().parent().unwrap()).unwrap();
        std::fs::write(golden_path(), &bytes).unwrap();
    }
    let golden = std::fs::read(golden_path()).unwrap();
    assert_eq!(bytes, golden, "the partial's bytes changed: a format change needs a new version");
    assert_eq!(&golden[..8], b"CMSACC\0\x02");

    let dir = tempfile::tempdir().unwrap();
    let mut single = Options::new(workload(), dir.path().join("single"));
    single.threads = Some(1);
    let expected = run(&single).unwrap();
    let out = dir.path().join("golden");
    let summary = setup
        .finish([golden.as_slice()], &FinishOptions { out: &out, strict: false, focus_out: None })
        .unwrap();
    assert_eq!(outputs(&out), outputs(&dir.path().join("single")));
    assert_eq!((counts(&summary), &summary.totals), (counts(&expected), &expected.totals));
    // The vector's expected summary (tests/vectors/calls/month_end.json, DuckDB-checked).
    let vector: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(workload().join("../month_end.json")).unwrap())
            .unwrap();
    let result = &vector["cases"][0]["steps"][0]["result"];
    let number = |name: &str| result[name].as_u64().unwrap();
    assert_eq!(
        counts(&summary),
        (
            number("usage_rows"),
            number("counted"),
            number("duplicates"),
            number("corrections"),
            number("before_period"),
            number("after_period")
        )
    );
    assert_eq!(summary.totals["USD"].to_string(), result["totals"]["USD"].as_str().unwrap());

    // Every single-bit flip of the partial, and every truncation, is refused before anything is billed.
    let refused = |bytes: &[u8]| {
        let error =
            setup.finish([bytes], &FinishOptions { out: &out, strict: false, focus_out: None }).unwrap_err();
        error.code() == "bad_record" && error.to_string().starts_with("partials record 0")
    };
    let mut flipped = golden.clone();
    for bit in 0..golden.len() * 8 {
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(refused(&flipped), "bit {bit} flipped was accepted");
        flipped[bit / 8] ^= 1 << (bit % 8);
    }
    assert!((0..golden.len()).all(|end| refused(&golden[..end])));
}

/// The workload's setup files in `dir`, one of them changed by `edit`.
fn setup_with(dir: &Path, edit: impl Fn(&str, String) -> String) -> Setup {
    let files: BTreeMap<String, Vec<u8>> = SETUP_FILES
        .iter()
        .map(|name| {
            let text = std::fs::read_to_string(workload().join(name)).unwrap();
            ((*name).to_owned(), edit(name, text).into_bytes())
        })
        .collect();
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    Setup::from_files(&files).unwrap()
}

#[test]
fn partials_of_another_setup_or_without_one_are_refused_naming_the_partial() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::read(&workload()).unwrap();
    let rows = rows(&workload());
    let indexed: Vec<(usize, &Vec<String>)> = rows.iter().enumerate().collect();
    let good = partial(&setup, &indexed[..10]);
    // The same channel and month, another price list.
    let repriced =
        setup_with(
            dir.path(),
            |name, text| if name == "prices.csv" { text.replace("0.008", "0.009") } else { text },
        );
    assert_ne!(repriced.digest(), setup.digest());
    let foreign = partial(&repriced, &indexed[10..]);
    let out = dir.path().join("out");
    let options = FinishOptions { out: &out, strict: false, focus_out: None };
    let error = setup.finish([good.as_slice(), foreign.as_slice()], &options).unwrap_err();
    assert_eq!(error.code(), "bad_record");
    let message = error.to_string();
    assert!(message.starts_with("partials record 1"), "{message}");
    assert!(message.contains("another setup") && message.contains("period 2026-10"), "{message}");
    assert!(!out.join(OUTPUT_FILES[0]).exists(), "nothing is written");
    // Merging refuses the mixture too, naming the odd one.
    let error = merge([good.as_slice(), foreign.as_slice()]).unwrap_err();
    assert!(error.to_string().starts_with("partials record 1"), "{error}");
    assert!(error.to_string().contains("another setup"), "{error}");
    // The bare accumulator (no setup digest) is refused too.
    let mut accumulator = setup.accumulator();
    let fields: [&[u8]; 7] = std::array::from_fn(|column| rows[0][column].as_bytes());
    setup.ingest(&mut accumulator, fields, &|| Location::record("usage", 0)).unwrap();
    let bare = accumulator.to_bytes();
    let error = setup.finish([good.as_slice(), bare.as_slice()], &options).unwrap_err();
    assert!(error.to_string().starts_with("partials record 1"), "{error}");
    assert!(error.to_string().contains("no setup digest"), "{error}");
    let error = merge(std::iter::empty()).unwrap_err();
    assert_eq!(error.code(), "bad_record");
}

/// A partial holding usage of a subscription the setup's channel does not know is refused, naming the
/// partial and the subscription, instead of being dropped from the bill while still counted.
#[test]
fn partials_with_unknown_subscriptions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::read(&workload()).unwrap();
    let rows = rows(&workload());
    let indexed: Vec<(usize, &Vec<String>)> = rows.iter().enumerate().collect();
    let good = partial(&setup, &indexed);
    // Rated with the accumulator directly (Setup::ingest refuses the row), then given this setup's digest.
    let mut accumulator = setup.accumulator();
    let meter: MeterId = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5".parse().unwrap();
    let start = setup.period().start_seconds();
    let stranger = UsageRow {
        subscription: "11111111-2222-3333-4444-555555555555",
        meter,
        start,
        end: start + 3600,
        quantity: "4".parse().unwrap(),
        resource_uri: "/r",
        location: "local",
    };
    accumulator.ingest(&stranger, || Location::record("usage", 0)).unwrap();
    let odd = setup.partial(&mut accumulator);
    let out = dir.path().join("out");
    let options = FinishOptions { out: &out, strict: false, focus_out: None };
    let error = setup.finish([good.as_slice(), odd.as_slice()], &options).unwrap_err();
    assert_eq!(error.code(), "unknown_subscription");
    let message = error.to_string();
    assert!(message.contains("partials record 1"), "{message}");
    assert!(message.contains("11111111-2222-3333-4444-555555555555"), "{message}");
    assert!(!out.join(OUTPUT_FILES[0]).exists(), "nothing is written");
}

/// Merge `partials` (already in a random order) as a random tree: `shape` picks, at each step, which
/// neighbouring pair of the current list to merge next.
fn tree_merge(mut partials: Vec<Vec<u8>>, shape: &[usize]) -> Vec<u8> {
    let mut step = 0;
    while partials.len() > 1 {
        let at = shape.get(step).copied().unwrap_or(0) % (partials.len() - 1);
        step += 1;
        let right = partials.remove(at + 1);
        let left = std::mem::take(&mut partials[at]);
        partials[at] = merge([left.as_slice(), right.as_slice()]).unwrap();
    }
    partials.pop().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Split the workload by subscription anywhere (the subscriptions in a random order, cut at random
    /// points; some rows' ids upper-cased), rate each partition in file order, merge the partials as a random
    /// tree in a random order, or hand them to finish as they are: the four outputs are the single-process
    /// run's, byte for byte, and so are the summary's counts.
    #[test]
    fn split_by_subscription_anywhere_merge_any_tree_finish_equals_the_whole(
        order in Just(()).prop_perturb(|(), mut rng| {
            let mut order: Vec<usize> = (0..16).collect();
            for index in (1..order.len()).rev() {
                order.swap(index, rng.random_range(0..=index));
            }
            order
        }),
        cuts in proptest::collection::vec(0usize..16, 0..5),
        shout in proptest::collection::vec(any::<bool>(), 24),
        shape in proptest::collection::vec(any::<usize>(), 8),
        flat in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let data = workload_with_correction(dir.path());
        let mut rows = rows(&data);
        for (row, loud) in rows.iter_mut().zip(&shout) {
            if *loud {
                row[0] = row[0].to_ascii_uppercase();
            }
        }
        let header = std::fs::read_to_string(data.join("usage.csv")).unwrap();
        let header = header.lines().next().unwrap();
        let lines: Vec<String> = rows.iter().map(|row| row.join(",")).collect();
        std::fs::write(data.join("usage.csv"), format!("{header}\n{}\n", lines.join("\n"))).unwrap();
        let mut single = Options::new(&data, dir.path().join("single"));
        single.threads = Some(1);
        let expected = run(&single).unwrap();
        let expected_files = outputs(&dir.path().join("single"));

        let setup = Setup::read(&data).unwrap();
        let mut subscriptions: Vec<String> = rows.iter().map(|row| row[0].to_ascii_lowercase()).collect();
        subscriptions.sort();
        subscriptions.dedup();
        let shuffled: Vec<&String> =
            order.iter().filter(|&&index| index < subscriptions.len()).map(|&index| &subscriptions[index]).collect();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(shuffled.len())).collect();
        cuts.extend([0, shuffled.len()]);
        cuts.sort_unstable();
        cuts.dedup();
        let partials: Vec<Vec<u8>> = cuts
            .windows(2)
            .map(|window| {
                let group = &shuffled[window[0]..window[1]];
                let mine: Vec<(usize, &Vec<String>)> = rows
                    .iter()
                    .enumerate()
                    .filter(|(_, row)| group.contains(&&row[0].to_ascii_lowercase()))
                    .collect();
                partial(&setup, &mine)
            })
            .collect();
        let count = partials.len() as u64;
        let (shipped, threads) = if flat { (partials, count) } else { (vec![tree_merge(partials, &shape)], 1) };
        let out = dir.path().join("merged");
        let options = FinishOptions { out: &out, strict: false, focus_out: None };
        let summary = setup.finish(shipped.iter().map(Vec::as_slice), &options).unwrap();
        prop_assert_eq!(outputs(&out), expected_files);
        prop_assert_eq!(counts(&summary), counts(&expected));
        prop_assert_eq!((&summary.totals, summary.threads), (&expected.totals, threads));
    }
}
