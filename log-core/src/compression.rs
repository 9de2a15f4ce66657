//! The record codecs of Kafka batches (attributes bits 0-2), decoded within a bound.
//!
//! Kafka's formats, as producers write them and as this module reads and writes them:
//! - 1 gzip: a gzip stream (RFC 1952); several members are read as one (Java's `GZIPInputStream`).
//! - 2 snappy: the xerial framing Kafka's Java client writes (`\x82SNAPPY\0`, version, compatible
//!   version, then `u32` length-prefixed raw snappy blocks), or one raw snappy block as
//!   librdkafka writes it; xerial's reader takes both, so does this one. Written framed.
//! - 3 lz4: the LZ4 frame format (KIP-57), written with independent 64 KiB blocks and no content
//!   checksum (Kafka's `KafkaLZ4BlockOutputStream` reads no dependent blocks).
//! - 4 zstd: a zstd frame.
//!
//! The codecs are maintained crates (flate2, snap, lz4, zstd); only snappy's xerial framing is
//! spelled out here. Every decoder stops at [`DECOMPRESSED_BYTES_MAX`] (or the caller's smaller
//! bound): a batch of a few KiB that inflates to gigabytes (a decompression bomb) is refused
//! with [`CompressionError::TooLarge`] after at most the bound in memory, never an allocation of
//! what the input claims.

use std::io::Read;

use crate::batch::{BATCH_BYTES_LIMIT, HEADER_BYTES};

/// The most bytes a batch's records may decompress to. Chosen so that the records of any batch
/// the log accepts fit an uncompressed batch under the hard batch limit, which compaction and a
/// broker-side `compression.type=uncompressed` rely on.
pub const DECOMPRESSED_BYTES_MAX: usize = BATCH_BYTES_LIMIT - HEADER_BYTES;

/// zstd frames may ask for a window of at most 2^24 bytes (16 MiB): zstd's own default allows
/// 2^27, memory a small forged frame header could make every validation allocate. Producers'
/// levels up to 19 use windows of at most 2^23.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// zstd level used when the broker writes zstd (compaction, `compression.type=zstd`): zstd's
/// default, as Kafka's.
const ZSTD_LEVEL: i32 = 3;

/// xerial's snappy stream magic (8 bytes), followed by version and compatible version (i32 each).
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";
/// The whole xerial header as snappy-java writes it: magic, version 1, compatible version 1.
const XERIAL_HEADER: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";
/// Uncompressed bytes per xerial block (snappy-java's default block size).
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

const _: () = assert!(DECOMPRESSED_BYTES_MAX + HEADER_BYTES <= BATCH_BYTES_LIMIT);
const _: () = assert!(1 << ZSTD_WINDOW_LOG_MAX <= DECOMPRESSED_BYTES_MAX);

/// A batch codec (Kafka's `CompressionType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Codec {
    /// No compression (0).
    None,
    /// gzip (1).
    Gzip,
    /// snappy (2).
    Snappy,
    /// lz4 frame (3).
    Lz4,
    /// zstd (4).
    Zstd,
}

impl Codec {
    /// Every codec, in id order.
    pub const ALL: [Codec; 5] = [
        Codec::None,
        Codec::Gzip,
        Codec::Snappy,
        Codec::Lz4,
        Codec::Zstd,
    ];

    /// The codec of attributes bits 0-2, `None` for an id Kafka does not define (5-7).
    pub fn from_id(id: u8) -> Option<Codec> {
        Codec::ALL.get(usize::from(id)).copied()
    }

    /// The id in a batch's attributes.
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }

    /// Kafka's name (`compression.type` values; `none` is spelled `uncompressed` there).
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Gzip => "gzip",
            Codec::Snappy => "snappy",
            Codec::Lz4 => "lz4",
            Codec::Zstd => "zstd",
        }
    }

    /// The codec named `name` (`none` and Kafka's `uncompressed` both mean no compression).
    pub fn from_name(name: &str) -> Option<Codec> {
        match name {
            "uncompressed" => Some(Codec::None),
            _ => Codec::ALL.into_iter().find(|c| c.name() == name),
        }
    }
}

