//! The OCI runtime spec (`config.json`) of one container: its process, the namespaces
//! it creates or joins, its cgroup and limits, mounts, and the security defaults every
//! container gets (Docker's default capability set, a deny-all device rule with the
//! standard devices allowed, no-new-privileges, masked and read-only /proc paths, and
//! a seccomp filter), and the device nodes and annotations a device plugin gives it.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxNamespace, LinuxNamespaceType, LinuxSeccomp, Mount, Spec,
    User,
};
use rk8s_api::resources::CgroupResources;
use serde_json::json;

use crate::error::{Error, Result};

/// A namespace the container creates (no path) or joins (path of /proc/PID/ns/… or a
/// bind-mounted namespace such as /run/netns/NAME).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// Which one.
    pub kind: LinuxNamespaceType,
    /// Join this one instead of creating a new one.
    pub path: Option<PathBuf>,
}

/// A bind mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Path on the host.
    pub source: PathBuf,
    /// Path in the container.
    pub destination: String,
    /// Mounted read-only.
    pub readonly: bool,
}

/// A host device node made in the container (a device plugin's `DeviceSpec`): an
/// entry of `linux.devices` and a cgroup rule allowing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    /// Its path in the container.
    pub path: String,
    /// The device on the host (its type and numbers are read from it).
    pub host_path: PathBuf,
    /// Its cgroup access: some of `r`, `w`, `m` (empty: `rwm`).
    pub permissions: String,
}

/// Everything that goes into a container's spec.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerConfig {
    /// Program and arguments.
    pub args: Vec<String>,
    /// `KEY=VALUE` pairs.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User id (runAsUser); from `image_user` when None.
    pub uid: Option<u32>,
    /// Group id (runAsGroup); from `image_user` when None.
    pub gid: Option<u32>,
    /// The image's `User` (`name`, `uid`, `uid:gid`, `name:group`), resolved against the
    /// rootfs' /etc/passwd and /etc/group.
    pub image_user: String,
    /// The container's hostname (only with a new UTS namespace).
    pub hostname: Option<String>,
    /// The (already mounted) root filesystem, absolute.
    pub rootfs: PathBuf,
    /// Mount the rootfs read-only.
    pub readonly_rootfs: bool,
    /// Namespaces to create or join.
    pub namespaces: Vec<Namespace>,
    /// `linux.cgroupsPath`.
    pub cgroups_path: String,
    /// CPU and memory limits.
    pub resources: CgroupResources,
    /// Most processes the container may have (None: unlimited).
    pub pids_limit: Option<i64>,
    /// Extra bind mounts (volumes, /etc/hosts, …).
    pub mounts: Vec<BindMount>,
    /// Capabilities added to the default set (`NET_ADMIN`, with or without `CAP_`).
    pub cap_add: Vec<String>,
    /// Capabilities removed from it (`ALL` removes every one).
    pub cap_drop: Vec<String>,
    /// Run its process on a terminal (a Kubernetes container's `tty`): the OCI runtime
    /// sends the terminal's master end to a console socket.
    pub terminal: bool,
    /// Host devices made in the container (and allowed by its device cgroup).
    pub devices: Vec<DeviceNode>,
    /// The spec's `annotations`.
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// PATH for images that set none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// System calls refused with EPERM: those Docker's default profile withholds from a
/// container without extra capabilities (kernel modules, kexec, keyrings, bpf,
/// perf, clocks, swap, mounts and namespaces, reboot, …).
pub const DENIED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "delete_module",
    "finit_module",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "move_pages",
    "open_by_handle_at",
    "perf_event_open",
    "pivot_root",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "unshare",
    "userfaultfd",
];

/// The standard devices every container may use: (type, major, minor).
const ALLOWED_DEVICES: &[(&str, i64, Option<i64>)] = &[
    ("c", 1, Some(3)), // null
    ("c", 1, Some(5)), // zero
    ("c", 1, Some(7)), // full
    ("c", 1, Some(8)), // random
    ("c", 1, Some(9)), // urandom
    ("c", 5, Some(0)), // tty
    ("c", 5, Some(1)), // console
    ("c", 5, Some(2)), // ptmx
    ("c", 136, None),  // pts/*
];

