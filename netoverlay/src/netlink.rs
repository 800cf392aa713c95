//! Changes to the kernel's network configuration as values ([`NetOp`]), each shown
//! as the `ip`/`bridge` command that makes the same change, and carried out over
//! rtnetlink (named namespaces through [`crate::netns`]).
//!
//! The messages are those iproute2 sends for the command, so `ip` shows the result as
//! if it had made it: routes with `proto boot`, addresses without a broadcast
//! address, permanent neighbour and forwarding entries.
//!
//! rtnetlink is asynchronous; the callers are not. A batch of operations runs on a
//! small current-thread tokio runtime with one netlink socket, made for the batch: a
//! socket belongs to the network namespace of the thread that opened it, so a batch
//! for another namespace runs on a thread that entered it ([`crate::netns::run_in`]).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::AddressAttribute;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteProtocol, RouteScope, RouteType};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVxlan, RouteMessageBuilder};

use crate::Ipv4Net;
use crate::error::{Error, Result};
use crate::netns;

/// One change to a network namespace's links, addresses, routes, neighbours or
/// forwarding entries, or to the named namespaces. Its [`Display`](fmt::Display) is
/// the `ip`/`bridge` command line that makes the same change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetOp {
    /// `ip netns add NAME`
    AddNetns {
        /// The namespace's name.
        name: String,
    },
    /// `ip netns delete NAME`
    DeleteNetns {
        /// The namespace's name.
        name: String,
    },
    /// `ip link add NAME type bridge`
    AddBridge {
        /// The bridge's name.
        name: String,
    },
    /// `ip link add NAME type veth peer name PEER netns NETNS`
    AddVeth {
        /// This end's name.
        name: String,
        /// The other end's name.
        peer: String,
        /// The named namespace the other end is created in.
        peer_netns: String,
    },
    /// `ip link add NAME type vxlan id VNI local LOCAL dstport PORT nolearning`
    AddVxlan {
        /// The device's name.
        name: String,
        /// The VXLAN network identifier.
        vni: u32,
        /// The source address of the tunnel's packets.
        local: Ipv4Addr,
        /// The UDP port.
        port: u16,
    },
    /// `ip link set LINK address MAC`
    SetMac {
        /// The link.
        link: String,
        /// Its new hardware address.
        mac: [u8; 6],
    },
    /// `ip link set LINK master MASTER up`
    SetMasterUp {
        /// The link.
        link: String,
        /// The bridge it becomes a port of.
        master: String,
    },
    /// `ip link set LINK up`
    Up {
        /// The link.
        link: String,
    },
    /// `ip link delete LINK`
    DeleteLink {
        /// The link.
        link: String,
    },
    /// `ip addr add ADDRESS/PREFIX dev LINK`, or `ip addr replace …`
    AddAddress {
        /// The link.
        link: String,
        /// The address.
        address: Ipv4Addr,
        /// Its prefix length.
        prefix: u8,
        /// `replace` (an existing one is fine) rather than `add`.
        replace: bool,
    },
    /// `ip route add default via GATEWAY`, or with `replace`, a destination, a device
    /// and `onlink`: `ip route replace DST via GATEWAY dev LINK onlink`
    AddRoute {
        /// The destination; `None` is `default`.
        destination: Option<Ipv4Net>,
        /// The next hop.
        gateway: Ipv4Addr,
        /// The device, when the route names one.
        link: Option<String>,
        /// The gateway is on the link even without an address in its range.
        onlink: bool,
        /// `replace` (an existing one is fine) rather than `add`.
        replace: bool,
    },
    /// `ip route del DST`
    DeleteRoute {
        /// The destination.
        destination: Ipv4Net,
    },
    /// `ip neigh replace ADDRESS lladdr MAC dev LINK nud permanent`
    ReplaceNeighbour {
        /// The neighbour's address.
        address: Ipv4Addr,
        /// Its hardware address.
        mac: [u8; 6],
        /// The link it is reached on.
        link: String,
    },
    /// `ip neigh del ADDRESS dev LINK`
    DeleteNeighbour {
        /// The neighbour's address.
        address: Ipv4Addr,
        /// The link.
        link: String,
    },
    /// `bridge fdb replace MAC dev LINK dst DST`
    ReplaceFdb {
        /// The hardware address.
        mac: [u8; 6],
        /// The (VXLAN) device.
        link: String,
        /// Where frames for `mac` are tunnelled to.
        dst: Ipv4Addr,
    },
    /// `bridge fdb del MAC dev LINK`
    DeleteFdb {
        /// The hardware address.
        mac: [u8; 6],
        /// The device.
        link: String,
    },
}

