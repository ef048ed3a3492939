//! The application's own grants at the token endpoint (RFC 6749 §4.5), in the spirit of
//! Authlib's `register_grant`.
//!
//! ```text
//! ClientAuthenticated::grant() ─► Grant::Extension(ExtensionRequest)    declared, registered
//!   └─ decide(the application's Result<GrantDecision, OAuthError>) ─► ExtensionGranted
//!        └─ issue / issue_with_claims ─► Completed
//! ```
//!
//! The provider declares the grant type
//! ([`crate::provider::ProviderBuilder::extension_grant`]) and a client registers it; the
//! application's handler reads the form ([`ExtensionRequest::form`]) and answers with a
//! [`GrantDecision`]: whom the tokens speak for and which scope. A decision is only data:
//! the handler cannot mint a token. The core checks it against the client's registration
//! and issues through the same step as every other grant (the client's token format,
//! lifetimes, resource, ID token and refresh token rules).

use rand_core::CryptoRng;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::claims::UserInfo;
use crate::client::{Client, GrantType};
use crate::effect::{Authentication, Completed};
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::provider::Provider;
use crate::response::JsonResponse;
use crate::scope::Scope;
use crate::secret::GrantId;
use crate::token::{self, TokenError};

/// RFC 8693 §3's identifier of an access token, the type a token exchange issues.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// Longest subject a decision may name, as a `sub` claim is kept elsewhere.
const MAX_SUBJECT: usize = 255;

/// A token request of an extension grant the provider declared and the client registered,
/// waiting for the application's decision.
#[must_use = "ask the application's handler, then call decide"]
#[derive(Debug, PartialEq, Eq)]
pub struct ExtensionRequest {
    client: Client,
    grant_type: String,
    params: Params,
    audience: Option<String>,
}

impl ExtensionRequest {
    pub(crate) fn new(
        client: Client,
        grant_type: String,
        params: Params,
        audience: Option<String>,
    ) -> Self {
        Self {
            client,
            grant_type,
            params,
            audience,
        }
    }

    /// The grant type URI (or `password`): which handler answers.
    pub fn grant_type(&self) -> &str {
        &self.grant_type
    }

    /// The authenticated client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The form's other parameters (client authentication, `grant_type` and `resource`
    /// already read), checked strictly: UTF-8, no repeats, empty values absent.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The form read into the handler's type with serde_urlencoded, after the strict parse
    /// ([`Params::deserialize`]); a form that does not fit is `invalid_request`.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T, OAuthError> {
        self.params
            .deserialize()
            .map_err(|e| OAuthError::invalid_request(e.to_string()))
    }

    /// Checks the application's answer: an error is sent as it is; a decision must stay
    /// within the client's registered scope, and a token without an end-user never carries
    /// `openid` or `offline_access`.
    pub fn decide(
        self,
        answer: Result<GrantDecision, OAuthError>,
    ) -> Result<ExtensionGranted, TokenError> {
        let decision = answer.map_err(|e| TokenError::new(e.code, e.description))?;
        let invalid_scope = |why: String| TokenError::new(ErrorCode::InvalidScope, why);
        if let Some(bad) = decision.scope.not_in(&self.client.scope).next() {
            return Err(invalid_scope(format!(
                "the scope `{bad}` is not registered for this client"
            )));
        }
        let subject = match &decision.subject {
            DecidedSubject::EndUser(a) => a.subject.as_str(),
            DecidedSubject::Delegated(s) => s.as_str(),
            DecidedSubject::Client => self.client.client_id.as_str(),
        };
        if subject.is_empty() || subject.len() > MAX_SUBJECT {
            return Err(TokenError::new(
                ErrorCode::ServerError,
                "the grant's handler decided on an empty or overlong subject",
            ));
        }
        if !matches!(decision.subject, DecidedSubject::EndUser(_))
            && let Some(bad) = decision
                .scope
                .iter()
                .find(|t| token::END_USER_SCOPES.contains(t))
        {
            return Err(invalid_scope(format!(
                "the scope `{bad}` needs an authenticated end-user, which this grant has not"
            )));
        }
        Ok(ExtensionGranted {
            client: self.client,
            decision,
            audience: self.audience,
        })
    }
}

/// Whom an extension grant's tokens speak for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DecidedSubject {
    /// An end-user this request authenticated (the password grant): ID token for `openid`,
    /// refresh token when asked.
    EndUser(Authentication),
    /// A subject vouched for another way (the subject token of a token exchange): an access
    /// token only.
    Delegated(String),
    /// The client itself, as with `client_credentials`: an access token only.
    Client,
}

/// The application's answer to an [`ExtensionRequest`]: what to issue, never a token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "hand the decision to ExtensionRequest::decide"]
pub struct GrantDecision {
    subject: DecidedSubject,
    scope: Scope,
    refresh_token: bool,
    grant: Option<GrantId>,
    issued_token_type: bool,
}

