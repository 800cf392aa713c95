//! The `ContainerRuntime` trait: what pods need from whatever runs their containers.
//!
//! Backends: [`crate::helper::HelperClient`] hands each container to the container
//! helper, which runs it with youki's libcontainer ([`Engine::Libcontainer`]) or with
//! an external OCI runtime binary such as runc ([`Engine::Oci`], chosen per pod through
//! a RuntimeClass); [`crate::fake::FakeRuntime`] runs nothing, for simulated nodes.
//!
//! [`Engine::Libcontainer`]: crate::container::Engine::Libcontainer
//! [`Engine::Oci`]: crate::container::Engine::Oci

use std::os::fd::BorrowedFd;

use crate::container::{
    AttachHandle, AttachStreams, ContainerState, CreateContainer, ExecHandle, ExecProcess,
};
use crate::error::Result;

/// Runs containers from prepared bundles. Calls block; async code calls them through
/// `spawn_blocking`.
pub trait ContainerRuntime: Send + Sync {
    /// Creates the container (its process waits for [`start`](Self::start)).
    fn create(&self, spec: &CreateContainer) -> Result<ContainerState>;
    /// Starts a created container.
    fn start(&self, id: &str) -> Result<()>;
    /// Sends `signal` to the container's processes; a stopped container ignores it.
    fn kill(&self, id: &str, signal: i32) -> Result<()>;
    /// Removes the container; `force` kills it first if it still runs.
    fn delete(&self, id: &str, force: bool) -> Result<()>;
    /// The container's state.
    fn state(&self, id: &str) -> Result<ContainerState>;
    /// Every container.
    fn list(&self) -> Result<Vec<ContainerState>>;
    /// The pid of the container's process while that process lives (a zombie not
    /// reaped yet does not), for joining its namespaces through `/proc/<pid>/ns`; None
    /// when it has none.
    fn live_pid(&self, id: &str) -> Result<Option<i32>>;
    /// Runs a process in a running container with the given stdin, stdout and stderr
    /// (None with `process.tty`: the handle then carries the terminal's master end);
    /// the handle's pid is for [`wait_exec`](Self::wait_exec).
    fn exec(
        &self,
        id: &str,
        process: &ExecProcess,
        stdio: Option<[BorrowedFd<'_>; 3]>,
    ) -> Result<ExecHandle>;
    /// Waits for an exec'd process; returns its exit code.
    fn wait_exec(&self, pid: i32) -> Result<i32>;
    /// Attaches to the main process of a running container: its output from now on
    /// and its stdin or terminal, as `streams` asks and the container has them.
    fn attach(&self, id: &str, streams: AttachStreams) -> Result<AttachHandle>;
}
