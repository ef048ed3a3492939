//! What every fuzz target runs, in one place.
//!
//! Included with `#[path]` by each `fuzz_targets/<name>.rs` (under libFuzzer) and by the
//! core's `tests/fuzz_replay.rs` (on stable, replaying `fuzz/corpus/**` and
//! `fuzz/regressions/**`), so CI checks every kept input with the very same code.
//!
//! Each public function takes the raw input of one target; it must never panic except
//! through an `assert!` that names a broken invariant. Two-part inputs (header and body)
//! are split at the first `\n`: the first line is the header (an empty line: no header),
//! the rest the body.
//!
//! The fixture is fixed: issuer `https://server.example.com`, the clients of the RFC 6749
//! and OIDC Core examples (`s6BhdRkqt3`, secret `gX1fBat3bV`), an HS256 client and a public
//! client, ES256 and EdDSA keys, fixed time, seeded rng. The RFC examples' code
//! (`SplxlOBeZQQYbZbLGwAj`), refresh token (`tGzv3JOkF0XG5Qx2TlKWIA`) and access token
//! (`mF_9.B5f-4.1JqM`) are in the store, so the seeds reach past the lookups.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use oidc_flow::authorize::{
    self, ConsentAnswer, MarkClaim, PendingAuthorization, Resumed, SealedAuthorization,
};
use oidc_flow::flow::{
    AuthorizeAnswer, AuthorizeFlow, AuthorizeNeed, AuthorizeOutcome, AuthorizeStep,
    IntrospectionFlow, IntrospectionStep, RevocationFlow, RevocationStep, TokenAnswer, TokenFlow,
    TokenLookupAnswer, TokenLookupNeed, TokenNeed, TokenStep, UserinfoAnswer, UserinfoFlow,
    UserinfoNeed, UserinfoStep,
};
use oidc_flow::jws::{self, Signer};
use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow::parking::ParkingSecret;
use oidc_flow::{
    AccessTokenRecord, Authentication, Client, CodeRecord, ConsentRecord, Effect, GrantId,
    JsonResponse, PkceChallenge, PkceMethod, Provider, RefreshTokenRecord, Scope, SecretHash,
    Taken, UserInfo, params, pkce, token, userinfo,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use time::{Duration, OffsetDateTime};

/// The fixture provider's issuer (the host of the OIDC Core examples).
pub const ISSUER: &str = "https://server.example.com";
/// The client of the RFC 6749 and OIDC Core examples.
pub const RFC_CLIENT: &str = "s6BhdRkqt3";
/// Its secret, as in `Authorization: Basic czZCaGRSa3F0MzpnWDFmQmF0M2JW` (RFC 6749 §4.1.3).
pub const RFC_SECRET: &str = "gX1fBat3bV";
/// A client_secret_post client whose ID tokens (and hints) are HS256 with its secret.
pub const HS_CLIENT: &str = "rp-hs";
/// Its secret.
pub const HS_SECRET: &str = "a-long-client-secret-for-hs256-0123456789";
/// A public client (no secret, PKCE required).
pub const PUBLIC_CLIENT: &str = "public-rp";
/// A backend service: the client credentials grant only (client_secret_basic).
pub const SERVICE_CLIENT: &str = "service";
/// Its secret.
pub const SERVICE_SECRET: &str = "service-secret";
/// The scope it registered (with `openid`, which the grant must never give).
pub const SERVICE_SCOPE: &str = "openid api:read api:write";
/// A service that authenticates with client_secret_jwt assertions (RFC 7523).
pub const ASSERT_CLIENT: &str = "assert-client";
/// Its secret, which keys its HS256 assertions.
pub const ASSERT_SECRET: &str = "assertion-secret-0123456789abcdef0123456789";
/// A resource server's credential (introspection only).
pub const RESOURCE_SERVER: &str = "rs-api";
/// Its secret.
pub const RESOURCE_SERVER_SECRET: &str = "rs-api-secret";
/// The resource it answers to (RFC 8707).
pub const RESOURCE: &str = "https://api.example.net";
/// The secret that keys HS* tokens in the `jws` target.
pub const JWS_HMAC_SECRET: &[u8] = b"fuzz-hmac-secret-0123456789abcdef";
/// The code of RFC 6749 §4.1.2, stored for `s6BhdRkqt3` and `https://client.example.com/cb`.
pub const RFC_CODE: &str = "SplxlOBeZQQYbZbLGwAj";
/// A code stored for the public client with the RFC 7636 Appendix B challenge.
pub const PKCE_CODE: &str = "pkce-code-for-public-rp-0123456789";
/// The verifier of RFC 7636 Appendix B.
pub const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// Its S256 challenge.
pub const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// The refresh token of RFC 6749 §6, stored for `s6BhdRkqt3`.
pub const RFC_REFRESH: &str = "tGzv3JOkF0XG5Qx2TlKWIA";
/// The access token of RFC 6750 §2.1, stored for `alice`.
pub const RFC_ACCESS: &str = "mF_9.B5f-4.1JqM";
/// The fixed time of every run.
pub const START: OffsetDateTime = match OffsetDateTime::from_unix_timestamp(1_800_000_000) {
    Ok(t) => t,
    Err(_) => panic!("a valid timestamp"),
};

/// Provider, clients, users and the initial store, built once per process.
pub struct Fixture {
    /// The provider (ES256 default, EdDSA also loaded, nonce replay checked).
    pub provider: Provider,
    /// The registered clients by id.
    pub clients: HashMap<String, Client>,
    /// The keys the `jws` target verifies with: one per asymmetric algorithm ([`JWS_KEYS`]).
    pub keys: KeySet,
    /// The store every run starts from.
    pub store: Store,
    /// The secret parked requests are sealed with.
    pub parking: ParkingSecret,
}

fn key_set() -> KeySet {
    let mut keys = KeySet::new();
    let es = SigningKey::from_pem(
        include_bytes!("../tests/keys/p256.pem"),
        Algorithm::ES256,
        Some("key-es256"),
    )
    .expect("p256 fixture");
    let ed = SigningKey::from_pem(
        include_bytes!("../tests/keys/ed25519.pem"),
        Algorithm::EdDSA,
        Some("key-eddsa"),
    )
    .expect("ed25519 fixture");
    keys.add(es).expect("add es256");
    keys.add(ed).expect("add eddsa");
    keys
}

/// One key of the `jws` target: kid, algorithm, private PEM (ours signs and verifies with
/// it) and the public JWK (the independent verifier's, read from `tests/keys/*.jwk.json`).
pub struct JwsKey {
    /// The kid in the key set and the tokens' headers.
    pub kid: &'static str,
    /// Its one algorithm.
    pub alg: Algorithm,
    pem: &'static [u8],
    jwk: &'static str,
}

/// Every asymmetric algorithm of the core, one key each (the RSA key serves all six).
pub const JWS_KEYS: [JwsKey; 10] = {
    const fn key(
        kid: &'static str,
        alg: Algorithm,
        pem: &'static [u8],
        jwk: &'static str,
    ) -> JwsKey {
        JwsKey { kid, alg, pem, jwk }
    }
    const P256: &[u8] = include_bytes!("../tests/keys/p256.pem");
    const P256_JWK: &str = include_str!("../tests/keys/p256.jwk.json");
    const ED: &[u8] = include_bytes!("../tests/keys/ed25519.pem");
    const ED_JWK: &str = include_str!("../tests/keys/ed25519.jwk.json");
    const P384: &[u8] = include_bytes!("../tests/keys/p384.pem");
    const P384_JWK: &str = include_str!("../tests/keys/p384.jwk.json");
    const P521: &[u8] = include_bytes!("../tests/keys/p521.pem");
    const P521_JWK: &str = include_str!("../tests/keys/p521.jwk.json");
    const RSA: &[u8] = include_bytes!("../tests/keys/rsa2048.pem");
    const RSA_JWK: &str = include_str!("../tests/keys/rsa2048.jwk.json");
    [
        key("key-es256", Algorithm::ES256, P256, P256_JWK),
        key("key-eddsa", Algorithm::EdDSA, ED, ED_JWK),
        key("key-es384", Algorithm::ES384, P384, P384_JWK),
        key("key-es512", Algorithm::ES512, P521, P521_JWK),
        key("key-rs256", Algorithm::RS256, RSA, RSA_JWK),
        key("key-rs384", Algorithm::RS384, RSA, RSA_JWK),
        key("key-rs512", Algorithm::RS512, RSA, RSA_JWK),
        key("key-ps256", Algorithm::PS256, RSA, RSA_JWK),
        key("key-ps384", Algorithm::PS384, RSA, RSA_JWK),
        key("key-ps512", Algorithm::PS512, RSA, RSA_JWK),
    ]
};

fn jws_key_set() -> KeySet {
    let mut keys = KeySet::new();
    for k in &JWS_KEYS {
        let key = SigningKey::from_pem(k.pem, k.alg, Some(k.kid)).expect("jws key fixture");
        keys.add(key).expect("add a jws key");
    }
    keys
}

fn client(json: serde_json::Value) -> Client {
    serde_json::from_value::<Client>(json)
        .expect("client fixture")
        .validate()
        .expect("valid client fixture")
}

fn alice(at: OffsetDateTime) -> Authentication {
    Authentication {
        subject: "alice".to_owned(),
        auth_time: at,
        acr: None,
        amr: vec!["pwd".to_owned()],
        sid: None,
    }
}

/// The fixture, built on first use.
pub static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let provider = Provider::builder(ISSUER, key_set())
        .default_alg(Algorithm::ES256)
        .check_nonce_replay(true)
        .code_lifetime(Duration::minutes(10))
        .build()
        .expect("provider fixture");
    let all_rt = serde_json::json!([
        "code",
        "id_token",
        "id_token token",
        "code id_token",
        "code token",
        "code id_token token"
    ]);
    let clients = [
        client(serde_json::json!({
            "client_id": RFC_CLIENT,
            "client_secret": RFC_SECRET,
            "redirect_uris": ["https://client.example.com/cb", "https://client.example.org/cb"],
            "response_types": all_rt,
            "grant_types": ["authorization_code", "implicit", "refresh_token"],
            "scope": "openid profile email address phone offline_access",
            "id_token_signed_response_alg": "ES256",
        })),
        client(serde_json::json!({
            "client_id": HS_CLIENT,
            "client_secret": HS_SECRET,
            "redirect_uris": ["https://rp.example.net/cb"],
            "token_endpoint_auth_method": "client_secret_post",
            "response_types": ["code", "id_token", "code id_token"],
            "grant_types": ["authorization_code", "implicit"],
            "scope": "openid profile email",
            "id_token_signed_response_alg": "HS256",
        })),
        client(serde_json::json!({
            "client_id": PUBLIC_CLIENT,
            "redirect_uris": ["https://app.example.net/cb", "http://127.0.0.1:8765/callback"],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile offline_access",
            "id_token_signed_response_alg": "EdDSA",
        })),
        client(serde_json::json!({
            "client_id": SERVICE_CLIENT,
            "client_secret": SERVICE_SECRET,
            "redirect_uris": [],
            "response_types": [],
            "grant_types": ["client_credentials"],
            "scope": SERVICE_SCOPE,
        })),
        client(serde_json::json!({
            "client_id": ASSERT_CLIENT,
            "client_secret": ASSERT_SECRET,
            "token_endpoint_auth_method": "client_secret_jwt",
            "redirect_uris": [],
            "response_types": [],
            "grant_types": ["client_credentials"],
            "scope": "api:read",
        })),
        client(serde_json::json!({
            "client_id": RESOURCE_SERVER,
            "client_secret": RESOURCE_SERVER_SECRET,
            "redirect_uris": [],
            "response_types": [],
            "grant_types": [],
            "resource": RESOURCE,
        })),
    ];
    let clients: HashMap<String, Client> = clients
        .into_iter()
        .map(|c| (c.client_id.clone(), c))
        .collect();
    let mut store = Store::new();
    let mut rng = ChaCha20Rng::seed_from_u64(6749);
    let scope = |s: &str| Scope::parse(s).expect("scope fixture");
    for (code, client_id, redirect_uri, pkce) in [
        (RFC_CODE, RFC_CLIENT, "https://client.example.com/cb", None),
        (
            PKCE_CODE,
            PUBLIC_CLIENT,
            "https://app.example.net/cb",
            Some(PkceChallenge {
                challenge: RFC_CHALLENGE.to_owned(),
                method: PkceMethod::S256,
            }),
        ),
    ] {
        let hash = SecretHash::of(code);
        let record = CodeRecord {
            hash,
            grant: GrantId::generate(&mut rng, START),
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            redirect_uri_in_request: true,
            scope: scope("openid profile offline_access"),
            nonce: Some("n-0S6_WzA2Mj".to_owned()),
            pkce,
            authentication: alice(START - Duration::minutes(1)),
            include_auth_time: false,
            expires_at: START + Duration::minutes(10),
        };
        store.codes.insert(hash, (record, false));
    }
    let hash = SecretHash::of(RFC_REFRESH);
    store.refresh.insert(
        hash,
        (
            RefreshTokenRecord {
                hash,
                grant: GrantId::generate(&mut rng, START),
                client_id: RFC_CLIENT.to_owned(),
                scope: scope("openid profile offline_access"),
                authentication: alice(START - Duration::minutes(1)),
                include_auth_time: false,
                issued_at: None,
                expires_at: START + Duration::days(1),
            },
            false,
        ),
    );
    let hash = SecretHash::of(RFC_ACCESS);
    store.access.insert(
        hash,
        AccessTokenRecord {
            hash,
            grant: GrantId::generate(&mut rng, START),
            client_id: RFC_CLIENT.to_owned(),
            subject: "alice".to_owned(),
            scope: scope("openid profile email"),
            audience: Vec::new(),
            issued_at: None,
            expires_at: START + Duration::hours(1),
        },
    );
    for c in clients.values() {
        store.consents.push(ConsentRecord {
            subject: "alice".to_owned(),
            client_id: c.client_id.clone(),
            scope: c.scope.clone(),
        });
    }
    Fixture {
        provider,
        clients,
        keys: jws_key_set(),
        parking: ParkingSecret::from_bytes(&[9; 32]),
        store,
    }
});

