//! The app's own resources behind an access token (RFC 6750): the [`Bearer`] guard.

use std::marker::PhantomData;

use oidc_flow::userinfo::BearerError;
use oidc_flow::{ErrorCode, JsonResponse, OAuthError, Scope};
use rocket::http::{Header, Status};
use rocket::request::{self, FromRequest, Request};
use rocket::response::{self, Responder};
use time::OffsetDateTime;

use crate::{Oidc, OidcResponse};

pub use oidc_flow_store::endpoints::{AcceptedToken, NoScope, RequiredScope, TokenSource};

/// A request guard for the app's resources: a valid, unexpired access token of this
/// provider, sent as `Authorization: Bearer ...`, whose scope covers `R::SCOPE` and which is
/// meant for this resource (`R::AUDIENCES`: the `aud` values or client ids it accepts;
/// empty, the default, accepts any).
///
/// When it fails the request gets RFC 6750's answer: 401 `invalid_token` (unknown, revoked
/// or expired token), 401 without an error code (no token), 400 `invalid_request`
/// (malformed), or 403 `insufficient_scope`, each with `WWW-Authenticate: Bearer ...` and a
/// JSON error body. The [`Oidc`] fairing writes it onto whatever the app's catcher
/// renders; a route taking `Result<Bearer<R>, BearerRejection>` can return the
/// [`BearerRejection`] itself.
///
/// An opaque token is looked up in the store and checked with the core's rules (the
/// UserInfo endpoint's, without its need for `openid`); a JWT access token (RFC 9068) is
/// verified locally with jsonwebtoken against the provider's keys, without a store hit, and
/// is so accepted until it expires even if it was revoked.
pub struct Bearer<R: RequiredScope = NoScope> {
    record: AcceptedToken,
    _scope: PhantomData<fn() -> R>,
}

impl<R: RequiredScope> std::fmt::Debug for Bearer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bearer")
            .field("subject", &self.record.subject)
            .field("client_id", &self.record.client_id)
            .field("scope", &self.record.scope)
            .finish_non_exhaustive()
    }
}

impl<R: RequiredScope> Bearer<R> {
    /// The end-user the token speaks for.
    pub fn subject(&self) -> &str {
        &self.record.subject
    }

    /// The client it was issued to.
    pub fn client_id(&self) -> &str {
        &self.record.client_id
    }

    /// The scope it carries (at least `R::SCOPE`).
    pub fn scope(&self) -> &Scope {
        &self.record.scope
    }

    /// When it expires.
    pub fn expires_at(&self) -> OffsetDateTime {
        self.record.expires_at
    }

    /// The whole accepted token: its audience and how it was checked as well.
    pub fn token(&self) -> &AcceptedToken {
        &self.record
    }
}

/// Why a [`Bearer`] guard refused a request: the core's RFC 6750 error, as a response.
#[derive(Debug, Clone)]
pub struct BearerRejection(pub BearerError);

impl BearerRejection {
    /// The HTTP status (400, 401 or 403).
    pub fn status(&self) -> Status {
        Status::from_code(self.0.response.status).unwrap_or(Status::Unauthorized)
    }

    /// The OAuth error code, if there is one (none when no token was sent).
    pub fn code(&self) -> Option<ErrorCode> {
        self.0.error.as_ref().map(|e| e.code)
    }
}

impl<'r> Responder<'r, 'static> for BearerRejection {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        OidcResponse::json(self.0.response).respond_to(req)
    }
}

/// The refusal of this request's [`Bearer`] guard, for the fairing's `on_response`.
struct Refused(Option<BearerError>);

#[rocket::async_trait]
impl<'r, R: RequiredScope> FromRequest<'r> for Bearer<R> {
    type Error = BearerRejection;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Self::Error> {
        let Some(oidc) = req.rocket().state::<Oidc>() else {
            let error = OAuthError::new(ErrorCode::ServerError, "the provider is not attached");
            let response = JsonResponse::oauth_error(500, &error);
            let error = Some(error);
            return refuse(req, BearerError { response, error });
        };
        let authorization = req.headers().get_one("Authorization").map(str::as_bytes);
        // The shared layer's check: the token found, known, unexpired, and its scope.
        let endpoints = &oidc.parts().endpoints;
        match endpoints
            .bearer(authorization, R::SCOPE, R::AUDIENCES)
            .await
        {
            Ok(record) => request::Outcome::Success(Self {
                record,
                _scope: PhantomData,
            }),
            Err(e) => refuse(req, e),
        }
    }
}

fn refuse<S>(req: &Request<'_>, e: BearerError) -> request::Outcome<S, BearerRejection> {
    req.local_cache(|| Refused(Some(e.clone())));
    let rejection = BearerRejection(e);
    request::Outcome::Error((rejection.status(), rejection))
}

/// Puts the RFC 6750 answer on the response to a request a [`Bearer`] guard refused, if the
/// response still has that status (the app's catcher rendered it; the route did not
/// recover with `Option`/`Result`).
pub(crate) fn challenge(req: &Request<'_>, res: &mut rocket::Response<'_>) {
    let Refused(Some(e)) = req.local_cache(|| Refused(None)) else {
        return;
    };
    if res.status().code != e.response.status {
        return;
    }
    for (name, value) in &e.response.headers {
        res.set_header(Header::new(*name, value.clone()));
    }
    res.set_header(rocket::http::ContentType::JSON);
    let body = e.response.body.clone();
    res.set_sized_body(body.len(), std::io::Cursor::new(body));
}
