//! The SQLite backend (sqlx), in WAL mode with `synchronous=NORMAL`.
//!
//! WAL with NORMAL syncs at checkpoints, not at every commit: a crash of the process loses
//! nothing, a power loss at most the last commits. SQLite's default (rollback journal,
//! FULL) fsyncs every commit and caps the provider at a few hundred flows per second.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use oidc_flow::authorize::PendingAuthorization;
use oidc_flow::keys::Algorithm;
use oidc_flow::{
    AccessTokenRecord, Authentication, Client, CodeRecord, Effect, GrantId, RefreshTokenRecord,
    Scope, SecretHash, Taken, UserInfo,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use time::OffsetDateTime;

use crate::{
    DataKey, Store, StoreError, StoreResult, StoredKey, UserRecord, scope_covers, scope_union,
};

/// The member under which a client's clear secret is stored, encrypted with the data key.
const SEALED_SECRET: &str = "client_secret_sealed";

/// How long a revoked grant is remembered, so tokens racing the revocation are refused.
const REVOCATION_MEMORY: time::Duration = time::Duration::hours(1);
/// How long a taken code is kept past its expiry, so a late replay still revokes its grant.
pub(crate) const TAKEN_CODE_GRACE: time::Duration = time::Duration::hours(1);

/// A store in one SQLite file.
///
/// Client secrets kept in clear by the core (HS* clients) are encrypted at rest with the
/// [`DataKey`] found by [`DataKey::from_env_or_file`]: the `OIDC_FLOW_DATA_KEY` variable,
/// or the file `<database>.key` beside the database (created on first use).
///
/// Clients are cached in memory after their first lookup: they are read on every request
/// and never change once registered. A client registered by another process (the command
/// line) is found on the first miss.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    data_key: Arc<DataKey>,
    clients: Arc<RwLock<HashMap<String, Client>>>,
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path` or `sqlite::memory:`)
    /// and brings its schema up to date.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?;
        let memory = url.contains(":memory:") || options.get_filename().as_os_str().is_empty();
        let key_file = (!memory).then(|| {
            let mut p = PathBuf::from(options.get_filename());
            p.as_mut_os_string().push(".key");
            p
        });
        let data_key = Arc::new(DataKey::from_env_or_file(key_file.as_deref())?);
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // 1 MiB of page cache per connection: the working set (recent codes and tokens)
            // is small, and memory per connection is what the provider's footprint is made of.
            .pragma("cache_size", "-1024");
        // An in-memory database exists per connection: keep exactly one.
        let max = if memory { 1 } else { 4 };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self {
            pool,
            data_key,
            clients: Arc::default(),
        })
    }

    /// The connection pool, for closing it on shutdown.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    async fn write_tx(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        // IMMEDIATE takes the write lock up front, so a transaction that reads before it
        // writes cannot fail with SQLITE_BUSY halfway (busy_timeout waits for the lock instead).
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn load_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        let row = sqlx::query("SELECT data FROM clients WHERE client_id = ?")
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let mut value: serde_json::Value = from_json(row.try_get::<&str, _>(0)?)?;
        if let Some(obj) = value.as_object_mut()
            && let Some(sealed) = obj.remove(SEALED_SECRET)
        {
            let sealed = sealed.as_str().unwrap_or_default();
            let secret = self.data_key.open(client_id, sealed)?;
            obj.insert("client_secret".to_owned(), secret.into());
        }
        Ok(Some(serde_json::from_value(value)?))
    }

    async fn insert_client(&self, client: &Client) -> StoreResult<()> {
        let mut value = serde_json::to_value(client)?;
        if let Some(obj) = value.as_object_mut()
            && let Some(secret) = obj.remove("client_secret")
        {
            let sealed = self
                .data_key
                .seal(&client.client_id, secret.as_str().unwrap_or_default())?;
            obj.insert(SEALED_SECRET.to_owned(), sealed.into());
        }
        let data = value.to_string();
        sqlx::query("INSERT INTO clients (client_id, data) VALUES (?, ?)")
            .bind(&client.client_id)
            .bind(data)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Duplicate(format!("client {}", client.client_id))
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    Ok(serde_json::to_string(v)?)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    Ok(serde_json::from_str(s)?)
}

/// Takes a single-use row of `table` (codes or refresh_tokens) atomically.
async fn take<R: serde::de::DeserializeOwned>(
    pool: &SqlitePool,
    update: &'static str,
    lookup: &'static str,
    hash: &SecretHash,
) -> StoreResult<Taken<R>> {
    let key = hash.as_bytes().as_slice();
    if let Some(row) = sqlx::query(update).bind(key).fetch_optional(pool).await? {
        let data: String = row.try_get(0)?;
        return Ok(Taken::Fresh(from_json(&data)?));
    }
    match sqlx::query(lookup).bind(key).fetch_optional(pool).await? {
        Some(row) => {
            let grant: String = row.try_get(0)?;
            Ok(Taken::AlreadyTaken(GrantId::from_stored(grant)))
        }
        None => Ok(Taken::Unknown),
    }
}

impl Store for SqliteStore {
    async fn client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        if let Some(c) = self
            .clients
            .read()
            .ok()
            .and_then(|m| m.get(client_id).cloned())
        {
            return Ok(Some(c));
        }
        let client = self.load_client(client_id).await?;
        if let (Some(c), Ok(mut cache)) = (&client, self.clients.write()) {
            cache.insert(client_id.to_owned(), c.clone());
        }
        Ok(client)
    }

    async fn add_client(&self, client: &Client) -> StoreResult<()> {
        self.insert_client(client).await
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let row = sqlx::query(
            "SELECT username, subject, password_hash, claims FROM users WHERE username = ?",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(UserRecord {
                username: r.try_get(0)?,
                subject: r.try_get(1)?,
                password_hash: r.try_get(2)?,
                claims: from_json(r.try_get::<&str, _>(3)?)?,
            })
        })
        .transpose()
    }

    async fn user_claims(&self, subject: &str) -> StoreResult<Option<UserInfo>> {
        let row = sqlx::query("SELECT claims FROM users WHERE subject = ?")
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| from_json(r.try_get::<&str, _>(0)?)).transpose()
    }

    async fn add_user(&self, user: &UserRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (username, subject, password_hash, claims) VALUES (?, ?, ?, ?)",
        )
        .bind(&user.username)
        .bind(&user.subject)
        .bind(&user.password_hash)
        .bind(to_json(&user.claims)?)
        .execute(&self.pool)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Duplicate(format!("user {}", user.username))
            } else {
                e.into()
            }
        })?;
        Ok(())
    }

    async fn take_code(&self, hash: &SecretHash) -> StoreResult<Taken<CodeRecord>> {
        take(
            &self.pool,
            "UPDATE codes SET taken = 1 WHERE hash = ? AND taken = 0 RETURNING data",
            "SELECT grant_id FROM codes WHERE hash = ?",
            hash,
        )
        .await
    }

    async fn take_refresh_token(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Taken<RefreshTokenRecord>> {
        take(
            &self.pool,
            "UPDATE refresh_tokens SET taken = 1 WHERE hash = ? AND taken = 0 RETURNING data",
            "SELECT grant_id FROM refresh_tokens WHERE hash = ?",
            hash,
        )
        .await
    }

    async fn access_token(&self, hash: &SecretHash) -> StoreResult<Option<AccessTokenRecord>> {
        let row = sqlx::query("SELECT data FROM access_tokens WHERE hash = ?")
            .bind(hash.as_bytes().as_slice())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| from_json(r.try_get::<&str, _>(0)?)).transpose()
    }

    async fn nonce_seen(
        &self,
        client_id: &str,
        nonce: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM nonces WHERE client_id = ? AND nonce = ? AND expires_at > ?",
        )
        .bind(client_id)
        .bind(nonce)
        .bind(now.unix_timestamp())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    async fn consented(&self, subject: &str, client_id: &str, scope: &Scope) -> StoreResult<bool> {
        let row = sqlx::query("SELECT scope FROM consents WHERE subject = ? AND client_id = ?")
            .bind(subject)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => {
                let granted = Scope::parse(r.try_get::<&str, _>(0)?).unwrap_or_default();
                Ok(scope_covers(&granted, scope))
            }
            None => Ok(false),
        }
    }

    async fn apply(&self, effects: &[Effect]) -> StoreResult<()> {
        if effects.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        // Tokens must not land for a grant revoked meanwhile (a code replay racing the first
        // exchange). One check per grant; codes start a grant minted this very request, so
        // there is nothing to check for them.
        let mut checked: Vec<&GrantId> = Vec::with_capacity(1);
        for e in effects {
            let grant = match e {
                Effect::StoreAccessToken(r) => &r.grant,
                Effect::StoreRefreshToken(r) => &r.grant,
                _ => continue,
            };
            if !checked.contains(&grant) {
                ensure_not_revoked(&mut tx, grant).await?;
                checked.push(grant);
            }
        }
        for e in effects {
            apply_one(&mut tx, e).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn put_pending(
        &self,
        id: &SecretHash,
        pending: &PendingAuthorization,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT OR REPLACE INTO pending_authorizations (id, data, expires_at) VALUES (?, ?, ?)",
        )
        .bind(id.as_bytes().as_slice())
        .bind(to_json(pending)?)
        .bind(expires_at.unix_timestamp())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn take_pending(
        &self,
        id: &SecretHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<PendingAuthorization>> {
        let row = sqlx::query(
            "DELETE FROM pending_authorizations WHERE id = ? RETURNING data, expires_at",
        )
        .bind(id.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) if r.try_get::<i64, _>(1)? > now.unix_timestamp() => {
                Ok(Some(from_json(r.try_get::<&str, _>(0)?)?))
            }
            _ => Ok(None),
        }
    }

    async fn put_session(
        &self,
        id: &SecretHash,
        session: &Authentication,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        sqlx::query("INSERT OR REPLACE INTO sessions (id, data, expires_at) VALUES (?, ?, ?)")
            .bind(id.as_bytes().as_slice())
            .bind(to_json(session)?)
            .bind(expires_at.unix_timestamp())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session(
        &self,
        id: &SecretHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Authentication>> {
        let row = sqlx::query("SELECT data FROM sessions WHERE id = ? AND expires_at > ?")
            .bind(id.as_bytes().as_slice())
            .bind(now.unix_timestamp())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| from_json(r.try_get::<&str, _>(0)?)).transpose()
    }

    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        let rows = sqlx::query(
            "SELECT kid, alg, pem, created_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let alg: String = r.try_get(1)?;
                let alg = Algorithm::from_name(&alg).ok_or_else(|| {
                    StoreError::Corrupt(serde::de::Error::custom(format!("unknown alg {alg}")))
                })?;
                Ok(StoredKey {
                    kid: r.try_get(0)?,
                    alg,
                    pem: r.try_get(2)?,
                    created_at: OffsetDateTime::from_unix_timestamp(r.try_get(3)?)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                })
            })
            .collect()
    }

    async fn add_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        sqlx::query("INSERT INTO signing_keys (kid, alg, pem, created_at) VALUES (?, ?, ?, ?)")
            .bind(&key.kid)
            .bind(key.alg.as_str())
            .bind(&key.pem)
            .bind(key.created_at.unix_timestamp())
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Duplicate(format!("key {}", key.kid))
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let now_s = now.unix_timestamp();
        let grace = (now - TAKEN_CODE_GRACE).unix_timestamp();
        let mut tx = self.write_tx().await?;
        let mut n = 0;
        // Untaken codes go at expiry; taken ones are kept a while so a late replay still
        // finds its grant to revoke.
        n += sqlx::query(
            "DELETE FROM codes WHERE (taken = 0 AND expires_at <= ?) OR expires_at <= ?",
        )
        .bind(now_s)
        .bind(grace)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        for sql in [
            "DELETE FROM access_tokens WHERE expires_at <= ?",
            "DELETE FROM refresh_tokens WHERE expires_at <= ?",
            "DELETE FROM nonces WHERE expires_at <= ?",
            "DELETE FROM revoked_grants WHERE expires_at <= ?",
            "DELETE FROM pending_authorizations WHERE expires_at <= ?",
            "DELETE FROM sessions WHERE expires_at <= ?",
        ] {
            n += sqlx::query(sql)
                .bind(now_s)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}

async fn ensure_not_revoked(
    tx: &mut Transaction<'static, Sqlite>,
    grant: &GrantId,
) -> StoreResult<()> {
    let row = sqlx::query("SELECT 1 FROM revoked_grants WHERE grant_id = ?")
        .bind(grant.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    if row.is_some() {
        return Err(StoreError::GrantRevoked);
    }
    Ok(())
}

async fn apply_one(tx: &mut Transaction<'static, Sqlite>, e: &Effect) -> StoreResult<()> {
    match e {
        Effect::StoreCode(r) => {
            sqlx::query("INSERT INTO codes (hash, grant_id, data, taken, expires_at) VALUES (?, ?, ?, 0, ?)")
                .bind(r.hash.as_bytes().as_slice())
                .bind(r.grant.as_str())
                .bind(to_json(r)?)
                .bind(r.expires_at.unix_timestamp())
                .execute(&mut **tx)
                .await?;
        }
        Effect::StoreAccessToken(r) => {
            sqlx::query(
                "INSERT INTO access_tokens (hash, grant_id, data, expires_at) VALUES (?, ?, ?, ?)",
            )
            .bind(r.hash.as_bytes().as_slice())
            .bind(r.grant.as_str())
            .bind(to_json(r)?)
            .bind(r.expires_at.unix_timestamp())
            .execute(&mut **tx)
            .await?;
        }
        Effect::StoreRefreshToken(r) => {
            sqlx::query("INSERT INTO refresh_tokens (hash, grant_id, data, taken, expires_at) VALUES (?, ?, ?, 0, ?)")
                .bind(r.hash.as_bytes().as_slice())
                .bind(r.grant.as_str())
                .bind(to_json(r)?)
                .bind(r.expires_at.unix_timestamp())
                .execute(&mut **tx)
                .await?;
        }
        Effect::RememberNonce(n) => {
            sqlx::query(
                "INSERT OR REPLACE INTO nonces (client_id, nonce, expires_at) VALUES (?, ?, ?)",
            )
            .bind(&n.client_id)
            .bind(&n.nonce)
            .bind(n.expires_at.unix_timestamp())
            .execute(&mut **tx)
            .await?;
        }
        Effect::RememberConsent(c) => {
            let row = sqlx::query("SELECT scope FROM consents WHERE subject = ? AND client_id = ?")
                .bind(&c.subject)
                .bind(&c.client_id)
                .fetch_optional(&mut **tx)
                .await?;
            let merged = match row {
                Some(r) => scope_union(
                    &Scope::parse(r.try_get::<&str, _>(0)?).unwrap_or_default(),
                    &c.scope,
                ),
                None => c.scope.clone(),
            };
            sqlx::query(
                "INSERT OR REPLACE INTO consents (subject, client_id, scope) VALUES (?, ?, ?)",
            )
            .bind(&c.subject)
            .bind(&c.client_id)
            .bind(merged.to_string())
            .execute(&mut **tx)
            .await?;
        }
        Effect::RevokeGrant(grant) => {
            let g = grant.as_str();
            sqlx::query("DELETE FROM access_tokens WHERE grant_id = ?")
                .bind(g)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM refresh_tokens WHERE grant_id = ?")
                .bind(g)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM codes WHERE grant_id = ? AND taken = 0")
                .bind(g)
                .execute(&mut **tx)
                .await?;
            let until = OffsetDateTime::now_utc() + REVOCATION_MEMORY;
            sqlx::query(
                "INSERT OR REPLACE INTO revoked_grants (grant_id, expires_at) VALUES (?, ?)",
            )
            .bind(g)
            .bind(until.unix_timestamp())
            .execute(&mut **tx)
            .await?;
        }
        // Effects added to the core later must be handled here before they can be produced.
        _ => {}
    }
    Ok(())
}
