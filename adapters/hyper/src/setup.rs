//! Start-up and administration: signing keys, the provider, clients and users.
//! Shared by the `oidc-flow` command line and the tests.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow::{
    AuthMethod, Client, GrantType, MintedSecret, Provider, ResponseType, Scope, UserInfo,
};
use oidc_flow_store::driver::system_rng;
use oidc_flow_store::{Admin, EndedSession, KeyState, Store, StoreError, StoredKey, UserRecord};
use time::OffsetDateTime;

/// Why setting up or administering the provider failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored or generated key is unusable.
    #[error("signing key: {0}")]
    Key(#[from] oidc_flow::keys::KeyError),
    /// The provider configuration is invalid.
    #[error(transparent)]
    Config(#[from] oidc_flow::ConfigError),
    /// A client registration is invalid.
    #[error("client: {0}")]
    Client(#[from] oidc_flow::ClientError),
    /// An argument is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Hashing the password failed.
    #[error("password hashing failed: {0}")]
    Password(String),
}

/// The algorithms a new provider generates keys for: RS256 (the default), ES256 and EdDSA.
pub const GENERATED_ALGS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// Generates a signing key for `alg` and stores it, active.
pub async fn generate_key<S: Store>(
    store: &S,
    alg: Algorithm,
    now: OffsetDateTime,
) -> Result<StoredKey, SetupError> {
    // RSA key generation takes a while: keep it off the async workers.
    let (key, pem) = tokio::task::spawn_blocking(move || SigningKey::generate(alg, None))
        .await
        .map_err(|e| SetupError::Invalid(e.to_string()))??;
    let record = StoredKey {
        kid: key.kid().to_owned(),
        alg,
        pem,
        created_at: now,
        state: KeyState::Active,
    };
    store.add_signing_key(&record).await?;
    Ok(record)
}

/// Loads the signing keys from the store, generating and storing them on first start.
pub async fn load_or_create_keys<S: Store>(store: &S) -> Result<KeySet, SetupError> {
    let mut stored = store.signing_keys().await?;
    if stored.is_empty() {
        let now = OffsetDateTime::now_utc();
        for alg in GENERATED_ALGS {
            generate_key(store, alg, now).await?;
        }
        stored = store.signing_keys().await?;
    }
    key_set(&stored)
}

/// The key set of stored keys: active keys sign (the newest of an algorithm first, so it is
/// the one chosen), rotated keys are only published in the JWKS.
pub fn key_set(stored: &[StoredKey]) -> Result<KeySet, SetupError> {
    let mut keys = KeySet::new();
    let mut active: Vec<&StoredKey> = stored.iter().filter(|k| k.state.is_active()).collect();
    active.sort_by(|a, b| (b.created_at, &b.kid).cmp(&(a.created_at, &a.kid)));
    for k in active {
        keys.add(SigningKey::from_pem(k.pem.as_bytes(), k.alg, Some(&k.kid))?)?;
    }
    for k in stored.iter().filter(|k| !k.state.is_active()) {
        keys.add_published(SigningKey::from_pem(k.pem.as_bytes(), k.alg, Some(&k.kid))?)?;
    }
    Ok(keys)
}

/// The provider for `issuer` with these keys (RS256 ID tokens by default; the nonce replay
/// check on).
pub fn provider_with_keys(issuer: &str, keys: KeySet) -> Result<Arc<Provider>, SetupError> {
    Ok(Arc::new(
        Provider::builder(issuer, keys)
            .check_nonce_replay(true)
            .build()?,
    ))
}

/// The provider for `issuer` with the stored keys (RS256 ID tokens by default).
pub async fn provider<S: Store>(store: &S, issuer: &str) -> Result<Arc<Provider>, SetupError> {
    let keys = load_or_create_keys(store).await?;
    provider_with_keys(issuer, keys)
}

/// What `keys rotate` did for one algorithm.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The algorithm.
    pub alg: String,
    /// The new key, which signs from now on.
    pub new_kid: String,
    /// The keys that stopped signing (still in the JWKS until retired).
    pub rotated: Vec<String>,
}

/// Makes a new active key for each of `algs` and marks the keys that were active for it
/// rotated: they stop signing at once and stay in the JWKS until retired.
pub async fn rotate_keys<S: Admin>(
    store: &S,
    algs: &[Algorithm],
) -> Result<Vec<Rotation>, SetupError> {
    let now = OffsetDateTime::now_utc();
    let before = store.signing_keys().await?;
    let mut out = Vec::new();
    for &alg in algs {
        if alg.is_symmetric() {
            return Err(SetupError::Invalid(format!(
                "{alg} is keyed with each client's secret: rotate a client's secret instead"
            )));
        }
        // The new key first: a server that reloads in between signs with the newest.
        let new = generate_key(store, alg, now).await?;
        let mut rotated = Vec::new();
        for old in before
            .iter()
            .filter(|k| k.alg == alg && k.state.is_active())
        {
            store
                .set_key_state(&old.kid, KeyState::Rotated { at: now })
                .await?;
            rotated.push(old.kid.clone());
        }
        out.push(Rotation {
            alg: alg.as_str().to_owned(),
            new_kid: new.kid,
            rotated,
        });
    }
    Ok(out)
}

/// Retires (deletes) signing keys: `kid`, or every rotated key when `kid` is `None`. An
/// active key cannot be retired (rotate it first). Returns the kids removed.
pub async fn retire_keys<S: Admin>(
    store: &S,
    kid: Option<&str>,
) -> Result<Vec<String>, SetupError> {
    let stored = store.signing_keys().await?;
    let chosen: Vec<&StoredKey> = match kid {
        Some(kid) => {
            let key = stored
                .iter()
                .find(|k| k.kid == kid)
                .ok_or_else(|| SetupError::Invalid(format!("no signing key with kid `{kid}`")))?;
            if key.state.is_active() {
                return Err(SetupError::Invalid(format!(
                    "key `{kid}` is active: run `keys rotate --alg {}` first",
                    key.alg
                )));
            }
            vec![key]
        }
        None => stored.iter().filter(|k| !k.state.is_active()).collect(),
    };
    let mut removed = Vec::new();
    for key in chosen {
        if store.remove_signing_key(&key.kid).await? {
            removed.push(key.kid.clone());
        }
    }
    Ok(removed)
}

/// What `oidc-flow client add` registers.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    /// Redirect URIs (at least one, unless the client uses only client_credentials).
    pub redirect_uris: Vec<String>,
    /// Response types; `code` when empty.
    pub response_types: Vec<String>,
    /// Grant types; derived from the response types (plus refresh_token) when empty.
    pub grant_types: Vec<String>,
    /// Allowed scope; the provider's standard scopes when absent.
    pub scope: Option<String>,
    /// Token endpoint auth method; client_secret_basic when absent.
    pub token_endpoint_auth_method: Option<String>,
    /// ID token algorithm; the provider's default when absent.
    pub id_token_signed_response_alg: Option<String>,
    /// A display name.
    pub client_name: Option<String>,
    /// Where the client may ask to be sent after logout.
    pub post_logout_redirect_uris: Vec<String>,
    /// Where a back-channel logout token is posted.
    pub backchannel_logout_uri: Option<String>,
    /// Accept plain-http redirect URIs on other hosts than loopback.
    pub allow_insecure_redirects: bool,
    /// A resource server's resource indicator (RFC 8707): registers that resource server's
    /// introspection credential instead of a client (no grant, no redirect URI).
    pub resource: Option<String>,
    /// How the client's access tokens are made (opaque by default).
    pub access_token_format: oidc_flow::AccessTokenFormat,
    /// The client's public keys (a JWKS document), for `private_key_jwt`.
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its public keys instead, for `private_key_jwt`.
    pub jwks_uri: Option<String>,
    /// Its access tokens' lifetime in seconds; the provider's when absent.
    pub access_token_lifetime: Option<u64>,
    /// Its ID tokens' lifetime in seconds; the provider's when absent.
    pub id_token_lifetime: Option<u64>,
}

