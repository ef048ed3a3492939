//! Token revocation (RFC 7009) through the erased flow, with a fixed time and the harness's
//! records: what is revoked, what is left alone, and what is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{Harness, PresentedForm};
use oidc_flow::flow::{RevocationAnswer, RevocationFlow, RevocationNeed, RevocationStep};
use oidc_flow::keys::Algorithm;
use oidc_flow::response::JsonResponse;

/// Runs the revocation endpoint against the harness; returns the response and the order
/// of the lookups it asked for.
fn revoke(
    h: &mut Harness,
    form: &str,
    authorization: Option<&str>,
) -> (JsonResponse, Vec<&'static str>) {
    let mut asked = Vec::new();
    let mut step = RevocationFlow::parse(form.as_bytes(), authorization.map(str::as_bytes));
    loop {
        let flow = match step {
            RevocationStep::Done(done) => {
                h.apply(done.effects);
                return (done.response, asked);
            }
            RevocationStep::Need(flow) => flow,
        };
        let answer = match flow.need() {
            RevocationNeed::Client { client_id } => {
                RevocationAnswer::Client(h.clients.get(client_id).cloned())
            }
            RevocationNeed::RefreshToken(hash) => {
                asked.push("refresh");
                let found = h.refresh_tokens.get(hash).filter(|(_, taken)| !taken);
                RevocationAnswer::RefreshToken(found.map(|(r, _)| r.clone()))
            }
            RevocationNeed::AccessToken(hash) => {
                asked.push("access");
                RevocationAnswer::AccessToken(h.access_tokens.get(hash).cloned())
            }
            other => panic!("unknown need {other:?}"),
        };
        step = flow.resume(answer, &h.provider, h.now).unwrap();
    }
}

fn tokens(h: &mut Harness, client: &str) -> (String, String) {
    h.offline_tokens(client)
}

#[test]
fn a_refresh_token_revokes_its_whole_grant() {
    let mut h = Harness::default_provider();
    let client = common::client_id(Algorithm::RS256);
    let (access, refresh) = tokens(&mut h, &client);
    let basic = Harness::basic(&client);
    let form = PresentedForm {
        token_type_hint: Some("refresh_token"),
        ..PresentedForm::token(&refresh)
    }
    .encode();
    let (r, asked) = revoke(&mut h, &form, Some(&basic));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(
        asked,
        ["refresh"],
        "the hint is looked up first, and alone when found"
    );
    assert_eq!(h.revoked.len(), 1);
    assert!(h.refresh_tokens.is_empty() && h.access_tokens.is_empty());
    let ui = h.userinfo(Some(&format!("Bearer {access}")), None);
    assert_eq!(ui.status, 401);
    // Revoking it again: 200, nothing more to do.
    let (again, _) = revoke(&mut h, &form, Some(&basic));
    assert_eq!(again.status, 200);
    assert_eq!(h.revoked.len(), 1);
}

#[test]
fn an_access_token_without_a_hint_revokes_its_grant() {
    let mut h = Harness::default_provider();
    let client = common::client_id(Algorithm::ES256);
    let (access, _) = tokens(&mut h, &client);
    let form = PresentedForm::token(&access).encode();
    let (r, asked) = revoke(&mut h, &form, Some(&Harness::basic(&client)));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(asked, ["access"]);
    assert!(h.access_tokens.is_empty() && h.refresh_tokens.is_empty());
}

#[test]
fn another_clients_expired_or_unknown_token_is_left_alone() {
    let mut h = Harness::default_provider();
    let owner = common::client_id(Algorithm::RS256);
    let other = common::client_id(Algorithm::ES256);
    let (access, refresh) = tokens(&mut h, &owner);
    for token in [&access, &refresh] {
        let (r, _) = revoke(
            &mut h,
            &PresentedForm::token(token).encode(),
            Some(&Harness::basic(&other)),
        );
        assert_eq!(
            r.status, 200,
            "RFC 7009 §2.2: a token of another client answers 200"
        );
    }
    assert!(h.revoked.is_empty(), "another client's token stays");
    let (r, asked) = revoke(&mut h, "token=never-issued", Some(&Harness::basic(&owner)));
    assert_eq!(r.status, 200);
    assert_eq!(asked, ["access", "refresh"], "both kinds are looked up");
    assert!(h.revoked.is_empty());
    // Expired: nothing to revoke.
    h.advance(time::Duration::days(400));
    let (r, _) = revoke(
        &mut h,
        &PresentedForm::token(&refresh).encode(),
        Some(&Harness::basic(&owner)),
    );
    assert_eq!(r.status, 200);
    assert!(h.revoked.is_empty());
}

#[test]
fn refusals_are_the_token_endpoints() {
    let mut h = Harness::default_provider();
    let client = common::client_id(Algorithm::RS256);
    let (_, refresh) = tokens(&mut h, &client);
    // No token parameter.
    let (r, _) = revoke(
        &mut h,
        "token_type_hint=access_token",
        Some(&Harness::basic(&client)),
    );
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // A wrong secret: 401 invalid_client with a challenge, nothing revoked.
    let wrong = {
        use base64::Engine as _;
        let raw = format!("{client}:wrong");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let form = PresentedForm::token(&refresh).encode();
    let (r, asked) = revoke(&mut h, &form, Some(&wrong));
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(r.header("www-authenticate").is_some());
    assert!(
        asked.is_empty(),
        "no lookup before the client is authenticated"
    );
    // No client at all.
    let (r, _) = revoke(&mut h, &PresentedForm::token(&refresh).encode(), None);
    assert_eq!(r.status, 401);
    assert!(h.revoked.is_empty());
}

#[test]
fn discovery_names_the_endpoint() {
    let h = Harness::default_provider();
    let doc = oidc_flow::discovery::document(&h.provider);
    assert_eq!(
        doc["revocation_endpoint"],
        format!("{}/revoke", common::ISSUER)
    );
    assert!(doc["revocation_endpoint_auth_methods_supported"].is_array());
}