impl ContainerConfig {
    /// The OCI runtime spec.
    pub fn to_spec(&self) -> Result<Spec> {
        if self.args.is_empty() {
            return Err(Error::InvalidSpec(
                "the container has no command: neither the pod nor the image gives one".to_string(),
            ));
        }
        let invalid =
            |what: &str, e: &dyn std::fmt::Display| Error::InvalidSpec(format!("{what}: {e}"));
        let mut spec = Spec::default();
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(self.args.clone()));
        let mut env = self.env.clone();
        if !env.iter().any(|kv| kv.starts_with("PATH=")) {
            // What containerd and Docker give a process whose image sets no PATH.
            env.insert(0, format!("PATH={DEFAULT_PATH}"));
        }
        if self.terminal && !env.iter().any(|kv| kv.starts_with("TERM=")) {
            // containerd's `oci.WithTTY`: a terminal comes with a TERM.
            env.push("TERM=xterm".to_string());
        }
        process.set_env(Some(env));
        process.set_cwd(PathBuf::from(if self.cwd.is_empty() {
            "/"
        } else {
            &self.cwd
        }));
        let (uid, gid) = resolve_user(&self.image_user, &self.rootfs);
        let mut user = User::default();
        user.set_uid(self.uid.unwrap_or(uid));
        user.set_gid(self.gid.unwrap_or(gid));
        process.set_user(user);
        process.set_no_new_privileges(Some(true));
        process.set_terminal(Some(self.terminal));
        let caps = self.capabilities()?;
        let set: std::collections::HashSet<Capability> = caps.into_iter().collect();
        let mut capabilities = LinuxCapabilities::default();
        capabilities.set_bounding(Some(set.clone()));
        capabilities.set_effective(Some(set.clone()));
        capabilities.set_permitted(Some(set));
        capabilities.set_inheritable(None);
        capabilities.set_ambient(None);
        process.set_capabilities(Some(capabilities));
        spec.set_process(Some(process));

        let mut root = spec.root().clone().unwrap_or_default();
        root.set_path(self.rootfs.clone());
        root.set_readonly(Some(self.readonly_rootfs));
        spec.set_root(Some(root));
        spec.set_hostname(self.hostname.clone());

        let mut mounts: Vec<Mount> = spec.mounts().clone().unwrap_or_default();
        // The cgroup filesystem is not needed by workloads and differs between v1/v2.
        mounts.retain(|m| m.destination() != Path::new("/sys/fs/cgroup"));
        for bind in &self.mounts {
            let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
            options.push(if bind.readonly { "ro" } else { "rw" }.to_string());
            let mount: Mount = serde_json::from_value(json!({
                "destination": bind.destination,
                "type": "bind",
                "source": bind.source,
                "options": options,
            }))
            .map_err(|e| invalid("mount", &e))?;
            mounts.push(mount);
        }
        spec.set_mounts(Some(mounts));

        let mut linux = spec.linux().clone().unwrap_or_default();
        let namespaces: Vec<LinuxNamespace> = self
            .namespaces
            .iter()
            .map(|ns| {
                let mut n = LinuxNamespace::default();
                n.set_typ(ns.kind);
                n.set_path(ns.path.clone());
                n
            })
            .collect();
        linux.set_namespaces(Some(namespaces));
        linux.set_cgroups_path(Some(PathBuf::from(&self.cgroups_path)));
        let mut devices = vec![json!({"allow": false, "access": "rwm"})];
        for (typ, major, minor) in ALLOWED_DEVICES {
            devices.push(json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": "rwm"}));
        }
        let mut nodes = Vec::new();
        for node in &self.devices {
            let (entry, rule) = device_entry(node)?;
            nodes.push(serde_json::from_value(entry).map_err(|e| invalid("device", &e))?);
            devices.push(rule);
        }
        if !nodes.is_empty() {
            linux.set_devices(Some(nodes));
        }
        let r = &self.resources;
        let resources = serde_json::from_value(json!({
            "devices": devices,
            "cpu": {
                "shares": r.cpu_shares,
                "quota": r.cpu_quota,
                "period": r.cpu_quota.map(|_| r.cpu_period),
            },
            "memory": { "limit": r.memory_limit },
            "pids": self.pids_limit.map(|limit| json!({"limit": limit})),
        }))
        .map_err(|e| invalid("resources", &e))?;
        linux.set_resources(Some(resources));
        linux.set_seccomp(Some(default_seccomp()?));
        spec.set_linux(Some(linux));
        if !self.annotations.is_empty() {
            spec.set_annotations(Some(self.annotations.clone().into_iter().collect()));
        }
        Ok(spec)
    }

