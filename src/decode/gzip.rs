//! Gzip detection and decompression. Detection is by the magic bytes, never by file name;
//! multi-member streams (concatenated gzip files) are read to the end.

use std::io::Read;

use flate2::read::MultiGzDecoder;

/// True when `bytes` start with the gzip magic number `1f 8b`.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// Why a gzip stream could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum InflateError {
    /// The decompressed size passed the configured limit.
    #[error("decompresses to more than the {limit}-byte limit")]
    TooLarge { limit: usize },
    /// The stream is corrupt or ends early; `out` holds what came before the fault.
    #[error(
        "gzip stream is corrupt or truncated after {decompressed} decompressed bytes: {source}"
    )]
    Corrupt {
        decompressed: usize,
        #[source]
        source: std::io::Error,
    },
}

/// The size the gzip trailer states (the last member's, modulo 2^32): a hint only, since
/// whoever wrote the object chose it.
pub fn size_hint(gz: &[u8]) -> Option<usize> {
    gz.last_chunk::<4>()
        .filter(|_| gz.len() >= 18)
        .map(|tail| u32::from_le_bytes(*tail) as usize)
}

/// How many bytes `gz` inflates to (up to a fault, if corrupt), learned without keeping
/// them; `None` when more than `limit`.
pub fn inflated_len(gz: &[u8], limit: usize) -> Option<usize> {
    let mut reader = MultiGzDecoder::new(gz).take(limit as u64 + 1);
    let mut sink = vec![0u8; 64 << 10];
    let mut total = 0usize;
    loop {
        match reader.read(&mut sink) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    (total <= limit).then_some(total)
}

/// Decompresses `gz` into `out` (cleared first), refusing more than `limit` bytes of output.
/// On a corrupt or truncated stream, `out` keeps the bytes decompressed before the fault.
///
/// CloudTrail writes each object as one gzip member whose trailer states its size: such a
/// member is inflated in one call by libdeflate (about 2.4 times zlib-rs's speed on CloudTrail
/// objects). Anything else (several members, a trailer that lies, a corrupt or truncated
/// stream, a size over `limit`) is read again by the streaming decoder, which reads every
/// member and keeps what came before a fault.
pub fn inflate(gz: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
    out.clear();
    // The trailer holds the (last member's) size mod 2^32: a good first guess for capacity.
    if let Some(hint) = size_hint(gz) {
        out.reserve(hint.min(limit).saturating_add(crate::decode::PADDING));
        if hint <= limit && whole::inflate_one_member(gz, out, hint) {
            return Ok(());
        }
    }
    inflate_streaming(gz, out, limit)
}

/// [`inflate`] by the streaming decoder (zlib-rs) alone, every member in turn: what `inflate`
/// falls back on, and the comparison `trailhound bench` shows.
pub fn inflate_streaming(gz: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
    out.clear();
    let mut reader = MultiGzDecoder::new(gz).take(limit as u64 + 1);
    match reader.read_to_end(out) {
        Ok(_) if out.len() > limit => Err(InflateError::TooLarge { limit }),
        Ok(_) => Ok(()),
        Err(source) => Err(InflateError::Corrupt {
            decompressed: out.len(),
            source,
        }),
    }
}

/// One-call inflation of a whole gzip member with libdeflate.
mod whole {
    use std::cell::RefCell;
    use std::ffi::c_void;

    use libdeflate_sys::{
        libdeflate_alloc_decompressor, libdeflate_decompressor, libdeflate_free_decompressor,
        libdeflate_gzip_decompress_ex, libdeflate_result_LIBDEFLATE_SUCCESS,
    };

    /// A libdeflate decompressor (about 11 KB of tables), one per thread and reused.
    struct Decompressor(*mut libdeflate_decompressor);

    impl Drop for Decompressor {
        fn drop(&mut self) {
            // SAFETY: the pointer came from libdeflate_alloc_decompressor, is not null, and
            // is freed once, here.
            unsafe { libdeflate_free_decompressor(self.0) }
        }
    }

    thread_local! {
        static DECOMPRESSOR: RefCell<Option<Decompressor>> = const { RefCell::new(None) };
    }

    /// Inflates `gz` into `out` (empty, with room for `size` bytes) when it is exactly one
    /// gzip member inflating to `size` bytes, its CRC checked; false, with `out` still empty,
    /// for anything else.
    pub(super) fn inflate_one_member(gz: &[u8], out: &mut Vec<u8>, size: usize) -> bool {
        debug_assert!(out.is_empty());
        if out.capacity() < size {
            return false;
        }
        DECOMPRESSOR.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                // SAFETY: no preconditions; a null return (no memory) is checked below.
                let d = unsafe { libdeflate_alloc_decompressor() };
                if d.is_null() {
                    return false;
                }
                *cell = Some(Decompressor(d));
            }
            let Some(Decompressor(d)) = cell.as_ref() else {
                return false;
            };
            let (mut read, mut written) = (0usize, 0usize);
            // SAFETY: `gz` is valid for reads of gz.len() bytes; `out` has capacity for
            // `size` bytes (checked above), and libdeflate writes at most `size` bytes there
            // and reports how many in `written`; the decompressor is used by this thread only.
            let result = unsafe {
                libdeflate_gzip_decompress_ex(
                    *d,
                    gz.as_ptr().cast::<c_void>(),
                    gz.len(),
                    out.as_mut_ptr().cast::<c_void>(),
                    size,
                    &mut read,
                    &mut written,
                )
            };
            // One member spanning the whole object, and the size its trailer stated.
            if result != libdeflate_result_LIBDEFLATE_SUCCESS || read != gz.len() || written != size
            {
                return false;
            }
            // SAFETY: libdeflate initialised the first `written` bytes, within capacity.
            unsafe { out.set_len(written) };
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn multi_member_streams_are_read_whole() {
        let mut both = gz(b"hello ");
        both.extend(gz(b"world"));
        let mut out = Vec::new();
        inflate(&both, &mut out, 1 << 20).unwrap();
        assert_eq!(out, b"hello world");
        assert!(is_gzip(&both));
        assert!(!is_gzip(b"{\"Records\":[]}"));
    }

    #[test]
    fn a_trailer_that_lies_or_trailing_bytes_fall_back_to_the_streaming_read() {
        let data: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let whole = gz(&data);
        let mut out = Vec::new();
        inflate(&whole, &mut out, 1 << 20).unwrap();
        assert_eq!(out, data);
        // The trailer's size understated, then overstated: the same bytes either way, or the
        // CRC's refusal; never a short or padded body.
        for claimed in [1u32, data.len() as u32 + 7] {
            let mut lying = whole.clone();
            let n = lying.len();
            lying[n - 4..].copy_from_slice(&claimed.to_le_bytes());
            match inflate(&lying, &mut out, 1 << 20) {
                Ok(()) => assert_eq!(out, data),
                Err(InflateError::Corrupt { decompressed, .. }) => {
                    assert_eq!(&out[..], &data[..decompressed])
                }
                Err(e) => panic!("{e}"),
            }
        }
        // A second member after the first: both are read.
        let mut two = whole.clone();
        two.extend(gz(b"tail"));
        inflate(&two, &mut out, 1 << 20).unwrap();
        assert_eq!(out.len(), data.len() + 4);
        assert!(out.ends_with(b"tail"));
        // A corrupt body is refused, keeping what the stream gave before the fault.
        let mut corrupt = whole.clone();
        let mid = corrupt.len() / 2;
        corrupt[mid] ^= 0x55;
        match inflate(&corrupt, &mut out, 1 << 20) {
            Err(InflateError::Corrupt { decompressed, .. }) => assert_eq!(out.len(), decompressed),
            other => panic!("a corrupt body gave {other:?}"),
        }
    }

    #[test]
    fn limit_and_truncation_are_reported() {
        let data = vec![b'x'; 10_000];
        let mut out = Vec::new();
        assert!(matches!(
            inflate(&gz(&data), &mut out, 9_999),
            Err(InflateError::TooLarge { limit: 9_999 })
        ));
        inflate(&gz(&data), &mut out, 10_000).unwrap();
        let whole = gz(&data);
        let cut = &whole[..whole.len() / 2];
        assert!(matches!(
            inflate(cut, &mut out, 1 << 20),
            Err(InflateError::Corrupt { .. })
        ));
        let mut corrupt = whole.clone();
        corrupt[12] ^= 0xff;
        corrupt[14] ^= 0xff;
        assert!(inflate(&corrupt, &mut out, 1 << 20).is_err());
    }
}
