//! SPDY/3.1 frames on the wire and their compressed header blocks.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{MAX_CONTROL_FRAME, MAX_DATA_FRAME, MAX_HEADER_BLOCK, dictionary};

/// The protocol version of every control frame.
const VERSION: u16 = 3;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

const FLAG_FIN: u8 = 0x01;

/// A frame, read or to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A stream opened, with its headers.
    SynStream {
        stream: u32,
        headers: Vec<(String, String)>,
        fin: bool,
    },
    /// A stream accepted.
    SynReply {
        stream: u32,
        headers: Vec<(String, String)>,
        fin: bool,
    },
    /// A stream ended abnormally.
    RstStream { stream: u32, status: u32 },
    /// A ping, answered with the same id.
    Ping { id: u32 },
    /// The connection ends.
    GoAway { last_stream: u32, status: u32 },
    /// More headers of a stream.
    Headers {
        stream: u32,
        headers: Vec<(String, String)>,
        fin: bool,
    },
    /// Data of a stream.
    Data { stream: u32, fin: bool, data: Bytes },
    /// A frame read and ignored (`SETTINGS`, `WINDOW_UPDATE`, unknown types).
    Ignored,
}

/// A header block that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("bad header block: {0}")]
pub struct HeaderError(pub String);

/// Why a frame could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(std::io::Error),
    Protocol(String),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}

impl From<HeaderError> for ReadError {
    fn from(e: HeaderError) -> Self {
        ReadError::Protocol(e.to_string())
    }
}

/// The compression context of header blocks read.
pub struct Inflater(Decompress);

impl Inflater {
    pub fn new() -> Self {
        Inflater(Decompress::new(true))
    }

    /// Inflates one header block (the stream goes on across blocks).
    fn inflate(&mut self, mut input: &[u8]) -> Result<Vec<u8>, HeaderError> {
        let mut out = Vec::with_capacity(input.len().saturating_mul(4).min(MAX_HEADER_BLOCK));
        loop {
            if out.len() == out.capacity() {
                if out.len() > MAX_HEADER_BLOCK {
                    return Err(HeaderError(format!(
                        "more than {MAX_HEADER_BLOCK} bytes inflated"
                    )));
                }
                // Double, from 256 bytes, up to one byte past the bound (a block of
                // exactly the bound leaves room to spare, so it is known to be whole).
                let room = MAX_HEADER_BLOCK + 1 - out.len();
                out.reserve_exact(out.len().max(256).min(room));
            }
            let (before, produced) = (self.0.total_in(), out.len());
            let result = self
                .0
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let used = usize::try_from(self.0.total_in() - before).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            if used == 0 && out.len() == produced && out.len() < out.capacity() && result.is_ok() {
                // Nothing more will come of this block.
                return Ok(out);
            }
            match result {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) if input.is_empty() && out.len() < out.capacity() => return Ok(out),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(&dictionary::bytes())
                        .map_err(|e| HeaderError(e.to_string()))?;
                }
                Err(e) => return Err(HeaderError(e.to_string())),
            }
        }
    }
}

/// The compression context of header blocks written.
pub struct Deflater(Compress);

impl Deflater {
    pub fn new() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        // The dictionary of the draft: peers may count on it (spdystream reads
        // either way).
        let _ = c.set_dictionary(&dictionary::bytes());
        Deflater(c)
    }

    fn deflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        let mut input = input;
        loop {
            out.reserve(input.len() + 64);
            let before = self.0.total_in();
            self.0
                .compress_vec(input, out, FlushCompress::Sync)
                .map_err(std::io::Error::other)?;
            let used = usize::try_from(self.0.total_in() - before).unwrap_or(input.len());
            input = &input[used.min(input.len())..];
            // Done once all is in and the flush left room to spare.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
        }
    }
}

