//! What every adapter's web side shares, framework-neutral: the pages the provider shows
//! (login, consent, logout confirmation, signed out, errors) and their security headers'
//! values, the cookie names, and the CSRF double-submit check. An adapter turns these into
//! its framework's responses; none of it decides anything the protocol decides.
//!
//! Everything echoed into a page is escaped. The pages carry one inline style sheet,
//! allowed by its hash in [`PAGE_CSP`], and no script.

use oidc_flow::ErrorPage;
use oidc_flow::authorize::{ConsentPage, LoginPage};
use oidc_flow::params::Params;
use oidc_flow::response::escape_html;
use oidc_flow::{MintedSecret, SecretHash};

use crate::{Store, StoreResult};

/// The session cookie: the end-user's session at the provider (`HttpOnly`, `SameSite=Lax`).
pub const SESSION_COOKIE: &str = "oidc_flow_session";
/// The CSRF cookie of the provider's forms (`HttpOnly`, `SameSite=Strict`); the hyper
/// adapter also seals waiting requests to it.
pub const CSRF_COOKIE: &str = "oidc_flow_csrf";
/// A random value only this browser holds, that waiting requests are sealed to when the
/// login and consent pages are the application's (`HttpOnly`, `SameSite=Lax`, `Path=/`).
pub const BROWSER_COOKIE: &str = "oidc_flow_browser";

/// The pages' policy: nothing loads, the one inline `<style>` runs by its hash (checked by a
/// test), forms post only here, and no one may frame the pages.
pub const PAGE_CSP: &str = "default-src 'none'; style-src 'sha256-fApW8suKyOasvMpREr4aGNKJCiIYyCqoQOFeYsQnQlM='; \
     form-action 'self'; frame-ancestors 'none'";

/// The policy of a page whose form posts to us and whose answer may be a 303 to the
/// client's `redirect_uri`: browsers apply `form-action` to every redirect that follows a
/// submission, so it names that origin too (and no other).
pub fn page_csp_posting_to(redirect_uri: &str) -> String {
    match oidc_flow::response::csp_origin(redirect_uri) {
        Some(origin) => PAGE_CSP.replace(
            "form-action 'self'",
            &format!("form-action 'self' {origin}"),
        ),
        None => PAGE_CSP.to_owned(),
    }
}

