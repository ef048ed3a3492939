// Revocation needs an authenticated client: an unauthenticated request cannot become one.
use oidc_flow::token;

fn f(received: token::Received) {
    let _ = received.revocation();
}

fn main() {}
