//! AWS shared credentials files (`~/.aws/credentials`), as Velero's
//! credential Secrets hold them: `[profile]` sections of `key = value`
//! lines. Only the three credential keys are taken; the file comes from
//! whoever can write the Secret, so nothing else in it (a `credential_process`,
//! a `web_identity_token_file`, a `source_profile`) is ever followed, and no
//! error message repeats a value.

use zeroize::Zeroizing;

use crate::storage::Settings;

/// The keys taken from a profile, and the storage settings they become.
const KEYS: [(&str, &str); 3] = [
    ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
    ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    ("aws_session_token", "AWS_SESSION_TOKEN"),
];

/// The file name under which a settings directory (a mounted Secret) holds
/// a credentials file.
pub const CREDENTIALS_FILE: &str = "credentials";

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// The settings of `profile` in the credentials file `text`.
///
/// Sections are named `[name]` or, as in AWS config files, `[profile name]`;
/// comments start with `#` or `;`; keys are matched case-insensitively.
/// A profile without an access key id and a secret key is refused, naming
/// the profile and the profiles the file has.
pub fn settings(text: &str, profile: &str) -> Result<Settings, String> {
    let mut found = Vec::new();
    let mut settings = Settings::new();
    let mut inside = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            let name = section
                .strip_suffix(']')
                .ok_or_else(|| format!("line {}: a section header without `]`", n + 1))?
                .trim();
            let name = name.strip_prefix("profile ").unwrap_or(name).trim();
            found.push(name.to_owned());
            inside = name == profile;
            continue;
        }
        if !inside {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "line {} of profile [{profile}] is not `key = value`",
                n + 1
            ));
        };
        let key = key.trim().to_ascii_lowercase();
        if let Some((_, setting)) = KEYS.iter().find(|(k, _)| *k == key) {
            let value = Zeroizing::new(value.trim().to_owned());
            if value.is_empty() {
                return Err(format!("profile [{profile}]: {key} is empty"));
            }
            settings.insert((*setting).to_owned(), value.to_string());
        }
    }
    if !found.iter().any(|f| f == profile) {
        found.sort();
        found.dedup();
        return Err(format!(
            "has no profile [{profile}] (profiles: {})",
            if found.is_empty() {
                "none".to_owned()
            } else {
                found.join(", ")
            }
        ));
    }
    for (key, setting) in &KEYS[..2] {
        if !settings.contains_key(*setting) {
            crate::storage::wipe(&mut settings);
            return Err(format!("profile [{profile}] has no {key}"));
        }
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# written by velero install
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = s3cr3t/with=equals

[profile backup]
AWS_ACCESS_KEY_ID=AKIABACKUP
aws_secret_access_key=other
aws_session_token = tok
; ignored: never followed
credential_process = /bin/sh -c 'curl evil'
region = eu-west-1
";

    #[test]
    fn the_named_profile_gives_its_three_keys_and_nothing_else() {
        let s = settings(FILE, "default").expect("default");
        assert_eq!(s["AWS_ACCESS_KEY_ID"], "AKIADEFAULT");
        assert_eq!(s["AWS_SECRET_ACCESS_KEY"], "s3cr3t/with=equals");
        assert_eq!(s.len(), 2);
        let s = settings(FILE, "backup").expect("backup");
        assert_eq!(s["AWS_ACCESS_KEY_ID"], "AKIABACKUP");
        assert_eq!(s["AWS_SESSION_TOKEN"], "tok");
        assert_eq!(s.len(), 3, "credential_process and region are not taken");
    }

    #[test]
    fn bad_files_are_refused_without_repeating_a_value() {
        for (text, profile, says) in [
            (
                FILE,
                "prod",
                "no profile [prod] (profiles: backup, default)",
            ),
            ("", "default", "profiles: none"),
            ("[default\nx=y", "default", "line 1"),
            ("[default]\naws_access_key_id\n", "default", "line 2"),
            (
                "[default]\naws_access_key_id = AKIA\n",
                "default",
                "no aws_secret_access_key",
            ),
            (
                "[default]\naws_access_key_id =\naws_secret_access_key = s\n",
                "default",
                "aws_access_key_id is empty",
            ),
        ] {
            let err = settings(text, profile).expect_err(says);
            assert!(err.contains(says), "{err:?} should say {says:?}");
            assert!(!err.contains("AKIA"), "{err:?} repeats a value");
        }
    }
}
