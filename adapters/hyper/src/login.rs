//! Password verification for the login page: argon2 through a semaphore, with reused memory.
//!
//! * **At most one verification per core.** Each verification first takes a permit of a
//!   [`tokio::sync::Semaphore`] with as many permits as the process may use cores
//!   ([`std::thread::available_parallelism`], which honours `taskset` and cgroup CPU sets),
//!   then runs on tokio's blocking pool. However many logins arrive at once, the others wait
//!   (asynchronously, in arrival order: tokio's semaphore is fair) for a permit. The permit is
//!   moved into the blocking job, so a login whose client went away keeps it until its argon2
//!   run really ends: cancelled requests cannot push the number running past the bound.
//! * **Bounded, reused memory.** argon2 needs `m` KiB of working memory (7 MiB for the hashes
//!   `setup::hash_password` makes). Allocating and freeing it for every login is what made the
//!   server's resident size climb to 1.1 GB: glibc's malloc raises its mmap threshold after the
//!   first such block is freed, then serves the next ones from per-thread arenas, and every
//!   blocking thread's arena keeps its 7 MiB (and fragments) after the login is done. Here
//!   the working memory comes from a pool of buffers, one per permit at most, allocated once
//!   and reused by every verification: argon2's memory is `permits × m` for the life of the
//!   process, whatever the load.
//! * **Unknown usernames cost the same.** A username that does not exist is verified against
//!   a decoy hash made, on first use, by `setup::hash_password`: the same algorithm and
//!   parameters as the hashes of real users, so the answer takes as long either way.
//! * **The stored parameters.** A hash is verified with the algorithm, version, `m`, `t`, `p`
//!   and output length in its own PHC string, whatever new hashes use today.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use oidc_flow::MintedSecret;
use oidc_flow_store::driver::system_rng;
use oidc_flow_store::{Store, StoreError, UserRecord};
use subtle::ConstantTimeEq;
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use crate::setup;

/// The largest argon2 memory cost (KiB) a stored hash may ask for: 256 MiB. A hash asking
/// for more is refused rather than allowed to take that much memory per core.
pub const MAX_M_COST_KIB: u32 = 256 * 1024;

/// What [`PasswordVerifier::check`] found.
#[derive(Debug)]
pub enum Verdict<R> {
    /// The right password of this user.
    Right(Box<UserRecord>),
    /// An unknown user or a wrong password.
    Wrong,
    /// `admit` refused, once the request held its permit (nothing was verified).
    Refused(R),
}

/// Verifies passwords with at most one argon2 run per permit and reused working memory.
pub struct PasswordVerifier {
    permits: Arc<Semaphore>,
    parallelism: usize,
    shared: Arc<Shared>,
    decoy: OnceCell<String>,
}

/// What the blocking jobs share: the buffers and the counters the tests read.
#[derive(Default)]
struct Shared {
    buffers: Mutex<Vec<Vec<Block>>>,
    buffers_made: AtomicUsize,
    running: AtomicUsize,
    peak_running: AtomicUsize,
}

impl std::fmt::Debug for PasswordVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordVerifier")
            .field("parallelism", &self.parallelism)
            .field("available", &self.permits.available_permits())
            .finish_non_exhaustive()
    }
}

impl Default for PasswordVerifier {
    fn default() -> Self {
        Self::for_this_machine()
    }
}

impl PasswordVerifier {
    /// A verifier running at most `parallelism` (at least 1) verifications at once.
    pub fn new(parallelism: usize) -> Self {
        let parallelism = parallelism.max(1);
        Self {
            permits: Arc::new(Semaphore::new(parallelism)),
            parallelism,
            shared: Arc::new(Shared::default()),
            decoy: OnceCell::new(),
        }
    }

