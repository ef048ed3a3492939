//! Logout over HTTP: RP-Initiated Logout 1.0 at `/logout` (with and without proof of who
//! asks), the session's end seen by `prompt=none`, and Back-Channel Logout 1.0 tokens
//! reaching a test client — without a client that never answers slowing the page.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use hyper::StatusCode;
use oidc_flow::Client;
use oidc_flow::jws::{self, Signer};
use oidc_flow::logout::BACKCHANNEL_LOGOUT_EVENT;
use oidc_flow_store::Store;
use oidc_flow_store::backchannel::ATTEMPT_TIMEOUT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

const BYE: &str = "https://rp.example/bye";
const SECRET: &str = "logout-test-client-secret-0123456789abcdef";

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Registers a code-flow client with a post-logout URI and, if given, a back-channel URI.
async fn client(server: &TestServer, id: &str, backchannel: Option<&str>) -> Client {
    let c: Client = serde_json::from_value(serde_json::json!({
        "client_id": id,
        "client_secret": SECRET,
        "redirect_uris": [REDIRECT],
        "post_logout_redirect_uris": [BYE],
        "backchannel_logout_uri": backchannel,
        "backchannel_logout_session_required": backchannel.is_some(),
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid profile email",
        "client_name": format!("The {id} app"),
    }))
    .unwrap();
    let c = c.validate().unwrap();
    server.store.add_client(&c).await.unwrap();
    c
}

/// Signs alice in through the pages and exchanges the code: returns the ID token.
async fn sign_in(server: &TestServer, browser: &mut Browser, client_id: &str) -> String {
    let url = server.url(&format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s&nonce=n-{}",
        enc(REDIRECT),
        rand_suffix()
    ));
    let done = browser.authorize(server, &url, "alice", "alice-pw").await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let code = done.response_params()["code"].clone();
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{client_id}:{SECRET}")
        )
    );
    let mut rp = Browser::new();
    let token = rp
        .post_form(
            &server.url("/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
            &[("authorization", &basic)],
        )
        .await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.body);
    token.json()["id_token"].as_str().unwrap().to_owned()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// `prompt=none` for `client_id` in this browser: the error (or the code) it gets.
async fn silent(server: &TestServer, browser: &mut Browser, client_id: &str) -> String {
    let url = server.url(&format!(
        "/authorize?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&prompt=none",
        enc(REDIRECT)
    ));
    let r = browser.get(&url).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let p = r.response_params();
    p.get("error")
        .cloned()
        .unwrap_or_else(|| format!("code {}", p.contains_key("code")))
}

