//! The connection pool: deadpool with our own manager, so that every new physical connection
//! asks its [`PasswordSource`] for a password (a fresh or cached IAM token), verifies the server
//! over TLS, and prepares every statement once.

use std::{
    fmt,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult};
use futures_util::future::{OptionFuture, join3, try_join_all};
use tokio::net::TcpStream;
use tokio_postgres::{
    Client, NoTls, Statement,
    error::SqlState,
    tls::{MakeTlsConnect, TlsConnect},
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{
    DbConfig, Error, Q, Result, Secret, TlsMode, migrate,
    stream::{Counters, CountingStream},
    tls,
};

/// Where a new physical connection gets its password.
#[derive(Clone)]
pub enum PasswordSource {
    /// A fixed password, or none (trust authentication on a local database).
    Fixed(Option<Secret>),
    /// An IAM token from the cache: every new connection asks, so a reconnect inside the
    /// token's life reuses it and one after gets a fresh one.
    Token { cache: Arc<db_auth::TokenCache>, request: db_auth::TokenRequest },
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::Fixed(p) => f.debug_tuple("Fixed").field(p).finish(),
            PasswordSource::Token { request, .. } => {
                f.debug_struct("Token").field("request", request).finish_non_exhaustive()
            }
        }
    }
}

impl PasswordSource {
    /// The token request that `cfg` implies (IAM or DSQL auth), if any.
    pub fn token_request(cfg: &DbConfig) -> Option<db_auth::TokenRequest> {
        match &cfg.auth {
            crate::Auth::Password(_) => None,
            crate::Auth::Iam { region } => Some(db_auth::TokenRequest::rds(&cfg.host, cfg.port, &cfg.user, region)),
            crate::Auth::Dsql { region, admin } => Some(db_auth::TokenRequest::dsql(&cfg.host, region, *admin)),
        }
    }

    /// The configured password, for password auth (no credentials to load).
    pub fn fixed(cfg: &DbConfig) -> Option<Self> {
        match &cfg.auth {
            crate::Auth::Password(p) => Some(PasswordSource::Fixed(p.clone())),
            _ => None,
        }
    }

    /// The source `cfg` asks for: its password, or tokens signed with aws-config's default
    /// credential chain (built here, once).
    pub async fn for_config(cfg: &DbConfig) -> Result<Self> {
        if let Some(fixed) = Self::fixed(cfg) {
            return Ok(fixed);
        }
        let request = Self::token_request(cfg).expect("every auth but password has a token request");
        let (provider, _) = db_auth::default_credentials(Some(request.region.clone()))
            .await
            .map_err(|e| Error::Config { var: "AWS_REGION", problem: e.to_string() })?;
        Ok(PasswordSource::Token { cache: Arc::new(db_auth::TokenCache::new(provider)), request })
    }

    async fn password(&self) -> Result<Option<Secret>> {
        match self {
            PasswordSource::Fixed(p) => Ok(p.clone()),
            PasswordSource::Token { cache, request } => match cache.token(request).await {
                Ok(token) => Ok(Some(Secret::new(token.as_ref()))),
                Err(e) => Err(Error::unavailable(format!("cannot sign a database token: {e}"))),
            },
        }
    }

    /// The server rejected the password: a cached token must not be offered again.
    fn rejected(&self) {
        if let PasswordSource::Token { cache, request } = self {
            cache.invalidate(request);
        }
    }
}

/// Counters of what the store did, for tests and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Times the client had to wait for the server before it could send more.
    pub round_trips: u64,
    /// Physical connections opened (logins).
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

#[derive(Debug, Default)]
pub struct Stats {
    io: Arc<Counters>,
    connects: std::sync::atomic::AtomicU64,
    connect_failures: std::sync::atomic::AtomicU64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            round_trips: self.io.round_trips.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
            bytes_sent: self.io.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.io.bytes_received.load(Ordering::Relaxed),
        }
    }
}

