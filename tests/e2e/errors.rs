//! A wrong password is a clean, one-line failure that touches nothing.

use std::ffi::OsString;

use crate::common::Repo;
use crate::common::source::{TreeSpec, generate};

#[test]
fn wrong_password_fails_with_one_line_and_leaves_repository_untouched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::with_big_file(100_000));
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);
    let before = repo.contents();
    let target = tmp.path().join("out");

    let commands: Vec<Vec<OsString>> = vec![
        vec!["snapshots".into()],
        vec!["backup".into(), src.clone().into()],
        vec![
            "restore".into(),
            "latest".into(),
            "--target".into(),
            target.clone().into(),
        ],
        vec!["ls".into(), "latest".into()],
        vec!["check".into()],
        vec!["cat".into(), "config".into()],
        vec!["key".into(), "list".into()],
    ];
    for args in commands {
        let r = repo.run_with_password("wrong", &args).expect_code(1);
        let lines: Vec<&str> = r.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{args:?}: stderr is not one line:\n{}",
            r.stderr
        );
        assert!(
            lines[0].contains("wrong password"),
            "{args:?}: stderr does not say \"wrong password\": {}",
            lines[0]
        );
        assert_eq!(r.stdout, "", "{args:?}: printed on stdout");
    }
    assert!(!target.exists(), "restore created its target");
    assert!(
        before == repo.contents(),
        "the repository changed: before {:?}, after {:?}",
        before.keys().collect::<Vec<_>>(),
        repo.objects()
    );
}

/// An index larger than the local table may take is a clear error that
/// names the setting to raise, and the setting (flag or environment) lets
/// the same backup run.
#[test]
fn an_index_over_the_table_limit_names_the_setting_that_raises_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::with_big_file(100_000));
    let repo = Repo::init(tmp.path().join("repo"));
    repo.backup_json(&src);
    let src_arg = src.clone().into_os_string();

    let args: Vec<OsString> = vec!["--index-table-limit".into(), "0".into(), "backup".into()];
    let r = repo
        .run(args.into_iter().chain([src_arg.clone()]))
        .expect_code(1);
    assert!(
        r.stderr.contains("--index-table-limit") && r.stderr.contains("CAIRN_INDEX_TABLE_LIMIT"),
        "{}",
        r.stderr
    );

    let mut c = repo.command([OsString::from("backup"), src_arg]);
    c.env("CAIRN_INDEX_TABLE_LIMIT", "64");
    crate::common::Run::of(c).success();
}
