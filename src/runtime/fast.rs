//! The typed fast path: exports and imports whose parameters and results are
//! byte-shaped (`list<u8>`, `string`) or scalars, called through wasmtime's typed API
//! instead of one `Val` per value (and per byte of a `list<u8>`).
//!
//! A function takes this path when its signature is one of the shapes below
//! ([`ParamShape`] × [`ResultShape`]); every other signature keeps the `Val` path of
//! `wrpc_runtime_wasmtime`. Both paths write the same wRPC wire encoding (checked by
//! the tests against `wrpc_runtime_wasmtime`'s encoder):
//!
//! | WIT | wire |
//! |---|---|
//! | `bool`, `u8` | one byte |
//! | `u32`, `u64` | unsigned LEB128 |
//! | `s64` | signed LEB128 |
//! | `string`, `list<u8>` | LEB128 `u32` length, then the bytes |
//! | `option<T>` | `0`, or `1` then `T` |
//! | `result<T, E>` | `0` then `T`, or `1` then `E` |
//!
//! # Copies
//!
//! - Export parameters are decoded *in place* from the transport's read buffer
//!   (`AsyncBufRead`: for [`Ring`](crate::Ring) the caller's parameter `Bytes`
//!   itself) and lowered straight into the guest: one copy, transport → guest.
//!   Only parameters that arrive split over several reads (the `duplex`, `mpsc` and
//!   NATS paths) are first gathered into one buffer.
//! - Export results are lifted into an owned value (wasmtime runs the guest's
//!   post-return right after lifting, so a view into guest memory would dangle),
//!   then written into the transport (for `Ring`: straight into ring memory) with
//!   the length prefix in front, never through an intermediate buffer.
//! - Import parameters are encoded from a view of the guest's memory
//!   ([`WasmList`]/[`WasmStr`]) straight into the call's parameter buffer: one
//!   copy, guest → wire. The buffer is reused from call to call.
//! - Import results are read from the transport into the owned value that is
//!   lowered into the guest.

use std::future::Future;
use std::io;

use bytes::{BufMut as _, BytesMut};
use tokio::io::{AsyncBufRead, AsyncBufReadExt as _, AsyncWrite, AsyncWriteExt as _};
use wasmtime::StoreContext;
use wasmtime::component::types::Type;
use wasmtime::component::{ComponentNamedList, ComponentType, Func, Lift, Lower, WasmList, WasmStr};

/// The reading side the fast path decodes from.
pub(crate) type Rd = dyn AsyncBufRead + Send + Unpin;
/// The writing side the fast path encodes into.
pub(crate) type Wr = dyn AsyncWrite + Send + Unpin;

/// The most bytes an encoded value's head (tags and lengths) takes for the shapes
/// here: two nested tags and a 10-byte LEB128 `u64`.
const HEAD_MAX: usize = 16;

/// Gathered parameter bytes are reserved at most this much ahead of what arrived,
/// so a peer announcing a huge length cannot make the host reserve it.
const RESERVE_AHEAD: usize = 1 << 20;

/// A value's head: the tags and lengths in front of its trailing payload.
pub(crate) struct Head {
    buf: [u8; HEAD_MAX],
    len: usize,
}

impl Head {
    fn new() -> Self {
        Self {
            buf: [0; HEAD_MAX],
            len: 0,
        }
    }

    fn push(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }

    fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

fn eof(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("the stream ended inside {what}"),
    )
}

/// Unsigned LEB128 into `put`.
fn put_uleb(mut v: u64, mut put: impl FnMut(u8)) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            put(byte);
            return;
        }
        put(byte | 0x80);
    }
}

/// Signed LEB128 into `put`.
fn put_sleb(mut v: i64, mut put: impl FnMut(u8)) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0);
        if done {
            put(byte);
            return;
        }
        put(byte | 0x80);
    }
}

/// An unsigned LEB128 of at most `bits` bits from the front of `buf`: `None` if
/// `buf` ends first.
fn take_uleb(buf: &mut &[u8], bits: u32) -> io::Result<Option<u64>> {
    // One byte, the common case (lengths under 128, small scalars), fits any width.
    if let [byte @ 0..0x80, ref rest @ ..] = **buf {
        *buf = rest;
        return Ok(Some(u64::from(byte)));
    }
    let mut v: u64 = 0;
    let mut shift = 0;
    for (i, &byte) in buf.iter().enumerate() {
        let low = u64::from(byte & 0x7f);
        if shift >= bits || (shift > 0 && bits - shift < 7 && low >> (bits - shift) != 0) {
            return Err(invalid(format!("LEB128 value overflows u{bits}")));
        }
        v |= low << shift;
        if byte & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Ok(Some(v));
        }
        shift += 7;
    }
    Ok(None)
}

