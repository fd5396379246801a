//! # cms-ffi
//!
//! The C ABI of CMS over `cms-api`: `libcms_ffi.so` / `libcms_ffi.a` and the header `include/cms.h`
//! (written by cbindgen from this file on every build; the header's preamble states the conventions).
//!
//! The surface is small on purpose: a session handle whose [`cms_session_call`] reaches every engine
//! command and query by name with JSON parameters and results (the method table of `cms-api`), the
//! month-end job on files ([`cms_month_end`]), a typed helper for Usage API pages, and the error and
//! memory functions. Everything a C caller receives is either a status, a static string, or an owned
//! string freed by [`cms_string_free`].
//!
//! Safety net: every exported body runs inside `catch_unwind` (a panic becomes `CMS_PANIC`), every
//! pointer is checked for NULL, every string for UTF-8. Handles and returned strings are recorded in
//! registries, so a double free, or a free of a pointer this library did not give out, is refused with
//! `CMS_INVALID_HANDLE` instead of corrupting memory; a handle is never dereferenced, only looked up.

// C names: the header is the interface, and these are its spellings.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CStr, CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};

use cms_api::vectors::HttpFixture;
use cms_api::{CmsError, Session, StoreSpec};
use serde_json::Value;

/// What a call returned: `CMS_OK` (0), or the family and kind of the error. Core errors have one status
/// per stable error code (the code string is the same in every language: [`cms_last_error_code`]).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum cms_status {
    /// Success.
    CMS_OK = 0,
    // 1-99: the C interface itself.
    /// A required pointer argument was NULL (code `null_argument`).
    CMS_NULL_ARGUMENT = 1,
    /// A string argument is not valid UTF-8 (code `invalid_utf8`).
    CMS_INVALID_UTF8 = 2,
    /// A handle or string this library did not give out, or already freed (code `invalid_handle`).
    CMS_INVALID_HANDLE = 3,
    /// An internal error (a bug) was caught; the session it happened in is unusable (code `panic`).
    CMS_PANIC = 4,
    /// A core error code newer than this header: read it with `cms_last_error_code`.
    CMS_UNKNOWN_ERROR = 99,
    // 100-199: input files, pages and records.
    /// An input could not be read (missing file or folder, permission) (code `io`).
    CMS_IO = 100,
    /// A CSV header lacks a required column (code `bad_header`).
    CMS_BAD_HEADER = 101,
    /// A record is malformed (code `bad_record`).
    CMS_BAD_RECORD = 102,
    /// A decimal is not one, or was passed as a JSON number (code `bad_decimal`).
    CMS_BAD_DECIMAL = 103,
    /// A timestamp is not RFC 3339 (code `bad_timestamp`).
    CMS_BAD_TIMESTAMP = 104,
    /// A meter id is not a GUID (code `bad_meter_id`).
    CMS_BAD_METER_ID = 105,
    /// A usage quantity is negative (code `negative_quantity`).
    CMS_NEGATIVE_QUANTITY = 106,
    /// A usage interval ends at or before its start (code `bad_interval`).
    CMS_BAD_INTERVAL = 107,
    /// A JSON document (or a call's parameters) does not match its schema (code `bad_json`).
    CMS_BAD_JSON = 108,
    // 200-299: the channel and values.
    /// Usage names a subscription not in the channel (code `unknown_subscription`).
    CMS_UNKNOWN_SUBSCRIPTION = 200,
    /// A node does not exist, or lies outside the principal's reach (code `unknown_node`).
    CMS_UNKNOWN_NODE = 201,
    /// A node id is already taken (code `duplicate_node`).
    CMS_DUPLICATE_NODE = 202,
    /// A node would break the channel's shape (code `invalid_hierarchy`).
    CMS_INVALID_HIERARCHY = 203,
    /// A period is not one, or cannot be used so (code `invalid_period`).
    CMS_INVALID_PERIOD = 204,
    /// A value is invalid (also: an unknown method) (code `invalid_value`).
    CMS_INVALID_VALUE = 205,
    // 300-399: prices and billing.
    /// Two tiers start at the same amount (code `tier_overlap`).
    CMS_TIER_OVERLAP = 300,
    /// A tier schedule does not start at zero (code `tier_start`).
    CMS_TIER_START = 301,
    /// Usage of a meter no price prices, in a strict run (code `unpriced_meter`).
    CMS_UNPRICED_METER = 302,
    /// One document would mix currencies (code `currency_mismatch`).
    CMS_CURRENCY_MISMATCH = 303,
    /// An amount beyond 28 significant digits (code `overflow`).
    CMS_OVERFLOW = 304,
    // 400-499: usage ingestion.
    /// Hourly and daily usage of one subscription in one period (code `mixed_granularity`).
    CMS_MIXED_GRANULARITY = 400,
    /// Usage of a period invoiced beyond the look-back window (code `late_usage_refused`).
    CMS_LATE_USAGE_REFUSED = 401,
    // 500-599: remote stamps.
    /// An HTTP exchange failed (code `http`).
    CMS_HTTP = 500,
    /// The Usage API answered with an error code (code `usage_api`).
    CMS_USAGE_API = 501,
    /// No token from the identity provider (code `auth`).
    CMS_AUTH = 502,
    // 600-699: storage and governance.
    /// A store could not complete an operation (code `store`).
    CMS_STORE = 600,
    /// Another writer kept committing first (code `conflict`).
    CMS_CONFLICT = 601,
    /// The principal holds no role allowing the action (code `forbidden`).
    CMS_FORBIDDEN = 602,
    /// A governance policy refuses the command (code `policy_refused`).
    CMS_POLICY_REFUSED = 603,
    /// The audit trail does not verify (code `audit_broken`).
    CMS_AUDIT_BROKEN = 604,
}

