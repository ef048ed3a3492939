//! Headless Chromium signs in through the Rocket example app (its own login and consent
//! pages, the provider under `/oidc`) as a person would, and lands on a callback server the
//! test runs. Every flow fails on any console message about a Content-Security-Policy.
//!
//! Skipped (with a message) when Chromium or chromedriver is missing, unless
//! `OIDC_FLOW_REQUIRE_BROWSER` is set, as `.ci/run` does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)]
#[path = "../examples/provider.rs"]
mod example;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oidc_flow_browser_harness::http::{self, Auth};
use oidc_flow_browser_harness::{
    CallbackServer, Page, Result, Suite, ensure, fail, free_port, jwt_claims, pkce_challenge,
    unique,
};
use oidc_flow_store::MemoryStore;

/// The example app's user.
const USERNAME: &str = "alice";
const PASSWORD: &str = "wonderland";

/// The example app on a loopback port, one client per flow.
struct App {
    issuer: String,
    redirect_uri: String,
    /// flow name -> client secret (the client_id is the flow's name)
    secrets: HashMap<String, String>,
    shutdown: rocket::Shutdown,
}

impl App {
    async fn start(redirect_uri: &str, flows: &[&str]) -> Self {
        let store = Arc::new(MemoryStore::new());
        let mut secrets = HashMap::new();
        for flow in flows {
            let secret = example::register(&store, flow, redirect_uri).await.unwrap();
            secrets.insert((*flow).to_owned(), secret);
        }
        // The port is free when picked, but Rocket binds it only at launch: should anything
        // take it meanwhile, the launch fails, and another port is tried.
        let mut attempt = 0;
        let (issuer, shutdown) = loop {
            attempt += 1;
            let port = free_port().unwrap();
            let issuer = format!("http://127.0.0.1:{port}/oidc");
            let config = rocket::Config {
                port,
                address: std::net::Ipv4Addr::LOCALHOST.into(),
                log_level: rocket::config::LogLevel::Off,
                cli_colors: false,
                ..rocket::Config::debug_default()
            };
            let provider = example::provider(&issuer).await.unwrap();
            let rocket = example::app(provider, store.clone(), rocket::custom(config))
                .ignite()
                .await
                .unwrap();
            let shutdown = rocket.shutdown();
            let launched = tokio::spawn(rocket.launch());
            let discovery = format!("{issuer}/.well-known/openid-configuration");
            let deadline = Instant::now() + Duration::from_secs(60);
            let ended = loop {
                if let Ok(r) = http::get(&discovery, None).await
                    && r.status == 200
                {
                    break None;
                }
                if launched.is_finished() {
                    break Some(launched.await);
                }
                assert!(
                    Instant::now() < deadline,
                    "the Rocket app did not start within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            match ended {
                None => break (issuer, shutdown),
                Some(outcome) if attempt < 5 => {
                    eprintln!(
                        "Rocket on port {port} ended before serving ({outcome:?}); another port"
                    );
                }
                Some(outcome) => panic!("the Rocket app ended before serving: {outcome:?}"),
            }
        };
        Self {
            issuer,
            redirect_uri: redirect_uri.to_owned(),
            secrets,
            shutdown,
        }
    }
}

/// The client of one flow.
struct Rp<'a> {
    app: &'a App,
    callback: &'a CallbackServer,
    client_id: &'a str,
    client_secret: &'a str,
}

impl Rp<'_> {
    /// The authorization URL for this client with `extra` parameters.
    fn authorize(&self, extra: &[(&str, &str)]) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("client_id", self.client_id);
        q.append_pair("redirect_uri", &self.app.redirect_uri);
        q.append_pair("scope", "openid profile email");
        q.extend_pairs(extra);
        format!("{}/authorize?{}", self.app.issuer, q.finish())
    }

    /// Waits until the browser is on the callback page and the callback server got the request
    /// carrying `state`; returns its parameters.
    async fn landed(&self, page: &Page, state: &str) -> Result<HashMap<String, String>> {
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
            params.get("iss").map(String::as_str) == Some(self.app.issuer.as_str()),
            "iss of the response is {:?}",
            params.get("iss")
        );
        Ok(params)
    }

    /// Redeems `code` at the token endpoint (client_secret_basic); returns the token response.
    async fn redeem(&self, code: &str, verifier: Option<&str>) -> Result<serde_json::Value> {
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.app.redirect_uri.as_str()),
        ];
        if let Some(v) = verifier {
            fields.push(("code_verifier", v));
        }
        let reply = http::post_form(
            &format!("{}/token", self.app.issuer),
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

/// Types the username and password on the app's login page and presses "Sign in".
async fn sign_in(page: &mut Page, username: &str, password: &str) -> Result<()> {
    page.wait_for("input[name=password]").await?;
    page.checkpoint("login").await;
    page.fill("username", username).await?;
    page.fill("password", password).await?;
    page.click_button("Sign in").await
}

/// Presses Allow or Deny on the app's consent page.
async fn decide(page: &mut Page, decision: &str) -> Result<()> {
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
    ensure!(claims["iss"] == rp.app.issuer.as_str(), "iss: {claims}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_to_the_rocket_app_with_chromium() {
    let Some(mut suite) = Suite::start("rocket").await.unwrap() else {
        return;
    };
    let callback = CallbackServer::start().await.unwrap();
    let flows = [
        "code-pkce",
        "prompt-none",
        "form-post",
        "wrong-password",
        "deny",
        "prompt-login",
        "max-age-0",
        "logout",
    ];
    let app = App::start(&callback.url("/cb"), &flows).await;
    let rp = |flow: &'static str| Rp {
        app: &app,
        callback: &callback,
        client_id: flow,
        client_secret: &app.secrets[flow],
    };

    suite
        .flow("code-pkce", async |page| {
            let rp = &rp("code-pkce");
            let tokens = code_flow(page, rp).await?;
            // The app's API takes the access token (it needs the profile scope).
            let access = tokens["access_token"].as_str().unwrap_or_default();
            let me = http::get(
                &format!("{}/api/me", rp.app.issuer.trim_end_matches("/oidc")),
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
                &rp.app.redirect_uri.replace("/cb", "/bye"),
            );
            q.append_pair("state", &state);
            page.goto(&format!("{}/logout?{}", rp.app.issuer, q.finish()))
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

    app.shutdown.clone().notify();
    suite.finish();
}
