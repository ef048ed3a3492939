//! The smallest driver: a whole provider in one synchronous function per endpoint, over
//! `HashMap`s, with no async runtime, no socket and no database. It shows that the core is
//! sans-IO in fact: the erased flows of `oidc_flow::flow` say what they need, this file
//! answers from its maps, applies the effects in order, and hands back the response.
//!
//! Run it with `cargo run --example sync_driver`: it signs `alice` in, exchanges the code,
//! reads UserInfo, then replays the code and shows that the replay revoked the tokens.
//!
//! A real driver answers the same needs from a real store; the rules it must keep (atomic
//! takes, the nonce claim made when it is asked for, effects applied before the response)
//! are in the README's "The trust boundary".

use std::collections::{HashMap, HashSet};
use std::error::Error;

use oidc_flow::authorize::ConsentAnswer;
use oidc_flow::flow::{
    AuthorizeAnswer, AuthorizeFlow, AuthorizeNeed, AuthorizeOutcome, AuthorizeStep, TokenAnswer,
    TokenFlow, TokenNeed, TokenStep, UserinfoAnswer, UserinfoFlow, UserinfoNeed, UserinfoStep,
};
use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow::{
    AccessTokenRecord, Authentication, Client, CodeRecord, Effect, GrantId, JsonResponse, Provider,
    RefreshTokenRecord, Scope, SecretHash, Taken, UserInfo,
};
use rand_core::SeedableRng;
use time::OffsetDateTime;

/// Everything the provider remembers, in memory.
#[derive(Default)]
struct Maps {
    clients: HashMap<String, Client>,
    users: HashMap<String, UserInfo>,
    /// Codes by hash, and whether each was taken.
    codes: HashMap<SecretHash, (CodeRecord, bool)>,
    access_tokens: HashMap<SecretHash, AccessTokenRecord>,
    refresh_tokens: HashMap<SecretHash, (RefreshTokenRecord, bool)>,
    /// (client, nonce) pairs already used.
    nonces: HashSet<(String, String)>,
    /// (subject, client) → the scope consented to.
    consents: HashMap<(String, String), Scope>,
}

/// The one atomic step a store must get right: take a record once. A `&mut` map is atomic
/// by construction here; a database does it with `UPDATE … WHERE taken = 0 RETURNING`.
fn take<R: Clone>(
    map: &mut HashMap<SecretHash, (R, bool)>,
    hash: &SecretHash,
    grant: impl Fn(&R) -> GrantId,
) -> Taken<R> {
    match map.get_mut(hash) {
        None => Taken::Unknown,
        Some((record, taken)) if *taken => Taken::AlreadyTaken(grant(record)),
        Some((record, taken)) => {
            *taken = true;
            Taken::Fresh(record.clone())
        }
    }
}

