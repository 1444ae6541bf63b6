//! The PostgreSQL layer of the API.
//!
//! - [`Store`]: a deadpool pool whose connect step takes its password from a [`PasswordSource`]
//!   (a fixed password locally, a cached IAM token on AWS), verifies the server over TLS
//!   ([`tls`]), and prepares every statement once per physical connection.
//! - [`Scoped`]: the only way to reach tenant tables. Every call is one database transaction
//!   that first sets the caller and the tenant scope that the row-level security policies key on
//!   (`migrations/0001_tenancy.sql`), then runs its statement. The transaction start, the scope,
//!   the statement and the commit are pipelined: one network round trip per call.
//! - [`migrate`]: the embedded migrations and the start-up self-check of the runtime role.

mod config;
mod connector;
pub mod dsql;
mod error;
mod gate;
pub mod idempotency;
mod invitations;
pub mod migrate;
mod model;
mod page;
mod password;
mod pipeline;
pub mod placement;
mod pool;
mod queries;
mod records;
mod rows;
mod scope;
mod secret;
mod socket;
mod statements;
mod stats;
mod stream;
pub mod tls;
mod todos;

pub use config::{Auth, CaSource, DbConfig, Engine, TlsMode, placement_cache_ttl};
pub use error::{Error, Result};
pub use idempotency::Idempotency;
pub use invitations::{Invitation, InvitationCode, NewInvitation};
pub use model::{
    DisplayName, Email, Invalid, InvitationId, RFC3339_MAX, Role, TenantId, TenantName, TodoId, TodoTitle, UserId,
    parse_uuid, rfc3339_text,
};
pub use page::{Cursor, Limit, Page, PageRequest};
pub use password::PasswordSource;
pub use pool::Store;
pub use records::{Member, Membership, NewUser, Tenant, Todo, TodoFilter, TodoPatch, User};
pub use scope::{Scoped, Tenants};
pub use secret::Secret;
pub use statements::Q;
pub use stats::{Stats, StatsSnapshot};
