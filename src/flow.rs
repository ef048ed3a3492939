//! Erased flows for adapters: one enum per endpoint that says what it needs next and takes
//! the answer back, so a driver is a single loop over the typed states of
//! [`crate::authorize`], [`crate::token`] and [`crate::userinfo`].
//!
//! ```text
//! let mut step = TokenFlow::parse(body, authorization);
//! loop {
//!     match step {
//!         TokenStep::Need(flow) => {
//!             let answer = match flow.need() { TokenNeed::Client { client_id } => ..., ... };
//!             step = flow.resume(answer, &provider, &mut rng, now)?;
//!         }
//!         TokenStep::Done(done) => { apply(done.effects)?; return send(done.response); }
//!     }
//! }
//! ```
//!
//! Typed states stay the only way to issue: these enums hold them and call their
//! transitions. An answer that does not fit the need is a [`ProtocolMisuse`], the one
//! error only this layer can raise.

// The enums below are moved a handful of times per request; boxing the large variants
// would cost an allocation per step for no gain.
#![allow(clippy::large_enum_variant)]

use rand_core::CryptoRng;
use time::OffsetDateTime;

use crate::authorize::{
    Authorized, AwaitingConsent, AwaitingLogin, Checked, ClientBound, ConsentAnswer, Decision,
    Received, Validated,
};
use crate::claims::UserInfo;
use crate::client::Client;
use crate::effect::{
    AccessTokenRecord, Authentication, CodeRecord, Completed, NonceRecord, RefreshTokenRecord,
    Taken,
};
use crate::error::OAuthError;
use crate::extension::{ExtensionGranted, ExtensionRequest, GrantDecision};
use crate::introspection::Introspection;
use crate::logout::{self, AwaitingConfirmation, Ending, LoggedOut};
use crate::lookup::TokenKind;
use crate::provider::Provider;
use crate::response::{ErrorPage, JsonResponse, Redirect};
use crate::revocation::Revocation;
use crate::scope::Scope;
use crate::secret::{GrantId, SecretHash};
use crate::token::{
    self, AssertionVerified, Authenticated, CodeExchange, CodeRedeemed, Grant, KeysWanted,
    RefreshExchange, RefreshRedeemed, TokenError,
};
use crate::userinfo;

/// An answer was given that does not fit what the flow needed: a bug in the driver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the driver answered {answered} where the flow needed {needed}")]
pub struct ProtocolMisuse {
    /// What the flow needed.
    pub needed: &'static str,
    /// What it was given.
    pub answered: &'static str,
}

// ---------------------------------------------------------------- authorization endpoint

/// What the authorization flow needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorizeNeed<'a> {
    /// The registered client with this id, or `None`.
    Client {
        /// The client to look up.
        client_id: &'a str,
    },
    /// Claim this nonce atomically: insert it unless an unexpired record of the same client
    /// and value exists (the replay check). Answer whether this call claimed it.
    ClaimNonce(&'a NonceRecord),
    /// The end-user's session, if the user agent has one.
    Session,
    /// Whether `subject` already consented to `client_id` for every token of `scope`.
    Consent {
        /// The end-user.
        subject: &'a str,
        /// The client.
        client_id: &'a str,
        /// The requested scope.
        scope: &'a Scope,
    },
    /// The claims of `subject`, for a token of `scope` (the app may tailor what it reads to
    /// the scope, as Authlib's `generate_user_info(user, scope)`; the core releases only
    /// what the scope covers either way).
    Claims {
        /// The end-user.
        subject: &'a str,
        /// The scope the claims are released for.
        scope: &'a Scope,
    },
}

/// The driver's answer to an [`AuthorizeNeed`].
#[derive(Debug)]
#[non_exhaustive]
pub enum AuthorizeAnswer {
    /// Answers [`AuthorizeNeed::Client`].
    Client(Option<Client>),
    /// Answers [`AuthorizeNeed::ClaimNonce`]: `true` when this call claimed it, `false` when
    /// the client had used it already.
    NonceClaimed(bool),
    /// Answers [`AuthorizeNeed::Session`].
    Session(Option<Authentication>),
    /// Answers [`AuthorizeNeed::Consent`].
    Consent(bool),
    /// Answers [`AuthorizeNeed::Claims`].
    Claims(UserInfo),
}

impl AuthorizeAnswer {
    fn name(&self) -> &'static str {
        match self {
            Self::Client(_) => "Client",
            Self::NonceClaimed(_) => "NonceClaimed",
            Self::Session(_) => "Session",
            Self::Consent(_) => "Consent",
            Self::Claims(_) => "Claims",
        }
    }
}

/// How an authorization request ended.
#[derive(Debug)]
#[must_use]
pub enum AuthorizeOutcome {
    /// Show this error page (status 400); nothing is redirected.
    ErrorPage(ErrorPage),
    /// Apply the effects, then send the redirect (a success, or a redirected error).
    Redirect(Completed<Redirect>),
    /// Show the login page; store `pending()` and resume with [`AuthorizeFlow::after_login`].
    Login(AwaitingLogin),
    /// Show the consent page; store `pending()` and resume with [`AuthorizeFlow::after_consent`].
    Consent(AwaitingConsent),
}

/// One step of the authorization flow.
#[derive(Debug)]
#[must_use]
pub enum AuthorizeStep {
    /// Answer [`AuthorizeFlow::need`], then [`AuthorizeFlow::resume`].
    Need(AuthorizeFlow),
    /// Finished.
    Done(AuthorizeOutcome),
}

/// An authorization request in progress, its typed state erased.
#[derive(Debug)]
#[must_use]
pub struct AuthorizeFlow {
    state: AuthorizeState,
}

#[derive(Debug)]
enum AuthorizeState {
    Received(Received),
    Nonce(Validated, NonceRecord),
    Session(Checked),
    Consent(Checked, Authentication),
    LoggedIn(AwaitingLogin, Authentication),
    Claims(Authorized),
}

