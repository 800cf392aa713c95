//! Named network namespaces as `ip netns` makes them, so `ip netns list` and
//! `ip netns exec` see ours and we see theirs: the file `/run/netns/NAME` with the
//! namespace bind-mounted on it, `/run/netns` a shared mount point (a namespace
//! removed in one mount namespace goes in all of them).
//!
//! A namespace is made by a short-lived thread that unshares its own network
//! namespace and bind-mounts it; the calling thread (of a process with many) keeps
//! its own. Work inside a namespace runs the same way, on a thread of its own that
//! enters it ([`run_in`]).

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

/// Where named network namespaces live (iproute2's `NETNS_RUN_DIR`).
pub const NETNS_DIR: &str = "/run/netns";

/// The file of the named namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether the named namespace `name` exists.
pub fn exists(name: &str) -> bool {
    valid(name).is_ok() && path(name).exists()
}

/// Creates the named network namespace `name` (`ip netns add NAME`); fails with
/// "File exists" when there is one.
pub fn create(name: &str) -> io::Result<()> {
    valid(name)?;
    std::fs::create_dir_all(NETNS_DIR)?;
    make_shared()?;
    let file = path(name);
    // Like iproute2: an empty file, no permissions, never an existing one.
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&file)?;
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

/// Removes the named network namespace `name` (`ip netns delete NAME`): the kernel
/// destroys it once nothing else holds it. Fails with "No such file or directory"
/// when there is none.
pub fn delete(name: &str) -> io::Result<()> {
    valid(name)?;
    let file = path(name);
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

/// `/run/netns` as a shared mount point (iproute2 does the same): bind-mounted on
/// itself first when it is a plain directory.
fn make_shared() -> io::Result<()> {
    let shared = || {
        mount(
            Some("none"),
            NETNS_DIR,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet.
        Err(Errno::EINVAL) => {
            mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )?;
            Ok(shared()?)
        }
        Err(e) => Err(e.into()),
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
