//! SPDY/3.1 framing, as much as `kubectl port-forward` speaks: the frames, and the header
//! blocks compressed as one zlib stream per direction.
//!
//! The codec is IO-free: [`Decoder::decode`] takes frames off the front of a buffer of bytes
//! read so far, [`Encoder::encode`] appends a frame's bytes to a buffer to write. Both keep the
//! zlib state of their direction, so one connection needs exactly one of each.
//!
//! # Guarantees
//!
//! Header blocks from the client are inflated with the SPDY/3 preset dictionary, as the spec
//! and moby/spdystream (kubectl's implementation) compress them. Header blocks to the client
//! are deflated without a dictionary, which zlib readers accept, and sync-flushed per frame.
//!
//! # Caveats
//!
//! Flow control is not enforced: WINDOW_UPDATE frames are parsed and ignored, and no window is
//! kept for what we send (kubectl's streams use the default 64 KiB window and it keeps reading,
//! so nothing stalls). Server push, priorities and the CREDENTIAL frame are not supported.

use std::sync::LazyLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// DATA or SYN_STREAM/SYN_REPLY flag: the sender's last frame on the stream.
pub const FLAG_FIN: u8 = 0x01;
/// PROTOCOL_ERROR, the RST_STREAM and GOAWAY status for a frame we cannot make sense of.
pub const RST_PROTOCOL_ERROR: u32 = 1;
/// REFUSED_STREAM, the RST_STREAM status for a stream we do not accept.
pub const RST_REFUSED_STREAM: u32 = 3;
/// CANCEL, the RST_STREAM status for a stream no longer needed.
pub const RST_CANCEL: u32 = 5;
/// The largest frame payload we accept (the length field holds 24 bits).
const MAX_PAYLOAD: usize = 0x00ff_ffff;
/// The largest inflated header block we accept.
const MAX_HEADER_BLOCK: usize = 1 << 20;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// Header name-value pairs, names lower-case as on the wire.
pub type Headers = Vec<(String, String)>;

/// One SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens a stream.
    SynStream {
        /// The new stream (odd when the client opens it).
        stream_id: u32,
        /// The stream it belongs to (0: none).
        associated_id: u32,
        /// 0 (highest) to 7.
        priority: u8,
        /// [`FLAG_FIN`], or UNIDIRECTIONAL (0x02).
        flags: u8,
        /// The stream's headers.
        headers: Headers,
    },
    /// Accepts a stream.
    SynReply {
        /// The stream.
        stream_id: u32,
        /// [`FLAG_FIN`] or 0.
        flags: u8,
        /// The reply's headers.
        headers: Headers,
    },
    /// Ends a stream abnormally.
    RstStream {
        /// The stream.
        stream_id: u32,
        /// Why (e.g. [`RST_REFUSED_STREAM`]).
        status: u32,
    },
    /// Connection settings: (flags, id, value) entries.
    Settings {
        /// The frame's flags.
        flags: u8,
        /// The entries.
        entries: Vec<(u8, u32, u32)>,
    },
    /// A ping, answered by echoing it.
    Ping {
        /// The ping's id.
        id: u32,
    },
    /// The sender opens no more streams.
    GoAway {
        /// The last stream the sender acted on.
        last_good_stream_id: u32,
        /// Why (0: OK).
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        /// The stream.
        stream_id: u32,
        /// [`FLAG_FIN`] or 0.
        flags: u8,
        /// The headers.
        headers: Headers,
    },
    /// Opens the flow-control window of a stream (or of the connection when 0).
    WindowUpdate {
        /// The stream.
        stream_id: u32,
        /// Bytes added to the window.
        delta: u32,
    },
    /// Payload bytes of a stream.
    Data {
        /// The stream.
        stream_id: u32,
        /// [`FLAG_FIN`] or 0.
        flags: u8,
        /// The bytes.
        data: Bytes,
    },
    /// A control frame of a type we do not know; the spec says to ignore it.
    Unknown {
        /// Its type.
        kind: u16,
    },
}

