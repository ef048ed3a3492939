//! The checks of the OpenID conformance suite's Basic, Implicit, Hybrid and Form Post OP plans
//! (see CONFORMANCE.md) that the core decides, one test per module (`-` → `_`; plan variants
//! prefixed `implicit_`, `hybrid_`, `form_post_`). ID token signatures are verified by an
//! independent library in tests/flows.rs; here only their claims are checked.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use oidc_flow::authorize::ConsentAnswer;
use oidc_flow::pkce::s256_challenge;
use oidc_flow::{Client, Redirect, ResponseMode};
use serde_json::Value;
use time::Duration;

// ---- decoding helpers -------------------------------------------------------------------------

/// Decodes one base64url (unpadded) JWS segment as JSON.
fn segment_json(segment: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .unwrap_or_else(|e| panic!("segment is not unpadded base64url: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("segment is not JSON: {e}"))
}

/// The header of a compact JWS.
fn jwt_header(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS has three segments");
    segment_json(parts[0])
}

/// The claims of a compact JWS (signature not checked here).
fn jwt_claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS has three segments");
    assert!(!parts[2].is_empty(), "the ID token is signed");
    segment_json(parts[1])
}

/// OIDC Core §3.1.3.6 / §3.3.2.11: base64url of the left half of SHA-256 (RS256/ES256/PS256).
fn half_sha256(value: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

// ---- flow helpers -----------------------------------------------------------------------------

const RP: &str = "rp-RS256";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// The front channel for [`RP`] with alice logging in and consenting.
fn front(h: &mut Harness, response_type: &str, extra: &str) -> Redirect {
    h.authorize_as(&query(RP, response_type, extra), "alice")
}

/// Exchanges `code` for [`RP`], requiring success.
fn exchange_ok(h: &mut Harness, code: &str) -> Value {
    let resp = h.exchange(RP, code, "");
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    resp.json()
}

/// The code flow for [`RP`] up to the token response.
fn code_flow(h: &mut Harness, extra: &str) -> Value {
    let r = front(h, "code", extra);
    assert_eq!(r.mode(), ResponseMode::Query);
    let code = r
        .param("code")
        .unwrap_or_else(|| panic!("no code: {:?}", redirect_params(&r)))
        .to_owned();
    exchange_ok(h, &code)
}

fn str_of<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("`{name}` missing in {v}"))
}

/// UserInfo with the bearer header, requiring success.
fn userinfo_ok(h: &mut Harness, access_token: &str) -> Value {
    let resp = h.userinfo(Some(&format!("Bearer {access_token}")), None);
    assert_eq!(resp.status, 200, "{}", resp.body);
    resp.json()
}

/// The ID token checks every plan makes (OIDC Core §3.1.3.7): iss, aud, sub, exp, iat,
/// auth_time, nonce.
fn check_id_token(h: &Harness, jwt: &str, nonce: Option<&str>) -> Value {
    let c = jwt_claims(jwt);
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["aud"], RP, "aud is the client alone");
    assert!(c.get("azp").is_none(), "no azp with a single audience");
    assert_eq!(c["sub"], "alice");
    let iat = c["iat"].as_i64().expect("iat is a number");
    let exp = c["exp"].as_i64().expect("exp is a number");
    assert_eq!(iat, h.now.unix_timestamp(), "iat is the time of issue");
    assert!(exp > iat, "exp after iat");
    assert!(exp - iat <= 24 * 3600, "a sane lifetime");
    if let Some(auth_time) = c.get("auth_time") {
        assert!(auth_time.as_i64().expect("auth_time is a number") <= iat);
    }
    match nonce {
        Some(n) => assert_eq!(c["nonce"], n),
        None => assert!(c.get("nonce").is_none(), "no nonce was sent: {c}"),
    }
    let header = jwt_header(jwt);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["typ"], "JWT");
    c
}

/// The keys of a JSON object.
fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn auth_time_of(token_response: &Value) -> i64 {
    jwt_claims(str_of(token_response, "id_token"))["auth_time"]
        .as_i64()
        .expect("auth_time present")
}

// ---- Basic OP ---------------------------------------------------------------------------------

#[test]
fn oidcc_server() {
    let mut h = Harness::default_provider();
    let r = front(&mut h, "code", "&scope=openid&state=st1&nonce=n-123");
    assert_eq!(r.redirect_uri(), REDIRECT);
    assert_eq!(r.mode(), ResponseMode::Query);
    assert_eq!(r.param("state"), Some("st1"));
    assert_eq!(r.param("iss"), Some(ISSUER));
    assert!(r.param("id_token").is_none() && r.param("access_token").is_none());
    let code = r.param("code").unwrap().to_owned();
    assert!(code.len() >= 43, "a code of 256 bits");
    let t = exchange_ok(&mut h, &code);
    assert_eq!(t["token_type"], "Bearer");
    assert!(t["expires_in"].as_i64().unwrap() > 0);
    let id_token = str_of(&t, "id_token");
    let c = check_id_token(&h, id_token, Some("n-123"));
    assert_eq!(
        c["at_hash"].as_str(),
        Some(half_sha256(str_of(&t, "access_token")).as_str())
    );
    assert!(
        c.get("c_hash").is_none(),
        "no c_hash from the token endpoint"
    );
    let ui = userinfo_ok(&mut h, str_of(&t, "access_token"));
    assert_eq!(ui["sub"], c["sub"], "UserInfo sub equals the ID token's");
}

