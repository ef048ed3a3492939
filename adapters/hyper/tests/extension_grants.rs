//! The shipped extension grants (`examples/grants`: the password grant and RFC 8693 token
//! exchange) over real HTTP, with `openidconnect` as the client of the password grant and
//! its verifier of the ID token; token exchange (which `openidconnect` does not speak) as
//! raw forms.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

#[path = "../examples/grants/password.rs"]
mod password;
#[path = "../examples/grants/token_exchange.rs"]
mod token_exchange;

use std::sync::Arc;

use common::{Browser, Registered, rp_http};
use hyper::StatusCode;
use oidc_flow::Provider;
use oidc_flow_hyper::App;
use oidc_flow_hyper::setup::{self, NewClient};
use oidc_flow_store::DatabaseStore;
use oidc_flow_store::grants::TokenGrant as _;
use openidconnect::core::{CoreClient, CoreErrorResponseType, CoreProviderMetadata};
use openidconnect::{
    ClientId, ClientSecret, IssuerUrl, Nonce, OAuth2TokenResponse as _, RefreshToken,
    RequestTokenError, ResourceOwnerPassword, ResourceOwnerUsername, Scope, TokenResponse as _,
};
use password::PasswordGrant;
use token_exchange::{TOKEN_EXCHANGE, TokenExchange};

const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

struct Running {
    issuer: String,
    client: Registered,
    /// The same registration, with JWT access tokens (RFC 9068).
    jwt_client: Registered,
    _dir: Option<tempfile::TempDir>,
    _server: tokio::task::JoinHandle<()>,
}