/// Why compressed bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompressionError {
    /// The bytes are not a valid stream of their codec (`CORRUPT_MESSAGE`).
    #[error("corrupt {codec} data: {reason}")]
    Corrupt {
        /// The codec's name.
        codec: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// The stream inflates past the bound (`MESSAGE_TOO_LARGE`).
    #[error("{codec} data decompresses to more than {bytes_max} bytes")]
    TooLarge {
        /// The codec's name.
        codec: &'static str,
        /// The bound that was passed.
        bytes_max: usize,
    },
}

/// Decodes `input` of `codec`, refusing output past `bytes_max` (at most
/// [`DECOMPRESSED_BYTES_MAX`]). `Codec::None` returns a copy.
pub fn decompress(
    codec: Codec,
    input: &[u8],
    bytes_max: usize,
) -> Result<Vec<u8>, CompressionError> {
    assert!(bytes_max <= DECOMPRESSED_BYTES_MAX, "the bound is bounded");
    let output = match codec {
        Codec::None => bounded_copy(input, bytes_max, codec),
        Codec::Gzip => read_bounded(flate2::read::MultiGzDecoder::new(input), bytes_max, codec),
        Codec::Snappy => snappy_decompress(input, bytes_max),
        Codec::Lz4 => {
            let mut decoder = lz4::Decoder::new(input).map_err(|e| corrupt(codec, &e))?;
            let output = read_bounded(&mut decoder, bytes_max, codec)?;
            // The decoder reads a stream cut short as its end; only `finish` tells.
            let (_input, finished) = decoder.finish();
            finished.map_err(|e| corrupt(codec, &e))?;
            Ok(output)
        }
        Codec::Zstd => zstd_decompress(input, bytes_max),
    }?;
    assert!(output.len() <= bytes_max, "decoders stop at the bound");
    Ok(output)
}

/// Encodes `input` with `codec` (what the broker writes: compaction, a topic's codec).
pub fn compress(codec: Codec, input: &[u8]) -> Vec<u8> {
    assert!(
        input.len() <= DECOMPRESSED_BYTES_MAX,
        "records of one batch"
    );
    let output = match codec {
        Codec::None => input.to_vec(),
        Codec::Gzip => {
            use std::io::Write;
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(input).expect("writing to memory");
            encoder.finish().expect("writing to memory")
        }
        Codec::Snappy => snappy_compress(input),
        Codec::Lz4 => {
            use std::io::Write;
            let mut encoder = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .checksum(lz4::ContentChecksum::NoChecksum)
                .build(Vec::new())
                .expect("lz4 encoder in memory");
            encoder.write_all(input).expect("writing to memory");
            let (output, finished) = encoder.finish();
            finished.expect("writing to memory");
            output
        }
        Codec::Zstd => ZSTD_COMPRESSOR
            .with(|compressor| match compressor.try_borrow_mut() {
                Ok(mut compressor) => compressor.compress(input),
                // Never nested today; a fresh context is the safe answer if it ever is.
                Err(_) => zstd::bulk::compress(input, ZSTD_LEVEL),
            })
            .expect("zstd in memory"),
    };
    debug_assert!(
        decompress(codec, &output, DECOMPRESSED_BYTES_MAX).as_deref() == Ok(input),
        "what we write reads back"
    );
    output
}

thread_local! {
    /// This thread's zstd decompression context. Creating one allocates and clears about
    /// 100 KiB, which cost more than decompressing a small batch (in the simulator, creating
    /// contexts was 4-7% of all CPU time). Reuse does not change what a decompression answers:
    /// each starts with a session reset (see `zstd_decompress`).
    static ZSTD_DECOMPRESSOR: std::cell::RefCell<zstd::zstd_safe::DCtx<'static>> =
        std::cell::RefCell::new(zstd::zstd_safe::DCtx::create());
    /// This thread's zstd compressor, reused for the same reason.
    static ZSTD_COMPRESSOR: std::cell::RefCell<zstd::bulk::Compressor<'static>> =
        std::cell::RefCell::new(
            zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("a valid zstd level"),
        );
}

