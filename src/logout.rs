//! The end-session endpoint (OpenID Connect RP-Initiated Logout 1.0) and the logout tokens
//! of OpenID Connect Back-Channel Logout 1.0, as a typestate flow:
//!
//! ```text
//! from_query / from_form(bytes) ─► Received        (syntax; client_id or the hint's aud known)
//! Received ──bind_client(Option<Client>)──► Bound   id_token_hint verified, post-logout
//!                                                   redirect URI matched exactly
//! Bound ──with_session(Option<Authentication>)──► Decision
//!     ├─ Confirm(AwaitingConfirmation)  the request does not prove who asks: ask the
//!     │        end-user ──confirm()──► Ending
//!     └─ End(Ending)                    a verified hint names the session's user, or
//!                                       there is no session to end
//! Ending ──finish(participants, ...)──► Completed<LoggedOut>
//!     effects: EndSession; response: where to send the browser, and one signed logout
//!     token per client that took part in the session and registered a back-channel URI
//! ```
//!
//! Sending the logout tokens is the adapter's IO: POST them, with a timeout and a bounded
//! number of retries, without making the end-user's page wait.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand_core::CryptoRng;
use serde::Serialize;
use time::OffsetDateTime;

use crate::authorize::{VerifiedHint, verify_id_token_hint};
use crate::client::Client;
use crate::effect::{Authentication, Completed, Effect};
use crate::error::{ErrorCode, ParseError};
use crate::jws;
use crate::params::Params;
use crate::provider::Provider;
use crate::response::ErrorPage;
use crate::secret::MintedSecret;

/// Largest end-session request accepted (query string or form body).
pub const MAX_LOGOUT_REQUEST_BYTES: usize = 16 * 1024;
/// How long a logout token is valid: it is delivered at once, retried for seconds.
pub const LOGOUT_TOKEN_LIFETIME: time::Duration = time::Duration::minutes(2);
/// The `events` member of a logout token (Back-Channel Logout section 2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

const MAX_CLIENT_ID: usize = 255;
const MAX_URI: usize = 2048;
const MAX_STATE: usize = 2048;
const MAX_HINT: usize = 8192;
const MAX_SHORT: usize = 1024;

/// A parsed end-session request whose client is not yet looked up.
#[must_use = "bind the client next"]
#[derive(Debug)]
pub struct Received {
    id_token_hint: Option<String>,
    client_id: Option<String>,
    /// The `aud` of the hint, read before it is verified, to find the client.
    hint_audience: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    ui_locales: Option<String>,
}

impl Received {
    /// Parses the query string of a GET.
    pub fn from_query(query: &[u8]) -> Result<Self, ErrorPage> {
        Self::parse(query)
    }

    /// Parses the form body of a POST (RP-Initiated Logout section 2 allows both).
    pub fn from_form(body: &[u8]) -> Result<Self, ErrorPage> {
        Self::parse(body)
    }

    fn parse(input: &[u8]) -> Result<Self, ErrorPage> {
        let page = |e: ParseError| ErrorPage::new(ErrorCode::InvalidRequest, e.to_string());
        let mut params = Params::parse(input, MAX_LOGOUT_REQUEST_BYTES).map_err(page)?;
        let id_token_hint = params
            .take_limited("id_token_hint", MAX_HINT)
            .map_err(page)?;
        let hint_audience = id_token_hint.as_deref().and_then(unverified_audience);
        // Parameters not listed are ignored (a confirmation form adds its own).
        Ok(Self {
            id_token_hint,
            client_id: params
                .take_limited("client_id", MAX_CLIENT_ID)
                .map_err(page)?,
            hint_audience,
            post_logout_redirect_uri: params
                .take_limited("post_logout_redirect_uri", MAX_URI)
                .map_err(page)?,
            state: params.take_limited("state", MAX_STATE).map_err(page)?,
            ui_locales: params.take_limited("ui_locales", MAX_SHORT).map_err(page)?,
        })
    }

    /// The request's parameters as sent, for a confirmation form to post them again.
    fn original(&self) -> Vec<(&'static str, String)> {
        [
            ("id_token_hint", &self.id_token_hint),
            ("client_id", &self.client_id),
            ("post_logout_redirect_uri", &self.post_logout_redirect_uri),
            ("state", &self.state),
            ("ui_locales", &self.ui_locales),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }

    /// The client to look up and hand to [`Received::bind_client`]: `client_id`, else the
    /// audience of `id_token_hint` (verified in `bind_client`). `None`: nothing to look up.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref().or(self.hint_audience.as_deref())
    }

    /// Binds the client (`None` when [`Received::client_id`] is `None` or unknown), verifies
    /// `id_token_hint` and matches `post_logout_redirect_uri` exactly against the client's
    /// registered ones. Errors are pages: nothing is redirected to an unverified URI.
    pub fn bind_client(
        self,
        client: Option<Client>,
        provider: &Provider,
    ) -> Result<Bound, ErrorPage> {
        self.bind(client, Some(provider))
    }

