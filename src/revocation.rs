//! The revocation endpoint (RFC 7009) as a typestate machine.
//!
//! ```text
//! token::Received::parse(form, Authorization header)        the token endpoint's client syntax
//!   └─ authenticate(Option<Client>) ─► ClientAuthenticated   the token endpoint's client check
//!        └─ revocation(provider) ─► Revocation               `token`, `token_type_hint`
//!             └─ revoke(refresh, access, now) ─► Completed   200, the grant revoked if the
//!                                                            token is this client's and live
//! ```
//!
//! The client authenticates exactly as at the token endpoint. The store answers two
//! lookups (the refresh token and the access token stored under the token's hash, the
//! hinted one first) — or, for one of the provider's own JWT access tokens, which carry
//! their record and are not stored, only whether its grant was revoked; the core decides. A token of another client, an unknown, expired or
//! already rotated one all answer 200 and change nothing (RFC 7009 §2.2), so the endpoint
//! tells a caller nothing about tokens that are not its own. Revoking either kind revokes
//! its whole grant: the refresh tokens and every access token of it (§2.1 asks this for a
//! refresh token and allows it for an access token).

use time::OffsetDateTime;

use crate::client::Client;
use crate::effect::{AccessTokenRecord, Completed, Effect, RefreshTokenRecord};
use crate::lookup::Presented;
use crate::params::Params;
use crate::provider::Provider;
use crate::response::JsonResponse;
use crate::secret::SecretHash;
use crate::token::TokenError;

pub use crate::lookup::TokenKind;

/// A revocation request from an authenticated client, waiting for the store's two lookups.
#[must_use = "look the token up, then revoke"]
pub struct Revocation {
    client: Client,
    token: SecretHash,
    first: TokenKind,
    own_jwt: Option<AccessTokenRecord>,
}

impl std::fmt::Debug for Revocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocation")
            .field("client_id", &self.client.client_id)
            .field("first", &self.first)
            .finish_non_exhaustive()
    }
}

impl Revocation {
    /// Reads `token` and `token_type_hint` from the form of an authenticated client.
    pub(crate) fn from_form(
        client: Client,
        params: Params,
        provider: &Provider,
    ) -> Result<Self, TokenError> {
        let presented = Presented::from_params(&params, provider)?;
        Ok(Self {
            client,
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

    /// The authenticated client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Decides with the store's answers: the refresh token (not yet rotated) and the
    /// access token stored under the token's hash, `None` where there is none (or where
    /// the driver did not look, having found the other). Always 200; the effects revoke
    /// the token's grant when it is this client's and has not expired.
    pub fn revoke(
        self,
        refresh: Option<RefreshTokenRecord>,
        access: Option<AccessTokenRecord>,
        now: OffsetDateTime,
    ) -> Completed<JsonResponse> {
        let mine = |client_id: &str, hash: &SecretHash, expires_at: OffsetDateTime| {
            client_id == self.client.client_id && hash.ct_eq(&self.token) && expires_at > now
        };
        let grant = refresh
            .filter(|r| mine(&r.client_id, &r.hash, r.expires_at))
            .map(|r| r.grant)
            .or_else(|| {
                access
                    .filter(|a| mine(&a.client_id, &a.hash, a.expires_at))
                    .map(|a| a.grant)
            });
        Completed {
            response: JsonResponse::no_store(String::new()),
            effects: grant.map(Effect::RevokeGrant).into_iter().collect(),
        }
    }
}
