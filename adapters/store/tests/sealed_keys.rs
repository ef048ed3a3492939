//! Signing keys stored in clear by an older version (the `pem` column, before migration
//! 0002 added `sealed_pem`) are sealed with the data key on the next `SqliteStore::open`:
//! the clear column is emptied, the store still returns the same private keys, and no
//! clear private key is left in the database file or its WAL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};

use oidc_flow::keys::{Algorithm, SigningKey};
use oidc_flow_store::{KeyState, SqliteStore, Store};
use rusqlite::{Connection, params};

/// The first schema, the one whose `signing_keys` rows held their PEM in clear.
const SCHEMA_0001: &str = include_str!("../migrations/0001_init.sql");
/// A creation time for the rows written by hand (2026-01-01).
const CREATED_AT: i64 = 1_767_225_600;
/// A rotation time for the rotated row.
const ROTATED_AT: i64 = CREATED_AT + 3600;

/// A key written in clear, as an older version stored it.
struct ClearKey {
    kid: String,
    alg: Algorithm,
    pem: String,
    public_jwk: serde_json::Map<String, serde_json::Value>,
    rotated_at: Option<i64>,
}

fn clear_key(alg: Algorithm, rotated_at: Option<i64>) -> ClearKey {
    let (key, pem) = SigningKey::generate(alg, None).unwrap();
    assert!(pem.contains("PRIVATE KEY"), "a PEM private key");
    ClearKey {
        kid: key.kid().to_owned(),
        alg,
        pem,
        public_jwk: key.public_jwk().clone(),
        rotated_at,
    }
}

fn side_file(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// The bytes of the WAL (if any) and of the database file.
///
/// The WAL is read first: a connection closing meanwhile (the checkpoint thread of a store
/// just dropped) copies the WAL into the file and deletes it, so what is in either is seen.
fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(side_file(path, "-wal")).unwrap_or_default();
    bytes.extend(std::fs::read(path).unwrap());
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_clear_key(path: &Path, when: &str) {
    let bytes = file_bytes(path);
    assert!(
        !contains(&bytes, b"PRIVATE KEY"),
        "{when}: a clear private key is left in the file or its WAL"
    );
    assert!(
        !contains(&bytes, b"-----BEGIN"),
        "{when}: a PEM block is left in the file or its WAL"
    );
}

/// Checks what `open` made of the clear rows: `pem` emptied, `sealed_pem` holding no PEM,
/// and `signing_keys()` returning each key's PEM, algorithm and state unchanged.
async fn assert_sealed(store: &SqliteStore, path: &Path, keys: &[ClearKey]) {
    let conn = Connection::open(path).unwrap();
    for k in keys {
        let (pem, sealed): (String, Option<String>) = conn
            .query_row(
                "SELECT pem, sealed_pem FROM signing_keys WHERE kid = ?1",
                params![k.kid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(pem, "", "the clear column of {} is emptied", k.kid);
        let sealed = sealed.unwrap_or_else(|| panic!("{} has no sealed PEM", k.kid));
        assert!(
            !sealed.contains("PRIVATE KEY") && !sealed.contains(&k.pem),
            "{} is sealed, not copied",
            k.kid
        );
    }
    drop(conn);

    let stored = store.signing_keys().await.unwrap();
    assert_eq!(stored.len(), keys.len(), "no key lost nor added");
    for k in keys {
        let s = stored
            .iter()
            .find(|s| s.kid == k.kid)
            .unwrap_or_else(|| panic!("{} is still a signing key", k.kid));
        assert_eq!(s.pem, k.pem, "{}: the same private key", k.kid);
        assert_eq!(s.alg, k.alg);
        assert_eq!(s.created_at.unix_timestamp(), CREATED_AT);
        match (k.rotated_at, s.state) {
            (None, KeyState::Active) => {}
            (Some(t), KeyState::Rotated { at }) => assert_eq!(at.unix_timestamp(), t),
            (want, got) => panic!("{}: state {got:?}, rotated_at {want:?}", k.kid),
        }
        // And it loads as the same key pair.
        let loaded = SigningKey::from_pem(s.pem.as_bytes(), s.alg, Some(&s.kid)).unwrap();
        assert_eq!(loaded.public_jwk(), &k.public_jwk, "{}", k.kid);
    }
}

/// Opens the store on a file holding clear rows and checks them sealed: while open, after
/// closing, and on a further open (with the same data key file).
async fn open_and_check(url: &str, path: &Path, keys: &[ClearKey]) {
    let bytes = file_bytes(path);
    for k in keys {
        assert!(
            contains(&bytes, k.pem.as_bytes()),
            "control: the clear PEM of {} is in the file before the open",
            k.kid
        );
    }

    let store = SqliteStore::open(url).await.unwrap();
    assert_sealed(&store, path, keys).await;
    assert_no_clear_key(path, "after the open");
    store.close().await;
    drop(store);
    assert_no_clear_key(path, "after closing");

    let store = SqliteStore::open(url).await.unwrap();
    assert_sealed(&store, path, keys).await;
    store.close().await;
}

/// A new, up-to-date database (schema and data key file) in a temporary directory: the
/// directory (kept alive by the caller), the file's path and its URL.
async fn new_database() -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::open(&url).await.unwrap();
    store.close().await;
    drop(store);
    (dir, path, url)
}

/// Writes `keys` into the `signing_keys` table in clear, as an older version stored them.
fn insert_clear_rows(path: &Path, keys: &[ClearKey]) {
    let conn = Connection::open(path).unwrap();
    for k in keys {
        conn.execute(
            "INSERT INTO signing_keys (kid, alg, pem, sealed_pem, created_at, rotated_at) \
             VALUES (?1, ?2, ?3, NULL, ?4, ?5)",
            params![k.kid, k.alg.as_str(), k.pem, CREATED_AT, k.rotated_at],
        )
        .unwrap();
    }
}

/// Rows written with their PEM in clear into an up-to-date schema (as an older version wrote
/// them: `pem` set, `sealed_pem` NULL), an active and a rotated one, are sealed on the next
/// open, keep their key material and state, and leave no clear private key in the file.
#[tokio::test]
async fn clear_rows_are_sealed_on_open() {
    let (_dir, path, url) = new_database().await;
    let keys = [
        clear_key(Algorithm::RS256, None),
        clear_key(Algorithm::EdDSA, Some(ROTATED_AT)),
    ];
    insert_clear_rows(&path, &keys);

    open_and_check(&url, &path, &keys).await;
}

/// A database made by the first schema alone (`user_version` 1, clear `pem`, no data key
/// file yet) is migrated by 0002 and has its keys sealed by the first open.
#[tokio::test]
async fn a_database_from_before_migration_0002_is_sealed_on_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let url = format!("sqlite://{}", path.display());

    let keys = [
        clear_key(Algorithm::RS256, None),
        clear_key(Algorithm::ES256, None),
    ];
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(SCHEMA_0001).unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    for k in &keys {
        conn.execute(
            "INSERT INTO signing_keys (kid, alg, pem, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![k.kid, k.alg.as_str(), k.pem, CREATED_AT],
        )
        .unwrap();
    }
    drop(conn);
    assert!(!side_file(&path, ".key").exists(), "no data key yet");

    open_and_check(&url, &path, &keys).await;
    let version: i64 = Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3, "migrated to the last schema");
}

