//! The axum 0.8 adapter of oidc-flow: a [`Router`] that makes any axum app an OpenID
//! provider, with the app's own login and consent pages.
//!
//! Translation only: each request (body within [`MAX_BODY`]) goes to the shared
//! [`Endpoints`], whose answer goes back as it is. [`PendingLogin`] and [`PendingConsent`]
//! extract the waiting request in the app's login and consent routes; [`Bearer`] guards
//! the app's own resources.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use oidc_flow::{Authentication, Provider, UserInfo};
//! use oidc_flow_axum::{Bearer, Oidc, PendingLogin};
//! use oidc_flow_store::{MemoryStore, UserClaims};
//!
//! struct Users;
//! impl UserClaims for Users {
//!     async fn claims(&self, subject: &str) -> Option<UserInfo> {
//!         Some(UserInfo { name: Some(subject.to_owned()), ..UserInfo::default() })
//!     }
//! }
//!
//! // The app's login route: `PendingLogin` is the authorization waiting for it.
//! async fn login(pending: PendingLogin) -> axum::response::Response {
//!     // ... check the app's own credentials, then:
//!     pending.complete(Authentication {
//!         subject: "u-1".into(),
//!         auth_time: time::OffsetDateTime::now_utc(),
//!         acr: None,
//!         amr: vec!["pwd".into()],
//!         sid: None,
//!     }).await
//! }
//!
//! async fn me(token: Bearer) -> String { token.token().subject.clone() }
//!
//! # async fn run(provider: Arc<Provider>) {
//! // Issuer https://app.example/oidc: the endpoints under /oidc.
//! let oidc = Oidc::new(provider, Arc::new(MemoryStore::new()), Users, "/login", "/consent");
//! tokio::spawn(oidc.purge(oidc_flow_store::purge::PURGE_INTERVAL));
//! let app = Router::new()
//!     .nest("/oidc", oidc.router())
//!     .route("/login", get(login).post(login))
//!     .route("/api/me", get(me))
//!     .with_state(oidc);
//! # let _: Router = app;
//! # }
//! ```
//!
//! Nest [`Oidc::router`] at the issuer's path ([`Oidc::base_path`]), or merge it for a bare
//! origin. Cookies, CSRF, sealing and headers are the shared layer's (`ADAPTERS.md`). A
//! trace layer must log paths without queries (they carry `state`, hints, sealed
//! requests). Bodies are read within [`READ_TIMEOUT`]; `axum::serve` has no timeout for
//! the request head, so put a proxy with one in front, or serve the router with hyper's
//! `header_read_timeout` as `oidc-flow-hyper` does.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{FromRef, FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http_body_util::LengthLimitError;
use oidc_flow::authorize::{ConsentAnswer, ConsentPage, LoginPage, PendingView};
use oidc_flow::userinfo::BearerError;
use oidc_flow::{Authentication, Provider};
use oidc_flow_store::endpoints::UndeclaredGrant;
use oidc_flow_store::endpoints::{
    self, Endpoints, MAX_BODY, Pages, Parked, READ_TIMEOUT, Waiting, WebResponse, json_response,
};
pub use oidc_flow_store::endpoints::{AcceptedToken, NoScope, RequiredScope, TokenSource};
use oidc_flow_store::grants::Grants;
use oidc_flow_store::{AppStore, Store, UserClaims};

/// The shared layer over the app's store and claims, with its login and consent pages.
fn endpoints<S: Store, C: UserClaims>(
    provider: Arc<Provider>,
    store: Arc<S>,
    claims: C,
    login_url: &str,
    consent_url: &str,
) -> Endpoints {
    let store = Arc::new(AppStore::new(store, claims, Vec::new()));
    let pages = Pages::Application {
        login: login_url.to_owned(),
        consent: consent_url.to_owned(),
    };
    Endpoints::new(provider, store, pages)
}

/// The provider, as axum state: clone it into the app's state (or use it as the state).
#[derive(Clone, Debug)]
pub struct Oidc(Arc<Endpoints>);

impl Oidc {
    /// Serves `provider` from `store`, with the app's `claims` and its login and consent
    /// pages at `login_url` and `consent_url` (a waiting request is sent there with
    /// `?oidc_request=...`).
    pub fn new<S: Store, C: UserClaims>(
        provider: Arc<Provider>,
        store: Arc<S>,
        claims: C,
        login_url: &str,
        consent_url: &str,
    ) -> Self {
        Self(Arc::new(endpoints(
            provider,
            store,
            claims,
            login_url,
            consent_url,
        )))
    }

    /// As [`Oidc::new`], answering the application's own grants at the token endpoint
    /// (Authlib's `register_grant`): `Grants::default().with(MyGrant)`. Each must be
    /// declared by the provider ([`oidc_flow::ProviderBuilder::extension_grant`]).
    pub fn with_grants<S: Store, C: UserClaims>(
        provider: Arc<Provider>,
        store: Arc<S>,
        claims: C,
        login_url: &str,
        consent_url: &str,
        grants: Grants,
    ) -> Result<Self, UndeclaredGrant> {
        if let Some(missing) = grants.undeclared(&provider) {
            return Err(UndeclaredGrant(missing));
        }
        let endpoints = endpoints(provider, store, claims, login_url, consent_url);
        Ok(Self(Arc::new(endpoints.with_grants(grants))))
    }

    /// The issuer URL's path, where [`Oidc::router`] is nested.
    pub fn base_path(&self) -> &str {
        self.0.base_path()
    }