    /// Binds no client: for a request that names none ([`Received::client_id`] is `None`),
    /// which then carries no hint and no post-logout redirect to check.
    pub fn without_client(self) -> Result<Bound, ErrorPage> {
        self.bind(None, None)
    }

    fn bind(self, client: Option<Client>, provider: Option<&Provider>) -> Result<Bound, ErrorPage> {
        let original = self.original();
        let refuse = |code: ErrorCode, why: &str| Err(ErrorPage::new(code, why));
        let client = match (self.client_id(), client) {
            (None, _) => None,
            (Some(id), Some(c)) if c.client_id == id => Some(c),
            (Some(_), _) => {
                return refuse(
                    ErrorCode::InvalidClient,
                    "the client of this logout request is not registered",
                );
            }
        };
        let hint = match (&self.id_token_hint, &client) {
            (None, _) => None,
            (Some(_), None) => {
                return refuse(
                    ErrorCode::InvalidRequest,
                    "invalid id_token_hint: it names no audience",
                );
            }
            (Some(hint), Some(c)) => {
                let Some(provider) = provider else {
                    return refuse(
                        ErrorCode::ServerError,
                        "no provider to verify id_token_hint",
                    );
                };
                match verify_id_token_hint(hint, c, provider) {
                    Ok(h) => Some(h),
                    Err(e) => return Err(ErrorPage { error: e }),
                }
            }
        };
        let redirect = match (self.post_logout_redirect_uri, &client) {
            (None, _) => None,
            (Some(_), None) => {
                return refuse(
                    ErrorCode::InvalidRequest,
                    "post_logout_redirect_uri needs client_id or id_token_hint to say whose it is",
                );
            }
            (Some(uri), Some(c)) if c.has_post_logout_redirect_uri(&uri) => {
                Some(post_logout_location(&uri, self.state.as_deref()))
            }
            (Some(_), Some(_)) => {
                return refuse(
                    ErrorCode::InvalidRequest,
                    "post_logout_redirect_uri is not registered for this client",
                );
            }
        };
        Ok(Bound {
            client,
            hint,
            redirect,
            ui_locales: self.ui_locales,
            original,
        })
    }
}

