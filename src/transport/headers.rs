//! Invocation headers: caller identity and metadata carried with every invocation.

use std::borrow::Cow;

/// Headers carried from the caller to the callee with an invocation, such as the
/// caller's identity (`source-id`) and the link it called through (`link-name`).
///
/// The [`Ring`](crate::Ring) transport's context, on both the [`Invoke`] and the
/// [`Serve`] side, is `Option<Headers>`, mirroring wrpc-transport-nats'
/// `Option<HeaderMap>`: the caller's value reaches the callee as it was given (moved,
/// not copied), and `None` costs nothing. Names are compared ASCII case-insensitively,
/// as in HTTP and NATS headers; a name may carry several values, kept in insertion
/// order.
///
/// [`Invoke`]: wrpc_transport::Invoke
/// [`Serve`]: wrpc_transport::Serve
///
/// # Examples
///
/// ```
/// use wrpc_ring::Headers;
///
/// let mut headers = Headers::new();
/// headers.insert("source-id", "comp-a");
/// headers.insert("link-name", "default");
/// headers.append("link-name", "backup");
/// assert_eq!(headers.get("Source-Id"), Some("comp-a"));
/// assert_eq!(headers.get_all("link-name").collect::<Vec<_>>(), ["default", "backup"]);
/// headers.insert("link-name", "other"); // replaces every value
/// assert_eq!(headers.get_all("link-name").collect::<Vec<_>>(), ["other"]);
/// assert_eq!(headers.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(Cow<'static, str>, Cow<'static, str>)>,
}

impl Headers {
    /// No headers. Does not allocate.
    pub const fn new() -> Self {
        Self { entries: Vec::new() }
    }

    /// Sets `name` to `value`, replacing every value it had.
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) {
        let name = name.into();
        self.remove(&name);
        self.entries.push((name, value.into()));
    }

    /// Adds `value` to the values of `name`.
    pub fn append(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) {
        self.entries.push((name.into(), value.into()));
    }

    /// Removes every value of `name`; returns whether there was any.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.entries.len() != before
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// Every value of `name`, in insertion order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// Every `(name, value)` pair, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    /// The number of `(name, value)` pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no header.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<N, V> FromIterator<(N, V)> for Headers
where
    N: Into<Cow<'static, str>>,
    V: Into<Cow<'static, str>>,
{
    fn from_iter<T: IntoIterator<Item = (N, V)>>(iter: T) -> Self {
        Self {
            entries: iter.into_iter().map(|(n, v)| (n.into(), v.into())).collect(),
        }
    }
}

impl<N, V> Extend<(N, V)> for Headers
where
    N: Into<Cow<'static, str>>,
    V: Into<Cow<'static, str>>,
{
    fn extend<T: IntoIterator<Item = (N, V)>>(&mut self, iter: T) {
        self.entries
            .extend(iter.into_iter().map(|(n, v)| (n.into(), v.into())));
    }
}
