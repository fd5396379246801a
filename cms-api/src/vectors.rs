//! Conformance vectors, as facade calls every binding replays through its own `call`.
//!
//! Two kinds of files (the protocol is the same in every language; `tests/vectors/calls/README.md` has it
//! with examples):
//!
//! 1. **Case files** `tests/vectors/*.json` (tier math, rounding, meter ids, timestamps, Usage API pages,
//!    month-end outputs, concurrent writers, and errors): each case has a `kind`, its inputs and an
//!    `expect`. A case is replayed as one call: method `evaluate_vector`, params `{"case": <the case>}`;
//!    `expect` is the result, or `{"error": {"code", "message_contains"?}}`. The case is evaluated here, in
//!    Rust, whatever the language of the runner: a binding's runner checks its conversions (the case in,
//!    the result or the error's code out), not a reimplementation of the arithmetic.
//! 2. **Call files** `tests/vectors/calls/*.json`: each case is a list of steps on one fresh session, each
//!    step a call `{"method", "params"}` with `"result"` (what the result must match) or `"error"` (the
//!    code, and a fragment of the message). `{"reopen": true}` closes the session and opens it again on the
//!    same store (a memory store cannot be reopened: the step is skipped there). A case may give `"open"`
//!    (a store spec: `"memory"` or `{"sqlite": path}`) and `"open_error"` (opening must fail so).
//!
//! In every string of `params` and `open`, `{vectors}` stands for the absolute path of `tests/vectors` and
//! `{scratch}` for a fresh empty folder of the case. A case with `"http"` (canned replies) needs a local
//! HTTP server answering them ([`HttpFixture`]); `{http}` stands for its URL.
//!
//! Matching ([`matches`]): every field of an expected object must be in the actual object with a
//! matching value (other fields are allowed); arrays match element by element and must have the same
//! length; two strings that are both plain decimals (`-?digits(.digits)?`) match when equal as numbers
//! (`"0"` and `"0.00"`); anything else must be equal.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cms_core::billing::NotBilledReason;
use cms_core::formats::usage_api::parse_page;
use cms_core::formats::workload::{self, OutputSinks, UsageInput, WorkloadInputs};
use cms_core::model::meter::MeterId;
use cms_core::model::money::{Rounding, RoundingMode, parse_decimal};
use cms_core::model::tiers::{Tier, TierMode, TierSchedule};
use cms_core::{CmsError, Decimal, Location};
use serde_json::{Map, Value, json};

use cms_core::engine::{Cms, Event, Principal};
use cms_core::governance::audit::{AuditHead, AuditRecord};
use cms_core::model::hierarchy::NodeKind;
use cms_core::model::time::{Instant, Period, parse_timestamp};
use cms_core::model::usage::{UsageKey, UsageRecord};
use cms_core::source::Checkpoint;
use cms_core::store::{Commit, Document, EventRecord, Store, UsageWrite};

use crate::params::Params;
use crate::session::Session;
use crate::store::{AnyStore, StoreSpec};

/// The method that evaluates a case of the case files.
pub const EVALUATE: &str = "evaluate_vector";

fn case_error(field: &str, message: impl Into<String>) -> CmsError {
    CmsError::BadJson { at: Location::field(EVALUATE, &format!("case.{field}")), message: message.into() }
}

fn case_text<'a>(case: &'a Value, field: &str) -> Result<&'a str, CmsError> {
    case[field].as_str().ok_or_else(|| case_error(field, "expected a string"))
}

fn case_decimal(text: &str, field: &str) -> Result<Decimal, CmsError> {
    parse_decimal(text).ok_or_else(|| CmsError::BadDecimal {
        at: Location::field(EVALUATE, &format!("case.{field}")),
        field: field.to_owned(),
        text: text.to_owned(),
    })
}

/// The `evaluate_vector` method: `{"case": <a case of tests/vectors/*.json>}`.
pub(crate) fn evaluate_method(mut params: Params) -> Result<Value, CmsError> {
    let case = params.required("case")?;
    params.finish()?;
    evaluate(&case)
}

