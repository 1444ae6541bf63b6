//! What the steps of a move share (`mover` runs them, `copy` copies, `registry` records):
//! which way a move goes, the batch size, the owner's tenant scope and the error of a failed
//! statement.

use crate::Error;

/// Rows per statement when copying and per transaction when deleting.
pub(super) const BATCH: i64 = 2000;

/// Which way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToDedicated,
    ToPooled,
}

pub(super) fn fail(what: &str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
    move |e| {
        Error::Migration(format!(
            "{what}: {}",
            e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())
        ))
    }
}

/// Puts tenant `t` in scope for the owner's row-level security, in the current transaction.
pub(super) const SCOPE: &str = "SELECT set_config('app.tenant_ids', ARRAY[$1::uuid]::text, true)";
