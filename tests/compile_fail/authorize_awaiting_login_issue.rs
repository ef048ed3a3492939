// A request waiting for login cannot issue before logged_in.
use oidc_flow::{Provider, UserInfo, authorize};
use time::OffsetDateTime;

fn f(
    waiting: authorize::AwaitingLogin,
    provider: &Provider,
    rng: &mut rand_chacha::ChaCha20Rng,
    now: OffsetDateTime,
) {
    let _ = waiting.issue(provider, &UserInfo::default(), rng, now);
}

fn main() {}
