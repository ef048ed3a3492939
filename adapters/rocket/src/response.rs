//! Finished responses: every await is over before one exists, so the `Responder` is a plain
//! conversion (Rocket's `Responder` is synchronous by design).

use std::io::Cursor;
use std::sync::Arc;

use oidc_flow::{ErrorCode, ErrorPage, JsonResponse, Redirect, ResponseMode};
use oidc_flow_store::driver::DriverError;
use oidc_flow_store::web;
use rocket::http::{ContentType, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};

/// A response of the provider, finished: an endpoint's JSON, a redirect, or a page.
///
/// Returned by the endpoints and by [`crate::PendingLogin::complete`],
/// [`crate::PendingConsent::allow`] and [`crate::PendingConsent::deny`]; return it from the
/// app's route as it is.
#[derive(Debug, Clone)]
#[must_use]
pub struct OidcResponse {
    status: Status,
    content_type: ContentType,
    headers: Vec<(&'static str, String)>,
    body: Arc<[u8]>,
}

impl OidcResponse {
    fn new(status: Status, content_type: ContentType, body: Arc<[u8]>) -> Self {
        Self {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The first value of header `name` (case-insensitive), other than `Content-Type`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// A JSON response of the core (token, UserInfo, their errors), headers included.
    pub(crate) fn json(json: JsonResponse) -> Self {
        let status = Status::from_code(json.status).unwrap_or(Status::InternalServerError);
        let mut r = Self::new(status, ContentType::JSON, json.body.into_bytes().into());
        r.headers.extend(json.headers);
        r
    }

    /// A JSON document cached by clients (discovery, JWKS).
    pub(crate) fn cached_json(body: Arc<[u8]>) -> Self {
        Self::new(Status::Ok, ContentType::JSON, body)
            .with("cache-control", "public, max-age=300")
            .with("access-control-allow-origin", "*")
    }

    /// Plain text, for refusals before the protocol starts (415, 413).
    pub(crate) fn plain(status: Status, text: &'static str) -> Self {
        Self::new(status, ContentType::Plain, Arc::from(text.as_bytes()))
    }

    /// A page of ours, with the headers every page gets (`oidc_flow_store::web`).
    pub(crate) fn html(status: Status, body: String) -> Self {
        Self::page(status, body, web::PAGE_CSP.to_owned())
    }

    /// A page of ours whose form posts to us and whose answer may be a 303 to `next` on
    /// another origin: browsers apply `form-action` to the redirects after a submission, so
    /// the policy names that origin too (and no other).
    pub(crate) fn html_posting_to(status: Status, body: String, next: &str) -> Self {
        Self::page(status, body, web::page_csp_posting_to(next))
    }

    fn page(status: Status, body: String, csp: String) -> Self {
        let mut r = Self::new(status, ContentType::HTML, body.into_bytes().into())
            .with("content-security-policy", csp);
        for (name, value) in web::PAGE_HEADERS {
            r = r.with(name, value);
        }
        r
    }

    /// An error shown to the user agent, never redirected.
    pub(crate) fn error_page(page: &ErrorPage) -> Self {
        let status = Status::from_code(page.status()).unwrap_or(Status::BadRequest);
        Self::html(status, web::error(page))
    }

    /// An error page from a status, a code and a description.
    pub(crate) fn error_text(status: Status, code: &str, description: &str) -> Self {
        Self::html(status, web::error_text(code, description))
    }

    /// The page of a request the driver could not finish (500).
    pub(crate) fn server_error(e: &DriverError) -> Self {
        log::error!("oidc-flow: request failed: {e}");
        Self::error_text(
            Status::InternalServerError,
            ErrorCode::ServerError.as_str(),
            "the server could not complete the request",
        )
    }

    /// The JSON `server_error` of a back-channel endpoint the driver could not finish.
    pub(crate) fn json_server_error(e: &DriverError) -> Self {
        log::error!("oidc-flow: request failed: {e}");
        Self::json(e.to_json())
    }

    /// A 303 to `location`, not cached.
    pub(crate) fn see_other(location: String) -> Self {
        Self::new(Status::SeeOther, ContentType::Plain, Arc::from(&b""[..]))
            .with("location", location)
            .with("cache-control", "no-store")
    }

    /// An authorization response: 303 for query and fragment, the auto-submitting page for
    /// form_post.
    pub(crate) fn redirect(redirect: &Redirect) -> Self {
        if redirect.mode() == ResponseMode::FormPost {
            let body = redirect.form_post_html().unwrap_or_default();
            // Its own policy: its one script by hash, its form only to the redirect URI's
            // origin.
            return Self::new(Status::Ok, ContentType::HTML, body.into_bytes().into())
                .with("cache-control", "no-store")
                .with("content-security-policy", redirect.form_post_csp())
                .with("x-frame-options", "DENY")
                .with("referrer-policy", "no-referrer");
        }
        match redirect.location() {
            Some(location) => Self::see_other(location),
            None => Self::error_text(
                Status::InternalServerError,
                ErrorCode::ServerError.as_str(),
                "the redirect could not be encoded",
            ),
        }
    }
}

impl<'r> Responder<'r, 'static> for OidcResponse {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let mut builder = Response::build();
        builder.status(self.status).header(self.content_type);
        for (name, value) in self.headers {
            builder.raw_header_adjoin(name, value);
        }
        builder.sized_body(self.body.len(), Cursor::new(self.body));
        Ok(builder.finalize())
    }
}
