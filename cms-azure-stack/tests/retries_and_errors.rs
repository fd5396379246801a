//! Retries (503, 429, transport failures) with the delays asked of the injected sleeper, token renewal on
//! 401, and the mapping of error answers to `CmsError`.

mod common;

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use cms_azure_stack::UsageApiClient;
use cms_core::CmsError;
use cms_core::source::UsageSource;
use common::{
    CLIENT_SECRET, Login, Reply, Server, at, config, delays, drain, empty_page, metadata, page, record,
    recording_sleep, stamp,
};

const SERVICE_UNAVAILABLE: &str = r#"{"error":{"code":"ServiceUnavailable","message":"The service is busy. Try again later.","details":[]}}"#;

/// A stamp whose usage answers are taken from `replies` in order (the last one repeats).
fn scripted(replies: Vec<Reply>) -> Server {
    let queue = Arc::new(Mutex::new(replies));
    stamp(Login::EntraId, move |_, _| {
        let mut queue = queue.lock().unwrap();
        if queue.len() > 1 { queue.remove(0) } else { queue[0].clone() }
    })
}

fn one_window_client(server: &Server) -> UsageApiClient {
    UsageApiClient::new(config("east", server.base(), &["sub-a"]), at("2025-03-10T01:00:00Z")).unwrap()
}

#[test]
fn busy_503_then_success_honours_retry_after() {
    let server = scripted(vec![
        Reply::json(503, SERVICE_UNAVAILABLE).with_header("Retry-After", "7"),
        Reply::json(503, SERVICE_UNAVAILABLE),
        Reply::json(200, page(&[record("sub-a", "2025-03-10T00:00:00Z", "2.0")], None)),
    ]);
    let (log, sleep) = recording_sleep();
    let mut client = one_window_client(&server).with_sleep(sleep);
    let page = client.next_page().unwrap().unwrap();
    assert_eq!(page.page.records.len(), 1);
    assert!(page.origin.completes_window);
    // Retry-After first, then the backoff of the second attempt (1 s * 2).
    assert_eq!(delays(&log), [7, 2]);
    let usage = server.usage_requests();
    assert_eq!(usage.len(), 3);
    assert!(usage.iter().all(|request| request.raw_url == usage[0].raw_url));
    assert_eq!(server.token_requests().len(), 1, "busy answers do not renew the token");
}

#[test]
fn throttled_429_honours_retry_after_dates_and_the_cap() {
    let server = scripted(vec![
        // An HTTP date, measured against the response's own Date header.
        Reply::json(429, "{}")
            .with_header("Date", "Mon, 10 Mar 2025 13:00:00 GMT")
            .with_header("Retry-After", "Mon, 10 Mar 2025 13:00:30 GMT"),
        // More than max_delay (60 s): capped.
        Reply::json(429, "{}").with_header("Retry-After", "3600"),
        Reply::json(200, empty_page()),
    ]);
    let (log, sleep) = recording_sleep();
    let mut client = one_window_client(&server).with_sleep(sleep);
    assert!(client.next_page().unwrap().is_some());
    assert_eq!(delays(&log), [30, 60]);
    assert_eq!(server.usage_requests().len(), 3);
}

