// Validation cannot be skipped: a ClientBound request cannot be decided.
use oidc_flow::{Authentication, authorize};
use time::OffsetDateTime;

fn f(bound: authorize::ClientBound, session: Authentication, now: OffsetDateTime) {
    let _ = bound.decide(Some(session), true, now);
}

fn main() {}
