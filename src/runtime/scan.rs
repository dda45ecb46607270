//! Bounds what the `Val` path's decoder may allocate.
//!
//! `wrpc_runtime_wasmtime` 0.31 decodes an export's parameters, and an import's
//! results, straight from the transport, and its `list<T>` decoder reserves room for
//! the element count that the peer announced (`Vec::with_capacity(n)`) before any
//! element arrives. A peer that announces ~4 billion elements makes that allocation
//! fail, which aborts the process.
//!
//! So before that decoder reads those values, the host walks their wire encoding
//! itself ([`Checked`]), reading the bytes into one buffer:
//! - every list's element count is checked against the component's memory limit (the
//!   guest could not hold the list: each element takes at least its canonical-ABI
//!   size in guest memory), and every element must really arrive;
//! - at most the memory limit of bytes is gathered (as the fast path does).
//!
//! The decoder then reads the gathered bytes first. The walk mirrors the decoder's
//! reads type by type. Where it cannot tell what comes next (bytes that the decoder
//! would reject, the end of the stream, types that the decoder does not support or
//! that it reads to the stream's end), the walk stops there and leaves the rest to
//! the decoder, which fails at that same place before it reads any further list.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BufMut as _;
use tokio::io::{AsyncRead, ReadBuf};
use wasmtime::component::{ResourceType, Type};
use wasmtime_wasi::p2::DynInputStream;

/// Bytes read from the transport at a time.
const CHUNK: usize = 64 * 1024;

/// A transport stream whose head, the encoding of values of known types, is walked
/// (and its lists bounded) before anything is read from it: the first read walks it,
/// reading the bytes into a buffer, and every read then takes the buffer first.
pub(crate) struct Checked<I> {
    /// `None` once the walk is over (or for a stream that is not walked).
    walk: Option<Walk>,
    /// The walk's failure, returned by every read after it.
    failed: Option<(io::ErrorKind, String)>,
    head: Vec<u8>,
    /// Bytes of `head` already read.
    at: usize,
    inner: I,
}

impl<I: AsyncRead + Unpin> Checked<I> {
    /// Walks values of `types` at the front of `inner`, gathering at most `max_memory`
    /// bytes; `what` names them in errors ("parameter", "result").
    pub(crate) fn new(
        inner: I,
        types: &[Type],
        io_streams: Arc<[ResourceType]>,
        max_memory: usize,
        what: &'static str,
    ) -> Self {
        Self {
            walk: Some(Walk::new(types, io_streams, max_memory, what)),
            failed: None,
            head: Vec::new(),
            at: 0,
            inner,
        }
    }

    /// `inner` as it is: nothing to walk.
    pub(crate) fn plain(inner: I) -> Self {
        Self {
            walk: None,
            failed: None,
            head: Vec::new(),
            at: 0,
            inner,
        }
    }

