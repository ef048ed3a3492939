//! `private_key_jwt` with the client's keys at a `jwks_uri` (RFC 7591 §2), over real HTTP:
//! the provider fetches the document once, keeps it, and refuses assertions whose keys
//! cannot be fetched (an error status, a document too large, not a JWKS). Assertions are
//! made by jsonwebtoken.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Browser, TestServer};
use hyper::StatusCode;
use oidc_flow_hyper::setup::NewClient;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client's key server on loopback: `/jwks` the public P-256 key, `/broken` a 500,
/// `/huge` a document over the size limit, `/other` JSON that is not a JWKS. Counts the
/// requests to `/jwks`.
async fn key_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let keys = format!("{}/../../tests/keys", env!("CARGO_MANIFEST_DIR"));
    let mut jwk: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{keys}/p256.jwk.json")).unwrap())
            .unwrap();
    jwk.as_object_mut().unwrap().remove("d");
    jwk["kid"] = "k1".into();
    jwk["alg"] = "ES256".into();
    let jwks = json!({"keys": [jwk]}).to_string();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
            let (status, body) = match path.as_str() {
                "/jwks" => {
                    counted.fetch_add(1, Ordering::SeqCst);
                    ("200 OK", jwks.clone())
                }
                // The same key under the kid the counter says: k1 before a rotation, k2 after.
                "/rotating" => {
                    let n = counted.load(Ordering::SeqCst);
                    ("200 OK", jwks.replace("\"k1\"", &format!("\"k{n}\"")))
                }
                "/huge" => (
                    "200 OK",
                    format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(70_000)),
                ),
                "/other" => ("200 OK", "{\"not\":\"a jwks\"}".to_owned()),
                _ => ("500 Internal Server Error", "oops".to_owned()),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    (base, hits)
}

/// An ES256 assertion by `client` for `aud`, signed by jsonwebtoken.
fn assertion(client: &str, aud: &str, jti: &str) -> String {
    let keys = format!("{}/../../tests/keys", env!("CARGO_MANIFEST_DIR"));
    let der = pem::parse(std::fs::read(format!("{keys}/p256.pem")).unwrap())
        .unwrap()
        .into_contents();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims =
        json!({"iss": client, "sub": client, "aud": aud, "iat": now, "exp": now + 120, "jti": jti});
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ec_der(&der),
    )
    .unwrap()
}

async fn client_at(server: &TestServer, jwks_uri: String) -> String {
    let registration = server
        .add_client(NewClient {
            grant_types: vec!["client_credentials".into()],
            scope: Some("api:read".into()),
            token_endpoint_auth_method: Some("private_key_jwt".into()),
            jwks_uri: Some(jwks_uri),
            ..NewClient::default()
        })
        .await;
    registration["client_id"].as_str().unwrap().to_owned()
}

async fn token(server: &TestServer, assertion: &str) -> common::Resp {
    Browser::new()
        .post_form(
            &server.url("/token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", assertion),
            ],
            &[],
        )
        .await
}

#[tokio::test]
async fn keys_at_a_jwks_uri_are_fetched_once_and_kept() {
    let server = TestServer::start().await;
    let (base, hits) = key_server().await;
    let id = client_at(&server, format!("{base}/jwks")).await;
    let aud = server.url("/token");
    for jti in ["a-1", "a-2", "a-3"] {
        let r = token(&server, &assertion(&id, &aud, jti)).await;
        assert_eq!(r.status, StatusCode::OK, "{jti}: {}", r.body);
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the document is cached");
    // Introspection takes the same assertions with the same keys.
    let r = Browser::new()
        .post_form(
            &server.url("/introspect"),
            &[
                ("token", "unknown"),
                ("client_assertion_type", JWT_BEARER),
                (
                    "client_assertion",
                    &assertion(&id, &server.url("/introspect"), "a-4"),
                ),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["active"], false);
}

#[tokio::test]
async fn keys_that_cannot_be_fetched_refuse_the_client() {
    let server = TestServer::start().await;
    let (base, _) = key_server().await;
    let aud = server.url("/token");
    for path in ["/broken", "/huge", "/other"] {
        let id = client_at(&server, format!("{base}{path}")).await;
        let r = token(&server, &assertion(&id, &aud, &format!("b{path}"))).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.body);
        assert_eq!(r.json()["error"], "invalid_client");
        assert!(r.body.contains("jwks_uri"), "{path}: {}", r.body);
    }
}

#[tokio::test]
async fn a_kid_the_kept_document_lacks_fetches_again_but_not_at_once() {
    use oidc_flow_store::jwks_fetch::JwksFetcher;
    let (base, hits) = key_server().await;
    let uri = format!("{base}/rotating");
    let kid_of = |doc: &Value| doc["keys"][0]["kid"].as_str().unwrap().to_owned();
    // `hits` picks the kid the server publishes: k1 now.
    hits.store(1, Ordering::SeqCst);
    let eager = JwksFetcher::with_refresh_interval(std::time::Duration::ZERO);
    let doc = eager.fetch(&uri, Some("k1")).await.unwrap();
    assert_eq!(kid_of(&doc), "k1");
    // The client rotates to k2: an assertion naming k2 fetches again and finds it.
    hits.store(2, Ordering::SeqCst);
    assert_eq!(
        kid_of(&eager.fetch(&uri, Some("k1")).await.unwrap()),
        "k1",
        "k1 is kept"
    );
    assert_eq!(kid_of(&eager.fetch(&uri, Some("k2")).await.unwrap()), "k2");
    // With the default interval, a kid the document lacks does not fetch again at once
    // (made-up kids cannot make the provider hammer the client's server).
    let careful = JwksFetcher::new();
    hits.store(1, Ordering::SeqCst);
    assert_eq!(
        kid_of(&careful.fetch(&uri, Some("k1")).await.unwrap()),
        "k1"
    );
    hits.store(3, Ordering::SeqCst);
    assert_eq!(
        kid_of(&careful.fetch(&uri, Some("k3")).await.unwrap()),
        "k1"
    );
}
