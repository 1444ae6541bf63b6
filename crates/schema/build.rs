//! Embeds `migrations/*.sql` and `migrations/dsql/*.sql` (at the workspace root) in file-name order, so that adding a
//! migration is adding a file: nothing to register by hand, nothing to forget.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../migrations");
    embed(&root, "migrations.rs");
    embed(&root.join("dsql"), "dsql_migrations.rs");
}

/// Writes the `*.sql` files of `dir`, in name order, as a `&[Migration]` literal to `out`.
fn embed(dir: &Path, out_name: &str) {
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable migrations entry").path())
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
    let dest = PathBuf::from(env::var("OUT_DIR").unwrap()).join(out_name);
    fs::write(dest, out).unwrap();
}
