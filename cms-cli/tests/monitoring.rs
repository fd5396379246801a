//! `cms tick`, `cms budget`, `cms alerts` and `cms report` as an operator runs them, on a SQLite file built
//! through the engine: November 2026, S1 (tenant T1 of partner Contoso, which earns 10 % commission) 8
//! vCores every hour (9.60 a day at 0.05), S3 (tenant T3 of partner Fabrikam) 20 vCore-hours on the 2nd
//! (1.00), and unpriced usage of S3 with a gap and a refused record. The dashboard page is loaded in
//! headless Chromium: no console output at all, and the screenshot shows each chart in its own colour.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use cms_core::Decimal;
use cms_core::engine::{Cms, Event, Principal};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::money::Currency;
use cms_core::model::price_book::{BookList, PriceScope, PriceVersion};
use cms_core::model::pricing::{CommissionPlan, MeterPrice, PriceModel};
use cms_core::model::tiers::{Tier, TierMode};
use cms_core::model::time::Instant;
use cms_core::model::usage::UsageRecord;
use cms_core::monitoring::budgets::Budget;
use cms_core::source::PageOrigin;
use cms_sqlite::SqliteStore;
use serde_json::Value;

const VM: &str = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5";
/// A meter no catalogue knows: kept, not priced.
const UNKNOWN: &str = "00000000-0000-0000-0000-0000000000AA";
const NOW: &str = "2026-11-04T00:00:00Z";

fn at(month: u32, day: u32, hour: u32) -> Instant {
    Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0).unwrap()
}

fn add(id: &str, kind: NodeKind, parent: Option<&str>) -> Event {
    Event::NodeAdded { id: id.into(), kind, parent: parent.map(Into::into), name: format!("{id} name") }
}

fn record(subscription: &str, start: Instant, quantity: i64) -> UsageRecord {
    UsageRecord {
        subscription: subscription.into(),
        meter: VM.parse().unwrap(),
        start,
        end: start + Duration::hours(1),
        quantity: Decimal::from(quantity),
        resource_uri: format!("/subscriptions/{subscription}/resourceGroups/rg/providers/x/vm"),
        location: "local".into(),
        ..UsageRecord::default()
    }
}

/// The database of the scenario.
fn database(dir: &Path) -> PathBuf {
    let path = dir.join("cms.db");
    let mut cms = Cms::open(SqliteStore::open(&path).unwrap()).unwrap();
    let mut list = BookList::new("std", "Standard", Currency::USD);
    list.versions.push(PriceVersion::own(
        at(1, 1, 0),
        [(VM.parse().unwrap(), MeterPrice::new("vCore-hours", PriceModel::per_unit(Decimal::new(5, 2))))]
            .into_iter()
            .collect(),
    ));
    let ten_percent = CommissionPlan::new(
        "ten",
        TierMode::Graduated,
        vec![Tier { from: Decimal::ZERO, rate: Decimal::new(10, 2) }],
    )
    .unwrap();
    let budget = Budget {
        id: "b-t1".into(),
        node: "t1".into(),
        amount: Decimal::from(250),
        currency: Currency::USD,
        warning_percent: Decimal::from(80),
        breach_percent: Decimal::from(100),
        forecast: true,
    };
    cms.execute_all(
        &Principal::platform("operator"),
        at(10, 1, 0),
        &[
            add("contoso", NodeKind::Partner, None),
            add("fabrikam", NodeKind::Partner, None),
            add("t1", NodeKind::Tenant, Some("contoso")),
            add("t3", NodeKind::Tenant, Some("fabrikam")),
            add("s1", NodeKind::Subscription, Some("t1")),
            add("s3", NodeKind::Subscription, Some("t3")),
            Event::PriceListCreated { list },
            Event::PriceListAssigned { scope: PriceScope::Default, list: "std".into() },
            Event::BudgetSet { budget },
            Event::CommissionPlanPut { plan: ten_percent },
            Event::CommissionPlanAssigned { node: "contoso".into(), plan: "ten".into() },
        ],
    )
    .unwrap();
    let mut usage: Vec<UsageRecord> =
        (0..72).map(|hour| record("s1", at(11, 1, 0) + Duration::hours(hour), 8)).collect();
    usage.push(record("s3", at(11, 2, 7), 20));
    // S3 also reports a meter no catalogue prices (no cost), hours 0-3 and 7-9 of 3 November: one gap.
    for hour in [0, 1, 2, 3, 7, 8, 9] {
        usage.push(UsageRecord { meter: UNKNOWN.parse().unwrap(), ..record("s3", at(11, 3, hour), 1) });
    }
    cms.ingest(&usage, &PageOrigin::named("november")).unwrap();
    // A folder of region "local" brings a daily record of it, refused (S3 is hourly), recorded as
    // `cms ingest folder --region local` records its runs.
    let daily =
        UsageRecord { meter: UNKNOWN.parse().unwrap(), end: at(11, 3, 0), ..record("s3", at(11, 2, 0), 24) };
    let summary = cms.ingest(&[daily], &PageOrigin::named("local/day.json")).unwrap();
    assert_eq!(summary.refused.len(), 1);
    cms.record_ingestion(&Principal::platform("operator"), at(11, 3, 12), "folder:local", &summary).unwrap();
    path
}

