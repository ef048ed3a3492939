//! The authorization endpoint as a typestate machine (RFC 6749 §4, OIDC Core §3).
//!
//! ```text
//! Received::from_query / from_form            syntax; client_id known
//!   └─ bind_client(Option<Client>) ─► ClientBound      redirect URI verified: errors redirect from here
//!        └─ validate(&Provider) ─► Validated           response_type, scope, nonce, prompt, PKCE, hint
//!             └─ nonce_seen(bool) ─► Checked           replay check answered
//!                  └─ decide(session, consent, now) ─► Decision
//!                       ├─ Login(AwaitingLogin) ── logged_in(..) ─► Decision
//!                       ├─ Consent(AwaitingConsent) ── answer(..) ─► Authorized
//!                       ├─ Error(ErrorRedirect)
//!                       └─ Authorized ── issue(..) ─► Completed<Redirect>
//! ```
//!
//! Before the redirect URI is verified every failure is an [`ErrorPage`]; after, an
//! [`ErrorRedirect`]. No value that can issue exists before [`Authorized`].

use std::fmt;

use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::claims::UserInfo;
use crate::client::{Client, ResponseMode, ResponseType};
use crate::effect::{
    Authentication, CodeRecord, Completed, ConsentRecord, Effect, NonceRecord, PkceChallenge,
    PkceMethod,
};
use crate::error::{ErrorCode, OAuthError, ParseError};
use crate::idtoken::{self, IdTokenInput};
use crate::jws::{self, Signer};
use crate::params::Params;
use crate::parking::{self, ParkingSecret};
use crate::pkce;
use crate::provider::Provider;
use crate::response::{AuthorizationParams, ErrorPage, ErrorParams, ErrorRedirect, Redirect};
use crate::scope::Scope;
use crate::secret::{GrantId, MintedSecret, SecretHash};

/// Largest authorization request accepted, as a query string or form body.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// How long an authorization may wait for login and consent (parked requests expire then).
pub const PENDING_LIFETIME: time::Duration = time::Duration::minutes(15);

const MAX_CLIENT_ID: usize = 255;
const MAX_URI: usize = 2048;
const MAX_STATE: usize = 2048;
const MAX_NONCE: usize = 512;
const MAX_HINT: usize = 8192;
const MAX_SHORT: usize = 1024;

/// The request's parameters as sent, checked for syntax only.
#[derive(Debug, Clone, Default)]
struct RawRequest {
    client_id: String,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    response_mode: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    display: Option<String>,
    prompt: Option<String>,
    max_age: Option<String>,
    ui_locales: Option<String>,
    claims_locales: Option<String>,
    id_token_hint: Option<String>,
    login_hint: Option<String>,
    acr_values: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    request: Option<String>,
    request_uri: Option<String>,
    claims: Option<String>,
    registration: Option<String>,
}

/// A parsed authorization request whose client is not yet known.
#[must_use = "bind the client next"]
#[derive(Debug)]
pub struct Received {
    raw: RawRequest,
    /// A problem found while parsing that is redirected once the redirect URI is trusted.
    deferred: Option<OAuthError>,
}

impl Received {
    /// Parses the query string of a GET (without the leading `?`).
    pub fn from_query(query: &[u8]) -> Result<Self, ErrorPage> {
        Self::parse(query)
    }

    /// Parses the `application/x-www-form-urlencoded` body of a POST (OIDC Core §3.1.2.1).
    pub fn from_form(body: &[u8]) -> Result<Self, ErrorPage> {
        Self::parse(body)
    }