/// The claims of the fixture users.
fn claims_of(subject: &str) -> UserInfo {
    if subject == "alice" {
        serde_json::from_value(serde_json::json!({
            "name": "Alice Liddell",
            "email": "alice@example.com",
            "email_verified": true,
        }))
        .unwrap_or_default()
    } else {
        UserInfo::default()
    }
}

/// Whether `uri` is registered for the client `client_id` of the fixture (or `extra`).
fn registered(clients: &HashMap<String, Client>, client_id: &str, uri: &str) -> bool {
    clients
        .get(client_id)
        .is_some_and(|c| c.redirect_uris.iter().any(|u| u == uri))
}

// ------------------------------------------------------------------ the store and the model

/// An in-memory store, as an adapter's driver keeps one, plus the clock and rng.
#[derive(Clone)]
pub struct Store {
    codes: HashMap<SecretHash, (CodeRecord, bool)>,
    access: HashMap<SecretHash, AccessTokenRecord>,
    refresh: HashMap<SecretHash, (RefreshTokenRecord, bool)>,
    nonces: HashSet<(String, String)>,
    consents: Vec<ConsentRecord>,
    rng: ChaCha20Rng,
    now: OffsetDateTime,
    /// Access tokens issued by the client credentials grant (repeatable by design).
    client_credentials: usize,
}

impl Store {
    fn new() -> Self {
        Self {
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            nonces: HashSet::new(),
            consents: Vec::new(),
            rng: ChaCha20Rng::seed_from_u64(7636),
            now: START,
            client_credentials: 0,
        }
    }

    fn apply(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::StoreCode(r) => {
                    self.codes.insert(r.hash, (r, false));
                }
                Effect::StoreAccessToken(r) => {
                    self.access.insert(r.hash, r);
                }
                Effect::StoreRefreshToken(r) => {
                    self.refresh.insert(r.hash, (r, false));
                }
                Effect::RememberConsent(c) => self.consents.push(c),
                Effect::RevokeGrant(g) => {
                    self.access.retain(|_, r| r.grant != g);
                    self.refresh.retain(|_, (r, _)| r.grant != g);
                    self.codes.retain(|_, (r, _)| r.grant != g);
                }
                _ => {}
            }
        }
    }

    fn consented(&self, subject: &str, client_id: &str, scope: &Scope) -> bool {
        scope.iter().all(|t| {
            self.consents
                .iter()
                .any(|c| c.subject == subject && c.client_id == client_id && c.scope.contains(t))
        })
    }
}

/// One single-use secret the model saw issued.
#[derive(Debug)]
struct Issued {
    client_id: String,
    redeemed: bool,
    /// Its grant, an index into [`Model::grants`].
    grant: usize,
}

/// What the model knows of one authorization request, and of the grant once something
/// was issued from it: all the model's own record, not the core's.
#[derive(Clone, Debug, Default)]
struct Grant {
    /// The client, as the request named it.
    client_id: String,
    /// The end-user authenticated for it: the session's, or the one who logged in.
    subject: Option<String>,
    /// The `nonce` of the request.
    nonce: Option<String>,
    /// The end-user's consent was found stored, or given on the consent page, for this
    /// request.
    consented: bool,
    /// A code (or refresh token) of the grant was presented again, or by another client:
    /// every token of the grant must stop working (RFC 6749 §4.1.2, §10.4).
    revoked: bool,
}

impl Grant {
    /// A new request by `client_id` with this nonce: nobody authenticated, no consent yet.
    fn request(client_id: &str, nonce: Option<&str>) -> Self {
        Self {
            client_id: client_id.to_owned(),
            nonce: nonce.map(str::to_owned),
            ..Self::default()
        }
    }
}

/// What the flow target expects, kept independently of the core.
#[derive(Default, Debug)]
struct Model {
    grants: Vec<Grant>,
    codes: HashMap<SecretHash, Issued>,
    code_list: Vec<String>,
    refresh: HashMap<SecretHash, Issued>,
    refresh_list: Vec<String>,
    /// Access tokens issued, with their grant.
    access: HashMap<SecretHash, usize>,
    access_list: Vec<String>,
    /// Pending login and consent pages (stored as an adapter would), with their request.
    /// Sealed login and consent requests, with the grant model and when they were parked.
    logins: Vec<(String, Grant, OffsetDateTime)>,
    consents: Vec<(String, Grant, OffsetDateTime)>,
}

impl Model {
    fn seeded() -> Self {
        let mut m = Self::default();
        // The fixture's records: alice, who consented to every client.
        let mut seeded = |client_id: &str, nonce: Option<&str>| {
            m.grants.push(Grant {
                subject: Some("alice".to_owned()),
                consented: true,
                ..Grant::request(client_id, nonce)
            });
            m.grants.len() - 1
        };
        let codes = [
            (
                RFC_CODE,
                RFC_CLIENT,
                seeded(RFC_CLIENT, Some("n-0S6_WzA2Mj")),
            ),
            (
                PKCE_CODE,
                PUBLIC_CLIENT,
                seeded(PUBLIC_CLIENT, Some("n-0S6_WzA2Mj")),
            ),
        ];
        let refresh_grant = seeded(RFC_CLIENT, None);
        let access_grant = seeded(RFC_CLIENT, None);
        for (code, client_id, grant) in codes {
            m.codes.insert(
                SecretHash::of(code),
                Issued {
                    client_id: client_id.to_owned(),
                    redeemed: false,
                    grant,
                },
            );
            m.code_list.push(code.to_owned());
        }
        m.refresh.insert(
            SecretHash::of(RFC_REFRESH),
            Issued {
                client_id: RFC_CLIENT.to_owned(),
                redeemed: false,
                grant: refresh_grant,
            },
        );
        m.refresh_list.push(RFC_REFRESH.to_owned());
        m.access.insert(SecretHash::of(RFC_ACCESS), access_grant);
        m.access_list.push(RFC_ACCESS.to_owned());
        m
    }

    /// Marks the grant of a code or refresh token revoked.
    fn revoke(&mut self, grant: usize) {
        if let Some(g) = self.grants.get_mut(grant) {
            g.revoked = true;
        }
    }
}

/// The claims of an ID token (its payload, base64url-decoded here; `jws` checks signatures).
fn id_token_claims(token: &str) -> serde_json::Map<String, serde_json::Value> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("an ID token has a payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("an ID token's payload is base64url");
    serde_json::from_slice(&bytes).expect("an ID token's payload is a JSON object")
}

/// An ID token issued for `grant` to its client: iss is the provider's issuer, aud the
/// client, sub the authenticated end-user, nonce the request's (`refreshed`: none, or the
/// request's), exp after iat.
fn check_id_token(token: &str, grant: &Grant, refreshed: bool) {
    use serde_json::Value;
    let claims = id_token_claims(token);
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    assert_eq!(text("iss"), Some(ISSUER), "ID token iss: {claims:?}");
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    assert_eq!(aud, [grant.client_id.as_str()], "ID token aud: {claims:?}");
    assert!(
        grant.subject.is_some(),
        "an ID token without an authenticated user"
    );
    assert_eq!(
        text("sub"),
        grant.subject.as_deref(),
        "ID token sub: {claims:?}"
    );
    if refreshed {
        assert!(
            text("nonce").is_none() || text("nonce") == grant.nonce.as_deref(),
            "refreshed ID token nonce: {claims:?}"
        );
    } else {
        assert_eq!(
            text("nonce"),
            grant.nonce.as_deref(),
            "ID token nonce: {claims:?}"
        );
    }
    let time = |name: &str| claims.get(name).and_then(Value::as_i64);
    let (Some(iat), Some(exp)) = (time("iat"), time("exp")) else {
        panic!("an ID token without iat or exp: {claims:?}");
    };
    assert!(exp > iat, "ID token exp {exp} not after iat {iat}");
}

