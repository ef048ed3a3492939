// A verified client assertion is no authenticated client until its jti is claimed: it has
// no grant to read, and its authenticated client cannot be taken out.
use oidc_flow::token;

fn f(verified: token::AssertionVerified) {
    let _ = verified.grant();
}

fn g(verified: token::AssertionVerified) -> token::ClientAuthenticated {
    verified.authenticated
}

fn main() {}
