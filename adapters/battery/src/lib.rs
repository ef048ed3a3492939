//! One HTTP test battery for every adapter: the flows, the negative cases and the
//! conformance checks, over a real socket, with `openidconnect` as the relying party.
//!
//! An adapter's test implements [`Adapter`] (start its server for a [`World`]) and invokes
//! [`battery!`], which makes one `#[tokio::test]` per case. The battery speaks to both ways
//! of showing the login and consent pages: the provider's own forms (hidden `handle` and
//! `csrf`, posted to `{issuer}/login` and `{issuer}/consent`), and an application's pages
//! reached by a 303 with `?oidc_request=` whose forms post back to their own URL with
//! `username` and `password`, or `decision=allow|deny`. Either way the user is
//! [`USERNAME`] / [`PASSWORD`].
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow::{AuthMethod, Client, GrantType, MintedSecret, Provider, ResponseType};
use oidc_flow_store::{MemoryStore, Store};

pub mod cases;

/// The end-user every adapter's test app knows.
pub const USERNAME: &str = "alice";
/// Their password.
pub const PASSWORD: &str = "wonderland";
/// Their name, which the app's claims must give (`name`).
pub const NAME: &str = "Alice Liddell";
/// The redirect URI of the battery's client.
pub const REDIRECT: &str = "https://rp.example/cb";
/// Where the client may send the browser after logout.
pub const POST_LOGOUT: &str = "https://rp.example/bye";
/// The battery's client (confidential, `client_secret_basic`, consent asked).
pub const CLIENT_ID: &str = "battery-rp";
/// The battery's backend service: the client credentials grant only, with the same secret
/// as [`CLIENT_ID`].
pub const SERVICE_ID: &str = "battery-service";
/// The scope the service registered.
pub const SERVICE_SCOPE: &str = "api:read api:write";
/// The battery's resource server credential (introspection), with the same secret.
pub const RESOURCE_SERVER_ID: &str = "battery-api";
/// The resource it answers to (RFC 8707).
pub const RESOURCE: &str = "https://api.battery.example";

/// What an adapter's server serves: the provider (issuer with the path `/oidc`), the store
/// with the battery's client registered, and the address to listen on.
#[derive(Clone)]
pub struct World {
    pub provider: Arc<Provider>,
    pub store: Arc<MemoryStore>,
    pub issuer: String,
    pub addr: SocketAddr,
    pub client_secret: String,
}

/// An adapter under test.
pub trait Adapter {
    /// Starts serving `world` on `world.addr` (the issuer's endpoints under `/oidc`, the
    /// app's login and consent pages if it has them); the task ends with the test. A task
    /// that ends early (the port was taken) is retried on another port.
    fn serve(world: World) -> impl Future<Output = tokio::task::JoinHandle<()>> + Send;
}

/// One RS256 key per test binary (generating RSA keys is slow).
fn key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| SigningKey::generate(Algorithm::RS256, None).unwrap().1)
}

