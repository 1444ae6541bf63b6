//! The fault knobs and counters a running stand-in shares with its sessions.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64},
    },
    time::Duration,
};

use crate::{conflicts, dsql};

/// Fault knobs and counters, shared with the running stand-in.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) delay: Mutex<Duration>,
    pub(crate) refuse_logins: AtomicBool,
    pub(crate) refuse_connections: AtomicBool,
    pub(crate) accepted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) last_rejection: Mutex<Option<String>>,
    pub(crate) last_user: Mutex<Option<String>>,
    pub(crate) conflicts: conflicts::Conflicts,
    pub(crate) dsql: dsql::Counters,
    pub(crate) connection_rate: Mutex<dsql::Rate>,
}
