//! Writes the CRDs of every cairn resource as YAML into a directory
//! (default `deploy/base/crds`), or prints them with `-`.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    // `cargo run` says where this crate is as it runs; the path fixed at
    // compile time may be another checkout's that shares the target dir.
    let out = std::env::args().nth(1).unwrap_or_else(|| {
        let here = std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
        format!("{here}/../../deploy/base/crds")
    });
    for (file, crd) in cairn_kube::crd::all() {
        let yaml = cairn_kube::crd::to_yaml(&crd)?;
        if out == "-" {
            print!("---\n{yaml}");
        } else {
            let path = PathBuf::from(&out).join(file);
            std::fs::create_dir_all(&out)?;
            std::fs::write(&path, yaml)?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