/// A server declaring both grants, answering them with the examples' handlers, with alice
/// and a client registered for them.
async fn start() -> Running {
    let (database, dir) = common::fresh_database().await;
    let store = Arc::new(
        oidc_flow_store::testing::open_test_store(&database)
            .await
            .unwrap(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let keys = setup::load_or_create_keys(&*store).await.unwrap();
    let provider = Provider::builder(&issuer, keys)
        .extension_grant(PasswordGrant::<DatabaseStore>::GRANT_TYPE)
        .extension_grant(TOKEN_EXCHANGE)
        .build()
        .unwrap();
    let app = App::new(Arc::new(provider), store.clone())
        .with_grant(PasswordGrant::new(store.clone()))
        .unwrap()
        .with_grant(TokenExchange::new(store.clone()))
        .unwrap();
    setup::add_user(
        &*store,
        "alice",
        "wonderland",
        None,
        None,
        Some(r#"{"name":"Alice"}"#),
    )
    .await
    .unwrap();
    let client = Registered::from(
        setup::add_client(
            &*store,
            NewClient {
                grant_types: vec![
                    "password".into(),
                    "refresh_token".into(),
                    TOKEN_EXCHANGE.into(),
                ],
                scope: Some("openid profile offline_access".into()),
                ..NewClient::default()
            },
        )
        .await
        .unwrap(),
    );
    let jwt_client = Registered::from(
        setup::add_client(
            &*store,
            NewClient {
                grant_types: vec!["password".into(), TOKEN_EXCHANGE.into()],
                scope: Some("openid profile".into()),
                access_token_format: oidc_flow::AccessTokenFormat::Jwt,
                ..NewClient::default()
            },
        )
        .await
        .unwrap(),
    );
    let server = tokio::spawn(async move {
        oidc_flow_hyper::serve(listener, Arc::new(app), std::future::pending())
            .await
            .unwrap();
    });
    Running {
        issuer,
        client,
        jwt_client,
        _dir: dir,
        _server: server,
    }
}

#[tokio::test]
async fn the_password_grant_with_openidconnect_as_the_client() {
    let s = start().await;
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(s.issuer.clone()).unwrap(), &rp_http)
            .await
            .unwrap();
    let grants = metadata.grant_types_supported().unwrap();
    assert!(
        grants.iter().any(|g| g.as_ref() == "password"),
        "{grants:?}"
    );
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(s.client.client_id.clone()),
        s.client.client_secret.clone().map(ClientSecret::new),
    );
    let tokens = rp
        .exchange_password(
            &ResourceOwnerUsername::new("alice".into()),
            &ResourceOwnerPassword::new("wonderland".into()),
        )
        .unwrap()
        .add_scope(Scope::new("openid".into()))
        .add_scope(Scope::new("profile".into()))
        .request_async(&rp_http)
        .await
        .unwrap();
    // openidconnect checks the signature against the JWKS, iss, aud and exp; no nonce was
    // sent, and none may come back.
    let claims = tokens
        .id_token()
        .expect("an ID token for openid")
        .claims(&rp.id_token_verifier(), |n: Option<&Nonce>| {
            n.is_none()
                .then_some(())
                .ok_or_else(|| "a nonce".to_owned())
        })
        .unwrap();
    let subject = claims.subject().to_string();
    // The access token works at UserInfo, for alice.
    let info = rp
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async::<openidconnect::EmptyAdditionalClaims, _, openidconnect::core::CoreGenderClaim>(&rp_http)
        .await
        .unwrap();
    assert_eq!(info.subject().as_str(), subject);
    // The refresh token refreshes, as any of the provider's.
    let refresh = tokens
        .refresh_token()
        .expect("a refresh token")
        .secret()
        .clone();
    rp.exchange_refresh_token(&RefreshToken::new(refresh))
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();
    // A wrong password: invalid_grant, nothing issued.
    let wrong = rp
        .exchange_password(
            &ResourceOwnerUsername::new("alice".into()),
            &ResourceOwnerPassword::new("guess".into()),
        )
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap_err();
    match wrong {
        RequestTokenError::ServerResponse(r) => {
            assert_eq!(*r.error(), CoreErrorResponseType::InvalidGrant);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_password_grant_backs_off_an_account_under_guessing() {
    let s = start().await;
    let mut b = Browser::new();
    let basic = s.client.basic();
    let token = format!("{}/token", s.issuer);
    let mut last = String::new();
    for _ in 0..6 {
        let r = b
            .post_form(
                &token,
                &[
                    ("grant_type", "password"),
                    ("username", "alice"),
                    ("password", "guess"),
                ],
                &[("authorization", &basic)],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        last = r.json()["error_description"].as_str().unwrap().to_owned();
    }
    assert!(last.contains("too many failed attempts"), "{last}");
    // Locked: even the right password waits.
    let r = b
        .post_form(
            &token,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wonderland"),
            ],
            &[("authorization", &basic)],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_grant", "{}", r.body);
}

/// An access token for alice (`openid profile`) from the password grant.
async fn alices_access_token(b: &mut Browser, token_endpoint: &str, basic: &str) -> String {
    let first = b
        .post_form(
            token_endpoint,
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wonderland"),
                ("scope", "openid profile"),
            ],
            &[("authorization", basic)],
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    first.json()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn token_exchange_over_http() {
    let s = start().await;
    let mut b = Browser::new();
    let basic = s.client.basic();
    let token = format!("{}/token", s.issuer);
    let subject_token = alices_access_token(&mut b, &token, &basic).await;
    let exchange = |scope: &'static str, subject_token: String| {
        let mut pairs = vec![
            ("grant_type", TOKEN_EXCHANGE.to_owned()),
            ("subject_token", subject_token),
            ("subject_token_type", ACCESS_TOKEN_TYPE.to_owned()),
        ];
        if !scope.is_empty() {
            pairs.push(("scope", scope.to_owned()));
        }
        pairs
    };
    let send = async |b: &mut Browser, pairs: Vec<(&str, String)>| {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b.post_form(&token, &pairs, &[("authorization", &basic)])
            .await
    };
    // No scope: the subject token's, less openid.
    let r = send(&mut b, exchange("", subject_token.clone())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = r.json();
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "profile");
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    // Wider than the subject token: invalid_scope.
    let r = send(&mut b, exchange("offline_access", subject_token.clone())).await;
    assert_eq!(r.json()["error"], "invalid_scope", "{}", r.body);
    // An unknown subject token: invalid_grant.
    let r = send(&mut b, exchange("profile", "nope".into())).await;
    assert_eq!(r.json()["error"], "invalid_grant", "{}", r.body);
    // Delegation is refused with invalid_request.
    let mut pairs = exchange("profile", subject_token.clone());
    pairs.push(("actor_token", "x".into()));
    let r = send(&mut b, pairs).await;
    assert_eq!(r.json()["error"], "invalid_request", "{}", r.body);
    // A missing subject_token: the typed form says so.
    let r = b
        .post_form(
            &token,
            &[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
            ],
            &[("authorization", &basic)],
        )
        .await;
    assert_eq!(r.json()["error"], "invalid_request", "{}", r.body);
    assert!(r.body.contains("subject_token"), "{}", r.body);
}

/// A JWT access token is not stored: the handler finds it through
/// `driver::access_token` (the provider's keys and the grant's revocation), and a
/// revocation of it ends what it can be exchanged for.
#[tokio::test]
async fn token_exchange_of_a_jwt_access_token_until_it_is_revoked() {
    let s = start().await;
    let mut b = Browser::new();
    let basic = s.jwt_client.basic();
    let token = format!("{}/token", s.issuer);
    let subject_token = alices_access_token(&mut b, &token, &basic).await;
    assert_eq!(subject_token.split('.').count(), 3, "a JWT");
    let exchange = [
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", subject_token.as_str()),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
        ("scope", "profile"),
    ];
    let r = b
        .post_form(&token, &exchange, &[("authorization", &basic)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["scope"], "profile");
    let revoked = b
        .post_form(
            &format!("{}/revoke", s.issuer),
            &[("token", subject_token.as_str())],
            &[("authorization", &basic)],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let r = b
        .post_form(&token, &exchange, &[("authorization", &basic)])
        .await;
    assert_eq!(r.json()["error"], "invalid_grant", "{}", r.body);
}

#[tokio::test]
async fn a_grant_the_provider_does_not_declare_is_refused_at_startup() {
    let (database, _dir) = common::fresh_database().await;
    let store = Arc::new(
        oidc_flow_store::testing::open_test_store(&database)
            .await
            .unwrap(),
    );
    let provider = setup::provider(&*store, "http://127.0.0.1:9")
        .await
        .unwrap();
    let refused = App::new(provider, store.clone()).with_grant(PasswordGrant::new(store.clone()));
    let error = refused.err().expect("an undeclared grant");
    assert!(error.to_string().contains("extension_grant"), "{error}");
}
