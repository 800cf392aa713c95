//! Podman, the container engine users compare with (Debian's `podman`, which
//! `scripts/setup-bench.sh` installs), driven through its CLI as a user would: its own
//! storage, run and temporary directories and configuration in a temporary directory,
//! runc as its runtime (crun does not work on this host's cgroup layout), and a cgroup
//! parent of its own. Everything it made is removed when it is dropped.

use std::path::Path;
use std::process::Command;

/// The cgroup every podman container and pod of the benchmark goes under.
const CGROUP_PARENT: &str = "/rk8s-bench-podman";

/// Podman's settings for the benchmark. The container's limits are set because
/// podman's defaults (a million open files, every process) exceed what this host lets
/// even root raise to.
const CONTAINERS_CONF: &str = r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
"#;

/// A podman with everything of its own in a temporary directory.
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    /// Podman, if it is installed.
    pub fn new() -> Option<Self> {
        let found = Command::new("podman")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("containers.conf"), CONTAINERS_CONF).unwrap();
        Some(Podman { dir })
    }

    /// Runs `podman ARGS` and returns what it printed; panics with its errors if it
    /// failed.
    pub fn run(&self, args: &[&str]) -> String {
        let d = self.dir.path();
        let output = Command::new("podman")
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "overlay"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "podman {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// Copies the OCI image layout at `layout` (tag `latest`) into podman's storage;
    /// returns the image's id there.
    pub fn load(&self, layout: &str) -> String {
        self.run(&["pull", "-q", &format!("oci:{layout}:latest")])
    }

    /// `podman create`, `start`, `rm --force` of a container that would sleep: the
    /// same lifecycle as the rk8s and runc rows (three commands, three processes).
    pub fn lifecycle(&self, image: &str) {
        let id = self.run(&[
            "create",
            "--network",
            "none",
            "--cgroup-parent",
            CGROUP_PARENT,
            image,
            "sleep",
            "1000",
        ]);
        self.run(&["start", &id]);
        self.run(&["rm", "--force", "--time", "0", &id]);
    }

    /// `podman run --rm IMAGE true`: the one command users type.
    pub fn run_rm(&self, image: &str) {
        self.run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--cgroup-parent",
            CGROUP_PARENT,
            image,
            "true",
        ]);
    }

    /// `podman pod create` (its infra container from `infra`) and `podman run -d
    /// --pod` of one sleeping container: returns the pod's id once the container runs.
    pub fn pod_start(&self, infra: &str, image: &str) -> String {
        let pod = self.run(&[
            "pod",
            "create",
            "--infra-image",
            infra,
            "--network",
            "none",
            "--cgroup-parent",
            CGROUP_PARENT,
        ]);
        self.run(&["run", "-d", "--pod", &pod, image, "sleep", "3600"]);
        pod
    }

    /// Removes a pod and its containers.
    pub fn pod_remove(&self, pod: &str) {
        self.run(&["pod", "rm", "--force", "--time", "0", pod]);
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Containers, pods, images and storage (its overlay mounts included).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.run(&["system", "reset", "--force"])
        }));
        // Under each cgroup v1 hierarchy, or at the top of a unified one.
        let name = CGROUP_PARENT.trim_start_matches('/');
        let root = Path::new("/sys/fs/cgroup");
        remove_tree(&root.join(name));
        for hierarchy in std::fs::read_dir(root).into_iter().flatten().flatten() {
            remove_tree(&hierarchy.path().join(name));
        }
    }
}

/// Removes the cgroup directory `dir` and every one below it, deepest first.
fn remove_tree(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}
