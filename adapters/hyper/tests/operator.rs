//! The operator's guarantees of the `oidc-flow` binary, run as a subprocess as an operator
//! runs it: `serve` refuses the demo account off loopback and creates nothing without
//! `--demo`; the database, its `-wal`/`-shm` files and the data key file are private (0600)
//! and hold no clear private key; `keys rotate` / `keys retire` reach a running server
//! (old ID tokens keep verifying until their key is retired, then stop); client, user and
//! session changes made by the command line are honoured by a running server within
//! seconds; and wrong input ends with a non-zero exit and an `error:` line.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{Browser, OwnPages as _, REDIRECT, Registered, Resp};
use hyper::StatusCode;
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{ClaimsVerificationError, ClientId, IssuerUrl, Nonce};
use serde_json::Value;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_oidc-flow");
// The limits below are deadlines for things that must happen, not measurements: each wait
// polls and returns as soon as the thing is seen, so a generous limit costs nothing when all
// is well and still fails the test when the thing never happens. They are set for a debug
// build on a small, loaded machine (CI runs on two cores, with the other tests of this binary
// in parallel), where key generation and argon2 take seconds, not milliseconds.
/// How long a server may take to answer its discovery document after it was started (a new
/// database: its keys are made first).
const READY: Duration = Duration::from_secs(60);
/// How long a command-line run may take (argon2 in a debug build included).
const CLI_LIMIT: Duration = Duration::from_secs(120);
/// How long a running server may take to see rotated or retired keys. It polls every 2 s
/// (README: "within 2 seconds"); the margin is for a loaded machine, and a server that
/// never reloads still fails.
const KEYS_SEEN: Duration = Duration::from_secs(30);
/// How long a running server may take to see a client, user or session change. The client
/// cache checks the database every second; the margin is for a loaded machine, and a server
/// that never sees the change still fails.
const CHANGE_SEEN: Duration = Duration::from_secs(30);
/// The second redirect URI `client update` switches to.
const OTHER: &str = "https://rp.example/other";
/// The session cookie of an http issuer.
const SESSION_COOKIE: &str = "oidc_flow_session";

// ------------------------------------------------------------------ processes

/// What a finished command-line run printed.
struct Run {
    args: Vec<String>,
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Its standard output, after checking it exited 0.
    fn ok(&self) -> &str {
        assert!(
            self.status.success(),
            "oidc-flow {:?} failed ({}): {}",
            self.args,
            self.status,
            self.stderr
        );
        &self.stdout
    }

    /// Its standard output as JSON, after checking it exited 0.
    fn json(&self) -> Value {
        let out = self.ok();
        serde_json::from_str(out)
            .unwrap_or_else(|e| panic!("oidc-flow {:?}: not JSON ({e}): {out}", self.args))
    }

    /// Its standard error, after checking it exited non-zero with an `error:` line.
    fn failed(&self) -> &str {
        assert!(
            !self.status.success(),
            "oidc-flow {:?} succeeded but should have failed: {}",
            self.args,
            self.stdout
        );
        assert!(
            self.stderr.lines().any(|l| l.starts_with("error:")),
            "oidc-flow {:?} failed ({}) without an `error:` line: {}",
            self.args,
            self.status,
            self.stderr
        );
        &self.stderr
    }
}

/// A file the child writes and the test reads back afterwards.
fn capture() -> (File, Stdio) {
    let file = tempfile::tempfile().unwrap();
    let stdio = Stdio::from(file.try_clone().unwrap());
    (file, stdio)
}

fn read_back(mut file: File) -> String {
    let mut text = String::new();
    file.rewind().unwrap();
    file.read_to_string(&mut text).unwrap();
    text
}

/// Runs `oidc-flow args` with `stdin` as its standard input; kills it and fails the test if
/// it runs longer than `limit` (a `serve` that should have refused to start would not end).
fn run(args: &[String], stdin: Option<&str>, limit: Duration, data_key: Option<&str>) -> Run {
    let (out, out_stdio) = capture();
    let (err, err_stdio) = capture();
    let mut command = Command::new(BIN);
    with_data_key(&mut command, data_key);
    let mut child = command
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("OIDC_FLOW_DATABASE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(out_stdio)
        .stderr(err_stdio)
        .spawn()
        .unwrap();
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // The pipe closes when dropped: end of input. A child that exits early is no error.
        let _ = pipe.write_all(text.as_bytes());
    }
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "oidc-flow {args:?} still running after {limit:?}; stderr: {}",
                read_back(err)
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        args: args.to_vec(),
        status,
        stdout: read_back(out),
        stderr: read_back(err),
    }
}

