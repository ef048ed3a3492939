// A state is consumed by its transition: the same request cannot be bound twice.
use oidc_flow::{Client, authorize};

fn f(received: authorize::Received, client: Client) {
    let _first = received.bind_client(Some(client.clone()));
    let _second = received.bind_client(Some(client));
}

fn main() {}
