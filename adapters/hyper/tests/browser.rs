//! Headless Chromium signs in through the `oidc-flow` server's own pages, as a person would:
//! it types the username and password, presses the buttons, and lands on a callback server
//! the test runs. Every flow fails on any console message about a Content-Security-Policy.
//!
//! Skipped (with a message) when Chromium or chromedriver is missing, unless
//! `OIDC_FLOW_REQUIRE_BROWSER` is set, as `.ci/run` does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use oidc_flow_browser_harness::app_pages::{Rp, decide, sign_in};
use oidc_flow_browser_harness::http::{self, Auth};
use oidc_flow_browser_harness::{
    CallbackServer, Page, Result, Suite, ensure, fail, free_port, jwt_claims, pkce_challenge,
    unique,
};
use std::process::{Child, Command};

const USERNAME: &str = "ada";
const PASSWORD: &str = "analytical engine 1843";

/// The `oidc-flow` binary serving a temporary database, with one client and one user.
struct Server {
    issuer: String,
    /// flow name -> (client_id, client_secret)
    clients: HashMap<String, (String, String)>,
    redirect_uri: String,
    child: Child,
    _dir: tempfile::TempDir,
}

/// The data key a PostgreSQL test database needs (a SQLite file keeps its own beside it).
fn database_env() -> Vec<(&'static str, &'static str)> {
    if oidc_flow_store::testing::http_tests_on_postgres() {
        vec![(
            oidc_flow_store::DATA_KEY_ENV,
            oidc_flow_store::testing::TEST_DATA_KEY,
        )]
    } else {
        Vec::new()
    }
}