/// What a case of the case files gives: the value its `expect` describes, or the error.
pub fn evaluate(case: &Value) -> Result<Value, CmsError> {
    match case_text(case, "kind")? {
        "tier_amount" => tier_amount(case),
        "round" => round(case),
        "meter_id" => meter_id(case),
        "timestamp" => timestamp(case),
        "usage_page" => usage_page(case),
        "month_end" => month_end_inline(case),
        "concurrent_writers" => concurrent_writers(case),
        other => Err(CmsError::InvalidValue {
            at: Location::field(EVALUATE, "case.kind"),
            text: other.to_owned(),
            reason: "expected tier_amount, round, meter_id, timestamp, usage_page, month_end or concurrent_writers"
                .into(),
        }),
    }
}

fn tier_amount(case: &Value) -> Result<Value, CmsError> {
    let mode = match case_text(case, "mode")? {
        "graduated" => TierMode::Graduated,
        "volume" => TierMode::Volume,
        other => return Err(case_error("mode", format!("expected graduated or volume, got {other:?}"))),
    };
    let pairs = case["tiers"].as_array().ok_or_else(|| case_error("tiers", "expected an array"))?;
    let mut tiers = Vec::with_capacity(pairs.len());
    for (index, pair) in pairs.iter().enumerate() {
        let field = format!("tiers[{index}]");
        let (Some(from), Some(rate)) = (pair[0].as_str(), pair[1].as_str()) else {
            return Err(case_error(&field, "expected [from, rate] as strings"));
        };
        tiers.push(Tier { from: case_decimal(from, &field)?, rate: case_decimal(rate, &field)? });
    }
    let quantity = case_decimal(case_text(case, "quantity")?, "quantity")?;
    let schedule = TierSchedule::new(mode, tiers, "schedule")?;
    let amount = schedule.amount(quantity)?;
    let bands = schedule.breakdown(quantity)?;
    // Exact amounts, normalised (no trailing zeros): the vectors compare them as numbers.
    let exact = |value: Decimal| value.normalize().to_string();
    Ok(
        json!({"amount": exact(amount), "bands": bands.iter().map(|band| exact(band.amount)).collect::<Vec<_>>()}),
    )
}

fn round(case: &Value) -> Result<Value, CmsError> {
    let scale = case["scale"]
        .as_u64()
        .and_then(|scale| u32::try_from(scale).ok())
        .ok_or_else(|| case_error("scale", "expected a non-negative integer"))?;
    let mode_text = case_text(case, "mode")?;
    let mode: RoundingMode = mode_text.parse().map_err(|reason| CmsError::InvalidValue {
        at: Location::field(EVALUATE, "case.mode"),
        text: mode_text.to_owned(),
        reason,
    })?;
    let amount = case_decimal(case_text(case, "amount")?, "amount")?;
    Ok(json!({"value": Rounding::new(scale, mode).apply(amount).to_string()}))
}

fn meter_id(case: &Value) -> Result<Value, CmsError> {
    let input = case_text(case, "input")?;
    let meter: MeterId = input.parse().map_err(|_| CmsError::BadMeterId {
        at: Location::field(EVALUATE, "case.input"),
        text: input.to_owned(),
    })?;
    Ok(match meter.info() {
        Some(info) => json!({"canonical": meter.canonical(), "known": true, "name": info.name}),
        None => json!({"canonical": meter.canonical(), "known": false}),
    })
}

fn timestamp(case: &Value) -> Result<Value, CmsError> {
    let input = case_text(case, "input")?;
    let instant = parse_timestamp(input).ok_or_else(|| CmsError::BadTimestamp {
        at: Location::field(EVALUATE, "case.input"),
        field: "input".into(),
        text: input.to_owned(),
    })?;
    Ok(json!({"utc": instant.format("%Y-%m-%dT%H:%M:%SZ").to_string()}))
}

