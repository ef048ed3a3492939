//! The example app served on a loopback port, with the `openidconnect` crate as the relying
//! party: discovery, the code flow (PKCE, nonce) through the app's login and consent pages,
//! the token exchange, the ID token, UserInfo, then the app's `/api/me` with the access
//! token; a token without `profile` gets 403 insufficient_scope, a forged one 401.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{REDIRECT, World, query, quiet_config};
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse as _, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse as _,
};

/// openidconnect's HTTP client: the battery's (`oidc-flow-battery`).
use oidc_flow_battery::rp_http;

/// A response, read whole.
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn location(&self) -> &str {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        self.header("location").unwrap()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A user agent that keeps cookies and does not follow redirects.
struct Browser {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            cookies: HashMap::new(),
        }
    }

    async fn send(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Resp {
        let url = if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        };
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
            req = req.header(*k, *v);
        }
        let resp = self
            .client
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        for sc in headers.get_all(header::SET_COOKIE) {
            let c = rocket::http::Cookie::parse(sc.to_str().unwrap().to_owned()).unwrap();
            if c.value().is_empty() {
                self.cookies.remove(c.name());
            } else {
                self.cookies
                    .insert(c.name().to_owned(), c.value().to_owned());
            }
        }
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&mut self, url: &str) -> Resp {
        self.send(Method::GET, url, &[], String::new()).await
    }

    async fn post_form(&mut self, url: &str, pairs: &[(&str, &str)]) -> Resp {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.send(
            Method::POST,
            url,
            &[("content-type", "application/x-www-form-urlencoded")],
            body,
        )
        .await
    }

    async fn bearer(&mut self, url: &str, token: &str) -> Resp {
        let auth = format!("Bearer {token}");
        self.send(Method::GET, url, &[("authorization", &auth)], String::new())
            .await
    }
}

/// A free loopback port. Rocket 0.5 does not tell which port it bound for port 0, and the
/// issuer (hence the port) must be known before the app is built.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openidconnect_code_flow_then_api_me() {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let issuer = format!("{base}/oidc");
    let world = World::new(&issuer).await;
    let config = rocket::Config {
        address: std::net::Ipv4Addr::LOCALHOST.into(),
        port,
        // Keep-alive connections of the test's clients would hold the default 2 s grace.
        shutdown: rocket::config::Shutdown {
            grace: 0,
            mercy: 0,
            ..Default::default()
        },
        ..quiet_config()
    };
    let rocket = world.rocket(config).ignite().await.unwrap();
    let shutdown = rocket.shutdown();
    let server = tokio::spawn(rocket.launch());
    // Until Rocket listens: a deadline (not a number of tries, which a loaded machine can
    // use up before liftoff), and a launch that ended (e.g. the port was taken) fails at once.
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if server.is_finished() {
            panic!(
                "Rocket stopped before listening on {addr}: {:?}",
                server.await
            );
        }
        assert!(
            Instant::now() < deadline,
            "Rocket did not listen on {addr} within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Discovery, then the client openidconnect builds from it.
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).unwrap(), &rp_http)
            .await
            .unwrap();
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new("demo".to_owned()),
        Some(ClientSecret::new(world.demo_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());

    // The code flow through the app's pages.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut b = Browser::new(&base);
    let start = b.get(url.as_str()).await;
    let login = start.location().to_owned();
    assert!(login.starts_with("/login?oidc_request="), "{login}");
    let page = b.get(&login).await;
    assert_eq!(page.status, StatusCode::OK);
    let logged_in = b
        .post_form(&login, &[("username", "alice"), ("password", "wonderland")])
        .await;
    let consent = logged_in.location().to_owned();
    assert!(consent.starts_with("/consent?oidc_request="), "{consent}");
    let done = b.post_form(&consent, &[("decision", "allow")]).await;
    let p = query(done.location());
    assert!(done.location().starts_with(REDIRECT));
    assert_eq!(p.get("state"), Some(state.secret()));
    assert_eq!(p.get("iss"), Some(&issuer));

    // The exchange, and the ID token as openidconnect verifies it.
    let tokens = rp
        .exchange_code(AuthorizationCode::new(p["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http)
        .await
        .unwrap();
    let claims = tokens
        .id_token()
        .expect("an ID token")
        .claims(&rp.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(claims.issuer().as_str(), issuer);
    assert_eq!(claims.subject().as_str(), "u-alice");

    // UserInfo: the app's claims.
    let info: CoreUserInfoClaims = rp
        .user_info(
            tokens.access_token().clone(),
            Some(claims.subject().clone()),
        )
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.com"));
    assert_eq!(
        info.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("Alice Liddell")
    );

    // The app's own API with the access token.
    let me = b.bearer("/api/me", tokens.access_token().secret()).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    assert_eq!(me.json()["sub"], "u-alice");
    assert_eq!(me.json()["name"], "Alice Liddell");

    // A token without `profile` (prompt=none: the session and consent answer at once).
    let (url, state, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_prompt(CoreAuthPrompt::None)
        .url();
    let quiet = b.get(url.as_str()).await;
    let p = query(quiet.location());
    assert_eq!(p.get("state"), Some(state.secret()), "{p:?}");
    let narrow = rp
        .exchange_code(AuthorizationCode::new(p["code"].clone()))
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();
    let refused = b.bearer("/api/me", narrow.access_token().secret()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let challenge = refused.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"profile\""), "{challenge}");
    assert_eq!(refused.json()["error"], "insufficient_scope");

    // A forged token.
    let forged = b.bearer("/api/me", "forged-0123456789abcdef").await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert!(
        forged
            .header("www-authenticate")
            .unwrap()
            .contains("error=\"invalid_token\"")
    );

    shutdown.notify();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}
