//! Database settings, read from the environment.
//!
//! Either `DATABASE_URL` (local development) or the `DB_*` variables that the Lambda function
//! gets from Terraform. A missing or malformed variable is an error that names it.

use std::{net::IpAddr, path::PathBuf, str::FromStr, time::Duration};

use crate::{Error, Result, Secret};

/// How the API logs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// A fixed password (local development), or none (trust / peer authentication).
    Password(Option<Secret>),
    /// An RDS IAM authentication token, signed for `region`.
    Iam { region: String },
    /// An Aurora DSQL token; `admin` selects `DbConnectAdmin` (user `admin`).
    Dsql { region: String, admin: bool },
}

impl Auth {
    pub fn is_token(&self) -> bool {
        !matches!(self, Auth::Password(_))
    }
}

/// Which database engine the API talks to: it decides the schema (`migrations/` or
/// `migrations/dsql/`), the statements, and how tenants are kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// PostgreSQL (Aurora PostgreSQL, or a local server): isolation by row-level security.
    #[default]
    Postgres,
    /// Aurora DSQL (or the DSQL schema on a local PostgreSQL, for tests and `scripts/dev.sh
    /// --dsql`): no row-level security, no custom settings; every statement is bound to the
    /// caller's scope by construction (see `store::dsql`).
    Dsql,
}

impl Engine {
    /// `DB_ENGINE`'s name for it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "postgres",
            Engine::Dsql => "dsql",
        }
    }
}

impl FromStr for Engine {
    type Err = Error;

    /// `DB_ENGINE`: `postgres` (also `postgresql`, `aurora-postgresql`) or `dsql`.
    fn from_str(v: &str) -> Result<Self> {
        match v.trim().to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" | "aurora-postgresql" => Ok(Engine::Postgres),
            "dsql" => Ok(Engine::Dsql),
            other => Err(invalid("DB_ENGINE", format!("must be postgres or dsql, not {other:?}"))),
        }
    }
}

/// Where the trusted certificate authorities come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// The Amazon RDS root CAs compiled into the binary.
    RdsBundle,
    /// Amazon Trust Services' root CAs compiled into the binary: what Aurora DSQL chains to.
    AmazonRoots,
    /// A PEM file named in config (`DB_CA_FILE`).
    File(PathBuf),
    /// PEM bytes, for tests and tools that generate their own CA.
    Pem(Vec<u8>),
}

/// Transport security.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP. Allowed only with password authentication.
    Disable,
    /// TLS with the certificate chain and the host name verified (libpq's `verify-full`).
    VerifyFull(CaSource),
}

#[derive(Debug, Clone)]
pub struct DbConfig {
    /// The server's name: what TLS verifies and IAM tokens are signed for.
    pub host: String,
    /// Connect to this address instead of resolving `host` (libpq's `hostaddr`): tunnels,
    /// private IPs, local stand-ins. TLS and tokens still use `host`.
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    pub auth: Auth,
    /// The engine: PostgreSQL unless `DB_ENGINE=dsql` (the default with `DB_AUTH=dsql*`).
    pub engine: Engine,
    pub tls: TlsMode,
    /// Physical connections at most. 1 on Lambda: an instance serves one request at a time.
    pub pool_max: usize,
    /// The whole connect step: TCP, TLS, login, session setup. 30 s by default so that an
    /// Aurora resume (15 to 30 s) can finish, yet the function (40 s) answers 503, not a timeout.
    pub connect_timeout: Duration,
    /// Server-side `statement_timeout`; the client gives up a little after it.
    pub statement_timeout: Duration,
    /// A connection idle longer than this is pinged before use: a frozen Lambda may wake up with
    /// a TCP connection that the server or a NAT dropped meanwhile.
    pub idle_check_after: Duration,
    /// The server closes the session after this long without a request
    /// (`idle_session_timeout`), so that a frozen Lambda instance does not keep Aurora
    /// Serverless v2 from pausing; the next request reconnects. `None`: never.
    pub idle_session_timeout: Option<Duration>,
    /// A connection older than this is replaced when it is next checked out (never in the
    /// middle of a request): Aurora DSQL ends connections at 60 minutes. `None`: no limit.
    pub max_connection_age: Option<Duration>,
    /// Open connections to dedicated databases (silo tenants) at most, per instance, besides
    /// the control database's: each is a slot of that database's `max_connections`. The least
    /// recently used idle one is closed to make room.
    pub placement_max_connections: usize,
    /// How long an instance trusts its cached placement of a tenant without hearing otherwise
    /// (a request that reaches the wrong database finds out at once, whatever this says).
    pub placement_cache_ttl: Duration,
    pub application_name: String,
}

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_IDLE_CHECK: Duration = Duration::from_secs(5);
pub const DEFAULT_PLACEMENT_MAX_CONNECTIONS: usize = 2;
pub const DEFAULT_PLACEMENT_CACHE_TTL: Duration = Duration::from_secs(60);
pub const DEFAULT_IDLE_SESSION_TIMEOUT: Duration = Duration::from_secs(600);
/// Aurora DSQL closes a connection after 60 minutes; the pool replaces it before.
pub const DSQL_MAX_CONNECTION_AGE: Duration = Duration::from_secs(55 * 60);

