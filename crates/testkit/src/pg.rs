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

use std::{sync::OnceLock, time::Duration};

pub use crate::cluster::{INSTALL_HINT, find_pg_bin};

use crate::server::SUPERUSER;
pub use crate::server::{MASTER_USER, RUNTIME_PASSWORD, Server, TestDb, connect, engine};
use store::{Auth, DbConfig};

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

/// server given by `TEST_DATABASE_URL` never hands out a stale schema.
fn template_name(engine: store::Engine) -> String {
    let mut h = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut h, engine.name().as_bytes());
    for m in store::migrate::migrations(engine) {
        sha2::Digest::update(&mut h, m.sql.as_bytes());
    }
    sha2::Digest::update(&mut h, store::migrate::BOOTSTRAP_ROLES_SQL.as_bytes());
    if engine == store::Engine::Dsql {
        sha2::Digest::update(&mut h, iam_standin::dsql::sys::SYS_SQL.as_bytes());
    }
    format!("tpl_{}", &hex::encode(sha2::Digest::finalize(h))[..12])
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
        if engine == store::Engine::Dsql {
            // DSQL's `sys` objects, and the key-size check of every index (migrated here without
            // the stand-in, so the indexes were built before the emulation was there).
            crate::dsql::install_sys(&TestDb { server: server.clone(), name: template.clone(), engine }, true).await;
        }
        // Its connections must be gone before the template can be cloned. The superuser's (the
        // DSQL emulation's installer) has closed already, and the administrator may not end it:
        // a session still ending delays the clone below.
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid() AND usename <> $2",
                &[&template, &SUPERUSER],
            )
            .await
            .unwrap();
        admin.batch_execute(&format!("ALTER DATABASE {template} IS_TEMPLATE true")).await.unwrap();
    }
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    // A session of the template's that is still ending (55006) delays the clone, briefly.
    let mut attempts = 0;
    let created = loop {
        let created = admin.batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}")).await;
        match created {
            Err(e) if e.code().is_some_and(|c| c.code() == "55006") && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            other => break other,
        }
    };
    admin.execute("SELECT pg_advisory_unlock(8675309)", &[]).await.unwrap();
    created.unwrap();
    TestDb { server, name, engine }
}
