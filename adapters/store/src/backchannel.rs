//! Delivery of back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0
//! section 2.5): the IO half of a logout, shared by every adapter.
//!
//! The core signs one logout token per client that took part in the ended session; this
//! module POSTs each as `logout_token=...` to the client's `backchannel_logout_uri`, in the
//! background, so the end-user's logout page never waits for a client. Each delivery has a
//! timeout and a bounded number of attempts (a 5xx or a network failure is retried, a 4xx is
//! the client's final answer), redirects are not followed, and the number of deliveries in
//! flight is bounded so a burst of logouts to dead clients cannot pile up tasks.

use std::sync::Arc;
use std::time::Duration;

use oidc_flow::logout::BackchannelLogout;
use tokio::sync::Semaphore;

/// How long one attempt may take (connect, send, answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per notice, the first included.
pub const MAX_ATTEMPTS: u32 = 3;
/// Pause before the second attempt; doubled before each later one.
pub const FIRST_RETRY_DELAY: Duration = Duration::from_millis(500);
/// Most deliveries in flight at once; notices beyond are dropped with a warning.
pub const MAX_IN_FLIGHT: usize = 256;

/// Why a notice could not be delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The client answered with an error status (after the last attempt, for a 5xx).
    #[error("the client answered HTTP {0}")]
    Status(u16),
    /// Connecting, sending or waiting failed (after the last attempt).
    #[error("delivery failed: {0}")]
    Transport(#[from] reqwest::Error),
}

/// Sends back-channel logout tokens; cheap to clone, one per server.
#[derive(Clone, Debug)]
pub struct BackchannelSender {
    http: reqwest::Client,
    in_flight: Arc<Semaphore>,
    first_retry_delay: Duration,
}

impl BackchannelSender {
    /// A sender with the module's timeout, attempts and bound.
    pub fn new() -> Result<Self, DeliveryError> {
        Self::with_retry_delay(FIRST_RETRY_DELAY)
    }

    /// As [`BackchannelSender::new`] with another first retry delay (tests).
    pub fn with_retry_delay(first_retry_delay: Duration) -> Result<Self, DeliveryError> {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("oidc-flow/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            first_retry_delay,
        })
    }

    /// Starts delivering every notice in the background and returns at once.
    /// Must be called within a tokio runtime.
    pub fn spawn(&self, notices: Vec<BackchannelLogout>) {
        for notice in notices {
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                tracing::warn!(
                    client_id = %notice.client_id,
                    "back-channel logout dropped: too many deliveries in flight"
                );
                continue;
            };
            let sender = self.clone();
            tokio::spawn(async move {
                match sender.deliver(&notice).await {
                    Ok(()) => {
                        tracing::info!(client_id = %notice.client_id, "back-channel logout delivered")
                    }
                    Err(e) => {
                        tracing::warn!(client_id = %notice.client_id, error = %e, "back-channel logout not delivered")
                    }
                }
                drop(permit);
            });
        }
    }

    /// Delivers one notice, retrying 5xx answers and transport failures.
    pub async fn deliver(&self, notice: &BackchannelLogout) -> Result<(), DeliveryError> {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", &notice.logout_token)
            .finish();
        let mut delay = self.first_retry_delay;
        let mut attempt = 1;
        loop {
            let result = self
                .http
                .post(&notice.uri)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("cache-control", "no-store")
                .body(body.clone())
                .send()
                .await;
            let retry = match result {
                // Section 2.8: 200 (204 is also a success) means the client logged out.
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) if r.status().is_server_error() => DeliveryError::Status(r.status().as_u16()),
                Ok(r) => return Err(DeliveryError::Status(r.status().as_u16())),
                Err(e) => DeliveryError::Transport(e),
            };
            if attempt >= MAX_ATTEMPTS {
                return Err(retry);
            }
            attempt += 1;
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
    }
}
