//! The server answers discovery and runs one code flow through its pages.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;
use common::*;

#[tokio::test]
async fn discovery_and_a_code_flow() {
    let mut server = TestServer::start().await;
    let client = server.code_client().await;
    server
        .add_user("alice", "pw-alice", r#"{"email":"alice@example.com"}"#)
        .await;
    let mut b = Browser::new();
    let d = b
        .get(&server.url("/.well-known/openid-configuration"))
        .await
        .json();
    assert_eq!(d["issuer"], server.issuer.as_str());
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri=https%3A%2F%2Frp.example%2Fcb&scope=openid+email&state=s",
        server.url("/authorize"),
        client.client_id
    );
    let done = b.authorize(&server, &url, "alice", "pw-alice").await;
    assert_eq!(done.status, 303, "{}", done.body);
    let p = done.response_params();
    let form = format!(
        "grant_type=authorization_code&code={}&redirect_uri=https%3A%2F%2Frp.example%2Fcb",
        p["code"]
    );
    let t = b
        .send(
            hyper::Method::POST,
            &server.url("/token"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("authorization", &client.basic()),
            ],
            form.into_bytes(),
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.header("cache-control"), Some("no-store"));
    server.stop().await;
}
