//! `--help` works everywhere and documents the exit codes.

use crate::common::{Run, bare_command};

/// Every verb, as words on the command line.
const VERBS: &[&[&str]] = &[
    &["init"],
    &["backup"],
    &["restore"],
    &["snapshots"],
    &["ls"],
    &["dump"],
    &["diff"],
    &["find"],
    &["check"],
    &["forget"],
    &["prune"],
    &["repair"],
    &["repair", "index"],
    &["key"],
    &["key", "add"],
    &["key", "list"],
    &["key", "remove"],
    &["key", "passwd"],
    &["cat"],
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
    for parent in [&[][..], &["key"][..], &["repair"][..]] {
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
    for code in ["0", "1", "3"] {
        assert!(
            codes.contains(&code),
            "exit code {code} undocumented:\n{text}"
        );
    }
}