impl NetOp {
    /// The command line making this change in the named namespace `netns` (`ip -n
    /// NETNS …`), or in the current one.
    pub fn command_line(&self, netns: Option<&str>) -> String {
        let line = self.to_string();
        match netns {
            Some(ns) => match line.split_once(' ') {
                Some((program, rest)) => format!("{program} -n {ns} {rest}"),
                None => line,
            },
            None => line,
        }
    }
}

impl fmt::Display for NetOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetOp::AddNetns { name } => write!(f, "ip netns add {name}"),
            NetOp::DeleteNetns { name } => write!(f, "ip netns delete {name}"),
            NetOp::AddBridge { name } => write!(f, "ip link add {name} type bridge"),
            NetOp::AddVeth {
                name,
                peer,
                peer_netns,
            } => write!(
                f,
                "ip link add {name} type veth peer name {peer} netns {peer_netns}"
            ),
            NetOp::AddVxlan {
                name,
                vni,
                local,
                port,
            } => write!(
                f,
                "ip link add {name} type vxlan id {vni} local {local} dstport {port} nolearning"
            ),
            NetOp::SetMac { link, mac } => {
                write!(f, "ip link set {link} address {}", Mac(mac))
            }
            NetOp::SetMasterUp { link, master } => {
                write!(f, "ip link set {link} master {master} up")
            }
            NetOp::Up { link } => write!(f, "ip link set {link} up"),
            NetOp::DeleteLink { link } => write!(f, "ip link delete {link}"),
            NetOp::AddAddress {
                link,
                address,
                prefix,
                replace,
            } => {
                let verb = if *replace { "replace" } else { "add" };
                write!(f, "ip addr {verb} {address}/{prefix} dev {link}")
            }
            NetOp::AddRoute {
                destination,
                gateway,
                link,
                onlink,
                replace,
            } => {
                let verb = if *replace { "replace" } else { "add" };
                match destination {
                    Some(dst) => write!(f, "ip route {verb} {dst} via {gateway}")?,
                    None => write!(f, "ip route {verb} default via {gateway}")?,
                }
                if let Some(link) = link {
                    write!(f, " dev {link}")?;
                }
                if *onlink {
                    write!(f, " onlink")?;
                }
                Ok(())
            }
            NetOp::DeleteRoute { destination } => write!(f, "ip route del {destination}"),
            NetOp::ReplaceNeighbour { address, mac, link } => write!(
                f,
                "ip neigh replace {address} lladdr {} dev {link} nud permanent",
                Mac(mac)
            ),
            NetOp::DeleteNeighbour { address, link } => {
                write!(f, "ip neigh del {address} dev {link}")
            }
            NetOp::ReplaceFdb { mac, link, dst } => {
                write!(f, "bridge fdb replace {} dev {link} dst {dst}", Mac(mac))
            }
            NetOp::DeleteFdb { mac, link } => {
                write!(f, "bridge fdb del {} dev {link}", Mac(mac))
            }
        }
    }
}

/// A hardware address as `ip` writes it.
struct Mac<'a>(&'a [u8; 6]);

impl fmt::Display for Mac<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

pub use crate::error::{InvalidLinkName, LinkNameProblem, MAX_LINK_NAME};

