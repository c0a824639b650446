//! `status.hooks` of a VolumeBackup: what the application hooks did (the
//! hooks themselves are run by [`crate::controller::hooks`]).

use serde::{Deserialize, Serialize};

/// One hook's outcome, as `status.hooks` records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookRun {
    /// The pod it ran in.
    pub pod: String,
    /// The container (absent when the annotations named none usable: an
    /// empty string in a merge patch reads as null to some apiservers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// `Succeeded`, `Failed`, `TimedOut` or `Invalid` (annotations that
    /// could not be used).
    pub result: String,
    /// The command's exit code, when it ran to the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Whether a failure fails the backup (`on-error: Fail`).
    pub fatal: bool,
    /// What went wrong, or the end of the command's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl HookRun {
    /// True when the hook failed and its `on-error` says to fail the backup.
    pub fn fails_backup(&self) -> bool {
        self.fatal && self.result != "Succeeded"
    }
}

/// What the hooks of a backup did (`status.hooks`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookStatus {
    /// The pre hooks have run (whatever their outcome).
    #[serde(default)]
    pub pre_done: bool,
    /// Their outcomes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre: Vec<HookRun>,
    /// The post hooks have run.
    #[serde(default)]
    pub post_done: bool,
    /// Their outcomes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post: Vec<HookRun>,
}
