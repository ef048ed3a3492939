//! The app's login and consent routes: request guards that hand them the waiting
//! authorization (opened by the shared layer in this browser), and the calls that resume
//! it.

use oidc_flow::authorize::{ConsentAnswer, ConsentPage, LoginPage, PendingView};
use oidc_flow::{Authentication, Client, Scope};
use oidc_flow_store::endpoints::{Parked, Waiting, WebResponse, client_name};
use rocket::http::Status;
use rocket::request::{self, FromRequest, Request};
use rocket::response::{self, Responder};

use crate::routes::parts;
use crate::{Oidc, OidcResponse};

pub use oidc_flow_store::endpoints::HANDLE_PARAM;

/// Why a login or consent guard refused the request: the sealed request was edited, used,
/// has expired, was started in another browser or waits for the other step, or a form was
/// posted from another site. It answers with the shared layer's error page.
#[derive(Debug)]
pub struct InteractionError(OidcResponse);

impl InteractionError {
    /// The HTTP status it is answered with.
    pub fn status(&self) -> Status {
        self.0.status()
    }

    /// The error page.
    pub fn to_response(&self) -> OidcResponse {
        self.0.clone()
    }

    fn wrong_step() -> Self {
        let page = oidc_flow_store::endpoints::html(
            http::StatusCode::BAD_REQUEST,
            oidc_flow_store::web::error_text(
                "invalid_request",
                "this sign-in request is waiting for another step",
            ),
        );
        Self(OidcResponse(page))
    }
}

impl std::fmt::Display for InteractionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the sign-in request was refused ({})", self.status())
    }
}

impl std::error::Error for InteractionError {}

impl<'r> Responder<'r, 'static> for InteractionError {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        self.0.respond_to(req)
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
    page: LoginPage,
    parked: Parked,
}

/// An authorization waiting for the end-user's consent: the request guard of the app's
/// consent route (as [`PendingLogin`] is of the login route).
#[derive(Debug)]
pub struct PendingConsent<'r> {
    oidc: &'r Oidc,
    page: ConsentPage,
    parked: Parked,
}

impl PendingLogin<'_> {
    /// The sealed request (already in the page's URL; for forms that post elsewhere).
    pub fn handle(&self) -> &str {
        self.parked.sealed()
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
        client_name(self.page.client())
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
    pub async fn complete(self, user: Authentication) -> OidcResponse {
        let endpoints = &self.oidc.parts().endpoints;
        OidcResponse(endpoints.complete(self.parked, user).await)
    }
}

impl PendingConsent<'_> {
    /// The sealed request (already in the page's URL; for forms that post elsewhere).
    pub fn handle(&self) -> &str {
        self.parked.sealed()
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
        client_name(self.page.client())
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
        let endpoints = &self.oidc.parts().endpoints;
        OidcResponse(endpoints.answer(self.parked, answer).await)
    }
}

/// What both guards do: the shared layer opens the sealed request in this browser and
/// looks at it. Writes nothing.
async fn look<'r>(req: &'r Request<'_>) -> request::Outcome<(&'r Oidc, Waiting), InteractionError> {
    let fail = |r: WebResponse| {
        let e = InteractionError(OidcResponse(r));
        request::Outcome::Error((e.status(), e))
    };
    let Some(oidc) = req.rocket().state::<Oidc>() else {
        return fail(oidc_flow_store::endpoints::plain(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "the Oidc fairing is not attached",
        ));
    };
    let Some((method, uri, headers)) = parts(req) else {
        return fail(oidc_flow_store::endpoints::plain(
            http::StatusCode::BAD_REQUEST,
            "the request could not be read",
        ));
    };
    match oidc
        .parts()
        .endpoints
        .waiting(&method, &uri, &headers)
        .await
    {
        Ok(Some(waiting)) => request::Outcome::Success((oidc, waiting)),
        Ok(None) => request::Outcome::Forward(Status::BadRequest),
        Err(refused) => fail(refused),
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for PendingLogin<'r> {
    type Error = InteractionError;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        look(req)
            .await
            .and_then(|(oidc, waiting)| match waiting.view {
                PendingView::Login(page) => request::Outcome::Success(Self {
                    oidc,
                    page,
                    parked: waiting.parked,
                }),
                PendingView::Consent(_) => {
                    let e = InteractionError::wrong_step();
                    request::Outcome::Error((e.status(), e))
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
            .and_then(|(oidc, waiting)| match waiting.view {
                PendingView::Consent(page) => request::Outcome::Success(Self {
                    oidc,
                    page,
                    parked: waiting.parked,
                }),
                PendingView::Login(_) => {
                    let e = InteractionError::wrong_step();
                    request::Outcome::Error((e.status(), e))
                }
            })
    }
}
