//! The application's own grants at the token endpoint, typed (Authlib's
//! `register_grant(Grant)`): implement [`TokenGrant`] for a handler, declare its grant type
//! on the provider, and hand it to [`crate::endpoints::Endpoints::with_grant`].
//!
//! ```ignore
//! struct Password { users: Arc<SqliteStore> }
//! impl TokenGrant for Password {
//!     const GRANT_TYPE: &'static str = "password";
//!     type Form = PasswordForm; // #[derive(Deserialize)] { username, password, scope }
//!     async fn decide(&self, client: &Client, form: PasswordForm, provider: &Provider,
//!         now: OffsetDateTime)
//!         -> Result<GrantDecision, OAuthError> { ... }
//! }
//! let provider = Provider::builder(issuer, keys).extension_grant(Password::GRANT_TYPE).build()?;
//! let endpoints = Endpoints::new(provider.into(), store, pages).with_grant(Password { .. })?;
//! ```
//!
//! A handler sees the authenticated client (registered for the grant) and its typed form,
//! and answers with a [`GrantDecision`]: data, not tokens. The core checks it against the
//! client's registration and issues as for every grant.

use std::future::Future;
use std::sync::Arc;

use oidc_flow::extension::{ExtensionRequest, GrantDecision};
use oidc_flow::{Client, ErrorCode, OAuthError, Provider};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::backend::BoxFuture;

/// An application's grant type at the token endpoint, with the form it reads.
pub trait TokenGrant: Send + Sync + 'static {
    /// The `grant_type` it answers: `password` or an absolute URI, declared on the provider
    /// with [`oidc_flow::ProviderBuilder::extension_grant`].
    const GRANT_TYPE: &'static str;
    /// The form's parameters the grant reads (client authentication, `grant_type` and
    /// `resource` are the core's), through serde_urlencoded after the core's strict parse.
    /// A form that does not fit is `invalid_request` before the handler runs.
    type Form: DeserializeOwned + Send;

    /// Decides what to issue for `client` at `now`, or the OAuth error to answer
    /// (`invalid_grant` for credentials that do not hold, say). `provider` is the one
    /// serving this request (its keys recognise its own JWT access tokens:
    /// [`crate::driver::access_token`]).
    fn decide(
        &self,
        client: &Client,
        form: Self::Form,
        provider: &Provider,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<GrantDecision, OAuthError>> + Send;
}

/// A [`TokenGrant`] with its form type erased, so grants of different types sit in one list.
trait ErasedGrant: Send + Sync {
    fn grant_type(&self) -> &'static str;
    fn decide<'a>(
        &'a self,
        request: &'a ExtensionRequest,
        provider: &'a Provider,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<GrantDecision, OAuthError>>;
}

impl<G: TokenGrant> ErasedGrant for G {
    fn grant_type(&self) -> &'static str {
        G::GRANT_TYPE
    }

    fn decide<'a>(
        &'a self,
        request: &'a ExtensionRequest,
        provider: &'a Provider,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, Result<GrantDecision, OAuthError>> {
        Box::pin(async move {
            let form = request.form::<G::Form>()?;
            TokenGrant::decide(self, request.client(), form, provider, now).await
        })
    }
}

/// The extension grants an [`crate::endpoints::Endpoints`] answers (none by default).
#[derive(Clone, Default)]
pub struct Grants(Vec<Arc<dyn ErasedGrant>>);

impl std::fmt::Debug for Grants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.grant_types()).finish()
    }
}

impl Grants {
    /// Adds `grant`, replacing one registered before for the same grant type.
    #[must_use]
    pub fn with<G: TokenGrant>(mut self, grant: G) -> Self {
        self.0.retain(|g| g.grant_type() != G::GRANT_TYPE);
        self.0.push(Arc::new(grant));
        self
    }

    /// The first grant type registered here that `provider` does not declare, if any.
    pub fn undeclared(&self, provider: &Provider) -> Option<&'static str> {
        self.grant_types()
            .find(|g| !provider.accepts_extension_grant(g))
    }

    /// These grants less those `provider` does not declare.
    #[must_use]
    pub fn declared_by(mut self, provider: &Provider) -> Self {
        self.0
            .retain(|g| provider.accepts_extension_grant(g.grant_type()));
        self
    }

    /// The grant types registered.
    pub fn grant_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.0.iter().map(|g| g.grant_type())
    }

    /// Runs the handler of the request's grant type: `unsupported_grant_type` if the
    /// provider declared a grant nobody registered a handler for.
    pub async fn decide(
        &self,
        request: &ExtensionRequest,
        provider: &Provider,
        now: OffsetDateTime,
    ) -> Result<GrantDecision, OAuthError> {
        match self
            .0
            .iter()
            .find(|g| g.grant_type() == request.grant_type())
        {
            Some(grant) => grant.decide(request, provider, now).await,
            None => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "no handler answers this grant type here",
            )),
        }
    }
}
