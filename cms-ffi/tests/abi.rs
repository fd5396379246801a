//! The C ABI called from Rust (through the rlib): statuses for every error code, NULLs, invalid UTF-8,
//! double frees, out-parameters untouched on failure, the last error, a panic caught (debug builds), a
//! session on a SQLite file, and the month-end on files. The C harness (`tests/c/test_cms.c`) does the same from C, under valgrind.

use std::ffi::{CStr, CString, c_char};
use std::path::PathBuf;
use std::ptr;

use cms_core::CmsError;
use cms_ffi::*;
use serde_json::{Value, json};

/// Take an owned string from the library, freeing it.
fn take(text: *mut c_char) -> String {
    assert!(!text.is_null());
    // SAFETY: the library returned a NUL-terminated string, freed right after.
    let owned = unsafe { CStr::from_ptr(text) }.to_str().unwrap().to_owned();
    // SAFETY: a string of this library, freed once.
    assert_eq!(unsafe { cms_string_free(text) }, cms_status::CMS_OK);
    owned
}

fn last_error() -> (String, String) {
    let (mut code, mut message) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid out-parameters.
    unsafe {
        assert_eq!(cms_last_error_code(&raw mut code), cms_status::CMS_OK);
        assert_eq!(cms_last_error_message(&raw mut message), cms_status::CMS_OK);
    }
    (take(code), take(message))
}

fn call(
    session: *mut cms_session,
    method: &str,
    params: &Value,
) -> Result<Value, (cms_status, String, String)> {
    let params = params.to_string();
    let mut result = ptr::null_mut();
    // SAFETY: pointers and lengths of live strings; a valid out-parameter.
    let status = unsafe {
        cms_session_call(
            session,
            method.as_ptr().cast(),
            method.len(),
            params.as_ptr().cast(),
            params.len(),
            &raw mut result,
        )
    };
    if status == cms_status::CMS_OK {
        Ok(serde_json::from_str(&take(result)).unwrap())
    } else {
        assert!(result.is_null(), "the out-parameter is written only on success");
        let (code, message) = last_error();
        Err((status, code, message))
    }
}

#[test]
fn every_error_code_has_its_own_status_and_code_string() {
    let mut seen = std::collections::BTreeSet::new();
    for code in CmsError::CODES {
        let status = status_of_code(code);
        assert!(status as i32 >= 100, "{code} has no status of its own: {status:?}");
        assert!(seen.insert(status as i32), "{code} shares status {status:?}");
        let mut name = ptr::null();
        // SAFETY: a valid out-parameter; the string is static.
        assert_eq!(unsafe { cms_status_code(status, &raw mut name) }, cms_status::CMS_OK);
        // SAFETY: a static NUL-terminated string.
        assert_eq!(unsafe { CStr::from_ptr(name) }.to_str().unwrap(), *code);
        let mut message = ptr::null();
        // SAFETY: as above.
        assert_eq!(unsafe { cms_status_message(status, &raw mut message) }, cms_status::CMS_OK);
        // SAFETY: as above.
        assert!(!unsafe { CStr::from_ptr(message) }.to_bytes().is_empty());
    }
    assert_eq!(status_of_code("a_code_from_the_future"), cms_status::CMS_UNKNOWN_ERROR);
    assert_eq!(
        status_of_code("null_argument"),
        cms_status::CMS_UNKNOWN_ERROR,
        "interface codes are not core codes"
    );
}

