//! FOCUS 1.2 import and export: provider-shaped exports parse to the expected typed values, every error
//! path names its file, line and column, writing then reading gives the rows back, and hostile input never
//! panics nor makes the reader buffer without bound.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};

use chrono::{DateTime, Utc};
use cms_core::Decimal;
use cms_core::error::{CmsError, Location};
use cms_core::formats::focus::{
    ChargeCategory, ChargeClass, ChargeFrequency, CommitmentDiscountCategory, FOCUS_COLUMNS, FocusCharge,
    FocusReadSummary, JsonScalar, MANDATORY_COLUMNS, MAX_RECORD_BYTES, PricingCategory, ServiceCategory,
    UtilizationStatus, read_focus_csv, write_focus_csv,
};
use cms_core::model::money::Currency;
use proptest::prelude::*;

// The three exports below are hand-made in the shapes of the providers' FOCUS 1.2 exports (column sets,
// column order, `x_` columns, value styles); the values are invented. They live in tests/data/focus/, where
// scripts/focus_parquet_fixtures.py also writes them as Parquet (tests/focus_parquet.rs).

/// Azure Cost Management `FocusCost` 1.2-preview export: every FOCUS column in alphabetical order, then
/// `x_` columns. The test adds the UTF-8 byte order mark and CRLF line ends Azure writes.
const AZURE: &str = include_str!("../../tests/data/focus/azure-focus.csv");

/// AWS Data Exports "FOCUS 1.2 with AWS columns": AWS's own column order and `x_` columns, timestamps
/// with milliseconds, a tax row, a credit and a correction of the previous period.
const AWS: &str = include_str!("../../tests/data/focus/aws-focus.csv");

/// Google Cloud FOCUS `BigQuery` view exported as CSV: `YYYY-MM-DD HH:MM:SS UTC` timestamps, floats in
/// exponent notation, tags with boolean and number values, a subset of the conditional columns.
const GCP: &str = include_str!("../../tests/data/focus/gcp-focus.csv");

/// The extension columns a CMS export carries.
const CMS_EXTENSIONS: [&str; 3] = ["x_DistributorId", "x_PartnerId", "x_TenantId"];

type Rows = Vec<(FocusCharge, Location)>;

fn read_all(bytes: &[u8], source: &str) -> Result<(Rows, FocusReadSummary), CmsError> {
    let mut rows = Vec::new();
    let summary = read_focus_csv(bytes, source, |charge, at| {
        rows.push((charge.clone(), at.clone()));
        Ok(())
    })?;
    Ok((rows, summary))
}

fn read_ok(text: &str, source: &str) -> (Vec<FocusCharge>, FocusReadSummary) {
    match read_all(text.as_bytes(), source) {
        Ok((rows, summary)) => (rows.into_iter().map(|(charge, _)| charge).collect(), summary),
        Err(error) => panic!("{source} should read: {error}"),
    }
}

fn read_err(bytes: &[u8], source: &str) -> CmsError {
    match read_all(bytes, source) {
        Ok((rows, _)) => panic!("{source} should fail, read {} rows", rows.len()),
        Err(error) => error,
    }
}

fn dec(text: &str) -> Decimal {
    Decimal::from_str_exact(text).unwrap()
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn text(value: &str) -> JsonScalar {
    JsonScalar::String(value.to_owned())
}

fn number(value: &str) -> JsonScalar {
    JsonScalar::Number(value.to_owned())
}

fn azure_bytes() -> Vec<u8> {
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    bytes.extend_from_slice(AZURE.replace('\n', "\r\n").as_bytes());
    bytes
}

fn azure_rows() -> (Vec<FocusCharge>, Vec<Location>, FocusReadSummary) {
    let (rows, summary) = read_all(&azure_bytes(), "azure-focus.csv").unwrap();
    let (charges, locations) = rows.into_iter().unzip();
    (charges, locations, summary)
}

#[test]
fn azure_export_summary_and_lines() {
    let (rows, locations, summary) = azure_rows();
    assert_eq!(rows.len(), 4);
    let lines: Vec<String> = locations.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "azure-focus.csv line 2",
            "azure-focus.csv line 3",
            "azure-focus.csv line 4",
            "azure-focus.csv line 5"
        ]
    );
    assert_eq!(summary.rows, 4);
    assert_eq!(
        summary.rows_by_charge_category,
        BTreeMap::from([
            (ChargeCategory::Usage, 2),
            (ChargeCategory::Purchase, 1),
            (ChargeCategory::Credit, 1)
        ])
    );
    assert_eq!(summary.currencies, [Currency::EUR]);
    assert_eq!(
        summary.extension_columns,
        [
            "x_BilledCostInUsd",
            "x_BillingProfileId",
            "x_BillingProfileName",
            "x_InvoiceSectionId",
            "x_ResourceGroupName",
            "x_SkuMeterCategory",
            "x_SkuMeterId",
            "x_SkuMeterName"
        ]
    );
    assert!(summary.ignored_columns.is_empty());
}

