//! The relay of a logged-in DSQL session: it reads the protocol's messages both ways, refuses
//! and rewrites statements ([`super::rules`]), keeps DSQL's transaction rules and limits, and
//! turns PostgreSQL's lock waits and serialization failures into DSQL's conflicts.
//!
//! How a refusal reaches the client with the transaction state DSQL would leave: the refused
//! statement goes on as `SELECT 1 FROM "dsql_refused_<n>"`, which fails in PostgreSQL too (so a
//! transaction is aborted, and the rest of a pipeline skipped, exactly as the server does), and
//! that error is replaced by refusal `n` on its way back. A commit that a limit (or the fault
//! knob) refuses goes on as `ROLLBACK`, whose answer is replaced by the refusal. The commit is
//! decided once every answer before it has come back: the relay then asks the server, in the
//! transaction, how many rows it changed (`pg_stat_xact_user_tables`), and keeps that answer
//! to itself. The client's round trips are unchanged (its statements were all sent).

use std::{
    collections::HashMap,
    sync::{Mutex, atomic::Ordering},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, AsyncWriteExt},
    sync::Notify,
};

use super::{
    errors::{Refusal, code_of, fields},
    rules::{self, Kind},
    shared::{Owed, Session, Shared, changes_answer, guard},
    transaction::{Tx, ask_changes, simple, simple_without_rules},
};
use crate::{message, read_message};

/// A NUL-terminated string at the start of `body`, and the rest.
fn cstr(body: &[u8]) -> (String, &[u8]) {
    let end = body.iter().position(|b| *b == 0).unwrap_or(body.len());
    (String::from_utf8_lossy(&body[..end]).into_owned(), body.get(end + 1..).unwrap_or_default())
}

/// The bytes of the values bound by a `Bind` body after its two names.
fn bound_bytes(rest: &[u8]) -> u64 {
    let read_i16 = |b: &[u8], at: usize| b.get(at..at + 2).map(|s| i16::from_be_bytes([s[0], s[1]]) as usize);
    let Some(formats) = read_i16(rest, 0) else { return 0 };
    let mut at = 2 + 2 * formats;
    let Some(params) = read_i16(rest, at) else { return 0 };
    at += 2;
    let mut total = 0u64;
    for _ in 0..params {
        let Some(len) = rest.get(at..at + 4).map(|s| i32::from_be_bytes([s[0], s[1], s[2], s[3]])) else { break };
        at += 4;
        if len > 0 {
            total += len as u64;
            at += len as usize;
        }
    }
    total
}

/// A `Parse` of the unnamed statement with `sql` and no parameter types.
fn parse_message(name: &str, sql: &str, rest_types: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(sql.len() + name.len() + 8);
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    body.extend_from_slice(sql.as_bytes());
    body.push(0);
    if rest_types.is_empty() {
        body.extend_from_slice(&0i16.to_be_bytes());
    } else {
        body.extend_from_slice(rest_types);
    }
    message(b'P', &body)
}

