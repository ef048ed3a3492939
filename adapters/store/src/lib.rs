//! Storage for oidc-flow: the async [`Store`] trait with everything a provider persists,
//! a [`MemoryStore`] and a [`SqliteStore`], and the [`driver`] that runs the core's flows
//! against any store.
//!
//! Codes and tokens are kept only as SHA-256 digests ([`SecretHash`]). Taking a code or a
//! refresh token is an atomic compare-and-take: of two concurrent takes exactly one gets
//! [`Taken::Fresh`], the other [`Taken::AlreadyTaken`] with the grant to revoke. The effects
//! of one request are applied in one transaction.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::future::Future;

use oidc_flow::authorize::ParkedMark;
use oidc_flow::keys::Algorithm;
use oidc_flow::parking::ParkingSecret;
use oidc_flow::{
    AccessTokenRecord, Authentication, Client, CodeRecord, Effect, GrantId, NonceRecord,
    RefreshTokenRecord, Scope, SecretHash, Taken, UserInfo,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

mod app_store;
pub mod backchannel;
mod backend;
mod client_cache;
mod database;
mod datakey;
pub mod driver;
pub mod endpoints;
pub mod grants;
pub mod jwks_fetch;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
pub mod purge;
mod sqlite;
#[cfg(feature = "postgres")]
pub mod testing;
pub mod web;

pub use app_store::{AppStore, UserClaims};
pub use database::DatabaseStore;
pub use datakey::{DATA_KEY_ENV, DataKey};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{POOL_SIZE_ENV, PostgresStore, is_postgres_url};
pub use sqlite::SqliteStore;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    /// The PostgreSQL database failed.
    #[cfg(feature = "postgres")]
    #[error("database error: {}", postgres::describe(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A stored record could not be read back.
    #[error("a stored record is corrupt: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A record with this key exists already.
    #[error("{0} already exists")]
    Duplicate(String),
    /// Tokens were to be stored for a grant that was revoked meanwhile (a code replay raced
    /// the first exchange); the request must fail rather than hand out dead tokens.
    #[error("the grant was revoked")]
    GrantRevoked,
    /// A group commit failed; every write in it was rolled back.
    #[error("database error: {0}")]
    Failed(String),
    /// The data key that encrypts retrievable secrets is missing, malformed or wrong.
    #[error("data key: {0}")]
    DataKey(String),
}

/// An end-user account of the demo server (applications bring their own users).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The login name.
    pub username: String,
    /// The stable subject identifier (`sub`).
    pub subject: String,
    /// The password's argon2 PHC string.
    pub password_hash: String,
    /// The user's claims.
    pub claims: UserInfo,
}

/// A signing key as stored: its PEM, so the JWKS survives restarts.
///
/// The SQLite backend keeps the PEM sealed with the [`DataKey`] (AES-256-GCM); this
/// record holds it in clear, in memory only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    /// The key id.
    pub kid: String,
    /// The algorithm it signs.
    pub alg: Algorithm,
    /// PKCS#8 PEM of the private key.
    pub pem: String,
    /// When it was created (keys load oldest first).
    pub created_at: OffsetDateTime,
    /// Whether it signs, or was rotated out and is only published for verification.
    pub state: KeyState,
}

/// Whether a stored signing key signs new tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum KeyState {
    /// It signs new tokens (the newest active key of an algorithm is the one used).
    Active,
    /// Rotated out: it signs nothing any more but stays in the JWKS, so the tokens it
    /// signed still verify, until it is retired (deleted).
    Rotated {
        /// When it was rotated out.
        #[serde(with = "time::serde::timestamp")]
        at: OffsetDateTime,
    },
}

impl KeyState {
    /// Whether the key signs new tokens.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Active)
    }
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// How long every backend keeps a taken code past its expiry, so a late replay still finds
/// its grant to revoke.
pub const TAKEN_CODE_GRACE: time::Duration = time::Duration::hours(1);

/// How long an end-user session may go unused before the server forgets it, unless the
/// server is configured otherwise.
pub const DEFAULT_SESSION_IDLE_TIMEOUT: time::Duration = time::Duration::hours(1);