use cms_status as S;

/// Every status with its code string and one-line description.
const STATUSES: &[(cms_status, &str, &str)] = &[
    (S::CMS_OK, "ok", "success"),
    (S::CMS_NULL_ARGUMENT, "null_argument", "a required pointer argument was NULL"),
    (S::CMS_INVALID_UTF8, "invalid_utf8", "a string argument is not valid UTF-8"),
    (
        S::CMS_INVALID_HANDLE,
        "invalid_handle",
        "a handle or string this library did not give out, or already freed",
    ),
    (S::CMS_PANIC, "panic", "an internal error was caught; the session it happened in is unusable"),
    (S::CMS_UNKNOWN_ERROR, "unknown", "an error code newer than this header: see cms_last_error_code"),
    (S::CMS_IO, "io", "an input could not be read"),
    (S::CMS_BAD_HEADER, "bad_header", "a CSV header lacks a required column"),
    (S::CMS_BAD_RECORD, "bad_record", "a record is malformed"),
    (S::CMS_BAD_DECIMAL, "bad_decimal", "a decimal is not one, or was passed as a JSON number"),
    (S::CMS_BAD_TIMESTAMP, "bad_timestamp", "a timestamp is not RFC 3339"),
    (S::CMS_BAD_METER_ID, "bad_meter_id", "a meter id is not a GUID"),
    (S::CMS_NEGATIVE_QUANTITY, "negative_quantity", "a usage quantity is negative"),
    (S::CMS_BAD_INTERVAL, "bad_interval", "a usage interval ends at or before its start"),
    (S::CMS_BAD_JSON, "bad_json", "a JSON document does not match its schema"),
    (S::CMS_UNKNOWN_SUBSCRIPTION, "unknown_subscription", "usage names a subscription not in the channel"),
    (S::CMS_UNKNOWN_NODE, "unknown_node", "a node does not exist or lies outside the principal's reach"),
    (S::CMS_DUPLICATE_NODE, "duplicate_node", "a node id is already taken"),
    (S::CMS_INVALID_HIERARCHY, "invalid_hierarchy", "a node would break the channel's shape"),
    (S::CMS_INVALID_PERIOD, "invalid_period", "a period is not one, or cannot be used so"),
    (S::CMS_INVALID_VALUE, "invalid_value", "a value is invalid"),
    (S::CMS_TIER_OVERLAP, "tier_overlap", "two tiers start at the same amount"),
    (S::CMS_TIER_START, "tier_start", "a tier schedule does not start at zero"),
    (S::CMS_UNPRICED_METER, "unpriced_meter", "usage of a meter no price prices"),
    (S::CMS_CURRENCY_MISMATCH, "currency_mismatch", "one document would mix currencies"),
    (S::CMS_OVERFLOW, "overflow", "an amount beyond 28 significant digits"),
    (
        S::CMS_MIXED_GRANULARITY,
        "mixed_granularity",
        "hourly and daily usage of one subscription in one period",
    ),
    (
        S::CMS_LATE_USAGE_REFUSED,
        "late_usage_refused",
        "usage of a period invoiced beyond the look-back window",
    ),
    (S::CMS_HTTP, "http", "an HTTP exchange failed"),
    (S::CMS_USAGE_API, "usage_api", "the Usage API answered with an error code"),
    (S::CMS_AUTH, "auth", "no token from the identity provider"),
    (S::CMS_STORE, "store", "a store could not complete an operation"),
    (S::CMS_CONFLICT, "conflict", "another writer kept committing first"),
    (S::CMS_FORBIDDEN, "forbidden", "the principal holds no role allowing the action"),
    (S::CMS_POLICY_REFUSED, "policy_refused", "a governance policy refuses the command"),
    (S::CMS_AUDIT_BROKEN, "audit_broken", "the audit trail does not verify"),
];

