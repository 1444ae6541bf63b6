//! Requests on tenants that may live in a dedicated database: todo transactions routed to the
//! tenant's placement, the membership copy, membership changes, and the cross-placement list.

use std::{sync::Arc, time::Duration};

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{Database, Dedicated, Placements};
use crate::{
    Error, Q, Result, TenantId, UserId,
    rows::DbRow,
    scope::Scoped,
    steps::{Access, Step, Tenants},
};

/// Databases a request may try in turn when its tenant's placement keeps changing under it.
const HOPS: usize = 4;
/// The pause between tries: a move's switch and its fences are a few statements apart.
const HOP_PAUSE: Duration = Duration::from_millis(25);

/// What the control database signed: a right to act in a dedicated database (see
/// `migrations/0006_signed_copies.sql`).
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// How long a fence blocks new copies (0: it lifts the block).
    secs: i64,
    /// The change a fence's block belongs to (only its own lift lifts it).
    token: i64,
    /// When it was issued (milliseconds since the epoch, the control database's clock).
    issued: i64,
    mac: Vec<u8>,
}

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
        let Some(placements) = self.placements else {
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
    /// caller is a member (and the copy was made). The control database signs the role it read
    /// (`app_member_grant`), and `d` makes the copy only on that signature.
    async fn copy_membership(&self, d: &Dedicated, tenant: TenantId, generation: i64) -> Result<bool> {
        let plain = Scoped { idempotency: None, ..*self };
        let rows = plain.run(Tenants::None, Access::Read, &[step(Q::MemberGrant, &[&tenant.0, &generation])]).await?;
        let Some(row) = rows[0].first() else {
            return Ok(false);
        };
        let (role, issued, mac) = (row.col::<String>(0), row.col::<i64>(1), row.col::<Option<Vec<u8>>>(2));
        let Some(mac) = mac else {
            tracing::error!(database = %d.db.id, "the control database holds no key for this dedicated database: run scripts/migrate.sh");
            return Err(Error::unavailable("the tenant's dedicated database has no key installed"));
        };
        let made = plain
            .on(&d.store)
            .run(Tenants::None, Access::Write, &[step(Q::MemberCopy, &[&tenant.0, &role, &generation, &issued, &mac])])
            .await?;
        match made[0].first().map(|r| r.col::<String>(0)).as_deref() {
            Some("made") => Ok(true),
            Some("blocked") => Err(Error::Unavailable {
                reason: "a change of this membership is under way".into(),
                retry_after: Duration::from_secs(1),
            }),
            Some("invalid") => {
                tracing::error!(database = %d.db.id, tenant = %tenant.0, "a dedicated database refused the control database's grant of a membership copy");
                Err(Error::Moved)
            }
            _ => Ok(false),
        }
    }

    /// The control database's two grants to fence `user`'s membership of `tenant` (see
    /// `Q::FenceGrants`): the blocking one first, then the one that lifts the block; none when
    /// the caller may not change that membership (the change itself will say so).
    async fn fence_grants(&self, tenant: TenantId, user: UserId) -> Result<Vec<Grant>> {
        let plain = Scoped { idempotency: None, ..*self };
        let rows = plain.run(Tenants::None, Access::Read, &[step(Q::FenceGrants, &[&tenant.0, &user.0])]).await?;
        Ok(rows[0].iter().map(|r| Grant { secs: r.col(0), token: r.col(1), issued: r.col(2), mac: r.col(3) }).collect())
    }

    /// Runs `steps`, a change of `user`'s membership of `tenant` (in the control database),
    /// in a transaction that checks that the tenant lives where this instance thinks. For a
    /// dedicated tenant, fences the membership's copy there first (drops it, raises its
    /// generation and blocks new copies: a database that cannot be reached refuses the change
    /// before anything happened), and again after the change (which lifts the block). If that
    /// second fence fails, the copy is gone already and the block runs out by itself; a copy is
    /// then made only from what the control database says after the change.
    pub(crate) async fn run_member_change(
        &self,
        tenant: TenantId,
        user: UserId,
        steps: &[Step<'_>],
    ) -> Result<Vec<Vec<DbRow>>> {
        let Some(placements) = self.placements else {
            return self.run(Tenants::Member(tenant), Access::Write, steps).await;
        };
        let mut target = placements.cached(tenant);
        for hop in 0..HOPS {
            if hop > 0 {
                tokio::time::sleep(HOP_PAUSE).await;
            }
            let grants = match &target {
                Some(d) => {
                    let grants = self.fence_grants(tenant, user).await?;
                    if let Some(block) = grants.first() {
                        match self.fence_copy(d, tenant, user, block).await {
                            Err(Error::Moved) => {
                                target = self.resolve(placements, tenant).await?;
                                continue;
                            }
                            other => other?,
                        }
                    }
                    grants
                }
                None => Vec::new(),
            };
            let expected: Option<Uuid> = target.as_ref().map(|d| d.db.id);
            let guard: [&(dyn ToSql + Sync); 2] = [&tenant.0, &expected];
            let all: Vec<Step> =
                steps.iter().map(|s| step(s.q, s.params)).chain([step(Q::PlacementIs, &guard)]).collect();
            let result = self.run(Tenants::Member(tenant), Access::Write, &all).await;
            // Whatever the outcome (made, refused, moved, or unknown after a lost connection). A
            // failure here is logged, not answered: the change stands, the copy went before it,
            // and the block runs out by itself.
            if let (Some(d), Some(lift)) = (&target, grants.get(1))
                && let Err(e) = self.fence_copy(d, tenant, user, lift).await
            {
                tracing::warn!(tenant = %tenant.0, error = %e, "the fence after a membership change failed; its block runs out by itself");
            }
            if let Err(Error::Moved) = result {
                target = self.resolve(placements, tenant).await?;
                continue;
            }
            let mut rows = result?;
            rows.truncate(steps.len());
            return Ok(rows);
        }
        Err(Error::Moved)
    }

    /// Fences `user`'s membership of `tenant` in `d` on `grant`: drops the copy, raises its
    /// generation, and blocks or unblocks new copies.
    async fn fence_copy(&self, d: &Dedicated, tenant: TenantId, user: UserId, grant: &Grant) -> Result<()> {
        let plain = Scoped { idempotency: None, ..*self };
        plain
            .on(&d.store)
            .run(
                Tenants::None,
                Access::Write,
                &[step(Q::MemberFence, &[&tenant.0, &user.0, &grant.secs, &grant.token, &grant.issued, &grant.mac])],
            )
            .await
            .map(drop)
    }

    /// Before the caller's account is deleted: fences their membership copies in the
    /// dedicated databases of their tenants, blocking new ones; what [`Scoped::lift_fences`]
    /// takes after the delete. Fails (503) when one of those databases cannot be reached, before
    /// anything was deleted.
    pub(crate) async fn fence_my_copies(&self) -> Result<Vec<(Arc<Dedicated>, TenantId, Grant)>> {
        let Some(placements) = self.placements else { return Ok(Vec::new()) };
        let plain = Scoped { idempotency: None, ..*self };
        let placed = plain.run(Tenants::None, Access::Read, &[step(Q::PlacementsMine, &[])]).await?.remove(0);
        let mut lifts = Vec::new();
        for row in &placed {
            let tenant = TenantId(row.col(0));
            let d = placements.database(Database::from_row(row, 1)?).await?;
            let mut grants = self.fence_grants(tenant, self.user).await?.into_iter();
            if let (Some(block), Some(lift)) = (grants.next(), grants.next()) {
                self.fence_copy(&d, tenant, self.user, &block).await?;
                lifts.push((d, tenant, lift));
            }
        }
        Ok(lifts)
    }

    /// After the account delete (whatever its outcome): fences again and lifts the blocks that
    /// [`Scoped::fence_my_copies`] set.
    pub(crate) async fn lift_fences(&self, lifts: &[(Arc<Dedicated>, TenantId, Grant)]) -> Result<()> {
        for (d, tenant, lift) in lifts {
            self.fence_copy(d, *tenant, self.user, lift).await?;
        }
        Ok(())
    }

    /// Before the control database deletes `tenant`: fences it `away` in its dedicated
    /// database, so that nothing is served from its rows there whatever happens next (a warm
    /// instance's cache, a failed removal). Returns what takes that fence back should the delete
    /// not happen. Nothing for a pooled tenant, or a caller who may not delete it.
    pub(crate) async fn fence_tenant_away(&self, tenant: TenantId) -> Result<Option<(Arc<Dedicated>, Grant)>> {
        let Some(placements) = self.placements else { return Ok(None) };
        let plain = Scoped { idempotency: None, ..*self };
        let mut rows = plain
            .run(
                Tenants::None,
                Access::Read,
                &[step(Q::PlacementGet, &[&tenant.0]), step(Q::TenantFenceGrants, &[&tenant.0])],
            )
            .await?;
        let grants = rows.pop().unwrap_or_default();
        let (Some(placed), [away, back]) = (rows.pop().and_then(|r| r.into_iter().next()), &grants[..]) else {
            return Ok(None);
        };
        let d = placements.database(Database::from_row(&placed, 0)?).await?;
        if away.col::<Option<Vec<u8>>>(2).is_none() {
            tracing::error!(database = %d.db.id, "the control database holds no key for this dedicated database: run scripts/migrate.sh");
            return Err(Error::unavailable("the tenant's dedicated database has no key installed"));
        }
        let grant = |r: &DbRow| Grant { secs: 0, token: 0, issued: r.col(1), mac: r.col(2) };
        self.tenant_away(&d, tenant, true, &grant(away)).await?;
        Ok(Some((d, grant(back))))
    }

    /// Takes back the `away` fence of [`Scoped::fence_tenant_away`] when the delete did not
    /// happen (best effort: a failure is logged; the tenant then answers 503 until it is fixed).
    pub(crate) async fn unfence_tenant(&self, tenant: TenantId, fenced: &(Arc<Dedicated>, Grant)) {
        if let Err(e) = self.tenant_away(&fenced.0, tenant, false, &fenced.1).await {
            tracing::error!(tenant = %tenant.0, error = %e, "a tenant fenced away for a delete that did not happen is still fenced");
        }
    }

    async fn tenant_away(&self, d: &Dedicated, tenant: TenantId, away: bool, grant: &Grant) -> Result<()> {
        let plain = Scoped { idempotency: None, ..*self };
        plain
            .on(&d.store)
            .run(Tenants::None, Access::Write, &[step(Q::TenantAway, &[&tenant.0, &away, &grant.issued, &grant.mac])])
            .await
            .map(drop)
    }

    /// After the control database deleted `tenant`: removes what its dedicated database `db`
    /// held of it. A failure is logged, not answered: the tenant is gone for every request.
    pub(crate) async fn drop_placed_tenant(&self, tenant: TenantId, db: Database) {
        let Some(placements) = self.placements else { return };
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
        let Some(placements) = self.placements else {
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

impl Scoped<'_> {
    /// Asks the control database where `tenant` lives, and caches the answer.
    pub(crate) async fn resolve(&self, placements: &Placements, tenant: TenantId) -> Result<Option<Arc<Dedicated>>> {
        let plain = Scoped { idempotency: None, ..*self };
        let rows = plain.run(Tenants::None, Access::Read, &[Step { q: Q::PlacementGet, params: &[&tenant.0] }]).await?;
        match rows[0].first() {
            Some(row) => {
                let db = Database::from_row(row, 0)?;
                Ok(Some(placements.remember(tenant, db).await?))
            }
            None => {
                placements.forget(tenant);
                Ok(None)
            }
        }
    }
}
