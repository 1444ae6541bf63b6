//! Silo tenants: where each tenant's todos live, and the connections to get there.
//!
//! The control database (the one the API is configured with) holds identity (users,
//! memberships, invitations), every tenant's row, and the registry: `databases` and
//! `tenant_placements` (`migrations/0004_placements.sql`). A tenant without a placement is
//! pooled: its todos are in the control database, as before. A placed tenant's todos live only in
//! its dedicated database, which carries the same schema with row-level security on.
//!
//! **Request path.** An instance caches placements (`Placements`); a tenant it knows nothing
//! of is assumed pooled. A tenant's todo transaction ends with `app_fence_check`, so a request
//! that reaches a database its tenant is not served from (a stale cache, a move that just
//! switched) fails there, in that transaction, and is retried where the registry says
//! ([`crate::Error::Moved`] never leaves the store unless that keeps failing). Warm, a request to
//! a dedicated tenant is one round trip, to its database only, like a pooled one.
//!
//! **Memberships.** A dedicated database checks the caller against its own copy of their
//! membership, made from the control database the first time the caller is not found there
//! (three more round trips, once), on a grant the control database signs. A change of a
//! membership of a dedicated tenant first fences the copy in the dedicated database (drops it,
//! gives it a new random generation, blocks new copies), then commits in the control database
//! (whose transaction checks that the tenant lives where this instance thinks), then fences
//! again and lifts the block, before the answer; a copy is made only from a control read that
//! no change has overtaken (the generation it was read at is still current). See
//! `migrations/0006_signed_copies.sql`. So a removed member is refused on their next
//! request, without any cache expiring.
//!
//! **Connections.** Each dedicated database has its own pool (one connection, its own IAM token:
//! the token cache is keyed by host, port and user). An instance keeps at most
//! `DB_PLACEMENT_MAX_CONNECTIONS` of them open, closing the least recently used idle one.

mod copy;
pub mod mover;
mod moving;
pub mod registry;
mod requests;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

use pgconn::{Db, Limiter};
use uuid::Uuid;

use crate::{Auth, CaSource, DbConfig, Error, PasswordSource, Result, TenantId, TlsMode, rows::DbRow};

/// A dedicated database, as the registry describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    pub id: Uuid,
    /// The server's name: what TLS verifies and IAM tokens are signed for.
    pub host: String,
    /// Connect here instead of resolving `host`.
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
    pub dbname: String,
    /// The runtime role there.
    pub user: String,
    /// `iam` (a token for this host, port and user) or `password` (the control database's
    /// password source: local development).
    pub auth: String,
    /// `verify-full` (against the control database's CA source) or `disable`.
    pub tls: String,
}

impl Database {
    /// `login` (the operator's, to the control database) pointed at this database: its owner's
    /// login there, for moves and migrations.
    pub fn login(&self, login: &DbConfig) -> DbConfig {
        let mut cfg = login.clone();
        cfg.host.clone_from(&self.host);
        cfg.hostaddr = self.hostaddr;
        cfg.port = self.port;
        cfg.dbname.clone_from(&self.dbname);
        cfg
    }

    /// From `PlacementGet`'s or `PlacementsMine`'s columns `i..i + 8`.
    pub(crate) fn from_row(row: &DbRow, i: usize) -> Result<Self> {
        let hostaddr: Option<String> = row.col(i + 2);
        let port: i64 = row.col(i + 3);
        Ok(Self {
            id: row.col(i),
            host: row.col(i + 1),
            hostaddr: hostaddr.map(|a| a.parse()).transpose().map_err(|_| Error::unavailable("a bad hostaddr"))?,
            port: u16::try_from(port).map_err(|_| Error::unavailable("a bad port in the registry"))?,
            dbname: row.col(i + 4),
            user: row.col(i + 5),
            auth: row.col(i + 6),
            tls: row.col(i + 7),
        })
    }

