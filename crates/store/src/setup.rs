//! What the store's connections get after their login (a [`Setup`] for the connector): the
//! statements of the engine in `Q::ALL` order, their recording variants, the runtime role's
//! self-check and, for a dedicated database, the check of its schema version. The connector
//! runs it; this module decides it.

use std::sync::Arc;

use pgconn::{Check, Setup};

use crate::{Engine, Q, idempotency};

/// The setup of a connection to a database of `engine`; `dedicated`: the description of a
/// dedicated database, whose schema must be this binary's (every migration applied), or its
/// tenants are refused with 503 rather than served with the wrong schema.
pub(crate) fn plan(engine: Engine, dedicated: Option<String>) -> Setup {
    let once: Check = Arc::new(move |client| Box::pin(schema::check_runtime_role_for(client, engine)));
    let each = dedicated.map(|db| -> Check {
        let db: Arc<str> = db.into();
        Arc::new(move |client| {
            let db = db.clone();
            Box::pin(async move { schema::check_schema(client, &db).await })
        })
    });
    Setup {
        statements: Q::ALL.iter().map(|&q| statement_sql(engine, q)).collect(),
        variants: Arc::new(move || {
            idempotency::recorded_statements_for(engine).into_iter().map(|r| (r.first, r.more)).collect()
        }),
        once: Some(once),
        each,
    }
}

/// The text of `q` on `engine`.
fn statement_sql(engine: Engine, q: Q) -> &'static str {
    match engine {
        Engine::Postgres => q.sql(),
        Engine::Dsql => &crate::dsql::STATEMENTS[q as usize].sql,
    }
}
