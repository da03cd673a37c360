//! `.dockerignore` rules for packing ([`PackOptions::ignore`](crate::PackOptions::ignore)),
//! compiled: the caller compiles them to check the options, the packing
//! worker to decide each name.
//!
//! The semantics are moby's `patternmatcher`, which Docker applies to a build
//! context: each rule is a pattern on the name relative to the source, `*`,
//! `?` and `[...]` within one component, `**` any number of components; a
//! rule matches a name or any of its ancestors; a rule starting with `!`
//! re-includes; the last rule that matches decides.

use glob::{MatchOptions, Pattern};

use crate::selection::{ancestors_and_self, clean_pattern};

/// What is wrong with a rule, as said to the user.
pub(crate) const BAD_RULE: &str = "a rule is not valid (an unclosed `[`, a `**` that is not a \
     whole component, a `..` component, or a `!` with no pattern)";

/// `*` stays within a component (as Go's `filepath.Match`); a leading `.` is
/// matched by `*`.
const MATCHING: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// One rule: a pattern, and whether it re-includes.
#[derive(Debug)]
struct Rule {
    pattern: Pattern,
    exception: bool,
}

/// Compiled `.dockerignore` rules.
#[derive(Debug, Default)]
pub(crate) struct IgnoreRules {
    rules: Vec<Rule>,
}

impl IgnoreRules {
    /// Compiles the lines of a `.dockerignore`: blank lines and lines
    /// starting with `#` are skipped, the rest trimmed; `Err` for a rule
    /// that cannot be used.
    pub(crate) fn new(lines: &[String]) -> Result<IgnoreRules, &'static str> {
        let mut rules = Vec::new();
        for line in lines.iter().map(|l| l.trim()) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            // Cleaned as Docker cleans it: no leading `/`, no empty or `.` components.
            let clean = clean_pattern(pattern).ok_or(BAD_RULE)?;
            let pattern = Pattern::new(&clean).map_err(|_| BAD_RULE)?;
            rules.push(Rule { pattern, exception });
        }
        Ok(IgnoreRules { rules })
    }

    /// Whether some rule re-includes: then an ignored directory is still
    /// walked, for names below it that are re-included.
    pub(crate) fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// Whether `path` (relative to the source, no leading `/`) is left out.
    pub(crate) fn ignores(&self, path: &[u8]) -> bool {
        if self.rules.is_empty() {
            return false;
        }
        let name = String::from_utf8_lossy(path);
        let mut ignored = false;
        for rule in &self.rules {
            // Only a rule that would change the verdict is worth matching.
            if ignored == rule.exception && matches_or_ancestor(&rule.pattern, &name) {
                ignored = !rule.exception;
            }
        }
        ignored
    }
}

/// Whether `pattern` matches `name` or one of its ancestors.
fn matches_or_ancestor(pattern: &Pattern, name: &str) -> bool {
    ancestors_and_self(name).any(|prefix| pattern.matches_with(prefix, MATCHING))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(lines: &[&str]) -> IgnoreRules {
        IgnoreRules::new(&lines.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ignored(rules: &IgnoreRules, names: &[&str]) -> Vec<String> {
        names
            .iter()
            .filter(|n| rules.ignores(n.as_bytes()))
            .map(|n| n.to_string())
            .collect()
    }

    const TREE: &[&str] = &[
        "README.md",
        "docs",
        "docs/guide.md",
        "docs/notes.txt",
        "src",
        "src/main.go",
        "src/gen",
        "src/gen/api.md",
        "target",
        "target/out.bin",
        "target/keep",
        "target/keep/ok.txt",
        ".git",
        ".git/config",
    ];

    #[test]
    fn the_last_matching_rule_decides() {
        let r = rules(&[
            "# comment",
            "",
            "**/*.md",
            "!README.md",
            "target",
            "!target/keep",
        ]);
        assert_eq!(
            ignored(&r, TREE),
            [
                "docs/guide.md",
                "src/gen/api.md",
                "target",
                "target/out.bin"
            ]
            .map(String::from)
        );
        assert!(r.has_exceptions());
        // Order matters: an exception before the rule it excepts is undone.
        let r = rules(&["!README.md", "*.md"]);
        assert!(r.ignores(b"README.md"));
    }

    #[test]
    fn star_stays_in_its_component_and_double_star_crosses() {
        let r = rules(&["*.md"]);
        assert_eq!(ignored(&r, TREE), ["README.md"].map(String::from));
        let r = rules(&["**/*.md"]);
        assert_eq!(
            ignored(&r, TREE),
            ["README.md", "docs/guide.md", "src/gen/api.md"].map(String::from)
        );
        let r = rules(&["src/**"]);
        assert_eq!(
            ignored(&r, TREE),
            ["src/main.go", "src/gen", "src/gen/api.md"].map(String::from)
        );
    }

    #[test]
    fn a_directory_takes_its_contents_and_names_are_cleaned() {
        let r = rules(&["/.git/", "./docs"]);
        assert_eq!(
            ignored(&r, TREE),
            [
                "docs",
                "docs/guide.md",
                "docs/notes.txt",
                ".git",
                ".git/config"
            ]
            .map(String::from)
        );
        assert!(!r.has_exceptions());
        assert!(!rules(&[]).ignores(b"anything"));
    }

    #[test]
    fn unusable_rules_are_refused() {
        for bad in ["[abc", "a/../b", "!", "/", "a**b"] {
            let lines = vec![bad.to_string()];
            assert_eq!(IgnoreRules::new(&lines).unwrap_err(), BAD_RULE, "{bad}");
        }
    }
}
