//! Whole flows over real HTTP on loopback, with the `openidconnect` crate as the relying
//! party: discovery, code (PKCE), hybrid, implicit, refresh, replay, restarts, the command
//! line, and hostile HTTP.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::io::{Read as _, Write as _};
use std::time::Duration;

use common::{Browser, OwnPages as _, REDIRECT, Registered, Resp, TestServer, rp_http};
use hyper::{Method, StatusCode};
use oidc_flow_hyper::setup::NewClient;
use openidconnect::core::{
    CoreAuthPrompt, CoreAuthenticationFlow, CoreClient, CoreErrorResponseType, CoreIdToken,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreResponseType, CoreTokenResponse,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, AuthorizationCodeHash, ClientId, ClientSecret,
    CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError,
    Scope, TokenResponse as _, UserInfoError,
};

// ------------------------------------------------------------------ fixtures

/// The client openidconnect builds from discovered metadata.
type Rp = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

const USER: &str = "alice";
const PASSWORD: &str = "pw-alice";

/// Discovers `server` and builds an RP for `client`.
async fn relying_party(server: &TestServer, client: &Registered) -> Rp {
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(server.issuer.clone()).unwrap(),
        &rp_http,
    )
    .await
    .unwrap();
    CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client.client_id.clone()),
        client.client_secret.clone().map(ClientSecret::new),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap())
}

/// A server with user alice and a client registered as `new` (redirecting to [`REDIRECT`]).
async fn start(new: NewClient) -> (TestServer, Registered, Rp) {
    let server = TestServer::start().await;
    let (client, rp) = register(&server, new).await;
    server
        .add_user(
            USER,
            PASSWORD,
            r#"{"email":"alice@example.com","email_verified":true,"name":"Alice"}"#,
        )
        .await;
    (server, client, rp)
}

async fn register(server: &TestServer, new: NewClient) -> (Registered, Rp) {
    let client = Registered::from(
        server
            .add_client(NewClient {
                redirect_uris: vec![REDIRECT.into()],
                ..new
            })
            .await,
    );
    let rp = relying_party(server, &client).await;
    (client, rp)
}

/// What the RP keeps between the authorization request and the response.
struct Pending {
    url: String,
    state: CsrfToken,
    nonce: Nonce,
    verifier: Option<PkceCodeVerifier>,
}

/// A code-flow authorization request with PKCE S256 and a nonce.
fn code_request(rp: &Rp, scopes: &[&str]) -> Pending {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut req = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for s in scopes {
        req = req.add_scope(Scope::new((*s).to_owned()));
    }
    let (url, state, nonce) = req.url();
    Pending {
        url: url.to_string(),
        state,
        nonce,
        verifier: Some(verifier),
    }
}

/// Exchanges `code` (with the PKCE verifier, client_secret_basic) and verifies the ID token.
async fn exchange(rp: &Rp, code: &str, pending: Pending) -> CoreTokenResponse {
    let mut req = rp
        .exchange_code(AuthorizationCode::new(code.to_owned()))
        .unwrap();
    if let Some(v) = pending.verifier {
        req = req.set_pkce_verifier(v);
    }
    let tokens = req.request_async(&rp_http).await.unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    id_token
        .claims(&rp.id_token_verifier(), &pending.nonce)
        .unwrap();
    tokens
}

/// The parameters of an authorization response that must be a 303 to [`REDIRECT`], with
/// `state` checked.
fn redirected(resp: &Resp, state: &CsrfToken) -> std::collections::HashMap<String, String> {
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.body);
    let location = resp.header("location").unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    let p = resp.response_params();
    assert_eq!(
        p.get("state").map(String::as_str),
        Some(state.secret().as_str())
    );
    p
}

fn token_error<RE: std::error::Error>(
    e: RequestTokenError<RE, openidconnect::StandardErrorResponse<CoreErrorResponseType>>,
) -> CoreErrorResponseType {
    match e {
        RequestTokenError::ServerResponse(r) => r.error().clone(),
        other => panic!("expected an error response, got {other:?}"),
    }
}

// ------------------------------------------------------------------ flows

