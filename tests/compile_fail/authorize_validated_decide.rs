// The nonce replay claim must be answered (nonce_claimed) before deciding.
use oidc_flow::{Authentication, authorize};
use time::OffsetDateTime;

fn f(validated: authorize::Validated, session: Authentication, now: OffsetDateTime) {
    let _ = validated.decide(Some(session), true, now);
}

fn main() {}
