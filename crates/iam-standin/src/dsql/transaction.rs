//! A DSQL session's transaction as the relay follows it: DSQL's transaction rules statement by
//! statement, and the decision whether a `COMMIT` may go on (its rows with their index entries,
//! bytes and age against the limits; the fault knob's conflicts).

use std::{
    sync::{Mutex, atomic::Ordering},
    time::Instant,
};

use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    sync::{Notify, oneshot},
};

use super::{
    Limits,
    errors::Refusal,
    rules::{self, Kind},
    shared::{CHANGES_SQL, Owed, Session, Shared, guard},
};
use crate::{conflicts::Conflicts, message};

/// The open transaction, as the client's side of the relay sees it.
#[derive(Debug, Default)]
pub(crate) struct Tx {
    pub(crate) in_block: bool,
    /// Just begun: the relay asks for the baseline of its changes.
    pub(crate) needs_baseline: bool,
    pub(crate) ddl: u32,
    pub(crate) writes: u32,
    pub(crate) bytes: u64,
    pub(crate) started: Option<Instant>,
}

impl Tx {
    pub(crate) fn reset(&mut self) {
        *self = Self::default();
    }

    /// DSQL's transaction rules for one more statement of `kind`.
    pub(crate) fn step(&mut self, kind: &Kind, limits: &Limits) -> Result<(), Refusal> {
        if let Some(started) = self.started
            && started.elapsed() > limits.transaction_age
        {
            return Err(Refusal::too_old(limits.transaction_age.as_secs()));
        }
        match kind {
            Kind::Begin => {
                self.reset();
                self.in_block = true;
                self.needs_baseline = true;
                self.started = Some(Instant::now());
            }
            Kind::Ddl if self.writes > 0 => return Err(Refusal::ddl_with_dml()),
            Kind::Ddl if self.ddl > 0 => return Err(Refusal::multiple_ddl()),
            Kind::Ddl => self.ddl += 1,
            Kind::Write { .. } if self.ddl > 0 => return Err(Refusal::ddl_with_dml()),
            Kind::Write { .. } => self.writes += 1,
            Kind::Commit | Kind::Rollback => self.reset(),
            Kind::Other => {}
        }
        Ok(())
    }
}

/// A simple query without DSQL's rules: only the commit-failure knob.
pub(crate) fn simple_without_rules(sql: &str, conflicts: &Conflicts) -> (String, Vec<Owed>) {
    if sql.trim().eq_ignore_ascii_case("COMMIT") && conflicts.this_commit_fails() {
        conflicts.failed.fetch_add(1, Ordering::SeqCst);
        return ("ROLLBACK".into(), vec![Owed::Statement { replace: Some(Refusal::conflict()) }]);
    }
    (sql.to_string(), Vec::new())
}

/// A simple query under DSQL's rules: the text to send on and the answers it is owed.
pub(crate) async fn simple<W: AsyncWrite + Unpin>(
    sql: &str,
    tx: &mut Tx,
    limits: &Limits,
    shared: &Mutex<Shared>,
    answered: &Notify,
    upstream: &mut W,
    session: &Session<'_>,
) -> std::io::Result<(String, Vec<Owed>)> {
    let checked = match rules::check(sql) {
        Ok(c) => c,
        Err(refusal) => return Ok((guard(shared).marker(refusal), Vec::new())),
    };
    if let [only] = checked.as_slice()
        && matches!(only.kind, Kind::Commit | Kind::Rollback)
    {
        let commit = only.kind == Kind::Commit;
        let refusal =
            if commit && tx.in_block { decide(tx, limits, shared, answered, upstream, session).await? } else { None };
        let refusal = refusal.or_else(|| {
            (commit && session.conflicts.this_commit_fails()).then(|| {
                session.conflicts.failed.fetch_add(1, Ordering::SeqCst);
                Refusal::conflict()
            })
        });
        tx.reset();
        return Ok(match refusal {
            Some(r) => ("ROLLBACK".into(), vec![Owed::Statement { replace: Some(r) }]),
            None => (sql.to_string(), vec![Owed::Statement { replace: None }]),
        });
    }
    // Statements outside a block run as one implicit transaction (ended below).
    let mut owed = Vec::new();
    let mut texts = Vec::new();
    for c in &checked {
        if let Err(refusal) = tx.step(&c.kind, limits) {
            if !tx.in_block {
                tx.reset();
            }
            return Ok((guard(shared).marker(refusal), Vec::new()));
        }
        if matches!(c.kind, Kind::Write { .. }) {
            tx.bytes += sql.len() as u64;
        }
        owed.push(Owed::Statement { replace: None });
        texts.extend(c.rewrite.clone());
    }
    if !tx.in_block {
        tx.reset();
    }
    let text = if texts.is_empty() { sql.to_string() } else { texts.join("; ") };
    Ok((text, owed))
}

/// Sends [`CHANGES_SQL`], whose answer the relay keeps (see [`Owed::Changes`]).
pub(crate) async fn ask_changes<W: AsyncWrite + Unpin>(
    upstream: &mut W,
    shared: &Mutex<Shared>,
    send: Option<oneshot::Sender<Option<u64>>>,
) -> std::io::Result<()> {
    guard(shared).owed.push_back(Owed::Changes(send));
    let mut q = CHANGES_SQL.as_bytes().to_vec();
    q.push(0);
    upstream.write_all(&message(b'Q', &q)).await
}

/// Whether the open transaction may commit: once every answer before the `COMMIT` is in, its
/// changed rows with their index entries (asked of the server in the transaction), its bytes
/// and its age, against `limits`.
async fn decide<W: AsyncWrite + Unpin>(
    tx: &Tx,
    limits: &Limits,
    shared: &Mutex<Shared>,
    answered: &Notify,
    upstream: &mut W,
    session: &Session<'_>,
) -> std::io::Result<Option<Refusal>> {
    loop {
        let notified = answered.notified();
        if guard(shared).owed.is_empty() {
            break;
        }
        notified.await;
    }
    let (send, receive) = oneshot::channel();
    ask_changes(upstream, shared, Some(send)).await?;
    // No answer: the session is ending, and the commit with it.
    let changes = receive.await.ok().flatten().unwrap_or(0);
    session.counters.saw_rows(changes);
    let refusal = if changes > limits.rows_per_transaction {
        Some(Refusal::too_many_rows())
    } else if tx.bytes > limits.bytes_per_transaction {
        Some(Refusal::too_many_bytes(limits.bytes_per_transaction))
    } else if tx.started.is_some_and(|s| s.elapsed() > limits.transaction_age) {
        Some(Refusal::too_old(limits.transaction_age.as_secs()))
    } else {
        None
    };
    if refusal.is_some() {
        session.counters.refused.fetch_add(1, Ordering::SeqCst);
    }
    Ok(refusal)
}
