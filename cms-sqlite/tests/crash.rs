//! Crash safety on SQLite: a child process runs a month on a database file (channel set-up, usage ingested
//! in many pages, invoices issued, the first one voided and the rest issued again) and is killed (SIGKILL on
//! Unix) at random moments. After each kill the database must be intact and consistent; a last run that is
//! not killed must end exactly where a run on a fresh file that was never killed ends.
//!
//! The test binary re-executes itself: with [`CHILD_VARIABLE`] set to a database path, the test
//! [`crash_child`] does the month's work on that file; without it, that test returns at once. Every step of
//! the child is safe to run again: set-up and invoicing steps are skipped when the state shows them done,
//! and usage pages are sent again from the first, where they deduplicate.
//!
//! After each kill the parent checks: `PRAGMA integrity_check` is `ok`; the engine opens (the events replay);
//! the audit chain verifies; every issued document's body matches its hash and no body is stored without its
//! events; each page is stored whole or not at all, and the stored pages are a prefix of the page sequence;
//! no usage key is stored twice; invoice numbers are gapless per issuer; nothing the child reported done is
//! lost and nothing stored shrinks from one kill to the next.
//!
//! Kill points: an uninterrupted run on a fresh file comes first; it is the reference for the final state,
//! and the times of its progress lines are the timeline kill delays are drawn on (splitmix64 seeded per
//! round; [`SEED_VARIABLE`] overrides the base seed). A delay is anchored on the progress line the child had
//! printed by then, and counted from when the rerun prints that line: reruns deduplicate stored pages faster
//! than the first run stored them, so a delay from the start would land further and further in the work.
//! Forward rounds aim at the work the file still lacks (set-up, new pages, close and issue, void, issue
//! again); every fourth round revisits the ingestion of pages stored before. See [`Timeline::kill_point`].
//!
//! Not covered: power loss. With `synchronous = NORMAL` a power cut may undo the last commits (the crate
//! documents it); killing the process loses nothing SQLite acknowledged, and that is what this checks.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use chrono::{Duration, TimeZone, Utc};
use cms_core::Decimal;
use cms_core::billing::invoice::{DocumentKind, TaxRule};
use cms_core::engine::{
    CLOSED_MONTH_END, Cms, Event, INVOICE_DOCUMENT, IssuedDocument, Principal, document_number,
};
use cms_core::model::channel::BillingProfile;
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::meter::{Category, MeterId};
use cms_core::model::money::{Currency, parse_decimal};
use cms_core::model::price_book::{BookList, PriceScope, PriceVersion};
use cms_core::model::pricing::{MeterPrice, PriceModel};
use cms_core::model::time::{Instant, Period};
use cms_core::model::usage::{UsageKey, UsageRecord};
use cms_core::source::PageOrigin;
use cms_core::store::{EventRecord, Store, folded_key};
use cms_sqlite::SqliteStore;
use rusqlite::Connection;

/// Set to a database path, the child test runs the month on it.
const CHILD_VARIABLE: &str = "CMS_CRASH_CHILD";
/// A base seed for the kill delays (decimal), to replay or vary a run.
const SEED_VARIABLE: &str = "CMS_CRASH_SEED";
/// The name of the child test, selected with `--exact`.
const CHILD_TEST: &str = "crash_child";
const DEFAULT_SEED: u64 = 0x0C35_C4A5_11E5_EED5;

/// Usage pages of the month, each one `ingest` call (one transaction).
const PAGES: usize = 100;
/// Records per page.
const PAGE_RECORDS: usize = 250;
/// Kill points on the crashed file.
const KILLS: u64 = 40;

const VM: &str = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5";
const IP: &str = "F271A8A3-88C4-4D93-956A-063E1D2FA80B";
const SUBSCRIPTIONS: [&str; 3] = ["s1", "s2", "s3"];

fn dec(text: &str) -> Decimal {
    parse_decimal(text).unwrap()
}

fn meter(text: &str) -> MeterId {
    text.parse().unwrap()
}

fn utc(month: u32, day: u32, hour: u32) -> Instant {
    Utc.with_ymd_and_hms(2026, month, day, hour, 0, 0).unwrap()
}