fn usage_page(case: &Value) -> Result<Value, CmsError> {
    let page = parse_page(case_text(case, "page")?.as_bytes(), case_text(case, "source")?)?;
    let utc = |instant: cms_core::model::time::Instant| instant.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let records: Vec<Value> = page
        .records
        .iter()
        .map(|record| {
            json!([
                record.subscription,
                record.meter.canonical(),
                utc(record.start),
                utc(record.end),
                record.quantity.to_string(),
                record.resource_uri,
                record.location
            ])
        })
        .collect();
    Ok(json!({"records": records, "next_link": page.next_link}))
}

fn month_end_inline(case: &Value) -> Result<Value, CmsError> {
    let files = &case["files"];
    let file = |name: &str| -> Result<Vec<u8>, CmsError> {
        files[name]
            .as_str()
            .map(|text| text.as_bytes().to_vec())
            .ok_or_else(|| case_error(&format!("files.{name}"), "expected the file's text"))
    };
    let plan = file("plan.json")?;
    let report = workload::month_end(WorkloadInputs {
        plan: &plan,
        hierarchy: &mut file("hierarchy.csv")?.as_slice(),
        subscriptions: &mut file("subscriptions.csv")?.as_slice(),
        prices: &mut file("prices.csv")?.as_slice(),
        commission: &mut file("commission.csv")?.as_slice(),
        usage: UsageInput::Csv(&mut file("usage.csv")?.as_slice()),
    })?;
    let (mut lines, mut invoices, mut commissions, mut overrides) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    workload::write_outputs(
        &report,
        &mut OutputSinks {
            invoice_lines: &mut lines,
            invoices: &mut invoices,
            commissions: &mut commissions,
            overrides: &mut overrides,
        },
    )?;
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    let mut out = json!({
        "invoice_lines.csv": text(lines),
        "invoices.csv": text(invoices),
        "commissions.csv": text(commissions),
        "overrides.csv": text(overrides),
    });
    let unpriced: Vec<Value> = report
        .not_billed
        .iter()
        .filter(|entry| entry.reason == NotBilledReason::NoPrice)
        .map(|entry| {
            json!([entry.subscription, entry.meter.canonical(), workload::quantity_text(entry.quantity)])
        })
        .collect();
    if !unpriced.is_empty() {
        out["unpriced"] = Value::Array(unpriced);
    }
    Ok(out)
}

// ---- Concurrent writers: optimistic concurrency on one SQLite file.

/// A `concurrent_writers` case: a session and a rival engine on one fresh SQLite file. Before each of the
/// session's first `rival_commits` audited writes (a command's commit, an ingestion, a purge) the rival
/// commits a command of its own (adding partner `rival-<n>`), so the session's write extends a stale head
/// and the store refuses it with a real `conflict`; the engine then plans the command again on the fresh
/// state, up to its retry limit. The case's `call` (`{"method", "params"}`) runs on the session. Its
/// error is the case's error (`conflict` once the rival outlasts the retries); on success the case gives
/// `{"result", "attempts", "rival_commits", "audit"}`, `audit` being `verify_audit` on the session after
/// the call (events and audit records stored, the chain intact).
fn concurrent_writers(case: &Value) -> Result<Value, CmsError> {
    let commits = case["rival_commits"]
        .as_u64()
        .and_then(|commits| usize::try_from(commits).ok())
        .ok_or_else(|| case_error("rival_commits", "expected a non-negative integer"))?;
    let method =
        case["call"]["method"].as_str().ok_or_else(|| case_error("call.method", "expected a string"))?;
    let params = case["call"].get("params").cloned().unwrap_or(Value::Null);
    let scratch = Scratch::new()?;
    let path = scratch.0.join("cms.db");
    let counts = std::sync::Arc::new(std::sync::Mutex::new(RivalCounts::default()));
    let contended = Contended {
        inner: AnyStore::new(cms_sqlite::SqliteStore::open(&path)?),
        rival: Cms::open(cms_sqlite::SqliteStore::open(&path)?)?,
        left: commits,
        counts: std::sync::Arc::clone(&counts),
    };
    let mut engine = Cms::open(AnyStore::new(contended))?;
    let result = crate::methods::dispatch(Some(&mut engine), method, params)?;
    let audit = crate::methods::dispatch(Some(&mut engine), "verify_audit", Value::Null)?;
    let counts = *counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    Ok(json!({"result": result, "attempts": counts.attempts, "rival_commits": counts.rival, "audit": audit}))
}

