//! The Job one maintenance run is: `cairn-controller maintain` from the
//! controller's own image, in the repository's namespace, with the
//! repository's Secrets mounted read-only, no API token and no privilege.
//! Its report comes back as the container's termination message.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use super::maintenance::grace_secs;
use crate::crd::BackupRepository;
use crate::names::{MAINTENANCE_JOB_LABEL, MAINTENANCE_OF_LABEL, SCHEDULED_TIME_ANNOTATION};

/// Where the Job's container finds the password and the settings.
pub const PASSWORD_FILE: &str = "/etc/cairn/password/password";
/// See [`PASSWORD_FILE`].
pub const SETTINGS_DIR: &str = "/etc/cairn/settings";
/// The container's metadata cache.
pub const CACHE_DIR: &str = "/var/cache/cairn";
/// A run that takes longer is stopped (unless the policy says otherwise).
pub const DEFAULT_DEADLINE_SECS: i64 = 6 * 3600;
/// The user of cairn's image.
const NON_ROOT: i64 = 65532;

/// The Job's name for the run due at `scheduled`: the same for the same
/// due time, so a repeated create is refused rather than doubled.
pub fn job_name(repository: &str, scheduled: i64) -> String {
    let base: String = repository.chars().take(40).collect();
    format!("{}-maint-{scheduled}", base.trim_end_matches(['-', '.']))
}

/// Refuses what a maintenance Job cannot reach: a local path.
pub fn check_location(url: &str) -> Result<(), String> {
    let remote = cairn::layers::store::parse_location(url)
        .map_err(|e| e.to_string())?
        .is_remote();
    if remote {
        Ok(())
    } else {
        Err(format!(
            "maintenance Jobs need object storage; {url} is a local path (run `cairn prune` and `cairn check` where it is mounted)"
        ))
    }
}

/// Where the Job's container finds the copy target's password and
/// settings.
pub const COPY_PASSWORD_FILE: &str = "/etc/cairn/copy-password/password";
/// See [`COPY_PASSWORD_FILE`].
pub const COPY_SETTINGS_DIR: &str = "/etc/cairn/copy-settings";

/// Refuses a copy target a maintenance Job cannot use.
pub fn check_copy_target(
    repo: &BackupRepository,
    target: Option<&BackupRepository>,
) -> Result<(), String> {
    let Some(name) = repo
        .spec
        .maintenance
        .as_ref()
        .and_then(|m| m.copy_to.as_deref())
    else {
        return Ok(());
    };
    let target = target.ok_or_else(|| {
        format!("copyTo names BackupRepository {name}, which does not exist in this namespace")
    })?;
    if name == repo.name_any() || target.spec.url == repo.spec.url {
        return Err(format!("copyTo {name} is the repository itself"));
    }
    check_location(&target.spec.url)
}

