//! Shared fixtures of the HTTP tests: a server on a loopback port over a temporary SQLite
//! file (or, with `OIDC_FLOW_TEST_BACKEND=postgres`, a fresh PostgreSQL database), and a
//! small cookie-keeping browser that can fill in our login and consent forms.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::StatusCode;
use oidc_flow_hyper::App;
use oidc_flow_hyper::setup::{self, NewClient};
use oidc_flow_store::DatabaseStore;
use oidc_flow_store::testing;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running provider on 127.0.0.1 with its own SQLite file.
pub struct TestServer {
    /// The issuer, e.g. `http://127.0.0.1:40123`.
    pub issuer: String,
    /// The listening address.
    pub addr: SocketAddr,
    /// The store the server uses (for setup and inspection).
    pub store: Arc<DatabaseStore>,
    /// The database URL (to restart on the same file).
    pub database: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server on a fresh temporary database.
    pub async fn start() -> Self {
        let (database, dir) = fresh_database().await;
        let mut s = Self::start_on(&database, None).await;
        s._dir = dir;
        s
    }

    /// Starts a server on a fresh SQLite file whatever the test backend (for tests that
    /// look into the file).
    pub async fn start_sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("oidc.sqlite").display());
        let mut s = Self::start_on(&database, None).await;
        s._dir = Some(dir);
        s
    }

    /// Starts a server on `database`, on `addr` if given (to restart on the same port).
    pub async fn start_on(database: &str, addr: Option<SocketAddr>) -> Self {
        let listener =
            tokio::net::TcpListener::bind(addr.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap()))
                .await
                .unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("http://{addr}");
        let store = Arc::new(testing::open_test_store(database).await.unwrap());
        let provider = setup::provider(&*store, &issuer).await.unwrap();
        let app = Arc::new(App::new(provider, store.clone()));
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            oidc_flow_hyper::serve(listener, app, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        Self {
            issuer,
            addr,
            store,
            database: database.to_owned(),
            shutdown: Some(tx),
            task: Some(task),
            _dir: None,
        }
    }

    /// Stops the server (graceful shutdown) and closes the database; keeps the temp dir.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        self.store.close().await;
    }

    /// A URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Registers a client; returns its RFC 7591 registration (with `client_secret`).
    pub async fn add_client(&self, new: NewClient) -> serde_json::Value {
        setup::add_client(&*self.store, new).await.unwrap()
    }

    /// A confidential code-flow client redirecting to `https://rp.example/cb`.
    pub async fn code_client(&self) -> Registered {
        Registered::from(
            self.add_client(NewClient {
                redirect_uris: vec![REDIRECT.into()],
                ..NewClient::default()
            })
            .await,
        )
    }

    /// Adds a user with password `pw` and claims (a JSON object) .
    pub async fn add_user(&self, username: &str, pw: &str, claims: &str) -> String {
        setup::add_user(&*self.store, username, pw, None, None, Some(claims))
            .await
            .unwrap()
            .subject
    }
}

/// The URL of a new, empty database: a SQLite file in a temporary directory (returned too,
/// to keep it alive), or a PostgreSQL database when `OIDC_FLOW_TEST_BACKEND=postgres`.
pub async fn fresh_database() -> (String, Option<tempfile::TempDir>) {
    if testing::http_tests_on_postgres() {
        let url = testing::fresh_postgres_database("http")
            .await
            .expect("OIDC_FLOW_TEST_BACKEND=postgres needs OIDC_FLOW_TEST_POSTGRES");
        (url, None)
    } else {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("oidc.sqlite").display());
        (url, Some(dir))
    }
}

/// The redirect URI of test clients.
pub const REDIRECT: &str = "https://rp.example/cb";

/// A registered client's id and secret.
#[derive(Debug, Clone)]
pub struct Registered {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub registration: serde_json::Value,
}

impl From<serde_json::Value> for Registered {
    fn from(v: serde_json::Value) -> Self {
        Self {
            client_id: v["client_id"].as_str().unwrap().to_owned(),
            client_secret: v["client_secret"].as_str().map(str::to_owned),
            registration: v,
        }
    }
}