/// Checks `name`, the configuration's or operation's `field` ("bridge name"), as the
/// kernel does before it makes or renames an interface (`dev_valid_name`): 1 to 15
/// bytes, not `.` or `..`, no `/`, `:` or white space. An over-long name otherwise
/// comes back as "Numerical result out of range", naming nothing.
pub fn check_link_name(field: &'static str, name: &str) -> Result<(), InvalidLinkName> {
    let problem = if name.is_empty() {
        Some(LinkNameProblem::Empty)
    } else if name.len() > MAX_LINK_NAME {
        Some(LinkNameProblem::TooLong)
    } else if name == "." || name == ".." {
        Some(LinkNameProblem::Dots)
    } else {
        name.chars()
            .find(|c| {
                // The kernel's isspace() reads the byte 0xa0 (Latin-1's no-break
                // space) as white space too, also inside a UTF-8 character; a NUL
                // would end the name early.
                let mut utf8 = [0; 4];
                matches!(
                    c,
                    '/' | ':' | '\0' | ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r'
                ) || c.encode_utf8(&mut utf8).bytes().any(|b| b == 0xa0)
            })
            .map(LinkNameProblem::Contains)
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(InvalidLinkName {
            field,
            name: name.to_string(),
            problem,
        }),
    }
}

impl NetOp {
    /// The interface names this operation gives the kernel, each with what it is.
    fn link_names(&self) -> Vec<(&'static str, &str)> {
        match self {
            NetOp::AddNetns { .. } | NetOp::DeleteNetns { .. } | NetOp::DeleteRoute { .. } => {
                Vec::new()
            }
            NetOp::AddBridge { name } => vec![("bridge name", name)],
            NetOp::AddVeth { name, peer, .. } => {
                vec![("veth name", name), ("veth peer name", peer)]
            }
            NetOp::AddVxlan { name, .. } => vec![("vxlan name", name)],
            NetOp::SetMasterUp { link, master } => {
                vec![("link name", link), ("master name", master)]
            }
            NetOp::AddRoute { link, .. } => {
                link.iter().map(|l| ("link name", l.as_str())).collect()
            }
            NetOp::SetMac { link, .. }
            | NetOp::Up { link }
            | NetOp::DeleteLink { link }
            | NetOp::AddAddress { link, .. }
            | NetOp::ReplaceNeighbour { link, .. }
            | NetOp::DeleteNeighbour { link, .. }
            | NetOp::ReplaceFdb { link, .. }
            | NetOp::DeleteFdb { link, .. } => vec![("link name", link)],
        }
    }

    /// Checks the interface names of this operation ([`check_link_name`]).
    pub fn check_link_names(&self) -> Result<(), InvalidLinkName> {
        self.link_names()
            .into_iter()
            .try_for_each(|(field, name)| check_link_name(field, name))
    }
}

