//! Storage effects a flow asks the caller to apply, and the records they carry.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::scope::Scope;
use crate::secret::{GrantId, SecretHash};

/// A PKCE code challenge kept with the code (RFC 7636).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkceChallenge {
    /// The `code_challenge` value.
    pub challenge: String,
    /// The transformation.
    pub method: PkceMethod,
}

/// A PKCE `code_challenge_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PkceMethod {
    /// `S256`: BASE64URL(SHA256(verifier)).
    S256,
    /// `plain`: the verifier itself.
    #[serde(rename = "plain")]
    Plain,
}

/// How the end-user authenticated, carried from the authorization to every ID token of the grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    /// The end-user's subject identifier.
    pub subject: String,
    /// When the end-user authenticated.
    #[serde(with = "time::serde::timestamp")]
    pub auth_time: OffsetDateTime,
    /// The authentication context class reference, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The authentication methods used, if known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The provider session this authentication belongs to (`sid` in ID tokens and logout
    /// tokens, OIDC Back-Channel Logout section 2.1), when the login made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// An authorization code, stored under its hash until taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeRecord {
    /// SHA-256 of the code.
    pub hash: SecretHash,
    /// The grant this code starts.
    pub grant: GrantId,
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI the code was sent to.
    pub redirect_uri: String,
    /// Whether `redirect_uri` was in the request, so the token request must repeat it (RFC 6749 §4.1.3).
    pub redirect_uri_in_request: bool,
    /// The granted scope.
    pub scope: Scope,
    /// The nonce to put in the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The PKCE challenge, if one was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce: Option<PkceChallenge>,
    /// Who authenticated, and how.
    pub authentication: Authentication,
    /// Whether ID tokens of this grant carry `auth_time`.
    pub include_auth_time: bool,
    /// When the code stops being valid.
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
}

/// The longest an access token may live, in seconds (the provider's and every client's
/// access token lifetime are at most this).
pub const MAX_ACCESS_TOKEN_SECONDS: i64 = 86_400;

/// How long a store remembers a revoked grant ([`Effect::RevokeGrant`]): past the expiry
/// of every access token the grant can have, since JWT access tokens are not stored and
/// their revocation is this entry alone; a few minutes more for clock skew between nodes.
pub const REVOKED_GRANT_MEMORY: Duration = Duration::seconds(MAX_ACCESS_TOKEN_SECONDS + 600);

/// An access token, stored under its hash (opaque tokens; a JWT access token carries its
/// record and is not stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenRecord {
    /// SHA-256 of the token.
    pub hash: SecretHash,
    /// The grant it belongs to.
    pub grant: GrantId,
    /// The client it was issued to.
    pub client_id: String,
    /// The end-user it speaks for.
    pub subject: String,
    /// The scope it carries.
    pub scope: Scope,
    /// The resource servers it is meant for (`aud`, RFC 8707 resource indicators); empty
    /// when the request named none, which lets every resource server of the provider take it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audience: Vec<String>,
    /// When it was issued (`iat` at introspection); absent in records written before it
    /// was kept.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::timestamp::option"
    )]
    pub issued_at: Option<OffsetDateTime>,
    /// When it stops being valid.
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
}

/// A refresh token, stored under its hash; single-use (it rotates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    /// SHA-256 of the token.
    pub hash: SecretHash,
    /// The grant (token family) it belongs to; a reuse revokes it whole.
    pub grant: GrantId,
    /// The client it was issued to.
    pub client_id: String,
    /// The scope it may obtain.
    pub scope: Scope,
    /// Who authenticated, and how (for the ID tokens of refreshes).
    pub authentication: Authentication,
    /// Whether ID tokens of this grant carry `auth_time`.
    pub include_auth_time: bool,
    /// When it was issued (`iat` at introspection); absent in records written before it
    /// was kept.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::timestamp::option"
    )]
    pub issued_at: Option<OffsetDateTime>,
    /// When it stops being valid.
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
}

/// A nonce to claim for the replay check: the store inserts it unless an unexpired one with
/// the same client and value exists (one atomic insert-if-absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonceRecord {
    /// The client that sent it.
    pub client_id: String,
    /// The nonce.
    pub nonce: String,
    /// How long to remember it (the longest any token carrying it is valid).
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
}

/// A consent to remember, so later requests (and `prompt=none`) need not ask again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// Who consented.
    pub subject: String,
    /// To which client.
    pub client_id: String,
    /// For which scope.
    pub scope: Scope,
}

/// A change the caller must persist, in order, before sending the response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Effect {
    /// Store a new code.
    StoreCode(CodeRecord),
    /// Store a new access token.
    StoreAccessToken(AccessTokenRecord),
    /// Store a new refresh token.
    StoreRefreshToken(RefreshTokenRecord),
    /// Remember a consent.
    RememberConsent(ConsentRecord),
    /// Revoke every code and token of a grant (code reuse, refresh token reuse).
    RevokeGrant(GrantId),
    /// Remember that `client_id` was issued a response in the session `sid`, so a logout of
    /// that session notifies it (OIDC Back-Channel Logout).
    JoinSession {
        /// The session.
        sid: String,
        /// The client that took part.
        client_id: String,
    },
    /// End the session `sid`: forget it and the clients that took part in it.
    EndSession {
        /// The session.
        sid: String,
    },
}

/// The store's answer to taking a single-use secret (a code or a refresh token) atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken<R> {
    /// This call took it: nobody else can.
    Fresh(R),
    /// It exists but was taken before: a replay. The grant is named so it can be revoked.
    AlreadyTaken(GrantId),
    /// No such secret (never issued, purged, or revoked).
    Unknown,
}

/// The result of a step that finished an endpoint: a response and the effects to apply first.
#[derive(Debug)]
#[must_use = "apply the effects, then send the response"]
pub struct Completed<R> {
    /// What to send once every effect is applied.
    pub response: R,
    /// What to persist first, in order.
    pub effects: Vec<Effect>,
}
