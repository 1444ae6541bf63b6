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
    net::TcpListener,
    os::unix::{fs::PermissionsExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
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
const SUPERUSER: &str = "rdsadmin";

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

/// The Aurora-shaped roles (`scripts/local-aurora-roles.sql`), made by a test cluster's
/// superuser, and the master user's password. Safe to run again and from several processes at
/// once (the advisory lock).
async fn make_aurora_roles(superuser: &Client, password: &str) -> Result<(), tokio_postgres::Error> {
    superuser.execute("SELECT pg_advisory_lock(8675310)", &[]).await?;
    let made = async {
        superuser.batch_execute(LOCAL_AURORA_ROLES_SQL).await?;
        superuser.batch_execute(&format!("ALTER ROLE {MASTER_USER} PASSWORD '{password}'")).await
    }
    .await;
    superuser.execute("SELECT pg_advisory_unlock(8675310)", &[]).await?;
    made
}

/// The roles of an Aurora cluster, for a local one.
const LOCAL_AURORA_ROLES_SQL: &str = include_str!("../../../scripts/local-aurora-roles.sql");

/// The master user's password on a server given by `TEST_DATABASE_URL` (ours get a random one).
const EXTERNAL_MASTER_PASSWORD: &str = "master-test-password";

static SERVER: OnceLock<Server> = OnceLock::new();

/// The server of this test process, started on first use.
pub fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => from_url(&url),
        _ => start_cluster().unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}")),
    })
}

static SECOND: OnceLock<Server> = OnceLock::new();

/// A second throwaway PostgreSQL cluster of this test process, started on first use: where
/// tests put dedicated databases (silo tenants).
pub fn second_server() -> &'static Server {
    SECOND.get_or_init(|| start_cluster().unwrap_or_else(|e| panic!("cannot start a second throwaway PostgreSQL: {e}")))
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
        master_password: EXTERNAL_MASTER_PASSWORD.into(),
        socket_dir: None,
        data_dir: None,
    };
    with_superuser(&server)
}

/// Makes the Aurora-shaped roles on `server` (on a runtime of its own: this runs once, from
/// whichever thread first asks for the server).
fn with_superuser(server: &Server) -> Server {
    let url = server.url("postgres");
    let password = server.master_password.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        rt.block_on(async {
            let (client, conn) = connect_raw(&url).await;
            let conn = tokio::spawn(conn);
            make_aurora_roles(&client, &password).await.expect("making the Aurora-shaped roles");
            drop(client);
            let _ = conn.await;
        })
    })
    .join()
    .expect("making the Aurora-shaped roles");
    server.clone()
}

/// Finds a PostgreSQL server program: on PATH, in Debian's versioned directories, or Homebrew's.
pub fn find_pg_bin(program: &str) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(program)).collect())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin").join(program)).collect())
        .unwrap_or_default();
    debian.sort_by_key(|p| std::cmp::Reverse(version_of(p)));
    candidates.extend(debian);
    for brew in [
        "/opt/homebrew/opt/postgresql@16/bin",
        "/usr/local/opt/postgresql@16/bin",
        "/opt/homebrew/bin",
        "/usr/local/bin",
    ] {
        candidates.push(Path::new(brew).join(program));
    }
    candidates.into_iter().find(|p| p.is_file())
}

fn version_of(bin: &Path) -> u32 {
    bin.ancestors()
        .nth(2)
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

pub const INSTALL_HINT: &str = "PostgreSQL server programs (initdb, postgres) were not found. Install them: \
Debian/Ubuntu `sudo apt-get install -y postgresql`, macOS `brew install postgresql@16`; \
or set TEST_DATABASE_URL to a superuser URL of a server you already have.";

/// The unprivileged account to run the server as when we are root: `postgres`, else `nobody`.
fn unprivileged_user() -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let entry = |name: &str| {
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 3 && f[0] == name).then(|| (f[2].parse().ok(), f[3].parse().ok()))
        })
    };
    ["postgres", "nobody"].iter().find_map(|n| match entry(n) {
        Some((Some(u), Some(g))) => Some((u, g)),
        _ => None,
    })
}

