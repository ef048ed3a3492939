//! End-to-end flows: each of the six response types, for each of the 13 ID token
//! algorithms, driven in-process through the shared harness (parse → bind client → validate →
//! decide → login/consent → issue → token exchange → UserInfo → refresh), with every ID token
//! checked by code we did not write:
//!
//! * the `openidconnect` crate's `IdTokenVerifier` (signature, iss, aud, exp against a clock
//!   fixed to the harness time, iat, nonce) plus its `AccessTokenHash` / `AuthorizationCodeHash`
//!   for `at_hash` / `c_hash`, for every algorithm it supports;
//! * for ES512, which `openidconnect` cannot verify, RustCrypto's `p521` for the signature
//!   (from the public JWK's x/y) and `sha2` for the hashes, with the claims checked by hand.
//!
//! One test, at the end, lets `openidconnect` act as a whole relying party: discovery
//! document, authorization URL with PKCE, token request, ID token, UserInfo and refresh, its
//! HTTP requests carried in-process to the harness.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use oidc_flow::keys::Algorithm;
use oidc_flow::{JsonResponse, Redirect, ResponseMode};
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKey,
    CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreTokenResponse,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthorizationCode, AuthorizationCodeHash, ClientId, ClientSecret,
    CsrfToken, HttpRequest, HttpResponse, IssuerUrl, JsonWebKey as _, Nonce,
    OAuth2TokenResponse as _, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse as _,
};
use serde_json::{Value, json};
use sha2::Digest as _;
use time::OffsetDateTime;

/// The scope of the flows: every standard claim group.
const SCOPE: &str = "openid profile email address phone";

/// A `state` that needs encoding in a URL and escaping in HTML.
const STATE: &str = "st&te=1 <x>/\"é\"";

/// The nonce of the flows.
const NONCE: &str = "n-0S6_WzA2Mj";

/// The six response types.
const RESPONSE_TYPES: [&str; 6] = [
    "code",
    "id_token",
    "id_token token",
    "code id_token",
    "code token",
    "code id_token token",
];

/// What `SCOPE` releases of alice (OIDC Core §5.4), `sub` included.
fn alice_for_scope() -> Value {
    json!({
        "sub": "alice",
        "name": "Alice Liddell",
        "given_name": "Alice",
        "family_name": "Liddell",
        "preferred_username": "alice",
        "birthdate": "1852-05-04",
        "updated_at": 1_700_000_000,
        "email": "alice@example.com",
        "email_verified": true,
        "address": {"street_address": "1 Rabbit Hole", "locality": "Oxford", "country": "UK"},
        "phone_number": "+1 555 0100",
        "phone_number_verified": false,
    })
}

/// Every end-user claim alice has (including one no standard scope releases).
const USER_CLAIMS: [&str; 13] = [
    "name",
    "given_name",
    "family_name",
    "preferred_username",
    "birthdate",
    "updated_at",
    "email",
    "email_verified",
    "address",
    "phone_number",
    "phone_number_verified",
    "favourite_colour",
    "profile",
];

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

fn chrono_of(t: OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), 0).unwrap()
}

fn core_alg(alg: Algorithm) -> CoreJwsSigningAlgorithm {
    serde_json::from_value(json!(alg.as_str())).unwrap()
}

