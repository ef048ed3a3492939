//! The end-session endpoint over HTTP (`GET|POST /logout`): the session cookie in, the
//! store driver's logout, then the browser sent on, the cookie cleared and the back-channel
//! notices handed to the background sender. The protocol decisions are the core's
//! (`oidc_flow::logout`); this file does cookies, CSRF and pages.

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use oidc_flow::flow::{LogoutFlow, LogoutStep};
use oidc_flow_store::Store;
use oidc_flow_store::driver::{self, LogoutResult};
use time::OffsetDateTime;

use crate::{
    App, Body, CSRF_COOKIE, Cookies, SESSION_COOKIE, csrf_token, html, html_posting_to, pages,
    server_error_page, session_of, set_cookie,
};

/// Runs an end-session request. `posted` is the form body of a POST: when it is our
/// confirmation form (`confirm=yes` with this browser's CSRF token), the end-user confirmed.
pub(crate) async fn end_session<S: Store>(
    app: &App<S>,
    step: LogoutStep,
    cookies: &Cookies,
    posted: Option<&[u8]>,
) -> Response<Body> {
    let now = OffsetDateTime::now_utc();
    let confirmed = match posted.map(|body| confirmation(app, body, cookies)) {
        None | Some(Ok(false)) => false,
        Some(Ok(true)) => true,
        Some(Err(why)) => {
            return html(
                StatusCode::BAD_REQUEST,
                pages::error_text("invalid_request", why),
            );
        }
    };
    let session = match session_of(app, cookies, now).await {
        Ok(s) => s,
        Err(e) => return server_error_page(&e.into()),
    };
    let mut result = driver::logout(&*app.store, &app.provider(), step, session.clone(), now).await;
    if confirmed && let Ok(LogoutResult::Confirm(awaiting)) = result {
        result = driver::logout(
            &*app.store,
            &app.provider(),
            LogoutFlow::after_confirmation(*awaiting),
            session,
            now,
        )
        .await;
    }
    match result {
        Err(e) => server_error_page(&e),
        Ok(LogoutResult::ErrorPage(page)) => html(StatusCode::BAD_REQUEST, pages::error(&page)),
        Ok(LogoutResult::Confirm(awaiting)) => {
            let person = match pages::person_name(&*app.store, awaiting.subject()).await {
                Ok(person) => person,
                Err(e) => return server_error_page(&e.into()),
            };
            let (csrf, fresh) = csrf_token(app, cookies);
            let body = pages::logout_confirm(&awaiting, &person, &csrf);
            let mut r = match awaiting.redirect() {
                // After the form, the answer is a 303 to the client's post-logout URI.
                Some(uri) => html_posting_to(StatusCode::OK, body, uri),
                None => html(StatusCode::OK, body),
            };
            if fresh {
                set_cookie(&mut r, app, CSRF_COOKIE, &csrf, None, true);
            }
            r
        }
        Ok(LogoutResult::LoggedOut(out)) => {
            if !out.back_channel.is_empty() {
                match &app.backchannel {
                    // In the background: a client that never answers costs this page nothing.
                    Some(sender) => sender.spawn(out.back_channel),
                    None => tracing::warn!(
                        notices = out.back_channel.len(),
                        "back-channel logout tokens not sent: no HTTP client"
                    ),
                }
            }
            let mut r = match &out.redirect {
                Some(location) => match HeaderValue::from_str(location) {
                    Ok(v) => {
                        let mut r = crate::with_headers(
                            StatusCode::SEE_OTHER,
                            "text/plain; charset=utf-8",
                            bytes::Bytes::new(),
                        );
                        r.headers_mut().insert(header::LOCATION, v);
                        r.headers_mut()
                            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                        r
                    }
                    Err(_) => html(
                        StatusCode::OK,
                        pages::logged_out(out.client_name.as_deref(), out.ended),
                    ),
                },
                None => html(
                    StatusCode::OK,
                    pages::logged_out(out.client_name.as_deref(), out.ended),
                ),
            };
            // The browser forgets the session too (the row is gone either way).
            set_cookie(
                &mut r,
                app,
                SESSION_COOKIE,
                "",
                Some(time::Duration::ZERO),
                false,
            );
            r
        }
    }
}

/// Whether a posted logout form is our confirmation form, with a CSRF token that matches
/// this browser's; `Err` when it claims to be one but the token does not match.
fn confirmation<S>(app: &App<S>, body: &[u8], cookies: &Cookies) -> Result<bool, &'static str> {
    let cookie = cookies
        .get(&app.cookie_name(CSRF_COOKIE))
        .unwrap_or_default();
    pages::logout_confirmation(body, cookie)
}
