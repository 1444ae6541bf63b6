//! Opening connections: TCP (or a given address), TLS that verifies the server, the login with
//! the password source's password, then the session settings, the prepared statements and the
//! role self-check, all within the connect timeout and behind the backoff gate.
//!
//! What is prepared and checked is handed in as data (a [`Setup`]): this module knows no
//! statement catalogue and no migration.

use std::{
    fmt,
    sync::{Arc, Mutex, atomic::Ordering},
    time::{Duration, Instant},
};

use futures_util::future::{BoxFuture, OptionFuture, join3, try_join_all};
use tokio::net::TcpStream;
use tokio_postgres::{
    Client, NoTls, Statement,
    error::SqlState,
    tls::{MakeTlsConnect, TlsConnect},
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{
    DbConfig, Error, PasswordSource, Result, TlsMode, gate::Gate, socket::tune_socket, stats::Stats,
    stream::CountingStream, tls,
};

/// A check run on a new connection, in the layer above (the runtime role's self-check, a
/// dedicated database's schema version).
pub type Check = Arc<dyn for<'c> Fn(&'c Client) -> BoxFuture<'c, Result<()>> + Send + Sync>;

/// What a new connection gets after its login, handed in by the layer that knows the
/// statements and the schema.
pub struct Setup {
    /// Prepared on every connection, in this order: [`Conn::stmt`]`(i)` is `statements[i]`.
    pub statements: Vec<&'static str>,
    /// Two more texts of each statement, in the same order (the recording variants: for the
    /// first recorded statement of a request and for the others), prepared on a connection's
    /// first call of [`Conn::variants`].
    pub variants: Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>,
    /// Run once per process, in the same round trip as the session settings and the
    /// statements; a failure is remembered for [`SELF_CHECK_RETRY`].
    pub once: Option<Check>,
    /// Run on every new connection after that round trip.
    pub each: Option<Check>,
}

impl fmt::Debug for Setup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setup").field("statements", &self.statements.len()).finish_non_exhaustive()
    }
}

/// One physical connection and its prepared statements.
pub struct Conn {
    pub client: Client,
    stmts: Vec<Statement>,
    /// The statements' variants (see [`Setup::variants`]), prepared on the first call of
    /// [`Conn::variants`] on this connection.
    variants: tokio::sync::OnceCell<Variants>,
    setup: Arc<Setup>,
    pub last_used: Instant,
    pub created: Instant,
    pub engine: crate::Engine,
    /// A dedicated database's connection: its place under the instance's cap, while open.
    pub permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Conn {
    /// Statement `i` of the [`Setup`].
    pub fn stmt(&self, i: usize) -> &Statement {
        &self.stmts[i]
    }

    /// The variants of every statement, in the [`Setup`]'s order. Only those that differ from
    /// the statement are prepared, each once.
    pub async fn variants(&self) -> Result<&Variants, tokio_postgres::Error> {
        self.variants
            .get_or_try_init(|| async {
                let sql: Vec<(String, String)> = (self.setup.variants)();
                let plain = |i: usize| self.setup.statements[i];
                let mut texts: Vec<&str> = sql
                    .iter()
                    .enumerate()
                    .flat_map(|(i, r)| [r.0.as_str(), r.1.as_str()].into_iter().filter(move |t| *t != plain(i)))
                    .collect();
                texts.sort_unstable();
                texts.dedup();
                let prepared = try_join_all(texts.iter().map(|t| self.client.prepare(t))).await?;
                let by_text: std::collections::HashMap<&str, &Statement> =
                    texts.iter().copied().zip(&prepared).collect();
                let pick =
                    |i: usize, text: &str| by_text.get(text).map_or_else(|| self.stmts[i].clone(), |s| (*s).clone());
                let first = sql.iter().enumerate().map(|(i, r)| pick(i, &r.0)).collect();
                let more = sql.iter().enumerate().map(|(i, r)| pick(i, &r.1)).collect();
                Ok(Variants { first, more })
            })
            .await
    }
}

/// A connection's prepared variants: `first[i]` for the first recorded statement of a request,
/// `more[i]` for the others.
pub struct Variants {
    pub first: Vec<Statement>,
    pub more: Vec<Statement>,
}

impl fmt::Debug for Variants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Variants").field("statements", &self.first.len()).finish_non_exhaustive()
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").field("closed", &self.client.is_closed()).finish_non_exhaustive()
    }
}

