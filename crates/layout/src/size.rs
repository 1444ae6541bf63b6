//! The length of source files.

use std::{fs, path::Path};

/// The most lines a `.rs` file under `crates/` may have.
pub const MAX_LINES: usize = 400;

/// Every `.rs` file under `root/crates` (sources, tests, build scripts) over [`MAX_LINES`] lines,
/// with its length.
pub fn long_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(&root.join("crates"), root, &mut out);
    out.sort();
    out
}

fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                walk(&path, root, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && let Ok(text) = fs::read_to_string(&path)
            && text.lines().count() > MAX_LINES
        {
            let shown = path.strip_prefix(root).unwrap_or(&path).display();
            out.push(format!("{shown}: {} lines (at most {MAX_LINES})", text.lines().count()));
        }
    }
}
