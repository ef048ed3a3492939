//! Building and signing ID tokens (OIDC Core §2, §3.1.3.6, §3.3.2.11).

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::client::Client;
use crate::effect::Authentication;
use crate::error::{ErrorCode, OAuthError};
use crate::jws;
use crate::provider::Provider;

/// The claims of one ID token, borrowed from the flow that issues it.
#[derive(Serialize)]
struct IdTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acr: Option<&'a str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    amr: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    c_hash: Option<String>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    extra: Option<&'a Map<String, Value>>,
}

/// What goes into an ID token besides what the provider and client fix.
pub(crate) struct IdTokenInput<'a> {
    pub authentication: &'a Authentication,
    pub include_auth_time: bool,
    pub nonce: Option<&'a str>,
    pub access_token: Option<&'a str>,
    pub code: Option<&'a str>,
    /// UserInfo claims, when no access token lets the client fetch them (`response_type=id_token`).
    pub extra: Option<&'a Map<String, Value>>,
}

/// Signs an ID token for `client`. `aud` is the client alone, so `azp` is never needed (OIDC Core §2).
pub(crate) fn sign(
    provider: &Provider,
    client: &Client,
    input: IdTokenInput<'_>,
    now: OffsetDateTime,
) -> Result<String, OAuthError> {
    let signer = provider.signer_for(client).ok_or_else(|| {
        OAuthError::new(
            ErrorCode::ServerError,
            format!(
                "no key signs {} ID tokens for this client",
                provider.id_token_alg(client)
            ),
        )
    })?;
    let alg = signer.algorithm();
    // The registered claims of the token win over same-named user claims.
    let extra = input.extra.map(without_registered);
    let claims = IdTokenClaims {
        iss: &provider.issuer,
        sub: &input.authentication.subject,
        aud: &client.client_id,
        exp: (now + provider.id_token_lifetime_for(client)).unix_timestamp(),
        iat: now.unix_timestamp(),
        auth_time: (input.include_auth_time || provider.always_include_auth_time)
            .then(|| input.authentication.auth_time.unix_timestamp()),
        nonce: input.nonce,
        acr: input.authentication.acr.as_deref(),
        amr: &input.authentication.amr,
        sid: input.authentication.sid.as_deref(),
        at_hash: input.access_token.map(|t| alg.half_hash(t)),
        c_hash: input.code.map(|c| alg.half_hash(c)),
        extra: extra.as_ref(),
    };
    jws::encode(&claims, &signer)
        .map_err(|e| OAuthError::new(ErrorCode::ServerError, format!("signing failed: {e}")))
}

/// The claims an ID token may carry besides the end-user's (also listed in discovery).
pub(crate) const REGISTERED_CLAIMS: [&str; 13] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "sid",
    "at_hash",
    "c_hash",
];

/// User claims minus those the ID token sets itself, so they cannot be overridden.
fn without_registered(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(k, _)| !REGISTERED_CLAIMS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
