//! The login throttle: a sans-IO limiter of failed password logins, per account and per
//! client address.
//!
//! # The policy: exponential back-off
//!
//! Each key (an account, a client address) has a count of failed logins and the time of the
//! last one. The first [`Limits::account_failures_free`] (or
//! [`Limits::address_failures_free`]) failures cost nothing; from then on the key is locked
//! for `lockout_base × 2^(failures − free)` after its last failure, at most
//! [`Limits::lockout_max`]. With the defaults (5 free, 15 s, 15 min) an account under attack
//! gets 5 guesses, then waits 15 s, 30 s, 1 min, 2 min, 4 min, 8 min and then 15 min between
//! guesses: about 14 guesses in the first hour and 4 an hour after that.
//!
//! Back-off rather than a token bucket: a bucket refills at a fixed rate forever, so its
//! steady guess rate is whatever the refill is, and a refill slow enough to stop a guesser
//! (one per 15 min) makes a person who mistyped wait 15 min too. Back-off lets a person's
//! few typos through at no cost and slows a guesser down geometrically; its state is the
//! same two numbers per key.
//!
//! Only failures count: a successful login never does, however many run at once (64 people
//! behind one NAT may sign in together). A success for an account clears that account's
//! count. It does not clear the address's count (an attacker would otherwise log in to their
//! own account between guesses).
//!
//! # Concurrent guesses
//!
//! A failure is known only once argon2 has run, so guesses sent at once would all pass a
//! check made when they arrive. The login handler therefore checks twice: when the request
//! arrives (a locked key costs no argon2 run) and again once the request holds its argon2
//! permit (see [`crate::login`]), right before the hash runs. Verifications run at most one
//! per core, so when a key becomes locked at most `cores − 1` guesses for it are already
//! running: that is the whole overshoot, however many guesses were sent at once.
//!
//! # Bounded memory
//!
//! Each table holds at most [`Limits::capacity`] keys, in least-recently-failed order
//! ([`hashlink::LruCache`]): a new key beyond the capacity evicts the key whose last failure
//! is the oldest. A key whose lock-out ended more than [`Limits::lockout_max`] ago is
//! forgotten (lazily, when it is next looked at, or evicted first since it is the oldest).
//! Keys are fixed-size: an IPv4 address, the /64 prefix of an IPv6 address, and a 64-bit
//! keyed SipHash of the normalised username (the name itself is not kept), so an entry costs
//! the same whatever the attacker sends. `tests/throttle_memory.rs` measures the heap of
//! 100,000 addresses.
//!
//! Evicting a key resets its count: an attacker who wants to reset an account's count must
//! first fail on `capacity` other keys, each failure costing the server (and waiting behind)
//! an argon2 verification.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use hashlink::LruCache;

/// The limits of the throttle (the `serve --login-*` flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Failed logins per account before it is locked (0: no per-account limit).
    pub account_failures_free: u32,
    /// Failed logins per client address (IPv4, or IPv6 /64) before it is locked (0: no
    /// per-address limit, e.g. behind a reverse proxy where every client has its address).
    pub address_failures_free: u32,
    /// The first lock-out; each further failure doubles it.
    pub lockout_base: Duration,
    /// The longest lock-out. A key is forgotten this long after its lock-out ended.
    pub lockout_max: Duration,
    /// The most keys each table (accounts, addresses) tracks.
    pub capacity: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            account_failures_free: 5,
            address_failures_free: 20,
            lockout_base: Duration::from_secs(15),
            lockout_max: Duration::from_secs(15 * 60),
            capacity: 100_000,
        }
    }
}

impl Limits {
    /// How long a key with `failures` failures stays locked after its last failure.
    fn lockout(&self, failures: u32, free: u32) -> Duration {
        if free == 0 || failures < free {
            return Duration::ZERO;
        }
        let doublings = failures - free;
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.lockout_base
            .checked_mul(factor)
            .unwrap_or(self.lockout_max)
            .min(self.lockout_max)
    }
}

/// Which limit refused a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locked {
    /// Too many failed logins for this account.
    Account,
    /// Too many failed logins from this client address.
    Address,
}

/// A refused login: which limit, and how long until the next attempt is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The limit that refused (the account's when both did and it ends last).
    pub locked: Locked,
    /// How long to wait.
    pub retry_after: Duration,
}

impl Refusal {
    /// The wait in whole seconds, rounded up and at least 1 (for `Retry-After`).
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs();
        let secs = if self.retry_after.subsec_nanos() > 0 {
            secs.saturating_add(1)
        } else {
            secs
        };
        secs.max(1)
    }
}

