//! Opening connections: TCP (or a given address), TLS that verifies the server, the login with
//! the password source's password, then the session settings, the prepared statements and the
//! role self-check, all within the connect timeout and behind the backoff gate.

use std::{
    fmt,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use futures_util::future::{OptionFuture, join3, try_join_all};
use tokio::net::TcpStream;
use tokio_postgres::{
    Client, NoTls, Statement,
    error::SqlState,
    tls::{MakeTlsConnect, TlsConnect},
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{
    DbConfig, Error, PasswordSource, Q, Result, TlsMode,
    gate::Gate,
    migrate,
    stream::{Counters, CountingStream},
    tls,
};

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
    pub(crate) session_sql: String,
    /// The runtime role passed [`migrate::check_runtime_role`] once in this process.
    role_checked: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Connector {
    pub(crate) fn new(cfg: DbConfig, password: PasswordSource) -> Result<Self> {
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
    pub(crate) async fn open(&self) -> Result<Conn> {
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
