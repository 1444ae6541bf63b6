//! The API's database: what `api` calls, on top of `pgconn` (connections), `statements` (the
//! SQL of both engines), `schema` (migrations and role checks) and `domain` (values).
//!
//! - [`Store`] (`store.rs`): the control database's pool and, on Aurora PostgreSQL, the
//!   placements of silo tenants with their dedicated databases' pools ([`placement`]). Each new
//!   connection gets the setup of `setup.rs`: every statement prepared once, the runtime role's
//!   self-check, and for a dedicated database its schema version.
//! - [`Scoped`] (`scope.rs`): the only way to reach tenant tables. Every call is one database
//!   transaction that first sets the caller and the tenant scope that the row-level security
//!   policies key on (`migrations/0001_tenancy.sql`), then runs its statement. The transaction
//!   start, the scope, the statement and the commit are pipelined (`pipeline.rs`): one network
//!   round trip per call. Its queries are grouped per entity (`queries.rs`, `todos.rs`,
//!   `invitations.rs`); writes under an `Idempotency-Key` are recorded ([`idempotency`]).
//! - Re-exported at their old paths: the connection layer ([`DbConfig`], [`Error`], [`tls`],
//!   ...), the statements ([`Q`], [`dsql`]), the migrations ([`migrate`]) and the domain's
//!   values ([`TenantId`], ...).
//!
//! See ARCHITECTURE.md at the repository root for the layers and the request's path.

pub mod idempotency;
mod invitations;
pub mod lease;
mod pipeline;
pub mod placement;
mod queries;
pub mod quota;
mod rows;
mod scope;
mod setup;
mod steps;
mod store;
mod todos;

// The connection layer, at its old paths (it lives in the `pgconn` crate).
pub use idempotency::Idempotency;
pub use pgconn::{
    Auth, CaSource, DbConfig, Engine, Error, PasswordSource, Result, Secret, Stats, StatsSnapshot, TlsMode,
    placement_cache_ttl, tls,
};
// The domain's values, at their old paths (they live in the `domain` crate).
pub use domain::{
    Count, Cursor, DisplayName, Email, Invalid, Invitation, InvitationCode, InvitationId, Limit, Member, Membership,
    NewInvitation, NewUser, Page, PageRequest, RFC3339_MAX, Role, Tenant, TenantDetail, TenantId, TenantName, Todo,
    TodoFilter, TodoId, TodoPatch, TodoTitle, Usage, User, UserId, parse_uuid, rfc3339_text,
};
pub use scope::Scoped;
// The migrations and role checks, at their old path (they live in the `schema` crate).
pub use schema as migrate;
// The statement catalogue, at its old paths (it lives in the `statements` crate).
pub use statements::{Q, dsql};
pub use steps::Tenants;
pub use store::Store;
