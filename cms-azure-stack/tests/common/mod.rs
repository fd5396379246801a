//! A local stand-in for an Azure Stack Hub stamp: a real HTTP server (`tiny_http` on 127.0.0.1:0, in a
//! thread) that records every request it receives and answers metadata discovery, token requests and the
//! Usage API with recorded-shape pages.
// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::TimeDelta;
use cms_azure_stack::{ClientCredentials, RegionConfig, RetryPolicy};
use cms_core::CmsError;
use cms_core::model::time::{Instant, parse_timestamp};
use cms_core::source::{SourcedPage, UsageSource};

pub const PROVIDER_SUBSCRIPTION: &str = "0d6a7e9f-2b4c-4f8e-a1d3-9c5b7e2f6a44";
pub const TENANT: &str = "contoso.onmicrosoft.com";
pub const CLIENT_ID: &str = "5b1d2c3e-0000-4000-8000-00000000c1d1";
pub const CLIENT_SECRET: &str = "s3cr3t-value-never-logged";
pub const AUDIENCE: &str =
    "https://adminmanagement.adfs.azurestack.local/6f1b2c3d-0000-4000-8000-000000000001";
pub const SAMPLE_PAGE: &str = include_str!("../../../tests/data/azure-stack-hub-sample-usage.json");
/// The host the sample page's `nextLink` points at.
pub const SAMPLE_HOST: &str = "https://adminmanagement.local.azurestack.external";
pub const BASE_VM_METER: &str = "FAB6EB84-500B-4A09-A8CA-7358F8BBAEA5";
pub const USAGE_PATH: &str = "/subscriptions/0d6a7e9f-2b4c-4f8e-a1d3-9c5b7e2f6a44/providers/Microsoft.Commerce.Admin/subscriberUsageAggregates";

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query exactly as sent (still percent-encoded).
    pub raw_url: String,
    pub path: String,
    /// Decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    /// The body decoded as `application/x-www-form-urlencoded`.
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.body.as_bytes()).into_owned().collect()
    }

    pub fn is_usage(&self) -> bool {
        self.path == USAGE_PATH
    }

    pub fn is_token(&self) -> bool {
        self.method == "POST" && self.path.ends_with("/oauth2/token")
    }

    pub fn is_metadata(&self) -> bool {
        self.path == "/metadata/endpoints"
    }

    /// `(subscriberId, reportedStartTime, reportedEndTime)` of a usage request.
    pub fn window(&self) -> (Option<String>, String, String) {
        (
            self.param("subscriberId").map(str::to_owned),
            self.param("reportedStartTime").unwrap_or_default().to_owned(),
            self.param("reportedEndTime").unwrap_or_default().to_owned(),
        )
    }
}

