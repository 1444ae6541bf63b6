//! The workspace's layout (see `ARCHITECTURE.md`): set `LAYOUT_ROOT` to check another
//! checkout.

use std::path::PathBuf;

/// Known problems, each a piece of the line the check prints, in code that was being changed
/// on another branch when the check came in. Listed so that the check guards everything else
/// now; the list only shrinks: the test also fails when a listed problem is gone, so that its
/// line is deleted with the fix.
const KNOWN: &[&str] = &[];

fn root() -> PathBuf {
    std::env::var_os("LAYOUT_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Fails on every problem that is not in [`KNOWN`]; with `known` (the entries of [`KNOWN`] this
/// check reports), also on each of those that no longer occurs.
fn report(what: &str, problems: &[String], known: &[&str]) {
    let new: Vec<&String> = problems.iter().filter(|p| !KNOWN.iter().any(|k| p.contains(k))).collect();
    let fixed: Vec<&&str> = known.iter().filter(|k| !problems.iter().any(|p| p.contains(**k))).collect();
    assert!(new.is_empty(), "{what}:\n  {}", new.iter().map(|p| p.as_str()).collect::<Vec<_>>().join("\n  "));
    assert!(fixed.is_empty(), "fixed, so delete from KNOWN in crates/layout/tests/layout.rs: {fixed:?}");
}

#[test]
fn no_two_files_import_each_other_directly_or_in_a_circle() {
    report("files that import each other", &layout::import_cycles(&root()), KNOWN);
}

#[test]
fn every_crate_depends_only_on_crates_below_it_in_the_architecture_map() {
    report("crates out of their layer", &layout::layer_violations(&root()), &[]);
}

#[test]
fn no_source_file_is_over_400_lines() {
    report("files too long", &layout::long_files(&root()), KNOWN);
}
