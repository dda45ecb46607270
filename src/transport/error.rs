//! Errors of the `Ring` transport.

use std::error::Error;
use std::fmt;

/// An invocation the [`Ring`](crate::Ring) transport could not set up.
///
/// Returned (inside [`anyhow::Error`]) by `invoke` and `index`; it can be recovered with
/// [`anyhow::Error::downcast_ref`]. I/O on a sub-stream reports the problems it finds as
/// [`std::io::Error`]s with a precise kind instead (see [`Outgoing`](crate::transport::Outgoing)
/// and [`Incoming`](crate::transport::Incoming)); [`kind`](Self::kind) is that kind for
/// each variant, and `io::Error::from` converts with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// No `serve` registration exists for the target (like NATS' "no responders").
    NoServer {
        /// The prefix of the invoking [`Ring`](crate::Ring) handle.
        prefix: String,
        /// The instance invoked.
        instance: String,
        /// The function invoked.
        func: String,
    },
    /// An async-value path that the receiving side did not declare.
    UndeclaredPath {
        /// The target of the invocation, as `prefix.instance.func`.
        target: String,
        /// `"parameters"` or `"results"`.
        direction: &'static str,
        /// The full path that was indexed.
        path: Vec<usize>,
        /// The paths the receiving side declared, `*` for a wildcard.
        declared: String,
    },
    /// `index` was called with an empty path.
    EmptyPath,
    /// The registration serving the target already has as many invocations queued as
    /// the bound allows ([`Ring::with_max_queued`](crate::Ring::with_max_queued)): its
    /// server does not take them as fast as they come.
    Overloaded {
        /// The prefix of the invoking [`Ring`](crate::Ring) handle.
        prefix: String,
        /// The instance invoked.
        instance: String,
        /// The function invoked.
        func: String,
        /// The bound on queued invocations.
        limit: usize,
    },
    /// An invocation would hold more sub-streams at once than the per-call bound
    /// ([`Ring::with_max_call_streams`](crate::Ring::with_max_call_streams)).
    TooManyStreams {
        /// The target of the invocation, as `prefix.instance.func`.
        target: String,
        /// `"parameters"` or `"results"`.
        direction: &'static str,
        /// The path that would have been one too many.
        path: Vec<usize>,
        /// The bound.
        limit: usize,
    },
    /// An invocation would hold more ring bytes written ahead of their readers than the
    /// per-call bound ([`Ring::with_max_call_bytes`](crate::Ring::with_max_call_bytes)).
    TooManyBytes {
        /// The target of the invocation, as `prefix.instance.func`.
        target: String,
        /// `"parameters"` or `"results"`.
        direction: &'static str,
        /// The path whose ring did not fit.
        path: Vec<usize>,
        /// Ring bytes the invocation holds waiting for readers.
        held: usize,
        /// The capacity of the ring it asked for.
        requested: usize,
        /// The bound.
        limit: usize,
    },
}

impl TransportError {
    /// The [`io::ErrorKind`](std::io::ErrorKind) this error has where it surfaces as
    /// I/O: `NotFound` for a target or path that does not exist, `ResourceBusy` for an
    /// overloaded server, `QuotaExceeded` beyond a per-call bound, `InvalidInput` for an
    /// empty path.
    pub fn kind(&self) -> std::io::ErrorKind {
        use std::io::ErrorKind;
        match self {
            Self::NoServer { .. } | Self::UndeclaredPath { .. } => ErrorKind::NotFound,
            Self::EmptyPath => ErrorKind::InvalidInput,
            Self::Overloaded { .. } => ErrorKind::ResourceBusy,
            Self::TooManyStreams { .. } | Self::TooManyBytes { .. } => ErrorKind::QuotaExceeded,
        }
    }
}

impl From<TransportError> for std::io::Error {
    fn from(err: TransportError) -> Self {
        Self::new(err.kind(), err)
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoServer {
                prefix,
                instance,
                func,
            } => write!(
                f,
                "no server for function `{func}` of instance `{instance}` under prefix `{prefix}`"
            ),
            Self::UndeclaredPath {
                target,
                direction,
                path,
                declared,
            } => {
                let receiver = match *direction {
                    "parameters" => "callee in `serve`",
                    _ => "caller in `invoke`",
                };
                write!(
                    f,
                    "async value path {path:?} of the {direction} of `{target}` was not declared \
                     by the {receiver} (declared: {declared})"
                )
            }
            Self::EmptyPath => f.write_str("cannot index a stream with an empty path"),
            Self::Overloaded {
                prefix,
                instance,
                func,
                limit,
            } => write!(
                f,
                "overloaded: function `{func}` of instance `{instance}` under prefix `{prefix}` \
                 already has {limit} invocations queued (the limit)"
            ),
            Self::TooManyStreams {
                target,
                direction,
                path,
                limit,
            } => write!(
                f,
                "async value path {path:?} of the {direction} of `{target}` would exceed the \
                 limit of {limit} sub-streams held by one invocation"
            ),
            Self::TooManyBytes {
                target,
                direction,
                path,
                held,
                requested,
                limit,
            } => write!(
                f,
                "async value path {path:?} of the {direction} of `{target}` needs a ring of \
                 {requested} bytes, but the invocation already holds {held} bytes written ahead \
                 of their readers (limit {limit})"
            ),
        }
    }
}

impl Error for TransportError {}
