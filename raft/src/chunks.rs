//! The stored snapshot's bytes, in chunks of [`CHUNK`] bytes in sled.
//!
//! A snapshot of a large state is hundreds of megabytes (652 MB for a
//! million containers). Kept as one sled value, building one held the
//! encoded bytes, sled's copy of them and its write buffers at once: three
//! times the snapshot on top of the state (`cargo bench -p swarm-raft
//! --bench snapshot_mem`). In chunks, the encoder writes each megabyte as
//! it goes and a reader decodes from them one at a time.
//!
//! sled 0.34 keeps in memory every value it stores or reads, whatever its
//! cache capacity, until the database is closed: about the snapshot's
//! size. The chunks are therefore kept in a database of their own
//! ([`Store`]), open only while a snapshot is written or read.
//!
//! Keys in the snapshots tree: [`CHUNKS`] records the current chunks (a
//! generation, their count and length); chunk `i` of generation `g` is
//! `c/`, then `g` and `i` big-endian. A snapshot's chunks are written under
//! a new generation, then the record and the snapshot's metadata are
//! switched in one batch, then the older chunks are removed: a crash
//! leaves the previous snapshot whole. Data written before chunks, under
//! one key ([`LEGACY_DATA`]), is still read, and removed by the next save.

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Bytes per chunk.
pub(crate) const CHUNK: usize = 1 << 20;

/// How long a database still locked by its last close is waited for.
const RELOCK_WITHIN: Duration = Duration::from_secs(10);

/// The sled database that holds the chunks, open; closed when dropped.
pub(crate) struct Store {
    db: sled::Db,
}

impl Store {
    /// Opens the database in `dir` (made when missing). sled sometimes lets
    /// go of its lock on the files a moment after the last close (its I/O
    /// threads finish first; seen once in 35 runs of the store's test,
    /// opening right after a build): a lock still held is waited for, up to
    /// [`RELOCK_WITHIN`].
    pub(crate) fn open(dir: &Path) -> Result<Store, sled::Error> {
        let started = Instant::now();
        loop {
            match sled::Config::new()
                .path(dir)
                .cache_capacity(16 * 1024 * 1024)
                .open()
            {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && started.elapsed() < RELOCK_WITHIN =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                opened => return opened.map(|db| Store { db }),
            }
        }
    }

    /// The database's tree.
    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.db
    }
}

/// The key of the record of the current chunks.
pub(crate) const CHUNKS: &[u8] = b"chunks";

/// The key the whole snapshot was stored under before chunks.
pub(crate) const LEGACY_DATA: &[u8] = b"data";

/// The start of every chunk's key.
const CHUNK_PREFIX: &[u8] = b"c/";

/// The length of a chunk's key.
const KEY_LEN: usize = 14;

/// Which chunks hold the current snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Chunks {
    /// Their generation (one per snapshot saved).
    pub(crate) generation: u64,
    /// How many there are.
    pub(crate) count: u32,
    /// Their length in all.
    pub(crate) len: u64,
}

fn key(generation: u64, index: u32) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    key[..2].copy_from_slice(CHUNK_PREFIX);
    key[2..10].copy_from_slice(&generation.to_be_bytes());
    key[10..].copy_from_slice(&index.to_be_bytes());
    key
}

fn io_err(e: sled::Error) -> io::Error {
    io::Error::other(e)
}

/// The record of the current chunks, if any.
pub(crate) fn current(tree: &sled::Tree) -> Result<Option<Chunks>, sled::Error> {
    match tree.get(CHUNKS)? {
        Some(bytes) => bincode::deserialize(&bytes).map(Some).map_err(|e| {
            sled::Error::Unsupported(format!("unreadable snapshot chunk record: {e}"))
        }),
        None => Ok(None),
    }
}

/// Writes bytes into the chunks of one generation, a chunk as soon as it
/// is full; [`ChunkWriter::finish`] writes the last one and says which
/// chunks were written. Nothing refers to them until the caller records
/// them.
pub(crate) struct ChunkWriter<'a> {
    tree: &'a sled::Tree,
    generation: u64,
    buf: Vec<u8>,
    count: u32,
    len: u64,
}

impl<'a> ChunkWriter<'a> {
    /// A writer of the generation after the current one (whose chunks may
    /// be left from a save that crashed: they are removed first).
    pub(crate) fn new(tree: &'a sled::Tree) -> Result<Self, sled::Error> {
        let generation = current(tree)?.map_or(1, |c| c.generation + 1);
        let mut prefix = CHUNK_PREFIX.to_vec();
        prefix.extend_from_slice(&generation.to_be_bytes());
        for stale in tree.scan_prefix(&prefix).keys() {
            tree.remove(stale?)?;
        }
        Ok(Self {
            tree,
            generation,
            buf: Vec::with_capacity(CHUNK),
            count: 0,
            len: 0,
        })
    }

    fn write_chunk(&mut self) -> Result<(), sled::Error> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.len += chunk.len() as u64;
        self.tree.insert(key(self.generation, self.count), chunk)?;
        self.count += 1;
        Ok(())
    }

    /// Writes what is left and returns the record of the chunks.
    pub(crate) fn finish(mut self) -> Result<Chunks, sled::Error> {
        if !self.buf.is_empty() {
            self.write_chunk()?;
        }
        Ok(Chunks {
            generation: self.generation,
            count: self.count,
            len: self.len,
        })
    }
}

