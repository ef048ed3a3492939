//! The PostgreSQL backend: one database that any number of `oidc-flow serve` nodes share.
//!
//! Every operation is one round trip, and one statement where it can be: a code is taken
//! by one `UPDATE … RETURNING` that also reports the grant of a code taken before; a token
//! request's tokens are stored by one call of `oidc_flow_store_tokens`; effects that need
//! no grant lock (a code, a consent, a session's client) go as one statement of
//! data-modifying CTEs; any other set of effects is one transaction whose BEGIN,
//! statements and COMMIT are pipelined.
//!
//! What SQLite serialises with its single writer, PostgreSQL serialises per grant: storing
//! tokens and revoking their grant take the same transaction-scoped advisory lock, so a
//! token is never stored for a grant revoked meanwhile on another node. Purges take a
//! session-wide advisory lock with `pg_try_advisory_xact_lock`, so one node purges at a
//! time. Schema migrations run under an advisory lock too, so nodes started together apply
//! them once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use oidc_flow::authorize::ParkedMark;
use oidc_flow::effect::REVOKED_GRANT_MEMORY;
use oidc_flow::keys::Algorithm;
use oidc_flow::parking::ParkingSecret;
use oidc_flow::{
    AccessTokenRecord, Authentication, Client, CodeRecord, Effect, GrantId, NonceRecord,
    RefreshTokenRecord, Scope, SecretHash, Taken, UserInfo,
};
use time::OffsetDateTime;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::client_cache::ClientCache;
use crate::datakey::{DATA_KEY_ENV, SEALED_SECRET};
use crate::{
    Admin, DataKey, EndedSession, KeyState, SESSION_TOUCH_INTERVAL, Store, StoreError, StoreResult,
    StoredKey, TAKEN_CODE_GRACE, UserRecord, scope_covers, session_alive,
};

/// Environment variable with the most connections a node keeps to the database.
pub const POOL_SIZE_ENV: &str = "OIDC_FLOW_DATABASE_POOL";

/// The schema migrations, applied in order; the table `oidc_flow_schema` counts those
/// applied.
const MIGRATIONS: [&str; 3] = [
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_guard_grants.sql"),
    include_str!("../migrations/postgres/0003_store_tokens.sql"),
];
/// The SQLSTATE `oidc_flow_guard_grants` raises.
const GRANT_REVOKED_STATE: &str = "OF001";

/// Advisory lock (one 64-bit key) held while migrations run.
const MIGRATION_LOCK: i64 = 0x6f69_6463_666c_0001;
/// Advisory lock held by the node that purges.
const PURGE_LOCK: i64 = 0x6f69_6463_666c_0002;
/// The first key of the two-key advisory locks taken per grant (the second is the hash of
/// the grant id); two-key locks never collide with the one-key locks above.
const GRANT_LOCK_CLASS: i32 = 0x6f69_6467;

/// How long a new connection may take before the store gives up on it, unless the URL
/// says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request waits for a free connection of the pool.
const POOL_WAIT: Duration = Duration::from_secs(30);

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => Self::Postgres(e),
            other => Self::Failed(format!("database connection pool: {other}")),
        }
    }
}

/// A driver error with its cause: tokio-postgres says "db error" or "error connecting to
/// server" and keeps the server's message or the socket's error as the source.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Whether `text` can be a TEXT value: PostgreSQL refuses the NUL character, which no
/// stored name or id contains, so a lookup of one finds nothing instead of failing.
fn storable(text: &str) -> bool {
    !text.contains('\0')
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn duplicate(what: String) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| {
        if is_unique_violation(&e) {
            StoreError::Duplicate(what)
        } else {
            e.into()
        }
    }
}

struct Inner {
    pool: Pool,
    data_key: DataKey,
    clients: ClientCache,
    consents: ConsentCache,
}

/// Most consents [`ConsentCache`] keeps; it starts over when full.
const CONSENT_CACHE_ENTRIES: usize = 10_000;

/// Consents this node read recently, by subject and client: every authorization request of
/// a signed-in end-user asks, and a round trip to the database costs more than the rest of
/// the check. Consents only grow, except when their client or user is removed, which
/// every node sees within [`crate::client_cache::CLIENT_CACHE_CHECK`] as it sees the client
/// itself: entries live no longer than that, and this node's own changes empty it.
#[derive(Default)]
struct ConsentCache {
    entries: std::sync::RwLock<std::collections::HashMap<(String, String), (Scope, Instant)>>,
    /// Bumped by every clear: a consent read before a removal is not cached after it.
    generation: std::sync::atomic::AtomicU64,
}

impl ConsentCache {
    fn get(&self, subject: &str, client_id: &str) -> Option<Scope> {
        let entries = self.entries.read().ok()?;
        let (scope, read_at) = entries.get(&(subject.to_owned(), client_id.to_owned()))?;
        (read_at.elapsed() < crate::client_cache::CLIENT_CACHE_CHECK).then(|| scope.clone())
    }

    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Caches a consent read after [`ConsentCache::generation`] said `generation`, unless
    /// the cache was cleared since.
    fn put(&self, subject: &str, client_id: &str, scope: Scope, generation: u64) {
        if let Ok(mut entries) = self.entries.write()
            && self.generation() == generation
        {
            if entries.len() >= CONSENT_CACHE_ENTRIES {
                entries.clear();
            }
            entries.insert(
                (subject.to_owned(), client_id.to_owned()),
                (scope, Instant::now()),
            );
        }
    }

    fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            self.generation
                .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
            entries.clear();
        }
    }
}

/// A store in a PostgreSQL database, shared by every node that serves one provider.
///
/// Like [`crate::SqliteStore`], it seals client secrets and signing keys with the
/// [`DataKey`] and caches clients (a change made by another node or the command line is
/// seen within a second). The data key cannot live beside a database that many machines
/// share: [`PostgresStore::open`] takes it from `OIDC_FLOW_DATA_KEY`, which must be the
/// same on every node.
///
/// The URL is libpq's (`postgres://user:password@host:port/database?sslmode=require`).
/// With `sslmode=require` the connection is TLS (rustls) and the server's certificate is
/// verified against the platform's trust store (libpq's `verify-full`); without it, the
/// connection is plain, for a database on the same host or a private network. The pool
/// keeps up to [`POOL_SIZE_ENV`] connections (default: 4 per core, at least 8).
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.inner.pool.status())
            .finish_non_exhaustive()
    }
}

/// Whether `url` names a PostgreSQL database (`postgres://` or `postgresql://`).
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn pool_size() -> StoreResult<usize> {
    match std::env::var(POOL_SIZE_ENV) {
        Ok(text) => match text.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(StoreError::Failed(format!(
                "{POOL_SIZE_ENV} must be a positive number of connections, not {text:?}"
            ))),
        },
        Err(_) => {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            Ok((cores * 4).max(8))
        }
    }
}

fn tls() -> StoreResult<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls_platform_verifier::BuilderVerifierExt as _;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map_err(|e| StoreError::Failed(format!("TLS to the database: {e}")))?
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PostgresStore {
    /// Connects to the database at `url`, brings its schema up to date, and checks that the
    /// data key from `OIDC_FLOW_DATA_KEY` opens what it holds sealed.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let text = std::env::var(DATA_KEY_ENV).map_err(|_| {
            StoreError::DataKey(format!(
                "a PostgreSQL database is shared by every node, so its data key cannot live \
                 beside it: set {DATA_KEY_ENV} to the same 32 random bytes, base64url, on \
                 every node and command (e.g. `openssl rand 32 | basenc --base64url | tr -d =`)"
            ))
        })?;
        Self::open_with_key(url, DataKey::from_text(&text)?).await
    }

    /// [`PostgresStore::open`] with the data key given.
    pub async fn open_with_key(url: &str, data_key: DataKey) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Failed(format!("not a PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("oidc-flow");
        // Every guarantee here (takes that see a concurrent take, the grant guard's check
        // after its lock, migrations after theirs) is written for READ COMMITTED: a
        // database or role whose default is stricter must not change it. A startup option
        // wins over ALTER DATABASE/ROLE settings.
        let options = format!(
            "{} -c default_transaction_isolation=read\\ committed",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim_start());
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == SslMode::Require {
            Manager::from_config(config, tls()?, manager_config)
        } else {
            // libpq's default (`prefer`) would try TLS without checking the certificate;
            // this store either verifies it (`sslmode=require`) or does not use TLS.
            config.ssl_mode(SslMode::Disable);
            Manager::from_config(config, NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size()?)
            .wait_timeout(Some(POOL_WAIT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Failed(format!("database connection pool: {e}")))?;
        migrate(&pool).await?;
        let conn = pool.get().await?;
        let signing = conn
            .query_opt("SELECT kid, sealed_pem FROM signing_keys LIMIT 1", &[])
            .await?
            .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?;
        let pattern = format!("%\"{SEALED_SECRET}\"%");
        let client = conn
            .query_opt(
                "SELECT client_id, data FROM clients WHERE data LIKE $1 LIMIT 1",
                &[&pattern],
            )
            .await?
            .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
            .transpose()?;
        data_key.check_opens(signing, client)?;
        let version = changes(&conn, "clients").await?;
        drop(conn);
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                data_key,
                clients: ClientCache::new(version),
                consents: ConsentCache::default(),
            }),
        })
    }

    async fn conn(&self) -> StoreResult<deadpool_postgres::Object> {
        Ok(self.inner.pool.get().await?)
    }

    /// Runs `sql` with `params` and returns the first row, if any (a prepared statement
    /// cached on the connection).
    async fn row(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Option<Row>> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await?;
        Ok(conn.query_opt(&stmt, params).await?)
    }

    /// Runs `sql` with `params` and returns how many rows it changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await?;
        Ok(conn.execute(&stmt, params).await?)
    }

    async fn load_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        if !storable(client_id) {
            return Ok(None);
        }
        let Some(row) = self
            .row(
                "SELECT data FROM clients WHERE client_id = $1",
                &[&client_id],
            )
            .await?
        else {
            return Ok(None);
        };
        let data: String = row.try_get(0)?;
        Ok(Some(self.inner.data_key.open_client(client_id, &data)?))
    }

    /// Takes a single-use row (a code or a refresh token) atomically: `sql` marks it taken
    /// and returns its record if it was not, and its grant either way.
    async fn take<R: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        hash: &SecretHash,
    ) -> StoreResult<Taken<R>> {
        let key = hash.as_bytes().as_slice();
        let Some(row) = self.row(sql, &[&key]).await? else {
            return Ok(Taken::Unknown);
        };
        let data: Option<String> = row.try_get(0)?;
        Ok(match data {
            Some(data) => Taken::Fresh(serde_json::from_str(&data)?),
            None => Taken::AlreadyTaken(GrantId::from_stored(row.try_get::<_, String>(1)?)),
        })
    }
}

