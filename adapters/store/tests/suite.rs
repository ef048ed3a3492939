//! One store test-suite, run against every backend: memory, SQLite in memory, SQLite on disk.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use oidc_flow::authorize::ConsentAnswer;
use oidc_flow::flow::AuthorizeFlow;
use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow::{
    AccessTokenRecord, Authentication, Client, CodeRecord, ConsentRecord, Effect, GrantId,
    MintedSecret, NonceRecord, Provider, RefreshTokenRecord, Scope, SecretHash, Taken, UserInfo,
};
use oidc_flow_store::driver::{self, AuthorizeResult};
use oidc_flow_store::{MemoryStore, SqliteStore, Store, StoreError, StoredKey, UserRecord};
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = time::macros::datetime!(2026-11-27 12:00 UTC);

fn client() -> Client {
    serde_json::from_value::<Client>(serde_json::json!({
        "client_id": "rp",
        "client_secret_sha256": SecretHash::of("s3cret-s3cret").to_hex(),
        "redirect_uris": ["https://rp.example/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
    }))
    .unwrap()
    .validate()
    .unwrap()
}

fn auth(subject: &str) -> Authentication {
    Authentication {
        subject: subject.into(),
        auth_time: NOW,
        acr: None,
        amr: vec![],
    }
}

fn code_record(secret: &str, grant: &GrantId) -> CodeRecord {
    CodeRecord {
        hash: SecretHash::of(secret),
        grant: grant.clone(),
        client_id: "rp".into(),
        redirect_uri: "https://rp.example/cb".into(),
        redirect_uri_in_request: true,
        scope: Scope::parse("openid").unwrap(),
        nonce: Some("n".into()),
        pkce: None,
        authentication: auth("alice"),
        include_auth_time: false,
        expires_at: NOW + Duration::seconds(60),
    }
}

fn access_record(secret: &str, grant: &GrantId) -> AccessTokenRecord {
    AccessTokenRecord {
        hash: SecretHash::of(secret),
        grant: grant.clone(),
        client_id: "rp".into(),
        subject: "alice".into(),
        scope: Scope::parse("openid").unwrap(),
        expires_at: NOW + Duration::hours(1),
    }
}

fn refresh_record(secret: &str, grant: &GrantId) -> RefreshTokenRecord {
    RefreshTokenRecord {
        hash: SecretHash::of(secret),
        grant: grant.clone(),
        client_id: "rp".into(),
        scope: Scope::parse("openid").unwrap(),
        authentication: auth("alice"),
        include_auth_time: false,
        expires_at: NOW + Duration::days(1),
    }
}

fn grant(id: &str) -> GrantId {
    GrantId::from_stored(id)
}

async fn clients_and_users<S: Store>(s: &S) {
    s.add_client(&client()).await.unwrap();
    assert_eq!(s.client("rp").await.unwrap(), Some(client()));
    assert_eq!(s.client("nobody").await.unwrap(), None);
    assert!(matches!(
        s.add_client(&client()).await,
        Err(StoreError::Duplicate(_))
    ));
    let user = UserRecord {
        username: "alice".into(),
        subject: "sub-alice".into(),
        password_hash: "$argon2id$…".into(),
        claims: UserInfo {
            email: Some("alice@example.com".into()),
            ..UserInfo::default()
        },
    };
    s.add_user(&user).await.unwrap();
    assert_eq!(s.user_by_name("alice").await.unwrap(), Some(user.clone()));
    assert_eq!(
        s.user_claims("sub-alice").await.unwrap(),
        Some(user.claims.clone())
    );
    assert!(matches!(
        s.add_user(&user).await,
        Err(StoreError::Duplicate(_))
    ));
}

async fn codes_are_taken_once<S: Store>(s: &S) {
    let g = grant("g-code");
    s.apply(&[Effect::StoreCode(code_record("code-1", &g))])
        .await
        .unwrap();
    let h = SecretHash::of("code-1");
    assert!(matches!(s.take_code(&h).await.unwrap(), Taken::Fresh(r) if r.grant == g));
    assert_eq!(s.take_code(&h).await.unwrap(), Taken::AlreadyTaken(g));
    assert_eq!(
        s.take_code(&SecretHash::of("nope")).await.unwrap(),
        Taken::Unknown
    );
}

async fn concurrent_takes<S: Store>(s: Arc<S>) {
    let g = grant("g-race");
    s.apply(&[
        Effect::StoreCode(code_record("race", &g)),
        Effect::StoreRefreshToken(refresh_record("race-rt", &g)),
    ])
    .await
    .unwrap();
    for (what, is_code) in [("code", true), ("refresh token", false)] {
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                if is_code {
                    match s.take_code(&SecretHash::of("race")).await.unwrap() {
                        Taken::Fresh(_) => 1,
                        Taken::AlreadyTaken(_) => 0,
                        Taken::Unknown => 100,
                    }
                } else {
                    match s
                        .take_refresh_token(&SecretHash::of("race-rt"))
                        .await
                        .unwrap()
                    {
                        Taken::Fresh(_) => 1,
                        Taken::AlreadyTaken(_) => 0,
                        Taken::Unknown => 100,
                    }
                }
            }));
        }
        let mut fresh = 0;
        for t in tasks {
            fresh += t.await.unwrap();
        }
        assert_eq!(
            fresh, 1,
            "exactly one of 32 concurrent takes gets the {what}"
        );
    }
}