/// A back-channel endpoint: every POST body it gets goes to the channel; answers 200.
async fn backchannel_receiver() -> (String, mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then Content-Length bytes of body.
                loop {
                    let n = stream.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]);
                            let _ = tx.send(format!("{}\0{body}", &text[..end]));
                            let _ = stream
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_with_a_hint_ends_the_session_and_notifies_the_back_channel() {
    let server = TestServer::start().await;
    server
        .add_user("alice", "alice-pw", r#"{"name":"Alice Liddell"}"#)
        .await;
    let (bc_url, mut received) = backchannel_receiver().await;
    client(&server, "rp-one", Some(&bc_url)).await;
    let mut browser = Browser::new();
    let id_token = sign_in(&server, &mut browser, "rp-one").await;
    assert_eq!(silent(&server, &mut browser, "rp-one").await, "code true");

    // The ID token carries the session's sid.
    let provider = oidc_flow_hyper::setup::provider(&*server.store, &server.issuer)
        .await
        .unwrap();
    let verify = |token: &str| {
        jws::decode_verify(token, |alg, kid| {
            kid.and_then(|k| provider.keys().get(k))
                .filter(|k| k.algorithm() == alg)
                .map(Signer::Key)
        })
        .unwrap()
        .claims
    };
    let sid = verify(&id_token)["sid"].as_str().unwrap().to_owned();

    let logout = browser
        .get(&server.url(&format!(
            "/logout?id_token_hint={id_token}&post_logout_redirect_uri={}&state=after%20logout",
            enc(BYE)
        )))
        .await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER, "{}", logout.body);
    assert_eq!(
        logout.header("location"),
        Some("https://rp.example/bye?state=after+logout")
    );
    assert_eq!(
        silent(&server, &mut browser, "rp-one").await,
        "login_required",
        "the session is over for this browser"
    );

    // The logout token reached the client, as Back-Channel Logout section 2.5 says.
    let request = tokio::time::timeout(Duration::from_secs(30), received.recv())
        .await
        .expect("a back-channel POST within 30 s")
        .unwrap();
    let (head, body) = request.split_once('\0').unwrap();
    assert!(head.starts_with("POST /backchannel "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-www-form-urlencoded"),
        "{head}"
    );
    let token: String = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let claims = verify(&token);
    assert_eq!(claims["iss"], server.issuer);
    assert_eq!(claims["aud"], "rp-one");
    assert_eq!(claims["sid"], sid);
    assert!(claims["events"][BACKCHANNEL_LOGOUT_EVENT].is_object());
    assert!(claims.get("nonce").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_without_proof_asks_the_person_first() {
    let server = TestServer::start().await;
    server
        .add_user("alice", "alice-pw", r#"{"name":"Alice Liddell"}"#)
        .await;
    client(&server, "rp-two", None).await;
    let mut browser = Browser::new();
    sign_in(&server, &mut browser, "rp-two").await;

    // A bare link (another site could embed it) only shows the question.
    let page = browser
        .get(&server.url(&format!(
            "/logout?client_id=rp-two&post_logout_redirect_uri={}",
            enc(BYE)
        )))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Sign out?"), "{}", page.body);
    assert!(page.body.contains("Alice Liddell"), "names the person");
    assert!(page.body.contains("The rp-two app"), "names the client");
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("form-action 'self' https://rp.example"),
        "{csp}"
    );
    assert_eq!(silent(&server, &mut browser, "rp-two").await, "code true");

    // A forged confirmation (wrong CSRF token) is refused.
    let forged = browser
        .post_form(
            &server.url("/logout"),
            &[("client_id", "rp-two"), ("confirm", "yes"), ("csrf", "x")],
            &[],
        )
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert_eq!(silent(&server, &mut browser, "rp-two").await, "code true");

    // Pressing the button does it.
    let mut fields: Vec<(String, String)> = vec![];
    for name in ["client_id", "post_logout_redirect_uri", "csrf", "confirm"] {
        fields.push((name.to_owned(), page.form_value(name).unwrap()));
    }
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let done = browser.post_form(&server.url("/logout"), &pairs, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.header("location"), Some(BYE));
    assert_eq!(
        silent(&server, &mut browser, "rp-two").await,
        "login_required"
    );

    // Without a session there is nothing to confirm: a page says so.
    let again = browser.get(&server.url("/logout")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(again.body.contains("You are signed out"), "{}", again.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_back_channel_that_never_answers_costs_the_page_nothing() {
    let server = TestServer::start().await;
    server.add_user("alice", "alice-pw", "{}").await;
    // Accepts connections and never answers; tells the test of each connection it holds.
    let silent_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bc = format!("http://{}/bc", silent_listener.local_addr().unwrap());
    let (accepted_tx, mut accepted) = mpsc::unbounded_channel::<()>();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((s, _)) = silent_listener.accept().await {
            open.push(s);
            let _ = accepted_tx.send(());
        }
    });
    client(&server, "rp-slow", Some(&bc)).await;
    let mut browser = Browser::new();
    let id_token = sign_in(&server, &mut browser, "rp-slow").await;
    let started = Instant::now();
    let logout = browser
        .get(&server.url(&format!("/logout?id_token_hint={id_token}")))
        .await;
    let took = started.elapsed();
    // The README's figure (run with --nocapture).
    println!("logout page with a back channel that never answers: {took:?}");
    assert_eq!(logout.status, StatusCode::OK, "{}", logout.body);
    assert!(logout.body.contains("You are signed out"));
    // The delivery was started: its connection reaches the silent endpoint (after the page,
    // in the background), and nothing ever answers it there.
    tokio::time::timeout(Duration::from_secs(30), accepted.recv())
        .await
        .expect("the back-channel delivery connects within 30 s")
        .unwrap();
    // A page that waited for that delivery would have taken at least one attempt's timeout
    // (the endpoint never answers, so no attempt ends sooner). The bound is that timeout
    // itself rather than a guess at how fast a page is, so a slow or loaded machine does not
    // fail the test while a page that waits still does.
    assert!(
        took < ATTEMPT_TIMEOUT,
        "the page waited {took:?} for a back channel (one attempt times out after {ATTEMPT_TIMEOUT:?})"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistered_post_logout_uris_get_a_page_not_a_redirect() {
    let server = TestServer::start().await;
    client(&server, "rp-three", None).await;
    let mut browser = Browser::new();
    for uri in [
        "https://evil.example/",
        "https://rp.example/bye/",
        "https://rp.example/cb",
    ] {
        let r = browser
            .get(&server.url(&format!(
                "/logout?client_id=rp-three&post_logout_redirect_uri={}",
                enc(uri)
            )))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(r.header("location").is_none());
        assert!(r.body.contains("not registered"), "{}", r.body);
    }
    let doc = browser
        .get(&server.url("/.well-known/openid-configuration"))
        .await
        .json();
    assert_eq!(doc["end_session_endpoint"], server.url("/logout"));
}