/// After a failed connection attempt, the next one waits: 200 ms, doubling up to 5 s. Requests
/// meanwhile get 503 at once, so a database that refuses logins sees a trickle of attempts, not
/// one per request (Aurora also limits new IAM connections to about 200 per second).
#[derive(Debug, Default)]
struct Gate {
    failures: u32,
    closed_until: Option<Instant>,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Gate {
    fn check(&self) -> Result<()> {
        match self.closed_until {
            Some(until) if Instant::now() < until => Err(Error::Unavailable {
                reason: format!("backing off after {} failed connection attempt(s)", self.failures),
                retry_after: (until - Instant::now()).max(Duration::from_secs(1)),
            }),
            _ => Ok(()),
        }
    }

    fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let backoff = BACKOFF_FIRST.saturating_mul(1 << self.failures.min(6).saturating_sub(1)).min(BACKOFF_MAX);
        self.closed_until = Some(Instant::now() + backoff);
    }

    fn succeeded(&mut self) {
        self.failures = 0;
        self.closed_until = None;
    }
}

/// One physical connection and its prepared statements.
pub(crate) struct Conn {
    pub client: Client,
    stmts: Vec<Statement>,
    pub last_used: Instant,
}

impl Conn {
    pub fn stmt(&self, q: Q) -> &Statement {
        &self.stmts[q as usize]
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").field("closed", &self.client.is_closed()).finish_non_exhaustive()
    }
}

/// What every connection shares: built once at start-up.
pub(crate) struct Connector {
    pub cfg: DbConfig,
    password: PasswordSource,
    tls: Option<MakeRustlsConnect>,
    gate: Mutex<Gate>,
    pub stats: Stats,
    session_sql: String,
    /// The runtime role passed [`migrate::check_runtime_role`] once in this process.
    role_checked: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Connector {
    fn new(cfg: DbConfig, password: PasswordSource) -> Result<Self> {
        cfg.validate()?;
        let tls = match &cfg.tls {
            TlsMode::Disable => None,
            TlsMode::VerifyFull(ca) => Some(MakeRustlsConnect::new((*tls::client_config(ca)?).clone())),
        };
        // Bounds on the server side too: a statement cannot outlive the client's patience, and a
        // transaction left open by a vanished client does not hold locks for long.
        let ms = cfg.statement_timeout.as_millis();
        let session_sql = format!(
            "SET statement_timeout = {ms}; SET idle_in_transaction_session_timeout = {}",
            ms.saturating_mul(2).max(1000)
        );
        Ok(Self {
            cfg,
            password,
            tls,
            gate: Mutex::new(Gate::default()),
            stats: Stats::default(),
            session_sql,
            role_checked: Default::default(),
        })
    }

    /// Opens and logs in one connection, within the connect timeout, through the backoff gate.
    pub async fn connect(&self) -> Result<Client> {
        self.gate.lock().unwrap_or_else(|e| e.into_inner()).check()?;
        let started = Instant::now();
        let result = match tokio::time::timeout(self.cfg.connect_timeout, self.connect_inner()).await {
            Ok(r) => r,
            Err(_) => Err(Error::ConnectTimeout {
                host: self.cfg.host.clone(),
                port: self.cfg.port,
                after: self.cfg.connect_timeout,
            }),
        };
        let mut gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        match &result {
            Ok(_) => {
                gate.succeeded();
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(db = %self.cfg.describe(), tls = self.tls.is_some(), elapsed_ms = started.elapsed().as_millis() as u64, "database connected");
            }
            Err(e) => {
                gate.failed();
                self.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(db = %self.cfg.describe(), error = %e, elapsed_ms = started.elapsed().as_millis() as u64, "database connection failed");
            }
        }
        result
    }

    async fn connect_inner(&self) -> Result<Client> {
        let cfg = &self.cfg;
        let password = self.password.password().await?;
        let mut pg = tokio_postgres::Config::new();
        pg.host(&cfg.host).port(cfg.port).user(&cfg.user).dbname(&cfg.dbname).application_name(&cfg.application_name);
        if let Some(p) = &password {
            pg.password(p.expose());
        }
        let tcp = match cfg.hostaddr {
            Some(ip) => TcpStream::connect((ip, cfg.port)).await,
            None => TcpStream::connect((cfg.host.as_str(), cfg.port)).await,
        }
        .map_err(|e| Error::unavailable(format!("cannot reach {}:{}: {e}", cfg.host, cfg.port)))?;
        let _ = tcp.set_nodelay(true);
        let stream = CountingStream::new(tcp, self.stats.io.clone());
        let client = match &self.tls {
            Some(make) => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = MakeTlsConnect::<CountingStream<TcpStream>>::make_tls_connect(&mut make.clone(), &cfg.host)
                    .map_err(|e| Error::Tls(format!("{}: {e}", cfg.host)))?;
                login(&pg, stream, tls).await
            }
            None => {
                pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                login(&pg, stream, NoTls).await
            }
        };
        client.map_err(|e| self.login_error(e))
    }

