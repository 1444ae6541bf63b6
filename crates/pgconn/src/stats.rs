//! The store's counters (round trips, logins, bytes, retries), which the tests and the
//! benchmark count instead of timing.

use std::sync::{Arc, atomic::Ordering};

use crate::stream::Counters;

/// Counters of what the store did, for tests and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Times the client had to wait for the server before it could send more.
    pub round_trips: u64,
    /// Physical connections opened (logins).
    pub connects: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Transactions run again: a read after a lost connection, a registration that lost a race.
    pub retries: u64,
}

impl std::ops::AddAssign for StatsSnapshot {
    fn add_assign(&mut self, o: Self) {
        self.round_trips += o.round_trips;
        self.connects += o.connects;
        self.connect_failures += o.connect_failures;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.retries += o.retries;
    }
}

#[derive(Debug, Default)]
pub struct Stats {
    pub io: Arc<Counters>,
    pub connects: std::sync::atomic::AtomicU64,
    pub connect_failures: std::sync::atomic::AtomicU64,
    pub retries: std::sync::atomic::AtomicU64,
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            round_trips: self.io.round_trips.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            connect_failures: self.connect_failures.load(Ordering::Relaxed),
            bytes_sent: self.io.bytes_sent.load(Ordering::Relaxed),
            bytes_received: self.io.bytes_received.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}
