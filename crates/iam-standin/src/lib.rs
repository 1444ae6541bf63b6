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

mod config;
mod conflicts;
pub mod dsql;
mod error;
mod session;
pub mod sigv4;
mod state;
mod tls;
mod upstream;
mod wire;

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::{net::TcpListener, sync::watch};
use tokio_rustls::TlsAcceptor;

pub use config::{Config, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, Upstream, test_credentials};
pub use error::Error;
use session::Shared;
use state::State;
use tls::make_tls;
// `dsql` frames its messages with these, as `crate::{message, read_message}`.
use wire::{message, read_message};

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

    /// Statements and commits that DSQL's rules or limits refused.
    pub fn refused_statements(&self) -> u64 {
        self.state.dsql.refused.load(Ordering::SeqCst)
    }

    /// The most rows, each index entry counted as one, that any transaction asked to commit.
    pub fn max_transaction_rows(&self) -> u64 {
        self.state.dsql.max_rows.load(Ordering::SeqCst)
    }

    /// Conflicts (40001, OC000) answered where PostgreSQL would have waited for a lock or found
    /// a concurrent update.
    pub fn conflicts_answered(&self) -> u64 {
        self.state.dsql.conflicts.load(Ordering::SeqCst)
    }

    /// The user of the last accepted login.
    pub fn last_user(&self) -> Option<String> {
        self.state.last_user.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
