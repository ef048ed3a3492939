//! What a resource server does with a JWT access token (RFC 9068 §4), without a store:
//! verify it with the provider's JWKS and decide whether this resource takes it.
//!
//! The check is jsonwebtoken's `decode`, with a `Validation` pinned to the algorithm of the
//! key the token names (`kid`), the issuer, and the audiences this resource answers to. Its
//! own `exp`/`nbf` checks read the system clock, so they are off and the time is checked
//! here against the `now` the caller passes, like everything else in the core.
//!
//! A JWT verified this way is accepted until it expires, even if it was revoked: a resource
//! that must see revocation asks the introspection endpoint (or, in-process, the store)
//! instead.

use std::collections::HashMap;

use std::str::FromStr as _;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::error::ErrorCode;
use crate::scope::Scope;
use crate::userinfo::BearerError;

/// How far a token's `iat` may lie in the future (clock skew between servers).
const CLOCK_SKEW: i64 = 60;

/// Why a verifier could not be built from a JWKS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifierError {
    /// The document is not a JWKS.
    #[error("the JWKS is not a JSON Web Key Set: {0}")]
    NotAJwks(String),
    /// No key of the set can verify anything (each needs a `kid` and an `alg` that
    /// jsonwebtoken supports).
    #[error("no key of the JWKS has a kid and an algorithm jsonwebtoken verifies")]
    NoUsableKey,
}

/// `aud`: a string or an array of them (RFC 7519 §4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims RFC 9068 §2.2 requires (and `auth_time`, which it allows).
#[derive(Deserialize)]
struct Claims {
    sub: String,
    client_id: String,
    aud: Audience,
    exp: i64,
    iat: i64,
    jti: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    auth_time: Option<i64>,
}

/// A JWT access token that verified and that this resource takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAccessToken {
    /// The end-user (or, for the client credentials grant, the client).
    pub subject: String,
    /// The client the token was issued to.
    pub client_id: String,
    /// The token's scope.
    pub scope: Scope,
    /// Its `aud` values.
    pub audience: Vec<String>,
    /// Its `jti`.
    pub jti: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// When the end-user authenticated, when the token says.
    pub auth_time: Option<OffsetDateTime>,
}

/// Verifies JWT access tokens for one resource: the provider's keys (parsed once), its
/// issuer, and the `aud` values this resource answers to.
pub struct AccessTokenVerifier {
    issuer: String,
    audiences: Vec<String>,
    keys: HashMap<String, (DecodingKey, jsonwebtoken::Algorithm)>,
}

impl std::fmt::Debug for AccessTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("AccessTokenVerifier")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("kids", &kids)
            .finish()
    }
}

impl AccessTokenVerifier {
    /// A verifier for tokens of `issuer` signed by a key of `jwks` (the provider's JWKS
    /// document) whose `aud` holds one of `audiences` (empty: any audience, for a resource
    /// that checks who may call it by other means). Keys without a `kid`, or in an
    /// algorithm jsonwebtoken does not verify (ES512), are left out.
    pub fn new(
        issuer: &str,
        jwks: &serde_json::Value,
        audiences: &[&str],
    ) -> Result<Self, VerifierError> {
        let raw_keys = jwks
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| VerifierError::NotAJwks("no `keys` array".to_owned()))?;
        let mut keys = HashMap::new();
        for raw in raw_keys {
            let jwk: Jwk = serde_json::from_value(raw.clone())
                .map_err(|e| VerifierError::NotAJwks(e.to_string()))?;
            let alg = raw
                .get("alg")
                .and_then(serde_json::Value::as_str)
                .and_then(|a| jsonwebtoken::Algorithm::from_str(a).ok());
            let (Some(kid), Some(alg)) = (&jwk.common.key_id, alg) else {
                continue;
            };
            // Public keys only: a shared secret in a JWKS would let anyone holding it sign.
            if alg.family() == jsonwebtoken::AlgorithmFamily::Hmac {
                continue;
            }
            if let Ok(key) = DecodingKey::from_jwk(&jwk) {
                keys.insert(kid.clone(), (key, alg));
            }
        }
        if keys.is_empty() {
            return Err(VerifierError::NoUsableKey);
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            keys,
        })
    }

    /// Checks `token` (the Bearer value) at `now` for a route that needs every token of
    /// `required`: `typ` `at+jwt`, a known `kid` and its algorithm, the signature, `iss`,
    /// `aud`, `exp`, `nbf`, `iat`, and the RFC 9068 claims. The refusal is RFC 6750's:
    /// 401 `invalid_token`, or 403 `insufficient_scope`, with `WWW-Authenticate`.
    pub fn verify(
        &self,
        token: &str,
        required: &Scope,
        now: OffsetDateTime,
    ) -> Result<VerifiedAccessToken, BearerError> {
        let invalid = |why: &str| {
            BearerError::new(
                &self.issuer,
                ErrorCode::InvalidToken,
                format!("the access token {why}"),
            )
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("is not a JWT"))?;
        // RFC 9068 §4: `at+jwt`, or its media type spelled out.
        let typ = header.typ.as_deref().unwrap_or_default();
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(invalid("is not a JWT access token (typ at+jwt)"));
        }
        let (key, alg) = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or_else(|| invalid("names no key of the provider"))?;
        if header.alg != *alg {
            return Err(invalid("is signed with another algorithm than its key's"));
        }
        let mut validation = Validation::new(*alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // The system clock is not the core's clock: exp and nbf are checked below.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        if self.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
        }
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    invalid("is meant for another resource")
                }
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => invalid("is from another issuer"),
                _ => invalid("does not verify"),
            })?
            .claims;
        let now_s = now.unix_timestamp();
        if claims.exp <= now_s {
            return Err(invalid("has expired"));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now_s) || claims.iat > now_s + CLOCK_SKEW {
            return Err(invalid("is not valid yet"));
        }
        let scope = Scope::parse(claims.scope.as_deref().unwrap_or_default())
            .map_err(|_| invalid("has a malformed scope"))?;
        if !required.is_subset_of(&scope) {
            return Err(BearerError::insufficient_scope(&self.issuer, required));
        }
        let time = |t: i64| OffsetDateTime::from_unix_timestamp(t).ok();
        Ok(VerifiedAccessToken {
            subject: claims.sub,
            client_id: claims.client_id,
            scope,
            audience: match claims.aud {
                Audience::One(a) => vec![a],
                Audience::Many(a) => a,
            },
            jti: claims.jti,
            expires_at: time(claims.exp).ok_or_else(|| invalid("has a malformed exp"))?,
            auth_time: claims.auth_time.and_then(time),
        })
    }
}
