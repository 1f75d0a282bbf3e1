//! Durable storage: the Raft log and vote in sled, the state machine in memory.
//!
//! One sled database per node holds three trees:
//! - `logs`: log entries keyed by their big-endian index (so sled's byte
//!   order is log order), each the bincode of an openraft `Entry`;
//! - `meta`: the vote, the last committed log id and the last purged log id;
//! - `snapshots`: where the snapshot was kept before; read while the
//!   snapshot's own database holds none, emptied by its next save.
//!
//! The current snapshot, the bincode of the whole state machine `S` in
//! chunks of a megabyte with its metadata (last applied log id,
//! membership), is in a sled database of its own, opened only while a
//! snapshot is built, sent, installed or restored ([`crate::chunks`]).
//!
//! Every write Raft relies on for safety (appended entries, the vote,
//! truncation, purge, a snapshot) is flushed to disk before it is
//! acknowledged. The state machine itself lives in memory: on restart it is
//! rebuilt from the last snapshot, and openraft re-applies the committed log
//! tail after it. Logs are purged only after a snapshot covering them is
//! flushed, so nothing committed is ever lost.

use std::fmt::Debug;
use std::io::Cursor;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader,
    RaftSnapshotBuilder, RaftTypeConfig, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership, Vote,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::chunks::{self, ChunkReader, ChunkWriter, Chunks, Store, CHUNKS, LEGACY_DATA};
use crate::{Member, StateMachine, TypeConfig};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last_purged";
const SNAPSHOT_META: &[u8] = b"meta";

/// Opens (or creates) the sled database of one node in `dir`.
pub fn open_db(dir: &std::path::Path) -> Result<sled::Db, sled::Error> {
    sled::Config::new()
        .path(dir)
        .cache_capacity(64 * 1024 * 1024)
        .open()
}

/// Where the data's format version is kept.
const FORMAT_TREE: &str = "format";
const FORMAT_KEY: &[u8] = b"format";

/// Records `format` in a database that holds nothing yet; refuses one
/// whose data has another format, or none recorded (written before
/// formats were), with what to do.
pub fn check_format(db: &sled::Db, format: u32, dir: &std::path::Path) -> Result<(), crate::Error> {
    let tree = db.open_tree(FORMAT_TREE)?;
    let found = match tree.get(FORMAT_KEY)? {
        Some(bytes) => Some(
            <[u8; 4]>::try_from(bytes.as_ref())
                .map(u32::from_be_bytes)
                .map_err(|_| {
                    crate::Error::Format(format!("{}: unreadable format record", dir.display()))
                })?,
        ),
        None => None,
    };
    if found == Some(format) {
        return Ok(());
    }
    let holds_data = ["logs", "meta", "snapshots"]
        .into_iter()
        .map(|name| db.open_tree(name).map(|t| !t.is_empty()))
        .collect::<Result<Vec<bool>, _>>()?
        .into_iter()
        .any(|data| data);
    if found.is_none() && !holds_data {
        tree.insert(FORMAT_KEY, &format.to_be_bytes())?;
        tree.flush()?;
        return Ok(());
    }
    let written = match found {
        Some(f) => format!("format {f}"),
        None => "a format from before formats were recorded".to_string(),
    };
    Err(crate::Error::Format(format!(
        "the data in {dir} was written by another version of swarm ({written}; this one reads format {format}) \
         and cannot be read: no migration between them exists yet. Run the version that wrote it, or \
         move {dir} aside and start again: the cluster state is read anew from the engines (nodes, \
         containers, images), but the create bodies kept for rescheduling, the discovery tokens and the \
         recorded discovery URL are not; a manager of an HA cluster rejoins with --join",
        dir = dir.display()
    )))
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, AnyError> {
    bincode::serialize(value).map_err(|e| AnyError::new(&e))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AnyError> {
    bincode::deserialize(bytes).map_err(|e| AnyError::new(&e))
}

fn sled_err(e: sled::Error) -> AnyError {
    AnyError::new(&e)
}

/// The Raft log and vote of one node, in sled.
///
/// Generic over any openraft type configuration with serde types; cloning
/// shares the same trees (the clone serves as the log reader).
pub struct LogStore<C> {
    db: sled::Db,
    logs: sled::Tree,
    meta: sled::Tree,
    _config: PhantomData<fn() -> C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            logs: self.logs.clone(),
            meta: self.meta.clone(),
            _config: PhantomData,
        }
    }
}

