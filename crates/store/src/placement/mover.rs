//! Moving a tenant between the control database (pooled) and a dedicated one, as the owner role
//! of both (`scripts/tenant.sh move`).
//!
//! 1. **Lease.** The source database gets a `moving` fence with a lease: from then on its writes
//!    on the tenant fail with 503 (`app_fence_check`, after the write's own statements); reads
//!    go on. A mover that dies stops fencing when the lease runs out.
//! 2. **Barrier.** `LOCK TABLE todos IN SHARE MODE` waits for every write that began before the
//!    fence: each is now committed, or will see the fence and roll back.
//! 3. **Copy** of the tenant's row, todos and idempotency records into the target, in one
//!    transaction that first removes anything an earlier, failed run left there.
//! 4. **Check**: row counts and an MD5 of the todos, on both sides.
//! 5. **Switch** the registry (in the control database, with the tenant's row locked, so that
//!    no membership change runs across it), if the lease still holds. From dedicated to pooled,
//!    the lease is first extended past the API's placement cache, so that an instance that still
//!    thinks the tenant is in the dedicated database cannot write there after the switch.
//! 6. **Finish**: the source is fenced `away` (a dedicated source; a pooled source is fenced by
//!    the placement row itself) and its copy of the tenant removed in batches.
//!
//! Killed before step 5, the tenant stays where it was and is writable again when the lease
//! runs out; run the move again. Killed after, running it again finishes step 6.

use std::time::Duration;

use tokio_postgres::Client;
use uuid::Uuid;

pub use super::moving::Direction;
use super::{
    copy::{copy, digest},
    moving::{BATCH, SCOPE, fail},
};
use crate::{Error, Result, TenantId};

/// The two ends of a move, each an owner-role client.
#[allow(missing_debug_implementations)]
pub struct Ends<'a> {
    pub control: &'a Client,
    /// The dedicated database's client (the source or the target).
    pub dedicated: &'a Client,
    pub db: Uuid,
}

/// What a move did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub todos: i64,
    pub records: i64,
    pub checksum: String,
    /// An earlier run had switched already: only the finish ran.
    pub finished_only: bool,
}

/// Settings of a move.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the source refuses writes without hearing from the mover.
    pub lease: Duration,
    /// The API's `DB_PLACEMENT_CACHE_SECS`: how long an instance may still think the tenant is
    /// in the dedicated database after a move to pooled.
    pub cache_ttl: Duration,
    /// Stop after the copy and its check, before the switch (for tests: a move killed there).
    pub stop_before_switch: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(120),
            cache_ttl: pgconn::DEFAULT_PLACEMENT_CACHE_TTL,
            stop_before_switch: false,
        }
    }
}

