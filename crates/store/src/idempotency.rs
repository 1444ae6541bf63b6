//! Exactly-once writes (`Idempotency-Key`): the record of a request commits in the same
//! transaction as its effect, and costs no extra round trip: the claim of the key and every
//! statement of the request go out in the same pipeline, each statement in a variant that also
//! records its rows. The table is `migrations/0003_idempotency.sql`'s; its comments describe the
//! first design, in which the claim inserted the record.
//!
//! On PostgreSQL the claim writes nothing: it waits until no other transaction holds the key
//! (an advisory lock for the transaction). The request's first recorded statement inserts the
//! record with its rows, in the same statement as its effect; any later one appends its rows.
//! The record's tenant, key, fingerprint, life and claim are parameters of those statements.
//! A repeat finds the key taken (that insert fails, and the transaction with it), reads the
//! record and is answered from the rows the first request saw, through the same code: the same
//! answer, byte for byte. A repeat whose own statement fails before its insert (a client-chosen
//! id the first request already used) is answered from the record too (`is_effect_error`). On
//! Aurora DSQL, which has no advisory locks, the claim inserts the record and every recorded
//! statement appends to it.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use sha2::{Digest, Sha256};
use statements::recording::{is_recorded, recorded_sql, recording_sql};

use crate::{Error, Q, Result, TenantId, rows::DbRow};

/// How long a record answers repeats, unless configured otherwise.
pub const DEFAULT_RECORD_LIFE: Duration = Duration::from_secs(24 * 3600);

/// The shape of what records hold: a hash of every recorded statement (the statement as the
/// API writes it, which decides its columns; not how it is recorded). A record made by a build
/// whose statements returned other columns is another request's (422 for its key), never rows
/// decoded as the wrong columns.
static RECORD_VERSION: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    let mut h = Sha256::new();
    // The statements of the scheduled cleanup, added after records existed, never run in a
    // request: left out.
    for q in Q::ALL.iter().filter(|&&q| is_recorded(q)) {
        h.update(q.sql().as_bytes());
        h.update(b"\0");
    }
    h.finalize().to_vec()
});

/// The longest key accepted (draft IETF `Idempotency-Key`).
pub const KEY_MAX: usize = 255;

/// One request's key, scoped to the caller and, on tenant routes, to the tenant.
#[derive(Debug)]
pub struct Idempotency {
    /// The SHA-256 (hex) of the client's key: what the database stores.
    key: String,
    /// The key itself, kept in memory only: it seals what the record must hold but the
    /// database must not see ([`Idempotency::seal`]).
    secret: Vec<u8>,
    tenant: TenantId,
    fingerprint: Vec<u8>,
    life: Duration,
    /// This request's claim: the only record it may drop.
    claim: uuid::Uuid,
    replayed: AtomicBool,
}

impl Idempotency {
    /// `key` as the client sent it (1 to 255 printable ASCII characters), for the request with
    /// this method, path (with query) and body. `None` for a malformed key.
    pub fn new(
        key: &str,
        tenant: Option<TenantId>,
        method: &str,
        path: &str,
        body: &[u8],
        life: Duration,
    ) -> Option<Self> {
        if key.is_empty() || key.len() > KEY_MAX || !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return None;
        }
        let mut h = Sha256::new();
        for part in [method.as_bytes(), b"\n", path.as_bytes(), b"\n", body, b"\n", &RECORD_VERSION[..]] {
            h.update(part);
        }
        Some(Self {
            key: hex::encode(Sha256::digest(key.as_bytes())),
            secret: key.as_bytes().to_vec(),
            claim: uuid::Uuid::new_v4(),
            tenant: tenant.unwrap_or(TenantId(uuid::Uuid::nil())),
            fingerprint: h.finalize().to_vec(),
            life,
            replayed: AtomicBool::new(false),
        })
    }

    /// Whether the answer came from the record of an earlier request.
    pub fn replayed(&self) -> bool {
        self.replayed.load(Ordering::Relaxed)
    }

    pub(crate) fn tenant(&self) -> &uuid::Uuid {
        &self.tenant.0
    }

    pub(crate) fn key(&self) -> &String {
        &self.key
    }

    pub(crate) fn fingerprint(&self) -> &Vec<u8> {
        &self.fingerprint
    }

    pub(crate) fn life_secs(&self) -> i64 {
        self.life.as_secs() as i64
    }

    pub(crate) fn claim(&self) -> &uuid::Uuid {
        &self.claim
    }

    /// A keystream only the holder of the client's key can make: SHA-256 of the key, the
    /// request's fingerprint and a counter. Used once per record, for one value.
    fn keystream(&self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 32);
        for block in 0u32.. {
            if out.len() >= len {
                break;
            }
            let mut h = Sha256::new();
            for part in [&self.secret[..], b"\nseal\n", &self.fingerprint[..], &block.to_be_bytes()[..]] {
                h.update(part);
            }
            out.extend_from_slice(&h.finalize());
        }
        out.truncate(len);
        out
    }

    /// `value` sealed for the record (hex): a repeat with the same key opens it, the database
    /// cannot.
    pub fn seal(&self, value: &str) -> String {
        let stream = self.keystream(value.len());
        hex::encode(value.bytes().zip(stream).map(|(b, k)| b ^ k).collect::<Vec<u8>>())
    }

    /// What [`Idempotency::seal`] sealed; `None` if it does not open.
    pub fn open(&self, sealed: &str) -> Option<String> {
        let bytes = hex::decode(sealed).ok()?;
        let stream = self.keystream(bytes.len());
        String::from_utf8(bytes.iter().zip(stream).map(|(b, k)| b ^ k).collect()).ok()
    }

    /// The rows of the first request, from its record; 422 when the key was used for another
    /// request.
    pub(crate) fn replay(&self, fingerprint: &[u8], results: &[String]) -> Result<Vec<Vec<DbRow>>> {
        if fingerprint != self.fingerprint.as_slice() {
            return Err(Error::IdempotencyMismatch);
        }
        let rows = results
            .iter()
            .map(|r| crate::rows::parse_json_rows(r))
            .collect::<serde_json::Result<Vec<_>>>()
            .map_err(|e| Error::Migration(format!("an idempotency record does not parse: {e}")))?;
        self.replayed.store(true, Ordering::Relaxed);
        Ok(rows)
    }
}

