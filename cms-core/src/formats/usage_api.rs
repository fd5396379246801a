//! Azure Stack Hub Usage API response pages (`UsageAggregatePage`): `{"value": [...], "nextLink": ...}`.
//!
//! Each aggregate's `properties` holds `subscriptionId`, `usageStartTime`, `usageEndTime`, `quantity`,
//! `meterId` and `instanceData`, a JSON document *inside a string* with `Microsoft.Resources.resourceUri`,
//! `location`, `tags` and `additionalInfo` (any of them null or absent). Fields public Azure adds
//! (`meterName`, `unit`, `infoFields`, ...) are tolerated and ignored.
//!
//! Both APIs share the shape: the provider API (`Microsoft.Commerce.Admin/subscriberUsageAggregates`, records
//! of type `Microsoft.Commerce.Admin/UsageAggregate`) and the tenant API (`Microsoft.Commerce/UsageAggregates`,
//! type `Microsoft.Commerce/UsageAggregate`); [`UsagePage::api`] tells which one a page came from. The
//! aggregate's `id` and `name` (`{subscription}-{meterId}`) are not unique per hour or resource, so they
//! are not part of the natural key and are not kept.
//!
//! Quantities are read from the JSON number's own text as exact decimals, never through f64. Times with any
//! UTC offset are converted to UTC. A page is accepted or refused whole: the first bad record (truncated
//! JSON, a wrong type, a negative or non-numeric quantity, an end before the start, a missing subscription)
//! refuses the page with an error naming the page and the record index, and nothing of that page is kept.
//! Refusing whole pages keeps retries simple: the source is asked again for the same page.

use std::collections::BTreeMap;

use chrono::DateTime;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{CmsError, Location};
use crate::formats::fast_rows::{FastRows, Prepared, Ready, RowBytes};
use crate::formats::key_index::{Key, KeyIndex};
use crate::formats::page_scan::{RawRecord, scan_page};
use crate::formats::workload::number_text;
use crate::model::meter::MeterId;
use crate::model::money::parse_decimal;
use crate::model::time::Period;
use crate::model::time::parse_timestamp_seconds;
use crate::model::usage::UsageRecord;
use crate::rating::UsageAccumulator;

/// Which Usage API a page came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageApi {
    /// The provider API (`Microsoft.Commerce.Admin`): usage of the caller's direct tenants.
    Provider,
    /// The tenant API (`Microsoft.Commerce`): usage of the caller's own subscription.
    Tenant,
}

/// A parsed page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsagePage {
    /// The records, in page order.
    pub records: Vec<UsageRecord>,
    /// The link to the next page, if any.
    pub next_link: Option<String>,
    /// The API of the records' `type`, when the page has records with a known type.
    pub api: Option<UsageApi>,
}

#[derive(Deserialize)]
struct PageData<'a> {
    #[serde(borrow)]
    value: Vec<&'a RawValue>,
    #[serde(rename = "nextLink", alias = "NextLink", default)]
    next_link: Option<String>,
}

#[derive(Deserialize)]
struct AggregateData<'a> {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(borrow)]
    properties: PropertiesData<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PropertiesData<'a> {
    subscription_id: Option<String>,
    usage_start_time: Option<String>,
    usage_end_time: Option<String>,
    #[serde(borrow)]
    quantity: Option<&'a RawValue>,
    meter_id: Option<String>,
    #[serde(default)]
    instance_data: Option<String>,
}

#[derive(Deserialize, Default)]
struct InstanceData {
    #[serde(rename = "Microsoft.Resources", default)]
    resources: Option<ResourcesData>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ResourcesData {
    #[serde(default)]
    resource_uri: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    additional_info: Option<BTreeMap<String, serde_json::Value>>,
}

/// JSON object values as text: strings as they are, other values as compact JSON, nulls dropped.
fn text_values(object: Option<BTreeMap<String, serde_json::Value>>) -> BTreeMap<String, String> {
    object
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(name, value)| match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(text) => Some((name, text)),
            other => Some((name, other.to_string())),
        })
        .collect()
}

