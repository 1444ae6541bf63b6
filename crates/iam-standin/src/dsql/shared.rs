//! What both directions of a DSQL session's relay share: the session's settings, the answers
//! the server owes in order, the refusals waiting for their marker's error, and the answer to
//! the relay's own question about a transaction's changes.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, MutexGuard},
};

use tokio::sync::oneshot;

use super::{Counters, Limits, errors::Refusal};
use crate::conflicts::Conflicts;

/// What the relay needs of the session.
pub(crate) struct Session<'a> {
    /// DSQL's rules and limits; `None`: only the commit-failure knob acts (Aurora mode).
    pub limits: Option<&'a Limits>,
    pub counters: &'a Counters,
    pub conflicts: &'a Conflicts,
}

/// Asked of the server in the open transaction, before its `COMMIT` goes on: the rows it
/// inserted, updated and deleted, each with the entries of the table's secondary indexes
/// (PostgreSQL counts a transaction's changes per table, whatever statement made them: a
/// `DELETE` inside a `WITH` too).
pub(crate) const CHANGES_SQL: &str = "SELECT coalesce(sum((s.n_tup_ins + s.n_tup_upd + s.n_tup_del) * (1 + (SELECT count(*) \
     FROM pg_index i WHERE i.indrelid = s.relid AND NOT i.indisprimary))), 0)::text FROM pg_stat_xact_user_tables s";

/// An answer the server owes, in order.
#[derive(Debug)]
pub(crate) enum Owed {
    /// A statement's `CommandComplete`, or the refusal to send in its place.
    Statement { replace: Option<Refusal> },
    /// The `ReadyForQuery` that ends a simple query or a `Sync`.
    End,
    /// The answer to [`CHANGES_SQL`], for the relay itself (nothing goes to the client): at a
    /// transaction's start, its baseline (PostgreSQL's counts include earlier transactions'
    /// not yet flushed to its statistics); before its commit, the count, sent here.
    Changes(Option<oneshot::Sender<Option<u64>>>),
}

pub(crate) fn guard(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// State both directions share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) owed: VecDeque<Owed>,
    /// Refusals by marker number.
    pub(crate) markers: HashMap<u64, Refusal>,
    pub(crate) next_marker: u64,
    /// The count of changes being read for [`Owed::Changes`].
    pub(crate) changes: Option<u64>,
    /// The count at the open transaction's start.
    pub(crate) baseline: u64,
}

impl Shared {
    /// The statement that fails upstream and comes back as `refusal`.
    pub(crate) fn marker(&mut self, refusal: Refusal) -> String {
        self.next_marker += 1;
        self.markers.insert(self.next_marker, refusal);
        format!("SELECT 1 FROM \"dsql_refused_{}\"", self.next_marker)
    }
}

/// One message of the answer to [`CHANGES_SQL`]: its row holds the count; its
/// `ReadyForQuery` hands the count over (none if the query failed, as in an aborted
/// transaction).
pub(crate) fn changes_answer(kind: u8, body: &[u8], shared: &Mutex<Shared>) {
    let mut s = guard(shared);
    match kind {
        b'D' => {
            // One column: its length, then its text.
            let value = body.get(6..).map(|v| String::from_utf8_lossy(v).into_owned());
            s.changes = value.and_then(|v| v.parse().ok());
        }
        b'E' => s.changes = None,
        b'Z' => {
            let count = s.changes.take();
            match s.owed.pop_front() {
                Some(Owed::Changes(Some(send))) => {
                    let baseline = s.baseline;
                    let _ = send.send(count.map(|c| c.saturating_sub(baseline)));
                }
                Some(Owed::Changes(None)) => s.baseline = count.unwrap_or(0),
                _ => {}
            }
        }
        _ => {}
    }
}
