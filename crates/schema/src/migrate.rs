//! Migrations and the runtime role's self-check.
//!
//! The migrations are the files in `migrations/` at the workspace root, embedded at build time
//! in file-name order. Each runs once, in its own transaction, as the owner role `app_owner`,
//! and is recorded in `schema_migrations` with a checksum: running again is a no-op, and an
//! applied migration that was edited afterwards is an error, not a silent divergence.

use tokio_postgres::Client;

use crate::{Error, Result};

pub use crate::embedded::{DSQL_MIGRATIONS, MIGRATIONS, Migration};
// What migrate_dsql.rs reads as `super::`.
pub(crate) use crate::embedded::{db_message, pending};

#[path = "migrate_dsql.rs"]
mod dsql;
pub use dsql::{check_dsql_runtime_role, grant_iam_role, run_dsql, statements as dsql_statements};

/// The migrations of `engine`.
pub fn migrations(engine: crate::Engine) -> &'static [Migration] {
    match engine {
        crate::Engine::Postgres => MIGRATIONS,
        crate::Engine::Dsql => DSQL_MIGRATIONS,
    }
}

/// Applies the migrations of `engine` that have not run yet (see [`run`] and [`run_dsql`]).
pub async fn run_for(client: &Client, engine: crate::Engine) -> Result<Vec<&'static str>> {
    match engine {
        crate::Engine::Postgres => run(client).await,
        crate::Engine::Dsql => run_dsql(client).await,
    }
}

/// The runtime role's self-check on `engine` (see [`check_runtime_role`] and
/// [`check_dsql_runtime_role`]).
pub async fn check_runtime_role_for(client: &Client, engine: crate::Engine) -> Result<()> {
    match engine {
        crate::Engine::Postgres => check_runtime_role(client).await,
        crate::Engine::Dsql => check_dsql_runtime_role(client).await,
    }
}

/// Creates the roles `app_owner` and `app_runtime` (see `migrations/bootstrap/roles.sql`).
pub const BOOTSTRAP_ROLES_SQL: &str = include_str!("../../../migrations/bootstrap/roles.sql");

/// The tables whose rows belong to tenants or users; each must have RLS enabled and forced.
pub const PROTECTED_TABLES: &[&str] = &["tenants", "users", "memberships", "todos", "invitations", "idempotency_keys"];

/// Serialises migrations and role bootstrap across processes (tests run many at once).
const LOCK_KEY: i64 = 0x7465_6e61_6e74;

/// Runs `work` while holding the migration lock on this session.
async fn locked<T>(client: &Client, work: impl AsyncFnOnce() -> Result<T>) -> Result<T> {
    client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await?;
    let result = work().await;
    // Unlock even after a failure; if this fails too, the session's end releases the lock.
    let _ = client.batch_execute("RESET ROLE").await;
    let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
    result
}

/// Creates the application's roles, as an administrator. With `rds_iam`, also grants Aurora's
/// `rds_iam` role to both, so that they log in with IAM tokens.
pub async fn bootstrap_roles(client: &Client, rds_iam: bool) -> Result<()> {
    locked(client, async || {
        client
            .batch_execute(BOOTSTRAP_ROLES_SQL)
            .await
            .map_err(|e| Error::Migration(format!("creating roles: {}", db_message(&e))))?;
        if rds_iam {
            client.batch_execute("GRANT rds_iam TO app_owner, app_runtime").await.map_err(|e| {
                Error::Migration(format!(
                    "GRANT rds_iam (is this Aurora/RDS with IAM auth enabled?): {}",
                    db_message(&e)
                ))
            })?;
        }
        Ok(())
    })
    .await
}

/// Applies the migrations that have not run yet; returns the names of those it applied.
pub async fn run(client: &Client) -> Result<Vec<&'static str>> {
    locked(client, async || {
        let owner: bool = client.query_one("SELECT current_user = 'app_owner'", &[]).await?.get(0);
        if !owner {
            client.batch_execute("SET ROLE app_owner").await.map_err(|e| {
                Error::Migration(format!(
                    "cannot act as app_owner ({}): create the roles first (scripts/migrate.sh --bootstrap-roles) or log in as app_owner",
                    db_message(&e)
                ))
            })?;
        }
        let mut ran = Vec::new();
        for (m, sum) in pending(client, MIGRATIONS).await? {
            client.batch_execute("BEGIN").await?;
            let result = async {
                client.batch_execute(m.sql).await?;
                client
                    .execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", &[&m.version, &m.name, &sum])
                    .await?;
                client.batch_execute("COMMIT").await
            }
            .await;
            if let Err(e) = result {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(Error::Migration(format!("{}: {}", m.name, db_message(&e))));
            }
            tracing::info!(migration = m.name, "applied");
            ran.push(m.name);
        }
        Ok(ran)
    })
    .await
}

