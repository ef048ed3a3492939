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
use oidc_flow_store::{
    Admin, DEFAULT_SESSION_IDLE_TIMEOUT, KeyState, MemoryStore, SqliteStore, Store, StoreError,
    StoredKey, UserRecord,
};
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
        sid: None,
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
        audience: Vec::new(),
        issued_at: None,
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
        issued_at: None,
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

/// Resource servers are found by their exact resource indicator (RFC 8707), the first by
/// client id when several answer to one; clients without one are never found.
async fn resource_servers<S: Store>(s: &S) {
    let api = "https://api.example.com";
    let server = |id: &str, secret_hash: bool| {
        let mut json = serde_json::json!({
            "client_id": id,
            "redirect_uris": [],
            "response_types": [],
            "grant_types": [],
            "resource": api,
        });
        if secret_hash {
            json["client_secret_sha256"] = SecretHash::of("s3cret-s3cret").to_hex().into();
        } else {
            // A secret kept in clear (sealed at rest by SQLite) must come back opened.
            json["client_secret"] = "a-clear-secret-0123456789abcdef0123456789".into();
        }
        serde_json::from_value::<Client>(json)
            .unwrap()
            .validate()
            .unwrap()
    };
    assert_eq!(s.resource_server(api).await.unwrap(), None);
    s.add_client(&server("rs-b", false)).await.unwrap();
    assert_eq!(
        s.resource_server(api).await.unwrap(),
        Some(server("rs-b", false))
    );
    s.add_client(&server("rs-a", true)).await.unwrap();
    assert_eq!(
        s.resource_server(api).await.unwrap(),
        Some(server("rs-a", true))
    );
    assert_eq!(
        s.resource_server("https://api.example.com/").await.unwrap(),
        None
    );
    assert_eq!(
        s.resource_server("https://rp.example/cb").await.unwrap(),
        None
    );
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

async fn concurrent_nonce_claims<S: Store>(s: Arc<S>) {
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let n = NonceRecord {
                client_id: "rp".into(),
                nonce: "raced".into(),
                expires_at: NOW + Duration::minutes(30),
            };
            usize::from(s.claim_nonce(&n, NOW).await.unwrap())
        }));
    }
    let mut claimed = 0;
    for t in tasks {
        claimed += t.await.unwrap();
    }
    assert_eq!(
        claimed, 1,
        "exactly one of 32 concurrent claims of a nonce wins"
    );
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
    // The revocation endpoint's lookup finds a live refresh token without taking it.
    for _ in 0..2 {
        let found = s.refresh_token(&SecretHash::of("rt-1")).await.unwrap();
        assert_eq!(found.map(|r| r.grant), Some(g.clone()));
    }
    assert!(
        s.refresh_token(&SecretHash::of("no-such"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(!s.grant_revoked(&g).await.unwrap());
    s.apply(&[Effect::RevokeGrant(g.clone())]).await.unwrap();
    assert!(
        s.grant_revoked(&g).await.unwrap(),
        "what a JWT access token is checked against"
    );
    assert!(!s.grant_revoked(&grant("g-other")).await.unwrap());
    assert!(
        s.refresh_token(&SecretHash::of("rt-1"))
            .await
            .unwrap()
            .is_none(),
        "a revoked refresh token is not found"
    );
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
    // A rotated (taken) refresh token is not found either.
    let g2 = grant("g-rotated");
    s.apply(&[Effect::StoreRefreshToken(refresh_record("rt-rot", &g2))])
        .await
        .unwrap();
    assert!(matches!(
        s.take_refresh_token(&SecretHash::of("rt-rot"))
            .await
            .unwrap(),
        Taken::Fresh(_)
    ));
    assert!(
        s.refresh_token(&SecretHash::of("rt-rot"))
            .await
            .unwrap()
            .is_none()
    );
    // Tokens racing the revocation are refused, and the whole transaction with them.
    let late = s
        .apply(&[
            Effect::RememberConsent(ConsentRecord {
                subject: "late".into(),
                client_id: "rp".into(),
                scope: Scope::parse("openid").unwrap(),
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
        !s.consented("late", "rp", &Scope::parse("openid").unwrap())
            .await
            .unwrap(),
        "nothing of a failed transaction lands"
    );
}

/// A parked request's single-use mark: recorded once, kept until it expires, then purged.
/// Runs last: its purge jumps the clock.
async fn parked_marks<S: Store>(store: Arc<S>) {
    let s = &*store;
    // A parked request's single-use mark: recorded once, kept until it expires.
    let mark = oidc_flow::authorize::ParkedMark {
        hash: SecretHash::of("parked-1"),
        expires_at: NOW + Duration::minutes(15),
    };
    assert!(
        s.claim_parked(&mark).await.unwrap(),
        "a new mark is recorded"
    );
    assert!(
        !s.claim_parked(&mark).await.unwrap(),
        "a used mark is refused"
    );
    s.purge_expired(NOW + Duration::minutes(1)).await.unwrap();
    assert!(
        !s.claim_parked(&mark).await.unwrap(),
        "an unexpired mark survives the purge"
    );
    let purged = s.purge_expired(NOW + Duration::minutes(16)).await.unwrap();
    assert!(purged >= 1, "an expired mark is purged");
    // Two browsers racing with one sealed value: exactly one claim wins.
    let raced = oidc_flow::authorize::ParkedMark {
        hash: SecretHash::of("parked-raced"),
        expires_at: NOW + Duration::minutes(30),
    };
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            let raced = raced.clone();
            tokio::spawn(async move { store.claim_parked(&raced).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "one claim of a parked request wins");
}

async fn nonces_consents_pending_sessions_keys<S: Store>(s: &S) {
    let n1 = NonceRecord {
        client_id: "rp".into(),
        nonce: "n-1".into(),
        expires_at: NOW + Duration::minutes(5),
    };
    assert!(
        s.claim_nonce(&n1, NOW).await.unwrap(),
        "a new nonce is claimed"
    );
    assert!(
        !s.claim_nonce(&n1, NOW).await.unwrap(),
        "a replay is refused"
    );
    let other_client = NonceRecord {
        client_id: "other".into(),
        ..n1.clone()
    };
    assert!(
        s.claim_nonce(&other_client, NOW).await.unwrap(),
        "nonces are per client"
    );
    assert!(
        s.claim_nonce(&n1, NOW + Duration::minutes(6))
            .await
            .unwrap(),
        "an expired nonce can be claimed again"
    );
    s.apply(&[
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
    let idle = DEFAULT_SESSION_IDLE_TIMEOUT;
    assert_eq!(s.session(&sid, NOW, idle).await.unwrap(), Some(session));
    assert_eq!(
        s.session(&sid, NOW + Duration::hours(2), Duration::hours(3))
            .await
            .unwrap(),
        None,
        "past its expiry"
    );

    let k1 = StoredKey {
        kid: "k1".into(),
        alg: Algorithm::ES256,
        pem: "pem-1".into(),
        created_at: NOW,
        state: KeyState::Active,
    };
    let k2 = StoredKey {
        kid: "k0".into(),
        alg: Algorithm::RS256,
        pem: "pem-2".into(),
        created_at: NOW + Duration::seconds(1),
        state: KeyState::Rotated {
            at: NOW + Duration::seconds(2),
        },
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

fn session_of(subject: &str, sid: &str) -> Authentication {
    Authentication {
        sid: Some(sid.into()),
        ..auth(subject)
    }
}

/// Idle timeout, the throttled last-used write, the clients of a session, logout.
async fn sessions<S: Store>(s: &S) {
    let idle = Duration::minutes(30);
    let long = NOW + Duration::hours(8);
    let cookie = SecretHash::of("idle-cookie");
    s.put_session(&cookie, &session_of("carol", "sid-idle"), long)
        .await
        .unwrap();
    // Used at 20 and 45 minutes: each use within the idle timeout of the last one written.
    for minutes in [20, 45, 70] {
        assert!(
            s.session(&cookie, NOW + Duration::minutes(minutes), idle)
                .await
                .unwrap()
                .is_some(),
            "used again after {minutes} minutes"
        );
    }
    // Unused for longer than the idle timeout: gone, though far from its expiry.
    assert_eq!(
        s.session(&cookie, NOW + Duration::minutes(101), idle)
            .await
            .unwrap(),
        None
    );
    // A use within the touch interval is not written: the idle time counts from the last
    // written use (NOW + 70 min), not from NOW + 70 min + 30 s.
    let quick = SecretHash::of("quick-cookie");
    s.put_session(&quick, &session_of("carol", "sid-quick"), long)
        .await
        .unwrap();
    assert!(
        s.session(&quick, NOW + Duration::seconds(30), idle)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        s.session(&quick, NOW + Duration::seconds(30) + idle, idle)
            .await
            .unwrap(),
        None,
        "the use 30 s in was not written"
    );

    // The clients of a session, once each.
    let c1 = SecretHash::of("cookie-1");
    let c2 = SecretHash::of("cookie-2");
    s.put_session(&c1, &session_of("dave", "sid-1"), long)
        .await
        .unwrap();
    s.put_session(&c2, &session_of("dave", "sid-2"), long)
        .await
        .unwrap();
    s.apply(&[
        Effect::JoinSession {
            sid: "sid-1".into(),
            client_id: "rp-b".into(),
        },
        Effect::JoinSession {
            sid: "sid-1".into(),
            client_id: "rp-a".into(),
        },
        Effect::JoinSession {
            sid: "sid-1".into(),
            client_id: "rp-a".into(),
        },
        Effect::JoinSession {
            sid: "sid-2".into(),
            client_id: "rp-c".into(),
        },
    ])
    .await
    .unwrap();
    let mut clients = s.session_clients("sid-1").await.unwrap();
    clients.sort();
    assert_eq!(clients, vec!["rp-a".to_owned(), "rp-b".to_owned()]);
    assert!(s.session_clients("sid-none").await.unwrap().is_empty());

    // EndSession deletes the session and its clients.
    s.apply(&[Effect::EndSession {
        sid: "sid-2".into(),
    }])
    .await
    .unwrap();
    assert_eq!(s.session(&c2, NOW, idle).await.unwrap(), None);
    assert!(s.session_clients("sid-2").await.unwrap().is_empty());
    assert!(s.session(&c1, NOW, idle).await.unwrap().is_some());

    // Ending every session of a user: what ended, and nothing of others.
    let c3 = SecretHash::of("cookie-3");
    s.put_session(&c3, &session_of("dave", "sid-3"), long)
        .await
        .unwrap();
    let erin = SecretHash::of("cookie-erin");
    s.put_session(&erin, &session_of("erin", "sid-erin"), long)
        .await
        .unwrap();
    s.apply(&[Effect::JoinSession {
        sid: "sid-erin".into(),
        client_id: "rp-a".into(),
    }])
    .await
    .unwrap();
    let mut ended = s.end_sessions_of("dave").await.unwrap();
    ended.sort();
    for (_, clients) in &mut ended {
        clients.sort();
    }
    assert_eq!(
        ended,
        vec![
            (
                "sid-1".to_owned(),
                vec!["rp-a".to_owned(), "rp-b".to_owned()]
            ),
            ("sid-3".to_owned(), vec![]),
        ]
    );
    assert_eq!(s.session(&c1, NOW, idle).await.unwrap(), None);
    assert_eq!(s.session(&c3, NOW, idle).await.unwrap(), None);
    assert!(s.session_clients("sid-1").await.unwrap().is_empty());
    assert!(s.end_sessions_of("dave").await.unwrap().is_empty());
    assert!(s.session(&erin, NOW, idle).await.unwrap().is_some());
    assert_eq!(s.session_clients("sid-erin").await.unwrap(), vec!["rp-a"]);

    // Purge: an expired session goes with its client rows; a live one stays.
    let short = SecretHash::of("cookie-short");
    s.put_session(
        &short,
        &session_of("frank", "sid-short"),
        NOW + Duration::minutes(5),
    )
    .await
    .unwrap();
    s.apply(&[Effect::JoinSession {
        sid: "sid-short".into(),
        client_id: "rp-a".into(),
    }])
    .await
    .unwrap();
    assert!(s.purge_expired(NOW + Duration::minutes(10)).await.unwrap() >= 2);
    assert!(s.session_clients("sid-short").await.unwrap().is_empty());
    assert_eq!(s.session_clients("sid-erin").await.unwrap(), vec!["rp-a"]);
    assert!(
        s.session(&erin, NOW + Duration::minutes(10), idle)
            .await
            .unwrap()
            .is_some()
    );
}

/// What the command line changes: clients, users and key states.
async fn admin<S: Admin>(s: &S) {
    let mut other = client();
    other.client_id = "admin-rp".into();
    s.add_client(&other).await.unwrap();
    let ids: Vec<String> = s
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert!(ids.contains(&"admin-rp".to_owned()) && ids.contains(&"rp".to_owned()));
    assert!(ids.windows(2).all(|w| w[0] <= w[1]), "sorted: {ids:?}");
    // Update: the new registration is what the store answers at once.
    let mut changed = other.clone();
    changed.redirect_uris = vec!["https://rp.example/other".into()];
    assert!(s.update_client(&changed).await.unwrap());
    assert_eq!(s.client("admin-rp").await.unwrap(), Some(changed.clone()));
    let mut ghost = changed.clone();
    ghost.client_id = "ghost".into();
    assert!(!s.update_client(&ghost).await.unwrap());
    // Remove: gone, with its consents.
    s.apply(&[Effect::RememberConsent(ConsentRecord {
        subject: "alice".into(),
        client_id: "admin-rp".into(),
        scope: Scope::parse("openid").unwrap(),
    })])
    .await
    .unwrap();
    assert!(s.remove_client("admin-rp").await.unwrap());
    assert_eq!(s.client("admin-rp").await.unwrap(), None);
    assert!(!s.remove_client("admin-rp").await.unwrap());
    s.add_client(&other).await.unwrap();
    assert!(
        !s.consented("alice", "admin-rp", &Scope::parse("openid").unwrap())
            .await
            .unwrap(),
        "a consent does not outlive its client"
    );
    assert!(s.remove_client("admin-rp").await.unwrap());

    // Users.
    let user = UserRecord {
        username: "admin-user".into(),
        subject: "sub-admin-user".into(),
        password_hash: "hash-1".into(),
        claims: UserInfo::default(),
    };
    s.add_user(&user).await.unwrap();
    let names: Vec<String> = s
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert!(names.contains(&"admin-user".to_owned()));
    let changed = UserRecord {
        password_hash: "hash-2".into(),
        ..user.clone()
    };
    assert!(s.update_user(&changed).await.unwrap());
    assert_eq!(
        s.user_by_name("admin-user")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "hash-2"
    );
    assert!(s.remove_user("admin-user").await.unwrap());
    assert!(s.user_by_name("admin-user").await.unwrap().is_none());
    assert!(!s.remove_user("admin-user").await.unwrap());
    assert!(!s.update_user(&changed).await.unwrap());

    // Key states.
    let key = StoredKey {
        kid: "admin-k".into(),
        alg: Algorithm::EdDSA,
        pem: "pem-admin".into(),
        created_at: NOW + Duration::days(1),
        state: KeyState::Active,
    };
    s.add_signing_key(&key).await.unwrap();
    let rotated = KeyState::Rotated {
        at: NOW + Duration::days(2),
    };
    assert!(s.set_key_state("admin-k", rotated).await.unwrap());
    let found = s.signing_keys().await.unwrap();
    let found = found.iter().find(|k| k.kid == "admin-k").unwrap();
    assert_eq!(found.state, rotated);
    assert_eq!(found.pem, "pem-admin");
    assert!(!s.set_key_state("nope", KeyState::Active).await.unwrap());
    assert!(s.remove_signing_key("admin-k").await.unwrap());
    assert!(!s.remove_signing_key("admin-k").await.unwrap());
    assert!(
        s.signing_keys()
            .await
            .unwrap()
            .iter()
            .all(|k| k.kid != "admin-k")
    );
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

/// A provider signing with the fixture P-256 key (ES256).
fn es256_provider() -> Provider {
    let pem = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/keys/p256.pem"
    ))
    .unwrap();
    let mut keys = KeySet::new();
    keys.add(SigningKey::from_pem(&pem, Algorithm::ES256, None).unwrap())
        .unwrap();
    Provider::builder("https://op.example", keys)
        .default_alg(Algorithm::ES256)
        .build()
        .unwrap()
}

/// A whole code flow through the driver: login page, consent page, redirect, token, userinfo.
async fn driver_code_flow<S: Store>(s: &S) {
    let provider = es256_provider();
    let q = b"response_type=code&client_id=rp&redirect_uri=https%3A%2F%2Frp.example%2Fcb&scope=openid+email&state=st";
    let AuthorizeResult::Login { sealed, .. } = driver::authorize(
        s,
        &provider,
        AuthorizeFlow::from_query(q),
        None,
        "browser-1",
        NOW,
    )
    .await
    .unwrap() else {
        panic!("expected the login page")
    };
    // Sealed to the browser: another browser's binding, or an edited value, does not open.
    assert!(driver::open_parked(s, sealed.as_str(), "browser-2", NOW).is_err());
    let mut edited = sealed.as_str().to_owned();
    let last = edited.pop().unwrap();
    edited.push(if last == 'A' { 'B' } else { 'A' });
    assert!(driver::open_parked(s, &edited, "browser-1", NOW).is_err());
    assert!(
        driver::open_parked(
            s,
            sealed.as_str(),
            "browser-1",
            NOW + driver::PENDING_LIFETIME
        )
        .is_err(),
        "a parked request expires"
    );
    // Looking at it (the page shown again) neither uses it nor writes.
    let pending = driver::open_parked(s, sealed.as_str(), "browser-1", NOW).unwrap();
    assert!(matches!(
        driver::view_parked(s, &pending).await.unwrap(),
        Ok(oidc_flow::authorize::PendingView::Login(_))
    ));
    let Ok(oidc_flow::authorize::Resumed::Login(login)) = driver::unpark(s, pending).await.unwrap()
    else {
        panic!("the parked request resumes at login")
    };
    let again = driver::open_parked(s, sealed.as_str(), "browser-1", NOW).unwrap();
    assert!(
        driver::unpark(s, again).await.unwrap().is_err(),
        "a parked request is single-use"
    );
    let user = auth("sub-alice");
    let AuthorizeResult::Consent { sealed, .. } = driver::authorize(
        s,
        &provider,
        AuthorizeFlow::after_login(login, user.clone()),
        None,
        "browser-1",
        NOW,
    )
    .await
    .unwrap() else {
        panic!("expected the consent page")
    };
    let pending = driver::open_parked(s, sealed.as_str(), "browser-1", NOW).unwrap();
    let Ok(oidc_flow::authorize::Resumed::Consent(consent)) =
        driver::unpark(s, pending).await.unwrap()
    else {
        panic!("the parked request resumes at consent")
    };
    let AuthorizeResult::Redirect(redirect) = driver::authorize(
        s,
        &provider,
        AuthorizeFlow::after_consent(consent, ConsentAnswer::Allow),
        None,
        "browser-1",
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
    let resp = driver::token(
        s,
        &provider,
        &Default::default(),
        form.as_bytes(),
        Some(basic),
        NOW,
    )
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
    let AuthorizeResult::Redirect(r) = driver::authorize(
        s,
        &provider,
        AuthorizeFlow::from_query(q2),
        Some(user),
        "browser-1",
        NOW,
    )
    .await
    .unwrap() else {
        panic!("expected a silent redirect")
    };
    assert!(r.param("code").is_some());
    // Replay of the first code: invalid_grant, and the first access token is revoked.
    let again = driver::token(
        s,
        &provider,
        &Default::default(),
        form.as_bytes(),
        Some(basic),
        NOW,
    )
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

/// A JWT access token through the drivers: issued without a write, active at
/// introspection, then revoked (RFC 7009) and inactive there: the store's revoked grant is
/// all that changed.
async fn driver_jwt_access_tokens<S: Admin>(s: &S) {
    let provider = es256_provider();
    let service = serde_json::from_value::<Client>(serde_json::json!({
        "client_id": "svc-jwt",
        "client_secret_sha256": SecretHash::of("svc-jwt-s3cret").to_hex(),
        "redirect_uris": [],
        "response_types": [],
        "grant_types": ["client_credentials"],
        "scope": "openid api:read",
        "access_token_format": "jwt",
    }))
    .unwrap()
    .validate()
    .unwrap();
    s.add_client(&service).await.unwrap();
    // "svc-jwt:svc-jwt-s3cret"
    let basic = b"Basic c3ZjLWp3dDpzdmMtand0LXMzY3JldA==";
    let resp = driver::token(
        s,
        &provider,
        &Default::default(),
        b"grant_type=client_credentials&scope=api%3Aread",
        Some(basic),
        NOW,
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body);
    let at = resp.json()["access_token"].as_str().unwrap().to_owned();
    assert!(
        s.access_token(&SecretHash::of(&at))
            .await
            .unwrap()
            .is_none(),
        "a JWT access token is not stored"
    );
    let form = format!("token={at}");
    let seen = driver::introspect(&provider, s, form.as_bytes(), Some(basic), NOW)
        .await
        .unwrap()
        .json();
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["client_id"], "svc-jwt");
    assert_eq!(seen["scope"], "api:read");
    let revoked = driver::revoke(&provider, s, form.as_bytes(), Some(basic), NOW)
        .await
        .unwrap();
    assert_eq!(revoked.status, 200);
    let seen = driver::introspect(&provider, s, form.as_bytes(), Some(basic), NOW)
        .await
        .unwrap();
    assert_eq!(seen.body, r#"{"active":false}"#);
}

async fn suite<S: Admin>(s: Arc<S>) {
    clients_and_users(&*s).await;
    resource_servers(&*s).await;
    codes_are_taken_once(&*s).await;
    concurrent_takes(s.clone()).await;
    concurrent_nonce_claims(s.clone()).await;
    revocation(&*s).await;
    nonces_consents_pending_sessions_keys(&*s).await;
    driver_code_flow(&*s).await;
    driver_jwt_access_tokens(&*s).await;
    sessions(&*s).await;
    admin(&*s).await;
    purge(&*s).await;
    parked_marks(s.clone()).await;
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
    hs.client_secret = Some("hmac-key-that-must-stay-secret-32bytes+".into());
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
        !raw.contains("hmac-key-that-must-stay-secret-32bytes+"),
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
    // Another key is refused when the store opens, before anything is sealed under it.
    assert!(matches!(
        SqliteStore::open(&url).await,
        Err(StoreError::DataKey(_))
    ));
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use oidc_flow_store::PostgresStore;
    use oidc_flow_store::testing::{fresh_postgres_database, test_data_key};

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_backend_and_reopen() {
        let Some(url) = fresh_postgres_database("postgres_backend_and_reopen").await else {
            return;
        };
        let store = PostgresStore::open_with_key(&url, test_data_key())
            .await
            .unwrap();
        suite(Arc::new(store.clone())).await;
        // What was written is there for another store on the same database (another node),
        // and a second open applies no migration twice.
        let g = grant("g-persist");
        let secret = MintedSecret::generate(&mut driver::system_rng());
        store
            .apply(&[Effect::StoreRefreshToken(refresh_record(
                secret.as_str(),
                &g,
            ))])
            .await
            .unwrap();
        let other = PostgresStore::open_with_key(&url, test_data_key())
            .await
            .unwrap();
        assert!(matches!(
            other.take_refresh_token(&secret.hash()).await.unwrap(),
            Taken::Fresh(_)
        ));
        assert!(matches!(
            store.take_refresh_token(&secret.hash()).await.unwrap(),
            Taken::AlreadyTaken(_)
        ));
        assert_eq!(other.signing_keys().await.unwrap().len(), 2);
        assert!(other.client("rp").await.unwrap().is_some());
        // A NUL character (which PostgreSQL's TEXT refuses) finds nothing instead of failing,
        // and a nonce may hold one.
        assert!(store.client("r\0p").await.unwrap().is_none());
        assert!(store.user_by_name("al\0ice").await.unwrap().is_none());
        assert!(store.resource_server("https://\0").await.unwrap().is_none());
        let nul_nonce = NonceRecord {
            client_id: "rp".into(),
            nonce: "n\0nce".into(),
            expires_at: NOW + Duration::minutes(10),
        };
        assert!(store.claim_nonce(&nul_nonce, NOW).await.unwrap());
        assert!(!other.claim_nonce(&nul_nonce, NOW).await.unwrap());
    }

    #[tokio::test]
    async fn postgres_keeps_clear_client_secrets_sealed_and_refuses_another_key() {
        let Some(url) = fresh_postgres_database("postgres_sealed").await else {
            return;
        };
        let store = PostgresStore::open_with_key(&url, test_data_key())
            .await
            .unwrap();
        let mut hs = client();
        hs.client_id = "hs-rp".into();
        hs.client_secret_sha256 = None;
        hs.client_secret = Some("hmac-key-that-must-stay-secret-32bytes+".into());
        hs.id_token_signed_response_alg = Some(Algorithm::HS256);
        let hs = hs.validate().unwrap();
        store.add_client(&hs).await.unwrap();
        let (raw_client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let raw: String = raw_client
            .query_one("SELECT data FROM clients WHERE client_id = 'hs-rp'", &[])
            .await
            .unwrap()
            .get(0);
        assert!(
            !raw.contains("hmac-key-that-must-stay-secret-32bytes+"),
            "stored in clear: {raw}"
        );
        assert_eq!(store.client("hs-rp").await.unwrap(), Some(hs));
        // A node with another data key is refused when it opens the store.
        let other = oidc_flow_store::DataKey::from_bytes(&[9; 32]).unwrap();
        assert!(matches!(
            PostgresStore::open_with_key(&url, other).await,
            Err(StoreError::DataKey(_))
        ));
    }

    /// One node purges at a time: while another session holds the purge lock, a purge
    /// removes nothing and says so; once it is released, the same purge removes the rows.
    #[tokio::test]
    async fn postgres_purges_one_node_at_a_time() {
        let Some(url) = fresh_postgres_database("postgres_purge_lock").await else {
            return;
        };
        let store = PostgresStore::open_with_key(&url, test_data_key())
            .await
            .unwrap();
        let g = grant("g-purge-lock");
        store
            .apply(&[Effect::StoreAccessToken(access_record("purge-at", &g))])
            .await
            .unwrap();
        let (mut other_node, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let purging = other_node.transaction().await.unwrap();
        // The purge lock's key (postgres.rs, PURGE_LOCK), held as another node's purge would.
        purging
            .execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&0x6f69_6463_666c_0002_i64],
            )
            .await
            .unwrap();
        let later = NOW + Duration::days(2);
        assert_eq!(store.purge_expired(later).await.unwrap(), 0);
        assert!(
            store
                .access_token(&SecretHash::of("purge-at"))
                .await
                .unwrap()
                .is_some()
        );
        purging.rollback().await.unwrap();
        assert!(store.purge_expired(later).await.unwrap() >= 1);
        assert!(
            store
                .access_token(&SecretHash::of("purge-at"))
                .await
                .unwrap()
                .is_none()
        );
    }

    /// Two stores on one database (two nodes): 32 takes of one code spread over both give
    /// exactly one fresh take, the others the grant to revoke — also on a database whose
    /// default isolation is SERIALIZABLE (the store keeps its sessions READ COMMITTED).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres_two_nodes_take_a_code_once() {
        let Some(url) = fresh_postgres_database("postgres_two_nodes").await else {
            return;
        };
        let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        admin
            .batch_execute(
                "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET \
                 default_transaction_isolation = serializable', current_database()); END $$",
            )
            .await
            .unwrap();
        let a = Arc::new(
            PostgresStore::open_with_key(&url, test_data_key())
                .await
                .unwrap(),
        );
        let b = Arc::new(
            PostgresStore::open_with_key(&url, test_data_key())
                .await
                .unwrap(),
        );
        for round in 0..5 {
            let secret = MintedSecret::generate(&mut driver::system_rng());
            let g = grant(&format!("g-two-{round}"));
            a.apply(&[Effect::StoreCode(code_record(secret.as_str(), &g))])
                .await
                .unwrap();
            let mut tasks = Vec::new();
            for i in 0..32 {
                let node = if i % 2 == 0 { a.clone() } else { b.clone() };
                let hash = secret.hash();
                tasks.push(tokio::spawn(async move { node.take_code(&hash).await }));
            }
            let mut fresh = 0;
            for t in tasks {
                match t.await.unwrap().unwrap() {
                    Taken::Fresh(_) => fresh += 1,
                    Taken::AlreadyTaken(got) => assert_eq!(got, g),
                    Taken::Unknown => panic!("the code vanished"),
                }
            }
            assert_eq!(fresh, 1, "round {round}");
        }
        // A new session gets the database's default: the takes above ran under it but for
        // the store's own setting (a SERIALIZABLE take racing another fails with 40001).
        let (fresh_session, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let isolation: String = fresh_session
            .query_one("SHOW default_transaction_isolation", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            isolation, "serializable",
            "the database's own default stays"
        );
    }
}
