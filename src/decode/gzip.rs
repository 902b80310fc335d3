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
pub fn inflate(gz: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
    out.clear();
    // The trailer holds the (last member's) size mod 2^32: a good first guess for capacity.
    if let Some(hint) = size_hint(gz) {
        out.reserve(hint.min(limit).saturating_add(crate::decode::PADDING));
    }
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