fn october() -> Period {
    Period::month(2026, 10).unwrap()
}

fn operator() -> Principal {
    Principal::platform("operator")
}

// ---------------------------------------------------------------------------------------------------------
// The month the child runs.

fn add(id: &str, kind: NodeKind, parent: Option<&str>) -> Event {
    Event::NodeAdded { id: id.into(), kind, parent: parent.map(Into::into), name: format!("{id} name") }
}

fn jurisdiction(node: &str, code: &str) -> Event {
    Event::BillingProfileSet {
        node: node.into(),
        profile: BillingProfile { jurisdiction: Some(code.into()), ..BillingProfile::default() },
    }
}

fn tax(id: &str, jurisdiction: &str, category: Option<Category>, rate: &str) -> Event {
    Event::TaxRuleSet {
        rule: TaxRule {
            id: id.into(),
            name: format!("{id} tax"),
            jurisdiction: jurisdiction.into(),
            issuer: None,
            category,
            rate: dec(rate),
        },
    }
}

/// The channel of `cms-core/tests/invoicing.rs` without commissions: platform > Contoso (partner) > Tenant 1
/// (NL) and Tenant 2 (DE); platform > Fabrikam (partner) > Tenant 3; 0.05 per vCore-hour, 0.004 per IP-hour.
fn setup_events() -> Vec<Event> {
    let mut list = BookList::new("std", "Standard", Currency::USD);
    list.versions.push(PriceVersion::own(
        utc(1, 1, 0),
        [
            (meter(VM), MeterPrice::new("vCore-hours", PriceModel::per_unit(dec("0.05")))),
            (meter(IP), MeterPrice::new("IP-hours", PriceModel::per_unit(dec("0.004")))),
        ]
        .into_iter()
        .collect(),
    ));
    vec![
        add("contoso", NodeKind::Partner, None),
        add("fabrikam", NodeKind::Partner, None),
        add("t1", NodeKind::Tenant, Some("contoso")),
        add("t2", NodeKind::Tenant, Some("contoso")),
        add("t3", NodeKind::Tenant, Some("fabrikam")),
        add("s1", NodeKind::Subscription, Some("t1")),
        add("s2", NodeKind::Subscription, Some("t2")),
        add("s3", NodeKind::Subscription, Some("t3")),
        Event::PriceListCreated { list },
        Event::PriceListAssigned { scope: PriceScope::Default, list: "std".into() },
        jurisdiction("t1", "NL"),
        jurisdiction("t2", "DE"),
        tax("nl", "NL", None, "0.21"),
        tax("nl-network", "NL", Some(Category::Network), "0"),
        tax("de", "DE", None, "0.19"),
    ]
}

/// Record `index` of page `page`: the same on every run. The page is part of the resource uri, so the stored
/// records tell which page stored them.
fn usage_record(page: usize, index: usize) -> UsageRecord {
    let global = page * PAGE_RECORDS + index;
    let subscription = SUBSCRIPTIONS[global % SUBSCRIPTIONS.len()];
    let meter_id = if global % 4 == 3 { IP } else { VM };
    let start = october().start + Duration::hours(i64::try_from(global % 744).unwrap());
    UsageRecord {
        subscription: subscription.into(),
        meter: meter(meter_id),
        start,
        end: start + Duration::hours(1),
        quantity: Decimal::new(i64::try_from(global * 37 % 1000 + 1).unwrap(), 2),
        resource_uri: format!(
            "/subscriptions/{subscription}/resourceGroups/rg/providers/x/page-{page:03}/vm-{index:03}"
        ),
        location: "local".into(),
        ..UsageRecord::default()
    }
}

fn page_records(page: usize) -> Vec<UsageRecord> {
    (0..PAGE_RECORDS).map(|index| usage_record(page, index)).collect()
}

/// The page and index a stored record's resource uri names.
fn page_and_index(record: &UsageRecord) -> (usize, usize) {
    let uri = &record.resource_uri;
    let number = |prefix: &str| -> usize {
        let from = uri.find(prefix).unwrap_or_else(|| panic!("{uri}: no {prefix}")) + prefix.len();
        uri[from..from + 3].parse().unwrap_or_else(|error| panic!("{uri}: {error}"))
    };
    (number("/page-"), number("/vm-"))
}

