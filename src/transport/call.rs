//! One invocation's shared state: which sub-stream rings exist, which half of each
//! still waits for its side, and how many handles each side holds.
//!
//! Every handle of an invocation ([`Outgoing`](super::Outgoing) and
//! [`Incoming`](super::Incoming), on both sides) shares one [`Call`]. The mutex in it is
//! taken when a handle is created (`index`), when it first touches its ring (*binding*,
//! once per handle) and when it is dropped: never per read or write. Calls are pooled
//! like rings, so a warm invocation allocates nothing here.

use std::borrow::Cow;
use std::fmt;
use std::io;

use crate::RingPool;
use crate::ring::{RingReader, RingWriter};
use crate::sync::{Arc, Mutex, lock};

use super::error::TransportError;
use super::path::{Declaration, DisplayDeclared, FlatPaths, Path, classify};

/// Parameter paths as the callee declared them in `serve` (`std`'s `Arc`: the type of
/// `Serve::serve`'s argument).
pub(crate) type ServePaths = std::sync::Arc<[Box<[Option<usize>]>]>;

/// The two directions of an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    fn gone_reason(self) -> &'static str {
        match self {
            Self::Client => "the caller dropped the invocation",
            Self::Server => "the callee dropped the invocation",
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
    /// The writer closed cleanly without ever writing.
    Eof,
    Failed(Failure),
}

/// How a handle that never bound ends.
pub(crate) enum Unbound<'a> {
    /// It had bound, or was never meant to carry data: nothing to record.
    Nothing,
    /// A writer: a clean close (`None`) or an abort with the reason.
    Writer(Dir, &'a Path, Option<Cow<'static, str>>),
    /// A reader that never read.
    Reader(Dir, &'a Path),
}

