//! `ProviderBuilder::claims_in_id_token`: the ID tokens of the token endpoint (code and
//! refresh) carry the claims the scope releases, as Authlib's code flow does; off by
//! default. Checked through the erased flow, which asks for the claims only then.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{Harness, query, redirect_params};
use oidc_flow::flow::{TokenAnswer, TokenFlow, TokenNeed, TokenStep};
use serde_json::Value;

/// Redeems a code of `client` for `scope` through the erased flow; the ID token's claims
/// and the needs the flow asked for.
fn code_flow(h: &mut Harness, scope: &str) -> (Value, Vec<&'static str>) {
    let client = common::client_id(oidc_flow::keys::Algorithm::RS256);
    let extra = format!("&scope={scope}&state=s&nonce=n&prompt=consent");
    let r = h.authorize_as(&query(&client, "code", &extra), "alice");
    let code = redirect_params(&r)["code"].clone();
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}",
        common::REDIRECT_ENC
    );
    let basic = Harness::basic(&client);
    let mut asked = Vec::new();
    let mut step = TokenFlow::parse(form.as_bytes(), Some(basic.as_bytes()));
    let done = loop {
        let flow = match step {
            TokenStep::Done(done) => break done,
            TokenStep::Need(flow) => flow,
        };
        let answer = match flow.need() {
            TokenNeed::Client { client_id } => {
                asked.push("client");
                TokenAnswer::Client(h.clients.get(client_id).cloned())
            }
            TokenNeed::TakeCode(hash) => {
                asked.push("code");
                let hash = *hash;
                TokenAnswer::Code(h.take_code(&hash))
            }
            TokenNeed::Claims { subject, .. } => {
                asked.push("claims");
                TokenAnswer::Claims(h.users.get(subject).cloned().unwrap_or_default())
            }
            other => panic!("unexpected need {other:?}"),
        };
        step = flow.resume(answer, &h.provider, &mut h.rng, h.now).unwrap();
    };
    h.apply(done.effects);
    let body = done.response.json();
    (
        common::jwt_payload(body["id_token"].as_str().unwrap()),
        asked,
    )
}

#[test]
fn with_the_option_the_id_token_carries_the_scopes_claims() {
    let mut h = Harness::new(|b| b.claims_in_id_token(true));
    let (claims, asked) = code_flow(&mut h, "openid%20profile%20email");
    assert_eq!(asked, ["client", "code", "claims"]);
    assert_eq!(claims["name"], "Alice Liddell");
    assert_eq!(claims["email"], "alice@example.com");
    assert!(
        claims.get("phone_number").is_none(),
        "phone was not in the scope"
    );
    assert_eq!(claims["sub"], "alice", "the registered claims stay");
    assert_eq!(claims["nonce"], "n");
}

#[test]
fn without_it_the_claims_stay_at_userinfo() {
    let mut h = Harness::default_provider();
    let (claims, asked) = code_flow(&mut h, "openid%20profile%20email");
    assert_eq!(asked, ["client", "code"], "no claims are loaded");
    assert!(claims.get("name").is_none() && claims.get("email").is_none());
}

#[test]
fn refreshed_id_tokens_carry_them_too() {
    let mut h = Harness::new(|b| b.claims_in_id_token(true));
    let client = common::client_id(oidc_flow::keys::Algorithm::RS256);
    let extra = "&scope=openid%20email%20offline_access&state=s&nonce=n&prompt=consent";
    let r = h.authorize_as(&query(&client, "code", extra), "alice");
    let code = redirect_params(&r)["code"].clone();
    let t = h.exchange(&client, &code, "").json();
    let refresh = t["refresh_token"].as_str().unwrap();
    let form = format!("grant_type=refresh_token&refresh_token={refresh}");
    let again = h.token(&form, Some(&Harness::basic(&client))).json();
    let claims = common::jwt_payload(again["id_token"].as_str().unwrap());
    assert_eq!(claims["email"], "alice@example.com");
}
