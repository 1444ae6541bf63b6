//! Reading an export back: the streaming [`Reader`], its refusals ([`ImportError`]), and
//! [`Remap`] for `import --as <new-tenant-id>`.

use std::io::{self, BufRead, Read};

use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::chain::{Broken, Verifier};
use crate::export::{Audit, End, FORMAT, Header, Item, Order, VERSION};
use crate::record::{ValueError, check_values};

/// The longest line the reader accepts, newline included.
pub const MAX_LINE: usize = 1 << 20;

/// Why a file was refused. `line` numbers start at 1 (the header).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading the export: {0}")]
    Io(#[from] io::Error),
    #[error("this is not a tenant-api export (line 1 is not its header): {0}")]
    NotAnExport(String),
    #[error("export format version {found} is not supported: this build reads version {VERSION}")]
    UnsupportedVersion { found: u64 },
    #[error("line {line}: {message}")]
    Malformed { line: u64, message: String },
    #[error("line {line} is longer than {MAX_LINE} bytes")]
    LineTooLong { line: u64 },
    #[error("line {line}: {message}")]
    Order { line: u64, message: String },
    #[error("line {line}: an audit record may not hold this: {source}")]
    Secret { line: u64, source: ValueError },
    #[error("line {line}: {source}")]
    Chain { line: u64, source: Broken },
    #[error("the export is truncated: it ends without its end line")]
    Truncated,
    #[error("the end line counts {declared} lines, but {actual} came before it")]
    LineCount { declared: u64, actual: u64 },
    #[error("the checksum does not match: the file was changed or damaged (end line {declared}, content {actual})")]
    Checksum { declared: String, actual: String },
    #[error("line {line}: there is data after the end line")]
    TrailingData { line: u64 },
}

/// Reads an export line by line: memory is one line (at most [`MAX_LINE`]), a hash state, and
/// the audit verifier's state. Items are checked as they come (shape, no unknown fields, order,
/// tenant ids, the secrets rule, each audit chain); the checksum and line count only at the
/// end line, so an importer must treat everything as provisional until [`Reader::next_item`]
/// returns `Ok(None)`: load into a staging area, or in resumable batches, and make it visible
/// only then.
#[derive(Debug)]
pub struct Reader<R: BufRead> {
    input: R,
    buf: Vec<u8>,
    sha: Sha256,
    lines: u64,
    header: Header,
    order: Order,
    chain: Option<(Uuid, Verifier)>,
    done: bool,
}