/// A signed LEB128 `s64` from the front of `buf`: `None` if `buf` ends first.
fn take_sleb(buf: &mut &[u8]) -> io::Result<Option<i64>> {
    let mut v: i64 = 0;
    let mut shift = 0u32;
    for (i, &byte) in buf.iter().enumerate() {
        if shift >= 64 {
            return Err(invalid("LEB128 value overflows s64"));
        }
        v |= i64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            if shift < 64 && byte & 0x40 != 0 {
                v |= -1 << shift;
            }
            *buf = &buf[i + 1..];
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// A length-prefixed byte string from the front of `buf`.
fn take_bytes<'a>(buf: &mut &'a [u8]) -> io::Result<Option<&'a [u8]>> {
    let mut rest = *buf;
    let Some(len) = take_uleb(&mut rest, 32)? else {
        return Ok(None);
    };
    let len = usize::try_from(len).map_err(|_| invalid("length does not fit in memory"))?;
    if rest.len() < len {
        return Ok(None);
    }
    let (bytes, rest) = rest.split_at(len);
    *buf = rest;
    Ok(Some(bytes))
}

fn take_byte(buf: &mut &[u8]) -> Option<u8> {
    let (&first, rest) = buf.split_first()?;
    *buf = rest;
    Some(first)
}

/// Reads one byte from `r`.
async fn read_byte(r: &mut Rd, what: &str) -> io::Result<u8> {
    let buf = r.fill_buf().await?;
    let Some(&byte) = buf.first() else {
        return Err(eof(what));
    };
    r.consume(1);
    Ok(byte)
}

/// Reads an unsigned LEB128 of at most `bits` bits from `r`.
async fn read_uleb(r: &mut Rd, bits: u32, what: &str) -> io::Result<u64> {
    let mut bytes = [0u8; 10];
    for i in 0..bytes.len() {
        bytes[i] = read_byte(r, what).await?;
        if bytes[i] & 0x80 == 0 {
            let mut slice = &bytes[..=i];
            return take_uleb(&mut slice, bits)?.ok_or_else(|| eof(what));
        }
    }
    Err(invalid(format!("LEB128 value of {what} is too long")))
}

/// Reads a signed LEB128 `s64` from `r`.
async fn read_sleb(r: &mut Rd, what: &str) -> io::Result<i64> {
    let mut bytes = [0u8; 10];
    for i in 0..bytes.len() {
        bytes[i] = read_byte(r, what).await?;
        if bytes[i] & 0x80 == 0 {
            let mut slice = &bytes[..=i];
            return take_sleb(&mut slice)?.ok_or_else(|| eof(what));
        }
    }
    Err(invalid(format!("LEB128 value of {what} is too long")))
}

/// Reads a length-prefixed byte string from `r`, in place: each chunk is copied from
/// the transport's buffer once, into the returned vector.
async fn read_bytes(r: &mut Rd, what: &str) -> io::Result<Vec<u8>> {
    let len = read_uleb(r, 32, what).await?;
    let len = usize::try_from(len).map_err(|_| invalid("length does not fit in memory"))?;
    let mut out = Vec::with_capacity(len.min(RESERVE_AHEAD));
    while out.len() < len {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Err(eof(what));
        }
        let n = buf.len().min(len - out.len());
        out.extend_from_slice(&buf[..n]);
        r.consume(n);
    }
    Ok(out)
}

/// One WIT type the fast path carries, in each of the forms it takes.
pub(crate) trait Kind: Send + Sync + 'static {
    /// Borrowed from the transport's buffer, lowered into an export's guest.
    type Ref<'a>: ComponentType + Lower + Send + Sync;
    /// Lifted from an import's caller: a view of guest memory where possible.
    type View: ComponentType + Lift + Send + Sync + 'static;
    /// Owned: a result, lifted from an export or lowered into an import's caller.
    type Owned: ComponentType + Lift + Lower + Send + Sync + 'static;

    /// Whether `ty` is this kind.
    fn matches(ty: &Type) -> bool;

    /// Decodes from the front of `buf`, borrowing it; `None` if `buf` ends first.
    fn decode<'a>(buf: &mut &'a [u8]) -> io::Result<Option<Self::Ref<'a>>>;

    /// Steps over one encoded value at the front of `buf` without decoding its payload
    /// (a string's UTF-8 is not checked: [`decode`](Self::decode) does that, once):
    /// `false` if `buf` ends first. Errors only where the framing itself is invalid
    /// (a tag, an overlong LEB128).
    fn skip(buf: &mut &[u8]) -> io::Result<bool> {
        Ok(Self::decode(buf)?.is_some())
    }

    /// Encodes a view of the caller's guest memory into `dst`.
    fn encode_view<T: 'static>(
        v: &Self::View,
        store: &StoreContext<'_, T>,
        dst: &mut BytesMut,
    ) -> wasmtime::Result<()>;

    /// Encodes `v`: its head (tags, lengths) into `head`, and returns the trailing
    /// payload to write after it (empty for scalars).
    fn encode_owned<'a>(v: &'a Self::Owned, head: &mut Head) -> &'a [u8];

    /// Reads an owned value from `r`.
    // Not `async fn`: the trait promises a `Send` future, which `async fn` cannot say.
    #[allow(clippy::manual_async_fn)]
    fn read(r: &mut Rd) -> impl Future<Output = io::Result<Self::Owned>> + Send + '_;
}

