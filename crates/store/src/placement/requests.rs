//! Requests on tenants that may live in a dedicated database: todo transactions routed to the
//! tenant's placement, the membership copy, membership changes, and the cross-placement list.

use std::{sync::Arc, time::Duration};

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{Database, Dedicated};
use crate::{
    Error, Result, TenantId, UserId,
    rows::DbRow,
    scope::{Access, Scoped, Step, Tenants},
    statements::Q,
};

/// Databases a request may try in turn when its tenant's placement keeps changing under it.
const HOPS: usize = 4;
/// The pause between tries: a move's switch and its fences are a few statements apart.
const HOP_PAUSE: Duration = Duration::from_millis(25);

fn step<'a>(q: Q, params: &'a [&'a (dyn ToSql + Sync)]) -> Step<'a> {
    Step { q, params }
}

impl Scoped<'_> {
    /// Runs `steps` on tenant `tenant`'s todos, in the database it lives in, in one transaction
    /// that ends with its fence check; answers the steps' rows.
    pub(crate) async fn run_tenant(
        &self,
        tenant: TenantId,
        access: Access,
        steps: &[Step<'_>],
    ) -> Result<Vec<Vec<DbRow>>> {
        let Some(placements) = self.store.placements.as_deref() else {
            return self.run(Tenants::Member(tenant), access, steps).await;
        };
        let writing = access == Access::Write;
        let (mut copied, mut raced) = (false, false);
        // What the cache says, then what the registry said (used as is: however short the
        // cache's life, the answer just read is the one to try).
        let mut target = placements.cached(tenant);
        for hop in 0..HOPS {
            if hop > 0 {
                tokio::time::sleep(HOP_PAUSE).await;
            }
            let dedicated = target.is_some();
            let fence: [&(dyn ToSql + Sync); 3] = [&tenant.0, &writing, &dedicated];
            let all: Vec<Step> =
                steps.iter().map(|s| step(s.q, s.params)).chain([step(Q::FenceCheck, &fence)]).collect();
            let result = match &target {
                None => self.run(Tenants::Member(tenant), access, &all).await,
                Some(d) => self.on(&d.store).run(Tenants::Member(tenant), access, &all).await,
            };
            match (result, &target) {
                (Ok(mut rows), _) => {
                    // Without the trailing check (a replay from a record has no row for it).
                    rows.truncate(steps.len());
                    return Ok(rows);
                }
                // No copy of the caller's membership in the dedicated database (the attempt
                // rolled back): make it from the control database, once, and run again; not a
                // member there either is the same 404 a pooled tenant gives.
                (Err(Error::NotCopied(generation)), Some(d)) if !copied => {
                    copied = true;
                    if !self.copy_membership(d, tenant, generation).await? {
                        return Err(Error::NotFound);
                    }
                }
                (Err(Error::Moved), _) => {
                    tracing::info!(tenant = %tenant.0, "the tenant is not where this instance thought; asking the registry");
                    placements.forget(tenant);
                    target = self.resolve(placements, tenant).await?;
                }
                // A membership copy that another request committed between this transaction's
                // scope and its statement (each statement reads what is committed when it starts):
                // the statement saw the member, row-level security did not, and the whole
                // transaction rolled back. Once more sees both.
                (Err(Error::NotFound), Some(_)) if !raced => raced = true,
                (Err(Error::NotCopied(_)), _) => return Err(Error::NotFound),
                (Err(e), _) => return Err(e),
            }
        }
        Err(Error::Moved)
    }

    /// Copies the caller's membership of `tenant` from the control database to `d`, unless it
    /// changed since its generation there was `generation` (read before this); whether the
    /// caller is a member (and the copy was made).
    async fn copy_membership(&self, d: &Dedicated, tenant: TenantId, generation: i64) -> Result<bool> {
        let plain = Scoped { idempotency: None, ..*self };
        let rows = plain.run(Tenants::None, Access::Read, &[step(Q::MemberRole, &[&tenant.0])]).await?;
        let Some(role) = rows[0].first().map(|r| r.col::<String>(0)) else {
            return Ok(false);
        };
        let made = plain
            .on(&d.store)
            .run(Tenants::None, Access::Write, &[step(Q::MemberCopy, &[&tenant.0, &role, &generation])])
            .await?;
        Ok(made[0].first().is_some_and(|r| r.col::<bool>(0)))
    }

    /// Runs `steps`, a change of `user`'s membership of `tenant` (in the control database),
    /// in a transaction that checks that the tenant lives where this instance thinks; then, in
    /// the tenant's dedicated database, drops the copy of that membership and raises its
    /// generation, so that no copy made from an earlier read survives (before the answer: the
    /// member's next request makes a fresh copy).
    pub(crate) async fn run_member_change(
        &self,
        tenant: TenantId,
        user: UserId,
        steps: &[Step<'_>],
    ) -> Result<Vec<Vec<DbRow>>> {
        let Some(placements) = self.store.placements.as_deref() else {
            return self.run(Tenants::Member(tenant), Access::Write, steps).await;
        };
        let mut target = placements.cached(tenant);
        for hop in 0..HOPS {
            if hop > 0 {
                tokio::time::sleep(HOP_PAUSE).await;
            }
            let expected: Option<Uuid> = target.as_ref().map(|d| d.db.id);
            let guard: [&(dyn ToSql + Sync); 2] = [&tenant.0, &expected];
            let all: Vec<Step> =
                steps.iter().map(|s| step(s.q, s.params)).chain([step(Q::PlacementIs, &guard)]).collect();
            let result = self.run(Tenants::Member(tenant), Access::Write, &all).await;
            if let Err(Error::Moved) = result {
                target = self.resolve(placements, tenant).await?;
                continue;
            }
            // Whatever the outcome (made, refused, or unknown after a lost connection).
            if let Some(d) = &target {
                self.fence_copy(d, tenant, user).await?;
            }
            let mut rows = result?;
            rows.truncate(steps.len());
            return Ok(rows);
        }
        Err(Error::Moved)
    }

    /// Drops the copy of `user`'s membership of `tenant` in `d` and raises its generation.
    async fn fence_copy(&self, d: &Dedicated, tenant: TenantId, user: UserId) -> Result<()> {
        let plain = Scoped { idempotency: None, ..*self };
        plain
            .on(&d.store)
            .run(Tenants::None, Access::Write, &[step(Q::MemberFence, &[&tenant.0, &user.0])])
            .await
            .map(drop)
    }

    /// After the caller's account was deleted: drops and fences their membership copies in the
    /// dedicated databases of `placed` (PlacementsMine's rows, read before the delete), since a
    /// warm instance may still know their old id.
    pub(crate) async fn fence_copies(&self, placed: &[DbRow]) -> Result<()> {
        let Some(placements) = self.store.placements.as_deref() else { return Ok(()) };
        for row in placed {
            let d = placements.database(Database::from_row(row, 1)?).await?;
            self.fence_copy(&d, TenantId(row.col(0)), self.user).await?;
        }
        Ok(())
    }

    /// After the control database deleted `tenant`: removes what its dedicated database `db`
    /// held of it. A failure is logged, not answered: the tenant is gone for every request.
    pub(crate) async fn drop_placed_tenant(&self, tenant: TenantId, db: Database) {
        let Some(placements) = self.store.placements.as_deref() else { return };
        placements.forget(tenant);
        let result = async {
            let d = placements.database(db).await?;
            let scope = vec![tenant.0];
            let plain = Scoped { idempotency: None, ..*self };
            plain
                .on(&d.store)
                .run(
                    Tenants::None,
                    Access::Write,
                    &[step(Q::ScopeTenants, &[&scope]), step(Q::TenantDrop, &[&tenant.0])],
                )
                .await
        }
        .await;
        if let Err(e) = result {
            tracing::error!(tenant = %tenant.0, error = %e, "the tenant is deleted, but its dedicated database still holds its rows; delete them there");
        }
    }

    /// GET /api/todos across placements: `here` (the control database's TodoListAll step, run
    /// with [`Tenants::AllHere`] and followed by PlacementsMine) and, for every dedicated
    /// database that holds some of the caller's tenants, the same page there; all merged.
    pub(crate) async fn run_list_all(&self, list: &[&(dyn ToSql + Sync)]) -> Result<Vec<DbRow>> {
        let Some(placements) = self.store.placements.as_deref() else {
            return Ok(self.run(Tenants::All, Access::Read, &[step(Q::TodoListAll, list)]).await?.remove(0));
        };
        'hops: for hop in 0..HOPS {
            if hop > 0 {
                tokio::time::sleep(HOP_PAUSE).await;
            }
            let mut rows = self
                .run(Tenants::AllHere, Access::Read, &[step(Q::TodoListAll, list), step(Q::PlacementsMine, &[])])
                .await?;
            let placed = rows.pop().unwrap_or_default();
            let mut items = rows.pop().unwrap_or_default();
            let mut by_db: Vec<(Arc<Dedicated>, Vec<Uuid>)> = Vec::new();
            for row in &placed {
                let tenant: Uuid = row.col(0);
                let d = placements.remember(TenantId(tenant), Database::from_row(row, 1)?).await?;
                match by_db.iter_mut().find(|(x, _)| x.db.id == d.db.id) {
                    Some((_, tenants)) => tenants.push(tenant),
                    None => by_db.push((d, vec![tenant])),
                }
            }
            for (d, tenants) in &by_db {
                // Reads, and no membership copy needed: the control database has just confirmed
                // every one of these memberships.
                let no = false;
                let fences: Vec<[&(dyn ToSql + Sync); 3]> =
                    tenants.iter().map(|t| [t as _, &no as _, &no as _]).collect();
                let scope: [&(dyn ToSql + Sync); 1] = [tenants];
                let steps: Vec<Step> = [step(Q::ScopeTenants, &scope), step(Q::TodoListAll, list)]
                    .into_iter()
                    .chain(fences.iter().map(|f| step(Q::FenceCheck, f)))
                    .collect();
                match self.on(&d.store).run(Tenants::None, Access::Read, &steps).await {
                    Ok(mut there) => items.append(&mut there.swap_remove(1)),
                    // A tenant moved between the two reads: read everything again.
                    Err(Error::Moved) => continue 'hops,
                    Err(e) => return Err(e),
                }
            }
            if !by_db.is_empty() {
                // Every database's page is in (created_at, tenant_id, id) order; so is the merge.
                items.sort_by_key(|r| (r.col::<time::OffsetDateTime>(4), r.col::<Uuid>(0), r.col::<Uuid>(1)));
            }
            return Ok(items);
        }
        Err(Error::Moved)
    }
}