/// How an authorization request ended, once driven.
enum Ended {
    Page,
    Redirect(oidc_flow::Redirect),
    Login(authorize::AwaitingLogin),
    Consent(authorize::AwaitingConsent),
}

/// Runs an erased authorization flow to its end, answering from the store; asserts that a
/// redirect goes only to a URI registered for the request's client.
fn drive_authorize(
    store: &mut Store,
    mut step: AuthorizeStep,
    mut client_id: Option<String>,
    session: Option<Authentication>,
    mut model: Option<(&mut Model, &mut Grant)>,
) -> Ended {
    let fx = &*FIXTURE;
    let mut session = Some(session);
    loop {
        let flow = match step {
            AuthorizeStep::Need(flow) => flow,
            AuthorizeStep::Done(done) => {
                return match done {
                    AuthorizeOutcome::ErrorPage(_) => Ended::Page,
                    AuthorizeOutcome::Login(l) => Ended::Login(l),
                    AuthorizeOutcome::Consent(c) => Ended::Consent(c),
                    AuthorizeOutcome::Redirect(done) => {
                        let id = client_id.as_deref().unwrap_or_default();
                        let uri = done.response.redirect_uri();
                        assert!(
                            registered(&fx.clients, id, uri),
                            "redirected to {uri:?}, not registered for client {id:?}"
                        );
                        let _ = done.response.location();
                        let _ = done.response.form_post_html();
                        if let Some((model, grant)) = model {
                            record_front_channel(model, grant, &done.response);
                        }
                        store.apply(done.effects);
                        Ended::Redirect(done.response)
                    }
                };
            }
        };
        let answer = match flow.need() {
            AuthorizeNeed::Client { client_id: id } => {
                client_id = Some(id.to_owned());
                AuthorizeAnswer::Client(fx.clients.get(id).cloned())
            }
            AuthorizeNeed::ClaimNonce(n) => AuthorizeAnswer::NonceClaimed(
                store.nonces.insert((n.client_id.clone(), n.nonce.clone())),
            ),
            AuthorizeNeed::Session => {
                let session = session.take().flatten();
                if let (Some((_, grant)), Some(s)) = (&mut model, &session) {
                    grant.subject = Some(s.subject.clone());
                }
                AuthorizeAnswer::Session(session)
            }
            AuthorizeNeed::Consent {
                subject,
                client_id,
                scope,
            } => {
                let given = store.consented(subject, client_id, scope);
                if let Some((_, grant)) = &mut model {
                    assert_eq!(
                        grant.subject.as_deref(),
                        Some(subject),
                        "consent looked up for another user than the authenticated one"
                    );
                    grant.consented |= given;
                }
                AuthorizeAnswer::Consent(given)
            }
            AuthorizeNeed::Claims { subject, .. } => AuthorizeAnswer::Claims(claims_of(subject)),
            _ => return Ended::Page,
        };
        let now = store.now;
        step = flow
            .resume(answer, &fx.provider, &mut store.rng, now)
            .expect("the driver answers what was asked");
    }
}

/// Records the code and access token of a successful front-channel response, after
/// checking that the request had an authenticated user and their consent, and the claims
/// of its ID token.
fn record_front_channel(model: &mut Model, grant: &Grant, r: &oidc_flow::Redirect) {
    let (code, access, id_token) = (
        r.param("code"),
        r.param("access_token"),
        r.param("id_token"),
    );
    if code.is_none() && access.is_none() && id_token.is_none() {
        return;
    }
    assert!(
        grant.subject.is_some(),
        "issued with nobody logged in: {r:?}"
    );
    assert!(
        grant.consented,
        "issued without the end-user's consent: {r:?}"
    );
    if let Some(t) = id_token {
        check_id_token(t, grant, false);
    }
    model.grants.push(grant.clone());
    let index = model.grants.len() - 1;
    if let Some(code) = code {
        model.codes.insert(
            SecretHash::of(code),
            Issued {
                client_id: grant.client_id.clone(),
                redeemed: false,
                grant: index,
            },
        );
        model.code_list.push(code.to_owned());
    }
    if let Some(at) = access {
        model.access.insert(SecretHash::of(at), index);
        model.access_list.push(at.to_owned());
    }
}

/// Runs an authorization request as far as it goes with alice logged in (consent given),
/// through a login page (with a stored-and-resumed pending request) when one is shown.
fn authorize_fully(store: &mut Store, input: &[u8], post: bool) -> Ended {
    let step = if post {
        AuthorizeFlow::from_form(input)
    } else {
        AuthorizeFlow::from_query(input)
    };
    let session = alice(store.now - Duration::minutes(5));
    let ended = drive_authorize(store, step, None, Some(session), None);
    match ended {
        Ended::Login(l) => {
            let id = l.client().client_id.clone();
            let (sealed, _page) = l.park(&FIXTURE.parking, BROWSER, &mut store.rng, store.now);
            let l = match round_trip(&sealed, store.now) {
                Some(Resumed::Login(l)) => l,
                _ => return Ended::Page,
            };
            let user = alice(store.now);
            drive_authorize(
                store,
                AuthorizeFlow::after_login(l, user),
                Some(id),
                None,
                None,
            )
        }
        Ended::Consent(c) => {
            let id = c.client().client_id.clone();
            drive_authorize(
                store,
                AuthorizeFlow::after_consent(c, ConsentAnswer::Allow),
                Some(id),
                None,
                None,
            )
        }
        other => other,
    }
}

/// The browser binding every sealed request of the harness is sealed to.
const BROWSER: &str = "fuzz-browser";

/// Opens a sealed request as an adapter would, after checking that another browser cannot,
/// and resumes it.
fn round_trip(sealed: &SealedAuthorization, now: OffsetDateTime) -> Option<Resumed> {
    assert!(
        PendingAuthorization::unseal(&FIXTURE.parking, sealed.as_str(), "another", now).is_err(),
        "a sealed request opened in another browser"
    );
    let back = PendingAuthorization::unseal(&FIXTURE.parking, sealed.as_str(), BROWSER, now)
        .expect("a sealed request opens in its browser");
    let client = FIXTURE.clients.get(back.client_id()).cloned();
    back.resume(client, MarkClaim::Fresh).ok()
}

/// What a token request was about, as seen by the driver.
enum Redeemed {
    Nothing,
    Code(SecretHash, Taken<CodeRecord>),
    Refresh(SecretHash, Taken<RefreshTokenRecord>),
}

/// A success that redeemed nothing must be the client credentials grant of the one client
/// that registered it: an access token of a registered scope without `openid` (so it never
/// opens UserInfo), and no refresh or ID token.
fn check_client_credentials(client_id: &str, response: &JsonResponse) {
    assert!(
        client_id == SERVICE_CLIENT || client_id == ASSERT_CLIENT,
        "a token without a grant"
    );
    let body = response.json();
    assert!(
        body.get("refresh_token").is_none(),
        "a refresh token for a service"
    );
    assert!(
        body.get("id_token").is_none(),
        "an ID token without an end-user"
    );
    let scope = body["scope"].as_str().expect("a scope");
    let registered = FIXTURE.clients[client_id].scope.clone();
    let granted = Scope::parse(scope).expect("a well-formed scope");
    assert!(!granted.is_openid(), "openid granted without an end-user");
    assert!(
        granted.is_subset_of(&registered),
        "a scope beyond the registration"
    );
}

