//! Several regions (stamps) chained into one source.

mod common;

use cms_azure_stack::{ClientCredentials, MultiRegionSource, UsageApiClient};
use cms_core::source::{Checkpoint, Granularity, UsageSource};
use common::{
    AUDIENCE, CLIENT_ID, CLIENT_SECRET, Login, Reply, Server, TENANT, at, config, drain, page, record, stamp,
};

/// A stamp whose pages hold one record of a subscription named after the region and the subscriber.
fn region_stamp(region: &'static str) -> Server {
    stamp(Login::EntraId, move |seen, _| {
        let subscriber = seen.param("subscriberId").unwrap_or("all");
        let start = seen.param("reportedStartTime").unwrap_or_default().replace("+00:00", "Z");
        Reply::json(200, page(&[record(&format!("{region}-{subscriber}"), &start, "1")], None))
    })
}

#[test]
fn chains_regions_in_order_and_keeps_checkpoints_apart() {
    let east = region_stamp("east");
    let west = region_stamp("west");
    let until = at("2025-03-12T00:00:00Z");
    // West has an identity of its own: another directory, application and secret.
    let mut west_config = config("west", west.base(), &["sub-a", "sub-b"]);
    west_config.credentials = ClientCredentials {
        tenant: "fabrikam.onmicrosoft.com".into(),
        client_id: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
        client_secret: "west-only-secret".into(),
    };
    let clients = vec![
        UsageApiClient::new(config("east", east.base(), &["sub-a"]), until).unwrap(),
        UsageApiClient::new(west_config, until).unwrap(),
    ];
    // East already has its first day; west starts from scratch (a checkpoint of sub-a in east only).
    let checkpoints = [Checkpoint {
        region: "east".into(),
        subscriber: Some("sub-a".into()),
        granularity: Granularity::Hourly,
        reported_until: at("2025-03-11T00:00:00Z"),
    }];
    let mut source = MultiRegionSource::new(clients).unwrap().with_checkpoints(&checkpoints);
    assert_eq!(source.regions().collect::<Vec<_>>(), ["east", "west"]);

    let pages = drain(&mut source).unwrap();
    let seen: Vec<(String, String, String)> = pages
        .iter()
        .map(|page| {
            (
                page.origin.region.clone(),
                page.page.records[0].subscription.clone(),
                page.origin.window.unwrap().start.format("%d").to_string(),
            )
        })
        .collect();
    let expected = [
        ("east", "east-sub-a", "11"),
        ("west", "west-sub-a", "10"),
        ("west", "west-sub-a", "11"),
        ("west", "west-sub-b", "10"),
        ("west", "west-sub-b", "11"),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned())).collect();
    assert_eq!(seen, expected);

    // Each region was asked only for its own windows, with its own token.
    assert_eq!(east.usage_requests().len(), 1);
    assert_eq!(west.usage_requests().len(), 4);
    assert_eq!(east.token_requests().len(), 1);
    assert_eq!(west.token_requests().len(), 1);
    // Each stamp's identity provider got that region's credentials, and only those.
    let form = |server: &Server| {
        let request = &server.token_requests()[0];
        let mut form = request.form();
        form.sort();
        (request.path.clone(), form)
    };
    let fields = |client_id: &str, secret: &str| {
        let mut fields: Vec<(String, String)> = [
            ("client_id", client_id),
            ("client_secret", secret),
            ("grant_type", "client_credentials"),
            ("resource", AUDIENCE),
        ]
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
        fields.sort();
        fields
    };
    assert_eq!(form(&east), (format!("/{TENANT}/oauth2/token"), fields(CLIENT_ID, CLIENT_SECRET)));
    assert_eq!(
        form(&west),
        (
            "/fabrikam.onmicrosoft.com/oauth2/token".to_owned(),
            fields("7c9e6679-7425-40de-944b-e07fc1f90ae7", "west-only-secret")
        )
    );

    // The checkpoints the pages set are per region and subscriber.
    let mut checkpoints: Vec<(String, Option<String>)> = pages
        .iter()
        .filter_map(|page| Checkpoint::after(&page.origin))
        .map(|checkpoint| (checkpoint.region, checkpoint.subscriber))
        .collect();
    checkpoints.dedup();
    assert_eq!(
        checkpoints,
        [
            ("east".to_owned(), Some("sub-a".to_owned())),
            ("west".to_owned(), Some("sub-a".to_owned())),
            ("west".to_owned(), Some("sub-b".to_owned())),
        ]
    );
    assert!(source.next_page().unwrap().is_none());
}

#[test]
fn a_region_appears_once() {
    let server = region_stamp("east");
    let until = at("2025-03-11T00:00:00Z");
    let clients = vec![
        UsageApiClient::new(config("east", server.base(), &[]), until).unwrap(),
        UsageApiClient::new(config("east", server.base(), &["sub-a"]), until).unwrap(),
    ];
    let error = MultiRegionSource::new(clients).unwrap_err();
    assert_eq!(error.code(), "invalid_value");
    assert!(error.to_string().contains("east"), "{error}");
}
