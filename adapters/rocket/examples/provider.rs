//! A Rocket app that is also an OpenID provider: it keeps its own users and login page,
//! shows its own consent page, and serves `/api/me` to holders of an access token with the
//! `profile` scope.
//!
//! ```sh
//! cargo run -p oidc-flow-rocket --example provider
//! ```
//!
//! It prints a demo client and the authorization URL to open; sign in as `alice` /
//! `wonderland`.
#![forbid(unsafe_code)]

use std::error::Error;
use std::sync::Arc;

use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow::response::escape_html;
use oidc_flow::{AuthMethod, Client, GrantType, MintedSecret, Provider, ResponseType};
use oidc_flow_rocket::{
    Authentication, Bearer, Oidc, OidcResponse, PendingConsent, PendingLogin, RequiredScope, Scope,
    UserClaims, UserInfo,
};
use oidc_flow_store::{MemoryStore, Store};
use rocket::Either;
use rocket::form::{Form, FromForm};
use rocket::http::ContentType;
use rocket::response::content::RawHtml;
use rocket::time::OffsetDateTime;
use rocket::{Build, Rocket, State, get, post, routes};

/// One of the app's users. (A real app keeps password hashes in its database.)
pub struct User {
    /// The login name.
    pub username: &'static str,
    /// The password.
    pub password: &'static str,
    /// The stable subject identifier the provider puts in tokens.
    pub subject: &'static str,
    /// The display name.
    pub name: &'static str,
    /// The e-mail address.
    pub email: &'static str,
}

/// The app's users.
#[derive(Clone)]
pub struct Users(Arc<Vec<User>>);

impl Users {
    /// Alice and Bob.
    pub fn demo() -> Self {
        Self(Arc::new(vec![
            User {
                username: "alice",
                password: "wonderland",
                subject: "u-alice",
                name: "Alice Liddell",
                email: "alice@example.com",
            },
            User {
                username: "bob",
                password: "builder",
                subject: "u-bob",
                name: "Bob the Builder",
                email: "bob@example.com",
            },
        ]))
    }

    fn check(&self, username: &str, password: &str) -> Option<&User> {
        self.0
            .iter()
            .find(|u| u.username == username && u.password == password)
    }

    fn by_subject(&self, subject: &str) -> Option<&User> {
        self.0.iter().find(|u| u.subject == subject)
    }
}

/// The claims the provider releases come from the app's users.
impl UserClaims for Users {
    async fn claims(&self, subject: &str) -> Option<UserInfo> {
        let user = self.by_subject(subject)?;
        Some(UserInfo {
            name: Some(user.name.to_owned()),
            preferred_username: Some(user.username.to_owned()),
            email: Some(user.email.to_owned()),
            email_verified: Some(true),
            ..UserInfo::default()
        })
    }
}

// ------------------------------------------------------------------ login and consent

fn page(title: &str, body: &str) -> RawHtml<String> {
    RawHtml(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         </head><body>{body}</body></html>",
        escape_html(title)
    ))
}

fn login_form(pending: &PendingLogin<'_>, error: Option<&str>) -> RawHtml<String> {
    let error = error
        .map(|e| format!("<p class=\"err\">{}</p>", escape_html(e)))
        .unwrap_or_default();
    // No `action`: the form posts back to this URL, `?oidc_request=...` included.
    page(
        "Sign in",
        &format!(
            "<h1>Sign in</h1><p>to continue to <strong>{}</strong></p>{error}\
             <form method=\"post\">\
             <label>Username <input name=\"username\" value=\"{}\" required></label>\
             <label>Password <input name=\"password\" type=\"password\" required></label>\
             <button type=\"submit\">Sign in</button></form>",
            escape_html(pending.client_name()),
            escape_html(pending.login_hint().unwrap_or_default()),
        ),
    )
}

/// The login page of an authorization waiting for the end-user.
#[get("/login")]
fn login_page(pending: PendingLogin<'_>) -> RawHtml<String> {
    login_form(&pending, None)
}

/// The posted login form.
#[derive(FromForm)]
struct Credentials<'r> {
    username: &'r str,
    password: &'r str,
}

/// Checks the app's own credentials, then hands the end-user to the provider.
#[post("/login", data = "<form>")]
async fn login(
    pending: PendingLogin<'_>,
    users: &State<Users>,
    form: Form<Credentials<'_>>,
) -> Either<OidcResponse, RawHtml<String>> {
    let Some(user) = users.check(form.username, form.password) else {
        return Either::Right(login_form(
            &pending,
            Some("Unknown username or wrong password."),
        ));
    };
    let end_user = Authentication {
        subject: user.subject.to_owned(),
        auth_time: OffsetDateTime::now_utc(),
        acr: None,
        amr: vec!["pwd".to_owned()],
        sid: None,
    };
    Either::Left(pending.complete(end_user).await)
}

/// The consent page.
#[get("/consent")]
fn consent_page(pending: PendingConsent<'_>) -> RawHtml<String> {
    let scopes: String = pending
        .scope()
        .iter()
        .map(|s| format!("<li>{}</li>", escape_html(s)))
        .collect();
    page(
        "Allow access?",
        &format!(
            "<h1>Allow access?</h1><p><strong>{}</strong> asks to use your account with:</p>\
             <ul>{scopes}</ul><form method=\"post\">\
             <button name=\"decision\" value=\"allow\">Allow</button>\
             <button name=\"decision\" value=\"deny\">Deny</button></form>",
            escape_html(pending.client_name()),
        ),
    )
}