#[test]
fn azure_usage_row_is_fully_typed() {
    let (rows, _, _) = azure_rows();
    let usage = &rows[0];
    let subscription = "/subscriptions/2b5a8c1e-4d3f-4a8e-9b1c-7d6e5f4a3b2c";
    assert_eq!(usage.charge_category, ChargeCategory::Usage);
    assert_eq!(usage.charge_class, None);
    assert_eq!(usage.charge_frequency, Some(ChargeFrequency::UsageBased));
    assert_eq!(usage.billed_cost.to_string(), "4.6080000000", "scale kept as written");
    assert_eq!(usage.effective_cost, dec("4.608"));
    assert_eq!(usage.list_cost, dec("5.76"));
    assert_eq!(usage.contracted_cost, dec("4.608"));
    assert_eq!(usage.list_unit_price, Some(dec("0.24")));
    assert_eq!(usage.contracted_unit_price, Some(dec("0.192")));
    assert_eq!(usage.consumed_quantity, Some(dec("24")));
    assert_eq!(usage.consumed_unit.as_deref(), Some("Hours"));
    assert_eq!(usage.pricing_quantity, Some(dec("24")));
    assert_eq!(usage.pricing_unit.as_deref(), Some("1 Hour"));
    assert_eq!(usage.pricing_category, Some(PricingCategory::Standard));
    assert_eq!(usage.pricing_currency.as_deref(), Some("EUR"));
    assert_eq!(usage.pricing_currency_effective_cost, Some(dec("4.608")));
    assert_eq!(usage.billing_currency, Currency::EUR);
    assert_eq!(usage.billing_period_start, at("2025-05-01T00:00:00Z"));
    assert_eq!(usage.billing_period_end, at("2025-06-01T00:00:00Z"));
    assert_eq!(usage.charge_period_start, at("2025-05-01T00:00:00Z"));
    assert_eq!(usage.charge_period_end, at("2025-05-02T00:00:00Z"));
    assert!(usage.billing_account_id.ends_with("/billingProfiles/AB12-CD34-EF5-GH6"));
    assert_eq!(usage.billing_account_name.as_deref(), Some("Contoso Stack Hub Billing"));
    assert_eq!(usage.billing_account_type.as_deref(), Some("Billing Profile"));
    assert_eq!(usage.sub_account_id.as_deref(), Some(subscription));
    assert_eq!(usage.sub_account_name.as_deref(), Some("Tenant A - Production"));
    assert_eq!(usage.sub_account_type.as_deref(), Some("Subscription"));
    assert_eq!(usage.provider_name, "Microsoft");
    assert_eq!(usage.publisher_name, "Microsoft");
    assert_eq!(usage.invoice_issuer_name, "Microsoft");
    assert_eq!(usage.invoice_id.as_deref(), Some("G098765432"));
    assert_eq!(usage.region_id.as_deref(), Some("westeurope"));
    assert_eq!(usage.region_name.as_deref(), Some("West Europe"));
    assert_eq!(usage.availability_zone, None);
    assert!(usage.resource_id.as_deref().unwrap().ends_with("/virtualmachines/vm-web-01"));
    assert_eq!(usage.resource_name.as_deref(), Some("vm-web-01"));
    assert_eq!(usage.resource_type.as_deref(), Some("Virtual machine"));
    assert_eq!(usage.service_category, ServiceCategory::Compute);
    assert_eq!(usage.service_name, "Virtual Machines");
    assert_eq!(usage.service_subcategory.as_deref(), Some("Virtual Machines"));
    assert_eq!(usage.sku_id.as_deref(), Some("DZH318Z0BQ4L"));
    assert_eq!(usage.sku_meter.as_deref(), Some("D4s v5"));
    assert_eq!(usage.sku_price_id.as_deref(), Some("DZH318Z0BQ4L/001L"));
    assert_eq!(
        usage.sku_price_details,
        BTreeMap::from([
            ("CoreCount".to_owned(), number("4")),
            ("OperatingSystem".to_owned(), text("Linux"))
        ])
    );
    assert_eq!(
        usage.tags,
        BTreeMap::from([("CostCenter".to_owned(), text("CC-100")), ("env".to_owned(), text("prod"))])
    );
    assert_eq!(usage.capacity_reservation_id, None);
    assert_eq!(usage.commitment_discount_id, None);
    assert_eq!(usage.extensions["x_ResourceGroupName"], "rg-tenant-a");
    assert_eq!(usage.extensions["x_BilledCostInUsd"], "5.0012");
    assert_eq!(usage.extensions.len(), 8);
}

#[test]
fn azure_commitment_and_credit_rows() {
    let (rows, _, _) = azure_rows();
    let purchase = &rows[1];
    assert_eq!(purchase.charge_category, ChargeCategory::Purchase);
    assert_eq!(purchase.charge_frequency, Some(ChargeFrequency::OneTime));
    assert_eq!(
        purchase.charge_description.as_deref(),
        Some("Reserved VM Instance, Standard_D4s_v5, EU West, 1 Year")
    );
    assert_eq!(purchase.billed_cost, dec("1250"));
    assert_eq!(purchase.effective_cost, Decimal::ZERO);
    assert_eq!(purchase.commitment_discount_category, Some(CommitmentDiscountCategory::Usage));
    assert_eq!(purchase.commitment_discount_type.as_deref(), Some("Reservation"));
    assert_eq!(purchase.commitment_discount_quantity, Some(dec("8760")));
    assert_eq!(purchase.commitment_discount_unit.as_deref(), Some("Hours"));
    assert_eq!(purchase.commitment_discount_status, None);
    assert_eq!(purchase.consumed_quantity, None);
    assert_eq!(purchase.resource_id, None);
    assert!(purchase.tags.is_empty() && purchase.sku_price_details.is_empty());
    assert!(!purchase.extensions.contains_key("x_ResourceGroupName"), "null x_ cells are absent");

    let covered = &rows[2];
    assert_eq!(covered.pricing_category, Some(PricingCategory::Committed));
    assert_eq!(covered.commitment_discount_status, Some(UtilizationStatus::Used));
    assert_eq!(covered.commitment_discount_id, purchase.commitment_discount_id);
    assert_eq!(covered.billed_cost, Decimal::ZERO);
    assert_eq!(covered.effective_cost, dec("3.4246575342"));

    let credit = &rows[3];
    assert_eq!(credit.charge_category, ChargeCategory::Credit);
    assert_eq!(credit.billed_cost, dec("-25.00"));
    assert_eq!(credit.service_category, ServiceCategory::Other);
    assert_eq!(credit.pricing_quantity, None);
    assert_eq!(credit.pricing_unit, None);
    assert_eq!(credit.list_unit_price, None);
}