    /// Walks the values to their end (waiting for their bytes) before anything reads
    /// them.
    ///
    /// # Errors
    ///
    /// An `InvalidData` error if a list announces more elements than the memory limit
    /// could hold, or if the values are larger than the limit; the transport's error
    /// if reading fails. Later reads fail with the same error.
    pub(crate) async fn walked(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_walk(cx)).await
    }

    fn poll_walk(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if let Some((kind, message)) = &self.failed {
                return Poll::Ready(Err(io::Error::new(*kind, message.clone())));
            }
            let Some(walk) = &mut self.walk else {
                return Poll::Ready(Ok(()));
            };
            match walk.advance(&self.head) {
                Ok(Step::Done | Step::Stop) => {
                    self.walk = None;
                    continue;
                }
                Ok(Step::More) => {}
                Err(err) => {
                    self.fail(&err);
                    continue;
                }
            }
            let (max, what) = (walk.max_memory, walk.what);
            let len = self.head.len();
            if len >= max {
                self.fail(&io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the {what}s are larger than the component's memory limit ({max} bytes)"),
                ));
                continue;
            }
            // Into the spare capacity, which is not zeroed first: a reader that
            // delivers a few bytes per poll costs no more than their copy.
            let want = CHUNK.min(max - len);
            self.head.reserve(want);
            let mut room = (&mut self.head).limit(want);
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.inner), cx, &mut room) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                // At the end of the stream, the decoder reports what is missing.
                Poll::Ready(Ok(0)) => self.walk = None,
                Poll::Ready(Ok(_)) => {}
            }
        }
    }

    fn fail(&mut self, err: &io::Error) {
        self.walk = None;
        self.head = Vec::new();
        self.at = 0;
        self.failed = Some((err.kind(), err.to_string()));
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Checked<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_walk(cx))?;
        if this.at < this.head.len() {
            let n = buf.remaining().min(this.head.len() - this.at);
            buf.put_slice(&this.head[this.at..this.at + n]);
            this.at += n;
            if this.at == this.head.len() {
                this.head = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

/// Sub-streams carry the async values below the walked ones: not walked.
impl<I: AsyncRead + Unpin + wrpc_transport::Index<I>> wrpc_transport::Index<Self> for Checked<I> {
    fn index(&self, path: &[usize]) -> anyhow::Result<Self> {
        Ok(Self::plain(self.inner.index(path)?))
    }
}

/// What [`Walk::advance`] found.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Every value's bytes are in the buffer.
    Done,
    /// The buffer ends inside a value.
    More,
    /// The walk cannot go on (bytes the decoder rejects, or a type whose length it
    /// cannot tell); the decoder takes over from here.
    Stop,
}

/// What is left to walk, innermost last.
enum Item {
    /// Parameter `i` starts (for messages).
    Param(usize),
    One(Type),
    /// `n` more elements of a list.
    Many(Type, u32),
}

/// A resumable walk over the encoding of a list of values (an export's parameters, an
/// import's results): it stops where the bytes end and goes on from there once more
/// have arrived.
struct Walk {
    todo: Vec<Item>,
    /// The nested values of the value just walked, last first.
    nested: Vec<Item>,
    /// Bytes of the buffer walked over.
    at: usize,
    /// The value being walked, by position (for messages).
    param: usize,
    /// What the values are: "parameter" or "result".
    what: &'static str,
    io_streams: Arc<[ResourceType]>,
    max_memory: usize,
}

impl Walk {
    fn new(params: &[Type], io_streams: Arc<[ResourceType]>, max_memory: usize, what: &'static str) -> Self {
        let mut todo = Vec::with_capacity(params.len() * 2);
        for (i, ty) in params.iter().enumerate().rev() {
            todo.push(Item::One(ty.clone()));
            todo.push(Item::Param(i));
        }
        Self {
            todo,
            nested: Vec::new(),
            at: 0,
            param: 0,
            what,
            io_streams,
            max_memory,
        }
    }

    /// Walks `buf` (which only ever grows between calls) as far as it goes.
    fn advance(&mut self, buf: &[u8]) -> io::Result<Step> {
        while let Some(item) = self.todo.pop() {
            let ty = match &item {
                Item::Param(i) => {
                    self.param = *i;
                    continue;
                }
                Item::One(ty) | Item::Many(ty, _) => ty,
            };
            let taken = match self.value(ty, &buf[self.at..])? {
                Some(Some(taken)) => taken,
                Some(None) => {
                    // Put the value back as it was, for when more bytes are in.
                    debug_assert!(self.nested.is_empty());
                    self.todo.push(item);
                    return Ok(Step::More);
                }
                None => return Ok(Step::Stop),
            };
            self.at += taken;
            if let Item::Many(ty, n @ 2..) = item {
                self.todo.push(Item::Many(ty, n - 1));
            }
            // The value's nested values come before whatever follows it.
            self.todo.append(&mut self.nested);
        }
        Ok(Step::Done)
    }

    /// Walks the head of one value of type `ty` at the front of `rest`: the bytes it
    /// takes (its nested values go to `nested`, last first), `Some(None)` if `rest`
    /// ends first, `None` if the walk cannot go on. Takes nothing, and queues nothing,
    /// unless the head is whole.
    fn value(&mut self, ty: &Type, rest: &[u8]) -> io::Result<Option<Option<usize>>> {
        let fixed = |n: usize| Some((rest.len() >= n).then_some(n));
        Ok(match ty {
            Type::Bool | Type::S8 | Type::U8 => fixed(1),
            Type::Float32 => fixed(4),
            Type::Float64 => fixed(8),
            Type::S16 | Type::U16 => leb_len(rest, 3),
            Type::S32 | Type::U32 | Type::Enum(_) => leb_len(rest, 5),
            Type::S64 | Type::U64 => leb_len(rest, 10),
            Type::Char => match rest.first() {
                None => Some(None),
                Some(&lead) => utf8_len(lead).and_then(fixed),
            },
            Type::String => match leb_u32(rest) {
                Some(Some((n, head))) => Some(self.bytes(head, u64::from(n), rest)),
                other => other.map(|_| None),
            },
            Type::List(list) => match leb_u32(rest) {
                Some(Some((n, head))) => {
                    let elem = list.ty();
                    self.check_list(n, &elem)?;
                    match wire_size(&elem) {
                        Some(size) => Some(self.bytes(head, u64::from(n) * size as u64, rest)),
                        None => {
                            if n > 0 {
                                self.nested.push(Item::Many(elem, n));
                            }
                            Some(Some(head))
                        }
                    }
                }
                other => other.map(|_| None),
            },
            Type::Record(record) => {
                let fields: Vec<Type> = record.fields().map(|field| field.ty).collect();
                self.nested.extend(fields.into_iter().rev().map(Item::One));
                Some(Some(0))
            }
            Type::Tuple(tuple) => {
                let types: Vec<Type> = tuple.types().collect();
                self.nested.extend(types.into_iter().rev().map(Item::One));
                Some(Some(0))
            }
            Type::Variant(variant) => match leb_u32(rest) {
                Some(Some((case, head))) => {
                    let case = usize::try_from(case)
                        .ok()
                        .and_then(|case| variant.cases().nth(case));
                    match case {
                        None => None,
                        Some(case) => {
                            self.nested.extend(case.ty.map(Item::One));
                            Some(Some(head))
                        }
                    }
                }
                other => other.map(|_| None),
            },
            Type::Option(option) => match rest.first() {
                None => Some(None),
                Some(0) => Some(Some(1)),
                Some(1) => {
                    self.nested.push(Item::One(option.ty()));
                    Some(Some(1))
                }
                Some(_) => None,
            },
            Type::Result(result) => match rest.first() {
                None => Some(None),
                // `0` is `ok`, as the decoder reads it.
                Some(&status @ (0 | 1)) => {
                    let payload = if status == 0 { result.ok() } else { result.err() };
                    self.nested.extend(payload.map(Item::One));
                    Some(Some(1))
                }
                Some(_) => None,
            },
            Type::Flags(flags) => fixed(flags.names().len().div_ceil(8).max(1)),
            // An I/O stream is a sub-stream of its own: nothing on this one.
            Type::Own(resource) | Type::Borrow(resource)
                if *resource == ResourceType::host::<DynInputStream>()
                    || self.io_streams.contains(resource) =>
            {
                Some(Some(0))
            }
            // Other resources are remote handles: a length, for which the decoder
            // reserves room, then it reads to the end of the stream, so the walk can
            // go no further.
            Type::Own(_) | Type::Borrow(_) => match leb_u32(rest) {
                Some(Some((n, _))) if u64::from(n) > self.max_memory as u64 => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} {} announces a resource handle of {n} bytes, more than the \
                             component's memory limit ({} bytes)",
                            self.what, self.param, self.max_memory
                        ),
                    ));
                }
                Some(None) => Some(None),
                _ => None,
            },
            // The async types and maps are not supported by the decoder.
            Type::Future(_) | Type::Stream(_) | Type::ErrorContext | Type::Map(_) => None,
        })
    }

    /// A head of `head` bytes followed by `n` bytes of payload, if all are in `rest`.
    fn bytes(&self, head: usize, n: u64, rest: &[u8]) -> Option<usize> {
        let total = usize::try_from(n).ok()?.checked_add(head)?;
        (rest.len() >= total).then_some(total)
    }

    /// Fails a list of `n` elements of `elem` that guest memory of `max_memory` bytes
    /// could not hold.
    fn check_list(&self, n: u32, elem: &Type) -> io::Result<()> {
        let size = abi_size(elem).max(1);
        if u64::from(n).saturating_mul(size) <= self.max_memory as u64 {
            return Ok(());
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} {} announces a list of {n} elements, which cannot fit in the \
                 component's memory limit ({} bytes)",
                self.what, self.param, self.max_memory
            ),
        ))
    }
}

