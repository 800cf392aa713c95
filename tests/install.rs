//! `make install` / `make uninstall` (scripts/install.sh) and the `.deb` (scripts/deb.sh,
//! installed, removed and purged by dpkg in a root of its own) into directories of the
//! test's own: every file in its place, the systemd units checked by
//! `systemd-analyze verify` (their man pages found), the installed server run from a
//! config file alone and used by the installed rk8sctl, the installed node joined from
//! its config file alone (server, token and all), run again by `rk8s-node run` from the
//! same file, running a pod on a host with no image files (the pause built in), config
//! files kept on a second install, and uninstall (and purge) leaving nothing of what
//! was installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use rk8s_runtime::image::BUILTIN_PAUSE;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// scripts/install.sh ACTION with the binaries of this build and `env`.
fn install_sh(action: &str, env: &[(&str, &Path)]) -> Output {
    let build = Path::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .parent()
        .unwrap();
    let mut command = Command::new(repo().join("scripts/install.sh"));
    command
        .arg(action)
        .env("BUILD", build)
        .env_remove("DESTDIR")
        .env_remove("PURGE");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    assert!(out.status.success(), "install.sh {action}: {out:?}");
    out
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A process of the test's, killed when the test ends (passing or not).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn install_verify_run_and_uninstall() {
    let root = tempfile::tempdir().unwrap();
    let prefix = root.path().join("usr");
    let etc = root.path().join("etc");
    let env = [("PREFIX", prefix.as_path()), ("SYSCONFDIR", etc.as_path())];
    install_sh("install", &env);
    for (path, executable) in [
        ("usr/bin/rk8s-server", true),
        ("usr/bin/rk8s-node", true),
        ("usr/bin/rk8sctl", true),
        ("usr/lib/systemd/system/rk8s-server.service", false),
        ("usr/lib/systemd/system/rk8s-node.service", false),
        ("etc/rk8s/server.yaml", false),
        ("etc/rk8s/node.yaml", false),
        ("usr/share/man/man1/rk8s-server.1", false),
        ("usr/share/man/man1/rk8s-node-join.1", false),
        ("usr/share/man/man1/rk8sctl-get.1", false),
        ("usr/share/bash-completion/completions/rk8sctl", false),
        ("usr/share/zsh/site-functions/_rk8sctl", false),
        ("usr/share/fish/vendor_completions.d/rk8sctl.fish", false),
    ] {
        let meta =
            std::fs::metadata(root.path().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(meta.len() > 0, "{path} is empty");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o111 != 0, executable, "{path}");
    }
    let node_unit =
        std::fs::read_to_string(prefix.join("lib/systemd/system/rk8s-node.service")).unwrap();
    assert!(node_unit.contains(&format!("ExecStart={}/bin/rk8s-node run", prefix.display())));
    assert!(node_unit.contains("KillMode=process") && node_unit.contains("Delegate=yes"));

    // The units as systemd reads them: no warning, every binary and man page there.
    let units = prefix.join("lib/systemd/system");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("rk8s-server.service"))
        .arg(units.join("rk8s-node.service"))
        .env("MANPATH", prefix.join("share/man"))
        .output()
        .expect("systemd-analyze (Debian systemd; scripts/setup.sh installs it)");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The installed server from a config file alone; the installed rk8sctl uses it.
    let data = root.path().join("data");
    let kubeconfig = root.path().join("admin.kubeconfig");
    let port = support::apiserver::free_port();
    let peer = support::apiserver::free_port();
    let settings = format!(
        "data-dir: {}\nport: {port}\npeer-listen: 127.0.0.1:{peer}\nadmin-kubeconfig: {}\n",
        data.display(),
        kubeconfig.display()
    );
    let server_yaml = etc.join("rk8s/server.yaml");
    std::fs::write(&server_yaml, &settings).unwrap();
    let log = std::fs::File::create(root.path().join("server.log")).unwrap();
    let _server = Running(
        Command::new(prefix.join("bin/rk8s-server"))
            .arg("--config")
            .arg(&server_yaml)
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(
            Instant::now() < deadline,
            "the installed server did not start: {}",
            std::fs::read_to_string(root.path().join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new(prefix.join("bin/rk8sctl"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "ns", "default", "-o", "name"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "namespace/default\n",
        "{out:?}"
    );

    // The installed node, joined with its settings in node.yaml: a fresh host with no
    // image files runs a pod (the sandbox is the pause built into rk8s-node, and so is
    // the pod's one container).
    let mut agent = support::node::node(37);
    let args = agent.args("installed");
    let mut node_settings: String = args
        .chunks(2)
        .map(|kv| format!("{}: {}\n", kv[0].trim_start_matches("--"), kv[1]))
        .collect();
    let token = support::apiserver::token_create(
        &format!("127.0.0.1:{peer}"),
        &data,
        &format!("https://127.0.0.1:{port}"),
        &["--ttl", "10m"],
    );
    let words: Vec<&str> = token.split_whitespace().collect();
    let after = |flag: &str| words[words.iter().position(|w| *w == flag).unwrap() + 1];
    node_settings.push_str(&format!(
        "server: https://127.0.0.1:{port}\ntoken: {}\nca-cert-hash: {}\n",
        after("--token"),
        after("--ca-cert-hash")
    ));
    let node_yaml = etc.join("rk8s/node.yaml");
    std::fs::write(&node_yaml, &node_settings).unwrap();
    // Nothing but the file: the server, the token and the CA's hash are settings.
    let mut join = Command::new(prefix.join("bin/rk8s-node"));
    join.arg("join")
        .arg("--config")
        .arg(&node_yaml)
        .env_remove("RK8S_PAUSE_IMAGE");
    agent.log_to_file(&mut join);
    agent.child = Some(join.spawn().unwrap());
    let rk8sctl = |args: &[&str]| {
        let out = Command::new(prefix.join("bin/rk8sctl"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(args)
            .output()
            .unwrap();
        support::cli::success(args.join(" "), out)
    };
    // Created at once, Ready once the node joined and ran it.
    rk8sctl(&["run", "sandbox", "--image", BUILTIN_PAUSE]);
    rk8sctl(&[
        "wait",
        "--for=condition=Ready",
        "pod/sandbox",
        "--timeout=120s",
    ]);
    let on = rk8sctl(&["get", "pod", "sandbox", "-o", "jsonpath={.spec.nodeName}"]);
    assert_eq!(on, "installed");
    // Stopped and run again as the unit runs it (`rk8s-node run`), from the same file:
    // join's settings in it are passed over, the pod is kept.
    assert!(agent.terminate().success());
    let mut run = Command::new(prefix.join("bin/rk8s-node"));
    run.arg("run")
        .arg("--config")
        .arg(&node_yaml)
        .env_remove("RK8S_PAUSE_IMAGE");
    agent.log_to_file(&mut run);
    agent.child = Some(run.spawn().unwrap());
    let renew_time = || {
        rk8sctl(&[
            "get",
            "lease",
            "-n",
            "kube-node-lease",
            "installed",
            "-o",
            "jsonpath={.spec.renewTime}",
        ])
    };
    let renewed = renew_time();
    let deadline = Instant::now() + Duration::from_secs(30);
    while renew_time() == renewed {
        assert!(
            Instant::now() < deadline,
            "the node did not run again from node.yaml"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        agent.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "rk8s-node run exited"
    );
    assert_eq!(
        rk8sctl(&[
            "get",
            "pod",
            "sandbox",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}"
        ]),
        "0"
    );
    drop(agent);

    // Installed again: the administrator's config stays.
    let again = install_sh("install", &env);
    assert!(String::from_utf8_lossy(&again.stdout).contains("keeping"));
    assert_eq!(std::fs::read_to_string(&server_yaml).unwrap(), settings);

    // Uninstalled: nothing of what was installed is left but the config files, which
    // it names.
    let out = install_sh("uninstall", &env);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!(
            "uninstall: kept (PURGE=1 removes them): {} {}",
            server_yaml.display(),
            etc.join("rk8s/node.yaml").display()
        )),
        "{said}"
    );
    let left: Vec<PathBuf> = files(root.path())
        .into_iter()
        .filter(|p| !p.starts_with(&data) && *p != kubeconfig && !p.ends_with("server.log"))
        .collect();
    assert_eq!(left, [etc.join("rk8s/node.yaml"), server_yaml.clone()]);
    assert!(!prefix.join("lib/rk8s").exists());

    // Into a DESTDIR (as a package is built) and purged: nothing at all left.
    let dest = tempfile::tempdir().unwrap();
    let staged = [("DESTDIR", dest.path()), ("PREFIX", Path::new("/usr"))];
    install_sh("install", &staged);
    assert!(dest.path().join("usr/bin/rk8s-node").exists());
    assert!(dest.path().join("etc/rk8s/node.yaml").exists());
    install_sh(
        "uninstall",
        &[staged[0], staged[1], ("PURGE", Path::new("1"))],
    );
    assert_eq!(files(dest.path()), Vec::<PathBuf>::new());
}

/// `dpkg --root ROOT` with the maintainer scripts run outside a chroot (they honour
/// DPKG_ROOT) and the package's dependencies not looked for in the empty ROOT.
fn dpkg(root: &Path, args: &[&str]) {
    let out = Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args([
            "--force-script-chrootless",
            "--force-depends",
            "--log=/dev/null",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg {args:?}: {out:?}");
}

#[test]
fn the_deb_installs_removes_and_purges_with_dpkg() {
    let out_dir = tempfile::tempdir().unwrap();
    let build = Path::new(env!("CARGO_BIN_EXE_rk8s-server"))
        .parent()
        .unwrap();
    let built = Command::new(repo().join("scripts/deb.sh"))
        .arg(out_dir.path())
        .env("BUILD", build)
        .env("COMPRESSION", "none")
        .output()
        .unwrap();
    assert!(built.status.success(), "deb.sh: {built:?}");
    let deb = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    let info = Command::new("dpkg-deb")
        .arg("--info")
        .arg(&deb)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains("Package: rk8s") && info.contains("Depends: libc6, libseccomp2"),
        "{info}"
    );

    // Installed by dpkg into an empty root: the files of `make install`, in /usr.
    let root = tempfile::tempdir().unwrap();
    for dir in ["var/lib/dpkg/updates", "var/lib/dpkg/info"] {
        std::fs::create_dir_all(root.path().join(dir)).unwrap();
    }
    std::fs::write(root.path().join("var/lib/dpkg/status"), "").unwrap();
    dpkg(root.path(), &["-i", deb.to_str().unwrap()]);
    for path in [
        "usr/bin/rk8s-server",
        "usr/bin/rk8s-node",
        "usr/bin/rk8sctl",
        "lib/systemd/system/rk8s-node.service",
        "etc/rk8s/node.yaml",
        "usr/share/man/man1/rk8s-server-snapshot-save.1",
        "usr/share/bash-completion/completions/rk8sctl",
    ] {
        assert!(root.path().join(path).exists(), "{path} not installed");
    }
    assert!(!root.path().join("usr/lib/rk8s/installed-files").exists());
    let unit =
        std::fs::read_to_string(root.path().join("lib/systemd/system/rk8s-node.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/rk8s-node run"), "{unit}");

    // Removed: the administrator's config and the data stay; purged: nothing is left.
    std::fs::write(root.path().join("etc/rk8s/node.yaml"), "max-pods: 50\n").unwrap();
    std::fs::create_dir_all(root.path().join("var/lib/rk8s/node")).unwrap();
    std::fs::write(root.path().join("var/lib/rk8s/node/identity.json"), "{}").unwrap();
    dpkg(root.path(), &["-r", "rk8s"]);
    let left = |root: &Path| -> Vec<PathBuf> {
        files(root)
            .into_iter()
            .filter(|p| !p.starts_with(root.join("var/lib/dpkg")))
            .collect()
    };
    assert_eq!(
        left(root.path()),
        [
            root.path().join("etc/rk8s/node.yaml"),
            root.path().join("etc/rk8s/server.yaml"),
            root.path().join("var/lib/rk8s/node/identity.json"),
        ]
    );
    dpkg(root.path(), &["-P", "rk8s"]);
    assert_eq!(left(root.path()), Vec::<PathBuf>::new());
    assert!(!root.path().join("etc/rk8s").exists());
}