/// The address key: an IPv4 address, or the /64 network of an IPv6 address (one host
/// usually has a whole /64, so per-address limits on IPv6 would be free to evade).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AddrKey {
    V4(u32),
    V6(u64),
}

impl AddrKey {
    fn of(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6(u64::try_from(u128::from(v6) >> 64).unwrap_or(u64::MAX)),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    failures: u32,
    last: Instant,
}

/// One table of counters, least recently failed first.
struct Table<K> {
    map: LruCache<K, Counter>,
    free: u32,
}

impl<K: std::hash::Hash + Eq + Copy> Table<K> {
    fn new(capacity: usize, free: u32) -> Self {
        Self {
            map: LruCache::new(capacity.max(1)),
            free,
        }
    }

    /// The live counter of `key`, forgetting it if it expired.
    fn live(&mut self, key: &K, now: Instant, limits: &Limits) -> Option<Counter> {
        let counter = *self.map.peek(key)?;
        let lock = limits.lockout(counter.failures, self.free);
        let forget_at = counter
            .last
            .checked_add(lock.saturating_add(limits.lockout_max));
        if forget_at.is_some_and(|at| now >= at) {
            self.map.remove(key);
            return None;
        }
        Some(counter)
    }

    /// How long `key` is still locked at `now`, if it is.
    fn locked_for(&mut self, key: &K, now: Instant, limits: &Limits) -> Option<Duration> {
        if self.free == 0 {
            return None;
        }
        let counter = self.live(key, now, limits)?;
        let lock = limits.lockout(counter.failures, self.free);
        let until = counter.last.checked_add(lock)?;
        let left = until.saturating_duration_since(now);
        (!left.is_zero()).then_some(left)
    }

    fn fail(&mut self, key: K, now: Instant, limits: &Limits) {
        if self.free == 0 {
            return;
        }
        let failures = self
            .live(&key, now, limits)
            .map_or(0, |c| c.failures)
            .saturating_add(1);
        // insert() moves the key to the most-recent end and evicts the oldest beyond capacity.
        self.map.insert(
            key,
            Counter {
                failures,
                last: now,
            },
        );
    }

    fn clear(&mut self, key: &K) {
        self.map.remove(key);
    }
}

/// The throttle of failed logins. Sans-IO: every call takes the time; nothing reads a clock.
pub struct Throttle {
    limits: Limits,
    accounts: Table<u64>,
    addresses: Table<AddrKey>,
    names: RandomState,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("limits", &self.limits)
            .field("accounts", &self.accounts.map.len())
            .field("addresses", &self.addresses.map.len())
            .finish()
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// The account key's text: trimmed and lower-cased, so `Alice ` and `alice` share a count
/// (merging counts only makes the limit stricter).
pub fn normalise_username(username: &str) -> String {
    username.trim().to_lowercase()
}

impl Throttle {
    /// A throttle with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            accounts: Table::new(limits.capacity, limits.account_failures_free),
            addresses: Table::new(limits.capacity, limits.address_failures_free),
            names: RandomState::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The number of accounts and of addresses tracked.
    pub fn tracked(&self) -> (usize, usize) {
        (self.accounts.map.len(), self.addresses.map.len())
    }

    fn account_key(&self, username: &str) -> u64 {
        self.names.hash_one(normalise_username(username))
    }

    /// Whether a password of `username` may be checked from `addr` at `now`: refused while
    /// the account or the address is locked, with how long to wait.
    pub fn check(&mut self, username: &str, addr: IpAddr, now: Instant) -> Result<(), Refusal> {
        let account = self.account_key(username);
        let limits = self.limits;
        let a = self.accounts.locked_for(&account, now, &limits);
        let b = self.addresses.locked_for(&AddrKey::of(addr), now, &limits);
        let (locked, retry_after) = match (a, b) {
            (None, None) => return Ok(()),
            (Some(a), Some(b)) if b > a => (Locked::Address, b),
            (Some(a), _) => (Locked::Account, a),
            (None, Some(b)) => (Locked::Address, b),
        };
        Err(Refusal {
            locked,
            retry_after,
        })
    }

    /// Records a failed login of `username` from `addr` at `now`, on both keys.
    pub fn failed(&mut self, username: &str, addr: IpAddr, now: Instant) {
        let account = self.account_key(username);
        let limits = self.limits;
        self.accounts.fail(account, now, &limits);
        self.addresses.fail(AddrKey::of(addr), now, &limits);
    }

