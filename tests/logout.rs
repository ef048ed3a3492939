//! The end-session flow (RP-Initiated Logout 1.0) and back-channel logout tokens
//! (Back-Channel Logout 1.0), as plain function calls with a fixed time and a seeded rng.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use oidc_flow::flow::{LogoutAnswer, LogoutFlow, LogoutNeed, LogoutOutcome, LogoutStep};
use oidc_flow::jws::{self, Signer};
use oidc_flow::keys::Algorithm;
use oidc_flow::logout::{BACKCHANNEL_LOGOUT_EVENT, LoggedOut};
use oidc_flow::{Authentication, ConsentRecord, Effect, Scope};
use time::Duration;

const POST_LOGOUT: &str = "https://rp.example.org/bye";
const BACKCHANNEL: &str = "https://rp.example.org/backchannel";

/// A harness whose RS256 and ES256 clients registered a post-logout URI, and whose RS256
/// client also a back-channel logout URI.
fn harness() -> Harness {
    let mut h = Harness::default_provider();
    for alg in [Algorithm::RS256, Algorithm::ES256] {
        let c = h.clients.get_mut(&client_id(alg)).unwrap();
        c.post_logout_redirect_uris = vec![POST_LOGOUT.to_owned()];
        if alg == Algorithm::RS256 {
            c.backchannel_logout_uri = Some(BACKCHANNEL.to_owned());
            c.backchannel_logout_session_required = true;
        }
    }
    h
}

fn session(h: &Harness, subject: &str, sid: &str) -> Authentication {
    Authentication {
        sid: Some(sid.to_owned()),
        ..h.session(subject, Duration::minutes(5))
    }
}

/// An ID token for `subject` in session `sid`, issued through the authorization endpoint.
fn id_token(h: &mut Harness, alg: Algorithm, subject: &str, sid: &str) -> String {
    let id = client_id(alg);
    h.consents.push(ConsentRecord {
        subject: subject.to_owned(),
        client_id: id.clone(),
        scope: Scope::parse("openid").unwrap(),
    });
    let s = session(h, subject, sid);
    let q = query(&id, "id_token", "&scope=openid&nonce=n-logout");
    let AuthzOutcome::Redirect(r) = h.authorize(&q, Some(s)) else {
        panic!("a consented session gets a redirect");
    };
    redirect_params(&r)["id_token"].clone()
}

/// The outcome of a logout request, answering needs as a store would: `participants` are
/// the clients recorded for the session.
fn run(
    h: &mut Harness,
    mut step: LogoutStep,
    session: Option<Authentication>,
    participants: &[&str],
) -> LogoutOutcome {
    loop {
        let flow = match step {
            LogoutStep::Done(outcome) => return outcome,
            LogoutStep::Need(flow) => flow,
        };
        let answer = match flow.need() {
            LogoutNeed::Client { client_id } => {
                LogoutAnswer::Client(h.clients.get(client_id).cloned())
            }
            LogoutNeed::Session => LogoutAnswer::Session(session.clone()),
            LogoutNeed::SessionClients { .. } => LogoutAnswer::SessionClients(
                participants
                    .iter()
                    .filter_map(|id| h.clients.get(*id).cloned())
                    .collect(),
            ),
            other => panic!("unexpected need {other:?}"),
        };
        step = flow.resume(answer, &h.provider, &mut h.rng, h.now).unwrap();
    }
}

fn done(outcome: LogoutOutcome) -> (LoggedOut, Vec<Effect>) {
    match outcome {
        LogoutOutcome::Done(d) => (d.response, d.effects),
        other => panic!("expected the logout to finish, got {other:?}"),
    }
}

fn page(outcome: LogoutOutcome) -> String {
    match outcome {
        LogoutOutcome::ErrorPage(p) => p.error.description,
        other => panic!("expected an error page, got {other:?}"),
    }
}

