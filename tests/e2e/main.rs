//! End-to-end tests of the `cairn` binary: each test builds its own source
//! tree and repository in a temporary directory and drives the CLI.

mod common;

mod bitflip;
mod browse;
mod cold;
mod cold_maintenance;
mod concurrency;
mod copy;
mod corruption;
mod damaged;
mod devices;
mod durability;
mod errors;
mod fidelity;
mod help;
mod incremental;
mod init;
mod inplace;
mod interrupt;
mod json_schema;
mod keys;
mod listing;
mod lock;
mod longpaths;
mod maintenance;
mod moto;
mod mount;
mod partial;
mod pause;
mod roundtrip;
mod s3;
mod selection;
mod sparse;
mod storage_classes;
mod stream;
mod tls;
mod unprivileged;
