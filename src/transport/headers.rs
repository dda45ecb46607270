//! Invocation headers: caller identity and metadata carried with every invocation.

use std::borrow::Cow;
use std::sync::Arc;

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
#[derive(Debug, Clone, Default)]
pub struct Headers {
    /// Shared, copied on write: a clone (e.g. the same caller's headers on every one of
    /// its calls) costs a reference count, not an allocation. `None` when empty.
    entries: Option<Arc<Vec<Entry>>>,
}

type Entry = (Cow<'static, str>, Cow<'static, str>);

impl Headers {
    /// No headers. Does not allocate.
    pub const fn new() -> Self {
        Self { entries: None }
    }

    /// Sets `name` to `value`, replacing every value it had.
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) {
        let name = name.into();
        self.remove(&name);
        self.entries_mut().push((name, value.into()));
    }

    /// Adds `value` to the values of `name`.
    pub fn append(&mut self, name: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) {
        self.entries_mut().push((name.into(), value.into()));
    }

    /// Removes every value of `name`; returns whether there was any.
    pub fn remove(&mut self, name: &str) -> bool {
        if !self.all().iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return false;
        }
        self.entries_mut().retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        true
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all()
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// Every value of `name`, in insertion order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.all()
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
    }

    /// Every `(name, value)` pair, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.all().iter().map(|(n, v)| (n.as_ref(), v.as_ref()))
    }

    /// The number of `(name, value)` pairs.
    pub fn len(&self) -> usize {
        self.all().len()
    }

    /// Whether there is no header.
    pub fn is_empty(&self) -> bool {
        self.all().is_empty()
    }

    fn all(&self) -> &[Entry] {
        self.entries.as_deref().map_or(&[], Vec::as_slice)
    }

    fn entries_mut(&mut self) -> &mut Vec<Entry> {
        Arc::make_mut(self.entries.get_or_insert_with(Arc::default))
    }
}

impl<N, V> FromIterator<(N, V)> for Headers
where
    N: Into<Cow<'static, str>>,
    V: Into<Cow<'static, str>>,
{
    fn from_iter<T: IntoIterator<Item = (N, V)>>(iter: T) -> Self {
        let entries: Vec<Entry> = iter.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
        Self {
            entries: (!entries.is_empty()).then(|| Arc::new(entries)),
        }
    }
}

impl<N, V> Extend<(N, V)> for Headers
where
    N: Into<Cow<'static, str>>,
    V: Into<Cow<'static, str>>,
{
    fn extend<T: IntoIterator<Item = (N, V)>>(&mut self, iter: T) {
        let mut iter = iter.into_iter().peekable();
        if iter.peek().is_some() {
            self.entries_mut().extend(iter.map(|(n, v)| (n.into(), v.into())));
        }
    }
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.all() == other.all()
    }
}

impl Eq for Headers {}
