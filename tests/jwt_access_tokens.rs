//! JWT access tokens (RFC 9068), chosen per client, checked by an independent verifier
//! (jsonwebtoken against the provider's JWKS): the header, every claim, and that
//! revocation still reaches them through introspection and UserInfo.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{Harness, ISSUER, PresentedForm, TokenForm, query, redirect_params};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

/// Verifies `token` as a resource server would: `typ: at+jwt`, the signature against the
/// provider's JWKS, `iss` and `aud`; `exp` against the harness's clock (jsonwebtoken's own
/// check reads the system clock, so it is off and done here). Returns the claims.
fn verify(h: &Harness, token: &str, audience: &str) -> Value {
    let header = decode_header(token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1");
    let jwks: JwkSet = serde_json::from_value(h.provider.jwks()).unwrap();
    let jwk = jwks.find(header.kid.as_deref().unwrap()).unwrap();
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims = decode::<Value>(token, &key, &validation).unwrap().claims;
    let now = h.now.unix_timestamp();
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + 3600);
    claims
}

#[test]
fn the_code_flow_gives_a_jwt_access_token_with_every_rfc_9068_claim() {
    let mut h = Harness::default_provider();
    let (access, refresh) = h.offline_tokens("jwt-rp");
    let claims = verify(&h, &access, "jwt-rp");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "jwt-rp");
    assert_eq!(claims["scope"], "openid offline_access");
    assert!(
        claims["auth_time"].is_i64(),
        "the end-user's authentication time"
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    // It works at UserInfo, as any access token of the provider.
    let ui = h.userinfo(Some(&format!("Bearer {access}")), None);
    assert_eq!(ui.status, 200, "{}", ui.body);
    // A refresh gives another JWT with another jti.
    let again = h.token(
        &TokenForm::refresh(&refresh).encode(),
        Some(&Harness::basic("jwt-rp")),
    );
    let next = again.json()["access_token"].as_str().unwrap().to_owned();
    let next_claims = verify(&h, &next, "jwt-rp");
    assert_ne!(next_claims["jti"], claims["jti"]);
}

#[test]
fn the_client_credentials_grant_gives_a_jwt_whose_subject_is_the_client() {
    let mut h = Harness::default_provider();
    let r = h.client_credentials("jwt-service", "api:read");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["token_type"], "Bearer");
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    let claims = verify(&h, &token, "jwt-service");
    assert_eq!(claims["sub"], "jwt-service");
    assert_eq!(claims["client_id"], "jwt-service");
    assert_eq!(claims["scope"], "api:read");
    assert!(
        claims.get("auth_time").is_none(),
        "no end-user authenticated"
    );
}

#[test]
fn a_revoked_jwt_is_inactive_at_introspection_and_refused_at_userinfo() {
    let mut h = Harness::default_provider();
    let (access, _) = h.offline_tokens("jwt-rp");
    let form = PresentedForm::token(&access).encode();
    let basic = Harness::basic("jwt-rp");
    let seen = h.introspect(&form, Some(&basic));
    assert_eq!(seen.json()["active"], true, "{}", seen.body);
    assert_eq!(seen.json()["sub"], "alice");
    // Revoke it (RFC 7009): its grant is revoked, which is all a JWT access token (not
    // stored) is checked against.
    let effects = {
        use oidc_flow::flow::{RevocationAnswer, RevocationFlow, RevocationNeed, RevocationStep};
        let mut step = RevocationFlow::parse(form.as_bytes(), Some(basic.as_bytes()));
        loop {
            let flow = match step {
                RevocationStep::Done(done) => break done.effects,
                RevocationStep::Need(flow) => flow,
            };
            let answer = match flow.need() {
                RevocationNeed::Client { client_id } => {
                    RevocationAnswer::Client(h.clients.get(client_id).cloned())
                }
                RevocationNeed::RefreshToken(_) => RevocationAnswer::RefreshToken(None),
                RevocationNeed::AccessToken(_) => {
                    panic!("a JWT access token is not stored: nothing to look up by hash")
                }
                RevocationNeed::GrantRevoked(grant) => {
                    RevocationAnswer::GrantRevoked(h.revoked.contains(grant))
                }
                other => panic!("unknown need {other:?}"),
            };
            step = flow.resume(answer, &h.provider, h.now).unwrap();
        }
    };
    assert_eq!(effects.len(), 1, "the grant is revoked");
    h.apply(effects);
    assert_eq!(
        h.introspect(&form, Some(&basic)).json(),
        serde_json::json!({"active": false})
    );
    let ui = h.userinfo(Some(&format!("Bearer {access}")), None);
    assert_eq!(ui.status, 401);
    // The signature itself still verifies: a resource server that checks JWTs locally
    // accepts it until `exp` (RFC 9068 §4); one that must honour revocation introspects.
    verify(&h, &access, "jwt-rp");
}

