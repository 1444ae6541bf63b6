//! A local stand-in for Aurora PostgreSQL's IAM database authentication, for tests and for
//! trying the IAM path on a laptop. It is what the function sees of Aurora:
//!
//! 1. accepts PostgreSQL's `SSLRequest` and terminates TLS with a certificate for a configurable
//!    host name, issued by a CA it generates at start (rcgen): clients verify it like Aurora's;
//! 2. asks for a cleartext password, as Aurora does for `rds_iam` users, and verifies it as an
//!    RDS IAM token: SigV4 with the known test key, `Action=connect`, `DBUser` equal to the
//!    startup user, the configured host and port and region, not expired, signature intact;
//! 3. only then relays the session to a real PostgreSQL (which must trust the stand-in, e.g.
//!    over its Unix socket); a failure is answered with PostgreSQL's own error format and
//!    Aurora's message, `PAM authentication failed for user "..."`.
//!
//! Knobs for fault tests: delay before answering, refuse logins, refuse connections, drop every
//! established session, and counters of accepted and rejected logins.

mod conflicts;
mod session;
pub mod sigv4;
mod tls;
mod upstream;
mod wire;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use db_auth::{Clock, Credentials};
use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::TlsAcceptor;

use session::Shared;
use tls::make_tls;
// `conflicts` frames its messages with these, as `crate::{message, read_message}`.
use wire::{message, read_message};

/// The access key the stand-in accepts tokens from.
pub const TEST_ACCESS_KEY_ID: &str = "AKIAIAMSTANDINEXAMPLE";
/// Its secret. Only meaningful to the stand-in.
pub const TEST_SECRET_ACCESS_KEY: &str = "standin/Secret+Key/forLocalTestsOnlyEXAMPLE";

/// Credentials that sign tokens the stand-in accepts (with a session token, as on Lambda).
pub fn test_credentials() -> Credentials {
    Credentials::new(
        TEST_ACCESS_KEY_ID,
        TEST_SECRET_ACCESS_KEY,
        Some("standin-session-token".into()),
        None,
        "iam-standin",
    )
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("certificate: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("tls: {0}")]
    Tls(#[from] rustls::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The real PostgreSQL behind the stand-in. It must let the stand-in in without a password
/// (trust), since the stand-in has already authenticated the client.
#[derive(Debug, Clone)]
pub enum Upstream {
    Tcp(SocketAddr),
    /// A server's Unix socket file, e.g. `/tmp/sock/.s.PGSQL.5432`.
    Unix(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The name in the server certificate, and the host a token must be signed for.
    pub hostname: String,
    /// The port a token must be signed for; the listening port when `None`.
    pub token_port: Option<u16>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub upstream: Upstream,
    pub clock: Arc<dyn Clock>,
    /// Whose tokens to accept: Aurora's (the default) or Aurora DSQL's.
    pub engine: sigv4::Engine,
    /// Sessions older than this are closed, as Aurora DSQL closes connections at 60 minutes.
    pub max_session_age: Option<Duration>,
}

impl Config {
    pub fn new(hostname: impl Into<String>, region: impl Into<String>, upstream: Upstream) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            hostname: hostname.into(),
            token_port: None,
            region: region.into(),
            access_key_id: TEST_ACCESS_KEY_ID.into(),
            secret_access_key: TEST_SECRET_ACCESS_KEY.into(),
            upstream,
            clock: Arc::new(db_auth::SystemClock),
            engine: sigv4::Engine::Rds,
            max_session_age: None,
        }
    }
}

/// Fault knobs and counters, shared with the running stand-in.
#[derive(Debug, Default)]
struct State {
    delay: Mutex<Duration>,
    refuse_logins: AtomicBool,
    refuse_connections: AtomicBool,
    accepted: AtomicU64,
    rejected: AtomicU64,
    connections: AtomicU64,
    active: AtomicU64,
    last_rejection: Mutex<Option<String>>,
    last_user: Mutex<Option<String>>,
    conflicts: conflicts::Conflicts,
}

/// A running stand-in. Dropping it stops accepting (established sessions end with it too).
#[derive(Debug)]
pub struct Standin {
    addr: SocketAddr,
    ca_pem: String,
    state: Arc<State>,
    drop_sessions: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Standin {
    fn drop(&mut self) {
        self.task.abort();
        self.drop_sessions.send_modify(|g| *g += 1);
    }
}

impl Standin {
    pub async fn start(config: Config) -> Result<Self, Error> {
        let (ca_pem, tls) = make_tls(&config.hostname)?;
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let (drop_sessions, _) = watch::channel(0u64);
        let shared = Arc::new(Shared {
            token_port: config.token_port.unwrap_or(addr.port()),
            config,
            tls: TlsAcceptor::from(tls),
            state: state.clone(),
            drop_sessions: drop_sessions.clone(),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                // Small protocol messages must not wait for delayed ACKs (Nagle), as with a
                // real server.
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                tokio::spawn(async move { shared.serve(stream).await });
            }
        });
        Ok(Self { addr, ca_pem, state, drop_sessions, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PEM of the CA that issued the stand-in's certificate: what clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Waits this long before answering a new connection (a database resuming).
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap_or_else(|e| e.into_inner()) = delay;
    }

    /// Rejects every login, valid token or not (a revoked user).
    pub fn set_refuse_logins(&self, refuse: bool) {
        self.state.refuse_logins.store(refuse, Ordering::SeqCst);
    }

    /// Closes new connections at once (the database is down).
    pub fn set_refuse_connections(&self, refuse: bool) {
        self.state.refuse_connections.store(refuse, Ordering::SeqCst);
    }

    /// Drops every established session, as a failover or a NAT timeout would.
    pub fn drop_sessions(&self) {
        self.drop_sessions.send_modify(|g| *g += 1);
    }

    /// Logins with a valid token that were relayed to PostgreSQL.
    pub fn accepted_logins(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }

    pub fn rejected_logins(&self) -> u64 {
        self.state.rejected.load(Ordering::SeqCst)
    }

    /// TCP connections accepted, whatever became of them.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Sessions relayed right now.
    pub fn active_sessions(&self) -> u64 {
        self.state.active.load(Ordering::SeqCst)
    }

    /// Why the last login was rejected.
    pub fn last_rejection(&self) -> Option<String> {
        self.state.last_rejection.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Fails this share (0.0 to 1.0) of the sessions' `COMMIT`s with SQLSTATE 40001 (`OC000`),
    /// rolling them back, as Aurora DSQL does when optimistic concurrency finds a conflict.
    pub fn set_commit_failure_rate(&self, rate: f64) {
        let permille = (rate.clamp(0.0, 1.0) * 1000.0).round() as u64;
        self.state.conflicts.permille.store(permille, Ordering::SeqCst);
    }

    /// Commits failed on purpose so far.
    pub fn failed_commits(&self) -> u64 {
        self.state.conflicts.failed.load(Ordering::SeqCst)
    }

    /// The user of the last accepted login.
    pub fn last_user(&self) -> Option<String> {
        self.state.last_user.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
