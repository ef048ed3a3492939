//! Headless Chromium signs in through the axum example app (its own login and consent
//! pages, the provider under `/oidc`) as a person would: the same eight flows as the Rocket
//! app's (`oidc_flow_browser_harness::app_pages`). Every flow fails on any console message
//! about a Content-Security-Policy.
//!
//! Skipped (with a message) when Chromium or chromedriver is missing, unless
//! `OIDC_FLOW_REQUIRE_BROWSER` is set, as `.ci/run` does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../examples/axum_provider.rs"]
mod example;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow_browser_harness::app_pages::{self, AppUnderTest};
use oidc_flow_browser_harness::{CallbackServer, Suite, http};
use oidc_flow_store::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_to_the_axum_app_with_chromium() {
    let Some(mut suite) = Suite::start("axum").await.unwrap() else {
        return;
    };
    let callback = CallbackServer::start().await.unwrap();
    let redirect_uri = callback.url("/cb");
    let store = Arc::new(MemoryStore::new());
    let mut secrets = HashMap::new();
    for flow in app_pages::FLOWS {
        let secret = example::register(&store, flow, &redirect_uri)
            .await
            .unwrap();
        secrets.insert(flow.to_owned(), secret);
    }
    // Bound before the provider exists: its issuer names the port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/oidc", listener.local_addr().unwrap());
    let (key, _) = SigningKey::generate(Algorithm::ES256, None).unwrap();
    let mut keys = KeySet::new();
    keys.add(key).unwrap();
    let provider = oidc_flow::Provider::builder(&issuer, keys)
        .default_alg(Algorithm::ES256)
        .check_nonce_replay(true)
        .build()
        .unwrap();
    let app = example::app(Arc::new(provider), store);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let discovery = format!("{issuer}/.well-known/openid-configuration");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http::get(&discovery, None)
        .await
        .is_ok_and(|r| r.status == 200)
    {
        assert!(Instant::now() < deadline, "the axum app did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let under_test = AppUnderTest {
        issuer,
        redirect_uri,
        secrets,
    };
    app_pages::run(&mut suite, &under_test, &callback).await;
    server.abort();
    suite.finish();
}
