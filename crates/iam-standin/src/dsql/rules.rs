//! What Aurora DSQL refuses, statement by statement: AWS's `dsql-lint` where it has a rule, a
//! walk of the statement's syntax tree (the `sqlparser` that `dsql-lint` itself uses) where it
//! does not. Each rule names the AWS page it comes from; docs/dsql.md has the table.
//!
//! A statement that neither parser understands is passed on: the local PostgreSQL then decides,
//! so the stand-in never refuses what DSQL might accept because of a gap in a parser.

use std::ops::ControlFlow;

use sqlparser::{
    ast::{Expr, LockType, Query, Statement, Visit, Visitor},
    dialect::PostgreSqlDialect,
    parser::Parser,
    tokenizer::{Token, Tokenizer},
};

use dsql_lint::LintRule;

use super::errors::Refusal;

/// DSQL's answer to a locking clause other than `FOR UPDATE`, the only one AWS's
/// supported-SQL page lists
/// (<https://docs.aws.amazon.com/aurora-dsql/latest/userguide/working-with-postgresql-compatibility-supported-sql-features.html>).
/// Clusters have been seen to accept `FOR KEY SHARE` since; the stand-in keeps to the page.
const LOCKING: &str = "locking clauses other than FOR UPDATE are not supported";

/// What a statement does to a transaction, as far as DSQL's transaction rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Begin,
    /// `COMMIT` / `END`.
    Commit,
    /// `ROLLBACK` / `ABORT`.
    Rollback,
    /// Data definition: at most one per transaction, never with DML.
    Ddl,
    /// A write to `table` (its last name part, lower-cased): counted against the row limit.
    Write {
        table: String,
    },
    /// Anything else: reads, `SET`, `CALL`, unparsed statements.
    Other,
}

/// One statement of a query string: its kind, and the text to send on in its place (DSQL's
/// own syntax that PostgreSQL does not know, rewritten to the stand-in's emulation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    pub kind: Kind,
    pub rewrite: Option<String>,
}

/// Checks every statement of `sql` against DSQL's rules.
pub(crate) fn check(sql: &str) -> Result<Vec<Checked>, Refusal> {
    if sql.trim().is_empty() {
        return Ok(Vec::new());
    }
    lint(sql)?;
    words(sql)?;
    let Ok(statements) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        // Not SQL that the parser knows (DSQL's own `AWS IAM` spelling aside, which it does):
        // PostgreSQL decides.
        return Ok(vec![Checked { kind: Kind::Other, rewrite: None }]);
    };
    let single = statements.len() == 1;
    statements.iter().map(|s| statement(s, single)).collect()
}

/// `dsql-lint`'s rules. Its diagnostics name DSQL's unsupported features; a parse error of the
/// linter is no refusal (see the module's comment).
fn lint(sql: &str) -> Result<(), Refusal> {
    for d in dsql_lint::lint_sql(sql) {
        let rule = format!("{:?}", d.rule);
        if matches!(rule.as_str(), "ParseError" | "MultiDdlTransaction" | "MixedDdlDmlTransaction") {
            // The transaction rules are the relay's: it sees the whole transaction.
            continue;
        }
        let message = match d.rule {
            LintRule::UnsupportedCreateExtension => "unsupported statement: CreateExtension".into(),
            LintRule::UnsupportedCreateFunctionNonSql => "CREATE FUNCTION with language plpgsql not supported".into(),
            LintRule::UnsupportedCreateTrigger => "CREATE TRIGGER not supported".into(),
            LintRule::TempTable => "TEMPORARY or TEMP table not supported for CREATE TABLE".into(),
            LintRule::Truncate => "unsupported statement: Truncate".into(),
            LintRule::UnsupportedSavepoint
            | LintRule::UnsupportedReleaseSavepoint
            | LintRule::UnsupportedRollbackToSavepoint => "unsupported transaction statement: SAVEPOINT".into(),
            LintRule::UnsupportedLockTable => "unsupported statement: Lock".into(),
            LintRule::IndexAsync => "unsupported mode. please use CREATE INDEX ASYNC.".into(),
            LintRule::SequenceCacheMissing | LintRule::SequenceCache => {
                "CREATE SEQUENCE is not supported without an explicit cache size. \
                please define CACHE greater than or equal to 65536 or equal to 1"
                    .into()
            }
            _ => format!("unsupported statement: {} (dsql-lint: {rule})", d.message.trim_end_matches('.')),
        };
        return Err(Refusal::unsupported(&message));
    }
    Ok(())
}