/// `string`.
pub(crate) struct Str;
/// `list<u8>`.
pub(crate) struct ByteList;
/// `bool`.
pub(crate) struct Bool;
/// `u32`.
pub(crate) struct U32;
/// `u64`.
pub(crate) struct U64;
/// `option<K>`.
pub(crate) struct Opt<K>(std::marker::PhantomData<K>);
/// `result<K, E>`.
pub(crate) struct Res<K, E>(std::marker::PhantomData<(K, E)>);
/// No value: the `_` of `result<_, E>`.
pub(crate) struct Nothing;

impl Kind for Str {
    type Ref<'a> = &'a str;
    type View = WasmStr;
    type Owned = String;

    fn matches(ty: &Type) -> bool {
        matches!(ty, Type::String)
    }

    fn decode<'a>(buf: &mut &'a [u8]) -> io::Result<Option<&'a str>> {
        match take_bytes(buf)? {
            Some(bytes) => std::str::from_utf8(bytes)
                .map(Some)
                .map_err(|e| invalid(format!("a string is not UTF-8: {e}"))),
            None => Ok(None),
        }
    }

    fn skip(buf: &mut &[u8]) -> io::Result<bool> {
        Ok(take_bytes(buf)?.is_some())
    }

    fn encode_view<T: 'static>(
        v: &WasmStr,
        store: &StoreContext<'_, T>,
        dst: &mut BytesMut,
    ) -> wasmtime::Result<()> {
        let s = v.to_str(store)?;
        let len =
            u32::try_from(s.len()).map_err(|_| wasmtime::Error::msg("string length does not fit in u32"))?;
        dst.reserve(5 + s.len());
        put_uleb(len.into(), |b| dst.put_u8(b));
        dst.extend_from_slice(s.as_bytes());
        Ok(())
    }

    fn encode_owned<'a>(v: &'a String, head: &mut Head) -> &'a [u8] {
        put_uleb(v.len() as u64, |b| head.push(b));
        v.as_bytes()
    }

    // Not `async fn`: the trait promises a `Send` future, which `async fn` cannot say.
    #[allow(clippy::manual_async_fn)]
    fn read(r: &mut Rd) -> impl Future<Output = io::Result<String>> + Send + '_ {
        async move {
            let bytes = read_bytes(r, "a string").await?;
            String::from_utf8(bytes).map_err(|e| invalid(format!("a string is not UTF-8: {e}")))
        }
    }
}

impl Kind for ByteList {
    type Ref<'a> = &'a [u8];
    type View = WasmList<u8>;
    type Owned = Vec<u8>;

    fn matches(ty: &Type) -> bool {
        matches!(ty, Type::List(list) if matches!(list.ty(), Type::U8))
    }

    fn decode<'a>(buf: &mut &'a [u8]) -> io::Result<Option<&'a [u8]>> {
        take_bytes(buf)
    }

    fn encode_view<T: 'static>(
        v: &WasmList<u8>,
        store: &StoreContext<'_, T>,
        dst: &mut BytesMut,
    ) -> wasmtime::Result<()> {
        let bytes = v.as_le_slice(store);
        let len = u32::try_from(bytes.len())
            .map_err(|_| wasmtime::Error::msg("list length does not fit in u32"))?;
        dst.reserve(5 + bytes.len());
        put_uleb(len.into(), |b| dst.put_u8(b));
        dst.extend_from_slice(bytes);
        Ok(())
    }

    fn encode_owned<'a>(v: &'a Vec<u8>, head: &mut Head) -> &'a [u8] {
        put_uleb(v.len() as u64, |b| head.push(b));
        v
    }

    // Not `async fn`: the trait promises a `Send` future, which `async fn` cannot say.
    #[allow(clippy::manual_async_fn)]
    fn read(r: &mut Rd) -> impl Future<Output = io::Result<Vec<u8>>> + Send + '_ {
        read_bytes(r, "a list<u8>")
    }
}

impl Kind for Bool {
    type Ref<'a> = bool;
    type View = bool;
    type Owned = bool;

    fn matches(ty: &Type) -> bool {
        matches!(ty, Type::Bool)
    }

    fn decode(buf: &mut &[u8]) -> io::Result<Option<bool>> {
        match take_byte(buf) {
            Some(0) => Ok(Some(false)),
            Some(1) => Ok(Some(true)),
            Some(n) => Err(invalid(format!("invalid bool value byte `{n}`"))),
            None => Ok(None),
        }
    }

