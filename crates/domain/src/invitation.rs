//! Invitation values: the single-use code (shown once, stored as its hash), what an admin asks
//! for, and a pending invitation as admins see it.

use std::{fmt, time::Duration};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{Email, Invalid, InvitationId, Role, TenantId, UserId, model::rfc3339};

/// How long an invitation can be accepted.
pub const INVITATION_LIFE: Duration = Duration::from_secs(7 * 24 * 3600);

const CODE_PREFIX: &str = "inv_";
const CODE_BYTES: usize = 32;

/// An invitation code: `inv_` and 32 random bytes in base64url. Shown once, to the admin who
/// creates the invitation; only its hash is stored. Its `Debug` output hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct InvitationCode(String);

impl fmt::Debug for InvitationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InvitationCode(<redacted>)")
    }
}

impl InvitationCode {
    /// A fresh code from the operating system's random generator.
    pub fn generate() -> Self {
        let mut raw = [0u8; CODE_BYTES];
        getrandom::fill(&mut raw).expect("the operating system's random generator works");
        Self(format!("{CODE_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
    }

    /// A code as a client sends it back. Anything of the wrong shape is simply not a code (the
    /// caller answers 404 for it like for an unknown one).
    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new("code", "is not an invitation code");
        let body = s.strip_prefix(CODE_PREFIX).ok_or_else(bad)?;
        match URL_SAFE_NO_PAD.decode(body) {
            Ok(raw) if raw.len() == CODE_BYTES => Ok(Self(s.to_string())),
            _ => Err(bad()),
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What the database stores and looks up.
    pub fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }
}

impl Serialize for InvitationCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// What an admin asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvitation {
    pub role: Role,
    /// When set, only a caller whose token carries this email, verified, may accept.
    pub email: Option<Email>,
}

/// A pending invitation, as admins see it (never with its code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invitation {
    pub tenant_id: TenantId,
    pub id: InvitationId,
    pub role: Role,
    pub email: Option<String>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(serialize_with = "rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The admin who made it. It can be accepted only while they are an admin of the tenant:
    /// demoting or removing them (or deleting their account) revokes it.
    pub created_by: Option<UserId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_random_and_parse_back() {
        let a = InvitationCode::generate();
        let b = InvitationCode::generate();
        assert_ne!(a, b);
        assert_eq!(InvitationCode::parse(a.expose()).unwrap(), a);
        assert_eq!(a.expose().len(), CODE_PREFIX.len() + 43);
        assert_eq!(a.hash().len(), 32);
        assert!(!format!("{a:?}").contains(&a.expose()[4..]), "Debug hides the code");
        for bad in ["", "inv_", "inv_abc", &a.expose()[4..], &format!("inv_{}", "A".repeat(44))] {
            assert!(InvitationCode::parse(bad).is_err(), "{bad:?}");
        }
    }
}