/// A new client secret: 256 bits, or as long as an HS* ID token key must be.
fn new_secret(alg: Option<Algorithm>) -> MintedSecret {
    let min = alg.map_or(0, Algorithm::min_hmac_key_len);
    MintedSecret::generate_at_least(&mut system_rng(), min)
}

/// Registers a client with a random id and (for confidential clients) a 256-bit secret.
///
/// Returns its RFC 7591 registration, `client_secret` included: the only time it is shown.
/// The secret is stored as a SHA-256 digest, or (HS* clients only, which need it as the
/// HMAC key) encrypted at rest by the store.
pub async fn add_client<S: Store>(
    store: &S,
    new: NewClient,
) -> Result<serde_json::Value, SetupError> {
    let invalid = |m: String| SetupError::Invalid(m);
    let mut rng = system_rng();
    // 22 base64url characters (132 bits), never starting with `-`: an id typed after a
    // command (`client show ID`) must not read as a flag.
    let client_id = loop {
        let id = MintedSecret::generate(&mut rng)
            .as_str()
            .chars()
            .take(22)
            .collect::<String>();
        if !id.starts_with('-') {
            break id;
        }
    };
    // Grants that never send an end-user to the authorization endpoint: the client
    // credentials grant and extension grants (password, token exchange, ...).
    let grants_without_redirects = !new.grant_types.is_empty()
        && new.grant_types.iter().all(|g| {
            !matches!(
                GrantType::from_name(g),
                GrantType::AuthorizationCode | GrantType::Implicit
            )
        });
    let resource_server = new.resource.is_some();
    let response_types =
        if resource_server || (new.response_types.is_empty() && grants_without_redirects) {
            // A backend service: no end-user is ever sent to the authorization endpoint.
            Vec::new()
        } else if new.response_types.is_empty() {
            vec![ResponseType::CODE]
        } else {
            new.response_types
                .iter()
                .map(|t| {
                    ResponseType::parse(t)
                        .ok_or_else(|| invalid(format!("unsupported response type `{t}`")))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
    let grant_types = if resource_server {
        Vec::new()
    } else if new.grant_types.is_empty() {
        let mut g: Vec<GrantType> = Vec::new();
        for rt in &response_types {
            for needed in rt.needs_grant_types() {
                if !g.contains(&needed) {
                    g.push(needed);
                }
            }
        }
        if g.contains(&GrantType::AuthorizationCode) {
            g.push(GrantType::RefreshToken);
        }
        g
    } else {
        new.grant_types
            .iter()
            .map(|t| {
                match GrantType::from_name(t) {
                    GrantType::Extension(name) if !GrantType::is_valid_extension(&name) => Err(
                        invalid(format!(
                            "unsupported grant type `{t}`: use authorization_code, implicit, refresh_token, client_credentials, password, or an extension grant's absolute URI"
                        )),
                    ),
                    grant => Ok(grant),
                }
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let method = match new.token_endpoint_auth_method.as_deref() {
        None => AuthMethod::ClientSecretBasic,
        Some(m) => serde_json::from_value::<AuthMethod>(serde_json::Value::String(m.to_owned()))
            .map_err(|_| invalid(format!("unsupported token endpoint auth method `{m}`")))?,
    };
    let alg = match new.id_token_signed_response_alg.as_deref() {
        None => None,
        Some(a) => Some(
            Algorithm::from_name(a)
                .ok_or_else(|| invalid(format!("unsupported algorithm `{a}`")))?,
        ),
    };
    let scope = match new.scope.as_deref() {
        None if resource_server => Scope::default(),
        None => {
            Scope::parse("openid profile email address phone offline_access").unwrap_or_default()
        }
        Some(s) => Scope::parse(s).map_err(|e| invalid(e.to_string()))?,
    };
    let secret =
        (!matches!(method, AuthMethod::None | AuthMethod::PrivateKeyJwt)).then(|| new_secret(alg));
    // HS* ID tokens and client_secret_jwt assertions are keyed with the secret itself.
    let hmac = alg.is_some_and(Algorithm::is_symmetric) || method == AuthMethod::ClientSecretJwt;
    let client = Client {
        client_id,
        client_secret: secret
            .as_ref()
            .filter(|_| hmac)
            .map(|s| s.as_str().to_owned()),
        client_secret_sha256: secret.as_ref().filter(|_| !hmac).map(MintedSecret::hash),
        redirect_uris: new.redirect_uris,
        response_types,
        grant_types,
        scope,
        token_endpoint_auth_method: method,
        id_token_signed_response_alg: alg,
        require_auth_time: false,
        default_max_age: None,
        client_name: new.client_name,
        post_logout_redirect_uris: new.post_logout_redirect_uris,
        backchannel_logout_uri: new.backchannel_logout_uri,
        backchannel_logout_session_required: false,
        resource: new.resource,
        access_token_format: new.access_token_format,
        jwks: new.jwks,
        jwks_uri: new.jwks_uri,
        access_token_lifetime: new.access_token_lifetime,
        id_token_lifetime: new.id_token_lifetime,
    }
    .validate()?;
    client.check_redirect_policy(new.allow_insecure_redirects)?;
    store.add_client(&client).await?;
    let mut registration = serde_json::to_value(&client).map_err(|e| invalid(e.to_string()))?;
    if let serde_json::Value::Object(map) = &mut registration {
        map.remove("client_secret_sha256");
        if let Some(secret) = &secret {
            map.insert("client_secret".to_owned(), secret.as_str().into());
            map.insert("client_secret_expires_at".to_owned(), 0.into());
        }
    }
    Ok(registration)
}

/// argon2id with m=7 MiB, t=5, p=1: one of OWASP's equivalent configurations (beside
/// m=19 MiB, t=2, the crate's default). The smaller memory keeps a login from tripling the
/// server's resident size: the allocator keeps the hash's blocks after it is done.
fn argon2() -> Argon2<'static> {
    match argon2::Params::new(7 * 1024, 5, 1, None) {
        Ok(params) => Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params),
        Err(_) => Argon2::default(),
    }
}

/// Hashes a password with argon2id, off the async workers.
pub async fn hash_password(password: &str) -> Result<String, SetupError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| SetupError::Password(e.to_string()))
    })
    .await
    .map_err(|e| SetupError::Password(e.to_string()))?
}