/// Decodes a zstd stream (every frame in it) with this thread's context, refusing output past
/// `bytes_max` and windows past [`ZSTD_WINDOW_LOG_MAX`].
fn zstd_decompress(input: &[u8], bytes_max: usize) -> Result<Vec<u8>, CompressionError> {
    let codec = Codec::Zstd;
    let decode = |context: &mut zstd::zstd_safe::DCtx<'static>| {
        // `with_context` resets the context's session first (the zstd crate documents it): a
        // decompression that failed half-way leaves nothing behind.
        let mut decoder = zstd::stream::read::Decoder::with_context(input, context);
        decoder
            .window_log_max(ZSTD_WINDOW_LOG_MAX)
            .map_err(|e| corrupt(codec, &e))?;
        read_bounded(decoder, bytes_max, codec)
    };
    ZSTD_DECOMPRESSOR.with(|context| match context.try_borrow_mut() {
        Ok(mut context) => decode(&mut context),
        // Never nested today; a fresh context is the safe answer if it ever is.
        Err(_) => decode(&mut zstd::zstd_safe::DCtx::create()),
    })
}

fn corrupt(codec: Codec, error: &dyn std::fmt::Display) -> CompressionError {
    CompressionError::Corrupt {
        codec: codec.name(),
        reason: error.to_string(),
    }
}

fn too_large(codec: Codec, bytes_max: usize) -> CompressionError {
    CompressionError::TooLarge {
        codec: codec.name(),
        bytes_max,
    }
}

fn bounded_copy(input: &[u8], bytes_max: usize, codec: Codec) -> Result<Vec<u8>, CompressionError> {
    if input.len() > bytes_max {
        return Err(too_large(codec, bytes_max));
    }
    Ok(input.to_vec())
}

/// Reads a decoder to its end, at most `bytes_max` bytes: one byte more is a refusal. Memory grows
/// with what was actually produced, never with a size the stream announces.
fn read_bounded(
    decoder: impl Read,
    bytes_max: usize,
    codec: Codec,
) -> Result<Vec<u8>, CompressionError> {
    let mut output = Vec::new();
    let limit = u64::try_from(bytes_max).expect("usize fits u64") + 1;
    decoder
        .take(limit)
        .read_to_end(&mut output)
        .map_err(|e| corrupt(codec, &e))?;
    if output.len() > bytes_max {
        return Err(too_large(codec, bytes_max));
    }
    Ok(output)
}

/// Raw snappy, or xerial-framed when the stream starts with xerial's magic (as snappy-java reads).
fn snappy_decompress(input: &[u8], bytes_max: usize) -> Result<Vec<u8>, CompressionError> {
    let codec = Codec::Snappy;
    if !input.starts_with(XERIAL_MAGIC) || input.len() < XERIAL_HEADER.len() {
        return snappy_block(input, bytes_max, Vec::new());
    }
    let mut rest = &input[XERIAL_HEADER.len()..];
    let mut output = Vec::new();
    while !rest.is_empty() {
        let Some((length, after)) = rest.split_first_chunk::<4>() else {
            return Err(corrupt(codec, &"truncated xerial block length"));
        };
        let length = u32::from_be_bytes(*length) as usize;
        let Some(block) = after.get(..length) else {
            return Err(corrupt(
                codec,
                &format!("xerial block of {length} bytes past the end"),
            ));
        };
        output = snappy_block(block, bytes_max, output)?;
        rest = &after[length..];
    }
    Ok(output)
}

/// Appends one raw snappy block to `output`, refusing before allocating if its announced length
/// would take `output` past `bytes_max`.
fn snappy_block(
    block: &[u8],
    bytes_max: usize,
    mut output: Vec<u8>,
) -> Result<Vec<u8>, CompressionError> {
    let codec = Codec::Snappy;
    let length = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, &e))?;
    if length > bytes_max.saturating_sub(output.len()) {
        return Err(too_large(codec, bytes_max));
    }
    let start = output.len();
    output.resize(start + length, 0);
    let written = snap::raw::Decoder::new()
        .decompress(block, &mut output[start..])
        .map_err(|e| corrupt(codec, &e))?;
    if written != length {
        return Err(corrupt(codec, &"block shorter than announced"));
    }
    Ok(output)
}