#[test]
fn aws_export_parses_in_its_own_column_order() {
    let (rows, summary) = read_ok(AWS, "aws-focus.csv");
    assert_eq!(rows.len(), 5);
    assert_eq!(
        summary.rows_by_charge_category,
        BTreeMap::from([
            (ChargeCategory::Usage, 2),
            (ChargeCategory::Purchase, 1),
            (ChargeCategory::Tax, 1),
            (ChargeCategory::Credit, 1)
        ])
    );
    assert_eq!(summary.currencies, [Currency::USD]);
    assert_eq!(
        summary.extension_columns,
        ["x_CostCategories", "x_Discounts", "x_Operation", "x_ServiceCode", "x_UsageType"]
    );
    assert!(summary.ignored_columns.is_empty());

    let usage = &rows[0];
    assert_eq!(usage.billing_account_id, "111122223333");
    assert_eq!(usage.sub_account_id.as_deref(), Some("444455556666"));
    assert_eq!(usage.sub_account_type.as_deref(), Some("Linked Account"));
    assert_eq!(
        usage.charge_period_start,
        at("2025-05-03T10:00:00Z"),
        "a zero fraction of a second is accepted"
    );
    assert_eq!(usage.charge_period_end, at("2025-05-03T11:00:00Z"));
    assert_eq!(usage.billed_cost, dec("0.0416"));
    assert_eq!(usage.availability_zone.as_deref(), Some("us-east-1a"));
    assert_eq!(
        usage.resource_id.as_deref(),
        Some("arn:aws:ec2:us-east-1:444455556666:instance/i-0a1b2c3d4e5f67890")
    );
    assert_eq!(usage.service_name, "Amazon Elastic Compute Cloud");
    assert_eq!(usage.service_subcategory.as_deref(), Some("Virtual Machines"));
    assert_eq!(usage.sku_price_details["vCPU"], number("2"));
    assert_eq!(usage.tags["user:Tenant"], text("tenant-c"));
    assert_eq!(usage.tags["aws:createdBy"], text("IAMUser:AIDAEXAMPLE:alice"));
    assert_eq!(usage.extensions["x_CostCategories"], r#"{"team":"platform"}"#, "x_ values are kept verbatim");
    assert_eq!(usage.extensions["x_UsageType"], "BoxUsage:t3.medium");
    assert_eq!(usage.capacity_reservation_status, None);

    let savings_plan = &rows[1];
    assert_eq!(savings_plan.charge_category, ChargeCategory::Purchase);
    assert_eq!(savings_plan.charge_frequency, Some(ChargeFrequency::Recurring));
    assert_eq!(savings_plan.commitment_discount_category, Some(CommitmentDiscountCategory::Spend));
    assert_eq!(savings_plan.commitment_discount_quantity, Some(dec("74.40")));
    assert_eq!(savings_plan.region_id, None);
    assert!(!savings_plan.extensions.contains_key("x_Operation"));

    let tax = &rows[2];
    assert_eq!(tax.charge_category, ChargeCategory::Tax);
    assert_eq!(tax.billed_cost, dec("14.52"));
    assert_eq!(
        (tax.pricing_quantity, tax.pricing_unit.as_deref(), tax.sku_id.as_deref()),
        (None, None, None)
    );
    assert_eq!(tax.pricing_category, None);

    let credit = &rows[3];
    assert_eq!(credit.charge_description.as_deref(), Some(r#"AWS Activate credit, "Founders" tier"#));
    assert_eq!(credit.billed_cost, dec("-10.00"));

    let correction = &rows[4];
    assert_eq!(correction.charge_class, Some(ChargeClass::Correction));
    assert_eq!(correction.pricing_quantity, Some(dec("-2")));
    assert_eq!(correction.billed_cost, dec("-0.0832"));
    assert_eq!(correction.consumed_quantity, None);
    assert!(correction.charge_period_start < correction.billing_period_start, "corrects the previous period");
}

#[test]
fn gcp_export_parses_exponents_and_bigquery_timestamps() {
    let (rows, summary) = read_ok(GCP, "gcp-focus.csv");
    assert_eq!(rows.len(), 3);
    assert_eq!(
        summary.rows_by_charge_category,
        BTreeMap::from([(ChargeCategory::Usage, 2), (ChargeCategory::Credit, 1)])
    );
    assert_eq!(summary.extension_columns, ["x_Credits", "x_ExportTime", "x_ServiceId", "x_SkuDescription"]);

    let compute = &rows[0];
    assert_eq!(compute.billing_period_start, at("2025-05-01T00:00:00Z"));
    assert_eq!(compute.charge_period_start, at("2025-05-03T10:00:00Z"));
    assert_eq!(compute.billed_cost, dec("0.0123456"));
    assert_eq!(compute.list_unit_price, Some(dec("0.034554")));
    assert_eq!(compute.contracted_unit_price, Some(dec("0.0246912")));
    assert_eq!(compute.pricing_quantity, Some(dec("0.5")));
    assert_eq!(compute.consumed_quantity, Some(dec("1800")));
    assert_eq!(compute.sub_account_id.as_deref(), Some("tenant-b-prod"));
    assert_eq!(compute.provider_name, "Google Cloud");
    assert_eq!(
        compute.tags,
        BTreeMap::from([
            ("env".to_owned(), text("prod")),
            ("goog-k8s-cluster-name".to_owned(), text("prod")),
            ("spot".to_owned(), JsonScalar::Bool(false)),
            ("tier".to_owned(), number("2")),
            ("valueless".to_owned(), JsonScalar::Bool(true)),
        ])
    );
    assert_eq!(compute.tags["valueless"].as_text().as_deref(), Some("true"));
    assert_eq!(compute.extensions["x_ExportTime"], "2025-05-04 06:12:45.103 UTC");
    // Columns this export does not carry read as null.
    assert_eq!(compute.billing_account_type, None);
    assert_eq!(compute.pricing_currency, None);
    assert_eq!(compute.capacity_reservation_id, None);
    assert_eq!(compute.commitment_discount_quantity, None);

    let storage = &rows[1];
    assert_eq!(storage.billed_cost, dec("0.00000015"));
    assert_eq!(storage.billed_cost.to_string(), "0.00000015");
    assert_eq!(storage.pricing_quantity, Some(dec("0.000005787037037037037")));
    assert_eq!(storage.consumed_quantity, Some(dec("0.020833333333333334")));
    assert_eq!(storage.service_category, ServiceCategory::Storage);
    assert!(storage.tags.is_empty());

    let credit = &rows[2];
    assert_eq!(credit.charge_category, ChargeCategory::Credit);
    assert_eq!(credit.billed_cost, dec("-0.002469"));
    assert_eq!(credit.list_cost, Decimal::ZERO);
    assert_eq!(credit.extensions["x_Credits"], r#"[{"name":"Sustained usage discount","amount":-0.002469}]"#);
}

#[test]
fn exports_survive_a_write_and_read_back() {
    for (name, bytes) in
        [("azure", azure_bytes()), ("aws", AWS.as_bytes().to_vec()), ("gcp", GCP.as_bytes().to_vec())]
    {
        let (rows, summary) = read_all(&bytes, name).unwrap();
        let rows: Vec<FocusCharge> = rows.into_iter().map(|(charge, _)| charge).collect();
        let extensions: Vec<&str> = summary.extension_columns.iter().map(String::as_str).collect();
        let mut written = Vec::new();
        write_focus_csv(&rows, &extensions, &mut written).unwrap();
        let (again, again_summary) = read_ok(std::str::from_utf8(&written).unwrap(), name);
        assert_eq!(again, rows, "{name}");
        assert_eq!(again_summary.extension_columns, summary.extension_columns, "{name}");
        assert_eq!(again_summary.rows_by_charge_category, summary.rows_by_charge_category, "{name}");
    }
}

#[test]
fn newer_and_unknown_columns_are_listed_as_ignored() {
    // A FOCUS 1.3 file: ServiceProviderName and HostProviderName are new, ProviderName and PublisherName are
    // deprecated but still present.
    let mut header = MANDATORY_COLUMNS.join(",");
    header.push_str(",ServiceProviderName,HostProviderName,MeterCategory,x_Tenant");
    let row = valid_cells().join(",") + ",Contoso,Microsoft,Compute,t-1";
    let (rows, summary) = read_ok(&format!("{header}\n{row}\n"), "focus-1.3.csv");
    assert_eq!(summary.ignored_columns, ["ServiceProviderName", "HostProviderName", "MeterCategory"]);
    assert_eq!(summary.extension_columns, ["x_Tenant"]);
    assert_eq!(rows[0].provider_name, "Provider");
    assert_eq!(rows[0].extensions["x_Tenant"], "t-1");
}

#[test]
fn header_names_match_in_any_order_and_ascii_case() {
    let mut columns: Vec<String> = MANDATORY_COLUMNS.iter().map(|name| name.to_ascii_lowercase()).collect();
    let mut cells = valid_cells();
    columns.reverse();
    cells.reverse();
    let text = format!("{}\n{}\n", columns.join(","), cells.join(","));
    let (rows, _) = read_ok(&text, "lower.csv");
    assert_eq!(rows[0].billed_cost, dec("1.00"));
    assert_eq!(rows[0].service_name, "Service");
    assert_eq!(
        rows[0].charge_category,
        ChargeCategory::Usage,
        "values of enum columns ignore ASCII case too"
    );
}

/// One valid value per [`MANDATORY_COLUMNS`] entry, in that order.
fn valid_cells() -> Vec<&'static str> {
    MANDATORY_COLUMNS
        .iter()
        .map(|column| match *column {
            "BilledCost" | "ContractedCost" | "EffectiveCost" | "ListCost" => "1.00",
            "BillingAccountId" => "acct-1",
            "BillingAccountName" => "Account",
            "BillingCurrency" => "USD",
            "BillingPeriodStart" | "ChargePeriodStart" => "2025-05-01T00:00:00Z",
            "BillingPeriodEnd" => "2025-06-01T00:00:00Z",
            "ChargePeriodEnd" => "2025-05-01T01:00:00Z",
            "ChargeCategory" => "usage",
            "ChargeClass" => "",
            "ChargeDescription" => "Hourly usage",
            "InvoiceIssuerName" => "Issuer",
            "PricingQuantity" => "1",
            "PricingUnit" => "Hours",
            "ProviderName" => "Provider",
            "PublisherName" => "Publisher",
            "ServiceCategory" => "Compute",
            "ServiceName" => "Service",
            other => panic!("no value for {other}"),
        })
        .collect()
}

/// A file of the mandatory columns plus `column`, whose second data row (line 3) has `value` in `column`.
fn file_with(column: &str, value: &str) -> Vec<u8> {
    let mut header: Vec<&str> = MANDATORY_COLUMNS.to_vec();
    let mut good: Vec<&str> = valid_cells();
    if !header.contains(&column) {
        header.push(column);
        good.push("");
    }
    let mut bad = good.clone();
    let position = header.iter().position(|name| *name == column).unwrap();
    bad[position] = value;
    let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
    for record in [&header, &good, &bad] {
        writer.write_record(record).unwrap();
    }
    writer.into_inner().unwrap()
}

#[test]
fn missing_mandatory_column_is_a_bad_header_naming_it() {
    for missing in MANDATORY_COLUMNS {
        let header: Vec<&str> = MANDATORY_COLUMNS.iter().copied().filter(|name| name != missing).collect();
        let error = read_err(format!("{}\n", header.join(",")).as_bytes(), "short.csv");
        match &error {
            CmsError::BadHeader { at, expected, found } => {
                assert_eq!(at, &Location::line("short.csv", 1));
                assert_eq!(expected, missing);
                assert_eq!(found.len(), MANDATORY_COLUMNS.len() - 1);
            }
            other => panic!("{missing}: expected bad_header, got {other}"),
        }
        assert_eq!(error.code(), "bad_header");
        assert!(
            error
                .to_string()
                .contains(&format!("short.csv line 1: bad header: expected column \"{missing}\""))
        );
    }
    let empty = read_err(b"", "empty.csv");
    assert_eq!(empty.code(), "bad_header");
    assert!(empty.to_string().contains("\"BilledCost\""), "{empty}");
}

#[test]
fn a_column_named_twice_is_refused() {
    for duplicate in ["billedcost", "x_Tenant"] {
        let mut header = MANDATORY_COLUMNS.join(",");
        header.push_str(",x_Tenant,");
        header.push_str(duplicate);
        let error = read_err(format!("{header}\n").as_bytes(), "twice.csv");
        assert_eq!(error.code(), "invalid_value", "{duplicate}");
        let message = error.to_string();
        assert!(message.starts_with("twice.csv line 1: invalid value"), "{message}");
        assert!(message.contains(duplicate) && message.contains("more than once"), "{message}");
    }
}

#[test]
fn each_bad_value_names_file_line_and_column() {
    let cases: &[(&str, &str, &str)] = &[
        ("BilledCost", "12,50", "bad_decimal"),
        ("EffectiveCost", "1.1368683772161603E-13", "bad_decimal"),
        ("ListCost", "1E29", "bad_decimal"),
        ("ContractedCost", "", "bad_record"),
        ("ListUnitPrice", "n/a", "bad_decimal"),
        ("PricingQuantity", "NaN", "bad_decimal"),
        ("ChargePeriodStart", "2025-13-01T00:00:00Z", "bad_timestamp"),
        ("ChargePeriodEnd", "2025-05-01T00:00:00.25Z", "bad_timestamp"),
        ("BillingPeriodEnd", "", "bad_record"),
        ("BillingPeriodStart", "May 2025", "bad_timestamp"),
        ("ChargeCategory", "Usages", "invalid_value"),
        ("ChargeCategory", "", "bad_record"),
        ("ChargeClass", "Refund", "invalid_value"),
        ("ChargeFrequency", "Monthly", "invalid_value"),
        ("PricingCategory", "On-Demand", "invalid_value"),
        ("ServiceCategory", "Compute Engine", "invalid_value"),
        ("CommitmentDiscountCategory", "Hours", "invalid_value"),
        ("CommitmentDiscountStatus", "Partial", "invalid_value"),
        ("CapacityReservationStatus", "Reserved", "invalid_value"),
        ("BillingCurrency", "Euro", "invalid_value"),
        ("BillingCurrency", "", "bad_record"),
        ("BillingAccountId", "", "bad_record"),
        ("ServiceName", "", "bad_record"),
        ("ProviderName", "", "bad_record"),
        ("PublisherName", "", "bad_record"),
        ("InvoiceIssuerName", "", "bad_record"),
        ("Tags", "env=prod", "bad_json"),
        ("Tags", "[\"env\"]", "bad_json"),
        ("Tags", r#"{"env":{"name":"prod"}}"#, "bad_json"),
        ("Tags", r#"{"env":["prod"]}"#, "bad_json"),
        ("Tags", r#"{"env":"prod","env":"dev"}"#, "bad_json"),
        ("SkuPriceDetails", r#"{"CoreCount":4"#, "bad_json"),
    ];
    for (column, value, code) in cases {
        let error = read_err(&file_with(column, value), "bad.csv");
        let message = error.to_string();
        assert_eq!(error.code(), *code, "{column}={value:?}: {message}");
        assert!(message.starts_with("bad.csv line 3: "), "{column}={value:?}: {message}");
        assert!(message.contains(column), "{column}={value:?}: {message}");
    }
}

#[test]
fn enum_errors_list_the_allowed_values() {
    let message = read_err(&file_with("ChargeCategory", "Usages"), "bad.csv").to_string();
    assert_eq!(
        message,
        concat!(
            "bad.csv line 3: invalid value \"Usages\": ",
            "ChargeCategory must be one of: Usage, Purchase, Tax, Credit, Adjustment"
        )
    );
    let message = read_err(&file_with("ChargeFrequency", "Monthly"), "bad.csv").to_string();
    assert!(
        message.ends_with("ChargeFrequency must be one of: One-Time, Recurring, Usage-Based"),
        "{message}"
    );
}

#[test]
fn malformed_records_are_bad_records_with_their_line() {
    let header = MANDATORY_COLUMNS.join(",");
    let row = valid_cells().join(",");
    let short = format!("{header}\n{row}\n{row}\n1.00,acct\n");
    let error = read_err(short.as_bytes(), "short-row.csv");
    assert_eq!(error.code(), "bad_record");
    assert!(
        error.to_string().starts_with("short-row.csv line 4: bad record: 2 fields where the header has 21"),
        "{error}"
    );

    let mut invalid_utf8 = format!("{header},ResourceName\n{row},ok\n{row},").into_bytes();
    invalid_utf8.extend_from_slice(b"vm-\xff\xfe\n");
    let error = read_err(&invalid_utf8, "utf8.csv");
    assert_eq!(error.code(), "bad_record");
    assert_eq!(error.to_string(), "utf8.csv line 3: bad record: ResourceName is not valid UTF-8");

    let mut invalid_extension = format!("{header},x_Tenant\n{row},").into_bytes();
    invalid_extension.extend_from_slice(b"\xc3\n");
    let error = read_err(&invalid_extension, "utf8.csv");
    assert_eq!(error.to_string(), "utf8.csv line 2: bad record: x_Tenant is not valid UTF-8");
}

#[test]
fn records_over_the_size_cap_are_refused() {
    let header = format!("{},ResourceName", MANDATORY_COLUMNS.join(","));
    let row = valid_cells().join(",");
    let near = usize::try_from(MAX_RECORD_BYTES).unwrap() - 4096;
    let fits = format!("{header}\n{row},{}\n", "r".repeat(near));
    let (rows, _) = read_ok(&fits, "big.csv");
    assert_eq!(rows[0].resource_name.as_ref().map(String::len), Some(near));

    let over = format!("{header}\n{row},ok\n{row},\"{}\"\n", "r".repeat(2 << 20));
    let error = read_err(over.as_bytes(), "big.csv");
    assert_eq!(error.code(), "bad_record");
    assert_eq!(
        error.to_string(),
        format!("big.csv line 3: bad record: record longer than {MAX_RECORD_BYTES} bytes")
    );
}

/// Input that never ends, repeating `pattern`; counts what was taken from it.
struct Endless {
    pattern: &'static [u8],
    produced: u64,
}

impl Read for Endless {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        for (offset, byte) in buffer.iter_mut().enumerate() {
            let at = usize::try_from(self.produced).unwrap() + offset;
            *byte = self.pattern[at % self.pattern.len()];
        }
        self.produced += u64::try_from(buffer.len()).unwrap();
        Ok(buffer.len())
    }
}

#[test]
fn endless_input_is_refused_after_a_bounded_read() {
    let mut header = Endless { pattern: b"x_Column", produced: 0 };
    let error = read_focus_csv(&mut header, "endless.csv", |_, _| Ok(())).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("endless.csv line 1: bad record: record longer than {MAX_RECORD_BYTES} bytes")
    );
    assert!(header.produced < 2 * MAX_RECORD_BYTES, "read {} bytes", header.produced);

    let prefix = format!("{}\n{}\n\"", MANDATORY_COLUMNS.join(","), valid_cells().join(","));
    let mut field = Endless { pattern: b"a,\n\"\"", produced: 0 };
    let error =
        read_focus_csv(prefix.as_bytes().chain(&mut field), "endless.csv", |_, _| Ok(())).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("endless.csv line 3: bad record: record longer than {MAX_RECORD_BYTES} bytes")
    );
    assert!(field.produced < 2 * MAX_RECORD_BYTES, "read {} bytes", field.produced);
}

#[test]
fn visitor_errors_stop_the_read() {
    let mut seen = Vec::new();
    let error = read_focus_csv(AWS.as_bytes(), "aws-focus.csv", |charge, at| {
        seen.push(at.to_string());
        if charge.charge_category == ChargeCategory::Tax {
            return Err(CmsError::UnknownSubscription {
                at: at.clone(),
                subscription: "444455556666".into(),
            });
        }
        Ok(())
    })
    .unwrap_err();
    assert_eq!(error.code(), "unknown_subscription");
    assert_eq!(seen, ["aws-focus.csv line 2", "aws-focus.csv line 3", "aws-focus.csv line 4"]);
}

struct Broken;

impl Read for Broken {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::ConnectionReset, "connection reset"))
    }
}

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
    }
}

