//! The backoff gate in front of logins.

use std::time::{Duration, Instant};

use crate::{Error, Result};

/// After a failed connection attempt, the next one waits: 200 ms, doubling up to 5 s. Requests
/// meanwhile get 503 at once, so a database that refuses logins sees a trickle of attempts, not
/// one per request (Aurora also limits new IAM connections to about 200 per second).
#[derive(Debug, Default)]
pub struct Gate {
    failures: u32,
    closed_until: Option<Instant>,
}

const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

impl Gate {
    pub fn check(&self) -> Result<()> {
        match self.closed_until {
            Some(until) if Instant::now() < until => Err(Error::Unavailable {
                reason: format!("backing off after {} failed connection attempt(s)", self.failures),
                retry_after: (until - Instant::now()).max(Duration::from_secs(1)),
            }),
            _ => Ok(()),
        }
    }

    pub fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
        let backoff = BACKOFF_FIRST.saturating_mul(1 << self.failures.min(6).saturating_sub(1)).min(BACKOFF_MAX);
        self.closed_until = Some(Instant::now() + backoff);
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.closed_until = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let mut gate = Gate::default();
        assert!(gate.check().is_ok());
        let mut waits = Vec::new();
        for _ in 0..8 {
            gate.failed();
            let until = gate.closed_until.unwrap();
            waits.push((until - Instant::now()).as_millis() as u64);
            assert!(gate.check().is_err());
        }
        assert!(waits[0] <= 200 && waits[0] > 150, "{waits:?}");
        assert!(waits[1] > 350 && waits[1] <= 400, "{waits:?}");
        assert!(waits.iter().all(|w| *w <= 5000), "{waits:?}");
        assert!(waits[7] > 4900, "{waits:?}");
        gate.succeeded();
        assert!(gate.check().is_ok());
    }
}
