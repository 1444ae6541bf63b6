//! A throwaway PostgreSQL for tests.
//!
//! `TEST_DATABASE_URL` (a superuser URL whose user is not `postgres`, e.g.
//! `postgres://rdsadmin:pw@127.0.0.1:5432/postgres`) points the tests at an existing server.
//! Without it, the first test of a process starts a private cluster in a temporary directory:
//! `initdb` + `postgres` listening on 127.0.0.1 on a free port. PostgreSQL refuses to run as
//! root, so as root the cluster runs as the `postgres` OS user (or `nobody`). A watchdog shell
//! stops the server and deletes its directory when the test process exits, however it exits.
//!
//! **Shaped like Aurora.** Aurora's master user is not a superuser: it has CREATEROLE and
//! CREATEDB and is a member of `rds_superuser`, while the cluster's one superuser, `rdsadmin`,
//! belongs to AWS ([Aurora's master user](https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/UsingWithRDS.MasterAccounts.html)).
//! The test clusters have the same two: [`Server::superuser`] (`rdsadmin`) is what the tests
//! inspect and tamper with, as AWS alone could; [`Server::master`] (`postgres`, as our Terraform
//! names it) is who creates the databases and runs the role bootstrap and every migration,
//! exactly as the deployment does. A statement that needs a true superuser therefore fails here
//! as it fails on Aurora.
//!
//! Each test gets its own database, cloned from a template that has the roles and migrations
//! applied once (serialised across processes with an advisory lock).

use std::{
    fs,
    path::PathBuf,
    sync::OnceLock,
    time::{Duration, Instant},
};

pub use crate::cluster::{INSTALL_HINT, find_pg_bin};

use store::{Auth, DbConfig, Secret};
use tokio_postgres::{Client, NoTls};

/// The password the tests give the runtime role `app_runtime`.
pub const RUNTIME_PASSWORD: &str = "runtime-test-password";

/// The Aurora-shaped administrator of the test clusters: Aurora's master user, as our Terraform
/// names it (`master_username`). Not a superuser.
pub const MASTER_USER: &str = "postgres";

/// The superuser of the clusters the tests start: AWS's own `rdsadmin` on Aurora.
pub(crate) const SUPERUSER: &str = "rdsadmin";

/// A running server, a superuser login to it, and its Aurora-shaped administrator.
#[derive(Debug, Clone)]
pub struct Server {
    pub host: String,
    pub port: u16,
    /// The true superuser (`rdsadmin`): for the tests' own setup and checks only; nothing the
    /// deployment runs logs in as it.
    pub superuser: String,
    pub password: String,
    /// The administrator shaped like Aurora's master user ([`MASTER_USER`]): CREATEROLE,
    /// CREATEDB, a member of `rds_superuser`, not a superuser.
    pub master: String,
    pub master_password: String,
    /// Directory of the server's Unix socket when we started it (trust authentication there).
    pub socket_dir: Option<PathBuf>,
    /// The data directory when we started it.
    pub data_dir: Option<PathBuf>,
}

impl Server {
    /// Restarts the server this process started (fast shutdown, then start), and waits until
    /// it accepts connections again. Every test of the process sees the restart.
    pub fn restart(&self) {
        let data = self.data_dir.as_ref().expect("only a server the tests started can be restarted");
        let base = data.parent().unwrap();
        fs::write(base.join("restart"), b"").unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while base.join("restart").exists() {
            assert!(Instant::now() < deadline, "the server did not restart");
            std::thread::sleep(Duration::from_millis(20));
        }
        while std::net::TcpStream::connect((self.host.as_str(), self.port)).is_err() {
            assert!(Instant::now() < deadline, "the server did not come back");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A superuser URL of `db` (the tests' own inspection; bypasses row-level security).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{}:{}@{}:{}/{}", self.superuser, self.password, self.host, self.port, db)
    }

    /// A URL of `db` for the Aurora-shaped administrator, who runs what the deployment runs as
    /// the master user: creating databases, the role bootstrap, migrations.
    pub fn master_url(&self, db: &str) -> String {
        format!("postgres://{}:{}@{}:{}/{}", self.master, self.master_password, self.host, self.port, db)
    }
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// The server of this test process, started on first use.
pub fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => from_url(&url),
        _ => crate::cluster::start_cluster().unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}")),
    })
}