/// Adds a user of the demo server. `claims` is a JSON object of further OIDC Core §5.1
/// claims or custom ones; `email` and `name` override what it says.
pub async fn add_user<S: Store>(
    store: &S,
    username: &str,
    password: &str,
    email: Option<&str>,
    name: Option<&str>,
    claims: Option<&str>,
) -> Result<UserRecord, SetupError> {
    if username.is_empty() || username.len() > 255 {
        return Err(SetupError::Invalid(
            "the username must be 1 to 255 bytes".into(),
        ));
    }
    if password.is_empty() {
        return Err(SetupError::Invalid("the password must not be empty".into()));
    }
    let mut info: UserInfo = match claims {
        Some(json) => serde_json::from_str(json).map_err(|e| {
            SetupError::Invalid(format!("--claims must be a JSON object of claims: {e}"))
        })?,
        None => UserInfo::default(),
    };
    if let Some(email) = email {
        info.email = Some(email.to_owned());
        info.email_verified.get_or_insert(false);
    }
    if let Some(name) = name {
        info.name = Some(name.to_owned());
    }
    info.preferred_username
        .get_or_insert_with(|| username.to_owned());
    let record = UserRecord {
        username: username.to_owned(),
        // A random, stable subject: the login name may change, `sub` never does.
        subject: MintedSecret::generate(&mut system_rng())
            .as_str()
            .chars()
            .take(22)
            .collect(),
        password_hash: hash_password(password).await?,
        claims: info,
    };
    store.add_user(&record).await?;
    Ok(record)
}

