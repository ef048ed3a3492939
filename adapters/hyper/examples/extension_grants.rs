//! A provider with two grants of the application's own at its token endpoint: the
//! resource owner password grant and RFC 8693 token exchange (`examples/grants/`).
//!
//! ```text
//! cargo run -p oidc-flow-hyper --example extension_grants
//! ```
//!
//! It serves on 127.0.0.1:9090 from memory, with the user alice (password "wonderland")
//! and a client registered for both grants, and prints the curl commands that use them.

#[path = "grants/password.rs"]
mod password;
#[path = "grants/token_exchange.rs"]
mod token_exchange;

use std::sync::Arc;

use oidc_flow::Provider;
use oidc_flow_hyper::App;
use oidc_flow_hyper::setup::{self, NewClient};
use oidc_flow_store::MemoryStore;
use oidc_flow_store::grants::TokenGrant;
use password::PasswordGrant;
use token_exchange::{TOKEN_EXCHANGE, TokenExchange};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:9090").await?;
    let issuer = format!("http://{}", listener.local_addr()?);
    let store = Arc::new(MemoryStore::new());
    let keys = setup::load_or_create_keys(&*store).await?;
    // Declaring the grants lists them in discovery and lets the token flow accept them;
    // the handlers below answer them.
    let provider = Provider::builder(&issuer, keys)
        .extension_grant(<PasswordGrant<MemoryStore> as TokenGrant>::GRANT_TYPE)
        .extension_grant(TOKEN_EXCHANGE)
        .build()?;
    let app = App::new(Arc::new(provider), store.clone())
        .with_grant(PasswordGrant::new(store.clone()))?
        .with_grant(TokenExchange::new(store.clone()))?;
    setup::add_user(
        &*store,
        "alice",
        "wonderland",
        None,
        None,
        Some(r#"{"name":"Alice"}"#),
    )
    .await?;
    let client = setup::add_client(
        &*store,
        NewClient {
            grant_types: vec![
                "password".into(),
                "refresh_token".into(),
                TOKEN_EXCHANGE.into(),
            ],
            scope: Some("openid profile offline_access".into()),
            ..NewClient::default()
        },
    )
    .await?;
    let field = |name: &str| {
        client
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
    };
    let id = field("client_id");
    let secret = field("client_secret");
    println!("serving {issuer}; client {id}, user alice / wonderland\n");
    println!(
        "curl -u '{id}:{secret}' -d grant_type=password -d username=alice -d password=wonderland \\\n  -d scope='openid profile' {issuer}/token\n"
    );
    println!(
        "curl -u '{id}:{secret}' -d grant_type={TOKEN_EXCHANGE} \\\n  -d subject_token=ACCESS_TOKEN -d subject_token_type=urn:ietf:params:oauth:token-type:access_token \\\n  -d scope=profile {issuer}/token"
    );
    oidc_flow_hyper::serve(listener, Arc::new(app), async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
