//! The Rocket 0.5 adapter of oidc-flow: any Rocket app becomes an OpenID provider.
//!
//! It holds no protocol logic and no page logic: every endpoint is one call to the shared
//! HTTP layer (`oidc_flow_store::endpoints`), and every answer is turned into a Rocket
//! response as it is. The app keeps its users, its login
//! page and (if it wants one) its consent page; the adapter hands it the waiting
//! authorization through request guards and takes the end-user back.
//!
//! ```no_run
//! use std::sync::Arc;
//! use oidc_flow::Provider;
//! use oidc_flow_rocket::{Authentication, Bearer, Oidc, OidcResponse, PendingLogin, RequiredScope};
//! use oidc_flow_rocket::{UserClaims, UserInfo};
//! use oidc_flow_store::MemoryStore;
//! use rocket::{get, post, routes};
//!
//! struct Users;
//! impl UserClaims for Users {
//!     async fn claims(&self, subject: &str) -> Option<UserInfo> {
//!         Some(UserInfo { name: Some(subject.to_owned()), ..UserInfo::default() })
//!     }
//! }
//!
//! // The app's login page: `PendingLogin` is the authorization waiting for it.
//! #[post("/login")]
//! async fn login(pending: PendingLogin<'_>) -> OidcResponse {
//!     // ... check the app's own credentials, then:
//!     pending.complete(Authentication {
//!         subject: "u-1".into(),
//!         auth_time: rocket::time::OffsetDateTime::now_utc(),
//!         acr: None,
//!         amr: vec!["pwd".into()],
//!         sid: None,
//!     }).await
//! }
//!
//! struct Profile;
//! impl RequiredScope for Profile { const SCOPE: &'static str = "profile"; }
//!
//! // The app's API, behind an access token with the `profile` scope.
//! #[get("/api/me")]
//! fn me(token: Bearer<Profile>) -> String { token.subject().to_owned() }
//!
//! # async fn build(provider: Arc<Provider>) -> rocket::Rocket<rocket::Build> {
//! let oidc = Oidc::builder(provider, Arc::new(MemoryStore::new()), Users)
//!     .login_url("/login")
//!     .consent_url("/consent")
//!     .build();
//! rocket::build().attach(oidc).mount("/", routes![login, me])
//! # }
//! ```
//!
//! # Layout
//! - [`Oidc`]: the provider in Rocket's managed state; as a fairing it mounts the endpoints
//!   under the issuer's path and adds RFC 6750 challenges to refused bearer requests.
//! - [`PendingLogin`], [`PendingConsent`]: request guards for the app's login and consent
//!   routes; [`PendingLogin::complete`], [`PendingConsent::allow`] and
//!   [`PendingConsent::deny`] resume the authorization.
//! - [`Bearer`]: a request guard for the app's own resources (token and [`RequiredScope`]).
//! - [`UserClaims`]: the app's claims; [`AppStore`] puts them in front of a store.
//! - [`OidcResponse`]: a finished response (Rocket's `Responder` is synchronous).
//!
//! # Cookies
//! `oidc_flow_session` (the end-user's session at the provider, path = the issuer's path)
//! and `oidc_flow_browser` (a random value the waiting authorizations are sealed to, path
//! `/`) are HttpOnly and SameSite=Lax, and `oidc_flow_csrf` (the logout confirmation's,
//! SameSite=Strict) too; on an https issuer they are Secure, `Path=/` and named with the
//! `__Host-` prefix, so a sibling subdomain cannot plant them (the adapter hands the
//! shared layer the browser's `Cookie` header as sent, not Rocket's decoded jar). They are
//! the shared layer's (`oidc_flow_store::endpoints`), as in every adapter. A waiting
//! authorization travels in the login or consent page's URL, sealed to that browser
//! (`oidc_flow::parking`): the guards open it only with the browser's own cookie, so a
//! cross-site form post (which carries no Lax cookie) or a sealed request planted from
//! another browser is refused: that is the CSRF protection of the app's login and consent
//! forms. Nothing is stored until the person has logged in or answered.
//!
//! # Logs and slow clients
//! Rocket logs each request's URI with its query string, which here holds `state`,
//! `id_token_hint`, `login_hint` and sealed parked requests: install [`RedactQueries`]
//! (or [`install_logger`]) before Rocket starts so its lines keep the path alone. Rocket 0.5
//! has no timeout for a client that sends its headers slowly; put the app behind a reverse
//! proxy with a header timeout (nginx `client_header_timeout`, Caddy
//! `servers.timeouts.read_header`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::sync::Arc;

use oidc_flow::Provider;
use oidc_flow_store::Store;
use oidc_flow_store::endpoints::{Endpoints, Pages};
use oidc_flow_store::grants::Grants;

mod bearer;
mod interaction;
mod redact;
mod response;
mod routes;

pub use bearer::{AcceptedToken, Bearer, BearerRejection, NoScope, RequiredScope, TokenSource};
pub use interaction::{HANDLE_PARAM, InteractionError, PendingConsent, PendingLogin};
pub use oidc_flow::{Authentication, Scope, UserInfo};
pub use oidc_flow_store::endpoints::UndeclaredGrant;
pub use oidc_flow_store::endpoints::{DEFAULT_SESSION_LIFETIME as SESSION_LIFETIME, MAX_BODY};
pub use oidc_flow_store::grants::TokenGrant;
pub use oidc_flow_store::{AppStore, UserClaims};
pub use redact::{RedactQueries, install_logger, without_queries};
pub use response::OidcResponse;
pub use routes::routes;

