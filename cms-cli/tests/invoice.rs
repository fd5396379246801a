//! `cms invoice`, `cms commission statement` and `cms showback` as a user runs them, on the demo's database
//! (a channel with March 2025 rated and closed, April 2025 rated and open).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cms_core::Decimal;
use cms_core::billing::invoice::content_hash;
use cms_core::engine::INVOICE_DOCUMENT;
use cms_core::model::money::parse_decimal;
use cms_core::store::{Document, Store};
use serde_json::Value;

fn cms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cms")).args(args).output().expect("run cms")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `cms ARGS --db DB`, which must succeed; its standard output.
fn run(db: &Path, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--db", db.to_str().unwrap()]);
    let output = cms(&all);
    assert!(output.status.success(), "cms {}: {}", args.join(" "), stderr(&output));
    stdout(&output)
}

/// `cms ARGS --db DB` parsed as JSON.
fn run_json(db: &Path, args: &[&str]) -> Value {
    let text = run(db, args);
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("cms {}: {error}: {text}", args.join(" ")))
}

/// A fresh database with the demo run on it.
fn demo() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    let output = cms(&["demo", "--db", db.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    (dir, db)
}

/// A decimal sent as a JSON string (never a number).
fn decimal(value: &Value) -> Decimal {
    let text = value.as_str().unwrap_or_else(|| panic!("a decimal as a string, got {value}"));
    parse_decimal(text).unwrap_or_else(|| panic!("bad decimal {text:?}"))
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or_else(|| panic!("{field} is not a string in {value}"))
}

/// Total = the lines' amounts + the taxes' amounts, exactly; returns the total.
fn check_adds_up(document: &Value) -> Decimal {
    let lines: Decimal =
        document["lines"].as_array().unwrap().iter().map(|line| decimal(&line["amount"])).sum();
    let taxes: Decimal =
        document["taxes"].as_array().unwrap().iter().map(|tax| decimal(&tax["amount"])).sum();
    for tax in document["taxes"].as_array().unwrap() {
        decimal(&tax["rate"]);
    }
    let total = decimal(&document["total"]);
    assert!(!document["lines"].as_array().unwrap().is_empty(), "{document}");
    assert_eq!(lines + taxes, total, "lines + taxes = total: {document}");
    assert_eq!(decimal(&document["subtotal"]), lines, "{document}");
    total
}

fn array(value: &Value) -> &Vec<Value> {
    value.as_array().unwrap_or_else(|| panic!("a JSON array, got {value}"))
}

/// The listed documents of `period`.
fn of_period<'a>(listed: &'a Value, period: &str) -> Vec<&'a Value> {
    array(listed).iter().filter(|entry| entry["period"] == period).collect()
}

