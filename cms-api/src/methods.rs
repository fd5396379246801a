//! The dispatch table: every method a binding can call, by name, with its parameters and a one-line doc.
//!
//! This is the single list of what the bindings offer. Each entry names the method, its parameters
//! (`name?` is optional) and what it returns, and points at a handler that reads the parameters (see
//! [`crate::params`] for the conventions: principals, RFC 3339 instants, `YYYY-MM` periods, decimals as
//! strings), calls the engine, and serialises the result with the core's serde (decimals as strings).
//!
//! Three kinds of handler:
//! - `Free`: no engine needed (the month-end job on files, page parsing, introspection); callable through
//!   [`crate::call`] and through any session;
//! - `Read`: a query on the engine;
//! - `Write`: a command (recorded as events, audited; a refused command changes nothing).
//!
//! Every handler reads all of its parameters, then calls [`Params::finish`] (refusing a parameter it does
//! not know), and only then acts: a misspelt parameter never half-runs a command.
//!
//! To add a method: write a handler below and add one [`Method`] entry to [`METHODS`] (kept in
//! alphabetical order within its group); the `methods` call, the C header's docs and the vectors'
//! coverage check pick it up from there.

use cms_azure_stack::{ClientCredentials, RegionConfig, UsageApiClient};
use cms_core::billing::{BillingContext, BillingRules};
use cms_core::engine::{Cms, Event, IngestSummary, Principal};
use cms_core::formats::usage_api::parse_page;
use cms_core::governance::audit::AuditHead;
use cms_core::governance::rbac::Action;
use cms_core::model::channel::SubscriptionInfo;
use cms_core::model::hierarchy::NodeIndex;
use cms_core::model::price_book::ChangeSet;
use cms_core::model::terms::CommercialTerms;
use cms_core::model::time::Instant;
use cms_core::model::usage::UsageRecord;
use cms_core::source::{Granularity, PageOrigin};
use cms_core::store::Store;
use cms_core::{CmsError, Location};
use serde::Serialize;
use serde_json::{Value, json};

use crate::params::Params;
use crate::store::AnyStore;

mod monitoring;

/// The engine every session holds.
pub type Engine = Cms<AnyStore>;

type FreeHandler = fn(Params) -> Result<Value, CmsError>;
type ReadHandler = fn(&Engine, Params) -> Result<Value, CmsError>;
type WriteHandler = fn(&mut Engine, Params) -> Result<Value, CmsError>;

/// How a method runs.
#[derive(Clone, Copy)]
enum Handler {
    Free(FreeHandler),
    Read(ReadHandler),
    Write(WriteHandler),
}

/// One callable method.
#[derive(Clone, Copy)]
pub struct Method {
    /// Its name, as passed to `call`.
    pub name: &'static str,
    /// Its parameters (`name?`: optional) and what it returns.
    pub signature: &'static str,
    /// What it does, in one line.
    pub doc: &'static str,
    handler: Handler,
}

impl Method {
    /// Whether the method needs a session (an engine on a store).
    pub fn needs_session(&self) -> bool {
        !matches!(self.handler, Handler::Free(_))
    }
}

