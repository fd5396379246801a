//! [`UsageApiClient`]: the provider Usage API of one region behind [`UsageSource`].

use std::collections::BTreeMap;

use chrono::TimeDelta;
use cms_core::error::{CmsError, Location};
use cms_core::formats::usage_api::parse_page;
use cms_core::model::time::Instant;
use cms_core::source::{Checkpoint, Granularity, PageOrigin, ReportedWindow, SourcedPage, UsageSource};
use serde::Deserialize;
use url::Url;

use crate::auth::Authenticator;
use crate::config::RegionConfig;
use crate::http::{Http, Request, Sleep, redact_url, reply_error};
use crate::windows::{align_down, api_time, next_window};

/// The only api-version of the `Microsoft.Commerce.Admin` spec.
const USAGE_API_VERSION: &str = "2015-06-01-preview";

/// Where one subscriber (or the whole stamp) stands: the start of its next reported window.
#[derive(Debug, Clone)]
struct SubscriberCursor {
    subscriber: Option<String>,
    next_start: Instant,
}

/// The window being read and the URL of its next page.
#[derive(Debug, Clone)]
struct PendingPage {
    window: ReportedWindow,
    first_url: Url,
    url: Url,
}

/// A body's `continuationToken`, for responses that give a token instead of a `nextLink`.
#[derive(Deserialize)]
struct Continuation {
    #[serde(rename = "continuationToken", alias = "ContinuationToken", default)]
    token: Option<String>,
}

/// Reads usage of one region (one Azure Stack Hub stamp) from the provider Usage API
/// (`Microsoft.Commerce.Admin/subscriberUsageAggregates`), one page per [`UsageSource::next_page`] call.
///
/// Subscribers are read one after the other, each window by window from its start (its checkpoint, or
/// the configured initial start) up to `until`, each window page by page. The last page of a window has
/// `completes_window = true`; a window without usage still yields its one empty page, so its checkpoint
/// advances.
///
/// After an error nothing moves: the next call asks for the same page again.
pub struct UsageApiClient {
    region: String,
    granularity: Granularity,
    window_length: TimeDelta,
    until: Instant,
    arm_base: Url,
    usage_endpoint: Url,
    http: Http,
    auth: Authenticator,
    cursors: Vec<SubscriberCursor>,
    position: usize,
    pending: Option<PendingPage>,
}

impl std::fmt::Debug for UsageApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageApiClient")
            .field("region", &self.region)
            .field("arm_base", &self.arm_base.as_str())
            .field("granularity", &self.granularity)
            .field("until", &self.until)
            .field("cursors", &self.cursors)
            .finish_non_exhaustive()
    }
}

impl UsageApiClient {
    /// The client of `region` among `configs` (by region name), resuming from `checkpoints`, reading up to
    /// `until`: what a scheduler's `TickHooks::source` hands out. A region without a configuration is
    /// `invalid_value`.
    pub fn for_region(
        configs: &BTreeMap<String, RegionConfig>,
        region: &str,
        checkpoints: &[Checkpoint],
        until: Instant,
    ) -> Result<Self, CmsError> {
        let config = configs.get(region).cloned().ok_or_else(|| CmsError::InvalidValue {
            at: Location::whole("region"),
            text: region.to_owned(),
            reason: "no configuration for this region".into(),
        })?;
        Ok(Self::new(config, until)?.with_checkpoints(checkpoints))
    }