/// Write one progress line to the real stdout (not the test harness's capture), whole.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
}

/// The child's work: set up, ingest every page, issue, void the first invoice, issue again. Each progress
/// line is written after its step committed.
fn run_month(path: &Path) {
    let mut cms = Cms::open(SqliteStore::open(path).unwrap()).unwrap();
    say("opened");
    if cms.state().hierarchy.get("t1").is_none() {
        cms.execute_all(&operator(), utc(9, 1, 0), &setup_events()).unwrap();
        say("set up");
    }
    for page in 0..PAGES {
        let summary = cms.ingest(&page_records(page), &PageOrigin::named(format!("page {page}"))).unwrap();
        assert!(summary.refused.is_empty(), "page {page}: {:?}", summary.refused);
        say(&format!("page {page} stored {} new {} duplicates", summary.stored, summary.duplicates));
    }
    if cms.state().issued.is_empty() {
        let issued = cms.issue_invoices(&operator(), utc(11, 1, 6), october(), None).unwrap();
        say(&format!("issued {}", issued.len()));
    }
    if cms.state().issued.values().all(|issued| issued.voided_by.is_none()) {
        let first = cms
            .state()
            .issued
            .values()
            .find(|issued| issued.kind == DocumentKind::Invoice)
            .map(|issued| issued.number.clone())
            .unwrap();
        cms.void_invoice(&operator(), utc(11, 3, 0), &first, "wrong address").unwrap();
        say(&format!("voided {first}"));
    }
    // Idempotent: once the voided buyer's invoice is issued again, this issues nothing.
    let again = cms.issue_invoices(&operator(), utc(11, 4, 0), october(), None).unwrap();
    say(&format!("reissued {}", again.len()));
    say("done");
}

/// Runs the month when [`CHILD_VARIABLE`] names a database; otherwise (an ordinary test run) does nothing.
#[test]
fn crash_child() {
    if let Some(path) = std::env::var_os(CHILD_VARIABLE) {
        run_month(Path::new(&path));
    }
}

// ---------------------------------------------------------------------------------------------------------
// The parent: kill, check, repeat.

/// splitmix64: a tiny deterministic generator, enough to spread kill points.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// What one child run printed (each line with when it arrived) and how it ended.
struct ChildRun {
    lines: Vec<(String, StdDuration)>,
    stderr: String,
    /// Whether the child was still running when its kill point came, and was killed.
    killed: bool,
    success: bool,
    elapsed: StdDuration,
}

impl ChildRun {
    fn last_line(&self) -> &str {
        self.lines
            .iter()
            .rev()
            .map(|(line, _)| line.as_str())
            .find(|line| step_of(line).is_some())
            .unwrap_or("")
    }

    /// The highest page the child reported stored.
    fn acknowledged_page(&self) -> Option<usize> {
        self.lines.iter().filter_map(|(line, _)| parse_page_line(line)).max()
    }

    fn reported(&self, prefix: &str) -> bool {
        self.lines.iter().any(|(line, _)| line.starts_with(prefix))
    }
}

/// The place of a progress line in the child's run: opened 0, set up 1, page N 2 + N, then issued, voided,
/// reissued, done.
fn step_of(line: &str) -> Option<usize> {
    if let Some(page) = parse_page_line(line) {
        return Some(2 + page);
    }
    let after_pages = 2 + PAGES;
    [("opened", 0), ("set up", 1), ("issued ", after_pages), ("voided ", after_pages + 1)]
        .into_iter()
        .chain([("reissued ", after_pages + 2), ("done", after_pages + 3)])
        .find(|(prefix, _)| line.starts_with(prefix))
        .map(|(_, step)| step)
}

/// The page of a whole `page N stored A new B duplicates` line.
fn parse_page_line(line: &str) -> Option<usize> {
    let words: Vec<&str> = line.split(' ').collect();
    match words.as_slice() {
        ["page", page, "stored", new, "new", duplicates, "duplicates"] => {
            new.parse::<u64>().ok()?;
            duplicates.parse::<u64>().ok()?;
            page.parse().ok()
        }
        _ => None,
    }
}

