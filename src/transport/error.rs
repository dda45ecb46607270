//! Errors of the `Ring` transport.

use std::error::Error;
use std::fmt;

/// An invocation the [`Ring`](crate::Ring) transport could not set up.
///
/// Returned (inside [`anyhow::Error`]) by `invoke` and `index`; it can be recovered with
/// [`anyhow::Error::downcast_ref`]. I/O on a sub-stream reports the problems it finds as
/// [`std::io::Error`]s with a precise kind instead (see [`Outgoing`](crate::transport::Outgoing)
/// and [`Incoming`](crate::transport::Incoming)).
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
        }
    }
}

impl Error for TransportError {}
