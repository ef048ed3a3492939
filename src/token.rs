//! The token endpoint as a typestate machine (RFC 6749 §3.2, §4.1.3, §6; OIDC Core §3.1.3).
//!
//! ```text
//! Received::parse(form, Authorization header)           syntax; client_id known
//!   └─ authenticate(Option<Client>, provider, now) ─► Authenticated
//!        ├─ Client(ClientAuthenticated)                          secret checked in constant time
//!        └─ ClaimJti(AssertionVerified) ── claimed(bool) ─► ClientAuthenticated   RFC 7523 JWT
//!        └─ grant() ─► Grant
//!             ├─ AuthorizationCode(CodeExchange) ── redeem(Taken<CodeRecord>) ─► CodeRedeemed ── issue ─► Completed
//!             ├─ RefreshToken(RefreshExchange) ── redeem(Taken<RefreshTokenRecord>) ─► RefreshRedeemed ── issue ─► Completed
//!             └─ ClientCredentials(ClientCredentials) ── issue ─► Completed   no end-user, no store need
//! ```
//!
//! The store takes a code or refresh token atomically and reports what it found ([`Taken`]);
//! the core decides what a reuse means: `invalid_grant`, and the whole grant revoked.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand_core::CryptoRng;
use serde::Serialize;
use time::OffsetDateTime;

use crate::assertion;
use crate::claims::UserInfo;
use crate::client::{AccessTokenFormat, AuthMethod, Client, GrantType};
use crate::effect::{
    AccessTokenRecord, Authentication, CodeRecord, Completed, Effect, NonceRecord,
    RefreshTokenRecord, Taken,
};
use crate::error::{ErrorCode, OAuthError};
use crate::extension::ExtensionRequest;
use crate::idtoken::{self, IdTokenInput};
use crate::jws::{self, Signer};
use crate::params::Params;
use crate::pkce;
use crate::provider::Provider;
use crate::response::JsonResponse;
use crate::scope::Scope;
use crate::secret::{GrantId, MintedSecret, SecretHash};

/// Largest token request body accepted.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Largest `Authorization` header accepted.
pub const MAX_AUTHORIZATION_BYTES: usize = 4096;
const MAX_SECRET: usize = 1024;

/// A refusal of the token endpoint: the error, its JSON response, and effects to apply
/// before sending it (a replayed code or refresh token revokes its grant).
#[derive(Debug)]
#[must_use = "apply the effects, then send the response"]
pub struct TokenError {
    /// The error.
    pub error: OAuthError,
    /// The 400/401 JSON response, with `WWW-Authenticate` for `invalid_client`.
    pub response: JsonResponse,
    /// Effects to apply first.
    pub effects: Vec<Effect>,
}

impl TokenError {
    pub(crate) fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        let error = OAuthError::new(code, description);
        let mut response = JsonResponse::oauth_error(400, &error);
        if code == ErrorCode::InvalidClient {
            // RFC 6749 §5.2: 401 with the scheme the client should use.
            response.status = 401;
            response
                .headers
                .push(("www-authenticate", "Basic realm=\"token\"".to_owned()));
        }
        Self {
            error,
            response,
            effects: Vec::new(),
        }
    }

    fn revoking(mut self, grant: GrantId) -> Self {
        self.effects.push(Effect::RevokeGrant(grant));
        self
    }

    /// The answer when the store refused to keep the tokens because their grant was revoked
    /// while this request ran: another request replayed the same code or refresh token
    /// concurrently, so the grant is treated as compromised (RFC 6749 section 4.1.2, 10.5)
    /// and this one lost the race: `invalid_grant`, never a server error.
    pub fn grant_revoked_meanwhile() -> Self {
        Self::new(
            ErrorCode::InvalidGrant,
            "the grant was revoked while this request ran: the code or refresh token was used twice",
        )
    }

    /// The refusal as a finished step.
    pub fn into_completed(self) -> Completed<JsonResponse> {
        Completed {
            response: self.response,
            effects: self.effects,
        }
    }
}

fn invalid_request(description: impl Into<String>) -> TokenError {
    TokenError::new(ErrorCode::InvalidRequest, description)
}

fn invalid_grant(description: impl Into<String>) -> TokenError {
    TokenError::new(ErrorCode::InvalidGrant, description)
}

fn invalid_client(description: impl Into<String>) -> TokenError {
    TokenError::new(ErrorCode::InvalidClient, description)
}

/// How the client presented itself.
#[derive(Clone, PartialEq, Eq)]
enum Credentials {
    Basic {
        id: String,
        secret: String,
    },
    Post {
        id: String,
        secret: String,
    },
    None {
        id: String,
    },
    /// A JWT client assertion (RFC 7523 §2.2), naming the client in its `sub`.
    Assertion {
        id: String,
        assertion: String,
    },
}

impl Credentials {
    fn id(&self) -> &str {
        match self {
            Self::Basic { id, .. }
            | Self::Post { id, .. }
            | Self::None { id }
            | Self::Assertion { id, .. } => id,
        }
    }

    /// Whether this is how a client registered with `method` authenticates.
    fn fits(&self, method: AuthMethod) -> bool {
        match self {
            Self::Basic { .. } => method == AuthMethod::ClientSecretBasic,
            Self::Post { .. } => method == AuthMethod::ClientSecretPost,
            Self::None { .. } => method == AuthMethod::None,
            Self::Assertion { .. } => {
                matches!(
                    method,
                    AuthMethod::ClientSecretJwt | AuthMethod::PrivateKeyJwt
                )
            }
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Basic { .. } => "client_secret_basic",
            Self::Post { .. } => "client_secret_post",
            Self::None { .. } => "none",
            Self::Assertion { .. } => "a client assertion",
        }
    }
}

