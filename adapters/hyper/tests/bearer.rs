//! `App::bearer`: a hyper service that serves the provider guards its own resources with
//! it (RFC 6750), with the same answers as the Rocket and axum guards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::sync::Arc;

use hyper::{HeaderMap, StatusCode, header};
use oidc_flow::{AccessTokenRecord, Effect, GrantId, MintedSecret, Scope};
use oidc_flow_hyper::App;
use oidc_flow_hyper::setup;
use oidc_flow_store::Store as _;

fn headers(authorization: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(a) = authorization {
        h.insert(header::AUTHORIZATION, a.parse().unwrap());
    }
    h
}

#[tokio::test]
async fn a_hyper_service_guards_its_routes_with_the_apps_bearer_check() {
    let (database, _dir) = common::fresh_database().await;
    let store = Arc::new(
        oidc_flow_store::testing::open_test_store(&database)
            .await
            .unwrap(),
    );
    let provider = setup::provider(&*store, "http://127.0.0.1:9")
        .await
        .unwrap();
    let app = App::new(provider, store.clone());
    let token = MintedSecret::generate(&mut oidc_flow_store::driver::system_rng());
    let now = time::OffsetDateTime::now_utc();
    store
        .apply(&[Effect::StoreAccessToken(AccessTokenRecord {
            hash: token.hash(),
            grant: GrantId::generate(
                &mut oidc_flow_store::driver::system_rng(),
                time::OffsetDateTime::now_utc(),
            ),
            client_id: "backend".into(),
            subject: "alice".into(),
            scope: Scope::parse("api:read").unwrap(),
            audience: vec!["https://api.example".into()],
            issued_at: Some(now),
            expires_at: now + time::Duration::minutes(5),
        })])
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token.as_str());
    let accepted = app
        .bearer(
            &headers(Some(&bearer)),
            "api:read",
            &["https://api.example"],
        )
        .await
        .unwrap();
    assert_eq!(accepted.subject, "alice");
    assert_eq!(accepted.client_id, "backend");
    // A scope the token lacks: 403 insufficient_scope with its challenge.
    let refused = app
        .bearer(&headers(Some(&bearer)), "api:write", &[])
        .await
        .unwrap_err();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let challenge = refused.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    // Another resource's audience: refused as invalid_token.
    let other = app
        .bearer(&headers(Some(&bearer)), "", &["https://other.example"])
        .await
        .unwrap_err();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    // No token: 401 with a bare challenge.
    let none = app.bearer(&headers(None), "", &[]).await.unwrap_err();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert!(none.headers().contains_key(header::WWW_AUTHENTICATE));
}
