//! The domain types. Input is validated by parsing into these types (`TodoTitle::parse`), so a
//! value that reaches a query is already known to be good.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Writes a timestamp as RFC 3339 in UTC (`2026-11-22T10:49:13.123456Z`, trailing zeros of the
/// fraction dropped, as the `time` crate writes it), into a buffer on the stack: a page of todos
/// has 40 timestamps, and formatting each through `time`'s general formatter allocated a string
/// apiece (a tenth of a list request's CPU time).
fn rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    struct Buf {
        bytes: [u8; 32],
        len: usize,
    }
    impl Buf {
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
        let text = t.format(&time::format_description::well_known::Rfc3339).map_err(serde::ser::Error::custom)?;
        return s.serialize_str(&text);
    }
    let (year, month, day) = t.to_calendar_date();
    let (hour, minute, second, nanos) = t.to_hms_nano();
    let mut buf = Buf { bytes: [0; 32], len: 0 };
    buf.digits(year as u32, 4);
    for (sep, value) in [(b'-', u8::from(month)), (b'-', day), (b'T', hour), (b':', minute), (b':', second)] {
        buf.push(sep);
        buf.digits(value as u32, 2);
    }
    let (mut fraction, mut width) = (nanos, 9);
    if fraction != 0 {
        while fraction % 10 == 0 {
            fraction /= 10;
            width -= 1;
        }
        buf.push(b'.');
        buf.digits(fraction, width);
    }
    buf.push(b'Z');
    s.serialize_str(std::str::from_utf8(&buf.bytes[..buf.len]).expect("ASCII digits and separators"))
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

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// Parses the textual UUID form used in paths and bodies.
            pub fn parse(s: &str) -> Result<Self, Invalid> {
                Uuid::try_parse(s).map(Self).map_err(|_| Invalid::new($field, "must be a UUID"))
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
    /// A user. Derived from the identity provider's subject, see [`UserId::for_subject`].
    UserId, "user_id"
);
id_type!(TodoId, "id");

/// Namespace of the UUIDv5 user ids. Changing it would give every user a new id.
const USER_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2b7e_8d3a_4c59_9e21_5a7b_0c4d_e8f3);

impl UserId {
    /// The id of the user with this subject (`sub` claim). Derived rather than looked up, so a
    /// request knows its caller's id without a database round trip.
    pub fn for_subject(subject: &str) -> Self {
        Self(Uuid::new_v5(&USER_NAMESPACE, subject.as_bytes()))
    }
}

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
    pub(crate) fn from_db(s: &str) -> Self {
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
/// the domain, no spaces): the only real check of an address is mail that arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let s = s.trim();
        let bad = || Invalid::new("email", "must be an email address like name@example.com");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(bad());
        }
        Ok(Self(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Page size: 1 to 200, 50 when not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(u8);

impl Limit {
    pub const DEFAULT: Limit = Limit(50);
    pub const MAX: u8 = 200;

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        match s.parse::<u8>() {
            Ok(n @ 1..=Self::MAX) => Ok(Limit(n)),
            _ => Err(Invalid::new("limit", format!("must be a whole number from 1 to {}", Self::MAX))),
        }
    }

    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl Default for Limit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where the next page starts: the sort key `(created_at, id)` of the last item returned.
/// Opaque to clients (versioned base64url); a forged cursor can only move the page within what
/// the caller may see anyway, so it is checked for shape, not signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub(crate) created_at: OffsetDateTime,
    pub(crate) id: Uuid,
}

const CURSOR_VERSION: u8 = 1;

impl Cursor {
    pub fn encode(&self) -> String {
        let micros = (self.created_at.unix_timestamp_nanos() / 1_000) as i64;
        let mut raw = [0u8; 25];
        raw[0] = CURSOR_VERSION;
        raw[1..9].copy_from_slice(&micros.to_be_bytes());
        raw[9..].copy_from_slice(self.id.as_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(s: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new("cursor", "is not a cursor this API returned");
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        if raw.len() != 25 || raw[0] != CURSOR_VERSION {
            return Err(bad());
        }
        let micros = i64::from_be_bytes(raw[1..9].try_into().map_err(|_| bad())?);
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).map_err(|_| bad())?;
        // Rows are created from 1970 (the first page's start) on; anything else is forged, and
        // could be outside what PostgreSQL accepts.
        if !(1970..=9999).contains(&created_at.year()) {
            return Err(bad());
        }
        let id = Uuid::from_slice(&raw[9..]).map_err(|_| bad())?;
        Ok(Self { created_at, id })
    }

    /// Before every real row: the first page.
    pub(crate) fn start() -> Self {
        Self { created_at: OffsetDateTime::UNIX_EPOCH, id: Uuid::nil() }
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

/// `limit` and `cursor` of a list request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: Limit,
    pub cursor: Option<Cursor>,
}

/// One page of a list, and where the next one starts (absent on the last page).
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<Cursor>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TodoFilter {
    pub complete: Option<bool>,
}

/// A partial update of a todo; at least one field is set (checked where it is parsed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TodoPatch {
    pub title: Option<TodoTitle>,
    pub complete: Option<bool>,
}

/// The caller as the identity provider describes it, for the first-call registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub id: UserId,
    pub subject: String,
    pub name: Option<DisplayName>,
    pub email: Option<Email>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    /// The caller's role in this tenant.
    pub role: Role,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Todo {
    pub tenant_id: TenantId,
    pub id: TodoId,
    pub title: String,
    pub complete: bool,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: UserId,
    /// The identity provider's subject; shown to the user themself only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub tenant_id: TenantId,
    pub user_id: UserId,
    pub name: Option<String>,
    pub email: Option<String>,
    pub role: Role,
    #[serde(serialize_with = "rfc3339")]
    pub joined_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub tenant_id: TenantId,
    pub tenant_name: String,
    pub role: Role,
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn limits_are_bounded() {
        assert_eq!(Limit::parse("200").unwrap().get(), 200);
        for bad in ["0", "201", "-1", "1e3", "", "99999999999"] {
            assert!(Limit::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let c = Cursor {
            created_at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_000).unwrap(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "abc", "!!!!", &URL_SAFE_NO_PAD.encode([2u8; 25]), &URL_SAFE_NO_PAD.encode([1u8; 24])] {
            assert!(Cursor::decode(bad).is_err(), "{bad:?}");
        }
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

    #[test]
    fn user_ids_follow_the_subject() {
        assert_eq!(UserId::for_subject("alice"), UserId::for_subject("alice"));
        assert_ne!(UserId::for_subject("alice"), UserId::for_subject("bob"));
    }
}
