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
/// `/userinfo` and `/logout` (the shared layer answers 405 where a method does not fit).
/// They need the [`Oidc`] in managed state.
pub fn routes() -> Vec<Route> {
    Endpoints::PATHS
        .into_iter()
        .flat_map(|path| [Method::Get, Method::Post].map(|m| Route::new(m, path, Endpoint)))
        .collect()
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
                Ok(body) if body.is_complete() => {
                    let (method, uri, headers) = parts(req);
                    let endpoints = &oidc.parts().endpoints;
                    endpoints.handle(&method, &uri, &headers, &body).await
                }
                Ok(_) => endpoints::payload_too_large(),
                Err(_) => endpoints::plain(
                    http::StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                ),
            },
        };
        route::Outcome::from(req, OidcResponse(response))
    }
}

/// Rocket's request line and headers as the `http` crate's types. The cookies come from
/// Rocket's jar (which a local test client fills without a `Cookie` header).
pub(crate) fn parts(req: &Request<'_>) -> (http::Method, http::Uri, http::HeaderMap) {
    let method =
        http::Method::from_bytes(req.method().as_str().as_bytes()).unwrap_or(http::Method::GET);
    let uri = req.uri().to_string().parse().unwrap_or_default();
    let mut headers = http::HeaderMap::new();
    let jar: Vec<String> = req
        .cookies()
        .iter()
        .map(|c| format!("{}={}", c.name(), c.value()))
        .collect();
    if let Ok(value) = http::HeaderValue::from_str(&jar.join("; ")) {
        headers.insert(http::header::COOKIE, value);
    }
    for h in req.headers().iter() {
        if h.name().as_str().eq_ignore_ascii_case("cookie") {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(h.name().as_str().as_bytes()),
            http::HeaderValue::from_str(h.value()),
        ) {
            headers.append(name, value);
        }
    }
    (method, uri, headers)
}
