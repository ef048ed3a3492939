//! The provider's endpoints as Rocket routes: each reads the request, calls the driver once,
//! and turns the core's answer into an [`OidcResponse`].

use oidc_flow::flow::{AuthorizeFlow, AuthorizeStep};
use oidc_flow::{Authentication, SecretHash};
use oidc_flow_store::StoreError;
use oidc_flow_store::driver::{AuthorizeResult, DriverError};
use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::http::uri::Origin;
use rocket::http::{CookieJar, Status};
use rocket::request::{self, FromRequest, Request};
use rocket::{Route, State, get, post};
use time::OffsetDateTime;

use crate::interaction::{SESSION_COOKIE, browser_binding};
use crate::{Oidc, OidcResponse};

/// Largest request body read (form posts of the authorization, token and UserInfo endpoints).
pub const MAX_BODY: usize = 64 * 1024;
/// How long an end-user session at the provider lasts.
pub const SESSION_LIFETIME: time::Duration = time::Duration::hours(8);

/// The provider's routes, to mount at [`Oidc::base_path`] (the [`Oidc`] fairing does it):
/// `GET /.well-known/openid-configuration`, `GET /jwks`, `GET|POST /authorize`,
/// `POST /token`, `GET|POST /userinfo`, `GET|POST /logout`. They need the [`Oidc`] in managed state.
pub fn routes() -> Vec<Route> {
    rocket::routes![
        discovery,
        jwks,
        authorize_get,
        authorize_post,
        token,
        userinfo_get,
        userinfo_post,
        crate::logout::logout_get,
        crate::logout::logout_post
    ]
}

#[get("/.well-known/openid-configuration")]
fn discovery(oidc: &State<Oidc>) -> OidcResponse {
    OidcResponse::cached_json(oidc.parts().discovery.clone())
}

#[get("/jwks")]
fn jwks(oidc: &State<Oidc>) -> OidcResponse {
    OidcResponse::cached_json(oidc.parts().jwks.clone())
}

#[get("/authorize")]
async fn authorize_get(
    oidc: &State<Oidc>,
    uri: &Origin<'_>,
    cookies: &CookieJar<'_>,
) -> OidcResponse {
    let query = uri.query().map(|q| q.as_str()).unwrap_or_default();
    authorize(oidc, AuthorizeFlow::from_query(query.as_bytes()), cookies).await
}

#[post("/authorize", data = "<body>")]
async fn authorize_post(
    oidc: &State<Oidc>,
    cookies: &CookieJar<'_>,
    body: RawBody,
) -> OidcResponse {
    if !body.form {
        return not_a_form();
    }
    authorize(oidc, AuthorizeFlow::from_form(&body.bytes), cookies).await
}

#[post("/token", data = "<body>")]
async fn token(oidc: &State<Oidc>, auth: AuthorizationHeader<'_>, body: RawBody) -> OidcResponse {
    if !body.form {
        return not_a_form();
    }
    let now = OffsetDateTime::now_utc();
    let inner = oidc.parts();
    json(
        inner
            .backend
            .token(&inner.provider, &body.bytes, auth.bytes(), now)
            .await,
    )
}

#[get("/userinfo")]
async fn userinfo_get(oidc: &State<Oidc>, auth: AuthorizationHeader<'_>) -> OidcResponse {
    let now = OffsetDateTime::now_utc();
    let inner = oidc.parts();
    json(
        inner
            .backend
            .userinfo(&inner.provider, auth.bytes(), None, now)
            .await,
    )
}

#[post("/userinfo", data = "<body>")]
async fn userinfo_post(
    oidc: &State<Oidc>,
    auth: AuthorizationHeader<'_>,
    body: RawBody,
) -> OidcResponse {
    // RFC 6750 §2.2: the body carries the token only as a form.
    let form = (body.form && !body.bytes.is_empty()).then_some(body.bytes.as_slice());
    let now = OffsetDateTime::now_utc();
    let inner = oidc.parts();
    json(
        inner
            .backend
            .userinfo(&inner.provider, auth.bytes(), form, now)
            .await,
    )
}

// ------------------------------------------------------------------ shared with the guards