/// (1) and (4): discovery, a PKCE code flow through the pages, the token exchange, the ID
/// token and UserInfo; then `prompt=none` answers at once from the session and consent.
#[tokio::test]
async fn code_flow_with_openidconnect_then_prompt_none() {
    let (mut server, _client, rp) = start(NewClient::default()).await;
    let mut b = Browser::new();

    let pending = code_request(&rp, &["email", "profile"]);
    assert!(pending.url.contains("code_challenge_method=S256"));
    let done = b.authorize(&server, &pending.url, USER, PASSWORD).await;
    let p = redirected(&done, &pending.state);
    assert_eq!(p.get("iss"), Some(&server.issuer));
    let nonce = pending.nonce.clone();
    let tokens = exchange(&rp, &p["code"], pending).await;
    let claims = tokens
        .id_token()
        .unwrap()
        .claims(&rp.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(claims.issuer().as_str(), server.issuer);
    // An access token was issued: the email scope's claims come from UserInfo (Core §5.4).
    let subject = claims.subject().clone();

    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), Some(subject.clone()))
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();
    assert_eq!(info.subject(), &subject);
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.com"));
    assert_eq!(info.email_verified(), Some(true));

    // (4) prompt=none: the session and the recorded consent answer with a code, no page.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_prompt(CoreAuthPrompt::None)
        .set_pkce_challenge(challenge)
        .url();
    let at_once = b.get(url.as_str()).await;
    let p = redirected(&at_once, &state);
    assert!(!p.contains_key("error"), "{p:?}");
    let again = exchange(
        &rp,
        &p["code"],
        Pending {
            url: String::new(),
            state,
            nonce,
            verifier: Some(verifier),
        },
    )
    .await;
    let id = again.id_token().unwrap();
    assert!(id.to_string().split('.').count() == 3);

    // prompt=none from a browser without a session: login_required, still no page.
    let (url, state, _) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_prompt(CoreAuthPrompt::None)
        .url();
    let fresh = Browser::new().get(url.as_str()).await;
    let p = redirected(&fresh, &state);
    assert_eq!(p.get("error").map(String::as_str), Some("login_required"));
    server.stop().await;
}

/// (2) hybrid `code id_token`: the front-channel ID token (nonce, c_hash), then the code.
#[tokio::test]
async fn hybrid_code_id_token() {
    let (mut server, _client, rp) = start(NewClient {
        response_types: vec!["code id_token".into()],
        grant_types: vec!["authorization_code".into(), "implicit".into()],
        ..NewClient::default()
    })
    .await;
    let mut b = Browser::new();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::Hybrid(vec![CoreResponseType::Code, CoreResponseType::IdToken]),
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let done = b.authorize(&server, url.as_str(), USER, PASSWORD).await;
    let location = url::Url::parse(done.header("location").unwrap()).unwrap();
    assert!(location.query().is_none(), "hybrid answers in the fragment");
    let p = redirected(&done, &state);
    let code = AuthorizationCode::new(p["code"].clone());
    let id_token: CoreIdToken = p["id_token"].parse().unwrap();
    let verifier_ = rp.id_token_verifier();
    let claims = id_token.claims(&verifier_, &nonce).unwrap();
    let expected = AuthorizationCodeHash::from_code(
        &code,
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier_).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.code_hash(), Some(&expected), "c_hash");
    let front_sub = claims.subject().clone();

    let tokens = rp
        .exchange_code(code)
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http)
        .await
        .unwrap();
    let back = tokens
        .id_token()
        .unwrap()
        .claims(&rp.id_token_verifier(), &nonce)
        .unwrap();
    assert_eq!(back.subject(), &front_sub);
    server.stop().await;
}

