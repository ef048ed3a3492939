//! Finished responses: the shared layer's [`WebResponse`] as a Rocket `Responder` (every
//! await is over before one exists; Rocket's `Responder` is synchronous by design).

use std::io::Cursor;

use oidc_flow::JsonResponse;
use oidc_flow_store::endpoints::{self, WebResponse};
use rocket::http::{Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};

/// A response of the provider, finished: an endpoint's JSON, a redirect, or a page, with
/// its headers and cookies.
///
/// Returned by the endpoints and by [`crate::PendingLogin::complete`],
/// [`crate::PendingConsent::allow`] and [`crate::PendingConsent::deny`]; return it from the
/// app's route as it is.
#[derive(Debug, Clone)]
#[must_use]
pub struct OidcResponse(pub(crate) WebResponse);

impl OidcResponse {
    /// The HTTP status.
    pub fn status(&self) -> Status {
        Status::new(self.0.status().as_u16())
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        self.0.body()
    }

    /// A JSON response of the core, headers included.
    pub(crate) fn json(json: JsonResponse) -> Self {
        Self(endpoints::json_response(json))
    }
}

impl<'r> Responder<'r, 'static> for OidcResponse {
    fn respond_to(self, _: &'r Request<'_>) -> response::Result<'static> {
        let (parts, body) = self.0.into_parts();
        let mut builder = Response::build();
        builder.status(Status::new(parts.status.as_u16()));
        for (name, value) in &parts.headers {
            // UTF-8 (a redirect URI may hold it), not only visible ASCII as `to_str` wants.
            if let Ok(value) = std::str::from_utf8(value.as_bytes()) {
                builder.header_adjoin(Header::new(name.as_str().to_owned(), value.to_owned()));
            }
        }
        builder.sized_body(body.len(), Cursor::new(body));
        Ok(builder.finalize())
    }
}
