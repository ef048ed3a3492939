//! The app's claims policy (Authlib's `generate_user_info(user, scope)`): the driver asks
//! the app's `UserClaims` with the scope of the token, and the provider releases only what
//! that scope covers whatever the app answers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::{Arc, Mutex};

use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow::{AccessTokenRecord, Effect, GrantId, MintedSecret, Provider, Scope, UserInfo};
use oidc_flow_store::{AppStore, MemoryStore, Store, UserClaims, driver};
use time::OffsetDateTime;

const NOW: OffsetDateTime = time::macros::datetime!(2026-12-03 12:00 UTC);

/// Records the scope it is asked with, and answers every claim it has regardless.
#[derive(Default, Clone)]
struct Recording(Arc<Mutex<Vec<String>>>);

impl UserClaims for Recording {
    async fn claims(&self, _subject: &str) -> Option<UserInfo> {
        panic!("the driver asks with the scope")
    }

    async fn claims_for_scope(&self, _subject: &str, scope: &Scope) -> Option<UserInfo> {
        self.0.lock().unwrap().push(scope.to_string());
        Some(UserInfo {
            name: Some("Alice".into()),
            email: Some("alice@example.com".into()),
            ..UserInfo::default()
        })
    }
}

#[tokio::test]
async fn userinfo_asks_the_app_with_the_tokens_scope_and_releases_only_that() {
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/keys/p256.pem"
    ))
    .unwrap();
    let mut keys = KeySet::new();
    keys.add(SigningKey::from_pem(&pem, Algorithm::ES256, None).unwrap())
        .unwrap();
    let provider = Provider::builder("https://op.example", keys)
        .default_alg(Algorithm::ES256)
        .build()
        .unwrap();
    let recording = Recording::default();
    let store = AppStore::new(Arc::new(MemoryStore::new()), recording.clone(), Vec::new());
    let token = MintedSecret::generate(&mut driver::system_rng());
    store
        .apply(&[Effect::StoreAccessToken(AccessTokenRecord {
            hash: token.hash(),
            grant: GrantId::generate(&mut driver::system_rng(), time::OffsetDateTime::now_utc()),
            client_id: "rp".into(),
            subject: "alice".into(),
            scope: Scope::parse("openid email").unwrap(),
            audience: Vec::new(),
            issued_at: Some(NOW),
            expires_at: NOW + time::Duration::hours(1),
        })])
        .await
        .unwrap();
    let bearer = format!("Bearer {}", token.as_str());
    let r = driver::userinfo(&store, &provider, Some(bearer.as_bytes()), None, NOW)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        *recording.0.lock().unwrap(),
        vec!["openid email".to_owned()]
    );
    let body = r.json();
    assert_eq!(body["email"], "alice@example.com");
    assert!(
        body.get("name").is_none(),
        "profile was not granted: {body}"
    );
}
