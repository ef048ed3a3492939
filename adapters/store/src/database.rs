//! One store type for a database chosen by its URL at run time: what the `oidc-flow`
//! command line and servers configured by URL open.

use oidc_flow::authorize::ParkedMark;
use oidc_flow::parking::ParkingSecret;
use oidc_flow::{
    AccessTokenRecord, Authentication, Client, CodeRecord, Effect, GrantId, NonceRecord,
    RefreshTokenRecord, Scope, SecretHash, Taken, UserInfo,
};
use time::OffsetDateTime;

use crate::{
    Admin, EndedSession, KeyState, SqliteStore, Store, StoreResult, StoredKey, UserRecord,
};

/// A [`SqliteStore`] or (with the `postgres` feature) a [`crate::PostgresStore`], by URL.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DatabaseStore {
    /// `sqlite://path` (or a plain path, or `sqlite::memory:`).
    Sqlite(SqliteStore),
    /// `postgres://…` or `postgresql://…`.
    #[cfg(feature = "postgres")]
    Postgres(crate::PostgresStore),
}

impl DatabaseStore {
    /// Opens the database at `url`: PostgreSQL for `postgres://` and `postgresql://` URLs,
    /// SQLite otherwise.
    pub async fn open(url: &str) -> StoreResult<Self> {
        #[cfg(feature = "postgres")]
        if crate::is_postgres_url(url) {
            return Ok(Self::Postgres(crate::PostgresStore::open(url).await?));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(crate::StoreError::Failed(
                "this build has no PostgreSQL backend (cargo feature `postgres`)".into(),
            ));
        }
        Ok(Self::Sqlite(SqliteStore::open(url).await?))
    }

    /// `url` as it may be shown in logs and errors: a password in it (`user:password@` or
    /// `?password=`) is masked.
    pub fn display_url(url: &str) -> String {
        let Ok(mut parsed) = url::Url::parse(url) else {
            return url.to_owned();
        };
        let in_query = parsed.query_pairs().any(|(k, _)| k == "password");
        if parsed.password().is_none() && !in_query {
            return url.to_owned();
        }
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("***"));
        }
        if in_query {
            let pairs: Vec<(String, String)> = parsed
                .query_pairs()
                .map(|(k, v)| {
                    let v = if k == "password" {
                        "***".into()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        parsed.to_string()
    }

    /// Flushes what the backend keeps for later (SQLite checkpoints its WAL); call before
    /// the process exits.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            #[cfg(feature = "postgres")]
            Self::Postgres(_) => {}
        }
    }
}

/// Runs `$body` with `$s` bound to the backend's store.
macro_rules! on_backend {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            DatabaseStore::Sqlite($s) => $body,
            #[cfg(feature = "postgres")]
            DatabaseStore::Postgres($s) => $body,
        }
    };
}

