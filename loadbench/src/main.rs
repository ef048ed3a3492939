//! Load benchmark of the `oidc-flow` server.
//!
//! It starts the release server on a fresh SQLite file, creates a client and a user with the
//! server's own command line, logs in once and consents, then for a fixed time at each
//! concurrency runs, over loopback:
//!
//! * `code`: the full code flow with an RS256 ID token — authorize with the session cookie
//!   and `prompt=none`, the code from `Location`, the token exchange (client_secret_basic,
//!   PKCE S256) — every response checked;
//! * `code-es256`: the same with ES256 ID tokens;
//! * `token`: the token exchange alone, on codes minted beforehand;
//! * `userinfo`: UserInfo with a bearer token;
//! * `discovery`: the discovery document;
//! * `login`: password logins through the pages, as a browser without a session does them —
//!   authorize (the login page, its CSRF cookie and form), then the form posted to `/login`
//!   with the right password, answered by the redirect with a code (consent was given during
//!   setup). Every login runs argon2id on the server: the figure is logins/s per server core.
//!
//! After each run the server's peak resident size during that run (VmHWM, reset before it)
//! and its resident size once the load stopped (VmRSS) are reported.
//!
//! With `--pin` the server runs on core 0 (`taskset -c 0`) and the load on core 1. The RS256
//! signing limit of the server's core is measured in the same run with `openssl speed`.

// Indexing here is on serde_json::Value, which yields Null for a missing key, never a panic.
#![allow(clippy::indexing_slicing)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

const REDIRECT: &str = "http://127.0.0.1:1/cb";
const PINNED_ENV: &str = "OIDC_FLOW_LOADBENCH_PINNED";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Code,
    CodeEs256,
    Token,
    Userinfo,
    Discovery,
    Login,
    /// Unauthenticated `GET /authorize` with a 2 KB `state`, cookie-less: what a stranger
    /// on the internet can make the server store (each answer is a login page).
    AuthorizeFlood,
    /// `POST /token` with `grant_type=client_credentials`, opaque access tokens.
    ClientCredentials,
    /// The same for a client whose access tokens are RS256 JWTs (RFC 9068).
    ClientCredentialsJwt,
    /// `POST /introspect` of a live access token by its client.
    Introspection,
    /// `POST /revoke` of a live access token (minted before the run), each once.
    Revocation,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Code => "code (RS256)",
            Self::CodeEs256 => "code (ES256)",
            Self::Token => "token exchange (RS256)",
            Self::Userinfo => "userinfo",
            Self::Discovery => "discovery",
            Self::Login => "login (password, through the pages)",
            Self::AuthorizeFlood => "GET /authorize, no session, 2 KB state",
            Self::ClientCredentials => "client_credentials (opaque)",
            Self::ClientCredentialsJwt => "client_credentials (RS256 JWT)",
            Self::Introspection => "introspection",
            Self::Revocation => "revocation",
        }
    }
}

/// Load benchmark of the oidc-flow server over loopback.
#[derive(Parser, Debug)]
#[command(name = "oidc-flow-loadbench")]
struct Args {
    /// The `oidc-flow` binary (default: beside this one, i.e. target/release/oidc-flow).
    #[arg(long)]
    server: Option<PathBuf>,
    /// What to load (repeat for several).
    #[arg(long = "mode", value_enum, default_values_t = [Mode::Code, Mode::CodeEs256, Mode::Token, Mode::Userinfo, Mode::Discovery, Mode::ClientCredentials, Mode::ClientCredentialsJwt, Mode::Introspection, Mode::Revocation])]
    modes: Vec<Mode>,
    /// Concurrency levels (comma-separated), each run for --duration.
    #[arg(long, value_delimiter = ',', default_value = "8")]
    concurrency: Vec<usize>,
    /// Seconds per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Pin the server to core 0 and the load to core 1.
    #[arg(long)]
    pin: bool,
    /// Write an SVG plot of flows/s against concurrency for the code modes.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Fail (exit 1) if any request failed.
    #[arg(long)]
    strict: bool,
    /// A PostgreSQL server (`postgres://user@host:port/db`): the benchmark creates a fresh
    /// database on it for the servers, reports database round trips and CPU per operation,
    /// and drops the database at the end. Default: a SQLite file in a temporary directory.
    #[arg(long)]
    database: Option<String>,
    /// How many `oidc-flow serve` processes share the database (all pinned to core 0 with
    /// --pin); the load goes to each in turn.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    nodes: u16,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Resp {
    status: StatusCode,
    location: Option<String>,
    set_cookie: Vec<String>,
    body: Bytes,
}

async fn send(
    client: &HttpClient,
    method: Method,
    url: &str,
    headers: &[(header::HeaderName, String)],
    body: Vec<u8>,
) -> Result<Resp, String> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(k, HeaderValue::from_str(v).map_err(|e| e.to_string())?);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status();
    let location = resp
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let set_cookie = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body failed: {e}"))?
        .to_bytes();
    Ok(Resp {
        status,
        location,
        set_cookie,
        body,
    })
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

fn form_type() -> (header::HeaderName, String) {
    (
        header::CONTENT_TYPE,
        "application/x-www-form-urlencoded".to_owned(),
    )
}

fn hidden(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let needle = format!("name=\"{name}\" value=\"");
    let start = text.find(&needle)? + needle.len();
    let end = text.get(start..)?.find('"')? + start;
    text.get(start..end).map(str::to_owned)
}

