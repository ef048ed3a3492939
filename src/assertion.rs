//! Client authentication by JWT (RFC 7523 §2.2, OIDC Core §9): `client_secret_jwt` (HS*
//! keyed with the client secret) and `private_key_jwt` (the client's registered public
//! keys).
//!
//! The assertion is verified with jsonwebtoken's `decode` and a `Validation` pinned to the
//! algorithm the client's key allows, the client as `iss` and `sub`, and the provider's
//! issuer or endpoints as `aud`. jsonwebtoken's own `exp`/`nbf` checks read the system
//! clock, so they are off and the times are checked here against the injected `now`. The
//! `jti` is then claimed once through the store (an atomic insert, like nonces), so an
//! assertion cannot be replayed while it is valid.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm as JwtAlgorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::client::{AuthMethod, Client};
use crate::effect::NonceRecord;
use crate::error::ErrorCode;
use crate::jws;
use crate::keys::{Algorithm, PublicEcKey};
use crate::provider::Provider;
use crate::token::TokenError;

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest assertion accepted.
pub const MAX_ASSERTION: usize = 8 * 1024;
/// Longest an assertion may still be valid for: a client makes a fresh one per request.
pub const MAX_LIFETIME: Duration = Duration::minutes(10);
/// How far `iat` and `nbf` may lie in the future (clock skew between client and server).
const CLOCK_SKEW: i64 = 60;
/// Longest `jti` accepted.
const MAX_JTI: usize = 255;
/// Prefixes a claimed `jti` in the store's nonce records, apart from authorization nonces.
const JTI_PREFIX: &str = "client_assertion_jti:";

fn invalid_client(why: impl Into<String>) -> TokenError {
    TokenError::new(ErrorCode::InvalidClient, why)
}

/// The claims every assertion carries (RFC 7523 §3).
#[derive(Deserialize)]
struct AssertionClaims {
    exp: i64,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
}

/// The unverified `iss` and `sub` of an assertion, to know which client to look up.
#[derive(Deserialize)]
struct Names {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
}

/// The client an assertion names (its `sub`, which must equal its `iss`), read before the
/// signature is checked: only to look the client up, whose keys then verify it.
pub(crate) fn client_named(assertion: &str) -> Result<String, TokenError> {
    let names: Names = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
        .map_err(|_| invalid_client("the client assertion is not a JWT"))?;
    match (names.iss, names.sub) {
        (Some(iss), Some(sub)) if iss == sub && !sub.is_empty() && sub.len() <= 255 => Ok(sub),
        _ => Err(invalid_client(
            "the client assertion's iss and sub must both be the client_id (RFC 7523 section 3)",
        )),
    }
}

/// The key that verifies `client`'s assertions with header algorithm `alg`.
fn key_for(
    client: &Client,
    alg: JwtAlgorithm,
    kid: Option<&str>,
) -> Result<DecodingKey, TokenError> {
    match client.token_endpoint_auth_method {
        AuthMethod::ClientSecretJwt => {
            if alg.family() != AlgorithmFamily::Hmac {
                return Err(invalid_client(
                    "a client_secret_jwt assertion is signed with HS256, HS384 or HS512",
                ));
            }
            let secret = client
                .client_secret
                .as_deref()
                .ok_or_else(|| invalid_client("the client has no secret in clear to check HS*"))?;
            DecodingKey::from_secret(secret.as_bytes())
                .map_err(|_| invalid_client("the client secret is not a usable HMAC key"))
        }
        AuthMethod::PrivateKeyJwt => {
            if alg.family() == AlgorithmFamily::Hmac {
                return Err(invalid_client(
                    "a private_key_jwt assertion is signed with the client's private key, not HS*",
                ));
            }
            let keys = registered_keys(client);
            let jwk = match kid {
                Some(kid) => keys
                    .iter()
                    .find(|k| k.common.key_id.as_deref() == Some(kid)),
                None if keys.len() == 1 => keys.first(),
                None => None,
            }
            .ok_or_else(|| {
                invalid_client("no registered key of the client matches the assertion's kid")
            })?;
            if let Some(key_alg) = jwk.common.key_algorithm
                && format!("{key_alg:?}") != format!("{alg:?}")
            {
                return Err(invalid_client(
                    "the assertion's alg is not the one its key is registered for",
                ));
            }
            DecodingKey::from_jwk(jwk)
                .map_err(|_| invalid_client("the client's registered key is not usable"))
        }
        _ => Err(invalid_client(
            "the client does not authenticate with a client assertion",
        )),
    }
}

/// How many of the client's registered public keys (`jwks`) can verify an assertion: those
/// jsonwebtoken reads, and the P-521 ones the core's own JWS code verifies.
pub(crate) fn usable_key_count(client: &Client) -> usize {
    registered_keys(client).len() + es512_keys(client).len()
}

/// The client's registered P-521 keys, which verify ES512 assertions through the core's
/// own JWS code (jsonwebtoken has no ES512).
fn es512_keys(client: &Client) -> Vec<PublicEcKey> {
    jwks_members(client)
        .filter_map(serde_json::Value::as_object)
        .filter_map(|k| PublicEcKey::from_jwk(k).ok())
        .filter(|k| k.algorithm() == Algorithm::ES512)
        .collect()
}

/// The members of the client's registered `jwks` document's `keys` array.
fn jwks_members(client: &Client) -> impl Iterator<Item = &serde_json::Value> {
    client
        .jwks
        .as_ref()
        .and_then(|j| j.get("keys"))
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
}

/// The `alg` and `kid` of a compact JWS's header, read without verifying anything.
#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

fn header(token: &str) -> Option<Header> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    serde_json::from_slice::<Header>(&bytes).ok()
}

