//! Where passwords come from.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

/// A password, wiped from memory when dropped.
pub(crate) type Password = Zeroizing<Vec<u8>>;

fn first_line(path: &Path) -> Result<Password> {
    let text = Zeroizing::new(
        std::fs::read(path)
            .with_context(|| format!("cannot read password file {}", path.display()))?,
    );
    let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Zeroizing::new(line.to_vec()))
}

fn prompt(text: &str) -> Result<Password> {
    let answer = Zeroizing::new(rpassword::prompt_password(text)?);
    Ok(Zeroizing::new(answer.as_bytes().to_vec()))
}

/// An existing password: from the variable `env`, then `file`, then a
/// prompt with `question` on a terminal; `missing` says what to do instead.
fn existing(env: &str, file: Option<&Path>, question: &str, missing: &str) -> Result<Password> {
    if let Some(p) = env_bytes(env) {
        return Ok(p);
    }
    if let Some(f) = file {
        return first_line(f);
    }
    if std::io::stdin().is_terminal() {
        return prompt(question);
    }
    bail!("{missing}")
}

/// The repository password: CAIRN_PASSWORD, the password file
/// (--password-file or CAIRN_PASSWORD_FILE), or a prompt on a terminal.
pub(crate) fn repository(file: Option<&Path>) -> Result<Password> {
    existing(
        "CAIRN_PASSWORD",
        file,
        "Repository password: ",
        "no password: set CAIRN_PASSWORD or CAIRN_PASSWORD_FILE, pass --password-file, or run on a terminal",
    )
}

/// The password of a `copy` source: CAIRN_FROM_PASSWORD, the
/// --from-password-file (or CAIRN_FROM_PASSWORD_FILE), or a prompt.
pub(crate) fn source(file: Option<&Path>) -> Result<Password> {
    existing(
        "CAIRN_FROM_PASSWORD",
        file,
        "Source repository password: ",
        "no password for the source repository: set CAIRN_FROM_PASSWORD or CAIRN_FROM_PASSWORD_FILE, pass --from-password-file, or run on a terminal",
    )
}

fn prompt_twice() -> Result<Password> {
    let a = prompt("New password: ")?;
    let b = prompt("Repeat new password: ")?;
    if a != b {
        bail!("the passwords do not match");
    }
    Ok(a)
}

fn env_bytes(name: &str) -> Option<Password> {
    std::env::var_os(name)
        .map(std::os::unix::ffi::OsStringExt::into_vec)
        .map(Zeroizing::new)
}

fn non_empty(p: Password) -> Result<Password> {
    if p.is_empty() {
        bail!("an empty password is not allowed");
    }
    Ok(p)
}

/// A password being set: from the variable `env`, then `file`, then asked
/// twice on a terminal. `what` names the missing sources in the error.
fn new_password(env: &str, file: Option<&Path>, what: &str) -> Result<Password> {
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
pub(crate) fn for_init(file: Option<&Path>) -> Result<Password> {
    new_password("CAIRN_PASSWORD", file, "password")
}

/// A new password for `key add`/`key passwd`: CAIRN_NEW_PASSWORD, the
/// --new-password-file, or asked twice.
pub(crate) fn new_key(file: Option<&Path>) -> Result<Password> {
    new_password("CAIRN_NEW_PASSWORD", file, "new password")
}