    /// A verifier with one permit per core this process may run on.
    pub fn for_this_machine() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
    }

    /// How many verifications may run at once.
    pub fn parallelism(&self) -> usize {
        self.parallelism
    }

    /// The most verifications that ever ran at once.
    pub fn peak_running(&self) -> usize {
        self.shared.peak_running.load(Ordering::Relaxed)
    }

    /// How many working-memory buffers were ever allocated (at most [`Self::parallelism`]).
    pub fn buffers_made(&self) -> usize {
        self.shared.buffers_made.load(Ordering::Relaxed)
    }

    /// Whether `password` is `username`'s. An unknown user costs one verification against
    /// the decoy, like a known one. `admit` is asked once the request holds its permit, right
    /// before argon2 runs (the login throttle's second look: see [`crate::throttle`]).
    pub async fn check<S: Store, R>(
        &self,
        store: &S,
        username: &str,
        password: &str,
        admit: impl FnOnce() -> Result<(), R>,
    ) -> Result<Verdict<R>, StoreError> {
        let user = store.user_by_name(username).await?;
        let phc = match &user {
            Some(u) => u.password_hash.clone(),
            None => match self.decoy().await {
                Some(d) => d.to_owned(),
                None => return Ok(Verdict::Wrong),
            },
        };
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return Ok(Verdict::Wrong);
        };
        if let Err(r) = admit() {
            return Ok(Verdict::Refused(r));
        }
        let ok = self.verify_holding(permit, &phc, password).await;
        Ok(match user {
            Some(user) if ok => Verdict::Right(Box::new(user)),
            _ => Verdict::Wrong,
        })
    }

    /// The decoy hash: a random password hashed as new users' passwords are.
    pub async fn decoy(&self) -> Option<&str> {
        let made = self
            .decoy
            .get_or_try_init(|| async {
                let random = MintedSecret::generate(&mut system_rng()).into_string();
                setup::hash_password(&random).await
            })
            .await;
        match made {
            Ok(d) => Some(d.as_str()),
            Err(e) => {
                tracing::error!(error = %e, "cannot make the decoy password hash");
                None
            }
        }
    }

    /// Whether `password` matches the PHC string `phc` (false when `phc` is unusable).
    pub async fn verify(&self, phc: &str, password: &str) -> bool {
        let Ok(permit) = self.permits.clone().acquire_owned().await else {
            return false;
        };
        self.verify_holding(permit, phc, password).await
    }

    /// [`Self::verify`] with the permit taken.
    async fn verify_holding(
        &self,
        permit: OwnedSemaphorePermit,
        phc: &str,
        password: &str,
    ) -> bool {
        let phc = phc.to_owned();
        let password = password.to_owned();
        let shared = self.shared.clone();
        let job = tokio::task::spawn_blocking(move || {
            // Held until argon2 is done, even if the request that asked is dropped.
            let _permit = permit;
            shared.run(&phc, password.as_bytes())
        });
        match job.await {
            Ok(Ok(ok)) => ok,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "a stored password hash is unusable");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "the password verification failed");
                false
            }
        }
    }
}

impl Shared {
    /// Runs one verification on a pooled buffer (the caller holds a permit).
    fn run(&self, phc: &str, password: &[u8]) -> Result<bool, String> {
        let now = self.running.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_running.fetch_max(now, Ordering::Relaxed);
        let mut buffer = self
            .buffers
            .lock()
            .ok()
            .and_then(|mut pool| pool.pop())
            .unwrap_or_else(|| {
                self.buffers_made.fetch_add(1, Ordering::Relaxed);
                Vec::new()
            });
        let result = verify_with(phc, password, &mut buffer);
        if let Ok(mut pool) = self.buffers.lock() {
            pool.push(buffer);
        }
        self.running.fetch_sub(1, Ordering::Relaxed);
        result
    }
}