/// What a [`Contended`] store saw: the session's audited writes tried, and the rival's commits.
#[derive(Debug, Clone, Copy, Default)]
struct RivalCounts {
    attempts: usize,
    rival: usize,
}

/// The session's store in a `concurrent_writers` case: the SQLite file, with a rival engine on the same
/// file that commits first before each of the session's next `left` audited writes.
struct Contended {
    inner: AnyStore,
    rival: Cms<cms_sqlite::SqliteStore>,
    left: usize,
    counts: std::sync::Arc<std::sync::Mutex<RivalCounts>>,
}

impl Contended {
    /// An audited write of the session is about to be stored at `at`: let the rival commit first (while
    /// it may), through its own connection.
    fn before_write(&mut self, at: Instant) -> Result<(), CmsError> {
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.attempts += 1;
        if self.left == 0 {
            return Ok(());
        }
        self.left -= 1;
        counts.rival += 1;
        let id = format!("rival-{}", counts.rival);
        let event = Event::NodeAdded { id: id.clone(), kind: NodeKind::Partner, parent: None, name: id };
        self.rival.execute(&Principal::platform("rival"), at, &event)?;
        Ok(())
    }
}

impl Store for Contended {
    fn commit(&mut self, commit: &Commit<'_>) -> Result<u64, CmsError> {
        if commit.audit.is_some() {
            self.before_write(commit.at)?;
        }
        self.inner.commit(commit)
    }

    fn append_events(&mut self, actor: &str, at: Instant, events: &[Event]) -> Result<u64, CmsError> {
        self.inner.append_events(actor, at, events)
    }

    fn events(&self) -> Result<Vec<EventRecord>, CmsError> {
        self.inner.events()
    }

    fn events_after(&self, seq: u64) -> Result<Vec<EventRecord>, CmsError> {
        self.inner.events_after(seq)
    }

    fn audit_records(&self) -> Result<Vec<AuditRecord>, CmsError> {
        self.inner.audit_records()
    }

    fn audit_head(&self) -> Result<AuditHead, CmsError> {
        self.inner.audit_head()
    }

    fn put_documents(&mut self, documents: &[Document]) -> Result<(), CmsError> {
        self.inner.put_documents(documents)
    }

    fn documents(&self, kind: &str, key_prefix: &str) -> Result<Vec<Document>, CmsError> {
        self.inner.documents(kind, key_prefix)
    }

    fn put_usage(
        &mut self,
        records: &[UsageRecord],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<UsageWrite, CmsError> {
        self.inner.put_usage(records, checkpoint)
    }

    fn put_usage_audited(
        &mut self,
        records: &[UsageRecord],
        checkpoint: Option<&Checkpoint>,
        audit: Option<&AuditRecord>,
    ) -> Result<UsageWrite, CmsError> {
        if let Some(audit) = audit {
            self.before_write(audit.at)?;
        }
        self.inner.put_usage_audited(records, checkpoint, audit)
    }

    fn purge_usage(&mut self, period: &Period, audit: Option<&AuditRecord>) -> Result<u64, CmsError> {
        if let Some(audit) = audit {
            self.before_write(audit.at)?;
        }
        self.inner.purge_usage(period, audit)
    }

    fn checkpoints(&self) -> Result<Vec<Checkpoint>, CmsError> {
        self.inner.checkpoints()
    }

    fn usage(&self, key: &UsageKey) -> Result<Option<UsageRecord>, CmsError> {
        self.inner.usage(key)
    }

    fn sample_interval(
        &self,
        subscription: &str,
        period: &Period,
    ) -> Result<Option<(Instant, Instant)>, CmsError> {
        self.inner.sample_interval(subscription, period)
    }

    fn for_each_usage(
        &self,
        period: &Period,
        visit: &mut dyn FnMut(&UsageRecord) -> Result<(), CmsError>,
    ) -> Result<(), CmsError> {
        self.inner.for_each_usage(period, visit)
    }
}

// ---- Matching.

/// A plain decimal (`-?digits(.digits)?`), the form amounts take in results and vectors.
fn plain_decimal(text: &str) -> Option<Decimal> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, "0"));
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    (all_digits(whole) && all_digits(fraction)).then(|| parse_decimal(text)).flatten()
}

