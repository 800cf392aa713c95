//! Errors of the pod network.

use std::path::PathBuf;

/// What went wrong while changing the host's network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command (`nft`) failed; its stderr is kept.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A command could not be started at all (not installed?).
    #[error("failed to run `{program}` (is it installed?): {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A change through netlink, or to a named network namespace, failed: the `ip` (or
    /// `bridge`) command that makes the same change and the kernel's answer, e.g.
    /// "ip link add veth1 type veth peer name eth0 netns rk8s-p: File exists (os error
    /// 17)".
    #[error("{op}: {source}")]
    Netlink {
        /// The change, in `ip` words.
        op: String,
        /// The kernel's error.
        #[source]
        source: std::io::Error,
    },
    /// A configured interface name the kernel would refuse: "bridge name
    /// "rk8s-bridge-too-long" is longer than 15 bytes".
    #[error(transparent)]
    InvalidLinkName(#[from] InvalidLinkName),
    /// Reading or writing the network's state files failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The address range has no free address.
    #[error("no free address left in {range}")]
    RangeFull {
        /// The exhausted range.
        range: String,
    },
    /// A CIDR string does not parse.
    #[error(transparent)]
    InvalidCidr(#[from] rk8s_api::net::InvalidCidr),
    /// A host port is already mapped or bound.
    #[error("host port {port}/{protocol} is already in use by {owner}")]
    PortTaken {
        /// The port.
        port: u16,
        /// tcp or udp.
        protocol: String,
        /// Who has it: a pod id, or "another process on this host".
        owner: String,
    },
    /// Output of `nft -j` could not be understood.
    #[error("unexpected output of nft: {0}")]
    NftOutput(String),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The longest network interface name, in bytes (Linux: `IFNAMSIZ` less the NUL).
pub const MAX_LINK_NAME: usize = 15;

/// A network interface name the kernel refuses, and which of the configuration's or
/// the operation's names it is: "bridge name "rk8s-a-bridge-too-long" is longer than
/// 15 bytes".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {name:?} {problem}")]
pub struct InvalidLinkName {
    /// Which name: "bridge name", "veth peer name", "link name" …
    pub field: &'static str,
    /// The name.
    pub name: String,
    /// What is wrong with it.
    pub problem: LinkNameProblem,
}

/// Why the kernel refuses an interface name (Linux `dev_valid_name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkNameProblem {
    /// No name at all.
    #[error("is empty")]
    Empty,
    /// More than [`MAX_LINK_NAME`] bytes.
    #[error("is longer than {MAX_LINK_NAME} bytes")]
    TooLong,
    /// `.` or `..`.
    #[error("is no interface name")]
    Dots,
    /// A `/`, a `:`, white space or a NUL.
    #[error("contains {0:?}")]
    Contains(char),
}