fn cms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cms")).args(args).output().expect("run cms")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn tick_runs_once_per_slot_and_report_alerts_and_budgets_show_the_month() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let db = db.to_str().unwrap();
    let first: Value = serde_json::from_str(&ok(&cms(&["tick", "--db", db, "--at", NOW, "--json"]))).unwrap();
    let keys: Vec<&str> =
        first["runs"].as_array().unwrap().iter().map(|run| run["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["draft:2026-10", "purge:2026-11-04", "evaluate:2026-11-04T00:00:00+00:00"]);
    let again = ok(&cms(&["tick", "--db", db, "--at", NOW]));
    assert!(again.contains("not due (ran already): draft:2026-10, purge:2026-11-04"), "{again}");

    let text = ok(&cms(&["report", "--db", db, "--period", "2026-11", "--at", NOW]));
    for expected in
        ["month to date", "29.80 USD", "298.00 USD", "t1 name", "Base VM Size Hours", "budget_forecast"]
    {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
    let board: Value =
        serde_json::from_str(&ok(&cms(&["report", "--db", db, "--at", NOW, "--json"]))).unwrap();
    assert_eq!(board["month_to_date"][0]["amount"], "29.80");
    assert_eq!(board["by_day"].as_array().unwrap().len(), 3);
    let local = &board["regions"][0];
    assert_eq!(
        (&local["region"], &local["gaps"], &local["refused_records"]),
        (&"local".into(), &1.into(), &1.into())
    );
    assert_eq!(board["commissions"][0]["id"], "contoso");
    assert_eq!(board["commissions"][0]["amount"], "2.88", "10 % of T1's 28.80");
    // A partner sees its branch: roles are not in use in this database, so any principal may act.
    let fabrikam: Value =
        serde_json::from_str(&ok(&cms(&["report", "--db", db, "--at", NOW, "--node", "fabrikam", "--json"])))
            .unwrap();
    assert_eq!(fabrikam["month_to_date"][0]["amount"], "1.00");

    let alerts: Value = serde_json::from_str(&ok(&cms(&["alerts", "list", "--db", db, "--json"]))).unwrap();
    let forecast =
        alerts.as_array().unwrap().iter().find(|alert| alert["kind"] == "budget_forecast").unwrap();
    let id = forecast["id"].to_string();
    ok(&cms(&["alerts", "ack", &id, "--db", db, "--at", NOW, "--note", "known"]));
    let listed = ok(&cms(&["alerts", "list", "--db", db]));
    assert!(listed.contains("acknowledged"), "{listed}");
    let twice = cms(&["alerts", "ack", &id, "--db", db, "--at", NOW]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&twice.stderr).starts_with("error[invalid_value]"));

    ok(&cms(&["budget", "set", "b-t3", "--for", "t3", "--amount", "0.50", "--db", db, "--at", NOW]));
    let budgets = ok(&cms(&["budget", "list", "--db", db, "--at", NOW]));
    assert!(budgets.contains("b-t3") && budgets.contains("breach") && budgets.contains("200%"), "{budgets}");
    let bad = cms(&["budget", "set", "b-x", "--for", "nowhere", "--amount", "1", "--db", db, "--at", NOW]);
    assert!(String::from_utf8_lossy(&bad.stderr).starts_with("error[unknown_node]"));
}

/// Chromium's console lines (`...:CONSOLE...] "message", source: ...`) printed while loading `page`, and
/// the screenshot; `None` when Chromium is missing (an error when `CMS_REQUIRE_CHROMIUM` is set).
fn load_in_chromium(page: &Path, screenshot: &Path) -> Option<Vec<String>> {
    let chromium = ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|name| {
        Command::new(name).arg("--version").output().is_ok_and(|output| output.status.success())
    });
    let Some(chromium) = chromium else {
        assert!(std::env::var_os("CMS_REQUIRE_CHROMIUM").is_none(), "Chromium is required but missing");
        eprintln!("skipped: no Chromium on this machine (scripts/test.sh installs Debian's chromium)");
        return None;
    };
    let profile = tempfile::tempdir().unwrap();
    let output = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run"])
        .args(["--window-size=1280,2200", "--enable-logging=stderr", "--v=0"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    Some(
        String::from_utf8_lossy(&output.stderr)
            .lines()
            .filter(|line| line.contains(":CONSOLE"))
            .map(str::to_owned)
            .collect(),
    )
}

/// How many pixels of the screenshot have each colour (`#rrggbb`).
fn pixels(screenshot: &Path, colours: &[&str]) -> Vec<usize> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(screenshot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buffer).unwrap();
    let channels = info.color_type.samples();
    let wanted: Vec<[u8; 3]> = colours
        .iter()
        .map(|hex| {
            let value = u32::from_str_radix(&hex[1..], 16).unwrap().to_be_bytes();
            [value[1], value[2], value[3]]
        })
        .collect();
    let mut counts = vec![0; colours.len()];
    for pixel in buffer[..info.buffer_size()].chunks(channels) {
        if let Some(index) = wanted.iter().position(|colour| pixel[..3] == colour[..]) {
            counts[index] += 1;
        }
    }
    counts
}

/// The page's charts by section title, and the colour each is drawn in (`dashboard_html.rs`; in this
/// scenario the region is healthy and the budget forecast to breach).
const CHARTS: [(&str, &str); 7] = [
    ("Cost by day", "#2563eb"),
    ("Cost by tenant", "#0d9488"),
    ("Cost by meter", "#d97706"),
    ("Cost by region", "#7c3aed"),
    ("Region health", "#16a34a"),
    ("Budgets", "#ca8a04"),
    ("Commissions to date", "#db2777"),
];

/// Pixels of a chart's colour that show it drawn (the smallest, the budget's bar, has 14 x 12).
const SHOWN: usize = 100;

/// The page without the section titled `title`.
fn without_section(html: &str, title: &str) -> String {
    let heading = html.find(&format!("<h2>{title}</h2>")).unwrap();
    let start = html[..heading].rfind("<section").unwrap();
    let end = heading + html[heading..].find("</section>").unwrap() + "</section>".len();
    format!("{}{}", &html[..start], &html[end..])
}

/// The section titled `title`.
fn section<'a>(html: &'a str, title: &str) -> &'a str {
    let heading = html.find(&format!("<h2>{title}</h2>")).unwrap();
    let start = html[..heading].rfind("<section").unwrap();
    let end = heading + html[heading..].find("</section>").unwrap();
    &html[start..end]
}

