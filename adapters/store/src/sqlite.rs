//! The SQLite backend, in WAL mode with `synchronous=NORMAL`.
//!
//! WAL with NORMAL syncs at checkpoints, not at every commit: a crash of the process loses
//! nothing, a power loss at most the last commits. SQLite's default (rollback journal,
//! FULL) fsyncs every commit and caps the provider at a few hundred flows per second.
//!
//! Statements run on the calling task, on connections behind short-held mutexes: one
//! writer (SQLite has one writer at a time anyway) and a few readers. Each call takes
//! microseconds; a driver that ships every statement to a connection thread (sqlx's SQLite
//! driver) spent half the server's CPU on those hand-offs (see the README's profile).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use oidc_flow::authorize::PendingAuthorization;
use oidc_flow::keys::Algorithm;
use oidc_flow::{
    AccessTokenRecord, Authentication, Client, CodeRecord, Effect, GrantId, RefreshTokenRecord,
    Scope, SecretHash, Taken, UserInfo,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use crate::{
    DataKey, Store, StoreError, StoreResult, StoredKey, TAKEN_CODE_GRACE, UserRecord, scope_covers,
    scope_union,
};

/// How long a revoked grant is remembered, so tokens racing the revocation are refused.
const REVOCATION_MEMORY: time::Duration = time::Duration::hours(1);
/// The member under which a client's clear secret is stored, encrypted with the data key.
const SEALED_SECRET: &str = "client_secret_sealed";
/// Most read-only connections beside the writer (file databases only).
const MAX_READERS: usize = 2;

/// The schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: [&str; 1] = [include_str!("../migrations/0001_init.sql")];

struct Inner {
    writer: Mutex<Connection>,
    /// Writes waiting for the next group commit.
    queue: Mutex<Vec<Queued>>,
    /// Whether a task is committing the queue.
    leader: AtomicBool,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    data_key: DataKey,
    clients: RwLock<HashMap<String, Client>>,
}

/// A store in one SQLite file.
///
/// Client secrets kept in clear by the core (HS* clients) are encrypted at rest with the
/// [`DataKey`] found by [`DataKey::from_env_or_file`]: the `OIDC_FLOW_DATA_KEY` variable,
/// or the file `<database>.key` beside the database (created on first use).
///
/// Clients are cached in memory after their first lookup: they are read on every request
/// and never change once registered. A client registered by another process (the command
/// line) is found on the first miss.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("readers", &self.inner.readers.len())
            .finish_non_exhaustive()
    }
}