/// The length of the unsigned or signed LEB128 at the front of `rest`, of at most
/// `max` bytes: `Some(None)` if `rest` ends first, `None` if it is longer.
fn leb_len(rest: &[u8], max: usize) -> Option<Option<usize>> {
    for (i, byte) in rest.iter().take(max).enumerate() {
        if byte & 0x80 == 0 {
            return Some(Some(i + 1));
        }
    }
    if rest.len() < max { Some(None) } else { None }
}

/// The unsigned LEB128 `u32` at the front of `rest` and its length, as [`leb_len`].
fn leb_u32(rest: &[u8]) -> Option<Option<(u32, usize)>> {
    let len = match leb_len(rest, 5)? {
        Some(len) => len,
        None => return Some(None),
    };
    let mut v: u64 = 0;
    for (i, byte) in rest[..len].iter().enumerate() {
        v |= u64::from(byte & 0x7f) << (7 * i);
    }
    Some(Some((u32::try_from(v).ok()?, len)))
}

/// The length of a UTF-8 `char` from its first byte, `None` for a byte no `char`
/// starts with.
fn utf8_len(lead: u8) -> Option<usize> {
    match lead.leading_ones() {
        0 => Some(1),
        2 => Some(2),
        3 => Some(3),
        4 => Some(4),
        _ => None,
    }
}

