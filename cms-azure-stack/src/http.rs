//! HTTP plumbing shared by metadata discovery, token requests and the Usage API: one ureq agent per region
//! (rustls with Mozilla's roots plus the stamp's own CA), retries with deterministic backoff that honour
//! `Retry-After`, an injectable [`Sleep`], and the mapping of error responses to [`CmsError`].

use std::io;
use std::time::Duration;

use chrono::DateTime;
use cms_core::error::{CmsError, Location};
use serde::Deserialize;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use url::Url;

use crate::config::RetryPolicy;

/// Waits between retries. Injectable so tests (and callers with their own scheduler) decide how a delay is
/// spent; [`ThreadSleep`] is the default. Any `FnMut(Duration)` is a `Sleep`.
pub trait Sleep {
    /// Wait for `duration`.
    fn sleep(&mut self, duration: Duration);
}

impl<F: FnMut(Duration)> Sleep for F {
    fn sleep(&mut self, duration: Duration) {
        self(duration);
    }
}

/// Blocks the current thread ([`std::thread::sleep`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct ThreadSleep;

impl Sleep for ThreadSleep {
    fn sleep(&mut self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Largest response body read: the page parser's own limit (a page holds at most 1,000 rows, well under
/// 2 MB; anything far beyond is not a Usage API page).
const BODY_LIMIT_BYTES: u64 = cms_core::formats::usage_api::MAX_PAGE_BYTES as u64;

/// Statuses that mean "busy, try again": throttled (429), bad or timed-out gateway (502, 504; whole-stamp
/// queries are known to time out at the gateway), unavailable (503, the API's `ServiceUnavailable`).
fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Transport failures worth another attempt: connection refused or reset, timeouts, a dropped body.
/// TLS failures (bad or unknown certificates arrive as `InvalidData`) and bad URLs fail at once.
fn is_retryable_transport(error: &ureq::Error) -> bool {
    match error {
        ureq::Error::Io(io_error) => {
            !matches!(io_error.kind(), io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput)
        }
        ureq::Error::Timeout(_)
        | ureq::Error::ConnectionFailed
        | ureq::Error::HostNotFound
        | ureq::Error::Protocol(_)
        | ureq::Error::BodyStalled => true,
        _ => false,
    }
}

/// A response as read: status, body, and how many attempts it took.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub attempts: u32,
    retry_after: Option<Duration>,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One request: a GET with an optional bearer token, or a form POST (token requests).
pub(crate) enum Request<'a> {
    Get { url: &'a Url, bearer: Option<&'a str> },
    PostForm { url: &'a Url, form: &'a [(&'a str, &'a str)] },
}

impl Request<'_> {
    pub fn method(&self) -> &'static str {
        match self {
            Self::Get { .. } => "GET",
            Self::PostForm { .. } => "POST",
        }
    }

    pub fn url(&self) -> &Url {
        match self {
            Self::Get { url, .. } | Self::PostForm { url, .. } => url,
        }
    }
}

/// The agent, the retry policy and the sleeper of one region.
pub(crate) struct Http {
    agent: ureq::Agent,
    retry: RetryPolicy,
    sleep: Box<dyn Sleep + Send>,
}

