// Validation cannot be skipped: a ClientBound request cannot issue.
use oidc_flow::{Provider, UserInfo, authorize};
use time::OffsetDateTime;

fn f(
    bound: authorize::ClientBound,
    provider: &Provider,
    rng: &mut rand_chacha::ChaCha20Rng,
    now: OffsetDateTime,
) {
    let _ = bound.issue(provider, &UserInfo::default(), rng, now);
}

fn main() {}