/// A parsed token request whose client is not yet authenticated.
#[must_use = "authenticate the client next"]
pub struct Received {
    credentials: Credentials,
    params: Params,
}

impl std::fmt::Debug for Received {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("token::Received")
            .field("client_id", &self.credentials.id())
            .field("method", &self.credentials.name())
            .finish_non_exhaustive()
    }
}

/// Decodes one form-urlencoded component of a Basic credential (RFC 6749 §2.3.1).
fn form_decode(s: &str) -> Option<String> {
    let plus_as_space = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// Parses `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`.
pub fn parse_basic(header: &[u8]) -> Result<(String, String), OAuthError> {
    let bad = |why: &str| OAuthError::new(ErrorCode::InvalidClient, why.to_owned());
    if header.len() > MAX_AUTHORIZATION_BYTES {
        return Err(bad("the Authorization header is too large"));
    }
    let text =
        std::str::from_utf8(header).map_err(|_| bad("the Authorization header is not text"))?;
    let (scheme, rest) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| bad("the Authorization header is not Basic credentials"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad("only the Basic scheme authenticates clients here"));
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .map_err(|_| bad("the Basic credentials are not base64"))?;
    let decoded =
        String::from_utf8(decoded).map_err(|_| bad("the Basic credentials are not UTF-8"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| bad("the Basic credentials have no `:`"))?;
    let id = form_decode(id).ok_or_else(|| bad("the client id is not form-urlencoded UTF-8"))?;
    let secret =
        form_decode(secret).ok_or_else(|| bad("the client secret is not form-urlencoded UTF-8"))?;
    if id.is_empty() {
        return Err(bad("the Basic credentials have an empty client id"));
    }
    if secret.len() > MAX_SECRET {
        return Err(bad("the client secret is too long"));
    }
    Ok((id, secret))
}

impl Received {
    /// Parses a token request: the form body and the `Authorization` header, if any.
    pub fn parse(form: &[u8], authorization: Option<&[u8]>) -> Result<Self, TokenError> {
        let mut params =
            Params::parse(form, MAX_REQUEST_BYTES).map_err(|e| invalid_request(e.to_string()))?;
        let form_id = params
            .take_limited("client_id", 255)
            .map_err(|e| invalid_request(e.to_string()))?;
        let form_secret = params
            .take_limited("client_secret", MAX_SECRET)
            .map_err(|e| invalid_request(e.to_string()))?;
        let assertion_type = params
            .take_limited("client_assertion_type", 128)
            .map_err(|e| invalid_request(e.to_string()))?;
        let assertion = params
            .take_limited("client_assertion", assertion::MAX_ASSERTION)
            .map_err(|e| invalid_request(e.to_string()))?;
        if let Some(assertion) = assertion {
            if authorization.is_some() || form_secret.is_some() {
                return Err(invalid_request(
                    "the client authenticated with more than one method (RFC 6749 section 2.3)",
                ));
            }
            if assertion_type.as_deref() != Some(assertion::JWT_BEARER) {
                return Err(invalid_client(format!(
                    "client_assertion_type must be {}",
                    assertion::JWT_BEARER
                )));
            }
            let id = assertion::client_named(&assertion)?;
            if form_id.is_some_and(|f| f != id) {
                return Err(invalid_client(
                    "client_id differs from the client assertion's sub (RFC 7523 section 3)",
                ));
            }
            return Ok(Self {
                credentials: Credentials::Assertion { id, assertion },
                params,
            });
        }
        if assertion_type.is_some() {
            return Err(invalid_request(
                "client_assertion_type was sent without a client_assertion",
            ));
        }
        let credentials = match (authorization, form_id, form_secret) {
            (Some(header), form_id, None) => {
                let (id, secret) = parse_basic(header).map_err(|e| TokenError {
                    response: TokenError::new(e.code, e.description.clone()).response,
                    error: e,
                    effects: Vec::new(),
                })?;
                if form_id.is_some_and(|f| f != id) {
                    return Err(invalid_request(
                        "client_id in the body differs from the Authorization header",
                    ));
                }
                Credentials::Basic { id, secret }
            }
            (Some(_), _, Some(_)) => {
                return Err(invalid_request(
                    "the client authenticated with more than one method (RFC 6749 section 2.3)",
                ));
            }
            (None, Some(id), Some(secret)) => Credentials::Post { id, secret },
            (None, Some(id), None) => Credentials::None { id },
            (None, None, _) => {
                return Err(invalid_client(
                    "no client authentication was sent (Basic header, or client_id in the body)",
                ));
            }
        };
        Ok(Self {
            credentials,
            params,
        })
    }

    /// The client to look up and hand to [`Received::authenticate`].
    pub fn client_id(&self) -> &str {
        self.credentials.id()
    }

    /// Authenticates the client with the registered record (`None` if unknown) at `now`.
    ///
    /// The method must be the one registered; secrets compare in constant time; a client
    /// assertion is verified (signature, `iss`/`sub`, `aud`, times) and then waits for its
    /// `jti` to be claimed once ([`Authenticated::ClaimJti`]).
    pub fn authenticate(
        self,
        client: Option<Client>,
        provider: &Provider,
        now: OffsetDateTime,
    ) -> Result<Authenticated, TokenError> {
        let Some(client) = client.filter(|c| c.client_id == self.credentials.id()) else {
            return Err(invalid_client("unknown client"));
        };
        if matches!(self.credentials, Credentials::Assertion { .. })
            && client.token_endpoint_auth_method == AuthMethod::PrivateKeyJwt
            && client.jwks.is_none()
            && client.jwks_uri.is_some()
        {
            let kid = match &self.credentials {
                Credentials::Assertion { assertion, .. } => assertion::header_kid(assertion),
                _ => None,
            };
            return Ok(Authenticated::FetchKeys(KeysWanted {
                received: self,
                client,
                kid,
            }));
        }
        let registered = client.token_endpoint_auth_method;
        if !self.credentials.fits(registered) {
            return Err(invalid_client(format!(
                "the client must authenticate with {}",
                registered.as_str()
            )));
        }
        let jti = match &self.credentials {
            Credentials::Basic { secret, .. } | Credentials::Post { secret, .. } => {
                if !client.verify_secret(secret) {
                    return Err(invalid_client("client authentication failed"));
                }
                None
            }
            Credentials::None { .. } => None,
            Credentials::Assertion { assertion, .. } => {
                Some(assertion::verify(&client, assertion, provider, now)?)
            }
        };
        let extension_declared = self
            .params
            .get("grant_type")
            .is_some_and(|g| provider.accepts_extension_grant(g));
        let authenticated = ClientAuthenticated {
            client,
            params: self.params,
            audience: None,
            extension_declared,
        };
        Ok(match jti {
            None => Authenticated::Client(authenticated),
            Some(jti) => Authenticated::ClaimJti(AssertionVerified { authenticated, jti }),
        })
    }
}

/// The token endpoint's client authentication: done, or a verified client assertion whose
/// `jti` must first be claimed in the store (single use).
#[must_use = "claim the assertion's jti, or go on with the authenticated client"]
#[derive(Debug)]
pub enum Authenticated {
    /// The client is authenticated.
    Client(ClientAuthenticated),
    /// A client assertion verified; claim its `jti` ([`AssertionVerified::jti`]) next.
    ClaimJti(AssertionVerified),
    /// A `private_key_jwt` client whose keys are at its `jwks_uri`: fetch the document
    /// ([`KeysWanted::jwks_uri`]), then [`KeysWanted::with_keys`].
    FetchKeys(KeysWanted),
}

/// A client assertion waiting for its client's keys from the registered `jwks_uri`.
#[must_use = "fetch the client's keys, then call with_keys"]
#[derive(Debug)]
pub struct KeysWanted {
    received: Received,
    client: Client,
    kid: Option<String>,
}

impl KeysWanted {
    /// Where the client's JWKS is: fetch it over https with a timeout and a size limit (a
    /// cache is the driver's to keep).
    pub fn jwks_uri(&self) -> &str {
        self.client.jwks_uri.as_deref().unwrap_or_default()
    }

    /// The `kid` the assertion's header names, unverified: a cached document without it is
    /// stale (the client rotated its keys), so the driver fetches again.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Goes on with the fetched JWKS document (`None` if it could not be fetched or was not
    /// JSON): the assertion is verified against it as against registered `jwks`.
    pub fn with_keys(
        mut self,
        jwks: Option<serde_json::Value>,
        provider: &Provider,
        now: OffsetDateTime,
    ) -> Result<Authenticated, TokenError> {
        let Some(jwks) = jwks.filter(|j| j.get("keys").is_some_and(serde_json::Value::is_array))
        else {
            return Err(invalid_client(
                "the client's keys could not be fetched from its jwks_uri",
            ));
        };
        // This request's copy of the registration holds the keys; with them present,
        // authentication verifies instead of asking again.
        self.client.jwks = Some(jwks);
        self.received.authenticate(Some(self.client), provider, now)
    }
}

/// A client assertion that verified, waiting for the store's answer to claiming its `jti`
/// (an atomic insert-if-absent, as nonces are claimed).
#[must_use = "claim the jti, then call claimed"]
#[derive(Debug)]
pub struct AssertionVerified {
    authenticated: ClientAuthenticated,
    jti: NonceRecord,
}

impl AssertionVerified {
    /// The record to claim: the client, the `jti` (prefixed apart from authorization
    /// nonces), kept until the assertion expires.
    pub fn jti(&self) -> &NonceRecord {
        &self.jti
    }

    /// Goes on with the store's answer: `true` when this request claimed the `jti` first.
    /// A `jti` seen before is a replayed assertion: `invalid_client`.
    pub fn claimed(self, fresh: bool) -> Result<ClientAuthenticated, TokenError> {
        if fresh {
            Ok(self.authenticated)
        } else {
            Err(invalid_client(
                "the client assertion was used before (its jti is single-use)",
            ))
        }
    }
}

/// A token request from an authenticated client.
#[must_use = "branch on the grant type next"]
#[derive(Debug)]
pub struct ClientAuthenticated {
    client: Client,
    params: Params,
    /// The RFC 8707 `resource` of the request, once a registered resource server was
    /// found for it ([`ClientAuthenticated::resolve_resource`]).
    audience: Option<String>,
    /// Whether the request's `grant_type` is an extension grant the provider declared.
    extension_declared: bool,
}

/// The grant a token request uses.
#[must_use]
#[derive(Debug)]
pub enum Grant {
    /// `authorization_code`: redeem a code.
    AuthorizationCode(CodeExchange),
    /// `refresh_token`: rotate a refresh token.
    RefreshToken(RefreshExchange),
    /// `client_credentials`: a token for the client itself (RFC 6749 §4.4).
    ClientCredentials(ClientCredentials),
    /// An extension grant the provider declared and the client registered: the
    /// application decides what to issue.
    Extension(ExtensionRequest),
}

impl ClientAuthenticated {
    /// The authenticated client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Reads the form as a revocation request (RFC 7009): the client authenticated as at
    /// the token endpoint, then `token` and `token_type_hint`.
    /// `provider` recognises its own JWT access tokens, which are not stored.
    pub fn revocation(
        self,
        provider: &Provider,
    ) -> Result<crate::revocation::Revocation, TokenError> {
        crate::revocation::Revocation::from_form(self.client, self.params, provider)
    }

    /// Reads the form as an introspection request (RFC 7662): the caller authenticated as
    /// at the token endpoint and is confidential, then `token` and `token_type_hint`.
    /// `provider` recognises its own JWT access tokens, which are not stored.
    pub fn introspection(
        self,
        provider: &Provider,
    ) -> Result<crate::introspection::Introspection, TokenError> {
        crate::introspection::Introspection::from_form(self.client, self.params, provider)
    }

    /// The resource indicator (RFC 8707 §2) the request names, if any: find the resource
    /// server registered for it and hand it to [`ClientAuthenticated::resolve_resource`]
    /// before [`ClientAuthenticated::grant`]. Only one is accepted (parameters never repeat
    /// here).
    pub fn requested_resource(&self) -> Option<&str> {
        self.params.get("resource")
    }

    /// Resolves the requested resource with the registered resource server the store found
    /// for it (`None` if none): the access token will be meant for it (`aud`).
    /// `invalid_target` if it is not an absolute URI without a fragment or not registered.
    pub fn resolve_resource(mut self, server: Option<Client>) -> Result<Self, TokenError> {
        let invalid_target = |why: &str| TokenError::new(ErrorCode::InvalidTarget, why);
        let Some(resource) = self.params.take("resource") else {
            return Ok(self);
        };
        if resource.len() > 2048 {
            return Err(invalid_target("the resource is too long"));
        }
        match url::Url::parse(&resource) {
            Ok(u) if u.fragment().is_none() && !u.cannot_be_a_base() => {}
            _ => {
                return Err(invalid_target(
                    "the resource must be an absolute URI without a fragment (RFC 8707 section 2)",
                ));
            }
        }
        if server.and_then(|s| s.resource) != Some(resource.clone()) {
            return Err(invalid_target("the resource is not registered here"));
        }
        self.audience = Some(resource);
        Ok(self)
    }

    /// Reads the grant type and its parameters. A `resource` that was not resolved first
    /// is `invalid_target`: no token is ever meant for a resource nobody checked.
    pub fn grant(mut self) -> Result<Grant, TokenError> {
        if self.params.get("resource").is_some() {
            return Err(TokenError::new(
                ErrorCode::InvalidTarget,
                "the resource was not resolved against the registered resource servers",
            ));
        }
        let audience = self.audience.take();
        let take = |p: &mut Params, name: &'static str, limit: usize| {
            p.take_limited(name, limit)
                .map_err(|e| invalid_request(e.to_string()))
        };
        let Some(grant_type) = take(&mut self.params, "grant_type", 128)? else {
            return Err(invalid_request("the grant_type parameter is missing"));
        };
        let grant = match grant_type.as_str() {
            "authorization_code" => GrantType::AuthorizationCode,
            "refresh_token" => GrantType::RefreshToken,
            "client_credentials" => GrantType::ClientCredentials,
            _ if self.extension_declared => GrantType::Extension(grant_type),
            _ => {
                return Err(TokenError::new(
                    ErrorCode::UnsupportedGrantType,
                    "the grant_type is not supported here (see grant_types_supported in the discovery document)",
                ));
            }
        };
        if !self.client.allows_grant_named(grant.as_str()) {
            return Err(TokenError::new(
                ErrorCode::UnauthorizedClient,
                format!(
                    "the client is not registered for the {} grant",
                    grant.as_str()
                ),
            ));
        }
        match grant {
            GrantType::Extension(name) => Ok(Grant::Extension(ExtensionRequest::new(
                self.client,
                name,
                self.params,
                audience,
            ))),
            GrantType::ClientCredentials => {
                let asked = take(&mut self.params, "scope", crate::scope::MAX_SCOPE_LEN)?;
                let scope = ClientCredentials::scope(&self.client, asked.as_deref())?;
                Ok(Grant::ClientCredentials(ClientCredentials {
                    client: self.client,
                    scope,
                    audience,
                }))
            }
            GrantType::RefreshToken => {
                let Some(token) = take(&mut self.params, "refresh_token", 512)? else {
                    return Err(invalid_request("the refresh_token parameter is missing"));
                };
                let scope = match take(&mut self.params, "scope", crate::scope::MAX_SCOPE_LEN)? {
                    Some(s) => Some(
                        Scope::parse(&s)
                            .map_err(|e| TokenError::new(ErrorCode::InvalidScope, e.to_string()))?,
                    ),
                    None => None,
                };
                Ok(Grant::RefreshToken(RefreshExchange {
                    client: self.client,
                    hash: SecretHash::of(&token),
                    scope,
                    audience,
                }))
            }
            _ => {
                let Some(code) = take(&mut self.params, "code", 512)? else {
                    return Err(invalid_request("the code parameter is missing"));
                };
                let redirect_uri = take(&mut self.params, "redirect_uri", 2048)?;
                let verifier = take(&mut self.params, "code_verifier", 256)?;
                if verifier
                    .as_deref()
                    .is_some_and(|v| !pkce::is_valid_verifier(v))
                {
                    return Err(invalid_request(
                        "the code_verifier is malformed (RFC 7636 section 4.1: 43-128 unreserved characters)",
                    ));
                }
                Ok(Grant::AuthorizationCode(CodeExchange {
                    client: self.client,
                    hash: SecretHash::of(&code),
                    redirect_uri,
                    verifier,
                    audience,
                }))
            }
        }
    }
}

/// What codes and refresh tokens share: single-use secrets bound to a client and a grant.
trait SingleUse {
    fn hash(&self) -> &SecretHash;
    fn client_id(&self) -> &str;
    fn grant(&self) -> &GrantId;
    fn expires_at(&self) -> OffsetDateTime;
}

impl SingleUse for CodeRecord {
    fn hash(&self) -> &SecretHash {
        &self.hash
    }
    fn client_id(&self) -> &str {
        &self.client_id
    }
    fn grant(&self) -> &GrantId {
        &self.grant
    }
    fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
}

impl SingleUse for RefreshTokenRecord {
    fn hash(&self) -> &SecretHash {
        &self.hash
    }
    fn client_id(&self) -> &str {
        &self.client_id
    }
    fn grant(&self) -> &GrantId {
        &self.grant
    }
    fn expires_at(&self) -> OffsetDateTime {
        self.expires_at
    }
}

/// Judges the store's answer to an atomic take of a code or refresh token (`what`).
///
/// A second take means a replay: `invalid_grant`, and the grant is revoked (RFC 6749 §4.1.2,
/// §10.4). So is a secret presented by another client: the take burnt it, and a leaked
/// secret's grant should not live on.
fn take_checked<R: SingleUse>(
    taken: Taken<R>,
    presented: &SecretHash,
    client: &Client,
    now: OffsetDateTime,
    what: &str,
) -> Result<R, TokenError> {
    let record = match taken {
        Taken::Fresh(r) => r,
        Taken::AlreadyTaken(grant) => {
            return Err(invalid_grant(format!(
                "the {what} was already used; its grant is revoked"
            ))
            .revoking(grant));
        }
        Taken::Unknown => return Err(invalid_grant(format!("the {what} is invalid or expired"))),
    };
    if !record.hash().ct_eq(presented) {
        return Err(invalid_grant(format!("the {what} is invalid or expired")));
    }
    if record.client_id() != client.client_id {
        let grant = record.grant().clone();
        return Err(
            invalid_grant(format!("the {what} was issued to another client")).revoking(grant),
        );
    }
    if now >= record.expires_at() {
        return Err(invalid_grant(format!("the {what} has expired")));
    }
    Ok(record)
}

/// An `authorization_code` request waiting for the store to take the code.
#[must_use = "take the code from the store, then redeem"]
#[derive(Debug)]
pub struct CodeExchange {
    client: Client,
    hash: SecretHash,
    redirect_uri: Option<String>,
    verifier: Option<String>,
    audience: Option<String>,
}

impl CodeExchange {
    /// The hash of the presented code: take it atomically from the store.
    pub fn code_hash(&self) -> &SecretHash {
        &self.hash
    }

    /// Judges the store's answer: a reused code fails and revokes its grant (RFC 6749 §4.1.2);
    /// then expiry, client, redirect URI and PKCE are checked.
    pub fn redeem(
        self,
        taken: Taken<CodeRecord>,
        now: OffsetDateTime,
    ) -> Result<CodeRedeemed, TokenError> {
        let record = take_checked(taken, &self.hash, &self.client, now, "code")?;
        match (&self.redirect_uri, record.redirect_uri_in_request) {
            (Some(given), _) if *given != record.redirect_uri => {
                return Err(invalid_grant(
                    "redirect_uri differs from the one of the authorization request",
                ));
            }
            (None, true) => {
                return Err(invalid_request(
                    "redirect_uri is required: it was in the authorization request (RFC 6749 section 4.1.3)",
                ));
            }
            _ => {}
        }
        match (&record.pkce, &self.verifier) {
            (Some(challenge), Some(verifier)) => {
                if !pkce::verify(challenge, verifier) {
                    return Err(invalid_grant(
                        "the code_verifier does not match the code_challenge",
                    ));
                }
            }
            (Some(_), None) => {
                return Err(invalid_grant(
                    "the code_verifier is missing: the authorization request sent a code_challenge",
                ));
            }
            (None, Some(_)) => {
                // RFC 9700 §2.1.1: a verifier without a challenge hints at an injected code.
                return Err(invalid_grant(
                    "a code_verifier was sent, but the authorization request had no code_challenge",
                ));
            }
            (None, None) => {}
        }
        Ok(CodeRedeemed {
            client: self.client,
            record,
            audience: self.audience,
        })
    }
}

/// A code taken and checked: the only state that can issue tokens for it.
#[must_use = "issue the tokens next"]
#[derive(Debug)]
pub struct CodeRedeemed {
    client: Client,
    record: CodeRecord,
    audience: Option<String>,
}

impl CodeRedeemed {
    /// The end-user the code was issued for.
    pub fn subject(&self) -> &str {
        &self.record.authentication.subject
    }

    /// The scope the code granted.
    pub fn scope(&self) -> &Scope {
        &self.record.scope
    }

    /// Whether the ID token carries the scope's claims
    /// ([`crate::provider::ProviderBuilder::claims_in_id_token`]): then issue with
    /// [`CodeRedeemed::issue_with_claims`] and the end-user's claims.
    pub fn needs_claims(&self, provider: &Provider) -> bool {
        wants_claims(provider, &self.record.scope)
    }

    /// Issues the access token, a refresh token (if the client may refresh) and, for OpenID
    /// requests, an ID token carrying the code's nonce.
    pub fn issue(
        self,
        provider: &Provider,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<Completed<JsonResponse>, TokenError> {
        self.issue_inner(provider, None, rng, now)
    }

    /// As [`CodeRedeemed::issue`], with the end-user's claims released by the scope in the
    /// ID token (when [`CodeRedeemed::needs_claims`]).
    pub fn issue_with_claims(
        self,
        provider: &Provider,
        claims: &UserInfo,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<Completed<JsonResponse>, TokenError> {
        let released = released_claims(provider, self.subject(), &self.record.scope, claims);
        self.issue_inner(provider, released.as_ref(), rng, now)
    }

    fn issue_inner(
        self,
        provider: &Provider,
        claims: Option<&serde_json::Map<String, serde_json::Value>>,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<Completed<JsonResponse>, TokenError> {
        let r = &self.record;
        issue_tokens(
            provider,
            &self.client,
            Issue {
                claims,
                audience: self.audience.as_deref(),
                grant: &r.grant,
                scope: &r.scope,
                authentication: &r.authentication,
                include_auth_time: r.include_auth_time,
                nonce: r.nonce.as_deref(),
                refresh: self.client.allows_grant(GrantType::RefreshToken),
                issued_token_type: None,
            },
            rng,
            now,
        )
    }
}

/// A `refresh_token` request waiting for the store to take the refresh token.
#[must_use = "take the refresh token from the store, then redeem"]
#[derive(Debug)]
pub struct RefreshExchange {
    client: Client,
    hash: SecretHash,
    scope: Option<Scope>,
    audience: Option<String>,
}

impl RefreshExchange {
    /// The hash of the presented refresh token: take it atomically from the store.
    pub fn refresh_token_hash(&self) -> &SecretHash {
        &self.hash
    }

    /// Judges the store's answer: a reused refresh token revokes its whole family.
    pub fn redeem(
        self,
        taken: Taken<RefreshTokenRecord>,
        now: OffsetDateTime,
    ) -> Result<RefreshRedeemed, TokenError> {
        let record = take_checked(taken, &self.hash, &self.client, now, "refresh token")?;
        let scope = match self.scope {
            Some(asked) => {
                if let Some(bad) = asked.not_in(&record.scope).next() {
                    let msg = format!("the scope `{bad}` was not granted to this refresh token");
                    // The store already took (rotated away) this token, so the family cannot go
                    // on: revoke it rather than leave tokens no refresh can follow.
                    return Err(
                        TokenError::new(ErrorCode::InvalidScope, msg).revoking(record.grant)
                    );
                }
                asked
            }
            None => record.scope.clone(),
        };
        Ok(RefreshRedeemed {
            client: self.client,
            record,
            scope,
            audience: self.audience,
        })
    }
}

/// A refresh token taken and checked.
#[must_use = "issue the tokens next"]
#[derive(Debug)]
pub struct RefreshRedeemed {
    client: Client,
    record: RefreshTokenRecord,
    scope: Scope,
    audience: Option<String>,
}

impl RefreshRedeemed {
    /// The end-user of the grant.
    pub fn subject(&self) -> &str {
        &self.record.authentication.subject
    }

    /// The scope the new tokens will carry.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Whether the ID token carries the scope's claims
    /// ([`crate::provider::ProviderBuilder::claims_in_id_token`]).
    pub fn needs_claims(&self, provider: &Provider) -> bool {
        wants_claims(provider, &self.scope)
    }

    /// Issues a new access token and a new refresh token of the same grant, and an ID token
    /// (without nonce, OIDC Core §12.2) when the scope holds `openid`.
    pub fn issue(
        self,
        provider: &Provider,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<Completed<JsonResponse>, TokenError> {
        self.issue_inner(provider, None, rng, now)
    }

    /// As [`RefreshRedeemed::issue`], with the end-user's claims released by the scope in
    /// the ID token (when [`RefreshRedeemed::needs_claims`]).
    pub fn issue_with_claims(
        self,
        provider: &Provider,
        claims: &UserInfo,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<Completed<JsonResponse>, TokenError> {
        let released = released_claims(provider, self.subject(), &self.scope, claims);
        self.issue_inner(provider, released.as_ref(), rng, now)
    }

    fn issue_inner(
        self,
        provider: &Provider,
        claims: Option<&serde_json::Map<String, serde_json::Value>>,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<Completed<JsonResponse>, TokenError> {
        let r = &self.record;
        issue_tokens(
            provider,
            &self.client,
            Issue {
                claims,
                audience: self.audience.as_deref(),
                grant: &r.grant,
                scope: &self.scope,
                authentication: &r.authentication,
                include_auth_time: r.include_auth_time,
                nonce: None,
                refresh: self.client.allows_grant(GrantType::RefreshToken),
                issued_token_type: None,
            },
            rng,
            now,
        )
    }
}

/// Scopes that speak for an end-user, which the client credentials grant has none of.
pub(crate) const END_USER_SCOPES: [&str; 2] = [Scope::OPENID, "offline_access"];

/// A `client_credentials` request (RFC 6749 §4.4) from an authenticated confidential client:
/// the scope is decided, and nothing else is needed to issue.
#[must_use = "issue the access token next"]
#[derive(Debug)]
pub struct ClientCredentials {
    client: Client,
    scope: Scope,
    audience: Option<String>,
}

impl ClientCredentials {
    /// The scope to grant: the asked one when every token of it is registered for the
    /// client and none needs an end-user; else the registered scope without those
    /// (RFC 6749 §3.3 lets the server apply a default).
    fn scope(client: &Client, asked: Option<&str>) -> Result<Scope, TokenError> {
        let invalid_scope = |why: String| TokenError::new(ErrorCode::InvalidScope, why);
        let Some(asked) = asked else {
            let default = client.scope.iter().filter(|t| !END_USER_SCOPES.contains(t));
            return Scope::from_tokens(default).map_err(|e| invalid_scope(e.to_string()));
        };
        let asked = Scope::parse(asked).map_err(|e| invalid_scope(e.to_string()))?;
        if let Some(bad) = asked.iter().find(|t| END_USER_SCOPES.contains(t)) {
            return Err(invalid_scope(format!(
                "the scope `{bad}` needs an end-user, and the client_credentials grant has none"
            )));
        }
        if let Some(bad) = asked.not_in(&client.scope).next() {
            return Err(invalid_scope(format!(
                "the scope `{bad}` is not registered for this client"
            )));
        }
        Ok(asked)
    }

    /// The client the token is for.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The scope the token will carry.
    pub fn granted_scope(&self) -> &Scope {
        &self.scope
    }

    /// Issues an access token of a new grant whose subject is the client itself (RFC 9068
    /// §2.2 for grants without a resource owner); no refresh token and no ID token.
    pub fn issue(
        self,
        provider: &Provider,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Completed<JsonResponse> {
        let grant = GrantId::generate(rng, now);
        issue_access_only(
            provider,
            &self.client,
            AccessOnly {
                grant: &grant,
                subject: &self.client.client_id,
                scope: &self.scope,
                audience: self.audience.as_deref(),
                issued_token_type: None,
            },
            rng,
            now,
        )
        .unwrap_or_else(TokenError::into_completed)
    }
}

/// An access token with nothing beside it: no end-user authenticated here, so no refresh
/// token and no ID token.
pub(crate) struct AccessOnly<'a> {
    pub(crate) grant: &'a GrantId,
    /// The client itself, or a subject vouched for by an extension grant.
    pub(crate) subject: &'a str,
    pub(crate) scope: &'a Scope,
    pub(crate) audience: Option<&'a str>,
    /// RFC 8693's `issued_token_type`, for a token exchange.
    pub(crate) issued_token_type: Option<&'static str>,
}

/// Issues a lone access token (client credentials, extension grants without an end-user).
pub(crate) fn issue_access_only(
    provider: &Provider,
    client: &Client,
    issue: AccessOnly<'_>,
    rng: &mut impl CryptoRng,
    now: OffsetDateTime,
) -> Result<Completed<JsonResponse>, TokenError> {
    let (access, record) = mint_access_token(
        provider,
        AccessTokenFor {
            client,
            grant: issue.grant,
            subject: issue.subject,
            scope: issue.scope,
            auth_time: None,
            audience: issue.audience,
        },
        rng,
        now,
    )
    .map_err(|e| TokenError::new(e.code, e.description))?;
    let body = TokenBody {
        access_token: &access,
        issued_token_type: issue.issued_token_type,
        token_type: "Bearer",
        expires_in: provider.access_token_lifetime_for(client).whole_seconds(),
        refresh_token: None,
        id_token: None,
        scope: issue.scope.to_string(),
    };
    let body = serde_json::to_string(&body)
        .map_err(|e| TokenError::new(ErrorCode::ServerError, e.to_string()))?;
    Ok(Completed {
        response: JsonResponse::no_store(body),
        effects: record.map(Effect::StoreAccessToken).into_iter().collect(),
    })
}

/// What an access token is minted for.
pub(crate) struct AccessTokenFor<'a> {
    pub(crate) client: &'a Client,
    pub(crate) grant: &'a GrantId,
    /// The end-user, or the client itself when there is none.
    pub(crate) subject: &'a str,
    pub(crate) scope: &'a Scope,
    /// When the end-user authenticated, when there is one.
    pub(crate) auth_time: Option<OffsetDateTime>,
    /// The resource it is meant for (RFC 8707), when the request named one.
    pub(crate) audience: Option<&'a str>,
}

/// The claims of a JWT access token (RFC 9068 §2.2).
#[derive(Serialize)]
struct JwtAccessTokenClaims<'a> {
    iss: &'a str,
    exp: i64,
    aud: &'a str,
    sub: &'a str,
    client_id: &'a str,
    iat: i64,
    jti: &'a str,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    /// The grant the token belongs to ([`GRANT_CLAIM`]).
    grant_id: &'a str,
}

/// The private claim naming the grant of a JWT access token: what makes it one of this
/// provider's own (ID tokens and anything else signed with its keys lack it), and what a
/// revocation of that grant is checked against, since the token itself is not stored.
pub const GRANT_CLAIM: &str = "grant_id";

/// A new access token and, for an opaque one, the record to store under its hash: the one
/// place access tokens are minted (token endpoint and authorization endpoint alike), in the
/// client's format.
///
/// A JWT access token is signed with the provider's default algorithm (`typ: at+jwt`), its
/// `aud` the resource the request named, else the client itself. It is not stored: it
/// carries its record (and its grant, [`GRANT_CLAIM`]), so revocation, introspection and
/// UserInfo read it from the token ([`own_jwt_access_token`]) and ask the store only
/// whether its grant was revoked. Issuing one writes nothing.
pub(crate) fn mint_access_token(
    provider: &Provider,
    token: AccessTokenFor<'_>,
    rng: &mut impl CryptoRng,
    now: OffsetDateTime,
) -> Result<(String, Option<AccessTokenRecord>), OAuthError> {
    let lifetime = provider.access_token_lifetime_for(token.client);
    match token.client.access_token_format {
        AccessTokenFormat::Opaque => {
            let value = MintedSecret::generate_keyed(rng, now).into_string();
            let record = AccessTokenRecord {
                hash: SecretHash::of(&value),
                grant: token.grant.clone(),
                client_id: token.client.client_id.clone(),
                subject: token.subject.to_owned(),
                scope: token.scope.clone(),
                audience: token.audience.map(str::to_owned).into_iter().collect(),
                issued_at: Some(now),
                expires_at: now + lifetime,
            };
            Ok((value, Some(record)))
        }
        AccessTokenFormat::Jwt => {
            let alg = provider.default_alg();
            let signer = provider.signer_for_alg(alg).ok_or_else(|| {
                OAuthError::new(
                    ErrorCode::ServerError,
                    format!("no key signs {alg} access tokens"),
                )
            })?;
            let jti = GrantId::generate(rng, now);
            let claims = JwtAccessTokenClaims {
                iss: provider.issuer(),
                exp: (now + lifetime).unix_timestamp(),
                aud: token.audience.unwrap_or(&token.client.client_id),
                sub: token.subject,
                client_id: &token.client.client_id,
                iat: now.unix_timestamp(),
                jti: jti.as_str(),
                scope: token.scope.to_string(),
                auth_time: token.auth_time.map(OffsetDateTime::unix_timestamp),
                grant_id: token.grant.as_str(),
            };
            let value = jws::encode_with_typ(&claims, &signer, "at+jwt").map_err(|e| {
                OAuthError::new(ErrorCode::ServerError, format!("signing failed: {e}"))
            })?;
            Ok((value, None))
        }
    }
}

/// The record a JWT access token of this provider carries, when `token` is one: signed by
/// one of the provider's keys (signing or only published), `iss` this provider, and the
/// claims the token endpoint writes, [`GRANT_CLAIM`] included. Expiry is not checked here
/// (each endpoint decides what an expired token means); `None` for anything else, which
/// the caller then looks up by hash like an opaque token.
pub fn own_jwt_access_token(provider: &Provider, token: &str) -> Option<AccessTokenRecord> {
    // Cheap shape check first: opaque tokens have no dots.
    if token.bytes().filter(|b| *b == b'.').count() != 2 {
        return None;
    }
    let verified = jws::decode_verify(token, |alg, kid| {
        // Only the provider's own asymmetric keys sign access tokens.
        if alg.is_symmetric() {
            return None;
        }
        match kid {
            Some(kid) => provider.keys.get(kid),
            None => provider.keys.for_algorithm(alg),
        }
        .filter(|k| k.algorithm() == alg)
        .map(Signer::Key)
    })
    .ok()?;
    let claims = &verified.claims;
    let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str);
    let time = |name: &str| {
        claims
            .get(name)
            .and_then(serde_json::Value::as_i64)
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
    };
    if text("iss") != Some(provider.issuer()) {
        return None;
    }
    let client_id = text("client_id")?;
    // One audience, as minted: the client itself means "no resource named".
    let aud = text("aud")?;
    let audience = if aud == client_id {
        Vec::new()
    } else {
        vec![aud.to_owned()]
    };
    Some(AccessTokenRecord {
        hash: SecretHash::of(token),
        grant: GrantId::from_stored(text(GRANT_CLAIM)?),
        client_id: client_id.to_owned(),
        subject: text("sub")?.to_owned(),
        scope: Scope::parse(text("scope")?).ok()?,
        audience,
        issued_at: Some(time("iat")?),
        expires_at: time("exp")?,
    })
}

/// Whether the token endpoint's ID token for `scope` carries the end-user's claims.
pub(crate) fn wants_claims(provider: &Provider, scope: &Scope) -> bool {
    provider.claims_in_id_token && scope.is_openid()
}

/// The claims of `subject` that `scope` releases, when the ID token carries them.
pub(crate) fn released_claims(
    provider: &Provider,
    subject: &str,
    scope: &Scope,
    claims: &UserInfo,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    wants_claims(provider, scope).then(|| claims.for_scope(subject, scope, provider))
}

/// What the token endpoint issues for an end-user's grant.
pub(crate) struct Issue<'a> {
    /// Claims for the ID token beside the registered ones.
    pub(crate) claims: Option<&'a serde_json::Map<String, serde_json::Value>>,
    pub(crate) audience: Option<&'a str>,
    pub(crate) grant: &'a GrantId,
    pub(crate) scope: &'a Scope,
    pub(crate) authentication: &'a Authentication,
    pub(crate) include_auth_time: bool,
    pub(crate) nonce: Option<&'a str>,
    /// Whether a refresh token comes too.
    pub(crate) refresh: bool,
    /// RFC 8693's `issued_token_type`, for a token exchange.
    pub(crate) issued_token_type: Option<&'static str>,
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
    token_type: &'static str,
    expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
    scope: String,
}

pub(crate) fn issue_tokens(
    provider: &Provider,
    client: &Client,
    issue: Issue<'_>,
    rng: &mut impl CryptoRng,
    now: OffsetDateTime,
) -> Result<Completed<JsonResponse>, TokenError> {
    let (access, record) = mint_access_token(
        provider,
        AccessTokenFor {
            client,
            grant: issue.grant,
            subject: &issue.authentication.subject,
            scope: issue.scope,
            auth_time: Some(issue.authentication.auth_time),
            audience: issue.audience,
        },
        rng,
        now,
    )
    .map_err(|e| TokenError::new(e.code, e.description))?;
    let mut effects = Vec::with_capacity(2);
    effects.extend(record.map(Effect::StoreAccessToken));
    let refresh = issue
        .refresh
        .then(|| MintedSecret::generate_keyed(rng, now));
    if let Some(refresh) = &refresh {
        effects.push(Effect::StoreRefreshToken(RefreshTokenRecord {
            hash: refresh.hash(),
            grant: issue.grant.clone(),
            client_id: client.client_id.clone(),
            scope: issue.scope.clone(),
            authentication: issue.authentication.clone(),
            include_auth_time: issue.include_auth_time,
            issued_at: Some(now),
            expires_at: now + provider.refresh_token_lifetime,
        }));
    }
    let id_token = if issue.scope.is_openid() {
        Some(
            idtoken::sign(
                provider,
                client,
                IdTokenInput {
                    authentication: issue.authentication,
                    include_auth_time: issue.include_auth_time,
                    nonce: issue.nonce,
                    access_token: Some(&access),
                    code: None,
                    extra: issue.claims,
                },
                now,
            )
            .map_err(|e| TokenError::new(e.code, e.description))?,
        )
    } else {
        None
    };
    let body = TokenBody {
        access_token: &access,
        issued_token_type: issue.issued_token_type,
        token_type: "Bearer",
        expires_in: provider.access_token_lifetime_for(client).whole_seconds(),
        refresh_token: refresh.as_ref().map(MintedSecret::as_str),
        id_token: id_token.as_deref(),
        scope: issue.scope.to_string(),
    };
    let body = serde_json::to_string(&body)
        .map_err(|e| TokenError::new(ErrorCode::ServerError, e.to_string()))?;
    Ok(Completed {
        response: JsonResponse::no_store(body),
        effects,
    })
}
