//! One invocation's shared state: which sub-stream rings exist, which half of each
//! still waits for its side, and how many handles each side holds.
//!
//! Every handle of an invocation ([`Outgoing`](super::Outgoing) and
//! [`Incoming`](super::Incoming), on both sides) shares one [`Call`]. The mutex in it is
//! taken when a handle is created (`index`), when it first touches its ring (*binding*,
//! once per handle), when a stream grows into a larger ring, at the end of a stream and
//! when a handle is dropped: never per read or write. Calls are pooled like rings, so a
//! warm invocation allocates nothing here.
//!
//! # Sub-streams
//!
//! The table of sub-streams is indexed by direction and path, and holds an entry only
//! while some handle of that path still needs it: the writer bound first and its rings
//! wait for the reader, the reader waits for the writer, or one of them ended before the
//! other came. An entry whose two handles have both settled is removed, so a call's
//! memory follows the sub-streams it *holds*, not the ones it has seen.
//!
//! A reader that binds first leases nothing: it parks its waker in the entry, and the
//! writer leases the ring at its first write, sized by that write ([`Classes`]). When a
//! write finds its ring full, the writer moves on to a ring of the next class: it hands
//! the new ring's reader half to the entry, then closes the old ring cleanly; the reader,
//! at the clean end of a ring, looks for a next one before reporting end-of-stream. So a
//! one-byte `future<u8>` holds a small ring, and a stream written in 64 KiB chunks runs
//! on a ring many chunks deep instead of alternating with its reader chunk by chunk.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::io;
use std::task::Waker;

use bytes::Bytes;

use crate::ring::{RingReader, RingWriter};
use crate::sync::{Arc, AtomicU64, AtomicUsize, Mutex, Ordering, lock};
use crate::{PoolStats, RingPool};

use super::error::TransportError;
use super::hash::FxHasher;
use super::headers::Headers;
use super::inbox::Inbox;
use super::path::{Declaration, DisplayDeclared, FlatPaths, Path, classify};

/// Parameter paths as the callee declared them in `serve` (`std`'s `Arc`: the type of
/// `Serve::serve`'s argument).
pub(crate) type ServePaths = std::sync::Arc<[Box<[Option<usize>]>]>;

/// The default bound on the sub-streams one invocation holds at once
/// ([`Ring::with_max_call_streams`](crate::Ring::with_max_call_streams)).
pub const DEFAULT_MAX_CALL_STREAMS: usize = 1 << 20;

/// The default bound on the ring bytes one invocation holds written ahead of their
/// readers ([`Ring::with_max_call_bytes`](crate::Ring::with_max_call_bytes)): 1 GiB.
pub const DEFAULT_MAX_CALL_BYTES: usize = 1 << 30;

/// The smallest ring class, for values of a few bytes (a `future<u8>`, a short string):
/// 256 bytes of storage, next to roughly 600 bytes of ring bookkeeping.
const SMALL_RING: usize = 256;

/// The largest ring class is this many times the transport's pool capacity ...
const LARGE_FACTOR: usize = 16;
/// ... but at most this, unless the pool's own rings are larger.
const LARGE_RING_MAX: usize = 4 << 20;
/// Idle rings kept in the large class: they are big, and only streams use them.
const LARGE_IDLE: usize = 8;

/// The two directions of an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Dir {
    /// Caller to callee.
    Params,
    /// Callee to caller.
    Results,
}

/// The two ends of an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The invoking end.
    Client = 0,
    /// The serving end.
    Server = 1,
}

impl Dir {
    /// This direction's slot in per-direction arrays.
    fn index(self) -> usize {
        match self {
            Self::Params => 0,
            Self::Results => 1,
        }
    }

    pub(crate) fn writer(self) -> Side {
        match self {
            Self::Params => Side::Client,
            Self::Results => Side::Server,
        }
    }

    pub(crate) fn reader(self) -> Side {
        match self {
            Self::Params => Side::Server,
            Self::Results => Side::Client,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Params => "parameters",
            Self::Results => "results",
        }
    }
}

impl Side {
    /// Why a stream of `target` (at `path` of `dir`, when at hand) ends because this
    /// side is gone; built on that error path only.
    fn gone_reason(self, target: Option<&Arc<Target>>, stream: Option<(Dir, &Path)>) -> String {
        let who = match self {
            Self::Client => "caller",
            Self::Server => "callee",
        };
        let target = target.map(ToString::to_string).unwrap_or_default();
        match stream {
            Some((dir, path)) if !path.is_root() => format!(
                "the {who} of `{target}` dropped the invocation (async value path {:?} of the {})",
                path.as_slice(),
                dir.name()
            ),
            _ => format!("the {who} of `{target}` dropped the invocation"),
        }
    }
}