#[test]
fn nulls_bad_utf8_and_double_frees_are_refused_and_touch_nothing() {
    let mut session = ptr::null_mut();
    // SAFETY: every call below passes NULLs or short buffers on purpose; the library must refuse them.
    unsafe {
        assert_eq!(cms_session_new_memory(ptr::null_mut()), cms_status::CMS_NULL_ARGUMENT);
        assert_eq!(last_error().0, "null_argument");
        assert_eq!(cms_session_new_sqlite(ptr::null(), 3, &raw mut session), cms_status::CMS_NULL_ARGUMENT);
        assert!(session.is_null());
        let bad = b"caf\xe9.db";
        assert_eq!(
            cms_session_new_sqlite(bad.as_ptr().cast(), bad.len(), &raw mut session),
            cms_status::CMS_INVALID_UTF8
        );
        let (code, message) = last_error();
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("invalid_utf8", "argument path is not UTF-8: invalid byte at offset 3")
        );
        assert!(session.is_null());
        assert_eq!(cms_session_new_memory(&raw mut session), cms_status::CMS_OK);
        let mut result = ptr::null_mut();
        assert_eq!(
            cms_session_call(session, ptr::null(), 0, c"".as_ptr(), 0, &raw mut result),
            cms_status::CMS_NULL_ARGUMENT
        );
        assert_eq!(
            cms_session_call(session, b"nodes\xff".as_ptr().cast(), 6, c"".as_ptr(), 0, &raw mut result),
            cms_status::CMS_INVALID_UTF8
        );
        assert_eq!(
            cms_session_call(session, c"version".as_ptr(), 7, c"{".as_ptr(), 1, &raw mut result),
            cms_status::CMS_BAD_JSON
        );
        assert_eq!(
            cms_session_call(session, c"version".as_ptr(), 7, c"".as_ptr(), 0, ptr::null_mut()),
            cms_status::CMS_NULL_ARGUMENT
        );
        assert!(result.is_null());
        assert_eq!(cms_session_free(session), cms_status::CMS_OK);
        assert_eq!(cms_session_free(session), cms_status::CMS_INVALID_HANDLE, "a second free is refused");
        assert_eq!(
            cms_session_call(session, c"version".as_ptr(), 7, c"".as_ptr(), 0, &raw mut result),
            cms_status::CMS_INVALID_HANDLE,
            "a freed session is not used"
        );
        assert_eq!(cms_session_free(ptr::null_mut()), cms_status::CMS_OK);
        let mut version = ptr::null();
        assert_eq!(cms_version(&raw mut version), cms_status::CMS_OK);
        let mut text = ptr::null_mut();
        assert_eq!(cms_last_error_code(&raw mut text), cms_status::CMS_OK);
        assert_eq!(cms_string_free(text), cms_status::CMS_OK);
        assert_eq!(cms_string_free(text), cms_status::CMS_INVALID_HANDLE, "a string freed twice");
        let foreign = CString::new("not from the library").unwrap();
        assert_eq!(cms_string_free(foreign.as_ptr().cast_mut()), cms_status::CMS_INVALID_HANDLE);
        assert_eq!(cms_string_free(ptr::null_mut()), cms_status::CMS_OK);
    }
}

#[test]
fn a_session_on_a_sqlite_file_persists_and_maps_errors_to_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cms.db");
    let path = path.to_str().unwrap();
    let operator = json!({"id": "operator", "node": "platform"});
    let event =
        json!({"type": "node_added", "id": "contoso", "kind": "partner", "parent": null, "name": "Contoso"});
    for round in 0..2 {
        let mut session = ptr::null_mut();
        // SAFETY: a live path string and a valid out-parameter.
        assert_eq!(
            unsafe { cms_session_new_sqlite(path.as_ptr().cast(), path.len(), &raw mut session) },
            cms_status::CMS_OK
        );
        let added = call(
            session,
            "execute",
            &json!({"principal": operator, "at": "2026-09-01T00:00:00Z", "event": event}),
        );
        if round == 0 {
            assert_eq!(added.unwrap(), json!({"seq": 1}));
        } else {
            let (status, code, message) = added.unwrap_err();
            assert_eq!((status, code.as_str()), (cms_status::CMS_DUPLICATE_NODE, "duplicate_node"));
            assert_eq!(message, "duplicate node id \"contoso\"");
        }
        let nodes =
            call(session, "nodes", &json!({"principal": operator, "at": "2026-09-02T00:00:00Z"})).unwrap();
        assert_eq!(nodes[1]["id"], "contoso");
        let (status, code, message) = call(session, "no_such", &json!({})).unwrap_err();
        assert_eq!((status, code.as_str()), (cms_status::CMS_INVALID_VALUE, "invalid_value"));
        assert!(message.contains("no_such"), "{message}");
        // SAFETY: a live session, freed once.
        assert_eq!(unsafe { cms_session_free(session) }, cms_status::CMS_OK);
    }
    let mut session = ptr::null_mut();
    let missing = dir.path().join("no/such/folder/cms.db");
    let missing = missing.to_str().unwrap();
    // SAFETY: a live path string and a valid out-parameter.
    let status = unsafe { cms_session_new_sqlite(missing.as_ptr().cast(), missing.len(), &raw mut session) };
    assert_eq!(status, cms_status::CMS_STORE);
    assert!(session.is_null());
}