/// A frame that breaks the protocol; the connection cannot go on after one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpdyError {
    /// A control frame of another version.
    #[error("unsupported spdy version {0}")]
    Version(u16),
    /// A frame longer than we accept.
    #[error("spdy frame of {0} bytes is too large")]
    TooLarge(usize),
    /// A control frame shorter than its fixed fields.
    #[error("spdy frame of type {kind} is truncated")]
    Truncated {
        /// The frame type.
        kind: u16,
    },
    /// The header block could not be inflated or parsed.
    #[error("invalid spdy header block: {0}")]
    HeaderBlock(String),
}

/// The SPDY/3 preset dictionary for header compression (spec section 2.6.10.1): these words,
/// each preceded by its length as a big-endian u32, followed by [`DICTIONARY_TAIL`].
// Kept compact: one word per line would be 65 lines of nothing.
#[rustfmt::skip]
const DICTIONARY_WORDS: &[&str] = &[
    "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
    "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
    "cache-control", "connection", "content-base", "content-encoding", "content-language",
    "content-length", "content-location", "content-md5", "content-range", "content-type",
    "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
    "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
    "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
    "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
    "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK",
    "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
];

/// The raw text that ends the SPDY/3 dictionary.
const DICTIONARY_TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented",
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,",
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=",
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

/// The SPDY/3 dictionary's bytes (1423 of them).
pub static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut dict = Vec::with_capacity(1423);
    for word in DICTIONARY_WORDS {
        dict.put_u32(word.len() as u32);
        dict.put_slice(word.as_bytes());
    }
    dict.put_slice(DICTIONARY_TAIL.as_bytes());
    dict
});

/// Reads frames of one direction, inflating header blocks with the SPDY/3 dictionary.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            inflate: Decompress::new(true),
        }
    }
}

impl Decoder {
    /// Takes one whole frame off the front of `buf`; `None` until all its bytes are there.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if length > MAX_PAYLOAD {
            return Err(SpdyError::TooLarge(length));
        }
        if buf.len() < 8 + length {
            return Ok(None);
        }
        let mut head = buf.split_to(8);
        let payload = buf.split_to(length).freeze();
        let first = head.get_u32();
        let flags = head.get_u8();

        // The top bit tells control frames (version, type) from data frames (stream id).
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: first,
                flags,
                data: payload,
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        self.control((first & 0xffff) as u16, flags, payload)
            .map(Some)
    }

    fn control(&mut self, kind: u16, flags: u8, mut p: Bytes) -> Result<Frame, SpdyError> {
        let need = match kind {
            TYPE_SYN_STREAM => 10,
            TYPE_RST_STREAM | TYPE_GOAWAY | TYPE_WINDOW_UPDATE => 8,
            TYPE_SYN_REPLY | TYPE_SETTINGS | TYPE_PING | TYPE_HEADERS => 4,
            _ => 0,
        };
        if p.len() < need {
            return Err(SpdyError::Truncated { kind });
        }
        let frame = match kind {
            TYPE_SYN_STREAM => {
                let stream_id = p.get_u32() & 0x7fff_ffff;
                let associated_id = p.get_u32() & 0x7fff_ffff;
                let priority = p.get_u8() >> 5;
                let _slot = p.get_u8();
                Frame::SynStream {
                    stream_id,
                    associated_id,
                    priority,
                    flags,
                    headers: self.headers(&p)?,
                }
            }
            TYPE_SYN_REPLY => Frame::SynReply {
                stream_id: p.get_u32() & 0x7fff_ffff,
                flags,
                headers: self.headers(&p)?,
            },
            TYPE_HEADERS => Frame::Headers {
                stream_id: p.get_u32() & 0x7fff_ffff,
                flags,
                headers: self.headers(&p)?,
            },
            TYPE_RST_STREAM => Frame::RstStream {
                stream_id: p.get_u32() & 0x7fff_ffff,
                status: p.get_u32(),
            },
            TYPE_SETTINGS => {
                let count = p.get_u32() as usize;
                if p.len() < count.saturating_mul(8) {
                    return Err(SpdyError::Truncated { kind });
                }
                let entries = (0..count)
                    .map(|_| {
                        let word = p.get_u32();
                        ((word >> 24) as u8, word & 0x00ff_ffff, p.get_u32())
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            TYPE_PING => Frame::Ping { id: p.get_u32() },
            TYPE_GOAWAY => Frame::GoAway {
                last_good_stream_id: p.get_u32() & 0x7fff_ffff,
                status: p.get_u32(),
            },
            TYPE_WINDOW_UPDATE => Frame::WindowUpdate {
                stream_id: p.get_u32() & 0x7fff_ffff,
                delta: p.get_u32() & 0x7fff_ffff,
            },
            kind => Frame::Unknown { kind },
        };
        Ok(frame)
    }

    /// Inflates one frame's part of the header stream and parses the name-value block.
    fn headers(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        if compressed.is_empty() {
            return Ok(Headers::new());
        }
        let mut block = Vec::new();
        let mut input = compressed;
        let mut chunk = [0u8; 4096];
        loop {
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let result = self
                .inflate
                .decompress(input, &mut chunk, FlushDecompress::Sync);
            let read = (self.inflate.total_in() - before_in) as usize;
            let written = (self.inflate.total_out() - before_out) as usize;
            input = &input[read..];
            block.extend_from_slice(&chunk[..written]);
            if block.len() > MAX_HEADER_BLOCK {
                return Err(SpdyError::HeaderBlock("too large".into()));
            }
            match result {
                Ok(_) if input.is_empty() && written < chunk.len() => break,
                Ok(_) if read == 0 && written == 0 => {
                    return Err(SpdyError::HeaderBlock("truncated compressed data".into()))
                }
                Ok(_) => {}
                // The client's zlib header names the preset dictionary: supply it and go on.
                Err(err) if err.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| SpdyError::HeaderBlock(e.to_string()))?;
                }
                Err(err) => return Err(SpdyError::HeaderBlock(err.to_string())),
            }
        }
        parse_header_block(&block)
    }
}