/// Runs an erased token flow, answering from the store; with a model, asserts that a
/// success comes only from a code (or refresh token) the model saw issued to this client
/// and never redeemed, taken fresh and unexpired.
fn drive_token(
    store: &mut Store,
    form: &[u8],
    authorization: Option<&[u8]>,
    model: Option<&mut Model>,
) -> JsonResponse {
    let fx = &*FIXTURE;
    let mut step = TokenFlow::parse(form, authorization);
    let mut client_id = String::new();
    let mut redeemed = Redeemed::Nothing;
    let done = loop {
        let flow = match step {
            TokenStep::Need(flow) => flow,
            TokenStep::Done(done) => break done,
        };
        let answer = match flow.need() {
            TokenNeed::Client { client_id: id } => {
                id.clone_into(&mut client_id);
                TokenAnswer::Client(fx.clients.get(id).cloned())
            }
            TokenNeed::TakeCode(hash) => {
                let taken = match store.codes.get_mut(hash) {
                    Some((r, true)) => Taken::AlreadyTaken(r.grant.clone()),
                    Some((r, taken)) => {
                        *taken = true;
                        Taken::Fresh(r.clone())
                    }
                    None => Taken::Unknown,
                };
                redeemed = Redeemed::Code(*hash, taken.clone());
                TokenAnswer::Code(taken)
            }
            TokenNeed::ResourceServer { resource } => TokenAnswer::ResourceServer(
                fx.clients
                    .values()
                    .find(|c| c.resource.as_deref() == Some(resource))
                    .cloned(),
            ),
            TokenNeed::ClaimAssertion(jti) => TokenAnswer::AssertionClaimed(
                store
                    .nonces
                    .insert((jti.client_id.clone(), jti.nonce.clone())),
            ),
            TokenNeed::TakeRefreshToken(hash) => {
                let taken = match store.refresh.get_mut(hash) {
                    Some((r, true)) => Taken::AlreadyTaken(r.grant.clone()),
                    Some((r, taken)) => {
                        *taken = true;
                        Taken::Fresh(r.clone())
                    }
                    None => Taken::Unknown,
                };
                redeemed = Redeemed::Refresh(*hash, taken.clone());
                TokenAnswer::RefreshToken(taken)
            }
            _ => {
                break oidc_flow::Completed {
                    response: JsonResponse::oauth_error(
                        500,
                        &oidc_flow::OAuthError::new(
                            oidc_flow::ErrorCode::ServerError,
                            "unknown need",
                        ),
                    ),
                    effects: Vec::new(),
                };
            }
        };
        let now = store.now;
        step = flow
            .resume(answer, &fx.provider, &mut store.rng, now)
            .expect("the driver answers what was asked");
    };
    let response = done.response;
    let ok = response.status == 200;
    if ok {
        assert!(
            response.header("cache-control") == Some("no-store"),
            "a token response is not cacheable"
        );
        match &redeemed {
            Redeemed::Code(_, Taken::Fresh(r)) => {
                assert_eq!(r.client_id, client_id, "a code redeemed by another client");
                assert!(store.now < r.expires_at, "an expired code redeemed");
            }
            Redeemed::Refresh(_, Taken::Fresh(r)) => {
                assert_eq!(r.client_id, client_id, "a refresh token of another client");
                assert!(
                    store.now < r.expires_at,
                    "an expired refresh token redeemed"
                );
            }
            Redeemed::Nothing => {
                check_client_credentials(&client_id, &response);
                // Repeatable with a secret; an assertion's jti is single-use.
                if client_id == SERVICE_CLIENT {
                    store.client_credentials += 1;
                }
                return response;
            }
            _ => panic!("a token from a code or refresh token that was not taken fresh"),
        }
    }
    if let Some(model) = model {
        if ok {
            let (kind, issued) = match &redeemed {
                Redeemed::Code(h, _) => ("code", model.codes.get_mut(h)),
                Redeemed::Refresh(h, _) => ("refresh token", model.refresh.get_mut(h)),
                Redeemed::Nothing => ("nothing", None),
            };
            let issued =
                issued.unwrap_or_else(|| panic!("a token from a {kind} that was never issued"));
            assert!(!issued.redeemed, "a {kind} redeemed twice");
            assert_eq!(issued.client_id, client_id, "a {kind} of another client");
            issued.redeemed = true;
            let index = issued.grant;
            let grant = model.grants.get(index).expect("a known grant").clone();
            assert!(
                !grant.revoked,
                "a {kind} of a revoked grant (a code of it was replayed) still works"
            );
            assert!(grant.subject.is_some(), "a token with nobody logged in");
            assert!(grant.consented, "a token without the end-user's consent");
            let body = response.json();
            if let Some(t) = body.get("id_token").and_then(|v| v.as_str()) {
                check_id_token(t, &grant, kind == "refresh token");
            }
            if let Some(at) = body.get("access_token").and_then(|v| v.as_str()) {
                model.access.insert(SecretHash::of(at), index);
                model.access_list.push(at.to_owned());
            }
            if let Some(rt) = body.get("refresh_token").and_then(|v| v.as_str()) {
                model.refresh.insert(
                    SecretHash::of(rt),
                    Issued {
                        client_id: client_id.clone(),
                        redeemed: false,
                        grant: index,
                    },
                );
                model.refresh_list.push(rt.to_owned());
            }
        } else {
            match &redeemed {
                // Taken but refused: the secret is gone either way; presented by another
                // client, its grant is revoked.
                Redeemed::Code(h, Taken::Fresh(r)) => {
                    if let Some(i) = model.codes.get_mut(h) {
                        i.redeemed = true;
                        let g = i.grant;
                        if r.client_id != client_id {
                            model.revoke(g);
                        }
                    }
                }
                Redeemed::Refresh(h, Taken::Fresh(r)) => {
                    if let Some(i) = model.refresh.get_mut(h) {
                        i.redeemed = true;
                        let g = i.grant;
                        if r.client_id != client_id {
                            model.revoke(g);
                        }
                    }
                }
                // Presented again: a replay, and the grant is revoked.
                Redeemed::Code(h, Taken::AlreadyTaken(_)) => {
                    if let Some(g) = model.codes.get(h).map(|i| i.grant) {
                        model.revoke(g);
                    }
                }
                Redeemed::Refresh(h, Taken::AlreadyTaken(_)) => {
                    if let Some(g) = model.refresh.get(h).map(|i| i.grant) {
                        model.revoke(g);
                    }
                }
                _ => {}
            }
        }
    }
    store.apply(done.effects);
    response
}

/// Runs an erased UserInfo flow; with a model, a success needs an access token it saw issued.
fn drive_userinfo(
    store: &mut Store,
    authorization: Option<&[u8]>,
    body: Option<&[u8]>,
    model: Option<&Model>,
) -> JsonResponse {
    let fx = &*FIXTURE;
    let mut step = UserinfoFlow::parse(&fx.provider, authorization, body);
    let mut presented = None;
    loop {
        let flow = match step {
            UserinfoStep::Need(flow) => flow,
            UserinfoStep::Done(response) => {
                if response.status == 200 {
                    let h: SecretHash = presented.expect("a success looked a token up");
                    assert!(
                        store.access.contains_key(&h),
                        "userinfo for an unknown token"
                    );
                    if let Some(model) = model {
                        let grant = model
                            .access
                            .get(&h)
                            .expect("userinfo for a token never issued");
                        assert!(
                            !model.grants.get(*grant).is_some_and(|g| g.revoked),
                            "userinfo for a token of a revoked grant (a code of it was replayed)"
                        );
                    }
                }
                return response;
            }
        };
        let answer = match flow.need() {
            UserinfoNeed::AccessToken(h) => {
                presented = Some(*h);
                UserinfoAnswer::AccessToken(store.access.get(h).cloned())
            }
            UserinfoNeed::Claims { subject, .. } => UserinfoAnswer::Claims(claims_of(subject)),
            _ => {
                return JsonResponse::oauth_error(
                    500,
                    &oidc_flow::OAuthError::new(oidc_flow::ErrorCode::ServerError, "unknown need"),
                );
            }
        };
        step = flow
            .resume(answer, &fx.provider, store.now)
            .expect("the driver answers what was asked");
    }
}

/// Splits a two-part input at the first `\n`: header line (empty: none), then the body.
pub fn split_header(data: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(at) => {
            let (head, rest) = data.split_at(at);
            let body = rest.get(1..).unwrap_or_default();
            (if head.is_empty() { None } else { Some(head) }, body)
        }
        None => (None, data),
    }
}

// ------------------------------------------------------------------ the targets

/// `Params` agrees with the WHATWG urlencoded parser of the `url` crate (first of each name
/// kept, empty values dropped), except that it refuses components that are not UTF-8 once
/// percent-decoded, where `url` substitutes U+FFFD.
pub fn params_agree(data: &[u8]) {
    let ours = params::Params::parse_lenient(data, usize::MAX);
    let mut theirs: Vec<(String, String)> = Vec::new();
    let mut replaced = false;
    for (k, v) in url::form_urlencoded::parse(data) {
        replaced |= k.contains('\u{FFFD}') || v.contains('\u{FFFD}');
        if !v.is_empty() && !theirs.iter().any(|(n, _)| *n == k) {
            theirs.push((k.into_owned(), v.into_owned()));
        }
    }
    match ours {
        Ok((p, _)) => {
            let ours: Vec<(&str, &str)> = p.iter().collect();
            let theirs: Vec<(&str, &str)> = theirs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(ours, theirs, "Params and url::form_urlencoded disagree");
        }
        Err(oidc_flow::ParseError::Malformed) if std::str::from_utf8(data).is_ok() => {
            assert!(
                replaced,
                "refused as malformed, yet every component decodes"
            );
        }
        Err(_) => {}
    }
}

/// `authorize_query`: an authorization request's query string, driven as far as it goes
/// (and [`params_agree`] on it).
pub fn authorize_query(data: &[u8]) {
    params_agree(data);
    let mut store = FIXTURE.store.clone();
    let _ = authorize_fully(&mut store, data, false);
}

/// `authorize_form`: an authorization request's POST body, driven as far as it goes.
pub fn authorize_form(data: &[u8]) {
    let mut store = FIXTURE.store.clone();
    let _ = authorize_fully(&mut store, data, true);
}

/// `token_request`: `Authorization` header line, then the form body of a token request,
/// against a store holding the RFC 6749 code and refresh token.
pub fn token_request(data: &[u8]) {
    let (header, form) = split_header(data);
    if let Some(h) = header
        && let Ok((id, _secret)) = token::parse_basic(h)
    {
        assert!(!id.is_empty(), "parse_basic accepted an empty client id");
    }
    let mut store = FIXTURE.store.clone();
    let mut model = Model::seeded();
    let first = drive_token(&mut store, form, header, Some(&mut model));
    // The same request again must not succeed a second time (single use).
    let second = drive_token(&mut store, form, header, Some(&mut model));
    // Codes and refresh tokens are single-use; client credentials are not.
    assert!(
        !(first.status == 200 && second.status == 200) || store.client_credentials == 2,
        "the same token request succeeded twice"
    );
}

/// `bearer`: `Authorization` header line, then a form body (empty: none) for UserInfo.
pub fn bearer(data: &[u8]) {
    let (header, body) = split_header(data);
    let body = if body.is_empty() { None } else { Some(body) };
    if let Ok(t) = userinfo::extract_bearer(ISSUER, header, body) {
        assert!(
            userinfo::is_b64token(&t),
            "extracted a malformed token {t:?}"
        );
        assert!(
            t.len() <= userinfo::MAX_TOKEN_BYTES + 16,
            "an oversized token"
        );
    }
    let mut store = FIXTURE.store.clone();
    let r = drive_userinfo(&mut store, header, body, None);
    if r.status == 200 {
        let t = userinfo::extract_bearer(ISSUER, header, body).expect("a success had a token");
        assert_eq!(
            t, RFC_ACCESS,
            "userinfo accepted a token that is not stored"
        );
    } else {
        assert!(
            r.header("www-authenticate").is_some(),
            "a UserInfo error without WWW-Authenticate"
        );
    }
}

/// `redirect_uri`: first line, the redirect URIs to register (space-separated); each further
/// line a redirect URI to request. Registration validation and exact-string matching.
pub fn redirect_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let registered_uris: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split(' ')
        .take(4)
        .collect();
    let candidates: Vec<&str> = lines.take(8).collect();
    let json = serde_json::json!({
        "client_id": "fuzz-rp",
        "client_secret": "fuzz-secret",
        "redirect_uris": registered_uris,
        "scope": "openid profile",
    });
    let Ok(client) = serde_json::from_value::<Client>(json) else {
        return;
    };
    let Ok(client) = client.validate() else {
        return;
    };
    for uri in &client.redirect_uris {
        let parsed = url_like_absolute(uri);
        assert!(parsed, "registration accepted {uri:?}");
    }
    for cand in candidates
        .iter()
        .copied()
        .chain(registered_uris.iter().copied())
    {
        check_redirect(&client, Some(cand), "openid");
    }
    check_redirect(&client, None, "openid");
    check_redirect(&client, None, "profile");
}

/// A registered URI must have a scheme and no fragment (what `Client::validate` promises).
fn url_like_absolute(uri: &str) -> bool {
    uri.split_once(':')
        .is_some_and(|(scheme, _)| !scheme.is_empty())
        && !uri.contains('#')
}