#[test]
fn the_month_end_on_files() {
    let case: Value = serde_json::from_slice(
        &std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/month_end.json"))
            .unwrap(),
    )
    .unwrap();
    let case = &case["cases"][0];
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in case["files"].as_object().unwrap() {
        std::fs::write(dir.path().join(name), text.as_str().unwrap()).unwrap();
    }
    let data = CString::new(dir.path().to_str().unwrap()).unwrap();
    let out = CString::new(dir.path().join("out").to_str().unwrap()).unwrap();
    let mut summary = ptr::null_mut();
    // SAFETY: NUL-terminated strings and a valid out-parameter.
    assert_eq!(unsafe { cms_month_end(data.as_ptr(), out.as_ptr(), &raw mut summary) }, cms_status::CMS_OK);
    let parsed: Value = serde_json::from_str(&take(summary)).unwrap();
    assert_eq!((parsed["period"].as_str(), parsed["invoices"].as_u64()), (Some("2026-10"), Some(4)));
    assert_eq!(parsed["totals"], json!({"USD": "2.81"}));
    summary = ptr::null_mut();
    let written = std::fs::read_to_string(dir.path().join("out/invoices.csv")).unwrap();
    assert_eq!(written, case["expect"]["invoices.csv"].as_str().unwrap());
    let missing = CString::new(dir.path().join("nowhere").to_str().unwrap()).unwrap();
    // SAFETY: as above.
    assert_eq!(
        unsafe { cms_month_end(missing.as_ptr(), out.as_ptr(), &raw mut summary) },
        cms_status::CMS_IO
    );
    assert!(summary.is_null());
    let (code, message) = last_error();
    assert_eq!(code, "io");
    assert!(message.contains("nowhere") && message.contains("no such data folder"), "{message}");
    // SAFETY: NULL on purpose.
    assert_eq!(
        unsafe { cms_month_end(ptr::null(), out.as_ptr(), &raw mut summary) },
        cms_status::CMS_NULL_ARGUMENT
    );
}

/// Ingest a page through `cms_session_ingest_page`: the status, and the summary or the last error.
fn ingest_page(session: *mut cms_session, page: &[u8], source: &[u8]) -> (cms_status, String, String) {
    let mut summary = ptr::null_mut();
    // SAFETY: pointers and lengths of live buffers; a valid out-parameter.
    let status = unsafe {
        cms_session_ingest_page(
            session,
            page.as_ptr().cast(),
            page.len(),
            source.as_ptr().cast(),
            source.len(),
            &raw mut summary,
        )
    };
    if status == cms_status::CMS_OK {
        (status, take(summary), String::new())
    } else {
        assert!(summary.is_null(), "the out-parameter is written only on success");
        let (code, message) = last_error();
        (status, code, message)
    }
}

#[test]
fn a_page_is_checked_for_utf8_before_it_is_parsed() {
    let mut session = ptr::null_mut();
    // SAFETY: a valid out-parameter.
    assert_eq!(unsafe { cms_session_new_memory(&raw mut session) }, cms_status::CMS_OK);
    let page = "{\"value\": [], \"comment\": \"caf\u{e9}\"}".as_bytes();
    let (status, summary, _) = ingest_page(session, page, b"page-1.json");
    assert_eq!(status, cms_status::CMS_OK);
    assert_eq!(serde_json::from_str::<Value>(&summary).unwrap()["received"], 0);
    // The same page in Latin-1: the é is one byte, 0xE9, at offset 29.
    let latin1: Vec<u8> = page
        .iter()
        .copied()
        .filter(|byte| *byte != 0xc3)
        .map(|byte| if byte == 0xa9 { 0xe9 } else { byte })
        .collect();
    assert_eq!(latin1.iter().position(|byte| *byte == 0xe9), Some(29));
    let (status, code, message) = ingest_page(session, &latin1, b"page-2.json");
    assert_eq!((status, code.as_str()), (cms_status::CMS_INVALID_UTF8, "invalid_utf8"));
    assert_eq!(message, "argument page is not UTF-8: invalid byte at offset 29");
    let (status, code, _) = ingest_page(session, b"{\"value\": []}", b"p\xffge.json");
    assert_eq!((status, code.as_str()), (cms_status::CMS_INVALID_UTF8, "invalid_utf8"), "the source too");
    let mut summary = ptr::null_mut();
    // SAFETY: NULL on purpose.
    let status =
        unsafe { cms_session_ingest_page(session, ptr::null(), 3, c"s".as_ptr(), 1, &raw mut summary) };
    assert_eq!(status, cms_status::CMS_NULL_ARGUMENT);
    assert!(summary.is_null());
    // SAFETY: a live session, freed once.
    assert_eq!(unsafe { cms_session_free(session) }, cms_status::CMS_OK);
}

