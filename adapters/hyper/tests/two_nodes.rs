//! Two `oidc-flow serve` processes on one PostgreSQL database act as one provider: a login
//! parked on one node resumes on the other, a code minted on one is redeemed on the other,
//! a session cookie from one works on the other, 32 redemptions of one code spread over
//! both give at most one token, a key rotated or a client removed by the command line is
//! seen by both, and a `kill -9` of one node under load loses no token a client received.
//!
//! Runs on the PostgreSQL server of `OIDC_FLOW_TEST_POSTGRES` (`scripts/with-postgres`);
//! skipped without one unless `OIDC_FLOW_REQUIRE_POSTGRES` is set (CI sets it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Browser, OwnPages as _, REDIRECT, Registered};
use hyper::StatusCode;
use oidc_flow_hyper::setup::{self, NewClient};
use oidc_flow_store::DATA_KEY_ENV;
use oidc_flow_store::testing::{TEST_DATA_KEY, fresh_postgres_database, open_test_store};

/// One `oidc-flow serve` process.
struct Node {
    child: Child,
    base: String,
}

impl Node {
    /// Starts a node on `database` answering as `issuer` on a free port; waits until it
    /// serves discovery.
    async fn start(database: &str, issuer: Option<&str>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_oidc-flow"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--issuer", issuer.unwrap_or(&base)])
            .env("OIDC_FLOW_DATABASE", database)
            .env(DATA_KEY_ENV, TEST_DATA_KEY)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let node = Self { child, base };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = Browser::new()
                .try_send(
                    hyper::Method::GET,
                    &node.url("/.well-known/openid-configuration"),
                    &[],
                    Vec::new(),
                )
                .await
                .is_ok_and(|r| r.status == StatusCode::OK);
            if up {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "node {} did not start",
                node.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `kill -9`.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cli(database: &str, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_oidc-flow"))
        .args(args)
        .env("OIDC_FLOW_DATABASE", database)
        .env(DATA_KEY_ENV, TEST_DATA_KEY)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oidc-flow {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn authorize_url(node: &Node, client: &Registered, extra: &str) -> String {
    node.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20offline_access{extra}",
        client.client_id,
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    ))
}

async fn token(
    node: &Node,
    client: &Registered,
    form: &[(&str, &str)],
) -> (StatusCode, serde_json::Value) {
    let r = Browser::new()
        .post_form(
            &node.url("/token"),
            form,
            &[("authorization", &client.basic())],
        )
        .await;
    (r.status, r.json())
}

async fn introspect(node: &Node, client: &Registered, token: &str) -> serde_json::Value {
    Browser::new()
        .post_form(
            &node.url("/introspect"),
            &[("token", token)],
            &[("authorization", &client.basic())],
        )
        .await
        .json()
}

/// Polls `check` until it holds, for at most `bound`; returns how long it took.
async fn within<F, Fut>(bound: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < bound, "not seen within {bound:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_one_database_act_as_one_provider() {
    let Some(database) = fresh_postgres_database("two_nodes").await else {
        return;
    };
    let store = open_test_store(&database).await.unwrap();
    let client = Registered::from(
        setup::add_client(
            &store,
            NewClient {
                redirect_uris: vec![REDIRECT.into()],
                grant_types: vec![
                    "authorization_code".into(),
                    "refresh_token".into(),
                    "client_credentials".into(),
                ],
                ..NewClient::default()
            },
        )
        .await
        .unwrap(),
    );
    setup::add_user(&store, "alice", "pw-alice", None, None, Some("{}"))
        .await
        .unwrap();

    // A first, so that it makes the signing keys; B answers as the same issuer.
    let mut a = Node::start(&database, None).await;
    let b = Node::start(&database, Some(&a.base)).await;

    // A login parked by A is answered on B, the consent on A: the code comes back.
    let mut browser = Browser::new();
    let login = browser.get(&authorize_url(&a, &client, "")).await;
    let consent = browser
        .login_at(&b.url("/login"), &login, "alice", "pw-alice")
        .await;
    let done = browser
        .consent_at(&a.url("/consent"), &consent, "allow")
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let code = done.response_params()["code"].clone();

    // Minted on A, redeemed on B.
    let (status, tokens) = token(
        &b,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&a, &client, &access).await["active"], true);

    // The refresh token rotates on A; the old one is then refused on B.
    let (status, rotated) = token(
        &a,
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let (status, reuse) = token(
        &b,
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reuse}");
    assert_eq!(reuse["error"], "invalid_grant");

    // The session cookie set by B signs alice in on A without a page.
    let silent = browser
        .get(&authorize_url(&a, &client, "&prompt=none"))
        .await;
    assert_eq!(silent.status, StatusCode::SEE_OTHER, "{}", silent.body);
    let raced = silent.response_params()["code"].clone();

    // 32 redemptions of one code, alternately on A and B: at most one gets tokens (none
    // when a replay revokes the grant before the winner's tokens are stored), the others
    // invalid_grant.
    let mut tasks = Vec::new();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(32));
    for i in 0..32 {
        let url = if i % 2 == 0 {
            a.url("/token")
        } else {
            b.url("/token")
        };
        let basic = client.basic();
        let code = raced.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = Browser::new()
                .post_form(
                    &url,
                    &[
                        ("grant_type", "authorization_code"),
                        ("code", &code),
                        ("redirect_uri", REDIRECT),
                    ],
                    &[("authorization", &basic)],
                )
                .await;
            (r.status, r.json())
        }));
    }
    let mut winners = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status == StatusCode::OK {
            winners += 1;
        } else {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(body["error"], "invalid_grant", "{body}");
        }
    }
    assert!(winners <= 1, "{winners} redemptions of one code got tokens");

    // A key rotated by the command line is published by both nodes within the key poll
    // (2 s), and a new ID token from either verifies against it.
    let before = Browser::new().get(&a.url("/jwks")).await.json();
    cli(&database, &["keys", "rotate", "--alg", "ES256"]);
    let count = |jwks: &serde_json::Value| jwks["keys"].as_array().map_or(0, Vec::len);
    let grown = count(&before) + 1;
    for node in [&a, &b] {
        let took = within(Duration::from_secs(6), || async {
            count(&Browser::new().get(&node.url("/jwks")).await.json()) == grown
        })
        .await;
        eprintln!("rotated key published by {} after {took:?}", node.base);
    }

    // Under load on A (client credentials), A is killed with SIGKILL: every token a client
    // received from A is active on B.
    let load = {
        let url = a.url("/token");
        let basic = client.basic();
        tokio::spawn(async move {
            let mut received = Vec::new();
            loop {
                let r = Browser::new()
                    .try_send(
                        hyper::Method::POST,
                        &url,
                        &[
                            ("authorization", basic.as_str()),
                            ("content-type", "application/x-www-form-urlencoded"),
                        ],
                        b"grant_type=client_credentials".to_vec(),
                    )
                    .await;
                match r {
                    Ok(r) if r.status == StatusCode::OK => {
                        received.push(r.json()["access_token"].as_str().unwrap().to_owned());
                    }
                    Ok(r) => panic!("client credentials: {} {}", r.status, r.body),
                    // The node is gone.
                    Err(_) => return received,
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.kill();
    let received = load.await.unwrap();
    assert!(
        received.len() > 10,
        "only {} tokens before the kill",
        received.len()
    );
    for t in &received {
        assert_eq!(introspect(&b, &client, t).await["active"], true, "lost {t}");
    }
    eprintln!(
        "{} tokens received from A before kill -9, all active on B",
        received.len()
    );

    // A client removed by the command line is refused by the node still up within the
    // client cache's bound (1 s).
    cli(&database, &["client", "remove", &client.client_id]);
    let took = within(Duration::from_secs(5), || async {
        let (status, _) = token(&b, &client, &[("grant_type", "client_credentials")]).await;
        status == StatusCode::UNAUTHORIZED
    })
    .await;
    eprintln!("removed client refused by B after {took:?}");
}
