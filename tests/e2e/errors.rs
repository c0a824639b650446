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