/// Checks the interface names of every operation of `ops` before any is carried out,
/// so a batch with a name the kernel refuses makes no change at all; the error names
/// the operation (`ip -n LABEL …`) and the name.
pub(crate) fn check_link_names(ops: &[NetOp], label: Option<&str>) -> Result<()> {
    for op in ops {
        op.check_link_names().map_err(|e| Error::Netlink {
            op: op.command_line(label),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
    }
    Ok(())
}

/// Carries out `ops` in order in the calling thread's network namespace, stopping at
/// the first that fails. `label` is the namespace named in errors (`ip -n LABEL …`).
pub(crate) fn apply_here(ops: &[NetOp], label: Option<&str>) -> Result<()> {
    check_link_names(ops, label)?;
    let mut session: Option<Session> = None;
    for op in ops {
        let failed = |source| Error::Netlink {
            op: op.command_line(label),
            source,
        };
        match op {
            NetOp::AddNetns { name } => netns::create(name).map_err(failed)?,
            NetOp::DeleteNetns { name } => netns::delete(name).map_err(failed)?,
            _ => {
                let session = match &mut session {
                    Some(s) => s,
                    None => session.insert(Session::open().map_err(failed)?),
                };
                session.apply(op).map_err(failed)?;
            }
        }
    }
    Ok(())
}

/// [`apply_here`] on a thread of its own when the calling thread runs a tokio
/// runtime already (which cannot block on another).
pub(crate) fn apply(ops: &[NetOp], label: Option<&str>) -> Result<()> {
    if tokio::runtime::Handle::try_current().is_err() {
        return apply_here(ops, label);
    }
    netns::on_own_thread(|| apply_here(ops, label))
        .map_err(|source| thread_failed(ops, label, source))
        .and_then(|r| r)
}

/// [`apply_here`] inside the named namespace `netns`.
pub(crate) fn apply_in(netns: &str, ops: &[NetOp]) -> Result<()> {
    netns::run_in(netns, || apply_here(ops, Some(netns)))
        .map_err(|source| thread_failed(ops, Some(netns), source))
        .and_then(|r| r)
}

/// Whether the link `name` exists in the calling thread's namespace (`ip link show
/// NAME`).
pub(crate) fn link_exists_here(name: &str, label: Option<&str>) -> Result<bool> {
    let failed = |source| Error::Netlink {
        op: match label {
            Some(ns) => format!("ip -n {ns} link show {name}"),
            None => format!("ip link show {name}"),
        },
        source,
    };
    let mut session = Session::open().map_err(failed)?;
    match session.index(name) {
        Ok(_) => Ok(true),
        Err(e) if is_missing(&e) => Ok(false),
        Err(e) => Err(failed(e)),
    }
}

/// [`link_exists_here`] on a thread of its own when the caller runs a tokio runtime.
pub(crate) fn link_exists(name: &str) -> Result<bool> {
    if tokio::runtime::Handle::try_current().is_err() {
        return link_exists_here(name, None);
    }
    netns::on_own_thread(|| link_exists_here(name, None))
        .map_err(|source| Error::Netlink {
            op: format!("ip link show {name}"),
            source,
        })
        .and_then(|r| r)
}

/// [`link_exists_here`] inside the named namespace `netns`.
pub(crate) fn link_exists_in(netns: &str, name: &str) -> Result<bool> {
    netns::run_in(netns, || link_exists_here(name, Some(netns)))
        .map_err(|source| Error::Netlink {
            op: format!("ip -n {netns} link show {name}"),
            source,
        })
        .and_then(|r| r)
}

/// Whether `e` says the device (or entry) is not there.
pub(crate) fn is_missing(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::errno::Errno::ENODEV as i32)
}

fn thread_failed(ops: &[NetOp], label: Option<&str>, source: io::Error) -> Error {
    Error::Netlink {
        op: ops
            .first()
            .map(|op| op.command_line(label))
            .unwrap_or_default(),
        source,
    }
}

/// One netlink socket and the runtime that drives it, for a batch of operations.
struct Session {
    runtime: tokio::runtime::Runtime,
    handle: Handle,
    /// Interface indexes looked up so far in this batch.
    indexes: HashMap<String, u32>,
}

impl Session {
    fn open() -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        // The socket is made here, in this thread's network namespace.
        let handle = runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(connection);
            io::Result::Ok(handle)
        })?;
        Ok(Self {
            runtime,
            handle,
            indexes: HashMap::new(),
        })
    }

    fn index(&mut self, name: &str) -> io::Result<u32> {
        if let Some(index) = self.indexes.get(name) {
            return Ok(*index);
        }
        let handle = self.handle.clone();
        let found = self.runtime.block_on(async move {
            handle
                .link()
                .get()
                .match_name(name.to_string())
                .execute()
                .try_next()
                .await
        });
        let index = match found.map_err(to_io)? {
            Some(link) => link.header.index,
            None => {
                return Err(io::Error::from_raw_os_error(
                    nix::errno::Errno::ENODEV as i32,
                ));
            }
        };
        self.indexes.insert(name.to_string(), index);
        Ok(index)
    }

    fn apply(&mut self, op: &NetOp) -> io::Result<()> {
        // A link made or removed in this batch may reuse a name looked up before.
        if let NetOp::AddBridge { name: link }
        | NetOp::AddVeth { name: link, .. }
        | NetOp::AddVxlan { name: link, .. }
        | NetOp::DeleteLink { link } = op
        {
            self.indexes.remove(link);
        }
        let handle = &self.handle;
        let request = match op {
            NetOp::AddNetns { .. } | NetOp::DeleteNetns { .. } => return Ok(()),
            NetOp::AddBridge { name } => {
                let message =
                    LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Bridge)
                        .name(name.clone())
                        .build();
                Request::Link(handle.link().add(message))
            }
            NetOp::AddVeth {
                name,
                peer,
                peer_netns,
            } => {
                // The peer is made in the namespace of this descriptor, which must stay
                // open until the request is done.
                let ns = std::fs::File::open(netns::path(peer_netns))?;
                let peer = LinkUnspec::new_with_name(peer)
                    .setns_by_fd(ns.as_raw_fd())
                    .build();
                let message = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
                    .name(name.clone())
                    .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                    .build();
                let handle = handle.clone();
                return self
                    .runtime
                    .block_on(async move { handle.link().add(message).execute().await })
                    .map_err(to_io)
                    .map(|()| drop(ns));
            }
            NetOp::AddVxlan {
                name,
                vni,
                local,
                port,
            } => {
                let message = LinkVxlan::new(name, *vni)
                    .local(*local)
                    .port(*port)
                    .learning(false)
                    .build();
                Request::Link(handle.link().add(message))
            }
            NetOp::SetMac { link, mac } => {
                let message = LinkUnspec::new_with_name(link)
                    .address(mac.to_vec())
                    .build();
                Request::LinkSet(handle.link().set(message))
            }
            NetOp::SetMasterUp { link, master } => {
                let master = self.index(master)?;
                let message = LinkUnspec::new_with_name(link)
                    .controller(master)
                    .up()
                    .build();
                Request::LinkSet(self.handle.link().set(message))
            }
            NetOp::Up { link } => {
                let message = LinkUnspec::new_with_name(link).up().build();
                Request::LinkSet(handle.link().set(message))
            }
            NetOp::DeleteLink { link } => {
                let message = LinkUnspec::new_with_name(link).build();
                Request::LinkDel(handle.link().del_with_message(message))
            }
            NetOp::AddAddress {
                link,
                address,
                prefix,
                replace,
            } => {
                let index = self.index(link)?;
                let mut request = self
                    .handle
                    .address()
                    .add(index, IpAddr::V4(*address), *prefix);
                // `ip addr add` sets no broadcast address unless told to.
                request
                    .message_mut()
                    .attributes
                    .retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
                Request::Address(if *replace { request.replace() } else { request })
            }
            NetOp::AddRoute {
                destination,
                gateway,
                link,
                onlink,
                replace,
            } => {
                let mut route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .protocol(RouteProtocol::Boot)
                    .gateway(*gateway);
                if let Some(dst) = destination {
                    route = route.destination_prefix(dst.network(), dst.prefix());
                }
                if let Some(link) = link {
                    route = route.output_interface(self.index(link)?);
                }
                if *onlink {
                    route = route.onlink();
                }
                let request = self.handle.route().add(route.build());
                Request::Route(if *replace { request.replace() } else { request })
            }
            NetOp::DeleteRoute { destination } => {
                // As `ip route del`: any scope, type and protocol match.
                let route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(destination.network(), destination.prefix())
                    .protocol(RouteProtocol::Unspec)
                    .scope(RouteScope::NoWhere)
                    .kind(RouteType::Unspec)
                    .build();
                Request::RouteDel(handle.route().del(route))
            }
            NetOp::ReplaceNeighbour { address, mac, link } => {
                let index = self.index(link)?;
                let request = self
                    .handle
                    .neighbours()
                    .add(index, IpAddr::V4(*address))
                    .state(NeighbourState::Permanent)
                    .link_layer_address(mac)
                    .replace();
                Request::Neighbour(request)
            }
            NetOp::DeleteNeighbour { address, link } => {
                let mut message = NeighbourMessage::default();
                message.header.family = AddressFamily::Inet;
                message.header.ifindex = self.index(link)?;
                message
                    .attributes
                    .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                        *address,
                    )));
                Request::NeighbourDel(self.handle.neighbours().del(message))
            }
            NetOp::ReplaceFdb { mac, link, dst } => {
                let index = self.index(link)?;
                // `bridge fdb` talks to the device itself (`self`), not to a bridge
                // it is a port of, and sends the state it starts from, NUD_NOARP,
                // with NUD_PERMANENT added (iproute2 bridge/fdb.c, fdb_modify).
                let request = self
                    .handle
                    .neighbours()
                    .add_bridge(index, mac)
                    .flags(NeighbourFlags::Own)
                    .state(FDB_STATE)
                    .destination(IpAddr::V4(*dst))
                    .replace();
                Request::Neighbour(request)
            }
            NetOp::DeleteFdb { mac, link } => {
                let mut message = NeighbourMessage::default();
                message.header.family = AddressFamily::Bridge;
                message.header.ifindex = self.index(link)?;
                message.header.flags = NeighbourFlags::Own;
                message.header.state = NeighbourState::Noarp;
                message
                    .attributes
                    .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
                Request::NeighbourDel(self.handle.neighbours().del(message))
            }
        };
        self.runtime.block_on(request.execute()).map_err(to_io)
    }
}

