// A request waiting for consent cannot issue before the end-user's answer.
use oidc_flow::{Provider, UserInfo, authorize};
use time::OffsetDateTime;

fn f(
    waiting: authorize::AwaitingConsent,
    provider: &Provider,
    rng: &mut rand_chacha::ChaCha20Rng,
    now: OffsetDateTime,
) {
    let _ = waiting.issue(provider, &UserInfo::default(), rng, now);
}

fn main() {}