/// The value of change counter `name` (bumped by triggers on its table).
async fn changes(conn: &deadpool_postgres::Object, name: &str) -> StoreResult<i64> {
    let stmt = conn
        .prepare_cached("SELECT n FROM change_counters WHERE name = $1")
        .await?;
    Ok(match conn.query_opt(&stmt, &[&name]).await? {
        Some(row) => row.try_get(0)?,
        None => 0,
    })
}

/// Applies the migrations not yet applied, under [`MIGRATION_LOCK`].
async fn migrate(pool: &Pool) -> StoreResult<()> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let fresh = tx
        .query_one("SELECT to_regclass('oidc_flow_schema') IS NULL", &[])
        .await?
        .try_get::<_, bool>(0)?;
    if fresh {
        tx.batch_execute("CREATE TABLE oidc_flow_schema (version INTEGER NOT NULL)")
            .await?;
    }
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM oidc_flow_schema",
            &[],
        )
        .await?
        .try_get(0)?;
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Failed(format!(
            "the database's schema is version {applied}, newer than this oidc-flow knows \
             ({}): upgrade oidc-flow",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.batch_execute(sql).await?;
        let version = i32::try_from(i + 1).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO oidc_flow_schema (version) VALUES ($1)",
            &[&version],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A statement and its owned parameters, to be pipelined in a transaction.
type Statement = (&'static str, Vec<Box<dyn ToSql + Sync + Send>>);

fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn at(t: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn secret_row<R: serde::Serialize>(
    sql: &'static str,
    (hash, grant, expires_at): (&SecretHash, &GrantId, OffsetDateTime),
    record: &R,
) -> StoreResult<Statement> {
    Ok((
        sql,
        vec![
            Box::new(hash.as_bytes().to_vec()),
            Box::new(grant.as_str().to_owned()),
            Box::new(serde_json::to_string(record)?),
            Box::new(unix(expires_at)),
        ],
    ))
}

/// The one statement that applies effect `e`.
fn effect_statement(e: &Effect) -> StoreResult<Option<Statement>> {
    Ok(Some(match e {
        Effect::StoreCode(r) => secret_row(
            "INSERT INTO codes (hash, grant_id, data, expires_at) VALUES ($1, $2, $3, $4)",
            (&r.hash, &r.grant, r.expires_at),
            r,
        )?,
        Effect::StoreAccessToken(r) => secret_row(
            "INSERT INTO access_tokens (hash, grant_id, data, expires_at) VALUES ($1, $2, $3, $4)",
            (&r.hash, &r.grant, r.expires_at),
            r,
        )?,
        Effect::StoreRefreshToken(r) => secret_row(
            "INSERT INTO refresh_tokens (hash, grant_id, data, expires_at) VALUES ($1, $2, $3, $4)",
            (&r.hash, &r.grant, r.expires_at),
            r,
        )?,
        // Consents accumulate: the stored scope's tokens first, then the new ones, each
        // once (as `scope_union` does), in the same statement so two concurrent consents
        // both count.
        Effect::RememberConsent(c) => (
            "INSERT INTO consents (subject, client_id, scope) VALUES ($1, $2, $3) \
             ON CONFLICT (subject, client_id) DO UPDATE SET scope = ( \
                 SELECT string_agg(token, ' ' ORDER BY first) FROM ( \
                     SELECT token, MIN(position) AS first FROM unnest(string_to_array( \
                         consents.scope || ' ' || EXCLUDED.scope, ' ')) \
                         WITH ORDINALITY AS t(token, position) \
                     WHERE token <> '' GROUP BY token) AS merged)",
            vec![
                Box::new(c.subject.clone()),
                Box::new(c.client_id.clone()),
                Box::new(c.scope.to_string()),
            ],
        ),
        // Remembered as long as an access token of the grant can live (JWT access tokens
        // are not stored: this row is their revocation), and so tokens racing it are refused.
        Effect::RevokeGrant(grant) => (
            "WITH access AS (DELETE FROM access_tokens WHERE grant_id = $1), \
                  refresh AS (DELETE FROM refresh_tokens WHERE grant_id = $1), \
                  code AS (DELETE FROM codes WHERE grant_id = $1 AND NOT taken) \
             INSERT INTO revoked_grants (grant_id, expires_at) VALUES ($1, $2) \
             ON CONFLICT (grant_id) DO UPDATE SET expires_at = EXCLUDED.expires_at",
            vec![
                Box::new(grant.as_str().to_owned()),
                Box::new(unix(OffsetDateTime::now_utc() + REVOKED_GRANT_MEMORY)),
            ],
        ),
        Effect::JoinSession { sid, client_id } => (
            "INSERT INTO session_clients (sid, client_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            vec![Box::new(sid.clone()), Box::new(client_id.clone())],
        ),
        Effect::EndSession { sid } => (
            "WITH ended AS (DELETE FROM sessions WHERE sid = $1) \
             DELETE FROM session_clients WHERE sid = $1",
            vec![Box::new(sid.clone())],
        ),
        // Effects added to the core later must be handled here before they can be produced.
        _ => return Ok(None),
    }))
}

/// `statements` as one: each but the last a data-modifying CTE of the last, their
/// parameters numbered on. `None` unless each is a plain INSERT into a table of its own
/// (two upserts of one table in one statement could meet the same row, which PostgreSQL
/// refuses, and a statement that has a WITH of its own cannot be nested).
fn one_statement(statements: &[Statement]) -> Option<std::borrow::Cow<'static, str>> {
    if let [(sql, _)] = statements {
        return Some(std::borrow::Cow::Borrowed(sql));
    }
    let mut tables: Vec<&str> = Vec::with_capacity(statements.len());
    for (sql, _) in statements {
        let table = sql.strip_prefix("INSERT INTO ")?.split(' ').next()?;
        if tables.contains(&table) {
            return None;
        }
        tables.push(table);
    }
    let mut out = String::from("WITH ");
    let mut offset = 0;
    let last = statements.len().checked_sub(1)?;
    for (i, (sql, params)) in statements.iter().enumerate() {
        let renumbered = renumber(sql, offset);
        if i == last {
            out.push(' ');
            out.push_str(&renumbered);
        } else {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("e{i} AS ({renumbered})"));
        }
        offset += params.len();
    }
    Some(std::borrow::Cow::Owned(out))
}

/// `sql` with every parameter `$n` made `$(n + offset)`.
fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(rest.get(..at).unwrap_or_default());
        let after = rest.get(at + 1..).unwrap_or_default();
        let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        match after.get(..digits).and_then(|d| d.parse::<usize>().ok()) {
            Some(n) => out.push_str(&format!("${}", n + offset)),
            None => out.push('$'),
        }
        rest = after.get(digits..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// Rows of one token table as parallel arrays (what `oidc_flow_store_tokens` takes).
#[derive(Default)]
struct Rows {
    hash: Vec<Vec<u8>>,
    grant: Vec<String>,
    data: Vec<String>,
    expires: Vec<i64>,
}

impl Rows {
    fn push<R: serde::Serialize>(
        &mut self,
        (hash, grant, expires_at): (&SecretHash, &GrantId, OffsetDateTime),
        record: &R,
    ) -> StoreResult<()> {
        self.hash.push(hash.as_bytes().to_vec());
        self.grant.push(grant.as_str().to_owned());
        self.data.push(serde_json::to_string(record)?);
        self.expires.push(unix(expires_at));
        Ok(())
    }
}

/// The access and refresh tokens of a request whose effects are only those.
struct TokenRows {
    access: Rows,
    refresh: Rows,
}

impl TokenRows {
    /// `None` unless every effect stores an access or a refresh token.
    fn of(effects: &[Effect]) -> Option<Self> {
        let mut rows = Self {
            access: Rows::default(),
            refresh: Rows::default(),
        };
        for e in effects {
            let pushed = match e {
                Effect::StoreAccessToken(r) => {
                    rows.access.push((&r.hash, &r.grant, r.expires_at), r)
                }
                Effect::StoreRefreshToken(r) => {
                    rows.refresh.push((&r.hash, &r.grant, r.expires_at), r)
                }
                _ => return None,
            };
            pushed.ok()?;
        }
        Some(rows)
    }
}

/// The grants whose tokens `effects` store, and those it revokes.
fn grants_of(effects: &[Effect]) -> (Vec<String>, Vec<String>) {
    let mut stored = Vec::new();
    let mut touched = Vec::new();
    for e in effects {
        let (grant, stores) = match e {
            Effect::StoreAccessToken(r) => (&r.grant, true),
            Effect::StoreRefreshToken(r) => (&r.grant, true),
            Effect::RevokeGrant(g) => (g, false),
            _ => continue,
        };
        let g = grant.as_str().to_owned();
        if stores && !stored.contains(&g) {
            stored.push(g.clone());
        }
        if !touched.contains(&g) {
            touched.push(g);
        }
    }
    (stored, touched)
}

impl Store for PostgresStore {
    async fn client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        if self.inner.clients.check_due() {
            let conn = self.conn().await?;
            self.inner.clients.observe(changes(&conn, "clients").await?);
        }
        if let Some(c) = self.inner.clients.get(client_id) {
            return Ok(Some(c));
        }
        let generation = self.inner.clients.generation();
        let client = self.load_client(client_id).await?;
        if let Some(c) = &client {
            self.inner.clients.insert(c, generation);
        }
        Ok(client)
    }

    async fn resource_server(&self, resource: &str) -> StoreResult<Option<Client>> {
        if !storable(resource) {
            return Ok(None);
        }
        let found = self
            .row(
                "SELECT client_id FROM clients WHERE data::jsonb ->> 'resource' = $1 \
                 ORDER BY client_id COLLATE \"C\" LIMIT 1",
                &[&resource],
            )
            .await?;
        match found {
            Some(row) => self.client(&row.try_get::<_, String>(0)?).await,
            None => Ok(None),
        }
    }

    async fn add_client(&self, client: &Client) -> StoreResult<()> {
        let data = self.inner.data_key.seal_client(client)?;
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO clients (client_id, data) VALUES ($1, $2)",
            &[&client.client_id, &data],
        )
        .await
        .map_err(duplicate(format!("client {}", client.client_id)))?;
        Ok(())
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        if !storable(username) {
            return Ok(None);
        }
        self.row(
            "SELECT username, subject, password_hash, claims FROM users WHERE username = $1",
            &[&username],
        )
        .await?
        .map(|r| user_record(&r))
        .transpose()
    }

    async fn user_claims(&self, subject: &str) -> StoreResult<Option<UserInfo>> {
        if !storable(subject) {
            return Ok(None);
        }
        self.row("SELECT claims FROM users WHERE subject = $1", &[&subject])
            .await?
            .map(|r| Ok(serde_json::from_str(&r.try_get::<_, String>(0)?)?))
            .transpose()
    }

    async fn add_user(&self, user: &UserRecord) -> StoreResult<()> {
        let claims = serde_json::to_string(&user.claims)?;
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO users (username, subject, password_hash, claims) VALUES ($1, $2, $3, $4)",
            &[&user.username, &user.subject, &user.password_hash, &claims],
        )
        .await
        .map_err(duplicate(format!("user {}", user.username)))?;
        Ok(())
    }

    async fn take_code(&self, hash: &SecretHash) -> StoreResult<Taken<CodeRecord>> {
        // The outer SELECT reads the statement's snapshot, so it finds the row's grant
        // whether or not this UPDATE (or a concurrent one, which it waits for) took it.
        self.take(
            "WITH taken AS (UPDATE codes SET taken = true WHERE hash = $1 AND NOT taken \
             RETURNING data) SELECT (SELECT data FROM taken), grant_id FROM codes WHERE hash = $1",
            hash,
        )
        .await
    }

    async fn take_refresh_token(
        &self,
        hash: &SecretHash,
    ) -> StoreResult<Taken<RefreshTokenRecord>> {
        self.take(
            "WITH taken AS (UPDATE refresh_tokens SET taken = true WHERE hash = $1 AND NOT taken \
             RETURNING data) SELECT (SELECT data FROM taken), grant_id FROM refresh_tokens \
             WHERE hash = $1",
            hash,
        )
        .await
    }

    async fn refresh_token(&self, hash: &SecretHash) -> StoreResult<Option<RefreshTokenRecord>> {
        let key = hash.as_bytes().as_slice();
        self.row(
            "SELECT data FROM refresh_tokens WHERE hash = $1 AND NOT taken",
            &[&key],
        )
        .await?
        .map(|r| Ok(serde_json::from_str(&r.try_get::<_, String>(0)?)?))
        .transpose()
    }

    async fn access_token(&self, hash: &SecretHash) -> StoreResult<Option<AccessTokenRecord>> {
        let key = hash.as_bytes().as_slice();
        self.row("SELECT data FROM access_tokens WHERE hash = $1", &[&key])
            .await?
            .map(|r| Ok(serde_json::from_str(&r.try_get::<_, String>(0)?)?))
            .transpose()
    }

    async fn grant_revoked(&self, grant: &GrantId) -> StoreResult<bool> {
        Ok(self
            .row(
                "SELECT 1 FROM revoked_grants WHERE grant_id = $1",
                &[&grant.as_str()],
            )
            .await?
            .is_some())
    }

    async fn claim_nonce(&self, nonce: &NonceRecord, now: OffsetDateTime) -> StoreResult<bool> {
        // An expired record is replaced, a live one is left alone and nothing changes.
        let changed = self
            .execute(
                "INSERT INTO nonces (client_id, nonce, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (client_id, nonce) DO UPDATE SET expires_at = EXCLUDED.expires_at \
                 WHERE nonces.expires_at <= $4",
                &[
                    &nonce.client_id,
                    // BYTEA: a nonce is the client's text, NUL characters included.
                    &nonce.nonce.as_bytes(),
                    &unix(nonce.expires_at),
                    &unix(now),
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn consented(&self, subject: &str, client_id: &str, scope: &Scope) -> StoreResult<bool> {
        if !storable(subject) || !storable(client_id) {
            return Ok(false);
        }
        if let Some(granted) = self.inner.consents.get(subject, client_id)
            && scope_covers(&granted, scope)
        {
            return Ok(true);
        }
        let generation = self.inner.consents.generation();
        let granted = self
            .row(
                "SELECT scope FROM consents WHERE subject = $1 AND client_id = $2",
                &[&subject, &client_id],
            )
            .await?;
        let Some(row) = granted else {
            return Ok(false);
        };
        let granted = Scope::parse(&row.try_get::<_, String>(0)?).unwrap_or_default();
        let covered = scope_covers(&granted, scope);
        self.inner
            .consents
            .put(subject, client_id, granted, generation);
        Ok(covered)
    }

    async fn apply(&self, effects: &[Effect]) -> StoreResult<()> {
        let mut statements = Vec::with_capacity(effects.len());
        for e in effects {
            if let Some(s) = effect_statement(e)? {
                statements.push(s);
            }
        }
        if statements.is_empty() {
            return Ok(());
        }
        let (stored, touched) = grants_of(effects);
        let conn = self.conn().await?;
        if let Some(tokens) = TokenRows::of(effects) {
            // A token request's effects: one call (migrations/postgres/0003).
            let stmt = conn
                .prepare_cached(
                    "SELECT oidc_flow_store_tokens($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .await?;
            let (a, r) = (&tokens.access, &tokens.refresh);
            return match conn
                .execute(
                    &stmt,
                    &[
                        &GRANT_LOCK_CLASS,
                        &stored,
                        &a.hash,
                        &a.grant,
                        &a.data,
                        &a.expires,
                        &r.hash,
                        &r.grant,
                        &r.data,
                        &r.expires,
                    ],
                )
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if e.code().is_some_and(|c| c.code() == GRANT_REVOKED_STATE) => {
                    Err(StoreError::GrantRevoked)
                }
                Err(e) => Err(e.into()),
            };
        }
        if touched.is_empty()
            && let Some(sql) = one_statement(&statements)
        {
            // One statement is a transaction of its own: no BEGIN and COMMIT to send.
            let stmt = conn.prepare_cached(&sql).await?;
            let params: Vec<&(dyn ToSql + Sync)> = statements
                .iter()
                .flat_map(|(_, params)| params.iter())
                .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                .collect();
            conn.execute(&stmt, &params).await?;
            return Ok(());
        }
        let mut prepared = Vec::with_capacity(statements.len());
        for (sql, params) in &statements {
            prepared.push((conn.prepare_cached(sql).await?, params));
        }
        let guard = conn
            .prepare_cached("SELECT oidc_flow_guard_grants($1, $2, $3)")
            .await?;
        // The whole transaction in one round trip, each request sent when first polled, in
        // this order: BEGIN; the guard (the grants' locks, then the refusal if a grant whose
        // tokens this stores was revoked: see migrations/postgres/0002); the writes; COMMIT.
        // A failed statement aborts the transaction and the COMMIT rolls it back. Every
        // request is queued on the connection by the first poll, so a caller that goes away
        // midway cannot leave the connection inside a transaction.
        let begin = conn.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED");
        let guard_grants = async {
            if !touched.is_empty() {
                conn.execute(&guard, &[&GRANT_LOCK_CLASS, &touched, &stored])
                    .await?;
            }
            Ok::<_, tokio_postgres::Error>(())
        };
        let writes = futures_util::future::join_all(prepared.iter().map(|(stmt, params)| {
            conn.execute_raw(
                stmt,
                params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)),
            )
        }));
        // A COMMIT of an aborted transaction answers ROLLBACK without an error: the error
        // is the failed statement's, found below.
        let commit = conn.batch_execute("COMMIT");
        let (begun, guarded, written, committed) =
            futures_util::future::join4(begin, guard_grants, writes, commit).await;
        // The first failure says why; those after it are the aborted transaction's echoes.
        let first_error = begun
            .err()
            .or(guarded.err())
            .or_else(|| written.into_iter().find_map(Result::err));
        if let Some(e) = first_error {
            if e.code().is_some_and(|c| c.code() == GRANT_REVOKED_STATE) {
                return Err(StoreError::GrantRevoked);
            }
            return Err(e.into());
        }
        Ok(committed?)
    }

    fn parking_secret(&self) -> &ParkingSecret {
        self.inner.data_key.parking_secret()
    }

    async fn claim_parked(&self, mark: &ParkedMark) -> StoreResult<bool> {
        // Marks outlive the sealed value they belong to, so a conflict is always a reuse.
        let changed = self
            .execute(
                "INSERT INTO parked_used (hash, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&mark.hash.as_bytes().as_slice(), &unix(mark.expires_at)],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn put_session(
        &self,
        id: &SecretHash,
        session: &Authentication,
        expires_at: OffsetDateTime,
    ) -> StoreResult<()> {
        let data = serde_json::to_string(session)?;
        self.execute(
            "INSERT INTO sessions (id, data, expires_at, sid, subject, last_used) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
             data = EXCLUDED.data, expires_at = EXCLUDED.expires_at, sid = EXCLUDED.sid, \
             subject = EXCLUDED.subject, last_used = EXCLUDED.last_used",
            &[
                &id.as_bytes().as_slice(),
                &data,
                &unix(expires_at),
                &session.sid,
                &session.subject,
                &unix(session.auth_time),
            ],
        )
        .await?;
        Ok(())
    }

    async fn session(
        &self,
        id: &SecretHash,
        now: OffsetDateTime,
        idle_timeout: time::Duration,
    ) -> StoreResult<Option<Authentication>> {
        let key = id.as_bytes().as_slice();
        let Some(row) = self
            .row(
                "SELECT data, expires_at, last_used FROM sessions WHERE id = $1",
                &[&key],
            )
            .await?
        else {
            return Ok(None);
        };
        let last_used = at(row.try_get(2)?);
        if !session_alive(last_used, at(row.try_get(1)?), now, idle_timeout) {
            return Ok(None);
        }
        if now - last_used > SESSION_TOUCH_INTERVAL {
            self.execute(
                "UPDATE sessions SET last_used = $2 WHERE id = $1",
                &[&key, &unix(now)],
            )
            .await?;
        }
        Ok(Some(serde_json::from_str(&row.try_get::<_, String>(0)?)?))
    }

    async fn session_clients(&self, sid: &str) -> StoreResult<Vec<String>> {
        if !storable(sid) {
            return Ok(Vec::new());
        }
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "SELECT client_id FROM session_clients WHERE sid = $1 \
                 ORDER BY client_id COLLATE \"C\"",
            )
            .await?;
        conn.query(&stmt, &[&sid])
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }

    async fn end_sessions_of(&self, subject: &str) -> StoreResult<Vec<EndedSession>> {
        if !storable(subject) {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let mut sids: Vec<String> = tx
            .query(
                "DELETE FROM sessions WHERE subject = $1 RETURNING sid",
                &[&subject],
            )
            .await?
            .iter()
            .filter_map(|r| r.try_get::<_, Option<String>>(0).ok().flatten())
            .collect();
        sids.sort();
        sids.dedup();
        let rows = tx
            .query(
                "DELETE FROM session_clients WHERE sid = ANY($1) RETURNING sid, client_id",
                &[&sids],
            )
            .await?;
        tx.commit().await?;
        let mut ended: Vec<EndedSession> = sids.into_iter().map(|s| (s, Vec::new())).collect();
        for row in rows {
            let sid: String = row.try_get(0)?;
            if let Some((_, clients)) = ended.iter_mut().find(|(s, _)| *s == sid) {
                clients.push(row.try_get(1)?);
            }
        }
        for (_, clients) in &mut ended {
            clients.sort();
        }
        Ok(ended)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "SELECT kid, alg, sealed_pem, created_at, rotated_at FROM signing_keys \
                 ORDER BY created_at, kid COLLATE \"C\"",
            )
            .await?;
        let mut out = Vec::new();
        for row in conn.query(&stmt, &[]).await? {
            let kid: String = row.try_get(0)?;
            let alg: String = row.try_get(1)?;
            let alg = Algorithm::from_name(&alg).ok_or_else(|| {
                StoreError::Corrupt(serde::de::Error::custom(format!("unknown alg {alg}")))
            })?;
            let sealed: String = row.try_get(2)?;
            let pem = self.inner.data_key.open_signing_key(&kid, &sealed)?;
            out.push(StoredKey {
                kid,
                alg,
                pem,
                created_at: at(row.try_get(3)?),
                state: match row.try_get::<_, Option<i64>>(4)? {
                    None => KeyState::Active,
                    Some(t) => KeyState::Rotated { at: at(t) },
                },
            });
        }
        Ok(out)
    }

    async fn add_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        let sealed = self.inner.data_key.seal_signing_key(&key.kid, &key.pem)?;
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO signing_keys (kid, alg, sealed_pem, created_at, rotated_at) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &key.kid,
                &key.alg.as_str(),
                &sealed,
                &unix(key.created_at),
                &rotated_at(key.state),
            ],
        )
        .await
        .map_err(duplicate(format!("key {}", key.kid)))?;
        Ok(())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let now_s = unix(now);
        let grace = unix(now - TAKEN_CODE_GRACE);
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // One node purges at a time; the others find the lock taken and skip this round.
        let ours: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&PURGE_LOCK])
            .await?
            .try_get(0)?;
        if !ours {
            return Ok(0);
        }
        // Untaken codes go at expiry; taken ones are kept a while so a late replay still
        // finds its grant to revoke.
        let mut n = tx
            .execute(
                "DELETE FROM codes WHERE (NOT taken AND expires_at <= $1) OR expires_at <= $2",
                &[&now_s, &grace],
            )
            .await?;
        for sql in [
            "DELETE FROM access_tokens WHERE expires_at <= $1",
            "DELETE FROM refresh_tokens WHERE expires_at <= $1",
            "DELETE FROM nonces WHERE expires_at <= $1",
            "DELETE FROM revoked_grants WHERE expires_at <= $1",
            "DELETE FROM parked_used WHERE expires_at <= $1",
            "DELETE FROM sessions WHERE expires_at <= $1",
        ] {
            n += tx.execute(sql, &[&now_s]).await?;
        }
        n += tx
            .execute(
                "DELETE FROM session_clients AS c WHERE NOT EXISTS \
                 (SELECT 1 FROM sessions AS s WHERE s.sid = c.sid)",
                &[],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }
}