/// The state of a forwarding entry as `bridge fdb replace … dst …` makes it:
/// `NUD_NOARP | NUD_PERMANENT`.
const FDB_STATE: NeighbourState = NeighbourState::Other(NUD_NOARP | NUD_PERMANENT);
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;

/// A request made, not yet sent.
enum Request {
    Link(rtnetlink::LinkAddRequest),
    LinkSet(rtnetlink::LinkSetRequest),
    LinkDel(rtnetlink::LinkDelRequest),
    Address(rtnetlink::AddressAddRequest),
    Route(rtnetlink::RouteAddRequest),
    RouteDel(rtnetlink::RouteDelRequest),
    Neighbour(rtnetlink::NeighbourAddRequest),
    NeighbourDel(rtnetlink::NeighbourDelRequest),
}

impl Request {
    async fn execute(self) -> std::result::Result<(), rtnetlink::Error> {
        match self {
            Request::Link(r) => r.execute().await,
            Request::LinkSet(r) => r.execute().await,
            Request::LinkDel(r) => r.execute().await,
            Request::Address(r) => r.execute().await,
            Request::Route(r) => r.execute().await,
            Request::RouteDel(r) => r.execute().await,
            Request::Neighbour(r) => r.execute().await,
            Request::NeighbourDel(r) => r.execute().await,
        }
    }
}

