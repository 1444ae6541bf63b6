//! Members: `PUT /api/tenants/{tenant_id}/members/{user_id}`.

use bytes::Bytes;
use http::Response;
use serde::Deserialize;
use store::{Role, TenantId, UserId};

use super::ctx::Ctx;
use crate::{Error, Result, body, respond::ok};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MemberBody {
    role: String,
}

pub(super) async fn put_member(ctx: &Ctx<'_>, tenant: TenantId, user: UserId) -> Result<Response<Bytes>> {
    let b: MemberBody = body::json(ctx.req)?;
    let role = Role::parse(&b.role).map_err(Error::invalid)?;
    ok(&ctx.db.set_member_role(tenant, user, role).await?)
}
