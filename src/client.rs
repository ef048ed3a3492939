//! Registered clients, with the metadata names of RFC 7591 (OAuth 2.0 Dynamic Client Registration).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::keys::Algorithm;
use crate::scope::Scope;
use crate::secret::SecretHash;

/// A response type the authorization endpoint serves: a non-empty set of `code`, `id_token`, `token`.
///
/// `token` alone (the plain OAuth implicit grant) is not offered: OAuth 2.0 Security BCP
/// (RFC 9700 §2.1.2) deprecates it, and OpenID Connect never needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseType {
    /// An authorization code is returned.
    pub code: bool,
    /// An ID token is returned from the authorization endpoint.
    pub id_token: bool,
    /// An access token is returned from the authorization endpoint.
    pub token: bool,
}

impl ResponseType {
    /// `code`: the authorization code flow.
    pub const CODE: Self = Self::new(true, false, false);
    /// `id_token`: implicit, ID token only.
    pub const ID_TOKEN: Self = Self::new(false, true, false);
    /// `id_token token`: implicit with an access token.
    pub const ID_TOKEN_TOKEN: Self = Self::new(false, true, true);
    /// `code id_token`: hybrid.
    pub const CODE_ID_TOKEN: Self = Self::new(true, true, false);
    /// `code token`: hybrid.
    pub const CODE_TOKEN: Self = Self::new(true, false, true);
    /// `code id_token token`: hybrid.
    pub const CODE_ID_TOKEN_TOKEN: Self = Self::new(true, true, true);
    /// The six supported response types, in the order of OIDC Core's table (§3).
    pub const ALL: [Self; 6] = [
        Self::CODE,
        Self::ID_TOKEN,
        Self::ID_TOKEN_TOKEN,
        Self::CODE_ID_TOKEN,
        Self::CODE_TOKEN,
        Self::CODE_ID_TOKEN_TOKEN,
    ];

    const fn new(code: bool, id_token: bool, token: bool) -> Self {
        Self {
            code,
            id_token,
            token,
        }
    }

    /// Parses a space-separated response type, in any order (OAuth 2.0 Multiple Response Types §3).
    /// Returns `None` for anything not among [`ResponseType::ALL`].
    pub fn parse(input: &str) -> Option<Self> {
        let mut rt = Self::new(false, false, false);
        for part in input.split(' ') {
            let slot = match part {
                "code" => &mut rt.code,
                "id_token" => &mut rt.id_token,
                "token" => &mut rt.token,
                _ => return None,
            };
            if *slot {
                return None;
            }
            *slot = true;
        }
        Self::ALL.contains(&rt).then_some(rt)
    }

    /// The canonical spelling (`code id_token token` order).
    pub fn as_str(self) -> &'static str {
        match (self.code, self.id_token, self.token) {
            (true, false, false) => "code",
            (false, true, false) => "id_token",
            (false, true, true) => "id_token token",
            (true, true, false) => "code id_token",
            (true, false, true) => "code token",
            (true, true, true) => "code id_token token",
            // Unreachable for values built by `parse` or the constants; named for safety.
            (false, false, true) => "token",
            (false, false, false) => "",
        }
    }

    /// Whether anything but a code comes back through the front channel, which forbids
    /// the query response mode and calls for the fragment by default.
    pub fn returns_tokens(self) -> bool {
        self.id_token || self.token
    }

    /// The default response mode (OAuth 2.0 Multiple Response Types §5).
    pub fn default_mode(self) -> ResponseMode {
        if self.returns_tokens() {
            ResponseMode::Fragment
        } else {
            ResponseMode::Query
        }
    }

    /// The grant type RFC 7591 §2.1 pairs with this response type.
    pub fn needs_grant_types(self) -> impl Iterator<Item = GrantType> {
        let code = self.code.then_some(GrantType::AuthorizationCode);
        let implicit = self.returns_tokens().then_some(GrantType::Implicit);
        code.into_iter().chain(implicit)
    }
}

impl fmt::Display for ResponseType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ResponseType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ResponseType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ResponseType::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unsupported response type `{s}`")))
    }
}

/// How the authorization response travels back to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    /// Parameters in the redirect URI's query (codes only).
    Query,
    /// Parameters in the redirect URI's fragment.
    Fragment,
    /// An auto-submitting HTML form that POSTs the parameters (OAuth 2.0 Form Post Response Mode).
    FormPost,
}

