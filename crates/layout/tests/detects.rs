//! The checks fail on what they are meant to catch, on small made-up workspaces.

use std::{fs, path::PathBuf};

/// A workspace in a fresh temporary directory with these files.
fn workspace(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let root = std::env::temp_dir().join(format!("layout-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    for (path, text) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    root
}

const TOML: &str = "[package]\nname = \"a\"\n";

#[test]
fn a_circle_through_a_re_export_and_a_parent_is_found() {
    let root = workspace(
        "circle",
        &[
            ("crates/a/Cargo.toml", TOML),
            ("crates/a/src/lib.rs", "mod pool;\nmod place;\npub use place::Placements;\n"),
            ("crates/a/src/pool.rs", "use crate::Placements;\npub struct Pool;\n"),
            ("crates/a/src/place/mod.rs", "mod limit;\npub use limit::Limiter;\npub struct Placements;\n"),
            ("crates/a/src/place/limit.rs", "pub struct Limiter(crate::pool::Pool);\n"),
        ],
    );
    let found = layout::import_cycles(&root);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("pool.rs") && found[0].contains("limit.rs") && found[0].contains("place/mod.rs"),
        "{found:?}"
    );
}

#[test]
fn one_way_imports_and_root_re_exports_pass() {
    let root = workspace(
        "oneway",
        &[
            ("crates/a/Cargo.toml", TOML),
            ("crates/a/src/lib.rs", "mod a;\nmod b;\npub use a::A;\npub use b::B;\n"),
            ("crates/a/src/a.rs", "pub struct A;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n"),
            ("crates/a/src/b.rs", "use crate::A;\npub struct B(A);\n"),
        ],
    );
    assert_eq!(layout::import_cycles(&root), Vec::<String>::new());
}

#[test]
fn a_crate_that_depends_on_its_own_layer_or_above_fails() {
    let map = "<!-- layers -->\n```text\n2  top\n1  low other\n```\n";
    let root = workspace(
        "layers",
        &[
            ("ARCHITECTURE.md", map),
            ("crates/top/Cargo.toml", "[package]\nname = \"top\"\n[dependencies]\nlow.workspace = true\n"),
            (
                "crates/low/Cargo.toml",
                "[package]\nname = \"low\"\n[dependencies]\nother = { path = \"../other\" }\n[dev-dependencies]\ntop.workspace = true\n",
            ),
            ("crates/other/Cargo.toml", "[package]\nname = \"other\"\n"),
            ("crates/new/Cargo.toml", "[package]\nname = \"new\"\n"),
        ],
    );
    let found = layout::layer_violations(&root);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].contains("low (layer 1) depends on other (layer 1)"), "{found:?}");
    assert!(found[1].contains("new is not on"), "{found:?}");
}

#[test]
fn a_long_file_fails() {
    let long = "// line\n".repeat(layout::MAX_LINES + 1);
    let root = workspace("long", &[("crates/a/Cargo.toml", TOML), ("crates/a/src/lib.rs", &long)]);
    assert_eq!(layout::long_files(&root), vec![format!("crates/a/src/lib.rs: 401 lines (at most 400)")]);
}