/// (3) implicit `id_token token`: fragment, at_hash, UserInfo with the access token.
#[tokio::test]
async fn implicit_id_token_token() {
    let (mut server, _client, rp) = start(NewClient {
        response_types: vec!["id_token token".into()],
        ..NewClient::default()
    })
    .await;
    let mut b = Browser::new();
    let (url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::Implicit(true),
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .url();
    let done = b.authorize(&server, url.as_str(), USER, PASSWORD).await;
    let location = url::Url::parse(done.header("location").unwrap()).unwrap();
    assert!(location.fragment().is_some() && location.query().is_none());
    let p = redirected(&done, &state);
    assert!(!p.contains_key("code"));
    assert_eq!(p["token_type"].to_ascii_lowercase(), "bearer");
    let access = AccessToken::new(p["access_token"].clone());
    let id_token: CoreIdToken = p["id_token"].parse().unwrap();
    let verifier = rp.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).unwrap();
    let expected = AccessTokenHash::from_token(
        &access,
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected), "at_hash");

    let info: CoreUserInfoClaims = rp
        .user_info(access, Some(claims.subject().clone()))
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();
    assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.com"));
    server.stop().await;
}

/// (5) refresh: a new refresh token each time; the old one, reused, is invalid_grant.
#[tokio::test]
async fn refresh_rotates_and_reuse_fails() {
    let (mut server, _client, rp) = start(NewClient::default()).await;
    let mut b = Browser::new();
    let pending = code_request(&rp, &[]);
    let state = pending.state.clone();
    let done = b.authorize(&server, &pending.url, USER, PASSWORD).await;
    let p = redirected(&done, &state);
    let tokens = exchange(&rp, &p["code"], pending).await;
    let first = tokens.refresh_token().expect("a refresh token").clone();

    let refreshed = rp
        .exchange_refresh_token(&first)
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();
    let second = refreshed
        .refresh_token()
        .expect("a new refresh token")
        .clone();
    assert_ne!(second.secret(), first.secret());
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    // The new access token works.
    let _: CoreUserInfoClaims = rp
        .user_info(refreshed.access_token().clone(), None)
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();

    let reused = rp
        .exchange_refresh_token(&first)
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap_err();
    assert_eq!(token_error(reused), CoreErrorResponseType::InvalidGrant);

    // The reuse revoked the whole family: the rotated refresh token and the access token
    // issued with it stop working too.
    let after = rp
        .exchange_refresh_token(&second)
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap_err();
    assert_eq!(token_error(after), CoreErrorResponseType::InvalidGrant);
    let bearer = format!("Bearer {}", refreshed.access_token().secret());
    let userinfo = b
        .send(
            hyper::Method::GET,
            &server.url("/userinfo"),
            &[("authorization", &bearer)],
            Vec::new(),
        )
        .await;
    assert_eq!(
        userinfo.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        userinfo.body
    );
    assert!(
        userinfo
            .header("www-authenticate")
            .is_some_and(|h| h.contains("invalid_token")),
        "{:?}",
        userinfo.headers
    );
    server.stop().await;
}

/// (6) a code used twice is invalid_grant, and the tokens of its first use are revoked.
#[tokio::test]
async fn reused_code_fails_and_revokes() {
    let (mut server, _client, rp) = start(NewClient::default()).await;
    let mut b = Browser::new();
    let pending = code_request(&rp, &[]);
    let state = pending.state.clone();
    let done = b.authorize(&server, &pending.url, USER, PASSWORD).await;
    let p = redirected(&done, &state);
    let code = p["code"].clone();
    let verifier = pending.verifier.as_ref().unwrap().secret().clone();
    let tokens = exchange(&rp, &code, pending).await;
    // The access token works once...
    let _: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();

    let second = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&rp_http)
        .await
        .unwrap_err();
    assert_eq!(token_error(second), CoreErrorResponseType::InvalidGrant);

    // ...and no more after the replay.
    let refused = rp
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async::<openidconnect::EmptyAdditionalClaims, _, openidconnect::core::CoreGenderClaim>(&rp_http)
        .await
        .unwrap_err();
    match refused {
        UserInfoError::Response(status, _, _) => assert_eq!(status.as_u16(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let raw = b
        .send(
            Method::GET,
            &server.url("/userinfo"),
            &[(
                "authorization",
                &format!("Bearer {}", tokens.access_token().secret()),
            )],
            Vec::new(),
        )
        .await;
    assert_eq!(raw.status, StatusCode::UNAUTHORIZED);
    assert!(
        raw.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{:?}",
        raw.headers
    );
    // The refresh token of that grant is gone too.
    let refresh = tokens.refresh_token().unwrap();
    let e = rp
        .exchange_refresh_token(refresh)
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap_err();
    assert_eq!(token_error(e), CoreErrorResponseType::InvalidGrant);
    server.stop().await;
}

/// (7) an unregistered redirect_uri: an error page, never a redirect.
#[tokio::test]
async fn unregistered_redirect_uri_gets_an_error_page() {
    let mut server = TestServer::start().await;
    let client = server.code_client().await;
    let mut b = Browser::new();
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&scope=openid&state=s",
        server.url("/authorize"),
        client.client_id
    );
    let r = b.get(&url).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.header("location").is_none());
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{:?}",
        r.headers
    );
    assert!(!r.body.contains("evil.example/cb?"), "{}", r.body);
    server.stop().await;
}

