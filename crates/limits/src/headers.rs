//! The rate-limit response headers of the IETF httpapi working group's
//! **draft-ietf-httpapi-ratelimit-headers-09** ("RateLimit header fields for HTTP"), as HTTP
//! structured fields (RFC 9651): a List with one Item, the String policy name `"default"` with
//! Integer parameters.
//!
//! - `RateLimit-Policy: "default";q=<quota>;w=<window>`: the quota `q` is the burst `B` and the
//!   window `w` the seconds the budget takes to refill from empty, `B·T` rounded up (so `q / w`
//!   is the rate, or a little under it). Sent on every response that the limiter decided.
//! - `RateLimit: "default";r=<remaining>;t=<reset>`: the requests left now and the seconds until
//!   the budget is full again, rounded up. On answered requests and on 429.
//! - `Retry-After: <seconds>` (RFC 9110, delay-seconds) on 429: rounded up, at least 1.

use std::time::Duration;

use crate::gcra::{Decision, Limit};

/// The `RateLimit-Policy` field name.
pub const RATELIMIT_POLICY: &str = "RateLimit-Policy";
/// The `RateLimit` field name.
pub const RATELIMIT: &str = "RateLimit";
/// The `Retry-After` field name.
pub const RETRY_AFTER: &str = "Retry-After";
/// The one policy's name, the same in both fields.
pub const POLICY: &str = "default";

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The `RateLimit-Policy` value for a limit: `"default";q=<burst>;w=<ceil(B·T) seconds>`.
pub fn ratelimit_policy(limit: Limit) -> String {
    format!("\"{POLICY}\";q={};w={}", limit.burst(), ceil_secs(limit.tolerance()).max(1))
}

/// The `RateLimit` value for a decision: `"default";r=<remaining>;t=<ceil(reset) seconds>`.
pub fn ratelimit(decision: &Decision) -> String {
    format!("\"{POLICY}\";r={};t={}", decision.remaining, ceil_secs(decision.reset_after))
}

/// The `Retry-After` value for a refused decision (`None` when it was allowed).
pub fn retry_after(decision: &Decision) -> Option<String> {
    (!decision.allowed).then(|| ceil_secs(decision.retry_after).max(1).to_string())
}