/// What the invocation is addressed to.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) prefix: Arc<str>,
    pub(crate) instance: Box<str>,
    pub(crate) func: Box<str>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.prefix.is_empty() {
            write!(f, "{}.", self.prefix)?;
        }
        write!(f, "{}.{}", self.instance, self.func)
    }
}

/// Why I/O on a handle cannot proceed; turned into an [`io::Error`] on every attempt.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) kind: io::ErrorKind,
    pub(crate) reason: Cow<'static, str>,
}

impl Failure {
    fn new(kind: io::ErrorKind, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            reason: reason.into(),
        }
    }

    pub(crate) fn to_error(&self) -> io::Error {
        if self.kind == io::ErrorKind::ConnectionAborted {
            // The same shape as a ring abort, so callers check one error type.
            io::Error::new(self.kind, crate::Aborted::new(self.reason.clone()))
        } else {
            io::Error::new(self.kind, self.reason.clone().into_owned())
        }
    }
}

/// What a writer handle gets when it binds.
pub(crate) enum WriterBinding {
    Ring(RingWriter),
    Failed(Failure),
}

/// What a reader handle gets when it binds.
pub(crate) enum ReaderBinding {
    Ring(RingReader),
    /// Nothing written yet: the waker is parked in the table.
    Parked,
    /// The writer closed cleanly without ever writing.
    Eof,
    Failed(Failure),
}

/// How a handle ends, for the table.
pub(crate) enum Ending<'a> {
    /// It was never meant to carry data, or failed to bind: nothing to record.
    Nothing,
    /// A writer that never bound: a clean close (`None`) or an abort with the reason.
    UnboundWriter(Dir, &'a Path, Option<Cow<'static, str>>),
    /// A reader that never read (`parked`: it had parked its waker).
    UnboundReader(Dir, &'a Path, bool),
    /// A handle that held a ring of its path.
    Bound(Dir, &'a Path, Half),
}

/// The two halves of a sub-stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Half {
    Writer,
    Reader,
}

