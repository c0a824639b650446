//! docs/ARCHITECTURE.md's table of error types lists exactly the variants
//! the code has.

use std::collections::BTreeSet;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// The variant names of `pub enum NAME` in a source file: identifiers that
/// start a line at one level of indentation inside the enum's braces.
fn variants(file: &str, name: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(format!("{ROOT}/{file}")).expect("source file");
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
    let doc = std::fs::read_to_string(format!("{ROOT}/docs/ARCHITECTURE.md")).expect("doc");
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