    fn login_error(&self, e: tokio_postgres::Error) -> Error {
        let cfg = &self.cfg;
        if let Some(why) = tls::explain(&e) {
            return Error::Tls(format!("{}:{}: {why}", cfg.host, cfg.port));
        }
        match e.code() {
            Some(c) if *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION || *c == SqlState::INVALID_PASSWORD => {
                self.password.rejected();
                let msg = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
                Error::Unavailable {
                    reason: format!("login to {}:{} rejected: {msg}", cfg.host, cfg.port),
                    retry_after: Duration::from_secs(5),
                }
            }
            _ => Error::unavailable(format!("connecting to {}:{}: {e}", cfg.host, cfg.port)),
        }
    }

    /// A connection for the API: session settings applied, every statement prepared. Both go
    /// out together, in one round trip.
    async fn open(&self) -> Result<Conn> {
        let started = Instant::now();
        let client = self.connect().await?;
        // The session settings, every statement, and (once per process) the role self-check all
        // go out together: one round trip after the login, within what is left of the connect
        // timeout (a server that stalls after the login must not hang the request).
        let check = !self.role_checked.load(Ordering::Relaxed);
        let setup = join3(
            client.batch_execute(&self.session_sql),
            try_join_all(Q::ALL.iter().map(|q| client.prepare(q.sql()))),
            OptionFuture::from(check.then(|| migrate::check_runtime_role(&client))),
        );
        let left = self.cfg.connect_timeout.saturating_sub(started.elapsed());
        let Ok((settings, stmts, checked)) = tokio::time::timeout(left, setup).await else {
            return Err(Error::ConnectTimeout {
                host: self.cfg.host.clone(),
                port: self.cfg.port,
                after: self.cfg.connect_timeout,
            });
        };
        if let Some(Err(e)) = checked {
            tracing::error!(error = %e, "refusing to serve: the database role is not safe for a multi-tenant API");
            return Err(e);
        }
        if check {
            self.role_checked.store(true, Ordering::Relaxed);
        }
        settings?;
        let stmts = stmts?;
        Ok(Conn { client, stmts, last_used: Instant::now() })
    }
}

/// Logs in over `stream` and runs the connection's I/O task in the background.
async fn login<T>(
    pg: &tokio_postgres::Config,
    stream: CountingStream<TcpStream>,
    tls: T,
) -> Result<Client, tokio_postgres::Error>
where
    T: TlsConnect<CountingStream<TcpStream>>,
    T::Stream: Send + 'static,
{
    let (client, connection) = pg.connect_raw(stream, tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "database connection closed with an error");
        }
    });
    Ok(client)
}

pub(crate) struct Manager(pub Arc<Connector>);

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

