//! Command-line syntax.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Environment:
  CAIRN_REPOSITORY     repository location (instead of --repo)
  CAIRN_PASSWORD       repository password
  CAIRN_PASSWORD_FILE  file holding the password (first line)

Exit codes:
  0  success
  1  fatal error (nothing or not everything was done)
  2  invalid command line
  3  backup finished, but some files could not be read (listed in the summary)
  4  forget kept snapshots its policy removes: S3 Object Lock still retains
     them (the report says until when; run forget again after that)";

/// Deduplicating, encrypted backups of directories and Kubernetes volumes.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct Global {
    /// Repository location: a directory path, file:///path or memory://
    #[arg(
        short = 'r',
        long = "repo",
        env = "CAIRN_REPOSITORY",
        global = true,
        value_name = "URL"
    )]
    pub(crate) repo: Option<String>,
    /// Read the password from the first line of this file
    #[arg(long, env = "CAIRN_PASSWORD_FILE", global = true, value_name = "FILE")]
    pub(crate) password_file: Option<PathBuf>,
    /// Print only errors (no progress, no summary)
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Limit uploads to this many KiB/s
    #[arg(long, global = true, value_name = "KIB")]
    pub(crate) limit_upload: Option<u64>,
    /// Limit downloads to this many KiB/s
    #[arg(long, global = true, value_name = "KIB")]
    pub(crate) limit_download: Option<u64>,
    /// Keep the merged index table here, and for remote repositories a
    /// cache of index files, snapshots, settings and trees (default:
    /// ~/.cache/cairn/repos/<hash of the URL>)
    #[arg(long, env = "CAIRN_CACHE_DIR", global = true, value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Do not use a local cache (the index table goes to a temporary
    /// directory)
    #[arg(long, global = true)]
    pub(crate) no_cache: bool,
    /// Local disk the merged index table may take, in MiB (96 bytes per
    /// indexed chunk; default 1024, about 11 million chunks)
    #[arg(
        long,
        env = "CAIRN_INDEX_TABLE_LIMIT",
        global = true,
        value_name = "MIB"
    )]
    pub(crate) index_table_limit: Option<u64>,
    /// PEM certificates of an authority to trust besides the system's, for
    /// an S3 server whose certificate a private CA signed
    #[arg(long, env = "CAIRN_CA_CERT", global = true, value_name = "FILE")]
    pub(crate) ca_cert: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a new repository
    Init(InitArgs),
    /// Back up files and directories into a new snapshot
    Backup(BackupArgs),
    /// Restore a snapshot, or a path inside it, into a directory
    Restore(RestoreArgs),
    /// Ask for the restore of the archived packs a restore will read
    ///
    /// For repositories whose data packs are in S3 GLACIER or DEEP_ARCHIVE
    /// (a data storage class, or a lifecycle rule): asks each pack's
    /// status, asks for the restore of those archived (never twice for one
    /// being restored), and with --wait waits until all are readable.
    /// `cairn restore` does the same by itself before it reads.
    WarmUp(crate::cli_args::WarmUpArgs),
    /// List snapshots
    Snapshots(SnapshotsArgs),
    /// List the contents of a snapshot
    Ls(LsArgs),
    /// Write one file of a snapshot to standard output
    Dump(DumpArgs),
    /// Browse every snapshot in a read-only FUSE mount
    ///
    /// Snapshots appear by id (ids/), time (snapshots/), host (hosts/),
    /// tag (tags/) and Kubernetes claim (claims/). Runs in the foreground
    /// until Ctrl-C, SIGTERM or `fusermount3 -u MOUNTPOINT`.
    Mount(MountArgs),
    /// Show what changed between two snapshots
    Diff(DiffArgs),
    /// Find paths matching a pattern in snapshots
    Find(FindArgs),
    /// Verify that every snapshot can be restored
    Check(CheckArgs),
    /// Remove snapshots by a retention policy, per source
    Forget(ForgetArgs),
    /// Delete data no snapshot references (safe while backups run)
    Prune(PruneArgs),
    /// Copy snapshots from another repository into this one
    Copy(CopyArgs),
    /// Rebuild repository metadata
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Manage the passwords that unlock the repository
    #[command(subcommand)]
    Key(KeyCommand),
    /// Keep an S3 Object Lock repository retained, or bring it back
    #[command(subcommand)]
    Lock(crate::cli_args::LockCommand),
    /// Print a decrypted repository object as JSON (for debugging)
    Cat(CatArgs),
    /// Show or change storage classes and object lock
    Settings(crate::cli_args::SettingsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(CompletionsArgs),
    /// Write man pages for cairn and every subcommand into a directory
    Man(ManArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CopyArgs {
    /// The repository to copy from
    #[arg(long, env = "CAIRN_FROM_REPOSITORY", value_name = "URL")]
    pub(crate) from_repo: String,
    /// Read the source repository's password from the first line of this
    /// file (or set CAIRN_FROM_PASSWORD)
    #[arg(long, env = "CAIRN_FROM_PASSWORD_FILE", value_name = "FILE")]
    pub(crate) from_password_file: Option<PathBuf>,
    /// Snapshots to copy, by id prefix or "latest" (default: every snapshot
    /// the filters select)
    #[arg(value_name = "SNAPSHOT")]
    pub(crate) snapshots: Vec<String>,
    /// Only snapshots of this host (repeatable)
    #[arg(long, value_name = "HOST")]
    pub(crate) host: Vec<String>,
    /// Only snapshots with this tag (repeatable: any of them)
    #[arg(long, value_name = "TAG")]
    pub(crate) tag: Vec<String>,
    /// Only snapshots that include this path (repeatable: any of them)
    #[arg(long, value_name = "PATH")]
    pub(crate) path: Vec<String>,
    /// Only snapshots of this Kubernetes claim, NAMESPACE/NAME (repeatable)
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub(crate) claim: Vec<String>,
    /// Say what would be copied, copy nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) warm: crate::cli_args::WarmArgs,
    /// Print a JSON summary
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_name = "SHELL")]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Directory to write cairn.1 and cairn-<verb>.1 into (created if missing)
    #[arg(value_name = "DIR")]
    pub(crate) dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// zstd compression level (0 disables compression)
    #[arg(long, default_value_t = 3, value_name = "LEVEL")]
    pub(crate) compression: i32,
    #[command(flatten)]
    pub(crate) kdf: KdfArgs,
    #[command(flatten)]
    pub(crate) storage: crate::cli_args::StorageArgs,
    /// Cut chunks exactly as this repository does (its chunker parameters
    /// and seed), so `cairn copy` between the two re-seals chunks instead
    /// of cutting them again; its password comes from CAIRN_FROM_PASSWORD
    /// or --from-password-file
    #[arg(long, value_name = "URL")]
    pub(crate) copy_chunker_params_from: Option<String>,
    /// File holding the password of --copy-chunker-params-from
    #[arg(long, env = "CAIRN_FROM_PASSWORD_FILE", value_name = "FILE")]
    pub(crate) from_password_file: Option<std::path::PathBuf>,
    /// Print the result as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

/// Argon2id cost of a new key file.
#[derive(Debug, Args)]
pub(crate) struct KdfArgs {
    /// Argon2id memory in KiB for the new key
    #[arg(long, default_value_t = 65536, value_name = "KIB")]
    pub(crate) kdf_memory: u32,
    /// Argon2id passes for the new key
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub(crate) kdf_iterations: u32,
    /// Argon2id lanes for the new key, computed in parallel (default 4, or
    /// one per 8 KiB of memory if that is fewer)
    #[arg(long, value_name = "N")]
    pub(crate) kdf_lanes: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// Files, directories and block devices to back up
    #[arg(
        required_unless_present = "stdin",
        conflicts_with = "stdin",
        value_name = "PATH"
    )]
    pub(crate) paths: Vec<PathBuf>,
    /// Leave out paths matching this pattern (gitignore syntax; repeatable)
    #[arg(long, value_name = "PATTERN")]
    pub(crate) exclude: Vec<String>,
    /// Like --exclude, ignoring letter case
    #[arg(long, value_name = "PATTERN")]
    pub(crate) iexclude: Vec<String>,
    /// Read exclude patterns from this file, one per line (repeatable)
    #[arg(long, value_name = "FILE")]
    pub(crate) exclude_file: Vec<PathBuf>,
    /// Leave out the contents of directories holding a CACHEDIR.TAG file
    #[arg(long)]
    pub(crate) exclude_caches: bool,
    /// Do not read .cairnignore files
    #[arg(long)]
    pub(crate) no_ignore_files: bool,
    /// Stay on the file system of each path given (mount points are kept empty)
    #[arg(short = 'x', long)]
    pub(crate) one_file_system: bool,
    /// Back up the content of block devices found in directories
    #[arg(long)]
    pub(crate) read_special: bool,
    /// Back up standard input as one file
    #[arg(long)]
    pub(crate) stdin: bool,
    /// Name of the file that holds standard input in the snapshot
    #[arg(long, default_value = "stdin", value_name = "NAME", requires = "stdin")]
    pub(crate) stdin_filename: String,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// Hostname to record (default: this machine's)
    #[arg(long, value_name = "HOST")]
    pub(crate) host: Option<String>,
    /// Compare against this snapshot instead of the latest with the same host and paths
    #[arg(long, value_name = "SNAPSHOT", conflicts_with = "force")]
    pub(crate) parent: Option<String>,
    /// Read every file, ignoring the parent snapshot
    #[arg(long)]
    pub(crate) force: bool,
    /// Take a file as unchanged when its size and mtime match the parent's,
    /// whatever its inode number and ctime (NFS, CephFS, a restored or
    /// cloned tree)
    #[arg(long)]
    pub(crate) ignore_inode: bool,
    /// Record access times as they are now; by default an entry whose only
    /// change since the parent snapshot is its access time keeps the
    /// parent's, so reading the data does not make every directory new
    #[arg(long)]
    pub(crate) exact_atime: bool,
    /// Print the summary as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// Snapshot id prefix or "latest", optionally followed by :PATH inside it
    #[arg(value_name = "SNAPSHOT[:PATH]")]
    pub(crate) snapshot: String,
    /// Directory to restore into (created if missing); for SNAPSHOT:FILE, may be an
    /// existing file or block device that receives the file's content
    #[arg(long, short = 't', value_name = "DIR")]
    pub(crate) target: PathBuf,
    /// Do not restore file ownership even when running as root
    #[arg(long)]
    pub(crate) no_owner: bool,
    /// Restore only paths matching this glob, and the directories leading to them (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub(crate) include: Vec<String>,
    /// Leave out paths matching this glob (repeatable)
    #[arg(long, value_name = "GLOB")]
    pub(crate) exclude: Vec<String>,
    /// What to do with files that already exist in the target
    #[arg(long, value_enum, default_value = "always", value_name = "WHEN")]
    pub(crate) overwrite: OverwriteArg,
    /// Remove files from the target that are not in the snapshot
    #[arg(long)]
    pub(crate) delete: bool,
    /// Re-read every restored file and compare it with the snapshot
    #[arg(long)]
    pub(crate) verify: bool,
    /// The snapshot is someone else's: drop set-user-ID/set-group-ID bits and file
    /// capabilities, and leave out device nodes
    #[arg(long)]
    pub(crate) untrusted: bool,
    #[command(flatten)]
    pub(crate) warm: crate::cli_args::WarmArgs,
    /// Print the summary as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