/// When to kill a child: `offset` after it prints the progress line of step `anchor` (or a later one), or
/// after it starts when there is no anchor.
#[derive(Debug, Clone, Copy)]
struct KillPoint {
    anchor: Option<usize>,
    offset: StdDuration,
}

impl KillPoint {
    /// The point `delay` into the reference run, anchored on the last progress line printed by then, so that
    /// a rerun (faster while its pages deduplicate) is killed at the same place in the work, not earlier.
    fn of_delay(reference: &ChildRun, delay: StdDuration) -> Self {
        reference
            .lines
            .iter()
            .filter_map(|(line, at)| Some((step_of(line)?, *at)))
            .take_while(|(_, at)| *at <= delay)
            .last()
            .map_or(Self { anchor: None, offset: delay }, |(step, at)| Self {
                anchor: Some(step),
                offset: delay.saturating_sub(at),
            })
    }
}

/// The executable to run as the child: this very image. On Linux `/proc/self/exe` still runs it when a
/// concurrent build has replaced the file on disk.
fn this_executable() -> std::path::PathBuf {
    let image = Path::new("/proc/self/exe");
    if image.exists() { image.to_path_buf() } else { std::env::current_exe().unwrap() }
}

/// Run the child on `path`; at `kill`, kill it if it is still running.
fn run_child(path: &Path, kill: Option<KillPoint>) -> ChildRun {
    let started = StdInstant::now();
    let mut child = Command::new(this_executable())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_VARIABLE, path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = mpsc::channel();
    let reader = thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send((line, started.elapsed())).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let errors = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut lines = Vec::new();
    let mut killed = false;
    if let Some(kill) = kill {
        if let Some(anchor) = kill.anchor {
            // Until the anchor's line (or a later one: a skipped step prints nothing), or the child's end.
            while let Ok((line, at)) = receiver.recv() {
                let reached = step_of(&line).is_some_and(|step| step >= anchor);
                lines.push((line, at));
                if reached {
                    break;
                }
            }
        }
        thread::sleep(kill.offset);
        if child.try_wait().unwrap().is_none() {
            // SIGKILL on Unix, TerminateProcess on Windows: no destructor, flush or rollback runs.
            child.kill().unwrap();
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    let elapsed = started.elapsed();
    reader.join().unwrap();
    lines.extend(receiver.try_iter());
    ChildRun {
        lines,
        stderr: errors.join().unwrap(),
        killed: killed && !status.success(),
        success: status.success(),
        elapsed,
    }
}

/// Where in the work a kill landed: the work after the last step the child reported, given what the
/// database held before the run.
fn phase_of_kill(run: &ChildRun, before: &Snapshot, documents_at_end: usize) -> &'static str {
    let Some(step) = step_of(run.last_line()) else { return "opening" };
    if step == 0 && before.events.is_empty() {
        return "set-up";
    }
    // After `opened` or `set up` comes page 0; after page N, page N + 1.
    let next_page = step.saturating_sub(1);
    if next_page < PAGES {
        return if next_page < before.pages_stored { "ingest (duplicates)" } else { "ingest (new)" };
    }
    let issued = !before.issued.is_empty() || run.reported("issued ");
    let voided =
        before.issued.values().any(|issued| issued.record.voided_by.is_some()) || run.reported("voided ");
    if !issued {
        "close and issue"
    } else if !voided {
        "void"
    } else if run.reported("reissued ") {
        "exit"
    } else if before.issued.len() < documents_at_end {
        "issue again"
    } else {
        "issue again (nothing left)"
    }
}

/// The progress lines of the reference run: each step and when it was reported.
struct Timeline {
    steps: Vec<(usize, StdDuration)>,
    total: StdDuration,
}

impl Timeline {
    fn of(run: &ChildRun) -> Self {
        let steps = run.lines.iter().filter_map(|(line, at)| Some((step_of(line)?, *at))).collect();
        Self { steps, total: run.elapsed }
    }

    fn time_of(&self, step: usize) -> StdDuration {
        self.steps.iter().find(|(at_step, _)| *at_step == step).map(|(_, at)| *at).unwrap()
    }

    /// The first step after `step` that commits something (`opened` does not).
    fn next_after(&self, step: Option<usize>) -> Option<usize> {
        self.steps
            .iter()
            .map(|(next, _)| *next)
            .find(|next| *next >= 1 && step.is_none_or(|step| *next > step))
    }

    /// Where to kill the child in a round, given `committed` (the last step the database holds).
    ///
    /// A revisit (every fourth round, and every round once the work is done) lands anywhere in the
    /// ingestion, mostly on pages stored before (duplicates). Otherwise the kill lands in the work still to
    /// do: in opening and set-up (one and a half times their reference length); while ingesting, within a
    /// sixth of the run after the last stored page (at most three times what is left of the pages); then in
    /// an invoicing step (close and issue, void, issue again), within its reference length. Such a kill
    /// rarely lets its step commit, so after `stuck` / 2 kills that left the file where it was, the kill is
    /// aimed that many steps further: the run does the steps before and the file moves on.
    fn kill_point(
        &self,
        reference: &ChildRun,
        round: u64,
        committed: Option<usize>,
        stuck: usize,
        random: &mut SplitMix64,
    ) -> KillPoint {
        let uniform = |width: StdDuration, random: &mut SplitMix64| {
            StdDuration::from_micros(random.next() % u64::try_from(width.as_micros()).unwrap().max(1))
        };
        let last_page = 1 + PAGES;
        let done = 4 + PAGES;
        let next = self.next_after(committed).filter(|step| *step <= done);
        // The invoicing step aimed at: the next one to do, then (after two kills there left the file where it
        // was) the one after it, and so on; past the last, revisits.
        let ahead = if next.is_some_and(|next| next > last_page) { stuck / 2 } else { 0 };
        let next = next.filter(|next| next + ahead <= done);
        let Some(next) = next.filter(|_| round % 4 != 3) else {
            return KillPoint::of_delay(reference, uniform(self.time_of(last_page), random));
        };
        if next <= last_page {
            // Opening and set-up are short: kill within them, or a sixth of the run into the pages.
            let from = committed.map_or(StdDuration::ZERO, |step| self.time_of(step));
            let width = if next == 1 {
                self.time_of(1) * 3 / 2
            } else {
                (self.total / 6).min(self.time_of(last_page).saturating_sub(from) * 3)
            };
            return KillPoint::of_delay(reference, from + uniform(width, random));
        }
        // An invoicing step. Its work starts after the line of the step before when that one runs too (the
        // kill is aimed further ahead), after the last page's line when the steps before are done already.
        let target = next + ahead;
        let anchor = if target > next { target - 1 } else { last_page };
        let length = self.time_of(target).saturating_sub(self.time_of(target - 1));
        KillPoint { anchor: Some(anchor), offset: uniform(length, random) }
    }
}

/// The last step whose writes `snapshot` holds (`None`: nothing yet).
fn committed_step(snapshot: &Snapshot, documents_at_end: usize) -> Option<usize> {
    let voided = snapshot.issued.values().any(|issued| issued.record.voided_by.is_some());
    if snapshot.events.is_empty() {
        None
    } else if snapshot.pages_stored < PAGES {
        Some(1 + snapshot.pages_stored)
    } else if snapshot.issued.is_empty() {
        Some(1 + PAGES)
    } else if !voided {
        Some(2 + PAGES)
    } else if snapshot.issued.len() < documents_at_end {
        Some(3 + PAGES)
    } else {
        Some(4 + PAGES)
    }
}

/// An issued document as the state records it, with its body's total.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Issued {
    record: IssuedDocument,
    total: Decimal,
}

