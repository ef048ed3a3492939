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
use oidc_flow::authorize::{self, ConsentAnswer, PendingAuthorization, Resumed};
use oidc_flow::flow::{
    AuthorizeAnswer, AuthorizeFlow, AuthorizeNeed, AuthorizeOutcome, AuthorizeStep, TokenAnswer,
    TokenFlow, TokenNeed, TokenStep, UserinfoAnswer, UserinfoFlow, UserinfoNeed, UserinfoStep,
};
use oidc_flow::jws::{self, Signer};
use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
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
    /// The keys the `jws` target verifies with.
    pub keys: KeySet,
    /// The store every run starts from.
    pub store: Store,
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
            grant: GrantId::generate(&mut rng),
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
                grant: GrantId::generate(&mut rng),
                client_id: RFC_CLIENT.to_owned(),
                scope: scope("openid profile offline_access"),
                authentication: alice(START - Duration::minutes(1)),
                include_auth_time: false,
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
            grant: GrantId::generate(&mut rng),
            client_id: RFC_CLIENT.to_owned(),
            subject: "alice".to_owned(),
            scope: scope("openid profile email"),
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
        keys: key_set(),
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
                Effect::RememberNonce(n) => {
                    self.nonces.insert((n.client_id, n.nonce));
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
}

/// What the flow target expects, kept independently of the core.
#[derive(Default, Debug)]
struct Model {
    codes: HashMap<SecretHash, Issued>,
    code_list: Vec<String>,
    refresh: HashMap<SecretHash, Issued>,
    refresh_list: Vec<String>,
    access: HashSet<SecretHash>,
    access_list: Vec<String>,
    logins: Vec<String>,
    consents: Vec<String>,
}

impl Model {
    fn seeded() -> Self {
        let mut m = Self::default();
        for (code, client_id) in [(RFC_CODE, RFC_CLIENT), (PKCE_CODE, PUBLIC_CLIENT)] {
            m.codes.insert(
                SecretHash::of(code),
                Issued {
                    client_id: client_id.to_owned(),
                    redeemed: false,
                },
            );
            m.code_list.push(code.to_owned());
        }
        m.refresh.insert(
            SecretHash::of(RFC_REFRESH),
            Issued {
                client_id: RFC_CLIENT.to_owned(),
                redeemed: false,
            },
        );
        m.refresh_list.push(RFC_REFRESH.to_owned());
        m.access.insert(SecretHash::of(RFC_ACCESS));
        m.access_list.push(RFC_ACCESS.to_owned());
        m
    }
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
    model: Option<&mut Model>,
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
                        if let Some(model) = model {
                            record_front_channel(model, id, &done.response);
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
            AuthorizeNeed::NonceSeen { client_id, nonce } => AuthorizeAnswer::NonceSeen(
                store
                    .nonces
                    .contains(&(client_id.to_owned(), nonce.to_owned())),
            ),
            AuthorizeNeed::Session => AuthorizeAnswer::Session(session.take().flatten()),
            AuthorizeNeed::Consent {
                subject,
                client_id,
                scope,
            } => AuthorizeAnswer::Consent(store.consented(subject, client_id, scope)),
            AuthorizeNeed::Claims { subject } => AuthorizeAnswer::Claims(claims_of(subject)),
            _ => return Ended::Page,
        };
        let now = store.now;
        step = flow
            .resume(answer, &fx.provider, &mut store.rng, now)
            .expect("the driver answers what was asked");
    }
}

