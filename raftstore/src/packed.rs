//! Values as the key space holds them in memory: compressed with zstd against a
//! dictionary learned from the values written beside them.
//!
//! The store keeps every current value, and the history not yet compacted, in memory
//! (etcd keeps them in bbolt, on disk). The values of one directory (a key up to its
//! last `/`: `/registry/pods/default/`) are much alike: the same field names, the same
//! defaults, the same managers in the same managed fields. Alone, a 3 KB pod compresses
//! about 3×; against another pod of its directory, 20–30×. So each directory keeps a
//! dictionary: a value written there before, used as raw content (zstd finds the runs
//! they share). The first value of at least [`DICT_MIN`] bytes becomes it; a later one
//! that compresses less than [`RENEW_RATIO`]× against it replaces it, at most once in
//! [`RENEW_EVERY`] writes to the directory (a pod written by its node looks unlike the
//! pod as created). A value keeps the dictionary it was compressed against alive.
//!
//! Only memory changes: Raft entries, snapshots, backups, watch events and every read
//! hold the values as written. Each thread that reads keeps its own zstd contexts.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use zstd::zstd_safe::{CCtx, DCtx, get_error_name};

use crate::error::{Error, Result};

/// Values shorter than this are kept as written.
const PACK_MIN: usize = 64;
/// The shortest value that becomes a dictionary.
const DICT_MIN: usize = 256;
/// A dictionary holds at most the first this many bytes of its value.
const DICT_MAX: usize = 16 << 10;
/// A value that compresses less than this much against its directory's dictionary
/// makes it the next one ...
const RENEW_RATIO: usize = 8;
/// ... once this many writes have gone to the directory since the last one was made.
const RENEW_EVERY: u32 = 256;
/// zstd's fastest level: the write path pays for every compression.
const LEVEL: i32 = 1;
/// The first bytes of a zstd dictionary in its own format (a value starting so would
/// be read as one, not as raw content).
const DICT_MAGIC: [u8; 4] = [0x37, 0xA4, 0x30, 0xEC];

thread_local! {
    static COMPRESSOR: RefCell<Option<CCtx<'static>>> = RefCell::new(CCtx::try_create());
    static DECOMPRESSOR: RefCell<Option<DCtx<'static>>> = RefCell::new(DCtx::try_create());
}

/// A dictionary: the raw content values are compressed against.
pub(crate) struct Dictionary(Box<[u8]>);

/// A value as held: as written, or compressed.
#[derive(Clone)]
pub(crate) enum Packed {
    /// As written (short, or it did not compress).
    Plain(Bytes),
    /// Compressed, `len` bytes once decompressed, against `dict` if any.
    Zstd {
        /// The compressed frame.
        data: Box<[u8]>,
        /// The value's length.
        len: u32,
        /// The dictionary it was compressed against.
        dict: Option<Arc<Dictionary>>,
    },
}

impl fmt::Debug for Packed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Packed::Plain(v) => write!(f, "Plain({} bytes)", v.len()),
            Packed::Zstd { data, len, .. } => write!(f, "Zstd({} of {len} bytes)", data.len()),
        }
    }
}

/// Equal when they hold the same value, however compressed.
impl PartialEq for Packed {
    fn eq(&self, other: &Self) -> bool {
        matches!((self.value(), other.value()), (Ok(a), Ok(b)) if a == b)
    }
}

impl Eq for Packed {}

impl Packed {
    /// The value as written.
    pub(crate) fn value(&self) -> Result<Bytes> {
        let (data, len, dict) = match self {
            Packed::Plain(v) => return Ok(v.clone()),
            Packed::Zstd { data, len, dict } => (data, *len as usize, dict),
        };
        let mut out = Vec::with_capacity(len);
        let done = DECOMPRESSOR.with(|d| {
            let mut d = d.borrow_mut();
            let d = d.as_mut().ok_or("no zstd context")?;
            match dict {
                Some(dict) => d.decompress_using_dict(&mut out, data, &dict.0),
                None => d.decompress(&mut out, data),
            }
            .map_err(get_error_name)
        });
        match done {
            Ok(n) if n == len => Ok(Bytes::from(out)),
            Ok(n) => Err(Error::Decode(format!(
                "a value held in memory decompressed to {n} bytes, not {len}"
            ))),
            Err(e) => Err(Error::Decode(format!(
                "a value held in memory did not decompress: {e}"
            ))),
        }
    }