/// A lost data key file is not silently replaced: the open fails with a message naming the
/// file, leaves no new key file behind (so the backup can be put back as it was), and the
/// restored file opens the keys again.
#[tokio::test]
async fn a_lost_data_key_is_refused_not_replaced() {
    let (_dir, path, url) = new_database().await;
    let keys = [clear_key(Algorithm::ES256, None)];
    insert_clear_rows(&path, &keys);
    open_and_check(&url, &path, &keys).await;

    let key_file = side_file(&path, ".key");
    let backup = std::fs::read(&key_file).unwrap();
    std::fs::remove_file(&key_file).unwrap();
    let err = SqliteStore::open(&url).await.unwrap_err().to_string();
    assert!(
        err.contains("data key is missing") && err.contains(&key_file.display().to_string()),
        "{err}"
    );
    assert!(!key_file.exists(), "no new key file was left behind");

    std::fs::write(&key_file, backup).unwrap();
    let store = SqliteStore::open(&url).await.unwrap();
    assert_sealed(&store, &path, &keys).await;
    store.close().await;
}

/// A database whose only sealed value is an HS* client's secret (the command line added the
/// client before any server made signing keys) refuses another data key when it opens, so
/// nothing new is sealed under the wrong key.
#[tokio::test]
async fn another_data_key_is_refused_when_the_store_opens() {
    use oidc_flow::Client;
    let (_dir, path, url) = new_database().await;
    let store = SqliteStore::open(&url).await.unwrap();
    let client: Client = serde_json::from_value(serde_json::json!({
        "client_id": "hs",
        "client_secret": "a-secret-long-enough-for-hs256-keys-0123456789",
        "redirect_uris": ["https://rp.example/cb"],
        "id_token_signed_response_alg": "HS256",
    }))
    .unwrap();
    store.add_client(&client.validate().unwrap()).await.unwrap();
    store.close().await;
    drop(store);

    let key_file = side_file(&path, ".key");
    let right = std::fs::read(&key_file).unwrap();
    std::fs::write(&key_file, "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg").unwrap();
    let err = SqliteStore::open(&url).await.unwrap_err().to_string();
    assert!(err.contains("the data key does not open"), "{err}");
    assert!(
        Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM signing_keys", [], |r| r
                .get::<_, i64>(0))
            .unwrap()
            == 0,
        "nothing was sealed under the wrong key"
    );

    std::fs::write(&key_file, right).unwrap();
    let store = SqliteStore::open(&url).await.unwrap();
    let back = store.client("hs").await.unwrap().unwrap();
    assert_eq!(
        back.client_secret.as_deref(),
        Some("a-secret-long-enough-for-hs256-keys-0123456789")
    );
    store.close().await;
}
