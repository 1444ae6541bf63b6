//! Reading parsed SQL: conjuncts, placeholders, table and column names, and the query shapes
//! the rules name.

use sqlparser::ast::{
    BinaryOperator as Op, Delete, Expr, FromTable, Insert, ObjectName, Query, Select, SelectItem, SetExpr, Statement,
    TableFactor, TableObject, TableWithJoins, Update, Value,
};

pub(super) fn strip(mut e: &Expr) -> &Expr {
    while let Expr::Nested(inner) = e {
        e = inner;
    }
    e
}

/// The top-level AND-conjuncts of `e`.
pub(super) fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match strip(e) {
        Expr::BinaryOp { left, op: Op::And, right } => [conjuncts(left), conjuncts(right)].concat(),
        e => vec![e],
    }
}

/// `$n` if `e` is that placeholder, cast or not.
pub(super) fn placeholder(e: &Expr) -> Option<&str> {
    match strip(e) {
        Expr::Cast { expr, .. } => placeholder(expr),
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => Some(p),
            _ => None,
        },
        _ => None,
    }
}

/// The operands of `e` if it is `a <op> b`, in both orders.
pub(super) fn sides(e: &Expr, want: Op) -> Vec<(&Expr, &Expr)> {
    match strip(e) {
        Expr::BinaryOp { left, op, right } if *op == want => vec![(&**left, &**right), (&**right, &**left)],
        _ => vec![],
    }
}

pub(super) fn last_name(n: &ObjectName) -> String {
    n.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_lowercase()).unwrap_or_default()
}

/// `(alias or name, table name)` of a plain table.
pub(super) fn table_of(f: &TableFactor) -> Option<(String, String)> {
    match f {
        TableFactor::Table { name, alias, .. } => {
            Some((alias.as_ref().map_or_else(|| last_name(name), |a| a.name.value.clone()), last_name(name)))
        }
        _ => None,
    }
}

/// The SELECT that is all of `q` (no WITH, no set operation).
pub(super) fn single_select(q: &Query) -> Option<&Select> {
    match (&q.with, &*q.body) {
        (None, SetExpr::Select(s)) => Some(s),
        _ => None,
    }
}

/// `(alias, table)` of the only FROM item of `s`, a plain table without joins.
pub(super) fn sole_table(s: &Select) -> Option<(String, String)> {
    match s.from.as_slice() {
        [TableWithJoins { relation, joins }] if joins.is_empty() => table_of(relation),
        _ => None,
    }
}

/// The column `e` names, if it is `alias.column` or a bare `column`.
pub(super) fn column_of(e: &Expr, alias: &str) -> Option<String> {
    match strip(e) {
        Expr::Identifier(c) => Some(c.value.to_lowercase()),
        Expr::CompoundIdentifier(p) if p.len() == 2 && p[0].value == alias => Some(p[1].value.to_lowercase()),
        _ => None,
    }
}

/// What each item of a SELECT list projects (`None` for a wildcard).
pub(super) fn projected(s: &Select) -> Vec<Option<&Expr>> {
    s.projection
        .iter()
        .map(|i| match i {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
            _ => None,
        })
        .collect()
}

/// The target table of a data-modifying CTE body, and what it returns.
pub(super) fn dml_of(body: &SetExpr) -> Option<(String, &Vec<SelectItem>)> {
    let (target, returning) = match body {
        SetExpr::Insert(Statement::Insert(Insert { table: TableObject::TableName(t), returning, .. })) => {
            (last_name(t), returning)
        }
        SetExpr::Update(Statement::Update(Update { table, returning, .. })) => {
            (table_of(&table.relation)?.1, returning)
        }
        SetExpr::Delete(Statement::Delete(Delete { from: FromTable::WithFromKeyword(f), returning, .. })) => {
            (table_of(&f.first()?.relation)?.1, returning)
        }
        _ => return None,
    };
    Some((target, returning.as_ref()?))
}

/// `deleted_at IS NOT NULL` on `alias`: a conjunct that keeps to tenants marked deleted.
pub(super) fn marked_deleted<'e>(conj: &[&'e Expr], alias: &str) -> Option<&'e Expr> {
    conj.iter()
        .copied()
        .find(|c| matches!(strip(c), Expr::IsNotNull(col) if column_of(col, alias).as_deref() == Some("deleted_at")))
}

/// PurgeTenant's gate: `SELECT .. FROM tenants x WHERE x.id = $1 AND x.deleted_at IS NOT NULL`;
/// the two conjuncts.
pub(super) fn tenant_deleted(s: &Select) -> Option<Vec<*const Expr>> {
    let (alias, table) = sole_table(s)?;
    let conj = conjuncts(s.selection.as_ref()?);
    let eq = conj.iter().copied().find(|c| {
        sides(c, Op::Eq)
            .iter()
            .any(|(a, b)| column_of(a, &alias).as_deref() == Some("id") && placeholder(b) == Some("$1"))
    })?;
    let deleted = marked_deleted(&conj, &alias)?;
    (table == "tenants").then(|| vec![eq as *const Expr, deleted as *const Expr])
}

/// A query whose sole table is the CTE `me`: at most one row.
pub(super) fn is_me(q: &Query) -> bool {
    single_select(q).and_then(sole_table).is_some_and(|(_, table)| table == "me")
}

/// `SELECT X.user_id FROM memberships X ...` or `SELECT X.id FROM users X ...` (rule 3).
pub(super) fn user_subquery(q: &Query) -> bool {
    let Some((s, (alias, table))) = single_select(q).and_then(|s| Some((s, sole_table(s)?))) else { return false };
    let want = if table == "memberships" { "user_id" } else { "id" };
    (table == "memberships" || table == "users")
        && matches!(projected(s).as_slice(), [Some(e)] if column_of(e, &alias).as_deref() == Some(want))
}
