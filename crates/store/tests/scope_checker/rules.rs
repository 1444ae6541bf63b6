//! Rules 1-5 and the exemptions: what restricts a table reference, and what an INSERT or an
//! UPDATE may write.

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator as Op, Expr, Insert, JoinConstraint, JoinOperator, OnConflictAction, OnInsert,
    Query, TableObject, TableWithJoins, Update,
};

use super::{
    EXEMPTIONS, Ref, Source,
    ast::{
        column_of, conjuncts, is_me, last_name, placeholder, projected, sides, single_select, sole_table, strip,
        table_of, user_subquery,
    },
    checker::Checker,
    owner_column, tenant_column,
};

impl Checker<'_> {
    /// Rule 1: `me`/`mine` is the caller's memberships (of tenants that exist).
    pub(super) fn scope_cte(&mut self, name: &str, q: &Query) -> Option<()> {
        let s = single_select(q)?;
        let [TableWithJoins { relation, joins }] = s.from.as_slice() else { return None };
        let (m, table) = table_of(relation)?;
        if table != "memberships" || joins.len() > 1 {
            return None;
        }
        for join in joins {
            let (t, table) = table_of(&join.relation)?;
            let (JoinOperator::Join(JoinConstraint::On(on)) | JoinOperator::Inner(JoinConstraint::On(on))) =
                &join.join_operator
            else {
                return None;
            };
            let t_id = |a: &Expr| {
                matches!(a, Expr::CompoundIdentifier(p) if p.len() == 2 && p[0].value == t)
                    && column_of(a, &t).as_deref() == Some("id")
            };
            let on_tenant = |c: &&Expr| {
                sides(c, Op::Eq).iter().any(|(a, b)| t_id(a) && column_of(b, &m).as_deref() == Some("tenant_id"))
            };
            (table == "tenants" && conjuncts(on).iter().any(on_tenant)).then_some(())?;
        }
        let conj = conjuncts(s.selection.as_ref()?);
        let on = |col: &str, value: &dyn Fn(&Expr) -> bool| {
            let hit =
                |c: &&&Expr| sides(c, Op::Eq).iter().any(|(a, b)| column_of(a, &m).as_deref() == Some(col) && value(b));
            conj.iter().find(hit).copied()
        };
        on("user_id", &|b| self.is_caller(b))?;
        if name == "me" {
            let tenant = on("tenant_id", &|b| placeholder(b) == Some("$1"))?;
            self.report.relied.push(tenant);
        }
        projected(s).into_iter().flatten().any(|e| column_of(e, &m).as_deref() == Some("tenant_id")).then_some(())
    }

    /// Marks each table reference of the top level restricted by rules 2-4 or an exemption,
    /// until nothing changes (rule 2d follows chains), and reports the rest.
    pub(super) fn restrict(&mut self, filters: &[Vec<&Expr>]) {
        let refs = self.levels.last().map(|l| l.refs.clone()).unwrap_or_default();
        let mut progress = true;
        while progress {
            progress = false;
            for (r, conj) in refs.iter().zip(filters) {
                if !matches!(r.source, Source::Table(_)) || self.restricted.contains(&r.id) {
                    continue;
                }
                if let Some(relied) = conj.iter().find_map(|c| self.restricts(c, r)).or_else(|| self.exemption(r, conj))
                {
                    self.restricted.insert(r.id);
                    self.report.relied.extend(relied);
                    progress = true;
                }
            }
        }
        for r in &refs {
            if let Source::Table(t) = &r.source
                && !self.restricted.contains(&r.id)
            {
                self.violation(format!("{t} `{}` is not restricted to the caller's scope", r.name));
            }
        }
    }

    /// The scope predicates (of an OR: each disjunct's) by which `e` restricts `r`.
    fn restricts(&self, e: &Expr, r: &Ref) -> Option<Vec<*const Expr>> {
        match strip(e) {
            Expr::BinaryOp { left, op: Op::Or, right } => {
                Some([self.restricts(left, r)?, self.restricts(right, r)?].concat())
            }
            e => self.is_scope_predicate(e, r).then(|| vec![e as *const Expr]),
        }
    }

    fn is_scope_predicate(&self, e: &Expr, r: &Ref) -> bool {
        let Source::Table(t) = &r.source else { return false };
        let of_r = |col: &str, x: &Expr| self.column(x).is_some_and(|(id, c)| id == r.id && c == col);
        // `x` is column `col(X)` of another restricted reference X.
        let restricted = |x: &Expr, col: &dyn Fn(usize) -> Option<String>| {
            self.column(x).is_some_and(|(id, c)| id != r.id && self.restricted.contains(&id) && col(id) == Some(c))
        };
        let eq = |f: &dyn Fn(&Expr, &Expr) -> bool| sides(e, Op::Eq).iter().any(|(a, b)| f(a, b));
        let in_sub = |col: &str, f: &dyn Fn(&Query) -> bool| match e {
            Expr::InSubquery { expr, subquery, negated: false } => of_r(col, expr) && f(subquery),
            _ => false,
        };
        if let Some(tc) = tenant_column(t) {
            let tenant_of = |id| self.tenant_column_of(id);
            // 2a also as `= (SELECT tenant_id FROM me)`: `me` has at most one row (the caller's
            // membership of one tenant), and the planner can then read the tenant's rows in
            // index order.
            let one_scope = |x: &Expr| matches!(strip(x), Expr::Subquery(q) if self.is_scope_subquery(q) && is_me(q));
            if in_sub(tc, &|q| self.is_scope_subquery(q))
                || eq(&|a, b| of_r(tc, a) && (restricted(b, &tenant_of) || one_scope(b)))
            {
                return true; // 2a, 2b, 2d
            }
        }
        let member_user =
            |id| matches!(&self.find_ref(id)?.source, Source::Table(t) if t == "memberships").then(|| "user_id".into());
        match t.as_str() {
            "memberships" => eq(&|a, b| of_r("user_id", a) && self.is_caller(b)), // 2c
            "users" => {
                eq(&|a, b| of_r("id", a) && (self.is_caller(b) || restricted(b, &member_user)))
                    || in_sub("id", &user_subquery)
            }
            "idempotency_keys" => eq(&|a, b| of_r("user_id", a) && self.is_caller(b)),
            "rate_limits" => eq(&|a, b| of_r("key", a) && self.is_caller(b)), // 2e
            _ => false,
        }
    }

    /// `SELECT tenant_id FROM me|mine [WHERE ...]`, `me`/`mine` being this statement's CTE.
    /// `SELECT tenant_id FROM me|mine [WHERE ...]`.
    fn is_scope_subquery(&self, q: &Query) -> bool {
        let Some((s, (alias, table))) = single_select(q).and_then(|s| Some((s, sole_table(s)?))) else { return false };
        self.cte(&table).is_some_and(|c| c.scope)
            && matches!(projected(s).as_slice(), [Some(e)] if column_of(e, &alias).as_deref() == Some("tenant_id"))
    }

    /// The predicates an exemption of `r` requires, if it has one and they hold.
    fn exemption(&self, r: &Ref, conj: &[&Expr]) -> Option<Vec<*const Expr>> {
        let (Source::Table(t), q) = (&r.source, self.stmt.q.as_str()) else { return None };
        EXEMPTIONS.iter().find(|(name, table, _)| *name == q && (table == t || *table == "*"))?;
        let of_r = |col: &str, x: &Expr| self.column(x).is_some_and(|(id, c)| id == r.id && c == col);
        let find = |f: &dyn Fn(&Expr) -> bool| conj.iter().find(|c| f(c)).map(|c| *c as *const Expr);
        let eq_param = |col: &str, p: Option<&str>| {
            find(&|c| {
                sides(c, Op::Eq)
                    .iter()
                    .any(|(a, b)| of_r(col, a) && placeholder(b).is_some_and(|x| p.is_none_or(|p| p == x)))
            })
        };
        match q {
            "UserRegister" => Some(vec![eq_param("issuer", None)?, eq_param("subject", None)?]),
            "InvitationAccept" if t == "invitations" => Some(vec![eq_param("code_hash", Some("$1"))?]),
            "InvitationAccept" => {
                // The tenant of the invitation read by its code (the `inv` CTE, restricted above).
                let col = if t == "tenants" { "id" } else { "tenant_id" };
                let of_inv = |x: &Expr| strip(x).to_string() == "(SELECT tenant_id FROM inv)";
                Some(vec![find(&|c| sides(c, Op::Eq).iter().any(|(a, b)| of_r(col, a) && of_inv(b)))?])
            }
            "IdemCleanup" => {
                let expired = |c: &Expr| {
                    sides(c, Op::Lt).first().is_some_and(|(a, b)| of_r("expires_at", a) && b.to_string() == "now()")
                };
                // (user_id, tenant_id, key) IN (SELECT e.user_id, e.tenant_id, e.key FROM idempotency_keys e ...)
                let key = ["user_id", "tenant_id", "key"];
                let key_in = |c: &Expr| match strip(c) {
                    Expr::InSubquery { expr, subquery, negated: false } => {
                        let of_key = |cols: &[Expr]| cols.len() == 3 && cols.iter().zip(key).all(|(c, k)| of_r(k, c));
                        let lhs = matches!(&**expr, Expr::Tuple(cols) if of_key(cols));
                        let Some((s, (alias, table))) = single_select(subquery).and_then(|s| Some((s, sole_table(s)?)))
                        else {
                            return false;
                        };
                        let cols = projected(s);
                        let rhs = cols.len() == 3
                            && cols
                                .iter()
                                .zip(key)
                                .all(|(c, k)| c.and_then(|c| column_of(c, &alias)).as_deref() == Some(k));
                        lhs && rhs && table == "idempotency_keys"
                    }
                    _ => false,
                };
                Some(vec![find(&expired).or_else(|| find(&key_in))?])
            }
            "PurgeTenant" => {
                let mut relied = vec![eq_param(tenant_column(t)?, Some("$1"))?];
                if r.target {
                    let gated = conj.iter().find_map(|c| match strip(c) {
                        Expr::Exists { subquery, negated: false } => {
                            let gate = &self.cte(&sole_table(single_select(subquery)?)?.1)?.gate;
                            (!gate.is_empty()).then(|| [vec![*c as *const Expr], gate.clone()].concat())
                        }
                        _ => None,
                    });
                    relied.extend(gated?);
                }
                Some(relied)
            }
            "OrphanTenants" if !r.target => {
                self.levels.iter().rev().map(|l| &l.orphan_gate).find(|g| !g.is_empty()).cloned()
            }
            _ => None,
        }
    }

    /// Rule 5.
    pub(super) fn check_insert(&mut self, ins: &Insert) {
        self.report.judged += 1;
        let table = match &ins.table {
            TableObject::TableName(n) => last_name(n),
            other => other.to_string(),
        };
        let known = tenant_column(&table).or(owner_column(&table)).is_some();
        self.report.scoped += usize::from(known);
        let column = match (tenant_column(&table), owner_column(&table)) {
            (Some(_), _) if table == "tenants" => None, // a new tenant: a taken id fails on the primary key
            (Some(c), _) => Some((c, true)),
            (None, Some(c)) => Some((c, false)),
            (None, None) => {
                self.violation(format!("INSERT into unknown table `{table}`"));
                None
            }
        };
        if matches!(&ins.on, Some(OnInsert::OnConflict(c)) if matches!(c.action, OnConflictAction::DoUpdate(_)))
            || matches!(&ins.on, Some(OnInsert::DuplicateKeyUpdate(_)))
        {
            self.violation(format!("INSERT INTO {table} ... ON CONFLICT DO UPDATE"));
        }
        if let Some((column, tenant)) = column {
            match self.insert_value(ins, column, tenant) {
                Some(value) => self.report.relied.push(value),
                None => self.violation(format!("INSERT INTO {table}: `{column}` is not from the caller's scope")),
            }
        }
        match &ins.source {
            Some(source) => self.check_query(source),
            None => self.violation("INSERT without a query".into()),
        }
        self.subqueries_in(&ins.returning);
    }

    /// The value an INSERT gives `column`, if rule 5 accepts it: the caller (an owner column), or
    /// a tenant column returned by a scope or DML CTE, all FROM items being such CTEs.
    fn insert_value(&self, ins: &Insert, column: &str, tenant: bool) -> Option<*const Expr> {
        let index = ins.columns.iter().position(|c| last_name(c) == column)?;
        let s = single_select(ins.source.as_ref()?)?;
        let value = projected(s).get(index).copied().flatten()?;
        // 2e: a rate-limit row of the caller's own budget.
        if tenant && column == "key" && self.is_caller(value) {
            return Some(value as *const Expr);
        }
        if !tenant {
            return self.is_caller(value).then_some(value as *const Expr);
        }
        let mut items = vec![];
        for f in
            s.from.iter().flat_map(|twj| std::iter::once(&twj.relation).chain(twj.joins.iter().map(|j| &j.relation)))
        {
            let (alias, name) = table_of(f)?;
            items.push((alias, self.cte(&name).filter(|c| c.scope || c.dml)?));
        }
        let (alias, col) = match (strip(value), items.as_slice()) {
            (Expr::CompoundIdentifier(p), _) if p.len() == 2 => (p[0].value.clone(), p[1].value.to_lowercase()),
            (Expr::Identifier(c), [(alias, _)]) => (alias.clone(), c.value.to_lowercase()),
            _ => return None,
        };
        let (_, cte) = items.iter().find(|(a, _)| *a == alias)?;
        (cte.tenant_output.as_deref() == Some(col.as_str())).then_some(value as *const Expr)
    }

    /// No UPDATE moves a row to another tenant or owner.
    pub(super) fn no_owner_change(&mut self, u: &Update) {
        let Some((_, table)) = table_of(&u.table.relation) else { return };
        for a in &u.assignments {
            let columns = match &a.target {
                AssignmentTarget::ColumnName(c) => vec![c],
                AssignmentTarget::Tuple(cs) => cs.iter().collect(),
            };
            for c in columns.into_iter().map(last_name) {
                if [tenant_column(&table), owner_column(&table)].contains(&Some(c.as_str())) {
                    self.violation(format!("UPDATE {table} sets `{c}`"));
                }
            }
        }
    }
}
