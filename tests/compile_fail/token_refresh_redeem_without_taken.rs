// redeem needs the store's answer (Taken), not a refresh token record found somewhere.
use oidc_flow::{RefreshTokenRecord, token};
use time::OffsetDateTime;

fn f(exchange: token::RefreshExchange, record: RefreshTokenRecord, now: OffsetDateTime) {
    let _ = exchange.redeem(record, now);
}

fn main() {}
