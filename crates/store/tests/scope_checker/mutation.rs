//! The mutation test's mutants: the statement with one predicate the checker relied on replaced
//! by `TRUE`.

use std::{
    collections::{HashMap, HashSet},
    ops::ControlFlow,
};

use sqlparser::ast::{Expr, Statement, Value, visit_expressions_mut};

/// For each distinct expression of `relied`, `ast` re-rendered with that expression replaced by
/// `TRUE`; `None` when one of them is not an expression of `ast`.
pub fn mutants(ast: &mut Statement, relied: &[*const Expr]) -> Option<Vec<String>> {
    // Every expression's position in a post-order walk, the same in a clone.
    let (mut position, mut n) = (HashMap::new(), 0);
    let _ = visit_expressions_mut(ast, |e| {
        position.insert(&*e as *const Expr, n);
        n += 1;
        ControlFlow::<()>::Continue(())
    });
    let targets: HashSet<usize> = relied.iter().map(|p| position.get(p).copied()).collect::<Option<_>>()?;
    let mutant = |at| {
        let (mut mutant, mut n) = (ast.clone(), 0);
        let _ = visit_expressions_mut(&mut mutant, |e| {
            if n == at {
                *e = Expr::Value(Value::Boolean(true).into());
            }
            n += 1;
            ControlFlow::<()>::Continue(())
        });
        mutant.to_string()
    };
    Some(targets.into_iter().map(mutant).collect())
}
