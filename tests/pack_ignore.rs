//! Packing with `.dockerignore` rules (`PackOptions::ignore`): what Docker
//! leaves out of a build context is left out of the archive, `!` rules
//! re-include below an ignored directory, and unusable rules are refused
//! before a worker starts. As root and as `nobody`.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::{gnu_tar, gnu_tar_available, Scene};
use sandtar::{Error, Outcome, PackOptions, Sandbox, SkipReason};

root_and_nobody!(dockerignore_rules, unusable_rules_are_refused);

/// The tree of a small project with build output and logs.
fn make_project(root: &Path) {
    for (name, data) in [
        ("README.md", &b"readme\n"[..]),
        ("build.log", b"log\n"),
        ("docs/guide.md", b"guide\n"),
        ("src/main.rs", b"fn main() {}\n"),
        ("src/deep/debug.log", b"log\n"),
        ("target/out.bin", b"\x7fELF"),
        ("target/keep/ok.txt", b"kept\n"),
        (".git/config", b"[core]\n"),
    ] {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}

/// Packs `src` with `ignore`; the names in the archive (as GNU tar lists
/// them, or as sandtar reports them written) and the names reported ignored.
async fn pack(sandbox: &Sandbox, src: &Path, ignore: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut options = PackOptions::default();
    options.ignore = ignore.lines().map(String::from).collect();
    let mut pack = sandbox.pack(src, &options).await.expect("pack");
    let mut archive = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut pack, &mut archive)
        .await
        .expect("reading the archive");
    let reports: Vec<_> = pack.reports().collect();
    let summary = pack.finish().await.expect("summary");
    let name =
        |r: &sandtar::EntryReport| r.path.to_string_lossy().trim_end_matches('/').to_string();
    let written: BTreeSet<String> = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Written)
        .map(name)
        .collect();
    let ignored: BTreeSet<String> = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Skipped(SkipReason::NotSelected))
        .map(name)
        .collect();
    assert_eq!(summary.not_selected, ignored.len() as u64, "{summary:?}");
    if gnu_tar_available() {
        let (listing, ok, stderr) = gnu_tar(&["-t"], None, &archive);
        assert!(ok, "GNU tar -t: {stderr}");
        let listed: BTreeSet<String> = String::from_utf8(listing)
            .unwrap()
            .lines()
            .map(|l| l.trim_end_matches('/').to_string())
            .collect();
        assert_eq!(listed, written, "GNU tar's listing against the reports");
    }
    (written, ignored)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn dockerignore_rules(sandbox: Sandbox) {
    let scene = Scene::new();
    make_project(&scene.dest);
    let rules = "# build output\n\n**/*.log\ntarget\n!target/keep\n/.git/\n";
    let (written, ignored) = pack(&sandbox, &scene.dest, rules).await;
    // `target` itself is not recorded, but what `!target/keep` re-includes is.
    let kept = [
        "README.md",
        "docs",
        "docs/guide.md",
        "src",
        "src/deep",
        "src/main.rs",
        "target/keep",
        "target/keep/ok.txt",
    ];
    assert_eq!(written, set(&kept));
    let left_out = [
        "build.log",
        "src/deep/debug.log",
        "target",
        "target/out.bin",
        ".git",
        ".git/config",
    ];
    assert_eq!(ignored, set(&left_out));

    // Without an exception an ignored directory is not walked at all, and
    // `*` stays within its component: only the top `*.log` goes.
    let (written, ignored) = pack(&sandbox, &scene.dest, "*.log\ntarget\n.git").await;
    assert!(written.contains("src/deep/debug.log"), "{written:?}");
    assert_eq!(ignored, set(&["build.log", "target", ".git"]));

    // The last matching rule decides: an exception before its rule is undone.
    let (written, _) = pack(&sandbox, &scene.dest, "!README.md\n*.md").await;
    assert!(!written.contains("README.md"), "{written:?}");
    let (written, _) = pack(&sandbox, &scene.dest, "*.md\n!README.md").await;
    assert!(written.contains("README.md"), "{written:?}");
    scene.check();
}

async fn unusable_rules_are_refused(sandbox: Sandbox) {
    let scene = Scene::new();
    for rules in [
        vec!["[abc".to_string()],
        vec!["a/../b".into()],
        vec!["!".into()],
    ] {
        let mut options = PackOptions::default();
        options.ignore = rules.clone();
        match sandbox.pack(&scene.dest, &options).await {
            Err(Error::InvalidOption {
                option: "ignore", ..
            }) => {}
            other => panic!("{rules:?}: expected an invalid ignore, got {other:?}"),
        }
    }
    let mut options = PackOptions::default();
    options.ignore = vec!["x".repeat(9 * 1024), "y".repeat(8 * 1024)];
    match sandbox.pack(&scene.dest, &options).await {
        Err(Error::InvalidOption {
            option: "ignore",
            problem,
        }) => {
            assert!(problem.contains("16 KiB"), "{problem}")
        }
        other => panic!("expected too many rule bytes, got {other:?}"),
    }
    scene.check();
}