/// A header block, uncompressed: a count, then each name and value with its length.
fn encode_headers(headers: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, value) in headers {
        for s in [name.to_ascii_lowercase().as_str(), value.as_str()] {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

fn decode_headers(block: &[u8]) -> Result<Vec<(String, String)>, HeaderError> {
    let mut rest = block;
    let mut take = |n: usize| -> Result<&[u8], HeaderError> {
        if rest.len() < n {
            return Err(HeaderError("truncated".into()));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let count = u32_at(take(4)?);
    // Each pair needs at least 8 bytes: a count beyond that is a lie.
    if count as usize > block.len() / 8 {
        return Err(HeaderError(format!(
            "{count} headers in {} bytes",
            block.len()
        )));
    }
    let mut headers = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut text = || -> Result<String, HeaderError> {
            let n = u32_at(take(4)?) as usize;
            String::from_utf8(take(n)?.to_vec()).map_err(|_| HeaderError("not UTF-8".into()))
        };
        let name = text()?;
        let value = text()?;
        if name.is_empty() {
            return Err(HeaderError("an empty header name".into()));
        }
        headers.push((name, value));
    }
    Ok(headers)
}

fn u32_at(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn stream_id(b: &[u8]) -> u32 {
    u32_at(b) & 0x7fff_ffff
}

fn control(out: &mut Vec<u8>, kind: u16, flags: u8, body: &[u8]) {
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(body);
}

impl Frame {
    /// Appends the frame's bytes to `out`, compressing headers with `deflate`.
    pub fn encode(&self, deflate: &mut Deflater, out: &mut Vec<u8>) -> std::io::Result<()> {
        let fin = |f: bool| if f { FLAG_FIN } else { 0 };
        match self {
            Frame::SynStream {
                stream,
                headers,
                fin: f,
            } => {
                let mut body = stream.to_be_bytes().to_vec();
                body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
                deflate.deflate(&encode_headers(headers), &mut body)?;
                control(out, SYN_STREAM, fin(*f), &body);
            }
            Frame::SynReply {
                stream,
                headers,
                fin: f,
            }
            | Frame::Headers {
                stream,
                headers,
                fin: f,
            } => {
                let kind = match self {
                    Frame::SynReply { .. } => SYN_REPLY,
                    _ => HEADERS,
                };
                let mut body = stream.to_be_bytes().to_vec();
                deflate.deflate(&encode_headers(headers), &mut body)?;
                control(out, kind, fin(*f), &body);
            }
            Frame::RstStream { stream, status } => {
                let mut body = stream.to_be_bytes().to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                control(out, RST_STREAM, 0, &body);
            }
            Frame::Ping { id } => control(out, PING, 0, &id.to_be_bytes()),
            Frame::GoAway {
                last_stream,
                status,
            } => {
                let mut body = last_stream.to_be_bytes().to_vec();
                body.extend_from_slice(&status.to_be_bytes());
                control(out, GOAWAY, 0, &body);
            }
            Frame::Data {
                stream,
                fin: f,
                data,
            } => {
                out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
                out.push(fin(*f));
                out.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
                out.extend_from_slice(data);
            }
            Frame::Ignored => {}
        }
        Ok(())
    }
}

/// Reads the next frame, or `None` at the end of the connection (between frames).
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    inflate: &mut Inflater,
) -> Result<Option<Frame>, ReadError> {
    let mut head = [0u8; 8];
    match reader.read_exact(&mut head[..1]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    reader.read_exact(&mut head[1..]).await?;
    let flags = head[4];
    let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let fin = flags & FLAG_FIN != 0;
    if head[0] & 0x80 == 0 {
        if length > MAX_DATA_FRAME {
            return Err(ReadError::Protocol(format!(
                "a data frame of {length} bytes (at most {MAX_DATA_FRAME})"
            )));
        }
        let mut data = vec![0u8; length];
        reader.read_exact(&mut data).await?;
        return Ok(Some(Frame::Data {
            stream: stream_id(&head[..4]),
            fin,
            data: data.into(),
        }));
    }
    let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
    if version != VERSION {
        return Err(ReadError::Protocol(format!(
            "SPDY version {version}, not 3"
        )));
    }
    if length > MAX_CONTROL_FRAME {
        return Err(ReadError::Protocol(format!(
            "a control frame of {length} bytes (at most {MAX_CONTROL_FRAME})"
        )));
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await?;
    let need = |n: usize| {
        if body.len() < n {
            Err(ReadError::Protocol(format!(
                "a control frame of type {} too short ({} bytes)",
                u16::from_be_bytes([head[2], head[3]]),
                body.len()
            )))
        } else {
            Ok(())
        }
    };
    let frame = match u16::from_be_bytes([head[2], head[3]]) {
        SYN_STREAM => {
            need(10)?;
            Frame::SynStream {
                stream: stream_id(&body[..4]),
                headers: decode_headers(&inflate.inflate(&body[10..])?)?,
                fin,
            }
        }
        kind @ (SYN_REPLY | HEADERS) => {
            need(4)?;
            let stream = stream_id(&body[..4]);
            let headers = decode_headers(&inflate.inflate(&body[4..])?)?;
            if kind == SYN_REPLY {
                Frame::SynReply {
                    stream,
                    headers,
                    fin,
                }
            } else {
                Frame::Headers {
                    stream,
                    headers,
                    fin,
                }
            }
        }
        RST_STREAM => {
            need(8)?;
            Frame::RstStream {
                stream: stream_id(&body[..4]),
                status: u32_at(&body[4..8]),
            }
        }
        PING => {
            need(4)?;
            Frame::Ping {
                id: u32_at(&body[..4]),
            }
        }
        GOAWAY => {
            need(4)?;
            Frame::GoAway {
                last_stream: stream_id(&body[..4]),
                status: if body.len() >= 8 {
                    u32_at(&body[4..8])
                } else {
                    0
                },
            }
        }
        SETTINGS | WINDOW_UPDATE => Frame::Ignored,
        _ => Frame::Ignored,
    };
    Ok(Some(frame))
}

#[cfg(test)]
pub(super) fn roundtrip_headers(
    headers: &[(String, String)],
    deflate: &mut Deflater,
    inflate: &mut Inflater,
) -> Vec<(String, String)> {
    let mut block = Vec::new();
    deflate
        .deflate(&encode_headers(headers), &mut block)
        .expect("deflate");
    decode_headers(&inflate.inflate(&block).expect("inflate")).expect("decode")
}
