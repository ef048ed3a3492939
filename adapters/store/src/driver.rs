//! The driver: one async function per endpoint that runs the core's erased flow, answers
//! each need from a [`Store`], applies the effects in one transaction, and only then hands
//! back the response. If applying fails, the prepared response is dropped.
//!
//! What follows is `ADAPTERS.md` at the repository's root: the contract an adapter keeps,
//! and a whole adapter of a made-up framework as a doctest.
//!
#![doc = include_str!("../../../ADAPTERS.md")]

use getrandom::SysRng;
use oidc_flow::authorize::{
    ConsentPage, LoginPage, MarkClaim, PendingAuthorization, PendingView, Resumed,
    SealedAuthorization,
};
use oidc_flow::flow::{
    AuthorizeAnswer, AuthorizeNeed, AuthorizeOutcome, AuthorizeStep, IntrospectionFlow,
    IntrospectionStep, LogoutAnswer, LogoutNeed, LogoutOutcome, LogoutStep, ProtocolMisuse,
    RevocationFlow, RevocationStep, TokenAnswer, TokenFlow, TokenLookupAnswer, TokenLookupNeed,
    TokenNeed, TokenStep, UserinfoAnswer, UserinfoFlow, UserinfoNeed, UserinfoStep,
};
use oidc_flow::logout::{AwaitingConfirmation, LoggedOut};
use oidc_flow::token::TokenError;
use oidc_flow::{
    AccessTokenRecord, Authentication, ErrorCode, ErrorPage, JsonResponse, OAuthError, Provider,
    Redirect, SecretHash,
};
use rand_core::UnwrapErr;
use time::OffsetDateTime;

use crate::grants::Grants;
use crate::jwks_fetch::JwksFetcher;
use crate::{Store, StoreError, StoreResult};

pub use oidc_flow::authorize::PENDING_LIFETIME;

/// Why the driver could not finish a request; the adapter answers `server_error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The store failed (the response was not sent: nothing half-done).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The driver fed the flow a wrong answer: a bug.
    #[error(transparent)]
    Misuse(#[from] ProtocolMisuse),
}

impl DriverError {
    /// The JSON `server_error` a back-channel endpoint sends for this failure.
    pub fn to_json(&self) -> JsonResponse {
        JsonResponse::oauth_error(
            500,
            &OAuthError::new(
                ErrorCode::ServerError,
                "the server could not complete the request",
            ),
        )
    }
}

/// The operating system's CSPRNG, as the core's `CryptoRng`.
///
/// A failure of the OS generator is not survivable for an identity provider, so it panics
/// (through `UnwrapErr`) rather than mint weak secrets.
pub fn system_rng() -> UnwrapErr<SysRng> {
    UnwrapErr(SysRng)
}

/// How an authorization request ended, effects already applied.
#[derive(Debug)]
#[must_use]
pub enum AuthorizeResult {
    /// Show this error page (400); never redirect.
    ErrorPage(ErrorPage),
    /// Send this redirect (303 for query/fragment, or the form_post page).
    Redirect(Redirect),
    /// Show the login page; the request is sealed into `sealed`, which the login form
    /// carries back (nothing was stored).
    Login {
        /// What the page shows (hints, client name).
        page: LoginPage,
        /// The parked request, sealed for this browser.
        sealed: SealedAuthorization,
    },
    /// Show the consent page; the request is sealed into `sealed`, which the consent form
    /// carries back (nothing was stored).
    Consent {
        /// What the page shows (client name, scope, the person).
        page: ConsentPage,
        /// The parked request, sealed for this browser.
        sealed: SealedAuthorization,
    },
}

