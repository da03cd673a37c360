//! The shared corpus through packing (issue #15): every corpus archive that
//! GNU tar extracts cleanly gives a tree T; GNU tar packs T into G
//! (`--format=posix --sparse --sort=name`, names sorted as sandtar sorts
//! them);
//! sandtar extracts G with `Options::full_fidelity()` into S and packs S into
//! P. Then GNU tar lists G and P alike (`-tv --full-time --numeric-owner`:
//! names, kinds, modes, owners, sizes, times, link targets, device numbers,
//! in order), and P extracted by GNU tar holds T's bytes in every regular
//! file. As root (T keeps the archive's owners and device nodes); skipped
//! with a note without root, GNU tar or the corpus (`../shared/corpus`).

mod common;

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use common::{gnu_tar, gnu_tar_available, is_root};
use sandtar::{Options, PackOptions, Sandbox};

/// Trees larger than this (the corpus's sparse files of 0.5 to 60 GB) are
/// not round-tripped: time and room.
const MAX_TREE: u64 = 128 << 20;

/// The sum of the sizes of the regular files below `root`.
fn apparent_size(root: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            match meta.is_dir() {
                true => todo.push(path),
                false => total += meta.len(),
            }
        }
    }
    total
}

/// Every file of the corpus, sorted.
fn corpus_files() -> Option<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let Ok(subs) = std::fs::read_dir(&dir) else {
        println!("note: no corpus at {}: skipped", dir.display());
        return None;
    };
    let mut files = Vec::new();
    for sub in subs {
        let sub = sub.unwrap().path();
        if sub.is_dir() {
            for f in std::fs::read_dir(&sub).unwrap() {
                files.push(f.unwrap().path());
            }
        }
    }
    files.sort();
    Some(files)
}

/// GNU tar with `args`, no input; whether it exited 0, and what it said.
fn gnu(args: &[&str]) -> (bool, Vec<u8>, String) {
    let (out, ok, stderr) = gnu_tar(args, None, &[]);
    (ok, out, stderr)
}

/// The tree's top-level names, sorted bytewise (what GNU tar is given, so
/// that its order is sandtar's), NUL-terminated for `--null -T`.
fn top_names(root: &Path) -> Vec<u8> {
    let mut names: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    names
        .iter()
        .flat_map(|n| n.as_bytes().iter().copied().chain([0]))
        .collect()
}

/// `tar -tv` of `archive`, one line per member. `landlock`: the tree was
/// extracted on the Landlock rung, which makes no device node and keeps no
/// symlink's owner or time (`SandboxMode::Landlock`): those are left out.
fn listing(archive: &Path, landlock: bool) -> Vec<String> {
    let path = archive.to_str().unwrap();
    let (ok, out, err) = gnu(&["--full-time", "--numeric-owner", "-tvf", path]);
    assert!(ok, "GNU tar -tv {path}: {err}");
    String::from_utf8_lossy(&out)
        .lines()
        .filter(|l| !(landlock && (l.starts_with('b') || l.starts_with('c'))))
        .map(|l| {
            // Whole seconds: sandtar's pack records sub-second times only
            // where PAX records are written anyway (GNU tar's POSIX format
            // writes them for every member).
            let words: Vec<&str> = l.split_whitespace().collect();
            let unset = landlock && l.starts_with('l');
            let words = words.iter().enumerate().map(|(i, w)| match i {
                1 | 3 | 4 if unset => "-",
                4 => w.split('.').next().unwrap(),
                _ => w,
            });
            words.collect::<Vec<_>>().join(" ")
        })
        .collect()
}