fn redirect_error(e: crate::response::ErrorRedirect) -> AuthorizeStep {
    AuthorizeStep::Done(AuthorizeOutcome::Redirect(Completed {
        response: e.redirect,
        effects: Vec::new(),
    }))
}

impl AuthorizeFlow {
    fn step(state: AuthorizeState) -> AuthorizeStep {
        AuthorizeStep::Need(Self { state })
    }

    /// Starts from the query string of a GET.
    pub fn from_query(query: &[u8]) -> AuthorizeStep {
        Self::start(Received::from_query(query))
    }

    /// Starts from the form body of a POST.
    pub fn from_form(body: &[u8]) -> AuthorizeStep {
        Self::start(Received::from_form(body))
    }

    fn start(parsed: Result<Received, ErrorPage>) -> AuthorizeStep {
        match parsed {
            Ok(r) => Self::step(AuthorizeState::Received(r)),
            Err(page) => AuthorizeStep::Done(AuthorizeOutcome::ErrorPage(page)),
        }
    }

    /// Resumes a request whose end-user just logged in (the consent lookup comes next).
    pub fn after_login(awaiting: AwaitingLogin, user: Authentication) -> AuthorizeStep {
        Self::step(AuthorizeState::LoggedIn(awaiting, user))
    }

    /// Resumes a request with the end-user's answer on the consent page.
    pub fn after_consent(awaiting: AwaitingConsent, answer: ConsentAnswer) -> AuthorizeStep {
        match awaiting.answer(answer) {
            Ok(authorized) => Self::step(AuthorizeState::Claims(authorized)),
            Err(e) => redirect_error(e),
        }
    }

    /// What the flow needs to go on.
    pub fn need(&self) -> AuthorizeNeed<'_> {
        match &self.state {
            AuthorizeState::Received(r) => AuthorizeNeed::Client {
                client_id: r.client_id(),
            },
            AuthorizeState::Nonce(_, record) => AuthorizeNeed::ClaimNonce(record),
            AuthorizeState::Session(_) => AuthorizeNeed::Session,
            AuthorizeState::Consent(c, user) => AuthorizeNeed::Consent {
                subject: &user.subject,
                client_id: &c.client().client_id,
                scope: c.scope(),
            },
            AuthorizeState::LoggedIn(l, user) => AuthorizeNeed::Consent {
                subject: &user.subject,
                client_id: &l.client().client_id,
                scope: l.scope(),
            },
            AuthorizeState::Claims(a) => AuthorizeNeed::Claims {
                subject: a.subject(),
                scope: a.scope(),
            },
        }
    }

    fn needed(&self) -> &'static str {
        match self.need() {
            AuthorizeNeed::Client { .. } => "Client",
            AuthorizeNeed::ClaimNonce(_) => "ClaimNonce",
            AuthorizeNeed::Session => "Session",
            AuthorizeNeed::Consent { .. } => "Consent",
            AuthorizeNeed::Claims { .. } => "Claims",
        }
    }

    /// Feeds the answer to the current need and runs to the next need or the end.
    pub fn resume(
        self,
        answer: AuthorizeAnswer,
        provider: &Provider,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<AuthorizeStep, ProtocolMisuse> {
        let misuse = ProtocolMisuse {
            needed: self.needed(),
            answered: answer.name(),
        };
        let step = match (self.state, answer) {
            (AuthorizeState::Received(r), AuthorizeAnswer::Client(client)) => {
                match r.bind_client(client) {
                    Ok(bound) => after_bind(bound, provider, now),
                    Err(page) => AuthorizeStep::Done(AuthorizeOutcome::ErrorPage(page)),
                }
            }
            (AuthorizeState::Nonce(v, _), AuthorizeAnswer::NonceClaimed(claimed)) => {
                match v.nonce_claimed(claimed) {
                    Ok(c) => Self::step(AuthorizeState::Session(c)),
                    Err(e) => redirect_error(e),
                }
            }
            (AuthorizeState::Session(c), AuthorizeAnswer::Session(session)) => match session {
                Some(user) => Self::step(AuthorizeState::Consent(c, user)),
                None => decided(c.decide(None, false, now)),
            },
            (AuthorizeState::Consent(c, user), AuthorizeAnswer::Consent(given)) => {
                decided(c.decide(Some(user), given, now))
            }
            (AuthorizeState::LoggedIn(l, user), AuthorizeAnswer::Consent(given)) => {
                decided(l.logged_in(user, given))
            }
            (AuthorizeState::Claims(a), AuthorizeAnswer::Claims(claims)) => {
                match a.issue(provider, &claims, rng, now) {
                    Ok(done) => AuthorizeStep::Done(AuthorizeOutcome::Redirect(done)),
                    Err(e) => redirect_error(e),
                }
            }
            _ => return Err(misuse),
        };
        // Claims are read only by `response_type=id_token`: otherwise issue at once
        // instead of asking the driver for a lookup nobody uses.
        Ok(match step {
            AuthorizeStep::Need(AuthorizeFlow {
                state: AuthorizeState::Claims(a),
            }) if !a.needs_claims() => match a.issue(provider, &UserInfo::default(), rng, now) {
                Ok(done) => AuthorizeStep::Done(AuthorizeOutcome::Redirect(done)),
                Err(e) => redirect_error(e),
            },
            other => other,
        })
    }
}

fn after_bind(bound: ClientBound, provider: &Provider, now: OffsetDateTime) -> AuthorizeStep {
    match bound.validate(provider) {
        Ok(v) => match v.nonce_to_claim(provider, now) {
            Some(record) => AuthorizeFlow::step(AuthorizeState::Nonce(v, record)),
            // No replay check asked for: nothing to claim.
            None => match v.nonce_claimed(true) {
                Ok(c) => AuthorizeFlow::step(AuthorizeState::Session(c)),
                Err(e) => redirect_error(e),
            },
        },
        Err(e) => redirect_error(e),
    }
}

