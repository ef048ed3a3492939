//! The UserInfo endpoint (OIDC Core §5.3) with bearer tokens (RFC 6750).
//!
//! ```text
//! Received::parse(Authorization header, form body)      bearer token found
//!   └─ authorize(Option<AccessTokenRecord>, now) ─► Authorized   token valid, scope has openid
//!        └─ respond(&UserInfo, &Provider) ─► JsonResponse         claims chosen by scope
//! ```

use crate::claims::UserInfo;
use crate::effect::AccessTokenRecord;
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::provider::Provider;
use crate::response::JsonResponse;
use crate::scope::Scope;
use crate::secret::SecretHash;

/// Largest form body accepted at the UserInfo endpoint.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// Largest access token accepted: our opaque tokens are 51 characters; a JWT access token
/// is about 800 with an RSA-2048 key, more with RSA-4096 (a 683-character signature) or a
/// long scope and audience.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// A refusal of a protected resource (RFC 6750 §3): status, and `WWW-Authenticate: Bearer ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct BearerError {
    /// The error, or `None` when the request carried no token at all (RFC 6750 §3.1).
    pub error: Option<OAuthError>,
    /// The JSON response with its `WWW-Authenticate` header.
    pub response: JsonResponse,
}

impl BearerError {
    /// An error for a request without any token: 401 and a bare challenge.
    pub fn missing(realm: &str) -> Self {
        Self {
            error: None,
            response: JsonResponse {
                status: 401,
                headers: vec![(
                    "www-authenticate",
                    format!("Bearer realm=\"{}\"", quote_safe(realm)),
                )],
                body: "{}".to_owned(),
            },
        }
    }

    /// An error with its code; the status follows RFC 6750 §3.1 (400, 401 or 403).
    pub fn new(realm: &str, code: ErrorCode, description: impl Into<String>) -> Self {
        let error = OAuthError::new(code, description);
        let status = match code {
            ErrorCode::InvalidToken => 401,
            ErrorCode::InsufficientScope => 403,
            _ => 400,
        };
        let mut response = JsonResponse::oauth_error(status, &error);
        response.headers.push((
            "www-authenticate",
            format!(
                "Bearer realm=\"{}\", error=\"{}\", error_description=\"{}\"",
                quote_safe(realm),
                code.as_str(),
                quote_safe(&error.description)
            ),
        ));
        Self {
            error: Some(error),
            response,
        }
    }

    /// `insufficient_scope`, naming the scope the resource needs.
    pub fn insufficient_scope(realm: &str, needed: &Scope) -> Self {
        let mut e = Self::new(
            realm,
            ErrorCode::InsufficientScope,
            format!("the access token lacks the scope `{needed}`"),
        );
        if let Some((_, h)) = e
            .response
            .headers
            .iter_mut()
            .find(|(k, _)| *k == "www-authenticate")
        {
            h.push_str(&format!(", scope=\"{}\"", quote_safe(&needed.to_string())));
        }
        e
    }
}

/// Keeps a header's quoted-string valid: drops quotes, backslashes and control characters.
fn quote_safe(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
        .collect()
}

/// Whether `s` is an RFC 6750 §2.1 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn is_b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        })
}

/// Extracts a bearer token from an `Authorization` header value and/or a form body
/// (RFC 6750 §2.1, §2.2). Exactly one method may be used.
pub fn extract_bearer(
    realm: &str,
    authorization: Option<&[u8]>,
    form_body: Option<&[u8]>,
) -> Result<String, BearerError> {
    let bad = |why: &str| BearerError::new(realm, ErrorCode::InvalidRequest, why.to_owned());
    let from_header = match authorization {
        Some(h) => {
            if h.len() > MAX_TOKEN_BYTES + 16 {
                return Err(bad("the Authorization header is too large"));
            }
            let text =
                std::str::from_utf8(h).map_err(|_| bad("the Authorization header is not text"))?;
            let (scheme, token) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
            if !scheme.eq_ignore_ascii_case("bearer") {
                return Err(BearerError::missing(realm));
            }
            let token = token.trim();
            if token.len() > MAX_TOKEN_BYTES || !is_b64token(token) {
                return Err(bad("the bearer token is malformed"));
            }
            Some(token.to_owned())
        }
        None => None,
    };
    let from_body = match form_body {
        Some(body) => {
            let mut params =
                Params::parse(body, MAX_BODY_BYTES).map_err(|e| bad(&e.to_string()))?;
            match params.take("access_token") {
                Some(t) if t.len() <= MAX_TOKEN_BYTES && is_b64token(&t) => Some(t),
                Some(_) => return Err(bad("the access_token parameter is malformed")),
                None => None,
            }
        }
        None => None,
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => Err(bad(
            "the access token was sent by more than one method (RFC 6750 section 2)",
        )),
        (Some(t), None) | (None, Some(t)) => Ok(t),
        (None, None) => Err(BearerError::missing(realm)),
    }
}