    fn encode_view<T: 'static>(
        v: &bool,
        _: &StoreContext<'_, T>,
        dst: &mut BytesMut,
    ) -> wasmtime::Result<()> {
        dst.put_u8(u8::from(*v));
        Ok(())
    }

    fn encode_owned<'a>(v: &'a bool, head: &mut Head) -> &'a [u8] {
        head.push(u8::from(*v));
        &[]
    }

    // Not `async fn`: the trait promises a `Send` future, which `async fn` cannot say.
    #[allow(clippy::manual_async_fn)]
    fn read(r: &mut Rd) -> impl Future<Output = io::Result<bool>> + Send + '_ {
        async move {
            match read_byte(r, "a bool").await? {
                0 => Ok(false),
                1 => Ok(true),
                n => Err(invalid(format!("invalid bool value byte `{n}`"))),
            }
        }
    }
}

macro_rules! unsigned_kind {
    ($kind:ident, $ty:ty, $variant:ident, $bits:literal, $what:literal) => {
        impl Kind for $kind {
            type Ref<'a> = $ty;
            type View = $ty;
            type Owned = $ty;

            fn matches(ty: &Type) -> bool {
                matches!(ty, Type::$variant)
            }

            fn decode(buf: &mut &[u8]) -> io::Result<Option<$ty>> {
                // `take_uleb` checks that the value fits in `$bits` bits.
                Ok(take_uleb(buf, $bits)?.map(|v| v as $ty))
            }

            fn encode_view<T: 'static>(
                v: &$ty,
                _: &StoreContext<'_, T>,
                dst: &mut BytesMut,
            ) -> wasmtime::Result<()> {
                put_uleb((*v).into(), |b| dst.put_u8(b));
                Ok(())
            }

            fn encode_owned<'a>(v: &'a $ty, head: &mut Head) -> &'a [u8] {
                put_uleb((*v).into(), |b| head.push(b));
                &[]
            }

            // Not `async fn`: the trait promises a `Send` future, which `async fn` cannot say.
            #[allow(clippy::manual_async_fn)]
            fn read(r: &mut Rd) -> impl Future<Output = io::Result<$ty>> + Send + '_ {
                async move { Ok(read_uleb(r, $bits, $what).await? as $ty) }
            }
        }
    };
}

unsigned_kind!(U32, u32, U32, 32, "a u32");
unsigned_kind!(U64, u64, U64, 64, "a u64");

/// `s64`.
pub(crate) struct S64;

impl Kind for S64 {
    type Ref<'a> = i64;
    type View = i64;
    type Owned = i64;

    fn matches(ty: &Type) -> bool {
        matches!(ty, Type::S64)
    }

    fn decode(buf: &mut &[u8]) -> io::Result<Option<i64>> {
        take_sleb(buf)
    }

    fn encode_view<T: 'static>(v: &i64, _: &StoreContext<'_, T>, dst: &mut BytesMut) -> wasmtime::Result<()> {
        put_sleb(*v, |b| dst.put_u8(b));
        Ok(())
    }

    fn encode_owned<'a>(v: &'a i64, head: &mut Head) -> &'a [u8] {
        put_sleb(*v, |b| head.push(b));
        &[]
    }

    // Not `async fn`: the trait promises a `Send` future, which `async fn` cannot say.
    #[allow(clippy::manual_async_fn)]
    fn read(r: &mut Rd) -> impl Future<Output = io::Result<i64>> + Send + '_ {
        read_sleb(r, "an s64")
    }
}

impl Kind for Nothing {
    type Ref<'a> = ();
    type View = ();
    type Owned = ();

    fn matches(_: &Type) -> bool {
        false // only ever inside `result<_, E>`, matched there
    }

    fn decode(_: &mut &[u8]) -> io::Result<Option<()>> {
        Ok(Some(()))
    }

    fn encode_view<T: 'static>(_: &(), _: &StoreContext<'_, T>, _: &mut BytesMut) -> wasmtime::Result<()> {
        Ok(())
    }

    fn encode_owned<'a>(_: &'a (), _: &mut Head) -> &'a [u8] {
        &[]
    }

    fn read(_: &mut Rd) -> impl Future<Output = io::Result<()>> + Send + '_ {
        std::future::ready(Ok(()))
    }
}

impl<K: Kind> Kind for Opt<K> {
    type Ref<'a> = Option<K::Ref<'a>>;
    type View = Option<K::View>;
    type Owned = Option<K::Owned>;

    fn matches(ty: &Type) -> bool {
        matches!(ty, Type::Option(o) if K::matches(&o.ty()))
    }

