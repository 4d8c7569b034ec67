//! File identity by content: a hash of the first bytes (at most 1 KiB).

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Bytes covered by a full fingerprint.
pub(crate) const FP_MAX: usize = 1024;
/// A content-only match (another inode) needs at least this many fingerprinted bytes.
pub(crate) const MIN_CONTENT_FP: u32 = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub(crate) len: u32,
    pub(crate) hash: u64,
}

fn hash(bytes: &[u8]) -> u64 {
    let digest = Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

impl Fingerprint {
    /// The fingerprint of a file whose first bytes are `prefix` (only `FP_MAX` are used).
    pub(crate) fn of(prefix: &[u8]) -> Self {
        let bytes = &prefix[..prefix.len().min(FP_MAX)];
        Fingerprint {
            len: u32::try_from(bytes.len()).unwrap_or(0),
            hash: hash(bytes),
        }
    }

    /// Whether a file starting with `prefix` has this fingerprint.
    pub(crate) fn matches(&self, prefix: &[u8]) -> bool {
        let len = self.len as usize;
        prefix.len() >= len && hash(&prefix[..len]) == self.hash
    }

    pub(crate) fn to_hex(self) -> String {
        format!("{:016x}", self.hash)
    }

    pub(crate) fn from_hex(len: u32, text: &str) -> Option<Self> {
        let hash = u64::from_str_radix(text, 16).ok()?;
        (len as usize <= FP_MAX).then_some(Fingerprint { len, hash })
    }
}

/// The first bytes of an open file (at most `FP_MAX`, at most `len`).
pub(crate) fn read_prefix(file: &File, len: u64) -> std::io::Result<Vec<u8>> {
    let want = usize::try_from(len).unwrap_or(FP_MAX).min(FP_MAX);
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// The first decompressed bytes of a gzip file (at most `FP_MAX`). Fails on a file that is
/// not gzip or is still too short to hold them.
pub(crate) fn read_gz_prefix(path: &Path) -> std::io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let mut dec = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
    let mut buf = vec![0u8; FP_MAX];
    let mut got = 0;
    while got < FP_MAX {
        match dec.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_fingerprints_match_grown_files() {
        let fp = Fingerprint::of(b"hello\n");
        assert_eq!(fp.len, 6);
        assert!(fp.matches(b"hello\nworld\n"));
        assert!(!fp.matches(b"hell"));
        assert!(!fp.matches(b"jello\nworld\n"));
        let long = vec![b'x'; 3000];
        assert_eq!(Fingerprint::of(&long).len as usize, FP_MAX);
        let back = Fingerprint::from_hex(fp.len, &fp.to_hex());
        assert_eq!(back, Some(fp));
    }
}