/// The arguments of `cairn-controller maintain` for this repository.
pub fn args(
    repo: &BackupRepository,
    target: Option<&BackupRepository>,
) -> Result<Vec<String>, String> {
    let spec = &repo.spec;
    let policy = spec
        .maintenance
        .as_ref()
        .ok_or("the repository has no maintenance policy")?;
    let mut args = vec![
        "maintain".to_owned(),
        format!("--url={}", spec.url),
        format!("--password-file={PASSWORD_FILE}"),
        format!("--cache-dir={CACHE_DIR}"),
        "--report=/dev/termination-log".to_owned(),
    ];
    if let Some(c) = &spec.credentials_secret_ref {
        args.push(format!("--settings-dir={SETTINGS_DIR}"));
        if c.key.is_some() {
            args.push(format!("--settings-aws-profile={}", profile(c)));
        }
    }
    if policy.prune != Some(false) {
        args.push("--prune".into());
        args.push(format!("--grace-secs={}", grace_secs(policy)?));
    }
    if policy.check != Some(false) {
        args.push("--check".into());
    }
    if let Some(s) = &policy.read_data_subset {
        args.push(format!("--read-data-subset={s}"));
    }
    if let Some(kib) = spec.limit_upload_kib {
        args.push(format!("--limit-upload-kib={kib}"));
    }
    if let Some(ca) = &spec.ca_cert {
        args.push(format!(
            "--ca-cert={}",
            ca.split_whitespace().collect::<String>()
        ));
    }
    if let Some(t) = target {
        args.push(format!("--copy-to-url={}", t.spec.url));
        args.push(format!("--copy-to-password-file={COPY_PASSWORD_FILE}"));
        if let Some(c) = &t.spec.credentials_secret_ref {
            args.push(format!("--copy-to-settings-dir={COPY_SETTINGS_DIR}"));
            if c.key.is_some() {
                args.push(format!("--copy-to-settings-aws-profile={}", profile(c)));
            }
        }
        if let Some(kib) = t.spec.limit_upload_kib {
            args.push(format!("--copy-to-limit-upload-kib={kib}"));
        }
        if let Some(ca) = &t.spec.ca_cert {
            args.push(format!(
                "--copy-to-ca-cert={}",
                ca.split_whitespace().collect::<String>()
            ));
        }
    }
    Ok(args)
}

/// The profile of a credentials file in a settings Secret.
fn profile(c: &crate::crd::SecretRef) -> &str {
    c.profile
        .as_deref()
        .unwrap_or(crate::aws_ini::DEFAULT_PROFILE)
}

/// The volume of a settings Secret: every key, or the one key holding an
/// AWS credentials file as `credentials` (what `maintain` reads with
/// `--settings-aws-profile`).
fn settings_volume(c: &crate::crd::SecretRef) -> Value {
    match &c.key {
        None => json!({"secretName": c.name, "defaultMode": 0o440}),
        Some(key) => json!({
            "secretName": c.name,
            "items": [{"key": key, "path": crate::aws_ini::CREDENTIALS_FILE}],
            "defaultMode": 0o440,
        }),
    }
}

/// The copy target's Secrets, mounted read-only.
fn mount_copy_target(t: &BackupRepository, volumes: &mut Vec<Value>, mounts: &mut Vec<Value>) {
    let pw = &t.spec.password_secret_ref;
    volumes.push(json!({"name": "copy-password", "secret": {
        "secretName": pw.name,
        "items": [{"key": pw.key.as_deref().unwrap_or("password"), "path": "password"}],
        "defaultMode": 0o440,
    }}));
    mounts.push(json!({
        "name": "copy-password", "mountPath": "/etc/cairn/copy-password", "readOnly": true,
    }));
    if let Some(c) = &t.spec.credentials_secret_ref {
        volumes.push(json!({"name": "copy-settings", "secret": settings_volume(c)}));
        mounts.push(json!({
            "name": "copy-settings", "mountPath": COPY_SETTINGS_DIR, "readOnly": true,
        }));
    }
}

