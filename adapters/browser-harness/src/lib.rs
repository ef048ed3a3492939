//! Dev-only harness for the browser tests of the oidc-flow adapters: headless Chromium driven
//! over WebDriver (chromedriver + [`fantoccini`]), a callback server that records where the
//! browser lands, and a small HTTP client for the back-channel calls a relying party makes.
//!
//! # Using it
//!
//! ```no_run
//! # async fn example() -> Result<(), oidc_flow_browser_harness::Error> {
//! use oidc_flow_browser_harness::{CallbackServer, Suite, ensure};
//!
//! // `None`: Chromium or chromedriver is missing and OIDC_FLOW_REQUIRE_BROWSER is not set
//! // (a message saying so was printed): the test returns without failing.
//! let Some(mut suite) = Suite::start("hyper").await? else { return Ok(()) };
//! let callback = CallbackServer::start().await?;
//! let redirect_uri = callback.url("/cb");
//!
//! // Each flow runs in a fresh browser (new profile: no cookies) and fails when its body
//! // returns an error or panics, or when the browser logged a Content-Security-Policy message.
//! suite
//!     .flow("code", async |page| {
//!         page.goto("http://127.0.0.1:9000/authorize?...").await?;
//!         page.fill("username", "alice").await?;
//!         page.fill("password", "wonderland").await?;
//!         page.click_button("Sign in").await?;
//!         let landed = callback.wait_for_path("/cb").await?;
//!         ensure!(landed.param("code").is_some(), "no code in {}", landed.target);
//!         Ok(())
//!     })
//!     .await;
//! suite.finish(); // panics naming every flow that failed
//! # Ok(()) }
//! ```
//!
//! * [`Suite`]: one chromedriver per test file; [`Suite::flow`] runs a named flow in a fresh
//!   browser session and records its outcome; [`Suite::finish`] fails the test if any flow
//!   failed. Flows run one after the other (one Chromium at a time).
//! * [`Page`]: the browser of one flow. [`Page::goto`], [`Page::fill`] (an input by `id` or
//!   `name`), [`Page::click_button`] (by its visible text), [`Page::url`] (fragment
//!   included), [`Page::text`], [`Page::wait_for_url`], [`Page::wait_for`] (a CSS selector),
//!   [`Page::checkpoint`] (a named screenshot), [`Page::console`] (every console message so
//!   far), [`Page::client`] (the raw [`fantoccini::Client`] for anything else).
//! * [`CallbackServer`]: a loopback HTTP server that records every request ([`Recorded`]:
//!   method, path, query, form body) and answers a small page without any CSP, or what
//!   [`CallbackServer::route`] set for a path (e.g. a page with a chosen CSP).
//! * [`http`]: `get`/`post_form` with optional Basic or Bearer authorization, for token
//!   exchanges, UserInfo, logout tokens and the like; [`jwt_claims`] decodes a JWT's payload.
//! * [`free_port`], [`ensure!`], [`fail`].
//!
//! # Screenshots
//!
//! Every [`Page::checkpoint`] (and every [`Page::click_button`], just before the click) takes
//! a screenshot in memory. When a flow fails, they are written with a final one to
//! `target/browser-screenshots/<suite>-<flow>-<nn>-<step>.png`; with
//! `OIDC_FLOW_BROWSER_SCREENSHOTS=1` they are written for passing flows too.
//!
//! # Environment
//!
//! * `OIDC_FLOW_REQUIRE_BROWSER=1`: a missing Chromium or chromedriver fails the test instead
//!   of skipping it (CI sets it).
//! * `OIDC_FLOW_CHROMIUM`, `OIDC_FLOW_CHROMEDRIVER`: paths of the binaries (default: searched
//!   in `PATH` as `chromium`, `chromium-browser`, `google-chrome`, and `chromedriver`).

