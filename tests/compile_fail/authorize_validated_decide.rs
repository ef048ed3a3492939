// The nonce replay check must be answered (nonce_seen) before deciding.
use oidc_flow::{Authentication, authorize};
use time::OffsetDateTime;

fn f(validated: authorize::Validated, session: Authentication, now: OffsetDateTime) {
    let _ = validated.decide(Some(session), true, now);
}

fn main() {}
