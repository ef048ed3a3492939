//! The resource owner password credentials grant (RFC 6749 §4.3) as an application's own
//! grant: off unless the provider declares `password` and a client registers it. RFC 9700
//! §2.4 deprecates it (the client sees the end-user's password, and no second factor fits);
//! it is here for migrations from systems that used it, and to show the extension point.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use oidc_flow::extension::GrantDecision;
use oidc_flow::{Authentication, Client, ErrorCode, OAuthError, Scope};
use oidc_flow_hyper::login::{PasswordVerifier, Verdict};
use oidc_flow_hyper::throttle::{Limits, Throttle};
use oidc_flow_store::Store;
use oidc_flow_store::grants::TokenGrant;
use serde::Deserialize;
use time::OffsetDateTime;

/// The password grant over the provider's own users (argon2, as the login page checks them).
pub struct PasswordGrant<S> {
    store: Arc<S>,
    passwords: PasswordVerifier,
    /// Failed guesses per account, with the login page's back-off. There is no client
    /// address here (the caller is a client's backend), so only accounts are counted.
    throttle: Mutex<Throttle>,
}

impl<S> PasswordGrant<S> {
    /// The grant over `store`'s users.
    pub fn new(store: Arc<S>) -> Self {
        Self {
            store,
            passwords: PasswordVerifier::for_this_machine(),
            throttle: Mutex::new(Throttle::new(Limits {
                address_failures_free: 0,
                ..Limits::default()
            })),
        }
    }
}

/// The form of RFC 6749 §4.3.2.
#[derive(Deserialize)]
pub struct PasswordForm {
    username: String,
    password: String,
    scope: Option<String>,
}

/// The client address the throttle is given: one fixed value, never locked since
/// `address_failures_free` is 0.
const NO_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

impl<S: Store> TokenGrant for PasswordGrant<S> {
    const GRANT_TYPE: &'static str = "password";
    type Form = PasswordForm;

    async fn decide(
        &self,
        client: &Client,
        form: PasswordForm,
        _provider: &oidc_flow::Provider,
        now: OffsetDateTime,
    ) -> Result<GrantDecision, OAuthError> {
        let locked = |r: oidc_flow_hyper::throttle::Refusal| {
            OAuthError::new(
                ErrorCode::InvalidGrant,
                format!(
                    "too many failed attempts for this account: retry in {} s",
                    r.retry_after_secs()
                ),
            )
        };
        let admit = || {
            self.throttle
                .lock()
                .map_err(|_| None)?
                .check(&form.username, NO_ADDRESS, Instant::now())
                .map_err(Some)
        };
        admit().map_err(|r| r.map_or_else(server_error, locked))?;
        let verdict = self
            .passwords
            .check(&*self.store, &form.username, &form.password, admit)
            .await
            .map_err(|e| OAuthError::new(ErrorCode::ServerError, e.to_string()))?;
        let user = match verdict {
            Verdict::Right(user) => user,
            Verdict::Refused(r) => return Err(r.map_or_else(server_error, locked)),
            Verdict::Wrong => {
                if let Ok(mut t) = self.throttle.lock() {
                    t.failed(&form.username, NO_ADDRESS, Instant::now());
                }
                return Err(OAuthError::new(
                    ErrorCode::InvalidGrant,
                    "the username or password is wrong",
                ));
            }
        };
        if let Ok(mut t) = self.throttle.lock() {
            t.succeeded(&form.username);
        }
        // RFC 6749 §3.3: without a scope, the client's registered one.
        let scope = match form.scope {
            Some(s) => Scope::parse(&s)
                .map_err(|e| OAuthError::new(ErrorCode::InvalidScope, e.to_string()))?,
            None => client.scope.clone(),
        };
        let authentication = Authentication {
            subject: user.subject,
            auth_time: now,
            acr: None,
            amr: vec!["pwd".to_owned()],
            sid: None,
        };
        Ok(GrantDecision::for_end_user(authentication, scope).with_refresh_token())
    }
}

fn server_error() -> OAuthError {
    OAuthError::new(ErrorCode::ServerError, "the login throttle is unavailable")
}