    fn parse(input: &[u8]) -> Result<Self, ErrorPage> {
        let page = |e: ParseError| ErrorPage::new(ErrorCode::InvalidRequest, e.to_string());
        let (mut params, repeated) =
            Params::parse_lenient(input, MAX_REQUEST_BYTES).map_err(page)?;
        let mut deferred: Option<OAuthError> = None;
        if let Some(name) = repeated {
            if name == "client_id" || name == "redirect_uri" {
                return Err(page(ParseError::Repeated(name)));
            }
            deferred = Some(ParseError::Repeated(name).into());
        }
        let client_id = params
            .take_limited("client_id", MAX_CLIENT_ID)
            .map_err(page)?
            .ok_or_else(|| {
                ErrorPage::new(
                    ErrorCode::InvalidRequest,
                    "the client_id parameter is missing",
                )
            })?;
        let redirect_uri = params.take_limited("redirect_uri", MAX_URI).map_err(page)?;
        let mut take = |name: &'static str, limit: usize| match params.take_limited(name, limit) {
            Ok(v) => v,
            Err(e) => {
                deferred.get_or_insert(e.into());
                None
            }
        };
        let raw = RawRequest {
            client_id,
            redirect_uri,
            response_type: take("response_type", MAX_SHORT),
            response_mode: take("response_mode", MAX_SHORT),
            scope: take("scope", crate::scope::MAX_SCOPE_LEN),
            state: take("state", MAX_STATE),
            nonce: take("nonce", MAX_NONCE),
            display: take("display", MAX_SHORT),
            prompt: take("prompt", MAX_SHORT),
            max_age: take("max_age", MAX_SHORT),
            ui_locales: take("ui_locales", MAX_SHORT),
            claims_locales: take("claims_locales", MAX_SHORT),
            id_token_hint: take("id_token_hint", MAX_HINT),
            login_hint: take("login_hint", MAX_SHORT),
            acr_values: take("acr_values", MAX_SHORT),
            code_challenge: take("code_challenge", MAX_SHORT),
            code_challenge_method: take("code_challenge_method", MAX_SHORT),
            request: take("request", MAX_HINT),
            request_uri: take("request_uri", MAX_URI),
            claims: take("claims", MAX_HINT),
            registration: take("registration", MAX_HINT),
        };
        // Parameters not listed are ignored, as OIDC Core §3.1.2.1 requires.
        Ok(Self { raw, deferred })
    }

    /// The client to look up and hand to [`Received::bind_client`].
    pub fn client_id(&self) -> &str {
        &self.raw.client_id
    }

    /// Binds the registered client (or `None` if unknown) and verifies the redirect URI.
    ///
    /// Fails with an error page, never a redirect: until this succeeds nothing says where
    /// a redirect may safely go.
    pub fn bind_client(self, client: Option<Client>) -> Result<ClientBound, ErrorPage> {
        let raw = self.raw;
        let Some(client) = client else {
            return Err(ErrorPage::new(
                ErrorCode::InvalidClient,
                "the client_id is not registered",
            ));
        };
        if client.client_id != raw.client_id {
            return Err(ErrorPage::new(
                ErrorCode::InvalidClient,
                "the client record does not match the client_id",
            ));
        }
        let openid = raw
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|t| t == Scope::OPENID));
        let (redirect_uri, redirect_uri_in_request) = match raw.redirect_uri.as_deref() {
            Some(uri) if client.has_redirect_uri(uri) => (uri.to_owned(), true),
            Some(_) => {
                return Err(ErrorPage::new(
                    ErrorCode::InvalidRequest,
                    "the redirect_uri is not registered for this client",
                ));
            }
            None if openid => {
                return Err(ErrorPage::new(
                    ErrorCode::InvalidRequest,
                    "the redirect_uri parameter is required (OIDC Core section 3.1.2.1)",
                ));
            }
            None => match client.redirect_uris.as_slice() {
                [only] => (only.clone(), false),
                _ => {
                    return Err(ErrorPage::new(
                        ErrorCode::InvalidRequest,
                        "the redirect_uri parameter is required when several are registered",
                    ));
                }
            },
        };
        let response_type = raw.response_type.as_deref().and_then(ResponseType::parse);
        let error_mode = match (
            raw.response_mode.as_deref().and_then(ResponseMode::parse),
            response_type,
        ) {
            (Some(ResponseMode::Query), Some(rt)) if rt.returns_tokens() => rt.default_mode(),
            (Some(mode), _) => mode,
            (None, Some(rt)) => rt.default_mode(),
            // An unsupported response type that asks for tokens (`token` alone) is answered
            // where such a client reads: the fragment (RFC 6749 §4.2.2.1).
            (None, None)
                if raw
                    .response_type
                    .as_deref()
                    .is_some_and(|t| t.split(' ').any(|p| p == "token" || p == "id_token")) =>
            {
                ResponseMode::Fragment
            }
            (None, None) => ResponseMode::Query,
        };
        Ok(ClientBound {
            raw,
            deferred: self.deferred,
            client,
            target: Target {
                redirect_uri,
                mode: error_mode,
                state: None,
                issuer: String::new(),
            },
            redirect_uri_in_request,
        })
    }
}

/// Where redirects of this request go, and the state they echo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Target {
    redirect_uri: String,
    mode: ResponseMode,
    state: Option<String>,
    /// The provider's issuer, echoed as `iss` (RFC 9207).
    issuer: String,
}

impl Target {
    fn error(&self, error: OAuthError) -> ErrorRedirect {
        let params = ErrorParams {
            error: error.code.as_str(),
            error_description: &error.description,
            state: self.state.as_deref(),
            iss: &self.issuer,
        };
        let redirect = Redirect::new(self.redirect_uri.clone(), self.mode, &params);
        ErrorRedirect { error, redirect }
    }
}

/// A request whose client is registered and whose redirect URI is verified.
#[must_use = "validate the request next"]
#[derive(Debug)]
pub struct ClientBound {
    raw: RawRequest,
    deferred: Option<OAuthError>,
    client: Client,
    target: Target,
    redirect_uri_in_request: bool,
}

/// The `prompt` values of OIDC Core §3.1.2.1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// `none`: no page may be shown.
    pub none: bool,
    /// `login`: the end-user must authenticate again.
    pub login: bool,
    /// `consent`: the end-user must be asked for consent.
    pub consent: bool,
    /// `select_account`: the end-user must choose an account.
    pub select_account: bool,
}

impl Prompt {
    fn parse(input: &str) -> Result<Self, OAuthError> {
        let mut p = Self::default();
        for value in input.split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => p.none = true,
                "login" => p.login = true,
                "consent" => p.consent = true,
                "select_account" => p.select_account = true,
                _ => {
                    return Err(OAuthError::invalid_request(format!(
                        "unsupported prompt value `{}`",
                        value.chars().take(40).collect::<String>()
                    )));
                }
            }
        }
        if p.none && (p.login || p.consent || p.select_account) {
            return Err(OAuthError::invalid_request(
                "prompt=none cannot be combined with other values",
            ));
        }
        Ok(p)
    }
}