/// `OIDC_FLOW_DATA_KEY` set to `data_key`, or removed (the key file is then used).
fn with_data_key(command: &mut Command, data_key: Option<&str>) {
    match data_key {
        Some(key) => command.env("OIDC_FLOW_DATA_KEY", key),
        None => command.env_remove("OIDC_FLOW_DATA_KEY"),
    };
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// A port nothing listens on (bound, then freed for the server).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A temporary directory with `db.sqlite` in it, and the command line on that database.
struct Db {
    dir: tempfile::TempDir,
    url: String,
    /// `OIDC_FLOW_DATA_KEY` for every command and server on this database, if any.
    data_key: Option<String>,
}

impl Db {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        Self {
            dir,
            url,
            data_key: None,
        }
    }

    /// `db.sqlite` plus `suffix` (`""`, `"-wal"`, `"-shm"`, `".key"`).
    fn file(&self, suffix: &str) -> PathBuf {
        self.dir.path().join(format!("db.sqlite{suffix}"))
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut all = owned(&["--database", &self.url]);
        all.extend(owned(args));
        all
    }

    /// `oidc-flow --database <db> args`.
    fn cli(&self, args: &[&str]) -> Run {
        self.cli_within(args, CLI_LIMIT)
    }

    /// As [`Db::cli`], failing the test if it runs longer than `limit`.
    fn cli_within(&self, args: &[&str], limit: Duration) -> Run {
        run(&self.args(args), None, limit, self.data_key.as_deref())
    }

    /// As [`Db::cli`], off the async runtime (so the browser's connections stay served).
    async fn cli_async(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let args = self.args(args);
        let stdin = stdin.map(str::to_owned);
        let key = self.data_key.clone();
        tokio::task::spawn_blocking(move || run(&args, stdin.as_deref(), CLI_LIMIT, key.as_deref()))
            .await
            .unwrap()
    }
}

