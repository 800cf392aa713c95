//! Named network namespaces as `ip netns` makes them, so `ip netns list` and
//! `ip netns exec` see ours and we see theirs: the file `/run/netns/NAME` with the
//! namespace bind-mounted on it, `/run/netns` a shared mount point (a namespace
//! removed in one mount namespace goes in all of them).
//!
//! A namespace is made by a short-lived thread that unshares its own network
//! namespace and bind-mounts it; the calling thread (of a process with many) keeps
//! its own. Work inside a namespace runs the same way, on a thread of its own that
//! enters it ([`run_in`]).

use std::fs::{DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::statfs::{NSFS_MAGIC, fstatfs};

/// Where named network namespaces live (iproute2's `NETNS_RUN_DIR`).
pub const NETNS_DIR: &str = "/run/netns";

/// The file of the named namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether the named namespace `name` exists: a namespace is mounted on its file. A
/// file without one (left by a crash between making the file and mounting on it) or
/// a symbolic link is no namespace.
pub fn exists(name: &str) -> bool {
    exists_in(Path::new(NETNS_DIR), name)
}

/// Whether a file of namespace `name` is left with no namespace mounted on it (a
/// process killed between making the file and mounting on it).
pub fn leftover(name: &str) -> bool {
    valid(name).is_ok()
        && std::fs::symlink_metadata(path(name)).is_ok_and(|m| m.is_file())
        && !exists(name)
}

/// Creates the named network namespace `name` (`ip netns add NAME`); fails with
/// "File exists" when there is one. A file of that name that is no namespace is
/// replaced. A name is made by one caller at a time.
pub fn create(name: &str) -> io::Result<()> {
    create_in(Path::new(NETNS_DIR), name)
}

/// Removes the named network namespace `name` (`ip netns delete NAME`): the kernel
/// destroys it once nothing else holds it. Fails with "No such file or directory"
/// when there is none.
pub fn delete(name: &str) -> io::Result<()> {
    delete_in(Path::new(NETNS_DIR), name)
}

/// [`exists`] with the namespaces in `dir` instead of [`NETNS_DIR`].
fn exists_in(dir: &Path, name: &str) -> bool {
    valid(name).is_ok() && is_namespace(&dir.join(name))
}

/// Whether a namespace is mounted on `file`: the file itself, not where a symbolic
/// link points, is a regular file of the namespace filesystem (nsfs).
fn is_namespace(file: &Path) -> bool {
    // O_PATH | O_NOFOLLOW opens a symbolic link as itself, which is never on nsfs.
    let Ok(opened) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH | nix::libc::O_NOFOLLOW)
        .open(file)
    else {
        return false;
    };
    opened.metadata().is_ok_and(|m| m.is_file())
        && fstatfs(&opened).is_ok_and(|fs| fs.filesystem_type() == NSFS_MAGIC)
}

/// [`create`] with the namespaces in `dir` instead of [`NETNS_DIR`].
fn create_in(dir: &Path, name: &str) -> io::Result<()> {
    valid(name)?;
    // iproute2's mode, 0755 (less what the umask takes away): never writable by
    // others, who could plant files under namespace names, as a umask of 0 would
    // make it with the default 0777.
    DirBuilder::new().recursive(true).mode(0o755).create(dir)?;
    make_shared(dir)?;
    let file = dir.join(name);
    // Like iproute2: an empty file, no permissions, never an existing one.
    let new_file = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&file)
    };
    match new_file() {
        Ok(_) => {}
        // A file no namespace is mounted on is a crash's leftover, or a link.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && !is_namespace(&file) => {
            std::fs::remove_file(&file)?;
            new_file()?;
        }
        Err(e) => return Err(e),
    }
    let target = file.clone();
    let bound = on_own_thread(move || -> io::Result<()> {
        // Only this thread moves to the new namespace, and it ends right after: the
        // bind mount keeps the namespace alive.
        unshare(CloneFlags::CLONE_NEWNET)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            Some("none"),
            MsFlags::MS_BIND,
            None::<&str>,
        )?;
        Ok(())
    })
    .and_then(|r| r);
    if bound.is_err() {
        let _ = std::fs::remove_file(&file);
    }
    bound
}

