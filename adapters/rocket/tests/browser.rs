//! Headless Chromium signs in through the Rocket example app (its own login and consent
//! pages, the provider under `/oidc`) as a person would, and lands on a callback server the
//! test runs. Every flow fails on any console message about a Content-Security-Policy.
//!
//! Skipped (with a message) when Chromium or chromedriver is missing, unless
//! `OIDC_FLOW_REQUIRE_BROWSER` is set, as `.ci/run` does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[allow(dead_code)]
#[path = "../examples/provider.rs"]
mod example;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oidc_flow_browser_harness::app_pages::{self, AppUnderTest};
use oidc_flow_browser_harness::http;
use oidc_flow_browser_harness::{CallbackServer, Suite, free_port};
use oidc_flow_store::MemoryStore;

/// The example app on a loopback port, one client per flow.
struct App {
    issuer: String,
    redirect_uri: String,
    /// flow name -> client secret (the client_id is the flow's name)
    secrets: HashMap<String, String>,
    shutdown: rocket::Shutdown,
}

impl App {
    async fn start(redirect_uri: &str, flows: &[&str]) -> Self {
        let store = Arc::new(MemoryStore::new());
        let mut secrets = HashMap::new();
        for flow in flows {
            let secret = example::register(&store, flow, redirect_uri).await.unwrap();
            secrets.insert((*flow).to_owned(), secret);
        }
        // The port is free when picked, but Rocket binds it only at launch: should anything
        // take it meanwhile, the launch fails, and another port is tried.
        let mut attempt = 0;
        let (issuer, shutdown) = loop {
            attempt += 1;
            let port = free_port().unwrap();
            let issuer = format!("http://127.0.0.1:{port}/oidc");
            let config = rocket::Config {
                port,
                address: std::net::Ipv4Addr::LOCALHOST.into(),
                log_level: rocket::config::LogLevel::Off,
                cli_colors: false,
                ..rocket::Config::debug_default()
            };
            let provider = example::provider(&issuer).await.unwrap();
            let rocket = example::app(provider, store.clone(), rocket::custom(config))
                .ignite()
                .await
                .unwrap();
            let shutdown = rocket.shutdown();
            let launched = tokio::spawn(rocket.launch());
            let discovery = format!("{issuer}/.well-known/openid-configuration");
            let deadline = Instant::now() + Duration::from_secs(60);
            let ended = loop {
                if let Ok(r) = http::get(&discovery, None).await
                    && r.status == 200
                {
                    break None;
                }
                if launched.is_finished() {
                    break Some(launched.await);
                }
                assert!(
                    Instant::now() < deadline,
                    "the Rocket app did not start within 60 s"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            match ended {
                None => break (issuer, shutdown),
                Some(outcome) if attempt < 5 => {
                    eprintln!(
                        "Rocket on port {port} ended before serving ({outcome:?}); another port"
                    );
                }
                Some(outcome) => panic!("the Rocket app ended before serving: {outcome:?}"),
            }
        };
        Self {
            issuer,
            redirect_uri: redirect_uri.to_owned(),
            secrets,
            shutdown,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_to_the_rocket_app_with_chromium() {
    let Some(mut suite) = Suite::start("rocket").await.unwrap() else {
        return;
    };
    let callback = CallbackServer::start().await.unwrap();
    let app = App::start(&callback.url("/cb"), &app_pages::FLOWS).await;
    let under_test = AppUnderTest {
        issuer: app.issuer.clone(),
        redirect_uri: app.redirect_uri.clone(),
        secrets: app.secrets.clone(),
    };
    app_pages::run(&mut suite, &under_test, &callback).await;
    app.shutdown.clone().notify();
    suite.finish();
}
