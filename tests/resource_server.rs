//! A resource server's local check of JWT access tokens (RFC 9068 §4) with
//! `oidc_flow::resource::AccessTokenVerifier` (jsonwebtoken against the provider's JWKS):
//! what it accepts, and each refusal with its RFC 6750 status.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{Harness, ISSUER};
use oidc_flow::Scope;
use oidc_flow::resource::{AccessTokenVerifier, VerifierError};
use oidc_flow::userinfo::BearerError;

fn verifier(h: &Harness, audiences: &[&str]) -> AccessTokenVerifier {
    AccessTokenVerifier::new(ISSUER, &h.provider.jwks(), audiences).unwrap()
}

fn scope(s: &str) -> Scope {
    Scope::parse(s).unwrap()
}

/// The status and `error` of a refusal, after checking its challenge.
fn refusal(e: BearerError) -> (u16, String) {
    let challenge = e.response.header("www-authenticate").unwrap().to_owned();
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    (e.response.status, e.error.unwrap().code.as_str().to_owned())
}

#[test]
fn a_jwt_access_token_verifies_and_says_who_and_what() {
    let mut h = Harness::default_provider();
    let (access, _) = h.offline_tokens("jwt-rp");
    for audiences in [&[][..], &["jwt-rp"], &["https://api.example.com", "jwt-rp"]] {
        let v = verifier(&h, audiences)
            .verify(&access, &scope("openid"), h.now)
            .unwrap();
        assert_eq!(v.subject, "alice");
        assert_eq!(v.client_id, "jwt-rp");
        assert_eq!(v.scope, scope("openid offline_access"));
        assert_eq!(v.audience, ["jwt-rp"]);
        assert_eq!(v.expires_at, h.now + time::Duration::hours(1));
        assert!(v.auth_time.is_some());
    }
}

#[test]
fn refusals_follow_rfc_6750() {
    let mut h = Harness::default_provider();
    let (access, _) = h.offline_tokens("jwt-rp");
    let any = verifier(&h, &[]);
    let check = |v: &AccessTokenVerifier, token: &str, needed: &str, now| {
        refusal(v.verify(token, &scope(needed), now).unwrap_err())
    };
    let invalid = (401, "invalid_token".to_owned());
    assert_eq!(
        check(&any, &access, "openid profile", h.now),
        (403, "insufficient_scope".to_owned())
    );
    let elsewhere = verifier(&h, &["https://api.example.com"]);
    assert_eq!(
        check(&elsewhere, &access, "", h.now),
        invalid,
        "another audience"
    );
    let later = h.now + time::Duration::hours(1);
    assert_eq!(check(&any, &access, "", later), invalid, "expired");
    let before = h.now - time::Duration::minutes(5);
    assert_eq!(
        check(&any, &access, "", before),
        invalid,
        "issued in the future"
    );
    let other_issuer =
        AccessTokenVerifier::new("https://other.example.com", &h.provider.jwks(), &[]).unwrap();
    assert_eq!(
        check(&other_issuer, &access, "", h.now),
        invalid,
        "another issuer"
    );
    // A tampered payload, an opaque token, and an ID token (typ JWT) are no access tokens
    // of this provider.
    let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
    parts[1] = parts[1].chars().rev().collect();
    assert_eq!(check(&any, &parts.join("."), "", h.now), invalid);
    let client = common::client_id(oidc_flow::keys::Algorithm::RS256);
    let (opaque, _) = h.offline_tokens(&client);
    assert_eq!(check(&any, &opaque, "", h.now), invalid);
    let r = h.authorize_as(
        &common::query(
            &client,
            "id_token",
            "&scope=openid&state=s&nonce=n&prompt=consent",
        ),
        "alice",
    );
    let id_token = common::redirect_params(&r)["id_token"].clone();
    assert_eq!(check(&any, &id_token, "", h.now), invalid, "typ JWT");
}

#[test]
fn a_jwks_without_usable_keys_is_refused() {
    assert!(matches!(
        AccessTokenVerifier::new(ISSUER, &serde_json::json!({"keys": []}), &[]),
        Err(VerifierError::NoUsableKey)
    ));
    assert!(matches!(
        AccessTokenVerifier::new(ISSUER, &serde_json::json!({"kty": "RSA"}), &[]),
        Err(VerifierError::NotAJwks(_))
    ));
}
