//! `BackupRepository`: where snapshots are stored and how to unlock them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A cairn repository: a storage URL and the Secrets that unlock it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "cairn.dev",
    version = "v1alpha1",
    kind = "BackupRepository",
    namespaced,
    status = "BackupRepositoryStatus",
    shortname = "brepo",
    category = "cairn",
    doc = "A cairn repository: storage URL, credentials and password Secrets.",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BackupRepositorySpec {
    /// Repository URL: `s3://bucket/prefix?endpoint=…&region=…`,
    /// `gs://bucket/prefix`, `az://container/prefix`, or a local path
    /// (`file:///path`), which must be the same shared file system on every
    /// node; local paths only for repositories in an administrator
    /// namespace.
    pub url: String,
    /// Secret (in the repository's namespace) holding the repository password.
    pub password_secret_ref: SecretKeyRef,
    /// Secret (in the repository's namespace) whose keys are storage
    /// settings, named like the provider's environment variables. Only
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
    /// `AWS_REGION`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT`, `AWS_ENDPOINT_URL`,
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, `AWS_ALLOW_HTTP`,
    /// `GOOGLE_SERVICE_ACCOUNT_KEY`, `AZURE_STORAGE_ACCOUNT_NAME` and
    /// `AZURE_STORAGE_ACCOUNT_KEY` are accepted; any other key fails the
    /// repository, naming the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// Largest size of the agents' local cache of index files, snapshots
    /// and trees for this repository, as a quantity (`512Mi`, `2Gi`); `0`
    /// turns the cache off. Default 1Gi. Only remote repositories are cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_size: Option<String>,
    /// Namespaces (besides the repository's own) whose VolumeBackups and
    /// VolumeRestores may use this repository; `*` allows every namespace.
    /// Jobs from another namespace may only back up and restore claims of
    /// their own namespace, and only restore snapshots taken from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_namespaces: Vec<String>,
    /// Create the repository when the location holds none yet.
    #[serde(default)]
    pub initialize: bool,
    /// Upload limit for jobs using this repository, in KiB/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_upload_kib: Option<u64>,
}

/// A key of a Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// The key; default `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// A whole Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: String,
}

/// Whether the controller could open the repository.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupRepositoryStatus {
    /// `Ready` when the repository opened with the given password, `Failed`
    /// otherwise (see `message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why it failed, or what was done (created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The generation of the spec that was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// When it was last checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_checked: Option<Time>,
}

impl BackupRepositorySpec {
    /// Whether jobs in `namespace` may use a repository that lives in
    /// `own_namespace`.
    pub fn allows(&self, own_namespace: &str, namespace: &str) -> bool {
        namespace == own_namespace
            || self
                .allowed_namespaces
                .iter()
                .any(|n| n == "*" || n == namespace)
    }
}