/// `--overwrite` choices.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum OverwriteArg {
    /// Replace every existing file
    Always,
    /// Replace a file only if its content differs (checked chunk by chunk)
    IfChanged,
    /// Never replace an existing file
    Never,
}

#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    /// Snapshot id prefix or "latest", then ":" and the file's path inside it
    #[arg(value_name = "SNAPSHOT:FILE")]
    pub(crate) spec: String,
}

#[derive(Debug, Args)]
pub(crate) struct MountArgs {
    /// An existing, empty directory to mount on
    #[arg(value_name = "MOUNTPOINT")]
    pub(crate) mountpoint: PathBuf,
    /// Let other users see the mount (needs user_allow_other in
    /// /etc/fuse.conf unless run as root); recorded modes and owners are
    /// enforced by the kernel
    #[arg(long)]
    pub(crate) allow_other: bool,
    /// Memory for decrypted chunks of file content (K, M, G suffixes)
    #[arg(long, default_value = "64M", value_name = "SIZE")]
    pub(crate) cache_size: String,
    /// Read the snapshot list again, when a directory above the snapshots
    /// is listed, at most this often (0: every time)
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub(crate) refresh_interval: u64,
    /// Stay in the foreground: always the case, accepted for scripts
    /// written for other tools
    #[arg(long)]
    pub(crate) foreground: bool,
    /// On unmount, print what was fetched and served as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    /// The older snapshot (id prefix or "latest")
    pub(crate) from: String,
    /// The newer snapshot
    pub(crate) to: String,
    /// Print one JSON object per change
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct FindArgs {
    /// Glob over paths inside snapshots; without "/" it matches names at any depth
    pub(crate) pattern: String,
    /// Search only this snapshot (repeatable; default: all)
    #[arg(long = "snapshot", short = 's', value_name = "SNAPSHOT")]
    pub(crate) snapshots: Vec<String>,
    /// Print one JSON object per match
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SnapshotsArgs {
    /// Only snapshots of Kubernetes claims recorded by this cluster name
    #[arg(long, value_name = "NAME")]
    pub(crate) cluster: Option<String>,
    /// Only snapshots of this Kubernetes claim, NAMESPACE/NAME (or
    /// NAMESPACE/ for every claim of a namespace)
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub(crate) claim: Option<String>,
    /// Only snapshots of this host
    #[arg(long, value_name = "HOST")]
    pub(crate) host: Option<String>,
    /// Print as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Snapshot id prefix or "latest"
    pub(crate) snapshot: String,
    /// Path inside the snapshot to list (default: everything)
    pub(crate) path: Option<String>,
    /// Long format: type, mode, owner, size, modification time
    #[arg(short, long)]
    pub(crate) long: bool,
    /// Print one JSON object per entry
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Also download every pack and verify every blob
    #[arg(long)]
    pub(crate) read_data: bool,
    /// Download and verify only part of the packs: N/M (part N of M) or P% (a random share)
    #[arg(long, value_name = "N/M|P%", conflicts_with = "read_data")]
    pub(crate) read_data_subset: Option<String>,
    /// Trust the local cache (index table, snapshots, trees): faster, but
    /// damage to the repository's copies of cached objects goes unnoticed
    #[arg(long)]
    pub(crate) with_cache: bool,
    #[command(flatten)]
    pub(crate) warm: crate::cli_args::WarmArgs,
    /// Print the report as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ForgetArgs {
    /// Keep the N newest snapshots
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) keep_hourly: u32,
    /// Keep the newest snapshot of each of the last N days that have one
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) keep_daily: u32,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) keep_weekly: u32,
    /// Keep the newest snapshot of each of the last N months that have one
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) keep_monthly: u32,
    /// Keep the newest snapshot of each of the last N years that have one
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub(crate) keep_yearly: u32,
    /// Keep every snapshot within this span of the group's newest (e.g. 1y5m7d2h)
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within: Option<String>,
    /// Keep every snapshot with this tag (repeatable)
    #[arg(long, value_name = "TAG")]
    pub(crate) keep_tag: Vec<String>,
    /// Only show what would be removed
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Run prune afterwards
    #[arg(long)]
    pub(crate) prune: bool,
    #[command(flatten)]
    pub(crate) prune_opts: PruneOpts,
    /// Print kept and removed snapshots, with reasons, as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