impl<C: RaftTypeConfig> LogStore<C> {
    /// The log store inside `db`.
    pub fn new(db: &sled::Db) -> Result<Self, sled::Error> {
        Ok(Self {
            db: db.clone(),
            logs: db.open_tree("logs")?,
            meta: db.open_tree("meta")?,
            _config: PhantomData,
        })
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, AnyError> {
        match self.meta.get(key).map_err(sled_err)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    fn write_meta<T: Serialize>(&self, key: &[u8], value: &T) -> Result<(), AnyError> {
        self.meta.insert(key, encode(value)?).map_err(sled_err)?;
        Ok(())
    }

    async fn flush(&self) -> Result<(), AnyError> {
        self.db.flush_async().await.map_err(sled_err)?;
        Ok(())
    }

    fn entries(&self, start: u64, end: Bound<u64>) -> Result<Vec<C::Entry>, AnyError> {
        let iter = match end {
            Bound::Included(end) if start > end => return Ok(Vec::new()),
            Bound::Excluded(end) if start >= end => return Ok(Vec::new()),
            Bound::Included(end) => self.logs.range(start.to_be_bytes()..=end.to_be_bytes()),
            Bound::Excluded(end) => self.logs.range(start.to_be_bytes()..end.to_be_bytes()),
            Bound::Unbounded => self.logs.range(start.to_be_bytes()..),
        };
        iter.map(|item| decode(&item.map_err(sled_err)?.1))
            .collect()
    }

    /// Removes the entries with an index in `range` (in one batch).
    fn remove(&self, range: impl RangeBounds<[u8; 8]>) -> Result<(), AnyError> {
        let mut batch = sled::Batch::default();
        for key in self.logs.range(range).keys() {
            batch.remove(key.map_err(sled_err)?);
        }
        self.logs.apply_batch(batch).map_err(sled_err)
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for LogStore<C> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        self.entries(start, range.end_bound().cloned())
            .map_err(|e| StorageIOError::read_logs(e).into())
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for LogStore<C> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let read = || -> Result<LogState<C>, AnyError> {
            let last_purged_log_id: Option<LogId<C::NodeId>> = self.read_meta(LAST_PURGED)?;
            let last_log_id = match self.logs.last().map_err(sled_err)? {
                Some((_, bytes)) => Some(decode::<C::Entry>(&bytes)?.get_log_id().clone()),
                None => last_purged_log_id.clone(),
            };
            Ok(LogState {
                last_purged_log_id,
                last_log_id,
            })
        };
        read().map_err(|e| StorageIOError::read_logs(e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.write_meta(VOTE, vote)
            .map_err(StorageIOError::write_vote)?;
        self.flush().await.map_err(StorageIOError::write_vote)?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.read_meta(VOTE)
            .map_err(|e| StorageIOError::read_vote(e).into())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        // Not flushed: losing it only means re-applying less on restart.
        self.write_meta(COMMITTED, &committed)
            .map_err(|e| StorageIOError::write(e).into())
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        let committed: Option<Option<LogId<C::NodeId>>> =
            self.read_meta(COMMITTED).map_err(StorageIOError::read)?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let index = entry.get_log_id().index;
            batch.insert(
                &index.to_be_bytes(),
                encode(&entry).map_err(StorageIOError::write_logs)?,
            );
        }
        self.logs
            .apply_batch(batch)
            .map_err(|e| StorageIOError::write_logs(sled_err(e)))?;
        let flushed = self.db.flush_async().await;
        match flushed {
            Ok(_) => callback.log_io_completed(Ok(())),
            Err(e) => {
                let err = std::io::Error::other(e.to_string());
                callback.log_io_completed(Err(err));
                return Err(StorageIOError::write_logs(sled_err(e)).into());
            }
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        tracing::debug!(%log_id, "truncate the log from here on");
        self.remove(log_id.index.to_be_bytes()..)
            .map_err(StorageIOError::write_logs)?;
        self.flush().await.map_err(StorageIOError::write_logs)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        tracing::debug!(%log_id, "purge the log up to here");
        // Record the purge point first: a crash in between leaves entries
        // below it, which are ignored, never a hole above it.
        self.write_meta(LAST_PURGED, &log_id)
            .map_err(StorageIOError::write_logs)?;
        self.flush().await.map_err(StorageIOError::write_logs)?;
        self.remove(..=log_id.index.to_be_bytes())
            .map_err(StorageIOError::write_logs)?;
        self.flush().await.map_err(StorageIOError::write_logs)?;
        Ok(())
    }
}

/// What the state machine has applied so far.
pub struct Applied<S> {
    pub(crate) state: S,
    pub(crate) last_applied: Option<LogId<u64>>,
    pub(crate) membership: StoredMembership<u64, Member>,
}

/// The state machine `S` shared between openraft and readers.
pub(crate) type SharedState<S> = Arc<RwLock<Applied<S>>>;

pub(crate) fn read_state<S>(shared: &SharedState<S>) -> RwLockReadGuard<'_, Applied<S>> {
    // A poisoned lock means `S::apply` panicked; there is nothing better to read.
    shared.read().unwrap_or_else(|e| e.into_inner())
}

fn write_state<S>(shared: &SharedState<S>) -> RwLockWriteGuard<'_, Applied<S>> {
    shared.write().unwrap_or_else(|e| e.into_inner())
}

/// A snapshot as stored in sled: its metadata, and where the bincode of
/// `S` is.
struct StoredSnapshot {
    meta: SnapshotMeta<u64, Member>,
    data: StoredData,
}

/// Where a stored snapshot's bytes are.
enum StoredData {
    /// In chunks (see [`crate::chunks`]).
    Chunks(Chunks),
    /// Under one key, as written before chunks.
    Legacy(sled::IVec),
}

impl StoredSnapshot {
    /// Decodes the state, reading the chunks one at a time.
    fn decode<S: StateMachine>(&self, store: &Store) -> Result<S, crate::Error> {
        Ok(match &self.data {
            StoredData::Chunks(chunks) => {
                bincode::deserialize_from(ChunkReader::new(store.tree(), *chunks))?
            }
            StoredData::Legacy(bytes) => bincode::deserialize(bytes)?,
        })
    }

    /// The bytes whole, to be sent to a follower.
    fn bytes(&self, store: &Store) -> Result<Vec<u8>, std::io::Error> {
        match &self.data {
            StoredData::Chunks(chunks) => {
                let len = usize::try_from(chunks.len).map_err(std::io::Error::other)?;
                let mut bytes = Vec::with_capacity(len);
                std::io::Read::read_to_end(
                    &mut ChunkReader::new(store.tree(), *chunks),
                    &mut bytes,
                )?;
                Ok(bytes)
            }
            StoredData::Legacy(bytes) => Ok(bytes.to_vec()),
        }
    }
}

/// The state machine store: `S` in memory, its snapshots in sled.
///
/// Cloning shares the same state (the clone serves as snapshot builder).
pub struct StateMachineStore<S: StateMachine> {
    shared: SharedState<S>,
    snapshots: Arc<SnapshotDb>,
}

impl<S: StateMachine> Clone for StateMachineStore<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            snapshots: self.snapshots.clone(),
        }
    }
}

