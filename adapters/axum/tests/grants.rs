//! An extension grant of the app's own answered at the axum adapter's token endpoint
//! (`Oidc::with_grants`), and refused at configuration when the provider does not declare it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[allow(dead_code)]
#[path = "../examples/axum_provider.rs"]
mod example;

use std::sync::Arc;

use oidc_flow::extension::GrantDecision;
use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow::{Client, GrantType, OAuthError, Provider, Scope};
use oidc_flow_axum::Oidc;
use oidc_flow_battery::{Browser, basic};
use oidc_flow_store::grants::{Grants, TokenGrant};
use oidc_flow_store::{Admin as _, MemoryStore, Store as _};

const SERVICE_ACCOUNT: &str = "urn:example:params:oauth:grant-type:service-account";

/// Tokens for the client itself, of the scope the form names.
struct ServiceAccount;

#[derive(serde::Deserialize)]
struct Form {
    scope: String,
}

impl TokenGrant for ServiceAccount {
    const GRANT_TYPE: &'static str = SERVICE_ACCOUNT;
    type Form = Form;

    async fn decide(
        &self,
        _client: &Client,
        form: Form,
        _provider: &oidc_flow::Provider,
        _now: time::OffsetDateTime,
    ) -> Result<GrantDecision, OAuthError> {
        let scope = Scope::parse(&form.scope)
            .map_err(|e| OAuthError::new(oidc_flow::ErrorCode::InvalidScope, e.to_string()))?;
        Ok(GrantDecision::for_client(scope))
    }
}

fn keys() -> KeySet {
    let (key, _) = SigningKey::generate(Algorithm::ES256, None).unwrap();
    let mut keys = KeySet::new();
    keys.add(key).unwrap();
    keys
}

#[tokio::test]
async fn an_apps_own_grant_at_the_axum_token_endpoint() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/oidc", listener.local_addr().unwrap());
    let store = Arc::new(MemoryStore::new());
    let secret = example::register(&store, "demo", "https://rp.example/cb")
        .await
        .unwrap();
    let mut demo = store.client("demo").await.unwrap().unwrap();
    demo.grant_types
        .push(GrantType::Extension(SERVICE_ACCOUNT.to_owned()));
    store
        .update_client(&demo.validate().unwrap())
        .await
        .unwrap();

    let undeclared = Provider::builder(&issuer, keys())
        .default_alg(Algorithm::ES256)
        .build()
        .unwrap();
    let refused = Oidc::with_grants(
        Arc::new(undeclared),
        store.clone(),
        example::Users,
        "/login",
        "/consent",
        Grants::default().with(ServiceAccount),
    );
    assert!(refused.is_err());

    let provider = Provider::builder(&issuer, keys())
        .default_alg(Algorithm::ES256)
        .extension_grant(SERVICE_ACCOUNT)
        .build()
        .unwrap();
    let oidc = Oidc::with_grants(
        Arc::new(provider),
        store.clone(),
        example::Users,
        "/login",
        "/consent",
        Grants::default().with(ServiceAccount),
    )
    .unwrap();
    let app = axum::Router::new()
        .nest(oidc.base_path(), oidc.router())
        .with_state(oidc);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let r = Browser::new()
        .post_form(
            &format!("{issuer}/token"),
            &[("grant_type", SERVICE_ACCOUNT), ("scope", "profile")],
            &[("authorization", &basic("demo", &secret))],
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.body);
    assert_eq!(r.json()["scope"], "profile");
    let discovery = Browser::new()
        .get(&format!("{issuer}/.well-known/openid-configuration"))
        .await
        .json();
    assert!(
        discovery["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == SERVICE_ACCOUNT)
    );
}
