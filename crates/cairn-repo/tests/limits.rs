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