/// (8) consent denied: access_denied redirected to the client.
#[tokio::test]
async fn consent_denied_is_access_denied() {
    let (mut server, _client, rp) = start(NewClient::default()).await;
    let mut b = Browser::new();
    let pending = code_request(&rp, &["email"]);
    let page = b.get(&pending.url).await;
    let page = b.login(&server, &page, USER, PASSWORD).await;
    let r = b.consent(&server, &page, "deny").await;
    let p = redirected(&r, &pending.state);
    assert_eq!(p.get("error").map(String::as_str), Some("access_denied"));
    assert!(!p.contains_key("code"));
    server.stop().await;
}

/// (9) response_mode=form_post: the auto-submitting page with the parameters.
#[tokio::test]
async fn form_post_mode_returns_the_page() {
    let (mut server, _client, rp) = start(NewClient::default()).await;
    let mut b = Browser::new();
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .add_extra_param("response_mode", "form_post")
        .url();
    let r = b.authorize(&server, url.as_str(), USER, PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.header("location").is_none());
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(
        r.body
            .contains(&format!("<form method=\"post\" action=\"{REDIRECT}\">")),
        "{}",
        r.body
    );
    assert!(r.body.contains("document.forms[0].submit()"), "{}", r.body);
    let p = r.response_params();
    assert_eq!(p.get("state"), Some(state.secret()));
    assert_eq!(p.get("iss"), Some(&server.issuer));
    // The posted code works.
    exchange(
        &rp,
        &p["code"],
        Pending {
            url: String::new(),
            state,
            nonce,
            verifier: Some(verifier),
        },
    )
    .await;
    server.stop().await;
}

// ------------------------------------------------------------------ restart