    /// Records a successful login of `username`: clears the account's count (not the
    /// address's).
    pub fn succeeded(&mut self, username: &str) {
        let account = self.account_key(username);
        self.accounts.clear(&account);
    }
}

/// The `serve` flags that set the [`Limits`] (flattened into `serve`'s arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct LoginFlags {
    /// Failed logins per account before it is locked out (0: no per-account limit).
    #[arg(long = "login-failures-free", value_name = "N", default_value_t = 5)]
    pub account_failures_free: u32,
    /// Failed logins per client address (IPv4, or IPv6 /64) before it is locked out (0: no
    /// per-address limit; use 0 behind a reverse proxy, where every client has its address).
    #[arg(
        long = "login-address-failures-free",
        value_name = "N",
        default_value_t = 20
    )]
    pub address_failures_free: u32,
    /// The first lock-out in seconds; it doubles with each further failure.
    #[arg(
        long = "login-lockout-base",
        value_name = "SECONDS",
        default_value_t = 15
    )]
    pub lockout_base: u64,
    /// The longest lock-out in seconds.
    #[arg(
        long = "login-lockout-max",
        value_name = "SECONDS",
        default_value_t = 900
    )]
    pub lockout_max: u64,
    /// The most accounts, and the most addresses, the throttle tracks (the least recently
    /// failed are forgotten first).
    #[arg(
        long = "login-throttle-capacity",
        value_name = "N",
        default_value_t = 100_000
    )]
    pub capacity: usize,
}

impl Default for LoginFlags {
    fn default() -> Self {
        let l = Limits::default();
        Self {
            account_failures_free: l.account_failures_free,
            address_failures_free: l.address_failures_free,
            lockout_base: l.lockout_base.as_secs(),
            lockout_max: l.lockout_max.as_secs(),
            capacity: l.capacity,
        }
    }
}

impl LoginFlags {
    /// The limits these flags set.
    pub fn limits(&self) -> Limits {
        Limits {
            account_failures_free: self.account_failures_free,
            address_failures_free: self.address_failures_free,
            lockout_base: Duration::from_secs(self.lockout_base),
            lockout_max: Duration::from_secs(self.lockout_max.max(self.lockout_base)),
            capacity: self.capacity.max(1),
        }
    }
}

