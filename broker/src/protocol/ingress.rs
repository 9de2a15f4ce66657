//! Reading client request frames under the broker-wide byte budget.
//!
//! Unlike [`super::frame::FrameReader`] (peers and the controller, trusted and small), a client's
//! frame is paid for before it is buffered: the reader learns the length from the 4-byte prefix,
//! takes that many bytes from the [`RequestBytesBudget`] (waiting if other requests hold it), and
//! only then allocates the body. Bytes read ahead of the current frame are bounded by
//! [`READ_AHEAD_BYTES`].
//!
//! Every read from the peer has a deadline: a started frame must be complete `frame_read_timeout`
//! after its first byte (slowloris); between frames, a connection with nothing in flight may
//! stay silent for `idle_timeout` (`connections.max.idle.ms`). Waiting for the budget has none:
//! that wait is the broker's, not the peer's.
//!
//! [`RequestReader::read_frame`] is cancel-safe: every piece of progress (bytes read, the permit
//! taken) lives in the reader, so the connection may drop the call in a `select!` and call again.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use super::frame::FRAME_PREFIX_BYTES;
use super::limits::{BudgetPermit, RequestBytesBudget};
use super::ProtocolError;

/// Most bytes read past the current frame's prefix in one go. Small pipelined frames arrive
/// several per read; large frames are read straight into their own (budgeted) buffer.
pub const READ_AHEAD_BYTES: usize = 16 * 1024;

/// One request frame and the budget bytes it holds until the request is answered.
#[derive(Debug)]
pub struct RequestFrame {
    /// The frame's payload (request header and body), without the length prefix.
    pub payload: Bytes,
    /// The payload's share of the broker's byte budget; drop it when the request is done.
    pub permit: BudgetPermit,
}

/// A frame whose length is known.
#[derive(Debug)]
struct FrameInProgress {
    /// The payload length announced by the prefix.
    length: u32,
    /// The budget taken for it; `None` while waiting for the budget.
    permit: Option<BudgetPermit>,
    /// The payload buffer, allocated once the permit is held (zero-filled, `filled` bytes real).
    body: BytesMut,
    /// Bytes of `body` received so far.
    filled: usize,
}

/// Reads client request frames, each paid for from a shared [`RequestBytesBudget`].
#[derive(Debug)]
pub struct RequestReader {
    /// Largest payload accepted (Kafka's `socket.request.max.bytes`).
    frame_bytes_max: u32,
    /// The broker-wide budget of buffered request bytes.
    budget: RequestBytesBudget,
    /// How long a started frame may take to arrive in full.
    frame_read_timeout: Duration,
    /// How long the peer may stay silent between frames when the caller says it is idle.
    idle_timeout: Duration,
    /// Bytes received but not yet part of a frame body; always starts at a frame boundary when
    /// no frame is in progress.
    read_ahead: BytesMut,
    /// The frame being received, once its prefix is parsed.
    frame: Option<FrameInProgress>,
    /// Since when the reader waits for the peer to finish a started frame; `None` at a frame
    /// boundary and while waiting for the budget (the peer is not to blame for that wait).
    partial_since: Option<Instant>,
    /// The one timer behind every read's deadline (see [`within`]).
    alarm: Alarm,
}

impl RequestReader {
    /// A reader refusing frames above `frame_bytes_max` or above the whole `budget`, and peers
    /// slower than the two timeouts.
    pub fn new(
        frame_bytes_max: u32,
        budget: RequestBytesBudget,
        frame_read_timeout: Duration,
        idle_timeout: Duration,
    ) -> Self {
        assert!(frame_bytes_max > 0 && frame_bytes_max <= i32::MAX as u32);
        assert!(!frame_read_timeout.is_zero() && !idle_timeout.is_zero());
        Self {
            frame_bytes_max,
            budget,
            frame_read_timeout,
            idle_timeout,
            read_ahead: BytesMut::new(),
            frame: None,
            partial_since: None,
            alarm: None,
        }
    }

    /// The connection stopped reading for a while on its own account (its in-flight bound):
    /// the peer's time to finish a started frame restarts now.
    pub fn resume(&mut self, now: Instant) {
        if self.partial_since.is_some() {
            self.partial_since = Some(now);
        }
    }

    /// Bytes of a started frame received so far (prefix and read-ahead included), for logs.
    pub fn buffered_bytes(&self) -> usize {
        let in_progress = self
            .frame
            .as_ref()
            .map_or(0, |f| FRAME_PREFIX_BYTES + f.filled);
        self.read_ahead.len() + in_progress
    }

