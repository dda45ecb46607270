//! Async-value paths: the concrete path of a sub-stream, and the declared path sets
//! (with `None` wildcards) it is checked against.

use std::fmt;

use crate::sync::Arc;

/// The deepest path stored inline; deeper paths (an async value in a record in a list,
/// and deeper nestings) are stored on the heap, once per handle that indexes them.
/// Depth 3 covers a top-level async value (`[0]`), the elements of a top-level list of
/// them (`[0, i]`) and a field of a record in such a list (`[0, i, f]`), and keeps a
/// `Path` at 32 bytes (it was 56 at depth 6): every stream handle holds one,
/// and wRPC's futures hold and move the handles on every call (docs/benchmarks.md,
/// "Session 16").
const INLINE_DEPTH: usize = 3;

/// The concrete path of one sub-stream of an invocation: the tuple position, then list
/// or stream element indices. The root stream is the empty path.
///
/// Cloning never allocates: shallow paths are stored inline, deep ones are shared.
#[derive(Clone)]
pub(crate) enum Path {
    Inline { len: u8, items: [usize; INLINE_DEPTH] },
    Shared(Arc<[usize]>),
}

impl Path {
    /// The root stream of a direction.
    pub(crate) const ROOT: Self = Self::Inline {
        len: 0,
        items: [0; INLINE_DEPTH],
    };

    /// Whether this is the root stream's path (`[]`).
    pub(crate) fn is_root(&self) -> bool {
        self.as_slice().is_empty()
    }

    pub(crate) fn as_slice(&self) -> &[usize] {
        match self {
            Self::Inline { len, items } => &items[..usize::from(*len)],
            Self::Shared(items) => items,
        }
    }

    /// This path followed by `more`.
    pub(crate) fn join(&self, more: &[usize]) -> Self {
        let head = self.as_slice();
        let len = head.len() + more.len();
        if len <= INLINE_DEPTH {
            let mut items = [0; INLINE_DEPTH];
            items[..head.len()].copy_from_slice(head);
            items[head.len()..len].copy_from_slice(more);
            // `len <= INLINE_DEPTH`, which fits a `u8`.
            let len = len as u8;
            Self::Inline { len, items }
        } else {
            Self::Shared(head.iter().chain(more).copied().collect())
        }
    }
}

impl PartialEq<[usize]> for Path {
    fn eq(&self, other: &[usize]) -> bool {
        self.as_slice() == other
    }
}

impl PartialEq for Path {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Path {}

impl std::hash::Hash for Path {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl fmt::Debug for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

/// How a concrete path relates to a set of declared paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Declaration {
    /// A declared async value: it carries data on its own ring.
    Leaf,
    /// Only a prefix of declared values (a record or list holding them): it can be
    /// indexed further but carries no data itself.
    Node,
    /// Neither.
    Undeclared,
}

/// Whether `declared` (with `None` wildcards) matches the start of `path`, element by
/// element, for `declared.len()` elements.
fn matches_start(declared: &[Option<usize>], path: &[usize]) -> bool {
    declared
        .iter()
        .zip(path)
        .all(|(declared, concrete)| declared.is_none_or(|i| i == *concrete))
}

/// Classifies `path` against `declared`. The root is always a leaf: it is the stream of
/// the synchronous values.
pub(crate) fn classify<'a>(
    declared: impl Iterator<Item = &'a [Option<usize>]>,
    path: &[usize],
) -> Declaration {
    if path.is_empty() {
        return Declaration::Leaf;
    }
    let mut found = Declaration::Undeclared;
    for declared in declared {
        if declared.len() == path.len() && matches_start(declared, path) {
            return Declaration::Leaf;
        }
        if declared.len() > path.len() && matches_start(&declared[..path.len()], path) {
            found = Declaration::Node;
        }
    }
    found
}

/// Paths declared by a caller for its results, copied out of the borrowed `invoke`
/// argument into storage that keeps its capacity across pooled invocations.
#[derive(Debug, Default)]
pub(crate) struct FlatPaths {
    items: Vec<Option<usize>>,
    ends: Vec<usize>,
}

impl FlatPaths {
    pub(crate) fn fill<P: AsRef<[Option<usize>]>>(&mut self, paths: &[P]) {
        self.clear();
        for path in paths {
            self.items.extend_from_slice(path.as_ref());
            self.ends.push(self.items.len());
        }
    }

    pub(crate) fn clear(&mut self) {
        self.items.clear();
        self.ends.clear();
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &[Option<usize>]> + Clone {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, end)| &self.items[start..*end])
    }
}

/// Formats declared paths for error messages: `[[0], [1, *]]`, `*` for a wildcard.
pub(crate) struct DisplayDeclared<I>(pub(crate) I);

impl<'a, I> fmt::Display for DisplayDeclared<I>
where
    I: Iterator<Item = &'a [Option<usize>]> + Clone,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (n, path) in self.0.clone().enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            f.write_str("[")?;
            for (m, item) in path.iter().enumerate() {
                if m > 0 {
                    f.write_str(", ")?;
                }
                match item {
                    Some(i) => write!(f, "{i}")?,
                    None => f.write_str("*")?,
                }
            }
            f.write_str("]")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_stays_inline_then_spills() {
        let path = Path::ROOT.join(&[1, 2]).join(&[3]);
        assert!(matches!(path, Path::Inline { .. }));
        assert_eq!(path.as_slice(), [1, 2, 3]);
        let deep = path.join(&[4, 5, 6, 7]);
        assert!(matches!(deep, Path::Shared(_)));
        assert_eq!(deep.as_slice(), [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(deep.join(&[8]).as_slice(), [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn classify_leaf_node_wildcard() {
        let declared: Vec<Vec<Option<usize>>> = vec![vec![Some(0)], vec![Some(1), None, Some(2)]];
        let iter = || declared.iter().map(Vec::as_slice);
        assert_eq!(classify(iter(), &[]), Declaration::Leaf);
        assert_eq!(classify(iter(), &[0]), Declaration::Leaf);
        assert_eq!(classify(iter(), &[1]), Declaration::Node);
        assert_eq!(classify(iter(), &[1, 7]), Declaration::Node);
        assert_eq!(classify(iter(), &[1, 7, 2]), Declaration::Leaf);
        assert_eq!(classify(iter(), &[1, 7, 3]), Declaration::Undeclared);
        assert_eq!(classify(iter(), &[2]), Declaration::Undeclared);
        assert_eq!(classify(iter(), &[0, 0]), Declaration::Undeclared);
    }

    #[test]
    fn flat_paths_round_trip_and_display() {
        let mut flat = FlatPaths::default();
        flat.fill(&[[Some(0)].as_slice(), [].as_slice(), [Some(1), None].as_slice()]);
        let got: Vec<_> = flat.iter().collect();
        assert_eq!(
            got,
            [[Some(0)].as_slice(), [].as_slice(), [Some(1), None].as_slice()]
        );
        assert_eq!(DisplayDeclared(flat.iter()).to_string(), "[[0], [], [1, *]]");
        flat.fill::<&[Option<usize>]>(&[]);
        assert_eq!(flat.iter().count(), 0);
    }
}
