//! FOCUS 1.2 in Parquet (feature `parquet`): every fixture of tests/data/focus/ (written from the CSV
//! fixtures by `scripts/focus_parquet_fixtures.py`) reads into exactly the charges, summary, usage records,
//! ingestion summary and invoices of its CSV file; bad values name the file, row and column with the CSV
//! reader's codes; truncated, bit-flipped and foreign files are typed errors, never panics.
#![cfg(feature = "parquet")]

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use cms_core::Decimal;
use cms_core::billing::{BillingRules, LineKind, MonthEndReport};
use cms_core::engine::{Cms, Event, IngestSummary};
use cms_core::error::{CmsError, Location};
use cms_core::formats::focus::{
    FocusCharge, FocusReadSummary, JsonScalar, MANDATORY_COLUMNS, read_focus_csv,
};
use cms_core::formats::focus_parquet::{is_parquet, read_focus_parquet, read_focus_parquet_file};
use cms_core::formats::focus_usage::charge_to_usage;
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::money::{Currency, parse_decimal};
use cms_core::model::pricing::PriceList;
use cms_core::model::time::Period;
use cms_core::model::usage::UsageRecord;
use cms_core::source::PageOrigin;
use cms_core::store::MemoryStore;
use parquet::data_type::{
    ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType, Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use proptest::prelude::*;

/// Each Parquet fixture and the CSV fixture it was written from.
const FIXTURES: [(&str, &str); 6] = [
    ("azure-focus.parquet", "azure-focus.csv"),
    ("azure-focus.double-ns-local.zstd.parquet", "azure-focus.csv"),
    ("aws-focus.parquet", "aws-focus.csv"),
    ("aws-focus.decimal-us-local.snappy.parquet", "aws-focus.csv"),
    ("gcp-focus.parquet", "gcp-focus.csv"),
    ("gcp-focus.decimal-ms-local.gzip.parquet", "gcp-focus.csv"),
];

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/focus").join(name)
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap()
}

type Rows = Vec<(FocusCharge, Location)>;

fn csv_rows(name: &str) -> (Rows, FocusReadSummary) {
    let mut rows = Vec::new();
    let summary = read_focus_csv(bytes(name).as_slice(), name, |charge, at| {
        rows.push((charge.clone(), at.clone()));
        Ok(())
    })
    .unwrap();
    (rows, summary)
}

fn parquet_bytes_rows(bytes: Vec<u8>, name: &str) -> Result<(Rows, FocusReadSummary), CmsError> {
    let mut rows = Vec::new();
    let summary = read_focus_parquet(bytes, name, |charge, at| {
        rows.push((charge.clone(), at.clone()));
        Ok(())
    })?;
    Ok((rows, summary))
}

fn parquet_rows(name: &str) -> (Rows, FocusReadSummary) {
    let mut rows = Vec::new();
    let summary = read_focus_parquet_file(File::open(data(name)).unwrap(), name, |charge, at| {
        rows.push((charge.clone(), at.clone()));
        Ok(())
    })
    .unwrap_or_else(|error| panic!("{name} should read: {error}"));
    (rows, summary)
}

fn charges(rows: &Rows) -> Vec<FocusCharge> {
    rows.iter().map(|(charge, _)| charge.clone()).collect()
}

