//! The discovery document (OpenID Connect Discovery 1.0 §3), built from the configuration.

use serde_json::{Value, json};

use crate::claims::SCOPE_CLAIMS;
use crate::keys::Algorithm;
use crate::provider::Provider;

/// The algorithms client assertions may use (RFC 7523): jsonwebtoken verifies them, ES512
/// the core's own JWS code.
const ASSERTION_ALGS: [&str; 13] = [
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "EdDSA",
];

/// The `/.well-known/openid-configuration` document of `provider`.
pub fn document(provider: &Provider) -> Value {
    let mut algs: Vec<&str> = provider
        .keys
        .algorithms()
        .into_iter()
        .map(Algorithm::as_str)
        .collect();
    // HS* tokens are keyed with each client's secret, so they are always available.
    algs.extend(["HS256", "HS384", "HS512"]);
    let mut claims: Vec<&str> = crate::idtoken::REGISTERED_CLAIMS.to_vec();
    for (_, scope_claims) in SCOPE_CLAIMS {
        claims.extend(scope_claims.iter().copied());
    }
    for (_, custom) in &provider.custom_scope_claims {
        claims.extend(custom.iter().map(String::as_str));
    }
    let response_types: Vec<&str> = provider
        .response_types_supported()
        .iter()
        .map(|rt| rt.as_str())
        .collect();
    let mut grant_types = vec![
        "authorization_code",
        "implicit",
        "refresh_token",
        "client_credentials",
    ];
    grant_types.extend(provider.extension_grants.iter().map(String::as_str));
    let e = &provider.endpoints;
    json!({
        "issuer": provider.issuer,
        "authorization_endpoint": e.authorization,
        "token_endpoint": e.token,
        "userinfo_endpoint": e.userinfo,
        "jwks_uri": e.jwks,
        "scopes_supported": provider.scopes_supported.iter().collect::<Vec<_>>(),
        "response_types_supported": response_types,
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": grant_types,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "claims_supported": claims,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "require_request_uri_registration": false,
        "code_challenge_methods_supported": ["S256", "plain"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "display_values_supported": ["page", "popup", "touch", "wap"],
        "authorization_response_iss_parameter_supported": true,
        "end_session_endpoint": e.end_session,
        "revocation_endpoint": e.revocation,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "introspection_endpoint": e.introspection,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    })
}
