//! What every test of this crate needs: the server (`CMS_PG_URL`) or a skip, and a fresh schema of its own,
//! dropped when the test ends.
// Each test file uses a part of this module.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

use cms_postgres::PostgresStore;

/// The server the tests use, or `None` (with a message) when `CMS_PG_URL` is unset; fails the test then if
/// `CMS_REQUIRE_PG=1`, so that CI never passes by skipping.
pub fn url(test: &str) -> Option<String> {
    match std::env::var("CMS_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CMS_REQUIRE_PG").as_deref() != Ok("1"),
                "{test}: CMS_PG_URL is unset but CMS_REQUIRE_PG=1 requires a PostgreSQL server"
            );
            eprintln!("{test}: skipped, CMS_PG_URL is unset (a PostgreSQL URL runs it)");
            None
        }
    }
}

/// A schema of one test: a new name, dropped with everything in it when the value is dropped.
pub struct Scratch {
    /// The server.
    pub url: String,
    /// The schema's name.
    pub schema: String,
}

impl Scratch {
    /// A fresh schema for `test` (`None`: no server, skip the test).
    pub fn new(test: &str) -> Option<Self> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let url = url(test)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or_default();
        let label: String = test.chars().filter(char::is_ascii_alphanumeric).take(24).collect();
        let schema = format!(
            "cms_test_{label}_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        Some(Self { url, schema })
    }

    /// A new connection to the store in this schema.
    pub fn store(&self) -> PostgresStore {
        PostgresStore::connect_in_schema(&self.url, &self.schema).unwrap()
    }

    /// A plain client whose search path is this schema, to look at or tamper with the tables.
    pub fn client(&self) -> postgres::Client {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).unwrap();
        client.batch_execute(&format!("SET search_path TO \"{}\"", self.schema)).unwrap();
        client
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.schema));
        }
    }
}
