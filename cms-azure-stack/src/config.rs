//! Per-region (per-stamp) configuration of the Usage API client.

use std::fmt;
use std::time::Duration;

use chrono::TimeDelta;
use cms_core::model::time::Instant;
use cms_core::source::Granularity;

/// OAuth 2.0 client credentials of a service principal (Entra ID or AD FS) with Reader on the provider
/// subscription.
///
/// `Debug` never prints the secret, and no error message of this crate contains it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// Directory tenant: a GUID or a domain such as `contoso.onmicrosoft.com` (Entra ID). AD FS ignores it
    /// (its token endpoint has no tenant segment), so any value will do there, `adfs` by convention.
    pub tenant: String,
    /// The application (client) id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// How often, and how patiently, a request is retried when the stamp is busy (HTTP 429, 502, 503, 504) or
/// the connection fails (refused, reset, timed out).
///
/// Attempt `n` (1-based) that fails waits `min(base_delay * 2^(n-1), max_delay)` before attempt `n + 1`,
/// unless the response carries `Retry-After`, which is honoured instead (also capped at `max_delay`).
/// Delays are deterministic: no jitter, so tests and operators can predict them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per request, the first included; at least 1.
    pub max_attempts: u32,
    /// Delay after the first failed attempt.
    pub base_delay: Duration,
    /// Upper bound of any single delay, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, base_delay: Duration::from_secs(1), max_delay: Duration::from_secs(300) }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt `attempt` (1-based) when the server did not say how long to wait.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2_u32.saturating_pow(attempt.saturating_sub(1));
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Everything the client needs to pull one region (one Azure Stack Hub stamp).
///
/// [`RegionConfig::new`] fills sensible defaults; adjust the public fields afterwards.
#[derive(Debug, Clone)]
pub struct RegionConfig {
    /// The region's name as CMS knows it; it goes into every page origin and checkpoint.
    pub region: String,
    /// The admin ARM endpoint, e.g. `https://adminmanagement.local.azurestack.external`.
    pub arm_endpoint: String,
    /// The provider subscription the API is called on (`subscriptions/{id}`): the Default Provider
    /// Subscription, or a delegated provider's own subscription.
    pub provider_subscription: String,
    /// Service principal credentials.
    pub credentials: ClientCredentials,
    /// Extra trusted root certificates in PEM (one or more `CERTIFICATE` blocks), added to Mozilla's roots:
    /// stamps often serve the ARM and AD FS endpoints with certificates of an internal CA.
    pub extra_root_certificates_pem: Option<String>,
    /// Hourly or daily aggregation.
    pub granularity: Granularity,
    /// Subscriber (tenant subscription) ids to query one at a time; whole-stamp queries time out on big
    /// stamps. Empty: whole-stamp queries without `subscriberId`.
    pub subscribers: Vec<String>,
    /// Where a subscriber without a checkpoint starts (rounded down to the granularity's boundary).
    pub initial_start: Instant,
    /// Length of one reported window (one query and its pages); a whole number of buckets.
    pub window: TimeDelta,
    /// Retries of busy and failed requests.
    pub retry: RetryPolicy,
    /// Time limit of one HTTP exchange, body included.
    pub timeout: Duration,
    /// Allow `http://` endpoints (tests against a local server). Production stamps use HTTPS.
    pub allow_http: bool,
}

impl RegionConfig {
    /// A configuration with defaults: hourly granularity, one-day windows, whole-stamp queries, Mozilla's
    /// roots only, [`RetryPolicy::default`], a two-minute timeout, HTTPS only.
    pub fn new(
        region: impl Into<String>,
        arm_endpoint: impl Into<String>,
        provider_subscription: impl Into<String>,
        credentials: ClientCredentials,
        initial_start: Instant,
    ) -> Self {
        Self {
            region: region.into(),
            arm_endpoint: arm_endpoint.into(),
            provider_subscription: provider_subscription.into(),
            credentials,
            extra_root_certificates_pem: None,
            granularity: Granularity::Hourly,
            subscribers: Vec::new(),
            initial_start,
            window: TimeDelta::days(1),
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(120),
            allow_http: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
        };
        let delays: Vec<u64> = (1..=6).map(|attempt| policy.backoff(attempt).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 10, 10]);
        assert_eq!(policy.backoff(200).as_secs(), 10);
    }

    #[test]
    fn debug_hides_the_secret() {
        let credentials =
            ClientCredentials { tenant: "t".into(), client_id: "c".into(), client_secret: "hunter2".into() };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
