//! How fast `put_usage` stores a large batch. Timings are printed, not asserted; run with
//! `cargo test --release -p cms-sqlite --test throughput -- --ignored --nocapture`.

mod common;

use std::time::Instant;

use chrono::Duration;
use cms_core::store::Store;
use cms_sqlite::SqliteStore;
use common::{VM, at, october, record};

#[test]
#[ignore = "a measurement: run it in release with --nocapture"]
fn put_usage_of_100k_records() {
    let directory = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(directory.path().join("cms.db")).unwrap();
    // 100 subscriptions x 10 resources x 100 hours.
    let records: Vec<_> = (0..100_000)
        .map(|index| {
            let mut usage = record(
                &format!("sub-{:03}", index % 100),
                VM,
                at(1, 0) + Duration::hours(index / 1000),
                1,
                "2.5",
            );
            usage.resource_uri = format!("{}-{}", usage.resource_uri, (index / 100) % 10);
            usage
        })
        .collect();
    let started = Instant::now();
    let written = store.put_usage(&records, None).unwrap();
    let inserting = started.elapsed();
    assert_eq!(written.inserted, 100_000);
    let started = Instant::now();
    let repeated = store.put_usage(&records, None).unwrap();
    let repeating = started.elapsed();
    assert_eq!(repeated.duplicates, 100_000);
    let started = Instant::now();
    let mut visited = 0;
    store
        .for_each_usage(&october(), &mut |_| {
            visited += 1;
            Ok(())
        })
        .unwrap();
    let reading = started.elapsed();
    assert_eq!(visited, 100_000);
    println!(
        "put_usage 100k new: {inserting:?} ({:.0} records/s); 100k duplicates: {repeating:?}; \
         for_each_usage 100k: {reading:?}",
        100_000.0 / inserting.as_secs_f64()
    );
}
