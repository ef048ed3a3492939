//! The login throttle over HTTP: wrong passwords from a browser lock the account (HTTP 429,
//! `Retry-After`, the page saying when), the right password waits too, and other accounts
//! and other addresses are unaffected. Two client addresses on loopback: 127.0.0.1 and
//! 127.0.0.2 (the client binds its end of the connection).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oidc_flow_hyper::App;
use oidc_flow_hyper::setup::{self, NewClient};
use oidc_flow_hyper::throttle::Limits;
use oidc_flow_store::DatabaseStore;
use tokio::sync::oneshot;

const REDIRECT: &str = "https://rp.example/cb";

struct Server {
    issuer: String,
    store: Arc<DatabaseStore>,
    client_id: String,
    _stop: oneshot::Sender<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    async fn start(limits: Limits) -> Self {
        let (database, dir) = common::fresh_database().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let store = Arc::new(
            oidc_flow_store::testing::open_test_store(&database)
                .await
                .unwrap(),
        );
        let provider = setup::provider(&*store, &issuer).await.unwrap();
        let app = Arc::new(App::new(provider, store.clone()).with_login_limits(limits));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            oidc_flow_hyper::serve(listener, app, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        let reg = setup::add_client(
            &*store,
            NewClient {
                redirect_uris: vec![REDIRECT.into()],
                ..NewClient::default()
            },
        )
        .await
        .unwrap();
        Self {
            issuer,
            store,
            client_id: reg["client_id"].as_str().unwrap().to_owned(),
            _stop: tx,
            _dir: dir,
        }
    }

    async fn add_user(&self, username: &str, password: &str) {
        setup::add_user(&*self.store, username, password, None, None, None)
            .await
            .unwrap();
    }

    fn authorize_url(&self) -> String {
        format!(
            "{}/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s1",
            self.issuer,
            self.client_id,
            url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        )
    }
}

struct Resp {
    status: StatusCode,
    retry_after: Option<String>,
    body: String,
}

impl Resp {
    fn hidden(&self, name: &str) -> String {
        let needle = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&needle).unwrap() + needle.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }

    fn is_login_page(&self) -> bool {
        self.body.contains("name=\"password\"") && self.body.contains("name=\"handle\"")
    }
}

/// A cookie-keeping user agent whose connections come from `from`.
struct Browser {
    client: Client<HttpConnector, Full<Bytes>>,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn from(addr: &str) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_local_address(Some(addr.parse::<IpAddr>().unwrap()));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            cookies: HashMap::new(),
        }
    }

    async fn send(&mut self, method: Method, url: &str, body: Option<String>) -> Resp {
        let mut req = Request::builder().method(method).uri(url);
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header(header::COOKIE, c.join("; "));
        }
        if body.is_some() {
            req = req.header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        let resp = self
            .client
            .request(
                req.body(Full::new(Bytes::from(body.unwrap_or_default())))
                    .unwrap(),
            )
            .await
            .unwrap();
        for sc in resp.headers().get_all(header::SET_COOKIE) {
            let c = cookie::Cookie::parse(sc.to_str().unwrap().to_owned()).unwrap();
            self.cookies
                .insert(c.name().to_owned(), c.value().to_owned());
        }
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            retry_after,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// The login page of a fresh authorization request.
    async fn login_page(&mut self, server: &Server) -> Resp {
        let page = self.send(Method::GET, &server.authorize_url(), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.is_login_page(), "{}", page.body);
        page
    }

    /// Submits `page`'s login form.
    async fn login(&mut self, server: &Server, page: &Resp, user: &str, password: &str) -> Resp {
        assert!(page.is_login_page(), "not a login page: {}", page.body);
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("handle", page.hidden("handle").as_str()),
                ("csrf", page.hidden("csrf").as_str()),
                ("username", user),
                ("password", password),
            ])
            .finish();
        self.send(
            Method::POST,
            &format!("{}/login", server.issuer),
            Some(body),
        )
        .await
    }
}

/// Signed in: the consent page (first visit) or the redirect with a code.
fn signed_in(r: &Resp) -> bool {
    (r.status == StatusCode::OK && r.body.contains("name=\"decision\""))
        || r.status == StatusCode::SEE_OTHER
}