/// Whether a failed claim means "this key is taken".
pub(crate) fn is_taken(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().and_then(|d| d.constraint()) == Some("idempotency_keys_pkey")
}

/// A statement's two recording variants: as the request's first recorded statement (which
/// makes the record, on PostgreSQL) and as a later one (which appends to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub first: String,
    pub more: String,
}

/// Every statement's recording variants, in `Q::ALL` order (the statement itself for those that
/// never run as a request's step: the scope resolution and the record's own). Every step of a
/// recorded transaction must be recorded, or the replayed rows would not line up.
pub fn recorded_statements() -> Vec<Recorded> {
    recorded_statements_for(crate::Engine::Postgres)
}

/// [`recorded_statements`] on `engine`. On Aurora DSQL both variants append (the claim made the
/// record).
pub fn recorded_statements_for(engine: crate::Engine) -> Vec<Recorded> {
    Q::ALL
        .iter()
        .map(|&q| {
            let (first, more) = match engine {
                crate::Engine::Postgres if is_recorded(q) => (recording_sql(q.sql()), recorded_sql(q.sql())),
                crate::Engine::Postgres => (q.sql().to_string(), q.sql().to_string()),
                crate::Engine::Dsql if is_recorded(q) => {
                    let sql = crate::dsql::recorded(crate::dsql::template(q));
                    (sql.clone(), sql)
                }
                crate::Engine::Dsql => {
                    let sql = crate::dsql::STATEMENTS[q as usize].sql.clone();
                    (sql.clone(), sql)
                }
            };
            Recorded { first, more }
        })
        .collect()
}

/// Whether a failed statement of a keyed request may be a repeat's effect failing before its
/// record could conflict: a uniqueness, reference or check violation, or a refused value. The
/// store then looks for the first request's record before it answers with the error.
pub(crate) fn is_effect_error(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        let c = c.code();
        c.starts_with("23") || c.starts_with("22") || c == "42501"
    }) && !is_taken(e)
}

/// The per-statement rows of a record as the database holds them: an array on PostgreSQL, one
/// text with a separator on DSQL (no array columns there).
pub(crate) fn record_results(engine: crate::Engine, row: &DbRow) -> Vec<String> {
    match engine {
        crate::Engine::Postgres => row.col::<Vec<String>>(1),
        crate::Engine::Dsql => {
            row.col::<String>(1).split(crate::dsql::RESULT_SEPARATOR).skip(1).map(str::to_string).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        let ok = |k: &str| Idempotency::new(k, None, "POST", "/api/tenants", b"{}", DEFAULT_RECORD_LIFE).is_some();
        assert!(ok("8e03978e-40d5-43e8-bc93-6894a57f9324"));
        assert!(ok(&"k".repeat(255)));
        for bad in ["", &"k".repeat(256), "a\nb", "ключ", "\0"] {
            assert!(!ok(bad), "{bad:?}");
        }
        let a = Idempotency::new("k", None, "POST", "/a", b"{}", DEFAULT_RECORD_LIFE).unwrap();
        let b = Idempotency::new("k", None, "POST", "/a", b"{ }", DEFAULT_RECORD_LIFE).unwrap();
        assert_ne!(a.fingerprint, b.fingerprint, "another body is another request");
        assert_eq!(a.key, hex::encode(Sha256::digest(b"k")), "the database gets the key's hash");
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_request() {
        let a = Idempotency::new("key-a", None, "POST", "/a", b"{}", DEFAULT_RECORD_LIFE).unwrap();
        let code = "inv_0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
        let sealed = a.seal(code);
        assert!(!sealed.contains("0123456789"), "not in the clear");
        assert_eq!(a.open(&sealed).as_deref(), Some(code));
        let again = Idempotency::new("key-a", None, "POST", "/a", b"{}", DEFAULT_RECORD_LIFE).unwrap();
        assert_eq!(again.open(&sealed).as_deref(), Some(code), "a repeat opens it");
        let other = Idempotency::new("key-b", None, "POST", "/a", b"{}", DEFAULT_RECORD_LIFE).unwrap();
        assert_ne!(other.open(&sealed).as_deref(), Some(code), "another key does not");
    }
}