#[test]
fn oidcc_response_type_missing() {
    let mut h = Harness::default_provider();
    let out = h.authorize(
        &format!("client_id={RP}&redirect_uri={REDIRECT_ENC}&scope=openid&state=st&nonce=n"),
        None,
    );
    match out {
        AuthzOutcome::Redirect(r) => {
            assert_eq!(r.redirect_uri(), REDIRECT);
            let e = r.param("error").unwrap();
            assert!(
                e == "invalid_request" || e == "unsupported_response_type",
                "{e}"
            );
            assert_eq!(r.param("state"), Some("st"));
            assert!(r.param("code").is_none());
        }
        AuthzOutcome::Page(_) => {}
        other => panic!("no response_type must fail, got {other:?}"),
    }
}

#[test]
fn oidcc_idtoken_signature() {
    let mut h = Harness::default_provider();
    // A client that asks for no algorithm gets the provider's default, RS256.
    let client: Client = serde_json::from_value(serde_json::json!({
        "client_id": "no-alg-rp",
        "client_secret": secret_of("no-alg-rp"),
        "redirect_uris": [REDIRECT],
    }))
    .unwrap();
    h.clients
        .insert("no-alg-rp".into(), client.validate().unwrap());
    let r = h.authorize_as(
        &query("no-alg-rp", "code", "&scope=openid&state=s&nonce=n"),
        "alice",
    );
    let resp = h.exchange("no-alg-rp", r.param("code").unwrap(), "");
    assert_eq!(resp.status, 200, "{}", resp.body);
    let id_token = resp.json()["id_token"].as_str().unwrap().to_owned();
    let header = jwt_header(&id_token);
    assert_eq!(header["alg"], "RS256");
    let kid = header["kid"].as_str().expect("a kid in the header");
    let jwks = h.provider.jwks();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
    assert_eq!(key["kty"], "RSA");
    assert!(key.get("d").is_none(), "the JWKS holds no private part");
    assert!(jwt_claims(&id_token)["aud"] == "no-alg-rp");
}

fn userinfo_flow() -> (Harness, String) {
    let mut h = Harness::default_provider();
    let t = code_flow(&mut h, "&scope=openid+email&state=s");
    let at = str_of(&t, "access_token").to_owned();
    (h, at)
}

#[test]
fn oidcc_userinfo_get() {
    let (mut h, at) = userinfo_flow();
    let ui = h.userinfo(Some(&format!("Bearer {at}")), None);
    assert_eq!(ui.status, 200);
    assert_eq!(ui.header("cache-control"), Some("no-store"));
    assert_eq!(ui.json()["sub"], "alice");
    assert_eq!(ui.json()["email"], "alice@example.com");
}

#[test]
fn oidcc_userinfo_post_header() {
    // A POST with the bearer header and an empty body: the header carries the token.
    let (mut h, at) = userinfo_flow();
    let ui = h.userinfo(Some(&format!("Bearer {at}")), Some(""));
    assert_eq!(ui.status, 200, "{}", ui.body);
    assert_eq!(ui.json()["sub"], "alice");
}

#[test]
fn oidcc_userinfo_post_body() {
    let (mut h, at) = userinfo_flow();
    let ui = h.userinfo(None, Some(&format!("access_token={at}")));
    assert_eq!(ui.status, 200, "{}", ui.body);
    assert_eq!(ui.json()["sub"], "alice");
    assert_eq!(ui.json()["email"], "alice@example.com");
}

#[test]
fn oidcc_ensure_request_without_nonce_succeeds_for_code_flow() {
    let mut h = Harness::default_provider();
    let t = code_flow(&mut h, "&scope=openid&state=s");
    check_id_token(&h, str_of(&t, "id_token"), None);
}

fn scope_claims(scope: &str) -> Value {
    let mut h = Harness::default_provider();
    let t = code_flow(&mut h, &format!("&scope={scope}&state=s"));
    assert_eq!(t["scope"], scope.replace('+', " "));
    userinfo_ok(&mut h, str_of(&t, "access_token"))
}

const PROFILE: [&str; 6] = [
    "birthdate",
    "family_name",
    "given_name",
    "name",
    "preferred_username",
    "updated_at",
];

#[test]
fn oidcc_scope_profile() {
    let ui = scope_claims("openid+profile");
    let mut expected = PROFILE.to_vec();
    expected.push("sub");
    expected.sort_unstable();
    assert_eq!(keys(&ui), expected);
    assert_eq!(ui["name"], "Alice Liddell");
    assert!(ui["updated_at"].is_i64(), "updated_at is a number");
}