/// Runs an authorization request from `step` (a new request, or one resumed after login or
/// consent) to its end. `session` answers the session need (the user agent's cookie);
/// `browser` is the value a waiting request is sealed to: one only this user agent holds
/// and sends back with its forms (its CSRF cookie, say).
pub async fn authorize<S: Store>(
    store: &S,
    provider: &Provider,
    mut step: AuthorizeStep,
    session: Option<Authentication>,
    browser: &str,
    now: OffsetDateTime,
) -> Result<AuthorizeResult, DriverError> {
    let mut rng = system_rng();
    let outcome = loop {
        let flow = match step {
            AuthorizeStep::Done(outcome) => break outcome,
            AuthorizeStep::Need(flow) => flow,
        };
        let answer = match flow.need() {
            AuthorizeNeed::Client { client_id } => {
                AuthorizeAnswer::Client(store.client(client_id).await?)
            }
            AuthorizeNeed::ClaimNonce(record) => {
                AuthorizeAnswer::NonceClaimed(store.claim_nonce(record, now).await?)
            }
            AuthorizeNeed::Session => AuthorizeAnswer::Session(session.clone()),
            AuthorizeNeed::Consent {
                subject,
                client_id,
                scope,
            } => AuthorizeAnswer::Consent(store.consented(subject, client_id, scope).await?),
            AuthorizeNeed::Claims { subject, scope } => AuthorizeAnswer::Claims(
                store
                    .user_claims_for(subject, scope)
                    .await?
                    .unwrap_or_default(),
            ),
            _ => {
                return Err(DriverError::Misuse(ProtocolMisuse {
                    needed: "a need this driver does not know",
                    answered: "nothing",
                }));
            }
        };
        step = flow.resume(answer, provider, &mut rng, now)?;
    };
    Ok(match outcome {
        AuthorizeOutcome::ErrorPage(page) => AuthorizeResult::ErrorPage(page),
        AuthorizeOutcome::Redirect(done) => {
            store.apply(&done.effects).await?;
            AuthorizeResult::Redirect(done.response)
        }
        AuthorizeOutcome::Login(awaiting) => {
            let (sealed, page) = awaiting.park(store.parking_secret(), browser, &mut rng, now);
            AuthorizeResult::Login { page, sealed }
        }
        AuthorizeOutcome::Consent(awaiting) => {
            let (sealed, page) = awaiting.park(store.parking_secret(), browser, &mut rng, now);
            AuthorizeResult::Consent { page, sealed }
        }
    })
}

/// Opens the sealed request a login or consent form carried back from `browser`; refused
/// when it was edited, forged, sealed for another browser, or expired. Writes nothing.
pub fn open_parked<S: Store>(
    store: &S,
    sealed: &str,
    browser: &str,
    now: OffsetDateTime,
) -> Result<PendingAuthorization, ErrorPage> {
    PendingAuthorization::unseal(store.parking_secret(), sealed, browser, now)
}

/// What the page of a parked request shows (to show it again, after a wrong password),
/// with its client looked up again. Writes nothing.
pub async fn view_parked<S: Store>(
    store: &S,
    pending: &PendingAuthorization,
) -> Result<Result<PendingView, ErrorPage>, StoreError> {
    let client = store.client(pending.client_id()).await?;
    Ok(pending.view(client))
}

/// Uses a parked request once the end-user has logged in or answered: claims its
/// single-use mark (so the same sealed value cannot be used again) and binds its client.
pub async fn unpark<S: Store>(
    store: &S,
    pending: PendingAuthorization,
) -> Result<Result<Resumed, ErrorPage>, StoreError> {
    let claim = if store.claim_parked(pending.single_use()).await? {
        MarkClaim::Fresh
    } else {
        MarkClaim::AlreadyUsed
    };
    let client = store.client(pending.client_id()).await?;
    Ok(pending.resume(client, claim))
}