/// The status of a core error code (`CMS_UNKNOWN_ERROR` for a code newer than this table).
pub fn status_of_code(code: &str) -> cms_status {
    STATUSES
        .iter()
        .find(|(status, name, _)| *name == code && *status >= S::CMS_IO)
        .map_or(S::CMS_UNKNOWN_ERROR, |(status, _, _)| *status)
}

/// The code string and description of a status.
fn describe(status: cms_status) -> (&'static str, &'static str) {
    STATUSES
        .iter()
        .find(|(known, _, _)| *known == status)
        .map_or(("unknown", ""), |(_, code, text)| (code, text))
}

/// A failed call: its status, the code string and the message `cms_last_error_*` give.
struct Failure {
    status: cms_status,
    code: String,
    message: String,
}

impl Failure {
    fn new(status: cms_status, message: impl Into<String>) -> Self {
        Self { status, code: describe(status).0.to_owned(), message: message.into() }
    }
}

impl From<CmsError> for Failure {
    fn from(error: CmsError) -> Self {
        Self {
            status: status_of_code(error.code()),
            code: error.code().to_owned(),
            message: error.to_string(),
        }
    }
}

thread_local! {
    /// This thread's last error: (code, message).
    static LAST_ERROR: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
}

/// Run an exported body: catch panics, record the error of a failure, return the status.
fn guard(body: impl FnOnce() -> Result<(), Failure>) -> cms_status {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return S::CMS_OK,
        Ok(Err(failure)) => failure,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".to_owned());
            Failure::new(S::CMS_PANIC, format!("panic caught: an internal error (a bug in cms): {what}"))
        }
    };
    let status = failure.status;
    // `try_with`: a call made while the thread is exiting (its locals destroyed) still returns its status.
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = (failure.code, failure.message));
    status
}

/// Check an out-parameter.
fn out_param<T>(out: *mut T, name: &str) -> Result<*mut T, Failure> {
    if out.is_null() {
        Err(Failure::new(S::CMS_NULL_ARGUMENT, format!("argument {name} (an out-parameter) is NULL")))
    } else {
        Ok(out)
    }
}

