// An authenticated client cannot get tokens without a grant that was redeemed.
use oidc_flow::{Provider, token};
use time::OffsetDateTime;

fn f(
    authenticated: token::ClientAuthenticated,
    provider: &Provider,
    rng: &mut rand_chacha::ChaCha20Rng,
    now: OffsetDateTime,
) {
    let _ = authenticated.issue(provider, rng, now);
}

fn main() {}