/// The redirect URI rules for one requested URI (or none): an error page unless it is
/// registered exactly; a redirect (success or error) only to the exact registered string.
pub fn check_redirect(client: &Client, requested: Option<&str>, scope: &str) {
    let mut pairs = vec![
        ("response_type", "code"),
        ("client_id", client.client_id.as_str()),
        ("scope", scope),
        ("state", "af0ifjsldkj"),
    ];
    if let Some(uri) = requested {
        pairs.push(("redirect_uri", uri));
    }
    let query = params::encode(pairs);
    let received = authorize::Received::from_query(query.as_bytes());
    let Ok(received) = received else {
        // Only a parameter too long to hold can fail here.
        assert!(
            requested.is_some_and(|u| u.len() > 2048),
            "{query:?} did not parse"
        );
        return;
    };
    let is_registered = |u: &str| client.redirect_uris.iter().any(|r| r == u);
    match received.bind_client(Some(client.clone())) {
        Ok(bound) => {
            let uri = bound.redirect_uri().to_owned();
            assert!(is_registered(&uri), "bound to unregistered {uri:?}");
            match requested {
                Some(req) => assert_eq!(uri, req, "bound to another URI than requested"),
                None => assert!(
                    !scope.split(' ').any(|s| s == "openid") && client.redirect_uris.len() == 1,
                    "no redirect_uri, yet bound"
                ),
            }
            let provider = &FIXTURE.provider;
            if let Err(e) = bound.validate(provider) {
                assert_eq!(
                    e.redirect.redirect_uri(),
                    uri,
                    "an error redirected elsewhere"
                );
                let _ = e.redirect.location();
            }
        }
        Err(_) => {
            if let Some(req) = requested {
                assert!(!is_registered(req), "registered {req:?} refused");
            }
        }
    }
}

/// `pkce`: first line a verifier, second a challenge. Syntax checks, S256, constant-time
/// verification, and a full code exchange for the public client with that challenge.
pub fn pkce(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (verifier, challenge) = text.split_once('\n').unwrap_or((text, ""));
    let valid = pkce::is_valid_verifier(verifier);
    let s256 = pkce::s256_challenge(verifier);
    assert!(
        pkce::is_valid_challenge(&s256, PkceMethod::S256),
        "S256 output is a challenge"
    );
    let own = |c: &str, m| PkceChallenge {
        challenge: c.to_owned(),
        method: m,
    };
    assert_eq!(pkce::verify(&own(&s256, PkceMethod::S256), verifier), valid);
    assert_eq!(
        pkce::verify(&own(verifier, PkceMethod::Plain), verifier),
        valid
    );
    for method in [PkceMethod::S256, PkceMethod::Plain] {
        let _ = pkce::is_valid_challenge(challenge, method);
        if pkce::verify(&own(challenge, method), verifier) {
            assert!(valid, "an invalid verifier {verifier:?} verified");
            match method {
                PkceMethod::S256 => assert_eq!(challenge, s256, "S256 verified a wrong challenge"),
                PkceMethod::Plain => assert_eq!(challenge, verifier, "plain verified another"),
            }
        }
    }
    // The whole exchange: the challenge at the authorization endpoint, the verifier at the token one.
    for method in ["S256", "plain"] {
        let mut store = FIXTURE.store.clone();
        let mut model = Model::seeded();
        let query = params::encode([
            ("response_type", "code"),
            ("client_id", PUBLIC_CLIENT),
            ("redirect_uri", "https://app.example.net/cb"),
            ("scope", "openid"),
            ("code_challenge", challenge),
            ("code_challenge_method", method),
        ]);
        let step = AuthorizeFlow::from_query(query.as_bytes());
        let session = alice(store.now);
        let Ended::Redirect(r) = drive_authorize(&mut store, step, None, Some(session), None)
        else {
            continue;
        };
        let grant = Grant {
            subject: Some("alice".to_owned()),
            consented: true,
            ..Grant::request(PUBLIC_CLIENT, None)
        };
        record_front_channel(&mut model, &grant, &r);
        let Some(code) = r.param("code") else {
            continue;
        };
        let form = params::encode([
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "https://app.example.net/cb"),
            ("client_id", PUBLIC_CLIENT),
            ("code_verifier", verifier),
        ]);
        let response = drive_token(&mut store, form.as_bytes(), None, Some(&mut model));
        let expected = valid
            && match method {
                "S256" => challenge == s256,
                _ => challenge == verifier,
            };
        assert_eq!(
            response.status == 200,
            expected,
            "PKCE {method}: verifier {verifier:?} against {challenge:?}: {response:?}"
        );
    }
}

/// The signer the `jws` target resolves: fixture keys by kid or algorithm, HS* with a fixed secret.
fn fixed_resolver<'k>(
    keys: &'k KeySet,
) -> impl FnOnce(Algorithm, Option<&str>) -> Option<Signer<'k>> {
    move |alg, kid| {
        if alg.is_symmetric() {
            return Some(Signer::Hmac {
                alg,
                secret: JWS_HMAC_SECRET,
            });
        }
        match kid {
            Some(kid) => keys.get(kid),
            None => keys.for_algorithm(alg),
        }
        .map(Signer::Key)
    }
}

/// `jws`: a compact JWS verified with the fixed key set, and checked against an independent
/// verifier both ways: whatever `decode_verify` accepts must carry a signature that
/// `jsonwebtoken` (aws-lc-rs directly for ES512, which it lacks) verifies with the same key,
/// and a well-formed token whose signature that verifier accepts must be accepted by ours
/// (the `independent-*` seeds are signed by Python's `cryptography`, `fuzz/seeds/jws.py`).
pub fn jws(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let keys = &FIXTURE.keys;
    let ours = jws::decode_verify(token, fixed_resolver(keys));
    let theirs = independent_verify(token);
    match &ours {
        Ok(v) => {
            // What verified must be what we would produce: same algorithm and key.
            if let Some(kid) = &v.kid
                && !v.alg.is_symmetric()
            {
                assert_eq!(
                    keys.get(kid).map(|k| k.algorithm()),
                    Some(v.alg),
                    "kid/alg mismatch"
                );
            }
            assert!(token.len() <= jws::MAX_TOKEN_LEN);
            let Some(theirs) = &theirs else {
                panic!("decode_verify accepted a signature the independent verifier refuses");
            };
            assert_eq!(
                (theirs.alg.as_str(), theirs.kid.as_deref()),
                (v.alg.as_str(), v.kid.as_deref()),
                "the header read differently"
            );
            assert_eq!(
                Some(&v.claims),
                theirs.claims.as_ref(),
                "the claims read differently"
            );
        }
        Err(e) => {
            if let Some(theirs) = &theirs
                && theirs.claims.is_some()
                && !theirs.crit
                && token.len() <= jws::MAX_TOKEN_LEN
            {
                panic!("a validly signed {} token refused: {e}", theirs.alg);
            }
        }
    }
}

/// What the independent verifier read from a token whose signature it verified.
#[derive(Debug)]
pub struct IndependentlyVerified {
    /// The header's `alg`.
    pub alg: String,
    /// The header's `kid`.
    pub kid: Option<String>,
    /// Whether the header has `crit` (which ours refuses: it implements no extension).
    pub crit: bool,
    /// The payload, if it is a JSON object.
    pub claims: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Verifies a compact JWS without the core: the header is read here, the key chosen as the
/// `jws` target's resolver does (HS* with [`JWS_HMAC_SECRET`]; else the kid's key, which
/// must be for that alg, or with no kid the alg's key) from the public JWKs in
/// `tests/keys/`, and the signature checked by `jsonwebtoken` (ES512: aws-lc-rs).
/// `None` unless the signature verifies.
pub fn independent_verify(token: &str) -> Option<IndependentlyVerified> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::{DecodingKey, crypto};
    use serde_json::Value;

    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature_b64] = parts.as_slice() else {
        return None;
    };
    let signing_input = token.get(..header_b64.len() + 1 + payload_b64.len())?;
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header_b64).ok()?).ok()?;
    let alg = header.get("alg")?.as_str()?.to_owned();
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return None,
    };
    let verified = if matches!(alg.as_str(), "HS256" | "HS384" | "HS512") {
        let key = DecodingKey::from_secret(JWS_HMAC_SECRET).ok()?;
        let jalg = alg.parse::<jsonwebtoken::Algorithm>().ok()?;
        crypto::verify(signature_b64, signing_input.as_bytes(), &key, jalg).ok()?
    } else {
        let key = match &kid {
            Some(kid) => JWS_KEYS.iter().find(|k| k.kid == kid)?,
            None => JWS_KEYS.iter().find(|k| k.alg.as_str() == alg)?,
        };
        if key.alg.as_str() != alg {
            return None;
        }
        let jwk: Value = serde_json::from_str(key.jwk).expect("a JWK fixture");
        let field = |name: &str| jwk.get(name).and_then(Value::as_str).expect("a JWK field");
        if alg == "ES512" {
            // jsonwebtoken has no P-521: aws-lc-rs on the uncompressed point 04 || x || y.
            use aws_lc_rs::signature::{ECDSA_P521_SHA512_FIXED, UnparsedPublicKey};
            let mut point = vec![4_u8];
            point.extend(URL_SAFE_NO_PAD.decode(field("x")).expect("x"));
            point.extend(URL_SAFE_NO_PAD.decode(field("y")).expect("y"));
            let signature = URL_SAFE_NO_PAD.decode(signature_b64).ok()?;
            UnparsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, point)
                .verify(signing_input.as_bytes(), &signature)
                .is_ok()
        } else {
            let decoding = match jwk.get("kty").and_then(Value::as_str) {
                Some("EC") => DecodingKey::from_ec_components(field("x"), field("y")),
                Some("OKP") => DecodingKey::from_ed_components(field("x")),
                _ => DecodingKey::from_rsa_components(field("n"), field("e")),
            }
            .expect("a public key fixture");
            let jalg = alg.parse::<jsonwebtoken::Algorithm>().ok()?;
            crypto::verify(signature_b64, signing_input.as_bytes(), &decoding, jalg).ok()?
        }
    };
    if !verified {
        return None;
    }
    let claims = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok());
    Some(IndependentlyVerified {
        alg,
        kid,
        crit: header.contains_key("crit"),
        claims,
    })
}

