//! The local entry point's pieces, in a library so that tests can start the real server.

pub mod tenants;

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Instant};

use api::{App, JwtVerifier, Principal, RequestId};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::{conn::auto, graceful::GracefulShutdown},
};
use store::{DbConfig, Store};
use tokio::net::TcpListener;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Log lines for humans; `LOG_LEVEL` (or `RUST_LOG`) sets the filter.
pub fn init_tracing() {
    let filter = std::env::var("RUST_LOG").or_else(|_| std::env::var("LOG_LEVEL")).unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(db_auth::log_directives(&filter))
                .unwrap_or_else(|_| db_auth::log_directives("info").parse().expect("valid default filter")),
        )
        .with_target(false)
        .try_init();
}

pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The HS256 secret for local bearer tokens.
fn dev_secret() -> Result<Vec<u8>, BoxError> {
    let secret = env("DEV_JWT_SECRET")
        .ok_or("DEV_JWT_SECRET is not set (see .env.example): it signs and verifies local bearer tokens")?;
    if secret.len() < 32 {
        return Err("DEV_JWT_SECRET must be at least 32 characters".into());
    }
    Ok(secret.into_bytes())
}

pub fn print_token(
    sub: &str,
    email: Option<&str>,
    email_verified: bool,
    name: Option<&str>,
    ttl: u64,
) -> Result<(), BoxError> {
    let mut claims = serde_json::Map::new();
    claims.insert("sub".into(), sub.into());
    for (claim, value) in [("email", email), ("name", name)] {
        if let Some(v) = value {
            claims.insert(claim.into(), v.into());
        }
    }
    if email_verified {
        claims.insert("email_verified".into(), true.into());
    }
    println!("{}", api::identity::mint_hs256_claims(&dev_secret()?, None, claims, ttl)?);
    Ok(())
}

/// Everything a running server needs, built once.
#[derive(Debug, Clone)]
pub struct Server {
    pub app: App,
    pub verifier: JwtVerifier,
}

impl Server {
    /// From the environment: the database settings (`DATABASE_URL` or `DB_*`) and
    /// `DEV_JWT_SECRET`.
    pub async fn from_env() -> Result<Self, BoxError> {
        let plans = limits::Plans::from_env().map_err(|e| format!("PLANS: {e}"))?;
        let store = Store::from_config(DbConfig::from_env(env)?).await?.with_plans(&plans);
        let verifier = JwtVerifier::hs256(&dev_secret()?, None, None)?;
        let cors = api::Cors::parse(&env("CORS_ALLOW_ORIGINS").unwrap_or_default())
            .map_err(|e| format!("CORS_ALLOW_ORIGINS: {e}"))?;
        let legacy = env("LEGACY_USER_ISSUER").map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        Ok(Self { app: App::new(store).with_cors(cors).with_legacy_issuer(legacy), verifier })
    }

    /// Turns a hyper request into the app's request: body read up to the limit (413 past it),
    /// the caller from a verified bearer token (none otherwise: the app answers 401), a fresh
    /// request id.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let (parts, body) = req.into_parts();
        let (method, path) = (parts.method.clone(), parts.uri.path().to_string());
        let limit = self.app.body_limit();
        let res = match Limited::new(body, limit).collect().await {
            Ok(collected) => {
                let mut req = Request::from_parts(parts, collected.to_bytes());
                let auth = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                match self.verifier.verify_header(auth) {
                    Ok(principal) => {
                        req.extensions_mut().insert::<Principal>(principal);
                    }
                    Err(e) => tracing::debug!(request_id, error = %e, "no verified caller"),
                }
                req.extensions_mut().insert(RequestId(request_id.clone()));
                self.app.handle(req).await
            }
            Err(_) => api::Error::PayloadTooLarge(limit).into_response(&request_id),
        };
        let status = res.status();
        tracing::info!(
            request_id,
            method = %method,
            path,
            tenant_id = api::routes::tenant_in_path(&path),
            status = status.as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
        let (parts, body) = res.into_parts();
        Response::from_parts(parts, Full::new(body))
    }
}