/// What a database holds, as far as the checks compare it between rounds and with the reference.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    events: Vec<EventRecord>,
    audit_records: u64,
    usage_records: usize,
    /// Pages stored whole: `0..pages_stored`.
    pages_stored: usize,
    quantity_by_subscription: BTreeMap<String, Decimal>,
    closed: bool,
    issued: BTreeMap<String, Issued>,
}

impl Snapshot {
    /// Live (not voided) invoice totals per buyer.
    fn totals_by_buyer(&self) -> BTreeMap<String, Decimal> {
        let mut totals = BTreeMap::new();
        for issued in self.issued.values().filter(|issued| issued.record.voided_by.is_none()) {
            if issued.record.kind == DocumentKind::Invoice {
                *totals.entry(issued.record.buyer.clone()).or_default() += issued.total;
            }
        }
        totals
    }

    fn summary(&self) -> String {
        format!(
            "{} events, {} audit records, {} pages ({} records), closed {}, {} documents",
            self.events.len(),
            self.audit_records,
            self.pages_stored,
            self.usage_records,
            self.closed,
            self.issued.len()
        )
    }
}

/// Check every invariant of the database at `path` and return what it holds. `context` names the round.
fn check_database(path: &Path, context: &str) -> Snapshot {
    if !path.exists() {
        // Killed before SQLite created the file.
        return Snapshot::default();
    }
    {
        let connection = Connection::open(path).unwrap();
        let mut statement = connection.prepare("PRAGMA integrity_check").unwrap();
        let rows: Vec<String> =
            statement.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(rows, ["ok"], "{context}: integrity check");
    }
    let cms = Cms::open(SqliteStore::open(path).unwrap())
        .unwrap_or_else(|error| panic!("{context}: the engine does not open: {error}"));
    let verification = cms.verify_audit(None).unwrap();
    assert_eq!(verification.broken, None, "{context}: audit chain");
    assert_eq!(cms.verify_documents().unwrap(), Vec::<String>::new(), "{context}: documents");
    let events = cms.store().events().unwrap();
    assert_eq!(verification.events, events.len() as u64, "{context}: audited events");
    // The set-up is one command: all of it or nothing.
    assert!(
        events.is_empty() || events.len() >= setup_events().len(),
        "{context}: {} events, a part of the set-up",
        events.len()
    );
    let mut snapshot = Snapshot { audit_records: verification.records, events, ..Snapshot::default() };
    check_usage(path, &cms, context, &mut snapshot);
    check_documents(&cms, context, &mut snapshot);
    snapshot
}

