//! Tenant-scoped transactions: the only way to reach tenant tables.
//!
//! A [`Scoped`] is the caller's view of the database. Each of its methods runs one transaction
//! scoped to the tenants the method's rule allows (see [`Tenants`]); the handler never chooses
//! the scope. On PostgreSQL the transaction's first statements set `app.user_id` and
//! `app.tenant_ids`, the settings that every RLS policy keys on; on Aurora DSQL each statement
//! resolves the scope itself from the caller's id, which the store appends to its parameters
//! (see [`crate::dsql`]). All statements of a transaction are sent together and the replies read
//! afterwards, so a call costs one round trip.

use std::time::{Duration, Instant};

use deadpool::managed::Object;
use pgconn::{Db, Manager};
use uuid::Uuid;

use crate::{
    Engine, Error, Idempotency, Q, Result, UserId,
    lease::LeaseSlot,
    pipeline::{Failed, pipeline},
    placement::Placements,
    quota::PlanParams,
    rows::DbRow,
    steps::{Access, Step, Tenants},
};

/// Attempts at a transaction that keeps conflicting (40001, 40P01, OC000, OC001) before the
/// client gets 503 with `Retry-After`.
const CONFLICT_ATTEMPTS: u32 = 4;

/// The pause before conflict retry `n` (0-based): 10 ms doubling, times a random factor of 0.5
/// to 1.5, so that transactions that conflicted with each other do not meet again.
fn conflict_backoff(n: u32) -> Duration {
    let jitter = 0.5 + (Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    Duration::from_millis(10 << n.min(6)).mul_f64(jitter)
}

/// The client waits this much longer than the server's statement timeout before it gives up on
/// a connection that stopped answering.
const CLIENT_GRACE: Duration = Duration::from_secs(2);

/// The caller's view of the database. Cheap to create, one per request.
#[derive(Debug, Clone, Copy)]
pub struct Scoped<'s> {
    /// The database this view runs on.
    pub(crate) db: &'s Db,
    /// Where tenants live (the control database's view; `None` on a dedicated database).
    pub(crate) placements: Option<&'s Placements>,
    /// The plan catalogue, for the statements that check a quota.
    pub(crate) plans: &'s PlanParams,
    pub(crate) user: UserId,
    /// When the request's answer is due: checkout, connect, the statements and any retry must
    /// be done by then, or the call fails with [`Error::Deadline`].
    pub(crate) deadline: Option<Instant>,
    /// The request's `Idempotency-Key`: its writes are recorded, or answered from the record.
    pub(crate) idempotency: Option<&'s Idempotency>,
    /// The rate-limit lease the request carries (see [`crate::lease`]): sent after the first
    /// transaction on this database, if this is the control database's view.
    pub(crate) lease: Option<&'s LeaseSlot>,
}

