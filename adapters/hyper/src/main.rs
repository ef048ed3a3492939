//! `oidc-flow`: run an OpenID provider, and register its clients and users.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use oidc_flow_hyper::App;
use oidc_flow_hyper::setup::{self, NewClient};
use oidc_flow_store::{SqliteStore, Store};

/// An OpenID Connect provider. Without a subcommand: `serve` with its defaults.
#[derive(Parser)]
#[command(
    name = "oidc-flow",
    version,
    about = "An OpenID Connect provider: run it, and register its clients and users"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the provider.
    Serve(ServeArgs),
    /// Manage clients.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Manage users of the demo login page.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Issuer URL (https, or http on localhost).
    #[arg(long, default_value = "http://127.0.0.1:9000")]
    issuer: String,
    /// Database URL.
    #[arg(long, default_value = "sqlite://oidc-flow.sqlite")]
    database: String,
}

impl Default for ServeArgs {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            issuer: "http://127.0.0.1:9000".into(),
            database: "sqlite://oidc-flow.sqlite".into(),
        }
    }
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register a client; prints its RFC 7591 registration with client_id and client_secret.
    Add {
        /// Database URL.
        #[arg(long)]
        database: String,
        /// A redirect URI (repeat for several).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A response type, e.g. "code" or "code id_token" (repeat for several).
        #[arg(long = "response-type")]
        response_types: Vec<String>,
        /// A grant type (repeat for several).
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// The scopes the client may request.
        #[arg(long)]
        scope: Option<String>,
        /// client_secret_basic (default), client_secret_post or none.
        #[arg(long = "token-endpoint-auth-method")]
        token_endpoint_auth_method: Option<String>,
        /// The ID token algorithm (RS256 by default).
        #[arg(long = "id-token-signed-response-alg")]
        id_token_signed_response_alg: Option<String>,
        /// A name shown on the consent page.
        #[arg(long = "client-name")]
        client_name: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user (password hashed with argon2id).
    Add {
        /// Database URL.
        #[arg(long)]
        database: String,
        /// Login name.
        #[arg(long)]
        username: String,
        /// Password.
        #[arg(long)]
        password: String,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    match runtime.block_on(run(cli
        .command
        .unwrap_or(Command::Serve(ServeArgs::default()))))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn open(database: &str) -> Result<SqliteStore, String> {
    SqliteStore::open(database)
        .await
        .map_err(|e| format!("cannot open {database}: {e}"))
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Client {
            command:
                ClientCommand::Add {
                    database,
                    redirect_uris,
                    response_types,
                    grant_types,
                    scope,
                    token_endpoint_auth_method,
                    id_token_signed_response_alg,
                    client_name,
                },
        } => {
            let store = open(&database).await?;
            let registration = setup::add_client(
                &store,
                NewClient {
                    redirect_uris,
                    response_types,
                    grant_types,
                    scope,
                    token_endpoint_auth_method,
                    id_token_signed_response_alg,
                    client_name,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            println!(
                "{}",
                serde_json::to_string_pretty(&registration).map_err(|e| e.to_string())?
            );
            store.close().await;
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    database,
                    username,
                    password,
                    email,
                    name,
                    claims,
                },
        } => {
            let store = open(&database).await?;
            let user = setup::add_user(
                &store,
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
                serde_json::json!({"username": user.username, "sub": user.subject})
            );
            store.close().await;
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let store = open(&args.database).await?;
    let provider = setup::provider(&store, &args.issuer)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(banner) = setup::ensure_demo(&store, &args.issuer)
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
    tracing::info!(listen = %args.listen, issuer = %args.issuer, database = %args.database, "serving");
    let app = Arc::new(App::new(provider, store.clone()));
    oidc_flow_hyper::serve(listener, app, shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    purger.abort();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Deletes expired codes, tokens, sessions and the like every minute.
async fn purge_loop(store: Arc<SqliteStore>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tick.tick().await;
        if let Err(e) = store.purge_expired(time::OffsetDateTime::now_utc()).await {
            tracing::warn!(error = %e, "purge failed");
        }
    }
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