/// Every method, in groups: free functions, commands, queries.
pub static METHODS: &[Method] = &[
    // ---- Free: no session needed.
    free(
        "error_codes",
        "() -> [code]",
        "Every error code the library can return (CmsError::CODES).",
        error_codes,
    ),
    free(
        "evaluate_vector",
        "(case) -> actual",
        "Evaluate a conformance case of tests/vectors/*.json (kinds tier_amount, round, meter_id, timestamp, usage_page, month_end) and return what it gives.",
        crate::vectors::evaluate_method,
    ),
    free("methods", "() -> [{name, signature, doc, session}]", "This list.", list_methods),
    free(
        "month_end",
        "(data, out, pages?, strict?, threads?, focus_out?) -> Summary",
        "The WORKLOAD.md month-end on a folder of files (cms month-end): writes the four outputs, returns a summary.",
        month_end,
    ),
    free(
        "parse_usage_page",
        "(page, source) -> {records, next_link}",
        "Parse a Usage API response page (its JSON text) into usage records without storing them.",
        parse_usage_page,
    ),
    free("version", "() -> {version}", "The library's version.", version),
    // ---- Commands (Write): recorded as events and audited; refused commands change nothing.
    write(
        "acknowledge_alert",
        "(principal, at, id, note?) -> {seq}",
        "Acknowledge an open alert of the principal's subtree (it stays open until resolved).",
        monitoring::acknowledge_alert,
    ),
    write(
        "apply_change_set",
        "(principal, at, change_set) -> {seq}",
        "Apply a bulk price change: a new version of every list in its scope.",
        apply_change_set,
    ),
    write(
        "close_period",
        "(principal, at, period) -> null",
        "Close a period: its month-end is stored as issued; later usage of it becomes adjustments.",
        close_period,
    ),
    write(
        "evaluate_alerts",
        "(principal, at) -> [{id, change}]",
        "Evaluate budgets and alert rules now and record it: new alerts open, found ones update, the rest resolve.",
        monitoring::evaluate_alerts,
    ),
    write(
        "execute",
        "(principal, at, event) -> {seq}",
        "Check, persist and apply one event (the core's Event JSON); returns its sequence number.",
        execute,
    ),
    write(
        "execute_all",
        "(principal, at, events) -> {seq}",
        "Several events as one command: all applied, or none.",
        execute_all,
    ),
    write(
        "ingest_page",
        "(page, source, region?, principal?, at?) -> IngestSummary",
        "Ingest one Usage API response page (its JSON text) through the ingestion rules.",
        ingest_page,
    ),
    write(
        "ingest_records",
        "(records, origin?, principal?, at?) -> IngestSummary",
        "Ingest usage records (the core's UsageRecord JSON) through the ingestion rules.",
        ingest_records,
    ),
    write(
        "issue_interim",
        "(principal, at) -> [InvoiceDocument]",
        "Progressive billing: interim invoices for tenants whose running amount crossed their threshold.",
        issue_interim,
    ),
    write(
        "issue_invoices",
        "(principal, at, period, buyers?) -> [InvoiceDocument]",
        "Issue the drafts of a period (closing it if open): gapless numbers, SHA-256 of each body; idempotent.",
        issue_invoices,
    ),
    write(
        "onboard_subscription",
        "(principal, at, id, tenant, name, info?) -> {seq}",
        "Onboard a subscription under a tenant with its attributes, as one command.",
        onboard_subscription,
    ),
    write(
        "pull_region",
        "(region, arm_endpoint, provider_subscription, tenant, client_id, client_secret, start, until, subscribers?, \
         granularity?, window_hours?, ca_certificates_pem?, allow_http?, max_attempts?) -> IngestSummary",
        "Pull a stamp's provider Usage API (from its checkpoints, up to an instant) through the ingestion rules.",
        pull_region,
    ),
    write(
        "purge_usage",
        "(principal, at) -> [{period, deleted}]",
        "Retention: purge the raw usage of invoiced periods past the policy's age.",
        purge_usage,
    ),
    write(
        "record_ingestion",
        "(principal, at, source, summary: IngestSummary) -> {seq}",
        "Record ingestion done outside the scheduler as a job run, so its refused and late records raise alerts.",
        monitoring::record_ingestion,
    ),
    write(
        "refresh",
        "() -> null",
        "Apply what other writers appended to the store since this session looked.",
        refresh,
    ),
    write(
        "reprocess",
        "(principal, period, tenant?, region?, rules?) -> Reprocessed",
        "Recompute and store the drafts of the open months a range touches, for a tenant and/or region.",
        reprocess,
    ),
    write(
        "rerate",
        "(principal, at, period, reason) -> [InvoiceDocument]",
        "Re-rate a closed period after corrections: credit or debit notes for exactly the difference.",
        rerate,
    ),
    write(
        "resolve_alert",
        "(principal, at, id, note?) -> {seq}",
        "Resolve an alert by hand (an evaluation that still finds its condition opens a new alert).",
        monitoring::resolve_alert,
    ),
    write(
        "set_budget",
        "(principal, at, budget: Budget) -> {seq}",
        "Set or replace a node's monthly budget (id, node, amount, currency, warning_percent?, breach_percent?, forecast?).",
        monitoring::set_budget,
    ),
    write(
        "tick",
        "(principal, at, regions?: [region config as pull_region, without until]) -> TickReport & {deliveries}",
        "Run what is due at an instant (pulls, drafts, issue, purge, evaluation), each run recorded; returns the \
         report and every alert change with its alert, for the caller to deliver.",
        monitoring::tick,
    ),
    write(
        "void_invoice",
        "(principal, at, number, reason) -> InvoiceDocument",
        "Void an issued invoice with a credit note cancelling it whole; returns the credit note.",
        void_invoice,
    ),
    // ---- Queries (Read).
    read(
        "alerts",
        "(principal, include_resolved?) -> [Alert]",
        "Alerts of the principal's subtree: open ones (acknowledged included), or all.",
        monitoring::alerts,
    ),
    read(
        "audit_records",
        "(principal) -> [AuditRecord]",
        "The audit trail, for a principal that may read it.",
        audit_records,
    ),
    read(
        "authorize_read",
        "(principal, action) -> null",
        "Check that a principal may run a query needing an action (read_billing, read_audit, ...) at its scope.",
        authorize_read,
    ),
    read("billing_rules", "() -> BillingRules", "The rules documents are rounded with.", billing_rules),
    read(
        "budget_statuses",
        "(principal, period, at) -> [BudgetStatus]",
        "Budgets of the principal's subtree in a period as of an instant: actual, forecast, state.",
        monitoring::budget_statuses,
    ),
    read(
        "chargeback_journal",
        "(principal, period) -> [JournalLine]",
        "Chargeback of a period as balanced journal lines.",
        chargeback_journal,
    ),
    read("checkpoints", "() -> [Checkpoint]", "Checkpoints of every region and subscriber.", checkpoints),
    read(
        "closing_months",
        "(at) -> [period]",
        "The months whose budgets an evaluation at an instant checks once more as of their end, oldest first.",
        closing_months,
    ),
    read(
        "commission_report",
        "(principal, period) -> CommissionReport",
        "Commission and override statements from the documents issued in a period.",
        commission_report,
    ),
    read(
        "dashboard",
        "(principal, period, at) -> Dashboard",
        "Dashboard data of the principal's subtree: month to date, projection, top tenants and meters, cost by \
         day and region, invoices by state, commissions, region health, open alerts.",
        monitoring::dashboard,
    ),
    read(
        "drafts",
        "(principal, period) -> [Invoice]",
        "The stored drafts of a month (see reprocess).",
        drafts,
    ),
    read(
        "estimate",
        "(principal, node, items: [{meter, quantity}], at) -> [EstimateLine]",
        "The cost calculator: a month of the given meters and quantities priced for a node at an instant.",
        estimate,
    ),
    read(
        "export_audit",
        "() -> {records, head}",
        "Every audit record and the chain's head, to keep elsewhere.",
        export_audit,
    ),
    read(
        "findings",
        "(at) -> [Finding]",
        "What the detection rules find at an instant (the current month's facts), without recording anything.",
        monitoring::findings,
    ),
    read(
        "invoice_documents",
        "(principal, period?) -> [ListedDocument]",
        "Issued, voided and draft documents the principal may see.",
        invoice_documents,
    ),
    read(
        "issued_document",
        "(principal, number) -> {issued, document}",
        "An issued document by number, checked against its recorded hash.",
        issued_document,
    ),
    read(
        "issued_in",
        "(principal, period) -> [InvoiceDocument]",
        "The month-end documents of a period as the principal sees them (for statements).",
        issued_in,
    ),
    read(
        "job_runs",
        "(principal, limit?) -> [JobRun]",
        "Recorded job runs, newest first (100 unless limit says); platform principals only.",
        monitoring::job_runs,
    ),
    read(
        "month_end_for",
        "(principal, period, rules?) -> MonthEndReport",
        "The month-end of a period from stored usage, as the principal may see it.",
        month_end_for,
    ),
    read(
        "month_end_in",
        "(period, prices_at?, terms?, rules?) -> MonthEndReport",
        "The month-end of a period computed under other commercial terms and/or with the prices in effect at an \
         instant, unscoped and recording nothing (closed periods are recomputed, not read back).",
        month_end_in,
    ),
    read(
        "month_end_report",
        "(period, rules?) -> MonthEndReport",
        "The whole month-end of a period from stored usage, unscoped (Cms::month_end; the operator's view).",
        month_end_report,
    ),
    read("node", "(principal, id, at) -> NodeView", "One node of the principal's subtree.", node),
    read(
        "nodes",
        "(principal, at) -> [NodeView]",
        "Every node of the principal's subtree, top-down, statuses as of an instant.",
        nodes,
    ),
    read(
        "preview_change_set",
        "(principal, change_set, rules?) -> ChangeSetPreview",
        "What a bulk change would do to the last closed period's revenue; records nothing.",
        preview_change_set,
    ),
    read(
        "preview_invoices",
        "(principal, period, buyers?) -> [InvoiceDocument]",
        "What would be issued for a period now (drafts, balances of what is issued).",
        preview_invoices,
    ),
    read(
        "price_chain",
        "(principal, subscription, meter, quantity, at) -> [ChainLevel]",
        "One usage quantity priced at every level of a subscription's resale chain, with margins.",
        price_chain,
    ),
    read(
        "scope_of",
        "(principal) -> {id, kind}",
        "The node a principal acts at (unknown_node if it holds no role there or above, once roles are in use).",
        scope_of,
    ),
    read(
        "showback",
        "(principal, period) -> ShowbackReport",
        "What each department (tenant) and project (subscription) cost, shared costs allocated.",
        showback,
    ),
    read(
        "state",
        "() -> {channel, catalogue, terms, ...}",
        "The engine's state (unscoped; the channel's nodes come from nodes), as Cms::state.",
        state,
    ),
    read(
        "stored_usage",
        "(principal, period) -> [UsageRecord]",
        "The usage records stored for a period (usage starting in it) of the principal's subscriptions; at the \
         platform also those of subscriptions not yet onboarded.",
        stored_usage,
    ),
    read(
        "subscriptions",
        "(principal, at) -> [NodeView]",
        "The subscriptions of the principal's subtree.",
        subscriptions,
    ),
    read(
        "tenant_month_end",
        "(principal, period) -> MonthEndReport",
        "A month-end cut to tenant invoices (what showback reads).",
        tenant_month_end,
    ),
    read(
        "tenant_scope",
        "(tenant) -> ChangeScope",
        "The scope of a bulk change on one tenant: the lists at the tenant and its subscriptions.",
        tenant_scope,
    ),
    read(
        "verify_audit",
        "(expected_head?, strict?) -> Verification",
        "Walk the audit chain with the event log; strict: a broken chain is an audit_broken error.",
        verify_audit,
    ),
    read(
        "visible",
        "(principal, id) -> {id, kind}",
        "A node the principal may see, by id (unknown_node when it does not exist or lies outside the scope).",
        visible,
    ),
    read(
        "verify_documents",
        "() -> {altered, intact}",
        "Check every issued document's stored body against its recorded hash.",
        verify_documents,
    ),
];