    /// The settings of a connection to this database: the control database's, with this
    /// address and login.
    pub fn config(&self, control: &DbConfig) -> Result<DbConfig> {
        let mut cfg = self.login(control);
        cfg.user.clone_from(&self.user);
        cfg.pool_max = 1;
        cfg.tls = match (self.tls.as_str(), &control.tls) {
            ("disable", _) => TlsMode::Disable,
            (_, TlsMode::VerifyFull(ca)) => TlsMode::VerifyFull(ca.clone()),
            (_, TlsMode::Disable) => TlsMode::VerifyFull(CaSource::RdsBundle),
        };
        cfg.auth = match (self.auth.as_str(), &control.auth) {
            ("iam", Auth::Iam { region }) => Auth::Iam { region: region.clone() },
            ("iam", _) => {
                return Err(Error::Config {
                    var: "DB_AUTH",
                    problem: format!("database {} wants IAM auth, which the control database does not use", self.id),
                });
            }
            (_, auth) => auth.clone(),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// A dedicated database and its pool.
pub(crate) struct Dedicated {
    pub db: Database,
    pub store: Db,
}

struct Cached {
    to: Arc<Dedicated>,
    at: Instant,
}

/// An instance's view of the registry: cached placements and the dedicated databases' pools.
pub(crate) struct Placements {
    control: DbConfig,
    password: PasswordSource,
    limiter: Arc<Limiter>,
    cache: Mutex<HashMap<TenantId, Cached>>,
    databases: Mutex<HashMap<Uuid, Arc<Dedicated>>>,
}

impl std::fmt::Debug for Placements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Placements").field("control", &self.control.describe()).finish_non_exhaustive()
    }
}

impl Placements {
    pub fn new(control: DbConfig, password: PasswordSource) -> Self {
        Self {
            limiter: Arc::new(Limiter::new(control.placement_max_connections)),
            control,
            password,
            cache: Mutex::default(),
            databases: Mutex::default(),
        }
    }

    /// Where `tenant` lives as far as this instance knows: `None` for pooled (or unknown).
    pub fn cached(&self, tenant: TenantId) -> Option<Arc<Dedicated>> {
        let cache = self.cache.lock().expect("placement cache lock");
        let entry = cache.get(&tenant)?;
        if entry.at.elapsed() >= self.control.placement_cache_ttl {
            return None;
        }
        self.limiter.touch(entry.to.db.id);
        Some(entry.to.clone())
    }

    /// Forgets what this instance knew of `tenant`'s placement.
    pub fn forget(&self, tenant: TenantId) {
        self.cache.lock().expect("placement cache lock").remove(&tenant);
    }

    /// Remembers that `tenant` lives in `db`: a store for `db` is made on first
    /// use and kept.
    pub(crate) async fn remember(&self, tenant: TenantId, db: Database) -> Result<Arc<Dedicated>> {
        let to = self.database(db).await?;
        let mut cache = self.cache.lock().expect("placement cache lock");
        cache.insert(tenant, Cached { to: to.clone(), at: Instant::now() });
        Ok(to)
    }

    /// The store of `db`, made on first use.
    pub(crate) async fn database(&self, db: Database) -> Result<Arc<Dedicated>> {
        if let Some(known) = self.databases.lock().expect("databases lock").get(&db.id)
            && known.db == db
        {
            return Ok(known.clone());
        }
        let cfg = db.config(&self.control)?;
        let password = match (&self.password, PasswordSource::token_request(&cfg)) {
            (PasswordSource::Token { cache, .. }, Some(request)) => {
                PasswordSource::Token { cache: cache.clone(), request }
            }
            (_, Some(_)) => PasswordSource::for_config(&cfg).await?,
            (fixed, None) => fixed.clone(),
        };
        let setup = crate::setup::plan(cfg.engine, Some(cfg.describe()));
        let store = Db::dedicated(cfg, password, setup, (self.limiter.clone(), db.id))?;
        let made = Arc::new(Dedicated { db: db.clone(), store });
        self.databases.lock().expect("databases lock").insert(db.id, made.clone());
        Ok(made)
    }
}

impl Placements {
    /// The dedicated database this instance has cached for `tenant`, however old (for tests).
    #[cfg(feature = "test-util")]
    pub fn cached_database(&self, tenant: TenantId) -> Option<Uuid> {
        let cache = self.cache.lock().expect("placement cache lock");
        cache.get(&tenant).map(|c| c.to.db.id)
    }

    /// Calls `f` with each dedicated database this instance has a store for (per request, for
    /// the counters: no allocation).
    pub fn each_database(&self, mut f: impl FnMut(&Dedicated)) {
        self.databases.lock().expect("databases lock").values().for_each(|d| f(d));
    }
}