/// Serves until `shutdown` resolves, then waits for requests in flight.
pub async fn run(
    server: Server,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BoxError> {
    let server = Arc::new(server);
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(a) => a,
                    Err(e) => { tracing::warn!(error = %e, "accept failed"); continue; }
                };
                let server = server.clone();
                let service = service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, Infallible>(server.handle(req).await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down: waiting for requests in flight");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(std::time::Duration::from_secs(10)) => tracing::warn!("gave up waiting after 10 s"),
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn serve(bind: SocketAddr) -> Result<(), BoxError> {
    let server = Server::from_env().await?;
    // Connect now: a database that is down, or a role that could bypass row-level security,
    // stops the dev server here with the reason, instead of failing every request.
    server.app.store().warm_up().await.map_err(|e| format!("database check failed: {e}"))?;
    let listener = TcpListener::bind(bind).await.map_err(|e| format!("cannot listen on {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    let example =
        api::identity::mint_hs256(&dev_secret()?, "alice", Some("alice@example.com"), Some("Alice"), 12 * 3600)?;
    println!(
        "\nLOCAL DEVELOPMENT ONLY: bearer tokens are HS256 tokens signed with DEV_JWT_SECRET, and their \
         issuer and audience are not checked.\n\
         API listening on http://{addr}\n\n\
         Mint a bearer token:  cargo run -q -p devserver -- token --sub alice --email alice@example.com --name Alice\n\
         Or use this one (alice, 12 h):\n  export TOKEN={example}\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" http://{addr}/api/me\n"
    );
    // Expired idempotency records go every ten minutes (on AWS: the function's scheduled
    // cleanup event).
    let store = server.app.store().clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
        loop {
            every.tick().await;
            match store.cleanup_idempotency(1000).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "idempotency records cleaned up"),
                Err(e) => tracing::warn!(error = %e, "idempotency cleanup failed"),
            }
            if let Err(e) = store.purge_deleted_tenants().await {
                tracing::warn!(error = %e, "purging deleted tenants failed");
            }
        }
    });
    run(server, listener, shutdown_signal()).await
}

/// The login for migrations: `MIGRATE_DATABASE_URL` (an admin or the owner), or the same
/// settings as the API (`DATABASE_URL` / `DB_*`) when it is not set.
async fn migration_client() -> Result<(String, store::Engine, tokio_postgres::Client), BoxError> {
    let (describe, cfg) = migration_config()?;
    let engine = cfg.engine;
    let store = Store::from_config(cfg).await?;
    Ok((describe, engine, store.connect_client().await?))
}

/// The settings of [`migration_client`], and how to name them in messages.
pub(crate) fn migration_config() -> Result<(String, DbConfig), BoxError> {
    let cfg = match env("MIGRATE_DATABASE_URL") {
        Some(url) => {
            let mut cfg = DbConfig::from_url(&url)?;
            if let Some(engine) = env("DB_ENGINE") {
                cfg.engine = engine.parse()?;
            }
            cfg
        }
        None => DbConfig::from_env(env)?,
    };
    Ok((cfg.describe(), cfg))
}

/// Creates a database if it does not exist yet.
pub async fn create_database(name: &str) -> Result<(), BoxError> {
    let (describe, _, client) = migration_client().await?;
    create_database_on(&client, &describe, name).await.map(drop)
}

/// Creates database `name` through `client` if it does not exist yet; whether it did now.
pub(crate) async fn create_database_on(
    client: &tokio_postgres::Client,
    describe: &str,
    name: &str,
) -> Result<bool, BoxError> {
    if client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name]).await?.is_some() {
        return Ok(false);
    }
    let sql: String = client.query_one("SELECT format('CREATE DATABASE %I', $1::text)", &[&name]).await?.get(0);
    client.batch_execute(&sql).await?;
    println!("{describe}: created database {name}");
    Ok(true)
}

/// Applies the migrations; with `bootstrap_roles`, first creates the roles (and sets the
/// runtime role's password from `MIGRATE_RUNTIME_PASSWORD` when given, for password logins).
pub async fn migrate(bootstrap_roles: bool, rds_iam: bool) -> Result<(), BoxError> {
    let (describe, engine, client) = migration_client().await?;
    if bootstrap_roles {
        store::migrate::bootstrap_roles(&client, rds_iam).await?;
        if let Some(pw) = env("MIGRATE_RUNTIME_PASSWORD") {
            // ALTER ROLE takes no parameters; let the server quote the literal.
            let sql: String =
                client.query_one("SELECT format('ALTER ROLE app_runtime PASSWORD %L', $1::text)", &[&pw]).await?.get(0);
            client.batch_execute(&sql).await?;
        }
        println!("{describe}: roles app_owner and app_runtime are in place");
    }
    let applied = store::migrate::run_for(&client, engine).await?;
    if let Some(arn) = env("DSQL_RUNTIME_ROLE_ARN").filter(|_| engine == store::Engine::Dsql) {
        store::migrate::grant_iam_role(&client, &arn).await?;
        println!("{describe}: {arn} may log in as app_runtime");
    }
    if applied.is_empty() {
        println!("{describe}: up to date, nothing to apply");
    }
    for name in applied {
        println!("{describe}: applied {name}");
    }
    if engine == store::Engine::Postgres {
        tenants::migrate_dedicated(&client).await?;
    }
    Ok(())
}
