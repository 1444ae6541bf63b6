//! What a handler needs about the request, and the ids in its path.

use bytes::Bytes;
use http::Request;
use matchit::Params;
use store::{InvitationId, Scoped, TenantId, TodoId, UserId};

use crate::{App, Error, Principal, Result};

/// What a handler needs about the request.
pub(super) struct Ctx<'a> {
    pub app: &'a App,
    pub req: &'a Request<Bytes>,
    pub db: Scoped<'a>,
    pub principal: &'a Principal,
}

impl Ctx<'_> {
    /// The caller's row is gone (deleted through another instance, whose cache said it
    /// existed): register them again from their claims, for a second try.
    pub async fn registered_again(&self) -> Result<Scoped<'_>> {
        self.app.forget(self.principal);
        let id = self.app.user_id(self.principal, self.db.deadline()).await?;
        Ok(self.app.store().scoped(id).with_deadline(self.db.deadline()).with_idempotency(self.db.idempotency()))
    }
}

fn param<'p>(p: &'p Params<'_, '_>, name: &str) -> &'p str {
    p.get(name).unwrap_or_default()
}

pub(super) fn tenant_id(p: &Params<'_, '_>) -> Result<TenantId> {
    TenantId::parse(param(p, "tenant_id")).map_err(Error::bad_param)
}

pub(super) fn user_id(p: &Params<'_, '_>) -> Result<UserId> {
    UserId::parse(param(p, "user_id")).map_err(Error::bad_param)
}

pub(super) fn todo_id(p: &Params<'_, '_>) -> Result<TodoId> {
    TodoId::parse(param(p, "todo_id")).map_err(Error::bad_param)
}

pub(super) fn invitation_id(p: &Params<'_, '_>) -> Result<InvitationId> {
    InvitationId::parse(param(p, "invitation_id")).map_err(Error::bad_param)
}