/// Relays a logged-in session until either side ends it.
pub(crate) async fn relay<C, U>(client: C, upstream: U, session: Session<'_>) -> std::io::Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut upstream_rx, mut upstream_tx) = tokio::io::split(upstream);
    let shared = Mutex::new(Shared::default());
    let answered = Notify::new();
    let lock = || guard(&shared);
    let to_server = async {
        let mut tx = Tx::default();
        // Prepared statements' kinds by name, and portals' (kind, bytes bound).
        let mut statements: HashMap<String, Kind> = HashMap::new();
        let mut portals: HashMap<String, (Kind, u64)> = HashMap::new();
        loop {
            let (kind, body) = read_message(&mut client_rx).await?;
            let mut out = message(kind, &body);
            match kind {
                b'Q' => {
                    let (sql, _) = cstr(&body);
                    let (text, entries) = match session.limits {
                        None => simple_without_rules(&sql, session.conflicts),
                        Some(limits) => {
                            let upstream = &mut upstream_tx;
                            simple(&sql, &mut tx, limits, &shared, &answered, upstream, &session).await?
                        }
                    };
                    if text != sql {
                        let mut q = text.into_bytes();
                        q.push(0);
                        out = message(b'Q', &q);
                    }
                    let mut s = lock();
                    s.owed.extend(entries);
                    s.owed.push_back(Owed::End);
                }
                b'P' if session.limits.is_some() => {
                    let (name, rest) = cstr(&body);
                    let (sql, types) = cstr(rest);
                    let (text, stmt_kind) = match rules::check(&sql) {
                        Err(refusal) => (Some(lock().marker(refusal)), Kind::Other),
                        Ok(c) if c.len() == 1 => (c[0].rewrite.clone(), c[0].kind.clone()),
                        Ok(_) => (None, Kind::Other),
                    };
                    statements.insert(name.clone(), stmt_kind);
                    if let Some(text) = text {
                        out = parse_message(&name, &text, types);
                    }
                }
                b'B' if let Some(limits) = session.limits => {
                    let (portal, rest) = cstr(&body);
                    let (statement, rest) = cstr(rest);
                    let stmt_kind = statements.get(&statement).cloned().unwrap_or(Kind::Other);
                    match tx.step(&stmt_kind, limits) {
                        Ok(()) => {
                            portals.insert(portal, (stmt_kind, bound_bytes(rest)));
                        }
                        Err(refusal) => out = parse_message("", &lock().marker(refusal), &[]),
                    }
                }
                b'E' if session.limits.is_some() => {
                    let (portal, _) = cstr(&body);
                    if let Some((Kind::Write { .. }, bytes)) = portals.get(&portal) {
                        tx.bytes += bytes;
                    }
                    lock().owed.push_back(Owed::Statement { replace: None });
                }
                b'S' => {
                    lock().owed.push_back(Owed::End);
                    if !tx.in_block {
                        tx.reset();
                    }
                }
                b'C' if session.limits.is_some() && body.first() == Some(&b'S') => {
                    statements.remove(&cstr(&body[1..]).0);
                }
                _ => {}
            }
            upstream_tx.write_all(&out).await?;
            if std::mem::take(&mut tx.needs_baseline) && kind == b'Q' {
                ask_changes(&mut upstream_tx, &shared, None).await?;
            }
            if kind == b'X' {
                return Ok::<(), std::io::Error>(());
            }
        }
    };
    let to_client = async {
        loop {
            // Ends with the first error (the session's end), like the other direction.
            let (kind, body) = read_message(&mut upstream_rx).await?;
            if matches!(lock().owed.front(), Some(Owed::Changes(_))) {
                changes_answer(kind, &body, &shared);
                continue;
            }
            let out = match kind {
                b'C' | b's' | b'I' => {
                    let mut s = lock();
                    let front = match s.owed.front() {
                        Some(Owed::Statement { .. }) => s.owed.pop_front(),
                        _ => None,
                    };
                    match front {
                        Some(Owed::Statement { replace: Some(refusal) }) => refusal.to_message(),
                        _ => message(kind, &body),
                    }
                }
                b'E' => translate(&body, &shared, &session).unwrap_or_else(|| message(kind, &body)),
                b'Z' => {
                    let mut s = lock();
                    while let Some(owed) = s.owed.pop_front() {
                        if matches!(owed, Owed::End) {
                            break;
                        }
                    }
                    drop(s);
                    answered.notify_waiters();
                    message(kind, &body)
                }
                _ => message(kind, &body),
            };
            client_tx.write_all(&out).await?;
        }
    };
    tokio::select! {
        r = to_server => r,
        r = to_client => r,
    }
}

/// An upstream error that DSQL reports its own way: a refusal's marker, a lock wait or a
/// serialization failure (DSQL's OC000), an index key over the limit.
fn translate(body: &[u8], shared: &Mutex<Shared>, session: &Session<'_>) -> Option<Vec<u8>> {
    let fields = fields(body);
    let field = |k: u8| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| v.as_str()).unwrap_or_default();
    let code = code_of(body)?;
    if code == "42P01"
        && let Some(n) = field(b'M').split("\"dsql_refused_").nth(1).and_then(|r| r.split('"').next())
        && let Some(refusal) = n.parse::<u64>().ok().and_then(|n| guard(shared).markers.remove(&n))
    {
        session.counters.refused.fetch_add(1, Ordering::SeqCst);
        return Some(refusal.to_message());
    }
    session.limits?;
    if matches!(code.as_str(), "40001" | "40P01" | "55P03") {
        session.counters.conflicts.fetch_add(1, Ordering::SeqCst);
        return Some(Refusal::conflict().to_message());
    }
    if code == "23514" && field(b'n').starts_with("dsql_key_") {
        session.counters.refused.fetch_add(1, Ordering::SeqCst);
        return Some(Refusal::key_too_long().to_message());
    }
    None
}
