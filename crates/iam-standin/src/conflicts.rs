//! Optimistic-concurrency conflicts on demand, as Aurora DSQL reports them: a share of the
//! client's `COMMIT`s fail with SQLSTATE 40001 (`OC000`), the transaction rolled back.
//!
//! The relay reads the protocol's messages in both directions. A simple-query `COMMIT` chosen
//! to fail goes upstream as `ROLLBACK`; the answer to it (found by counting `ReadyForQuery`
//! messages, one per simple query and one per `Sync`) has its `CommandComplete` replaced by the
//! error. Everything else passes through unchanged.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use crate::{message, read_message};

/// What decides which commits fail, and counts them.
#[derive(Debug, Default)]
pub(crate) struct Conflicts {
    /// Out of 1000 commits.
    pub permille: AtomicU64,
    /// A deterministic sequence (so that a run can be repeated), advanced per commit.
    draws: AtomicU64,
    pub failed: AtomicU64,
}

impl Conflicts {
    fn this_commit_fails(&self) -> bool {
        let permille = self.permille.load(Ordering::SeqCst);
        if permille == 0 {
            return false;
        }
        // SplitMix64 of the draw number.
        let mut z = self.draws.fetch_add(1, Ordering::SeqCst).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        z % 1000 < permille
    }
}

/// An ErrorResponse as DSQL sends it for a conflicting commit.
fn conflict() -> Vec<u8> {
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', "40001"),
        (b'M', "change conflicts with another transaction, please retry: (OC000)"),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    message(b'E', &body)
}

/// Relays a logged-in session until either side ends it, failing commits as `conflicts` says.
pub(crate) async fn relay<C, U>(client: C, upstream: U, conflicts: &Conflicts) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut upstream_rx, mut upstream_tx) = tokio::io::split(upstream);
    // One entry per answer the server owes (a simple query or a Sync): whether it is a failed
    // commit's.
    let owed: Arc<Mutex<VecDeque<bool>>> = Arc::default();
    let to_server = async {
        loop {
            let (kind, body) = read_message(&mut client_rx).await?;
            let mut out = message(kind, &body);
            match kind {
                b'Q' => {
                    let sql =
                        String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).trim().to_ascii_uppercase();
                    let fail = sql == "COMMIT" && conflicts.this_commit_fails();
                    if fail {
                        conflicts.failed.fetch_add(1, Ordering::SeqCst);
                        out = message(b'Q', b"ROLLBACK\0");
                    }
                    owed.lock().unwrap_or_else(|e| e.into_inner()).push_back(fail);
                }
                b'S' => owed.lock().unwrap_or_else(|e| e.into_inner()).push_back(false),
                _ => {}
            }
            upstream_tx.write_all(&out).await?;
            if kind == b'X' {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    let to_client = async {
        loop {
            // Ends with the first error (the session's end), like the other direction.
            let (kind, body) = read_message(&mut upstream_rx).await?;
            let failing = owed.lock().unwrap_or_else(|e| e.into_inner()).front().copied().unwrap_or(false);
            let out = if kind == b'C' && failing { conflict() } else { message(kind, &body) };
            if kind == b'Z' {
                owed.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
            }
            client_tx.write_all(&out).await?;
        }
    };
    tokio::select! {
        r = to_server => r,
        r = to_client => r,
    }
}
