//! IAM database authentication: the function logs in to Aurora PostgreSQL with a short-lived
//! signed token as its password, not with a stored password.
//!
//! - [`sign`]: an RDS / Aurora token (`rds-db`, `Action=connect`, `DBUser`) or an Aurora DSQL
//!   token (`dsql`, `DbConnect` / `DbConnectAdmin`), presigned with `aws-sigv4` and laid out
//!   byte for byte as botocore's `generate_db_auth_token` does (tests check committed vectors).
//! - [`TokenCache`]: one token per (kind, host, port, user, region), reused by every new
//!   connection until a margin before the token or the credentials expire, one signing for
//!   concurrent callers. Credentials come from aws-config's default chain (on Lambda: the
//!   environment, with a session token), through a provider built once.
//!
//! No HTTP server here; the crate is shared by the Lambda function, the store and `db-token`.

mod cache;
mod error;
mod no_network;
mod token;

#[cfg(any(test, feature = "test-util"))]
pub use cache::ManualClock;
pub use cache::{Clock, DEFAULT_MARGIN, SystemClock, TokenCache};
pub use error::{Error, Result};
pub use token::{RDS_TOKEN_LIFETIME, TokenKind, TokenRequest, sign};

pub use aws_credential_types::{Credentials, provider::SharedCredentialsProvider};

/// Log targets that must stay at `info` or quieter whatever the configured level: `aws_sigv4`
/// logs the canonical request at `trace`, and for a token that includes the session token;
/// `lambda_runtime` logs every raw event at `trace`, bearer tokens and invitation codes in it.
/// Every entry point appends `target=info` for each of these to its log filter.
pub const QUIET_LOG_TARGETS: &[&str] =
    &["aws_sigv4", "aws_smithy_runtime", "aws_config", "aws_credential_types", "lambda_runtime"];

/// `spec` (a level or an `EnvFilter` directive list) with [`QUIET_LOG_TARGETS`] capped at `info`.
pub fn log_directives(spec: &str) -> String {
    let mut out = spec.to_string();
    for target in QUIET_LOG_TARGETS {
        out.push_str(&format!(",{target}=info"));
    }
    out
}

/// The default credential chain of aws-config, and the region it resolves (`AWS_REGION`, then
/// the profile). Built once at start-up; the chain reads credentials when a token is signed.
/// A missing region is an error here, never a silent default: a token signed for the wrong
/// region is refused by the database.
///
/// The chain is built without an HTTP client (`no_network`): signing a token needs no network,
/// and leaving out an HTTPS stack keeps the Lambda package small. Credentials therefore come
/// from the environment (what Lambda provides), the shared credentials file or
/// `credential_process`; SSO and instance-metadata credentials need `aws configure
/// export-credentials` first (the scripts do that when the AWS CLI is installed).
pub async fn default_credentials(region: Option<String>) -> Result<(SharedCredentialsProvider, String)> {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(no_network::NoNetwork);
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r));
    }
    let config = loader.load().await;
    let region = config.region().map(|r| r.to_string()).ok_or(Error::NoRegion)?;
    let provider = config
        .credentials_provider()
        .ok_or_else(|| Error::Credentials("no credential provider is configured".into()))?;
    Ok((provider, region))
}
