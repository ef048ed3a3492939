//! The app's login and consent routes: request guards that hand them the waiting
//! authorization, and the calls that resume it.

use oidc_flow::authorize::{
    ConsentAnswer, ConsentPage, LoginPage, PendingAuthorization, PendingView, Resumed,
};
use oidc_flow::flow::AuthorizeFlow;
use oidc_flow::{Authentication, Client, ErrorPage, MintedSecret, Scope};
use oidc_flow_store::driver;
use rocket::http::{Cookie, CookieJar, Method, SameSite, Status};
use rocket::request::{self, FromRequest, Request};
use rocket::response::{self, Responder};
use time::OffsetDateTime;

use crate::routes::{SESSION_LIFETIME, finish};
use crate::{Oidc, OidcResponse};

/// The query parameter that carries a waiting authorization, sealed to this browser, to the
/// app's login and consent pages: `/login?oidc_request=...`. A form on that page without an
/// `action` posts back to the same URL, sealed request included.
pub const HANDLE_PARAM: &str = "oidc_request";

/// The end-user's session at the provider, and a random value only this browser holds:
/// waiting authorizations are sealed to it, so one copied into another browser does not
/// open (and a form posted from another site, which does not send this SameSite=Lax
/// cookie, is refused). Named as in every adapter (`oidc_flow_store::web`).
pub(crate) use oidc_flow_store::web::{BROWSER_COOKIE, SESSION_COOKIE};

/// Why a login or consent guard refused the request.
#[derive(Debug)]
#[non_exhaustive]
pub enum InteractionError {
    /// The sealed request was edited, used, has expired, or was not started by this browser.
    Expired,
    /// The authorization waits for the other step (consent rather than login, or back).
    WrongStep,
    /// A form posted from another site.
    CrossSite,
    /// The client of the request is no longer registered as it was.
    Refused(ErrorPage),
    /// The store failed.
    Server(String),
}

impl std::fmt::Display for InteractionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Expired => f.write_str(
                "this sign-in request has expired, was already used, or was started in another \
                 browser; start again from the application",
            ),
            Self::WrongStep => f.write_str("this sign-in request is waiting for another step"),
            Self::CrossSite => f.write_str("a form posted from another site was refused"),
            Self::Refused(page) => f.write_str(&page.error.description),
            Self::Server(_) => f.write_str("the server could not complete the request"),
        }
    }
}

impl std::error::Error for InteractionError {}

impl InteractionError {
    /// The HTTP status it is answered with.
    pub fn status(&self) -> Status {
        match self {
            Self::Server(_) => Status::InternalServerError,
            Self::CrossSite => Status::Forbidden,
            _ => Status::BadRequest,
        }
    }

    /// The error page.
    pub fn to_response(&self) -> OidcResponse {
        match self {
            Self::Refused(page) => OidcResponse::error_page(page),
            Self::Server(e) => {
                log::error!("oidc-flow: request failed: {e}");
                OidcResponse::error_text(self.status(), "server_error", &self.to_string())
            }
            _ => OidcResponse::error_text(self.status(), "invalid_request", &self.to_string()),
        }
    }
}

impl<'r> Responder<'r, 'static> for InteractionError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        self.to_response().respond_to(req)
    }
}

/// An authorization waiting for the end-user to sign in: the request guard of the app's
/// login route.
///
/// It reads the sealed request from `?oidc_request=` ([`HANDLE_PARAM`]), forwards when
/// there is none (so the same path can serve a plain login), and fails with
/// [`InteractionError`] when it was edited, has expired, or was not started in this
/// browser. Looking writes nothing and does not use it up: the app can show the page,
/// refuse a wrong password and show it again. [`PendingLogin::complete`] uses it up, once.
///
/// ```
/// # use oidc_flow_rocket::{Authentication, OidcResponse, PendingLogin};
/// #[rocket::get("/login")]
/// fn login_page(pending: PendingLogin<'_>) -> String {
///     format!("Sign in to continue to {}", pending.client_name())
/// }
///
/// #[rocket::post("/login")]
/// async fn login(pending: PendingLogin<'_>) -> OidcResponse {
///     // ... the app checks its own credentials ...
///     let user = Authentication {
///         subject: "u-1".into(),
///         auth_time: rocket::time::OffsetDateTime::now_utc(),
///         acr: None,
///         amr: vec!["pwd".into()],
///         sid: None,
///     };
///     pending.complete(user).await
/// }
/// ```
#[derive(Debug)]
pub struct PendingLogin<'r> {
    oidc: &'r Oidc,
    cookies: &'r CookieJar<'r>,
    handle: String,
    pending: PendingAuthorization,
    /// What the page shows; the request itself goes on only with `complete`.
    page: LoginPage,
}

