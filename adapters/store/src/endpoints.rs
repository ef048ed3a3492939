//! The provider's HTTP side, framework-neutral: every endpoint, the login and consent
//! hand-off, sessions, cookies, CSRF and the headers of every answer, on the `http` crate's
//! types. An adapter reads a request (method, URI, headers, a body within [`MAX_BODY`]),
//! calls [`Endpoints::handle`], and writes the [`WebResponse`] back; that is all it does.
//!
//! Nothing here decides what the protocol decides: each endpoint is one driver call
//! ([`crate::driver`]), and each answer is the core's, turned into HTTP.
//!
//! Two ways to show the login and consent pages ([`Pages`]):
//! - [`Pages::Provider`]: ours ([`crate::web::login`], [`crate::web::consent`]), answered to
//!   `/authorize` itself. The consent form posts to `{issuer}/consent`, answered here; the
//!   login form posts to `{issuer}/login`, which the adapter answers because it checks
//!   passwords its own way ([`Endpoints::login_form`], then [`Endpoints::complete`] or
//!   [`Endpoints::login_again`]). Waiting requests are sealed to the forms' CSRF cookie.
//! - [`Pages::Application`]: the application's own routes. `/authorize` answers 303 to
//!   them with `?oidc_request=SEALED` ([`HANDLE_PARAM`]); they take the waiting request
//!   with [`Endpoints::waiting`] and finish it with [`Endpoints::complete`] or
//!   [`Endpoints::answer`]. Waiting requests are sealed to a browser cookie
//!   ([`crate::web::BROWSER_COOKIE`]).

// A refusal is a whole response, returned once per request on the path that ends it:
// boxing it would cost an allocation and buy nothing.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri, header};
use oidc_flow::authorize::{ConsentAnswer, PendingAuthorization, PendingView, Resumed};
use oidc_flow::flow::{AuthorizeFlow, AuthorizeStep, LogoutFlow, LogoutStep};
use oidc_flow::params::Params;
use oidc_flow::resource::AccessTokenVerifier;
use oidc_flow::userinfo::{self, BearerError};
use oidc_flow::{
    Authentication, Client, ErrorCode, ErrorPage, GrantId, JsonResponse, MintedSecret, OAuthError,
    Provider, Redirect, ResponseMode, Scope, SecretHash,
};
use time::OffsetDateTime;

use crate::backchannel::BackchannelSender;
use crate::backend::{Backend, Shared};
use crate::driver::{AuthorizeResult, DriverError, LogoutResult, system_rng};
use crate::grants::{Grants, TokenGrant};
use crate::web::{self, BROWSER_COOKIE, CSRF_COOKIE, SESSION_COOKIE};
use crate::{Store, StoreError, StoreResult};

/// Largest request body an adapter reads (form posts to the authorization, token, UserInfo,
/// logout, login and consent endpoints); answer a longer one with [`payload_too_large`].
pub const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send a request body (and, where the server allows
/// setting it, its head).
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// How long an end-user session lasts at most, by default.
pub const DEFAULT_SESSION_LIFETIME: time::Duration = time::Duration::hours(8);
/// The query parameter that carries a waiting request, sealed to the browser, to the
/// application's login and consent pages (`/login?oidc_request=...`). A form on that page
/// without an `action` posts back to the same URL, sealed request included.
pub const HANDLE_PARAM: &str = "oidc_request";

/// [`Endpoints::with_grant`] was given a grant its provider does not declare.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the provider does not declare the extension grant `{0}`: add it with ProviderBuilder::extension_grant"
)]
pub struct UndeclaredGrant(pub &'static str);

/// A finished HTTP response: status, headers (cookies included) and body.
pub type WebResponse = Response<Bytes>;

/// Who shows the login and consent pages (see the module docs).
#[derive(Debug, Clone)]
pub enum Pages {
    /// The provider's own pages, answered to `/authorize`; the adapter answers
    /// `POST {issuer}/login`.
    Provider,
    /// The application's pages at these URLs: paths on the issuer's own origin (the
    /// browser cookie is host-only, and posts must come from the issuer's origin).
    Application {
        /// Where a request that needs a login is sent.
        login: String,
        /// Where a request that needs consent is sent.
        consent: String,
    },
}

/// A provider with its two documents rendered once (they change only with the provider).
struct Served {
    provider: Arc<Provider>,
    discovery: Bytes,
    jwks: Bytes,
    /// JWT access tokens checked locally (RFC 9068), with the keys parsed once per key set;
    /// `None` if jsonwebtoken can use none of them.
    verifier: Option<AccessTokenVerifier>,
}

impl Served {
    fn new(provider: Arc<Provider>) -> Arc<Self> {
        let jwks = provider.jwks();
        Arc::new(Self {
            discovery: Bytes::from(oidc_flow::discovery::document(&provider).to_string()),
            jwks: Bytes::from(jwks.to_string()),
            verifier: AccessTokenVerifier::new(provider.issuer(), &jwks, &[]).ok(),
            provider,
        })
    }
}

/// The provider's endpoints over a store: what every adapter calls.
pub struct Endpoints {
    served: ArcSwap<Served>,
    backend: Box<dyn Backend>,
    pages: Pages,
    /// The issuer URL's path, which prefixes every endpoint ("" for a bare origin).
    base_path: String,
    /// Cookies are `Secure` and `__Host-` prefixed when the issuer is https.
    secure: bool,
    issuer_origin: String,
    session_lifetime: time::Duration,
    session_idle_timeout: time::Duration,
    /// Delivers back-channel logout tokens in the background (`None` if its HTTP client
    /// could not be built: logouts then only end the session here, with a warning).
    backchannel: Option<BackchannelSender>,
    /// The application's extension grants at the token endpoint.
    grants: Grants,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints")
            .field("issuer", &self.served.load().provider.issuer())
            .field("pages", &self.pages)
            .finish_non_exhaustive()
    }
}

