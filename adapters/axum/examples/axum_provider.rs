//! An axum app that is also an OpenID provider: its own users, login and consent pages,
//! and `/api/me` for holders of an access token with the `profile` scope.
//!
//! ```sh
//! cargo run -p oidc-flow-axum --example axum_provider
//! ```
//!
//! It prints a demo client and the authorization URL to open; sign in as `alice` /
//! `wonderland`.
#![forbid(unsafe_code)]

use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Form;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use oidc_flow::authorize::ConsentAnswer;
use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow::response::escape_html;
use oidc_flow::{
    AuthMethod, Authentication, Client, GrantType, MintedSecret, Provider, ResponseType, Scope,
    UserInfo,
};
use oidc_flow_axum::{Bearer, Oidc, PendingConsent, PendingLogin, RequiredScope};
use oidc_flow_store::{MemoryStore, Store, UserClaims};

/// The app's users: (username, password, subject, name). A real app keeps password hashes.
const USERS: [(&str, &str, &str, &str); 2] = [
    ("alice", "wonderland", "u-alice", "Alice Liddell"),
    ("bob", "builder", "u-bob", "Bob the Builder"),
];

/// The claims the provider releases come from the app's users.
pub struct Users;

impl UserClaims for Users {
    async fn claims(&self, subject: &str) -> Option<UserInfo> {
        let (username, _, _, name) = USERS.iter().find(|u| u.2 == subject)?;
        Some(UserInfo {
            name: Some((*name).to_owned()),
            preferred_username: Some((*username).to_owned()),
            ..UserInfo::default()
        })
    }
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         </head><body>{body}</body></html>",
        escape_html(title)
    ))
}

fn login_form(pending: &PendingLogin, error: Option<&str>) -> Html<String> {
    let client = pending.request.client();
    let name = client.client_name.as_deref().unwrap_or(&client.client_id);
    let error = error
        .map(|e| format!("<p class=\"err\">{}</p>", escape_html(e)))
        .unwrap_or_default();
    // No `action`: the form posts back to this URL, `?oidc_request=...` included.
    page(
        "Sign in",
        &format!(
            "<h1>Sign in</h1><p>to continue to <strong>{}</strong></p>{error}\
             <form method=\"post\"><label>Username <input name=\"username\" value=\"{}\"></label>\
             <label>Password <input name=\"password\" type=\"password\"></label>\
             <button type=\"submit\">Sign in</button></form>",
            escape_html(name),
            escape_html(pending.request.login_hint().unwrap_or_default()),
        ),
    )
}

async fn login_page(pending: PendingLogin) -> Html<String> {
    login_form(&pending, None)
}

/// The posted login form.
#[derive(serde::Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

async fn login(pending: PendingLogin, Form(form): Form<Credentials>) -> Response {
    let user = USERS
        .iter()
        .find(|u| u.0 == form.username && u.1 == form.password);
    let Some((_, _, subject, _)) = user else {
        return login_form(&pending, Some("Unknown username or wrong password.")).into_response();
    };
    let end_user = Authentication {
        subject: (*subject).to_owned(),
        auth_time: time::OffsetDateTime::now_utc(),
        acr: None,
        amr: vec!["pwd".to_owned()],
        sid: None,
    };
    pending.complete(end_user).await
}

async fn consent_page(pending: PendingConsent) -> Html<String> {
    let scopes: String = pending
        .request
        .scope()
        .iter()
        .map(|s| format!("<li>{}</li>", escape_html(s)))
        .collect();
    page(
        "Allow access?",
        &format!(
            "<h1>Allow access?</h1><ul>{scopes}</ul><form method=\"post\">\
             <button name=\"decision\" value=\"allow\">Allow</button>\
             <button name=\"decision\" value=\"deny\">Deny</button></form>"
        ),
    )
}

/// The posted consent form.
#[derive(serde::Deserialize)]
struct Decision {
    decision: String,
}

async fn consent(pending: PendingConsent, Form(form): Form<Decision>) -> Response {
    let answer = match form.decision.as_str() {
        "allow" => ConsentAnswer::Allow,
        _ => ConsentAnswer::Deny,
    };
    pending.answer(answer).await
}

/// `/api/me` needs the `profile` scope.
pub struct Profile;

impl RequiredScope for Profile {
    const SCOPE: &'static str = "profile";
}

async fn me(token: Bearer<Profile>) -> Json<serde_json::Value> {
    let record = token.token();
    Json(serde_json::json!({ "sub": record.subject, "client_id": record.client_id }))
}

/// The app: its own routes, and the provider's nested under the issuer's path (`/oidc`).
pub fn app(provider: Arc<Provider>, store: Arc<MemoryStore>) -> Router {
    let oidc = Oidc::new(provider, store, Users, "/login", "/consent");
    tokio::spawn(oidc.purge(oidc_flow_store::purge::PURGE_INTERVAL));
    Router::new()
        .nest(oidc.base_path(), oidc.router())
        .route("/login", get(login_page).post(login))
        .route("/consent", get(consent_page).post(consent))
        .route("/api/me", get(me))
        .with_state(oidc)
}

/// Registers a confidential code-flow client; returns its secret.
pub async fn register(
    store: &MemoryStore,
    id: &str,
    redirect: &str,
) -> Result<String, Box<dyn Error>> {
    let secret = MintedSecret::generate(&mut oidc_flow_store::driver::system_rng());
    let client = Client {
        client_id: id.to_owned(),
        client_secret: None,
        client_secret_sha256: Some(secret.hash()),
        redirect_uris: vec![redirect.to_owned()],
        response_types: vec![ResponseType::CODE],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scope: Scope::parse("openid profile email offline_access")?,
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        id_token_signed_response_alg: None,
        require_auth_time: false,
        default_max_age: None,
        client_name: Some(format!("The {id} app")),
        // After logout, the browser may be sent to `bye` beside the redirect URI.
        post_logout_redirect_uris: url::Url::parse(redirect)
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let addr: SocketAddr = "127.0.0.1:8000".parse()?;
    let issuer = format!("http://{addr}/oidc");
    let (key, _pem) = SigningKey::generate(Algorithm::ES256, None)?;
    let mut keys = KeySet::new();
    keys.add(key)?;
    let provider = Provider::builder(&issuer, keys)
        .default_alg(Algorithm::ES256)
        .build()?;
    let provider = Arc::new(provider);
    let store = Arc::new(MemoryStore::new());
    let redirect = "http://127.0.0.1:8080/callback";
    let secret = register(&store, "demo-client", redirect).await?;
    println!(
        "client_id:     demo-client\nclient_secret: {secret}\nredirect_uri:  {redirect}\n\
         open:          {issuer}/authorize?response_type=code&client_id=demo-client\
         &redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcallback&scope=openid%20profile&state=xyz\n\
         sign in as alice / wonderland"
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app(provider, store)).await?;
    Ok(())
}
