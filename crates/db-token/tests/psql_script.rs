//! `scripts/psql.sh` runs a query through the IAM-auth stand-in: token from `db-token`, TLS
//! verified (sslmode=verify-full) against the stand-in's CA, and the token never printed, not
//! even under `bash -x`.

use std::{path::Path, process::Command, sync::Arc};

use db_auth::SystemClock;
use testkit::iam;

// Multi-threaded: the script runs as a blocking child process while the stand-in serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_script_queries_through_the_standin() {
    if testkit::pg::find_pg_bin("psql").is_none() && Command::new("psql").arg("--version").output().is_err() {
        panic!("psql is required for this test: {}", testkit::pg::INSTALL_HINT);
    }
    let db = testkit::pg::db().await;
    let standin = iam::standin(&db, Arc::new(SystemClock)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = iam::ca_file(&standin);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");

    let run = |tracing: bool| {
        let mut cmd = Command::new("bash");
        if tracing {
            cmd.arg("-x");
        }
        cmd.arg(root.join("scripts/psql.sh"))
            .args(["-tA", "-c", "select current_user || ' ' || current_database() || ' ' || count(*) from todos"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("HOME", dir.path())
            .envs(iam::db_env(&db, &standin, &ca, "app_runtime"))
            .envs(iam::aws_env())
            .env("PSQL_TOKEN_TOOL", "db-token")
            .env("DB_TOKEN_BIN", env!("CARGO_BIN_EXE_db-token"))
            .output()
            .unwrap()
    };

    let out = run(false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql.sh failed: {stderr}");
    assert_eq!(stdout.trim(), format!("app_runtime {} 0", db.name));
    assert_eq!(standin.accepted_logins(), 1, "psql logged in through the stand-in with a valid token");

    let traced = run(true);
    assert!(traced.status.success());
    let all = format!("{}{}", String::from_utf8_lossy(&traced.stdout), String::from_utf8_lossy(&traced.stderr));
    assert!(all.contains("sslmode=verify-full"), "the trace shows the connection, so it was on");
    assert!(!all.contains("X-Amz-Signature") && !all.contains("X-Amz-Credential"), "no token in the trace: {all}");
    assert_eq!(standin.accepted_logins(), 2);
}

/// On Aurora DSQL: a `DbConnect` token for `app_runtime`, checked by the stand-in in DSQL mode,
/// against the DSQL schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_script_queries_dsql_through_the_standin() {
    let db = testkit::pg::db_for(store::Engine::Dsql).await;
    let standin = iam::standin_for(&db, Arc::new(SystemClock), store::Engine::Dsql).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = iam::ca_file(&standin);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg(root.join("scripts/psql.sh"))
        .args(["-tA", "-c", "select current_user || ' ' || count(*) from todos"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .env("HOME", dir.path())
        .envs(iam::db_env(&db, &standin, &ca, "app_runtime"))
        .envs(iam::aws_env())
        .env("DB_ENGINE", "dsql")
        .env("DB_AUTH", "dsql")
        .env("PSQL_TOKEN_TOOL", "db-token")
        .env("DB_TOKEN_BIN", env!("CARGO_BIN_EXE_db-token"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "psql.sh failed: {stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "app_runtime 0");
    assert_eq!(standin.accepted_logins(), 1, "a DSQL token the stand-in accepted");
    assert_eq!(standin.rejected_logins(), 0);
}