/// A pointer + length argument as UTF-8 text.
///
/// # Safety
/// A non-NULL `text` must point at `length` readable bytes that stay valid during the call.
unsafe fn text_arg<'a>(text: *const c_char, length: usize, name: &str) -> Result<&'a str, Failure> {
    if text.is_null() {
        return Err(Failure::new(S::CMS_NULL_ARGUMENT, format!("argument {name} is NULL")));
    }
    // SAFETY: non-NULL, and the caller guarantees `length` readable bytes at `text` for the call.
    let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), length) };
    std::str::from_utf8(bytes).map_err(|error| {
        Failure::new(
            S::CMS_INVALID_UTF8,
            format!("argument {name} is not UTF-8: invalid byte at offset {}", error.valid_up_to()),
        )
    })
}

/// A NUL-terminated C string argument as UTF-8 text.
///
/// # Safety
/// A non-NULL `text` must point at a NUL-terminated string that stays valid during the call.
unsafe fn c_str_arg<'a>(text: *const c_char, name: &str) -> Result<&'a str, Failure> {
    if text.is_null() {
        return Err(Failure::new(S::CMS_NULL_ARGUMENT, format!("argument {name} is NULL")));
    }
    // SAFETY: non-NULL, and the caller guarantees a NUL-terminated string valid for the call.
    let text = unsafe { CStr::from_ptr(text) };
    text.to_str().map_err(|error| {
        Failure::new(
            S::CMS_INVALID_UTF8,
            format!("argument {name} is not UTF-8: invalid byte at offset {}", error.valid_up_to()),
        )
    })
}

/// Parameters as JSON: empty text means none (`null`).
fn json_arg(text: &str, name: &str) -> Result<Value, Failure> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).map_err(|error| {
        Failure::from(CmsError::BadJson {
            at: cms_core::Location::whole(name.to_owned()),
            message: error.to_string(),
        })
    })
}

/// Strings handed out and not yet freed, by address.
static STRINGS: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

/// An owned C string for the caller, recorded for `cms_string_free`.
fn give_string(text: String) -> Result<*mut c_char, Failure> {
    let owned = CString::new(text).map_err(|_| {
        Failure::new(S::CMS_INVALID_VALUE, "a result holds a NUL byte and cannot be a C string")
    })?;
    let pointer = owned.into_raw();
    STRINGS.lock().unwrap_or_else(PoisonError::into_inner).insert(pointer as usize);
    Ok(pointer)
}

fn give_json(value: &Value) -> Result<*mut c_char, Failure> {
    give_string(value.to_string())
}

/// Write an out-parameter (only ever on success).
///
/// # Safety
/// `out` must be valid for one write of `T` (checked non-NULL by [`out_param`]).
unsafe fn write_out<T>(out: *mut T, value: T) {
    // SAFETY: the caller passes an out-parameter checked non-NULL; C guarantees it points at a `T`.
    unsafe { out.write(value) };
}

/// The crate's version, NUL-terminated.
static VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(version) => version,
    Err(_) => c"unknown",
};

/// The version of the library, a static string (not freed).
///
/// # Safety
/// `version` must be NULL (refused) or point at a writable `const char *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_version(version: *mut *const c_char) -> cms_status {
    guard(|| {
        let out = out_param(version, "version")?;
        // SAFETY: checked non-NULL; the string is static.
        unsafe { write_out(out, VERSION.as_ptr()) };
        Ok(())
    })
}

/// The code string of a status (`"ok"`, `"bad_decimal"`, ...), a static string (not freed).
///
/// # Safety
/// `code` must be NULL (refused) or point at a writable `const char *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_status_code(status: cms_status, code: *mut *const c_char) -> cms_status {
    guard(|| {
        let out = out_param(code, "code")?;
        let text = static_c_string(describe(status).0);
        // SAFETY: checked non-NULL; the string is static.
        unsafe { write_out(out, text) };
        Ok(())
    })
}

