#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
//! The OpenID conformance suite's Basic, Implicit, Hybrid, Config and Form Post OP plans
//! (CONFORMANCE.md), end to end against the running server over HTTP: a `TestServer` on a
//! loopback port, the `Browser` fixture as the user agent (login and consent pages, cookies),
//! and the `openidconnect` crate as the relying party (discovery, authorization URLs, token
//! requests, ID token verification, UserInfo) over hyper-util (`common::rp_http`).
//!
//! One test per module (`-` → `_`), prefixed by plan (`basic_`, `implicit_`, `hybrid_`,
//! `config_`, `form_post_`). Modules that repeat across plans unchanged are run once, in the
//! Basic plan; each other plan runs its happy flow and its own modules.
mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use hyper::{Method, StatusCode};
use oidc_flow_hyper::setup::NewClient;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreErrorResponseType,
    CoreIdToken, CoreIdTokenClaims, CoreJsonWebKeySet, CoreProviderMetadata, CoreResponseType,
    CoreTokenResponse, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthType, AuthenticationContextClass, AuthorizationCode,
    AuthorizationCodeHash, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, LanguageTag, LoginHint, Nonce, OAuth2TokenResponse as _,
    PkceCodeChallenge, RedirectUrl, RequestTokenError, Scope, TokenResponse as _,
};
use serde_json::Value;

// ---- fixtures ---------------------------------------------------------------------------------

/// openidconnect's client as built from our discovery document.
type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

const USER: &str = "alice";
const PW: &str = "pw-alice";

/// Every standard claim group, plus one no scope releases.
const ALICE: &str = r#"{
    "name": "Alice Liddell",
    "given_name": "Alice",
    "family_name": "Liddell",
    "email": "alice@example.com",
    "email_verified": true,
    "phone_number": "+1 555 0100",
    "phone_number_verified": false,
    "address": {"street_address": "1 Rabbit Hole", "locality": "Oxford", "country": "UK"},
    "birthdate": "1852-05-04",
    "updated_at": 1700000000,
    "favourite_colour": "blue"
}"#;

const PROFILE: [&str; 6] = [
    "birthdate",
    "family_name",
    "given_name",
    "name",
    "preferred_username",
    "updated_at",
];

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// One JWS segment as JSON.
fn segment(jwt: &str, i: usize) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS: {jwt}");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[i]).unwrap()).unwrap()
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

/// A provider with alice and one registered client, a browser, and openidconnect as the RP.
struct Op {
    server: TestServer,
    client: Registered,
    rp: Rp,
    b: Browser,
    sub: String,
    jwks: Value,
}

impl Op {
    /// A client_secret_basic client for `response_types` (`code` when empty).
    async fn start(response_types: &[&str]) -> Self {
        Self::start_with(NewClient {
            redirect_uris: vec![REDIRECT.into()],
            response_types: response_types.iter().map(|s| (*s).to_owned()).collect(),
            ..NewClient::default()
        })
        .await
    }

    /// As [`Op::start`], without registering the user: for requests that never reach a login
    /// (each user costs an argon2 hash).
    async fn without_user(response_types: &[&str]) -> Self {
        Self::build(
            NewClient {
                redirect_uris: vec![REDIRECT.into()],
                response_types: response_types.iter().map(|s| (*s).to_owned()).collect(),
                ..NewClient::default()
            },
            false,
        )
        .await
    }

    async fn start_with(new: NewClient) -> Self {
        Self::build(new, true).await
    }

    async fn build(new: NewClient, with_user: bool) -> Self {
        let server = TestServer::start().await;
        let client = Registered::from(server.add_client(new).await);
        let sub = if with_user {
            server.add_user(USER, PW, ALICE).await
        } else {
            String::new()
        };
        let rp = rp_for(&server, &client).await;
        let mut b = Browser::new();
        let jwks = b.get(&server.url("/jwks")).await.json();
        Self {
            server,
            client,
            rp,
            b,
            sub,
            jwks,
        }
    }

    /// An authorization URL built by hand: response_type, client_id, redirect_uri, `extra`.
    fn url(&self, response_type: &str, extra: &str) -> String {
        format!(
            "{}?response_type={}&client_id={}&redirect_uri={}{extra}",
            self.server.url("/authorize"),
            enc(response_type),
            self.client.client_id,
            enc(REDIRECT)
        )
    }

    /// Follows `url` through login and consent; requires a successful redirect (or form_post
    /// page) and returns its parameters.
    async fn front(&mut self, url: &str) -> HashMap<String, String> {
        let resp = self.b.authorize(&self.server, url, USER, PW).await;
        success_params(&resp)
    }

    /// The code flow up to the token response (openidconnect exchanges the code).
    async fn code_flow(&mut self, extra: &str) -> CoreTokenResponse {
        let url = self.url("code", extra);
        let p = self.front(&url).await;
        self.exchange(&p["code"]).await
    }

    async fn exchange(&self, code: &str) -> CoreTokenResponse {
        let t = self
            .rp
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .unwrap()
            .request_async(&rp_http)
            .await
            .unwrap_or_else(|e| panic!("token request failed: {e:?}"));
        assert_eq!(
            t.token_type(),
            &openidconnect::core::CoreTokenType::Bearer,
            "Bearer tokens"
        );
        t
    }