    /// The value's length as written.
    pub(crate) fn len(&self) -> usize {
        match self {
            Packed::Plain(v) => v.len(),
            Packed::Zstd { len, .. } => *len as usize,
        }
    }

    /// The bytes it holds (a shared dictionary not counted).
    pub(crate) fn held(&self) -> usize {
        match self {
            Packed::Plain(v) => v.len(),
            Packed::Zstd { data, .. } => data.len(),
        }
    }
}

/// One directory's dictionary, and the writes since it was made.
#[derive(Clone)]
struct Directory {
    dict: Arc<Dictionary>,
    writes: u32,
}

/// Compresses values, each against its directory's dictionary.
#[derive(Clone, Default)]
pub(crate) struct Packer {
    dirs: HashMap<Box<[u8]>, Directory>,
}

impl fmt::Debug for Packer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Packer({} dictionaries)", self.dirs.len())
    }
}

/// `key` up to and including its last `/` (empty if it has none).
fn directory(key: &[u8]) -> &[u8] {
    let end = key.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
    &key[..end]
}

impl Packer {
    /// `value`, written at `key`, as it is to be held.
    pub(crate) fn pack(&mut self, key: &[u8], value: &Bytes) -> Packed {
        if value.len() < PACK_MIN || u32::try_from(value.len()).is_err() {
            return Packed::Plain(value.clone());
        }
        let dir = directory(key);
        let Some(d) = self.dirs.get_mut(dir) else {
            // The directory's first value long enough becomes its dictionary.
            return compress(value, self.new_dictionary(dir, value));
        };
        d.writes = d.writes.saturating_add(1);
        let packed = compress(value, Some(d));
        let renew = packed.held() * RENEW_RATIO > value.len() && d.writes >= RENEW_EVERY;
        match renew.then(|| self.new_dictionary(dir, value)).flatten() {
            Some(d) => compress(value, Some(d)),
            None => packed,
        }
    }

    /// Makes `value` the dictionary of `dir`, if it can be one.
    fn new_dictionary(&mut self, dir: &[u8], value: &[u8]) -> Option<&Directory> {
        if value.len() < DICT_MIN || value.starts_with(&DICT_MAGIC) {
            return None;
        }
        let d = Directory {
            dict: Arc::new(Dictionary(value[..value.len().min(DICT_MAX)].into())),
            writes: 0,
        };
        self.dirs.insert(dir.into(), d);
        self.dirs.get(dir)
    }

    /// Forgets the dictionaries of directories that hold no key any more (the values
    /// compressed against one keep it).
    pub(crate) fn retain_directories<'a>(&mut self, keys: impl Iterator<Item = &'a [u8]>) {
        let live: HashSet<&[u8]> = keys.map(directory).collect();
        self.dirs.retain(|dir, _| live.contains(&dir[..]));
    }

    /// How many directories have a dictionary.
    #[cfg(test)]
    pub(crate) fn dictionaries(&self) -> usize {
        self.dirs.len()
    }
}

