//! The introspection endpoint (RFC 7662) as a typestate machine.
//!
//! ```text
//! token::Received::parse(form, Authorization header)        the token endpoint's client syntax
//!   └─ authenticate(Option<Client>) ─► ClientAuthenticated   the token endpoint's client check
//!        └─ introspection(provider) ─► Introspection         a confidential caller; `token`,
//!             │                                              `token_type_hint`
//!             └─ answer(refresh, access, provider, now) ─► Completed   200 `{"active": …}`
//! ```
//!
//! The caller is a client (it sees its own tokens) or a resource server's credential
//! (a client registered with a `resource`: it sees the access tokens meant for that
//! resource, and those whose request named no resource). Anything expired, revoked,
//! rotated, unknown or not visible to the caller is `{"active": false}` and nothing more
//! (§2.2), so the endpoint tells a caller nothing about tokens that are not its business.
//! Public clients cannot authenticate, so they cannot introspect (§2.1 requires it).
//!
//! The store looks an opaque token or a refresh token up by its hash; one of the
//! provider's own JWT access tokens is read from the token itself, and the store says only
//! whether its grant was revoked ([`crate::flow::TokenLookupNeed::GrantRevoked`]).

use serde::Serialize;
use time::OffsetDateTime;

use crate::client::Client;
use crate::effect::{AccessTokenRecord, Completed, RefreshTokenRecord};
use crate::error::ErrorCode;
use crate::lookup::{Presented, TokenKind};
use crate::params::Params;
use crate::provider::Provider;
use crate::response::JsonResponse;
use crate::scope::Scope;
use crate::secret::SecretHash;
use crate::token::TokenError;

/// An introspection request from an authenticated confidential caller, waiting for the
/// store's two lookups.
#[must_use = "look the token up, then answer"]
pub struct Introspection {
    caller: Client,
    token: SecretHash,
    first: TokenKind,
    own_jwt: Option<AccessTokenRecord>,
}

impl std::fmt::Debug for Introspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Introspection")
            .field("caller", &self.caller.client_id)
            .field("first", &self.first)
            .finish_non_exhaustive()
    }
}

/// `aud`: one value as a string, several as an array (RFC 7519 §4.1.3).
#[derive(Serialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(&'a str),
    Many(&'a [String]),
}

/// The answer for an active token (RFC 7662 §2.2).
#[derive(Serialize)]
struct Active<'a> {
    active: bool,
    scope: String,
    client_id: &'a str,
    sub: &'a str,
    aud: Audience<'a>,
    iss: &'a str,
    exp: i64,
    iat: i64,
    /// The access token's type (RFC 6749 §5.1); a refresh token has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
}

/// What both kinds of record give the answer.
struct Live<'a> {
    kind: TokenKind,
    client_id: &'a str,
    subject: &'a str,
    scope: &'a Scope,
    audience: &'a [String],
    issued_at: OffsetDateTime,
    expires_at: OffsetDateTime,
}

impl Introspection {
    /// Reads `token` and `token_type_hint` from the form of an authenticated caller; a
    /// public client is refused (`invalid_client`: it has no credentials to authenticate).
    pub(crate) fn from_form(
        caller: Client,
        params: Params,
        provider: &Provider,
    ) -> Result<Self, TokenError> {
        if caller.is_public() {
            return Err(TokenError::new(
                ErrorCode::InvalidClient,
                "introspection needs a confidential client or a resource server's credential",
            ));
        }
        let presented = Presented::from_params(&params, provider)?;
        Ok(Self {
            caller,
            token: presented.hash,
            first: presented.first,
            own_jwt: presented.own_jwt,
        })
    }

    /// The hash both lookups use.
    pub fn token_hash(&self) -> &SecretHash {
        &self.token
    }

    /// The kind to look up first (the hint's, else access tokens).
    pub fn first(&self) -> TokenKind {
        self.first
    }

    /// The record the token carries when it is one of the provider's own JWT access
    /// tokens (not stored: only its grant's revocation is looked up).
    pub fn own_jwt_access_token(&self) -> Option<&AccessTokenRecord> {
        self.own_jwt.as_ref()
    }

    /// The authenticated caller.
    pub fn caller(&self) -> &Client {
        &self.caller
    }

    /// Whether the caller may learn about `token`: its own tokens, and (for a resource
    /// server) the access tokens meant for its resource or for no resource in particular.
    /// Refresh tokens are only ever their client's business.
    fn may_see(&self, token: &Live<'_>) -> bool {
        token.client_id == self.caller.client_id
            || (token.kind == TokenKind::AccessToken
                && self
                    .caller
                    .resource
                    .as_ref()
                    .is_some_and(|r| token.audience.is_empty() || token.audience.contains(r)))
    }

    /// Answers with the store's findings: the refresh token (not yet rotated) and the access
    /// token stored under the token's hash, `None` where there is none or where the driver
    /// did not look. Always 200 and no effects: `{"active": false}` unless the token is
    /// live and the caller may see it.
    pub fn answer(
        self,
        refresh: Option<RefreshTokenRecord>,
        access: Option<AccessTokenRecord>,
        provider: &Provider,
        now: OffsetDateTime,
    ) -> Completed<JsonResponse> {
        let from_access = access
            .as_ref()
            .filter(|a| a.hash.ct_eq(&self.token))
            .map(|a| Live {
                kind: TokenKind::AccessToken,
                client_id: &a.client_id,
                subject: &a.subject,
                scope: &a.scope,
                audience: &a.audience,
                issued_at: a
                    .issued_at
                    .unwrap_or(a.expires_at - provider.access_token_lifetime),
                expires_at: a.expires_at,
            });
        let from_refresh = refresh
            .as_ref()
            .filter(|r| r.hash.ct_eq(&self.token))
            .map(|r| Live {
                kind: TokenKind::RefreshToken,
                client_id: &r.client_id,
                subject: &r.authentication.subject,
                scope: &r.scope,
                audience: &[],
                issued_at: r
                    .issued_at
                    .unwrap_or(r.expires_at - provider.refresh_token_lifetime),
                expires_at: r.expires_at,
            });
        let live = from_access
            .into_iter()
            .chain(from_refresh)
            .find(|t| now < t.expires_at && self.may_see(t));
        let body = live.and_then(|t| {
            let aud = match t.audience {
                [] => Audience::One(t.client_id),
                [one] => Audience::One(one),
                many => Audience::Many(many),
            };
            serde_json::to_string(&Active {
                active: true,
                scope: t.scope.to_string(),
                client_id: t.client_id,
                sub: t.subject,
                aud,
                iss: provider.issuer(),
                exp: t.expires_at.unix_timestamp(),
                iat: t.issued_at.unix_timestamp(),
                token_type: (t.kind == TokenKind::AccessToken).then_some("Bearer"),
            })
            .ok()
        });
        Completed {
            response: JsonResponse::no_store(
                body.unwrap_or_else(|| r#"{"active":false}"#.to_owned()),
            ),
            effects: Vec::new(),
        }
    }
}