/// The browser's binding value (the cookie waiting requests are sealed to), and whether
/// the cookie is new and must be set.
struct Binding {
    value: String,
    fresh: bool,
}

impl Endpoints {
    /// Serves `provider` from `store`, with the login and consent pages of `pages`.
    pub fn new<S: Store>(provider: Arc<Provider>, store: Arc<S>, pages: Pages) -> Self {
        let issuer = url::Url::parse(provider.issuer()).ok();
        Self {
            secure: issuer.as_ref().is_some_and(|u| u.scheme() == "https"),
            base_path: issuer
                .as_ref()
                .map(|u| u.path().trim_end_matches('/').to_owned())
                .unwrap_or_default(),
            issuer_origin: issuer
                .as_ref()
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default(),
            served: ArcSwap::new(Served::new(provider)),
            backend: Box::new(Shared(store)),
            pages,
            session_lifetime: DEFAULT_SESSION_LIFETIME,
            session_idle_timeout: crate::DEFAULT_SESSION_IDLE_TIMEOUT,
            backchannel: BackchannelSender::new()
                .inspect_err(|e| tracing::warn!(error = %e, "no back-channel logout delivery"))
                .ok(),
            grants: Grants::default(),
        }
    }

    /// Answers the extension grant `G::GRANT_TYPE` at the token endpoint with `grant`
    /// (Authlib's `register_grant`). The provider must declare it
    /// ([`oidc_flow::ProviderBuilder::extension_grant`]), so that discovery lists it and the
    /// token flow accepts it: a grant it does not declare is refused here rather than left
    /// unreachable.
    pub fn with_grant<G: TokenGrant>(mut self, grant: G) -> Result<Self, UndeclaredGrant> {
        if !self.provider().accepts_extension_grant(G::GRANT_TYPE) {
            return Err(UndeclaredGrant(G::GRANT_TYPE));
        }
        self.grants = std::mem::take(&mut self.grants).with(grant);
        Ok(self)
    }

    /// Answers every grant of `grants` the provider declares, as [`Endpoints::with_grant`]
    /// does one by one; one it does not declare is left out with an error logged (check
    /// them first with [`Grants::undeclared`]).
    #[must_use]
    pub fn with_grants(mut self, grants: Grants) -> Self {
        let provider = self.provider();
        if let Some(missing) = grants.undeclared(&provider) {
            tracing::error!(
                grant_type = missing,
                "an extension grant the provider does not declare is not served"
            );
        }
        self.grants = grants.declared_by(&provider);
        self
    }

    /// Sets how long end-user sessions last at most and how long they may go unused.
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

    /// The provider configuration now served.
    pub fn provider(&self) -> Arc<Provider> {
        self.served.load().provider.clone()
    }

    /// Serves `provider` from now on (new signing keys, say); requests in flight finish with
    /// the one they started with. The discovery document and JWKS are rendered here.
    pub fn replace_provider(&self, provider: Arc<Provider>) {
        self.served.store(Served::new(provider));
    }

    /// The issuer URL's path, under which every endpoint lives (`/` for a bare origin).
    pub fn base_path(&self) -> &str {
        if self.base_path.is_empty() {
            "/"
        } else {
            &self.base_path
        }
    }

    /// The protocol endpoints' paths below [`Endpoints::base_path`], for adapters that
    /// route (with [`Pages::Provider`], `/login` and `/consent` are the provider's too).
    pub const PATHS: [&'static str; 8] = [
        "/.well-known/openid-configuration",
        "/jwks",
        "/authorize",
        "/token",
        "/revoke",
        "/introspect",
        "/userinfo",
        "/logout",
    ];