/// A one-line description of a status, a static string (not freed).
///
/// # Safety
/// `message` must be NULL (refused) or point at a writable `const char *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_status_message(status: cms_status, message: *mut *const c_char) -> cms_status {
    guard(|| {
        let out = out_param(message, "message")?;
        let text = static_c_string(describe(status).1);
        // SAFETY: checked non-NULL; the string is static.
        unsafe { write_out(out, text) };
        Ok(())
    })
}

/// A static NUL-terminated copy of a static string, made once per string.
fn static_c_string(text: &'static str) -> *const c_char {
    static MADE: Mutex<BTreeMap<&'static str, &'static CStr>> = Mutex::new(BTreeMap::new());
    let mut made = MADE.lock().unwrap_or_else(PoisonError::into_inner);
    made.entry(text)
        .or_insert_with(|| {
            let owned = CString::new(text).unwrap_or_default();
            Box::leak(owned.into_boxed_c_str())
        })
        .as_ptr()
}

/// This thread's last error message (empty when no call failed yet), as an owned string.
///
/// # Safety
/// `message` must be NULL (refused) or point at a writable `char *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_last_error_message(message: *mut *mut c_char) -> cms_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { give_last_error(message, "message", |last| last.1.clone()) }
}

/// This thread's last error code (`"bad_decimal"`, `"null_argument"`, ...; empty when none), as an owned
/// string: the same code in Rust, Python, Node and C.
///
/// # Safety
/// `code` must be NULL (refused) or point at a writable `char *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_last_error_code(code: *mut *mut c_char) -> cms_status {
    // SAFETY: the caller's contract, passed on.
    unsafe { give_last_error(code, "code", |last| last.0.clone()) }
}

/// Hand out the part `part` picks of this thread's last error through the out-parameter `name`. The error
/// is read inside `guard`, like every other body; a successful read leaves it as it was.
///
/// # Safety
/// `out` must be NULL (refused) or point at a writable `char *`.
unsafe fn give_last_error(
    out: *mut *mut c_char,
    name: &str,
    part: impl FnOnce(&(String, String)) -> String,
) -> cms_status {
    guard(|| {
        let out = out_param(out, name)?;
        let text = LAST_ERROR
            .try_with(|last| part(&last.borrow()))
            .map_err(|_| Failure::new(S::CMS_PANIC, "the last error is gone: the thread is exiting"))?;
        let text = give_string(text)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, text) };
        Ok(())
    })
}

/// Free a string this library returned. NULL does nothing (`CMS_OK`); a string already freed, or not
/// from this library, is refused with `CMS_INVALID_HANDLE` and left alone.
///
/// # Safety
/// `string` must be NULL or a pointer (the registry refuses pointers it did not hand out).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_string_free(string: *mut c_char) -> cms_status {
    guard(|| {
        if string.is_null() {
            return Ok(());
        }
        if !STRINGS.lock().unwrap_or_else(PoisonError::into_inner).remove(&(string as usize)) {
            return Err(Failure::new(
                S::CMS_INVALID_HANDLE,
                "cms_string_free: not a string from this library, or freed already",
            ));
        }
        // SAFETY: the registry held it: it came from `CString::into_raw` and was not freed since.
        drop(unsafe { CString::from_raw(string) });
        Ok(())
    })
}

/// An open session: the engine on a store. Opaque; create with `cms_session_new_memory` or
/// `cms_session_new_sqlite`, release with `cms_session_free`.
pub struct cms_session {
    _private: u8,
}

/// The method that panics inside a session call, in debug builds only (see [`cms_session_call`]).
#[cfg(debug_assertions)]
const TEST_PANIC: &str = "__test_panic";

/// Live sessions by handle address: a handle is only ever looked up here, never dereferenced.
static SESSIONS: Mutex<BTreeMap<usize, Arc<Mutex<Session>>>> = Mutex::new(BTreeMap::new());

