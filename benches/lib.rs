//! Benchmarks live under `benches/` of this package.
