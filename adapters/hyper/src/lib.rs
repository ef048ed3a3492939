//! The hyper 1.x adapter of oidc-flow: HTTP in, the shared web layer, HTTP out.
//!
//! It holds no protocol logic and no page logic: [`serve`] accepts connections with
//! timeouts and size limits, reads each body within [`MAX_BODY`], checks the passwords of
//! the provider's own login form (argon2, behind the login [`throttle`]), and hands
//! everything else to [`oidc_flow_store::endpoints::Endpoints`], whose answer goes back as
//! it is.
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
use hyper::header;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use oidc_flow::{Authentication, Provider};
use oidc_flow_store::Store;
use oidc_flow_store::endpoints::UndeclaredGrant;
use oidc_flow_store::endpoints::{self, AcceptedToken, Endpoints, LoginForm, Pages, WebResponse};
use oidc_flow_store::grants::TokenGrant;
use time::OffsetDateTime;
use tokio::net::TcpListener;

pub mod login;
/// The pages, shared with every adapter (`oidc_flow_store::web`).
pub use oidc_flow_store::web as pages;
pub mod setup;
pub mod throttle;

pub use oidc_flow_store::endpoints::{Cookies, DEFAULT_SESSION_LIFETIME, MAX_BODY, READ_TIMEOUT};

/// Largest request head (request line and headers) hyper buffers.
pub const MAX_HEAD: usize = 16 * 1024;

/// The provider served over HTTP: the shared web layer, and the password check of its
/// login form.
pub struct App<S> {
    /// Every endpoint, page, cookie and header (the provider's own pages).
    endpoints: Endpoints,
    store: Arc<S>,
    /// Failed logins per account and per client address.
    throttle: std::sync::Mutex<throttle::Throttle>,
    /// Runs argon2 verifications, at most one per core.
    passwords: login::PasswordVerifier,
    /// `{issuer path}/login`, where the login form posts.
    login_path: String,
}

