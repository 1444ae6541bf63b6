//! Migrations on Aurora DSQL (`migrations/dsql/`), and the runtime role there.
//!
//! DSQL runs one DDL statement per transaction and never mixes DDL with DML, so each statement
//! of a file runs on its own (every statement is idempotent: `IF NOT EXISTS`, `GRANT`), and the
//! file is recorded in `schema_migrations` afterwards, in a transaction of its own. A file
//! interrupted midway is run again from its start. `CREATE INDEX ASYNC` returns a job, which the
//! migrator waits for (`sys.wait_for_job`, failing the migration if the build failed); then, and
//! on a re-run that found the index already created, it waits until the index is valid. A
//! statement that conflicts with concurrent DDL (OC001) runs again, a few times. The same files run on a local
//! PostgreSQL for tests and `scripts/dev.sh --dsql`, with `ASYNC` dropped: the only difference.

use std::time::Duration;

use tokio_postgres::{Client, SimpleQueryMessage};

use super::{DSQL_MIGRATIONS, db_message};
use crate::{Error, Result};

/// The statements of a migration file: split at `;` ending a line, comments dropped. The
/// files are plain DDL (no function bodies, no strings with semicolons), which a test checks.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in sql.lines() {
        let line = line.split("--").next().unwrap_or_default().trim_end();
        if line.trim().is_empty() {
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if line.ends_with(';') {
            out.push(current.trim().trim_end_matches(';').to_string());
            current.clear();
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// Whether the server is Aurora DSQL itself (it has the `sys` schema of asynchronous jobs), not
/// a PostgreSQL server carrying the DSQL schema.
async fn is_dsql_server(client: &Client) -> Result<bool> {
    Ok(client.query_one("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'sys')", &[]).await?.get(0))
}

/// How long the migrator waits for an asynchronous index build (`sys.wait_for_job` itself may
/// return earlier; the index is then polled until it is valid).
const INDEX_BUILD_WAIT: Duration = Duration::from_secs(15 * 60);

/// Attempts at a statement that conflicts with concurrent DDL (another migration run, an index
/// build finishing: OC001) before the migration fails.
const DDL_ATTEMPTS: u32 = 5;

/// The index a `CREATE [UNIQUE] INDEX ASYNC [IF NOT EXISTS] name ON ...` creates.
fn index_name(sql: &str) -> Option<&str> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let at = words.iter().position(|w| w.eq_ignore_ascii_case("ASYNC"))?;
    let rest = &words[at + 1..];
    let name = if rest.len() > 3 && rest[..3].iter().map(|w| w.to_ascii_uppercase()).eq(["IF", "NOT", "EXISTS"]) {
        rest[3]
    } else {
        rest.first()?
    };
    Some(name)
}

/// Runs one statement in a transaction of its own, again when it conflicts with concurrent
/// DDL. On DSQL an index statement returns a job: the migrator waits for it, and in any case
/// (a re-run finds the index created, maybe still building) until the index is valid.
async fn apply(client: &Client, sql: &str, on_dsql: bool) -> std::result::Result<(), String> {
    let fail = |e: tokio_postgres::Error| db_message(&e);
    if !on_dsql {
        return client.batch_execute(&sql.replacen("INDEX ASYNC", "INDEX", 1)).await.map_err(fail);
    }
    let mut attempt = 1;
    let messages = loop {
        match client.simple_query(sql).await {
            Ok(m) => break m,
            Err(e) if crate::error::is_conflict(&e) && attempt < DDL_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(e) => return Err(fail(e)),
        }
    };
    let Some(index) = index_name(sql) else { return Ok(()) };
    let job = messages.into_iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    if let Some(job) = job {
        wait_for_job(client, &job).await.map_err(|why| format!("building index {index}: {why}"))?;
    }
    let started = std::time::Instant::now();
    loop {
        let valid: Option<bool> = client
            .query_opt(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE c.relname = $1 AND c.relnamespace = 'public'::regnamespace",
                &[&index],
            )
            .await
            .map_err(fail)?
            .map(|r| r.get(0));
        match valid {
            Some(true) => return Ok(()),
            _ if started.elapsed() > INDEX_BUILD_WAIT => {
                return Err(format!("index {index} is not valid after {INDEX_BUILD_WAIT:?}; see sys.jobs"));
            }
            _ => tokio::time::sleep(Duration::from_secs(2)).await,
        }
    }
}

/// Runs `work` again, a few times, while it fails with a conflict (OC001: the schema changed
/// under the transaction, as it does right after DDL or an index build finishing; OC000). AWS's
/// samples retry every statement that follows DDL this way
/// (<https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-concurrency-control.html>).
async fn retried<T>(
    mut work: impl AsyncFnMut() -> std::result::Result<T, tokio_postgres::Error>,
) -> std::result::Result<T, tokio_postgres::Error> {
    let mut attempt = 1;
    loop {
        match work().await {
            Err(e) if crate::error::is_conflict(&e) && attempt < DDL_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            other => return other,
        }
    }
}

/// `CALL sys.wait_for_job('<job>')`: blocks until the job ends and answers whether it succeeded.
/// On DSQL it is a procedure, not a function, so `SELECT sys.wait_for_job(...)` is refused
/// (<https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-create-index-async.html>).
/// The job id comes from the server and goes into the statement as a literal (a procedure's
/// parameter types are the server's to infer), so it is checked first. The wait itself may meet
/// the catalogue update of the finished build (OC001): it is then asked again.
async fn wait_for_job(client: &Client, job: &str) -> std::result::Result<(), String> {
    if job.is_empty() || job.len() > 64 || !job.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!("the server answered an unexpected job id {job:?}"));
    }
    let sql = format!("CALL sys.wait_for_job('{job}')");
    let mut attempt = 1;
    let messages = loop {
        match client.simple_query(&sql).await {
            Ok(m) => break m,
            Err(e) if crate::error::is_conflict(&e) && attempt < DDL_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
            }
            Err(e) => return Err(db_message(&e)),
        }
    };
    let succeeded = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(|v| v == "t" || v.eq_ignore_ascii_case("true")),
        _ => None,
    });
    match succeeded {
        // No answer: the validity check that follows decides.
        Some(true) | None => Ok(()),
        Some(false) => Err(format!("job {job} failed; see sys.jobs")),
    }
}

