//! The provider's configuration: issuer, keys, lifetimes and policies, validated once at start-up.

use time::Duration;

use crate::client::{Client, GrantType, ResponseType};
use crate::jws::Signer;
use crate::keys::{Algorithm, KeySet};
use crate::scope::Scope;

/// Longest a code may live: OAuth 2.0 Security BCP and RFC 6749 §4.1.2 ("10 minutes maximum").
pub const MAX_CODE_LIFETIME: Duration = Duration::minutes(10);

/// Everything the flows need to know about this provider. Built with [`Provider::builder`].
///
/// It holds no type parameters and no per-request state: build it once and share it.
#[derive(Debug)]
pub struct Provider {
    pub(crate) issuer: String,
    pub(crate) keys: KeySet,
    pub(crate) default_alg: Algorithm,
    pub(crate) id_token_lifetime: Duration,
    pub(crate) access_token_lifetime: Duration,
    pub(crate) refresh_token_lifetime: Duration,
    pub(crate) code_lifetime: Duration,
    pub(crate) require_nonce: bool,
    pub(crate) check_nonce_replay: bool,
    pub(crate) require_pkce_for_public_clients: bool,
    pub(crate) always_include_auth_time: bool,
    /// Whether ID tokens of the token endpoint carry the claims the scope releases.
    pub(crate) claims_in_id_token: bool,
    pub(crate) scopes_supported: Scope,
    pub(crate) custom_scope_claims: Vec<(String, Vec<String>)>,
    /// Extension grant types the token endpoint accepts, answered by the application
    /// ([`crate::flow::TokenNeed::ExtensionGrant`]).
    pub(crate) extension_grants: Vec<String>,
    pub(crate) endpoints: Endpoints,
}

/// The URLs of the provider's endpoints, published in the discovery document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// The authorization endpoint.
    pub authorization: String,
    /// The token endpoint.
    pub token: String,
    /// The UserInfo endpoint.
    pub userinfo: String,
    /// The JWKS document.
    pub jwks: String,
    /// The end-session endpoint (RP-Initiated Logout).
    pub end_session: String,
    /// The revocation endpoint (RFC 7009).
    pub revocation: String,
    /// The introspection endpoint (RFC 7662).
    pub introspection: String,
}

impl Endpoints {
    /// The conventional paths under the issuer: `/authorize`, `/token`, `/userinfo`, `/jwks`,
    /// `/logout`, `/revoke`, `/introspect`.
    pub fn under(issuer: &str) -> Self {
        let base = issuer.trim_end_matches('/');
        Self {
            authorization: format!("{base}/authorize"),
            token: format!("{base}/token"),
            userinfo: format!("{base}/userinfo"),
            jwks: format!("{base}/jwks"),
            end_session: format!("{base}/logout"),
            revocation: format!("{base}/revoke"),
            introspection: format!("{base}/introspect"),
        }
    }
}

/// Why a provider configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer is not an https URL (or http on a loopback host) without query and fragment.
    #[error(
        "issuer `{0}` must be an https URL (http only on localhost) with no query or fragment (OIDC Discovery section 3)"
    )]
    BadIssuer(String),
    /// No key signs the default algorithm.
    #[error("no signing key for the default ID token algorithm {0}")]
    NoKeyForDefault(Algorithm),
    /// The default algorithm is symmetric: there is no client secret to key it with.
    #[error("the default ID token algorithm must be asymmetric; HS* is only chosen per client")]
    SymmetricDefault,
    /// A lifetime is zero, negative, or (for codes) longer than ten minutes.
    #[error("{0}")]
    BadLifetime(&'static str),
    /// The supported scopes lack `openid`.
    #[error("scopes_supported must contain openid")]
    NoOpenidScope,
    /// An extension grant type is neither `password` nor an absolute URI, or names a grant
    /// the core runs itself.
    #[error(
        "extension grant `{0}` must be `password` or an absolute URI, and not a grant the core runs"
    )]
    BadExtensionGrant(String),
}

/// Builds a [`Provider`]; every setting has a sound default except the issuer and keys.
#[derive(Debug)]
#[must_use]
pub struct ProviderBuilder {
    inner: Provider,
}

impl Provider {
    /// Starts a configuration for `issuer` signing with `keys`.
    ///
    /// Defaults: RS256 ID tokens living 1 hour, access tokens 1 hour, refresh tokens 30 days,
    /// codes 60 seconds, nonce optional for the code flow, no replay check, PKCE required
    /// for public clients, scopes `openid profile email address phone offline_access`.
    pub fn builder(issuer: impl Into<String>, keys: KeySet) -> ProviderBuilder {
        let issuer = issuer.into();
        let endpoints = Endpoints::under(&issuer);
        ProviderBuilder {
            inner: Provider {
                issuer,
                keys,
                default_alg: Algorithm::RS256,
                id_token_lifetime: Duration::hours(1),
                access_token_lifetime: Duration::hours(1),
                refresh_token_lifetime: Duration::days(30),
                code_lifetime: Duration::seconds(60),
                require_nonce: false,
                check_nonce_replay: false,
                require_pkce_for_public_clients: true,
                always_include_auth_time: false,
                claims_in_id_token: false,
                scopes_supported: Scope::from_tokens([
                    "openid",
                    "profile",
                    "email",
                    "address",
                    "phone",
                    "offline_access",
                ])
                .unwrap_or_default(),
                custom_scope_claims: Vec::new(),
                extension_grants: Vec::new(),
                endpoints,
            },
        }
    }