/// The largest page accepted, in bytes. The API returns at most 1,000 records a page (well under 2 MiB);
/// anything far larger is not a Usage API page, and refusing it bounds the memory a hostile input can claim.
pub const MAX_PAGE_BYTES: usize = 64 << 20;

/// The `Microsoft.Resources` part of an `instanceData` text (already taken out of its JSON string).
fn instance_resources(text: Option<&str>) -> Result<ResourcesData, serde_json::Error> {
    match text.map(str::trim) {
        None | Some("" | "null") => Ok(ResourcesData::default()),
        Some(text) => Ok(serde_json::from_str::<InstanceData>(text)?.resources.unwrap_or_default()),
    }
}

/// Parse one page. `source` names it in errors (a file name, or the request URL).
pub fn parse_page(bytes: &[u8], source: &str) -> Result<UsagePage, CmsError> {
    if bytes.len() > MAX_PAGE_BYTES {
        return Err(CmsError::BadJson {
            at: Location::whole(source),
            message: format!("page of {} bytes exceeds the limit of {MAX_PAGE_BYTES} bytes", bytes.len()),
        });
    }
    let page: PageData<'_> = serde_json::from_slice(bytes)
        .map_err(|error| CmsError::BadJson { at: Location::whole(source), message: error.to_string() })?;
    let mut api = None;
    let records = page
        .value
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            let (record, record_api) = parse_record(raw, &Location::record(source, index as u64))?;
            api = api.or(record_api);
            Ok(record)
        })
        .collect::<Result<_, CmsError>>()?;
    Ok(UsagePage { records, next_link: page.next_link, api })
}

fn parse_record(raw: &RawValue, at: &Location) -> Result<(UsageRecord, Option<UsageApi>), CmsError> {
    let data: AggregateData<'_> = serde_json::from_str(raw.get())
        .map_err(|error| CmsError::BadJson { at: at.clone(), message: error.to_string() })?;
    let api = match data.kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("microsoft.commerce.admin/usageaggregate") => Some(UsageApi::Provider),
        Some("microsoft.commerce/usageaggregate") => Some(UsageApi::Tenant),
        _ => None,
    };
    let properties = data.properties;
    let missing = |field: &str| CmsError::BadRecord {
        at: at.clone(),
        reason: format!("properties.{field} is missing"),
    };
    let subscription =
        properties.subscription_id.filter(|id| !id.is_empty()).ok_or_else(|| missing("subscriptionId"))?;
    let meter_text = properties.meter_id.ok_or_else(|| missing("meterId"))?;
    let meter: MeterId =
        meter_text.parse().map_err(|_| CmsError::BadMeterId { at: at.clone(), text: meter_text.clone() })?;
    let instant = |text: Option<String>, field: &str| -> Result<_, CmsError> {
        let text = text.ok_or_else(|| missing(field))?;
        parse_timestamp_seconds(text.as_bytes())
            .and_then(|seconds| DateTime::from_timestamp(seconds, 0))
            .ok_or_else(|| CmsError::BadTimestamp {
                at: at.clone(),
                field: format!("properties.{field}"),
                text,
            })
    };
    let start = instant(properties.usage_start_time, "usageStartTime")?;
    let end = instant(properties.usage_end_time, "usageEndTime")?;
    if end <= start {
        return Err(CmsError::BadInterval {
            at: at.clone(),
            start: start.to_rfc3339(),
            end: end.to_rfc3339(),
        });
    }
    let quantity_raw = properties.quantity.ok_or_else(|| missing("quantity"))?;
    let quantity_text = quantity_raw.get().trim();
    // A quantity must be a JSON number; a string holding a number is not what the API sends.
    let quantity = (!quantity_text.starts_with('"'))
        .then(|| parse_decimal(number_text(quantity_raw)))
        .flatten()
        .ok_or_else(|| CmsError::BadDecimal {
            at: at.clone(),
            field: "properties.quantity".into(),
            text: quantity_text.to_owned(),
        })?;
    if quantity.is_sign_negative() && !quantity.is_zero() {
        return Err(CmsError::NegativeQuantity {
            at: at.clone(),
            meter: meter.canonical(),
            quantity: quantity.to_string(),
        });
    }
    let resources = instance_resources(properties.instance_data.as_deref()).map_err(|error| {
        CmsError::BadJson { at: at.clone(), message: format!("properties.instanceData: {error}") }
    })?;
    let record = UsageRecord {
        subscription,
        meter,
        start,
        end,
        quantity,
        resource_uri: resources.resource_uri.unwrap_or_default(),
        location: resources.location.unwrap_or_default(),
        tags: text_values(resources.tags),
        additional_info: text_values(resources.additional_info),
        cost: None,
        adjustments: Vec::new(),
    };
    Ok((record, api))
}