impl Maps {
    /// Applies a finished step's effects, in order, before its response is sent.
    fn apply(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::StoreCode(r) => {
                    self.codes.insert(r.hash, (r.clone(), false));
                }
                Effect::StoreAccessToken(r) => {
                    self.access_tokens.insert(r.hash, r.clone());
                }
                Effect::StoreRefreshToken(r) => {
                    self.refresh_tokens.insert(r.hash, (r.clone(), false));
                }
                Effect::RememberConsent(c) => {
                    self.consents
                        .insert((c.subject.clone(), c.client_id.clone()), c.scope.clone());
                }
                Effect::RevokeGrant(grant) => {
                    self.access_tokens.retain(|_, r| &r.grant != grant);
                    self.refresh_tokens.retain(|_, (r, _)| &r.grant != grant);
                }
                // Sessions are the adapter's (this example keeps none); a driver must handle
                // every effect the core may add later, so the match has a catch-all.
                _ => {}
            }
        }
    }

    /// Runs the authorization endpoint from `step` until it needs a person or is done.
    fn authorize(
        &mut self,
        provider: &Provider,
        mut step: AuthorizeStep,
        session: Option<&Authentication>,
        rng: &mut rand_chacha::ChaCha20Rng,
        now: OffsetDateTime,
    ) -> Result<AuthorizeOutcome, Box<dyn Error>> {
        loop {
            let flow = match step {
                AuthorizeStep::Done(outcome) => {
                    if let AuthorizeOutcome::Redirect(done) = &outcome {
                        self.apply(&done.effects);
                    }
                    return Ok(outcome);
                }
                AuthorizeStep::Need(flow) => flow,
            };
            let answer = match flow.need() {
                AuthorizeNeed::Client { client_id } => {
                    AuthorizeAnswer::Client(self.clients.get(client_id).cloned())
                }
                AuthorizeNeed::ClaimNonce(record) => AuthorizeAnswer::NonceClaimed(
                    self.nonces
                        .insert((record.client_id.clone(), record.nonce.clone())),
                ),
                AuthorizeNeed::Session => AuthorizeAnswer::Session(session.cloned()),
                AuthorizeNeed::Consent {
                    subject,
                    client_id,
                    scope,
                } => AuthorizeAnswer::Consent(
                    self.consents
                        .get(&(subject.to_owned(), client_id.to_owned()))
                        .is_some_and(|given| scope.is_subset_of(given)),
                ),
                AuthorizeNeed::Claims { subject, .. } => {
                    AuthorizeAnswer::Claims(self.users.get(subject).cloned().unwrap_or_default())
                }
                other => return Err(format!("a need this driver does not know: {other:?}").into()),
            };
            step = flow.resume(answer, provider, rng, now)?;
        }
    }

    /// Runs the token endpoint on a form body and an `Authorization` header.
    fn token(
        &mut self,
        provider: &Provider,
        form: &[u8],
        authorization: Option<&[u8]>,
        rng: &mut rand_chacha::ChaCha20Rng,
        now: OffsetDateTime,
    ) -> Result<JsonResponse, Box<dyn Error>> {
        let mut step = TokenFlow::parse(form, authorization);
        loop {
            let flow = match step {
                TokenStep::Done(done) => {
                    self.apply(&done.effects);
                    return Ok(done.response);
                }
                TokenStep::Need(flow) => flow,
            };
            let answer = match flow.need() {
                TokenNeed::Client { client_id } => {
                    TokenAnswer::Client(self.clients.get(client_id).cloned())
                }
                TokenNeed::TakeCode(hash) => {
                    TokenAnswer::Code(take(&mut self.codes, hash, |r| r.grant.clone()))
                }
                TokenNeed::TakeRefreshToken(hash) => {
                    TokenAnswer::RefreshToken(take(&mut self.refresh_tokens, hash, |r| {
                        r.grant.clone()
                    }))
                }
                // A client assertion's jti is single-use, as nonces are (RFC 7523).
                TokenNeed::ClaimAssertion(jti) => TokenAnswer::AssertionClaimed(
                    self.nonces
                        .insert((jti.client_id.clone(), jti.nonce.clone())),
                ),
                TokenNeed::Claims { subject, .. } => {
                    TokenAnswer::Claims(self.users.get(subject).cloned().unwrap_or_default())
                }
                TokenNeed::ResourceServer { resource } => TokenAnswer::ResourceServer(
                    self.clients
                        .values()
                        .find(|c| c.resource.as_deref() == Some(resource))
                        .cloned(),
                ),
                other => return Err(format!("a need this driver does not know: {other:?}").into()),
            };
            step = flow.resume(answer, provider, rng, now)?;
        }
    }

    /// Runs the UserInfo endpoint on an `Authorization` header.
    fn userinfo(
        &mut self,
        provider: &Provider,
        authorization: &[u8],
        now: OffsetDateTime,
    ) -> Result<JsonResponse, Box<dyn Error>> {
        let mut step = UserinfoFlow::parse(provider, Some(authorization), None);
        loop {
            let flow = match step {
                UserinfoStep::Done(response) => return Ok(response),
                UserinfoStep::Need(flow) => flow,
            };
            let answer = match flow.need() {
                UserinfoNeed::AccessToken(hash) => {
                    UserinfoAnswer::AccessToken(self.access_tokens.get(hash).cloned())
                }
                UserinfoNeed::Claims { subject, .. } => {
                    UserinfoAnswer::Claims(self.users.get(subject).cloned().unwrap_or_default())
                }
                other => return Err(format!("a need this driver does not know: {other:?}").into()),
            };
            step = flow.resume(answer, provider, now)?;
        }
    }
}

