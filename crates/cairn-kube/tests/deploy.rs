//! The hardening of deploy/ that the code relies on, checked on the
//! committed manifests (scripts/validate-deploy.sh checks their schemas).

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::rbac::v1::ClusterRole;
use serde::de::DeserializeOwned;

fn read(file: &str) -> String {
    let path = cairn_testkit::workspace_root()
        .join("deploy/base")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The documents of `file` whose kind is `kind`.
fn docs<T: DeserializeOwned>(file: &str, kind: &str) -> Vec<T> {
    read(file)
        .split("\n---\n")
        .filter(|d| {
            d.contains(&format!("\nkind: {kind}\n")) || d.starts_with(&format!("kind: {kind}\n"))
        })
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

#[test]
fn the_agent_runs_under_seccomp_without_dac_read_search_and_backs_up_read_only() {
    let [ds] = docs::<DaemonSet>("agent.yaml", "DaemonSet")
        .try_into()
        .expect("one DaemonSet");
    let pod = ds.spec.template.spec.expect("pod spec");
    let seccomp = pod
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    assert_eq!(seccomp.map(|p| p.type_.as_str()), Some("RuntimeDefault"));
    let c = &pod.containers[0];
    let caps = c
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .expect("caps");
    let added = caps.add.clone().unwrap_or_default();
    assert!(
        !added
            .iter()
            .any(|c| c == "DAC_READ_SEARCH" || c == "SYS_ADMIN"),
        "{added:?}"
    );
    let args = c.args.clone().unwrap_or_default();
    assert!(
        args.iter().any(|a| a.starts_with("--admin-namespace=")),
        "{args:?}"
    );
    let restore_root = args
        .iter()
        .find_map(|a| a.strip_prefix("--restore-kubelet-root="))
        .expect("--restore-kubelet-root");
    for m in c
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| m.name == "kubelet-pods")
    {
        let read_write = m.mount_path == format!("{restore_root}/pods");
        assert_eq!(
            m.read_only,
            (!read_write).then_some(true),
            "{}",
            m.mount_path
        );
    }
    let backup_mount = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == "/var/lib/kubelet/pods");
    assert_eq!(backup_mount.and_then(|m| m.read_only), Some(true));
}

#[test]
fn no_component_reads_secrets_cluster_wide() {
    for file in [
        "rbac-agent.yaml",
        "rbac-controller.yaml",
        "../velero/rbac.yaml",
    ] {
        for role in docs::<ClusterRole>(file, "ClusterRole") {
            for rule in role.rules.iter().flatten() {
                let secrets = rule
                    .resources
                    .iter()
                    .flatten()
                    .any(|r| r == "secrets" || r == "*");
                assert!(!secrets, "{file}: a ClusterRole grants Secrets");
            }
        }
    }
    let [controller] = docs::<Deployment>("controller.yaml", "Deployment")
        .try_into()
        .expect("one Deployment");
    let args = controller.spec.template.spec.expect("pod").containers[0]
        .args
        .clone()
        .unwrap_or_default();
    assert!(
        args.iter().any(|a| a.starts_with("--admin-namespace=")),
        "{args:?}"
    );
}
