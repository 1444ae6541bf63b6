//! The domain's values. Input is validated by parsing into these types (`TodoTitle::parse`), so
//! a value that reaches a query is already known to be good. The records built of them are in
//! `records.rs`.

use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Writes a timestamp as RFC 3339 in UTC (`2026-11-22T10:49:13.123456Z`, trailing zeros of the
/// fraction dropped, as the `time` crate writes it), into a buffer on the stack: a page of todos
/// has 40 timestamps, and formatting each through `time`'s general formatter allocated a string
/// apiece (a tenth of a list request's CPU time).
pub(crate) fn rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0; RFC3339_MAX];
    s.serialize_str(&rfc3339_text(t, &mut buf).map_err(serde::ser::Error::custom)?)
}

/// The longest timestamp [`rfc3339_text`] writes into its buffer.
pub const RFC3339_MAX: usize = 32;

/// `t` in RFC 3339 (UTC, `Z`, the fraction without trailing zeros), as the `time` crate writes
/// it: written into `buf` for years 0 to 9999, without allocating; what every timestamp of the
/// API looks like.
pub fn rfc3339_text<'b>(
    t: &OffsetDateTime,
    buf: &'b mut [u8; RFC3339_MAX],
) -> Result<std::borrow::Cow<'b, str>, time::error::Format> {
    struct Buf<'b> {
        bytes: &'b mut [u8; RFC3339_MAX],
        len: usize,
    }
    impl Buf<'_> {
        fn push(&mut self, b: u8) {
            self.bytes[self.len] = b;
            self.len += 1;
        }
        fn digits(&mut self, mut value: u32, width: usize) {
            for i in (0..width).rev() {
                self.bytes[self.len + i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
            self.len += width;
        }
    }
    let t = t.to_offset(time::UtcOffset::UTC);
    if !(0..=9999).contains(&t.year()) {
        return Ok(std::borrow::Cow::Owned(t.format(&time::format_description::well_known::Rfc3339)?));
    }
    let (year, month, day) = t.to_calendar_date();
    let (hour, minute, second, nanos) = t.to_hms_nano();
    let mut w = Buf { bytes: buf, len: 0 };
    w.digits(year as u32, 4);
    for (sep, value) in [(b'-', u8::from(month)), (b'-', day), (b'T', hour), (b':', minute), (b':', second)] {
        w.push(sep);
        w.digits(value as u32, 2);
    }
    let (mut fraction, mut width) = (nanos, 9);
    if fraction != 0 {
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        w.push(b'.');
        w.digits(fraction, width);
    }
    w.push(b'Z');
    let len = w.len;
    Ok(std::borrow::Cow::Borrowed(std::str::from_utf8(&buf[..len]).expect("ASCII digits and separators")))
}