    /// Answers one request. `body` is the whole body, read within [`MAX_BODY`]. Paths
    /// outside the issuer's answer 404, as do `/login` and `/consent` with
    /// [`Pages::Application`]. With [`Pages::Provider`], the adapter answers
    /// `POST {issuer}/login` itself ([`Endpoints::login_form`]); here `/login` answers 405.
    pub async fn handle(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> WebResponse {
        let Some(local) = uri.path().strip_prefix(self.base_path.as_str()) else {
            return not_found();
        };
        let query = uri.query().unwrap_or_default().as_bytes();
        let own_pages = matches!(self.pages, Pages::Provider);
        let now = || OffsetDateTime::now_utc();
        match (local, method) {
            ("/.well-known/openid-configuration", &Method::GET | &Method::HEAD) => {
                cached_json(self.served.load().discovery.clone())
            }
            ("/jwks", &Method::GET | &Method::HEAD) => cached_json(self.served.load().jwks.clone()),
            ("/.well-known/openid-configuration" | "/jwks", _) => method_not_allowed("GET, HEAD"),
            ("/authorize", &Method::GET) => {
                self.authorize(AuthorizeFlow::from_query(query), headers)
                    .await
            }
            ("/authorize", &Method::POST) => match form(headers, body) {
                Ok(form) => {
                    self.authorize(AuthorizeFlow::from_form(form), headers)
                        .await
                }
                Err(r) => r,
            },
            ("/token", &Method::POST) => match form(headers, body) {
                Ok(form) => json_result(
                    self.backend
                        .token(
                            &self.provider(),
                            &self.grants,
                            form,
                            authorization(headers),
                            now(),
                        )
                        .await,
                ),
                Err(r) => r,
            },
            ("/revoke", &Method::POST) => match form(headers, body) {
                Ok(form) => json_result(
                    self.backend
                        .revoke(&self.provider(), form, authorization(headers), now())
                        .await,
                ),
                Err(r) => r,
            },
            ("/introspect", &Method::POST) => match form(headers, body) {
                Ok(form) => json_result(
                    self.backend
                        .introspect(&self.provider(), form, authorization(headers), now())
                        .await,
                ),
                Err(r) => r,
            },
            ("/userinfo", &Method::GET | &Method::POST) => {
                // RFC 6750 §2.2: the body carries the token only as a form.
                let form = (method == Method::POST && is_form(headers) && !body.is_empty())
                    .then_some(body);
                json_result(
                    self.backend
                        .userinfo(&self.provider(), authorization(headers), form, now())
                        .await,
                )
            }
            ("/logout", &Method::GET) => {
                self.end_session(LogoutFlow::from_query(query), headers, None)
                    .await
            }
            ("/logout", &Method::POST) => match form(headers, body) {
                Ok(form) => {
                    self.end_session(LogoutFlow::from_form(form), headers, Some(form))
                        .await
                }
                Err(r) => r,
            },
            ("/consent", &Method::POST) if own_pages => match form(headers, body) {
                Ok(form) => self.consent_form(headers, form).await,
                Err(r) => r,
            },
            ("/authorize" | "/userinfo" | "/logout", _) => method_not_allowed("GET, POST"),
            ("/token" | "/revoke" | "/introspect", _) => method_not_allowed("POST"),
            ("/login" | "/consent", _) if own_pages => method_not_allowed("POST"),
            _ => not_found(),
        }
    }

    /// Deletes expired codes, tokens, sessions and single-use marks every `every`, forever:
    /// spawn it when the server starts and drop it when it stops.
    pub async fn purge_every(&self, every: std::time::Duration) {
        crate::purge::purge_every(
            every,
            |now| self.backend.purge_expired(now),
            |e| tracing::warn!(error = %e, "purging expired rows failed"),
        )
        .await;
    }

    /// The check of an application's own resource (RFC 6750): the access token in the
    /// `Authorization` header, of this provider, unexpired, whose scope covers every token
    /// of `required` (space-separated; empty for any) and which is meant for this resource:
    /// `audiences` names the `aud` values or client ids it accepts (empty: any).
    ///
    /// An opaque token is looked up in the store (so a revoked one is refused at once); a
    /// JWT access token (RFC 9068) is verified locally against the provider's keys, with no
    /// store hit, and so is accepted until it expires even if revoked. The refusal is the
    /// core's answer: 401 `invalid_token`, 401 without a code (no token), 400
    /// `invalid_request`, 403 `insufficient_scope`, or 500, each with its `WWW-Authenticate`.
    pub async fn bearer(
        &self,
        authorization: Option<&[u8]>,
        required: &str,
        audiences: &[&str],
    ) -> Result<AcceptedToken, BearerError> {
        let served = self.served.load();
        let provider = &served.provider;
        let needed = Scope::parse(required)
            .map_err(|_| bearer_server_error("the resource's required scope is malformed"))?;
        let now = OffsetDateTime::now_utc();
        // Finding the token: the UserInfo endpoint's parser (header only: RFC 6750 §2.1).
        let token = userinfo::extract_bearer(provider.issuer(), authorization, None)?;
        let accepted = if token.split('.').count() == 3 {
            let verifier = served.verifier.as_ref().ok_or_else(|| {
                bearer_server_error("no key of the provider verifies JWT access tokens here")
            })?;
            let v = verifier.verify(&token, &needed, now)?;
            AcceptedToken {
                subject: v.subject,
                client_id: v.client_id,
                scope: v.scope,
                audience: v.audience,
                expires_at: v.expires_at,
                source: TokenSource::Jwt { jti: v.jti },
            }
        } else {
            let received = userinfo::Received::parse(provider, authorization, None)?;
            let record = match self.backend.access_token(received.token_hash()).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "access token lookup failed");
                    return Err(bearer_server_error(
                        "the server could not check the access token",
                    ));
                }
            };
            // The core's rules: known, same hash, unexpired, and the scope this route needs.
            let r = received.authorize_for(record, now, &needed)?.into_record();
            AcceptedToken {
                subject: r.subject,
                client_id: r.client_id,
                scope: r.scope,
                audience: r.audience,
                expires_at: r.expires_at,
                source: TokenSource::Store { grant: r.grant },
            }
        };
        if !accepted.is_for(audiences) {
            return Err(BearerError::new(
                provider.issuer(),
                ErrorCode::InvalidToken,
                "the access token is meant for another resource",
            ));
        }
        Ok(accepted)
    }

    // -------------------------------------------------------------- authorization

    async fn authorize(&self, step: AuthorizeStep, headers: &HeaderMap) -> WebResponse {
        let now = OffsetDateTime::now_utc();
        let cookies = Cookies::from(headers);
        let session = match self.session_of(&cookies, now).await {
            Ok(s) => s,
            Err(e) => return server_error_page(&e.into()),
        };
        let binding = self.binding(&cookies);
        let result = self
            .backend
            .authorize(&self.provider(), step, session, &binding.value, now)
            .await;
        self.authorize_response(result, &binding, None).await
    }

    /// The answer to a finished or waiting authorization; `binding` is what a waiting one
    /// was sealed to; `session` a new session cookie to set.
    async fn authorize_response(
        &self,
        result: Result<AuthorizeResult, DriverError>,
        binding: &Binding,
        session: Option<MintedSecret>,
    ) -> WebResponse {
        let mut response = match result {
            Err(e) => return server_error_page(&e),
            Ok(AuthorizeResult::ErrorPage(page)) => error_page(&page),
            Ok(AuthorizeResult::Redirect(redirect)) => redirect_response(&redirect),
            Ok(AuthorizeResult::Login { page, sealed }) => match &self.pages {
                Pages::Application { login, .. } => see_other(&with_handle(login, sealed.as_str())),
                Pages::Provider => html_posting_to(
                    StatusCode::OK,
                    web::login(&page, sealed.as_str(), &binding.value, None),
                    page.redirect_uri(),
                ),
            },
            Ok(AuthorizeResult::Consent { page, sealed }) => match &self.pages {
                Pages::Application { consent, .. } => {
                    see_other(&with_handle(consent, sealed.as_str()))
                }
                Pages::Provider => {
                    // The page names the person, not the subject identifier.
                    let person = match self.person_name(page.subject()).await {
                        Ok(p) => p,
                        Err(e) => return server_error_page(&e.into()),
                    };
                    html_posting_to(
                        StatusCode::OK,
                        web::consent(&page, &person, sealed.as_str(), &binding.value),
                        page.redirect_uri(),
                    )
                }
            },
        };
        if binding.fresh {
            self.set_binding_cookie(&mut response, &binding.value);
        }
        if let Some(session) = session {
            let lifetime = Some(self.session_lifetime);
            let cookie = self.cookie(SESSION_COOKIE, session.as_str(), lifetime, false, false);
            append_cookie(&mut response, &cookie);
        }
        response
    }

    /// A waiting request for the application's login or consent route: `None` when the
    /// URL carries none ([`HANDLE_PARAM`]), the refusal page when it was edited, forged,
    /// has expired, was sealed in another browser, or (for a form post) comes from
    /// another site. A used request still opens here (to show its page); resuming it
    /// again is what [`Endpoints::complete`] and [`Endpoints::answer`] refuse. Writes
    /// nothing: the page can be shown, a wrong password refused and the page shown again.
    pub async fn waiting(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Option<Waiting>, WebResponse> {
        let query = uri.query().unwrap_or_default().as_bytes();
        let Some((_, sealed)) = url::form_urlencoded::parse(query).find(|(k, _)| k == HANDLE_PARAM)
        else {
            return Ok(None);
        };
        if sealed.is_empty() {
            return Ok(None);
        }
        if method != Method::GET && method != Method::HEAD && self.cross_site(headers) {
            return Err(html(
                StatusCode::FORBIDDEN,
                web::error_text(
                    "invalid_request",
                    "a form posted from another site was refused",
                ),
            ));
        }
        let cookies = Cookies::from(headers);
        let browser = cookies
            .get(&self.cookie_name(BROWSER_COOKIE))
            .unwrap_or_default()
            .to_owned();
        let pending = self
            .backend
            .open_parked(&sealed, &browser, OffsetDateTime::now_utc())
            .map_err(|page| error_page(&page))?;
        let view = match self.backend.view_parked(&pending).await {
            Err(e) => return Err(server_error_page(&e.into())),
            Ok(Err(page)) => return Err(error_page(&page)),
            Ok(Ok(view)) => view,
        };
        let parked = Parked {
            pending,
            sealed: sealed.into_owned(),
            browser,
        };
        Ok(Some(Waiting { view, parked }))
    }

    /// Resumes a waiting request with the end-user the application authenticated: uses
    /// the sealed request up, opens their session at the provider (the cookie is in the
    /// answer), and answers with the redirect to the client, or with the consent step. A
    /// `sid` is minted when `user` has none.
    pub async fn complete(&self, parked: Parked, user: Authentication) -> WebResponse {
        self.resume_login(parked.pending, parked.browser, user)
            .await
    }

    /// Resumes a request waiting for consent with the end-user's answer: uses the sealed
    /// request up and answers with the redirect to the client.
    pub async fn answer(&self, parked: Parked, answer: ConsentAnswer) -> WebResponse {
        self.resume_consent(parked.pending, parked.browser, answer)
            .await
    }

    async fn resume_login(
        &self,
        pending: PendingAuthorization,
        browser: String,
        mut user: Authentication,
    ) -> WebResponse {
        let now = OffsetDateTime::now_utc();
        let awaiting = match self.unpark(pending).await {
            Ok(Resumed::Login(a)) => a,
            Ok(Resumed::Consent(_)) => return wrong_step("consent, not a login"),
            Err(r) => return r,
        };
        // The session's public id for ID and logout tokens: random, unrelated to the cookie.
        user.sid.get_or_insert_with(|| {
            let id = MintedSecret::generate(&mut system_rng());
            id.as_str().chars().take(22).collect()
        });
        let session = MintedSecret::generate(&mut system_rng());
        let expires = now + self.session_lifetime;
        if let Err(e) = self
            .backend
            .put_session(session.hash(), user.clone(), expires)
            .await
        {
            return server_error_page(&e.into());
        }
        let step = AuthorizeFlow::after_login(awaiting, user);
        let result = self
            .backend
            .authorize(&self.provider(), step, None, &browser, now)
            .await;
        let binding = Binding {
            value: browser,
            fresh: false,
        };
        self.authorize_response(result, &binding, Some(session))
            .await
    }

    async fn resume_consent(
        &self,
        pending: PendingAuthorization,
        browser: String,
        answer: ConsentAnswer,
    ) -> WebResponse {
        let now = OffsetDateTime::now_utc();
        let awaiting = match self.unpark(pending).await {
            Ok(Resumed::Consent(a)) => a,
            Ok(Resumed::Login(_)) => return wrong_step("a login, not consent"),
            Err(r) => return r,
        };
        let step = AuthorizeFlow::after_consent(awaiting, answer);
        let result = self
            .backend
            .authorize(&self.provider(), step, None, &browser, now)
            .await;
        let binding = Binding {
            value: browser,
            fresh: false,
        };
        self.authorize_response(result, &binding, None).await
    }

    /// The provider's login form posted back (`POST {issuer}/login`, [`Pages::Provider`]):
    /// the CSRF token checked and the sealed request opened. Writes nothing; the adapter
    /// checks the credentials, then calls [`Endpoints::complete`] or
    /// [`Endpoints::login_again`].
    pub fn login_form(&self, headers: &HeaderMap, body: &[u8]) -> Result<LoginForm, WebResponse> {
        let body = form(headers, body)?;
        let (params, pending, csrf) = self.posted_form(headers, body)?;
        if !pending.awaits_login() {
            return Err(wrong_step("consent, not a login"));
        }
        let sealed = params.get(web::SEALED_FIELD).unwrap_or_default().to_owned();
        let parked = Parked {
            pending,
            sealed,
            browser: csrf,
        };
        Ok(LoginForm { params, parked })
    }

    /// The login form again, carrying the same sealed request (nothing was used or
    /// stored), with `message` and the username kept; `retry_after` (seconds) makes it a
    /// 429 with `Retry-After`.
    pub async fn login_again(
        &self,
        form: &LoginForm,
        message: &str,
        retry_after: Option<u64>,
    ) -> WebResponse {
        let page = match self.backend.view_parked(&form.parked.pending).await {
            Err(e) => return server_error_page(&e.into()),
            Ok(Err(page)) => return error_page(&page),
            Ok(Ok(PendingView::Login(page))) => page,
            Ok(Ok(PendingView::Consent(_))) => return wrong_step("consent, not a login"),
        };
        let retry = web::Retry {
            message,
            username: form.username(),
        };
        let parked = &form.parked;
        let body = web::login(&page, &parked.sealed, &parked.browser, Some(retry));
        let status = match retry_after {
            Some(_) => StatusCode::TOO_MANY_REQUESTS,
            None => StatusCode::OK,
        };
        let mut r = html_posting_to(status, body, page.redirect_uri());
        if let Some(seconds) = retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        r
    }

    /// `POST {issuer}/consent` of the provider's consent form.
    async fn consent_form(&self, headers: &HeaderMap, body: &[u8]) -> WebResponse {
        let (params, pending, csrf) = match self.posted_form(headers, body) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let answer = match params.get("decision") {
            Some("allow") => ConsentAnswer::Allow,
            _ => ConsentAnswer::Deny,
        };
        if pending.awaits_login() {
            return wrong_step("a login, not consent");
        }
        self.resume_consent(pending, csrf, answer).await
    }

    /// A form of the provider's pages: its CSRF token checked against the browser's cookie,
    /// and the sealed request it carries opened (sealed to that same token).
    fn posted_form(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(Params, PendingAuthorization, String), WebResponse> {
        let refuse = |why: &str| {
            html(
                StatusCode::BAD_REQUEST,
                web::error_text("invalid_request", why),
            )
        };
        let params = Params::parse(body, MAX_BODY).map_err(|e| refuse(&e.to_string()))?;
        let cookies = Cookies::from(headers);
        let expected = cookies
            .get(&self.cookie_name(CSRF_COOKIE))
            .unwrap_or_default();
        if !web::tokens_match(params.get("csrf").unwrap_or_default(), expected) {
            return Err(refuse(
                "the form's CSRF token does not match this browser; start again from the application",
            ));
        }
        let sealed = params.get(web::SEALED_FIELD).unwrap_or_default();
        let now = OffsetDateTime::now_utc();
        match self.backend.open_parked(sealed, expected, now) {
            Ok(pending) => Ok((params, pending, expected.to_owned())),
            Err(page) => Err(error_page(&page)),
        }
    }

    /// Uses a parked request (its single-use mark), now that the end-user has answered.
    async fn unpark(&self, pending: PendingAuthorization) -> Result<Resumed, WebResponse> {
        match self.backend.unpark(pending).await {
            Err(e) => Err(server_error_page(&e.into())),
            Ok(Err(page)) => Err(error_page(&page)),
            Ok(Ok(resumed)) => Ok(resumed),
        }
    }

    /// A state-changing request sent from another site (Fetch Metadata, or an `Origin`
    /// that is not the issuer's).
    fn cross_site(&self, headers: &HeaderMap) -> bool {
        let value = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        value("sec-fetch-site").is_some_and(|s| s.eq_ignore_ascii_case("cross-site"))
            || value("origin").is_some_and(|o| o != self.issuer_origin)
    }

    async fn person_name(&self, subject: &str) -> StoreResult<String> {
        Ok(self
            .backend
            .user_claims(subject)
            .await?
            .and_then(|c| c.name.or(c.preferred_username))
            .unwrap_or_else(|| subject.to_owned()))
    }

    // -------------------------------------------------------------- logout

    /// Runs an end-session request. `posted` is the form body of a POST: when it is our
    /// confirmation form (`confirm=yes` with this browser's CSRF token), the end-user
    /// confirmed.
    async fn end_session(
        &self,
        step: LogoutStep,
        headers: &HeaderMap,
        posted: Option<&[u8]>,
    ) -> WebResponse {
        let now = OffsetDateTime::now_utc();
        let cookies = Cookies::from(headers);
        let csrf_cookie = cookies
            .get(&self.cookie_name(CSRF_COOKIE))
            .unwrap_or_default();
        let confirmed = match posted.map(|body| web::logout_confirmation(body, csrf_cookie)) {
            None | Some(Ok(false)) => false,
            Some(Ok(true)) => true,
            Some(Err(why)) => {
                return html(
                    StatusCode::BAD_REQUEST,
                    web::error_text("invalid_request", why),
                );
            }
        };
        let session = match self.session_of(&cookies, now).await {
            Ok(s) => s,
            Err(e) => return server_error_page(&e.into()),
        };
        let provider = self.provider();
        let mut result = self
            .backend
            .logout(&provider, step, session.clone(), now)
            .await;
        if confirmed && let Ok(LogoutResult::Confirm(awaiting)) = result {
            let step = LogoutFlow::after_confirmation(*awaiting);
            result = self.backend.logout(&provider, step, session, now).await;
        }
        match result {
            Err(e) => server_error_page(&e),
            Ok(LogoutResult::ErrorPage(page)) => error_page(&page),
            Ok(LogoutResult::Confirm(awaiting)) => {
                let person = match self.person_name(awaiting.subject()).await {
                    Ok(p) => p,
                    Err(e) => return server_error_page(&e.into()),
                };
                let (csrf, fresh) = match csrf_cookie {
                    c if web::is_token(c) => (c.to_owned(), false),
                    _ => (web::new_token(), true),
                };
                let body = web::logout_confirm(&awaiting, &person, &csrf);
                let mut r = match awaiting.redirect() {
                    // After the form, the answer is a 303 to the client's post-logout URI.
                    Some(uri) => html_posting_to(StatusCode::OK, body, uri),
                    None => html(StatusCode::OK, body),
                };
                if fresh {
                    append_cookie(&mut r, &self.cookie(CSRF_COOKIE, &csrf, None, true, false));
                }
                r
            }
            Ok(LogoutResult::LoggedOut(out)) => {
                if !out.back_channel.is_empty() {
                    match &self.backchannel {
                        // In the background: a client that never answers costs this page
                        // nothing.
                        Some(sender) => sender.spawn(out.back_channel),
                        None => tracing::warn!(
                            notices = out.back_channel.len(),
                            "back-channel logout tokens not sent: no HTTP client"
                        ),
                    }
                }
                let signed_out = || {
                    let body = web::logged_out(out.client_name.as_deref(), out.ended);
                    html(StatusCode::OK, body)
                };
                let mut r = match &out.redirect {
                    Some(location) if HeaderValue::from_str(location).is_ok() => {
                        see_other(location)
                    }
                    _ => signed_out(),
                };
                // The browser forgets the session too (the row is gone either way).
                let gone = Some(time::Duration::ZERO);
                append_cookie(&mut r, &self.cookie(SESSION_COOKIE, "", gone, false, false));
                r
            }
        }
    }

    // -------------------------------------------------------------- sessions and cookies

    async fn session_of(
        &self,
        cookies: &Cookies,
        now: OffsetDateTime,
    ) -> Result<Option<Authentication>, StoreError> {
        match cookies.get(&self.cookie_name(SESSION_COOKIE)) {
            Some(v) if !v.is_empty() && v.len() <= 128 => {
                let idle = self.session_idle_timeout;
                self.backend.session(SecretHash::of(v), now, idle).await
            }
            _ => Ok(None),
        }
    }

    /// The value waiting requests are sealed to: the CSRF cookie of our own forms, or the
    /// browser cookie of the application's pages; a new one when the browser has none.
    fn binding(&self, cookies: &Cookies) -> Binding {
        let name = match self.pages {
            Pages::Provider => CSRF_COOKIE,
            Pages::Application { .. } => BROWSER_COOKIE,
        };
        match cookies.get(&self.cookie_name(name)) {
            Some(v) if web::is_token(v) => Binding {
                value: v.to_owned(),
                fresh: false,
            },
            _ => Binding {
                value: web::new_token(),
                fresh: true,
            },
        }
    }

    fn set_binding_cookie(&self, response: &mut WebResponse, value: &str) {
        let cookie = match self.pages {
            // Our forms post from our pages only: Strict.
            Pages::Provider => self.cookie(CSRF_COOKIE, value, None, true, false),
            // The application's pages live outside the issuer's path, and are reached by a
            // redirect from a cross-site navigation: Lax, for the whole site.
            Pages::Application { .. } => self.cookie(BROWSER_COOKIE, value, None, false, true),
        };
        append_cookie(response, &cookie);
    }

    /// The name of a cookie of ours: on https with the `__Host-` prefix, which makes the
    /// browser refuse it unless it is `Secure`, for the whole host (`Path=/`) and set by
    /// this host, so a sibling subdomain cannot plant or overwrite it.
    pub fn cookie_name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite Strict or Lax, for the issuer's path or
    /// the whole site; on https Secure, `__Host-` and always `Path=/`.
    fn cookie(
        &self,
        name: &str,
        value: &str,
        max_age: Option<time::Duration>,
        strict: bool,
        whole_site: bool,
    ) -> String {
        let path = if whole_site || self.secure || self.base_path.is_empty() {
            "/"
        } else {
            &self.base_path
        };
        let same_site = if strict {
            cookie::SameSite::Strict
        } else {
            cookie::SameSite::Lax
        };
        let mut c = cookie::Cookie::build((self.cookie_name(name), value.to_owned()))
            .http_only(true)
            .secure(self.secure)
            .same_site(same_site)
            .path(path.to_owned());
        if let Some(age) = max_age {
            c = c.max_age(cookie::time::Duration::seconds(age.whole_seconds()));
        }
        c.build().to_string()
    }
}

/// The scope an application's resource needs: every space-separated token of
/// [`RequiredScope::SCOPE`] must be in the access token's scope ([`Endpoints::bearer`]).
///
/// ```
/// struct ReadProfile;
/// impl oidc_flow_store::endpoints::RequiredScope for ReadProfile {
///     const SCOPE: &'static str = "profile";
/// }
/// ```
pub trait RequiredScope: Send + Sync + 'static {
    /// Space-separated scope tokens, all required (empty: any valid token).
    const SCOPE: &'static str;
    /// The `aud` values (RFC 8707 resources) or client ids this resource accepts tokens
    /// for; empty (the default): any token of the provider.
    const AUDIENCES: &'static [&'static str] = &[];
}