/// The name of the demo client, by which `serve --demo` finds it again.
pub const DEMO_CLIENT_NAME: &str = "Demo client";

/// Whether `issuer` is on a loopback host (127.0.0.0/8, `[::1]` or localhost): the only
/// issuers `serve --demo` accepts, since the demo account's password is public.
pub fn is_loopback_issuer(issuer: &str) -> bool {
    let Ok(url) = url::Url::parse(issuer) else {
        return false;
    };
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Creates the demo user (`demo` / `demo`) and the demo client when they are absent, and
/// returns what to print when it created something; refuses unless `issuer` is loopback.
pub async fn ensure_demo<S: Admin>(store: &S, issuer: &str) -> Result<Option<String>, SetupError> {
    if !is_loopback_issuer(issuer) {
        return Err(SetupError::Invalid(format!(
            "--demo creates the account demo/demo, so it is only allowed on a loopback issuer \
             (http://127.0.0.1, http://[::1] or http://localhost), not {issuer}"
        )));
    }
    let mut lines = Vec::new();
    if store.user_by_name("demo").await?.is_none() {
        let user = add_user(
            store,
            "demo",
            "demo",
            Some("demo@example.com"),
            Some("Demo User"),
            None,
        )
        .await?;
        lines.push(format!(
            "  user:          {} / password demo (sub {})",
            user.username, user.subject
        ));
    }
    let has_client = store
        .clients()
        .await?
        .iter()
        .any(|c| c.client_name.as_deref() == Some(DEMO_CLIENT_NAME));
    if !has_client {
        let redirect = "http://127.0.0.1:8080/callback".to_owned();
        let client = add_client(
            store,
            NewClient {
                redirect_uris: vec![redirect.clone()],
                post_logout_redirect_uris: vec!["http://127.0.0.1:8080/".into()],
                client_name: Some(DEMO_CLIENT_NAME.into()),
                ..NewClient::default()
            },
        )
        .await?;
        let id = client
            .get("client_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let secret = client
            .get("client_secret")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        lines.push(format!("  client_id:     {id}"));
        lines.push(format!("  client_secret: {secret}"));
        lines.push(format!("  redirect_uri:  {redirect}"));
        lines.push(format!(
            "  try:           {issuer}/authorize?response_type=code&client_id={id}&redirect_uri={}&scope=openid%20profile%20email&state=xyz",
            url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>(),
        ));
    }
    if lines.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "Demo mode: created what was missing of the demo user and client.\n{}\n",
        lines.join("\n")
    )))
}