/// The writing half of one sub-stream, as the table sees it.
enum WriterState {
    /// No writer has come yet.
    Absent,
    /// A writer handle holds the newest ring.
    Bound,
    /// The writer ended before binding: cleanly (`None`) or aborted. Waits for the reader.
    Ended(Option<Cow<'static, str>>),
    /// The writer is done with the table.
    Done,
}

/// The reading half of one sub-stream, as the table sees it.
enum ReaderState {
    /// No reader has come yet.
    Absent,
    /// A reader handle waits for the first ring (its waker).
    Parked(Waker),
    /// A reader handle holds a ring of this path.
    Bound,
    /// The reader is done, or was dropped before binding.
    Done,
}

/// One sub-stream.
struct Entry {
    writer: WriterState,
    reader: ReaderState,
    /// Reader halves of rings the writer filled, not yet taken by the reader.
    rings: Rings,
}

/// A FIFO of reader halves whose first is stored inline: more than one only after a
/// stream grew before its reader came, so a sub-stream's entry allocates nothing.
#[derive(Default)]
struct Rings {
    first: Option<RingReader>,
    rest: Vec<RingReader>,
}

impl Rings {
    const fn new() -> Self {
        Self {
            first: None,
            rest: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    fn push(&mut self, reader: RingReader) {
        if self.first.is_none() {
            self.first = Some(reader);
        } else {
            self.rest.push(reader);
        }
    }

    /// The oldest.
    fn pop(&mut self) -> Option<RingReader> {
        let first = self.first.take()?;
        if !self.rest.is_empty() {
            self.first = Some(self.rest.remove(0));
        }
        Some(first)
    }
}

impl Entry {
    const fn new() -> Self {
        Self {
            writer: WriterState::Absent,
            reader: ReaderState::Absent,
            rings: Rings::new(),
        }
    }

    /// Whether no handle needs this entry any more.
    fn is_settled(&self) -> bool {
        self.rings.is_empty()
            && matches!(self.writer, WriterState::Done)
            && matches!(self.reader, ReaderState::Done)
    }
}

type Key = (Dir, Path);

/// The nested sub-streams: a handful of entries per call at most, looked up several
/// times each, so their keys are hashed with [`FxHasher`], not SipHash (which cost ~190
/// instructions per lookup: benches/instructions.rs). Not collision-resistant, which is
/// fine here: the table of one call holds at most `limits.streams` entries, so even
/// colliding keys cost a bounded scan.
type Entries = HashMap<Key, Entry, BuildHasherDefault<FxHasher>>;

/// The sub-stream table of one call. The root stream of each direction (path `[]`),
/// which every call has and most calls only have, lives in a slot of its own, so a call
/// without async values neither hashes nor probes; nested paths go to [`Entries`].
#[derive(Default)]
struct Table {
    /// The root entries, by [`Dir::index`].
    roots: [Option<Entry>; 2],
    nested: Entries,
}

impl Table {
    fn len(&self) -> usize {
        self.roots.iter().flatten().count() + self.nested.len()
    }

    fn get(&self, dir: Dir, path: &Path) -> Option<&Entry> {
        if path.is_root() {
            self.roots[dir.index()].as_ref()
        } else {
            self.nested.get(&(dir, path.clone()))
        }
    }

    fn get_mut(&mut self, dir: Dir, path: &Path) -> Option<&mut Entry> {
        if path.is_root() {
            self.roots[dir.index()].as_mut()
        } else {
            self.nested.get_mut(&(dir, path.clone()))
        }
    }

    /// The entry of `path`, made empty if there was none.
    fn get_or_insert(&mut self, dir: Dir, path: &Path) -> &mut Entry {
        if path.is_root() {
            self.roots[dir.index()].get_or_insert_with(Entry::new)
        } else {
            self.nested.entry((dir, path.clone())).or_insert_with(Entry::new)
        }
    }

    /// Adds the entry of a path that has none.
    fn insert(&mut self, dir: Dir, path: &Path, entry: Entry) {
        if path.is_root() {
            self.roots[dir.index()] = Some(entry);
        } else {
            self.nested.insert((dir, path.clone()), entry);
        }
    }

    /// Removes the entry of `path` if no handle needs it any more.
    fn remove_if_settled(&mut self, dir: Dir, path: &Path) {
        if path.is_root() {
            let root = &mut self.roots[dir.index()];
            if root.as_ref().is_some_and(Entry::is_settled) {
                *root = None;
            }
        } else {
            let key = (dir, path.clone());
            if self.nested.get(&key).is_some_and(Entry::is_settled) {
                self.nested.remove(&key);
            }
        }
    }

    /// Keeps the entries for which `keep` returns `true`.
    fn retain(&mut self, mut keep: impl FnMut(Dir, &mut Entry) -> bool) {
        for (dir, root) in [Dir::Params, Dir::Results].into_iter().zip(&mut self.roots) {
            if root.as_mut().is_some_and(|entry| !keep(dir, entry)) {
                *root = None;
            }
        }
        self.nested.retain(|(dir, _), entry| keep(*dir, entry));
    }

    /// Whether no entry holds a ring.
    fn holds_no_ring(&self) -> bool {
        let mut entries = self.roots.iter().flatten().chain(self.nested.values());
        entries.all(|entry| entry.rings.is_empty())
    }

    /// Empties the table, keeping the capacity of at most [`KEPT_ENTRIES`] nested ones.
    fn clear(&mut self) {
        self.roots = [None, None];
        self.nested.clear();
        if self.nested.capacity() > KEPT_ENTRIES {
            self.nested.shrink_to(KEPT_ENTRIES);
        }
    }
}

/// An invocation waiting in a registration's [`Inbox`]: what the callee gets when its
/// serve stream takes it.
pub(crate) struct Delivery {
    pub(crate) cx: Option<Headers>,
    pub(crate) params: Bytes,
}

/// Work left for after the lock: halves to close and readers to wake. The first of
/// each is stored inline, so the common case (one reader woken) allocates nothing.
#[derive(Default)]
struct Leftovers {
    reader: Option<RingReader>,
    readers: Vec<RingReader>,
    waker: Option<Waker>,
    wakers: Vec<Waker>,
}

impl Leftovers {
    fn close(&mut self, reader: RingReader) {
        match self.reader {
            None => self.reader = Some(reader),
            Some(_) => self.readers.push(reader),
        }
    }

    fn wake(&mut self, waker: Waker) {
        match self.waker {
            None => self.waker = Some(waker),
            Some(_) => self.wakers.push(waker),
        }
    }

    #[inline]
    fn finish(self) {
        // Most handles end with nothing left over. `close` and `wake` push to `readers`
        // and `wakers` only once `reader` and `waker` hold one, so both empty means all are,
        // and neither `Vec` ever allocated: there is nothing to drop, and forgetting skips
        // the drop glue's four checks (benches/instructions.rs).
        if self.reader.is_none() && self.waker.is_none() {
            debug_assert!(self.readers.capacity() == 0 && self.wakers.capacity() == 0);
            std::mem::forget(self);
            return;
        }
        self.finish_slow();
    }

    #[inline(never)]
    fn finish_slow(self) {
        let Self {
            reader,
            readers,
            waker,
            wakers,
        } = self;
        drop(reader);
        drop(readers);
        // `wakers` holds any only after `waker` was taken.
        if let Some(waker) = waker {
            waker.wake();
            wakers.into_iter().for_each(Waker::wake);
        }
    }
}

#[derive(Default)]
struct State {
    /// Live handles per side.
    live: [usize; 2],
    target: Option<Arc<Target>>,
    /// Parameter paths, declared by the callee.
    params: Option<ServePaths>,
    /// Result paths, declared by the caller.
    results: FlatPaths,
    /// Sub-streams that some handle still needs (their capacity is reused by the next
    /// invocation).
    entries: Table,
    /// Capacity of the rings in `entries`, written and waiting for their readers.
    waiting_bytes: usize,
    /// Tells this invocation from later ones on the same pooled `Call`.
    ticket: u64,
    /// Set while the invocation waits in a registration's inbox.
    delivery: Option<Delivery>,
    inbox: Option<Arc<Inbox>>,
}

/// Entries a pooled call may keep the capacity of.
const KEPT_ENTRIES: usize = 64;

impl State {
    fn declaration(&self, dir: Dir, path: &[usize]) -> Declaration {
        match dir {
            Dir::Params => {
                let declared = self.params.as_deref().unwrap_or_default();
                classify(declared.iter().map(AsRef::as_ref), path)
            }
            Dir::Results => classify(self.results.iter(), path),
        }
    }

    fn undeclared(&self, dir: Dir, path: &[usize]) -> TransportError {
        let declared = match dir {
            Dir::Params => {
                let declared = self.params.as_deref().unwrap_or_default();
                DisplayDeclared(declared.iter().map(AsRef::as_ref)).to_string()
            }
            Dir::Results => DisplayDeclared(self.results.iter()).to_string(),
        };
        TransportError::UndeclaredPath {
            target: self.target_name(),
            direction: dir.name(),
            path: path.to_vec(),
            declared,
        }
    }

    fn target_name(&self) -> String {
        self.target.as_ref().map(ToString::to_string).unwrap_or_default()
    }

    /// The failure of I/O on `path` if it is not a declared async value.
    fn check_leaf(&self, dir: Dir, path: &Path) -> Result<(), Failure> {
        match self.declaration(dir, path.as_slice()) {
            Declaration::Leaf => Ok(()),
            Declaration::Node => Err(Failure::new(
                io::ErrorKind::NotFound,
                format!(
                    "path {path:?} of the {} of `{}` only leads to declared async values and \
                     carries no data itself",
                    dir.name(),
                    self.target_name()
                ),
            )),
            Declaration::Undeclared => Err(Failure::new(
                io::ErrorKind::NotFound,
                self.undeclared(dir, path.as_slice()).to_string(),
            )),
        }
    }

    fn in_use(&self, dir: Dir, path: &Path, by: &str) -> Failure {
        Failure::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "path {path:?} of the {} of `{}` is already {by} by another handle",
                dir.name(),
                self.target_name()
            ),
        )
    }

