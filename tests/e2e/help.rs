//! `--help` works everywhere and documents the exit codes.

use crate::common::{Run, bare_command};

/// Every verb, as words on the command line.
const VERBS: &[&[&str]] = &[
    &["init"],
    &["backup"],
    &["restore"],
    &["warm-up"],
    &["snapshots"],
    &["ls"],
    &["dump"],
    &["mount"],
    &["diff"],
    &["find"],
    &["check"],
    &["forget"],
    &["prune"],
    &["copy"],
    &["repair"],
    &["repair", "index"],
    &["key"],
    &["key", "add"],
    &["key", "list"],
    &["key", "remove"],
    &["key", "passwd"],
    &["lock"],
    &["lock", "extend"],
    &["lock", "recover"],
    &["cat"],
    &["settings"],
    &["completions"],
    &["man"],
];

fn help(words: &[&str]) -> Run {
    let mut c = bare_command();
    c.args(words).arg("--help");
    Run::of(c).success()
}

/// The subcommand names listed under "Commands:" in a help text.
fn listed_commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn help_works_for_every_verb() {
    for words in VERBS {
        let r = help(words);
        assert!(
            r.stdout.contains("Usage: cairn"),
            "{words:?} --help:\n{}",
            r.stdout
        );
    }
}

#[test]
fn every_listed_verb_is_covered_by_the_help_test() {
    for parent in [&[][..], &["key"][..], &["repair"][..], &["lock"][..]] {
        for verb in listed_commands(&help(parent).stdout) {
            let words: Vec<&str> = parent.iter().copied().chain([verb.as_str()]).collect();
            assert!(
                VERBS.contains(&words.as_slice()),
                "{words:?} is not in VERBS"
            );
        }
    }
}

#[test]
fn top_level_help_documents_exit_codes() {
    let text = help(&[]).stdout;
    let codes: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Exit codes"))
        .skip(1)
        .map_while(|l| l.split_whitespace().next())
        .collect();
    for code in ["0", "1", "3", "4"] {
        assert!(
            codes.contains(&code),
            "exit code {code} undocumented:\n{text}"
        );
    }
}

/// What a completion script for `shell` must contain to complete `words`.
fn completion_marker(shell: &str, words: &[&str]) -> String {
    let verb = words[words.len() - 1];
    match shell {
        // A case for the path of subcommands: `cairn__subcmd__key,add)`.
        "bash" => {
            let parent: Vec<String> = std::iter::once("cairn".to_owned())
                .chain(
                    words[..words.len() - 1]
                        .iter()
                        .map(|w| format!("subcmd__{w}")),
                )
                .collect();
            format!("{},{verb})", parent.join("__"))
        }
        "fish" => format!("-a \"{verb}\""),
        _ => format!("'{verb}:"),
    }
}

#[test]
fn completions_cover_every_verb_in_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let mut c = bare_command();
        c.args(["completions", shell]);
        let script = Run::of(c).success().stdout;
        for words in VERBS {
            let marker = completion_marker(shell, words);
            assert!(
                script.contains(&marker),
                "{shell} completions lack {words:?} ({marker:?})"
            );
        }
    }
}

#[test]
fn completions_refuse_an_unknown_shell() {
    let mut c = bare_command();
    c.args(["completions", "tcsh"]);
    let r = Run::of(c);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("tcsh"), "{}", r.stderr);
}

#[test]
fn man_writes_a_page_for_cairn_and_every_verb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("man1");
    let mut c = bare_command();
    c.arg("man").arg(&out);
    Run::of(c).success();
    let top = std::fs::read_to_string(out.join("cairn.1")).expect("cairn.1");
    assert!(top.contains(".TH cairn"), "{top}");
    for words in VERBS {
        let name = format!("cairn-{}.1", words.join("-"));
        let page =
            std::fs::read_to_string(out.join(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(page.contains(".SH NAME"), "{name} has no NAME section");
    }
}
