//! The walk: every statement, query level, CTE and table reference, in the scope of the
//! enclosing levels.

use std::{collections::HashSet, ops::ControlFlow};

use sqlparser::ast::{
    Cte, Expr, FromTable, JoinConstraint, JoinOperator, Query, SelectItem, SetExpr, Statement, TableFactor,
    TableWithJoins, UpdateTableFromKind, Visit, Visitor, visit_relations,
};

use super::{
    CteInfo, Level, Ref, Report, Source, Stmt,
    ast::{conjuncts, dml_of, marked_deleted, placeholder, single_select, strip, table_of, tenant_deleted},
    owner_column, tenant_column,
};

/// Checks, with the current scope, the outermost queries found under a node.
struct Subqueries<'c, 's> {
    checker: &'c mut Checker<'s>,
    depth: usize,
}

impl Visitor for Subqueries<'_, '_> {
    type Break = ();
    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<()> {
        if self.depth == 0 {
            self.checker.check_query(q);
        }
        self.depth += 1;
        ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
}

pub struct Checker<'s> {
    pub(super) stmt: &'s Stmt,
    pub(super) levels: Vec<Level>,
    pub(super) restricted: HashSet<usize>,
    pub(super) next_id: usize,
    pub(super) report: Report,
}

impl<'s> Checker<'s> {
    pub fn run(stmt: &'s Stmt, ast: &Statement) -> Report {
        let mut c = Checker { stmt, levels: vec![], restricted: HashSet::new(), next_id: 0, report: Report::default() };
        c.check_statement(ast);
        let mut relations = 0;
        let _ = visit_relations(ast, |_| {
            relations += 1;
            ControlFlow::<()>::Continue(())
        });
        if relations != c.report.judged {
            c.violation(format!(
                "the parser sees {relations} table references, the checker judged {}",
                c.report.judged
            ));
        }
        c.report
    }

    pub(super) fn violation(&mut self, what: String) {
        self.report.violations.push(what);
    }

    pub(super) fn subqueries_in<V: Visit>(&mut self, node: &V) {
        let _ = node.visit(&mut Subqueries { checker: self, depth: 0 });
    }

    pub(super) fn is_caller(&self, e: &Expr) -> bool {
        placeholder(e) == Some(self.stmt.caller.as_str())
    }

    pub(super) fn cte(&self, name: &str) -> Option<&CteInfo> {
        self.levels.iter().rev().flat_map(|l| l.ctes.iter().rev()).find(|c| c.name == name)
    }

    pub(super) fn find_ref(&self, id: usize) -> Option<&Ref> {
        self.levels.iter().flat_map(|l| &l.refs).find(|r| r.id == id)
    }

    /// The reference and column that `e` names: `alias.column` through the visible levels,
    /// innermost first; a bare `column` only when the current level has a single FROM item.
    pub(super) fn column(&self, e: &Expr) -> Option<(usize, String)> {
        match strip(e) {
            Expr::Identifier(c) => match self.levels.last()?.refs.as_slice() {
                [r] => Some((r.id, c.value.to_lowercase())),
                _ => None,
            },
            Expr::CompoundIdentifier(p) if p.len() == 2 => {
                let mut visible = self.levels.iter().rev().filter(|l| !l.hidden).flat_map(|l| &l.refs);
                visible.find(|r| r.name == p[0].value).map(|r| (r.id, p[1].value.to_lowercase()))
            }
            _ => None,
        }
    }

    /// The tenant column of a reference: a tenant table's, or `tenant_id` of `me`/`mine`.
    pub(super) fn tenant_column_of(&self, id: usize) -> Option<String> {
        match &self.find_ref(id)?.source {
            Source::Table(t) => tenant_column(t).map(str::to_string),
            Source::Cte(c) if c.scope => Some("tenant_id".into()),
            _ => None,
        }
    }

    fn check_statement(&mut self, s: &Statement) {
        match s {
            Statement::Query(q) => self.check_query(q),
            Statement::Insert(i) => self.check_insert(i),
            Statement::Update(u) => {
                let mut items = vec![(&u.table, true)];
                if let Some(UpdateTableFromKind::BeforeSet(f) | UpdateTableFromKind::AfterSet(f)) = &u.from {
                    items.extend(f.iter().map(|t| (t, false)));
                }
                self.enter_level(&items, u.selection.as_ref());
                self.no_owner_change(u);
                self.subqueries_in(&u.assignments);
                self.subqueries_in(&u.selection);
                self.subqueries_in(&u.returning);
                self.levels.pop();
            }
            Statement::Delete(d) => {
                let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &d.from;
                let mut items: Vec<_> = from.iter().map(|t| (t, true)).collect();
                items.extend(d.using.iter().flatten().map(|t| (t, false)));
                self.enter_level(&items, d.selection.as_ref());
                self.subqueries_in(&d.selection);
                self.subqueries_in(&d.returning);
                self.levels.pop();
            }
            other => self.violation(format!("unsupported statement: {other}")),
        }
    }

    pub(super) fn check_query(&mut self, q: &Query) {
        self.levels.push(Level::default());
        for cte in q.with.iter().flat_map(|w| &w.cte_tables) {
            self.check_cte(cte);
        }
        if q.with.as_ref().is_some_and(|w| w.recursive) {
            self.violation("WITH RECURSIVE".into());
        }
        self.check_body(&q.body);
        self.subqueries_in(&q.order_by);
        self.subqueries_in(&q.limit_clause);
        self.levels.pop();
    }

