//! Signing one token.

use std::{
    borrow::Cow,
    fmt::Write,
    time::{Duration, SystemTime},
};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign as sigv4_sign},
    sign::v4,
};
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::{Error, Result};

/// RDS tokens are valid for 15 minutes; botocore does not let this be changed.
pub const RDS_TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Everything but the unreserved characters of RFC 3986, as SigV4 (and botocore) encode.
const SIGV4: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn enc(s: &str) -> Cow<'_, str> {
    utf8_percent_encode(s, SIGV4).into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Aurora / RDS PostgreSQL: service `rds-db`, `Action=connect&DBUser=...`.
    Rds,
    /// Aurora DSQL, `Action=DbConnect` (custom database roles).
    Dsql,
    /// Aurora DSQL, `Action=DbConnectAdmin` (the `admin` role).
    DsqlAdmin,
}

impl TokenKind {
    fn service(self) -> &'static str {
        match self {
            TokenKind::Rds => "rds-db",
            TokenKind::Dsql | TokenKind::DsqlAdmin => "dsql",
        }
    }

    fn action(self) -> &'static str {
        match self {
            TokenKind::Rds => "connect",
            TokenKind::Dsql => "DbConnect",
            TokenKind::DsqlAdmin => "DbConnectAdmin",
        }
    }
}

/// What a token is for. Also the token cache's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenRequest {
    pub kind: TokenKind,
    pub host: String,
    /// Part of an RDS token; DSQL tokens carry no port.
    pub port: u16,
    /// The database user an RDS token is for; DSQL tokens carry no user.
    pub user: String,
    pub region: String,
    pub expires_in: Duration,
}

impl TokenRequest {
    pub fn rds(host: impl Into<String>, port: u16, user: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            kind: TokenKind::Rds,
            host: host.into(),
            port,
            user: user.into(),
            region: region.into(),
            expires_in: RDS_TOKEN_LIFETIME,
        }
    }

    pub fn dsql(host: impl Into<String>, region: impl Into<String>, admin: bool) -> Self {
        Self {
            kind: if admin { TokenKind::DsqlAdmin } else { TokenKind::Dsql },
            host: host.into(),
            port: 5432,
            user: String::new(),
            region: region.into(),
            expires_in: RDS_TOKEN_LIFETIME,
        }
    }

    fn validate(&self) -> Result<()> {
        let bad = |why: &str| Err(Error::Request(why.to_string()));
        if self.host.is_empty() || self.host.contains(|c: char| c == '/' || c == '@' || c.is_whitespace()) {
            return bad("the host must be a bare host name");
        }
        if self.region.is_empty() {
            return Err(Error::NoRegion);
        }
        if self.kind == TokenKind::Rds && self.user.is_empty() {
            return bad("an RDS token needs a database user");
        }
        if self.expires_in.is_zero() || self.expires_in > Duration::from_secs(7 * 24 * 3600) {
            return bad("the lifetime must be between 1 second and 7 days");
        }
        Ok(())
    }

    /// `host:port` (RDS) or `host` (DSQL), as the token starts.
    fn authority(&self) -> String {
        match self.kind {
            TokenKind::Rds => format!("{}:{}", self.host, self.port),
            TokenKind::Dsql | TokenKind::DsqlAdmin => self.host.clone(),
        }
    }

    /// The signed `host` header: lower case, without the default HTTPS port.
    fn host_header(&self) -> String {
        let host = self.host.to_ascii_lowercase();
        match self.kind {
            TokenKind::Rds if self.port != 443 => format!("{host}:{}", self.port),
            _ => host,
        }
    }

    /// The operation's own query: `Action=connect&DBUser=...` or `Action=DbConnect`.
    fn operation_query(&self) -> String {
        match self.kind {
            TokenKind::Rds => format!("Action={}&DBUser={}", self.kind.action(), enc(&self.user)),
            _ => format!("Action={}", self.kind.action()),
        }
    }
}

/// Signs a token with `creds` at `now`: a presigned `GET https://host[:port]/?Action=...`
/// without its scheme, in botocore's parameter order.
pub fn sign(req: &TokenRequest, creds: &Credentials, now: SystemTime) -> Result<String> {
    req.validate()?;
    let op = req.operation_query();
    let url = format!("https://{}/?{op}", req.authority());
    let host = req.host_header();
    let headers = [("host", host.as_str())];
    let signable = SignableRequest::new("GET", &url, headers.into_iter(), SignableBody::Bytes(&[]))
        .map_err(|e| Error::Request(e.to_string()))?;

    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(req.expires_in);
    let identity: Identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&req.region)
        .name(req.kind.service())
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| Error::Signing(e.to_string()))?
        .into();
    let (instructions, _) = sigv4_sign(signable, &params).map_err(|e| Error::Signing(e.to_string()))?.into_parts();
    let signed = instructions.params();
    let param = |name: &str| signed.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_ref());

    let mut token = String::with_capacity(url.len() + 700);
    write!(token, "{}/?{op}", req.authority()).expect("writing to a String");
    for name in [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Security-Token",
    ] {
        if let Some(value) = param(name) {
            write!(token, "&{name}={}", enc(value)).expect("writing to a String");
        }
    }
    let signature =
        param("X-Amz-Signature").ok_or_else(|| Error::Signing("no signature in the signing output".into()))?;
    write!(token, "&X-Amz-Signature={signature}").expect("writing to a String");
    Ok(token)
}