impl Http {
    pub fn new(
        timeout: Duration,
        allow_http: bool,
        extra_roots_pem: Option<&str>,
        retry: RetryPolicy,
        at: &Location,
    ) -> Result<Self, CmsError> {
        let mut tls = TlsConfig::builder();
        if let Some(pem) = extra_roots_pem {
            tls = tls.root_certs(root_certificates(pem, at)?);
        }
        let agent = ureq::Agent::config_builder()
            .tls_config(tls.build())
            .https_only(!allow_http)
            // Error statuses carry the API's error body; we read it ourselves.
            .http_status_as_error(false)
            // ARM does not redirect; a redirect could carry the bearer token elsewhere.
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .user_agent(concat!("cms-azure-stack/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Ok(Self { agent, retry, sleep: Box::new(ThreadSleep) })
    }

    pub fn set_sleep(&mut self, sleep: Box<dyn Sleep + Send>) {
        self.sleep = sleep;
    }

    /// Send `request`, retrying busy statuses and transport failures per the policy. Returns the last
    /// response, whatever its status (the caller maps errors), or `CmsError::Http` when no response arrived.
    pub fn send(&mut self, request: &Request<'_>) -> Result<Reply, CmsError> {
        let max_attempts = self.retry.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let outcome = self.send_once(request);
            let retry_after = match &outcome {
                Ok(reply) if is_retryable_status(reply.status) => reply.retry_after,
                Err(error) if is_retryable_transport(error) => None,
                Ok(_) | Err(_) => break outcome,
            };
            if attempt >= max_attempts {
                break outcome;
            }
            let delay = retry_after.unwrap_or_else(|| self.retry.backoff(attempt)).min(self.retry.max_delay);
            self.sleep.sleep(delay);
            attempt += 1;
        }
        .map(|reply| Reply { attempts: attempt, ..reply })
        .map_err(|error| CmsError::Http {
            method: request.method().to_owned(),
            url: redact_url(request.url()),
            status: None,
            message: with_attempts(error.to_string(), attempt),
        })
    }

    fn send_once(&self, request: &Request<'_>) -> Result<Reply, ureq::Error> {
        let mut response = match request {
            Request::Get { url, bearer } => {
                let mut builder = self.agent.get(url.as_str()).header("Accept", "application/json");
                if let Some(token) = bearer {
                    builder = builder.header("Authorization", format!("Bearer {token}"));
                }
                builder.call()?
            }
            Request::PostForm { url, form } => self
                .agent
                .post(url.as_str())
                .header("Accept", "application/json")
                .send_form(form.iter().copied())?,
        };
        let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok());
        let retry_after = retry_after(header("retry-after"), header("date"));
        let status = response.status().as_u16();
        let body = response.body_mut().with_config().limit(BODY_LIMIT_BYTES).read_to_vec()?;
        Ok(Reply { status, body, attempts: 1, retry_after })
    }
}

/// Mozilla's roots plus every certificate of `pem`.
fn root_certificates(pem: &str, at: &Location) -> Result<RootCerts, CmsError> {
    let invalid = |reason: String| CmsError::InvalidValue { at: at.clone(), text: "<PEM>".into(), reason };
    let mut extra = Vec::new();
    for item in ureq::tls::parse_pem(pem.as_bytes()) {
        match item {
            Ok(PemItem::Certificate(certificate)) => extra.push(certificate),
            Ok(_) => {}
            Err(error) => return Err(invalid(format!("not a PEM certificate list: {error}"))),
        }
    }
    if extra.is_empty() {
        return Err(invalid("no CERTIFICATE block found".into()));
    }
    let mozilla =
        webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().map(|der| Certificate::from_der(der.as_ref()));
    Ok(RootCerts::new_with_certs(&mozilla.chain(extra).collect::<Vec<_>>()))
}

/// The delay a `Retry-After` header asks for: delta-seconds, or an HTTP date measured against the
/// response's own `Date` header (the server's clock, so the client never reads its own). `None` when absent
/// or unreadable; the backoff applies then.
pub(crate) fn retry_after(value: Option<&str>, date: Option<&str>) -> Option<Duration> {
    let value = value?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let now = DateTime::parse_from_rfc2822(date?.trim()).ok()?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

fn with_attempts(message: String, attempts: u32) -> String {
    if attempts > 1 { format!("{message} (after {attempts} attempts)") } else { message }
}

/// A URL fit for messages: no user info, and no query parameter that could hold a secret (the Usage API's
/// own parameters hold none).
pub(crate) fn redact_url(url: &Url) -> String {
    const SECRET_PARAMETERS: [&str; 5] = ["client_secret", "access_token", "code", "sig", "password"];
    let mut clean = url.clone();
    // Both fail only for URLs that cannot have user info (no host), which then have none to remove.
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    let has_secret = url
        .query_pairs()
        .any(|(name, _)| SECRET_PARAMETERS.iter().any(|secret| name.eq_ignore_ascii_case(secret)));
    if has_secret {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let secret = SECRET_PARAMETERS.iter().any(|secret| name.eq_ignore_ascii_case(secret));
                (name.into_owned(), if secret { "redacted".to_owned() } else { value.into_owned() })
            })
            .collect();
        clean.query_pairs_mut().clear().extend_pairs(kept);
    }
    clean.to_string()
}