/// Drafts previewed, issued once (a second run issues nothing), listed as issued with numbers and totals
/// that add up; a void issues a credit note of the negated total, marks the invoice voided and brings its
/// buyer's draft back; the JSON of `show` is the hashed body; `verify` counts every document.
#[test]
fn preview_issue_list_void_show_verify() {
    let (_dir, db) = demo();

    let drafts = run_json(&db, &["invoice", "preview", "--period", "2025-04", "--format", "json"]);
    let drafts = array(&drafts);
    assert_eq!(drafts.len(), 4, "three tenants and the reseller: {drafts:?}");
    let mut draft_totals = BTreeMap::new();
    for draft in drafts {
        assert!(draft["number"].is_null(), "a draft has no number: {draft}");
        assert_eq!(draft["period"], "2025-04");
        assert_eq!(draft["currency"], "USD");
        draft_totals.insert(text(draft, "buyer").to_owned(), check_adds_up(draft));
    }
    assert_eq!(draft_totals["tenant-adatum"], parse_decimal("59.91").unwrap());
    assert_eq!(draft_totals["tenant-woodgrove"], parse_decimal("197.63").unwrap());
    let only = run_json(
        &db,
        &["invoice", "preview", "--period", "2025-04", "--tenant", "tenant-adatum", "--format", "json"],
    );
    assert_eq!(array(&only).len(), 1);
    assert_eq!(only[0]["buyer"], "tenant-adatum");
    let table = run(&db, &["invoice", "preview", "--period", "2025-04", "--tenant", "tenant-adatum"]);
    assert!(table.contains("Invoice DRAFT 2025-04 from Northwind Distribution to Adatum Web"), "{table}");
    assert!(table.contains("59.91"), "{table}");
    let markdown = run(&db, &["invoice", "preview", "--period", "2025-04", "--format", "markdown"]);
    assert_eq!(markdown.matches("# Invoice DRAFT").count(), 4, "{markdown}");
    let csv = run(&db, &["invoice", "preview", "--period", "2025-04", "--format", "csv"]);
    assert!(csv.starts_with("number,kind,period,issuer,buyer,currency,"), "{csv}");

    let issued = run(&db, &["invoice", "issue", "--period", "2025-04"]);
    assert!(issued.contains("Issued 4 document(s) for 2025-04"), "{issued}");
    for number in
        ["dist-northwind-000001", "dist-northwind-000002", "dist-northwind-000003", "platform-000001"]
    {
        assert!(issued.contains(number), "{number} in {issued}");
    }
    assert!(issued.contains("59.91 USD") && issued.contains("197.63 USD"), "{issued}");
    let again = run(&db, &["invoice", "issue", "--period", "2025-04"]);
    assert_eq!(again.trim(), "nothing to issue for 2025-04");
    let nothing = run_json(&db, &["invoice", "preview", "--period", "2025-04", "--format", "json"]);
    assert!(array(&nothing).is_empty(), "no draft left: {nothing}");

    let listed = run_json(&db, &["invoice", "list", "--format", "json"]);
    let april = of_period(&listed, "2025-04");
    assert_eq!(april.len(), 4, "{listed}");
    let mut numbers = BTreeMap::new();
    for entry in &april {
        assert_eq!(entry["state"], "issued", "{entry}");
        assert_eq!(entry["kind"], "invoice");
        assert_eq!(entry["currency"], "USD");
        assert_eq!(entry["hash"].as_str().map(str::len), Some(64), "{entry}");
        let tenant = text(entry, "tenant");
        let total = check_adds_up(entry);
        assert_eq!(total, draft_totals[tenant], "issued as previewed: {tenant}");
        numbers.insert(tenant.to_owned(), text(entry, "number").to_owned());
    }
    assert_eq!(numbers["tenant-adatum"], "dist-northwind-000001");
    // March, closed by the demo, still has its drafts: listed, with no number.
    let march = of_period(&listed, "2025-03");
    assert_eq!(march.len(), 4);
    assert!(march.iter().all(|entry| entry["state"] == "draft" && entry["number"].is_null()), "{listed}");

    // March issues too, continuing each issuer's sequence.
    let issued = run(&db, &["invoice", "issue", "--period", "2025-03"]);
    assert!(issued.contains("dist-northwind-000004") && issued.contains("platform-000002"), "{issued}");
    let listed = run_json(&db, &["invoice", "list", "--period", "2025-03", "--format", "json"]);
    assert_eq!(array(&listed).len(), 4);
    assert!(array(&listed).iter().all(|entry| entry["state"] == "issued"), "{listed}");

    let adatum = numbers["tenant-adatum"].as_str();
    let voided = run(&db, &["invoice", "void", adatum, "--reason", "billed to the wrong address"]);
    assert!(
        voided.contains(&format!("Voided {adatum} by credit note dist-northwind-000007: -59.91 USD")),
        "{voided}"
    );
    let listed = run_json(&db, &["invoice", "list", "--period", "2025-04", "--format", "json"]);
    let find = |number: &str| array(&listed).iter().find(|entry| entry["number"] == number).unwrap().clone();
    let invoice = find(adatum);
    assert_eq!(invoice["state"], "voided");
    assert_eq!(invoice["voided_by"], "dist-northwind-000007");
    let note = find("dist-northwind-000007");
    assert_eq!(note["kind"], "credit_note");
    assert_eq!(note["corrects"], adatum);
    assert_eq!(note["reason"], "billed to the wrong address");
    assert_eq!(check_adds_up(&note), -draft_totals["tenant-adatum"]);
    let redrafted: Vec<&Value> = array(&listed).iter().filter(|entry| entry["state"] == "draft").collect();
    assert_eq!(redrafted.len(), 1, "the voided buyer's draft is back: {listed}");
    assert_eq!(redrafted[0]["tenant"], "tenant-adatum");
    assert_eq!(check_adds_up(redrafted[0]), draft_totals["tenant-adatum"]);
    let twice = cms(&["invoice", "void", adatum, "--reason", "again", "--db", db.to_str().unwrap()]);
    assert_eq!(twice.status.code(), Some(2), "{}", stdout(&twice));
    assert!(stderr(&twice).starts_with("error[invalid_value]: "), "{}", stderr(&twice));

    let body = run(&db, &["invoice", "show", adatum, "--format", "json"]);
    assert_eq!(
        content_hash(body.trim_end_matches('\n')),
        text(&invoice, "hash"),
        "show prints the hashed body"
    );
    let shown = run(&db, &["invoice", "show", "dist-northwind-000007"]);
    assert!(shown.starts_with("# Credit note dist-northwind-000007"), "{shown}");
    assert!(shown.contains(&format!("- Corrects: {adatum}")) && shown.contains("**-59.91**"), "{shown}");

    let verified = run(&db, &["invoice", "verify"]);
    assert_eq!(verified.trim(), "9 documents intact");
    let text_list = run(&db, &["invoice", "list"]);
    assert!(text_list.contains("voided by dist-northwind-000007"), "{text_list}");
}

