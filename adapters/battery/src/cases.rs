//! The cases of the battery, one function each (see [`crate::battery!`]). Where a case
//! checks a conformance module of the OpenID Foundation's suite, its name says which.

use std::collections::HashMap;

use hyper::{Method, StatusCode};
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessToken, AuthorizationCode, ClientId, ClientSecret, IssuerUrl, Nonce,
    OAuth2TokenResponse as _, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, TokenResponse as _,
};

use crate::{
    Browser, CLIENT_ID, NAME, POST_LOGOUT, REDIRECT, RESOURCE_SERVER_ID, Resp, SERVICE_ID,
    SERVICE_SCOPE, Step, World, rp_http,
};

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A code-flow request with PKCE S256: its URL, state, nonce and verifier.
struct Request {
    url: String,
    state: String,
    nonce: String,
    verifier: PkceCodeVerifier,
}

fn code_request(world: &World, extra: &str) -> Request {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let state = format!("s-{}", &challenge.as_str()[..12]);
    let nonce = format!("n-{}", &challenge.as_str()[12..24]);
    let url = world.url(&format!(
        "/authorize?response_type=code&client_id={CLIENT_ID}&redirect_uri={}\
         &scope={}&state={state}&nonce={nonce}&code_challenge={}&code_challenge_method=S256{extra}",
        enc(REDIRECT),
        enc("openid profile email offline_access"),
        challenge.as_str(),
    ));
    Request {
        url,
        state,
        nonce,
        verifier,
    }
}

/// The parameters of an answer that must be a 303 to [`REDIRECT`] with this `state`.
fn redirected(resp: &Resp, state: &str) -> HashMap<String, String> {
    assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.body);
    let location = resp.header("location").unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    let p = resp.redirect_params();
    assert_eq!(p.get("state").map(String::as_str), Some(state), "{p:?}");
    p
}

/// A code for `world`'s client through the pages (allowing), and its request.
async fn code_for(world: &World, browser: &mut Browser, extra: &str) -> (String, Request) {
    let req = code_request(world, extra);
    let done = browser.authorize_through(world, &req.url, "allow").await;
    let p = redirected(&done, &req.state);
    assert_eq!(p.get("iss"), Some(&world.issuer), "RFC 9207 iss");
    (p["code"].clone(), req)
}

async fn token(world: &World, pairs: &[(&str, &str)]) -> Resp {
    Browser::new()
        .post_form(
            &world.url("/token"),
            pairs,
            &[("authorization", &world.basic())],
        )
        .await
}

async fn redeem(world: &World, code: &str, verifier: &PkceCodeVerifier) -> Resp {
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.secret().as_str()),
    ];
    token(world, &pairs).await
}

async fn userinfo(world: &World, access_token: &str) -> Resp {
    let bearer = format!("Bearer {access_token}");
    Browser::new()
        .send(
            Method::GET,
            &world.url("/userinfo"),
            &[("authorization", &bearer)],
            Vec::new(),
        )
        .await
}

/// An error the client gets as JSON: its status and `error`.
fn json_error(resp: &Resp) -> (StatusCode, String) {
    let code = resp.json()["error"].as_str().unwrap_or_default().to_owned();
    (resp.status, code)
}

/// Posts owned pairs as a form.
async fn post_owned<K: AsRef<str>>(b: &mut Browser, url: &str, pairs: &[(K, String)]) -> Resp {
    let p: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_str()))
        .collect();
    b.post_form(url, &p, &[]).await
}

/// Every page of ours: HTML, no caching, not framed, a CSP with `frame-ancestors 'none'`.
fn assert_page_headers(resp: &Resp) {
    let ct = resp.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("text/html"), "content-type {ct}");
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    assert_eq!(resp.header("x-frame-options"), Some("DENY"));
    let csp = resp.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