fn parse_header_block(mut block: &[u8]) -> Result<Headers, SpdyError> {
    fn take<'a>(block: &mut &'a [u8]) -> Result<&'a [u8], SpdyError> {
        if block.len() < 4 {
            return Err(SpdyError::HeaderBlock("truncated".into()));
        }
        let len = block.get_u32() as usize;
        if block.len() < len {
            return Err(SpdyError::HeaderBlock("truncated".into()));
        }
        let (field, rest) = block.split_at(len);
        *block = rest;
        Ok(field)
    }
    fn text(field: &[u8]) -> Result<String, SpdyError> {
        String::from_utf8(field.to_vec()).map_err(|_| SpdyError::HeaderBlock("not utf-8".into()))
    }

    if block.len() < 4 {
        return Err(SpdyError::HeaderBlock("truncated".into()));
    }
    let count = block.get_u32();
    let mut headers = Vec::new();
    for _ in 0..count {
        let name = text(take(&mut block)?)?;
        let value = text(take(&mut block)?)?;
        headers.push((name.to_ascii_lowercase(), value));
    }
    Ok(headers)
}

/// The first value of header `name` in `headers`.
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.split('\0').next().unwrap_or(""))
}

/// Writes frames of one direction, deflating header blocks as one stream.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            deflate: Compress::new(Compression::default(), true),
        }
    }
}

impl Encoder {
    /// A client's encoder: header blocks deflated with the SPDY/3 dictionary, as kubectl does.
    #[cfg(test)]
    pub(crate) fn with_dictionary() -> Encoder {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(&DICTIONARY)
            .expect("a fresh deflater takes a dictionary");
        Encoder { deflate }
    }

