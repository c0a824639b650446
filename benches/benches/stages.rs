//! Single-core throughput of each backup stage on 1 MiB chunks (the default
//! average): chunking, keyed hashing, sealing (zstd + XChaCha20-Poly1305) of
//! incompressible and text-like data, opening, packing, and index lookups
//! (in memory and in the table on local disk, present and absent ids), and
//! small blobs sealed one by one against sealed and opened as a bundle.
//!
//! `cargo bench -p cairn-benches --bench stages`

use std::hint::black_box;

use cairn_core::format::bundle_v1::BUNDLE_SEAL_ID;
use cairn_core::format::{Bundle, BundleBuilder, IndexFile, IndexPack, PackBuilder, PackEntry};
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
    bundles(c);
    index_lookups(c);
}

/// 256 text-like blobs of 4 KiB (1 MiB): sealed one by one, as format 1
/// stores them, or as one bundle (format 2); and read back each way.
fn bundles(c: &mut Criterion) {
    let rng = SeededRandom::new(2);
    let keys = MasterKey::generate(&rng).derive();
    let small: Vec<(cairn_core::Id, Vec<u8>)> = (0..256u64)
        .map(|i| {
            let b = text(100 + i, 4096);
            (keys.id_of(&b), b)
        })
        .collect();
    let z = Compression::Zstd(3);
    let mut g = c.benchmark_group("bundles");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(256 * 4096));
    g.bench_function("seal_256x4KiB_one_by_one", |b| {
        b.iter(|| {
            small
                .iter()
                .map(|(id, p)| seal(&keys, Kind::Data, id, black_box(p), z, &rng).len())
                .sum::<usize>()
        })
    });
    let bundle_of = || {
        let mut bb = BundleBuilder::default();
        for (id, p) in &small {
            bb.push(*id, p);
        }
        seal(
            &keys,
            Kind::Bundle,
            &BUNDLE_SEAL_ID,
            &bb.finish().0,
            z,
            &rng,
        )
    };
    g.bench_function("seal_256x4KiB_as_a_bundle", |b| {
        b.iter(|| bundle_of().len())
    });
    let one_by_one: Vec<Vec<u8>> = small
        .iter()
        .map(|(id, p)| seal(&keys, Kind::Data, id, p, z, &rng))
        .collect();
    g.bench_function("open_256x4KiB_one_by_one", |b| {
        b.iter(|| {
            small
                .iter()
                .zip(&one_by_one)
                .map(|((id, _), s)| {
                    open(&keys, Kind::Data, id, black_box(s)).map_or(0, |p| p.len())
                })
                .sum::<usize>()
        })
    });
    let sealed = bundle_of();
    g.bench_function("open_256x4KiB_from_a_bundle", |b| {
        b.iter(|| {
            let plain = open(&keys, Kind::Bundle, &BUNDLE_SEAL_ID, black_box(&sealed));
            let bundle = plain.and_then(Bundle::decode).map_err(|e| e.to_string());
            bundle.map_or(0, |bu| {
                small.iter().filter_map(|(id, _)| bu.get(id)).count()
            })
        })
    });
    g.finish();
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
