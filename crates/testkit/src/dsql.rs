//! A local Aurora DSQL for tests: the IAM stand-in in DSQL mode (its rules and limits) in front
//! of a test database that carries the emulation of DSQL's `sys` schema.

use std::sync::Arc;

use iam_standin::{Standin, dsql::sys::SYS_SQL};
use store::{Auth, Engine};
use tokio_postgres::Client;

use crate::{
    iam::{REGION, config_for, token_cache, tokens},
    server::TestDb,
};

/// Installs the emulation of DSQL's `sys` schema in `db`, as the cluster's superuser (on DSQL
/// the schema is AWS's). With `key_checks`, the key-size check of every index already built.
pub async fn install_sys(db: &TestDb, key_checks: bool) {
    let (superuser, conn) = crate::server::connect_raw(&db.admin_url()).await;
    let conn = tokio::spawn(conn);
    superuser.batch_execute(SYS_SQL).await.expect("installing DSQL's sys emulation");
    if key_checks {
        let limit = iam_standin::dsql::sys::INDEX_KEY_LIMIT as i32;
        superuser.execute("SELECT sys.__check_index_keys($1)", &[&limit]).await.expect("index key checks");
    }
    // Closed before returning: a template database must have no session left.
    drop(superuser);
    let _ = conn.await;
}

/// A client of `db` through `standin` as `user`, with a DSQL token: `DbConnectAdmin` for
/// `admin`, `DbConnect` for any other role, as on DSQL.
pub async fn client(db: &TestDb, standin: &Standin, user: &str) -> Client {
    try_client(db, standin, user).await.expect("a DSQL login through the stand-in")
}

/// [`client`], or why the login failed.
pub async fn try_client(db: &TestDb, standin: &Standin, user: &str) -> Result<Client, store::Error> {
    let mut cfg = config_for(db, standin, Engine::Dsql);
    cfg.user = user.to_string();
    cfg.auth = Auth::Dsql { region: REGION.into(), admin: user == "admin" };
    let cache = token_cache(Arc::new(db_auth::SystemClock));
    let store = store::Store::new(cfg.clone(), tokens(&cfg, cache)).expect("a DSQL config");
    store.connect_client().await
}

/// How many of DSQL's `sys.iam_pg_role_mappings` map IAM role `arn` to database role `role`.
pub async fn role_mappings(c: &Client, role: &str, arn: &str) -> i64 {
    c.query_one("SELECT count(*) FROM sys.iam_pg_role_mappings WHERE pg_role_name = $1 AND arn = $2", &[&role, &arn])
        .await
        .expect("sys.iam_pg_role_mappings")
        .get(0)
}