/// `{"error":{"code","message","details":[{"code","message","target"}]}}` (ARM's `ExtendedErrorInfo`).
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInfo,
}

#[derive(Deserialize)]
struct ErrorInfo {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The API's error code and message (details appended), if the body is an ARM error document.
fn api_error(body: &[u8]) -> Option<(String, String)> {
    let info = serde_json::from_slice::<ErrorBody>(body).ok()?.error;
    let code = info.code.filter(|code| !code.is_empty())?;
    let mut message = info.message.unwrap_or_default();
    for detail in info.details {
        let parts: Vec<String> = [detail.code, detail.message].into_iter().flatten().collect();
        if !parts.is_empty() {
            message.push_str("; ");
            message.push_str(&parts.join(": "));
        }
    }
    Some((code, message))
}

/// The start of a body for a message: at most 200 characters, lossy UTF-8.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None if text.is_empty() => "(empty body)".to_owned(),
        None => text.to_owned(),
    }
}

/// The error for a non-2xx reply of the Usage API (or of metadata discovery): HTTP 400 with an API error
/// code, and `ServiceUnavailable` after the last retry, are `UsageApi`; anything else is `Http`.
pub(crate) fn reply_error(request: &Request<'_>, reply: &Reply) -> CmsError {
    let url = redact_url(request.url());
    match api_error(&reply.body) {
        Some((api_code, message)) if reply.status == 400 || api_code == "ServiceUnavailable" => {
            CmsError::UsageApi { url, api_code, message: with_attempts(message, reply.attempts) }
        }
        Some((api_code, message)) => CmsError::Http {
            method: request.method().to_owned(),
            url,
            status: Some(reply.status),
            message: with_attempts(format!("HTTP {}: {api_code}: {message}", reply.status), reply.attempts),
        },
        None => CmsError::Http {
            method: request.method().to_owned(),
            url,
            status: Some(reply.status),
            message: with_attempts(
                format!("HTTP {}: {}", reply.status, excerpt(&reply.body)),
                reply.attempts,
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(retry_after(Some(" 7 "), None), Some(Duration::from_secs(7)));
        let date = Some("Mon, 10 Mar 2025 13:00:00 GMT");
        assert_eq!(retry_after(Some("Mon, 10 Mar 2025 13:00:42 GMT"), date), Some(Duration::from_secs(42)));
        // A date in the past means "now"; a date without the server's clock, or garbage, means "unknown".
        assert_eq!(retry_after(Some("Mon, 10 Mar 2025 12:00:00 GMT"), date), Some(Duration::ZERO));
        assert_eq!(retry_after(Some("Mon, 10 Mar 2025 13:00:42 GMT"), None), None);
        assert_eq!(retry_after(Some("soon"), date), None);
        assert_eq!(retry_after(None, date), None);
    }

    #[test]
    fn urls_lose_secrets() {
        let url = Url::parse("https://user:pw@host/path?a=1&client_secret=s3&sig=x").unwrap();
        let clean = redact_url(&url);
        assert_eq!(clean, "https://host/path?a=1&client_secret=redacted&sig=redacted");
        let plain = Url::parse("https://host/p?reportedStartTime=2025-03-10T13%3A00%3A00%2B00%3A00").unwrap();
        assert_eq!(redact_url(&plain), plain.as_str());
    }

    #[test]
    fn error_bodies_with_details() {
        let body =
            br#"{"error":{"code":"InvalidProperty","message":"bad","details":[{"code":"X","message":"y"}]}}"#;
        assert_eq!(api_error(body), Some(("InvalidProperty".into(), "bad; X: y".into())));
        assert_eq!(api_error(b"<html>"), None);
        assert_eq!(excerpt(&[b'a'; 300]).len(), 203);
        assert_eq!(excerpt(b"  "), "(empty body)");
    }

    #[test]
    fn bad_pem_is_refused() {
        let at = Location::field("region r", "extra_root_certificates_pem");
        let error = root_certificates("not a pem", &at).unwrap_err();
        assert_eq!(error.code(), "invalid_value");
        let error = root_certificates("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n", &at)
            .unwrap_err();
        assert_eq!(error.code(), "invalid_value");
    }
}
