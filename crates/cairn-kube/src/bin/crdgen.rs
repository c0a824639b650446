//! Writes the CRDs of every cairn resource as YAML into a directory
//! (default `deploy/base/crds`), or prints them with `-`.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let out = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/base/crds").to_owned()
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
