//! The driver: one async function per endpoint that runs the core's erased flow, answers
//! each need from a [`Store`], applies the effects in one transaction, and only then hands
//! back the response. If applying fails, the prepared response is dropped.

use getrandom::SysRng;
use oidc_flow::authorize::{AwaitingConsent, AwaitingLogin, PendingAuthorization, Resumed};
use oidc_flow::flow::{
    AuthorizeAnswer, AuthorizeNeed, AuthorizeOutcome, AuthorizeStep, ProtocolMisuse, TokenAnswer,
    TokenFlow, TokenNeed, TokenStep, UserinfoAnswer, UserinfoFlow, UserinfoNeed, UserinfoStep,
};
use oidc_flow::{
    Authentication, ErrorCode, ErrorPage, JsonResponse, MintedSecret, OAuthError, Provider,
    Redirect, SecretHash,
};
use rand_core::UnwrapErr;
use time::OffsetDateTime;

use crate::{Store, StoreError};

/// How long an authorization may wait for login and consent.
pub const PENDING_LIFETIME: time::Duration = time::Duration::minutes(15);

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
        let description = match self {
            // A code replay raced the first exchange: say so, it is the client's concern.
            Self::Store(StoreError::GrantRevoked) => "the grant was revoked while this request ran",
            _ => "the server could not complete the request",
        };
        JsonResponse::oauth_error(500, &OAuthError::new(ErrorCode::ServerError, description))
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
    /// Show the login page; the request is parked under this handle.
    Login {
        /// The waiting request (for the page's hints and client name).
        awaiting: AwaitingLogin,
        /// The handle the login form carries back.
        handle: String,
    },
    /// Show the consent page; the request is parked under this handle.
    Consent {
        /// The waiting request (for the page's client name and scope).
        awaiting: AwaitingConsent,
        /// The handle the consent form carries back.
        handle: String,
    },
}

/// Runs an authorization request from `step` (a new request, or one resumed after login or
/// consent) to its end. `session` answers the session need (the user agent's cookie).
pub async fn authorize<S: Store>(
    store: &S,
    provider: &Provider,
    mut step: AuthorizeStep,
    session: Option<Authentication>,
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
            AuthorizeNeed::NonceSeen { client_id, nonce } => {
                AuthorizeAnswer::NonceSeen(store.nonce_seen(client_id, nonce, now).await?)
            }
            AuthorizeNeed::Session => AuthorizeAnswer::Session(session.clone()),
            AuthorizeNeed::Consent {
                subject,
                client_id,
                scope,
            } => AuthorizeAnswer::Consent(store.consented(subject, client_id, scope).await?),
            AuthorizeNeed::Claims { subject } => {
                AuthorizeAnswer::Claims(store.user_claims(subject).await?.unwrap_or_default())
            }
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
            let handle = park(store, awaiting.pending(), now).await?;
            AuthorizeResult::Login { awaiting, handle }
        }
        AuthorizeOutcome::Consent(awaiting) => {
            let handle = park(store, awaiting.pending(), now).await?;
            AuthorizeResult::Consent { awaiting, handle }
        }
    })
}

/// Stores a waiting request under a fresh random handle and returns the handle.
pub async fn park<S: Store>(
    store: &S,
    pending: PendingAuthorization,
    now: OffsetDateTime,
) -> Result<String, StoreError> {
    let handle = MintedSecret::generate(&mut system_rng());
    store
        .put_pending(&handle.hash(), &pending, now + PENDING_LIFETIME)
        .await?;
    Ok(handle.into_string())
}

/// Takes the waiting request parked under `handle` and binds its client again.
/// `Ok(None)` when the handle is unknown, used or expired.
pub async fn unpark<S: Store>(
    store: &S,
    handle: &str,
    now: OffsetDateTime,
) -> Result<Option<Result<Resumed, ErrorPage>>, StoreError> {
    let Some(pending) = store.take_pending(&SecretHash::of(handle), now).await? else {
        return Ok(None);
    };
    let client = store.client(pending.client_id()).await?;
    Ok(Some(pending.resume(client)))
}

/// Runs a token request: the form body and the `Authorization` header.
pub async fn token<S: Store>(
    store: &S,
    provider: &Provider,
    form: &[u8],
    authorization: Option<&[u8]>,
    now: OffsetDateTime,
) -> Result<JsonResponse, DriverError> {
    let mut rng = system_rng();
    let mut step = TokenFlow::parse(form, authorization);
    loop {
        let flow = match step {
            TokenStep::Done(done) => {
                store.apply(&done.effects).await?;
                return Ok(done.response);
            }
            TokenStep::Need(flow) => flow,
        };
        let answer = match flow.need() {
            TokenNeed::Client { client_id } => TokenAnswer::Client(store.client(client_id).await?),
            TokenNeed::TakeCode(hash) => TokenAnswer::Code(store.take_code(hash).await?),
            TokenNeed::TakeRefreshToken(hash) => {
                TokenAnswer::RefreshToken(store.take_refresh_token(hash).await?)
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
            UserinfoNeed::Claims { subject } => {
                UserinfoAnswer::Claims(store.user_claims(subject).await?.unwrap_or_default())
            }
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