#[test]
fn input_failures_are_io_errors() {
    let error = read_focus_csv(Broken, "remote.csv", |_, _| Ok(())).unwrap_err();
    assert_eq!(error.code(), "io");
    assert!(error.to_string().contains("remote.csv: cannot read: connection reset"), "{error}");
}

/// A charge as a CMS export to a tenant would carry it.
fn cms_charge() -> FocusCharge {
    FocusCharge {
        availability_zone: None,
        billed_cost: dec("12.3400"),
        billing_account_id: "tenant-42".into(),
        billing_account_name: Some("Fabrikam Ltd".into()),
        billing_account_type: Some("Tenant".into()),
        billing_currency: Currency::EUR,
        billing_period_end: at("2025-06-01T00:00:00Z"),
        billing_period_start: at("2025-05-01T00:00:00Z"),
        capacity_reservation_id: None,
        capacity_reservation_status: None,
        charge_category: ChargeCategory::Usage,
        charge_class: None,
        charge_description: Some("Base VM size, \"D2\" series, per hour".into()),
        charge_frequency: Some(ChargeFrequency::UsageBased),
        charge_period_end: at("2025-05-02T00:00:00Z"),
        charge_period_start: at("2025-05-01T00:00:00+00:00"),
        commitment_discount_category: None,
        commitment_discount_id: None,
        commitment_discount_name: None,
        commitment_discount_quantity: None,
        commitment_discount_status: None,
        commitment_discount_type: None,
        commitment_discount_unit: None,
        consumed_quantity: Some(dec("0.00000015")),
        consumed_unit: Some("Hours".into()),
        contracted_cost: dec("12.34"),
        contracted_unit_price: Some(dec("0.514166")),
        effective_cost: dec("12.34"),
        invoice_id: Some("INV-2025-05-0042".into()),
        invoice_issuer_name: "Contoso Cloud".into(),
        list_cost: dec("14.00"),
        list_unit_price: Some(dec("0.583333")),
        pricing_category: Some(PricingCategory::Standard),
        pricing_currency: None,
        pricing_currency_contracted_unit_price: None,
        pricing_currency_effective_cost: None,
        pricing_currency_list_unit_price: None,
        pricing_quantity: Some(dec("24")),
        pricing_unit: Some("Hours".into()),
        provider_name: "Contoso Cloud".into(),
        publisher_name: "Microsoft".into(),
        region_id: Some("local".into()),
        region_name: Some("Contoso Region 1".into()),
        resource_id: Some(
            "/subscriptions/s-1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1".into(),
        ),
        resource_name: Some("vm1".into()),
        resource_type: Some("Microsoft.Compute/virtualMachines".into()),
        service_category: ServiceCategory::Compute,
        service_name: "Virtual Machines".into(),
        service_subcategory: None,
        sku_id: Some("FAB5B53B-3F9C-4F5D-B0AC-D6F5A3C5B2E1".into()),
        sku_meter: Some("Base VM Size Hours".into()),
        sku_price_details: BTreeMap::new(),
        sku_price_id: None,
        sub_account_id: Some("s-1".into()),
        sub_account_name: Some("Fabrikam Production".into()),
        sub_account_type: Some("Subscription".into()),
        tags: BTreeMap::from([
            ("env".to_owned(), text("prod")),
            ("backup".to_owned(), JsonScalar::Bool(true)),
        ]),
        extensions: BTreeMap::from([
            ("x_DistributorId".to_owned(), "d-1".to_owned()),
            ("x_TenantId".to_owned(), "tenant-42".to_owned()),
            ("x_Unlisted".to_owned(), "not written".to_owned()),
        ]),
    }
}

