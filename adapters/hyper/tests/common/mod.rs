//! Shared fixtures of the HTTP tests: a server on a loopback port over a temporary SQLite
//! file, and a small cookie-keeping browser that can fill in our login and consent forms.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oidc_flow_hyper::App;
use oidc_flow_hyper::setup::{self, NewClient};
use oidc_flow_store::SqliteStore;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running provider on 127.0.0.1 with its own SQLite file.
pub struct TestServer {
    /// The issuer, e.g. `http://127.0.0.1:40123`.
    pub issuer: String,
    /// The listening address.
    pub addr: SocketAddr,
    /// The store the server uses (for setup and inspection).
    pub store: Arc<SqliteStore>,
    /// The database URL (to restart on the same file).
    pub database: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server on a fresh temporary database.
    pub async fn start() -> Self {
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
        let store = Arc::new(SqliteStore::open(database).await.unwrap());
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

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The value of hidden input `name` in an HTML form.
    pub fn form_value(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&needle)? + needle.len();
        let end = self.body[start..].find('"')? + start;
        Some(html_unescape(&self.body[start..end]))
    }

    /// The parameters of a redirect (`Location` query or fragment) or a form_post page.
    pub fn response_params(&self) -> HashMap<String, String> {
        if let Some(loc) = self.header("location") {
            let url = url::Url::parse(loc).unwrap();
            let part = url
                .fragment()
                .map(str::to_owned)
                .or_else(|| url.query().map(str::to_owned))
                .unwrap_or_default();
            return url::form_urlencoded::parse(part.as_bytes())
                .into_owned()
                .collect();
        }
        let mut out = HashMap::new();
        let mut rest = self.body.as_str();
        while let Some(i) = rest.find("<input type=\"hidden\" name=\"") {
            rest = &rest[i + 27..];
            let name_end = rest.find('"').unwrap();
            let name = html_unescape(&rest[..name_end]);
            let vstart = rest.find("value=\"").unwrap() + 7;
            let vend = rest[vstart..].find('"').unwrap() + vstart;
            out.insert(name, html_unescape(&rest[vstart..vend]));
            rest = &rest[vend..];
        }
        out
    }
}

fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A user agent that keeps cookies and does not follow redirects.
pub struct Browser {
    client: Client<HttpConnector, Full<Bytes>>,
    pub cookies: HashMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    /// A browser with no cookies.
    pub fn new() -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            cookies: HashMap::new(),
        }
    }

    /// Sends a request with our cookies and records `Set-Cookie`s.
    pub async fn send(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(url);
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header(header::COOKIE, c.join("; "));
        }
        for (k, v) in headers {
            req = req.header(*k, HeaderValue::from_str(v).unwrap());
        }
        let resp = self
            .client
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        for sc in headers.get_all(header::SET_COOKIE) {
            let c = cookie::Cookie::parse(sc.to_str().unwrap().to_owned()).unwrap();
            self.cookies
                .insert(c.name().to_owned(), c.value().to_owned());
        }
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// GET `url`.
    pub async fn get(&mut self, url: &str) -> Resp {
        self.send(Method::GET, url, &[], Vec::new()).await
    }

    /// POST a form to `url`.
    pub async fn post_form(
        &mut self,
        url: &str,
        pairs: &[(&str, &str)],
        extra_headers: &[(&str, &str)],
    ) -> Resp {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        headers.extend_from_slice(extra_headers);
        self.send(Method::POST, url, &headers, body.into_bytes())
            .await
    }

    /// Answers a login page with `username`/`password` (fails the test if `page` is not one).
    pub async fn login(
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
    pub async fn login_at(
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
    pub async fn consent(&mut self, server: &TestServer, page: &Resp, decision: &str) -> Resp {
        self.consent_at(&server.url("/consent"), page, decision)
            .await
    }

    /// As [`Browser::consent`], for a server that is not a [`TestServer`]: its `/consent` URL.
    pub async fn consent_at(&mut self, consent_url: &str, page: &Resp, decision: &str) -> Resp {
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
    pub async fn authorize(
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

/// The async HTTP client openidconnect / oauth2 5 call (their `AsyncHttpClient` is implemented
/// for any `Fn(HttpRequest) -> impl Future<Output = Result<HttpResponse, E>>`): pass `&rp_http`.
/// Carried by hyper-util's legacy client, one per request (no pool outlives a test's runtime).
pub async fn rp_http(
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, std::io::Error> {
    let (parts, body) = req.into_parts();
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .request(Request::from_parts(parts, Full::new(Bytes::from(body))))
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok(hyper::Response::from_parts(parts, body.to_vec()))
}