    /// Appends the bytes of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        let mut p = Vec::new();
        let (kind, flags) = match frame {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                out.put_u32(stream_id & 0x7fff_ffff);
                put_flags_length(out, *flags, data.len());
                out.put_slice(data);
                return;
            }
            Frame::SynStream {
                stream_id,
                associated_id,
                priority,
                flags,
                headers,
            } => {
                p.put_u32(*stream_id);
                p.put_u32(*associated_id);
                p.put_u8(priority << 5);
                p.put_u8(0);
                self.put_headers(&mut p, headers);
                (TYPE_SYN_STREAM, *flags)
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                p.put_u32(*stream_id);
                self.put_headers(&mut p, headers);
                (TYPE_SYN_REPLY, *flags)
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                p.put_u32(*stream_id);
                self.put_headers(&mut p, headers);
                (TYPE_HEADERS, *flags)
            }
            Frame::RstStream { stream_id, status } => {
                p.put_u32(*stream_id);
                p.put_u32(*status);
                (TYPE_RST_STREAM, 0)
            }
            Frame::Settings { flags, entries } => {
                p.put_u32(entries.len() as u32);
                for (entry_flags, id, value) in entries {
                    p.put_u32((u32::from(*entry_flags) << 24) | (id & 0x00ff_ffff));
                    p.put_u32(*value);
                }
                (TYPE_SETTINGS, *flags)
            }
            Frame::Ping { id } => {
                p.put_u32(*id);
                (TYPE_PING, 0)
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                p.put_u32(*last_good_stream_id);
                p.put_u32(*status);
                (TYPE_GOAWAY, 0)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                p.put_u32(*stream_id);
                p.put_u32(*delta);
                (TYPE_WINDOW_UPDATE, 0)
            }
            Frame::Unknown { kind } => (*kind, 0),
        };
        out.put_u16(0x8000 | VERSION);
        out.put_u16(kind);
        put_flags_length(out, flags, p.len());
        out.put_slice(&p);
    }

    /// Appends the deflated header block, sync-flushed so the peer can read it at once.
    fn put_headers(&mut self, out: &mut Vec<u8>, headers: &Headers) {
        let mut block = Vec::new();
        block.put_u32(headers.len() as u32);
        for (name, value) in headers {
            block.put_u32(name.len() as u32);
            block.put_slice(name.as_bytes());
            block.put_u32(value.len() as u32);
            block.put_slice(value.as_bytes());
        }
        let mut input = &block[..];
        let mut chunk = [0u8; 1024];
        loop {
            let (before_in, before_out) = (self.deflate.total_in(), self.deflate.total_out());
            // Compressing into a buffer cannot fail: the stream is never finished.
            let _ = self
                .deflate
                .compress(input, &mut chunk, FlushCompress::Sync);
            let read = (self.deflate.total_in() - before_in) as usize;
            let written = (self.deflate.total_out() - before_out) as usize;
            input = &input[read..];
            out.put_slice(&chunk[..written]);
            if input.is_empty() && written < chunk.len() {
                break;
            }
        }
    }
}