#[test]
fn writer_spells_every_cell_as_focus_does() {
    let mut out = Vec::new();
    write_focus_csv([&cms_charge()], &CMS_EXTENSIONS, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    let mut expected_header: Vec<&str> = FOCUS_COLUMNS.to_vec();
    expected_header.extend(CMS_EXTENSIONS);
    assert_eq!(header, expected_header);
    assert!(
        text.starts_with("AvailabilityZone,BilledCost,BillingAccountId,"),
        "alphabetical, FOCUS columns first"
    );
    assert_eq!(text.lines().count(), 2);
    assert!(!text.contains('\r'));
    let row = reader.records().next().unwrap().unwrap();
    let cells: BTreeMap<&str, &str> = header.iter().map(String::as_str).zip(row.iter()).collect();
    let expected: &[(&str, &str)] = &[
        ("AvailabilityZone", ""),
        ("BilledCost", "12.3400"),
        ("BillingAccountId", "tenant-42"),
        ("BillingAccountName", "Fabrikam Ltd"),
        ("BillingAccountType", "Tenant"),
        ("BillingCurrency", "EUR"),
        ("BillingPeriodEnd", "2025-06-01T00:00:00Z"),
        ("BillingPeriodStart", "2025-05-01T00:00:00Z"),
        ("CapacityReservationId", ""),
        ("CapacityReservationStatus", ""),
        ("ChargeCategory", "Usage"),
        ("ChargeClass", ""),
        ("ChargeDescription", "Base VM size, \"D2\" series, per hour"),
        ("ChargeFrequency", "Usage-Based"),
        ("ChargePeriodEnd", "2025-05-02T00:00:00Z"),
        ("ChargePeriodStart", "2025-05-01T00:00:00Z"),
        ("CommitmentDiscountCategory", ""),
        ("CommitmentDiscountId", ""),
        ("CommitmentDiscountName", ""),
        ("CommitmentDiscountQuantity", ""),
        ("CommitmentDiscountStatus", ""),
        ("CommitmentDiscountType", ""),
        ("CommitmentDiscountUnit", ""),
        ("ConsumedQuantity", "0.00000015"),
        ("ConsumedUnit", "Hours"),
        ("ContractedCost", "12.34"),
        ("ContractedUnitPrice", "0.514166"),
        ("EffectiveCost", "12.34"),
        ("InvoiceId", "INV-2025-05-0042"),
        ("InvoiceIssuerName", "Contoso Cloud"),
        ("ListCost", "14.00"),
        ("ListUnitPrice", "0.583333"),
        ("PricingCategory", "Standard"),
        ("PricingCurrency", ""),
        ("PricingCurrencyContractedUnitPrice", ""),
        ("PricingCurrencyEffectiveCost", ""),
        ("PricingCurrencyListUnitPrice", ""),
        ("PricingQuantity", "24"),
        ("PricingUnit", "Hours"),
        ("ProviderName", "Contoso Cloud"),
        ("PublisherName", "Microsoft"),
        ("RegionId", "local"),
        ("RegionName", "Contoso Region 1"),
        (
            "ResourceId",
            "/subscriptions/s-1/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1",
        ),
        ("ResourceName", "vm1"),
        ("ResourceType", "Microsoft.Compute/virtualMachines"),
        ("ServiceCategory", "Compute"),
        ("ServiceName", "Virtual Machines"),
        ("ServiceSubcategory", ""),
        ("SkuId", "FAB5B53B-3F9C-4F5D-B0AC-D6F5A3C5B2E1"),
        ("SkuMeter", "Base VM Size Hours"),
        ("SkuPriceDetails", ""),
        ("SkuPriceId", ""),
        ("SubAccountId", "s-1"),
        ("SubAccountName", "Fabrikam Production"),
        ("SubAccountType", "Subscription"),
        ("Tags", r#"{"backup":true,"env":"prod"}"#),
        ("x_DistributorId", "d-1"),
        ("x_PartnerId", ""),
        ("x_TenantId", "tenant-42"),
    ];
    assert_eq!(expected.len(), cells.len());
    for (column, value) in expected {
        assert_eq!(cells[column], *value, "{column}");
    }
    assert!(text.contains(r#","Base VM size, ""D2"" series, per hour","#), "quoted as RFC 4180 asks");
}

#[test]
fn writer_refuses_what_it_cannot_write() {
    let charge = cms_charge();
    for (columns, name) in [(&["x_Ok", "TenantId"][..], "TenantId"), (&["x_Ok", "x_Ok"][..], "x_Ok")] {
        let error = write_focus_csv([&charge], columns, &mut Vec::new()).unwrap_err();
        assert_eq!(error.code(), "invalid_value");
        assert!(error.to_string().starts_with(&format!("FOCUS output: invalid value \"{name}\"")), "{error}");
    }

    let mut bad_number = cms_charge();
    bad_number.tags.insert("rank".into(), number("1,5"));
    let error = write_focus_csv([&charge, &bad_number], &[], &mut Vec::new()).unwrap_err();
    assert_eq!(error.code(), "invalid_value");
    assert!(
        error.to_string().starts_with("FOCUS output record 1: invalid value \"1,5\": Tags value of \"rank\""),
        "{error}"
    );

    let error = write_focus_csv([&charge], &CMS_EXTENSIONS, &mut Broken).unwrap_err();
    assert_eq!(error.code(), "io");
    assert!(error.to_string().contains("disk full"), "{error}");
}

// ---- properties --------------------------------------------------------------------------------------

fn text_value() -> impl Strategy<Value = String> {
    prop_oneof!["[a-zA-Z0-9 ,;:\"'/_.{}\\-\\n\\r\\t]{1,24}", "\\PC{1,12}",]
}

fn optional_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text_value())
}

fn decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        (any::<i64>(), 0u32..=28).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale)),
        ((-(1_i128 << 96) + 1)..(1_i128 << 96), 0u32..=28)
            .prop_map(|(mantissa, scale)| Decimal::from_i128_with_scale(mantissa, scale)),
    ]
}

