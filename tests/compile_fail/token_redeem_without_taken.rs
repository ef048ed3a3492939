// redeem needs the store's answer (Taken), not a bare record the caller found somewhere.
use oidc_flow::{CodeRecord, token};
use time::OffsetDateTime;

fn f(exchange: token::CodeExchange, record: CodeRecord, now: OffsetDateTime) {
    let _ = exchange.redeem(record, now);
}

fn main() {}