/// The Job for the run due at `scheduled`, owned by the repository;
/// `target` is the copy target its policy names, if any.
pub fn build(
    repo: &BackupRepository,
    target: Option<&BackupRepository>,
    scheduled: i64,
    image: &str,
) -> Result<Job, String> {
    let spec = &repo.spec;
    check_location(&spec.url)?;
    check_copy_target(repo, target)?;
    // Only the target the policy names.
    let target = target.filter(|_| {
        spec.maintenance
            .as_ref()
            .is_some_and(|m| m.copy_to.is_some())
    });
    let policy = spec.maintenance.clone().unwrap_or_default();
    let name = job_name(&repo.name_any(), scheduled);
    let (volumes, mounts) = volumes_and_mounts(spec, target);
    let labels = BTreeMap::from([(
        MAINTENANCE_OF_LABEL.to_owned(),
        repo.uid().unwrap_or_default(),
    )]);
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": repo.namespace(),
            "labels": labels,
            "annotations": {SCHEDULED_TIME_ANNOTATION: scheduled.to_string()},
            "ownerReferences": repo.controller_owner_ref(&()).map(|o| vec![o]),
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": policy.active_deadline_seconds.unwrap_or(DEFAULT_DEADLINE_SECS),
            "template": {
                "metadata": {"labels": {MAINTENANCE_JOB_LABEL: name}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": NON_ROOT,
                        "runAsGroup": NON_ROOT,
                        "fsGroup": NON_ROOT,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [{
                        "name": "maintain",
                        "image": image,
                        "command": ["/usr/local/bin/cairn-controller"],
                        "args": args(repo, target)?,
                        "env": [{"name": "TMPDIR", "value": "/tmp"}],
                        "resources": policy.resources,
                        "terminationMessagePolicy": "File",
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": mounts,
                    }],
                    "volumes": volumes,
                },
            },
        },
    });
    serde_json::from_value(job).map_err(|e| format!("building the maintenance Job: {e}"))
}

