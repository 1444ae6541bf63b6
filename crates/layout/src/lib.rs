//! The layout check: what `ARCHITECTURE.md` promises about the code's shape, as tests that fail
//! in CI (`cargo test --workspace`, so `scripts/test.sh`) when it stops being true.
//!
//! - [`import_cycles`]: no two source files import each other, directly or in a circle. Each
//!   crate's module tree is read from its roots (`src/lib.rs`, `src/main.rs`, `src/bin/*.rs`)
//!   with `syn`; an edge goes from a file to the file that defines what it names in a `use`
//!   (`crate::`, `super::`, `self::` or a child module) or in a `crate::` / `super::` path in its
//!   code. Names are followed through re-exports to the file that defines them; a re-export is
//!   itself an edge, except in a crate root (the crate's public face).
//! - [`layer_violations`]: no crate depends (its `Cargo.toml`'s `[dependencies]` and
//!   `[build-dependencies]`) on a crate in its own layer or above it in the map of
//!   `ARCHITECTURE.md` (the fenced block after `<!-- layers -->`), and every crate is on the map.
//!   Dev-dependencies are left out: tests may use helpers from above.
//! - [`long_files`]: no `.rs` file under `crates/` is over [`MAX_LINES`] lines.
//!
//! `tests/layout.rs` runs the three on the workspace (or on `LAYOUT_ROOT`, to check another
//! checkout), less a short list of known problems that may only shrink.

mod cycles;
mod layers;
mod modules;
mod size;

pub use cycles::import_cycles;
pub use layers::layer_violations;
pub use size::{MAX_LINES, long_files};
