//! `check --read-data` and `prune` on a repository whose data packs are in
//! GLACIER (moto; see tests/e2e/cold.rs for the helpers): check warms up
//! what it reads, prune leaves partly used archival packs alone unless
//! told to repack them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::cold::{Cold, POLL, pack_path, write_files};
use crate::common::field_u64;
use crate::moto::restore_delay;

const T0: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

/// `check --read-data` asks for the restore of every archived pack it
/// reads, waits, and verifies them; a subset asks for its packs only.
#[test]
fn cold_check_read_data_warms_up_the_packs_it_reads() {
    let Some(cold) = Cold::init("cold_check", "GLACIER") else {
        return;
    };
    crate::cold::three_backups(&cold);
    let (_, kinds) = cold.blob_packs();
    let data: BTreeSet<String> = kinds
        .iter()
        .filter(|(_, k)| *k == "data")
        .map(|(p, _)| p.clone())
        .collect();

    let mut args = vec!["check", "--read-data-subset", "1/2", "--json"];
    args.extend(POLL);
    let part = cold.run(&args).success();
    crate::json_schema::check_output("check", &part.stdout);
    let part = part.json();
    // Half the packs by id, which are random: possibly none (no warm-up).
    let w = &part["warm_up"];
    let count = |name: &str| w[name].as_u64().unwrap_or(0);
    assert_eq!(count("planned"), field_u64(&part, "packs_read"), "{part:#}");
    let asked: BTreeSet<String> = cold.restores().into_keys().collect();
    assert_eq!(count("requested"), asked.len() as u64, "{part:#}");
    let data_paths: BTreeSet<String> = data.iter().map(|p| pack_path(p)).collect();
    assert!(asked.is_subset(&data_paths), "{asked:?}");

    let mut args = vec!["check", "--read-data", "--json"];
    args.extend(POLL);
    let all = cold.run(&args).success().json();
    let w = &all["warm_up"];
    assert_eq!(field_u64(&all, "packs_read"), kinds.len() as u64, "{all:#}");
    assert_eq!(
        field_u64(w, "requested") + asked.len() as u64,
        data.len() as u64
    );
    assert_eq!(
        field_u64(&all, "packs_archived"),
        0,
        "warmed before reading headers"
    );
    assert!(field_u64(&all, "blobs_verified") > 0, "{all:#}");
    let once: BTreeMap<String, u64> = data_paths.into_iter().map(|p| (p, 1)).collect();
    assert_eq!(cold.restores(), once, "each data pack asked for once");
}

/// Backs up `keep` and `drop` into one data pack, then drops `drop`,
/// forgets the first snapshot and lets prune tombstone its blobs: the pack
/// is then half unused, a repack candidate. Returns the pack's id and the
/// time by which the tombstones are ripe.
fn half_used_pack(cold: &Cold) -> (String, i64) {
    let src = cold.src();
    write_files(&src.join("keep"), 1, 400_000, 11);
    write_files(&src.join("drop"), 1, 400_000, 12);
    cold.backup(Some(T0));
    let packs = cold.packs_under("latest", "");
    assert_eq!(packs.len(), 1, "one data pack: {packs:?}");
    std::fs::remove_dir_all(src.join("drop")).expect("rm");
    cold.backup(Some(T0 + 60));
    let at =
        |now: i64, args: &[&str]| crate::common::Run::of(cold.command(args, Some(now))).success();
    at(T0 + 120, &["forget", "--keep-last", "1"]);
    // Past the grace period, so the first backup's session no longer
    // protects its snapshot.
    let p = at(T0 + 7200, &["prune", "--grace", "1h", "--json"]).json();
    assert!(field_u64(&p, "blobs_tombstoned") > 0, "{p:#}");
    let pack = packs.into_iter().next().expect("a pack");
    (pack, T0 + DAY)
}

