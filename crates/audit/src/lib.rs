//! A tenant's history and its data in hand (issue 25): the tamper-evident audit log and the
//! export format of one tenant. This is the pure core: no database, no clock, no HTTP types.
//! The store, the API and `scripts/tenant.sh` wire it in.
//!
//! - [`AuditRecord`] / [`Actor`] / [`Action`]: one administrative change. [`check_no_secrets`]
//!   and [`check_values`]: what `before` and `after` may hold.
//! - [`append`] / [`Entry`] / [`ChainHead`]: seal a change onto its tenant's hash chain.
//!   [`canonical`] / [`hash`]: the encoding and the hash.
//! - [`verify`] / [`Verifier`] / [`Broken`] / [`BreakKind`]: check a chain (streaming).
//! - [`Writer`] / [`Header`] / [`Item`] / [`Reader`] / [`ImportError`] / [`Remap`]: the export of
//!   one tenant as NDJSON, written and read with constant memory. `export.schema.json` (next to
//!   this crate's `Cargo.toml`) is its JSON Schema.
//!
//! # The audit record
//!
//! A record holds `tenant_id`; `seq` (1, 2, 3, ... per tenant); `at` (UTC, to the microsecond,
//! always written `YYYY-MM-DDTHH:MM:SS.ffffffZ`); the `actor` (`{"kind":"user","user_id",
//! "issuer"}` or `{"kind":"operator","name"}`); the `action` by its stable dotted name
//! (`tenant.created`, `tenant.renamed`, `tenant.deleted`, `plan.changed`,
//! `invitation.created`, `invitation.revoked`, `invitation.accepted`, `member.role_changed`,
//! `member.removed`, `member.left`, `placement.moved`); the `target` (`tenant:<uuid>`,
//! `user:<uuid>`, `invitation:<uuid>`); the `request_id` (required for a user, optional for the
//! operator); `before` and `after` (JSON, each optional); `prev_hash` and `hash` (64 hex digits).
//!
//! **No secrets**: [`append`] refuses `before` / `after` holding a key named `code`,
//! `code_hash`, `token`, `password` or `secret` (ASCII case-insensitive, at any depth, in
//! objects inside arrays too) ([`SECRET_KEYS`]). An invitation's record says its role, email
//! and expiry, never its code. The [`Reader`] applies the same rule to imported records.
//!
//! **Values that survive `jsonb`**: numbers in `before` / `after` must be integers of `i64` or
//! `u64` (send a fraction as a string), and no string or key may contain U+0000. Then a value
//! stored as `jsonb` and read back is the same JSON value, and its canonical form (below) is
//! the same bytes, whatever `jsonb` did to key order, spacing or escapes (a test checks this
//! against what PostgreSQL 15 printed; `jsonb` itself refuses U+0000).
//!
//! # The hash chain
//!
//! `hash = SHA-256(prev_hash || canonical(record))`, where `prev_hash` is the 32 raw bytes of
//! the predecessor's hash and, for seq 1, 32 zero bytes ([`GENESIS`]). The tenant is bound by
//! `tenant_id` inside every record's encoding, so a genesis per tenant is not needed.
//!
//! `canonical(record)` is canonical JSON of every field except `hash`, as UTF-8:
//!
//! - one object with the keys `action`, `actor`, `after`, `at`, `before`, `prev_hash`,
//!   `request_id`, `seq`, `target`, `tenant_id` (all present, absent values as `null`);
//! - the keys of every object, at every depth, sorted by their UTF-8 bytes; no whitespace;
//! - strings as `serde_json` writes them: `"` and `\` escaped, U+0000..U+001F as `\b` `\f`
//!   `\n` `\r` `\t` or `\u00xx` (lower-case hex), everything else (`/`, non-ASCII) as is;
//! - numbers in decimal (integers only, above); uuids lower-case hyphenated; `prev_hash`
//!   lower-case hex; `at` as above; `actor` with its `kind` key; `action` its dotted name.
//!
//! For example (a test checks this byte for byte):
//!
//! ```text
//! {"action":"member.role_changed","actor":{"issuer":"https://issuer.example","kind":"user",
//! "user_id":"de77f876-..."},"after":{"role":"viewer"},"at":"2026-12-03T12:13:20.123456Z",
//! "before":{"role":"member"},"prev_hash":"0000...0000","request_id":"r1","seq":1,
//! "target":"user:163bdb7d-...","tenant_id":"108124a5-..."}
//! ```
//!
//! **Hashes are computed in Rust only**, by this crate: by the store before each insert, and by
//! `audit-verify` and the importer when checking. SQL stores the hash and never computes it.
//! PostgreSQL could build a similar text from `jsonb::text`, but `jsonb` sorts keys by length
//! first, spaces its output (`": "`, `", "`) and prints numbers its own way, so SQL and Rust
//! would have to agree on a second, subtler encoding. One implementation, tested here, is
//! simpler. It costs one round trip per administrative change (below). Those changes are rare.
//!
//! **What verification detects** ([`verify`], [`Verifier`], fed the records in seq order;
//! [`Broken::seq`] is the first seq at which the chain is broken):
//!
//! - [`BreakKind::Altered`]: a record whose content does not hash to its `hash`;
//! - [`BreakKind::Deleted`]: a seq that is missing (seqs jump over it and it never comes);
//! - [`BreakKind::Reordered`]: a seq that comes after a greater one, or twice;
//! - [`BreakKind::Unlinked`]: seqs follow each other but `prev_hash` is not the predecessor's
//!   `hash` (a record replaced by one re-hashed on its own, or removed and the rest renumbered);
//! - [`BreakKind::ForeignTenant`]: a record of another tenant's chain;
//! - [`BreakKind::Truncated`] / [`BreakKind::HeadMismatch`]: the chain does not end at the
//!   known head (the store's head row), e.g. its last records were deleted.
//!
//! It is tamper-*evident*, not tamper-proof: someone who can write the tables as their owner
//! can rewrite a chain from some record on, re-hash every later record and move the head row,
//! and that chain verifies. Only a head kept elsewhere (a past export's records, a log line
//! with the head hash) shows it, via `known_head`. Grants and policies keep the runtime role
//! from doing even the partial kinds of tampering.
//!
//! # For the integrator: writing a record
//!
//! ```sql
//! CREATE TABLE audit_heads (            -- one row per tenant: the lock and the known head
//!   tenant_id uuid   PRIMARY KEY,       -- no foreign key: it outlives the tenant
//!   seq       bigint NOT NULL,
//!   hash      bytea  NOT NULL CHECK (octet_length(hash) = 32)
//! );
//! CREATE TABLE audit_records (
//!   tenant_id  uuid        NOT NULL,    -- whose log it is (row-level security, retention)
//!   chain_id   uuid        NOT NULL,    -- the record's own tenant_id (hashed): = tenant_id,
//!                                       -- or the original tenant for history imported --as
//!   seq        bigint      NOT NULL CHECK (seq >= 1),
//!   at         timestamptz NOT NULL,
//!   actor_kind text NOT NULL CHECK (actor_kind IN ('user', 'operator')),
//!   actor_user_id uuid, actor_issuer text, actor_name text,
//!   action     text        NOT NULL,    -- Action::as_str
//!   target     text        NOT NULL,
//!   request_id text,
//!   before     jsonb,
//!   after      jsonb,
//!   prev_hash  bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
//!   hash       bytea       NOT NULL CHECK (octet_length(hash) = 32),
//!   PRIMARY KEY (tenant_id, chain_id, seq)
//! );
//! -- The runtime role: SELECT, INSERT on audit_records (no UPDATE, no DELETE, and no policy
//! -- for them); SELECT, INSERT, UPDATE on audit_heads.
//! ```
//!
//! In the transaction that creates the tenant, insert its head row `(tenant_id, 0, '\x00...')`
//! ([`ChainHead::EMPTY`]). Then every administrative change, **inside the change's own
//! transaction, after its statements succeeded** (a refused change, or an `Idempotency-Key`
//! replay, never gets here, so it writes no record; a rolled-back change leaves none):
//!
//! 1. `SELECT seq, hash, now() FROM audit_heads WHERE tenant_id = $1 FOR UPDATE` reads the
//!    head and locks it. On PostgreSQL, concurrent changes of one tenant queue here. On DSQL,
//!    the second to commit fails (OC000 / 40001) and the whole request is retried as for any
//!    conflict. Either way, no two records get the same predecessor. (`FOR UPDATE` on
//!    `audit_records` itself would need `UPDATE` on it, which the runtime role must not have.)
//! 2. In Rust: [`append`]`(Some(head), Entry { at: now, .. })`, which checks the entry and
//!    computes `seq`, `prev_hash` and `hash`. This is the one extra round trip.
//! 3. `INSERT INTO audit_records ...` the record, and `UPDATE audit_heads SET seq = $2, hash =
//!    $3 WHERE tenant_id = $1 AND seq = $2 - 1` (one row, or roll back). On PostgreSQL a
//!    trigger can also refuse a head update that does not name an existing record.
//!
//! `audit-verify <tenant-id>`: one read-only transaction, `SELECT ... FROM audit_records WHERE
//! tenant_id = $1 AND chain_id = $1 ORDER BY seq` streamed through a [`Verifier`], then
//! [`Verifier::finish`] with the head row. Imported history: the same per `chain_id`, with no
//! known head. Records outlive the tenant (no foreign keys) and the daily cleanup deletes a
//! deleted tenant's records and head row after the retention.
//!
//! # The export format
//!
//! NDJSON, UTF-8, `\n` after every line, compact JSON (no raw newline inside a line):
//!
//! ```text
//! {"format":"tenant-api.export","version":1,"tenant_id":..,"exported_at":..,"source":{"engine","placement","app_version"}}
//! {"type":"tenant","id":..,"name":..,"created_at":..}                      exactly one
//! {"type":"plan","name":"free"}                                            at most one
//! {"type":"member","user_id":..,"role":..,"joined_at":..,"profile":{"subject","name","email","created_at"}}
//! {"type":"invitation","id":..,"role":..,"email":..,"created_by":..,"created_at":..,"expires_at":..}
//! {"type":"todo","id":..,"title":..,"complete":..,"created_at":..,"updated_at":..}
//! {"type":"audit","imported_from":null,"record":{AuditRecord}}
//! {"type":"end","lines":N,"sha256":"<hex>"}
//! ```
//!
//! - The sections come in that order; audit records grouped by chain, each in seq order.
//!   `lines` counts the lines before the end line (the header included); `sha256` is the
//!   SHA-256 of their bytes, newlines included.
//! - Only the header and the tenant line name the tenant; the other lines are the tenant's by
//!   being in its file. Only members' profiles are exported.
//! - Pending invitations go without their code and without the code's hash: there is no field
//!   for either, and the [`Reader`] and the schema refuse a line with one. An imported
//!   invitation therefore cannot be accepted (the importer stores a random `code_hash`). Its
//!   admins see it and invite again.
//! - [`Writer`] writes each line straight through while hashing it. It holds a hash state and
//!   two counters, so memory does not depend on the tenant's size. The exporter reads the
//!   tenant in one transaction (`REPEATABLE READ, READ ONLY`) with cursors or keyset pages.
//! - [`Reader`] refuses, with [`ImportError`]: not an export, another `version` (checked right
//!   after `format`, before the rest of the header), a malformed line or an unknown field,
//!   lines out of order, another tenant's tenant line, a secret in an audit record, a broken
//!   audit chain, a missing end line (truncated), a wrong line count or checksum, and data after
//!   the end line. The count and checksum are known only at the end. An importer must keep
//!   everything provisional until [`Reader::next_item`] returns `Ok(None)`: load in batches
//!   (resumable, each batch idempotent by primary key) into the target, and make the tenant
//!   visible only after the end line checked out.
//!
//! **`import --as <new-id>`** ([`Remap`]): the header and the tenant line take the new id.
//! Audit records cannot: their `tenant_id` is inside their hash. They are kept bit for bit, as
//! the new tenant's imported history, marked `imported_from: <old-id>` (stored as `chain_id`),
//! and they still verify as the old tenant's chain. The new tenant's own chain starts empty
//! (its first record, e.g. `tenant.created` by the operator with `after: {"imported_from":
//! ...}`, is seq 1). So export, import `--as`, export again gives the same lines with the ids
//! mapped and `imported_from` set, plus the new tenant's own records. Importing again with
//! `--as` keeps the oldest `imported_from`.
//!
//! **`import --replace`** (same tenant id, a point-in-time restore): the live chain is longer
//! than the clone's. The importer keeps the live records and checks that the file's chain is a
//! prefix of them (the live record at the file's last seq has the same hash), instead of
//! importing them again. A mismatch means one of the two was tampered with: refuse.
//!
//! # Decisions
//!
//! - **Hashes in Rust only**, canonical JSON: one encoding, tested byte for byte; SQL stores.
//! - **Zero genesis**: the tenant is in every record's encoding already.
//! - **A head row per tenant**: the lock that orders appends (the runtime role cannot lock
//!   insert-only records) and the known head that exposes a deleted last record.
//! - **Integers only in `before` / `after`**: so `jsonb` round trips exactly.
//! - **A gap is reported at the end** (or at the next break): a record that fills it later makes
//!   it a reorder, not a deletion. Memory stays constant.
//! - **Imported history keeps its hashes** under its original tenant id, rather than being
//!   re-chained under the new id, which would make it unverifiable against its source.
//! - **A JSON Schema checked by a small validator** in the tests (the subset the file uses; an
//!   unknown keyword fails the test), rather than the `jsonschema` crate and its dependencies.

mod chain;
mod export;
mod import;
mod record;

pub use chain::{AppendError, BreakKind, Broken, ChainHead, Entry, GENESIS, Verifier, append, canonical, hash, verify};
pub use export::{
    Audit, End, ExportError, FORMAT, Header, Invitation, Item, Member, Plan, Profile, Role, Source, Tenant, Todo,
    VERSION, Writer,
};
pub use import::{ImportError, MAX_LINE, Reader, Remap};
pub use record::{
    Action, Actor, AuditRecord, Digest, SECRET_KEYS, UnknownAction, ValueError, check_no_secrets, check_values,
    timestamp,
};
