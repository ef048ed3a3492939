//! The erased flows of `oidc_flow::flow` driven the way an adapter drives them: one loop per
//! endpoint, answering each need from the harness's in-memory store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use common::*;
use oidc_flow::authorize::ConsentAnswer;
use oidc_flow::flow::*;
use oidc_flow::keys::Algorithm;
use oidc_flow::{Authentication, JsonResponse};

/// Runs the authorization endpoint's loop with `session` as the cookie's session.
fn authorize_loop(
    h: &mut Harness,
    mut step: AuthorizeStep,
    session: Option<Authentication>,
) -> AuthorizeOutcome {
    loop {
        let flow = match step {
            AuthorizeStep::Done(outcome) => return outcome,
            AuthorizeStep::Need(flow) => flow,
        };
        let answer = match flow.need() {
            AuthorizeNeed::Client { client_id } => {
                AuthorizeAnswer::Client(h.clients.get(client_id).cloned())
            }
            AuthorizeNeed::ClaimNonce(n) => AuthorizeAnswer::NonceClaimed(
                h.nonces.insert((n.client_id.clone(), n.nonce.clone())),
            ),
            AuthorizeNeed::Session => AuthorizeAnswer::Session(session.clone()),
            AuthorizeNeed::Consent {
                subject,
                client_id,
                scope,
            } => AuthorizeAnswer::Consent(h.consented(subject, client_id, scope)),
            AuthorizeNeed::Claims { subject, .. } => {
                AuthorizeAnswer::Claims(h.users.get(subject).cloned().unwrap_or_default())
            }
            other => panic!("unexpected need {other:?}"),
        };
        step = flow.resume(answer, &h.provider, &mut h.rng, h.now).unwrap();
    }
}

fn token_loop(h: &mut Harness, form: &str, authorization: Option<&str>) -> JsonResponse {
    let mut step = TokenFlow::parse(form.as_bytes(), authorization.map(str::as_bytes));
    loop {
        let flow = match step {
            TokenStep::Done(done) => {
                h.apply(done.effects);
                return done.response;
            }
            TokenStep::Need(flow) => flow,
        };
        let answer = match flow.need() {
            TokenNeed::Client { client_id } => {
                TokenAnswer::Client(h.clients.get(client_id).cloned())
            }
            TokenNeed::TakeCode(hash) => {
                let hash = *hash;
                TokenAnswer::Code(h.take_code(&hash))
            }
            TokenNeed::TakeRefreshToken(hash) => {
                let hash = *hash;
                TokenAnswer::RefreshToken(h.take_refresh(&hash))
            }
            other => panic!("unexpected need {other:?}"),
        };
        step = flow.resume(answer, &h.provider, &mut h.rng, h.now).unwrap();
    }
}

fn userinfo_loop(h: &mut Harness, authorization: &str) -> JsonResponse {
    let mut step = UserinfoFlow::parse(&h.provider, Some(authorization.as_bytes()), None);
    loop {
        let flow = match step {
            UserinfoStep::Done(response) => return response,
            UserinfoStep::Need(flow) => flow,
        };
        let answer = match flow.need() {
            UserinfoNeed::AccessToken(hash) => {
                UserinfoAnswer::AccessToken(h.access_tokens.get(hash).cloned())
            }
            UserinfoNeed::Claims { subject, .. } => {
                UserinfoAnswer::Claims(h.users.get(subject).cloned().unwrap_or_default())
            }
            other => panic!("unexpected need {other:?}"),
        };
        step = flow.resume(answer, &h.provider, h.now).unwrap();
    }
}

