//! The hyper 1.x adapter of oidc-flow: HTTP in, the store driver, HTTP out.
//!
//! It holds no protocol logic. It routes, reads bodies within limits, keeps the end-user's
//! session in a cookie, renders the login and consent pages (CSRF-protected), and turns the
//! core's responses into HTTP. [`serve`] runs it on a listener until a shutdown signal.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use oidc_flow::authorize::{ConsentAnswer, PendingAuthorization, PendingView, Resumed};
use oidc_flow::flow::{AuthorizeFlow, LogoutFlow};
use oidc_flow::{
    Authentication, ErrorCode, JsonResponse, MintedSecret, OAuthError, Provider, Redirect,
    ResponseMode, SecretHash,
};
use oidc_flow_store::driver::{self, AuthorizeResult, DriverError};
use oidc_flow_store::{Store, StoreError};
use time::OffsetDateTime;
use tokio::net::TcpListener;

pub mod login;
mod logout;
/// The pages, shared with every adapter (`oidc_flow_store::web`).
pub use oidc_flow_store::web as pages;
pub mod setup;
pub mod throttle;

/// Largest request body read (form posts of the authorization, token and UserInfo endpoints).
pub const MAX_BODY: usize = 64 * 1024;
/// Largest request head (request line and headers) hyper buffers.
pub const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its request head or body.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an end-user session lasts at most, by default (`serve --session-lifetime`).
pub const DEFAULT_SESSION_LIFETIME: time::Duration = time::Duration::hours(8);

/// The end-user's session cookie and the forms' CSRF cookie (which waiting requests are
/// also sealed to); `__Host-` prefixed on https (see [`App::cookie_name`]).
use oidc_flow_store::web::{CSRF_COOKIE, SESSION_COOKIE};

/// The provider served over HTTP: configuration, store and pre-rendered documents.
pub struct App<S> {
    /// The provider and its rendered documents, replaced as one when the keys change.
    current: arc_swap::ArcSwap<Served>,
    store: Arc<S>,
    /// Cookies get `Secure` when the issuer is https.
    secure_cookies: bool,
    /// The issuer URL's path, which prefixes every route.
    base_path: String,
    /// Failed logins per account and per client address.
    throttle: std::sync::Mutex<throttle::Throttle>,
    /// Runs argon2 verifications, at most one per core.
    passwords: login::PasswordVerifier,
    /// How long a session lasts at most.
    session_lifetime: time::Duration,
    /// How long a session may go unused.
    session_idle_timeout: time::Duration,
    /// Delivers back-channel logout tokens in the background (`None` if its HTTP client
    /// could not be built: logouts then only end the session here, with a warning).
    backchannel: Option<oidc_flow_store::backchannel::BackchannelSender>,
}

impl<S: Store> App<S> {
    /// An app serving `provider` from `store`.
    pub fn new(provider: Arc<Provider>, store: Arc<S>) -> Self {
        let issuer = url::Url::parse(provider.issuer()).ok();
        let secure_cookies = issuer.as_ref().is_some_and(|u| u.scheme() == "https");
        let base_path = issuer
            .as_ref()
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        Self {
            current: arc_swap::ArcSwap::from_pointee(Served::new(provider)),
            store,
            secure_cookies,
            base_path,
            throttle: std::sync::Mutex::new(throttle::Throttle::default()),
            passwords: login::PasswordVerifier::for_this_machine(),
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            session_idle_timeout: oidc_flow_store::DEFAULT_SESSION_IDLE_TIMEOUT,
            backchannel: oidc_flow_store::backchannel::BackchannelSender::new()
                .inspect_err(|e| tracing::warn!(error = %e, "no back-channel logout delivery"))
                .ok(),
        }
    }

    /// Sets how long end-user sessions last at most and how long they may go unused
    /// (`serve --session-lifetime`, `--session-idle-timeout`).
    #[must_use]
    pub fn with_session_policy(
        mut self,
        lifetime: time::Duration,
        idle_timeout: time::Duration,
    ) -> Self {
        self.session_lifetime = lifetime;
        self.session_idle_timeout = idle_timeout;
        self
    }

    /// Replaces the login throttle's limits (the `serve --login-*` flags).
    #[must_use]
    pub fn with_login_limits(mut self, limits: throttle::Limits) -> Self {
        self.throttle = std::sync::Mutex::new(throttle::Throttle::new(limits));
        self
    }