/// An access token a resource accepted ([`Endpoints::bearer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedToken {
    /// The end-user it speaks for (for the client credentials grant, the client).
    pub subject: String,
    /// The client it was issued to.
    pub client_id: String,
    /// Its scope (at least what the route required).
    pub scope: Scope,
    /// The resources it was meant for (empty: none named).
    pub audience: Vec<String>,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// How it was checked.
    pub source: TokenSource,
}

impl AcceptedToken {
    /// Whether a resource accepting `audiences` (its `aud` values or client ids; empty:
    /// any) takes this token: its client is one of them, or it was meant for one of them.
    pub fn is_for(&self, audiences: &[&str]) -> bool {
        audiences.is_empty()
            || audiences.contains(&self.client_id.as_str())
            || self
                .audience
                .iter()
                .any(|a| audiences.contains(&a.as_str()))
    }
}

/// How an [`AcceptedToken`] was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// Found in the store (an opaque token): revocation is seen at once.
    Store {
        /// The grant it belongs to.
        grant: GrantId,
    },
    /// Verified locally as a JWT access token (RFC 9068): valid until it expires.
    Jwt {
        /// Its `jti`.
        jti: String,
    },
}

/// No scope required: any valid access token of this provider.
#[derive(Debug, Clone, Copy)]
pub struct NoScope;