/// Runs a token request: the form body and the `Authorization` header; extension grants
/// go to their handlers in `grants`.
pub async fn token<S: Store>(
    store: &S,
    provider: &Provider,
    grants: &Grants,
    form: &[u8],
    authorization: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<JsonResponse, DriverError> {
    let mut rng = system_rng();
    let mut step = TokenFlow::parse(form, authorization);
    loop {
        let flow = match step {
            TokenStep::Done(done) => {
                return match store.apply(&done.effects).await {
                    Ok(()) => Ok(done.response),
                    // A concurrent replay of the same code or refresh token revoked the
                    // grant between our take and our write: this request lost the race.
                    Err(StoreError::GrantRevoked) => {
                        Ok(TokenError::grant_revoked_meanwhile().response)
                    }
                    Err(e) => Err(e.into()),
                };
            }
            TokenStep::Need(flow) => flow,
        };
        let answer = match flow.need() {
            TokenNeed::Client { client_id } => TokenAnswer::Client(store.client(client_id).await?),
            TokenNeed::TakeCode(hash) => TokenAnswer::Code(store.take_code(hash).await?),
            TokenNeed::TakeRefreshToken(hash) => {
                TokenAnswer::RefreshToken(store.take_refresh_token(hash).await?)
            }
            TokenNeed::ClaimAssertion(jti) => {
                TokenAnswer::AssertionClaimed(store.claim_nonce(jti, now).await?)
            }
            TokenNeed::ResourceServer { resource } => {
                TokenAnswer::ResourceServer(store.resource_server(resource).await?)
            }
            TokenNeed::Claims { subject, scope } => TokenAnswer::Claims(
                store
                    .user_claims_for(subject, scope)
                    .await?
                    .unwrap_or_default(),
            ),
            TokenNeed::ExtensionGrant(request) => {
                TokenAnswer::ExtensionGrant(grants.decide(request, provider, now).await)
            }
            TokenNeed::ClientKeys { jwks_uri, kid } => {
                TokenAnswer::ClientKeys(JwksFetcher::shared().fetch(jwks_uri, kid).await)
            }
            _ => {
                return Err(DriverError::Misuse(ProtocolMisuse {
                    needed: "a need this driver does not know",
                    answered: "nothing",
                }));
            }
        };
        step = flow.resume(answer, provider, &mut rng, now)?;
    }
}

/// The record of a presented access token (the Bearer value, or RFC 8693's
/// `subject_token`): one of `provider`'s own JWT access tokens, verified and its grant not
/// revoked, or an opaque token stored under its hash. Expiry is the caller's to check.
pub async fn access_token<S: Store>(
    store: &S,
    provider: &Provider,
    token: &str,
) -> StoreResult<Option<AccessTokenRecord>> {
    match oidc_flow::token::own_jwt_access_token(provider, token) {
        Some(own) => Ok((!store.grant_revoked(&own.grant).await?).then_some(own)),
        None => store.access_token(&SecretHash::of(token)).await,
    }
}

/// Answers what revocation and introspection both ask: the client, then the token's
/// records (lookups, not takes).
async fn look_up<S: Store>(
    store: &S,
    need: TokenLookupNeed<'_>,
    now: OffsetDateTime,
) -> Result<TokenLookupAnswer, DriverError> {
    Ok(match need {
        TokenLookupNeed::Client { client_id } => {
            TokenLookupAnswer::Client(store.client(client_id).await?)
        }
        TokenLookupNeed::RefreshToken(hash) => {
            TokenLookupAnswer::RefreshToken(store.refresh_token(hash).await?)
        }
        TokenLookupNeed::AccessToken(hash) => {
            TokenLookupAnswer::AccessToken(store.access_token(hash).await?)
        }
        TokenLookupNeed::GrantRevoked(grant) => {
            TokenLookupAnswer::GrantRevoked(store.grant_revoked(grant).await?)
        }
        TokenLookupNeed::ClaimAssertion(jti) => {
            TokenLookupAnswer::AssertionClaimed(store.claim_nonce(jti, now).await?)
        }
        TokenLookupNeed::ClientKeys { jwks_uri, kid } => {
            TokenLookupAnswer::ClientKeys(JwksFetcher::shared().fetch(jwks_uri, kid).await)
        }
        _ => {
            return Err(DriverError::Misuse(ProtocolMisuse {
                needed: "a need this driver does not know",
                answered: "nothing",
            }));
        }
    })
}

/// Runs a revocation request (RFC 7009): the form body and the `Authorization` header.
pub async fn revoke<S: Store>(
    provider: &Provider,
    store: &S,
    form: &[u8],
    authorization: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<JsonResponse, DriverError> {
    let mut step = RevocationFlow::parse(form, authorization);
    loop {
        let flow = match step {
            RevocationStep::Done(done) => {
                store.apply(&done.effects).await?;
                return Ok(done.response);
            }
            RevocationStep::Need(flow) => flow,
        };
        let answer = look_up(store, flow.need(), now).await?;
        step = flow.resume(answer, provider, now)?;
    }
}

/// Runs an introspection request (RFC 7662): the form body and the `Authorization` header.
/// Nothing is written.
pub async fn introspect<S: Store>(
    provider: &Provider,
    store: &S,
    form: &[u8],
    authorization: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<JsonResponse, DriverError> {
    let mut step = IntrospectionFlow::parse(form, authorization);
    loop {
        let flow = match step {
            IntrospectionStep::Done(done) => {
                if !done.effects.is_empty() {
                    store.apply(&done.effects).await?;
                }
                return Ok(done.response);
            }
            IntrospectionStep::Need(flow) => flow,
        };
        let answer = look_up(store, flow.need(), now).await?;
        step = flow.resume(answer, provider, now)?;
    }
}

/// Runs a UserInfo request: the `Authorization` header and, for a form POST, the body.
pub async fn userinfo<S: Store>(
    store: &S,
    provider: &Provider,
    authorization: Option<&[u8]>,
    form_body: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<JsonResponse, DriverError> {
    let mut step = UserinfoFlow::parse(provider, authorization, form_body);
    loop {
        let flow = match step {
            UserinfoStep::Done(response) => return Ok(response),
            UserinfoStep::Need(flow) => flow,
        };
        let answer = match flow.need() {
            UserinfoNeed::AccessToken(hash) => {
                UserinfoAnswer::AccessToken(store.access_token(hash).await?)
            }
            UserinfoNeed::GrantRevoked(grant) => {
                UserinfoAnswer::GrantRevoked(store.grant_revoked(grant).await?)
            }
            UserinfoNeed::Claims { subject, scope } => UserinfoAnswer::Claims(
                store
                    .user_claims_for(subject, scope)
                    .await?
                    .unwrap_or_default(),
            ),
            _ => {
                return Err(DriverError::Misuse(ProtocolMisuse {
                    needed: "a need this driver does not know",
                    answered: "nothing",
                }));
            }
        };
        step = flow.resume(answer, provider, now)?;
    }
}

/// How an end-session request ended, effects already applied.
#[derive(Debug)]
#[must_use]
pub enum LogoutResult {
    /// Show this error page (400).
    ErrorPage(ErrorPage),
    /// Show the confirmation page; when its CSRF-protected form comes back, run
    /// [`logout`] with [`oidc_flow::flow::LogoutFlow::after_confirmation`].
    Confirm(Box<AwaitingConfirmation>),
    /// The session is ended: send the browser on (or show a page), clear the session
    /// cookie, and deliver `back_channel` without making the page wait.
    LoggedOut(LoggedOut),
}

/// Runs an end-session request from `step`; `session` answers the session need (the user
/// agent's cookie).
pub async fn logout<S: Store>(
    store: &S,
    provider: &Provider,
    mut step: LogoutStep,
    session: Option<Authentication>,
    now: OffsetDateTime,
) -> Result<LogoutResult, DriverError> {
    let mut rng = system_rng();
    loop {
        let flow = match step {
            LogoutStep::Done(LogoutOutcome::ErrorPage(page)) => {
                return Ok(LogoutResult::ErrorPage(page));
            }
            LogoutStep::Done(LogoutOutcome::Confirm(awaiting)) => {
                return Ok(LogoutResult::Confirm(Box::new(awaiting)));
            }
            LogoutStep::Done(LogoutOutcome::Done(done)) => {
                store.apply(&done.effects).await?;
                return Ok(LogoutResult::LoggedOut(done.response));
            }
            LogoutStep::Need(flow) => flow,
        };
        let answer = match flow.need() {
            LogoutNeed::Client { client_id } => {
                LogoutAnswer::Client(store.client(client_id).await?)
            }
            LogoutNeed::Session => LogoutAnswer::Session(session.clone()),
            LogoutNeed::SessionClients { sid } => {
                let mut clients = Vec::new();
                for id in store.session_clients(sid).await? {
                    if let Some(c) = store.client(&id).await? {
                        clients.push(c);
                    }
                }
                LogoutAnswer::SessionClients(clients)
            }
            _ => {
                return Err(DriverError::Misuse(ProtocolMisuse {
                    needed: "a need this driver does not know",
                    answered: "nothing",
                }));
            }
        };
        step = flow.resume(answer, provider, &mut rng, now)?;
    }
}