    /// A client for `config`'s region that reads reported time up to `until`, rounded down to the
    /// granularity's boundary (an hour, or UTC midnight for daily): windows never reach past it. The
    /// caller passes the clock's reading; the client never reads the clock to pick windows.
    ///
    /// Nothing is sent yet. Fails with `invalid_value` on a bad configuration: an endpoint that is not an
    /// absolute `https` URL (or `http` with `allow_http`), an empty region, provider subscription or
    /// subscriber id, a window that is not a positive whole number of buckets, zero attempts, or PEM text
    /// without a certificate.
    pub fn new(config: RegionConfig, until: Instant) -> Result<Self, CmsError> {
        let at = |field: &str| Location::field(format!("region {:?}", config.region), field);
        let invalid = |field: &str, text: &str, reason: &str| CmsError::InvalidValue {
            at: at(field),
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        if config.region.trim().is_empty() {
            return Err(invalid("region", &config.region, "a region needs a name"));
        }
        if config.provider_subscription.trim().is_empty() {
            return Err(invalid(
                "provider_subscription",
                &config.provider_subscription,
                "the provider subscription id is required",
            ));
        }
        let bucket = config.granularity.seconds();
        let window_seconds = config.window.num_seconds();
        if window_seconds <= 0 || window_seconds % bucket != 0 || config.window.subsec_nanos() != 0 {
            return Err(invalid(
                "window",
                &format!("{}s", config.window.num_seconds()),
                &format!("must be a positive whole number of {} buckets", config.granularity),
            ));
        }
        if config.retry.max_attempts == 0 {
            return Err(invalid("retry.max_attempts", "0", "at least one attempt is needed"));
        }
        let arm_base = arm_base(&config.arm_endpoint, config.allow_http)
            .map_err(|reason| invalid("arm_endpoint", &config.arm_endpoint, &reason))?;
        let mut usage_endpoint = arm_base.clone();
        usage_endpoint
            .path_segments_mut()
            .map_err(|()| invalid("arm_endpoint", &config.arm_endpoint, "not a base URL"))?
            .pop_if_empty()
            .extend([
                "subscriptions",
                config.provider_subscription.trim(),
                "providers",
                "Microsoft.Commerce.Admin",
                "subscriberUsageAggregates",
            ]);

        let mut subscribers: Vec<String> = Vec::new();
        for subscriber in &config.subscribers {
            let subscriber = subscriber.trim();
            if subscriber.is_empty() {
                return Err(invalid("subscribers", subscriber, "a subscriber id cannot be empty"));
            }
            if !subscribers.iter().any(|seen| seen.eq_ignore_ascii_case(subscriber)) {
                subscribers.push(subscriber.to_owned());
            }
        }
        let start = align_down(config.initial_start, config.granularity);
        let cursors = if subscribers.is_empty() {
            vec![SubscriberCursor { subscriber: None, next_start: start }]
        } else {
            subscribers
                .into_iter()
                .map(|subscriber| SubscriberCursor { subscriber: Some(subscriber), next_start: start })
                .collect()
        };

        let http = Http::new(
            config.timeout,
            config.allow_http,
            config.extra_root_certificates_pem.as_deref(),
            config.retry,
            &at("extra_root_certificates_pem"),
        )?;
        let auth = Authenticator::new(config.credentials, &arm_base, config.allow_http)?;
        Ok(Self {
            region: config.region,
            granularity: config.granularity,
            window_length: config.window,
            until: align_down(until, config.granularity),
            arm_base,
            usage_endpoint,
            http,
            auth,
            cursors,
            position: 0,
            pending: None,
        })
    }

    /// Resume from stored checkpoints: each subscriber (or the whole stamp) of this region starts at the
    /// latest `reported_until` of a checkpoint with the same region, subscriber (ids compared ignoring
    /// case) and granularity; others keep the initial start. Call before the first page.
    #[must_use]
    pub fn with_checkpoints(mut self, checkpoints: &[Checkpoint]) -> Self {
        for cursor in &mut self.cursors {
            let resumed = checkpoints
                .iter()
                .filter(|checkpoint| {
                    checkpoint.region == self.region
                        && checkpoint.granularity == self.granularity
                        && match (&checkpoint.subscriber, &cursor.subscriber) {
                            (None, None) => true,
                            (Some(stored), Some(wanted)) => stored.eq_ignore_ascii_case(wanted),
                            _ => false,
                        }
                })
                .map(|checkpoint| checkpoint.reported_until)
                .max();
            if let Some(reported_until) = resumed {
                cursor.next_start = align_down(reported_until, self.granularity);
            }
        }
        self
    }

    /// Spend retry delays with `sleep` instead of blocking the thread (tests record them; a scheduler may
    /// do other work meanwhile).
    #[must_use]
    pub fn with_sleep(mut self, sleep: impl Sleep + Send + 'static) -> Self {
        self.http.set_sleep(Box::new(sleep));
        self
    }

    /// The region's name.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The end of reported time this client reads up to (the caller's `until`, rounded down).
    pub fn until(&self) -> Instant {
        self.until
    }

    /// Each subscriber (`None`: the whole stamp) with the start of its next window not yet read completely.
    pub fn next_starts(&self) -> Vec<(Option<String>, Instant)> {
        self.cursors.iter().map(|cursor| (cursor.subscriber.clone(), cursor.next_start)).collect()
    }

    /// The first URL of a window.
    fn window_url(&self, window: &ReportedWindow, subscriber: Option<&str>) -> Url {
        let mut url = self.usage_endpoint.clone();
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("reportedStartTime", &api_time(window.start))
                .append_pair("reportedEndTime", &api_time(window.end))
                .append_pair("aggregationGranularity", window.granularity.api_name());
            if let Some(subscriber) = subscriber {
                query.append_pair("subscriberId", subscriber);
            }
            query.append_pair("api-version", USAGE_API_VERSION);
        }
        url
    }

    /// GET a page with a bearer token; a 401 drops the token and retries once with a new one.
    fn fetch(&mut self, url: &Url) -> Result<Vec<u8>, CmsError> {
        let mut refreshed = false;
        loop {
            let token = self.auth.bearer(&mut self.http)?;
            let request = Request::Get { url, bearer: Some(&token) };
            let reply = self.http.send(&request)?;
            if reply.is_success() {
                return Ok(reply.body);
            }
            if reply.status == 401 {
                self.auth.invalidate();
                if !refreshed {
                    refreshed = true;
                    continue;
                }
                return Err(CmsError::Auth {
                    authority: self.auth.authority(),
                    message: format!("GET {} refused a freshly issued token (HTTP 401)", redact_url(url)),
                });
            }
            return Err(reply_error(&request, &reply));
        }
    }