impl<S: Store> App<S> {
    /// An app serving `provider` from `store`.
    pub fn new(provider: Arc<Provider>, store: Arc<S>) -> Self {
        let endpoints = Endpoints::new(provider, store.clone(), Pages::Provider);
        Self {
            login_path: format!("{}/login", endpoints.base_path().trim_end_matches('/')),
            endpoints,
            store,
            throttle: std::sync::Mutex::new(throttle::Throttle::default()),
            passwords: login::PasswordVerifier::for_this_machine(),
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
        self.endpoints = self.endpoints.with_session_policy(lifetime, idle_timeout);
        self
    }

    /// Answers the extension grant `G::GRANT_TYPE` at the token endpoint with `grant`; the
    /// provider must declare it ([`oidc_flow::ProviderBuilder::extension_grant`]).
    pub fn with_grant<G: TokenGrant>(mut self, grant: G) -> Result<Self, UndeclaredGrant> {
        self.endpoints = self.endpoints.with_grant(grant)?;
        Ok(self)
    }

    /// Replaces the login throttle's limits (the `serve --login-*` flags).
    #[must_use]
    pub fn with_login_limits(mut self, limits: throttle::Limits) -> Self {
        self.throttle = std::sync::Mutex::new(throttle::Throttle::new(limits));
        self
    }

    /// The provider configuration now served.
    pub fn provider(&self) -> Arc<Provider> {
        self.endpoints.provider()
    }

    /// Serves `provider` from now on (e.g. with new signing keys); requests in flight finish
    /// with the one they started with. The discovery document and JWKS are rendered here.
    pub fn replace_provider(&self, provider: Arc<Provider>) {
        self.endpoints.replace_provider(provider);
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Guards a resource of a hyper service that serves this provider too (RFC 6750): the
    /// access token of `headers`' `Authorization`, whose scope covers `required`
    /// (space-separated; empty for any) and which is meant for one of `audiences` (`aud`
    /// values or client ids; empty for any). Opaque tokens are looked up in the store, JWT
    /// access tokens verified locally ([`Endpoints::bearer`]). The refusal is the response
    /// to send: 400, 401 or 403 with `WWW-Authenticate`, or 500.
    pub async fn bearer(
        &self,
        headers: &hyper::HeaderMap,
        required: &str,
        audiences: &[&str],
    ) -> Result<AcceptedToken, WebResponse> {
        let authorization = headers
            .get(hyper::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        self.endpoints
            .bearer(authorization, required, audiences)
            .await
            .map_err(|e| endpoints::json_response(e.response))
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
    let response = route(app, req, peer).await.map(Full::new);
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

async fn route<S: Store>(app: &App<S>, req: Request<Incoming>, peer: SocketAddr) -> WebResponse {
    let (parts, body) = req.into_parts();
    let body = if parts.method == Method::POST {
        match read_body(&parts.headers, body).await {
            Ok(body) => body,
            Err(refused) => return refused,
        }
    } else {
        Bytes::new()
    };
    if parts.method == Method::POST && parts.uri.path() == app.login_path {
        return match app.endpoints.login_form(&parts.headers, &body) {
            Ok(form) => check_login(app, form, peer).await,
            Err(refused) => refused,
        };
    }
    app.endpoints
        .handle(&parts.method, &parts.uri, &parts.headers, &body)
        .await
}

// ------------------------------------------------------------------ the login form

/// The provider's login form, its CSRF token and sealed request already checked: the
/// throttle, then the password, then the shared layer resumes the request (or shows the
/// form again).
async fn check_login<S: Store>(app: &App<S>, form: LoginForm, peer: SocketAddr) -> WebResponse {
    let username = form.username().to_owned();
    // The throttle: checked when the request arrives (a locked account or address costs no
    // argon2 run) and again once it holds its argon2 permit, so guesses sent at once cannot
    // all pass before the first failure is recorded (see `throttle`).
    let throttle = || {
        app.throttle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let ip = peer.ip();
    let admitted = throttle().check(&username, ip, Instant::now());
    let verdict = match admitted {
        Err(refusal) => login::Verdict::Refused(refusal),
        Ok(()) => {
            let admit = || throttle().check(&username, ip, Instant::now());
            let checked = app
                .passwords
                .check(&*app.store, &username, form.password(), admit)
                .await;
            match checked {
                Ok(v) => v,
                Err(e) => return endpoints::server_error_page(&e.into()),
            }
        }
    };
    match verdict {
        login::Verdict::Right(user) => {
            throttle().succeeded(&username);
            let authentication = Authentication {
                subject: user.subject,
                auth_time: OffsetDateTime::now_utc(),
                acr: None,
                amr: vec!["pwd".to_owned()],
                // Minted by the shared layer: random, unrelated to the cookie.
                sid: None,
            };
            app.endpoints
                .complete(form.into_parked(), authentication)
                .await
        }
        login::Verdict::Refused(refusal) => {
            tracing::info!(%peer, locked = ?refusal.locked, "login throttled");
            let wait = refusal.retry_after_secs();
            let message = format!(
                "Too many failed sign-ins. Try again in {}.",
                throttle::in_words(wait)
            );
            app.endpoints.login_again(&form, &message, Some(wait)).await
        }
        login::Verdict::Wrong => {
            let mut message = "Unknown username or wrong password.".to_owned();
            let locked = {
                let mut t = throttle();
                t.failed(&username, ip, Instant::now());
                t.check(&username, ip, Instant::now())
            };
            if let Err(r) = locked {
                message.push_str(&format!(
                    " Too many failed sign-ins: try again in {}.",
                    throttle::in_words(r.retry_after_secs())
                ));
            }
            app.endpoints.login_again(&form, &message, None).await
        }
    }
}

/// Reads a request body within [`MAX_BODY`] and [`READ_TIMEOUT`].
async fn read_body(headers: &hyper::HeaderMap, body: Incoming) -> Result<Bytes, WebResponse> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(endpoints::payload_too_large());
    }
    let limited = Limited::new(body, MAX_BODY);
    match tokio::time::timeout(READ_TIMEOUT, limited.collect()).await {
        Err(_) => Err(endpoints::plain(
            StatusCode::REQUEST_TIMEOUT,
            "the request body took too long",
        )),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(endpoints::payload_too_large())
        }
        Ok(Err(_)) => Err(endpoints::plain(
            StatusCode::BAD_REQUEST,
            "the request body could not be read",
        )),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}
