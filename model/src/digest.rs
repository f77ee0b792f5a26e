//! SHA-256 of long texts written in small pieces.
//!
//! The seal and the planner's inventory digest hash host lists a name at a time. Given a name
//! at a time, `sha2` compresses one 64-byte block per call as its buffer fills, and the call
//! costs more than the block; fed runs of a few thousand blocks it runs at full speed. The
//! digest is the same either way: only how the bytes reach the hash changes.

use sha2::{Digest, Sha256};

/// SHA-256 of what is written to it, fed to the hash in chunks of [`HashWriter::CHUNK`] bytes.
pub struct HashWriter {
    hasher: Sha256,
    buffer: Vec<u8>,
}

impl Default for HashWriter {
    fn default() -> Self {
        HashWriter {
            hasher: Sha256::new(),
            buffer: Vec::with_capacity(Self::CHUNK),
        }
    }
}

impl HashWriter {
    /// What is gathered before it is hashed.
    pub const CHUNK: usize = 32 * 1024;

    #[inline]
    pub fn put(&mut self, bytes: &[u8]) {
        if bytes.len() <= Self::CHUNK - self.buffer.len() {
            self.buffer.extend_from_slice(bytes);
        } else {
            self.put_past_the_chunk(bytes);
        }
    }

    /// `prefix`, then `text` between double quotes: a string of a JSON list, with no escape.
    #[inline]
    pub fn put_quoted(&mut self, prefix: &[u8], text: &[u8]) {
        let length = prefix.len() + text.len() + 2;
        if length > Self::CHUNK - self.buffer.len() {
            self.put(prefix);
            self.put(b"\"");
            self.put(text);
            self.put(b"\"");
            return;
        }
        self.buffer.extend_from_slice(prefix);
        self.buffer.push(b'"');
        self.buffer.extend_from_slice(text);
        self.buffer.push(b'"');
    }

    #[cold]
    fn put_past_the_chunk(&mut self, bytes: &[u8]) {
        self.hasher.update(&self.buffer);
        self.buffer.clear();
        if bytes.len() >= Self::CHUNK {
            self.hasher.update(bytes);
        } else {
            self.buffer.extend_from_slice(bytes);
        }
    }

    /// `sha256:` and the digest in lower-case hex.
    pub fn finish(mut self) -> String {
        self.hasher.update(&self.buffer);
        format!("sha256:{:x}", self.hasher.finalize())
    }
}

impl std::io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.put(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces of every size, across and beyond the chunk, hash as the whole text does.
    #[test]
    fn pieces_hash_as_the_whole() {
        let text: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let whole = format!("sha256:{:x}", Sha256::digest(&text));
        for sizes in [
            vec![1],
            vec![13, 1],
            vec![63, 64, 65],
            vec![HashWriter::CHUNK - 1, 2],
            vec![HashWriter::CHUNK],
            vec![3, HashWriter::CHUNK + 5, 70_000],
        ] {
            let mut writer = HashWriter::default();
            let mut at = 0;
            for size in sizes.iter().cycle() {
                let end = (at + size).min(text.len());
                writer.put(&text[at..end]);
                at = end;
                if at == text.len() {
                    break;
                }
            }
            assert_eq!(writer.finish(), whole, "pieces of {sizes:?}");
        }
        assert_eq!(
            HashWriter::default().finish(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