fn optional_decimal() -> impl Strategy<Value = Option<Decimal>> {
    proptest::option::of(decimal())
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 0001-01-01 .. 9999-12-31, whole seconds.
    (-62_135_596_800_i64..253_402_300_800).prop_map(|seconds| DateTime::from_timestamp(seconds, 0).unwrap())
}

fn json_scalar() -> impl Strategy<Value = JsonScalar> {
    prop_oneof![
        text_value().prop_map(JsonScalar::String),
        "-?(0|[1-9][0-9]{0,12})(\\.[0-9]{1,8})?([eE][+-]?[0-9]{1,3})?".prop_map(JsonScalar::Number),
        any::<bool>().prop_map(JsonScalar::Bool),
        Just(JsonScalar::Null),
    ]
}

fn key_values() -> impl Strategy<Value = BTreeMap<String, JsonScalar>> {
    proptest::collection::btree_map("\\PC{0,10}", json_scalar(), 0..4)
}

prop_compose! {
    fn accounts()(
        billing_account_id in text_value(),
        billing_account_name in optional_text(),
        billing_account_type in optional_text(),
        sub_account_id in optional_text(),
        sub_account_name in optional_text(),
        sub_account_type in optional_text(),
        invoice_id in optional_text(),
        invoice_issuer_name in text_value(),
        provider_name in text_value(),
        publisher_name in text_value(),
    ) -> (
        String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>,
        Option<String>, String, String, String,
    ) {
        (billing_account_id, billing_account_name, billing_account_type, sub_account_id, sub_account_name,
         sub_account_type, invoice_id, invoice_issuer_name, provider_name, publisher_name)
    }
}