/// Runs an authorization request with the browser's session.
async fn authorize(oidc: &Oidc, step: AuthorizeStep, cookies: &CookieJar<'_>) -> OidcResponse {
    let now = OffsetDateTime::now_utc();
    let session = match session_of(oidc, cookies, now).await {
        Ok(s) => s,
        Err(e) => return OidcResponse::server_error(&e.into()),
    };
    let inner = oidc.parts();
    let browser = browser_binding(oidc, cookies);
    let result = inner
        .backend
        .authorize(&inner.provider, step, session, &browser, now)
        .await;
    finish(oidc, result)
}

/// The end-user's session at the provider, from its cookie.
pub(crate) async fn session_of(
    oidc: &Oidc,
    cookies: &CookieJar<'_>,
    now: OffsetDateTime,
) -> Result<Option<Authentication>, StoreError> {
    match cookies.get(SESSION_COOKIE).map(|c| c.value()) {
        Some(v) if !v.is_empty() && v.len() <= 128 => {
            oidc.parts().backend.session(SecretHash::of(v), now).await
        }
        _ => Ok(None),
    }
}

/// Turns the end of an authorization into a response: the redirect to the client, an error
/// page, or a redirect to the app's login or consent page with the sealed request in
/// [`crate::interaction::HANDLE_PARAM`].
pub(crate) fn finish(oidc: &Oidc, result: Result<AuthorizeResult, DriverError>) -> OidcResponse {
    let (page, sealed) = match result {
        Err(e) => return OidcResponse::server_error(&e),
        Ok(AuthorizeResult::ErrorPage(page)) => return OidcResponse::error_page(&page),
        Ok(AuthorizeResult::Redirect(redirect)) => return OidcResponse::redirect(&redirect),
        Ok(AuthorizeResult::Login { sealed, .. }) => (&oidc.parts().login_url, sealed),
        Ok(AuthorizeResult::Consent { sealed, .. }) => (&oidc.parts().consent_url, sealed),
    };
    let joiner = if page.contains('?') { '&' } else { '?' };
    // The sealed value is base64url behind a "p1." prefix: nothing to escape.
    OidcResponse::see_other(format!(
        "{page}{joiner}{}={}",
        crate::interaction::HANDLE_PARAM,
        sealed.as_str()
    ))
}

fn json(result: Result<oidc_flow::JsonResponse, DriverError>) -> OidcResponse {
    match result {
        Ok(json) => OidcResponse::json(json),
        Err(e) => OidcResponse::json_server_error(&e),
    }
}

pub(crate) fn not_a_form() -> OidcResponse {
    OidcResponse::plain(
        Status::UnsupportedMediaType,
        "the body must be application/x-www-form-urlencoded",
    )
}

// ------------------------------------------------------------------ guards of the endpoints

/// The raw `Authorization` header, if any.
struct AuthorizationHeader<'r>(Option<&'r str>);

impl AuthorizationHeader<'_> {
    fn bytes(&self) -> Option<&[u8]> {
        self.0.map(str::as_bytes)
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for AuthorizationHeader<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        request::Outcome::Success(Self(req.headers().get_one("Authorization")))
    }
}

/// A request body read whole within [`MAX_BODY`], and whether it is a form.
pub(crate) struct RawBody {
    pub(crate) form: bool,
    pub(crate) bytes: Vec<u8>,
}

/// Why a request body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Longer than [`MAX_BODY`].
    TooLarge,
    /// The connection failed.
    Io(#[allow(dead_code)] std::io::Error),
}

#[rocket::async_trait]
impl<'r> FromData<'r> for RawBody {
    type Error = BodyError;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let form = req.content_type().is_some_and(|ct| ct.is_form());
        match data.open(MAX_BODY.bytes()).into_bytes().await {
            Ok(read) if read.is_complete() => data::Outcome::Success(Self {
                form,
                bytes: read.into_inner(),
            }),
            Ok(_) => data::Outcome::Error((Status::PayloadTooLarge, BodyError::TooLarge)),
            Err(e) => data::Outcome::Error((Status::BadRequest, BodyError::Io(e))),
        }
    }
}
