//! The shared HTTP battery (`oidc-flow-battery`) against the hyper server, with the
//! provider's own login and consent pages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use oidc_flow_battery::{Adapter, NAME, PASSWORD, USERNAME, World};
use oidc_flow_hyper::{App, setup};

struct Hyper;

impl Adapter for Hyper {
    async fn serve(world: World) -> tokio::task::JoinHandle<()> {
        setup::add_user(&*world.store, USERNAME, PASSWORD, None, Some(NAME), None)
            .await
            .unwrap();
        let app = Arc::new(App::new(world.provider, world.store));
        tokio::spawn(async move {
            // A port taken meanwhile ends the task; the battery tries another.
            if let Ok(listener) = tokio::net::TcpListener::bind(world.addr).await {
                let _ = oidc_flow_hyper::serve(listener, app, std::future::pending()).await;
            }
        })
    }
}

oidc_flow_battery::battery!(Hyper);
