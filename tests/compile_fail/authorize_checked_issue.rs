// A checked request must be decided against the session before it can issue.
use oidc_flow::{Provider, UserInfo, authorize};
use time::OffsetDateTime;

fn f(
    checked: authorize::Checked,
    provider: &Provider,
    rng: &mut rand_chacha::ChaCha20Rng,
    now: OffsetDateTime,
) {
    let _ = checked.issue(provider, &UserInfo::default(), rng, now);
}

fn main() {}