#[test]
fn busy_until_the_last_attempt() {
    // ServiceUnavailable from the API: UsageApi with that code, after max_attempts (4) requests.
    let server = scripted(vec![Reply::json(503, SERVICE_UNAVAILABLE)]);
    let (log, sleep) = recording_sleep();
    let mut client = one_window_client(&server).with_sleep(sleep);
    let error = client.next_page().unwrap_err();
    match &error {
        CmsError::UsageApi { api_code, url, message } => {
            assert_eq!(api_code, "ServiceUnavailable");
            assert!(url.contains("subscriberUsageAggregates"), "{url}");
            assert!(message.contains("after 4 attempts"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(delays(&log), [1, 2, 4]);
    assert_eq!(server.usage_requests().len(), 4);

    // A gateway timeout without an API body: Http with the status.
    let server = scripted(vec![Reply::json(504, "<html>Gateway Timeout</html>")]);
    let (log, sleep) = recording_sleep();
    let mut client = one_window_client(&server).with_sleep(sleep);
    match client.next_page().unwrap_err() {
        CmsError::Http { status, method, message, .. } => {
            assert_eq!(status, Some(504));
            assert_eq!(method, "GET");
            assert!(message.contains("Gateway Timeout") && message.contains("after 4 attempts"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(delays(&log), [1, 2, 4]);
}

#[test]
fn transport_failures_are_retried_then_reported() {
    // A port nobody listens on: connection refused on every attempt.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (log, sleep) = recording_sleep();
    let mut client = UsageApiClient::new(
        config("east", &format!("http://127.0.0.1:{port}"), &["sub-a"]),
        at("2025-03-10T01:00:00Z"),
    )
    .unwrap()
    .with_sleep(sleep);
    match client.next_page().unwrap_err() {
        CmsError::Http { status, url, message, .. } => {
            assert_eq!(status, None);
            assert!(url.contains("/metadata/endpoints"), "{url}");
            assert!(message.contains("after 4 attempts"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(delays(&log), [1, 2, 4]);
}

#[test]
fn expired_token_is_renewed_exactly_once() {
    let server = scripted(vec![
        Reply::json(
            401,
            r#"{"error":{"code":"ExpiredAuthenticationToken","message":"The access token expiry UTC time is earlier than current UTC time."}}"#,
        ),
        Reply::json(200, empty_page()),
    ]);
    let (log, sleep) = recording_sleep();
    // Two one-day windows: the second request is served with the renewed token, no new one.
    let mut client =
        UsageApiClient::new(config("east", server.base(), &["sub-a"]), at("2025-03-11T02:00:00Z"))
            .unwrap()
            .with_sleep(sleep);
    let pages = drain(&mut client).unwrap();
    assert_eq!(pages.len(), 2);
    assert_eq!(server.metadata_requests().len(), 1, "discovery is not repeated");
    assert_eq!(server.token_requests().len(), 2, "one new token");
    let bearers: Vec<Option<String>> = server
        .usage_requests()
        .iter()
        .map(|request| request.header("authorization").map(str::to_owned))
        .collect();
    let bearer = |token: &str| Some(format!("Bearer {token}"));
    assert_eq!(bearers, [bearer("token-1"), bearer("token-2"), bearer("token-2")]);
    assert!(delays(&log).is_empty(), "a renewal is not a busy retry");
}

#[test]
fn token_refused_twice_is_an_auth_error() {
    let server = scripted(vec![Reply::json(401, "{}")]);
    let mut client = one_window_client(&server);
    let error = client.next_page().unwrap_err();
    assert_eq!(error.code(), "auth");
    assert!(error.to_string().contains("/oauth2/token"), "{error}");
    assert!(!error.to_string().contains(CLIENT_SECRET));
    assert_eq!(server.token_requests().len(), 2);
    assert_eq!(server.usage_requests().len(), 2);
}

#[test]
fn identity_provider_refusal_is_an_auth_error_without_the_secret() {
    let server = Server::start(|seen, base| {
        if seen.is_metadata() {
            return Reply::json(200, metadata(base, Login::EntraId));
        }
        // Echo the secret back, as a misbehaving proxy might: it must not reach the message.
        let description = format!("AADSTS7000215: Invalid client secret provided ({CLIENT_SECRET}).");
        Reply::json(
            401,
            serde_json::json!({"error": "invalid_client", "error_description": description}).to_string(),
        )
    });
    let mut client = one_window_client(&server);
    match client.next_page().unwrap_err() {
        CmsError::Auth { authority, message } => {
            assert_eq!(authority, format!("{}/contoso.onmicrosoft.com/oauth2/token", server.base()));
            assert!(message.contains("invalid_client") && message.contains("AADSTS7000215"), "{message}");
            assert!(!message.contains(CLIENT_SECRET), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(server.seen().iter().all(|request| !request.is_usage()));

    // Metadata without an authentication section.
    let server = Server::start(|_, _| Reply::json(200, r#"{"galleryEndpoint":"x"}"#));
    let error = one_window_client(&server).next_page().unwrap_err();
    assert_eq!(error.code(), "auth");
    assert!(error.to_string().contains("loginEndpoint"), "{error}");
}

#[test]
fn documented_400_codes_are_usage_api_errors() {
    let codes = [
        "NoApiVersion",
        "InvalidProperty",
        "RequestEndTimeIsInFuture",
        "SubscriberIdIsNotDirectTenant",
        "SubscriptionIdMissingInRequest",
        "InvalidAggregationGranularity",
    ];
    // The subscriber id picks the code the stamp answers with.
    let server = stamp(Login::EntraId, |seen, _| {
        let code = seen.param("subscriberId").unwrap_or_default();
        let body = serde_json::json!({"error": {
            "code": code,
            "message": format!("{code} happened"),
            "details": [{"code": "Detail", "message": "more", "target": "reportedEndTime"}]
        }});
        Reply::json(400, body.to_string())
    });
    for code in codes {
        let (log, sleep) = recording_sleep();
        let mut client =
            UsageApiClient::new(config("east", server.base(), &[code]), at("2025-03-10T01:00:00Z"))
                .unwrap()
                .with_sleep(sleep);
        match client.next_page().unwrap_err() {
            CmsError::UsageApi { api_code, message, url } => {
                assert_eq!(api_code, code);
                assert_eq!(message, format!("{code} happened; Detail: more"));
                assert!(
                    url.starts_with(server.base()) && url.contains(&format!("subscriberId={code}")),
                    "{url}"
                );
            }
            other => panic!("{code}: unexpected {other:?}"),
        }
        assert!(delays(&log).is_empty(), "{code} is not retried");
    }
    assert_eq!(server.usage_requests().len(), codes.len());
}

#[test]
fn other_statuses_are_http_errors_without_retry() {
    for (status, body, expected) in [
        (
            403,
            r#"{"error":{"code":"AuthorizationFailed","message":"no access"}}"#,
            "AuthorizationFailed: no access",
        ),
        (500, "oops", "oops"),
        (404, "", "(empty body)"),
        // 400 without an API error document.
        (400, "<html>Bad Request</html>", "<html>Bad Request</html>"),
    ] {
        let server = scripted(vec![Reply::json(status, body)]);
        let (log, sleep) = recording_sleep();
        let mut client = one_window_client(&server).with_sleep(sleep);
        match client.next_page().unwrap_err() {
            CmsError::Http { status: got, message, url, .. } => {
                assert_eq!(got, Some(status));
                assert!(message.contains(expected), "{message}");
                assert!(url.contains("subscriberUsageAggregates"), "{url}");
            }
            other => panic!("{status}: unexpected {other:?}"),
        }
        assert!(delays(&log).is_empty());
        assert_eq!(server.usage_requests().len(), 1);
    }
}

#[test]
fn an_oversized_body_is_refused_without_retry() {
    // One byte more than the page parser accepts: the client stops reading there.
    let limit = cms_core::formats::usage_api::MAX_PAGE_BYTES;
    let body = format!("{{\"value\":[]{}}}", " ".repeat(limit - 11));
    assert_eq!(body.len(), limit + 1);
    let server = scripted(vec![Reply::json(200, body)]);
    let (log, sleep) = recording_sleep();
    let mut client = one_window_client(&server).with_sleep(sleep);
    match client.next_page().unwrap_err() {
        CmsError::Http { status, method, url, message } => {
            assert_eq!(status, None, "no response was accepted");
            assert_eq!(method, "GET");
            assert!(url.contains("subscriberUsageAggregates"), "{url}");
            assert!(message.contains("limit"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(delays(&log).is_empty(), "an oversized body is not retried");
    assert_eq!(server.usage_requests().len(), 1);

    // The same page at the limit is read and parsed.
    let body = format!("{{\"value\":[]{}}}", " ".repeat(limit - 12));
    let server = scripted(vec![Reply::json(200, body)]);
    let page = one_window_client(&server).next_page().unwrap().unwrap();
    assert!(page.page.records.is_empty());
}

/// A stamp whose tokens (`token-1`, `token-2`, ...) carry the lifetime fields `lifetime(n)` gives token n, and
/// whose Usage API refuses (401) any bearer but the newest token. Returns the server and the number of 401s.
fn token_stamp(lifetime: impl Fn(u32) -> serde_json::Value + Send + 'static) -> (Server, Arc<Mutex<u32>>) {
    let refused = Arc::new(Mutex::new(0));
    let counter = Arc::clone(&refused);
    let mut issued = 0;
    let server = Server::start(move |seen, base| {
        if seen.is_metadata() {
            return Reply::json(200, metadata(base, Login::EntraId));
        }
        if seen.is_token() {
            issued += 1;
            let mut token = lifetime(issued);
            token["token_type"] = "Bearer".into();
            token["access_token"] = format!("token-{issued}").into();
            return Reply::json(200, token.to_string());
        }
        if seen.header("authorization") != Some(&format!("Bearer token-{issued}")) {
            *counter.lock().unwrap() += 1;
            return Reply::json(
                401,
                r#"{"error":{"code":"ExpiredAuthenticationToken","message":"expired"}}"#,
            );
        }
        Reply::json(200, empty_page())
    });
    (server, refused)
}

/// Three one-day windows of one subscriber: the bearer of each usage request.
fn three_windows(server: &Server) -> Vec<String> {
    let mut client =
        UsageApiClient::new(config("east", server.base(), &["sub-a"]), at("2025-03-12T02:00:00Z")).unwrap();
    assert_eq!(drain(&mut client).unwrap().len(), 3);
    server
        .usage_requests()
        .iter()
        .map(|request| request.header("authorization").unwrap_or_default().to_owned())
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn tokens_are_refreshed_before_they_expire() {
    // `expires_in` 0 (a number or Entra ID's string): every request needs a new token, asked for before the
    // API has to refuse the old one.
    for expires_in in [serde_json::json!(0), serde_json::json!("0")] {
        let (server, refused) = token_stamp(move |_| serde_json::json!({"expires_in": expires_in.clone()}));
        assert_eq!(three_windows(&server), ["Bearer token-1", "Bearer token-2", "Bearer token-3"]);
        assert_eq!(server.token_requests().len(), 3);
        assert_eq!(*refused.lock().unwrap(), 0, "no request went out with an expired token");
    }

    // Without `expires_in`, `expires_on` (Unix seconds) decides: in the past, the token is refreshed at once.
    let (server, refused) = token_stamp(|_| serde_json::json!({"expires_on": (unix_now() - 60).to_string()}));
    assert_eq!(three_windows(&server), ["Bearer token-1", "Bearer token-2", "Bearer token-3"]);
    assert_eq!(*refused.lock().unwrap(), 0);

    // An hour ahead by `expires_on`, or no lifetime at all (five minutes assumed): one token serves all.
    let ahead = move |_| serde_json::json!({"expires_on": unix_now() + 3600});
    let (server, refused) = token_stamp(ahead);
    assert_eq!(three_windows(&server), ["Bearer token-1"; 3]);
    assert_eq!(server.token_requests().len(), 1);
    assert_eq!(*refused.lock().unwrap(), 0);
    let (server, _) = token_stamp(|_| serde_json::json!({}));
    assert_eq!(three_windows(&server), ["Bearer token-1"; 3]);
    assert_eq!(server.token_requests().len(), 1);
}