fn oidc_flow(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_oidc-flow"))
        .args(args)
        .envs(database_env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oidc-flow {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Server {
    async fn start(redirect_uri: &str, flows: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = if oidc_flow_store::testing::http_tests_on_postgres() {
            oidc_flow_store::testing::fresh_postgres_database("browser")
                .await
                .expect("OIDC_FLOW_TEST_BACKEND=postgres needs OIDC_FLOW_TEST_POSTGRES")
        } else {
            format!("sqlite://{}", dir.path().join("db.sqlite").display())
        };
        // One client per flow, so that each flow meets the consent page on its first sign-in.
        let mut clients = HashMap::new();
        for flow in flows {
            let registration = oidc_flow(&[
                "client",
                "add",
                "--database",
                &database,
                "--redirect-uri",
                redirect_uri,
                "--response-type",
                "code",
                "--response-type",
                "id_token token",
                "--token-endpoint-auth-method",
                "client_secret_basic",
                "--client-name",
                &format!("Browser test {flow}"),
                "--post-logout-redirect-uri",
                &post_logout_uri(redirect_uri),
            ]);
            let registration: serde_json::Value = serde_json::from_str(&registration).unwrap();
            clients.insert(
                (*flow).to_owned(),
                (
                    registration["client_id"].as_str().unwrap().to_owned(),
                    registration["client_secret"].as_str().unwrap().to_owned(),
                ),
            );
        }
        oidc_flow(&[
            "user",
            "add",
            "--database",
            &database,
            "--username",
            USERNAME,
            "--password",
            PASSWORD,
            "--name",
            "Ada Lovelace",
            "--email",
            "ada@example.com",
        ]);
        // The port is free when picked, but the server binds it only after opening the
        // database and making its keys (seconds in a debug build): should anything take it
        // meanwhile, the server cannot listen and exits, and another port is tried.
        let mut attempt = 0;
        let (issuer, child) = loop {
            attempt += 1;
            let port = free_port().unwrap();
            let issuer = format!("http://127.0.0.1:{port}");
            let log_path = dir.path().join(format!("serve-{port}.log"));
            let mut child = Command::new(env!("CARGO_BIN_EXE_oidc-flow"))
                .envs(database_env())
                .args([
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--issuer",
                    &issuer,
                    "--database",
                    &database,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log_path).unwrap())
                .spawn()
                .unwrap();
            let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
            let deadline = Instant::now() + Duration::from_secs(60);
            let discovery = format!("{issuer}/.well-known/openid-configuration");
            let exited = loop {
                if let Ok(r) = http::get(&discovery, None).await
                    && r.status == 200
                {
                    break None;
                }
                if let Some(status) = child.try_wait().unwrap() {
                    break Some(status);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("oidc-flow serve did not start within 60 s: {}", log());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            match exited {
                None => break (issuer, child),
                Some(_) if attempt < 5 && log().contains("cannot listen on") => {
                    eprintln!("port {port} was taken before the server bound it; another one");
                }
                Some(status) => panic!("oidc-flow serve exited ({status}): {}", log()),
            }
        };
        Self {
            issuer,
            clients,
            redirect_uri: redirect_uri.to_owned(),
            child,
            _dir: dir,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client of one flow.
/// Checks an ID token's iss, aud and nonce; returns its claims.
fn check_id_token(rp: &Rp<'_>, id_token: &str, nonce: &str) -> Result<serde_json::Value> {
    let claims = jwt_claims(id_token)?;
    ensure!(claims["iss"] == rp.issuer, "iss: {}", claims["iss"]);
    let aud_ok = claims["aud"] == rp.client_id
        || claims["aud"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == rp.client_id));
    ensure!(aud_ok, "aud: {}", claims["aud"]);
    ensure!(claims["nonce"] == nonce, "nonce: {}", claims["nonce"]);
    ensure!(claims["sub"].is_string(), "no sub: {claims}");
    Ok(claims)
}

/// Where clients send the browser after logout: `/bye` beside the redirect URI.
fn post_logout_uri(redirect_uri: &str) -> String {
    redirect_uri.replace("/cb", "/bye")
}

/// `prompt=none` after a logout: the callback gets `login_required`, no page is shown.
async fn signed_out(page: &mut Page, ctx: &Rp<'_>) -> Result<()> {
    let state = unique("state");
    page.goto(&ctx.authorize(&[
        ("response_type", "code"),
        ("state", &state),
        ("prompt", "none"),
    ]))
    .await?;
    let landed = ctx.landed(page, &state).await?;
    ensure!(
        landed.get("error").map(String::as_str) == Some("login_required"),
        "prompt=none after logout: {landed:?}"
    );
    Ok(())
}

/// A whole code flow with PKCE: login, consent, callback, token exchange. Returns the tokens.
async fn code_flow(
    page: &mut Page,
    ctx: &Rp<'_>,
    extra: &[(&str, &str)],
) -> Result<serde_json::Value> {
    let (state, nonce, verifier) = (unique("state"), unique("nonce"), unique("verifier"));
    let challenge = pkce_challenge(&verifier);
    let mut params = vec![
        ("response_type", "code"),
        ("state", state.as_str()),
        ("nonce", nonce.as_str()),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    page.goto(&ctx.authorize(&params)).await?;
    sign_in(page, USERNAME, PASSWORD).await?;
    decide(page, "allow").await?;
    let landed = ctx.landed(page, &state).await?;
    let code = landed
        .get("code")
        .ok_or_else(|| fail(format!("no code: {landed:?}")))?;
    let tokens = ctx.redeem(code, Some(&verifier)).await?;
    let id_token = tokens["id_token"]
        .as_str()
        .ok_or_else(|| fail(format!("no id_token: {tokens}")))?;
    check_id_token(ctx, id_token, &nonce)?;
    Ok(tokens)
}

/// After a sign-in, a request with `extra` shows the login page again (not the callback), and
/// signing in again lands on the callback without a consent page (it is remembered).
async fn asks_again(page: &mut Page, ctx: &Rp<'_>, extra: &[(&str, &str)]) -> Result<()> {
    code_flow(page, ctx, &[]).await?;
    let state = unique("state");
    let mut params = vec![("response_type", "code"), ("state", state.as_str())];
    params.extend_from_slice(extra);
    page.goto(&ctx.authorize(&params)).await?;
    let url = page.url().await?;
    ensure!(
        url.path() == "/authorize",
        "{extra:?}: expected the login page, the browser is at {url}"
    );
    sign_in(page, USERNAME, PASSWORD).await?;
    // Consent is remembered: POST /login answers the redirect to the client itself.
    let landed = ctx.landed(page, &state).await?;
    ensure!(landed.contains_key("code"), "no code: {landed:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_with_chromium() {
    let Some(mut suite) = Suite::start("hyper").await.unwrap() else {
        return;
    };
    let callback = CallbackServer::start().await.unwrap();
    let flows = [
        "code-pkce",
        "prompt-none",
        "form-post",
        "implicit",
        "wrong-password",
        "deny",
        "prompt-login",
        "max-age-0",
        "logout-hint",
        "logout-confirm",
    ];
    let server = Server::start(&callback.url("/cb"), &flows).await;
    let rp = |flow: &str| {
        let (client_id, client_secret) = &server.clients[flow];
        Rp {
            issuer: &server.issuer,
            redirect_uri: &server.redirect_uri,
            callback: &callback,
            client_id,
            client_secret,
        }
    };

    suite
        .flow("code-pkce", async |page| {
            let ctx = &rp("code-pkce");
            let tokens = code_flow(page, ctx, &[]).await?;
            // The access token works at UserInfo, for the same subject.
            let access = tokens["access_token"].as_str().unwrap_or_default();
            let info = http::get(
                &format!("{}/userinfo", ctx.issuer),
                Some(Auth::Bearer(access)),
            )
            .await?;
            ensure!(
                info.status == 200,
                "userinfo: {} {}",
                info.status,
                info.body
            );
            let sub = jwt_claims(tokens["id_token"].as_str().unwrap_or_default())?["sub"].clone();
            ensure!(info.json()["sub"] == sub, "userinfo sub: {}", info.body);
            ensure!(
                info.json()["email"] == "ada@example.com",
                "userinfo: {}",
                info.body
            );
            Ok(())
        })
        .await;

    suite
        .flow("prompt-none", async |page| {
            let ctx = &rp("prompt-none");
            code_flow(page, ctx, &[]).await?;
            let state = unique("state");
            page.goto(&ctx.authorize(&[
                ("response_type", "code"),
                ("state", &state),
                ("prompt", "none"),
            ]))
            .await?;
            // No page of the provider: the navigation ends on the callback.
            let url = page.url().await?;
            ensure!(url.path() == "/cb", "prompt=none stopped at {url}");
            let landed = ctx.landed(page, &state).await?;
            let code = landed
                .get("code")
                .ok_or_else(|| fail(format!("no code: {landed:?}")))?;
            ctx.redeem(code, None).await?;
            Ok(())
        })
        .await;

    suite
        .flow("form-post", async |page| {
            let ctx = &rp("form-post");
            let state = unique("state");
            page.goto(&ctx.authorize(&[
                ("response_type", "code"),
                ("response_mode", "form_post"),
                ("state", &state),
            ]))
            .await?;
            sign_in(page, USERNAME, PASSWORD).await?;
            decide(page, "allow").await?;
            let posted = ctx
                .callback
                .wait_for(|r| r.path == "/cb" && r.method == "POST")
                .await?;
            ensure!(
                posted.query.is_empty(),
                "form_post used the query: {}",
                posted.target
            );
            let body: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(posted.body.as_bytes())
                    .into_owned()
                    .collect();
            ensure!(body.get("state") == Some(&state), "state: {body:?}");
            ensure!(
                body.contains_key("code"),
                "no code in the posted form: {body:?}"
            );
            page.wait_for_url(|u| u.path() == "/cb").await?;
            let code = &body["code"];
            ctx.redeem(code, None).await?;
            Ok(())
        })
        .await;

    suite
        .flow("implicit", async |page| {
            let ctx = &rp("implicit");
            let (state, nonce) = (unique("state"), unique("nonce"));
            // Only this flow's request: the fragment never reaches the server.
            ctx.callback.clear();
            page.goto(&ctx.authorize(&[
                ("response_type", "id_token token"),
                ("state", &state),
                ("nonce", &nonce),
            ]))
            .await?;
            sign_in(page, USERNAME, PASSWORD).await?;
            decide(page, "allow").await?;
            let url = page.wait_for_url(|u| u.path() == "/cb").await?;
            let fragment: std::collections::HashMap<String, String> =
                url::form_urlencoded::parse(url.fragment().unwrap_or_default().as_bytes())
                    .into_owned()
                    .collect();
            ensure!(fragment.get("state") == Some(&state), "state: {url}");
            ensure!(
                fragment
                    .get("token_type")
                    .map(|t| t.eq_ignore_ascii_case("bearer"))
                    == Some(true),
                "token_type: {fragment:?}"
            );
            ensure!(
                fragment.contains_key("access_token"),
                "no access_token: {url}"
            );
            let id_token = fragment
                .get("id_token")
                .ok_or_else(|| fail(format!("no id_token: {url}")))?;
            let claims = check_id_token(ctx, id_token, &nonce)?;
            ensure!(claims["at_hash"].is_string(), "no at_hash: {claims}");
            // Nothing travelled in the query.
            let request = ctx.callback.wait_for_path("/cb").await?;
            ensure!(
                request.query.is_empty(),
                "tokens in the query: {}",
                request.target
            );
            Ok(())
        })
        .await;

    suite
        .flow("wrong-password", async |page| {
            let ctx = &rp("wrong-password");
            let state = unique("state");
            page.goto(&ctx.authorize(&[("response_type", "code"), ("state", &state)]))
                .await?;
            sign_in(page, USERNAME, "not the password").await?;
            page.wait_for(".err").await?;
            page.checkpoint("login-error").await;
            let text = page.text().await?;
            ensure!(
                text.contains("wrong password"),
                "no message on the login page: {text}"
            );
            // The username is kept and the focus is on the password, so only it is retyped.
            let kept = page
                .client()
                .execute(
                    "return [document.getElementById('username').value, document.activeElement.id]",
                    vec![],
                )
                .await?;
            ensure!(
                kept == serde_json::json!([USERNAME, "password"]),
                "after a wrong password: [username, focused] = {kept}"
            );
            sign_in(page, USERNAME, PASSWORD).await?;
            decide(page, "allow").await?;
            let landed = ctx.landed(page, &state).await?;
            ensure!(landed.contains_key("code"), "no code: {landed:?}");
            Ok(())
        })
        .await;

    suite
        .flow("deny", async |page| {
            let ctx = &rp("deny");
            let state = unique("state");
            page.goto(&ctx.authorize(&[("response_type", "code"), ("state", &state)]))
                .await?;
            sign_in(page, USERNAME, PASSWORD).await?;
            decide(page, "deny").await?;
            let landed = ctx.landed(page, &state).await?;
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
        .flow("logout-hint", async |page| {
            // The RP sends the browser to the end-session endpoint with its ID token: the
            // session ends at once and the browser lands on the post-logout URI with state.
            let ctx = &rp("logout-hint");
            let tokens = code_flow(page, ctx, &[]).await?;
            let id_token = tokens["id_token"].as_str().unwrap_or_default();
            let state = unique("bye");
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("id_token_hint", id_token);
            q.append_pair(
                "post_logout_redirect_uri",
                &post_logout_uri(ctx.redirect_uri),
            );
            q.append_pair("state", &state);
            page.goto(&format!("{}/logout?{}", ctx.issuer, q.finish()))
                .await?;
            let bye = ctx
                .callback
                .wait_for(|r| r.path == "/bye" && r.param("state").as_deref() == Some(&state))
                .await?;
            ensure!(bye.method == "GET", "post-logout redirect: {}", bye.target);
            signed_out(page, ctx).await
        })
        .await;

    suite
        .flow("logout-confirm", async |page| {
            // A logout link without proof of who sent it: the person is asked, presses
            // "Sign out", and lands on the post-logout URI.
            let ctx = &rp("logout-confirm");
            code_flow(page, ctx, &[]).await?;
            // Only this flow's requests from here: the logout-hint flow's /bye is not this one.
            ctx.callback.clear();
            let mut q = url::form_urlencoded::Serializer::new(String::new());
            q.append_pair("client_id", ctx.client_id);
            q.append_pair(
                "post_logout_redirect_uri",
                &post_logout_uri(ctx.redirect_uri),
            );
            page.goto(&format!("{}/logout?{}", ctx.issuer, q.finish()))
                .await?;
            page.wait_for("input[name=confirm]").await?;
            let text = page.text().await?;
            ensure!(
                text.contains("Ada Lovelace"),
                "the page names the person: {text}"
            );
            page.click_button("Sign out").await?;
            ctx.callback.wait_for_path("/bye").await?;
            page.wait_for_url(|u| u.path() == "/bye").await?;
            signed_out(page, ctx).await
        })
        .await;

    suite.finish();
}