/// Rules read from the statement's words (strings and comments skipped), which hold whether or
/// not the parser knows the statement: locking clauses other than `FOR UPDATE` (the parser has
/// no `FOR NO KEY UPDATE`).
fn words(sql: &str) -> Result<(), Refusal> {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else { return Ok(()) };
    let words: Vec<String> = tokens
        .iter()
        .filter_map(|t| match t {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            Token::Whitespace(_) => None,
            _ => Some(String::new()),
        })
        .collect();
    for at in 0..words.len() {
        let next = |n: usize| words.get(at + n).map(String::as_str).unwrap_or_default();
        if words[at] == "FOR" {
            // FOR SHARE, FOR KEY SHARE, FOR NO KEY UPDATE.
            if matches!((next(1), next(2), next(3)), ("SHARE", _, _) | ("KEY", "SHARE", _) | ("NO", "KEY", "UPDATE")) {
                return Err(Refusal::unsupported(LOCKING));
            }
        }
    }
    Ok(())
}

fn statement(s: &Statement, single: bool) -> Result<Checked, Refusal> {
    let mut walk = Walk::default();
    let _ = s.visit(&mut walk);
    if let Some(refusal) = walk.refusal {
        return Err(refusal);
    }
    let kind = match s {
        Statement::StartTransaction { .. } => Kind::Begin,
        Statement::Commit { .. } => Kind::Commit,
        Statement::Rollback { savepoint: Some(_), .. } => {
            return Err(Refusal::unsupported("unsupported transaction statement: SAVEPOINT"));
        }
        Statement::Rollback { .. } => Kind::Rollback,
        Statement::Lock(_) | Statement::LockTables { .. } => {
            return Err(Refusal::unsupported("unsupported statement: Lock"));
        }
        Statement::Truncate(_) => return Err(Refusal::unsupported("unsupported statement: Truncate")),
        Statement::Savepoint { .. } | Statement::ReleaseSavepoint { .. } => {
            return Err(Refusal::unsupported("unsupported transaction statement: SAVEPOINT"));
        }
        Statement::CreateTrigger(_) => return Err(Refusal::unsupported("CREATE TRIGGER not supported")),
        Statement::CreateTable(t) if t.temporary => {
            return Err(Refusal::unsupported("TEMPORARY or TEMP table not supported for CREATE TABLE"));
        }
        Statement::Insert(i) => Kind::Write { table: last_name(&i.table.to_string()) },
        Statement::Update(u) => Kind::Write { table: last_name(&u.table.relation.to_string()) },
        Statement::Delete(d) => Kind::Write { table: delete_target(d) },
        Statement::CreateIndex(index) if index.r#async => {
            let name = index.name.as_ref().map(|n| last_name(&n.to_string())).unwrap_or_default();
            let rewrite = single.then(|| super::sys::create_index_async(&s.to_string(), &name));
            if rewrite.is_none() {
                return Err(Refusal::unsupported(
                    "CREATE INDEX ASYNC must be the only statement of its query (stand-in)",
                ));
            }
            return Ok(Checked { kind: Kind::Ddl, rewrite });
        }
        Statement::AwsIamGrant { roles, arns } | Statement::AwsIamRevoke { roles, arns } => {
            let grant = matches!(s, Statement::AwsIamGrant { .. });
            let roles: Vec<String> = roles.iter().map(|r| r.value.clone()).collect();
            let arns: Vec<String> = arns.iter().map(|a| a.to_string().trim_matches('\'').to_string()).collect();
            return Ok(Checked { kind: Kind::Other, rewrite: Some(super::sys::iam_mapping(grant, &roles, &arns)) });
        }
        Statement::CreateTable(_)
        | Statement::AlterTable(_)
        | Statement::CreateIndex(_)
        | Statement::CreateView(_)
        | Statement::CreateRole(_)
        | Statement::CreateSchema { .. }
        | Statement::CreateFunction(_)
        | Statement::CreateDomain(_)
        | Statement::AlterRole { .. }
        | Statement::Drop { .. }
        | Statement::DropFunction(_)
        | Statement::Grant(_)
        | Statement::Revoke(_)
        | Statement::Comment { .. } => Kind::Ddl,
        _ => Kind::Other,
    };
    Ok(Checked { kind, rewrite: None })
}

