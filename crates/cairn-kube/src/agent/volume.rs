//! Finding a pod's volume in the kubelet's directory on the node:
//! `<root>/pods/<pod-uid>/volumes/<plugin>/<volume>` (CSI volumes one level
//! deeper, in `mount`), or a block device under
//! `<root>/pods/<pod-uid>/volumeDevices/<plugin>/<volume>`. The kubelet
//! names a claim's volume after its PersistentVolume; inline volumes after
//! the pod's volume name.

use std::path::{Path, PathBuf};

use crate::crd::VolumeSource;
use crate::job::JobKind;

/// A volume as the agent reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumePath {
    /// A mounted file system.
    Dir(PathBuf),
    /// A raw block device.
    Block(PathBuf),
}

impl VolumePath {
    /// The path.
    pub fn path(&self) -> &Path {
        match self {
            VolumePath::Dir(p) | VolumePath::Block(p) => p,
        }
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The kubelet root a job of `kind` works under: backups only ever use the
/// read-only mount, restores the read-write one.
pub fn root_for<'a>(kind: JobKind, read_only: &'a Path, read_write: &'a Path) -> &'a Path {
    match kind {
        JobKind::Backup => read_only,
        JobKind::Restore => read_write,
    }
}

/// Finds the volume of `src` under `kubelet_root`. `Err` says what is
/// missing (the kubelet may not have mounted it yet).
pub fn locate(kubelet_root: &Path, src: &VolumeSource) -> Result<VolumePath, String> {
    // Every name becomes a path component: nothing may climb out.
    crate::trust::check_source_names(src)?;
    let pod = kubelet_root.join("pods").join(&src.pod_uid);
    if !pod.is_dir() {
        return Err(format!(
            "pod directory {} does not exist (is the pod running on this node, and is --kubelet-root right?)",
            pod.display()
        ));
    }
    let mut names: Vec<&str> = [src.persistent_volume.as_str(), src.volume_name.as_str()]
        .into_iter()
        .filter(|n| !n.is_empty() && !n.contains('/') && *n != "." && *n != "..")
        .collect();
    names.dedup();
    for plugin in entries(&pod.join("volumes")) {
        for name in &names {
            let entry = plugin.join(name);
            if !entry.is_dir() {
                continue;
            }
            let csi = plugin
                .file_name()
                .is_some_and(|f| f.to_string_lossy().ends_with("~csi"));
            if !csi {
                return Ok(VolumePath::Dir(entry));
            }
            let mount = entry.join("mount");
            return if mount.is_dir() {
                Ok(VolumePath::Dir(mount))
            } else {
                Err(format!("CSI volume {} is not mounted yet", mount.display()))
            };
        }
    }
    for plugin in entries(&pod.join("volumeDevices")) {
        for name in &names {
            let entry = plugin.join(name);
            if entry.symlink_metadata().is_ok() {
                // The kubelet links the device in; back up what it points at.
                let dev = entry
                    .canonicalize()
                    .map_err(|e| format!("{}: {e}", entry.display()))?;
                return Ok(VolumePath::Block(dev));
            }
        }
    }
    Err(format!(
        "volume {} not found under {}/volumes or volumeDevices",
        names.join(" or "),
        pod.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(uid: &str) -> VolumeSource {
        VolumeSource {
            pod_uid: uid.into(),
            volume_name: "data".into(),
            persistent_volume: "pv-1".into(),
            ..Default::default()
        }
    }

    #[test]
    fn csi_volumes_are_found_under_mount() {
        let root = tempfile::tempdir().expect("tempdir");
        let csi = root.path().join("pods/a1/volumes/kubernetes.io~csi/pv-1");
        std::fs::create_dir_all(&csi).expect("mkdir");
        let err = locate(root.path(), &source("a1")).expect_err("not mounted");
        assert!(err.contains("not mounted yet"), "{err}");
        std::fs::create_dir(csi.join("mount")).expect("mkdir");
        assert_eq!(
            locate(root.path(), &source("a1")),
            Ok(VolumePath::Dir(csi.join("mount")))
        );
    }

    #[test]
    fn in_tree_volumes_by_pv_or_pod_volume_name() {
        let root = tempfile::tempdir().expect("tempdir");
        let local = root
            .path()
            .join("pods/a1/volumes/kubernetes.io~local-volume/pv-1");
        std::fs::create_dir_all(&local).expect("mkdir");
        assert_eq!(
            locate(root.path(), &source("a1")),
            Ok(VolumePath::Dir(local))
        );
        let empty = root
            .path()
            .join("pods/a2/volumes/kubernetes.io~empty-dir/data");
        std::fs::create_dir_all(&empty).expect("mkdir");
        assert_eq!(
            locate(root.path(), &source("a2")),
            Ok(VolumePath::Dir(empty))
        );
    }

    #[test]
    fn block_devices_under_volume_devices() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("pods/a1/volumeDevices/kubernetes.io~csi");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let dev = root.path().join("dev-loop0");
        std::fs::write(&dev, b"disk").expect("write");
        std::os::unix::fs::symlink(&dev, dir.join("pv-1")).expect("symlink");
        let found = locate(root.path(), &source("a1")).expect("found");
        assert_eq!(found, VolumePath::Block(dev.canonicalize().expect("canon")));
    }

    #[test]
    fn backups_never_reach_volumes_through_the_read_write_mount() {
        let (ro, rw) = (Path::new("/ro"), Path::new("/rw"));
        assert_eq!(root_for(JobKind::Backup, ro, rw), ro);
        assert_eq!(root_for(JobKind::Restore, ro, rw), rw);
    }

    #[test]
    fn a_pod_uid_from_status_never_leads_out_of_the_pods_directory() {
        // Finding 6: status.source.podUID is written by whoever can patch
        // the job's status.
        let root = tempfile::tempdir().expect("tempdir");
        let outside = root
            .path()
            .join("outside/volumes/kubernetes.io~csi/pv-1/mount");
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::create_dir_all(root.path().join("pods")).expect("mkdir");
        for uid in ["../outside", "/etc", ".."] {
            let err = locate(root.path(), &source(uid)).expect_err(uid);
            assert!(err.contains("not a UID"), "{uid}: {err}");
        }
        let mut src = source("a1");
        std::fs::create_dir_all(root.path().join("pods/a1/volumes/kubernetes.io~csi"))
            .expect("mkdir");
        src.volume_name = "../../../../outside/volumes/kubernetes.io~csi/pv-1".into();
        src.persistent_volume = String::new();
        assert!(locate(root.path(), &src).is_err());
    }

    #[test]
    fn missing_pods_and_volumes_say_where_they_looked() {
        let root = tempfile::tempdir().expect("tempdir");
        assert!(
            locate(root.path(), &source("dead"))
                .expect_err("no pod")
                .contains("--kubelet-root")
        );
        std::fs::create_dir_all(root.path().join("pods/a1/volumes")).expect("mkdir");
        let err = locate(root.path(), &source("a1")).expect_err("no volume");
        assert!(err.contains("pv-1 or data"), "{err}");
    }
}