    fn capabilities(&self) -> Result<Vec<Capability>> {
        let norm = |c: &String| {
            let upper = c.to_ascii_uppercase();
            if upper.starts_with("CAP_") || upper == "ALL" {
                upper
            } else {
                format!("CAP_{upper}")
            }
        };
        let drop: Vec<String> = self.cap_drop.iter().map(norm).collect();
        let mut names: Vec<String> = if drop.iter().any(|d| d == "ALL") {
            Vec::new()
        } else {
            DEFAULT_CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .filter(|c| !drop.contains(c))
                .collect()
        };
        for add in self.cap_add.iter().map(norm) {
            if !names.contains(&add) {
                names.push(add);
            }
        }
        names
            .iter()
            .map(|name| {
                serde_json::from_value::<Capability>(json!(name))
                    .map_err(|_| Error::InvalidSpec(format!("{name:?} is not a Linux capability")))
            })
            .collect()
    }
}

/// A device node's `linux.devices` entry and its cgroup rule, from the host device
/// (containerd's `WithDevices`: type, numbers, mode and owner as on the host).
fn device_entry(node: &DeviceNode) -> Result<(serde_json::Value, serde_json::Value)> {
    use nix::sys::stat::{SFlag, major, minor, stat};
    let st = stat(&node.host_path)
        .map_err(|e| Error::InvalidSpec(format!("device {}: {e}", node.host_path.display())))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    let typ = if kind == SFlag::S_IFCHR {
        "c"
    } else if kind == SFlag::S_IFBLK {
        "b"
    } else {
        return Err(Error::InvalidSpec(format!(
            "{} is not a device",
            node.host_path.display()
        )));
    };
    let (major, minor) = (major(st.st_rdev), minor(st.st_rdev));
    let access = if node.permissions.is_empty() {
        "rwm"
    } else {
        node.permissions.as_str()
    };
    let entry = json!({
        "path": node.path,
        "type": typ,
        "major": major,
        "minor": minor,
        "fileMode": st.st_mode & 0o777,
        "uid": st.st_uid,
        "gid": st.st_gid,
    });
    let rule =
        json!({"allow": true, "type": typ, "major": major, "minor": minor, "access": access});
    Ok((entry, rule))
}

/// The namespaces of a pod sandbox (pause): new pid, ipc, uts and mount namespaces, and
/// the pod's network namespace.
pub fn sandbox_namespaces(netns: Option<&Path>) -> Vec<Namespace> {
    let mut namespaces = vec![
        Namespace {
            kind: LinuxNamespaceType::Pid,
            path: None,
        },
        Namespace {
            kind: LinuxNamespaceType::Ipc,
            path: None,
        },
        Namespace {
            kind: LinuxNamespaceType::Uts,
            path: None,
        },
        Namespace {
            kind: LinuxNamespaceType::Mount,
            path: None,
        },
    ];
    namespaces.push(Namespace {
        kind: LinuxNamespaceType::Network,
        path: netns.map(Path::to_path_buf),
    });
    namespaces
}

/// The namespaces of a work container in a sandbox whose pause process is `pause_pid`:
/// it joins the pod's network, ipc and uts namespaces (and pid with
/// `shareProcessNamespace`) and gets its own mount namespace.
pub fn container_namespaces(pause_pid: i32, share_pid: bool) -> Vec<Namespace> {
    let join = |kind, name: &str| Namespace {
        kind,
        path: Some(PathBuf::from(format!("/proc/{pause_pid}/ns/{name}"))),
    };
    vec![
        join(LinuxNamespaceType::Network, "net"),
        join(LinuxNamespaceType::Ipc, "ipc"),
        join(LinuxNamespaceType::Uts, "uts"),
        if share_pid {
            join(LinuxNamespaceType::Pid, "pid")
        } else {
            Namespace {
                kind: LinuxNamespaceType::Pid,
                path: None,
            }
        },
        Namespace {
            kind: LinuxNamespaceType::Mount,
            path: None,
        },
    ]
}