fn decided(decision: Decision) -> AuthorizeStep {
    match decision {
        Decision::Login(l) => AuthorizeStep::Done(AuthorizeOutcome::Login(l)),
        Decision::Consent(c) => AuthorizeStep::Done(AuthorizeOutcome::Consent(c)),
        Decision::Error(e) => redirect_error(e),
        Decision::Authorized(a) => AuthorizeFlow::step(AuthorizeState::Claims(a)),
    }
}

// ---------------------------------------------------------------- token endpoint

/// What the token flow needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenNeed<'a> {
    /// The registered client with this id, or `None`.
    Client {
        /// The client to look up.
        client_id: &'a str,
    },
    /// Take this code atomically and report what was found.
    TakeCode(&'a SecretHash),
    /// Take this refresh token atomically and report what was found.
    TakeRefreshToken(&'a SecretHash),
    /// Claim this client assertion `jti` (`Store::claim_nonce`): `true` if this request
    /// claimed it first.
    ClaimAssertion(&'a NonceRecord),
    /// The resource server registered for this RFC 8707 resource indicator
    /// (`Store::resource_server`), or `None`.
    ResourceServer {
        /// The resource the request named.
        resource: &'a str,
    },
    /// The end-user's claims, for an ID token that carries them
    /// ([`crate::provider::ProviderBuilder::claims_in_id_token`]).
    Claims {
        /// The end-user.
        subject: &'a str,
        /// The scope the claims are released for.
        scope: &'a Scope,
    },
    /// The application's decision on an extension grant: run the handler registered for
    /// [`ExtensionRequest::grant_type`] (`unsupported_grant_type` if there is none).
    ExtensionGrant(&'a ExtensionRequest),
    /// The JWKS document at a `private_key_jwt` client's registered `jwks_uri` (fetched over
    /// https with a timeout and a size limit, cached at will), or `None`.
    ClientKeys {
        /// Where the client's keys are.
        jwks_uri: &'a str,
        /// The key the assertion names (unverified): a cached document without it is
        /// stale, fetch again.
        kid: Option<&'a str>,
    },
}

/// The driver's answer to a [`TokenNeed`].
#[derive(Debug)]
#[non_exhaustive]
pub enum TokenAnswer {
    /// Answers [`TokenNeed::Client`].
    Client(Option<Client>),
    /// Answers [`TokenNeed::TakeCode`].
    Code(Taken<CodeRecord>),
    /// Answers [`TokenNeed::TakeRefreshToken`].
    RefreshToken(Taken<RefreshTokenRecord>),
    /// Answers [`TokenNeed::ClaimAssertion`].
    AssertionClaimed(bool),
    /// Answers [`TokenNeed::ResourceServer`].
    ResourceServer(Option<Client>),
    /// Answers [`TokenNeed::Claims`] (`UserInfo::default()` for an unknown end-user).
    Claims(UserInfo),
    /// Answers [`TokenNeed::ExtensionGrant`]: what to issue, or the error to send.
    ExtensionGrant(Result<GrantDecision, OAuthError>),
    /// Answers [`TokenNeed::ClientKeys`].
    ClientKeys(Option<serde_json::Value>),
}

impl TokenAnswer {
    fn name(&self) -> &'static str {
        match self {
            Self::Client(_) => "Client",
            Self::Code(_) => "Code",
            Self::RefreshToken(_) => "RefreshToken",
            Self::AssertionClaimed(_) => "AssertionClaimed",
            Self::ResourceServer(_) => "ResourceServer",
            Self::Claims(_) => "Claims",
            Self::ExtensionGrant(_) => "ExtensionGrant",
            Self::ClientKeys(_) => "ClientKeys",
        }
    }
}

/// One step of the token flow.
#[derive(Debug)]
#[must_use]
pub enum TokenStep {
    /// Answer [`TokenFlow::need`], then [`TokenFlow::resume`].
    Need(TokenFlow),
    /// Finished: apply the effects, then send the response (success or error).
    Done(Completed<JsonResponse>),
}

/// A token request in progress, its typed state erased.
#[derive(Debug)]
#[must_use]
pub struct TokenFlow {
    state: TokenState,
}

#[derive(Debug)]
enum TokenState {
    Received(token::Received),
    FetchKeys(KeysWanted),
    ClaimJti(AssertionVerified),
    Resource(token::ClientAuthenticated),
    Code(CodeExchange),
    Refresh(RefreshExchange),
    CodeClaims(CodeRedeemed),
    RefreshClaims(RefreshRedeemed),
    Extension(ExtensionRequest),
    ExtensionClaims(ExtensionGranted),
}

impl TokenFlow {
    /// Starts from the form body and the `Authorization` header.
    pub fn parse(form: &[u8], authorization: Option<&[u8]>) -> TokenStep {
        match token::Received::parse(form, authorization) {
            Ok(r) => TokenStep::Need(Self {
                state: TokenState::Received(r),
            }),
            Err(e) => TokenStep::Done(e.into_completed()),
        }
    }

    /// What the flow needs to go on.
    pub fn need(&self) -> TokenNeed<'_> {
        match &self.state {
            TokenState::Received(r) => TokenNeed::Client {
                client_id: r.client_id(),
            },
            TokenState::ClaimJti(x) => TokenNeed::ClaimAssertion(x.jti()),
            TokenState::FetchKeys(k) => TokenNeed::ClientKeys {
                jwks_uri: k.jwks_uri(),
                kid: k.kid(),
            },
            TokenState::Resource(a) => TokenNeed::ResourceServer {
                resource: a.requested_resource().unwrap_or_default(),
            },
            TokenState::Code(x) => TokenNeed::TakeCode(x.code_hash()),
            TokenState::Refresh(x) => TokenNeed::TakeRefreshToken(x.refresh_token_hash()),
            TokenState::CodeClaims(x) => TokenNeed::Claims {
                subject: x.subject(),
                scope: x.scope(),
            },
            TokenState::RefreshClaims(x) => TokenNeed::Claims {
                subject: x.subject(),
                scope: x.scope(),
            },
            TokenState::ExtensionClaims(x) => TokenNeed::Claims {
                subject: x.subject(),
                scope: x.scope(),
            },
            TokenState::Extension(x) => TokenNeed::ExtensionGrant(x),
        }
    }

    /// Where client authentication led: on, a `jti` to claim, or keys to fetch.
    fn authenticated(
        authenticated: Result<Authenticated, TokenError>,
        provider: &Provider,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<TokenStep, TokenError> {
        match authenticated? {
            Authenticated::Client(a) => Self::after_authentication(Ok(a), provider, rng, now),
            Authenticated::ClaimJti(x) => Ok(TokenStep::Need(Self {
                state: TokenState::ClaimJti(x),
            })),
            Authenticated::FetchKeys(k) => Ok(TokenStep::Need(Self {
                state: TokenState::FetchKeys(k),
            })),
        }
    }

    /// Where an authenticated client's request goes: its grant's next need, or the end.
    fn after_authentication(
        authenticated: Result<token::ClientAuthenticated, TokenError>,
        provider: &Provider,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<TokenStep, TokenError> {
        let authenticated = authenticated?;
        if authenticated.requested_resource().is_some() {
            return Ok(TokenStep::Need(Self {
                state: TokenState::Resource(authenticated),
            }));
        }
        authenticated.grant().map(|grant| match grant {
            Grant::AuthorizationCode(x) => TokenStep::Need(Self {
                state: TokenState::Code(x),
            }),
            Grant::RefreshToken(x) => TokenStep::Need(Self {
                state: TokenState::Refresh(x),
            }),
            Grant::ClientCredentials(x) => TokenStep::Done(x.issue(provider, rng, now)),
            Grant::Extension(x) => TokenStep::Need(Self {
                state: TokenState::Extension(x),
            }),
        })
    }

    /// Feeds the answer to the current need and runs to the next need or the end.
    pub fn resume(
        self,
        answer: TokenAnswer,
        provider: &Provider,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<TokenStep, ProtocolMisuse> {
        let needed = match self.need() {
            TokenNeed::Client { .. } => "Client",
            TokenNeed::TakeCode(_) => "Code",
            TokenNeed::TakeRefreshToken(_) => "RefreshToken",
            TokenNeed::ClaimAssertion(_) => "AssertionClaimed",
            TokenNeed::ResourceServer { .. } => "ResourceServer",
            TokenNeed::Claims { .. } => "Claims",
            TokenNeed::ExtensionGrant(_) => "ExtensionGrant",
            TokenNeed::ClientKeys { .. } => "ClientKeys",
        };
        let misuse = ProtocolMisuse {
            needed,
            answered: answer.name(),
        };
        let result = match (self.state, answer) {
            (TokenState::Received(r), TokenAnswer::Client(client)) => {
                Self::authenticated(r.authenticate(client, provider, now), provider, rng, now)
            }
            (TokenState::FetchKeys(k), TokenAnswer::ClientKeys(jwks)) => {
                Self::authenticated(k.with_keys(jwks, provider, now), provider, rng, now)
            }
            (TokenState::ClaimJti(x), TokenAnswer::AssertionClaimed(fresh)) => {
                Self::after_authentication(x.claimed(fresh), provider, rng, now)
            }
            (TokenState::Resource(a), TokenAnswer::ResourceServer(server)) => {
                Self::after_authentication(a.resolve_resource(server), provider, rng, now)
            }
            (TokenState::Code(x), TokenAnswer::Code(taken)) => x.redeem(taken, now).and_then(|r| {
                if r.needs_claims(provider) {
                    Ok(TokenStep::Need(Self {
                        state: TokenState::CodeClaims(r),
                    }))
                } else {
                    r.issue(provider, rng, now).map(TokenStep::Done)
                }
            }),
            (TokenState::Refresh(x), TokenAnswer::RefreshToken(taken)) => {
                x.redeem(taken, now).and_then(|r| {
                    if r.needs_claims(provider) {
                        Ok(TokenStep::Need(Self {
                            state: TokenState::RefreshClaims(r),
                        }))
                    } else {
                        r.issue(provider, rng, now).map(TokenStep::Done)
                    }
                })
            }
            (TokenState::CodeClaims(r), TokenAnswer::Claims(claims)) => r
                .issue_with_claims(provider, &claims, rng, now)
                .map(TokenStep::Done),
            (TokenState::RefreshClaims(r), TokenAnswer::Claims(claims)) => r
                .issue_with_claims(provider, &claims, rng, now)
                .map(TokenStep::Done),
            (TokenState::Extension(x), TokenAnswer::ExtensionGrant(decision)) => {
                x.decide(decision).and_then(|g| {
                    if g.needs_claims(provider) {
                        Ok(TokenStep::Need(Self {
                            state: TokenState::ExtensionClaims(g),
                        }))
                    } else {
                        g.issue(provider, rng, now).map(TokenStep::Done)
                    }
                })
            }
            (TokenState::ExtensionClaims(g), TokenAnswer::Claims(claims)) => g
                .issue_with_claims(provider, &claims, rng, now)
                .map(TokenStep::Done),
            _ => return Err(misuse),
        };
        Ok(result.unwrap_or_else(|e| TokenStep::Done(e.into_completed())))
    }
}

// ------------------------------------------------- revocation and introspection endpoints

/// What a flow that looks a presented token up needs next: the revocation flow (RFC 7009)
/// and the introspection flow (RFC 7662) ask the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenLookupNeed<'a> {
    /// The registered client with this id, or `None`.
    Client {
        /// The client to look up.
        client_id: &'a str,
    },
    /// The refresh token stored under this hash and not yet rotated, or `None`
    /// (`Store::refresh_token`; a lookup, not a take).
    RefreshToken(&'a SecretHash),
    /// The access token stored under this hash, or `None`.
    AccessToken(&'a SecretHash),
    /// Whether this grant was revoked (`Store::grant_revoked`): asked instead of the two
    /// lookups when the token is one of the provider's own JWT access tokens, which carry
    /// their record and are not stored.
    GrantRevoked(&'a GrantId),
    /// Claim this client assertion `jti` (`Store::claim_nonce`): `true` if this request
    /// claimed it first.
    ClaimAssertion(&'a NonceRecord),
    /// The JWKS document at the client's `jwks_uri`, as [`TokenNeed::ClientKeys`].
    ClientKeys {
        /// Where the client's keys are.
        jwks_uri: &'a str,
        /// The key the assertion names (unverified).
        kid: Option<&'a str>,
    },
}

impl TokenLookupNeed<'_> {
    fn name(&self) -> &'static str {
        match self {
            Self::Client { .. } => "Client",
            Self::RefreshToken(_) => "RefreshToken",
            Self::AccessToken(_) => "AccessToken",
            Self::GrantRevoked(_) => "GrantRevoked",
            Self::ClaimAssertion(_) => "AssertionClaimed",
            Self::ClientKeys { .. } => "ClientKeys",
        }
    }
}

/// The driver's answer to a [`TokenLookupNeed`].
#[derive(Debug)]
#[non_exhaustive]
pub enum TokenLookupAnswer {
    /// Answers [`TokenLookupNeed::Client`].
    Client(Option<Client>),
    /// Answers [`TokenLookupNeed::RefreshToken`].
    RefreshToken(Option<RefreshTokenRecord>),
    /// Answers [`TokenLookupNeed::AccessToken`].
    AccessToken(Option<AccessTokenRecord>),
    /// Answers [`TokenLookupNeed::GrantRevoked`]: `true` if the grant was revoked.
    GrantRevoked(bool),
    /// Answers [`TokenLookupNeed::ClaimAssertion`].
    AssertionClaimed(bool),
    /// Answers [`TokenLookupNeed::ClientKeys`].
    ClientKeys(Option<serde_json::Value>),
}

impl TokenLookupAnswer {
    fn name(&self) -> &'static str {
        match self {
            Self::Client(_) => "Client",
            Self::RefreshToken(_) => "RefreshToken",
            Self::AccessToken(_) => "AccessToken",
            Self::GrantRevoked(_) => "GrantRevoked",
            Self::AssertionClaimed(_) => "AssertionClaimed",
            Self::ClientKeys(_) => "ClientKeys",
        }
    }
}

/// What the revocation flow needs next.
pub type RevocationNeed<'a> = TokenLookupNeed<'a>;
/// The driver's answer to a [`RevocationNeed`].
pub type RevocationAnswer = TokenLookupAnswer;
/// What the introspection flow needs next.
pub type IntrospectionNeed<'a> = TokenLookupNeed<'a>;
/// The driver's answer to an [`IntrospectionNeed`].
pub type IntrospectionAnswer = TokenLookupAnswer;

/// A typed request that looks a presented token up.
trait LooksUp {
    fn token_hash(&self) -> &SecretHash;
    fn first(&self) -> TokenKind;
    fn own_jwt_access_token(&self) -> Option<&AccessTokenRecord>;
}

impl LooksUp for Revocation {
    fn token_hash(&self) -> &SecretHash {
        Revocation::token_hash(self)
    }
    fn first(&self) -> TokenKind {
        Revocation::first(self)
    }
    fn own_jwt_access_token(&self) -> Option<&AccessTokenRecord> {
        Revocation::own_jwt_access_token(self)
    }
}

impl LooksUp for Introspection {
    fn token_hash(&self) -> &SecretHash {
        Introspection::token_hash(self)
    }
    fn first(&self) -> TokenKind {
        Introspection::first(self)
    }
    fn own_jwt_access_token(&self) -> Option<&AccessTokenRecord> {
        Introspection::own_jwt_access_token(self)
    }
}

/// The state both lookup flows share: the client first, then the lookups (the hinted kind
/// first; a record found ends them).
#[derive(Debug)]
enum LookupState<R> {
    Received(token::Received),
    FetchKeys(KeysWanted),
    ClaimJti(AssertionVerified),
    Lookup {
        request: R,
        refresh: Option<Option<RefreshTokenRecord>>,
        access: Option<Option<AccessTokenRecord>>,
    },
}

/// Where feeding an answer to a [`LookupState`] led.
enum Fed<R> {
    /// Another lookup is needed.
    Need(LookupState<R>),
    /// Every lookup needed is answered: decide.
    Found {
        request: R,
        refresh: Option<RefreshTokenRecord>,
        access: Option<AccessTokenRecord>,
    },
    /// The request was refused before any lookup (client authentication, the form).
    Refused(Completed<JsonResponse>),
}

impl<R: LooksUp> LookupState<R> {
    fn need(&self) -> TokenLookupNeed<'_> {
        match self {
            Self::Received(r) => TokenLookupNeed::Client {
                client_id: r.client_id(),
            },
            Self::ClaimJti(x) => TokenLookupNeed::ClaimAssertion(x.jti()),
            Self::FetchKeys(k) => TokenLookupNeed::ClientKeys {
                jwks_uri: k.jwks_uri(),
                kid: k.kid(),
            },
            Self::Lookup {
                request,
                refresh,
                access,
            } => {
                if let Some(own) = request.own_jwt_access_token() {
                    return TokenLookupNeed::GrantRevoked(&own.grant);
                }
                let hash = request.token_hash();
                // The hinted kind first (access tokens without a hint), then the other.
                let refresh_next = match request.first() {
                    TokenKind::RefreshToken => refresh.is_none(),
                    TokenKind::AccessToken => access.is_some(),
                };
                if refresh_next {
                    TokenLookupNeed::RefreshToken(hash)
                } else {
                    TokenLookupNeed::AccessToken(hash)
                }
            }
        }
    }

    /// Where client authentication led: the first lookup, a `jti` to claim, keys to fetch,
    /// or a refusal.
    fn on_authenticated(
        authenticated: Result<Authenticated, TokenError>,
        start: impl FnOnce(token::ClientAuthenticated) -> Result<R, TokenError>,
    ) -> Fed<R> {
        match authenticated.and_then(|a| match a {
            Authenticated::Client(a) => start(a).map(|request| Self::Lookup {
                request,
                refresh: None,
                access: None,
            }),
            Authenticated::ClaimJti(x) => Ok(Self::ClaimJti(x)),
            Authenticated::FetchKeys(k) => Ok(Self::FetchKeys(k)),
        }) {
            Ok(next) => Fed::Need(next),
            Err(e) => Fed::Refused(e.into_completed()),
        }
    }

    fn feed(
        self,
        answer: TokenLookupAnswer,
        provider: &Provider,
        now: OffsetDateTime,
        start: impl FnOnce(token::ClientAuthenticated) -> Result<R, TokenError>,
    ) -> Result<Fed<R>, ProtocolMisuse> {
        let looked_up = |started: Result<R, TokenError>| match started {
            Ok(request) => Fed::Need(Self::Lookup {
                request,
                refresh: None,
                access: None,
            }),
            Err(e) => Fed::Refused(e.into_completed()),
        };
        let needed = self.need().name();
        if needed != answer.name() {
            return Err(ProtocolMisuse {
                needed,
                answered: answer.name(),
            });
        }
        let (request, refresh, access) = match (self, answer) {
            (Self::Received(r), TokenLookupAnswer::Client(client)) => {
                return Ok(Self::on_authenticated(
                    r.authenticate(client, provider, now),
                    start,
                ));
            }
            (Self::FetchKeys(k), TokenLookupAnswer::ClientKeys(jwks)) => {
                return Ok(Self::on_authenticated(
                    k.with_keys(jwks, provider, now),
                    start,
                ));
            }
            (Self::ClaimJti(x), TokenLookupAnswer::AssertionClaimed(fresh)) => {
                return Ok(looked_up(x.claimed(fresh).and_then(start)));
            }
            (
                Self::Lookup {
                    request, access, ..
                },
                TokenLookupAnswer::RefreshToken(found),
            ) => (request, Some(found), access),
            (
                Self::Lookup {
                    request, refresh, ..
                },
                TokenLookupAnswer::AccessToken(found),
            ) => (request, refresh, Some(found)),
            (Self::Lookup { request, .. }, TokenLookupAnswer::GrantRevoked(revoked)) => {
                let access = request.own_jwt_access_token().filter(|_| !revoked).cloned();
                return Ok(Fed::Found {
                    request,
                    refresh: None,
                    access,
                });
            }
            (state, answer) => {
                return Err(ProtocolMisuse {
                    needed: state.need().name(),
                    answered: answer.name(),
                });
            }
        };
        let found = matches!(refresh, Some(Some(_))) || matches!(access, Some(Some(_)));
        if found || (refresh.is_some() && access.is_some()) {
            return Ok(Fed::Found {
                request,
                refresh: refresh.flatten(),
                access: access.flatten(),
            });
        }
        Ok(Fed::Need(Self::Lookup {
            request,
            refresh,
            access,
        }))
    }
}

/// One step of the revocation flow.
#[derive(Debug)]
#[must_use]
pub enum RevocationStep {
    /// Answer [`RevocationFlow::need`], then [`RevocationFlow::resume`].
    Need(RevocationFlow),
    /// Finished: apply the effects, then send the response (200, or a client error).
    Done(Completed<JsonResponse>),
}

/// A revocation request in progress, its typed state erased.
#[derive(Debug)]
#[must_use]
pub struct RevocationFlow {
    state: LookupState<Revocation>,
}

impl RevocationFlow {
    /// Starts from the form body and the `Authorization` header.
    pub fn parse(form: &[u8], authorization: Option<&[u8]>) -> RevocationStep {
        match token::Received::parse(form, authorization) {
            Ok(r) => RevocationStep::Need(Self {
                state: LookupState::Received(r),
            }),
            Err(e) => RevocationStep::Done(e.into_completed()),
        }
    }

    /// What the flow needs to go on.
    pub fn need(&self) -> RevocationNeed<'_> {
        self.state.need()
    }

    /// Feeds the answer to the current need and runs to the next need or the end.
    pub fn resume(
        self,
        answer: RevocationAnswer,
        provider: &Provider,
        now: OffsetDateTime,
    ) -> Result<RevocationStep, ProtocolMisuse> {
        Ok(
            match self
                .state
                .feed(answer, provider, now, |a| a.revocation(provider))?
            {
                Fed::Need(state) => RevocationStep::Need(Self { state }),
                Fed::Found {
                    request,
                    refresh,
                    access,
                } => RevocationStep::Done(request.revoke(refresh, access, now)),
                Fed::Refused(done) => RevocationStep::Done(done),
            },
        )
    }
}

/// One step of the introspection flow.
#[derive(Debug)]
#[must_use]
pub enum IntrospectionStep {
    /// Answer [`IntrospectionFlow::need`], then [`IntrospectionFlow::resume`].
    Need(IntrospectionFlow),
    /// Finished: send the response (200 `{"active": …}`, or a client error).
    Done(Completed<JsonResponse>),
}

/// An introspection request in progress, its typed state erased.
#[derive(Debug)]
#[must_use]
pub struct IntrospectionFlow {
    state: LookupState<Introspection>,
}

impl IntrospectionFlow {
    /// Starts from the form body and the `Authorization` header.
    pub fn parse(form: &[u8], authorization: Option<&[u8]>) -> IntrospectionStep {
        match token::Received::parse(form, authorization) {
            Ok(r) => IntrospectionStep::Need(Self {
                state: LookupState::Received(r),
            }),
            Err(e) => IntrospectionStep::Done(e.into_completed()),
        }
    }

    /// What the flow needs to go on.
    pub fn need(&self) -> IntrospectionNeed<'_> {
        self.state.need()
    }

    /// Feeds the answer to the current need and runs to the next need or the end.
    pub fn resume(
        self,
        answer: IntrospectionAnswer,
        provider: &Provider,
        now: OffsetDateTime,
    ) -> Result<IntrospectionStep, ProtocolMisuse> {
        Ok(
            match self
                .state
                .feed(answer, provider, now, |a| a.introspection(provider))?
            {
                Fed::Need(state) => IntrospectionStep::Need(Self { state }),
                Fed::Found {
                    request,
                    refresh,
                    access,
                } => IntrospectionStep::Done(request.answer(refresh, access, provider, now)),
                Fed::Refused(done) => IntrospectionStep::Done(done),
            },
        )
    }
}

// ---------------------------------------------------------------- UserInfo endpoint

/// What the UserInfo flow needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserinfoNeed<'a> {
    /// The access token record stored under this hash, or `None`.
    AccessToken(&'a SecretHash),
    /// Whether this grant was revoked (`Store::grant_revoked`): asked instead of the lookup
    /// when the token is one of the provider's own JWT access tokens, which are not stored.
    GrantRevoked(&'a GrantId),
    /// The claims of `subject`, for a token of `scope` (the app may tailor what it reads to
    /// the scope, as Authlib's `generate_user_info(user, scope)`; the core releases only
    /// what the scope covers either way).
    Claims {
        /// The end-user.
        subject: &'a str,
        /// The scope the claims are released for.
        scope: &'a Scope,
    },
}

/// The driver's answer to a [`UserinfoNeed`].
#[derive(Debug)]
#[non_exhaustive]
pub enum UserinfoAnswer {
    /// Answers [`UserinfoNeed::AccessToken`].
    AccessToken(Option<AccessTokenRecord>),
    /// Answers [`UserinfoNeed::GrantRevoked`]: `true` if the grant was revoked.
    GrantRevoked(bool),
    /// Answers [`UserinfoNeed::Claims`].
    Claims(UserInfo),
}

/// One step of the UserInfo flow.
#[derive(Debug)]
#[must_use]
pub enum UserinfoStep {
    /// Answer [`UserinfoFlow::need`], then [`UserinfoFlow::resume`].
    Need(UserinfoFlow),
    /// Finished: send the response (claims, or an RFC 6750 error).
    Done(JsonResponse),
}

/// A UserInfo request in progress, its typed state erased.
#[derive(Debug)]
#[must_use]
pub struct UserinfoFlow {
    state: UserinfoState,
}

#[derive(Debug)]
enum UserinfoState {
    Received(userinfo::Received),
    Authorized(userinfo::Authorized),
}

impl UserinfoFlow {
    /// Starts from the `Authorization` header and, for a form POST, the body.
    pub fn parse(
        provider: &Provider,
        authorization: Option<&[u8]>,
        form_body: Option<&[u8]>,
    ) -> UserinfoStep {
        match userinfo::Received::parse(provider, authorization, form_body) {
            Ok(r) => UserinfoStep::Need(Self {
                state: UserinfoState::Received(r),
            }),
            Err(e) => UserinfoStep::Done(e.response),
        }
    }

    /// What the flow needs to go on.
    pub fn need(&self) -> UserinfoNeed<'_> {
        match &self.state {
            UserinfoState::Received(r) => match r.own_jwt_access_token() {
                Some(own) => UserinfoNeed::GrantRevoked(&own.grant),
                None => UserinfoNeed::AccessToken(r.token_hash()),
            },
            UserinfoState::Authorized(a) => UserinfoNeed::Claims {
                subject: a.subject(),
                scope: a.scope(),
            },
        }
    }

    /// Feeds the answer to the current need and runs to the next need or the end.
    pub fn resume(
        self,
        answer: UserinfoAnswer,
        provider: &Provider,
        now: OffsetDateTime,
    ) -> Result<UserinfoStep, ProtocolMisuse> {
        let needed = self.need_name();
        match (self.state, answer) {
            (UserinfoState::Received(r), answer) => {
                let record = match (answer, r.own_jwt_access_token()) {
                    (UserinfoAnswer::AccessToken(record), None) => record,
                    (UserinfoAnswer::GrantRevoked(revoked), Some(own)) => {
                        (!revoked).then(|| own.clone())
                    }
                    (other, _) => {
                        return Err(ProtocolMisuse {
                            needed,
                            answered: userinfo_answer_name(&other),
                        });
                    }
                };
                Ok(match r.authorize(record, now) {
                    Ok(a) => UserinfoStep::Need(Self {
                        state: UserinfoState::Authorized(a),
                    }),
                    Err(e) => UserinfoStep::Done(e.response),
                })
            }
            (UserinfoState::Authorized(a), UserinfoAnswer::Claims(claims)) => {
                Ok(UserinfoStep::Done(a.respond(&claims, provider)))
            }
            (_, other) => Err(ProtocolMisuse {
                needed,
                answered: userinfo_answer_name(&other),
            }),
        }
    }

    fn need_name(&self) -> &'static str {
        match self.need() {
            UserinfoNeed::AccessToken(_) => "AccessToken",
            UserinfoNeed::GrantRevoked(_) => "GrantRevoked",
            UserinfoNeed::Claims { .. } => "Claims",
        }
    }
}

