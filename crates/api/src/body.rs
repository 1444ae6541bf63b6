//! Reading requests: JSON bodies (size, content type, syntax, unknown fields) and the query
//! parameters of list endpoints. Field values are validated afterwards by parsing them into the
//! store's domain types.

use bytes::Bytes;
use http::{Request, header};
use serde::{Deserialize, de::DeserializeOwned};
use store::{Cursor, Limit, PageRequest};
use uuid::Uuid;

use crate::{Error, Result};

/// Rejects a body over the limit, whatever the method.
pub(crate) fn check_size(req: &Request<Bytes>, limit: usize) -> Result<()> {
    if req.body().len() > limit {
        return Err(Error::PayloadTooLarge(limit));
    }
    Ok(())
}

fn is_json(req: &Request<Bytes>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            let mime = v.split(';').next().unwrap_or("").trim();
            mime.eq_ignore_ascii_case("application/json")
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// Parses the body as `T`: 415 unless it is declared JSON, 400 for malformed JSON, 422 for JSON
/// of the wrong shape (wrong types, missing or unknown fields).
pub(crate) fn json<T: DeserializeOwned>(req: &Request<Bytes>) -> Result<T> {
    if !is_json(req) {
        return Err(Error::UnsupportedMediaType);
    }
    let body = req.body();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::BadRequest("the request body is empty; send a JSON object".into()));
    }
    // Syntax first, for the whole body: a malformed document is a 400 even when its first
    // bytes already name a wrong field (which the typed parse would report first, as a 422).
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map_err(|e| Error::BadRequest(format!("malformed JSON: {e}")))?;
    serde_json::from_slice(body).map_err(|e| Error::Invalid { field: "body".into(), message: e.to_string() })
}

/// `limit`, `cursor` and (where the list has it) `complete`. Other parameters are ignored.
#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    pub page: PageRequest,
    pub complete: Option<bool>,
}

pub(crate) fn list_query(req: &Request<Bytes>) -> Result<ListQuery> {
    let mut q = ListQuery::default();
    let Some(query) = req.uri().query() else {
        return Ok(q);
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "limit" => q.page.limit = Limit::parse(&value).map_err(Error::bad_param)?,
            "cursor" => q.page.cursor = Some(Cursor::decode(&value).map_err(Error::bad_param)?),
            "complete" => {
                q.complete = Some(match value.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(Error::BadRequest("complete: must be true or false".into())),
                })
            }
            _ => {}
        }
    }
    Ok(q)
}

/// An optional field that, when present, must have a value: `null` is rejected (422) like any
/// other wrong type, rather than read as "absent".
pub(crate) fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// An optional client-chosen id in a body: lets a client retry a create without duplicating
/// it (the retry gets 409).
pub(crate) fn body_id(id: Option<&str>) -> Result<Uuid> {
    match id {
        None => Ok(Uuid::new_v4()),
        Some(s) => {
            store::parse_uuid(s).ok_or_else(|| Error::Invalid { field: "id".into(), message: "must be a UUID".into() })
        }
    }
}
