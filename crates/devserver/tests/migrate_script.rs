//! `scripts/migrate.sh` applies the migrations through the IAM-auth stand-in, as the owner role
//! with a signed token over verified TLS; a second run changes nothing.

use std::{path::Path, process::Command, sync::Arc};

use iam_standin::Standin;

use db_auth::SystemClock;
use testkit::{iam, pg::TestDb};

fn migrate(db: &TestDb, standin: &Standin, ca: &iam::CaFile, args: &[&str]) -> (bool, String) {
    migrate_with(db, standin, ca, args, &[])
}

/// [`migrate`] with `extra` settings over the IAM ones.
fn migrate_with(
    db: &TestDb,
    standin: &Standin,
    ca: &iam::CaFile,
    args: &[&str],
    extra: &[(&str, &str)],
) -> (bool, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/migrate.sh"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", home.path())
        .env("DEVSERVER_BIN", env!("CARGO_BIN_EXE_devserver"))
        .envs(iam::db_env(db, standin, ca, "app_owner"))
        .envs(iam::aws_env())
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_script_applies_through_the_standin_and_is_idempotent() {
    let db = testkit::pg::empty_db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let ca = iam::ca_file(&standin);

    let (ok, out) = migrate(&db, &standin, &ca, &[]);
    assert!(ok, "first run failed: {out}");
    assert!(out.contains("applied 0001_tenancy.sql"), "{out}");
    assert_eq!(standin.accepted_logins(), 1);
    assert_eq!(standin.last_user().as_deref(), Some("app_owner"), "migrations run as the owner role");
    assert!(!out.contains("X-Amz-Signature"), "no token in the output");

    let admin = db.admin().await;
    let state = |c: tokio_postgres::Row| (c.get::<_, i64>(0), c.get::<_, String>(1));
    let q = "SELECT count(*), max(applied_at)::text FROM schema_migrations";
    let before = state(admin.query_one(q, &[]).await.unwrap());
    assert_eq!(before.0 as usize, store::migrate::MIGRATIONS.len());
    let owner: String =
        admin.query_one("SELECT tableowner::text FROM pg_tables WHERE tablename = 'todos'", &[]).await.unwrap().get(0);
    assert_eq!(owner, "app_owner");

    let (ok, out) = migrate(&db, &standin, &ca, &[]);
    assert!(ok, "second run failed: {out}");
    assert!(out.contains("up to date, nothing to apply"), "{out}");
    assert_eq!(state(admin.query_one(q, &[]).await.unwrap()), before, "the second run changed nothing");
    assert_eq!(standin.accepted_logins(), 2);

    let (ok, out) = migrate(&db, &standin, &ca, &["--drop-everything"]);
    assert!(!ok && out.contains("unknown option"), "{out}");
}

/// On Aurora DSQL: `admin` (a `DbConnectAdmin` token, checked by the stand-in in DSQL mode)
/// applies `migrations/dsql`; a second run has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_script_applies_the_dsql_schema_as_admin() {
    let db = testkit::pg::empty_db().await;
    // DSQL's built-in administrator, which is no PostgreSQL superuser: played by a login role
    // that the Aurora-shaped administrator makes, and that may act as the owner of the local
    // schema (on DSQL, admin owns what it creates).
    testkit::aurora::dsql_admin(&db).await;
    // DSQL's `sys` objects, as a DSQL cluster has them: the migrator takes DSQL's path
    // (`CREATE INDEX ASYNC`, jobs), which the stand-in requires.
    testkit::dsql::install_sys(&db, false).await;
    let admin = db.admin().await;
    let standin = iam::standin_for(&db, Arc::new(SystemClock), store::Engine::Dsql).await;
    let ca = iam::ca_file(&standin);
    let dsql = [("DB_ENGINE", "dsql"), ("DB_NAME", db.name.as_str()), ("DB_USER", "admin"), ("DB_AUTH", "dsql-admin")];
    let (ok, out) = migrate_with(&db, &standin, &ca, &[], &dsql);
    assert!(ok, "first run failed: {out}");
    assert!(out.contains("applied 0001_tables.sql"), "{out}");
    assert_eq!(standin.last_user().as_deref(), Some("admin"), "DSQL migrations run as admin");
    assert!(!out.contains("X-Amz-Signature"), "no token in the output");
    let n: i64 = admin.query_one("SELECT count(*) FROM schema_migrations", &[]).await.unwrap().get(0);
    assert_eq!(n as usize, store::migrate::DSQL_MIGRATIONS.len());
    let waited: i64 =
        admin.query_one("SELECT count(*) FROM sys.jobs WHERE status = 'completed'", &[]).await.unwrap().get(0);
    assert!(waited > 0, "the index jobs were waited for");
    let (ok, out) = migrate_with(&db, &standin, &ca, &[], &dsql);
    assert!(ok && out.contains("up to date, nothing to apply"), "{out}");
}
