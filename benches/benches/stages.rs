//! Single-core throughput of each backup stage on 1 MiB chunks (the default
//! average): chunking, keyed hashing, sealing (zstd + XChaCha20-Poly1305) of
//! incompressible and text-like data, and opening.
//!
//! `cargo bench -p cairn-benches --bench stages`

use std::hint::black_box;

use cairn_core::{ChunkerParams, Compression, Kind, MasterKey, SeededRandom, open, seal};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn text(len: usize) -> Vec<u8> {
    let words = [
        "fn ", "let ", "cairn ", "chunk ", "(x) ", "{\n", "}\n", "self.", "0x1f ", "// why\n",
    ];
    let mut x = 7u64;
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.extend_from_slice(words[(x >> 33) as usize % words.len()].as_bytes());
    }
    out.truncate(len);
    out
}

fn stages(c: &mut Criterion) {
    let rng = SeededRandom::new(1);
    let keys = MasterKey::generate(&rng).derive();
    let params = ChunkerParams::with_seed(42);
    let big = noise(64 << 20);
    let chunk = noise(1 << 20);
    let chunk_text = text(1 << 20);

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
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
