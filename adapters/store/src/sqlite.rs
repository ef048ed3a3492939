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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oidc_flow::authorize::ParkedMark;
use oidc_flow::effect::REVOKED_GRANT_MEMORY;
use oidc_flow::keys::Algorithm;
use oidc_flow::parking::ParkingSecret;
use oidc_flow::{
    AccessTokenRecord, Authentication, Client, CodeRecord, Effect, GrantId, NonceRecord,
    RefreshTokenRecord, Scope, SecretHash, Taken, UserInfo,
};
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use time::OffsetDateTime;

use crate::client_cache::ClientCache;
use crate::datakey::{DATA_KEY_ENV, SEALED_SECRET};
use crate::{
    Admin, DataKey, EndedSession, KeyState, SESSION_TOUCH_INTERVAL, Store, StoreError, StoreResult,
    StoredKey, TAKEN_CODE_GRACE, UserRecord, scope_covers, scope_union, session_alive,
};

/// Most read-only connections beside the writer (file databases only).
const MAX_READERS: usize = 2;

/// The schema migrations, applied in order; `PRAGMA user_version` counts those applied.
const MIGRATIONS: [&str; 3] = [
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_sessions_keys.sql"),
    include_str!("../migrations/0003_sealed_parking.sql"),
];

struct Inner {
    writer: Mutex<Connection>,
    /// Writes waiting for the next group commit.
    queue: Mutex<Vec<Queued>>,
    /// Whether a task is committing the queue.
    leader: AtomicBool,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    data_key: DataKey,
    clients: ClientCache,
}

/// A store in one SQLite file.
///
/// Client secrets kept in clear by the core (HS* clients) are encrypted at rest with the
/// [`DataKey`] found by [`DataKey::from_env_or_file`]: the `OIDC_FLOW_DATA_KEY` variable,
/// or the file `<database>.key` beside the database (created on first use).
///
/// Clients are cached in memory after their first lookup: they are read on every request.
/// Triggers count every change to the clients table; the cache reads that counter at most
/// once a second and is emptied when it moved, so a client changed or removed by another
/// process (the command line) is seen within a second.
///
/// Signing keys are sealed with the data key too; a database whose keys were stored in
/// clear (before this) has them sealed on open. A new database file is created readable
/// by its owner only (0600), and SQLite gives its `-wal` and `-shm` files the same mode; an
/// existing file readable by others is restricted to 0600 on open.
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
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
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
        let (data_key, new_key) = DataKey::from_env_or_file(key_file.as_deref())?;
        if let Some(p) = &path {
            private_file(p)
                .map_err(|e| StoreError::Failed(format!("cannot create {}: {e}", p.display())))?;
        }
        let mut writer = match &path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        if path.is_some() {
            let mode: String =
                writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Failed(format!("WAL mode refused (got {mode})")));
            }
        }
        configure(&writer)?;
        migrate(&mut writer)?;
        match check_data_key(&writer, &data_key) {
            // A key made just now opens nothing sealed before: the key file was lost. Keeping
            // the new one would make restoring the right one harder; leave things as they were.
            Err(StoreError::DataKey(_)) if new_key => {
                if let Some(k) = &key_file {
                    let _ = std::fs::remove_file(k);
                }
                return Err(StoreError::DataKey(format!(
                    "the database holds sealed keys or secrets but its data key is missing: \
                     restore {} from your backup or set {DATA_KEY_ENV}",
                    key_file
                        .as_ref()
                        .map_or_else(|| "the key file".into(), |k| k.display().to_string())
                )));
            }
            other => other?,
        }
        seal_clear_keys(&mut writer, &data_key)?;
        if let Some(p) = &path {
            // SQLite made them with the database's mode; an older -wal/-shm may be wider.
            for suffix in ["-wal", "-shm"] {
                let mut side = p.clone();
                side.as_mut_os_string().push(suffix);
                if side.exists() {
                    private_file(&side).map_err(|e| {
                        StoreError::Failed(format!("cannot restrict {}: {e}", side.display()))
                    })?;
                }
            }
        }
        let clients_version = changes(&writer, "clients")?;
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
            clients: ClientCache::new(clients_version),
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

    /// Empties the client cache if the clients changed since it was filled (checked at most
    /// once per [`CLIENT_CACHE_CHECK`]).
    fn refresh_client_cache(&self) -> StoreResult<()> {
        if self.inner.clients.check_due() {
            self.inner
                .clients
                .observe(changes(&self.reader(), "clients")?);
        }
        Ok(())
    }

    fn forget_clients(&self) {
        self.inner.clients.clear();
    }

    fn seal_client(&self, client: &Client) -> StoreResult<String> {
        self.inner.data_key.seal_client(client)
    }

    fn open_client(&self, client_id: &str, data: &str) -> StoreResult<Client> {
        self.inner.data_key.open_client(client_id, data)
    }

    fn load_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        let data: Option<String> = self
            .reader()
            .prepare_cached("SELECT data FROM clients WHERE client_id = ?1")?
            .query_row(params![client_id], |r| r.get(0))
            .optional()?;
        let Some(data) = data else { return Ok(None) };
        Ok(Some(self.open_client(client_id, &data)?))
    }
}