#[test]
fn oidcc_scope_email() {
    let ui = scope_claims("openid+email");
    assert_eq!(keys(&ui), ["email", "email_verified", "sub"]);
    assert_eq!(ui["email_verified"], true);
}

#[test]
fn oidcc_scope_address() {
    let ui = scope_claims("openid+address");
    assert_eq!(keys(&ui), ["address", "sub"]);
    assert_eq!(ui["address"]["locality"], "Oxford");
}

#[test]
fn oidcc_scope_phone() {
    let ui = scope_claims("openid+phone");
    assert_eq!(keys(&ui), ["phone_number", "phone_number_verified", "sub"]);
    assert_eq!(ui["phone_number_verified"], false);
}

#[test]
fn oidcc_scope_all() {
    let ui = scope_claims("openid+profile+email+address+phone");
    let mut expected = PROFILE.to_vec();
    expected.extend([
        "address",
        "email",
        "email_verified",
        "phone_number",
        "phone_number_verified",
        "sub",
    ]);
    expected.sort_unstable();
    assert_eq!(keys(&ui), expected);
    assert!(
        ui.get("favourite_colour").is_none(),
        "no custom claim without its scope"
    );
}

#[test]
fn oidcc_alternate_happy_flow() {
    let mut h = Harness::default_provider();
    let q = format!(
        "nonce=n-alt&scope=email+openid&state=st-alt&redirect_uri={REDIRECT_ENC}&client_id={RP}&response_type=code"
    );
    let r = h.authorize_as(&q, "alice");
    assert_eq!(r.param("state"), Some("st-alt"));
    let t = exchange_ok(&mut h, r.param("code").unwrap());
    check_id_token(&h, str_of(&t, "id_token"), Some("n-alt"));
    let ui = userinfo_ok(&mut h, str_of(&t, "access_token"));
    assert_eq!(ui["email"], "alice@example.com");
}

/// Runs a request that must reach the login page, checks the page's input, then completes it.
fn login_page_then_success(extra: &str, check: impl FnOnce(&oidc_flow::authorize::AwaitingLogin)) {
    let mut h = Harness::default_provider();
    let out = h.authorize(&query(RP, "code", extra), None);
    let AuthzOutcome::Login(login) = &out else {
        panic!("expected the login page, got {out:?}");
    };
    check(login);
    let r = h
        .login_and_consent(out, "alice", ConsentAnswer::Allow)
        .redirect();
    assert!(r.param("error").is_none(), "{:?}", redirect_params(&r));
    exchange_ok(&mut h, r.param("code").unwrap());
}

#[test]
fn oidcc_display_page() {
    login_page_then_success("&scope=openid&state=s&display=page", |l| {
        assert_eq!(l.display(), Some("page"));
    });
}

#[test]
fn oidcc_display_popup() {
    login_page_then_success("&scope=openid&state=s&display=popup", |l| {
        assert_eq!(l.display(), Some("popup"));
    });
}

#[test]
fn oidcc_login_hint() {
    login_page_then_success(
        "&scope=openid&state=s&login_hint=alice%40example.com",
        |l| assert_eq!(l.login_hint(), Some("alice@example.com")),
    );
}

#[test]
fn oidcc_ui_locales() {
    login_page_then_success("&scope=openid&state=s&ui_locales=se+en", |l| {
        assert_eq!(l.ui_locales(), Some("se en"));
    });
}

#[test]
fn oidcc_claims_locales() {
    login_page_then_success("&scope=openid&state=s&claims_locales=se+en", |l| {
        assert_eq!(l.claims_locales(), Some("se en"));
    });
}

#[test]
fn oidcc_ensure_request_with_acr_values_succeeds() {
    login_page_then_success("&scope=openid&state=s&acr_values=1+2", |l| {
        assert_eq!(l.acr_values(), Some("1 2"));
    });
}

#[test]
fn oidcc_ensure_request_with_unknown_parameter_succeeds() {
    login_page_then_success(
        "&scope=openid&state=s&extra_unknown_param=foobar&another=1",
        |_| {},
    );
}

#[test]
fn oidcc_prompt_login() {
    let mut h = Harness::new(|b| b.always_include_auth_time(true));
    let first = code_flow(&mut h, "&scope=openid&state=s&nonce=n1");
    let first_auth = auth_time_of(&first);
    assert_eq!(first_auth, START.unix_timestamp());
    h.advance(Duration::seconds(10));
    // alice is logged in (since START) and consented; prompt=login still shows the login page.
    let session = h.session("alice", Duration::seconds(10));
    let out = h.authorize(
        &query(RP, "code", "&scope=openid&state=s2&nonce=n2&prompt=login"),
        Some(session),
    );
    let AuthzOutcome::Login(login) = &out else {
        panic!("prompt=login must show the login page, got {out:?}");
    };
    assert!(login.prompt().login);
    let r = h
        .login_and_consent(out, "alice", ConsentAnswer::Allow)
        .redirect();
    let second = exchange_ok(&mut h, r.param("code").unwrap());
    let c = check_id_token(&h, str_of(&second, "id_token"), Some("n2"));
    assert!(
        c["auth_time"].as_i64().unwrap() > first_auth,
        "auth_time moves forward after the second login"
    );
    assert_eq!(c["auth_time"].as_i64().unwrap(), h.now.unix_timestamp());
}