/// A response to send.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "application/json; charset=utf-8".into())],
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A running server; stops when dropped.
pub struct Server {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    listener: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serve `handler(request, base_url)` on 127.0.0.1 at a free port.
    pub fn start(mut handler: impl FnMut(&Seen, &str) -> Reply + Send + 'static) -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1:0"));
        let port = server.server_addr().to_ip().expect("an IP listener").port();
        let base = format!("http://127.0.0.1:{port}");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (server, seen, base) = (Arc::clone(&server), Arc::clone(&seen), base.clone());
            std::thread::spawn(move || {
                for mut request in server.incoming_requests() {
                    let mut body = String::new();
                    let _ = request.as_reader().read_to_string(&mut body);
                    let raw_url = request.url().to_owned();
                    let parsed = url::Url::parse(&format!("http://local{raw_url}")).expect("a request URL");
                    let entry = Seen {
                        method: request.method().as_str().to_owned(),
                        path: parsed.path().to_owned(),
                        query: parsed.query_pairs().into_owned().collect(),
                        headers: request
                            .headers()
                            .iter()
                            .map(|header| {
                                (header.field.as_str().to_string(), header.value.as_str().to_owned())
                            })
                            .collect(),
                        raw_url,
                        body,
                    };
                    let reply = handler(&entry, &base);
                    seen.lock().unwrap_or_else(PoisonError::into_inner).push(entry);
                    let mut response =
                        tiny_http::Response::from_string(reply.body).with_status_code(reply.status);
                    for (name, value) in reply.headers {
                        response.add_header(
                            tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
                                .expect("a header"),
                        );
                    }
                    let _ = request.respond(response);
                }
            })
        };
        Self { base, seen, listener: server, thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn usage_requests(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(Seen::is_usage).collect()
    }

    pub fn token_requests(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(Seen::is_token).collect()
    }

    pub fn metadata_requests(&self) -> Vec<Seen> {
        self.seen().into_iter().filter(Seen::is_metadata).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.listener.unblock();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How the stamp's identity provider is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// `loginEndpoint` is `{base}/`: tokens at `{base}/{tenant}/oauth2/token`.
    EntraId,
    /// `loginEndpoint` is `{base}/adfs/`: tokens at `{base}/adfs/oauth2/token`.
    Adfs,
}

/// The metadata document of a stamp whose identity provider lives at `base`.
pub fn metadata(base: &str, login: Login) -> String {
    let login_endpoint = match login {
        Login::EntraId => format!("{base}/"),
        Login::Adfs => format!("{base}/adfs/"),
    };
    serde_json::json!({
        "galleryEndpoint": format!("{base}:30015/"),
        "graphEndpoint": "https://graph.windows.net/",
        "portalEndpoint": format!("{base}/portal/"),
        "authentication": {"loginEndpoint": login_endpoint, "audiences": [AUDIENCE]}
    })
    .to_string()
}

/// A stamp: metadata and tokens (`token-1`, `token-2`, ... valid for an hour) answered here, every other
/// request by `usage`.
pub fn stamp(login: Login, mut usage: impl FnMut(&Seen, &str) -> Reply + Send + 'static) -> Server {
    let mut issued = 0;
    Server::start(move |seen, base| {
        if seen.is_metadata() {
            return Reply::json(200, metadata(base, login));
        }
        if seen.is_token() {
            issued += 1;
            let token = serde_json::json!({
                "token_type": "Bearer",
                "expires_in": "3599",
                "ext_expires_in": "3599",
                "resource": AUDIENCE,
                "access_token": format!("token-{issued}"),
            });
            return Reply::json(200, token.to_string());
        }
        usage(seen, base)
    })
}

/// A stamp whose every window is empty.
pub fn empty_stamp() -> Server {
    stamp(Login::EntraId, |_, _| Reply::json(200, empty_page()))
}

pub fn at(text: &str) -> Instant {
    parse_timestamp(text).expect("a timestamp")
}

/// A region pulling `base` from 2025-03-10T00:00Z, hourly, one-day windows, over plain http, retrying up to
/// 4 attempts with delays of 1 s, 2 s, 4 s (at most 60 s).
pub fn config(region: &str, base: &str, subscribers: &[&str]) -> RegionConfig {
    let credentials = ClientCredentials {
        tenant: TENANT.into(),
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
    };
    let mut config =
        RegionConfig::new(region, base, PROVIDER_SUBSCRIPTION, credentials, at("2025-03-10T00:00:00Z"));
    config.subscribers = subscribers.iter().map(|subscriber| (*subscriber).to_owned()).collect();
    config.window = TimeDelta::days(1);
    config.allow_http = true;
    config.timeout = Duration::from_secs(10);
    config.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(60),
    };
    config
}

/// A sleeper that records the delays asked of it instead of waiting.
pub fn recording_sleep() -> (Arc<Mutex<Vec<Duration>>>, impl FnMut(Duration) + Send + 'static) {
    let delays = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&delays);
    (delays, move |delay| log.lock().unwrap_or_else(PoisonError::into_inner).push(delay))
}

pub fn delays(log: &Arc<Mutex<Vec<Duration>>>) -> Vec<u64> {
    log.lock().unwrap_or_else(PoisonError::into_inner).iter().map(Duration::as_secs).collect()
}

/// Every page of a source.
pub fn drain(source: &mut impl UsageSource) -> Result<Vec<SourcedPage>, CmsError> {
    let mut pages = Vec::new();
    while let Some(page) = source.next_page()? {
        pages.push(page);
    }
    Ok(pages)
}

/// One provider usage aggregate in the documented shape: one hour of `quantity` (a JSON number's text) of
/// the Base VM meter, starting at `usage_start`.
pub fn record(subscription: &str, usage_start: &str, quantity: &str) -> String {
    let start = at(usage_start);
    let end = start + TimeDelta::hours(1);
    let resource = format!(
        "/subscriptions/{subscription}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-01"
    );
    let instance_data = serde_json::json!({"Microsoft.Resources": {
        "resourceUri": resource, "location": "local", "tags": {"env": "test"}, "additionalInfo": null
    }})
    .to_string();
    format!(
        r#"{{"id":"/subscriptions/{subscription}/providers/Microsoft.Commerce.Admin/UsageAggregate/{subscription}-{BASE_VM_METER}","name":"{subscription}-{BASE_VM_METER}","type":"Microsoft.Commerce.Admin/UsageAggregate","properties":{{"subscriptionId":"{subscription}","usageStartTime":"{}","usageEndTime":"{}","instanceData":{},"quantity":{quantity},"meterId":"{BASE_VM_METER}"}}}}"#,
        start.format("%Y-%m-%dT%H:%M:%S+00:00"),
        end.format("%Y-%m-%dT%H:%M:%S+00:00"),
        serde_json::Value::String(instance_data),
    )
}

/// A page of `records` with an optional `nextLink`.
pub fn page(records: &[String], next_link: Option<&str>) -> String {
    let next = next_link.map(|link| format!(r#","nextLink":{}"#, serde_json::Value::String(link.to_owned())));
    format!(r#"{{"value":[{}]{}}}"#, records.join(","), next.unwrap_or_default())
}

pub fn empty_page() -> String {
    page(&[], None)
}