/// Records the code and access token of a successful front-channel response.
fn record_front_channel(model: &mut Model, client_id: &str, r: &oidc_flow::Redirect) {
    if let Some(code) = r.param("code") {
        model.codes.insert(
            SecretHash::of(code),
            Issued {
                client_id: client_id.to_owned(),
                redeemed: false,
            },
        );
        model.code_list.push(code.to_owned());
    }
    if let Some(at) = r.param("access_token") {
        model.access.insert(SecretHash::of(at));
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
            let l = match round_trip(l.pending()) {
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

/// Stores a pending request as an adapter would (JSON) and resumes it.
fn round_trip(pending: PendingAuthorization) -> Option<Resumed> {
    let json = serde_json::to_string(&pending).expect("a pending request serializes");
    let back: PendingAuthorization = serde_json::from_str(&json).expect("and reads back");
    assert_eq!(back, pending, "a pending request survives storage");
    let client = FIXTURE.clients.get(back.client_id()).cloned();
    back.resume(client).ok()
}

/// What a token request was about, as seen by the driver.
enum Redeemed {
    Nothing,
    Code(SecretHash, Taken<CodeRecord>),
    Refresh(SecretHash, Taken<RefreshTokenRecord>),
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
            Redeemed::Nothing => panic!("a token without a grant"),
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
            let body = response.json();
            if let Some(at) = body.get("access_token").and_then(|v| v.as_str()) {
                model.access.insert(SecretHash::of(at));
                model.access_list.push(at.to_owned());
            }
            if let Some(rt) = body.get("refresh_token").and_then(|v| v.as_str()) {
                model.refresh.insert(
                    SecretHash::of(rt),
                    Issued {
                        client_id: client_id.clone(),
                        redeemed: false,
                    },
                );
                model.refresh_list.push(rt.to_owned());
            }
        } else if let Redeemed::Code(h, Taken::Fresh(_)) = &redeemed {
            // Taken but refused: the code is gone either way.
            if let Some(i) = model.codes.get_mut(h) {
                i.redeemed = true;
            }
        } else if let Redeemed::Refresh(h, Taken::Fresh(_)) = &redeemed
            && let Some(i) = model.refresh.get_mut(h)
        {
            i.redeemed = true;
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
                        assert!(
                            model.access.contains(&h),
                            "userinfo for a token never issued"
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
            UserinfoNeed::Claims { subject } => UserinfoAnswer::Claims(claims_of(subject)),
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
    assert!(
        !(first.status == 200 && second.status == 200),
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
        record_front_channel(&mut model, PUBLIC_CLIENT, &r);
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

/// `jws`: a compact JWS verified with the fixed key set.
pub fn jws(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let keys = &FIXTURE.keys;
    if let Ok(v) = jws::decode_verify(token, fixed_resolver(keys)) {
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
    }
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
const CLIENT_IDS: [&str; 4] = [RFC_CLIENT, HS_CLIENT, PUBLIC_CLIENT, "unknown-rp"];
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
            });
            let ended = drive_authorize(store, step, None, session, Some(model));
            keep_pending(model, ended);
        }
        Op::RawAuthorize { post, bytes } => {
            let step = if post {
                AuthorizeFlow::from_form(&bytes)
            } else {
                AuthorizeFlow::from_query(&bytes)
            };
            let ended = drive_authorize(store, step, None, Some(alice(store.now)), Some(model));
            keep_pending(model, ended);
        }
        Op::Login { pending, subject } => {
            let Some(json) = take_at(&mut model.logins, pending) else {
                return;
            };
            let Ok(p) = serde_json::from_str::<PendingAuthorization>(&json) else {
                panic!("a stored pending login does not read back");
            };
            let id = p.client_id().to_owned();
            let Ok(Resumed::Login(l)) = p.resume(FIXTURE.clients.get(&id).cloned()) else {
                return;
            };
            let user = Authentication {
                subject: pick(&SUBJECTS, subject).to_owned(),
                auth_time: store.now,
                acr: None,
                amr: vec!["pwd".to_owned()],
            };
            let step = AuthorizeFlow::after_login(l, user);
            let ended = drive_authorize(store, step, Some(id), None, Some(model));
            keep_pending(model, ended);
        }
        Op::Consent { pending, allow } => {
            let Some(json) = take_at(&mut model.consents, pending) else {
                return;
            };
            let Ok(p) = serde_json::from_str::<PendingAuthorization>(&json) else {
                panic!("a stored pending consent does not read back");
            };
            let id = p.client_id().to_owned();
            let Ok(Resumed::Consent(c)) = p.resume(FIXTURE.clients.get(&id).cloned()) else {
                return;
            };
            let answer = if allow {
                ConsentAnswer::Allow
            } else {
                ConsentAnswer::Deny
            };
            let step = AuthorizeFlow::after_consent(c, answer);
            let ended = drive_authorize(store, step, Some(id), None, Some(model));
            keep_pending(model, ended);
        }
        Op::Token(t) => {
            let client_id = pick(&CLIENT_IDS, t.client);
            let mut pairs: Vec<(&str, String)> = Vec::new();
            if t.refresh {
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
            if in_body {
                let body = params::encode([("access_token", t.as_str())]);
                let _ = drive_userinfo(store, None, Some(body.as_bytes()), Some(model));
            } else {
                let header = format!("Bearer {t}");
                let _ = drive_userinfo(store, Some(header.as_bytes()), None, Some(model));
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

fn take_at(list: &mut Vec<String>, i: u8) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    let at = usize::from(i) % list.len();
    Some(list.remove(at))
}

fn keep_pending(model: &mut Model, ended: Ended) {
    match ended {
        Ended::Login(l) => {
            if model.logins.len() < 8 {
                model
                    .logins
                    .push(serde_json::to_string(&l.pending()).expect("pending serializes"));
            }
        }
        Ended::Consent(c) => {
            if model.consents.len() < 8 {
                model
                    .consents
                    .push(serde_json::to_string(&c.pending()).expect("pending serializes"));
            }
        }
        Ended::Page | Ended::Redirect(_) => {}
    }
}

/// Runs the target named `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "authorize_query" => authorize_query(data),
        "authorize_form" => authorize_form(data),
        "token_request" => token_request(data),
        "bearer" => bearer(data),
        "redirect_uri" => redirect_uri(data),
        "pkce" => pkce(data),
        "jws" => jws(data),
        "id_token_hint" => id_token_hint(data),
        "flow" => flow(data),
        _ => return false,
    }
    true
}

/// Every target, by name (the binaries under `fuzz_targets/`).
pub const TARGETS: [&str; 9] = [
    "authorize_query",
    "authorize_form",
    "token_request",
    "bearer",
    "redirect_uri",
    "pkce",
    "jws",
    "id_token_hint",
    "flow",
];
