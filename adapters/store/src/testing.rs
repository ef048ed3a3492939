//! Support for tests that run on PostgreSQL: a fresh database per test on the server named
//! by `OIDC_FLOW_TEST_POSTGRES` (`scripts/with-postgres` starts a throw-away one and sets
//! it; `.ci/run` does so for the whole test run).
// Test support: a server that cannot be reached must fail the test that asked, loudly.
#![allow(clippy::panic)]

use std::sync::atomic::{AtomicU32, Ordering};

/// The variable naming the PostgreSQL server tests may create databases on.
pub const TEST_POSTGRES_ENV: &str = "OIDC_FLOW_TEST_POSTGRES";
/// When set (CI sets it), a test that needs PostgreSQL fails without
/// [`TEST_POSTGRES_ENV`] instead of being skipped.
pub const REQUIRE_POSTGRES_ENV: &str = "OIDC_FLOW_REQUIRE_POSTGRES";

/// The variable that runs the HTTP tests' servers on PostgreSQL (`postgres`) instead of
/// SQLite files.
pub const TEST_BACKEND_ENV: &str = "OIDC_FLOW_TEST_BACKEND";

/// The data key of test databases, as `OIDC_FLOW_DATA_KEY` takes it (every test uses the
/// same one, so a command line run by a test opens the database the test made).
pub const TEST_DATA_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";

/// [`TEST_DATA_KEY`] as a key.
pub fn test_data_key() -> crate::DataKey {
    crate::DataKey::from_text(TEST_DATA_KEY).unwrap_or_else(|e| panic!("test data key: {e}"))
}

/// Whether the HTTP tests are to run their servers on PostgreSQL ([`TEST_BACKEND_ENV`]).
pub fn http_tests_on_postgres() -> bool {
    std::env::var(TEST_BACKEND_ENV).is_ok_and(|b| b == "postgres")
}

/// Opens the database at `url` as the test servers do: PostgreSQL with [`test_data_key`],
/// anything else by [`crate::DatabaseStore::open`].
pub async fn open_test_store(url: &str) -> crate::StoreResult<crate::DatabaseStore> {
    if crate::is_postgres_url(url) {
        Ok(crate::DatabaseStore::Postgres(
            crate::PostgresStore::open_with_key(url, test_data_key()).await?,
        ))
    } else {
        crate::DatabaseStore::open(url).await
    }
}

/// The URL of a new, empty database for one test, or `None` (after saying so on stderr)
/// when no server is configured and [`REQUIRE_POSTGRES_ENV`] is not set.
///
/// # Panics
/// When the server cannot be reached or the database not created, or when PostgreSQL is
/// required and not configured: it is test support.
pub async fn fresh_postgres_database(test: &str) -> Option<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let Ok(base) = std::env::var(TEST_POSTGRES_ENV) else {
        assert!(
            std::env::var_os(REQUIRE_POSTGRES_ENV).is_none(),
            "{test} needs PostgreSQL: set {TEST_POSTGRES_ENV} (scripts/with-postgres does)"
        );
        eprintln!(
            "{test}: skipped on PostgreSQL ({TEST_POSTGRES_ENV} is not set; run the tests \
             under scripts/with-postgres)"
        );
        return None;
    };
    let name = format!(
        "oidc_flow_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        test.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(24)
            .collect::<String>()
            .to_ascii_lowercase()
    );
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach {base}: {e}"));
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    drop(client);
    let _ = task.await;
    let mut url = url::Url::parse(&base).unwrap_or_else(|e| panic!("{TEST_POSTGRES_ENV}: {e}"));
    url.set_path(&name);
    Some(url.to_string())
}
