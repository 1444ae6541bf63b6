//! Import circles between the files of each crate.

use std::path::Path;

use crate::modules::{Graph, crate_graph};

/// Every import circle between files of a crate under `root/crates`, one line each (`a.rs ->
/// b.rs (via crate::b::X) -> a.rs (via super::Y)`), or the files that could not be read.
pub fn import_cycles(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for krate in crate_dirs(root) {
        let src = krate.join("src");
        let mut roots: Vec<_> = ["lib.rs", "main.rs"].iter().map(|f| src.join(f)).filter(|p| p.exists()).collect();
        if let Ok(bins) = std::fs::read_dir(src.join("bin")) {
            let mut bins: Vec<_> =
                bins.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "rs")).collect();
            bins.sort();
            roots.extend(bins);
        }
        for r in roots {
            match crate_graph(&r) {
                Ok(g) => problems.extend(circles(&g).into_iter().map(|(c, scc)| describe(root, &g, &c, &scc))),
                Err(e) => problems.push(e),
            }
        }
    }
    problems
}

/// The crate directories under `root/crates`, sorted.
pub(crate) fn crate_dirs(root: &Path) -> Vec<std::path::PathBuf> {
    let mut dirs: Vec<_> = std::fs::read_dir(root.join("crates"))
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.join("Cargo.toml").exists()).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// One circle per strongly connected component of more than one file (Tarjan), as the files in
/// order, the first repeated at the end, with all the component's files.
fn circles(g: &Graph) -> Vec<(Vec<usize>, Vec<usize>)> {
    struct T<'g> {
        g: &'g Graph,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    impl T<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on[v] = true;
            for &(w, _) in &self.g.edges[v] {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(i) if self.on[w] => self.low[v] = self.low[v].min(i),
                    Some(_) => {}
                }
            }
            if Some(self.low[v]) == self.index[v] {
                let mut scc = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    self.out.push(scc);
                }
            }
        }
    }
    let n = g.files.len();
    let mut t =
        T { g, index: vec![None; n], low: vec![0; n], on: vec![false; n], stack: Vec::new(), next: 0, out: Vec::new() };
    for v in 0..n {
        if t.index[v].is_none() {
            t.visit(v);
        }
    }
    t.out.iter().map(|scc| (walk(g, scc), scc.clone())).collect()
}

/// A circle through the files of `scc`: from its first file, breadth-first back to it.
fn walk(g: &Graph, scc: &[usize]) -> Vec<usize> {
    let start = *scc.iter().min().expect("a component has files");
    let mut prev = vec![None; g.files.len()];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &(w, _) in &g.edges[v] {
            if w == start {
                // start -> ... -> v -> start
                let mut path = vec![v];
                while let Some(p) = prev[*path.last().expect("not empty")] {
                    path.push(p);
                }
                path.reverse();
                if path[0] != start {
                    path.insert(0, start);
                }
                path.push(start);
                return path;
            }
            if scc.contains(&w) && prev[w].is_none() && w != start {
                prev[w] = Some(v);
                queue.push_back(w);
            }
        }
    }
    scc.to_vec()
}

fn describe(root: &Path, g: &Graph, circle: &[usize], scc: &[usize]) -> String {
    let name = |i: usize| g.files[i].strip_prefix(root).unwrap_or(&g.files[i]).display().to_string();
    let mut line = format!("import circle: {}", name(circle[0]));
    for pair in circle.windows(2) {
        let via = g.edges[pair[0]].iter().find(|(t, _)| *t == pair[1]).map_or("", |(_, v)| v.as_str());
        line.push_str(&format!(" -> {} (via {via})", name(pair[1])));
    }
    if scc.len() + 1 > circle.len() {
        let mut all: Vec<String> = scc.iter().map(|&i| name(i)).collect();
        all.sort();
        line.push_str(&format!("; tangled with it: {}", all.join(", ")));
    }
    line
}