#[test]
fn oidcc_prompt_none_not_logged_in() {
    let mut h = Harness::default_provider();
    let r = h
        .authorize(
            &query(RP, "code", "&scope=openid&state=st&nonce=n&prompt=none"),
            None,
        )
        .redirect();
    assert_eq!(r.redirect_uri(), REDIRECT);
    assert_eq!(r.mode(), ResponseMode::Query);
    assert_eq!(r.param("error"), Some("login_required"));
    assert_eq!(r.param("state"), Some("st"));
    assert_eq!(r.param("iss"), Some(ISSUER));
    assert!(r.param("code").is_none());
}

#[test]
fn oidcc_prompt_none_logged_in() {
    let mut h = Harness::new(|b| b.always_include_auth_time(true));
    let first = code_flow(&mut h, "&scope=openid&state=s&nonce=n1");
    let first_claims = jwt_claims(str_of(&first, "id_token"));
    h.advance(Duration::seconds(5));
    let session = h.session("alice", Duration::seconds(5));
    let out = h.authorize(
        &query(RP, "code", "&scope=openid&state=s2&nonce=n2&prompt=none"),
        Some(session),
    );
    let AuthzOutcome::Redirect(r) = out else {
        panic!("prompt=none with a session must not show a page, got {out:?}");
    };
    assert_eq!(r.param("state"), Some("s2"));
    let second = exchange_ok(&mut h, r.param("code").expect("a code, no error"));
    let c = check_id_token(&h, str_of(&second, "id_token"), Some("n2"));
    assert_eq!(c["sub"], first_claims["sub"], "same sub");
    assert_eq!(c["auth_time"], first_claims["auth_time"], "auth_time kept");
}

#[test]
fn oidcc_max_age_1() {
    let mut h = Harness::default_provider();
    let first = code_flow(&mut h, "&scope=openid&state=s&nonce=n1&max_age=1");
    assert_eq!(auth_time_of(&first), START.unix_timestamp());
    h.advance(Duration::seconds(2));
    let session = h.session("alice", Duration::seconds(2));
    let out = h.authorize(
        &query(RP, "code", "&scope=openid&state=s2&nonce=n2&max_age=1"),
        Some(session),
    );
    assert!(
        matches!(out, AuthzOutcome::Login(_)),
        "a session older than max_age needs a new login, got {out:?}"
    );
    let r = h
        .login_and_consent(out, "alice", ConsentAnswer::Allow)
        .redirect();
    let second = exchange_ok(&mut h, r.param("code").unwrap());
    let c = check_id_token(&h, str_of(&second, "id_token"), Some("n2"));
    assert_eq!(
        c["auth_time"].as_i64(),
        Some(h.now.unix_timestamp()),
        "auth_time present and new"
    );
}

#[test]
fn oidcc_max_age_10000() {
    let mut h = Harness::default_provider();
    let first = code_flow(&mut h, "&scope=openid&state=s&nonce=n1&max_age=10000");
    let first_auth = auth_time_of(&first);
    h.advance(Duration::seconds(30));
    let session = h.session("alice", Duration::seconds(30));
    let r = h
        .authorize(
            &query(RP, "code", "&scope=openid&state=s2&nonce=n2&max_age=10000"),
            Some(session),
        )
        .redirect();
    let second = exchange_ok(&mut h, r.param("code").expect("no new login, a code"));
    let c = check_id_token(&h, str_of(&second, "id_token"), Some("n2"));
    assert_eq!(
        c["auth_time"].as_i64(),
        Some(first_auth),
        "auth_time consistent"
    );
}

#[test]
fn oidcc_id_token_hint() {
    let mut h = Harness::default_provider();
    let first = code_flow(&mut h, "&scope=openid&state=s&nonce=n1");
    let hint = str_of(&first, "id_token").to_owned();
    h.advance(Duration::seconds(5));
    let session = h.session("alice", Duration::seconds(5));
    let out = h.authorize(
        &query(
            RP,
            "code",
            &format!("&scope=openid&state=s2&nonce=n2&prompt=none&id_token_hint={hint}"),
        ),
        Some(session),
    );
    let AuthzOutcome::Redirect(r) = out else {
        panic!("must succeed silently, got {out:?}");
    };
    let second = exchange_ok(&mut h, r.param("code").expect("a code, no error"));
    let c = check_id_token(&h, str_of(&second, "id_token"), Some("n2"));
    assert_eq!(c["sub"], jwt_claims(&hint)["sub"]);
}

