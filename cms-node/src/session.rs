//! The engine as a JavaScript class: `Cms` over a `cms_api::Session` on a memory store or a SQLite file.
//!
//! Each `Cms` owns one worker thread that owns the session: calls are queued to it in the order they are
//! made and run there one at a time, so the event loop never waits for the engine (asynchronous methods
//! return a Promise settled from the worker through a thread-safe function, no async runtime), and calls
//! made without awaiting the previous one still apply in order. `callSync` queues its call too and waits
//! for it, so it sees everything queued before it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread;

use cms_api::{CmsError, Session, StoreSpec};
use cms_core::Location;
use napi::bindgen_prelude::{JavaScriptClassExt, JsObjectValue, JsValue, Object, Unknown};
use napi::{Env, JsDeferred, ValueType};
use napi_derive::napi;
use serde_json::Value;

use crate::convert::{Arguments, coded_error, js_error, string_argument};

/// A store kept in memory: gone when the `Cms` on it is closed or collected (tests, previews, notebooks).
#[napi(js_name = "MemoryStore")]
pub struct JsMemoryStore {}

#[napi]
impl JsMemoryStore {
    /// A memory store.
    #[napi(constructor)]
    pub fn new() -> Self {
        Self {}
    }

    /// `"memory"`.
    #[napi(getter)]
    pub fn kind(&self) -> &'static str {
        "memory"
    }
}

impl Default for JsMemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The embedded SQLite store in a file: created with its schema if missing, brought up to date if older.
/// Its events are replayed when a `Cms` opens on it, so a later process continues where this one stopped.
#[napi(js_name = "SqliteStore")]
pub struct JsSqliteStore {
    path: String,
}

#[napi]
impl JsSqliteStore {
    /// A SQLite store in the file at `path` (nothing is opened until a `Cms` opens on it).
    #[napi(constructor)]
    pub fn new(path: String) -> Self {
        Self { path }
    }

    /// `"sqlite"`.
    #[napi(getter)]
    pub fn kind(&self) -> &'static str {
        "sqlite"
    }

    /// The database file.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.path.clone()
    }
}

/// The store a `Cms` is asked to open on: a `MemoryStore`, a `SqliteStore`, or nothing (memory). Anything
/// else is `bad_json` naming the argument, like every other argument of the wrong kind.
fn store_spec(env: Env, method: &str, store: Option<Unknown<'_>>) -> Result<StoreSpec, CmsError> {
    let refused = |message: String| CmsError::BadJson { at: Location::field(method, "store"), message };
    let napi = |error: napi::Error| refused(error.reason);
    let Some(store) = store else { return Ok(StoreSpec::Memory) };
    match store.get_type().map_err(napi)? {
        ValueType::Undefined | ValueType::Null => Ok(StoreSpec::Memory),
        _ if JsMemoryStore::instance_of(&env, &store).map_err(napi)? => Ok(StoreSpec::Memory),
        _ if JsSqliteStore::instance_of(&env, &store).map_err(napi)? => {
            let path: String = store
                .coerce_to_object()
                .and_then(|object| object.get_named_property("path"))
                .map_err(napi)?;
            Ok(StoreSpec::Sqlite(path.into()))
        }
        other => Err(refused(format!("expected a MemoryStore or a SqliteStore, got {other}"))),
    }
}

/// What a call gave: the result, the core's error, or a caught panic's message.
enum Outcome {
    Done(Result<Value, CmsError>),
    Panicked(String),
}

type Resolver = Box<dyn FnOnce(Env) -> napi::Result<Value> + Send>;

/// Where the outcome of a queued call goes.
enum Reply {
    /// A `callSync` waiting on the main thread.
    Wait(SyncSender<Outcome>),
    /// A Promise, settled on the main thread when the worker hands it the outcome.
    Settle(JsDeferred<Value, Resolver>),
}

impl Reply {
    fn send(self, outcome: Outcome) {
        match self {
            // The waiting side only goes away if the whole process is going away.
            Self::Wait(sender) => drop(sender.send(outcome)),
            Self::Settle(deferred) => deferred.resolve(Box::new(move |env| settle(env, outcome))),
        }
    }
}

fn settle(env: Env, outcome: Outcome) -> napi::Result<Value> {
    match outcome {
        Outcome::Done(result) => result.map_err(|error| js_error(env, &error)),
        Outcome::Panicked(message) => Err(coded_error(env, "panic", &message)),
    }
}

/// One queued piece of work.
enum Job {
    /// `session.call(method, params)`.
    Call { method: String, params: Value, reply: Reply },
    /// Close the session (after everything queued before), then stop.
    Close(Reply),
}