/// Applies the DSQL migrations that have not run yet; returns the names of those it applied.
/// Locally (a PostgreSQL server), the objects belong to `app_owner`, as with the PostgreSQL
/// schema; on DSQL to the `admin` role that runs the migrations. Creates `app_runtime` when it
/// does not exist.
pub async fn run_dsql(client: &Client) -> Result<Vec<&'static str>> {
    let on_dsql = is_dsql_server(client).await?;
    if !on_dsql {
        let owner: bool = client.query_one("SELECT current_user = 'app_owner'", &[]).await?.get(0);
        if !owner {
            client.batch_execute("SET ROLE app_owner").await.map_err(|e| {
                Error::Migration(format!("cannot act as app_owner ({}): create the roles first", db_message(&e)))
            })?;
        }
    }
    let runtime: bool =
        client.query_one("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'app_runtime')", &[]).await?.get(0);
    if !runtime {
        retried(async || client.batch_execute("CREATE ROLE app_runtime WITH LOGIN").await)
            .await
            .map_err(|e| Error::Migration(format!("creating app_runtime: {}", db_message(&e))))?;
    }
    let mut ran = Vec::new();
    for (m, sum) in super::pending(client, DSQL_MIGRATIONS).await? {
        for sql in statements(m.sql) {
            apply(client, &sql, on_dsql).await.map_err(|why| Error::Migration(format!("{}: {why}", m.name)))?;
        }
        retried(async || {
            client
                .execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&m.version, &m.name, &sum],
                )
                .await
        })
        .await
            .map_err(|e| Error::Migration(format!("{}: recording it: {}", m.name, db_message(&e))))?;
        tracing::info!(migration = m.name, "applied");
        ran.push(m.name);
    }
    if !on_dsql {
        let _ = client.batch_execute("RESET ROLE").await;
    }
    Ok(ran)
}

