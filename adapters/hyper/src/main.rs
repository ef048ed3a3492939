//! `oidc-flow`: run an OpenID provider, and manage its clients, users, keys and sessions.

use std::io::{BufRead as _, IsTerminal as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};
use oidc_flow::Client;
use oidc_flow::keys::Algorithm;
use oidc_flow_hyper::App;
use oidc_flow_hyper::setup::{self, ClientUpdate, GENERATED_ALGS, NewClient};
use oidc_flow_store::{Admin, DatabaseStore, KeyState, Store, StoredKey};
use serde_json::{Value, json};

/// The database when neither `--database` nor `OIDC_FLOW_DATABASE` says otherwise.
const DEFAULT_DATABASE: &str = "sqlite://oidc-flow.sqlite";
/// How often `serve` looks for signing keys rotated or retired by the command line.
const KEY_POLL: Duration = Duration::from_secs(2);

/// An OpenID Connect provider. Without a subcommand: `serve --demo` on its loopback defaults.
#[derive(Parser)]
#[command(
    name = "oidc-flow",
    version,
    about = "An OpenID Connect provider: run it, and manage its clients, users, keys and sessions"
)]
struct Cli {
    /// Database URL.
    #[arg(
        long,
        global = true,
        env = "OIDC_FLOW_DATABASE",
        default_value = DEFAULT_DATABASE
    )]
    database: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the provider.
    Serve(ServeArgs),
    /// Manage clients (relying parties).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Manage resource servers' introspection credentials (RFC 7662).
    Resource {
        #[command(subcommand)]
        command: ResourceCommand,
    },
    /// Manage users of the login page.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage end-user sessions.
    Session {
        #[command(subcommand)]
        command: SessionCommand,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Issuer URL (https, or http on a loopback host).
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    issuer: String,
    /// Create the demo user (demo/demo) and client if absent; only on a loopback issuer.
    #[arg(long)]
    demo: bool,
    /// How long a session lasts at most (e.g. 8h, 30m).
    #[arg(long, default_value = "8h", value_parser = parse_duration)]
    session_lifetime: time::Duration,
    /// How long a session may go unused (e.g. 1h, 15m).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    session_idle_timeout: time::Duration,
    #[command(flatten)]
    login: LoginLimitArgs,
}

/// The login throttle's limits (see the README's "Throttling").
#[derive(Args)]
struct LoginLimitArgs {
    /// Failed logins an account may have before it is locked (0: no per-account limit).
    #[arg(long, default_value_t = 5)]
    login_account_failures: u32,
    /// Failed logins a client address (IPv4, or IPv6 /64) may have before it is locked
    /// (0: no per-address limit, e.g. behind a reverse proxy).
    #[arg(long, default_value_t = 20)]
    login_address_failures: u32,
    /// The first lock-out; each further failure doubles it (e.g. 15s).
    #[arg(long, default_value = "15s", value_parser = parse_lockout)]
    login_lockout: Duration,
    /// The longest lock-out (e.g. 15m).
    #[arg(long, default_value = "15m", value_parser = parse_lockout)]
    login_lockout_max: Duration,
}

impl Default for LoginLimitArgs {
    fn default() -> Self {
        let limits = oidc_flow_hyper::throttle::Limits::default();
        Self {
            login_account_failures: limits.account_failures_free,
            login_address_failures: limits.address_failures_free,
            login_lockout: limits.lockout_base,
            login_lockout_max: limits.lockout_max,
        }
    }
}

impl LoginLimitArgs {
    fn limits(&self) -> Result<oidc_flow_hyper::throttle::Limits, String> {
        if self.login_lockout > self.login_lockout_max {
            return Err(format!(
                "--login-lockout ({}) is longer than --login-lockout-max ({})",
                humantime::format_duration(self.login_lockout),
                humantime::format_duration(self.login_lockout_max)
            ));
        }
        Ok(oidc_flow_hyper::throttle::Limits {
            account_failures_free: self.login_account_failures,
            address_failures_free: self.login_address_failures,
            lockout_base: self.login_lockout,
            lockout_max: self.login_lockout_max,
            ..oidc_flow_hyper::throttle::Limits::default()
        })
    }
}

