//! Sessions on real SQLite files in temporary folders: state survives reopening, two sessions on one file
//! see each other's writes, refused commands change nothing and are audited, every method of the table is
//! wired and refuses bad parameters with an error naming the method, and every public engine method is
//! reachable through the facade.

use std::collections::BTreeSet;
use std::path::PathBuf;

use cms_api::{Session, StoreSpec};
use serde_json::{Value, json};

fn operator() -> Value {
    json!({"id": "operator", "node": "platform"})
}

fn add(session: &mut Session, id: &str, kind: &str, parent: Option<&str>) -> Value {
    session
        .call(
            "execute",
            json!({
                "principal": operator(),
                "at": "2026-09-01T00:00:00Z",
                "event": {"type": "node_added", "id": id, "kind": kind, "parent": parent, "name": id},
            }),
        )
        .unwrap()
}

fn ids(nodes: &Value) -> Vec<String> {
    nodes.as_array().unwrap().iter().map(|node| node["id"].as_str().unwrap().to_owned()).collect()
}

fn nodes(session: &mut Session) -> Value {
    session.call("nodes", json!({"principal": operator(), "at": "2026-09-02T00:00:00Z"})).unwrap()
}

/// Bindings move sessions across threads (Python releases the GIL, Node runs work off the main thread).
#[test]
fn a_session_can_move_to_another_thread() {
    fn send<T: Send>(value: T) -> T {
        value
    }
    let mut session = send(Session::memory().unwrap());
    let version = std::thread::spawn(move || session.call("version", Value::Null).unwrap()).join().unwrap();
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn state_survives_reopening_and_two_sessions_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cms.db");
    let mut first = Session::sqlite(&path).unwrap();
    assert_eq!(add(&mut first, "contoso", "partner", None), json!({"seq": 1}));
    let mut second = Session::open(&StoreSpec::Sqlite(path.clone())).unwrap();
    assert_eq!(ids(&nodes(&mut second)), ["platform", "contoso"]);
    add(&mut second, "adatum", "tenant", Some("contoso"));
    // The first session plans its next command on the fresh state: the event numbers stay gapless.
    assert_eq!(add(&mut first, "woodgrove", "tenant", Some("contoso")), json!({"seq": 3}));
    drop((first, second));
    let mut reopened = Session::sqlite(&path).unwrap();
    assert_eq!(ids(&nodes(&mut reopened)), ["platform", "contoso", "adatum", "woodgrove"]);
    assert_eq!(reopened.store_spec(), &StoreSpec::Sqlite(path));
    let verification = reopened.call("verify_audit", json!({"strict": true})).unwrap();
    assert_eq!((verification["records"].as_u64(), verification["events"].as_u64()), (Some(3), Some(3)));
}

#[test]
fn a_refused_command_changes_nothing_and_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = Session::sqlite(dir.path().join("cms.db")).unwrap();
    add(&mut session, "contoso", "partner", None);
    let refused = session.call(
        "execute_all",
        json!({
            "principal": operator(),
            "at": "2026-09-01T00:00:00Z",
            "events": [
                {"type": "node_added", "id": "adatum", "kind": "tenant", "parent": "contoso", "name": "Adatum"},
                {"type": "node_added", "id": "adatum", "kind": "tenant", "parent": "contoso", "name": "again"},
            ],
        }),
    );
    let error = refused.unwrap_err();
    assert_eq!(error.code(), "duplicate_node", "{error}");
    assert_eq!(ids(&nodes(&mut session)), ["platform", "contoso"], "neither event was applied");
    let records = session.call("export_audit", Value::Null).unwrap();
    let outcomes = records["records"].as_array().unwrap();
    assert_eq!(outcomes.len(), 2);
    assert_eq!(outcomes[0]["outcome"], "done", "{}", outcomes[0]);
    assert_eq!(
        (&outcomes[1]["outcome"], &outcomes[1]["code"]),
        (&json!("refused"), &json!("duplicate_node"))
    );
}