/// `value` compressed against `dir`'s dictionary (or none), or as written if that is
/// no smaller.
fn compress(value: &Bytes, dir: Option<&Directory>) -> Packed {
    let mut out = Vec::with_capacity(value.len());
    let done = COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        let c = c.as_mut()?;
        match dir {
            Some(d) => c.compress_using_dict(&mut out, value, &d.dict.0, LEVEL),
            None => c.compress(&mut out, value, LEVEL),
        }
        .ok()
    });
    match (done, u32::try_from(value.len())) {
        (Some(n), Ok(len)) if n < value.len() => Packed::Zstd {
            data: out.into_boxed_slice(),
            len,
            dict: dir.map(|d| d.dict.clone()),
        },
        _ => Packed::Plain(value.clone()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn pod(name: &str, node: Option<&str>) -> Bytes {
        let status = match node {
            Some(n) => format!(
                r#","nodeName":"{n}"}},"status":{{"phase":"Running","conditions":[{{"type":"Ready","status":"True","lastTransitionTime":"2026-12-07T03:00:00Z"}},{{"type":"PodScheduled","status":"True","lastTransitionTime":"2026-12-07T03:00:00Z"}}],"hostIP":"10.0.0.1","podIP":"100.64.0.9"}}}}"#
            ),
            None => r#"},"status":{"phase":"Pending"}}"#.to_string(),
        };
        Bytes::from(format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","namespace":"default","uid":"1c0d2b6e-{name}","labels":{{"app":"web"}},"creationTimestamp":"2026-12-07T03:00:00Z"}},"spec":{{"containers":[{{"name":"c","image":"busybox","imagePullPolicy":"Always","terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}}],"dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler"{status}"#
        ))
    }

    #[test]
    fn values_come_back_as_written() {
        let mut p = Packer::default();
        let short = Bytes::from_static(b"10.0.0.1:2380");
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let random: Bytes = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for (key, value) in [
            (&b"/rk8s/members/1"[..], short.clone()),
            (b"/registry/pods/default/a", pod("a", None)),
            (b"/registry/pods/default/a", pod("a", Some("n1"))),
            (b"/registry/pods/default/b", pod("b", None)),
            (b"/registry/secrets/default/s", random.clone()),
            (b"no-directory", pod("x", None)),
            (b"/registry/pods/default/e", Bytes::new()),
        ] {
            let packed = p.pack(key, &value);
            assert_eq!(packed.value().unwrap(), value, "{}", packed.len());
            assert_eq!(packed.len(), value.len());
        }
        assert!(matches!(p.pack(b"/x/k", &short), Packed::Plain(_)));
        // Bytes that do not compress are held as written.
        assert!(matches!(
            p.pack(b"/registry/pods/default/r", &random),
            Packed::Plain(_)
        ));
    }

    #[test]
    fn a_value_compresses_against_its_directory() {
        let mut p = Packer::default();
        p.pack(b"/registry/pods/default/p-0", &pod("p-0", None));
        let value = pod("p-1", None);
        let packed = p.pack(b"/registry/pods/default/p-1", &value);
        assert!(
            packed.held() * 10 < value.len(),
            "{} of {}",
            packed.held(),
            value.len()
        );
        // Another directory has its own.
        let other = p.pack(b"/registry/pods/kube-system/p-1", &value);
        assert!(other.held() * 10 < value.len());
        assert_eq!(p.dictionaries(), 2);
    }

    #[test]
    fn a_dictionary_that_no_longer_fits_is_renewed_and_old_values_keep_theirs() {
        let mut p = Packer::default();
        let first = p.pack(b"/registry/pods/ns/p-0", &pod("p-0", None));
        let running = pod("p-1", Some("node-1"));
        let before = p.pack(b"/registry/pods/ns/p-1", &running);
        for i in 2..RENEW_EVERY + 2 {
            p.pack(
                b"/registry/pods/ns/q",
                &pod(&format!("q-{i}"), Some("node-2")),
            );
        }
        let after = p.pack(b"/registry/pods/ns/p-1", &running);
        assert!(after.held() * 3 < before.held(), "{after:?} {before:?}");
        assert_eq!(first.value().unwrap(), pod("p-0", None));
        assert_eq!(before.value().unwrap(), running);
    }

    #[test]
    fn directories_without_keys_forget_their_dictionaries() {
        let mut p = Packer::default();
        let kept = p.pack(b"/registry/pods/gone/p", &pod("p", None));
        p.pack(b"/registry/pods/here/p", &pod("p", None));
        p.retain_directories([&b"/registry/pods/here/p"[..]].into_iter());
        assert_eq!(p.dictionaries(), 1);
        assert_eq!(kept.value().unwrap(), pod("p", None));
    }

    #[test]
    fn values_decompress_on_other_threads() {
        let mut p = Packer::default();
        let packed = p.pack(b"/d/k", &pod("k", None));
        let back = std::thread::spawn(move || packed.value().unwrap())
            .join()
            .unwrap();
        assert_eq!(back, pod("k", None));
    }
}