/// A session's last-used time is written at most once per this interval (reading a session
/// happens on every authorization request, and a write per request would cost the code
/// flow a commit). The idle timeout can therefore end a session up to this much early.
pub const SESSION_TOUCH_INTERVAL: time::Duration = time::Duration::minutes(1);

/// Result type of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// Everything a provider persists. Implementations must be safe to share across tasks.
///
/// Every method is one atomic operation; [`Store::apply`] applies a request's effects in
/// one transaction.
pub trait Store: Send + Sync + 'static {
    /// The registered client with this id.
    fn client(&self, client_id: &str) -> impl Future<Output = StoreResult<Option<Client>>> + Send;
    /// Registers a client; fails with [`StoreError::Duplicate`] if the id is taken.
    fn add_client(&self, client: &Client) -> impl Future<Output = StoreResult<()>> + Send;
    /// The resource server registered for this RFC 8707 resource indicator (a client whose
    /// `resource` is exactly it), if any; the first by client id if several are.
    fn resource_server(
        &self,
        resource: &str,
    ) -> impl Future<Output = StoreResult<Option<Client>>> + Send;

    /// The demo server's user with this login name.
    fn user_by_name(
        &self,
        username: &str,
    ) -> impl Future<Output = StoreResult<Option<UserRecord>>> + Send;
    /// The claims of the user with this subject.
    fn user_claims(
        &self,
        subject: &str,
    ) -> impl Future<Output = StoreResult<Option<UserInfo>>> + Send;
    /// The claims of the user with this subject, for a token of `scope`: what the driver
    /// asks when it releases claims. The provider releases only what the scope covers
    /// either way; a store that can read less for a narrow scope does so here (the app's
    /// [`crate::UserClaims::claims_for_scope`]). By default, [`Store::user_claims`].
    fn user_claims_for(
        &self,
        subject: &str,
        scope: &Scope,
    ) -> impl Future<Output = StoreResult<Option<UserInfo>>> + Send {
        let _ = scope;
        self.user_claims(subject)
    }
    /// Adds a user; fails with [`StoreError::Duplicate`] if the name is taken.
    fn add_user(&self, user: &UserRecord) -> impl Future<Output = StoreResult<()>> + Send;

    /// Atomically takes the code stored under `hash`.
    fn take_code(
        &self,
        hash: &SecretHash,
    ) -> impl Future<Output = StoreResult<Taken<CodeRecord>>> + Send;
    /// Atomically takes the refresh token stored under `hash`.
    fn take_refresh_token(
        &self,
        hash: &SecretHash,
    ) -> impl Future<Output = StoreResult<Taken<RefreshTokenRecord>>> + Send;
    /// The refresh token stored under `hash` if it is not revoked and not yet rotated: a
    /// lookup for revocation (RFC 7009), which takes nothing.
    fn refresh_token(
        &self,
        hash: &SecretHash,
    ) -> impl Future<Output = StoreResult<Option<RefreshTokenRecord>>> + Send;
    /// The access token stored under `hash`, if not revoked.
    fn access_token(
        &self,
        hash: &SecretHash,
    ) -> impl Future<Output = StoreResult<Option<AccessTokenRecord>>> + Send;
    /// Whether `grant` was revoked ([`Effect::RevokeGrant`], remembered for
    /// [`oidc_flow::effect::REVOKED_GRANT_MEMORY`]): what a JWT access token, which is not
    /// stored, is checked against.
    fn grant_revoked(&self, grant: &GrantId) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Claims a nonce for the replay check in one atomic insert-if-absent: `true` when this
    /// call stored it, `false` when an unexpired record of the same client and nonce exists
    /// (of two concurrent claims exactly one gets `true`).
    fn claim_nonce(
        &self,
        nonce: &NonceRecord,
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Whether `subject` consented to `client_id` for every token of `scope`.
    fn consented(
        &self,
        subject: &str,
        client_id: &str,
        scope: &Scope,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Applies a request's effects, in order, in one transaction.
    fn apply(&self, effects: &[Effect]) -> impl Future<Output = StoreResult<()>> + Send;

    /// The secret the parking keys derive from ([`oidc_flow::parking`]): the same on every
    /// node that serves one provider (the persistent backends derive it from the data key).
    fn parking_secret(&self) -> &ParkingSecret;
    /// Records that the parked authorization of `mark` was used, in one atomic
    /// insert-if-absent: `true` when this call recorded it, `false` when it was used before
    /// (of two concurrent claims exactly one gets `true`). Kept until `mark.expires_at`.
    fn claim_parked(&self, mark: &ParkedMark) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Stores an end-user session under the digest of its cookie value. Its `sid` and
    /// `subject` are kept apart so that logout can find it; it counts as last used at its
    /// `auth_time`.
    fn put_session(
        &self,
        id: &SecretHash,
        session: &Authentication,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// The session stored under `id`, unless it is past its expiry or went unused for longer
    /// than `idle_timeout`. Marks it used (written at most once per
    /// [`SESSION_TOUCH_INTERVAL`]).
    fn session(
        &self,
        id: &SecretHash,
        now: OffsetDateTime,
        idle_timeout: time::Duration,
    ) -> impl Future<Output = StoreResult<Option<Authentication>>> + Send;
    /// The ids of the clients that took part in session `sid` ([`Effect::JoinSession`]).
    fn session_clients(&self, sid: &str) -> impl Future<Output = StoreResult<Vec<String>>> + Send;
    /// Ends every session of `subject`: deletes them and returns, per session id, the
    /// clients that took part (so that they can be told, e.g. by back-channel logout).
    fn end_sessions_of(
        &self,
        subject: &str,
    ) -> impl Future<Output = StoreResult<Vec<EndedSession>>> + Send;

    /// The signing keys, oldest first.
    fn signing_keys(&self) -> impl Future<Output = StoreResult<Vec<StoredKey>>> + Send;
    /// Adds a signing key.
    fn add_signing_key(&self, key: &StoredKey) -> impl Future<Output = StoreResult<()>> + Send;

    /// Deletes what expired before `now`; returns how many rows went.
    fn purge_expired(&self, now: OffsetDateTime) -> impl Future<Output = StoreResult<u64>> + Send;
}

/// A session ended by [`Store::end_sessions_of`]: its `sid` and the clients that took part.
pub type EndedSession = (String, Vec<String>);

/// What an operator changes beside serving: listing, updating and removing clients, users
/// and signing keys (the `oidc-flow` command line). Not needed to serve requests.
pub trait Admin: Store {
    /// Every registered client, by id.
    fn clients(&self) -> impl Future<Output = StoreResult<Vec<Client>>> + Send;
    /// Replaces the registration of `client.client_id`; `false` if there is none.
    fn update_client(&self, client: &Client) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Removes a client and the consents given to it; `false` if there is none.
    fn remove_client(&self, client_id: &str) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Every user, by name.
    fn users(&self) -> impl Future<Output = StoreResult<Vec<UserRecord>>> + Send;
    /// Replaces the password hash and claims of `user.username`; `false` if there is none.
    fn update_user(&self, user: &UserRecord) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Removes a user and the consents they gave; `false` if there is none.
    fn remove_user(&self, username: &str) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Sets the state of signing key `kid`; `false` if there is none.
    fn set_key_state(
        &self,
        kid: &str,
        state: KeyState,
    ) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Deletes signing key `kid`; `false` if there is none.
    fn remove_signing_key(&self, kid: &str) -> impl Future<Output = StoreResult<bool>> + Send;
}

/// Whether a session last used at `last_used` is still alive at `now`.
pub(crate) fn session_alive(
    last_used: OffsetDateTime,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
    idle_timeout: time::Duration,
) -> bool {
    expires_at > now && now - last_used <= idle_timeout
}

/// Whether every token of `wanted` is in `granted` (consents accumulate per client).
pub(crate) fn scope_covers(granted: &Scope, wanted: &Scope) -> bool {
    wanted.is_subset_of(granted)
}

/// The union of two scopes, `a`'s order first.
pub(crate) fn scope_union(a: &Scope, b: &Scope) -> Scope {
    let joined = format!("{a} {b}");
    Scope::parse(&joined).unwrap_or_else(|_| a.clone())
}
