//! The Usage API client against a real local HTTP server: discovery and tokens, paging, the subscriber and
//! window loop, checkpoints, and bad pages.

mod common;

use std::sync::{Arc, Mutex};

use chrono::TimeDelta;
use cms_azure_stack::UsageApiClient;
use cms_core::error::Position;
use cms_core::source::{Checkpoint, Granularity, UsageSource};
use common::{
    AUDIENCE, CLIENT_ID, CLIENT_SECRET, Login, Reply, SAMPLE_HOST, SAMPLE_PAGE, TENANT, USAGE_PATH, at,
    config, drain, empty_page, empty_stamp, page, record, stamp,
};

#[test]
fn discovers_metadata_then_posts_client_credentials() {
    let server = empty_stamp();
    let client =
        UsageApiClient::new(config("east", server.base(), &["sub-a"]), at("2025-03-12T00:00:00Z")).unwrap();
    let pages = drain(&mut { client }).unwrap();
    assert_eq!(pages.len(), 2, "two one-day windows");

    let seen = server.seen();
    assert!(seen[0].is_metadata(), "discovery comes first: {:?}", seen[0]);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].param("api-version"), Some("2015-01-01"));
    assert_eq!(seen[0].header("authorization"), None, "metadata is anonymous");

    let token = &seen[1];
    assert!(token.is_token());
    assert_eq!(token.path, format!("/{TENANT}/oauth2/token"));
    assert!(token.header("content-type").unwrap().starts_with("application/x-www-form-urlencoded"));
    let form = token.form();
    let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    assert_eq!(field("grant_type"), Some("client_credentials"));
    assert_eq!(field("client_id"), Some(CLIENT_ID));
    assert_eq!(field("client_secret"), Some(CLIENT_SECRET));
    assert_eq!(field("resource"), Some(AUDIENCE));
    assert_eq!(form.len(), 4);

    // One discovery and one token serve every request; each usage request carries the token.
    assert_eq!(server.metadata_requests().len(), 1);
    assert_eq!(server.token_requests().len(), 1);
    let usage = server.usage_requests();
    assert_eq!(usage.len(), 2);
    assert!(usage.iter().all(|request| request.header("authorization") == Some("Bearer token-1")));
    assert!(usage.iter().all(|request| request.method == "GET"));
}

#[test]
fn adfs_login_endpoint_has_no_tenant_segment() {
    let server = stamp(Login::Adfs, |_, _| Reply::json(200, empty_page()));
    let mut client =
        UsageApiClient::new(config("east", server.base(), &["sub-a"]), at("2025-03-10T01:00:00Z")).unwrap();
    assert_eq!(drain(&mut client).unwrap().len(), 1);
    let tokens = server.token_requests();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].path, "/adfs/oauth2/token");
    assert!(tokens[0].form().contains(&("resource".to_owned(), AUDIENCE.to_owned())));
}

#[test]
fn follows_next_links_and_marks_the_last_page_of_a_window() {
    // Page 1 is the recorded sample (20 records); its nextLink points at this server.
    const SAMPLE_TOKEN: &str = "c3ludGhldGljLXBhZ2UtMi1tYXJrZXI=";
    let server = stamp(Login::EntraId, |seen, base| {
        let body = match seen.param("continuationToken") {
            None => SAMPLE_PAGE.replace(SAMPLE_HOST, base),
            Some(SAMPLE_TOKEN) => {
                // The sample's own link shape, with the next token.
                let sample: serde_json::Value = serde_json::from_str(SAMPLE_PAGE).unwrap();
                let next = sample["nextLink"].as_str().unwrap().replace(SAMPLE_HOST, base);
                let next = next.replace("c3ludGhldGljLXBhZ2UtMi1tYXJrZXI%3d", "page-3");
                let records = [
                    record("sub-x", "2025-03-10T12:00:00Z", "1.5"),
                    record("sub-y", "2025-03-10T13:00:00Z", "2"),
                ];
                page(&records, Some(&next))
            }
            Some("page-3") => page(&[record("sub-z", "2025-03-10T13:00:00Z", "0.25")], None),
            Some(other) => panic!("unexpected token {other}"),
        };
        Reply::json(200, body)
    });
    let mut settings = config("local", server.base(), &[]);
    settings.initial_start = at("2025-03-10T13:00:00Z");
    let mut client = UsageApiClient::new(settings, at("2025-03-10T14:00:00Z")).unwrap();
    let pages = drain(&mut client).unwrap();

    let counts: Vec<usize> = pages.iter().map(|page| page.page.records.len()).collect();
    assert_eq!(counts, [20, 2, 1]);
    let completes: Vec<bool> = pages.iter().map(|page| page.origin.completes_window).collect();
    assert_eq!(completes, [false, false, true]);
    let window = pages[0].origin.window.unwrap();
    assert_eq!((window.start, window.end), (at("2025-03-10T13:00:00Z"), at("2025-03-10T14:00:00Z")));
    assert!(pages.iter().all(|page| page.origin.window == Some(window) && page.origin.region == "local"));

    let usage = server.usage_requests();
    assert_eq!(usage.len(), 3);
    assert_eq!(usage[0].param("continuationToken"), None);
    assert_eq!(usage[1].param("continuationToken"), Some(SAMPLE_TOKEN), "the sample's nextLink, as given");
    assert_eq!(usage[2].param("continuationToken"), Some("page-3"));
    // Each page is named by the URL it was read from.
    for (page, request) in pages.iter().zip(&usage) {
        assert_eq!(page.origin.name, format!("{}{}", server.base(), request.raw_url));
    }
    // The last page completes the window: its checkpoint is the window's end.
    let checkpoint = Checkpoint::after(&pages[2].origin).unwrap();
    assert_eq!(checkpoint.reported_until, at("2025-03-10T14:00:00Z"));
    assert_eq!(checkpoint.subscriber, None);
    assert_eq!(Checkpoint::after(&pages[0].origin), None);
}