/// `oidc-flow serve` in the background; killed (and reaped) when dropped.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// `serve --listen 127.0.0.1:PORT --issuer http://127.0.0.1:PORT` plus `extra`, on `db`.
    fn start(db: &Db, extra: &[&str]) -> Self {
        Self::start_on_free_port(db, |port| {
            let mut args = vec!["--issuer".to_owned(), format!("http://127.0.0.1:{port}")];
            args.extend(owned(extra));
            args
        })
    }

    /// `serve --listen 127.0.0.1:PORT` plus `extra(PORT)` (which names the issuer), on `db`,
    /// on a free port; returns once the discovery document is served.
    ///
    /// The port is free when picked, but the server binds it only after opening the database
    /// and making its keys (seconds in a debug build): should anything take it meanwhile (a
    /// test running in parallel), the server cannot listen and exits, and another port is
    /// tried. Any other early exit fails the test.
    fn start_on_free_port(db: &Db, extra: impl Fn(u16) -> Vec<String>) -> Self {
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let port = free_port();
            let extra = extra(port);
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let mut server = Self::spawn(db, port, &extra);
            match server.wait_ready() {
                Ok(()) => return server,
                Err(log) if attempt < ATTEMPTS && log.contains("cannot listen on") => {
                    eprintln!("port {port} was taken before the server bound it; another one");
                }
                Err(log) => panic!("oidc-flow serve exited: {log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Starts `serve --listen 127.0.0.1:PORT` plus `extra`, on `db`, without waiting.
    fn spawn(db: &Db, port: u16, extra: &[&str]) -> Self {
        let listen = format!("127.0.0.1:{port}");
        let mut args = db.args(&["serve", "--listen", &listen]);
        args.extend(owned(extra));
        let log = db.dir.path().join(format!("serve-{port}.log"));
        let mut command = Command::new(BIN);
        with_data_key(&mut command, db.data_key.as_deref());
        let child = command
            .args(&args)
            .env("RUST_LOG", "warn")
            .env_remove("OIDC_FLOW_DATABASE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, port, log }
    }

    /// Waits until the discovery document is served; `Err(log)` if the server exited first.
    /// Fails the test if it is neither ready nor gone within [`READY`].
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("({status}) {}", self.log()));
            }
            if http_get(self.port, "/.well-known/openid-configuration")
                .is_some_and(|(status, _)| status == 200)
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "oidc-flow serve not ready within {READY:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer())
    }

    /// Kills the server (SIGKILL: nothing is tidied on the way out) and reaps it.
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A code-flow authorization URL for `client_id` with `redirect` and `extra` parameters.
    fn authorize_url(&self, client_id: &str, redirect: &str, extra: &str) -> String {
        format!(
            "{}?response_type=code&scope=openid&state=st&client_id={client_id}&redirect_uri={}{extra}",
            self.url("/authorize"),
            enc(redirect)
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// GET over a plain blocking socket (no client that could panic while the server is not
/// up yet): the status and body, or `None` if nothing answered.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())?;
    Some((status, body))
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

// ------------------------------------------------------------------ HTTP flows

fn is_login_page(r: &Resp) -> bool {
    r.status == StatusCode::OK && r.body.contains("name=\"password\"")
}

fn is_consent_page(r: &Resp) -> bool {
    r.status == StatusCode::OK && r.body.contains("name=\"decision\"")
}

/// The error page shown instead of redirecting to an untrusted URI: 400, HTML, no Location.
fn is_error_page(r: &Resp) -> bool {
    r.status == StatusCode::BAD_REQUEST
        && r.header("location").is_none()
        && r.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
}

/// Posts our login form on `page` (which must be the login page).
async fn login(b: &mut Browser, server: &Server, page: &Resp, user: &str, pw: &str) -> Resp {
    assert!(
        is_login_page(page),
        "expected the login page, got {} {}",
        page.status,
        page.body
    );
    b.login_at(&server.url("/login"), page, user, pw).await
}

/// A client registered with `client add --redirect-uri REDIRECT` plus `extra`, and the user
/// `u` with `password`, both through the command line.
async fn client_and_user(db: &Db, extra: &[&str], password: &str) -> Registered {
    let mut args = vec!["client", "add", "--redirect-uri", REDIRECT];
    args.extend_from_slice(extra);
    let client = Registered::from(db.cli_async(&args, None).await.json());
    db.cli_async(
        &["user", "add", "--username", "u", "--password-stdin"],
        Some(&format!("{password}\n")),
    )
    .await
    .ok();
    client
}

/// Allows on the consent page `page`.
async fn allow(b: &mut Browser, server: &Server, page: &Resp) -> Resp {
    b.consent_at(&server.url("/consent"), page, "allow").await
}

/// The code of a successful redirect to `redirect` (state `st` echoed).
fn code_of(r: &Resp, redirect: &str) -> String {
    let location = r.header("location").unwrap_or_else(|| {
        panic!(
            "expected a redirect to {redirect}, got {} {}",
            r.status, r.body
        )
    });
    assert!(location.starts_with(redirect), "redirected to {location}");
    let p = r.response_params();
    assert_eq!(p.get("state").map(String::as_str), Some("st"), "{location}");
    p.get("code")
        .unwrap_or_else(|| panic!("no code in {location}"))
        .clone()
}

/// Follows a code-flow authorization through login (as `user`/`pw`, if asked) and consent
/// (if asked) and returns the code.
async fn code_flow(b: &mut Browser, server: &Server, url: &str, user: &str, pw: &str) -> String {
    let mut page = b.get(url).await;
    if is_login_page(&page) {
        page = login(b, server, &page, user, pw).await;
    }
    if is_consent_page(&page) {
        page = allow(b, server, &page).await;
    }
    let redirect = url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    code_of(&page, &redirect)
}

/// A token request redeeming `code` with client_secret_basic.
async fn redeem(server: &Server, client: &Registered, code: &str, redirect: &str) -> Resp {
    Browser::new()
        .post_form(
            &server.url("/token"),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect),
            ],
            &[("authorization", &client.basic())],
        )
        .await
}

/// The ID token of a successful token response.
fn id_token_of(r: &Resp) -> String {
    assert_eq!(r.status, StatusCode::OK, "token response: {}", r.body);
    r.json()["id_token"].as_str().unwrap().to_owned()
}

/// The `kid` of a JWT's header (after checking it is RS256).
fn kid_of(jwt: &str) -> String {
    let header = jwt.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256", "{header}");
    header["kid"].as_str().unwrap().to_owned()
}

/// The JWKS the server publishes now.
async fn jwks(server: &Server) -> Value {
    let r = Browser::new().get(&server.url("/jwks")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.json()
}

fn jwks_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Verifies an ID token as an independent relying party (openidconnect) against `jwks`:
/// signature, issuer, audience, expiry, nonce.
fn verify(
    jwt: &str,
    jwks: &Value,
    server: &Server,
    client_id: &str,
    nonce: &str,
) -> Result<(), ClaimsVerificationError> {
    let keys: CoreJsonWebKeySet = serde_json::from_value(jwks.clone()).unwrap();
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(client_id.to_owned()),
        IssuerUrl::new(server.issuer()).unwrap(),
        keys,
    );
    let token: CoreIdToken = jwt.parse().unwrap();
    token
        .claims(&verifier, &Nonce::new(nonce.to_owned()))
        .map(|_| ())
}

/// `keys list --json` as (kid, alg, state) triples, with `rotated_at` checked against the state.
async fn key_states(db: &Db) -> Vec<(String, String, String)> {
    let list = db.cli_async(&["keys", "list", "--json"], None).await.json();
    list.as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let state = k["state"].as_str().unwrap().to_owned();
            assert_eq!(
                k["rotated_at"].is_string(),
                state == "rotated",
                "rotated_at goes with the rotated state: {k}"
            );
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["alg"].as_str().unwrap().to_owned(),
                state,
            )
        })
        .collect()
}

