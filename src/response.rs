//! What a flow hands back to the adapter to send: a redirect, an error page or a JSON body.

use serde::Serialize;

use crate::client::ResponseMode;
use crate::error::{ErrorCode, OAuthError};

/// The parameters of a successful authorization response: RFC 6749 §4.1.2 and §4.2.2, OAuth
/// 2.0 Multiple Response Types §5 (hybrid), OIDC Core §3.2.2.5 (`id_token`), RFC 9207 (`iss`).
/// Encoded by serde_urlencoded for the query and fragment modes; the form_post fields are
/// the same pairs.
#[derive(Debug, Serialize)]
pub(crate) struct AuthorizationParams<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) access_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expires_in: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<&'a str>,
    pub(crate) iss: &'a str,
}

/// The parameters of an error sent to the redirect URI (RFC 6749 §4.1.2.1, RFC 9207 `iss`).
#[derive(Debug, Serialize)]
pub(crate) struct ErrorParams<'a> {
    pub(crate) error: &'static str,
    pub(crate) error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<&'a str>,
    pub(crate) iss: &'a str,
}

/// An authorization response on its way to the client's redirect URI.
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct Redirect {
    redirect_uri: String,
    mode: ResponseMode,
    /// The parameters form-urlencoded (serde_urlencoded): the query or the fragment.
    encoded: String,
    /// The same parameters decoded, in order: the form_post fields and [`Redirect::param`].
    params: Vec<(String, String)>,
}

impl std::fmt::Debug for Redirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Codes and tokens are in the parameters: print only their names.
        let names: Vec<&str> = self.params.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Redirect")
            .field("redirect_uri", &self.redirect_uri)
            .field("mode", &self.mode)
            .field("params", &names)
            .finish()
    }
}

impl Redirect {
    /// A response carrying `params` (a `#[derive(Serialize)]` type of flat fields), encoded
    /// once by serde_urlencoded.
    pub(crate) fn new(redirect_uri: String, mode: ResponseMode, params: &impl Serialize) -> Self {
        // Flat structs of strings and integers always encode; were one not to, the client
        // would get server_error rather than a response missing its parameters.
        let encoded =
            serde_urlencoded::to_string(params).unwrap_or_else(|_| "error=server_error".to_owned());
        let params = url::form_urlencoded::parse(encoded.as_bytes())
            .into_owned()
            .collect();
        Self {
            redirect_uri,
            mode,
            encoded,
            params,
        }
    }

    /// The registered redirect URI the response goes to.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// How the parameters travel.
    pub fn mode(&self) -> ResponseMode {
        self.mode
    }

    /// The response parameters (`code`, `state`, `iss`, ... or `error`, ...), in order.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The value of one response parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `Location` of a 303 redirect, for the query and fragment modes; `None` for form_post.
    pub fn location(&self) -> Option<String> {
        match self.mode {
            ResponseMode::Query => {
                // The registered URI may carry a query of its own (RFC 6749 §3.1.2), which is kept.
                let sep = if self.redirect_uri.contains('?') {
                    '&'
                } else {
                    '?'
                };
                Some(format!("{}{sep}{}", self.redirect_uri, self.encoded))
            }
            ResponseMode::Fragment => Some(format!("{}#{}", self.redirect_uri, self.encoded)),
            ResponseMode::FormPost => None,
        }
    }

    /// The auto-submitting HTML page of the form_post mode; `None` for the other modes.
    pub fn form_post_html(&self) -> Option<String> {
        if self.mode != ResponseMode::FormPost {
            return None;
        }
        let mut html = String::with_capacity(512);
        html.push_str(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Submit</title></head>",
        );
        html.push_str("<body><form method=\"post\" action=\"");
        html.push_str(&escape_html(&self.redirect_uri));
        html.push_str("\">");
        for (k, v) in &self.params {
            html.push_str("<input type=\"hidden\" name=\"");
            html.push_str(&escape_html(k));
            html.push_str("\" value=\"");
            html.push_str(&escape_html(v));
            html.push_str("\">");
        }
        html.push_str(
            "<noscript><button type=\"submit\">Continue</button></noscript></form><script>",
        );
        html.push_str(FORM_POST_SCRIPT);
        html.push_str("</script></body></html>");
        Some(html)
    }