/// Whether `actual` matches `expected` (see the module documentation); the error names the path of the
/// first difference.
pub fn matches(actual: &Value, expected: &Value, path: &str) -> Result<(), String> {
    match (expected, actual) {
        (Value::Object(fields), Value::Object(actual_fields)) => {
            for (key, value) in fields {
                let inner = format!("{path}.{key}");
                match actual_fields.get(key) {
                    Some(found) => matches(found, value, &inner)?,
                    None if value.is_null() => {}
                    None => return Err(format!("{inner}: missing, expected {value}")),
                }
            }
            Ok(())
        }
        (Value::Array(items), Value::Array(actual_items)) => {
            if items.len() != actual_items.len() {
                return Err(format!(
                    "{path}: expected {} items, got {}: {actual}",
                    items.len(),
                    actual_items.len()
                ));
            }
            for (index, (found, value)) in actual_items.iter().zip(items).enumerate() {
                matches(found, value, &format!("{path}[{index}]"))?;
            }
            Ok(())
        }
        (Value::String(left), Value::String(right)) => match (plain_decimal(left), plain_decimal(right)) {
            (Some(left), Some(right)) if left == right => Ok(()),
            _ if left == right => Ok(()),
            _ => Err(format!("{path}: expected {expected}, got {actual}")),
        },
        _ if expected == actual => Ok(()),
        _ => Err(format!("{path}: expected {expected}, got {actual}")),
    }
}

/// Whether an error has the expected `code` (and its message contains `message_contains`, if given).
pub fn error_matches(error: &CmsError, expected: &Value) -> Result<(), String> {
    if Some(error.code()) != expected["code"].as_str() {
        return Err(format!("expected error {}, got {}: {error}", expected["code"], error.code()));
    }
    match expected["message_contains"].as_str() {
        Some(fragment) if !error.to_string().contains(fragment) => {
            Err(format!("message {:?} lacks {fragment:?}", error.to_string()))
        }
        _ => Ok(()),
    }
}

/// Check one call's outcome against a step (`result` or `error`; neither: it must succeed).
pub fn check_step(step: &Value, outcome: &Result<Value, CmsError>) -> Result<(), String> {
    match (outcome, step.get("error")) {
        (Err(error), Some(expected)) => error_matches(error, expected),
        (Ok(value), Some(expected)) => {
            Err(format!("expected error {}, got a result: {value}", expected["code"]))
        }
        (Err(error), None) => Err(format!("unexpected error {}: {error}", error.code())),
        (Ok(value), None) => step.get("result").map_or(Ok(()), |expected| matches(value, expected, "result")),
    }
}

/// The step a case of the case files is replayed as.
pub fn case_as_step(case: &Value) -> Value {
    let mut step = json!({"method": EVALUATE, "params": {"case": case}});
    match case["expect"].get("error") {
        Some(error) => step["error"] = error.clone(),
        None => step["result"] = case["expect"].clone(),
    }
    step
}

// ---- The Rust runner (the reference for the other languages' runners).

