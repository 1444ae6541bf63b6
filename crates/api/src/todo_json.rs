//! A page of todos as JSON, written directly: the list routes' answer is most of what a list
//! request spends beyond the database (the benchmark's instruction counts), and most of that was
//! serde_json checking ids and timestamps, which never need escaping, for characters to escape.
//! The bytes are exactly what `serde_json::to_vec(&page)` writes (tested below, with titles of
//! every kind); titles still go through serde_json's string escaping.

use std::io::Write as _;

use store::{Page, RFC3339_MAX, Todo, rfc3339_text};
use uuid::Uuid;

/// `"<uuid>"`: hex digits and hyphens, nothing to escape.
fn uuid(out: &mut Vec<u8>, id: &Uuid) {
    let mut buf = Uuid::encode_buffer();
    out.push(b'"');
    out.extend_from_slice(id.hyphenated().encode_lower(&mut buf).as_bytes());
    out.push(b'"');
}

/// `"<RFC 3339>"`: digits, separators and `Z`, nothing to escape.
fn timestamp(out: &mut Vec<u8>, t: &time::OffsetDateTime) {
    let mut buf = [0; RFC3339_MAX];
    let text = rfc3339_text(t, &mut buf).expect("a timestamp from the database formats");
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
}

/// Appends `page` to `out` as JSON.
pub(crate) fn write_page(out: &mut Vec<u8>, page: &Page<Todo>) {
    out.extend_from_slice(b"{\"items\":[");
    for (i, t) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"tenant_id\":");
        uuid(out, &t.tenant_id.0);
        out.extend_from_slice(b",\"id\":");
        uuid(out, &t.id.0);
        out.extend_from_slice(b",\"title\":");
        serde_json::to_writer(&mut *out, &t.title).expect("a string serialises");
        out.extend_from_slice(if t.complete { b",\"complete\":true" } else { b",\"complete\":false" });
        out.extend_from_slice(b",\"created_at\":");
        timestamp(out, &t.created_at);
        out.extend_from_slice(b",\"updated_at\":");
        timestamp(out, &t.updated_at);
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"next_cursor\":");
    match &page.next_cursor {
        // The cursor is base64url: nothing to escape.
        Some(c) => write!(out, "\"{}\"", c.encode()).expect("writing to a Vec"),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use store::{TenantId, TodoId};
    use time::OffsetDateTime;

    use super::*;

    fn todo(title: String, complete: bool, created: i64, nanos: u32, updated: i64) -> Todo {
        let at =
            |s: i64, n: u32| OffsetDateTime::from_unix_timestamp(s).unwrap() + time::Duration::nanoseconds(n.into());
        Todo {
            tenant_id: TenantId(Uuid::new_v4()),
            id: TodoId(Uuid::new_v4()),
            title,
            complete,
            created_at: at(created, nanos),
            updated_at: at(updated, 0),
        }
    }

    /// A cursor as the API hands them out (version 2: time, tenant, id).
    fn cursor() -> store::Cursor {
        use base64::Engine as _;
        let mut raw = [0u8; 41];
        raw[0] = 2;
        raw[1..9].copy_from_slice(&1_795_344_553_000_000_i64.to_be_bytes());
        raw[9..25].copy_from_slice(Uuid::new_v4().as_bytes());
        raw[25..].copy_from_slice(Uuid::new_v4().as_bytes());
        store::Cursor::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)).unwrap()
    }

    proptest! {
        #[test]
        fn a_page_is_written_as_serde_json_writes_it(
            items in prop::collection::vec(
                (any::<String>(), any::<bool>(), -62_135_596_800_i64..253_402_300_799, 0_u32..1_000_000_000, 0_i64..4_000_000_000),
                0..6,
            ),
            more in any::<bool>(),
        ) {
            let items: Vec<Todo> = items.into_iter().map(|(t, c, s, n, u)| todo(t, c, s, n, u)).collect();
            let next_cursor = more.then(cursor);
            let page = Page { items, next_cursor };
            let mut fast = Vec::new();
            write_page(&mut fast, &page);
            prop_assert_eq!(String::from_utf8(fast).unwrap(), serde_json::to_string(&page).unwrap());
        }
    }

    #[test]
    fn titles_that_need_escaping_are_escaped() {
        let page =
            Page { items: vec![todo("a \"quoted\" \\ title\n\u{1}é😀".into(), true, 0, 1, 0)], next_cursor: None };
        let mut fast = Vec::new();
        write_page(&mut fast, &page);
        assert_eq!(String::from_utf8(fast).unwrap(), serde_json::to_string(&page).unwrap());
    }
}
