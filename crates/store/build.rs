//! Embeds `migrations/*.sql` (at the workspace root) in file-name order, so that adding a
//! migration is adding a file: nothing to register by hand, nothing to forget.

use std::{env, fs, path::PathBuf};

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../migrations");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("migrations/ directory")
        .map(|e| e.expect("readable migrations/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut out = String::from("&[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().unwrap().to_str().unwrap();
        let (version, _) =
            name.split_once('_').unwrap_or_else(|| panic!("migration {name} must be named NNNN_description.sql"));
        let version: i32 = version.parse().unwrap_or_else(|_| panic!("migration {name} must start with a number"));
        // The text itself, not an include_str! of an absolute path: a target directory shared by
        // checkouts in other places (CI's clone, a worktree) must not point at another's files.
        let sql = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        out.push_str(&format!("    Migration {{ version: {version}, name: {name:?}, sql: {sql:?} }},\n"));
    }
    out.push_str("]\n");
    let dest = PathBuf::from(env::var("OUT_DIR").unwrap()).join("migrations.rs");
    fs::write(dest, out).unwrap();
}