/// A client's registration as shown by `client show` / `client list`: no secret nor its
/// digest, only whether it has one.
pub fn client_view(client: &Client) -> serde_json::Value {
    let mut v = serde_json::to_value(client).unwrap_or_default();
    if let serde_json::Value::Object(map) = &mut v {
        let has_secret =
            map.remove("client_secret").is_some() | map.remove("client_secret_sha256").is_some();
        map.insert("has_secret".into(), has_secret.into());
    }
    v
}

/// What `client update` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ClientUpdate {
    /// New redirect URIs (replacing all).
    pub redirect_uris: Option<Vec<String>>,
    /// New post-logout redirect URIs (replacing all).
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// New back-channel logout URI (an empty string removes it).
    pub backchannel_logout_uri: Option<String>,
    /// New allowed scope.
    pub scope: Option<String>,
    /// New display name.
    pub client_name: Option<String>,
    /// Accept plain-http URIs on other hosts than loopback.
    pub allow_insecure_redirects: bool,
    /// Draw a new secret (the old one stops working at once).
    pub rotate_secret: bool,
}

/// Changes a registered client; returns the new registration and, if rotated, the new
/// secret (shown once).
pub async fn update_client<S: Admin>(
    store: &S,
    client_id: &str,
    update: ClientUpdate,
) -> Result<(Client, Option<String>), SetupError> {
    let mut client = store
        .client(client_id)
        .await?
        .ok_or_else(|| SetupError::Invalid(format!("no client `{client_id}`")))?;
    if let Some(uris) = update.redirect_uris {
        client.redirect_uris = uris;
    }
    if let Some(uris) = update.post_logout_redirect_uris {
        client.post_logout_redirect_uris = uris;
    }
    if let Some(uri) = update.backchannel_logout_uri {
        client.backchannel_logout_uri = (!uri.is_empty()).then_some(uri);
    }
    if let Some(scope) = update.scope {
        client.scope = Scope::parse(&scope).map_err(|e| SetupError::Invalid(e.to_string()))?;
    }
    if let Some(name) = update.client_name {
        client.client_name = (!name.is_empty()).then_some(name);
    }
    let mut shown = None;
    if update.rotate_secret {
        if client.is_public() {
            return Err(SetupError::Invalid(format!(
                "client `{client_id}` is public (token endpoint auth method none): it has no secret"
            )));
        }
        let secret = new_secret(client.id_token_signed_response_alg);
        if client.client_secret.is_some() {
            client.client_secret = Some(secret.as_str().to_owned());
        } else {
            client.client_secret_sha256 = Some(secret.hash());
        }
        shown = Some(secret.as_str().to_owned());
    }
    let client = client.validate()?;
    client.check_redirect_policy(update.allow_insecure_redirects)?;
    if !store.update_client(&client).await? {
        return Err(SetupError::Invalid(format!("no client `{client_id}`")));
    }
    Ok((client, shown))
}

/// Changes a user's password.
pub async fn set_password<S: Admin>(
    store: &S,
    username: &str,
    password: &str,
) -> Result<(), SetupError> {
    if password.is_empty() {
        return Err(SetupError::Invalid("the password must not be empty".into()));
    }
    let mut user = store
        .user_by_name(username)
        .await?
        .ok_or_else(|| SetupError::Invalid(format!("no user `{username}`")))?;
    user.password_hash = hash_password(password).await?;
    if !store.update_user(&user).await? {
        return Err(SetupError::Invalid(format!("no user `{username}`")));
    }
    Ok(())
}

/// Ends every session of `username`; returns what ended (session id, clients).
pub async fn revoke_sessions<S: Store>(
    store: &S,
    username: &str,
) -> Result<Vec<EndedSession>, SetupError> {
    let user = store
        .user_by_name(username)
        .await?
        .ok_or_else(|| SetupError::Invalid(format!("no user `{username}`")))?;
    Ok(store.end_sessions_of(&user.subject).await?)
}

/// Removes a user, ending their sessions first.
pub async fn remove_user<S: Admin>(store: &S, username: &str) -> Result<(), SetupError> {
    revoke_sessions(store, username).await?;
    if !store.remove_user(username).await? {
        return Err(SetupError::Invalid(format!("no user `{username}`")));
    }
    Ok(())
}