#[test]
fn sid_is_in_id_tokens_and_the_session_records_its_clients() {
    let mut h = harness();
    let id = client_id(Algorithm::ES256);
    h.consents.push(ConsentRecord {
        subject: "alice".into(),
        client_id: id.clone(),
        scope: Scope::parse("openid").unwrap(),
    });
    let s = session(&h, "alice", "sid-1");
    let q = query(&id, "code", "&scope=openid");
    let received = oidc_flow::authorize::Received::from_query(q.as_bytes()).unwrap();
    let bound = received.bind_client(h.clients.get(&id).cloned()).unwrap();
    let checked = bound
        .validate(&h.provider)
        .unwrap()
        .nonce_claimed(true)
        .unwrap();
    let oidc_flow::authorize::Decision::Authorized(a) = checked.decide(Some(s), true, h.now) else {
        panic!("authorized");
    };
    let done = a
        .issue(&h.provider, &Default::default(), &mut h.rng, h.now)
        .unwrap();
    assert!(done.effects.contains(&Effect::JoinSession {
        sid: "sid-1".into(),
        client_id: id.clone(),
    }));
    h.apply(done.effects);
    assert!(
        h.session_clients
            .contains(&("sid-1".to_owned(), id.clone()))
    );

    let token = id_token(&mut h, Algorithm::ES256, "alice", "sid-2");
    let verified = jws::decode_verify(&token, |alg, _| {
        h.provider.keys().for_algorithm(alg).map(Signer::Key)
    })
    .unwrap();
    assert_eq!(verified.claims["sid"], "sid-2");
}

#[test]
fn a_hint_naming_the_sessions_user_ends_it_at_once_and_notifies_back_channels() {
    let mut h = harness();
    let hint = id_token(&mut h, Algorithm::ES256, "alice", "sid-a");
    let s = session(&h, "alice", "sid-a");
    let q = format!(
        "id_token_hint={hint}&post_logout_redirect_uri={}&state=st%20ate",
        url::form_urlencoded::byte_serialize(POST_LOGOUT.as_bytes()).collect::<String>()
    );
    let participants = [
        client_id(Algorithm::RS256),
        client_id(Algorithm::ES256),
        "unknown-client".to_owned(),
    ];
    let ids: Vec<&str> = participants.iter().map(String::as_str).collect();
    let (out, effects) = done(run(
        &mut h,
        LogoutFlow::from_query(q.as_bytes()),
        Some(s),
        &ids,
    ));
    assert_eq!(
        out.redirect.as_deref(),
        Some("https://rp.example.org/bye?state=st+ate")
    );
    assert!(out.ended);
    assert_eq!(
        effects,
        vec![Effect::EndSession {
            sid: "sid-a".into()
        }]
    );
    // Only the RS256 client registered a back-channel URI.
    assert_eq!(out.back_channel.len(), 1);
    let notice = &out.back_channel[0];
    assert_eq!(notice.client_id, client_id(Algorithm::RS256));
    assert_eq!(notice.uri, BACKCHANNEL);

    // The logout token, checked as Back-Channel Logout section 2.4 and 2.6 say a client must.
    let mut header_typ = None;
    let verified = jws::decode_verify(&notice.logout_token, |alg, kid| {
        assert_eq!(
            alg,
            Algorithm::RS256,
            "signed as the client's ID tokens are"
        );
        assert!(kid.is_some());
        header_typ = Some(());
        h.provider.keys().for_algorithm(alg).map(Signer::Key)
    })
    .unwrap();
    assert!(header_typ.is_some());
    let header_b64 = notice.logout_token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            header_b64,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "logout+jwt");
    let c = &verified.claims;
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["aud"], client_id(Algorithm::RS256));
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["sid"], "sid-a");
    assert!(c["events"][BACKCHANNEL_LOGOUT_EVENT].is_object());
    assert!(
        c.get("nonce").is_none(),
        "a logout token never holds a nonce"
    );
    assert!(c["jti"].as_str().unwrap().len() >= 43);
    assert_eq!(c["iat"], h.now.unix_timestamp());
    assert!(c["exp"].as_i64().unwrap() > h.now.unix_timestamp());
}

