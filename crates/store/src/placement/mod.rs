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
mod limit;
pub mod mover;
pub mod registry;
mod requests;

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Instant,
};

pub(crate) use limit::Limiter;
use uuid::Uuid;

use crate::{
    Auth, CaSource, DbConfig, Error, PasswordSource, Result, Store, TenantId, TlsMode,
    rows::DbRow,
    scope::{Access, Scoped, Step, Tenants},
    statements::Q,
};

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
    pub store: Store,
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
    async fn remember(&self, tenant: TenantId, db: Database) -> Result<Arc<Dedicated>> {
        let to = self.database(db).await?;
        let mut cache = self.cache.lock().expect("placement cache lock");
        cache.insert(tenant, Cached { to: to.clone(), at: Instant::now() });
        Ok(to)
    }

    /// The store of `db`, made on first use.
    async fn database(&self, db: Database) -> Result<Arc<Dedicated>> {
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
        let store = Store::dedicated(cfg, password, (self.limiter.clone(), db.id))?;
        let made = Arc::new(Dedicated { db: db.clone(), store });
        self.databases.lock().expect("databases lock").insert(db.id, made.clone());
        Ok(made)
    }
}

impl Placements {
    /// Calls `f` with each dedicated database this instance has a store for (per request, for
    /// the counters: no allocation).
    pub fn each_database(&self, mut f: impl FnMut(&Dedicated)) {
        self.databases.lock().expect("databases lock").values().for_each(|d| f(d));
    }
}

impl Store {
    /// Every dedicated database in the registry, each with its store (made on first use).
    pub(crate) async fn dedicated_databases(&self) -> Result<Vec<Arc<Dedicated>>> {
        let Some(placements) = self.placements.as_deref() else { return Ok(Vec::new()) };
        let nobody = self.scoped(crate::UserId(Uuid::nil()));
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
        let placements = self.placements.as_ref()?;
        let cache = placements.cache.lock().expect("placement cache lock");
        cache.get(&tenant).map(|c| c.to.db.id)
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

impl Scoped<'_> {
    /// Asks the control database where `tenant` lives, and caches the answer.
    pub(crate) async fn resolve(&self, placements: &Placements, tenant: TenantId) -> Result<Option<Arc<Dedicated>>> {
        let plain = Scoped { idempotency: None, ..*self };
        let rows = plain.run(Tenants::None, Access::Read, &[Step { q: Q::PlacementGet, params: &[&tenant.0] }]).await?;
        match rows[0].first() {
            Some(row) => {
                let db = Database::from_row(row, 0)?;
                Ok(Some(placements.remember(tenant, db).await?))
            }
            None => {
                placements.forget(tenant);
                Ok(None)
            }
        }
    }

    /// This view, on a dedicated database's store.
    pub(crate) fn on<'d>(&self, store: &'d Store) -> Scoped<'d>
    where
        Self: 'd,
    {
        Scoped { store, user: self.user, deadline: self.deadline, idempotency: self.idempotency }
    }
}