/// The posted consent form.
#[derive(FromForm)]
struct Decision<'r> {
    decision: &'r str,
}

/// The end-user's answer.
#[post("/consent", data = "<form>")]
async fn consent(pending: PendingConsent<'_>, form: Form<Decision<'_>>) -> OidcResponse {
    if form.decision == "allow" {
        pending.allow().await
    } else {
        pending.deny().await
    }
}

// ------------------------------------------------------------------ the app's API

/// `/api/me` needs the `profile` scope.
pub struct Profile;

impl RequiredScope for Profile {
    const SCOPE: &'static str = "profile";
}

/// Who the access token speaks for.
#[get("/api/me")]
fn me(token: Bearer<Profile>, users: &State<Users>) -> (ContentType, String) {
    let user = users.by_subject(token.subject());
    let body = format!(
        "{{\"sub\":{},\"name\":{},\"client_id\":{},\"scope\":{}}}",
        json_string(token.subject()),
        json_string(user.map_or("", |u| u.name)),
        json_string(token.client_id()),
        json_string(&token.scope().to_string()),
    );
    (ContentType::JSON, body)
}

/// `/api/orders` takes only tokens meant for the orders API (an RFC 8707 resource) or
/// issued to the orders service itself.
pub struct Orders;

impl RequiredScope for Orders {
    const SCOPE: &'static str = "";
    const AUDIENCES: &'static [&'static str] = &["https://orders.example", "orders-service"];
}

/// Which client the orders API serves.
#[get("/api/orders")]
fn orders(token: Bearer<Orders>) -> (ContentType, String) {
    let body = format!("{{\"client_id\":{}}}", json_string(token.client_id()));
    (ContentType::JSON, body)
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ------------------------------------------------------------------ assembly

/// The provider for `issuer`, signing RS256 ID tokens with a key made now.
/// (A real app loads its key, so tokens outlive a restart.)
pub async fn provider(issuer: &str) -> Result<Arc<Provider>, Box<dyn Error>> {
    let (key, _pem) =
        rocket::tokio::task::spawn_blocking(|| SigningKey::generate(Algorithm::RS256, None))
            .await??;
    let mut keys = KeySet::new();
    keys.add(key)?;
    // A replayed nonce is refused; the claim is atomic in the store.
    Ok(Arc::new(
        Provider::builder(issuer, keys)
            .check_nonce_replay(true)
            .build()?,
    ))
}

/// The app: its own routes, and the provider's under the issuer's path. `portal` is a
/// first-party client (no consent page).
pub fn app(
    provider: Arc<Provider>,
    store: Arc<MemoryStore>,
    rocket: Rocket<Build>,
) -> Rocket<Build> {
    let users = Users::demo();
    let oidc = Oidc::builder(provider, store, users.clone())
        .login_url("/login")
        .consent_url("/consent")
        .first_party(["portal"])
        .build();
    rocket.attach(oidc).manage(users).mount(
        "/",
        routes![login_page, login, consent_page, consent, me, orders],
    )
}

/// Registers a confidential code-flow client; returns its secret.
pub async fn register(
    store: &MemoryStore,
    client_id: &str,
    redirect_uri: &str,
) -> Result<String, Box<dyn Error>> {
    let secret = MintedSecret::generate(&mut oidc_flow_store::driver::system_rng());
    let client = Client {
        client_id: client_id.to_owned(),
        client_secret: None,
        client_secret_sha256: Some(secret.hash()),
        redirect_uris: vec![redirect_uri.to_owned()],
        response_types: vec![ResponseType::CODE],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scope: Scope::parse("openid profile email offline_access")?,
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        id_token_signed_response_alg: None,
        require_auth_time: false,
        default_max_age: None,
        client_name: Some(format!("The {client_id} app")),
        // After logout, the browser may be sent to `bye` beside the redirect URI.
        post_logout_redirect_uris: url::Url::parse(redirect_uri)
            .and_then(|u| u.join("bye"))
            .map(|u| vec![u.to_string()])
            .unwrap_or_default(),
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        resource: None,
        access_token_format: oidc_flow::AccessTokenFormat::Opaque,
        jwks: None,
        jwks_uri: None,
        access_token_lifetime: None,
        id_token_lifetime: None,
    }
    .validate()?;
    store.add_client(&client).await?;
    Ok(secret.into_string())
}

#[rocket::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Rocket's request lines without their query strings (state, hints, handles).
    oidc_flow_rocket::install_logger(log::LevelFilter::Info)?;
    let figment = rocket::Config::figment();
    let port: u16 = figment.extract_inner("port").unwrap_or(8000);
    let issuer = format!("http://127.0.0.1:{port}/oidc");
    let store = Arc::new(MemoryStore::new());
    let redirect = "http://127.0.0.1:8080/callback";
    let secret = register(&store, "demo-client", redirect).await?;
    register(&store, "portal", redirect).await?;
    println!(
        "client_id:     demo-client\nclient_secret: {secret}\nredirect_uri:  {redirect}\n\
         open:          {issuer}/authorize?response_type=code&client_id=demo-client\
         &redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcallback&scope=openid%20profile&state=xyz\n\
         sign in as alice / wonderland"
    );
    let rocket = app(provider(&issuer).await?, store, rocket::custom(figment));
    let _ = rocket.launch().await?;
    Ok(())
}
