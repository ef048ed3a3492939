//! What is the Rocket adapter's own, through Rocket's local client against the example app:
//! its login and consent guards, first-party clients, cookies on https, the `Bearer`
//! guard and `/api/me`. The endpoints' behaviour that every adapter shares (discovery,
//! refusals, sealed requests refused, consent denied) is the battery's (`tests/battery.rs`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod common;

use common::{ISSUER, REDIRECT, World, authorize_url, query};
use oidc_flow::{AccessTokenRecord, Effect, GrantId, Scope, SecretHash};
use oidc_flow_store::Store as _;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalRequest};

/// A response, read whole.
#[derive(Debug)]
struct Resp {
    status: Status,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .find(|v| v.starts_with(&format!("{name}=")))
    }

    fn location(&self) -> &str {
        assert_eq!(self.status, Status::SeeOther, "{}", self.body);
        self.header("location").unwrap()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn send(req: LocalRequest<'_>) -> Resp {
    let r = req.dispatch().await;
    let status = r.status();
    let headers = r
        .headers()
        .iter()
        .map(|h| (h.name().as_str().to_owned(), h.value().to_owned()))
        .collect();
    let body = r.into_string().await.unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

async fn post_form(b: &Client, uri: &str, pairs: &[(&str, &str)]) -> Resp {
    send(
        b.post(uri.to_owned())
            .header(ContentType::Form)
            .body(form(pairs)),
    )
    .await
}

/// From an authorization URL through the app's login page (and its consent page, answered
/// with `decision`, if shown) to the last response.
async fn sign_in(b: &Client, url: &str, user: &str, password: &str, decision: &str) -> Resp {
    let start = send(b.get(url.to_owned())).await;
    let login = start.location().to_owned();
    assert!(login.starts_with("/login?oidc_request="), "{login}");
    let done = post_form(b, &login, &[("username", user), ("password", password)]).await;
    if done.status == Status::SeeOther && done.location().starts_with("/consent?") {
        let consent = done.location().to_owned();
        return post_form(b, &consent, &[("decision", decision)]).await;
    }
    done
}

/// The code of a redirect to the client, with its state checked.
fn code_of(resp: &Resp, state: &str) -> String {
    let location = resp.location();
    assert!(location.starts_with(REDIRECT), "{location}");
    let p = query(location);
    assert_eq!(p.get("state").map(String::as_str), Some(state), "{p:?}");
    assert_eq!(p.get("iss").map(String::as_str), Some(ISSUER));
    p.get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code: {p:?}"))
}

async fn exchange(world: &World, b: &Client, client_id: &str, code: &str) -> Resp {
    send(
        b.post("/oidc/token")
            .header(ContentType::Form)
            .header(Header::new("Authorization", world.basic(client_id)))
            .body(form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
            ])),
    )
    .await
}

async fn get_bearer(b: &Client, uri: &str, token: &str) -> Resp {
    send(
        b.get(uri.to_owned())
            .header(Header::new("Authorization", format!("Bearer {token}"))),
    )
    .await
}

/// Stores an access token directly (scopes and expiry the flows would not make).
async fn plant_token(world: &World, token: &str, scope: &str, expires_in: time::Duration) {
    plant_token_for(world, token, scope, expires_in, "demo", &[]).await;
}

/// As [`plant_token`], for `client_id` and meant for `audience`.
async fn plant_token_for(
    world: &World,
    token: &str,
    scope: &str,
    expires_in: time::Duration,
    client_id: &str,
    audience: &[&str],
) {
    let record = AccessTokenRecord {
        hash: SecretHash::of(token),
        grant: GrantId::from_stored(format!("g-{token}")),
        client_id: client_id.into(),
        subject: "u-alice".into(),
        scope: Scope::parse(scope).unwrap(),
        audience: audience.iter().map(|a| (*a).to_owned()).collect(),
        issued_at: None,
        expires_at: time::OffsetDateTime::now_utc() + expires_in,
    };
    world
        .store
        .apply(&[Effect::StoreAccessToken(record)])
        .await
        .unwrap();
}

// ------------------------------------------------------------------ documents

// ------------------------------------------------------------------ the code flow