/// How prune behaves.
#[derive(Debug, Args)]
pub(crate) struct PruneOpts {
    /// Tombstones wait this long before data is deleted (e.g. 30min, 24h, 2d)
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub(crate) grace: String,
    /// Repack a pack when more than this share of it is unused
    #[arg(long, default_value = "5%", value_name = "PERCENT")]
    pub(crate) max_unused: String,
    /// Rewrite at most this many bytes of live data per run (e.g. 10G)
    #[arg(long, value_name = "SIZE")]
    pub(crate) max_repack_size: Option<String>,
    /// Repack partly used packs in GLACIER or DEEP_ARCHIVE too (left as
    /// they are otherwise: a repack restores, downloads and uploads them
    /// again); archived ones get a restore asked for and are repacked by a
    /// prune run once they are readable
    #[arg(long)]
    pub(crate) repack_cold: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    #[command(flatten)]
    pub(crate) opts: PruneOpts,
    /// Only report what would be done
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RepairCommand {
    /// Rebuild the index from the pack headers (after index files were lost)
    Index(RepairIndexArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RepairIndexArgs {
    /// Only report what would be done
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Print the report as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Add a password
    Add(KeyAddArgs),
    /// List key files
    List(KeyListArgs),
    /// Remove a key file (not the one in use)
    Remove(KeyRemoveArgs),
    /// Change the password in use
    Passwd(KeyAddArgs),
}

#[derive(Debug, Args)]
pub(crate) struct KeyAddArgs {
    /// Read the new password from the first line of this file (or set CAIRN_NEW_PASSWORD)
    #[arg(long, value_name = "FILE")]
    pub(crate) new_password_file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) kdf: KdfArgs,
}

#[derive(Debug, Args)]
pub(crate) struct KeyListArgs {
    /// Print as JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KeyRemoveArgs {
    /// Key id prefix
    pub(crate) id: String,
}

#[derive(Debug, Args)]
pub(crate) struct CatArgs {
    /// What to print: config, snapshot, tree, index, pack, key
    #[arg(value_parser = ["config", "snapshot", "tree", "index", "pack", "key"])]
    pub(crate) what: String,
    /// Object id (snapshot id prefix or "latest" for snapshots)
    pub(crate) id: Option<String>,
}