/// The other headers every page gets, beside `Content-Type: text/html; charset=utf-8` and
/// its `Content-Security-Policy`.
pub const PAGE_HEADERS: [(&str, &str); 3] = [
    ("cache-control", "no-store"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

/// A new random token for a CSRF or browser cookie (256 bits, base64url).
pub fn new_token() -> String {
    MintedSecret::generate(&mut crate::driver::system_rng()).into_string()
}

/// Whether a cookie value has the shape of a token of [`new_token`] (anything else in the
/// cookie is not ours and is replaced).
pub fn is_token(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The double-submit check: the token a form posted equals the browser's cookie (compared
/// as digests, in constant time); an empty token never matches.
pub fn tokens_match(posted: &str, cookie: &str) -> bool {
    !posted.is_empty() && SecretHash::of(posted).ct_eq(&SecretHash::of(cookie))
}

/// Whether a posted logout form is our confirmation form (`confirm=yes`) with a CSRF token
/// that matches this browser's `csrf_cookie`; `Err` when it claims to be one but the token
/// does not match. A body that is not a form is left to the core, which reports it.
pub fn logout_confirmation(body: &[u8], csrf_cookie: &str) -> Result<bool, &'static str> {
    let Ok(params) = Params::parse(body, oidc_flow::authorize::MAX_REQUEST_BYTES) else {
        return Ok(false);
    };
    if params.get("confirm") != Some("yes") {
        return Ok(false);
    }
    if !tokens_match(params.get("csrf").unwrap_or_default(), csrf_cookie) {
        return Err(
            "the sign-out form's CSRF token does not match this browser; start again from the application",
        );
    }
    Ok(true)
}

/// The name a page calls the end-user by: their `name`, else `preferred_username`, else the
/// subject identifier.
pub async fn person_name<S: Store>(store: &S, subject: &str) -> StoreResult<String> {
    Ok(store
        .user_claims(subject)
        .await?
        .and_then(|c| c.name.or(c.preferred_username))
        .unwrap_or_else(|| subject.to_owned()))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#222}\
label{display:block;margin:.6rem 0 .2rem}input{width:100%;padding:.4rem;box-sizing:border-box}\
button{margin:.8rem .4rem 0 0;padding:.5rem 1rem}.err{color:#a00}li{margin:.2rem 0}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>",
        escape_html(title)
    )
}

fn client_label(name: Option<&str>, id: &str) -> String {
    escape_html(name.unwrap_or(id))
}

/// A login form shown again: why, and the username the person typed (kept, so only the
/// password needs typing again).
#[derive(Debug, Clone, Copy)]
pub struct Retry<'a> {
    /// What went wrong, shown above the form and announced by screen readers.
    pub message: &'a str,
    /// The username as it was typed.
    pub username: &'a str,
}

/// The hidden field of the login and consent forms that carries the sealed parked request.
pub const SEALED_FIELD: &str = "handle";

/// The login form: `username`, `password`, and the hidden sealed request and CSRF token. With
/// `retry`, the message is shown, the username kept and the focus put on the password.
pub fn login(awaiting: &LoginPage, sealed: &str, csrf: &str, retry: Option<Retry<'_>>) -> String {
    let client = awaiting.client();
    let who = client_label(client.client_name.as_deref(), &client.client_id);
    let (err, username, user_focus, password_focus) = match retry {
        Some(r) => (
            format!(
                "<p class=\"err\" role=\"alert\" id=\"login-error\">{}</p>",
                escape_html(r.message)
            ),
            escape_html(r.username),
            "",
            " autofocus aria-describedby=\"login-error\"",
        ),
        None => (
            String::new(),
            escape_html(awaiting.login_hint().unwrap_or_default()),
            " autofocus",
            "",
        ),
    };
    page(
        "Sign in",
        &format!(
            "<main><h1>Sign in</h1><p>to continue to <strong>{who}</strong></p>{err}\
             <form method=\"post\" action=\"login\">\
             <input type=\"hidden\" name=\"handle\" value=\"{}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label for=\"username\">Username</label>\
             <input id=\"username\" name=\"username\" value=\"{username}\" autocomplete=\"username\" \
             autocapitalize=\"none\" spellcheck=\"false\" required{user_focus}>\
             <label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required{password_focus}>\
             <button type=\"submit\">Sign in</button></form></main>",
            escape_html(sealed),
            escape_html(csrf)
        ),
    )
}

/// The consent form: who asks, who is signed in, what each scope shares in words, and
/// allow/deny buttons named `decision`. `person` is the end-user's name or username.
pub fn consent(awaiting: &ConsentPage, person: &str, sealed: &str, csrf: &str) -> String {
    let client = awaiting.client();
    let who = client_label(client.client_name.as_deref(), &client.client_id);
    let scopes: String = awaiting
        .scope()
        .iter()
        .map(|s| match oidc_flow::scope::describe(s) {
            Some(words) => format!("<li>{}</li>", escape_html(words)),
            None => format!("<li>access named <code>{}</code></li>", escape_html(s)),
        })
        .collect();
    page(
        "Allow access?",
        &format!(
            "<main><h1>Allow access?</h1><p><strong>{who}</strong> asks to use your account, \
             <strong>{}</strong>. It will see:</p><ul aria-label=\"What {who} will see\">{scopes}</ul>\
             <form method=\"post\" action=\"consent\">\
             <input type=\"hidden\" name=\"handle\" value=\"{}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" name=\"decision\" value=\"allow\" autofocus>Allow</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>\
             <p>Not you? Deny, then sign out of this provider and start again from the application.</p></main>",
            escape_html(person),
            escape_html(sealed),
            escape_html(csrf)
        ),
    )
}

/// An error shown to the user agent (never redirected).
pub fn error(page_error: &ErrorPage) -> String {
    error_text(
        page_error.error.code.as_str(),
        &page_error.error.description,
    )
}

/// An error page from a code and a description: what went wrong, and what to do.
pub fn error_text(code: &str, description: &str) -> String {
    let what_to_do = if code == "server_error" {
        "This is a problem on our side. Try again in a moment; if it keeps happening, \
         tell the people who run this sign-in service."
    } else {
        "Go back to the application you came from and start the sign-in again. If it \
         keeps happening, the application is sending a request this service cannot accept: \
         tell its developers the error code below."
    };
    page(
        "Sign-in request refused",
        &format!(
            "<main><h1>This sign-in request cannot continue</h1>\
             <p role=\"alert\">{}</p><h2>What you can do</h2><p>{what_to_do}</p>\
             <p>Error code: <code>{}</code></p></main>",
            escape_html(&capitalized(description)),
            escape_html(code)
        ),
    )
}

/// `s` with its first letter in upper case, as a sentence on a page.
fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Asks the end-user to confirm signing out: the logout request did not prove who sent it
/// (no `id_token_hint` of this user), so a link on another site cannot sign anyone out.
/// The form posts the request's parameters back with the CSRF token and `confirm=yes`.
pub fn logout_confirm(
    awaiting: &oidc_flow::logout::AwaitingConfirmation,
    person: &str,
    csrf: &str,
) -> String {
    let asked_by = awaiting
        .client()
        .map(|c| {
            format!(
                "<p><strong>{}</strong> asks to sign you out.</p>",
                client_label(c.client_name.as_deref(), &c.client_id)
            )
        })
        .unwrap_or_default();
    let hidden: String = awaiting
        .form_fields()
        .iter()
        .map(|(name, value)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                escape_html(name),
                escape_html(value)
            )
        })
        .collect();
    page(
        "Sign out?",
        &format!(
            "<main><h1>Sign out?</h1>{asked_by}<p>You are signed in as <strong>{}</strong>. \
             Signing out ends your session here and tells the applications you used.</p>\
             <form method=\"post\" action=\"logout\">{hidden}\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input type=\"hidden\" name=\"confirm\" value=\"yes\">\
             <button type=\"submit\" autofocus>Sign out</button></form>\
             <p>If you did not ask to sign out, close this page: you stay signed in.</p></main>",
            escape_html(person),
            escape_html(csrf)
        ),
    )
}

