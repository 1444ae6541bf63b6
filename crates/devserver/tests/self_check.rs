//! The start-up self-check: the dev server refuses to start when the role it logs in as could
//! get around row-level security, and says why.

use std::process::Command;

fn serve(database_url: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_devserver"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("DEV_JWT_SECRET", "a-dev-secret-that-is-32-bytes-long!!")
        .env("LOG_LEVEL", "warn")
        .output()
        .unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_start_as_a_role_that_bypasses_rls() {
    let db = testkit::pg::db().await;
    // As the superuser.
    let (ok, out) = tokio::task::spawn_blocking({
        let url = db.admin_url();
        move || serve(&url)
    })
    .await
    .unwrap();
    assert!(!ok, "{out}");
    assert!(out.contains("superuser"), "says why: {out}");
    assert!(!out.contains(&db.server.password), "no password in the output");

    // As the table owner.
    let admin = db.admin().await;
    admin.batch_execute("ALTER ROLE app_owner PASSWORD 'owner-test-password'").await.unwrap();
    let url = format!("postgres://app_owner:owner-test-password@{}:{}/{}", db.server.host, db.server.port, db.name);
    let (ok, out) = tokio::task::spawn_blocking(move || serve(&url)).await.unwrap();
    assert!(!ok, "{out}");
    assert!(out.contains("owns tables"), "says why: {out}");
    assert!(!out.contains("owner-test-password"));
}
