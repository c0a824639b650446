//! `init` creates a repository only where there is nothing, and exactly one
//! of several racing `init`s wins.

use std::process::Stdio;

use crate::common::{CHEAP_KDF, Repo, Run};

#[test]
fn init_refuses_a_non_empty_directory_and_leaves_its_file_alone() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("not-a-repo");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(dir.join("notes.txt"), b"unrelated\n").expect("write");

    let repo = Repo::at(&dir, "pw");
    let r = repo
        .run(["init"].into_iter().chain(CHEAP_KDF))
        .expect_code(1);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
    let left = repo.contents();
    assert_eq!(left.len(), 1, "init wrote something: {:?}", left.keys());
    assert_eq!(
        left.get("notes.txt").map(Vec::as_slice),
        Some(&b"unrelated\n"[..])
    );
}

#[test]
fn init_refuses_an_existing_repository_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = Repo::init(tmp.path().join("repo"));
    let before = repo.contents();

    let again = Repo::at(&repo.path, "another password");
    let r = again
        .run(["init"].into_iter().chain(CHEAP_KDF))
        .expect_code(1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    assert!(before == repo.contents(), "the repository changed");
    repo.run(["snapshots"]).success();
    again.run(["snapshots"]).expect_code(1);
}

#[test]
fn racing_inits_make_exactly_one_repository_with_the_winners_password() {
    const RACERS: usize = 8;
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("repo");
    std::fs::create_dir(&dir).expect("mkdir");
    let repos: Vec<Repo> = (0..RACERS)
        .map(|i| Repo::at(&dir, &format!("password {i}")))
        .collect();

    // Start them all before waiting for any.
    let children: Vec<_> = repos
        .iter()
        .map(|r| {
            let mut c = r.command(["init"].into_iter().chain(CHEAP_KDF));
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            let what = format!("{c:?}");
            (what, c.spawn().expect("spawn cairn init"))
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|(what, child)| {
            Run::from_output(what, child.wait_with_output().expect("wait for cairn init"))
        })
        .collect();

    let winners: Vec<usize> = (0..RACERS).filter(|&i| runs[i].code == Some(0)).collect();
    assert_eq!(winners.len(), 1, "winners {winners:?}: {runs:#?}");
    for r in &runs {
        assert!(matches!(r.code, Some(0 | 1)), "{r:?}");
        assert!(!r.stderr.contains("panicked"), "{r:?}");
    }

    let objects = repos[0].objects();
    let keys: Vec<&String> = objects.keys().filter(|p| p.starts_with("keys/")).collect();
    assert_eq!(keys.len(), 1, "key files: {keys:?}");
    assert!(objects.contains_key("config"), "{objects:?}");
    assert_eq!(objects.len(), 2, "stray objects: {objects:?}");

    let opens: Vec<usize> = (0..RACERS)
        .filter(|&i| repos[i].run(["snapshots"]).code == Some(0))
        .collect();
    assert_eq!(opens, winners, "the passwords that open the repository");
}

/// The lanes of a new key: as asked, else 4 (RFC 9106's setting), or one
/// per 8 KiB of memory when that is fewer; a key with lanes unlocks.
#[test]
fn init_gives_the_key_the_lanes_asked_for_or_as_many_as_its_memory_allows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cases: [(&[&str], u64); 3] = [
        (&["--kdf-memory", "8"], 1),
        (&["--kdf-memory", "24"], 3),
        (&["--kdf-memory", "64", "--kdf-lanes", "2"], 2),
    ];
    for (i, (args, lanes)) in cases.into_iter().enumerate() {
        let repo = Repo::at(tmp.path().join(format!("r{i}")), "test password");
        let mut init = vec!["init", "--kdf-iterations", "1"];
        init.extend_from_slice(args);
        repo.run(init).success();
        let keys = repo.run(["key", "list", "--json"]).success().json();
        let id = keys[0]["id"].as_str().expect("key id").to_owned();
        let key = repo.run(["cat", "key", &id]).success().json();
        assert_eq!(key["kdf"]["p_cost"], lanes, "{args:?}: {key:#}");
    }
}
