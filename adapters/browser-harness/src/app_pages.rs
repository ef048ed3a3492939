//! The browser flows of an application that keeps its own login and consent pages (the
//! Rocket and axum example apps): the same eight flows, whichever framework serves them.
//!
//! The app's pages follow one shape: a login form with `username` and `password` and a
//! "Sign in" button (an element of class `err` says "wrong password" after a wrong one), a
//! consent form with "Allow" and "Deny" buttons named `decision`, the user `alice` /
//! `wonderland` with subject `u-alice`, and `/api/me` answering `{"sub": ...}` to a bearer
//! token with the `profile` scope.

// Only serde_json values are indexed here: a missing key reads as `Null`, never a panic.
#![allow(clippy::indexing_slicing)]

use std::collections::HashMap;

use crate::http::{self, Auth};
use crate::{
    CallbackServer, Page, Result, Suite, ensure, fail, jwt_claims, pkce_challenge, unique,
};

/// The app's user.
const USERNAME: &str = "alice";
const PASSWORD: &str = "wonderland";

/// The flows an app must register one client for (the client id is the flow's name, its
/// redirect URI the callback's `/cb`, its post-logout URI the callback's `/bye`).
pub const FLOWS: [&str; 8] = [
    "code-pkce",
    "prompt-none",
    "form-post",
    "wrong-password",
    "deny",
    "prompt-login",
    "max-age-0",
    "logout",
];

/// An app serving its pages and the provider (under `{origin}/oidc`).
#[derive(Debug)]
pub struct AppUnderTest {
    /// The issuer, `http://127.0.0.1:PORT/oidc`.
    pub issuer: String,
    /// The callback's `/cb`.
    pub redirect_uri: String,
    /// Flow name -> client secret.
    pub secrets: HashMap<String, String>,
}

/// The relying party of one flow: a registered client whose redirect URI is the
/// callback server's.
#[derive(Clone, Copy)]
#[allow(missing_debug_implementations)]
pub struct Rp<'a> {
    /// The provider's issuer.
    pub issuer: &'a str,
    /// The client's redirect URI (the callback's `/cb`).
    pub redirect_uri: &'a str,
    /// Where the browser lands.
    pub callback: &'a CallbackServer,
    /// The client.
    pub client_id: &'a str,
    /// Its secret (`client_secret_basic`).
    pub client_secret: &'a str,
}

impl Rp<'_> {
    /// The authorization URL for this client with `extra` parameters.
    pub fn authorize(&self, extra: &[(&str, &str)]) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", self.client_id);
        q.append_pair("redirect_uri", self.redirect_uri);
        q.append_pair("scope", "openid profile email");
        q.extend_pairs(extra);
        format!("{}/authorize?{}", self.issuer, q.finish())
    }

    /// Waits until the browser is on the callback page and the callback server got the request
    /// carrying `state`; returns its parameters.
    pub async fn landed(&self, page: &Page, state: &str) -> Result<HashMap<String, String>> {
        let request = self
            .callback
            .wait_for(|r| r.path == "/cb" && r.param("state").as_deref() == Some(state))
            .await?;
        page.wait_for_url(|u| u.path() == "/cb").await?;
        let text = page.text().await?;
        ensure!(
            text.contains("Callback received"),
            "the callback page is not shown: {text}"
        );
        let params = request.params();
        ensure!(
            params.get("iss").map(String::as_str) == Some(self.issuer),
            "iss of the response is {:?}",
            params.get("iss")
        );
        Ok(params)
    }

    /// Redeems `code` at the token endpoint (client_secret_basic); returns the token response.
    pub async fn redeem(&self, code: &str, verifier: Option<&str>) -> Result<serde_json::Value> {
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri),
        ];
        if let Some(v) = verifier {
            fields.push(("code_verifier", v));
        }
        let reply = http::post_form(
            &format!("{}/token", self.issuer),
            Some(Auth::Basic(self.client_id, self.client_secret)),
            &fields,
        )
        .await?;
        ensure!(
            reply.status == 200,
            "the token endpoint answered {}: {}",
            reply.status,
            reply.body
        );
        Ok(reply.json())
    }
}

