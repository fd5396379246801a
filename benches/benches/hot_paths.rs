//! Criterion benches of the month-end hot paths: parsing a usage row's fields, accumulating rows,
//! tier math. Run with `cargo bench -p cms-benches`.

use std::hint::black_box;

use cms_core::Decimal;
use cms_core::error::Location;
use cms_core::model::meter::MeterId;
use cms_core::model::money::parse_decimal;
use cms_core::model::tiers::{Tier, TierMode, TierSchedule};
use cms_core::model::time::{Period, parse_timestamp_seconds};
use cms_core::model::usage::UsageRow;
use cms_core::rating::UsageAccumulator;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

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

criterion_group!(benches, parse, accumulate, tiers);
criterion_main!(benches);
