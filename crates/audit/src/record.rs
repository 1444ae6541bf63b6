//! One audit record: who did what to which target, when, and what changed.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// A SHA-256 digest: a record's hash, or its predecessor's.
pub type Digest = [u8; 32];

/// One record of a tenant's audit log. `seq`, `prev_hash` and `hash` are set by
/// [`crate::append`]; the store never builds them by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// The tenant whose chain this record belongs to (part of the hash).
    pub tenant_id: Uuid,
    /// 1-based position in the tenant's chain.
    pub seq: u64,
    /// When, UTC, to the microsecond (PostgreSQL's `timestamptz`): [`timestamp`].
    #[serde(with = "timestamp")]
    pub at: OffsetDateTime,
    pub actor: Actor,
    pub action: Action,
    /// What the change was made to: `tenant:<uuid>`, `user:<uuid>`, `invitation:<uuid>`.
    pub target: String,
    /// The request's id; `None` only for the operator.
    pub request_id: Option<String>,
    /// What changed, never a secret ([`check_no_secrets`], [`check_values`]).
    pub before: Option<Value>,
    pub after: Option<Value>,
    #[serde(with = "hex32")]
    pub prev_hash: Digest,
    #[serde(with = "hex32")]
    pub hash: Digest,
}

/// Who made the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Actor {
    /// A caller of the API: the user's id and the issuer of its token.
    User { user_id: Uuid, issuer: String },
    /// The operator, through `scripts/tenant.sh`; `name` is who ran it (e.g. `$USER`).
    Operator { name: String },
}

macro_rules! actions {
    ($($variant:ident => $name:literal,)*) => {
        /// What was done. Serialized, hashed and stored as its dotted name ([`Action::as_str`]);
        /// the names are stable: a new action is a new name, never a renamed one.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action { $($variant,)* }

        impl Action {
            /// Every action, in declaration order.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The stable dotted name, e.g. `member.role_changed`.
            pub fn as_str(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }
        }

        impl FromStr for Action {
            type Err = UnknownAction;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s { $($name => Ok(Action::$variant),)* _ => Err(UnknownAction(s.to_owned())) }
            }
        }
    };
}

actions! {
    TenantCreated => "tenant.created",
    TenantRenamed => "tenant.renamed",
    TenantDeleted => "tenant.deleted",
    PlanChanged => "plan.changed",
    InvitationCreated => "invitation.created",
    InvitationRevoked => "invitation.revoked",
    InvitationAccepted => "invitation.accepted",
    MemberRoleChanged => "member.role_changed",
    MemberRemoved => "member.removed",
    MemberLeft => "member.left",
    PlacementMoved => "placement.moved",
}

/// A name that is not an [`Action`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit action {0:?}")]
pub struct UnknownAction(pub String);

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Keys that may not appear, at any depth, in `before` or `after` (compared ASCII
/// case-insensitively): an invitation's code or its hash, tokens, passwords, secrets.
pub const SECRET_KEYS: &[&str] = &["code", "code_hash", "token", "password", "secret"];

/// Why `before` / `after` were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// A key of [`SECRET_KEYS`]; `path` is where, e.g. `after.invitation.code`.
    #[error("{path}: a secret may not be written to the audit log")]
    Secret { path: String },
    /// A number that is not an integer of `i64` / `u64` (send fractions as strings).
    #[error("{path}: only integers are allowed in the audit log (send other numbers as strings)")]
    NotAnInteger { path: String },
    /// A string or key containing U+0000 (which `jsonb` cannot store).
    #[error("{path}: U+0000 is not allowed in the audit log")]
    Nul { path: String },
}

/// The secrets rule: `Err` if an object key anywhere in `value` is one of [`SECRET_KEYS`].
/// `what` names the value in the error (`before`, `after`).
pub fn check_no_secrets(what: &str, value: &Value) -> Result<(), ValueError> {
    walk(what, value, &mut |path, _, key| match key {
        Some(k) if SECRET_KEYS.iter().any(|s| s.eq_ignore_ascii_case(k)) => {
            Err(ValueError::Secret { path: path.to_owned() })
        }
        _ => Ok(()),
    })
}

/// The secrets rule and the value rules together: no secret keys, integers only, no U+0000.
/// The value rules make `before` / `after` survive a round trip through `jsonb` exactly, so a
/// record read back from the database hashes as it did when written.
pub fn check_values(what: &str, value: &Value) -> Result<(), ValueError> {
    check_no_secrets(what, value)?;
    walk(what, value, &mut |path, v, key| {
        if key.is_some_and(|k| k.contains('\0')) {
            return Err(ValueError::Nul { path: path.to_owned() });
        }
        match v {
            Value::Number(n) if !(n.is_i64() || n.is_u64()) => Err(ValueError::NotAnInteger { path: path.to_owned() }),
            Value::String(s) if s.contains('\0') => Err(ValueError::Nul { path: path.to_owned() }),
            _ => Ok(()),
        }
    })
}

/// Called with a value's path, the value, and the object key it sits under.
type Visitor<'a> = dyn FnMut(&str, &Value, Option<&str>) -> Result<(), ValueError> + 'a;

/// Calls `f(path, value, key)` on `value` and on everything inside it, depth first; `key` is
/// the object key a value sits under (`None` for array items and the top).
fn walk(path: &str, value: &Value, f: &mut Visitor<'_>) -> Result<(), ValueError> {
    visit(path, value, None, f)
}