impl RequiredScope for NoScope {
    const SCOPE: &'static str = "";
}

/// A request waiting for the application's login or consent page ([`Endpoints::waiting`]):
/// what the page shows, and the sealed request that [`Endpoints::complete`] or
/// [`Endpoints::answer`] uses up.
#[derive(Debug)]
pub struct Waiting {
    /// What the login or consent page shows (client, scope, hints, the end-user).
    pub view: PendingView,
    /// The sealed request, opened in this browser; used up once.
    pub parked: Parked,
}

/// A parked authorization opened in the browser it was sealed to: the one value that
/// resumes it ([`Endpoints::complete`], [`Endpoints::answer`]), which consumes it.
pub struct Parked {
    pending: PendingAuthorization,
    sealed: String,
    browser: String,
}

/// Without the browser's binding value (a cookie's secret).
impl std::fmt::Debug for Parked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parked")
            .field("client_id", &self.pending.client_id())
            .finish_non_exhaustive()
    }
}

impl Parked {
    /// The sealed request as the browser carries it (already in the page's URL; a form
    /// that posts elsewhere must keep it in that URL's query, where
    /// [`Endpoints::waiting`] reads it).
    pub fn sealed(&self) -> &str {
        &self.sealed
    }
}

/// The client's display name, or its id.
pub fn client_name(client: &Client) -> &str {
    client.client_name.as_deref().unwrap_or(&client.client_id)
}