    /// The provider's endpoints (discovery, JWKS, authorize, token, UserInfo, logout), to
    /// nest at [`Oidc::base_path`]. Each path takes every method; the shared layer answers
    /// 405 with `Allow` where it should.
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let mut router = Router::new();
        for path in Endpoints::PATHS {
            router = router.route(path, any(endpoint));
        }
        router.with_state(self.clone())
    }

    /// Deletes expired rows every `every`; spawn it once when the server starts.
    pub fn purge(&self, every: std::time::Duration) -> impl Future<Output = ()> + Send + 'static {
        let endpoints = self.0.clone();
        async move { endpoints.purge_every(every).await }
    }
}

/// Every endpoint: the body read within [`MAX_BODY`], then the shared layer.
async fn endpoint(
    State(oidc): State<Oidc>,
    OriginalUri(uri): OriginalUri,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let declared = parts.headers.get(header::CONTENT_LENGTH);
    if declared
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY)
    {
        return into_axum(endpoints::payload_too_large());
    }
    let body = match tokio::time::timeout(READ_TIMEOUT, to_bytes(body, MAX_BODY)).await {
        Ok(Ok(body)) => body,
        Ok(Err(e)) if std::error::Error::source(&e).is_some_and(|s| s.is::<LengthLimitError>()) => {
            return into_axum(endpoints::payload_too_large());
        }
        Ok(Err(_)) => return into_axum(endpoints::plain(StatusCode::BAD_REQUEST, "unreadable")),
        Err(_) => return into_axum(endpoints::plain(StatusCode::REQUEST_TIMEOUT, "too slow")),
    };
    let response = oidc
        .0
        .handle(&parts.method, &uri, &parts.headers, &body)
        .await;
    into_axum(response)
}

fn into_axum(response: WebResponse) -> Response {
    response.map(Body::from)
}

/// The waiting request of the app's login or consent route; refused with the shared
/// layer's page when the URL carries none or it does not open in this browser.
async fn waiting<S>(parts: &Parts, state: &S) -> Result<(Oidc, Waiting), Response>
where
    Oidc: FromRef<S>,
{
    let oidc = Oidc::from_ref(state);
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or(&parts.uri, |o| &o.0);
    match oidc.0.waiting(&parts.method, uri, &parts.headers).await {
        Ok(Some(waiting)) => Ok((oidc, waiting)),
        Ok(None) => Err(refuse("no sign-in request in this URL")),
        Err(refused) => Err(into_axum(refused)),
    }
}

fn refuse(why: &'static str) -> Response {
    (StatusCode::BAD_REQUEST, why).into_response()
}

/// An authorization waiting for the end-user to sign in: the extractor of the app's login
/// route. Looking writes nothing: show the page, refuse a wrong password, show it again;
/// [`PendingLogin::complete`] uses it up, once.
#[derive(Debug)]
pub struct PendingLogin {
    oidc: Oidc,
    /// What the login page shows: client, scope, `login_hint`, `prompt`, locales...
    pub request: LoginPage,
    parked: Parked,
}

impl PendingLogin {
    /// Resumes the authorization with the end-user the app authenticated: their session
    /// at the provider opens, and the answer is the redirect to the client or to the
    /// consent page.
    pub async fn complete(self, user: Authentication) -> Response {
        into_axum(self.oidc.0.complete(self.parked, user).await)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PendingLogin
where
    Oidc: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let (oidc, Waiting { view, parked }) = waiting(parts, state).await?;
        match view {
            PendingView::Login(request) => Ok(Self {
                oidc,
                request,
                parked,
            }),
            PendingView::Consent(_) => Err(refuse("this sign-in request is waiting for consent")),
        }
    }
}

/// An authorization waiting for the end-user's consent: the extractor of the app's consent
/// route (as [`PendingLogin`] is of the login route).
#[derive(Debug)]
pub struct PendingConsent {
    oidc: Oidc,
    /// What the consent page shows: client, scope, the end-user, locales...
    pub request: ConsentPage,
    parked: Parked,
}

impl PendingConsent {
    /// The end-user allows (remembered for later requests) or refuses (`access_denied`).
    pub async fn answer(self, answer: ConsentAnswer) -> Response {
        into_axum(self.oidc.0.answer(self.parked, answer).await)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PendingConsent
where
    Oidc: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let (oidc, Waiting { view, parked }) = waiting(parts, state).await?;
        match view {
            PendingView::Consent(request) => Ok(Self {
                oidc,
                request,
                parked,
            }),
            PendingView::Login(_) => Err(refuse("this sign-in request is waiting for a login")),
        }
    }
}

/// An extractor for the app's resources: a valid access token of this provider whose scope
/// covers `R::SCOPE`, meant for `R::AUDIENCES` (empty: any); refused with RFC 6750's answer
/// and its `WWW-Authenticate`. Opaque tokens are looked up in the store, JWT access tokens
/// verified locally ([`Endpoints::bearer`](oidc_flow_store::endpoints::Endpoints::bearer)).
#[derive(Debug)]
pub struct Bearer<R: RequiredScope = NoScope> {
    token: AcceptedToken,
    _scope: PhantomData<fn() -> R>,
}

impl<R: RequiredScope> Bearer<R> {
    /// The accepted token: subject, client, scope, audience, expiry, how it was checked.
    pub fn token(&self) -> &AcceptedToken {
        &self.token
    }
}

impl<S: Send + Sync, R: RequiredScope> FromRequestParts<S> for Bearer<R>
where
    Oidc: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let oidc = Oidc::from_ref(state);
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        match oidc.0.bearer(authorization, R::SCOPE, R::AUDIENCES).await {
            Ok(token) => Ok(Self {
                token,
                _scope: PhantomData,
            }),
            Err(BearerError { response, .. }) => Err(into_axum(json_response(response))),
        }
    }
}
