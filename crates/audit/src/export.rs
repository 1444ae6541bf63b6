//! The export format of one tenant (its lines) and the streaming [`Writer`].

use std::io::{self, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::record::{AuditRecord, timestamp};

/// The header's `format`.
pub const FORMAT: &str = "tenant-api.export";
/// The version this build writes and reads.
pub const VERSION: u32 = 1;

/// Line 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`] when written by this build.
    pub version: u32,
    pub tenant_id: Uuid,
    /// When the snapshot's transaction started.
    #[serde(with = "timestamp")]
    pub exported_at: OffsetDateTime,
    pub source: Source,
}

impl Header {
    pub fn new(tenant_id: Uuid, exported_at: OffsetDateTime, source: Source) -> Self {
        Header { format: FORMAT.to_owned(), version: VERSION, tenant_id, exported_at, source }
    }
}

/// Where the snapshot was taken (informational: the importer does not depend on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `postgres` or `dsql`.
    pub engine: String,
    /// `pooled` or `dedicated`.
    pub placement: String,
    /// The exporting build's version (`CARGO_PKG_VERSION`).
    pub app_version: String,
}

/// A member's or an invitation's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Member,
    Viewer,
}

/// The tenant itself (exactly one line, the first after the header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "timestamp")]
    pub created_at: OffsetDateTime,
}

/// The tenant's plan (at most one line; none: the deployment's default plan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub name: String,
}

/// A member, with the profile of its user (only members' profiles are exported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub user_id: Uuid,
    pub role: Role,
    #[serde(with = "timestamp")]
    pub joined_at: OffsetDateTime,
    pub profile: Profile,
}

/// A user's profile. `subject` is the token subject the user id is derived from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
    #[serde(with = "timestamp")]
    pub created_at: OffsetDateTime,
}

/// A pending invitation. Never its code nor the code's hash: there is no field for them, and a
/// line with one is refused on reading. An imported invitation therefore cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invitation {
    pub id: Uuid,
    pub role: Role,
    pub email: Option<String>,
    pub created_by: Option<Uuid>,
    #[serde(with = "timestamp")]
    pub created_at: OffsetDateTime,
    #[serde(with = "timestamp")]
    pub expires_at: OffsetDateTime,
}

/// A todo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Todo {
    pub id: Uuid,
    pub title: String,
    pub complete: bool,
    #[serde(with = "timestamp")]
    pub created_at: OffsetDateTime,
    #[serde(with = "timestamp")]
    pub updated_at: OffsetDateTime,
}

/// An audit record, bit for bit as stored. `imported_from` is `None` for the tenant's own
/// chain (`record.tenant_id` is the header's tenant) and the original tenant for history
/// imported with `--as` (`record.tenant_id` is that tenant: its chain verifies under it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    pub imported_from: Option<Uuid>,
    pub record: AuditRecord,
}

impl Audit {
    /// The tenant whose chain `record` belongs to.
    pub fn chain_tenant(&self, header_tenant: Uuid) -> Uuid {
        self.imported_from.unwrap_or(header_tenant)
    }
}

/// One line after the header, before the trailer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Tenant(Tenant),
    Plan(Plan),
    Member(Member),
    Invitation(Invitation),
    Todo(Todo),
    Audit(Audit),
}

/// The last line: how many lines came before it (the header included) and the SHA-256 of their
/// bytes, newlines included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct End {
    pub lines: u64,
    /// 64 lower-case hex digits.
    pub sha256: String,
}

/// The order of the sections: the tenant (once), the plan (at most once), members,
/// invitations, todos, audit records (each chain in seq order). An importer can then create
/// the tenant first and load the rest in batches.
#[derive(Debug, Clone, Default)]
pub(crate) struct Order {
    last: Option<u8>,
}

impl Order {
    pub(crate) fn admit(&mut self, item: &Item, header_tenant: Uuid) -> Result<(), String> {
        let rank = match item {
            Item::Tenant(_) => 0,
            Item::Plan(_) => 1,
            Item::Member(_) => 2,
            Item::Invitation(_) => 3,
            Item::Todo(_) => 4,
            Item::Audit(_) => 5,
        };
        match (self.last, rank) {
            (None, 0) => {}
            (None, _) => return Err("the first item must be the tenant".into()),
            (Some(last), _) if rank < last || (rank == last && rank <= 1) => {
                return Err(format!("a {} line is out of place", type_name(item)));
            }
            _ => {}
        }
        match item {
            Item::Tenant(t) if t.id != header_tenant => return Err("the tenant is not the header's".into()),
            Item::Audit(a) if a.record.tenant_id != a.chain_tenant(header_tenant) => {
                return Err("an audit record belongs to neither this tenant nor its imported_from".into());
            }
            _ => {}
        }
        self.last = Some(rank);
        Ok(())
    }
}

fn type_name(item: &Item) -> &'static str {
    match item {
        Item::Tenant(_) => "tenant",
        Item::Plan(_) => "plan",
        Item::Member(_) => "member",
        Item::Invitation(_) => "invitation",
        Item::Todo(_) => "todo",
        Item::Audit(_) => "audit",
    }
}

/// Why the [`Writer`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("writing the export: {0}")]
    Io(#[from] io::Error),
    #[error("the export's items are out of order: {0}")]
    Order(String),
}

/// Writes one tenant's export, streaming: each line goes straight to `W` while its bytes are
/// hashed, so the writer holds a hash state and two counters, whatever the tenant's size. Give
/// it a `BufWriter` (it makes many small writes).
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: Hashing<W>,
    lines: u64,
    order: Order,
    tenant_id: Uuid,
}

impl<W: Write> Writer<W> {
    /// Writes the header.
    pub fn new(out: W, header: &Header) -> Result<Self, ExportError> {
        let mut w = Writer { out: Hashing::new(out), lines: 0, order: Order::default(), tenant_id: header.tenant_id };
        w.line(header)?;
        Ok(w)
    }

    /// Writes one item (in the order of the sections: [`Item`]).
    pub fn write(&mut self, item: &Item) -> Result<(), ExportError> {
        self.order.admit(item, self.tenant_id).map_err(ExportError::Order)?;
        self.line(item)
    }

    /// Lines written so far (the header included).
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.out.bytes
    }

    /// Writes the trailer, flushes, and returns the output.
    pub fn finish(mut self) -> Result<W, ExportError> {
        if self.order.last.is_none() {
            return Err(ExportError::Order("the export has no tenant".into()));
        }
        let sha256 = hex::encode(self.out.sha.clone().finalize());
        let end = EndLine { kind: "end", lines: self.lines, sha256 };
        serde_json::to_writer(&mut self.out.inner, &end).map_err(io::Error::from)?;
        self.out.inner.write_all(b"\n")?;
        self.out.inner.flush()?;
        Ok(self.out.inner)
    }

    fn line<T: Serialize>(&mut self, value: &T) -> Result<(), ExportError> {
        // Compact JSON never contains a raw newline: strings escape it.
        serde_json::to_writer(&mut self.out, value).map_err(io::Error::from)?;
        self.out.write_all(b"\n")?;
        self.lines += 1;
        Ok(())
    }
}

#[derive(Serialize)]
struct EndLine {
    #[serde(rename = "type")]
    kind: &'static str,
    lines: u64,
    sha256: String,
}

/// Passes bytes through to `inner`, hashing and counting them.
#[derive(Debug)]
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    bytes: u64,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing { inner, sha: Sha256::new(), bytes: 0 }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
