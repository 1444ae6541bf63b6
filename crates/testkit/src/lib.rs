//! Test-only infrastructure; never a dependency of a shipped binary.
//!
//! - [`pg`]: one throwaway PostgreSQL cluster per test process (started with `initdb` and
//!   `postgres` from the machine's server package, as an unprivileged user when the tests run
//!   as root), or the server named by `TEST_DATABASE_URL`; and a fresh database per test, cloned
//!   from a migrated template.
//! - [`aurora`]: the roles that make those clusters Aurora-shaped (no superuser administrator).
//! - [`iam`]: the IAM-auth stand-in in front of that server, and API settings that log in
//!   through it with signed tokens over verified TLS.
//! - [`dsql`]: a local Aurora DSQL: the stand-in's DSQL mode and the emulation of DSQL's `sys`
//!   schema in a test database.
//! - [`silo`]: a control database and a dedicated one in a second cluster (silo tenants).

pub mod aurora;
mod cluster;
pub mod dsql;
pub mod iam;
pub mod pg;
mod server;
pub mod silo;