/// The kernel's answer as an OS error ("File exists (os error 17)"); anything else
/// rtnetlink reports as an error of its own words.
fn to_io(e: rtnetlink::Error) -> io::Error {
    match e {
        rtnetlink::Error::NetlinkError(message) if message.code.is_some() => message.to_io(),
        other => io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_read_as_the_ip_and_bridge_commands_that_make_them() {
        let mac = [0x0a, 0x58, 0x0a, 0x63, 0x00, 0x0c];
        let cases = [
            (
                NetOp::AddVeth {
                    name: "veth1".into(),
                    peer: "eth0".into(),
                    peer_netns: "rk8s-p".into(),
                },
                Some("x"),
                "ip -n x link add veth1 type veth peer name eth0 netns rk8s-p",
            ),
            (
                NetOp::AddRoute {
                    destination: None,
                    gateway: Ipv4Addr::new(10, 1, 0, 1),
                    link: None,
                    onlink: false,
                    replace: false,
                },
                Some("rk8s-p"),
                "ip -n rk8s-p route add default via 10.1.0.1",
            ),
            (
                NetOp::ReplaceFdb {
                    mac,
                    link: "rk8s.vxlan".into(),
                    dst: Ipv4Addr::new(10, 99, 0, 12),
                },
                None,
                "bridge fdb replace 0a:58:0a:63:00:0c dev rk8s.vxlan dst 10.99.0.12",
            ),
            (
                NetOp::DeleteFdb {
                    mac,
                    link: "rk8s.vxlan".into(),
                },
                Some("n"),
                "bridge -n n fdb del 0a:58:0a:63:00:0c dev rk8s.vxlan",
            ),
        ];
        for (op, netns, line) in cases {
            assert_eq!(op.command_line(netns), line);
        }
    }

    #[test]
    fn kernel_errors_keep_their_number() {
        // What rtnetlink returns for an answer of -EEXIST.
        let mut answer = rtnetlink::packet_core::ErrorMessage::default();
        answer.code = std::num::NonZeroI32::new(-17);
        let source = to_io(rtnetlink::Error::NetlinkError(answer));
        assert_eq!(source.raw_os_error(), Some(17));
        assert_eq!(source.kind(), io::ErrorKind::AlreadyExists);
        let e = Error::Netlink {
            op: "ip link add veth1 type bridge".into(),
            source,
        };
        assert_eq!(
            e.to_string(),
            "ip link add veth1 type bridge: File exists (os error 17)"
        );
        // ENODEV is "not there" to the callers that look.
        let mut gone = rtnetlink::packet_core::ErrorMessage::default();
        gone.code = std::num::NonZeroI32::new(-19);
        assert!(is_missing(&to_io(rtnetlink::Error::NetlinkError(gone))));
        // Anything else is rtnetlink's own words, with no number.
        let other = to_io(rtnetlink::Error::RequestFailed);
        assert_eq!(other.raw_os_error(), None);
        assert_eq!(other.to_string(), "A netlink request failed");
    }

    #[test]
    fn link_names_the_kernel_refuses_are_refused_naming_the_field() {
        for ok in [
            "eth0",
            "rk8s.vxlan",
            "veth0123abcd",
            "a-b_c@d",
            "fifteen-bytes15",
            "é",
        ] {
            assert_eq!(check_link_name("link name", ok), Ok(()), "{ok:?}");
        }
        let cases = [
            ("", LinkNameProblem::Empty),
            ("sixteen-bytes-16", LinkNameProblem::TooLong),
            // Eight two-byte characters: sixteen bytes.
            ("éééééééé", LinkNameProblem::TooLong),
            (".", LinkNameProblem::Dots),
            ("..", LinkNameProblem::Dots),
            ("a/b", LinkNameProblem::Contains('/')),
            ("eth0:1", LinkNameProblem::Contains(':')),
            ("a b", LinkNameProblem::Contains(' ')),
            ("a\tb", LinkNameProblem::Contains('\t')),
            ("a\x0bb", LinkNameProblem::Contains('\x0b')),
            ("a\0b", LinkNameProblem::Contains('\0')),
            // U+00E0 is C3 A0 in UTF-8.
            ("voilà", LinkNameProblem::Contains('à')),
        ];
        for (name, problem) in cases {
            let e = check_link_name("bridge name", name).unwrap_err();
            assert_eq!(e.problem, problem, "{name:?}");
            assert_eq!(e.field, "bridge name");
        }
        assert_eq!(
            check_link_name("bridge name", "rk8s-bridge-too-long")
                .unwrap_err()
                .to_string(),
            r#"bridge name "rk8s-bridge-too-long" is longer than 15 bytes"#
        );
        assert_eq!(
            check_link_name("link name", "a\tb")
                .unwrap_err()
                .to_string(),
            r#"link name "a\tb" contains '\t'"#
        );
    }

    #[test]
    fn a_batch_with_a_name_the_kernel_refuses_makes_no_change_and_says_which_name() {
        let long = "veth-0123456789abcdef".to_string();
        let ops = [
            NetOp::AddNetns {
                name: "rk8s-never-made".into(),
            },
            NetOp::AddVeth {
                name: "veth1".into(),
                peer: long.clone(),
                peer_netns: "rk8s-never-made".into(),
            },
        ];
        // Refused before anything is done: no namespace made, no root needed.
        let e = apply_here(&ops, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "ip link add veth1 type veth peer name {long} netns rk8s-never-made: \
                 veth peer name \"{long}\" is longer than 15 bytes"
            )
        );
        assert!(!netns::exists("rk8s-never-made"));
        let op = |link: &str| NetOp::SetMasterUp {
            link: "veth1".into(),
            master: link.into(),
        };
        assert_eq!(
            op("br 0").check_link_names().unwrap_err().field,
            "master name"
        );
        assert_eq!(op("br0").check_link_names(), Ok(()));
        let route = NetOp::AddRoute {
            destination: None,
            gateway: Ipv4Addr::new(10, 1, 0, 1),
            link: Some(String::new()),
            onlink: false,
            replace: false,
        };
        assert_eq!(
            route.check_link_names().unwrap_err().to_string(),
            r#"link name "" is empty"#
        );
    }

    #[test]
    fn forwarding_entries_are_noarp_and_permanent_as_bridge_fdb_makes_them() {
        assert_eq!(u16::from(FDB_STATE), 0xc0);
    }
}
