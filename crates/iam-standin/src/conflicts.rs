//! Optimistic-concurrency conflicts on demand (a fault mode), as Aurora DSQL reports them under
//! contention: a share of the client's `COMMIT`s fail with SQLSTATE 40001 (`OC000`), the
//! transaction rolled back. The relay (`dsql::relay`) sends such a `COMMIT` on as `ROLLBACK`
//! and answers it with the conflict.

use std::sync::atomic::{AtomicU64, Ordering};

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
    pub(crate) fn this_commit_fails(&self) -> bool {
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
