//! The error codes of OAuth 2.0 and OpenID Connect, and the errors of parsing.

use std::fmt;

/// An error code registered by RFC 6749, RFC 6750 or OpenID Connect Core §3.1.2.6.
///
/// Codes are never free strings: every error a flow returns carries one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// RFC 6749: the request is missing a parameter, repeats one, or is otherwise malformed.
    InvalidRequest,
    /// RFC 6749 §5.2: client authentication failed.
    InvalidClient,
    /// RFC 6749 §5.2: the code or refresh token is invalid, expired, revoked or was issued to another client.
    InvalidGrant,
    /// RFC 6749: the client may not use this grant type or response type.
    UnauthorizedClient,
    /// RFC 6749 §5.2: the grant type is not supported.
    UnsupportedGrantType,
    /// RFC 6749 §4.1.2.1: the response type is not supported.
    UnsupportedResponseType,
    /// RFC 6749: the requested scope is invalid, unknown or malformed.
    InvalidScope,
    /// RFC 6749 §4.1.2.1: the resource owner or the server denied the request.
    AccessDenied,
    /// RFC 6749 §4.1.2.1: the server met an unexpected condition.
    ServerError,
    /// RFC 6749 §4.1.2.1: the server cannot handle the request now.
    TemporarilyUnavailable,
    /// OIDC Core §3.1.2.6: the end-user must interact (prompt=none could not be honoured).
    InteractionRequired,
    /// OIDC Core §3.1.2.6: the end-user must log in (prompt=none without a usable session).
    LoginRequired,
    /// OIDC Core §3.1.2.6: the end-user must choose an account.
    AccountSelectionRequired,
    /// OIDC Core §3.1.2.6: the end-user must consent (prompt=none without consent).
    ConsentRequired,
    /// OIDC Core §3.1.2.6: `request_uri` is not supported here.
    RequestUriNotSupported,
    /// OIDC Core §3.1.2.6: `request` (a request object) is not supported here.
    RequestNotSupported,
    /// OIDC Core §3.1.2.6: the `registration` parameter is not supported here.
    RegistrationNotSupported,
    /// RFC 6750 §3.1: the access token is expired, revoked, malformed or unknown.
    InvalidToken,
    /// RFC 6750 §3.1: the access token lacks a scope the resource needs.
    InsufficientScope,
    /// RFC 8707 §2: the requested resource is invalid, unknown, or not served here.
    InvalidTarget,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidTarget => "invalid_target",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InteractionRequired => "interaction_required",
            Self::LoginRequired => "login_required",
            Self::AccountSelectionRequired => "account_selection_required",
            Self::ConsentRequired => "consent_required",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::RequestNotSupported => "request_not_supported",
            Self::RegistrationNotSupported => "registration_not_supported",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error: its code and a description for the developer of the client.
///
/// The description never holds a secret, code or token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    /// The registered error code.
    pub code: ErrorCode,
    /// Human-readable text saying what was wrong (`error_description`).
    pub description: String,
}

impl OAuthError {
    /// An error with the given code and description.
    ///
    /// The description is kept to the characters RFC 6749 allows in `error_description`
    /// (section 4.1.2.1 and 5.2: `%x20-21 / %x23-5B / %x5D-7E`); any other character, which can
    /// come from echoed input, becomes `?`.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        let mut description = description.into();
        if !description.chars().all(is_description_char) {
            description = description
                .chars()
                .map(|c| if is_description_char(c) { c } else { '?' })
                .collect();
        }
        Self { code, description }
    }

    /// Shorthand for an `invalid_request` error.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }
}

/// Whether `c` may appear in an `error_description` (RFC 6749 section 4.1.2.1, 5.2).
pub fn is_description_char(c: char) -> bool {
    matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E')
}

/// Why raw request bytes could not be read as parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The input is longer than the parser accepts.
    #[error("the request is too large ({len} bytes, at most {limit} accepted)")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The input has more parameters than the parser accepts.
    #[error("the request has too many parameters (at most {limit} accepted)")]
    TooManyParameters {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The input is not `application/x-www-form-urlencoded`.
    #[error("the request is not valid application/x-www-form-urlencoded data")]
    Malformed,
    /// A parameter appears more than once (RFC 6749 §3.1).
    #[error("the parameter `{0}` is included more than once")]
    Repeated(String),
    /// The parameters do not fit the endpoint's form (a required one is missing, one has
    /// the wrong shape).
    #[error("{0}")]
    Form(String),
    /// A parameter's value is longer than that parameter allows.
    #[error("the parameter `{name}` is too long (at most {limit} bytes)")]
    ValueTooLong {
        /// The parameter's name.
        name: &'static str,
        /// The limit that was exceeded.
        limit: usize,
    },
}

impl From<ParseError> for OAuthError {
    fn from(e: ParseError) -> Self {
        OAuthError::invalid_request(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_keep_to_the_rfc_6749_characters() {
        let e = OAuthError::invalid_request("a \"quoted\" back\\slash, \u{a7}5 and a\nnewline");
        assert_eq!(e.description, "a ?quoted? back?slash, ?5 and a?newline");
        assert!(e.description.chars().all(is_description_char));
        let plain = OAuthError::invalid_request("the nonce was already used by this client");
        assert_eq!(
            plain.description,
            "the nonce was already used by this client"
        );
    }
}