/// A UserInfo request with its bearer token found, not yet checked.
#[must_use = "look the token up, then authorize"]
pub struct Received {
    hash: SecretHash,
    realm: String,
    own_jwt: Option<AccessTokenRecord>,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("userinfo::Received")
            .field("hash", &self.hash)
            .finish()
    }
}

impl Received {
    /// Reads the bearer token from the `Authorization` header or (for a POST with
    /// `application/x-www-form-urlencoded`) the body's `access_token`.
    pub fn parse(
        provider: &Provider,
        authorization: Option<&[u8]>,
        form_body: Option<&[u8]>,
    ) -> Result<Self, BearerError> {
        let token = extract_bearer(&provider.issuer, authorization, form_body)?;
        Ok(Self {
            hash: SecretHash::of(&token),
            realm: provider.issuer.clone(),
            own_jwt: crate::token::own_jwt_access_token(provider, &token),
        })
    }

    /// The hash of the presented token, to look up.
    pub fn token_hash(&self) -> &SecretHash {
        &self.hash
    }

    /// The record the token carries when it is one of the provider's own JWT access
    /// tokens: such a token is not stored, so instead of the lookup by hash only its
    /// grant's revocation is asked, and the record is passed to [`Received::authorize`]
    /// unless the grant was revoked.
    pub fn own_jwt_access_token(&self) -> Option<&AccessTokenRecord> {
        self.own_jwt.as_ref()
    }

    /// Checks the stored record for the UserInfo endpoint: present, unexpired, and with
    /// the `openid` scope (OIDC Core §5.3).
    pub fn authorize(
        self,
        record: Option<AccessTokenRecord>,
        now: time::OffsetDateTime,
    ) -> Result<Authorized, BearerError> {
        let openid = Scope::parse(Scope::OPENID).unwrap_or_default();
        self.authorize_for(record, now, &openid)
    }

    /// Checks the stored record for a protected resource that needs `required`: present,
    /// unexpired, and carrying every token of `required` (403 `insufficient_scope` otherwise).
    pub fn authorize_for(
        self,
        record: Option<AccessTokenRecord>,
        now: time::OffsetDateTime,
        required: &Scope,
    ) -> Result<Authorized, BearerError> {
        let invalid =
            |why: &str| BearerError::new(&self.realm, ErrorCode::InvalidToken, why.to_owned());
        let Some(record) = record.filter(|r| r.hash.ct_eq(&self.hash)) else {
            return Err(invalid("the access token is unknown or revoked"));
        };
        if now >= record.expires_at {
            return Err(invalid("the access token has expired"));
        }
        if !required.is_subset_of(&record.scope) {
            return Err(BearerError::insufficient_scope(&self.realm, required));
        }
        Ok(Authorized { record })
    }
}

/// A UserInfo request with a valid token.
#[must_use = "respond with the user's claims"]
#[derive(Debug)]
pub struct Authorized {
    record: AccessTokenRecord,
}

impl Authorized {
    /// The end-user whose claims to load.
    pub fn subject(&self) -> &str {
        &self.record.subject
    }

    /// The token's scope.
    pub fn scope(&self) -> &Scope {
        &self.record.scope
    }

    /// The stored record of the token (client, grant, expiry), for resources that need it.
    pub fn into_record(self) -> AccessTokenRecord {
        self.record
    }

    /// The claims the token's scope releases, as JSON (`sub` always).
    pub fn respond(self, claims: &UserInfo, provider: &Provider) -> JsonResponse {
        let body = claims.for_scope(&self.record.subject, &self.record.scope, provider);
        JsonResponse {
            status: 200,
            headers: vec![("cache-control", "no-store".to_owned())],
            body: serde_json::Value::Object(body).to_string(),
        }
    }
}
