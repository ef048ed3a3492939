// An unauthenticated token request has no grant: the client's credentials come first, so
// no client_credentials (or any) token is issued to a client that did not authenticate.
use oidc_flow::token;

fn f(received: token::Received) {
    let _ = received.grant();
}

fn main() {}
