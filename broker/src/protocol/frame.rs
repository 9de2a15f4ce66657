//! Kafka framing: every request and response is a 4-byte big-endian signed length followed by that
//! many payload bytes. [`FrameDecoder`] is sans-IO (bytes in, frames out) so it can be property
//! tested; [`FrameReader`] and [`write_frame`] are the thin async shells over the tokio IO traits.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ProtocolError;

/// Size of the length prefix in front of every frame.
pub const FRAME_PREFIX_BYTES: usize = 4;

/// Default frame payload limit: 100 MiB, Kafka's `socket.request.max.bytes` default.
pub const FRAME_BYTES_MAX_DEFAULT: u32 = 100 * 1024 * 1024;

/// How many bytes one read call asks the stream for. Bounded so a reader never reserves memory on
/// the peer's say-so; a large frame simply takes several reads.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Splits a byte stream into frames. Feed it with [`FrameDecoder::extend`], drain it with
/// [`FrameDecoder::decode_next`]; at end of stream call [`FrameDecoder::finish`].
#[derive(Debug)]
pub struct FrameDecoder {
    /// Largest payload accepted; checked as soon as a prefix arrives, before buffering the payload.
    frame_bytes_max: u32,
    /// Bytes received but not yet returned as a frame (always starts at a frame boundary).
    buffer: BytesMut,
}

impl FrameDecoder {
    /// A decoder that rejects frames whose payload exceeds `frame_bytes_max` bytes.
    pub fn new(frame_bytes_max: u32) -> Self {
        // The limit must fit Kafka's signed 32-bit sizes, or a "valid" length could read as negative.
        assert!(
            frame_bytes_max <= i32::MAX as u32,
            "frame_bytes_max above i32::MAX"
        );
        assert!(frame_bytes_max > 0, "frame_bytes_max must admit some frame");
        Self {
            frame_bytes_max,
            buffer: BytesMut::new(),
        }
    }

    /// The configured payload limit.
    pub fn frame_bytes_max(&self) -> u32 {
        self.frame_bytes_max
    }

    /// Bytes held but not yet returned as frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Appends bytes received from the stream.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Returns the next complete frame's payload, `Ok(None)` if more bytes are needed, or an error
    /// as soon as a prefix announces an invalid length (so an oversized frame is never buffered).
    pub fn decode_next(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        let Some(prefix) = self.buffer.get(..FRAME_PREFIX_BYTES) else {
            return Ok(None);
        };
        let length = i32::from_be_bytes(prefix.try_into().expect("slice of FRAME_PREFIX_BYTES"));
        let length = self.check_length(length)?;
        let frame_bytes = FRAME_PREFIX_BYTES + length as usize;
        if self.buffer.len() < frame_bytes {
            return Ok(None);
        }
        self.buffer.advance(FRAME_PREFIX_BYTES);
        let payload = self.buffer.split_to(length as usize).freeze();
        assert_eq!(payload.len(), length as usize);
        Ok(Some(payload))
    }

    /// Call at end of stream: leftover bytes mean the peer stopped inside a frame.
    pub fn finish(&self) -> Result<(), ProtocolError> {
        if self.buffer.is_empty() {
            Ok(())
        } else {
            buggify::probe!("frame.stream_ended_mid_frame");
            Err(ProtocolError::FrameTruncated {
                buffered_bytes: self.buffer.len(),
            })
        }
    }

    fn check_length(&self, length: i32) -> Result<u32, ProtocolError> {
        check_frame_length(length, self.frame_bytes_max)
    }
}

/// Appends one frame (prefix + payload) to `out`; the sans-IO twin of [`write_frame`].
pub fn encode_frame(payload: &[u8], out: &mut BytesMut) {
    let length = i32::try_from(payload.len()).expect("frame payloads are built far below 2 GiB");
    out.reserve(FRAME_PREFIX_BYTES + payload.len());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Reads whole frames from an async stream through a [`FrameDecoder`], straight into the
/// decoder's buffer (no scratch copy: a follower's fetch answers are megabytes).
#[derive(Debug)]
pub struct FrameReader {
    /// The sans-IO state: partial frames survive between calls.
    decoder: FrameDecoder,
}

impl FrameReader {
    /// A reader enforcing `frame_bytes_max` on every frame.
    pub fn new(frame_bytes_max: u32) -> Self {
        Self {
            decoder: FrameDecoder::new(frame_bytes_max),
        }
    }

    /// Next frame's payload; `Ok(None)` on a clean end of stream at a frame boundary.
    /// Pipelined frames already buffered are returned without touching the stream.
    pub async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Option<Bytes>, ProtocolError> {
        loop {
            if let Some(payload) = self.decoder.decode_next()? {
                return Ok(Some(payload));
            }
            // At most READ_CHUNK_BYTES per read call, appended to what the decoder holds.
            let buffer = &mut self.decoder.buffer;
            buffer.reserve(READ_CHUNK_BYTES);
            let held = buffer.len();
            let read_bytes = reader
                .read_buf(&mut (&mut *buffer).limit(READ_CHUNK_BYTES))
                .await?;
            if read_bytes == 0 {
                self.decoder.finish()?;
                return Ok(None);
            }
            assert!(read_bytes <= READ_CHUNK_BYTES && buffer.len() == held + read_bytes);
        }
    }
}

/// Payloads up to this size are copied behind their prefix and written in one call; larger ones
/// are written after the prefix without that copy.
pub const WRITE_COPY_BYTES_MAX: usize = 16 * 1024;

/// Writes one frame and flushes it: madsim's simulated `TcpStream` only sends on `flush()`, and a
/// response sitting in a buffer is a response the client never gets.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    payload: &[u8],
) -> Result<(), ProtocolError> {
    let reset = crate::runtime::buggify_rarely("frame.write.reset_mid_frame");
    if !reset && payload.len() > WRITE_COPY_BYTES_MAX {
        // A large frame (a fetch answer of megabytes) is written as it is, after its prefix,
        // instead of being copied behind the prefix first. Every stream here sets TCP_NODELAY,
        // so the short write leaves at once and the payload follows it.
        let length =
            i32::try_from(payload.len()).expect("frame payloads are built far below 2 GiB");
        writer.write_all(&length.to_be_bytes()).await?;
        writer.write_all(payload).await?;
        writer.flush().await?;
        return Ok(());
    }
    let mut out = BytesMut::new();
    encode_frame(payload, &mut out);
    assert_eq!(out.len(), FRAME_PREFIX_BYTES + payload.len());
    if reset {
        // BUGGIFY: the connection resets with half a frame sent; the reader sees a stream
        // that ends inside a frame, the writer an error, and both drop the connection.
        writer.write_all(&out[..out.len() / 2]).await?;
        writer.flush().await?;
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected reset mid-frame",
        )
        .into());
    }
    writer.write_all(&out).await?;
    writer.flush().await?;
    Ok(())
}

/// The one check of a frame's length prefix, for every reader (peers, the controller, clients):
/// not negative, at most `frame_bytes_max`, before any of the frame is buffered.
pub(crate) fn check_frame_length(length: i32, frame_bytes_max: u32) -> Result<u32, ProtocolError> {
    let Ok(length) = u32::try_from(length) else {
        return Err(ProtocolError::FrameLengthNegative { length });
    };
    if length > frame_bytes_max {
        return Err(ProtocolError::FrameTooLarge {
            length,
            frame_bytes_max,
        });
    }
    Ok(length)
}