/// The file of a `sqlite://path`, `sqlite:path` or plain path URL; `None` for `sqlite::memory:`.
fn database_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let rest = rest.split('?').next().unwrap_or_default();
    if rest.is_empty() || rest == ":memory:" {
        None
    } else {
        Some(PathBuf::from(rest))
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // 1 MiB of page cache per connection: the working set (recent codes and tokens) is
    // small, and memory per connection is what the provider's footprint is made of.
    conn.pragma_update(None, "cache_size", -1024)?;
    // No checkpoint on commit: a background thread does them (see `checkpointer`), so no
    // request waits for the copy and fsync a checkpoint costs.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let applied: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let applied = usize::try_from(applied).unwrap_or(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(
            None,
            "user_version",
            i64::try_from(i + 1).unwrap_or(i64::MAX),
        )?;
        tx.commit()?;
    }
    Ok(())
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding a connection leaves SQLite itself consistent (an open
    // transaction is rolled back when the next one begins), so a poisoned lock is taken over.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`, or `sqlite::memory:`)
    /// and brings its schema up to date.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let path = database_path(url);
        let key_file = path.as_ref().map(|p| {
            let mut k = p.clone();
            k.as_mut_os_string().push(".key");
            k
        });
        let data_key = DataKey::from_env_or_file(key_file.as_deref())?;
        let mut writer = match &path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        if path.is_some() {
            let mode: String =
                writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::DataKey(format!(
                    "WAL mode refused (got {mode})"
                )));
            }
        }
        configure(&writer)?;
        migrate(&mut writer)?;
        // Readers let reads run beside a commit on another core. With one core they only
        // cost: each must re-read the pages every commit changes, which the writer has cached.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let reader_count = cores.saturating_sub(1).min(MAX_READERS);
        let readers = match &path {
            Some(p) => (0..reader_count)
                .map(|_| open_reader(p).map(Mutex::new))
                .collect::<Result<Vec<_>, _>>()?,
            // An in-memory database exists only on its one connection.
            None => Vec::new(),
        };
        let inner = Arc::new(Inner {
            writer: Mutex::new(writer),
            queue: Mutex::default(),
            leader: AtomicBool::new(false),
            readers,
            next_reader: AtomicUsize::new(0),
            data_key,
            clients: RwLock::default(),
        });
        if let Some(p) = &path {
            checkpointer(p, Arc::downgrade(&inner))?;
        } else {
            // One connection holds the whole in-memory database: checkpoint on commit.
            lock(&inner.writer).pragma_update(None, "wal_autocheckpoint", 1000)?;
        }
        Ok(Self { inner })
    }

    /// Checkpoints the WAL into the database file (on shutdown; connections close on drop).
    pub async fn close(&self) {
        let conn = lock(&self.inner.writer);
        let _ = conn.pragma_update(None, "wal_checkpoint", "TRUNCATE");
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.inner.writer)
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        let readers = &self.inner.readers;
        if readers.is_empty() {
            return self.writer();
        }
        let start = self.inner.next_reader.fetch_add(1, Ordering::Relaxed);
        // Take a free reader if there is one, else wait for the next in turn.
        for i in 0..readers.len() {
            if let Some(Ok(guard)) = readers
                .get((start + i) % readers.len())
                .map(Mutex::try_lock)
            {
                return guard;
            }
        }
        match readers.get(start % readers.len()) {
            Some(m) => lock(m),
            None => self.writer(),
        }
    }

    fn load_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        let data: Option<String> = self
            .reader()
            .prepare_cached("SELECT data FROM clients WHERE client_id = ?1")?
            .query_row(params![client_id], |r| r.get(0))
            .optional()?;
        let Some(data) = data else { return Ok(None) };
        let mut value: serde_json::Value = from_json(&data)?;
        if let Some(obj) = value.as_object_mut()
            && let Some(sealed) = obj.remove(SEALED_SECRET)
        {
            let sealed = sealed.as_str().unwrap_or_default();
            let secret = self.inner.data_key.open(client_id, sealed)?;
            obj.insert("client_secret".to_owned(), secret.into());
        }
        Ok(Some(serde_json::from_value(value)?))
    }
}

/// WAL frames (pages) past which the checkpointer also truncates the WAL.
const WAL_RESET_FRAMES: i64 = 2000;