/// A wait in words for the login page: "1 second", "45 seconds", "3 minutes" (rounded up
/// from two minutes on).
pub fn in_words(secs: u64) -> String {
    match secs {
        0 | 1 => "1 second".to_owned(),
        2..=119 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn limits() -> Limits {
        Limits {
            account_failures_free: 3,
            address_failures_free: 10,
            lockout_base: secs(10),
            lockout_max: secs(100),
            capacity: 1000,
        }
    }

    /// A wrong password as the login handler treats it: checked, then recorded if allowed.
    fn guess(th: &mut Throttle, user: &str, addr: &str, t: Instant) -> Result<(), Refusal> {
        th.check(user, ip(addr), t)?;
        th.failed(user, ip(addr), t);
        Ok(())
    }

    /// Fails `n` times for `user` from `addr`, one second apart from `t`; returns the time of
    /// the last failure.
    fn fail(th: &mut Throttle, user: &str, addr: &str, t: Instant, n: u64) -> Instant {
        let mut last = t;
        for i in 0..n {
            last = t + secs(i);
            let r = guess(th, user, addr, last);
            assert!(r.is_ok(), "guess {i} refused: {r:?}");
        }
        last
    }

    #[test]
    fn free_failures_then_lockout_doubling_to_the_cap() {
        let mut th = Throttle::new(limits());
        let t0 = Instant::now();
        let last = fail(&mut th, "alice", "192.0.2.1", t0, 3);
        // 3 free failures: the 4th attempt is refused for lockout_base from the last one.
        let r = guess(&mut th, "alice", "192.0.2.1", last).unwrap_err();
        assert_eq!(r.locked, Locked::Account);
        assert_eq!(r.retry_after, secs(10));
        assert_eq!(r.retry_after_secs(), 10);
        let r = guess(&mut th, "alice", "192.0.2.1", last + secs(4)).unwrap_err();
        assert_eq!(r.retry_after, secs(6));
        // Refusals are not counted: after the lock-out, exactly one more guess is allowed.
        let t = last + secs(10);
        guess(&mut th, "alice", "192.0.2.1", t).unwrap();
        let r = guess(&mut th, "alice", "192.0.2.1", t).unwrap_err();
        assert_eq!(r.retry_after, secs(20));
        // Then 40, 80, and capped at 100.
        let mut t = t + secs(20);
        for want in [40, 80, 100, 100, 100] {
            guess(&mut th, "alice", "192.0.2.1", t).unwrap();
            let r = guess(&mut th, "alice", "192.0.2.1", t).unwrap_err();
            assert_eq!(r.retry_after, secs(want));
            t += secs(want);
        }
    }

    #[test]
    fn the_flags_default_to_the_default_limits() {
        assert_eq!(LoginFlags::default().limits(), Limits::default());
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            flags: LoginFlags,
        }
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.flags, LoginFlags::default());
        let cli = Cli::try_parse_from([
            "x",
            "--login-failures-free",
            "3",
            "--login-address-failures-free",
            "0",
            "--login-lockout-base",
            "2",
            "--login-lockout-max",
            "60",
        ])
        .unwrap();
        let l = cli.flags.limits();
        assert_eq!((l.account_failures_free, l.address_failures_free), (3, 0));
        assert_eq!((l.lockout_base, l.lockout_max), (secs(2), secs(60)));
    }

    #[test]
    fn waits_in_words() {
        assert_eq!(in_words(1), "1 second");
        assert_eq!(in_words(15), "15 seconds");
        assert_eq!(in_words(119), "119 seconds");
        assert_eq!(in_words(120), "2 minutes");
        assert_eq!(in_words(121), "3 minutes");
        assert_eq!(in_words(900), "15 minutes");
    }

    #[test]
    fn retry_after_rounds_up() {
        let r = Refusal {
            locked: Locked::Account,
            retry_after: Duration::from_millis(1500),
        };
        assert_eq!(r.retry_after_secs(), 2);
        let r = Refusal {
            locked: Locked::Account,
            retry_after: Duration::from_millis(1),
        };
        assert_eq!(r.retry_after_secs(), 1);
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let mut th = Throttle::new(limits());
        let t0 = Instant::now();
        let last = fail(&mut th, "alice", "192.0.2.1", t0, 2);
        th.check("alice", ip("192.0.2.1"), last).unwrap();
        th.succeeded("Alice");
        // The account starts again from zero: 3 more failures are free.
        let last = fail(&mut th, "alice", "192.0.2.1", last, 3);
        assert!(guess(&mut th, "alice", "192.0.2.1", last).is_err());
        // The address kept its 2 + 3 failures: 5 more on other accounts make 10, then it is
        // locked.
        for i in 0..5 {
            guess(&mut th, &format!("x{i}"), "192.0.2.1", last).unwrap();
        }
        let r = guess(&mut th, "y", "192.0.2.1", last).unwrap_err();
        assert_eq!(r.locked, Locked::Address);
        assert_eq!(r.retry_after, secs(10));
    }

    #[test]
    fn successes_never_count() {
        let mut th = Throttle::new(limits());
        let t0 = Instant::now();
        for _ in 0..1000 {
            th.check("alice", ip("192.0.2.1"), t0).unwrap();
            th.succeeded("alice");
        }
        assert_eq!(th.tracked(), (0, 0));
    }

    #[test]
    fn the_address_limit_spares_other_addresses_and_the_account_limit_every_address() {
        let mut th = Throttle::new(limits());
        let t0 = Instant::now();
        // Ten accounts, one failure each, from one address: the address is locked.
        for i in 0..10 {
            guess(&mut th, &format!("user{i}"), "192.0.2.1", t0).unwrap();
        }
        let r = guess(&mut th, "bob", "192.0.2.1", t0).unwrap_err();
        assert_eq!(r.locked, Locked::Address);
        // Bob from elsewhere is fine.
        assert!(guess(&mut th, "bob", "192.0.2.2", t0).is_ok());
        // Alice locked from one address is locked from every address.
        let last = fail(&mut th, "alice", "198.51.100.7", t0, 3);
        let r = guess(&mut th, "alice", "203.0.113.9", last).unwrap_err();
        assert_eq!(r.locked, Locked::Account);
    }

    #[test]
    fn both_locked_reports_the_longer_wait() {
        let mut th = Throttle::new(Limits {
            address_failures_free: 3,
            ..limits()
        });
        let t0 = Instant::now();
        // Alice's account: 3 failures at t0..t0+2; the address: those 3 plus one at t0+5.
        let last = fail(&mut th, "alice", "192.0.2.1", t0, 3);
        assert!(th.check("bob", ip("192.0.2.1"), last).is_err());
        let r = th
            .check("alice", ip("192.0.2.1"), last + secs(1))
            .unwrap_err();
        assert_eq!(r.retry_after, secs(9));
        // The address's later failure (from the address table's view) ends later.
        th.failed("carol", ip("192.0.2.1"), last + secs(3));
        let r = th
            .check("alice", ip("192.0.2.1"), last + secs(4))
            .unwrap_err();
        assert_eq!(r.locked, Locked::Address);
        assert_eq!(r.retry_after, secs(19));
    }

    #[test]
    fn usernames_are_normalised_and_ipv6_grouped_by_64() {
        let mut th = Throttle::new(limits());
        let t0 = Instant::now();
        guess(&mut th, "Alice", "2001:db8:1:2::1", t0).unwrap();
        guess(&mut th, " alice", "2001:db8:1:2:ffff::9", t0).unwrap();
        guess(&mut th, "ALICE ", "2001:db8:1:2::abcd", t0).unwrap();
        assert_eq!(th.tracked(), (1, 1));
        let r = guess(&mut th, "alice", "2001:db8:9::1", t0).unwrap_err();
        assert_eq!(r.locked, Locked::Account);
        // Another /64 is another address; an IPv4-mapped IPv6 address is the IPv4 address.
        guess(&mut th, "bob", "2001:db8:1:3::1", t0).unwrap();
        guess(&mut th, "bob", "::ffff:192.0.2.1", t0).unwrap();
        guess(&mut th, "carol", "192.0.2.1", t0).unwrap();
        assert_eq!(th.tracked(), (3, 3));
    }

    #[test]
    fn entries_expire_after_the_lockout_plus_the_maximum() {
        let mut th = Throttle::new(limits());
        let t0 = Instant::now();
        let last = fail(&mut th, "alice", "192.0.2.1", t0, 3);
        // Locked 10 s, then remembered for 100 s more.
        assert!(th.check("alice", ip("192.0.2.9"), last + secs(9)).is_err());
        assert!(th.check("alice", ip("192.0.2.9"), last + secs(10)).is_ok());
        assert_eq!(th.tracked(), (1, 1));
        // Still counted at 109 s: one more failure locks for 20 s.
        guess(&mut th, "alice", "192.0.2.9", last + secs(109)).unwrap();
        let r = guess(&mut th, "alice", "192.0.2.9", last + secs(109)).unwrap_err();
        assert_eq!(r.retry_after, secs(20));
        // 20 + 100 s after that last failure it is forgotten: 3 free failures again.
        let t = last + secs(109 + 120);
        let last = fail(&mut th, "alice", "192.0.2.9", t, 3);
        assert!(guess(&mut th, "alice", "192.0.2.9", last).is_err());
        // The first address was forgotten the same way, when looked at.
        assert!(th.check("bob", ip("192.0.2.1"), last).is_ok());
        assert_eq!(th.tracked(), (1, 1));
    }

    #[test]
    fn capacity_is_a_hard_bound_evicting_the_least_recently_failed() {
        let mut th = Throttle::new(Limits {
            capacity: 100,
            ..limits()
        });
        let t0 = Instant::now();
        // Alice is locked first, then 100 other accounts fail from 100 other addresses.
        let last = fail(&mut th, "alice", "10.0.0.1", t0, 3);
        assert!(th.check("alice", ip("10.0.0.1"), last).is_err());
        for i in 0..100u32 {
            let addr = std::net::Ipv4Addr::from(0x0b00_0000 + i).to_string();
            guess(&mut th, &format!("u{i}"), &addr, last).unwrap();
            assert!(th.tracked().0 <= 100 && th.tracked().1 <= 100);
        }
        assert_eq!(th.tracked(), (100, 100));
        // Alice was the least recently failed: evicted (her count starts again).
        assert!(th.check("alice", ip("10.0.0.1"), last).is_ok());
        // The most recent keys are still there.
        guess(&mut th, "u99", "12.0.0.1", last).unwrap();
        guess(&mut th, "u99", "12.0.0.2", last).unwrap();
        assert!(guess(&mut th, "u99", "12.0.0.3", last).is_err());
    }

    #[test]
    fn a_zero_free_count_turns_that_limit_off() {
        let mut th = Throttle::new(Limits {
            address_failures_free: 0,
            ..limits()
        });
        let t0 = Instant::now();
        for i in 0..50 {
            guess(&mut th, &format!("u{i}"), "192.0.2.1", t0).unwrap();
        }
        assert_eq!(th.tracked(), (50, 0));
    }
}