    /// The provider configuration now served.
    pub fn provider(&self) -> Arc<Provider> {
        self.current.load().provider.clone()
    }

    /// Serves `provider` from now on (e.g. with new signing keys); requests in flight finish
    /// with the one they started with. The discovery document and JWKS are rendered here.
    pub fn replace_provider(&self, provider: Arc<Provider>) {
        self.current.store(Arc::new(Served::new(provider)));
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }
}

impl<S> App<S> {
    /// The name of a cookie of ours: on https with the `__Host-` prefix, which makes the
    /// browser refuse it unless it is `Secure`, for the whole host (`Path=/`) and set by this
    /// host, so a sibling subdomain cannot plant or overwrite it.
    fn cookie_name(&self, base: &str) -> String {
        if self.secure_cookies {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }
}

/// A provider with its two documents rendered once (they change only with the provider).
struct Served {
    provider: Arc<Provider>,
    discovery: Bytes,
    jwks: Bytes,
}

impl Served {
    fn new(provider: Arc<Provider>) -> Self {
        let discovery = Bytes::from(oidc_flow::discovery::document(&provider).to_string());
        let jwks = Bytes::from(provider.jwks().to_string());
        Self {
            provider,
            discovery,
            jwks,
        }
    }
}

/// The body type of every response.
pub type Body = Full<Bytes>;

/// Accepts connections on `listener` and serves `app` until `shutdown` completes, then
/// stops accepting and waits (at most 10 s) for the connections in flight.
pub async fn serve<S: Store>(
    listener: TcpListener,
    app: Arc<App<S>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(handle(&app, req, peer).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(READ_TIMEOUT)
            .max_buf_size(MAX_HEAD.max(8192))
            .max_headers(64)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("connections still open after 10 s; closing them");
        }
    }
    Ok(())
}

/// Handles one request, with its log line.
pub async fn handle<S: Store>(
    app: &App<S>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let response = route(app, req, peer).await;
    // The path only: queries carry state, nonces and hints, and nothing secret belongs in logs.
    tracing::info!(
        %peer,
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

async fn route<S: Store>(app: &App<S>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let path = req.uri().path();
    let Some(local) = path.strip_prefix(app.base_path.as_str()) else {
        return not_found();
    };
    let local = local.to_owned();
    let method = req.method().clone();
    match (local.as_str(), method) {
        ("/.well-known/openid-configuration", Method::GET | Method::HEAD) => {
            cached_json(app.current.load().discovery.clone())
        }
        ("/jwks", Method::GET | Method::HEAD) => cached_json(app.current.load().jwks.clone()),
        ("/authorize", Method::GET) => {
            let query = req.uri().query().unwrap_or_default().as_bytes().to_vec();
            let cookies = Cookies::from(req.headers());
            authorize(app, AuthorizeFlow::from_query(&query), &cookies).await
        }
        ("/authorize", Method::POST) => match read_form(req).await {
            Ok((body, cookies)) => authorize(app, AuthorizeFlow::from_form(&body), &cookies).await,
            Err(resp) => resp,
        },
        ("/login", Method::POST) => match read_form(req).await {
            Ok((body, cookies)) => login(app, &body, &cookies, peer).await,
            Err(resp) => resp,
        },
        ("/consent", Method::POST) => match read_form(req).await {
            Ok((body, cookies)) => consent(app, &body, &cookies).await,
            Err(resp) => resp,
        },
        ("/token", Method::POST) => {
            let authorization = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes().to_vec());
            match read_form(req).await {
                Ok((body, _)) => {
                    let now = OffsetDateTime::now_utc();
                    let result = driver::token(
                        &*app.store,
                        &app.provider(),
                        &body,
                        authorization.as_deref(),
                        now,
                    )
                    .await;
                    json_result(result)
                }
                Err(resp) => resp,
            }
        }
        ("/userinfo", Method::GET) => {
            let authorization = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes().to_vec());
            let now = OffsetDateTime::now_utc();
            json_result(
                driver::userinfo(
                    &*app.store,
                    &app.provider(),
                    authorization.as_deref(),
                    None,
                    now,
                )
                .await,
            )
        }
        ("/userinfo", Method::POST) => {
            let authorization = req
                .headers()
                .get(header::AUTHORIZATION)
                .map(|v| v.as_bytes().to_vec());
            let is_form = has_form_type(req.headers());
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            // RFC 6750 §2.2: the body carries the token only as a form.
            let form = (is_form && !body.is_empty()).then_some(body.as_ref());
            let now = OffsetDateTime::now_utc();
            json_result(
                driver::userinfo(
                    &*app.store,
                    &app.provider(),
                    authorization.as_deref(),
                    form,
                    now,
                )
                .await,
            )
        }
        ("/.well-known/openid-configuration" | "/jwks", _) => method_not_allowed("GET, HEAD"),
        ("/logout", Method::GET) => {
            let query = req.uri().query().unwrap_or_default().as_bytes().to_vec();
            let cookies = Cookies::from(req.headers());
            logout::end_session(app, LogoutFlow::from_query(&query), &cookies, None).await
        }
        ("/logout", Method::POST) => match read_form(req).await {
            Ok((body, cookies)) => {
                logout::end_session(app, LogoutFlow::from_form(&body), &cookies, Some(&body)).await
            }
            Err(resp) => resp,
        },
        ("/authorize" | "/userinfo" | "/logout", _) => method_not_allowed("GET, POST"),
        ("/login" | "/consent" | "/token", _) => method_not_allowed("POST"),
        _ => not_found(),
    }
}