/// Discovery and the JWKS, as OpenID Connect Discovery 1.0 and the suite's
/// `oidcc-discovery` checks read them.
pub async fn discovery_and_jwks(world: &World) {
    let mut b = Browser::new();
    let d = b.get(&world.url("/.well-known/openid-configuration")).await;
    assert_eq!(d.status, StatusCode::OK);
    assert!(
        d.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let doc = d.json();
    assert_eq!(doc["issuer"], world.issuer.as_str());
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("end_session_endpoint", "/logout"),
    ] {
        assert_eq!(doc[field], world.url(path).as_str(), "{field}");
    }
    let head = b
        .send(
            Method::HEAD,
            &world.url("/.well-known/openid-configuration"),
            &[],
            Vec::new(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    let ct = head.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "HEAD content-type {ct}");
    // Nothing of the provider's answers outside the issuer's path.
    let outside = b.get(&world.origin_url("/jwks")).await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND);
    let jwks = b.get(&world.url("/jwks")).await;
    assert_eq!(jwks.status, StatusCode::OK);
    let keys = jwks.json()["keys"].as_array().cloned().unwrap_or_default();
    assert!(!keys.is_empty());
    assert!(
        keys.iter()
            .all(|k| k["kid"].is_string() && k.get("d").is_none())
    );
    // openidconnect reads both and agrees.
    let issuer = IssuerUrl::new(world.issuer.clone()).unwrap();
    CoreProviderMetadata::discover_async(issuer, &rp_http)
        .await
        .unwrap();
    let wrong = b
        .post_form(&world.url("/.well-known/openid-configuration"), &[], &[])
        .await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong.header("allow").unwrap_or_default().contains("GET"));
}

/// `oidcc-server`, `oidcc-userinfo-get`, `oidcc-prompt-none-logged-in` and
/// `oidcc-prompt-none-not-logged-in`: a PKCE code flow through the pages, the ID token
/// verified by openidconnect, UserInfo with the app's claims; then `prompt=none`.
pub async fn code_flow_pkce_id_token_userinfo_then_prompt_none(world: &World) {
    let issuer = IssuerUrl::new(world.issuer.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &rp_http)
        .await
        .unwrap();
    let rp = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(CLIENT_ID.to_owned()),
        Some(ClientSecret::new(world.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.to_owned()).unwrap());

    let mut b = Browser::new();
    let (code, req) = code_for(world, &mut b, "").await;
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(req.verifier)
        .request_async(&rp_http)
        .await
        .unwrap();
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&rp.id_token_verifier(), &Nonce::new(req.nonce))
        .unwrap();
    assert_eq!(claims.issuer().as_str(), world.issuer);
    assert!(tokens.refresh_token().is_some(), "offline_access");
    let subject = claims.subject().clone();
    let info: CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), Some(subject.clone()))
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();
    assert_eq!(info.subject(), &subject);
    let name = info.name().and_then(|n| n.get(None)).map(|n| n.as_str());
    assert_eq!(name, Some(NAME));

    // The session and the recorded consent answer prompt=none with a code, no page.
    let again = code_request(world, "&prompt=none");
    let at_once = b.get(&again.url).await;
    let p = redirected(&at_once, &again.state);
    assert!(p.contains_key("code"), "{p:?}");
    // A browser without a session: login_required, still no page.
    let fresh = code_request(world, "&prompt=none");
    let p = redirected(&Browser::new().get(&fresh.url).await, &fresh.state);
    assert_eq!(p.get("error").map(String::as_str), Some("login_required"));
}

/// `oidcc-codereuse`: a code redeems once; the second try fails and revokes the tokens the
/// first one gave (RFC 6749 §4.1.2).
pub async fn reused_code_is_refused_and_revokes_its_tokens(world: &World) {
    let mut b = Browser::new();
    let (code, req) = code_for(world, &mut b, "").await;
    let first = redeem(world, &code, &req.verifier).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.header("cache-control"), Some("no-store"));
    let access = first.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(userinfo(world, &access).await.status, StatusCode::OK);
    let second = redeem(world, &code, &req.verifier).await;
    assert_eq!(
        json_error(&second),
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    let revoked = userinfo(world, &access).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED, "{}", revoked.body);
    // A wrong verifier on a fresh code is refused too.
    let (code, _) = code_for(world, &mut b, "").await;
    let other = PkceCodeVerifier::new("x".repeat(43));
    let wrong = redeem(world, &code, &other).await;
    assert_eq!(
        json_error(&wrong),
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
}

