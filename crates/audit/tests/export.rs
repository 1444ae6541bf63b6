//! The export format: round trips, refusals, `--as`, and streaming.

mod common;

use std::cell::Cell;
use std::io::{self, Write};
use std::rc::Rc;

use audit::{Audit, BreakKind, ExportError, ImportError, Item, Reader, Remap, Writer, hash};
use common::{TENANT, export, header, items, todo};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

fn read_all(bytes: &[u8]) -> Result<(audit::Header, Vec<Item>), ImportError> {
    let mut r = Reader::new(bytes)?;
    let header = r.header().clone();
    let items = r.by_ref().collect::<Result<Vec<_>, _>>()?;
    Ok((header, items))
}

/// The lines of an export, without the end line.
fn lines(bytes: &[u8]) -> Vec<String> {
    let text = std::str::from_utf8(bytes).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.pop();
    lines
}

/// `lines` with a correct end line, as a file.
fn seal(lines: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l.as_bytes());
        out.push(b'\n');
    }
    let sha = hex::encode(Sha256::digest(&out));
    out.extend_from_slice(json!({"type": "end", "lines": lines.len(), "sha256": sha}).to_string().as_bytes());
    out.push(b'\n');
    out
}

fn edit(line: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(line).unwrap();
    f(&mut v);
    v.to_string()
}

#[test]
fn write_then_read_gives_the_same_items() {
    let items = items(TENANT, 25, 20);
    let bytes = export(&header(TENANT), &items);
    let (h, back) = read_all(&bytes).unwrap();
    assert_eq!(h, header(TENANT));
    assert_eq!(back, items);
    // Lines: header, 5 items, 25 todos, 20 audit records, end.
    assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 1 + 5 + 25 + 20 + 1);
    let last: Value = serde_json::from_str(std::str::from_utf8(&bytes).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "end");
    assert_eq!(last["lines"], 51);
    // The same items written again are the same bytes.
    assert_eq!(export(&header(TENANT), &back), bytes);
}

#[test]
fn a_wrong_version_or_format_is_refused() {
    let good = lines(&export(&header(TENANT), &items(TENANT, 1, 1)));
    let mut l = good.clone();
    l[0] = edit(&l[0], |v| v["version"] = json!(2));
    let err = read_all(&seal(&l)).unwrap_err();
    assert!(matches!(err, ImportError::UnsupportedVersion { found: 2 }), "{err}");
    assert_eq!(err.to_string(), "export format version 2 is not supported: this build reads version 1");
    let mut l = good.clone();
    l[0] = edit(&l[0], |v| v["format"] = json!("something-else"));
    assert!(matches!(read_all(&seal(&l)), Err(ImportError::NotAnExport(_))));
    assert!(matches!(read_all(b""), Err(ImportError::NotAnExport(_))));
    assert!(matches!(read_all(b"not json\n"), Err(ImportError::NotAnExport(_))));
    assert!(read_all(&seal(&good)).is_ok());
}

#[test]
fn a_changed_byte_fails_the_checksum() {
    let bytes = export(&header(TENANT), &items(TENANT, 3, 2));
    let text = String::from_utf8(bytes).unwrap().replacen("todo 1", "todo 9", 1);
    let err = read_all(text.as_bytes()).unwrap_err();
    assert!(matches!(err, ImportError::Checksum { .. }), "{err}");
    // Only the end line tells: the items before it were all yielded.
    let mut r = Reader::new(text.as_bytes()).unwrap();
    let yielded = r.by_ref().take_while(Result::is_ok).count();
    assert_eq!(yielded, 5 + 3 + 2);
}

