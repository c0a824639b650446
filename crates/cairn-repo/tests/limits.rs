//! A writer never stores an object that readers would refuse for its size.

mod common;

use cairn_core::{Kind, max_plaintext};
use cairn_repo::{BlobWriter, Error};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_above_its_kinds_limit_is_refused_and_never_written() {
    let (repo, _clock) = repo().await;
    let writer = BlobWriter::new(&repo).expect("writer");
    let too_big = vec![7u8; max_plaintext(Kind::Data) + 1];
    let at_limit = vec![8u8; max_plaintext(Kind::Data)];
    let (refused, accepted, writer) = tokio::task::spawn_blocking(move || {
        let refused = writer.add_blob(Kind::Data, &too_big);
        let accepted = writer.add_blob(Kind::Data, &at_limit);
        (refused, accepted, writer)
    })
    .await
    .expect("join");
    match refused {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("limit"), "{m}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let (id, new) = accepted.expect("a blob at the limit is stored");
    assert!(new);
    writer.finish().await.expect("finish");
    // What was stored reads back: readers accept exactly what writers write.
    assert_eq!(
        repo.read_blob(Kind::Data, &id).await.expect("read").len(),
        max_plaintext(Kind::Data)
    );
}

/// A pack, header and trailer included, stays within the configured size
/// unless its only blob is larger: the writer's pack buffers are allocated
/// at that size and never grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packs_stay_within_their_target_size_unless_one_blob_is_larger() {
    let (repo, _clock) = repo().await; // 64 KiB data packs
    let target = 64 * 1024;
    let writer = BlobWriter::new(&repo).expect("writer");
    let mut blobs: Vec<Vec<u8>> = (0..200u64)
        .map(|i| cairn_testkit::noise(i, 1 + (i as usize * 7919) % (20 * 1024)))
        .collect();
    blobs.insert(100, cairn_testkit::noise(1000, target + 1000));
    let writer = tokio::task::spawn_blocking(move || {
        for b in &blobs {
            writer.add_blob(Kind::Data, b).expect("add");
        }
        writer
    })
    .await
    .expect("join");
    let stats = writer.finish().await.expect("finish");
    let packs = repo.list_packs().await.expect("list");
    assert_eq!(packs.len() as u64, stats.data_packs);
    let (mut single, mut total) = (0, 0);
    for (id, size) in packs {
        let hex = id.to_string();
        let bytes = repo
            .store()
            .get(&format!("data/{}/{hex}", &hex[..2]))
            .await
            .expect("get pack");
        assert_eq!(bytes.len() as u64, size);
        // The trailer gives the sealed header's length, 46 bytes + 45 per blob.
        let h = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().expect("4 bytes"));
        let blobs_in_pack = (h as usize - 46) / 45;
        if blobs_in_pack == 1 && size > target as u64 {
            single += 1;
        } else {
            assert!(
                size <= target as u64,
                "a pack of {size} bytes and {blobs_in_pack} blobs"
            );
        }
        total += blobs_in_pack;
    }
    assert_eq!(single, 1, "the blob larger than a pack has one of its own");
    assert_eq!(total, 201);
    assert!(
        stats.data_packs >= 30,
        "{} packs for about 2 MiB",
        stats.data_packs
    );
}

/// A pack that reaches its target with one blob is uploaded at once, not
/// when the next blob comes: a writer killed before then would otherwise
/// have stored nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pack_full_with_one_blob_is_uploaded_before_the_next_blob() {
    let (repo, _clock) = repo().await; // 64 KiB data packs
    let writer = BlobWriter::new(&repo).expect("writer");
    let big = cairn_testkit::noise(7, 70 * 1024);
    let writer = tokio::task::spawn_blocking(move || {
        writer.add_blob(Kind::Data, &big).expect("add");
        writer
    })
    .await
    .expect("join");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while repo.list_packs().await.expect("list").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the full pack was not uploaded before the writer finished"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let stats = writer.finish().await.expect("finish");
    assert_eq!(stats.data_packs, 1);
}