fn open_session(spec: &StoreSpec) -> Result<*mut cms_session, Failure> {
    let session = Session::open(spec)?;
    let handle = Box::into_raw(Box::new(cms_session { _private: 0 }));
    SESSIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(handle as usize, Arc::new(Mutex::new(session)));
    Ok(handle)
}

fn session_of(handle: *const cms_session) -> Result<Arc<Mutex<Session>>, Failure> {
    if handle.is_null() {
        return Err(Failure::new(S::CMS_NULL_ARGUMENT, "argument session is NULL"));
    }
    SESSIONS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(handle as usize))
        .cloned()
        .ok_or_else(|| Failure::new(S::CMS_INVALID_HANDLE, "not a session of this library, or freed already"))
}

/// Run `work` on a session, one call at a time; a session that panicked earlier is refused.
fn with_session<T>(
    handle: *const cms_session,
    work: impl FnOnce(&mut Session) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let session = session_of(handle)?;
    let mut session = session.lock().map_err(|_| {
        Failure::new(S::CMS_PANIC, "the session is unusable after an internal error; free it")
    })?;
    work(&mut session)
}

/// Open a session on a new in-memory store (gone when freed).
///
/// # Safety
/// `session` must be NULL (refused) or point at a writable `cms_session *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_session_new_memory(session: *mut *mut cms_session) -> cms_status {
    guard(|| {
        let out = out_param(session, "session")?;
        let handle = open_session(&StoreSpec::Memory)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, handle) };
        Ok(())
    })
}

/// Open a session on a SQLite file (`path`: UTF-8, `path_len` bytes, not NUL-terminated), created with
/// its schema if missing; its events are replayed. Fails with `CMS_STORE` if the file cannot be opened.
///
/// # Safety
/// `path` must point at `path_len` readable bytes; `session` at a writable `cms_session *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_session_new_sqlite(
    path: *const c_char,
    path_len: usize,
    session: *mut *mut cms_session,
) -> cms_status {
    guard(|| {
        let out = out_param(session, "session")?;
        // SAFETY: the caller guarantees `path_len` readable bytes at `path`.
        let path = unsafe { text_arg(path, path_len, "path") }?;
        let handle = open_session(&StoreSpec::Sqlite(path.into()))?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, handle) };
        Ok(())
    })
}

/// Close a session (a SQLite file stays, with everything committed). NULL does nothing; a handle freed
/// already, or not from this library, is refused with `CMS_INVALID_HANDLE`. A call running on the session
/// in another thread finishes first.
///
/// # Safety
/// `session` must be NULL or a pointer (the registry refuses pointers it did not hand out).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_session_free(session: *mut cms_session) -> cms_status {
    guard(|| {
        if session.is_null() {
            return Ok(());
        }
        let removed = SESSIONS.lock().unwrap_or_else(PoisonError::into_inner).remove(&(session as usize));
        if removed.is_none() {
            return Err(Failure::new(
                S::CMS_INVALID_HANDLE,
                "cms_session_free: not a session of this library, or freed already",
            ));
        }
        // SAFETY: the registry held it: it came from `Box::into_raw` in `open_session` and was not freed.
        drop(unsafe { Box::from_raw(session) });
        drop(removed);
        Ok(())
    })
}