/// The fast month-end reader of Usage API pages (see `formats::fast_rows`). Each page is read by the strict
/// scanner of [`crate::formats::page_scan`], and every record is checked before any is stored, as pages are
/// accepted or refused whole; a page outside the common shape (escapes in ids or times, a quantity that is
/// not a plain decimal, an unknown subscription, a bad record) goes through [`parse_page`] and the simple
/// path instead, which accept it the same way or name the page and record in the error.
///
/// The series of a record is found by one lookup of its raw bytes: subscription, meter and the `instanceData`
/// text as it stands in the page (resource and region are inside it). Only a record whose bytes were not seen
/// before has its `instanceData` parsed and its spelling looked up the long way.
pub struct FastPageParser<'a> {
    rows: FastRows<'a>,
    series_of: KeyIndex,
    hashes: Vec<u64>,
}

impl<'a> FastPageParser<'a> {
    /// A reader for `period`; `known` tells whether a subscription is in the channel.
    pub fn new(period: Period, known: &'a (dyn Fn(&str) -> bool + Sync)) -> Self {
        Self { rows: FastRows::new(period, known), series_of: KeyIndex::default(), hashes: Vec::new() }
    }

    /// The accumulator, every row applied, to merge or finish.
    pub fn into_accumulator(self) -> UsageAccumulator {
        self.rows.into_accumulator()
    }

    /// Read one page, `name` naming it in errors.
    pub fn feed_page(&mut self, bytes: &[u8], name: &str) -> Result<(), CmsError> {
        if bytes.len() <= MAX_PAGE_BYTES
            && let Ok(text) = std::str::from_utf8(bytes)
            && let Some(page) = scan_page(text)
            && let Some(ready) = self.prepare_page(&page, name)
        {
            for (index, row) in ready.into_iter().enumerate() {
                self.rows.store(row, || Location::record(name, index as u64))?;
            }
            return Ok(());
        }
        let page = parse_page(bytes, name)?;
        for (index, record) in page.records.iter().enumerate() {
            let at = || Location::record(name, index as u64);
            if !self.rows.known(&record.subscription) {
                return Err(CmsError::UnknownSubscription {
                    at: at(),
                    subscription: record.subscription.clone(),
                });
            }
            self.rows.accumulator().ingest(&record.as_row(), at)?;
        }
        Ok(())
    }