/// Usage: whole pages, a prefix of the page sequence, each record as sent, no key twice.
fn check_usage(path: &Path, cms: &Cms<SqliteStore>, context: &str, snapshot: &mut Snapshot) {
    let mut per_page = vec![0usize; PAGES];
    let mut keys: BTreeSet<UsageKey> = BTreeSet::new();
    cms.store()
        .for_each_usage(&october(), &mut |record| {
            let (page, index) = page_and_index(record);
            assert_eq!(record, &usage_record(page, index), "{context}: stored record differs from sent");
            per_page[page] += 1;
            keys.insert(folded_key(record));
            *snapshot.quantity_by_subscription.entry(record.subscription.clone()).or_default() +=
                record.quantity;
            snapshot.usage_records += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(keys.len(), snapshot.usage_records, "{context}: a usage key stored twice");
    for (page, count) in per_page.iter().enumerate() {
        assert!(
            *count == 0 || *count == PAGE_RECORDS,
            "{context}: page {page} stored {count} of {PAGE_RECORDS}"
        );
    }
    snapshot.pages_stored = per_page.iter().take_while(|count| **count == PAGE_RECORDS).count();
    let stored: Vec<usize> =
        per_page.iter().enumerate().filter(|(_, count)| **count > 0).map(|(page, _)| page).collect();
    assert_eq!(stored.len(), snapshot.pages_stored, "{context}: stored pages are not a prefix: {stored:?}");
    // The table itself, past the store's reading: as many rows as distinct natural keys.
    let connection = Connection::open(path).unwrap();
    let (rows, distinct): (i64, i64) = connection
        .query_row(
            "SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT subscription_folded, meter, start_ns, \
             end_ns, resource_uri_folded FROM usage)) FROM usage",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    let rows = usize::try_from(rows).unwrap();
    let distinct = usize::try_from(distinct).unwrap();
    assert_eq!((rows, distinct), (snapshot.usage_records, snapshot.usage_records), "{context}: usage rows");
}

/// Documents: gapless numbers per issuer, each issuer's sequence at its last number, one body for each
/// issued document and no other; issued only in the closed period, closed only with its month-end and
/// every page stored.
fn check_documents(cms: &Cms<SqliteStore>, context: &str, snapshot: &mut Snapshot) {
    let state = cms.state();
    let mut by_issuer: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for issued in state.issued.values() {
        by_issuer.entry(&issued.issuer).or_default().push(&issued.number);
    }
    for (issuer, numbers) in &by_issuer {
        let expected: Vec<String> =
            (1..=numbers.len() as u64).map(|sequence| document_number(issuer, sequence)).collect();
        assert_eq!(numbers, &expected, "{context}: numbers of {issuer}");
        assert_eq!(
            state.sequences.get(*issuer).map(|sequence| sequence.last),
            Some(numbers.len() as u64),
            "{context}: sequence of {issuer}"
        );
    }
    let bodies = cms.store().documents(INVOICE_DOCUMENT, "").unwrap();
    assert_eq!(bodies.len(), state.issued.len(), "{context}: stored bodies and issued documents");
    snapshot.closed = state.closed_periods.contains(&october());
    if snapshot.closed {
        assert!(
            !cms.store().documents(CLOSED_MONTH_END, &october().to_string()).unwrap().is_empty(),
            "{context}: a closed period without its month-end"
        );
        assert_eq!(snapshot.pages_stored, PAGES, "{context}: closed before every page was stored");
    }
    assert!(state.issued.is_empty() || snapshot.closed, "{context}: issued in an open period");
    snapshot.issued = state
        .issued
        .iter()
        .map(|(number, record)| {
            let (_, document) = cms.issued_document(&operator(), number).unwrap();
            (number.clone(), Issued { record: record.clone(), total: document.total })
        })
        .collect();
}

/// Nothing stored earlier is gone or changed, and nothing the child reported done is missing.
fn check_progress(before: &Snapshot, after: &Snapshot, run: &ChildRun, context: &str) {
    assert!(after.events.len() >= before.events.len(), "{context}: events lost");
    assert_eq!(after.events[..before.events.len()], before.events[..], "{context}: events changed");
    assert!(after.audit_records >= before.audit_records, "{context}: audit records lost");
    assert!(after.pages_stored >= before.pages_stored, "{context}: pages lost");
    assert!(after.closed || !before.closed, "{context}: the period reopened");
    for (number, issued) in &before.issued {
        let now = after.issued.get(number).unwrap_or_else(|| panic!("{context}: {number} lost"));
        let mut unvoided = now.clone();
        if issued.record.voided_by.is_none() {
            unvoided.record.voided_by = None;
        }
        assert_eq!(&unvoided, issued, "{context}: {number} changed");
    }
    if let Some(page) = run.acknowledged_page() {
        assert!(after.pages_stored > page, "{context}: page {page} was reported stored, is not");
    }
    if run.reported("set up") {
        assert!(!after.events.is_empty(), "{context}: the set-up was reported, is not stored");
    }
    if run.reported("issued ") {
        assert!(!after.issued.is_empty(), "{context}: invoices were reported issued, are not");
    }
    if run.reported("voided ") {
        assert!(
            after.issued.values().any(|issued| issued.record.voided_by.is_some()),
            "{context}: a void was reported, is not stored"
        );
    }
}

/// The final state of the killed file equals the reference's.
fn check_same_end(reference: &Snapshot, crashed: &Snapshot) {
    assert_eq!(crashed.usage_records, reference.usage_records, "usage records");
    assert_eq!(crashed.usage_records, PAGES * PAGE_RECORDS);
    assert_eq!(crashed.quantity_by_subscription, reference.quantity_by_subscription, "quantities");
    assert_eq!(crashed.totals_by_buyer(), reference.totals_by_buyer(), "live invoice totals per buyer");
    assert_eq!(crashed.issued, reference.issued, "issued documents");
    let log = |snapshot: &Snapshot| -> Vec<(String, Instant, Event)> {
        snapshot.events.iter().map(|record| (record.actor.clone(), record.at, record.event.clone())).collect()
    };
    assert_eq!(log(crashed), log(reference), "event logs");
    assert!(crashed.audit_records >= reference.audit_records, "reruns only add audit records");
}

/// Let a child run the month to its end on the killed file at `path`, check the database, and check that it
/// ends where the reference ends.
fn finish(path: &Path, before: &Snapshot, reference: &Snapshot) -> Snapshot {
    let context = format!("{} after the last run", path.display());
    let last = run_child(path, None);
    assert!(last.success && last.reported("done"), "{context} failed: {:?}\n{}", last.lines, last.stderr);
    let crashed = check_database(path, &context);
    check_progress(before, &crashed, &last, &context);
    check_same_end(reference, &crashed);
    println!("{context}: {}, as the reference", crashed.summary());
    crashed
}

fn base_seed() -> u64 {
    std::env::var(SEED_VARIABLE).ok().and_then(|text| text.parse().ok()).unwrap_or(DEFAULT_SEED)
}

#[test]
fn killed_runs_leave_a_consistent_database_and_end_like_an_uninterrupted_run() {
    if std::env::var_os(CHILD_VARIABLE).is_some() {
        return;
    }
    let started = StdInstant::now();
    let directory = tempfile::tempdir().unwrap();

    // The reference: one run on a fresh file, never killed; its duration scales the kill delays.
    let reference_path = directory.path().join("reference.db");
    let reference_run = run_child(&reference_path, None);
    assert!(
        reference_run.success && reference_run.reported("done"),
        "reference run failed: {:?}\n{}",
        reference_run.lines,
        reference_run.stderr
    );
    let full = reference_run.elapsed;
    let reference = check_database(&reference_path, "reference");
    println!("reference run: {full:?}; {}", reference.summary());

    let seed = base_seed();
    let timeline = Timeline::of(&reference_run);
    let documents_at_end = reference.issued.len();
    // When a file has done the whole month before the rounds run out, it is finished and compared, and the
    // rounds go on with a new file: more kills land in the short invoicing steps.
    let mut files = 1;
    let mut path = directory.path().join("crashed-1.db");
    let mut before = Snapshot::default();
    let mut phases: BTreeMap<&str, u32> = BTreeMap::new();
    // Rounds aimed forward since the file last moved on.
    let mut stuck = 0;
    for round in 0..KILLS {
        let mut random = SplitMix64(seed ^ round.wrapping_mul(0xA076_1D64_78BD_642F));
        let committed = committed_step(&before, documents_at_end);
        let kill = timeline.kill_point(&reference_run, round, committed, stuck, &mut random);
        let run = run_child(&path, Some(kill));
        let context = format!("round {round} (seed {seed}, {kill:?}; last line {:?})", run.last_line());
        assert!(
            run.killed || run.success,
            "{context}: the child failed on its own: {:?}\n{}",
            run.lines,
            run.stderr
        );
        let phase =
            if run.killed { phase_of_kill(&run, &before, documents_at_end) } else { "finished first" };
        *phases.entry(phase).or_default() += 1;
        let checking = StdInstant::now();
        let after = check_database(&path, &context);
        check_progress(&before, &after, &run, &context);
        println!(
            "round {round:2}: {phase:26} run {:>7.3?}, check {:>7.3?}, last {:38} -> {}",
            run.elapsed,
            checking.elapsed(),
            run.last_line(),
            after.summary()
        );
        if committed_step(&after, documents_at_end) != committed {
            stuck = 0;
        } else if round % 4 != 3 {
            stuck += 1;
        }
        before = after;
        if committed_step(&before, documents_at_end) == Some(4 + PAGES) && round + 1 < KILLS {
            finish(&path, &before, &reference);
            files += 1;
            path = directory.path().join(format!("crashed-{files}.db"));
            before = Snapshot::default();
            stuck = 0;
        }
    }

    let crashed = finish(&path, &before, &reference);
    println!(
        "kills by phase {phases:?} on {files} files; last: {}; live totals {:?}; whole test {:?}",
        crashed.summary(),
        reference.totals_by_buyer(),
        started.elapsed()
    );
    let finished = phases.get("finished first").copied().unwrap_or_default();
    assert!(finished * 4 <= u32::try_from(KILLS).unwrap(), "most runs should be killed: {phases:?}");
}