/// Call a method of the engine by name (`method`: `method_len` bytes) with its parameters as a JSON
/// object (`params_json`: `params_len` bytes; empty means none), and get the result as JSON in
/// `*result_json` (owned: free it with `cms_string_free`). The method `methods` lists every method
/// with their parameters; principals are `{"id","node"}`, instants RFC 3339 strings, decimals strings.
///
/// # Panics
/// Never across the C boundary: a panic inside is caught and returned as `CMS_PANIC`. Debug builds (the
/// tests') know the method `__test_panic`, which panics inside the call while it holds the session, so
/// the tests reach that path: it returns `CMS_PANIC`, and the session is unusable from then on (each call
/// on it returns `CMS_PANIC`; free it). Release builds do not have it (an unknown method,
/// `CMS_INVALID_VALUE`).
///
/// # Safety
/// `method` and `params_json` must point at their lengths of readable bytes; `result_json` at a writable
/// `char *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_session_call(
    session: *mut cms_session,
    method: *const c_char,
    method_len: usize,
    params_json: *const c_char,
    params_len: usize,
    result_json: *mut *mut c_char,
) -> cms_status {
    guard(|| {
        let out = out_param(result_json, "result_json")?;
        // SAFETY: the caller guarantees the lengths of readable bytes.
        let (method, params) = unsafe {
            (text_arg(method, method_len, "method")?, text_arg(params_json, params_len, "params_json")?)
        };
        let params = json_arg(params, "params_json")?;
        let result = with_session(session, |session| {
            #[cfg(debug_assertions)]
            assert!(method != TEST_PANIC, "{TEST_PANIC} was called: the tests' way to reach the panic path");
            Ok(session.call(method, params)?)
        })?;
        let text = give_json(&result)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, text) };
        Ok(())
    })
}

/// Call a method that needs no session (`month_end`, `parse_usage_page`, `methods`, `error_codes`,
/// `version`, `evaluate_vector`), as [`cms_session_call`].
///
/// # Safety
/// As [`cms_session_call`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_call(
    method: *const c_char,
    method_len: usize,
    params_json: *const c_char,
    params_len: usize,
    result_json: *mut *mut c_char,
) -> cms_status {
    guard(|| {
        let out = out_param(result_json, "result_json")?;
        // SAFETY: the caller guarantees the lengths of readable bytes.
        let (method, params) = unsafe {
            (text_arg(method, method_len, "method")?, text_arg(params_json, params_len, "params_json")?)
        };
        let result = cms_api::call(method, json_arg(params, "params_json")?)?;
        let text = give_json(&result)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, text) };
        Ok(())
    })
}

/// Ingest one Usage API response page given as its JSON text (`page`: `page_len` bytes of UTF-8, read
/// exactly, without escaping it into a JSON string; other bytes are `CMS_INVALID_UTF8`, naming the offset),
/// named `source` in errors and in the audit trail. The summary
/// (received, stored, duplicates, refused records, ...) goes to `*summary_json` (owned).
///
/// # Safety
/// `page` and `source` must point at their lengths of readable bytes; `summary_json` at a writable `char *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_session_ingest_page(
    session: *mut cms_session,
    page: *const c_char,
    page_len: usize,
    source: *const c_char,
    source_len: usize,
    summary_json: *mut *mut c_char,
) -> cms_status {
    guard(|| {
        let out = out_param(summary_json, "summary_json")?;
        // SAFETY: the caller guarantees `page_len` and `source_len` readable bytes.
        let (page, source) =
            unsafe { (text_arg(page, page_len, "page")?, text_arg(source, source_len, "source")?) };
        let summary = with_session(session, |session| Ok(session.ingest_page(page.as_bytes(), source)?))?;
        let summary = serde_json::to_value(summary).map_err(|error| {
            Failure::from(CmsError::BadJson {
                at: cms_core::Location::whole("ingest summary"),
                message: error.to_string(),
            })
        })?;
        let text = give_json(&summary)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, text) };
        Ok(())
    })
}