impl ResponseMode {
    /// Parses a `response_mode` value.
    pub fn parse(input: &str) -> Option<Self> {
        match input {
            "query" => Some(Self::Query),
            "fragment" => Some(Self::Fragment),
            "form_post" => Some(Self::FormPost),
            _ => None,
        }
    }

    /// The value's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Fragment => "fragment",
            Self::FormPost => "form_post",
        }
    }
}

/// A grant type a client may use (RFC 7591 §2 names).
///
/// Besides the grants the core runs itself, a client may register an extension grant
/// (RFC 6749 §4.5): `password` or an absolute URI, answered by the application's own handler
/// where the provider declares it ([`crate::provider::ProviderBuilder::extension_grant`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// The authorization code grant (RFC 6749 §4.1).
    AuthorizationCode,
    /// Tokens from the authorization endpoint (implicit and hybrid flows).
    Implicit,
    /// The refresh token grant (RFC 6749 §6).
    RefreshToken,
    /// The client credentials grant (RFC 6749 §4.4): a confidential client gets a token for
    /// itself, with no end-user.
    ClientCredentials,
    /// An extension grant: `password` (RFC 6749 §4.3) or an absolute URI (§4.5), such as
    /// RFC 8693's `urn:ietf:params:oauth:grant-type:token-exchange`.
    Extension(String),
}

impl GrantType {
    /// The grant type's wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::Implicit => "implicit",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::Extension(name) => name,
        }
    }

    /// The grant type named `name` on the wire: one the core runs, else an extension grant
    /// (whether it is a valid one is [`GrantType::is_valid_extension`]'s question).
    pub fn from_name(name: &str) -> Self {
        match name {
            "authorization_code" => Self::AuthorizationCode,
            "implicit" => Self::Implicit,
            "refresh_token" => Self::RefreshToken,
            "client_credentials" => Self::ClientCredentials,
            other => Self::Extension(other.to_owned()),
        }
    }

    /// Whether `name` may name an extension grant: `password` (RFC 6749 §4.3), or an
    /// absolute URI without a fragment (§4.5), at most 255 bytes.
    pub fn is_valid_extension(name: &str) -> bool {
        if name == "password" {
            return true;
        }
        name.len() <= 255
            && !matches!(
                Self::from_name(name),
                Self::AuthorizationCode
                    | Self::Implicit
                    | Self::RefreshToken
                    | Self::ClientCredentials
            )
            && url::Url::parse(name).is_ok_and(|u| u.fragment().is_none())
    }
}

impl Serialize for GrantType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for GrantType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::from_name(&name))
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a client's access tokens are made, chosen per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccessTokenFormat {
    /// A random 256-bit value, meaningful only to the provider's store (introspection).
    #[default]
    Opaque,
    /// A JWT access token (RFC 9068) a resource server can verify with the JWKS alone; it is
    /// stored too, so revocation, introspection and UserInfo treat it as an opaque one.
    Jwt,
}

impl AccessTokenFormat {
    /// The format's name on the command line and in registrations.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opaque => "opaque",
            Self::Jwt => "jwt",
        }
    }

    fn is_opaque(&self) -> bool {
        *self == Self::Opaque
    }
}

/// How a client authenticates at the token endpoint (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A public client: no secret, `client_id` in the form body.
    None,
    /// A JWT assertion signed with HS* keyed by the client secret (OIDC Core §9).
    ClientSecretJwt,
    /// A JWT assertion signed with the client's private key, verified with its registered
    /// public keys (`jwks`; RFC 7523 §2.2, OIDC Core §9).
    PrivateKeyJwt,
}

