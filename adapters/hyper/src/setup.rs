//! Start-up and administration: signing keys, the provider, clients and users.
//! Shared by the `oidc-flow` command line and the tests.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use oidc_flow::keys::{Algorithm, KeySet, SigningKey};
use oidc_flow::{
    AuthMethod, Client, GrantType, MintedSecret, Provider, ResponseType, Scope, UserInfo,
};
use oidc_flow_store::driver::system_rng;
use oidc_flow_store::{Store, StoreError, StoredKey, UserRecord};
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

/// Loads the signing keys from the store, generating and storing them on first start.
pub async fn load_or_create_keys<S: Store>(store: &S) -> Result<KeySet, SetupError> {
    let mut stored = store.signing_keys().await?;
    if stored.is_empty() {
        let now = OffsetDateTime::now_utc();
        for alg in GENERATED_ALGS {
            // RSA key generation takes a while: keep it off the async workers.
            let (key, pem) = tokio::task::spawn_blocking(move || SigningKey::generate(alg, None))
                .await
                .map_err(|e| SetupError::Invalid(e.to_string()))??;
            let record = StoredKey {
                kid: key.kid().to_owned(),
                alg,
                pem,
                created_at: now,
            };
            store.add_signing_key(&record).await?;
        }
        stored = store.signing_keys().await?;
    }
    let mut keys = KeySet::new();
    for k in stored {
        keys.add(SigningKey::from_pem(k.pem.as_bytes(), k.alg, Some(&k.kid))?)?;
    }
    Ok(keys)
}

/// The provider for `issuer` with the stored keys (RS256 ID tokens by default).
pub async fn provider<S: Store>(store: &S, issuer: &str) -> Result<Arc<Provider>, SetupError> {
    let keys = load_or_create_keys(store).await?;
    Ok(Arc::new(Provider::builder(issuer, keys).build()?))
}

/// What `oidc-flow client add` registers.
#[derive(Debug, Clone, Default)]
pub struct NewClient {
    /// Redirect URIs (at least one).
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
    let client_id = MintedSecret::generate(&mut rng)
        .as_str()
        .chars()
        .take(22)
        .collect::<String>();
    let response_types = if new.response_types.is_empty() {
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
    let grant_types = if new.grant_types.is_empty() {
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
                serde_json::from_value::<GrantType>(serde_json::Value::String(t.clone()))
                    .map_err(|_| invalid(format!("unsupported grant type `{t}`")))
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
        None => {
            Scope::parse("openid profile email address phone offline_access").unwrap_or_default()
        }
        Some(s) => Scope::parse(s).map_err(|e| invalid(e.to_string()))?,
    };
    let secret = (method != AuthMethod::None).then(|| MintedSecret::generate(&mut rng));
    let hmac = alg.is_some_and(Algorithm::is_symmetric);
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
    }
    .validate()?;
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

/// The user `username` if `password` is theirs. Unknown users cost a hash too, so timing
/// does not tell which names exist.
pub async fn check_password<S: Store>(
    store: &S,
    username: &str,
    password: &str,
) -> Result<Option<UserRecord>, StoreError> {
    let user = store.user_by_name(username).await?;
    let password = password.to_owned();
    // A valid PHC string of a password nobody has, for unknown users.
    const DECOY: &str = "$argon2id$v=19$m=7168,t=5,p=1$c29tZXNhbHRzb21lc2FsdA$3Wv0DYiN5ZHY8dMAeTQ2CxPHjn2hJhNkqoKpKG4gIyQ";
    let phc = user
        .as_ref()
        .map_or(DECOY.to_owned(), |u| u.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    Ok(user.filter(|_| ok))
}

/// On a database without clients or users, registers a demo client and user and returns
/// what to print; `None` when the database was already set up.
pub async fn ensure_demo<S: Store>(store: &S, issuer: &str) -> Result<Option<String>, SetupError> {
    if store.user_by_name("demo").await?.is_some() {
        return Ok(None);
    }
    let user = add_user(
        store,
        "demo",
        "demo",
        Some("demo@example.com"),
        Some("Demo User"),
        None,
    )
    .await?;
    let redirect = "http://127.0.0.1:8080/callback".to_owned();
    let client = add_client(
        store,
        NewClient {
            redirect_uris: vec![redirect.clone()],
            client_name: Some("Demo client".into()),
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
    Ok(Some(format!(
        "New database: created a demo user and client.\n\
         \x20 user:          {} / password demo (sub {})\n\
         \x20 client_id:     {id}\n\
         \x20 client_secret: {secret}\n\
         \x20 redirect_uri:  {redirect}\n\
         \x20 try:           {issuer}/authorize?response_type=code&client_id={id}&redirect_uri={}&scope=openid%20profile%20email&state=xyz\n",
        user.username,
        user.subject,
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>(),
    )))
}