#[test]
fn reading_the_last_error_runs_guarded_and_leaves_it_as_it_was() {
    let mut session = ptr::null_mut();
    // SAFETY: a valid out-parameter.
    assert_eq!(unsafe { cms_session_new_memory(&raw mut session) }, cms_status::CMS_OK);
    let (status, code, message) = call(session, "no_such", &json!({})).unwrap_err();
    assert_eq!((status, code.as_str()), (cms_status::CMS_INVALID_VALUE, "invalid_value"));
    assert_eq!(last_error(), (code, message.clone()), "reading it twice gives it twice");
    // SAFETY: NULL out-parameters on purpose: refused, and that refusal is the last error now.
    unsafe {
        assert_eq!(cms_last_error_code(ptr::null_mut()), cms_status::CMS_NULL_ARGUMENT);
        assert_eq!(cms_last_error_message(ptr::null_mut()), cms_status::CMS_NULL_ARGUMENT);
    }
    let (code, message) = last_error();
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("null_argument", "argument message (an out-parameter) is NULL")
    );
    // Each thread has its own last error: a fresh thread has none.
    let fresh = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(fresh, (String::new(), String::new()));
    // SAFETY: a live session, freed once.
    assert_eq!(unsafe { cms_session_free(session) }, cms_status::CMS_OK);
}

#[cfg(debug_assertions)]
#[test]
fn a_panic_is_caught_and_leaves_its_session_unusable_and_the_others_alone() {
    let (mut broken, mut other) = (ptr::null_mut(), ptr::null_mut());
    // SAFETY: valid out-parameters.
    unsafe {
        assert_eq!(cms_session_new_memory(&raw mut broken), cms_status::CMS_OK);
        assert_eq!(cms_session_new_memory(&raw mut other), cms_status::CMS_OK);
    }
    let operator = json!({"id": "operator", "node": "platform"});
    let event =
        json!({"type": "node_added", "id": "contoso", "kind": "partner", "parent": null, "name": "Contoso"});
    let params = json!({"principal": operator, "at": "2026-09-01T00:00:00Z", "event": event});
    assert_eq!(call(broken, "execute", &params).unwrap(), json!({"seq": 1}));
    let (status, code, message) = call(broken, "__test_panic", &json!({})).unwrap_err();
    assert_eq!((status, code.as_str()), (cms_status::CMS_PANIC, "panic"));
    assert!(
        message.starts_with("panic caught: an internal error (a bug in cms): __test_panic was called"),
        "{message}"
    );
    // The session it happened in refuses every call from then on, as documented.
    let (status, code, message) = call(broken, "version", &json!({})).unwrap_err();
    assert_eq!((status, code.as_str()), (cms_status::CMS_PANIC, "panic"));
    assert_eq!(message, "the session is unusable after an internal error; free it");
    // Another session, and free functions, work on.
    assert_eq!(call(other, "execute", &params).unwrap(), json!({"seq": 1}));
    let mut version = ptr::null();
    // SAFETY: a valid out-parameter; the handles were given out above, each freed once.
    unsafe {
        assert_eq!(cms_version(&raw mut version), cms_status::CMS_OK);
        assert_eq!(cms_session_free(broken), cms_status::CMS_OK, "a broken session is freed");
        assert_eq!(cms_session_free(broken), cms_status::CMS_INVALID_HANDLE);
        assert_eq!(cms_session_free(other), cms_status::CMS_OK);
    }
}