/// Starts the thread that checkpoints the WAL into the database file, on its own
/// connection, until the store is dropped.
///
/// Every 100 ms a PASSIVE checkpoint copies what it can without blocking the writer. Under
/// a steady stream of commits that never catches up entirely, and SQLite only rewinds a WAL
/// that was copied entirely, so the WAL would grow without end: once it holds more than
/// [`WAL_RESET_FRAMES`] frames, a TRUNCATE checkpoint waits for the writer, copies the few
/// frames left and empties the file. The writer pauses for that remainder only.
fn checkpointer(path: &Path, store: std::sync::Weak<Inner>) -> StoreResult<()> {
    let conn = Connection::open(path)?;
    configure(&conn)?;
    // A checkpoint copies pages from the WAL to the file; it needs no cache of its own.
    conn.pragma_update(None, "cache_size", -64)?;
    std::thread::Builder::new()
        .name("oidc-flow-checkpoint".into())
        .spawn(move || {
            while store.strong_count() > 0 {
                std::thread::sleep(Duration::from_millis(100));
                let frames: Option<i64> = conn
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
                    .ok();
                if frames.is_some_and(|f| f > WAL_RESET_FRAMES) {
                    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
                }
            }
        })
        .map_err(|e| StoreError::Failed(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(())
}

fn open_reader(path: &Path) -> StoreResult<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    Ok(conn)
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    Ok(serde_json::to_string(v)?)
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str) -> StoreResult<T> {
    Ok(serde_json::from_str(s)?)
}

/// Takes a single-use row (a code or a refresh token) atomically.
fn take<R: serde::de::DeserializeOwned>(
    conn: &Connection,
    update: &str,
    lookup: &str,
    hash: &SecretHash,
) -> StoreResult<Taken<R>> {
    let key = hash.as_bytes().as_slice();
    let data: Option<String> = conn
        .prepare_cached(update)?
        .query_row(params![key], |r| r.get(0))
        .optional()?;
    if let Some(data) = data {
        return Ok(Taken::Fresh(from_json(&data)?));
    }
    let grant: Option<String> = conn
        .prepare_cached(lookup)?
        .query_row(params![key], |r| r.get(0))
        .optional()?;
    Ok(match grant {
        Some(g) => Taken::AlreadyTaken(GrantId::from_stored(g)),
        None => Taken::Unknown,
    })
}

impl Store for SqliteStore {
    async fn client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        if let Some(c) = self
            .inner
            .clients
            .read()
            .ok()
            .and_then(|m| m.get(client_id).cloned())
        {
            return Ok(Some(c));
        }
        let client = self.load_client(client_id)?;
        if let (Some(c), Ok(mut cache)) = (&client, self.inner.clients.write()) {
            cache.insert(client_id.to_owned(), c.clone());
        }
        Ok(client)
    }

    async fn add_client(&self, client: &Client) -> StoreResult<()> {
        let mut value = serde_json::to_value(client)?;
        if let Some(obj) = value.as_object_mut()
            && let Some(secret) = obj.remove("client_secret")
        {
            let sealed = self
                .inner
                .data_key
                .seal(&client.client_id, secret.as_str().unwrap_or_default())?;
            obj.insert(SEALED_SECRET.to_owned(), sealed.into());
        }
        self.writer()
            .prepare_cached("INSERT INTO clients (client_id, data) VALUES (?1, ?2)")?
            .execute(params![client.client_id, value.to_string()])
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Duplicate(format!("client {}", client.client_id))
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let row: Option<(String, String, String, String)> = self
            .reader()
            .prepare_cached(
                "SELECT username, subject, password_hash, claims FROM users WHERE username = ?1",
            )?
            .query_row(params![username], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .optional()?;
        row.map(|(username, subject, password_hash, claims)| {
            Ok(UserRecord {
                username,
                subject,
                password_hash,
                claims: from_json(&claims)?,
            })
        })
        .transpose()
    }

    async fn user_claims(&self, subject: &str) -> StoreResult<Option<UserInfo>> {
        let claims: Option<String> = self
            .reader()
            .prepare_cached("SELECT claims FROM users WHERE subject = ?1")?
            .query_row(params![subject], |r| r.get(0))
            .optional()?;
        claims.map(|c| from_json(&c)).transpose()
    }

    async fn add_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.writer()
            .prepare_cached(
                "INSERT INTO users (username, subject, password_hash, claims) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                user.username,
                user.subject,
                user.password_hash,
                to_json(&user.claims)?
            ])
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
        match self.submit(Job::TakeCode(*hash)).await? {
            JobResult::Code(t) => Ok(t),
            _ => Err(StoreError::Failed(
                "the commit queue answered the wrong job".into(),
            )),
        }
    }

    async fn take_refresh_token(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Taken<RefreshTokenRecord>> {
        match self.submit(Job::TakeRefresh(*hash)).await? {
            JobResult::Refresh(t) => Ok(t),
            _ => Err(StoreError::Failed(
                "the commit queue answered the wrong job".into(),
            )),
        }
    }

    async fn access_token(&self, hash: &SecretHash) -> StoreResult<Option<AccessTokenRecord>> {
        let data: Option<String> = self
            .reader()
            .prepare_cached("SELECT data FROM access_tokens WHERE hash = ?1")?
            .query_row(params![hash.as_bytes().as_slice()], |r| r.get(0))
            .optional()?;
        data.map(|d| from_json(&d)).transpose()
    }

    async fn nonce_seen(
        &self,
        client_id: &str,
        nonce: &str,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let seen: Option<i64> = self
            .reader()
            .prepare_cached(
                "SELECT 1 FROM nonces WHERE client_id = ?1 AND nonce = ?2 AND expires_at > ?3",
            )?
            .query_row(params![client_id, nonce, now.unix_timestamp()], |r| {
                r.get(0)
            })
            .optional()?;
        Ok(seen.is_some())
    }

    async fn consented(&self, subject: &str, client_id: &str, scope: &Scope) -> StoreResult<bool> {
        let granted: Option<String> = self
            .reader()
            .prepare_cached("SELECT scope FROM consents WHERE subject = ?1 AND client_id = ?2")?
            .query_row(params![subject, client_id], |r| r.get(0))
            .optional()?;
        Ok(granted.is_some_and(|g| scope_covers(&Scope::parse(&g).unwrap_or_default(), scope)))
    }

    async fn apply(&self, effects: &[Effect]) -> StoreResult<()> {
        if effects.is_empty() {
            return Ok(());
        }
        self.submit(Job::Apply(effects.to_vec())).await.map(|_| ())
    }

    async fn put_pending(
        &self,
        id: &SecretHash,
        pending: &PendingAuthorization,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.writer()
            .prepare_cached(
                "INSERT OR REPLACE INTO pending_authorizations (id, data, expires_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                id.as_bytes().as_slice(),
                to_json(pending)?,
                expires_at.unix_timestamp()
            ])?;
        Ok(())
    }

    async fn take_pending(
        &self,
        id: &SecretHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<PendingAuthorization>> {
        let row: Option<(String, i64)> = self
            .writer()
            .prepare_cached(
                "DELETE FROM pending_authorizations WHERE id = ?1 RETURNING data, expires_at",
            )?
            .query_row(params![id.as_bytes().as_slice()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        match row {
            Some((data, exp)) if exp > now.unix_timestamp() => Ok(Some(from_json(&data)?)),
            _ => Ok(None),
        }
    }

    async fn put_session(
        &self,
        id: &SecretHash,
        session: &Authentication,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.writer()
            .prepare_cached(
                "INSERT OR REPLACE INTO sessions (id, data, expires_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![
                id.as_bytes().as_slice(),
                to_json(session)?,
                expires_at.unix_timestamp()
            ])?;
        Ok(())
    }

    async fn session(
        &self,
        id: &SecretHash,
        now: OffsetDateTime,
    ) -> StoreResult<Option<Authentication>> {
        let data: Option<String> = self
            .reader()
            .prepare_cached("SELECT data FROM sessions WHERE id = ?1 AND expires_at > ?2")?
            .query_row(
                params![id.as_bytes().as_slice(), now.unix_timestamp()],
                |r| r.get(0),
            )
            .optional()?;
        data.map(|d| from_json(&d)).transpose()
    }

    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT kid, alg, pem, created_at FROM signing_keys ORDER BY created_at, kid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (kid, alg, pem, created_at) = row?;
            let alg = Algorithm::from_name(&alg).ok_or_else(|| {
                StoreError::Corrupt(serde::de::Error::custom(format!("unknown alg {alg}")))
            })?;
            out.push(StoredKey {
                kid,
                alg,
                pem,
                created_at: OffsetDateTime::from_unix_timestamp(created_at)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            });
        }
        Ok(out)
    }

    async fn add_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        self.writer()
            .prepare_cached(
                "INSERT INTO signing_keys (kid, alg, pem, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                key.kid,
                key.alg.as_str(),
                key.pem,
                key.created_at.unix_timestamp()
            ])
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
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Untaken codes go at expiry; taken ones are kept a while so a late replay still
        // finds its grant to revoke.
        let mut n = tx.execute(
            "DELETE FROM codes WHERE (taken = 0 AND expires_at <= ?1) OR expires_at <= ?2",
            params![now_s, grace],
        )?;
        for sql in [
            "DELETE FROM access_tokens WHERE expires_at <= ?1",
            "DELETE FROM refresh_tokens WHERE expires_at <= ?1",
            "DELETE FROM nonces WHERE expires_at <= ?1",
            "DELETE FROM revoked_grants WHERE expires_at <= ?1",
            "DELETE FROM pending_authorizations WHERE expires_at <= ?1",
            "DELETE FROM sessions WHERE expires_at <= ?1",
        ] {
            n += tx.execute(sql, params![now_s])?;
        }
        tx.commit()?;
        Ok(u64::try_from(n).unwrap_or(u64::MAX))
    }
}

