//! Table-driven negative tests: every row is one bad request, the error code it must produce,
//! and where that error must go (an error page, a redirect to the registered redirect URI, or
//! a back-channel JSON response with the status RFC 6749 §5.2 / RFC 6750 §3 require).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use common::*;
use oidc_flow::authorize::ConsentAnswer;
use oidc_flow::jws::{self, Signer};
use oidc_flow::keys::{Algorithm, SigningKey};
use oidc_flow::pkce::s256_challenge;
use oidc_flow::{Authentication, ProviderBuilder, ResponseMode};
use time::Duration;

/// The confidential fixture client used by most rows.
const RP: &str = "rp-RS256";
/// Another confidential fixture client.
const OTHER_RP: &str = "rp-ES256";
/// A valid PKCE verifier (RFC 7636 Appendix B).
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// Another valid verifier.
const OTHER_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj";

/// The request a row sends.
enum Req {
    /// The authorization endpoint, up to its first page or redirect; if `login` is set and the
    /// endpoint asks for login or consent, that user logs in and answers.
    Authz {
        input: String,
        post: bool,
        session: Option<Authentication>,
        login: Option<(&'static str, ConsentAnswer)>,
    },
    /// The token endpoint: form body and `Authorization` header.
    Token {
        form: String,
        authorization: Option<String>,
    },
    /// The UserInfo endpoint: `Authorization` header and form body.
    UserInfo {
        authorization: Option<String>,
        body: Option<String>,
    },
}

/// What must be dead (revoked) once the row's request was answered.
enum After {
    /// This access token is refused by UserInfo (401 invalid_token).
    AccessToken(String),
    /// This refresh token is refused for `client` (invalid_grant).
    Refresh { client: &'static str, token: String },
    /// This code is refused for `client` (invalid_grant).
    Code { client: &'static str, code: String },
}

/// A request with the checks to run after it.
struct Prepared {
    req: Req,
    after: Vec<After>,
}

impl Prepared {
    fn then(mut self, after: After) -> Self {
        self.after.push(after);
        self
    }
}

/// Where the error must go.
#[derive(Debug, Clone, Copy)]
enum Disp {
    /// An error page: nothing redirected.
    Page,
    /// Redirected to the registered URI in this response mode, with `state` and `iss`.
    Redirect(ResponseMode),
    /// A back-channel JSON error with this status.
    Json(u16),
}

const QUERY: Disp = Disp::Redirect(ResponseMode::Query);
const FRAGMENT: Disp = Disp::Redirect(ResponseMode::Fragment);

/// The state every authorization row sends and every redirect must echo.
const STATE: &str = "st-42";

struct Row {
    name: &'static str,
    /// Adjusts the provider of the row's fresh harness.
    config: fn(ProviderBuilder) -> ProviderBuilder,
    /// Brings the harness to the row's starting point and builds the request.
    setup: fn(&mut Harness) -> Prepared,
    /// The expected `error` (empty: no error code, e.g. a bearer request without any token).
    code: &'static str,
    disp: Disp,
}

fn row(
    name: &'static str,
    code: &'static str,
    disp: Disp,
    setup: fn(&mut Harness) -> Prepared,
) -> Row {
    Row {
        name,
        config: |b| b,
        setup,
        code,
        disp,
    }
}

// ---- request builders ---------------------------------------------------------------------

fn authz(input: String) -> Prepared {
    Prepared {
        req: Req::Authz {
            input,
            post: false,
            session: None,
            login: None,
        },
        after: Vec::new(),
    }
}

fn authz_session(input: String, session: Authentication) -> Prepared {
    Prepared {
        req: Req::Authz {
            input,
            post: false,
            session: Some(session),
            login: None,
        },
        after: Vec::new(),
    }
}

fn authz_login(input: String, subject: &'static str, answer: ConsentAnswer) -> Prepared {
    Prepared {
        req: Req::Authz {
            input,
            post: false,
            session: None,
            login: Some((subject, answer)),
        },
        after: Vec::new(),
    }
}

fn tok(form: String, authorization: Option<String>) -> Prepared {
    Prepared {
        req: Req::Token {
            form,
            authorization,
        },
        after: Vec::new(),
    }
}

fn ui(authorization: Option<String>, body: Option<String>) -> Prepared {
    Prepared {
        req: Req::UserInfo {
            authorization,
            body,
        },
        after: Vec::new(),
    }
}

/// An authorization query of [`RP`] with `state` and the given extra parameters.
fn q(response_type: &str, extra: &str) -> String {
    query(RP, response_type, &format!("&state={STATE}{extra}"))
}

fn basic(client: &str) -> Option<String> {
    Some(Harness::basic(client))
}

fn basic_raw(id: &str, secret: &str) -> Option<String> {
    use base64::Engine as _;
    let raw = format!("{id}:{secret}");
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

fn code_form(code: &str, extra: &str) -> String {
    format!("grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_ENC}{extra}")
}

fn refresh_form(token: &str, extra: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={token}{extra}")
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---- setup helpers --------------------------------------------------------------------------

/// Runs a code flow for `client` as alice and returns the code.
fn code_for(h: &mut Harness, client: &str, extra: &str) -> String {
    let r = h.authorize_as(
        &query(client, "code", &format!("&scope=openid&state=s{extra}")),
        "alice",
    );
    r.param("code")
        .unwrap_or_else(|| panic!("setup: no code: {:?}", redirect_params(&r)))
        .to_owned()
}

/// Runs a code flow and exchange for [`RP`] as `subject`; returns the token response.
fn tokens_for(h: &mut Harness, subject: &str, scope: &str) -> serde_json::Value {
    let r = h.authorize_as(&q("code", &format!("&scope={scope}")), subject);
    let code = r.param("code").expect("setup: a code").to_owned();
    let resp = h.exchange(RP, &code, "");
    assert_eq!(resp.status, 200, "setup exchange: {}", resp.body);
    resp.json()
}

fn s(v: &serde_json::Value, name: &str) -> String {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("setup: no {name}"))
        .to_owned()
}

/// An ID token for `sub`, with this provider's issuer and [`RP`] as audience, signed by a key
/// the provider does not hold but whose kid names one it does.
fn foreign_id_token(sub: &str) -> String {
    let (key, _) = SigningKey::generate(Algorithm::ES256, Some("key-ES256")).unwrap();
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": sub, "aud": RP,
        "iat": START.unix_timestamp(), "exp": START.unix_timestamp() + 3600,
    });
    jws::encode(&claims, &Signer::Key(&key)).unwrap()
}

// ---- the table ------------------------------------------------------------------------------

fn rows() -> Vec<Row> {
    vec![
        // --- authorization endpoint: before the redirect URI is trusted → page ---
        row("authz_unknown_client", "invalid_client", Disp::Page, |_| {
            authz(query("no-such-rp", "code", "&scope=openid&state=x"))
        }),
        row(
            "authz_unregistered_redirect_uri",
            "invalid_request",
            Disp::Page,
            |_| {
                authz(format!(
                    "response_type=code&client_id={RP}&redirect_uri={}&scope=openid&state=x",
                    enc("https://evil.example/cb")
                ))
            },
        ),
        row(
            "authz_redirect_uri_trailing_slash",
            "invalid_request",
            Disp::Page,
            |_| {
                authz(format!(
                    "response_type=code&client_id={RP}&redirect_uri={}&scope=openid&state=x",
                    enc("https://rp.example.org/cb/")
                ))
            },
        ),
        row(
            "authz_redirect_uri_different_case",
            "invalid_request",
            Disp::Page,
            |_| {
                authz(format!(
                    "response_type=code&client_id={RP}&redirect_uri={}&scope=openid&state=x",
                    enc("https://rp.example.org/CB")
                ))
            },
        ),
        row(
            "authz_redirect_uri_with_extra_query",
            "invalid_request",
            Disp::Page,
            |_| {
                authz(format!(
                    "response_type=code&client_id={RP}&redirect_uri={}&scope=openid&state=x",
                    enc("https://rp.example.org/cb?next=evil")
                ))
            },
        ),
        row(
            "authz_missing_redirect_uri_openid",
            "invalid_request",
            Disp::Page,
            // post-rp registers a single redirect URI: OpenID still requires it (OIDC Core §3.1.2.1).
            |_| authz("response_type=code&client_id=post-rp&scope=openid&state=x".to_owned()),
        ),
        row(
            "authz_repeated_client_id",
            "invalid_request",
            Disp::Page,
            |_| authz(q("code", &format!("&scope=openid&client_id={RP}"))),
        ),
        row(
            "authz_repeated_redirect_uri",
            "invalid_request",
            Disp::Page,
            |_| {
                authz(q(
                    "code",
                    &format!("&scope=openid&redirect_uri={REDIRECT_ENC}"),
                ))
            },
        ),
        row(
            "authz_oversized_query",
            "invalid_request",
            Disp::Page,
            |_| {
                authz(q(
                    "code",
                    &format!("&scope=openid&pad={}", "a".repeat(16 * 1024)),
                ))
            },
        ),
        row(
            "authz_malformed_percent_encoding_ff",
            "invalid_request",
            Disp::Page,
            |_| authz(q("code", "&scope=openid&nonce=%FF")),
        ),
        row(
            "authz_malformed_percent_encoding_truncated_utf8",
            "invalid_request",
            Disp::Page,
            |_| authz(q("code", "&scope=openid&nonce=%E2%82")),
        ),
        row(
            "authz_missing_client_id",
            "invalid_request",
            Disp::Page,
            |_| {
                authz(format!(
                    "response_type=code&redirect_uri={REDIRECT_ENC}&scope=openid&state=x"
                ))
            },
        ),
        // --- authorization endpoint: redirected errors ---
        row(
            "authz_missing_response_type",
            "invalid_request",
            QUERY,
            |_| {
                authz(format!(
                    "client_id={RP}&redirect_uri={REDIRECT_ENC}&scope=openid&state={STATE}"
                ))
            },
        ),
        row(
            "authz_response_type_token_alone",
            "unsupported_response_type",
            // `token` is a token response type: its errors travel in the fragment
            // (RFC 6749 §4.2.2.1, OAuth 2.0 Multiple Response Types §5).
            FRAGMENT,
            |_| authz(q("token", "&scope=openid")),
        ),
        row(
            "authz_response_type_none",
            "unsupported_response_type",
            QUERY,
            |_| authz(q("none", "&scope=openid")),
        ),
        row(
            "authz_response_type_garbage",
            "unsupported_response_type",
            QUERY,
            |_| authz(q("c0de", "&scope=openid")),
        ),
        row(
            "authz_response_type_repeated_word",
            "unsupported_response_type",
            QUERY,
            |_| authz(q("code code", "&scope=openid")),
        ),
        row(
            "authz_response_type_not_registered",
            "unauthorized_client",
            FRAGMENT,
            // post-rp registered only `code`.
            |_| {
                authz(query(
                    "post-rp",
                    "code id_token",
                    &format!("&scope=openid&nonce=n&state={STATE}"),
                ))
            },
        ),
        row(
            "authz_id_token_without_nonce",
            "invalid_request",
            FRAGMENT,
            |_| authz(q("id_token", "&scope=openid")),
        ),
        row(
            "authz_id_token_token_without_nonce",
            "invalid_request",
            FRAGMENT,
            |_| authz(q("id_token token", "&scope=openid")),
        ),
        row(
            "authz_code_id_token_without_nonce",
            "invalid_request",
            FRAGMENT,
            |_| authz(q("code id_token", "&scope=openid")),
        ),
        row(
            "authz_code_id_token_token_without_nonce",
            "invalid_request",
            FRAGMENT,
            |_| authz(q("code id_token token", "&scope=openid")),
        ),
        Row {
            name: "authz_replayed_nonce",
            config: |b| b.check_nonce_replay(true),
            setup: |h| {
                let first = h.authorize_as(&q("code", "&scope=openid&nonce=once"), "alice");
                assert!(first.param("code").is_some(), "setup: first use succeeds");
                authz_session(
                    q("code", "&scope=openid&nonce=once"),
                    h.session("alice", Duration::ZERO),
                )
            },
            code: "invalid_request",
            disp: QUERY,
        },
        Row {
            name: "authz_replayed_nonce_implicit",
            config: |b| b.check_nonce_replay(true),
            setup: |h| {
                let first = h.authorize_as(&q("id_token", "&scope=openid&nonce=once"), "alice");
                assert!(
                    first.param("id_token").is_some(),
                    "setup: first use succeeds"
                );
                authz_session(
                    q("id_token", "&scope=openid&nonce=once"),
                    h.session("alice", Duration::ZERO),
                )
            },
            code: "invalid_request",
            disp: FRAGMENT,
        },
        row("authz_unknown_scope", "invalid_scope", QUERY, |_| {
            authz(q("code", "&scope=openid+launch_missiles"))
        }),
        row("authz_scope_bad_character", "invalid_scope", QUERY, |_| {
            authz(q("code", "&scope=openid+pro%22file"))
        }),
        row("authz_scope_missing", "invalid_scope", QUERY, |_| {
            authz(q("code", ""))
        }),
        row(
            "authz_id_token_without_openid_scope",
            "invalid_request",
            FRAGMENT,
            |_| authz(q("id_token", "&scope=profile&nonce=n")),
        ),
        row(
            "authz_prompt_none_no_session",
            "login_required",
            QUERY,
            |_| authz(q("code", "&scope=openid&prompt=none")),
        ),
        row(
            "authz_prompt_none_no_session_implicit",
            "login_required",
            FRAGMENT,
            |_| authz(q("id_token token", "&scope=openid&nonce=n&prompt=none")),
        ),
        row(
            "authz_prompt_none_no_consent",
            "consent_required",
            QUERY,
            |h| {
                authz_session(
                    q("code", "&scope=openid&prompt=none"),
                    h.session("alice", Duration::seconds(5)),
                )
            },
        ),
        row(
            "authz_prompt_none_with_login",
            "invalid_request",
            QUERY,
            |_| authz(q("code", "&scope=openid&prompt=none+login")),
        ),
        row(
            "authz_prompt_unknown_value",
            "invalid_request",
            QUERY,
            |_| authz(q("code", "&scope=openid&prompt=maybe")),
        ),
        row("authz_max_age_negative", "invalid_request", QUERY, |_| {
            authz(q("code", "&scope=openid&max_age=-1"))
        }),
        row(
            "authz_max_age_not_a_number",
            "invalid_request",
            QUERY,
            |_| authz(q("code", "&scope=openid&max_age=ten")),
        ),
        row(
            "authz_id_token_hint_garbage",
            "invalid_request",
            QUERY,
            |_| authz(q("code", "&scope=openid&id_token_hint=not.a.jwt")),
        ),
        row(
            "authz_id_token_hint_foreign_signature",
            "invalid_request",
            QUERY,
            |h| {
                authz_session(
                    q(
                        "code",
                        &format!(
                            "&scope=openid&prompt=none&id_token_hint={}",
                            foreign_id_token("alice")
                        ),
                    ),
                    h.session("alice", Duration::seconds(5)),
                )
            },
        ),
        row(
            "authz_id_token_hint_other_subject_prompt_none",
            "login_required",
            QUERY,
            |h| {
                // A genuine ID token of bob's; alice is the one logged in.
                let bobs = tokens_for(h, "bob", "openid");
                let hint = s(&bobs, "id_token");
                // alice consented too, so only the subject mismatch can fail the request.
                tokens_for(h, "alice", "openid");
                authz_session(
                    q(
                        "code",
                        &format!("&scope=openid&prompt=none&id_token_hint={hint}"),
                    ),
                    h.session("alice", Duration::seconds(5)),
                )
            },
        ),
        row(
            "authz_request_object",
            "request_not_supported",
            QUERY,
            |_| {
                authz(q(
                    "code",
                    "&scope=openid&request=eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9.",
                ))
            },
        ),
        row(
            "authz_request_uri",
            "request_uri_not_supported",
            QUERY,
            |_| {
                authz(q(
                    "code",
                    &format!(
                        "&scope=openid&request_uri={}",
                        enc("https://rp.example.org/req")
                    ),
                ))
            },
        ),
        row(
            "authz_registration",
            "registration_not_supported",
            QUERY,
            |_| {
                authz(q(
                    "code",
                    &format!(
                        "&scope=openid&registration={}",
                        enc(r#"{"client_name":"x"}"#)
                    ),
                ))
            },
        ),
        row(
            "authz_response_mode_query_with_id_token",
            "invalid_request",
            FRAGMENT,
            |_| authz(q("id_token", "&scope=openid&nonce=n&response_mode=query")),
        ),
        row(
            "authz_response_mode_query_with_code_token",
            "invalid_request",
            FRAGMENT,
            |_| authz(q("code token", "&scope=openid&response_mode=query")),
        ),
        row(
            "authz_unknown_response_mode",
            "invalid_request",
            QUERY,
            |_| authz(q("code", "&scope=openid&response_mode=carrier_pigeon")),
        ),
        row(
            "authz_bad_code_challenge_method",
            "invalid_request",
            QUERY,
            |_| {
                authz(q(
                    "code",
                    &format!(
                        "&scope=openid&code_challenge={}&code_challenge_method=S512",
                        s256_challenge(VERIFIER)
                    ),
                ))
            },
        ),
        row(
            "authz_malformed_code_challenge",
            "invalid_request",
            QUERY,
            |_| {
                authz(q(
                    "code",
                    "&scope=openid&code_challenge=abc&code_challenge_method=S256",
                ))
            },
        ),
        row(
            "authz_code_challenge_method_without_challenge",
            "invalid_request",
            QUERY,
            |_| authz(q("code", "&scope=openid&code_challenge_method=S256")),
        ),
        row(
            "authz_public_client_without_pkce",
            "invalid_request",
            QUERY,
            |_| {
                authz(query(
                    "public-rp",
                    "code",
                    &format!("&scope=openid&state={STATE}"),
                ))
            },
        ),
        row("authz_repeated_scope", "invalid_request", QUERY, |_| {
            authz(q("code", "&scope=openid&scope=openid+email"))
        }),
        row("authz_repeated_state", "invalid_request", QUERY, |_| {
            // The first state is kept and echoed.
            authz(q("code", "&scope=openid&state=second"))
        }),
        row("authz_claims_not_json", "invalid_request", QUERY, |_| {
            authz(q("code", "&scope=openid&claims=%7Bnot+json"))
        }),
        row("authz_consent_denied", "access_denied", QUERY, |_| {
            authz_login(q("code", "&scope=openid"), "alice", ConsentAnswer::Deny)
        }),
        row(
            "authz_consent_denied_implicit",
            "access_denied",
            FRAGMENT,
            |_| {
                authz_login(
                    q("id_token token", "&scope=openid&nonce=n"),
                    "alice",
                    ConsentAnswer::Deny,
                )
            },
        ),
        // --- token endpoint ---
        row("token_code_reuse", "invalid_grant", Disp::Json(400), |h| {
            let code = code_for(h, RP, "");
            let first = h.exchange(RP, &code, "");
            assert_eq!(first.status, 200, "setup: first exchange: {}", first.body);
            let json = first.json();
            tok(code_form(&code, ""), basic(RP))
                .then(After::AccessToken(s(&json, "access_token")))
                .then(After::Refresh {
                    client: RP,
                    token: s(&json, "refresh_token"),
                })
        }),
        row(
            "token_code_expired",
            "invalid_grant",
            Disp::Json(400),
            |h| {
                let code = code_for(h, RP, "");
                h.advance(Duration::seconds(61));
                tok(code_form(&code, ""), basic(RP))
            },
        ),
        row(
            "token_code_unknown",
            "invalid_grant",
            Disp::Json(400),
            |_| tok(code_form("bm90LWEtY29kZQ", ""), basic(RP)),
        ),
        row(
            "token_redirect_uri_mismatch",
            "invalid_grant",
            Disp::Json(400),
            |h| {
                let code = code_for(h, RP, "");
                tok(
                    format!(
                        "grant_type=authorization_code&code={code}&redirect_uri={}",
                        enc("https://rp.example.org/other")
                    ),
                    basic(RP),
                )
            },
        ),
        row(
            "token_redirect_uri_missing",
            "invalid_request",
            Disp::Json(400),
            |h| {
                let code = code_for(h, RP, "");
                tok(
                    format!("grant_type=authorization_code&code={code}"),
                    basic(RP),
                )
            },
        ),
        row(
            "token_wrong_client_secret",
            "invalid_client",
            Disp::Json(401),
            |h| {
                let code = code_for(h, RP, "");
                tok(code_form(&code, ""), basic_raw(RP, "not-the-secret"))
            },
        ),
        row(
            "token_unknown_client",
            "invalid_client",
            Disp::Json(401),
            |h| {
                let code = code_for(h, RP, "");
                tok(code_form(&code, ""), basic_raw("no-such-rp", "whatever"))
            },
        ),
        row(
            "token_no_client_authentication",
            "invalid_client",
            Disp::Json(401),
            |h| {
                let code = code_for(h, RP, "");
                tok(code_form(&code, ""), None)
            },
        ),
        row(
            "token_confidential_client_without_secret",
            "invalid_client",
            Disp::Json(401),
            |h| {
                let code = code_for(h, RP, "");
                tok(code_form(&code, &format!("&client_id={RP}")), None)
            },
        ),
        row(
            "token_basic_for_client_secret_post_client",
            "invalid_client",
            Disp::Json(401),
            |h| {
                let code = code_for(h, "post-rp", "");
                tok(code_form(&code, ""), basic("post-rp"))
            },
        ),
        row(
            "token_post_for_client_secret_basic_client",
            "invalid_client",
            Disp::Json(401),
            |h| {
                let code = code_for(h, RP, "");
                tok(
                    code_form(
                        &code,
                        &format!("&client_id={RP}&client_secret={}", secret_of(RP)),
                    ),
                    None,
                )
            },
        ),
        row(
            "token_basic_and_body_secret",
            "invalid_request",
            Disp::Json(400),
            |h| {
                let code = code_for(h, RP, "");
                tok(
                    code_form(&code, &format!("&client_secret={}", secret_of(RP))),
                    basic(RP),
                )
            },
        ),
        row(
            "token_body_client_id_differs_from_basic",
            "invalid_request",
            Disp::Json(400),
            |h| {
                let code = code_for(h, RP, "");
                tok(
                    code_form(&code, &format!("&client_id={OTHER_RP}")),
                    basic(RP),
                )
            },
        ),
        row(
            "token_pkce_verifier_mismatch",
            "invalid_grant",
            Disp::Json(400),
            |h| {
                let code = code_for(
                    h,
                    RP,
                    &format!(
                        "&code_challenge={}&code_challenge_method=S256",
                        s256_challenge(VERIFIER)
                    ),
                );
                tok(
                    code_form(&code, &format!("&code_verifier={OTHER_VERIFIER}")),
                    basic(RP),
                )
            },
        ),
        row(
            "token_pkce_verifier_missing",
            "invalid_grant",
            Disp::Json(400),
            |h| {
                let code = code_for(
                    h,
                    RP,
                    &format!(
                        "&code_challenge={}&code_challenge_method=S256",
                        s256_challenge(VERIFIER)
                    ),
                );
                tok(code_form(&code, ""), basic(RP))
            },
        ),
        row(
            "token_pkce_verifier_without_challenge",
            "invalid_grant",
            Disp::Json(400),
            |h| {
                let code = code_for(h, RP, "");
                tok(
                    code_form(&code, &format!("&code_verifier={VERIFIER}")),
                    basic(RP),
                )
            },
        ),
        row(
            "token_pkce_verifier_malformed",
            "invalid_request",
            Disp::Json(400),
            |h| {
                let code = code_for(
                    h,
                    RP,
                    &format!(
                        "&code_challenge={}&code_challenge_method=S256",
                        s256_challenge(VERIFIER)
                    ),
                );
                tok(code_form(&code, "&code_verifier=short"), basic(RP))
            },
        ),
        row(
            "token_public_client_pkce_mismatch",
            "invalid_grant",
            Disp::Json(400),
            |h| {
                let code = code_for(
                    h,
                    "public-rp",
                    &format!(
                        "&code_challenge={}&code_challenge_method=S256",
                        s256_challenge(VERIFIER)
                    ),
                );
                tok(
                    code_form(
                        &code,
                        &format!("&client_id=public-rp&code_verifier={OTHER_VERIFIER}"),
                    ),
                    None,
                )
            },
        ),
        row(
            "token_code_of_another_client",
            "invalid_grant",
            Disp::Json(400),
            |h| {
                let code = code_for(h, OTHER_RP, "");
                // The thief's attempt burns the code: its owner cannot redeem it either.
                tok(code_form(&code, ""), basic(RP)).then(After::Code {
                    client: OTHER_RP,
                    code,
                })
            },
        ),
        row(
            "token_refresh_reuse",
            "invalid_grant",
            Disp::Json(400),
            |h| {
                let first = tokens_for(h, "alice", "openid+offline_access");
                let rt1 = s(&first, "refresh_token");
                let second = h.token(&refresh_form(&rt1, ""), Some(&Harness::basic(RP)));
                assert_eq!(second.status, 200, "setup: first refresh: {}", second.body);
                let second = second.json();
                tok(refresh_form(&rt1, ""), basic(RP))
                    .then(After::Refresh {
                        client: RP,
                        token: s(&second, "refresh_token"),
                    })
                    .then(After::AccessToken(s(&second, "access_token")))
                    .then(After::AccessToken(s(&first, "access_token")))
            },
        ),
        row(
            "token_refresh_wider_scope",
            "invalid_scope",
            Disp::Json(400),
            |h| {
                let first = tokens_for(h, "alice", "openid+email");
                tok(
                    refresh_form(&s(&first, "refresh_token"), "&scope=openid+email+profile"),
                    basic(RP),
                )
            },
        ),
        row(
            "token_refresh_of_another_client",
            "invalid_grant",
            Disp::Json(400),
            |h| {
                let first = tokens_for(h, "alice", "openid");
                tok(
                    refresh_form(&s(&first, "refresh_token"), ""),
                    basic(OTHER_RP),
                )
            },
        ),
        row(
            "token_refresh_grant_not_registered",
            "unauthorized_client",
            Disp::Json(400),
            |_| {
                tok(
                    refresh_form(
                        "c29tZS1yZWZyZXNoLXRva2Vu",
                        &format!("&client_id=post-rp&client_secret={}", secret_of("post-rp")),
                    ),
                    None,
                )
            },
        ),
        row(
            "token_unsupported_grant_type",
            "unsupported_grant_type",
            Disp::Json(400),
            |_| {
                tok(
                    "grant_type=password&username=alice&password=pw".to_owned(),
                    basic(RP),
                )
            },
        ),
        Row {
            name: "token_extension_grant_not_registered",
            config: |b| b.extension_grant("password"),
            // A declared extension grant the client did not register (RFC 6749 §5.2).
            setup: |_| {
                tok(
                    "grant_type=password&username=alice&password=pw".to_owned(),
                    basic(RP),
                )
            },
            code: "unauthorized_client",
            disp: Disp::Json(400),
        },
        row(
            "token_assertion_keys_unreachable",
            "invalid_client",
            Disp::Json(401),
            |h| {
                // A private_key_jwt client whose jwks_uri the driver could not fetch.
                let mut client = h.clients["assert-key"].clone();
                client.client_id = "assert-far".to_owned();
                client.jwks = None;
                client.jwks_uri = Some("https://keys.example/jwks".to_owned());
                h.clients.insert(client.client_id.clone(), client);
                use base64::Engine as _;
                let b64 = |v: serde_json::Value| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
                };
                let assertion = format!(
                    "{}.{}.c2ln",
                    b64(serde_json::json!({"alg": "ES256", "kid": "k"})),
                    b64(serde_json::json!({"iss": "assert-far", "sub": "assert-far"}))
                );
                let form = TokenForm {
                    client_assertion_type: Some(
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    client_assertion: Some(&assertion),
                    ..TokenForm::grant("client_credentials")
                };
                tok(form.encode(), None)
            },
        ),
        row(
            "token_missing_grant_type",
            "invalid_request",
            Disp::Json(400),
            |h| {
                let code = code_for(h, RP, "");
                tok(
                    format!("code={code}&redirect_uri={REDIRECT_ENC}"),
                    basic(RP),
                )
            },
        ),
        row(
            "token_missing_code",
            "invalid_request",
            Disp::Json(400),
            |_| {
                tok(
                    format!("grant_type=authorization_code&redirect_uri={REDIRECT_ENC}"),
                    basic(RP),
                )
            },
        ),
        row(
            "token_repeated_code",
            "invalid_request",
            Disp::Json(400),
            |h| {
                let code = code_for(h, RP, "");
                tok(code_form(&code, &format!("&code={code}")), basic(RP))
            },
        ),
        row(
            "token_oversized_body",
            "invalid_request",
            Disp::Json(400),
            |h| {
                let code = code_for(h, RP, "");
                tok(
                    code_form(&code, &format!("&pad={}", "a".repeat(16 * 1024))),
                    basic(RP),
                )
            },
        ),
        row(
            "token_malformed_percent_encoding",
            "invalid_request",
            Disp::Json(400),
            |h| {
                let code = code_for(h, RP, "");
                tok(code_form(&code, "&pad=%FF%FE"), basic(RP))
            },
        ),
        // --- UserInfo endpoint ---
        row("userinfo_no_token", "", Disp::Json(401), |_| ui(None, None)),
        row("userinfo_other_scheme", "", Disp::Json(401), |_| {
            ui(basic(RP), None)
        }),
        row(
            "userinfo_unknown_token",
            "invalid_token",
            Disp::Json(401),
            |_| ui(bearer("bm90LWEtdG9rZW4"), None),
        ),
        row(
            "userinfo_malformed_token",
            "invalid_request",
            Disp::Json(400),
            |_| ui(bearer("not a b64token!"), None),
        ),
        row(
            "userinfo_token_in_header_and_body",
            "invalid_request",
            Disp::Json(400),
            |h| {
                let t = s(&tokens_for(h, "alice", "openid"), "access_token");
                ui(bearer(&t), Some(format!("access_token={t}")))
            },
        ),
        row(
            "userinfo_expired_token",
            "invalid_token",
            Disp::Json(401),
            |h| {
                let t = s(&tokens_for(h, "alice", "openid"), "access_token");
                h.advance(Duration::hours(1) + Duration::seconds(1));
                ui(bearer(&t), None)
            },
        ),
        row(
            "userinfo_token_without_openid",
            "insufficient_scope",
            Disp::Json(403),
            |h| {
                let json = tokens_for(h, "alice", "profile");
                assert!(
                    json.get("id_token").is_none(),
                    "setup: no openid, no ID token"
                );
                ui(bearer(&s(&json, "access_token")), None)
            },
        ),
    ]
}

// ---- the runner -------------------------------------------------------------------------------

/// Every `error_description` keeps to the characters RFC 6749 section 4.1.2.1 and 5.2 allow
/// (`%x20-21 / %x23-5B / %x5D-7E`): the table walks every error the core can produce.
fn check_description(description: Option<&str>, problems: &mut Vec<String>) {
    if let Some(d) = description
        && let Some(c) = d
            .chars()
            .find(|c| !matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E'))
    {
        problems.push(format!(
            "error_description holds {c:?}, which RFC 6749 forbids: {d}"
        ));
    }
}

fn check_redirect(
    r: &oidc_flow::Redirect,
    code: &str,
    mode: ResponseMode,
    problems: &mut Vec<String>,
) {
    check_description(r.param("error_description"), problems);
    let mut bad = |m: String| problems.push(m);
    if r.redirect_uri() != REDIRECT {
        bad(format!(
            "redirected to {:?}, not {REDIRECT}",
            r.redirect_uri()
        ));
    }
    if r.mode() != mode {
        bad(format!("response mode {:?}, expected {mode:?}", r.mode()));
    }
    if r.param("error") != Some(code) {
        bad(format!("error {:?}, expected {code:?}", r.param("error")));
    }
    if r.param("state") != Some(STATE) {
        bad(format!("state {:?}, expected {STATE:?}", r.param("state")));
    }
    if r.param("iss") != Some(ISSUER) {
        bad(format!("iss {:?}, expected {ISSUER:?}", r.param("iss")));
    }
    for secret in ["code", "access_token", "id_token"] {
        if r.param(secret).is_some() {
            bad(format!("an error redirect carries `{secret}`"));
        }
    }
    let location = r.location();
    let expected_prefix = match mode {
        ResponseMode::Query => Some(format!("{REDIRECT}?")),
        ResponseMode::Fragment => Some(format!("{REDIRECT}#")),
        ResponseMode::FormPost => None,
    };
    match (&location, &expected_prefix) {
        (Some(l), Some(p)) if l.starts_with(p.as_str()) && l.contains(&format!("error={code}")) => {
        }
        (None, None) => {}
        _ => bad(format!("Location {location:?}")),
    }
}

fn check_json(
    resp: &oidc_flow::JsonResponse,
    code: &str,
    status: u16,
    userinfo: bool,
    problems: &mut Vec<String>,
) {
    check_description(resp.json()["error_description"].as_str(), problems);
    let mut bad = |m: String| problems.push(m);
    if resp.status != status {
        bad(format!("status {}, expected {status}", resp.status));
    }
    let json = resp.json();
    let www = resp.header("www-authenticate");
    if code.is_empty() {
        // RFC 6750 §3.1: a request without authentication gets a bare challenge.
        if json.get("error").is_some() {
            bad(format!(
                "an error code for a request without a token: {}",
                resp.body
            ));
        }
        let expected = format!("Bearer realm=\"{ISSUER}\"");
        if www != Some(expected.as_str()) {
            bad(format!("WWW-Authenticate {www:?}, expected {expected:?}"));
        }
        return;
    }
    if json["error"] != code {
        bad(format!("error {}, expected {code:?}", json["error"]));
    }
    if userinfo {
        // RFC 6750 §3: every bearer error carries the challenge with its code.
        let ok = www.is_some_and(|w| {
            w.starts_with("Bearer ")
                && w.contains(&format!("realm=\"{ISSUER}\""))
                && w.contains(&format!("error=\"{code}\""))
        });
        if !ok {
            bad(format!("WWW-Authenticate {www:?}"));
        }
        if code == "insufficient_scope" && !www.is_some_and(|w| w.contains("scope=\"openid\"")) {
            bad(format!(
                "insufficient_scope does not name the scope: {www:?}"
            ));
        }
    } else {
        // RFC 6749 §5.2: invalid_client is a 401 with a challenge; the rest are 400.
        if status == 401 && !www.is_some_and(|w| w.starts_with("Basic")) {
            bad(format!("401 without a Basic challenge: {www:?}"));
        }
        if resp.header("cache-control") != Some("no-store") {
            bad("token error without Cache-Control: no-store".to_owned());
        }
    }
}

fn run(row: &Row) -> Vec<String> {
    let mut problems = Vec::new();
    let mut h = Harness::new(row.config);
    let prepared = (row.setup)(&mut h);
    match (prepared.req, row.disp) {
        (
            Req::Authz {
                input,
                post,
                session,
                login,
            },
            disp,
        ) => {
            let mut outcome = h.authorize_bytes(input.as_bytes(), post, session);
            if let Some((subject, answer)) = login {
                outcome = h.login_and_consent(outcome, subject, answer);
            }
            match (outcome, disp) {
                (AuthzOutcome::Page(p), Disp::Page) => {
                    check_description(Some(&p.error.description), &mut problems);
                    if p.error.code.as_str() != row.code {
                        problems.push(format!(
                            "page error {}, expected {}",
                            p.error.code, row.code
                        ));
                    }
                    if p.status() != 400 {
                        problems.push(format!("page status {}", p.status()));
                    }
                }
                (AuthzOutcome::Redirect(r), Disp::Redirect(mode)) => {
                    check_redirect(&r, row.code, mode, &mut problems);
                }
                (AuthzOutcome::Redirect(r), disp) => problems.push(format!(
                    "expected {disp:?}, got a redirect {:?} error={:?}",
                    r.mode(),
                    r.param("error")
                )),
                (AuthzOutcome::Page(p), disp) => {
                    problems.push(format!("expected {disp:?}, got an error page {}", p.error));
                }
                (other, disp) => problems.push(format!("expected {disp:?}, got {other:?}")),
            }
        }
        (
            Req::Token {
                form,
                authorization,
            },
            Disp::Json(status),
        ) => {
            let resp = h.token(&form, authorization.as_deref());
            check_json(&resp, row.code, status, false, &mut problems);
        }
        (
            Req::UserInfo {
                authorization,
                body,
            },
            Disp::Json(status),
        ) => {
            let resp = h.userinfo(authorization.as_deref(), body.as_deref());
            check_json(&resp, row.code, status, true, &mut problems);
        }
        (_, disp) => problems.push(format!("a back-channel request cannot end as {disp:?}")),
    }
    for after in prepared.after {
        match after {
            After::AccessToken(t) => {
                let resp = h.userinfo(Some(&format!("Bearer {t}")), None);
                if resp.status != 401 || resp.json()["error"] != "invalid_token" {
                    problems.push(format!(
                        "afterwards, an access token of the grant still works: {} {}",
                        resp.status,
                        if resp.status == 200 {
                            "<claims>"
                        } else {
                            &resp.body
                        }
                    ));
                }
            }
            After::Refresh { client, token } => {
                let resp = h.token(&refresh_form(&token, ""), Some(&Harness::basic(client)));
                if resp.status != 400 || resp.json()["error"] != "invalid_grant" {
                    problems.push(format!(
                        "afterwards, a refresh token of the grant still works: {}",
                        resp.status
                    ));
                }
            }
            After::Code { client, code } => {
                let resp = h.exchange(client, &code, "");
                if resp.status != 400 || resp.json()["error"] != "invalid_grant" {
                    problems.push(format!(
                        "afterwards, the code still works for {client}: {}",
                        resp.status
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn negative_table() {
    let rows = rows();
    assert!(rows.len() >= 40, "only {} rows", rows.len());
    let mut names = std::collections::HashSet::new();
    for r in &rows {
        assert!(names.insert(r.name), "duplicate row name {}", r.name);
    }
    let mut failures = Vec::new();
    for r in &rows {
        let problems = run(r);
        if !problems.is_empty() {
            failures.push(format!("{}:\n    {}", r.name, problems.join("\n    ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    eprintln!("{} negative rows passed", rows.len());
}

/// The valid request each family of rows starts from really succeeds, so every row fails for
/// the one reason it names.
#[test]
fn baselines_succeed() {
    let mut h = Harness::default_provider();
    let r = h.authorize_as(&q("code", "&scope=openid"), "alice");
    assert!(r.param("code").is_some(), "{:?}", redirect_params(&r));
    let r = h.authorize_as(&q("id_token token", "&scope=openid&nonce=n"), "alice");
    assert!(r.param("id_token").is_some(), "{:?}", redirect_params(&r));
    let r = h.authorize_as(&q("code token", "&scope=openid"), "alice");
    assert!(r.param("access_token").is_some());
    let r = h.authorize_as(
        &query(
            "public-rp",
            "code",
            &format!(
                "&scope=openid&state=s&code_challenge={}&code_challenge_method=S256",
                s256_challenge(VERIFIER)
            ),
        ),
        "alice",
    );
    let code = r.param("code").unwrap().to_owned();
    let resp = h.token(
        &code_form(
            &code,
            &format!("&client_id=public-rp&code_verifier={VERIFIER}"),
        ),
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let code = code_for(&mut h, "post-rp", "");
    let resp = h.token(
        &code_form(
            &code,
            &format!("&client_id=post-rp&client_secret={}", secret_of("post-rp")),
        ),
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let json = tokens_for(&mut h, "alice", "openid+email");
    let resp = h.token(
        &refresh_form(&s(&json, "refresh_token"), "&scope=openid"),
        Some(&Harness::basic(RP)),
    );
    assert_eq!(
        resp.status, 200,
        "narrower refresh scope is fine: {}",
        resp.body
    );
    let ui = h.userinfo(bearer(&s(&json, "access_token")).as_deref(), None);
    assert_eq!(ui.status, 200);
    let ui = h.userinfo(
        None,
        Some(&format!("access_token={}", s(&json, "access_token"))),
    );
    assert_eq!(ui.status, 200);
}

/// `%` not followed by two hex digits is kept literally by the WHATWG form-urlencoded parser
/// the core uses; it is not an error, and the value round-trips unchanged.
#[test]
fn lone_percent_is_literal() {
    let mut h = Harness::default_provider();
    let r = h.authorize_as(&query(RP, "code", "&scope=openid&state=a%ZZb"), "alice");
    assert_eq!(r.param("state"), Some("a%ZZb"));
}
