//! Single-core throughput of each backup stage on 1 MiB chunks (the default
//! average): chunking, keyed hashing, sealing (zstd + XChaCha20-Poly1305) of
//! incompressible and text-like data, opening, packing, and index lookups
//! (in memory and in the memory-mapped table, present and absent ids).
//!
//! `cargo bench -p cairn-benches --bench stages`

use std::hint::black_box;

use cairn_core::format::{IndexFile, IndexPack, PackBuilder, PackEntry};
use cairn_core::{ChunkerParams, Compression, Kind, MasterKey, SeededRandom, open, seal};
use cairn_repo::Index;
use cairn_testkit::{noise, text};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn stages(c: &mut Criterion) {
    let rng = SeededRandom::new(1);
    let keys = MasterKey::generate(&rng).derive();
    let params = ChunkerParams::with_seed(42);
    let big = noise(1, 64 << 20);
    let chunk = noise(1, 1 << 20);
    let chunk_text = text(7, 1 << 20);

    let mut g = c.benchmark_group("stages");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(big.len() as u64));
    g.bench_function("chunk_fastcdc_64MiB", |b| {
        b.iter(|| params.chunks(black_box(&big)).count())
    });

    g.throughput(Throughput::Bytes(chunk.len() as u64));
    g.bench_function("hash_keyed_blake3_1MiB", |b| {
        b.iter(|| keys.id_of(black_box(&chunk)))
    });
    let id = keys.id_of(&chunk);
    g.bench_function("seal_zstd3_noise_1MiB", |b| {
        b.iter(|| {
            seal(
                &keys,
                Kind::Data,
                &id,
                black_box(&chunk),
                Compression::Zstd(3),
                &rng,
            )
        })
    });
    g.bench_function("seal_zstd3_text_1MiB", |b| {
        b.iter(|| {
            seal(
                &keys,
                Kind::Data,
                &id,
                black_box(&chunk_text),
                Compression::Zstd(3),
                &rng,
            )
        })
    });
    g.bench_function("seal_raw_1MiB", |b| {
        b.iter(|| {
            seal(
                &keys,
                Kind::Data,
                &id,
                black_box(&chunk),
                Compression::None,
                &rng,
            )
        })
    });
    let sealed = seal(&keys, Kind::Data, &id, &chunk, Compression::Zstd(3), &rng);
    g.bench_function("open_noise_1MiB", |b| {
        b.iter(|| open(&keys, Kind::Data, &id, black_box(&sealed)))
    });
    let tid = keys.id_of(&chunk_text);
    let sealed_text = seal(
        &keys,
        Kind::Data,
        &tid,
        &chunk_text,
        Compression::Zstd(3),
        &rng,
    );
    g.bench_function("open_text_1MiB", |b| {
        b.iter(|| open(&keys, Kind::Data, &tid, black_box(&sealed_text)))
    });

    // Packing: 16 sealed 1 MiB blobs into a 16 MiB pack with its header.
    let blobs: Vec<(cairn_core::Id, Vec<u8>)> = (0..16u32)
        .map(|i| {
            let mut c = chunk.clone();
            c[..4].copy_from_slice(&i.to_le_bytes());
            let id = keys.id_of(&c);
            (
                id,
                seal(&keys, Kind::Data, &id, &c, Compression::None, &rng),
            )
        })
        .collect();
    let pack_bytes: usize = blobs.iter().map(|(_, b)| b.len()).sum();
    g.throughput(Throughput::Bytes(pack_bytes as u64));
    g.bench_function("pack_16x1MiB", |b| {
        b.iter(|| {
            let mut p = PackBuilder::with_capacity(pack_bytes + 4096);
            for (id, sealed) in &blobs {
                p.push(Kind::Data, *id, sealed, 1 << 20);
            }
            p.finish(&keys, &id, &rng).0.len()
        })
    });
    g.finish();
    index_lookups(c);
}

/// One million index entries, looked up in memory and in the table.
fn index_lookups(c: &mut Criterion) {
    const N: u64 = 1_000_000;
    let id_of = |n: u64| cairn_core::Id::from_bytes(*blake3::hash(&n.to_le_bytes()).as_bytes());
    let file = IndexFile {
        created: 1,
        packs: (0..N / 16)
            .map(|p| IndexPack {
                pack: id_of(u64::MAX - p),
                blobs: (p * 16..p * 16 + 16)
                    .map(|i| PackEntry {
                        kind: Kind::Data,
                        id: id_of(i),
                        offset: (i % 16) as u32,
                        length: 1,
                        raw_length: 1,
                    })
                    .collect(),
            })
            .collect(),
        ..IndexFile::default()
    };
    let name = id_of(u64::MAX / 2);
    let memory = Index::from_files([(name, &file)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let table = Index::build_in(dir.path(), &name, [(name, &file)]).expect("table");
    drop(file);
    let mut g = c.benchmark_group("index_1M");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    for (what, index) in [("memory", &memory), ("table", &table)] {
        g.bench_function(format!("{what}_present"), |b| {
            b.iter(|| {
                i = (i + 7919) % N;
                index.contains(black_box(&id_of(i)))
            })
        });
        g.bench_function(format!("{what}_absent"), |b| {
            b.iter(|| {
                i += 1;
                index.contains(black_box(&id_of(N + i)))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