/// The table a `DELETE` removes rows from.
fn delete_target(d: &sqlparser::ast::Delete) -> String {
    let from = match &d.from {
        sqlparser::ast::FromTable::WithFromKeyword(t) | sqlparser::ast::FromTable::WithoutKeyword(t) => t,
    };
    from.first().map(|t| last_name(&t.relation.to_string())).unwrap_or_default()
}

/// `public.todos` -> `todos`, `"Todos"` -> `todos`.
fn last_name(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).trim_matches('"').to_ascii_lowercase()
}

/// The rules found anywhere inside a statement (subqueries, CTEs, expressions).
#[derive(Default)]
struct Walk {
    refusal: Option<Refusal>,
}

impl Visitor for Walk {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        for lock in &query.locks {
            if lock.lock_type != LockType::Update {
                // Also `FOR NO KEY UPDATE`, which the parser reads as a share lock it cannot name.
                self.refusal = Some(Refusal::unsupported(LOCKING));
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        let Expr::Function(f) = expr else { return ControlFlow::Continue(()) };
        let name = last_name(&f.name.to_string());
        // DSQL has no advisory locks (AWS's migration guides turn them off in every framework)
        // and no `lastval()`; its answer is a guess that matches PostgreSQL's for a missing
        // function.
        if name.starts_with("pg_advisory") || name.starts_with("pg_try_advisory") || name == "lastval" {
            self.refusal = Some(Refusal::undefined_function(&name));
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(sql: &str) -> Vec<Kind> {
        check(sql).unwrap_or_else(|r| panic!("{sql}: refused: {r:?}")).into_iter().map(|c| c.kind).collect()
    }

    #[test]
    fn the_projects_kinds_of_statement_are_told_apart() {
        assert_eq!(kinds("BEGIN READ ONLY"), [Kind::Begin]);
        assert_eq!(kinds("COMMIT"), [Kind::Commit]);
        assert_eq!(kinds("ROLLBACK"), [Kind::Rollback]);
        assert_eq!(kinds("DELETE FROM public.todos WHERE tenant_id = $1"), [Kind::Write { table: "todos".into() }]);
        assert_eq!(kinds("INSERT INTO users (id) VALUES ($1)"), [Kind::Write { table: "users".into() }]);
        assert_eq!(kinds("UPDATE memberships SET role = $1"), [Kind::Write { table: "memberships".into() }]);
        assert_eq!(kinds("CREATE TABLE IF NOT EXISTS t (id uuid PRIMARY KEY)"), [Kind::Ddl]);
        assert_eq!(kinds("GRANT SELECT ON t TO app_runtime"), [Kind::Ddl]);
        assert_eq!(kinds("SELECT 1 FROM t FOR UPDATE"), [Kind::Other]);
        assert!(kinds("").is_empty());
    }

    #[test]
    fn dsql_syntax_is_rewritten_to_the_emulation() {
        let c = check("CREATE UNIQUE INDEX ASYNC IF NOT EXISTS k ON users (issuer, subject)").unwrap();
        assert_eq!(c[0].kind, Kind::Ddl);
        assert!(c[0].rewrite.as_deref().is_some_and(|r| r.contains("sys.__create_index_async")), "{c:?}");
        let c = check("AWS IAM GRANT app_runtime TO 'arn:aws:iam::123456789012:role/r'").unwrap();
        assert!(c[0].rewrite.as_deref().is_some_and(|r| r.contains("arn:aws:iam::123456789012:role/r")), "{c:?}");
    }
}
