//! Fetching a client's JWKS from its registered `jwks_uri` (RFC 7591 §2, RFC 7523): the IO
//! half of `TokenNeed::ClientKeys`, shared by every adapter through the driver.
//!
//! A fetch has a timeout, reads at most [`MAX_JWKS_BYTES`], follows no redirect, and accepts
//! https (http only on a loopback host, as registration does). A document that parsed as a
//! JWKS is kept for [`CACHE_TTL`], so a client's assertions cost one fetch per key lifetime
//! rather than one per request; a failure is not kept, so a client that fixes its endpoint
//! is heard at once.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// How long one fetch may take (connect, send, answer).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document read.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// How long a fetched document is used before it is fetched again.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// Most documents kept; beyond, the cache is emptied (clients with a `jwks_uri` are few).
const CACHE_CAPACITY: usize = 1024;

/// Fetches and caches clients' JWKS documents; one per process ([`JwksFetcher::shared`]).
#[derive(Debug)]
pub struct JwksFetcher {
    /// `None` if the HTTP client could not be built (no TLS roots): every fetch fails.
    http: Option<reqwest::Client>,
    cache: Mutex<HashMap<String, (Instant, serde_json::Value)>>,
}

static SHARED: LazyLock<JwksFetcher> = LazyLock::new(JwksFetcher::new);

impl JwksFetcher {
    /// A fetcher with the module's timeout, size limit and cache.
    pub fn new() -> Self {
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
        }
    }

    /// The process's fetcher, whose cache every request shares.
    pub fn shared() -> &'static Self {
        &SHARED
    }

    /// The JWKS document at `uri`, from the cache while fresh; `None` (logged) when it
    /// cannot be fetched, is too large, or is not a JSON object with a `keys` array.
    pub async fn fetch(&self, uri: &str) -> Option<serde_json::Value> {
        if let Some(doc) = self.cached(uri) {
            return Some(doc);
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

    fn cached(&self, uri: &str) -> Option<serde_json::Value> {
        let cache = self.cache.lock().ok()?;
        let (at, doc) = cache.get(uri)?;
        (at.elapsed() < CACHE_TTL).then(|| doc.clone())
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
