//! Paths no other test took: the PKCE `plain` method end to end (RFC 7636 §4.2: the
//! verifier is the challenge), and the end of a refresh token's life (RFC 6749 §6: an
//! expired refresh token is `invalid_grant`, and it does not become valid by being used).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use common::{Harness, client_id, query, redirect_params};
use oidc_flow::keys::Algorithm;
use time::Duration;

/// An RFC 7636 Appendix B verifier, sent as its own challenge with `plain`.
const VERIFIER: &str = "dBjftJeZ4CVP-mJ0kWmSTpzT5crmk1bwYfvUPmqgVWg";

fn code_with_plain_challenge(h: &mut Harness, rp: &str, method: &str) -> String {
    let q = query(
        rp,
        "code",
        &format!("&scope=openid&state=s&code_challenge={VERIFIER}{method}"),
    );
    let r = h.authorize_as(&q, "alice");
    let p = redirect_params(&r);
    assert!(!p.contains_key("error"), "{p:?}");
    p["code"].clone()
}

#[test]
fn pkce_plain_succeeds_with_the_challenge_as_verifier() {
    for method in ["&code_challenge_method=plain", ""] {
        // `plain` is the default when the method is left out (RFC 7636 §4.3).
        let mut h = Harness::default_provider();
        let rp = client_id(Algorithm::RS256);
        let code = code_with_plain_challenge(&mut h, &rp, method);
        let r = h.exchange(&rp, &code, &format!("&code_verifier={VERIFIER}"));
        assert_eq!(r.status, 200, "{method}: {}", r.json());
        assert!(r.json()["id_token"].is_string(), "{method}");
    }
}

#[test]
fn pkce_plain_refuses_another_verifier_or_none() {
    for extra in [
        // Another well-formed verifier.
        "&code_verifier=dBjftJeZ4CVP-mJ0kWmSTpzT5crmk1bwYfvUPmqgVWh".to_owned(),
        // The S256 transform of the right one is not the plain value.
        "&code_verifier=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".to_owned(),
        // No verifier at all.
        String::new(),
    ] {
        let mut h = Harness::default_provider();
        let rp = client_id(Algorithm::RS256);
        let code = code_with_plain_challenge(&mut h, &rp, "&code_challenge_method=plain");
        let r = h.exchange(&rp, &code, &extra);
        assert_eq!(r.status, 400, "{extra}: {}", r.json());
        assert_eq!(r.json()["error"], "invalid_grant", "{extra}");
    }
}

#[test]
fn a_refresh_token_works_until_its_lifetime_ends_and_not_after() {
    let lifetime = Duration::days(1);
    let mut h = Harness::new(|b| b.refresh_token_lifetime(lifetime));
    let rp = client_id(Algorithm::RS256);
    let q = query(&rp, "code", "&scope=openid%20offline_access&state=s");
    let code = redirect_params(&h.authorize_as(&q, "alice"))["code"].clone();
    let tokens = h.exchange(&rp, &code, "").json();
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();

    // One second before the end it still rotates; the new token has a full lifetime.
    h.advance(lifetime - Duration::seconds(1));
    let r = refresh(&mut h, &rp, &first);
    assert_eq!(r.status, 200, "{}", r.json());
    let second = r.json()["refresh_token"].as_str().unwrap().to_owned();

    // The new one is valid a whole lifetime from its own issue, then expires.
    h.advance(lifetime - Duration::seconds(1));
    let r = refresh(&mut h, &rp, &second);
    assert_eq!(r.status, 200, "{}", r.json());
    let third = r.json()["refresh_token"].as_str().unwrap().to_owned();
    h.advance(lifetime + Duration::seconds(1));
    let r = refresh(&mut h, &rp, &third);
    assert_eq!(r.status, 400, "{}", r.json());
    assert_eq!(r.json()["error"], "invalid_grant");
    // Trying again changes nothing.
    let r = refresh(&mut h, &rp, &third);
    assert_eq!(r.json()["error"], "invalid_grant");
}

fn refresh(h: &mut Harness, rp: &str, token: &str) -> oidc_flow::JsonResponse {
    let form = format!(
        "grant_type=refresh_token&refresh_token={}",
        url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()
    );
    h.token(&form, Some(&Harness::basic(rp)))
}