/// `oidcc-refresh-token`: the refresh token rotates; reusing an old one fails and revokes
/// the whole family, the access tokens included.
pub async fn refresh_rotates_and_reuse_revokes_the_family(world: &World) {
    let mut b = Browser::new();
    let (code, req) = code_for(world, &mut b, "").await;
    let tokens = redeem(world, &code, &req.verifier).await.json();
    let first_refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |r: String| async move {
        token(
            world,
            &[("grant_type", "refresh_token"), ("refresh_token", &r)],
        )
        .await
    };
    let rotated = refresh(first_refresh.clone()).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let rotated = rotated.json();
    let second_refresh = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second_refresh, first_refresh);
    let access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(userinfo(world, &access).await.status, StatusCode::OK);

    let reused = refresh(first_refresh).await;
    assert_eq!(
        json_error(&reused),
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    let family = refresh(second_refresh).await;
    assert_eq!(
        json_error(&family),
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    assert_eq!(
        userinfo(world, &access).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// `oidcc-ensure-registered-redirect-uri`: an unregistered redirect URI gets an error page
/// of ours, never a redirect (Core §3.1.2.6).
pub async fn unregistered_redirect_uri_is_an_error_page_never_a_redirect(world: &World) {
    let req = code_request(world, "");
    let url = req
        .url
        .replace(&enc(REDIRECT), &enc("https://attacker.example/cb"));
    let page = Browser::new().get(&url).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.header("location").is_none());
    assert!(page.body.contains("invalid_request"), "{}", page.body);
    assert_page_headers(&page);
}

/// An unknown client: an error page, never a redirect.
pub async fn unknown_client_is_an_error_page(world: &World) {
    let req = code_request(world, "");
    let url = req.url.replace(CLIENT_ID, "nobody");
    let page = Browser::new().get(&url).await;
    assert!(page.status.is_client_error(), "{}", page.status);
    assert!(page.header("location").is_none());
    assert!(page.body.contains("invalid_client") || page.body.contains("invalid_request"));
    assert_page_headers(&page);
}

/// The end-user refuses: the client gets `access_denied` with its state.
pub async fn consent_denied_is_access_denied(world: &World) {
    let req = code_request(world, "");
    let done = Browser::new()
        .authorize_through(world, &req.url, "deny")
        .await;
    let p = redirected(&done, &req.state);
    assert_eq!(p.get("error").map(String::as_str), Some("access_denied"));
    assert!(!p.contains_key("code"));
}

/// A waiting request is sealed to the browser that started it: another browser, an
/// edited or unknown value, the other step's page, a post from another site and a second
/// use are all refused, and none reaches the client.
pub async fn sealed_request_refused_when_edited_replayed_or_from_another_browser(world: &World) {
    let req = code_request(world, "");
    let mut a = Browser::new();
    let page = a.get(&req.url).await;
    let refused = |r: &Resp, what: &str| {
        assert!(
            r.status.is_client_error(),
            "{what}: {} {}",
            r.status,
            r.body
        );
        let to_client = r
            .header("location")
            .is_some_and(|l| l.starts_with(REDIRECT));
        assert!(!to_client, "{what}");
    };
    let creds = [("username", crate::USERNAME), ("password", crate::PASSWORD)];
    match page.waits_for() {
        Some(Step::AppLogin(location)) => {
            let url = crate::absolute(world, &location);
            let query = url::Url::parse(&url).unwrap();
            let sealed = query
                .query_pairs()
                .find(|(k, _)| k == "oidc_request")
                .map(|(_, v)| v.into_owned())
                .unwrap();
            // Another browser with a binding cookie of its own: the seal does not open.
            let mut b = Browser::new();
            let its_own = b.get(&code_request(world, "").url).await;
            assert!(matches!(its_own.waits_for(), Some(Step::AppLogin(_))));
            assert!(!b.cookies.is_empty(), "no binding cookie");
            refused(&b.get(&url).await, "another browser's look");
            refused(&b.post_form(&url, &creds, &[]).await, "another browser");
            let mut edited = sealed.clone().into_bytes();
            let mid = edited.len() / 2;
            edited[mid] = if edited[mid] == b'A' { b'B' } else { b'A' };
            let edited = url.replace(&sealed, std::str::from_utf8(&edited).unwrap());
            refused(&a.post_form(&edited, &creds, &[]).await, "edited");
            let cross = [("sec-fetch-site", "cross-site")];
            refused(&a.post_form(&url, &creds, &cross).await, "cross-site");
            let evil = [("origin", "https://evil.example")];
            refused(&a.post_form(&url, &creds, &evil).await, "another origin");
            let wrong_step = url.replacen("/login?", "/consent?", 1);
            refused(&a.get(&wrong_step).await, "the consent page");
            let unknown = url.replace(&sealed, "AAAA");
            refused(&a.get(&unknown).await, "an unknown value");
            // The same origin, said in so many words, is welcome.
            let same = [
                ("origin", world.origin_url("")),
                ("sec-fetch-site", "same-origin".to_owned()),
            ];
            let same: Vec<(&str, &str)> = same.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(a.get(&url).await.status, StatusCode::OK);
            let first = a.post_form(&url, &creds, &same).await;
            assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
            refused(&a.post_form(&url, &creds, &[]).await, "used twice");
        }
        Some(Step::OwnLogin) => {
            let handle = page.form_value("handle").unwrap();
            let csrf = page.form_value("csrf").unwrap();
            let login = world.url("/login");
            let form = |handle: &str| {
                let mut f = vec![("handle", handle.to_owned()), ("csrf", csrf.clone())];
                f.extend(creds.iter().map(|(k, v)| (*k, (*v).to_owned())));
                f
            };
            // Another browser, with its own CSRF cookie and token (so the double submit
            // passes): the seal, bound to the first browser's token, does not open.
            let mut b = Browser::new();
            let its_page = b.get(&code_request(world, "").url).await;
            let its_csrf = its_page.form_value("csrf").unwrap();
            let mut theirs = form(&handle);
            for (k, v) in &mut theirs {
                if *k == "csrf" {
                    v.clone_from(&its_csrf);
                }
            }
            refused(
                &post_owned(&mut b, &login, &theirs).await,
                "another browser",
            );
            let mut edited = handle.clone().into_bytes();
            let mid = edited.len() / 2;
            edited[mid] = if edited[mid] == b'A' { b'B' } else { b'A' };
            let edited = String::from_utf8(edited).unwrap();
            refused(&post_owned(&mut a, &login, &form(&edited)).await, "edited");
            let consent = world.url("/consent");
            refused(
                &post_owned(&mut a, &consent, &form(&handle)).await,
                "the consent form",
            );
            refused(
                &post_owned(&mut a, &login, &form("AAAA")).await,
                "an unknown value",
            );
            let first = post_owned(&mut a, &login, &form(&handle)).await;
            assert_eq!(first.status, StatusCode::OK, "{}", first.body);
            assert!(matches!(first.waits_for(), Some(Step::OwnConsent)));
            refused(
                &post_owned(&mut a, &login, &form(&handle)).await,
                "used twice",
            );
        }
        other => panic!("expected a login step, got {other:?}"),
    }
}

/// `oidcc-rp-initiated-logout`: a logout request that does not prove who sent it is
/// confirmed first; confirming ends the session, sends the browser to the registered
/// post-logout URI with its state, and the next `prompt=none` needs a login.
pub async fn logout_confirms_then_ends_the_session(world: &World) {
    let mut b = Browser::new();
    code_for(world, &mut b, "").await;
    let url = world.url(&format!(
        "/logout?client_id={CLIENT_ID}&post_logout_redirect_uri={}&state=bye-1",
        enc(POST_LOGOUT)
    ));
    let confirm = b.get(&url).await;
    assert_eq!(confirm.status, StatusCode::OK, "{}", confirm.body);
    assert_page_headers(&confirm);
    let fields = crate::hidden_inputs(&confirm.body);
    assert!(
        fields.contains(&("confirm".into(), "yes".into())),
        "{fields:?}"
    );
    // Without the browser's CSRF token, nothing happens.
    let forged: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| match k.as_str() {
            "csrf" => (k.clone(), "x".repeat(43)),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    let refused = post_owned(&mut b, &world.url("/logout"), &forged).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let done = post_owned(&mut b, &world.url("/logout"), &fields).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let location = done.header("location").unwrap();
    assert!(location.starts_with(POST_LOGOUT), "{location}");
    assert!(location.contains("state=bye-1"), "{location}");
    let after = code_request(world, "&prompt=none");
    let p = redirected(&b.get(&after.url).await, &after.state);
    assert_eq!(p.get("error").map(String::as_str), Some("login_required"));
}

/// The token endpoint's refusals: a wrong secret (401 with a challenge), an unknown grant
/// type, a body that is not a form (415), one over the size limit (413), a GET (405).
pub async fn token_endpoint_refusals(world: &World) {
    let mut b = Browser::new();
    let wrong = b
        .post_form(
            &world.url("/token"),
            &[("grant_type", "authorization_code"), ("code", "x")],
            &[("authorization", &crate::basic(CLIENT_ID, "wrong"))],
        )
        .await;
    assert_eq!(
        json_error(&wrong),
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    assert!(wrong.header("www-authenticate").is_some());
    let grant = token(world, &[("grant_type", "password")]).await;
    assert_eq!(
        json_error(&grant),
        (StatusCode::BAD_REQUEST, "unsupported_grant_type".into())
    );
    let json = b
        .send(
            Method::POST,
            &world.url("/token"),
            &[("content-type", "application/json")],
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(
        "grant_type=authorization_code&code={}",
        "x".repeat(70 * 1024)
    );
    // Its own client: the server closes that connection, which a pool must not reuse.
    let too_long = Browser::new()
        .try_send(
            Method::POST,
            &world.url("/token"),
            &[("content-type", "application/x-www-form-urlencoded")],
            huge.into_bytes(),
        )
        .await;
    match too_long {
        Ok(r) => assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body),
        // A server may answer 413 and close before reading the rest (RFC 9110 §15.5.14);
        // the unread bytes then make the kernel reset the connection, and the client can
        // lose the answer. Then the refusal must not have cost the server anything.
        Err(e) => {
            eprintln!("the 413 was lost to the connection's reset: {e}");
            let d = Browser::new()
                .get(&world.url("/.well-known/openid-configuration"))
                .await;
            assert_eq!(d.status, StatusCode::OK);
        }
    }
    let get = Browser::new().get(&world.url("/token")).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// `oidcc-userinfo-*` refusals (RFC 6750 §3): no token is a bare 401 challenge, an unknown
/// one `invalid_token`.
pub async fn userinfo_refusals(world: &World) {
    let none = Browser::new().get(&world.url("/userinfo")).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    let challenge = none.header("www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let unknown = userinfo(world, &AccessToken::new("x".repeat(43)).into_secret()).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let challenge = unknown.header("www-authenticate").unwrap_or_default();
    assert!(challenge.contains("invalid_token"), "{challenge}");
}

/// `oidcc-prompt-login` and `oidcc-max-age-1`: with a session, `prompt=login` and
/// `max_age=0` ask for the login again; the consent given before is remembered.
pub async fn prompt_login_asks_again_and_max_age(world: &World) {
    let mut b = Browser::new();
    code_for(world, &mut b, "").await;
    for extra in ["&prompt=login", "&max_age=0"] {
        let req = code_request(world, extra);
        let page = b.get(&req.url).await;
        assert!(
            matches!(page.waits_for(), Some(Step::AppLogin(_) | Step::OwnLogin)),
            "{extra}: {} {}",
            page.status,
            page.body
        );
        let done = b
            .sign_in(world, &page, crate::USERNAME, crate::PASSWORD)
            .await;
        let p = redirected(&done, &req.state);
        assert!(p.contains_key("code"), "{extra}: {p:?}");
    }
}

/// RFC 7009: revoking a refresh token ends its grant (the refresh token and the access
/// token both stop working); an unknown token answers 200; a wrong secret 401; GET 405.
pub async fn revocation_rfc_7009(world: &World) {
    let d = Browser::new()
        .get(&world.url("/.well-known/openid-configuration"))
        .await
        .json();
    assert_eq!(d["revocation_endpoint"], world.url("/revoke").as_str());
    let mut b = Browser::new();
    let (code, req) = code_for(world, &mut b, "").await;
    let tokens = redeem(world, &code, &req.verifier).await.json();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let revoke = |pairs: Vec<(&'static str, String)>, auth: String| async move {
        let p: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Browser::new()
            .post_form(&world.url("/revoke"), &p, &[("authorization", &auth)])
            .await
    };
    let wrong = revoke(
        vec![("token", refresh.clone())],
        crate::basic(CLIENT_ID, "wrong"),
    )
    .await;
    assert_eq!(
        json_error(&wrong),
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    assert_eq!(userinfo(world, &access).await.status, StatusCode::OK);
    let unknown = revoke(vec![("token", "x".repeat(43))], world.basic()).await;
    assert_eq!(unknown.status, StatusCode::OK, "{}", unknown.body);
    let done = revoke(
        vec![
            ("token", refresh.clone()),
            ("token_type_hint", "refresh_token".to_owned()),
        ],
        world.basic(),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.header("cache-control"), Some("no-store"));
    let refreshed = token(
        world,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        json_error(&refreshed),
        (StatusCode::BAD_REQUEST, "invalid_grant".into())
    );
    assert_eq!(
        userinfo(world, &access).await.status,
        StatusCode::UNAUTHORIZED
    );
    let get = b.get(&world.url("/revoke")).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// RFC 6749 §4.4 with `openidconnect` (its `oauth2` core) as the client: the service gets a
/// Bearer token with its registered scope and no refresh or ID token; a scope it did not
/// register is `invalid_scope`; the RP, which did not register the grant, is
/// `unauthorized_client`; discovery lists the grant.
pub async fn client_credentials_rfc_6749_4_4(world: &World) {
    use openidconnect::Scope;
    let issuer = IssuerUrl::new(world.issuer.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &rp_http)
        .await
        .unwrap();
    let grants = metadata.grant_types_supported().unwrap();
    assert!(
        grants.iter().any(|g| g.as_ref() == "client_credentials"),
        "{grants:?}"
    );
    let service = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(SERVICE_ID.to_owned()),
        Some(ClientSecret::new(world.client_secret.clone())),
    );
    let tokens = service
        .exchange_client_credentials()
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();
    assert_eq!(
        *tokens.token_type(),
        openidconnect::core::CoreTokenType::Bearer
    );
    let scopes: Vec<String> = tokens
        .scopes()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(scopes.join(" "), SERVICE_SCOPE);
    assert!(tokens.refresh_token().is_none());
    assert!(tokens.id_token().is_none());
    assert!(tokens.expires_in().is_some());
    // The token is a Bearer token of the provider, but it speaks for no end-user.
    let info = userinfo(world, tokens.access_token().secret()).await;
    assert_eq!(info.status, StatusCode::FORBIDDEN, "{}", info.body);

    let narrowed = service
        .exchange_client_credentials()
        .unwrap()
        .add_scope(Scope::new("api:read".to_owned()))
        .request_async(&rp_http)
        .await
        .unwrap();
    assert_eq!(narrowed.scopes().unwrap().len(), 1);
    let form = |pairs: &[(&str, &str)], auth: String| {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        async move {
            let p: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            Browser::new()
                .post_form(&world.url("/token"), &p, &[("authorization", &auth)])
                .await
        }
    };
    let service_auth = crate::basic(SERVICE_ID, &world.client_secret);
    let too_wide = form(
        &[("grant_type", "client_credentials"), ("scope", "admin")],
        service_auth.clone(),
    )
    .await;
    assert_eq!(
        json_error(&too_wide),
        (StatusCode::BAD_REQUEST, "invalid_scope".into())
    );
    let wrong = form(
        &[("grant_type", "client_credentials")],
        crate::basic(SERVICE_ID, "wrong"),
    )
    .await;
    assert_eq!(
        json_error(&wrong),
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    let rp = form(&[("grant_type", "client_credentials")], world.basic()).await;
    assert_eq!(
        json_error(&rp),
        (StatusCode::BAD_REQUEST, "unauthorized_client".into())
    );
    // RFC 8707: a registered resource becomes the token's audience; another is refused.
    let targeted = form(
        &[
            ("grant_type", "client_credentials"),
            ("resource", crate::RESOURCE),
        ],
        service_auth.clone(),
    )
    .await;
    assert_eq!(targeted.status, StatusCode::OK, "{}", targeted.body);
    let token = targeted.json()["access_token"].as_str().unwrap().to_owned();
    let seen = Browser::new()
        .post_form(
            &world.url("/introspect"),
            &[("token", token.as_str())],
            &[(
                "authorization",
                &crate::basic(crate::RESOURCE_SERVER_ID, &world.client_secret),
            )],
        )
        .await;
    assert_eq!(seen.json()["aud"], crate::RESOURCE, "{}", seen.body);
    let unknown = form(
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://unknown.example"),
        ],
        service_auth,
    )
    .await;
    assert_eq!(
        json_error(&unknown),
        (StatusCode::BAD_REQUEST, "invalid_target".into())
    );
}

/// RFC 7662 with `openidconnect` (its `oauth2` core) as the client where it can: the RP
/// introspects its own access and refresh tokens, the resource server's credential the
/// service's access token; a token of another client, a revoked one and an unknown one
/// are `{"active": false}`; a wrong secret is 401; GET is 405; discovery names the endpoint.
pub async fn introspection_rfc_7662(world: &World) {
    use openidconnect::{IntrospectionUrl, TokenIntrospectionResponse as _};
    let issuer = IssuerUrl::new(world.issuer.clone()).unwrap();
    let metadata = CoreProviderMetadata::discover_async(issuer, &rp_http)
        .await
        .unwrap();
    let d = Browser::new()
        .get(&world.url("/.well-known/openid-configuration"))
        .await
        .json();
    assert_eq!(
        d["introspection_endpoint"],
        world.url("/introspect").as_str()
    );
    let url = IntrospectionUrl::new(world.url("/introspect")).unwrap();
    let as_client = |id: &str| {
        CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(id.to_owned()),
            Some(ClientSecret::new(world.client_secret.clone())),
        )
        .set_introspection_url(url.clone())
    };
    let rp = as_client(CLIENT_ID);
    let mut b = Browser::new();
    let (code, req) = code_for(world, &mut b, "").await;
    let tokens = redeem(world, &code, &req.verifier).await.json();
    let access = AccessToken::new(tokens["access_token"].as_str().unwrap().to_owned());
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();

    let own = rp
        .introspect(&access)
        .request_async(&rp_http)
        .await
        .unwrap();
    assert!(own.active());
    assert_eq!(own.client_id().map(|c| c.as_str()), Some(CLIENT_ID));
    assert_eq!(own.iss(), Some(world.issuer.as_str()));
    assert!(own.sub().is_some() && own.exp().is_some() && own.iat().is_some());
    assert_eq!(
        own.token_type(),
        Some(&openidconnect::core::CoreTokenType::Bearer)
    );
    let own_refresh = rp
        .introspect(&AccessToken::new(refresh.clone()))
        .set_token_type_hint("refresh_token")
        .request_async(&rp_http)
        .await
        .unwrap();
    assert!(own_refresh.active());

    let service = as_client(SERVICE_ID)
        .exchange_client_credentials()
        .unwrap()
        .request_async(&rp_http)
        .await
        .unwrap();
    let api = as_client(RESOURCE_SERVER_ID);
    let seen = api
        .introspect(service.access_token())
        .request_async(&rp_http)
        .await
        .unwrap();
    assert!(seen.active());
    assert_eq!(seen.sub(), Some(SERVICE_ID));
    // The service's token is not the RP's business, nor the RP's refresh token the API's.
    let other = rp
        .introspect(service.access_token())
        .request_async(&rp_http)
        .await
        .unwrap();
    assert!(!other.active());
    let refresh_at_api = api
        .introspect(&AccessToken::new(refresh.clone()))
        .request_async(&rp_http)
        .await
        .unwrap();
    assert!(!refresh_at_api.active());
    let unknown = rp
        .introspect(&AccessToken::new("x".repeat(43)))
        .request_async(&rp_http)
        .await
        .unwrap();
    assert!(!unknown.active());

    // Revoked (RFC 7009): inactive at once.
    let revoke_body = [("token", refresh.as_str())];
    let revoked = Browser::new()
        .post_form(
            &world.url("/revoke"),
            &revoke_body,
            &[("authorization", &world.basic())],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let after = rp
        .introspect(&access)
        .request_async(&rp_http)
        .await
        .unwrap();
    assert!(!after.active());

    let raw = |auth: String| async move {
        Browser::new()
            .post_form(
                &world.url("/introspect"),
                &[("token", "whatever")],
                &[("authorization", &auth)],
            )
            .await
    };
    let wrong = raw(crate::basic(CLIENT_ID, "wrong")).await;
    assert_eq!(
        json_error(&wrong),
        (StatusCode::UNAUTHORIZED, "invalid_client".into())
    );
    assert!(wrong.header("www-authenticate").is_some());
    let get = b.get(&world.url("/introspect")).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
}