#[test]
fn loops_subscribers_and_windows_on_hour_boundaries() {
    let server = empty_stamp();
    let mut client =
        UsageApiClient::new(config("east", server.base(), &["sub-a", "sub-b"]), at("2025-03-12T05:30:00Z"))
            .unwrap();
    let pages = drain(&mut client).unwrap();

    let expected_windows = [
        ("2025-03-10T00:00:00+00:00", "2025-03-11T00:00:00+00:00"),
        ("2025-03-11T00:00:00+00:00", "2025-03-12T00:00:00+00:00"),
        ("2025-03-12T00:00:00+00:00", "2025-03-12T05:00:00+00:00"),
    ];
    let mut expected = Vec::new();
    for subscriber in ["sub-a", "sub-b"] {
        for (start, end) in expected_windows {
            expected.push((Some(subscriber.to_owned()), start.to_owned(), end.to_owned()));
        }
    }
    let usage = server.usage_requests();
    let asked: Vec<_> = usage.iter().map(common::Seen::window).collect();
    assert_eq!(asked, expected);
    for request in &usage {
        assert_eq!(request.param("aggregationGranularity"), Some("Hourly"));
        assert_eq!(request.param("api-version"), Some("2015-06-01-preview"));
        assert_eq!(request.header("authorization"), Some("Bearer token-1"));
        // Times are escaped ISO 8601, as the docs ask (`:` and `+` percent-encoded).
        assert!(request.raw_url.contains("reportedStartTime=2025-03-1"), "{}", request.raw_url);
        assert!(request.raw_url.contains("%3A00%3A00%2B00%3A00"), "{}", request.raw_url);
    }

    // Every window yields one (empty) page that completes it.
    assert_eq!(pages.len(), 6);
    for (page, (subscriber, start, end)) in pages.iter().zip(&expected) {
        assert!(page.page.records.is_empty());
        assert!(page.origin.completes_window);
        assert_eq!(page.origin.subscriber, *subscriber);
        let window = page.origin.window.unwrap();
        assert_eq!(window.start, at(start));
        assert_eq!(window.end, at(end));
        assert_eq!(window.granularity, Granularity::Hourly);
    }
    let last = Checkpoint::after(&pages[5].origin).unwrap();
    assert_eq!(
        last,
        Checkpoint {
            region: "east".into(),
            subscriber: Some("sub-b".into()),
            granularity: Granularity::Hourly,
            reported_until: at("2025-03-12T05:00:00Z"),
        }
    );
    assert_eq!(
        client.next_starts(),
        [
            (Some("sub-a".to_owned()), at("2025-03-12T05:00:00Z")),
            (Some("sub-b".to_owned()), at("2025-03-12T05:00:00Z"))
        ]
    );
}

#[test]
fn whole_stamp_queries_without_subscriber_id() {
    let server = empty_stamp();
    let mut client =
        UsageApiClient::new(config("east", server.base(), &[]), at("2025-03-11T00:00:00Z")).unwrap();
    let pages = drain(&mut client).unwrap();
    assert_eq!(pages.len(), 1);
    assert_eq!(pages[0].origin.subscriber, None);
    let usage = server.usage_requests();
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0].param("subscriberId"), None);
    assert!(!usage[0].raw_url.contains("subscriberId"));
}

