//! The crate map of `ARCHITECTURE.md` against each crate's `Cargo.toml`.

use std::{collections::HashMap, fs, path::Path};

use crate::cycles::crate_dirs;

/// The marker before the fenced block that lists the layers, top first: one line per layer, its
/// number and its crates (`3  api testkit`).
pub const MARKER: &str = "<!-- layers -->";

/// Each crate's layer, from the map in `ARCHITECTURE.md`.
pub(crate) fn layers(architecture: &str) -> Result<HashMap<String, usize>, String> {
    let after = architecture.split_once(MARKER).ok_or(format!("ARCHITECTURE.md has no {MARKER} map"))?.1;
    let block = after.split_once("```").and_then(|(_, b)| b.split_once('\n')).map(|(_, b)| b);
    let block = block.and_then(|b| b.split_once("```")).ok_or("the layer map is not a fenced block")?.0;
    let mut map = HashMap::new();
    for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut words = line.split(|c: char| c.is_whitespace() || c == ',').filter(|w| !w.is_empty());
        let Some(Ok(layer)) = words.next().map(str::parse::<usize>) else { continue };
        for krate in words.take_while(|w| !w.starts_with('#')) {
            map.insert(krate.to_string(), layer);
        }
    }
    Ok(map)
}

/// A crate's package name and the crates it depends on (`[dependencies]`,
/// `[build-dependencies]` and their per-target forms), from its `Cargo.toml`.
pub(crate) fn manifest(toml: &str) -> (String, Vec<String>) {
    let (mut name, mut deps, mut section) = (String::new(), Vec::new(), String::new());
    for line in toml.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_string();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let key = key.trim();
        if section == "package" && key == "name" {
            name = value.trim().trim_matches('"').to_string();
        }
        let runtime = section == "dependencies" || section == "build-dependencies";
        let per_target = section.starts_with("target.")
            && (section.ends_with(".dependencies") || section.ends_with(".build-dependencies"));
        if runtime || per_target {
            // `name = ...`, `name.workspace = true`, or `alias = { package = "name", ... }`.
            let dep = value
                .split_once("package")
                .and_then(|(_, p)| p.split('"').nth(1))
                .unwrap_or_else(|| key.split('.').next().unwrap_or(key));
            deps.push(dep.to_string());
        }
    }
    (name, deps)
}

/// Every crate that depends on a crate in its own layer or above, and every crate missing from
/// the map (or on it but missing from `crates/`).
pub fn layer_violations(root: &Path) -> Vec<String> {
    let architecture = match fs::read_to_string(root.join("ARCHITECTURE.md")) {
        Ok(text) => text,
        Err(e) => return vec![format!("ARCHITECTURE.md: {e}")],
    };
    let map = match layers(&architecture) {
        Ok(map) => map,
        Err(e) => return vec![e],
    };
    let crates: Vec<(String, Vec<String>)> = crate_dirs(root)
        .iter()
        .filter_map(|d| fs::read_to_string(d.join("Cargo.toml")).ok())
        .map(|t| manifest(&t))
        .collect();
    let mut problems = Vec::new();
    for (name, deps) in &crates {
        let Some(&layer) = map.get(name) else {
            problems.push(format!("crate {name} is not on ARCHITECTURE.md's map"));
            continue;
        };
        for dep in deps.iter().filter(|d| crates.iter().any(|(n, _)| n == *d) && *d != name) {
            match map.get(dep) {
                Some(&l) if l < layer => {}
                Some(&l) => problems.push(format!(
                    "crate {name} (layer {layer}) depends on {dep} (layer {l}): a crate may depend only on layers below its own"
                )),
                None => {}
            }
        }
    }
    for krate in map.keys().filter(|k| !crates.iter().any(|(n, _)| n == *k)) {
        problems.push(format!("ARCHITECTURE.md's map names {krate}, which is not a crate under crates/"));
    }
    problems.sort();
    problems
}
