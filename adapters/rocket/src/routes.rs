//! The provider's endpoints as Rocket routes: one handler that turns Rocket's request into
//! the `http` types, reads the body within [`MAX_BODY`], and hands both to the shared layer.

use oidc_flow_store::endpoints::{self, Endpoints, MAX_BODY};
use rocket::data::{Data, ToByteUnit};
use rocket::http::Method;
use rocket::request::Request;
use rocket::route::{self, Handler, Route};

use crate::{Oidc, OidcResponse};

/// The provider's routes, to mount at [`Oidc::base_path`] (the [`Oidc`] fairing does it):
/// `GET|POST` on `/.well-known/openid-configuration`, `/jwks`, `/authorize`, `/token`,
/// `/revoke`, `/userinfo` and `/logout` (the shared layer answers 405 where GET or POST does not fit;
/// other methods are not mounted and get Rocket's 404).
/// They need the [`Oidc`] in managed state.
pub fn routes() -> Vec<Route> {
    Endpoints::PATHS
        .into_iter()
        .flat_map(|path| [Method::Get, Method::Post].map(|m| Route::new(m, path, Endpoint)))
        .collect()
}

fn bad_request() -> endpoints::WebResponse {
    endpoints::plain(
        http::StatusCode::BAD_REQUEST,
        "the request could not be read",
    )
}

/// The one handler of every endpoint.
#[derive(Clone, Copy)]
struct Endpoint;

#[rocket::async_trait]
impl Handler for Endpoint {
    async fn handle<'r>(&self, req: &'r Request<'_>, data: Data<'r>) -> route::Outcome<'r> {
        let response = match req.rocket().state::<Oidc>() {
            None => endpoints::not_found(),
            Some(oidc) => match data.open(MAX_BODY.bytes()).into_bytes().await {
                Ok(body) if body.is_complete() => match parts(req) {
                    Some((method, uri, headers)) => {
                        let endpoints = &oidc.parts().endpoints;
                        endpoints.handle(&method, &uri, &headers, &body).await
                    }
                    None => bad_request(),
                },
                Ok(_) => endpoints::payload_too_large(),
                Err(_) => bad_request(),
            },
        };
        route::Outcome::from(req, OidcResponse(response))
    }
}

/// Rocket's request line and headers as the `http` crate's types: `None` for a method or
/// URI the `http` crate cannot carry (answered 400).
///
/// The `Cookie` header goes through as the browser sent it: Rocket's jar percent-decodes
/// names and values, which would let `%5F%5FHost-…` (a name any sibling host may set)
/// pass for a `__Host-` cookie. Only when there is no header at all (Rocket's local test
/// client fills the jar directly) are the jar's cookies used.
pub(crate) fn parts(req: &Request<'_>) -> Option<(http::Method, http::Uri, http::HeaderMap)> {
    let method = http::Method::from_bytes(req.method().as_str().as_bytes()).ok()?;
    let uri = req.uri().to_string().parse().ok()?;
    let mut headers = http::HeaderMap::new();
    for h in req.headers().iter() {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(h.name().as_str().as_bytes()),
            http::HeaderValue::from_str(h.value()),
        ) {
            headers.append(name, value);
        }
    }
    if !headers.contains_key(http::header::COOKIE) {
        let jar: Vec<String> = req
            .cookies()
            .iter()
            .map(|c| c.encoded().stripped().to_string())
            .collect();
        if let Ok(value) = http::HeaderValue::from_str(&jar.join("; ")) {
            headers.insert(http::header::COOKIE, value);
        }
    }
    Some((method, uri, headers))
}
