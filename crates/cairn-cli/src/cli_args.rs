//! The arguments of the archival verbs (`warm-up`, `lock`, `settings`)
//! and of the warm-up flags other verbs share: clap definitions only, so
//! that [`crate::cli`] and the verbs in [`crate::cmd`] both depend on this
//! module and not on each other.

use clap::{Args, Subcommand};

/// How restores from archival storage are asked for and waited on.
#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// Days a restored pack stays readable
    #[arg(long, default_value_t = 7, value_name = "N")]
    pub(crate) restore_days: u32,
    /// S3 retrieval tier of the restores asked for
    #[arg(long, value_enum, default_value = "standard", value_name = "TIER")]
    pub(crate) restore_tier: TierArg,
    /// Time between two looks at the packs being restored (e.g. 30s, 5m)
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub(crate) poll_interval: String,
}

/// `--restore-tier` choices.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum TierArg {
    /// Minutes, the dearest (GLACIER: 1-5 minutes; not for DEEP_ARCHIVE)
    Expedited,
    /// Hours (GLACIER: 3-5 hours; DEEP_ARCHIVE: within 12 hours)
    Standard,
    /// Many hours, the cheapest (GLACIER: 5-12 hours; DEEP_ARCHIVE: within 48 hours)
    Bulk,
}

/// The warm-up flags of commands that read data packs.
#[derive(Debug, Args)]
pub(crate) struct WarmArgs {
    /// Ask for the restore of archived packs and wait for them before
    /// reading, whatever the repository's settings say (for buckets whose
    /// lifecycle rules move packs to GLACIER or DEEP_ARCHIVE); done anyway
    /// when the data storage class is archival
    #[arg(long)]
    pub(crate) warm_up: bool,
    #[command(flatten)]
    pub(crate) request: RequestArgs,
}

#[derive(Debug, Args)]
pub(crate) struct WarmUpArgs {
    /// Snapshot id prefix or "latest"
    #[arg(value_name = "SNAPSHOT")]
    pub(crate) snapshot: String,
    /// Paths inside the snapshot whose files will be restored (default:
    /// everything)
    #[arg(value_name = "PATH")]
    pub(crate) paths: Vec<String>,
    #[command(flatten)]
    pub(crate) request: RequestArgs,
    /// Also wait until every pack is readable
    #[arg(long)]
    pub(crate) wait: bool,
    /// Print the counts as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum LockCommand {
    /// Extend the retention of everything the repository needs
    ///
    /// The config, key files, settings, the index files in force and every
    /// pack they list with a blob still in use get now + the lock period
    /// when less than half of it is left; a snapshot keeps the retention it
    /// was written with, so `forget` can remove it later. Run it more
    /// often than half the period (maintenance does).
    Extend(ExtendArgs),
    /// Bring back a repository hidden by delete markers
    ///
    /// After a delete-everything attempt on a versioned bucket, removes the
    /// delete markers over objects of the repository whose newest version
    /// is still retained, so the repository reads again. Needs the bucket's
    /// credentials, not the repository's password.
    Recover(RecoverArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ExtendArgs {
    /// Print the report as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    /// Only report what would be removed
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Also bring back objects whose retention has ended, which include
    /// snapshots and packs that forget and prune deleted on purpose
    #[arg(long)]
    pub(crate) include_unretained: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

/// Storage classes and object lock, for `init` and `settings`.
#[derive(Debug, Args, Default)]
pub(crate) struct StorageArgs {
    /// S3 storage class of data packs, e.g. GLACIER_IR, GLACIER or
    /// DEEP_ARCHIVE ("" for the bucket's default); tree packs, index
    /// files, snapshots and keys keep --metadata-storage-class, so
    /// backups, listings and browsing never read an archived object
    #[arg(long, value_name = "CLASS")]
    pub(crate) data_storage_class: Option<String>,
    /// S3 storage class of every other object ("" for the default)
    #[arg(long, value_name = "CLASS")]
    pub(crate) metadata_storage_class: Option<String>,
    /// Give every new object an S3 Object Lock retention in this mode
    /// (governance or compliance; `none` stops locking new objects); the
    /// bucket must have Object Lock enabled
    #[arg(long, value_name = "MODE")]
    pub(crate) object_lock: Option<String>,
    /// Retention in days from each write (and each `cairn lock extend`)
    #[arg(long, value_name = "N", group = "lock_period")]
    pub(crate) lock_days: Option<u32>,
    /// Retention as a duration: 90s, 12h, 30d
    #[arg(long, value_name = "DURATION", group = "lock_period")]
    pub(crate) lock_duration: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SettingsArgs {
    #[command(flatten)]
    pub(crate) storage: StorageArgs,
    /// Print the settings as JSON
    #[arg(long)]
    pub(crate) json: bool,
}