fn userinfo_answer_name(a: &UserinfoAnswer) -> &'static str {
    match a {
        UserinfoAnswer::AccessToken(_) => "AccessToken",
        UserinfoAnswer::GrantRevoked(_) => "GrantRevoked",
        UserinfoAnswer::Claims(_) => "Claims",
    }
}

// ---------------------------------------------------------------- end-session endpoint

/// What the logout flow needs next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogoutNeed<'a> {
    /// The registered client with this id, or `None`.
    Client {
        /// The client to look up.
        client_id: &'a str,
    },
    /// The end-user's session, if the user agent has one.
    Session,
    /// The clients that took part in the session `sid` (those the store recorded).
    SessionClients {
        /// The session.
        sid: &'a str,
    },
}

/// The driver's answer to a [`LogoutNeed`].
#[derive(Debug)]
#[non_exhaustive]
pub enum LogoutAnswer {
    /// Answers [`LogoutNeed::Client`].
    Client(Option<Client>),
    /// Answers [`LogoutNeed::Session`].
    Session(Option<Authentication>),
    /// Answers [`LogoutNeed::SessionClients`] with the registered clients (unknown ones left out).
    SessionClients(Vec<Client>),
}

impl LogoutAnswer {
    fn name(&self) -> &'static str {
        match self {
            Self::Client(_) => "Client",
            Self::Session(_) => "Session",
            Self::SessionClients(_) => "SessionClients",
        }
    }
}

