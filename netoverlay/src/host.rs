//! The seam between network decisions and the host: every change is a command
//! (`ip`, `nft`, `sysctl`), run by [`System`] for real or recorded by [`Recorder`].

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// Deletes the link `name`; one that is gone already, or vanishes while `ip` deletes
/// it (the kernel removes a veth whose peer's namespace is destroyed), is what was
/// wanted.
pub fn delete_link(host: &dyn Host, name: &str) -> Result<()> {
    match host.run("ip", &["link", "delete", name], None) {
        Ok(_) => Ok(()),
        Err(Error::Command { stderr, .. })
            if stderr.contains("Cannot find device") || stderr.contains("No such device") =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Runs the host's network commands.
pub trait Host: Send + Sync {
    /// Runs `program args…`, feeding `stdin` if given; returns its stdout.
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String>;

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
        std::path::Path::new("/run/netns").join(name).exists()
    }
}

/// A shared host (tests keep a handle on a [`Recorder`] they hand over).
impl<H: Host + ?Sized> Host for std::sync::Arc<H> {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
        (**self).run(program, args, stdin)
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

/// The real host's commands run inside the named network namespace `0`
/// (`ip netns exec NAME …`): for tests and benchmarks that program a namespace of
/// their own. Ports and kernel parameters are not looked at.
#[derive(Debug, Clone)]
pub struct InNetns(pub String);

impl Host for InNetns {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut all = vec!["netns", "exec", self.0.as_str(), program];
        all.extend_from_slice(args);
        System.run("ip", &all, stdin)
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

/// A fake host that records the commands it is given and answers from a script.
#[derive(Debug, Default)]
pub struct Recorder {
    commands: Mutex<Vec<String>>,
    answers: Mutex<Vec<(String, String)>>,
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
        if let Some(input) = stdin {
            line.push_str(" <<< ");
            line.push_str(input.trim());
        }
        if let Ok(mut commands) = self.commands.lock() {
            commands.push(line);
        }
        Ok(answer)
    }

    fn port_in_use(&self, port: u16, _udp: bool) -> bool {
        self.bound_ports.contains(&port)
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        if let Ok(mut commands) = self.commands.lock() {
            commands.push(format!("sysctl {key}={value}"));
        }
        Ok(())
    }

    fn netns_exists(&self, name: &str) -> bool {
        self.commands()
            .iter()
            .any(|c| c == &format!("ip netns add {name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host whose `ip` fails with one message.
    struct Failing(&'static str);

    impl Host for Failing {
        fn run(&self, program: &str, args: &[&str], _: Option<&str>) -> Result<String> {
            Err(Error::Command {
                command: format!("{program} {}", args.join(" ")),
                stderr: self.0.to_string(),
            })
        }

        fn port_in_use(&self, _: u16, _: bool) -> bool {
            false
        }

        fn sysctl(&self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }

        fn netns_exists(&self, _: &str) -> bool {
            false
        }
    }

    #[test]
    fn a_link_that_is_gone_or_goes_meanwhile_is_deleted() {
        for gone in [
            "Cannot find device \"veth1\"",
            "RTNETLINK answers: No such device",
        ] {
            assert!(delete_link(&Failing(gone), "veth1").is_ok(), "{gone}");
        }
        assert!(
            delete_link(
                &Failing("RTNETLINK answers: Operation not permitted"),
                "veth1"
            )
            .is_err()
        );
        // For real: no such link here.
        if System.run("ip", &["link", "show"], None).is_ok() {
            assert!(delete_link(&System, "rk8s-nosuchlink").is_ok());
        }
    }
}
