// A request whose client is not bound cannot issue.
use oidc_flow::{Provider, UserInfo, authorize};
use time::OffsetDateTime;

fn f(
    received: authorize::Received,
    provider: &Provider,
    rng: &mut rand_chacha::ChaCha20Rng,
    now: OffsetDateTime,
) {
    let _ = received.issue(provider, &UserInfo::default(), rng, now);
}

fn main() {}
