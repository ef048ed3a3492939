//! Shared fixtures of the core's end-to-end tests: a provider holding a key for every
//! algorithm, one client per algorithm, and an in-memory store that answers the flows'
//! needs and applies their effects, as an adapter's driver would. Fixed time, seeded rng.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{HashMap, HashSet};

use oidc_flow::authorize::{self, AwaitingConsent, AwaitingLogin, ConsentAnswer, Decision};
use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow::token::{self, Grant};
use oidc_flow::{
    AccessTokenRecord, Authentication, Client, CodeRecord, ConsentRecord, Effect, ErrorPage,
    GrantId, JsonResponse, Provider, ProviderBuilder, Redirect, RefreshTokenRecord, SecretHash,
    Taken, UserInfo, userinfo,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use time::{Duration, OffsetDateTime};

pub const ISSUER: &str = "https://op.example.com";
pub const REDIRECT: &str = "https://rp.example.org/cb";
pub const REDIRECT_ENC: &str = "https%3A%2F%2Frp.example.org%2Fcb";
pub const START: OffsetDateTime = time::macros::datetime!(2026-11-27 12:00:00 UTC);

pub fn key_path(name: &str) -> String {
    format!("{}/tests/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// The PEM fixture that holds the key for `alg`.
pub fn pem_for(alg: Algorithm) -> Vec<u8> {
    let name = match alg {
        Algorithm::ES256 => "p256.pem",
        Algorithm::ES384 => "p384.pem",
        Algorithm::ES512 => "p521.pem",
        Algorithm::EdDSA => "ed25519.pem",
        _ => "rsa2048.pem",
    };
    std::fs::read(key_path(name)).unwrap()
}

/// A key set with one key for each of the 12 asymmetric algorithms (kid = `key-<ALG>`).
pub fn all_keys() -> KeySet {
    let mut keys = KeySet::new();
    for alg in Algorithm::ALL {
        if alg.is_symmetric() {
            continue;
        }
        let kid = format!("key-{alg}");
        keys.add(SigningKey::from_pem(&pem_for(alg), alg, Some(&kid)).unwrap())
            .unwrap();
    }
    keys
}

/// The client id of the fixture client whose ID tokens use `alg`.
pub fn client_id(alg: Algorithm) -> String {
    format!("rp-{alg}")
}

/// The secret of the fixture client `client_id`.
pub fn secret_of(client_id: &str) -> String {
    // At least 64 bytes: an HS512 key must be as long as the hash output (RFC 7518 section 3.2).
    format!("secret-of-{client_id}-0123456789abcdef0123456789abcdef0123456789abcdef")
}

/// A confidential client allowed every response type and grant, ID tokens in `alg`.
pub fn client_for(alg: Algorithm) -> Client {
    let id = client_id(alg);
    let json = serde_json::json!({
        "client_id": id,
        "client_secret": secret_of(&id),
        "redirect_uris": [REDIRECT, "https://rp.example.org/other"],
        "response_types": ["code", "id_token", "id_token token", "code id_token", "code token", "code id_token token"],
        "grant_types": ["authorization_code", "implicit", "refresh_token"],
        "scope": "openid profile email address phone offline_access",
        "id_token_signed_response_alg": alg.as_str(),
    });
    serde_json::from_value::<Client>(json)
        .unwrap()
        .validate()
        .unwrap()
}

/// A public client (no secret, PKCE required).
pub fn public_client() -> Client {
    let json = serde_json::json!({
        "client_id": "public-rp",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid profile email",
    });
    serde_json::from_value::<Client>(json)
        .unwrap()
        .validate()
        .unwrap()
}

/// A client that authenticates with client_secret_post.
pub fn post_client() -> Client {
    let json = serde_json::json!({
        "client_id": "post-rp",
        "client_secret": secret_of("post-rp"),
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "client_secret_post",
        "scope": "openid profile email",
    });
    serde_json::from_value::<Client>(json)
        .unwrap()
        .validate()
        .unwrap()
}

/// A backend service: the client credentials grant only, so no redirect URI.
pub fn service_client() -> Client {
    let json = serde_json::json!({
        "client_id": "service",
        "client_secret_sha256": oidc_flow::secret::SecretHash::of(&secret_of("service")),
        "redirect_uris": [],
        "response_types": [],
        "grant_types": ["client_credentials"],
        "scope": "openid api:read api:write offline_access",
    });
    serde_json::from_value::<Client>(json)
        .unwrap()
        .validate()
        .unwrap()
}

/// A resource server's credential for `https://api.example.com` (RFC 7662 introspection).
pub fn resource_server() -> Client {
    let json = serde_json::json!({
        "client_id": "api-rs",
        "client_secret_sha256": oidc_flow::secret::SecretHash::of(&secret_of("api-rs")),
        "redirect_uris": [],
        "response_types": [],
        "grant_types": [],
        "resource": "https://api.example.com",
    });
    serde_json::from_value::<Client>(json)
        .unwrap()
        .validate()
        .unwrap()
}

/// A code-flow client (with refresh) and a service (client credentials) whose access
/// tokens are JWTs (RFC 9068).
pub fn jwt_clients() -> [Client; 2] {
    let mut rp = client_for(Algorithm::ES256);
    rp.client_id = "jwt-rp".to_owned();
    rp.client_secret = Some(secret_of("jwt-rp"));
    rp.access_token_format = oidc_flow::AccessTokenFormat::Jwt;
    let mut service = service_client();
    service.client_id = "jwt-service".to_owned();
    service.client_secret_sha256 =
        Some(oidc_flow::secret::SecretHash::of(&secret_of("jwt-service")));
    service.access_token_format = oidc_flow::AccessTokenFormat::Jwt;
    [rp.validate().unwrap(), service.validate().unwrap()]
}

/// The public JWK of a fixture key file (`p256`, `rsa2048`, ...), with `kid` and `alg`.
pub fn public_jwk(file: &str, kid: &str, alg: &str) -> serde_json::Value {
    let path = format!("{}/tests/keys/{file}.jwk.json", env!("CARGO_MANIFEST_DIR"));
    let mut jwk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let map = jwk.as_object_mut().unwrap();
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        map.remove(private);
    }
    map.insert("kid".into(), kid.into());
    map.insert("alg".into(), alg.into());
    jwk
}

/// Clients that authenticate with JWT assertions (RFC 7523): `assert-secret`
/// (client_secret_jwt) and `assert-key` (private_key_jwt with an ES256 and an RS256 key).
pub fn assertion_clients() -> [Client; 2] {
    let mut secret = service_client();
    secret.client_id = "assert-secret".to_owned();
    secret.client_secret_sha256 = None;
    secret.client_secret = Some(secret_of("assert-secret"));
    secret.token_endpoint_auth_method = oidc_flow::AuthMethod::ClientSecretJwt;
    let mut key = service_client();
    key.client_id = "assert-key".to_owned();
    key.client_secret_sha256 = None;
    key.token_endpoint_auth_method = oidc_flow::AuthMethod::PrivateKeyJwt;
    key.jwks = Some(serde_json::json!({"keys": [
        public_jwk("p256", "client-es256", "ES256"),
        public_jwk("rsa2048", "client-rs256", "RS256"),
    ]}));
    [secret.validate().unwrap(), key.validate().unwrap()]
}

/// The payload of a compact JWT, decoded without any check (tests read what was issued).
pub fn jwt_payload(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

/// The claims of the fixture user `alice`.
pub fn alice_claims() -> UserInfo {
    serde_json::from_value(serde_json::json!({
        "name": "Alice Liddell",
        "given_name": "Alice",
        "family_name": "Liddell",
        "preferred_username": "alice",
        "email": "alice@example.com",
        "email_verified": true,
        "phone_number": "+1 555 0100",
        "phone_number_verified": false,
        "address": {"street_address": "1 Rabbit Hole", "locality": "Oxford", "country": "UK"},
        "birthdate": "1852-05-04",
        "updated_at": 1_700_000_000,
        "favourite_colour": "blue"
    }))
    .unwrap()
}

/// What the authorization endpoint ended with.
#[derive(Debug)]
pub enum AuthzOutcome {
    /// An error page: nothing redirected.
    Page(ErrorPage),
    /// A redirect: success or a redirected error.
    Redirect(Redirect),
    /// Waiting for login.
    Login(AwaitingLogin),
    /// Waiting for consent.
    Consent(AwaitingConsent),
}

impl AuthzOutcome {
    pub fn redirect(self) -> Redirect {
        match self {
            Self::Redirect(r) => r,
            other => panic!("expected a redirect, got {other:?}"),
        }
    }

    pub fn page(self) -> ErrorPage {
        match self {
            Self::Page(p) => p,
            other => panic!("expected an error page, got {other:?}"),
        }
    }
}

/// An in-memory provider: the store and driver loop in a few lines, for tests.
pub struct Harness {
    pub provider: Provider,
    pub clients: HashMap<String, Client>,
    pub users: HashMap<String, UserInfo>,
    pub codes: HashMap<SecretHash, (CodeRecord, bool)>,
    pub access_tokens: HashMap<SecretHash, AccessTokenRecord>,
    pub refresh_tokens: HashMap<SecretHash, (RefreshTokenRecord, bool)>,
    pub nonces: HashSet<(String, String)>,
    pub consents: Vec<ConsentRecord>,
    pub revoked: Vec<GrantId>,
    /// (sid, client_id) of the clients that took part in each session.
    pub session_clients: HashSet<(String, String)>,
    pub rng: ChaCha20Rng,
    pub now: OffsetDateTime,
    /// The secret parked requests are sealed with.
    pub parking: oidc_flow::parking::ParkingSecret,
    /// The application's handler of extension grants (`None`: no handler registered).
    pub extension_grant: Option<ExtensionHandler>,
    /// JWKS documents clients publish, by `jwks_uri` (what a driver would fetch).
    pub published_jwks: HashMap<String, serde_json::Value>,
}

/// An application's extension grant handler, as the harness calls it.
pub type ExtensionHandler = Box<
    dyn Fn(
        &oidc_flow::extension::ExtensionRequest,
        &Harness,
    ) -> Result<oidc_flow::extension::GrantDecision, oidc_flow::OAuthError>,
>;

impl Harness {
    /// A harness with every fixture key and client; `configure` adjusts the provider.
    pub fn new(configure: impl FnOnce(ProviderBuilder) -> ProviderBuilder) -> Self {
        let provider = configure(Provider::builder(ISSUER, all_keys()))
            .build()
            .unwrap();
        let mut clients = HashMap::new();
        for alg in Algorithm::ALL {
            let c = client_for(alg);
            clients.insert(c.client_id.clone(), c);
        }
        let [jwt_rp, jwt_service] = jwt_clients();
        let [assert_secret, assert_key] = assertion_clients();
        for c in [
            public_client(),
            post_client(),
            service_client(),
            resource_server(),
            jwt_rp,
            jwt_service,
            assert_secret,
            assert_key,
        ] {
            clients.insert(c.client_id.clone(), c);
        }
        let mut users = HashMap::new();
        users.insert("alice".to_owned(), alice_claims());
        users.insert("bob".to_owned(), UserInfo::default());
        Self {
            provider,
            clients,
            users,
            codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            nonces: HashSet::new(),
            consents: Vec::new(),
            revoked: Vec::new(),
            session_clients: HashSet::new(),
            rng: ChaCha20Rng::seed_from_u64(2026),
            now: START,
            parking: oidc_flow::parking::ParkingSecret::from_bytes(&[42; 32]),
            extension_grant: None,
            published_jwks: HashMap::new(),
        }
    }

    /// The default harness.
    pub fn default_provider() -> Self {
        Self::new(|b| b)
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
    }

    /// A session of `subject` that authenticated `ago` before now.
    pub fn session(&self, subject: &str, ago: Duration) -> Authentication {
        Authentication {
            subject: subject.to_owned(),
            auth_time: self.now - ago,
            acr: None,
            amr: vec!["pwd".to_owned()],
            sid: None,
        }
    }

    /// Applies effects in order, as a store would.
    pub fn apply(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::StoreCode(r) => {
                    self.codes.insert(r.hash, (r, false));
                }
                Effect::StoreAccessToken(r) => {
                    self.access_tokens.insert(r.hash, r);
                }
                Effect::StoreRefreshToken(r) => {
                    self.refresh_tokens.insert(r.hash, (r, false));
                }
                Effect::RememberConsent(c) => self.consents.push(c),
                Effect::RevokeGrant(g) => {
                    self.access_tokens.retain(|_, r| r.grant != g);
                    self.refresh_tokens.retain(|_, (r, _)| r.grant != g);
                    self.codes.retain(|_, (r, _)| r.grant != g);
                    self.revoked.push(g);
                }
                Effect::JoinSession { sid, client_id } => {
                    self.session_clients.insert((sid, client_id));
                }
                Effect::EndSession { sid } => self.session_clients.retain(|(s, _)| *s != sid),
                other => panic!("unexpected effect {other:?}"),
            }
        }
    }

    /// Atomic compare-and-take of a code.
    pub fn take_code(&mut self, hash: &SecretHash) -> Taken<CodeRecord> {
        match self.codes.get_mut(hash) {
            Some((r, taken)) if *taken => Taken::AlreadyTaken(r.grant.clone()),
            Some((r, taken)) => {
                *taken = true;
                Taken::Fresh(r.clone())
            }
            None => Taken::Unknown,
        }
    }

    /// Atomic compare-and-take of a refresh token.
    pub fn take_refresh(&mut self, hash: &SecretHash) -> Taken<RefreshTokenRecord> {
        match self.refresh_tokens.get_mut(hash) {
            Some((r, taken)) if *taken => Taken::AlreadyTaken(r.grant.clone()),
            Some((r, taken)) => {
                *taken = true;
                Taken::Fresh(r.clone())
            }
            None => Taken::Unknown,
        }
    }

    /// Whether `subject` consented to `client_id` for every token of `scope`.
    pub fn consented(&self, subject: &str, client_id: &str, scope: &oidc_flow::Scope) -> bool {
        scope.iter().all(|t| {
            self.consents
                .iter()
                .any(|c| c.subject == subject && c.client_id == client_id && c.scope.contains(t))
        })
    }

    /// Runs the authorization endpoint on `query` with an optional session, up to the first
    /// page, error or redirect. `consent` is whether to treat consent as already given.
    pub fn authorize(&mut self, query: &str, session: Option<Authentication>) -> AuthzOutcome {
        self.authorize_bytes(query.as_bytes(), false, session)
    }

    /// As [`Harness::authorize`], with the request as a POST form body when `post`.
    pub fn authorize_bytes(
        &mut self,
        input: &[u8],
        post: bool,
        session: Option<Authentication>,
    ) -> AuthzOutcome {
        let received = if post {
            authorize::Received::from_form(input)
        } else {
            authorize::Received::from_query(input)
        };
        let received = match received {
            Ok(r) => r,
            Err(p) => return AuthzOutcome::Page(p),
        };
        let client = self.clients.get(received.client_id()).cloned();
        let bound = match received.bind_client(client) {
            Ok(b) => b,
            Err(p) => return AuthzOutcome::Page(p),
        };
        let validated = match bound.validate(&self.provider) {
            Ok(v) => v,
            Err(e) => return AuthzOutcome::Redirect(e.redirect),
        };
        // The claim is an insert-if-absent, as a store does it.
        let claimed = match validated.nonce_to_claim(&self.provider, self.now) {
            Some(n) => self.nonces.insert((n.client_id, n.nonce)),
            None => true,
        };
        let checked = match validated.nonce_claimed(claimed) {
            Ok(c) => c,
            Err(e) => return AuthzOutcome::Redirect(e.redirect),
        };
        let consent = session.as_ref().is_some_and(|s| {
            self.consented(&s.subject, &checked.client().client_id, checked.scope())
        });
        let decision = checked.decide(session, consent, self.now);
        self.finish(decision)
    }

    /// Carries a decision to its outcome, issuing when authorized.
    pub fn finish(&mut self, decision: Decision) -> AuthzOutcome {
        match decision {
            Decision::Login(l) => AuthzOutcome::Login(l),
            Decision::Consent(c) => AuthzOutcome::Consent(c),
            Decision::Error(e) => AuthzOutcome::Redirect(e.redirect),
            Decision::Authorized(a) => {
                let claims = self.users.get(a.subject()).cloned().unwrap_or_default();
                match a.issue(&self.provider, &claims, &mut self.rng, self.now) {
                    Ok(done) => {
                        self.apply(done.effects);
                        AuthzOutcome::Redirect(done.response)
                    }
                    Err(e) => AuthzOutcome::Redirect(e.redirect),
                }
            }
        }
    }

    /// Logs `subject` in now on a login page, then answers consent with `answer` if asked.
    pub fn login_and_consent(
        &mut self,
        outcome: AuthzOutcome,
        subject: &str,
        answer: ConsentAnswer,
    ) -> AuthzOutcome {
        let outcome = match outcome {
            AuthzOutcome::Login(l) => {
                // Sealed into the browser's form and opened again, as an adapter does
                // between HTTP requests.
                let (sealed, _page) = l.park(&self.parking, "browser-1", &mut self.rng, self.now);
                let pending = authorize::PendingAuthorization::unseal(
                    &self.parking,
                    sealed.as_str(),
                    "browser-1",
                    self.now,
                )
                .unwrap();
                let client = self.clients.get(pending.client_id()).cloned();
                let authorize::Resumed::Login(l) =
                    pending.resume(client, authorize::MarkClaim::Fresh).unwrap()
                else {
                    panic!("sealed at the login stage");
                };
                let user = self.session(subject, Duration::ZERO);
                let consent = self.consented(subject, &l.client().client_id, l.scope());
                self.finish(l.logged_in(user, consent))
            }
            other => other,
        };
        match outcome {
            AuthzOutcome::Consent(c) => match c.answer(answer) {
                Ok(a) => self.finish(Decision::Authorized(a)),
                Err(e) => AuthzOutcome::Redirect(e.redirect),
            },
            other => other,
        }
    }

    /// The whole front channel for `query` with `subject` logging in and consenting.
    pub fn authorize_as(&mut self, query: &str, subject: &str) -> Redirect {
        let first = self.authorize(query, None);
        self.login_and_consent(first, subject, ConsentAnswer::Allow)
            .redirect()
    }

    /// The Basic `Authorization` header of a fixture client.
    pub fn basic(client_id: &str) -> String {
        use base64::Engine as _;
        let raw = format!("{client_id}:{}", secret_of(client_id));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    /// Runs the token endpoint on a form body and optional `Authorization` header.
    pub fn token(&mut self, form: &str, authorization: Option<&str>) -> JsonResponse {
        let run = |h: &mut Self| -> Result<_, token::TokenError> {
            let received =
                token::Received::parse(form.as_bytes(), authorization.map(str::as_bytes))?;
            let client = h.clients.get(received.client_id()).cloned();
            let mut authenticated = received.authenticate(client, &h.provider, h.now)?;
            if let token::Authenticated::FetchKeys(k) = authenticated {
                let jwks = h.published_jwks.get(k.jwks_uri()).cloned();
                authenticated = k.with_keys(jwks, &h.provider, h.now)?;
            }
            let authenticated = match authenticated {
                token::Authenticated::Client(a) => a,
                token::Authenticated::ClaimJti(x) => {
                    let jti = x.jti();
                    let fresh = h.nonces.insert((jti.client_id.clone(), jti.nonce.clone()));
                    x.claimed(fresh)?
                }
                token::Authenticated::FetchKeys(_) => panic!("keys fetched twice"),
            };
            let authenticated = match authenticated.requested_resource() {
                Some(resource) => {
                    let server = h
                        .clients
                        .values()
                        .find(|c| c.resource.as_deref() == Some(resource))
                        .cloned();
                    authenticated.resolve_resource(server)?
                }
                None => authenticated,
            };
            match authenticated.grant()? {
                Grant::AuthorizationCode(x) => {
                    let taken = h.take_code(x.code_hash());
                    let redeemed = x.redeem(taken, h.now)?;
                    let claims = h.users.get(redeemed.subject()).cloned().unwrap_or_default();
                    redeemed.issue_with_claims(&h.provider, &claims, &mut h.rng, h.now)
                }
                Grant::RefreshToken(x) => {
                    let taken = h.take_refresh(x.refresh_token_hash());
                    let redeemed = x.redeem(taken, h.now)?;
                    let claims = h.users.get(redeemed.subject()).cloned().unwrap_or_default();
                    redeemed.issue_with_claims(&h.provider, &claims, &mut h.rng, h.now)
                }
                Grant::ClientCredentials(x) => Ok(x.issue(&h.provider, &mut h.rng, h.now)),
                Grant::Extension(x) => {
                    let decision = match &h.extension_grant {
                        Some(handler) => handler(&x, h),
                        None => Err(oidc_flow::OAuthError::new(
                            oidc_flow::ErrorCode::UnsupportedGrantType,
                            "no handler",
                        )),
                    };
                    let granted = x.decide(decision)?;
                    let claims = h.users.get(granted.subject()).cloned().unwrap_or_default();
                    granted.issue_with_claims(&h.provider, &claims, &mut h.rng, h.now)
                }
            }
        };
        let done = match run(self) {
            Ok(done) => done,
            Err(e) => e.into_completed(),
        };
        self.apply(done.effects);
        done.response
    }

    /// Runs the introspection endpoint (RFC 7662) on a form body and `Authorization` header.
    pub fn introspect(&mut self, form: &str, authorization: Option<&str>) -> JsonResponse {
        use oidc_flow::flow::{
            IntrospectionAnswer, IntrospectionFlow, IntrospectionNeed, IntrospectionStep,
        };
        let mut step = IntrospectionFlow::parse(form.as_bytes(), authorization.map(str::as_bytes));
        loop {
            let flow = match step {
                IntrospectionStep::Done(done) => {
                    assert!(done.effects.is_empty(), "introspection writes nothing");
                    return done.response;
                }
                IntrospectionStep::Need(flow) => flow,
            };
            let answer = match flow.need() {
                IntrospectionNeed::Client { client_id } => {
                    IntrospectionAnswer::Client(self.clients.get(client_id).cloned())
                }
                IntrospectionNeed::RefreshToken(hash) => {
                    let found = self.refresh_tokens.get(hash).filter(|(_, taken)| !taken);
                    IntrospectionAnswer::RefreshToken(found.map(|(r, _)| r.clone()))
                }
                IntrospectionNeed::AccessToken(hash) => {
                    IntrospectionAnswer::AccessToken(self.access_tokens.get(hash).cloned())
                }
                IntrospectionNeed::GrantRevoked(grant) => {
                    IntrospectionAnswer::GrantRevoked(self.revoked.contains(grant))
                }
                IntrospectionNeed::ClaimAssertion(jti) => IntrospectionAnswer::AssertionClaimed(
                    self.nonces
                        .insert((jti.client_id.clone(), jti.nonce.clone())),
                ),
                IntrospectionNeed::ClientKeys { jwks_uri, .. } => {
                    IntrospectionAnswer::ClientKeys(self.published_jwks.get(jwks_uri).cloned())
                }
                other => panic!("unknown need {other:?}"),
            };
            step = flow.resume(answer, &self.provider, self.now).unwrap();
        }
    }

    /// A code flow for `client` with offline access: (access token, refresh token).
    pub fn offline_tokens(&mut self, client: &str) -> (String, String) {
        let extra = "&scope=openid%20offline_access&state=s&nonce=n&prompt=consent";
        let r = self.authorize_as(&query(client, "code", extra), "alice");
        let code = redirect_params(&r)["code"].clone();
        let t = self.exchange(client, &code, "").json();
        let access = t["access_token"].as_str().unwrap().to_owned();
        let refresh = t["refresh_token"]
            .as_str()
            .expect("a refresh token")
            .to_owned();
        (access, refresh)
    }

    /// A client credentials request of `client_id` (client_secret_basic) for `scope`.
    pub fn client_credentials(&mut self, client_id: &str, scope: &str) -> JsonResponse {
        let form = TokenForm {
            scope: Some(scope),
            ..TokenForm::grant("client_credentials")
        }
        .encode();
        self.token(&form, Some(&Self::basic(client_id)))
    }

    /// Exchanges `code` with client_secret_basic for `client_id`.
    pub fn exchange(&mut self, client_id: &str, code: &str, extra: &str) -> JsonResponse {
        let form =
            format!("grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_ENC}{extra}");
        let basic = Self::basic(client_id);
        self.token(&form, Some(&basic))
    }

    /// Runs the UserInfo endpoint.
    pub fn userinfo(&mut self, authorization: Option<&str>, body: Option<&str>) -> JsonResponse {
        let received = match userinfo::Received::parse(
            &self.provider,
            authorization.map(str::as_bytes),
            body.map(str::as_bytes),
        ) {
            Ok(r) => r,
            Err(e) => return e.response,
        };
        // One of the provider's own JWT access tokens carries its record (it is not
        // stored); only its grant's revocation is looked up.
        let record = match received.own_jwt_access_token() {
            Some(own) => (!self.revoked.contains(&own.grant)).then(|| own.clone()),
            None => self.access_tokens.get(received.token_hash()).cloned(),
        };
        match received.authorize(record, self.now) {
            Ok(a) => {
                let claims = self.users.get(a.subject()).cloned().unwrap_or_default();
                a.respond(&claims, &self.provider)
            }
            Err(e) => e.response,
        }
    }
}

/// An authorization query for `client_id` with the fixture redirect URI; `extra` is appended.
pub fn query(client_id: &str, response_type: &str, extra: &str) -> String {
    let rt = response_type.replace(' ', "+");
    format!("response_type={rt}&client_id={client_id}&redirect_uri={REDIRECT_ENC}{extra}")
}

/// The parameters of a redirect's query or fragment.
pub fn redirect_params(r: &Redirect) -> HashMap<String, String> {
    r.params()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// A request to the token endpoint, form-encoded from its typed fields by serde_urlencoded
/// (as the core writes its own forms): only the fields set are sent. Malformed requests
/// (repeated or broken parameters) stay raw strings in the tests that send them.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct TokenForm<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_assertion_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_assertion: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_token_type: Option<&'a str>,
}

impl<'a> TokenForm<'a> {
    /// A request of `grant_type`.
    pub fn grant(grant_type: &'a str) -> Self {
        Self {
            grant_type: Some(grant_type),
            ..Self::default()
        }
    }

    /// The `refresh_token` grant with `token`.
    pub fn refresh(token: &'a str) -> Self {
        Self {
            refresh_token: Some(token),
            ..Self::grant("refresh_token")
        }
    }

    /// The form body.
    pub fn encode(&self) -> String {
        serde_urlencoded::to_string(self).unwrap()
    }
}

/// A token presented to the revocation or introspection endpoint (RFC 7009, RFC 7662),
/// form-encoded by serde_urlencoded.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PresentedForm<'a> {
    pub token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_assertion_type: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_assertion: Option<&'a str>,
}

impl<'a> PresentedForm<'a> {
    /// `token`, with no hint.
    pub fn token(token: &'a str) -> Self {
        Self {
            token,
            ..Self::default()
        }
    }

    /// The form body.
    pub fn encode(&self) -> String {
        serde_urlencoded::to_string(self).unwrap()
    }
}