    /// Verifies an ID token with openidconnect's `id_token_verifier()` (signature against our
    /// JWKS, iss, aud, exp, nonce) and checks the rest the suite checks: RS256 with a `kid`
    /// of the JWKS, a single audience, our user's `sub`, sane iat/exp/auth_time. Returns the
    /// verified claims and the raw payload.
    fn verify(&self, jwt: &str, nonce: Option<&str>) -> (CoreIdTokenClaims, Value) {
        let token: CoreIdToken = jwt.parse().unwrap();
        let verifier = self.rp.id_token_verifier();
        let claims = match nonce {
            Some(n) => token.claims(&verifier, &Nonce::new(n.to_owned())),
            None => token.claims(&verifier, |n: Option<&Nonce>| match n {
                None => Ok(()),
                Some(n) => Err(format!("unexpected nonce {}", n.secret())),
            }),
        }
        .unwrap_or_else(|e| panic!("ID token rejected by openidconnect: {e}"))
        .clone();
        assert_eq!(claims.issuer().as_str(), self.server.issuer);
        let aud: Vec<&str> = claims.audiences().iter().map(|a| a.as_str()).collect();
        assert_eq!(
            aud,
            [self.client.client_id.as_str()],
            "aud is the client alone"
        );
        assert_eq!(claims.subject().as_str(), self.sub);
        let now = now_secs();
        let iat = claims.issue_time().timestamp();
        let exp = claims.expiration().timestamp();
        assert!((now - 60..=now + 5).contains(&iat), "iat {iat}, now {now}");
        assert!(exp > now && exp - iat <= 24 * 3600, "exp {exp}, iat {iat}");
        if let Some(auth_time) = claims.auth_time() {
            let at = auth_time.timestamp();
            assert!(at <= iat && at > now - 3600, "auth_time {at}, iat {iat}");
        }
        let header = segment(jwt, 0);
        assert_eq!(header["alg"], "RS256", "RS256 by default");
        let kid = header["kid"].as_str().expect("a kid in the header");
        assert!(
            self.jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == kid && k["kty"] == "RSA"),
            "kid {kid} is an RSA key of /jwks"
        );
        let payload = segment(jwt, 1);
        assert!(
            payload.get("azp").is_none(),
            "no azp with a single audience"
        );
        if let Some(u) = payload.get("updated_at") {
            assert!(u.is_i64(), "updated_at is a number");
        }
        (claims, payload)
    }

    /// Checks `at_hash` (and `c_hash` when `code` is `Some`) of an ID token with
    /// openidconnect's hash helpers: equal to the hash of the value, absent when that is `None`.
    fn check_hashes(&self, jwt: &str, access_token: Option<&str>, code: Option<Option<&str>>) {
        let token: CoreIdToken = jwt.parse().unwrap();
        let verifier = self.rp.id_token_verifier();
        let claims = token
            .claims(&verifier, |_: Option<&Nonce>| Ok::<(), String>(()))
            .unwrap();
        let alg = token.signing_alg().unwrap();
        let key = token.signing_key(&verifier).unwrap();
        let at_hash = access_token.map(|at| {
            AccessTokenHash::from_token(&AccessToken::new(at.to_owned()), alg, key).unwrap()
        });
        assert_eq!(claims.access_token_hash(), at_hash.as_ref(), "at_hash");
        if let Some(code) = code {
            let c_hash = code.map(|c| {
                AuthorizationCodeHash::from_code(&AuthorizationCode::new(c.to_owned()), alg, key)
                    .unwrap()
            });
            assert_eq!(claims.code_hash(), c_hash.as_ref(), "c_hash");
        }
    }

    /// UserInfo through openidconnect (GET with the bearer header), `sub` checked.
    async fn rp_userinfo(&self, access_token: &str) -> CoreUserInfoClaims {
        self.rp
            .user_info(
                AccessToken::new(access_token.to_owned()),
                Some(openidconnect::SubjectIdentifier::new(self.sub.clone())),
            )
            .unwrap()
            .request_async(&rp_http)
            .await
            .unwrap_or_else(|e| panic!("userinfo failed: {e:?}"))
    }

    /// UserInfo by GET with the bearer header: status and raw JSON.
    async fn userinfo_get(&mut self, access_token: &str) -> Resp {
        let auth = format!("Bearer {access_token}");
        self.b
            .send(
                Method::GET,
                &self.server.url("/userinfo"),
                &[("authorization", &auth)],
                Vec::new(),
            )
            .await
    }

    /// A raw token request authenticated as `client` with client_secret_basic.
    async fn token_raw(&mut self, client: &Registered, form: &[(&str, &str)]) -> Resp {
        let auth = client.basic();
        self.b
            .post_form(
                &self.server.url("/token"),
                form,
                &[("authorization", &auth)],
            )
            .await
    }

    async fn stop(mut self) {
        self.server.stop().await;
    }
}

/// openidconnect's relying party for `client`, configured by discovery over HTTP.
async fn rp_for(server: &TestServer, client: &Registered) -> Rp {
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(server.issuer.clone()).unwrap(),
        &rp_http,
    )
    .await
    .unwrap_or_else(|e| panic!("discovery failed: {e:?}"));
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.client_id.clone()),
        client.client_secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());
    if client.registration["token_endpoint_auth_method"] == "client_secret_post" {
        rp.set_auth_type(AuthType::RequestBody)
    } else {
        rp
    }
}

/// The parameters of a successful authorization response: a 303 to the redirect URI, or the
/// form_post page, without `error`.
fn success_params(resp: &Resp) -> HashMap<String, String> {
    match resp.header("location") {
        Some(loc) => {
            assert_eq!(resp.status, StatusCode::SEE_OTHER);
            assert!(loc.starts_with(REDIRECT), "redirects to the client: {loc}");
        }
        None => assert!(
            resp.status == StatusCode::OK && resp.body.contains("<form method=\"post\""),
            "expected a redirect or the form_post page, got {} {}",
            resp.status,
            resp.body
        ),
    }
    let p = resp.response_params();
    assert!(!p.contains_key("error"), "authorization failed: {p:?}");
    p
}

/// An error response redirected to the client (query or fragment per `fragment`).
fn error_redirect(resp: &Resp, fragment: bool) -> HashMap<String, String> {
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.body);
    let loc = resp.header("location").unwrap();
    let sep = if fragment { '#' } else { '?' };
    assert!(loc.starts_with(&format!("{REDIRECT}{sep}")), "{loc}");
    let p = resp.response_params();
    assert!(p.contains_key("error"), "{p:?}");
    assert!(
        !p.contains_key("code") && !p.contains_key("id_token") && !p.contains_key("access_token")
    );
    p
}

fn is_login_page(r: &Resp) -> bool {
    r.status == StatusCode::OK && r.body.contains("name=\"password\"")
}

// ---- Basic OP ---------------------------------------------------------------------------------