/// How an end-session request ended.
#[derive(Debug)]
#[must_use]
pub enum LogoutOutcome {
    /// Show this error page (status 400).
    ErrorPage(ErrorPage),
    /// Ask the end-user to confirm; resume with [`LogoutFlow::after_confirmation`] when the
    /// adapter's CSRF-protected confirmation form comes back.
    Confirm(AwaitingConfirmation),
    /// Apply the effects, then send the browser on and deliver the back-channel notices.
    Done(Completed<LoggedOut>),
}

/// One step of the logout flow.
#[derive(Debug)]
#[must_use]
pub enum LogoutStep {
    /// Answer [`LogoutFlow::need`], then [`LogoutFlow::resume`].
    Need(LogoutFlow),
    /// Finished.
    Done(LogoutOutcome),
}

/// An end-session request in progress, its typed state erased.
#[derive(Debug)]
#[must_use]
pub struct LogoutFlow {
    state: LogoutState,
}

#[derive(Debug)]
enum LogoutState {
    Received(logout::Received),
    Session(logout::Bound),
    Clients(Ending),
}

impl LogoutFlow {
    fn step(state: LogoutState) -> LogoutStep {
        LogoutStep::Need(Self { state })
    }

    /// Starts from the query string of a GET.
    pub fn from_query(query: &[u8]) -> LogoutStep {
        Self::start(logout::Received::from_query(query))
    }

