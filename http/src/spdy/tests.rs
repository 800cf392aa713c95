#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::codec::{self, Deflater, Inflater, read_frame, roundtrip_headers};
use super::*;

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_dictionary_is_the_drafts() {
    let dict = dictionary::bytes();
    assert_eq!(dict.len(), 1423);
    // Its Adler-32, as a zlib stream made with it names it.
    let mut c = flate2::Compress::new(flate2::Compression::default(), true);
    assert_eq!(c.set_dictionary(&dict).unwrap(), 0xe3c6_a7c2);
}

#[test]
fn header_blocks_share_one_context_per_direction() {
    let (mut deflate, mut inflate) = (Deflater::new(), Inflater::new());
    let first = headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]);
    let second = headers(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]);
    assert_eq!(roundtrip_headers(&first, &mut deflate, &mut inflate), first);
    assert_eq!(
        roundtrip_headers(&second, &mut deflate, &mut inflate),
        second
    );
    // A big block, across many buffers.
    let big = headers(&[("x", &"y".repeat(12_000))]);
    assert_eq!(roundtrip_headers(&big, &mut deflate, &mut inflate), big);
}

/// A client end: frames written with its own context, read with its own.
struct Client {
    io: tokio::io::DuplexStream,
    deflate: Deflater,
    inflate: Inflater,
}

impl Client {
    async fn send(&mut self, frame: Frame) {
        let mut buf = Vec::new();
        frame.encode(&mut self.deflate, &mut buf).unwrap();
        self.io.write_all(&buf).await.unwrap();
    }

    async fn raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    async fn next(&mut self) -> Option<Frame> {
        let read = read_frame(&mut self.io, &mut self.inflate);
        match tokio::time::timeout(std::time::Duration::from_secs(10), read).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(codec::ReadError::Io(e))) => panic!("{e}"),
            Ok(Err(codec::ReadError::Protocol(e))) => panic!("{e}"),
            Err(_) => panic!("no frame within 10 s"),
        }
    }
}

/// A session with nobody handling its streams but the test: the client end, the
/// streams as they come, the session.
fn bare_session(
    queued: usize,
) -> (
    Client,
    mpsc::Receiver<Stream>,
    tokio::task::JoinHandle<SessionEnd>,
) {
    let (client_io, server) = tokio::io::duplex(1024 * 1024);
    let (tx, rx) = mpsc::channel::<Stream>(queued);
    let session = tokio::spawn(serve(server, tx));
    let client = Client {
        io: client_io,
        deflate: Deflater::new(),
        inflate: Inflater::new(),
    };
    (client, rx, session)
}

/// A server that echoes each stream's data back upper-cased, then finishes it.
fn echo_server() -> (Client, tokio::task::JoinHandle<SessionEnd>) {
    let (client, server) = tokio::io::duplex(256 * 1024);
    let (tx, mut rx) = mpsc::channel::<Stream>(8);
    tokio::spawn(async move {
        while let Some(mut stream) = rx.recv().await {
            tokio::spawn(async move {
                stream.writer.reply().await.unwrap();
                while let Some(data) = stream.incoming.recv().await {
                    let upper = data.to_ascii_uppercase();
                    stream.writer.send(&upper).await.unwrap();
                }
                stream.writer.finish().await.unwrap();
            });
        }
    });
    let session = tokio::spawn(serve(server, tx));
    let client = Client {
        io: client,
        deflate: Deflater::new(),
        inflate: Inflater::new(),
    };
    (client, session)
}

