//! `cairn dump`

use anyhow::{Result, bail};
use cairn::NodeKind;

use crate::cli::{DumpArgs, Global};
use crate::cmd::restore::split_spec;
use crate::{context, exit};

pub(crate) async fn run(g: &Global, a: DumpArgs) -> Result<u8> {
    let (snap, path) = split_spec(&a.spec);
    if path.trim_matches('/').is_empty() {
        bail!("name a file: SNAPSHOT:PATH");
    }
    let repo = context::open(g).await?;
    let (_, snapshot) = repo.find_snapshot(snap).await?;
    let node = cairn::resolve(&repo, &snapshot, path.as_bytes()).await?;
    if !matches!(node.kind, NodeKind::File | NodeKind::BlockDevice) {
        bail!("{path}: not a file");
    }
    // Unlocked stdout is Send; BufWriter makes the writes large.
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    cairn::dump(&repo, &node, &mut out).await?;
    Ok(exit::OK)
}
