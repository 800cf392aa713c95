//! Container logs in the CRI format kubelet reads
//! (`2016-10-06T00:17:09.669794202Z stdout F the line`): one line per record, `P` for
//! a piece of a line longer than the buffer, `F` for the piece that ends it. Files are
//! rotated by size, keeping one previous file (`<log>.1`).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Result, io};

/// Longest record body; longer lines are split into `P` records (kubelet: 16 KiB).
pub const MAX_RECORD: usize = 16 * 1024;

/// Default rotation size (kubelet's containerLogMaxSize).
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;

/// Which stream a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Appends records to a container's log, rotating it by size.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    max_bytes: u64,
    file: File,
    size: u64,
    pending: [Vec<u8>; 2],
}

impl LogWriter {
    /// Opens (appending to) the log at `path`.
    pub fn open(path: impl Into<PathBuf>, max_bytes: u64) -> Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let file = open_append(&path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path,
            max_bytes: max_bytes.max(4096),
            file,
            size,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Takes output of `stream`: whole lines become `F` records, over-long pieces `P`
    /// records; an unfinished line waits for more.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> Result<()> {
        let index = stream as usize;
        let mut buffer = std::mem::take(&mut self.pending[index]);
        buffer.extend_from_slice(data);
        let mut start = 0;
        while let Some(end) = buffer[start..].iter().position(|b| *b == b'\n') {
            let line_end = start + end;
            let mut piece_start = start;
            while line_end - piece_start > MAX_RECORD {
                self.record(stream, 'P', &buffer[piece_start..piece_start + MAX_RECORD])?;
                piece_start += MAX_RECORD;
            }
            self.record(stream, 'F', &buffer[piece_start..line_end])?;
            start = line_end + 1;
        }
        while buffer.len() - start > MAX_RECORD {
            self.record(stream, 'P', &buffer[start..start + MAX_RECORD])?;
            start += MAX_RECORD;
        }
        buffer.drain(..start);
        self.pending[index] = buffer;
        Ok(())
    }

    /// Writes what is left of an unfinished line (the stream ended).
    pub fn flush_stream(&mut self, stream: Stream) -> Result<()> {
        let rest = std::mem::take(&mut self.pending[stream as usize]);
        if !rest.is_empty() {
            self.record(stream, 'F', &rest)?;
        }
        Ok(())
    }

    fn record(&mut self, stream: Stream, tag: char, body: &[u8]) -> Result<()> {
        let time = jiff::Timestamp::now();
        let mut line = format!("{time:.9} {} {tag} ", stream.as_str()).into_bytes();
        line.extend_from_slice(body);
        line.push(b'\n');
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(&line).map_err(io(&self.path))?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        let old = rotated(&self.path);
        std::fs::rename(&self.path, &old).map_err(io(&self.path))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io(path))
}

/// The previous file of a rotated log.
pub fn rotated(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".1");
    PathBuf::from(name)
}

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its timestamp as written (RFC 3339 with nanoseconds).
    pub time: String,
    /// stdout or stderr.
    pub stream: Stream,
    /// Whether it ends a line (`F`) or is a piece of one (`P`).
    pub full: bool,
    /// The text, without the newline.
    pub body: Vec<u8>,
}

/// Parses one line of a CRI log; `None` for a malformed line.
pub fn parse_line(line: &[u8]) -> Option<Record> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.to_string();
    let stream = match parts.next()? {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    let mut body = parts.next().unwrap_or_default().to_vec();
    if body.last() == Some(&b'\n') {
        body.pop();
    }
    Some(Record {
        time,
        stream,
        full,
        body,
    })
}

/// How to read a log (the options of `kubectl logs`).
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Keep reading until the container stops.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Prefix each line with its timestamp.
    pub timestamps: bool,
    /// Only lines written at or after this time (`sinceSeconds`, `sinceTime`).
    pub since: Option<jiff::Timestamp>,
}