/// After a restart on the same database: the refresh token still works and the JWKS is
/// byte-for-byte the same.
#[tokio::test]
async fn restart_keeps_keys_and_tokens() {
    let (database, dir) = common::fresh_database().await;
    let mut server = TestServer::start_on(&database, None).await;
    let (_client, rp) = register(&server, NewClient::default()).await;
    server.add_user(USER, PASSWORD, "{}").await;
    let mut b = Browser::new();
    let jwks_before = b.get(&server.url("/jwks")).await;
    assert_eq!(jwks_before.status, StatusCode::OK);
    let pending = code_request(&rp, &[]);
    let state = pending.state.clone();
    let done = b.authorize(&server, &pending.url, USER, PASSWORD).await;
    let p = redirected(&done, &state);
    let tokens = exchange(&rp, &p["code"], pending).await;
    let refresh = tokens.refresh_token().unwrap().clone();
    let subject_before = tokens
        .id_token()
        .unwrap()
        .claims(&rp.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
        .unwrap()
        .subject()
        .clone();
    let addr = server.addr;
    server.stop().await;
    drop(b);

    // Same file, same address (so the same issuer).
    let mut server = TestServer::start_on(&database, Some(addr)).await;
    let mut b = Browser::new();
    let jwks_after = b.get(&server.url("/jwks")).await;
    assert_eq!(jwks_after.body, jwks_before.body, "the JWKS changed");
    let refreshed = rp
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();
    assert!(refreshed.refresh_token().is_some());
    // An ID token minted after the restart (a refresh of an openid grant returns one, OIDC
    // Core §12.2) verifies against the keys discovered before.
    let id = refreshed
        .id_token()
        .expect("the refresh of an openid grant returns an ID token");
    let claims = id
        .claims(&rp.id_token_verifier(), |_: Option<&Nonce>| Ok(()))
        .unwrap();
    assert_eq!(claims.subject(), &subject_before, "the same end-user");
    let _: CoreUserInfoClaims = rp
        .user_info(refreshed.access_token().clone(), None)
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();
    server.stop().await;
    drop(dir);
}

// ------------------------------------------------------------------ command line

fn cli(args: &[&str]) -> serde_json::Value {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_oidc-flow"));
    command.args(args).env("RUST_LOG", "warn");
    // A PostgreSQL database has no key file beside it: the test servers' key, by variable.
    if oidc_flow_store::testing::http_tests_on_postgres() {
        command.env(
            oidc_flow_store::DATA_KEY_ENV,
            oidc_flow_store::testing::TEST_DATA_KEY,
        );
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "oidc-flow {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// `client add` and `user add` on a fresh file, then a flow with that client and user:
/// an ES256 ID token and the phone scope at UserInfo.
#[tokio::test]
async fn cli_registered_client_and_user() {
    let (database, dir) = common::fresh_database().await;
    let (reg, user) = tokio::task::spawn_blocking({
        let database = database.clone();
        move || {
            let reg = cli(&[
                "client",
                "add",
                "--database",
                &database,
                "--redirect-uri",
                REDIRECT,
                "--response-type",
                "code",
                "--id-token-signed-response-alg",
                "ES256",
            ]);
            let user = cli(&[
                "user",
                "add",
                "--database",
                &database,
                "--username",
                "bob",
                "--password",
                "pw",
                "--email",
                "bob@example.com",
                "--claims",
                r#"{"phone_number":"+1 555"}"#,
            ]);
            (reg, user)
        }
    })
    .await
    .unwrap();

    // RFC 7591 registration.
    let client_id = reg["client_id"].as_str().unwrap();
    assert!(!client_id.is_empty());
    let secret = reg["client_secret"].as_str().unwrap();
    assert_eq!(secret.len(), 43, "{secret}");
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(reg["client_secret_expires_at"], 0);
    assert_eq!(reg["redirect_uris"], serde_json::json!([REDIRECT]));
    assert_eq!(reg["response_types"], serde_json::json!(["code"]));
    let grants = reg["grant_types"].as_array().unwrap();
    assert!(grants.contains(&"authorization_code".into()), "{reg}");
    assert_eq!(reg["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(reg["id_token_signed_response_alg"], "ES256");
    assert!(reg.get("client_secret_sha256").is_none(), "{reg}");
    assert_eq!(user["username"], "bob");
    let sub = user["sub"].as_str().unwrap().to_owned();

    let mut server = TestServer::start_on(&database, None).await;
    let client = Registered::from(reg.clone());
    let rp = relying_party(&server, &client).await;
    let mut b = Browser::new();
    let pending = code_request(&rp, &["phone", "email"]);
    let state = pending.state.clone();
    let nonce = pending.nonce.clone();
    let done = b.authorize(&server, &pending.url, "bob", "pw").await;
    let p = redirected(&done, &state);
    let tokens = rp
        .exchange_code(AuthorizationCode::new(p["code"].clone()))
        .unwrap()
        .set_pkce_verifier(pending.verifier.unwrap())
        .request_async(&rp_http)
        .await
        .unwrap();
    let id_token = tokens.id_token().unwrap();
    assert_eq!(
        id_token.signing_alg().unwrap(),
        &CoreJwsSigningAlgorithm::EcdsaP256Sha256
    );
    let verifier = rp
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = id_token.claims(&verifier, &nonce).unwrap();
    assert_eq!(claims.subject().as_str(), sub);
    // An RP that accepts RS256 only refuses it: the client's registered alg was used.
    let rs256_only = rp
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
    assert!(id_token.claims(&rs256_only, &nonce).is_err());

    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();
    assert_eq!(info.subject().as_str(), sub);
    assert_eq!(info.phone_number().map(|p| p.as_str()), Some("+1 555"));
    assert_eq!(info.email().map(|e| e.as_str()), Some("bob@example.com"));
    server.stop().await;
    drop(dir);
}

// ------------------------------------------------------------------ hostile HTTP

/// Writes `request` on a raw connection and reads what comes back until the server closes
/// it (or 30 s pass: a deadline for a loaded machine, not a pause; every request here asks the
/// server to close). A reset after a partial read counts as the end.
fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The server may answer and close before it has read everything: ignore write errors.
    let _ = s.write_all(request);
    let _ = s.flush();
    let mut out = Vec::new();
    let mut buf = [0_u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(raw: &str) -> Option<u16> {
    raw.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[tokio::test]
async fn hostile_http() {
    let mut server = TestServer::start().await;
    let mut b = Browser::new();
    let form = [("content-type", "application/x-www-form-urlencoded")];

    // A body over 64 KiB.
    let big = format!(
        "grant_type=authorization_code&code={}",
        "a".repeat(70 * 1024)
    );
    let r = b
        .send(Method::POST, &server.url("/token"), &form, big.into_bytes())
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);

    // A body over 64 KiB without a Content-Length (chunked): still 413.
    let addr = server.addr;
    let chunk = "a".repeat(70 * 1024);
    let chunked = format!(
        "POST /token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let raw = tokio::task::spawn_blocking(move || raw_exchange(addr, chunked.as_bytes()))
        .await
        .unwrap();
    assert_eq!(status_of(&raw), Some(413), "{raw}");

    // A 32 KiB header: hyper's 431, or at least a 4xx.
    let cookie = "c".repeat(32 * 1024);
    let huge = format!(
        "GET /.well-known/openid-configuration HTTP/1.1\r\nHost: {addr}\r\nCookie: x={cookie}\r\nConnection: close\r\n\r\n"
    );
    let raw = tokio::task::spawn_blocking(move || raw_exchange(addr, huge.as_bytes()))
        .await
        .unwrap();
    let status = status_of(&raw);
    assert!(
        status.is_some_and(|s| (400..500).contains(&s)),
        "oversized header: {raw}"
    );

    // Malformed forms: 400 JSON invalid_request. `%%%` alone decodes leniently (WHATWG) to
    // a parameter without a value, so it is sent by an authenticated client, which then
    // lacks a grant_type; percent-encoded bytes that are not UTF-8 are malformed outright.
    let client = server.code_client().await;
    for body in [&b"%%%"[..], b"grant_type=%FF%FE&code=x"] {
        let r = b
            .send(
                Method::POST,
                &server.url("/token"),
                &[form[0], ("authorization", &client.basic())],
                body.to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json()["error"], "invalid_request", "{}", r.body);
    }
    let r = b
        .send(
            Method::POST,
            &server.url("/token"),
            &form,
            b"grant_type=%FF%FE&code=x".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.json()["error"], "invalid_request", "{}", r.body);

    // The wrong content type.
    let r = b
        .send(
            Method::POST,
            &server.url("/token"),
            &[("content-type", "application/json")],
            br#"{"grant_type":"authorization_code"}"#.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.body);

    // Unknown path, wrong methods.
    let r = b.get(&server.url("/nope")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = b
        .send(Method::DELETE, &server.url("/token"), &[], Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = b
        .send(Method::PUT, &server.url("/authorize"), &[], Vec::new())
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("GET, POST"));

    // A login post without the CSRF cookie.
    let r = b
        .post_form(
            &server.url("/login"),
            &[
                ("handle", "h"),
                ("csrf", "x"),
                ("username", "u"),
                ("password", "p"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
    );
    assert!(r.body.contains("CSRF"), "{}", r.body);

    // Garbage on a raw connection: a 400 or a closed connection...
    let raw = tokio::task::spawn_blocking(move || raw_exchange(addr, b"GARBAGE\r\n\r\n"))
        .await
        .unwrap();
    assert!(raw.is_empty() || status_of(&raw) == Some(400), "{raw}");
    // ...and the server goes on serving.
    let r = Browser::new()
        .get(&server.url("/.well-known/openid-configuration"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["issuer"], server.issuer.as_str());
    server.stop().await;
}
