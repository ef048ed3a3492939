// A request whose client is not bound cannot be validated: bind_client comes first.
use oidc_flow::{Provider, authorize};

fn f(received: authorize::Received, provider: &Provider) {
    let _ = received.validate(provider);
}

fn main() {}