    fn decode<'a>(buf: &mut &'a [u8]) -> io::Result<Option<Self::Ref<'a>>> {
        let mut rest = *buf;
        let value = match take_byte(&mut rest) {
            None => return Ok(None),
            Some(0) => None,
            Some(1) => match K::decode(&mut rest)? {
                Some(v) => Some(v),
                None => return Ok(None),
            },
            Some(n) => return Err(invalid(format!("invalid option status byte `{n}`"))),
        };
        *buf = rest;
        Ok(Some(value))
    }

    fn skip(buf: &mut &[u8]) -> io::Result<bool> {
        let mut rest = *buf;
        let whole = match take_byte(&mut rest) {
            None => false,
            Some(0) => true,
            Some(1) => K::skip(&mut rest)?,
            Some(n) => return Err(invalid(format!("invalid option status byte `{n}`"))),
        };
        if whole {
            *buf = rest;
        }
        Ok(whole)
    }

    fn encode_view<T: 'static>(
        v: &Self::View,
        store: &StoreContext<'_, T>,
        dst: &mut BytesMut,
    ) -> wasmtime::Result<()> {
        match v {
            None => dst.put_u8(0),
            Some(v) => {
                dst.put_u8(1);
                K::encode_view(v, store, dst)?;
            }
        }
        Ok(())
    }

    fn encode_owned<'a>(v: &'a Self::Owned, head: &mut Head) -> &'a [u8] {
        match v {
            None => {
                head.push(0);
                &[]
            }
            Some(v) => {
                head.push(1);
                K::encode_owned(v, head)
            }
        }
    }

    // Not `async fn`: the trait promises a `Send` future, which `async fn` cannot say.
    #[allow(clippy::manual_async_fn)]
    fn read(r: &mut Rd) -> impl Future<Output = io::Result<Self::Owned>> + Send + '_ {
        async move {
            match read_byte(r, "an option").await? {
                0 => Ok(None),
                1 => Ok(Some(K::read(r).await?)),
                n => Err(invalid(format!("invalid option status byte `{n}`"))),
            }
        }
    }
}

impl<K: Kind, E: Kind> Kind for Res<K, E> {
    type Ref<'a> = Result<K::Ref<'a>, E::Ref<'a>>;
    type View = Result<K::View, E::View>;
    type Owned = Result<K::Owned, E::Owned>;

    fn matches(ty: &Type) -> bool {
        let Type::Result(r) = ty else {
            return false;
        };
        let ok = match r.ok() {
            None => std::any::TypeId::of::<K>() == std::any::TypeId::of::<Nothing>(),
            Some(ty) => K::matches(&ty),
        };
        let err = match r.err() {
            None => std::any::TypeId::of::<E>() == std::any::TypeId::of::<Nothing>(),
            Some(ty) => E::matches(&ty),
        };
        ok && err
    }

    fn decode<'a>(buf: &mut &'a [u8]) -> io::Result<Option<Self::Ref<'a>>> {
        let mut rest = *buf;
        let value = match take_byte(&mut rest) {
            None => return Ok(None),
            Some(0) => match K::decode(&mut rest)? {
                Some(v) => Ok(v),
                None => return Ok(None),
            },
            Some(1) => match E::decode(&mut rest)? {
                Some(v) => Err(v),
                None => return Ok(None),
            },
            Some(n) => return Err(invalid(format!("invalid result status byte `{n}`"))),
        };
        *buf = rest;
        Ok(Some(value))
    }

    fn skip(buf: &mut &[u8]) -> io::Result<bool> {
        let mut rest = *buf;
        let whole = match take_byte(&mut rest) {
            None => false,
            Some(0) => K::skip(&mut rest)?,
            Some(1) => E::skip(&mut rest)?,
            Some(n) => return Err(invalid(format!("invalid result status byte `{n}`"))),
        };
        if whole {
            *buf = rest;
        }
        Ok(whole)
    }

    fn encode_view<T: 'static>(
        v: &Self::View,
        store: &StoreContext<'_, T>,
        dst: &mut BytesMut,
    ) -> wasmtime::Result<()> {
        match v {
            Ok(v) => {
                dst.put_u8(0);
                K::encode_view(v, store, dst)
            }
            Err(v) => {
                dst.put_u8(1);
                E::encode_view(v, store, dst)
            }
        }
    }

    fn encode_owned<'a>(v: &'a Self::Owned, head: &mut Head) -> &'a [u8] {
        match v {
            Ok(v) => {
                head.push(0);
                K::encode_owned(v, head)
            }
            Err(v) => {
                head.push(1);
                E::encode_owned(v, head)
            }
        }
    }

    // Not `async fn`: the trait promises a `Send` future, which `async fn` cannot say.
    #[allow(clippy::manual_async_fn)]
    fn read(r: &mut Rd) -> impl Future<Output = io::Result<Self::Owned>> + Send + '_ {
        async move {
            match read_byte(r, "a result").await? {
                0 => Ok(Ok(K::read(r).await?)),
                1 => Ok(Err(E::read(r).await?)),
                n => Err(invalid(format!("invalid result status byte `{n}`"))),
            }
        }
    }
}