fn b64_json(part: &str) -> Result<Value, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("base64: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("json: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Independent ID token verification
// ---------------------------------------------------------------------------------------------

/// What a relying party knows when it checks an ID token.
#[derive(Clone)]
struct Check {
    alg: Algorithm,
    /// The issuer the relying party expects.
    issuer: String,
    client_id: String,
    client_secret: String,
    jwks: Value,
    /// The nonce sent, or `None` when the token must carry none (refresh).
    nonce: Option<String>,
    /// The access token issued with the ID token: `at_hash` must match, or be absent if `None`.
    access_token: Option<String>,
    /// The code issued with the ID token: `c_hash` must match, or be absent if `None`.
    code: Option<String>,
    /// When the provider issued the token: `iat` must be exactly this.
    issued_at: OffsetDateTime,
    /// The relying party's clock.
    now: OffsetDateTime,
}

impl Check {
    fn new(h: &Harness, alg: Algorithm) -> Self {
        let client_id = client_id(alg);
        Self {
            alg,
            issuer: ISSUER.to_owned(),
            client_secret: secret_of(&client_id),
            client_id,
            jwks: h.provider.jwks(),
            nonce: Some(NONCE.to_owned()),
            access_token: None,
            code: None,
            issued_at: h.now,
            now: h.now,
        }
    }

    fn nonce(mut self, nonce: Option<&str>) -> Self {
        self.nonce = nonce.map(str::to_owned);
        self
    }

    fn access_token(mut self, at: Option<&str>) -> Self {
        self.access_token = at.map(str::to_owned);
        self
    }

    fn code(mut self, code: Option<&str>) -> Self {
        self.code = code.map(str::to_owned);
        self
    }

    /// Verifies `jwt` independently and returns its payload; panics naming the alg if it fails.
    fn verify(&self, jwt: &str, ctx: &str) -> Value {
        self.try_verify(jwt).unwrap_or_else(|e| {
            panic!("[{ctx}] ID token rejected by the independent verifier: {e}")
        })
    }

    /// Verifies `jwt`: with `openidconnect`, or with `p521` + `sha2` for ES512.
    /// Returns the payload (decoded only once the signature and claims checked out).
    fn try_verify(&self, jwt: &str) -> Result<Value, String> {
        let parts: Vec<&str> = jwt.split('.').collect();
        let [header, payload, _signature] = parts.as_slice() else {
            return Err(format!("not a compact JWS ({} parts)", parts.len()));
        };
        // The header is ours to check in any case: alg, kid, typ.
        let header = b64_json(header)?;
        if header["alg"] != self.alg.as_str() {
            return Err(format!("header alg {} != {}", header["alg"], self.alg));
        }
        if header["typ"] != "JWT" {
            return Err(format!("header typ {}", header["typ"]));
        }
        let want_kid = (!self.alg.is_symmetric()).then(|| format!("key-{}", self.alg));
        if header.get("kid").and_then(Value::as_str) != want_kid.as_deref() {
            return Err(format!(
                "header kid {:?} != {want_kid:?}",
                header.get("kid")
            ));
        }
        if self.alg == Algorithm::ES512 {
            self.verify_es512(jwt)?;
        } else {
            self.verify_openidconnect(jwt)?;
        }
        b64_json(payload)
    }

    fn verify_openidconnect(&self, jwt: &str) -> Result<(), String> {
        let jwks: CoreJsonWebKeySet =
            serde_json::from_value(self.jwks.clone()).map_err(|e| format!("JWKS: {e}"))?;
        let issuer = IssuerUrl::new(self.issuer.clone()).map_err(|e| e.to_string())?;
        let client_id = ClientId::new(self.client_id.clone());
        let alg = core_alg(self.alg);
        let now = chrono_of(self.now);
        let issued_at = chrono_of(self.issued_at);
        let verifier = if self.alg.is_symmetric() {
            CoreIdTokenVerifier::new_confidential_client(
                client_id,
                ClientSecret::new(self.client_secret.clone()),
                issuer,
                jwks,
            )
        } else {
            CoreIdTokenVerifier::new_public_client(client_id, issuer, jwks)
        }
        .set_allowed_algs([alg.clone()])
        .set_time_fn(move || now)
        .set_issue_time_verifier_fn(move |iat| {
            if iat == issued_at {
                Ok(())
            } else {
                Err(format!("iat {iat} is not the issuing time {issued_at}"))
            }
        });
        let token: CoreIdToken = jwt.parse().map_err(|e| format!("parse: {e}"))?;
        let claims = match &self.nonce {
            Some(n) => token.claims(&verifier, &Nonce::new(n.clone())),
            None => token.claims(&verifier, |n: Option<&Nonce>| match n {
                None => Ok(()),
                Some(n) => Err(format!("unexpected nonce {}", n.secret())),
            }),
        }
        .map_err(|e| format!("openidconnect: {e}"))?;

        if claims.audiences().len() != 1 {
            return Err(format!("aud has {} values", claims.audiences().len()));
        }
        if claims.subject().as_str() != "alice" {
            return Err(format!("sub {}", claims.subject().as_str()));
        }
        // The key the hashes go through: the client secret for HS*, else the JWKS key
        // openidconnect picked for this token.
        let key = if self.alg.is_symmetric() {
            CoreJsonWebKey::new_symmetric(self.client_secret.clone().into_bytes())
        } else {
            token
                .signing_key(&verifier)
                .map_err(|e| format!("signing key: {e}"))?
                .clone()
        };
        let at_hash = self
            .access_token
            .as_ref()
            .map(|at| AccessTokenHash::from_token(&AccessToken::new(at.clone()), &alg, &key))
            .transpose()
            .map_err(|e| format!("at_hash: {e}"))?;
        if claims.access_token_hash() != at_hash.as_ref() {
            return Err(format!(
                "at_hash {:?}, expected {at_hash:?}",
                claims.access_token_hash()
            ));
        }
        let c_hash = self
            .code
            .as_ref()
            .map(|c| {
                AuthorizationCodeHash::from_code(&AuthorizationCode::new(c.clone()), &alg, &key)
            })
            .transpose()
            .map_err(|e| format!("c_hash: {e}"))?;
        if claims.code_hash() != c_hash.as_ref() {
            return Err(format!(
                "c_hash {:?}, expected {c_hash:?}",
                claims.code_hash()
            ));
        }
        Ok(())
    }

    /// ES512 by hand: the signature with RustCrypto's `p521` (not the aws-lc-rs that signed),
    /// the claims as OIDC Core §3.1.3.7 / §3.2.2.11 / §3.3.2.12 say.
    fn verify_es512(&self, jwt: &str) -> Result<(), String> {
        use p521::ecdsa::signature::Verifier as _;
        let (signing_input, signature) = jwt.rsplit_once('.').ok_or("no signature")?;
        let header = b64_json(signing_input.split('.').next().ok_or("no header")?)?;
        let kid = header["kid"].as_str().ok_or("no kid")?;
        let jwk = self.jwks["keys"]
            .as_array()
            .ok_or("JWKS has no keys")?
            .iter()
            .find(|k| k["kid"] == kid)
            .ok_or_else(|| format!("no JWK with kid {kid}"))?;
        if jwk["kty"] != "EC" || jwk["crv"] != "P-521" || jwk["alg"] != "ES512" {
            return Err(format!("unexpected JWK {jwk}"));
        }
        let coord = |name: &str| -> Result<Vec<u8>, String> {
            let v = URL_SAFE_NO_PAD
                .decode(jwk[name].as_str().ok_or("missing coordinate")?)
                .map_err(|e| e.to_string())?;
            // RFC 7518 §6.2.1.2: the full coordinate size, 66 octets for P-521.
            if v.len() == 66 {
                Ok(v)
            } else {
                Err(format!("{name} has {} octets", v.len()))
            }
        };
        let mut sec1 = vec![0x04];
        sec1.extend(coord("x")?);
        sec1.extend(coord("y")?);
        let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
            .map_err(|e| format!("P-521 key: {e}"))?;
        let sig = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|e| e.to_string())?;
        if sig.len() != 132 {
            return Err(format!("ES512 signature has {} octets, not 132", sig.len()));
        }
        let sig = p521::ecdsa::Signature::from_slice(&sig).map_err(|e| format!("sig: {e}"))?;
        key.verify(signing_input.as_bytes(), &sig)
            .map_err(|e| format!("p521: bad signature: {e}"))?;

        let claims = b64_json(signing_input.split('.').nth(1).ok_or("no payload")?)?;
        if claims["iss"] != self.issuer.as_str() {
            return Err(format!("iss {}", claims["iss"]));
        }
        let aud_ok = match &claims["aud"] {
            Value::String(a) => *a == self.client_id,
            Value::Array(list) => list.len() == 1 && list[0] == self.client_id.as_str(),
            _ => false,
        };
        if !aud_ok {
            return Err(format!("aud {}", claims["aud"]));
        }
        let now = self.now.unix_timestamp();
        let exp = claims["exp"].as_i64().ok_or("no exp")?;
        if now >= exp {
            return Err(format!("expired: exp {exp}, now {now}"));
        }
        let issued_at = self.issued_at.unix_timestamp();
        if claims["iat"].as_i64() != Some(issued_at) {
            return Err(format!(
                "iat {} is not the issuing time {issued_at}",
                claims["iat"]
            ));
        }
        if claims["sub"] != "alice" {
            return Err(format!("sub {}", claims["sub"]));
        }
        if claims.get("nonce").and_then(Value::as_str) != self.nonce.as_deref() {
            return Err(format!(
                "nonce {:?} != {:?}",
                claims.get("nonce"),
                self.nonce
            ));
        }
        let half_sha512 = |v: &str| {
            let digest = sha2::Sha512::digest(v.as_bytes());
            URL_SAFE_NO_PAD.encode(&digest[..32])
        };
        for (claim, value) in [("at_hash", &self.access_token), ("c_hash", &self.code)] {
            let want = value.as_deref().map(half_sha512);
            if claims.get(claim).and_then(Value::as_str) != want.as_deref() {
                return Err(format!(
                    "{claim} {:?}, expected {want:?}",
                    claims.get(claim)
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The flow
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No response_mode: query for `code`, fragment otherwise.
    Default,
    /// `response_mode=form_post`.
    FormPost,
}

/// The parameters the response carries, by where the redirect puts them: checks that the
/// query/fragment of `Location`, or the hidden inputs of the form_post page, hold exactly
/// what `params()` says.
fn check_transport(r: &Redirect, expected_mode: ResponseMode, ctx: &str) {
    assert_eq!(r.mode(), expected_mode, "[{ctx}] response mode");
    assert_eq!(r.redirect_uri(), REDIRECT, "[{ctx}] redirect_uri");
    let params: BTreeMap<String, String> = redirect_params(r).into_iter().collect();
    match expected_mode {
        ResponseMode::Query | ResponseMode::Fragment => {
            assert!(r.form_post_html().is_none(), "[{ctx}] no form_post page");
            let location = r.location().expect("a Location for query/fragment");
            let url = url::Url::parse(&location).unwrap();
            let carried = if expected_mode == ResponseMode::Query {
                assert!(url.fragment().is_none(), "[{ctx}] no fragment: {location}");
                url.query().unwrap_or_default().to_owned()
            } else {
                assert!(
                    url.query().is_none(),
                    "[{ctx}] nothing in the query: {location}"
                );
                url.fragment().unwrap_or_default().to_owned()
            };
            let mut base = url.clone();
            base.set_query(None);
            base.set_fragment(None);
            assert_eq!(base.as_str(), REDIRECT, "[{ctx}] base of {location}");
            let got: BTreeMap<String, String> = url::form_urlencoded::parse(carried.as_bytes())
                .into_owned()
                .collect();
            assert_eq!(got, params, "[{ctx}] parameters carried by {location}");
        }
        ResponseMode::FormPost => {
            assert!(r.location().is_none(), "[{ctx}] form_post has no Location");
            let html = r.form_post_html().expect("a form_post page");
            assert!(
                html.contains(&format!(
                    "<form method=\"post\" action=\"{}\">",
                    html_escape(REDIRECT)
                )),
                "[{ctx}] form posts to the redirect URI: {html}"
            );
            for (k, v) in &params {
                let input = format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                    html_escape(k),
                    html_escape(v)
                );
                assert!(html.contains(&input), "[{ctx}] hidden input {k}: {html}");
            }
            assert_eq!(
                html.matches("<input ").count(),
                params.len(),
                "[{ctx}] one hidden input per parameter"
            );
            assert!(
                !html.contains(STATE),
                "[{ctx}] the raw state must be HTML-escaped"
            );
        }
    }
}

/// Asserts the ID token payload has the user's claims (`response_type=id_token`, §5.4) or none.
fn check_user_claims(payload: &Value, present: bool, ctx: &str) {
    let expected = alice_for_scope();
    for claim in USER_CLAIMS {
        match (present, expected.get(claim)) {
            (true, Some(want)) => {
                assert_eq!(payload.get(claim), Some(want), "[{ctx}] claim {claim}")
            }
            _ => assert!(
                payload.get(claim).is_none(),
                "[{ctx}] claim {claim} must not be in this ID token"
            ),
        }
    }
}

fn check_no_store(resp: &JsonResponse, ctx: &str) {
    assert_eq!(
        resp.header("cache-control"),
        Some("no-store"),
        "[{ctx}] Cache-Control"
    );
}

/// UserInfo with `at` answers 200 with exactly the scope's claims.
fn check_userinfo(h: &mut Harness, at: &str, ctx: &str) {
    let ui = h.userinfo(Some(&format!("Bearer {at}")), None);
    assert_eq!(ui.status, 200, "[{ctx}] userinfo: {}", ui.body);
    check_no_store(&ui, ctx);
    assert_eq!(ui.json(), alice_for_scope(), "[{ctx}] userinfo claims");
}

/// UserInfo with `at` is refused with 401 invalid_token.
fn check_userinfo_refused(h: &mut Harness, at: &str, ctx: &str) {
    let ui = h.userinfo(Some(&format!("Bearer {at}")), None);
    assert_eq!(
        ui.status, 401,
        "[{ctx}] userinfo after revocation: {}",
        ui.body
    );
    assert!(
        ui.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer ") && v.contains("invalid_token")),
        "[{ctx}] WWW-Authenticate: {:?}",
        ui.headers
    );
}

fn refresh(h: &mut Harness, client_id: &str, refresh_token: &str) -> JsonResponse {
    let form = format!(
        "grant_type=refresh_token&refresh_token={}",
        enc(refresh_token)
    );
    h.token(&form, Some(&Harness::basic(client_id)))
}

/// One whole flow of `response_type` with ID tokens in `alg`.
fn run_flow(alg: Algorithm, response_type: &str, mode: Mode) {
    let ctx = format!("response_type={response_type}, alg={alg}, {mode:?}");
    let ctx = ctx.as_str();
    let mut h = Harness::default_provider();
    let id = client_id(alg);
    let tokens: Vec<&str> = response_type.split(' ').collect();
    let (has_code, has_token, has_id_token) = (
        tokens.contains(&"code"),
        tokens.contains(&"token"),
        tokens.contains(&"id_token"),
    );

    // Front channel: parse, bind, validate, decide, login, consent, issue.
    let mut extra = format!("&scope={}&state={}&nonce={NONCE}", enc(SCOPE), enc(STATE));
    if mode == Mode::FormPost {
        extra.push_str("&response_mode=form_post");
    }
    let r = h.authorize_as(&query(&id, response_type, &extra), "alice");
    let p = redirect_params(&r);
    assert!(!p.contains_key("error"), "[{ctx}] error: {p:?}");
    let expected_mode = match mode {
        Mode::FormPost => ResponseMode::FormPost,
        Mode::Default if response_type == "code" => ResponseMode::Query,
        Mode::Default => ResponseMode::Fragment,
    };
    check_transport(&r, expected_mode, ctx);

    let mut names: BTreeSet<&str> = BTreeSet::from(["state", "iss"]);
    if has_code {
        names.insert("code");
    }
    if has_token {
        names.extend(["access_token", "token_type", "expires_in", "scope"]);
    }
    if has_id_token {
        names.insert("id_token");
    }
    let got: BTreeSet<&str> = p.keys().map(String::as_str).collect();
    assert_eq!(got, names, "[{ctx}] response parameters");
    assert_eq!(p["state"], STATE, "[{ctx}] state echoed");
    assert_eq!(p["iss"], ISSUER, "[{ctx}] iss (RFC 9207)");
    if has_token {
        assert_eq!(p["token_type"], "Bearer", "[{ctx}]");
        assert_eq!(p["expires_in"], "3600", "[{ctx}]");
        assert_eq!(p["scope"], SCOPE, "[{ctx}]");
    }
    let front_code = p.get("code").map(String::as_str);
    let front_at = p.get("access_token").map(String::as_str);

    let front_id_token = p.get("id_token").map(|jwt| {
        let claims = Check::new(&h, alg)
            .access_token(front_at)
            .code(front_code)
            .verify(jwt, &format!("{ctx}, authorization endpoint"));
        check_user_claims(&claims, response_type == "id_token", ctx);
        claims
    });

    if let Some(at) = front_at {
        check_userinfo(&mut h, at, &format!("{ctx}, front-channel access token"));
    }

    let Some(code) = front_code else {
        return;
    };

    // Back channel: the code for tokens.
    let resp = h.exchange(&id, code, "");
    assert_eq!(resp.status, 200, "[{ctx}] token endpoint: {}", resp.body);
    check_no_store(&resp, ctx);
    assert_eq!(resp.header("pragma"), Some("no-cache"), "[{ctx}] Pragma");
    let body = resp.json();
    assert_eq!(body["token_type"], "Bearer", "[{ctx}]");
    assert_eq!(body["expires_in"], 3600, "[{ctx}]");
    assert_eq!(body["scope"], SCOPE, "[{ctx}]");
    // The response as openidconnect reads it.
    let tr: CoreTokenResponse = serde_json::from_str(&resp.body)
        .unwrap_or_else(|e| panic!("[{ctx}] openidconnect cannot read the token response: {e}"));
    let at1 = tr.access_token().secret().clone();
    let rt1 = tr
        .refresh_token()
        .unwrap_or_else(|| panic!("[{ctx}] a refresh token"))
        .secret()
        .clone();
    let jwt = tr
        .id_token()
        .unwrap_or_else(|| panic!("[{ctx}] an ID token from the token endpoint"))
        .to_string();
    assert_eq!(body["id_token"], jwt.as_str(), "[{ctx}]");
    if let Some(front_at) = front_at {
        assert_ne!(
            front_at, at1,
            "[{ctx}] a new access token at the token endpoint"
        );
    }
    let back = Check::new(&h, alg)
        .access_token(Some(&at1))
        .verify(&jwt, &format!("{ctx}, token endpoint"));
    check_user_claims(&back, false, &format!("{ctx}, token endpoint"));
    if let Some(front) = &front_id_token {
        assert_eq!(
            front["sub"], back["sub"],
            "[{ctx}] sub of both ID tokens (OIDC Core §3.3.3.6)"
        );
    }
    check_userinfo(&mut h, &at1, &format!("{ctx}, token endpoint access token"));

    // Refresh: rotation.
    let resp = refresh(&mut h, &id, &rt1);
    assert_eq!(resp.status, 200, "[{ctx}] refresh: {}", resp.body);
    check_no_store(&resp, ctx);
    let tr: CoreTokenResponse = serde_json::from_str(&resp.body).unwrap();
    let at2 = tr.access_token().secret().clone();
    let rt2 = tr.refresh_token().unwrap().secret().clone();
    assert_ne!(rt1, rt2, "[{ctx}] the refresh token rotates");
    assert_ne!(at1, at2, "[{ctx}] a new access token");
    let refreshed = Check::new(&h, alg)
        .nonce(None)
        .access_token(Some(&at2))
        .verify(
            &tr.id_token().unwrap().to_string(),
            &format!("{ctx}, refresh"),
        );
    assert_eq!(refreshed["sub"], back["sub"], "[{ctx}] sub after refresh");
    check_userinfo(&mut h, &at2, &format!("{ctx}, refreshed access token"));

    // Reuse of the rotated-away refresh token: invalid_grant, and the grant is revoked.
    let resp = refresh(&mut h, &id, &rt1);
    assert_eq!(
        resp.status, 400,
        "[{ctx}] reused refresh token: {}",
        resp.body
    );
    assert_eq!(resp.json()["error"], "invalid_grant", "[{ctx}]");
    check_no_store(&resp, ctx);
    check_userinfo_refused(&mut h, &at2, &format!("{ctx}, refreshed access token"));
    check_userinfo_refused(&mut h, &at1, &format!("{ctx}, token endpoint access token"));
    if let Some(at) = front_at {
        check_userinfo_refused(&mut h, at, &format!("{ctx}, front-channel access token"));
    }
    let resp = refresh(&mut h, &id, &rt2);
    assert_eq!(
        resp.status, 400,
        "[{ctx}] the newest refresh token is revoked too"
    );
    assert_eq!(resp.json()["error"], "invalid_grant", "[{ctx}]");
}

/// One module per algorithm, one test per response type and mode: `rs256::code_id_token`.
macro_rules! flow_tests {
    ($($module:ident => $alg:ident),* $(,)?) => {$(
        mod $module {
            use super::{Mode, run_flow};
            use oidc_flow::keys::Algorithm;

            #[test]
            fn code() {
                run_flow(Algorithm::$alg, "code", Mode::Default);
            }
            #[test]
            fn id_token() {
                run_flow(Algorithm::$alg, "id_token", Mode::Default);
            }
            #[test]
            fn id_token_token() {
                run_flow(Algorithm::$alg, "id_token token", Mode::Default);
            }
            #[test]
            fn code_id_token() {
                run_flow(Algorithm::$alg, "code id_token", Mode::Default);
            }
            #[test]
            fn code_token() {
                run_flow(Algorithm::$alg, "code token", Mode::Default);
            }
            #[test]
            fn code_id_token_token() {
                run_flow(Algorithm::$alg, "code id_token token", Mode::Default);
            }
            #[test]
            fn code_form_post() {
                run_flow(Algorithm::$alg, "code", Mode::FormPost);
            }
            #[test]
            fn id_token_form_post() {
                run_flow(Algorithm::$alg, "id_token", Mode::FormPost);
            }
            #[test]
            fn id_token_token_form_post() {
                run_flow(Algorithm::$alg, "id_token token", Mode::FormPost);
            }
            #[test]
            fn code_id_token_form_post() {
                run_flow(Algorithm::$alg, "code id_token", Mode::FormPost);
            }
            #[test]
            fn code_token_form_post() {
                run_flow(Algorithm::$alg, "code token", Mode::FormPost);
            }
            #[test]
            fn code_id_token_token_form_post() {
                run_flow(Algorithm::$alg, "code id_token token", Mode::FormPost);
            }
        }
    )*};
}

flow_tests! {
    hs256 => HS256,
    hs384 => HS384,
    hs512 => HS512,
    rs256 => RS256,
    rs384 => RS384,
    rs512 => RS512,
    ps256 => PS256,
    ps384 => PS384,
    ps512 => PS512,
    es256 => ES256,
    es384 => ES384,
    es512 => ES512,
    eddsa => EdDSA,
}

/// The matrix above is the crate's: the 13 algorithms the modules name, and the six response
/// types the provider supports (a new one added to the crate fails here until tested).
#[test]
fn the_matrix_is_every_algorithm_and_response_type() {
    assert_eq!(
        Algorithm::ALL.map(Algorithm::as_str),
        [
            "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
            "ES256", "ES384", "ES512", "EdDSA"
        ]
    );
    let h = Harness::default_provider();
    let supported: Vec<String> = h
        .provider
        .response_types_supported()
        .iter()
        .map(|rt| rt.as_str().to_string())
        .collect();
    assert_eq!(supported, RESPONSE_TYPES.map(str::to_owned));
}

// ---------------------------------------------------------------------------------------------
// Scope → claims
// ---------------------------------------------------------------------------------------------

/// With `response_type=id_token` the ID token carries exactly the claims of the scope.
#[test]
fn id_token_only_response_carries_only_the_scopes_claims() {
    for alg in [Algorithm::RS256, Algorithm::HS256, Algorithm::ES512] {
        let mut h = Harness::default_provider();
        let id = client_id(alg);
        let r = h.authorize_as(
            &query(
                &id,
                "id_token",
                &format!("&scope=openid+email&state=s&nonce={NONCE}"),
            ),
            "alice",
        );
        let p = redirect_params(&r);
        let claims = Check::new(&h, alg).verify(&p["id_token"], &format!("{alg}"));
        assert_eq!(claims["email"], "alice@example.com", "{alg}");
        assert_eq!(claims["email_verified"], true, "{alg}");
        for absent in [
            "name",
            "address",
            "phone_number",
            "birthdate",
            "favourite_colour",
        ] {
            assert!(
                claims.get(absent).is_none(),
                "{alg}: {absent} is not in scope"
            );
        }
    }
}

/// UserInfo releases what the token's scope covers, and `sub`.
#[test]
fn userinfo_releases_only_the_scopes_claims() {
    let mut h = Harness::default_provider();
    let id = client_id(Algorithm::EdDSA);
    let r = h.authorize_as(&query(&id, "code", "&scope=openid+phone&state=s"), "alice");
    let resp = h.exchange(&id, &redirect_params(&r)["code"], "");
    let at = resp.json()["access_token"].as_str().unwrap().to_owned();
    let ui = h.userinfo(Some(&format!("Bearer {at}")), None);
    assert_eq!(ui.status, 200);
    assert_eq!(
        ui.json(),
        json!({"sub": "alice", "phone_number": "+1 555 0100", "phone_number_verified": false})
    );
    // A user with no claims gets `sub` alone.
    let r = h.authorize_as(
        &query(&id, "code", "&scope=openid+profile+email&state=s"),
        "bob",
    );
    let resp = h.exchange(&id, &redirect_params(&r)["code"], "");
    let at = resp.json()["access_token"].as_str().unwrap().to_owned();
    let ui = h.userinfo(Some(&format!("Bearer {at}")), None);
    assert_eq!(ui.json(), json!({"sub": "bob"}));
}

// ---------------------------------------------------------------------------------------------
// The verifiers are not rubber stamps
// ---------------------------------------------------------------------------------------------

/// The independent verification used above rejects a wrong nonce, an expired token, another
/// audience, a bad signature, a wrong at_hash/c_hash and (HS*) a wrong secret, for one
/// algorithm of each family, ES512 (p521) included.
#[test]
fn independent_verifiers_reject_bad_tokens() {
    for alg in [
        Algorithm::HS256,
        Algorithm::RS256,
        Algorithm::PS384,
        Algorithm::ES256,
        Algorithm::ES512,
        Algorithm::EdDSA,
    ] {
        let mut h = Harness::default_provider();
        let id = client_id(alg);
        let r = h.authorize_as(
            &query(
                &id,
                "code id_token token",
                &format!("&scope=openid&state=s&nonce={NONCE}"),
            ),
            "alice",
        );
        let p = redirect_params(&r);
        let jwt = p["id_token"].as_str();
        let good = Check::new(&h, alg)
            .access_token(Some(&p["access_token"]))
            .code(Some(&p["code"]));
        good.verify(jwt, &format!("{alg}: the genuine token"));

        let reject = |check: &Check, jwt: &str, what: &str| {
            let res = check.try_verify(jwt);
            assert!(res.is_err(), "{alg}: accepted {what}");
        };
        reject(&good.clone().nonce(Some("other")), jwt, "another nonce");
        reject(&good.clone().nonce(None), jwt, "an unexpected nonce");
        let mut late = good.clone();
        late.now = h.now + time::Duration::hours(1);
        reject(&late, jwt, "a token at its exp");
        let mut early = good.clone();
        early.now = h.now + time::Duration::hours(1) - time::Duration::seconds(1);
        early.verify(jwt, &format!("{alg}: a second before exp"));
        let mut other = good.clone();
        other.issuer = "https://op.example.net".to_owned();
        reject(&other, jwt, "another issuer");
        let mut other = good.clone();
        other.client_id = "rp-someone-else".to_owned();
        reject(&other, jwt, "another audience");
        reject(
            &good.clone().access_token(Some("another-token")),
            jwt,
            "a wrong at_hash",
        );
        reject(
            &good.clone().access_token(None),
            jwt,
            "an unexpected at_hash",
        );
        reject(
            &good.clone().code(Some("another-code")),
            jwt,
            "a wrong c_hash",
        );
        if alg.is_symmetric() {
            let mut wrong = good.clone();
            wrong.client_secret = secret_of("rp-someone-else");
            reject(&wrong, jwt, "a wrong secret");
        }
        // Flip one bit of the signature, then of the payload.
        let (input, sig) = jwt.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[5] ^= 0x01;
        let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
        reject(&good, &forged, "a bad signature");
        let mut parts: Vec<String> = jwt.split('.').map(str::to_owned).collect();
        let mut payload = b64_json(&parts[1]).unwrap();
        payload["sub"] = json!("mallory");
        parts[1] = URL_SAFE_NO_PAD.encode(payload.to_string());
        reject(&good, &parts.join("."), "a changed payload");
    }
}

// ---------------------------------------------------------------------------------------------
// openidconnect as the whole relying party
// ---------------------------------------------------------------------------------------------

/// Carries openidconnect's HTTP requests to the harness's token and UserInfo endpoints.
fn in_process_http(
    h: &RefCell<Harness>,
) -> impl Fn(HttpRequest) -> Result<HttpResponse, std::io::Error> + '_ {
    move |req: HttpRequest| {
        let mut h = h.borrow_mut();
        let uri = req.uri().to_string();
        let auth = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        let resp = if uri == format!("{ISSUER}/token") {
            assert_eq!(req.method(), "POST");
            let body = std::str::from_utf8(req.body()).unwrap().to_owned();
            h.token(&body, auth.as_deref())
        } else if uri == format!("{ISSUER}/userinfo") {
            h.userinfo(auth.as_deref(), None)
        } else {
            panic!("unexpected request to {uri}");
        };
        let mut builder = openidconnect::http::Response::builder()
            .status(resp.status)
            .header("content-type", "application/json");
        for (name, value) in &resp.headers {
            builder = builder.header(*name, value);
        }
        Ok(builder.body(resp.body.into_bytes()).unwrap())
    }
}

/// openidconnect's `CoreClient`, configured from our discovery document and JWKS, drives a
/// code flow with PKCE: its authorization URL is fed to the harness, its token and UserInfo
/// requests are answered in-process, and `client.id_token_verifier()` checks the ID tokens.
#[test]
fn openidconnect_relying_party_code_flow_with_pkce() {
    for alg in Algorithm::ALL {
        if alg == Algorithm::ES512 {
            continue; // openidconnect has no P-521; ES512 is covered by `es512::*`.
        }
        let h = Harness::default_provider();
        let now = chrono_of(h.now);
        let metadata: CoreProviderMetadata =
            serde_json::from_value(oidc_flow::discovery::document(&h.provider))
                .unwrap_or_else(|e| panic!("openidconnect cannot read our discovery: {e}"));
        let jwks: CoreJsonWebKeySet = serde_json::from_value(h.provider.jwks()).unwrap();
        let metadata = metadata.set_jwks(jwks);
        assert_eq!(metadata.issuer().as_str(), ISSUER);
        let id = client_id(alg);
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(id.clone()),
            Some(ClientSecret::new(secret_of(&id))),
        )
        .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());

        let (challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, csrf, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".to_owned()))
            .add_scope(Scope::new("profile".to_owned()))
            .set_pkce_challenge(challenge)
            .url();
        assert!(
            url.as_str().starts_with(&format!("{ISSUER}/authorize?")),
            "{alg}: {url}"
        );

        let h = RefCell::new(h);
        let r = h.borrow_mut().authorize_as(url.query().unwrap(), "alice");
        assert_eq!(r.mode(), ResponseMode::Query, "{alg}");
        let p = redirect_params(&r);
        assert_eq!(&p["state"], csrf.secret(), "{alg}: state");
        assert_eq!(p["iss"], ISSUER, "{alg}: iss");

        let http = in_process_http(&h);
        let tokens = client
            .exchange_code(AuthorizationCode::new(p["code"].clone()))
            .unwrap()
            .set_pkce_verifier(pkce_verifier)
            .request(&http)
            .unwrap_or_else(|e| panic!("{alg}: token request: {e:?}"));
        let id_token = tokens.id_token().expect("an ID token");
        let verifier = client.id_token_verifier().set_time_fn(move || now);
        let claims = id_token
            .claims(&verifier, &nonce)
            .unwrap_or_else(|e| panic!("{alg}: id_token_verifier: {e}"));
        assert_eq!(claims.subject().as_str(), "alice", "{alg}");
        assert_eq!(
            id_token.signing_alg().unwrap(),
            &core_alg(alg),
            "{alg}: signed with the client's registered alg"
        );
        let key = if alg.is_symmetric() {
            CoreJsonWebKey::new_symmetric(secret_of(&id).into_bytes())
        } else {
            id_token.signing_key(&verifier).unwrap().clone()
        };
        let at_hash =
            AccessTokenHash::from_token(tokens.access_token(), &core_alg(alg), &key).unwrap();
        assert_eq!(claims.access_token_hash(), Some(&at_hash), "{alg}: at_hash");
        // The claims come from UserInfo, not the ID token, for the code flow.
        assert!(claims.email().is_none(), "{alg}");

        let info: CoreUserInfoClaims = client
            .user_info(
                tokens.access_token().clone(),
                Some(claims.subject().clone()),
            )
            .unwrap()
            .request(&http)
            .unwrap_or_else(|e| panic!("{alg}: userinfo: {e:?}"));
        assert_eq!(info.email().map(|e| e.as_str()), Some("alice@example.com"));
        assert_eq!(
            info.name().and_then(|n| n.get(None)).map(|n| n.as_str()),
            Some("Alice Liddell")
        );
        assert!(
            info.phone_number().is_none(),
            "{alg}: phone is not in scope"
        );

        let refreshed = client
            .exchange_refresh_token(tokens.refresh_token().expect("a refresh token"))
            .unwrap()
            .request(&http)
            .unwrap_or_else(|e| panic!("{alg}: refresh: {e:?}"));
        assert_ne!(
            refreshed.refresh_token().unwrap().secret(),
            tokens.refresh_token().unwrap().secret(),
            "{alg}: rotation"
        );
        let claims = refreshed
            .id_token()
            .expect("an ID token after refresh")
            .claims(&verifier, |n: Option<&Nonce>| {
                n.map_or(Ok(()), |_| Err("no nonce after refresh".to_owned()))
            })
            .unwrap_or_else(|e| panic!("{alg}: refreshed ID token: {e}"));
        assert_eq!(claims.subject().as_str(), "alice", "{alg}");
    }
}