/// Moves tenant `tenant` between the control database and `ends.db`.
pub async fn move_tenant(ends: &Ends<'_>, tenant: TenantId, to: Direction, opts: &Options) -> Result<Report> {
    let t = tenant.0;
    let placed: Option<Uuid> = ends
        .control
        .query_opt("SELECT database_id FROM tenant_placements WHERE tenant_id = $1", &[&t])
        .await
        .map_err(fail("reading the registry"))?
        .map(|r| r.get(0));
    let (source, target) = match to {
        Direction::ToDedicated => (ends.control, ends.dedicated),
        Direction::ToPooled => (ends.dedicated, ends.control),
    };
    let target_placement = (to == Direction::ToDedicated).then_some(ends.db);
    if placed == target_placement {
        // An earlier run switched: finish it.
        let (todos, checksum) = digest(target, t).await?;
        finish(source, t, to).await?;
        return Ok(Report { todos, records: 0, checksum, finished_only: true });
    }
    let source_placement = (to == Direction::ToPooled).then_some(ends.db);
    if placed != source_placement {
        return Err(Error::Migration(format!(
            "the tenant is not in the {} database: nothing to move",
            if to == Direction::ToDedicated { "pooled (control)" } else { "given dedicated" }
        )));
    }
    let mover = Uuid::new_v4();
    let lease = opts.lease.as_secs_f64();
    // 1. The lease.
    let leased = source
        .execute(
            "INSERT INTO tenant_fences AS f (tenant_id, state, lease_until, mover) \
             VALUES ($1, 'moving', now() + $2::float8 * interval '1 second', $3) \
             ON CONFLICT (tenant_id) DO UPDATE SET state = 'moving', lease_until = excluded.lease_until, \
               mover = excluded.mover, updated_at = now() \
             WHERE f.state = 'moving' AND f.lease_until < now()",
            &[&t, &lease, &mover],
        )
        .await
        .map_err(fail("taking the move's lease"))?;
    if leased == 0 {
        return Err(Error::Migration(
            "another move of this tenant holds its lease; wait for it, or for the lease to run out".into(),
        ));
    }
    let result = copy_and_switch(ends, source, target, tenant, to, mover, opts).await;
    if result.is_err() || opts.stop_before_switch {
        // Writes resume at once: the tenant stays where it was.
        let _ = source.execute("DELETE FROM tenant_fences WHERE tenant_id = $1 AND mover = $2", &[&t, &mover]).await;
    }
    let report = result?;
    if opts.stop_before_switch {
        return Ok(report);
    }
    finish(source, t, to).await?;
    Ok(report)
}

async fn copy_and_switch(
    ends: &Ends<'_>,
    source: &Client,
    target: &Client,
    tenant: TenantId,
    to: Direction,
    mover: Uuid,
    opts: &Options,
) -> Result<Report> {
    let t = tenant.0;
    // 2. The barrier: every write that did not see the fence has committed. While the lock
    // waits, other tenants' writes queue behind it: it gives up after 2 s and tries again.
    let mut tries = 0;
    loop {
        match source.batch_execute("BEGIN; SET LOCAL lock_timeout = '2s'; LOCK TABLE todos IN SHARE MODE; COMMIT").await
        {
            Ok(()) => break,
            Err(e) if tries < 5 && e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                let _ = source.batch_execute("ROLLBACK").await;
                tries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => {
                let _ = source.batch_execute("ROLLBACK").await;
                return Err(fail("waiting for writes in flight")(e));
            }
        }
    }
    // A dedicated target the tenant left recently may still be in some instance's placement
    // cache: until that has expired, nothing may be copied there.
    if to == Direction::ToDedicated {
        let ttl = (opts.cache_ttl + Duration::from_secs(10)).as_secs_f64();
        let recent = target
            .query_opt(
                "SELECT 1 FROM tenant_fences WHERE tenant_id = $1 AND state = 'away' \
                 AND updated_at > now() - $2::float8 * interval '1 second'",
                &[&t, &ttl],
            )
            .await
            .map_err(fail("reading the target's fences"))?;
        if recent.is_some() {
            return Err(Error::Migration(format!(
                "the tenant left that database less than {ttl:.0} s ago, and instances may still send it requests there; try again later"
            )));
        }
    }
    // 3. The copy.
    let (todos, records) = copy(source, target, t, to).await?;
    // 4. The check.
    let (n_source, sum_source) = digest(source, t).await?;
    let (n_target, sum_target) = digest(target, t).await?;
    if (n_source, &sum_source) != (n_target, &sum_target) || n_source != todos {
        return Err(Error::Migration(format!(
            "the copy does not match: {n_source} todos ({sum_source}) at the source, {n_target} ({sum_target}) at the target"
        )));
    }
    if opts.stop_before_switch {
        return Ok(Report { todos, records, checksum: sum_source, finished_only: false });
    }
    // 5. The switch.
    if to == Direction::ToPooled {
        let until = (opts.lease.max(opts.cache_ttl) + Duration::from_secs(10)).as_secs_f64();
        let extended = source
            .execute(
                "UPDATE tenant_fences SET lease_until = now() + $3::float8 * interval '1 second' \
                 WHERE tenant_id = $1 AND mover = $2 AND state = 'moving' AND lease_until > now() + interval '2 seconds'",
                &[&t, &mover, &until],
            )
            .await
            .map_err(fail("extending the lease"))?;
        if extended == 0 {
            return Err(Error::Migration("the move's lease ran out before the switch; run it again".into()));
        }
    }
    let c = ends.control;
    c.batch_execute("BEGIN").await.map_err(fail("switching"))?;
    let switched = async {
        c.query(SCOPE, &[&t]).await?;
        let locked = c.query("SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", &[&t]).await?.len();
        let held = match to {
            // The lease is in this same database: checked in this transaction.
            Direction::ToDedicated => {
                // The clock now, not the transaction's start: a writer that began after the lease
                // ran out must not have been let through.
                c.execute(
                    "DELETE FROM tenant_fences WHERE tenant_id = $1 AND mover = $2 \
                     AND lease_until > clock_timestamp() + interval '2 seconds'",
                    &[&t, &mover],
                )
                .await?
            }
            Direction::ToPooled => 1,
        };
        if locked == 0 || held == 0 {
            return Ok(false);
        }
        match to {
            Direction::ToDedicated => {
                c.execute(
                    "INSERT INTO tenant_placements (tenant_id, database_id, epoch) \
                     VALUES ($1, $2, (extract(epoch FROM clock_timestamp()) * 1000000)::int8)",
                    &[&t, &ends.db],
                )
                .await?
            }
            Direction::ToPooled => c.execute("DELETE FROM tenant_placements WHERE tenant_id = $1", &[&t]).await?,
        };
        Ok::<_, tokio_postgres::Error>(true)
    }
    .await;
    match switched {
        Ok(true) => c.batch_execute("COMMIT").await.map_err(fail("switching"))?,
        Ok(false) => {
            let _ = c.batch_execute("ROLLBACK").await;
            return Err(Error::Migration(
                "the tenant is gone, or the move's lease ran out before the switch; run it again".into(),
            ));
        }
        Err(e) => {
            let _ = c.batch_execute("ROLLBACK").await;
            return Err(fail("switching")(e));
        }
    }
    Ok(Report { todos, records, checksum: sum_source, finished_only: false })
}