static SECOND: OnceLock<Server> = OnceLock::new();

/// A second throwaway PostgreSQL cluster of this test process, started on first use: where
/// tests put dedicated databases (silo tenants).
pub fn second_server() -> &'static Server {
    SECOND.get_or_init(|| {
        crate::cluster::start_cluster().unwrap_or_else(|e| panic!("cannot start a second throwaway PostgreSQL: {e}"))
    })
}

fn from_url(url: &str) -> Server {
    let cfg = DbConfig::from_url(url).expect("TEST_DATABASE_URL must be a postgres:// URL");
    let password = match cfg.auth {
        Auth::Password(Some(p)) => p.expose().to_string(),
        _ => String::new(),
    };
    assert_ne!(
        cfg.user, MASTER_USER,
        "TEST_DATABASE_URL: the tests make {MASTER_USER} a non-superuser; name another superuser"
    );
    let server = Server {
        host: cfg.host,
        port: cfg.port,
        superuser: cfg.user,
        password,
        master: MASTER_USER.into(),
        master_password: crate::aurora::EXTERNAL_MASTER_PASSWORD.into(),
        socket_dir: None,
        data_dir: None,
    };
    crate::aurora::make_roles(&server)
}

/// Connects with tokio-postgres, retrying while the server finishes starting up; the caller
/// drives the connection.
pub(crate) async fn connect_raw(
    url: &str,
) -> (Client, tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio_postgres::connect(url, NoTls).await {
            Ok(pair) => return pair,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(e) => panic!("cannot connect to the test database: {e}"),
        }
    }
}

/// Connects with tokio-postgres, retrying while the server finishes starting up.
pub async fn connect(url: &str) -> Client {
    let (client, conn) = connect_raw(url).await;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// The engine whose schema and statements the tests run: `TEST_DB_ENGINE=dsql` runs the
/// suites against the Aurora DSQL schema (`migrations/dsql/`) and statements on the local
/// server; PostgreSQL otherwise.
pub fn engine() -> store::Engine {
    match std::env::var("TEST_DB_ENGINE").as_deref() {
        Ok("dsql") => store::Engine::Dsql,
        Ok("" | "postgres") | Err(_) => store::Engine::Postgres,
        Ok(other) => panic!("TEST_DB_ENGINE must be postgres or dsql, not {other:?}"),
    }
}

/// The template database's name for `engine`: changes with the migrations, so a long-lived
/// server given by `TEST_DATABASE_URL` never hands out a stale schema.
fn template_name(engine: store::Engine) -> String {
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut h, engine.name().as_bytes());
    for m in store::migrate::migrations(engine) {
        sha2::Digest::update(&mut h, m.sql.as_bytes());
    }
    sha2::Digest::update(&mut h, store::migrate::BOOTSTRAP_ROLES_SQL.as_bytes());
    format!("tpl_{}", &hex::encode(sha2::Digest::finalize(h))[..12])
}

/// A database of its own for one test.
#[derive(Debug, Clone)]
pub struct TestDb {
    pub server: Server,
    pub name: String,
    /// Whose schema it carries: what [`TestDb::runtime_config`] logs in with.
    pub engine: store::Engine,
}

impl TestDb {
    /// A superuser URL of this database (bypasses RLS: for setting up and checking).
    pub fn admin_url(&self) -> String {
        self.server.url(&self.name)
    }

    /// A superuser client of this database.
    pub async fn admin(&self) -> Client {
        connect(&self.admin_url()).await
    }

