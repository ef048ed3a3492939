//! Shared fixtures: the example app (included as a module, so the tests run it), a provider
//! whose RSA key is made once per test binary, clients, and URL helpers.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[allow(dead_code)]
#[path = "../../examples/provider.rs"]
pub mod example;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use oidc_flow::Provider;
use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow_store::MemoryStore;
use rocket::config::LogLevel;
use rocket::local::asynchronous::Client;
use rocket::{Build, Rocket};

/// The redirect URI of the test clients.
pub const REDIRECT: &str = "https://rp.example/cb";
/// The issuer of the local-client tests (its path is where the provider is mounted).
pub const ISSUER: &str = "http://127.0.0.1:8000/oidc";

/// One RS256 key per test binary (generating RSA keys is slow).
fn key_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| SigningKey::generate(Algorithm::RS256, None).unwrap().1)
}

/// A key set with the shared key.
pub fn key_set() -> KeySet {
    let key = SigningKey::from_pem(key_pem().as_bytes(), Algorithm::RS256, None).unwrap();
    let mut keys = KeySet::new();
    keys.add(key).unwrap();
    keys
}

/// A provider for `issuer` with the shared key.
pub fn provider(issuer: &str) -> Arc<Provider> {
    Arc::new(Provider::builder(issuer, key_set()).build().unwrap())
}

/// A provider's world: its configuration, its store, and two registered clients:
/// `demo` (consent asked) and `portal` (first-party in the example app).
#[derive(Clone)]
pub struct World {
    pub provider: Arc<Provider>,
    pub store: Arc<MemoryStore>,
    pub demo_secret: String,
    pub portal_secret: String,
}

impl World {
    /// A new world for `issuer`.
    pub async fn new(issuer: &str) -> Self {
        let store = Arc::new(MemoryStore::new());
        let demo_secret = example::register(&store, "demo", REDIRECT).await.unwrap();
        let portal_secret = example::register(&store, "portal", REDIRECT).await.unwrap();
        Self {
            provider: provider(issuer),
            store,
            demo_secret,
            portal_secret,
        }
    }

    /// The example app over this world, on `config`.
    pub fn rocket(&self, config: rocket::Config) -> Rocket<Build> {
        example::app(
            self.provider.clone(),
            self.store.clone(),
            rocket::custom(config),
        )
    }

    /// A browser: a tracked local client of a fresh instance of the app over this world
    /// (every instance shares the store, as processes behind a load balancer would).
    pub async fn browser(&self) -> Client {
        Client::tracked(self.rocket(quiet_config())).await.unwrap()
    }

    /// `Authorization: Basic` of a client.
    pub fn basic(&self, client_id: &str) -> String {
        use base64::Engine as _;
        let secret = if client_id == "portal" {
            &self.portal_secret
        } else {
            &self.demo_secret
        };
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"))
        )
    }
}

/// Rocket's debug configuration without its log output.
pub fn quiet_config() -> rocket::Config {
    rocket::Config {
        log_level: LogLevel::Off,
        cli_colors: false,
        ..rocket::Config::debug_default()
    }
}

/// A code-flow authorization URL (path and query) under `/oidc`.
pub fn authorize_url(client_id: &str, scope: &str, state: &str, extra: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "/oidc/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state={}&nonce=n-{}{extra}",
        enc(client_id),
        enc(REDIRECT),
        enc(scope),
        enc(state),
        enc(state)
    )
}

/// The query parameters of a URL or of a path with a query.
pub fn query(location: &str) -> HashMap<String, String> {
    let url = url::Url::parse(location)
        .or_else(|_| url::Url::parse(&format!("http://local{location}")))
        .unwrap();
    url.query_pairs().into_owned().collect()
}