fn code_reuse(wait: Duration) {
    let mut h = Harness::default_provider();
    let r = front(&mut h, "code", "&scope=openid&state=s");
    let code = r.param("code").unwrap().to_owned();
    let t = exchange_ok(&mut h, &code);
    let at = str_of(&t, "access_token").to_owned();
    userinfo_ok(&mut h, &at);
    h.advance(wait);
    let again = h.exchange(RP, &code, "");
    assert_eq!(again.status, 400);
    assert_eq!(again.json()["error"], "invalid_grant");
    let ui = h.userinfo(Some(&format!("Bearer {at}")), None);
    assert_eq!(ui.status, 401, "the first use's access token is revoked");
    assert_eq!(ui.json()["error"], "invalid_token");
    let refresh = h.token(
        &format!(
            "grant_type=refresh_token&refresh_token={}",
            str_of(&t, "refresh_token")
        ),
        Some(&Harness::basic(RP)),
    );
    assert_eq!(
        refresh.json()["error"],
        "invalid_grant",
        "and so is its refresh token"
    );
}

#[test]
fn oidcc_codereuse() {
    code_reuse(Duration::ZERO);
}

#[test]
fn oidcc_codereuse_30seconds() {
    code_reuse(Duration::seconds(30));
}

#[test]
fn oidcc_ensure_registered_redirect_uri() {
    let mut h = Harness::default_provider();
    let out = h.authorize(
        &format!(
            "response_type=code&client_id={RP}&redirect_uri={}&scope=openid&state=s",
            enc("https://rp.example.org/cb/evil")
        ),
        None,
    );
    let page = out.page();
    assert_eq!(page.error.code.as_str(), "invalid_request");
    assert_eq!(page.status(), 400);
}

#[test]
fn oidcc_ensure_post_request_succeeds() {
    let mut h = Harness::default_provider();
    let form = query(RP, "code", "&scope=openid&state=s-post&nonce=n");
    let out = h.authorize_bytes(form.as_bytes(), true, None);
    let r = h
        .login_and_consent(out, "alice", ConsentAnswer::Allow)
        .redirect();
    assert_eq!(r.param("state"), Some("s-post"));
    let t = exchange_ok(&mut h, r.param("code").unwrap());
    check_id_token(&h, str_of(&t, "id_token"), Some("n"));
}

