//! `GET|POST /logout`: the end-session endpoint (RP-Initiated Logout 1.0) for Rocket. The
//! core decides (`oidc_flow::logout`); this file does the session and CSRF cookies, the
//! confirmation and signed-out pages, and hands back-channel notices to the background
//! sender.

use oidc_flow::flow::{LogoutFlow, LogoutStep};
use oidc_flow_store::driver::LogoutResult;
use oidc_flow_store::web;
use rocket::http::uri::Origin;
use rocket::http::{Cookie, CookieJar, Status};
use rocket::{State, get, post};
use time::OffsetDateTime;

use crate::interaction::{SESSION_COOKIE, secured};
use crate::routes::{RawBody, not_a_form, session_of};
use crate::{Oidc, OidcResponse};

/// The confirmation form's CSRF cookie (path = the issuer's path), named as in every adapter.
use oidc_flow_store::web::CSRF_COOKIE;

/// `GET /logout?id_token_hint=...&post_logout_redirect_uri=...&state=...`
#[get("/logout")]
pub(crate) async fn logout_get(
    oidc: &State<Oidc>,
    uri: &Origin<'_>,
    cookies: &CookieJar<'_>,
) -> OidcResponse {
    let query = uri.query().map(|q| q.as_str()).unwrap_or_default();
    end_session(
        oidc,
        LogoutFlow::from_query(query.as_bytes()),
        cookies,
        false,
    )
    .await
}

/// `POST /logout`: a logout request as a form, or our confirmation form coming back.
#[post("/logout", data = "<body>")]
pub(crate) async fn logout_post(
    oidc: &State<Oidc>,
    cookies: &CookieJar<'_>,
    body: RawBody,
) -> OidcResponse {
    if !body.form {
        return not_a_form();
    }
    let confirmed = match confirmation(&body.bytes, cookies) {
        Ok(c) => c,
        Err(why) => return OidcResponse::error_text(Status::BadRequest, "invalid_request", why),
    };
    end_session(oidc, LogoutFlow::from_form(&body.bytes), cookies, confirmed).await
}

async fn end_session(
    oidc: &Oidc,
    step: LogoutStep,
    cookies: &CookieJar<'_>,
    confirmed: bool,
) -> OidcResponse {
    let now = OffsetDateTime::now_utc();
    let session = match session_of(oidc, cookies, now).await {
        Ok(s) => s,
        Err(e) => return OidcResponse::server_error(&e.into()),
    };
    let inner = oidc.parts();
    let mut result = inner
        .backend
        .logout(&inner.provider, step, session.clone(), now)
        .await;
    if confirmed && let Ok(LogoutResult::Confirm(awaiting)) = result {
        result = inner
            .backend
            .logout(
                &inner.provider,
                LogoutFlow::after_confirmation(*awaiting),
                session,
                now,
            )
            .await;
    }
    match result {
        Err(e) => OidcResponse::server_error(&e),
        Ok(LogoutResult::ErrorPage(page)) => OidcResponse::error_page(&page),
        Ok(LogoutResult::Confirm(awaiting)) => {
            let person = match inner.backend.user_claims(awaiting.subject()).await {
                Ok(claims) => claims
                    .and_then(|c| c.name.or(c.preferred_username))
                    .unwrap_or_else(|| awaiting.subject().to_owned()),
                Err(e) => return OidcResponse::server_error(&e.into()),
            };
            let csrf = match cookies.get(CSRF_COOKIE) {
                Some(c) if web::is_token(c.value()) => c.value().to_owned(),
                _ => {
                    let token = web::new_token();
                    let mut c = Cookie::build((CSRF_COOKIE, token.clone())).path(
                        if inner.base_path.is_empty() {
                            "/".to_owned()
                        } else {
                            inner.base_path.clone()
                        },
                    );
                    c = c.same_site(rocket::http::SameSite::Strict);
                    cookies.add(secured(oidc, c.build()));
                    token
                }
            };
            let body = web::logout_confirm(&awaiting, &person, &csrf);
            match awaiting.redirect() {
                Some(next) => OidcResponse::html_posting_to(Status::Ok, body, next),
                None => OidcResponse::html(Status::Ok, body),
            }
        }
        Ok(LogoutResult::LoggedOut(out)) => {
            if !out.back_channel.is_empty() {
                match &inner.backchannel {
                    // In the background: a client that never answers costs this page nothing.
                    Some(sender) => sender.spawn(out.back_channel),
                    None => log::warn!("oidc-flow: back-channel logout tokens not sent"),
                }
            }
            let mut gone = Cookie::build(SESSION_COOKIE).path(if inner.base_path.is_empty() {
                "/".to_owned()
            } else {
                inner.base_path.clone()
            });
            gone = gone.max_age(rocket::time::Duration::ZERO);
            cookies.remove(gone.build());
            match out.redirect {
                Some(location) => OidcResponse::see_other(location),
                None => OidcResponse::html(
                    Status::Ok,
                    web::logged_out(out.client_name.as_deref(), out.ended),
                ),
            }
        }
    }
}

/// Whether the posted form is our confirmation form with this browser's CSRF token;
/// `Err` when it claims to be one and the token does not match.
fn confirmation(body: &[u8], cookies: &CookieJar<'_>) -> Result<bool, &'static str> {
    let cookie = cookies
        .get(CSRF_COOKIE)
        .map(|c| c.value())
        .unwrap_or_default();
    web::logout_confirmation(body, cookie)
}