/// Everything about a validated request that later steps and resumed requests need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Context {
    client_id: String,
    target: Target,
    redirect_uri_in_request: bool,
    response_type: ResponseType,
    scope: Scope,
    nonce: Option<String>,
    prompt: Prompt,
    max_age: Option<u64>,
    hint_subject: Option<String>,
    login_hint: Option<String>,
    display: Option<String>,
    ui_locales: Option<String>,
    claims_locales: Option<String>,
    acr_values: Option<String>,
    pkce: Option<PkceChallenge>,
    include_auth_time: bool,
}

impl ClientBound {
    /// The bound client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The verified redirect URI.
    pub fn redirect_uri(&self) -> &str {
        &self.target.redirect_uri
    }

    /// Checks everything but the end-user: response type and mode, scope, nonce rules,
    /// prompt, max_age, id_token_hint and PKCE. Errors are redirected.
    pub fn validate(self, provider: &Provider) -> Result<Validated, ErrorRedirect> {
        let mut target = self.target;
        target.state = self.raw.state.clone();
        target.issuer = provider.issuer.clone();
        let fail = |target: &Target, e: OAuthError| Err(target.error(e));
        if let Some(e) = self.deferred {
            return fail(&target, e);
        }
        match check(&self.raw, &self.client, provider, &mut target) {
            Ok(parts) => Ok(Validated {
                client: self.client,
                ctx: Context {
                    client_id: self.raw.client_id,
                    target,
                    redirect_uri_in_request: self.redirect_uri_in_request,
                    response_type: parts.response_type,
                    scope: parts.scope,
                    nonce: self.raw.nonce,
                    prompt: parts.prompt,
                    max_age: parts.max_age,
                    hint_subject: parts.hint_subject,
                    login_hint: self.raw.login_hint,
                    display: self.raw.display,
                    ui_locales: self.raw.ui_locales,
                    claims_locales: self.raw.claims_locales,
                    acr_values: self.raw.acr_values,
                    pkce: parts.pkce,
                    include_auth_time: parts.include_auth_time,
                },
            }),
            Err(e) => fail(&target, e),
        }
    }
}

struct CheckedParts {
    response_type: ResponseType,
    scope: Scope,
    prompt: Prompt,
    max_age: Option<u64>,
    hint_subject: Option<String>,
    pkce: Option<PkceChallenge>,
    include_auth_time: bool,
}

fn check(
    raw: &RawRequest,
    client: &Client,
    provider: &Provider,
    target: &mut Target,
) -> Result<CheckedParts, OAuthError> {
    if raw.request.is_some() {
        return Err(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "request objects (the request parameter) are not supported",
        ));
    }
    if raw.request_uri.is_some() {
        return Err(OAuthError::new(
            ErrorCode::RequestUriNotSupported,
            "the request_uri parameter is not supported",
        ));
    }
    if raw.registration.is_some() {
        return Err(OAuthError::new(
            ErrorCode::RegistrationNotSupported,
            "the registration parameter is not supported",
        ));
    }
    let Some(rt_text) = raw.response_type.as_deref() else {
        return Err(OAuthError::invalid_request(
            "the response_type parameter is missing",
        ));
    };
    let Some(response_type) = ResponseType::parse(rt_text) else {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedResponseType,
            "the response_type is not supported (supported: code, id_token, id_token token, code id_token, code token, code id_token token)",
        ));
    };
    if !client.response_types.contains(&response_type) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!("the client is not registered for response_type {response_type}"),
        ));
    }
    for grant in response_type.needs_grant_types() {
        if !client.allows_grant_named(grant.as_str()) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                format!(
                    "the client is not registered for the {} grant",
                    grant.as_str()
                ),
            ));
        }
    }
    if let Some(mode) = raw.response_mode.as_deref() {
        match ResponseMode::parse(mode) {
            None => {
                return Err(OAuthError::invalid_request(
                    "unsupported response_mode (supported: query, fragment, form_post)",
                ));
            }
            Some(ResponseMode::Query) if response_type.returns_tokens() => {
                return Err(OAuthError::invalid_request(
                    "response_mode=query cannot carry tokens (OAuth 2.0 Multiple Response Types section 5)",
                ));
            }
            Some(m) => target.mode = m,
        }
    } else {
        target.mode = response_type.default_mode();
    }

    let Some(scope_text) = raw.scope.as_deref() else {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "the scope parameter is missing",
        ));
    };
    let scope = Scope::parse(scope_text)
        .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?;
    if scope.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "the scope is empty",
        ));
    }
    let unknown: Vec<&str> = scope
        .not_in(&provider.scopes_supported)
        .chain(scope.not_in(&client.scope))
        .collect();
    if let Some(bad) = unknown.first() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            format!("the scope `{bad}` is not allowed for this client"),
        ));
    }
    if response_type.id_token && !scope.is_openid() {
        return Err(OAuthError::invalid_request(
            "a response_type with id_token needs the openid scope",
        ));
    }

    if response_type.id_token && raw.nonce.is_none() {
        return Err(OAuthError::invalid_request(
            "the nonce parameter is required when an ID token is returned from the authorization endpoint (OIDC Core section 3.2.2.1, section 3.3.2.11)",
        ));
    }
    if provider.require_nonce && scope.is_openid() && raw.nonce.is_none() {
        return Err(OAuthError::invalid_request(
            "this provider requires a nonce in every OpenID request",
        ));
    }

    let prompt = match raw.prompt.as_deref() {
        Some(p) => Prompt::parse(p)?,
        None => Prompt::default(),
    };
    let max_age = match raw.max_age.as_deref() {
        Some(v) => Some(parse_max_age(v)?),
        None => client.default_max_age,
    };

    if let Some(claims) = raw.claims.as_deref() {
        // OIDC Core §5.5 makes support optional; discovery says claims_parameter_supported=false.
        // A well-formed value is ignored, a malformed one is the client's error.
        if !matches!(
            serde_json::from_str::<serde_json::Value>(claims),
            Ok(serde_json::Value::Object(_))
        ) {
            return Err(OAuthError::invalid_request(
                "the claims parameter must be a JSON object",
            ));
        }
    }

    let hint_subject = match raw.id_token_hint.as_deref() {
        Some(hint) => Some(verify_hint(hint, client, provider)?),
        None => None,
    };

    let pkce = match (
        raw.code_challenge.as_deref(),
        raw.code_challenge_method.as_deref(),
    ) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(OAuthError::invalid_request(
                "code_challenge_method was sent without code_challenge",
            ));
        }
        (Some(challenge), method) => {
            let method = match method {
                None | Some("plain") => PkceMethod::Plain,
                Some("S256") => PkceMethod::S256,
                Some(_) => {
                    return Err(OAuthError::invalid_request(
                        "unsupported code_challenge_method (supported: S256, plain)",
                    ));
                }
            };
            if !pkce::is_valid_challenge(challenge, method) {
                return Err(OAuthError::invalid_request(
                    "the code_challenge is malformed (RFC 7636 section 4.2)",
                ));
            }
            Some(PkceChallenge {
                challenge: challenge.to_owned(),
                method,
            })
        }
    };
    if pkce.is_none()
        && response_type.code
        && client.is_public()
        && provider.require_pkce_for_public_clients
    {
        return Err(OAuthError::invalid_request(
            "public clients must use PKCE (code_challenge)",
        ));
    }
    if provider.signer_for(client).is_none() && (scope.is_openid() || response_type.id_token) {
        return Err(OAuthError::new(
            ErrorCode::ServerError,
            format!(
                "no key signs {} ID tokens for this client",
                provider.id_token_alg(client)
            ),
        ));
    }
    Ok(CheckedParts {
        response_type,
        scope,
        prompt,
        include_auth_time: max_age.is_some() || client.require_auth_time,
        max_age,
        hint_subject,
        pkce,
    })
}