    /// The URL of the page after `pending.url`, from the page's `nextLink` (absolute, relative, or a bare
    /// continuation token) or, without one, from a `continuationToken` in the body.
    fn next_url(
        &self,
        pending: &PendingPage,
        next_link: Option<&str>,
        body: &[u8],
    ) -> Result<Option<Url>, CmsError> {
        let refuse = |link: &str, message: String| CmsError::Http {
            method: "GET".into(),
            url: Url::parse(link).map_or_else(|_| link.to_owned(), |url| redact_url(&url)),
            status: None,
            message,
        };
        let link = match next_link.map(str::trim).filter(|link| !link.is_empty()) {
            Some(link) => link.to_owned(),
            None => match serde_json::from_slice::<Continuation>(body).ok().and_then(|body| body.token) {
                Some(token) if !token.is_empty() => {
                    return Ok(Some(with_continuation(&pending.first_url, &token)));
                }
                _ => return Ok(None),
            },
        };
        let next = match Url::parse(&link) {
            Ok(url) => url,
            Err(url::ParseError::RelativeUrlWithoutBase) if link.starts_with(['/', '?']) => {
                pending.url.join(&link).map_err(|error| refuse(&link, format!("bad nextLink: {error}")))?
            }
            Err(url::ParseError::RelativeUrlWithoutBase) => with_continuation(&pending.first_url, &link),
            Err(error) => return Err(refuse(&link, format!("bad nextLink: {error}"))),
        };
        if next.origin() != self.arm_base.origin() {
            return Err(refuse(
                &link,
                format!(
                    "nextLink leaves the ARM endpoint {}; the bearer token is not sent elsewhere",
                    self.arm_base.origin().ascii_serialization()
                ),
            ));
        }
        if next == pending.url {
            return Err(refuse(&link, "nextLink repeats the page just read".into()));
        }
        Ok(Some(next))
    }
}

/// `first` with `continuationToken` set.
fn with_continuation(first: &Url, token: &str) -> Url {
    let mut url = first.clone();
    url.query_pairs_mut().append_pair("continuationToken", token);
    url
}

/// The ARM endpoint as a base URL ending in `/`.
fn arm_base(endpoint: &str, allow_http: bool) -> Result<Url, String> {
    let mut url = Url::parse(endpoint.trim()).map_err(|error| format!("not an absolute URL: {error}"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => return Err("http is allowed only with allow_http (tests); stamps use https".into()),
        other => return Err(format!("unsupported scheme {other:?}")),
    }
    if url.host().is_none() || url.cannot_be_a_base() {
        return Err("the endpoint needs a host".into());
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err("the endpoint takes no query, fragment or user info".into());
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

impl UsageSource for UsageApiClient {
    fn next_page(&mut self) -> Result<Option<SourcedPage>, CmsError> {
        let pending = loop {
            if let Some(pending) = &self.pending {
                break pending.clone();
            }
            let Some(cursor) = self.cursors.get(self.position) else {
                return Ok(None);
            };
            match next_window(cursor.next_start, self.until, self.window_length, self.granularity) {
                Some(window) => {
                    let url = self.window_url(&window, cursor.subscriber.as_deref());
                    self.pending = Some(PendingPage { window, first_url: url.clone(), url });
                }
                None => self.position += 1,
            }
        };
        let body = self.fetch(&pending.url)?;
        let name = redact_url(&pending.url);
        let page = parse_page(&body, &name)?;
        let next = self.next_url(&pending, page.next_link.as_deref(), &body)?;
        let Some(cursor) = self.cursors.get_mut(self.position) else {
            return Ok(None);
        };
        let origin = PageOrigin {
            name,
            region: self.region.clone(),
            subscriber: cursor.subscriber.clone(),
            window: Some(pending.window),
            completes_window: next.is_none(),
        };
        if let Some(url) = next {
            self.pending = Some(PendingPage { url, ..pending });
        } else {
            cursor.next_start = pending.window.end;
            self.pending = None;
        }
        Ok(Some(SourcedPage { origin, page }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_endpoints() {
        assert_eq!(
            arm_base("https://adminmanagement.local.azurestack.external", false).unwrap().as_str(),
            "https://adminmanagement.local.azurestack.external/"
        );
        assert_eq!(arm_base("https://arm/prefix", false).unwrap().as_str(), "https://arm/prefix/");
        assert!(arm_base("http://arm", false).is_err());
        assert!(arm_base("http://arm", true).is_ok());
        assert!(arm_base("ftp://arm", true).is_err());
        assert!(arm_base("https://arm/?x=1", false).is_err());
        assert!(arm_base("https://user:pw@arm/", false).is_err());
        assert!(arm_base("arm.local", false).is_err());
    }

    #[test]
    fn continuation_is_appended() {
        let first = Url::parse("https://arm/x?api-version=1").unwrap();
        assert_eq!(
            with_continuation(&first, "a+b=").as_str(),
            "https://arm/x?api-version=1&continuationToken=a%2Bb%3D"
        );
    }
}