    /// The next frame; `Ok(None)` on a clean end of stream at a frame boundary. `idle_since`:
    /// when the connection last did anything, if it has nothing in flight (only then can it be
    /// idle); the peer must start a frame within `idle_timeout` of it.
    pub async fn read_frame<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
        idle_since: Option<Instant>,
    ) -> Result<Option<RequestFrame>, ProtocolError> {
        loop {
            if self.frame.is_none() && !self.parse_prefix()? {
                if !self.fill_read_ahead(stream, idle_since).await? {
                    return Ok(None);
                }
                continue;
            }
            let frame = self.frame.as_mut().expect("parsed above");
            if frame.permit.is_none() {
                self.partial_since = None;
                let permit = self.budget.acquire(frame.length).await;
                frame.permit = Some(permit);
                frame.body = BytesMut::zeroed(frame.length as usize);
                let carried = self.read_ahead.len().min(frame.length as usize);
                frame.body[..carried].copy_from_slice(&self.read_ahead[..carried]);
                self.read_ahead.advance(carried);
                frame.filled = carried;
                self.partial_since = Some(Instant::now());
            }
            if frame.filled == frame.length as usize {
                return Ok(Some(self.take_frame()));
            }
            let since = self
                .partial_since
                .expect("a body is read only after its permit");
            let read = stream.read(&mut frame.body[frame.filled..]);
            let deadline = since + self.frame_read_timeout;
            let Some(read_bytes) = within(&mut self.alarm, deadline, read).await? else {
                return Err(self.frame_read_timed_out());
            };
            let frame = self.frame.as_mut().expect("still in progress");
            if read_bytes == 0 {
                return Err(ProtocolError::FrameTruncated {
                    buffered_bytes: FRAME_PREFIX_BYTES + frame.filled,
                });
            }
            frame.filled += read_bytes;
            assert!(frame.filled <= frame.length as usize);
        }
    }

    /// Parses the prefix at the head of the read-ahead, if whole. Refuses a length that is
    /// negative, above `frame_bytes_max` or above the whole budget, before buffering any of it.
    fn parse_prefix(&mut self) -> Result<bool, ProtocolError> {
        assert!(self.frame.is_none());
        let Some(prefix) = self.read_ahead.get(..FRAME_PREFIX_BYTES) else {
            return Ok(false);
        };
        let length = i32::from_be_bytes(prefix.try_into().expect("slice of FRAME_PREFIX_BYTES"));
        let length = super::frame::check_frame_length(length, self.frame_bytes_max)?;
        if length > self.budget.bytes_total() {
            return Err(ProtocolError::FrameTooLarge {
                length,
                frame_bytes_max: self.budget.bytes_total(),
            });
        }
        self.read_ahead.advance(FRAME_PREFIX_BYTES);
        self.frame = Some(FrameInProgress {
            length,
            permit: None,
            body: BytesMut::new(),
            filled: 0,
        });
        Ok(true)
    }

    /// Reads more bytes into the read-ahead. `Ok(false)` on a clean end of stream.
    async fn fill_read_ahead<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
        idle_since: Option<Instant>,
    ) -> Result<bool, ProtocolError> {
        assert!(self.frame.is_none());
        assert!(
            self.read_ahead.len() < FRAME_PREFIX_BYTES,
            "a whole prefix is parsed first"
        );
        let deadline = match (self.partial_since, idle_since) {
            (Some(since), _) => Some(since + self.frame_read_timeout),
            (None, Some(since)) => Some(since + self.idle_timeout),
            (None, None) => None,
        };
        let room = READ_AHEAD_BYTES - self.read_ahead.len();
        self.read_ahead.reserve(room);
        let mut limited = (&mut self.read_ahead).limit(room);
        let read = stream.read_buf(&mut limited);
        let read_bytes = match deadline {
            None => read.await?,
            Some(deadline) => match within(&mut self.alarm, deadline, read).await? {
                Some(read_bytes) => read_bytes,
                None if self.partial_since.is_some() => return Err(self.frame_read_timed_out()),
                None => {
                    return Err(ProtocolError::IdleTimedOut {
                        idle_ms: millis(self.idle_timeout),
                    })
                }
            },
        };
        if read_bytes == 0 {
            if self.read_ahead.is_empty() {
                return Ok(false);
            }
            return Err(ProtocolError::FrameTruncated {
                buffered_bytes: self.read_ahead.len(),
            });
        }
        if self.partial_since.is_none() {
            self.partial_since = Some(Instant::now());
        }
        Ok(true)
    }

    /// Hands out the finished frame; the peer's clock keeps running only if the next frame
    /// has already begun in the read-ahead.
    fn take_frame(&mut self) -> RequestFrame {
        let frame = self.frame.take().expect("a finished frame");
        assert_eq!(frame.filled, frame.length as usize);
        let permit = frame
            .permit
            .expect("the body is allocated only with a permit");
        assert_eq!(permit.bytes(), frame.length);
        self.partial_since = if self.read_ahead.is_empty() {
            None
        } else {
            Some(Instant::now())
        };
        RequestFrame {
            payload: frame.body.freeze(),
            permit,
        }
    }
}

impl RequestReader {
    fn frame_read_timed_out(&self) -> ProtocolError {
        ProtocolError::FrameReadTimedOut {
            buffered_bytes: self.buffered_bytes(),
            timeout_ms: millis(self.frame_read_timeout),
        }
    }
}

/// A reader's timer, made at its first deadline and kept.
type Alarm = Option<Pin<Box<tokio::time::Sleep>>>;

/// `read`, or `None` once `deadline` passes first. Every read of a connection has a deadline,
/// and they move on with each frame; one timer serves them all: it is moved earlier when a
/// deadline is earlier, but a later deadline leaves it where it is, and when it fires before
/// the deadline it is moved on to it. madsim cannot cancel a timer, so a timeout per read left
/// one timer per frame in the simulator's heap until its 10-minute idle deadline.
async fn within<T>(
    alarm: &mut Alarm,
    deadline: Instant,
    read: impl Future<Output = std::io::Result<T>>,
) -> std::io::Result<Option<T>> {
    let mut read = std::pin::pin!(read);
    let alarm = alarm.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
    if alarm.deadline() > deadline {
        alarm.as_mut().reset(deadline);
    }
    loop {
        tokio::select! {
            // `biased`: tokio's random branch order draws from an RNG the simulator does not
            // control. The read first: bytes that are there are taken even at the deadline.
            biased;
            done = &mut read => return done.map(Some),
            () = alarm.as_mut() => {}
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        alarm.as_mut().reset(deadline);
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