/// The headers of a response that the limiter decided, as `(name, value)` pairs: the policy and
/// `RateLimit` always, `Retry-After` when refused.
pub fn response_headers(limit: Limit, decision: &Decision) -> Vec<(&'static str, String)> {
    let mut out = vec![(RATELIMIT_POLICY, ratelimit_policy(limit)), (RATELIMIT, ratelimit(decision))];
    if let Some(v) = retry_after(decision) {
        out.push((RETRY_AFTER, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parsed List member: a String item with its Integer parameters, in order.
    type Member = (String, Vec<(String, i64)>);

    /// A strict parser for the subset of RFC 9651 the draft uses here: a List of Items whose
    /// bare item is a String and whose parameters are Integers (`sf-list`, `sf-string`,
    /// `parameters`, `key`, `sf-integer`). Anything else is an error.
    fn parse_list(input: &str) -> Result<Vec<Member>, String> {
        let b = input.as_bytes();
        let mut i = 0;
        let mut out = Vec::new();
        let sp = |i: &mut usize| {
            while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
                *i += 1;
            }
        };
        loop {
            // sf-string: DQUOTE *( unescaped / "\" ( DQUOTE / "\" ) ) DQUOTE
            if b.get(i) != Some(&b'"') {
                return Err(format!("expected a string at {i}"));
            }
            i += 1;
            let mut s = String::new();
            loop {
                match b.get(i) {
                    None => return Err("unterminated string".into()),
                    Some(b'"') => break,
                    Some(b'\\') => match b.get(i + 1) {
                        Some(c @ (b'"' | b'\\')) => {
                            s.push(*c as char);
                            i += 1;
                        }
                        _ => return Err("bad escape".into()),
                    },
                    Some(c) if (0x20..0x7f).contains(c) => s.push(*c as char),
                    Some(_) => return Err("character outside a string's range".into()),
                }
                i += 1;
            }
            i += 1;
            // parameters: *( ";" *SP key [ "=" bare-item ] )
            let mut params = Vec::new();
            while b.get(i) == Some(&b';') {
                i += 1;
                while b.get(i) == Some(&b' ') {
                    i += 1;
                }
                let start = i;
                if !matches!(b.get(i), Some(b'a'..=b'z' | b'*')) {
                    return Err(format!("bad key at {i}"));
                }
                while matches!(b.get(i), Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')) {
                    i += 1;
                }
                let key = input[start..i].to_string();
                if b.get(i) != Some(&b'=') {
                    return Err(format!("parameter {key} has no integer"));
                }
                i += 1;
                let start = i;
                if b.get(i) == Some(&b'-') {
                    i += 1;
                }
                let digits = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                if i == digits || i - digits > 15 {
                    return Err(format!("parameter {key}: not a 1 to 15 digit integer"));
                }
                params.push((key, input[start..i].parse().map_err(|e| format!("{e}"))?));
            }
            out.push((s, params));
            sp(&mut i);
            match b.get(i) {
                None => return Ok(out),
                Some(b',') => {
                    i += 1;
                    sp(&mut i);
                    if i == b.len() {
                        return Err("trailing comma".into());
                    }
                }
                Some(_) => return Err(format!("unexpected byte at {i}")),
            }
        }
    }

    fn params(value: &str) -> Vec<(String, i64)> {
        let list = parse_list(value).unwrap_or_else(|e| panic!("{value:?}: {e}"));
        assert_eq!(list.len(), 1, "{value:?}");
        assert_eq!(list[0].0, POLICY);
        list[0].1.clone()
    }

    fn p(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn the_parser_rejects_what_the_draft_does_not_allow() {
        assert!(parse_list(r#""default";q=10;w=1, "daily";q=1000;w=86400"#).is_ok());
        for bad in
            ["default;q=1", r#""default";Q=1"#, r#""default";q=1.5"#, r#""default";q="#, r#""default""x""#, r#""a","#]
        {
            assert!(parse_list(bad).is_err(), "{bad}");
        }
        assert!(parse_list(r#""default";r=1234567890123456"#).is_err(), "16 digits");
    }

    #[test]
    fn the_policy_field() {
        // free: 5 a second, burst 40: refills in 8 s.
        let free = Limit::new(Duration::from_millis(200), 40).unwrap();
        assert_eq!(ratelimit_policy(free), r#""default";q=40;w=8"#);
        assert_eq!(params(&ratelimit_policy(free)), p(&[("q", 40), ("w", 8)]));
        // 3 a second (333,333 µs), burst 10: 3.33 s, rounded up.
        let odd = Limit::new(Duration::from_micros(333_333), 10).unwrap();
        assert_eq!(params(&ratelimit_policy(odd)), p(&[("q", 10), ("w", 4)]));
        // Never a zero window.
        let fast = Limit::new(Duration::from_micros(1), 1).unwrap();
        assert_eq!(params(&ratelimit_policy(fast)), p(&[("q", 1), ("w", 1)]));
    }

    #[test]
    fn answered_and_refused_responses() {
        let limit = Limit::new(Duration::from_millis(200), 40).unwrap();
        let ok = Decision {
            allowed: true,
            remaining: 17,
            reset_after: Duration::from_millis(4_600),
            retry_after: Duration::ZERO,
        };
        assert_eq!(ratelimit(&ok), r#""default";r=17;t=5"#);
        assert_eq!(params(&ratelimit(&ok)), p(&[("r", 17), ("t", 5)]));
        assert_eq!(retry_after(&ok), None);
        let names: Vec<_> = response_headers(limit, &ok).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["RateLimit-Policy", "RateLimit"]);

        let refused = Decision {
            allowed: false,
            remaining: 0,
            reset_after: Duration::from_secs(8),
            retry_after: Duration::from_millis(10),
        };
        let headers = response_headers(limit, &refused);
        assert_eq!(headers[1], (RATELIMIT, r#""default";r=0;t=8"#.to_string()));
        // Rounded up to a whole second, never 0: a client that retries at once would be refused.
        assert_eq!(headers[2], (RETRY_AFTER, "1".to_string()));
        let later = Decision { retry_after: Duration::from_millis(2_001), ..refused };
        assert_eq!(retry_after(&later).as_deref(), Some("3"));
        for (_, v) in &headers[..2] {
            assert!(params(v).iter().all(|(_, n)| *n >= 0));
        }
        assert!(headers[2].1.bytes().all(|c| c.is_ascii_digit()));
    }
}