impl Write for ChunkWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let n = bytes.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&bytes[..n]);
        if self.buf.len() == CHUNK {
            self.write_chunk().map_err(io_err)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Removes every chunk but those of `keep`.
pub(crate) fn remove_others(tree: &sled::Tree, keep: &Chunks) -> Result<(), sled::Error> {
    for k in tree.scan_prefix(CHUNK_PREFIX).keys() {
        let k = k?;
        if k.len() == KEY_LEN && k[2..10] != keep.generation.to_be_bytes() {
            tree.remove(k)?;
        }
    }
    Ok(())
}

/// Reads the bytes of `chunks`, one chunk in memory at a time.
pub(crate) struct ChunkReader<'a> {
    tree: &'a sled::Tree,
    chunks: Chunks,
    next: u32,
    chunk: sled::IVec,
    at: usize,
}

impl<'a> ChunkReader<'a> {
    /// A reader of `chunks` from their start.
    pub(crate) fn new(tree: &'a sled::Tree, chunks: Chunks) -> Self {
        Self {
            tree,
            chunks,
            next: 0,
            chunk: sled::IVec::default(),
            at: 0,
        }
    }
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.next == self.chunks.count {
                return Ok(0);
            }
            self.chunk = self
                .tree
                .get(key(self.chunks.generation, self.next))
                .map_err(io_err)?
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "snapshot chunk {} of {} (generation {}) is missing",
                            self.next, self.chunks.count, self.chunks.generation
                        ),
                    )
                })?;
            self.next += 1;
            self.at = 0;
        }
        let n = out.len().min(self.chunk.len() - self.at);
        out[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> (tempfile::TempDir, sled::Tree) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open");
        let tree = store.tree().clone();
        (dir, tree)
    }

    fn save(tree: &sled::Tree, bytes: &[u8]) -> Chunks {
        let mut writer = ChunkWriter::new(tree).expect("writer");
        // In uneven pieces, as an encoder writes.
        for piece in bytes.chunks(7_777) {
            writer.write_all(piece).expect("write");
        }
        let chunks = writer.finish().expect("finish");
        tree.insert(CHUNKS, bincode::serialize(&chunks).expect("encode"))
            .expect("record");
        remove_others(tree, &chunks).expect("remove");
        chunks
    }

    fn read(tree: &sled::Tree) -> Vec<u8> {
        let chunks = current(tree).expect("record").expect("chunks");
        let mut bytes = Vec::new();
        ChunkReader::new(tree, chunks)
            .read_to_end(&mut bytes)
            .expect("read");
        bytes
    }

    fn chunk_keys(tree: &sled::Tree) -> usize {
        tree.scan_prefix(CHUNK_PREFIX).count()
    }

    #[test]
    fn bytes_come_back_whole_across_chunks_and_generations() {
        let (_dir, tree) = tree();
        let bytes: Vec<u8> = (0..(2 * CHUNK + 12_345)).map(|i| (i % 251) as u8).collect();
        let first = save(&tree, &bytes);
        assert_eq!(
            (first.generation, first.count, first.len),
            (1, 3, bytes.len() as u64)
        );
        assert_eq!(read(&tree), bytes);
        assert_eq!(chunk_keys(&tree), 3);

        // A smaller snapshot replaces it; the older chunks are gone.
        let smaller = vec![9u8; CHUNK];
        let second = save(&tree, &smaller);
        assert_eq!((second.generation, second.count), (2, 1));
        assert_eq!(read(&tree), smaller);
        assert_eq!(chunk_keys(&tree), 1);

        // Empty data is no chunk at all, and reads back empty.
        let third = save(&tree, &[]);
        assert_eq!((third.count, third.len), (0, 0));
        assert!(read(&tree).is_empty());
        assert_eq!(chunk_keys(&tree), 0);
    }

    #[test]
    fn a_save_that_crashed_leaves_the_current_snapshot_and_its_chunks_are_replaced() {
        let (_dir, tree) = tree();
        let kept = vec![1u8; CHUNK + 10];
        save(&tree, &kept);
        // Chunks written, never recorded (the save crashed).
        let mut crashed = ChunkWriter::new(&tree).expect("writer");
        crashed.write_all(&vec![2u8; 3 * CHUNK]).expect("write");
        let unrecorded = crashed.finish().expect("finish");
        assert_eq!((unrecorded.generation, unrecorded.count), (2, 3));
        assert_eq!(read(&tree), kept, "the recorded snapshot is whole");
        // The next save reuses that generation, leaving none of its chunks.
        let next = vec![3u8; 10];
        let chunks = save(&tree, &next);
        assert_eq!((chunks.generation, chunks.count), (2, 1));
        assert_eq!(read(&tree), next);
        assert_eq!(chunk_keys(&tree), 1);
    }

    #[test]
    fn a_missing_chunk_is_an_error_not_a_short_read() {
        let (_dir, tree) = tree();
        let chunks = save(&tree, &vec![5u8; 2 * CHUNK]);
        tree.remove(key(chunks.generation, 1)).expect("remove");
        let mut bytes = Vec::new();
        let err = ChunkReader::new(&tree, chunks)
            .read_to_end(&mut bytes)
            .expect_err("a chunk is missing");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("chunk 1 of 2"), "{err}");
    }
}
