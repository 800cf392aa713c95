//! The OCI runtimes the helper drives: youki's libcontainer in-process, or an external
//! binary with runc's command line. Both are called only from the helper's one thread.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use crate::container::{Engine, ExecProcess};
use crate::error::{Error, Result};

/// The stdio of a container or exec'd process.
#[derive(Debug)]
pub struct Stdio3 {
    /// Standard input.
    pub stdin: OwnedFd,
    /// Standard output.
    pub stdout: OwnedFd,
    /// Standard error.
    pub stderr: OwnedFd,
}

/// Where the stdio of a container's process or an exec'd process goes.
#[derive(Debug)]
pub enum ProcessIo {
    /// These three descriptors.
    Pipes(Stdio3),
    /// A new terminal, whose master end the runtime sends to this console socket.
    Tty {
        /// A listening Unix socket.
        console_socket: PathBuf,
    },
}

/// An OCI runtime as the helper uses it.
pub trait OciRuntime {
    /// Creates the container from `bundle` (whose process has `terminal` set exactly
    /// when `io` is [`ProcessIo::Tty`]); returns its init pid.
    fn create(&self, id: &str, bundle: &Path, io: ProcessIo) -> Result<i32>;
    /// Starts it.
    fn start(&self, id: &str) -> Result<()>;
    /// Signals its processes (all of them for SIGKILL).
    fn kill(&self, id: &str, signal: i32) -> Result<()>;
    /// Deletes it (its cgroup and runtime state).
    fn delete(&self, id: &str, force: bool) -> Result<()>;
    /// Runs a process in it (the container's bundle is `bundle`); returns the pid.
    fn exec(&self, id: &str, bundle: &Path, process: &ExecProcess, io: ProcessIo) -> Result<i32>;
}

/// The runtime for `engine`, keeping its state under `root`.
pub fn for_engine(engine: &Engine, root: &Path) -> Box<dyn OciRuntime> {
    match engine {
        Engine::Libcontainer => Box::new(Libcontainer {
            root: root.join("libcontainer"),
        }),
        Engine::Oci { name, binary } => Box::new(OciBinary {
            name: name.clone(),
            binary: binary.clone(),
            root: root.join(format!("oci-{name}")),
        }),
    }
}

/// youki's libcontainer.
#[derive(Debug)]
pub struct Libcontainer {
    root: PathBuf,
}

fn lc_error(err: libcontainer::error::LibcontainerError) -> Error {
    Error::Engine {
        engine: "libcontainer".to_string(),
        message: err.to_string(),
    }
}

impl Libcontainer {
    fn load(&self, id: &str) -> Result<Container> {
        let dir = self.root.join(id);
        if !dir.exists() {
            return Err(Error::ContainerNotFound { id: id.to_string() });
        }
        Container::load(dir).map_err(lc_error)
    }
}

impl OciRuntime for Libcontainer {
    fn create(&self, id: &str, bundle: &Path, io: ProcessIo) -> Result<i32> {
        std::fs::create_dir_all(&self.root).map_err(crate::error::io(&self.root))?;
        let builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(&self.root)
            .map_err(lc_error)?;
        let builder = match io {
            ProcessIo::Pipes(stdio) => builder
                .with_stdin(stdio.stdin)
                .with_stdout(stdio.stdout)
                .with_stderr(stdio.stderr),
            ProcessIo::Tty { console_socket } => builder.with_console_socket(Some(console_socket)),
        };
        let container = builder
            .validate_id()
            .map_err(lc_error)?
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(lc_error)?;
        container
            .pid()
            .map(|pid| pid.as_raw())
            .ok_or_else(|| Error::Engine {
                engine: "libcontainer".to_string(),
                message: format!("container {id} has no pid after create"),
            })
    }

    fn start(&self, id: &str) -> Result<()> {
        self.load(id)?.start().map_err(lc_error)
    }