impl AuthMethod {
    /// The method's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// A registered client, as the store keeps it.
///
/// Field names are those of RFC 7591, so a registration document deserializes directly.
/// Build it, then call [`Client::validate`] before use.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// The client identifier.
    pub client_id: String,
    /// The secret in clear, kept only where it must be (HS* ID tokens are keyed with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// SHA-256 of a high-entropy secret, the usual way to keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_sha256: Option<SecretHash>,
    /// Redirect URIs, compared as exact strings.
    pub redirect_uris: Vec<String>,
    /// Response types the client may use.
    #[serde(default = "default_response_types")]
    pub response_types: Vec<ResponseType>,
    /// Grant types the client may use.
    #[serde(default = "default_grant_types")]
    pub grant_types: Vec<GrantType>,
    /// The scopes the client may request.
    #[serde(default = "default_scope")]
    pub scope: Scope,
    /// How the client authenticates at the token endpoint.
    #[serde(default)]
    pub token_endpoint_auth_method: AuthMethod,
    /// The algorithm for this client's ID tokens; the provider's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<Algorithm>,
    /// Whether every ID token must carry `auth_time` (OIDC Registration §2).
    #[serde(default)]
    pub require_auth_time: bool,
    /// A `max_age` applied when the request sends none (OIDC Registration §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_age: Option<u64>,
    /// A name to show the end-user on the consent page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Where the end-user may be sent after logging out, compared as exact strings
    /// (OIDC RP-Initiated Logout section 3.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where the provider POSTs a logout token when a session the client took part in ends
    /// (OIDC Back-Channel Logout section 2.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// Whether the client needs `sid` in logout tokens (and so in ID tokens).
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    /// The resource indicator (RFC 8707) of a resource server, an absolute URI: a client
    /// with one is that resource server's credential. It introspects the tokens meant for
    /// the resource (RFC 7662) and has no grant, response type or redirect URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// How the client's access tokens are made (opaque unless it registered `jwt`).
    #[serde(default, skip_serializing_if = "AccessTokenFormat::is_opaque")]
    pub access_token_format: AccessTokenFormat,
    /// The client's public keys (a JWKS document), which verify its `private_key_jwt`
    /// assertions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its public keys instead (RFC 7591 §2): https, or http on a
    /// loopback host. The driver fetches the document when an assertion needs it
    /// ([`crate::flow::TokenNeed::ClientKeys`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// How long this client's access tokens live, in seconds; the provider's default when
    /// absent (Authlib's per-client `get_jwt_config`, with the alg above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_lifetime: Option<u64>,
    /// How long this client's ID tokens live, in seconds; the provider's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_lifetime: Option<u64>,
}

/// Whether `uri` may be a client's `jwks_uri`: https, or http on a loopback host (a client
/// under development), without a fragment.
pub fn is_jwks_uri(uri: &str) -> bool {
    let Ok(url) = url::Url::parse(uri) else {
        return false;
    };
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    url.fragment().is_none()
        && uri.len() <= 2048
        && (url.scheme() == "https" || (url.scheme() == "http" && loopback))
}

/// Shortest token lifetime a client may register (seconds).
pub const MIN_TOKEN_LIFETIME: u64 = 60;
/// Longest token lifetime a client may register (seconds): one day.
pub const MAX_TOKEN_LIFETIME: u64 = crate::effect::MAX_ACCESS_TOKEN_SECONDS.unsigned_abs();

fn default_response_types() -> Vec<ResponseType> {
    vec![ResponseType::CODE]
}

fn default_grant_types() -> Vec<GrantType> {
    vec![GrantType::AuthorizationCode]
}