/// The value of change counter `name` (bumped by triggers on its table).
fn changes(conn: &Connection, name: &str) -> StoreResult<i64> {
    Ok(conn
        .prepare_cached("SELECT n FROM change_counters WHERE name = ?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

/// Creates `path` empty with mode 0600 if it does not exist, and takes group and other
/// permissions off it if it does: the database holds sealed keys and live sessions.
#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let mode = std::fs::metadata(path)?.permissions().mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn private_file(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

/// Fails unless `key` opens what the database already holds sealed (a sample signing key
/// and a sample client secret): a wrong `OIDC_FLOW_DATA_KEY` or key file is refused when
/// the store opens, before it seals anything new under the wrong key, not at the first
/// request that needs the secret.
fn check_data_key(conn: &Connection, key: &DataKey) -> StoreResult<()> {
    let signing: Option<(String, String)> = conn
        .query_row(
            "SELECT kid, sealed_pem FROM signing_keys WHERE sealed_pem IS NOT NULL LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let pattern = format!("%\"{SEALED_SECRET}\"%");
    let client: Option<(String, String)> = conn
        .query_row(
            "SELECT client_id, data FROM clients WHERE data LIKE ?1 LIMIT 1",
            params![pattern],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    key.check_opens(signing, client)
}

/// Seals the clear PEM of signing keys stored before keys were sealed, overwriting the
/// clear text in the file (secure_delete) and emptying the WAL that held it.
fn seal_clear_keys(conn: &mut Connection, key: &DataKey) -> StoreResult<()> {
    let clear: Vec<(String, String)> = {
        let mut stmt = conn.prepare("SELECT kid, pem FROM signing_keys WHERE pem <> ''")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    if clear.is_empty() {
        return Ok(());
    }
    conn.pragma_update(None, "secure_delete", "ON")?;
    let tx = conn.transaction()?;
    for (kid, pem) in &clear {
        let sealed = key.seal_signing_key(kid, pem)?;
        tx.execute(
            "UPDATE signing_keys SET sealed_pem = ?2, pem = '' WHERE kid = ?1",
            params![kid, sealed],
        )?;
    }
    tx.commit()?;
    // Rewrite the file without the free pages that held the clear text, and empty the WAL:
    // its old frames still hold the clear rows until a TRUNCATE checkpoint zeroes it. Another
    // connection (a store closed just before, whose checkpoint thread has not ended yet) can
    // keep the checkpoint from completing for a moment: try again rather than leave them.
    conn.execute_batch("VACUUM")?;
    let mut emptied = false;
    // Up to 10 s: a loaded machine may take that long to end the other connection's thread.
    for _ in 0..500 {
        let (busy, frames): (i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        if busy == 0 && frames <= 0 {
            emptied = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    conn.pragma_update(None, "secure_delete", "OFF")?;
    if !emptied {
        return Err(StoreError::Failed(
            "the keys were sealed but the WAL could not be emptied of their clear copies: \
             stop every other process using the database and start again"
                .into(),
        ));
    }
    Ok(())
}

/// WAL frames (pages) past which the checkpointer also rewinds the WAL.
const WAL_RESET_FRAMES: i64 = 2000;
/// Bytes the WAL file is cut back to when SQLite rewinds it. Above what 100 ms of commits
/// write at full load (~4,000 frames of 4 KiB pages), so the steady state rewrites the
/// same file instead of cutting it and growing it again each time.
const WAL_SIZE_LIMIT: i64 = 32 * 1024 * 1024;

/// Starts the thread that checkpoints the WAL into the database file, on its own
/// connection, until the store is dropped.
///
/// Every 100 ms a PASSIVE checkpoint copies what it can without blocking the writer. Under
/// a steady stream of commits that never catches up entirely, and SQLite only rewinds a WAL
/// that was copied entirely, so the WAL would grow without end: once it holds more than
/// [`WAL_RESET_FRAMES`] frames, a RESTART checkpoint waits for the writer, copies the few
/// frames left and makes the next commit write from the start of the file again. The
/// writer pauses for that remainder only.
///
/// RESTART rather than TRUNCATE: an emptied file makes every later frame extend it, and
/// each such write (frames are 4,120 bytes, across filesystem blocks) had the kernel zero
/// fresh page-cache pages — 12 % of the server's CPU in a client credentials load, plus the
/// truncations. Rewritten in place, the WAL's pages stay cached; `journal_size_limit` keeps
/// the file near [`WAL_SIZE_LIMIT`] if a burst ever grew it.
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
                    let _ = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
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
        self.refresh_client_cache()?;
        if let Some(c) = self.inner.clients.get(client_id) {
            return Ok(Some(c));
        }
        let generation = self.inner.clients.generation();
        let client = self.load_client(client_id)?;
        if let Some(c) = &client {
            self.inner.clients.insert(c, generation);
        }
        Ok(client)
    }

    async fn resource_server(&self, resource: &str) -> StoreResult<Option<Client>> {
        let found: Option<String> = self
            .reader()
            .prepare_cached(
                "SELECT client_id FROM clients WHERE json_extract(data, '$.resource') = ?1 \
                 ORDER BY client_id LIMIT 1",
            )?
            .query_row(params![resource], |r| r.get(0))
            .optional()?;
        match found {
            Some(client_id) => self.client(&client_id).await,
            None => Ok(None),
        }
    }

    async fn add_client(&self, client: &Client) -> StoreResult<()> {
        let data = self.seal_client(client)?;
        self.writer()
            .prepare_cached("INSERT INTO clients (client_id, data) VALUES (?1, ?2)")?
            .execute(params![client.client_id, data])
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

    async fn refresh_token(&self, hash: &SecretHash) -> StoreResult<Option<RefreshTokenRecord>> {
        let data: Option<String> = self
            .reader()
            .prepare_cached("SELECT data FROM refresh_tokens WHERE hash = ?1 AND taken = 0")?
            .query_row(params![hash.as_bytes().as_slice()], |r| r.get(0))
            .optional()?;
        data.map(|d| from_json(&d)).transpose()
    }

    async fn access_token(&self, hash: &SecretHash) -> StoreResult<Option<AccessTokenRecord>> {
        let data: Option<String> = self
            .reader()
            .prepare_cached("SELECT data FROM access_tokens WHERE hash = ?1")?
            .query_row(params![hash.as_bytes().as_slice()], |r| r.get(0))
            .optional()?;
        data.map(|d| from_json(&d)).transpose()
    }

    async fn grant_revoked(&self, grant: &GrantId) -> StoreResult<bool> {
        let found: Option<i64> = self
            .reader()
            .prepare_cached("SELECT 1 FROM revoked_grants WHERE grant_id = ?1")?
            .query_row(params![grant.as_str()], |r| r.get(0))
            .optional()?;
        Ok(found.is_some())
    }

    async fn claim_nonce(&self, nonce: &NonceRecord, now: OffsetDateTime) -> StoreResult<bool> {
        // One statement under the writer's lock: an expired record is replaced, a live one
        // is left alone and nothing changes.
        let changed = self
            .writer()
            .prepare_cached(
                "INSERT INTO nonces (client_id, nonce, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (client_id, nonce) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE nonces.expires_at <= ?4",
            )?
            .execute(params![
                nonce.client_id,
                nonce.nonce,
                nonce.expires_at.unix_timestamp(),
                now.unix_timestamp()
            ])?;
        Ok(changed == 1)
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

    async fn claim_parked(&self, mark: &ParkedMark) -> StoreResult<bool> {
        // Marks outlive the sealed value they belong to, so a conflict is always a reuse.
        let changed = self
            .writer()
            .prepare_cached("INSERT OR IGNORE INTO parked_used (hash, expires_at) VALUES (?1, ?2)")?
            .execute(params![
                mark.hash.as_bytes().as_slice(),
                mark.expires_at.unix_timestamp()
            ])?;
        Ok(changed == 1)
    }

    fn parking_secret(&self) -> &ParkingSecret {
        self.inner.data_key.parking_secret()
    }

    async fn put_session(
        &self,
        id: &SecretHash,
        session: &Authentication,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        self.writer()
            .prepare_cached(
                "INSERT OR REPLACE INTO sessions (id, data, expires_at, sid, subject, last_used) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                id.as_bytes().as_slice(),
                to_json(session)?,
                expires_at.unix_timestamp(),
                session.sid,
                session.subject,
                session.auth_time.unix_timestamp()
            ])?;
        Ok(())
    }

    async fn session(
        &self,
        id: &SecretHash,
        now: OffsetDateTime,
        idle_timeout: time::Duration,
    ) -> StoreResult<Option<Authentication>> {
        let key = id.as_bytes().as_slice();
        let row: Option<(String, i64, i64)> = self
            .reader()
            .prepare_cached("SELECT data, expires_at, last_used FROM sessions WHERE id = ?1")?
            .query_row(params![key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let Some((data, expires_at, last_used)) = row else {
            return Ok(None);
        };
        let at =
            |t: i64| OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let last_used = at(last_used);
        if !session_alive(last_used, at(expires_at), now, idle_timeout) {
            return Ok(None);
        }
        if now - last_used > SESSION_TOUCH_INTERVAL {
            self.writer()
                .prepare_cached("UPDATE sessions SET last_used = ?2 WHERE id = ?1")?
                .execute(params![key, now.unix_timestamp()])?;
        }
        Ok(Some(from_json(&data)?))
    }

    async fn session_clients(&self, sid: &str) -> StoreResult<Vec<String>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT client_id FROM session_clients WHERE sid = ?1 ORDER BY client_id",
        )?;
        let rows = stmt.query_map(params![sid], |r| r.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    async fn end_sessions_of(&self, subject: &str) -> StoreResult<Vec<EndedSession>> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let sids: Vec<String> = {
            let mut stmt = tx.prepare_cached(
                "SELECT DISTINCT sid FROM sessions WHERE subject = ?1 AND sid IS NOT NULL ORDER BY sid",
            )?;
            let rows = stmt.query_map(params![subject], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        tx.prepare_cached("DELETE FROM sessions WHERE subject = ?1")?
            .execute(params![subject])?;
        let mut ended = Vec::with_capacity(sids.len());
        for sid in sids {
            let clients: Vec<String> = {
                let mut stmt = tx.prepare_cached(
                    "DELETE FROM session_clients WHERE sid = ?1 RETURNING client_id",
                )?;
                let rows = stmt.query_map(params![sid], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let mut clients = clients;
            clients.sort();
            ended.push((sid, clients));
        }
        tx.commit()?;
        Ok(ended)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT kid, alg, sealed_pem, created_at, rotated_at FROM signing_keys \
             ORDER BY created_at, kid",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<i64>>(4)?,
            ))
        })?;
        let at =
            |t: i64| OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut out = Vec::new();
        for row in rows {
            let (kid, alg, sealed, created_at, rotated_at) = row?;
            let alg = Algorithm::from_name(&alg).ok_or_else(|| {
                StoreError::Corrupt(serde::de::Error::custom(format!("unknown alg {alg}")))
            })?;
            let sealed = sealed.ok_or_else(|| {
                StoreError::Corrupt(serde::de::Error::custom(format!("key {kid} has no PEM")))
            })?;
            let pem = self.inner.data_key.open_signing_key(&kid, &sealed)?;
            out.push(StoredKey {
                kid,
                alg,
                pem,
                created_at: at(created_at),
                state: match rotated_at {
                    None => KeyState::Active,
                    Some(t) => KeyState::Rotated { at: at(t) },
                },
            });
        }
        Ok(out)
    }

    async fn add_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        let sealed = self.inner.data_key.seal_signing_key(&key.kid, &key.pem)?;
        self.writer()
            .prepare_cached(
                "INSERT INTO signing_keys (kid, alg, pem, sealed_pem, created_at, rotated_at) \
                 VALUES (?1, ?2, '', ?3, ?4, ?5)",
            )?
            .execute(params![
                key.kid,
                key.alg.as_str(),
                sealed,
                key.created_at.unix_timestamp(),
                rotated_at(key.state)
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
            "DELETE FROM parked_used WHERE expires_at <= ?1",
            "DELETE FROM sessions WHERE expires_at <= ?1",
        ] {
            n += tx.execute(sql, params![now_s])?;
        }
        n += tx.execute(
            "DELETE FROM session_clients WHERE sid NOT IN \
             (SELECT sid FROM sessions WHERE sid IS NOT NULL)",
            [],
        )?;
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
            // Remembered as long as an access token of the grant can live (JWT access tokens
            // are not stored: this row is their revocation), and so tokens racing it are refused.
            let until = OffsetDateTime::now_utc() + REVOKED_GRANT_MEMORY;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO revoked_grants (grant_id, expires_at) VALUES (?1, ?2)",
            )?
            .execute(params![g, until.unix_timestamp()])?;
        }
        Effect::JoinSession { sid, client_id } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO session_clients (sid, client_id) VALUES (?1, ?2)",
            )?
            .execute(params![sid, client_id])?;
        }
        Effect::EndSession { sid } => {
            tx.prepare_cached("DELETE FROM sessions WHERE sid = ?1")?
                .execute(params![sid])?;
            tx.prepare_cached("DELETE FROM session_clients WHERE sid = ?1")?
                .execute(params![sid])?;
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

fn rotated_at(state: KeyState) -> Option<i64> {
    match state {
        KeyState::Active => None,
        KeyState::Rotated { at } => Some(at.unix_timestamp()),
    }
}

impl Admin for SqliteStore {
    async fn clients(&self) -> StoreResult<Vec<Client>> {
        let rows: Vec<(String, String)> = {
            let conn = self.reader();
            let mut stmt =
                conn.prepare_cached("SELECT client_id, data FROM clients ORDER BY client_id")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        rows.iter()
            .map(|(id, data)| self.open_client(id, data))
            .collect()
    }

    async fn update_client(&self, client: &Client) -> StoreResult<bool> {
        let data = self.seal_client(client)?;
        let n = self
            .writer()
            .prepare_cached("UPDATE clients SET data = ?2 WHERE client_id = ?1")?
            .execute(params![client.client_id, data])?;
        self.forget_clients();
        Ok(n == 1)
    }

    async fn remove_client(&self, client_id: &str) -> StoreResult<bool> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM consents WHERE client_id = ?1",
            params![client_id],
        )?;
        let n = tx.execute(
            "DELETE FROM clients WHERE client_id = ?1",
            params![client_id],
        )?;
        tx.commit()?;
        drop(conn);
        self.forget_clients();
        Ok(n == 1)
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT username, subject, password_hash, claims FROM users ORDER BY username",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (username, subject, password_hash, claims) = row?;
            out.push(UserRecord {
                username,
                subject,
                password_hash,
                claims: from_json(&claims)?,
            });
        }
        Ok(out)
    }

    async fn update_user(&self, user: &UserRecord) -> StoreResult<bool> {
        let n = self
            .writer()
            .prepare_cached("UPDATE users SET password_hash = ?2, claims = ?3 WHERE username = ?1")?
            .execute(params![
                user.username,
                user.password_hash,
                to_json(&user.claims)?
            ])?;
        Ok(n == 1)
    }

    async fn remove_user(&self, username: &str) -> StoreResult<bool> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM consents WHERE subject = (SELECT subject FROM users WHERE username = ?1)",
            params![username],
        )?;
        let n = tx.execute("DELETE FROM users WHERE username = ?1", params![username])?;
        tx.commit()?;
        Ok(n == 1)
    }

    async fn set_key_state(&self, kid: &str, state: KeyState) -> StoreResult<bool> {
        let n = self
            .writer()
            .prepare_cached("UPDATE signing_keys SET rotated_at = ?2 WHERE kid = ?1")?
            .execute(params![kid, rotated_at(state)])?;
        Ok(n == 1)
    }

    async fn remove_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let n = self
            .writer()
            .prepare_cached("DELETE FROM signing_keys WHERE kid = ?1")?
            .execute(params![kid])?;
        Ok(n == 1)
    }
}