const fn free(
    name: &'static str,
    signature: &'static str,
    doc: &'static str,
    handler: FreeHandler,
) -> Method {
    Method { name, signature, doc, handler: Handler::Free(handler) }
}

const fn read(
    name: &'static str,
    signature: &'static str,
    doc: &'static str,
    handler: ReadHandler,
) -> Method {
    Method { name, signature, doc, handler: Handler::Read(handler) }
}

const fn write(
    name: &'static str,
    signature: &'static str,
    doc: &'static str,
    handler: WriteHandler,
) -> Method {
    Method { name, signature, doc, handler: Handler::Write(handler) }
}

/// The method of this name.
pub fn find(name: &str) -> Result<&'static Method, CmsError> {
    METHODS.iter().find(|method| method.name == name).ok_or_else(|| CmsError::InvalidValue {
        at: Location::field("call", "method"),
        text: name.to_owned(),
        reason: "no such method (the method `methods` lists them)".into(),
    })
}

/// Run `method` on `engine` (or without one, for free methods).
pub(crate) fn dispatch(engine: Option<&mut Engine>, name: &str, params: Value) -> Result<Value, CmsError> {
    let method = find(name)?;
    let params = Params::new(name, params)?;
    match (method.handler, engine) {
        (Handler::Free(handler), _) => handler(params),
        (Handler::Read(handler), Some(engine)) => handler(engine, params),
        (Handler::Write(handler), Some(engine)) => handler(engine, params),
        (Handler::Read(_) | Handler::Write(_), None) => Err(CmsError::InvalidValue {
            at: Location::field("call", "method"),
            text: name.to_owned(),
            reason: "this method needs a session (an engine on a store): open one and call it there".into(),
        }),
    }
}