/// Starts `A`'s server for a new world and waits until it serves discovery.
pub async fn start<A: Adapter>() -> World {
    for attempt in 1..=5 {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let issuer = format!("http://{addr}/oidc");
        let key = SigningKey::from_pem(key_pem().as_bytes(), Algorithm::RS256, None).unwrap();
        let mut keys = KeySet::new();
        keys.add(key).unwrap();
        let provider = Provider::builder(&issuer, keys)
            .check_nonce_replay(true)
            .build()
            .unwrap();
        let store = Arc::new(MemoryStore::new());
        let client_secret = register(&store).await;
        let world = World {
            provider: Arc::new(provider),
            store,
            issuer,
            addr,
            client_secret,
        };
        let task = A::serve(world.clone()).await;
        let discovery = world.url("/.well-known/openid-configuration");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = try_get(&discovery).await
                && r.status == StatusCode::OK
            {
                return world;
            }
            if task.is_finished() {
                eprintln!("the server on {addr} ended before serving (attempt {attempt})");
                break;
            }
            assert!(Instant::now() < deadline, "no server on {addr} after 60 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("the server could not start in 5 attempts");
}

async fn try_get(url: &str) -> Result<Resp, hyper_util::client::legacy::Error> {
    Browser::new()
        .try_send(Method::GET, url, &[], Vec::new())
        .await
}

/// Registers [`CLIENT_ID`], [`SERVICE_ID`] and [`RESOURCE_SERVER_ID`]; returns their secret.
async fn register(store: &MemoryStore) -> String {
    let secret = MintedSecret::generate(&mut oidc_flow_store::driver::system_rng());
    let client = Client {
        client_id: CLIENT_ID.to_owned(),
        client_secret: None,
        client_secret_sha256: Some(secret.hash()),
        redirect_uris: vec![REDIRECT.to_owned()],
        response_types: vec![ResponseType::CODE],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scope: oidc_flow::Scope::parse("openid profile email offline_access").unwrap(),
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        id_token_signed_response_alg: None,
        require_auth_time: false,
        default_max_age: None,
        client_name: Some("The battery's RP".to_owned()),
        post_logout_redirect_uris: vec![POST_LOGOUT.to_owned()],
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        resource: None,
        access_token_format: oidc_flow::AccessTokenFormat::Opaque,
        jwks: None,
        jwks_uri: None,
        access_token_lifetime: None,
        id_token_lifetime: None,
    }
    .validate()
    .unwrap();
    store.add_client(&client).await.unwrap();
    let service = Client {
        client_id: SERVICE_ID.to_owned(),
        redirect_uris: Vec::new(),
        response_types: Vec::new(),
        grant_types: vec![GrantType::ClientCredentials],
        scope: oidc_flow::Scope::parse(SERVICE_SCOPE).unwrap(),
        client_name: None,
        post_logout_redirect_uris: Vec::new(),
        ..client
    }
    .validate()
    .unwrap();
    store.add_client(&service).await.unwrap();
    let resource_server = Client {
        client_id: RESOURCE_SERVER_ID.to_owned(),
        grant_types: Vec::new(),
        scope: oidc_flow::Scope::default(),
        resource: Some(RESOURCE.to_owned()),
        ..service
    }
    .validate()
    .unwrap();
    store.add_client(&resource_server).await.unwrap();
    secret.into_string()
}

impl World {
    /// A URL under the issuer.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// A URL on the server, outside the issuer's path.
    pub fn origin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `Authorization: Basic` of the battery's client.
    pub fn basic(&self) -> String {
        basic(CLIENT_ID, &self.client_secret)
    }
}

/// `Authorization: Basic` for an id and a secret.
pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    let raw = format!("{id}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Makes one `#[tokio::test]` per case of the battery for adapter `$adapter`.
#[macro_export]
macro_rules! battery {
    ($adapter:ty) => {
        $crate::battery!(@cases $adapter;
            discovery_and_jwks,
            code_flow_pkce_id_token_userinfo_then_prompt_none,
            reused_code_is_refused_and_revokes_its_tokens,
            refresh_rotates_and_reuse_revokes_the_family,
            unregistered_redirect_uri_is_an_error_page_never_a_redirect,
            unknown_client_is_an_error_page,
            consent_denied_is_access_denied,
            sealed_request_refused_when_edited_replayed_or_from_another_browser,
            logout_confirms_then_ends_the_session,
            token_endpoint_refusals,
            userinfo_refusals,
            prompt_login_asks_again_and_max_age,
            revocation_rfc_7009,
            client_credentials_rfc_6749_4_4,
            introspection_rfc_7662,
        );
    };
    (@cases $adapter:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let world = $crate::start::<$adapter>().await;
                $crate::cases::$case(&world).await;
            }
        )*
    };
}

// ------------------------------------------------------------------ the browser

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

    /// The parameters of a redirect's `Location` (query or fragment).
    pub fn redirect_params(&self) -> HashMap<String, String> {
        assert!(
            self.header("location").is_some(),
            "no Location: {}",
            self.body
        );
        self.response_params()
    }

    /// The parameters of an authorization response: a redirect's `Location` (query or
    /// fragment), or the hidden fields of a form_post page.
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
        hidden_inputs(&self.body).into_iter().collect()
    }

    /// The page the request waits for, and how it is shown.
    pub fn waits_for(&self) -> Option<Step> {
        if self.status == StatusCode::SEE_OTHER {
            let loc = self.header("location")?;
            if !loc.contains("oidc_request=") {
                return None;
            }
            let path = loc.split('?').next().unwrap_or_default();
            let step = if path.ends_with("/consent") {
                Step::AppConsent(loc.to_owned())
            } else {
                Step::AppLogin(loc.to_owned())
            };
            return Some(step);
        }
        if self.status == StatusCode::OK && self.body.contains("name=\"password\"") {
            return Some(Step::OwnLogin);
        }
        if self.status == StatusCode::OK && self.body.contains("name=\"decision\"") {
            return Some(Step::OwnConsent);
        }
        None
    }
}

/// A page an authorization waits for.
#[derive(Debug, Clone)]
pub enum Step {
    /// The application's login page at this URL (with `oidc_request`).
    AppLogin(String),
    /// The application's consent page at this URL.
    AppConsent(String),
    /// The provider's own login form (in the response body).
    OwnLogin,
    /// The provider's own consent form.
    OwnConsent,
}

