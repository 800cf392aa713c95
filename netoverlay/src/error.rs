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
    InvalidLinkName(#[from] crate::netlink::InvalidLinkName),
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