fn dec(text: &str) -> Decimal {
    parse_decimal(text).unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

#[test]
fn every_parquet_fixture_reads_as_its_csv() {
    for (parquet, csv) in FIXTURES {
        let (expected, expected_summary) = csv_rows(csv);
        let (rows, summary) = parquet_rows(parquet);
        assert_eq!(charges(&rows), charges(&expected), "{parquet} against {csv}");
        assert_eq!(summary, expected_summary, "{parquet} summary");
        let locations: Vec<String> = rows.iter().map(|(_, at)| at.to_string()).collect();
        let indexes: Vec<String> = (0..rows.len()).map(|index| format!("{parquet} record {index}")).collect();
        assert_eq!(locations, indexes, "rows are located by their 0-based index");
        let (in_memory, memory_summary) = parquet_bytes_rows(bytes(parquet), parquet).unwrap();
        assert_eq!((charges(&in_memory), memory_summary), (charges(&rows), summary), "{parquet} in memory");
    }
}

#[test]
fn golden_values_of_the_typed_columns() {
    let billed = |name: &str| -> Vec<String> {
        charges(&parquet_rows(name).0).iter().map(|charge| charge.billed_cost.to_string()).collect()
    };
    // DECIMAL(38, 10) keeps the scale of the column; DOUBLE gives the shortest text of the float.
    assert_eq!(
        billed("azure-focus.parquet"),
        ["4.6080000000", "1250.0000000000", "0.0000000000", "-25.0000000000"]
    );
    assert_eq!(billed("azure-focus.double-ns-local.zstd.parquet"), ["4.608", "1250", "0", "-25"]);
    assert_eq!(billed("aws-focus.parquet"), ["0.0416", "74.4", "14.52", "-10", "-0.0832"]);
    assert_eq!(billed("gcp-focus.parquet"), ["0.0123456", "0.00000015", "-0.002469"]);
    for name in ["aws-focus.parquet", "aws-focus.decimal-us-local.snappy.parquet"] {
        let total: Decimal = charges(&parquet_rows(name).0).iter().map(|charge| charge.billed_cost).sum();
        assert_eq!(total, dec("78.8784"), "{name}: 0.0416 + 74.40 + 14.52 - 10.00 - 0.0832");
    }

    let (gcp, _) = parquet_rows("gcp-focus.parquet");
    let storage = &gcp[1].0;
    assert_eq!(storage.pricing_quantity, Some(dec("0.000005787037037037037")), "a DOUBLE, exactly");
    assert_eq!(storage.consumed_quantity, Some(dec("0.020833333333333334")), "a DECIMAL(38, 18)");
    assert_eq!(storage.charge_period_start, at("2025-05-03T10:00:00Z"));
    assert_eq!(
        gcp[2].0.extensions.get("x_Credits").map(String::as_str),
        Some(r#"[{"name":"Sustained usage discount","amount":-0.002469}]"#),
        "a list of structs reads as the JSON text of the CSV export"
    );
    assert_eq!(gcp[0].0.extensions.get("x_Credits").map(String::as_str), Some("[]"));
    assert_eq!(gcp[0].0.tags.get("tier"), Some(&JsonScalar::Number("2".into())));

    let (aws, _) = parquet_rows("aws-focus.parquet");
    let usage = &aws[0].0;
    assert_eq!(usage.charge_period_start, at("2025-05-03T10:00:00Z"), "milliseconds, not adjusted to UTC");
    assert_eq!(usage.billing_period_end, at("2025-06-01T00:00:00Z"));
    assert_eq!(
        usage.tags,
        BTreeMap::from([
            ("aws:createdBy".to_owned(), JsonScalar::String("IAMUser:AIDAEXAMPLE:alice".into())),
            ("user:Tenant".to_owned(), JsonScalar::String("tenant-c".into())),
        ]),
        "a MAP<STRING, STRING> column"
    );
    assert_eq!(usage.extensions.get("x_CostCategories").map(String::as_str), Some(r#"{"team":"platform"}"#));
    assert!(!usage.extensions.contains_key("x_Discounts"), "a null map is a null cell");
    assert_eq!(aws[1].0.availability_zone, None, "nulls in optional columns");
    assert_eq!(aws[1].0.consumed_quantity, None);

    let (azure, _) = parquet_rows("azure-focus.double-ns-local.zstd.parquet");
    assert_eq!(azure[1].0.charge_period_start, at("2025-05-10T00:00:00Z"), "nanoseconds, not adjusted");
    assert_eq!(azure[1].0.commitment_discount_quantity, Some(dec("8760")));
}

/// platform > d > p > t holding the Azure subscription, the AWS account and the GCP project of the fixtures;
/// a EUR list with a 10 % pass-through uplift; USD -> EUR at 0.9.
fn engine() -> Cms<MemoryStore> {
    let mut cms = Cms::open(MemoryStore::new()).unwrap();
    let add = |id: &str, kind, parent: Option<&str>| Event::NodeAdded {
        id: id.into(),
        kind,
        parent: parent.map(Into::into),
        name: format!("{id} name"),
    };
    let mut list = PriceList::new("hybrid", Currency::EUR);
    list.pass_through_uplift = Some(dec("0.10"));
    let mut events = vec![add("d", NodeKind::Distributor, None), add("p", NodeKind::Partner, Some("d"))];
    events.push(add("t", NodeKind::Tenant, Some("p")));
    for subscription in
        ["/subscriptions/2b5a8c1e-4d3f-4a8e-9b1c-7d6e5f4a3b2c", "444455556666", "tenant-b-prod"]
    {
        events.push(add(subscription, NodeKind::Subscription, Some("t")));
    }
    events.extend([
        Event::PriceListCreated {
            list: cms_core::model::terms::sheet_list(list, "List", cms_core::model::time::Instant::MIN_UTC),
        },
        Event::PriceListAssigned {
            scope: cms_core::model::price_book::PriceScope::Node("p".into()),
            list: "hybrid".into(),
        },
        Event::ExchangeRateSet {
            from: Currency::USD,
            to: Currency::EUR,
            effective: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
            rate: dec("0.9"),
        },
    ]);
    let operator = cms_core::engine::Principal::platform("test-operator");
    let recorded_at = cms_core::model::time::parse_timestamp("2026-11-26T12:00:00Z").unwrap();
    for event in events {
        cms.execute(&operator, recorded_at, &event).unwrap();
    }
    cms
}

/// Import files into a fresh engine; the summary of the import and the month-end of May 2025.
fn import(files: &[(&str, Vec<FocusCharge>)]) -> (Vec<UsageRecord>, IngestSummary, MonthEndReport) {
    let mut cms = engine();
    let mut records = Vec::new();
    let mut summary = IngestSummary::default();
    for (name, charges) in files {
        let batch: Vec<UsageRecord> = charges.iter().filter_map(charge_to_usage).collect();
        summary.add(cms.ingest(&batch, &PageOrigin::named(*name)).unwrap());
        records.extend(batch);
    }
    let report = cms.month_end(Period::month(2025, 5).unwrap(), BillingRules::default()).unwrap();
    (records, summary, report)
}

#[test]
fn parquet_and_csv_imports_rate_the_same() {
    let csv: Vec<(&str, Vec<FocusCharge>)> = ["azure-focus.csv", "aws-focus.csv", "gcp-focus.csv"]
        .into_iter()
        .map(|name| (name, charges(&csv_rows(name).0)))
        .collect();
    let (csv_records, csv_summary, csv_report) = import(&csv);
    for variant in [0, 1] {
        let parquet: Vec<(&str, Vec<FocusCharge>)> = [0, 2, 4]
            .into_iter()
            .map(|index| FIXTURES[index + variant].0)
            .map(|name| (name, charges(&parquet_rows(name).0)))
            .collect();
        let (records, summary, report) = import(&parquet);
        assert_eq!(records, csv_records, "variant {variant}: the same usage records");
        assert_eq!(summary, csv_summary, "variant {variant}: the same ingestion summary");
        assert_eq!(report, csv_report, "variant {variant}: the same invoices");
    }
    // 4 + 5 + 3 rows; the AWS tax row is not imported, its April correction lands in April.
    assert_eq!((csv_records.len(), csv_summary.stored, csv_summary.duplicates), (11, 11, 0));
    assert_eq!(csv_summary.by_period, BTreeMap::from([("2025-04".into(), 1), ("2025-05".into(), 10)]));
    let invoice = &csv_report.invoices[0];
    assert_eq!((csv_report.invoices.len(), invoice.currency), (1, Currency::EUR));
    let mut pass_through: Vec<(String, Decimal)> = invoice
        .lines
        .iter()
        .filter(|line| matches!(line.kind, LineKind::PassThrough { .. }))
        .map(|line| (line.subscription.clone(), line.amount))
        .collect();
    pass_through.sort();
    assert_eq!(pass_through, golden_lines(), "cost x FX x 1.1 per subscription and meter");
    assert_eq!(invoice.total, dec("1416.38"), "the sum of the lines");
}

/// The invoice's pass-through lines, checked by hand: Azure EUR x 1.1; AWS and GCP USD x 0.9 x 1.1 = x 0.99;
/// each line rounded to cents.
fn golden_lines() -> Vec<(String, Decimal)> {
    let azure = "/subscriptions/2b5a8c1e-4d3f-4a8e-9b1c-7d6e5f4a3b2c";
    let lines = vec![
        (azure, "5.07"),            // 4.608 x 1.1 = 5.0688
        (azure, "1375.00"),         // 1250.00 x 1.1
        (azure, "0.00"),            // the reserved hours, paid by the purchase
        (azure, "-27.50"),          // -25.00 x 1.1
        ("444455556666", "0.04"),   // 0.0416 x 0.99 = 0.041184
        ("444455556666", "73.66"),  // 74.40 x 0.99 = 73.656
        ("444455556666", "-9.90"),  // -10.00 x 0.99
        ("tenant-b-prod", "0.01"),  // 0.0123456 x 0.99 = 0.012222144
        ("tenant-b-prod", "0.00"),  // 0.00000015 x 0.99
        ("tenant-b-prod", "-0.00"), // -0.002469 x 0.99 = -0.00244431
    ];
    let mut lines: Vec<(String, Decimal)> =
        lines.into_iter().map(|(subscription, amount)| (subscription.to_owned(), dec(amount))).collect();
    lines.sort();
    lines
}

#[test]
fn parquet_files_are_told_from_csv_by_their_magic() {
    assert!(is_parquet(&bytes("aws-focus.parquet")));
    assert!(!is_parquet(&bytes("aws-focus.csv")));
    assert!(!is_parquet(b"PAR"));
    let error = parquet_bytes_rows(bytes("aws-focus.csv"), "aws-focus.csv").unwrap_err();
    assert_eq!(error.code(), "bad_record");
    assert_eq!(
        error.to_string(),
        "aws-focus.csv: bad record: not a Parquet file (it does not start with PAR1)"
    );
}

// ---- Files written here with the parquet crate, one bad value each ----

/// A Parquet column of the test files: its schema line and its values (`None` is null).
enum Values {
    Text(Vec<Option<Vec<u8>>>),
    Double(Vec<Option<f64>>),
    Int64(Vec<Option<i64>>),
    Fixed(Vec<Option<Vec<u8>>>),
}

/// One valid row of the mandatory columns, as strings.
fn valid_cells() -> BTreeMap<&'static str, &'static str> {
    let mut cells = BTreeMap::new();
    for column in MANDATORY_COLUMNS {
        cells.insert(*column, "x");
    }
    for cost in ["BilledCost", "ContractedCost", "EffectiveCost", "ListCost", "PricingQuantity"] {
        cells.insert(cost, "1.5");
    }
    for (column, value) in [
        ("BillingCurrency", "USD"),
        ("BillingPeriodStart", "2025-05-01T00:00:00Z"),
        ("BillingPeriodEnd", "2025-06-01T00:00:00Z"),
        ("ChargePeriodStart", "2025-05-01T00:00:00Z"),
        ("ChargePeriodEnd", "2025-05-01T01:00:00Z"),
        ("ChargeCategory", "Usage"),
        ("ChargeClass", ""),
        ("ServiceCategory", "Compute"),
    ] {
        cells.insert(column, value);
    }
    cells
}

/// A file of two valid rows of the mandatory columns (strings), except `column`, which has the schema line
/// `field` and the `values` given; `column` may also be a new column.
fn file_with(column: &str, field: &str, values: Values) -> Vec<u8> {
    let cells = valid_cells();
    let mut lines: Vec<String> = Vec::new();
    let mut columns: Vec<(String, Values)> = Vec::new();
    for (name, value) in &cells {
        if *name == column {
            continue;
        }
        lines.push(format!("optional binary {name} (STRING);"));
        let value = Some(value.as_bytes().to_vec()).filter(|value| !value.is_empty());
        columns.push(((*name).to_owned(), Values::Text(vec![value.clone(), value])));
    }
    lines.push(field.to_owned());
    columns.push((column.to_owned(), values));
    let schema = Arc::new(parse_message_type(&format!("message focus {{ {} }}", lines.join(" "))).unwrap());
    let mut out = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut out, schema, Arc::new(WriterProperties::builder().build())).unwrap();
    let mut group = writer.next_row_group().unwrap();
    for (_, values) in &columns {
        let mut column_writer = group.next_column().unwrap().unwrap();
        let levels = |present: Vec<bool>| present.into_iter().map(i16::from).collect::<Vec<i16>>();
        match values {
            Values::Text(values) => {
                let present: Vec<ByteArray> =
                    values.iter().flatten().map(|value| ByteArray::from(value.clone())).collect();
                let definition = levels(values.iter().map(Option::is_some).collect());
                column_writer
                    .typed::<ByteArrayType>()
                    .write_batch(&present, Some(&definition), None)
                    .unwrap();
            }
            Values::Double(values) => {
                let present: Vec<f64> = values.iter().flatten().copied().collect();
                let definition = levels(values.iter().map(Option::is_some).collect());
                column_writer.typed::<DoubleType>().write_batch(&present, Some(&definition), None).unwrap();
            }
            Values::Int64(values) => {
                let present: Vec<i64> = values.iter().flatten().copied().collect();
                let definition = levels(values.iter().map(Option::is_some).collect());
                column_writer.typed::<Int64Type>().write_batch(&present, Some(&definition), None).unwrap();
            }
            Values::Fixed(values) => {
                let present: Vec<FixedLenByteArray> =
                    values.iter().flatten().map(|value| ByteArray::from(value.clone()).into()).collect();
                let definition = levels(values.iter().map(Option::is_some).collect());
                column_writer
                    .typed::<FixedLenByteArrayType>()
                    .write_batch(&present, Some(&definition), None)
                    .unwrap();
            }
        }
        column_writer.close().unwrap();
    }
    group.close().unwrap();
    writer.close().unwrap();
    out
}

fn read_error(bytes: Vec<u8>) -> CmsError {
    match parquet_bytes_rows(bytes, "bad.parquet") {
        Ok((rows, _)) => panic!("should fail, read {} rows", rows.len()),
        Err(error) => error,
    }
}

#[test]
fn written_files_read_and_their_bad_values_name_file_row_and_column() {
    let good = file_with(
        "x_Note",
        "optional binary x_Note (STRING);",
        Values::Text(vec![Some(b"a".to_vec()), None]),
    );
    let (rows, summary) = parquet_bytes_rows(good, "good.parquet").unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0.billed_cost, dec("1.5"));
    assert_eq!(rows[0].0.extensions.get("x_Note").map(String::as_str), Some("a"));
    assert!(rows[1].0.extensions.is_empty());
    assert_eq!(summary.extension_columns, ["x_Note"]);

    let micros = 1_746_057_600_000_000_i64; // 2025-05-01T00:00:00Z
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (
            file_with(
                "BilledCost",
                "optional double BilledCost;",
                Values::Double(vec![Some(1.0), Some(f64::NAN)]),
            ),
            "bad_decimal",
            r#"bad.parquet record 1: bad decimal "NaN" in BilledCost"#,
        ),
        (
            file_with(
                "ListCost",
                "optional double ListCost;",
                Values::Double(vec![Some(f64::INFINITY), None]),
            ),
            "bad_decimal",
            r#"bad.parquet record 0: bad decimal "inf" in ListCost"#,
        ),
        (
            file_with("BilledCost", "optional double BilledCost;", Values::Double(vec![Some(1.0), None])),
            "bad_record",
            "bad.parquet record 1: bad record: BilledCost is empty; FOCUS 1.2 requires a value",
        ),
        (
            file_with(
                "ChargePeriodStart",
                "optional int64 ChargePeriodStart (TIMESTAMP(MICROS, true));",
                Values::Int64(vec![Some(micros), Some(micros + 500_000)]),
            ),
            "bad_timestamp",
            r#"bad.parquet record 1: bad timestamp "2025-05-01T00:00:00.500Z" in ChargePeriodStart (expected ISO 8601 / RFC 3339)"#,
        ),
        (
            file_with(
                "ChargePeriodEnd",
                "optional int64 ChargePeriodEnd (TIMESTAMP(MICROS, false));",
                Values::Int64(vec![Some(i64::MAX), Some(micros)]),
            ),
            "bad_timestamp",
            r#"bad.parquet record 0: bad timestamp "9223372036854775807 microseconds since 1970-01-01" in ChargePeriodEnd (expected ISO 8601 / RFC 3339)"#,
        ),
        (
            file_with(
                "ChargeCategory",
                "optional binary ChargeCategory (STRING);",
                Values::Text(vec![Some(b"Usage".to_vec()), Some(b"Refund".to_vec())]),
            ),
            "invalid_value",
            r#"bad.parquet record 1: invalid value "Refund": ChargeCategory must be one of: Usage, Purchase, Tax, Credit, Adjustment"#,
        ),
        (
            file_with(
                "SubAccountId",
                "optional binary SubAccountId;",
                Values::Text(vec![Some(vec![0xFF, 0xFE]), None]),
            ),
            "bad_record",
            "bad.parquet record 0: bad record: SubAccountId is not valid UTF-8",
        ),
        (
            file_with(
                "Tags",
                "optional binary Tags (STRING);",
                Values::Text(vec![Some(br#"{"a":[1]}"#.to_vec()), None]),
            ),
            "bad_json",
            "bad.parquet record 0: bad JSON: Tags: values must be strings, numbers, true, false or null, not objects \
             or arrays at line 1 column 9",
        ),
        (
            file_with("ServiceName", "optional binary Unrelated (STRING);", Values::Text(vec![None, None])),
            "bad_header",
            "bad.parquet: bad header: expected column \"ServiceName\"",
        ),
    ];
    for (bytes, code, message) in cases {
        let error = read_error(bytes);
        assert_eq!(error.code(), code, "{error}");
        assert!(error.to_string().starts_with(message), "{error}\n  expected: {message}");
    }
}

#[test]
fn ignored_columns_are_not_decoded() {
    // A column of a type FOCUS never uses, and that is not a FOCUS or x_ column, is listed and skipped.
    let bytes = file_with(
        "Seconds",
        "optional int64 Seconds (TIME(MICROS, true));",
        Values::Int64(vec![Some(1), None]),
    );
    let (rows, summary) = parquet_bytes_rows(bytes, "odd.parquet").unwrap();
    assert_eq!((rows.len(), summary.ignored_columns.as_slice()), (2, ["Seconds".to_owned()].as_slice()));
}

#[test]
fn a_panic_of_the_parquet_row_api_is_a_typed_error() {
    // The row API has no conversion for INTERVAL and panics (`unimplemented!`) on its first value: the
    // reader contains the panic and names the row.
    let interval = Some(vec![0_u8; 12]);
    let bytes = file_with(
        "x_Duration",
        "optional fixed_len_byte_array(12) x_Duration (INTERVAL);",
        Values::Fixed(vec![interval.clone(), interval]),
    );
    let error = read_error(bytes);
    assert_eq!(error.code(), "bad_record");
    let message = error.to_string();
    assert!(
        message.starts_with("bad.parquet record 0: bad record: cannot decode the row: the Parquet reader failed on malformed data"),
        "{message}"
    );
}

// ---- Hostile files ----

/// A read of hostile bytes: no panic (the test would fail), and an error is one of the reader's codes, on
/// the file it was given.
fn assert_fails_cleanly(bytes: Vec<u8>) {
    if let Err(error) = parquet_bytes_rows(bytes, "hostile.parquet") {
        let codes = ["bad_record", "bad_header", "bad_decimal", "bad_timestamp", "invalid_value", "bad_json"];
        assert!(codes.contains(&error.code()), "{error}");
        assert_eq!(error.location().map(|at| at.source.as_str()), Some("hostile.parquet"), "{error}");
    }
}

#[test]
fn truncated_files_are_refused() {
    let whole = bytes("gcp-focus.parquet");
    for length in (0..whole.len()).step_by(37).chain([1, 4, 11, 12, whole.len() - 1]) {
        let error = parquet_bytes_rows(whole[..length].to_vec(), "cut.parquet").unwrap_err();
        assert_eq!(error.code(), "bad_record", "{length}: {error}");
        assert_eq!(error.location(), Some(&Location::whole("cut.parquet")), "{length}");
    }
    let error = parquet_bytes_rows(whole[..whole.len() - 1].to_vec(), "cut.parquet").unwrap_err();
    assert!(error.to_string().contains("does not end with PAR1"), "{error}");
}

#[test]
fn damaged_data_and_footers_fail_cleanly() {
    for name in ["gcp-focus.parquet", "aws-focus.parquet", "azure-focus.parquet"] {
        let whole = bytes(name);
        let footer_length = u32::from_le_bytes(whole[whole.len() - 8..whole.len() - 4].try_into().unwrap());
        let footer_start = whole.len() - 8 - footer_length as usize;
        // A hole of zeros sliding over the pages, footer intact: decoding fails on a row or the whole file.
        for start in (4..footer_start).step_by(701) {
            let mut damaged = whole.clone();
            let end = (start + 64).min(footer_start);
            damaged[start..end].fill(0);
            assert_fails_cleanly(damaged);
        }
        // Bytes of the footer flipped in turn (a footer length that runs past the file too).
        for position in (footer_start..whole.len() - 4).step_by(29).chain(whole.len() - 8..whole.len() - 4) {
            let mut damaged = whole.clone();
            damaged[position] ^= 0xA5;
            assert_fails_cleanly(damaged);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn bit_flips_never_panic(flips in proptest::collection::vec((any::<prop::sample::Index>(), 0..8_u8), 1..4)) {
        let mut damaged = bytes("aws-focus.decimal-us-local.snappy.parquet");
        let length = damaged.len();
        for (index, bit) in flips {
            damaged[index.index(length)] ^= 1 << bit;
        }
        assert_fails_cleanly(damaged);
    }

    #[test]
    fn arbitrary_bytes_between_the_magics_never_panic(middle in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut hostile = b"PAR1".to_vec();
        hostile.extend(middle);
        hostile.extend(b"PAR1");
        assert_fails_cleanly(hostile);
    }
}