fn parse_max_age(v: &str) -> Result<u64, OAuthError> {
    if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OAuthError::invalid_request(
            "max_age must be a non-negative integer number of seconds",
        ));
    }
    v.parse::<u64>().map_err(|_| {
        OAuthError::invalid_request("max_age must be a non-negative integer number of seconds")
    })
}

/// Checks an `id_token_hint`: an ID token we issued to this client, signature and `iss`
/// checked, expiry not (OIDC Core §3.1.2.1). Returns its `sub`.
fn verify_hint(hint: &str, client: &Client, provider: &Provider) -> Result<String, OAuthError> {
    verify_id_token_hint(hint, client, provider).map(|h| h.subject)
}

/// What a verified `id_token_hint` says about the end-user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerifiedHint {
    /// Its `sub`.
    pub subject: String,
    /// Its `sid`, when the ID token carried one.
    pub sid: Option<String>,
}

/// Checks an `id_token_hint` (at the authorization and end-session endpoints): an ID token
/// this provider issued to `client`, signature and `iss` checked, expiry not.
pub(crate) fn verify_id_token_hint(
    hint: &str,
    client: &Client,
    provider: &Provider,
) -> Result<VerifiedHint, OAuthError> {
    let bad = |why: &str| OAuthError::invalid_request(format!("invalid id_token_hint: {why}"));
    let verified = jws::decode_verify(hint, |alg, kid| {
        if alg.is_symmetric() {
            client.client_secret.as_deref().map(|s| Signer::Hmac {
                alg,
                secret: s.as_bytes(),
            })
        } else {
            match kid {
                Some(kid) => provider.keys.get(kid),
                None => provider.keys.for_algorithm(alg),
            }
            .filter(|k| k.algorithm() == alg)
            .map(Signer::Key)
        }
    })
    .map_err(|e| bad(&e.to_string()))?;
    let claims = &verified.claims;
    if claims.get("iss").and_then(|v| v.as_str()) != Some(provider.issuer.as_str()) {
        return Err(bad("not issued by this provider"));
    }
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => *a == client.client_id,
        Some(serde_json::Value::Array(list)) => {
            list.iter().any(|a| a.as_str() == Some(&client.client_id))
        }
        _ => false,
    };
    if !aud_ok {
        return Err(bad("not issued to this client"));
    }
    let subject = claims
        .get("sub")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or_else(|| bad("it has no sub"))?;
    let sid = claims
        .get("sid")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Ok(VerifiedHint { subject, sid })
}

/// A valid request whose nonce may still need the replay check.
#[must_use = "answer the nonce replay check next"]
#[derive(Debug)]
pub struct Validated {
    client: Client,
    ctx: Context,
}

impl Validated {
    /// The nonce to claim, when the provider checks replays and the request carries one.
    ///
    /// The store claims it atomically (insert unless an unexpired one exists) *now*, when the
    /// request is validated, so two concurrent requests with one nonce cannot both pass.
    /// It is remembered as long as an ID token carrying it can be issued and stay valid:
    /// the longest wait for login and consent, then the code's and the ID token's lifetimes.
    /// Answer with [`Validated::nonce_claimed`] either way.
    pub fn nonce_to_claim(&self, provider: &Provider, now: OffsetDateTime) -> Option<NonceRecord> {
        if !provider.check_nonce_replay {
            return None;
        }
        let nonce = self.ctx.nonce.as_ref()?;
        Some(NonceRecord {
            client_id: self.ctx.client_id.clone(),
            nonce: nonce.clone(),
            expires_at: now
                + PENDING_LIFETIME
                + provider.code_lifetime
                + provider.id_token_lifetime_for(&self.client),
        })
    }