fn limits(account: u32, address: u32) -> Limits {
    Limits {
        account_failures_free: account,
        address_failures_free: address,
        lockout_base: Duration::from_secs(30),
        lockout_max: Duration::from_secs(900),
        capacity: 1000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_lock_the_account_everywhere_but_not_other_accounts() {
    let server = Server::start(limits(3, 100)).await;
    server.add_user("alice", "alice-right").await;
    server.add_user("bob", "bob-right").await;
    let mut a = Browser::from("127.0.0.1");

    // Three wrong passwords: each shows the form again with a message, the third says when.
    let mut page = a.login_page(&server).await;
    for i in 1..=3 {
        page = a.login(&server, &page, "alice", "wrong").await;
        assert_eq!(page.status, StatusCode::OK, "failure {i}: {}", page.body);
        assert!(page.is_login_page());
        assert!(page.body.contains("Unknown username or wrong password."));
        assert_eq!(page.body.contains("try again in 30 seconds"), i == 3, "{i}");
    }

    // The fourth, with the right password, is refused: 429, Retry-After, the page says when,
    // and the form is there to try again later (the request was parked again).
    page = a.login(&server, &page, "alice", "alice-right").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    let wait: u64 = page.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "Retry-After {wait}");
    assert!(
        page.body.contains(&format!(
            "Too many failed sign-ins. Try again in {wait} seconds."
        )),
        "{}",
        page.body
    );
    assert!(page.is_login_page());
    assert!(!page.hidden("handle").is_empty());
    // Still refused on the re-parked form, for a name written differently too.
    page = a.login(&server, &page, " ALICE", "alice-right").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);

    // From another address, Alice's account stays locked; Bob signs in from there. Alice is
    // tried first: every check of the lock-out then comes before any further argon2 run (a
    // few seconds each in a debug build on a loaded machine), well within the 30 s it lasts.
    let mut b2 = Browser::from("127.0.0.2");
    let alice_page = b2.login_page(&server).await;
    let r = b2.login(&server, &alice_page, "alice", "alice-right").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.retry_after.is_some());
    let mut b = Browser::from("127.0.0.2");
    let bob_page = b.login_page(&server).await;
    let r = b.login(&server, &bob_page, "bob", "bob-right").await;
    assert!(signed_in(&r), "{} {}", r.status, r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_one_address_lock_that_address_only() {
    // The address limit (4) below the account limit (100): failures on four unknown names.
    let server = Server::start(limits(100, 4)).await;
    server.add_user("carol", "carol-right").await;
    let mut a = Browser::from("127.0.0.1");
    let mut page = a.login_page(&server).await;
    for name in ["nobody1", "nobody2", "nobody3", "nobody4"] {
        page = a.login(&server, &page, name, "guess").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Unknown username or wrong password."));
    }
    // From this address even Carol with her password must wait.
    page = a.login(&server, &page, "carol", "carol-right").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "{}", page.body);
    assert!(page.body.contains("Too many failed sign-ins. Try again in"));
    assert!(page.retry_after.is_some());
    // From another address she signs in at once.
    let mut b = Browser::from("127.0.0.2");
    let carol_page = b.login_page(&server).await;
    let r = b.login(&server, &carol_page, "carol", "carol-right").await;
    assert!(signed_in(&r), "{} {}", r.status, r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_clears_the_account_count() {
    let server = Server::start(limits(2, 100)).await;
    server.add_user("dave", "dave-right").await;
    let mut a = Browser::from("127.0.0.1");
    // One failure, a success, then two more failures are still free.
    let page = a.login_page(&server).await;
    let page = a.login(&server, &page, "dave", "wrong").await;
    assert_eq!(page.status, StatusCode::OK);
    let r = a.login(&server, &page, "dave", "dave-right").await;
    assert!(signed_in(&r), "{} {}", r.status, r.body);
    let mut b = Browser::from("127.0.0.1");
    let mut page = b.login_page(&server).await;
    for _ in 0..2 {
        page = b.login(&server, &page, "dave", "wrong").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    }
    let page = b.login(&server, &page, "dave", "dave-right").await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
}
