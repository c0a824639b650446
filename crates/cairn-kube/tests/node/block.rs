//! A block-mode claim (a loop device as a local PersistentVolume), backed
//! up and restored byte for byte into another, with deploy/'s
//! block-volumes component.

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;

use cairn_kube::crd::{VolumeBackup, VolumeRestore};
use kube::Api;
use serde_json::json;

use crate::common::{MINUTE, Node, node, rand_hex, wait_until};
use crate::fixture::{AGENT, CAIRN_NS, apply, deployed};
use crate::volumes::{completed, delete_pvs, local_claim, start_backup, start_restore};

const DEVICE_BYTES: usize = 64 << 20;

/// A loop device over a file of random bytes; detached when dropped.
struct Loop {
    dev: PathBuf,
    _file: tempfile::NamedTempFile,
}

impl Loop {
    fn new() -> Loop {
        let mut file = tempfile::NamedTempFile::new().expect("backing file");
        let mut random = std::fs::File::open("/dev/urandom").expect("urandom");
        std::io::copy(
            &mut (&mut random).take(DEVICE_BYTES as u64),
            file.as_file_mut(),
        )
        .expect("fill the backing file");
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(file.path())
            .output()
            .expect("losetup (util-linux)");
        assert!(
            out.status.success(),
            "losetup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        Loop { dev, _file: file }
    }

    fn read(&self) -> Vec<u8> {
        std::fs::read(&self.dev).unwrap_or_else(|e| panic!("reading {}: {e}", self.dev.display()))
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}

/// A pod that keeps block claim `claim` attached at /dev/xvda, after
/// running `script` (sh) against it.
async fn device_pod(node: &Node, name: &str, claim: &str, script: &str) {
    let script = format!("{script} && trap 'exit 0' TERM && while :; do sleep 1 & wait $!; done");
    node.run_pod(
        json!({
            "metadata": {"name": name},
            "spec": {
                "automountServiceAccountToken": false,
                "terminationGracePeriodSeconds": 1,
                "containers": [{
                    "name": "disk",
                    "image": node.busybox,
                    "imagePullPolicy": "Never",
                    "command": ["/bin/sh", "-c", script],
                    "volumeDevices": [{"name": "disk", "devicePath": "/dev/xvda"}],
                }],
                "volumes": [{"name": "disk", "persistentVolumeClaim": {"claimName": claim}}],
            },
        }),
        "the device's pod to run",
        |pod| pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
    )
    .await;
}

/// The writer pod's script: [`pattern`] at the start of the device.
const WRITE: &str = "i=1; while [ $i -le 4096 ]; do printf 'cairn block %08d\\n' $i; i=$((i+1)); done \
     | dd of=/dev/xvda bs=64k conv=notrunc,fsync 2>/dev/null";

/// The pattern the writer pod puts at the start of the device.
fn pattern() -> Vec<u8> {
    (1..=4096)
        .flat_map(|i| format!("cairn block {i:08}\n").into_bytes())
        .collect()
}

/// A pod writes a known pattern over a loop device's random bytes; the
/// device is backed up through the pod's volumeDevices link, and restored
/// into a second loop device that no pod uses, through a helper pod that
/// attaches it as a device; it then holds the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_claim_on_a_loop_device_is_restored_byte_identical() {
    let Some(node) = node("block").await else {
        return;
    };
    let deployed = deployed(&node).await;
    // The agent is redeployed with the component; no other job runs then.
    let _agent = AGENT.write().await;
    apply(&node, &["block-volumes"]).await;
    let (source, target) = (Loop::new(), Loop::new());
    let pv_a = local_claim(&node, "disk", &source.dev, true).await;
    let pv_b = local_claim(&node, "copy", &target.dev, true).await;
    let want = pattern();
    device_pod(&node, "writer", "disk", WRITE).await;
    let disk = source.read();
    assert_eq!(&disk[..want.len()], &want[..], "the pod wrote the pattern");
    assert_ne!(target.read(), disk, "the target starts different");

    let repo = (CAIRN_NS, deployed.admin_repo.as_str());
    start_backup(&node, "disk-now", "disk", repo).await;
    let backups: Api<VolumeBackup> = Api::namespaced(node.client.clone(), &node.ns);
    let done = completed(&backups, "disk-now", 3 * MINUTE).await;
    let snapshot = done.snapshot_id.expect("snapshot id");
    let name = format!("disk-{}", rand_hex());
    start_restore(
        &node.client,
        (&node.ns, &name),
        repo,
        &snapshot,
        (&node.ns, "copy"),
    )
    .await;
    let restores: Api<VolumeRestore> = Api::namespaced(node.client.clone(), &node.ns);
    let restored = completed(&restores, &name, 3 * MINUTE).await;
    assert!(
        restored.source.as_ref().is_some_and(|s| s.helper_pod),
        "written through a helper pod: {:?}",
        restored.source
    );
    assert!(
        target.read() == disk,
        "{} holds the bytes of {}",
        target.dev.display(),
        source.dev.display()
    );

    release(&node, &[&pv_a, &pv_b]).await;
    // deploy/ as shipped again for the other tests.
    apply(&node, &[]).await;
    node.cleanup().await;
}

/// Deletes the device pods and, once they are gone, the volumes (a device
/// must not be detached under a running pod).
async fn release(node: &Node, pvs: &[&str]) {
    let pods = node.pods();
    for pod in ["writer"] {
        let _ = pods.delete(pod, &Default::default()).await;
    }
    wait_until("the device pods to be gone", 3 * MINUTE, || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&Default::default()).await.ok()?;
            list.items.is_empty().then_some(())
        }
    })
    .await;
    delete_pvs(&node.client, pvs).await;
}
