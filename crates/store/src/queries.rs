//! The queries behind the user, tenant and member endpoints, as methods of [`Scoped`] (todos:
//! `todos.rs`; invitations: `invitations.rs`). Each method picks the tenant scope its rule needs
//! and runs as one pipelined transaction.

use limits::Quota;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    Count, Cursor, DisplayName, Email, Error, Member, Membership, Page, PageRequest, Q, Result, Role, Tenant,
    TenantDetail, TenantId, TenantName, Usage, User, UserId,
    rows::DbRow,
    scope::Scoped,
    steps::{Access, Step, Tenants},
};

/// Rows per table and purge transaction, sized for the strictest reading of DSQL's 3,000
/// modified rows per transaction: one that counts each secondary-index entry as a row too
/// (AWS documents neither way). Each purge transaction deletes up to this many rows from each
/// of todos, invitations and memberships, which have two secondary indexes each
/// (`migrations/dsql/0002_indexes.sql`): 330 x 3 tables x (1 + 2) = 2,970, and the tenant's
/// own row once the rest is gone. The local DSQL stand-in counts this way, and a test deletes a
/// tenant of 10,000 todos through it.
const PURGE_BATCH: i64 = 330;

pub(crate) fn step<'a>(q: Q, params: &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)]) -> Step<'a> {
    Step { q, params }
}

/// The caller's role, from the `me_role` column: `None` when the caller is not a member.
fn me_role(row: &DbRow) -> Role {
    Role::from_db(&row.col::<String>(0))
}

fn tenant(row: &DbRow) -> Tenant {
    Tenant {
        id: TenantId(row.col(0)),
        name: row.col(1),
        role: Role::from_db(&row.col::<String>(2)),
        created_at: row.col(3),
    }
}

fn user(row: &DbRow) -> User {
    User { id: UserId(row.col(0)), subject: row.col(1), name: row.col(2), email: row.col(3), created_at: row.col(4) }
}

fn member_at(row: &DbRow, i: usize) -> Option<Member> {
    let user_id: Uuid = row.col::<Option<Uuid>>(i + 1)?;
    Some(Member {
        tenant_id: TenantId(row.col(i)),
        user_id: UserId(user_id),
        name: row.col(i + 2),
        email: row.col(i + 3),
        role: Role::from_db(&row.col::<String>(i + 4)),
        joined_at: row.col(i + 5),
    })
}

/// The rows of a list fetched with `limit + 1`: the extra row only says that another page
/// exists.
pub(crate) fn page<T>(items: Vec<T>, req: PageRequest, key: impl Fn(&T) -> (OffsetDateTime, Uuid)) -> Page<T> {
    page_by(items, req, |t| {
        let (created_at, id) = key(t);
        (created_at, Uuid::nil(), id)
    })
}

/// [`page`] for lists whose sort key includes the tenant.
pub(crate) fn page_by<T>(
    mut items: Vec<T>,
    req: PageRequest,
    key: impl Fn(&T) -> (OffsetDateTime, Uuid, Uuid),
) -> Page<T> {
    let limit = req.limit.get();
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|last| {
            let (created_at, tenant, id) = key(last);
            Cursor { created_at, tenant, id }
        })
    } else {
        None
    };
    Page { items, next_cursor }
}

pub(crate) fn fetch_limit(req: PageRequest) -> i64 {
    req.limit.get() as i64 + 1
}

/// Rows of a role-gated list: no row means the caller is not a member.
pub(crate) fn gated_rows(rows: &[DbRow]) -> Result<Role> {
    rows.first().map(me_role).ok_or(Error::NotFound)
}

/// Rows of a role-gated single-row statement: 404 for non-members, 403 for members whose role
/// is not one of `allowed`.
pub(crate) fn gated<'r>(rows: &'r [DbRow], allowed: &[Role]) -> Result<&'r DbRow> {
    let row = rows.first().ok_or(Error::NotFound)?;
    if !allowed.contains(&me_role(row)) {
        return Err(Error::Forbidden);
    }
    Ok(row)
}

pub(crate) const EDITORS: &[Role] = &[Role::Admin, Role::Member];
pub(crate) const ADMINS: &[Role] = &[Role::Admin];
pub(crate) const ANYONE: &[Role] = &[Role::Admin, Role::Member, Role::Viewer];

