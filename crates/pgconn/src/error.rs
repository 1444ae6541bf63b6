use std::time::Duration;

use tokio_postgres::error::SqlState;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the store can fail with. The API maps these to status codes in one place; the
/// messages are for logs (they never contain a password or token) and are not sent to clients
/// for the 5xx cases.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {var} {problem}")]
    Config { var: &'static str, problem: String },

    /// Not there, or not visible to the caller: both look the same from outside.
    #[error("not found")]
    NotFound,
    /// The caller is a member of the tenant but its role does not allow this.
    #[error("forbidden")]
    Forbidden,
    /// A uniqueness rule or an invariant (a tenant keeps at least one admin) stops the change.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A create would take a count past its quota under the tenant's plan (issue 24): nothing
    /// was written. `quota` is the quota's stable name (`limits::Quota::name`).
    #[error("the {plan} plan allows {limit} {quota}")]
    QuotaExceeded { quota: &'static str, plan: String, limit: i64 },
    /// An `Idempotency-Key` that was used for another request (another method, path or body).
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyMismatch,
    /// The database refused a value (a data exception or a check constraint): the request's
    /// fault, not the server's.
    #[error("invalid value: {0}")]
    InvalidValue(&'static str),

    /// The database cannot be reached or refused us; worth retrying after `retry_after`.
    #[error("database unavailable: {reason}")]
    Unavailable { reason: String, retry_after: Duration },
    /// The whole connect step took longer than the connect timeout.
    #[error("timed out after {after:?} connecting to {host}:{port}")]
    ConnectTimeout { host: String, port: u16, after: Duration },
    /// A statement ran past the statement timeout (or the client-side deadline).
    #[error("statement timed out")]
    StatementTimeout,
    /// The request's time budget ran out (checkout, connect, the statements and any retry).
    /// A connect in progress goes on in the background for the next request.
    #[error("the request's deadline passed before the database answered")]
    Deadline,

    /// The tenant is not served from the database the request reached (it moved, or the
    /// instance's cached placement is stale): the store retries where the registry says, so
    /// this reaches the API only when that kept failing.
    #[error("the tenant's placement changed while the request ran")]
    Moved,
    /// A dedicated database has no copy of the caller's membership of the tenant: the store
    /// makes it from the control database and runs the request again (never reaches the API).
    /// The generation of that membership there: the copy is made only if it has not changed.
    #[error("not a member, as far as this database's copy of the memberships knows")]
    NotCopied(i64),

    #[error("tls: {0}")]
    Tls(String),
    #[error("migration: {0}")]
    Migration(String),
    /// The role the API logs in as could get around row-level security; refusing to serve
    /// (500: an operator must fix the setup; retrying does not help).
    #[error("unsafe database setup: {0}")]
    SelfCheck(String),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
}

impl Error {
    /// Whether the client should be told to retry later (HTTP 503 with `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Unavailable { retry_after, .. } => Some(*retry_after),
            Error::ConnectTimeout { .. } | Error::Tls(_) => Some(Duration::from_secs(5)),
            Error::StatementTimeout => Some(Duration::from_secs(1)),
            Error::Deadline => Some(Duration::from_secs(2)),
            Error::Moved => Some(Duration::from_secs(1)),
            Error::Db(e) if is_transient(e) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    pub fn unavailable(reason: impl Into<String>) -> Self {
        Error::Unavailable { reason: reason.into(), retry_after: Duration::from_secs(1) }
    }

    /// Turns a database error from a request into the error the API understands.
    pub fn from_query(e: tokio_postgres::Error) -> Self {
        if is_lost(&e) {
            return Error::unavailable(format!("connection lost: {e}"));
        }
        let Some(code) = e.code() else {
            return Error::Db(e);
        };
        match *code {
            SqlState::UNIQUE_VIOLATION => Error::Conflict(conflict_reason(&e)),
            // A reference to a row that does not exist (a user id that no one has).
            SqlState::FOREIGN_KEY_VIOLATION => Error::NotFound,
            SqlState::CHECK_VIOLATION => Error::InvalidValue("a value is outside what is allowed"),
            // Row-level security refused a row: to the caller, the row is not there.
            SqlState::INSUFFICIENT_PRIVILEGE => Error::NotFound,
            SqlState::QUERY_CANCELED => Error::StatementTimeout,
            // app_fence_check: a move holds the tenant's writes, or the tenant is elsewhere.
            _ if code.code() == "TM001" => Error::Unavailable {
                reason: "the tenant is being moved to another database".into(),
                retry_after: Duration::from_secs(2),
            },
            _ if code.code() == "TM002" => Error::Moved,
            // A dedicated database refused a grant of the control database's: a stale placement
            // (another database's key), or a key or clock out of step. Where the registry says,
            // again; an operator's matter if it persists.
            _ if code.code() == "TM004" => {
                tracing::error!(error = %e, "a dedicated database refused the control database's grant");
                Error::Moved
            }
            _ if code.code() == "TM003" => {
                Error::NotCopied(e.as_db_error().and_then(|d| d.detail()).and_then(|g| g.parse().ok()).unwrap_or(-1))
            }
            _ if code.code().starts_with("22") => Error::InvalidValue("a value is malformed or out of range"),
            _ => Error::Db(e),
        }
    }
}

fn conflict_reason(e: &tokio_postgres::Error) -> &'static str {
    match e.as_db_error().and_then(|d| d.constraint()) {
        Some("tenants_pkey") => "a tenant with this id already exists",
        Some("todos_pkey") => "a todo with this id already exists",
        Some("users_identity_key") | Some("users_pkey") => "this user already exists",
        _ => "the change conflicts with existing data",
    }
}

/// The session is gone: the socket broke (no SQLSTATE), the server ended it (57P01 admin
/// shutdown, 57P02 crash shutdown, 57P03 cannot connect now), or a connection exception (class
/// 08). A read that met this may be retried on a fresh connection.
pub fn is_lost(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03")
        }
    }
}

/// The transaction lost a race and was rolled back: a serialization failure (40001), a
/// deadlock (40P01), or Aurora DSQL's optimistic-concurrency conflicts (OC000 data, OC001
/// schema). Running it again from the start is the remedy.
pub fn is_conflict(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| matches!(c.code(), "40001" | "40P01" | "OC000" | "OC001"))
}

/// Errors that say "the server is busy or restarting", not "your statement is wrong".
pub fn is_transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            c.starts_with("08") // connection exception
                || c.starts_with("53") // insufficient resources (too many connections)
                || c.starts_with("57P") // admin shutdown, crash shutdown, cannot connect now
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                // XX000, the server's internal error, is the database's fault, not the
                // request's: a dependency failing (503), never a 500 with its words. Not retried:
                // AWS documents no meaning for it on DSQL, and AWS's DSQL connectors retry only
                // 40001, OC000 and OC001 (awslabs/aurora-dsql-connectors); docs/dsql.md.
                || *code == SqlState::INTERNAL_ERROR
        }
    }
}