/// Inserts a code or token row: its digest, grant, JSON record and expiry.
fn insert_secret<R: serde::Serialize>(
    tx: &Transaction<'_>,
    sql: &str,
    (hash, grant, expires_at): (&SecretHash, &GrantId, OffsetDateTime),
    record: &R,
) -> StoreResult<()> {
    tx.prepare_cached(sql)?.execute(params![
        hash.as_bytes().as_slice(),
        grant.as_str(),
        to_json(record)?,
        expires_at.unix_timestamp()
    ])?;
    Ok(())
}

fn apply_one(tx: &Transaction<'_>, e: &Effect) -> StoreResult<()> {
    match e {
        Effect::StoreCode(r) => insert_secret(
            tx,
            "INSERT INTO codes (hash, grant_id, data, taken, expires_at) VALUES (?1, ?2, ?3, 0, ?4)",
            (&r.hash, &r.grant, r.expires_at),
            r,
        )?,
        Effect::StoreAccessToken(r) => insert_secret(
            tx,
            "INSERT INTO access_tokens (hash, grant_id, data, expires_at) VALUES (?1, ?2, ?3, ?4)",
            (&r.hash, &r.grant, r.expires_at),
            r,
        )?,
        Effect::StoreRefreshToken(r) => insert_secret(
            tx,
            "INSERT INTO refresh_tokens (hash, grant_id, data, taken, expires_at) VALUES (?1, ?2, ?3, 0, ?4)",
            (&r.hash, &r.grant, r.expires_at),
            r,
        )?,
        Effect::RememberNonce(n) => {
            tx.prepare_cached(
                "INSERT OR REPLACE INTO nonces (client_id, nonce, expires_at) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![n.client_id, n.nonce, n.expires_at.unix_timestamp()])?;
        }
        Effect::RememberConsent(c) => {
            let old: Option<String> = tx
                .prepare_cached("SELECT scope FROM consents WHERE subject = ?1 AND client_id = ?2")?
                .query_row(params![c.subject, c.client_id], |r| r.get(0))
                .optional()?;
            let merged = match old {
                Some(old) => scope_union(&Scope::parse(&old).unwrap_or_default(), &c.scope),
                None => c.scope.clone(),
            };
            tx.prepare_cached(
                "INSERT OR REPLACE INTO consents (subject, client_id, scope) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![c.subject, c.client_id, merged.to_string()])?;
        }
        Effect::RevokeGrant(grant) => {
            let g = grant.as_str();
            tx.prepare_cached("DELETE FROM access_tokens WHERE grant_id = ?1")?
                .execute(params![g])?;
            tx.prepare_cached("DELETE FROM refresh_tokens WHERE grant_id = ?1")?
                .execute(params![g])?;
            tx.prepare_cached("DELETE FROM codes WHERE grant_id = ?1 AND taken = 0")?
                .execute(params![g])?;
            let until = OffsetDateTime::now_utc() + REVOCATION_MEMORY;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO revoked_grants (grant_id, expires_at) VALUES (?1, ?2)",
            )?
            .execute(params![g, until.unix_timestamp()])?;
        }
        // Effects added to the core later must be handled here before they can be produced.
        _ => {}
    }
    Ok(())
}

/// A write waiting for the group commit.
enum Job {
    Apply(Vec<Effect>),
    TakeCode(SecretHash),
    TakeRefresh(SecretHash),
}

/// What a job's caller gets back.
enum JobResult {
    Applied,
    Code(Taken<CodeRecord>),
    Refresh(Taken<RefreshTokenRecord>),
}

struct Queued {
    job: Job,
    reply: tokio::sync::oneshot::Sender<StoreResult<JobResult>>,
}

/// Clears the leader flag, committing what is left, even if the leading task is cancelled.
struct Leading<'a>(&'a SqliteStore);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        self.0.drain();
    }
}