// ------------------------------------------------------------------ endpoints

async fn authorize<S: Store>(
    app: &App<S>,
    step: oidc_flow::flow::AuthorizeStep,
    cookies: &Cookies,
) -> Response<Body> {
    let now = OffsetDateTime::now_utc();
    let session = match session_of(app, cookies, now).await {
        Ok(s) => s,
        Err(e) => return server_error_page(&e.into()),
    };
    // A waiting request is sealed to this browser's CSRF cookie (set with the page).
    let browser = csrf_token(app, cookies);
    let result =
        driver::authorize(&*app.store, &app.provider(), step, session, &browser.0, now).await;
    authorize_response(app, result, &browser, None).await
}

/// The response to a finished or waiting authorization; `browser` is the CSRF token the
/// waiting request was sealed to, and whether its cookie must be set.
async fn authorize_response<S: Store>(
    app: &App<S>,
    result: Result<AuthorizeResult, DriverError>,
    browser: &(String, bool),
    set_session: Option<String>,
) -> Response<Body> {
    let (csrf, fresh) = browser;
    let mut response = match result {
        Err(e) => return server_error_page(&e),
        Ok(AuthorizeResult::ErrorPage(page)) => html(StatusCode::BAD_REQUEST, pages::error(&page)),
        Ok(AuthorizeResult::Redirect(redirect)) => redirect_response(&redirect),
        Ok(AuthorizeResult::Login { page, sealed }) => {
            let mut r = html_posting_to(
                StatusCode::OK,
                pages::login(&page, sealed.as_str(), csrf, None),
                page.redirect_uri(),
            );
            if *fresh {
                set_cookie(&mut r, app, CSRF_COOKIE, csrf, None, true);
            }
            r
        }
        Ok(AuthorizeResult::Consent { page, sealed }) => {
            // The page names the person, not the subject identifier.
            let person = match pages::person_name(&*app.store, page.subject()).await {
                Ok(person) => person,
                Err(e) => return server_error_page(&e.into()),
            };
            let mut r = html_posting_to(
                StatusCode::OK,
                pages::consent(&page, &person, sealed.as_str(), csrf),
                page.redirect_uri(),
            );
            if *fresh {
                set_cookie(&mut r, app, CSRF_COOKIE, csrf, None, true);
            }
            r
        }
    };
    if let Some(session) = set_session {
        set_cookie(
            &mut response,
            app,
            SESSION_COOKIE,
            &session,
            Some(app.session_lifetime),
            false,
        );
    }
    response
}

/// A form posted from one of our pages: checks the CSRF token and opens the sealed request
/// it carries (which is sealed to that same token). Writes nothing.
fn posted_form<S: Store>(
    app: &App<S>,
    body: &[u8],
    cookies: &Cookies,
    now: OffsetDateTime,
) -> Result<(oidc_flow::params::Params, PendingAuthorization), Box<Response<Body>>> {
    let refuse = |why: &str| {
        Box::new(html(
            StatusCode::BAD_REQUEST,
            pages::error_text("invalid_request", why),
        ))
    };
    let params =
        oidc_flow::params::Params::parse(body, MAX_BODY).map_err(|e| refuse(&e.to_string()))?;
    let posted = params.get("csrf").unwrap_or_default();
    let expected = cookies
        .get(&app.cookie_name(CSRF_COOKIE))
        .unwrap_or_default();
    if !pages::tokens_match(posted, expected) {
        return Err(refuse(
            "the form's CSRF token does not match this browser; start again from the application",
        ));
    }
    let sealed = params.get(pages::SEALED_FIELD).unwrap_or_default();
    match driver::open_parked(&*app.store, sealed, expected, now) {
        Ok(pending) => Ok((params, pending)),
        Err(page) => Err(Box::new(html(StatusCode::BAD_REQUEST, pages::error(&page)))),
    }
}