/// The titles of the charts the screenshot shows (at least [`SHOWN`] pixels of their colour).
fn charts_shown(screenshot: &Path) -> Vec<&'static str> {
    let colours: Vec<&str> = CHARTS.iter().map(|(_, colour)| *colour).collect();
    let counts = pixels(screenshot, &colours);
    CHARTS.iter().zip(counts).filter(|(_, count)| *count >= SHOWN).map(|((title, _), _)| *title).collect()
}

#[test]
fn the_dashboard_page_is_self_contained_and_renders_its_charts_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let db = db.to_str().unwrap();
    ok(&cms(&["tick", "--db", db, "--at", NOW]));
    let page = dir.path().join("dashboard.html");
    let said = ok(&cms(&["report", "dashboard", "--db", db, "--at", NOW, "--out", page.to_str().unwrap()]));
    assert!(said.contains("dashboard of platform for 2026-11 written to"), "{said}");
    let html = std::fs::read_to_string(&page).unwrap();
    for external in ["src=", "href=", "@import", "url(", "http://", "https://"] {
        assert!(!html.contains(external), "the page refers to something outside it: {external}");
    }
    for expected in
        ["Cost by day", "Cost by tenant", "Cost by meter", "Region health", "29.80 USD", "t1 name"]
    {
        assert!(html.contains(expected), "{expected}");
    }
    // Each chart's colour is drawn in its own section and nowhere else on the page.
    for (title, colour) in CHARTS {
        let inside = section(&html, title).matches(colour).count();
        assert!(inside > 0, "{title} is not drawn in {colour}");
        assert_eq!(html.matches(colour).count(), inside, "{colour} of {title} is used elsewhere too");
    }
    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let Some(console) = load_in_chromium(&page, &screenshot) else { return };
    assert!(console.is_empty(), "console output while loading the dashboard: {console:#?}");
    let all: Vec<&str> = CHARTS.iter().map(|(title, _)| *title).collect();
    assert_eq!(charts_shown(&screenshot), all, "charts in the screenshot");

    // The screenshot check sees each chart by itself: a page without one of them misses that one only.
    for (title, _) in CHARTS {
        let without = dir.path().join("without.html");
        std::fs::write(&without, without_section(&html, title)).unwrap();
        let shot = dir.path().join("without.png");
        assert!(load_in_chromium(&without, &shot).unwrap().is_empty());
        let expected: Vec<&str> = all.iter().copied().filter(|shown| *shown != title).collect();
        assert_eq!(charts_shown(&shot), expected, "the page without {title}");
    }

    // The console check sees errors: a page with a broken script is caught.
    let broken = dir.path().join("broken.html");
    std::fs::write(&broken, html.replace("</body>", "<script>notAFunction();</script></body>")).unwrap();
    let console = load_in_chromium(&broken, &dir.path().join("broken.png")).unwrap();
    assert!(console.iter().any(|line| line.contains("notAFunction")), "{console:?}");
}