    /// The client of the replay lookup (nonces are remembered per client).
    pub fn client_id(&self) -> &str {
        &self.ctx.client_id
    }

    /// The request's nonce, if it sent one.
    pub fn nonce(&self) -> Option<&str> {
        self.ctx.nonce.as_deref()
    }

    /// Takes the answer of the replay claim: `true` when this request claimed its nonce (or no
    /// claim was asked for), `false` when the client already used it.
    pub fn nonce_claimed(self, claimed: bool) -> Result<Checked, ErrorRedirect> {
        if !claimed && self.ctx.nonce.is_some() {
            return Err(self.ctx.target.error(OAuthError::invalid_request(
                "the nonce was already used by this client",
            )));
        }
        Ok(Checked {
            client: self.client,
            ctx: self.ctx,
        })
    }
}

/// A valid request, ready to be judged against the end-user's session.
#[must_use = "decide with the session next"]
#[derive(Debug)]
pub struct Checked {
    client: Client,
    ctx: Context,
}

/// What happens next with an authorization request.
#[must_use]
#[derive(Debug)]
pub enum Decision {
    /// Show the login page, then call [`AwaitingLogin::logged_in`].
    Login(AwaitingLogin),
    /// Show the consent page, then call [`AwaitingConsent::answer`].
    Consent(AwaitingConsent),
    /// Redirect an error (`login_required`, `consent_required`, ... under `prompt=none`).
    Error(ErrorRedirect),
    /// Everything is settled: issue.
    Authorized(Authorized),
}

impl Checked {
    /// The subject named by a verified `id_token_hint`, if one was sent.
    pub fn hint_subject(&self) -> Option<&str> {
        self.ctx.hint_subject.as_deref()
    }

    /// The requested scope (to look up whether the session's user consented to it).
    pub fn scope(&self) -> &Scope {
        &self.ctx.scope
    }

    /// The bound client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Decides between login, consent, an error and issuing, from the session (if any) and
    /// whether its user already consented to this client for every requested scope.
    ///
    /// `prompt`, `max_age` and `id_token_hint` are judged against `now` and the session's `auth_time`.
    pub fn decide(
        self,
        session: Option<Authentication>,
        consent_given: bool,
        now: OffsetDateTime,
    ) -> Decision {
        let ctx = self.ctx;
        let prompt = ctx.prompt;
        let usable = session.filter(|s| {
            let too_old = ctx.max_age.is_some_and(|max| {
                let age = (now - s.auth_time).whole_seconds();
                // max_age=0 behaves as prompt=login (OIDC Core §3.1.2.1).
                max == 0 || age > i64::try_from(max).unwrap_or(i64::MAX)
            });
            let other_user = ctx.hint_subject.as_deref().is_some_and(|h| h != s.subject);
            !too_old && !other_user
        });
        if prompt.none {
            let Some(user) = usable else {
                return Decision::Error(ctx.target.error(OAuthError::new(
                    ErrorCode::LoginRequired,
                    "prompt=none, and there is no usable session for this request",
                )));
            };
            if !consent_given {
                return Decision::Error(ctx.target.error(OAuthError::new(
                    ErrorCode::ConsentRequired,
                    "prompt=none, and the end-user has not consented to this client and scope",
                )));
            }
            return Decision::Authorized(Authorized {
                client: self.client,
                ctx,
                user,
                remember_consent: false,
            });
        }
        match usable {
            Some(user) if !prompt.login && !prompt.select_account => {
                after_login(self.client, ctx, user, consent_given)
            }
            _ => Decision::Login(AwaitingLogin {
                client: self.client,
                ctx,
                requested_at: now,
            }),
        }
    }
}

fn after_login(
    client: Client,
    ctx: Context,
    user: Authentication,
    consent_given: bool,
) -> Decision {
    if ctx.prompt.consent || !consent_given {
        Decision::Consent(AwaitingConsent { client, ctx, user })
    } else {
        Decision::Authorized(Authorized {
            client,
            ctx,
            user,
            remember_consent: false,
        })
    }
}

/// A request waiting for the end-user to log in.
#[must_use = "resume it after login, or park it with `park()`"]
#[derive(Debug)]
pub struct AwaitingLogin {
    client: Client,
    ctx: Context,
    requested_at: OffsetDateTime,
}

/// A request waiting for the end-user's consent.
#[must_use = "resume it with the end-user's answer, or park it with `park()`"]
#[derive(Debug)]
pub struct AwaitingConsent {
    client: Client,
    ctx: Context,
    user: Authentication,
}