impl SqliteStore {
    /// Queues a write and waits for the commit that carries it.
    ///
    /// Group commit: the first writer to find nobody committing leads. It yields once, so
    /// writers that are ready join the batch, then commits every queued job in one
    /// transaction. Each job is all-or-nothing (a revoked grant refuses only its own job);
    /// every caller hears back only after the commit, so nothing is answered before it is
    /// in the WAL.
    async fn submit(&self, job: Job) -> StoreResult<JobResult> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        lock_queue(&self.inner.queue).push(Queued { job, reply });
        if !self.inner.leader.swap(true, Ordering::AcqRel) {
            let leading = Leading(self);
            tokio::task::yield_now().await;
            drop(leading);
        }
        answer
            .await
            .map_err(|_| StoreError::Failed("the commit was abandoned".into()))?
    }

    /// Commits queued batches until the queue is empty, then gives up the lead.
    fn drain(&self) {
        loop {
            let batch = std::mem::take(&mut *lock_queue(&self.inner.queue));
            if !batch.is_empty() {
                self.commit_batch(batch);
                continue;
            }
            self.inner.leader.store(false, Ordering::Release);
            // A job queued after the take but before the release found a leader and is
            // waiting for it: lead again unless someone else just did.
            if lock_queue(&self.inner.queue).is_empty()
                || self.inner.leader.swap(true, Ordering::AcqRel)
            {
                return;
            }
        }
    }

    fn commit_batch(&self, batch: Vec<Queued>) {
        let mut conn = self.writer();
        let outcome = (|| -> StoreResult<Vec<StoreResult<JobResult>>> {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut results = Vec::with_capacity(batch.len());
            for q in &batch {
                match run_job(&tx, &q.job) {
                    // A job refused before it wrote anything leaves the batch intact.
                    Err(StoreError::GrantRevoked) => results.push(Err(StoreError::GrantRevoked)),
                    Err(e) => return Err(e),
                    Ok(r) => results.push(Ok(r)),
                }
            }
            tx.commit()?;
            Ok(results)
        })();
        drop(conn);
        match outcome {
            Ok(results) => {
                for (q, r) in batch.into_iter().zip(results) {
                    let _ = q.reply.send(r);
                }
            }
            Err(e) => {
                let message = e.to_string();
                for q in batch {
                    let _ = q.reply.send(Err(StoreError::Failed(message.clone())));
                }
            }
        }
    }
}