#[test]
fn a_truncated_file_is_refused() {
    let bytes = export(&header(TENANT), &items(TENANT, 3, 2));
    let without_end =
        &bytes[..bytes.len() - 1 - bytes[..bytes.len() - 1].iter().rev().position(|b| *b == b'\n').unwrap()];
    assert!(without_end.ends_with(b"\n"));
    assert!(matches!(read_all(without_end), Err(ImportError::Truncated)));
    // Cut in the middle of a line.
    assert!(matches!(read_all(&bytes[..bytes.len() / 2]), Err(ImportError::Truncated)));
    // Cut before the end line's newline.
    assert!(matches!(read_all(&bytes[..bytes.len() - 1]), Err(ImportError::Truncated)));
    // A line missing, the end line kept: the count and the checksum do not match.
    let mut l = lines(&bytes);
    let end = std::str::from_utf8(&bytes).unwrap().lines().last().unwrap().to_owned();
    l.remove(7);
    l.push(end);
    let mut file = l.join("\n");
    file.push('\n');
    let err = read_all(file.as_bytes()).unwrap_err();
    assert!(matches!(err, ImportError::LineCount { declared: 11, actual: 10 }), "{err:?}");
}

#[test]
fn a_line_longer_than_the_limit_is_refused_and_reading_stops() {
    let mut l = lines(&export(&header(TENANT), &items(TENANT, 1, 0)));
    let last = l.len() - 1;
    l[last] = edit(&l[last], |v| v["title"] = json!("x".repeat(audit::MAX_LINE)));
    let file = seal(&l);
    let mut r = Reader::new(file.as_slice()).unwrap();
    let results: Vec<_> = r.by_ref().collect();
    assert_eq!(results.len(), 6, "5 items, then the error, then nothing");
    assert!(matches!(results[5], Err(ImportError::LineTooLong { line: 7 })), "{:?}", results[5]);
    assert!(r.next().is_none());
}

#[test]
fn data_after_the_end_is_refused() {
    let mut bytes = export(&header(TENANT), &items(TENANT, 1, 0));
    bytes.extend_from_slice(b"{\"type\":\"todo\"}\n");
    let err = read_all(&bytes).unwrap_err();
    assert!(matches!(err, ImportError::TrailingData { line: 9 }), "{err:?}");
}

