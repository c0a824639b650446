//! No crate of the workspace has a cycle among its top-level modules: a
//! module names another (`crate::other`) only if that one does not name it
//! back, directly or through others. Test modules and comments do not
//! count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace's root, found at run time (see `cairn_testkit::workspace_root`).
fn root() -> String {
    cairn_testkit::workspace_root()
        .to_string_lossy()
        .into_owned()
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The modules `text` names as `crate::name` or in `use crate::{…}`,
/// among `mods`, outside comments and test modules.
fn named(text: &str, mods: &BTreeSet<String>) -> BTreeSet<String> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|p| ident(p.trim())));
        } else {
            out.insert(ident(rest));
        }
    }
    out.retain(|m| mods.contains(m));
    out
}

/// Top-level module → the top-level modules it names.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut mods = BTreeSet::new();
    for e in std::fs::read_dir(src).expect("src").flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.path().is_dir() {
            mods.insert(name);
        } else if let Some(m) = name.strip_suffix(".rs") {
            if m != "lib" && m != "main" {
                mods.insert(m.to_owned());
            }
        }
    }
    let mut g = BTreeMap::new();
    for m in &mods {
        let mut files = Vec::new();
        let dir = src.join(m);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let file = src.join(format!("{m}.rs"));
        if file.is_file() {
            files.push(file);
        }
        let mut edges = BTreeSet::new();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("source");
            edges.extend(named(&text, &mods));
        }
        edges.remove(m);
        g.insert(m.clone(), edges);
    }
    g
}

/// A cycle through `start`, if there is one.
fn cycle(g: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_owned(), vec![start.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((m, path)) = stack.pop() {
        for next in g.get(&m).into_iter().flatten() {
            if next == start {
                return Some(path.clone());
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

fn cycles_in(src: &Path) -> Vec<String> {
    let g = graph(src);
    g.keys()
        .filter_map(|m| cycle(&g, m))
        .map(|c| format!("{} -> {}", c.join(" -> "), c[0]))
        .collect()
}

#[test]
fn no_crate_has_a_module_cycle() {
    let mut found = Vec::new();
    for e in std::fs::read_dir(format!("{}/crates", root()))
        .expect("crates")
        .flatten()
    {
        let src = e.path().join("src");
        if src.is_dir() {
            for c in cycles_in(&src) {
                found.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    assert!(found.is_empty(), "module cycles: {found:#?}");
}

#[test]
fn a_cycle_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\n").expect("write");
    std::fs::write(src.join("a.rs"), "use crate::b::X;\n").expect("write");
    std::fs::write(src.join("b.rs"), "use crate::{c, a};\n").expect("write");
    std::fs::write(
        src.join("c.rs"),
        "// crate::a in a comment does not count\n",
    )
    .expect("write");
    let found = cycles_in(src);
    assert!(found.iter().any(|c| c.contains("a -> b -> a")), "{found:?}");
    std::fs::write(src.join("b.rs"), "use crate::c;\n").expect("write");
    assert!(cycles_in(src).is_empty());
}
