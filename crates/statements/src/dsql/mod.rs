//! The statements on Aurora DSQL, where there is no row-level security and no custom session
//! setting: every statement that reads or writes tenant data is bound to the caller's scope by
//! construction.
//!
//! - The caller's id is not a setting but a parameter that the store appends to every
//!   statement that names it (`$U` below; the handler never passes it). It is always the id of
//!   the authenticated caller (`store::Scoped`).
//! - The scope is resolved inside the statement itself, from the caller's memberships of
//!   tenants that still exist: the CTE `me` (the caller's membership of tenant `$1`, on tenant
//!   routes) or `mine` (all of the caller's memberships).
//! - Every other reference to a tenant table is restricted to that scope: `tenant_id =
//!   (SELECT tenant_id FROM me)` (at most one row: the planner reads the tenant's rows in index
//!   order), `tenant_id IN (SELECT tenant_id FROM mine)`, a join on `me.tenant_id`, or a join on
//!   a membership row of the caller (`m.user_id = $U`). Rows are inserted only with
//!   `me.tenant_id` as their tenant.
//!
//! `tests/dsql_scope.rs` parses every statement here with a SQL parser and fails when a read
//! or a write of a tenant table is not restricted that way (and proves itself by removing each
//! predicate in turn). The columns of each statement are those of its PostgreSQL twin in
//! `crate::postgres`, so that the same code reads both.

use std::sync::LazyLock;

use crate::{
    Q,
    recording::{params, wrap_recorded},
};

/// The caller's membership of tenant `$1`, if the tenant exists and is not deleted.
macro_rules! me {
    () => {
        "me AS (SELECT m.tenant_id, m.role FROM memberships m \
         JOIN tenants s ON s.id = m.tenant_id AND s.deleted_at IS NULL \
         WHERE m.user_id = $U AND m.tenant_id = $1::uuid)"
    };
}

/// All the caller's memberships of tenants that exist and are not deleted.
macro_rules! mine {
    () => {
        "mine AS (SELECT m.tenant_id, m.role FROM memberships m \
         JOIN tenants s ON s.id = m.tenant_id AND s.deleted_at IS NULL WHERE m.user_id = $U)"
    };
}

/// The users the caller may see: themself and the members of their tenants (a condition on
/// `u`, used with [`mine!`]).
macro_rules! visible_user {
    () => {
        "(u.id = $U OR u.id IN (SELECT c.user_id FROM memberships c WHERE c.tenant_id IN (SELECT tenant_id FROM mine)))"
    };
}

mod data;
mod templates;

/// The template of `q` on DSQL: `$U` is the caller's id.
pub fn template(q: Q) -> &'static str {
    templates::identity(q).or_else(|| data::data(q)).unwrap_or_else(|| panic!("{q:?} has no DSQL template"))
}

/// What `results` of a DSQL record holds between statements' rows: DSQL has no array columns,
/// and JSON text never contains this character unescaped.
pub const RESULT_SEPARATOR: char = '\u{1e}';

/// A statement ready to prepare, and whether the caller's id goes after its own parameters.
#[derive(Debug)]
pub struct Prepared {
    pub sql: String,
    pub caller: bool,
}

/// `template` with `$U` numbered after its own parameters.
pub fn prepared(template: &str) -> Prepared {
    let n = params(template);
    Prepared { sql: template.replace("$U", &format!("${}", n + 1)), caller: template.contains("$U") }
}

/// Every statement on DSQL, in `Q::ALL` order.
pub static STATEMENTS: LazyLock<Vec<Prepared>> =
    LazyLock::new(|| Q::ALL.iter().map(|&q| prepared(template(q))).collect());

/// The recording variant of `template` (see [`crate::recording`]): after its own
/// parameters come the caller, the record's tenant and its key.
pub fn recorded_template(template: &str) -> String {
    let record = "__record AS (UPDATE idempotency_keys \
         SET results = results || chr(30) || (SELECT coalesce(json_agg(__out)::text, '[]') FROM __out) \
         WHERE user_id = $U AND tenant_id = $IT::uuid AND key = $IK::text RETURNING 1)";
    wrap_recorded(template, record)
}

/// The recording variant ready to prepare: `$U`, `$IT`, `$IK` numbered after the statement's
/// own parameters, always all three.
pub fn recorded(template: &str) -> String {
    let n = params(template);
    recorded_template(template)
        .replace("$U", &format!("${}", n + 1))
        .replace("$IT", &format!("${}", n + 2))
        .replace("$IK", &format!("${}", n + 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_comes_after_the_statements_own_parameters() {
        let p = prepared("SELECT $1::uuid, $2::text WHERE x = $U");
        assert_eq!(p.sql, "SELECT $1::uuid, $2::text WHERE x = $3");
        assert!(p.caller);
        assert!(!prepared("SELECT $1::text").caller);
        let r = recorded("SELECT $1::int8");
        assert!(r.contains("user_id = $2 AND tenant_id = $3::uuid AND key = $4::text"), "{r}");
        assert!(!STATEMENTS.iter().any(|p| p.sql.contains("$U") || p.sql.contains("app_")), "no settings on DSQL");
    }
}
