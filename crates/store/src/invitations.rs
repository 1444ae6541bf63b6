//! Invitations: the only way into a tenant. An admin creates one (a single-use random code,
//! stored as its SHA-256), the invitee accepts it. Holding the code is the capability: the
//! accepting transaction puts the code's hash in `app.invitation`, and the row-level security
//! policies let it see and consume that one invitation and enrol its caller with the invited
//! role (`migrations/0002_consent.sql`).

use domain::INVITATION_LIFE;
use limits::Quota;
use uuid::Uuid;

use crate::{
    Cursor, Email, Error, Invitation, InvitationCode, InvitationId, Membership, NewInvitation, Page, PageRequest, Q,
    Result, Role, TenantId, UserId,
    queries::{ADMINS, fetch_limit, gated, page, step},
    rows::DbRow,
    scope::Scoped,
    steps::{Access, Tenants},
};

fn invitation_at(row: &DbRow, i: usize) -> Option<Invitation> {
    let id: Uuid = row.col::<Option<Uuid>>(i + 1)?;
    Some(Invitation {
        tenant_id: TenantId(row.col(i)),
        id: InvitationId(id),
        role: Role::from_db(&row.col::<String>(i + 2)),
        email: row.col(i + 3),
        created_at: row.col(i + 4),
        expires_at: row.col(i + 5),
        created_by: row.col::<Option<Uuid>>(i + 6).map(UserId),
    })
}

impl Scoped<'_> {
    /// Creates an invitation (admins only) and returns it with its code, which is not stored.
    pub async fn create_invitation(
        &self,
        tenant: TenantId,
        new: &NewInvitation,
    ) -> Result<(Invitation, InvitationCode)> {
        let code = InvitationCode::generate();
        let (hash, role, email) = (code.hash(), new.role.as_str(), new.email.as_ref().map(Email::as_str));
        let life = INVITATION_LIFE.as_secs() as i64;
        let (names, caps) = (self.plans.names(), self.plans.caps(Quota::PendingInvitations));
        // With an Idempotency-Key the record must answer a repeat with the same code: it keeps
        // the code sealed with the client's key, which the database never sees (the invitation
        // itself stores the code's hash only).
        let echoed = self.idempotency.map(|i| i.seal(code.expose())).unwrap_or_default();
        let rows = self
            .run(
                Tenants::Member(tenant),
                Access::Write,
                &[
                    step(Q::InvitationCreate, &[&tenant.0, &hash, &role, &email, &life, names, caps]),
                    step(Q::Echo, &[&echoed]),
                ],
            )
            .await?;
        let row = gated(&rows[0], ADMINS)?;
        let invitation = invitation_at(row, 1)
            .ok_or_else(|| crate::quota::exceeded(row, 8, Quota::PendingInvitations).unwrap_or(Error::NotFound))?;
        let code = match (self.idempotency, rows[1].first().map(|r| r.col::<String>(0))) {
            (Some(idem), Some(sealed)) if !sealed.is_empty() => {
                let first = idem.open(&sealed).ok_or(Error::IdempotencyMismatch)?;
                InvitationCode::parse(&first).map_err(|_| Error::IdempotencyMismatch)?
            }
            _ => code,
        };
        Ok((invitation, code))
    }

    /// Pending (unexpired, unaccepted) invitations of a tenant, for its admins.
    pub async fn list_invitations(&self, tenant: TenantId, req: PageRequest) -> Result<Page<Invitation>> {
        let c = req.cursor.unwrap_or_else(Cursor::start);
        let rows = self
            .run(
                Tenants::Member(tenant),
                Access::Read,
                &[step(Q::InvitationList, &[&tenant.0, &c.created_at, &c.id, &fetch_limit(req)])],
            )
            .await?;
        gated(&rows[0], ADMINS)?;
        let items = rows[0].iter().filter_map(|r| invitation_at(r, 1)).collect();
        Ok(page(items, req, |i| (i.created_at, i.id.0)))
    }

    /// Revokes an invitation (admins only); 404 when there is no such pending invitation.
    pub async fn revoke_invitation(&self, tenant: TenantId, id: InvitationId) -> Result<()> {
        let rows =
            self.run(Tenants::Member(tenant), Access::Write, &[step(Q::InvitationRevoke, &[&tenant.0, &id.0])]).await?;
        let row = gated(&rows[0], ADMINS)?;
        row.col::<bool>(1).then_some(()).ok_or(Error::NotFound)
    }

    /// Accepts an invitation: the caller becomes a member with the invited role. Unknown, used,
    /// revoked and expired codes, and codes bound to an email the caller has not verified, are
    /// all the same 404. `verified_email` is the caller's email if their token says it is
    /// verified. A caller who is a member already gets 409 and the invitation stays unused.
    pub async fn accept_invitation(&self, code: &InvitationCode, verified_email: Option<&Email>) -> Result<Membership> {
        let hash = code.hash();
        let hash_hex = hex::encode(&hash);
        let email = verified_email.map(Email::as_str);
        let (names, caps) = (self.plans.names(), self.plans.caps(Quota::Members));
        let rows = self
            .run(
                Tenants::None,
                Access::Write,
                &[
                    step(Q::ScopeInvitation, &[&hash_hex]),
                    step(Q::InvitationAccept, &[&hash, &email, names, caps]),
                    step(Q::InvitationTenant, &[]),
                ],
            )
            .await?;
        let row = &rows[1][0];
        let (valid, member) = (row.col::<bool>(0), row.col::<bool>(1));
        let joined = row.col::<Option<Uuid>>(2);
        match (valid, member, joined) {
            (_, _, Some(tenant_id)) => {
                let tenant = rows[2].iter().find(|t| t.col::<Uuid>(0) == tenant_id).ok_or(Error::NotFound)?;
                Ok(Membership {
                    tenant_id: TenantId(tenant_id),
                    tenant_name: tenant.col(1),
                    role: Role::from_db(&row.col::<String>(3)),
                })
            }
            (true, true, None) => Err(Error::Conflict("you are a member of this tenant already")),
            (true, false, None) => Err(crate::quota::exceeded(row, 5, Quota::Members).unwrap_or(Error::NotFound)),
            _ => Err(Error::NotFound),
        }
    }
}
