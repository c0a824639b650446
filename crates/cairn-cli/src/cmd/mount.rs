//! `cairn mount`

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::cli::{Global, MountArgs};
use crate::mount::{MountFs, Options};
use crate::output::parse_size;
use crate::{context, exit};

/// The helper that mounts for unprivileged users and unmounts for all.
const FUSERMOUNT: &str = "fusermount3";

/// Threads serving the kernel's requests.
const THREADS: usize = 4;

pub(crate) async fn run(g: &Global, a: MountArgs) -> Result<u8> {
    let cache_size = parse_size(&a.cache_size)
        .with_context(|| format!("--cache-size {:?}: expected e.g. 64M", a.cache_size))?;
    preflight(&a.mountpoint)?;
    let repo = context::open(g).await?;
    let opts = Options {
        cache_size,
        refresh_every: Duration::from_secs(a.refresh_interval),
    };
    let fs = MountFs::new(repo.clone(), tokio::runtime::Handle::current(), opts).await?;
    let stats = fs.stats();
    // Listening before mounting: a signal in between would otherwise kill
    // the process and leave the mount point dead until `fusermount3 -u`.
    let mut signals = Signals::listen()?;
    let config = config(&a);
    let mountpoint = a.mountpoint.clone();
    let session =
        tokio::task::spawn_blocking(move || fuser::Session::new(fs, &mountpoint, &config))
            .await?
            .with_context(|| format!("cannot mount on {}", a.mountpoint.display()))?;
    if !g.quiet {
        let m = a.mountpoint.display();
        eprintln!("mounted at {m}; Ctrl-C, SIGTERM or `{FUSERMOUNT} -u {m}` unmounts");
    }
    serve(session, &a.mountpoint, &mut signals).await?;
    if a.json {
        let mut v = stats.json();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "mountpoint".into(),
                a.mountpoint.display().to_string().into(),
            );
            o.insert("storage".into(), super::storage_json(repo.store()));
        }
        super::print_json(&v)?;
    } else if !g.quiet {
        eprintln!("unmounted {}", a.mountpoint.display());
    }
    Ok(exit::OK)
}

/// Mount options: read-only, no devices or set-user-id programs, and the
/// kernel checking recorded modes and owners.
fn config(a: &MountArgs) -> fuser::Config {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::NoDev,
        fuser::MountOption::NoSuid,
        // With other users let in, the kernel checks the recorded modes
        // and owners, as it would on the source file system.
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::FSName("cairn".into()),
        fuser::MountOption::Subtype("cairn".into()),
    ];
    // A slow chunk fetch does not hold up a listing in another shell, and
    // read-ahead requests for different chunks are served together.
    config.n_threads = Some(THREADS);
    if a.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    config
}

/// The signals that end the mount.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
}

impl Signals {
    fn listen() -> Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Serves the kernel's requests until the file system is unmounted: by
/// `fusermount3 -u` (the session ends by itself) or, on a signal, by us.
async fn serve<FS: fuser::Filesystem + Send + 'static>(
    mut session: fuser::Session<FS>,
    mountpoint: &Path,
    signals: &mut Signals,
) -> Result<()> {
    let mut unmounter = session.unmount_callable();
    let (done_tx, mut done) = tokio::sync::oneshot::channel();
    // The session's loop blocks on /dev/fuse, on threads of its own.
    std::thread::Builder::new()
        .name("cairn-fuse".into())
        .spawn(move || {
            let _ = done_tx.send(session.run());
        })?;
    let ended = loop {
        tokio::select! {
            r = &mut done => break r,
            _ = signals.next() => {}
        }
        // A busy mount (a shell inside it) refuses to go: say so and keep
        // serving, so the next signal can try again.
        match tokio::task::block_in_place(|| unmounter.unmount()) {
            Ok(()) => break (&mut done).await,
            Err(e) => eprintln!("cannot unmount {}: {e}", mountpoint.display()),
        }
    };
    ended
        .context("the file system's thread stopped")?
        .context("the file system stopped")
}

/// Fails with what to do when the machine cannot mount: no FUSE device,
/// no `fusermount3`, or a mount point that is not a directory.
fn preflight(mountpoint: &Path) -> Result<()> {
    if !Path::new("/dev/fuse").exists() {
        bail!(
            "/dev/fuse is missing: load the fuse kernel module (modprobe fuse), \
             or in a container pass the device (--device /dev/fuse)"
        );
    }
    if find_in_path(FUSERMOUNT).is_none() {
        bail!("{FUSERMOUNT} is not installed: install the fuse3 package (apt-get install fuse3)");
    }
    if !mountpoint.is_dir() {
        bail!("{}: not a directory", mountpoint.display());
    }
    Ok(())
}

/// The first executable `name` in PATH.
fn find_in_path(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}