impl Registered {
    /// `Authorization: Basic ...` for this client (id and secret form-urlencoded first).
    pub fn basic(&self) -> String {
        use base64::Engine as _;
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let raw = format!(
            "{}:{}",
            enc(&self.client_id),
            enc(self.client_secret.as_deref().unwrap_or_default())
        );
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// An HTTP response read whole, a cookie-keeping browser and openidconnect's HTTP client:
/// the battery's (`oidc-flow-battery`), shared by every adapter's tests.
#[allow(unused_imports)] // each test binary uses a part
pub use oidc_flow_battery::{Browser, Resp, rp_http};

/// The provider's own login and consent forms, filled in by a [`Browser`].
#[allow(async_fn_in_trait)]
pub trait OwnPages {
    /// Answers a login page with `username`/`password` (fails the test if `page` is not one).
    async fn login(
        &mut self,
        server: &TestServer,
        page: &Resp,
        username: &str,
        password: &str,
    ) -> Resp;
    /// As [`OwnPages::login`], for a server that is not a [`TestServer`]: its `/login` URL.
    async fn login_at(
        &mut self,
        login_url: &str,
        page: &Resp,
        username: &str,
        password: &str,
    ) -> Resp;
    /// Answers a consent page with `allow` or `deny`.
    async fn consent(&mut self, server: &TestServer, page: &Resp, decision: &str) -> Resp;
    /// As [`OwnPages::consent`], for a server that is not a [`TestServer`].
    async fn consent_at(&mut self, consent_url: &str, page: &Resp, decision: &str) -> Resp;
    /// Follows an authorization URL through login (if asked) and consent (if asked, allowing).
    async fn authorize(
        &mut self,
        server: &TestServer,
        url: &str,
        username: &str,
        password: &str,
    ) -> Resp;
}

impl OwnPages for Browser {
    /// Answers a login page with `username`/`password` (fails the test if `page` is not one).
    async fn login(
        &mut self,
        server: &TestServer,
        page: &Resp,
        username: &str,
        password: &str,
    ) -> Resp {
        self.login_at(&server.url("/login"), page, username, password)
            .await
    }

    /// As [`Browser::login`], for a server that is not a [`TestServer`]: its `/login` URL.
    async fn login_at(
        &mut self,
        login_url: &str,
        page: &Resp,
        username: &str,
        password: &str,
    ) -> Resp {
        assert!(
            page.body.contains("name=\"password\""),
            "expected the login page, got {} {}",
            page.status,
            page.body
        );
        let handle = page.form_value("handle").unwrap();
        let csrf = page.form_value("csrf").unwrap();
        self.post_form(
            login_url,
            &[
                ("handle", &handle),
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
            ],
            &[],
        )
        .await
    }

    /// Answers a consent page with `allow` or `deny`.
    async fn consent(&mut self, server: &TestServer, page: &Resp, decision: &str) -> Resp {
        self.consent_at(&server.url("/consent"), page, decision)
            .await
    }

    /// As [`Browser::consent`], for a server that is not a [`TestServer`]: its `/consent` URL.
    async fn consent_at(&mut self, consent_url: &str, page: &Resp, decision: &str) -> Resp {
        assert!(
            page.body.contains("name=\"decision\""),
            "expected the consent page, got {} {}",
            page.status,
            page.body
        );
        let handle = page.form_value("handle").unwrap();
        let csrf = page.form_value("csrf").unwrap();
        self.post_form(
            consent_url,
            &[("handle", &handle), ("csrf", &csrf), ("decision", decision)],
            &[],
        )
        .await
    }

    /// Follows an authorization URL through login (if asked) and consent (if asked, allowing).
    async fn authorize(
        &mut self,
        server: &TestServer,
        url: &str,
        username: &str,
        password: &str,
    ) -> Resp {
        let mut page = self.get(url).await;
        if page.status == StatusCode::OK && page.body.contains("name=\"password\"") {
            page = self.login(server, &page, username, password).await;
        }
        if page.status == StatusCode::OK && page.body.contains("name=\"decision\"") {
            page = self.consent(server, &page, "allow").await;
        }
        page
    }
}
