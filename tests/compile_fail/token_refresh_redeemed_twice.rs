// A redeemed refresh token issues once: issue consumes the state.
use oidc_flow::{Provider, token};
use time::OffsetDateTime;

fn f(
    redeemed: token::RefreshRedeemed,
    provider: &Provider,
    rng: &mut rand_chacha::ChaCha20Rng,
    now: OffsetDateTime,
) {
    let _first = redeemed.issue(provider, rng, now);
    let _second = redeemed.issue(provider, rng, now);
}

fn main() {}