impl<'s> Scoped<'s> {
    /// The `Idempotency-Key` of this view's writes, if any.
    pub fn idempotency(&self) -> Option<&'s Idempotency> {
        self.idempotency
    }

    /// When this view's calls must be done, if ever.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Bounds every call of this view by `deadline`.
    pub fn with_deadline(self, deadline: Option<Instant>) -> Self {
        Self { deadline, ..self }
    }

    /// Records this view's writes under `key`, or answers them from the record of an earlier
    /// request with the same key (see [`crate::idempotency`]).
    pub fn with_idempotency(self, key: Option<&'s Idempotency>) -> Self {
        Self { idempotency: key, ..self }
    }

    /// Carries the rate-limit lease in `slot` with this view's first transaction (see
    /// [`crate::lease`]).
    pub fn with_lease(self, slot: Option<&'s LeaseSlot>) -> Self {
        Self { lease: slot, ..self }
    }

    /// Sends the lease in `slot` alone, as its one transaction (one round trip), when the
    /// request carried none to the control database (see [`crate::lease`]).
    pub async fn lease(&self, slot: &LeaseSlot) -> Result<()> {
        let Some((key, want)) = slot.take() else { return Ok(()) };
        let lease = Lease(Some(self.in_time(self.db.checkout()).await?));
        let patience = self.db.config().statement_timeout * 4 + CLIENT_GRACE;
        let wait = match self.deadline {
            Some(d) => patience.min(d.saturating_duration_since(Instant::now())),
            None => patience,
        };
        let send = crate::pipeline::lease_transaction(lease.conn(), self.user, key, want, self.plans);
        match tokio::time::timeout(wait, send).await {
            Ok((answer, ended)) => {
                slot.answer(answer);
                if ended {
                    lease.release();
                }
                Ok(())
            }
            Err(_) => Err(if wait < patience { Error::Deadline } else { Error::StatementTimeout }),
        }
    }

    /// This view, on a dedicated database.
    pub(crate) fn on<'d>(&self, db: &'d Db) -> Scoped<'d>
    where
        Self: 'd,
    {
        Scoped {
            db,
            placements: None,
            plans: self.plans,
            user: self.user,
            deadline: self.deadline,
            idempotency: self.idempotency,
            // Leases live in the control database (`rate_limits`).
            lease: None,
        }
    }

    /// Runs `work` within the deadline, if there is one.
    async fn in_time<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        match self.deadline {
            Some(d) => tokio::time::timeout_at(d.into(), work).await.unwrap_or(Err(Error::Deadline)),
            None => work.await,
        }
    }
}

/// A connection checked out for one transaction. Unless released after the transaction ended,
/// dropping it closes the connection: a request abandoned midway (a panic, a cancelled future,
/// a timeout) must not hand the next request a connection in the middle of a transaction.
struct Lease(Option<Object<Manager>>);

impl Lease {
    fn conn(&self) -> &Object<Manager> {
        self.0.as_ref().expect("a lease holds its connection until it ends")
    }

    /// Back to the pool: the transaction is over.
    fn release(mut self) {
        if let Some(mut conn) = self.0.take() {
            conn.last_used = Instant::now();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            drop(Object::take(conn));
        }
    }
}

