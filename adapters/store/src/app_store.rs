//! The app's side of the store: its claims, its first-party clients.

use std::future::Future;
use std::sync::Arc;

use crate::{Store, StoreResult, StoredKey, UserRecord};
use oidc_flow::authorize::ParkedMark;
use oidc_flow::parking::ParkingSecret;
use oidc_flow::{
    AccessTokenRecord, Authentication, Client, CodeRecord, Effect, GrantId, NonceRecord,
    RefreshTokenRecord, Scope, SecretHash, Taken, UserInfo,
};
use time::OffsetDateTime;

/// Where the end-user's claims come from: the app's own users (what Authlib's
/// `generate_user_info(user, scope)` is in Flask).
///
/// The provider asks for the claims of a subject when it signs an ID token that carries
/// them or answers the UserInfo endpoint; it releases only those the token's scope covers
/// (OIDC Core §5.4), and always `sub` from the authentication itself.
///
/// Implement it with an `async fn`:
///
/// ```
/// # use oidc_flow::UserInfo;
/// struct Users;
/// impl oidc_flow_store::UserClaims for Users {
///     async fn claims(&self, subject: &str) -> Option<UserInfo> {
///         (subject == "u-1").then(|| UserInfo {
///             name: Some("Alice".into()),
///             ..UserInfo::default()
///         })
///     }
/// }
/// ```
pub trait UserClaims: Send + Sync + 'static {
    /// The claims of `subject`, or `None` if the app does not know it (tokens then carry
    /// `sub` alone).
    fn claims(&self, subject: &str) -> impl Future<Output = Option<UserInfo>> + Send;

    /// The claims of `subject` for a token of `scope` — Authlib's
    /// `generate_user_info(user, scope)`: an app whose claims cost something to gather
    /// (another service, another table) reads only what the scope releases. The provider
    /// still releases only what `scope` covers (OIDC Core §5.4). By default,
    /// [`UserClaims::claims`].
    fn claims_for_scope(
        &self,
        subject: &str,
        scope: &Scope,
    ) -> impl Future<Output = Option<UserInfo>> + Send {
        let _ = scope;
        self.claims(subject)
    }
}

/// A [`Store`] seen through the app: `user_claims` asks the app's [`UserClaims`], and
/// `consented` is `true` for the app's first-party clients (the core still shows consent
/// when the request says `prompt=consent`). Everything else is the wrapped store's.
#[derive(Debug)]
pub struct AppStore<S, C> {
    store: Arc<S>,
    claims: C,
    first_party: Vec<String>,
}

impl<S: Store, C: UserClaims> AppStore<S, C> {
    /// Wraps `store`, with the app's `claims` and its `first_party` client ids.
    pub fn new(store: Arc<S>, claims: C, first_party: Vec<String>) -> Self {
        Self {
            store,
            claims,
            first_party,
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<S> {
        &self.store
    }
}

impl<S: Store, C: UserClaims> Store for AppStore<S, C> {
    fn client(&self, client_id: &str) -> impl Future<Output = StoreResult<Option<Client>>> + Send {
        self.store.client(client_id)
    }

    fn add_client(&self, client: &Client) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.add_client(client)
    }

    fn resource_server(
        &self,
        resource: &str,
    ) -> impl Future<Output = StoreResult<Option<Client>>> + Send {
        self.store.resource_server(resource)
    }

    fn user_by_name(
        &self,
        username: &str,
    ) -> impl Future<Output = StoreResult<Option<UserRecord>>> + Send {
        self.store.user_by_name(username)
    }

    async fn user_claims(&self, subject: &str) -> StoreResult<Option<UserInfo>> {
        Ok(self.claims.claims(subject).await)
    }

    async fn user_claims_for(&self, subject: &str, scope: &Scope) -> StoreResult<Option<UserInfo>> {
        Ok(self.claims.claims_for_scope(subject, scope).await)
    }

    fn add_user(&self, user: &UserRecord) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.add_user(user)
    }

    fn take_code(
        &self,
        hash: &SecretHash,
    ) -> impl Future<Output = StoreResult<Taken<CodeRecord>>> + Send {
        self.store.take_code(hash)
    }

    fn take_refresh_token(
        &self,
        hash: &SecretHash,
    ) -> impl Future<Output = StoreResult<Taken<RefreshTokenRecord>>> + Send {
        self.store.take_refresh_token(hash)
    }

    fn refresh_token(
        &self,
        hash: &SecretHash,
    ) -> impl Future<Output = StoreResult<Option<RefreshTokenRecord>>> + Send {
        self.store.refresh_token(hash)
    }

    fn access_token(
        &self,
        hash: &SecretHash,
    ) -> impl Future<Output = StoreResult<Option<AccessTokenRecord>>> + Send {
        self.store.access_token(hash)
    }

    fn grant_revoked(&self, grant: &GrantId) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.grant_revoked(grant)
    }

    fn claim_nonce(
        &self,
        nonce: &NonceRecord,
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.claim_nonce(nonce, now)
    }

    async fn consented(&self, subject: &str, client_id: &str, scope: &Scope) -> StoreResult<bool> {
        if self.first_party.iter().any(|c| c == client_id) {
            return Ok(true);
        }
        self.store.consented(subject, client_id, scope).await
    }

    fn apply(&self, effects: &[Effect]) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.apply(effects)
    }

    fn parking_secret(&self) -> &ParkingSecret {
        self.store.parking_secret()
    }

    fn claim_parked(&self, mark: &ParkedMark) -> impl Future<Output = StoreResult<bool>> + Send {
        self.store.claim_parked(mark)
    }

    fn put_session(
        &self,
        id: &SecretHash,
        session: &Authentication,
        expires_at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.put_session(id, session, expires_at)
    }

    fn session(
        &self,
        id: &SecretHash,
        now: OffsetDateTime,
        idle_timeout: time::Duration,
    ) -> impl Future<Output = StoreResult<Option<Authentication>>> + Send {
        self.store.session(id, now, idle_timeout)
    }

    fn session_clients(&self, sid: &str) -> impl Future<Output = StoreResult<Vec<String>>> + Send {
        self.store.session_clients(sid)
    }

    fn end_sessions_of(
        &self,
        subject: &str,
    ) -> impl Future<Output = StoreResult<Vec<crate::EndedSession>>> + Send {
        self.store.end_sessions_of(subject)
    }

    fn signing_keys(&self) -> impl Future<Output = StoreResult<Vec<StoredKey>>> + Send {
        self.store.signing_keys()
    }

    fn add_signing_key(&self, key: &StoredKey) -> impl Future<Output = StoreResult<()>> + Send {
        self.store.add_signing_key(key)
    }

    fn purge_expired(&self, now: OffsetDateTime) -> impl Future<Output = StoreResult<u64>> + Send {
        self.store.purge_expired(now)
    }
}