/// Serialise a result with the core's serde.
fn to_json(method: &str, value: impl Serialize) -> Result<Value, CmsError> {
    serde_json::to_value(value).map_err(|error| CmsError::BadJson {
        at: Location::field(method, "result"),
        message: error.to_string(),
    })
}

fn seq(seq: u64) -> Value {
    json!({ "seq": seq })
}

/// `rules?`: the billing rules given, or the engine's.
fn rules(engine: &Engine, params: &mut Params) -> Result<BillingRules, CmsError> {
    Ok(params.opt_typed("rules")?.unwrap_or(engine.state().rules))
}

// ---- Free handlers.

fn error_codes(params: Params) -> Result<Value, CmsError> {
    params.finish()?;
    to_json("error_codes", CmsError::CODES)
}

fn list_methods(params: Params) -> Result<Value, CmsError> {
    params.finish()?;
    Ok(Value::Array(
        METHODS
            .iter()
            .map(|method| {
                json!({
                    "name": method.name,
                    "signature": method.signature,
                    "doc": method.doc,
                    "session": method.needs_session(),
                })
            })
            .collect(),
    ))
}

fn version(params: Params) -> Result<Value, CmsError> {
    params.finish()?;
    Ok(json!({ "version": env!("CARGO_PKG_VERSION") }))
}