    /// The Content-Security-Policy to send with [`Self::form_post_html`]: nothing loads, its
    /// one inline script runs by its hash, and its form may post only to the origin of the
    /// redirect URI.
    pub fn form_post_csp(&self) -> String {
        let action = csp_origin(&self.redirect_uri).unwrap_or_else(|| "'none'".to_owned());
        format!(
            "default-src 'none'; script-src '{FORM_POST_SCRIPT_HASH}'; form-action {action}; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    }
}

/// The one script of the form_post page.
const FORM_POST_SCRIPT: &str = "document.forms[0].submit()";

/// Its CSP hash source: SHA-256 of [`FORM_POST_SCRIPT`], base64 (checked by a test).
const FORM_POST_SCRIPT_HASH: &str = "sha256-ePniVEkSivX/c7XWBGafqh8tSpiRrKiqYeqbG7N1TOE=";

/// The CSP source expression naming where `uri` lives, for `form-action`: its origin
/// (`https://rp.example:8443`) for a URL with a host, its scheme (`com.example.app:`) for a
/// private-use URI scheme (RFC 8252 §7.1); `None` if `uri` is not an absolute URI.
///
/// A page whose form leads to a redirect URI names it: browsers apply `form-action` to every
/// redirect that follows a form submission.
pub fn csp_origin(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.origin() {
        origin @ url::Origin::Tuple(..) => Some(origin.ascii_serialization()),
        url::Origin::Opaque(_) => {
            let scheme = url.scheme();
            // Schemes are ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ): safe in a header.
            (scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                && !matches!(
                    scheme,
                    "javascript" | "vbscript" | "data" | "blob" | "filesystem" | "file"
                ))
            .then(|| format!("{scheme}:"))
        }
    }
}

/// Escapes text for an HTML attribute or element body.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use base64::Engine as _;

    #[test]
    fn the_typed_parameters_encode_once_and_read_back_the_same() {
        let state = "a b&c=d/\u{e9}?#";
        let params = AuthorizationParams {
            code: Some("c0de"),
            access_token: Some("t0ken"),
            token_type: Some("Bearer"),
            expires_in: Some(3600),
            scope: Some("openid profile".into()),
            id_token: None,
            state: Some(state),
            iss: "https://op.example/tenant",
        };
        let r = Redirect::new(
            "https://rp.example/cb?x=1".into(),
            ResponseMode::Query,
            &params,
        );
        let location = r.location().unwrap();
        let (base, query) = location.split_once("?x=1&").unwrap();
        assert_eq!(base, "https://rp.example/cb");
        // Decoded by the url crate (the WHATWG parser), not by ours.
        let read: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let expect: Vec<(String, String)> = [
            ("code", "c0de"),
            ("access_token", "t0ken"),
            ("token_type", "Bearer"),
            ("expires_in", "3600"),
            ("scope", "openid profile"),
            ("state", state),
            ("iss", "https://op.example/tenant"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(read, expect);
        assert_eq!(r.params(), expect.as_slice());
        assert_eq!(r.param("state"), Some(state));
        let fragment = Redirect::new(
            "https://rp.example/cb".into(),
            ResponseMode::Fragment,
            &params,
        );
        assert_eq!(
            fragment.location().unwrap(),
            format!("https://rp.example/cb#{query}")
        );
    }

    #[test]

    fn the_form_post_script_hash_is_its_sha256() {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, FORM_POST_SCRIPT.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
        assert_eq!(FORM_POST_SCRIPT_HASH, format!("sha256-{b64}"));
        let r = Redirect::new(
            "https://rp.example:8443/cb?x=1".into(),
            ResponseMode::FormPost,
            &[("code", "abc")],
        );
        let html = r.form_post_html().unwrap();
        assert!(
            html.contains(&format!("<script>{FORM_POST_SCRIPT}</script>")),
            "{html}"
        );
        assert!(!html.contains("onload"), "{html}");
        assert_eq!(
            r.form_post_csp(),
            format!(
                "default-src 'none'; script-src '{FORM_POST_SCRIPT_HASH}'; \
                 form-action https://rp.example:8443; frame-ancestors 'none'; base-uri 'none'"
            )
        );
    }

    #[test]
    fn csp_origins() {
        assert_eq!(
            csp_origin("http://127.0.0.1:8080/cb").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            csp_origin("https://RP.example/cb?a=b#f").as_deref(),
            Some("https://rp.example")
        );
        assert_eq!(
            csp_origin("https://rp.example:443/").as_deref(),
            Some("https://rp.example")
        );
        assert_eq!(
            csp_origin("com.example.app:/cb").as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(csp_origin("javascript:alert(1)"), None);
        assert_eq!(csp_origin("/relative"), None);
    }
}

/// An error shown to the user agent, never redirected, because the client or its redirect URI
/// cannot be trusted (RFC 6749 §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
#[must_use]
pub struct ErrorPage {
    /// What was wrong.
    pub error: OAuthError,
}

impl ErrorPage {
    pub(crate) fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            error: OAuthError::new(code, description),
        }
    }

    /// The HTTP status to show it with.
    pub fn status(&self) -> u16 {
        400
    }
}

/// An error redirected to the client's verified redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct ErrorRedirect {
    /// The error.
    pub error: OAuthError,
    /// The redirect carrying `error`, `error_description`, `state` and `iss`.
    pub redirect: Redirect,
}

/// A JSON response of a back-channel endpoint (token, UserInfo, discovery).
#[derive(Clone, PartialEq, Eq)]
#[must_use]
pub struct JsonResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers besides `Content-Type: application/json`.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: String,
}

impl std::fmt::Debug for JsonResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Success bodies hold tokens; print them only for errors.
        let body: &str = if self.status >= 400 {
            &self.body
        } else {
            "<redacted>"
        };
        f.debug_struct("JsonResponse")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body", &body)
            .finish()
    }
}

impl JsonResponse {
    /// The value of a header, by its lower-case name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (for tests and adapters that inspect it).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A 200 response that must not be cached (RFC 6749 §5.1).
    pub(crate) fn no_store(body: String) -> Self {
        Self {
            status: 200,
            headers: vec![
                ("cache-control", "no-store".to_owned()),
                ("pragma", "no-cache".to_owned()),
            ],
            body,
        }
    }

    /// An OAuth error body `{"error", "error_description"}` with the given status, not cacheable.
    pub fn oauth_error(status: u16, error: &OAuthError) -> Self {
        let body = serde_json::json!({
            "error": error.code.as_str(),
            "error_description": error.description,
        });
        Self {
            status,
            headers: vec![
                ("cache-control", "no-store".to_owned()),
                ("pragma", "no-cache".to_owned()),
            ],
            body: body.to_string(),
        }
    }
}
