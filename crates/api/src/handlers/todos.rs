//! Todos: `POST /api/tenants/{tenant_id}/todos`, `PATCH .../todos/{todo_id}`.

use bytes::Bytes;
use http::Response;
use serde::Deserialize;
use store::{TenantId, TodoId, TodoPatch, TodoTitle};

use super::ctx::Ctx;
use crate::{
    Error, Result,
    body::{self, body_id, present},
    respond::{created, ok},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTodoBody {
    title: String,
    #[serde(default, deserialize_with = "present")]
    complete: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    id: Option<String>,
}

pub(super) async fn post_todo(ctx: &Ctx<'_>, tenant: TenantId) -> Result<Response<Bytes>> {
    let b: NewTodoBody = body::json(ctx.req)?;
    let title = TodoTitle::parse(&b.title).map_err(Error::invalid)?;
    let id = TodoId(body_id(b.id.as_deref())?);
    let todo = ctx.db.create_todo(tenant, id, &title, b.complete.unwrap_or(false)).await?;
    created(&todo, format!("/api/tenants/{tenant}/todos/{id}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TodoPatchBody {
    #[serde(default, deserialize_with = "present")]
    title: Option<String>,
    #[serde(default, deserialize_with = "present")]
    complete: Option<bool>,
}

pub(super) async fn patch_todo(ctx: &Ctx<'_>, tenant: TenantId, id: TodoId) -> Result<Response<Bytes>> {
    let b: TodoPatchBody = body::json(ctx.req)?;
    let patch = TodoPatch {
        title: b.title.as_deref().map(TodoTitle::parse).transpose().map_err(Error::invalid)?,
        complete: b.complete,
    };
    if patch.title.is_none() && patch.complete.is_none() {
        return Err(Error::Invalid { field: "body".into(), message: "set at least one of title, complete".into() });
    }
    ok(&ctx.db.update_todo(tenant, id, &patch).await?)
}
