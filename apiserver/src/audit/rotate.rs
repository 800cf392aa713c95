//! The audit log file and its rotation, as kube-apiserver's (`lumberjack`) does it:
//! when a line would take the file past its maximum size, the file is renamed
//! `NAME-<UTC time>.EXT` (`audit-2026-11-02T10-00-00.123.log`) and a new one begun;
//! then the oldest backups beyond `maxbackup`, and those older than `maxage` days, are
//! removed. Files are created mode 0600 (they may hold secrets) in directories of
//! mode 0700.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

use super::log::LineWriter;

/// A mebibyte, the unit of `--audit-log-maxsize` (lumberjack's megabyte).
pub const MIB: u64 = 1 << 20;

/// When the log is rotated and which backups are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes beyond which the file is rotated.
    pub max_size: u64,
    /// Backups kept, newest first (0: all).
    pub max_backups: usize,
    /// Backups older than this are removed (`None`: none for their age).
    pub max_age: Option<Duration>,
}

impl Rotation {
    /// kube-apiserver's flags: `--audit-log-maxsize` in MiB (0 is lumberjack's
    /// default, 100), `--audit-log-maxbackup` (0: keep all), `--audit-log-maxage` in
    /// days (0: no limit).
    pub fn from_flags(max_size_mib: u64, max_backups: usize, max_age_days: u64) -> Self {
        let mib = if max_size_mib == 0 { 100 } else { max_size_mib };
        Rotation {
            max_size: mib.saturating_mul(MIB),
            max_backups,
            max_age: (max_age_days > 0).then(|| Duration::from_secs(max_age_days * 86_400)),
        }
    }
}

/// The clock backups are named by.
type Clock = Box<dyn Fn() -> Timestamp + Send>;

/// An append-only log file that rotates itself.
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    out: Option<BufWriter<File>>,
    size: u64,
    clock: Clock,
}

impl std::fmt::Debug for RotatingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatingFile")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Opens `path` for appending (mode 0600), its directory made (mode 0700) if missing.
fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The file's name split as backups are named: `audit` and `.log` of `audit.log`.
fn stem_and_extension(path: &Path) -> (String, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match name.rfind('.').filter(|at| *at > 0) {
        Some(at) => (name[..at].to_string(), name[at..].to_string()),
        None => (name, String::new()),
    }
}

/// lumberjack's backup time format: `2006-01-02T15-04-05.000`, in UTC.
fn backup_time(t: Timestamp) -> String {
    let text = format!("{t:.3}");
    text.trim_end_matches('Z').replace(':', "-")
}

/// The time in a backup's name.
fn parse_backup_time(text: &str) -> Option<Timestamp> {
    let (date, time) = text.split_once('T')?;
    format!("{date}T{}Z", time.replacen('-', ":", 2))
        .parse()
        .ok()
}

impl RotatingFile {
    /// Opens (or creates) the log at `path`.
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        Self::with_clock(path, rotation, Box::new(Timestamp::now))
    }

    /// As [`RotatingFile::open`], naming backups by `clock`.
    pub fn with_clock(path: &Path, rotation: Rotation, clock: Clock) -> io::Result<Self> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            rotation,
            out: Some(BufWriter::new(file)),
            size,
            clock,
        })
    }

    /// The backups of this log, newest first, with their times.
    fn backups(&self) -> io::Result<Vec<(Timestamp, PathBuf)>> {
        let (stem, ext) = stem_and_extension(&self.path);
        let prefix = format!("{stem}-");
        let dir = match self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(d) => d.to_path_buf(),
            None => PathBuf::from("."),
        };
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let time = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(&ext))
                .and_then(parse_backup_time);
            if let Some(time) = time {
                found.push((time, entry.path()));
            }
        }
        found.sort_by_key(|b| std::cmp::Reverse(b.0));
        Ok(found)
    }

    /// Renames the file to a backup, begins a new one, and removes the backups beyond
    /// the limits.
    fn rotate(&mut self) -> io::Result<()> {
        if let Some(mut out) = self.out.take() {
            out.flush()?;
        }
        let (stem, ext) = stem_and_extension(&self.path);
        let mut now = (self.clock)();
        let backup = loop {
            let candidate = self
                .path
                .with_file_name(format!("{stem}-{}{ext}", backup_time(now)));
            // Two rotations within a millisecond: the next millisecond's name.
            if !candidate.exists() {
                break candidate;
            }
            now = now
                .checked_add(jiff::SignedDuration::from_millis(1))
                .map_err(io::Error::other)?;
        };
        std::fs::rename(&self.path, &backup)?;
        self.out = Some(BufWriter::new(open_append(&self.path)?));
        self.size = 0;
        self.remove_old(now)
    }

    /// Removes backups beyond `max_backups` and older than `max_age`.
    fn remove_old(&self, now: Timestamp) -> io::Result<()> {
        let backups = self.backups()?;
        let cutoff = self
            .rotation
            .max_age
            .and_then(|age| jiff::SignedDuration::try_from(age).ok())
            .and_then(|age| now.checked_sub(age).ok());
        for (i, (time, path)) in backups.iter().enumerate() {
            let too_many = self.rotation.max_backups > 0 && i >= self.rotation.max_backups;
            let too_old = cutoff.is_some_and(|c| *time < c);
            if too_many || too_old {
                std::fs::remove_file(path)?;
            }
        }
        Ok(())
    }
}