#[test]
fn a_page_ingested_through_the_typed_helper_equals_the_call() {
    let page = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/azure-stack-hub-sample-usage.json"),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut typed = Session::sqlite(dir.path().join("typed.db")).unwrap();
    let mut called = Session::sqlite(dir.path().join("called.db")).unwrap();
    let typed_summary = serde_json::to_value(typed.ingest_page(&page, "sample.json").unwrap()).unwrap();
    let called_summary = called
        .call(
            "ingest_page",
            json!({"page": String::from_utf8(page.clone()).unwrap(), "source": "sample.json"}),
        )
        .unwrap();
    assert_eq!(typed_summary, called_summary);
    assert_eq!((typed_summary["received"].as_u64(), typed_summary["stored"].as_u64()), (Some(20), Some(20)));
    let again = typed.ingest_page(&page, "sample.json").unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 20));
    let error = typed.ingest_page(b"{\"value\": [", "broken.json").unwrap_err();
    assert_eq!(error.code(), "bad_json");
    assert!(error.to_string().starts_with("broken.json: bad JSON"), "{error}");
}

#[test]
fn every_method_is_wired_and_names_itself_in_parameter_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = Session::sqlite(dir.path().join("cms.db")).unwrap();
    let mut names = BTreeSet::new();
    for method in cms_api::methods() {
        assert!(names.insert(method.name), "{} is listed twice", method.name);
        assert!(
            !method.doc.is_empty() && method.signature.starts_with('('),
            "{}: {}",
            method.name,
            method.signature
        );
        // An unknown parameter (or, before it, a missing required one) is refused before anything runs.
        let error = session.call(method.name, json!({"zz_unknown": true})).unwrap_err();
        assert_eq!(error.code(), "bad_json", "{}: {error}", method.name);
        assert!(
            error.to_string().starts_with(&format!("{} field ", method.name)),
            "{}: {error}",
            method.name
        );
        // A free method runs without a session; the others say they need one.
        let free = cms_api::call(method.name, json!({"zz_unknown": true})).unwrap_err();
        if method.needs_session() {
            assert_eq!(free.code(), "invalid_value");
            assert!(free.to_string().contains("needs a session"), "{free}");
        } else {
            assert_eq!(free.code(), "bad_json", "{}: {free}", method.name);
        }
    }
    let listed = cms_api::call("methods", Value::Null).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), names.len());
    assert_eq!(ids(&nodes(&mut session)), ["platform"], "no call above changed anything");
}

/// Public methods of `Cms` that are not facade methods, and why.
const NOT_CALLS: &[(&str, &str)] = &[
    ("open", "Session::open"),
    ("store", "the store itself is not data"),
    ("into_store", "the store itself is not data"),
    ("ingest", "ingest_records / ingest_page without principal"),
    ("ingest_as", "ingest_records / ingest_page with principal and at"),
    ("pull", "pull_region (a UsageSource is a Rust object)"),
    ("month_end", "month_end_report (month_end is the job on files)"),
    ("billing_context", "borrows the engine's state (month_end_in takes its parts: terms, prices_at)"),
];

/// The `pub fn` names of `impl<S: Store> Cms<S>` blocks in the engine's sources.
fn engine_methods() -> BTreeSet<String> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cms-core/src/engine");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(folder).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut inside = false;
        for line in text.lines() {
            if line.starts_with("impl<S: Store> Cms<S>") {
                inside = true;
            } else if line == "}" {
                inside = false;
            } else if inside && let Some(rest) = line.strip_prefix("    pub fn ") {
                names.insert(rest.split(['(', '<']).next().unwrap().to_owned());
            }
        }
    }
    names
}

#[test]
fn every_public_engine_method_is_a_call() {
    let engine = engine_methods();
    assert!(engine.len() > 40, "the engine's sources were not read: {engine:?}");
    let calls: BTreeSet<&str> = cms_api::methods().iter().map(|method| method.name).collect();
    let missing: Vec<&String> = engine
        .iter()
        .filter(|name| !calls.contains(name.as_str()) && !NOT_CALLS.iter().any(|(not, _)| not == name))
        .collect();
    assert!(
        missing.is_empty(),
        "engine methods without a facade method (add them to cms-api/src/methods.rs): {missing:?}"
    );
}
