//! The rows a statement returned: from the server, or replayed from an idempotency record
//! (the same columns, in order, as JSON). Queries read both the same way, so that a replayed
//! request is answered exactly as the first one was.

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

/// One row: from PostgreSQL, or its columns' JSON values in order.
#[derive(Debug)]
pub(crate) enum DbRow {
    Pg(Row),
    Json(Vec<Value>),
}

impl DbRow {
    /// Column `i` as `T`. Like `Row::get`, it panics when the statement and the reader
    /// disagree on a column's type: that is a bug, caught by the tests of every query.
    pub fn col<T: Col>(&self, i: usize) -> T {
        match self {
            DbRow::Pg(row) => T::from_pg(row, i),
            DbRow::Json(cols) => T::from_json(cols.get(i).unwrap_or(&Value::Null))
                .unwrap_or_else(|| panic!("column {i} of a replayed row is not what the query reads: {cols:?}")),
        }
    }
}

/// A column type that a query reads.
pub(crate) trait Col: Sized {
    fn from_pg(row: &Row, i: usize) -> Self;
    fn from_json(v: &Value) -> Option<Self>;
}

macro_rules! col {
    ($t:ty, |$v:ident| $json:expr) => {
        impl Col for $t {
            fn from_pg(row: &Row, i: usize) -> Self {
                row.get(i)
            }
            fn from_json($v: &Value) -> Option<Self> {
                $json
            }
        }
        impl Col for Option<$t> {
            fn from_pg(row: &Row, i: usize) -> Self {
                row.get(i)
            }
            fn from_json(v: &Value) -> Option<Self> {
                if v.is_null() { Some(None) } else { <$t as Col>::from_json(v).map(Some) }
            }
        }
    };
}

col!(Uuid, |v| v.as_str().and_then(|s| Uuid::try_parse(s).ok()));
col!(String, |v| v.as_str().map(str::to_string));
col!(bool, |v| v.as_bool());
col!(i64, |v| v.as_i64());

/// `bytea` and `text[]`: read from the server only (the idempotency record itself).
impl Col for Vec<u8> {
    fn from_pg(row: &Row, i: usize) -> Self {
        row.get(i)
    }
    fn from_json(_: &Value) -> Option<Self> {
        None
    }
}

impl Col for Option<Vec<u8>> {
    fn from_pg(row: &Row, i: usize) -> Self {
        row.get(i)
    }
    fn from_json(_: &Value) -> Option<Self> {
        None
    }
}

impl Col for Vec<String> {
    fn from_pg(row: &Row, i: usize) -> Self {
        row.get(i)
    }
    fn from_json(_: &Value) -> Option<Self> {
        None
    }
}
// PostgreSQL writes timestamptz in JSON as ISO 8601 with an offset, microsecond precision.
col!(OffsetDateTime, |v| v.as_str().and_then(|s| OffsetDateTime::parse(
    s,
    &time::format_description::well_known::Iso8601::DEFAULT
)
.ok()));

/// Parses what `json_agg` made of a statement's rows: an array of objects whose members are
/// the columns in order. Names may repeat (`role` of two tables), so the members are read in
/// order, not by name.
pub(crate) fn parse_json_rows(text: &str) -> serde_json::Result<Vec<DbRow>> {
    struct Rows;
    struct Columns;

    impl<'de> Visitor<'de> for Columns {
        type Value = Vec<Value>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a row as a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut cols = Vec::new();
            while let Some((_, v)) = map.next_entry::<serde::de::IgnoredAny, Value>()? {
                cols.push(v);
            }
            Ok(cols)
        }
    }

    struct Row_(Vec<Value>);
    impl<'de> serde::Deserialize<'de> for Row_ {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(Columns).map(Row_)
        }
    }

    impl<'de> Visitor<'de> for Rows {
        type Value = Vec<DbRow>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("rows as a JSON array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut rows = Vec::new();
            while let Some(Row_(cols)) = seq.next_element()? {
                rows.push(DbRow::Json(cols));
            }
            Ok(rows)
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    let rows = de.deserialize_seq(Rows)?;
    de.end()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_rows_keep_repeated_names_in_order() {
        let rows = parse_json_rows(
            r#"[{"role":"admin","tenant_id":"6a1f0c9e-7d61-4c3b-9a53-2f8f0b7c1d2e","role":"member","n":null,
                 "created_at":"2026-11-25T23:02:56.045965+00:00","exists":true,"count":3}]"#,
        )
        .unwrap();
        let row = &rows[0];
        assert_eq!(row.col::<String>(0), "admin");
        assert_eq!(row.col::<String>(2), "member");
        assert_eq!(row.col::<Option<String>>(3), None);
        assert_eq!(row.col::<Uuid>(1).to_string(), "6a1f0c9e-7d61-4c3b-9a53-2f8f0b7c1d2e");
        assert_eq!(row.col::<OffsetDateTime>(4), time::macros::datetime!(2026-11-25 23:02:56.045965 UTC));
        assert!(row.col::<bool>(5));
        assert_eq!(row.col::<i64>(6), 3);
        assert!(parse_json_rows("[]").unwrap().is_empty());
    }
}