    fn kill(&self, id: &str, signal: i32) -> Result<()> {
        let signal = libcontainer::signal::Signal::try_from(signal).map_err(|e| Error::Engine {
            engine: "libcontainer".to_string(),
            message: e.to_string(),
        })?;
        self.load(id)?.kill(signal, true).map_err(lc_error)
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        match self.load(id) {
            Ok(mut container) => container.delete(force).map_err(lc_error),
            Err(Error::ContainerNotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn exec(&self, id: &str, bundle: &Path, process: &ExecProcess, io: ProcessIo) -> Result<i32> {
        let builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(&self.root)
            .map_err(lc_error)?;
        let tenant = match io {
            ProcessIo::Pipes(stdio) => {
                let env = process
                    .env
                    .iter()
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                builder
                    .with_stdin(stdio.stdin)
                    .with_stdout(stdio.stdout)
                    .with_stderr(stdio.stderr)
                    .as_tenant()
                    .with_container_args(process.args.clone())
                    .with_env(env)
                    .with_cwd(process.cwd.as_ref())
            }
            ProcessIo::Tty { console_socket } => {
                // A terminal needs the whole process description (terminal: true).
                let file = self.root.join(format!("{id}.exec-process.json"));
                write_tty_process(bundle, process, &file)?;
                builder
                    .with_console_socket(Some(console_socket))
                    .as_tenant()
                    .with_process(Some(file))
            }
        };
        let pid = tenant.with_detach(true).build().map_err(lc_error)?;
        Ok(pid.as_raw())
    }
}

/// An external OCI runtime binary with runc's command line.
#[derive(Debug)]
pub struct OciBinary {
    name: String,
    binary: PathBuf,
    root: PathBuf,
}

impl OciBinary {
    fn command(&self) -> Command {
        let mut command = Command::new(&self.binary);
        command.arg("--root").arg(&self.root);
        command
    }

    fn run(&self, mut command: Command) -> Result<()> {
        let output = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Error::Engine {
                engine: self.name.clone(),
                message: format!("failed to run {}: {e}", self.binary.display()),
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::Engine {
                engine: self.name.clone(),
                message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            })
        }
    }

    fn run_with_stdio(&self, mut command: Command, stdio: Stdio3, pid_file: &Path) -> Result<i32> {
        let mut child = command
            .stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr)
            .spawn()
            .map_err(|e| Error::Engine {
                engine: self.name.clone(),
                message: format!("failed to run {}: {e}", self.binary.display()),
            })?;
        let status = child.wait().map_err(crate::error::io(&self.binary))?;
        let pid = std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let _ = std::fs::remove_file(pid_file);
        match (status.success(), pid) {
            (true, Some(pid)) => Ok(pid),
            _ => Err(Error::Engine {
                engine: self.name.clone(),
                message: format!(
                    "{} exited with {status}; its messages are in the container's log",
                    self.binary.display()
                ),
            }),
        }
    }
}

impl OciBinary {
    /// The stdio the binary itself runs with: `io`'s pipes, or /dev/null with a
    /// terminal (whose console socket goes on the command line).
    fn console(&self, command: &mut Command, io: ProcessIo) -> Result<Stdio3> {
        match io {
            ProcessIo::Pipes(stdio) => Ok(stdio),
            ProcessIo::Tty { console_socket } => {
                command.arg("--console-socket").arg(console_socket);
                let null = |write: bool| -> Result<OwnedFd> {
                    std::fs::OpenOptions::new()
                        .read(!write)
                        .write(write)
                        .open("/dev/null")
                        .map(OwnedFd::from)
                        .map_err(crate::error::io("/dev/null"))
                };
                Ok(Stdio3 {
                    stdin: null(false)?,
                    stdout: null(true)?,
                    stderr: null(true)?,
                })
            }
        }
    }
}

impl OciRuntime for OciBinary {
    fn create(&self, id: &str, bundle: &Path, io: ProcessIo) -> Result<i32> {
        std::fs::create_dir_all(&self.root).map_err(crate::error::io(&self.root))?;
        let pid_file = self.root.join(format!("{id}.pid"));
        let mut command = self.command();
        command
            .arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file);
        let stdio = self.console(&mut command, io)?;
        command.arg(id);
        self.run_with_stdio(command, stdio, &pid_file)
    }

    fn start(&self, id: &str) -> Result<()> {
        let mut command = self.command();
        command.arg("start").arg(id);
        self.run(command)
    }

    fn kill(&self, id: &str, signal: i32) -> Result<()> {
        let mut command = self.command();
        command.arg("kill");
        if signal == libc_sigkill() {
            command.arg("--all");
        }
        command.arg(id).arg(signal.to_string());
        self.run(command)
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        if !self.root.join(id).exists() {
            return Ok(());
        }
        let mut command = self.command();
        command.arg("delete");
        if force {
            command.arg("--force");
        }
        command.arg(id);
        self.run(command)
    }

    fn exec(&self, id: &str, _bundle: &Path, process: &ExecProcess, io: ProcessIo) -> Result<i32> {
        let pid_file = self.root.join(format!("{id}.exec.pid"));
        let mut command = self.command();
        command
            .arg("exec")
            .arg("--detach")
            .arg("--pid-file")
            .arg(&pid_file);
        for kv in &process.env {
            command.arg("--env").arg(kv);
        }
        if let Some(cwd) = &process.cwd {
            command.arg("--cwd").arg(cwd);
        }
        if matches!(io, ProcessIo::Tty { .. }) {
            command.arg("--tty");
        }
        let stdio = self.console(&mut command, io)?;
        command.arg(id).args(&process.args);
        self.run_with_stdio(command, stdio, &pid_file)
    }
}

/// The process file of a terminal exec: the container's own process (user,
/// capabilities, environment) with the new arguments, extra environment and cwd.
fn write_tty_process(bundle: &Path, process: &ExecProcess, file: &Path) -> Result<()> {
    let config = bundle.join("config.json");
    let spec = oci_spec::runtime::Spec::load(&config).map_err(|e| Error::Engine {
        engine: "libcontainer".to_string(),
        message: format!("{}: {e}", config.display()),
    })?;
    let mut base = spec.process().clone().unwrap_or_default();
    let mut env = base.env().clone().unwrap_or_default();
    for kv in &process.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    base.set_args(Some(process.args.clone()));
    base.set_env(Some(env));
    base.set_terminal(Some(true));
    if let Some(cwd) = &process.cwd {
        base.set_cwd(PathBuf::from(cwd));
    }
    let json = serde_json::to_vec(&base).map_err(|e| Error::InvalidSpec(e.to_string()))?;
    std::fs::write(file, json).map_err(crate::error::io(file))
}

fn libc_sigkill() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}