/// The Job's volumes and the container's mounts: the password, the
/// cache, a writable /tmp, the settings Secret and the copy target's.
fn volumes_and_mounts(
    spec: &crate::crd::BackupRepositorySpec,
    target: Option<&BackupRepository>,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let pw = &spec.password_secret_ref;
    let mut volumes = vec![
        json!({"name": "password", "secret": {
            "secretName": pw.name,
            "items": [{"key": pw.key.as_deref().unwrap_or("password"), "path": "password"}],
            "defaultMode": 0o440,
        }}),
        json!({"name": "cache", "emptyDir": {"sizeLimit": spec.cache_size.as_deref().unwrap_or("1Gi")}}),
        json!({"name": "tmp", "emptyDir": {}}),
    ];
    let mut mounts = vec![
        json!({"name": "password", "mountPath": "/etc/cairn/password", "readOnly": true}),
        json!({"name": "cache", "mountPath": CACHE_DIR}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    if let Some(c) = &spec.credentials_secret_ref {
        volumes.push(json!({"name": "settings", "secret": settings_volume(c)}));
        mounts.push(json!({"name": "settings", "mountPath": SETTINGS_DIR, "readOnly": true}));
    }
    if let Some(t) = target {
        mount_copy_target(t, &mut volumes, &mut mounts);
    }
    (volumes, mounts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{BackupRepositorySpec, Maintenance, SecretKeyRef, SecretRef};

    fn repo(url: &str) -> BackupRepository {
        let mut r = BackupRepository::new(
            "main",
            BackupRepositorySpec {
                url: url.into(),
                password_secret_ref: SecretKeyRef {
                    name: "pw".into(),
                    key: Some("secret".into()),
                },
                credentials_secret_ref: Some(SecretRef {
                    name: "s3".into(),
                    ..Default::default()
                }),
                limit_upload_kib: Some(512),
                maintenance: Some(Maintenance {
                    schedule: "@daily".into(),
                    read_data_subset: Some("1/7".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        r.metadata.namespace = Some("team".into());
        r.metadata.uid = Some("u-1".into());
        r
    }

    #[test]
    fn a_credentials_file_secret_is_mounted_as_one_file_read_for_its_profile() {
        let mut r = repo("s3://bucket/p");
        r.spec.credentials_secret_ref = Some(SecretRef {
            name: "cloud-credentials".into(),
            key: Some("cloud".into()),
            profile: Some("backup".into()),
        });
        let v = serde_json::to_value(build(&r, None, 1_800_000_000, "img:1").expect("job"))
            .expect("json");
        let pod = &v["spec"]["template"]["spec"];
        let settings = &pod["volumes"][3]["secret"];
        assert_eq!(settings["items"][0]["key"], "cloud");
        assert_eq!(
            settings["items"][0]["path"],
            crate::aws_ini::CREDENTIALS_FILE
        );
        let args = pod["containers"][0]["args"].to_string();
        assert!(args.contains("--settings-aws-profile=backup"), "{args}");
        assert!(!args.contains("--ca-cert"), "{args}");
        r.spec.ca_cert = Some("LS0t\nLS0t\n".into());
        let v = serde_json::to_value(build(&r, None, 1_800_000_000, "img:1").expect("job"))
            .expect("json");
        let args = v["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(args.contains("--ca-cert=LS0tLS0t"), "one line: {args}");
    }

    #[test]
    fn the_job_mounts_the_secrets_and_runs_without_token_or_privilege() {
        let job = build(&repo("s3://bucket/p"), None, 1_800_000_000, "img:1").expect("job");
        let v = serde_json::to_value(&job).expect("json");
        assert_eq!(v["metadata"]["name"], "main-maint-1800000000");
        assert_eq!(v["metadata"]["namespace"], "team");
        assert_eq!(v["metadata"]["labels"][MAINTENANCE_OF_LABEL], "u-1");
        let pod = &v["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let c = &pod["containers"][0];
        assert_eq!(c["image"], "img:1");
        assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        let args: Vec<&str> = c["args"]
            .as_array()
            .expect("args")
            .iter()
            .filter_map(|a| a.as_str())
            .collect();
        for want in [
            "maintain",
            "--url=s3://bucket/p",
            "--prune",
            "--grace-secs=86400",
            "--check",
            "--read-data-subset=1/7",
            "--settings-dir=/etc/cairn/settings",
            "--limit-upload-kib=512",
            "--report=/dev/termination-log",
        ] {
            assert!(args.contains(&want), "{want} in {args:?}");
        }
        assert_eq!(pod["volumes"][0]["secret"]["items"][0]["key"], "secret");
        assert_eq!(pod["volumes"][3]["secret"]["secretName"], "s3");
        assert!(
            !v.to_string().contains("hostPath"),
            "nothing of the node is mounted"
        );
    }

    #[test]
    fn local_repositories_are_refused_with_a_reason() {
        let why = build(&repo("/srv/repo"), None, 1, "img").expect_err("local");
        assert!(why.contains("local path"), "{why}");
    }

    #[test]
    fn a_copy_target_is_mounted_and_passed_on_and_a_bad_one_refused() {
        let mut source = repo("s3://bucket/p");
        if let Some(m) = source.spec.maintenance.as_mut() {
            m.copy_to = Some("archive".into());
        }
        let mut archive = repo("s3://archive/q");
        archive.metadata.name = Some("archive".into());
        archive.spec.password_secret_ref.name = "archive-pw".into();
        let job = build(&source, Some(&archive), 1, "img").expect("job");
        let v = serde_json::to_value(&job).expect("json");
        let c = &v["spec"]["template"]["spec"]["containers"][0];
        let args = c["args"].to_string();
        assert!(args.contains("--copy-to-url=s3://archive/q"), "{args}");
        assert!(args.contains(COPY_PASSWORD_FILE), "{args}");
        let volumes = v["spec"]["template"]["spec"]["volumes"].to_string();
        assert!(volumes.contains("archive-pw"), "{volumes}");

        let why = build(&source, None, 1, "img").expect_err("missing");
        assert!(why.contains("does not exist"), "{why}");
        let why = build(&source, Some(&repo("/srv/local")), 1, "img").expect_err("local");
        assert!(why.contains("local path"), "{why}");
        let why = build(&source, Some(&repo("s3://bucket/p")), 1, "img").expect_err("itself");
        assert!(why.contains("itself"), "{why}");
    }

    #[test]
    fn job_names_are_valid_label_values() {
        let long = "r".repeat(80);
        let name = job_name(&long, 1_800_000_000);
        assert!(name.len() <= 63, "{name}");
        assert_eq!(job_name("a-", 5), "a-maint-5");
    }
}
