//! A logged-in, TLS-verified, capped pool of connections to one PostgreSQL endpoint (Aurora
//! PostgreSQL, Aurora DSQL, or a local server).
//!
//! - [`DbConfig`]: one endpoint's settings (`DB_*` or a `postgres://` URL), validated; the
//!   [`Engine`] it speaks and how it logs in ([`Auth`]).
//! - [`PasswordSource`]: a fixed password, or an IAM token from `db-auth`'s cache, fetched at
//!   each login; [`Secret`] keeps them out of logs.
//! - [`tls`]: verified TLS against the Amazon RDS or Amazon root CAs compiled in (`certs/`), or
//!   a given bundle.
//! - [`Connector`]: TCP, TLS, login, then a [`Setup`] that the layer above hands in (statements
//!   to prepare, their variants to prepare on first use, checks to run once or on each
//!   connection), all in one round trip after the login, within the connect timeout and behind
//!   a backoff gate; every byte counted ([`Stats`]).
//! - [`Db`]: the deadpool pool of one database with our [`Manager`] (connects that outlive
//!   their request, recycling after a pause, at a maximum age, before the server's idle
//!   timeout), and [`Limiter`]: the cap on connections across the pools that share it.
//!
//! It knows no tenant, no statement catalogue and no migration: what to prepare and what to
//! check is data it is given. The one exception is [`Error`], the database layer's error type,
//! which still carries the store's own variants (`NotFound`, `Moved`, ...) and maps their
//! SQLSTATEs in [`Error::from_query`]; the store re-exports it as `store::Error`.

mod cap;
mod config;
mod connector;
mod error;
mod gate;
mod password;
mod pool;
mod secret;
mod socket;
mod stats;
mod stream;
pub mod tls;

pub use cap::{Capped, Limiter};
pub use config::{Auth, CaSource, DEFAULT_PLACEMENT_CACHE_TTL, DbConfig, Engine, TlsMode, placement_cache_ttl};
pub use connector::{Check, Conn, Connector, SELF_CHECK_RETRY, Setup, Variants};
pub use error::{Error, Result, is_conflict, is_lost};
pub use password::PasswordSource;
pub use pool::{Db, Manager, Pool};
pub use secret::Secret;
pub use stats::{Stats, StatsSnapshot};