    /// The failure of a new entry beyond the per-call bound on sub-streams.
    fn check_streams(&self, limits: &Limits, dir: Dir, path: &Path) -> Result<(), Failure> {
        match self.too_many_streams(limits, dir, path) {
            None => Ok(()),
            Some(err) => Err(Failure::new(io::ErrorKind::QuotaExceeded, err.to_string())),
        }
    }

    /// The error for a new entry at `path` when the table already holds as many as
    /// `limits` allow.
    fn too_many_streams(&self, limits: &Limits, dir: Dir, path: &Path) -> Option<TransportError> {
        let max = limits.streams.load(Ordering::Relaxed);
        (self.entries.len() >= max).then(|| TransportError::TooManyStreams {
            target: self.target_name(),
            path: path.as_slice().to_vec(),
            direction: dir.name(),
            limit: max,
        })
    }

    /// Whether the table may take one more entry.
    fn has_room(&self, limits: &Limits) -> bool {
        self.entries.len() < limits.streams.load(Ordering::Relaxed)
    }

    /// Whether a ring of `capacity` more bytes may wait in the table.
    fn bytes_allowed(&self, limits: &Limits, capacity: usize) -> Result<(), usize> {
        let max = limits.bytes.load(Ordering::Relaxed);
        if self.waiting_bytes + capacity <= max {
            Ok(())
        } else {
            Err(max)
        }
    }

    fn too_many_bytes(&self, dir: Dir, path: &Path, capacity: usize, limit: usize) -> Failure {
        Failure::new(
            io::ErrorKind::QuotaExceeded,
            TransportError::TooManyBytes {
                target: self.target_name(),
                path: path.as_slice().to_vec(),
                direction: dir.name(),
                held: self.waiting_bytes,
                requested: capacity,
                limit,
            }
            .to_string(),
        )
    }

    /// Takes the oldest ring waiting in `entry`.
    fn take_ring(waiting_bytes: &mut usize, entry: &mut Entry) -> Option<RingReader> {
        let reader = entry.rings.pop()?;
        *waiting_bytes -= reader.capacity();
        Some(reader)
    }

