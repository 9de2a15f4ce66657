//! Framing: the sans-IO decoder against a model (the list of frames that went in), and the limits.
#![allow(clippy::unwrap_used)]

use broker::protocol::frame::{encode_frame, FrameDecoder, FrameReader, FRAME_PREFIX_BYTES};
use broker::protocol::ProtocolError;
use bytes::BytesMut;
use proptest::prelude::*;

fn encode_all(frames: &[Vec<u8>]) -> BytesMut {
    let mut out = BytesMut::new();
    for frame in frames {
        encode_frame(frame, &mut out);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// However the stream is cut into reads, the decoder returns exactly the frames sent, in order.
    #[test]
    fn frames_survive_any_chunking(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12),
        cuts in prop::collection::vec(1usize..64, 1..40),
    ) {
        let stream = encode_all(&frames);
        let mut decoder = FrameDecoder::new(1024);
        let mut decoded = Vec::new();
        let mut position = 0;
        let mut cut = cuts.iter().cycle();
        while position < stream.len() {
            let end = (position + cut.next().unwrap()).min(stream.len());
            decoder.extend(&stream[position..end]);
            position = end;
            while let Some(frame) = decoder.decode_next().unwrap() {
                decoded.push(frame.to_vec());
            }
        }
        prop_assert_eq!(decoded, frames);
        prop_assert_eq!(decoder.buffered_bytes(), 0);
        prop_assert!(decoder.finish().is_ok());
    }

    /// Stopping anywhere strictly inside a frame is reported as truncation, never as a frame.
    #[test]
    fn cut_inside_a_frame_is_truncation(
        frame in prop::collection::vec(any::<u8>(), 0..200),
        keep in 1usize..204,
    ) {
        let stream = encode_all(std::slice::from_ref(&frame));
        let keep = keep.min(stream.len() - 1).max(1);
        let mut decoder = FrameDecoder::new(1024);
        decoder.extend(&stream[..keep]);
        prop_assert!(decoder.decode_next().unwrap().is_none());
        let truncated = matches!(
            decoder.finish(),
            Err(ProtocolError::FrameTruncated { buffered_bytes }) if buffered_bytes == keep
        );
        prop_assert!(truncated);
    }
}

#[test]
fn oversized_length_is_rejected_before_the_payload_arrives() {
    let mut decoder = FrameDecoder::new(100);
    decoder.extend(&101i32.to_be_bytes());
    let error = decoder.decode_next().unwrap_err();
    assert!(matches!(
        error,
        ProtocolError::FrameTooLarge {
            length: 101,
            frame_bytes_max: 100
        }
    ));
}

#[test]
fn length_at_the_limit_is_accepted() {
    let mut decoder = FrameDecoder::new(100);
    let mut stream = BytesMut::new();
    encode_frame(&[7; 100], &mut stream);
    decoder.extend(&stream);
    assert_eq!(decoder.decode_next().unwrap().unwrap().len(), 100);
}

#[test]
fn negative_length_is_rejected() {
    let mut decoder = FrameDecoder::new(100);
    decoder.extend(&(-1i32).to_be_bytes());
    assert!(matches!(
        decoder.decode_next(),
        Err(ProtocolError::FrameLengthNegative { length: -1 })
    ));
}

#[test]
fn partial_prefix_waits_for_more_bytes() {
    let mut decoder = FrameDecoder::new(100);
    decoder.extend(&[0, 0, 0]);
    assert!(decoder.decode_next().unwrap().is_none());
    assert_eq!(decoder.buffered_bytes(), FRAME_PREFIX_BYTES - 1);
}

#[tokio::test]
async fn reader_returns_pipelined_frames_then_clean_eof() {
    let stream = encode_all(&[b"one".to_vec(), Vec::new(), b"three".to_vec()]);
    let mut source: &[u8] = &stream;
    let mut reader = FrameReader::new(1024);
    assert_eq!(
        &reader.read_frame(&mut source).await.unwrap().unwrap()[..],
        b"one"
    );
    assert!(reader
        .read_frame(&mut source)
        .await
        .unwrap()
        .unwrap()
        .is_empty());
    assert_eq!(
        &reader.read_frame(&mut source).await.unwrap().unwrap()[..],
        b"three"
    );
    assert!(reader.read_frame(&mut source).await.unwrap().is_none());
}

#[tokio::test]
async fn reader_reports_truncation_at_eof() {
    let stream = encode_all(&[b"complete".to_vec()]);
    let mut source: &[u8] = &stream[..stream.len() - 2];
    let mut reader = FrameReader::new(1024);
    let error = reader.read_frame(&mut source).await.unwrap_err();
    assert!(matches!(
        error,
        ProtocolError::FrameTruncated { buffered_bytes: 10 }
    ));
}

#[tokio::test]
async fn write_frame_prefixes_and_flushes() {
    let (mut client, mut server) = tokio::io::duplex(64);
    broker::protocol::frame::write_frame(&mut client, b"hello")
        .await
        .unwrap();
    let mut reader = FrameReader::new(1024);
    assert_eq!(
        &reader.read_frame(&mut server).await.unwrap().unwrap()[..],
        b"hello"
    );
}