impl Store for DatabaseStore {
    async fn client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        on_backend!(self, s => s.client(client_id).await)
    }
    async fn add_client(&self, client: &Client) -> StoreResult<()> {
        on_backend!(self, s => s.add_client(client).await)
    }
    async fn resource_server(&self, resource: &str) -> StoreResult<Option<Client>> {
        on_backend!(self, s => s.resource_server(resource).await)
    }
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        on_backend!(self, s => s.user_by_name(username).await)
    }
    async fn user_claims(&self, subject: &str) -> StoreResult<Option<UserInfo>> {
        on_backend!(self, s => s.user_claims(subject).await)
    }
    async fn user_claims_for(&self, subject: &str, scope: &Scope) -> StoreResult<Option<UserInfo>> {
        on_backend!(self, s => s.user_claims_for(subject, scope).await)
    }
    async fn add_user(&self, user: &UserRecord) -> StoreResult<()> {
        on_backend!(self, s => s.add_user(user).await)
    }
    async fn take_code(&self, hash: &SecretHash) -> StoreResult<Taken<CodeRecord>> {
        on_backend!(self, s => s.take_code(hash).await)
    }
    async fn take_refresh_token(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Taken<RefreshTokenRecord>> {
        on_backend!(self, s => s.take_refresh_token(hash).await)
    }
    async fn refresh_token(&self, hash: &SecretHash) -> StoreResult<Option<RefreshTokenRecord>> {
        on_backend!(self, s => s.refresh_token(hash).await)
    }
    async fn access_token(&self, hash: &SecretHash) -> StoreResult<Option<AccessTokenRecord>> {
        on_backend!(self, s => s.access_token(hash).await)
    }
    async fn grant_revoked(&self, grant: &GrantId) -> StoreResult<bool> {
        on_backend!(self, s => s.grant_revoked(grant).await)
    }
    async fn claim_nonce(&self, nonce: &NonceRecord, now: OffsetDateTime) -> StoreResult<bool> {
        on_backend!(self, s => s.claim_nonce(nonce, now).await)
    }
    async fn consented(&self, subject: &str, client_id: &str, scope: &Scope) -> StoreResult<bool> {
        on_backend!(self, s => s.consented(subject, client_id, scope).await)
    }
    async fn apply(&self, effects: &[Effect]) -> StoreResult<()> {
        on_backend!(self, s => s.apply(effects).await)
    }
    fn parking_secret(&self) -> &ParkingSecret {
        on_backend!(self, s => s.parking_secret())
    }
    async fn claim_parked(&self, mark: &ParkedMark) -> StoreResult<bool> {
        on_backend!(self, s => s.claim_parked(mark).await)
    }
    async fn put_session(
        &self,
        id: &SecretHash,
        session: &Authentication,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        on_backend!(self, s => s.put_session(id, session, expires_at).await)
    }
    async fn session(
        &self,
        id: &SecretHash,
        now: OffsetDateTime,
        idle_timeout: time::Duration,
    ) -> StoreResult<Option<Authentication>> {
        on_backend!(self, s => s.session(id, now, idle_timeout).await)
    }
    async fn session_clients(&self, sid: &str) -> StoreResult<Vec<String>> {
        on_backend!(self, s => s.session_clients(sid).await)
    }
    async fn end_sessions_of(&self, subject: &str) -> StoreResult<Vec<EndedSession>> {
        on_backend!(self, s => s.end_sessions_of(subject).await)
    }
    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        on_backend!(self, s => s.signing_keys().await)
    }
    async fn add_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        on_backend!(self, s => s.add_signing_key(key).await)
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> StoreResult<u64> {
        on_backend!(self, s => s.purge_expired(now).await)
    }
}

impl Admin for DatabaseStore {
    async fn clients(&self) -> StoreResult<Vec<Client>> {
        on_backend!(self, s => s.clients().await)
    }
    async fn update_client(&self, client: &Client) -> StoreResult<bool> {
        on_backend!(self, s => s.update_client(client).await)
    }
    async fn remove_client(&self, client_id: &str) -> StoreResult<bool> {
        on_backend!(self, s => s.remove_client(client_id).await)
    }
    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        on_backend!(self, s => s.users().await)
    }
    async fn update_user(&self, user: &UserRecord) -> StoreResult<bool> {
        on_backend!(self, s => s.update_user(user).await)
    }
    async fn remove_user(&self, username: &str) -> StoreResult<bool> {
        on_backend!(self, s => s.remove_user(username).await)
    }
    async fn set_key_state(&self, kid: &str, state: KeyState) -> StoreResult<bool> {
        on_backend!(self, s => s.set_key_state(kid, state).await)
    }
    async fn remove_signing_key(&self, kid: &str) -> StoreResult<bool> {
        on_backend!(self, s => s.remove_signing_key(kid).await)
    }
}

#[cfg(test)]
mod tests {
    use super::DatabaseStore;

    #[test]
    fn passwords_are_masked_in_displayed_urls() {
        assert_eq!(
            DatabaseStore::display_url("postgres://oidc:s3cret@db:5432/oidc?sslmode=require"),
            "postgres://oidc:***@db:5432/oidc?sslmode=require"
        );
        assert_eq!(
            DatabaseStore::display_url("postgres://oidc@db/oidc?password=s3cret&sslmode=require"),
            "postgres://oidc@db/oidc?password=***&sslmode=require"
        );
        assert_eq!(
            DatabaseStore::display_url("sqlite://oidc-flow.sqlite"),
            "sqlite://oidc-flow.sqlite"
        );
    }
}
