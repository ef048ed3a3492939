//! A token presented to the revocation (RFC 7009) or introspection (RFC 7662) endpoint:
//! both read the same form (`token`, `token_type_hint`) and ask the store the same two
//! lookups, the hinted kind first — or, for one of the provider's own JWT access tokens,
//! which carry their record and are not stored, only whether their grant was revoked.

use serde::Deserialize;

use crate::effect::AccessTokenRecord;
use crate::error::ErrorCode;
use crate::params::Params;
use crate::provider::Provider;
use crate::secret::SecretHash;
use crate::token::{TokenError, own_jwt_access_token};

/// Longest `token` accepted: the longest access token UserInfo takes.
const MAX_TOKEN: usize = crate::userinfo::MAX_TOKEN_BYTES;
/// Longest `token_type_hint` accepted.
const MAX_HINT: usize = 64;

/// Which kind of token the client says it sends (`token_type_hint`); it only orders the
/// lookups, and an unknown value is ignored (RFC 7009 §2.1, RFC 7662 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

/// The form both endpoints read (after the client's own parameters were taken).
#[derive(Deserialize)]
struct PresentedForm {
    token: String,
    token_type_hint: Option<String>,
}

/// The presented token, reduced to what the lookups need: its hash and which kind first,
/// or the record it carries when it is one of the provider's own JWT access tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Presented {
    pub(crate) hash: SecretHash,
    pub(crate) first: TokenKind,
    pub(crate) own_jwt: Option<AccessTokenRecord>,
}

impl Presented {
    /// Reads `token` and `token_type_hint` from the form of an authenticated client.
    pub(crate) fn from_params(params: &Params, provider: &Provider) -> Result<Self, TokenError> {
        let bad = |why: String| TokenError::new(ErrorCode::InvalidRequest, why);
        let form: PresentedForm = params.deserialize().map_err(|e| bad(e.to_string()))?;
        if form.token.len() > MAX_TOKEN {
            return Err(bad(format!(
                "the token parameter is too long (at most {MAX_TOKEN} bytes)"
            )));
        }
        let first = match form.token_type_hint.as_deref() {
            Some(hint) if hint.len() > MAX_HINT => {
                return Err(bad(format!(
                    "the token_type_hint parameter is too long (at most {MAX_HINT} bytes)"
                )));
            }
            Some("refresh_token") => TokenKind::RefreshToken,
            _ => TokenKind::AccessToken,
        };
        Ok(Self {
            hash: SecretHash::of(&form.token),
            first,
            own_jwt: own_jwt_access_token(provider, &form.token),
        })
    }
}
