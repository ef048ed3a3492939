//! Resource indicators at the token endpoint (RFC 8707 §2.2): a registered resource becomes
//! the access token's audience (stored, introspected, and `aud` of a JWT access token); an
//! unknown or malformed one is `invalid_target`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{Harness, ISSUER, PresentedForm, TokenForm, query, redirect_params};
use oidc_flow::Scope;
use oidc_flow::resource::AccessTokenVerifier;
use oidc_flow::secret::SecretHash;

const API: &str = "https://api.example.com";

/// A client credentials request for `resource` (RFC 8707).
fn cc_for(resource: &str) -> String {
    TokenForm {
        resource: Some(resource),
        ..TokenForm::grant("client_credentials")
    }
    .encode()
}

#[test]
fn a_registered_resource_is_the_tokens_audience() {
    let mut h = Harness::default_provider();
    let form = cc_for(API);
    let r = h.token(&form, Some(&Harness::basic("service")));
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(h.access_tokens[&SecretHash::of(&token)].audience, [API]);
    // The resource server introspects it and sees itself as the audience.
    let seen = h.introspect(
        &PresentedForm::token(&token).encode(),
        Some(&Harness::basic("api-rs")),
    );
    assert_eq!(seen.json()["aud"], API, "{}", seen.body);
}

#[test]
fn a_jwt_access_token_carries_the_resource_as_aud() {
    let mut h = Harness::default_provider();
    let form = cc_for(API);
    let r = h.token(&form, Some(&Harness::basic("jwt-service")));
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    let api = AccessTokenVerifier::new(ISSUER, &h.provider.jwks(), &[API]).unwrap();
    let v = api.verify(&token, &Scope::default(), h.now).unwrap();
    assert_eq!(v.audience, [API]);
    // Another resource does not take it.
    let other =
        AccessTokenVerifier::new(ISSUER, &h.provider.jwks(), &["https://other.example"]).unwrap();
    assert!(other.verify(&token, &Scope::default(), h.now).is_err());
}

#[test]
fn the_code_exchange_takes_a_resource_too() {
    let mut h = Harness::default_provider();
    let client = common::client_id(oidc_flow::keys::Algorithm::RS256);
    let r = h.authorize_as(
        &query(
            &client,
            "code",
            "&scope=openid&state=s&nonce=n&prompt=consent",
        ),
        "alice",
    );
    let code = redirect_params(&r)["code"].clone();
    let resource = TokenForm {
        resource: Some(API),
        ..TokenForm::default()
    };
    let t = h.exchange(&client, &code, &format!("&{}", resource.encode()));
    assert_eq!(t.status, 200, "{}", t.body);
    let token = t.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(h.access_tokens[&SecretHash::of(&token)].audience, [API]);
}

#[test]
fn unknown_or_malformed_resources_are_invalid_target() {
    let mut h = Harness::default_provider();
    for resource in [
        "https://unknown.example.com",
        "/relative",
        "https://api.example.com#frag",
        "https://api.example.com/",
    ] {
        let form = cc_for(resource);
        let r = h.token(&form, Some(&Harness::basic("service")));
        assert_eq!(r.status, 400, "{resource}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_target", "{resource}");
    }
    assert!(h.access_tokens.is_empty());
}

#[test]
fn a_grant_read_before_its_resource_was_resolved_is_refused() {
    let h = Harness::default_provider();
    let form = cc_for(API);
    let basic = Harness::basic("service");
    let received =
        oidc_flow::token::Received::parse(form.as_bytes(), Some(basic.as_bytes())).unwrap();
    let service = h.clients.get("service").cloned();
    let oidc_flow::token::Authenticated::Client(authenticated) =
        received.authenticate(service, &h.provider, h.now).unwrap()
    else {
        panic!("no assertion");
    };
    assert_eq!(authenticated.requested_resource(), Some(API));
    let err = authenticated.grant().unwrap_err();
    assert_eq!(err.error.code.as_str(), "invalid_target");
}
