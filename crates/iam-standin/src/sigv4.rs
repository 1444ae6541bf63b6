//! Verifies an RDS IAM auth token the way the database side must: an implementation of SigV4
//! query-string verification written from the specification, independent of the `aws-sigv4`
//! crate that signs the tokens, so that a mistake in one is caught by the other.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// A token dated this far in the future is refused (clock skew allowance).
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// Which service's tokens: Aurora/RDS (`rds-db`, `Action=connect`, `DBUser`, host and port) or
/// Aurora DSQL (`dsql`, `Action=DbConnect`, or `DbConnectAdmin` for the `admin` role; the host
/// without a port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    #[default]
    Rds,
    Dsql,
}

/// What a token must be for.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    pub engine: Engine,
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub region: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub now: SystemTime,
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let dt = time::PrimitiveDateTime::parse(s, &fmt).ok()?;
    Some(dt.assume_utc().into())
}

/// Checks `token` against `expect`; the error says what is wrong (for the stand-in's log,
/// never for the client, which only learns that authentication failed).
pub fn verify(token: &str, e: &Expect<'_>) -> Result<(), String> {
    let (authority, query) = token.split_once("/?").ok_or("not a presigned URL")?;
    let service = match e.engine {
        Engine::Rds => {
            let (host, port) = authority.rsplit_once(':').ok_or("no port in the token")?;
            if !host.eq_ignore_ascii_case(e.host) || port != e.port.to_string() {
                return Err(format!("signed for {authority}, not {}:{}", e.host, e.port));
            }
            "rds-db"
        }
        Engine::Dsql => {
            if !authority.eq_ignore_ascii_case(e.host) {
                return Err(format!("signed for {authority}, not {} (DSQL tokens carry no port)", e.host));
            }
            "dsql"
        }
    };
    let mut params: Vec<(String, String)> = Vec::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').ok_or("malformed query")?;
        let dec = |s: &str| {
            percent_decode_str(s).decode_utf8().map(|c| c.into_owned()).map_err(|_| "bad percent-encoding".to_string())
        };
        params.push((dec(k)?, dec(v)?));
    }
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let need = |name: &str| get(name).ok_or(format!("{name} is missing"));
    match e.engine {
        Engine::Rds => {
            if need("Action")? != "connect" {
                return Err("Action is not connect".into());
            }
            if need("DBUser")? != e.user {
                return Err(format!("signed for user {:?}, not {:?}", need("DBUser")?, e.user));
            }
        }
        Engine::Dsql => {
            // The admin role logs in with DbConnectAdmin, every other role with DbConnect.
            let want = if e.user == "admin" { "DbConnectAdmin" } else { "DbConnect" };
            if need("Action")? != want {
                return Err(format!(
                    "Action {:?} does not log in as {:?} (that takes {want})",
                    need("Action")?,
                    e.user
                ));
            }
            if get("DBUser").is_some() {
                return Err("a DSQL token names no DBUser".into());
            }
        }
    }
    if need("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
        return Err("unsupported algorithm".into());
    }
    if need("X-Amz-SignedHeaders")? != "host" {
        return Err("signed headers must be exactly host".into());
    }
    let credential = need("X-Amz-Credential")?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, _, terminator] = parts[..] else { return Err("malformed credential scope".into()) };
    if akid != e.access_key_id {
        return Err("unknown access key".into());
    }
    if region != e.region || parts[3] != service || terminator != "aws4_request" {
        return Err(format!("scope {date}/{region}/{} is not for {service} in {}", parts[3], e.region));
    }
    let amz_date = need("X-Amz-Date")?;
    let signed_at = parse_amz_date(amz_date).ok_or("malformed X-Amz-Date")?;
    if !amz_date.starts_with(date) {
        return Err("credential date and X-Amz-Date differ".into());
    }
    let expires: u64 = need("X-Amz-Expires")?.parse().map_err(|_| "malformed X-Amz-Expires")?;
    if expires == 0 || expires > 900 {
        return Err(format!("X-Amz-Expires {expires} is not within 1..900"));
    }
    if e.now >= signed_at + Duration::from_secs(expires) {
        return Err("the token has expired".into());
    }
    if signed_at > e.now + MAX_SKEW {
        return Err("the token is dated in the future".into());
    }

    let mut canonical: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature")
        .map(|(k, v)| (utf8_percent_encode(k, UNRESERVED).to_string(), utf8_percent_encode(v, UNRESERVED).to_string()))
        .collect();
    canonical.sort();
    let canonical_query = canonical.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let host_header = if e.engine == Engine::Dsql || e.port == 443 {
        e.host.to_ascii_lowercase()
    } else {
        format!("{}:{}", e.host.to_ascii_lowercase(), e.port)
    };
    let canonical_request = format!("GET\n/\n{canonical_query}\nhost:{host_header}\n\nhost\n{EMPTY_SHA256}");
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let string_to_sign =
        format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request)));
    let k_date = hmac(format!("AWS4{}", e.secret_access_key).as_bytes(), date);
    let k_region = hmac(&k_date, region);
    let k_service = hmac(&k_region, service);
    let k_signing = hmac(&k_service, "aws4_request");
    let given = hex::decode(need("X-Amz-Signature")?).map_err(|_| "malformed signature")?;
    // verify_slice compares in constant time: a mismatch says nothing about where.
    let mut mac = Hmac::<Sha256>::new_from_slice(&k_signing).expect("HMAC takes any key length");
    mac.update(string_to_sign.as_bytes());
    mac.verify_slice(&given).map_err(|_| "signature mismatch".to_string())
}