#[test]
fn oidcc_server_client_secret_post() {
    let mut h = Harness::default_provider();
    let r = h.authorize_as(
        &query("post-rp", "code", "&scope=openid&state=s&nonce=n"),
        "alice",
    );
    let code = r.param("code").unwrap();
    let resp = h.token(
        &format!(
            "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_ENC}&client_id=post-rp&client_secret={}",
            secret_of("post-rp")
        ),
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let c = jwt_claims(resp.json()["id_token"].as_str().unwrap());
    assert_eq!(c["aud"], "post-rp");
    assert_eq!(c["nonce"], "n");
}

/// A request carrying a `request`/`request_uri` the core does not support is refused with the
/// OIDC Core §3.1.2.6 code, redirected with the state.
fn rejected_as_unsupported(extra: &str, code: &str) {
    let mut h = Harness::default_provider();
    let r = h
        .authorize(
            &query(
                RP,
                "code",
                &format!("&scope=openid&state=st&nonce=n{extra}"),
            ),
            None,
        )
        .redirect();
    assert_eq!(r.redirect_uri(), REDIRECT);
    assert_eq!(r.param("error"), Some(code));
    assert_eq!(r.param("state"), Some("st"));
    assert!(r.param("code").is_none());
}

/// An unsigned (`alg: none`) request object.
fn unsigned_request_object() -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let claims = serde_json::json!({
        "iss": RP, "aud": ISSUER, "response_type": "code", "client_id": RP,
        "redirect_uri": REDIRECT, "scope": "openid", "state": "st", "nonce": "n",
    });
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

#[test]
fn oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported() {
    rejected_as_unsupported(
        &format!("&request={}", unsigned_request_object()),
        "request_not_supported",
    );
}

#[test]
fn oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported() {
    rejected_as_unsupported(
        &format!("&request_uri={}", enc("https://rp.example.org/request.jwt")),
        "request_uri_not_supported",
    );
}

#[test]
fn oidcc_ensure_request_object_with_redirect_uri() {
    // The request object repeats redirect_uri; unsupported request objects are refused anyway.
    rejected_as_unsupported(
        &format!("&request={}", unsigned_request_object()),
        "request_not_supported",
    );
}

#[test]
fn oidcc_claims_essential() {
    let mut h = Harness::default_provider();
    let claims = enc(r#"{"userinfo":{"name":{"essential":true}}}"#);
    let t = code_flow(
        &mut h,
        &format!("&scope=openid&state=s&nonce=n&claims={claims}"),
    );
    check_id_token(&h, str_of(&t, "id_token"), Some("n"));
    let ui = userinfo_ok(&mut h, str_of(&t, "access_token"));
    assert_eq!(ui["sub"], "alice");
    // claims_parameter_supported is false: the request succeeds, `name` needs the profile scope.
}

#[test]
fn oidcc_refresh_token() {
    let mut h = Harness::new(|b| b.always_include_auth_time(true));
    let first = code_flow(&mut h, "&scope=openid+email+offline_access&state=s&nonce=n");
    let original = jwt_claims(str_of(&first, "id_token"));
    let rt = str_of(&first, "refresh_token").to_owned();
    h.advance(Duration::seconds(60));

    // Bound to its client: another client cannot use it (and the attempt burns it).
    let mut h2 = Harness::new(|b| b.always_include_auth_time(true));
    let other = code_flow(&mut h2, "&scope=openid&state=s");
    let stolen = h2.token(
        &format!(
            "grant_type=refresh_token&refresh_token={}",
            str_of(&other, "refresh_token")
        ),
        Some(&Harness::basic("rp-ES256")),
    );
    assert_eq!(stolen.status, 400);
    assert_eq!(stolen.json()["error"], "invalid_grant");

    let resp = h.token(
        &format!("grant_type=refresh_token&refresh_token={rt}"),
        Some(&Harness::basic(RP)),
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    let t = resp.json();
    assert_ne!(str_of(&t, "refresh_token"), rt, "rotated");
    assert_ne!(str_of(&t, "access_token"), str_of(&first, "access_token"));
    assert_eq!(t["scope"], "openid email offline_access");
    // OIDC Core §12.2: same iss, sub, aud; iat new; auth_time of the original authentication;
    // no nonce.
    let c = jwt_claims(str_of(&t, "id_token"));
    assert_eq!(c["iss"], original["iss"]);
    assert_eq!(c["sub"], original["sub"]);
    assert_eq!(c["aud"], original["aud"]);
    assert_eq!(c["iat"].as_i64(), Some(h.now.unix_timestamp()));
    assert_eq!(c["auth_time"], original["auth_time"]);
    assert!(c.get("nonce").is_none(), "no nonce in a refreshed ID token");
    let ui = userinfo_ok(&mut h, str_of(&t, "access_token"));
    assert_eq!(ui["email"], "alice@example.com");
}

#[test]
fn oidcc_ensure_request_with_valid_pkce_succeeds() {
    let mut h = Harness::default_provider();
    let challenge = s256_challenge(VERIFIER);
    let r = h.authorize_as(
        &query(
            "public-rp",
            "code",
            &format!("&scope=openid&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256"),
        ),
        "alice",
    );
    let code = r.param("code").unwrap();
    let resp = h.token(
        &format!(
            "grant_type=authorization_code&code={code}&redirect_uri={REDIRECT_ENC}&client_id=public-rp&code_verifier={VERIFIER}"
        ),
        None,
    );
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert_eq!(
        jwt_claims(resp.json()["id_token"].as_str().unwrap())["aud"],
        "public-rp"
    );
}

// ---- Implicit OP ------------------------------------------------------------------------------

#[test]
fn oidcc_ensure_request_without_nonce_fails() {
    for rt in ["id_token", "id_token token"] {
        let mut h = Harness::default_provider();
        let out = h.authorize(&query(RP, rt, "&scope=openid&state=st"), None);
        match out {
            AuthzOutcome::Redirect(r) => {
                assert_eq!(r.param("error"), Some("invalid_request"), "{rt}");
                assert_eq!(r.mode(), ResponseMode::Fragment, "{rt}");
                assert_eq!(r.param("state"), Some("st"));
                assert!(r.param("id_token").is_none() && r.param("access_token").is_none());
            }
            AuthzOutcome::Page(_) => {}
            other => panic!("{rt} without nonce must fail, got {other:?}"),
        }
    }
}

#[test]
fn implicit_oidcc_server() {
    let mut h = Harness::default_provider();
    // id_token: no access token, no at_hash.
    let r = front(&mut h, "id_token", "&scope=openid&state=s1&nonce=n1");
    assert_eq!(r.mode(), ResponseMode::Fragment);
    assert_eq!(r.redirect_uri(), REDIRECT);
    assert_eq!(r.param("state"), Some("s1"));
    assert!(r.param("code").is_none() && r.param("access_token").is_none());
    let c = check_id_token(&h, r.param("id_token").unwrap(), Some("n1"));
    assert!(c.get("at_hash").is_none() && c.get("c_hash").is_none());
    assert!(r.location().unwrap().starts_with(&format!("{REDIRECT}#")));

    // id_token token: at_hash binds the access token, which works at UserInfo.
    let r = front(&mut h, "id_token token", "&scope=openid&state=s2&nonce=n2");
    assert_eq!(r.mode(), ResponseMode::Fragment);
    assert_eq!(r.param("token_type"), Some("Bearer"));
    let at = r.param("access_token").unwrap().to_owned();
    let c = check_id_token(&h, r.param("id_token").unwrap(), Some("n2"));
    assert_eq!(c["at_hash"].as_str(), Some(half_sha256(&at).as_str()));
    assert!(c.get("c_hash").is_none());
    let ui = userinfo_ok(&mut h, &at);
    assert_eq!(ui["sub"], c["sub"]);
}

#[test]
fn implicit_oidcc_response_type_missing() {
    // The implicit plan runs this with `id_token token` expectations: a fragment client.
    oidcc_response_type_missing();
}

#[test]
fn implicit_oidcc_userinfo_get() {
    let mut h = Harness::default_provider();
    let r = front(
        &mut h,
        "id_token token",
        "&scope=openid+email&state=s&nonce=n",
    );
    let at = r.param("access_token").unwrap().to_owned();
    let ui = userinfo_ok(&mut h, &at);
    assert_eq!(ui["email"], "alice@example.com");
    let ui = h.userinfo(None, Some(&format!("access_token={at}")));
    assert_eq!(ui.status, 200);
}

#[test]
fn implicit_oidcc_scope_all() {
    // With response_type=id_token no access token reaches the client: the scope's claims are
    // in the ID token (OIDC Core §5.4).
    let mut h = Harness::default_provider();
    let r = front(
        &mut h,
        "id_token",
        "&scope=openid+profile+email+address+phone&state=s&nonce=n",
    );
    let c = check_id_token(&h, r.param("id_token").unwrap(), Some("n"));
    assert_eq!(c["name"], "Alice Liddell");
    assert_eq!(c["email"], "alice@example.com");
    assert_eq!(c["address"]["country"], "UK");
    assert_eq!(c["phone_number"], "+1 555 0100");
    assert!(c.get("favourite_colour").is_none());
}

#[test]
fn implicit_oidcc_prompt_none_not_logged_in() {
    let mut h = Harness::default_provider();
    let r = h
        .authorize(
            &query(
                RP,
                "id_token token",
                "&scope=openid&state=st&nonce=n&prompt=none",
            ),
            None,
        )
        .redirect();
    assert_eq!(r.mode(), ResponseMode::Fragment);
    assert_eq!(r.param("error"), Some("login_required"));
    assert_eq!(r.param("state"), Some("st"));
}

#[test]
fn implicit_oidcc_prompt_none_logged_in() {
    let mut h = Harness::new(|b| b.always_include_auth_time(true));
    let first = front(&mut h, "id_token", "&scope=openid&state=s&nonce=n1");
    let first = jwt_claims(first.param("id_token").unwrap());
    h.advance(Duration::seconds(5));
    let session = h.session("alice", Duration::seconds(5));
    let r = h
        .authorize(
            &query(RP, "id_token", "&scope=openid&state=s&nonce=n2&prompt=none"),
            Some(session),
        )
        .redirect();
    let c = check_id_token(&h, r.param("id_token").expect("no error"), Some("n2"));
    assert_eq!(c["sub"], first["sub"]);
    assert_eq!(c["auth_time"], first["auth_time"]);
}

// ---- Hybrid OP --------------------------------------------------------------------------------

#[test]
fn hybrid_oidcc_server() {
    for rt in ["code id_token", "code token", "code id_token token"] {
        let mut h = Harness::default_provider();
        let r = front(&mut h, rt, "&scope=openid&state=st&nonce=n-h");
        assert_eq!(r.mode(), ResponseMode::Fragment, "{rt}");
        assert_eq!(r.redirect_uri(), REDIRECT);
        assert_eq!(r.param("state"), Some("st"));
        assert_eq!(r.param("iss"), Some(ISSUER));
        let code = r.param("code").unwrap().to_owned();
        let front_at = r.param("access_token").map(str::to_owned);
        assert_eq!(
            front_at.is_some(),
            rt.split(' ').any(|p| p == "token"),
            "{rt}"
        );
        let front_sub = match r.param("id_token") {
            Some(jwt) => {
                let c = check_id_token(&h, jwt, Some("n-h"));
                assert_eq!(
                    c["c_hash"].as_str(),
                    Some(half_sha256(&code).as_str()),
                    "{rt}"
                );
                match &front_at {
                    Some(at) => assert_eq!(c["at_hash"].as_str(), Some(half_sha256(at).as_str())),
                    None => assert!(c.get("at_hash").is_none()),
                }
                Some(c["sub"].clone())
            }
            None => {
                assert_eq!(rt, "code token");
                None
            }
        };
        if let Some(at) = &front_at {
            assert_eq!(r.param("token_type"), Some("Bearer"));
            userinfo_ok(&mut h, at);
        }
        let t = exchange_ok(&mut h, &code);
        let back = check_id_token(&h, str_of(&t, "id_token"), Some("n-h"));
        if let Some(sub) = front_sub {
            assert_eq!(back["sub"], sub, "{rt}: the same sub in both ID tokens");
        }
        assert_eq!(
            back["at_hash"].as_str(),
            Some(half_sha256(str_of(&t, "access_token")).as_str())
        );
        userinfo_ok(&mut h, str_of(&t, "access_token"));
    }
}

#[test]
fn hybrid_code_token_succeeds_without_nonce() {
    let mut h = Harness::default_provider();
    let r = front(&mut h, "code token", "&scope=openid&state=st");
    assert!(r.param("error").is_none(), "{:?}", redirect_params(&r));
    assert!(r.param("access_token").is_some());
    let t = exchange_ok(&mut h, r.param("code").unwrap());
    check_id_token(&h, str_of(&t, "id_token"), None);
}

#[test]
fn hybrid_oidcc_ensure_request_without_nonce_fails() {
    for rt in ["code id_token", "code id_token token"] {
        let mut h = Harness::default_provider();
        let r = h
            .authorize(&query(RP, rt, "&scope=openid&state=st"), None)
            .redirect();
        assert_eq!(r.param("error"), Some("invalid_request"), "{rt}");
        assert_eq!(r.mode(), ResponseMode::Fragment);
        assert_eq!(r.param("state"), Some("st"));
        assert!(r.param("code").is_none());
    }
}

#[test]
fn hybrid_oidcc_codereuse() {
    let mut h = Harness::default_provider();
    let r = front(&mut h, "code id_token", "&scope=openid&state=st&nonce=n");
    let code = r.param("code").unwrap().to_owned();
    let t = exchange_ok(&mut h, &code);
    let again = h.exchange(RP, &code, "");
    assert_eq!(again.json()["error"], "invalid_grant");
    let ui = h.userinfo(
        Some(&format!("Bearer {}", str_of(&t, "access_token"))),
        None,
    );
    assert_eq!(ui.status, 401);
}

#[test]
fn hybrid_oidcc_prompt_none_not_logged_in() {
    let mut h = Harness::default_provider();
    let r = h
        .authorize(
            &query(
                RP,
                "code id_token",
                "&scope=openid&state=st&nonce=n&prompt=none",
            ),
            None,
        )
        .redirect();
    assert_eq!(r.mode(), ResponseMode::Fragment);
    assert_eq!(r.param("error"), Some("login_required"));
    assert_eq!(r.param("state"), Some("st"));
}

// ---- Form Post OP -----------------------------------------------------------------------------

/// Checks a form_post redirect: no Location, and an auto-submitting form to the redirect URI
/// holding every parameter as a hidden input.
fn check_form_post(r: &Redirect) {
    assert_eq!(r.mode(), ResponseMode::FormPost);
    assert_eq!(r.redirect_uri(), REDIRECT);
    assert!(r.location().is_none(), "form_post sends no Location");
    let html = r.form_post_html().expect("form_post html");
    assert!(html.contains(&format!("action=\"{REDIRECT}\"")), "{html}");
    assert!(html.contains("method=\"post\""));
    assert!(html.contains("document.forms[0].submit()"));
    for (name, value) in r.params() {
        let input = format!("<input type=\"hidden\" name=\"{name}\" value=\"{value}\">");
        assert!(html.contains(&input), "missing {name} in {html}");
    }
    // Nothing of the response leaks into the URL.
    assert!(!html.contains(&format!("{REDIRECT}?")) && !html.contains(&format!("{REDIRECT}#")));
}

#[test]
fn form_post_oidcc_server() {
    for rt in [
        "code",
        "id_token",
        "id_token token",
        "code id_token",
        "code token",
        "code id_token token",
    ] {
        let mut h = Harness::default_provider();
        let r = front(
            &mut h,
            rt,
            "&scope=openid&state=st-fp&nonce=n-fp&response_mode=form_post",
        );
        assert!(
            r.param("error").is_none(),
            "{rt}: {:?}",
            redirect_params(&r)
        );
        check_form_post(&r);
        assert_eq!(r.param("state"), Some("st-fp"));
        assert_eq!(r.param("iss"), Some(ISSUER));
        if let Some(jwt) = r.param("id_token") {
            check_id_token(&h, jwt, Some("n-fp"));
        }
        assert_eq!(
            r.param("id_token").is_some(),
            rt.contains("id_token"),
            "{rt}"
        );
        assert_eq!(
            r.param("access_token").is_some(),
            rt.split(' ').any(|p| p == "token"),
            "{rt}"
        );
        match r.param("code") {
            Some(code) => {
                assert!(rt.starts_with("code"));
                let code = code.to_owned();
                let t = exchange_ok(&mut h, &code);
                check_id_token(&h, str_of(&t, "id_token"), Some("n-fp"));
            }
            None => assert!(!rt.starts_with("code")),
        }
    }
}

#[test]
fn form_post_oidcc_prompt_none_not_logged_in() {
    let mut h = Harness::default_provider();
    let r = h
        .authorize(
            &query(
                RP,
                "code",
                "&scope=openid&state=st&nonce=n&prompt=none&response_mode=form_post",
            ),
            None,
        )
        .redirect();
    assert_eq!(r.param("error"), Some("login_required"));
    assert_eq!(r.param("state"), Some("st"));
    check_form_post(&r);
}

#[test]
fn form_post_oidcc_ensure_request_without_nonce_fails() {
    let mut h = Harness::default_provider();
    let r = h
        .authorize(
            &query(
                RP,
                "id_token token",
                "&scope=openid&state=st&response_mode=form_post",
            ),
            None,
        )
        .redirect();
    assert_eq!(r.param("error"), Some("invalid_request"));
    check_form_post(&r);
}