#[test]
fn window_end_never_passes_until() {
    let server = empty_stamp();
    let until = at("2025-03-10T05:59:59Z");
    let mut settings = config("east", server.base(), &["sub-a"]);
    settings.window = TimeDelta::hours(2);
    let mut client = UsageApiClient::new(settings, until).unwrap();
    assert_eq!(client.until(), at("2025-03-10T05:00:00Z"), "rounded down to the hour");
    drain(&mut client).unwrap();
    let ends: Vec<String> = server.usage_requests().iter().map(|request| request.window().2).collect();
    assert_eq!(ends, ["2025-03-10T02:00:00+00:00", "2025-03-10T04:00:00+00:00", "2025-03-10T05:00:00+00:00"]);

    // Nothing to read yet: no request at all, not even discovery.
    let idle = empty_stamp();
    let mut client =
        UsageApiClient::new(config("east", idle.base(), &["sub-a"]), at("2025-03-10T00:59:00Z")).unwrap();
    assert!(client.next_page().unwrap().is_none());
    assert!(idle.seen().is_empty());
}

#[test]
fn daily_granularity_uses_utc_midnights() {
    let server = empty_stamp();
    let mut settings = config("east", server.base(), &["sub-a"]);
    settings.granularity = Granularity::Daily;
    settings.initial_start = at("2025-03-10T15:00:00Z");
    let mut client = UsageApiClient::new(settings.clone(), at("2025-03-13T18:00:00Z")).unwrap();
    assert_eq!(client.until(), at("2025-03-13T00:00:00Z"));
    let pages = drain(&mut client).unwrap();
    let usage = server.usage_requests();
    let asked: Vec<(String, String)> =
        usage.iter().map(|request| (request.window().1, request.window().2)).collect();
    assert_eq!(
        asked,
        [
            ("2025-03-10T00:00:00+00:00".to_owned(), "2025-03-11T00:00:00+00:00".to_owned()),
            ("2025-03-11T00:00:00+00:00".to_owned(), "2025-03-12T00:00:00+00:00".to_owned()),
            ("2025-03-12T00:00:00+00:00".to_owned(), "2025-03-13T00:00:00+00:00".to_owned()),
        ]
    );
    assert!(usage.iter().all(|request| request.param("aggregationGranularity") == Some("Daily")));
    assert!(pages.iter().all(|page| page.origin.window.unwrap().granularity == Granularity::Daily));

    // A daily window must be whole days.
    settings.window = TimeDelta::hours(12);
    let error = UsageApiClient::new(settings, at("2025-03-13T00:00:00Z")).unwrap_err();
    assert_eq!(error.code(), "invalid_value");
    assert!(error.to_string().contains("window"), "{error}");
}

#[test]
fn resumes_from_checkpoints() {
    let server = empty_stamp();
    let checkpoint = |region: &str, subscriber: &str, granularity, until: &str| Checkpoint {
        region: region.into(),
        subscriber: Some(subscriber.into()),
        granularity,
        reported_until: at(until),
    };
    let checkpoints = [
        checkpoint("east", "SUB-A", Granularity::Hourly, "2025-03-11T00:00:00Z"),
        // Another region's, and another granularity's, checkpoints do not apply.
        checkpoint("west", "sub-b", Granularity::Hourly, "2025-03-11T06:00:00Z"),
        checkpoint("east", "sub-b", Granularity::Daily, "2025-03-11T00:00:00Z"),
        // The latest of several wins.
        checkpoint("east", "sub-c", Granularity::Hourly, "2025-03-10T05:00:00Z"),
        checkpoint("east", "sub-c", Granularity::Hourly, "2025-03-11T10:00:00Z"),
    ];
    let mut client = UsageApiClient::new(
        config("east", server.base(), &["sub-a", "sub-b", "sub-c"]),
        at("2025-03-11T12:00:00Z"),
    )
    .unwrap()
    .with_checkpoints(&checkpoints);
    assert_eq!(
        client.next_starts(),
        [
            (Some("sub-a".to_owned()), at("2025-03-11T00:00:00Z")),
            (Some("sub-b".to_owned()), at("2025-03-10T00:00:00Z")),
            (Some("sub-c".to_owned()), at("2025-03-11T10:00:00Z")),
        ]
    );
    drain(&mut client).unwrap();
    let asked: Vec<_> = server.usage_requests().iter().map(common::Seen::window).collect();
    let window = |subscriber: &str, start: &str, end: &str| {
        (
            Some(subscriber.to_owned()),
            format!("2025-03-{start}:00:00+00:00"),
            format!("2025-03-{end}:00:00+00:00"),
        )
    };
    assert_eq!(
        asked,
        [
            window("sub-a", "11T00", "11T12"),
            window("sub-b", "10T00", "11T00"),
            window("sub-b", "11T00", "11T12"),
            window("sub-c", "11T10", "11T12"),
        ]
    );
}

