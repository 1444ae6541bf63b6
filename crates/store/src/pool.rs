//! The connection pool: deadpool with our own manager, so that every new physical connection
//! goes through the [`Connector`] (a fresh or cached IAM token, verified TLS, every statement
//! prepared once), and the [`Store`] the API holds.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

use crate::{
    DbConfig, Error, PasswordSource, Result, StatsSnapshot,
    connector::{Conn, Connector},
    placement::{Limiter, Placements},
};

pub(crate) struct Manager {
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

pub(crate) type Pool = managed::Pool<Manager>;

/// The database, as the API sees it. Cheap to clone; build one per process.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
    pub(crate) connector: Arc<Connector>,
    /// The control database's registry of silo tenants and the pools of their dedicated
    /// databases (Aurora PostgreSQL only; `None` in a dedicated database's own store).
    pub(crate) placements: Option<Arc<Placements>>,
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
        let placements =
            (cfg.engine == crate::Engine::Postgres).then(|| Arc::new(Placements::new(cfg.clone(), password.clone())));
        let mut store = Self::build(cfg, password, None)?;
        store.placements = placements;
        Ok(store)
    }

    /// The store of a dedicated database, whose connections count against `limit`.
    pub(crate) fn dedicated(
        cfg: DbConfig,
        password: PasswordSource,
        limit: (Arc<Limiter>, uuid::Uuid),
    ) -> Result<Self> {
        let store = Self::build(cfg, password, Some(limit.clone()))?;
        limit.0.register(limit.1, store.pool.clone());
        Ok(store)
    }

    fn build(cfg: DbConfig, password: PasswordSource, limit: Option<(Arc<Limiter>, uuid::Uuid)>) -> Result<Self> {
        let max = cfg.pool_max;
        let wait = cfg.connect_timeout;
        let mut connector = Connector::new(cfg, password)?;
        connector.schema_check = limit.is_some();
        let connector = Arc::new(connector);
        let pool = Pool::builder(Manager { connector: connector.clone(), pending: Default::default(), limit })
            .max_size(max)
            .runtime(deadpool::Runtime::Tokio1)
            // The connect step has its own timeout (with a better message); this bounds the wait
            // for a busy connection when more requests than connections arrive at once.
            .wait_timeout(Some(wait))
            .build()
            .map_err(|e| Error::Config { var: "DB_POOL_MAX", problem: e.to_string() })?;
        Ok(Self { pool, connector, placements: None })
    }

    pub fn config(&self) -> &DbConfig {
        &self.connector.cfg
    }

    /// The session settings every connection gets (statement and idle-in-transaction
    /// timeouts), for tools that compare against plain connections.
    pub fn session_settings(&self) -> &str {
        &self.connector.session_sql
    }

    /// This instance's database counters: the control database's and every dedicated
    /// database's it has used (so a request's round trips count wherever its tenant lives).
    pub fn stats(&self) -> StatsSnapshot {
        let mut stats = self.connector.stats.snapshot();
        if let Some(placements) = &self.placements {
            placements.each_database(|d| stats += d.store.connector.stats.snapshot());
        }
        stats
    }

    /// Opens a plain client with this store's login and TLS settings, outside the pool: for
    /// migrations and self-checks.
    pub async fn connect_client(&self) -> Result<Client> {
        self.connector.connect().await
    }

    /// Deletes up to `batch` expired idempotency records; how many it deleted. Run it on a
    /// schedule (the function's cleanup event, the dev server's timer), never per request.
    pub async fn cleanup_idempotency(&self, batch: i32) -> Result<u64> {
        let mut removed = self.cleanup_idempotency_here(batch).await?;
        // Dedicated databases hold their tenants' records: each is cleaned the same way.
        for d in self.dedicated_databases().await? {
            match d.store.cleanup_idempotency_here(batch).await {
                Ok(n) => removed += n,
                Err(e) => {
                    tracing::warn!(database = %d.db.id, error = %e, "cleaning up a dedicated database's idempotency records failed")
                }
            }
        }
        Ok(removed)
    }

    async fn cleanup_idempotency_here(&self, batch: i32) -> Result<u64> {
        let rows = self
            .scoped(crate::UserId(uuid::Uuid::nil()))
            .run(
                crate::Tenants::None,
                crate::scope::Access::Write,
                &[crate::scope::Step { q: crate::Q::IdemCleanup, params: &[&batch] }],
            )
            .await?;
        Ok(rows[0].first().map_or(0, |r| r.col::<i64>(0)) as u64)
    }

    /// On Aurora DSQL, where no foreign key cascades: finishes the purges of deleted tenants
    /// (their rows, then their own row once no transaction that began before the delete can be
    /// running); how many tenants it went through. Run it on the same schedule as
    /// [`Store::cleanup_idempotency`], once per run. Nothing to do on PostgreSQL.
    pub async fn purge_deleted_tenants(&self) -> Result<usize> {
        if self.config().engine != crate::Engine::Dsql {
            return Ok(0);
        }
        let nobody = self.scoped(crate::UserId(uuid::Uuid::nil()));
        let rows = nobody
            .run(
                crate::Tenants::None,
                crate::scope::Access::Read,
                &[crate::scope::Step { q: crate::Q::OrphanTenants, params: &[] }],
            )
            .await?;
        for row in &rows[0] {
            nobody.purge_tenant(crate::TenantId(row.col(0))).await;
        }
        Ok(rows[0].len())
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
