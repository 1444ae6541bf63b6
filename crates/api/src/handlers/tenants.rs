//! Tenants: `POST /api/tenants`, `PATCH /api/tenants/{tenant_id}`.

use bytes::Bytes;
use http::Response;
use serde::Deserialize;
use store::{TenantId, TenantName};

use super::ctx::Ctx;
use crate::{
    Error, Result,
    body::{self, body_id, present},
    respond::{created, ok},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenantBody {
    name: String,
    #[serde(default, deserialize_with = "present")]
    id: Option<String>,
}

pub(super) async fn post_tenant(ctx: &Ctx<'_>) -> Result<Response<Bytes>> {
    let b: NewTenantBody = body::json(ctx.req)?;
    let name = TenantName::parse(&b.name).map_err(Error::invalid)?;
    let id = TenantId(body_id(b.id.as_deref())?);
    let tenant = match ctx.db.create_tenant(id, &name).await {
        Err(store::Error::NotFound) => ctx.registered_again().await?.create_tenant(id, &name).await?,
        other => other?,
    };
    created(&tenant, format!("/api/tenants/{id}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameTenantBody {
    name: String,
}

pub(super) async fn patch_tenant(ctx: &Ctx<'_>, id: TenantId) -> Result<Response<Bytes>> {
    let b: RenameTenantBody = body::json(ctx.req)?;
    let name = TenantName::parse(&b.name).map_err(Error::invalid)?;
    ok(&ctx.db.rename_tenant(id, &name).await?)
}
