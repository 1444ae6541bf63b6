//! The connection pool: deadpool with our own manager, so that every new physical connection
//! goes through the [`Connector`] (a fresh or cached IAM token, verified TLS, every statement
//! prepared once), and [`Db`]: one database's pool, which knows no tenant and no placement.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult};
use tokio::task::JoinHandle;

use crate::{
    DbConfig, Error, PasswordSource, Result,
    cap::{Capped, Limiter},
    connector::{Conn, Connector, Setup},
};

pub struct Manager {
    pub connector: Arc<Connector>,
    /// A connect that outlived the request that started it: it goes on in the background, and
    /// the next checkout takes its connection instead of logging in again.
    pending: tokio::sync::Mutex<Option<JoinHandle<Result<Conn>>>>,
    /// A dedicated database's pool: its connections count against the instance's cap.
    limit: Option<(Arc<Limiter>, uuid::Uuid)>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.connector.fmt(f)
    }
}

const PING_TIMEOUT: Duration = Duration::from_secs(2);
const THAW_CHECK_AFTER: Duration = Duration::from_millis(50);
/// How long before the server's idle_session_timeout a session counts as gone (at most a tenth
/// of the timeout).
const IDLE_SESSION_MARGIN: Duration = Duration::from_secs(5);

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = Error;

    async fn create(&self) -> Result<Conn> {
        // The connect runs as its own task: when the request waiting for it gives up (its
        // deadline came first), the handle stays here and the connect goes on.
        let mut pending = self.pending.lock().await;
        loop {
            // A connect that had already failed before this request came is history: try afresh.
            let failed_earlier = pending.as_ref().is_some_and(JoinHandle::is_finished);
            let task = pending.get_or_insert_with(|| {
                let connector = self.connector.clone();
                let limit = self.limit.clone();
                tokio::spawn(async move {
                    // A dedicated database's connection holds one of the instance's permits for
                    // as long as it is open.
                    let permit = match limit {
                        Some((limiter, id)) => Some(limiter.acquire(id, connector.cfg.connect_timeout).await?),
                        None => None,
                    };
                    let mut conn = connector.open().await?;
                    conn.permit = permit;
                    Ok(conn)
                })
            });
            let result =
                task.await.unwrap_or_else(|e| Err(Error::unavailable(format!("the connect task failed: {e}"))));
            *pending = None;
            match result {
                Err(_) if failed_earlier => continue,
                other => return other,
            }
        }
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
        // Past its maximum age (Aurora DSQL ends connections at 60 minutes), a connection is
        // replaced here, between requests, never in the middle of one.
        if let Some(max) = self.connector.cfg.max_connection_age
            && conn.created.elapsed() >= max
        {
            tracing::info!(age_s = conn.created.elapsed().as_secs(), "replacing a connection at its maximum age");
            return Err(RecycleError::message("connection past its maximum age"));
        }
        // The server ends sessions idle for idle_session_timeout: one idle nearly that long is
        // replaced rather than raced (a write sent as the server closes would be lost).
        if let Some(timeout) = self.connector.cfg.idle_session_timeout
            && conn.last_used.elapsed() >= timeout.saturating_sub((timeout / 10).min(IDLE_SESSION_MARGIN))
        {
            tracing::info!("the server has closed, or is about to close, this idle session; reconnecting");
            return Err(RecycleError::message("session idle past the server's idle_session_timeout"));
        }
        if conn.last_used.elapsed() >= self.connector.cfg.idle_check_after {
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

pub type Pool = managed::Pool<Manager>;

impl Capped for Pool {
    fn idle(&self) -> usize {
        self.status().available
    }

    fn close_idle(&self) {
        self.retain(|_, _| false);
    }

    fn close(&self) {
        Pool::close(self);
    }
}

/// One database: its pool and what its connections share. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pub pool: Pool,
    pub connector: Arc<Connector>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("db", &self.connector.cfg.describe()).finish_non_exhaustive()
    }
}

impl Db {
    /// The pool of a dedicated database, whose connections count against `limit`.
    pub fn dedicated(
        cfg: DbConfig,
        password: PasswordSource,
        setup: Setup,
        limit: (Arc<Limiter>, uuid::Uuid),
    ) -> Result<Self> {
        let db = Self::new(cfg, password, setup, Some(limit.clone()))?;
        limit.0.register(limit.1, Arc::new(db.pool.clone()));
        Ok(db)
    }

    /// The pool of one database, whose new connections get `setup` after their login. Does
    /// not connect.
    pub fn new(
        cfg: DbConfig,
        password: PasswordSource,
        setup: Setup,
        limit: Option<(Arc<Limiter>, uuid::Uuid)>,
    ) -> Result<Self> {
        let max = cfg.pool_max;
        let wait = cfg.connect_timeout;
        let connector = Arc::new(Connector::new(cfg, password, setup)?);
        let pool = Pool::builder(Manager { connector: connector.clone(), pending: Default::default(), limit })
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

    pub async fn checkout(&self) -> Result<Object<Manager>> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => e,
            PoolError::Timeout(_) => Error::unavailable("timed out waiting for a free database connection"),
            other => Error::unavailable(other.to_string()),
        })
    }
}