/// Where the current snapshot is kept: a sled database of its own, open
/// only while a snapshot is read or written. sled 0.34 keeps every value
/// it stores in memory whatever its cache capacity, about 650 MB for the
/// snapshot of a million containers; closed, the database holds none.
struct SnapshotDb {
    /// The database's directory.
    dir: PathBuf,
    /// The node's `snapshots` tree, where snapshots were kept before: read
    /// while the database holds none, emptied by the next save.
    legacy: sled::Tree,
    /// Serializes every opening of the database (sled lets one opener at a
    /// time hold it), and so replacing the snapshot: one built in the
    /// background must not overwrite a newer one installed meanwhile.
    open: std::sync::Mutex<()>,
}

impl SnapshotDb {
    /// Opens the database, runs `f` on it and on the legacy tree, and
    /// closes it.
    fn with<T, E: From<sled::Error>>(
        &self,
        f: impl FnOnce(&Store, &sled::Tree) -> Result<T, E>,
    ) -> Result<T, E> {
        let _only = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let store = Store::open(&self.dir)?;
        f(&store, &self.legacy)
    }
}

impl<S: StateMachine> StateMachineStore<S> {
    /// The state machine store of the node whose database is `db`, its
    /// snapshots in a database of their own in `snapshot_dir`, restored
    /// from its last snapshot (or `S::default()` when there is none).
    pub fn new(db: &sled::Db, snapshot_dir: impl Into<PathBuf>) -> Result<Self, crate::Error> {
        let snapshots = Arc::new(SnapshotDb {
            dir: snapshot_dir.into(),
            legacy: db.open_tree("snapshots")?,
            open: std::sync::Mutex::new(()),
        });
        let applied = snapshots.with(|store, legacy| {
            Ok::<_, crate::Error>(match read_snapshot(store.tree(), legacy)? {
                Some(stored) => Applied {
                    state: stored.decode(store)?,
                    last_applied: stored.meta.last_log_id,
                    membership: stored.meta.last_membership,
                },
                None => Applied {
                    state: S::default(),
                    last_applied: None,
                    membership: StoredMembership::default(),
                },
            })
        })?;
        Ok(Self {
            shared: Arc::new(RwLock::new(applied)),
            snapshots,
        })
    }