impl Scoped<'_> {
    /// Runs `steps` in one transaction scoped to `tenants`; returns each step's rows.
    pub(crate) async fn run(&self, tenants: Tenants, access: Access, steps: &[Step<'_>]) -> Result<Vec<Vec<DbRow>>> {
        let idem = self.idempotency.filter(|_| access == Access::Write);
        // The server's timeout is per statement: the client waits for every statement of the
        // pipeline (the scope, the steps) before it gives up on the connection.
        let patience = self.db.config().statement_timeout * (steps.len() as u32 + 2) + CLIENT_GRACE;
        // The lease goes with the first attempt only: a retry must not take another one.
        let mut to_send = self.lease.and_then(|slot| slot.take().map(|(key, want)| (slot, key, want)));
        let mut retried = false;
        let mut reclaimed = false;
        let mut conflicts = 0;
        loop {
            let lease = Lease(Some(self.in_time(self.db.checkout()).await?));
            // Whichever comes first: the server's statement timeouts (plus grace) or the request's
            // deadline.
            let wait = match self.deadline {
                Some(d) => patience.min(d.saturating_duration_since(Instant::now())),
                None => patience,
            };
            let send = to_send.take().map(|(slot, key, want)| (slot, key, want, self.plans));
            let run = pipeline(lease.conn(), self.user, tenants, access, steps, idem, send);
            match tokio::time::timeout(wait, run).await {
                Ok(Ok(rows)) => {
                    lease.release();
                    return Ok(rows);
                }
                Ok(Err(Failed { error, clean })) => {
                    let lost = pgconn::is_lost(&error);
                    if clean && !lost {
                        // A statement failed, the transaction ended: the connection is fine.
                        lease.release();
                    }
                    if let Some(idem) = idem {
                        // The key is taken: nothing of this request committed; answer from the
                        // first one's record. On PostgreSQL a repeat's own statement can also
                        // fail before its record conflicts (a client-chosen id the first request
                        // used): the record, if there is one, answers it too.
                        let taken = crate::idempotency::is_taken(&error);
                        let postgres = self.db.config().engine == Engine::Postgres;
                        if taken || (postgres && crate::idempotency::is_effect_error(&error)) {
                            if let Some(rows) = Box::pin(self.replay(idem)).await? {
                                return Ok(rows);
                            }
                            // The record that took the key expired (now removed), or its 4xx
                            // request forgot it since: the key is free.
                            if taken && !reclaimed {
                                reclaimed = true;
                                continue;
                            }
                        }
                    }
                    // A serialization failure or deadlock (or Aurora DSQL's optimistic-concurrency
                    // conflict) rolled the whole transaction back: run it again from the start,
                    // after a jittered pause, a few times, within the deadline. Safe for writes
                    // too: nothing of the failed attempt committed.
                    if pgconn::is_conflict(&error) && conflicts + 1 < CONFLICT_ATTEMPTS {
                        let pause = conflict_backoff(conflicts);
                        if self.deadline.is_none_or(|d| Instant::now() + pause < d) {
                            conflicts += 1;
                            tracing::info!(error = %error, attempt = conflicts + 1, "transaction conflicted; running it again");
                            self.db.connector.stats.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(pause).await;
                            continue;
                        }
                    }
                    if lost && access == Access::Read && !retried {
                        tracing::info!(error = %error, "database connection lost during a read; retrying once");
                        self.db.connector.stats.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        retried = true;
                        continue;
                    }
                    return Err(Error::from_query(error));
                }
                Err(_) => {
                    tracing::warn!(after_ms = wait.as_millis() as u64, "database did not answer; connection dropped");
                    return Err(if wait < patience { Error::Deadline } else { Error::StatementTimeout });
                }
            }
        }
    }

    /// The record of a taken key, in a transaction of its own: the first request's rows. `None`
    /// when there is no live record: it expired (and is removed here, so that the key can be
    /// claimed again), or there was none.
    async fn replay(&self, idem: &Idempotency) -> Result<Option<Vec<Vec<DbRow>>>> {
        let plain = Scoped { idempotency: None, ..*self };
        let rows = plain
            .run(Tenants::None, Access::Read, &[Step { q: Q::IdemFetch, params: &[idem.tenant(), idem.key()] }])
            .await?;
        let Some(row) = rows[0].first() else { return Ok(None) };
        if !row.col::<bool>(2) {
            let claim: Uuid = row.col(3);
            plain
                .run(
                    Tenants::None,
                    Access::Write,
                    &[Step { q: Q::IdemForget, params: &[idem.tenant(), idem.key(), &claim] }],
                )
                .await?;
            return Ok(None);
        }
        let results = crate::idempotency::record_results(self.db.config().engine, row);
        idem.replay(&row.col::<Vec<u8>>(0), &results).map(Some)
    }

    /// Forgets the record of this view's key: its request failed with a 4xx.
    pub async fn forget_idempotency(&self) -> Result<()> {
        let Some(idem) = self.idempotency else { return Ok(()) };
        // A todo route of a dedicated tenant recorded in the tenant's database.
        let placed = self.placements.and_then(|p| p.cached(crate::TenantId(*idem.tenant())));
        if let Some(d) = placed
            && let Err(e) = self.on(&d.store).forget_idempotency_here(idem).await
        {
            tracing::warn!(error = %e, "could not drop a 4xx's idempotency record in a dedicated database; it expires by itself");
        }
        self.forget_idempotency_here(idem).await
    }

    async fn forget_idempotency_here(&self, idem: &Idempotency) -> Result<()> {
        let plain = Scoped { idempotency: None, ..*self };
        plain
            .run(
                Tenants::None,
                Access::Write,
                &[Step { q: Q::IdemForget, params: &[idem.tenant(), idem.key(), idem.claim()] }],
            )
            .await
            .map(drop)
    }
}