    /// Starts from the form body of a POST.
    pub fn from_form(body: &[u8]) -> LogoutStep {
        Self::start(logout::Received::from_form(body))
    }

    fn start(parsed: Result<logout::Received, ErrorPage>) -> LogoutStep {
        match parsed {
            Ok(r) if r.client_id().is_none() => match r.without_client() {
                Ok(bound) => Self::step(LogoutState::Session(bound)),
                Err(page) => LogoutStep::Done(LogoutOutcome::ErrorPage(page)),
            },
            Ok(r) => Self::step(LogoutState::Received(r)),
            Err(page) => LogoutStep::Done(LogoutOutcome::ErrorPage(page)),
        }
    }

    /// Resumes a logout the end-user confirmed.
    pub fn after_confirmation(awaiting: AwaitingConfirmation) -> LogoutStep {
        Self::ending(awaiting.confirm())
    }

    fn ending(ending: Ending) -> LogoutStep {
        Self::step(LogoutState::Clients(ending))
    }

    /// What the flow needs to go on.
    pub fn need(&self) -> LogoutNeed<'_> {
        match &self.state {
            // `start` binds requests without a client at once, so there is one here.
            LogoutState::Received(r) => LogoutNeed::Client {
                client_id: r.client_id().unwrap_or_default(),
            },
            LogoutState::Session(_) => LogoutNeed::Session,
            LogoutState::Clients(e) => LogoutNeed::SessionClients {
                sid: e.sid().unwrap_or_default(),
            },
        }
    }

    fn needed(&self) -> &'static str {
        match self.need() {
            LogoutNeed::Client { .. } => "Client",
            LogoutNeed::Session => "Session",
            LogoutNeed::SessionClients { .. } => "SessionClients",
        }
    }

    /// Feeds the answer to the current need and runs to the next need or the end.
    pub fn resume(
        self,
        answer: LogoutAnswer,
        provider: &Provider,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<LogoutStep, ProtocolMisuse> {
        let misuse = ProtocolMisuse {
            needed: self.needed(),
            answered: answer.name(),
        };
        Ok(match (self.state, answer) {
            (LogoutState::Received(r), LogoutAnswer::Client(client)) => {
                match r.bind_client(client, provider) {
                    Ok(bound) => Self::step(LogoutState::Session(bound)),
                    Err(page) => LogoutStep::Done(LogoutOutcome::ErrorPage(page)),
                }
            }
            (LogoutState::Session(bound), LogoutAnswer::Session(session)) => {
                match bound.with_session(session) {
                    logout::Decision::Confirm(awaiting) => {
                        LogoutStep::Done(LogoutOutcome::Confirm(awaiting))
                    }
                    // Without a session id there are no recorded clients to ask for.
                    logout::Decision::End(ending) if ending.sid().is_none() => LogoutStep::Done(
                        LogoutOutcome::Done(ending.finish(&[], provider, rng, now)),
                    ),
                    logout::Decision::End(ending) => Self::ending(ending),
                }
            }
            (LogoutState::Clients(ending), LogoutAnswer::SessionClients(clients)) => {
                LogoutStep::Done(LogoutOutcome::Done(
                    ending.finish(&clients, provider, rng, now),
                ))
            }
            _ => return Err(misuse),
        })
    }
}