/// Lets the IAM role `arn` log in as `app_runtime` (`AWS IAM GRANT`, DSQL only), unless it
/// may already (`sys.iam_pg_role_mappings`). The ARN is checked first: it is written into the
/// statement.
pub async fn grant_iam_role(client: &Client, arn: &str) -> Result<()> {
    let valid = arn.starts_with("arn:aws")
        && arn.contains(":iam::")
        && arn.contains(":role/")
        && arn.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-:/".contains(&b));
    if !valid {
        return Err(Error::Config {
            var: "DSQL_RUNTIME_ROLE_ARN",
            problem: format!("is not an IAM role ARN: {arn:?}"),
        });
    }
    // Every migration run comes here (Terraform invokes the migration function on each apply
    // that changes the package): grant once.
    let granted: bool = retried(async || {
        client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM sys.iam_pg_role_mappings WHERE pg_role_name = 'app_runtime' AND arn = $1)",
                &[&arn],
            )
            .await
    })
    .await
        .map_err(|e| Error::Migration(format!("reading sys.iam_pg_role_mappings: {}", db_message(&e))))?
        .get(0);
    if granted {
        return Ok(());
    }
    retried(async || client.batch_execute(&format!("AWS IAM GRANT app_runtime TO '{arn}'")).await)
        .await
        .map_err(|e| Error::Migration(format!("AWS IAM GRANT app_runtime: {}", db_message(&e))))
}

/// Checks, on the API's own connection, that the role it logs in as is not the administrator
/// and owns no table: without row-level security, the statements keep tenants apart, and a
/// role that owns the tables could change them.
pub async fn check_dsql_runtime_role(client: &Client) -> Result<()> {
    let messages = client
        .simple_query(
            "SELECT current_user::text, (SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c \
               JOIN pg_roles r ON r.oid = c.relowner \
              WHERE r.rolname = current_user AND c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace)",
        )
        .await?;
    let row = messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r),
            _ => None,
        })
        .ok_or_else(|| Error::SelfCheck("no answer to the role check".into()))?;
    let user = row.get(0).unwrap_or_default();
    if user == "admin" {
        return Err(Error::SelfCheck("the API logs in as admin; log in as app_runtime (DB_AUTH=dsql)".into()));
    }
    if let Some(tables) = row.get(1) {
        return Err(Error::SelfCheck(format!(
            "the API logs in as {user}, which owns tables ({tables}); log in as app_runtime"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_are_found_in_async_index_statements() {
        assert_eq!(index_name("CREATE UNIQUE INDEX ASYNC IF NOT EXISTS a_key ON a (x)"), Some("a_key"));
        assert_eq!(index_name("CREATE INDEX ASYNC b_idx ON b (x)"), Some("b_idx"));
        assert_eq!(index_name("CREATE TABLE IF NOT EXISTS c (x int)"), None);
        for m in DSQL_MIGRATIONS {
            for sql in statements(m.sql).iter().filter(|s| s.contains(" INDEX ")) {
                assert!(index_name(sql).is_some_and(|n| sql.contains(&format!(" {n} ON "))), "{sql}");
            }
        }
    }

    #[test]
    fn files_split_into_single_statements() {
        let s =
            statements("-- a comment; with a semicolon\nCREATE TABLE a (x int);\n\nGRANT SELECT ON a TO b; -- why\n");
        assert_eq!(s, ["CREATE TABLE a (x int)", "GRANT SELECT ON a TO b"]);
        for m in DSQL_MIGRATIONS {
            for sql in statements(m.sql) {
                assert!(!sql.contains(';') && !sql.contains('$'), "{}: plain DDL only: {sql}", m.name);
            }
        }
    }
}