    pub(crate) fn shared(&self) -> SharedState<S> {
        self.shared.clone()
    }

    /// The current snapshot, its bytes whole, if any (blocking).
    fn current(&self) -> Result<Option<Snapshot<TypeConfig<S>>>, AnyError> {
        self.snapshots
            .with(|store, legacy| {
                let Some(stored) = read_snapshot(store.tree(), legacy)? else {
                    return Ok(None);
                };
                let bytes = stored.bytes(store)?;
                Ok::<_, crate::Error>(Some(Snapshot {
                    meta: stored.meta,
                    snapshot: Box::new(Cursor::new(bytes)),
                }))
            })
            .map_err(|e| AnyError::new(&e))
    }

    /// Stores the snapshot `meta` describes as the current one, durably,
    /// its bytes written by `write` a chunk at a time. A built snapshot
    /// (`installed == false`) older than the stored one is dropped before
    /// it is written. Blocking (a write of the whole state and flushes):
    /// call it from a blocking thread.
    ///
    /// The chunks are flushed before the metadata and the record of the
    /// chunks switch to them (one batch, flushed), and the older chunks
    /// are removed after: whenever it stops, the stored snapshot is whole.
    fn save_blocking(
        &self,
        meta: &SnapshotMeta<u64, Member>,
        installed: bool,
        write: impl FnOnce(&mut ChunkWriter<'_>) -> Result<(), crate::Error>,
    ) -> Result<Option<Chunks>, AnyError> {
        let saved = self.snapshots.with(|store, legacy| {
            if !installed {
                let stored: Option<SnapshotMeta<u64, Member>> =
                    match store.tree().get(SNAPSHOT_META)?.or(legacy.get(SNAPSHOT_META)?) {
                        Some(bytes) => Some(bincode::deserialize(&bytes)?),
                        None => None,
                    };
                if let Some(stored) = stored {
                    if stored.last_log_id > meta.last_log_id {
                        tracing::info!(built = %meta, %stored, "a newer snapshot is stored; keeping it");
                        return Ok(None);
                    }
                }
            }
            let mut writer = ChunkWriter::new(store.tree())?;
            write(&mut writer)?;
            let written = writer.finish()?;
            let tree = store.tree();
            tree.flush()?;
            let mut batch = sled::Batch::default();
            batch.insert(SNAPSHOT_META, bincode::serialize(meta)?);
            batch.insert(CHUNKS, bincode::serialize(&written)?);
            tree.apply_batch(batch)?;
            tree.flush()?;
            chunks::remove_others(tree, &written)?;
            tree.flush()?;
            if !legacy.is_empty() {
                legacy.clear()?;
                legacy.flush()?;
            }
            Ok::<_, crate::Error>(Some(written))
        });
        saved.map_err(|e| AnyError::new(&e))
    }

    /// Encodes the applied state and stores it as the current snapshot
    /// (blocking: see [`StateMachineStore::build_snapshot`]), returning its
    /// metadata. Only [`StateMachine::snapshot`] runs under the read lock;
    /// the encoding, after it is released, does not hold up `apply`. The
    /// encoding goes straight into the stored chunks: a snapshot's bytes
    /// are never whole in memory here.
    fn build_blocking(&self) -> Result<SnapshotMeta<u64, Member>, Box<StorageError<u64>>> {
        let started = std::time::Instant::now();
        let (taken, last_log_id, last_membership) = {
            let applied = read_state(&self.shared);
            (
                applied.state.snapshot(),
                applied.last_applied,
                applied.membership.clone(),
            )
        };
        let locked = started.elapsed();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let snapshot_id = match &last_log_id {
            Some(id) => format!("{}-{}-{nanos}", id.leader_id, id.index),
            None => format!("empty-{nanos}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let saved = self
            .save_blocking(&meta, false, |writer| {
                bincode::serialize_into(writer, &taken).map_err(crate::Error::from)
            })
            .map_err(|e| {
                Box::new(StorageIOError::write_snapshot(Some(meta.signature()), e).into())
            })?;
        drop(taken);
        if let Some(saved) = saved {
            tracing::info!(
                snapshot = %meta,
                bytes = saved.len,
                locked_us = locked.as_micros() as u64,
                encode_and_save_ms = (started.elapsed() - locked).as_millis() as u64,
                "built a snapshot"
            );
        }
        Ok(meta)
    }
}

/// The stored snapshot, if any: its metadata with the record of its chunks
/// (or, written before chunks, its bytes under one key).
fn read_snapshot(
    store: &sled::Tree,
    legacy: &sled::Tree,
) -> Result<Option<StoredSnapshot>, crate::Error> {
    let (meta, data) = match (store.get(SNAPSHOT_META)?, chunks::current(store)?) {
        (Some(meta), Some(chunks)) => (meta, StoredData::Chunks(chunks)),
        _ => match (legacy.get(SNAPSHOT_META)?, legacy.get(LEGACY_DATA)?) {
            (Some(meta), Some(bytes)) => (meta, StoredData::Legacy(bytes)),
            _ => return Ok(None),
        },
    };
    Ok(Some(StoredSnapshot {
        meta: bincode::deserialize(&meta)?,
        data,
    }))
}

impl<S: StateMachine> RaftSnapshotBuilder<TypeConfig<S>> for StateMachineStore<S> {
    /// Encoding the whole state and writing it take tens of milliseconds
    /// at scale (14 MB for 30,000 containers): done on a blocking thread,
    /// not on one of the runtime's workers, which serve the API meanwhile.
    ///
    /// The snapshot returned carries its metadata and no bytes: openraft
    /// 0.9 keeps only the metadata of a snapshot it had built, and reads
    /// the bytes it sends from [`RaftStateMachine::get_current_snapshot`].
    /// Reading them back here would put the whole snapshot in memory at
    /// every build.
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig<S>>, StorageError<u64>> {
        let store = self.clone();
        let meta = tokio::task::spawn_blocking(move || store.build_blocking())
            .await
            .map_err(|e| StorageIOError::read_state_machine(AnyError::error(e)))?
            .map_err(|e| *e)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(Vec::new())),
        })
    }
}