impl<R: BufRead> Reader<R> {
    /// Reads and checks the header: the format, then the version, then the rest.
    pub fn new(mut input: R) -> Result<Self, ImportError> {
        let mut buf = Vec::new();
        if !read_line(&mut input, &mut buf, 1)? {
            return Err(ImportError::NotAnExport("the file is empty".into()));
        }
        let probe: serde_json::Value =
            serde_json::from_slice(line_json(&buf)).map_err(|e| ImportError::NotAnExport(e.to_string()))?;
        if probe.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(ImportError::NotAnExport(format!("its format is not {FORMAT:?}")));
        }
        match probe.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(VERSION) => {}
            Some(found) => return Err(ImportError::UnsupportedVersion { found }),
            None => return Err(ImportError::NotAnExport("it has no version".into())),
        }
        let header = serde_json::from_value(probe).map_err(|e| malformed(1, e))?;
        let mut sha = Sha256::new();
        sha.update(&buf);
        Ok(Reader { input, buf, sha, lines: 1, header, order: Order::default(), chain: None, done: false })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The next item; `Ok(None)` after the end line, once the line count and checksum matched.
    pub fn next_item(&mut self) -> Result<Option<Item>, ImportError> {
        if self.done {
            return Ok(None);
        }
        if !self.read_line()? {
            return Err(ImportError::Truncated);
        }
        let line = self.lines;
        let mut value: serde_json::Value =
            serde_json::from_slice(line_json(&self.buf)).map_err(|e| malformed(line, e))?;
        if value.get("type").and_then(|t| t.as_str()) == Some("end") {
            if let Some(map) = value.as_object_mut() {
                map.remove("type");
            }
            let end: End = serde_json::from_value(value).map_err(|e| malformed(line, e))?;
            self.finish_chain(line)?;
            self.check_end(&end)?;
            self.done = true;
            if self.read_line()? {
                return Err(ImportError::TrailingData { line: self.lines });
            }
            return Ok(None);
        }
        let item: Item = serde_json::from_value(value).map_err(|e| malformed(line, e))?;
        self.sha.update(&self.buf);
        self.order.admit(&item, self.header.tenant_id).map_err(|message| ImportError::Order { line, message })?;
        if let Item::Audit(a) = &item {
            self.check_audit(line, a)?;
        }
        Ok(Some(item))
    }

    fn check_audit(&mut self, line: u64, a: &Audit) -> Result<(), ImportError> {
        for (what, v) in [("before", &a.record.before), ("after", &a.record.after)] {
            if let Some(v) = v {
                check_values(what, v).map_err(|source| ImportError::Secret { line, source })?;
            }
        }
        let chain_tenant = a.chain_tenant(self.header.tenant_id);
        if self.chain.as_ref().is_some_and(|(t, _)| *t != chain_tenant) {
            self.finish_chain(line)?;
        }
        let (_, verifier) = self.chain.get_or_insert_with(|| (chain_tenant, Verifier::new(chain_tenant)));
        verifier.push(&a.record).map_err(|source| ImportError::Chain { line, source })
    }

    fn finish_chain(&mut self, line: u64) -> Result<(), ImportError> {
        match self.chain.take() {
            Some((_, v)) => v.finish(None).map(drop).map_err(|source| ImportError::Chain { line, source }),
            None => Ok(()),
        }
    }

    fn check_end(&self, end: &End) -> Result<(), ImportError> {
        let actual = hex::encode(self.sha.clone().finalize());
        if end.lines != self.lines - 1 {
            return Err(ImportError::LineCount { declared: end.lines, actual: self.lines - 1 });
        }
        if end.sha256 != actual {
            return Err(ImportError::Checksum { declared: end.sha256.clone(), actual });
        }
        Ok(())
    }

    /// Reads the next line into `buf`; `false` at the end of the input.
    fn read_line(&mut self) -> Result<bool, ImportError> {
        let more = read_line(&mut self.input, &mut self.buf, self.lines + 1)?;
        self.lines += u64::from(more);
        Ok(more)
    }
}

/// Reads line number `line`, newline included, into `buf`; `false` at the end of the input.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>, line: u64) -> Result<bool, ImportError> {
    buf.clear();
    let n = input.take(MAX_LINE as u64).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if n == MAX_LINE { ImportError::LineTooLong { line } } else { ImportError::Truncated });
    }
    Ok(true)
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Item, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_item() {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn line_json(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

fn malformed(line: u64, e: serde_json::Error) -> ImportError {
    ImportError::Malformed { line, message: e.to_string() }
}

/// `import --as <to>`: the export of tenant `from` loaded as tenant `to`.
///
/// The header and the tenant line take the new id; the other lines name no tenant and are
/// unchanged (user, invitation and todo ids are kept: they are unique per tenant or global).
/// Audit records are not rewritten: their `tenant_id` is inside their hash. They become the new
/// tenant's imported history, marked `imported_from: <from>` (records already imported keep
/// their mark), and still verify as `from`'s chain. The new tenant's own chain starts at seq 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remap {
    pub from: Uuid,
    pub to: Uuid,
}

impl Remap {
    pub fn header(&self, mut header: Header) -> Header {
        if header.tenant_id == self.from {
            header.tenant_id = self.to;
        }
        header
    }

    pub fn item(&self, item: Item) -> Item {
        match item {
            Item::Tenant(mut t) if t.id == self.from => {
                t.id = self.to;
                Item::Tenant(t)
            }
            Item::Audit(mut a) if a.imported_from.is_none() && a.record.tenant_id == self.from => {
                a.imported_from = Some(self.from);
                Item::Audit(a)
            }
            other => other,
        }
    }
}
