//! The statement-scope checker of `dsql_scope.rs`; the rules it enforces are in that test's
//! module doc.
//!
//! - [`ast`]: reading parsed SQL (conjuncts, placeholders, table names, query shapes);
//! - [`checker`]: the walk over every query level, CTE and table reference;
//! - [`rules`]: rules 1-5 and the exemptions, as the walk applies them;
//! - [`mutation`]: the mutation test's mutants.

mod ast;
mod checker;
pub mod mutation;
mod rules;

use sqlparser::{
    ast::{Expr, Statement},
    dialect::PostgreSqlDialect,
    parser::Parser,
};
use store::{Engine, Q, dsql, idempotency};

pub use checker::Checker;

/// The tenant tables and the column naming each row's tenant. `rate_limits` (issue 24) is keyed
/// by a tenant or by the caller: its `key` is restricted as a tenant column, or to the caller
/// (rule 2e).
const TENANT_TABLES: [(&str, &str); 5] = [
    ("tenants", "id"),
    ("memberships", "tenant_id"),
    ("todos", "tenant_id"),
    ("invitations", "tenant_id"),
    ("rate_limits", "key"),
];
/// The user-owned tables and the column naming each row's owner.
const USER_TABLES: [(&str, &str); 2] = [("users", "id"), ("idempotency_keys", "user_id")];

fn tenant_column(table: &str) -> Option<&'static str> {
    TENANT_TABLES.iter().find(|(t, _)| *t == table).map(|(_, c)| *c)
}

fn owner_column(table: &str) -> Option<&'static str> {
    USER_TABLES.iter().find(|(t, _)| *t == table).map(|(_, c)| *c)
}

/// Reviewed exceptions to rules 2-4: (statement, table or `*`, the predicate still required).
const EXEMPTIONS: &[(&str, &str, &str)] = &[
    ("UserRegister", "users", "the identity lookup: `issuer = $n AND subject = $m` (what it inserts is rule 5's)"),
    ("InvitationAccept", "invitations", "the code is the capability: `code_hash = $1` (the tenant joined: rule 2d)"),
    (
        "InvitationAccept",
        "tenants",
        "the tenant of the invitation the caller holds the code of, locked for its members quota: \
         `id = (SELECT tenant_id FROM inv)`",
    ),
    (
        "InvitationAccept",
        "memberships",
        "the members of that tenant, counted (not returned) for its members quota: \
         `tenant_id = (SELECT tenant_id FROM inv)`",
    ),
    ("IdemCleanup", "idempotency_keys", "expired records of anyone: `expires_at < now()`, or the key IN such a read"),
    (
        "PurgeTenant",
        "*",
        "rows of tenant $1 once it is marked deleted: `<tenant column> = $1`, and on a DELETE also \
         `EXISTS (SELECT 1 FROM <gate>)`, the gate CTE being \
         `SELECT 1 FROM tenants WHERE id = $1 AND deleted_at IS NOT NULL`",
    ),
    (
        "OrphanTenants",
        "*",
        "ids of tenants marked deleted, for the daily cleanup: reads only, under `deleted_at IS NOT NULL`",
    ),
];

/// A CTE as the rules see it.
#[derive(Clone, Debug, Default)]
struct CteInfo {
    name: String,
    /// `me` or `mine`, checked by rule 1.
    scope: bool,
    /// An INSERT, UPDATE or DELETE with RETURNING.
    dml: bool,
    /// The column through which it returns tenant ids: `tenant_id` for `me`/`mine`, the tenant
    /// column of a DML CTE's table if it returns that column as is.
    tenant_output: Option<String>,
    /// PurgeTenant's gate: the predicates that make this CTE one.
    gate: Vec<*const Expr>,
}

#[derive(Clone, Debug)]
enum Source {
    Table(String),
    Cte(CteInfo),
    Other,
}

/// A FROM item or a DML target; `name` is its alias, or the table's name.
#[derive(Clone, Debug)]
struct Ref {
    id: usize,
    name: String,
    source: Source,
    target: bool,
}

/// The CTEs and references of one query level.
#[derive(Debug, Default)]
struct Level {
    ctes: Vec<CteInfo>,
    refs: Vec<Ref>,
    /// Not visible by name: a non-LATERAL derived table of this level is being checked.
    hidden: bool,
    /// OrphanTenants' `deleted_at IS NOT NULL`, if here.
    orphan_gate: Vec<*const Expr>,
}

/// One statement: `q` names it for the exemptions, `caller` is its caller placeholder.
#[derive(Debug)]
pub struct Stmt {
    pub q: String,
    pub label: String,
    pub sql: String,
    pub caller: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub violations: Vec<String>,
    /// The predicates and INSERT values the verdict rests on: the mutation test's targets.
    pub relied: Vec<*const Expr>,
    /// References to (and INSERTs into) tenant and user-owned tables.
    pub scoped: usize,
    /// Relations judged, to compare with the parser's count.
    judged: usize,
}

/// The highest `$n` of a template (not `$U`).
fn highest_param(sql: &str) -> usize {
    let numbers = sql.split('$').skip(1).filter_map(|t| t.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok());
    numbers.max().unwrap_or(0)
}

/// Every statement the store prepares on DSQL, and the recording variants.
pub fn statements() -> Vec<Stmt> {
    let recorded = idempotency::recorded_statements_for(Engine::Dsql);
    assert_eq!(recorded.len(), Q::ALL.len());
    let mut out = vec![];
    for (&q, recorded) in Q::ALL.iter().zip(recorded) {
        // On DSQL both recording variants append (the claim made the record).
        assert_eq!(recorded.first, recorded.more, "{q:?}");
        let recorded = recorded.more;
        let template = dsql::template(q);
        let caller = format!("${}", highest_param(template) + 1);
        let prepared = dsql::prepared(template);
        assert_eq!(prepared.sql.contains(&caller), prepared.caller, "{q:?}: the caller is {caller}");
        let name = format!("{q:?}");
        if recorded != prepared.sql {
            // The caller, the record's tenant and its key come after the statement's parameters.
            let label = format!("{name} (recorded)");
            out.push(Stmt { q: name.clone(), label, sql: recorded, caller: caller.clone() });
        }
        out.push(Stmt { q: name.clone(), label: name, sql: prepared.sql, caller });
    }
    out
}

pub fn parse(sql: &str) -> Result<Statement, String> {
    let mut parsed = Parser::parse_sql(&PostgreSqlDialect {}, sql).map_err(|e| format!("does not parse: {e}"))?;
    match (parsed.pop(), parsed.is_empty()) {
        (Some(s), true) => Ok(s),
        _ => Err("not exactly one statement".into()),
    }
}

/// The checker's violations for `sql`, as statement `q` with caller `caller`.
pub fn violations(q: &str, caller: &str, sql: &str) -> Vec<String> {
    let stmt = Stmt { q: q.into(), label: q.into(), sql: sql.into(), caller: caller.into() };
    parse(sql).map_or_else(|e| vec![e], |ast| Checker::run(&stmt, &ast).violations)
}
