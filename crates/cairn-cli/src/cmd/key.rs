//! `cairn key add|list|remove|passwd`

use anyhow::Result;

use crate::cli::{Global, KeyCommand};
use crate::output::time;
use crate::{context, exit, password};

pub(crate) async fn run(g: &Global, k: KeyCommand) -> Result<u8> {
    let repo = context::open_overlapped(g).await?;
    let (host, user, now) = (
        context::hostname(),
        context::username(),
        context::now().secs,
    );
    match k {
        KeyCommand::Add(a) => {
            let pw = password::new_key(a.new_password_file.as_deref())?;
            let id = repo
                .add_key(&pw, super::init::kdf(&a.kdf), &host, &user, now)
                .await?;
            if !g.quiet {
                println!("added key {}", id.short());
            }
        }
        KeyCommand::Passwd(a) => {
            let pw = password::new_key(a.new_password_file.as_deref())?;
            let id = repo
                .change_password(&pw, super::init::kdf(&a.kdf), &host, &user, now)
                .await?;
            if !g.quiet {
                println!(
                    "password changed: key {} replaces {}",
                    id.short(),
                    repo.key_id().short()
                );
            }
        }
        KeyCommand::Remove(a) => {
            let id = repo.remove_key(&a.id).await?;
            if !g.quiet {
                println!("removed key {}", id.short());
            }
        }
        KeyCommand::List(a) => {
            let keys = repo.list_keys().await?;
            if a.json {
                super::print_json(&keys)?;
            } else {
                println!(
                    "  {:<8}  {:<19}  {:<16}  user",
                    "id", "created (UTC)", "host"
                );
                for k in keys {
                    println!(
                        "{} {:<8}  {:<19}  {:<16}  {}",
                        if k.current { '*' } else { ' ' },
                        k.id.short(),
                        time(k.created),
                        k.host,
                        k.user
                    );
                }
            }
        }
    }
    Ok(exit::OK)
}