/// Signs alice in, exchanges the code, reads UserInfo, and replays the code (`pub` so that
/// `tests/sync_driver.rs` runs it too).
pub fn main() -> Result<(), Box<dyn Error>> {
    // Start-up: the key is parsed once, the configuration validated once.
    let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/p256.pem"))?;
    let mut keys = KeySet::new();
    keys.add(SigningKey::from_pem(&pem, Algorithm::ES256, None)?)?;
    let provider = Provider::builder("https://op.example", keys)
        .default_alg(Algorithm::ES256)
        .build()?;
    let mut maps = Maps::default();
    let client: Client = serde_json::from_value(serde_json::json!({
        "client_id": "rp",
        "client_secret": "s3cret",
        "redirect_uris": ["https://rp.example/cb"],
        "scope": "openid profile",
    }))?;
    maps.clients.insert("rp".into(), client.validate()?);
    maps.users.insert(
        "alice".into(),
        UserInfo {
            name: Some("Alice Liddell".into()),
            ..UserInfo::default()
        },
    );
    // The time and the randomness come from the caller: fixed here, so every run is the same.
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000)?;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);

    // GET /authorize: no session, so the flow stops at the login.
    let query = b"response_type=code&client_id=rp&redirect_uri=https%3A%2F%2Frp.example%2Fcb\
                  &scope=openid%20profile&state=xyz&nonce=n-1";
    let AuthorizeOutcome::Login(awaiting) = maps.authorize(
        &provider,
        AuthorizeFlow::from_query(query),
        None,
        &mut rng,
        now,
    )?
    else {
        return Err("a request without a session asks for a login".into());
    };
    println!("1. login asked for client {}", awaiting.client().client_id);

    // The adapter's login page checked alice's password; consent is asked next.
    let alice = Authentication {
        subject: "alice".into(),
        auth_time: now,
        acr: None,
        amr: vec!["pwd".into()],
        sid: None,
    };
    let step = AuthorizeFlow::after_login(awaiting, alice.clone());
    let AuthorizeOutcome::Consent(awaiting) =
        maps.authorize(&provider, step, Some(&alice), &mut rng, now)?
    else {
        return Err("a first request asks for consent".into());
    };
    println!("2. consent asked for scope `{}`", awaiting.scope());

    // Alice allows: the redirect carries the code.
    let step = AuthorizeFlow::after_consent(awaiting, ConsentAnswer::Allow);
    let AuthorizeOutcome::Redirect(done) =
        maps.authorize(&provider, step, Some(&alice), &mut rng, now)?
    else {
        return Err("an allowed request redirects".into());
    };
    let code = done.response.param("code").ok_or("no code")?.to_owned();
    println!(
        "3. redirect to {}",
        done.response.location().ok_or("no Location")?
    );

    // POST /token, client_secret_basic ("rp:s3cret").
    let basic = b"Basic cnA6czNjcmV0";
    let form = format!(
        "grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Frp.example%2Fcb"
    );
    let tokens = maps.token(&provider, form.as_bytes(), Some(basic), &mut rng, now)?;
    let json = tokens.json();
    println!(
        "4. token endpoint: {} with an id_token of {} bytes",
        tokens.status,
        json.get("id_token")
            .and_then(|t| t.as_str())
            .map_or(0, str::len)
    );
    let access_token = json.get("access_token").and_then(|t| t.as_str());
    let bearer = format!("Bearer {}", access_token.ok_or("no access token")?);

    // GET /userinfo with the access token.
    let info = maps.userinfo(&provider, bearer.as_bytes(), now)?;
    println!("5. userinfo: {} {}", info.status, info.json());

    // The code again: refused, and its grant revoked (RFC 6749 §4.1.2).
    let replay = maps.token(&provider, form.as_bytes(), Some(basic), &mut rng, now)?;
    let info = maps.userinfo(&provider, bearer.as_bytes(), now)?;
    println!(
        "6. the code replayed: {} {}; the access token now: {}",
        replay.status,
        replay.json().get("error").cloned().unwrap_or_default(),
        info.status
    );
    if replay.status != 400 || info.status != 401 {
        return Err("a replayed code must be refused and revoke its tokens".into());
    }
    Ok(())
}