#[tokio::test]
async fn streams_are_replied_to_carry_data_both_ways_and_finish() {
    let (mut client, session) = echo_server();
    client
        .send(Frame::SynStream {
            stream: 1,
            headers: headers(&[("streamtype", "data"), ("port", "80")]),
            fin: false,
        })
        .await;
    assert_eq!(
        client.next().await,
        Some(Frame::SynReply {
            stream: 1,
            headers: vec![],
            fin: false
        })
    );
    client
        .send(Frame::Data {
            stream: 1,
            fin: false,
            data: Bytes::from_static(b"hello"),
        })
        .await;
    client.send(Frame::Ping { id: 7 }).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(client.next().await.unwrap());
    }
    assert!(seen.contains(&Frame::Ping { id: 7 }), "{seen:?}");
    assert!(
        seen.contains(&Frame::Data {
            stream: 1,
            fin: false,
            data: Bytes::from_static(b"HELLO")
        }),
        "{seen:?}"
    );
    // 100 KiB comes back in frames of at most 32 KiB.
    for (fin, kib) in [(false, 60), (true, 40)] {
        client
            .send(Frame::Data {
                stream: 1,
                fin,
                data: Bytes::from(vec![b'a'; kib * 1024]),
            })
            .await;
    }
    let mut total = 0;
    loop {
        match client.next().await.unwrap() {
            Frame::Data {
                stream: 1,
                fin: false,
                data,
            } => {
                assert!(data.len() <= 32 * 1024 && data.iter().all(|b| *b == b'A'));
                total += data.len();
            }
            Frame::Data {
                stream: 1,
                fin: true,
                data,
            } => {
                assert!(data.is_empty());
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(total, 100 * 1024);
    // A second stream on the same connection, its headers in the same context.
    client
        .send(Frame::SynStream {
            stream: 3,
            headers: headers(&[("streamtype", "error")]),
            fin: true,
        })
        .await;
    assert!(matches!(
        client.next().await,
        Some(Frame::SynReply { stream: 3, .. })
    ));
    assert!(matches!(
        client.next().await,
        Some(Frame::Data {
            stream: 3,
            fin: true,
            ..
        })
    ));
    client
        .send(Frame::GoAway {
            last_stream: 0,
            status: 0,
        })
        .await;
    assert!(matches!(session.await.unwrap(), SessionEnd::Closed));
}

#[tokio::test]
async fn broken_input_ends_the_connection_with_goaway() {
    // A data frame over the bound.
    let (mut client, session) = echo_server();
    let mut head = 1u32.to_be_bytes().to_vec();
    head.push(0);
    head.extend_from_slice(&((MAX_DATA_FRAME as u32 + 1).to_be_bytes()[1..]));
    client.raw(&head).await;
    assert!(matches!(
        client.next().await,
        Some(Frame::GoAway { status: 1, .. })
    ));
    let end = session.await.unwrap();
    assert!(
        matches!(&end, SessionEnd::Protocol(m) if m.contains("data frame")),
        "{end}"
    );

    // An even (server's) stream id from the client.
    let (mut client, session) = echo_server();
    client
        .send(Frame::SynStream {
            stream: 2,
            headers: vec![],
            fin: false,
        })
        .await;
    assert!(matches!(client.next().await, Some(Frame::GoAway { .. })));
    assert!(matches!(session.await.unwrap(), SessionEnd::Protocol(_)));

    // A header block that is not zlib, and one claiming more headers than bytes.
    for body in [vec![0u8, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4], {
        let mut block = Vec::new();
        let mut plain = 1000u32.to_be_bytes().to_vec();
        plain.extend_from_slice(&[0; 8]);
        let mut deflate = flate2::Compress::new(flate2::Compression::default(), true);
        deflate
            .compress_vec(&plain, &mut block, flate2::FlushCompress::Sync)
            .unwrap_or_else(|_| unreachable!());
        block.reserve(64);
        let mut body = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        body.extend_from_slice(&block);
        body
    }] {
        let (mut client, session) = echo_server();
        let mut frame = vec![0x80, 3, 0, 1, 0];
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(&body);
        client.raw(&frame).await;
        assert!(matches!(client.next().await, Some(Frame::GoAway { .. })));
        let end = session.await.unwrap();
        assert!(
            matches!(&end, SessionEnd::Protocol(m) if m.contains("header")),
            "{end}"
        );
    }

    // Another version.
    let (mut client, session) = echo_server();
    client.raw(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]).await;
    assert!(matches!(client.next().await, Some(Frame::GoAway { .. })));
    assert!(matches!(session.await.unwrap(), SessionEnd::Protocol(m) if m.contains("version")));
}

#[tokio::test]
async fn streams_beyond_the_bound_are_refused() {
    // Nobody takes the streams: they stay open.
    let (mut client, _rx, session) = bare_session(MAX_STREAMS + 8);
    for i in 0..=MAX_STREAMS as u32 {
        client
            .send(Frame::SynStream {
                stream: 2 * i + 1,
                headers: vec![],
                fin: false,
            })
            .await;
    }
    assert_eq!(
        client.next().await,
        Some(Frame::RstStream {
            stream: 2 * MAX_STREAMS as u32 + 1,
            status: REFUSED_STREAM
        })
    );
    drop(client);
    assert!(matches!(session.await.unwrap(), SessionEnd::Closed));
}

#[test]
fn header_blocks_near_the_bound_are_read_or_refused_never_more() {
    // Every inflated size around the bound: each block read whole or refused.
    for size in (MAX_HEADER_BLOCK - 600)..(MAX_HEADER_BLOCK + 40) {
        let (mut deflate, mut inflate) = (Deflater::new(), Inflater::new());
        // Count, name length, "x", value length: 13 bytes before the value.
        let value = "v".repeat(size.saturating_sub(13));
        let block = headers(&[("x", &value)]);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            roundtrip_headers(&block, &mut deflate, &mut inflate)
        })) {
            Ok(read) => assert!(size <= MAX_HEADER_BLOCK && read == block, "{size}"),
            Err(_) => assert!(size > MAX_HEADER_BLOCK, "{size} refused"),
        }
    }
}

#[tokio::test]
async fn a_reset_ends_the_streams_writer_and_input() {
    let (mut client, mut rx, session) = bare_session(8);
    client
        .send(Frame::SynStream {
            stream: 1,
            headers: vec![],
            fin: false,
        })
        .await;
    let mut stream = rx.recv().await.unwrap();
    client
        .send(Frame::RstStream {
            stream: 1,
            status: CANCEL,
        })
        .await;
    tokio::time::timeout(std::time::Duration::from_secs(5), stream.writer.closed())
        .await
        .expect("closed by the reset");
    assert_eq!(stream.writer.send(b"late").await, Err(Closed));
    assert_eq!(stream.incoming.recv().await, None);
    drop(client);
    assert!(matches!(session.await.unwrap(), SessionEnd::Closed));
}

#[tokio::test]
async fn a_protocol_error_ends_the_session_though_handlers_hold_streams() {
    let (mut client, mut rx, session) = bare_session(8);
    client
        .send(Frame::SynStream {
            stream: 1,
            headers: vec![],
            fin: true,
        })
        .await;
    // The handler keeps its stream (and writer) and never ends it.
    let held = rx.recv().await.unwrap();
    client.raw(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1]).await;
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), session)
        .await
        .expect("the session ends")
        .unwrap();
    assert!(matches!(end, SessionEnd::Protocol(_)), "{end}");
    assert!(matches!(
        client.next().await,
        Some(Frame::GoAway {
            last_stream: 1,
            status: 1
        })
    ));
    tokio::time::timeout(std::time::Duration::from_secs(5), held.writer.closed())
        .await
        .expect("its writer sees the end");
}