/// xerial-framed snappy, as Kafka's Java producer writes it.
fn snappy_compress(input: &[u8]) -> Vec<u8> {
    let mut output = XERIAL_HEADER.to_vec();
    let mut encoder = snap::raw::Encoder::new();
    for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
        let block = encoder
            .compress_vec(chunk)
            .expect("a block of 32 KiB is within snappy's limits");
        let length = u32::try_from(block.len()).expect("a compressed 32 KiB block");
        output.extend_from_slice(&length.to_be_bytes());
        output.extend_from_slice(&block);
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips_empty_small_and_large_inputs() {
        for codec in Codec::ALL {
            for input in [Vec::new(), b"x".to_vec(), sample()] {
                let packed = compress(codec, &input);
                let unpacked = decompress(codec, &packed, DECOMPRESSED_BYTES_MAX).expect("reads");
                assert_eq!(unpacked, input, "{codec:?}");
            }
        }
    }

    #[test]
    fn names_and_ids_map_both_ways() {
        for codec in Codec::ALL {
            assert_eq!(Codec::from_id(codec.id()), Some(codec));
            assert_eq!(Codec::from_name(codec.name()), Some(codec));
        }
        assert_eq!(Codec::from_name("uncompressed"), Some(Codec::None));
        assert_eq!(Codec::from_name("brotli"), None);
        for id in 5..=7 {
            assert_eq!(Codec::from_id(id), None);
        }
    }

    #[test]
    fn raw_snappy_as_librdkafka_writes_it_is_read() {
        let input = sample();
        let raw = snap::raw::Encoder::new()
            .compress_vec(&input)
            .expect("compresses");
        assert_eq!(
            decompress(Codec::Snappy, &raw, DECOMPRESSED_BYTES_MAX).expect("reads"),
            input
        );
    }

    #[test]
    fn a_bomb_is_refused_at_the_bound_for_every_codec() {
        let zeros = vec![0u8; 4 << 20];
        for codec in Codec::ALL {
            let packed = compress(codec, &zeros);
            let bound = 1 << 20;
            let verdict = decompress(codec, &packed, bound);
            assert!(
                matches!(verdict, Err(CompressionError::TooLarge { bytes_max, .. }) if bytes_max == bound),
                "{codec:?}: {verdict:?}"
            );
            assert!(
                decompress(codec, &packed, zeros.len()).is_ok(),
                "{codec:?} at the bound"
            );
        }
    }

    #[test]
    fn a_forged_snappy_length_is_refused_before_allocating() {
        // A varint announcing ~4 GiB of output, then nothing.
        let forged = [0xff, 0xff, 0xff, 0xff, 0x0f];
        let verdict = decompress(Codec::Snappy, &forged, DECOMPRESSED_BYTES_MAX);
        assert!(
            matches!(verdict, Err(CompressionError::TooLarge { .. })),
            "{verdict:?}"
        );
    }

    #[test]
    fn garbage_and_truncation_are_corrupt_not_panics() {
        let input = sample();
        for codec in &Codec::ALL[1..] {
            let packed = compress(*codec, &input);
            // (An empty stream may read as no records: the record count check refuses that.)
            for cut in [1, 5, packed.len() / 2, packed.len() - 1] {
                let verdict = decompress(*codec, &packed[..cut], DECOMPRESSED_BYTES_MAX);
                assert!(verdict.is_err(), "{codec:?} truncated at {cut}");
            }
            let verdict = decompress(*codec, b"definitely not compressed", 1 << 20);
            assert!(
                matches!(verdict, Err(CompressionError::Corrupt { .. })),
                "{codec:?}: {verdict:?}"
            );
        }
    }

    /// The zstd context is reused per thread: a stream cut short, one past the bound and one
    /// of garbage must leave nothing behind for the next stream.
    #[test]
    fn a_failed_zstd_stream_leaves_the_reused_context_clean() {
        let input = sample();
        let packed = compress(Codec::Zstd, &input);
        let other = compress(Codec::Zstd, b"another batch's records");
        let failures: [(&[u8], usize); 3] = [
            (&packed[..packed.len() / 2], DECOMPRESSED_BYTES_MAX),
            (&packed, input.len() - 1),
            (b"definitely not compressed", DECOMPRESSED_BYTES_MAX),
        ];
        for (stream, bytes_max) in failures {
            assert!(decompress(Codec::Zstd, stream, bytes_max).is_err());
            assert_eq!(
                decompress(Codec::Zstd, &other, DECOMPRESSED_BYTES_MAX).as_deref(),
                Ok(&b"another batch's records"[..])
            );
            assert_eq!(
                decompress(Codec::Zstd, &packed, DECOMPRESSED_BYTES_MAX),
                Ok(input.clone())
            );
        }
    }
}
