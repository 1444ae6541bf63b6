//! Silo tenants in tests: a control database behind the IAM stand-in, and a dedicated database
//! in a second throwaway cluster behind a stand-in of its own under another host name (its own
//! tokens, verify-full TLS against a trust store that holds both stand-ins' CAs), registered in
//! the control database. Moves run as the owner role of both.

use std::sync::Arc;

use iam_standin::Standin;
use store::{
    DbConfig, NewUser, PageRequest, Store, TenantId, TenantName, TodoId, TodoTitle, UserId,
    placement::{
        Database,
        mover::{self, Direction, Ends, Options, Report},
        registry,
    },
};
use tokio_postgres::Client;
use uuid::Uuid;

use crate::pg::TestDb;

const OWNER_PASSWORD: &str = "owner-test-password";
/// The dedicated cluster's host name (what its stand-in's certificate and tokens name).
pub const SILO_HOST: &str = "silo.standin.internal";

#[allow(missing_debug_implementations)]
pub struct Silo {
    pub control: TestDb,
    pub dedicated: TestDb,
    pub control_standin: Standin,
    pub silo_standin: Standin,
    /// The API's settings: the control database through its stand-in, trusting both CAs.
    pub cfg: DbConfig,
    /// The dedicated database's id in the registry.
    pub db_id: Uuid,
}

/// A client of `db` as the owner role (`app_owner`, given a password for the tests).
pub async fn owner(db: &TestDb) -> Client {
    let admin = db.master().await;
    // Tests running at once on the same cluster (roles are the cluster's) may meet here:
    // PostgreSQL then fails the loser with "tuple concurrently updated"; it only has to try again.
    for attempt in 0.. {
        match admin.batch_execute(&format!("ALTER ROLE app_owner LOGIN PASSWORD '{OWNER_PASSWORD}'")).await {
            Ok(()) => break,
            Err(e) if attempt < 20 && e.code() == Some(&tokio_postgres::error::SqlState::INTERNAL_ERROR) => {
                tokio::time::sleep(std::time::Duration::from_millis(20 + 10 * attempt)).await;
            }
            Err(e) => panic!("giving the owner role a password: {e}"),
        }
    }
    crate::pg::connect(&format!(
        "postgres://app_owner:{OWNER_PASSWORD}@{}:{}/{}",
        db.server.host, db.server.port, db.name
    ))
    .await
}

/// How the control database finds `db` behind `standin`: the runtime role, IAM auth,
/// verify-full TLS.
pub fn database(db: &TestDb, standin: &Standin) -> Database {
    Database {
        id: Uuid::nil(),
        host: SILO_HOST.into(),
        hostaddr: Some(standin.addr().ip()),
        port: standin.addr().port(),
        dbname: db.name.clone(),
        user: "app_runtime".into(),
        auth: "iam".into(),
        tls: "verify-full".into(),
    }
}

impl Silo {
    /// A fresh control database and a fresh dedicated one in the second cluster.
    pub async fn new() -> Self {
        let control = crate::pg::db_for(store::Engine::Postgres).await;
        let dedicated = crate::pg::db_on(crate::pg::second_server(), store::Engine::Postgres).await;
        let clock = Arc::new(db_auth::SystemClock);
        let control_standin = crate::iam::standin_for(&control, clock, store::Engine::Postgres).await;
        let silo_standin = crate::iam::standin_named(&dedicated, SILO_HOST).await;
        let mut cfg = crate::iam::config_for(&control, &control_standin, store::Engine::Postgres);
        // One trust store for both stand-ins' CAs, as one for every cluster's CA on AWS.
        let ca = [control_standin.ca_pem(), silo_standin.ca_pem()].concat().into_bytes();
        cfg.tls = store::TlsMode::VerifyFull(store::CaSource::Pem(ca));
        let control_owner = owner(&control).await;
        let db_id = registry::register(&control_owner, "silo-1", &database(&dedicated, &silo_standin)).await.unwrap();
        registry::install_key(&control_owner, &owner(&dedicated).await, db_id).await.unwrap();
        Self { control, dedicated, control_standin, silo_standin, cfg, db_id }
    }

    /// An API instance: its own pool, placement cache and token cache.
    pub fn instance(&self) -> Store {
        self.instance_with(self.cfg.clone())
    }

    /// [`Silo::instance`] with other settings.
    pub fn instance_with(&self, cfg: DbConfig) -> Store {
        let cache = crate::iam::token_cache(Arc::new(db_auth::SystemClock));
        Store::new(cfg.clone(), crate::iam::tokens(&cfg, cache)).unwrap()
    }

    /// Moves `tenant` between the control database and the dedicated one.
    pub async fn move_to(&self, tenant: TenantId, to: Direction, opts: &Options) -> store::Result<Report> {
        let (control, dedicated) = (owner(&self.control).await, owner(&self.dedicated).await);
        mover::move_tenant(&Ends { control: &control, dedicated: &dedicated, db: self.db_id }, tenant, to, opts).await
    }

    /// The generation of `user`'s membership copy of `tenant` in the dedicated database (0 before
    /// any fence), read as superuser: what a copy grant must be signed for.
    pub async fn generation(&self, tenant: TenantId, user: UserId) -> i64 {
        self.dedicated
            .admin()
            .await
            .query_one(
                "SELECT coalesce(max(generation), 0) FROM member_fences WHERE tenant_id = $1 AND user_id = $2",
                &[&tenant.0, &user.0],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// The ids of `tenant`'s todos in `db`, read as superuser.
    pub async fn todos_in(&self, db: &TestDb, tenant: TenantId) -> Vec<Uuid> {
        let rows = db.admin().await.query("SELECT id FROM todos WHERE tenant_id = $1", &[&tenant.0]).await.unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }
}

/// A registered user of `store`.
pub async fn user(store: &Store, sub: &str) -> UserId {
    let new = NewUser {
        issuer: "https://issuer.test".into(),
        subject: sub.into(),
        name: None,
        email: None,
        claims_legacy: false,
    };
    store.register(&new, None).await.unwrap().0
}

/// A new tenant with `admin` as its admin.
pub async fn tenant(store: &Store, admin: UserId, name: &str) -> TenantId {
    let id = TenantId(Uuid::new_v4());
    store.scoped(admin).create_tenant(id, &TenantName::parse(name).unwrap()).await.unwrap();
    id
}

/// A new todo of `who`'s in `t`.
pub async fn todo(store: &Store, who: UserId, t: TenantId, title: &str) -> store::Result<Uuid> {
    let id = Uuid::new_v4();
    store.scoped(who).create_todo(t, TodoId(id), &TodoTitle::parse(title).unwrap(), false).await.map(|x| x.id.0)
}

/// The first page of up to 200.
pub fn first_page() -> PageRequest {
    PageRequest { limit: store::Limit::parse("200").unwrap(), cursor: None }
}
