//! Entry selection (`Options::select`): include and exclude patterns, kinds
//! and `strip_components`, decided in the worker before anything is written,
//! with each decision in the reports. As root and as `nobody`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::raw::Tar;
use common::{run, Scene};
use sandtar::{EntryKind, Error, Options, Outcome, RejectReason, SkipReason};

root_and_nobody!(
    strip_include_exclude_and_kinds,
    a_listing_selects_the_same,
    names_are_cleaned_before_stripping,
);

/// Every path below `dir`, relative, `/`-separated (directories too).
fn tree(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            out.insert(path.strip_prefix(dir).unwrap().display().to_string());
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    out
}

fn project() -> Vec<u8> {
    Tar::new()
        .dir("proj/", 0o755)
        .dir("proj/src/", 0o755)
        .file("proj/src/main.rs", b"fn main() {}\n")
        .file("proj/src/main.rs.bak", b"old\n")
        .dir("proj/src/.git/", 0o755)
        .file("proj/src/.git/config", b"[core]\n")
        .hardlink("proj/src/again.rs", "proj/src/main.rs")
        .symlink("proj/src/link", "main.rs")
        .file("proj/docs/guide.md", b"# guide\n")
        .file("proj/README", b"readme\n")
        .file("top-level.txt", b"top\n")
        .finish()
}

fn selection_options() -> Options {
    let mut options = Options::default();
    options.select.strip_components = 1;
    options.select.include = vec!["src".into(), "README".into()];
    options.select.exclude = vec!["*.bak".into(), ".git".into()];
    options.select.kinds = vec![EntryKind::File, EntryKind::Directory, EntryKind::HardLink];
    options
}

async fn strip_include_exclude_and_kinds(sandbox: sandtar::Sandbox) {
    let scene = Scene::new();
    let run = run(&sandbox, &project(), &scene.dest, &selection_options()).await;
    let summary = run.summary();
    let expected: BTreeSet<String> = ["src", "src/main.rs", "src/again.rs", "README"]
        .map(String::from)
        .into();
    assert_eq!(tree(&scene.dest), expected);
    assert_eq!(
        std::fs::read(scene.dest.join("src/again.rs")).unwrap(),
        b"fn main() {}\n"
    );
    let skipped = |why: SkipReason| Outcome::Skipped(why);
    assert_eq!(run.outcome("proj/"), &skipped(SkipReason::StrippedAway));
    assert_eq!(
        run.outcome("top-level.txt"),
        &skipped(SkipReason::StrippedAway)
    );
    for name in [
        "proj/src/main.rs.bak",
        "proj/src/.git/",
        "proj/src/.git/config",
        "proj/src/link",
        "proj/docs/guide.md",
    ] {
        assert_eq!(
            run.outcome(name),
            &skipped(SkipReason::NotSelected),
            "{name}"
        );
    }
    // Reports keep the archive's names.
    for name in [
        "proj/src/",
        "proj/src/main.rs",
        "proj/src/again.rs",
        "proj/README",
    ] {
        assert_eq!(run.outcome(name), &Outcome::Written, "{name}");
    }
    assert_eq!((summary.written, summary.skipped), (4, 7));
    // What the selection left out was asked for: the job is complete.
    assert_eq!(summary.not_selected, 7);
    assert!(summary.is_complete());
    scene.check();
}

/// A listing takes the same decisions and writes nothing.
async fn a_listing_selects_the_same(sandbox: sandtar::Sandbox) {
    let scene = Scene::new();
    let mut options = selection_options();
    options.list_only = true;
    let run = run(&sandbox, &project(), &scene.dest, &options).await;
    let summary = run.summary();
    assert_eq!((summary.listed, summary.skipped), (4, 7));
    assert_eq!(run.outcome("proj/src/main.rs"), &Outcome::Listed);
    assert_eq!(
        run.outcome("proj/docs/guide.md"),
        &Outcome::Skipped(SkipReason::NotSelected)
    );
    assert!(tree(&scene.dest).is_empty());
    scene.check();
}

/// `..` is refused before stripping could hide it, a leading `/` is dropped
/// first, and a hard link whose target is stripped away is refused.
async fn names_are_cleaned_before_stripping(sandbox: sandtar::Sandbox) {
    let scene = Scene::new();
    let archive = Tar::new()
        .file("x/../../escape.txt", b"no\n")
        .file("/abs/inside.txt", b"yes\n")
        .file("./dot/inside2.txt", b"yes\n")
        .hardlink("l/link", "top")
        .finish();
    let mut options = Options::default();
    options.select.strip_components = 1;
    let run = run(&sandbox, &archive, &scene.dest, &options).await;
    run.summary();
    assert_eq!(
        run.outcome("x/../../escape.txt"),
        &Outcome::Rejected(RejectReason::ParentComponent)
    );
    assert_eq!(
        run.outcome("l/link"),
        &Outcome::Rejected(RejectReason::BadLinkTarget)
    );
    let expected: BTreeSet<String> = ["inside.txt", "inside2.txt"].map(String::from).into();
    assert_eq!(tree(&scene.dest), expected);
    scene.check();
}

/// A pattern that cannot be used, or a selection asked of a layer, is the
/// caller's mistake: refused before any worker sees the job.
#[tokio::test]
async fn unusable_selections_are_refused_before_the_job() {
    let sandbox = common::new_sandbox().await;
    let scene = Scene::new();
    let archive = Tar::new().file("a", b"a").finish();
    let mut bad = Options::default();
    bad.select.include = vec!["[unclosed".into()];
    let mut layer = Options::layer();
    layer.select.exclude = vec!["*.o".into()];
    let mut huge = Options::default();
    huge.select.exclude = vec!["x".repeat(17 * 1024)];
    for options in [bad, layer, huge] {
        let result = sandbox.extract(&archive[..], &scene.dest, &options).await;
        assert!(
            matches!(
                result,
                Err(Error::InvalidOption {
                    option: "select",
                    ..
                })
            ),
            "{result:?}"
        );
    }
    assert!(tree(&scene.dest).is_empty());
    scene.check();
}