/// Read access for login and consent pages.
macro_rules! interaction_getters {
    ($t:ty) => {
        impl $t {
            /// The client asking.
            pub fn client(&self) -> &Client {
                &self.client
            }
            /// The redirect URI the response will go to (verified against the registration).
            pub fn redirect_uri(&self) -> &str {
                &self.ctx.target.redirect_uri
            }
            /// The requested scope.
            pub fn scope(&self) -> &Scope {
                &self.ctx.scope
            }
            /// The `prompt` values.
            pub fn prompt(&self) -> Prompt {
                self.ctx.prompt
            }
            /// `login_hint`, for pre-filling the login form.
            pub fn login_hint(&self) -> Option<&str> {
                self.ctx.login_hint.as_deref()
            }
            /// `display` (page, popup, touch, wap).
            pub fn display(&self) -> Option<&str> {
                self.ctx.display.as_deref()
            }
            /// `ui_locales`, preferred languages for the pages.
            pub fn ui_locales(&self) -> Option<&str> {
                self.ctx.ui_locales.as_deref()
            }
            /// `claims_locales`, preferred languages for claims.
            pub fn claims_locales(&self) -> Option<&str> {
                self.ctx.claims_locales.as_deref()
            }
            /// `acr_values`, requested authentication context classes.
            pub fn acr_values(&self) -> Option<&str> {
                self.ctx.acr_values.as_deref()
            }
            /// The subject named by `id_token_hint`, if any.
            pub fn hint_subject(&self) -> Option<&str> {
                self.ctx.hint_subject.as_deref()
            }
        }
    };
}
interaction_getters!(AwaitingLogin);
interaction_getters!(AwaitingConsent);
interaction_getters!(LoginPage);
interaction_getters!(ConsentPage);

/// What a login page shows about a parked request: the same getters as [`AwaitingLogin`],
/// and no transition, so a page can be drawn from it but nothing can be decided with it.
#[derive(Debug, Clone)]
pub struct LoginPage {
    client: Client,
    ctx: Context,
}

/// What a consent page shows about a parked request (see [`LoginPage`]).
#[derive(Debug, Clone)]
pub struct ConsentPage {
    client: Client,
    ctx: Context,
    user: Authentication,
}

impl ConsentPage {
    /// The end-user being asked.
    pub fn subject(&self) -> &str {
        &self.user.subject
    }
}

impl AwaitingLogin {
    /// Parks the request until the login form comes back: consumes it, seals it for the
    /// browser whose binding value is `browser` (see [`crate::parking`]), and returns the
    /// sealed value the form carries back with what the page needs to show. Nothing is
    /// stored.
    pub fn park(
        self,
        secret: &ParkingSecret,
        browser: &str,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> (SealedAuthorization, LoginPage) {
        let page = LoginPage {
            client: self.client,
            ctx: self.ctx.clone(),
        };
        let stage = PendingStage::Login {
            requested_at: self.requested_at,
        };
        (
            seal_parked(secret, browser, stage, self.ctx, rng, now),
            page,
        )
    }

    /// Resumes after the end-user logged in. The authentication must be at least as recent
    /// as the request, so a stale session cannot stand in for the login that was asked for.
    /// A login as another end-user than the `id_token_hint` names ends in `login_required`
    /// (OIDC Core section 3.1.2.1).
    pub fn logged_in(self, user: Authentication, consent_given: bool) -> Decision {
        if self
            .ctx
            .hint_subject
            .as_deref()
            .is_some_and(|hint| hint != user.subject)
        {
            return Decision::Error(self.ctx.target.error(OAuthError::new(
                ErrorCode::LoginRequired,
                "the end-user who logged in is not the one the id_token_hint names",
            )));
        }
        if user.auth_time
            < self
                .requested_at
                .replace_nanosecond(0)
                .unwrap_or(self.requested_at)
        {
            return Decision::Login(self);
        }
        after_login(self.client, self.ctx, user, consent_given)
    }
}

/// The end-user's answer on the consent page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentAnswer {
    /// The end-user allowed the client the requested scope.
    Allow,
    /// The end-user refused.
    Deny,
}

impl AwaitingConsent {
    /// The end-user being asked.
    pub fn subject(&self) -> &str {
        &self.user.subject
    }

