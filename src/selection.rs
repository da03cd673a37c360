//! Which entries a job writes ([`Selection`], in [`Options`](crate::Options)),
//! and the matcher built from it. The caller builds one to check the options
//! before a job starts; the worker builds one to decide, before anything is
//! written.

use glob::{MatchOptions, Pattern};
use serde::{Deserialize, Serialize};

use crate::report::{EntryKind, SkipReason};

/// Which entries of an archive are written; the others are reported
/// [`Outcome::Skipped`](crate::Outcome::Skipped) with
/// [`SkipReason::NotSelected`] or [`SkipReason::StrippedAway`], and their
/// data is read past. Decided in the worker, before anything is written. The
/// default selects everything.
///
/// Names are matched after the archive's name is cleaned (a leading `/` and
/// `.` components dropped) and `strip_components` applied. Patterns are
/// shell-style: `*`, `?` and `[...]` (`*` also matches `/`, as in GNU tar).
/// They choose by name only: a pattern that matches a name's ancestor selects
/// the name, whatever that ancestor is in the archive (`*.md` also selects
/// `x.md/run.sh`); use `kinds` to choose by type. Bytes that are not UTF-8
/// are matched as U+FFFD, so `?` and `[!...]` cannot tell them apart. What is
/// selected is still written inside the destination only: selection is a
/// filter of the caller's, not a wall.
///
/// ```
/// use sandtar::{EntryKind, Options, Selection};
/// let mut options = Options::default();
/// options.select.strip_components = 1; // `project-1.0/src/x.rs` -> `src/x.rs`
/// options.select.include = vec!["src".into(), "Cargo.toml".into()];
/// options.select.exclude = vec!["*.orig".into(), ".git".into()];
/// options.select.kinds = vec![EntryKind::File, EntryKind::Directory];
/// assert_ne!(options.select, Selection::default());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Selection {
    /// Leading name components dropped before anything else, as GNU tar's
    /// `--strip-components`: from every name and from hard-link targets (not
    /// from symlink targets). An entry with no more components than this is
    /// skipped ([`SkipReason::StrippedAway`]). Default 0.
    pub strip_components: u32,
    /// When not empty, only entries at or below a match are written: a
    /// pattern matches a whole name from its start, and selects that entry
    /// and, for a directory, everything below it (`docs` selects `docs/` and
    /// `docs/a.txt`; `docs/*.md` the Markdown files in and below `docs/`).
    /// Default empty (everything). The patterns of `include` and `exclude`
    /// may add up to 16 KiB.
    pub include: Vec<String>,
    /// Entries matching one of these are not written, nor is anything below
    /// them. A pattern without `/` is tried on every component of a name, at
    /// any depth (`*.o`, `.git`); one with `/` on the name from its start, as
    /// `include`. Exclusion wins over inclusion. Default empty.
    pub exclude: Vec<String>,
    /// When not empty, only entries of these kinds are written. Default empty
    /// (every kind).
    pub kinds: Vec<EntryKind>,
}

/// The most bytes the patterns of a [`Selection`] may add up to (they travel
/// in the job's header, which is bounded).
pub(crate) const MAX_PATTERN_BYTES: usize = 16 * 1024;

/// A pattern of a [`Selection`] that cannot be used, as said to the user.
pub(crate) const BAD_PATTERN: &str =
    "a pattern is not valid (an unclosed `[`, or a `..` component)";

/// A [`Selection`], compiled.
#[derive(Debug)]
pub(crate) struct Selector {
    strip: usize,
    include: Vec<Pattern>,
    /// Patterns with a `/`: tried on the name and its ancestors.
    exclude_anchored: Vec<Pattern>,
    /// Patterns without a `/`: tried on each component.
    exclude_component: Vec<Pattern>,
    kinds: Vec<EntryKind>,
}

/// `*` crosses `/`, as in GNU tar; a leading `.` is matched by `*`.
const MATCHING: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: false,
    require_literal_leading_dot: false,
};

impl Selector {
    /// Compiles `selection`; `Err` for a pattern that cannot be used.
    pub(crate) fn new(selection: &Selection) -> Result<Selector, &'static str> {
        let compile = |patterns: &[String]| -> Result<Vec<(bool, Pattern)>, &'static str> {
            patterns
                .iter()
                .map(|p| {
                    let clean = clean_pattern(p).ok_or(BAD_PATTERN)?;
                    let pattern = Pattern::new(&clean).map_err(|_| BAD_PATTERN)?;
                    Ok((clean.contains('/'), pattern))
                })
                .collect()
        };
        let include = compile(&selection.include)?;
        let (anchored, component): (Vec<_>, Vec<_>) =
            compile(&selection.exclude)?.into_iter().partition(|p| p.0);
        Ok(Selector {
            strip: selection.strip_components as usize,
            include: include.into_iter().map(|p| p.1).collect(),
            exclude_anchored: anchored.into_iter().map(|p| p.1).collect(),
            exclude_component: component.into_iter().map(|p| p.1).collect(),
            kinds: selection.kinds.clone(),
        })
    }

    /// `path` (cleaned) with the leading components stripped, or `None` when
    /// nothing is left of it.
    pub(crate) fn strip<'p>(&self, path: &'p [u8]) -> Option<&'p [u8]> {
        if self.strip == 0 {
            return Some(path);
        }
        let mut rest = path;
        for _ in 0..self.strip {
            let slash = rest.iter().position(|b| *b == b'/')?;
            rest = &rest[slash + 1..];
        }
        Some(rest).filter(|r| !r.is_empty())
    }

    /// The name to write the entry at `path` (cleaned) of `kind` under, or
    /// why it is skipped.
    pub(crate) fn select<'p>(
        &self,
        path: &'p [u8],
        kind: EntryKind,
    ) -> Result<&'p [u8], SkipReason> {
        let path = self.strip(path).ok_or(SkipReason::StrippedAway)?;
        if !self.kinds.is_empty() && !self.kinds.contains(&kind) {
            return Err(SkipReason::NotSelected);
        }
        // No pattern (the usual case): no name to build, per entry.
        if self.include.is_empty()
            && self.exclude_anchored.is_empty()
            && self.exclude_component.is_empty()
        {
            return Ok(path);
        }
        let name = String::from_utf8_lossy(path);
        let included = self.include.is_empty() || any_prefix(&name, &self.include);
        let excluded = any_prefix(&name, &self.exclude_anchored)
            || name.split('/').any(|c| {
                self.exclude_component
                    .iter()
                    .any(|p| p.matches_with(c, MATCHING))
            });
        match included && !excluded {
            true => Ok(path),
            false => Err(SkipReason::NotSelected),
        }
    }
}

