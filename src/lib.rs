//! # oidc-flow
//!
//! A sans-IO OpenID Connect 1.0 and OAuth 2.0 provider core. It reads no socket, file, clock
//! or environment: it takes raw request bytes, the time (`now`), a cryptographic rng and the
//! records it asks for, and returns responses and storage [`Effect`]s.
//!
//! Every endpoint is a typestate machine: each step is a type, each transition consumes
//! the previous state, and a token cannot be issued before the client, redirect URI,
//! end-user and code have been checked, because no value exists that could do it.
//!
//! * [`authorize`] — the authorization endpoint: `code`, `id_token`, `id_token token`,
//!   `code id_token`, `code token`, `code id_token token`; query, fragment and form_post.
//! * [`token`] — the token endpoint: `authorization_code` (with PKCE) and `refresh_token`
//!   (rotating; a reused refresh token revokes its family).
//! * [`userinfo`] — the UserInfo endpoint with RFC 6750 bearer tokens.
//! * [`discovery`] and [`Provider::jwks`] — the documents relying parties fetch.
//!
//! ## The driver contract
//!
//! 1. Parse the request bytes into the endpoint's first state.
//! 2. Each state says what it needs (`client_id()`, `code_hash()`, `subject()`, ...): look it
//!    up and hand it to the next transition.
//! 3. A finished step is a [`Completed`]: apply its `effects` in order (a code is taken
//!    atomically by the store *before* `redeem`, as a need, not an effect), then send its
//!    `response`. If an effect fails, send a `server_error` instead.
//!
//! ```
//! use oidc_flow::{authorize, token, Authentication, Client, Provider, UserInfo, Taken, Effect};
//! use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let pem = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/p256.pem"));
//! let mut keys = KeySet::new();
//! keys.add(SigningKey::from_pem(pem, Algorithm::ES256, None)?)?;
//! let provider = Provider::builder("https://op.example", keys)
//!     .default_alg(Algorithm::ES256)
//!     .build()?;
//! let client: Client = serde_json::from_str(r#"{"client_id":"rp","client_secret":"s3cret",
//!     "redirect_uris":["https://rp.example/cb"],"grant_types":["authorization_code"]}"#)?;
//! let client = client.validate()?;
//! let now = time::macros::datetime!(2026-01-01 12:00 UTC);
//! # use rand_core::SeedableRng;
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//!
//! // Authorization endpoint.
//! let received = authorize::Received::from_query(
//!     b"response_type=code&client_id=rp&redirect_uri=https%3A%2F%2Frp.example%2Fcb&scope=openid&state=xyz",
//! )?;
//! let bound = received.bind_client(Some(client.clone()))?;   // client looked up by client_id()
//! let validated = bound.validate(&provider).map_err(|e| e.error)?;
//! let checked = validated.nonce_seen(false).map_err(|e| e.error)?;
//! let session = Authentication { subject: "alice".into(), auth_time: now, acr: None, amr: vec![] };
//! let authorize::Decision::Authorized(authorized) = checked.decide(Some(session), true, now) else {
//!     panic!("a logged-in, consenting user is authorized");
//! };
//! let done = authorized.issue(&provider, &UserInfo::default(), &mut rng, now).map_err(|e| e.error)?;
//! let Effect::StoreCode(code_record) = &done.effects[0] else { panic!() };
//! let code = done.response.param("code").unwrap().to_owned();
//!
//! // Token endpoint: client_secret_basic, the code taken atomically by the store.
//! let form = format!("grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Frp.example%2Fcb");
//! let received = token::Received::parse(form.as_bytes(), Some(b"Basic cnA6czNjcmV0")).map_err(|e| e.error)?;
//! let authenticated = received.authenticate(Some(client)).map_err(|e| e.error)?;
//! let token::Grant::AuthorizationCode(exchange) = authenticated.grant().map_err(|e| e.error)? else { panic!() };
//! assert_eq!(exchange.code_hash(), &code_record.hash);
//! let redeemed = exchange.redeem(Taken::Fresh(code_record.clone()), now).map_err(|e| e.error)?;
//! let done = redeemed.issue(&provider, &mut rng, now).map_err(|e| e.error)?;
//! assert_eq!(done.response.status, 200);
//! assert!(done.response.json()["id_token"].is_string());
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod authorize;
pub mod claims;
pub mod client;
pub mod discovery;
pub mod effect;
pub mod error;
mod idtoken;
pub mod jws;
pub mod keys;
pub mod params;
pub mod pkce;
pub mod provider;
pub mod response;
pub mod scope;
pub mod secret;
pub mod token;
pub mod userinfo;

pub use claims::{Address, UserInfo};
pub use client::{AuthMethod, Client, ClientError, GrantType, ResponseMode, ResponseType};
pub use effect::{
    AccessTokenRecord, Authentication, CodeRecord, Completed, ConsentRecord, Effect, NonceRecord,
    PkceChallenge, PkceMethod, RefreshTokenRecord, Taken,
};
pub use error::{ErrorCode, OAuthError, ParseError};
pub use provider::{ConfigError, Endpoints, Provider, ProviderBuilder};
pub use response::{ErrorPage, ErrorRedirect, JsonResponse, Redirect};
pub use scope::Scope;
pub use secret::{GrantId, MintedSecret, SecretHash};