/// The worker: open the session, answer the opening, then run jobs in order until the queue closes. A panic
/// inside the engine is reported to its caller; the session is then dropped (its state is not to be trusted)
/// and later calls are refused as on a closed `Cms`.
fn work(spec: &StoreSpec, opened: impl FnOnce(Result<(), CmsError>), jobs: &Receiver<Job>) {
    let mut session = match Session::open(spec) {
        Ok(session) => session,
        Err(error) => return opened(Err(error)),
    };
    opened(Ok(()));
    for job in jobs {
        match job {
            Job::Call { method, params, reply } => {
                match catch_unwind(AssertUnwindSafe(|| session.call(&method, params))) {
                    Ok(result) => reply.send(Outcome::Done(result)),
                    Err(panic) => {
                        let message = panic
                            .downcast_ref::<&str>()
                            .map(|text| (*text).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "the engine panicked".to_owned());
                        reply.send(Outcome::Panicked(format!("internal error in {method}: {message}")));
                        return;
                    }
                }
            }
            Job::Close(reply) => {
                drop(session);
                reply.send(Outcome::Done(Ok(Value::Null)));
                return;
            }
        }
    }
}

/// Start the worker thread of a session on `spec`, taking its jobs from `queue`; `opened` hears, from that
/// thread, whether the store opened.
fn spawn(
    spec: StoreSpec,
    opened: impl FnOnce(Result<(), CmsError>) + Send + 'static,
    queue: Receiver<Job>,
) -> Result<(), CmsError> {
    thread::Builder::new()
        .name("cms-session".into())
        .spawn(move || work(&spec, opened, &queue))
        .map(drop)
        .map_err(|error| CmsError::Io {
            at: Location::whole("cms-session thread"),
            message: error.to_string(),
        })
}

fn closed(method: &str) -> CmsError {
    CmsError::InvalidValue {
        at: Location::field(method, "session"),
        text: "closed".into(),
        reason: "this Cms is closed (or stopped after an internal error): open a new one".into(),
    }
}

fn describe(spec: &StoreSpec) -> String {
    match spec {
        StoreSpec::Memory => "memory".into(),
        StoreSpec::Sqlite(path) => format!("sqlite:{}", path.display()),
    }
}

/// The CMS engine on a store: every command and query of `cms_api::methods()` through `call`, and a typed
/// method for each of them (`camelCase` of the facade's name).
///
/// Conventions (the same in every language): parameters and results are the facade's JSON with snake_case
/// keys; decimals are strings (`"0.05"`, never numbers: a number with a fraction is refused as
/// `bad_decimal`); instants are `Date`s or RFC 3339 strings in parameters and RFC 3339 strings in results;
/// periods are `"YYYY-MM"`; principals are `{ id, node }`. Errors are `Error`s whose `code` is the stable
/// snake_case code (`unknown_node`, `forbidden`, `bad_decimal`, ...).
///
/// Methods returning a Promise run on the session's worker thread, in the order they were called; a
/// refused command changes nothing.
#[napi(js_name = "Cms")]
pub struct JsCms {
    jobs: Option<Sender<Job>>,
    store: String,
}

#[napi]
impl JsCms {
    /// Open the engine on a store (a `MemoryStore` when none is given), replaying its events. This waits
    /// for the store to open; `Cms.open` does the same without blocking the event loop.
    #[napi(constructor, ts_args_type = "store?: MemoryStore | SqliteStore")]
    pub fn new(env: Env, store: Option<Unknown<'_>>) -> napi::Result<Self> {
        let spec = store_spec(env, "Cms", store).map_err(|error| js_error(env, &error))?;
        let (sender, receiver) = mpsc::sync_channel(1);
        let opened = move |result| drop(sender.send(result));
        let (jobs, queue) = mpsc::channel();
        spawn(spec.clone(), opened, queue).map_err(|error| js_error(env, &error))?;
        match receiver.recv() {
            Ok(Ok(())) => Ok(Self { jobs: Some(jobs), store: describe(&spec) }),
            Ok(Err(error)) => Err(js_error(env, &error)),
            Err(_) => Err(coded_error(env, "panic", "the session thread stopped while opening the store")),
        }
    }

    /// Open the engine on a store (memory when none is given) off the main thread; resolves to the `Cms`.
    #[napi(ts_args_type = "store?: MemoryStore | SqliteStore", ts_return_type = "Promise<Cms>")]
    pub fn open<'env>(env: &'env Env, store: Option<Unknown<'_>>) -> napi::Result<Object<'env>> {
        type OpenResolver = Box<dyn FnOnce(Env) -> napi::Result<JsCms> + Send>;
        let (deferred, promise) = env.create_deferred::<JsCms, OpenResolver>()?;
        let spec = match store_spec(*env, "Cms.open", store) {
            Ok(spec) => spec,
            Err(error) => {
                deferred.resolve(Box::new(move |env| Err(js_error(env, &error))));
                return Ok(promise);
            }
        };
        let store = describe(&spec);
        let (jobs, queue) = mpsc::channel();
        let opened = move |result: Result<(), CmsError>| {
            deferred.resolve(Box::new(move |env| match result {
                Ok(()) => Ok(JsCms { jobs: Some(jobs), store }),
                Err(error) => Err(js_error(env, &error)),
            }));
        };
        spawn(spec, opened, queue).map_err(|error| js_error(*env, &error))?;
        Ok(promise)
    }