/// The provider's login form, posted back with a valid CSRF token and sealed request
/// ([`Endpoints::login_form`]).
pub struct LoginForm {
    params: Params,
    parked: Parked,
}

/// Without the password or the CSRF token.
impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm")
            .field("username", &self.username())
            .field("parked", &self.parked)
            .finish_non_exhaustive()
    }
}

impl LoginForm {
    /// The username typed.
    pub fn username(&self) -> &str {
        self.params.get("username").unwrap_or_default()
    }

    /// The password typed.
    pub fn password(&self) -> &str {
        self.params.get("password").unwrap_or_default()
    }

    /// The waiting request, to resume with [`Endpoints::complete`] once the credentials
    /// are right.
    pub fn into_parked(self) -> Parked {
        self.parked
    }
}

// ------------------------------------------------------------------ reading requests

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

/// Our cookies' names all contain this (behind `__Host-` on https).
const OURS: &[u8] = b"oidc_flow_";

impl From<&HeaderMap> for Cookies {
    /// Our cookies only, pair by pair from the raw bytes: a cookie of someone else's that
    /// is not ASCII, or any number of them before ours, cannot hide ours. The work is
    /// bounded by the size of the head, which the server bounds.
    fn from(headers: &HeaderMap) -> Self {
        let mut out = Vec::new();
        for value in headers.get_all(header::COOKIE) {
            for pair in value.as_bytes().split(|&b| b == b';') {
                let pair = pair.trim_ascii();
                let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                    continue;
                };
                let (name, value) = pair.split_at(eq);
                let value = value.get(1..).unwrap_or_default().trim_ascii();
                let value = value
                    .strip_prefix(b"\"")
                    .and_then(|v| v.strip_suffix(b"\""))
                    .unwrap_or(value);
                let ours = name
                    .strip_prefix(b"__Host-")
                    .unwrap_or(name)
                    .starts_with(OURS);
                if let (true, Ok(name), Ok(value)) =
                    (ours, std::str::from_utf8(name), std::str::from_utf8(value))
                {
                    out.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        Self(out)
    }
}

fn authorization(headers: &HeaderMap) -> Option<&[u8]> {
    headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
}

/// Whether the body is `application/x-www-form-urlencoded`.
pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The body when it is a form; 415 otherwise.
fn form<'a>(headers: &HeaderMap, body: &'a [u8]) -> Result<&'a [u8], WebResponse> {
    if is_form(headers) {
        Ok(body)
    } else {
        Err(plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be application/x-www-form-urlencoded",
        ))
    }
}

