//! Passwords: add, list, remove, change.

use crate::common::{CHEAP_KDF, Repo, Run, field_str};

/// `key add` or `key passwd` with CAIRN_NEW_PASSWORD.
fn new_key(repo: &Repo, password: &str, verb: &str, new_password: &str) -> Run {
    let mut c = repo.command_with_password(password, ["key", verb].into_iter().chain(CHEAP_KDF));
    c.env("CAIRN_NEW_PASSWORD", new_password);
    Run::of(c)
}

/// (id, current) of every key, listed with `password`.
fn list(repo: &Repo, password: &str) -> Vec<(String, bool)> {
    let v = repo
        .run_with_password(password, ["key", "list", "--json"])
        .success()
        .json();
    v.as_array()
        .expect("key list --json is an array")
        .iter()
        .map(|k| {
            let current = k["current"].as_bool().expect("a current flag");
            (field_str(k, "id").to_owned(), current)
        })
        .collect()
}

fn opens(repo: &Repo, password: &str) -> bool {
    let r = repo.run_with_password(password, ["snapshots"]);
    match r.code {
        Some(0) => true,
        Some(1) if r.stderr.contains("wrong password") => false,
        _ => panic!("{r:?}"),
    }
}

#[test]
fn keys_can_be_added_listed_changed_and_removed_but_not_the_one_in_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = Repo::init(tmp.path().join("repo"));
    let first = repo.password.clone();

    new_key(&repo, &first, "add", "second").success();
    assert!(opens(&repo, "second"), "the added password does not open");
    assert!(opens(&repo, &first), "the first password stopped working");

    let keys = list(&repo, &first);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let current: Vec<&String> = keys.iter().filter(|k| k.1).map(|k| &k.0).collect();
    assert_eq!(current.len(), 1, "{keys:?}");
    let first_id = current[0].clone();
    let second_id = keys
        .iter()
        .find(|k| !k.1)
        .map(|k| k.0.clone())
        .expect("the other key");
    // Listed with the other password, the other key is the current one.
    assert!(list(&repo, "second").contains(&(second_id.clone(), true)));

    let r = repo
        .run_with_password(&first, ["key", "remove", &first_id])
        .expect_code(1);
    assert!(r.stderr.contains("in use"), "{}", r.stderr);
    assert_eq!(list(&repo, &first).len(), 2, "the key in use was removed");

    new_key(&repo, "second", "passwd", "third").success();
    assert!(!opens(&repo, "second"), "the old password still works");
    assert!(opens(&repo, "third"), "the new password does not open");
    assert!(opens(&repo, &first), "passwd touched another key");
    let keys = list(&repo, "third");
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(!keys.iter().any(|k| k.0 == second_id), "{keys:?}");

    // A key not in use can be removed.
    repo.run_with_password("third", ["key", "remove", &first_id[..12]])
        .success();
    assert!(!opens(&repo, &first), "the removed password still works");
    assert_eq!(list(&repo, "third").len(), 1);
}
