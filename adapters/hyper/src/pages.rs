//! The HTML the provider shows: login, consent and error pages. Everything echoed is escaped.

use oidc_flow::ErrorPage;
use oidc_flow::authorize::{ConsentPage, LoginPage};
use oidc_flow::response::escape_html;

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
    use base64::Engine as _;

    /// The style sheet is allowed by its SHA-256 in the pages' CSP: a change to one without
    /// the other would leave the pages unstyled (and the browser tests full of violations).
    #[test]
    fn the_page_csp_names_the_style_hash() {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, super::STYLE.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        assert!(
            crate::PAGE_CSP.contains(&format!("style-src 'sha256-{b64}'")),
            "{} lacks sha256-{b64}",
            crate::PAGE_CSP
        );
        assert!(!crate::PAGE_CSP.contains("unsafe"));
    }
}
