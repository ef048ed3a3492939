// A code exchange cannot issue before the code is taken and redeemed.
use oidc_flow::{Provider, token};
use time::OffsetDateTime;

fn f(
    exchange: token::CodeExchange,
    provider: &Provider,
    rng: &mut rand_chacha::ChaCha20Rng,
    now: OffsetDateTime,
) {
    let _ = exchange.issue(provider, rng, now);
}

fn main() {}
