//! The IAM path for tests: the stand-in for Aurora's IAM authentication in front of the test
//! server, and store settings that log in through it (token from a cache, TLS verified against
//! the stand-in's CA, `host` the certificate's name, `hostaddr` loopback).

use std::{sync::Arc, time::Duration};

use db_auth::{Clock, SharedCredentialsProvider, TokenCache};
use iam_standin::{Config, Standin, Upstream};
use store::{Auth, CaSource, DbConfig, PasswordSource, TlsMode};

use crate::server::{Server, TestDb};

/// The host name of the stand-in's certificate; what tokens are signed for.
pub const HOST: &str = "aurora.standin.internal";
pub const REGION: &str = "eu-west-1";

/// The stand-in's way in to the test server: its Unix socket when we started the server (trust
/// authentication there), else TCP (the server must then trust 127.0.0.1).
pub fn upstream(server: &Server) -> Upstream {
    match &server.socket_dir {
        Some(dir) => Upstream::Unix(dir.join(format!(".s.PGSQL.{}", server.port))),
        None => Upstream::Tcp(
            format!("{}:{}", server.host, server.port).parse().expect("the test server has an IP address"),
        ),
    }
}

/// Starts a stand-in for `db`'s server whose clock is `clock`: for Aurora, or for Aurora DSQL
/// (DSQL tokens) when the tests run the DSQL engine (`TEST_DB_ENGINE=dsql`).
pub async fn standin(db: &TestDb, clock: Arc<dyn Clock>) -> Standin {
    standin_for(db, clock, crate::server::engine()).await
}

/// [`standin`] for `engine` whatever `TEST_DB_ENGINE` says: Aurora IAM tokens for
/// `Engine::Postgres`, DSQL tokens (`DbConnect`, `DbConnectAdmin`) for `Engine::Dsql`.
/// On DSQL the stand-in keeps DSQL's rules and limits ([`iam_standin::dsql`]), so the tests see
/// what DSQL refuses.
pub async fn standin_for(db: &TestDb, clock: Arc<dyn Clock>, engine: store::Engine) -> Standin {
    standin_with(db, clock, engine, iam_standin::dsql::Limits::default()).await
}

/// [`standin_for`] with DSQL's `limits` in place of the documented ones.
pub async fn standin_with(
    db: &TestDb,
    clock: Arc<dyn Clock>,
    engine: store::Engine,
    limits: iam_standin::dsql::Limits,
) -> Standin {
    let mut config = match engine {
        store::Engine::Dsql => Config { dsql_rules: Some(limits), ..Config::dsql(HOST, REGION, upstream(&db.server)) },
        store::Engine::Postgres => Config::new(HOST, REGION, upstream(&db.server)),
    };
    config.clock = clock;
    Standin::start(config).await.expect("start the IAM stand-in")
}

/// A stand-in for Aurora's IAM authentication in front of `db`'s server under the host name
/// `host` (another cluster, as a dedicated database of silo tenants would be).
pub async fn standin_named(db: &TestDb, host: &str) -> Standin {
    Standin::start(Config::new(host, REGION, upstream(&db.server))).await.expect("start the IAM stand-in")
}

/// API settings that log in to `db` through `standin` as `app_runtime` with IAM auth.
pub fn config(db: &TestDb, standin: &Standin) -> DbConfig {
    config_for(db, standin, crate::server::engine())
}

/// [`config`] for `engine` whatever `TEST_DB_ENGINE` says: `Auth::Iam` on Aurora,
/// `Auth::Dsql { admin: false }` (the runtime role's `DbConnect` token) on DSQL.
pub fn config_for(db: &TestDb, standin: &Standin, engine: store::Engine) -> DbConfig {
    let mut cfg =
        DbConfig::new(HOST, standin.addr().port(), db.name.clone(), "app_runtime", Auth::Iam { region: REGION.into() });
    cfg.hostaddr = Some(standin.addr().ip());
    cfg.tls = TlsMode::VerifyFull(CaSource::Pem(standin.ca_pem().as_bytes().to_vec()));
    cfg.connect_timeout = Duration::from_secs(10);
    cfg.engine = engine;
    if cfg.engine == store::Engine::Dsql {
        cfg.auth = Auth::Dsql { region: REGION.into(), admin: false };
    }
    cfg
}

/// A token cache that signs with the stand-in's test credentials at `clock`'s time.
pub fn token_cache(clock: Arc<dyn Clock>) -> Arc<TokenCache> {
    let provider = SharedCredentialsProvider::new(iam_standin::test_credentials());
    Arc::new(TokenCache::with_clock(provider, clock, db_auth::DEFAULT_MARGIN))
}

/// The password source for `cfg`: tokens from `cache`.
pub fn tokens(cfg: &DbConfig, cache: Arc<TokenCache>) -> PasswordSource {
    PasswordSource::Token { cache, request: PasswordSource::token_request(cfg).expect("an IAM config") }
}

/// The stand-in's CA as a PEM file, for `DB_CA_FILE`; the file goes when this is dropped.
#[derive(Debug)]
pub struct CaFile {
    _dir: tempfile::TempDir,
    pub path: std::path::PathBuf,
}

pub fn ca_file(standin: &Standin) -> CaFile {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, standin.ca_pem()).expect("write the CA file");
    CaFile { _dir: dir, path }
}

fn pairs(items: &[(&str, String)]) -> Vec<(String, String)> {
    items.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

/// An environment in which aws-config's default chain finds the stand-in's test credentials
/// (with a session token, as on Lambda) and reads no config file.
pub fn aws_env() -> Vec<(String, String)> {
    let creds = iam_standin::test_credentials();
    pairs(&[
        ("AWS_REGION", REGION.into()),
        ("AWS_ACCESS_KEY_ID", creds.access_key_id().into()),
        ("AWS_SECRET_ACCESS_KEY", creds.secret_access_key().into()),
        ("AWS_SESSION_TOKEN", creds.session_token().unwrap_or_default().into()),
        ("AWS_CONFIG_FILE", "/dev/null".into()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ])
}

/// The `DB_*` settings (as the function and the scripts read them) that log in to `db` through
/// `standin` with IAM, as `user`.
pub fn db_env(db: &TestDb, standin: &Standin, ca: &CaFile, user: &str) -> Vec<(String, String)> {
    pairs(&[
        ("DB_HOST", HOST.into()),
        ("DB_HOSTADDR", standin.addr().ip().to_string()),
        ("DB_PORT", standin.addr().port().to_string()),
        ("DB_NAME", db.name.clone()),
        ("DB_USER", user.into()),
        ("DB_AUTH", "iam".into()),
        ("DB_CA_FILE", ca.path.display().to_string()),
    ])
}

/// What Lambda gives a function process (Runtime API at `runtime_api`), plus the settings to
/// log in to `db` through `standin`, plus `extra` (identity, log level).
pub fn function_env(
    runtime_api: &str,
    db: &TestDb,
    standin: &Standin,
    ca: &CaFile,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = pairs(&[
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.into()),
        ("AWS_LAMBDA_FUNCTION_NAME", "tenant-api".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/tenant-api".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/22/[$LATEST]0123456789abcdef".into()),
    ]);
    env.extend(aws_env());
    env.extend(db_env(db, standin, ca, "app_runtime"));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}