fn user_record(row: &Row) -> StoreResult<UserRecord> {
    Ok(UserRecord {
        username: row.try_get(0)?,
        subject: row.try_get(1)?,
        password_hash: row.try_get(2)?,
        claims: serde_json::from_str(&row.try_get::<_, String>(3)?)?,
    })
}

fn rotated_at(state: KeyState) -> Option<i64> {
    match state {
        KeyState::Active => None,
        KeyState::Rotated { at } => Some(unix(at)),
    }
}

impl Admin for PostgresStore {
    async fn clients(&self) -> StoreResult<Vec<Client>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT client_id, data FROM clients ORDER BY client_id COLLATE \"C\"",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.try_get(0)?;
                let data: String = r.try_get(1)?;
                self.inner.data_key.open_client(&id, &data)
            })
            .collect()
    }

    async fn update_client(&self, client: &Client) -> StoreResult<bool> {
        let data = self.inner.data_key.seal_client(client)?;
        let n = self
            .execute(
                "UPDATE clients SET data = $2 WHERE client_id = $1",
                &[&client.client_id, &data],
            )
            .await?;
        self.inner.clients.clear();
        Ok(n == 1)
    }

    async fn remove_client(&self, client_id: &str) -> StoreResult<bool> {
        let n = self
            .execute(
                "WITH consents_gone AS (DELETE FROM consents WHERE client_id = $1) \
                 DELETE FROM clients WHERE client_id = $1",
                &[&client_id],
            )
            .await?;
        self.inner.clients.clear();
        self.inner.consents.clear();
        Ok(n == 1)
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        let conn = self.conn().await?;
        conn.query(
            "SELECT username, subject, password_hash, claims FROM users \
             ORDER BY username COLLATE \"C\"",
            &[],
        )
        .await?
        .iter()
        .map(user_record)
        .collect()
    }

    async fn update_user(&self, user: &UserRecord) -> StoreResult<bool> {
        let claims = serde_json::to_string(&user.claims)?;
        let n = self
            .execute(
                "UPDATE users SET password_hash = $2, claims = $3 WHERE username = $1",
                &[&user.username, &user.password_hash, &claims],
            )
            .await?;
        Ok(n == 1)
    }

    async fn remove_user(&self, username: &str) -> StoreResult<bool> {
        let n = self
            .execute(
                "WITH consents_gone AS (DELETE FROM consents WHERE subject = \
                 (SELECT subject FROM users WHERE username = $1)) \
                 DELETE FROM users WHERE username = $1",
                &[&username],
            )
            .await?;
        self.inner.consents.clear();
        Ok(n == 1)
    }

    async fn set_key_state(&self, kid: &str, state: KeyState) -> StoreResult<bool> {
        let n = self
            .execute(
                "UPDATE signing_keys SET rotated_at = $2 WHERE kid = $1",
                &[&kid, &rotated_at(state)],
            )
            .await?;
        Ok(n == 1)
    }

    async fn remove_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let n = self
            .execute("DELETE FROM signing_keys WHERE kid = $1", &[&kid])
            .await?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn effects_become_one_statement_with_their_parameters_numbered_on() {
        assert_eq!(renumber("VALUES ($1, $2, $10)", 3), "VALUES ($4, $5, $13)");
        let code: Statement = (
            "INSERT INTO codes (hash, grant_id) VALUES ($1, $2)",
            vec![Box::new(1_i64), Box::new(2_i64)],
        );
        let join: Statement = (
            "INSERT INTO session_clients (sid, client_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            vec![Box::new(3_i64), Box::new(4_i64)],
        );
        assert_eq!(
            one_statement(&[code, join]).unwrap(),
            "WITH e0 AS (INSERT INTO codes (hash, grant_id) VALUES ($1, $2)) INSERT INTO \
             session_clients (sid, client_id) VALUES ($3, $4) ON CONFLICT DO NOTHING"
        );
        let a: Statement = ("INSERT INTO codes VALUES ($1)", vec![Box::new(1_i64)]);
        let b: Statement = ("INSERT INTO codes VALUES ($1)", vec![Box::new(2_i64)]);
        assert!(one_statement(&[a, b]).is_none(), "one table twice");
        let revoke: Statement = (
            "WITH x AS (DELETE FROM codes) INSERT INTO t VALUES ($1)",
            vec![],
        );
        let c: Statement = ("INSERT INTO codes VALUES ($1)", vec![Box::new(1_i64)]);
        assert!(one_statement(&[revoke, c]).is_none(), "a WITH of its own");
    }
}
