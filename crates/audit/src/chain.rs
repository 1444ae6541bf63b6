//! The hash chain: the canonical encoding of a record, sealing a new record onto a chain, and
//! verifying a chain.

use std::io::{self, Write};

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::record::{Action, Actor, AuditRecord, Digest, ValueError, check_values, timestamp};

/// The `prev_hash` of a chain's first record (seq 1): 32 zero bytes. The tenant is bound by the
/// `tenant_id` inside every record's canonical encoding, not by the genesis value.
pub const GENESIS: Digest = [0; 32];

/// The last record of a chain: what the store reads (locked) before appending, and what
/// [`verify`] compares the end of a chain against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: Digest,
}

impl ChainHead {
    /// The head of an empty chain: what the store's head row holds before the first record.
    /// [`append`] after it gives seq 1 with `prev_hash` [`GENESIS`], like `append(None, ..)`.
    pub const EMPTY: ChainHead = ChainHead { seq: 0, hash: GENESIS };
}

/// What the store knows of a change; [`append`] turns it into an [`AuditRecord`].
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub tenant_id: Uuid,
    /// Truncated to the microsecond and converted to UTC by [`append`].
    pub at: OffsetDateTime,
    pub actor: Actor,
    pub action: Action,
    pub target: String,
    pub request_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Why [`append`] refused an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("a user's change needs its request id")]
    RequestIdRequired,
    #[error("the target must not be empty")]
    EmptyTarget,
    #[error("the chain is full (seq would exceed i64::MAX, PostgreSQL's bigint)")]
    Full,
}

/// Seals `entry` as the record after `head` (`None`: the chain's first record): checks the
/// value rules ([`check_values`]), sets `seq`, `prev_hash` and `hash`.
pub fn append(head: Option<ChainHead>, entry: Entry) -> Result<AuditRecord, AppendError> {
    for (what, v) in [("before", &entry.before), ("after", &entry.after)] {
        if let Some(v) = v {
            check_values(what, v)?;
        }
    }
    if matches!(entry.actor, Actor::User { .. }) && entry.request_id.is_none() {
        return Err(AppendError::RequestIdRequired);
    }
    if entry.target.is_empty() {
        return Err(AppendError::EmptyTarget);
    }
    let (seq, prev_hash) = match head {
        None => (1, GENESIS),
        Some(h) if h.seq >= i64::MAX as u64 => return Err(AppendError::Full),
        Some(h) => (h.seq + 1, h.hash),
    };
    let mut record = AuditRecord {
        tenant_id: entry.tenant_id,
        seq,
        at: timestamp::truncate(entry.at),
        actor: entry.actor,
        action: entry.action,
        target: entry.target,
        request_id: entry.request_id,
        before: entry.before,
        after: entry.after,
        prev_hash,
        hash: [0; 32],
    };
    record.hash = hash(&record);
    Ok(record)
}

/// `SHA-256(prev_hash || canonical(record))`: what `record.hash` must be.
pub fn hash(record: &AuditRecord) -> Digest {
    let mut h = HashWriter(Sha256::new());
    h.0.update(record.prev_hash);
    write_canonical(record, &mut h).expect("hashing does not fail");
    h.0.finalize().into()
}

/// The canonical encoding of `record` (see the crate documentation): canonical JSON of every
/// field but `hash`.
pub fn canonical(record: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(record, &mut out).expect("writing to a Vec does not fail");
    out
}

fn write_canonical(record: &AuditRecord, out: &mut dyn Write) -> io::Result<()> {
    let mut v = serde_json::to_value(record).map_err(io::Error::other)?;
    if let Value::Object(map) = &mut v {
        map.remove("hash");
    }
    write_value(&v, out)
}

/// Canonical JSON: object keys sorted by their UTF-8 bytes (explicitly, whatever the map type),
/// no whitespace, strings escaped by `serde_json` (`"` `\` and U+0000..U+001F only), numbers
/// as `serde_json` prints them (integers in decimal).
fn write_value(v: &Value, out: &mut dyn Write) -> io::Result<()> {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.write_all(b"{")?;
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                serde_json::to_writer(&mut *out, k)?;
                out.write_all(b":")?;
                write_value(&map[k], out)?;
            }
            out.write_all(b"}")
        }
        Value::Array(items) => {
            out.write_all(b"[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",")?;
                }
                write_value(item, out)?;
            }
            out.write_all(b"]")
        }
        scalar => Ok(serde_json::to_writer(out, scalar)?),
    }
}

struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where and how a chain is broken: `seq` is the first seq at which it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the audit chain is broken at seq {seq}: {kind}")]
pub struct Broken {
    pub seq: u64,
    pub kind: BreakKind,
}

/// How a chain is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BreakKind {
    /// The record with this seq is missing (seqs jump over it, and it does not come later).
    #[error("a record was deleted")]
    Deleted,
    /// The record's content does not hash to its `hash`.
    #[error("a record was altered")]
    Altered,
    /// Records are out of seq order (or a seq comes twice).
    #[error("records are out of order")]
    Reordered,
    /// Seqs follow each other but `prev_hash` is not the predecessor's hash: a record before it
    /// was replaced, or removed and the rest renumbered and re-hashed.
    #[error("the record does not link to its predecessor")]
    Unlinked,
    /// The record belongs to another tenant's chain.
    #[error("the record belongs to another tenant")]
    ForeignTenant,
    /// The chain ends before the known head: its last records were deleted.
    #[error("the chain ends before its known head")]
    Truncated,
    /// The chain's last record is not the known head.
    #[error("the chain's end is not its known head")]
    HeadMismatch,
}

/// A streaming verifier of one tenant's chain, fed records in seq order with constant memory.
/// A forward gap in seqs is only reported at [`Verifier::finish`] (or at the next break): a
/// record that comes later to fill it makes it a reorder, not a deletion.
#[derive(Debug, Clone)]
pub struct Verifier {
    tenant_id: Uuid,
    head: Option<ChainHead>,
    /// The first missing seq of a forward gap not yet explained.
    gap: Option<u64>,
}

impl Verifier {
    pub fn new(tenant_id: Uuid) -> Self {
        Verifier { tenant_id, head: None, gap: None }
    }

    /// The last record accepted so far.
    pub fn head(&self) -> Option<ChainHead> {
        self.head
    }

    /// Checks the next record.
    pub fn push(&mut self, r: &AuditRecord) -> Result<(), Broken> {
        let (expected, prev) = match self.head {
            None => (1, GENESIS),
            Some(h) => (h.seq + 1, h.hash),
        };
        let broken = |seq, kind| Broken { seq, kind };
        if r.seq < expected {
            // Something is out of place: a seq skipped earlier comes now, or one comes again.
            return Err(broken(self.gap.unwrap_or(r.seq), BreakKind::Reordered));
        }
        let found = if r.tenant_id != self.tenant_id {
            Some(BreakKind::ForeignTenant)
        } else if hash(r) != r.hash {
            Some(BreakKind::Altered)
        } else if r.seq == expected && r.prev_hash != prev {
            Some(BreakKind::Unlinked)
        } else {
            None
        };
        if let Some(kind) = found {
            return Err(match self.gap {
                Some(seq) => broken(seq, BreakKind::Deleted),
                None => broken(r.seq, kind),
            });
        }
        if r.seq > expected && self.gap.is_none() {
            self.gap = Some(expected);
        }
        self.head = Some(ChainHead { seq: r.seq, hash: r.hash });
        Ok(())
    }

    /// Ends the chain: reports a pending gap, and compares the end with `known_head` (e.g. the
    /// store's chain-head row; [`ChainHead::EMPTY`] for a chain with no record yet) when given.
    /// Returns the chain's head.
    pub fn finish(self, known_head: Option<ChainHead>) -> Result<Option<ChainHead>, Broken> {
        if let Some(seq) = self.gap {
            return Err(Broken { seq, kind: BreakKind::Deleted });
        }
        if let Some(known) = known_head {
            let last = self.head.unwrap_or(ChainHead::EMPTY);
            if last.seq < known.seq {
                return Err(Broken { seq: last.seq + 1, kind: BreakKind::Truncated });
            }
            if last != known {
                return Err(Broken { seq: last.seq, kind: BreakKind::HeadMismatch });
            }
        }
        Ok(self.head)
    }
}

/// Verifies `tenant_id`'s chain given in seq order: every record hashes to its `hash`, seqs run
/// 1, 2, 3, ..., each `prev_hash` is its predecessor's `hash` (the first's is [`GENESIS`]), and
/// the last record is `known_head` when given. Returns the head (`None` for an empty chain).
pub fn verify<'a>(
    tenant_id: Uuid,
    records: impl IntoIterator<Item = &'a AuditRecord>,
    known_head: Option<ChainHead>,
) -> Result<Option<ChainHead>, Broken> {
    let mut v = Verifier::new(tenant_id);
    for r in records {
        v.push(r)?;
    }
    v.finish(known_head)
}
