//! Criterion benches of the month-end hot paths: parsing a usage row's fields, the fast paths over
//! `usage.csv` lines and Usage API pages (split, look up the series, dedupe, accumulate), a second pass of the
//! same rows (all duplicates), finalising an accumulator, tier math. Run with `cargo bench -p cms-benches`.
//! The month-end as a whole, against DuckDB and Polars, is `benches/month_end_vs_peers.sh`.

use std::hint::black_box;

use cms_benches::Month;
use cms_core::Decimal;
use cms_core::error::Location;
use cms_core::formats::usage_api::FastPageParser;
use cms_core::formats::usage_csv::{FastUsageParser, UsageLayout};
use cms_core::model::meter::MeterId;
use cms_core::model::money::parse_decimal;
use cms_core::model::tiers::{Tier, TierMode, TierSchedule};
use cms_core::model::time::{Period, parse_timestamp_seconds};
use cms_core::model::usage::UsageRow;
use cms_core::rating::UsageAccumulator;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const HEADER: &[u8] =
    b"subscription_id,meter_id,usage_start_time,usage_end_time,quantity,resource_uri,location";

fn october() -> Period {
    Period::month(2026, 10).unwrap_or_else(|_| unreachable!())
}

fn anyone(_: &str) -> bool {
    true
}

/// 2,000 series over a week (336,000 rows in random order): keys about 0.5 MB, more than the first-level
/// caches hold, as on a real month.
fn fast_paths(c: &mut Criterion) {
    let month = Month::new(2_000, 168);
    let csv = month.csv_lines();
    let pages = month.pages(1_000);
    let layout = UsageLayout::from_header(HEADER, "bench").unwrap_or_else(|_| unreachable!());
    let csv_accumulator = || {
        let mut parser = FastUsageParser::new(layout, october(), "bench", &anyone);
        let _ = parser.feed_unquoted(black_box(&csv), 2);
        parser.into_accumulator()
    };
    // What is timed must be the real work: both paths take every row, and agree.
    let mut parser = FastUsageParser::new(layout, october(), "bench", &anyone);
    assert_eq!(parser.feed_unquoted(&csv, 2).ok(), Some(month.rows.len() as u64), "the bench's CSV parses");
    let from_csv = parser.into_accumulator().finish();
    let mut parser = FastPageParser::new(october(), &anyone);
    assert!(pages.iter().all(|page| parser.feed_page(page, "page").is_ok()), "the bench's pages parse");
    let from_pages = parser.into_accumulator().finish();
    assert_eq!(from_csv.stats.accepted, month.rows.len() as u64);
    assert_eq!(from_csv, from_pages);
    let mut group = c.benchmark_group("fast path");
    group.sample_size(10);
    group.throughput(Throughput::Elements(month.rows.len() as u64));
    group.bench_function("usage.csv lines: split, find the series, accumulate", |b| b.iter(csv_accumulator));
    group.throughput(Throughput::Elements(2 * month.rows.len() as u64));
    group.bench_function("usage.csv lines, twice: the second pass all duplicates", |b| {
        b.iter(|| {
            let mut parser = FastUsageParser::new(layout, october(), "bench", &anyone);
            let _ = parser.feed_unquoted(black_box(&csv), 2);
            let _ = parser.feed_unquoted(black_box(&csv), 2);
            parser.into_accumulator()
        });
    });
    group.throughput(Throughput::Elements(month.rows.len() as u64));
    group.bench_function("Usage API pages: scan, find the series, accumulate", |b| {
        b.iter(|| {
            let mut parser = FastPageParser::new(october(), &anyone);
            for page in &pages {
                let _ = parser.feed_page(black_box(page), "page");
            }
            parser.into_accumulator()
        });
    });
    let accumulator = csv_accumulator();
    group.bench_function("finalise: quantities per series and meter", |b| {
        b.iter_batched(|| accumulator.clone(), UsageAccumulator::finish, BatchSize::LargeInput);
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.bench_function("meter id (32 hex)", |b| {
        b.iter(|| MeterId::parse_bytes(black_box(b"F271A8A388C44D93956A063E1D2FA80B")));
    });
    group.bench_function("meter id (dashed)", |b| {
        b.iter(|| MeterId::parse_bytes(black_box(b"09f8879e-87e9-4305-a572-4b7be209f857")));
    });
    group.bench_function("timestamp", |b| {
        b.iter(|| parse_timestamp_seconds(black_box(b"2026-10-03T17:00:00+00:00")));
    });
    group.bench_function("quantity", |b| b.iter(|| parse_decimal(black_box("261.896630"))));
    group.finish();
}

fn accumulate(c: &mut Criterion) {
    let period = Period::month(2026, 10).unwrap_or_else(|_| unreachable!());
    let subscriptions: Vec<String> =
        (0..100).map(|i| format!("8b4ae5f1-a941-46a0-956a-26afbcd{i:05}")).collect();
    let uris: Vec<String> = subscriptions
        .iter()
        .map(|s| {
            format!("/subscriptions/{s}/resourceGroups/rg0/providers/Microsoft.Compute/virtualMachines/vm-0")
        })
        .collect();
    let meter = MeterId::from_u128(0xFAB6_EB84_500B_4A09_A8CA_7358_F8BB_AEA5);
    let rows: Vec<UsageRow<'_>> = (0..74_400)
        .map(|i: i64| {
            let index = usize::try_from(i % 100).unwrap_or(0);
            let start = period.start_seconds() + (i / 100) * 3600;
            UsageRow {
                subscription: &subscriptions[index],
                meter,
                start,
                end: start + 3600,
                quantity: Decimal::new(2_500_000 + i, 6),
                resource_uri: &uris[index],
                location: "local",
            }
        })
        .collect();
    let mut group = c.benchmark_group("accumulate");
    group.throughput(Throughput::Elements(rows.len() as u64));
    group.bench_function("ingest a month of 100 series", |b| {
        b.iter(|| {
            let mut accumulator = UsageAccumulator::new(period);
            for row in &rows {
                let _ = accumulator.ingest(row, || Location::whole("bench"));
            }
            accumulator.finish()
        });
    });
    group.finish();
}

fn tiers(c: &mut Criterion) {
    let tier = |from: i64, rate: i64| Tier { from: Decimal::from(from), rate: Decimal::new(rate, 4) };
    let schedule =
        TierSchedule::new(TierMode::Graduated, vec![tier(0, 80), tier(5000, 72), tier(20000, 65)], "bench")
            .unwrap_or_else(|_| unreachable!());
    let quantity = Decimal::new(21_000_123_456, 6);
    c.bench_function("tiers/graduated amount", |b| {
        b.iter(|| schedule.amount(black_box(quantity)));
    });
}

criterion_group!(benches, parse, fast_paths, accumulate, tiers);
criterion_main!(benches);
