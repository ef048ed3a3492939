//! Token introspection (RFC 7662) through the erased flow, with a fixed time and the
//! harness's records: what an active answer holds, who may see which token, and that
//! everything else is `{"active": false}`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{Harness, ISSUER, PresentedForm, TokenForm};
use oidc_flow::keys::Algorithm;
use oidc_flow::secret::SecretHash;
use serde_json::{Value, json};

/// Introspects `token` as `caller` (client_secret_basic) and returns the JSON answer,
/// after checking it is a 200 that must not be cached.
fn ask(h: &mut Harness, caller: &str, token: &str, hint: Option<&str>) -> Value {
    let form = PresentedForm {
        token_type_hint: hint,
        ..PresentedForm::token(token)
    }
    .encode();
    let r = h.introspect(&form, Some(&Harness::basic(caller)));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    r.json()
}

fn inactive() -> Value {
    json!({"active": false})
}

#[test]
fn the_owner_sees_its_access_token_with_every_member() {
    let mut h = Harness::default_provider();
    let client = common::client_id(Algorithm::RS256);
    let (access, _) = h.offline_tokens(&client);
    let answer = ask(&mut h, &client, &access, None);
    let now = h.now.unix_timestamp();
    assert_eq!(
        answer,
        json!({
            "active": true,
            "scope": "openid offline_access",
            "client_id": client,
            "sub": "alice",
            "aud": client,
            "iss": ISSUER,
            "exp": now + 3600,
            "iat": now,
            "token_type": "Bearer",
        })
    );
}

#[test]
fn the_owner_sees_its_refresh_token_until_it_rotates() {
    let mut h = Harness::default_provider();
    let client = common::client_id(Algorithm::ES256);
    let (_, refresh) = h.offline_tokens(&client);
    let answer = ask(&mut h, &client, &refresh, Some("refresh_token"));
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["sub"], "alice");
    assert!(answer.get("token_type").is_none(), "not an access token");
    let rotated = h.token(
        &TokenForm::refresh(&refresh).encode(),
        Some(&Harness::basic(&client)),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(ask(&mut h, &client, &refresh, None), inactive());
}

#[test]
fn a_resource_server_sees_access_tokens_for_it_and_never_refresh_tokens() {
    let mut h = Harness::default_provider();
    let client = common::client_id(Algorithm::RS256);
    let (access, refresh) = h.offline_tokens(&client);
    // No resource was named: every resource server of the provider may take it.
    let answer = ask(&mut h, "api-rs", &access, None);
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["client_id"], client.as_str());
    assert_eq!(ask(&mut h, "api-rs", &refresh, None), inactive());

    // Meant for another resource: not this resource server's business.
    let record = h.access_tokens.get_mut(&SecretHash::of(&access)).unwrap();
    record.audience = vec!["https://other.example.com".to_owned()];
    assert_eq!(ask(&mut h, "api-rs", &access, None), inactive());
    // Meant for it (among others): active, with `aud` as sent.
    let record = h.access_tokens.get_mut(&SecretHash::of(&access)).unwrap();
    record.audience = vec![
        "https://api.example.com".to_owned(),
        "https://other.example.com".to_owned(),
    ];
    let answer = ask(&mut h, "api-rs", &access, None);
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(
        answer["aud"],
        json!(["https://api.example.com", "https://other.example.com"])
    );
}

#[test]
fn another_client_learns_nothing() {
    let mut h = Harness::default_provider();
    let owner = common::client_id(Algorithm::RS256);
    let other = common::client_id(Algorithm::ES256);
    let (access, refresh) = h.offline_tokens(&owner);
    assert_eq!(ask(&mut h, &other, &access, None), inactive());
    assert_eq!(
        ask(&mut h, &other, &refresh, Some("refresh_token")),
        inactive()
    );
}

#[test]
fn expired_revoked_and_unknown_tokens_are_inactive() {
    let mut h = Harness::default_provider();
    let client = common::client_id(Algorithm::RS256);
    assert_eq!(ask(&mut h, &client, "never-issued", None), inactive());
    let (access, refresh) = h.offline_tokens(&client);
    h.advance(time::Duration::hours(1));
    assert_eq!(ask(&mut h, &client, &access, None), inactive(), "expired");
    assert_eq!(ask(&mut h, &client, &refresh, None)["active"], true);
    let revoked = h.token(
        &TokenForm::refresh(&refresh).encode(),
        Some(&Harness::basic(&client)),
    );
    let new_access = revoked.json()["access_token"].as_str().unwrap().to_owned();
    // A replay of the rotated refresh token revokes the family: the new token dies too.
    let replay = h.token(
        &TokenForm::refresh(&refresh).encode(),
        Some(&Harness::basic(&client)),
    );
    assert_eq!(replay.status, 400);
    assert_eq!(
        ask(&mut h, &client, &new_access, None),
        inactive(),
        "revoked"
    );
}

#[test]
fn a_client_credentials_token_names_the_service() {
    let mut h = Harness::default_provider();
    let r = h.token(
        &TokenForm::grant("client_credentials").encode(),
        Some(&Harness::basic("service")),
    );
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    let answer = ask(&mut h, "api-rs", &token, None);
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["sub"], "service");
    assert_eq!(answer["client_id"], "service");
    assert_eq!(answer["scope"], "api:read api:write");
}

#[test]
fn refusals_are_the_token_endpoints_and_public_clients_cannot_introspect() {
    let mut h = Harness::default_provider();
    let client = common::client_id(Algorithm::RS256);
    let (access, _) = h.offline_tokens(&client);
    let wrong = {
        use base64::Engine as _;
        let raw = format!("{client}:wrong");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let r = h.introspect(&PresentedForm::token(&access).encode(), Some(&wrong));
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_client");
    assert!(r.header("www-authenticate").is_some());
    let r = h.introspect(&PresentedForm::token(&access).encode(), None);
    assert_eq!(r.status, 401, "{}", r.body);
    let public = common::public_client().client_id;
    let form = PresentedForm {
        client_id: Some(&public),
        ..PresentedForm::token(&access)
    };
    let r = h.introspect(&form.encode(), None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_client");
    let r = h.introspect(
        "token_type_hint=access_token",
        Some(&Harness::basic(&client)),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_request");
    let long = "x".repeat(5000);
    let r = h.introspect(&format!("token={long}"), Some(&Harness::basic(&client)));
    assert_eq!(r.json()["error"], "invalid_request");
    let r = h.introspect("token=a&token=b", Some(&Harness::basic(&client)));
    assert_eq!(r.json()["error"], "invalid_request", "repeated parameters");
}