#[tokio::test]
async fn basic_oidcc_server() {
    let mut op = Op::start(&[]).await;
    let (url, csrf, nonce) = op
        .rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url();
    let resp = op.b.authorize(&op.server, url.as_str(), USER, PW).await;
    assert!(
        resp.header("location")
            .unwrap()
            .starts_with(&format!("{REDIRECT}?")),
        "code is returned in the query"
    );
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    let p = success_params(&resp);
    assert_eq!(&p["state"], csrf.secret());
    assert_eq!(p["iss"], op.server.issuer);
    assert!(!p.contains_key("id_token") && !p.contains_key("access_token"));
    assert!(p["code"].len() >= 43, "a code of 256 bits");
    let t = op.exchange(&p["code"]).await;
    assert!(t.expires_in().is_some_and(|d| d.as_secs() > 0));
    let jwt = t.id_token().expect("an ID token").to_string();
    let (claims, _) = op.verify(&jwt, Some(nonce.secret()));
    op.check_hashes(&jwt, Some(t.access_token().secret()), Some(None));
    let ui = op.rp_userinfo(t.access_token().secret()).await;
    assert_eq!(
        ui.subject(),
        claims.subject(),
        "UserInfo sub equals the ID token's"
    );
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_response_type_missing() {
    let mut op = Op::without_user(&[]).await;
    let url = format!(
        "{}?client_id={}&redirect_uri={}&scope=openid&state=st&nonce=n",
        op.server.url("/authorize"),
        op.client.client_id,
        enc(REDIRECT)
    );
    let resp = op.b.get(&url).await;
    // The suite accepts an error page or an error redirect; this server redirects (the
    // client and redirect URI are known), in the query since no response type says else.
    let p = error_redirect(&resp, false);
    assert_eq!(p["error"], "invalid_request", "{p:?}");
    assert_eq!(p["state"], "st");
    assert!(p["error_description"].contains("response_type"), "{p:?}");
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_idtoken_signature() {
    // The client registers no id_token_signed_response_alg: the default, RS256.
    let mut op = Op::start(&[]).await;
    let t = op.code_flow("&scope=openid&state=s&nonce=n-sig").await;
    let jwt = t.id_token().unwrap().to_string();
    let header = segment(&jwt, 0);
    assert_eq!(header["alg"], "RS256");
    let kid = header["kid"].as_str().expect("a kid");
    let key = op.jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} not in /jwks"))
        .clone();
    assert_eq!(key["kty"], "RSA");
    assert!(
        key.get("d").is_none() && key.get("p").is_none(),
        "public only"
    );
    // And the signature checks out against /jwks (openidconnect).
    op.verify(&jwt, Some("n-sig"));
    op.stop().await;
}

async fn userinfo_flow() -> (Op, String) {
    let mut op = Op::start(&[]).await;
    let t = op.code_flow("&scope=openid+email&state=s").await;
    let at = t.access_token().secret().clone();
    (op, at)
}

#[tokio::test]
async fn basic_oidcc_userinfo_get() {
    let (mut op, at) = userinfo_flow().await;
    let ui = op.userinfo_get(&at).await;
    assert_eq!(ui.status, 200, "{}", ui.body);
    assert_eq!(ui.header("cache-control"), Some("no-store"));
    assert!(
        ui.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(ui.json()["sub"], op.sub.as_str());
    assert_eq!(ui.json()["email"], "alice@example.com");
    let claims = op.rp_userinfo(&at).await;
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("alice@example.com")
    );
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_userinfo_post_header() {
    let (mut op, at) = userinfo_flow().await;
    let auth = format!("Bearer {at}");
    let ui =
        op.b.send(
            Method::POST,
            &op.server.url("/userinfo"),
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await;
    assert_eq!(ui.status, 200, "{}", ui.body);
    assert_eq!(ui.json()["sub"], op.sub.as_str());
    assert_eq!(ui.json()["email"], "alice@example.com");
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_userinfo_post_body() {
    let (mut op, at) = userinfo_flow().await;
    let ui =
        op.b.post_form(&op.server.url("/userinfo"), &[("access_token", &at)], &[])
            .await;
    assert_eq!(ui.status, 200, "{}", ui.body);
    assert_eq!(ui.json()["sub"], op.sub.as_str());
    assert_eq!(ui.json()["email"], "alice@example.com");
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_ensure_request_without_nonce_succeeds_for_code_flow() {
    let mut op = Op::start(&[]).await;
    let t = op.code_flow("&scope=openid&state=s").await;
    let (_, raw) = op.verify(&t.id_token().unwrap().to_string(), None);
    assert!(raw.get("nonce").is_none());
    op.stop().await;
}

/// UserInfo's claims for `scope` (raw JSON), after checking the granted scope.
async fn scope_claims(scope: &str) -> Value {
    let mut op = Op::start(&[]).await;
    let t = op
        .code_flow(&format!("&scope={}&state=s&nonce=n", enc(scope)))
        .await;
    let granted: Vec<&str> = t
        .scopes()
        .map(|s| s.iter().map(|s| s.as_str()).collect())
        .unwrap_or_default();
    assert_eq!(granted.join(" "), scope);
    let ui = op.userinfo_get(t.access_token().secret()).await;
    assert_eq!(ui.status, 200, "{}", ui.body);
    let v = ui.json();
    assert_eq!(v["sub"], op.sub.as_str());
    op.stop().await;
    v
}

#[tokio::test]
async fn basic_oidcc_scope_profile() {
    let ui = scope_claims("openid profile").await;
    let mut expected = PROFILE.to_vec();
    expected.push("sub");
    expected.sort_unstable();
    assert_eq!(keys(&ui), expected);
    assert_eq!(ui["name"], "Alice Liddell");
    assert_eq!(ui["preferred_username"], USER);
    assert!(ui["updated_at"].is_i64());
}

#[tokio::test]
async fn basic_oidcc_scope_email() {
    let ui = scope_claims("openid email").await;
    assert_eq!(keys(&ui), ["email", "email_verified", "sub"]);
    assert_eq!(ui["email_verified"], true);
}

#[tokio::test]
async fn basic_oidcc_scope_address() {
    let ui = scope_claims("openid address").await;
    assert_eq!(keys(&ui), ["address", "sub"]);
    assert_eq!(ui["address"]["locality"], "Oxford");
}

#[tokio::test]
async fn basic_oidcc_scope_phone() {
    let ui = scope_claims("openid phone").await;
    assert_eq!(keys(&ui), ["phone_number", "phone_number_verified", "sub"]);
    assert_eq!(ui["phone_number"], "+1 555 0100");
}

#[tokio::test]
async fn basic_oidcc_scope_all() {
    let ui = scope_claims("openid profile email address phone").await;
    let mut expected = PROFILE.to_vec();
    expected.extend([
        "address",
        "email",
        "email_verified",
        "phone_number",
        "phone_number_verified",
        "sub",
    ]);
    expected.sort_unstable();
    assert_eq!(keys(&ui), expected);
    assert!(ui.get("favourite_colour").is_none(), "no custom claim");
}

#[tokio::test]
async fn basic_oidcc_alternate_happy_flow() {
    let mut op = Op::start(&[]).await;
    // Scopes reversed, parameters in another order.
    let url = format!(
        "{}?nonce=n-alt&scope=email+openid&state=st-alt&redirect_uri={}&client_id={}&response_type=code",
        op.server.url("/authorize"),
        enc(REDIRECT),
        op.client.client_id
    );
    let p = op.front(&url).await;
    assert_eq!(p["state"], "st-alt");
    let t = op.exchange(&p["code"]).await;
    op.verify(&t.id_token().unwrap().to_string(), Some("n-alt"));
    let ui = op.rp_userinfo(t.access_token().secret()).await;
    assert_eq!(ui.email().map(|e| e.as_str()), Some("alice@example.com"));
    op.stop().await;
}

/// The request built by openidconnect with `tweak` must show the login page (checked by
/// `check`), then complete with a code and a valid ID token.
async fn login_page_then_success(
    tweak: impl FnOnce(
        openidconnect::AuthorizationRequest<'_, CoreAuthDisplay, CoreAuthPrompt, CoreResponseType>,
    ) -> openidconnect::AuthorizationRequest<
        '_,
        CoreAuthDisplay,
        CoreAuthPrompt,
        CoreResponseType,
    >,
    check: impl FnOnce(&Resp),
) {
    let mut op = Op::start(&[]).await;
    let req = op.rp.authorize_url(
        CoreAuthenticationFlow::AuthorizationCode,
        CsrfToken::new_random,
        Nonce::new_random,
    );
    let (url, csrf, nonce) = tweak(req).url();
    let page = op.b.get(url.as_str()).await;
    assert!(is_login_page(&page), "{} {}", page.status, page.body);
    check(&page);
    let mut resp = op.b.login(&op.server, &page, USER, PW).await;
    if resp.body.contains("name=\"decision\"") {
        resp = op.b.consent(&op.server, &resp, "allow").await;
    }
    let p = success_params(&resp);
    assert_eq!(&p["state"], csrf.secret());
    let t = op.exchange(&p["code"]).await;
    op.verify(&t.id_token().unwrap().to_string(), Some(nonce.secret()));
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_display_page() {
    login_page_then_success(|r| r.set_display(CoreAuthDisplay::Page), |_| {}).await;
}

#[tokio::test]
async fn basic_oidcc_display_popup() {
    login_page_then_success(|r| r.set_display(CoreAuthDisplay::Popup), |_| {}).await;
}

#[tokio::test]
async fn basic_oidcc_login_hint() {
    login_page_then_success(
        |r| r.set_login_hint(LoginHint::new(USER.to_owned())),
        |page| {
            assert_eq!(
                page.form_value("username").as_deref(),
                Some(USER),
                "the login form is pre-filled with the hint"
            );
        },
    )
    .await;
}

#[tokio::test]
async fn basic_oidcc_ui_locales() {
    login_page_then_success(
        |r| {
            r.add_ui_locale(LanguageTag::new("se".to_owned()))
                .add_ui_locale(LanguageTag::new("en".to_owned()))
        },
        |_| {},
    )
    .await;
}

#[tokio::test]
async fn basic_oidcc_claims_locales() {
    login_page_then_success(
        |r| {
            r.add_claims_locale(LanguageTag::new("se".to_owned()))
                .add_claims_locale(LanguageTag::new("en".to_owned()))
        },
        |_| {},
    )
    .await;
}

#[tokio::test]
async fn basic_oidcc_ensure_request_with_acr_values_succeeds() {
    login_page_then_success(
        |r| {
            r.add_auth_context_value(AuthenticationContextClass::new("1".to_owned()))
                .add_auth_context_value(AuthenticationContextClass::new("2".to_owned()))
        },
        |_| {},
    )
    .await;
}

#[tokio::test]
async fn basic_oidcc_ensure_request_with_unknown_parameter_succeeds() {
    login_page_then_success(
        |r| {
            r.add_extra_param("extra_unknown_param", "foobar")
                .add_extra_param("another", "1")
        },
        |_| {},
    )
    .await;
}

fn auth_time(claims: &CoreIdTokenClaims) -> i64 {
    claims.auth_time().expect("auth_time present").timestamp()
}

#[tokio::test]
async fn basic_oidcc_prompt_login() {
    let mut op = Op::start(&[]).await;
    // max_age makes auth_time part of the ID token (OIDC Core §2).
    let first = op
        .code_flow("&scope=openid&state=s1&nonce=n1&max_age=3600")
        .await;
    let (c1, _) = op.verify(&first.id_token().unwrap().to_string(), Some("n1"));
    // auth_time is in whole seconds: wait past the next one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let url = op.url(
        "code",
        "&scope=openid&state=s2&nonce=n2&max_age=3600&prompt=login",
    );
    let page = op.b.get(&url).await;
    assert!(
        is_login_page(&page),
        "prompt=login shows the login page despite the session: {} {}",
        page.status,
        page.body
    );
    let mut resp = op.b.login(&op.server, &page, USER, PW).await;
    if resp.body.contains("name=\"decision\"") {
        resp = op.b.consent(&op.server, &resp, "allow").await;
    }
    let p = success_params(&resp);
    assert_eq!(p["state"], "s2");
    let second = op.exchange(&p["code"]).await;
    let (c2, _) = op.verify(&second.id_token().unwrap().to_string(), Some("n2"));
    assert_eq!(c2.subject(), c1.subject());
    assert!(
        auth_time(&c2) > auth_time(&c1),
        "auth_time moves forward: {} then {}",
        auth_time(&c1),
        auth_time(&c2)
    );
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_prompt_none_not_logged_in() {
    let mut op = Op::without_user(&[]).await;
    let resp =
        op.b.get(&op.url("code", "&scope=openid&state=st&nonce=n&prompt=none"))
            .await;
    let p = error_redirect(&resp, false);
    // The suite also accepts interaction_required and the like; ours is the precise one.
    assert_eq!(p["error"], "login_required");
    assert_eq!(p["state"], "st");
    assert_eq!(p["iss"], op.server.issuer);
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_prompt_none_logged_in() {
    let mut op = Op::start(&[]).await;
    let first = op
        .code_flow("&scope=openid&state=s1&nonce=n1&max_age=3600")
        .await;
    let (c1, _) = op.verify(&first.id_token().unwrap().to_string(), Some("n1"));
    let resp =
        op.b.get(&op.url(
            "code",
            "&scope=openid&state=s2&nonce=n2&max_age=3600&prompt=none",
        ))
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "no page: {}", resp.body);
    let p = success_params(&resp);
    assert_eq!(p["state"], "s2");
    let second = op.exchange(&p["code"]).await;
    let (c2, _) = op.verify(&second.id_token().unwrap().to_string(), Some("n2"));
    assert_eq!(c2.subject(), c1.subject(), "same sub");
    assert_eq!(auth_time(&c2), auth_time(&c1), "auth_time kept");
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_max_age_1() {
    let mut op = Op::start(&[]).await;
    let first = op
        .code_flow("&scope=openid&state=s1&nonce=n1&max_age=1")
        .await;
    let (c1, _) = op.verify(&first.id_token().unwrap().to_string(), Some("n1"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Before the second login: its auth_time (whole seconds) cannot be earlier.
    let before_login = now_secs();
    let page =
        op.b.get(&op.url("code", "&scope=openid&state=s2&nonce=n2&max_age=1"))
            .await;
    assert!(
        is_login_page(&page),
        "a session older than max_age needs a new login: {} {}",
        page.status,
        page.body
    );
    let mut resp = op.b.login(&op.server, &page, USER, PW).await;
    if resp.body.contains("name=\"decision\"") {
        resp = op.b.consent(&op.server, &resp, "allow").await;
    }
    let p = success_params(&resp);
    let second = op.exchange(&p["code"]).await;
    let (c2, _) = op.verify(&second.id_token().unwrap().to_string(), Some("n2"));
    assert!(auth_time(&c2) >= auth_time(&c1) + 2, "a new auth_time");
    // The time of this second login: not before it started, not after the token came back
    // (bounds taken around it, however long a loaded machine makes it take).
    assert!(
        (before_login..=now_secs()).contains(&auth_time(&c2)),
        "auth_time {} is the second login's (started at {before_login})",
        auth_time(&c2)
    );
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_max_age_10000() {
    let mut op = Op::start(&[]).await;
    let first = op
        .code_flow("&scope=openid&state=s1&nonce=n1&max_age=10000")
        .await;
    let (c1, _) = op.verify(&first.id_token().unwrap().to_string(), Some("n1"));
    let resp =
        op.b.get(&op.url("code", "&scope=openid&state=s2&nonce=n2&max_age=10000"))
            .await;
    assert_eq!(
        resp.status,
        StatusCode::SEE_OTHER,
        "no new login: {}",
        resp.body
    );
    let p = success_params(&resp);
    let second = op.exchange(&p["code"]).await;
    let (c2, _) = op.verify(&second.id_token().unwrap().to_string(), Some("n2"));
    assert_eq!(auth_time(&c2), auth_time(&c1), "auth_time consistent");
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_id_token_hint() {
    let mut op = Op::start(&[]).await;
    let first = op.code_flow("&scope=openid&state=s1&nonce=n1").await;
    let hint = first.id_token().unwrap().clone();
    let (c1, _) = op.verify(&hint.to_string(), Some("n1"));
    let (url, csrf, nonce) = op
        .rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_prompt(CoreAuthPrompt::None)
        .set_id_token_hint(&hint)
        .url();
    assert!(url.as_str().contains("id_token_hint="));
    let resp = op.b.get(url.as_str()).await;
    assert_eq!(
        resp.status,
        StatusCode::SEE_OTHER,
        "silently: {}",
        resp.body
    );
    let p = success_params(&resp);
    assert_eq!(&p["state"], csrf.secret());
    let second = op.exchange(&p["code"]).await;
    let (c2, _) = op.verify(
        &second.id_token().unwrap().to_string(),
        Some(nonce.secret()),
    );
    assert_eq!(c2.subject(), c1.subject());
    op.stop().await;
}

/// The second use of a code is `invalid_grant`, and revokes what the first use issued.
async fn code_reuse(wait: Duration) {
    let mut op = Op::start(&[]).await;
    let url = op.url("code", "&scope=openid&state=s&nonce=n");
    let p = op.front(&url).await;
    let code = p["code"].clone();
    let t = op.exchange(&code).await;
    let at = t.access_token().secret().clone();
    assert_eq!(op.userinfo_get(&at).await.status, 200);
    tokio::time::sleep(wait).await;
    let again = op
        .rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .request_async(&rp_http)
        .await;
    match again {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error(), &CoreErrorResponseType::InvalidGrant);
        }
        other => panic!("the second use must be invalid_grant: {other:?}"),
    }
    let ui = op.userinfo_get(&at).await;
    assert_eq!(ui.status, 401, "the first use's access token is revoked");
    assert_eq!(ui.json()["error"], "invalid_token");
    assert!(ui.header("www-authenticate").is_some());
    let refresh = op
        .rp
        .exchange_refresh_token(t.refresh_token().expect("a refresh token"))
        .unwrap()
        .request_async(&rp_http)
        .await;
    match refresh {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error(), &CoreErrorResponseType::InvalidGrant);
        }
        other => panic!("its refresh token is revoked too: {other:?}"),
    }
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_codereuse() {
    code_reuse(Duration::ZERO).await;
}

#[tokio::test]
async fn basic_oidcc_codereuse_30seconds() {
    // The suite waits 30 s; the outcome does not depend on the wait (the code's 60 s lifetime
    // is not reached either way), so 1 s stands in for it here.
    code_reuse(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn basic_oidcc_ensure_registered_redirect_uri() {
    let mut op = Op::without_user(&[]).await;
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s&nonce=n",
        op.server.url("/authorize"),
        op.client.client_id,
        enc("https://rp.example/cb/evil")
    );
    let resp = op.b.get(&url).await;
    assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.body);
    assert!(resp.header("location").is_none(), "never a redirect");
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(resp.body.contains("invalid_request"), "{}", resp.body);
    assert!(!resp.body.contains("rp.example/cb/evil?"));
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_ensure_post_request_succeeds() {
    let mut op = Op::start(&[]).await;
    let page =
        op.b.post_form(
            &op.server.url("/authorize"),
            &[
                ("response_type", "code"),
                ("client_id", &op.client.client_id),
                ("redirect_uri", REDIRECT),
                ("scope", "openid"),
                ("state", "s-post"),
                ("nonce", "n-post"),
            ],
            &[],
        )
        .await;
    assert!(is_login_page(&page), "{} {}", page.status, page.body);
    let mut resp = op.b.login(&op.server, &page, USER, PW).await;
    if resp.body.contains("name=\"decision\"") {
        resp = op.b.consent(&op.server, &resp, "allow").await;
    }
    let p = success_params(&resp);
    assert_eq!(p["state"], "s-post");
    let t = op.exchange(&p["code"]).await;
    op.verify(&t.id_token().unwrap().to_string(), Some("n-post"));
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_server_client_secret_post() {
    let mut op = Op::start_with(NewClient {
        redirect_uris: vec![REDIRECT.into()],
        token_endpoint_auth_method: Some("client_secret_post".into()),
        ..NewClient::default()
    })
    .await;
    let (url, csrf, nonce) = op
        .rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .url();
    let p = op.front(url.as_str()).await;
    assert_eq!(&p["state"], csrf.secret());
    // Basic authentication is refused for a client_secret_post client...
    let basic = op.client.clone();
    let refused = op
        .token_raw(
            &basic,
            &[
                ("grant_type", "authorization_code"),
                ("code", &p["code"]),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert_eq!(refused.json()["error"], "invalid_client");
    // ...and the code is still good for the form-posted secret (openidconnect, RequestBody).
    let t = op.exchange(&p["code"]).await;
    op.verify(&t.id_token().unwrap().to_string(), Some(nonce.secret()));
    op.stop().await;
}

/// `request` / `request_uri` are not supported: redirected with the OIDC Core §3.1.2.6 code.
/// `extra` gives the parameter to add for this client.
async fn rejected_as_unsupported(extra: impl FnOnce(&Op) -> String, error: &str) {
    let mut op = Op::without_user(&[]).await;
    let url = op.url(
        "code",
        &format!("&scope=openid&state=st&nonce=n{}", extra(&op)),
    );
    let resp = op.b.get(&url).await;
    let p = error_redirect(&resp, false);
    assert_eq!(p["error"], error);
    assert_eq!(p["state"], "st");
    op.stop().await;
}

/// `&request=` with an unsigned (`alg: none`) request object for `op`'s client, which
/// repeats the query's parameters, redirect_uri included.
fn unsigned_request_object(op: &Op) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let id = &op.client.client_id;
    let claims = serde_json::json!({
        "iss": id, "aud": op.server.issuer, "response_type": "code", "client_id": id,
        "redirect_uri": REDIRECT, "scope": "openid", "state": "st", "nonce": "n",
    });
    format!(
        "&request={header}.{}.",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

#[tokio::test]
async fn basic_oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported() {
    rejected_as_unsupported(unsigned_request_object, "request_not_supported").await;
}

#[tokio::test]
async fn basic_oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported() {
    rejected_as_unsupported(
        |_| format!("&request_uri={}", enc("https://rp.example/request.jwt")),
        "request_uri_not_supported",
    )
    .await;
}

#[tokio::test]
async fn basic_oidcc_ensure_request_object_with_redirect_uri() {
    // The request object carries redirect_uri; request objects are refused as unsupported.
    rejected_as_unsupported(unsigned_request_object, "request_not_supported").await;
}

#[tokio::test]
async fn basic_oidcc_claims_essential() {
    let mut op = Op::start(&[]).await;
    let claims = enc(r#"{"userinfo":{"name":{"essential":true}}}"#);
    let t = op
        .code_flow(&format!("&scope=openid&state=s&nonce=n&claims={claims}"))
        .await;
    op.verify(&t.id_token().unwrap().to_string(), Some("n"));
    let ui = op.userinfo_get(t.access_token().secret()).await;
    assert_eq!(ui.status, 200, "{}", ui.body);
    assert_eq!(ui.json()["sub"], op.sub.as_str());
    // claims_parameter_supported is false: the request succeeds; `name` is not required.
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_refresh_token() {
    let mut op = Op::start(&[]).await;
    let first = op
        .code_flow("&scope=openid+email+offline_access&state=s&nonce=n&max_age=3600")
        .await;
    let (c1, raw1) = op.verify(&first.id_token().unwrap().to_string(), Some("n"));
    let rt1 = first.refresh_token().expect("a refresh token").clone();
    // iat must move: wait past the second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = op
        .rp
        .exchange_refresh_token(&rt1)
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap_or_else(|e| panic!("refresh failed: {e:?}"));
    let rt2 = t.refresh_token().expect("a rotated refresh token").clone();
    assert_ne!(rt2.secret(), rt1.secret(), "rotated");
    assert_ne!(t.access_token().secret(), first.access_token().secret());
    // OIDC Core §12.2: same iss, sub, aud; a new iat; the original auth_time; no nonce.
    let (c2, raw2) = op.verify(&t.id_token().expect("an ID token").to_string(), None);
    assert_eq!(c2.subject(), c1.subject());
    assert_eq!(raw2["aud"], raw1["aud"]);
    assert!(c2.issue_time() > c1.issue_time());
    assert_eq!(auth_time(&c2), auth_time(&c1));
    let ui = op.rp_userinfo(t.access_token().secret()).await;
    assert_eq!(ui.email().map(|e| e.as_str()), Some("alice@example.com"));

    // Bound to its client: another client cannot use it.
    let other = Registered::from(
        op.server
            .add_client(NewClient {
                redirect_uris: vec![REDIRECT.into()],
                ..NewClient::default()
            })
            .await,
    );
    let stolen = op
        .token_raw(
            &other,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt2.secret()),
            ],
        )
        .await;
    assert_eq!(stolen.status, 400, "{}", stolen.body);
    assert_eq!(stolen.json()["error"], "invalid_grant");
    // And the rotated-out one is spent.
    let client = op.client.clone();
    let replay = op
        .token_raw(
            &client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt1.secret()),
            ],
        )
        .await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert_eq!(replay.json()["error"], "invalid_grant");
    op.stop().await;
}

#[tokio::test]
async fn basic_oidcc_ensure_request_with_valid_pkce_succeeds() {
    let mut op = Op::start(&[]).await;
    // The confidential client, with PKCE (S256) on top.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = op
        .rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    assert!(url.as_str().contains("code_challenge_method=S256"));
    let p = op.front(url.as_str()).await;
    let t = op
        .rp
        .exchange_code(AuthorizationCode::new(p["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http)
        .await
        .unwrap_or_else(|e| panic!("token request with PKCE failed: {e:?}"));
    op.verify(&t.id_token().unwrap().to_string(), Some(nonce.secret()));

    // A public client (no secret) in the same browser session.
    let public = Registered::from(
        op.server
            .add_client(NewClient {
                redirect_uris: vec![REDIRECT.into()],
                token_endpoint_auth_method: Some("none".into()),
                ..NewClient::default()
            })
            .await,
    );
    assert!(public.client_secret.is_none());
    let rp = rp_for(&op.server, &public).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let p = op.front(url.as_str()).await;
    let t = rp
        .exchange_code(AuthorizationCode::new(p["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http)
        .await
        .unwrap_or_else(|e| panic!("public client token request failed: {e:?}"));
    let claims = t
        .id_token()
        .unwrap()
        .claims(&rp.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(claims.subject().as_str(), op.sub);
    assert_eq!(claims.audiences()[0].as_str(), public.client_id);
    op.stop().await;
}

// ---- Implicit OP ------------------------------------------------------------------------------

const IMPLICIT: [&str; 2] = ["id_token", "id_token token"];

#[tokio::test]
async fn implicit_oidcc_server() {
    let mut op = Op::start(&IMPLICIT).await;
    for with_token in [false, true] {
        let (url, csrf, nonce) = op
            .rp
            .authorize_url(
                CoreAuthenticationFlow::Implicit(with_token),
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .url();
        let resp = op.b.authorize(&op.server, url.as_str(), USER, PW).await;
        let loc = resp.header("location").unwrap_or_default().to_owned();
        assert!(loc.starts_with(&format!("{REDIRECT}#")), "fragment: {loc}");
        let p = success_params(&resp);
        assert_eq!(&p["state"], csrf.secret());
        assert!(!p.contains_key("code"));
        let jwt = &p["id_token"];
        op.verify(jwt, Some(nonce.secret()));
        if with_token {
            assert_eq!(p["token_type"], "Bearer");
            let at = &p["access_token"];
            op.check_hashes(jwt, Some(at), Some(None));
            let ui = op.rp_userinfo(at).await;
            assert_eq!(ui.subject().as_str(), op.sub);
        } else {
            assert!(!p.contains_key("access_token"));
            op.check_hashes(jwt, None, Some(None));
        }
    }
    op.stop().await;
}

#[tokio::test]
async fn implicit_oidcc_ensure_request_without_nonce_fails() {
    let mut op = Op::without_user(&IMPLICIT).await;
    for rt in IMPLICIT {
        let resp = op.b.get(&op.url(rt, "&scope=openid&state=st")).await;
        // An error redirect in the fragment, the implicit flow's default mode, never a page.
        let p = error_redirect(&resp, true);
        assert_eq!(p["error"], "invalid_request", "{rt}");
        assert!(p["error_description"].contains("nonce"), "{rt}: {p:?}");
        assert_eq!(p["state"], "st");
    }
    op.stop().await;
}

#[tokio::test]
async fn implicit_oidcc_response_type_missing() {
    let mut op = Op::without_user(&IMPLICIT).await;
    let url = format!(
        "{}?client_id={}&redirect_uri={}&scope=openid&state=st&nonce=n",
        op.server.url("/authorize"),
        op.client.client_id,
        enc(REDIRECT)
    );
    let resp = op.b.get(&url).await;
    // Without a response type there is no implicit flow to take the fragment from: the
    // error goes back in the query, and carries no token.
    let p = error_redirect(&resp, false);
    assert_eq!(p["error"], "invalid_request", "{p:?}");
    assert_eq!(p["state"], "st");
    op.stop().await;
}

#[tokio::test]
async fn implicit_oidcc_userinfo_get() {
    // The implicit plan's UserInfo modules run with `id_token token`; GET, POST header and
    // POST body folded into one test.
    let mut op = Op::start(&IMPLICIT).await;
    let url = op.url("id_token token", "&scope=openid+email&state=s&nonce=n-ui");
    let p = op.front(&url).await;
    let at = p["access_token"].clone();
    let ui = op.userinfo_get(&at).await;
    assert_eq!(ui.status, 200, "{}", ui.body);
    assert_eq!(ui.json()["email"], "alice@example.com");
    let auth = format!("Bearer {at}");
    let ui =
        op.b.send(
            Method::POST,
            &op.server.url("/userinfo"),
            &[("authorization", &auth)],
            Vec::new(),
        )
        .await;
    assert_eq!(ui.status, 200, "{}", ui.body);
    let ui =
        op.b.post_form(&op.server.url("/userinfo"), &[("access_token", &at)], &[])
            .await;
    assert_eq!(ui.status, 200, "{}", ui.body);
    assert_eq!(ui.json()["sub"], op.sub.as_str());
    op.stop().await;
}

#[tokio::test]
async fn implicit_oidcc_scope_all() {
    // With response_type=id_token no access token reaches the client: the scope's claims are
    // in the ID token (OIDC Core §5.4).
    let mut op = Op::start(&IMPLICIT).await;
    let url = op.url(
        "id_token",
        "&scope=openid+profile+email+address+phone&state=s&nonce=n-all",
    );
    let p = op.front(&url).await;
    let (claims, raw) = op.verify(&p["id_token"], Some("n-all"));
    assert_eq!(
        claims.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
        Some("Alice Liddell")
    );
    assert_eq!(
        claims.email().map(|e| e.as_str()),
        Some("alice@example.com")
    );
    assert_eq!(raw["address"]["country"], "UK");
    assert_eq!(raw["phone_number"], "+1 555 0100");
    assert!(raw.get("favourite_colour").is_none());
    op.stop().await;
}

#[tokio::test]
async fn implicit_oidcc_prompt_none_not_logged_in() {
    let mut op = Op::without_user(&IMPLICIT).await;
    let resp =
        op.b.get(&op.url(
            "id_token token",
            "&scope=openid&state=st&nonce=n&prompt=none",
        ))
        .await;
    let p = error_redirect(&resp, true);
    assert_eq!(p["error"], "login_required");
    assert_eq!(p["state"], "st");
    op.stop().await;
}

#[tokio::test]
async fn implicit_oidcc_prompt_none_logged_in() {
    let mut op = Op::start(&IMPLICIT).await;
    let url = op.url("id_token", "&scope=openid&state=s1&nonce=n1&max_age=3600");
    let p = op.front(&url).await;
    let (c1, _) = op.verify(&p["id_token"], Some("n1"));
    let resp =
        op.b.get(&op.url(
            "id_token",
            "&scope=openid&state=s2&nonce=n2&max_age=3600&prompt=none",
        ))
        .await;
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "no page: {}", resp.body);
    let p = success_params(&resp);
    let (c2, _) = op.verify(&p["id_token"], Some("n2"));
    assert_eq!(c2.subject(), c1.subject());
    assert_eq!(auth_time(&c2), auth_time(&c1));
    op.stop().await;
}

// ---- Hybrid OP --------------------------------------------------------------------------------

const HYBRID: [&str; 3] = ["code id_token", "code token", "code id_token token"];

fn hybrid_flow(rt: &str) -> CoreAuthenticationFlow {
    CoreAuthenticationFlow::Hybrid(
        rt.split(' ')
            .map(|t| match t {
                "code" => CoreResponseType::Code,
                "id_token" => CoreResponseType::IdToken,
                "token" => CoreResponseType::Token,
                other => panic!("{other}"),
            })
            .collect(),
    )
}

/// One hybrid flow through openidconnect, `response_mode` as given; checks both ID tokens.
async fn hybrid_happy(op: &mut Op, rt: &str, form_post: bool) {
    let mut req = op
        .rp
        .authorize_url(hybrid_flow(rt), CsrfToken::new_random, Nonce::new_random);
    if form_post {
        req = req.add_extra_param("response_mode", "form_post");
    }
    let (url, csrf, nonce) = req.url();
    assert!(
        url.as_str()
            .contains(&format!("response_type={}", rt.replace(' ', "+"))),
        "{url}"
    );
    let resp = op.b.authorize(&op.server, url.as_str(), USER, PW).await;
    if form_post {
        check_form_post(&resp);
    } else {
        let loc = resp.header("location").unwrap_or_default();
        assert!(
            loc.starts_with(&format!("{REDIRECT}#")),
            "{rt}: fragment: {loc}"
        );
    }
    let p = success_params(&resp);
    assert_eq!(&p["state"], csrf.secret(), "{rt}");
    assert_eq!(p["iss"], op.server.issuer, "{rt}");
    let code = p["code"].clone();
    let front_at = p.get("access_token").cloned();
    assert_eq!(
        front_at.is_some(),
        rt.split(' ').any(|t| t == "token"),
        "{rt}"
    );
    if front_at.is_some() {
        assert_eq!(p["token_type"], "Bearer");
    }
    let front_sub = match p.get("id_token") {
        Some(jwt) => {
            let (c, _) = op.verify(jwt, Some(nonce.secret()));
            op.check_hashes(jwt, front_at.as_deref(), Some(Some(&code)));
            Some(c.subject().clone())
        }
        None => {
            assert_eq!(rt, "code token");
            None
        }
    };
    if let Some(at) = &front_at {
        op.rp_userinfo(at).await;
    }
    let t = op.exchange(&code).await;
    let jwt = t.id_token().unwrap().to_string();
    let (back, _) = op.verify(&jwt, Some(nonce.secret()));
    op.check_hashes(&jwt, Some(t.access_token().secret()), None);
    if let Some(sub) = front_sub {
        assert_eq!(back.subject(), &sub, "{rt}: the same sub in both ID tokens");
    }
    op.rp_userinfo(t.access_token().secret()).await;
}

#[tokio::test]
async fn hybrid_oidcc_server() {
    let mut op = Op::start(&HYBRID).await;
    for rt in HYBRID {
        hybrid_happy(&mut op, rt, false).await;
    }
    op.stop().await;
}

#[tokio::test]
async fn hybrid_oidcc_ensure_request_without_nonce_succeeds_for_code_flow() {
    // `code token` returns no ID token from the authorization endpoint: no nonce needed.
    let mut op = Op::start(&HYBRID).await;
    let url = op.url("code token", "&scope=openid&state=st");
    let p = op.front(&url).await;
    assert!(p.contains_key("access_token") && !p.contains_key("id_token"));
    let t = op.exchange(&p["code"]).await;
    op.verify(&t.id_token().unwrap().to_string(), None);
    op.stop().await;
}

#[tokio::test]
async fn hybrid_oidcc_ensure_request_without_nonce_fails() {
    let mut op = Op::without_user(&HYBRID).await;
    for rt in ["code id_token", "code id_token token"] {
        let resp = op.b.get(&op.url(rt, "&scope=openid&state=st")).await;
        let p = error_redirect(&resp, true);
        assert_eq!(p["error"], "invalid_request", "{rt}");
        assert_eq!(p["state"], "st");
    }
    op.stop().await;
}

#[tokio::test]
async fn hybrid_oidcc_codereuse() {
    let mut op = Op::start(&HYBRID).await;
    let url = op.url("code id_token", "&scope=openid&state=st&nonce=n");
    let p = op.front(&url).await;
    let code = p["code"].clone();
    let t = op.exchange(&code).await;
    let again = op
        .rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .request_async(&rp_http)
        .await;
    assert!(
        matches!(&again, Err(RequestTokenError::ServerResponse(e)) if e.error() == &CoreErrorResponseType::InvalidGrant),
        "{again:?}"
    );
    let ui = op.userinfo_get(t.access_token().secret()).await;
    assert_eq!(ui.status, 401, "revoked: {}", ui.body);
    op.stop().await;
}

#[tokio::test]
async fn hybrid_oidcc_prompt_none_not_logged_in() {
    let mut op = Op::without_user(&HYBRID).await;
    let resp =
        op.b.get(&op.url(
            "code id_token",
            "&scope=openid&state=st&nonce=n&prompt=none",
        ))
        .await;
    let p = error_redirect(&resp, true);
    assert_eq!(p["error"], "login_required");
    assert_eq!(p["state"], "st");
    op.stop().await;
}

// ---- Config OP --------------------------------------------------------------------------------

#[tokio::test]
async fn config_oidcc_discovery_endpoint_verification() {
    let mut server = TestServer::start().await;
    let mut b = Browser::new();
    let resp = b
        .get(&server.url("/.well-known/openid-configuration"))
        .await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let d = resp.json();
    assert_eq!(d["issuer"], server.issuer.as_str());
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ] {
        let url = d[endpoint]
            .as_str()
            .unwrap_or_else(|| panic!("{endpoint} missing"));
        assert!(url.starts_with(&server.issuer), "{endpoint}: {url}");
    }
    let strings = |name: &str| -> Vec<String> {
        d[name]
            .as_array()
            .unwrap_or_else(|| panic!("{name} missing"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    assert!(strings("scopes_supported").contains(&"openid".to_owned()));
    let mut rts = strings("response_types_supported");
    rts.sort_unstable();
    assert_eq!(
        rts,
        [
            "code",
            "code id_token",
            "code id_token token",
            "code token",
            "id_token",
            "id_token token"
        ]
    );
    assert!(strings("subject_types_supported").contains(&"public".to_owned()));
    assert!(strings("id_token_signing_alg_values_supported").contains(&"RS256".to_owned()));

    // openidconnect parses the document and the JWKS behind jwks_uri.
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(server.issuer.clone()).unwrap(),
        &rp_http,
    )
    .await
    .unwrap_or_else(|e| panic!("openidconnect discovery failed: {e:?}"));
    assert_eq!(metadata.issuer().as_str(), server.issuer);
    assert_eq!(
        metadata.jwks_uri().url().as_str(),
        server.url("/jwks"),
        "jwks_uri"
    );
    assert!(
        metadata
            .scopes_supported()
            .unwrap()
            .contains(&Scope::new("openid".to_owned()))
    );
    assert_eq!(metadata.response_types_supported().len(), 6);
    let keys = metadata.jwks().keys();
    assert!(!keys.is_empty(), "a JWKS with keys");
    let jwks = b.get(d["jwks_uri"].as_str().unwrap()).await;
    assert_eq!(jwks.status, 200);
    let jwks_json = jwks.json();
    let parsed: CoreJsonWebKeySet = serde_json::from_value(jwks_json.clone()).unwrap();
    assert_eq!(parsed.keys().len(), keys.len());
    for k in jwks_json["keys"].as_array().unwrap() {
        assert!(k["kid"].is_string(), "every key has a kid: {k}");
        assert!(k.get("d").is_none(), "no private parts: {k}");
    }
    assert!(
        jwks_json["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kty"] == "RSA"),
        "an RSA key for RS256"
    );
    server.stop().await;
}

// ---- Form Post OP -----------------------------------------------------------------------------

/// The form_post page: 200, no Location, an auto-submitting POST form to the redirect URI.
fn check_form_post(resp: &Resp) {
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert!(
        resp.header("location").is_none(),
        "form_post sends no Location"
    );
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert!(
        resp.body.contains(&format!("action=\"{REDIRECT}\"")),
        "{}",
        resp.body
    );
    assert!(resp.body.contains("method=\"post\""));
    assert!(resp.body.contains("document.forms[0].submit()"));
    assert!(
        !resp.body.contains(&format!("{REDIRECT}?"))
            && !resp.body.contains(&format!("{REDIRECT}#"))
    );
}

#[tokio::test]
async fn form_post_basic_oidcc_server() {
    let mut op = Op::start(&[]).await;
    let (url, csrf, nonce) = op
        .rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_extra_param("response_mode", "form_post")
        .url();
    let resp = op.b.authorize(&op.server, url.as_str(), USER, PW).await;
    check_form_post(&resp);
    let p = success_params(&resp);
    assert_eq!(&p["state"], csrf.secret());
    assert_eq!(p["iss"], op.server.issuer);
    assert!(!p.contains_key("id_token") && !p.contains_key("access_token"));
    let t = op.exchange(&p["code"]).await;
    let jwt = t.id_token().unwrap().to_string();
    op.verify(&jwt, Some(nonce.secret()));
    op.check_hashes(&jwt, Some(t.access_token().secret()), Some(None));
    op.stop().await;
}

#[tokio::test]
async fn form_post_implicit_oidcc_server() {
    let mut op = Op::start(&IMPLICIT).await;
    for with_token in [false, true] {
        let (url, csrf, nonce) = op
            .rp
            .authorize_url(
                CoreAuthenticationFlow::Implicit(with_token),
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_extra_param("response_mode", "form_post")
            .url();
        let resp = op.b.authorize(&op.server, url.as_str(), USER, PW).await;
        check_form_post(&resp);
        let p = success_params(&resp);
        assert_eq!(&p["state"], csrf.secret());
        let jwt = &p["id_token"];
        op.verify(jwt, Some(nonce.secret()));
        op.check_hashes(jwt, p.get("access_token").map(String::as_str), Some(None));
        assert_eq!(p.contains_key("access_token"), with_token);
        if let Some(at) = p.get("access_token") {
            op.rp_userinfo(at).await;
        }
    }
    op.stop().await;
}

#[tokio::test]
async fn form_post_hybrid_oidcc_server() {
    let mut op = Op::start(&HYBRID).await;
    for rt in HYBRID {
        hybrid_happy(&mut op, rt, true).await;
    }
    op.stop().await;
}

#[tokio::test]
async fn form_post_oidcc_prompt_none_not_logged_in() {
    let mut op = Op::without_user(&[]).await;
    let resp =
        op.b.get(&op.url(
            "code",
            "&scope=openid&state=st&nonce=n&prompt=none&response_mode=form_post",
        ))
        .await;
    check_form_post(&resp);
    let p = resp.response_params();
    assert_eq!(p["error"], "login_required");
    assert_eq!(p["state"], "st");
    op.stop().await;
}

#[tokio::test]
async fn form_post_oidcc_ensure_request_without_nonce_fails() {
    let mut op = Op::without_user(&IMPLICIT).await;
    let resp =
        op.b.get(&op.url(
            "id_token token",
            "&scope=openid&state=st&response_mode=form_post",
        ))
        .await;
    check_form_post(&resp);
    let p = resp.response_params();
    assert_eq!(p["error"], "invalid_request");
    assert_eq!(p["state"], "st");
    assert!(!p.contains_key("id_token") && !p.contains_key("access_token"));
    op.stop().await;
}
