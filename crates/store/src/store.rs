//! [`Store`]: the database as the API sees it: the control database's pool and, on Aurora
//! PostgreSQL, the placements of silo tenants with their dedicated databases' pools. It hands
//! out [`Scoped`] views (one per request), registers callers, and runs the scheduled cleanups
//! on every database.

use std::{fmt, sync::Arc, time::Instant};

use pgconn::Db;
use tokio_postgres::Client;
use uuid::Uuid;

use crate::{
    DbConfig, DisplayName, Email, Error, NewUser, PasswordSource, Q, Result, StatsSnapshot, TenantId, UserId,
    placement::{Database, Dedicated, Placements},
    quota::PlanParams,
    scope::Scoped,
    steps::{Access, Step, Tenants},
};

/// The database, as the API sees it. Cheap to clone; build one per process.
#[derive(Clone)]
pub struct Store {
    /// The control database (or, in a dedicated database's own store, that database).
    pub(crate) db: Db,
    /// The control database's registry of silo tenants and the pools of their dedicated
    /// databases (Aurora PostgreSQL only; `None` in a dedicated database's own store).
    pub(crate) placements: Option<Arc<Placements>>,
    /// The plan catalogue, as the quota statements take it.
    pub(crate) plans: Arc<PlanParams>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("db", &self.db.connector.cfg.describe()).finish_non_exhaustive()
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
        let setup = crate::setup::plan(cfg.engine, None);
        Ok(Self { db: Db::new(cfg, password, setup, None)?, placements, plans: Arc::default() })
    }

    /// This store with the plan catalogue `plans` (the built-in one by default: `PLANS`, read by
    /// the entry points, overrides it).
    pub fn with_plans(mut self, plans: &limits::Plans) -> Self {
        self.plans = Arc::new(PlanParams::new(plans));
        self
    }

    /// The plan catalogue this store enforces.
    pub fn plans(&self) -> &PlanParams {
        &self.plans
    }

    pub fn config(&self) -> &DbConfig {
        self.db.config()
    }

    /// The session settings every connection gets (statement and idle-in-transaction
    /// timeouts), for tools that compare against plain connections.
    pub fn session_settings(&self) -> &str {
        &self.db.connector.session_sql
    }

    /// This instance's database counters: the control database's and every dedicated
    /// database's it has used (so a request's round trips count wherever its tenant lives).
    pub fn stats(&self) -> StatsSnapshot {
        let mut stats = self.db.connector.stats.snapshot();
        if let Some(placements) = &self.placements {
            placements.each_database(|d| stats += d.store.connector.stats.snapshot());
        }
        stats
    }

    /// Opens a plain client with this store's login and TLS settings, outside the pool: for
    /// migrations and self-checks.
    pub async fn connect_client(&self) -> Result<Client> {
        self.db.connector.connect().await
    }

    /// Deletes up to `batch` expired idempotency records; how many it deleted. Run it on a
    /// schedule (the function's cleanup event, the dev server's timer), never per request.
    pub async fn cleanup_idempotency(&self, batch: i32) -> Result<u64> {
        let nobody = self.scoped(UserId(Uuid::nil()));
        let mut removed = cleanup_idempotency_here(nobody, batch).await?;
        // Dedicated databases hold their tenants' records: each is cleaned the same way.
        for d in self.dedicated_databases().await? {
            match cleanup_idempotency_here(nobody.on(&d.store), batch).await {
                Ok(n) => removed += n,
                Err(e) => {
                    tracing::warn!(database = %d.db.id, error = %e, "cleaning up a dedicated database's idempotency records failed")
                }
            }
        }
        Ok(removed)
    }

    /// On Aurora DSQL, where no foreign key cascades: finishes the purges of deleted tenants
    /// (their rows, then their own row once no transaction that began before the delete can be
    /// running); how many tenants it went through. Run it on the same schedule as
    /// [`Store::cleanup_idempotency`], once per run. Nothing to do on PostgreSQL.
    pub async fn purge_deleted_tenants(&self) -> Result<usize> {
        if self.config().engine != crate::Engine::Dsql {
            return Ok(0);
        }
        let nobody = self.scoped(UserId(Uuid::nil()));
        let rows = nobody.run(Tenants::None, Access::Read, &[Step { q: Q::OrphanTenants, params: &[] }]).await?;
        for row in &rows[0] {
            nobody.purge_tenant(TenantId(row.col(0))).await;
        }
        Ok(rows[0].len())
    }

    /// Makes sure a connection is open (opening one if needed).
    pub async fn warm_up(&self) -> Result<()> {
        self.db.checkout().await.map(drop)
    }
}