/// The page of a partner's principal for a chosen month: its branch only, no platform panels.
#[test]
fn the_dashboard_page_of_a_partner_shows_its_branch_for_the_chosen_month() {
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let db = db.to_str().unwrap();
    ok(&cms(&["tick", "--db", db, "--at", NOW]));
    let page = dir.path().join("fabrikam.html");
    // In December, November's page: roles are not in use in this database, so Bob may act at Fabrikam.
    let said = ok(&cms(&[
        "report",
        "dashboard",
        "--db",
        db,
        "--as",
        "bob",
        "--node",
        "fabrikam",
        "--period",
        "2026-11",
        "--at",
        "2026-12-02T00:00:00Z",
        "--out",
        page.to_str().unwrap(),
    ]));
    assert!(said.contains("dashboard of fabrikam for 2026-11 written to"), "{said}");
    let html = std::fs::read_to_string(&page).unwrap();
    for expected in
        ["fabrikam name &middot; 2026-11", "t3 name", "<b>1.00 USD</b>", "Open alerts (1)", "usage_gap"]
    {
        assert!(html.contains(expected), "{expected} in the partner's page");
    }
    // Its one alert is S3's gap. Other branches' tenants, their budgets, alerts and commissions, and the
    // platform's region health and alerts are not on it.
    for absent in [
        "t1 name",
        "contoso",
        "b-t1",
        "29.80",
        "Region health",
        "<h2>Budgets</h2>",
        "budget_forecast",
        "refused_records",
        "unknown_meter",
    ] {
        assert!(!html.contains(absent), "{absent} in the partner's page");
    }
    // The platform's page of the same month has them all, so the checks above can fail.
    let platform = dir.path().join("platform.html");
    let args = ["report", "dashboard", "--db", db, "--period", "2026-11", "--at", "2026-12-02T00:00:00Z"];
    ok(&cms(&[&args[..], &["--out", platform.to_str().unwrap()]].concat()));
    let everything = std::fs::read_to_string(&platform).unwrap();
    for present in
        ["t1 name", "contoso", "b-t1", "29.80", "Region health", "<h2>Budgets</h2>", "refused_records"]
    {
        assert!(everything.contains(present), "{present} in the platform's page");
    }
    let cost_by_day = section(&html, "Cost by day");
    assert_eq!(cost_by_day.matches("<rect").count(), 30, "every day of November, T3's cost on the 2nd only");
    assert!(cost_by_day.contains("2026-11-02: 1.00 USD"));
}

