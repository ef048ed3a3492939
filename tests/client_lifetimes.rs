//! Per-client token lifetimes (Authlib's `get_jwt_config`: alg, key and lifetime per
//! client): the access token's `expires_in` and record, a JWT access token's and the ID
//! token's `exp`, and the registration's bounds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{Harness, query, redirect_params};
use oidc_flow::secret::SecretHash;
use oidc_flow::{AccessTokenFormat, ClientError};

#[test]
fn a_client_with_its_own_lifetimes_gets_them() {
    let mut h = Harness::default_provider();
    let id = common::client_id(oidc_flow::keys::Algorithm::RS256);
    let client = h.clients.get_mut(&id).unwrap();
    client.access_token_lifetime = Some(900);
    client.id_token_lifetime = Some(300);
    client.access_token_format = AccessTokenFormat::Jwt;
    let r = h.authorize_as(
        &query(&id, "code", "&scope=openid&state=s&nonce=n&prompt=consent"),
        "alice",
    );
    let code = redirect_params(&r)["code"].clone();
    let t = h.exchange(&id, &code, "").json();
    let now = h.now.unix_timestamp();
    assert_eq!(t["expires_in"], 900);
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(common::jwt_payload(access)["exp"], now + 900);
    assert_eq!(
        common::jwt_payload(t["id_token"].as_str().unwrap())["exp"],
        now + 300
    );
    // A JWT access token is not stored; introspection reads its lifetime from it.
    assert!(!h.access_tokens.contains_key(&SecretHash::of(access)));
    let i = h
        .introspect(&format!("token={access}"), Some(&Harness::basic(&id)))
        .json();
    assert_eq!(i["active"], true);
    assert_eq!(i["exp"], now + 900);
    // The implicit flow's token says the same.
    let r = h.authorize_as(
        &query(
            &id,
            "id_token token",
            "&scope=openid&state=s&nonce=n2&prompt=consent",
        ),
        "alice",
    );
    assert_eq!(redirect_params(&r)["expires_in"], "900");
}

#[test]
fn other_clients_keep_the_providers_lifetimes() {
    let mut h = Harness::default_provider();
    let r = h.token(
        "grant_type=client_credentials",
        Some(&Harness::basic("service")),
    );
    assert_eq!(r.json()["expires_in"], 3600);
}

#[test]
fn lifetimes_are_bounded_at_registration() {
    for (access, id) in [(Some(59), None), (None, Some(86_401)), (Some(0), Some(300))] {
        let mut c = common::service_client();
        c.access_token_lifetime = access;
        c.id_token_lifetime = id;
        assert!(
            matches!(c.validate(), Err(ClientError::BadLifetime(_))),
            "{access:?} {id:?}"
        );
    }
    let mut c = common::service_client();
    c.access_token_lifetime = Some(60);
    c.id_token_lifetime = Some(86_400);
    assert!(c.validate().is_ok());
}
