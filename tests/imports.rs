//! Imports go one way: among the files of each crate, no file reaches itself through the
//! paths it names (`crate::a::b`, `super::a`, `self::a` in `use` lines and in code). A file
//! is a module; `mod.rs` is its directory's module. A circle is reported with its files.
//!
//! The circles not yet broken are listed in `KNOWN` (issue 16 removes them): the test fails
//! on any other circle, and on a listed one that is gone, so the list only shrinks.

// A test fails by panicking: indexing a list that lacks the entry is such a failure.
#![allow(clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Circles still to break: the crate's source directory and the circle's sorted modules.
const KNOWN: &[(&str, &[&str])] = &[];

/// Every `.rs` file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("a source directory").flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file of a crate rooted at `src` (`lib.rs`/`main.rs` is `crate`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel.iter().map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
    if parts.last().is_some_and(|l| l == "mod" || l == "lib" || l == "main") {
        parts.pop();
    }
    parts
}

/// The paths a file names: `crate::a::b`, `super::a`, `self::a`, and `use a::..` of its own
/// child modules, resolved to module paths (the longest that is a module).
fn references(text: &str, me: &[String], modules: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    // Unit tests (an inline `mod tests` at the end, where `super` is the file's own module)
    // are left out.
    let text = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let code: String = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
    let bytes: Vec<char> = code.chars().collect();
    let at = |i: usize, w: &str| w.chars().enumerate().all(|(k, c)| bytes.get(i + k) == Some(&c));
    let mut i = 0;
    while i < bytes.len() {
        let starts = |w: &str| at(i, w);
        let boundary = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_' || bytes[i - 1] == ':');
        // A path from one of this module's children (`check::Check` in a parent).
        let child = boundary && {
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_alphanumeric() || bytes[j] == '_') {
                j += 1;
            }
            let word: String = bytes[i..j].iter().collect();
            let mut m = me.to_vec();
            m.push(word);
            j > i && at(j, "::") && modules.contains(&m)
        };
        if child {
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_alphanumeric() || bytes[j] == '_') {
                j += 1;
            }
            let mut m = me.to_vec();
            m.push(bytes[i..j].iter().collect());
            out.insert(m);
            i = j;
            continue;
        }
        if boundary && (starts("crate::") || starts("super::") || starts("self::")) {
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_alphanumeric() || bytes[j] == '_' || bytes[j] == ':') {
                j += 1;
            }
            let path: String = bytes[i..j].iter().collect();
            let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            let mut base: Vec<String> = match segs.first() {
                Some(&"crate") => Vec::new(),
                // `super` of a file is its parent module (of `a/mod.rs`, `a`'s parent).
                Some(&"super") => me.get(..me.len().saturating_sub(1)).map(<[String]>::to_vec).unwrap_or_default(),
                _ => me.to_vec(),
            };
            segs.remove(0);
            while segs.first() == Some(&"super") {
                base.pop();
                segs.remove(0);
            }
            let mut best = None;
            let mut m = base.clone();
            if modules.contains(&m) {
                best = Some(m.clone());
            }
            for s in segs {
                m.push(s.to_string());
                if modules.contains(&m) {
                    best = Some(m.clone());
                }
            }
            if let Some(b) = best.filter(|b| b.as_slice() != me) {
                out.insert(b);
            }
            i = j;
        }
        i += 1;
    }
    out
}

/// The circles among the files of the crate rooted at `src`: strongly connected sets of
/// more than one module, by Tarjan's algorithm (iterative).
fn circles(src: &Path) -> Vec<Vec<String>> {
    let mut list = Vec::new();
    files(src, &mut list);
    let modules: BTreeSet<Vec<String>> = list.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for f in &list {
        let me = module_of(src, f);
        let text = std::fs::read_to_string(f).expect("a source file");
        let refs = references(&text, &me, &modules);
        edges.entry(me).or_default().extend(refs);
    }
    // Tarjan.
    let nodes: Vec<Vec<String>> = modules.iter().cloned().collect();
    let index_of: BTreeMap<&Vec<String>, usize> = nodes.iter().enumerate().map(|(i, n)| (n, i)).collect();
    let adj: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| edges.get(n).into_iter().flatten().filter_map(|t| index_of.get(t).copied()).collect())
        .collect();
    let n = nodes.len();
    let (mut index, mut low, mut on) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut stack, mut next, mut out) = (Vec::new(), 0, Vec::new());
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work = vec![(root, 0usize)];
        while let Some((v, k)) = work.pop() {
            if k == 0 {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on[v] = true;
            }
            if let Some(&w) = adj[v].get(k) {
                work.push((v, k + 1));
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut scc = Vec::new();
                while let Some(w) = stack.pop() {
                    on[w] = false;
                    scc.push(nodes[w].join("/"));
                    if w == v {
                        break;
                    }
                }
                if scc.len() > 1 {
                    scc.sort();
                    out.push(scc);
                }
            }
        }
    }
    out
}

#[test]
fn no_crate_has_an_import_circle_among_its_files() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for src in ["src", "grammar/src", "compiler/src", "runtime/src"] {
        for c in circles(&root.join(src)) {
            let known = KNOWN.iter().any(|(s, k)| *s == src && k.iter().map(|s| s.to_string()).eq(c.iter().cloned()));
            found.push((src, c, known));
        }
    }
    let new: Vec<String> =
        found.iter().filter(|(_, _, k)| !k).map(|(s, c, _)| format!("{s}: {}", c.join(" -> "))).collect();
    assert!(new.is_empty(), "import circles:\n{}", new.join("\n"));
    for (src, k) in KNOWN {
        let still = found.iter().any(|(s, c, _)| s == src && k.iter().map(|s| s.to_string()).eq(c.iter().cloned()));
        assert!(still, "the circle {src}: {k:?} is gone: remove it from KNOWN");
    }
}