/// A function's parameters: a tuple of [`Kind`]s.
pub(crate) trait Params: 'static {
    /// Borrowed from the transport's buffer.
    type Ref<'a>: ComponentNamedList + Lower + Send + Sync;
    /// Lifted from an import's caller.
    type View: ComponentNamedList + Lift + Send + Sync + 'static;

    /// Whether `types` are these kinds, in order.
    fn matches(types: &[Type]) -> bool;

    /// Decodes every parameter from the front of `buf`; `None` if `buf` ends first.
    fn decode<'a>(buf: &mut &'a [u8]) -> io::Result<Option<Self::Ref<'a>>>;

    /// How many bytes at the front of `buf` the parameters take, if they are all
    /// there: lengths and tags only, no payload checked ([`Kind::skip`]).
    fn whole(buf: &[u8]) -> io::Result<Option<usize>>;

    /// Encodes every parameter into `dst`.
    fn encode_view<T: 'static>(
        v: &Self::View,
        store: &StoreContext<'_, T>,
        dst: &mut BytesMut,
    ) -> wasmtime::Result<()>;
}

macro_rules! params_tuple {
    ($n:literal; $($k:ident $v:ident),*) => {
        impl<$($k: Kind),*> Params for ($($k,)*) {
            type Ref<'a> = ($($k::Ref<'a>,)*);
            type View = ($($k::View,)*);

            fn matches(types: &[Type]) -> bool {
                #[allow(unused_mut, unused_variables)]
                let mut types = types.iter();
                types.len() == $n $(&& types.next().is_some_and($k::matches))*
            }

            #[allow(unused_variables, clippy::almost_swapped)] // no parameters: nothing between
            fn decode<'a>(buf: &mut &'a [u8]) -> io::Result<Option<Self::Ref<'a>>> {
                #[allow(unused_mut)]
                let mut rest = *buf;
                $(let Some($v) = $k::decode(&mut rest)? else { return Ok(None) };)*
                *buf = rest;
                Ok(Some(($($v,)*)))
            }

            fn whole(buf: &[u8]) -> io::Result<Option<usize>> {
                #[allow(unused_mut)]
                let mut rest = buf;
                $(if !$k::skip(&mut rest)? { return Ok(None) })*
                Ok(Some(buf.len() - rest.len()))
            }

            #[allow(unused_variables)]
            fn encode_view<T: 'static>(
                v: &Self::View,
                store: &StoreContext<'_, T>,
                dst: &mut BytesMut,
            ) -> wasmtime::Result<()> {
                let ($($v,)*) = v;
                $($k::encode_view($v, store, dst)?;)*
                Ok(())
            }
        }
    };
}

params_tuple!(0;);
params_tuple!(1; A a);
params_tuple!(2; A a, B b);
params_tuple!(3; A a, B b, C c);

/// A function's results: none, or one [`Kind`].
pub(crate) trait Results: 'static {
    /// The results as wasmtime lifts and lowers them.
    type Owned: ComponentNamedList + Lift + Lower + Send + Sync + 'static;

    /// Whether `types` are these results.
    fn matches(types: &[Type]) -> bool;

    /// Encodes the results: head into `head`, trailing payload returned.
    fn encode<'a>(v: &'a Self::Owned, head: &mut Head) -> &'a [u8];

    /// Reads the results from `r`.
    // Not `async fn`: the trait promises a `Send` future, which `async fn` cannot say.
    #[allow(clippy::manual_async_fn)]
    fn read(r: &mut Rd) -> impl Future<Output = io::Result<Self::Owned>> + Send + '_;
}

impl Results for () {
    type Owned = ();

    fn matches(types: &[Type]) -> bool {
        types.is_empty()
    }

    fn encode<'a>(_: &'a (), _: &mut Head) -> &'a [u8] {
        &[]
    }

    fn read(_: &mut Rd) -> impl Future<Output = io::Result<()>> + Send + '_ {
        std::future::ready(Ok(()))
    }
}

impl<K: Kind> Results for (K,) {
    type Owned = (K::Owned,);

    fn matches(types: &[Type]) -> bool {
        matches!(types, [ty] if K::matches(ty))
    }

    fn encode<'a>(v: &'a Self::Owned, head: &mut Head) -> &'a [u8] {
        K::encode_owned(&v.0, head)
    }

    // Not `async fn`: the trait promises a `Send` future, which `async fn` cannot say.
    #[allow(clippy::manual_async_fn)]
    fn read(r: &mut Rd) -> impl Future<Output = io::Result<Self::Owned>> + Send + '_ {
        async move { Ok((K::read(r).await?,)) }
    }
}

