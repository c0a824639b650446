//! Where passwords come from.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};

fn first_line(path: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read(path)
        .with_context(|| format!("cannot read password file {}", path.display()))?;
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(line.to_vec())
}

/// The repository password: CAIRN_PASSWORD, the password file
/// (--password-file or CAIRN_PASSWORD_FILE), or a prompt on a terminal.
pub(crate) fn repository(file: Option<&Path>) -> Result<Vec<u8>> {
    if let Some(p) = env_bytes("CAIRN_PASSWORD") {
        return Ok(p);
    }
    if let Some(f) = file {
        return first_line(f);
    }
    if std::io::stdin().is_terminal() {
        return Ok(rpassword::prompt_password("Repository password: ")?.into_bytes());
    }
    bail!(
        "no password: set CAIRN_PASSWORD or CAIRN_PASSWORD_FILE, pass --password-file, or run on a terminal"
    )
}

fn prompt_twice() -> Result<Vec<u8>> {
    let a = rpassword::prompt_password("New password: ")?;
    let b = rpassword::prompt_password("Repeat new password: ")?;
    if a != b {
        bail!("the passwords do not match");
    }
    Ok(a.into_bytes())
}

fn env_bytes(name: &str) -> Option<Vec<u8>> {
    std::env::var_os(name).map(std::os::unix::ffi::OsStringExt::into_vec)
}

fn non_empty(p: Vec<u8>) -> Result<Vec<u8>> {
    if p.is_empty() {
        bail!("an empty password is not allowed");
    }
    Ok(p)
}

/// A password being set: from the variable `env`, then `file`, then asked
/// twice on a terminal. `what` names the missing sources in the error.
fn new_password(env: &str, file: Option<&Path>, what: &str) -> Result<Vec<u8>> {
    if let Some(p) = env_bytes(env) {
        return non_empty(p);
    }
    if let Some(f) = file {
        return non_empty(first_line(f)?);
    }
    if std::io::stdin().is_terminal() {
        return non_empty(prompt_twice()?);
    }
    bail!("no {what}: set {env}, pass a password file, or run on a terminal")
}

/// The password for a new repository: CAIRN_PASSWORD, the password file
/// (--password-file or CAIRN_PASSWORD_FILE), or asked twice.
pub(crate) fn for_init(file: Option<&Path>) -> Result<Vec<u8>> {
    new_password("CAIRN_PASSWORD", file, "password")
}

/// A new password for `key add`/`key passwd`: CAIRN_NEW_PASSWORD, the
/// --new-password-file, or asked twice.
pub(crate) fn new_key(file: Option<&Path>) -> Result<Vec<u8>> {
    new_password("CAIRN_NEW_PASSWORD", file, "new password")
}