#[test]
fn the_implicit_flow_carries_a_jwt_and_the_at_hash_covers_it() {
    let mut h = Harness::default_provider();
    let q = query(
        "jwt-rp",
        "id_token token",
        "&scope=openid&state=s&nonce=n&prompt=consent",
    );
    let r = h.authorize_as(&q, "alice");
    let p = redirect_params(&r);
    let access = &p["access_token"];
    verify(&h, access, "jwt-rp");
    let id_token = &p["id_token"];
    let payload = id_token.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    let alg = oidc_flow::keys::Algorithm::ES256;
    assert_eq!(claims["at_hash"], alg.half_hash(access).as_str());
}

#[test]
fn opaque_stays_the_default() {
    let mut h = Harness::default_provider();
    let client = common::client_id(oidc_flow::keys::Algorithm::RS256);
    let (access, _) = h.offline_tokens(&client);
    assert!(!access.contains('.'), "an opaque token is no JWT: {access}");
    assert_eq!(access.len(), oidc_flow::secret::TIME_KEYED_LEN);
}

#[test]
fn a_jwt_access_token_is_not_stored_and_only_the_providers_own_are_taken() {
    let mut h = Harness::default_provider();
    let r = h.client_credentials("jwt-service", "api:read");
    assert_eq!(r.status, 200, "{}", r.body);
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    // Issuing it wrote nothing: the token carries its record.
    assert!(h.access_tokens.is_empty(), "a JWT access token was stored");
    let basic = Harness::basic("jwt-service");
    let seen = h
        .introspect(&PresentedForm::token(&token).encode(), Some(&basic))
        .json();
    assert_eq!(seen["active"], true);
    assert_eq!(seen["client_id"], "jwt-service");
    assert_eq!(seen["scope"], "api:read");
    assert_eq!(seen["exp"], h.now.unix_timestamp() + 3600);
    // An edited payload does not verify, so it is nobody's token.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut payload = common::jwt_payload(&token);
    payload["scope"] = "api:read api:write".into();
    parts[1] = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&payload).unwrap(),
    );
    let forged = parts.join(".");
    let seen = h.introspect(&PresentedForm::token(&forged).encode(), Some(&basic));
    assert_eq!(seen.body, r#"{"active":false}"#);
    // An ID token is signed by the same keys but is no access token: it names no grant.
    let (_, _) = h.offline_tokens("jwt-rp");
    let r = h.authorize_as(
        &query(
            "jwt-rp",
            "code",
            "&scope=openid&state=s&nonce=n3&prompt=consent",
        ),
        "alice",
    );
    let code = redirect_params(&r)["code"].clone();
    let t = h.exchange("jwt-rp", &code, "").json();
    let id_token = t["id_token"].as_str().unwrap();
    let seen = h.introspect(
        &PresentedForm::token(id_token).encode(),
        Some(&Harness::basic("jwt-rp")),
    );
    assert_eq!(seen.body, r#"{"active":false}"#);
    let ui = h.userinfo(Some(&format!("Bearer {id_token}")), None);
    assert_eq!(ui.status, 401, "{}", ui.body);
    // After its lifetime it is inactive, though nothing was ever stored to expire.
    h.advance(time::Duration::seconds(3601));
    let seen = h.introspect(&PresentedForm::token(&token).encode(), Some(&basic));
    assert_eq!(seen.body, r#"{"active":false}"#);
}

#[test]
fn long_jwt_access_tokens_are_read_at_userinfo_and_introspection() {
    // An RSA-4096 signature alone is 683 characters: JWT access tokens pass 1 KiB.
    let mut h = Harness::default_provider();
    let long = format!("eyJ{}", "a".repeat(3000));
    let ui = h.userinfo(Some(&format!("Bearer {long}")), None);
    assert_eq!(ui.status, 401, "{}", ui.body);
    assert!(
        ui.headers
            .iter()
            .any(|(k, v)| *k == "www-authenticate" && v.contains("invalid_token")),
        "unknown, not malformed: {:?}",
        ui.headers
    );
    let seen = h.introspect(
        &PresentedForm::token(&long).encode(),
        Some(&Harness::basic("jwt-rp")),
    );
    assert_eq!(seen.body, r#"{"active":false}"#);
    // Beyond the limit it is malformed.
    let too_long = "a".repeat(oidc_flow::userinfo::MAX_TOKEN_BYTES + 1);
    let ui = h.userinfo(Some(&format!("Bearer {too_long}")), None);
    assert_eq!(ui.status, 400, "{}", ui.body);
}
