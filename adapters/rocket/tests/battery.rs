//! The shared HTTP battery (`oidc-flow-battery`) against the example Rocket app.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../examples/provider.rs"]
mod example;

use oidc_flow_battery::{Adapter, World};

struct Rocket;

impl Adapter for Rocket {
    async fn serve(world: World) -> tokio::task::JoinHandle<()> {
        let config = rocket::Config {
            port: world.addr.port(),
            address: world.addr.ip(),
            log_level: rocket::config::LogLevel::Off,
            cli_colors: false,
            shutdown: rocket::config::Shutdown {
                ctrlc: false,
                ..rocket::config::Shutdown::default()
            },
            ..rocket::Config::debug_default()
        };
        let rocket = example::app(world.provider, world.store, rocket::custom(config));
        // A port taken meanwhile ends the launch; the battery tries another.
        tokio::spawn(async move {
            let _ = rocket.launch().await;
        })
    }
}

oidc_flow_battery::battery!(Rocket);