impl GrantDecision {
    fn with(subject: DecidedSubject, scope: Scope) -> Self {
        Self {
            subject,
            scope,
            refresh_token: false,
            grant: None,
            issued_token_type: false,
        }
    }

    /// Tokens for an end-user this request authenticated: an ID token when the scope holds
    /// `openid`.
    pub fn for_end_user(authentication: Authentication, scope: Scope) -> Self {
        Self::with(DecidedSubject::EndUser(authentication), scope)
    }

    /// An access token for `subject`, vouched for without authenticating anyone here (the
    /// subject token of RFC 8693); no ID token, no refresh token.
    pub fn for_subject(subject: impl Into<String>, scope: Scope) -> Self {
        Self::with(DecidedSubject::Delegated(subject.into()), scope)
    }

    /// An access token for the client itself (RFC 9068 §2.2: `sub` is the client).
    pub fn for_client(scope: Scope) -> Self {
        Self::with(DecidedSubject::Client, scope)
    }

    /// Also issues a refresh token, when the subject is an end-user and the client
    /// registered the `refresh_token` grant.
    pub fn with_refresh_token(mut self) -> Self {
        self.refresh_token = true;
        self
    }

    /// Issues within an existing grant (the one of an exchanged token) instead of a new
    /// one, so revoking that grant revokes these tokens too.
    pub fn within_grant(mut self, grant: GrantId) -> Self {
        self.grant = Some(grant);
        self
    }

    /// Answers as a token exchange does (RFC 8693 §2.2.1): `issued_token_type` names an
    /// access token.
    pub fn as_token_exchange(mut self) -> Self {
        self.issued_token_type = true;
        self
    }
}

/// An extension grant whose decision the core accepted: the only state that issues for it.
#[must_use = "issue the tokens next"]
#[derive(Debug)]
pub struct ExtensionGranted {
    client: Client,
    decision: GrantDecision,
    audience: Option<String>,
}

impl ExtensionGranted {
    /// The subject the tokens will carry.
    pub fn subject(&self) -> &str {
        match &self.decision.subject {
            DecidedSubject::EndUser(a) => &a.subject,
            DecidedSubject::Delegated(s) => s,
            DecidedSubject::Client => &self.client.client_id,
        }
    }

    /// The scope the tokens will carry.
    pub fn scope(&self) -> &Scope {
        &self.decision.scope
    }

    /// Whether the ID token carries the scope's claims
    /// ([`crate::provider::ProviderBuilder::claims_in_id_token`]): then issue with
    /// [`ExtensionGranted::issue_with_claims`].
    pub fn needs_claims(&self, provider: &Provider) -> bool {
        matches!(self.decision.subject, DecidedSubject::EndUser(_))
            && token::wants_claims(provider, &self.decision.scope)
    }

    /// Issues what the decision allows, in the client's format and lifetimes.
    pub fn issue(
        self,
        provider: &Provider,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<Completed<JsonResponse>, TokenError> {
        self.issue_inner(provider, None, rng, now)
    }

    /// As [`ExtensionGranted::issue`], with the end-user's claims released by the scope in
    /// the ID token (when [`ExtensionGranted::needs_claims`]).
    pub fn issue_with_claims(
        self,
        provider: &Provider,
        claims: &UserInfo,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<Completed<JsonResponse>, TokenError> {
        let released =
            token::released_claims(provider, self.subject(), &self.decision.scope, claims);
        self.issue_inner(provider, released.as_ref(), rng, now)
    }

    fn issue_inner(
        self,
        provider: &Provider,
        claims: Option<&serde_json::Map<String, serde_json::Value>>,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<Completed<JsonResponse>, TokenError> {
        let d = &self.decision;
        let grant = d
            .grant
            .clone()
            .unwrap_or_else(|| GrantId::generate(rng, now));
        let issued_token_type = d.issued_token_type.then_some(ACCESS_TOKEN_TYPE);
        match &d.subject {
            DecidedSubject::EndUser(authentication) => token::issue_tokens(
                provider,
                &self.client,
                token::Issue {
                    claims,
                    audience: self.audience.as_deref(),
                    grant: &grant,
                    scope: &d.scope,
                    authentication,
                    include_auth_time: false,
                    nonce: None,
                    refresh: d.refresh_token && self.client.allows_grant(GrantType::RefreshToken),
                    issued_token_type,
                },
                rng,
                now,
            ),
            DecidedSubject::Delegated(_) | DecidedSubject::Client => token::issue_access_only(
                provider,
                &self.client,
                token::AccessOnly {
                    grant: &grant,
                    subject: self.subject(),
                    scope: &d.scope,
                    audience: self.audience.as_deref(),
                    issued_token_type,
                },
                rng,
                now,
            ),
        }
    }
}
