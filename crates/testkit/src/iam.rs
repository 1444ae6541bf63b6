//! The IAM path for tests: the stand-in for Aurora's IAM authentication in front of the test
//! server, and store settings that log in through it (token from a cache, TLS verified against
//! the stand-in's CA, `host` the certificate's name, `hostaddr` loopback).

use std::{sync::Arc, time::Duration};

use db_auth::{Clock, SharedCredentialsProvider, TokenCache};
use iam_standin::{Config, Standin, Upstream};
use store::{Auth, CaSource, DbConfig, PasswordSource, TlsMode};

use crate::pg::{Server, TestDb};

/// The host name of the stand-in's certificate; what tokens are signed for.
pub const HOST: &str = "aurora.standin.internal";
pub const REGION: &str = "eu-west-1";

/// The stand-in's way in to the test server: its Unix socket when we started the server (trust
/// authentication there), else TCP (the server must then trust 127.0.0.1).
pub fn upstream(server: &Server) -> Upstream {
    match &server.socket_dir {
        Some(dir) => Upstream::Unix(dir.join(format!(".s.PGSQL.{}", server.port))),
        None => Upstream::Tcp(
            format!("{}:{}", server.host, server.port).parse().expect("the test server has an IP address"),
        ),
    }
}

/// Starts a stand-in for `db`'s server whose clock is `clock`.
pub async fn standin(db: &TestDb, clock: Arc<dyn Clock>) -> Standin {
    let mut config = Config::new(HOST, REGION, upstream(&db.server));
    config.clock = clock;
    Standin::start(config).await.expect("start the IAM stand-in")
}

/// API settings that log in to `db` through `standin` as `app_runtime` with IAM auth.
pub fn config(db: &TestDb, standin: &Standin) -> DbConfig {
    let mut cfg =
        DbConfig::new(HOST, standin.addr().port(), db.name.clone(), "app_runtime", Auth::Iam { region: REGION.into() });
    cfg.hostaddr = Some(standin.addr().ip());
    cfg.tls = TlsMode::VerifyFull(CaSource::Pem(standin.ca_pem().as_bytes().to_vec()));
    cfg.connect_timeout = Duration::from_secs(10);
    cfg
}

/// A token cache that signs with the stand-in's test credentials at `clock`'s time.
pub fn token_cache(clock: Arc<dyn Clock>) -> Arc<TokenCache> {
    let provider = SharedCredentialsProvider::new(iam_standin::test_credentials());
    Arc::new(TokenCache::with_clock(provider, clock, db_auth::DEFAULT_MARGIN))
}

/// The password source for `cfg`: tokens from `cache`.
pub fn tokens(cfg: &DbConfig, cache: Arc<TokenCache>) -> PasswordSource {
    PasswordSource::Token { cache, request: PasswordSource::token_request(cfg).expect("an IAM config") }
}