/// An issued body altered in the store is named by `verify`, which exits 2.
#[test]
fn verify_names_an_altered_document() {
    let (_dir, db) = demo();
    run(&db, &["invoice", "issue", "--period", "2025-04", "--tenant", "tenant-woodgrove"]);
    let listed = run_json(&db, &["invoice", "list", "--period", "2025-04", "--format", "json"]);
    let woodgrove = array(&listed).iter().find(|entry| entry["state"] == "issued").unwrap();
    assert_eq!(woodgrove["tenant"], "tenant-woodgrove", "only the tenant named was issued: {listed}");
    let number = text(woodgrove, "number");
    let key = format!("2025-04/{}/{}/{number}", text(woodgrove, "issuer"), text(woodgrove, "buyer"));
    let body = run(&db, &["invoice", "show", number, "--format", "json"]);
    {
        let mut store = cms_sqlite::SqliteStore::open(&db).unwrap();
        let altered = body.trim_end().replace("\"197.63\"", "\"97.63\"");
        assert_ne!(altered, body.trim_end());
        store.put_documents(&[Document { kind: INVOICE_DOCUMENT.into(), key, body: altered }]).unwrap();
    }
    let output = cms(&["invoice", "verify", "--db", db.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(message.starts_with("error[store]: "), "{message}");
    assert!(message.contains("1 of 1 issued document(s) altered or missing"), "{message}");
    assert!(message.contains(number), "{message}");
}

/// Commission statements of the month the invoices were issued in (now): shares add up to each
/// commission, and revenue = commissions + overrides + retained, to the cent.
#[test]
fn commission_statement_of_the_issuing_month() {
    let (_dir, db) = demo();
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let before = run_json(&db, &["commission", "statement", "--period", &month, "--format", "json"]);
    assert!(array(&before["statements"]).is_empty(), "nothing issued yet: {before}");
    run(&db, &["invoice", "issue", "--period", "2025-04"]);
    let report = run_json(&db, &["commission", "statement", "--period", &month, "--format", "json"]);
    assert_eq!(report["period"], month.as_str());
    let statements = array(&report["statements"]);
    let partners: Vec<&str> = statements.iter().map(|statement| text(statement, "partner")).collect();
    assert_eq!(partners, ["partner-contoso", "partner-fabrikam"], "{report}");
    for statement in statements {
        let shares: Decimal =
            array(&statement["tenants"]).iter().map(|share| decimal(&share["amount"])).sum();
        assert_eq!(shares, decimal(&statement["commission"]), "{statement}");
        assert!(decimal(&statement["commission"]) > Decimal::ZERO, "{statement}");
    }
    // The tenants' April invoices: 59.91 + 25.52 + 197.63.
    let totals = &array(&report["totals"])[0];
    assert_eq!(decimal(&totals["revenue"]), parse_decimal("283.06").unwrap());
    assert_eq!(
        decimal(&totals["revenue"]),
        decimal(&totals["commissions"]) + decimal(&totals["overrides"]) + decimal(&totals["retained"])
    );
    let text_report =
        run(&db, &["commission", "statement", "--period", &month, "--partner", "partner-contoso"]);
    assert!(text_report.contains("Contoso Cloud Partners (partner-contoso)"), "{text_report}");
    assert!(!text_report.contains("Fabrikam Solutions"), "{text_report}");
    assert!(text_report.contains("tenant-adatum"), "per-tenant shares: {text_report}");
    // March's documents were issued this month too, not in March 2025: nothing there.
    let march = run_json(&db, &["commission", "statement", "--period", "2025-03", "--format", "json"]);
    assert!(array(&march["statements"]).is_empty(), "{march}");
}

/// Showback of April: every department's total, summing to the tenant invoices; the journal balances.
#[test]
fn showback_and_journal() {
    let (_dir, db) = demo();
    let report = run_json(&db, &["showback", "--period", "2025-04", "--format", "json"]);
    let departments = array(&report["departments"]);
    let tenants: Vec<&str> = departments.iter().map(|department| text(department, "tenant")).collect();
    assert_eq!(tenants, ["tenant-adatum", "tenant-tailspin", "tenant-woodgrove"]);
    let sum: Decimal = departments.iter().map(|department| decimal(&department["total"])).sum();
    assert_eq!(sum, decimal(&report["total"]));
    assert_eq!(decimal(&report["total"]), parse_decimal("283.06").unwrap());
    let journal = run(&db, &["showback", "--period", "2025-04", "--journal"]);
    let mut lines = journal.lines();
    assert_eq!(lines.next(), Some("period,document,account,cost_centre,debit,credit,memo"));
    let (mut debits, mut credits) = (Decimal::ZERO, Decimal::ZERO);
    let mut count = 0;
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        debits += parse_decimal(fields[4]).unwrap();
        credits += parse_decimal(fields[5]).unwrap();
        count += 1;
    }
    assert_eq!(count, 6, "a debit and a credit per department: {journal}");
    assert_eq!(debits, credits);
    assert_eq!(debits, parse_decimal("283.06").unwrap());
    assert_eq!(run(&db, &["showback", "--period", "2025-04", "--format", "csv"]), journal);
    let tables = run(&db, &["showback", "--period", "2025-04"]);
    assert!(tables.contains("Woodgrove Bank (tenant-woodgrove)") && tables.contains("197.63"), "{tables}");
}

/// A period that is not `YYYY-MM` exits 2 with `error[invalid_period]` before anything is opened; a
/// missing database is an I/O error, not a new empty file.
#[test]
fn bad_periods_and_missing_databases_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db");
    let db = db.to_str().unwrap();
    for args in [
        vec!["invoice", "preview", "--period", "2025-13"],
        vec!["invoice", "issue", "--period", "April"],
        vec!["invoice", "list", "--period", "2025-4"],
        vec!["invoice", "rerate", "--period", "25-04", "--reason", "x"],
        vec!["commission", "statement", "--period", "2025/04"],
        vec!["showback", "--period", "last month"],
    ] {
        let mut all = args.clone();
        all.extend(["--db", db]);
        let output = cms(&all);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).starts_with("error[invalid_period]: invalid period"),
            "{args:?}: {}",
            stderr(&output)
        );
    }
    let output = cms(&["invoice", "list", "--db", db]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with("error[io]: ") && stderr(&output).contains("none.db"),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join("none.db").exists());
}
