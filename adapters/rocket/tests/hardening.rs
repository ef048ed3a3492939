//! The Rocket adapter as a server: expired rows are purged on a schedule while Rocket runs
//! (the `MemoryStore` of the docs would otherwise keep every parked request for good), and
//! with [`RedactQueries`] installed no query string reaches the log (the provider's queries
//! hold `state`, `id_token_hint`, `login_hint` and parked-request handles).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{ISSUER, World, authorize_url, quiet_config};
use oidc_flow::{AccessTokenRecord, Effect, GrantId, Scope, SecretHash};
use oidc_flow_rocket::{Oidc, RedactQueries, UserClaims, UserInfo};
use oidc_flow_store::{MemoryStore, Store as _};
use rocket::http::Status;
use rocket::local::asynchronous::Client;

/// Every log line of this test binary, as the installed logger received it.
fn captured() -> &'static Mutex<Vec<String>> {
    static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    LINES.get_or_init(|| Mutex::new(Vec::new()))
}

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        captured()
            .lock()
            .unwrap()
            .push(format!("{}: {}", record.target(), record.args()));
    }
    fn flush(&self) {}
}

/// Installs the redacting logger once for the binary, at Rocket's `normal` level.
fn install() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        log::set_boxed_logger(Box::new(RedactQueries(Capture))).unwrap();
        log::set_max_level(log::LevelFilter::Info);
    });
}

struct NoClaims;

impl UserClaims for NoClaims {
    async fn claims(&self, _subject: &str) -> Option<UserInfo> {
        None
    }
}

/// An access token that expired an hour ago, stored before Rocket starts, is gone soon after
/// liftoff (the schedule runs every 20 ms here, every minute by default); a live one stays.
#[rocket::async_test]
async fn expired_rows_are_purged_while_rocket_runs() {
    install();
    let store = Arc::new(MemoryStore::new());
    let now = time::OffsetDateTime::now_utc();
    let record = |token: &str, expires_at| AccessTokenRecord {
        hash: SecretHash::of(token),
        grant: GrantId::from_stored(format!("g-{token}")),
        client_id: "demo".into(),
        subject: "u-1".into(),
        scope: Scope::parse("openid").unwrap(),
        audience: Vec::new(),
        issued_at: None,
        expires_at,
    };
    store
        .apply(&[
            Effect::StoreAccessToken(record("expired", now - time::Duration::hours(1))),
            Effect::StoreAccessToken(record("live", now + time::Duration::hours(1))),
        ])
        .await
        .unwrap();
    assert!(
        store
            .access_token(&SecretHash::of("expired"))
            .await
            .unwrap()
            .is_some(),
        "control: the expired row is there before Rocket starts"
    );

    let oidc = Oidc::builder(common::provider(ISSUER), store.clone(), NoClaims)
        .purge_interval(Duration::from_millis(20))
        .build();
    let client = Client::tracked(rocket::custom(quiet_config()).attach(oidc))
        .await
        .unwrap();
    // A deadline for a loaded machine: the schedule runs every 20 ms, so this waits that
    // long only when something is wrong (and then fails).
    let deadline = Instant::now() + Duration::from_secs(30);
    while store
        .access_token(&SecretHash::of("expired"))
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the expired row was not purged in 30 s"
        );
        rocket::tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        store
            .access_token(&SecretHash::of("live"))
            .await
            .unwrap()
            .is_some(),
        "a live row stays"
    );
    drop(client);
}

/// Requests whose queries carry secrets are logged by their path alone: the authorization
/// request (state, login_hint, id_token_hint), the login page with its parked-request
/// handle, and a URI no route matches.
#[rocket::async_test]
async fn no_query_string_reaches_the_log() {
    install();
    let world = World::new(ISSUER).await;
    let browser = Client::tracked(world.rocket(quiet_config())).await.unwrap();
    let secrets = [
        "state-c0nfidential",
        "hint-c0nfidential",
        "token-c0nfidential",
    ];
    let url = authorize_url(
        "demo",
        "openid",
        secrets[0],
        &format!("&login_hint={}", secrets[1]),
    );
    let r = browser.get(url).dispatch().await;
    assert_eq!(r.status(), Status::SeeOther);
    let login = r.headers().get_one("location").unwrap().to_owned();
    let handle = common::query(&login)["oidc_request"].clone();
    let r = browser.get(login).dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    let r = browser
        .get(format!("/nowhere?access_token={}", secrets[2]))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::NotFound);

    let lines = captured().lock().unwrap().clone();
    let all = lines.join("\n");
    for wanted in ["GET /oidc/authorize:", "GET /login:", "GET /nowhere"] {
        assert!(
            all.contains(wanted),
            "the request line `{wanted}` is logged:\n{all}"
        );
    }
    for secret in secrets.iter().copied().chain([handle.as_str()]) {
        assert!(!all.contains(secret), "`{secret}` reached the log:\n{all}");
    }
}