    /// Whether the token endpoint accepts the extension grant `grant_type`
    /// ([`ProviderBuilder::extension_grant`]).
    pub fn accepts_extension_grant(&self, grant_type: &str) -> bool {
        self.extension_grants.iter().any(|g| g == grant_type)
    }

    /// The issuer identifier (`iss`).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The signing keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The endpoint URLs.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The algorithm used when a client asks for none.
    pub fn default_alg(&self) -> Algorithm {
        self.default_alg
    }

    /// How long a code lives.
    pub fn code_lifetime(&self) -> Duration {
        self.code_lifetime
    }

    /// Whether nonces are checked for replay (the caller answers the `ClaimNonce` need).
    pub fn checks_nonce_replay(&self) -> bool {
        self.check_nonce_replay
    }

    /// The response types this provider serves.
    pub fn response_types_supported(&self) -> &'static [ResponseType] {
        &ResponseType::ALL
    }

    /// The JWKS document (RFC 7517) of the public keys.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.jwks()
    }

    /// The algorithm for `client`'s ID tokens.
    pub fn id_token_alg(&self, client: &Client) -> Algorithm {
        client
            .id_token_signed_response_alg
            .unwrap_or(self.default_alg)
    }

    /// The signer for `client`'s ID tokens: the provider key for its alg, or its secret for HS*.
    pub(crate) fn signer_for<'a>(&'a self, client: &'a Client) -> Option<Signer<'a>> {
        let alg = self.id_token_alg(client);
        if alg.is_symmetric() {
            client.client_secret.as_deref().map(|s| Signer::Hmac {
                alg,
                secret: s.as_bytes(),
            })
        } else {
            self.keys.for_algorithm(alg).map(Signer::Key)
        }
    }

    /// How long `client`'s access tokens live: its own lifetime, else the provider's.
    pub fn access_token_lifetime_for(&self, client: &Client) -> Duration {
        client
            .access_token_lifetime
            .and_then(|s| i64::try_from(s).ok())
            .map_or(self.access_token_lifetime, Duration::seconds)
    }

    /// How long `client`'s ID tokens live: its own lifetime, else the provider's.
    pub fn id_token_lifetime_for(&self, client: &Client) -> Duration {
        client
            .id_token_lifetime
            .and_then(|s| i64::try_from(s).ok())
            .map_or(self.id_token_lifetime, Duration::seconds)
    }

    /// The provider's signer for `alg` (never HS*: those are keyed per client).
    pub(crate) fn signer_for_alg(&self, alg: Algorithm) -> Option<Signer<'_>> {
        self.keys.for_algorithm(alg).map(Signer::Key)
    }

    /// The extra claims released by a custom scope.
    pub(crate) fn custom_claims_for<'a>(
        &'a self,
        scope: &'a Scope,
    ) -> impl Iterator<Item = &'a str> {
        self.custom_scope_claims
            .iter()
            .filter(|(s, _)| scope.contains(s))
            .flat_map(|(_, claims)| claims.iter().map(String::as_str))
    }
}

impl ProviderBuilder {
    /// The algorithm of ID tokens for clients that ask for none (must be asymmetric).
    pub fn default_alg(mut self, alg: Algorithm) -> Self {
        self.inner.default_alg = alg;
        self
    }

    /// How long ID tokens are valid (`exp - iat`).
    pub fn id_token_lifetime(mut self, d: Duration) -> Self {
        self.inner.id_token_lifetime = d;
        self
    }

    /// How long access tokens are valid.
    pub fn access_token_lifetime(mut self, d: Duration) -> Self {
        self.inner.access_token_lifetime = d;
        self
    }

    /// How long refresh tokens are valid.
    pub fn refresh_token_lifetime(mut self, d: Duration) -> Self {
        self.inner.refresh_token_lifetime = d;
        self
    }

    /// How long codes are valid (at most ten minutes).
    pub fn code_lifetime(mut self, d: Duration) -> Self {
        self.inner.code_lifetime = d;
        self
    }

    /// Require a nonce in code-flow OpenID requests too (Authlib's `require_nonce`).
    pub fn require_nonce(mut self, on: bool) -> Self {
        self.inner.require_nonce = on;
        self
    }

