//! # cms-azure-stack
//!
//! Usage of Azure Stack Hub stamps, behind [`cms_core::source::UsageSource`]:
//!
//! - [`UsageApiClient`] pulls one region (stamp) from the provider Usage API over HTTPS;
//! - [`MultiRegionSource`] chains the clients of several regions;
//! - [`PageFolderSource`] reads pages a disconnected stamp exported to a folder.
//!
//! ## How a pull goes
//!
//! 1. **Configure** a region with [`RegionConfig`]: the admin ARM endpoint, the provider subscription,
//!    service principal credentials, optional internal root CAs (PEM, trusted besides Mozilla's roots),
//!    the granularity, the subscribers to loop over, an initial start and a window length. The caller
//!    passes `until`, the end of reported time to read; the client rounds it down to an hour (hourly) or a
//!    UTC midnight (daily) and never reads the clock to choose windows, so no window reaches into the
//!    future. [`UsageApiClient::with_checkpoints`] resumes each subscriber at its stored `reported_until`.
//! 2. **Authenticate** on the first request: `GET {arm}/metadata/endpoints?api-version=2015-01-01` gives
//!    `authentication.loginEndpoint` and `audiences[0]`; a client-credentials grant is posted to
//!    `{login}/{tenant}/oauth2/token` (Entra ID) or `{login}/oauth2/token` (AD FS, a login endpoint ending in
//!    `/adfs`) with `resource = audience`. The token is cached until shortly before it expires; a 401 from
//!    the API drops it, fetches a new one and retries once.
//! 3. **Walk** subscribers one by one (whole-stamp queries time out on big stamps; an empty list means one
//!    whole-stamp query without `subscriberId`), each from its start to `until` in windows
//!    `[start, end)` on bucket boundaries, each window page by page:
//!    `GET {arm}/subscriptions/{sub}/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates?reportedStartTime=..&reportedEndTime=..&aggregationGranularity=..&subscriberId=..&api-version=2015-06-01-preview`,
//!    then each `nextLink` (same host only, so the token goes nowhere else; a bare continuation token, or
//!    a `continuationToken` in the body, is appended to the window's first URL) until none is left.
//! 4. **Return** each page as a [`cms_core::source::SourcedPage`] whose origin names the request URL, the
//!    region, the subscriber and the window; the window's last page has `completes_window = true` (a
//!    window without usage still yields one empty page), and storing it lets the engine record the
//!    window's [`cms_core::source::Checkpoint`].
//!
//! ## Failures
//!
//! Busy answers (429, 502, 503, 504) and transport failures are retried with deterministic exponential
//! backoff, honouring `Retry-After` ([`RetryPolicy`]); delays go through an injectable [`Sleep`]. HTTP
//! 400 with an API error code (`NoApiVersion`, `InvalidProperty`, `RequestEndTimeIsInFuture`, ...) is
//! `CmsError::UsageApi`, as is `ServiceUnavailable` after the last attempt; other failures are
//! `CmsError::Http`; token failures are `CmsError::Auth`; a page that does not parse is the parse error
//! naming the request URL. No message carries the client secret or the token. After an error a source
//! has not moved: asking again repeats the failed request.
//!
//! ## Example
//!
//! ```no_run
//! use cms_azure_stack::{ClientCredentials, RegionConfig, UsageApiClient};
//! use cms_core::model::time::parse_timestamp;
//! use cms_core::source::{Checkpoint, UsageSource};
//!
//! # fn main() -> Result<(), cms_core::CmsError> {
//! let credentials = ClientCredentials {
//!     tenant: "contoso.onmicrosoft.com".into(),
//!     client_id: "5b1d2c3e-0000-4000-8000-00000000c1d1".into(),
//!     client_secret: std::env::var("CMS_CLIENT_SECRET").unwrap_or_default(),
//! };
//! let start = parse_timestamp("2025-03-01T00:00:00Z").expect("a timestamp");
//! let mut config = RegionConfig::new(
//!     "local",
//!     "https://adminmanagement.local.azurestack.external",
//!     "0d6a7e9f-2b4c-4f8e-a1d3-9c5b7e2f6a44",
//!     credentials,
//!     start,
//! );
//! config.subscribers = vec!["3f2a6c1e-8b4d-4e1a-9c7f-2d5b8e0a1c11".into()];
//! let stored: Vec<Checkpoint> = Vec::new(); // from the store
//! let now = parse_timestamp("2025-03-10T13:27:00Z").expect("a timestamp"); // the caller's clock
//! let mut source = UsageApiClient::new(config, now)?.with_checkpoints(&stored);
//! while let Some(sourced) = source.next_page()? {
//!     // Store the page's records and, when `sourced.origin.completes_window`, its checkpoint
//!     // (`Checkpoint::after(&sourced.origin)`), in one transaction.
//!     let _ = Checkpoint::after(&sourced.origin);
//! }
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod auth;
mod client;
mod config;
mod folder;
mod http;
mod multi;
mod windows;

pub use client::UsageApiClient;
pub use config::{ClientCredentials, RegionConfig, RetryPolicy};
pub use folder::{PageFolderSource, read_page_file};
pub use http::{Sleep, ThreadSleep};
pub use multi::MultiRegionSource;
pub use windows::align_down;