fn month_end(mut params: Params) -> Result<Value, CmsError> {
    let options = crate::month_end::Options {
        data: params.string("data")?.into(),
        out: params.string("out")?.into(),
        pages: params.opt_string("pages")?.map(Into::into),
        strict: params.flag("strict", false)?,
        threads: params.opt_count("threads")?.map(|threads| usize::try_from(threads).unwrap_or(usize::MAX)),
        focus_out: params.opt_string("focus_out")?.map(Into::into),
    };
    params.finish()?;
    to_json("month_end", crate::month_end::run(&options)?)
}

fn parse_usage_page(mut params: Params) -> Result<Value, CmsError> {
    let page = params.string("page")?;
    let source = params.string("source")?;
    params.finish()?;
    let page = parse_page(page.as_bytes(), &source)?;
    Ok(json!({
        "records": to_json("parse_usage_page", &page.records)?,
        "next_link": page.next_link,
    }))
}

// ---- Commands.

fn principal_at(params: &mut Params) -> Result<(Principal, Instant), CmsError> {
    Ok((params.principal()?, params.instant("at")?))
}

fn execute(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    let event: Event = params.typed("event")?;
    params.finish()?;
    Ok(seq(engine.execute(&principal, at, &event)?))
}

fn execute_all(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    let events: Vec<Event> = params.typed("events")?;
    params.finish()?;
    Ok(seq(engine.execute_all(&principal, at, &events)?))
}

fn onboard_subscription(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    let id = params.string("id")?;
    let tenant = params.string("tenant")?;
    let name = params.string("name")?;
    let info: SubscriptionInfo = params.opt_typed("info")?.unwrap_or_default();
    params.finish()?;
    Ok(seq(engine.onboard_subscription(&principal, at, &id, &tenant, &name, info)?))
}

fn apply_change_set(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    let change_set: ChangeSet = params.typed("change_set")?;
    params.finish()?;
    Ok(seq(engine.apply_change_set(&principal, at, change_set)?))
}

/// `origin?`: a page name (string) or the core's `PageOrigin` JSON; `name` by default.
fn origin(params: &mut Params, default: &str) -> Result<PageOrigin, CmsError> {
    match params.take("origin") {
        None => Ok(PageOrigin::named(default)),
        Some(Value::String(name)) => Ok(PageOrigin::named(name)),
        Some(value) => {
            let mut inner = Params::new(params.method(), json!({ "origin": value }))?;
            inner.typed("origin")
        }
    }
}

/// `principal?` and `at?`: both or neither (the ingestion principal at the batch's latest usage end).
fn ingest_actor(params: &mut Params) -> Result<Option<(Principal, Instant)>, CmsError> {
    let principal = params.take("principal");
    let at = params.opt_instant("at")?;
    match (principal, at) {
        (None, None) => Ok(None),
        (Some(principal), Some(at)) => {
            let mut inner = Params::new(params.method(), json!({ "principal": principal }))?;
            Ok(Some((inner.principal()?, at)))
        }
        (Some(_), None) => {
            Err(crate::params::bad_field(params.method(), "at", "required with principal, missing"))
        }
        (None, Some(_)) => {
            Err(crate::params::bad_field(params.method(), "principal", "required with at, missing"))
        }
    }
}

fn ingest(
    engine: &mut Engine,
    records: &[UsageRecord],
    origin: &PageOrigin,
    actor: Option<(Principal, Instant)>,
) -> Result<IngestSummary, CmsError> {
    match actor {
        None => engine.ingest(records, origin),
        Some((principal, at)) => engine.ingest_as(&principal, at, records, origin),
    }
}

fn ingest_records(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let records: Vec<UsageRecord> = params.typed("records")?;
    let origin = origin(&mut params, "records")?;
    let actor = ingest_actor(&mut params)?;
    params.finish()?;
    to_json("ingest_records", ingest(engine, &records, &origin, actor)?)
}

/// Ingest usage records a binding has already read into the core's types (Python's Arrow path reads
/// columns in place, without JSON), with `ingest_records`' other parameters as JSON: `origin?`,
/// `principal?` and `at?` (both or neither). Errors name `method`, as the facade's do.
pub fn ingest_usage(
    engine: &mut Engine,
    method: &str,
    records: &[UsageRecord],
    params: Value,
) -> Result<IngestSummary, CmsError> {
    let mut params = Params::new(method, params)?;
    let origin = origin(&mut params, "records")?;
    let actor = ingest_actor(&mut params)?;
    params.finish()?;
    ingest(engine, records, &origin, actor)
}

/// Parse one page and ingest it (a page is refused whole if a record does not parse).
pub(crate) fn ingest_page_bytes(
    engine: &mut Engine,
    page: &[u8],
    origin: &PageOrigin,
    actor: Option<(Principal, Instant)>,
) -> Result<IngestSummary, CmsError> {
    let parsed = parse_page(page, &origin.name)?;
    let mut summary = ingest(engine, &parsed.records, origin, actor)?;
    summary.pages = 1;
    Ok(summary)
}

