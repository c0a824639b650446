//! Block-mode claims: the kubelet links the device under
//! `volumeDevices/<plugin>/<volume>`; the backup stores its content as one
//! file and a restore writes it into another device. Regular files stand in
//! for the devices here.

use std::time::Duration;

use cairn_kube::crd::{
    Phase, PvcRef, RepositoryRef, VolumeBackup, VolumeBackupSpec, VolumeRestore, VolumeRestoreSpec,
};
use kube::api::PostParams;

use crate::common::{Cluster, cluster, noise};

/// Links `image` in as the block device of claim volume `pv` in pod `uid`.
fn attach(c: &Cluster, uid: &str, pv: &str, image: &std::path::Path) {
    let dir = c
        .kubelet()
        .join("pods")
        .join(uid)
        .join("volumeDevices/kubernetes.io~csi");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::os::unix::fs::symlink(image, dir.join(pv)).expect("link device");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_block_volume_is_backed_up_as_its_content_and_restored_into_another_device() {
    let Some(mut c) = cluster("block").await else {
        return;
    };
    let node = c.create_node("n").await;
    let disk = noise(7, 3 << 20);
    let source = c.scratch.path().join("disk-a.img");
    std::fs::write(&source, &disk).expect("image");
    let target = c.scratch.path().join("disk-b.img");
    std::fs::write(&target, vec![0u8; disk.len()]).expect("image");
    let pv = c.create_claim("disk").await;
    let uid = c.create_pod("app", &node, "disk").await;
    attach(&c, &uid, &pv, &source);
    let pv2 = c.create_claim("disk2").await;
    let uid2 = c.create_pod("app2", &node, "disk2").await;
    attach(&c, &uid2, &pv2, &target);
    let repo_path = c.init_repository("repo").await;
    c.create_repository_object("main", &repo_path, None).await;
    c.start_controller(std::sync::Arc::new(cairn_kube::clock::SystemClock));
    let _agent = c.start_agent(&node);
    let repository = RepositoryRef {
        name: "main".into(),
        namespace: None,
    };
    let long = Duration::from_secs(120);

    let vb = VolumeBackup::new(
        "disk-now",
        VolumeBackupSpec {
            pvc: PvcRef {
                name: "disk".into(),
                namespace: None,
            },
            repository: repository.clone(),
            ..Default::default()
        },
    );
    c.api::<VolumeBackup>()
        .create(&PostParams::default(), &vb)
        .await
        .expect("create");
    let done: VolumeBackup = c
        .wait_for("disk-now", "a final phase", long, |v: &VolumeBackup| {
            v.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    let st = done.status.expect("status");
    assert_eq!(st.phase, Phase::Completed, "{:?}", st.message);
    assert_eq!(st.progress.expect("progress").bytes_done, disk.len() as u64);

    let vr = VolumeRestore::new(
        "disk-back",
        VolumeRestoreSpec {
            repository,
            snapshot: st.snapshot_id.clone(),
            target_pvc: PvcRef {
                name: "disk2".into(),
                namespace: None,
            },
            ..Default::default()
        },
    );
    c.api::<VolumeRestore>()
        .create(&PostParams::default(), &vr)
        .await
        .expect("create");
    let done: VolumeRestore = c
        .wait_for("disk-back", "a final phase", long, |v: &VolumeRestore| {
            v.status.as_ref().is_some_and(|s| s.phase.is_terminal())
        })
        .await;
    let st = done.status.expect("status");
    assert_eq!(st.phase, Phase::Completed, "{:?}", st.message);
    assert!(
        std::fs::read(&target).expect("read") == disk,
        "the target device differs"
    );
    c.cleanup().await;
}
