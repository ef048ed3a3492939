//! The shared HTTP battery (`oidc-flow-battery`) against the example axum app.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../examples/axum_provider.rs"]
mod example;

use oidc_flow_battery::{Adapter, World};

struct Axum;

impl Adapter for Axum {
    async fn serve(world: World) -> tokio::task::JoinHandle<()> {
        let app = example::app(world.provider, world.store);
        tokio::spawn(async move {
            // A port taken meanwhile ends the task; the battery tries another.
            if let Ok(listener) = tokio::net::TcpListener::bind(world.addr).await {
                let _ = axum::serve(listener, app).await;
            }
        })
    }
}

oidc_flow_battery::battery!(Axum);