prop_compose! {
    fn charge_terms()(
        category in proptest::sample::select(ChargeCategory::ALL),
        class in proptest::option::of(Just(ChargeClass::Correction)),
        description in optional_text(),
        frequency in proptest::option::of(proptest::sample::select(ChargeFrequency::ALL)),
        instants in [instant(), instant(), instant(), instant()],
        currency in "[A-Z]{3}",
        pricing_currency in optional_text(),
    ) -> (ChargeCategory, Option<ChargeClass>, Option<String>, Option<ChargeFrequency>, [DateTime<Utc>; 4],
          Currency, Option<String>) {
        let currency = Currency::from_code(&currency).unwrap();
        (category, class, description, frequency, instants, currency, pricing_currency)
    }
}

prop_compose! {
    fn service()(
        category in proptest::sample::select(ServiceCategory::ALL),
        name in text_value(),
        subcategory in optional_text(),
        resource in [optional_text(), optional_text(), optional_text()],
        region in [optional_text(), optional_text(), optional_text()],
    ) -> (ServiceCategory, String, Option<String>, [Option<String>; 3], [Option<String>; 3]) {
        (category, name, subcategory, resource, region)
    }
}

prop_compose! {
    fn pricing()(
        sku in [optional_text(), optional_text(), optional_text()],
        details in key_values(),
        category in proptest::option::of(proptest::sample::select(PricingCategory::ALL)),
        quantities in [optional_decimal(), optional_decimal()],
        units in [optional_text(), optional_text()],
    ) -> ([Option<String>; 3], BTreeMap<String, JsonScalar>, Option<PricingCategory>, [Option<Decimal>; 2],
          [Option<String>; 2]) {
        (sku, details, category, quantities, units)
    }
}

prop_compose! {
    fn costs()(
        costs in [decimal(), decimal(), decimal(), decimal()],
        prices in [
            optional_decimal(), optional_decimal(), optional_decimal(),
            optional_decimal(), optional_decimal(),
        ],
    ) -> ([Decimal; 4], [Option<Decimal>; 5]) {
        (costs, prices)
    }
}

prop_compose! {
    fn commitments()(
        texts in [optional_text(), optional_text(), optional_text(), optional_text(), optional_text()],
        category in proptest::option::of(proptest::sample::select(CommitmentDiscountCategory::ALL)),
        statuses in [
            proptest::option::of(proptest::sample::select(UtilizationStatus::ALL)),
            proptest::option::of(proptest::sample::select(UtilizationStatus::ALL)),
        ],
        quantity in optional_decimal(),
    ) -> (
        [Option<String>; 5],
        Option<CommitmentDiscountCategory>,
        [Option<UtilizationStatus>; 2],
        Option<Decimal>,
    ) {
        (texts, category, statuses, quantity)
    }
}