/// Says the end-user is signed out (no post-logout redirect was asked for).
pub fn logged_out(client_name: Option<&str>, ended: bool) -> String {
    let back = client_name
        .map(|n| {
            format!(
                "<p>You can close this page and return to <strong>{}</strong>.</p>",
                escape_html(n)
            )
        })
        .unwrap_or_else(|| "<p>You can close this page.</p>".to_owned());
    let what = if ended {
        "Your session has ended."
    } else {
        "There was no session to end in this browser."
    };
    page(
        "Signed out",
        &format!("<main><h1>You are signed out</h1><p role=\"status\">{what}</p>{back}</main>"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use base64::Engine as _;

    /// The style sheet is allowed by its SHA-256 in the pages' CSP: a change to one without
    /// the other would leave the pages unstyled (and the browser tests full of violations).
    #[test]
    fn the_page_csp_names_the_style_hash() {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, super::STYLE.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        assert!(
            super::PAGE_CSP.contains(&format!("style-src 'sha256-{b64}'")),
            "{} lacks sha256-{b64}",
            super::PAGE_CSP
        );
        assert!(!super::PAGE_CSP.contains("unsafe"));
    }

    #[test]
    fn posting_pages_name_the_redirect_origin_only() {
        let csp = super::page_csp_posting_to("https://rp.example:8443/cb?x=1");
        assert!(
            csp.contains("form-action 'self' https://rp.example:8443;"),
            "{csp}"
        );
    }

    #[test]
    fn tokens_match_only_equal_non_empty_values() {
        let t = super::new_token();
        assert!(super::is_token(&t));
        assert!(super::tokens_match(&t, &t));
        assert!(!super::tokens_match("", ""));
        assert!(!super::tokens_match(&t, &super::new_token()));
        assert_eq!(
            super::logout_confirmation(b"confirm=yes&csrf=x", "y"),
            Err(
                "the sign-out form's CSRF token does not match this browser; start again from the application"
            )
        );
        assert_eq!(
            super::logout_confirmation(b"confirm=yes&csrf=x", "x"),
            Ok(true)
        );
        assert_eq!(
            super::logout_confirmation(b"id_token_hint=a", "x"),
            Ok(false)
        );
    }
}
