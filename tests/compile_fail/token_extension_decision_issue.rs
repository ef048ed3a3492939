// An extension grant's handler decides, it does not issue: a decision has no way to mint a
// token; only the core's ExtensionGranted, made by ExtensionRequest::decide, does.
use oidc_flow::extension::GrantDecision;
use oidc_flow::{Provider, Scope};

fn f(provider: &Provider, rng: &mut rand_chacha::ChaCha20Rng, now: time::OffsetDateTime) {
    let decision = GrantDecision::for_client(Scope::parse("api").unwrap());
    let _ = decision.issue(provider, rng, now);
}

fn main() {}
