//! The database schema, as code: what the dev server, the migration function and
//! `scripts/tenant.sh` run, and what the store checks when it connects.
//!
//! - Both migrators: the files in `migrations/` (PostgreSQL) and `migrations/dsql/` (Aurora
//!   DSQL) at the workspace root, embedded at build time (`build.rs`) in file-name order, each
//!   run once and recorded with its checksum ([`run_for`], [`run`], [`run_dsql`]).
//! - The role bootstrap ([`bootstrap_roles`], [`BOOTSTRAP_ROLES_SQL`]) and the IAM grants.
//! - The runtime role's self-check ([`check_runtime_role_for`]), which the store runs once per
//!   process on its first connection, and the schema-version check of a dedicated database
//!   ([`check_schema`]), run on each of its connections.
//!
//! It knows connections (`pgconn`: a client, the error type, the engine) and nothing of the
//! statement catalogue, tenants or pools.

mod embedded;
mod migrate;

pub use migrate::*;
use pgconn::{Engine, Error, Result};

/// The error helpers, at the path `migrate_dsql.rs` uses.
mod error {
    pub(crate) use pgconn::is_conflict;
}