#[tokio::test]
async fn code_flow_through_the_apps_login_and_consent_pages() {
    let world = World::new(ISSUER).await;
    let b = world.browser().await;

    // /authorize hands the request to the app's login page, bound to this browser.
    let start = send(b.get(authorize_url("demo", "openid profile email", "s1", ""))).await;
    let login = start.location().to_owned();
    let sealed = query(&login)["oidc_request"].clone();
    assert!(sealed.starts_with("p1."), "a sealed request: {sealed}");
    let browser = start.set_cookie("oidc_flow_browser").unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(browser.split("; ").any(|a| a == attr), "{attr}: {browser}");
    }
    assert!(!browser.contains("Secure"), "http issuer: {browser}");
    // An edited sealed request does not open (a middle character: the last one's low bits
    // can be base64 padding, which would test the decoder rather than the seal).
    let mut edited = sealed.clone().into_bytes();
    let mid = edited.len() / 2;
    edited[mid] = if edited[mid] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).unwrap();
    let refused = send(b.get(format!("/login?oidc_request={edited}"))).await;
    assert_eq!(refused.status, Status::BadRequest);

    // The app's page sees the client; looking does not use the sealed request up.
    for _ in 0..2 {
        let page = send(b.get(login.clone())).await;
        assert_eq!(page.status, Status::Ok);
        assert!(page.body.contains("The demo app"), "{}", page.body);
    }
    // A wrong password: the app shows its form again, the request still waits.
    let wrong = post_form(&b, &login, &[("username", "alice"), ("password", "nope")]).await;
    assert_eq!(wrong.status, Status::Ok);
    assert!(wrong.body.contains("wrong password"));

    // The right one: the provider opens its session and asks for consent.
    let logged_in = post_form(
        &b,
        &login,
        &[("username", "alice"), ("password", "wonderland")],
    )
    .await;
    let session = logged_in.set_cookie("oidc_flow_session").unwrap();
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/oidc", "Max-Age=28800"] {
        assert!(session.split("; ").any(|a| a == attr), "{attr}: {session}");
    }
    let consent = logged_in.location().to_owned();
    assert!(consent.starts_with("/consent?oidc_request="), "{consent}");
    // The login handle is used up.
    let again = post_form(
        &b,
        &login,
        &[("username", "alice"), ("password", "wonderland")],
    )
    .await;
    assert_eq!(again.status, Status::BadRequest, "{}", again.body);

    let page = send(b.get(consent.clone())).await;
    assert_eq!(page.status, Status::Ok);
    assert!(page.body.contains("<li>profile</li>"), "{}", page.body);
    let allowed = post_form(&b, &consent, &[("decision", "allow")]).await;
    let code = code_of(&allowed, "s1");

    // The token endpoint.
    let tokens = exchange(&world, &b, "demo", &code).await;
    assert_eq!(tokens.status, Status::Ok, "{}", tokens.body);
    assert_eq!(tokens.header("cache-control"), Some("no-store"));
    let t = tokens.json();
    let access = t["access_token"].as_str().unwrap().to_owned();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["id_token"].as_str().unwrap().split('.').count(), 3);

    // UserInfo, GET and POST: the claims come from the app's users (the store has none).
    let info = get_bearer(&b, "/oidc/userinfo", &access).await;
    assert_eq!(info.status, Status::Ok, "{}", info.body);
    let claims = info.json();
    assert_eq!(claims["sub"], "u-alice");
    assert_eq!(claims["name"], "Alice Liddell");
    assert_eq!(claims["email"], "alice@example.com");
    let posted = post_form(&b, "/oidc/userinfo", &[("access_token", &access)]).await;
    assert_eq!(posted.status, Status::Ok, "{}", posted.body);
    assert_eq!(posted.json()["sub"], "u-alice");

    // The app's own API with the same token.
    let me = get_bearer(&b, "/api/me", &access).await;
    assert_eq!(me.status, Status::Ok, "{}", me.body);
    assert_eq!(me.json()["sub"], "u-alice");
    assert_eq!(me.json()["name"], "Alice Liddell");
    assert_eq!(me.json()["client_id"], "demo");

    // The code is single-use; its replay revokes what was issued from it.
    let replay = exchange(&world, &b, "demo", &code).await;
    assert_eq!(replay.status, Status::BadRequest);
    assert_eq!(replay.json()["error"], "invalid_grant");
    let revoked = get_bearer(&b, "/api/me", &access).await;
    assert_eq!(revoked.status, Status::Unauthorized);

    // The session and the remembered consent answer prompt=none without a page.
    let quiet = send(b.get(authorize_url(
        "demo",
        "openid profile",
        "s2",
        "&prompt=none",
    )))
    .await;
    let code = code_of(&quiet, "s2");
    assert_eq!(exchange(&world, &b, "demo", &code).await.status, Status::Ok);

    // Another browser has no session: login_required.
    let other = world.browser().await;
    let refused = send(other.get(authorize_url("demo", "openid", "s3", "&prompt=none"))).await;
    assert_eq!(
        query(refused.location()).get("error").map(String::as_str),
        Some("login_required")
    );
}

