//! Backup then restore gives back the same bytes, modes and mtimes: of the
//! whole tree, of a sub-directory and of a single file.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::common::Repo;
use crate::common::compare::{assert_no_differences, entry_differences, tree_differences};
use crate::common::source::{SINGLE_FILE, SUB_DIR, TreeSpec, generate};

#[test]
fn generated_tree_restores_identically_whole_by_sub_path_and_single_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    generate(&src, TreeSpec::FULL);
    let repo = Repo::init(tmp.path().join("repo"));
    repo.run([OsStr::new("backup"), src.as_os_str()]).success();

    let out = tmp.path().join("out");
    repo.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        out.as_os_str(),
    ])
    .success();
    assert_no_differences(&tree_differences(&src, &out), "full restore");

    let out2 = tmp.path().join("out2");
    repo.run([
        OsStr::new("restore"),
        OsStr::new(&format!("latest:/{SUB_DIR}")),
        OsStr::new("--target"),
        out2.as_os_str(),
    ])
    .success();
    assert_no_differences(
        &tree_differences(&src.join(SUB_DIR), &out2),
        "sub-path restore",
    );

    let out3 = tmp.path().join("out3");
    repo.run([
        OsStr::new("restore"),
        OsStr::new(&format!("latest:/{SINGLE_FILE}")),
        OsStr::new("--target"),
        out3.as_os_str(),
    ])
    .success();
    // The target holds the file alone, under its own name.
    let name = src
        .join(SINGLE_FILE)
        .file_name()
        .map(ToOwned::to_owned)
        .expect("a file name");
    let restored: Vec<_> = std::fs::read_dir(&out3)
        .expect("read the target")
        .map(|e| e.expect("a directory entry").file_name())
        .collect();
    assert_eq!(restored, std::slice::from_ref(&name), "single-file restore");
    assert_no_differences(
        &entry_differences(&src.join(SINGLE_FILE), &out3.join(&name)),
        "single-file restore",
    );
}

/// Restore writes each file under a longer temporary name first; for names
/// near the 255-byte limit that name was too long, and the restore failed.
#[test]
fn files_with_255_byte_names_restore() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    // Names that differ only in their last byte, so a temporary name that
    // keeps only a prefix must still tell them apart.
    for (i, last) in (b'1'..=b'8').enumerate() {
        let mut name = vec![b'n'; 254];
        name.push(last);
        let content = crate::common::source::xorshift(i as u64).bytes(100_000 + i);
        std::fs::write(src.join(OsStr::from_bytes(&name)), content).expect("write");
    }
    let repo = Repo::init(tmp.path().join("repo"));
    repo.run([OsStr::new("backup"), src.as_os_str()]).success();

    let out = tmp.path().join("out");
    repo.run([
        OsStr::new("restore"),
        OsStr::new("latest"),
        OsStr::new("--target"),
        out.as_os_str(),
    ])
    .success();
    assert_no_differences(&tree_differences(&src, &out), "restore");
}