/// The `aud` of a compact JWS, read without verifying it (only to find whose key verifies it).
fn unverified_audience(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    match claims.get("aud")? {
        serde_json::Value::String(a) => Some(a.clone()),
        serde_json::Value::Array(list) => list.first()?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The parameters RP-Initiated Logout §3 sends to the post-logout redirect URI.
#[derive(serde::Serialize)]
struct PostLogoutParams<'a> {
    state: &'a str,
}

/// The registered URI with `state` appended as a query parameter (serde_urlencoded),
/// after the URI's own query if it has one. Registered URIs carry no fragment.
fn post_logout_location(uri: &str, state: Option<&str>) -> String {
    let Some(state) = state else {
        return uri.to_owned();
    };
    let Ok(encoded) = serde_urlencoded::to_string(PostLogoutParams { state }) else {
        return uri.to_owned();
    };
    let sep = match uri.split_once('?') {
        Some((_, "")) => "",
        Some(_) => "&",
        None => "?",
    };
    format!("{uri}{sep}{encoded}")
}

/// A request whose client, hint and post-logout redirect are settled.
#[must_use = "decide with the session next"]
#[derive(Debug)]
pub struct Bound {
    client: Option<Client>,
    hint: Option<VerifiedHint>,
    redirect: Option<String>,
    ui_locales: Option<String>,
    original: Vec<(&'static str, String)>,
}

/// What happens with an end-session request.
#[must_use]
#[derive(Debug)]
pub enum Decision {
    /// Ask the end-user to confirm, then call [`AwaitingConfirmation::confirm`].
    Confirm(AwaitingConfirmation),
    /// End the session (or there is none): [`Ending::finish`].
    End(Ending),
}

impl Bound {
    /// Decides from the user agent's session. A request proves who asks when its verified
    /// `id_token_hint` names the session's end-user (and, if both carry one, its `sid`):
    /// then the session ends at once. Otherwise a logged-in end-user confirms first, so a
    /// link on another site cannot sign anyone out (RP-Initiated Logout section 2, 6).
    pub fn with_session(self, session: Option<Authentication>) -> Decision {
        let Some(session) = session else {
            return Decision::End(Ending {
                client: self.client,
                session: None,
                redirect: self.redirect,
            });
        };
        let proven = self.hint.as_ref().is_some_and(|h| {
            h.subject == session.subject
                && match (&h.sid, &session.sid) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        });
        let waiting = AwaitingConfirmation {
            client: self.client,
            session,
            redirect: self.redirect,
            ui_locales: self.ui_locales,
            original: self.original,
        };
        if proven {
            Decision::End(waiting.confirm())
        } else {
            Decision::Confirm(waiting)
        }
    }
}

/// A logout waiting for the end-user to confirm it.
#[must_use = "confirm it once the end-user agrees"]
#[derive(Debug)]
pub struct AwaitingConfirmation {
    client: Option<Client>,
    session: Authentication,
    redirect: Option<String>,
    ui_locales: Option<String>,
    original: Vec<(&'static str, String)>,
}

impl AwaitingConfirmation {
    /// The client that asked, if it was identified.
    pub fn client(&self) -> Option<&Client> {
        self.client.as_ref()
    }

    /// The end-user whose session would end.
    pub fn subject(&self) -> &str {
        &self.session.subject
    }

    /// `ui_locales`, preferred languages for the page.
    pub fn ui_locales(&self) -> Option<&str> {
        self.ui_locales.as_deref()
    }

    /// Where the browser goes once the end-user confirms (the registered post-logout URI
    /// with `state`), so the confirmation page's `form-action` can allow that origin.
    pub fn redirect(&self) -> Option<&str> {
        self.redirect.as_deref()
    }

    /// The request's parameters, for the confirmation form to post back (as hidden fields)
    /// with the adapter's CSRF token.
    pub fn form_fields(&self) -> &[(&'static str, String)] {
        &self.original
    }

    /// The end-user confirmed (the adapter's CSRF-protected confirmation form came back).
    pub fn confirm(self) -> Ending {
        Ending {
            client: self.client,
            session: Some(self.session),
            redirect: self.redirect,
        }
    }
}

/// A logout that ends the session: it needs the clients that took part in it.
#[must_use = "finish it with the session's clients"]
#[derive(Debug)]
pub struct Ending {
    client: Option<Client>,
    session: Option<Authentication>,
    redirect: Option<String>,
}

/// How a logout ended: where the browser goes, and the back-channel notices to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct LoggedOut {
    /// The post-logout redirect (registered URI with `state`), or `None`: show a page.
    pub redirect: Option<String>,
    /// The name of the client that asked, for the page when there is no redirect.
    pub client_name: Option<String>,
    /// Whether a session was ended (false when the user agent had none).
    pub ended: bool,
    /// One logout token per participating client with a back-channel logout URI.
    pub back_channel: Vec<BackchannelLogout>,
}

/// A logout token to POST (`logout_token=...`, form-encoded) to a client's
/// `backchannel_logout_uri` (Back-Channel Logout section 2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelLogout {
    /// The client to notify.
    pub client_id: String,
    /// Where to POST.
    pub uri: String,
    /// The signed logout token.
    pub logout_token: String,
}

#[derive(Serialize)]
struct LogoutTokenClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    events: serde_json::Value,
}

impl Ending {
    /// The session to end, whose participating clients [`Ending::finish`] needs.
    /// `None`: no session (or one from before sessions had ids): pass no clients.
    pub fn sid(&self) -> Option<&str> {
        self.session.as_ref().and_then(|s| s.sid.as_deref())
    }

    /// Ends the session: signs a logout token for each of `participants` (the clients
    /// recorded for [`Ending::sid`]) that registered a `backchannel_logout_uri`, and
    /// returns the `EndSession` effect to apply first.
    ///
    /// A client that requires `sid` gets none when the session has no id: it is skipped,
    /// as a token it must reject would be no notice at all.
    pub fn finish(
        self,
        participants: &[Client],
        provider: &Provider,
        rng: &mut impl CryptoRng,
        now: OffsetDateTime,
    ) -> Completed<LoggedOut> {
        let mut effects = Vec::new();
        let mut back_channel = Vec::new();
        let sid = self.sid().map(str::to_owned);
        if let Some(session) = &self.session {
            if let Some(sid) = &sid {
                effects.push(Effect::EndSession { sid: sid.clone() });
            }
            for client in participants {
                let Some(uri) = &client.backchannel_logout_uri else {
                    continue;
                };
                if client.backchannel_logout_session_required && sid.is_none() {
                    continue;
                }
                let Some(signer) = provider.signer_for(client) else {
                    continue;
                };
                let jti = MintedSecret::generate(rng);
                let claims = LogoutTokenClaims {
                    iss: &provider.issuer,
                    sub: &session.subject,
                    aud: &client.client_id,
                    iat: now.unix_timestamp(),
                    exp: (now + LOGOUT_TOKEN_LIFETIME).unix_timestamp(),
                    jti: jti.as_str(),
                    sid: sid.as_deref(),
                    events: serde_json::json!({ BACKCHANNEL_LOGOUT_EVENT: {} }),
                };
                // Back-Channel Logout section 2.4 recommends the explicit type.
                if let Ok(token) = jws::encode_with_typ(&claims, &signer, "logout+jwt") {
                    back_channel.push(BackchannelLogout {
                        client_id: client.client_id.clone(),
                        uri: uri.clone(),
                        logout_token: token,
                    });
                }
            }
        }
        Completed {
            response: LoggedOut {
                redirect: self.redirect,
                client_name: self
                    .client
                    .as_ref()
                    .map(|c| c.client_name.clone().unwrap_or_else(|| c.client_id.clone())),
                ended: self.session.is_some(),
                back_channel,
            },
            effects,
        }
    }
}
