//! Where a new physical connection gets its password: a fixed one, or an IAM token from the
//! cache.

use std::{fmt, sync::Arc};

use crate::{DbConfig, Error, Result, Secret};

/// Where a new physical connection gets its password.
#[derive(Clone)]
pub enum PasswordSource {
    /// A fixed password, or none (trust authentication on a local database).
    Fixed(Option<Secret>),
    /// An IAM token from the cache: every new connection asks, so a reconnect inside the
    /// token's life reuses it and one after gets a fresh one.
    Token { cache: Arc<db_auth::TokenCache>, request: db_auth::TokenRequest },
}

impl fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasswordSource::Fixed(p) => f.debug_tuple("Fixed").field(p).finish(),
            PasswordSource::Token { request, .. } => {
                f.debug_struct("Token").field("request", request).finish_non_exhaustive()
            }
        }
    }
}

impl PasswordSource {
    /// The token request that `cfg` implies (IAM or DSQL auth), if any.
    pub fn token_request(cfg: &DbConfig) -> Option<db_auth::TokenRequest> {
        match &cfg.auth {
            crate::Auth::Password(_) => None,
            crate::Auth::Iam { region } => Some(db_auth::TokenRequest::rds(&cfg.host, cfg.port, &cfg.user, region)),
            crate::Auth::Dsql { region, admin } => Some(db_auth::TokenRequest::dsql(&cfg.host, region, *admin)),
        }
    }

    /// The configured password, for password auth (no credentials to load).
    pub fn fixed(cfg: &DbConfig) -> Option<Self> {
        match &cfg.auth {
            crate::Auth::Password(p) => Some(PasswordSource::Fixed(p.clone())),
            _ => None,
        }
    }

    /// The source `cfg` asks for: its password, or tokens signed with aws-config's default
    /// credential chain (built here, once).
    pub async fn for_config(cfg: &DbConfig) -> Result<Self> {
        if let Some(fixed) = Self::fixed(cfg) {
            return Ok(fixed);
        }
        let request = Self::token_request(cfg).expect("every auth but password has a token request");
        let (provider, _) = db_auth::default_credentials(Some(request.region.clone()))
            .await
            .map_err(|e| Error::Config { var: "AWS_REGION", problem: e.to_string() })?;
        Ok(PasswordSource::Token { cache: Arc::new(db_auth::TokenCache::new(provider)), request })
    }

    pub async fn password(&self) -> Result<Option<Secret>> {
        match self {
            PasswordSource::Fixed(p) => Ok(p.clone()),
            PasswordSource::Token { cache, request } => match cache.token(request).await {
                Ok(token) => Ok(Some(Secret::new(token.as_ref()))),
                Err(e) => Err(Error::unavailable(format!("cannot sign a database token: {e}"))),
            },
        }
    }

    /// The server rejected the password: a cached token must not be offered again.
    pub fn rejected(&self) {
        if let PasswordSource::Token { cache, request } = self {
            cache.invalidate(request);
        }
    }
}
