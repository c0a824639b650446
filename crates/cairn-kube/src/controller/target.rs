//! A restore into a claim that does not exist yet: the controller creates
//! it from the restore's `createTargetPvc`, in the target's namespace,
//! labelled as cairn's, and waits for it like for any other claim.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use super::Context;
use super::assign::Exposure;
use crate::Result;
use crate::crd::ClaimTemplate;
use crate::job::Job;
use crate::kubeutil::ignore_conflict;
use crate::names::{OWNER_UID_LABEL, SELECTED_NODE_ANNOTATION};

/// Annotation on a claim cairn created for a restore: the restore's
/// `namespace/name`.
pub const CREATED_FOR_ANNOTATION: &str = "cairn.dev/created-for-restore";

/// The claim for `template`, named `name`, for the restore `job`; `node`
/// is where a WaitForFirstConsumer provisioner should create the volume.
pub fn build<J: Job>(
    job: &J,
    name: &str,
    template: &ClaimTemplate,
    node: Option<&str>,
) -> std::result::Result<PersistentVolumeClaim, String> {
    if crate::repo::parse_quantity(&template.size).is_none_or(|b| b == 0) {
        return Err(format!(
            "createTargetPvc.size {:?} is not a quantity like 10Gi",
            template.size
        ));
    }
    if let Some(m) = template
        .volume_mode
        .as_deref()
        .filter(|m| !matches!(*m, "Filesystem" | "Block"))
    {
        return Err(format!(
            "createTargetPvc.volumeMode {m:?}: use Filesystem or Block"
        ));
    }
    let modes = if template.access_modes.is_empty() {
        vec!["ReadWriteOnce".to_owned()]
    } else {
        template.access_modes.clone()
    };
    let mut annotations = json!({
        CREATED_FOR_ANNOTATION: format!("{}/{}", job.ns(), job.name_str()),
    });
    if let Some(n) = node {
        annotations[SELECTED_NODE_ANNOTATION] = json!(n);
    }
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {OWNER_UID_LABEL: job.uid_str()},
            "annotations": annotations,
        },
        "spec": {
            "storageClassName": template.storage_class_name,
            "accessModes": modes,
            "volumeMode": template.volume_mode,
            "resources": {"requests": {"storage": template.size}},
        },
    }))
    .map_err(|e| format!("building the target claim: {e}"))
}

/// Creates the restore's target claim if it is missing and the restore
/// asks for it; says whether the job can be placed.
pub async fn ensure<J: Job>(
    ctx: &Context,
    job: &J,
    template: &ClaimTemplate,
    exists: bool,
    node: Option<&str>,
) -> Result<Exposure> {
    if exists {
        return Ok(Exposure::Live);
    }
    let (ns, name) = job.claim();
    let pvc = match build(job, &name, template, node) {
        Ok(p) => p,
        Err(why) => return Ok(Exposure::Failed(why)),
    };
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    ignore_conflict(api.create(&PostParams::default(), &pvc).await)?;
    Ok(Exposure::Waiting(format!(
        "created claim {name} ({}); waiting for it to be bound",
        template.size
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{PvcRef, VolumeRestore, VolumeRestoreSpec};

    fn restore() -> VolumeRestore {
        let mut vr = VolumeRestore::new(
            "dr",
            VolumeRestoreSpec {
                target_pvc: PvcRef {
                    name: "data".into(),
                    namespace: None,
                },
                ..Default::default()
            },
        );
        vr.metadata.namespace = Some("shop".into());
        vr.metadata.uid = Some("u-9".into());
        vr
    }

    #[test]
    fn the_created_claim_follows_the_template_and_names_its_restore() {
        let t = ClaimTemplate {
            size: "5Gi".into(),
            storage_class_name: Some("fast".into()),
            ..Default::default()
        };
        let pvc = build(&restore(), "data", &t, Some("node-a")).expect("claim");
        let v = serde_json::to_value(&pvc).expect("json");
        assert_eq!(v["spec"]["resources"]["requests"]["storage"], "5Gi");
        assert_eq!(v["spec"]["storageClassName"], "fast");
        assert_eq!(v["spec"]["accessModes"][0], "ReadWriteOnce");
        assert_eq!(v["metadata"]["labels"][OWNER_UID_LABEL], "u-9");
        assert_eq!(
            v["metadata"]["annotations"][CREATED_FOR_ANNOTATION],
            "shop/dr"
        );
        assert_eq!(
            v["metadata"]["annotations"][SELECTED_NODE_ANNOTATION],
            "node-a"
        );
    }

    #[test]
    fn bad_templates_are_refused_with_the_field_named() {
        for (t, says) in [
            (
                ClaimTemplate {
                    size: "lots".into(),
                    ..Default::default()
                },
                "size",
            ),
            (
                ClaimTemplate {
                    size: "0".into(),
                    ..Default::default()
                },
                "size",
            ),
            (
                ClaimTemplate {
                    size: "1Gi".into(),
                    volume_mode: Some("Raw".into()),
                    ..Default::default()
                },
                "volumeMode",
            ),
        ] {
            let why = build(&restore(), "data", &t, None).expect_err("refused");
            assert!(why.contains(says), "{why}");
        }
    }
}
