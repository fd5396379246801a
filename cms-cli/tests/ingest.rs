//! `cms ingest` as an operator runs it: page files, an exported folder, a live region (a local HTTP server
//! standing in for a stamp).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Run `cms`; an `ingest` without `--db` gets a fresh database of its own, so each call starts empty.
fn cms(args: &[&str]) -> Output {
    let scratch = tempfile::tempdir().unwrap();
    let db = scratch.path().join("cms.db");
    let mut command = Command::new(env!("CARGO_BIN_EXE_cms"));
    command.args(args);
    if args.first() == Some(&"ingest") && !args.contains(&"--db") {
        command.arg("--db").arg(&db);
    }
    command.output().expect("run cms")
}

/// A second `cms ingest` of the same pages into the same database stores nothing new, and the database
/// keeps what the first run stored.
#[test]
fn a_second_run_on_the_same_database_counts_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("usage.db");
    let (db, sample) = (db.to_str().unwrap(), sample());
    let sample = sample.to_str().unwrap();
    let first = json_summary(&cms(&["ingest", "pages", sample, "--json", "--db", db]));
    assert_eq!(first["stored"], 20);
    let second = json_summary(&cms(&["ingest", "pages", sample, "--json", "--db", db]));
    assert_eq!(second["stored"], 0);
    assert_eq!(second["duplicates"], 20);
    let out = dir.path().join("usage.csv");
    json_summary(&cms(&["ingest", "pages", "--json", "--db", db, "--out", out.to_str().unwrap(), sample]));
    assert_eq!(
        std::fs::read_to_string(out).unwrap().lines().count(),
        21,
        "the header and the 20 stored records"
    );
}

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/azure-stack-hub-sample-usage.json")
}

fn json_summary(output: &Output) -> Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("a JSON summary")
}

#[test]
fn pages_are_deduplicated_across_files_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("usage.csv");
    let sample = sample();
    let sample = sample.to_str().unwrap();
    let summary = json_summary(&cms(&[
        "ingest",
        "pages",
        sample,
        sample,
        "--json",
        "--out",
        out.to_str().unwrap(),
        "--exclude",
        "C41E8F73-6A2B-4D9C-B05E-8E3F1A7D4C33",
    ]));
    assert_eq!(summary["pages"], 2);
    assert_eq!(summary["received"], 40);
    assert_eq!(summary["excluded"], 12, "6 records of the excluded subscription on each page");
    assert_eq!(summary["stored"], 14);
    assert_eq!(summary["duplicates"], 14);
    assert_eq!(summary["double_counting"], 6, "VM size hours records (3 a page) are kept and flagged");
    assert_eq!(summary["unknown_subscriptions"].as_object().unwrap().len(), 2, "no channel given");
    let exported = std::fs::read_to_string(out).unwrap();
    assert_eq!(exported.lines().count(), 15);
    assert!(exported.starts_with("subscription_id,meter_id,usage_start_time,usage_end_time,quantity,resource_uri,location,cost,cost_currency\n"));
    assert!(
        exported.contains(",2025-03-10T12:00:00+00:00,2025-03-10T13:00:00+00:00,2,"),
        "the late bucket is kept with its usage hour"
    );
}

#[test]
fn a_bad_page_file_names_file_and_record() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("page-2.json");
    let text =
        std::fs::read_to_string(sample()).unwrap().replacen("\"quantity\": 2.0", "\"quantity\": \"two\"", 1);
    std::fs::write(&bad, text).unwrap();
    let output = cms(&["ingest", "pages", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error[bad_decimal]: ") && stderr.contains("page-2.json record 0"),
        "{stderr}"
    );
}

/// A stand-in stamp: metadata, token, and the sample page for every usage request. Records each request.
fn stamp() -> (String, Arc<Mutex<Vec<String>>>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (log, login) = (seen.clone(), base.clone());
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let url = request.url().to_owned();
            log.lock().unwrap().push(format!("{} {url}", request.method()));
            let body = if url.starts_with("/metadata/endpoints") {
                format!(
                    r#"{{"authentication":{{"loginEndpoint":"{login}/","audiences":["https://management.stamp/1"]}}}}"#
                )
            } else if url.contains("/oauth2/token") {
                r#"{"access_token":"token-1","token_type":"Bearer","expires_in":3600}"#.to_owned()
            } else {
                std::fs::read_to_string(sample()).unwrap().replace("\"nextLink\"", "\"ignored\"")
            };
            let header = tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
            let _ = request.respond(tiny_http::Response::from_string(body).with_header(header));
        }
    });
    (base, seen)
}

