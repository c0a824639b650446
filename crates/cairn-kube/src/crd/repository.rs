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
    printcolumn = r#"{"name":"Maintenance","type":"string","jsonPath":".status.maintenance.phase"}"#,
    printcolumn = r#"{"name":"Last Maintained","type":"date","jsonPath":".status.maintenance.lastSuccessTime"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.message","priority":1}"#,
    printcolumn = r#"{"name":"Maintenance Summary","type":"string","jsonPath":".status.maintenance.summary","priority":1}"#,
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
    /// PEM certificates, base64-encoded (as Velero's `objectStorage.caCert`),
    /// of the authority that signed the storage server's certificate:
    /// trusted besides the system's authorities, for S3 servers with a
    /// private CA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
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
    /// Prune and check the repository on a schedule, in a Job in the
    /// repository's namespace (see `status.maintenance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
}

/// Repository maintenance on a schedule: prune (free the data of forgotten
/// snapshots) and check (structure, and a share of the packs read back).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Maintenance {
    /// Standard five-field cron expression in UTC (`30 3 * * 0`), or
    /// `@hourly`, `@daily`, `@weekly`, `@monthly`.
    pub schedule: String,
    /// Prune on each run; default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,
    /// How long prune keeps forgotten data before deleting it, as in
    /// `cairn prune --grace` (`24h`, at least `1h`); default 24h. A run
    /// marks what no snapshot needs; a later run, once this much time has
    /// passed, deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_grace: Option<String>,
    /// Check the repository's structure on each run; default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<bool>,
    /// Also download and verify this share of the packs on each run, as in
    /// `cairn check --read-data-subset` (`5%`, or `1/7` to cover every pack
    /// once in seven runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_data_subset: Option<String>,
    /// Compute resources of the maintenance Job's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    /// A run that takes longer than this many seconds is stopped and
    /// counts as failed; default 6 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
    /// After pruning and checking, copy every snapshot that the
    /// BackupRepository of this name (in the same namespace, on object
    /// storage) lacks into it: a hot repository in the cluster feeding an
    /// archive elsewhere. As `cairn copy`, only what the target lacks is
    /// uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_to: Option<String>,
    /// Start no new runs (one already running finishes).
    #[serde(default)]
    pub suspend: bool,
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

/// A Secret of storage settings: each key a setting, or one key holding
/// an AWS shared credentials file.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    pub name: String,
    /// Read only this key, as an AWS shared credentials file (`[default]`
    /// with `aws_access_key_id`, `aws_secret_access_key` and optionally
    /// `aws_session_token`), as Velero's credential Secrets hold them.
    /// Without it every key of the Secret is a setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The profile (section) of the credentials file in `key`; default
    /// `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
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
    /// Scheduled maintenance, if `spec.maintenance` asks for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<MaintenanceStatus>,
}

/// What scheduled maintenance did last.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceStatus {
    /// `Running`, `Succeeded`, `Failed` (see `summary` and `problems`), or
    /// `Invalid` (the policy cannot run; see `summary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The Job of the run in progress or last recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// The last time a run was due (and started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,
    /// The next time a run is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_schedule_time: Option<Time>,
    /// When the last recorded run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_completion_time: Option<Time>,
    /// When the last run that succeeded ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Time>,
    /// Bytes of storage the last run freed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclaimed_bytes: Option<u64>,
    /// What the last run did, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Problems the last run found (at most 10, each cut at 300 bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
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
