//! Pipes, FIFOs and terminals the runtime hands out (exec'd processes' stdio, attach
//! sessions), read and written from async code without a thread each: the
//! descriptor is made non-blocking and polled by tokio's reactor.
//!
//! tokio's own pipe types take FIFOs only, not a terminal's master end; its
//! `AsyncFd` registration is `unsafe` (it trusts the caller to keep the descriptor
//! open and unchanged), which this crate may use and its callers may not: the one
//! [`NonBlocking`] owns its descriptor, so the promise holds.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use tokio::io::unix::AsyncFd;

/// A non-blocking descriptor polled by tokio (a pipe, FIFO or terminal; not a
/// regular file).
#[derive(Debug)]
pub struct NonBlocking {
    fd: AsyncFd<File>,
}

impl NonBlocking {
    /// Makes `fd` non-blocking (which holds for every descriptor of its open file)
    /// and registers it with the current tokio runtime; fails outside one, or for a
    /// descriptor epoll cannot watch.
    pub fn new(fd: impl Into<OwnedFd>) -> std::io::Result<Self> {
        let file = File::from(fd.into());
        let flags = fcntl(file.as_raw_fd(), FcntlArg::F_GETFL)?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(file.as_raw_fd(), FcntlArg::F_SETFL(flags))?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(std::io::Error::other(
                "no tokio runtime to poll the descriptor",
            ));
        }
        #[allow(unsafe_code)]
        // SAFETY: the File is owned by the AsyncFd from here until it is dropped, and
        // nothing replaces or closes its descriptor meanwhile (no `get_mut` is used).
        let fd = unsafe { AsyncFd::register(file) }.map_err(std::io::Error::from)?;
        Ok(NonBlocking { fd })
    }

    /// Reads what is there, waiting until something is; 0 at end-of-file.
    pub async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut ready = self.fd.readable().await?;
            match ready.try_io(|f| f.get_ref().read(buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes some of `buf`, waiting until something can be.
    pub async fn write(&self, buf: &[u8]) -> std::io::Result<usize> {
        loop {
            let mut ready = self.fd.writable().await?;
            match ready.try_io(|f| f.get_ref().write(buf)) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `buf`, waiting as needed.
    pub async fn write_all(&self, mut buf: &[u8]) -> std::io::Result<()> {
        while !buf.is_empty() {
            match self.write(buf).await? {
                0 => return Err(std::io::ErrorKind::WriteZero.into()),
                n => buf = &buf[n..],
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pipes_are_read_and_written_without_blocking_a_thread() {
        let (r, w) = std::io::pipe().unwrap();
        let (r, w) = (NonBlocking::new(r).unwrap(), NonBlocking::new(w).unwrap());
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match r.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        // More than a pipe holds: the writer waits for the reader.
        let data = vec![7u8; 256 * 1024];
        w.write_all(&data).await.unwrap();
        drop(w);
        assert_eq!(reader.await.unwrap(), data);
    }

    #[test]
    fn outside_a_runtime_it_is_refused_not_a_panic() {
        let (r, _w) = std::io::pipe().unwrap();
        assert!(NonBlocking::new(r).is_err());
    }
}
