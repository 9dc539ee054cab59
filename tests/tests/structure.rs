//! The shape of the workspace, checked on every run (no root needed):
//!
//! - no two modules of a crate import each other, directly or through
//!   others (crates cannot: cargo refuses cycles between them);
//! - `unsafe` appears only in the kernel-access crate, `core/sys`;
//! - no source file is over 600 lines without a reason at its top (a line
//!   of its leading comment starting with `Long file:`).
//!
//! The module graph is read from the source: an edge from module `a` to
//! module `b` for every path `crate::b…` or `super::…` naming `b` (or an item
//! of `b`) in `a`, in `use` lines and in code. A module's references to its
//! own ancestors do not count (a child sees its parent's items by Rust's
//! visibility rules), and `#[cfg(test)]` sections are left out: a test module
//! is a module of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Every file below `dir` (not in `target/` or a hidden directory) that
/// `keep` accepts.
fn walk(dir: &Path, keep: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, keep, out);
        } else if keep(&p) {
            out.push(p);
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    walk(dir, &|p| p.extension().is_some_and(|x| x == "rs"), out);
}

/// The `src/` directories of the workspace's crates.
fn crate_sources() -> Vec<PathBuf> {
    let root = root();
    let mut manifests = Vec::new();
    let is_member = |p: &Path| p.ends_with("Cargo.toml") && p.parent() != Some(root.as_path());
    walk(&root, &is_member, &mut manifests);
    manifests
        .into_iter()
        .map(|m| m.parent().expect("manifest dir").join("src"))
        .filter(|s| s.is_dir())
        .collect()
}

/// Source text without comments, string contents and `#[cfg(test)]` items.
fn code_of(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' && (i == 0 || b[i - 1] != b'\'') {
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            out.push('"');
            i += 1;
        } else {
            let c = src[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    strip_cfg_test(&out)
}

/// Drops each `#[cfg(test)]` item: the attribute and the braced block after it.
fn strip_cfg_test(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find(['{', ';']) else {
            return out;
        };
        if after.as_bytes()[open] == b';' {
            rest = &after[open + 1..];
            continue;
        }
        let mut depth = 0usize;
        let mut end = after.len();
        for (k, ch) in after[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// `src/a/b.rs` and `src/a/b/mod.rs` are module `a::b`; lib.rs/main.rs the root.
fn module_of(src_dir: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir).expect("file under src");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs").to_string();
    if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
        parts.push(stem);
    }
    parts
}

/// Every path in `code` that starts with `crate::` or `super::`, as
/// absolute module paths (a `{a, b::c}` group gives one path per member).
fn referenced_paths(code: &str, me: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(k) = code[from..].find(start) {
            let at = from + k;
            from = at + start.len();
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let mut base: Vec<String> = if start == "crate::" {
                Vec::new()
            } else {
                me[..me.len().saturating_sub(1)].to_vec()
            };
            let mut tail = &code[from..];
            while let Some(t) = tail.strip_prefix("super::") {
                base.pop();
                tail = t;
            }
            collect(tail, base, &mut found);
        }
    }
    found
}