/// The provider as Rocket managed state, and the fairing that installs it.
///
/// Attach it (`rocket::build().attach(oidc)`): it manages itself, mounts [`routes()`]
/// under the issuer's path (`https://app.example/oidc` mounts `/oidc/authorize`, ...), and
/// puts `WWW-Authenticate` on responses to requests a [`Bearer`] guard refused.
#[derive(Clone, Debug)]
pub struct Oidc {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Everything the provider does over HTTP, framework-neutral.
    endpoints: Endpoints,
    /// How often the store's expired rows are purged while Rocket runs.
    purge_interval: std::time::Duration,
}

impl Oidc {
    /// Starts a configuration: the provider, its store, and the app's claims.
    pub fn builder<S: Store, C: UserClaims>(
        provider: Arc<Provider>,
        store: Arc<S>,
        claims: C,
    ) -> OidcBuilder<S, C> {
        OidcBuilder {
            provider,
            store,
            claims,
            login_url: "/login".to_owned(),
            consent_url: "/consent".to_owned(),
            first_party: Vec::new(),
            purge_interval: oidc_flow_store::purge::PURGE_INTERVAL,
            grants: Grants::default(),
        }
    }

    /// The provider configuration.
    pub fn provider(&self) -> Arc<Provider> {
        self.inner.endpoints.provider()
    }

    /// Where the endpoints are mounted: the issuer URL's path (`/` for a bare origin).
    pub fn base_path(&self) -> &str {
        self.inner.endpoints.base_path()
    }

    pub(crate) fn parts(&self) -> &Inner {
        &self.inner
    }
}

/// Configures an [`Oidc`]; see [`Oidc::builder`].
#[derive(Debug)]
#[must_use]
pub struct OidcBuilder<S, C> {
    provider: Arc<Provider>,
    store: Arc<S>,
    claims: C,
    login_url: String,
    consent_url: String,
    first_party: Vec<String>,
    purge_interval: std::time::Duration,
    grants: Grants,
}

impl<S: Store, C: UserClaims> OidcBuilder<S, C> {
    /// Answers the extension grant `G::GRANT_TYPE` at the token endpoint with `grant`
    /// (Authlib's `register_grant`); the provider must declare it
    /// ([`oidc_flow::ProviderBuilder::extension_grant`]).
    pub fn grant<G: TokenGrant>(mut self, grant: G) -> Result<Self, UndeclaredGrant> {
        if !self.provider.accepts_extension_grant(G::GRANT_TYPE) {
            return Err(UndeclaredGrant(G::GRANT_TYPE));
        }
        self.grants = self.grants.with(grant);
        Ok(self)
    }

    /// The app's login page (default `/login`). An authorization that needs the end-user
    /// to sign in is sent there with `?oidc_request=HANDLE` ([`HANDLE_PARAM`]); its route
    /// takes a [`PendingLogin`].
    pub fn login_url(mut self, url: impl Into<String>) -> Self {
        self.login_url = url.into();
        self
    }

    /// The app's consent page (default `/consent`), reached like the login page; its route
    /// takes a [`PendingConsent`].
    pub fn consent_url(mut self, url: impl Into<String>) -> Self {
        self.consent_url = url.into();
        self
    }

    /// Clients of the app itself: the end-user is not asked to consent to them (the store's
    /// consent lookup answers yes), unless the request says `prompt=consent`.
    pub fn first_party<I, T>(mut self, client_ids: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.first_party
            .extend(client_ids.into_iter().map(Into::into));
        self
    }

    /// How often expired codes, tokens, single-use marks and sessions are deleted from the
    /// store while Rocket runs (default [`oidc_flow_store::purge::PURGE_INTERVAL`], one
    /// minute; at least 10 ms). The fairing starts the schedule at liftoff and stops it at
    /// shutdown.
    pub fn purge_interval(mut self, every: std::time::Duration) -> Self {
        self.purge_interval = every;
        self
    }

    /// The finished configuration.
    pub fn build(self) -> Oidc {
        let store = Arc::new(AppStore::new(self.store, self.claims, self.first_party));
        let pages = Pages::Application {
            login: self.login_url,
            consent: self.consent_url,
        };
        Oidc {
            inner: Arc::new(Inner {
                endpoints: Endpoints::new(self.provider, store, pages).with_grants(self.grants),
                purge_interval: self.purge_interval,
            }),
        }
    }
}

#[rocket::async_trait]
impl rocket::fairing::Fairing for Oidc {
    fn info(&self) -> rocket::fairing::Info {
        rocket::fairing::Info {
            name: "oidc-flow provider",
            kind: rocket::fairing::Kind::Ignite
                | rocket::fairing::Kind::Liftoff
                | rocket::fairing::Kind::Response,
        }
    }

    async fn on_ignite(&self, rocket: rocket::Rocket<rocket::Build>) -> rocket::fairing::Result {
        let base = self.base_path().to_owned();
        Ok(rocket.manage(self.clone()).mount(base, routes()))
    }

    /// Starts the purge schedule; it ends when Rocket shuts down.
    async fn on_liftoff(&self, rocket: &rocket::Rocket<rocket::Orbit>) {
        let oidc = self.clone();
        let shutdown = rocket.shutdown();
        rocket::tokio::spawn(async move {
            let inner = &oidc.inner;
            rocket::tokio::select! {
                () = inner.endpoints.purge_every(inner.purge_interval) => {}
                () = shutdown => {}
            }
        });
    }

    async fn on_response<'r>(
        &self,
        request: &'r rocket::Request<'_>,
        response: &mut rocket::Response<'r>,
    ) {
        bearer::challenge(request, response);
    }
}