/// The month-end of `../shared/bench/WORKLOAD.md` on a folder: reads `data_dir` (`hierarchy.csv`,
/// `subscriptions.csv`, `prices.csv`, `commission.csv`, `plan.json`, `usage.csv`), writes the four
/// outputs into `out_dir` (created if missing), and gives the summary as JSON in `*summary_json` (owned):
/// period, usage rows, invoices, invoice lines, totals per currency (decimal strings), unpriced usage,
/// output files, threads, elapsed milliseconds. Both paths are NUL-terminated UTF-8. Returns `CMS_OK` (0)
/// on success; a missing data folder is `CMS_IO`.
///
/// # Safety
/// `data_dir` and `out_dir` must be NUL-terminated strings; `summary_json` must point at a writable `char *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_month_end(
    data_dir: *const c_char,
    out_dir: *const c_char,
    summary_json: *mut *mut c_char,
) -> cms_status {
    guard(|| {
        let out = out_param(summary_json, "summary_json")?;
        // SAFETY: the caller guarantees NUL-terminated strings.
        let (data, out_folder) =
            unsafe { (c_str_arg(data_dir, "data_dir")?, c_str_arg(out_dir, "out_dir")?) };
        let summary = cms_api::month_end::run(&cms_api::month_end::Options::new(data, out_folder))?;
        let summary = serde_json::to_value(summary).map_err(|error| {
            Failure::from(CmsError::BadJson {
                at: cms_core::Location::whole("month-end summary"),
                message: error.to_string(),
            })
        })?;
        let text = give_json(&summary)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, text) };
        Ok(())
    })
}

/// A canned HTTP server on 127.0.0.1 for the conformance vectors that pull a region (a case's `"http"`
/// replies). Opaque; test support.
pub struct cms_http_fixture {
    _private: u8,
}

/// Live fixtures by handle address.
static FIXTURES: Mutex<BTreeMap<usize, HttpFixture>> = Mutex::new(BTreeMap::new());

/// Start serving canned replies (`replies_json`: a JSON array of `{"path", "status", "body"}`) on
/// 127.0.0.1; `{http}` in a body stands for the server's URL. Test support for the call vectors.
///
/// # Safety
/// `replies_json` must point at `replies_len` readable bytes; `fixture` at a writable `cms_http_fixture *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_http_fixture_new(
    replies_json: *const c_char,
    replies_len: usize,
    fixture: *mut *mut cms_http_fixture,
) -> cms_status {
    guard(|| {
        let out = out_param(fixture, "fixture")?;
        // SAFETY: the caller guarantees `replies_len` readable bytes.
        let replies = unsafe { text_arg(replies_json, replies_len, "replies_json") }?;
        let server = HttpFixture::start(&json_arg(replies, "replies_json")?)?;
        let handle = Box::into_raw(Box::new(cms_http_fixture { _private: 0 }));
        FIXTURES.lock().unwrap_or_else(PoisonError::into_inner).insert(handle as usize, server);
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, handle) };
        Ok(())
    })
}

/// The fixture's base URL (`http://127.0.0.1:PORT`), owned.
///
/// # Safety
/// `url` must point at a writable `char *`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_http_fixture_url(
    fixture: *const cms_http_fixture,
    url: *mut *mut c_char,
) -> cms_status {
    guard(|| {
        let out = out_param(url, "url")?;
        if fixture.is_null() {
            return Err(Failure::new(S::CMS_NULL_ARGUMENT, "argument fixture is NULL"));
        }
        let text = FIXTURES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(fixture as usize))
            .map(|server| server.url().to_owned())
            .ok_or_else(|| {
                Failure::new(S::CMS_INVALID_HANDLE, "not a fixture of this library, or freed already")
            })?;
        let text = give_string(text)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, text) };
        Ok(())
    })
}

/// Stop a fixture's server and free it. NULL does nothing; a handle freed already is refused.
///
/// # Safety
/// `fixture` must be NULL or a pointer (the registry refuses pointers it did not hand out).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cms_http_fixture_free(fixture: *mut cms_http_fixture) -> cms_status {
    guard(|| {
        if fixture.is_null() {
            return Ok(());
        }
        let removed = FIXTURES.lock().unwrap_or_else(PoisonError::into_inner).remove(&(fixture as usize));
        let Some(server) = removed else {
            return Err(Failure::new(
                S::CMS_INVALID_HANDLE,
                "cms_http_fixture_free: not a fixture of this library, or freed already",
            ));
        };
        drop(server);
        // SAFETY: the registry held it: it came from `Box::into_raw` and was not freed since.
        drop(unsafe { Box::from_raw(fixture) });
        Ok(())
    })
}
