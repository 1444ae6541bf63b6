//! The invitation endpoints' bodies: what an admin sends to invite, what the invitee sends to
//! accept, and the one-time answer that carries the code.

use bytes::Bytes;
use http::{Request, Response};
use serde::{Deserialize, Serialize};
use store::{Email, Invitation, InvitationCode, NewInvitation, Role, Scoped, TenantId};

use crate::{
    Error, Principal, Result,
    body::{self, present},
    respond::{created, ok},
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewInvitationBody {
    role: String,
    #[serde(default, deserialize_with = "present")]
    email: Option<String>,
}

/// The answer to a new invitation: the only time its code is shown.
#[derive(Serialize)]
struct CreatedInvitation {
    #[serde(flatten)]
    invitation: Invitation,
    code: InvitationCode,
}

/// `POST /api/tenants/{tenant_id}/invitations` (admins).
pub(super) async fn create(db: &Scoped<'_>, req: &Request<Bytes>, tenant: TenantId) -> Result<Response<Bytes>> {
    let b: NewInvitationBody = body::json(req)?;
    let new = NewInvitation {
        role: Role::parse(&b.role).map_err(Error::invalid)?,
        email: b.email.as_deref().map(Email::parse).transpose().map_err(Error::invalid)?,
    };
    let (invitation, code) = db.create_invitation(tenant, &new).await?;
    let location = format!("/api/tenants/{tenant}/invitations/{}", invitation.id);
    created(&CreatedInvitation { invitation, code }, location)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    code: String,
}

/// `POST /api/invitations/accept` (any signed-in user): the new membership. Every code that
/// does not let this caller in (malformed, unknown, used, revoked, expired, or bound to an email
/// the caller has not verified) is the same 404.
pub(super) async fn accept(db: &Scoped<'_>, req: &Request<Bytes>, principal: &Principal) -> Result<Response<Bytes>> {
    let b: AcceptBody = body::json(req)?;
    let code = InvitationCode::parse(&b.code).map_err(|_| Error::NotFound("no such invitation"))?;
    match db.accept_invitation(&code, principal.verified_email().as_ref()).await {
        Err(store::Error::NotFound) => Err(Error::NotFound("no such invitation")),
        other => ok(&other?),
    }
}
