//! A crate's module tree and the imports between its files, read with `syn`.

use std::{
    collections::{HashMap, HashSet},
    fs,
    path::{Path, PathBuf},
};

use syn::{Item, UseTree, Visibility, visit::Visit};

/// A module path within a crate (`[]` is the crate root).
type ModPath = Vec<String>;

#[derive(Default)]
struct Module {
    file: usize,
    children: HashSet<String>,
    /// Re-exported names and the paths they stand for (as written, from this module).
    reexports: HashMap<String, Vec<String>>,
}

/// One crate: its files and, for each file, the files it imports (with the path that did).
#[derive(Default)]
pub(crate) struct Graph {
    pub files: Vec<PathBuf>,
    pub edges: Vec<Vec<(usize, String)>>,
}

/// The import graph of the crate whose root file is `root`.
pub(crate) fn crate_graph(root: &Path) -> Result<Graph, String> {
    let mut files = Vec::new();
    let mut modules: HashMap<ModPath, Module> = HashMap::new();
    let mut parsed = Vec::new();
    load(
        root,
        Vec::new(),
        root.parent().unwrap_or(Path::new(".")).to_path_buf(),
        &mut files,
        &mut modules,
        &mut parsed,
    )?;
    let mut graph = Graph { edges: vec![Vec::new(); files.len()], files };
    for (file, module, ast) in &parsed {
        let mut v = Uses { modules: &modules, at: module.clone(), file: *file, root_file: 0, out: Vec::new() };
        v.visit_file(ast);
        for (to, via) in v.out {
            if to != *file && !graph.edges[*file].iter().any(|(t, _)| *t == to) {
                graph.edges[*file].push((to, via));
            }
        }
    }
    Ok(graph)
}

/// Reads `path` as module `at` and, recursively, the files of its `mod x;` children; `dir` is
/// where those children live.
fn load(
    path: &Path,
    at: ModPath,
    dir: PathBuf,
    files: &mut Vec<PathBuf>,
    modules: &mut HashMap<ModPath, Module>,
    parsed: &mut Vec<(usize, ModPath, syn::File)>,
) -> Result<(), String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let ast = syn::parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let file = files.len();
    files.push(path.to_path_buf());
    let file_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    items(&ast.items, &at, file, &dir, &file_dir, files, modules, parsed)?;
    parsed.push((file, at, ast));
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn items(
    list: &[Item],
    at: &ModPath,
    file: usize,
    dir: &Path,
    file_dir: &Path,
    files: &mut Vec<PathBuf>,
    modules: &mut HashMap<ModPath, Module>,
    parsed: &mut Vec<(usize, ModPath, syn::File)>,
) -> Result<(), String> {
    modules.entry(at.clone()).or_default().file = file;
    for item in list {
        match item {
            Item::Mod(m) => {
                let name = m.ident.to_string();
                modules.entry(at.clone()).or_default().children.insert(name.clone());
                let mut child = at.clone();
                child.push(name.clone());
                match &m.content {
                    Some((_, inner)) => {
                        items(inner, &child, file, &dir.join(&name), file_dir, files, modules, parsed)?;
                    }
                    None => {
                        let (path, child_dir) = match path_attr(&m.attrs) {
                            Some(p) => (file_dir.join(&p), file_dir.join(&p).with_extension("")),
                            None if dir.join(format!("{name}.rs")).exists() => {
                                (dir.join(format!("{name}.rs")), dir.join(&name))
                            }
                            None => (dir.join(&name).join("mod.rs"), dir.join(&name)),
                        };
                        load(&path, child, child_dir, files, modules, parsed)?;
                    }
                }
            }
            Item::Use(u) if !matches!(u.vis, Visibility::Inherited) => {
                let mut paths = Vec::new();
                flatten(&u.tree, &mut Vec::new(), &mut paths);
                let module = modules.entry(at.clone()).or_default();
                for (path, name) in paths {
                    if let Some(name) = name {
                        module.reexports.insert(name, path);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn path_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs.iter().filter(|a| a.path().is_ident("path")).find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) => match &nv.value {
            syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// Every path a `use` tree names, with the name it binds (`None` for a glob).
fn flatten(tree: &UseTree, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Option<String>)>) {
    match tree {
        UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten(&p.tree, prefix, out);
            prefix.pop();
        }
        UseTree::Name(n) => {
            let name = n.ident.to_string();
            let mut path = prefix.clone();
            // `use x::{self}` binds `x`.
            if name == "self" {
                out.push((path, prefix.last().cloned()));
            } else {
                path.push(name.clone());
                out.push((path, Some(name)));
            }
        }
        UseTree::Rename(r) => {
            let mut path = prefix.clone();
            path.push(r.ident.to_string());
            out.push((path, Some(r.rename.to_string())));
        }
        UseTree::Glob(_) => out.push((prefix.clone(), None)),
        UseTree::Group(g) => g.items.iter().for_each(|t| flatten(t, prefix, out)),
    }
}

/// Collects the files a file imports.
struct Uses<'a> {
    modules: &'a HashMap<ModPath, Module>,
    at: ModPath,
    file: usize,
    root_file: usize,
    out: Vec<(usize, String)>,
}

impl Uses<'_> {
    /// The module that defines what `path`, written in module `from`, names.
    fn resolve(&self, from: &ModPath, path: &[String], depth: usize) -> Option<ModPath> {
        let first = path.first()?;
        let (mut cur, mut rest) = match first.as_str() {
            "crate" => (Vec::new(), &path[1..]),
            "self" => (from.clone(), &path[1..]),
            "super" => (from.clone(), path),
            name if self.modules.get(from)?.children.contains(name) => (from.clone(), path),
            _ => return None,
        };
        while let Some(seg) = rest.first() {
            let module = self.modules.get(&cur)?;
            if seg == "super" {
                cur.pop();
            } else if module.children.contains(seg) {
                cur.push(seg.clone());
            } else if let Some(target) = module.reexports.get(seg).filter(|_| depth < 8) {
                let mut full = target.clone();
                full.extend(rest[1..].iter().cloned());
                return self.resolve(&cur, &full, depth + 1).or(Some(cur));
            } else {
                return Some(cur);
            }
            rest = &rest[1..];
        }
        Some(cur)
    }

    fn edge(&mut self, path: &[String]) {
        if let Some(m) = self.resolve(&self.at, path, 0)
            && let Some(module) = self.modules.get(&m)
        {
            self.out.push((module.file, path.join("::")));
        }
    }
}

impl<'ast> Visit<'ast> for Uses<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if let Some((_, inner)) = &m.content {
            self.at.push(m.ident.to_string());
            inner.iter().for_each(|i| self.visit_item(i));
            self.at.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        // A crate root's re-exports are its public face, not its dependencies.
        let reexport = !matches!(u.vis, Visibility::Inherited);
        if reexport && self.at.is_empty() && self.file == self.root_file {
            return;
        }
        let mut paths = Vec::new();
        flatten(&u.tree, &mut Vec::new(), &mut paths);
        for (path, _) in paths {
            self.edge(&path);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segs.len() > 1 && (segs[0] == "crate" || segs[0] == "super") {
            self.edge(&segs);
        }
        syn::visit::visit_path(self, p);
    }
}