/// `namespaces` with the pid namespace of process `pid` joined instead (an ephemeral
/// container sees its target container's processes).
pub fn with_pid_namespace_of(mut namespaces: Vec<Namespace>, pid: i32) -> Vec<Namespace> {
    namespaces.retain(|n| n.kind != LinuxNamespaceType::Pid);
    namespaces.push(Namespace {
        kind: LinuxNamespaceType::Pid,
        path: Some(PathBuf::from(format!("/proc/{pid}/ns/pid"))),
    });
    namespaces
}

fn default_seccomp() -> Result<LinuxSeccomp> {
    let architectures = match std::env::consts::ARCH {
        "x86_64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        _ => vec![],
    };
    serde_json::from_value(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": architectures,
        "syscalls": [{
            "names": DENIED_SYSCALLS,
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
        }],
    }))
    .map_err(|e| Error::InvalidSpec(format!("seccomp: {e}")))
}

/// The uid and gid of an image's `User`, looked up in `rootfs`' /etc/passwd and
/// /etc/group when given by name (root when empty or unknown).
fn resolve_user(image_user: &str, rootfs: &Path) -> (u32, u32) {
    let (user, group) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    let read = |file: &str| std::fs::read_to_string(rootfs.join(file)).unwrap_or_default();
    // name:x:id:primary-gid:… in both files (group has no fourth numeric field).
    let find = |name: &str, text: &str| -> Option<(u32, Option<u32>)> {
        if let Ok(id) = name.parse() {
            return Some((id, None));
        }
        text.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&name)).then(|| {
                (
                    fields.get(2).and_then(|v| v.parse().ok()).unwrap_or(0),
                    fields.get(3).and_then(|v| v.parse().ok()),
                )
            })
        })
    };
    if user.is_empty() {
        return (0, 0);
    }
    let (uid, primary) = find(user, &read("etc/passwd")).unwrap_or((0, None));
    let gid = match group {
        Some(g) => find(g, &read("etc/group")).map_or(0, |(gid, _)| gid),
        None => primary.unwrap_or(0),
    };
    (uid, gid)
}

