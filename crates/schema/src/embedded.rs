//! The embedded migrations (written by `build.rs`) and their bookkeeping in
//! `schema_migrations`, which both migrators share.

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use crate::{Error, Result};

/// One embedded migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order.
pub const MIGRATIONS: &[Migration] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// Every migration of the Aurora DSQL schema (`migrations/dsql/`), in order.
pub const DSQL_MIGRATIONS: &[Migration] = include!(concat!(env!("OUT_DIR"), "/dsql_migrations.rs"));

fn checksum(sql: &str) -> String {
    hex::encode(Sha256::digest(sql.as_bytes()))
}

/// The migrations of `all` that have not been applied, each with its checksum; creates
/// `schema_migrations` when it does not exist. An applied migration that was edited since is an
/// error.
pub(crate) async fn pending(client: &Client, all: &'static [Migration]) -> Result<Vec<(&'static Migration, String)>> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
               version    int         PRIMARY KEY,
               name       text        NOT NULL,
               checksum   text        NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await?;
    let applied: Vec<(i32, String)> = client
        .query("SELECT version, checksum FROM schema_migrations ORDER BY version", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut todo = Vec::new();
    for m in all {
        let sum = checksum(m.sql);
        match applied.iter().find(|(v, _)| *v == m.version) {
            Some((_, recorded)) if *recorded != sum => {
                return Err(Error::Migration(format!(
                    "{} was changed after it was applied; add a new migration instead of editing an applied one",
                    m.name
                )));
            }
            Some(_) => {}
            None => todo.push((m, sum)),
        }
    }
    Ok(todo)
}

/// The server's message without the client library's prefix; no connection details.
pub(crate) fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string())
}