impl LineWriter for RotatingFile {
    fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.rotation.max_size {
            self.rotate()?;
        }
        // After a failed write the file is opened again (it may have been removed).
        let out = match &mut self.out {
            Some(out) => out,
            None => {
                let file = open_append(&self.path)?;
                self.size = file.metadata()?.len();
                self.out.insert(BufWriter::new(file))
            }
        };
        if let Err(e) = out.write_all(line) {
            self.out = None;
            return Err(e);
        }
        self.size = self.size.saturating_add(len);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A clock that moves one second each time it is read.
    fn ticking(start: &str) -> (Clock, Arc<Mutex<Timestamp>>) {
        let now = Arc::new(Mutex::new(start.parse::<Timestamp>().unwrap()));
        let shared = now.clone();
        let clock = Box::new(move || {
            let mut t = shared.lock().unwrap();
            *t = t.checked_add(jiff::SignedDuration::from_secs(1)).unwrap();
            *t
        });
        (clock, now)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn flags_are_read_as_kube_apiserver_reads_them() {
        let r = Rotation::from_flags(0, 0, 0);
        assert_eq!((r.max_size, r.max_backups, r.max_age), (100 * MIB, 0, None));
        let r = Rotation::from_flags(5, 3, 2);
        assert_eq!(r.max_size, 5 * MIB);
        assert_eq!(r.max_age, Some(Duration::from_secs(2 * 86_400)));
    }

    #[test]
    fn backups_are_named_by_their_utc_time_and_read_back() {
        let t: Timestamp = "2026-11-02T10:04:05.123456Z".parse().unwrap();
        assert_eq!(backup_time(t), "2026-11-02T10-04-05.123");
        assert_eq!(
            parse_backup_time("2026-11-02T10-04-05.123"),
            Some("2026-11-02T10:04:05.123Z".parse().unwrap())
        );
        assert_eq!(parse_backup_time("junk"), None);
        assert_eq!(
            stem_and_extension(Path::new("/var/log/audit.log")),
            ("audit".into(), ".log".into())
        );
        assert_eq!(
            stem_and_extension(Path::new("audit")),
            ("audit".into(), String::new())
        );
    }

    #[test]
    fn the_file_rotates_past_its_size_and_keeps_max_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.log");
        let rotation = Rotation {
            max_size: 100,
            max_backups: 2,
            max_age: None,
        };
        let (clock, _) = ticking("2026-11-02T10:00:00Z");
        let mut log = RotatingFile::with_clock(&path, rotation, clock).unwrap();
        let line = [b'x'; 39];
        let mut line = line.to_vec();
        line.push(b'\n');
        // Two lines fit (80 bytes); a third begins a new file: 7 rotations.
        for _ in 0..15 {
            log.write_line(&line).unwrap();
        }
        log.flush().unwrap();
        assert_eq!(
            names(&dir.path().join("logs")),
            [
                "audit-2026-11-02T10-00-06.000.log",
                "audit-2026-11-02T10-00-07.000.log",
                "audit.log"
            ]
        );
        assert_eq!(std::fs::read(&path).unwrap().len(), 40);
        let backup = dir.path().join("logs/audit-2026-11-02T10-00-07.000.log");
        assert_eq!(std::fs::read(&backup).unwrap().len(), 80);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&backup), 0o600);
        assert_eq!(mode(&dir.path().join("logs")), 0o700);
    }

    #[test]
    fn an_existing_file_is_appended_to_and_old_backups_age_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, b"earlier\n").unwrap();
        // A backup from long ago, and a file that only looks like one.
        std::fs::write(dir.path().join("audit-2020-01-01T00-00-00.000.log"), b"old").unwrap();
        std::fs::write(dir.path().join("audit-notes.log"), b"mine").unwrap();
        let rotation = Rotation {
            max_size: 20,
            max_backups: 0,
            max_age: Some(Duration::from_secs(86_400)),
        };
        let (clock, _) = ticking("2026-11-02T10:00:00Z");
        let mut log = RotatingFile::with_clock(&path, rotation, clock).unwrap();
        log.write_line(b"0123456789\n").unwrap();
        log.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"earlier\n0123456789\n");
        log.write_line(b"next\n").unwrap();
        log.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"next\n");
        assert_eq!(
            names(dir.path()),
            [
                "audit-2026-11-02T10-00-01.000.log",
                "audit-notes.log",
                "audit.log"
            ]
        );
    }

    #[test]
    fn a_line_larger_than_the_limit_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit");
        let rotation = Rotation {
            max_size: 4,
            max_backups: 0,
            max_age: None,
        };
        let (clock, _) = ticking("2026-11-02T10:00:00Z");
        let mut log = RotatingFile::with_clock(&path, rotation, clock).unwrap();
        log.write_line(b"long line\n").unwrap();
        log.write_line(b"another\n").unwrap();
        log.flush().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"another\n");
        assert_eq!(
            names(dir.path()),
            ["audit", "audit-2026-11-02T10-00-01.000"]
        );
    }
}