    /// Every record of a page checked, or `None` when the page needs the simple path.
    fn prepare_page<'p>(&mut self, page: &[RawRecord<'p>], name: &str) -> Option<Vec<Ready>> {
        let key = |record: &RawRecord<'p>| -> Key<'p> {
            [
                record.subscription.as_bytes(),
                record.meter.as_bytes(),
                record.instance_data.unwrap_or("null").as_bytes(),
            ]
        };
        // Hash every record's key, then bring the keys into the caches together (see `formats::key_index`).
        self.hashes.clear();
        self.hashes.extend(page.iter().map(|record| self.series_of.hash(key(record))));
        self.series_of.touch_all(self.hashes.iter().copied());
        let mut ready = Vec::with_capacity(page.len());
        for (index, record) in page.iter().enumerate() {
            let (hash, key) = (self.hashes[index], key(record));
            let (start, end, quantity) =
                (record.start.as_bytes(), record.end.as_bytes(), record.quantity.as_bytes());
            if let Some(series) = self.series_of.get(hash, key) {
                ready.push(self.rows.prepare_known(series, start, end, quantity)?);
                continue;
            }
            let text: Option<String> = serde_json::from_str(record.instance_data.unwrap_or("null")).ok()?;
            let resources = instance_resources(text.as_deref()).ok()?;
            let (resource, location) =
                (resources.resource_uri.unwrap_or_default(), resources.location.unwrap_or_default());
            let row = RowBytes {
                subscription: key[0],
                meter: key[1],
                start,
                end,
                quantity,
                resource: resource.as_bytes(),
                location: location.as_bytes(),
            };
            match self.rows.prepare(&row, false, || Location::record(name, index as u64)) {
                Ok(Prepared::Ready(row)) => {
                    // A new spelling gets its series when the page is stored; its key is remembered on a
                    // later page.
                    if let Some(series) = row.series() {
                        self.series_of.insert(hash, key, series);
                    }
                    ready.push(row);
                }
                // Anything else (an unknown subscription included: the simple path reports a bad record of the
                // page first) goes the simple way.
                _ => return None,
            }
        }
        Some(ready)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SAMPLE: &str = include_str!("../../../tests/data/azure-stack-hub-sample-usage.json");

    #[test]
    fn sample_page_parses_exactly() {
        let page = parse_page(SAMPLE.as_bytes(), "sample.json").unwrap();
        assert_eq!(page.records.len(), 20);
        assert!(page.next_link.as_deref().unwrap().contains("continuationToken"));
        let first = &page.records[0];
        assert_eq!(first.meter.canonical(), "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5");
        assert_eq!(first.quantity.to_string(), "2.0");
        assert_eq!(first.tags.get("costCenter").map(String::as_str), Some("CC-1001"));
        assert_eq!(first.additional_info.get("ServiceType").map(String::as_str), Some("Standard_D2_v2"));
        assert!(!first.additional_info.contains_key("ImageType"), "nulls are dropped");
        assert_eq!(page.api, Some(UsageApi::Provider));
        assert!(first.resource_uri.ends_with("/virtualMachines/vm-web01"));
        let storage = page.records.iter().find(|record| record.quantity.to_string() == "48.2173").unwrap();
        assert!(storage.tags.is_empty());
    }

    fn page_with(properties: &str) -> String {
        format!(
            r#"{{"value":[{{"id":"x","properties":{{"subscriptionId":"s","usageStartTime":"2025-03-10T13:00:00+00:00","usageEndTime":"2025-03-10T14:00:00+00:00","meterId":"F271A8A388C44D93956A063E1D2FA80B","quantity":1.0,"instanceData":null}}}},{{"id":"y","properties":{properties}}}]}}"#
        )
    }

    #[test]
    fn bad_records_name_page_and_index() {
        let cases = [
            (
                r#"{"subscriptionId":"s","usageStartTime":"2025-03-10T13:00:00Z","usageEndTime":"2025-03-10T14:00:00Z","meterId":"F271A8A388C44D93956A063E1D2FA80B","quantity":-1}"#,
                "negative_quantity",
            ),
            (
                r#"{"subscriptionId":"s","usageStartTime":"2025-03-10T13:00:00Z","usageEndTime":"2025-03-10T14:00:00Z","meterId":"F271A8A388C44D93956A063E1D2FA80B","quantity":"1"}"#,
                "bad_decimal",
            ),
            (
                r#"{"subscriptionId":"s","usageStartTime":"2025-03-10T15:00:00Z","usageEndTime":"2025-03-10T14:00:00Z","meterId":"F271A8A388C44D93956A063E1D2FA80B","quantity":1}"#,
                "bad_interval",
            ),
            (
                r#"{"usageStartTime":"2025-03-10T13:00:00Z","usageEndTime":"2025-03-10T14:00:00Z","meterId":"F271A8A388C44D93956A063E1D2FA80B","quantity":1}"#,
                "bad_record",
            ),
            (
                r#"{"subscriptionId":"s","usageStartTime":"noon","usageEndTime":"2025-03-10T14:00:00Z","meterId":"F271A8A388C44D93956A063E1D2FA80B","quantity":1}"#,
                "bad_timestamp",
            ),
            (
                r#"{"subscriptionId":"s","usageStartTime":"2025-03-10T13:00:00Z","usageEndTime":"2025-03-10T14:00:00Z","meterId":"meter1","quantity":1}"#,
                "bad_meter_id",
            ),
            (
                r#"{"subscriptionId":"s","usageStartTime":"2025-03-10T13:00:00Z","usageEndTime":"2025-03-10T14:00:00Z","meterId":"F271A8A388C44D93956A063E1D2FA80B","quantity":1,"instanceData":"{oops"}"#,
                "bad_json",
            ),
        ];
        for (properties, code) in cases {
            let error = parse_page(page_with(properties).as_bytes(), "page-7.json").unwrap_err();
            assert_eq!(error.code(), code, "{properties}");
            assert!(error.to_string().starts_with("page-7.json record 1"), "{error}");
        }
        assert_eq!(parse_page(b"{\"value\":[", "p").unwrap_err().code(), "bad_json");
    }

    #[test]
    fn exact_quantities_and_offsets() {
        let properties = r#"{"subscriptionId":"s","usageStartTime":"2025-03-10T05:00:00-08:00","usageEndTime":"2025-03-10T06:00:00-08:00","meterId":"f271a8a3-88c4-4d93-956a-063e1d2fa80b","quantity":0.1000000000000000055511151231,"meterName":"extra","infoFields":{}}"#;
        let page = parse_page(page_with(properties).as_bytes(), "p").unwrap();
        let record = &page.records[1];
        assert_eq!(record.quantity.to_string(), "0.1000000000000000055511151231");
        assert_eq!(record.start.to_rfc3339(), "2025-03-10T13:00:00+00:00");
        assert_eq!(record.resource_uri, "");
    }

    /// A tenant API page (`Microsoft.Commerce/UsageAggregates`): the tenant's own subscription and resources.
    const TENANT_PAGE: &str = r#"{"value":[{"id":"/subscriptions/8a3f7c21-4d6e-4b9a-8f12-5c7d9e0b3a64/providers/Microsoft.Commerce/UsageAggregates/8a3f7c21-4d6e-4b9a-8f12-5c7d9e0b3a64-FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5","name":"8a3f7c21-4d6e-4b9a-8f12-5c7d9e0b3a64-FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5","type":"Microsoft.Commerce/UsageAggregate","properties":{"subscriptionId":"8a3f7c21-4d6e-4b9a-8f12-5c7d9e0b3a64","usageStartTime":"2025-03-10T13:00:00+00:00","usageEndTime":"2025-03-10T14:00:00+00:00","instanceData":"{\"Microsoft.Resources\":{\"resourceUri\":\"/subscriptions/8a3f7c21-4d6e-4b9a-8f12-5c7d9e0b3a64/resourceGroups/rg-shop/providers/Microsoft.Compute/virtualMachines/vm-shop01\",\"location\":\"local\",\"tags\":{\"owner\":\"shop\"},\"additionalInfo\":{\"ServiceType\":\"Standard_A2\",\"ImageType\":null}}}","quantity":2,"meterId":"FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5"}}],"nextLink":"https://management.local.azurestack.external/subscriptions/8a3f7c21-4d6e-4b9a-8f12-5c7d9e0b3a64/providers/Microsoft.Commerce/UsageAggregates?api-version=2015-06-01-preview&continuationToken=tenant-page-2"}"#;

    #[test]
    fn tenant_api_pages_parse_and_are_told_apart() {
        let page = parse_page(TENANT_PAGE.as_bytes(), "tenant.json").unwrap();
        assert_eq!(page.api, Some(UsageApi::Tenant));
        assert_eq!(page.records.len(), 1);
        let record = &page.records[0];
        assert_eq!(record.subscription, "8a3f7c21-4d6e-4b9a-8f12-5c7d9e0b3a64");
        assert_eq!(record.meter.canonical(), "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5");
        assert_eq!(record.start.to_rfc3339(), "2025-03-10T13:00:00+00:00");
        assert_eq!(record.end.to_rfc3339(), "2025-03-10T14:00:00+00:00");
        assert_eq!(record.quantity.to_string(), "2");
        assert_eq!(
            record.resource_uri,
            "/subscriptions/8a3f7c21-4d6e-4b9a-8f12-5c7d9e0b3a64/resourceGroups/rg-shop/providers/Microsoft.Compute/virtualMachines/vm-shop01"
        );
        assert_eq!(record.location, "local");
        assert_eq!(record.tags.get("owner").map(String::as_str), Some("shop"));
        assert_eq!(
            record.additional_info.iter().collect::<Vec<_>>(),
            [(&"ServiceType".to_owned(), &"Standard_A2".to_owned())],
            "nulls dropped"
        );
        assert!(
            page.next_link.as_deref().unwrap().contains("/providers/Microsoft.Commerce/UsageAggregates?")
        );

        // The type decides, in any case; a page without a known type says nothing.
        let shouted =
            TENANT_PAGE.replace("Microsoft.Commerce/UsageAggregate\"", "MICROSOFT.COMMERCE/USAGEAGGREGATE\"");
        assert_eq!(parse_page(shouted.as_bytes(), "t").unwrap().api, Some(UsageApi::Tenant));
        let provider =
            TENANT_PAGE.replace("\"type\":\"Microsoft.Commerce/", "\"type\":\"Microsoft.Commerce.Admin/");
        assert_eq!(parse_page(provider.as_bytes(), "p").unwrap().api, Some(UsageApi::Provider));
        let untyped = TENANT_PAGE.replace("\"type\":\"Microsoft.Commerce/UsageAggregate\",", "");
        let page = parse_page(untyped.as_bytes(), "u").unwrap();
        assert_eq!((page.api, page.records.len()), (None, 1));
        assert_eq!(parse_page(br#"{"value":[]}"#, "e").unwrap().api, None);
    }

    proptest! {
        /// Arbitrary bytes never panic the parser.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_page(&bytes, "fuzz.json");
        }

        /// Mutations of a real page (a byte replaced, a slice cut out or duplicated) never panic, and a page
        /// that still parses keeps only well-formed records.
        #[test]
        fn mutated_pages_never_panic(position in 0usize..19_000, byte: u8, cut in 0usize..400, duplicate: bool) {
            let mut bytes = SAMPLE.as_bytes().to_vec();
            let position = position.min(bytes.len() - 1);
            bytes[position] = byte;
            let end = (position + cut).min(bytes.len());
            if duplicate {
                let slice = bytes[position..end].to_vec();
                bytes.splice(position..position, slice);
            } else {
                bytes.drain(position..end);
            }
            if let Ok(page) = parse_page(&bytes, "mutated.json") {
                for record in page.records {
                    prop_assert!(record.end > record.start);
                    prop_assert!(!record.quantity.is_sign_negative() || record.quantity.is_zero());
                    prop_assert!(!record.subscription.is_empty());
                }
            }
        }
    }

    #[test]
    fn oversized_pages_are_refused_before_parsing() {
        let huge = vec![b' '; MAX_PAGE_BYTES + 1];
        let error = parse_page(&huge, "huge.json").unwrap_err();
        assert_eq!(error.code(), "bad_json");
        assert!(error.to_string().contains("exceeds the limit"));
    }
}