/// `id_token_hint`: the input as the `id_token_hint` of an otherwise valid request by the
/// RFC client (ES256 hints) and the HS256 client (hints keyed with its secret).
pub fn id_token_hint(data: &[u8]) {
    let hint = String::from_utf8_lossy(data);
    if hint.is_empty() {
        // An empty parameter is an absent one (RFC 6749 §3.1): nothing to check.
        return;
    }
    for (client_id, redirect) in [
        (RFC_CLIENT, "https://client.example.org/cb"),
        (HS_CLIENT, "https://rp.example.net/cb"),
    ] {
        let query = params::encode([
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", "openid"),
            ("state", "af0ifjsldkj"),
            ("prompt", "none"),
            ("id_token_hint", hint.as_ref()),
        ]);
        let mut store = FIXTURE.store.clone();
        if let Ended::Redirect(r) = authorize_fully(&mut store, query.as_bytes(), false)
            && r.param("code").is_some()
        {
            // prompt=none issued: the hint named the logged-in user, alice, and verified.
            let verified = jws::decode_verify(&hint, |alg, kid| {
                if alg.is_symmetric() {
                    return FIXTURE.clients.get(client_id).and_then(|c| {
                        c.client_secret.as_deref().map(|s| Signer::Hmac {
                            alg,
                            secret: s.as_bytes(),
                        })
                    });
                }
                match kid {
                    Some(kid) => FIXTURE.provider.keys().get(kid),
                    None => FIXTURE.provider.keys().for_algorithm(alg),
                }
                .map(Signer::Key)
            });
            let sub = verified.ok().and_then(|v| {
                v.claims
                    .get("sub")
                    .and_then(|s| s.as_str())
                    .map(str::to_owned)
            });
            assert_eq!(
                sub.as_deref(),
                Some("alice"),
                "issued with a hint for {sub:?}"
            );
        }
    }
}

// ------------------------------------------------------------------ the stateful target

/// Client ids a flow op may use (the last is unknown).
const CLIENT_IDS: [&str; 5] = [
    RFC_CLIENT,
    HS_CLIENT,
    PUBLIC_CLIENT,
    SERVICE_CLIENT,
    "unknown-rp",
];
/// Redirect URIs a flow op may request: registered ones and near misses.
const REDIRECTS: [&str; 9] = [
    "https://client.example.com/cb",
    "https://client.example.org/cb",
    "https://rp.example.net/cb",
    "https://app.example.net/cb",
    "http://127.0.0.1:8765/callback",
    "https://client.example.com/cb/",
    "https://CLIENT.example.com/cb",
    "https://client.example.com/cb?x=1",
    "https://evil.example/cb",
];
const RESPONSE_TYPES: [&str; 9] = [
    "code",
    "id_token",
    "id_token token",
    "code id_token",
    "code token",
    "code id_token token",
    "token",
    "none",
    "token code id_token",
];
const SCOPES: [&str; 6] = [
    "openid",
    "openid profile email",
    "openid offline_access",
    "profile",
    "openid phone address",
    "openid unknown_scope",
];
const PROMPTS: [&str; 6] = [
    "",
    "none",
    "login",
    "consent",
    "select_account",
    "none login",
];
const NONCES: [&str; 2] = ["n-0S6_WzA2Mj", "another-nonce"];
const VERIFIERS: [&str; 3] = [
    RFC_VERIFIER,
    "0123456789012345678901234567890123456789abc",
    "too-short",
];
const SUBJECTS: [&str; 2] = ["alice", "bob"];

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list.get(usize::from(i) % list.len().max(1))
        .copied()
        .unwrap_or_default()
}

fn pick_owned(list: &[String], i: u8) -> Option<&str> {
    if list.is_empty() {
        return None;
    }
    list.get(usize::from(i) % list.len()).map(String::as_str)
}

/// An authorization request built from choices (and a free extra parameter).
#[derive(Debug, Arbitrary)]
pub struct AuthzOp {
    client: u8,
    redirect: Option<u8>,
    response_type: u8,
    scope: u8,
    state: Option<String>,
    nonce: Option<u8>,
    pkce: Option<(u8, bool)>,
    prompt: u8,
    max_age: Option<u16>,
    response_mode: Option<u8>,
    post: bool,
    session: Option<(u8, u16)>,
    extra: Option<(String, String)>,
}

/// A token request built from choices.
#[derive(Debug, Arbitrary)]
pub struct TokenOp {
    client: u8,
    /// 0 Basic, 1 form secret, 2 client_id only, 3 wrong secret, 4 Basic and form.
    auth: u8,
    refresh: bool,
    secret: u8,
    redirect: Option<u8>,
    verifier: Option<u8>,
    extra: Option<(String, String)>,
}

/// One step of a flow-level scenario.
#[derive(Debug, Arbitrary)]
pub enum Op {
    /// An authorization request.
    Authorize(AuthzOp),
    /// The end-user logs in on a pending login page.
    Login {
        /// Which pending login.
        pending: u8,
        /// Who logs in.
        subject: u8,
    },
    /// The end-user answers a pending consent page.
    Consent {
        /// Which pending consent.
        pending: u8,
        /// Allow or deny.
        allow: bool,
    },
    /// A token request for an issued code (or refresh token).
    Token(TokenOp),
    /// A UserInfo request with an issued access token.
    Userinfo {
        /// Which access token.
        token: u8,
        /// In the body instead of the header.
        in_body: bool,
    },
    /// Time passes.
    Advance {
        /// How long.
        seconds: u16,
    },
    /// A raw authorization request.
    RawAuthorize {
        /// POST instead of GET.
        post: bool,
        /// The query or body.
        bytes: Vec<u8>,
    },
    /// A raw token request.
    RawToken {
        /// The `Authorization` header.
        header: Option<Vec<u8>>,
        /// The form body.
        form: Vec<u8>,
    },
}

/// `flow`: a sequence of [`Op`]s against one store, checking the invariants throughout:
/// no panic; no token without a matching taken code; a code (or refresh token) redeems at
/// most once; a redirected error goes only to a registered redirect URI.
pub fn flow(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut store = FIXTURE.store.clone();
    let mut model = Model::seeded();
    for _ in 0..24 {
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        run_op(&mut store, &mut model, op);
        if u.is_empty() {
            break;
        }
    }
}

fn run_op(store: &mut Store, model: &mut Model, op: Op) {
    match op {
        Op::Authorize(a) => {
            let client_id = pick(&CLIENT_IDS, a.client);
            let mut pairs: Vec<(&str, String)> = vec![
                (
                    "response_type",
                    pick(&RESPONSE_TYPES, a.response_type).to_owned(),
                ),
                ("client_id", client_id.to_owned()),
                ("scope", pick(&SCOPES, a.scope).to_owned()),
            ];
            if let Some(r) = a.redirect {
                pairs.push(("redirect_uri", pick(&REDIRECTS, r).to_owned()));
            }
            if let Some(s) = a.state {
                pairs.push(("state", s));
            }
            if let Some(n) = a.nonce {
                pairs.push(("nonce", pick(&NONCES, n).to_owned()));
            }
            if let Some((v, s256)) = a.pkce {
                let verifier = pick(&VERIFIERS, v);
                if s256 {
                    pairs.push(("code_challenge", pkce::s256_challenge(verifier)));
                    pairs.push(("code_challenge_method", "S256".to_owned()));
                } else {
                    pairs.push(("code_challenge", verifier.to_owned()));
                    pairs.push(("code_challenge_method", "plain".to_owned()));
                }
            }
            let prompt = pick(&PROMPTS, a.prompt);
            if !prompt.is_empty() {
                pairs.push(("prompt", prompt.to_owned()));
            }
            if let Some(m) = a.max_age {
                pairs.push(("max_age", m.to_string()));
            }
            if let Some(m) = a.response_mode {
                pairs.push((
                    "response_mode",
                    pick(&["query", "fragment", "form_post", "jwt"], m).to_owned(),
                ));
            }
            let extra;
            if let Some((k, v)) = a.extra {
                extra = k;
                pairs.push((extra.as_str(), v));
            }
            let encoded = params::encode(pairs.iter().map(|(k, v)| (*k, v.as_str())));
            let step = if a.post {
                AuthorizeFlow::from_form(encoded.as_bytes())
            } else {
                AuthorizeFlow::from_query(encoded.as_bytes())
            };
            let session = a.session.map(|(s, ago)| Authentication {
                subject: pick(&SUBJECTS, s).to_owned(),
                auth_time: store.now - Duration::seconds(i64::from(ago)),
                acr: None,
                amr: vec!["pwd".to_owned()],
                sid: None,
            });
            let nonce = a.nonce.map(|n| pick(&NONCES, n));
            let mut grant = Grant::request(client_id, nonce);
            let ended = drive_authorize(store, step, None, session, Some((model, &mut grant)));
            keep_pending(store, model, ended, grant);
        }
        Op::RawAuthorize { post, bytes } => {
            let step = if post {
                AuthorizeFlow::from_form(&bytes)
            } else {
                AuthorizeFlow::from_query(&bytes)
            };
            // The model reads the client and nonce with `url`'s parser, not the core's.
            let first = |name: &str| {
                url::form_urlencoded::parse(&bytes)
                    .find(|(k, v)| k == name && !v.is_empty())
                    .map(|(_, v)| v.into_owned())
            };
            let client_id = first("client_id").unwrap_or_default();
            let nonce = first("nonce");
            let mut grant = Grant::request(&client_id, nonce.as_deref());
            let session = Some(alice(store.now));
            let ended = drive_authorize(store, step, None, session, Some((model, &mut grant)));
            keep_pending(store, model, ended, grant);
        }
        Op::Login { pending, subject } => {
            let Some((sealed, mut grant, parked_at)) = take_at(&mut model.logins, pending) else {
                return;
            };
            let Ok(p) = PendingAuthorization::unseal(&FIXTURE.parking, &sealed, BROWSER, store.now)
            else {
                assert!(
                    store.now >= parked_at + authorize::PENDING_LIFETIME,
                    "a sealed pending login does not open before it expires"
                );
                return;
            };
            let id = p.client_id().to_owned();
            let Ok(Resumed::Login(l)) =
                p.resume(FIXTURE.clients.get(&id).cloned(), MarkClaim::Fresh)
            else {
                return;
            };
            let user = Authentication {
                subject: pick(&SUBJECTS, subject).to_owned(),
                auth_time: store.now,
                acr: None,
                amr: vec!["pwd".to_owned()],
                sid: None,
            };
            // Whoever logs in is the end-user now; their consent is still to be found.
            grant.subject = Some(user.subject.clone());
            grant.consented = false;
            let step = AuthorizeFlow::after_login(l, user);
            let ended = drive_authorize(store, step, Some(id), None, Some((model, &mut grant)));
            keep_pending(store, model, ended, grant);
        }
        Op::Consent { pending, allow } => {
            let Some((sealed, mut grant, parked_at)) = take_at(&mut model.consents, pending) else {
                return;
            };
            let Ok(p) = PendingAuthorization::unseal(&FIXTURE.parking, &sealed, BROWSER, store.now)
            else {
                assert!(
                    store.now >= parked_at + authorize::PENDING_LIFETIME,
                    "a sealed pending consent does not open before it expires"
                );
                return;
            };
            let id = p.client_id().to_owned();
            let Ok(Resumed::Consent(c)) =
                p.resume(FIXTURE.clients.get(&id).cloned(), MarkClaim::Fresh)
            else {
                return;
            };
            assert_eq!(
                Some(c.subject()),
                grant.subject.as_deref(),
                "a consent page for another user than the authenticated one"
            );
            let answer = if allow {
                grant.consented = true;
                ConsentAnswer::Allow
            } else {
                ConsentAnswer::Deny
            };
            let step = AuthorizeFlow::after_consent(c, answer);
            let ended = drive_authorize(store, step, Some(id), None, Some((model, &mut grant)));
            keep_pending(store, model, ended, grant);
        }
        Op::Token(t) => {
            let client_id = pick(&CLIENT_IDS, t.client);
            let mut pairs: Vec<(&str, String)> = Vec::new();
            if client_id == SERVICE_CLIENT {
                pairs.push(("grant_type", "client_credentials".to_owned()));
            } else if t.refresh {
                pairs.push(("grant_type", "refresh_token".to_owned()));
                let rt = pick_owned(&model.refresh_list, t.secret).unwrap_or(RFC_REFRESH);
                pairs.push(("refresh_token", rt.to_owned()));
            } else {
                pairs.push(("grant_type", "authorization_code".to_owned()));
                let code = pick_owned(&model.code_list, t.secret).unwrap_or(RFC_CODE);
                pairs.push(("code", code.to_owned()));
            }
            if let Some(r) = t.redirect {
                pairs.push(("redirect_uri", pick(&REDIRECTS, r).to_owned()));
            }
            if let Some(v) = t.verifier {
                pairs.push(("code_verifier", pick(&VERIFIERS, v).to_owned()));
            }
            let secret = match client_id {
                RFC_CLIENT => RFC_SECRET,
                HS_CLIENT => HS_SECRET,
                SERVICE_CLIENT => SERVICE_SECRET,
                _ => "",
            };
            let mut header = None;
            match t.auth % 5 {
                0 => header = Some(basic(client_id, secret)),
                1 => {
                    pairs.push(("client_id", client_id.to_owned()));
                    pairs.push(("client_secret", secret.to_owned()));
                }
                2 => pairs.push(("client_id", client_id.to_owned())),
                3 => header = Some(basic(client_id, "wrong-secret")),
                _ => {
                    header = Some(basic(client_id, secret));
                    pairs.push(("client_secret", secret.to_owned()));
                }
            }
            let extra;
            if let Some((k, v)) = t.extra {
                extra = k;
                pairs.push((extra.as_str(), v));
            }
            let form = params::encode(pairs.iter().map(|(k, v)| (*k, v.as_str())));
            let _ = drive_token(
                store,
                form.as_bytes(),
                header.as_deref().map(str::as_bytes),
                Some(model),
            );
        }
        Op::RawToken { header, form } => {
            let _ = drive_token(store, &form, header.as_deref(), Some(model));
        }
        Op::Userinfo { token, in_body } => {
            let t = pick_owned(&model.access_list, token)
                .unwrap_or(RFC_ACCESS)
                .to_owned();
            let r = if in_body {
                let body = params::encode([("access_token", t.as_str())]);
                drive_userinfo(store, None, Some(body.as_bytes()), Some(model))
            } else {
                let header = format!("Bearer {t}");
                drive_userinfo(store, Some(header.as_bytes()), None, Some(model))
            };
            let revoked = model
                .access
                .get(&SecretHash::of(&t))
                .and_then(|g| model.grants.get(*g))
                .is_some_and(|g| g.revoked);
            if revoked {
                assert_eq!(
                    r.status, 401,
                    "userinfo for a token of a revoked grant: {r:?}"
                );
            }
        }
        Op::Advance { seconds } => store.now += Duration::seconds(i64::from(seconds)),
    }
}

