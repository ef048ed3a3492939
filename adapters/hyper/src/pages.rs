//! The HTML the provider shows: login, consent and error pages. Everything echoed is escaped.

use oidc_flow::ErrorPage;
use oidc_flow::authorize::{AwaitingConsent, AwaitingLogin};
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

/// The login form: `username`, `password`, and the hidden handle and CSRF token.
pub fn login(awaiting: &AwaitingLogin, handle: &str, csrf: &str, error: Option<&str>) -> String {
    let client = awaiting.client();
    let who = client_label(client.client_name.as_deref(), &client.client_id);
    let hint = escape_html(awaiting.login_hint().unwrap_or_default());
    let err = error
        .map(|e| format!("<p class=\"err\">{}</p>", escape_html(e)))
        .unwrap_or_default();
    page(
        "Sign in",
        &format!(
            "<h1>Sign in</h1><p>to continue to <strong>{who}</strong></p>{err}\
             <form method=\"post\" action=\"login\">\
             <input type=\"hidden\" name=\"handle\" value=\"{}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <label for=\"username\">Username</label>\
             <input id=\"username\" name=\"username\" value=\"{hint}\" autocomplete=\"username\" required autofocus>\
             <label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\">Sign in</button></form>",
            escape_html(handle),
            escape_html(csrf)
        ),
    )
}

/// The consent form: the client, the scopes, and allow/deny buttons named `decision`.
pub fn consent(awaiting: &AwaitingConsent, handle: &str, csrf: &str) -> String {
    let client = awaiting.client();
    let who = client_label(client.client_name.as_deref(), &client.client_id);
    let scopes: String = awaiting
        .scope()
        .iter()
        .map(|s| format!("<li>{}</li>", escape_html(s)))
        .collect();
    page(
        "Allow access?",
        &format!(
            "<h1>Allow access?</h1><p><strong>{who}</strong> asks to use your account \
             <strong>{}</strong> with:</p><ul>{scopes}</ul>\
             <form method=\"post\" action=\"consent\">\
             <input type=\"hidden\" name=\"handle\" value=\"{}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
             <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
            escape_html(awaiting.subject()),
            escape_html(handle),
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

/// An error page from a code and a description.
pub fn error_text(code: &str, description: &str) -> String {
    page(
        "Request refused",
        &format!(
            "<h1>Request refused</h1><p><code>{}</code></p><p>{}</p>",
            escape_html(code),
            escape_html(description)
        ),
    )
}