fn collect(tail: &str, base: Vec<String>, found: &mut Vec<Vec<String>>) {
    let tail = tail.trim_start();
    if let Some(group) = tail.strip_prefix('{') {
        let mut depth = 1;
        let mut end = group.len();
        for (k, ch) in group.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k;
                        break;
                    }
                }
                _ => {}
            }
        }
        let inner = &group[..end];
        let mut depth = 0;
        let mut last = 0;
        let mut members = Vec::new();
        for (k, ch) in inner.char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    members.push(&inner[last..k]);
                    last = k + 1;
                }
                _ => {}
            }
        }
        members.push(&inner[last..]);
        for m in members {
            collect(m, base.clone(), found);
        }
        return;
    }
    let mut path = base;
    let mut rest = tail;
    loop {
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            break;
        }
        rest = &rest[ident.len()..];
        path.push(ident);
        match rest.strip_prefix("::") {
            Some(r) if r.starts_with('{') => {
                collect(r, path.clone(), found);
                return;
            }
            Some(r) => rest = r,
            None => break,
        }
    }
    found.push(path);
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'g> {
        g: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on: BTreeSet<&'g str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'g>(t: &mut T<'g>, v: &'g str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        let g = t.g;
        for w in g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn module_graph(src_dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src_dir, &mut files);
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(src_dir, f), f.clone()))
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (me, file) in &modules {
        let code = code_of(&fs::read_to_string(file).expect("readable source"));
        let entry = graph.entry(me.join("::")).or_default();
        for path in referenced_paths(&code, me) {
            // The longest prefix of the path that is a module of this crate.
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains_key(p));
            let Some(target) = target else { continue };
            let is_ancestor = target.len() <= me.len() && me[..target.len()] == target[..];
            if !is_ancestor {
                entry.insert(target.join("::"));
            }
        }
    }
    graph
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut found = Vec::new();
    let sources = crate_sources();
    assert!(sources.len() >= 8, "found only {sources:?}");
    for src in sources {
        for c in cycles(&module_graph(&src)) {
            found.push(format!("{}: {}", src.display(), c.join(" <-> ")));
        }
    }
    assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    // Two modules that name each other, the way the check reads them.
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("structure-{}", std::process::id()));
    let src = dir.join("src");
    fs::create_dir_all(src.join("b")).unwrap();
    fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    fs::write(src.join("a.rs"), "use crate::b::{c::X, Y};\n").unwrap();
    fs::write(src.join("b/mod.rs"), "pub mod c;\npub struct Y;\n").unwrap();
    fs::write(
        src.join("b/c.rs"),
        "// crate::b is our parent: no edge\npub struct X;\nfn f() { super::super::a::g(); }\n#[cfg(test)]\nmod tests { use crate::a; }\n",
    )
    .unwrap();
    let g = module_graph(&src);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        g["a"],
        BTreeSet::from(["b".to_string(), "b::c".to_string()])
    );
    assert_eq!(g["b::c"], BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b::c".to_string()]]);
}

#[test]
fn unsafe_lives_only_in_the_kernel_access_crate() {
    let root = root();
    let allowed = root.join("core/sys");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut found = Vec::new();
    for f in files {
        if f.starts_with(&allowed)
            || f == Path::new(file!())
            || f.ends_with("tests/tests/structure.rs")
        {
            continue;
        }
        let code = code_of(&fs::read_to_string(&f).expect("readable source"));
        // The attributes that are unsafe without the word (a symbol of
        // ours in the linker's namespace) count too: the binary's C `main`
        // comes from a macro of core/sys.
        let hit = ["unsafe", "no_mangle", "export_name", "link_section"]
            .iter()
            .any(|word| {
                code.match_indices(word).any(|(k, _)| {
                    let b = code.as_bytes();
                    let before = k == 0 || !(b[k - 1].is_ascii_alphanumeric() || b[k - 1] == b'_');
                    let after = b
                        .get(k + word.len())
                        .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'));
                    before && after
                })
            });
        if hit {
            found.push(f.strip_prefix(&root).unwrap_or(&f).display().to_string());
        }
    }
    assert!(found.is_empty(), "unsafe outside core/sys: {found:?}");
}

#[test]
fn long_files_say_why() {
    let root = root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut found = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).expect("readable source");
        let lines = text.lines().count();
        if lines <= MAX_LINES {
            continue;
        }
        let says_why = text.lines().take_while(|l| l.starts_with("//")).any(|l| {
            l.trim_start_matches('/')
                .trim_start_matches('!')
                .trim()
                .starts_with("Long file:")
        });
        if !says_why {
            found.push(format!(
                "{} ({lines} lines)",
                f.strip_prefix(&root).unwrap_or(&f).display()
            ));
        }
    }
    assert!(
        found.is_empty(),
        "files over {MAX_LINES} lines without a `Long file:` reason: {found:?}"
    );
}