#[tokio::test]
async fn refresh_token_grant() {
    let world = World::new(ISSUER).await;
    let b = world.browser().await;
    let url = authorize_url(
        "demo",
        "openid profile offline_access",
        "r1",
        "&prompt=consent",
    );
    let done = sign_in(&b, &url, "bob", "builder", "allow").await;
    let tokens = exchange(&world, &b, "demo", &code_of(&done, "r1"))
        .await
        .json();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let refreshed = send(
        b.post("/oidc/token")
            .header(ContentType::Form)
            .header(Header::new("Authorization", world.basic("demo")))
            .body(form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh),
            ])),
    )
    .await;
    assert_eq!(refreshed.status, Status::Ok, "{}", refreshed.body);
    let access = refreshed.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me = get_bearer(&b, "/api/me", &access).await;
    assert_eq!(me.json()["sub"], "u-bob");
}

#[tokio::test]
async fn authorize_by_post() {
    let world = World::new(ISSUER).await;
    let b = world.browser().await;
    let url = authorize_url("demo", "openid", "p1", "");
    let body = url.split_once('?').unwrap().1.to_owned();
    let r = send(
        b.post("/oidc/authorize")
            .header(ContentType::Form)
            .body(body),
    )
    .await;
    assert!(r.location().starts_with("/login?oidc_request="));
    // Not a form: 415.
    let r = send(
        b.post("/oidc/authorize")
            .header(ContentType::JSON)
            .body("{}"),
    )
    .await;
    assert_eq!(r.status, Status::UnsupportedMediaType);
}

#[tokio::test]
async fn first_party_client_skips_consent_unless_prompt_consent() {
    let world = World::new(ISSUER).await;
    let b = world.browser().await;
    let url = authorize_url("portal", "openid profile", "f1", "");
    let start = send(b.get(url)).await;
    let login = start.location().to_owned();
    let done = post_form(
        &b,
        &login,
        &[("username", "alice"), ("password", "wonderland")],
    )
    .await;
    let code = code_of(&done, "f1");
    assert_eq!(
        exchange(&world, &b, "portal", &code).await.status,
        Status::Ok
    );

    // prompt=consent is the client's explicit ask: the core shows the page anyway.
    let url = authorize_url("portal", "openid", "f2", "&prompt=consent");
    let asked = send(b.get(url)).await;
    assert!(
        asked.location().starts_with("/consent?"),
        "{}",
        asked.location()
    );
}

// ------------------------------------------------------------------ guards of the pages

#[tokio::test]
async fn cookies_are_secure_on_an_https_issuer() {
    let world = World::new("https://idp.example/oidc").await;
    let b = world.browser().await;
    let start = send(b.get(authorize_url("demo", "openid", "h1", ""))).await;
    // `__Host-`: Secure, Path=/, set by this host only (a sibling subdomain cannot plant it).
    let browser = start.set_cookie("__Host-oidc_flow_browser").unwrap();
    assert!(
        browser.split("; ").any(|a| a == "Secure") && browser.split("; ").any(|a| a == "Path=/"),
        "{browser}"
    );
    let login = start.location().to_owned();
    let done = post_form(
        &b,
        &login,
        &[("username", "alice"), ("password", "wonderland")],
    )
    .await;
    let session = done.set_cookie("__Host-oidc_flow_session").unwrap();
    assert!(
        session.split("; ").any(|a| a == "Secure") && session.split("; ").any(|a| a == "Path=/"),
        "{session}"
    );
}

// ------------------------------------------------------------------ the Bearer guard