/// Writes the lines of the log at `path` (and its rotated predecessor) to `out`. With
/// `follow`, keeps reading until `running()` is false and everything is written,
/// following rotations.
pub fn read(
    path: &Path,
    options: &ReadOptions,
    out: &mut dyn Write,
    running: &mut dyn FnMut() -> bool,
) -> Result<()> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut partial: Vec<u8> = Vec::new();
    // Whether the line under way began before `since` (its pieces are dropped).
    let mut early = false;
    let mut emit = |record: Record, lines: &mut Vec<Vec<u8>>| {
        if partial.is_empty() && !early {
            early = options.since.is_some_and(|since| {
                record
                    .time
                    .parse::<jiff::Timestamp>()
                    .is_ok_and(|t| t < since)
            });
            if !early && options.timestamps {
                partial.extend_from_slice(record.time.as_bytes());
                partial.push(b' ');
            }
        }
        if early {
            early = !record.full;
            return;
        }
        partial.extend_from_slice(&record.body);
        if record.full {
            partial.push(b'\n');
            lines.push(std::mem::take(&mut partial));
        }
    };
    let old = rotated(path);
    if let Ok(file) = File::open(&old) {
        for line in BufReader::new(file).split(b'\n').map_while(|l| l.ok()) {
            if let Some(record) = parse_line(&line) {
                emit(record, &mut lines);
            }
        }
    }
    let mut file = match File::open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(path)(e)),
    };
    let mut offset = 0u64;
    let mut carry: Vec<u8> = Vec::new();
    if let Some(f) = file.as_mut() {
        offset = read_new(f, offset, &mut carry, &mut |line| {
            if let Some(record) = parse_line(line) {
                emit(record, &mut lines);
            }
        })
        .map_err(io(path))?;
    }
    let skip = options.tail.map_or(0, |n| lines.len().saturating_sub(n));
    for line in &lines[skip..] {
        out.write_all(line).map_err(io(path))?;
    }
    out.flush().map_err(io(path))?;
    if !options.follow {
        return Ok(());
    }
    loop {
        let alive = running();
        let mut fresh = Vec::new();
        // A rotation replaces the file: finish the old one, then start the new.
        let replaced = match (std::fs::metadata(path), file.as_ref()) {
            (Ok(now), Some(f)) => f
                .metadata()
                .map(|m| !same_file(&m, &now) || now.len() < offset)
                .unwrap_or(true),
            (Ok(_), None) => true,
            (Err(_), _) => false,
        };
        if let Some(f) = file.as_mut() {
            offset = read_new(f, offset, &mut carry, &mut |line| {
                if let Some(record) = parse_line(line) {
                    emit(record, &mut fresh);
                }
            })
            .map_err(io(path))?;
        }
        if replaced {
            file = File::open(path).ok();
            offset = 0;
            carry.clear();
        }
        for line in &fresh {
            out.write_all(line).map_err(io(path))?;
        }
        out.flush().map_err(io(path))?;
        if !alive && !replaced && fresh.is_empty() {
            return Ok(());
        }
        if fresh.is_empty() {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.ino() == b.ino() && a.dev() == b.dev()
}

/// Reads whole lines from `offset` on; keeps an unfinished last line in `carry`.
fn read_new(
    file: &mut File,
    offset: u64,
    carry: &mut Vec<u8>,
    each: &mut dyn FnMut(&[u8]),
) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(offset))?;
    let mut data = Vec::new();
    let read = file.read_to_end(&mut data)?;
    carry.extend_from_slice(&data);
    let mut start = 0;
    while let Some(end) = carry[start..].iter().position(|b| *b == b'\n') {
        each(&carry[start..start + end]);
        start += end + 1;
    }
    carry.drain(..start);
    Ok(offset + read as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &Path, options: &ReadOptions) -> String {
        let mut out = Vec::new();
        read(path, options, &mut out, &mut || false).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lines_become_cri_records_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::open(&path, DEFAULT_MAX_BYTES).unwrap();
        w.write(Stream::Stdout, b"hello\nwor").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"ld\n").unwrap();
        w.write(Stream::Stdout, b"no newline").unwrap();
        w.flush_stream(Stream::Stdout).unwrap();
        let raw = std::fs::read_to_string(&path).unwrap();
        let records: Vec<_> = raw
            .lines()
            .map(|l| parse_line(l.as_bytes()).unwrap())
            .collect();
        assert_eq!(records.len(), 4);
        assert_eq!(records[1].stream, Stream::Stderr);
        assert!(
            records[0].time.ends_with('Z') && records[0].time.len() == 30,
            "{}",
            records[0].time
        );
        assert_eq!(
            read_all(&path, &ReadOptions::default()),
            "hello\noops\nworld\nno newline\n"
        );
        let tail = ReadOptions {
            tail: Some(2),
            ..Default::default()
        };
        assert_eq!(read_all(&path, &tail), "world\nno newline\n");
    }

    #[test]
    fn since_drops_the_lines_begun_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        std::fs::write(
            &path,
            "2026-12-04T10:00:00.000000000Z stdout F old\n\
             2026-12-04T10:00:01.000000000Z stdout P old \n\
             2026-12-04T10:00:05.000000000Z stdout F piece\n\
             2026-12-04T10:00:05.000000000Z stderr F new\n\
             2026-12-04T10:00:06.000000000Z stdout P newer \n\
             2026-12-04T10:00:07.000000000Z stdout F piece\n",
        )
        .unwrap();
        let since = |t: &str| ReadOptions {
            since: Some(t.parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(
            read_all(&path, &since("2026-12-04T10:00:02Z")),
            "new\nnewer piece\n"
        );
        assert_eq!(read_all(&path, &since("2026-12-04T10:00:07Z")), "");
        assert_eq!(
            read_all(&path, &since("2026-12-04T09:00:00Z"))
                .lines()
                .count(),
            4
        );
    }

    #[test]
    fn long_lines_are_split_into_partial_records_and_joined_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::open(&path, DEFAULT_MAX_BYTES).unwrap();
        let long = "x".repeat(MAX_RECORD * 2 + 10);
        w.write(Stream::Stdout, format!("{long}\n").as_bytes())
            .unwrap();
        let raw = std::fs::read_to_string(&path).unwrap();
        let tags: Vec<_> = raw.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
        assert_eq!(tags, ["P", "P", "F"]);
        assert_eq!(
            read_all(&path, &ReadOptions::default()),
            format!("{long}\n")
        );
    }

    #[test]
    fn rotation_keeps_the_previous_file_and_reading_spans_both() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::open(&path, 4096).unwrap();
        for i in 0..200 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(rotated(&path).exists());
        assert!(std::fs::metadata(&path).unwrap().len() <= 4096);
        let text = read_all(&path, &ReadOptions::default());
        assert!(text.ends_with("line 199\n"));
        let first = text.lines().next().unwrap();
        assert!(first.starts_with("line "));
    }

    #[test]
    fn follow_reads_until_the_container_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut w = LogWriter::open(&path, DEFAULT_MAX_BYTES).unwrap();
        w.write(Stream::Stdout, b"one\n").unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            w.write(Stream::Stdout, b"two\n").unwrap();
        });
        let start = std::time::Instant::now();
        let mut out = Vec::new();
        let options = ReadOptions {
            follow: true,
            timestamps: true,
            ..Default::default()
        };
        read(&path, &options, &mut out, &mut || {
            start.elapsed() < Duration::from_millis(600)
        })
        .unwrap();
        writer.join().unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[1].ends_with(" two") && lines[1].contains('T'));
    }
}