impl Store {
    /// The database as `user` may see it.
    pub fn scoped(&self, user: UserId) -> Scoped<'_> {
        Scoped {
            db: &self.db,
            placements: self.placements.as_deref(),
            plans: &self.plans,
            user,
            deadline: None,
            idempotency: None,
            lease: None,
        }
    }

    /// The id of the user the identity provider calls `new.subject` (under `new.issuer`),
    /// registering them with the profile in `new` if they are new; `true` when registered now.
    /// Safe to retry: registering twice, or twice at once, gives one user.
    pub async fn register(&self, new: &NewUser, deadline: Option<Instant>) -> Result<(UserId, bool)> {
        let name = new.name.as_ref().map(DisplayName::as_str);
        let email = new.email.as_ref().map(Email::as_str);
        let (issuer, subject, legacy) = (new.issuer.as_str(), new.subject.as_str(), new.claims_legacy);
        // A losing concurrent registration finds the winner's row on its second try.
        for _ in 0..2 {
            // The id the user gets if this transaction creates them.
            let fresh = self.scoped(UserId(Uuid::new_v4())).with_deadline(deadline);
            let rows = fresh
                .run(
                    Tenants::None,
                    Access::Write,
                    &[
                        Step { q: Q::ScopeIdentity, params: &[&issuer, &subject] },
                        Step { q: Q::UserRegister, params: &[&issuer, &subject, &name, &email, &legacy] },
                    ],
                )
                .await?;
            if let Some(row) = rows[1].first() {
                return Ok((UserId(row.col(0)), row.col(1)));
            }
            self.db.connector.stats.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Err(Error::unavailable("registering the caller kept conflicting with another registration"))
    }
}

impl Store {
    /// Every dedicated database in the registry, each with its store (made on first use).
    pub(crate) async fn dedicated_databases(&self) -> Result<Vec<Arc<Dedicated>>> {
        let Some(placements) = self.placements.as_deref() else { return Ok(Vec::new()) };
        let nobody = self.scoped(UserId(Uuid::nil()));
        let rows = nobody.run(Tenants::None, Access::Read, &[Step { q: Q::DatabasesAll, params: &[] }]).await?;
        let mut out = Vec::new();
        for row in &rows[0] {
            out.push(placements.database(Database::from_row(row, 0)?).await?);
        }
        Ok(out)
    }

    /// This instance's cached placement of `tenant`: its dedicated database's id, or `None`
    /// when it is pooled or not known (for tests).
    #[cfg(feature = "test-util")]
    pub fn cached_placement(&self, tenant: TenantId) -> Option<Uuid> {
        self.placements.as_ref()?.cached_database(tenant)
    }

    /// Open connections to dedicated databases in this instance (for tests).
    #[cfg(feature = "test-util")]
    pub fn dedicated_connections(&self) -> usize {
        let mut open = 0;
        if let Some(p) = &self.placements {
            p.each_database(|d| open += d.store.pool.status().size);
        }
        open
    }
}

/// Deletes up to `batch` expired idempotency records in `nobody`'s database.
async fn cleanup_idempotency_here(nobody: Scoped<'_>, batch: i32) -> Result<u64> {
    let rows = nobody.run(Tenants::None, Access::Write, &[Step { q: Q::IdemCleanup, params: &[&batch] }]).await?;
    Ok(rows[0].first().map_or(0, |r| r.col::<i64>(0)) as u64)
}