#[test]
fn a_bad_page_names_the_request_and_nothing_moves() {
    let truncated = SAMPLE_PAGE[..SAMPLE_PAGE.len() / 2].to_owned();
    let negative = page(
        &[record("sub-a", "2025-03-10T00:00:00Z", "1"), record("sub-a", "2025-03-10T01:00:00Z", "-2")],
        None,
    );
    let replies = Arc::new(Mutex::new(vec![
        truncated,
        negative,
        page(&[record("sub-a", "2025-03-10T00:00:00Z", "1")], None),
    ]));
    let queue = Arc::clone(&replies);
    let server = stamp(Login::EntraId, move |_, _| Reply::json(200, queue.lock().unwrap().remove(0)));
    let mut client =
        UsageApiClient::new(config("east", server.base(), &["sub-a"]), at("2025-03-10T02:00:00Z")).unwrap();

    let error = client.next_page().unwrap_err();
    let request_url = format!("{}{}", server.base(), server.usage_requests()[0].raw_url);
    assert_eq!(error.code(), "bad_json");
    match &error {
        cms_core::CmsError::BadJson { at, .. } => {
            assert_eq!(at.source, request_url);
            assert_eq!(at.position, Position::Whole);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(request_url.contains("subscriberUsageAggregates") && request_url.contains("subscriberId=sub-a"));

    // The same request again: a bad record is named by URL and record index.
    let error = client.next_page().unwrap_err();
    assert_eq!(error.code(), "negative_quantity");
    assert!(error.to_string().starts_with(&format!("{request_url} record 1")), "{error}");

    // And once the stamp serves a good page, the pull goes on where it stood.
    let page = client.next_page().unwrap().unwrap();
    assert_eq!(page.page.records.len(), 1);
    let usage = server.usage_requests();
    assert_eq!(usage.len(), 3);
    assert!(usage.iter().all(|request| request.raw_url == usage[0].raw_url));
    assert!(client.next_page().unwrap().is_none());
}

#[test]
fn continuation_tokens_without_a_link() {
    let server = stamp(Login::EntraId, |seen, _| {
        let body = match seen.param("continuationToken") {
            // A token in the body instead of a nextLink.
            None => r#"{"value":[],"continuationToken":"tok 1"}"#.to_owned(),
            // A bare token as nextLink.
            Some("tok 1") => page(&[], Some("tok2")),
            // A link relative to the host.
            Some("tok2") => {
                let query = seen.raw_url.split_once('?').map(|(_, query)| query).unwrap_or_default();
                let query = query.replace("continuationToken=tok2", "continuationToken=rel");
                page(&[], Some(&format!("{USAGE_PATH}?{query}")))
            }
            Some(_) => empty_page(),
        };
        Reply::json(200, body)
    });
    let mut client =
        UsageApiClient::new(config("east", server.base(), &["sub-a"]), at("2025-03-10T01:00:00Z")).unwrap();
    let pages = drain(&mut client).unwrap();
    assert_eq!(
        pages.iter().map(|page| page.origin.completes_window).collect::<Vec<_>>(),
        [false, false, false, true]
    );
    let usage = server.usage_requests();
    let tokens: Vec<Option<&str>> = usage.iter().map(|request| request.param("continuationToken")).collect();
    assert_eq!(tokens, [None, Some("tok 1"), Some("tok2"), Some("rel")]);
    // The token goes on the window's first query (or the relative link's), which keeps every other parameter.
    for request in &usage[1..] {
        assert_eq!(request.window(), usage[0].window());
        assert_eq!(request.param("api-version"), Some("2015-06-01-preview"));
    }
}

#[test]
fn next_link_to_another_host_is_refused() {
    let server = stamp(Login::EntraId, |_, _| {
        Reply::json(200, page(&[], Some("https://collector.example.net/steal?continuationToken=1")))
    });
    let mut client =
        UsageApiClient::new(config("east", server.base(), &["sub-a"]), at("2025-03-10T01:00:00Z")).unwrap();
    let error = client.next_page().unwrap_err();
    assert_eq!(error.code(), "http");
    assert!(error.to_string().contains("collector.example.net"), "{error}");
    assert!(error.to_string().contains("leaves the ARM endpoint"), "{error}");
    assert_eq!(server.usage_requests().len(), 1);
}