/// Polls `$cond` (which may `.await`) every 50 ms until it holds; fails the test if it does
/// not within `$limit`.
macro_rules! eventually {
    ($limit:expr, $what:expr, $cond:expr) => {{
        let limit: Duration = $limit;
        let deadline = Instant::now() + limit;
        loop {
            if $cond {
                break;
            }
            assert!(Instant::now() < deadline, "not within {limit:?}: {}", $what);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

// ------------------------------------------------------------------ 1. safe defaults

/// `serve --demo` on a public issuer refuses to start, exits non-zero and says why (the demo
/// account is for loopback issuers only), and creates no demo user.
#[test]
fn demo_refused_on_a_public_issuer() {
    let db = Db::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let run = db.cli_within(
        &[
            "serve",
            "--demo",
            "--issuer",
            "https://id.example.com",
            "--listen",
            &listen,
        ],
        READY,
    );
    let stderr = run.failed();
    assert!(stderr.contains("loopback"), "names loopback: {stderr}");
    assert!(
        stderr.contains("https://id.example.com"),
        "names the issuer: {stderr}"
    );
    let show = db.cli(&["user", "show", "demo", "--json"]);
    assert!(show.failed().contains("no user `demo`"), "{}", show.stderr);
}

/// `serve` on a public issuer without `--demo` starts, serves that issuer, and creates no
/// user and no client.
#[test]
fn serve_without_demo_creates_no_user_and_no_client() {
    let db = Db::new();
    let server =
        Server::start_on_free_port(&db, |_| owned(&["--issuer", "https://id.example.com"]));
    let (status, body) = http_get(server.port, "/.well-known/openid-configuration").unwrap();
    assert_eq!(status, 200);
    let discovery: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(discovery["issuer"], "https://id.example.com");
    assert_eq!(
        db.cli(&["user", "list", "--json"]).json(),
        Value::Array(vec![])
    );
    assert_eq!(
        db.cli(&["client", "list", "--json"]).json(),
        Value::Array(vec![])
    );
}

/// `serve --demo` on a loopback issuer creates the demo user and the demo client.
#[test]
fn demo_on_loopback_creates_the_demo_user_and_client() {
    let db = Db::new();
    let _server = Server::start(&db, &["--demo"]);
    let demo = db.cli(&["user", "show", "demo", "--json"]).json();
    assert_eq!(demo["username"], "demo");
    assert!(!demo["sub"].as_str().unwrap().is_empty(), "{demo}");
    let clients = db.cli(&["client", "list", "--json"]).json();
    let names: Vec<&str> = clients
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["client_name"].as_str())
        .collect();
    assert_eq!(names, ["Demo client"], "{clients}");
}

// ------------------------------------------------------------------ 2. files

/// A new database, its `-wal` and `-shm` files and its data key file are created 0600; the
/// database and WAL bytes (left as they are by a killed server) hold the signing keys' rows
/// but no clear private key; and files opened up to 0644 by hand are 0600 again after the
/// next open.
#[test]
fn database_files_are_private_and_hold_no_clear_key() {
    let db = Db::new();
    let mut server = Server::start(&db, &[]);
    for suffix in ["", "-wal", "-shm", ".key"] {
        let path = db.file(suffix);
        assert_eq!(mode(&path), 0o600, "{} is owner-only", path.display());
    }
    let (_, body) = http_get(server.port, "/jwks").unwrap();
    let kids = jwks_kids(&serde_json::from_str(&body).unwrap());
    assert_eq!(kids.len(), 3, "RS256, ES256 and EdDSA keys: {body}");
    server.stop();

    // Read before any other open: a killed server leaves its WAL as it was.
    let mut bytes = std::fs::read(db.file("-wal")).unwrap();
    bytes.extend(std::fs::read(db.file("")).unwrap());
    for kid in &kids {
        assert!(
            contains(&bytes, kid.as_bytes()),
            "the key rows are in the files read (kid {kid})"
        );
    }
    assert!(!contains(&bytes, b"PRIVATE KEY"), "no clear private key");
    assert!(!contains(&bytes, b"-----BEGIN"), "no PEM at all");

    for suffix in ["", "-wal", "-shm"] {
        std::fs::set_permissions(db.file(suffix), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let _server = Server::start(&db, &[]);
    for suffix in ["", "-wal", "-shm"] {
        let path = db.file(suffix);
        assert_eq!(mode(&path), 0o600, "{} is owner-only again", path.display());
    }
}

// ------------------------------------------------------------------ 4. key rotation

/// `keys rotate` and `keys retire` reach a running server: after a rotation the JWKS holds
/// the old and the new RS256 key, new ID tokens are signed with the new one, and an ID token
/// signed before still verifies (openidconnect, against the served JWKS); after the old key
/// is retired it leaves the JWKS and that token stops verifying. `keys list --json` follows.
#[tokio::test]
async fn key_rotation_and_retirement_reach_a_running_server() {
    let db = Db::new();
    let client = client_and_user(&db, &[], "pw-of-u").await;
    let server = Server::start(&db, &[]);
    let id = client.client_id.as_str();

    let before = key_states(&db).await;
    assert_eq!(before.len(), 3, "{before:?}");
    assert!(before.iter().all(|(_, _, s)| s == "active"), "{before:?}");

    // An ID token signed by the first RS256 key.
    let mut b = Browser::new();
    let url = server.authorize_url(id, REDIRECT, "&nonce=n1");
    let code = code_flow(&mut b, &server, &url, "u", "pw-of-u").await;
    let old_token = id_token_of(&redeem(&server, &client, &code, REDIRECT).await);
    let old_kid = kid_of(&old_token);
    assert!(
        before
            .iter()
            .any(|(k, a, s)| *k == old_kid && a == "RS256" && s == "active"),
        "signed by the active RS256 key: {old_kid} {before:?}"
    );
    verify(&old_token, &jwks(&server).await, &server, id, "n1").unwrap();

    // Rotation.
    let out = db
        .cli_async(&["keys", "rotate", "--alg", "RS256"], None)
        .await;
    assert!(
        out.ok().contains(&old_kid),
        "names the key rotated out: {}",
        out.stdout
    );
    let rotated = key_states(&db).await;
    assert_eq!(rotated.len(), 4, "{rotated:?}");
    assert!(
        rotated.contains(&(old_kid.clone(), "RS256".into(), "rotated".into())),
        "{rotated:?}"
    );
    let new_kid = rotated
        .iter()
        .find(|(_, a, s)| a == "RS256" && s == "active")
        .unwrap()
        .0
        .clone();
    assert_ne!(new_kid, old_kid);
    for other in before.iter().filter(|(_, a, _)| a != "RS256") {
        assert!(rotated.contains(other), "{other:?} untouched: {rotated:?}");
    }
    eventually!(
        KEYS_SEEN,
        "the JWKS publishes the old and the new RS256 key",
        {
            let kids = jwks_kids(&jwks(&server).await);
            kids.contains(&old_kid) && kids.contains(&new_kid)
        }
    );

    // New tokens are signed by the new key; the old token still verifies.
    let url = server.authorize_url(id, REDIRECT, "&nonce=n2");
    let code = code_flow(&mut b, &server, &url, "u", "pw-of-u").await;
    let new_token = id_token_of(&redeem(&server, &client, &code, REDIRECT).await);
    assert_eq!(kid_of(&new_token), new_kid, "signed by the new key");
    let published = jwks(&server).await;
    verify(&new_token, &published, &server, id, "n2").unwrap();
    verify(&old_token, &published, &server, id, "n1")
        .unwrap_or_else(|e| panic!("a token of the rotated key still verifies: {e}"));

    // An active key cannot be retired.
    let refused = db.cli_async(&["keys", "retire", &new_kid], None).await;
    assert!(refused.failed().contains("active"), "{}", refused.stderr);

    // Retirement.
    let out = db.cli_async(&["keys", "retire", &old_kid], None).await;
    assert!(
        out.ok().contains(&format!("retired {old_kid}")),
        "{}",
        out.stdout
    );
    let after = key_states(&db).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(!after.iter().any(|(k, _, _)| *k == old_kid), "{after:?}");
    assert!(
        after.contains(&(new_kid.clone(), "RS256".into(), "active".into())),
        "{after:?}"
    );
    eventually!(KEYS_SEEN, "the retired key leaves the JWKS", {
        let kids = jwks_kids(&jwks(&server).await);
        !kids.contains(&old_kid) && kids.contains(&new_kid)
    });
    let published = jwks(&server).await;
    match verify(&old_token, &published, &server, id, "n1") {
        Err(ClaimsVerificationError::SignatureVerification(_)) => {}
        other => panic!("a token of the retired key must fail its signature check: {other:?}"),
    }
    verify(&new_token, &published, &server, id, "n2").unwrap();
}

// ------------------------------------------------------------------ 5. the command line

/// Changes made with the command line while the server runs are honoured by it: a client's
/// new redirect URI replaces the old one, a rotated secret replaces the old one at /token,
/// a changed password replaces the old one at the login page, `session revoke` ends the
/// browser's session (`prompt=none` is then login_required), and removed users and clients
/// are gone (`show` fails, and the server shows the error page for the removed client).
#[tokio::test]
async fn command_line_changes_reach_a_running_server() {
    let db = Db::new();
    let client = client_and_user(&db, &[], "first-pw").await;
    let server = Server::start(&db, &[]);
    let id = client.client_id.clone();
    let mut b = Browser::new();

    // Redirect URIs: the server knows (and caches) the client before the update.
    let at_old = server.authorize_url(&id, REDIRECT, "");
    let at_other = server.authorize_url(&id, OTHER, "");
    let page = b.get(&at_old).await;
    assert!(is_login_page(&page), "{} {}", page.status, page.body);
    let page = b.get(&at_other).await;
    assert!(is_error_page(&page), "{} {}", page.status, page.body);
    let updated = db
        .cli_async(&["client", "update", &id, "--redirect-uri", OTHER], None)
        .await
        .json();
    assert_eq!(updated["redirect_uris"], serde_json::json!([OTHER]));
    eventually!(
        CHANGE_SEEN,
        "the new redirect URI is accepted and the old one refused",
        is_login_page(&b.get(&at_other).await) && is_error_page(&b.get(&at_old).await)
    );

    // Password: the old one fails, the new one signs in.
    let out = db
        .cli_async(
            &["user", "passwd", "u", "--password-stdin"],
            Some("second-pw\n"),
        )
        .await;
    assert!(
        out.ok().contains("changed the password of u"),
        "{}",
        out.stdout
    );
    let page = b.get(&at_other).await;
    let again = login(&mut b, &server, &page, "u", "first-pw").await;
    assert!(
        is_login_page(&again),
        "the old password is refused with the login page: {} {}",
        again.status,
        again.body
    );
    assert!(!b.cookies.contains_key(SESSION_COOKIE), "no session");
    let page = login(&mut b, &server, &again, "u", "second-pw").await;
    assert!(b.cookies.contains_key(SESSION_COOKIE), "signed in");
    let page = if is_consent_page(&page) {
        allow(&mut b, &server, &page).await
    } else {
        page
    };
    let code = code_of(&page, OTHER);

    // Secret: the old one works before the rotation (invalid_grant for an unknown code is
    // the answer to an authenticated client) and is refused after; the new one redeems.
    let bogus = redeem(&server, &client, "no-such-code", OTHER).await;
    assert_eq!(bogus.status, StatusCode::BAD_REQUEST, "{}", bogus.body);
    assert_eq!(bogus.json()["error"], "invalid_grant");
    let rotated = db
        .cli_async(&["client", "update", &id, "--rotate-secret"], None)
        .await
        .json();
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(Some(&new_secret), client.client_secret.as_ref());
    let renewed = Registered {
        client_secret: Some(new_secret),
        ..client.clone()
    };
    eventually!(CHANGE_SEEN, "the old secret is refused", {
        let r = redeem(&server, &client, "no-such-code", OTHER).await;
        r.status == StatusCode::UNAUTHORIZED && r.json()["error"] == "invalid_client"
    });
    let tokens = redeem(&server, &renewed, &code, OTHER).await;
    id_token_of(&tokens);

    // Sessions: prompt=none succeeds while the session lives, and is login_required after
    // `session revoke`.
    let silent = server.authorize_url(&id, OTHER, "&prompt=none");
    let page = b.get(&silent).await;
    code_of(&page, OTHER);
    let ended = db
        .cli_async(&["session", "revoke", "--user", "u", "--json"], None)
        .await
        .json();
    assert_eq!(ended.as_array().unwrap().len(), 1, "{ended}");
    eventually!(CHANGE_SEEN, "prompt=none is login_required", {
        let page = b.get(&silent).await;
        page.header("location")
            .is_some_and(|l| l.starts_with(OTHER))
            && page.response_params().get("error").map(String::as_str) == Some("login_required")
    });

    // Removal.
    let out = db.cli_async(&["user", "remove", "u"], None).await;
    assert!(out.ok().contains("removed user u"), "{}", out.stdout);
    let show = db.cli_async(&["user", "show", "u"], None).await;
    assert!(show.failed().contains("no user `u`"), "{}", show.stderr);
    let out = db.cli_async(&["client", "remove", &id], None).await;
    assert!(out.ok().contains("removed client"), "{}", out.stdout);
    let show = db.cli_async(&["client", "show", &id], None).await;
    assert!(
        show.failed().contains(&format!("no client `{id}`")),
        "{}",
        show.stderr
    );
    eventually!(
        CHANGE_SEEN,
        "the removed client gets the error page",
        is_error_page(&b.get(&at_other).await)
    );
}

/// Wrong input ends with a non-zero exit and an `error:` line on stderr, and changes
/// nothing: unknown users, clients and kids; a `javascript:` redirect URI; a plain-http
/// redirect URI on a public host without `--allow-insecure-redirects` (the error names the
/// flag, and with it the URI is accepted); a session lifetime under a minute.
#[test]
fn wrong_input_fails_with_an_error_line() {
    let db = Db::new();
    for (args, says) in [
        (&["user", "show", "nobody"][..], "no user `nobody`"),
        (&["user", "remove", "nobody"], "no user `nobody`"),
        (
            &["user", "passwd", "nobody", "--password-stdin"],
            "no user `nobody`",
        ),
        (
            &["session", "revoke", "--user", "nobody"],
            "no user `nobody`",
        ),
        (&["client", "show", "nope"], "no client `nope`"),
        // Ids are base64url and may start with `-`: read as the id, not as a flag.
        (&["client", "show", "-B-nope"], "no client `-B-nope`"),
        (
            &["keys", "retire", "-k-nope"],
            "no signing key with kid `-k-nope`",
        ),
        (&["client", "remove", "nope"], "no client `nope`"),
        (
            &["client", "update", "nope", "--rotate-secret"],
            "no client `nope`",
        ),
        (&["keys", "retire", "nokid"], "nokid"),
        (
            &["client", "add", "--redirect-uri", "javascript:alert(1)"],
            "javascript",
        ),
        (
            &["client", "add", "--redirect-uri", "http://rp.example/cb"],
            "--allow-insecure-redirects",
        ),
        (&["client", "add"], "at least one redirect URI"),
        (
            &[
                "client",
                "add",
                "--grant-type",
                "client_credentials",
                "--token-endpoint-auth-method",
                "none",
            ],
            "confidential",
        ),
        (
            &["client", "add", "--grant-type", "magic"],
            "unsupported grant type `magic`",
        ),
        (
            &[
                "client",
                "add",
                "--grant-type",
                "client_credentials",
                "--token-endpoint-auth-method",
                "private_key_jwt",
                "--jwks-uri",
                "http://keys.example.com/jwks",
            ],
            "jwks_uri must be an https URL",
        ),
        (
            &["resource", "add", "--uri", "api.example.com"],
            "absolute URI",
        ),
        (
            &[
                "client",
                "add",
                "--grant-type",
                "client_credentials",
                "--token-endpoint-auth-method",
                "private_key_jwt",
            ],
            "private_key_jwt needs the client's public keys",
        ),
        (
            &[
                "client",
                "add",
                "--grant-type",
                "client_credentials",
                "--jwks",
                "/nonexistent.json",
            ],
            "cannot read /nonexistent.json",
        ),
        (
            &[
                "client",
                "add",
                "--grant-type",
                "client_credentials",
                "--access-token-format",
                "paseto",
            ],
            "paseto",
        ),
    ] {
        let run = db.cli(args);
        let stderr = run.failed();
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let listen = format!("127.0.0.1:{}", free_port());
    let run = db.cli_within(
        &["serve", "--session-lifetime", "5s", "--listen", &listen],
        READY,
    );
    assert!(run.failed().contains("5s"), "{}", run.stderr);

    assert_eq!(
        db.cli(&["client", "list", "--json"]).json(),
        Value::Array(vec![]),
        "no refused client was registered"
    );
    let accepted = db
        .cli(&[
            "client",
            "add",
            "--redirect-uri",
            "http://rp.example/cb",
            "--allow-insecure-redirects",
        ])
        .json();
    assert_eq!(
        accepted["redirect_uris"],
        serde_json::json!(["http://rp.example/cb"])
    );
}

/// A backend service registered by `client add --grant-type client_credentials` needs no
/// redirect URI, and a running server issues it a token of its registered scope, which a
/// resource server registered by `resource add` then introspects.
#[tokio::test]
async fn a_service_from_the_command_line_gets_client_credentials_tokens() {
    let db = Db::new();
    let registration = db
        .cli_async(
            &[
                "client",
                "add",
                "--grant-type",
                "client_credentials",
                "--scope",
                "api:read api:write",
            ],
            None,
        )
        .await
        .json();
    assert_eq!(
        registration["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(registration["response_types"], serde_json::json!([]));
    assert_eq!(registration["redirect_uris"], serde_json::json!([]));
    let service = Registered::from(registration);
    let server = Server::start(&db, &[]);
    let r = Browser::new()
        .post_form(
            &server.url("/token"),
            &[("grant_type", "client_credentials"), ("scope", "api:read")],
            &[("authorization", &service.basic())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = r.json();
    assert_eq!(body["scope"], "api:read");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none(), "{body}");

    // With --access-token-format jwt, the service's tokens are RFC 9068 JWTs.
    let jwt_service = db
        .cli_async(
            &[
                "client",
                "add",
                "--grant-type",
                "client_credentials",
                "--scope",
                "api:read",
                "--access-token-format",
                "jwt",
            ],
            None,
        )
        .await
        .json();
    assert_eq!(jwt_service["access_token_format"], "jwt");
    let jwt_service = Registered::from(jwt_service);
    let r = Browser::new()
        .post_form(
            &server.url("/token"),
            &[("grant_type", "client_credentials")],
            &[("authorization", &jwt_service.basic())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let jwt = r.json()["access_token"].as_str().unwrap().to_owned();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");

    // private_key_jwt: the public key from a JWKS file; an assertion signed with the
    // private key (by jsonwebtoken) authenticates, once.
    let keys = format!("{}/../../tests/keys", env!("CARGO_MANIFEST_DIR"));
    let mut jwk: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{keys}/p256.jwk.json")).unwrap())
            .unwrap();
    jwk.as_object_mut().unwrap().remove("d");
    jwk["kid"] = "k1".into();
    jwk["alg"] = "ES256".into();
    let jwks_file = db.dir.path().join("client-jwks.json");
    std::fs::write(&jwks_file, serde_json::json!({"keys": [jwk]}).to_string()).unwrap();
    let jwks_arg = jwks_file.display().to_string();
    let key_client = db
        .cli_async(
            &[
                "client",
                "add",
                "--grant-type",
                "client_credentials",
                "--scope",
                "api:read",
                "--token-endpoint-auth-method",
                "private_key_jwt",
                "--jwks",
                &jwks_arg,
            ],
            None,
        )
        .await
        .json();
    assert!(key_client.get("client_secret").is_none(), "{key_client}");
    let key_id = key_client["client_id"].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = serde_json::json!({
        "iss": key_id, "sub": key_id, "aud": server.url("/token"),
        "iat": now, "exp": now + 120, "jti": "operator-1",
    });
    let der = pem::parse(std::fs::read(format!("{keys}/p256.pem")).unwrap())
        .unwrap()
        .into_contents();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let assertion = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&der),
    )
    .unwrap();
    let token_url = server.url("/token");
    let pairs = [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.as_str()),
    ];
    let r = Browser::new().post_form(&token_url, &pairs, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let replay = Browser::new().post_form(&token_url, &pairs, &[]).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{}", replay.body);

    // A resource server registered while the server runs introspects that token.
    let api = Registered::from(
        db.cli_async(
            &["resource", "add", "--uri", "https://api.example.com"],
            None,
        )
        .await
        .json(),
    );
    assert_eq!(api.registration["resource"], "https://api.example.com");
    let token = body["access_token"].as_str().unwrap().to_owned();
    eventually!(CHANGE_SEEN, "the resource server introspects the token", {
        let r = Browser::new()
            .post_form(
                &server.url("/introspect"),
                &[("token", token.as_str())],
                &[("authorization", &api.basic())],
            )
            .await;
        r.status == StatusCode::OK
            && r.json()["active"] == true
            && r.json()["client_id"] == service.client_id.as_str()
    });
}

// ------------------------------------------------------------------ 6. HS* clients

/// Verifies an HS256 ID token as an independent relying party (openidconnect) with the
/// client secret as the HMAC key: signature, issuer, audience, expiry, nonce.
fn verify_hs256(jwt: &str, server: &Server, client: &Registered, nonce: &str) {
    let verifier = CoreIdTokenVerifier::new_confidential_client(
        ClientId::new(client.client_id.clone()),
        openidconnect::ClientSecret::new(client.client_secret.clone().unwrap()),
        IssuerUrl::new(server.issuer()).unwrap(),
        CoreJsonWebKeySet::new(Vec::new()),
    )
    .set_allowed_algs([openidconnect::core::CoreJwsSigningAlgorithm::HmacSha256]);
    let token: CoreIdToken = jwt.parse().unwrap();
    token
        .claims(&verifier, &Nonce::new(nonce.to_owned()))
        .unwrap_or_else(|e| panic!("the HS256 ID token does not verify: {e}"));
}

/// A client registered for HS256 ID tokens with the command line, end to end: its secret is
/// sealed in the database (not there in clear), its ID tokens verify with that secret before
/// and after a restart, with the data key from the key file or from `OIDC_FLOW_DATA_KEY`
/// (then no key file is written), and another data key cannot start the server.
#[tokio::test]
async fn an_hs256_client_from_the_command_line_survives_restarts() {
    // Base64url of 32 bytes, as `OIDC_FLOW_DATA_KEY` takes it.
    let env_key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32]);
    for data_key in [None, Some(env_key)] {
        let mut db = Db::new();
        db.data_key = data_key.clone();
        let client =
            client_and_user(&db, &["--id-token-signed-response-alg", "HS256"], "pw-of-u").await;
        let secret = client.client_secret.clone().unwrap();
        assert_eq!(
            db.file(".key").exists(),
            data_key.is_none(),
            "a key file is written only when the environment gives no key"
        );

        for round in ["first start", "after a restart"] {
            let mut server = Server::start(&db, &[]);
            let mut b = Browser::new();
            let nonce = format!("n-{}", round.len());
            let url = server.authorize_url(&client.client_id, REDIRECT, &format!("&nonce={nonce}"));
            let code = code_flow(&mut b, &server, &url, "u", "pw-of-u").await;
            let token = id_token_of(&redeem(&server, &client, &code, REDIRECT).await);
            let header: Value = serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(token.split('.').next().unwrap())
                    .unwrap(),
            )
            .unwrap();
            assert_eq!(header["alg"], "HS256", "{round}: {header}");
            verify_hs256(&token, &server, &client, &nonce);
            server.stop();

            let mut bytes = std::fs::read(db.file("")).unwrap();
            bytes.extend(std::fs::read(db.file("-wal")).unwrap_or_default());
            assert!(
                !contains(&bytes, secret.as_bytes()),
                "{round}: the client secret is in the database in clear"
            );
        }

        if data_key.is_some() {
            // Another key opens nothing: neither the command line nor the server starts.
            let other = Db {
                dir: tempfile::tempdir().unwrap(),
                url: db.url.clone(),
                data_key: Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([8u8; 32])),
            };
            let listen = format!("127.0.0.1:{}", free_port());
            let run = other.cli_within(&["serve", "--listen", &listen], READY);
            assert!(
                run.failed().contains("the data key does not open"),
                "{}",
                run.stderr
            );
            let run = other.cli(&["client", "list"]);
            assert!(
                run.failed().contains("the data key does not open"),
                "{}",
                run.stderr
            );
        }
    }
}
