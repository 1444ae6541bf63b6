//! The cap on open connections to dedicated databases in one instance
//! (`DB_PLACEMENT_MAX_CONNECTIONS`): every such connection holds a permit while it is open, and a
//! connect that finds none closes the least recently used idle connection of another database.
//!
//! Connection lifecycle only: the pools it counts are [`Capped`] (the pool implements it), and
//! which pools share a cap is the placements' decision.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::{Error, Result};

/// A pool whose connections count against a [`Limiter`].
pub trait Capped: Send + Sync {
    /// Idle connections it holds.
    fn idle(&self) -> usize;
    /// Closes its idle connections.
    fn close_idle(&self);
    /// Closes it: its connections give their permits back.
    fn close(&self);
}

type Pool = Arc<dyn Capped>;

pub struct Limiter {
    permits: Arc<Semaphore>,
    /// Each dedicated database's pool and when a request last used it.
    pools: Mutex<Vec<(Uuid, Pool, Instant)>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("free", &self.permits.available_permits()).finish_non_exhaustive()
    }
}

impl Limiter {
    pub fn new(max: usize) -> Self {
        Self { permits: Arc::new(Semaphore::new(max)), pools: Mutex::default() }
    }

    /// Counts `pool` as database `id`'s; a pool it replaces (the registry's entry changed) is
    /// closed, so that its connection gives its permit back.
    pub fn register(&self, id: Uuid, pool: Pool) {
        let mut pools = self.pools.lock().expect("limiter lock");
        if let Some(old) = pools.iter().position(|e| e.0 == id) {
            let (_, replaced, _) = pools.swap_remove(old);
            replaced.close();
        }
        pools.push((id, pool, Instant::now()));
    }

    /// Database `id` is in use now.
    pub fn touch(&self, id: Uuid) {
        if let Some(entry) = self.pools.lock().expect("limiter lock").iter_mut().find(|e| e.0 == id) {
            entry.2 = Instant::now();
        }
    }

    /// A permit for a new connection to database `id`: at once if one is free, else after
    /// closing the least recently used idle connection of another database, else as soon as
    /// one closes, for at most `wait`.
    pub async fn acquire(&self, id: Uuid, wait: Duration) -> Result<OwnedSemaphorePermit> {
        let until = Instant::now() + wait;
        loop {
            if let Ok(permit) = self.permits.clone().try_acquire_owned() {
                return Ok(permit);
            }
            if !self.close_least_recently_used(id) {
                if Instant::now() >= until {
                    return Err(Error::unavailable(
                        "every connection this instance may open to dedicated databases is busy",
                    ));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // A closed connection gives its permit back when its I/O task ends.
            tokio::task::yield_now().await;
        }
    }

    /// Closes the idle connection of the database (other than `except`) used longest ago;
    /// whether there was one.
    fn close_least_recently_used(&self, except: Uuid) -> bool {
        let victim = {
            let pools = self.pools.lock().expect("limiter lock");
            pools
                .iter()
                .filter(|(id, pool, _)| *id != except && pool.idle() > 0)
                .min_by_key(|(_, _, used)| *used)
                .map(|(id, pool, _)| (*id, pool.clone()))
        };
        match victim {
            Some((id, pool)) => {
                tracing::info!(database = %id, "closing the least recently used connection to make room");
                pool.close_idle();
                true
            }
            None => false,
        }
    }
}
