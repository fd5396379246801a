//! Random batches of usage give the same results on `SqliteStore` as on `MemoryStore`, the reference.

mod common;

use chrono::Duration;
use cms_core::Decimal;
use cms_core::model::money::Currency;
use cms_core::model::time::Period;
use cms_core::model::usage::{SourceCost, UsageRecord};
use cms_core::source::{Checkpoint, Granularity};
use cms_core::store::{MemoryStore, Store};
use cms_sqlite::SqliteStore;
use common::{IP, VM, VM_HOURS, at, meter, october, usage_of};
use proptest::prelude::*;

/// Flip the ASCII case of the letters of `text` whose bit is set in `mask`.
fn recase(text: &str, mask: u16) -> String {
    text.chars()
        .enumerate()
        .map(|(index, letter)| {
            if mask >> (index % 16) & 1 == 1 {
                if letter.is_ascii_lowercase() {
                    letter.to_ascii_uppercase()
                } else {
                    letter.to_ascii_lowercase()
                }
            } else {
                letter
            }
        })
        .collect()
}

/// A decimal with a random scale: the same values come in several spellings (`2`, `2.0`, `2.00`).
fn quantity() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        (0i64..4, 0u32..4).prop_map(|(units, scale)| Decimal::new(units * 10i64.pow(scale), scale)),
        (0i64..300, 0u32..4).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale)),
    ]
}

prop_compose! {
    fn usage_record()(
        subscription in prop::sample::select(vec!["sub-a", "sub-b", "Sub-C"]),
        subscription_case in any::<u16>(),
        meter_id in prop::sample::select(vec![VM, IP, VM_HOURS]),
        // Hours around the end of October: the last two fall in November.
        hour in prop::sample::select(vec![0i64, 1, 2, 742, 743, 744, 745]),
        daily in prop::bool::weighted(0.2),
        resource in prop::sample::select(vec!["/subscriptions/x/vm-1", "/subscriptions/x/VM-2", ""]),
        resource_case in any::<u16>(),
        quantity in quantity(),
        cost in prop::option::weighted(0.25, (quantity(), prop::bool::ANY)),
        tagged in prop::bool::weighted(0.2),
    ) -> UsageRecord {
        let start = at(1, 0) + Duration::hours(hour);
        let mut record = UsageRecord {
            subscription: recase(subscription, subscription_case),
            meter: meter(meter_id),
            start,
            end: start + Duration::hours(if daily { 24 } else { 1 }),
            quantity,
            resource_uri: recase(resource, resource_case),
            location: "east".into(),
            ..UsageRecord::default()
        };
        record.cost = cost.map(|(amount, euro)| SourceCost {
            amount,
            currency: if euro { Currency::EUR } else { Currency::USD },
        });
        if tagged {
            record.tags.insert("Department".into(), "Finance".into());
            record.additional_info.insert("ImageType".into(), "Linux".into());
        }
        record
    }
}

prop_compose! {
    fn checkpoint()(
        region in prop::sample::select(vec!["east", "west"]),
        subscriber in prop::option::of(prop::sample::select(vec!["s1", "S1", ""])),
        hours in 0i64..100,
    ) -> Checkpoint {
        Checkpoint {
            region: region.into(),
            subscriber: subscriber.map(Into::into),
            granularity: Granularity::Hourly,
            reported_until: at(1, 0) + Duration::hours(hours),
        }
    }
}

fn batches() -> impl Strategy<Value = Vec<(Vec<UsageRecord>, Option<Checkpoint>)>> {
    prop::collection::vec(
        (prop::collection::vec(usage_record(), 0..16), prop::option::weighted(0.3, checkpoint())),
        1..8,
    )
}

proptest! {
    #[test]
    fn sqlite_store_behaves_as_the_memory_store(batches in batches()) {
        let mut memory = MemoryStore::new();
        let mut sqlite = SqliteStore::open_in_memory().unwrap();
        for (records, checkpoint) in &batches {
            let expected = memory.put_usage(records, checkpoint.as_ref()).unwrap();
            let written = sqlite.put_usage(records, checkpoint.as_ref()).unwrap();
            prop_assert_eq!(&written, &expected);
            // Debug shows decimal scales, which `==` ignores.
            prop_assert_eq!(format!("{written:?}"), format!("{expected:?}"));
        }
        prop_assert_eq!(sqlite.checkpoints().unwrap(), memory.checkpoints().unwrap());

        let november = october().next_month().unwrap();
        let both = Period::new(october().start, november.end).unwrap();
        for period in [october(), november, both] {
            let expected = usage_of(&memory, &period);
            let visited = usage_of(&sqlite, &period);
            // Same records in the same order (folded key order), every field and scale equal.
            prop_assert_eq!(format!("{visited:?}"), format!("{expected:?}"));
            let mut sorted_visited = visited.clone();
            sorted_visited.sort_by_key(|record| format!("{record:?}"));
            let mut sorted_expected = expected;
            sorted_expected.sort_by_key(|record| format!("{record:?}"));
            prop_assert_eq!(sorted_visited, sorted_expected);

            for subscription in ["SUB-A", "sub-b", "sub-c", "sub-z"] {
                let sample = sqlite.sample_interval(subscription, &period).unwrap();
                let reference = memory.sample_interval(subscription, &period).unwrap();
                prop_assert_eq!(sample.is_some(), reference.is_some());
                if let Some(interval) = sample {
                    // Any one qualifying record's interval: check it is one.
                    let qualifies = |record: &UsageRecord| {
                        record.subscription.eq_ignore_ascii_case(subscription)
                            && record.cost.is_none()
                            && (record.start, record.end) == interval
                    };
                    prop_assert!(visited.iter().any(qualifies), "{:?} is no record's interval", interval);
                }
            }
        }
        for (records, _) in &batches {
            for record in records {
                let mut probe = record.key();
                probe.subscription = probe.subscription.to_ascii_uppercase();
                let expected = memory.usage(&probe).unwrap();
                prop_assert_eq!(format!("{:?}", sqlite.usage(&probe).unwrap()), format!("{expected:?}"));
            }
        }
    }
}