fn running_as_root() -> bool {
    // The owner of /proc/self is the process's effective user.
    fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn start_cluster() -> Result<Server, String> {
    let initdb = find_pg_bin("initdb").ok_or(INSTALL_HINT)?;
    let postgres = find_pg_bin("postgres").ok_or(INSTALL_HINT)?;
    let as_user = if running_as_root() {
        Some(unprivileged_user().ok_or("running as root and no unprivileged user (postgres or nobody) exists")?)
    } else {
        None
    };

    let base = tempfile::Builder::new().prefix("tenant-api-pg-").tempdir().map_err(|e| e.to_string())?.keep();
    let data = base.join("data");
    let sock = base.join("sock");
    fs::create_dir_all(&sock).map_err(|e| e.to_string())?;
    let password = uuid::Uuid::new_v4().simple().to_string();
    let pwfile = base.join("pw");
    fs::write(&pwfile, &password).map_err(|e| e.to_string())?;
    fs::set_permissions(&base, fs::Permissions::from_mode(0o700)).map_err(|e| e.to_string())?;
    if let Some((uid, gid)) = as_user {
        for p in [&base, &sock, &pwfile] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| e.to_string())?;
        }
    }
    let run_as = |cmd: &mut Command| {
        if let Some((uid, gid)) = as_user {
            cmd.uid(uid).gid(gid);
        }
    };

    let mut init = Command::new(&initdb);
    init.args(["-D"]).arg(&data).args([
        "-U",
        SUPERUSER,
        "-E",
        "UTF8",
        "--locale=C",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
    ]);
    init.arg(format!("--pwfile={}", pwfile.display())).stdout(Stdio::null()).stderr(Stdio::piped());
    run_as(&mut init);
    let out = init.output().map_err(|e| format!("running {}: {e}", initdb.display()))?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let _ = fs::remove_file(&pwfile);

    let port = free_port().map_err(|e| e.to_string())?;
    // The watchdog: runs the server, and stops it and removes the directory once this test
    // process is gone (checked every 200 ms), so nothing outlives the test run.
    // A file `restart` in the directory asks for a restart: the server is stopped (fast) and
    // started again, as a real PostgreSQL restart looks to clients (see `Server::restart`).
    let script = r#"
        start() {
          "$PG" -D "$DATA" -p "$PORT" -k "$SOCK" -c listen_addresses=127.0.0.1 -c fsync=off \
                -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
                -c shared_buffers=32MB -c log_min_messages=warning >>"$BASE/log" 2>&1 &
          pg=$!
        }
        alive() { [ -d "/proc/$WATCH" ] || kill -0 "$WATCH" 2>/dev/null; }
        start
        while alive; do
          if [ -e "$BASE/restart" ]; then
            kill -INT "$pg" 2>/dev/null; wait "$pg" 2>/dev/null
            rm -f "$BASE/restart"
            start
          elif ! kill -0 "$pg" 2>/dev/null; then
            break
          fi
          sleep 0.05
        done
        kill -INT "$pg" 2>/dev/null
        wait "$pg" 2>/dev/null
        rm -rf "$BASE"
    "#;
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script);
    cmd.env("PG", &postgres).env("DATA", &data).env("PORT", port.to_string()).env("SOCK", &sock).env("BASE", &base);
    cmd.env("WATCH", std::process::id().to_string());
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    // Its own process group: Ctrl-C in a terminal reaches the tests, and the watchdog still
    // gets to clean up after them.
    cmd.process_group(0);
    run_as(&mut cmd);
    cmd.spawn().map_err(|e| format!("starting postgres: {e}"))?;

    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = fs::read_to_string(base.join("log")).unwrap_or_default();
            return Err(format!("postgres did not start listening on port {port}: {log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let server = Server {
        host: "127.0.0.1".into(),
        port,
        superuser: SUPERUSER.into(),
        password,
        master: MASTER_USER.into(),
        master_password: uuid::Uuid::new_v4().simple().to_string(),
        socket_dir: Some(sock),
        data_dir: Some(data),
    };
    Ok(with_superuser(&server))
}

/// Connects with tokio-postgres, retrying while the server finishes starting up; the caller
/// drives the connection.
async fn connect_raw(
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

/// Makes the login role `admin` on `db`'s server, as Aurora DSQL's built-in administrator: no
/// PostgreSQL superuser (made by the Aurora-shaped administrator), and able to act as the owner
/// of the local DSQL schema, which belongs to `app_owner` here (on DSQL, `admin` owns what it
/// creates). Safe to call from tests running at once.
pub async fn dsql_admin(db: &TestDb) {
    let master = db.master().await;
    master.execute("SELECT pg_advisory_lock(8675311)", &[]).await.unwrap();
    let made = master
        .batch_execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'admin') THEN \
             CREATE ROLE admin LOGIN; END IF; END $$; GRANT app_owner TO admin",
        )
        .await;
    master.execute("SELECT pg_advisory_unlock(8675311)", &[]).await.unwrap();
    made.expect("making DSQL's admin role");
}