fn visit(path: &str, value: &Value, key: Option<&str>, f: &mut Visitor<'_>) -> Result<(), ValueError> {
    f(path, value, key)?;
    match value {
        Value::Object(map) => map.iter().try_for_each(|(k, v)| visit(&format!("{path}.{k}"), v, Some(k), f)),
        Value::Array(items) => {
            items.iter().enumerate().try_for_each(|(i, v)| visit(&format!("{path}[{i}]"), v, None, f))
        }
        _ => Ok(()),
    }
}

/// Times as `YYYY-MM-DDTHH:MM:SS.ffffffZ`: UTC, always six fractional digits, so one instant
/// has one text. Reading accepts any RFC 3339 time with whole microseconds.
pub mod timestamp {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;

    /// The canonical text of `t` (converted to UTC, truncated to the microsecond).
    pub fn format(t: OffsetDateTime) -> String {
        let t = truncate(t);
        let f = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
        t.format(&f).expect("a UTC time in years 0..=9999 formats")
    }

    /// `t` in UTC, to the microsecond: what PostgreSQL's `timestamptz` keeps.
    pub fn truncate(t: OffsetDateTime) -> OffsetDateTime {
        let t = t.to_offset(time::UtcOffset::UTC);
        t.replace_nanosecond(t.nanosecond() / 1000 * 1000).expect("a smaller nanosecond is valid")
    }

    /// Parses RFC 3339; refuses sub-microsecond digits (they would not survive the database).
    pub fn parse(s: &str) -> Result<OffsetDateTime, String> {
        let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))?;
        if t.nanosecond() % 1000 != 0 {
            return Err(format!("{s:?} is more precise than a microsecond"));
        }
        if !(0..=9999).contains(&t.to_offset(time::UtcOffset::UTC).year()) {
            return Err(format!("{s:?} is out of range"));
        }
        Ok(t.to_offset(time::UtcOffset::UTC))
    }

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// 32-byte digests as 64 lower-case hex digits.
pub(crate) mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(serde::de::Error::custom("expected 64 lower-case hex digits"));
        }
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn action_names_are_stable_and_parse_back() {
        let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            names,
            [
                "tenant.created",
                "tenant.renamed",
                "tenant.deleted",
                "plan.changed",
                "invitation.created",
                "invitation.revoked",
                "invitation.accepted",
                "member.role_changed",
                "member.removed",
                "member.left",
                "placement.moved",
            ]
        );
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(*a));
            assert_eq!(serde_json::to_value(a).unwrap(), json!(a.as_str()));
        }
        assert_eq!("member.rolechanged".parse::<Action>(), Err(UnknownAction("member.rolechanged".into())));
        assert!(serde_json::from_value::<Action>(json!("Tenant.Created")).is_err());
    }

    #[test]
    fn secrets_are_refused_at_any_depth() {
        assert_eq!(check_no_secrets("after", &json!({"role": "member", "email": null})), Ok(()));
        for key in SECRET_KEYS {
            let v = json!({"invitation": {"list": [{"id": 1}, {(*key): "x"}]}});
            assert_eq!(
                check_no_secrets("after", &v),
                Err(ValueError::Secret { path: format!("after.invitation.list[1].{key}") })
            );
        }
        assert!(matches!(check_no_secrets("before", &json!({"Code_Hash": "ab"})), Err(ValueError::Secret { .. })));
        // A secret's name as a value, or inside a longer key, is not a secret.
        assert_eq!(check_no_secrets("after", &json!({"kind": "code", "codes_sent": 2, "token_count": 1})), Ok(()));
        assert_eq!(check_no_secrets("after", &json!(["code", "token"])), Ok(()));
    }

    #[test]
    fn values_are_integers_without_nul() {
        assert_eq!(check_values("after", &json!({"n": -3, "m": u64::MAX, "s": "é"})), Ok(()));
        assert_eq!(
            check_values("after", &json!({"rate": 2.5})),
            Err(ValueError::NotAnInteger { path: "after.rate".into() })
        );
        assert_eq!(check_values("after", &json!([1.0])), Err(ValueError::NotAnInteger { path: "after[0]".into() }));
        assert_eq!(check_values("after", &json!({"a": "x\u{0}"})), Err(ValueError::Nul { path: "after.a".into() }));
        assert!(matches!(check_values("after", &json!({"token": 1})), Err(ValueError::Secret { .. })));
    }

    #[test]
    fn timestamps_have_one_text() {
        let t = timestamp::parse("2026-12-03T09:47:03.5+01:00").unwrap();
        assert_eq!(timestamp::format(t), "2026-12-03T08:47:03.500000Z");
        assert_eq!(timestamp::parse(&timestamp::format(t)), Ok(t));
        assert!(timestamp::parse("2026-12-03T08:47:03.5000001Z").is_err());
        assert!(timestamp::parse("2026-12-03T08:47:03").is_err(), "no offset");
    }

    #[test]
    fn actors_serialize_with_a_kind() {
        let u = Actor::User { user_id: Uuid::nil(), issuer: "https://issuer".into() };
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"kind": "user", "user_id": "00000000-0000-0000-0000-000000000000", "issuer": "https://issuer"})
        );
        let o: Actor = serde_json::from_value(json!({"kind": "operator", "name": "ops"})).unwrap();
        assert_eq!(o, Actor::Operator { name: "ops".into() });
        assert!(serde_json::from_value::<Actor>(json!({"kind": "operator", "name": "ops", "x": 1})).is_err());
    }
}