/// Prune leaves a partly used GLACIER pack as it is and says what that
/// saved; `--repack-cold` asks for its restore and repacks it once it is
/// readable.
#[test]
fn cold_prune_leaves_partly_used_archival_packs_unless_told_to_repack_them() {
    let Some(cold) = Cold::init("cold_prune", "GLACIER") else {
        return;
    };
    let (pack, later) = half_used_pack(&cold);
    let prune = |now: i64, extra: &[&str]| {
        let mut args = vec!["prune", "--grace", "1h", "--json"];
        args.extend(extra);
        crate::common::Run::of(cold.command(&args, Some(now)))
            .success()
            .json()
    };
    let p = prune(later, &[]);
    crate::json_schema::check_output("prune", &p.to_string());
    assert_eq!(field_u64(&p, "packs_cold_kept"), 1, "{p:#}");
    assert!(field_u64(&p, "bytes_cold_kept") > 400_000, "{p:#}");
    assert!(field_u64(&p, "bytes_cold_live") >= 400_000, "{p:#}");
    // Tree packs, hot, are repacked as usual; the data pack stays.
    assert!(cold.classes().contains_key(&pack_path(&pack)), "{p:#}");
    let dry = prune(later + 60, &["--repack-cold", "--dry-run"]);
    assert_eq!(field_u64(&dry, "cold_restores_requested"), 1, "{dry:#}");
    assert_eq!(
        cold.restores(),
        BTreeMap::new(),
        "no restore without the flag"
    );

    let p = prune(later + 120, &["--repack-cold"]);
    assert_eq!(field_u64(&p, "cold_restores_requested"), 1, "{p:#}");
    assert_eq!(
        field_u64(&p, "packs_cold_kept"),
        1,
        "waits for the restore: {p:#}"
    );
    let asked = BTreeMap::from([(pack_path(&pack), 1)]);
    assert_eq!(cold.restores(), asked);
    // Wait for moto's restore to end (a condition, bounded).
    let deadline = Instant::now() + restore_delay() + Duration::from_secs(60);
    while !cold
        .restore_header(&pack_path(&pack))
        .starts_with(r#"ongoing-request="false""#)
    {
        assert!(Instant::now() < deadline, "the restore never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    let p = prune(later + 180, &["--repack-cold"]);
    assert!(field_u64(&p, "packs_repacked") >= 1, "{p:#}");
    assert_eq!(field_u64(&p, "packs_cold_kept"), 0, "{p:#}");
    assert_eq!(cold.restores(), asked, "nothing asked twice");
    assert!(!cold.classes().contains_key(&pack_path(&pack)), "repacked");

    let target = cold.work.path().join("restored");
    let t = target.to_str().expect("utf-8");
    let mut args = vec!["restore", "latest", "--target", t];
    args.extend(POLL);
    cold.run(args).success();
    let restored = std::fs::read(target.join("keep/f00")).expect("restored file");
    let source = std::fs::read(cold.src().join("keep/f00")).expect("source file");
    assert!(restored == source, "the repacked file differs");
}

/// `cairn copy` from a repository whose data packs are archived (a
/// disaster-recovery copy out of the archive) asks for every data pack of
/// the snapshots it copies, once, waits, then copies them; the copy
/// restores byte-identical.
#[test]
fn cold_copy_out_of_an_archive_warms_the_packs_it_reads() {
    let Some(cold) = Cold::init("cold_copy", "GLACIER") else {
        return;
    };
    crate::cold::three_backups(&cold);
    let (_, kinds) = cold.blob_packs();
    let data: BTreeMap<String, u64> = kinds
        .iter()
        .filter(|(_, k)| *k == "data")
        .map(|(p, _)| (pack_path(p), 1))
        .collect();
    assert!(data.len() >= 3, "{kinds:?}");

    let dir = tempfile::tempdir().expect("tempdir");
    let target = crate::common::Repo::init(dir.path().join("copy"));
    let mut args = vec![
        "copy".to_owned(),
        "--from-repo".to_owned(),
        cold.repo.path.to_string_lossy().into_owned(),
        "--json".to_owned(),
    ];
    args.extend(POLL.iter().map(|s| s.to_string()));
    let mut c = target.command(&args);
    c.env("CAIRN_FROM_PASSWORD", &cold.repo.password);
    let out = crate::common::Run::of(c).success();
    crate::json_schema::check_output("copy", &out.stdout);
    let out = out.json();
    let w = &out["warm_up"];
    let n = data.len() as u64;
    assert_eq!(
        (field_u64(w, "planned"), field_u64(w, "requested")),
        (n, n),
        "{w:#}"
    );
    assert_eq!(out["copied"].as_array().map(Vec::len), Some(3), "{out:#}");
    assert_eq!(cold.restores(), data, "every data pack asked for once");

    let restored = dir.path().join("restored");
    let t = restored.to_str().expect("utf-8");
    target.run(["restore", "latest", "--target", t]).success();
    crate::common::compare::assert_no_differences(
        &crate::common::compare::tree_differences(&cold.src(), &restored),
        "the copy of an archived repository",
    );
}
