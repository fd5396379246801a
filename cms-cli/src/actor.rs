//! Who the command line acts as, and its clock (the core has none).

use cms_core::engine::Principal;
use cms_core::model::time::Instant;

/// The operator at the terminal: the platform principal named after the OS user (`cli` when unknown).
pub fn operator() -> Principal {
    let user = std::env::var("USER").ok().filter(|user| !user.trim().is_empty());
    Principal::platform(&format!("cli:{}", user.as_deref().unwrap_or("cli")))
}

/// Now, in UTC.
pub fn now() -> Instant {
    chrono::Utc::now()
}