/// What every connection shares: built once at start-up.
pub struct Connector {
    pub cfg: DbConfig,
    password: PasswordSource,
    tls: Option<MakeRustlsConnect>,
    gate: Mutex<Gate>,
    pub stats: Stats,
    pub session_sql: String,
    /// What each new connection gets after its login.
    setup: Arc<Setup>,
    /// The setup's `once` check passed in this process.
    role_checked: std::sync::atomic::AtomicBool,
    /// When and why the self-check last failed.
    self_check_failed: Mutex<Option<(Instant, String)>>,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Connector {
    pub fn new(cfg: DbConfig, password: PasswordSource, setup: Setup) -> Result<Self> {
        cfg.validate()?;
        let tls = match &cfg.tls {
            TlsMode::Disable => None,
            TlsMode::VerifyFull(ca) => Some(MakeRustlsConnect::new((*tls::client_config(ca)?).clone())),
        };
        // Bounds on the server side too: a statement cannot outlive the client's patience, and a
        // transaction left open by a vanished client does not hold locks for long.
        let ms = cfg.statement_timeout.as_millis();
        // And a session nobody uses ends on the server's side: an idle Lambda instance must not
        // keep the cluster from pausing (the pool reconnects before it would use such a session).
        // (PostgreSQL 14 and later; without the setting nothing is sent, for older servers.)
        let idle = cfg
            .idle_session_timeout
            .map_or(String::new(), |t| format!("; SET idle_session_timeout = {}", t.as_millis().max(1)));
        // Aurora DSQL accepts only a fixed list of session settings; its own limits (5 minutes
        // per transaction, 60 minutes per connection) bound what these do on PostgreSQL, and
        // the client's patience (statement timeout plus grace) still applies.
        let session_sql = if cfg.engine == crate::Engine::Dsql {
            String::new()
        } else {
            format!(
                "SET statement_timeout = {ms}; SET idle_in_transaction_session_timeout = {}{idle}",
                ms.saturating_mul(2).max(1000)
            )
        };
        Ok(Self {
            cfg,
            password,
            tls,
            gate: Mutex::new(Gate::default()),
            stats: Stats::default(),
            session_sql,
            setup: Arc::new(setup),
            role_checked: Default::default(),
            self_check_failed: Mutex::new(None),
        })
    }

    /// A self-check that failed less than [`SELF_CHECK_RETRY`] ago: the same answer again,
    /// without a login (a misconfigured role must not cost an IAM login per request).
    fn recent_self_check_failure(&self) -> Option<Error> {
        let failed = self.self_check_failed.lock().unwrap_or_else(|e| e.into_inner());
        match &*failed {
            Some((at, why)) if at.elapsed() < SELF_CHECK_RETRY => Some(Error::SelfCheck(why.clone())),
            _ => None,
        }
    }

    /// The login worked but what follows it failed: back off as after a failed login.
    fn setup_failed(&self) {
        self.gate.lock().unwrap_or_else(|e| e.into_inner()).failed();
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
        tune_socket(&tcp);
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
    pub async fn open(&self) -> Result<Conn> {
        if let Some(e) = self.recent_self_check_failure() {
            return Err(e);
        }
        let started = Instant::now();
        let client = self.connect().await?;
        // The session settings, every statement, and (once per process) the role self-check all
        // go out together: one round trip after the login, within what is left of the connect
        // timeout (a server that stalls after the login must not hang the request).
        let check = self.setup.once.as_ref().filter(|_| !self.role_checked.load(Ordering::Relaxed));
        let setup = join3(
            client.batch_execute(&self.session_sql),
            try_join_all(self.setup.statements.iter().map(|sql| client.prepare(sql))),
            OptionFuture::from(check.map(|check| check(&client))),
        );
        let left = self.cfg.connect_timeout.saturating_sub(started.elapsed());
        let Ok((settings, stmts, checked)) = tokio::time::timeout(left, setup).await else {
            self.setup_failed();
            return Err(Error::ConnectTimeout {
                host: self.cfg.host.clone(),
                port: self.cfg.port,
                after: self.cfg.connect_timeout,
            });
        };
        if let Some(Err(e)) = checked {
            self.setup_failed();
            tracing::error!(
                db = %self.cfg.describe(),
                error = %e,
                retry_in_s = SELF_CHECK_RETRY.as_secs(),
                "refusing to serve: the database role is not safe for a multi-tenant API; log in as app_runtime \
                 (scripts/migrate.sh --bootstrap-roles creates it), which must not be a superuser, have BYPASSRLS, \
                 own the tables or be able to SET ROLE to a role that does"
            );
            if let Error::SelfCheck(why) = &e {
                *self.self_check_failed.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), why.clone()));
            }
            return Err(e);
        }
        if check.is_some() {
            self.role_checked.store(true, Ordering::Relaxed);
        }
        if let Some(each) = &self.setup.each {
            each(&client).await?;
        }
        let stmts = settings.and(stmts).map_err(|e| {
            self.setup_failed();
            Error::from_query(e)
        })?;
        Ok(Conn {
            client,
            stmts,
            variants: Default::default(),
            setup: self.setup.clone(),
            last_used: Instant::now(),
            created: Instant::now(),
            engine: self.cfg.engine,
            permit: None,
        })
    }
}

/// How long a failed role self-check is answered from memory before it is tried again.
pub const SELF_CHECK_RETRY: Duration = Duration::from_secs(60);

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