/// The state of one sub-stream.
enum Slot {
    /// The writer bound first: the reader half waits for the reading side.
    ReaderWaiting(RingReader),
    /// The reader bound first: the writer half waits for the writing side.
    WriterWaiting(RingWriter),
    /// The writer ended before binding: cleanly (`None`) or aborted.
    Ended(Option<Cow<'static, str>>),
    /// The reader was dropped before binding.
    ReaderGone,
    /// Both ends settled: no half is left here.
    Settled,
}

struct Entry {
    dir: Dir,
    path: Path,
    slot: Slot,
}

/// A ring half taken out of the table, to be closed outside the lock.
enum Leftover {
    Reader(RingReader),
    Writer(RingWriter, Option<Cow<'static, str>>),
}

impl Leftover {
    fn finish(self) {
        match self {
            Self::Reader(reader) => drop(reader),
            Self::Writer(mut writer, Some(reason)) => writer.abort(reason),
            Self::Writer(writer, None) => drop(writer),
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
    /// Sub-streams touched so far (kept for the whole invocation; its capacity is
    /// reused by the next one).
    entries: Vec<Entry>,
}

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

    fn find(&mut self, dir: Dir, path: &Path) -> Option<&mut Slot> {
        self.entries
            .iter_mut()
            .find(|entry| entry.dir == dir && entry.path == *path.as_slice())
            .map(|entry| &mut entry.slot)
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
}

/// One invocation, shared by all of its handles.
pub(crate) struct Call {
    state: Mutex<State>,
    home: Arc<CallPool>,
}

/// Idle [`Call`]s, and the rings their sub-streams lease.
pub(crate) struct CallPool {
    rings: RingPool,
    max_idle: usize,
    /// `None` once the transport is gone (which breaks the `Call` → pool → `Call` cycle).
    idle: Mutex<Option<Vec<Arc<Call>>>>,
}

impl CallPool {
    pub(crate) fn new(rings: RingPool) -> Arc<Self> {
        let max_idle = rings.max_idle();
        Arc::new(Self {
            rings,
            max_idle,
            idle: Mutex::new(Some(Vec::new())),
        })
    }

    pub(crate) fn rings(&self) -> &RingPool {
        &self.rings
    }

    /// Sets up a call with the two root handles of each side counted.
    pub(crate) fn start<P: AsRef<[Option<usize>]>>(
        self: &Arc<Self>,
        target: Arc<Target>,
        params: ServePaths,
        results: &[P],
    ) -> Arc<Call> {
        let reused = lock(&self.idle).as_mut().and_then(Vec::pop);
        let call = reused.unwrap_or_else(|| {
            Arc::new(Call {
                state: Mutex::new(State::default()),
                home: self.clone(),
            })
        });
        {
            let mut state = lock(&call.state);
            state.live = [2, 2];
            state.target = Some(target);
            state.params = Some(params);
            state.results.fill(results);
        }
        call
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
        if state.declaration(dir, path.as_slice()) == Declaration::Undeclared {
            return Err(state.undeclared(dir, path.as_slice()));
        }
        state.live[side as usize] += 1;
        Ok(())
    }

    /// Whether every handle of `side` is gone.
    pub(crate) fn is_gone(&self, side: Side) -> bool {
        lock(&self.state).live[side as usize] == 0
    }

    /// Gives a writer handle its ring, meeting the reader whichever binds first.
    pub(crate) fn bind_writer(&self, dir: Dir, path: &Path) -> WriterBinding {
        let mut state = lock(&self.state);
        if let Err(failure) = state.check_leaf(dir, path) {
            return WriterBinding::Failed(failure);
        }
        let reader_gone = state.live[dir.reader() as usize] == 0;
        match state.find(dir, path) {
            Some(slot) => match std::mem::replace(slot, Slot::Settled) {
                Slot::WriterWaiting(writer) => WriterBinding::Ring(writer),
                Slot::ReaderGone => WriterBinding::Failed(Failure::new(
                    io::ErrorKind::BrokenPipe,
                    "the reader of this stream is gone",
                )),
                other => {
                    *slot = other;
                    WriterBinding::Failed(state.in_use(dir, path, "written"))
                }
            },
            None if reader_gone => WriterBinding::Failed(Failure::new(
                io::ErrorKind::BrokenPipe,
                dir.reader().gone_reason(),
            )),
            None => {
                let (writer, reader) = self.home.rings.acquire();
                state.entries.push(Entry {
                    dir,
                    path: path.clone(),
                    slot: Slot::ReaderWaiting(reader),
                });
                WriterBinding::Ring(writer)
            }
        }
    }

    /// Gives a reader handle its ring, meeting the writer whichever binds first.
    pub(crate) fn bind_reader(&self, dir: Dir, path: &Path) -> ReaderBinding {
        let mut state = lock(&self.state);
        if let Err(failure) = state.check_leaf(dir, path) {
            return ReaderBinding::Failed(failure);
        }
        let writer_gone = state.live[dir.writer() as usize] == 0;
        match state.find(dir, path) {
            Some(slot) => match std::mem::replace(slot, Slot::Settled) {
                Slot::ReaderWaiting(reader) => ReaderBinding::Ring(reader),
                Slot::Ended(None) => ReaderBinding::Eof,
                Slot::Ended(Some(reason)) => {
                    ReaderBinding::Failed(Failure::new(io::ErrorKind::ConnectionAborted, reason))
                }
                other => {
                    *slot = other;
                    ReaderBinding::Failed(state.in_use(dir, path, "read"))
                }
            },
            None if writer_gone => ReaderBinding::Failed(Failure::new(
                io::ErrorKind::ConnectionAborted,
                dir.writer().gone_reason(),
            )),
            None => {
                let (writer, reader) = self.home.rings.acquire();
                state.entries.push(Entry {
                    dir,
                    path: path.clone(),
                    slot: Slot::WriterWaiting(writer),
                });
                ReaderBinding::Ring(reader)
            }
        }
    }

    /// Ends a writer handle that never bound (shut down, aborted or dropped first).
    pub(crate) fn end_writer(&self, dir: Dir, path: &Path, reason: Option<Cow<'static, str>>) {
        let leftover = {
            let mut state = lock(&self.state);
            Self::settle_writer(&mut state, dir, path, reason)
        };
        if let Some(leftover) = leftover {
            leftover.finish();
        }
    }

    fn settle_writer(
        state: &mut State,
        dir: Dir,
        path: &Path,
        reason: Option<Cow<'static, str>>,
    ) -> Option<Leftover> {
        match state.find(dir, path) {
            None => {
                state.entries.push(Entry {
                    dir,
                    path: path.clone(),
                    slot: Slot::Ended(reason),
                });
                None
            }
            Some(slot) => match std::mem::replace(slot, Slot::Settled) {
                Slot::WriterWaiting(writer) => Some(Leftover::Writer(writer, reason)),
                other => {
                    // Another writer handle owns this path; leave it alone.
                    *slot = other;
                    None
                }
            },
        }
    }

    fn settle_reader(state: &mut State, dir: Dir, path: &Path) -> Option<Leftover> {
        match state.find(dir, path) {
            None => {
                state.entries.push(Entry {
                    dir,
                    path: path.clone(),
                    slot: Slot::ReaderGone,
                });
                None
            }
            Some(slot) => match std::mem::replace(slot, Slot::Settled) {
                Slot::ReaderWaiting(reader) => Some(Leftover::Reader(reader)),
                Slot::Ended(_) | Slot::Settled => None,
                other => {
                    *slot = other;
                    None
                }
            },
        }
    }

    /// Forgets a dropped handle of `side`, first recording how it ended if it never
    /// bound. When the last handle of a side goes, the halves still waiting for that side
    /// are closed (so the peer fails fast instead of waiting); when the last handle of
    /// the call goes, the call returns to its pool.
    pub(crate) fn release(self: &Arc<Self>, side: Side, unbound: Unbound<'_>) {
        // Halves waiting for a side that is gone: only after a cancellation, so the
        // vector stays empty (and unallocated) on the normal path.
        let mut abandoned = Vec::new();
        let (leftover, done) = {
            let mut state = lock(&self.state);
            let leftover = match unbound {
                Unbound::Nothing => None,
                Unbound::Writer(dir, path, reason) => Self::settle_writer(&mut state, dir, path, reason),
                Unbound::Reader(dir, path) => Self::settle_reader(&mut state, dir, path),
            };
            let live = &mut state.live[side as usize];
            *live -= 1;
            if *live == 0 {
                for entry in &mut state.entries {
                    let waits_for_side = match entry.slot {
                        Slot::ReaderWaiting(_) => entry.dir.reader() == side,
                        Slot::WriterWaiting(_) => entry.dir.writer() == side,
                        _ => false,
                    };
                    if waits_for_side {
                        match std::mem::replace(&mut entry.slot, Slot::Settled) {
                            Slot::ReaderWaiting(reader) => abandoned.push(Leftover::Reader(reader)),
                            Slot::WriterWaiting(writer) => abandoned
                                .push(Leftover::Writer(writer, Some(Cow::Borrowed(side.gone_reason())))),
                            _ => {}
                        }
                    }
                }
            }
            let done = state.live == [0, 0];
            if done {
                // No handle is left, so nothing can reach this state until it is
                // handed out again; every half was settled above.
                state.entries.clear();
                state.target = None;
                state.params = None;
                state.results.clear();
            }
            (leftover, done)
        };
        if let Some(leftover) = leftover {
            leftover.finish();
        }
        for leftover in abandoned {
            leftover.finish();
        }
        if done {
            self.home.recycle(self.clone());
        }
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
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for CallPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallPool")
            .field("max_idle", &self.max_idle)
            .finish_non_exhaustive()
    }
}