/// A registered client, as `oidc-flow client add` printed it.
#[derive(Clone)]
struct Rp {
    id: String,
    basic: String,
    alg: &'static str,
}

struct Setup {
    /// Every node's base URL; requests go to each in turn.
    bases: Vec<String>,
    next: std::sync::atomic::AtomicUsize,
    client: HttpClient,
    cookie: String,
}

impl Setup {
    /// The node the next request goes to.
    fn base(&self) -> &str {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.bases
            .get(i % self.bases.len().max(1))
            .map_or("", String::as_str)
    }
}

/// Environment the benchmark gives the servers and command lines it runs (the data key a
/// PostgreSQL database needs).
static CHILD_ENV: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();

fn child_env() -> &'static [(String, String)] {
    CHILD_ENV.get().map_or(&[], Vec::as_slice)
}

/// Waits (up to 20 s) until the server at `base` serves discovery.
async fn ready(client: &HttpClient, base: &str) -> bool {
    for _ in 0..200 {
        if let Ok(r) = send(
            client,
            Method::GET,
            &format!("{base}/.well-known/openid-configuration"),
            &[],
            Vec::new(),
        )
        .await
            && r.status == StatusCode::OK
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// How long PostgreSQL's backends may hold back their statistics (its PGSTAT_IDLE_INTERVAL,
/// 10 s, and a margin).
const PG_STATS_SETTLE: Duration = Duration::from_millis(11_000);

/// The benchmark's own database on a PostgreSQL server, and a connection to read its
/// statistics.
struct Postgres {
    /// The fresh database's URL, for the servers.
    url: String,
    name: String,
    server_url: String,
    stats: tokio_postgres::Client,
}

/// A database's counters at one moment.
#[derive(Clone, Copy)]
struct PgCounters {
    /// Committed and rolled-back transactions.
    transactions: u64,
    /// CPU clock ticks of the backends connected to it (the servers' pools).
    cpu_ticks: u64,
}

impl Postgres {
    async fn create(server_url: &str) -> Result<Self, String> {
        let connect = async |url: &str| {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .map_err(|e| format!("cannot reach {url}: {e}"))?;
            tokio::spawn(connection);
            Ok::<_, String>(client)
        };
        let admin = connect(server_url).await?;
        let name = format!("oidc_flow_bench_{}", std::process::id());
        // Two requests: CREATE DATABASE cannot share a transaction with anything.
        for sql in [
            format!("DROP DATABASE IF EXISTS {name}"),
            format!("CREATE DATABASE {name}"),
        ] {
            admin.batch_execute(&sql).await.map_err(|e| {
                let cause = std::error::Error::source(&e)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                format!("cannot create database {name}: {e}{cause}")
            })?;
        }
        let mut url = url::Url::parse(server_url).map_err(|e| format!("--database: {e}"))?;
        url.set_path(&name);
        let url = url.to_string();
        let stats = connect(&url).await?;
        Ok(Self {
            url,
            name,
            server_url: server_url.to_owned(),
            stats,
        })
    }

    /// The counters once every backend has reported: PostgreSQL backends send their
    /// transaction counts at most once a second while busy, and the rest after 10 s idle.
    async fn settled_counters(&self) -> Result<PgCounters, String> {
        tokio::time::sleep(PG_STATS_SETTLE).await;
        self.counters().await
    }

    async fn counters(&self) -> Result<PgCounters, String> {
        let row = self
            .stats
            .query_one(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database \
                 WHERE datname = current_database()",
                &[],
            )
            .await
            .map_err(|e| format!("database statistics: {e}"))?;
        let transactions: i64 = row.try_get(0).map_err(|e| e.to_string())?;
        let pids = self
            .stats
            .query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .map_err(|e| format!("database statistics: {e}"))?;
        let cpu_ticks = pids
            .iter()
            .filter_map(|r| r.try_get::<_, i32>(0).ok())
            .filter_map(|pid| u32::try_from(pid).ok().and_then(cpu_ticks))
            .sum();
        Ok(PgCounters {
            transactions: u64::try_from(transactions).unwrap_or(0),
            cpu_ticks,
        })
    }

    async fn size(&self) -> Option<u64> {
        let row = self
            .stats
            .query_one("SELECT pg_database_size(current_database())", &[])
            .await
            .ok()?;
        u64::try_from(row.try_get::<_, i64>(0).ok()?).ok()
    }

    async fn drop_database(self) {
        drop(self.stats);
        if let Ok((admin, connection)) =
            tokio_postgres::connect(&self.server_url, tokio_postgres::NoTls).await
        {
            tokio::spawn(connection);
            let _ = admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
        }
    }
}

fn run_cli(server: &PathBuf, args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new(server)
        .args(args)
        .envs(child_env().iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", server.display()))?;
    if !out.status.success() {
        return Err(format!("{} {args:?} failed", server.display()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("bad CLI output: {e}"))
}

fn add_client(server: &PathBuf, db: &str, alg: &'static str) -> Result<Rp, String> {
    let reg = run_cli(
        server,
        &[
            "client",
            "add",
            "--database",
            db,
            "--redirect-uri",
            REDIRECT,
            "--id-token-signed-response-alg",
            alg,
        ],
    )?;
    let id = reg["client_id"].as_str().ok_or("no client_id")?.to_owned();
    let secret = reg["client_secret"]
        .as_str()
        .ok_or("no client_secret")?
        .to_owned();
    Ok(Rp {
        basic: format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        id,
        alg,
    })
}

/// A backend service (`client add --grant-type client_credentials`), JWT access tokens or not.
fn add_service(server: &PathBuf, db: &str, jwt: bool) -> Result<Rp, String> {
    let format = if jwt { "jwt" } else { "opaque" };
    let reg = run_cli(
        server,
        &[
            "client",
            "add",
            "--database",
            db,
            "--grant-type",
            "client_credentials",
            "--scope",
            "api:read api:write",
            "--access-token-format",
            format,
        ],
    )?;
    let id = reg["client_id"].as_str().ok_or("no client_id")?.to_owned();
    let secret = reg["client_secret"]
        .as_str()
        .ok_or("no client_secret")?
        .to_owned();
    Ok(Rp {
        basic: format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        id,
        alg: "RS256",
    })
}

/// One client credentials request: the access token, after checking the answer's shape
/// (a JWT for `jwt`, with `typ: at+jwt`; otherwise an opaque token of 51 base64url
/// characters: 48 bits of time and 256 random bits).
async fn client_credentials(s: &Setup, rp: &Rp, jwt: bool) -> Result<String, String> {
    let body = b"grant_type=client_credentials&scope=api%3Aread".to_vec();
    let v = token_request(s, rp, body, "client_credentials").await?;
    let token = v["access_token"]
        .as_str()
        .ok_or("client_credentials: no access_token")?;
    if v["scope"] != "api:read" || v.get("refresh_token").is_some() {
        return Err(format!("client_credentials: unexpected answer {v}"));
    }
    let shape_ok = if jwt {
        token.split('.').count() == 3
            && token
                .split('.')
                .next()
                .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
                .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
                .is_some_and(|h| h["typ"] == "at+jwt" && h["alg"] == "RS256")
    } else {
        token.len() == 51 && URL_SAFE_NO_PAD.decode(token).is_ok_and(|b| b.len() == 38)
    };
    if !shape_ok {
        return Err(format!(
            "client_credentials: a token of the wrong format: {token}"
        ));
    }
    Ok(token.to_owned())
}

/// POSTs `body` to the token endpoint as `rp`; the 200 answer's JSON, or an error that
/// starts with `what`.
async fn token_request(
    s: &Setup,
    rp: &Rp,
    body: Vec<u8>,
    what: &str,
) -> Result<serde_json::Value, String> {
    let r = send(
        &s.client,
        Method::POST,
        &format!("{}/token", s.base()),
        &[form_type(), (header::AUTHORIZATION, rp.basic.clone())],
        body,
    )
    .await?;
    if r.status != StatusCode::OK {
        return Err(format!(
            "{what}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    serde_json::from_slice(&r.body).map_err(|e| format!("{what}: {e}"))
}

/// POSTs `token=...` to `path` (`/introspect`, `/revoke`) as `rp`.
async fn token_form(s: &Setup, rp: &Rp, path: &str, token: &str) -> Result<Resp, String> {
    send(
        &s.client,
        Method::POST,
        &format!("{}{path}", s.base()),
        &[form_type(), (header::AUTHORIZATION, rp.basic.clone())],
        form(&[("token", token)]),
    )
    .await
}

fn authorize_url(base: &str, rp: &Rp, state: &str, challenge: &str) -> String {
    format!(
        "{base}/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state={state}&code_challenge={challenge}&code_challenge_method=S256&prompt=none",
        rp.id,
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    )
}

fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest.as_ref()))
}

/// Logs in as the bench user through the pages, consenting for each client; returns the cookie.
async fn login_once(client: &HttpClient, base: &str, rps: &[Rp]) -> Result<String, String> {
    let mut cookies: HashMap<String, String> = HashMap::new();
    let cookie_header = |c: &HashMap<String, String>| {
        c.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let keep = |c: &mut HashMap<String, String>, r: &Resp| {
        for sc in &r.set_cookie {
            let pair = sc.split_once(';').map_or(sc.as_str(), |(p, _)| p);
            if let Some((k, v)) = pair.split_once('=') {
                c.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    };
    for rp in rps {
        let (_, challenge) = pkce();
        let url = authorize_url(base, rp, "login", &challenge).replace("&prompt=none", "");
        let mut r = send(
            client,
            Method::GET,
            &url,
            &[(header::COOKIE, cookie_header(&cookies))],
            Vec::new(),
        )
        .await?;
        keep(&mut cookies, &r);
        if r.status == StatusCode::OK
            && hidden(&r.body, "csrf").is_some()
            && String::from_utf8_lossy(&r.body).contains("name=\"password\"")
        {
            let handle = hidden(&r.body, "handle").ok_or("no handle")?;
            let csrf = hidden(&r.body, "csrf").ok_or("no csrf")?;
            let body = form(&[
                ("handle", &handle),
                ("csrf", &csrf),
                ("username", "bench"),
                ("password", "bench-password"),
            ]);
            r = send(
                client,
                Method::POST,
                &format!("{base}/login"),
                &[form_type(), (header::COOKIE, cookie_header(&cookies))],
                body,
            )
            .await?;
            keep(&mut cookies, &r);
        }
        if r.status == StatusCode::OK
            && String::from_utf8_lossy(&r.body).contains("name=\"decision\"")
        {
            let handle = hidden(&r.body, "handle").ok_or("no handle")?;
            let csrf = hidden(&r.body, "csrf").ok_or("no csrf")?;
            let body = form(&[("handle", &handle), ("csrf", &csrf), ("decision", "allow")]);
            r = send(
                client,
                Method::POST,
                &format!("{base}/consent"),
                &[form_type(), (header::COOKIE, cookie_header(&cookies))],
                body,
            )
            .await?;
            keep(&mut cookies, &r);
        }
        if r.status != StatusCode::SEE_OTHER {
            return Err(format!(
                "login/consent ended with {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
    }
    let session = cookies
        .get("oidc_flow_session")
        .ok_or("no session cookie")?;
    Ok(format!("oidc_flow_session={session}"))
}

/// Step 1 of the flow: the code, from a silent authorization.
async fn get_code(s: &Setup, rp: &Rp, state: &str, challenge: &str) -> Result<String, String> {
    let url = authorize_url(s.base(), rp, state, challenge);
    let r = send(
        &s.client,
        Method::GET,
        &url,
        &[(header::COOKIE, s.cookie.clone())],
        Vec::new(),
    )
    .await?;
    if r.status != StatusCode::SEE_OTHER {
        return Err(format!(
            "authorize: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    let loc = r.location.ok_or("authorize: no Location")?;
    let query = loc
        .strip_prefix(REDIRECT)
        .and_then(|q| q.strip_prefix('?'))
        .ok_or("authorize: wrong redirect")?;
    let mut code = None;
    let mut got_state = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "state" => got_state = Some(v.into_owned()),
            "error" => return Err(format!("authorize: error {v}")),
            _ => {}
        }
    }
    if got_state.as_deref() != Some(state) {
        return Err("authorize: state not echoed".into());
    }
    code.ok_or_else(|| "authorize: no code".into())
}

/// Step 2: the token exchange, response checked (tokens present, ID token alg as asked).
async fn exchange(s: &Setup, rp: &Rp, code: &str, verifier: &str) -> Result<String, String> {
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ]);
    let json = token_request(s, rp, body, "token").await?;
    let access = json["access_token"]
        .as_str()
        .ok_or("token: no access_token")?;
    let id_token = json["id_token"].as_str().ok_or("token: no id_token")?;
    let header = id_token.split('.').next().ok_or("token: bad id_token")?;
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or("token: bad id_token header")?;
    if header["alg"] != rp.alg || id_token.split('.').count() != 3 {
        return Err(format!(
            "token: id_token alg {} (wanted {})",
            header["alg"], rp.alg
        ));
    }
    Ok(access.to_owned())
}

/// A login page: its form's handle and CSRF token, and the CSRF cookie that goes with them.
struct LoginPage {
    handle: String,
    csrf: String,
    cookie: String,
}

/// Step 1 of a password login: authorize without a session, which answers with the login page.
async fn login_page(s: &Setup, rp: &Rp, state: &str) -> Result<LoginPage, String> {
    let (_, challenge) = pkce();
    let url = authorize_url(s.base(), rp, state, &challenge).replace("&prompt=none", "");
    let r = send(&s.client, Method::GET, &url, &[], Vec::new()).await?;
    if r.status != StatusCode::OK || !String::from_utf8_lossy(&r.body).contains("name=\"password\"")
    {
        return Err(format!(
            "login page: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    }
    let cookie = r
        .set_cookie
        .iter()
        .filter_map(|sc| sc.split(';').next())
        .find(|pair| pair.contains("csrf"))
        .ok_or("login page: no CSRF cookie")?
        .to_owned();
    Ok(LoginPage {
        handle: hidden(&r.body, "handle").ok_or("login page: no handle")?,
        csrf: hidden(&r.body, "csrf").ok_or("login page: no csrf")?,
        cookie,
    })
}

/// Step 2: the form posted with the right password; the answer must be the redirect with a
/// code and a session cookie.
async fn password_login(s: &Setup, page: LoginPage) -> Result<(), String> {
    let body = form(&[
        ("handle", &page.handle),
        ("csrf", &page.csrf),
        ("username", "bench"),
        ("password", "bench-password"),
    ]);
    let r = send(
        &s.client,
        Method::POST,
        &format!("{}/login", s.base()),
        &[form_type(), (header::COOKIE, page.cookie)],
        body,
    )
    .await?;
    if r.status != StatusCode::SEE_OTHER {
        let text = String::from_utf8_lossy(&r.body);
        let text = text.get(..200.min(text.len())).unwrap_or_default();
        return Err(format!("login: {} {text}", r.status));
    }
    let location = r.location.ok_or("login: no Location")?;
    if !location.starts_with(REDIRECT) || !location.contains("code=") {
        return Err(format!("login: redirected to {location}"));
    }
    if !r.set_cookie.iter().any(|c| c.contains("session")) {
        return Err("login: no session cookie".into());
    }
    Ok(())
}

#[derive(Default)]
struct Samples {
    steps: Vec<Vec<u32>>,
    errors: u64,
    first_error: Option<String>,
    done: u64,
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

async fn worker(
    s: Arc<Setup>,
    mode: Mode,
    rp: Rp,
    deadline: Instant,
    codes: Arc<CodePool>,
    access: Arc<String>,
    id: usize,
) -> Samples {
    let mut out = Samples {
        steps: vec![Vec::new(), Vec::new()],
        ..Samples::default()
    };
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        n += 1;
        let result: Result<(), String> = async {
            match mode {
                Mode::Code | Mode::CodeEs256 => {
                    let (verifier, challenge) = pkce();
                    let state = format!("w{id}-{n}");
                    let t0 = Instant::now();
                    let code = get_code(&s, &rp, &state, &challenge).await?;
                    let t1 = Instant::now();
                    exchange(&s, &rp, &code, &verifier).await?;
                    let t2 = Instant::now();
                    out.steps[0].push(micros(t1 - t0));
                    out.steps[1].push(micros(t2 - t1));
                }
                Mode::Token => {
                    let Some((code, verifier)) = codes.take() else {
                        return Err("out of codes".into());
                    };
                    let t0 = Instant::now();
                    exchange(&s, &rp, &code, &verifier).await?;
                    out.steps[0].push(micros(t0.elapsed()));
                }
                Mode::ClientCredentials | Mode::ClientCredentialsJwt => {
                    let t0 = Instant::now();
                    client_credentials(&s, &rp, mode == Mode::ClientCredentialsJwt).await?;
                    out.steps[0].push(micros(t0.elapsed()));
                }
                Mode::Introspection => {
                    let t0 = Instant::now();
                    let r = token_form(&s, &rp, "/introspect", &access).await?;
                    if r.status != StatusCode::OK || !r.body.starts_with(b"{\"active\":true") {
                        return Err(format!(
                            "introspection: {} {}",
                            r.status,
                            String::from_utf8_lossy(&r.body)
                        ));
                    }
                    out.steps[0].push(micros(t0.elapsed()));
                }
                Mode::Revocation => {
                    let Some((token, _)) = codes.take() else {
                        return Err("out of codes".into());
                    };
                    let t0 = Instant::now();
                    let r = token_form(&s, &rp, "/revoke", &token).await?;
                    if r.status != StatusCode::OK {
                        return Err(format!("revocation: {}", r.status));
                    }
                    out.steps[0].push(micros(t0.elapsed()));
                }
                Mode::Userinfo => {
                    let t0 = Instant::now();
                    let r = send(
                        &s.client,
                        Method::GET,
                        &format!("{}/userinfo", s.base()),
                        &[(header::AUTHORIZATION, format!("Bearer {access}"))],
                        Vec::new(),
                    )
                    .await?;
                    if r.status != StatusCode::OK || !r.body.starts_with(b"{") {
                        return Err(format!("userinfo: {}", r.status));
                    }
                    out.steps[0].push(micros(t0.elapsed()));
                }
                Mode::Login => {
                    let t0 = Instant::now();
                    let page = login_page(&s, &rp, &format!("w{id}-{n}")).await?;
                    let t1 = Instant::now();
                    password_login(&s, page).await?;
                    let t2 = Instant::now();
                    out.steps[0].push(micros(t1 - t0));
                    out.steps[1].push(micros(t2 - t1));
                }
                Mode::AuthorizeFlood => {
                    let (_, challenge) = pkce();
                    // As long as the core accepts (2,048 bytes), padded after a unique prefix.
                    let prefix = format!("w{id}-{n}-");
                    let state = format!("{prefix}{}", "s".repeat(2048 - prefix.len()));
                    let url = authorize_url(s.base(), &rp, &state, &challenge)
                        .replace("&prompt=none", "");
                    let t0 = Instant::now();
                    let r = send(&s.client, Method::GET, &url, &[], Vec::new()).await?;
                    if r.status != StatusCode::OK
                        || !String::from_utf8_lossy(&r.body).contains("name=\"password\"")
                    {
                        return Err(format!("authorize flood: {} (no login page)", r.status));
                    }
                    out.steps[0].push(micros(t0.elapsed()));
                }
                Mode::Discovery => {
                    let t0 = Instant::now();
                    let r = send(
                        &s.client,
                        Method::GET,
                        &format!("{}/.well-known/openid-configuration", s.base()),
                        &[],
                        Vec::new(),
                    )
                    .await?;
                    if r.status != StatusCode::OK || r.body.len() < 100 {
                        return Err(format!("discovery: {}", r.status));
                    }
                    out.steps[0].push(micros(t0.elapsed()));
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => out.done += 1,
            Err(e) if e == "out of codes" => break,
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(e);
            }
        }
    }
    out
}

/// Codes minted before a token-only run.
struct CodePool {
    codes: std::sync::Mutex<Vec<(String, String)>>,
}

impl CodePool {
    fn take(&self) -> Option<(String, String)> {
        self.codes.lock().ok()?.pop()
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted.get(rank).copied().unwrap_or_default()) / 1000.0
}

struct Row {
    mode: Mode,
    concurrency: usize,
    rate: f64,
    done: u64,
    errors: u64,
    first_error: Option<String>,
    steps: Vec<(f64, f64)>,
}

async fn run(
    s: Arc<Setup>,
    mode: Mode,
    rp: Rp,
    concurrency: usize,
    duration: Duration,
    access: Arc<String>,
) -> Row {
    let mut pool = Vec::new();
    if mode == Mode::Token {
        // Mint the codes first (up to 30 s of exchanges at 3,000/s), well inside their lifetime.
        let want = ((duration.as_secs_f64() * 3000.0) as usize).clamp(100, 30_000);
        let minted = Arc::new(std::sync::Mutex::new(Vec::with_capacity(want)));
        let counter = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency.max(4) {
            let (s, rp, minted, counter) = (s.clone(), rp.clone(), minted.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                while counter.fetch_add(1, Ordering::Relaxed) < want as u64 {
                    let (verifier, challenge) = pkce();
                    if let Ok(code) = get_code(&s, &rp, "mint", &challenge).await
                        && let Ok(mut m) = minted.lock()
                    {
                        m.push((code, verifier));
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        pool = minted.lock().map(|m| m.clone()).unwrap_or_default();
    }
    if mode == Mode::Revocation {
        // Live access tokens of the service to revoke, each once (client credentials mint
        // them quickly): up to 30 s of revocations at 15,000/s.
        let want = ((duration.as_secs_f64() * 15_000.0) as usize).clamp(100, 450_000);
        let minted = Arc::new(std::sync::Mutex::new(Vec::with_capacity(want)));
        let counter = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency.max(4) {
            let (s, rp, minted, counter) = (s.clone(), rp.clone(), minted.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                while counter.fetch_add(1, Ordering::Relaxed) < want as u64 {
                    if let Ok(token) = client_credentials(&s, &rp, false).await
                        && let Ok(mut m) = minted.lock()
                    {
                        m.push((token, String::new()));
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        pool = minted.lock().map(|m| m.clone()).unwrap_or_default();
    }
    let codes = Arc::new(CodePool {
        codes: std::sync::Mutex::new(pool),
    });
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for id in 0..concurrency {
        tasks.push(tokio::spawn(worker(
            s.clone(),
            mode,
            rp.clone(),
            deadline,
            codes.clone(),
            access.clone(),
            id,
        )));
    }
    let mut all = Samples {
        steps: vec![Vec::new(), Vec::new()],
        ..Samples::default()
    };
    for t in tasks {
        if let Ok(w) = t.await {
            all.done += w.done;
            all.errors += w.errors;
            if all.first_error.is_none() {
                all.first_error = w.first_error;
            }
            for (a, b) in all.steps.iter_mut().zip(w.steps) {
                a.extend(b);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let steps = all
        .steps
        .iter_mut()
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.sort_unstable();
            (percentile(v, 0.5), percentile(v, 0.99))
        })
        .collect();
    Row {
        mode,
        concurrency,
        rate: all.done as f64 / elapsed,
        done: all.done,
        errors: all.errors,
        first_error: all.first_error,
        steps,
    }
}

/// `sign/s` of RSA-2048 from `openssl speed`, on the server's core when pinned.
fn rsa_sign_rate(pin: bool) -> Option<f64> {
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", "openssl"]);
        c
    } else {
        Command::new("openssl")
    };
    let out = cmd
        .args(["speed", "-seconds", "3", "rsa2048"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "rsa 2048 bits 0.000396s 0.000012s   2523.4  83333.3"
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("rsa 2048 bits"))?;
    let nums: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse::<f64>().ok())
        .collect();
    nums.get(1).copied()
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmHWM:")
}

fn rss_kib(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:")
}

/// The CPU time (user + system) the process `pid` has used so far, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Busy and stolen clock ticks of core 0 so far (`/proc/stat`): a hypervisor that takes the
/// server's core away (steal) shows here, and makes flows/s noisy whatever the code does.
fn core0_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu0 "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let steal = v.get(7).copied()?;
    Some((total, steal))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`; 100 on every Linux this runs on).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn svg(rows: &[Row]) -> String {
    let series: Vec<(Mode, Vec<(usize, f64)>)> = [Mode::Code, Mode::CodeEs256]
        .into_iter()
        .map(|m| {
            (
                m,
                rows.iter()
                    .filter(|r| r.mode == m)
                    .map(|r| (r.concurrency, r.rate))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, pts)| !pts.is_empty())
        .collect();
    let max_c = rows.iter().map(|r| r.concurrency).max().unwrap_or(1).max(1) as f64;
    let max_r = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(1.0_f64, f64::max)
        * 1.1;
    let (w, h, l, b) = (640.0, 400.0, 70.0, 50.0);
    let x = |c: usize| l + (c as f64 / max_c) * (w - l - 20.0);
    let y = |r: f64| h - b - (r / max_r) * (h - b - 20.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    out.push_str(&format!(
        "<line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - b,
        w - 20.0,
        h - b
    ));
    out.push_str(&format!(
        "<line x1=\"{l}\" y1=\"20\" x2=\"{l}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - b
    ));
    out.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">concurrency</text>\n",
        (w + l) / 2.0,
        h - 10.0
    ));
    out.push_str(&format!("<text x=\"15\" y=\"{}\" transform=\"rotate(-90 15 {})\" text-anchor=\"middle\">code flows/s</text>\n", h / 2.0, h / 2.0));
    for i in 0..=4 {
        let r = max_r * f64::from(i) / 4.0;
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.0}</text>\n",
            l - 5.0,
            y(r) + 4.0,
            r
        ));
    }
    let colors = ["#1f77b4", "#d62728"];
    for (i, (mode, pts)) in series.iter().enumerate() {
        let color = colors.get(i).copied().unwrap_or("black");
        let poly: Vec<String> = pts
            .iter()
            .map(|(c, r)| format!("{:.1},{:.1}", x(*c), y(*r)))
            .collect();
        out.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>\n",
            poly.join(" ")
        ));
        for (c, r) in pts {
            out.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>\n",
                x(*c),
                y(*r)
            ));
            out.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{c}</text>\n",
                x(*c),
                h - b + 15.0
            ));
        }
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{}</text>\n",
            l + 10.0,
            35.0 + 15.0 * i as f64,
            mode.name()
        ));
    }
    out.push_str("</svg>\n");
    out
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.pin && std::env::var_os(PINNED_ENV).is_none() {
        // Re-run this benchmark on core 1; the server goes to core 0.
        let Ok(me) = std::env::current_exe() else {
            eprintln!("cannot find this executable");
            return std::process::ExitCode::FAILURE;
        };
        let status = Command::new("taskset")
            .args(["-c", "1"])
            .arg(me)
            .args(std::env::args_os().skip(1))
            .env(PINNED_ENV, "1")
            .status();
        return match status {
            Ok(s) if s.success() => std::process::ExitCode::SUCCESS,
            _ => std::process::ExitCode::FAILURE,
        };
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(bench(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn bench(args: Args) -> Result<bool, String> {
    let server = match args.server.clone() {
        Some(p) => p,
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("oidc-flow"),
    };
    if !server.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release -p oidc-flow-hyper)",
            server.display()
        ));
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let pg = match &args.database {
        Some(server_url) => Some(Postgres::create(server_url).await?),
        None => None,
    };
    let db = match &pg {
        Some(pg) => {
            let mut key = [0u8; 32];
            aws_lc_rs::rand::fill(&mut key).map_err(|_| "no randomness".to_owned())?;
            let _ = CHILD_ENV.set(vec![(
                "OIDC_FLOW_DATA_KEY".to_owned(),
                URL_SAFE_NO_PAD.encode(key),
            )]);
            pg.url.clone()
        }
        None => format!("sqlite://{}", dir.path().join("bench.sqlite").display()),
    };
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector);

    // Node 0 first: it creates the schema and keys on the fresh database; every node
    // answers as node 0's issuer.
    let mut children = Vec::new();
    let mut bases: Vec<String> = Vec::new();
    let mut started = Ok(());
    for _ in 0..args.nodes {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let issuer = bases.first().cloned().unwrap_or_else(|| base.clone());
        let mut cmd = if args.pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(&server);
            c
        } else {
            Command::new(&server)
        };
        let child = cmd
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--issuer",
                &issuer,
                "--database",
                &db,
            ])
            .envs(child_env().iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
        children.push(child);
        if !ready(&client, &base).await {
            started = Err(format!("the server at {base} did not come up"));
            break;
        }
        bases.push(base);
    }
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    let pid = pids.first().copied().unwrap_or_default();
    let base = bases.first().cloned().unwrap_or_default();
    let servers_cpu = || -> Option<u64> { pids.iter().map(|&p| cpu_ticks(p)).sum() };
    let result = async {
        started?;
        run_cli(&server, &["user", "add", "--database", &db, "--username", "bench", "--password", "bench-password", "--email", "bench@example.com"])?;
        let rs = add_client(&server, &db, "RS256")?;
        let es = add_client(&server, &db, "ES256")?;
        let service = add_service(&server, &db, false)?;
        let jwt_service = add_service(&server, &db, true)?;
        let cookie = login_once(&client, &base, &[rs.clone(), es.clone()]).await?;
        let setup = Arc::new(Setup {
            bases: bases.clone(),
            next: std::sync::atomic::AtomicUsize::new(0),
            client: client.clone(),
            cookie,
        });
        let (verifier, challenge) = pkce();
        let code = get_code(&setup, &rs, "warm", &challenge).await?;
        let access = Arc::new(exchange(&setup, &rs, &code, &verifier).await?);

        // The login above verified a password (argon2id, 7 MiB): note the peak so far, then
        // reset the high-water mark so the figure below is the peak under the load alone.
        let setup_peak = peak_rss_kib(pid);
        let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let sign_rate = rsa_sign_rate(args.pin);
        println!(
            "server: {} ({} node{}, pid {}){}; database: {}",
            server.display(),
            pids.len(),
            if pids.len() == 1 { "" } else { "s" },
            pids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "),
            if args.pin { ", pinned to core 0; load on core 1" } else { "" },
            if pg.is_some() { "PostgreSQL (a fresh database; its server not pinned)" } else { "SQLite file" }
        );
        match sign_rate {
            Some(r) => println!("RS256 signing limit of the server's core (openssl speed rsa2048): {r:.0} sign/s"),
            None => println!("RS256 signing limit: openssl speed unavailable"),
        }
        println!();
        // The server's cores: one when pinned, else what this machine offers it.
        let server_cores = if args.pin {
            1
        } else {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        };
        println!("| mode | C | req or flows/s | per server core | server CPU per op (µs) | % of RS256 limit | p50 / p99 step 1 (ms) | p50 / p99 step 2 (ms) | ok | errors | peak RSS (MB) | RSS after (MB) | core 0 stolen | database growth (MB) | db round trips per op | db CPU per op (µs) |");
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        // The database and its WAL together: what a run made the server write to disk.
        let sqlite_bytes = || {
            ["", "-wal"]
                .iter()
                .filter_map(|suffix| std::fs::metadata(dir.path().join(format!("bench.sqlite{suffix}"))).ok())
                .map(|m| m.len())
                .sum::<u64>()
        };
        let duration = Duration::from_secs_f64(args.duration);
        let mut rows = Vec::new();
        for &mode in &args.modes {
            for &c in &args.concurrency {
                let rp = match mode {
                    Mode::CodeEs256 => es.clone(),
                    Mode::ClientCredentials | Mode::Revocation => service.clone(),
                    Mode::ClientCredentialsJwt => jwt_service.clone(),
                    _ => rs.clone(),
                };
                // Each run's own peak: reset the high-water mark before it.
                let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
                let db_bytes = async || match &pg {
                    Some(pg) => pg.size().await.unwrap_or(0),
                    None => sqlite_bytes(),
                };
                let (cpu_before, core0_before, db_before) = (servers_cpu(), core0_ticks(), db_bytes().await);
                let pg_before = match &pg {
                    Some(pg) => Some(pg.settled_counters().await?),
                    None => None,
                };
                let row = run(setup.clone(), mode, rp, c.max(1), duration, access.clone()).await;
                let cpu_per_op = match (cpu_before, servers_cpu()) {
                    (Some(a), Some(b)) if row.done > 0 => {
                        format!("{:.0}", (b.saturating_sub(a)) as f64 / CLOCK_TICKS_PER_SEC * 1e6 / row.done as f64)
                    }
                    _ => "—".to_owned(),
                };
                let stolen = match (core0_before, core0_ticks()) {
                    (Some((t0, s0)), Some((t1, s1))) if t1 > t0 => {
                        format!("{:.0} %", 100.0 * s1.saturating_sub(s0) as f64 / (t1 - t0) as f64)
                    }
                    _ => "—".to_owned(),
                };
                let peak = peak_rss_kib(pid).filter(|_| hwm_reset).map_or("—".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0));
                // Once the load stopped (in-flight requests answered): does the memory stay?
                tokio::time::sleep(Duration::from_millis(500)).await;
                let after = rss_kib(pid).map_or("—".to_owned(), |k| format!("{:.1}", k as f64 / 1024.0));
                // The database's own counters (its statistics lag a moment: read them after
                // the wait above): transactions, which are round trips here (a transaction's
                // statements are pipelined), and its backends' CPU.
                let (round_trips, db_cpu) = match (&pg, pg_before) {
                    (Some(pg), Some(before)) if row.done > 0 => {
                        let after = pg.settled_counters().await?;
                        let per_op = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / row.done as f64;
                        (
                            format!("{:.1}", per_op(before.transactions, after.transactions)),
                            format!("{:.0}", per_op(before.cpu_ticks, after.cpu_ticks) / CLOCK_TICKS_PER_SEC * 1e6),
                        )
                    }
                    _ => ("—".to_owned(), "—".to_owned()),
                };
                let pct = match (mode, sign_rate) {
                    (Mode::Code | Mode::Token | Mode::ClientCredentialsJwt, Some(limit)) => format!("{:.0} %", 100.0 * row.rate / limit),
                    _ => "—".to_owned(),
                };
                let step = |i: usize| row.steps.get(i).map_or("—".to_owned(), |(a, b)| format!("{a:.2} / {b:.2}"));
                println!(
                    "| {} | {} | {:.0} | {:.1} | {cpu_per_op} | {pct} | {} | {} | {} | {} | {peak} | {after} | {stolen} | {:.1} | {round_trips} | {db_cpu} |",
                    mode.name(),
                    row.concurrency,
                    row.rate,
                    row.rate / server_cores as f64,
                    step(0),
                    step(1),
                    row.done,
                    row.errors,
                    (db_bytes().await.saturating_sub(db_before)) as f64 / 1_048_576.0
                );
                if let Some(e) = &row.first_error {
                    println!("  first error: {e}");
                }
                rows.push(row);
            }
        }
        println!();
        let mb = |kib: u64| kib as f64 / 1024.0;
        match (peak_rss_kib(pid), hwm_reset) {
            (Some(kib), true) => println!("server peak RSS during the last run (VmHWM, reset before each run): {:.1} MB", mb(kib)),
            (Some(kib), false) => println!("server peak RSS (VmHWM, whole run): {:.1} MB", mb(kib)),
            (None, _) => println!("server peak RSS: unavailable"),
        }
        if let Some(kib) = setup_peak.filter(|_| hwm_reset) {
            println!("server peak RSS during setup (start, key generation, one argon2id login): {:.1} MB", mb(kib));
        }
        let size = |suffix: &str| {
            std::fs::metadata(dir.path().join(format!("bench.sqlite{suffix}")))
                .map_or(0.0, |m| m.len() as f64 / 1_048_576.0)
        };
        match &pg {
            Some(pg) => println!(
                "database {:.1} MB at the end",
                pg.size().await.unwrap_or(0) as f64 / 1_048_576.0
            ),
            None => println!(
                "database file {:.1} MB, WAL {:.1} MB at the end",
                size(""),
                size("-wal")
            ),
        }
        println!("steps: code = 1 authorize (prompt=none, session cookie), 2 token exchange; login = 1 authorize (login page), 2 POST /login (argon2id); other modes: 1 = the request (revocation: tokens minted by client_credentials before the run, each revoked once)");
        if let Some(path) = &args.svg {
            std::fs::write(path, svg(&rows)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!("plot: {}", path.display());
        }
        Ok(rows.iter().all(|r| r.errors == 0 && r.done > 0) || !args.strict)
    }
    .await;
    // SIGTERM for a graceful stop, then make sure they are gone.
    for pid in &pids {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    for child in &mut children {
        for _ in 0..50 {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(pg) = pg {
        pg.drop_database().await;
    }
    result
}
