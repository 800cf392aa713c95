//! The seam between network decisions and the host: every change is a netlink
//! operation ([`NetOp`]: links, addresses, routes, neighbours, forwarding entries,
//! named namespaces), a command (`nft`) or a kernel parameter, carried out by
//! [`System`] for real or recorded by [`Recorder`] (operations as the `ip`/`bridge`
//! command lines that make them).

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::netlink::{self, NetOp};
use crate::netns;

/// Deletes the link `name`; one that is gone already, or vanishes while it is deleted
/// (the kernel removes a veth whose peer's namespace is destroyed), is what was
/// wanted.
pub fn delete_link(host: &dyn Host, name: &str) -> Result<()> {
    let op = NetOp::DeleteLink {
        link: name.to_string(),
    };
    match host.apply(None, &[op]) {
        Err(Error::Netlink { source, .. }) if netlink::is_missing(&source) => Ok(()),
        other => other,
    }
}

/// Deletes the nftables table `ip NAME`; one that does not exist is what was wanted.
pub fn delete_nft_table(host: &dyn Host, name: &str) -> Result<()> {
    match host.run("nft", &["delete", "table", "ip", name], None) {
        Ok(_) => Ok(()),
        Err(Error::Command { stderr, .. }) if stderr.contains("No such file") => Ok(()),
        Err(e) => Err(e),
    }
}

/// Changes the host's network.
pub trait Host: Send + Sync {
    /// Runs `program args…`, feeding `stdin` if given; returns its stdout.
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String>;

    /// Carries out `ops` in order, stopping at the first that fails: in the named
    /// network namespace `netns`, or with `None` in this host's own.
    fn apply(&self, netns: Option<&str>, ops: &[NetOp]) -> Result<()>;

    /// Whether the link `name` exists in this host's namespace (`ip link show NAME`).
    fn link_exists(&self, name: &str) -> Result<bool>;

    /// Whether a host process has bound `port` (tcp or udp) on any address.
    fn port_in_use(&self, port: u16, udp: bool) -> bool;

    /// Sets a kernel parameter (`net.ipv4.ip_forward` → `/proc/sys/net/ipv4/ip_forward`).
    fn sysctl(&self, key: &str, value: &str) -> Result<()>;

    /// Whether a named network namespace exists (`/run/netns/NAME`).
    fn netns_exists(&self, name: &str) -> bool;
}

/// The real host.
#[derive(Debug, Clone, Copy, Default)]
pub struct System;

impl Host for System {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| Error::Spawn {
            program: program.to_string(),
            source,
        })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A failed write shows up as the command's own error below.
            let _ = pipe.write_all(input.as_bytes());
        }
        let output = child.wait_with_output().map_err(|source| Error::Spawn {
            program: program.to_string(),
            source,
        })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(Error::Command {
                command: format!("{program} {}", args.join(" ")),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    fn apply(&self, netns: Option<&str>, ops: &[NetOp]) -> Result<()> {
        match netns {
            Some(ns) => netlink::apply_in(ns, ops),
            None => netlink::apply(ops, None),
        }
    }

    fn link_exists(&self, name: &str) -> Result<bool> {
        netlink::link_exists(name)
    }

    fn port_in_use(&self, port: u16, udp: bool) -> bool {
        if udp {
            std::net::UdpSocket::bind(("0.0.0.0", port)).is_err()
        } else {
            std::net::TcpListener::bind(("0.0.0.0", port)).is_err()
        }
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = std::path::Path::new("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|source| Error::Io { path, source })
    }

    fn netns_exists(&self, name: &str) -> bool {
        netns::exists(name)
    }
}

/// A shared host (tests keep a handle on a [`Recorder`] they hand over).
impl<H: Host + ?Sized> Host for std::sync::Arc<H> {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
        (**self).run(program, args, stdin)
    }

    fn apply(&self, netns: Option<&str>, ops: &[NetOp]) -> Result<()> {
        (**self).apply(netns, ops)
    }

    fn link_exists(&self, name: &str) -> Result<bool> {
        (**self).link_exists(name)
    }

    fn port_in_use(&self, port: u16, udp: bool) -> bool {
        (**self).port_in_use(port, udp)
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        (**self).sysctl(key, value)
    }

    fn netns_exists(&self, name: &str) -> bool {
        (**self).netns_exists(name)
    }
}

/// The real host's changes made inside the named network namespace `0`: commands
/// started and netlink sockets opened by a thread that entered it. For
/// tests and benchmarks that program a namespace of their own. Ports and kernel
/// parameters are not looked at.
#[derive(Debug, Clone)]
pub struct InNetns(pub String);

impl Host for InNetns {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
        // A process started from a thread in the namespace starts in it.
        netns::run_in(&self.0, || System.run(program, args, stdin))
            .map_err(|source| Error::Io {
                path: netns::path(&self.0),
                source,
            })
            .and_then(|r| r)
    }

    fn apply(&self, netns: Option<&str>, ops: &[NetOp]) -> Result<()> {
        netlink::apply_in(netns.unwrap_or(&self.0), ops)
    }

    fn link_exists(&self, name: &str) -> Result<bool> {
        netlink::link_exists_in(&self.0, name)
    }

    fn port_in_use(&self, _port: u16, _udp: bool) -> bool {
        false
    }

    fn sysctl(&self, _key: &str, _value: &str) -> Result<()> {
        Ok(())
    }

    fn netns_exists(&self, name: &str) -> bool {
        System.netns_exists(name)
    }
}