impl Scoped<'_> {
    /// The caller's user and their memberships (at most 200; `GET /api/tenants` pages).
    pub async fn me(&self) -> Result<(User, Vec<Membership>)> {
        let rows = self.run(Tenants::All, Access::Read, &[step(Q::UserMe, &[]), step(Q::UserMemberships, &[])]).await?;
        let me = rows[0].first().map(user).ok_or(Error::NotFound)?;
        let memberships = rows[1]
            .iter()
            .map(|r| Membership {
                tenant_id: TenantId(r.col(0)),
                tenant_name: r.col(1),
                role: Role::from_db(&r.col::<String>(2)),
            })
            .collect();
        Ok((me, memberships))
    }

    /// Replaces the caller's profile (`POST /api/users` of a registered caller).
    /// `registered` says whether the caller was registered by this request; it is returned
    /// as given, and as first given when the request is answered from an idempotency record.
    pub async fn set_profile(&self, name: &DisplayName, email: &Email, registered: bool) -> Result<(User, bool)> {
        let flag = registered.to_string();
        let rows = self
            .run(
                Tenants::None,
                Access::Write,
                &[step(Q::UserProfileSet, &[&name.as_str(), &email.as_str()]), step(Q::Echo, &[&flag])],
            )
            .await?;
        let registered = rows[1].first().is_some_and(|r| r.col::<String>(0) == "true");
        Ok((rows[0].first().map(user).ok_or(Error::NotFound)?, registered))
    }

    /// A user the caller can see: themself or someone who shares a tenant with them.
    pub async fn get_user(&self, id: UserId) -> Result<User> {
        let rows = self.run(Tenants::All, Access::Read, &[step(Q::UserGet, &[&id.0])]).await?;
        rows[0].first().map(user).ok_or(Error::NotFound)
    }

    /// The caller and everyone who shares a tenant with them.
    pub async fn list_users(&self, req: PageRequest) -> Result<Page<User>> {
        let c = req.cursor.unwrap_or_else(Cursor::start);
        let rows = self
            .run(Tenants::All, Access::Read, &[step(Q::UserList, &[&c.created_at, &c.id, &fetch_limit(req)])])
            .await?;
        Ok(page(rows[0].iter().map(user).collect(), req, |u| (u.created_at, u.id.0)))
    }

    /// Replaces the caller's profile. Others' profiles: 403 if visible, else 404.
    pub async fn update_user(&self, id: UserId, name: &DisplayName, email: &Email) -> Result<User> {
        let rows = self
            .run(Tenants::All, Access::Write, &[step(Q::UserUpdate, &[&id.0, &name.as_str(), &email.as_str()])])
            .await?;
        let row = &rows[0][0];
        match (row.col::<bool>(0), row.col::<Option<Uuid>>(1)) {
            (false, _) => Err(Error::NotFound),
            (true, None) => Err(Error::Forbidden),
            (true, Some(_)) => Ok(User {
                id: UserId(row.col(1)),
                subject: row.col(2),
                name: row.col(3),
                email: row.col(4),
                created_at: row.col(5),
            }),
        }
    }

    /// Deletes the caller (and their memberships). Refused while they are a tenant's last admin.
    pub async fn delete_user(&self, id: UserId) -> Result<()> {
        // With silo tenants, the caller's copies in dedicated databases are fenced first (a warm
        // instance may still know the account's id), and the fences lifted after.
        let fenced = if id == self.user { self.fence_my_copies().await? } else { Vec::new() };
        let target: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&id.0];
        let steps = [step(Q::UserLockAdminTenants, &[]), step(Q::UserDelete, &target)];
        let rows = self.run(Tenants::All, Access::Write, &steps).await;
        self.lift_fences(&fenced).await?;
        let rows = rows?;
        let row = &rows[rows.len() - 1][0];
        match (row.col::<bool>(0), id == self.user, row.col::<bool>(1), row.col::<bool>(2)) {
            (false, _, _, _) => Err(Error::NotFound),
            (true, false, _, _) => Err(Error::Forbidden),
            (true, true, true, _) => Err(Error::Conflict(
                "you are the last admin of a tenant: make someone else admin or delete the tenant first",
            )),
            (true, true, false, false) => Err(Error::NotFound),
            (true, true, false, true) => Ok(()),
        }
    }

    /// Creates a tenant with the caller as its admin. The caller's user row must exist
    /// ([`Store::register`](crate::Store::register)); without it, 404.
    pub async fn create_tenant(&self, id: TenantId, name: &TenantName) -> Result<Tenant> {
        let (names, caps) = (self.plans.names(), self.plans.caps(Quota::TenantsPerUser));
        let rows = self
            .run(Tenants::None, Access::Write, &[step(Q::TenantCreate, &[&id.0, &name.as_str(), names, caps])])
            .await?;
        // No row: the caller's user row is gone (on DSQL; on PostgreSQL the foreign key fails,
        // which is the same NotFound), and the caller is registered again.
        let row = rows[0].first().ok_or(Error::NotFound)?;
        if row.col::<Option<Uuid>>(0).is_none() {
            return Err(crate::quota::exceeded(row, 4, Quota::TenantsPerUser).unwrap_or(Error::NotFound));
        }
        Ok(tenant(row))
    }

    pub async fn list_tenants(&self, req: PageRequest) -> Result<Page<Tenant>> {
        let c = req.cursor.unwrap_or_else(Cursor::start);
        let rows = self
            .run(Tenants::All, Access::Read, &[step(Q::TenantList, &[&c.created_at, &c.id, &fetch_limit(req)])])
            .await?;
        Ok(page(rows[0].iter().map(tenant).collect(), req, |t| (t.created_at, t.id.0)))
    }

    /// The tenant with its plan, and for its admins the use of each count quota.
    pub async fn get_tenant(&self, id: TenantId) -> Result<TenantDetail> {
        let p = self.plans;
        let (names, todos, members, invitations) =
            (p.names(), p.caps(Quota::Todos), p.caps(Quota::Members), p.caps(Quota::PendingInvitations));
        let rows = self
            .run(Tenants::Member(id), Access::Read, &[step(Q::TenantGet, &[&id.0, names, todos, members, invitations])])
            .await?;
        let row = rows[0].first().ok_or(Error::NotFound)?;
        let count = |i: usize| Some(Count { used: row.col::<Option<i64>>(i)?, limit: row.col(i + 3) });
        let mut usage = match (count(5), count(6), count(7)) {
            (Some(todos), Some(members), Some(pending_invitations)) => {
                Some(Usage { todos, members, pending_invitations })
            }
            _ => None,
        };
        // A dedicated tenant's todos are in its own database: counted there, for its admins.
        if let Some(u) = usage.as_mut()
            && row.col::<bool>(11)
        {
            let rows = self.run_tenant(id, Access::Read, &[step(Q::TodoCount, &[&id.0, &u.todos.limit])]).await?;
            u.todos.used = rows[0].first().and_then(|r| r.col::<Option<i64>>(1)).unwrap_or(0);
        }
        Ok(TenantDetail { tenant: tenant(row), plan: row.col(4), usage })
    }

    pub async fn rename_tenant(&self, id: TenantId, name: &TenantName) -> Result<Tenant> {
        let rows =
            self.run(Tenants::Member(id), Access::Write, &[step(Q::TenantRename, &[&id.0, &name.as_str()])]).await?;
        let row = gated(&rows[0], ADMINS)?;
        // No updated row although the caller is an admin: the tenant was deleted meanwhile.
        let id: Uuid = row.col::<Option<Uuid>>(1).ok_or(Error::NotFound)?;
        Ok(Tenant { id: TenantId(id), name: row.col(2), role: me_role(row), created_at: row.col(3) })
    }

    /// Deletes a tenant with its memberships, todos and invitations.
    pub async fn delete_tenant(&self, id: TenantId) -> Result<()> {
        if self.db.config().engine == crate::Engine::Dsql {
            let rows = self.run(Tenants::Member(id), Access::Write, &[step(Q::TenantDelete, &[&id.0])]).await?;
            gated(&rows[0], ADMINS)?;
            self.purge_tenant(id).await;
            return Ok(());
        }
        // A dedicated tenant is fenced away in its database first: whatever happens to its rows
        // there, nothing is served from them again.
        let fenced = self.fence_tenant_away(id).await?;
        // Where its todos live, read before the delete cascades the placement away, with the
        // tenant's row locked first so that a move cannot switch it in between.
        let rows = self
            .run(
                Tenants::Member(id),
                Access::Write,
                &[step(Q::TenantLock, &[&id.0]), step(Q::PlacementGet, &[&id.0]), step(Q::TenantDelete, &[&id.0])],
            )
            .await;
        // The fence is taken back only when the delete surely did not happen. An unknown outcome
        // (a lost connection, a deadline mid-COMMIT) keeps it: the tenant answers 503 until the
        // delete is sent again, which finishes it either way.
        let refused = match &rows {
            Ok(r) => !gated(&r[r.len() - 1], ADMINS).is_ok_and(|row| row.col::<bool>(1)),
            Err(
                Error::Unavailable { .. } | Error::Deadline | Error::StatementTimeout | Error::ConnectTimeout { .. },
            ) => false,
            Err(_) => true,
        };
        if let (Some(f), true) = (&fenced, refused) {
            self.unfence_tenant(id, f).await;
        }
        let rows = rows?;
        // A replay from an `Idempotency-Key` record has no placement rows (they are not
        // recorded): the first request did the rest.
        let (placed, deleted) = match &rows[..] {
            [_, placed, deleted] => (placed.first(), deleted),
            _ => (None, &rows[rows.len() - 1]),
        };
        gated(deleted, ADMINS)?;
        if let Some(row) = placed {
            self.drop_placed_tenant(id, crate::placement::Database::from_row(row, 0)?).await;
        }
        Ok(())
    }

    /// On Aurora DSQL (no cascading foreign keys, at most 3,000 rows modified per transaction):
    /// removes the rows of a deleted tenant in batches, each its own transaction, within the
    /// request's deadline. They are unreachable from the moment the tenant is marked deleted
    /// (every scope joins tenants that are not), and its row, which keeps its id taken, goes
    /// last (see `Q::PurgeTenant` in `crate::dsql`), so a purge cut short by the deadline or a
    /// failure leaves nothing visible or revivable; the scheduled cleanup
    /// ([`crate::Store::purge_deleted_tenants`]) finishes it.
    pub(crate) async fn purge_tenant(&self, id: TenantId) {
        let plain = Scoped { idempotency: None, ..*self };
        loop {
            let rows = plain.run(Tenants::None, Access::Write, &[step(Q::PurgeTenant, &[&id.0, &PURGE_BATCH])]).await;
            match rows {
                Ok(rows) if rows[0].first().is_some_and(|r| r.col::<i64>(0) > 0) => continue,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(tenant = %id.0, error = %e, "purging a deleted tenant's rows stopped; they are unreachable");
                    return;
                }
            }
        }
    }

    pub async fn list_members(&self, tenant: TenantId, req: PageRequest) -> Result<Page<Member>> {
        let c = req.cursor.unwrap_or_else(Cursor::start);
        let rows = self
            .run(
                Tenants::Member(tenant),
                Access::Read,
                &[step(Q::MemberList, &[&tenant.0, &c.created_at, &c.id, &fetch_limit(req)])],
            )
            .await?;
        gated_rows(&rows[0])?;
        let items = rows[0].iter().filter_map(|r| member_at(r, 1)).collect();
        Ok(page(items, req, |m| (m.joined_at, m.user_id.0)))
    }

    /// Changes a member's role (admins only). A user who is not a member is 404, whether or
    /// not they exist: members join by invitation only.
    pub async fn set_member_role(&self, tenant: TenantId, user: UserId, role: Role) -> Result<Member> {
        let role = role.as_str();
        let rows = self
            .run_member_change(
                tenant,
                user,
                &[
                    step(Q::TenantLock, &[&tenant.0]),
                    step(Q::MemberPut, &[&tenant.0, &user.0, &role]),
                    step(Q::MemberGet, &[&tenant.0, &user.0]),
                ],
            )
            .await?;
        let row = gated(&rows[1], ADMINS)?;
        match (row.col::<bool>(1), row.col::<bool>(2)) {
            (false, _) => Err(Error::NotFound),
            (true, false) => Err(Error::Conflict("a tenant must keep at least one admin")),
            (true, true) => rows[2].first().and_then(|r| member_at(r, 0)).ok_or(Error::NotFound),
        }
    }

    /// Removes a member: admins remove anyone, anyone removes themself; never the last admin.
    pub async fn remove_member(&self, tenant: TenantId, user: UserId) -> Result<()> {
        let rows = self
            .run_member_change(
                tenant,
                user,
                &[step(Q::TenantLock, &[&tenant.0]), step(Q::MemberDelete, &[&tenant.0, &user.0])],
            )
            .await?;
        let row = rows[1].first().ok_or(Error::NotFound)?;
        let (me, target, deleted) = (me_role(row), row.col::<Option<String>>(1), row.col::<bool>(3));
        if me != Role::Admin && user != self.user {
            return Err(Error::Forbidden);
        }
        match (target, deleted) {
            (None, _) => Err(Error::NotFound),
            (Some(_), true) => Ok(()),
            (Some(_), false) => Err(Error::Conflict("a tenant must keep at least one admin")),
        }
    }
}