/// The region file of the stamp at `base` (region `east`, one subscriber, hourly), written into `dir`.
fn east_region(dir: &Path, base: &str, start: &str, window_hours: u32) -> PathBuf {
    let config = dir.join("east.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"region":"east","arm_endpoint":"{base}","provider_subscription":"0d6a7e9f-2b4c-4f8e-a1d3-9c5b7e2f6a44",
                "tenant":"contoso.onmicrosoft.com","client_id":"app","client_secret_env":"CMS_TEST_EAST_SECRET",
                "start":"{start}","subscribers":["3f2a6c1e-8b4d-4e1a-9c7f-2d5b8e0a1c11"],
                "granularity":"hourly","window_hours":{window_hours},"allow_http":true}}"#
        ),
    )
    .unwrap();
    config
}

#[test]
fn a_live_region_is_pulled_window_by_window_with_checkpoints() {
    let (base, seen) = stamp();
    let dir = tempfile::tempdir().unwrap();
    let config = east_region(dir.path(), &base, "2025-03-10T13:00:00Z", 1);
    let db = dir.path().join("cms.db");
    let pull = || {
        Command::new(env!("CARGO_BIN_EXE_cms"))
            .args([
                "ingest",
                "region",
                "--config",
                config.to_str().unwrap(),
                "--until",
                "2025-03-10T15:30:00Z",
            ])
            .args(["--json", "--db", db.to_str().unwrap()])
            .env("CMS_TEST_EAST_SECRET", "s3cret")
            .output()
            .unwrap()
    };
    let output = pull();
    let summary = json_summary(&output);
    assert_eq!(summary["pages"], 2, "two one-hour windows up to 15:00");
    assert_eq!((summary["stored"].as_u64(), summary["duplicates"].as_u64()), (Some(20), Some(20)));
    let checkpoints = summary["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), 2);
    assert_eq!(checkpoints[1]["reported_until"], "2025-03-10T15:00:00Z");
    assert_eq!(checkpoints[1]["region"], "east");
    let requests = seen.lock().unwrap().clone();
    let usage: Vec<_> = requests.iter().filter(|line| line.contains("subscriberUsageAggregates")).collect();
    assert_eq!(usage.len(), 2, "{requests:?}");
    assert!(usage[0].contains("subscriberId=3f2a6c1e-8b4d-4e1a-9c7f-2d5b8e0a1c11"), "{}", usage[0]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("s3cret"));

    // The checkpoints are in the database: a second pull up to the same instant asks for nothing.
    let again = json_summary(&pull());
    assert_eq!(again["pages"], 0, "{again}");
    let usage_requests =
        seen.lock().unwrap().iter().filter(|line| line.contains("subscriberUsageAggregates")).count();
    assert_eq!(usage_requests, 2, "no window is read twice");

    let missing_secret =
        cms(&["ingest", "region", "--config", config.to_str().unwrap(), "--until", "2025-03-10T15:30:00Z"]);
    assert_eq!(missing_secret.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing_secret.stderr).contains("client_secret_env"));
}

#[test]
fn focus_files_are_ingested_as_pass_through_charges() {
    let dir = tempfile::tempdir().unwrap();
    let focus = dir.path().join("aws.csv");
    let header = "BilledCost,BillingAccountId,BillingAccountName,BillingCurrency,BillingPeriodEnd,BillingPeriodStart,\
ChargeCategory,ChargeClass,ChargeDescription,ChargePeriodEnd,ChargePeriodStart,ContractedCost,EffectiveCost,\
InvoiceIssuerName,ListCost,PricingQuantity,PricingUnit,ProviderName,PublisherName,ServiceCategory,ServiceName,\
SubAccountId,ConsumedQuantity,ConsumedUnit";
    let row = |cost: &str, category: &str, day: u32| {
        format!(
            "{cost},111122223333,Payer,USD,2026-11-01T00:00:00Z,2026-10-01T00:00:00Z,{category},,m5.large,\
             2026-10-{:02}T00:00:00Z,2026-10-{day:02}T00:00:00Z,{cost},{cost},AWS,{cost},24,Hrs,AWS,AWS,Compute,EC2,444455556666,24,Hrs",
            day + 1
        )
    };
    std::fs::write(
        &focus,
        format!(
            "{header}\n{}\n{}\n{}\n",
            row("10.00", "Usage", 1),
            row("10.00", "Usage", 2),
            row("1.80", "Tax", 2)
        ),
    )
    .unwrap();
    let out = dir.path().join("usage.csv");
    let summary = json_summary(&cms(&[
        "ingest",
        "focus",
        focus.to_str().unwrap(),
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert_eq!((summary["received"].as_u64(), summary["stored"].as_u64()), (Some(3), Some(2)));
    assert_eq!(summary["tax_rows_skipped"], 1);
    let exported = std::fs::read_to_string(out).unwrap();
    assert!(exported.contains(",10.00,USD\n") || exported.contains(",10,USD\n"), "{exported}");
    let again =
        json_summary(&cms(&["ingest", "focus", focus.to_str().unwrap(), focus.to_str().unwrap(), "--json"]));
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(2), Some(2)),
        "the second file repeats the first"
    );
}

fn focus_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/focus").join(name)
}