/// Declares the parameter or result shapes: the enum, its list, its WIT names, and a
/// macro that runs a body with `$P` bound to the shape's Rust type.
macro_rules! shapes {
    (
        $(#[$meta:meta])* $enum:ident, $with:ident, $trait:ident;
        $($variant:ident => $ty:ty, $wit:literal;)*
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $enum {
            $(#[doc = $wit] $variant,)*
        }

        impl $enum {
            /// Every shape, in the order they are tried.
            pub(crate) const ALL: &[Self] = &[$(Self::$variant,)*];

            /// The shape in WIT.
            pub(crate) fn wit(self) -> &'static str {
                match self {
                    $(Self::$variant => $wit,)*
                }
            }

            /// The shape of `types`, if it is one of these.
            pub(crate) fn of(types: &[Type]) -> Option<Self> {
                Self::ALL.iter().copied().find(|shape| match shape {
                    $(Self::$variant => <$ty as $trait>::matches(types),)*
                })
            }
        }

        macro_rules! $with {
            ($shape:expr, $P:ident => $body:expr) => {
                match $shape {
                    $($enum::$variant => {
                        type $P = $ty;
                        $body
                    })*
                }
            };
        }
    };
}

shapes! {
    /// The parameter lists that take the fast path.
    ParamShape, with_params, Params;
    None => (), "()";
    Str => (Str,), "(string)";
    Bytes => (ByteList,), "(list<u8>)";
    U32 => (U32,), "(u32)";
    U64 => (U64,), "(u64)";
    S64 => (S64,), "(s64)";
    Bool => (Bool,), "(bool)";
    StrStr => (Str, Str), "(string, string)";
    StrBytes => (Str, ByteList), "(string, list<u8>)";
    StrU32 => (Str, U32), "(string, u32)";
    StrU64 => (Str, U64), "(string, u64)";
    BytesBytes => (ByteList, ByteList), "(list<u8>, list<u8>)";
    StrU64U64 => (Str, U64, U64), "(string, u64, u64)";
}

shapes! {
    /// The results that take the fast path.
    ResultShape, with_results, Results;
    None => (), "nothing";
    Str => (Str,), "string";
    Bytes => (ByteList,), "list<u8>";
    U32 => (U32,), "u32";
    U64 => (U64,), "u64";
    S64 => (S64,), "s64";
    Bool => (Bool,), "bool";
    OptBytes => (Opt<ByteList>,), "option<list<u8>>";
    OptStr => (Opt<Str>,), "option<string>";
    ResBytesStr => (Res<ByteList, Str>,), "result<list<u8>, string>";
    ResStrStr => (Res<Str, Str>,), "result<string, string>";
    ResNoneStr => (Res<Nothing, Str>,), "result<_, string>";
    ResU64Str => (Res<U64, Str>,), "result<u64, string>";
}

/// A function signature on the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) params: ParamShape,
    pub(crate) results: ResultShape,
}

impl Shape {
    /// The shape of a function with these parameter and result types, if it has one.
    pub(crate) fn of(params: &[Type], results: &[Type]) -> Option<Self> {
        Some(Self {
            params: ParamShape::of(params)?,
            results: ResultShape::of(results)?,
        })
    }

    /// Whether `func` really has this shape: wasmtime's own type check.
    pub(crate) fn probe(self, func: &Func, store: impl wasmtime::AsContext) -> bool {
        with_params!(self.params, P => with_results!(self.results, R => {
            func.typed::<<P as Params>::Ref<'static>, <R as Results>::Owned>(&store).is_ok()
        }))
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.params.wit(), self.results.wit())
    }
}

/// How a fast-path export call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Before the guest ran: the parameters did not arrive or decode.
    Params(anyhow::Error),
    /// In the guest: a trap, including running past a time or memory limit. The
    /// instance must not serve again.
    Guest(anyhow::Error),
    /// After the guest returned: the results could not be written.
    Results(anyhow::Error),
}

impl Failure {
    pub(crate) fn into_error(self) -> anyhow::Error {
        match self {
            Self::Params(e) | Self::Guest(e) | Self::Results(e) => e,
        }
    }
}

/// Calls the export `func` (of `shape`) in `store`: parameters decoded from `rd`,
/// results encoded into `wr`, which is shut down (a clean close) at the end.
///
/// Parameters that arrive in pieces (over NATS) are gathered up to `max_params`
/// bytes, the guest's memory limit (it could not take more): a peer announcing a
/// larger `list<u8>` fails the call with `InvalidData` instead of growing the buffer.
pub(crate) async fn call_export<T: Send + 'static>(
    shape: Shape,
    store: &mut wasmtime::Store<T>,
    func: Func,
    rd: &mut Rd,
    wr: &mut Wr,
    max_params: usize,
) -> Result<(), Failure> {
    with_params!(shape.params, P => with_results!(shape.results, R => {
        call_export_typed::<T, P, R>(store, func, rd, wr, max_params).await
    }))
}