/// Verifies `password` against `phc` with `buffer` as argon2's working memory (grown to the
/// hash's `m` if smaller, and kept for the next verification).
fn verify_with(phc: &str, password: &[u8], buffer: &mut Vec<Block>) -> Result<bool, String> {
    let parsed = PasswordHash::new(phc).map_err(|e| e.to_string())?;
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| e.to_string())?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| e.to_string())?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(|e| e.to_string())?;
    if params.m_cost() > MAX_M_COST_KIB {
        return Err(format!("m={} KiB is above the limit", params.m_cost()));
    }
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err("the hash has no salt or no output".into());
    };
    let blocks = params.block_count();
    if buffer.len() < blocks {
        buffer.resize(blocks, Block::default());
    }
    let memory = buffer
        .get_mut(..blocks)
        .ok_or_else(|| "buffer too small".to_owned())?;
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt.as_ref(), &mut out, memory)
        .map_err(|e| e.to_string())?;
    Ok(bool::from(out.ct_eq(expected.as_bytes())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher;

    /// A quick hash (m=256 KiB, t=1) so the debug-built tests stay fast.
    fn small_hash(password: &str) -> String {
        let params = Params::new(256, 1, 1, None).unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(password.as_bytes())
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn right_and_wrong_passwords_and_unusable_hashes() {
        let v = PasswordVerifier::new(2);
        let phc = small_hash("correct horse");
        assert!(v.verify(&phc, "correct horse").await);
        assert!(!v.verify(&phc, "correct horse ").await);
        assert!(!v.verify(&phc, "").await);
        assert!(!v.verify("not a hash", "correct horse").await);
        assert!(
            !v.verify("$argon2id$v=19$m=256,t=1,p=1$c29tZXNhbHQ", "x")
                .await
        );
    }

    #[tokio::test]
    async fn the_stored_parameters_are_used() {
        // argon2i and argon2d hashes, other costs and output lengths, all verify.
        let v = PasswordVerifier::new(1);
        for (alg, m, t, p, len) in [
            (Algorithm::Argon2i, 64, 2, 1, 32),
            (Algorithm::Argon2d, 128, 1, 2, 16),
            (Algorithm::Argon2id, 512, 3, 1, 64),
        ] {
            let params = Params::new(m, t, p, Some(len)).unwrap();
            let phc = Argon2::new(alg, Version::V0x13, params)
                .hash_password(b"pw")
                .unwrap()
                .to_string();
            assert!(v.verify(&phc, "pw").await, "{phc}");
            assert!(!v.verify(&phc, "pW").await, "{phc}");
        }
        // One pooled buffer served them all, grown to the largest.
        assert_eq!(v.buffers_made(), 1);
    }

    #[tokio::test]
    async fn a_hash_asking_for_too_much_memory_is_refused() {
        let v = PasswordVerifier::new(1);
        let phc = "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$3Wv0DYiN5ZHY8dMAeTQ2CxPHjn2hJhNkqoKpKG4gIyQ";
        assert!(!v.verify(phc, "x").await);
        assert_eq!(v.buffers_made(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn at_most_parallelism_verifications_run_at_once() {
        let v = Arc::new(PasswordVerifier::new(2));
        let phc = small_hash("pw");
        let mut tasks = Vec::new();
        for i in 0..24 {
            let (v, phc) = (v.clone(), phc.clone());
            tasks.push(tokio::spawn(async move {
                v.verify(&phc, if i % 2 == 0 { "pw" } else { "no" }).await == (i % 2 == 0)
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap());
        }
        assert_eq!(v.peak_running(), 2);
        assert!(v.buffers_made() <= 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn dropped_requests_keep_their_permit_until_argon2_is_done() {
        let v = Arc::new(PasswordVerifier::new(1));
        // Heavier hashes so they are still running when the requests are dropped.
        let params = Params::new(4096, 3, 1, None).unwrap();
        let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw")
            .unwrap()
            .to_string();
        for _ in 0..8 {
            let (v, phc) = (v.clone(), phc.clone());
            let task = tokio::spawn(async move { v.verify(&phc, "pw").await });
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            task.abort();
        }
        assert!(v.verify(&phc, "pw").await);
        assert_eq!(v.peak_running(), 1);
        assert_eq!(v.buffers_made(), 1);
    }

    #[tokio::test]
    async fn the_decoy_has_the_parameters_of_new_hashes() {
        let v = PasswordVerifier::new(1);
        let decoy = v.decoy().await.unwrap().to_owned();
        let real = setup::hash_password("someone's password").await.unwrap();
        let (d, r) = (
            PasswordHash::new(&decoy).unwrap(),
            PasswordHash::new(&real).unwrap(),
        );
        assert_eq!(d.algorithm, r.algorithm);
        assert_eq!(d.version, r.version);
        assert_eq!(d.params, r.params);
        assert_eq!(d.hash.map(|h| h.len()), r.hash.map(|h| h.len()));
        // Made once.
        assert_eq!(v.decoy().await.unwrap(), decoy);
        // And nobody's password: neither empty nor the real one.
        assert!(!v.verify(&decoy, "").await);
        assert!(!v.verify(&decoy, "someone's password").await);
    }
}