fn ingest_page(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let page = params.string("page")?;
    let source = params.string("source")?;
    let region = params.opt_string("region")?;
    let actor = ingest_actor(&mut params)?;
    params.finish()?;
    let mut origin = PageOrigin::named(source);
    if let Some(region) = region {
        origin.region = region;
    }
    to_json("ingest_page", ingest_page_bytes(engine, page.as_bytes(), &origin, actor)?)
}

fn close_period(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    let period = params.period("period")?;
    params.finish()?;
    engine.close_period(&principal, at, period)?;
    Ok(Value::Null)
}

fn reprocess(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let range = params.period("period")?;
    let tenant = params.opt_string("tenant")?;
    let region = params.opt_string("region")?;
    let rules = rules(engine, &mut params)?;
    params.finish()?;
    to_json("reprocess", engine.reprocess(&principal, range, tenant.as_deref(), region.as_deref(), rules)?)
}

fn issue_invoices(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    let period = params.period("period")?;
    let buyers = params.opt_strings("buyers")?;
    params.finish()?;
    to_json("issue_invoices", engine.issue_invoices(&principal, at, period, buyers.as_deref())?)
}

fn void_invoice(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    let number = params.string("number")?;
    let reason = params.string("reason")?;
    params.finish()?;
    to_json("void_invoice", engine.void_invoice(&principal, at, &number, &reason)?)
}

fn rerate(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    let period = params.period("period")?;
    let reason = params.string("reason")?;
    params.finish()?;
    to_json("rerate", engine.rerate(&principal, at, period, &reason)?)
}

fn issue_interim(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    params.finish()?;
    to_json("issue_interim", engine.issue_interim(&principal, at)?)
}

/// A stamp's Usage API configuration from parameters (`pull_region`'s, and each of `tick`'s `regions`):
/// `region, arm_endpoint, provider_subscription, tenant, client_id, client_secret, start, subscribers?,
/// granularity?, window_hours?, ca_certificates_pem?, allow_http?, max_attempts?`.
fn region_config(params: &mut Params) -> Result<RegionConfig, CmsError> {
    let region = params.string("region")?;
    let arm_endpoint = params.string("arm_endpoint")?;
    let provider_subscription = params.string("provider_subscription")?;
    let credentials = ClientCredentials {
        tenant: params.string("tenant")?,
        client_id: params.string("client_id")?,
        client_secret: params.string("client_secret")?,
    };
    let start = params.instant("start")?;
    let subscribers = params.opt_strings("subscribers")?.unwrap_or_default();
    let granularity: Option<Granularity> = params.opt_typed("granularity")?;
    let window_hours = params.opt_count("window_hours")?;
    let pem = params.opt_string("ca_certificates_pem")?;
    let allow_http = params.flag("allow_http", false)?;
    let max_attempts = params.opt_count("max_attempts")?;
    let mut config = RegionConfig::new(region, arm_endpoint, provider_subscription, credentials, start);
    config.subscribers = subscribers;
    config.granularity = granularity.unwrap_or(config.granularity);
    if let Some(hours) = window_hours {
        let hours =
            i64::try_from(hours).ok().filter(|hours| *hours > 0).ok_or_else(|| CmsError::InvalidValue {
                at: Location::field(params.method().to_owned(), "window_hours"),
                text: hours.to_string(),
                reason: "must be a positive number of hours".into(),
            })?;
        config.window = chrono::TimeDelta::hours(hours);
    }
    config.extra_root_certificates_pem = pem;
    config.allow_http = allow_http;
    if let Some(attempts) = max_attempts {
        config.retry.max_attempts = u32::try_from(attempts).unwrap_or(u32::MAX).max(1);
    }
    Ok(config)
}

fn pull_region(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let config = region_config(&mut params)?;
    let until = params.instant("until")?;
    params.finish()?;
    let mut client = UsageApiClient::new(config, until)?.with_checkpoints(&engine.checkpoints()?);
    to_json("pull_region", engine.pull(&mut client)?)
}

fn purge_usage(engine: &mut Engine, mut params: Params) -> Result<Value, CmsError> {
    let (principal, at) = principal_at(&mut params)?;
    params.finish()?;
    let purged = engine.purge_usage(&principal, at)?;
    Ok(Value::Array(
        purged
            .into_iter()
            .map(|(period, deleted)| json!({ "period": period.to_string(), "deleted": deleted }))
            .collect(),
    ))
}

fn refresh(engine: &mut Engine, params: Params) -> Result<Value, CmsError> {
    params.finish()?;
    engine.refresh()?;
    Ok(Value::Null)
}

