//! A stand-in for `cairn_kube::controller::velero::VeleroConfig` until the
//! controller has it (then `common::VeleroConfig` is that type). Nothing
//! reads its fields yet.
#![allow(dead_code)]

use cairn_kube::crd::SecretKeyRef;

/// The controller's Velero settings.
#[derive(Debug, Clone)]
pub(crate) struct VeleroConfig {
    /// Velero's namespace: DataUploads, DataDownloads, locations,
    /// DeleteBackupRequests and Backups live here.
    pub(crate) namespace: String,
    /// Only DataUploads and DataDownloads naming this mover are handled.
    pub(crate) data_mover: String,
    /// The repositories' password, in Velero's namespace.
    pub(crate) password_secret: SecretKeyRef,
    /// Schedule of the derived repositories' maintenance.
    pub(crate) maintenance_schedule: Option<String>,
}

impl VeleroConfig {
    pub(crate) fn new(namespace: impl Into<String>) -> Self {
        VeleroConfig {
            namespace: namespace.into(),
            data_mover: "cairn".into(),
            password_secret: SecretKeyRef {
                name: "cairn-repo-credentials".into(),
                key: Some("repository-password".into()),
            },
            maintenance_schedule: None,
        }
    }
}