/// A stand-in stamp serving the sample page, and a webhook receiver; returns their base URLs and what the
/// webhook received.
fn stamp_and_webhook() -> (String, String, Arc<Mutex<Vec<Value>>>) {
    let sample =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/azure-stack-hub-sample-usage.json");
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let base = format!("http://{}", server.server_addr().to_ip().unwrap());
    let login = base.clone();
    std::thread::spawn(move || {
        for request in server.incoming_requests() {
            let url = request.url().to_owned();
            let body = if url.starts_with("/metadata/endpoints") {
                format!(
                    r#"{{"authentication":{{"loginEndpoint":"{login}/","audiences":["https://management.stamp/1"]}}}}"#
                )
            } else if url.contains("/oauth2/token") {
                r#"{"access_token":"token-1","token_type":"Bearer","expires_in":3600}"#.to_owned()
            } else {
                std::fs::read_to_string(&sample).unwrap().replace("\"nextLink\"", "\"ignored\"")
            };
            let header = tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
            let _ = request.respond(tiny_http::Response::from_string(body).with_header(header));
        }
    });
    let hooks = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let hook_url = format!("http://{}/hook", hooks.server_addr().to_ip().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    std::thread::spawn(move || {
        for mut request in hooks.incoming_requests() {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            log.lock().unwrap().push(serde_json::from_str(&body).unwrap_or(Value::Null));
            let _ = request.respond(tiny_http::Response::empty(204));
        }
    });
    (base, hook_url, received)
}

fn region_file(dir: &Path, region: &str, endpoint: &str) -> PathBuf {
    let path = dir.join(format!("{region}.json"));
    std::fs::write(
        &path,
        format!(
            r#"{{"region":"{region}","arm_endpoint":"{endpoint}","provider_subscription":"0d6a7e9f-2b4c-4f8e-a1d3-9c5b7e2f6a44",
                "tenant":"contoso.onmicrosoft.com","client_id":"app","client_secret_env":"CMS_TEST_TICK_SECRET",
                "start":"2025-03-10T13:00:00Z","subscribers":["3f2a6c1e-8b4d-4e1a-9c7f-2d5b8e0a1c11"],
                "granularity":"hourly","window_hours":1,"allow_http":true}}"#
        ),
    )
    .unwrap();
    path
}

#[test]
fn tick_pulls_regions_and_delivers_alert_changes_to_a_webhook() {
    let (stamp, hook, received) = stamp_and_webhook();
    let dir = tempfile::tempdir().unwrap();
    let db = database(dir.path());
    let east = region_file(dir.path(), "east", &stamp);
    // Nothing listens on port 9 of 127.0.0.1: every request to "west" fails.
    let west = region_file(dir.path(), "west", "http://127.0.0.1:9");
    let output = Command::new(env!("CARGO_BIN_EXE_cms"))
        .args(["tick", "--db", db.to_str().unwrap(), "--at", "2025-03-10T15:30:00Z", "--json"])
        .args(["--region", east.to_str().unwrap(), "--region", west.to_str().unwrap(), "--webhook", &hook])
        .env("CMS_TEST_TICK_SECRET", "s3cret")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs[0]["key"], "pull:east:2025-03-10T15:00:00+00:00");
    assert_eq!((runs[0]["outcome"].as_str(), runs[0]["counts"]["pages"].as_u64()), (Some("done"), Some(2)));
    assert_eq!(runs[0]["counts"]["stored"], 20);
    assert_eq!(
        (runs[1]["key"].as_str(), runs[1]["outcome"].as_str()),
        (Some("pull:west:2025-03-10T15:00:00+00:00"), Some("failed"))
    );
    let deliveries = received.lock().unwrap().clone();
    let failure = deliveries.iter().find(|delivery| delivery["alert"]["kind"] == "job_failure").unwrap();
    assert_eq!(failure["change"], "opened");
    assert_eq!(failure["alert"]["related"], "pull:west");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("s3cret"));
}