/// Why a value was rejected: the field it came from and a message a client can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self { field, message: message.into() }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A UUID in its hyphenated form (`6a1f0c9e-7d61-4c3b-9a53-2f8f0b7c1d2e`), the only one the API
/// writes and its OpenAPI document names; the simple, braced and URN forms are refused, so that
/// one id has one spelling.
pub fn parse_uuid(s: &str) -> Option<Uuid> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok()
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Parses the textual UUID form used in paths and bodies.
            pub fn parse(s: &str) -> Result<Self, Invalid> {
                parse_uuid(s).map(Self).ok_or_else(|| Invalid::new($field, "must be a UUID"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A tenant: one customer of the SaaS, with its own members and todos.
    TenantId, "tenant_id"
);
id_type!(
    /// A user: random, assigned when the user registers (see `store::Store::register`), so
    /// nobody can compute another user's id from their subject.
    UserId, "user_id"
);
id_type!(TodoId, "id");
id_type!(
    /// An invitation to a tenant.
    InvitationId, "invitation_id"
);

/// A member's role in a tenant. Admins manage the tenant and its members, members edit todos,
/// viewers read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
    Viewer,
}

impl Role {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "viewer" => Ok(Role::Viewer),
            _ => Err(Invalid::new("role", "must be admin, member or viewer")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    /// The role as stored; the database's CHECK constraint allows nothing else.
    /// A role as the database spells it.
    pub fn from_db(s: &str) -> Self {
        Self::parse(s).unwrap_or(Role::Viewer)
    }
}

/// Rejects text that would be invisible or break lines in a UI or a log: control characters
/// (NUL included) anywhere.
fn check_text(field: &'static str, s: &str, max: usize) -> Result<(), Invalid> {
    let len = s.chars().count();
    if len == 0 {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if len > max {
        return Err(Invalid::new(field, format!("must be at most {max} characters")));
    }
    if s.chars().any(char::is_control) {
        return Err(Invalid::new(field, "must not contain control characters"));
    }
    Ok(())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, trim: $trim:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const MAX_CHARS: usize = $max;

            pub fn parse(s: &str) -> Result<Self, Invalid> {
                let s = if $trim { s.trim() } else { s };
                check_text($field, s, $max)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

text_type!(
    /// A todo's title: 1 to 256 characters (the column is `varchar(256)`), kept as written.
    TodoTitle, "title", 256, trim: false
);
text_type!(
    /// A tenant's name: 1 to 200 characters after trimming.
    TenantName, "name", 200, trim: true
);
text_type!(
    /// A person's display name: 1 to 200 characters after trimming.
    DisplayName, "name", 200, trim: true
);

/// An email address, lower-cased. The shape check is deliberately modest (one `@`, a dot in
/// the domain, no spaces): the only real check of an address is mail that arrives. Lengths are
/// in characters, as the OpenAPI document and the column's CHECK count them, and the 254 are
/// counted as sent, surrounding whitespace included (a length the document can state exactly).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const MAX_CHARS: usize = 254;
    pub const MAX_LOCAL_CHARS: usize = 64;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new("email", "must be an email address like name@example.com");
        if s.chars().count() > Self::MAX_CHARS {
            return Err(bad());
        }
        let s = s.trim();
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.chars().count() > Self::MAX_LOCAL_CHARS || !domain_ok {
            return Err(bad());
        }
        // Lower-cased character by character, keeping the few characters whose lower case is
        // longer (`İ`): an address the length check accepted stays within the column's limit.
        let lower = s
            .chars()
            .map(|c| {
                let mut l = c.to_lowercase();
                match (l.next(), l.next()) {
                    (Some(one), None) => one,
                    _ => c,
                }
            })
            .collect();
        Ok(Self(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_one_spelling() {
        let id = "6a1f0c9e-7d61-4c3b-9a53-2f8f0b7c1d2e";
        assert!(TodoId::parse(id).is_ok());
        for other in [
            "6a1f0c9e7d614c3b9a532f8f0b7c1d2e",
            "{6a1f0c9e-7d61-4c3b-9a53-2f8f0b7c1d2e}",
            "urn:uuid:6a1f0c9e-7d61-4c3b-9a53-2f8f0b7c1d2e",
        ] {
            assert!(TodoId::parse(other).is_err(), "{other}");
        }
    }

    #[test]
    fn titles_are_bounded_and_clean() {
        assert!(TodoTitle::parse("buy milk").is_ok());
        assert!(TodoTitle::parse(&"é".repeat(256)).is_ok(), "256 characters, not bytes");
        assert!(TodoTitle::parse(&"x".repeat(257)).is_err());
        assert!(TodoTitle::parse("").is_err());
        assert!(TodoTitle::parse("a\0b").is_err());
        assert!(TodoTitle::parse("a\nb").is_err());
    }

    #[test]
    fn names_are_trimmed() {
        assert_eq!(TenantName::parse("  Acme  ").unwrap().as_str(), "Acme");
        assert!(TenantName::parse("   ").is_err());
        assert!(DisplayName::parse(&"n".repeat(201)).is_err());
    }

    #[test]
    fn emails_have_a_shape() {
        assert_eq!(Email::parse(" Alice@Example.COM ").unwrap().as_str(), "alice@example.com");
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@@example.com",
            "a@example..com",
            "a@.example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn email_lengths_are_characters() {
        let local = "é".repeat(64);
        assert!(Email::parse(&format!("{local}@example.com")).is_ok(), "64 characters, 128 bytes");
        assert!(Email::parse(&format!("é{local}@example.com")).is_err());
        let long = format!("a@{}.com", "é".repeat(248));
        assert_eq!(long.chars().count(), 254);
        assert!(Email::parse(&long).is_ok());
        assert!(Email::parse(&format!("a{long}")).is_err());
        assert!(Email::parse(&format!(" {long}")).is_err(), "254 as sent, whitespace included");
        let dotted = Email::parse(&format!("{}@example.com", "İ".repeat(64))).unwrap();
        assert_eq!(dotted.as_str().chars().count(), 64 + 12, "no character grows when lower-cased");
    }

    #[test]
    fn timestamps_are_written_as_the_time_crate_writes_rfc3339() {
        #[derive(Serialize)]
        struct T(#[serde(serialize_with = "rfc3339")] OffsetDateTime);
        let fmt = time::format_description::well_known::Rfc3339;
        let mut cases = vec![OffsetDateTime::UNIX_EPOCH, time::macros::datetime!(2026-11-22 10:49:13.123456 UTC)];
        cases.push(time::macros::datetime!(2026-01-02 03:04:05.1 +02:00));
        cases.push(time::macros::datetime!(1999-12-31 23:59:59.000001 UTC));
        let mut x: i128 = 1_795_000_000_123_456_789;
        for _ in 0..2000 {
            x = (x * 6364136223846793005 + 1442695040888963407) % 4_000_000_000_000_000_000;
            let micros = x / 1000 * 1000;
            cases.push(OffsetDateTime::from_unix_timestamp_nanos(micros).unwrap());
        }
        for t in cases {
            let ours = serde_json::to_string(&T(t)).unwrap();
            let theirs = format!("\"{}\"", t.to_offset(time::UtcOffset::UTC).format(&fmt).unwrap());
            assert_eq!(ours, theirs);
        }
    }
}