/// Writes `spec` as `<bundle>/config.json`.
pub fn write(bundle: &Path, spec: &Spec) -> Result<()> {
    let path = bundle.join("config.json");
    let json = serde_json::to_vec_pretty(spec)
        .map_err(|e| Error::InvalidSpec(format!("config.json: {e}")))?;
    std::fs::write(&path, json).map_err(crate::error::io(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ContainerConfig {
        ContainerConfig {
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: String::new(),
            uid: None,
            gid: Some(0),
            image_user: String::new(),
            hostname: Some("web".into()),
            rootfs: "/var/lib/rk8s/c/rootfs".into(),
            readonly_rootfs: false,
            namespaces: sandbox_namespaces(Some(Path::new("/run/netns/rk8s-x"))),
            cgroups_path: "/rk8s/podU/web".into(),
            resources: CgroupResources {
                cpu_shares: 512,
                cpu_quota: Some(50_000),
                cpu_period: 100_000,
                memory_limit: Some(64 << 20),
            },
            pids_limit: Some(100),
            mounts: vec![BindMount {
                source: "/var/lib/rk8s/pods/U/hosts".into(),
                destination: "/etc/hosts".into(),
                readonly: false,
            }],
            cap_add: vec!["NET_ADMIN".into()],
            cap_drop: vec!["mknod".into()],
            terminal: false,
            devices: Vec::new(),
            annotations: Default::default(),
        }
    }

    #[test]
    fn the_spec_carries_limits_namespaces_and_security_defaults() {
        let spec = config().to_spec().unwrap();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["linux"]["cgroupsPath"], "/rk8s/podU/web");
        assert_eq!(json["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(json["linux"]["resources"]["cpu"]["period"], 100_000);
        assert_eq!(json["linux"]["resources"]["cpu"]["shares"], 512);
        assert_eq!(json["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(json["linux"]["resources"]["pids"]["limit"], 100);
        assert_eq!(json["linux"]["resources"]["devices"][0]["allow"], false);
        assert_eq!(json["process"]["noNewPrivileges"], true);
        assert_eq!(json["process"]["terminal"], false);
        let caps = json["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap();
        assert!(caps.contains(&json!("CAP_NET_ADMIN")));
        assert!(!caps.contains(&json!("CAP_MKNOD")));
        assert!(!caps.contains(&json!("CAP_SYS_ADMIN")));
        assert!(
            json["linux"]["maskedPaths"]
                .as_array()
                .unwrap()
                .contains(&json!("/proc/kcore"))
        );
        let net = json["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["type"] == "network")
            .unwrap()
            .clone();
        assert_eq!(net["path"], "/run/netns/rk8s-x");
        assert_eq!(
            json["linux"]["seccomp"]["syscalls"][0]["action"],
            "SCMP_ACT_ERRNO"
        );
        assert_eq!(json["hostname"], "web");
    }

    #[test]
    fn a_container_without_command_or_with_unknown_capability_is_refused() {
        let mut c = config();
        c.args.clear();
        assert!(c.to_spec().unwrap_err().to_string().contains("no command"));
        let mut c = config();
        c.cap_add = vec!["FLY".into()];
        assert!(c.to_spec().unwrap_err().to_string().contains("CAP_FLY"));
        let mut c = config();
        c.cap_drop = vec!["ALL".into()];
        c.cap_add.clear();
        let json = serde_json::to_value(c.to_spec().unwrap()).unwrap();
        assert!(
            json["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn image_users_resolve_against_the_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\nweb:x:1000:1001::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        assert_eq!(resolve_user("web", dir.path()), (1000, 1001));
        assert_eq!(resolve_user("web:staff", dir.path()), (1000, 50));
        assert_eq!(resolve_user("123:456", dir.path()), (123, 456));
        assert_eq!(resolve_user("", dir.path()), (0, 0));
    }

    #[test]
    fn work_containers_join_the_sandbox_namespaces() {
        let ns = container_namespaces(42, false);
        assert_eq!(ns[0].path.as_deref(), Some(Path::new("/proc/42/ns/net")));
        assert!(
            ns.iter()
                .any(|n| n.kind == LinuxNamespaceType::Pid && n.path.is_none())
        );
        let shared = container_namespaces(42, true);
        assert!(
            shared
                .iter()
                .any(|n| n.kind == LinuxNamespaceType::Pid && n.path.is_some())
        );
    }

    #[test]
    fn a_tty_container_runs_on_a_terminal_with_a_term() {
        let tty = ContainerConfig {
            terminal: true,
            ..config()
        };
        let json = serde_json::to_value(tty.to_spec().unwrap()).unwrap();
        assert_eq!(json["process"]["terminal"], true);
        assert_eq!(json["process"]["env"], json!(["PATH=/bin", "TERM=xterm"]));
        let own_term = ContainerConfig {
            env: vec!["TERM=vt100".into()],
            ..tty
        };
        let json = serde_json::to_value(own_term.to_spec().unwrap()).unwrap();
        assert_eq!(
            json["process"]["env"],
            json!([format!("PATH={DEFAULT_PATH}"), "TERM=vt100"])
        );
    }

    #[test]
    fn device_nodes_are_made_and_allowed_as_the_host_has_them() {
        let with = ContainerConfig {
            devices: vec![DeviceNode {
                path: "/dev/foo0".into(),
                host_path: "/dev/null".into(),
                permissions: "rw".into(),
            }],
            annotations: [("example.com/foo".to_string(), "dev-0".to_string())].into(),
            ..config()
        };
        let json = serde_json::to_value(with.to_spec().unwrap()).unwrap();
        let node = &json["linux"]["devices"][0];
        assert_eq!(
            (&node["path"], &node["type"], &node["major"], &node["minor"]),
            (&json!("/dev/foo0"), &json!("c"), &json!(1), &json!(3))
        );
        let rules = json["linux"]["resources"]["devices"].as_array().unwrap();
        assert_eq!(
            rules.last().unwrap(),
            &json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"})
        );
        assert_eq!(json["annotations"]["example.com/foo"], "dev-0");
        // A path that is no device is refused, with its name.
        let file = ContainerConfig {
            devices: vec![DeviceNode {
                path: "/dev/x".into(),
                host_path: "/proc/version".into(),
                permissions: String::new(),
            }],
            ..config()
        };
        let err = file.to_spec().unwrap_err().to_string();
        assert!(err.contains("/proc/version is not a device"), "{err}");
    }
}
