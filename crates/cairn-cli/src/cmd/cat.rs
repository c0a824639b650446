//! `cairn cat`: decrypted objects as JSON.

use anyhow::{Context, Result, anyhow, bail};
use cairn::layers::core::format::{KeyFile, pack_v1};
use cairn::{Id, Kind, Tree};

use crate::cli::{CatArgs, Global};
use crate::{context, exit};

fn full_id(id: Option<&str>) -> Result<Id> {
    let id = id.ok_or_else(|| anyhow!("this object needs an id"))?;
    Id::from_hex(id).with_context(|| format!("{id:?} is not a full 64-digit id"))
}

pub(crate) async fn run(g: &Global, a: CatArgs) -> Result<u8> {
    let repo = context::open(g).await?;
    let id = a.id.as_deref();
    match a.what.as_str() {
        "config" => super::print_json(repo.config())?,
        "snapshot" => {
            let (id, s) = repo.find_snapshot(id.unwrap_or("latest")).await?;
            let mut v = serde_json::to_value(&s)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("id".into(), serde_json::json!(id));
            }
            super::print_json(&v)?;
        }
        "tree" => {
            let id = full_id(id)?;
            let plain = repo.read_blob(Kind::Tree, &id).await?;
            super::print_json(&Tree::decode(&plain)?)?;
        }
        "index" => super::print_json(&repo.read_index_file(&full_id(id)?).await?)?,
        "pack" => {
            let id = full_id(id)?;
            let h = id.to_hex();
            let bytes = repo.store().get(&format!("data/{}/{h}", &h[..2])).await?;
            super::print_json(&pack_v1::read_header(repo.keys(), &id, &bytes)?)?;
        }
        "key" => {
            let id = full_id(id)?;
            let bytes = repo.store().get(&format!("keys/{id}")).await?;
            super::print_json(&KeyFile::decode(&bytes)?)?;
        }
        other => bail!("unknown object type {other}"),
    }
    Ok(exit::OK)
}