/// The hidden inputs of a page's forms, in order.
pub fn hidden_inputs(body: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find("<input type=\"hidden\" name=\"") {
        rest = &rest[i + 27..];
        let name_end = rest.find('"').unwrap();
        let name = html_unescape(&rest[..name_end]);
        let vstart = rest.find("value=\"").unwrap() + 7;
        let vend = rest[vstart..].find('"').unwrap() + vstart;
        out.push((name, html_unescape(&rest[vstart..vend])));
        rest = &rest[vend..];
    }
    out
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
    client: HttpClient<HttpConnector, Full<Bytes>>,
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
            client: HttpClient::builder(TokioExecutor::new()).build_http(),
            cookies: HashMap::new(),
        }
    }

    /// As [`Browser::send`], with the transport's error instead of a panic.
    pub async fn try_send(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Resp, hyper_util::client::legacy::Error> {
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
            .await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        for sc in headers.get_all(header::SET_COOKIE) {
            let c = cookie::Cookie::parse(sc.to_str().unwrap().to_owned()).unwrap();
            if c.max_age() == Some(cookie::time::Duration::ZERO) {
                self.cookies.remove(c.name());
            } else {
                self.cookies
                    .insert(c.name().to_owned(), c.value().to_owned());
            }
        }
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Ok(Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Sends a request with our cookies and records `Set-Cookie`s.
    pub async fn send(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        self.try_send(method, url, headers, body).await.unwrap()
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

    /// Answers the login step `page` waits for with `username` / `password`.
    pub async fn sign_in(&mut self, world: &World, page: &Resp, username: &str, pw: &str) -> Resp {
        match page.waits_for() {
            Some(Step::AppLogin(location)) => {
                let url = absolute(world, &location);
                let shown = self.get(&url).await;
                assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
                let pairs = [("username", username), ("password", pw)];
                self.post_form(&url, &pairs, &[]).await
            }
            Some(Step::OwnLogin) => {
                let handle = page.form_value("handle").unwrap();
                let csrf = page.form_value("csrf").unwrap();
                let pairs = [
                    ("handle", handle.as_str()),
                    ("csrf", &csrf),
                    ("username", username),
                    ("password", pw),
                ];
                self.post_form(&world.url("/login"), &pairs, &[]).await
            }
            other => panic!(
                "expected a login step, got {other:?}: {} {}",
                page.status, page.body
            ),
        }
    }

    /// Answers the consent step `page` waits for with `allow` or `deny`.
    pub async fn decide(&mut self, world: &World, page: &Resp, decision: &str) -> Resp {
        match page.waits_for() {
            Some(Step::AppConsent(location)) => {
                let url = absolute(world, &location);
                let shown = self.get(&url).await;
                assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
                self.post_form(&url, &[("decision", decision)], &[]).await
            }
            Some(Step::OwnConsent) => {
                let handle = page.form_value("handle").unwrap();
                let csrf = page.form_value("csrf").unwrap();
                let pairs = [
                    ("handle", handle.as_str()),
                    ("csrf", &csrf),
                    ("decision", decision),
                ];
                self.post_form(&world.url("/consent"), &pairs, &[]).await
            }
            other => panic!(
                "expected a consent step, got {other:?}: {} {}",
                page.status, page.body
            ),
        }
    }

    /// Follows an authorization URL through login (if asked) and consent (if asked, with
    /// `decision`), to the answer for the client.
    pub async fn authorize_through(&mut self, world: &World, url: &str, decision: &str) -> Resp {
        let mut page = self.get(url).await;
        if matches!(page.waits_for(), Some(Step::AppLogin(_) | Step::OwnLogin)) {
            page = self.sign_in(world, &page, USERNAME, PASSWORD).await;
        }
        if matches!(
            page.waits_for(),
            Some(Step::AppConsent(_) | Step::OwnConsent)
        ) {
            page = self.decide(world, &page, decision).await;
        }
        page
    }
}

/// A `Location` made absolute against the server.
pub fn absolute(world: &World, location: &str) -> String {
    if location.starts_with("http") {
        location.to_owned()
    } else {
        world.origin_url(location)
    }
}

/// The async HTTP client openidconnect calls: pass `&rp_http`. One hyper-util client per
/// request (no pool outlives a test's runtime).
pub async fn rp_http(
    req: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, std::io::Error> {
    let (parts, body) = req.into_parts();
    let client: HttpClient<HttpConnector, Full<Bytes>> =
        HttpClient::builder(TokioExecutor::new()).build_http();
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