#[test]
fn code_flow_through_login_consent_token_and_userinfo() {
    let mut h = Harness::new(|b| b.check_nonce_replay(true));
    let id = client_id(Algorithm::ES256);
    let q = query(&id, "code", "&scope=openid+profile&state=st&nonce=n-1");

    // No session: the login page.
    let AuthorizeOutcome::Login(login) =
        authorize_loop(&mut h, AuthorizeFlow::from_query(q.as_bytes()), None)
    else {
        panic!("expected the login page");
    };
    // Logged in, never consented: the consent page.
    let user = h.session("alice", time::Duration::ZERO);
    let AuthorizeOutcome::Consent(consent) = authorize_loop(
        &mut h,
        AuthorizeFlow::after_login(login, user.clone()),
        None,
    ) else {
        panic!("expected the consent page");
    };
    let AuthorizeOutcome::Redirect(done) = authorize_loop(
        &mut h,
        AuthorizeFlow::after_consent(consent, ConsentAnswer::Allow),
        None,
    ) else {
        panic!("expected the redirect");
    };
    h.apply(done.effects);
    let code = done.response.param("code").unwrap().to_owned();
    assert_eq!(done.response.param("state"), Some("st"));

    let form = format!("grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_ENC}");
    let resp = token_loop(&mut h, &form, Some(&Harness::basic(&id)));
    assert_eq!(resp.status, 200, "{}", resp.body);
    let body = resp.json();
    let access = body["access_token"].as_str().unwrap();
    let ui = userinfo_loop(&mut h, &format!("Bearer {access}"));
    assert_eq!(ui.json()["name"], "Alice Liddell");

    // Refresh rotates.
    let refresh = body["refresh_token"].as_str().unwrap();
    let resp = token_loop(
        &mut h,
        &format!("grant_type=refresh_token&refresh_token={refresh}"),
        Some(&Harness::basic(&id)),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_ne!(resp.json()["refresh_token"], body["refresh_token"]);

    // The same nonce again: remembered, so refused; and consent is remembered, so with the
    // session the request would otherwise go straight through.
    let again = authorize_loop(
        &mut h,
        AuthorizeFlow::from_query(q.as_bytes()),
        Some(user.clone()),
    );
    let AuthorizeOutcome::Redirect(err) = again else {
        panic!("expected a redirected error")
    };
    assert_eq!(err.response.param("error"), Some("invalid_request"));
    let fresh = query(&id, "code", "&scope=openid+profile&nonce=n-2&prompt=none");
    let AuthorizeOutcome::Redirect(ok) = authorize_loop(
        &mut h,
        AuthorizeFlow::from_query(fresh.as_bytes()),
        Some(user),
    ) else {
        panic!("expected a silent redirect");
    };
    assert!(ok.response.param("code").is_some());
}

#[test]
fn error_page_and_code_reuse() {
    let mut h = Harness::default_provider();
    let bad = query("nobody", "code", "&scope=openid");
    assert!(matches!(
        authorize_loop(&mut h, AuthorizeFlow::from_query(bad.as_bytes()), None),
        AuthorizeOutcome::ErrorPage(_)
    ));
    let id = client_id(Algorithm::RS256);
    let user = h.session("alice", time::Duration::ZERO);
    h.apply(vec![oidc_flow::Effect::RememberConsent(
        oidc_flow::ConsentRecord {
            subject: "alice".into(),
            client_id: id.clone(),
            scope: oidc_flow::Scope::parse("openid").unwrap(),
        },
    )]);
    let q = query(&id, "code", "&scope=openid");
    let AuthorizeOutcome::Redirect(done) =
        authorize_loop(&mut h, AuthorizeFlow::from_query(q.as_bytes()), Some(user))
    else {
        panic!("expected the redirect");
    };
    h.apply(done.effects);
    let code = done.response.param("code").unwrap().to_owned();
    let form = format!("grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_ENC}");
    assert_eq!(
        token_loop(&mut h, &form, Some(&Harness::basic(&id))).status,
        200
    );
    let second = token_loop(&mut h, &form, Some(&Harness::basic(&id)));
    assert_eq!(second.json()["error"], "invalid_grant");
    assert_eq!(h.revoked.len(), 1);
    assert!(
        h.access_tokens.is_empty(),
        "the first exchange's access token is revoked"
    );
}

#[test]
fn a_wrong_answer_is_protocol_misuse() {
    let mut h = Harness::default_provider();
    let q = query(&client_id(Algorithm::RS256), "code", "&scope=openid");
    let AuthorizeStep::Need(flow) = AuthorizeFlow::from_query(q.as_bytes()) else {
        panic!()
    };
    let err = flow
        .resume(
            AuthorizeAnswer::Session(None),
            &h.provider,
            &mut h.rng,
            h.now,
        )
        .unwrap_err();
    assert_eq!(err.needed, "Client");
    assert_eq!(err.answered, "Session");

    let TokenStep::Need(flow) = TokenFlow::parse(
        b"grant_type=refresh_token&refresh_token=x",
        Some(Harness::basic("rp-RS256").as_bytes()),
    ) else {
        panic!()
    };
    let err = flow
        .resume(
            TokenAnswer::Code(oidc_flow::Taken::Unknown),
            &h.provider,
            &mut h.rng,
            h.now,
        )
        .unwrap_err();
    assert_eq!(err.needed, "Client");
}