/// Types the username and password on the login page and presses "Sign in".
pub async fn sign_in(page: &mut Page, username: &str, password: &str) -> Result<()> {
    page.wait_for("input[name=password]").await?;
    page.checkpoint("login").await;
    page.fill("username", username).await?;
    page.fill("password", password).await?;
    page.click_button("Sign in").await
}

/// Presses Allow or Deny on the consent page.
pub async fn decide(page: &mut Page, decision: &str) -> Result<()> {
    page.wait_for(&format!("button[name=decision][value={decision}]"))
        .await?;
    page.checkpoint("consent").await;
    let label = if decision == "allow" { "Allow" } else { "Deny" };
    page.click_button(label).await
}

/// A whole code flow with PKCE: login, consent, callback, token exchange. Returns the tokens.
async fn code_flow(page: &mut Page, rp: &Rp<'_>) -> Result<serde_json::Value> {
    let (state, nonce, verifier) = (unique("state"), unique("nonce"), unique("verifier"));
    let challenge = pkce_challenge(&verifier);
    page.goto(&rp.authorize(&[
        ("response_type", "code"),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]))
    .await?;
    sign_in(page, USERNAME, PASSWORD).await?;
    decide(page, "allow").await?;
    let landed = rp.landed(page, &state).await?;
    let code = landed
        .get("code")
        .ok_or_else(|| fail(format!("no code: {landed:?}")))?;
    let tokens = rp.redeem(code, Some(&verifier)).await?;
    let claims = jwt_claims(
        tokens["id_token"]
            .as_str()
            .ok_or_else(|| fail(format!("no id_token: {tokens}")))?,
    )?;
    ensure!(claims["iss"] == rp.issuer, "iss: {claims}");
    ensure!(
        claims["aud"] == rp.client_id
            || claims["aud"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == rp.client_id)),
        "aud: {claims}"
    );
    ensure!(claims["nonce"] == nonce.as_str(), "nonce: {claims}");
    ensure!(claims["sub"] == "u-alice", "sub: {claims}");
    Ok(tokens)
}

/// After a sign-in, a request with `extra` shows the login page again, and signing in again
/// lands on the callback without a consent page (it is remembered).
async fn asks_again(page: &mut Page, rp: &Rp<'_>, extra: &[(&str, &str)]) -> Result<()> {
    code_flow(page, rp).await?;
    let state = unique("state");
    let mut params = vec![("response_type", "code"), ("state", state.as_str())];
    params.extend_from_slice(extra);
    page.goto(&rp.authorize(&params)).await?;
    let url = page.url().await?;
    ensure!(
        url.path() == "/login",
        "{extra:?}: expected the login page, the browser is at {url}"
    );
    sign_in(page, USERNAME, PASSWORD).await?;
    let landed = rp.landed(page, &state).await?;
    ensure!(landed.contains_key("code"), "no code: {landed:?}");
    Ok(())
}