#[test]
fn without_proof_a_logged_in_user_confirms_first() {
    let mut h = harness();
    let s = session(&h, "alice", "sid-c");
    let q = format!("client_id={}", client_id(Algorithm::ES256));
    let LogoutOutcome::Confirm(awaiting) = run(
        &mut h,
        LogoutFlow::from_query(q.as_bytes()),
        Some(s.clone()),
        &[],
    ) else {
        panic!("no id_token_hint: the end-user is asked");
    };
    assert_eq!(awaiting.subject(), "alice");
    assert_eq!(
        awaiting.form_fields(),
        &[("client_id", client_id(Algorithm::ES256))]
    );
    let (out, effects) = done(run(
        &mut h,
        LogoutFlow::after_confirmation(awaiting),
        Some(s),
        &[],
    ));
    assert!(out.ended);
    assert_eq!(out.redirect, None, "no post_logout_redirect_uri: a page");
    assert_eq!(
        effects,
        vec![Effect::EndSession {
            sid: "sid-c".into()
        }]
    );

    // A hint for another user than the session's is no proof either.
    let hint = id_token(&mut h, Algorithm::ES256, "bob", "sid-b");
    let s = session(&h, "alice", "sid-c");
    let q = format!("id_token_hint={hint}");
    assert!(matches!(
        run(&mut h, LogoutFlow::from_query(q.as_bytes()), Some(s), &[]),
        LogoutOutcome::Confirm(_)
    ));
    // Nor a hint of the same user from another session.
    let hint = id_token(&mut h, Algorithm::ES256, "alice", "sid-old");
    let s = session(&h, "alice", "sid-new");
    let q = format!("id_token_hint={hint}");
    assert!(matches!(
        run(&mut h, LogoutFlow::from_query(q.as_bytes()), Some(s), &[]),
        LogoutOutcome::Confirm(_)
    ));
}

#[test]
fn without_a_session_the_browser_is_still_sent_back() {
    let mut h = harness();
    let hint = id_token(&mut h, Algorithm::ES256, "alice", "sid-x");
    h.advance(Duration::days(2)); // an expired hint is still a hint (RP-Initiated section 2)
    let q = format!(
        "id_token_hint={hint}&post_logout_redirect_uri={}",
        url::form_urlencoded::byte_serialize(POST_LOGOUT.as_bytes()).collect::<String>()
    );
    let (out, effects) = done(run(&mut h, LogoutFlow::from_form(q.as_bytes()), None, &[]));
    assert_eq!(out.redirect.as_deref(), Some(POST_LOGOUT));
    assert!(!out.ended);
    assert!(effects.is_empty());
    assert!(out.back_channel.is_empty());
}

#[test]
fn bad_requests_get_a_page_never_a_redirect() {
    let mut h = harness();
    let es = client_id(Algorithm::ES256);
    let rs = client_id(Algorithm::RS256);
    let hint = id_token(&mut h, Algorithm::ES256, "alice", "sid-e");
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let s = Some(session(&h, "alice", "sid-e"));
    let cases = [
        (
            format!(
                "client_id={es}&post_logout_redirect_uri={}",
                enc("https://evil.example/")
            ),
            "not registered",
        ),
        (
            format!(
                "client_id={es}&post_logout_redirect_uri={}",
                enc("https://rp.example.org/bye/")
            ),
            "not registered",
        ),
        (
            format!("post_logout_redirect_uri={}", enc(POST_LOGOUT)),
            "needs client_id or id_token_hint",
        ),
        (
            format!(
                "client_id=nobody&post_logout_redirect_uri={}",
                enc(POST_LOGOUT)
            ),
            "not registered",
        ),
        // The hint was issued to the ES256 client, not to the one named.
        (
            format!("client_id={rs}&id_token_hint={hint}"),
            "not issued to this client",
        ),
        (format!("id_token_hint={hint}x"), "invalid id_token_hint"),
        (
            "id_token_hint=not.a.jws".to_owned(),
            "invalid id_token_hint",
        ),
        (format!("client_id={es}&client_id={es}"), "more than once"),
    ];
    for (q, why) in cases {
        let description = page(run(
            &mut h,
            LogoutFlow::from_query(q.as_bytes()),
            s.clone(),
            &[],
        ));
        assert!(description.contains(why), "{q}: {description}");
    }
}

#[test]
fn discovery_names_the_end_session_endpoint() {
    let h = harness();
    let doc = oidc_flow::discovery::document(&h.provider);
    assert_eq!(doc["end_session_endpoint"], format!("{ISSUER}/logout"));
    assert_eq!(doc["backchannel_logout_supported"], true);
    assert_eq!(doc["backchannel_logout_session_supported"], true);
}