#[test]
fn an_invitation_code_is_refused() {
    let mut l = lines(&export(&header(TENANT), &items(TENANT, 0, 0)));
    let i = l.iter().position(|l| l.contains(r#""type":"invitation""#)).unwrap();
    for field in ["code", "code_hash"] {
        let mut l = l.clone();
        l[i] = edit(&l[i], |v| v[field] = json!("inv_secret"));
        let err = read_all(&seal(&l)).unwrap_err();
        assert!(err.to_string().contains(&format!("unknown field `{field}`")), "{err}");
        assert!(matches!(err, ImportError::Malformed { line, .. } if line == i as u64 + 1));
    }
    l[i] = edit(&l[i], |v| v["role"] = json!("owner"));
    assert!(matches!(read_all(&seal(&l)), Err(ImportError::Malformed { .. })));
}

#[test]
fn lines_out_of_order_are_refused() {
    let l = lines(&export(&header(TENANT), &items(TENANT, 2, 2)));
    let mut swapped = l.clone();
    swapped.swap(3, 6); // line 5, a member, now after a todo
    let err = read_all(&seal(&swapped)).unwrap_err();
    assert!(matches!(err, ImportError::Order { line: 5, .. }), "{err:?}");
    let mut no_tenant = l.clone();
    no_tenant.remove(1);
    assert!(matches!(read_all(&seal(&no_tenant)), Err(ImportError::Order { line: 2, .. })));
    let mut other_tenant = l.clone();
    other_tenant[1] = edit(&l[1], |v| v["id"] = json!(Uuid::from_u128(5)));
    assert!(matches!(read_all(&seal(&other_tenant)), Err(ImportError::Order { line: 2, .. })));
    // The writer refuses the same.
    let mut w = Writer::new(Vec::new(), &header(TENANT)).unwrap();
    assert!(matches!(w.write(&Item::Todo(todo(1))), Err(ExportError::Order(_))));
}

#[test]
fn a_broken_audit_chain_or_a_secret_is_refused() {
    let l = lines(&export(&header(TENANT), &items(TENANT, 0, 6)));
    let first_audit = l.iter().position(|l| l.contains(r#""type":"audit""#)).unwrap();
    let mut deleted = l.clone();
    deleted.remove(first_audit + 2);
    let err = read_all(&seal(&deleted)).unwrap_err();
    match err {
        ImportError::Chain { source, .. } => assert_eq!((source.seq, source.kind), (3, BreakKind::Deleted)),
        other => panic!("{other}"),
    }
    let mut altered = l.clone();
    altered[first_audit + 1] = edit(&l[first_audit + 1], |v| v["record"]["target"] = json!("user:x"));
    assert!(
        matches!(read_all(&seal(&altered)), Err(ImportError::Chain { line, .. }) if line == first_audit as u64 + 2)
    );
    // A secret, even under a valid hash.
    let mut secret = l.clone();
    let mut a: Audit = serde_json::from_str(&edit(&l[first_audit], |v| {
        v.as_object_mut().unwrap().remove("type");
    }))
    .unwrap();
    a.record.after = Some(json!({"invitation": {"token": "t"}}));
    a.record.hash = hash(&a.record);
    secret[first_audit] = serde_json::to_string(&Item::Audit(a)).unwrap();
    assert!(matches!(read_all(&seal(&secret)), Err(ImportError::Secret { .. })));
}

#[test]
fn import_as_another_tenant_keeps_the_history_verifiable() {
    let a = TENANT;
    let b = Uuid::from_u128(0xb);
    let c = Uuid::from_u128(0xc);
    let original = export(&header(a), &items(a, 4, 10));
    let reexport = |bytes: &[u8], map: Remap| {
        let mut r = Reader::new(bytes).unwrap();
        let mut w = Writer::new(Vec::new(), &map.header(r.header().clone())).unwrap();
        for item in r.by_ref() {
            w.write(&map.item(item.unwrap())).unwrap();
        }
        w.finish().unwrap()
    };
    let as_b = reexport(&original, Remap { from: a, to: b });
    let (h, items_b) = read_all(&as_b).unwrap();
    assert_eq!(h.tenant_id, b);
    let (_, items_a) = read_all(&original).unwrap();
    for (x, y) in items_a.iter().zip(&items_b) {
        match (x, y) {
            (Item::Tenant(x), Item::Tenant(y)) => assert_eq!((x.id, y.id, &x.name), (a, b, &y.name)),
            (Item::Audit(x), Item::Audit(y)) => {
                assert_eq!((x.imported_from, y.imported_from), (None, Some(a)));
                assert_eq!(x.record, y.record);
            }
            (x, y) => assert_eq!(x, y),
        }
    }
    assert_eq!(items_a.len(), items_b.len());
    // Again, as c: the history stays a's.
    let (_, items_c) = read_all(&reexport(&as_b, Remap { from: b, to: c })).unwrap();
    assert!(items_c.iter().any(|i| matches!(i, Item::Audit(x) if x.imported_from == Some(a))));
    assert!(!items_c.iter().any(|i| matches!(i, Item::Audit(x) if x.imported_from != Some(a))));
}

/// A sink that keeps nothing: it counts bytes, remembers the last one and the largest write,
/// where the test can see them while the writer owns the sink.
#[derive(Default, Clone)]
struct Counting(Rc<Cell<(u64, u8, usize)>>);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (bytes, last, largest) = self.0.get();
        self.0.set((bytes + buf.len() as u64, buf.last().copied().unwrap_or(last), largest.max(buf.len())));
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_hundred_thousand_todos_stream_through() {
    let sink = Counting::default();
    let mut w = Writer::new(sink.clone(), &header(TENANT)).unwrap();
    for item in items(TENANT, 0, 0) {
        w.write(&item).unwrap();
    }
    for i in 0..100_000 {
        w.write(&Item::Todo(todo(i))).unwrap();
        // Each line has gone through entirely: the writer keeps nothing back.
        let (bytes, last, _) = sink.0.get();
        assert_eq!((bytes, last), (w.bytes(), b'\n'));
    }
    assert_eq!(w.lines(), 1 + 5 + 100_000);
    w.finish().unwrap();
    let (bytes, last, largest) = sink.0.get();
    assert_eq!(last, b'\n');
    assert!(bytes > 100_000 * 100, "{bytes}");
    // Pieces of a line, never an accumulation of lines.
    assert!(largest < 200, "{largest}");
}