    /// Drops (into `leftovers`) every ring waiting in `entry`.
    fn drain_rings(waiting_bytes: &mut usize, entry: &mut Entry, leftovers: &mut Leftovers) {
        while let Some(reader) = entry.rings.pop() {
            *waiting_bytes -= reader.capacity();
            leftovers.close(reader);
        }
    }
}

/// The per-call bounds, shared by every call of a transport (set by `Ring`'s builders).
#[derive(Debug)]
pub(crate) struct Limits {
    pub(crate) streams: AtomicUsize,
    pub(crate) bytes: AtomicUsize,
}

/// The ring classes sub-streams are leased from: small, the transport's own pool, large.
pub(crate) struct Classes {
    pools: [RingPool; 3],
}

impl Classes {
    fn new(standard: RingPool) -> Self {
        let capacity = standard.ring_capacity();
        let idle = standard.max_idle();
        let small = RingPool::new(SMALL_RING.min(capacity), idle);
        let large_capacity = (capacity * LARGE_FACTOR).min(LARGE_RING_MAX).max(capacity);
        let large = RingPool::new(large_capacity, idle.min(LARGE_IDLE));
        Self {
            pools: [small, standard, large],
        }
    }

    /// The class of a stream whose first write is `len` bytes: one that holds several
    /// such writes.
    fn for_first_write(&self, len: usize) -> usize {
        let [small, standard, _] = &self.pools;
        if len.saturating_mul(4) <= small.ring_capacity() {
            0
        } else if len.saturating_mul(2) <= standard.ring_capacity() {
            1
        } else {
            2
        }
    }

    /// The class after the one of a ring of `capacity` bytes, if any.
    fn next_after(&self, capacity: usize) -> Option<usize> {
        self.pools.iter().position(|pool| pool.ring_capacity() > capacity)
    }

    fn capacity(&self, class: usize) -> usize {
        self.pools[class].ring_capacity()
    }

    fn acquire(&self, class: usize) -> (RingWriter, RingReader) {
        self.pools[class].acquire()
    }

    pub(crate) fn standard(&self) -> &RingPool {
        &self.pools[1]
    }

    /// The counters of every class, summed.
    pub(crate) fn stats(&self) -> PoolStats {
        self.pools
            .iter()
            .map(RingPool::stats)
            .fold(PoolStats::default(), |mut sum, s| {
                sum.hits += s.hits;
                sum.misses += s.misses;
                sum.in_use += s.in_use;
                sum.idle += s.idle;
                sum
            })
    }

    /// Rings of every class handed out and not yet returned.
    pub(crate) fn in_use(&self) -> usize {
        self.pools.iter().map(|pool| pool.stats().in_use).sum()
    }
}

/// One invocation, shared by all of its handles.
pub(crate) struct Call {
    state: Mutex<State>,
    home: Arc<CallPool>,
}

/// Idle [`Call`]s, and the rings their sub-streams lease.
pub(crate) struct CallPool {
    rings: Classes,
    pub(crate) limits: Limits,
    max_idle: usize,
    next_ticket: AtomicU64,
    /// `None` once the transport is gone (which breaks the `Call` → pool → `Call` cycle).
    idle: Mutex<Option<Vec<Arc<Call>>>>,
}

impl CallPool {
    pub(crate) fn new(rings: RingPool) -> Arc<Self> {
        let max_idle = rings.max_idle();
        Arc::new(Self {
            rings: Classes::new(rings),
            limits: Limits {
                streams: AtomicUsize::new(DEFAULT_MAX_CALL_STREAMS),
                bytes: AtomicUsize::new(DEFAULT_MAX_CALL_BYTES),
            },
            max_idle,
            next_ticket: AtomicU64::new(0),
            idle: Mutex::new(Some(Vec::new())),
        })
    }

    pub(crate) fn rings(&self) -> &Classes {
        &self.rings
    }

    /// Sets up a call with the two root handles of each side counted; returns it and its
    /// ticket.
    pub(crate) fn start<P: AsRef<[Option<usize>]>>(
        self: &Arc<Self>,
        target: Arc<Target>,
        params: ServePaths,
        results: &[P],
    ) -> (Arc<Call>, u64) {
        let reused = lock(&self.idle).as_mut().and_then(Vec::pop);
        let call = reused.unwrap_or_else(|| {
            Arc::new(Call {
                state: Mutex::new(State::default()),
                home: self.clone(),
            })
        });
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        {
            let mut state = lock(&call.state);
            state.live = [2, 2];
            state.target = Some(target);
            state.params = Some(params);
            state.results.fill(results);
            state.ticket = ticket;
        }
        (call, ticket)
    }

    /// Frees the idle calls and stops keeping returned ones.
    pub(crate) fn close(&self) {
        let idle = lock(&self.idle).take();
        drop(idle);
    }

