//! OAuth 2.0 Token Exchange (RFC 8693) as an application's own grant, for impersonation
//! (§1.1): a service holding an access token of this provider trades it for one meant for
//! itself, for the same end-user, with a scope no wider. The new token lives in the grant of
//! the one exchanged, so revoking that grant (a logout, a replayed refresh token) ends it.
//!
//! Delegation (`actor_token`, the `act` claim) is refused; only access tokens of this
//! provider are accepted as subject tokens, and only access tokens are issued.

use std::sync::Arc;

use oidc_flow::extension::{ACCESS_TOKEN_TYPE, GrantDecision};
use oidc_flow::{Client, ErrorCode, OAuthError, Scope};
use oidc_flow_store::Store;
use oidc_flow_store::grants::TokenGrant;
use serde::Deserialize;
use time::OffsetDateTime;

/// The grant type of RFC 8693 §2.1.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// Token exchange over the provider's store.
pub struct TokenExchange<S> {
    store: Arc<S>,
}

impl<S> TokenExchange<S> {
    /// The grant over `store`'s access tokens.
    pub fn new(store: Arc<S>) -> Self {
        Self { store }
    }
}

/// The form of RFC 8693 §2.1 (`resource` is read by the core, RFC 8707).
#[derive(Deserialize)]
pub struct ExchangeForm {
    subject_token: String,
    subject_token_type: String,
    scope: Option<String>,
    requested_token_type: Option<String>,
    actor_token: Option<String>,
    audience: Option<String>,
}

impl<S: Store> TokenGrant for TokenExchange<S> {
    const GRANT_TYPE: &'static str = TOKEN_EXCHANGE;
    type Form = ExchangeForm;

    async fn decide(
        &self,
        _client: &Client,
        form: ExchangeForm,
        provider: &oidc_flow::Provider,
        now: OffsetDateTime,
    ) -> Result<GrantDecision, OAuthError> {
        if form.actor_token.is_some() {
            return Err(OAuthError::invalid_request(
                "delegation (actor_token) is not supported here, only impersonation",
            ));
        }
        if form.audience.is_some() {
            // §2.1: an audience this server does not know is invalid_target; resources are
            // named with `resource` (RFC 8707), which the core resolves.
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "name the resource with the resource parameter",
            ));
        }
        if form.subject_token_type != ACCESS_TOKEN_TYPE {
            return Err(OAuthError::invalid_request(format!(
                "subject_token_type must be {ACCESS_TOKEN_TYPE}"
            )));
        }
        if form
            .requested_token_type
            .as_deref()
            .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
        {
            return Err(OAuthError::invalid_request(format!(
                "only {ACCESS_TOKEN_TYPE} is issued"
            )));
        }
        // An opaque token from the store, or one of the provider's own JWT access tokens
        // (not stored), either only while its grant is not revoked; expiry is ours to check.
        let subject =
            oidc_flow_store::driver::access_token(&*self.store, provider, &form.subject_token)
                .await
                .map_err(|e| OAuthError::new(ErrorCode::ServerError, e.to_string()))?
                .filter(|t| t.expires_at > now)
                .ok_or_else(|| {
                    OAuthError::new(ErrorCode::InvalidGrant, "the subject_token is not active")
                })?;
        let scope = match form.scope {
            Some(s) => Scope::parse(&s)
                .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?,
            // Without a scope, the subject token's, less what only an authenticated
            // end-user may carry (no one authenticated here).
            None => Scope::from_tokens(
                subject
                    .scope
                    .iter()
                    .filter(|t| !matches!(*t, "openid" | "offline_access")),
            )
            .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?,
        };
        if let Some(wider) = scope.not_in(&subject.scope).next() {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("the subject_token was not granted the scope `{wider}`"),
            ));
        }
        Ok(GrantDecision::for_subject(subject.subject, scope)
            .within_grant(subject.grant)
            .as_token_exchange())
    }
}