    /// Parks the request until the consent form comes back (see [`AwaitingLogin::park`]).
    pub fn park(
        self,
        secret: &ParkingSecret,
        browser: &str,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> (SealedAuthorization, ConsentPage) {
        let page = ConsentPage {
            client: self.client,
            ctx: self.ctx.clone(),
            user: self.user.clone(),
        };
        let stage = PendingStage::Consent { user: self.user };
        (
            seal_parked(secret, browser, stage, self.ctx, rng, now),
            page,
        )
    }

    /// Takes the end-user's answer; a refusal redirects `access_denied`.
    pub fn answer(self, answer: ConsentAnswer) -> Result<Authorized, ErrorRedirect> {
        match answer {
            ConsentAnswer::Allow => Ok(Authorized {
                client: self.client,
                ctx: self.ctx,
                user: self.user,
                remember_consent: true,
            }),
            ConsentAnswer::Deny => Err(self.ctx.target.error(OAuthError::new(
                ErrorCode::AccessDenied,
                "the end-user denied the request",
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
enum PendingStage {
    Login {
        #[serde(with = "time::serde::timestamp")]
        requested_at: OffsetDateTime,
    },
    Consent {
        user: Authentication,
    },
}

/// What is sealed: the stage, the validated request, and the single-use id and expiry.
#[derive(Serialize, Deserialize)]
struct Parked {
    id: String,
    #[serde(with = "time::serde::timestamp")]
    expires_at: OffsetDateTime,
    #[serde(flatten)]
    stage: PendingStage,
    ctx: Context,
}

fn seal_parked(
    secret: &ParkingSecret,
    browser: &str,
    stage: PendingStage,
    ctx: Context,
    rng: &mut impl CryptoRng,
    now: OffsetDateTime,
) -> SealedAuthorization {
    let parked = Parked {
        id: MintedSecret::generate_keyed(rng, now).into_string(),
        expires_at: now + PENDING_LIFETIME,
        stage,
        ctx,
    };
    // Serialising these types cannot fail; should sealing ever fail, the page carries a
    // value that does not open, and the end-user is told to start again.
    let sealed = serde_json::to_vec(&parked)
        .ok()
        .and_then(|plain| parking::seal(secret, browser, plain, rng, now));
    SealedAuthorization(sealed.unwrap_or_default())
}

/// A parked authorization sealed for one browser: the opaque value the login or consent
/// form carries back (in a hidden field or the page's URL). It is base64url text.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedAuthorization(String);

impl SealedAuthorization {
    /// The value to put in the page.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Moves the value out.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for SealedAuthorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedAuthorization({} bytes)", self.0.len())
    }
}

/// An authorization waiting for login or consent, opened from its sealed value by
/// [`PendingAuthorization::unseal`]: the only way to make one.
///
/// It can be looked at ([`PendingAuthorization::view`]) as often as needed; going on with it
/// ([`PendingAuthorization::resume`]) takes the store's answer to its single-use mark, so
/// one parked request resumes once. It is neither `Clone` nor (de)serialisable.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub struct PendingAuthorization {
    single_use: ParkedMark,
    stage: PendingStage,
    ctx: Context,
}

/// A parked request's single-use mark: the digest of its random id, and how long the store
/// must remember that it was used (until the sealed value expires).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedMark {
    /// The digest of the parked request's random id.
    pub hash: SecretHash,
    /// When the sealed value expires; the mark may be forgotten after.
    pub expires_at: OffsetDateTime,
}

/// The store's answer to claiming a [`ParkedMark`] (an atomic insert-if-absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkClaim {
    /// This call recorded the mark: the parked request was not used before.
    Fresh,
    /// The mark was recorded before: the parked request was already used.
    AlreadyUsed,
}

/// What a parked request's page shows, by stage.
#[derive(Debug, Clone)]
pub enum PendingView {
    /// It waits for login.
    Login(LoginPage),
    /// It waits for consent.
    Consent(ConsentPage),
}

/// A resumed request, at the stage it was parked.
#[must_use]
#[derive(Debug)]
pub enum Resumed {
    /// It was waiting for login.
    Login(AwaitingLogin),
    /// It was waiting for consent.
    Consent(AwaitingConsent),
}

fn start_again(description: &str) -> ErrorPage {
    ErrorPage::new(ErrorCode::InvalidRequest, description)
}

impl PendingAuthorization {
    /// Opens a value [`AwaitingLogin::park`] or [`AwaitingConsent::park`] sealed for the
    /// browser whose binding value is `browser`; refused when it was edited, forged, sealed
    /// for another browser, or has expired.
    pub fn unseal(
        secret: &ParkingSecret,
        sealed: &str,
        browser: &str,
        now: OffsetDateTime,
    ) -> Result<Self, ErrorPage> {
        let refused = || {
            start_again(
                "this sign-in request has expired, was changed, or was started in another \
                 browser; start again from the application",
            )
        };
        let plain = parking::open(secret, browser, sealed, now).map_err(|_| refused())?;
        let parked: Parked = serde_json::from_slice(&plain).map_err(|_| refused())?;
        if parked.expires_at <= now {
            return Err(refused());
        }
        Ok(Self {
            single_use: ParkedMark {
                hash: SecretHash::of(&parked.id),
                expires_at: parked.expires_at,
            },
            stage: parked.stage,
            ctx: parked.ctx,
        })
    }

    /// The client to look up and hand to [`PendingAuthorization::resume`].
    pub fn client_id(&self) -> &str {
        &self.ctx.client_id
    }

    /// Whether it waits for login (else for consent).
    pub fn awaits_login(&self) -> bool {
        matches!(self.stage, PendingStage::Login { .. })
    }

    /// The mark to claim in the store before [`PendingAuthorization::resume`]: claim it
    /// once the end-user has logged in or answered, not before, so that looking at the page
    /// or a wrong password writes nothing.
    pub fn single_use(&self) -> &ParkedMark {
        &self.single_use
    }

    /// Binds the client record: it must still be registered with the request's redirect URI.
    fn bind(&self, client: Option<Client>) -> Result<Client, ErrorPage> {
        let Some(client) = client.filter(|c| c.client_id == self.ctx.client_id) else {
            return Err(ErrorPage::new(
                ErrorCode::InvalidClient,
                "the client of this request is no longer registered",
            ));
        };
        if !client.has_redirect_uri(&self.ctx.target.redirect_uri) {
            return Err(ErrorPage::new(
                ErrorCode::InvalidRequest,
                "the redirect_uri of this request is no longer registered",
            ));
        }
        Ok(client)
    }

    /// What the page of its stage shows, with the client record bound again; nothing can
    /// be decided with it.
    pub fn view(&self, client: Option<Client>) -> Result<PendingView, ErrorPage> {
        let client = self.bind(client)?;
        let ctx = self.ctx.clone();
        Ok(match &self.stage {
            PendingStage::Login { .. } => PendingView::Login(LoginPage { client, ctx }),
            PendingStage::Consent { user } => PendingView::Consent(ConsentPage {
                client,
                ctx,
                user: user.clone(),
            }),
        })
    }

    /// Binds the client record again (the redirect URI must still be registered) and goes
    /// on at the parked stage, given the store's answer to claiming
    /// [`PendingAuthorization::single_use`]: a mark already used ends here.
    pub fn resume(self, client: Option<Client>, claim: MarkClaim) -> Result<Resumed, ErrorPage> {
        if claim == MarkClaim::AlreadyUsed {
            return Err(start_again(
                "this sign-in request was already used; start again from the application",
            ));
        }
        let client = self.bind(client)?;
        Ok(match self.stage {
            PendingStage::Login { requested_at } => Resumed::Login(AwaitingLogin {
                client,
                ctx: self.ctx,
                requested_at,
            }),
            PendingStage::Consent { user } => Resumed::Consent(AwaitingConsent {
                client,
                ctx: self.ctx,
                user,
            }),
        })
    }
}

/// A request whose client, redirect URI, parameters and end-user are all settled:
/// the only state that can issue.
#[must_use = "issue the response next"]
#[derive(Debug)]
pub struct Authorized {
    client: Client,
    ctx: Context,
    user: Authentication,
    remember_consent: bool,
}

impl Authorized {
    /// The end-user whose claims [`Authorized::issue`] needs.
    pub fn subject(&self) -> &str {
        &self.user.subject
    }

    /// The granted scope.
    pub fn scope(&self) -> &Scope {
        &self.ctx.scope
    }

    /// Whether [`Authorized::issue`] reads the end-user's claims: only for
    /// `response_type=id_token`, the one response that carries them (OIDC Core §5.4).
    /// When it does not, the caller may skip loading them and pass `UserInfo::default()`.
    pub fn needs_claims(&self) -> bool {
        self.ctx.response_type == ResponseType::ID_TOKEN
    }

    /// Mints the code and tokens of the response type, signs the ID token, and returns the
    /// redirect with the effects to apply first.
    ///
    /// `claims` go into the ID token only for `response_type=id_token`, where no access token
    /// lets the client fetch them (OIDC Core §5.4).
    pub fn issue(
        self,
        provider: &Provider,
        claims: &UserInfo,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Result<Completed<Redirect>, ErrorRedirect> {
        let ctx = &self.ctx;
        let rt = ctx.response_type;
        let grant = GrantId::generate(rng, now);
        let mut effects = Vec::with_capacity(4);

        let code = rt.code.then(|| MintedSecret::generate_keyed(rng, now));
        if let Some(code) = &code {
            effects.push(Effect::StoreCode(CodeRecord {
                hash: code.hash(),
                grant: grant.clone(),
                client_id: ctx.client_id.clone(),
                redirect_uri: ctx.target.redirect_uri.clone(),
                redirect_uri_in_request: ctx.redirect_uri_in_request,
                scope: ctx.scope.clone(),
                nonce: ctx.nonce.clone(),
                pkce: ctx.pkce.clone(),
                authentication: self.user.clone(),
                include_auth_time: ctx.include_auth_time,
                expires_at: now + provider.code_lifetime,
            }));
        }
        let access = rt
            .token
            .then(|| {
                crate::token::mint_access_token(
                    provider,
                    crate::token::AccessTokenFor {
                        client: &self.client,
                        grant: &grant,
                        subject: &self.user.subject,
                        scope: &ctx.scope,
                        auth_time: Some(self.user.auth_time),
                        audience: None,
                    },
                    rng,
                    now,
                )
            })
            .transpose()
            .map_err(|e| ctx.target.error(e))?;
        if let Some((_, Some(record))) = access.as_ref() {
            effects.push(Effect::StoreAccessToken(record.clone()));
        }
        let id_token = if rt.id_token {
            let extra = self
                .needs_claims()
                .then(|| claims.for_scope(&self.user.subject, &ctx.scope, provider));
            let id_token = idtoken::sign(
                provider,
                &self.client,
                IdTokenInput {
                    authentication: &self.user,
                    include_auth_time: ctx.include_auth_time,
                    nonce: ctx.nonce.as_deref(),
                    access_token: access.as_ref().map(|(token, _)| token.as_str()),
                    code: code.as_ref().map(MintedSecret::as_str),
                    extra: extra.as_ref(),
                },
                now,
            )
            .map_err(|e| ctx.target.error(e))?;
            Some(id_token)
        } else {
            None
        };
        let access_token = access.as_ref().map(|(token, _)| token.as_str());
        let params = AuthorizationParams {
            code: code.as_ref().map(MintedSecret::as_str),
            access_token,
            token_type: access_token.map(|_| "Bearer"),
            expires_in: access_token.map(|_| {
                provider
                    .access_token_lifetime_for(&self.client)
                    .whole_seconds()
            }),
            scope: access_token.map(|_| ctx.scope.to_string()),
            id_token: id_token.as_deref(),
            state: ctx.target.state.as_deref(),
            iss: &provider.issuer,
        };

        if let Some(sid) = &self.user.sid {
            effects.push(Effect::JoinSession {
                sid: sid.clone(),
                client_id: ctx.client_id.clone(),
            });
        }
        if self.remember_consent {
            effects.push(Effect::RememberConsent(ConsentRecord {
                subject: self.user.subject.clone(),
                client_id: ctx.client_id.clone(),
                scope: ctx.scope.clone(),
            }));
        }
        Ok(Completed {
            response: Redirect::new(ctx.target.redirect_uri.clone(), ctx.target.mode, &params),
            effects,
        })
    }
}