// ---- Queries.

fn checkpoints(engine: &Engine, params: Params) -> Result<Value, CmsError> {
    params.finish()?;
    to_json("checkpoints", engine.checkpoints()?)
}

fn closing_months(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let at = params.instant("at")?;
    params.finish()?;
    let months = engine.closing_months(at)?;
    Ok(Value::Array(months.iter().map(|month| Value::String(month.to_string())).collect()))
}

fn month_end_for(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let period = params.period("period")?;
    let rules = rules(engine, &mut params)?;
    params.finish()?;
    to_json("month_end_for", engine.month_end_for(&principal, period, rules)?)
}

fn month_end_report(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let period = params.period("period")?;
    let rules = rules(engine, &mut params)?;
    params.finish()?;
    to_json("month_end_report", engine.month_end(period, rules)?)
}

fn month_end_in(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let period = params.period("period")?;
    let prices_at = params.opt_instant("prices_at")?;
    let terms: Option<CommercialTerms> = params.opt_typed("terms")?;
    let rules = rules(engine, &mut params)?;
    params.finish()?;
    let state = engine.state();
    let context = BillingContext {
        prices_at,
        ..BillingContext::new(&state.hierarchy, &state.channel, terms.as_ref().unwrap_or(&state.terms))
    };
    to_json("month_end_in", engine.month_end_in(context, period, rules)?)
}

fn tenant_month_end(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let period = params.period("period")?;
    params.finish()?;
    to_json("tenant_month_end", engine.tenant_month_end(&principal, period)?)
}

fn drafts(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let period = params.period("period")?;
    params.finish()?;
    to_json("drafts", engine.drafts(&principal, period)?)
}

fn estimate(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let node = params.string("node")?;
    let items = params.meter_quantities("items")?;
    let at = params.instant("at")?;
    params.finish()?;
    to_json("estimate", engine.estimate(&principal, &node, &items, at)?)
}

fn price_chain(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let subscription = params.string("subscription")?;
    let meter = params.meter("meter")?;
    let quantity = params.decimal("quantity")?;
    let at = params.instant("at")?;
    params.finish()?;
    to_json("price_chain", engine.price_chain(&principal, &subscription, meter, quantity, at)?)
}

fn preview_change_set(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let change_set: ChangeSet = params.typed("change_set")?;
    let rules = rules(engine, &mut params)?;
    params.finish()?;
    to_json("preview_change_set", engine.preview_change_set(&principal, &change_set, rules)?)
}

fn tenant_scope(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let tenant = params.string("tenant")?;
    params.finish()?;
    to_json("tenant_scope", engine.tenant_scope(&tenant)?)
}

fn preview_invoices(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let period = params.period("period")?;
    let buyers = params.opt_strings("buyers")?;
    params.finish()?;
    to_json("preview_invoices", engine.preview_invoices(&principal, period, buyers.as_deref())?)
}

fn issued_document(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let number = params.string("number")?;
    params.finish()?;
    let (issued, document) = engine.issued_document(&principal, &number)?;
    Ok(json!({
        "issued": to_json("issued_document", issued)?,
        "document": to_json("issued_document", document)?,
    }))
}

fn invoice_documents(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let period = params.opt_period("period")?;
    params.finish()?;
    to_json("invoice_documents", engine.invoice_documents(&principal, period)?)
}

fn verify_documents(engine: &Engine, params: Params) -> Result<Value, CmsError> {
    params.finish()?;
    let altered = engine.verify_documents()?;
    Ok(json!({ "intact": altered.is_empty(), "altered": altered }))
}

fn issued_in(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let period = params.period("period")?;
    params.finish()?;
    to_json("issued_in", engine.issued_in(&principal, period)?)
}

fn commission_report(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let period = params.period("period")?;
    params.finish()?;
    to_json("commission_report", engine.commission_report(&principal, period)?)
}

fn showback(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let period = params.period("period")?;
    params.finish()?;
    to_json("showback", engine.showback(&principal, period)?)
}

fn chargeback_journal(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let period = params.period("period")?;
    params.finish()?;
    to_json("chargeback_journal", engine.chargeback_journal(&principal, period)?)
}

fn billing_rules(engine: &Engine, params: Params) -> Result<Value, CmsError> {
    params.finish()?;
    to_json("billing_rules", engine.billing_rules())
}

fn nodes(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let at = params.instant("at")?;
    params.finish()?;
    to_json("nodes", engine.nodes(&principal, at)?)
}

fn node(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let id = params.string("id")?;
    let at = params.instant("at")?;
    params.finish()?;
    to_json("node", engine.node(&principal, &id, at)?)
}

