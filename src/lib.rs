#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
// Every byte of a request is attacker-chosen: the core never panics on input. These hold
// even where the workspace's [workspace.lints] do not apply (a vendored copy, another
// workspace); tests opt out below.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::todo,
    clippy::unimplemented,
    clippy::unreachable
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::unreachable
    )
)]

mod assertion;
pub mod authorize;
pub mod claims;
pub mod client;
pub mod discovery;
pub mod effect;
pub mod error;
pub mod extension;
pub mod flow;
mod idtoken;
pub mod introspection;
pub mod jws;
pub mod keys;
pub mod logout;
mod lookup;
pub mod params;
pub mod parking;
pub mod pkce;
pub mod provider;
pub mod resource;
pub mod response;
pub mod revocation;
pub mod scope;
pub mod secret;
pub mod token;
pub mod userinfo;

pub use claims::{Address, UserInfo};
pub use client::{
    AccessTokenFormat, AuthMethod, Client, ClientError, GrantType, ResponseMode, ResponseType,
};
pub use effect::{
    AccessTokenRecord, Authentication, CodeRecord, Completed, ConsentRecord, Effect, NonceRecord,
    PkceChallenge, PkceMethod, RefreshTokenRecord, Taken,
};
pub use error::{ErrorCode, OAuthError, ParseError};
pub use provider::{ConfigError, Endpoints, Provider, ProviderBuilder};
pub use response::{ErrorPage, ErrorRedirect, JsonResponse, Redirect};
pub use scope::Scope;
pub use secret::{GrantId, MintedSecret, SecretHash};