    fn check_body(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Select(s) => {
                let items: Vec<_> = s.from.iter().map(|t| (t, false)).collect();
                self.enter_level(&items, s.selection.as_ref());
                self.subqueries_in(&s.projection);
                self.subqueries_in(&s.selection);
                self.subqueries_in(&s.having);
                self.levels.pop();
            }
            SetExpr::Query(q) => self.check_query(q),
            SetExpr::SetOperation { left, right, .. } => {
                self.check_body(left);
                self.check_body(right);
            }
            SetExpr::Values(v) => self.subqueries_in(v),
            SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) => self.check_statement(s),
            other => self.violation(format!("unsupported query body: {other}")),
        }
    }

    /// Checks a CTE's body (and rule 1 for `me`/`mine`), then makes its name visible.
    fn check_cte(&mut self, cte: &Cte) {
        let name = cte.alias.name.value.clone();
        let scope = name == "me" || name == "mine";
        if scope && self.scope_cte(&name, &cte.query).is_none() {
            self.violation(format!("`{name}` is not the caller's memberships (rule 1): {}", cte.query));
        }
        self.check_query(&cte.query);
        let dml = dml_of(&cte.query.body);
        let tenant_output = match &dml {
            Some((table, returning)) => tenant_column(table).filter(|c| {
                let named = |e: &Expr| match e {
                    Expr::Identifier(i) => i.value == *c,
                    Expr::CompoundIdentifier(p) => p.len() == 2 && p[1].value == *c,
                    _ => false,
                };
                returning.iter().any(|i| matches!(i, SelectItem::UnnamedExpr(e) if named(e)))
            }),
            None => scope.then_some("tenant_id"),
        };
        let gate = match single_select(&cte.query) {
            Some(s) if self.stmt.q == "PurgeTenant" => tenant_deleted(s).unwrap_or_default(),
            _ => vec![],
        };
        let info = CteInfo { name, scope, dml: dml.is_some(), tenant_output: tenant_output.map(Into::into), gate };
        if let Some(level) = self.levels.last_mut() {
            level.ctes.push(info);
        }
    }

    /// Pushes the level of a FROM list (DML targets marked) and restricts its references; the
    /// caller checks the rest of its expressions and pops it.
    fn enter_level(&mut self, items: &[(&TableWithJoins, bool)], selection: Option<&Expr>) {
        let mut level = Level::default();
        let mut filters: Vec<Vec<&Expr>> = vec![]; // for each reference, the conjuncts that filter it
        let mut derived = vec![];
        for (twj, target) in items {
            let first = level.refs.len();
            self.add_ref(&mut level, &twj.relation, *target, &mut derived);
            filters.push(vec![]);
            for join in &twj.joins {
                self.add_ref(&mut level, &join.relation, false, &mut derived);
                filters.push(vec![]);
                let last = level.refs.len() - 1;
                let (on, filtered) = match &join.join_operator {
                    JoinOperator::Join(JoinConstraint::On(on)) | JoinOperator::Inner(JoinConstraint::On(on)) => {
                        (on, first..=last)
                    }
                    JoinOperator::Left(JoinConstraint::On(on)) | JoinOperator::LeftOuter(JoinConstraint::On(on)) => {
                        (on, last..=last)
                    }
                    _ => continue,
                };
                filters[filtered].iter_mut().for_each(|f| f.extend(conjuncts(on)));
            }
        }
        let wheres = selection.map(conjuncts).unwrap_or_default();
        filters.iter_mut().for_each(|f| f.extend(&wheres));
        if self.stmt.q == "OrphanTenants"
            && let Some(alias) = level.refs.first().map(|r| r.name.clone())
        {
            level.orphan_gate = marked_deleted(&wheres, &alias).map(|c| vec![c as *const Expr]).unwrap_or_default();
        }
        self.levels.push(level);
        self.restrict(&filters);
        let top = self.levels.len() - 1;
        for (subquery, lateral) in derived {
            self.levels[top].hidden = !lateral;
            self.check_query(subquery);
            self.levels[top].hidden = false;
        }
        for join in items.iter().flat_map(|(twj, _)| &twj.joins) {
            self.subqueries_in(&join.join_operator);
        }
    }

    fn add_ref<'q>(
        &mut self,
        level: &mut Level,
        f: &'q TableFactor,
        target: bool,
        derived: &mut Vec<(&'q Query, bool)>,
    ) {
        let (name, source) = match f {
            TableFactor::Table { name, args: None, .. } => {
                self.report.judged += 1;
                let (alias, table) = table_of(f).unwrap_or_default();
                let source = match self.cte(&table).filter(|_| name.0.len() == 1) {
                    Some(cte) => Source::Cte(cte.clone()),
                    None if tenant_column(&table).or(owner_column(&table)).is_some() => Source::Table(table),
                    None => {
                        self.violation(format!("unknown table `{table}`"));
                        Source::Other
                    }
                };
                (alias, source)
            }
            TableFactor::Derived { lateral, subquery, alias, .. } => {
                derived.push((&**subquery, *lateral));
                (alias.as_ref().map(|a| a.name.value.clone()).unwrap_or_default(), Source::Other)
            }
            other => {
                self.violation(format!("unsupported FROM item: {other}"));
                (String::new(), Source::Other)
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        match &source {
            Source::Cte(c) if c.scope => _ = self.restricted.insert(id),
            Source::Table(_) => self.report.scoped += 1,
            _ => {}
        }
        level.refs.push(Ref { id, name, source, target });
    }
}
