//! Races through the HTTP server: 32 requests redeem one code (or one refresh token) at
//! once. At most one gets tokens — none when a replay revokes the grant before the first
//! taker's tokens are stored, as RFC 6749 section 4.1.2 asks of a reused code — and every
//! other request gets `invalid_grant`, never a 5xx. Whatever was issued is dead afterwards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
mod common;

use common::{Browser, OwnPages as _, REDIRECT, Registered, TestServer};
use hyper::StatusCode;

const RACERS: usize = 32;

/// Signs alice in and returns a fresh code for `client`.
async fn code(server: &TestServer, client: &Registered, browser: &mut Browser) -> String {
    let url = server.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20offline_access",
        client.client_id,
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    ));
    let r = browser.authorize(server, &url, "alice", "pw-alice").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    r.response_params()["code"].clone()
}

/// Sends `form` to /token `RACERS` times at once; returns (status, error) per answer.
async fn race(
    server: &TestServer,
    client: &Registered,
    form: Vec<(&'static str, String)>,
) -> Vec<(StatusCode, serde_json::Value)> {
    let basic = client.basic();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(RACERS));
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let url = server.url("/token");
        let basic = basic.clone();
        let form = form.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut b = Browser::new();
            let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            barrier.wait().await;
            let r = b
                .post_form(&url, &pairs, &[("authorization", &basic)])
                .await;
            (r.status, r.json())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// The winner's answer, if any: at most one request gets tokens, the rest `invalid_grant`.
fn judge(answers: &[(StatusCode, serde_json::Value)], what: &str) -> Option<serde_json::Value> {
    let winners: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .collect();
    assert!(
        winners.len() <= 1,
        "at most one {what} redemption wins: {answers:?}"
    );
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{what}: {body}");
    }
    winners.first().map(|(_, body)| body.clone())
}

/// The refresh token of `won` (if a request won) no longer works: the replays revoked it.
async fn refresh_is_dead(server: &TestServer, client: &Registered, won: Option<serde_json::Value>) {
    let Some(won) = won else { return };
    let refresh = won["refresh_token"].as_str().unwrap().to_owned();
    let mut b = Browser::new();
    let r = b
        .post_form(
            &server.url("/token"),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
            &[("authorization", &client.basic())],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_redemptions_of_one_code_give_at_most_one_token_and_no_server_error() {
    let server = TestServer::start().await;
    server.add_user("alice", "pw-alice", "{}").await;
    let client = server.code_client().await;
    let mut browser = Browser::new();
    for round in 0..3 {
        let code = code(&server, &client, &mut browser).await;
        let answers = race(
            &server,
            &client,
            vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code),
                ("redirect_uri", REDIRECT.to_owned()),
            ],
        )
        .await;
        let won = judge(&answers, &format!("code (round {round})"));
        refresh_is_dead(&server, &client, won).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_redemptions_of_one_refresh_token_give_at_most_one_token_and_no_server_error() {
    let server = TestServer::start().await;
    server.add_user("alice", "pw-alice", "{}").await;
    let client = server.code_client().await;
    let mut browser = Browser::new();
    let code = code(&server, &client, &mut browser).await;
    let mut b = Browser::new();
    let first = b
        .post_form(
            &server.url("/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
            &[("authorization", &client.basic())],
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let refresh = first.json()["refresh_token"].as_str().unwrap().to_owned();
    let answers = race(
        &server,
        &client,
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh),
        ],
    )
    .await;
    let won = judge(&answers, "refresh token");
    refresh_is_dead(&server, &client, won).await;
}