/// Runs the eight flows of [`FLOWS`] in `suite` against `app`.
pub async fn run(suite: &mut Suite, app: &AppUnderTest, callback: &CallbackServer) {
    let rp = |flow: &'static str| Rp {
        issuer: &app.issuer,
        redirect_uri: &app.redirect_uri,
        callback,
        client_id: flow,
        client_secret: app.secrets.get(flow).map_or("", String::as_str),
    };

    suite
        .flow("code-pkce", async |page| {
            let rp = &rp("code-pkce");
            let tokens = code_flow(page, rp).await?;
            // The app's API takes the access token (it needs the profile scope).
            let access = tokens["access_token"].as_str().unwrap_or_default();
            let me = http::get(
                &format!("{}/api/me", rp.issuer.trim_end_matches("/oidc")),
                Some(Auth::Bearer(access)),
            )
            .await?;
            ensure!(me.status == 200, "/api/me: {} {}", me.status, me.body);
            ensure!(me.json()["sub"] == "u-alice", "/api/me: {}", me.body);
            Ok(())
        })
        .await;

    suite
        .flow("prompt-none", async |page| {
            let rp = &rp("prompt-none");
            code_flow(page, rp).await?;
            let state = unique("state");
            page.goto(&rp.authorize(&[
                ("response_type", "code"),
                ("state", &state),
                ("prompt", "none"),
            ]))
            .await?;
            let url = page.url().await?;
            ensure!(url.path() == "/cb", "prompt=none stopped at {url}");
            let landed = rp.landed(page, &state).await?;
            let code = landed
                .get("code")
                .ok_or_else(|| fail(format!("no code: {landed:?}")))?;
            rp.redeem(code, None).await?;
            Ok(())
        })
        .await;

    suite
        .flow("form-post", async |page| {
            let rp = &rp("form-post");
            let state = unique("state");
            page.goto(&rp.authorize(&[
                ("response_type", "code"),
                ("response_mode", "form_post"),
                ("state", &state),
            ]))
            .await?;
            sign_in(page, USERNAME, PASSWORD).await?;
            decide(page, "allow").await?;
            let posted = rp
                .callback
                .wait_for(|r| r.path == "/cb" && r.method == "POST")
                .await?;
            ensure!(
                posted.query.is_empty(),
                "form_post used the query: {}",
                posted.target
            );
            let body: HashMap<String, String> = url::form_urlencoded::parse(posted.body.as_bytes())
                .into_owned()
                .collect();
            ensure!(body.get("state") == Some(&state), "state: {body:?}");
            let code = body
                .get("code")
                .ok_or_else(|| fail(format!("no code in the posted form: {body:?}")))?;
            page.wait_for_url(|u| u.path() == "/cb").await?;
            rp.redeem(code, None).await?;
            Ok(())
        })
        .await;

    suite
        .flow("wrong-password", async |page| {
            let rp = &rp("wrong-password");
            let state = unique("state");
            page.goto(&rp.authorize(&[("response_type", "code"), ("state", &state)]))
                .await?;
            sign_in(page, USERNAME, "through the looking-glass").await?;
            page.wait_for(".err").await?;
            page.checkpoint("login-error").await;
            let text = page.text().await?;
            ensure!(
                text.contains("wrong password"),
                "no message on the login page: {text}"
            );
            sign_in(page, USERNAME, PASSWORD).await?;
            decide(page, "allow").await?;
            let landed = rp.landed(page, &state).await?;
            ensure!(landed.contains_key("code"), "no code: {landed:?}");
            Ok(())
        })
        .await;

    suite
        .flow("deny", async |page| {
            let rp = &rp("deny");
            let state = unique("state");
            page.goto(&rp.authorize(&[("response_type", "code"), ("state", &state)]))
                .await?;
            sign_in(page, USERNAME, PASSWORD).await?;
            decide(page, "deny").await?;
            let landed = rp.landed(page, &state).await?;
            ensure!(
                landed.get("error").map(String::as_str) == Some("access_denied"),
                "expected access_denied: {landed:?}"
            );
            ensure!(
                !landed.contains_key("code"),
                "a code after Deny: {landed:?}"
            );
            Ok(())
        })
        .await;

    suite
        .flow("prompt-login", async |page| {
            asks_again(page, &rp("prompt-login"), &[("prompt", "login")]).await
        })
        .await;

    suite
        .flow("max-age-0", async |page| {
            asks_again(page, &rp("max-age-0"), &[("max_age", "0")]).await
        })
        .await;

    suite
        .flow("logout", async |page| {
            // RP-Initiated Logout with the ID token as proof: the session ends at once, the
            // browser lands on the post-logout URI with state, and prompt=none then fails.
            let rp = &rp("logout");
            let tokens = code_flow(page, rp).await?;
            let state = unique("bye");
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair(
                "id_token_hint",
                tokens["id_token"].as_str().unwrap_or_default(),
            );
            q.append_pair(
                "post_logout_redirect_uri",
                &rp.redirect_uri.replace("/cb", "/bye"),
            );
            q.append_pair("state", &state);
            page.goto(&format!("{}/logout?{}", rp.issuer, q.finish()))
                .await?;
            rp.callback
                .wait_for(|r| r.path == "/bye" && r.param("state").as_deref() == Some(&state))
                .await?;
            let state = unique("state");
            page.goto(&rp.authorize(&[
                ("response_type", "code"),
                ("state", &state),
                ("prompt", "none"),
            ]))
            .await?;
            let landed = rp.landed(page, &state).await?;
            ensure!(
                landed.get("error").map(String::as_str) == Some("login_required"),
                "prompt=none after logout: {landed:?}"
            );
            Ok(())
        })
        .await;
}