/// `Authorization: Basic` for an id and secret, form-encoded first (RFC 6749 §2.3.1).
fn basic(id: &str, secret: &str) -> String {
    use std::fmt::Write as _;
    let raw = format!(
        "{}:{}",
        params::encode([("", id)]).trim_start_matches('='),
        params::encode([("", secret)]).trim_start_matches('=')
    );
    // Standard base64, written out here so the harness needs no base64 dependency.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::from("Basic ");
    for chunk in raw.as_bytes().chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                let _ = out.write_char(char::from(ALPHABET[idx]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn take_at<T>(list: &mut Vec<T>, i: u8) -> Option<T> {
    if list.is_empty() {
        return None;
    }
    let at = usize::from(i) % list.len();
    Some(list.remove(at))
}

fn keep_pending(store: &mut Store, model: &mut Model, ended: Ended, grant: Grant) {
    match ended {
        Ended::Login(l) => {
            if model.logins.len() < 8 {
                let (sealed, _) = l.park(&FIXTURE.parking, BROWSER, &mut store.rng, store.now);
                model.logins.push((sealed.into_string(), grant, store.now));
            }
        }
        Ended::Consent(c) => {
            if model.consents.len() < 8 {
                let (sealed, _) = c.park(&FIXTURE.parking, BROWSER, &mut store.rng, store.now);
                model
                    .consents
                    .push((sealed.into_string(), grant, store.now));
            }
        }
        Ended::Page | Ended::Redirect(_) => {}
    }
}

/// An introspection request (RFC 7662): an optional `Authorization` line, then the form.
/// It ends in 200, 400 or 401 and writes nothing; `{"active": true}` only for a stored,
/// unexpired token the authenticated caller may see (its own, or an access token meant for
/// the caller's resource or for none), with the fixture's issuer; anything else is exactly
/// `{"active": false}`.
pub fn introspection(data: &[u8]) {
    let (header, form) = split_header(data);
    let store = &FIXTURE.store;
    let mut caller: Option<String> = None;
    let mut step = IntrospectionFlow::parse(form, header);
    let done = loop {
        let flow = match step {
            IntrospectionStep::Done(done) => break done,
            IntrospectionStep::Need(flow) => flow,
        };
        let answer = look_up(flow.need(), &mut caller);
        step = flow
            .resume(answer, &FIXTURE.provider, store.now)
            .expect("the harness answered what was needed");
    };
    assert!(done.effects.is_empty(), "introspection wrote something");
    let status = done.response.status;
    assert!(
        matches!(status, 200 | 400 | 401),
        "introspection answered {status}"
    );
    if status != 200 {
        return;
    }
    let caller = caller.expect("200 without a caller");
    let caller = &FIXTURE.clients[&caller];
    assert!(!caller.is_public(), "a public client introspected");
    let body = done.response.json();
    if body["active"] != true {
        assert_eq!(
            body,
            serde_json::json!({"active": false}),
            "an inactive answer says more"
        );
        return;
    }
    let token = params::Params::parse(form, token::MAX_REQUEST_BYTES)
        .ok()
        .and_then(|p| p.get("token").map(str::to_owned))
        .expect("an active answer for a form without a token");
    let hash = SecretHash::of(&token);
    let (client_id, audience, expires_at) =
        match (store.access.get(&hash), store.refresh.get(&hash)) {
            (Some(a), _) if body.get("token_type").is_some() => {
                (a.client_id.clone(), a.audience.clone(), a.expires_at)
            }
            (_, Some((r, false))) => {
                assert!(
                    body.get("token_type").is_none(),
                    "a refresh token with a token_type"
                );
                (r.client_id.clone(), Vec::new(), r.expires_at)
            }
            _ => panic!("active for a token that is not stored (or was rotated)"),
        };
    assert!(store.now < expires_at, "an expired token is active");
    let may_see = client_id == caller.client_id
        || (body.get("token_type").is_some()
            && caller
                .resource
                .as_ref()
                .is_some_and(|r| audience.is_empty() || audience.contains(r)));
    assert!(may_see, "a token shown to a caller that may not see it");
    assert_eq!(body["iss"], ISSUER);
    assert_eq!(body["client_id"], client_id.as_str());
}

/// A client assertion (RFC 7523): the input is the `client_assertion` of a client
/// credentials request (not UTF-8: nothing to try). A token is issued only for an
/// assertion that our own JWS code (an implementation apart from the jsonwebtoken the core
/// verifies with) accepts under `assert-client`'s secret, with `iss` = `sub` = that client,
/// `aud` the issuer or one of its endpoints, `exp` after the fixture's now and at most ten
/// minutes later, and a `jti`; and the same assertion never succeeds twice.
pub fn client_assertion(data: &[u8]) {
    let Ok(assertion) = std::str::from_utf8(data) else {
        return;
    };
    let form = params::encode([
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion),
    ]);
    let mut store = FIXTURE.store.clone();
    let first = drive_token(&mut store, form.as_bytes(), None, None);
    let second = drive_token(&mut store, form.as_bytes(), None, None);
    assert!(
        !(first.status == 200 && second.status == 200),
        "a client assertion was accepted twice"
    );
    if first.status != 200 {
        assert!(
            matches!(first.status, 400 | 401),
            "a refused assertion answered {}",
            first.status
        );
        return;
    }
    let verified = jws::decode_verify(assertion, |alg, _| {
        alg.is_symmetric().then_some(Signer::Hmac {
            alg,
            secret: ASSERT_SECRET.as_bytes(),
        })
    })
    .expect("an accepted assertion verifies under the client's secret");
    let claims = &verified.claims;
    assert_eq!(claims["iss"], ASSERT_CLIENT);
    assert_eq!(claims["sub"], ASSERT_CLIENT);
    let endpoints = FIXTURE.provider.endpoints();
    let ours = [
        ISSUER,
        endpoints.token.as_str(),
        endpoints.revocation.as_str(),
        endpoints.introspection.as_str(),
    ];
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) => ours.contains(&a.as_str()),
        serde_json::Value::Array(a) => a
            .iter()
            .any(|v| v.as_str().is_some_and(|v| ours.contains(&v))),
        _ => false,
    };
    assert!(aud_ok, "an assertion for another audience was accepted");
    let exp = claims["exp"].as_i64().expect("an exp");
    let now = store.now.unix_timestamp();
    assert!(
        exp > now && exp <= now + 600,
        "an assertion out of its time was accepted"
    );
    assert!(
        claims["jti"].as_str().is_some_and(|j| !j.is_empty()),
        "no jti"
    );
}

