//! The test servers' basic types: a server and its users (shaped like Aurora's, see
//! [`crate::pg`]), a test's own database, and connections to them. Below every other module of
//! the test kit.

use std::{
    fs,
    path::PathBuf,
    time::{Duration, Instant},
};

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
