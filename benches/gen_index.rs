//! Adds synthetic index files to an existing repository, so the memory of
//! a backup against a repository with a very large index can be measured
//! without first storing terabytes (benches/index_scale.sh).
//!
//! `gen-index REPO ENTRIES [PER_FILE]` with the password in CAIRN_PASSWORD.
//!
//! The entries point at packs that do not exist: the repository is only
//! fit for backups (which look blobs up but never read them) and for
//! measuring; `check` reports every entry as missing.

use cairn::layers::core::format::{IndexPack, PackEntry};
use cairn::{Id, IndexFile, Kind, OpenOptions, Repository, Store};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: gen-index REPO ENTRIES [PER_FILE] (password in CAIRN_PASSWORD)";
    let repo_path = args.get(1).ok_or(usage)?;
    let entries: u64 = args.get(2).ok_or(usage)?.parse()?;
    let per_file: u64 = args.get(3).map_or(Ok(200_000), |s| s.parse())?;
    let password = std::env::var("CAIRN_PASSWORD").map_err(|_| usage)?;
    let store = Store::open(repo_path, cairn::Create::Never)?;
    let repo = Repository::open(store, password.as_bytes(), OpenOptions::default()).await?;
    // Ids as a real repository has them: uniformly spread. Packs of 16
    // blobs of about 1 MiB, as the default chunker and pack size give.
    let id_of = |n: u64| Id::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes());
    let mut n = 0u64;
    let mut files = 0;
    while n < entries {
        let end = (n + per_file).min(entries);
        let mut packs = Vec::new();
        let mut at = n;
        while at < end {
            let last = (at + 16).min(end);
            packs.push(IndexPack {
                pack: id_of(u64::MAX - at),
                blobs: (at..last)
                    .map(|i| PackEntry {
                        kind: Kind::Data,
                        id: id_of(i),
                        offset: ((i - at) as u32) << 20,
                        length: (1 << 20) + 40,
                        raw_length: 1 << 20,
                    })
                    .collect(),
            });
            at = last;
        }
        let file = IndexFile {
            created: 1,
            packs,
            ..IndexFile::default()
        };
        repo.store_index_file(&file).await?;
        files += 1;
        n = end;
    }
    println!("{entries} entries in {files} index files");
    Ok(())
}
