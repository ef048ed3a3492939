//! Parked authorizations travel sealed in the browser's form (`oidc_flow::parking`): an
//! unauthenticated `GET /authorize` writes nothing to the database, a sealed request opens
//! only in the browser it was sealed for and only as it was sealed, a wrong password uses
//! nothing, and a used one is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{Browser, OwnPages as _, REDIRECT, Registered, TestServer};
use hyper::StatusCode;

const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery staple";

async fn start() -> (TestServer, Registered) {
    let server = TestServer::start().await;
    let client = server.code_client().await;
    server.add_user(USER, PASSWORD, r#"{"name":"Alice"}"#).await;
    (server, client)
}

fn authorize_url(server: &TestServer, client: &Registered, state: &str) -> String {
    let redirect: String = url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect();
    server.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={redirect}&scope=openid&state={state}",
        client.client_id
    ))
}

/// A second connection to the server's database: `PRAGMA data_version` on it changes
/// exactly when another connection commits a write.
fn watcher(server: &TestServer) -> rusqlite::Connection {
    let path = server.database.trim_start_matches("sqlite://");
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn data_version(conn: &rusqlite::Connection) -> i64 {
    conn.pragma_query_value(None, "data_version", |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn unauthenticated_authorization_requests_write_nothing() {
    // It watches SQLite's data_version, so it runs on a SQLite file whatever the backend.
    let server = TestServer::start_sqlite().await;
    let client = server.code_client().await;
    server.add_user(USER, PASSWORD, r#"{"name":"Alice"}"#).await;
    let db = watcher(&server);
    let mut b = Browser::new();
    let first = b.get(&authorize_url(&server, &client, "warm-up")).await;
    assert_eq!(first.status, StatusCode::OK);
    let before = data_version(&db);

    // 200 visitors, each with a fresh browser and a 2 KB state: login pages, no writes.
    let state = "s".repeat(2000);
    for _ in 0..200 {
        let mut visitor = Browser::new();
        let page = visitor.get(&authorize_url(&server, &client, &state)).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("name=\"password\""));
    }
    assert_eq!(
        data_version(&db),
        before,
        "unauthenticated authorization requests wrote to the database"
    );

    // The control: a login does write (the session, the single-use mark), so the check
    // above would have seen a parked request stored.
    let done = b.login(&server, &first, USER, PASSWORD).await;
    assert!(done.body.contains("name=\"decision\""), "{}", done.body);
    assert_ne!(
        data_version(&db),
        before,
        "a login wrote nothing: the check is blind"
    );
}

#[tokio::test]
async fn a_sealed_request_opens_only_unedited_in_its_own_browser_and_once() {
    let (server, client) = start().await;
    let mut a = Browser::new();
    let page = a.get(&authorize_url(&server, &client, "st-1")).await;
    let sealed = page.form_value("handle").unwrap();
    let csrf = page.form_value("csrf").unwrap();
    assert!(sealed.starts_with("p1."), "{sealed}");
    let login = server.url("/login");
    let post = |sealed: &str, csrf: &str, password: &str| {
        vec![
            ("handle".to_owned(), sealed.to_owned()),
            ("csrf".to_owned(), csrf.to_owned()),
            ("username".to_owned(), USER.to_owned()),
            ("password".to_owned(), password.to_owned()),
        ]
    };
    async fn send(b: &mut Browser, url: &str, form: Vec<(String, String)>) -> common::Resp {
        let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        b.post_form(url, &refs, &[]).await
    }

    // Every single edited character is refused (the seal authenticates all of it).
    for at in [3, sealed.len() / 2, sealed.len() - 1] {
        let mut edited: Vec<char> = sealed.chars().collect();
        edited[at] = if edited[at] == 'A' { 'B' } else { 'A' };
        let edited: String = edited.into_iter().collect();
        let r = send(&mut a, &login, post(&edited, &csrf, PASSWORD)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "edited at {at}");
        assert!(r.body.contains("start again"), "{}", r.body);
    }
    // A made-up value is refused.
    let r = send(&mut a, &login, post("p1.AAAA", &csrf, PASSWORD)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // Another browser, with its own CSRF cookie and token, cannot use it (login CSRF).
    let mut b = Browser::new();
    let own = b.get(&authorize_url(&server, &client, "st-2")).await;
    let b_csrf = own.form_value("csrf").unwrap();
    let r = send(&mut b, &login, post(&sealed, &b_csrf, PASSWORD)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(!b.cookies.contains_key("oidc_flow_session"));

    // A wrong password uses nothing: the page comes back with the same sealed request...
    let wrong = send(&mut a, &login, post(&sealed, &csrf, "nope")).await;
    assert_eq!(wrong.status, StatusCode::OK);
    assert_eq!(wrong.form_value("handle").as_deref(), Some(sealed.as_str()));
    // ...which the right password then uses, once.
    let right = send(&mut a, &login, post(&sealed, &csrf, PASSWORD)).await;
    assert!(right.body.contains("name=\"decision\""), "{}", right.body);
    let replay = send(&mut a, &login, post(&sealed, &csrf, PASSWORD)).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.body.contains("already used"), "{}", replay.body);

    // The consent page's sealed request is single-use too.
    let allowed = a.consent(&server, &right, "allow").await;
    assert_eq!(allowed.status, StatusCode::SEE_OTHER);
    let again = a.consent(&server, &right, "allow").await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.body.contains("already used"), "{}", again.body);
}