    fn recycle(&self, call: Arc<Call>) {
        let mut idle = lock(&self.idle);
        if let Some(idle) = idle.as_mut().filter(|idle| idle.len() < self.max_idle) {
            idle.push(call);
        }
    }
}

impl Call {
    /// Counts a new handle on `side` for `path`, which must be declared or lead to
    /// declared paths.
    pub(crate) fn open(&self, side: Side, dir: Dir, path: &Path) -> Result<(), TransportError> {
        let mut state = lock(&self.state);
        match state.declaration(dir, path.as_slice()) {
            Declaration::Undeclared => return Err(state.undeclared(dir, path.as_slice())),
            // A new stream is refused here already when the call holds all it may: a
            // handle dropped unused leaves an entry for its peer (`settle`), so checking
            // only at binding would let handles that never bind grow the table.
            Declaration::Leaf if state.entries.get(dir, path).is_none() => {
                if let Some(err) = state.too_many_streams(&self.home.limits, dir, path) {
                    return Err(err);
                }
            }
            Declaration::Leaf | Declaration::Node => {}
        }
        state.live[side as usize] += 1;
        Ok(())
    }

    /// Whether every handle of `side` is gone.
    pub(crate) fn is_gone(&self, side: Side) -> bool {
        lock(&self.state).live[side as usize] == 0
    }

    // ----- queueing -----

    /// Records what the callee gets once its serve stream takes invocation `ticket` from
    /// `inbox`.
    pub(crate) fn queue(&self, ticket: u64, delivery: Delivery, inbox: Arc<Inbox>) {
        let mut state = lock(&self.state);
        debug_assert_eq!(state.ticket, ticket);
        state.delivery = Some(delivery);
        state.inbox = Some(inbox);
    }

    /// Takes the delivery of invocation `ticket` out of the call, if it is still waiting
    /// (not cancelled, not taken, and the call not reused since).
    pub(crate) fn take_delivery(&self, ticket: u64) -> Option<Delivery> {
        let mut state = lock(&self.state);
        if state.ticket != ticket {
            return None;
        }
        state.inbox = None;
        state.delivery.take()
    }

    // ----- binding -----

    /// Gives a writer handle its ring for a first write of `len` bytes, meeting the
    /// reader whichever binds first.
    pub(crate) fn bind_writer(&self, dir: Dir, path: &Path, len: usize) -> WriterBinding {
        let mut wake = None;
        let binding = {
            let mut guard = lock(&self.state);
            let state = &mut *guard;
            if let Err(failure) = state.check_leaf(dir, path) {
                return WriterBinding::Failed(failure);
            }
            let reader_gone = state.live[dir.reader() as usize] == 0;
            let limits = &self.home.limits;
            let class = self.home.rings.for_first_write(len);
            let capacity = self.home.rings.capacity(class);
            match state.entries.get(dir, path) {
                None if reader_gone => {
                    return WriterBinding::Failed(Failure::new(
                        io::ErrorKind::BrokenPipe,
                        dir.reader().gone_reason(state.target.as_ref(), Some((dir, path))),
                    ));
                }
                None => {
                    if let Err(failure) = state.check_streams(limits, dir, path) {
                        return WriterBinding::Failed(failure);
                    }
                }
                Some(entry) => match entry.writer {
                    WriterState::Absent => {}
                    _ => return WriterBinding::Failed(state.in_use(dir, path, "written")),
                },
            }
            if let Err(limit) = state.bytes_allowed(limits, capacity) {
                return WriterBinding::Failed(state.too_many_bytes(dir, path, capacity, limit));
            }
            let entry = state.entries.get_or_insert(dir, path);
            if let ReaderState::Done = entry.reader {
                // The reader was dropped before binding.
                entry.writer = WriterState::Done;
                state.entries.remove_if_settled(dir, path);
                return WriterBinding::Failed(Failure::new(
                    io::ErrorKind::BrokenPipe,
                    format!(
                        "the reader of async value path {:?} of the {} of `{}` is gone",
                        path.as_slice(),
                        dir.name(),
                        state.target_name()
                    ),
                ));
            }
            let (writer, reader) = self.home.rings.acquire(class);
            entry.writer = WriterState::Bound;
            entry.rings.push(reader);
            if let ReaderState::Parked(waker) = std::mem::replace(&mut entry.reader, ReaderState::Absent) {
                wake = Some(waker);
            }
            state.waiting_bytes += capacity;
            WriterBinding::Ring(writer)
        };
        if let Some(waker) = wake {
            waker.wake();
        }
        binding
    }

    /// A ring of the class after `capacity` for a bound writer whose ring is full, its
    /// reader half queued behind the current ring's; `None` when there is no larger
    /// class, the reader is gone, or the per-call bound on bytes leaves no room (the
    /// writer then waits for its reader as usual).
    pub(crate) fn grow(&self, dir: Dir, path: &Path, capacity: usize) -> Option<RingWriter> {
        let class = self.home.rings.next_after(capacity)?;
        let capacity = self.home.rings.capacity(class);
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        state.bytes_allowed(&self.home.limits, capacity).ok()?;
        let entry = state.entries.get_mut(dir, path)?;
        if !matches!(entry.writer, WriterState::Bound) || matches!(entry.reader, ReaderState::Done) {
            return None;
        }
        let (writer, reader) = self.home.rings.acquire(class);
        entry.rings.push(reader);
        state.waiting_bytes += capacity;
        Some(writer)
    }