fn parse_lockout(text: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(text).map_err(|e| format!("`{text}`: {e} (e.g. 15s, 15m)"))?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(24 * 3600) {
        return Err(format!("`{text}` is not between 1s and 24h"));
    }
    Ok(d)
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            issuer: "http://127.0.0.1:9000".into(),
            demo: true,
            session_lifetime: oidc_flow_hyper::DEFAULT_SESSION_LIFETIME,
            session_idle_timeout: oidc_flow_store::DEFAULT_SESSION_IDLE_TIMEOUT,
            login: LoginLimitArgs::default(),
        }
    }
}

fn parse_duration(text: &str) -> Result<time::Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("`{text}`: {e} (e.g. 8h, 30m)"))?;
    let d = time::Duration::try_from(d).map_err(|_| format!("`{text}` is too long"))?;
    if d < time::Duration::MINUTE {
        return Err(format!("`{text}` is shorter than a minute"));
    }
    Ok(d)
}

/// Where a password comes from.
#[derive(Args)]
struct PasswordArgs {
    /// The password (visible in the process list and shell history: for scripts only).
    #[arg(long, conflicts_with = "password_stdin")]
    password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (password hashed with argon2id); without a password flag, asks on the terminal.
    Add {
        /// Login name.
        #[arg(long)]
        username: String,
        #[command(flatten)]
        password: PasswordArgs,
        /// Email address.
        #[arg(long)]
        email: Option<String>,
        /// Full name.
        #[arg(long)]
        name: Option<String>,
        /// A JSON object of further claims (address, phone_number, birthdate, custom ones).
        #[arg(long)]
        claims: Option<String>,
    },
    /// List the users.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one user and their claims.
    Show {
        /// Login name.
        username: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a user (their sessions end).
    Remove {
        /// Login name.
        username: String,
    },
    /// Change a user's password; without a password flag, asks on the terminal.
    Passwd {
        /// Login name.
        username: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

/// The URIs and names `client add` and `client update` take.
#[derive(Args)]
struct ClientUris {
    /// A post-logout redirect URI (repeat for several).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Where back-channel logout tokens are posted.
    #[arg(long = "backchannel-logout-uri")]
    backchannel_logout_uri: Option<String>,
    /// The scopes the client may request.
    #[arg(long)]
    scope: Option<String>,
    /// A name shown on the consent page.
    #[arg(long = "client-name")]
    client_name: Option<String>,
    /// Accept plain-http URIs on hosts other than loopback.
    #[arg(long = "allow-insecure-redirects")]
    allow_insecure_redirects: bool,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its RFC 7591 registration with client_id and client_secret.
    Add {
        /// A redirect URI (repeat for several); needed unless the client uses only the
        /// client_credentials grant.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        #[command(flatten)]
        uris: ClientUris,
        /// A response type, e.g. "code" or "code id_token" (repeat for several).
        #[arg(long = "response-type")]
        response_types: Vec<String>,
        /// A grant type: authorization_code, implicit, refresh_token, client_credentials, or
        /// an extension grant (password, or an absolute URI such as RFC 8693's
        /// urn:ietf:params:oauth:grant-type:token-exchange) that a server built with its handler
        /// answers (repeat for several; derived from the response types when absent).
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// client_secret_basic (default), client_secret_post, client_secret_jwt,
        /// private_key_jwt (needs --jwks or --jwks-uri) or none.
        #[arg(long = "token-endpoint-auth-method")]
        token_endpoint_auth_method: Option<String>,
        /// A file holding the client's public keys as a JWKS document (private_key_jwt).
        #[arg(long, conflicts_with = "jwks_uri")]
        jwks: Option<std::path::PathBuf>,
        /// Where the client publishes its public keys instead (https; http only on a
        /// loopback host): fetched when an assertion needs them, kept 5 minutes.
        #[arg(long = "jwks-uri")]
        jwks_uri: Option<String>,
        /// How long its access tokens live (e.g. 15m; 1m to 24h; the provider's 1h when absent).
        #[arg(long = "access-token-lifetime", value_parser = humantime::parse_duration)]
        access_token_lifetime: Option<std::time::Duration>,
        /// How long its ID tokens live (e.g. 5m; 1m to 24h; the provider's 1h when absent).
        #[arg(long = "id-token-lifetime", value_parser = humantime::parse_duration)]
        id_token_lifetime: Option<std::time::Duration>,
        /// The ID token algorithm (RS256 by default).
        #[arg(long = "id-token-signed-response-alg")]
        id_token_signed_response_alg: Option<String>,
        /// opaque (default) or jwt: JWT access tokens (RFC 9068) that resource servers
        /// verify with the JWKS.
        #[arg(long = "access-token-format", value_parser = ["opaque", "jwt"])]
        access_token_format: Option<String>,
    },
    /// List the clients.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a client's registration (never its secret).
    Show {
        /// The client id (it may start with `-`: ids are base64url).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a client (and the consents given to it).
    Remove {
        /// The client id (it may start with `-`: ids are base64url).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
    /// Change a client: each URI flag given replaces that whole list.
    Update {
        /// The client id (it may start with `-`: ids are base64url).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
        /// A redirect URI (repeat for several; replaces them all).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        #[command(flatten)]
        uris: ClientUris,
        /// Draw a new client secret (printed once; the old one stops working).
        #[arg(long)]
        rotate_secret: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// List the signing keys.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make a new signing key active; the old one stops signing but stays in the JWKS.
    Rotate {
        /// The algorithm (default: RS256, ES256 and EdDSA).
        #[arg(long, value_parser = parse_alg)]
        alg: Option<Algorithm>,
    },
    /// Remove a rotated key from the JWKS (tokens it signed stop verifying).
    Retire {
        /// The key id (it may start with `-`: kids are base64url thumbprints).
        #[arg(
            required_unless_present = "rotated",
            conflicts_with = "rotated",
            allow_hyphen_values = true
        )]
        kid: Option<String>,
        /// Retire every rotated key.
        #[arg(long)]
        rotated: bool,
    },
}

fn parse_alg(text: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(text).ok_or_else(|| format!("unknown algorithm `{text}`"))
}

#[derive(Subcommand)]
enum SessionCommand {
    /// End every session of a user (they must sign in again).
    Revoke {
        /// The user's login name.
        #[arg(long)]
        user: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    match runtime.block_on(run(&cli.database, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn open(database: &str) -> Result<DatabaseStore, String> {
    DatabaseStore::open(database)
        .await
        .map_err(|e| format!("cannot open {}: {e}", DatabaseStore::display_url(database)))
}

async fn run(database: &str, command: Command) -> Result<(), String> {
    if let Command::Serve(args) = command {
        return serve(database, args).await;
    }
    let store = open(database).await?;
    let result = match command {
        Command::Serve(_) => Ok(()),
        Command::Client { command } => client(&store, command).await,
        Command::Resource { command } => resource(&store, command).await,
        Command::User { command } => user(&store, command).await,
        Command::Keys { command } => keys(&store, command).await,
        Command::Session { command } => session(&store, command).await,
    };
    store.close().await;
    result
}

fn pretty(v: &Value) -> Result<String, String> {
    serde_json::to_string_pretty(v).map_err(|e| e.to_string())
}

/// Prints rows as columns aligned under their headers.
fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    let secs = u64::try_from(t.unix_timestamp()).unwrap_or(0);
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .to_string()
}

/// The password from `--password`, `--password-stdin`, or a prompt on the terminal.
fn read_password(args: PasswordArgs) -> Result<String, String> {
    if let Some(p) = args.password {
        return Ok(p);
    }
    if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            return Err("standard input held no password".into());
        }
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(
            "no password given: use --password-stdin (or --password), or run on a terminal".into(),
        );
    }
    let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
    let second = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
    if first != second {
        return Err("the two passwords differ".into());
    }
    Ok(first)
}

async fn user(store: &DatabaseStore, command: UserCommand) -> Result<(), String> {
    match command {
        UserCommand::Add {
            username,
            password,
            email,
            name,
            claims,
        } => {
            let password = read_password(password)?;
            let user = setup::add_user(
                store,
                &username,
                &password,
                email.as_deref(),
                name.as_deref(),
                claims.as_deref(),
            )
            .await
            .map_err(|e| e.to_string())?;
            println!(
                "{}",
                json!({"username": user.username, "sub": user.subject})
            );
        }
        UserCommand::List { json } => {
            let users = store.users().await.map_err(|e| e.to_string())?;
            if json {
                let list: Vec<Value> = users
                    .iter()
                    .map(|u| json!({"username": u.username, "sub": u.subject, "claims": u.claims}))
                    .collect();
                println!("{}", pretty(&Value::Array(list))?);
            } else {
                let rows: Vec<Vec<String>> = users
                    .iter()
                    .map(|u| {
                        vec![
                            u.username.clone(),
                            u.subject.clone(),
                            u.claims.name.clone().unwrap_or_default(),
                            u.claims.email.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(&["USERNAME", "SUB", "NAME", "EMAIL"], &rows);
            }
        }
        UserCommand::Show { username, json } => {
            let u = store
                .user_by_name(&username)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no user `{username}`"))?;
            let v = json!({"username": u.username, "sub": u.subject, "claims": u.claims});
            if json {
                println!("{}", pretty(&v)?);
            } else {
                println!("username: {}", u.username);
                println!("sub:      {}", u.subject);
                println!(
                    "claims:   {}",
                    serde_json::to_string(&u.claims).unwrap_or_default()
                );
            }
        }
        UserCommand::Remove { username } => {
            setup::remove_user(store, &username)
                .await
                .map_err(|e| e.to_string())?;
            println!("removed user {username}");
        }
        UserCommand::Passwd { username, password } => {
            // Fail on an unknown user before asking for a password.
            if store
                .user_by_name(&username)
                .await
                .map_err(|e| e.to_string())?
                .is_none()
            {
                return Err(format!("no user `{username}`"));
            }
            let password = read_password(password)?;
            setup::set_password(store, &username, &password)
                .await
                .map_err(|e| e.to_string())?;
            println!("changed the password of {username}");
        }
    }
    Ok(())
}

fn client_row(c: &Client) -> Vec<String> {
    vec![
        c.client_id.clone(),
        c.client_name.clone().unwrap_or_default(),
        serde_json::to_value(c.token_endpoint_auth_method)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        match &c.resource {
            Some(resource) => format!("resource server {resource}"),
            None if c.redirect_uris.is_empty() => {
                let grants: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
                format!("(no redirects: {})", grants.join(" "))
            }
            None => c.redirect_uris.join(" "),
        },
    ]
}

/// A registration error, with the flag that lifts the plain-http rule named.
fn client_error(e: setup::SetupError) -> String {
    match e {
        setup::SetupError::Client(oidc_flow::ClientError::InsecureRedirect(_)) => {
            format!("{e}; to register it anyway, add --allow-insecure-redirects")
        }
        e => e.to_string(),
    }
}

#[derive(Subcommand)]
enum ResourceCommand {
    /// Register a resource server: prints its client_id and client_secret, with which it
    /// calls the introspection endpoint. `client list`, `show` and `remove` manage it.
    Add {
        /// The resource indicator (RFC 8707) tokens for it are issued to: an absolute URI,
        /// e.g. https://api.example.com.
        #[arg(long)]
        uri: String,
        /// A name for the operator's lists.
        #[arg(long = "name")]
        name: Option<String>,
    },
}

async fn resource(store: &DatabaseStore, command: ResourceCommand) -> Result<(), String> {
    match command {
        ResourceCommand::Add { uri, name } => {
            let registration = setup::add_client(
                store,
                NewClient {
                    client_name: name,
                    resource: Some(uri),
                    ..NewClient::default()
                },
            )
            .await
            .map_err(client_error)?;
            println!("{}", pretty(&registration)?);
        }
    }
    Ok(())
}

async fn client(store: &DatabaseStore, command: ClientCommand) -> Result<(), String> {
    match command {
        ClientCommand::Add {
            redirect_uris,
            uris,
            response_types,
            grant_types,
            token_endpoint_auth_method,
            id_token_signed_response_alg,
            access_token_format,
            jwks,
            jwks_uri,
            access_token_lifetime,
            id_token_lifetime,
        } => {
            let jwks =
                match jwks {
                    None => None,
                    Some(path) => {
                        let text = std::fs::read_to_string(&path)
                            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                        Some(serde_json::from_str::<Value>(&text).map_err(|e| {
                            format!("{} is not a JWKS document: {e}", path.display())
                        })?)
                    }
                };
            let registration = setup::add_client(
                store,
                NewClient {
                    redirect_uris,
                    response_types,
                    grant_types,
                    scope: uris.scope,
                    token_endpoint_auth_method,
                    id_token_signed_response_alg,
                    client_name: uris.client_name,
                    post_logout_redirect_uris: uris.post_logout_redirect_uris,
                    backchannel_logout_uri: uris.backchannel_logout_uri,
                    allow_insecure_redirects: uris.allow_insecure_redirects,
                    resource: None,
                    access_token_format: match access_token_format.as_deref() {
                        Some("jwt") => oidc_flow::AccessTokenFormat::Jwt,
                        _ => oidc_flow::AccessTokenFormat::Opaque,
                    },
                    jwks,
                    jwks_uri,
                    access_token_lifetime: access_token_lifetime.map(|d| d.as_secs()),
                    id_token_lifetime: id_token_lifetime.map(|d| d.as_secs()),
                },
            )
            .await
            .map_err(client_error)?;
            println!("{}", pretty(&registration)?);
        }
        ClientCommand::List { json } => {
            let clients = store.clients().await.map_err(|e| e.to_string())?;
            if json {
                let list: Vec<Value> = clients.iter().map(setup::client_view).collect();
                println!("{}", pretty(&Value::Array(list))?);
            } else {
                let rows: Vec<Vec<String>> = clients.iter().map(client_row).collect();
                table(
                    &["CLIENT_ID", "NAME", "AUTH", "REDIRECT_URIS / KIND"],
                    &rows,
                );
            }
        }
        ClientCommand::Show { client_id, json } => {
            let c = store
                .client(&client_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no client `{client_id}`"))?;
            let view = setup::client_view(&c);
            if json {
                println!("{}", pretty(&view)?);
            } else if let Value::Object(map) = view {
                let width = map.keys().map(String::len).max().unwrap_or(0) + 1;
                for (k, v) in map {
                    let v = match v {
                        Value::String(s) => s,
                        Value::Array(a) => a
                            .iter()
                            .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(" "),
                        other => other.to_string(),
                    };
                    println!("{:<width$} {v}", format!("{k}:"));
                }
            }
        }
        ClientCommand::Remove { client_id } => {
            if !store
                .remove_client(&client_id)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no client `{client_id}`"));
            }
            println!("removed client {client_id}");
        }
        ClientCommand::Update {
            client_id,
            redirect_uris,
            uris,
            rotate_secret,
        } => {
            let update = ClientUpdate {
                redirect_uris: (!redirect_uris.is_empty()).then_some(redirect_uris),
                post_logout_redirect_uris: (!uris.post_logout_redirect_uris.is_empty())
                    .then_some(uris.post_logout_redirect_uris),
                backchannel_logout_uri: uris.backchannel_logout_uri,
                scope: uris.scope,
                client_name: uris.client_name,
                allow_insecure_redirects: uris.allow_insecure_redirects,
                rotate_secret,
            };
            let (client, secret) = setup::update_client(store, &client_id, update)
                .await
                .map_err(client_error)?;
            let mut view = setup::client_view(&client);
            if let (Some(secret), Value::Object(map)) = (secret, &mut view) {
                map.remove("has_secret");
                map.insert("client_secret".into(), secret.into());
            }
            println!("{}", pretty(&view)?);
        }
    }
    Ok(())
}

fn key_json(k: &StoredKey) -> Value {
    let (state, rotated_at) = match k.state {
        KeyState::Active => ("active", Value::Null),
        KeyState::Rotated { at } => ("rotated", Value::String(rfc3339(at))),
    };
    json!({
        "kid": k.kid,
        "alg": k.alg.as_str(),
        "state": state,
        "created_at": rfc3339(k.created_at),
        "rotated_at": rotated_at,
    })
}

async fn keys(store: &DatabaseStore, command: KeysCommand) -> Result<(), String> {
    match command {
        KeysCommand::List { json } => {
            let keys = store.signing_keys().await.map_err(|e| e.to_string())?;
            if json {
                let list: Vec<Value> = keys.iter().map(key_json).collect();
                println!("{}", pretty(&Value::Array(list))?);
            } else {
                let rows: Vec<Vec<String>> = keys
                    .iter()
                    .map(|k| {
                        let state = match k.state {
                            KeyState::Active => "active".to_owned(),
                            KeyState::Rotated { at } => format!("rotated {}", rfc3339(at)),
                        };
                        vec![
                            k.kid.clone(),
                            k.alg.as_str().to_owned(),
                            state,
                            rfc3339(k.created_at),
                        ]
                    })
                    .collect();
                table(&["KID", "ALG", "STATE", "CREATED"], &rows);
            }
        }
        KeysCommand::Rotate { alg } => {
            let algs = match alg {
                Some(a) => vec![a],
                None => GENERATED_ALGS.to_vec(),
            };
            let done = setup::rotate_keys(store, &algs)
                .await
                .map_err(|e| e.to_string())?;
            for r in done {
                let old = if r.rotated.is_empty() {
                    "none".to_owned()
                } else {
                    r.rotated.join(", ")
                };
                println!("{}: new key {} signs; rotated out: {old}", r.alg, r.new_kid);
            }
            println!("rotated keys stay in the JWKS until `oidc-flow keys retire`");
        }
        KeysCommand::Retire { kid, rotated: _ } => {
            let removed = setup::retire_keys(store, kid.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            if removed.is_empty() {
                println!("no rotated key to retire");
            }
            for kid in removed {
                println!("retired {kid}");
            }
        }
    }
    Ok(())
}

async fn session(store: &DatabaseStore, command: SessionCommand) -> Result<(), String> {
    match command {
        SessionCommand::Revoke { user, json } => {
            let ended = setup::revoke_sessions(store, &user)
                .await
                .map_err(|e| e.to_string())?;
            if json {
                let list: Vec<Value> = ended
                    .iter()
                    .map(|(sid, clients)| json!({"sid": sid, "clients": clients}))
                    .collect();
                println!("{}", pretty(&Value::Array(list))?);
            } else {
                println!("ended {} session(s) of {user}", ended.len());
                for (sid, clients) in &ended {
                    println!("  {sid}  clients: {}", clients.join(" "));
                }
            }
        }
    }
    Ok(())
}

async fn serve(database: &str, args: ServeArgs) -> Result<(), String> {
    if args.demo && !setup::is_loopback_issuer(&args.issuer) {
        return Err(format!(
            "--demo is only allowed on a loopback issuer (127.0.0.1, [::1], localhost), \
             not {}: the demo account's password is public",
            args.issuer
        ));
    }
    let limits = args.login.limits()?;
    let store = open(database).await?;
    let provider = setup::provider(&store, &args.issuer)
        .await
        .map_err(|e| e.to_string())?;
    let stored = store.signing_keys().await.map_err(|e| e.to_string())?;
    if args.demo
        && let Some(banner) = setup::ensure_demo(&store, &args.issuer)
            .await
            .map_err(|e| e.to_string())?
    {
        println!("{banner}");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let store = Arc::new(store);
    let purger = tokio::spawn(purge_loop(store.clone()));
    tracing::info!(listen = %args.listen, issuer = %args.issuer, database = %DatabaseStore::display_url(database), "serving");
    let app = Arc::new(
        App::new(provider, store.clone())
            .with_session_policy(args.session_lifetime, args.session_idle_timeout)
            .with_login_limits(limits),
    );
    let reloader = tokio::spawn(reload_keys(
        app.clone(),
        store.clone(),
        args.issuer.clone(),
        fingerprint(&stored),
    ));
    oidc_flow_hyper::serve(listener, app, shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    purger.abort();
    reloader.abort();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// What identifies a set of keys for reloading: kids and states.
fn fingerprint(keys: &[StoredKey]) -> Vec<(String, KeyState)> {
    keys.iter().map(|k| (k.kid.clone(), k.state)).collect()
}

/// Reloads the provider when the signing keys change (`keys rotate`, `keys retire` run by
/// another process): a rotated key stops signing and a retired one leaves the JWKS within
/// [`KEY_POLL`].
async fn reload_keys(
    app: Arc<App<DatabaseStore>>,
    store: Arc<DatabaseStore>,
    issuer: String,
    mut seen: Vec<(String, KeyState)>,
) {
    let mut tick = tokio::time::interval(KEY_POLL);
    loop {
        tick.tick().await;
        let stored = match store.signing_keys().await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the signing keys");
                continue;
            }
        };
        let now = fingerprint(&stored);
        if now == seen || stored.is_empty() {
            continue;
        }
        match setup::key_set(&stored).and_then(|keys| setup::provider_with_keys(&issuer, keys)) {
            Ok(provider) => {
                app.replace_provider(provider);
                tracing::info!(keys = now.len(), "signing keys reloaded");
                seen = now;
            }
            Err(e) => {
                tracing::warn!(error = %e, "the new signing keys are unusable; keeping the old ones")
            }
        }
    }
}

/// Deletes expired codes, tokens, sessions and the like every minute.
async fn purge_loop(store: Arc<DatabaseStore>) {
    oidc_flow_store::purge::purge_every(
        oidc_flow_store::purge::PURGE_INTERVAL,
        |now| store.purge_expired(now),
        |e| tracing::warn!(error = %e, "purge failed"),
    )
    .await;
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}