fn lock_queue(m: &Mutex<Vec<Queued>>) -> MutexGuard<'_, Vec<Queued>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn run_job(tx: &Transaction<'_>, job: &Job) -> StoreResult<JobResult> {
    match job {
        Job::TakeCode(hash) => Ok(JobResult::Code(take(
            tx,
            "UPDATE codes SET taken = 1 WHERE hash = ?1 AND taken = 0 RETURNING data",
            "SELECT grant_id FROM codes WHERE hash = ?1",
            hash,
        )?)),
        Job::TakeRefresh(hash) => Ok(JobResult::Refresh(take(
            tx,
            "UPDATE refresh_tokens SET taken = 1 WHERE hash = ?1 AND taken = 0 RETURNING data",
            "SELECT grant_id FROM refresh_tokens WHERE hash = ?1",
            hash,
        )?)),
        Job::Apply(effects) => {
            // Tokens must not land for a grant revoked meanwhile (a code replay racing the
            // first exchange). One check per grant, before any write of the job; codes start
            // a grant minted this very request, so there is nothing to check for them.
            let mut checked: Vec<&GrantId> = Vec::with_capacity(1);
            for e in effects {
                let grant = match e {
                    Effect::StoreAccessToken(r) => &r.grant,
                    Effect::StoreRefreshToken(r) => &r.grant,
                    _ => continue,
                };
                if !checked.contains(&grant) {
                    let revoked: Option<i64> = tx
                        .prepare_cached("SELECT 1 FROM revoked_grants WHERE grant_id = ?1")?
                        .query_row(params![grant.as_str()], |r| r.get(0))
                        .optional()?;
                    if revoked.is_some() {
                        return Err(StoreError::GrantRevoked);
                    }
                    checked.push(grant);
                }
            }
            for e in effects {
                apply_one(tx, e)?;
            }
            Ok(JobResult::Applied)
        }
    }
}