/// Which store the runner gives a case that does not name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// A fresh memory store.
    Memory,
    /// A fresh SQLite file in the case's scratch folder (`reopen` steps close and open it).
    Sqlite,
}

/// What a run of the vectors gave.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Steps (or cases without steps) that passed.
    pub passed: usize,
    /// What failed, one line each: file, case, step, why.
    pub failures: Vec<String>,
}

/// A fresh scratch folder, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Self, CmsError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "cms-vectors-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|error| CmsError::Io {
            at: Location::whole(path.display().to_string()),
            message: error.to_string(),
        })?;
        Ok(Self(path))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replace each `(token, text)` (`{vectors}`, `{scratch}`, `{http}`) in every string of `value`.
pub fn substitute(value: &Value, tokens: &[(&str, String)]) -> Value {
    match value {
        Value::String(text) => {
            Value::String(tokens.iter().fold(text.clone(), |text, (token, with)| text.replace(token, with)))
        }
        Value::Array(items) => Value::Array(items.iter().map(|item| substitute(item, tokens)).collect()),
        Value::Object(fields) => Value::Object(
            fields.iter().map(|(key, item)| (key.clone(), substitute(item, tokens))).collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// A canned HTTP server on 127.0.0.1 for the vectors that pull a region (`"http"` of a case): each request
/// is answered by the first reply whose `path` starts the request's path (query ignored), with its
/// `status` and `body` (where `{http}` stands for the server's own URL); anything else gets 404. Stopped
/// when dropped.
pub struct HttpFixture {
    url: String,
    address: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One canned reply.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Reply {
    path: String,
    status: u16,
    body: String,
}

impl HttpFixture {
    /// Start serving `replies` (a JSON array of `{"path", "status", "body"}`).
    pub fn start(replies: &Value) -> Result<Self, CmsError> {
        let replies: Vec<Reply> = serde_json::from_value(replies.clone()).map_err(|error| {
            CmsError::BadJson { at: Location::whole("http fixture replies"), message: error.to_string() }
        })?;
        let io = |error: std::io::Error| CmsError::Io {
            at: Location::whole("http fixture"),
            message: error.to_string(),
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(io)?;
        let address = listener.local_addr().map_err(io)?;
        let url = format!("http://{address}");
        let replies: Vec<Reply> = replies
            .into_iter()
            .map(|reply| Reply { body: reply.body.replace("{http}", &url), ..reply })
            .collect();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    // A client that goes away mid-request is not the fixture's problem.
                    let _ = answer(stream, &replies);
                }
            }
        });
        Ok(Self { url, address, stop, thread: Some(thread) })
    }

    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.address);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Read one request (head and body) and write the canned reply.
fn answer(mut stream: std::net::TcpStream, replies: &[Reply]) -> std::io::Result<()> {
    use std::io::{Read, Write};
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut request = Vec::new();
    let mut buffer = [0u8; 4096];
    let head_end = loop {
        let count = stream.read(&mut buffer)?;
        if count == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buffer[..count]);
        if let Some(end) = request.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim().eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok()).flatten()
        })
        .unwrap_or(0);
    while request.len() < head_end + length {
        let count = stream.read(&mut buffer)?;
        if count == 0 {
            break;
        }
        request.extend_from_slice(&buffer[..count]);
    }
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or(target);
    let (status, body) = replies
        .iter()
        .find(|reply| path.starts_with(&reply.path))
        .map_or((404, "no fixture reply for this path"), |reply| (reply.status, reply.body.as_str()));
    write!(
        stream,
        "HTTP/1.1 {status} Fixture\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Run every case file and call file under `vectors` (`tests/vectors`).
pub fn run_all(vectors: &Path, backing: Backing) -> Result<Outcome, CmsError> {
    let mut outcome = Outcome::default();
    for folder in [vectors.to_path_buf(), vectors.join("calls")] {
        for path in json_files(&folder)? {
            run_file(&path, vectors, backing, &mut outcome)?;
        }
    }
    Ok(outcome)
}

/// The `*.json` files of a folder, by name.
pub fn json_files(folder: &Path) -> Result<Vec<PathBuf>, CmsError> {
    let io = |error: std::io::Error| CmsError::Io {
        at: Location::whole(folder.display().to_string()),
        message: error.to_string(),
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_file() && path.extension().is_some_and(|extension| extension == "json") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Run one file's cases (either kind), adding to `outcome`.
pub fn run_file(
    path: &Path,
    vectors: &Path,
    backing: Backing,
    outcome: &mut Outcome,
) -> Result<(), CmsError> {
    let name = path.file_name().map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    let bytes = std::fs::read(path).map_err(|error| CmsError::Io {
        at: Location::whole(path.display().to_string()),
        message: error.to_string(),
    })?;
    let document: Value = serde_json::from_slice(&bytes).map_err(|error| CmsError::BadJson {
        at: Location::whole(name.clone()),
        message: error.to_string(),
    })?;
    let cases = document["cases"].as_array().ok_or_else(|| CmsError::BadJson {
        at: Location::field(name.clone(), "cases"),
        message: "expected an array".into(),
    })?;
    for (index, case) in cases.iter().enumerate() {
        let label = format!("{name} #{index} ({})", case["name"].as_str().unwrap_or(""));
        let result = if case.get("kind").is_some() {
            let mut session = Session::memory()?;
            let step = case_as_step(case);
            let outcome_of_step = session.call(EVALUATE, step["params"].clone());
            check_step(&step, &outcome_of_step).map(|()| 1)
        } else {
            replay(case, vectors, backing)
        };
        match result {
            Ok(passed) => outcome.passed += passed,
            Err(why) => outcome.failures.push(format!("{label}: {why}")),
        }
    }
    Ok(())
}

/// Replay one case of a call file on a fresh session; returns how many steps passed, or the first failure.
pub fn replay(case: &Value, vectors: &Path, backing: Backing) -> Result<usize, String> {
    let scratch = Scratch::new().map_err(|error| error.to_string())?;
    let fixture = case
        .get("http")
        .map(HttpFixture::start)
        .transpose()
        .map_err(|error| format!("http fixture: {error}"))?;
    let tokens = [
        ("{vectors}", vectors.display().to_string()),
        ("{scratch}", scratch.0.display().to_string()),
        ("{http}", fixture.as_ref().map_or_else(String::new, |fixture| fixture.url().to_owned())),
    ];
    let spec = match case.get("open") {
        Some(open) => serde_json::from_value::<StoreSpec>(substitute(open, &tokens))
            .map_err(|error| format!("open: {error}"))?,
        None if backing == Backing::Sqlite => StoreSpec::Sqlite(scratch.0.join("cms.db")),
        None => StoreSpec::Memory,
    };
    let opened = Session::open(&spec);
    if let Some(expected) = case.get("open_error") {
        return match opened {
            Err(error) => error_matches(&error, expected).map(|()| 1),
            Ok(_) => Err(format!("open: expected error {}, the store opened", expected["code"])),
        };
    }
    let mut session = opened.map_err(|error| format!("open: {error}"))?;
    let steps = case["steps"].as_array().ok_or("expected steps")?;
    let mut passed = 0;
    for (index, step) in steps.iter().enumerate() {
        if step.get("reopen").is_some() {
            if spec != StoreSpec::Memory {
                drop(session);
                session = Session::open(&spec).map_err(|error| format!("step {index}: reopen: {error}"))?;
            }
            continue;
        }
        let method = step["method"].as_str().ok_or_else(|| format!("step {index}: no method"))?;
        let params = substitute(step.get("params").unwrap_or(&Value::Null), &tokens);
        let outcome = session.call(method, params);
        check_step(step, &outcome).map_err(|why| format!("step {index} ({method}): {why}"))?;
        passed += 1;
    }
    Ok(passed)
}

/// Every error code the vectors expect: `error.code` of steps and cases, `open_error.code`, and any
/// `code` inside an expected result (refused usage records carry theirs).
pub fn expected_codes(vectors: &Path) -> Result<std::collections::BTreeSet<String>, CmsError> {
    fn walk(value: &Value, codes: &mut std::collections::BTreeSet<String>) {
        match value {
            Value::Object(fields) => {
                for (key, item) in fields {
                    if key == "code"
                        && let Some(code) = item.as_str()
                    {
                        codes.insert(code.to_owned());
                    }
                    walk(item, codes);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, codes)),
            _ => {}
        }
    }
    let mut codes = std::collections::BTreeSet::new();
    for folder in [vectors.to_path_buf(), vectors.join("calls")] {
        for path in json_files(&folder)? {
            let bytes = std::fs::read(&path).map_err(|error| CmsError::Io {
                at: Location::whole(path.display().to_string()),
                message: error.to_string(),
            })?;
            let document: Value = serde_json::from_slice(&bytes).map_err(|error| CmsError::BadJson {
                at: Location::whole(path.display().to_string()),
                message: error.to_string(),
            })?;
            for case in document["cases"].as_array().into_iter().flatten() {
                for key in ["expect", "open_error"] {
                    if let Some(value) = case.get(key) {
                        walk(value, &mut codes);
                    }
                }
                for step in case["steps"].as_array().into_iter().flatten() {
                    for key in ["error", "result"] {
                        if let Some(value) = step.get(key) {
                            walk(value, &mut codes);
                        }
                    }
                }
            }
        }
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{check_step, matches};

    #[test]
    fn matching_is_partial_for_objects_exact_for_arrays_numeric_for_decimals() {
        let actual =
            json!({"total": "63.38", "lines": [{"amount": "0.00"}, {"amount": "5.000000"}], "extra": 1});
        assert!(
            matches(&actual, &json!({"total": "63.380", "lines": [{"amount": "0"}, {"amount": "5"}]}), "r")
                .is_ok()
        );
        assert!(matches(&actual, &json!({"missing": null}), "r").is_ok());
        let differences = [
            (json!({"total": "63.39"}), "r.total: expected \"63.39\""),
            (json!({"lines": [{"amount": "0"}]}), "r.lines: expected 1 items, got 2"),
            (json!({"absent": 1}), "r.absent: missing"),
            (json!({"extra": 2}), "r.extra: expected 2, got 1"),
            (json!({"lines": [{"amount": "-0.01"}, {"amount": "5"}]}), "r.lines[0].amount"),
        ];
        for (expected, why) in differences {
            let error = matches(&actual, &expected, "r").unwrap_err();
            assert!(error.starts_with(why), "{error}");
        }
        // Decimals compare as numbers only when both sides are plain decimals.
        assert!(matches(&json!("1e2"), &json!("100"), "r").is_err());
        assert!(matches(&json!("abc"), &json!("abc"), "r").is_ok());
    }

    #[test]
    fn a_step_needs_the_expected_outcome() {
        let error = cms_core::CmsError::InvalidPeriod { text: "2026-13".into(), reason: "bad month".into() };
        let failing = Err(error);
        assert!(
            check_step(
                &json!({"error": {"code": "invalid_period", "message_contains": "2026-13"}}),
                &failing
            )
            .is_ok()
        );
        assert!(
            check_step(
                &json!({"error": {"code": "invalid_period", "message_contains": "2026-12"}}),
                &failing
            )
            .is_err()
        );
        assert!(check_step(&json!({"error": {"code": "invalid_value"}}), &failing).is_err());
        assert!(check_step(&json!({"result": {}}), &failing).is_err());
        assert!(check_step(&json!({}), &failing).is_err());
        assert!(check_step(&json!({"error": {"code": "invalid_period"}}), &Ok(json!({}))).is_err());
        assert!(check_step(&json!({"result": {"a": "1"}}), &Ok(json!({"a": "1.0"}))).is_ok());
    }
}