/// The exported usage CSV with decimals compared by value (a Parquet DECIMAL or DOUBLE column carries its
/// own scale: `74.4000000000` or `74.4` where the CSV export wrote `74.40`).
fn by_value(exported: &str) -> Vec<String> {
    let number = |cell: &str| {
        if cell.contains('.') && cell.trim_start_matches('-').chars().all(|c| c.is_ascii_digit() || c == '.')
        {
            cell.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            cell.to_owned()
        }
    };
    exported.lines().map(|line| line.split(',').map(number).collect::<Vec<_>>().join(",")).collect()
}

/// A FOCUS Parquet export goes into the SQLite database exactly as the same data as CSV does: the same
/// summary and the same stored records; a file is told Parquet by its magic bytes, whatever its name.
#[test]
fn focus_parquet_files_are_ingested_like_their_csv() {
    let dir = tempfile::tempdir().unwrap();
    let ingest = |file: PathBuf, label: &str| {
        let db = dir.path().join(format!("{label}.db"));
        let out = dir.path().join(format!("{label}.csv"));
        let summary = json_summary(&cms(&[
            "ingest",
            "focus",
            file.to_str().unwrap(),
            "--json",
            "--db",
            db.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]));
        (summary, by_value(&std::fs::read_to_string(out).unwrap()))
    };
    let (csv_summary, csv_usage) = ingest(focus_fixture("aws-focus.csv"), "csv");
    assert_eq!((csv_summary["received"].as_u64(), csv_summary["stored"].as_u64()), (Some(5), Some(4)));
    assert_eq!(csv_summary["tax_rows_skipped"], 1);
    assert_eq!(csv_usage.len(), 5, "a header and the four charges");
    let unnamed = dir.path().join("aws-export");
    std::fs::copy(focus_fixture("aws-focus.decimal-us-local.snappy.parquet"), &unnamed).unwrap();
    for (file, label) in [(focus_fixture("aws-focus.parquet"), "gzip-double"), (unnamed, "no-extension")] {
        let (summary, usage) = ingest(file, label);
        assert_eq!(summary, csv_summary, "{label}");
        assert_eq!(usage, csv_usage, "{label}");
    }
    assert!(csv_usage.iter().any(|line| line.ends_with(",74.4,USD")), "{csv_usage:?}");

    let whole = std::fs::read(focus_fixture("gcp-focus.parquet")).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    let output = cms(&["ingest", "focus", cut.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error[bad_record]: cut.parquet: bad record: truncated Parquet file"),
        "{stderr}"
    );
}

#[test]
fn month_end_exports_focus_per_issuing_level() {
    let case_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/month_end.json");
    let document: Value = serde_json::from_slice(&std::fs::read(case_path).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in document["cases"][0]["files"].as_object().unwrap() {
        std::fs::write(dir.path().join(name), contents.as_str().unwrap()).unwrap();
    }
    let focus = dir.path().join("focus");
    let output = cms(&[
        "month-end",
        "--data",
        dir.path().to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
        "--focus-out",
        focus.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut files: Vec<String> = std::fs::read_dir(&focus)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "focus-dist-a.csv",
            "focus-dist-b.csv",
            "focus-partner-x.csv",
            "focus-partner-y.csv",
            "focus-partner-z.csv",
            "focus-platform.csv"
        ]
    );
    let platform = std::fs::read_to_string(focus.join("focus-platform.csv")).unwrap();
    assert_eq!(platform.lines().count(), 6, "a header and the five invoice lines");
    assert!(
        platform
            .lines()
            .next()
            .unwrap()
            .ends_with("x_DistributorId,x_PartnerId,x_TenantId,x_PriceList,x_MeterId,x_LineKind")
    );
    let partner = std::fs::read_to_string(focus.join("focus-partner-x.csv")).unwrap();
    assert_eq!(partner.lines().count(), 3, "partner x issues the lines of t1 and t2");
}

/// The first month-end vector's files written into `dir`.
fn write_month_end_case(dir: &std::path::Path) {
    let case_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/month_end.json");
    let document: Value = serde_json::from_slice(&std::fs::read(case_path).unwrap()).unwrap();
    for (name, contents) in document["cases"][0]["files"].as_object().unwrap() {
        std::fs::write(dir.join(name), contents.as_str().unwrap()).unwrap();
    }
}

/// A page file larger than the page limit is refused from its length, naming the file, by `cms ingest
/// pages` and by `cms month-end --pages`; it is never read whole (the file is sparse: 16 GiB on paper).
#[test]
fn oversized_page_files_are_refused_from_their_length() {
    let limit = cms_core::formats::usage_api::MAX_PAGE_BYTES as u64;
    let dir = tempfile::tempdir().unwrap();
    write_month_end_case(dir.path());
    let pages = dir.path().join("pages");
    std::fs::create_dir(&pages).unwrap();
    std::fs::write(pages.join("page-000000.json"), r#"{"value":[]}"#).unwrap();
    for (length, expected) in [
        (limit + 1, format!("page of {} bytes", limit + 1)),
        (16 << 30, "page of 17179869184 bytes".to_owned()),
    ] {
        let oversized = pages.join("page-000001.json");
        std::fs::File::create(&oversized).unwrap().set_len(length).unwrap();
        let output = cms(&["ingest", "pages", oversized.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let named = format!(
            "error[bad_json]: {}: bad JSON: {expected} exceeds the limit of {limit} bytes",
            oversized.display()
        );
        assert!(stderr.starts_with(&named), "{stderr}");

        let output = cms(&[
            "month-end",
            "--data",
            dir.path().to_str().unwrap(),
            "--pages",
            pages.to_str().unwrap(),
            "--out",
            dir.path().join("out").to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.starts_with(&format!(
                "error[bad_json]: page-000001.json: bad JSON: {expected} exceeds the limit"
            )),
            "{stderr}"
        );
    }
}

/// One hour (or day, `hours` 24) of `quantity` of `meter` for subscription `sub`, as a Usage API record.
fn usage_record(sub: &str, meter: &str, start: &str, hours: i64, quantity: &str) -> String {
    let start_at = chrono::DateTime::parse_from_rfc3339(start).unwrap();
    let end = (start_at + chrono::TimeDelta::hours(hours)).to_rfc3339();
    format!(
        r#"{{"type":"Microsoft.Commerce.Admin/UsageAggregate","properties":{{"subscriptionId":"{sub}","usageStartTime":"{start}","usageEndTime":"{end}","meterId":"{meter}","quantity":{quantity},"instanceData":"{{\"Microsoft.Resources\":{{\"resourceUri\":\"/subscriptions/{sub}/vm\",\"location\":\"local\"}}}}"}}}}"#
    )
}

/// The cells of a table line (`│ a ┆ b │`), or nothing for a border line.
fn cells(line: &str) -> Vec<&str> {
    let line = line.trim();
    if !line.starts_with('│') {
        return Vec::new();
    }
    line.trim_matches('│').split('┆').map(str::trim).collect()
}

/// The value of the summary table's row `label`, or `None` without that row.
fn table_row<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines().map(cells).find_map(|cells| (cells.len() == 2 && cells[0] == label).then(|| cells[1]))
}

/// The text summary of `cms ingest` counts what happened to each record: a correction, a late record of a
/// closed (invoiced) period, a refused record and an unknown meter, in the table and in `--json`.
#[test]
fn the_summary_table_counts_corrections_late_refused_and_unknown_meters() {
    const VM: &str = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5";
    const UNKNOWN: &str = "00000000-0000-4000-8000-0000000000AA";
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cms.db");
    let db = db.to_str().unwrap();
    let write = |name: &str, records: &[String]| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!(r#"{{"value":[{}]}}"#, records.join(","))).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let march = write("march.json", &[usage_record("sub-1", VM, "2025-03-10T13:00:00+00:00", 1, "1")]);
    let first = json_summary(&cms(&["ingest", "pages", &march, "--json", "--db", db]));
    assert_eq!(first["stored"], 1);
    // Invoicing March closes it.
    let issue = cms(&["invoice", "issue", "--period", "2025-03", "--db", db]);
    assert!(issue.status.success(), "{}", String::from_utf8_lossy(&issue.stderr));

    let later = write(
        "later.json",
        &[
            // The March record again, corrected: 1 -> 3.
            usage_record("sub-1", VM, "2025-03-10T13:00:00+00:00", 1, "3"),
            // A new March hour, reported after March was invoiced.
            usage_record("sub-1", VM, "2025-03-10T14:00:00+00:00", 1, "2"),
            // April: an hour of a meter nobody knows, then a day of sub-1 mixing granularities.
            usage_record("sub-1", UNKNOWN, "2025-04-01T00:00:00+00:00", 1, "5"),
            usage_record("sub-1", VM, "2025-04-02T00:00:00+00:00", 24, "24"),
        ],
    );
    let output = cms(&["ingest", "pages", &later, "--db", db]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let row = |label: &str| table_row(&text, label).unwrap_or_else(|| panic!("no row {label:?} in\n{text}"));
    assert_eq!(row("pages"), "1");
    assert_eq!(row("records received"), "4");
    assert_eq!(row("stored (new)"), "2");
    assert_eq!(row("duplicates"), "0");
    assert_eq!(row("corrections"), "1");
    // Both March records are late: the new hour, and the correction of an invoiced one.
    assert_eq!(row("late (adjustments of closed periods)"), "2");
    assert_eq!(row("refused"), "1");
    assert_eq!(row("unknown meters (kept)"), "1");
    assert_eq!(row("subscriptions not in the channel (kept)"), "3");
    // The detail tables name them.
    assert!(text.contains("Refused records (first 20):") && text.contains("mixed_granularity"), "{text}");
    let refused_line = text.lines().find(|line| line.contains("mixed_granularity")).unwrap();
    assert!(refused_line.contains("later.json record 3"), "{refused_line}");
    let unknown = text.lines().skip_while(|line| !line.starts_with("Unknown meters:"));
    assert_eq!(table_row(&unknown.collect::<Vec<_>>().join("\n"), UNKNOWN), Some("1"));
    let correction = text.lines().map(cells).find(|cells| cells.first() == Some(&"sub-1")).unwrap();
    assert_eq!(correction, ["sub-1", VM, "2025-03-10T13:00:00+00:00", "1", "3"]);

    // The same counts as JSON, on a fresh database holding the same history.
    let fresh = dir.path().join("fresh.db");
    let fresh = fresh.to_str().unwrap();
    json_summary(&cms(&["ingest", "pages", &march, "--json", "--db", fresh]));
    assert!(cms(&["invoice", "issue", "--period", "2025-03", "--db", fresh]).status.success());
    let summary = json_summary(&cms(&["ingest", "pages", &later, "--json", "--db", fresh]));
    assert_eq!((summary["received"].as_u64(), summary["stored"].as_u64()), (Some(4), Some(2)));
    assert_eq!(summary["corrections"].as_array().unwrap().len(), 1);
    assert_eq!(summary["late_adjustments"], 2);
    assert_eq!(summary["refused"].as_array().unwrap().len(), 1);
    assert_eq!(summary["refused"][0]["code"], "mixed_granularity");
    assert_eq!(summary["unknown_meters"].as_object().unwrap().len(), 1);
}

/// `cms ingest focus --map` bills each mapped account to its subscription: Azure's `/subscriptions/<guid>`
/// lands on the channel's `<guid>`; without the map the account id is the subscription.
#[test]
fn focus_accounts_are_mapped_to_subscriptions() {
    let dir = tempfile::tempdir().unwrap();
    let header = "BilledCost,BillingAccountId,BillingAccountName,BillingCurrency,BillingPeriodEnd,BillingPeriodStart,\
ChargeCategory,ChargeClass,ChargeDescription,ChargePeriodEnd,ChargePeriodStart,ContractedCost,EffectiveCost,\
InvoiceIssuerName,ListCost,PricingQuantity,PricingUnit,ProviderName,PublisherName,ServiceCategory,ServiceName,\
SubAccountId,ConsumedQuantity,ConsumedUnit";
    let row = |account: &str| {
        format!(
            "4.00,ea-1234,Contoso EA,USD,2026-11-01T00:00:00Z,2026-10-01T00:00:00Z,Usage,,D2s v3,\
             2026-10-02T00:00:00Z,2026-10-01T00:00:00Z,4.00,4.00,Microsoft,4.00,24,Hours,Microsoft,Microsoft,\
             Compute,Virtual Machines,{account},24,Hours"
        )
    };
    let focus = dir.path().join("azure.csv");
    std::fs::write(
        &focus,
        format!(
            "{header}\n{}\n{}\n",
            row("/subscriptions/0BB4DB71-BE57-4209-851D-3D24F4C0CF83"),
            row("other-sub")
        ),
    )
    .unwrap();
    let map = dir.path().join("accounts.csv");
    std::fs::write(
        &map,
        "account,subscription\n/subscriptions/0bb4db71-be57-4209-851d-3d24f4c0cf83,0bb4db71-be57-4209-851d-3d24f4c0cf83\n",
    )
    .unwrap();
    let ingest = |extra: &[&str], label: &str| {
        let out = dir.path().join(format!("{label}.csv"));
        let mut args =
            vec!["ingest", "focus", focus.to_str().unwrap(), "--json", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        let summary = json_summary(&cms(&args));
        let exported = std::fs::read_to_string(out).unwrap();
        let mut subscriptions: Vec<String> =
            exported.lines().skip(1).map(|line| line.split(',').next().unwrap().to_owned()).collect();
        subscriptions.sort();
        (summary, subscriptions)
    };
    let (summary, subscriptions) = ingest(&["--map", map.to_str().unwrap()], "mapped");
    assert_eq!(summary["stored"], 2);
    assert_eq!(subscriptions, ["0bb4db71-be57-4209-851d-3d24f4c0cf83", "other-sub"]);
    let (_, subscriptions) = ingest(&[], "plain");
    assert_eq!(subscriptions, ["/subscriptions/0BB4DB71-BE57-4209-851D-3D24F4C0CF83", "other-sub"]);

    // A map that maps one account twice, differently, is refused naming its line.
    std::fs::write(&map, "account,subscription\nA,s1\na,s2\n").unwrap();
    let output = cms(&["ingest", "focus", focus.to_str().unwrap(), "--map", map.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with(&format!("error[invalid_value]: {} line 3", map.display())), "{stderr}");
}

/// Without `--until`, a region pull stops at the start of the current UTC day: windows ending today may still
/// be processing (the API flags them so), and a checkpoint past them would not read them again.
#[test]
fn a_region_pull_without_until_stops_at_the_start_of_the_day() {
    let midnight = || chrono::Utc::now().date_naive().and_time(chrono::NaiveTime::MIN).and_utc();
    let before = midnight();
    let start = before - chrono::TimeDelta::days(2);
    let (base, seen) = stamp();
    let dir = tempfile::tempdir().unwrap();
    let config = east_region(dir.path(), &base, &start.to_rfc3339(), 24);
    let db = dir.path().join("cms.db");
    let output = Command::new(env!("CARGO_BIN_EXE_cms"))
        .args([
            "ingest",
            "region",
            "--config",
            config.to_str().unwrap(),
            "--json",
            "--db",
            db.to_str().unwrap(),
        ])
        .env("CMS_TEST_EAST_SECRET", "s3cret")
        .output()
        .unwrap();
    let after = midnight();
    let summary = json_summary(&output);
    let ends: Vec<chrono::DateTime<chrono::Utc>> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains("subscriberUsageAggregates"))
        .map(|line| {
            let query = line.split_once('?').unwrap().1;
            let value = query.split('&').find_map(|pair| pair.strip_prefix("reportedEndTime=")).unwrap();
            let value = value.replace("%3A", ":").replace("%3a", ":").replace("%2B", "+").replace("%2b", "+");
            chrono::DateTime::parse_from_rfc3339(&value).unwrap().to_utc()
        })
        .collect();
    // Two one-day windows up to midnight (or, should the test run across midnight, three).
    assert!(ends.len() == 2 || (ends.len() == 3 && after != before), "{ends:?}");
    assert_eq!(ends[0], start + chrono::TimeDelta::days(1));
    let last = *ends.last().unwrap();
    assert!(last == before || last == after, "{last} is the start of the day the pull ran");
    let checkpoints = summary["checkpoints"].as_array().unwrap();
    let until = checkpoints.last().unwrap()["reported_until"].as_str().unwrap();
    assert_eq!(chrono::DateTime::parse_from_rfc3339(until).unwrap().to_utc(), last);
}
