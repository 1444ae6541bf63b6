//! One transaction's statements as one pipelined round trip: BEGIN, the caller and the tenant
//! scope (or, on Aurora DSQL, none: each statement resolves it), the `Idempotency-Key` claim, the
//! steps (in their recording variants under a key), COMMIT; then, when the request carries a
//! rate-limit lease, the lease as a transaction of its own (`crate::lease`); all sent before the
//! first reply is read.

use deadpool::managed::Object;
use futures_util::future::{OptionFuture, join, join_all, join5};
use pgconn::Manager;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::{
    Engine, Idempotency, Q, UserId,
    lease::{LeaseSlot, Leased, RateKey},
    quota::PlanParams,
    rows::DbRow,
    steps::{Access, Step, Tenants},
};

/// A transaction that failed.
pub(crate) struct Failed {
    pub error: tokio_postgres::Error,
    /// The transaction ended (COMMIT answered), so the connection can be reused.
    pub clean: bool,
}

/// Runs `steps` for `user` on `conn` as one pipelined transaction scoped to `tenants`.
pub(crate) async fn pipeline(
    conn: &Object<Manager>,
    user: UserId,
    tenants: Tenants,
    access: Access,
    steps: &[Step<'_>],
    idem: Option<&Idempotency>,
    lease: Option<(&LeaseSlot, RateKey, u32, &PlanParams)>,
) -> Result<Vec<Vec<DbRow>>, Failed> {
    let c = &conn.client;
    // With a key: the claim first, then every statement in its recording variant.
    let recorded = match idem {
        Some(_) => Some(conn.variants().await.map_err(|error| Failed { error, clean: true })?),
        None => None,
    };
    // The first recorded step makes the record (on PostgreSQL); the others append to it.
    let first_recorded = steps.iter().position(|s| statements::recording::is_recorded(s.q));
    let stmt = |i: usize, q: Q| match recorded {
        Some(r) if first_recorded == Some(i) => &r.first[q as usize],
        Some(r) => &r.more[q as usize],
        None => conn.stmt(q as usize),
    };
    let life = idem.map_or(0, Idempotency::life_secs);
    let user: Uuid = user.0;
    let dsql = conn.engine == Engine::Dsql;
    // After a statement's own parameters come, on Aurora DSQL, the caller where it names them
    // (see `crate::dsql`), and when recording the record's tenant and key; on PostgreSQL,
    // when recording, the record's tenant and key, and for the statement that makes the
    // record also its fingerprint, life and claim (see `crate::idempotency`).
    let (caller, record): ([&(dyn ToSql + Sync); 3], [&(dyn ToSql + Sync); 5]) = match idem {
        Some(i) => ([&user, i.tenant(), i.key()], [i.tenant(), i.key(), i.fingerprint(), &life, i.claim()]),
        None => ([&user; 3], [&user; 5]),
    };
    let extra = |i: usize, q: Q| -> &[&(dyn ToSql + Sync)] {
        let recording = recorded.is_some() && statements::recording::is_recorded(q);
        match (dsql, recording) {
            (true, true) => &caller[..],
            (true, false) if crate::dsql::STATEMENTS[q as usize].caller => &caller[..1],
            (false, true) if first_recorded == Some(i) => &record[..],
            (false, true) => &record[..2],
            _ => &[],
        }
    };
    let extended: Vec<Vec<&(dyn ToSql + Sync)>> = if dsql || recorded.is_some() {
        steps.iter().enumerate().map(|(i, s)| s.params.iter().chain(extra(i, s.q)).copied().collect()).collect()
    } else {
        Vec::new()
    };
    let step_params = |i: usize| if extended.is_empty() { steps[i].params } else { &extended[i][..] };
    // The claim: on PostgreSQL the record's tenant and key, and the caller, whom it sets; on
    // DSQL, where it makes the record, also its fingerprint, life and claim, then the caller.
    let claim_all: [&(dyn ToSql + Sync); 6] = [record[0], record[1], record[2], record[3], record[4], &user];
    let claim_pg: [&(dyn ToSql + Sync); 3] = [record[0], record[1], &user];
    let claim_params = idem.map(|_| if dsql { &claim_all[..] } else { &claim_pg[..] });
    let member: Uuid = match tenants {
        Tenants::Member(t) => t.0,
        _ => Uuid::nil(),
    };
    let member_params: [&(dyn ToSql + Sync); 2] = [&user, &member];
    let all_params: [&(dyn ToSql + Sync); 1] = [&user];
    // On PostgreSQL the scope is set first and RLS keys on it; on DSQL each statement
    // resolves it.
    let resolve = match tenants {
        _ if dsql => None,
        Tenants::Member(_) => Some((Q::ScopeMember, &member_params[..])),
        Tenants::All => Some((Q::ScopeAll, &all_params[..])),
        Tenants::AllHere => Some((Q::ScopeAllHere, &all_params[..])),
        Tenants::None => None,
    };
    let begin = if access == Access::Read { "BEGIN READ ONLY" } else { "BEGIN" };
    let leasing = OptionFuture::from(
        lease.map(|(_, key, want, plans)| Box::pin(lease_transaction(conn, UserId(user), key, want, plans))),
    );
    // Each future sends its message when first polled; join5 polls them in this order, so the
    // server receives them in this order, all before the first reply is awaited.
    let (begun, set, resolved, (claimed, results), (committed, leased)) = join5(
        c.batch_execute(begin),
        // On PostgreSQL the claim sets the caller too, in place of ScopeSet: one statement
        // fewer. On DSQL it comes after the scope.
        OptionFuture::from((!dsql).then(|| match claim_params {
            Some(p) => c.query(conn.stmt(Q::IdemClaim as usize), p),
            None => c.query(conn.stmt(Q::ScopeSet as usize), &all_params),
        })),
        OptionFuture::from(resolve.map(|(q, params)| c.query(conn.stmt(q as usize), params))),
        join(
            OptionFuture::from(claim_params.filter(|_| dsql).map(|p| c.query(conn.stmt(Q::IdemClaim as usize), p))),
            join_all(steps.iter().enumerate().map(|(i, s)| c.query(stmt(i, s.q), step_params(i)))),
        ),
        join(c.batch_execute("COMMIT"), leasing),
    )
    .await;
    // The lease's answer, whatever became of the request's transaction.
    let mut lease_ended = true;
    if let (Some((slot, ..)), Some((answer, ended))) = (lease, leased) {
        slot.answer(answer);
        lease_ended = ended;
    }
    // The transaction is over when COMMIT was answered, with success or with the server's
    // error (Aurora DSQL reports conflicts there): the connection can serve the retry.
    let clean = lease_ended
        && match &committed {
            Ok(_) => true,
            Err(e) => e.as_db_error().is_some(),
        };
    let fail = |error| Failed { error, clean };
    begun.map_err(fail)?;
    set.transpose().map_err(fail)?;
    resolved.transpose().map_err(fail)?;
    claimed.transpose().map_err(fail)?;
    let rows = results
        .into_iter()
        .map(|r| r.map(|rows| rows.into_iter().map(DbRow::Pg).collect()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(fail)?;
    committed.map_err(fail)?;
    Ok(rows)
}

/// A rate-limit lease of `want` requests of `key` for `user`, as a transaction of its own (see
/// `crate::lease`): on PostgreSQL the caller and, for a tenant's budget, the tenant in scope
/// (row-level security keys on them), then the key's row (made the first time) and the lease;
/// on DSQL the statements name the caller themselves. Sent in order when first polled, so that
/// it can follow a request's COMMIT in the same pipeline. Returns what the lease answered
/// (`None` when it failed) and whether its transaction ended (the connection can be reused).
pub(crate) async fn lease_transaction(
    conn: &Object<Manager>,
    user: UserId,
    key: RateKey,
    want: u32,
    plans: &PlanParams,
) -> (Option<Leased>, bool) {
    let c = &conn.client;
    let dsql = conn.engine == Engine::Dsql;
    let (user, want): (Uuid, i64) = (user.0, i64::from(want));
    let tenant = match key {
        RateKey::Tenant(t) => Some(t.0),
        RateKey::Caller(_) => None,
    };
    let t = tenant.unwrap_or_default();
    let (names, intervals, bursts) = (plans.names(), plans.intervals(), plans.bursts());
    let caller: [&(dyn ToSql + Sync); 1] = [&user];
    let tenant_scope: [&(dyn ToSql + Sync); 2] = [&user, &t];
    let tenant_row: [&(dyn ToSql + Sync); 2] = [&t, &user];
    let tenant_lease: [&(dyn ToSql + Sync); 6] = [&t, &want, names, intervals, bursts, &user];
    let caller_lease: [&(dyn ToSql + Sync); 4] = [&want, intervals, bursts, &user];
    // PostgreSQL's statements do not take the caller (the last parameter).
    let own = |p: &'_ [&'_ (dyn ToSql + Sync)]| if dsql { p.len() } else { p.len() - 1 };
    let (row, lease) = match tenant {
        Some(_) => (
            (Q::RateRowTenant, &tenant_row[..own(&tenant_row)]),
            (Q::RateLeaseTenant, &tenant_lease[..own(&tenant_lease)]),
        ),
        None => {
            ((Q::RateRowCaller, &caller[..own(&caller)]), (Q::RateLeaseCaller, &caller_lease[..own(&caller_lease)]))
        }
    };
    let (begun, (set, scoped), made, leased, committed) = join5(
        c.batch_execute("BEGIN"),
        join(
            OptionFuture::from((!dsql).then(|| c.query(conn.stmt(Q::ScopeSet as usize), &caller))),
            OptionFuture::from(
                tenant.filter(|_| !dsql).map(|_| c.query(conn.stmt(Q::ScopeMember as usize), &tenant_scope)),
            ),
        ),
        c.query(conn.stmt(row.0 as usize), row.1),
        c.query(conn.stmt(lease.0 as usize), lease.1),
        c.batch_execute("COMMIT"),
    )
    .await;
    let ended = committed.as_ref().map_or_else(|e| e.as_db_error().is_some(), |_| true);
    let answered =
        begun.is_ok() && set.transpose().is_ok() && scoped.transpose().is_ok() && made.is_ok() && committed.is_ok();
    let row: Option<Row> = leased.ok().and_then(|rows| rows.into_iter().next()).filter(|_| answered);
    (row.and_then(|r| Leased::from_row(&DbRow::Pg(r))), ended)
}
