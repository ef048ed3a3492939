//! Fetching a client's JWKS from its registered `jwks_uri` (RFC 7591 §2, RFC 7523): the IO
//! half of `TokenNeed::ClientKeys`, shared by every adapter through the driver.
//!
//! A fetch has a timeout, reads at most [`MAX_JWKS_BYTES`], follows no redirect, and accepts
//! https (http only on a loopback host, as registration does). A document that parsed as a
//! JWKS is kept for [`CACHE_TTL`], so a client's assertions cost one fetch per key lifetime
//! rather than one per request; a failure is not kept, so a client that fixes its endpoint
//! is heard at once. An assertion naming a `kid` the kept document lacks (the client rotated
//! its keys) fetches again, at most once per [`REFRESH_INTERVAL`] per URI, so assertions
//! with made-up kids cannot make the provider hammer a client's server.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How long one fetch may take (connect, send, answer).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// How long a fetched document is used before it is fetched again.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// How soon a kept document lacking an assertion's `kid` may be fetched again.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Most documents kept; beyond, the cache is emptied (clients with a `jwks_uri` are few).
const CACHE_CAPACITY: usize = 1024;

/// Fetches and caches clients' JWKS documents; one per process ([`JwksFetcher::shared`]).
#[derive(Debug)]
pub struct JwksFetcher {
    /// `None` if the HTTP client could not be built (no TLS roots): every fetch fails.
    http: Option<reqwest::Client>,
    cache: Mutex<HashMap<String, (Instant, serde_json::Value)>>,
    refresh_interval: Duration,
}

static SHARED: LazyLock<JwksFetcher> = LazyLock::new(JwksFetcher::new);

impl JwksFetcher {
    /// A fetcher with the module's timeout, size limit and cache.
    pub fn new() -> Self {
        Self::with_refresh_interval(REFRESH_INTERVAL)
    }

    /// As [`JwksFetcher::new`], refetching a document that lacks a `kid` after `interval`
    /// instead of [`REFRESH_INTERVAL`] (tests).
    pub fn with_refresh_interval(interval: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("oidc-flow/", env!("CARGO_PKG_VERSION")))
            .build()
            .inspect_err(|e| tracing::warn!(error = %e, "no HTTP client for jwks_uri fetches"))
            .ok();
        Self {
            http,
            cache: Mutex::new(HashMap::new()),
            refresh_interval: interval,
        }
    }

    /// The process's fetcher, whose cache every request shares.
    pub fn shared() -> &'static Self {
        &SHARED
    }

    /// The JWKS document at `uri` for an assertion naming `kid`: from the cache while fresh
    /// and holding that key; `None` (logged) when it cannot be fetched, is too large, or is
    /// not a JSON object with a `keys` array.
    pub async fn fetch(&self, uri: &str, kid: Option<&str>) -> Option<serde_json::Value> {
        if let Some((age, doc)) = self.cached(uri) {
            let has_kid = kid.is_none_or(|kid| {
                doc.get("keys")
                    .and_then(serde_json::Value::as_array)
                    .is_some_and(|keys| {
                        keys.iter()
                            .any(|k| k.get("kid").and_then(serde_json::Value::as_str) == Some(kid))
                    })
            });
            if has_kid || age < self.refresh_interval {
                return Some(doc);
            }
        }
        match self.fetch_uncached(uri).await {
            Ok(doc) => {
                if let Ok(mut cache) = self.cache.lock() {
                    if cache.len() >= CACHE_CAPACITY {
                        cache.clear();
                    }
                    cache.insert(uri.to_owned(), (Instant::now(), doc.clone()));
                }
                Some(doc)
            }
            Err(why) => {
                tracing::warn!(jwks_uri = uri, error = %why, "cannot fetch a client's keys");
                None
            }
        }
    }

    /// A kept document still fresh, with its age.
    fn cached(&self, uri: &str) -> Option<(Duration, serde_json::Value)> {
        let cache = self.cache.lock().ok()?;
        let (at, doc) = cache.get(uri)?;
        let age = at.elapsed();
        (age < CACHE_TTL).then(|| (age, doc.clone()))
    }

    async fn fetch_uncached(&self, uri: &str) -> Result<serde_json::Value, String> {
        if !oidc_flow::client::is_jwks_uri(uri) {
            return Err("not an https URL (or http on a loopback host)".into());
        }
        let http = self.http.as_ref().ok_or("no HTTP client")?;
        let mut response = http
            .get(uri)
            .header("accept", "application/json, application/jwk-set+json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP {}", response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
        {
            return Err("the document is too large".into());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err("the document is too large".into());
            }
            body.extend_from_slice(&chunk);
        }
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
        if doc.get("keys").is_some_and(serde_json::Value::is_array) {
            Ok(doc)
        } else {
            Err("not a JWKS (no keys array)".into())
        }
    }
}

impl Default for JwksFetcher {
    fn default() -> Self {
        Self::new()
    }
}