pub mod app_pages;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Any error of a flow or of the harness.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The outcome of a flow's body.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long a wait for a page, an element, a URL or a callback lasts before it fails.
///
/// A deadline, not a pause: every wait polls and returns as soon as what it waits for is
/// there. It is long enough for a debug-build server (argon2 takes seconds) and Chromium
/// sharing a small, loaded CI machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// An error carrying `message`.
pub fn fail(message: impl Into<String>) -> Error {
    message.into().into()
}

/// Returns an [`Error`] from the enclosing function unless the condition holds.
///
/// ```
/// # fn f(x: u32) -> oidc_flow_browser_harness::Result<()> {
/// oidc_flow_browser_harness::ensure!(x > 1, "x is only {x}");
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::fail(format!($($msg)+)));
        }
    };
}

/// A free TCP port on 127.0.0.1 (bound once, then released).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

// ------------------------------------------------------------------ finding the browser

fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

fn binary(env: &str, names: &[&str]) -> Option<PathBuf> {
    match std::env::var_os(env) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => find_in_path(names),
    }
}

/// Where screenshots go: `<target dir>/browser-screenshots`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            // A test binary lives in <target>/<profile>/deps/.
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("browser-screenshots")
}

// ------------------------------------------------------------------ the suite

/// One chromedriver for a test file, and the outcome of each flow run through it.
pub struct Suite {
    name: String,
    chromium: PathBuf,
    driver: Child,
    driver_url: String,
    failures: Vec<String>,
    passed: usize,
    started: Instant,
}