/// A fake host that records the commands it is given (netlink operations as the
/// `ip`/`bridge` command lines that make them) and answers from a script. It
/// refuses interface names as [`System`] does.
#[derive(Debug, Default)]
pub struct Recorder {
    commands: Mutex<Vec<String>>,
    answers: Mutex<Vec<(String, String)>>,
    failures: Mutex<Vec<(String, i32)>>,
    bound_ports: Vec<u16>,
}

impl Recorder {
    /// A recorder where every command succeeds with empty output.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers commands whose line starts with `prefix` with `stdout`.
    pub fn answer(&self, prefix: &str, stdout: &str) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.push((prefix.to_string(), stdout.to_string()));
        }
    }

    /// Makes commands and operations whose line starts with `prefix` fail with the OS
    /// error `errno` (after recording them); `ip link show NAME` failing with ENODEV
    /// (19) says the link does not exist.
    pub fn fail(&self, prefix: &str, errno: i32) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.push((prefix.to_string(), errno));
        }
    }

    fn failure(&self, line: &str) -> Option<std::io::Error> {
        let failures = self.failures.lock().ok()?;
        failures
            .iter()
            .rev()
            .find(|(prefix, _)| line.starts_with(prefix.as_str()))
            .map(|(_, errno)| std::io::Error::from_raw_os_error(*errno))
    }

    fn record(&self, line: String) {
        if let Ok(mut commands) = self.commands.lock() {
            commands.push(line);
        }
    }

    /// Pretends a host process has bound these ports.
    pub fn with_bound_ports(mut self, ports: &[u16]) -> Self {
        self.bound_ports = ports.to_vec();
        self
    }

    /// The command lines run so far (stdin appended after ` <<< `).
    pub fn commands(&self) -> Vec<String> {
        self.commands.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl Host for Recorder {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut line = format!("{program} {}", args.join(" "));
        let answer = self
            .answers
            .lock()
            .ok()
            .and_then(|answers| {
                answers
                    .iter()
                    .rev()
                    .find(|(prefix, _)| line.starts_with(prefix.as_str()))
                    .map(|(_, out)| out.clone())
            })
            .unwrap_or_default();
        let failure = self.failure(&line);
        if let Some(input) = stdin {
            line.push_str(" <<< ");
            line.push_str(input.trim());
        }
        let command = format!("{program} {}", args.join(" "));
        self.record(line);
        match failure {
            Some(e) => Err(Error::Command {
                command,
                stderr: e.to_string(),
            }),
            None => Ok(answer),
        }
    }

    fn apply(&self, netns: Option<&str>, ops: &[NetOp]) -> Result<()> {
        // As for real: a batch naming an interface the kernel refuses is refused
        // whole, before anything is done (or recorded).
        netlink::check_link_names(ops, netns)?;
        for op in ops {
            let line = op.command_line(netns);
            let failure = self.failure(&line);
            self.record(line.clone());
            if let Some(source) = failure {
                return Err(Error::Netlink { op: line, source });
            }
        }
        Ok(())
    }

    fn link_exists(&self, name: &str) -> Result<bool> {
        let line = format!("ip link show {name}");
        let failure = self.failure(&line);
        self.record(line.clone());
        match failure {
            None => Ok(true),
            Some(e) if netlink::is_missing(&e) => Ok(false),
            Some(source) => Err(Error::Netlink { op: line, source }),
        }
    }

    fn port_in_use(&self, port: u16, _udp: bool) -> bool {
        self.bound_ports.contains(&port)
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.record(format!("sysctl {key}={value}"));
        Ok(())
    }

    fn netns_exists(&self, name: &str) -> bool {
        self.commands()
            .iter()
            .any(|c| c == &format!("ip netns add {name}"))
    }
}

/// Whether this process runs as root (its effective uid, the second on `Uid:`).
#[cfg(test)]
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENODEV: i32 = 19;
    const EPERM: i32 = 1;

    #[test]
    fn a_link_that_is_gone_or_goes_meanwhile_is_deleted() {
        let gone = Recorder::new();
        gone.fail("ip link delete", ENODEV);
        assert!(delete_link(&gone, "veth1").is_ok());
        assert_eq!(gone.commands(), ["ip link delete veth1"]);
        let denied = Recorder::new();
        denied.fail("ip link delete", EPERM);
        let e = delete_link(&denied, "veth1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ip link delete veth1: Operation not permitted (os error 1)"
        );
        // For real: no such link here.
        if is_root() {
            assert!(delete_link(&System, "rk8s-nosuchlink").is_ok());
            assert!(!System.link_exists("rk8s-nosuchlink").unwrap());
            assert!(System.link_exists("lo").unwrap());
        }
    }

    #[test]
    fn the_recorder_answers_link_queries_from_its_script() {
        let r = Recorder::new();
        assert!(r.link_exists("br0").unwrap());
        r.fail("ip link show br0", ENODEV);
        assert!(!r.link_exists("br0").unwrap());
        r.fail("ip link show br0", EPERM);
        assert!(r.link_exists("br0").is_err());
        assert_eq!(r.commands(), ["ip link show br0"; 3]);
    }
}
