//! The stand-in's settings: where it listens, whose tokens it accepts, the PostgreSQL behind it.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use db_auth::{Clock, Credentials};

use crate::{dsql, sigv4};

/// The access key the stand-in accepts tokens from.
pub const TEST_ACCESS_KEY_ID: &str = "AKIAIAMSTANDINEXAMPLE";
/// Its secret. Only meaningful to the stand-in.
pub const TEST_SECRET_ACCESS_KEY: &str = "standin/Secret+Key/forLocalTestsOnlyEXAMPLE";

/// Credentials that sign tokens the stand-in accepts (with a session token, as on Lambda).
pub fn test_credentials() -> Credentials {
    Credentials::new(
        TEST_ACCESS_KEY_ID,
        TEST_SECRET_ACCESS_KEY,
        Some("standin-session-token".into()),
        None,
        "iam-standin",
    )
}

/// The real PostgreSQL behind the stand-in. It must let the stand-in in without a password
/// (trust), since the stand-in has already authenticated the client.
#[derive(Debug, Clone)]
pub enum Upstream {
    Tcp(SocketAddr),
    /// A server's Unix socket file, e.g. `/tmp/sock/.s.PGSQL.5432`.
    Unix(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The name in the server certificate, and the host a token must be signed for.
    pub hostname: String,
    /// The port a token must be signed for; the listening port when `None`.
    pub token_port: Option<u16>,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub upstream: Upstream,
    pub clock: Arc<dyn Clock>,
    /// Whose tokens to accept: Aurora's (the default) or Aurora DSQL's.
    pub engine: sigv4::Engine,
    /// Sessions older than this are closed, as Aurora DSQL closes connections at 60 minutes.
    pub max_session_age: Option<Duration>,
    /// Aurora DSQL's SQL rules and limits past the login ([`dsql`]): on by default with DSQL
    /// tokens ([`Config::dsql`]); `None` relays every statement as it is.
    pub dsql_rules: Option<dsql::Limits>,
}

impl Config {
    pub fn new(hostname: impl Into<String>, region: impl Into<String>, upstream: Upstream) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            hostname: hostname.into(),
            token_port: None,
            region: region.into(),
            access_key_id: TEST_ACCESS_KEY_ID.into(),
            secret_access_key: TEST_SECRET_ACCESS_KEY.into(),
            upstream,
            clock: Arc::new(db_auth::SystemClock),
            engine: sigv4::Engine::Rds,
            max_session_age: None,
            dsql_rules: None,
        }
    }

    /// A stand-in for Aurora DSQL: DSQL tokens, DSQL's rules and limits (the documented ones),
    /// and connections closed at 60 minutes.
    pub fn dsql(hostname: impl Into<String>, region: impl Into<String>, upstream: Upstream) -> Self {
        Self {
            engine: sigv4::Engine::Dsql,
            dsql_rules: Some(dsql::Limits::default()),
            max_session_age: Some(Duration::from_secs(3600)),
            ..Self::new(hostname, region, upstream)
        }
    }
}
