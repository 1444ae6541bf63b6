//! What a transaction is made of: which tenants it may see ([`Tenants`]), whether it writes
//! ([`Access`]), and its statements ([`Step`]).

use tokio_postgres::types::ToSql;

use crate::{Q, TenantId};

/// Which tenants a transaction may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenants {
    /// None: only the caller's own user row and memberships.
    None,
    /// This tenant, if and only if the caller is a member of it (resolved by the database).
    Member(TenantId),
    /// Every tenant the caller is a member of (resolved by the database).
    All,
    /// Every tenant the caller is a member of whose todos live in this database (not in a
    /// dedicated one: see [`crate::placement`]).
    AllHere,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read only: safe to retry on a fresh connection if the connection was lost.
    Read,
    /// Writes: never retried automatically; the outcome of a lost COMMIT is unknown.
    Write,
}

/// One statement of a transaction and its parameters.
pub(crate) struct Step<'a> {
    pub q: Q,
    pub params: &'a [&'a (dyn ToSql + Sync)],
}