async fn call_export_typed<T: Send + 'static, P: Params, R: Results>(
    store: &mut wasmtime::Store<T>,
    func: Func,
    rd: &mut Rd,
    wr: &mut Wr,
    max_params: usize,
) -> Result<(), Failure> {
    let params_error =
        |e: io::Error| Failure::Params(anyhow::Error::new(e).context("failed to read the parameters"));
    // No parameters at all: read nothing (a transport need not end the parameter
    // stream before the results, e.g. NATS).
    if let Some(params) = P::decode(&mut &[][..]).map_err(params_error)? {
        let results = invoke::<T, P, R>(store, func, params).await?;
        return write_results::<R>(&results, wr).await;
    }
    // Whether the parameters are whole in the first read (always, over rings): then
    // they are decoded in place, borrowing the transport's buffer while the guest runs.
    // The test is a length-only walk ([`Params::whole`]), so that each parameter is
    // decoded, and a string's UTF-8 checked, once.
    let buf = rd.fill_buf().await.map_err(params_error)?;
    let results = match P::whole(buf).map_err(params_error)? {
        Some(used) => {
            let mut cursor = &buf[..used];
            let Some(params) = P::decode(&mut cursor).map_err(params_error)? else {
                return Err(params_error(eof("the parameters")));
            };
            let results = invoke::<T, P, R>(store, func, params).await?;
            rd.consume(used);
            results
        }
        None => {
            // Split over several reads: gather them, then decode from the copy.
            let mut gathered = Vec::new();
            loop {
                let buf = rd.fill_buf().await.map_err(params_error)?;
                if buf.is_empty() {
                    return Err(params_error(eof("the parameters")));
                }
                if gathered.len() + buf.len() > max_params {
                    return Err(params_error(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the parameters are larger than the component's memory limit \
                             ({max_params} bytes)"
                        ),
                    )));
                }
                gathered.reserve(buf.len().min(RESERVE_AHEAD));
                gathered.extend_from_slice(buf);
                let n = buf.len();
                rd.consume(n);
                if P::whole(&gathered).map_err(params_error)?.is_some() {
                    break;
                }
            }
            let mut cursor = &gathered[..];
            let Some(params) = P::decode(&mut cursor).map_err(params_error)? else {
                return Err(params_error(eof("the parameters")));
            };
            invoke::<T, P, R>(store, func, params).await?
        }
    };
    write_results::<R>(&results, wr).await
}

/// Writes `results` (head, then payload straight from the lifted value) and closes
/// the stream cleanly.
async fn write_results<R: Results>(results: &R::Owned, wr: &mut Wr) -> Result<(), Failure> {
    let results_error =
        |e: io::Error| Failure::Results(anyhow::Error::new(e).context("failed to write the results"));
    let mut head = Head::new();
    let payload = R::encode(results, &mut head);
    wr.write_all(head.as_slice()).await.map_err(results_error)?;
    if !payload.is_empty() {
        wr.write_all(payload).await.map_err(results_error)?;
    }
    wr.shutdown().await.map_err(results_error)?;
    Ok(())
}

async fn invoke<T: Send + 'static, P: Params, R: Results>(
    store: &mut wasmtime::Store<T>,
    func: Func,
    params: P::Ref<'_>,
) -> Result<R::Owned, Failure> {
    let typed = func
        .typed::<P::Ref<'_>, R::Owned>(&*store)
        .map_err(|e| Failure::Params(anyhow::Error::from(e).context("fast-path type check failed")))?;
    typed
        .call_async(&mut *store, params)
        .await
        .map_err(|e| Failure::Guest(anyhow::Error::from(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `whole` says how much `decode` would take, on every prefix of a buffer, and
    /// leaves the payload's checks (UTF-8) to `decode`.
    #[test]
    fn whole_matches_decode() {
        // ("héllo", [1, 2, 3]) and a trailing byte that is not a parameter.
        let mut buf = vec![6];
        buf.extend_from_slice("héllo".as_bytes());
        buf.extend_from_slice(&[3, 1, 2, 3, 0xff]);
        for end in 0..=buf.len() {
            let prefix = &buf[..end];
            let whole = <(Str, ByteList) as Params>::whole(prefix).unwrap();
            let mut cursor = prefix;
            let decoded = <(Str, ByteList) as Params>::decode(&mut cursor).unwrap();
            assert_eq!(whole.is_some(), decoded.is_some(), "prefix of {end} bytes");
            if let Some(used) = whole {
                assert_eq!(used, end.min(buf.len() - 1));
                assert_eq!(prefix.len() - cursor.len(), used);
                assert_eq!(decoded, Some(("héllo", &[1u8, 2, 3][..])));
            }
        }
        // Not UTF-8: whole by length, rejected by `decode`.
        let bad = [2, 0xc3, 0x28];
        assert_eq!(<(Str,) as Params>::whole(&bad).unwrap(), Some(3));
        assert!(<(Str,) as Params>::decode(&mut &bad[..]).is_err());
        // A bad tag or an overlong length is an error for both.
        assert!(<(Bool,) as Params>::whole(&[2]).is_err());
        assert!(<(Str,) as Params>::whole(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
        assert!(<(Opt<Str>,) as Params>::whole(&[7]).is_err());
        assert_eq!(<(Res<Nothing, Str>,) as Params>::whole(&[0]).unwrap(), Some(1));
        assert_eq!(<(Res<Nothing, Str>,) as Params>::whole(&[1, 1]).unwrap(), None);
        assert_eq!(<(Opt<Str>,) as Params>::whole(&[1, 1, b'x']).unwrap(), Some(3));
    }
}