/// An authorization waiting for the end-user's consent: the request guard of the app's
/// consent route (as [`PendingLogin`] is of the login route).
#[derive(Debug)]
pub struct PendingConsent<'r> {
    oidc: &'r Oidc,
    cookies: &'r CookieJar<'r>,
    handle: String,
    pending: PendingAuthorization,
    /// What the page shows; the request itself goes on only with `allow` or `deny`.
    page: ConsentPage,
}

fn client_label(client: &Client) -> &str {
    client.client_name.as_deref().unwrap_or(&client.client_id)
}

impl PendingLogin<'_> {
    /// The sealed request (already in the page's URL; for forms that post elsewhere).
    pub fn handle(&self) -> &str {
        &self.handle
    }

    /// The waiting request: client, scope, `prompt`, `login_hint`, `acr_values`, locales...
    pub fn request(&self) -> &LoginPage {
        &self.page
    }

    /// The client asking.
    pub fn client(&self) -> &Client {
        self.page.client()
    }

    /// The client's display name, or its id.
    pub fn client_name(&self) -> &str {
        client_label(self.page.client())
    }

    /// The requested scope.
    pub fn scope(&self) -> &Scope {
        self.page.scope()
    }

    /// `login_hint`, to pre-fill the form.
    pub fn login_hint(&self) -> Option<&str> {
        self.page.login_hint()
    }

    /// Resumes the authorization with the end-user the app authenticated: opens their
    /// session at the provider, then answers with the redirect to the client, or a redirect
    /// to the consent page. The sealed request is used up.
    ///
    /// `user.auth_time` must not be older than the request (a login is what was asked for);
    /// otherwise the answer is the login page again.
    pub async fn complete(self, mut user: Authentication) -> OidcResponse {
        // The session's public id for ID and logout tokens, unless the app chose one.
        user.sid.get_or_insert_with(|| {
            MintedSecret::generate(&mut oidc_flow_store::driver::system_rng())
                .as_str()
                .chars()
                .take(22)
                .collect()
        });
        let now = OffsetDateTime::now_utc();
        let inner = self.oidc.parts();
        let awaiting = match take(self.oidc, self.pending).await {
            Ok(Resumed::Login(a)) => a,
            Ok(Resumed::Consent(_)) => return InteractionError::WrongStep.to_response(),
            Err(e) => return e.to_response(),
        };
        let session = MintedSecret::generate(&mut driver::system_rng());
        if let Err(e) = inner
            .backend
            .put_session(session.hash(), user.clone(), now + SESSION_LIFETIME)
            .await
        {
            return OidcResponse::server_error(&e.into());
        }
        let mut cookie = Cookie::build((SESSION_COOKIE, session.into_string()))
            .path(inner.base_path.clone())
            .max_age(rocket::time::Duration::seconds(
                SESSION_LIFETIME.whole_seconds(),
            ));
        if inner.base_path.is_empty() {
            cookie = cookie.path("/");
        }
        self.cookies.add(secured(self.oidc, cookie.build()));
        let browser = browser_binding(self.oidc, self.cookies);
        let result = inner
            .backend
            .authorize(
                &inner.provider,
                AuthorizeFlow::after_login(awaiting, user),
                None,
                &browser,
                now,
            )
            .await;
        finish(self.oidc, result)
    }
}

impl PendingConsent<'_> {
    /// The sealed request (already in the page's URL; for forms that post elsewhere).
    pub fn handle(&self) -> &str {
        &self.handle
    }

    /// The waiting request: client, scope, `prompt`, locales...
    pub fn request(&self) -> &ConsentPage {
        &self.page
    }

    /// The end-user being asked.
    pub fn subject(&self) -> &str {
        self.page.subject()
    }

    /// The client asking.
    pub fn client(&self) -> &Client {
        self.page.client()
    }

    /// The client's display name, or its id.
    pub fn client_name(&self) -> &str {
        client_label(self.page.client())
    }

    /// The requested scope.
    pub fn scope(&self) -> &Scope {
        self.page.scope()
    }

    /// The end-user allows the client the requested scope (remembered for later requests).
    pub async fn allow(self) -> OidcResponse {
        self.answer(ConsentAnswer::Allow).await
    }

    /// The end-user refuses: the client gets `access_denied`.
    pub async fn deny(self) -> OidcResponse {
        self.answer(ConsentAnswer::Deny).await
    }

    async fn answer(self, answer: ConsentAnswer) -> OidcResponse {
        let now = OffsetDateTime::now_utc();
        let inner = self.oidc.parts();
        let awaiting = match take(self.oidc, self.pending).await {
            Ok(Resumed::Consent(a)) => a,
            Ok(Resumed::Login(_)) => return InteractionError::WrongStep.to_response(),
            Err(e) => return e.to_response(),
        };
        let browser = browser_binding(self.oidc, self.cookies);
        let result = inner
            .backend
            .authorize(
                &inner.provider,
                AuthorizeFlow::after_consent(awaiting, answer),
                None,
                &browser,
                now,
            )
            .await;
        finish(self.oidc, result)
    }
}

