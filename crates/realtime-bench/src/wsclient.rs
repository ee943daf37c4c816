//! A minimal WebSocket client (RFC 6455, no extensions) for the load generator.
//!
//! Ten thousand subscribers on one CPU must cost less than the server they measure. A
//! general client reads each socket twice per message (the data, then `WouldBlock`) and
//! zero-fills its read buffer on every read; this one reads once per readiness event,
//! clears the readiness itself after a short read (tokio's readiness ticks make that
//! race-free), and parses frames in place. It speaks only what the bench needs: text and
//! binary messages (fragmented or not), ping/pong and close from the server, and small
//! masked text frames from the client.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{Context, bail};
use tokio::io::Interest;
use tokio::net::{TcpSocket, TcpStream};

/// Bytes read at once; a frame larger than this grows the buffer.
const READ_CHUNK: usize = 8192;

/// A WebSocket frame from the server, borrowed from the client's buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete text or binary message.
    Message(&'a [u8]),
    Ping(&'a [u8]),
    Pong,
    /// The close code, when the server gave one.
    Close(Option<u16>),
}

pub struct WsClient {
    socket: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The message being reassembled from fragments.
    fragments: Vec<u8>,
    /// The reassembled message was handed out and is cleared on the next call.
    fragments_done: bool,
}

impl WsClient {
    /// Connects from `source_ip` to a `ws://host:port/path` URL and does the opening handshake.
    pub async fn connect(url: &str, source_ip: Ipv4Addr) -> anyhow::Result<WsClient> {
        let rest = url.strip_prefix("ws://").context("only ws:// URLs")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr: SocketAddr = tokio::net::lookup_host(authority).await?.next().context("no address")?;
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::from((source_ip, 0)))?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut client = WsClient {
            socket: stream,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            fragments: Vec::new(),
            fragments_done: false,
        };
        // The key is fixed: the bench does not check the server's accept hash, and a
        // server never rejects a well-formed key.
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        client.write_all(request.as_bytes()).await?;
        loop {
            if let Some(end) = memchr::memmem::find(&client.buf[client.start..client.end], b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&client.buf[client.start..client.start + end]).into_owned();
                let status = head.lines().next().unwrap_or_default();
                if !status.starts_with("HTTP/1.1 101") {
                    bail!("handshake refused: {status}");
                }
                client.start += end + 4;
                return Ok(client);
            }
            if client.fill().await? == 0 {
                bail!("closed during the handshake");
            }
        }
    }

    /// Waits until the socket has data and reads what is there; 0 means the server closed.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
        }
        let socket = &self.socket;
        let room = &mut self.buf[self.end..];
        let room_len = room.len();
        loop {
            socket.readable().await?;
            let mut got = None;
            let outcome = socket.try_io(Interest::READABLE, || {
                let n = socket.try_read(room)?;
                got = Some(n);
                // A short read drained the socket: answering WouldBlock makes tokio
                // forget the readiness now (only if no newer event came in, so no
                // wake-up is lost) instead of learning it from a second read.
                if n > 0 && n < room_len { Err(io::ErrorKind::WouldBlock.into()) } else { Ok(n) }
            });
            if let Some(n) = got {
                self.end += n;
                return Ok(n);
            }
            match outcome {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
            }
        }
    }

    /// The next complete frame already read, if any.
    pub fn next_frame(&mut self) -> anyhow::Result<Option<Frame<'_>>> {
        if self.fragments_done {
            self.fragments.clear();
            self.fragments_done = false;
        }
        loop {
            let Some(Header { len: header, payload_len: len, mask }) = parse_header(&self.buf[self.start..self.end])?
            else {
                self.make_room_for(14);
                return Ok(None);
            };
            if self.end - self.start < header + len {
                self.make_room_for(header + len);
                return Ok(None);
            }
            let first = self.buf[self.start];
            let (fin, opcode) = (first & 0x80 != 0, first & 0x0f);
            let payload_at = self.start + header;
            self.start += header + len;
            let payload = &mut self.buf[payload_at..payload_at + len];
            if let Some(key) = mask {
                payload.iter_mut().enumerate().for_each(|(i, b)| *b ^= key[i % 4]);
            }
            match opcode {
                0x0..=0x2 if !fin || !self.fragments.is_empty() => {
                    self.fragments.extend_from_slice(payload);
                    if fin {
                        self.fragments_done = true;
                        return Ok(Some(Frame::Message(&self.fragments)));
                    }
                }
                0x1 | 0x2 => return Ok(Some(Frame::Message(&self.buf[payload_at..payload_at + len]))),
                0x8 => {
                    let code = (len >= 2).then(|| u16::from_be_bytes([self.buf[payload_at], self.buf[payload_at + 1]]));
                    return Ok(Some(Frame::Close(code)));
                }
                0x9 => return Ok(Some(Frame::Ping(&self.buf[payload_at..payload_at + len]))),
                0xA => return Ok(Some(Frame::Pong)),
                other => bail!("unknown opcode {other:#x}"),
            }
        }
    }

    /// Makes sure the buffer can hold `needed` bytes from `start` on.
    fn make_room_for(&mut self, needed: usize) {
        if self.start + needed > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if needed > self.buf.len() {
                self.buf.resize(needed.next_power_of_two(), 0);
            }
        }
    }

    /// Reads until a whole text or binary message is there and returns it (handshakes).
    pub async fn next_message(&mut self) -> anyhow::Result<Vec<u8>> {
        loop {
            let mut pong = None;
            match self.next_frame()? {
                Some(Frame::Message(data)) => return Ok(data.to_vec()),
                Some(Frame::Close(code)) => bail!("closed by the server (code {code:?})"),
                Some(Frame::Ping(data)) => pong = Some(data.to_vec()),
                Some(Frame::Pong) => {}
                None => {
                    if self.fill().await? == 0 {
                        bail!("the server closed the connection");
                    }
                }
            }
            if let Some(data) = pong {
                self.send(0xA, &data).await?;
            }
        }
    }

    pub async fn send_text(&self, text: &str) -> io::Result<()> {
        self.send(0x1, text.as_bytes()).await
    }

    pub async fn send_pong(&self, data: &[u8]) -> io::Result<()> {
        self.send(0xA, data).await
    }

    /// Sends a close frame with `code` (the socket stays open until it is dropped).
    pub async fn send_close(&self, code: u16) -> io::Result<()> {
        self.send(0x8, &code.to_be_bytes()).await
    }

    /// Closes the connection abortively: a TCP reset, no close frame, no `TIME_WAIT`.
    pub fn reset(self) -> io::Result<()> {
        self.socket.set_zero_linger()
    }

    /// Sends one masked frame (clients must mask; the key need not be secret here).
    async fn send(&self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
        let mut frame = Vec::with_capacity(payload.len() + 14);
        frame.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&KEY);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ KEY[i % 4]));
        self.write_all(&frame).await
    }

    async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            self.socket.writable().await?;
            match self.socket.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The frame header at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    /// Bytes of the header itself.
    len: usize,
    payload_len: usize,
    mask: Option<[u8; 4]>,
}