/// Step 6: fences a dedicated source `away` and removes the source's copy of the tenant.
async fn finish(source: &Client, t: Uuid, to: Direction) -> Result<()> {
    if to == Direction::ToPooled {
        source
            .execute(
                "INSERT INTO tenant_fences (tenant_id, state) VALUES ($1, 'away') \
                 ON CONFLICT (tenant_id) DO UPDATE SET state = 'away', lease_until = NULL, mover = NULL, updated_at = now()",
                &[&t],
            )
            .await
            .map_err(fail("fencing the old placement"))?;
    }
    loop {
        source.batch_execute("BEGIN").await.map_err(fail("removing the old rows"))?;
        let gone = async {
            source.query(SCOPE, &[&t]).await?;
            source
                .execute(
                    "DELETE FROM todos WHERE tenant_id = $1 AND id IN (SELECT id FROM todos WHERE tenant_id = $1 LIMIT $2)",
                    &[&t, &BATCH],
                )
                .await
        }
        .await;
        let _ = source.batch_execute("COMMIT").await;
        if gone.map_err(fail("removing the old rows"))? == 0 {
            break;
        }
    }
    if to == Direction::ToPooled {
        // What is left there of the tenant: its row, and through it the membership copies and
        // records.
        source.batch_execute("BEGIN").await.map_err(fail("removing the old rows"))?;
        let gone = async {
            source.query(SCOPE, &[&t]).await?;
            source.execute("DELETE FROM idempotency_keys WHERE tenant_id = $1", &[&t]).await?;
            source.execute("DELETE FROM tenants WHERE id = $1", &[&t]).await
        }
        .await;
        let _ = source.batch_execute("COMMIT").await;
        gone.map_err(fail("removing the old rows"))?;
    }
    Ok(())
}