    /// Gives a reader handle its ring, meeting the writer whichever binds first; a
    /// reader that comes first parks `waker` (`parked`: this handle did so already).
    pub(crate) fn bind_reader(&self, dir: Dir, path: &Path, waker: &Waker, parked: bool) -> ReaderBinding {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        if let Err(failure) = state.check_leaf(dir, path) {
            return ReaderBinding::Failed(failure);
        }
        let writer_gone = state.live[dir.writer() as usize] == 0;
        let Some(entry) = state.entries.get_mut(dir, path) else {
            if writer_gone {
                return ReaderBinding::Failed(Failure::new(
                    io::ErrorKind::ConnectionAborted,
                    dir.writer().gone_reason(state.target.as_ref(), Some((dir, path))),
                ));
            }
            if let Err(failure) = state.check_streams(&self.home.limits, dir, path) {
                return ReaderBinding::Failed(failure);
            }
            let mut entry = Entry::new();
            entry.reader = ReaderState::Parked(waker.clone());
            state.entries.insert(dir, path, entry);
            return ReaderBinding::Parked;
        };
        match &mut entry.reader {
            ReaderState::Absent => {}
            ReaderState::Parked(stored) if parked => {
                if !stored.will_wake(waker) {
                    stored.clone_from(waker);
                }
            }
            _ => return ReaderBinding::Failed(state.in_use(dir, path, "read")),
        }
        if let Some(reader) = State::take_ring(&mut state.waiting_bytes, entry) {
            entry.reader = ReaderState::Bound;
            return ReaderBinding::Ring(reader);
        }
        let binding = match std::mem::replace(&mut entry.writer, WriterState::Done) {
            WriterState::Ended(None) => ReaderBinding::Eof,
            WriterState::Ended(Some(reason)) => {
                ReaderBinding::Failed(Failure::new(io::ErrorKind::ConnectionAborted, reason))
            }
            WriterState::Absent if writer_gone => ReaderBinding::Failed(Failure::new(
                io::ErrorKind::ConnectionAborted,
                dir.writer().gone_reason(state.target.as_ref(), Some((dir, path))),
            )),
            WriterState::Absent => {
                entry.writer = WriterState::Absent;
                if !parked {
                    entry.reader = ReaderState::Parked(waker.clone());
                }
                return ReaderBinding::Parked;
            }
            // A writer that bound left a ring; one that is done left its rings too, all
            // taken by now: nothing more is coming.
            WriterState::Bound | WriterState::Done => ReaderBinding::Eof,
        };
        entry.reader = ReaderState::Done;
        state.entries.remove_if_settled(dir, path);
        binding
    }

    /// For a bound reader at the clean end of its ring: the next ring of the stream, if
    /// the writer moved on to a larger one.
    pub(crate) fn next_ring(&self, dir: Dir, path: &Path) -> Option<RingReader> {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let entry = state.entries.get_mut(dir, path)?;
        State::take_ring(&mut state.waiting_bytes, entry)
    }

    // ----- ending -----

    /// Ends a writer handle that never bound (shut down or aborted first).
    pub(crate) fn end_writer(&self, dir: Dir, path: &Path, reason: Option<Cow<'static, str>>) {
        let mut leftovers = Leftovers::default();
        {
            let mut state = lock(&self.state);
            Self::settle(
                &mut state,
                &self.home.limits,
                Ending::UnboundWriter(dir, path, reason),
                &mut leftovers,
            );
        }
        leftovers.finish();
    }

    /// Records how a handle ended in the table.
    fn settle(state: &mut State, limits: &Limits, ending: Ending<'_>, leftovers: &mut Leftovers) {
        let (dir, path) = match &ending {
            Ending::Nothing => return,
            Ending::UnboundWriter(dir, path, _)
            | Ending::UnboundReader(dir, path, _)
            | Ending::Bound(dir, path, _) => (*dir, *path),
        };
        let Some(entry) = state.entries.get_mut(dir, path) else {
            if !state.has_room(limits) {
                // Over the bound (handles opened while there was room, ended unused):
                // no mark. The peer's handle then learns the end when this whole side
                // is gone: a reader as an abort, a writer as `BrokenPipe`, never as a
                // silent clean end.
                return;
            }
            match ending {
                // Ended before the peer came: leave a mark for it.
                Ending::UnboundWriter(_, _, reason) => {
                    let mut entry = Entry::new();
                    entry.writer = WriterState::Ended(reason);
                    state.entries.insert(dir, path, entry);
                }
                Ending::UnboundReader(..) => {
                    let mut entry = Entry::new();
                    entry.reader = ReaderState::Done;
                    state.entries.insert(dir, path, entry);
                }
                _ => {}
            }
            return;
        };
        match ending {
            Ending::Nothing => {}
            Ending::UnboundWriter(_, _, reason) => {
                if !matches!(entry.writer, WriterState::Absent) {
                    return; // another writer handle owns this path
                }
                entry.writer = match entry.reader {
                    ReaderState::Done => WriterState::Done,
                    _ => WriterState::Ended(reason),
                };
                if let ReaderState::Parked(waker) = std::mem::replace(&mut entry.reader, ReaderState::Absent)
                {
                    leftovers.wake(waker);
                }
            }
            Ending::UnboundReader(_, _, parked) => {
                let ours = match entry.reader {
                    ReaderState::Absent => true,
                    ReaderState::Parked(_) => parked,
                    _ => false,
                };
                if !ours {
                    return; // another reader handle owns this path
                }
                entry.reader = ReaderState::Done;
                State::drain_rings(&mut state.waiting_bytes, entry, leftovers);
                if let WriterState::Ended(_) = entry.writer {
                    entry.writer = WriterState::Done;
                }
            }
            Ending::Bound(_, _, Half::Writer) => entry.writer = WriterState::Done,
            Ending::Bound(_, _, Half::Reader) => {
                entry.reader = ReaderState::Done;
                State::drain_rings(&mut state.waiting_bytes, entry, leftovers);
            }
        }
        state.entries.remove_if_settled(dir, path);
    }