/// A node of the channel as `scope_of` and `visible` return it: `{id, kind}`.
fn node_ref(engine: &Engine, index: NodeIndex) -> Value {
    let node = engine.state().hierarchy.node(index);
    json!({ "id": node.id, "kind": node.kind })
}

fn scope_of(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    params.finish()?;
    Ok(node_ref(engine, engine.scope_of(&principal)?))
}

fn visible(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let id = params.string("id")?;
    params.finish()?;
    Ok(node_ref(engine, engine.visible(&principal, &id)?))
}

fn stored_usage(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let period = params.period("period")?;
    params.finish()?;
    let mut records = Vec::new();
    visible_usage(engine, &principal, &period, &mut |record| {
        records.push(to_json("stored_usage", record)?);
        Ok(())
    })?;
    Ok(Value::Array(records))
}

/// Visit the usage records stored for a period that a principal may read: those of its subscriptions, and
/// at the platform also those of subscriptions not yet onboarded.
fn visible_usage(
    engine: &Engine,
    principal: &Principal,
    period: &cms_core::model::time::Period,
    visit: &mut dyn FnMut(&UsageRecord) -> Result<(), CmsError>,
) -> Result<(), CmsError> {
    engine.authorize_read(principal, Action::ReadUsage)?;
    let scope = engine.scope_of(principal)?;
    let hierarchy = &engine.state().hierarchy;
    let everything = scope == hierarchy.root();
    engine.store().for_each_usage(period, &mut |record| {
        let visible = everything
            || hierarchy
                .find_ignoring_case(&record.subscription)
                .is_some_and(|node| hierarchy.is_within(node, scope));
        if visible { visit(record) } else { Ok(()) }
    })
}

/// `stored_usage`'s records in the core's types, for a binding that lays them out itself (Python's Arrow
/// tables), with its parameters as JSON (`principal, period`); errors name `method`.
pub fn stored_usage_records(
    engine: &Engine,
    method: &str,
    params: Value,
) -> Result<Vec<UsageRecord>, CmsError> {
    let mut params = Params::new(method, params)?;
    let principal = params.principal()?;
    let period = params.period("period")?;
    params.finish()?;
    let mut records = Vec::new();
    visible_usage(engine, &principal, &period, &mut |record| {
        records.push(record.clone());
        Ok(())
    })?;
    Ok(records)
}

fn subscriptions(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let at = params.instant("at")?;
    params.finish()?;
    to_json("subscriptions", engine.subscriptions(&principal, at)?)
}

fn audit_records(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    params.finish()?;
    to_json("audit_records", engine.audit_records(&principal)?)
}

fn authorize_read(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let principal = params.principal()?;
    let action: Action = params.typed("action")?;
    params.finish()?;
    engine.authorize_read(&principal, action)?;
    Ok(Value::Null)
}

fn verify_audit(engine: &Engine, mut params: Params) -> Result<Value, CmsError> {
    let expected: Option<AuditHead> = params.opt_typed("expected_head")?;
    let strict = params.flag("strict", false)?;
    params.finish()?;
    let verification = engine.verify_audit(expected.as_ref())?;
    if strict && let Some(broken) = &verification.broken {
        return Err(CmsError::AuditBroken { seq: broken.seq, reason: broken.reason.clone() });
    }
    to_json("verify_audit", verification)
}

fn export_audit(engine: &Engine, params: Params) -> Result<Value, CmsError> {
    params.finish()?;
    let (records, head) = engine.export_audit()?;
    Ok(json!({ "records": to_json("export_audit", records)?, "head": to_json("export_audit", head)? }))
}

fn state(engine: &Engine, params: Params) -> Result<Value, CmsError> {
    params.finish()?;
    let state = engine.state();
    let periods = |periods: &std::collections::BTreeSet<cms_core::model::time::Period>| {
        periods.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    to_json(
        "state",
        json!({
            "channel": to_json("state", &state.channel)?,
            "catalogue": to_json("state", &state.catalogue)?,
            "terms": to_json("state", &state.terms)?,
            "ingest_policy": to_json("state", &state.ingest_policy)?,
            "closed_periods": periods(&state.closed_periods),
            "rules": to_json("state", state.rules)?,
            "invoice_settings": to_json("state", &state.invoice_settings)?,
            "taxes": to_json("state", &state.taxes)?,
            "chargeback": to_json("state", &state.chargeback)?,
            "roles": to_json("state", &state.roles)?,
            "policies": to_json("state", &state.policies)?,
            "change_requests": to_json("state", &state.change_requests)?,
            "purged_periods": periods(&state.purged_periods),
            "issued": to_json("state", &state.issued)?,
            "sequences": to_json("state", &state.sequences)?,
        }),
    )
}