/// [`delete`] with the namespaces in `dir` instead of [`NETNS_DIR`].
fn delete_in(dir: &Path, name: &str) -> io::Result<()> {
    valid(name)?;
    let file = dir.join(name);
    // Not mounted (a file left by a crash) is fine: the file goes all the same.
    let _ = umount2(&file, MntFlags::MNT_DETACH);
    std::fs::remove_file(&file)
}

/// Runs `work` on a new thread inside the named namespace `name`; sockets it opens
/// belong to that namespace. The calling thread stays where it is.
pub fn run_in<T: Send>(name: &str, work: impl FnOnce() -> T + Send) -> io::Result<T> {
    valid(name)?;
    let file = File::open(path(name))?;
    on_own_thread(move || -> io::Result<T> {
        setns(&file, CloneFlags::CLONE_NEWNET)?;
        Ok(work())
    })
    .and_then(|r| r)
}

/// Runs `work` on a new thread and waits for it (a panic there is an error here).
pub(crate) fn on_own_thread<T: Send>(work: impl FnOnce() -> T + Send) -> io::Result<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("rk8s-netns".into())
            .spawn_scoped(scope, work)?
            .join()
            .map_err(|_| io::Error::other("the network namespace thread panicked"))
    })
}

/// The namespace directory `dir` as a shared mount point (as iproute2 makes it), so a
/// namespace unmounted in one mount namespace goes in all of them: bind-mounted on
/// itself first when it is a plain directory.
///
/// Exactly once, also when namespaces are made in parallel: two callers that both
/// find a plain directory would both bind it, and again on the next round, stacking
/// mounts without limit (Launchpad bug 1903502); a namespace file then lands in the
/// top one, and `delete`, unmounting one, cannot remove it ("Device or resource
/// busy"). So, like iproute2, the steps run under an exclusive `flock` on the
/// directory (other processes, `ip netns add` too) and a lock of this process'
/// own, and the directory is bound at most once.
fn make_shared(dir: &Path) -> io::Result<()> {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let _in_process = IN_PROCESS.lock().unwrap_or_else(PoisonError::into_inner);
    let _locked = Flock::lock(File::open(dir)?, FlockArg::LockExclusive).map_err(|(_, e)| e)?;
    let mut bound = false;
    loop {
        let shared = mount(
            Some("none"),
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        );
        match shared {
            Ok(()) => return Ok(()),
            // Not a mount point yet.
            Err(Errno::EINVAL) if !bound => {
                mount(
                    Some(dir),
                    dir,
                    Some("none"),
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                )?;
                bound = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// A name that stays a file directly under `/run/netns`.
fn valid(name: &str) -> io::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is no network namespace name"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::process::Command;

    /// Removes the namespace also when the test fails.
    struct Cleanup(String);

    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = delete(&self.0);
        }
    }

    fn ip(args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn names_that_are_no_file_under_run_netns_are_refused() {
        for name in ["", ".", "..", "a/b", "../etc"] {
            assert_eq!(
                create(name).unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{name:?}"
            );
            assert!(delete(name).is_err());
            assert!(!exists(name));
        }
    }

    /// Runs `work` with a fresh stand-in for `/run` (a tmpfs on a scratch directory)
    /// in a mount namespace of its own: its mounts never reach the host, and they go
    /// (and with them the network namespaces bound there) with the namespace, when
    /// its last thread ends, also when `work` panics. The thread's umask is its own.
    fn in_private_run(work: impl FnOnce(&Path) + Send) {
        assert!(
            crate::host::is_root(),
            "this test needs root: mount and network namespaces"
        );
        let scratch = tempfile::tempdir().unwrap();
        let run = scratch.path().canonicalize().unwrap();
        on_own_thread(|| {
            unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS).unwrap();
            let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
            mount(None::<&str>, "/", None::<&str>, private, None::<&str>).unwrap();
            mount(
                Some("tmpfs"),
                &run,
                Some("tmpfs"),
                MsFlags::empty(),
                Some("mode=0755"),
            )
            .unwrap();
            work(&run);
        })
        .unwrap();
    }

    /// How many mounts this thread's mount namespace has at `dir`.
    fn mounts_at(dir: &Path) -> usize {
        let dir = dir.to_str().unwrap();
        std::fs::read_to_string("/proc/thread-self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some(dir))
            .count()
    }

    #[test]
    fn parallel_creates_make_the_directory_a_mount_point_once() {
        in_private_run(|run| {
            // Made by the first create, with iproute2's mode whatever the umask.
            nix::sys::stat::umask(nix::sys::stat::Mode::empty());
            // Each round a fresh directory: the race is at the first creates.
            for round in 0..4 {
                let dir = run.join(format!("netns{round}"));
                let names: Vec<String> = (0..8).map(|i| format!("rk8snsp{i}")).collect();
                let start = std::sync::Barrier::new(names.len());
                std::thread::scope(|s| {
                    let creates: Vec<_> = names
                        .iter()
                        .map(|name| {
                            s.spawn(|| {
                                start.wait();
                                create_in(&dir, name)
                            })
                        })
                        .collect();
                    for (create, name) in creates.into_iter().zip(&names) {
                        create
                            .join()
                            .unwrap()
                            .unwrap_or_else(|e| panic!("{name}: {e}"));
                    }
                });
                assert_eq!(mounts_at(&dir), 1, "one bind mount of the directory");
                let mode = std::fs::metadata(&dir).unwrap().mode();
                assert_eq!(mode & 0o7777, 0o755, "{mode:o}");
                for name in &names {
                    assert!(exists_in(&dir, name), "{name}");
                    delete_in(&dir, name).unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(!exists_in(&dir, name), "{name}");
                }
                assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
                // Another create finds the mount point made.
                create_in(&dir, &names[0]).unwrap();
                assert_eq!(mounts_at(&dir), 1);
                delete_in(&dir, &names[0]).unwrap();
            }
        });
    }

    #[test]
    fn a_file_under_the_name_that_is_no_namespace_is_replaced() {
        in_private_run(|run| {
            let dir = run.join("netns");
            std::fs::create_dir(&dir).unwrap();
            // A crash between making the file and mounting the namespace on it.
            let stale = dir.join("stale");
            std::fs::write(&stale, "").unwrap();
            assert!(!exists_in(&dir, "stale"));
            // A link to a namespace is not one under this name either.
            let link = dir.join("link");
            std::os::unix::fs::symlink("/proc/thread-self/ns/net", &link).unwrap();
            assert!(!exists_in(&dir, "link"));
            for name in ["stale", "link"] {
                create_in(&dir, name).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(exists_in(&dir, name), "{name}");
                let file = dir.join(name);
                assert!(std::fs::symlink_metadata(&file).unwrap().is_file());
                assert_ne!(
                    std::fs::metadata(&file).unwrap().ino(),
                    std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino(),
                    "{name}: a namespace of its own"
                );
                assert_eq!(
                    create_in(&dir, name).unwrap_err().kind(),
                    io::ErrorKind::AlreadyExists,
                    "{name}: a namespace is never replaced"
                );
                delete_in(&dir, name).unwrap();
                assert!(!file.exists(), "{name}");
            }
        });
    }

    #[test]
    fn namespaces_are_the_ones_ip_netns_knows() {
        assert!(
            crate::host::is_root(),
            "this test needs root: network namespaces"
        );
        let name = format!("rk8snlns{}", std::process::id());
        let _cleanup = Cleanup(name.clone());
        create(&name).unwrap();
        assert!(exists(&name));
        assert_eq!(
            create(&name).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert!(
            ip(&["netns", "list"])
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&name)),
            "ip netns list shows it"
        );
        // A namespace of its own: only lo, down.
        let links = ip(&["netns", "exec", &name, "ip", "-o", "link"]);
        assert_eq!(links.lines().count(), 1, "{links}");
        assert!(
            links.contains("lo:") && links.contains("state DOWN"),
            "{links}"
        );
        // Not this process' namespace.
        let inside = run_in(&name, || std::fs::read_link("/proc/thread-self/ns/net")).unwrap();
        let here = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        assert_ne!(inside.unwrap(), here);
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        assert_eq!(own, here, "the calling thread stayed");
        delete(&name).unwrap();
        assert!(!exists(&name));
        assert!(!ip(&["netns", "list"]).contains(&name));
        assert_eq!(delete(&name).unwrap_err().kind(), io::ErrorKind::NotFound);
        // One `ip netns add` made is ours to delete.
        ip(&["netns", "add", &name]);
        assert!(exists(&name));
        delete(&name).unwrap();
        assert!(!ip(&["netns", "list"]).contains(&name));
    }
}