prop_compose! {
    fn charge()(
        accounts in accounts(),
        terms in charge_terms(),
        service in service(),
        pricing in pricing(),
        costs in costs(),
        commitments in commitments(),
        tags in key_values(),
        extensions in proptest::collection::btree_map(
            proptest::sample::select(&CMS_EXTENSIONS[..]).prop_map(str::to_owned),
            text_value(),
            0..=3,
        ),
    ) -> FocusCharge {
        let (billing_account_id, billing_account_name, billing_account_type, sub_account_id, sub_account_name,
             sub_account_type, invoice_id, invoice_issuer_name, provider_name, publisher_name) = accounts;
        let (charge_category, charge_class, charge_description, charge_frequency, instants, billing_currency,
             pricing_currency) = terms;
        let [charge_period_start, charge_period_end, billing_period_start, billing_period_end] = instants;
        let (service_category, service_name, service_subcategory, resource, region) = service;
        let [resource_id, resource_name, resource_type] = resource;
        let [region_id, region_name, availability_zone] = region;
        let (skus, sku_price_details, pricing_category, quantities, units) = pricing;
        let [sku_id, sku_meter, sku_price_id] = skus;
        let [pricing_quantity, consumed_quantity] = quantities;
        let [pricing_unit, consumed_unit] = units;
        let ([billed_cost, effective_cost, list_cost, contracted_cost], prices) = costs;
        let [list_unit_price, contracted_unit_price, pricing_currency_list_unit_price,
             pricing_currency_contracted_unit_price, pricing_currency_effective_cost] = prices;
        let (texts, commitment_discount_category, statuses, commitment_discount_quantity) = commitments;
        let [
            commitment_discount_id,
            commitment_discount_name,
            commitment_discount_type,
            commitment_discount_unit,
            capacity_reservation_id,
        ] = texts;
        let [commitment_discount_status, capacity_reservation_status] = statuses;
        FocusCharge {
            availability_zone, billed_cost, billing_account_id, billing_account_name, billing_account_type,
            billing_currency, billing_period_end, billing_period_start, capacity_reservation_id,
            capacity_reservation_status, charge_category, charge_class, charge_description,
            charge_frequency, charge_period_end, charge_period_start, commitment_discount_category,
            commitment_discount_id, commitment_discount_name, commitment_discount_quantity,
            commitment_discount_status, commitment_discount_type, commitment_discount_unit,
            consumed_quantity, consumed_unit, contracted_cost, contracted_unit_price, effective_cost,
            invoice_id, invoice_issuer_name, list_cost, list_unit_price, pricing_category, pricing_currency,
            pricing_currency_contracted_unit_price, pricing_currency_effective_cost,
            pricing_currency_list_unit_price, pricing_quantity, pricing_unit, provider_name, publisher_name,
            region_id, region_name, resource_id, resource_name, resource_type, service_category,
            service_name, service_subcategory, sku_id, sku_meter, sku_price_details, sku_price_id,
            sub_account_id, sub_account_name, sub_account_type, tags, extensions,
        }
    }
}

/// The codes a bad value in a well-formed record may give.
const READ_VALUE_ERRORS: [&str; 5] =
    ["bad_decimal", "bad_timestamp", "invalid_value", "bad_record", "bad_json"];

/// Text that stresses the typed parsers: numbers, exponents, dates, JSON fragments, anything.
fn hostile_cell() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9eE+\\-._, ]{0,14}",
        concat!(
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?(\\.[0-9]{1,3})?",
            "(Z| UTC|[+-][0-9]{2}:?[0-9]{2})?"
        ),
        "[{}\\[\\]\":,a-z0-9. ]{0,20}",
        "\\PC{0,16}",
        proptest::sample::select(vec![
            "Usage",
            "tax",
            "Correction",
            "Usage-Based",
            "usd",
            "{}",
            "null",
            "1E28",
            "-0"
        ])
        .prop_map(str::to_owned),
    ]
}

proptest! {
    /// read(write(rows)) == rows, and writing what was read gives the same bytes.
    #[test]
    fn written_rows_read_back_equal(rows in proptest::collection::vec(charge(), 0..4)) {
        let mut bytes = Vec::new();
        write_focus_csv(&rows, &CMS_EXTENSIONS, &mut bytes).unwrap();
        let (read, summary) = read_all(&bytes, "round-trip.csv").unwrap();
        let read: Vec<FocusCharge> = read.into_iter().map(|(charge, _)| charge).collect();
        prop_assert_eq!(&read, &rows);
        prop_assert_eq!(summary.rows, u64::try_from(rows.len()).unwrap());
        prop_assert_eq!(summary.extension_columns, CMS_EXTENSIONS);
        let mut again = Vec::new();
        write_focus_csv(&read, &CMS_EXTENSIONS, &mut again).unwrap();
        prop_assert_eq!(again, bytes);
    }

    /// Arbitrary bytes never panic the reader.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = read_focus_csv(&bytes[..], "fuzz.csv", |_, _| Ok(()));
    }

    /// Random edits (replace, insert, delete bytes) of the provider exports never panic the reader.
    #[test]
    fn mutated_exports_never_panic(
        which in 0usize..3,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), 0u8..3, any::<u8>()), 1..24),
    ) {
        let mut bytes = [azure_bytes(), AWS.as_bytes().to_vec(), GCP.as_bytes().to_vec()][which].clone();
        for (index, operation, byte) in edits {
            if bytes.is_empty() {
                break;
            }
            let at = index.index(bytes.len());
            match operation {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        let _ = read_focus_csv(&bytes[..], "mutated.csv", |_, _| Ok(()));
    }

    /// Any text in any column of a well-formed file either reads or fails with an error that names line 2.
    #[test]
    fn hostile_cells_fail_cleanly(cells in proptest::collection::vec(hostile_cell(), 24)) {
        let mut header: Vec<&str> = MANDATORY_COLUMNS.to_vec();
        header.extend(["Tags", "CommitmentDiscountStatus", "x_Tenant"]);
        let mut writer = csv::WriterBuilder::new().from_writer(Vec::new());
        writer.write_record(&header).unwrap();
        writer.write_record(&cells).unwrap();
        let bytes = writer.into_inner().unwrap();
        if let Err(error) = read_focus_csv(&bytes[..], "cells.csv", |_, _| Ok(())) {
            prop_assert!(
                READ_VALUE_ERRORS.contains(&error.code()),
                "{}", error
            );
            prop_assert!(error.to_string().starts_with("cells.csv line 2: "), "{}", error);
        }
    }
}
