//! Plans and count quotas as the store sends them (issue 24). The plan catalogue
//! (`limits::Plans`) reaches the SQL as parameters: the plan names with the default first, and
//! per quota the plans' values in the same order. A statement resolves the tenant's plan from
//! its row (`tenants.plan`, NULL or a name no longer configured: the default), checks the count
//! in the same transaction as the write (`app_quota_room` in `migrations/0007_plans.sql` on
//! PostgreSQL; the tenant's row locked `FOR UPDATE` on Aurora DSQL, so that two creates that
//! both saw room conflict and the retry counts again), and answers the quota's plan, cap and use
//! beside its own columns.

use limits::{Plans, Quota};

use crate::{Error, rows::DbRow};

/// The plan catalogue as statement parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanParams {
    names: Vec<String>,
    caps: [Vec<i64>; 4],
    /// Each plan's emission interval (µs) and burst, for the rate-limit leases.
    intervals: Vec<i64>,
    bursts: Vec<i64>,
}

impl PlanParams {
    /// `plans` with its default plan first.
    pub fn new(plans: &Plans) -> Self {
        let default = plans.default_plan();
        let ordered: Vec<_> =
            std::iter::once(default).chain(plans.iter().filter(|p| p.name() != default.name())).collect();
        let names = ordered.iter().map(|p| p.name().to_string()).collect();
        let caps = Quota::ALL.map(|q| ordered.iter().map(|p| i64::from(p.quota(q))).collect());
        let intervals = ordered.iter().map(|p| p.limit().interval().as_micros() as i64).collect();
        let bursts = ordered.iter().map(|p| i64::from(p.burst())).collect();
        Self { names, caps, intervals, bursts }
    }

    /// The plan names, the default first.
    pub(crate) fn names(&self) -> &Vec<String> {
        &self.names
    }

    /// Each plan's value of `quota`, in the order of [`names`](Self::names).
    pub(crate) fn caps(&self, quota: Quota) -> &Vec<i64> {
        &self.caps[quota as usize]
    }

    /// Each plan's emission interval in µs, in the order of [`names`](Self::names).
    pub(crate) fn intervals(&self) -> &Vec<i64> {
        &self.intervals
    }

    /// Each plan's burst, in the order of [`names`](Self::names).
    pub(crate) fn bursts(&self) -> &Vec<i64> {
        &self.bursts
    }

    /// Whether `name` is a configured plan.
    pub fn knows(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

impl Default for PlanParams {
    /// The built-in catalogue.
    fn default() -> Self {
        Self::new(&Plans::builtin())
    }
}

/// The refusal of a create whose row came back without its write: `Some` when the quota's
/// columns at `at` (plan, cap, use) say the count is full.
pub(crate) fn exceeded(row: &DbRow, at: usize, quota: Quota) -> Option<Error> {
    let (plan, cap, used) =
        (row.col::<Option<String>>(at)?, row.col::<Option<i64>>(at + 1)?, row.col::<Option<i64>>(at + 2)?);
    (used >= cap).then(|| Error::QuotaExceeded { quota: quota.name(), plan, limit: cap })
}

/// The operator's change of tenant `tenant`'s plan to `plan` (`scripts/tenant.sh plan`), as
/// the owner through `client`, in one transaction: the plan it had before (`None`: the
/// default), or `None` when there is no such tenant here. Run it on the control database and,
/// for a dedicated tenant, on its database too (its copy of the tenant row is what its todos
/// quota reads).
pub async fn set_plan(
    client: &mut tokio_postgres::Client,
    engine: crate::Engine,
    tenant: crate::TenantId,
    plan: &str,
) -> crate::Result<Option<Option<String>>> {
    let tx = client.transaction().await?;
    let live = match engine {
        crate::Engine::Postgres => {
            // Row-level security applies to the owner too: the tenant in scope for the update.
            tx.execute("SELECT set_config('app.tenant_ids', ARRAY[$1::uuid]::text, true)", &[&tenant.0]).await?;
            ""
        }
        crate::Engine::Dsql => " AND deleted_at IS NULL",
    };
    let select = format!("SELECT plan FROM tenants WHERE id = $1{live} FOR UPDATE");
    let Some(row) = tx.query_opt(&select, &[&tenant.0]).await? else { return Ok(None) };
    tx.execute("UPDATE tenants SET plan = $2 WHERE id = $1", &[&tenant.0, &plan]).await?;
    tx.commit().await?;
    Ok(Some(row.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_comes_first_and_each_quota_follows_the_names() {
        let plans = Plans::from_json(r#"{"default": "standard", "plans": {"standard": {"members": 7}}}"#).unwrap();
        let p = PlanParams::new(&plans);
        assert_eq!(p.names()[0], "standard");
        assert_eq!(p.caps(Quota::Members)[0], 7);
        let free = p.names().iter().position(|n| n == "free").unwrap();
        assert_eq!(p.caps(Quota::Todos)[free], 1_000);
        assert!(p.knows("premium") && !p.knows("gold"));
        assert_eq!(p.names().len(), 3);
        assert!(Quota::ALL.iter().all(|&q| p.caps(q).len() == 3));
    }
}