    /// Reject a nonce this client already used (Authlib's `exists_nonce`); the caller answers the lookup.
    pub fn check_nonce_replay(mut self, on: bool) -> Self {
        self.inner.check_nonce_replay = on;
        self
    }

    /// Require PKCE from public clients in flows that return a code.
    pub fn require_pkce_for_public_clients(mut self, on: bool) -> Self {
        self.inner.require_pkce_for_public_clients = on;
        self
    }

    /// Put `auth_time` in every ID token, not only when `max_age` or the client asks.
    pub fn always_include_auth_time(mut self, on: bool) -> Self {
        self.inner.always_include_auth_time = on;
        self
    }

    /// Whether the ID tokens of the token endpoint (code flow and refresh) carry the claims
    /// the granted scope releases, as Authlib's code flow does; off by default, when the
    /// client reads them at UserInfo (OIDC Core §5.4). With it on, the token flow asks for
    /// the end-user's claims ([`crate::flow::TokenNeed::Claims`]).
    pub fn claims_in_id_token(mut self, on: bool) -> Self {
        self.inner.claims_in_id_token = on;
        self
    }

    /// The scopes clients may request (must contain `openid`).
    pub fn scopes_supported(mut self, scope: Scope) -> Self {
        self.inner.scopes_supported = scope;
        self
    }

    /// A custom scope that releases custom claims at UserInfo; the scope is added to the supported ones.
    pub fn custom_scope(mut self, scope: &str, claims: &[&str]) -> Self {
        if let Ok(extra) = Scope::parse(scope) {
            for token in extra.iter() {
                if !self.inner.scopes_supported.contains(token) {
                    let joined = format!("{} {token}", self.inner.scopes_supported);
                    if let Ok(s) = Scope::parse(&joined) {
                        self.inner.scopes_supported = s;
                    }
                }
            }
        }
        self.inner.custom_scope_claims.push((
            scope.to_owned(),
            claims.iter().map(|c| (*c).to_owned()).collect(),
        ));
        self
    }

    /// Declares an extension grant (RFC 6749 §4.5, Authlib's `register_grant`): the token
    /// endpoint accepts `grant_type` from clients that registered it and asks the application
    /// what to issue ([`crate::flow::TokenNeed::ExtensionGrant`]); discovery lists it.
    /// `grant_type` is `password` or an absolute URI.
    pub fn extension_grant(mut self, grant_type: &str) -> Self {
        if !self.inner.extension_grants.iter().any(|g| g == grant_type) {
            self.inner.extension_grants.push(grant_type.to_owned());
        }
        self
    }

    /// Overrides the endpoint URLs published in discovery.
    pub fn endpoints(mut self, endpoints: Endpoints) -> Self {
        self.inner.endpoints = endpoints;
        self
    }

    /// Validates the configuration.
    pub fn build(self) -> Result<Provider, ConfigError> {
        let p = self.inner;
        check_issuer(&p.issuer)?;
        if p.default_alg.is_symmetric() {
            return Err(ConfigError::SymmetricDefault);
        }
        if p.keys.for_algorithm(p.default_alg).is_none() {
            return Err(ConfigError::NoKeyForDefault(p.default_alg));
        }
        let positive = |d: Duration| d > Duration::ZERO;
        if !positive(p.id_token_lifetime)
            || !positive(p.access_token_lifetime)
            || !positive(p.refresh_token_lifetime)
            || !positive(p.code_lifetime)
        {
            return Err(ConfigError::BadLifetime("every lifetime must be positive"));
        }
        // JWT access tokens are not stored: a revoked grant is remembered for as long as
        // one of its access tokens can live (`effect::REVOKED_GRANT_MEMORY`).
        if p.access_token_lifetime > Duration::seconds(crate::effect::MAX_ACCESS_TOKEN_SECONDS) {
            return Err(ConfigError::BadLifetime(
                "access tokens may live at most 24 hours",
            ));
        }
        if p.code_lifetime > MAX_CODE_LIFETIME {
            return Err(ConfigError::BadLifetime(
                "codes may live at most 10 minutes (RFC 6749 section 4.1.2)",
            ));
        }
        if !p.scopes_supported.is_openid() {
            return Err(ConfigError::NoOpenidScope);
        }
        if let Some(bad) = p
            .extension_grants
            .iter()
            .find(|g| !GrantType::is_valid_extension(g))
        {
            return Err(ConfigError::BadExtensionGrant(bad.clone()));
        }
        Ok(p)
    }
}

fn check_issuer(issuer: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::BadIssuer(issuer.to_owned());
    let url = url::Url::parse(issuer).map_err(|_| bad())?;
    if url.query().is_some() || url.fragment().is_some() || issuer.ends_with('/') {
        return Err(bad());
    }
    let loopback = matches!(url.host(), Some(url::Host::Domain("localhost")))
        || matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
        || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(bad()),
    }
}