impl DbConfig {
    /// A config with the defaults for everything but the address and the login.
    pub fn new(
        host: impl Into<String>,
        port: u16,
        dbname: impl Into<String>,
        user: impl Into<String>,
        auth: Auth,
    ) -> Self {
        Self {
            host: host.into(),
            hostaddr: None,
            port,
            dbname: dbname.into(),
            user: user.into(),
            auth,
            engine: Engine::Postgres,
            tls: TlsMode::Disable,
            pool_max: 1,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            statement_timeout: DEFAULT_STATEMENT_TIMEOUT,
            idle_check_after: DEFAULT_IDLE_CHECK,
            idle_session_timeout: Some(DEFAULT_IDLE_SESSION_TIMEOUT),
            max_connection_age: None,
            placement_max_connections: DEFAULT_PLACEMENT_MAX_CONNECTIONS,
            placement_cache_ttl: DEFAULT_PLACEMENT_CACHE_TTL,
            application_name: "tenant-api".into(),
        }
    }

    /// Reads the configuration through `get` (the process environment in production, a map in
    /// tests). `DATABASE_URL`, when set, gives host, port, name, user, password and TLS mode;
    /// the `DB_*` variables give them one by one and override the URL.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let var = |name: &'static str| get(name).filter(|v| !v.trim().is_empty());
        let mut cfg = match var("DATABASE_URL") {
            Some(url) => Self::from_url(&url)?,
            None => {
                let host = var("DB_HOST").ok_or_else(|| missing("DB_HOST"))?;
                let mut c = Self::new(host, 5432, "app", "app_runtime", Auth::Password(None));
                c.tls = TlsMode::VerifyFull(CaSource::RdsBundle);
                c
            }
        };
        if let Some(v) = var("DB_HOST") {
            cfg.host = v;
        }
        if let Some(v) = var("DB_HOSTADDR") {
            cfg.hostaddr =
                Some(v.trim().parse().map_err(|_| invalid("DB_HOSTADDR", format!("is not an IP address: {v:?}")))?);
        }
        if let Some(v) = var("DB_PORT") {
            cfg.port = parse("DB_PORT", &v)?;
        }
        if let Some(v) = var("DB_NAME") {
            cfg.dbname = v;
        }
        if let Some(v) = var("DB_USER") {
            cfg.user = v;
        }
        if let Some(v) = var("DB_PASSWORD") {
            cfg.auth = Auth::Password(Some(Secret::new(v)));
        }
        match var("DB_AUTH").as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("password") => {}
            Some(mode @ ("iam" | "dsql" | "dsql-admin")) => {
                let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).ok_or_else(|| {
                    invalid("AWS_REGION", format!("is required for DB_AUTH={mode} (tokens are signed for a region)"))
                })?;
                cfg.auth = match mode {
                    "iam" => Auth::Iam { region },
                    "dsql" => Auth::Dsql { region, admin: false },
                    _ => Auth::Dsql { region, admin: true },
                };
                if matches!(cfg.tls, TlsMode::Disable) && var("DB_TLS").is_none() {
                    cfg.tls = TlsMode::VerifyFull(CaSource::RdsBundle);
                }
                // DSQL's certificates chain to Amazon Trust Services, not to the RDS CAs; and a
                // DSQL connection lives at most 60 minutes, so it is replaced before that.
                if mode != "iam" {
                    if cfg.tls == TlsMode::VerifyFull(CaSource::RdsBundle) {
                        cfg.tls = TlsMode::VerifyFull(CaSource::AmazonRoots);
                    }
                    cfg.max_connection_age = Some(DSQL_MAX_CONNECTION_AGE);
                }
            }
            Some(other) => {
                return Err(invalid("DB_AUTH", format!("must be password, iam, dsql or dsql-admin, not {other:?}")));
            }
        }
        if matches!(cfg.auth, Auth::Dsql { .. }) {
            cfg.engine = Engine::Dsql;
        }
        if let Some(v) = var("DB_ENGINE") {
            cfg.engine = v.parse()?;
        }
        if cfg.engine == Engine::Dsql {
            // Nothing to let pause: DSQL has no instances, and no idle_session_timeout.
            cfg.idle_session_timeout = None;
        }
        if let Some(v) = var("DB_TLS") {
            cfg.tls = match v.to_ascii_lowercase().as_str() {
                "disable" | "off" => TlsMode::Disable,
                "verify-full" | "on" => TlsMode::VerifyFull(match cfg.auth {
                    Auth::Dsql { .. } => CaSource::AmazonRoots,
                    _ => CaSource::RdsBundle,
                }),
                other => {
                    return Err(invalid("DB_TLS", format!("must be verify-full or disable, not {other:?}")));
                }
            };
        }
        if let Some(path) = var("DB_CA_FILE") {
            match cfg.tls {
                TlsMode::VerifyFull(_) => cfg.tls = TlsMode::VerifyFull(CaSource::File(path.into())),
                TlsMode::Disable => {
                    return Err(invalid("DB_CA_FILE", "is set but DB_TLS=disable".into()));
                }
            }
        }
        if let Some(v) = var("DB_POOL_MAX") {
            cfg.pool_max = parse("DB_POOL_MAX", &v)?;
            if cfg.pool_max == 0 {
                return Err(invalid("DB_POOL_MAX", "must be at least 1".into()));
            }
        }
        if let Some(v) = var("DB_CONNECT_TIMEOUT_SECS") {
            cfg.connect_timeout = parse_secs("DB_CONNECT_TIMEOUT_SECS", &v, 0.001, 3600.0)?;
        }
        if let Some(v) = var("DB_STATEMENT_TIMEOUT_MS") {
            let ms = parse_secs("DB_STATEMENT_TIMEOUT_MS", &v, 1.0, 3_600_000.0)?.as_secs_f64();
            cfg.statement_timeout = Duration::from_millis(ms as u64);
        }
        if let Some(v) = var("DB_IDLE_CHECK_SECS") {
            cfg.idle_check_after = parse_secs("DB_IDLE_CHECK_SECS", &v, 0.0, 86_400.0)?;
        }
        if let Some(v) = var("DB_MAX_CONNECTION_AGE_SECS") {
            let t = parse_secs("DB_MAX_CONNECTION_AGE_SECS", &v, 0.0, 86_400.0)?;
            cfg.max_connection_age = (!t.is_zero()).then_some(t);
        }
        if let Some(v) = var("DB_IDLE_SESSION_TIMEOUT_SECS") {
            let t = parse_secs("DB_IDLE_SESSION_TIMEOUT_SECS", &v, 0.0, 86_400.0)?;
            cfg.idle_session_timeout = (!t.is_zero()).then_some(t);
        }
        if let Some(v) = var("DB_PLACEMENT_MAX_CONNECTIONS") {
            cfg.placement_max_connections = parse("DB_PLACEMENT_MAX_CONNECTIONS", &v)?;
            if cfg.placement_max_connections == 0 {
                return Err(invalid("DB_PLACEMENT_MAX_CONNECTIONS", "must be at least 1".into()));
            }
        }
        cfg.placement_cache_ttl = placement_cache_ttl(var)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rules that hold whatever the source of the settings.
    pub fn validate(&self) -> Result<()> {
        if self.auth.is_token() && matches!(self.tls, TlsMode::Disable) {
            return Err(invalid(
                "DB_TLS",
                "IAM and DSQL authentication send a signed token as the password; refusing to do that without verified TLS".into(),
            ));
        }
        if self.user.is_empty() {
            return Err(invalid("DB_USER", "must not be empty".into()));
        }
        match (&self.auth, self.engine) {
            (Auth::Dsql { .. }, Engine::Postgres) => {
                return Err(invalid(
                    "DB_ENGINE",
                    "is postgres, but DB_AUTH=dsql logs in to Aurora DSQL: use DB_ENGINE=dsql".into(),
                ));
            }
            (Auth::Iam { .. }, Engine::Dsql) => {
                return Err(invalid(
                    "DB_ENGINE",
                    "is dsql, but DB_AUTH=iam logs in to Aurora PostgreSQL: use DB_AUTH=dsql".into(),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// `host:port/dbname as user`, for log lines: never the password.
    pub fn describe(&self) -> String {
        format!("{}:{}/{} as {}", self.host, self.port, self.dbname, self.user)
    }
}

fn missing(var: &'static str) -> Error {
    Error::Config { var, problem: "is not set".into() }
}

pub(super) fn invalid(var: &'static str, problem: String) -> Error {
    Error::Config { var, problem }
}

fn parse<T: FromStr>(var: &'static str, value: &str) -> Result<T> {
    value.trim().parse().map_err(|_| invalid(var, format!("is not a valid number: {value:?}")))
}

/// A number of seconds (or of the variable's unit) within `min..=max`, finite: a typo never
/// becomes a panic, a disabled timeout or one of centuries.
/// `DB_PLACEMENT_CACHE_SECS` as `get` reads it (1 s to a day), or the default: how long an
/// instance trusts a cached placement. The tenant tool reads it too, since a move back to pooled
/// must outlast it.
pub fn placement_cache_ttl(get: impl Fn(&'static str) -> Option<String>) -> Result<Duration> {
    get("DB_PLACEMENT_CACHE_SECS")
        .map_or(Ok(DEFAULT_PLACEMENT_CACHE_TTL), |v| parse_secs("DB_PLACEMENT_CACHE_SECS", &v, 1.0, 86_400.0))
}

fn parse_secs(var: &'static str, value: &str, min: f64, max: f64) -> Result<Duration> {
    let v: f64 = parse(var, value)?;
    if v.is_finite() && (min..=max).contains(&v) {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(invalid(var, format!("must be between {min} and {max}, not {value:?}")))
    }
}

#[path = "config_url.rs"]
mod url;

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
