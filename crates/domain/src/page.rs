//! Keyset pagination: page sizes, opaque cursors, pages.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::Invalid;

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
///
/// Lists across tenants (`GET /api/todos`) sort on `(created_at, tenant_id, id)`, since ids are
/// unique per tenant only; the cursor carries the tenant (nil for the other lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: OffsetDateTime,
    pub tenant: Uuid,
    pub id: Uuid,
}

/// Version 1 had no tenant (25 bytes); version 2 has one (41 bytes). Both are read.
const CURSOR_V1: u8 = 1;
const CURSOR_V2: u8 = 2;

impl Cursor {
    pub fn encode(&self) -> String {
        let micros = (self.created_at.unix_timestamp_nanos() / 1_000) as i64;
        let mut raw = [0u8; 41];
        raw[0] = CURSOR_V2;
        raw[1..9].copy_from_slice(&micros.to_be_bytes());
        raw[9..25].copy_from_slice(self.tenant.as_bytes());
        raw[25..].copy_from_slice(self.id.as_bytes());
        URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(s: &str) -> Result<Self, Invalid> {
        let bad = || Invalid::new("cursor", "is not a cursor this API returned");
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let tenant = match (raw.first(), raw.len()) {
            (Some(&CURSOR_V1), 25) => Uuid::nil(),
            (Some(&CURSOR_V2), 41) => Uuid::from_slice(&raw[9..25]).map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        let micros = i64::from_be_bytes(raw[1..9].try_into().map_err(|_| bad())?);
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).map_err(|_| bad())?;
        // Rows are created from 1970 (the first page's start) on; anything else is forged, and
        // could be outside what PostgreSQL accepts.
        if !(1970..=9999).contains(&created_at.year()) {
            return Err(bad());
        }
        let id = Uuid::from_slice(&raw[raw.len() - 16..]).map_err(|_| bad())?;
        Ok(Self { created_at, tenant, id })
    }

    /// Before every real row: the first page.
    pub fn start() -> Self {
        Self { created_at: OffsetDateTime::UNIX_EPOCH, tenant: Uuid::nil(), id: Uuid::nil() }
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

#[cfg(test)]
mod tests {
    use super::*;

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
            tenant: Uuid::new_v4(),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "abc", "!!!!", &URL_SAFE_NO_PAD.encode([2u8; 25]), &URL_SAFE_NO_PAD.encode([1u8; 24])] {
            assert!(Cursor::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn version_1_cursors_are_still_read() {
        let micros: i64 = 1_700_000_000_123_456;
        let id = Uuid::new_v4();
        let mut raw = vec![1u8];
        raw.extend_from_slice(&micros.to_be_bytes());
        raw.extend_from_slice(id.as_bytes());
        let c = Cursor::decode(&URL_SAFE_NO_PAD.encode(raw)).unwrap();
        assert_eq!((c.tenant, c.id), (Uuid::nil(), id));
    }
}
