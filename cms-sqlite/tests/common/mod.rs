//! Builders shared by the integration tests.
// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;

use chrono::{Duration, TimeZone, Utc};
use cms_core::Decimal;
use cms_core::model::meter::MeterId;
use cms_core::model::money::{Currency, parse_decimal};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::{Adjustment, SourceCost, UsageRecord};
use cms_core::store::Store;

/// A virtual machine core-hours meter.
pub const VM: &str = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5";
/// A static IP address meter.
pub const IP: &str = "F271A8A388C44D93956A063E1D2FA80B";
/// A virtual machine size-hours meter (double counts the VM meter).
pub const VM_HOURS: &str = "6DAB500F-A4FD-49C4-956D-229BB9C8C793";

/// A decimal of its text.
pub fn dec(text: &str) -> Decimal {
    parse_decimal(text).unwrap()
}

/// A meter id of its text.
pub fn meter(text: &str) -> MeterId {
    text.parse().unwrap()
}

/// An hour of October 2026.
pub fn at(day: u32, hour: u32) -> Instant {
    Utc.with_ymd_and_hms(2026, 10, day, hour, 0, 0).unwrap()
}

/// October 2026.
pub fn october() -> Period {
    Period::month(2026, 10).unwrap()
}

/// A plain usage record of `hours` hours.
pub fn record(subscription: &str, meter_id: &str, start: Instant, hours: i64, quantity: &str) -> UsageRecord {
    UsageRecord {
        subscription: subscription.into(),
        meter: meter(meter_id),
        start,
        end: start + Duration::hours(hours),
        quantity: dec(quantity),
        resource_uri: format!("/subscriptions/{subscription}/resourceGroups/rg/providers/x/vm"),
        location: "east".into(),
        ..UsageRecord::default()
    }
}

/// A record with every field set: tags, additional info, a source cost and adjustments.
pub fn full_record() -> UsageRecord {
    let mut full = record("Sub-Full", VM, at(2, 3), 1, "1.50");
    full.tags = BTreeMap::from([("Department".into(), "R&D".into()), ("ünïcode".into(), "ja ✓".into())]);
    full.additional_info =
        BTreeMap::from([("ImageType".into(), "Windows Server".into()), ("ServiceType".into(), "D2".into())]);
    let mut currency = Currency::from_code("BHD").unwrap();
    currency.minor_unit = 4;
    full.cost = Some(SourceCost { amount: dec("12.3400"), currency });
    full.adjustments = vec![
        Adjustment {
            billed_in: Period::month(2026, 11).unwrap(),
            delta: dec("0.50"),
            new_record: true,
            cost_delta: Some(dec("2.000")),
        },
        Adjustment {
            billed_in: Period::month(2026, 12).unwrap(),
            delta: dec("-0.25"),
            new_record: false,
            cost_delta: None,
        },
    ];
    full
}

/// Every record of `period`, in visiting order.
pub fn usage_of(store: &dyn Store, period: &Period) -> Vec<UsageRecord> {
    let mut records = Vec::new();
    store
        .for_each_usage(period, &mut |record| {
            records.push(record.clone());
            Ok(())
        })
        .unwrap();
    records
}
