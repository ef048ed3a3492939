//! The client credentials grant (RFC 6749 §4.4) through the core, with a fixed time and the
//! harness's records: what is issued, what scope, and who is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::{Harness, TokenForm, public_client, secret_of, service_client};
use oidc_flow::Client;
use oidc_flow::flow::{TokenAnswer, TokenFlow, TokenNeed, TokenStep};
use oidc_flow::keys::Algorithm;
use oidc_flow::secret::SecretHash;

fn service_basic() -> String {
    Harness::basic("service")
}

#[test]
fn a_confidential_client_gets_an_access_token_for_itself_and_nothing_else() {
    let mut h = Harness::default_provider();
    let r = h.token(
        &TokenForm::grant("client_credentials").encode(),
        Some(&service_basic()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    // The default is the registered scope without what speaks for an end-user.
    assert_eq!(body["scope"], "api:read api:write");
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(body.get("id_token").is_none(), "{body}");
    let token = body["access_token"].as_str().unwrap();
    let record = &h.access_tokens[&SecretHash::of(token)];
    assert_eq!(record.client_id, "service");
    // RFC 9068 §2.2: with no resource owner, the subject names the client.
    assert_eq!(record.subject, "service");
    assert_eq!(record.expires_at, h.now + time::Duration::hours(1));
    assert!(h.refresh_tokens.is_empty());
}

#[test]
fn each_issue_is_its_own_grant() {
    let mut h = Harness::default_provider();
    for _ in 0..2 {
        let r = h.token(
            &TokenForm::grant("client_credentials").encode(),
            Some(&service_basic()),
        );
        assert_eq!(r.status, 200);
    }
    let grants: std::collections::HashSet<_> =
        h.access_tokens.values().map(|r| r.grant.clone()).collect();
    assert_eq!(
        grants.len(),
        2,
        "revoking one token must not revoke the other"
    );
}

#[test]
fn the_scope_asked_is_granted_when_registered() {
    let mut h = Harness::default_provider();
    let r = h.token(
        &TokenForm {
            scope: Some("api:read"),
            ..TokenForm::grant("client_credentials")
        }
        .encode(),
        Some(&service_basic()),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["scope"], "api:read");
}

#[test]
fn a_scope_not_registered_or_for_an_end_user_is_invalid_scope() {
    let mut h = Harness::default_provider();
    for scope in ["admin", "api:read admin", "openid", "offline_access"] {
        let form = TokenForm {
            scope: Some(scope),
            ..TokenForm::grant("client_credentials")
        }
        .encode();
        let r = h.token(&form, Some(&service_basic()));
        assert_eq!(r.status, 400, "{scope}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_scope", "{scope}");
    }
    assert!(h.access_tokens.is_empty());
}

#[test]
fn a_client_without_the_grant_is_unauthorized_client() {
    let mut h = Harness::default_provider();
    let rs256 = common::client_for(Algorithm::RS256).client_id;
    let r = h.token(
        &TokenForm::grant("client_credentials").encode(),
        Some(&Harness::basic(&rs256)),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"], "unauthorized_client");
    // A public client never holds the grant, and cannot authenticate for it.
    let public = public_client().client_id;
    let r = h.token(
        &TokenForm {
            client_id: Some(&public),
            ..TokenForm::grant("client_credentials")
        }
        .encode(),
        None,
    );
    assert_eq!(r.json()["error"], "unauthorized_client", "{}", r.body);
    assert!(h.access_tokens.is_empty());
}

#[test]
fn a_wrong_secret_is_invalid_client_with_a_challenge() {
    let mut h = Harness::default_provider();
    let wrong = {
        use base64::Engine as _;
        let raw = "service:not-the-secret";
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let r = h.token(
        &TokenForm::grant("client_credentials").encode(),
        Some(&wrong),
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"], "invalid_client");
    assert!(r.header("www-authenticate").is_some());
    assert!(h.access_tokens.is_empty());
}

#[test]
fn the_token_does_not_open_userinfo() {
    let mut h = Harness::default_provider();
    let r = h.token(
        &TokenForm::grant("client_credentials").encode(),
        Some(&service_basic()),
    );
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    let r = h.userinfo(Some(&format!("Bearer {token}")), None);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
}

#[test]
fn the_erased_flow_issues_after_the_client_alone() {
    let h = Harness::default_provider();
    let mut rng = h.rng.clone();
    let form = TokenForm {
        scope: Some("api:write"),
        ..TokenForm::grant("client_credentials")
    }
    .encode();
    let TokenStep::Need(flow) = TokenFlow::parse(form.as_bytes(), Some(service_basic().as_bytes()))
    else {
        panic!("the client is needed first");
    };
    assert_eq!(
        flow.need(),
        TokenNeed::Client {
            client_id: "service"
        }
    );
    let step = flow
        .resume(
            TokenAnswer::Client(Some(service_client())),
            &h.provider,
            &mut rng,
            h.now,
        )
        .unwrap();
    let TokenStep::Done(done) = step else {
        panic!("nothing else is needed");
    };
    assert_eq!(done.response.status, 200);
    assert_eq!(done.effects.len(), 1);
}

#[test]
fn registration_needs_a_confidential_client_and_no_redirect_uri() {
    let service = serde_json::json!({
        "client_id": "svc",
        "client_secret": secret_of("svc"),
        "redirect_uris": [],
        "response_types": [],
        "grant_types": ["client_credentials"],
    });
    assert!(
        serde_json::from_value::<Client>(service.clone())
            .unwrap()
            .validate()
            .is_ok()
    );
    let mut public = service;
    public["token_endpoint_auth_method"] = "none".into();
    public.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(
        serde_json::from_value::<Client>(public)
            .unwrap()
            .validate()
            .unwrap_err(),
        oidc_flow::ClientError::PublicClientCredentials
    );
    // A code client still needs its redirect URI.
    let mut code = serde_json::to_value(public_client()).unwrap();
    code["redirect_uris"] = serde_json::json!([]);
    assert_eq!(
        serde_json::from_value::<Client>(code)
            .unwrap()
            .validate()
            .unwrap_err(),
        oidc_flow::ClientError::NoRedirectUri
    );
}