    /// Where this engine keeps its state: `"memory"` or `"sqlite:<path>"`.
    #[napi(getter)]
    pub fn store(&self) -> String {
        self.store.clone()
    }

    /// Whether `close()` was called.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.jobs.is_none()
    }

    /// Queue a job; on a closed `Cms` its reply gets the refusal instead.
    fn queue(&self, job: Job) {
        let refuse = |job: Job| match job {
            Job::Call { method, reply, .. } => reply.send(Outcome::Done(Err(closed(&method)))),
            Job::Close(reply) => reply.send(Outcome::Done(Err(closed("close")))),
        };
        match &self.jobs {
            None => refuse(job),
            Some(jobs) => {
                if let Err(mpsc::SendError(job)) = jobs.send(job) {
                    refuse(job);
                }
            }
        }
    }

    /// Queue a call; the Promise settles with its outcome. Arguments that did not convert reject it too
    /// (an asynchronous method never throws).
    fn call_async<'env>(
        &self,
        env: &'env Env,
        call: Result<(String, Value), CmsError>,
    ) -> napi::Result<Object<'env>> {
        let (deferred, promise) = env.create_deferred::<Value, Resolver>()?;
        match call {
            Ok((method, params)) => self.queue(Job::Call { method, params, reply: Reply::Settle(deferred) }),
            Err(error) => Reply::Settle(deferred).send(Outcome::Done(Err(error))),
        }
        Ok(promise)
    }

    /// A typed method's call: its arguments as parameters, then the Promise.
    fn typed<'env>(
        &self,
        env: &'env Env,
        method: &str,
        arguments: impl FnOnce(Arguments<'_>) -> Result<Arguments<'_>, CmsError>,
    ) -> napi::Result<Object<'env>> {
        let params = arguments(Arguments::new(*env, method)).map(Arguments::finish);
        self.call_async(env, params.map(|params| (method.to_owned(), params)))
    }

    /// Call any method of `methods()` by name with its parameters (an object, or nothing) on the session's
    /// thread; resolves to its result (the facade's JSON).
    #[napi(
        ts_args_type = "method: string, params?: Record<string, unknown> | null",
        ts_return_type = "Promise<any>"
    )]
    pub fn call<'env>(
        &self,
        env: &'env Env,
        method: Unknown<'_>,
        params: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.call_async(env, call_arguments(*env, method, params))
    }

    /// `call`, waiting for the result on the calling thread (after the calls queued before it): for scripts
    /// and quick queries. Throws the error instead of rejecting. It blocks the event loop meanwhile, so not
    /// while a queued call needs this thread (a `pull_region` against a server running in this process).
    #[napi(ts_args_type = "method: string, params?: Record<string, unknown> | null", ts_return_type = "any")]
    pub fn call_sync(
        &self,
        env: Env,
        method: Unknown<'_>,
        params: Option<Unknown<'_>>,
    ) -> napi::Result<Value> {
        let (method, params) = call_arguments(env, method, params).map_err(|error| js_error(env, &error))?;
        let (sender, receiver) = mpsc::sync_channel(1);
        self.queue(Job::Call { method, params, reply: Reply::Wait(sender) });
        match receiver.recv() {
            Ok(outcome) => settle(env, outcome),
            Err(_) => Err(js_error(env, &closed("callSync"))),
        }
    }

    /// Close the session after the calls queued before this one (a SQLite file is closed); later calls
    /// are refused with `invalid_value`. Resolves when closed.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&mut self, env: &'env Env) -> napi::Result<Object<'env>> {
        let (deferred, promise) = env.create_deferred::<Value, Resolver>()?;
        match self.jobs.take() {
            Some(jobs) => {
                if let Err(mpsc::SendError(Job::Close(reply) | Job::Call { reply, .. })) =
                    jobs.send(Job::Close(Reply::Settle(deferred)))
                {
                    // The worker already stopped: nothing is left to close.
                    reply.send(Outcome::Done(Ok(Value::Null)));
                }
            }
            None => deferred.resolve(Box::new(|_| Ok(Value::Null))),
        }
        Ok(promise)
    }

    // ---- Typed methods: each builds the parameters of one facade method and calls it.

    /// Check, persist and apply one event (the core's Event JSON, e.g. `{type: "node_added", ...}`).
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, event: Record<string, unknown>",
        ts_return_type = "Promise<{ seq: number }>"
    )]
    pub fn execute<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        event: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "execute", |arguments| {
            arguments.with("principal", principal)?.with("at", at)?.with("event", event)
        })
    }

    /// Several events as one command: all applied, or none.
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, events: Array<Record<string, unknown>>",
        ts_return_type = "Promise<{ seq: number }>"
    )]
    pub fn execute_all<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        events: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "execute_all", |arguments| {
            arguments.with("principal", principal)?.with("at", at)?.with("events", events)
        })
    }

    /// Onboard a subscription under a tenant (`info`: offer, state, external ids, region).
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, id: string, tenant: string, name: string, info?: Record<string, unknown>",
        ts_return_type = "Promise<{ seq: number }>"
    )]
    #[allow(clippy::too_many_arguments)] // the facade method's own parameters, in its order
    pub fn onboard_subscription<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        id: Unknown<'_>,
        tenant: Unknown<'_>,
        name: Unknown<'_>,
        info: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "onboard_subscription", |arguments| {
            arguments
                .with("principal", principal)?
                .with("at", at)?
                .with("id", id)?
                .with("tenant", tenant)?
                .with("name", name)?
                .with("info", info)
        })
    }

    /// Ingest one Usage API response page (its JSON text: quantities are read exactly from it) through the
    /// ingestion rules; `source` names the page in errors and in the audit trail.
    #[napi(
        ts_args_type = "page: string, source: string, options?: IngestPageOptions",
        ts_return_type = "Promise<any>"
    )]
    pub fn ingest_page<'env>(
        &self,
        env: &'env Env,
        page: Unknown<'_>,
        source: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "ingest_page", |arguments| {
            arguments.with("page", page)?.with("source", source)?.with_options(options)
        })
    }

    /// Ingest usage records (the core's `UsageRecord` JSON; quantities as strings) through the ingestion rules.
    #[napi(
        ts_args_type = "records: Array<Record<string, unknown>>, options?: IngestRecordsOptions",
        ts_return_type = "Promise<any>"
    )]
    pub fn ingest_records<'env>(
        &self,
        env: &'env Env,
        records: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "ingest_records", |arguments| {
            arguments.with("records", records)?.with_options(options)
        })
    }

    /// Every node of the principal's subtree, top-down, statuses as of `at`.
    #[napi(ts_args_type = "principal: Principal, at: Date | string", ts_return_type = "Promise<any[]>")]
    pub fn nodes<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "nodes", |arguments| arguments.with("principal", principal)?.with("at", at))
    }

    /// The subscriptions of the principal's subtree.
    #[napi(ts_args_type = "principal: Principal, at: Date | string", ts_return_type = "Promise<any[]>")]
    pub fn subscriptions<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "subscriptions", |arguments| arguments.with("principal", principal)?.with("at", at))
    }

    /// The cost calculator: a month of the given meters and quantities (strings) priced for a node at `at`.
    #[napi(
        ts_args_type = "principal: Principal, node: string, items: Array<{ meter: string; quantity: string }>, at: Date | string",
        ts_return_type = "Promise<any[]>"
    )]
    pub fn estimate<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        node: Unknown<'_>,
        items: Unknown<'_>,
        at: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "estimate", |arguments| {
            arguments.with("principal", principal)?.with("node", node)?.with("items", items)?.with("at", at)
        })
    }

    /// The month-end of a period (`"YYYY-MM"`) from stored usage, as the principal may see it.
    #[napi(ts_args_type = "principal: Principal, period: string", ts_return_type = "Promise<any>")]
    pub fn month_end_for<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "month_end_for", |arguments| {
            arguments.with("principal", principal)?.with("period", period)
        })
    }

    /// What would be issued for a period now (drafts, balances of what is issued), for all buyers or some.
    #[napi(
        ts_args_type = "principal: Principal, period: string, buyers?: string[]",
        ts_return_type = "Promise<any[]>"
    )]
    pub fn preview_invoices<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Unknown<'_>,
        buyers: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "preview_invoices", |arguments| {
            arguments.with("principal", principal)?.with("period", period)?.with("buyers", buyers)
        })
    }

    /// Issue the drafts of a period (closing it if open): gapless numbers, SHA-256 of each body; idempotent.
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, period: string, buyers?: string[]",
        ts_return_type = "Promise<any[]>"
    )]
    pub fn issue_invoices<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        period: Unknown<'_>,
        buyers: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "issue_invoices", |arguments| {
            arguments
                .with("principal", principal)?
                .with("at", at)?
                .with("period", period)?
                .with("buyers", buyers)
        })
    }

    /// Issued, voided and draft documents the principal may see (of one period, or all).
    #[napi(ts_args_type = "principal: Principal, period?: string", ts_return_type = "Promise<any[]>")]
    pub fn invoice_documents<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "invoice_documents", |arguments| {
            arguments.with("principal", principal)?.with("period", period)
        })
    }

    /// Commission and override statements from the documents issued in a period.
    #[napi(ts_args_type = "principal: Principal, period: string", ts_return_type = "Promise<any>")]
    pub fn commission_report<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "commission_report", |arguments| {
            arguments.with("principal", principal)?.with("period", period)
        })
    }

    /// What each department (tenant) and project (subscription) cost in a period, shared costs allocated.
    #[napi(ts_args_type = "principal: Principal, period: string", ts_return_type = "Promise<any>")]
    pub fn showback<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "showback", |arguments| {
            arguments.with("principal", principal)?.with("period", period)
        })
    }

    /// The usage records stored for a period, of the principal's subscriptions (quantities as strings).
    #[napi(ts_args_type = "principal: Principal, period: string", ts_return_type = "Promise<any[]>")]
    pub fn stored_usage<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "stored_usage", |arguments| {
            arguments.with("principal", principal)?.with("period", period)
        })
    }

    /// Set or replace a node's monthly budget (`{id, node, amount, currency, warning_percent?,
    /// breach_percent?, forecast?}`, amounts as strings); resolves to `{seq}`.
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, budget: Record<string, unknown>",
        ts_return_type = "Promise<{ seq: number }>"
    )]
    pub fn set_budget<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        budget: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "set_budget", |arguments| {
            arguments.with("principal", principal)?.with("at", at)?.with("budget", budget)
        })
    }

    /// Budgets of the principal's subtree in a period as of an instant: actual, forecast, state.
    #[napi(
        ts_args_type = "principal: Principal, period: string, at: Date | string",
        ts_return_type = "Promise<any[]>"
    )]
    pub fn budget_statuses<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Unknown<'_>,
        at: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "budget_statuses", |arguments| {
            arguments.with("principal", principal)?.with("period", period)?.with("at", at)
        })
    }

    /// Alerts of the principal's subtree: the open ones (acknowledged included), or all with
    /// `{include_resolved: true}`.
    #[napi(
        ts_args_type = "principal: Principal, options?: { include_resolved?: boolean }",
        ts_return_type = "Promise<any[]>"
    )]
    pub fn alerts<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "alerts", |arguments| arguments.with("principal", principal)?.with_options(options))
    }

    /// Acknowledge an open alert of the principal's subtree; resolves to `{seq}`.
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, id: number, note?: string",
        ts_return_type = "Promise<{ seq: number }>"
    )]
    pub fn acknowledge_alert<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        id: Unknown<'_>,
        note: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.alert_command(env, "acknowledge_alert", [principal, at, id], note)
    }

    /// Resolve an alert by hand (an evaluation that still finds its condition opens a new one).
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, id: number, note?: string",
        ts_return_type = "Promise<{ seq: number }>"
    )]
    pub fn resolve_alert<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        id: Unknown<'_>,
        note: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.alert_command(env, "resolve_alert", [principal, at, id], note)
    }

    fn alert_command<'env>(
        &self,
        env: &'env Env,
        method: &str,
        [principal, at, id]: [Unknown<'_>; 3],
        note: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, method, |arguments| {
            arguments.with("principal", principal)?.with("at", at)?.with("id", id)?.with("note", note)
        })
    }

    /// Evaluate budgets and alert rules now and record it; resolves to the changes `[{id, change}]`.
    #[napi(ts_args_type = "principal: Principal, at: Date | string", ts_return_type = "Promise<any[]>")]
    pub fn evaluate_alerts<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "evaluate_alerts", |arguments| arguments.with("principal", principal)?.with("at", at))
    }

    /// Run what is due at an instant (pull each region, draft and issue invoices, purge, evaluate alerts),
    /// off the main thread; each run is recorded, and ticking twice at one instant does nothing twice.
    /// Regions are configured as for the `pull_region` method, without `until`. Resolves to the report
    /// with `deliveries`: each alert change with its alert, for the application to deliver.
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, regions?: Record<string, unknown>[]",
        ts_return_type = "Promise<any>"
    )]
    pub fn tick<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        regions: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "tick", |arguments| {
            arguments.with("principal", principal)?.with("at", at)?.with("regions", regions)
        })
    }

    /// Recorded job runs, newest first (`{limit}`: 100 by default); platform principals only.
    #[napi(
        ts_args_type = "principal: Principal, options?: { limit?: number }",
        ts_return_type = "Promise<any[]>"
    )]
    pub fn job_runs<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "job_runs", |arguments| arguments.with("principal", principal)?.with_options(options))
    }

    /// Dashboard data of the principal's subtree for a period as of an instant.
    #[napi(
        ts_args_type = "principal: Principal, period: string, at: Date | string",
        ts_return_type = "Promise<any>"
    )]
    pub fn dashboard<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Unknown<'_>,
        at: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "dashboard", |arguments| {
            arguments.with("principal", principal)?.with("period", period)?.with("at", at)
        })
    }

    /// Walk the audit chain with the event log (`strict`: a broken chain rejects with `audit_broken`).
    #[napi(
        ts_args_type = "options?: { expected_head?: unknown; strict?: boolean }",
        ts_return_type = "Promise<any>"
    )]
    pub fn verify_audit<'env>(
        &self,
        env: &'env Env,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "verify_audit", |arguments| arguments.with_options(options))
    }

    /// Apply a bulk price change (the core's `ChangeSet` JSON): a new version of every list in its scope.
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, changeSet: Record<string, unknown>",
        ts_return_type = "Promise<{ seq: number }>"
    )]
    pub fn apply_change_set<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        change_set: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "apply_change_set", |arguments| {
            arguments.with("principal", principal)?.with("at", at)?.with("change_set", change_set)
        })
    }

    /// Close a period: its month-end is stored as issued; later usage of it becomes adjustments.
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, period: string",
        ts_return_type = "Promise<null>"
    )]
    pub fn close_period<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        period: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "close_period", |arguments| {
            arguments.with("principal", principal)?.with("at", at)?.with("period", period)
        })
    }

    /// Progressive billing: interim invoices for tenants whose running amount crossed their threshold.
    #[napi(ts_args_type = "principal: Principal, at: Date | string", ts_return_type = "Promise<any[]>")]
    pub fn issue_interim<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "issue_interim", |arguments| arguments.with("principal", principal)?.with("at", at))
    }

    /// Pull a stamp's provider Usage API (from its checkpoints, up to `until`) through the ingestion rules,
    /// off the main thread. `config` holds `pull_region`'s parameters (snake_case, as `methods()` lists them).
    #[napi(
        ts_args_type = "config: { region: string; arm_endpoint: string; provider_subscription: string; tenant: string; client_id: string; client_secret: string; start: Date | string; until: Date | string; subscribers?: string[]; granularity?: 'hourly' | 'daily'; window_hours?: number; ca_certificates_pem?: string; allow_http?: boolean; max_attempts?: number }",
        ts_return_type = "Promise<any>"
    )]
    pub fn pull_region<'env>(&self, env: &'env Env, config: Unknown<'_>) -> napi::Result<Object<'env>> {
        self.typed(env, "pull_region", |arguments| arguments.with_options(config))
    }

    /// Retention: purge the raw usage of invoiced periods past the policy's age.
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string",
        ts_return_type = "Promise<Array<{ period: string; deleted: number }>>"
    )]
    pub fn purge_usage<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "purge_usage", |arguments| arguments.with("principal", principal)?.with("at", at))
    }

    /// Record ingestion done outside the scheduler (an `IngestSummary`) as a job run of `source`, so its
    /// refused and late records raise alerts.
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, source: string, summary: Record<string, unknown>",
        ts_return_type = "Promise<{ seq: number }>"
    )]
    pub fn record_ingestion<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        source: Unknown<'_>,
        summary: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "record_ingestion", |arguments| {
            arguments
                .with("principal", principal)?
                .with("at", at)?
                .with("source", source)?
                .with("summary", summary)
        })
    }

    /// Apply what other writers appended to the store since this session looked.
    #[napi(ts_return_type = "Promise<null>")]
    pub fn refresh<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.typed(env, "refresh", |arguments| Ok(arguments))
    }

    /// Recompute and store the drafts of the open months a range touches, for a tenant and/or region.
    #[napi(
        ts_args_type = "principal: Principal, period: string, options?: { tenant?: string; region?: string; rules?: Record<string, unknown> }",
        ts_return_type = "Promise<any>"
    )]
    pub fn reprocess<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "reprocess", |arguments| {
            arguments.with("principal", principal)?.with("period", period)?.with_options(options)
        })
    }

    /// Re-rate a closed period after corrections: credit or debit notes for exactly the difference.
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, period: string, reason: string",
        ts_return_type = "Promise<any[]>"
    )]
    pub fn rerate<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        period: Unknown<'_>,
        reason: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "rerate", |arguments| {
            arguments
                .with("principal", principal)?
                .with("at", at)?
                .with("period", period)?
                .with("reason", reason)
        })
    }

    /// Void an issued invoice with a credit note cancelling it whole; resolves to the credit note.
    #[napi(
        ts_args_type = "principal: Principal, at: Date | string, number: string, reason: string",
        ts_return_type = "Promise<any>"
    )]
    pub fn void_invoice<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        at: Unknown<'_>,
        number: Unknown<'_>,
        reason: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "void_invoice", |arguments| {
            arguments
                .with("principal", principal)?
                .with("at", at)?
                .with("number", number)?
                .with("reason", reason)
        })
    }

    /// The audit trail, for a principal that may read it.
    #[napi(ts_args_type = "principal: Principal", ts_return_type = "Promise<any[]>")]
    pub fn audit_records<'env>(&self, env: &'env Env, principal: Unknown<'_>) -> napi::Result<Object<'env>> {
        self.typed(env, "audit_records", |arguments| arguments.with("principal", principal))
    }

    /// Check that a principal may run a query needing an action (`read_billing`, `read_audit`, ...) at its
    /// scope: resolves to `null`, or rejects with `forbidden` / `policy_refused`.
    #[napi(ts_args_type = "principal: Principal, action: string", ts_return_type = "Promise<null>")]
    pub fn authorize_read<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        action: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "authorize_read", |arguments| {
            arguments.with("principal", principal)?.with("action", action)
        })
    }

    /// The rules documents are rounded with.
    #[napi(ts_return_type = "Promise<any>")]
    pub fn billing_rules<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.typed(env, "billing_rules", |arguments| Ok(arguments))
    }

    /// Chargeback of a period as balanced journal lines.
    #[napi(ts_args_type = "principal: Principal, period: string", ts_return_type = "Promise<any[]>")]
    pub fn chargeback_journal<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "chargeback_journal", |arguments| {
            arguments.with("principal", principal)?.with("period", period)
        })
    }

    /// The ingestion checkpoints of every region and subscriber.
    #[napi(ts_return_type = "Promise<any[]>")]
    pub fn checkpoints<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.typed(env, "checkpoints", |arguments| Ok(arguments))
    }

    /// The months (`"YYYY-MM"`, oldest first) whose budgets an evaluation at `at` checks once more as of their
    /// end: every month that ended after the latest complete evaluation (unscoped).
    #[napi(ts_args_type = "at: Date | string", ts_return_type = "Promise<string[]>")]
    pub fn closing_months<'env>(&self, env: &'env Env, at: Unknown<'_>) -> napi::Result<Object<'env>> {
        self.typed(env, "closing_months", |arguments| arguments.with("at", at))
    }

    /// The stored drafts of a month (see `reprocess`).
    #[napi(ts_args_type = "principal: Principal, period: string", ts_return_type = "Promise<any[]>")]
    pub fn drafts<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "drafts", |arguments| arguments.with("principal", principal)?.with("period", period))
    }

    /// Every audit record and the chain's head, to keep elsewhere (unscoped).
    #[napi(ts_return_type = "Promise<{ records: any[]; head: any }>")]
    pub fn export_audit<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.typed(env, "export_audit", |arguments| Ok(arguments))
    }

    /// What the detection rules find at an instant, without recording anything (unscoped).
    #[napi(ts_args_type = "at: Date | string", ts_return_type = "Promise<any[]>")]
    pub fn findings<'env>(&self, env: &'env Env, at: Unknown<'_>) -> napi::Result<Object<'env>> {
        self.typed(env, "findings", |arguments| arguments.with("at", at))
    }

    /// An issued document by number, checked against its recorded hash.
    #[napi(
        ts_args_type = "principal: Principal, number: string",
        ts_return_type = "Promise<{ issued: any; document: any }>"
    )]
    pub fn issued_document<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        number: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "issued_document", |arguments| {
            arguments.with("principal", principal)?.with("number", number)
        })
    }

    /// The month-end documents of a period as the principal sees them (for statements).
    #[napi(ts_args_type = "principal: Principal, period: string", ts_return_type = "Promise<any[]>")]
    pub fn issued_in<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "issued_in", |arguments| {
            arguments.with("principal", principal)?.with("period", period)
        })
    }

    /// The whole month-end of a period from stored usage, unscoped (the operator's view); `rules`: other
    /// billing rules.
    #[napi(
        ts_args_type = "period: string, options?: { rules?: Record<string, unknown> }",
        ts_return_type = "Promise<any>"
    )]
    pub fn month_end_report<'env>(
        &self,
        env: &'env Env,
        period: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "month_end_report", |arguments| {
            arguments.with("period", period)?.with_options(options)
        })
    }

    /// The month-end of a period computed under other commercial terms (`terms`, the core's JSON) and/or with
    /// the prices in effect at `prices_at`; unscoped, records nothing (a closed period is recomputed).
    #[napi(
        ts_args_type = "period: string, options?: { prices_at?: Date | string; terms?: Record<string, unknown>; rules?: Record<string, unknown> }",
        ts_return_type = "Promise<any>"
    )]
    pub fn month_end_in<'env>(
        &self,
        env: &'env Env,
        period: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "month_end_in", |arguments| arguments.with("period", period)?.with_options(options))
    }

    /// One node of the principal's subtree (`unknown_node` outside it), statuses as of `at`.
    #[napi(
        ts_args_type = "principal: Principal, id: string, at: Date | string",
        ts_return_type = "Promise<any>"
    )]
    pub fn node<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        id: Unknown<'_>,
        at: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "node", |arguments| {
            arguments.with("principal", principal)?.with("id", id)?.with("at", at)
        })
    }

    /// What a bulk change would do to the last closed period's revenue; records nothing.
    #[napi(
        ts_args_type = "principal: Principal, changeSet: Record<string, unknown>, options?: { rules?: Record<string, unknown> }",
        ts_return_type = "Promise<any>"
    )]
    pub fn preview_change_set<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        change_set: Unknown<'_>,
        options: Option<Unknown<'_>>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "preview_change_set", |arguments| {
            arguments.with("principal", principal)?.with("change_set", change_set)?.with_options(options)
        })
    }

    /// One usage quantity (a decimal string) priced at every level of a subscription's resale chain, with
    /// margins.
    #[napi(
        ts_args_type = "principal: Principal, subscription: string, meter: string, quantity: string, at: Date | string",
        ts_return_type = "Promise<any[]>"
    )]
    pub fn price_chain<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        subscription: Unknown<'_>,
        meter: Unknown<'_>,
        quantity: Unknown<'_>,
        at: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "price_chain", |arguments| {
            arguments
                .with("principal", principal)?
                .with("subscription", subscription)?
                .with("meter", meter)?
                .with("quantity", quantity)?
                .with("at", at)
        })
    }

    /// The node a principal acts at, `{id, kind}` (`unknown_node` if it is not in the channel, or once roles
    /// are in use if the principal holds no role there or above).
    #[napi(ts_args_type = "principal: Principal", ts_return_type = "Promise<{ id: string; kind: string }>")]
    pub fn scope_of<'env>(&self, env: &'env Env, principal: Unknown<'_>) -> napi::Result<Object<'env>> {
        self.typed(env, "scope_of", |arguments| arguments.with("principal", principal))
    }

    /// The engine's state (channel, catalogue, terms, policies, ...), unscoped.
    #[napi(ts_return_type = "Promise<any>")]
    pub fn state<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.typed(env, "state", |arguments| Ok(arguments))
    }

    /// A month-end cut to tenant invoices (what showback reads).
    #[napi(ts_args_type = "principal: Principal, period: string", ts_return_type = "Promise<any>")]
    pub fn tenant_month_end<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        period: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "tenant_month_end", |arguments| {
            arguments.with("principal", principal)?.with("period", period)
        })
    }

    /// The scope of a bulk change on one tenant: the lists at the tenant and its subscriptions.
    #[napi(ts_args_type = "tenant: string", ts_return_type = "Promise<any>")]
    pub fn tenant_scope<'env>(&self, env: &'env Env, tenant: Unknown<'_>) -> napi::Result<Object<'env>> {
        self.typed(env, "tenant_scope", |arguments| arguments.with("tenant", tenant))
    }

    /// Check every issued document's stored body against its recorded hash.
    #[napi(ts_return_type = "Promise<{ intact: boolean; altered: any[] }>")]
    pub fn verify_documents<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        self.typed(env, "verify_documents", |arguments| Ok(arguments))
    }

    /// A node the principal may see, `{id, kind}` (`unknown_node` when it does not exist or lies outside the
    /// principal's subtree).
    #[napi(
        ts_args_type = "principal: Principal, id: string",
        ts_return_type = "Promise<{ id: string; kind: string }>"
    )]
    pub fn visible<'env>(
        &self,
        env: &'env Env,
        principal: Unknown<'_>,
        id: Unknown<'_>,
    ) -> napi::Result<Object<'env>> {
        self.typed(env, "visible", |arguments| arguments.with("principal", principal)?.with("id", id))
    }
}

/// `call`'s arguments: the method name and its parameters (`undefined` or `null`: none).
fn call_arguments(
    env: Env,
    method: Unknown<'_>,
    params: Option<Unknown<'_>>,
) -> Result<(String, Value), CmsError> {
    let method = string_argument(env, "call", "method", method)?;
    let params = match params {
        Some(params) => crate::convert::argument(env, &method, "params", params)?.unwrap_or(Value::Null),
        None => Value::Null,
    };
    Ok((method, params))
}

impl Drop for JsCms {
    fn drop(&mut self) {
        // Dropping the queue lets the worker finish what is queued, close the store and stop.
        self.jobs.take();
    }
}