/// Uses the parked request (its single-use mark), now that the end-user has answered.
async fn use_parked<S: Store>(
    app: &App<S>,
    pending: PendingAuthorization,
) -> Result<Resumed, Response<Body>> {
    match driver::unpark(&*app.store, pending).await {
        Err(e) => Err(server_error_page(&e.into())),
        Ok(Err(page)) => Err(html(StatusCode::BAD_REQUEST, pages::error(&page))),
        Ok(Ok(resumed)) => Ok(resumed),
    }
}

fn wrong_step(why: &str) -> Response<Body> {
    html(
        StatusCode::BAD_REQUEST,
        pages::error_text("invalid_request", why),
    )
}

async fn login<S: Store>(
    app: &App<S>,
    body: &[u8],
    cookies: &Cookies,
    peer: SocketAddr,
) -> Response<Body> {
    let now = OffsetDateTime::now_utc();
    let (params, pending) = match posted_form(app, body, cookies, now) {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    if !pending.awaits_login() {
        return wrong_step("this request is waiting for consent, not a login");
    }
    let username = params.get("username").unwrap_or_default();
    let password = params.get("password").unwrap_or_default();
    // The throttle: checked when the request arrives (a locked account or address costs no
    // argon2 run) and again once it holds its argon2 permit, so guesses sent at once cannot
    // all pass before the first failure is recorded (see `throttle`).
    let throttle = || {
        app.throttle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let ip = peer.ip();
    let admitted = throttle().check(username, ip, Instant::now());
    let verdict = match admitted {
        Err(refusal) => login::Verdict::Refused(refusal),
        Ok(()) => {
            let admit = || throttle().check(username, ip, Instant::now());
            match app
                .passwords
                .check(&*app.store, username, password, admit)
                .await
            {
                Ok(v) => v,
                Err(e) => return server_error_page(&e.into()),
            }
        }
    };
    let user = match verdict {
        login::Verdict::Right(user) => {
            throttle().succeeded(username);
            user
        }
        login::Verdict::Refused(refusal) => {
            tracing::info!(%peer, locked = ?refusal.locked, "login throttled");
            let message = format!(
                "Too many failed sign-ins. Try again in {}.",
                throttle::in_words(refusal.retry_after_secs())
            );
            return login_again(app, &pending, &params, username, &message, Some(refusal)).await;
        }
        login::Verdict::Wrong => {
            let mut message = "Unknown username or wrong password.".to_owned();
            let locked = {
                let mut t = throttle();
                t.failed(username, ip, Instant::now());
                t.check(username, ip, Instant::now())
            };
            if let Err(r) = locked {
                message.push_str(&format!(
                    " Too many failed sign-ins: try again in {}.",
                    throttle::in_words(r.retry_after_secs())
                ));
            }
            return login_again(app, &pending, &params, username, &message, None).await;
        }
    };
    let authentication = Authentication {
        subject: user.subject,
        auth_time: now,
        acr: None,
        amr: vec!["pwd".to_owned()],
        // The session's public id for ID and logout tokens: random, unrelated to the cookie.
        sid: Some(
            MintedSecret::generate(&mut driver::system_rng())
                .as_str()
                .chars()
                .take(22)
                .collect(),
        ),
    };
    let awaiting = match use_parked(app, pending).await {
        Ok(Resumed::Login(awaiting)) => awaiting,
        Ok(Resumed::Consent(_)) => {
            return wrong_step("this request is waiting for consent, not a login");
        }
        Err(resp) => return resp,
    };
    let session = MintedSecret::generate(&mut driver::system_rng());
    if let Err(e) = app
        .store
        .put_session(&session.hash(), &authentication, now + app.session_lifetime)
        .await
    {
        return server_error_page(&e.into());
    }
    let result = driver::authorize(
        &*app.store,
        &app.provider(),
        AuthorizeFlow::after_login(awaiting, authentication),
        None,
        csrf_token(app, cookies).0.as_str(),
        now,
    )
    .await;
    let browser = (csrf_token(app, cookies).0, false);
    authorize_response(app, result, &browser, Some(session.into_string())).await
}

/// The login form again, carrying the same sealed request (nothing was used or stored),
/// with `message`; HTTP 429 with `Retry-After` when the throttle refused the attempt.
async fn login_again<S: Store>(
    app: &App<S>,
    pending: &PendingAuthorization,
    params: &oidc_flow::params::Params,
    username: &str,
    message: &str,
    refusal: Option<throttle::Refusal>,
) -> Response<Body> {
    let page = match driver::view_parked(&*app.store, pending).await {
        Err(e) => return server_error_page(&e.into()),
        Ok(Err(page)) => return html(StatusCode::BAD_REQUEST, pages::error(&page)),
        Ok(Ok(PendingView::Login(page))) => page,
        Ok(Ok(PendingView::Consent(_))) => {
            return wrong_step("this request is waiting for consent, not a login");
        }
    };
    let sealed = params.get(pages::SEALED_FIELD).unwrap_or_default();
    let csrf = params.get("csrf").unwrap_or_default();
    let status = if refusal.is_some() {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::OK
    };
    let mut r = html_posting_to(
        status,
        pages::login(
            &page,
            sealed,
            csrf,
            Some(pages::Retry { message, username }),
        ),
        page.redirect_uri(),
    );
    if let Some(refusal) = refusal {
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(refusal.retry_after_secs()),
        );
    }
    r
}

async fn consent<S: Store>(app: &App<S>, body: &[u8], cookies: &Cookies) -> Response<Body> {
    let now = OffsetDateTime::now_utc();
    let (params, pending) = match posted_form(app, body, cookies, now) {
        Ok(x) => x,
        Err(resp) => return *resp,
    };
    if pending.awaits_login() {
        return wrong_step("this request is waiting for a login, not consent");
    }
    let awaiting = match use_parked(app, pending).await {
        Ok(Resumed::Consent(awaiting)) => awaiting,
        Ok(Resumed::Login(_)) => {
            return wrong_step("this request is waiting for a login, not consent");
        }
        Err(resp) => return resp,
    };
    let answer = match params.get("decision") {
        Some("allow") => ConsentAnswer::Allow,
        _ => ConsentAnswer::Deny,
    };
    let result = driver::authorize(
        &*app.store,
        &app.provider(),
        AuthorizeFlow::after_consent(awaiting, answer),
        None,
        csrf_token(app, cookies).0.as_str(),
        now,
    )
    .await;
    let browser = (csrf_token(app, cookies).0, false);
    authorize_response(app, result, &browser, None).await
}

async fn session_of<S: Store>(
    app: &App<S>,
    cookies: &Cookies,
    now: OffsetDateTime,
) -> Result<Option<Authentication>, StoreError> {
    match cookies.get(&app.cookie_name(SESSION_COOKIE)) {
        Some(v) if v.len() <= 128 => {
            app.store
                .session(&SecretHash::of(v), now, app.session_idle_timeout)
                .await
        }
        _ => Ok(None),
    }
}

// ------------------------------------------------------------------ HTTP helpers

/// The request's cookies, parsed leniently: a malformed pair is skipped.
#[derive(Debug, Default)]
pub struct Cookies(Vec<(String, String)>);

impl Cookies {
    /// The value of cookie `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl From<&HeaderMap> for Cookies {
    fn from(headers: &HeaderMap) -> Self {
        let mut out = Vec::new();
        for value in headers.get_all(header::COOKIE) {
            let Ok(text) = value.to_str() else { continue };
            for c in cookie::Cookie::split_parse(text).flatten().take(32) {
                out.push((c.name().to_owned(), c.value().to_owned()));
            }
        }
        Self(out)
    }
}

/// The browser's CSRF token, or a new one (and whether it must be set).
fn csrf_token<S>(app: &App<S>, cookies: &Cookies) -> (String, bool) {
    match cookies.get(&app.cookie_name(CSRF_COOKIE)) {
        Some(v) if pages::is_token(v) => (v.to_owned(), false),
        _ => (pages::new_token(), true),
    }
}

fn set_cookie<S>(
    response: &mut Response<Body>,
    app: &App<S>,
    name: &str,
    value: &str,
    max_age: Option<time::Duration>,
    strict: bool,
) {
    let mut c = cookie::Cookie::build((app.cookie_name(name), value.to_owned()))
        .http_only(true)
        .secure(app.secure_cookies)
        .same_site(if strict {
            cookie::SameSite::Strict
        } else {
            cookie::SameSite::Lax
        })
        // `__Host-` cookies (https) must have `Path=/`.
        .path(if app.base_path.is_empty() || app.secure_cookies {
            "/".to_owned()
        } else {
            app.base_path.clone()
        });
    if let Some(age) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(age.whole_seconds()));
    }
    if let Ok(v) = HeaderValue::from_str(&c.build().to_string()) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn has_form_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(payload_too_large());
    }
    let limited = Limited::new(req.into_body(), MAX_BODY);
    match tokio::time::timeout(READ_TIMEOUT, limited.collect()).await {
        Err(_) => Err(plain(
            StatusCode::REQUEST_TIMEOUT,
            "the request body took too long",
        )),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(payload_too_large())
        }
        Ok(Err(_)) => Err(plain(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// Reads an `application/x-www-form-urlencoded` body (415 otherwise) and the cookies.
async fn read_form(req: Request<Incoming>) -> Result<(Bytes, Cookies), Response<Body>> {
    if !has_form_type(req.headers()) {
        return Err(plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let cookies = Cookies::from(req.headers());
    Ok((read_body(req).await?, cookies))
}

fn with_headers(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    with_headers(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(text.as_bytes()),
    )
}

fn not_found() -> Response<Body> {
    plain(StatusCode::NOT_FOUND, "not found")
}

fn payload_too_large() -> Response<Body> {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is too large",
    )
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn html(status: StatusCode, body: String) -> Response<Body> {
    html_with_csp(status, body, HeaderValue::from_static(pages::PAGE_CSP))
}

/// A login or consent page: its form posts to us, and our answer may be a 303 to the
/// client's `redirect_uri`. Browsers apply `form-action` to every redirect that follows a
/// submission, so the policy names that origin too (and no other).
fn html_posting_to(status: StatusCode, body: String, redirect_uri: &str) -> Response<Body> {
    let csp = HeaderValue::from_str(&pages::page_csp_posting_to(redirect_uri))
        .unwrap_or(HeaderValue::from_static(pages::PAGE_CSP));
    html_with_csp(status, body, csp)
}

fn html_with_csp(status: StatusCode, body: String, csp: HeaderValue) -> Response<Body> {
    let mut r = with_headers(status, "text/html; charset=utf-8", Bytes::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    for (name, value) in pages::PAGE_HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

fn cached_json(body: Bytes) -> Response<Body> {
    let mut r = with_headers(StatusCode::OK, "application/json", body);
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

/// Turns a core JSON response into HTTP.
pub fn json_response(json: JsonResponse) -> Response<Body> {
    let status = StatusCode::from_u16(json.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = with_headers(status, "application/json", Bytes::from(json.body));
    for (name, value) in json.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().append(name, v);
        }
    }
    r
}

fn json_result(result: Result<JsonResponse, DriverError>) -> Response<Body> {
    match result {
        Ok(json) => json_response(json),
        Err(e) => {
            tracing::error!(error = %e, "request failed");
            json_response(e.to_json())
        }
    }
}

fn server_error_page(e: &DriverError) -> Response<Body> {
    tracing::error!(error = %e, "request failed");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::error_text(
            ErrorCode::ServerError.as_str(),
            "the server could not complete the request",
        ),
    )
}

/// Turns an authorization response into HTTP: 303 for query and fragment, the
/// auto-submitting page for form_post.
pub fn redirect_response(redirect: &Redirect) -> Response<Body> {
    if redirect.mode() == ResponseMode::FormPost {
        let body = redirect.form_post_html().unwrap_or_default();
        // Its own policy: its one script by hash, its form only to the redirect URI's origin.
        let csp = HeaderValue::from_str(&redirect.form_post_csp())
            .unwrap_or(HeaderValue::from_static("default-src 'none'"));
        return html_with_csp(StatusCode::OK, body, csp);
    }
    let location = redirect.location().unwrap_or_default();
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            let mut r = with_headers(
                StatusCode::SEE_OTHER,
                "text/plain; charset=utf-8",
                Bytes::new(),
            );
            r.headers_mut().insert(header::LOCATION, v);
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(_) => {
            let e = OAuthError::new(ErrorCode::ServerError, "the redirect could not be encoded");
            html(
                StatusCode::INTERNAL_SERVER_ERROR,
                pages::error_text(e.code.as_str(), &e.description),
            )
        }
    }
}