async fn revocation<S: Store>(s: &S) {
    let g = grant("g-revoke");
    s.apply(&[
        Effect::StoreAccessToken(access_record("at-1", &g)),
        Effect::StoreRefreshToken(refresh_record("rt-1", &g)),
    ])
    .await
    .unwrap();
    assert!(
        s.access_token(&SecretHash::of("at-1"))
            .await
            .unwrap()
            .is_some()
    );
    s.apply(&[Effect::RevokeGrant(g.clone())]).await.unwrap();
    assert!(
        s.access_token(&SecretHash::of("at-1"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.take_refresh_token(&SecretHash::of("rt-1")).await.unwrap(),
        Taken::Unknown
    );
    // Tokens racing the revocation are refused, and the whole transaction with them.
    let late = s
        .apply(&[
            Effect::RememberNonce(NonceRecord {
                client_id: "rp".into(),
                nonce: "late".into(),
                expires_at: NOW + Duration::hours(1),
            }),
            Effect::StoreAccessToken(access_record("at-2", &g)),
        ])
        .await;
    assert!(matches!(late, Err(StoreError::GrantRevoked)));
    assert!(
        s.access_token(&SecretHash::of("at-2"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !s.nonce_seen("rp", "late", NOW).await.unwrap(),
        "nothing of a failed transaction lands"
    );
}

async fn nonces_consents_pending_sessions_keys<S: Store>(s: &S) {
    s.apply(&[
        Effect::RememberNonce(NonceRecord {
            client_id: "rp".into(),
            nonce: "n-1".into(),
            expires_at: NOW + Duration::minutes(5),
        }),
        Effect::RememberConsent(ConsentRecord {
            subject: "alice".into(),
            client_id: "rp".into(),
            scope: Scope::parse("openid email").unwrap(),
        }),
        Effect::RememberConsent(ConsentRecord {
            subject: "alice".into(),
            client_id: "rp".into(),
            scope: Scope::parse("profile").unwrap(),
        }),
    ])
    .await
    .unwrap();
    assert!(s.nonce_seen("rp", "n-1", NOW).await.unwrap());
    assert!(!s.nonce_seen("other", "n-1", NOW).await.unwrap());
    assert!(
        !s.nonce_seen("rp", "n-1", NOW + Duration::minutes(6))
            .await
            .unwrap()
    );
    let all = Scope::parse("openid email profile").unwrap();
    assert!(
        s.consented("alice", "rp", &all).await.unwrap(),
        "consents accumulate"
    );
    assert!(
        !s.consented("alice", "rp", &Scope::parse("phone").unwrap())
            .await
            .unwrap()
    );
    assert!(!s.consented("bob", "rp", &all).await.unwrap());

    let session = auth("alice");
    let sid = SecretHash::of("session-cookie");
    s.put_session(&sid, &session, NOW + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(s.session(&sid, NOW).await.unwrap(), Some(session));
    assert_eq!(
        s.session(&sid, NOW + Duration::hours(2)).await.unwrap(),
        None
    );

    let k1 = StoredKey {
        kid: "k1".into(),
        alg: Algorithm::ES256,
        pem: "pem-1".into(),
        created_at: NOW,
    };
    let k2 = StoredKey {
        kid: "k0".into(),
        alg: Algorithm::RS256,
        pem: "pem-2".into(),
        created_at: NOW + Duration::seconds(1),
    };
    s.add_signing_key(&k2).await.unwrap();
    s.add_signing_key(&k1).await.unwrap();
    assert_eq!(
        s.signing_keys().await.unwrap(),
        vec![k1.clone(), k2],
        "oldest first"
    );
    assert!(matches!(
        s.add_signing_key(&k1).await,
        Err(StoreError::Duplicate(_))
    ));
}

async fn purge<S: Store>(s: &S) {
    let g = grant("g-purge");
    s.apply(&[
        Effect::StoreCode(code_record("old-code", &g)),
        Effect::StoreAccessToken(access_record("old-at", &g)),
    ])
    .await
    .unwrap();
    let later = NOW + Duration::days(2);
    assert!(s.purge_expired(later).await.unwrap() >= 2);
    assert_eq!(
        s.take_code(&SecretHash::of("old-code")).await.unwrap(),
        Taken::Unknown
    );
    assert!(
        s.access_token(&SecretHash::of("old-at"))
            .await
            .unwrap()
            .is_none()
    );
}

/// A whole code flow through the driver: login page, consent page, redirect, token, userinfo.
async fn driver_code_flow<S: Store>(s: &S) {
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
    let q = b"response_type=code&client_id=rp&redirect_uri=https%3A%2F%2Frp.example%2Fcb&scope=openid+email&state=st";
    let AuthorizeResult::Login { handle, .. } =
        driver::authorize(s, &provider, AuthorizeFlow::from_query(q), None, NOW)
            .await
            .unwrap()
    else {
        panic!("expected the login page")
    };
    let Some(Ok(oidc_flow::authorize::Resumed::Login(login))) =
        driver::unpark(s, &handle, NOW).await.unwrap()
    else {
        panic!("the parked request resumes at login")
    };
    assert!(
        driver::unpark(s, &handle, NOW).await.unwrap().is_none(),
        "a handle is single-use"
    );
    let user = auth("sub-alice");
    let AuthorizeResult::Consent { handle, .. } = driver::authorize(
        s,
        &provider,
        AuthorizeFlow::after_login(login, user.clone()),
        None,
        NOW,
    )
    .await
    .unwrap() else {
        panic!("expected the consent page")
    };
    let Some(Ok(oidc_flow::authorize::Resumed::Consent(consent))) =
        driver::unpark(s, &handle, NOW).await.unwrap()
    else {
        panic!("the parked request resumes at consent")
    };
    let AuthorizeResult::Redirect(redirect) = driver::authorize(
        s,
        &provider,
        AuthorizeFlow::after_consent(consent, ConsentAnswer::Allow),
        None,
        NOW,
    )
    .await
    .unwrap() else {
        panic!("expected the redirect")
    };
    let code = redirect.param("code").unwrap();
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Frp.example%2Fcb"
    );
    let basic = b"Basic cnA6czNjcmV0LXMzY3JldA==";
    let resp = driver::token(s, &provider, form.as_bytes(), Some(basic), NOW)
        .await
        .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body);
    let at = resp.json()["access_token"].as_str().unwrap().to_owned();
    let ui = driver::userinfo(
        s,
        &provider,
        Some(format!("Bearer {at}").as_bytes()),
        None,
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(ui.json()["email"], "alice@example.com");
    // The consent was remembered: prompt=none now succeeds at once.
    let q2 = b"response_type=code&client_id=rp&redirect_uri=https%3A%2F%2Frp.example%2Fcb&scope=openid&prompt=none";
    let AuthorizeResult::Redirect(r) =
        driver::authorize(s, &provider, AuthorizeFlow::from_query(q2), Some(user), NOW)
            .await
            .unwrap()
    else {
        panic!("expected a silent redirect")
    };
    assert!(r.param("code").is_some());
    // Replay of the first code: invalid_grant, and the first access token is revoked.
    let again = driver::token(s, &provider, form.as_bytes(), Some(basic), NOW)
        .await
        .unwrap();
    assert_eq!(again.json()["error"], "invalid_grant");
    let ui = driver::userinfo(
        s,
        &provider,
        Some(format!("Bearer {at}").as_bytes()),
        None,
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(ui.status, 401);
}

async fn suite<S: Store>(s: Arc<S>) {
    clients_and_users(&*s).await;
    codes_are_taken_once(&*s).await;
    concurrent_takes(s.clone()).await;
    revocation(&*s).await;
    nonces_consents_pending_sessions_keys(&*s).await;
    driver_code_flow(&*s).await;
    purge(&*s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_backend() {
    suite(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_in_memory_backend() {
    suite(Arc::new(
        SqliteStore::open("sqlite::memory:").await.unwrap(),
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_file_backend_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("store.sqlite").display());
    let store = SqliteStore::open(&url).await.unwrap();
    suite(Arc::new(store.clone())).await;
    // What was written survives closing and reopening the file.
    let g = grant("g-persist");
    let secret = MintedSecret::generate(&mut driver::system_rng());
    store
        .apply(&[Effect::StoreRefreshToken(refresh_record(
            secret.as_str(),
            &g,
        ))])
        .await
        .unwrap();
    store.close().await;
    let reopened = SqliteStore::open(&url).await.unwrap();
    assert!(matches!(
        reopened.take_refresh_token(&secret.hash()).await.unwrap(),
        Taken::Fresh(_)
    ));
    assert_eq!(reopened.signing_keys().await.unwrap().len(), 2);
    assert!(reopened.client("rp").await.unwrap().is_some());
}

#[tokio::test]
async fn sqlite_keeps_clear_client_secrets_encrypted_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.sqlite");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::open(&url).await.unwrap();
    let mut hs = client();
    hs.client_id = "hs-rp".into();
    hs.client_secret_sha256 = None;
    hs.client_secret = Some("hmac-key-that-must-stay-secret".into());
    hs.id_token_signed_response_alg = Some(Algorithm::HS256);
    let hs = hs.validate().unwrap();
    store.add_client(&hs).await.unwrap();
    let raw: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT data FROM clients WHERE client_id = 'hs-rp'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        !raw.contains("hmac-key-that-must-stay-secret"),
        "stored in clear: {raw}"
    );
    assert_eq!(store.client("hs-rp").await.unwrap(), Some(hs.clone()));
    store.close().await;
    // The key file beside the database opens it again; another key does not.
    assert!(path.with_extension("sqlite.key").exists());
    let reopened = SqliteStore::open(&url).await.unwrap();
    assert_eq!(reopened.client("hs-rp").await.unwrap(), Some(hs));
    reopened.close().await;
    std::fs::write(
        path.with_extension("sqlite.key"),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .unwrap();
    let wrong = SqliteStore::open(&url).await.unwrap();
    assert!(matches!(
        wrong.client("hs-rp").await,
        Err(StoreError::DataKey(_))
    ));
}
