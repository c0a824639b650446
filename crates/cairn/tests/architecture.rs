//! docs/ARCHITECTURE.md stays true to the code: its table of error types
//! lists exactly the variants the code has, every path its table of tests
//! names exists, and every crate its table of layers names is one.

use std::collections::BTreeSet;

/// The workspace's root, found at run time (see `cairn_testkit::workspace_root`).
fn root() -> String {
    cairn_testkit::workspace_root()
        .to_string_lossy()
        .into_owned()
}

/// The variant names of `pub enum NAME` in a source file: identifiers that
/// start a line at one level of indentation inside the enum's braces.
fn variants(file: &str, name: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(format!("{}/{file}", root())).expect("source file");
    let start = text
        .find(&format!("pub enum {name} {{"))
        .unwrap_or_else(|| panic!("pub enum {name} in {file}"));
    let body = &text[start..];
    let end = body.find("\n}").expect("end of enum");
    body[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .map(|l| {
            l.split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// The variants the table's row for `crate_name` lists.
fn documented(crate_name: &str) -> BTreeSet<String> {
    let doc = std::fs::read_to_string(format!("{}/docs/ARCHITECTURE.md", root())).expect("doc");
    let row = doc
        .lines()
        .find(|l| l.starts_with(&format!("| `{crate_name}` |")) && l.matches('|').count() == 4)
        .unwrap_or_else(|| panic!("a row for {crate_name} in the error table"));
    let cell = row.trim_end_matches('|').rsplit('|').next().expect("cell");
    cell.split(',')
        .map(|v| v.trim().trim_matches('`').to_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

#[test]
fn the_error_table_lists_every_variant_and_no_other() {
    for (krate, file, name) in [
        ("cairn-core", "crates/cairn-core/src/error.rs", "Error"),
        (
            "cairn-store",
            "crates/cairn-store/src/error.rs",
            "StoreError",
        ),
        ("cairn-repo", "crates/cairn-repo/src/error.rs", "Error"),
        ("cairn-fs", "crates/cairn-fs/src/error.rs", "Error"),
    ] {
        let code = variants(file, name);
        assert!(code.len() >= 3, "{file}: parsed {code:?}");
        assert_eq!(
            documented(krate),
            code,
            "docs/ARCHITECTURE.md's row for {krate}"
        );
    }
}

/// The rows of the first table after the line `heading`, header and
/// separator left out.
fn table(heading: &str) -> Vec<String> {
    let doc = std::fs::read_to_string(format!("{}/docs/ARCHITECTURE.md", root())).expect("doc");
    let rows: Vec<String> = doc
        .lines()
        .skip_while(|l| *l != heading)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(str::to_owned)
        .collect();
    assert!(!rows.is_empty(), "no table after {heading:?}");
    rows
}

/// The spans between backticks in `line`.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// A span that names a file or directory: its first word (a command's
/// program) holds a `/` or ends in a file extension the repository uses.
fn path_in(span: &str) -> Option<&str> {
    let word = span.split_whitespace().next()?;
    let extensions = [".rs", ".sh", ".md", ".toml", ".py", ".yaml", ".json"];
    (word.contains('/') || extensions.iter().any(|e| word.ends_with(e))).then_some(word)
}

/// The paths of the tests table that do not exist, and how many it names.
fn missing_test_paths(rows: &[String]) -> (Vec<String>, usize) {
    let paths: Vec<&str> = rows
        .iter()
        .flat_map(|r| code_spans(r))
        .filter_map(path_in)
        .collect();
    let missing = paths
        .iter()
        .filter(|p| {
            let full = std::path::Path::new(&root()).join(p);
            !(full.exists() && (!p.ends_with('/') || full.is_dir()))
        })
        .map(|p| (*p).to_owned())
        .collect();
    (missing, paths.len())
}

#[test]
fn every_path_the_tests_table_names_exists() {
    let rows = table("## Tests");
    let (missing, named) = missing_test_paths(&rows);
    assert!(
        named >= 30,
        "only {named} paths found: is the parser blind?"
    );
    assert!(
        missing.is_empty(),
        "docs/ARCHITECTURE.md's Tests table names paths that do not exist: {missing:?}"
    );
    // And the check itself sees a wrong path.
    let wrong = vec![
        "| unit | `crates/cairn-fs/src/no_such_file.rs`, `scripts/nope.sh start DIR` | x |"
            .to_owned(),
    ];
    assert_eq!(
        missing_test_paths(&wrong).0,
        ["crates/cairn-fs/src/no_such_file.rs", "scripts/nope.sh"]
    );
}

#[test]
fn every_crate_the_layers_table_names_is_a_crate_of_the_workspace() {
    let rows = table("## Layers");
    let workspace = std::fs::read_to_string(format!("{}/Cargo.toml", root())).expect("Cargo.toml");
    for row in &rows {
        let cell = row.split('|').nth(1).expect("first cell");
        let spans = code_spans(cell);
        let [name] = spans[..] else {
            panic!("one crate name in the first cell of {row:?}");
        };
        let manifest = std::fs::read_to_string(format!("{}/crates/{name}/Cargo.toml", root()))
            .unwrap_or_else(|e| {
                panic!("the Layers table names {name}: crates/{name}/Cargo.toml: {e}")
            });
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "crates/{name}/Cargo.toml is not the package {name}"
        );
        assert!(
            workspace.contains(&format!("\"crates/{name}\"")),
            "{name} is not a member of the workspace"
        );
    }
    assert!(rows.len() >= 7, "{rows:?}");
}