/// Runs the target named `name` on `data`; `false` if there is no such target.
/// A revocation request (RFC 7009): an optional `Authorization` line, then the form. It
/// ends in 200, 400 or 401; a refusal changes nothing; a 200 needs an authenticated client;
/// and the only effect is revoking a grant whose token belongs to that client.
/// Answers what revocation and introspection ask from the fixture store, noting the
/// client that was found.
fn look_up(need: TokenLookupNeed<'_>, client_id: &mut Option<String>) -> TokenLookupAnswer {
    let store = &FIXTURE.store;
    match need {
        TokenLookupNeed::Client { client_id: id } => {
            let client = FIXTURE.clients.get(id).cloned();
            *client_id = client.as_ref().map(|c| c.client_id.clone());
            TokenLookupAnswer::Client(client)
        }
        TokenLookupNeed::RefreshToken(hash) => TokenLookupAnswer::RefreshToken(
            store
                .refresh
                .get(hash)
                .filter(|(_, t)| !t)
                .map(|(r, _)| r.clone()),
        ),
        TokenLookupNeed::AccessToken(hash) => {
            TokenLookupAnswer::AccessToken(store.access.get(hash).cloned())
        }
        // One request per run: a jti is always claimed for the first time here.
        TokenLookupNeed::ClaimAssertion(_) => TokenLookupAnswer::AssertionClaimed(true),
        other => panic!("unknown need {other:?}"),
    }
}

pub fn revocation(data: &[u8]) {
    let (header, form) = split_header(data);
    let store = &FIXTURE.store;
    let mut client_id: Option<String> = None;
    let mut step = RevocationFlow::parse(form, header);
    let done = loop {
        let flow = match step {
            RevocationStep::Done(done) => break done,
            RevocationStep::Need(flow) => flow,
        };
        let answer = look_up(flow.need(), &mut client_id);
        step = flow
            .resume(answer, &FIXTURE.provider, store.now)
            .expect("the harness answered what was needed");
    };
    let status = done.response.status;
    assert!(
        matches!(status, 200 | 400 | 401),
        "revocation answered {status}"
    );
    if status != 200 {
        assert!(done.effects.is_empty(), "a refusal with effects");
        return;
    }
    let client = client_id.expect("200 without a client");
    for effect in &done.effects {
        let Effect::RevokeGrant(grant) = effect else {
            panic!("revocation emitted {effect:?}");
        };
        let owned = store
            .refresh
            .values()
            .any(|(r, _)| r.grant == *grant && r.client_id == client)
            || store
                .access
                .values()
                .any(|a| a.grant == *grant && a.client_id == client);
        assert!(owned, "revoked a grant of another client");
    }
}

// ------------------------------------------------------------------ extension grants

/// The grant type of RFC 8693, declared by the extension-grant fixture.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The client registered for the fixture's extension grants.
pub const GRANT_CLIENT: &str = "grant-app";
/// Its secret.
pub const GRANT_SECRET: &str = "grant-app-secret";
/// The subject token the fixture's token exchange accepts.
pub const LIVE_SUBJECT_TOKEN: &str = "live-subject-token";

/// A provider declaring the password grant and token exchange, and the clients of
/// [`FIXTURE`] plus one registered for both.
pub static EXTENSION_FIXTURE: LazyLock<(Provider, HashMap<String, Client>)> = LazyLock::new(|| {
    let provider = Provider::builder(ISSUER, key_set())
        .default_alg(Algorithm::ES256)
        .extension_grant("password")
        .extension_grant(TOKEN_EXCHANGE)
        .build()
        .expect("extension provider fixture");
    let mut clients = FIXTURE.clients.clone();
    let app = client(serde_json::json!({
        "client_id": GRANT_CLIENT,
        "client_secret": GRANT_SECRET,
        "redirect_uris": [],
        "response_types": [],
        "grant_types": ["password", "refresh_token", TOKEN_EXCHANGE],
        "scope": "openid profile offline_access api",
    }));
    clients.insert(app.client_id.clone(), app);
    (provider, clients)
});

#[derive(serde::Deserialize)]
struct FuzzPasswordForm {
    username: String,
    password: String,
    scope: Option<String>,
}

#[derive(serde::Deserialize)]
struct FuzzExchangeForm {
    subject_token: String,
    subject_token_type: String,
    scope: Option<String>,
}

/// The fixture's handlers: alice / wonderland for the password grant; the one live subject
/// token (alice's, scope `profile api`) for token exchange. What they grant is what the
/// form asks, unchecked: holding the line is the core's job.
fn fuzz_grant_handler(
    request: &oidc_flow::extension::ExtensionRequest,
) -> Result<oidc_flow::extension::GrantDecision, oidc_flow::OAuthError> {
    use oidc_flow::extension::GrantDecision;
    let scope = |s: Option<String>, default: &str| {
        oidc_flow::Scope::parse(s.as_deref().unwrap_or(default)).map_err(|e| {
            oidc_flow::OAuthError::new(oidc_flow::ErrorCode::InvalidScope, e.to_string())
        })
    };
    let bad_grant = |why: &str| oidc_flow::OAuthError::new(oidc_flow::ErrorCode::InvalidGrant, why);
    match request.grant_type() {
        "password" => {
            let form: FuzzPasswordForm = request.form()?;
            if (form.username.as_str(), form.password.as_str()) != ("alice", "wonderland") {
                return Err(bad_grant("wrong password"));
            }
            let authentication = Authentication {
                subject: "alice".to_owned(),
                auth_time: START,
                acr: None,
                amr: vec!["pwd".to_owned()],
                sid: None,
            };
            Ok(
                GrantDecision::for_end_user(authentication, scope(form.scope, "openid")?)
                    .with_refresh_token(),
            )
        }
        TOKEN_EXCHANGE => {
            let form: FuzzExchangeForm = request.form()?;
            if form.subject_token != LIVE_SUBJECT_TOKEN
                || form.subject_token_type != oidc_flow::extension::ACCESS_TOKEN_TYPE
            {
                return Err(bad_grant("not an active subject token"));
            }
            Ok(GrantDecision::for_subject("alice", scope(form.scope, "api")?).as_token_exchange())
        }
        other => panic!("the core asked about the undeclared grant {other}"),
    }
}

/// `extension_grant`: `Authorization` header line, then a token request form, against a
/// provider declaring the password grant and token exchange. A token only for a client
/// that authenticated and registered the grant, when its handler said yes; the scope
/// within the client's registration; an ID token and refresh token only for the password
/// grant's end-user, never for token exchange, which always says `issued_token_type`.
pub fn extension_grant(data: &[u8]) {
    let _ = extension_grant_status(data);
}

/// [`extension_grant`], reporting the status the token endpoint answered.
pub fn extension_grant_status(data: &[u8]) -> u16 {
    let (header, form) = split_header(data);
    let (provider, clients) = &*EXTENSION_FIXTURE;
    let mut store = FIXTURE.store.clone();
    let mut asked: Option<(String, String, bool)> = None;
    let mut step = TokenFlow::parse(form, header);
    let done = loop {
        let flow = match step {
            TokenStep::Need(flow) => flow,
            TokenStep::Done(done) => break done,
        };
        let answer = match flow.need() {
            TokenNeed::Client { client_id } => TokenAnswer::Client(clients.get(client_id).cloned()),
            TokenNeed::ExtensionGrant(request) => {
                let client = request.client();
                assert!(
                    client.allows_grant_named(request.grant_type()),
                    "asked about a grant the client did not register"
                );
                let decision = fuzz_grant_handler(request);
                asked = Some((
                    client.client_id.clone(),
                    request.grant_type().to_owned(),
                    decision.is_ok(),
                ));
                TokenAnswer::ExtensionGrant(decision)
            }
            TokenNeed::ClaimAssertion(jti) => TokenAnswer::AssertionClaimed(
                store
                    .nonces
                    .insert((jti.client_id.clone(), jti.nonce.clone())),
            ),
            TokenNeed::ResourceServer { resource } => TokenAnswer::ResourceServer(
                clients
                    .values()
                    .find(|c| c.resource.as_deref() == Some(resource))
                    .cloned(),
            ),
            TokenNeed::TakeCode(_) => TokenAnswer::Code(Taken::Unknown),
            TokenNeed::TakeRefreshToken(_) => TokenAnswer::RefreshToken(Taken::Unknown),
            TokenNeed::Claims { .. } => TokenAnswer::Claims(UserInfo::default()),
            other => panic!("an unknown need {other:?}"),
        };
        let now = store.now;
        step = flow
            .resume(answer, provider, &mut store.rng, now)
            .expect("the harness answered what was needed");
    };
    let response = done.response;
    assert!(
        matches!(response.status, 200 | 400 | 401),
        "the token endpoint answered {}: {}",
        response.status,
        response.body
    );
    if response.status != 200 {
        assert!(
            done.effects
                .iter()
                .all(|e| matches!(e, Effect::RevokeGrant(_))),
            "a refusal stored a token"
        );
        return response.status;
    }
    let Some((client_id, grant_type, said_yes)) = asked else {
        // A core grant (client credentials of the service client) may succeed here too.
        return response.status;
    };
    assert!(said_yes, "a token although the handler refused");
    let client = &clients[&client_id];
    let body = response.json();
    let scope = oidc_flow::Scope::parse(body["scope"].as_str().expect("a scope")).expect("a scope");
    assert!(
        scope.not_in(&client.scope).next().is_none(),
        "a scope beyond the client's registration: {scope}"
    );
    let stored: Vec<&AccessTokenRecord> = done
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::StoreAccessToken(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 1, "one access token per request");
    let record = stored[0];
    assert_eq!(record.client_id, client_id, "a token for another client");
    assert_eq!(record.subject, "alice", "a token for someone else");
    if grant_type == TOKEN_EXCHANGE {
        assert_eq!(
            body["issued_token_type"],
            oidc_flow::extension::ACCESS_TOKEN_TYPE
        );
        assert!(
            body.get("id_token").is_none() && body.get("refresh_token").is_none(),
            "token exchange issued more than an access token"
        );
        assert!(
            !scope.is_openid() && !scope.contains("offline_access"),
            "an end-user scope with nobody authenticated"
        );
    } else {
        assert!(body.get("issued_token_type").is_none());
        assert_eq!(body.get("id_token").is_some(), scope.is_openid());
    }
    response.status
}

pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "revocation" => revocation(data),
        "introspection" => introspection(data),
        "client_assertion" => client_assertion(data),
        "authorize_query" => authorize_query(data),
        "authorize_form" => authorize_form(data),
        "token_request" => token_request(data),
        "bearer" => bearer(data),
        "redirect_uri" => redirect_uri(data),
        "pkce" => pkce(data),
        "jws" => jws(data),
        "id_token_hint" => id_token_hint(data),
        "flow" => flow(data),
        "extension_grant" => extension_grant(data),
        _ => return false,
    }
    true
}

/// Every target, by name (the binaries under `fuzz_targets/`).
pub const TARGETS: [&str; 13] = [
    "revocation",
    "introspection",
    "client_assertion",
    "authorize_query",
    "authorize_form",
    "token_request",
    "bearer",
    "redirect_uri",
    "pkce",
    "jws",
    "id_token_hint",
    "flow",
    "extension_grant",
];