/// Checks, on the API's own connection, that the role it logs in as cannot get around
/// row-level security: it is no superuser, has no BYPASSRLS, owns no table, cannot act as the
/// owner, and every protected table has RLS enabled and forced. The API refuses to serve
/// otherwise.
pub async fn check_runtime_role(client: &Client) -> Result<()> {
    // One statement in the simple protocol: it can share a round trip with the connection's
    // other set-up work (see the pool), and the table names are constants of this crate.
    let tables = PROTECTED_TABLES.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT current_user::text, r.rolsuper, r.rolbypassrls,
                EXISTS (SELECT 1 FROM pg_roles o WHERE o.rolname <> current_user
                        AND (o.rolname = 'app_owner' OR o.rolsuper OR o.rolbypassrls)
                        -- MEMBER, not USAGE: app_runtime is NOINHERIT, and SET ROLE needs only membership
                        AND pg_has_role(current_user, o.oid, 'MEMBER')),
                (SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c
                  WHERE c.relowner = r.oid AND c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace),
                (SELECT string_agg(t.name || ' ' || coalesce(c.relrowsecurity::text, 'missing')
                                   || ' ' || coalesce(c.relforcerowsecurity::text, 'missing'), ',')
                   FROM unnest(ARRAY[{tables}]) AS t(name)
                   LEFT JOIN pg_class c ON c.relname = t.name AND c.relnamespace = 'public'::regnamespace)
         FROM pg_roles r WHERE r.rolname = current_user"
    );
    let messages = client.simple_query(&sql).await?;
    let row = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .ok_or_else(|| Error::SelfCheck("the role the API logs in as is not in pg_roles".into()))?;
    let text = |i: usize| row.get(i).unwrap_or_default();
    let flag = |i: usize| text(i) == "t";
    let (user, owned, rls) = (text(0), row.get(4), text(5));
    let fail = |why: String| Err(Error::SelfCheck(why));
    if flag(1) {
        return fail(format!("the API logs in as {user}, a superuser; superusers bypass row-level security"));
    }
    if flag(2) {
        return fail(format!("the API logs in as {user}, which has BYPASSRLS"));
    }
    if let Some(tables) = owned {
        return fail(format!("the API logs in as {user}, which owns tables ({tables}); log in as app_runtime"));
    }
    if flag(3) {
        return fail(format!(
            "the API logs in as {user}, which can act as the table owner app_owner, a superuser or a BYPASSRLS role (it is a member)"
        ));
    }
    for entry in rls.split(',') {
        match entry.split(' ').collect::<Vec<_>>()[..] {
            [_, "true", "true"] => {}
            [name, "missing", _] => return fail(format!("table {name} does not exist: run the migrations")),
            [name, ..] => return fail(format!("table {name} does not have row-level security enabled and forced")),
            [] => return fail("no row-level security information".into()),
        }
    }
    Ok(())
}

/// Refuses a database whose schema is behind this binary's migrations (a dedicated database
/// that `scripts/migrate.sh` has not reached yet): 503, and a log line that says so.
pub async fn check_schema(client: &Client, db: &str) -> Result<()> {
    let needed = MIGRATIONS.last().map_or(0, |m| m.version);
    let found = client.query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[]).await;
    let at: i32 = match &found {
        Ok(row) => row.get(0),
        Err(_) => 0,
    };
    if at >= needed {
        return Ok(());
    }
    tracing::error!(
        db = %db,
        schema_version = at,
        needed,
        "refusing to serve a dedicated database whose schema is behind this binary's; run scripts/migrate.sh (it migrates every registered database)"
    );
    Err(Error::Unavailable {
        reason: format!("the dedicated database's schema is at version {at}, this binary needs {needed}"),
        retry_after: std::time::Duration::from_secs(30),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_embedded_in_order() {
        assert!(!MIGRATIONS.is_empty());
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version), "versions must increase");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
        let on_disk = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "sql"))
            .count();
        assert_eq!(on_disk, MIGRATIONS.len(), "every migrations/*.sql file is embedded");
        assert!(!DSQL_MIGRATIONS.is_empty());
        assert!(DSQL_MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version), "versions must increase");
    }
}