const PING_TIMEOUT: Duration = Duration::from_secs(2);
const THAW_CHECK_AFTER: Duration = Duration::from_millis(50);

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = Error;

    async fn create(&self) -> Result<Conn> {
        self.0.open().await
    }

    async fn recycle(&self, conn: &mut Conn, _: &Metrics) -> RecycleResult<Error> {
        // After a pause (a Lambda instance thawing), let the connection's I/O task run first: a
        // close or reset that arrived meanwhile is waiting to be read, and this turns it into
        // `is_closed()` before a request is sent on a dead connection. Back-to-back requests
        // skip the extra scheduler turn.
        if conn.last_used.elapsed() >= THAW_CHECK_AFTER {
            tokio::task::yield_now().await;
        }
        if conn.client.is_closed() {
            return Err(RecycleError::message("connection closed"));
        }
        if conn.last_used.elapsed() >= self.0.cfg.idle_check_after {
            // An empty query is the cheapest full round trip the protocol has.
            match tokio::time::timeout(PING_TIMEOUT, conn.client.simple_query("")).await {
                Ok(Ok(_)) => conn.last_used = Instant::now(),
                _ => {
                    tracing::info!("idle database connection is gone; reconnecting");
                    return Err(RecycleError::message("idle connection failed its ping"));
                }
            }
        }
        Ok(())
    }
}

pub(crate) type Pool = managed::Pool<Manager>;

/// The database, as the API sees it. Cheap to clone; build one per process.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    pub(crate) connector: Arc<Connector>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("db", &self.connector.cfg.describe()).finish_non_exhaustive()
    }
}

impl Store {
    /// Builds the pool with the password source `cfg` asks for (see
    /// [`PasswordSource::for_config`]).
    pub async fn from_config(cfg: DbConfig) -> Result<Self> {
        let password = PasswordSource::for_config(&cfg).await?;
        Self::new(cfg, password)
    }

    /// Builds the pool. Does not connect: the first request does, within the connect timeout,
    /// so that start-up never waits for (or fails on) a paused database.
    pub fn new(cfg: DbConfig, password: PasswordSource) -> Result<Self> {
        let max = cfg.pool_max;
        let wait = cfg.connect_timeout;
        let connector = Arc::new(Connector::new(cfg, password)?);
        let pool = Pool::builder(Manager(connector.clone()))
            .max_size(max)
            .runtime(deadpool::Runtime::Tokio1)
            // The connect step has its own timeout (with a better message); this bounds the wait
            // for a busy connection when more requests than connections arrive at once.
            .wait_timeout(Some(wait))
            .build()
            .map_err(|e| Error::Config { var: "DB_POOL_MAX", problem: e.to_string() })?;
        Ok(Self { pool, connector })
    }

    pub fn config(&self) -> &DbConfig {
        &self.connector.cfg
    }

    /// The session settings every connection gets (statement and idle-in-transaction
    /// timeouts), for tools that compare against plain connections.
    pub fn session_settings(&self) -> &str {
        &self.connector.session_sql
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.connector.stats.snapshot()
    }

    /// Opens a plain client with this store's login and TLS settings, outside the pool: for
    /// migrations and self-checks.
    pub async fn connect_client(&self) -> Result<Client> {
        self.connector.connect().await
    }

    /// Makes sure a connection is open (opening one if needed).
    pub async fn warm_up(&self) -> Result<()> {
        self.checkout().await.map(drop)
    }

    pub(crate) async fn checkout(&self) -> Result<Object<Manager>> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => e,
            PoolError::Timeout(_) => Error::unavailable("timed out waiting for a free database connection"),
            other => Error::unavailable(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let mut gate = Gate::default();
        assert!(gate.check().is_ok());
        let mut waits = Vec::new();
        for _ in 0..8 {
            gate.failed();
            let until = gate.closed_until.unwrap();
            waits.push((until - Instant::now()).as_millis() as u64);
            assert!(gate.check().is_err());
        }
        assert!(waits[0] <= 200 && waits[0] > 150, "{waits:?}");
        assert!(waits[1] > 350 && waits[1] <= 400, "{waits:?}");
        assert!(waits.iter().all(|w| *w <= 5000), "{waits:?}");
        assert!(waits[7] > 4900, "{waits:?}");
        gate.succeeded();
        assert!(gate.check().is_ok());
    }
}