fn default_scope() -> Scope {
    Scope::from_tokens(["openid", "profile", "email", "address", "phone"]).unwrap_or_default()
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("has_secret", &self.has_secret())
            .field("redirect_uris", &self.redirect_uris)
            .field("response_types", &self.response_types)
            .field("grant_types", &self.grant_types)
            .field("scope", &self.scope)
            .field(
                "token_endpoint_auth_method",
                &self.token_endpoint_auth_method,
            )
            .field(
                "id_token_signed_response_alg",
                &self.id_token_signed_response_alg,
            )
            .field("resource", &self.resource)
            .field("access_token_format", &self.access_token_format)
            .field("has_jwks", &self.jwks.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a client registration is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The client id is empty or too long.
    #[error("client_id must be 1 to 255 printable ASCII characters")]
    BadClientId,
    /// No redirect URI is registered.
    #[error("at least one redirect URI must be registered")]
    NoRedirectUri,
    /// A redirect URI is not an absolute URI without a fragment (RFC 6749 §3.1.2).
    #[error("redirect URI `{0}` must be an absolute URI without a fragment")]
    BadRedirectUri(String),
    /// A confidential client has no secret, or a public client has one.
    #[error("{0}")]
    SecretMismatch(&'static str),
    /// HS* ID tokens need the secret in clear.
    #[error("an {0} ID token is keyed with the client secret, which must be kept in clear")]
    HmacNeedsSecret(Algorithm),
    /// A response type is registered without its grant type (RFC 7591 §2.1).
    #[error("response type `{0}` needs grant type `{1}`")]
    GrantTypeMissing(ResponseType, String),
    /// A grant type that is neither one the core runs nor a valid extension grant name.
    #[error(
        "unsupported grant type `{0}`: use authorization_code, implicit, refresh_token, client_credentials, password, or an extension grant's absolute URI"
    )]
    BadGrantType(String),
    /// A URI uses a scheme that runs code or reads local files in the browser.
    #[error("URI `{0}` uses a scheme that is never allowed (javascript, data, file, vbscript)")]
    DangerousScheme(String),
    /// A plain-http URI names a host other than a loopback one.
    #[error(
        "URI `{0}` is plain http on a host that is not loopback: use https (or allow insecure redirects)"
    )]
    InsecureRedirect(String),
    /// A private-use scheme (RFC 8252 section 7.1) registered by a confidential client, or one
    /// that is not a reversed domain name.
    #[error(
        "URI `{0}` uses a private-use scheme: only public (native) clients may, with a reversed domain name such as com.example.app"
    )]
    PrivateUseScheme(String),
    /// The client's HS* ID tokens would be keyed with a secret shorter than the hash output.
    #[error(
        "an {alg} ID token needs a client secret of at least {min} characters (RFC 7518 section 3.2)"
    )]
    SecretTooShort {
        /// The algorithm.
        alg: Algorithm,
        /// The shortest acceptable secret.
        min: usize,
    },
    /// A back-channel logout URI is not an absolute http(s) URI without a fragment.
    #[error(
        "backchannel_logout_uri `{0}` must be an absolute http or https URI without a fragment"
    )]
    BadLogoutUri(String),
    /// A resource server's credential with a grant, a response type or a redirect URI, a
    /// secret it cannot authenticate with, or a resource that is not an absolute URI without
    /// a fragment (RFC 8707 section 2).
    #[error("resource server `{0}`: {1}")]
    BadResourceServer(String, &'static str),
    /// `client_secret_jwt` without a long enough secret in clear, or `private_key_jwt`
    /// without usable public keys (or with private ones).
    #[error("{0}")]
    BadAssertionKeys(&'static str),
    /// A token lifetime outside [`MIN_TOKEN_LIFETIME`]..=[`MAX_TOKEN_LIFETIME`].
    #[error("{0} must be between 60 seconds and one day")]
    BadLifetime(&'static str),
    /// A public client registered the client credentials grant, which needs a client that
    /// can authenticate (RFC 6749 section 4.4).
    #[error("only a confidential client may use the client_credentials grant")]
    PublicClientCredentials,
}

/// Schemes never accepted in a redirect URI: they run script or read local files.
const DANGEROUS_SCHEMES: [&str; 4] = ["javascript", "data", "file", "vbscript"];

/// Whether `host` is a loopback host (RFC 8252 section 7.3, 8.3).
fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// An absolute URI without a fragment whose scheme is not one of [`DANGEROUS_SCHEMES`].
fn check_uri(uri: &str) -> Result<url::Url, ClientError> {
    let parsed = match url::Url::parse(uri) {
        Ok(u) if u.fragment().is_none() => u,
        _ => return Err(ClientError::BadRedirectUri(uri.to_owned())),
    };
    if DANGEROUS_SCHEMES.contains(&parsed.scheme()) {
        return Err(ClientError::DangerousScheme(uri.to_owned()));
    }
    if parsed.cannot_be_a_base() && matches!(parsed.scheme(), "http" | "https") {
        return Err(ClientError::BadRedirectUri(uri.to_owned()));
    }
    Ok(parsed)
}

impl Client {
    /// Checks the registration is coherent: redirect URIs, secret and auth method, alg and secret,
    /// response types and grant types.
    pub fn validate(self) -> Result<Self, ClientError> {
        if self.client_id.is_empty()
            || self.client_id.len() > 255
            || !self.client_id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ClientError::BadClientId);
        }
        if self.redirect_uris.is_empty() && self.uses_redirects() {
            return Err(ClientError::NoRedirectUri);
        }
        if let Some(resource) = &self.resource {
            let bad = |why| Err(ClientError::BadResourceServer(resource.clone(), why));
            match url::Url::parse(resource) {
                Ok(u) if u.fragment().is_none() && !u.cannot_be_a_base() => {}
                _ => return bad("the resource must be an absolute URI without a fragment"),
            }
            if self.uses_redirects()
                || !self.grant_types.is_empty()
                || !self.redirect_uris.is_empty()
            {
                return bad("a resource server has no grant, response type or redirect URI");
            }
            if self.is_public() {
                return bad("a resource server authenticates with a secret");
            }
        }
        for (name, lifetime) in [
            ("access_token_lifetime", self.access_token_lifetime),
            ("id_token_lifetime", self.id_token_lifetime),
        ] {
            if lifetime.is_some_and(|l| !(MIN_TOKEN_LIFETIME..=MAX_TOKEN_LIFETIME).contains(&l)) {
                return Err(ClientError::BadLifetime(name));
            }
        }
        if self.is_public() && self.allows_grant(GrantType::ClientCredentials) {
            return Err(ClientError::PublicClientCredentials);
        }
        for grant in &self.grant_types {
            if let GrantType::Extension(name) = grant
                && !GrantType::is_valid_extension(name)
            {
                return Err(ClientError::BadGrantType(name.clone()));
            }
        }
        for uri in self
            .redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris)
        {
            check_uri(uri)?;
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            match url::Url::parse(uri) {
                Ok(u) if u.fragment().is_none() && matches!(u.scheme(), "http" | "https") => {}
                _ => return Err(ClientError::BadLogoutUri(uri.clone())),
            }
        }
        match (self.token_endpoint_auth_method, self.has_secret()) {
            (AuthMethod::None, true) => {
                return Err(ClientError::SecretMismatch(
                    "a public client (token_endpoint_auth_method none) has no secret",
                ));
            }
            (AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost, false) => {
                return Err(ClientError::SecretMismatch(
                    "a confidential client needs a client secret",
                ));
            }
            // HS256 needs a key as long as its output (RFC 7518 section 3.2).
            (AuthMethod::ClientSecretJwt, _)
                if self.client_secret.as_ref().is_none_or(|s| s.len() < 32) =>
            {
                return Err(ClientError::BadAssertionKeys(
                    "client_secret_jwt needs the client secret in clear, at least 32 bytes",
                ));
            }
            (AuthMethod::PrivateKeyJwt, has_secret) => {
                let jwks = self.jwks.as_ref().and_then(|j| j.get("keys"));
                let keys = jwks.and_then(serde_json::Value::as_array);
                let private = ["d", "p", "q", "dp", "dq", "qi", "k"];
                if keys.is_some_and(|k| {
                    k.iter()
                        .any(|key| private.iter().any(|m| key.get(m).is_some()))
                }) {
                    return Err(ClientError::BadAssertionKeys(
                        "the client's jwks must hold public keys only",
                    ));
                }
                match (&self.jwks, &self.jwks_uri) {
                    (Some(_), Some(_)) => {
                        return Err(ClientError::BadAssertionKeys(
                            "register the client's keys as jwks or as jwks_uri, not both",
                        ));
                    }
                    (None, Some(uri)) if !is_jwks_uri(uri) => {
                        return Err(ClientError::BadAssertionKeys(
                            "jwks_uri must be an https URL (http only on a loopback host) without a fragment",
                        ));
                    }
                    (None, Some(_)) => {}
                    _ if crate::assertion::usable_key_count(&self) == 0 => {
                        return Err(ClientError::BadAssertionKeys(
                            "private_key_jwt needs the client's public keys (jwks or jwks_uri)",
                        ));
                    }
                    _ => {}
                }
                if has_secret {
                    return Err(ClientError::SecretMismatch(
                        "a private_key_jwt client has no secret",
                    ));
                }
            }
            _ => {}
        }
        if let Some(alg) = self.id_token_signed_response_alg
            && alg.is_symmetric()
        {
            let Some(secret) = &self.client_secret else {
                return Err(ClientError::HmacNeedsSecret(alg));
            };
            let min = alg.min_hmac_key_len();
            if secret.len() < min {
                return Err(ClientError::SecretTooShort { alg, min });
            }
        }
        for rt in &self.response_types {
            for needed in rt.needs_grant_types() {
                if !self.grant_types.contains(&needed) {
                    return Err(ClientError::GrantTypeMissing(
                        *rt,
                        needed.as_str().to_owned(),
                    ));
                }
            }
        }
        Ok(self)
    }

    /// The registration policy for redirect and post-logout URIs, checked when a client is
    /// registered or changed (not on every request: a client registered under a looser
    /// policy keeps working):
    /// plain `http` only for loopback hosts unless `allow_insecure`; schemes other than http
    /// and https only for public clients, as RFC 8252 section 7.1 private-use schemes (a
    /// reversed domain name with a dot, such as `com.example.app:/cb`).
    pub fn check_redirect_policy(&self, allow_insecure: bool) -> Result<(), ClientError> {
        for uri in self
            .redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris)
        {
            let parsed = check_uri(uri)?;
            match parsed.scheme() {
                "https" => {}
                "http" if allow_insecure || is_loopback_host(&parsed) => {}
                "http" => return Err(ClientError::InsecureRedirect(uri.clone())),
                scheme if self.is_public() && scheme.contains('.') => {}
                _ => return Err(ClientError::PrivateUseScheme(uri.clone())),
            }
        }
        if let Some(uri) = &self.backchannel_logout_uri
            && let Ok(parsed) = url::Url::parse(uri)
            && parsed.scheme() == "http"
            && !allow_insecure
            && !is_loopback_host(&parsed)
        {
            return Err(ClientError::InsecureRedirect(uri.clone()));
        }
        Ok(())
    }

    /// Whether `uri` is a registered post-logout redirect URI, compared as an exact string.
    pub fn has_post_logout_redirect_uri(&self, uri: &str) -> bool {
        self.post_logout_redirect_uris.iter().any(|u| u == uri)
    }

    /// Whether the client is public (no secret; RFC 6749 §2.1).
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == AuthMethod::None
    }

    /// Whether a secret of either form is registered.
    pub fn has_secret(&self) -> bool {
        self.client_secret.is_some() || self.client_secret_sha256.is_some()
    }

    /// Whether `uri` is registered, compared as an exact string.
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|u| u == uri)
    }

    /// Checks a presented secret in constant time.
    ///
    /// Digests of equal length are compared, so neither the secret's content nor its length leaks.
    pub fn verify_secret(&self, presented: &str) -> bool {
        let presented = SecretHash::of(presented);
        if let Some(stored) = &self.client_secret_sha256 {
            return presented.ct_eq(stored);
        }
        if let Some(clear) = &self.client_secret {
            return presented.ct_eq(&SecretHash::of(clear));
        }
        false
    }

    /// Whether the client sends end-users to the authorization endpoint (a response type or
    /// a grant that starts there), so it needs a redirect URI.
    pub fn uses_redirects(&self) -> bool {
        !self.response_types.is_empty()
            || self.allows_grant(GrantType::AuthorizationCode)
            || self.allows_grant(GrantType::Implicit)
    }

    /// Whether this is a resource server's credential (it registered a `resource`).
    pub fn is_resource_server(&self) -> bool {
        self.resource.is_some()
    }

    /// Whether the client registered `grant`.
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether the client registered the grant type named `name` (an extension grant's URI).
    pub fn allows_grant_named(&self, name: &str) -> bool {
        self.grant_types.iter().any(|g| g.as_str() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_types_in_any_order() {
        assert_eq!(
            ResponseType::parse("token id_token code"),
            Some(ResponseType::CODE_ID_TOKEN_TOKEN)
        );
        assert_eq!(ResponseType::parse("token"), None);
        assert_eq!(ResponseType::parse("code code"), None);
        assert_eq!(ResponseType::parse("code  token"), None);
        assert_eq!(ResponseType::parse("none"), None);
        for rt in ResponseType::ALL {
            assert_eq!(ResponseType::parse(rt.as_str()), Some(rt));
        }
    }

    #[test]
    fn registration_json_uses_rfc7591_names() {
        let c: Client = serde_json::from_str(
            r#"{"client_id":"c1","client_secret":"s3cret-of-at-least-thirty-two-bytes","redirect_uris":["https://rp.example/cb"],
                "response_types":["code","code id_token"],"grant_types":["authorization_code","implicit"],
                "scope":"openid email","token_endpoint_auth_method":"client_secret_post",
                "id_token_signed_response_alg":"HS256"}"#,
        )
        .unwrap();
        let c = c.validate().unwrap();
        assert!(c.verify_secret("s3cret-of-at-least-thirty-two-bytes"));
        assert!(!c.verify_secret("s3cret-of-at-least-thirty-two-byte"));
        assert!(!c.verify_secret("s3cret-of-at-least-thirty-two-bytes "));
        assert!(c.has_redirect_uri("https://rp.example/cb"));
        assert!(!c.has_redirect_uri("https://rp.example/cb/"));
    }

    #[test]
    fn rejects_incoherent_registrations() {
        let base: Client = serde_json::from_str(
            r#"{"client_id":"c1","client_secret":"s","redirect_uris":["https://rp.example/cb"]}"#,
        )
        .unwrap();
        let mut c = base.clone();
        c.redirect_uris = vec!["https://rp.example/cb#x".into()];
        assert!(matches!(c.validate(), Err(ClientError::BadRedirectUri(_))));
        let mut c = base.clone();
        c.token_endpoint_auth_method = AuthMethod::None;
        assert!(matches!(c.validate(), Err(ClientError::SecretMismatch(_))));
        let mut c = base.clone();
        c.response_types = vec![ResponseType::ID_TOKEN];
        assert!(matches!(
            c.validate(),
            Err(ClientError::GrantTypeMissing(..))
        ));
        let mut c = base;
        c.client_secret = None;
        c.client_secret_sha256 = Some(SecretHash::of("s"));
        c.id_token_signed_response_alg = Some(Algorithm::HS256);
        assert!(matches!(c.validate(), Err(ClientError::HmacNeedsSecret(_))));
    }

    fn registration(secret: Option<&str>, method: &str, uris: &[&str]) -> Client {
        let c: Client = serde_json::from_value(serde_json::json!({
            "client_id": "c1",
            "client_secret": secret,
            "token_endpoint_auth_method": method,
            "redirect_uris": uris,
        }))
        .unwrap();
        c
    }

    #[test]
    fn dangerous_schemes_are_never_registered() {
        for uri in [
            "javascript://x/%0aalert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "vbscript:msgbox",
            "JavaScript://x/",
        ] {
            let c = registration(None, "none", &[uri]);
            let err = c.validate().unwrap_err();
            assert!(
                matches!(
                    err,
                    ClientError::DangerousScheme(_) | ClientError::BadRedirectUri(_)
                ),
                "{uri}: {err:?}"
            );
        }
    }

    #[test]
    fn redirect_policy_http_only_on_loopback_and_private_schemes_only_for_public_clients() {
        let ok = |secret: Option<&str>, method: &str, uri: &str, insecure: bool| {
            registration(secret, method, &[uri])
                .validate()
                .and_then(|c| c.check_redirect_policy(insecure))
        };
        let s = Some("s");
        assert!(ok(s, "client_secret_basic", "https://rp.example/cb", false).is_ok());
        for loopback in [
            "http://127.0.0.1:8080/cb",
            "http://localhost/cb",
            "http://[::1]:9/cb",
        ] {
            assert!(
                ok(s, "client_secret_basic", loopback, false).is_ok(),
                "{loopback}"
            );
        }
        assert!(matches!(
            ok(s, "client_secret_basic", "http://rp.example/cb", false),
            Err(ClientError::InsecureRedirect(_))
        ));
        assert!(ok(s, "client_secret_basic", "http://rp.example/cb", true).is_ok());
        assert!(ok(None, "none", "com.example.app:/cb", false).is_ok());
        assert!(matches!(
            ok(s, "client_secret_basic", "com.example.app:/cb", false),
            Err(ClientError::PrivateUseScheme(_))
        ));
        assert!(matches!(
            ok(None, "none", "myapp:/cb", false),
            Err(ClientError::PrivateUseScheme(_))
        ));
    }

    #[test]
    fn hmac_secrets_are_at_least_as_long_as_the_hash() {
        for (alg, min) in [
            (Algorithm::HS256, 32),
            (Algorithm::HS384, 48),
            (Algorithm::HS512, 64),
        ] {
            let mut c = registration(
                Some(&"k".repeat(min - 1)),
                "client_secret_basic",
                &["https://rp.example/cb"],
            );
            c.id_token_signed_response_alg = Some(alg);
            assert_eq!(
                c.clone().validate().unwrap_err(),
                ClientError::SecretTooShort { alg, min }
            );
            c.client_secret = Some("k".repeat(min));
            assert!(c.validate().is_ok());
        }
    }
}
