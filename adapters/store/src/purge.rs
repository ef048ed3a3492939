//! The purge schedule every server runs beside its requests: expired codes, tokens, parked
//! authorizations, nonces, sessions and revocation marks are deleted at a fixed interval.
//!
//! Without it a store only grows: every unauthenticated `GET /authorize` parks a request for
//! 15 minutes, every code flow leaves a code and tokens behind. The schedule is the same for
//! every adapter, so it lives here; each adapter spawns [`purge_every`] on its runtime when
//! it starts serving and drops it when it stops.

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;

use crate::{StoreError, StoreResult};

/// How often servers purge by default: often enough that expired rows are a minute's worth
/// at most, rarely enough that the purge's own writes cost nothing measurable.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// The shortest interval [`purge_every`] accepts (shorter ones are raised to it).
pub const MIN_PURGE_INTERVAL: Duration = Duration::from_millis(10);

/// Calls `purge` (normally [`crate::Store::purge_expired`]) with the current time every
/// `every`, the first time at once, forever; `on_error` hears of each failure (the next
/// tick tries again). Run it as a task and abort or drop it to stop.
pub async fn purge_every<P, F>(every: Duration, mut purge: P, mut on_error: impl FnMut(&StoreError))
where
    P: FnMut(OffsetDateTime) -> F,
    F: Future<Output = StoreResult<u64>>,
{
    let mut tick = tokio::time::interval(every.max(MIN_PURGE_INTERVAL));
    // A server that was suspended or starved does not need a burst of purges afterwards.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = purge(OffsetDateTime::now_utc()).await {
            on_error(&e);
        }
    }
}
