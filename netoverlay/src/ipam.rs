//! Address allocation from a range, kept in files so that several processes (a node
//! agent, `rk8sctl` in local mode) and restarts agree: one file per address holding its
//! owner, created with `O_EXCL` so two allocations never get the same address.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::Ipv4Net;
use crate::error::{Error, Result};

/// Allocates addresses of `range` to owners (pod ids).
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    range: Ipv4Net,
}

impl Ipam {
    /// An allocator keeping its files in `dir`. The network address, the first host
    /// address (the gateway) and the broadcast address are never handed out.
    pub fn new(dir: impl Into<PathBuf>, range: Ipv4Net) -> Self {
        Self {
            dir: dir.into(),
            range,
        }
    }

    /// The gateway: the first host address of the range.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.range.nth(1)
    }

    /// The address of `owner`, allocating the next free one if it has none.
    pub fn allocate(&self, owner: &str) -> Result<Ipv4Addr> {
        fs::create_dir_all(&self.dir).map_err(|source| io(&self.dir, source))?;
        if let Some(existing) = self.address_of(owner)? {
            return Ok(existing);
        }
        let size = u32::try_from(self.range.size().min(u64::from(u32::MAX))).unwrap_or(u32::MAX);
        let start = self.last().map_or(2, |n| n + 1);
        // Round-robin from the last allocation, so a released address is not reused at
        // once (a stale peer might still send to it).
        for i in 0..size {
            let n = 2 + (start.saturating_sub(2) + i) % size.saturating_sub(3).max(1);
            let Some(addr) = self.range.nth(n) else {
                continue;
            };
            if addr == self.range.broadcast() {
                continue;
            }
            let path = self.dir.join(addr.to_string());
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(owner.as_bytes())
                        .map_err(|source| io(&path, source))?;
                    let last = self.dir.join("last");
                    fs::write(&last, n.to_string()).map_err(|source| io(&last, source))?;
                    return Ok(addr);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(io(&path, source)),
            }
        }
        Err(Error::RangeFull {
            range: self.range.to_string(),
        })
    }

    /// Frees the address of `owner`, if it has one.
    pub fn release(&self, owner: &str) -> Result<()> {
        if let Some(addr) = self.address_of(owner)? {
            let path = self.dir.join(addr.to_string());
            fs::remove_file(&path).map_err(|source| io(&path, source))?;
        }
        Ok(())
    }

    /// Every allocation: address and owner.
    pub fn allocations(&self) -> Result<Vec<(Ipv4Addr, String)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(io(&self.dir, source)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Ok(addr) = entry.file_name().to_string_lossy().parse::<Ipv4Addr>() else {
                continue;
            };
            let owner = fs::read_to_string(entry.path()).unwrap_or_default();
            out.push((addr, owner));
        }
        out.sort();
        Ok(out)
    }

    /// The address allocated to `owner`.
    pub fn address_of(&self, owner: &str) -> Result<Option<Ipv4Addr>> {
        Ok(self
            .allocations()?
            .into_iter()
            .find(|(_, o)| o == owner)
            .map(|(addr, _)| addr))
    }

    fn last(&self) -> Option<u32> {
        fs::read_to_string(self.dir.join("last"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_distinct_addresses_and_keeps_them_per_owner() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(dir.path(), "10.1.0.0/29".parse().unwrap());
        assert_eq!(ipam.gateway(), Some("10.1.0.1".parse().unwrap()));
        let a = ipam.allocate("a").unwrap();
        let b = ipam.allocate("b").unwrap();
        assert_ne!(a, b);
        assert_eq!(ipam.allocate("a").unwrap(), a);
        assert_eq!(a, "10.1.0.2".parse::<Ipv4Addr>().unwrap());
        // 10.1.0.2 ..= 10.1.0.6 are usable: five in all.
        for owner in ["c", "d", "e"] {
            ipam.allocate(owner).unwrap();
        }
        assert!(matches!(ipam.allocate("f"), Err(Error::RangeFull { .. })));
        ipam.release("c").unwrap();
        let f = ipam.allocate("f").unwrap();
        assert_eq!(ipam.address_of("f").unwrap(), Some(f));
        let all: Vec<_> = ipam.allocations().unwrap();
        assert_eq!(all.len(), 5);
        assert!(
            all.iter()
                .all(|(addr, _)| *addr != "10.1.0.7".parse::<Ipv4Addr>().unwrap())
        );
    }

    #[test]
    fn a_released_address_is_not_reused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::new(dir.path(), "10.2.0.0/24".parse().unwrap());
        let a = ipam.allocate("a").unwrap();
        ipam.release("a").unwrap();
        let b = ipam.allocate("b").unwrap();
        assert_ne!(a, b);
    }
}
