//! A quick check that the shared harness drives a code flow end to end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;
use common::*;
use oidc_flow::keys::Algorithm;

#[test]
fn harness_runs_a_code_flow() {
    let mut h = Harness::default_provider();
    let id = client_id(Algorithm::RS256);
    let r = h.authorize_as(
        &query(&id, "code", "&scope=openid+email&state=s1&nonce=n1"),
        "alice",
    );
    let p = redirect_params(&r);
    assert_eq!(p["state"], "s1");
    assert_eq!(p["iss"], ISSUER);
    let resp = h.exchange(&id, &p["code"], "");
    assert_eq!(resp.status, 200, "{}", resp.body);
    let at = resp.json()["access_token"].as_str().unwrap().to_owned();
    let ui = h.userinfo(Some(&format!("Bearer {at}")), None);
    assert_eq!(ui.status, 200);
    assert_eq!(ui.json()["email"], "alice@example.com");
    assert!(ui.json().get("name").is_none());
}