/// The wire size of a value of `ty` if every value of it has the same one (then a
/// list of it is taken in one step).
fn wire_size(ty: &Type) -> Option<usize> {
    match ty {
        Type::Bool | Type::S8 | Type::U8 => Some(1),
        Type::Float32 => Some(4),
        Type::Float64 => Some(8),
        _ => None,
    }
}

/// A lower bound on the canonical-ABI size of a value of `ty` in guest memory.
fn abi_size(ty: &Type) -> u64 {
    match ty {
        Type::Bool | Type::S8 | Type::U8 | Type::Enum(_) | Type::Flags(_) => 1,
        Type::S16 | Type::U16 => 2,
        Type::S32 | Type::U32 | Type::Float32 | Type::Char => 4,
        Type::Own(_) | Type::Borrow(_) | Type::Future(_) | Type::Stream(_) | Type::ErrorContext => 4,
        Type::S64 | Type::U64 | Type::Float64 => 8,
        Type::String | Type::List(_) | Type::Map(_) => 8,
        Type::Record(record) => record.fields().map(|field| abi_size(&field.ty)).sum(),
        Type::Tuple(tuple) => tuple.types().map(|ty| abi_size(&ty)).sum(),
        Type::Variant(variant) => {
            1 + variant
                .cases()
                .map(|case| case.ty.as_ref().map_or(0, abi_size))
                .max()
                .unwrap_or(0)
        }
        Type::Option(option) => 1 + abi_size(&option.ty()),
        Type::Result(result) => {
            let ok = result.ok().as_ref().map_or(0, abi_size);
            let err = result.err().as_ref().map_or(0, abi_size);
            1 + ok.max(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::Engine;
    use wasmtime::component::types::ComponentItem;
    use wasmtime::component::{Component, ResourceType, Val};

    /// The named types that [`SIGNATURE`] uses (an imported function may use a
    /// variant or flags type only by a name).
    const TYPES: &str = r#"
        (type $v' (variant (case "x" u64) (case "y")))
        (import "v" (type $v (eq $v')))
        (type $fl' (flags "p" "q" "r"))
        (import "fl" (type $fl (eq $fl')))
        (type $e' (enum "one" "two" "three"))
        (import "e" (type $e (eq $e')))
        (type $r' (record (field "x" s16) (field "y" (list (list u32))) (field "z" $e)))
        (import "r" (type $r (eq $r')))
        (import "res" (type $res (sub resource)))"#;

    /// The parameter types of import `f` of a component that imports [`TYPES`] and it.
    fn params(signature: &str) -> Vec<Type> {
        params_in(&Engine::default(), signature)
    }

    fn params_in(engine: &Engine, signature: &str) -> Vec<Type> {
        let wat = format!("(component {TYPES} (import \"f\" (func {signature})))");
        let component = Component::new(engine, wat).unwrap();
        let (_, item) = component
            .component_type()
            .imports(engine)
            .find(|(name, _)| *name == "f")
            .unwrap();
        let ComponentItem::ComponentFunc(func) = item else {
            panic!("`f` is not a function")
        };
        func.params().map(|(_, ty)| ty).collect()
    }

    fn no_streams() -> Arc<[ResourceType]> {
        Arc::from([])
    }

    /// Walks `buf` as it would arrive one byte at a time.
    fn walk_bytewise(params: &[Type], buf: &[u8], max_memory: usize) -> io::Result<(Step, usize)> {
        let mut walk = Walk::new(params, no_streams(), max_memory, "parameter");
        for end in 0..=buf.len() {
            match walk.advance(&buf[..end])? {
                Step::More => {}
                step => return Ok((step, walk.at)),
            }
        }
        Ok((Step::More, walk.at))
    }

    const SIGNATURE: &str = r#"
        (param "a" (list (tuple u32 string)))
        (param "b" (option $v))
        (param "c" (result char (error (list float64))))
        (param "d" $fl)
        (param "e" bool)
        (param "g" s64)
        (param "h" (list u8))"#;

    /// One encoding of [`SIGNATURE`]'s parameters, as wRPC writes them.
    fn encoded(c_ok: bool) -> Vec<u8> {
        let mut buf = vec![2]; // a: two elements
        buf.extend([0xac, 0x02, 2, b'h', b'i']); // (300, "hi")
        buf.extend([0, 0]); // (0, "")
        buf.extend([1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20]); // b: some(x(2^40))
        if c_ok {
            buf.extend([0, 0xc3, 0xa9]); // c: ok('é')
        } else {
            buf.extend([1, 2]); // c: err([1.0, -0.0])
            buf.extend(1.0f64.to_le_bytes());
            buf.extend((-0.0f64).to_le_bytes());
        }
        buf.push(0b101); // d: p | r
        buf.push(1); // e: true
        buf.push(0x7f); // g: -1
        buf.extend([3, 7, 8, 9]); // h: [7, 8, 9]
        buf
    }

    #[test]
    fn a_walk_ends_exactly_where_the_parameters_do_however_they_arrive() {
        let params = params(SIGNATURE);
        for c_ok in [true, false] {
            let mut buf = encoded(c_ok);
            let len = buf.len();
            assert_eq!(walk_bytewise(&params, &buf, 1 << 20).unwrap(), (Step::Done, len));
            // Bytes past the parameters (an async value's, say) are not the walk's.
            buf.extend([0xff; 8]);
            let mut walk = Walk::new(&params, no_streams(), 1 << 20, "parameter");
            assert_eq!(walk.advance(&buf).unwrap(), Step::Done);
            assert_eq!(walk.at, len);
        }
    }

    #[test]
    fn bytes_the_decoder_rejects_stop_the_walk_where_they_are() {
        let params = params(SIGNATURE);
        let mut buf = encoded(true);
        let option = 8; // `b`'s status byte
        buf[option] = 2;
        assert_eq!(
            walk_bytewise(&params, &buf, 1 << 20).unwrap(),
            (Step::Stop, option)
        );
        let mut buf = encoded(true);
        buf[option + 1] = 5; // no such case
        assert_eq!(
            walk_bytewise(&params, &buf, 1 << 20).unwrap(),
            (Step::Stop, option + 1)
        );
        // A LEB128 `u32` longer than five bytes.
        let params = super::tests::params(r#"(param "n" u32) (param "l" (list u8))"#);
        let buf = [0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0];
        assert_eq!(walk_bytewise(&params, &buf, 1 << 20).unwrap(), (Step::Stop, 0));
    }

    #[test]
    fn a_list_that_cannot_fit_in_guest_memory_is_an_error() {
        let params = params(r#"(param "k" string) (param "v" (list u64))"#);
        // 1000 `u64`s need 8000 bytes of guest memory.
        let mut buf = vec![1, b'k', 0xe8, 0x07];
        let err = walk_bytewise(&params, &buf, 7999).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(
            err.to_string()
                .contains("parameter 1 announces a list of 1000 elements, which cannot fit in the component's memory limit (7999 bytes)"),
            "{err}"
        );
        // With room for them, the walk waits for every element.
        buf.extend(std::iter::repeat_n(0x01, 999));
        assert_eq!(walk_bytewise(&params, &buf, 8000).unwrap(), (Step::More, 4 + 999));
        buf.push(0x01);
        assert_eq!(
            walk_bytewise(&params, &buf, 8000).unwrap(),
            (Step::Done, 4 + 1000)
        );
        // The largest count a peer can announce.
        let params = super::tests::params(r#"(param "v" (list (list u8)))"#);
        let err = walk_bytewise(&params, &[0xff, 0xff, 0xff, 0xff, 0x0f], 256 << 20).unwrap_err();
        assert!(err.to_string().contains("a list of 4294967295 elements"), "{err}");
    }

    #[test]
    fn a_remote_resource_handle_is_bounded_and_ends_the_walk() {
        let params = params(r#"(param "n" u32) (param "h" (own $res)) (param "l" (list u8))"#);
        // Its length fits: the decoder reads the rest of the stream as the handle.
        assert_eq!(
            walk_bytewise(&params, &[7, 16, 1, 2], 1 << 20).unwrap(),
            (Step::Stop, 1)
        );
        let err = walk_bytewise(&params, &[7, 0xff, 0xff, 0xff, 0xff, 0x0f], 1 << 20).unwrap_err();
        assert!(
            err.to_string()
                .contains("parameter 1 announces a resource handle of 4294967295 bytes"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_checked_stream_walks_its_head_then_reads_it_all_back() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

        let params = params(r#"(param "s" string) (param "n" u32)"#);
        let (mut tx, rx) = tokio::io::duplex(16);
        let mut sent = vec![0x80, 0x01];
        sent.extend([b'x'; 128]);
        sent.push(42);
        // More on the stream than the values: left for the decoder.
        sent.extend(b"rest");
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                for piece in sent.chunks(7) {
                    tx.write_all(piece).await.unwrap();
                }
            })
        };
        let mut checked = Checked::new(rx, &params, no_streams(), 1 << 20, "parameter");
        checked.walked().await.unwrap();
        assert!(
            checked.walk.is_none() && checked.head.len() >= 131,
            "walked past the values"
        );
        let mut all = Vec::new();
        writer.await.unwrap();
        checked.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, sent);

        // Larger than the limit: an error, for the walk and for every read after it.
        let (mut tx, rx) = tokio::io::duplex(64);
        tokio::spawn(async move {
            let _ = tx.write_all(&[0xff, 0xff, 0x03]).await; // a 64 KiB string
            let _ = tx.write_all(&[b'y'; 1 << 16]).await;
        });
        let mut checked = Checked::new(rx, &params, no_streams(), 1000, "result");
        let want = "the results are larger than the component's memory limit (1000 bytes)";
        let err = checked.walked().await.unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
        let err = checked.read_u8().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains(want), "{err}");
    }

    /// Another signature, for the types [`SIGNATURE`] leaves out.
    const SIGNATURE_2: &str = r#"
        (param "r" $r)
        (param "u" u16)
        (param "i" s32)
        (param "f" float32)
        (param "l" u64)
        (param "o" (option string))
        (param "c" char)"#;

    /// Three values of each parameter of [`SIGNATURE`] and [`SIGNATURE_2`].
    fn values() -> [Vec<[Val; 3]>; 2] {
        use Val::*;
        let string = |s: &str| String(s.into());
        let boxed = |v: Val| Some(Box::new(v));
        let tuple = |n: u32, s: &str| Tuple(vec![U32(n), string(s)]);
        let record = |x: i16, y: Vec<Vec<u32>>, z: &str| {
            let y = y
                .into_iter()
                .map(|l| List(l.into_iter().map(U32).collect()))
                .collect();
            Record(vec![
                ("x".into(), S16(x)),
                ("y".into(), List(y)),
                ("z".into(), Enum(z.into())),
            ])
        };
        [
            vec![
                [
                    List(vec![]),
                    List(vec![tuple(300, "hi"), tuple(0, "")]),
                    List(vec![tuple(u32::MAX, "ünï")]),
                ],
                [
                    Option(None),
                    Option(boxed(Variant("x".into(), boxed(U64(1 << 40))))),
                    Option(boxed(Variant("y".into(), None))),
                ],
                [
                    Result(Ok(boxed(Char('é')))),
                    Result(Ok(boxed(Char('😀')))),
                    Result(Err(boxed(List(vec![Float64(1.0), Float64(-0.0)])))),
                ],
                [
                    Flags(vec![]),
                    Flags(vec!["p".into(), "r".into()]),
                    Flags(vec!["q".into()]),
                ],
                [Bool(false), Bool(true), Bool(true)],
                [S64(-1), S64(i64::MIN), S64(i64::MAX)],
                [
                    List(vec![]),
                    List(vec![U8(7), U8(8), U8(9)]),
                    List(vec![U8(0); 300]),
                ],
            ],
            vec![
                [
                    record(0, vec![], "one"),
                    record(-300, vec![vec![], vec![1, 1 << 20]], "three"),
                    record(i16::MIN, vec![vec![u32::MAX]], "two"),
                ],
                [U16(0), U16(200), U16(u16::MAX)],
                [S32(0), S32(i32::MIN), S32(-65)],
                [Float32(0.0), Float32(1.5), Float32(f32::MIN_POSITIVE)],
                [U64(0), U64(127), U64(u64::MAX)],
                [
                    Option(None),
                    Option(boxed(string(""))),
                    Option(boxed(string("some text"))),
                ],
                [Char('a'), Char('\u{7ff}'), Char('\u{10ffff}')],
            ],
        ]
    }

    /// Whatever values wrpc-runtime-wasmtime's encoder writes, the walk ends exactly at
    /// their end, however the bytes arrive: it never stops early, runs past them or
    /// refuses them.
    #[tokio::test]
    async fn the_walk_agrees_with_the_encoder_of_wrpc_runtime_wasmtime() {
        use bytes::BytesMut;
        use tokio_util::codec::Encoder as _;
        use wrpc_runtime_wasmtime::ValEncoder;

        let dispatcher = crate::host::Dispatcher::new(&crate::host::HostConfig::default())
            .await
            .unwrap();
        let engine = Engine::default();
        let state = super::super::state::HostState::new(dispatcher, Arc::default(), "test", 1 << 20);
        let mut store = wasmtime::Store::new(&engine, state);
        for (signature, values) in [SIGNATURE, SIGNATURE_2].into_iter().zip(values()) {
            let params = params_in(&engine, signature);
            assert_eq!(params.len(), values.len());
            for pick in 0..3 {
                let mut buf = BytesMut::new();
                for (ty, vals) in params.iter().zip(&values) {
                    let mut enc = ValEncoder::<_, wrpc_transport::frame::Outgoing>::new(
                        wasmtime::AsContextMut::as_context_mut(&mut store),
                        ty,
                        &[],
                        &[],
                    );
                    enc.encode(&vals[pick], &mut buf).unwrap();
                }
                let walked = walk_bytewise(&params, &buf, 1 << 20).unwrap();
                assert_eq!(walked, (Step::Done, buf.len()), "values #{pick} of {signature}");
            }
        }
    }
}
