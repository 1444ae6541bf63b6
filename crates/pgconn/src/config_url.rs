//! `DATABASE_URL`: database settings from a `postgres://` URL (local development).

use std::{net::IpAddr, str::FromStr};

use super::{Auth, CaSource, DbConfig, TlsMode, invalid};
use crate::{Result, Secret};

impl DbConfig {
    /// Parses `postgres://user:password@host:port/dbname?sslmode=...`. `sslmode=require`,
    /// `verify-ca` and `verify-full` all mean verified TLS here (rustls always verifies);
    /// `disable` means plain TCP. Without `sslmode`: verified TLS, unless the host is loopback
    /// (a local database). Any other value is an error that names it: a typo must not quietly
    /// turn TLS off.
    pub fn from_url(url: &str) -> Result<Self> {
        let bad = |problem: &str| invalid("DATABASE_URL", problem.to_string());
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut verify: Option<bool> = None;
        let mut ca = CaSource::RdsBundle;
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("sslmode", "require" | "verify-ca" | "verify-full")) => verify = Some(true),
                Some(("sslmode", "disable")) => verify = Some(false),
                Some(("sslmode", other)) => {
                    return Err(bad(&format!(
                        "has sslmode={other:?}; use verify-full (also: require, verify-ca; all verify the server) or disable"
                    )));
                }
                Some(("sslrootcert", path)) => ca = CaSource::File(path.into()),
                _ => rest.push(pair),
            }
        }
        let url = if rest.is_empty() { base.to_string() } else { format!("{base}?{}", rest.join("&")) };
        // tokio-postgres knows the URL grammar (percent-decoding, IPv6 hosts); reuse it.
        let pg = tokio_postgres::Config::from_str(&url).map_err(|_| bad("is not a valid postgres:// URL"))?;
        let host = match pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => return Err(bad("needs a host name (unix sockets are not supported)")),
        };
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let user = pg.get_user().ok_or_else(|| bad("needs a user name"))?.to_string();
        let dbname = pg.get_dbname().unwrap_or(&user).to_string();
        let password = pg.get_password().map(|p| Secret::new(String::from_utf8_lossy(p).into_owned()));
        let verify = verify.unwrap_or_else(|| !is_loopback(&host));
        let mut cfg = Self::new(host, port, dbname, user, Auth::Password(password));
        cfg.tls = if verify { TlsMode::VerifyFull(ca) } else { TlsMode::Disable };
        Ok(cfg)
    }
}

/// `localhost`, or an address in 127.0.0.0/8 or `::1`.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