fn put_flags_length(out: &mut Vec<u8>, flags: u8, length: usize) {
    out.put_u32((u32::from(flags) << 24) | (length as u32 & 0x00ff_ffff));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(encoder: &mut Encoder, decoder: &mut Decoder, frame: &Frame) -> Frame {
        let mut bytes = Vec::new();
        encoder.encode(frame, &mut bytes);
        let mut buf = BytesMut::from(&bytes[..]);
        let decoded = decoder.decode(&mut buf).unwrap().expect("a whole frame");
        assert!(buf.is_empty(), "the frame was not consumed whole");
        decoded
    }

    fn pf_headers(kind: &str, request: &str) -> Headers {
        vec![
            ("streamtype".into(), kind.into()),
            ("port".into(), "8080".into()),
            ("requestid".into(), request.into()),
        ]
    }

    #[test]
    fn dictionary_is_the_spdy3_one() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert_eq!(&DICTIONARY[..11], b"\0\0\0\x07options");
        assert!(DICTIONARY.ends_with(b",*,enq=0."));
    }

    #[test]
    fn syn_streams_deflated_with_the_dictionary_are_read_as_one_zlib_stream() {
        let (mut client, mut server) = (Encoder::with_dictionary(), Decoder::default());
        for (id, kind, request) in [(1, "error", "0"), (3, "data", "0"), (5, "error", "1")] {
            let frame = Frame::SynStream {
                stream_id: id,
                associated_id: 0,
                priority: 2,
                flags: 0,
                headers: pf_headers(kind, request),
            };
            assert_eq!(round_trip(&mut client, &mut server, &frame), frame);
        }
    }

    #[test]
    fn syn_reply_written_without_dictionary_reads_back() {
        let (mut server, mut client) = (Encoder::default(), Decoder::default());
        for id in [1, 3] {
            let frame = Frame::SynReply {
                stream_id: id,
                flags: 0,
                headers: vec![],
            };
            assert_eq!(round_trip(&mut server, &mut client, &frame), frame);
        }
    }

    #[test]
    fn control_frames_round_trip() {
        let (mut enc, mut dec) = (Encoder::default(), Decoder::default());
        let frames = [
            Frame::RstStream {
                stream_id: 3,
                status: RST_REFUSED_STREAM,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 65536), (1, 4, 100)],
            },
            Frame::Ping { id: 1 },
            Frame::GoAway {
                last_good_stream_id: 5,
                status: 0,
            },
            Frame::WindowUpdate {
                stream_id: 3,
                delta: 1 << 16,
            },
            Frame::Headers {
                stream_id: 3,
                flags: FLAG_FIN,
                headers: vec![("x".into(), "y".into())],
            },
        ];
        for frame in frames {
            assert_eq!(round_trip(&mut enc, &mut dec, &frame), frame);
        }
    }

    #[test]
    fn data_frame_layout_is_id_flags_length_payload() {
        let mut bytes = Vec::new();
        Encoder::default().encode(
            &Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hi"),
            },
            &mut bytes,
        );
        assert_eq!(bytes, b"\0\0\0\x03\x01\0\0\x02hi");
    }

    #[test]
    fn ping_layout_is_a_version_3_control_frame() {
        let mut bytes = Vec::new();
        Encoder::default().encode(&Frame::Ping { id: 7 }, &mut bytes);
        assert_eq!(bytes, b"\x80\x03\0\x06\0\0\0\x04\0\0\0\x07");
    }

    #[test]
    fn frames_split_across_reads_wait_for_their_last_byte() {
        let mut bytes = Vec::new();
        let mut enc = Encoder::with_dictionary();
        enc.encode(
            &Frame::SynStream {
                stream_id: 1,
                associated_id: 0,
                priority: 0,
                flags: 0,
                headers: pf_headers("error", "0"),
            },
            &mut bytes,
        );
        enc.encode(&Frame::Ping { id: 1 }, &mut bytes);

        let (mut dec, mut buf) = (Decoder::default(), BytesMut::new());
        let mut frames = Vec::new();
        for byte in bytes {
            buf.put_u8(byte);
            while let Some(frame) = dec.decode(&mut buf).unwrap() {
                frames.push(frame);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[1], Frame::Ping { id: 1 });
        let Frame::SynStream { headers, .. } = &frames[0] else {
            panic!("{frames:?}")
        };
        assert_eq!(header(headers, "streamtype"), Some("error"));
    }

    #[test]
    fn unknown_control_frames_are_skipped_and_other_versions_refused() {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(&b"\x80\x03\0\x0a\0\0\0\x02ab\0\0\0\x01\0\0\0\0"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(Some(Frame::Unknown { kind: 10 })));
        assert!(matches!(dec.decode(&mut buf), Ok(Some(Frame::Data { .. }))));

        let mut v2 = BytesMut::from(&b"\x80\x02\0\x06\0\0\0\x04\0\0\0\x01"[..]);
        assert_eq!(dec.decode(&mut v2), Err(SpdyError::Version(2)));
    }

    #[test]
    fn garbage_header_block_is_an_error() {
        let mut dec = Decoder::default();
        let mut buf = BytesMut::from(&b"\x80\x03\0\x02\0\0\0\x08\0\0\0\x01garb"[..]);
        assert!(matches!(
            dec.decode(&mut buf),
            Err(SpdyError::HeaderBlock(_))
        ));
    }
}
