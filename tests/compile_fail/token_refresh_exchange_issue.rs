// A refresh exchange cannot issue before its refresh token is taken and redeemed.
use oidc_flow::{Provider, token};
use time::OffsetDateTime;

fn f(
    exchange: token::RefreshExchange,
    provider: &Provider,
    rng: &mut rand_chacha::ChaCha20Rng,
    now: OffsetDateTime,
) {
    let _ = exchange.issue(provider, rng, now);
}

fn main() {}