/// The header of the frame at the start of `bytes`, or None when it is not complete yet.
fn parse_header(bytes: &[u8]) -> anyhow::Result<Option<Header>> {
    if bytes.len() < 2 {
        return Ok(None);
    }
    let masked = bytes[1] & 0x80 != 0;
    let (mut header, len) = match bytes[1] & 0x7f {
        126 if bytes.len() >= 4 => (4, u16::from_be_bytes([bytes[2], bytes[3]]) as usize),
        127 if bytes.len() >= 10 => {
            let len = u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes"));
            (10, usize::try_from(len).context("frame too large")?)
        }
        126 | 127 => return Ok(None),
        n => (2, n as usize),
    };
    let mask = if masked {
        if bytes.len() < header + 4 {
            return Ok(None);
        }
        let key = [bytes[header], bytes[header + 1], bytes[header + 2], bytes[header + 3]];
        header += 4;
        Some(key)
    } else {
        None
    };
    Ok(Some(Header { len: header, payload_len: len, mask }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_of_every_length_form_are_parsed() {
        assert_eq!(parse_header(&[0x81]).unwrap(), None);
        assert_eq!(parse_header(&[0x81, 5]).unwrap(), Some(Header { len: 2, payload_len: 5, mask: None }));
        assert_eq!(parse_header(&[0x81, 126, 1]).unwrap(), None);
        assert_eq!(parse_header(&[0x81, 126, 1, 0]).unwrap(), Some(Header { len: 4, payload_len: 256, mask: None }));
        assert_eq!(
            parse_header(&[0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]).unwrap(),
            Some(Header { len: 10, payload_len: 65536, mask: None })
        );
        assert_eq!(
            parse_header(&[0x81, 0x83, 1, 2, 3, 4]).unwrap(),
            Some(Header { len: 6, payload_len: 3, mask: Some([1, 2, 3, 4]) })
        );
    }
}