/// Whether one of `patterns` matches `name` or one of its ancestors.
fn any_prefix(name: &str, patterns: &[Pattern]) -> bool {
    ancestors_and_self(name).any(|prefix| patterns.iter().any(|p| p.matches_with(prefix, MATCHING)))
}

/// `a`, `a/b`, `a/b/c` for `a/b/c`.
pub(crate) fn ancestors_and_self(name: &str) -> impl Iterator<Item = &str> {
    let ends = name
        .match_indices('/')
        .map(|(i, _)| i)
        .chain(std::iter::once(name.len()));
    ends.map(|end| &name[..end])
}

/// A pattern cleaned as names are: no leading `/`, no empty or `.`
/// components, no trailing `/`; `None` with a `..` component or nothing left.
pub(crate) fn clean_pattern(pattern: &str) -> Option<String> {
    let parts: Vec<&str> = pattern
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    match parts.is_empty() || parts.contains(&"..") {
        true => None,
        false => Some(parts.join("/")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(strip: u32, include: &[&str], exclude: &[&str]) -> Selector {
        let selection = Selection {
            strip_components: strip,
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
            kinds: Vec::new(),
        };
        Selector::new(&selection).unwrap()
    }

    fn picks(s: &Selector, path: &str) -> Result<String, SkipReason> {
        s.select(path.as_bytes(), EntryKind::File)
            .map(|p| String::from_utf8(p.to_vec()).unwrap())
    }

    #[test]
    fn strip_components() {
        let s = selector(2, &[], &[]);
        assert_eq!(picks(&s, "a/b/c/d").unwrap(), "c/d");
        assert_eq!(picks(&s, "a/b"), Err(SkipReason::StrippedAway));
        assert_eq!(picks(&s, "a"), Err(SkipReason::StrippedAway));
        assert_eq!(picks(&s, ""), Err(SkipReason::StrippedAway));
        assert_eq!(s.strip(b"a/b/c"), Some(&b"c"[..]));
    }

    #[test]
    fn include_selects_subtrees_and_single_entries() {
        let s = selector(1, &["docs", "/src/*.rs", "./Cargo.toml"], &[]);
        assert_eq!(picks(&s, "p/docs").unwrap(), "docs");
        assert_eq!(picks(&s, "p/docs/deep/a.txt").unwrap(), "docs/deep/a.txt");
        assert_eq!(picks(&s, "p/src/main.rs").unwrap(), "src/main.rs");
        assert_eq!(picks(&s, "p/src/bin/x.rs").unwrap(), "src/bin/x.rs");
        assert_eq!(picks(&s, "p/Cargo.toml").unwrap(), "Cargo.toml");
        for other in ["p/docsx", "p/src/lib.c", "p/Cargo.lock", "p/x/docs", "p"] {
            assert!(picks(&s, other).is_err(), "{other}");
        }
    }

    #[test]
    fn exclude_by_component_or_anchored() {
        let s = selector(0, &[], &["*.o", ".git", "build/tmp"]);
        assert!(picks(&s, "a/b/c.o").is_err());
        assert!(picks(&s, "x/.git/config").is_err());
        assert!(picks(&s, ".git").is_err());
        assert!(picks(&s, "build/tmp/y").is_err());
        assert_eq!(picks(&s, "x/build/tmp/y").unwrap(), "x/build/tmp/y");
        assert_eq!(picks(&s, "a/b/c.oo").unwrap(), "a/b/c.oo");
        // Exclusion wins.
        let s = selector(0, &["src"], &["*.bak"]);
        assert!(picks(&s, "src/a.bak").is_err());
        assert!(picks(&s, "src/a.rs").is_ok());
    }

    #[test]
    fn kinds_and_bad_patterns() {
        let selection = Selection {
            kinds: vec![EntryKind::Directory],
            ..Selection::default()
        };
        let s = Selector::new(&selection).unwrap();
        assert_eq!(s.select(b"d", EntryKind::Directory), Ok(&b"d"[..]));
        assert_eq!(
            s.select(b"f", EntryKind::File),
            Err(SkipReason::NotSelected)
        );
        for bad in ["[a", "../x", "a/../b", "/", ""] {
            let selection = Selection {
                include: vec![bad.into()],
                ..Selection::default()
            };
            assert_eq!(Selector::new(&selection).unwrap_err(), BAD_PATTERN, "{bad}");
        }
    }
}
