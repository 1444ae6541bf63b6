//! Plans, count quotas and per-tenant rate limits (issue 24): the pure core, with no database,
//! no clock and no HTTP types. The store and the HTTP layer wire it in.
//!
//! - [`Plans`] / [`Plan`] / [`Quota`]: each tenant has a plan (a new tenant the default one):
//!   request rate and burst, and counts: todos, members and pending invitations per tenant,
//!   tenants a user may create. Built-in `free`, `standard` (the default) and `premium`
//!   ([`BUILTIN`]); the `PLANS` environment variable (JSON) overrides or extends them.
//! - [`Gcra`] / [`Limit`] / [`Decision`]: the rate limit of one key, GCRA.
//! - [`grant`] / [`LeaseOutcome`]: the shared side, one row per key in the database.
//! - [`LocalLimiter`] / [`Admit`]: the instance side, which spends leases of that row locally.
//! - [`headers`]: `RateLimit-Policy`, `RateLimit` and `Retry-After` after
//!   draft-ietf-httpapi-ratelimit-headers-09.
//!
//! # The algorithm
//!
//! GCRA (the generic cell rate algorithm, as in redis-cell): a key's whole state is its
//! theoretical arrival time `tat`. With emission interval `T = 1 / rate` and burst `B`, `n`
//! requests at `now` are admitted when `max(tat, now) + n·T <= now + B·T`, and then `tat`
//! becomes `max(tat, now) + n·T`. An idle key admits `B` at once, then one every `T`. It is a
//! token bucket of `B` tokens refilled every `T`, kept as one number, which makes it cheap to
//! store in a row and to compute in SQL. `T` is a whole number of microseconds
//! ([`Plan::limit`]), so the Rust and the SQL compute the same numbers.
//!
//! # Across instances: leases
//!
//! A tenant's rate is one budget for the whole deployment. The database holds its GCRA row. An
//! instance takes a **lease** of `n` requests from it by moving the row's TAT on by `n·T`, as far
//! as the burst allows ([`grant`]: partial leases, and no write at all when nothing fits), and
//! spends the lease locally without asking again. Per key ([`LocalLimiter::admit`]):
//!
//! 1. **A held token**: [`Admit::Local`]. The request is served with no database work for the
//!    limiter. This is the common path.
//! 2. **No token**: [`Admit::NeedLease`]. The request is served *on credit*, and its own pipeline
//!    carries the lease statement for `want = credit + lease` requests. The grant pays the credit
//!    first. The rest becomes held tokens.
//! 3. **No token and the credit used up** (earlier lease statements failed, or one is still in
//!    flight): [`Admit::LeaseFirst`]. The lease statement goes alone, before the request. This is
//!    the only case where the limiter costs a round trip of its own.
//! 4. **The row has no room** (the last lease came back short): [`Admit::Refused`], until the
//!    instance's credit and a lease fit again. It refuses without touching the database and
//!    tells the client `retry_after`.
//!
//! Leases start at 1 and double while each one runs out within [`LEASE_HORIZON`] (1 s). They
//! halve when one lasted four horizons. They are capped at `max_lease = max(1, B / 8)`
//! ([`Limit::max_lease`]). An instance that sees `λ` requests a second for a key therefore
//! writes the row about `max(1, λ / max_lease)` times a second. It never writes more than once
//! per request. Once `λ >= max_lease`, it writes **once per `max_lease` requests**. Small leases
//! keep idle instances from hoarding budget. Big ones keep busy instances off the row.
//!
//! ## The bound
//!
//! With `K` instances serving a key, `T` and `B` from its plan, `max_lease = max(1, B / 8)` and
//! `credit` the limiter's credit per key (1 by default, [`LocalLimiter::with_credit`]). In
//! **any** window of length `W` on the database's clock, the requests admitted for the key
//! deployment-wide are:
//!
//! ```text
//! admitted(W)  <=  floor(W / T) + B + K · (max_lease + credit)
//! ```
//!
//! Here `floor(W / T) + B` is exactly what one GCRA would admit. A credit-admitted request is
//! timed by its lease statement, which runs in the same round trip.
//!
//! *Proof.* (1) The row: every lease moves the TAT to at most `s + B·T` at its time `s`, and by
//! `g·T` above `max(tat, s) >= s`. Summed over the leases in `[t1, t2]`, granted·T ≤
//! `t2 + B·T − t1`, so granted ≤ `floor(W / T) + B`. (2) One instance: what it admits in the
//! window is what it spends plus what it admits on credit. What it spends is at most the tokens
//! it held at `t1` (≤ `max_lease`: tokens are capped) plus the tokens granted in the window. What
//! it admits on credit is at most the credit paid in the window plus the credit still unpaid at
//! `t2` (≤ `credit`). Tokens and credit paid are its share of the granted requests. (3) Sum (2)
//! over the `K` instances and apply (1). ∎
//!
//! Over a long window the excess stays the same, so the long-run rate is exact. A failed lease
//! statement (a conflict) leaves its credit unpaid. The next lease pays it, so a failure never
//! lets requests through uncounted. The limiter keeps at most `capacity` keys. When it is full,
//! it drops the least recently used eighth. A dropped key forgets at most its unpaid credit. The
//! bound holds per key while the key stays held, which is every key in use, given a capacity
//! above the number of keys an instance sees within a few seconds.
//!
//! `tests/simulation.rs` checks the bound in every 1 s, 5 s and 20 s window. It runs 1, 3 and 8
//! simulated instances, each with its own clock, against one shared row at 10× the rate, with 0
//! or 20% of lease statements failing. It also checks that a tenant at half its rate, on the
//! same instances, is never refused. A tenant at 80% of its rate is never refused and never waits
//! for a lease. A naive design (each instance with the full budget) breaks the bound.
//!
//! ## What it costs
//!
//! - A request under its limit: no round trip of its own. Most requests touch nothing. One in
//!   `lease` requests adds one statement to the pipeline it sends anyway. A read's own
//!   transaction stays read-only: the lease is a separate transaction in the same pipeline
//!   (below).
//! - A request over the limit, on an instance that knows it: no database work at all. An
//!   instance knows it from the moment its lease came back short until its credit and a lease
//!   fit again. It then asks once (`LeaseFirst` when its credit is unpaid). A statement that
//!   admits nothing means that another instance was granted requests since this one looked. So
//!   while a tenant is over its limit, its statements are at most `K + 1` per write, failed
//!   ones aside, and its writes are about `rate / lease` a second.
//! - A tenant over its limit does not write its row while the row has no room. So it causes no
//!   write contention, and on DSQL no conflicts, beyond those writes.
//!
//! # Two layers
//!
//! - **API Gateway stage throttling** (`api_throttling_rate_limit` / `api_throttling_burst_limit`
//!   in Terraform) stays the deployment-wide guard. It is account- and route-wide and "best
//!   effort", and it is the only layer that stops requests before they cost a Lambda
//!   invocation. It protects Lambda concurrency and the database's connections from everyone
//!   together.
//! - **These per-tenant limits** make the budget fair between tenants. A tenant over its plan
//!   gets 429 from its own budget, refused in the function before any database work, and the
//!   other tenants do not notice. Tenant routes are keyed by tenant. Routes outside a tenant
//!   (`/api/me`, `POST /api/tenants`, `/api/invitations/accept`) are keyed by caller, so that
//!   one identity cannot flood them.
//!
//! # For the integrator
//!
//! **Schema** (one row per key. The plan lives here too, so the lease statement needs no join,
//! and the quota checks read it in their own transaction):
//!
//! ```sql
//! CREATE TABLE rate_limits (
//!   kind    text    NOT NULL CHECK (kind IN ('tenant', 'caller')),
//!   key     uuid    NOT NULL,              -- tenant id, or user id for caller keys
//!   plan    text    NOT NULL,              -- a name from Plans (a tenant's plan)
//!   tat_us  bigint  NOT NULL DEFAULT 0,    -- GCRA TAT, µs since the Unix epoch, database clock
//!   granted integer NOT NULL DEFAULT 0,    -- what the last lease granted (for RETURNING)
//!   PRIMARY KEY (kind, key)
//! );
//! ```
//!
//! Insert the tenant's row in the transaction that creates the tenant, with the default plan.
//! Insert a caller's row when the user registers. Delete them with the tenant or user. On DSQL
//! the table has no foreign keys and is purged like the others. `scripts/tenant.sh plan` sets
//! `plan`.
//!
//! **The lease statement** mirrors [`grant`] line for line. `$1` kind, `$2` key, `$3` want
//! (bigint). The `VALUES` list is [`sql_plan_values`], built once at start-up from [`Plans`]
//! (names `[a-z0-9-]`, integers: safe to embed):
//!
//! ```sql
//! WITH p (plan, interval_us, burst) AS (VALUES ('free', 200000::bigint, 40::bigint), ...),
//!      n AS (SELECT (extract(epoch FROM statement_timestamp()) * 1000000)::bigint AS now_us)
//! UPDATE rate_limits r
//!    SET tat_us  = GREATEST(r.tat_us, n.now_us) + p.interval_us * LEAST($3,
//!                    (n.now_us + p.burst * p.interval_us - GREATEST(r.tat_us, n.now_us)) / p.interval_us),
//!        granted = LEAST($3,
//!                    (n.now_us + p.burst * p.interval_us - GREATEST(r.tat_us, n.now_us)) / p.interval_us)
//!   FROM p, n
//!  WHERE r.kind = $1 AND r.key = $2 AND p.plan = r.plan
//!    AND n.now_us + p.burst * p.interval_us - GREATEST(r.tat_us, n.now_us) >= p.interval_us
//! RETURNING r.plan, r.granted, r.tat_us - n.now_us AS tat_ahead_us;
//!
//! -- Next in the same pipeline, read-only, for when the UPDATE found no room (no row returned):
//! SELECT plan, tat_us - (extract(epoch FROM statement_timestamp()) * 1000000)::bigint AS tat_ahead_us
//!   FROM rate_limits WHERE kind = $1 AND key = $2;
//! ```
//!
//! Run on PostgreSQL 15, this statement returned the numbers that a unit test in `lease.rs`
//! checks [`grant`] against. Two sessions asking for 1 request each, 120 times in all within
//! 144 ms, were granted exactly the burst (40) together.
//!
//! Map the result with [`LeaseOutcome::from_micros`]. If the UPDATE returned a row, use
//! `(granted, tat_ahead_us)`. Otherwise use `(0, tat_ahead_us)` from the SELECT. If a statement
//! failed or no row came back, use [`LeaseOutcome::Failed`]. The limit to record is the one for
//! `plan` in [`Plans`]. Instances never compare their clocks with the database's: only the
//! duration `tat_ahead` crosses, and each instance applies it to its own monotonic clock.
//!
//! **Where it goes**: in the pipeline of the request that got [`Admit::NeedLease`], **after that
//! request's `COMMIT`, as its own single-statement transaction**, not inside the request's
//! transaction. Then:
//!
//! - the request's own transaction is unchanged. A read stays `READ ONLY`, and the request's
//!   answer does not depend on the lease;
//! - on **PostgreSQL**, the row lock lasts one statement, not the request's transaction.
//!   Concurrent leases of one tenant queue for microseconds. `UPDATE` re-reads `r.tat_us` after
//!   waiting (READ COMMITTED re-evaluation), so no lease is lost or double-granted;
//! - on **DSQL**, two instances writing one tenant's row at the same moment conflict. One commit
//!   fails with OC000 / 40001. That failure belongs to the lease's own transaction. It is **not**
//!   a failure of the request, and the store must not retry the request for it: record
//!   [`LeaseOutcome::Failed`] and the instance asks again on its next request. Credit bounds the
//!   damage (the bound above). With `credit = c`, only `c` failures in a row make a request wait
//!   for its lease ([`Admit::LeaseFirst`]). Leases are rare and a throttled tenant writes
//!   nothing, so conflicts are rare. Check the statement with `dsql-lint`: `UPDATE ... FROM`
//!   with a `VALUES` CTE is plain PostgreSQL, but it has not been run on DSQL here;
//! - on [`Admit::LeaseFirst`], send the statement alone, record it, then call
//!   [`LocalLimiter::admit`] again for the same request. If it fails again, answer 503 with
//!   `Retry-After`, as for a conflict that outlasts its retries.
//!
//! **Whose budget**: charge a tenant's budget only for callers known to be its members.
//! Otherwise anyone could exhaust a tenant's budget by naming it in a path, and it would be
//! refused locally before membership is checked. A request whose (caller, tenant) the instance
//! has not yet seen succeed should be limited under the caller's key. Once its transaction
//! confirms the membership, the instance remembers the pair. On DSQL the lease statement for a
//! tenant key also needs the scope predicate (`EXISTS` a membership of the caller), or an entry
//! in the scope checker's exemptions with that reason.
//!
//! **Responses**: [`headers::response_headers`] with the key's limit ([`LocalLimiter::limit`])
//! and the [`Decision`]: from [`Admit::Local`] or [`Admit::Refused`], or, after
//! [`Admit::NeedLease`], the one [`LocalLimiter::record_grant`] returns. A refusal is 429 with
//! `Retry-After`. An exceeded count quota is a 4xx with `code: "quota_exceeded"`, naming
//! [`Quota::name`] and the plan. The quota check itself belongs in the write's own transaction
//! (issue 24).
//!
//! # Decisions
//!
//! - **GCRA, not a counter per window**: one number per key, no window edges, exact, and a
//!   few lines of SQL. The burst doubles as the lease budget.
//! - **Leases with credit**: the request that needs a lease does not wait for it. This is what
//!   keeps a request under its limit at one round trip. The price is `credit` requests per
//!   instance in the bound.
//! - **Partial grants, and no write when nothing fits**: no budget is wasted, and a tenant over
//!   its limit does not write its row.
//! - **Lease cap `B / 8`**: with the built-in bursts (8 s of rate) a full lease is 1 s of rate
//!   per instance, so `K` instances can hold at most `K / 8` of the burst.
//! - **Refuse until credit + lease fit**, not until 1 fits: otherwise a tenant at its limit would
//!   write its row once per admitted request.
//! - **Plans in configuration, defaults in code**: a plan's numbers reach the SQL through the
//!   statement's `VALUES` list, so changing `PLANS` and redeploying changes every tenant on that
//!   plan at once. Rates are per second and may be fractions. `T` is rounded to a whole µs.
//! - **Headers**: `q` is the burst and `w` the refill time `B·T` rounded up, so `q / w` is the
//!   rate (or a little under it). `t` and `Retry-After` are rounded up, and `Retry-After` is at
//!   least 1.
//! - **Pure**: no clock, no I/O, no HTTP or database dependency. Times are [`std::time::Duration`]s
//!   since an origin of the caller's choice.

mod gcra;
pub mod headers;
mod lease;
mod limiter;
mod plan;

pub use gcra::{Decision, Gcra, Limit};
pub use lease::{LeaseOutcome, grant, sql_plan_values};
pub use limiter::{Admit, LEASE_HORIZON, LocalLimiter};
pub use plan::{
    BUILTIN, BUILTIN_DEFAULT, MAX_BURST, MAX_RATE, MIN_RATE, PLANS_ENV, Plan, PlanError, PlanName, Plans, Quota,
};
