//! Shared helpers for the benches: a month of usage in the shapes the month-end reads (`usage.csv` lines and
//! Usage API pages), made in memory, deterministic, rows in a shuffled order like the generated months of
//! `../shared/bench/gen_month.py`.

use std::fmt::Write;

/// A month of hourly usage: `series` series (subscription, meter, resource), every hour of October 2026,
/// in a fixed pseudo-random order.
#[derive(Debug, Clone)]
pub struct Month {
    /// The rows: (series index, hour of the month, quantity text).
    pub rows: Vec<(usize, u32, String)>,
    /// Subscription id of each series.
    pub subscriptions: Vec<String>,
    /// Meter id of each series.
    pub meters: Vec<&'static str>,
    /// Resource id of each series.
    pub resources: Vec<String>,
}

const METERS: [&str; 4] = [
    "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5",
    "9CD92D4C-BAFD-4492-B278-BEDC2DE8232A",
    "CBCFEF9A-B91F-4597-A4D3-01FE334BED82",
    "B4438D5D-453B-4EE1-B42A-DC72E377F1E4",
];

/// A small linear congruential generator: the benches need the same rows every run, not good randomness.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

impl Month {
    /// `series` series over `hours` hours of the month (at most 744), rows shuffled.
    pub fn new(series: usize, hours: u32) -> Self {
        let subscriptions: Vec<String> =
            (0..series).map(|index| format!("8b4ae5f1-a941-46a0-956a-{:012x}", index / 8)).collect();
        let meters: Vec<&'static str> = (0..series).map(|index| METERS[index % METERS.len()]).collect();
        let resources = subscriptions
            .iter()
            .enumerate()
            .map(|(index, subscription)| {
                format!(
                    "/subscriptions/{subscription}/resourceGroups/rg{}/providers/Microsoft.Compute/virtualMachines/vm-{index}",
                    index % 3
                )
            })
            .collect();
        let mut state = 42;
        let mut rows: Vec<(usize, u32, String)> = (0..series)
            .flat_map(|index| (0..hours).map(move |hour| (index, hour)))
            .map(|(index, hour)| {
                let micros = next(&mut state) % 100_000_000;
                (index, hour, format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000))
            })
            .collect();
        for index in (1..rows.len()).rev() {
            let other = usize::try_from(next(&mut state)).unwrap_or(0) % (index + 1);
            rows.swap(index, other);
        }
        Self { rows, subscriptions, meters, resources }
    }

    fn time(hour: u32) -> String {
        format!("2026-10-{:02}T{:02}:00:00+00:00", hour / 24 + 1, hour % 24)
    }

    /// The rows as `usage.csv` lines (no header), newline-terminated.
    pub fn csv_lines(&self) -> Vec<u8> {
        let mut text = String::new();
        for (series, hour, quantity) in &self.rows {
            let _ = writeln!(
                text,
                "{},{},{},{},{quantity},{},local",
                self.subscriptions[*series],
                self.meters[*series],
                Self::time(*hour),
                Self::time(hour + 1),
                self.resources[*series],
            );
        }
        text.into_bytes()
    }

    /// The rows as Usage API pages of `per_page` records, in the provider API's shape.
    pub fn pages(&self, per_page: usize) -> Vec<Vec<u8>> {
        self.rows
            .chunks(per_page)
            .map(|chunk| {
                let records: Vec<String> = chunk
                    .iter()
                    .map(|(series, hour, quantity)| {
                        let (subscription, meter) = (&self.subscriptions[*series], self.meters[*series]);
                        format!(
                            concat!(
                                r#"{{"id":"/subscriptions/{s}/providers/Microsoft.Commerce/UsageAggregate/{s}-{m}","#,
                                r#""name":"{s}-{m}","type":"Microsoft.Commerce/UsageAggregate","properties":{{"#,
                                r#""subscriptionId":"{s}","usageStartTime":"{start}","usageEndTime":"{end}","#,
                                r#""instanceData":"{{\"Microsoft.Resources\":{{\"resourceUri\":\"{r}\",\"location\":\"local\",\"tags\":null,\"additionalInfo\":null}}}}","#,
                                r#""quantity":{q},"meterId":"{m}"}}}}"#
                            ),
                            s = subscription,
                            m = meter,
                            start = Self::time(*hour),
                            end = Self::time(hour + 1),
                            r = self.resources[*series],
                            q = quantity,
                        )
                    })
                    .collect();
                format!(r#"{{"value":[{}],"nextLink":null}}"#, records.join(",")).into_bytes()
            })
            .collect()
    }
}
