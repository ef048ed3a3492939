//! The heap the login throttle takes for 100,000 distinct client addresses, counted exactly
//! by dhat's allocator (this test binary's global allocator): the bytes in use after minus
//! before. Run with `--nocapture` to see the figures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use oidc_flow_hyper::throttle::{Limits, Throttle};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Heap bytes in use now.
fn heap() -> usize {
    dhat::HeapStats::get().curr_bytes
}

#[test]
fn the_throttle_is_bounded_for_100k_addresses_and_beyond() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let limits = Limits::default();
    assert_eq!(limits.capacity, 100_000);
    let now = Instant::now();

    // 100,000 distinct IPv4 addresses, one failed login each on one account.
    let before = heap();
    let mut th = Throttle::new(limits);
    for i in 0..100_000u32 {
        let addr = IpAddr::from(Ipv4Addr::from(0x0a00_0000 + i));
        th.failed("admin", addr, now);
    }
    assert_eq!(th.tracked(), (1, 100_000));
    let v4 = heap() - before;

    // As many IPv6 /64s, each failing on its own (made-up) account: both tables full.
    let before = heap();
    let mut th6 = Throttle::new(limits);
    for i in 0..100_000u64 {
        let addr = IpAddr::from(Ipv6Addr::from(
            (u128::from(0x2001_0db8_0000_0000u64 + i) << 64) | 1,
        ));
        th6.failed(&format!("user-{i}"), addr, now);
    }
    assert_eq!(th6.tracked(), (100_000, 100_000));
    let both = heap() - before;

    // Churn: 200,000 more keys evict as many. The tables stay at their capacity; the heap
    // grows once, when hashbrown trades its deleted slots for a table of twice the buckets
    // (it does that instead of rehashing in place while more than half full), then no more.
    let churn = |th: &mut Throttle, from: u64, to: u64| {
        for i in from..to {
            let addr = IpAddr::from(Ipv6Addr::from(
                (u128::from(0x2001_0db8_0000_0000u64 + i) << 64) | 1,
            ));
            th.failed(&format!("user-{i}"), addr, now);
        }
    };
    churn(&mut th6, 100_000, 300_000);
    assert_eq!(th6.tracked(), (100_000, 100_000));
    let churned = heap() - before;
    churn(&mut th6, 300_000, 600_000);
    assert_eq!(th6.tracked(), (100_000, 100_000));
    let churned_more = heap() - before;

    let mb = |b: usize| b as f64 / 1_048_576.0;
    println!(
        "throttle heap: 100,000 IPv4 addresses (+1 account): {:.2} MB ({} bytes/address); \
         100,000 IPv6 /64s + 100,000 accounts: {:.2} MB; after 200,000 more keys: {:.2} MB; \
         after 300,000 more: {:.2} MB",
        mb(v4),
        v4 / 100_000,
        mb(both),
        mb(churned),
        mb(churned_more)
    );
    // The bounds the README states: under 16 MB per full table (under 12 MB once churned),
    // and no growth once churned.
    assert!(v4 < 16 << 20, "{v4} bytes");
    assert!(both < 32 << 20, "{both} bytes");
    assert!(churned < 24 << 20, "{churned} bytes");
    assert!(
        churned_more <= churned + (64 << 10),
        "{churned} -> {churned_more}"
    );
}
