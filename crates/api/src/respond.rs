//! Shaping responses: the OpenAPI document, 200 and 201 with JSON, a page of todos written
//! directly, 204.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::{Result, json_response};

/// The OpenAPI document of this API (`crates/api/openapi.json`, checked against the route
/// table by a test and against real responses by schemathesis in CI).
pub const OPENAPI: &str = include_str!("../openapi.json");

pub(crate) fn openapi() -> Response<Bytes> {
    let mut res = Response::new(Bytes::from_static(OPENAPI.as_bytes()));
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res
}

pub(crate) fn ok<T: Serialize>(value: &T) -> Result<Response<Bytes>> {
    Ok(json_response(StatusCode::OK, value))
}

/// A page of todos: the same JSON as [`ok`] writes, written directly (see `todo_json`).
pub(crate) fn ok_todos(page: &store::Page<store::Todo>) -> Result<Response<Bytes>> {
    Ok(crate::json_response_with(StatusCode::OK, |buf| crate::todo_json::write_page(buf, page)))
}

pub(crate) fn created<T: Serialize>(value: &T, location: String) -> Result<Response<Bytes>> {
    let mut res = json_response(StatusCode::CREATED, value);
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    Ok(res)
}

pub(crate) fn no_content((): ()) -> Result<Response<Bytes>> {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = StatusCode::NO_CONTENT;
    Ok(res)
}