fn header_alg(token: &str) -> Option<String> {
    header(token).map(|h| h.alg)
}

/// The `kid` of an assertion's header, unverified (to tell whether cached keys are stale).
pub(crate) fn header_kid(token: &str) -> Option<String> {
    header(token).and_then(|h| h.kid)
}

/// The claims of an ES512 assertion, verified with the core's JWS code against the client's
/// P-521 key and checked as jsonwebtoken's `Validation` checks the others: `iss` and `sub`
/// the client, `aud` (a string or an array) naming one of `audiences`.
fn verify_es512(
    client: &Client,
    assertion: &str,
    audiences: &[&str],
) -> Result<AssertionClaims, TokenError> {
    if client.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
        return Err(invalid_client(
            "an ES512 assertion is signed with the client's private key (private_key_jwt)",
        ));
    }
    let keys = es512_keys(client);
    let verified = jws::decode_verify_public(assertion, |_, kid| match kid {
        Some(kid) => keys.iter().find(|k| k.kid() == Some(kid)),
        None if keys.len() == 1 => keys.first(),
        None => None,
    })
    .map_err(|e| match e {
        jws::JwsError::UnknownKey => {
            invalid_client("no registered key of the client matches the assertion's kid")
        }
        jws::JwsError::AlgorithmMismatch { .. } => {
            invalid_client("the assertion's alg is not the one its key is registered for")
        }
        _ => invalid_client("the client assertion does not verify"),
    })?;
    let claims = verified.claims;
    let names_client = |name: &str| {
        claims.get(name).and_then(serde_json::Value::as_str) == Some(client.client_id.as_str())
    };
    if !names_client("iss") || !names_client("sub") {
        return Err(invalid_client(
            "the client assertion lacks exp, iss, sub or aud",
        ));
    }
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => audiences.contains(&a.as_str()),
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .filter_map(serde_json::Value::as_str)
            .any(|a| audiences.contains(&a)),
        _ => {
            return Err(invalid_client(
                "the client assertion lacks exp, iss, sub or aud",
            ));
        }
    };
    if !aud_ok {
        return Err(invalid_client(
            "the client assertion's aud is not this provider's issuer or endpoint",
        ));
    }
    serde_json::from_value(serde_json::Value::Object(claims))
        .map_err(|_| invalid_client("the client assertion lacks exp, iss, sub or aud"))
}

/// The client's registered public keys (`jwks`), those jsonwebtoken can read.
pub(crate) fn registered_keys(client: &Client) -> Vec<Jwk> {
    jwks_members(client)
        .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
        .collect()
}

/// Verifies `assertion` for `client` at `now`: the signature with the client's key, `iss`
/// and `sub` the client, `aud` the issuer or one of its endpoints, `exp` in the future and
/// at most [`MAX_LIFETIME`] away, `iat`/`nbf` not in the future, and a `jti`. Returns the
/// record that claims the `jti` until the assertion expires.
pub(crate) fn verify(
    client: &Client,
    assertion: &str,
    provider: &Provider,
    now: OffsetDateTime,
) -> Result<NonceRecord, TokenError> {
    let endpoints = &provider.endpoints;
    let audiences = [
        provider.issuer(),
        endpoints.token.as_str(),
        endpoints.revocation.as_str(),
        endpoints.introspection.as_str(),
    ];
    let claims = if header_alg(assertion).as_deref() == Some(Algorithm::ES512.as_str()) {
        verify_es512(client, assertion, &audiences)?
    } else {
        verify_with_jsonwebtoken(client, assertion, &audiences)?
    };
    check_times(client, claims, now)
}

/// The claims of an assertion in an algorithm jsonwebtoken has, verified by it.
fn verify_with_jsonwebtoken(
    client: &Client,
    assertion: &str,
    audiences: &[&str],
) -> Result<AssertionClaims, TokenError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| invalid_client("the client assertion is not a JWT"))?;
    let key = key_for(client, header.alg, header.kid.as_deref())?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[&client.client_id]);
    validation.sub = Some(client.client_id.clone());
    validation.set_audience(audiences);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    // The system clock is not the core's clock: the times are checked below.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation)
        .map_err(|e| {
            invalid_client(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    "the client assertion's aud is not this provider's issuer or endpoint"
                }
                jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(_) => {
                    "the client assertion lacks exp, iss, sub or aud"
                }
                _ => "the client assertion does not verify",
            })
        })
        .map(|data| data.claims)
}

/// Checks a verified assertion's times against `now` and its `jti`; returns the record
/// that claims the `jti` until the assertion expires.
fn check_times(
    client: &Client,
    claims: AssertionClaims,
    now: OffsetDateTime,
) -> Result<NonceRecord, TokenError> {
    let now_s = now.unix_timestamp();
    if claims.exp <= now_s {
        return Err(invalid_client("the client assertion has expired"));
    }
    if claims.exp > (now + MAX_LIFETIME).unix_timestamp() {
        return Err(invalid_client(
            "the client assertion is valid for too long (at most 10 minutes)",
        ));
    }
    if claims.iat.is_some_and(|t| t > now_s + CLOCK_SKEW)
        || claims.nbf.is_some_and(|t| t > now_s + CLOCK_SKEW)
    {
        return Err(invalid_client("the client assertion is not valid yet"));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI)
        .ok_or_else(|| invalid_client("the client assertion needs a jti (at most 255 bytes)"))?;
    let expires_at = OffsetDateTime::from_unix_timestamp(claims.exp)
        .map_err(|_| invalid_client("the client assertion's exp is out of range"))?;
    Ok(NonceRecord {
        client_id: client.client_id.clone(),
        nonce: format!("{JTI_PREFIX}{jti}"),
        expires_at,
    })
}