impl Suite {
    /// Starts chromedriver on a free port. `Ok(None)` when Chromium or chromedriver is missing
    /// and `OIDC_FLOW_REQUIRE_BROWSER` is not set (after printing why); an error when they are
    /// missing and it is set, or when chromedriver does not start.
    pub async fn start(name: &str) -> Result<Option<Self>> {
        let chromium = binary(
            "OIDC_FLOW_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let driver = binary("OIDC_FLOW_CHROMEDRIVER", &["chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let why = "Chromium or chromedriver not found (install the Debian packages `chromium` \
                       and `chromium-driver`, or set OIDC_FLOW_CHROMIUM / OIDC_FLOW_CHROMEDRIVER)";
            if env_flag("OIDC_FLOW_REQUIRE_BROWSER") {
                return Err(fail(format!("{why}, and OIDC_FLOW_REQUIRE_BROWSER is set")));
            }
            eprintln!("SKIPPED browser tests `{name}`: {why}");
            return Ok(None);
        };
        // The port is free when picked, but chromedriver binds it a moment later: should
        // anything take it meanwhile, chromedriver exits, and another port is tried.
        const ATTEMPTS: usize = 3;
        let mut attempt = 0;
        let suite = loop {
            attempt += 1;
            let port = free_port()?;
            let child = Command::new(&driver)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                // Its own process group, so that dropping the suite ends the Chromium it started.
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| fail(format!("cannot start {}: {e}", driver.display())))?;
            let mut suite = Self {
                name: name.to_owned(),
                chromium: chromium.clone(),
                driver: child,
                driver_url: format!("http://127.0.0.1:{port}"),
                failures: Vec::new(),
                passed: 0,
                started: Instant::now(),
            };
            // Wait until chromedriver answers /status.
            let deadline = Instant::now() + WAIT;
            let exited = loop {
                if let Ok(r) = http::get(&format!("{}/status", suite.driver_url), None).await
                    && r.status == 200
                {
                    break None;
                }
                if let Some(status) = suite.driver.try_wait()? {
                    break Some(status);
                }
                if Instant::now() > deadline {
                    return Err(fail(format!(
                        "chromedriver did not answer /status within {} s",
                        WAIT.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            match exited {
                None => break suite,
                Some(status) if attempt < ATTEMPTS => {
                    eprintln!("chromedriver on port {port} exited ({status}); another port");
                }
                Some(status) => {
                    return Err(fail(format!(
                        "chromedriver exited ({status}) on {ATTEMPTS} ports in a row"
                    )));
                }
            }
        };
        Ok(Some(suite))
    }

    /// Opens a fresh browser (new, empty profile) for the flow `flow`.
    ///
    /// Starting Chromium on a small, loaded machine now and then fails for reasons of its own
    /// (chromedriver's "Chrome failed to start", "DevToolsActivePort file doesn't exist"):
    /// a new session is then asked for, with a new profile, a few times before giving up.
    /// Only the start is tried again, never a step of a flow.
    pub async fn page(&self, flow: &str) -> Result<Page> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_page(flow).await {
                Ok(page) => return Ok(page),
                Err(e) if attempt < ATTEMPTS => {
                    eprintln!(
                        "browser flow {}-{flow}: Chromium did not start ({e}); trying again",
                        self.name
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn try_page(&self, flow: &str) -> Result<Page> {
        let profile = tempfile::tempdir()?;
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=900,700".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": self.chromium, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let serde_json::Value::Object(caps) = caps else {
            return Err(fail("capabilities are not an object"));
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&self.driver_url)
            .await
            .map_err(|e| fail(format!("cannot start Chromium through chromedriver: {e}")))?;
        Ok(Page {
            client,
            name: format!("{}-{flow}", self.name),
            console: Vec::new(),
            shots: Vec::new(),
            _profile: profile,
        })
    }

    /// Runs `body` in a fresh browser as the flow `flow`, and records whether it passed: it
    /// fails if `body` returns an error or panics, or if the browser's console holds any
    /// message about a Content-Security-Policy. Screenshots are written when it fails.
    pub async fn flow<F>(&mut self, flow: &str, body: F)
    where
        F: AsyncFnOnce(&mut Page) -> Result<()>,
    {
        let started = Instant::now();
        let outcome = match self.page(flow).await {
            Err(e) => Err(e.to_string()),
            Ok(mut page) => {
                let result = AssertUnwindSafe(body(&mut page)).catch_unwind().await;
                let mut outcome = match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(panic) => Err(panic_message(&panic)),
                };
                match page.csp_messages().await {
                    Ok(csp) if csp.is_empty() => {}
                    Ok(csp) => {
                        let msg = format!(
                            "the browser reported a Content-Security-Policy violation: {}",
                            csp.join(" | ")
                        );
                        outcome = match outcome {
                            Ok(()) => Err(msg),
                            Err(e) => Err(format!("{e}; {msg}")),
                        };
                    }
                    Err(e) => {
                        if outcome.is_ok() {
                            outcome = Err(format!("cannot read the console: {e}"));
                        }
                    }
                }
                let keep = outcome.is_err() || env_flag("OIDC_FLOW_BROWSER_SCREENSHOTS");
                if outcome.is_err() {
                    page.checkpoint("failed").await;
                } else if keep {
                    page.checkpoint("end").await;
                }
                let written = if keep {
                    page.write_screenshots()
                } else {
                    Vec::new()
                };
                let outcome = match (outcome, written.is_empty()) {
                    (Err(e), false) => Err(format!(
                        "{e}\n    screenshots: {}",
                        written
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                    (o, _) => o,
                };
                page.close().await;
                outcome
            }
        };
        match outcome {
            Ok(()) => {
                self.passed += 1;
                eprintln!(
                    "browser flow {}-{flow}: ok ({:.1} s)",
                    self.name,
                    started.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                eprintln!("browser flow {}-{flow}: FAILED: {e}", self.name);
                self.failures.push(format!("{flow}: {e}"));
            }
        }
    }

    /// The flows that failed so far, each as `name: why`.
    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    /// Stops chromedriver and fails (panics) if any flow failed, naming each.
    #[allow(clippy::panic)] // failing the test is the point
    pub fn finish(self) {
        eprintln!(
            "browser suite {}: {} passed, {} failed in {:.1} s",
            self.name,
            self.passed,
            self.failures.len(),
            self.started.elapsed().as_secs_f64()
        );
        if !self.failures.is_empty() {
            panic!(
                "{} browser flow(s) of `{}` failed:\n  {}",
                self.failures.len(),
                self.name,
                self.failures.join("\n  ")
            );
        }
    }
}

impl Drop for Suite {
    /// Ends chromedriver's process group: chromedriver and any Chromium it left running.
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.start_kill();
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_owned()
    }
}

// ------------------------------------------------------------------ a page

/// One browser message from the console (`level` is e.g. `SEVERE`, `WARNING`, `INFO`).
#[derive(Debug, Clone)]
pub struct ConsoleMessage {
    /// The level chromedriver reports.
    pub level: String,
    /// The text (with the source URL chromedriver prefixes).
    pub message: String,
}

/// The browser of one flow.
pub struct Page {
    client: Client,
    name: String,
    console: Vec<ConsoleMessage>,
    shots: Vec<(String, Vec<u8>)>,
    _profile: tempfile::TempDir,
}

impl Page {
    /// The WebDriver client, for anything the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for the page to load.
    pub async fn goto(&mut self, url: &str) -> Result<()> {
        self.client
            .goto(url)
            .await
            .map_err(|e| fail(format!("cannot open {url}: {e}")))
    }

    /// The current URL, fragment included.
    pub async fn url(&self) -> Result<url::Url> {
        Ok(self.client.current_url().await?)
    }

    /// The visible text of the page.
    pub async fn text(&self) -> Result<String> {
        Ok(self.client.find(Locator::Css("body")).await?.text().await?)
    }

    /// The page's HTML source.
    pub async fn source(&self) -> Result<String> {
        Ok(self.client.source().await?)
    }

    /// Waits for an element matching the CSS `selector`.
    pub async fn wait_for(&self, selector: &str) -> Result<fantoccini::elements::Element> {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(selector))
            .await
            .map_err(|e| self.described(format!("no `{selector}` appeared: {e}")))
    }

    /// Waits until the current URL satisfies `pred`; returns it.
    pub async fn wait_for_url(&self, pred: impl Fn(&url::Url) -> bool) -> Result<url::Url> {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.url().await?;
            if pred(&url) {
                return Ok(url);
            }
            if Instant::now() > deadline {
                return Err(self.described(format!("the browser stayed at {url}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `value` into the input whose `id` or `name` is `field` (clearing it first).
    pub async fn fill(&mut self, field: &str, value: &str) -> Result<()> {
        let selector = format!("input[id=\"{field}\"], input[name=\"{field}\"]");
        let input = self.wait_for(&selector).await?;
        input.clear().await?;
        input.send_keys(value).await?;
        Ok(())
    }

    /// Presses the button whose visible text is `label` (a screenshot is taken first).
    pub async fn click_button(&mut self, label: &str) -> Result<()> {
        self.checkpoint(&format!("before-{label}")).await;
        let buttons = self
            .client
            .find_all(Locator::Css("button, input[type=submit]"))
            .await?;
        for button in buttons {
            let text = button.text().await.unwrap_or_default();
            let value = button
                .attr("value")
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let matches = text.trim() == label
                || (button.tag_name().await.unwrap_or_default() == "input" && value == label);
            if matches {
                button.click().await?;
                return Ok(());
            }
        }
        Err(self.described(format!("no button `{label}` on the page")))
    }

    /// Takes a screenshot named `step`, kept in memory until the flow ends.
    pub async fn checkpoint(&mut self, step: &str) {
        if let Ok(png) = self.client.screenshot().await {
            self.shots.push((step.to_owned(), png));
        }
    }

    fn write_screenshots(&self) -> Vec<PathBuf> {
        let dir = screenshot_dir();
        if std::fs::create_dir_all(&dir).is_err() {
            return Vec::new();
        }
        let mut written = Vec::new();
        for (i, (step, png)) in self.shots.iter().enumerate() {
            let step: String = step
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let path = dir.join(format!("{}-{i:02}-{step}.png", self.name));
            if std::fs::write(&path, png).is_ok() {
                written.push(path);
            }
        }
        written
    }

    fn described(&self, message: String) -> Error {
        fail(format!("{} ({})", message, self.name))
    }

    /// Every console message of this browser so far.
    pub async fn console(&mut self) -> Result<&[ConsoleMessage]> {
        let value = self.client.issue_cmd(BrowserLog).await?;
        if let serde_json::Value::Array(entries) = value {
            for entry in entries {
                self.console.push(ConsoleMessage {
                    level: field(&entry, "level"),
                    message: field(&entry, "message"),
                });
            }
        }
        Ok(&self.console)
    }

    /// The console messages about a Content-Security-Policy.
    pub async fn csp_messages(&mut self) -> Result<Vec<String>> {
        Ok(self
            .console()
            .await?
            .iter()
            .filter(|m| is_csp_message(&m.message))
            .map(|m| m.message.clone())
            .collect())
    }

    /// Ends the browser session (Chromium exits).
    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

fn field(entry: &serde_json::Value, name: &str) -> String {
    entry
        .get(name)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Whether a console message is about a Content-Security-Policy.
pub fn is_csp_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("content security policy") || m.contains("content-security-policy")
}

/// chromedriver's `POST /session/{id}/se/log` with `{"type": "browser"}`: the console
/// messages since the last call (needs the `goog:loggingPrefs` capability).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

// ------------------------------------------------------------------ the callback server

/// A request the callback server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query, without `?` (empty if none).
    pub query: String,
    /// `path?query` as received.
    pub target: String,
    /// The body, as text.
    pub body: String,
}

impl Recorded {
    /// The parameters of the query and, for a form POST, of the body.
    pub fn params(&self) -> HashMap<String, String> {
        let mut out: HashMap<String, String> = url::form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect();
        if self.method == "POST" {
            out.extend(url::form_urlencoded::parse(self.body.as_bytes()).into_owned());
        }
        out
    }

    /// One parameter of the query or form body.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params().remove(name)
    }
}

/// What the callback server answers for a path set with [`CallbackServer::route`].
#[derive(Debug, Clone)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body (sent as `text/html` unless a `content-type` header is given).
    pub body: String,
}

#[derive(Default)]
struct CallbackState {
    requests: Mutex<Vec<Recorded>>,
    routes: Mutex<HashMap<String, Reply>>,
    arrived: Notify,
}

/// A loopback HTTP server that records every request and answers a small HTML page
/// (no Content-Security-Policy) or the [`Reply`] set for the path.
pub struct CallbackServer {
    addr: SocketAddr,
    state: Arc<CallbackState>,
    task: JoinHandle<()>,
}

/// The page the callback server answers by default.
pub const CALLBACK_PAGE: &str = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
    <title>Callback</title></head><body><h1>Callback received</h1></body></html>";

impl CallbackServer {
    /// Starts it on 127.0.0.1, on a free port.
    pub async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(CallbackState::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| answer(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, state, task })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers `reply` to every request for `path` from now on.
    pub fn route(&self, path: &str, reply: Reply) {
        if let Ok(mut routes) = self.state.routes.lock() {
            routes.insert(path.to_owned(), reply);
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Forgets the requests so far.
    pub fn clear(&self) {
        if let Ok(mut r) = self.state.requests.lock() {
            r.clear();
        }
    }

    /// Waits for a request matching `pred` (among those so far or still to come).
    pub async fn wait_for(&self, pred: impl Fn(&Recorded) -> bool) -> Result<Recorded> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let notified = self.state.arrived.notified();
            if let Some(r) = self.requests().into_iter().find(|r| pred(r)) {
                return Ok(r);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(fail(format!(
                    "no matching request reached the callback server in {} s (it got: {:?})",
                    WAIT.as_secs(),
                    self.requests()
                        .iter()
                        .map(|r| format!("{} {}", r.method, r.path))
                        .collect::<Vec<_>>()
                )));
            }
        }
    }

    /// Waits for a request to `path`.
    pub async fn wait_for_path(&self, path: &str) -> Result<Recorded> {
        self.wait_for(|r| r.path == path).await
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    state: Arc<CallbackState>,
    req: Request<Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned())
        .unwrap_or_default();
    let reply = state.routes.lock().ok().and_then(|r| r.get(&path).cloned());
    if let Ok(mut r) = state.requests.lock() {
        r.push(Recorded {
            method,
            path,
            query,
            target,
            body,
        });
    }
    state.arrived.notify_waiters();
    let reply = reply.unwrap_or_else(|| Reply {
        status: 200,
        headers: Vec::new(),
        body: CALLBACK_PAGE.to_owned(),
    });
    let mut response = Response::new(Full::new(Bytes::from(reply.body)));
    *response.status_mut() =
        hyper::StatusCode::from_u16(reply.status).unwrap_or(hyper::StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    for (name, value) in reply.headers {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(&value),
        ) {
            headers.insert(n, v);
        }
    }
    Ok(response)
}

// ------------------------------------------------------------------ back-channel HTTP

/// A small HTTP/1 client for what a relying party does without the browser.
pub mod http {
    use super::{Error, Result, fail};
    use base64::Engine as _;
    use bytes::Bytes;
    use http_body_util::{BodyExt as _, Full};
    use hyper::header::{self, HeaderValue};
    use hyper::{Method, Request};
    use hyper_util::client::legacy::Client;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    /// How a request authenticates.
    #[derive(Debug, Clone, Copy)]
    pub enum Auth<'a> {
        /// `Authorization: Basic` with a client id and secret (form-urlencoded first, as RFC
        /// 6749 §2.3.1 asks).
        Basic(&'a str, &'a str),
        /// `Authorization: Bearer`.
        Bearer(&'a str),
    }

    /// A response.
    #[derive(Debug, Clone)]
    pub struct Reply {
        /// The status code.
        pub status: u16,
        /// The headers, names in lower case.
        pub headers: Vec<(String, String)>,
        /// The body, as text.
        pub body: String,
    }

    impl Reply {
        /// The body as JSON (`Null` if it is not JSON).
        pub fn json(&self) -> serde_json::Value {
            serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
        }

        /// The first value of a header.
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    fn form_encode(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    async fn send(
        method: Method,
        url: &str,
        auth: Option<Auth<'_>>,
        form: Option<String>,
    ) -> Result<Reply> {
        let mut req = Request::builder().method(method).uri(url);
        match auth {
            Some(Auth::Basic(id, secret)) => {
                let raw = format!("{}:{}", form_encode(id), form_encode(secret));
                let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
                req = req.header(header::AUTHORIZATION, format!("Basic {b64}"));
            }
            Some(Auth::Bearer(token)) => {
                req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            None => {}
        }
        let body = match form {
            Some(form) => {
                req = req.header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-www-form-urlencoded"),
                );
                Bytes::from(form)
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(body)).map_err(|e| fail(e.to_string()))?;
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let resp = client
            .request(req)
            .await
            .map_err(|e| -> Error { fail(format!("{url}: {e}")) })?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// `GET url`.
    pub async fn get(url: &str, auth: Option<Auth<'_>>) -> Result<Reply> {
        send(Method::GET, url, auth, None).await
    }

    /// `POST url` with a form body made of `fields`.
    pub async fn post_form(
        url: &str,
        auth: Option<Auth<'_>>,
        fields: &[(&str, &str)],
    ) -> Result<Reply> {
        let form = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        send(Method::POST, url, auth, Some(form)).await
    }
}

/// The claims of a JWT's payload, decoded (the signature is not checked).
pub fn jwt_claims(jwt: &str) -> Result<serde_json::Value> {
    let payload = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| fail(format!("not a JWT: {jwt}")))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// The S256 `code_challenge` of a PKCE `code_verifier` (RFC 7636 §4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    use sha2::Digest as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()))
}

/// A value unlikely to repeat (time and a counter), 43 characters or more: for `state`,
/// `nonce` and a PKCE `code_verifier` in tests.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{t:032x}-{n:08x}-{:04x}",
        std::process::id() & 0xffff
    )
}