    /// A URL of this database for the Aurora-shaped administrator (see [`Server::master`]).
    pub fn master_url(&self) -> String {
        self.server.master_url(&self.name)
    }

    /// A client of this database as the Aurora-shaped administrator, who runs what the
    /// deployment runs as the master user (no superuser; row-level security applies).
    pub async fn master(&self) -> Client {
        connect(&self.master_url()).await
    }

    /// What the API uses: the runtime role, by password over TCP.
    pub fn runtime_config(&self) -> DbConfig {
        let mut cfg = DbConfig::new(
            self.server.host.clone(),
            self.server.port,
            self.name.clone(),
            "app_runtime",
            Auth::Password(Some(Secret::new(RUNTIME_PASSWORD))),
        );
        cfg.pool_max = 1;
        cfg.engine = self.engine;
        cfg
    }

    /// A store that logs in as the runtime role (not connected yet).
    pub fn runtime_store(&self) -> store::Store {
        let cfg = self.runtime_config();
        let password = store::PasswordSource::fixed(&cfg).expect("a password config");
        store::Store::new(cfg, password).expect("a valid config")
    }

    /// A runtime-role URL of this database.
    pub fn runtime_url(&self) -> String {
        format!("postgres://app_runtime:{RUNTIME_PASSWORD}@{}:{}/{}", self.server.host, self.server.port, self.name)
    }
}

/// A fresh, empty database (no schema) on a server where the roles exist, with the roles'
/// per-database grants applied as an administrator would (`migrate --bootstrap-roles`).
pub async fn empty_db() -> TestDb {
    let db = db().await;
    let master = connect(&db.server.master_url("postgres")).await;
    let name = format!("e_{}", uuid::Uuid::new_v4().simple());
    master.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
    let empty = TestDb { server: db.server.clone(), name, engine: db.engine };
    store::migrate::bootstrap_roles(&empty.master().await, false).await.expect("bootstrap roles");
    empty
}

/// A fresh, migrated database for the engine of the tests ([`engine`]).
pub async fn db() -> TestDb {
    db_for(engine()).await
}

/// A fresh database migrated with `engine`'s schema, whatever `TEST_DB_ENGINE` says: for a
/// process that runs both engines side by side (the benchmark).
pub async fn db_for(engine: store::Engine) -> TestDb {
    db_on(server(), engine).await
}

/// A fresh database migrated with `engine`'s schema on `server`.
pub async fn db_on(server: &Server, engine: store::Engine) -> TestDb {
    let server = server.clone();
    let template = template_name(engine);
    // As the Aurora-shaped administrator, who creates databases and runs the bootstrap and the
    // migrations on Aurora.
    let admin = connect(&server.master_url("postgres")).await;
    admin.execute("SELECT pg_advisory_lock(8675309)", &[]).await.unwrap();
    let ready: bool = admin
        .query_opt("SELECT datistemplate FROM pg_database WHERE datname = $1", &[&template])
        .await
        .unwrap()
        .map(|r| r.get(0))
        .unwrap_or(false);
    if !ready {
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {template}")).await.unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {template}")).await.unwrap();
        {
            let tpl = connect(&server.master_url(&template)).await;
            store::migrate::bootstrap_roles(&tpl, false).await.expect("bootstrap roles");
            store::migrate::run_for(&tpl, engine).await.expect("migrations");
            tpl.batch_execute(&format!("ALTER ROLE app_runtime PASSWORD '{RUNTIME_PASSWORD}'")).await.unwrap();
        }
        // Its connection must be gone before the template can be cloned.
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&template],
            )
            .await
            .unwrap();
        admin.batch_execute(&format!("ALTER DATABASE {template} IS_TEMPLATE true")).await.unwrap();
    }
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let created = admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}")).await;
    admin.execute("SELECT pg_advisory_unlock(8675309)", &[]).await.unwrap();
    created.unwrap();
    TestDb { server, name, engine }
}