    /// Forgets a dropped handle of `side`, first recording how it ended. When the last
    /// handle of a side goes, the halves still waiting for that side are closed (so the
    /// peer fails fast instead of waiting), and a caller's invocation still queued is
    /// taken out of its inbox with its parameters; when the last handle of the call
    /// goes, the call returns to its pool.
    pub(crate) fn release(self: &Arc<Self>, side: Side, ending: Ending<'_>) {
        let mut leftovers = Leftovers::default();
        let mut cancelled = None;
        let done = {
            let mut guard = lock(&self.state);
            let state = &mut *guard;
            Self::settle(state, &self.home.limits, ending, &mut leftovers);
            let live = &mut state.live[side as usize];
            *live -= 1;
            if *live == 0 {
                if side == Side::Client {
                    if let Some(delivery) = state.delivery.take() {
                        // Cancelled while queued: the callee never sees it.
                        cancelled = Some((delivery, state.inbox.take(), state.ticket));
                    }
                }
                Self::abandon(state, side, &mut leftovers);
            }
            let done = state.live == [0, 0];
            if done {
                // No handle is left, so nothing can reach this state until it is
                // handed out again; every half was settled above.
                debug_assert!(state.entries.holds_no_ring());
                state.entries.clear();
                state.waiting_bytes = 0;
                state.target = None;
                state.params = None;
                state.results.clear();
                state.inbox = None;
            }
            done
        };
        leftovers.finish();
        if let Some((delivery, inbox, ticket)) = cancelled {
            if let Some(inbox) = inbox {
                inbox.remove(ticket);
            }
            drop(delivery);
            // The callee's two root handles that the delivery stood for.
            drop(super::Outgoing::root(self.clone(), Side::Server, None));
            drop(super::Incoming::root(self.clone(), Side::Server, Bytes::new()));
        }
        if done {
            self.home.recycle(self.clone());
        }
    }

    /// Closes what waits for `side`, whose last handle just went.
    fn abandon(state: &mut State, side: Side, leftovers: &mut Leftovers) {
        let waiting_bytes = &mut state.waiting_bytes;
        let target = &state.target;
        state.entries.retain(|dir, entry| {
            if dir.reader() == side && !matches!(entry.reader, ReaderState::Done) {
                // Nobody will read: the writer's next write fails with `BrokenPipe`.
                entry.reader = ReaderState::Done;
                State::drain_rings(waiting_bytes, entry, leftovers);
                if let WriterState::Ended(_) = entry.writer {
                    entry.writer = WriterState::Done;
                }
            }
            if dir.writer() == side && matches!(entry.writer, WriterState::Absent) {
                // Nobody will write: a parked reader fails instead of waiting.
                entry.writer = match entry.reader {
                    ReaderState::Done => WriterState::Done,
                    // `retain` gives no path: the reason names the call only.
                    _ => WriterState::Ended(Some(Cow::Owned(side.gone_reason(target.as_ref(), None)))),
                };
                if let ReaderState::Parked(waker) = std::mem::replace(&mut entry.reader, ReaderState::Absent)
                {
                    leftovers.wake(waker);
                }
            }
            !entry.is_settled()
        });
    }

    /// The invocation's target, for messages.
    pub(crate) fn target(&self) -> Option<Arc<Target>> {
        lock(&self.state).target.clone()
    }
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Call")
            .field("target", &state.target)
            .field("live", &state.live)
            .field("streams", &state.entries.len())
            .field("waiting_bytes", &state.waiting_bytes)
            .field("queued", &state.delivery.is_some())
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CallPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallPool")
            .field("max_idle", &self.max_idle)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