#[tokio::test]
async fn bearer_guard_answers_rfc_6750() {
    let world = World::new(ISSUER).await;
    let b = world.browser().await;

    // No token: 401 and a bare challenge.
    let none = send(b.get("/api/me")).await;
    assert_eq!(none.status, Status::Unauthorized);
    assert_eq!(
        none.header("www-authenticate"),
        Some(format!("Bearer realm=\"{ISSUER}\"").as_str())
    );

    // A forged token: 401 invalid_token.
    let forged = get_bearer(&b, "/api/me", "forged-token-0123456789").await;
    assert_eq!(forged.status, Status::Unauthorized);
    let challenge = forged.header("www-authenticate").unwrap();
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(forged.json()["error"], "invalid_token");

    // A malformed header: 400 invalid_request.
    let bad = send(
        b.get("/api/me")
            .header(Header::new("Authorization", "Bearer two words")),
    )
    .await;
    assert_eq!(bad.status, Status::BadRequest);
    assert_eq!(bad.json()["error"], "invalid_request");

    // A valid token without `profile`: 403 insufficient_scope, naming the scope.
    plant_token(
        &world,
        "tok-email",
        "openid email",
        time::Duration::hours(1),
    )
    .await;
    let narrow = get_bearer(&b, "/api/me", "tok-email").await;
    assert_eq!(narrow.status, Status::Forbidden);
    let challenge = narrow.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"profile\""), "{challenge}");
    assert_eq!(narrow.json()["error"], "insufficient_scope");

    // An expired token: 401 invalid_token (the core's expiry rule).
    plant_token(
        &world,
        "tok-old",
        "openid profile",
        -time::Duration::seconds(1),
    )
    .await;
    let old = get_bearer(&b, "/api/me", "tok-old").await;
    assert_eq!(old.status, Status::Unauthorized);
    assert!(
        old.json()["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    // A resource does not need `openid`; UserInfo does.
    plant_token(&world, "tok-profile", "profile", time::Duration::hours(1)).await;
    let ok = get_bearer(&b, "/api/me", "tok-profile").await;
    assert_eq!(ok.status, Status::Ok, "{}", ok.body);
    let info = get_bearer(&b, "/oidc/userinfo", "tok-profile").await;
    assert_eq!(info.status, Status::Forbidden);
}

#[tokio::test]
async fn bearer_guard_checks_the_audience_the_route_names() {
    let world = World::new(ISSUER).await;
    let b = world.browser().await;
    let hour = time::Duration::hours(1);
    plant_token_for(&world, "tok-any", "openid", hour, "demo", &[]).await;
    plant_token_for(
        &world,
        "tok-orders",
        "openid",
        hour,
        "demo",
        &["https://orders.example"],
    )
    .await;
    plant_token_for(
        &world,
        "tok-other",
        "openid",
        hour,
        "demo",
        &["https://other.example"],
    )
    .await;
    plant_token_for(&world, "tok-service", "", hour, "orders-service", &[]).await;
    for (token, status) in [
        ("tok-orders", Status::Ok),
        ("tok-service", Status::Ok),
        ("tok-any", Status::Unauthorized),
        ("tok-other", Status::Unauthorized),
    ] {
        let r = get_bearer(&b, "/api/orders", token).await;
        assert_eq!(r.status, status, "{token}: {}", r.body);
        if status == Status::Unauthorized {
            assert_eq!(r.json()["error"], "invalid_token");
            let challenge = r.header("www-authenticate").unwrap();
            assert!(challenge.contains("another resource"), "{challenge}");
        }
    }
    // A route that names no audience takes any token of the provider.
    plant_token_for(
        &world,
        "tok-p",
        "profile",
        hour,
        "demo",
        &["https://other.example"],
    )
    .await;
    assert_eq!(get_bearer(&b, "/api/me", "tok-p").await.status, Status::Ok);
}

#[tokio::test]
async fn bearer_guard_verifies_jwt_access_tokens_without_the_store() {
    let world = World::new(ISSUER).await;
    let mut jwt_client = world.store.client("portal").await.unwrap().unwrap();
    jwt_client.client_id = "portal-jwt".to_owned();
    jwt_client.access_token_format = oidc_flow::AccessTokenFormat::Jwt;
    world.store.add_client(&jwt_client).await.unwrap();
    let basic = {
        use base64::Engine as _;
        let raw = format!("portal-jwt:{}", world.portal_secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let b = world.browser().await;
    let url = authorize_url("portal-jwt", "openid profile", "st-jwt", "");
    let done = sign_in(&b, &url, "alice", "wonderland", "allow").await;
    let code = code_of(&done, "st-jwt");
    let tokens = send(
        b.post("/oidc/token")
            .header(ContentType::Form)
            .header(Header::new("Authorization", basic.clone()))
            .body(form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ])),
    )
    .await;
    assert_eq!(tokens.status, Status::Ok, "{}", tokens.body);
    let access = tokens.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(access.split('.').count(), 3, "a JWT access token");
    let me = get_bearer(&b, "/api/me", &access).await;
    assert_eq!(me.status, Status::Ok, "{}", me.body);
    assert_eq!(me.json()["client_id"], "portal-jwt");
    // Revoked: UserInfo (the store) refuses it at once; the guard, which verified the JWT
    // locally, takes it until it expires (RFC 9068 §4; documented on `Bearer`).
    let revoked = send(
        b.post("/oidc/revoke")
            .header(ContentType::Form)
            .header(Header::new("Authorization", basic))
            .body(form(&[("token", &access)])),
    )
    .await;
    assert_eq!(revoked.status, Status::Ok);
    assert_eq!(
        get_bearer(&b, "/oidc/userinfo", &access).await.status,
        Status::Unauthorized
    );
    assert_eq!(get_bearer(&b, "/api/me", &access).await.status, Status::Ok);
    // Tampered: refused.
    let mut forged: Vec<String> = access.split('.').map(str::to_owned).collect();
    forged[1] = forged[1].chars().rev().collect();
    let r = get_bearer(&b, "/api/me", &forged.join(".")).await;
    assert_eq!(r.status, Status::Unauthorized);
    assert_eq!(r.json()["error"], "invalid_token");
}

// ------------------------------------------------------------------ endpoint errors

/// A grant of the application's own: a service account's token, for the client itself.
struct ServiceAccount;

#[derive(rocket::serde::Deserialize)]
#[serde(crate = "rocket::serde")]
struct ServiceAccountForm {
    account: String,
    scope: Option<String>,
}

const SERVICE_ACCOUNT: &str = "urn:example:params:oauth:grant-type:service-account";

impl oidc_flow_rocket::TokenGrant for ServiceAccount {
    const GRANT_TYPE: &'static str = SERVICE_ACCOUNT;
    type Form = ServiceAccountForm;

    async fn decide(
        &self,
        client: &oidc_flow::Client,
        form: ServiceAccountForm,
        _provider: &oidc_flow::Provider,
        _now: time::OffsetDateTime,
    ) -> Result<oidc_flow::extension::GrantDecision, oidc_flow::OAuthError> {
        if form.account != format!("{}-robot", client.client_id) {
            return Err(oidc_flow::OAuthError::new(
                oidc_flow::ErrorCode::InvalidGrant,
                "not this client's account",
            ));
        }
        let scope = Scope::parse(form.scope.as_deref().unwrap_or("profile")).unwrap();
        Ok(oidc_flow::extension::GrantDecision::for_client(scope))
    }
}

#[tokio::test]
async fn an_extension_grant_registered_on_the_builder_is_answered_at_the_token_endpoint() {
    let world = World::new(ISSUER).await;
    // The demo client registers the grant too.
    let mut demo = world.store.client("demo").await.unwrap().unwrap();
    demo.grant_types
        .push(oidc_flow::GrantType::Extension(SERVICE_ACCOUNT.to_owned()));
    use oidc_flow_store::Admin as _;
    world
        .store
        .update_client(&demo.validate().unwrap())
        .await
        .unwrap();
    // A provider that does not declare the grant refuses it at configuration time.
    let users = common::example::Users::demo();
    let undeclared =
        oidc_flow_rocket::Oidc::builder(world.provider.clone(), world.store.clone(), users.clone())
            .grant(ServiceAccount);
    assert!(undeclared.is_err());
    let declared = std::sync::Arc::new(
        oidc_flow::Provider::builder(ISSUER, common::key_set())
            .extension_grant(SERVICE_ACCOUNT)
            .build()
            .unwrap(),
    );
    let oidc = oidc_flow_rocket::Oidc::builder(declared, world.store.clone(), users)
        .grant(ServiceAccount)
        .unwrap()
        .build();
    let b = Client::tracked(rocket::custom(common::quiet_config()).attach(oidc))
        .await
        .unwrap();
    let ask = |account: &'static str| {
        b.post("/oidc/token")
            .header(ContentType::Form)
            .header(Header::new("Authorization", world.basic("demo")))
            .body(form(&[
                ("grant_type", SERVICE_ACCOUNT),
                ("account", account),
            ]))
    };
    let ok = send(ask("demo-robot")).await;
    assert_eq!(ok.status, Status::Ok, "{}", ok.body);
    let token = ok.json()["access_token"].as_str().unwrap().to_owned();
    let record = world
        .store
        .access_token(&SecretHash::of(&token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.subject, "demo");
    assert_eq!(record.scope.to_string(), "profile");
    let refused = send(ask("someone-else")).await;
    assert_eq!(refused.status, Status::BadRequest);
    assert_eq!(refused.json()["error"], "invalid_grant");
    // The portal client did not register the grant.
    let portal = send(
        b.post("/oidc/token")
            .header(ContentType::Form)
            .header(Header::new("Authorization", world.basic("portal")))
            .body(form(&[
                ("grant_type", SERVICE_ACCOUNT),
                ("account", "portal-robot"),
            ])),
    )
    .await;
    assert_eq!(
        portal.json()["error"],
        "unauthorized_client",
        "{}",
        portal.body
    );
}