/// The bytes of every regular file below `root`, by relative name.
fn contents(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
            if kind.is_dir() {
                todo.push(path);
            } else if kind.is_file() {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Packs `source` whole into `archive`.
async fn pack_to(sandbox: &Sandbox, source: &Path, archive: &Path) -> Result<(), String> {
    let mut pack = sandbox
        .pack(source, &PackOptions::default())
        .await
        .map_err(|e| format!("pack: {e}"))?;
    let mut bytes = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut pack, &mut bytes).await;
    let summary = pack.finish().await.map_err(|e| format!("pack: {e}"))?;
    read.map_err(|e| format!("reading the pack: {e}"))?;
    if summary.skipped + summary.failed != 0 {
        return Err(format!("pack left entries out: {summary:?}"));
    }
    std::fs::write(archive, bytes).unwrap();
    Ok(())
}

/// One archive's round trip in `work`; `None` when GNU tar does not extract
/// the corpus archive cleanly (nothing to compare), else the differences.
async fn round_trip(sandbox: &Sandbox, archive: &Path, work: &Path) -> Option<Vec<String>> {
    let [t, s, u] = ["t", "s", "u"].map(|d| work.join(d));
    let [g, p] = ["g.tar", "p.tar"].map(|f| work.join(f));
    for d in [&t, &s, &u] {
        std::fs::create_dir(d).unwrap();
    }
    let gnu_x = ["--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpf"];
    let (ok, _, _) = gnu(&[&gnu_x[..], &[archive.to_str()?, "-C", t.to_str()?]].concat());
    let names = top_names(&t);
    if !ok || names.is_empty() || apparent_size(&t) > MAX_TREE {
        return None;
    }
    let list = work.join("names");
    std::fs::write(&list, names).unwrap();
    let (ok, _, err) = gnu(&[
        "--format=posix",
        "--sparse",
        "--sort=name",
        "--numeric-owner",
        "-C",
        t.to_str()?,
        "-cf",
        g.to_str()?,
        "--null",
        "-T",
        list.to_str()?,
    ]);
    if !ok {
        return Some(vec![format!("GNU tar could not pack the tree: {err}")]);
    }
    let g_bytes = std::fs::read(&g).unwrap();
    let run = common::run(sandbox, &g_bytes, &s, &Options::full_fidelity()).await;
    if let Err(e) = &run.result {
        return Some(vec![format!(
            "sandtar could not extract GNU tar's pack: {e}"
        )]);
    }
    if let Err(e) = pack_to(sandbox, &s, &p).await {
        return Some(vec![e]);
    }
    let mut diffs = Vec::new();
    let landlock = sandbox.mode().rung() == sandtar::Rung::Landlock;
    let (ours, theirs) = (listing(&p, landlock), listing(&g, landlock));
    if ours != theirs {
        diffs.push(format!(
            "listings differ:\nGNU tar's pack:\n  {}\nsandtar's pack:\n  {}",
            theirs.join("\n  "),
            ours.join("\n  ")
        ));
    }
    let (ok, _, err) = gnu(&[&gnu_x[..], &[p.to_str()?, "-C", u.to_str()?]].concat());
    if !ok {
        diffs.push(format!("GNU tar could not extract sandtar's pack: {err}"));
    } else if contents(&t) != contents(&u) {
        diffs.push("the contents of regular files differ".into());
    }
    Some(diffs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_trees_pack_as_gnu_tar_packs_them() {
    if !is_root() || !gnu_tar_available() {
        println!("note: needs root and GNU tar: skipped");
        return;
    }
    let Some(files) = corpus_files() else { return };
    let sandbox = common::sandbox().await;
    let (mut compared, mut failures) = (0, Vec::new());
    for file in &files {
        let work = tempfile::tempdir().unwrap();
        match round_trip(&sandbox, file, work.path()).await {
            None => println!("note: {}: not compared (GNU tar fails on it, or its tree is empty or over 128 MiB)", file.display()),
            Some(diffs) if diffs.is_empty() => compared += 1,
            Some(diffs) => failures.push(format!("{}:\n{}", file.display(), diffs.join("\n"))),
        }
    }
    println!("{compared} corpus trees packed as GNU tar packs them");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(compared >= 50, "only {compared} corpus archives compared");
}
