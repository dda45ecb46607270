//! Error types.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

/// The reason a [`RingWriter`](crate::RingWriter) gave when it aborted its stream.
///
/// A reader of an aborted stream first receives every byte written before the abort,
/// then an [`std::io::Error`] of kind [`ConnectionAborted`](std::io::ErrorKind::ConnectionAborted)
/// whose inner error is this type; its `Display` text carries the reason.
///
/// # Examples
///
/// ```
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let (mut writer, mut reader) = wrpc_ring::pipe(64);
/// writer.write_all(b"partial").await?;
/// writer.abort("encoder failed");
///
/// let mut buf = Vec::new();
/// let err = reader.read_to_end(&mut buf).await.unwrap_err();
/// assert_eq!(buf, b"partial");
/// assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
/// let aborted = err.get_ref().and_then(|e| e.downcast_ref::<wrpc_ring::Aborted>()).unwrap();
/// assert_eq!(aborted.reason(), "encoder failed");
/// # Ok::<_, std::io::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aborted {
    reason: Cow<'static, str>,
}

impl Aborted {
    pub(crate) fn new(reason: Cow<'static, str>) -> Self {
        Self { reason }
    }

    /// The reason passed to [`RingWriter::abort`](crate::RingWriter::abort).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for Aborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ring stream aborted by its writer: {}", self.reason)
    }
}

impl Error for Aborted {}