// ------------------------------------------------------------------ responses

fn with_content(status: StatusCode, content_type: &'static str, body: Bytes) -> WebResponse {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A short plain-text answer, for refusals before the protocol starts.
pub fn plain(status: StatusCode, text: &'static str) -> WebResponse {
    with_content(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(text.as_bytes()),
    )
}

/// 404 for a path that is not the provider's.
pub fn not_found() -> WebResponse {
    plain(StatusCode::NOT_FOUND, "not found")
}

/// 413 for a body longer than [`MAX_BODY`].
pub fn payload_too_large() -> WebResponse {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        "the request body is too large",
    )
}

fn method_not_allowed(allow: &'static str) -> WebResponse {
    let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

fn append_cookie(response: &mut WebResponse, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn with_handle(page: &str, sealed: &str) -> String {
    let joiner = if page.contains('?') { '&' } else { '?' };
    // The sealed value is base64url behind a "p1." prefix: nothing to escape.
    format!("{page}{joiner}{HANDLE_PARAM}={sealed}")
}

/// A 303 to `location`, not cached.
fn see_other(location: &str) -> WebResponse {
    let Ok(value) = HeaderValue::from_str(location) else {
        return html(
            StatusCode::INTERNAL_SERVER_ERROR,
            web::error_text(
                ErrorCode::ServerError.as_str(),
                "the redirect could not be encoded",
            ),
        );
    };
    let mut r = with_content(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        Bytes::new(),
    );
    r.headers_mut().insert(header::LOCATION, value);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A page of ours, with the headers every page gets.
pub fn html(status: StatusCode, body: String) -> WebResponse {
    html_with_csp(status, body, HeaderValue::from_static(web::PAGE_CSP))
}

/// A page whose form posts to us and whose answer may be a 303 to `redirect_uri`'s origin
/// (browsers apply `form-action` to the redirects after a submission).
fn html_posting_to(status: StatusCode, body: String, redirect_uri: &str) -> WebResponse {
    let csp = HeaderValue::from_str(&web::page_csp_posting_to(redirect_uri))
        .unwrap_or(HeaderValue::from_static(web::PAGE_CSP));
    html_with_csp(status, body, csp)
}

fn html_with_csp(status: StatusCode, body: String, csp: HeaderValue) -> WebResponse {
    let mut r = with_content(status, "text/html; charset=utf-8", Bytes::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    for (name, value) in web::PAGE_HEADERS {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

/// An error shown to the user agent, never redirected.
pub fn error_page(page: &ErrorPage) -> WebResponse {
    let status = StatusCode::from_u16(page.status()).unwrap_or(StatusCode::BAD_REQUEST);
    html(status, web::error(page))
}

fn wrong_step(waits_for: &str) -> WebResponse {
    let why = format!("this sign-in request is waiting for {waits_for}");
    html(
        StatusCode::BAD_REQUEST,
        web::error_text("invalid_request", &why),
    )
}

fn cached_json(body: Bytes) -> WebResponse {
    let mut r = with_content(StatusCode::OK, "application/json", body);
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

/// A JSON response of the core (token, UserInfo, their errors), its headers included.
pub fn json_response(json: JsonResponse) -> WebResponse {
    let status = StatusCode::from_u16(json.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = with_content(status, "application/json", Bytes::from(json.body));
    for (name, value) in json.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            r.headers_mut().append(name, v);
        }
    }
    r
}

fn json_result(result: Result<JsonResponse, DriverError>) -> WebResponse {
    match result {
        Ok(json) => json_response(json),
        Err(e) => {
            tracing::error!(error = %e, "request failed");
            json_response(e.to_json())
        }
    }
}

/// A failure of the server, not of the token: 500 without a challenge.
fn bearer_server_error(description: &str) -> BearerError {
    let error = OAuthError::new(ErrorCode::ServerError, description);
    BearerError {
        response: JsonResponse::oauth_error(500, &error),
        error: Some(error),
    }
}

/// The page of a request the server could not finish (500), logged.
pub fn server_error_page(e: &DriverError) -> WebResponse {
    tracing::error!(error = %e, "request failed");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        web::error_text(
            ErrorCode::ServerError.as_str(),
            "the server could not complete the request",
        ),
    )
}

/// An authorization response: 303 for query and fragment, the auto-submitting page for
/// form_post.
pub fn redirect_response(redirect: &Redirect) -> WebResponse {
    if redirect.mode() == ResponseMode::FormPost {
        let body = redirect.form_post_html().unwrap_or_default();
        // Its own policy: its one script by hash, its form only to the redirect URI's origin.
        let csp = HeaderValue::from_str(&redirect.form_post_csp())
            .unwrap_or(HeaderValue::from_static("default-src 'none'"));
        return html_with_csp(StatusCode::OK, body, csp);
    }
    see_other(&redirect.location().unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cookies(raw: &[u8]) -> Cookies {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_bytes(raw).unwrap());
        Cookies::from(&headers)
    }

    #[test]
    fn other_cookies_cannot_hide_ours() {
        // Not ASCII, and many of them, before ours.
        let mut raw = "pref=caf\u{e9}; ".as_bytes().to_vec();
        for i in 0..100 {
            raw.extend_from_slice(format!("c{i}=v; ").as_bytes());
        }
        raw.extend_from_slice(b"oidc_flow_session=abc");
        assert_eq!(cookies(&raw).get("oidc_flow_session"), Some("abc"));
        assert_eq!(cookies(&raw).get("pref"), None, "only ours are kept");
    }

    #[test]
    fn an_encoded_name_is_not_a_host_cookie() {
        let c = cookies(b"%5F%5FHost-oidc_flow_session=planted; __Host-oidc_flow_session=real");
        assert_eq!(c.get("__Host-oidc_flow_session"), Some("real"));
        let c = cookies(b"x=%3B%20__Host-oidc_flow_session%3Dplanted");
        assert_eq!(c.get("__Host-oidc_flow_session"), None);
        assert_eq!(
            cookies(b"oidc_flow_csrf=\"q\"").get("oidc_flow_csrf"),
            Some("q")
        );
    }
}