impl<S: StateMachine> RaftStateMachine<TypeConfig<S>> for StateMachineStore<S> {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, Member>), StorageError<u64>> {
        let applied = read_state(&self.shared);
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<S::Output>>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig<S>>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = write_state(&self.shared);
        let mut outputs = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => outputs.push(Vec::new()),
                EntryPayload::Normal(commands) => outputs.push(
                    commands
                        .into_iter()
                        .map(|command| applied.state.apply(command))
                        .collect(),
                ),
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    outputs.push(Vec::new());
                }
            }
        }
        Ok(outputs)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        // Decoding (seconds at scale: the indexes are rebuilt) and saving
        // run on a blocking thread, without the state's lock; under it the
        // new state only takes the old one's place.
        let started = std::time::Instant::now();
        let received = snapshot.into_inner();
        let store = self.clone();
        let meta_owned = meta.clone();
        let state: S = tokio::task::spawn_blocking(move || {
            let meta = meta_owned;
            let signature = || Some(meta.signature());
            let state: S = decode(&received)
                .map_err(|e| Box::new(StorageIOError::read_snapshot(signature(), e)))?;
            store
                .save_blocking(&meta, true, |writer| {
                    std::io::Write::write_all(writer, &received).map_err(crate::Error::from)
                })
                .map_err(|e| Box::new(StorageIOError::write_snapshot(signature(), e)))?;
            Ok::<S, Box<StorageIOError<u64>>>(state)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), AnyError::error(e)))?
        .map_err(|e| *e)?;
        let loaded = started.elapsed();
        let old = {
            let mut applied = write_state(&self.shared);
            applied.last_applied = meta.last_log_id;
            applied.membership = meta.last_membership.clone();
            std::mem::replace(&mut applied.state, state)
        };
        // Freeing the old state takes about a second at a million
        // containers: not on this worker, nor under the lock.
        tokio::task::spawn_blocking(move || drop(old));
        tracing::info!(
            snapshot = %meta,
            load_ms = loaded.as_millis() as u64,
            "installed a snapshot"
        );
        Ok(())
    }

    /// Opening the snapshot's database and reading it take seconds at
    /// scale: done on a blocking thread.
    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig<S>>>, StorageError<u64>> {
        let store = self.clone();
        let current = tokio::task::spawn_blocking(move || store.current())
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, AnyError::error(e)))?
            .map_err(|e| StorageIOError::read_snapshot(None, e))?;
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A state of strings, large enough for several snapshot chunks.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
    struct Words(Vec<String>);

    impl StateMachine for Words {
        const FORMAT: u32 = 1;
        type Command = String;
        type Output = usize;
        type Snapshot = Words;

        fn apply(&mut self, word: String) -> usize {
            self.0.push(word);
            self.0.len()
        }

        fn snapshot(&self) -> Words {
            self.clone()
        }
    }

    fn words(n: usize) -> Words {
        Words((0..n).map(|i| format!("{i:0>1000}")).collect())
    }

    fn log_id(index: u64) -> Option<LogId<u64>> {
        Some(LogId::new(openraft::CommittedLeaderId::new(1, 1), index))
    }

    #[tokio::test]
    async fn snapshots_are_stored_in_chunks_of_their_own_db_and_data_of_before_is_still_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = open_db(dir.path()).expect("open");
        let snapshot_dir = dir.path().join(crate::SNAPSHOT_DIR);
        // A snapshot as stored before: its bytes under one key of the
        // node's own database.
        let legacy = words(10);
        let meta = SnapshotMeta {
            last_log_id: log_id(7),
            last_membership: StoredMembership::default(),
            snapshot_id: "legacy".to_string(),
        };
        let tree = db.open_tree("snapshots").expect("tree");
        tree.insert(SNAPSHOT_META, encode(&meta).expect("encode"))
            .expect("meta");
        tree.insert(LEGACY_DATA, encode(&legacy).expect("encode"))
            .expect("data");
        let mut store = StateMachineStore::<Words>::new(&db, &snapshot_dir).expect("restored");
        assert_eq!(read_state(&store.shared).state, legacy);
        assert_eq!(read_state(&store.shared).last_applied, log_id(7));
        let sent = store
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("a snapshot");
        assert_eq!(sent.meta, meta);
        assert_eq!(
            decode::<Words>(sent.snapshot.get_ref()).expect("decode"),
            legacy
        );

        // A build writes chunks into the snapshot database and empties the
        // tree of before.
        let large = words(3_200); // 3.2 MB: four chunks of 1 MiB
        {
            let mut applied = write_state(&store.shared);
            applied.state = large.clone();
            applied.last_applied = log_id(9);
        }
        let built = store.build_snapshot().await.expect("built");
        assert_eq!(built.meta.last_log_id, log_id(9));
        assert!(tree.is_empty());
        let recorded = store
            .snapshots
            .with(|store, _| chunks::current(store.tree()))
            .expect("read")
            .expect("chunks");
        assert_eq!(recorded.count, 4);
        let sent = store
            .get_current_snapshot()
            .await
            .expect("read")
            .expect("a snapshot");
        assert_eq!(sent.meta, built.meta);
        assert_eq!(sent.snapshot.get_ref().len() as u64, recorded.len);
        assert_eq!(
            decode::<Words>(sent.snapshot.get_ref()).expect("decode"),
            large
        );

        // Restored from the chunks.
        drop(store);
        let restored = StateMachineStore::<Words>::new(&db, &snapshot_dir).expect("restored");
        assert_eq!(read_state(&restored.shared).state, large);
        assert_eq!(read_state(&restored.shared).last_applied, log_id(9));

        // Installed on another node: the same state, stored in chunks there.
        let other_dir = tempfile::tempdir().expect("tempdir");
        let other_db = open_db(other_dir.path()).expect("open");
        let other_snapshots = other_dir.path().join(crate::SNAPSHOT_DIR);
        let mut other = StateMachineStore::<Words>::new(&other_db, &other_snapshots).expect("new");
        other
            .install_snapshot(&sent.meta, sent.snapshot)
            .await
            .expect("installed");
        assert_eq!(read_state(&other.shared).state, large);
        drop(other);
        let other = StateMachineStore::<Words>::new(&other_db, &other_snapshots).expect("restored");
        assert_eq!(read_state(&other.shared).state, large);
        assert_eq!(read_state(&other.shared).last_applied, log_id(9));
    }

    #[test]
    fn data_of_another_format_is_refused_with_what_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        {
            // New: the format is recorded; the same format opens again.
            let db = open_db(path).expect("open");
            check_format(&db, 2, path).expect("new data dir");
            check_format(&db, 2, path).expect("same format");
            // Another format is refused, saying which and what to do.
            let e = check_format(&db, 3, path).expect_err("other format");
            let text = e.to_string();
            assert!(
                text.contains("format 2") && text.contains("reads format 3"),
                "{text}"
            );
            assert!(
                text.contains("move") && text.contains(&path.display().to_string()),
                "{text}"
            );
        }
        // Data written before formats were recorded: refused too.
        let old = tempfile::tempdir().expect("tempdir");
        let db = open_db(old.path()).expect("open");
        db.open_tree("logs")
            .and_then(|t| t.insert(b"1", b"entry"))
            .expect("a log entry");
        let e = check_format(&db, 2, old.path()).expect_err("unrecorded format");
        assert!(
            e.to_string().contains("before formats were recorded"),
            "{e}"
        );
    }
}