/// Uses the parked authorization up (its single-use mark) and binds its client again.
async fn take(oidc: &Oidc, pending: PendingAuthorization) -> Result<Resumed, InteractionError> {
    match oidc.parts().backend.unpark(pending).await {
        Err(e) => Err(InteractionError::Server(e.to_string())),
        Ok(Err(page)) if page.error.code == oidc_flow::ErrorCode::InvalidRequest => {
            Err(InteractionError::Expired)
        }
        Ok(Err(page)) => Err(InteractionError::Refused(page)),
        Ok(Ok(resumed)) => Ok(resumed),
    }
}

/// What both guards do: find the sealed request, open it with this browser's binding, and
/// look at it (its client bound again). Writes nothing.
async fn look<'r>(
    req: &'r Request<'_>,
) -> request::Outcome<(&'r Oidc, String, PendingAuthorization, PendingView), InteractionError> {
    use request::Outcome;
    let fail = |e: InteractionError| Outcome::Error((e.status(), e));
    let Some(oidc) = req.rocket().state::<Oidc>() else {
        return fail(InteractionError::Server(
            "the Oidc fairing is not attached".to_owned(),
        ));
    };
    let handle = match req.query_value::<&str>(HANDLE_PARAM) {
        Some(Ok(h)) if !h.is_empty() => h.to_owned(),
        _ => return Outcome::Forward(Status::BadRequest),
    };
    if cross_site(oidc, req) {
        return fail(InteractionError::CrossSite);
    }
    let Some(browser) = req.cookies().get(BROWSER_COOKIE).map(|c| c.value()) else {
        return fail(InteractionError::Expired);
    };
    let now = OffsetDateTime::now_utc();
    let backend = &oidc.parts().backend;
    let pending = match backend.open_parked(&handle, browser, now) {
        Ok(p) => p,
        Err(_) => return fail(InteractionError::Expired),
    };
    match backend.view_parked(&pending).await {
        Err(e) => fail(InteractionError::Server(e.to_string())),
        Ok(Err(page)) => fail(InteractionError::Refused(page)),
        Ok(Ok(view)) => Outcome::Success((oidc, handle, pending, view)),
    }
}

/// A state-changing request sent from another site (Fetch Metadata, or an `Origin` that
/// is not the issuer's). The browser cookie is SameSite=Lax, so such a post would fail to
/// open the sealed request anyway; this says why.
fn cross_site(oidc: &Oidc, req: &Request<'_>) -> bool {
    if matches!(req.method(), Method::Get | Method::Head) {
        return false;
    }
    let headers = req.headers();
    if headers
        .get_one("Sec-Fetch-Site")
        .is_some_and(|s| s.eq_ignore_ascii_case("cross-site"))
    {
        return true;
    }
    headers
        .get_one("Origin")
        .is_some_and(|o| o != oidc.parts().issuer_origin)
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for PendingLogin<'r> {
    type Error = InteractionError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        look(req)
            .await
            .and_then(|(oidc, handle, pending, view)| match view {
                PendingView::Login(page) => request::Outcome::Success(Self {
                    oidc,
                    cookies: req.cookies(),
                    handle,
                    pending,
                    page,
                }),
                PendingView::Consent(_) => {
                    request::Outcome::Error((Status::BadRequest, InteractionError::WrongStep))
                }
            })
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for PendingConsent<'r> {
    type Error = InteractionError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        look(req)
            .await
            .and_then(|(oidc, handle, pending, view)| match view {
                PendingView::Consent(page) => request::Outcome::Success(Self {
                    oidc,
                    cookies: req.cookies(),
                    handle,
                    pending,
                    page,
                }),
                PendingView::Login(_) => {
                    request::Outcome::Error((Status::BadRequest, InteractionError::WrongStep))
                }
            })
    }
}

// ------------------------------------------------------------------ cookies

/// HttpOnly, SameSite=Lax, and Secure when the issuer is https.
pub(crate) fn secured(oidc: &Oidc, mut cookie: Cookie<'static>) -> Cookie<'static> {
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_secure(oidc.parts().secure_cookies);
    cookie
}

/// This browser's binding value: its [`BROWSER_COOKIE`], set now when it has none.
pub(crate) fn browser_binding(oidc: &Oidc, cookies: &CookieJar<'_>) -> String {
    if let Some(v) = cookies.get(BROWSER_COOKIE).map(|c| c.value())
        && oidc_flow_store::web::is_token(v)
    {
        return v.to_owned();
    }
    let value = oidc_flow_store::web::new_token();
    // A session cookie for the whole site: the app's pages live outside the issuer's path.
    let cookie = Cookie::build((BROWSER_COOKIE, value.clone()))
        .path("/")
        .build();
    cookies.add(secured(oidc, cookie));
    value
}
