//! Extraction benchmarks: sandtar against two unconfined baselines, in the same
//! run, on the same inputs.
//!
//! * `sandtar` — [`sandtar::Sandbox::extract`] with [`sandtar::Options::default`]
//!   (confined worker process, decoding in the worker).
//! * `tar-crate` — the `tar` crate's `Archive::unpack`, in-process and unconfined,
//!   called synchronously on the benchmark thread; gzip and zstd are decoded inline
//!   by `flate2` / `zstd` read adapters.
//! * `astral-tokio-tar` — `tokio_tar::Archive::unpack` (async, unconfined) driven by
//!   the same tokio runtime; gzip and zstd are decoded inline in `poll_read` by the
//!   same decoders (as `async-compression` would do).
//!
//! Cases (see benches/README.md for the details and the environment variables):
//! `small`, `large`, `mixed`, `linux` (only if `benches/fetch-linux.sh` was run),
//! each as plain tar, gzip and zstd, on tmpfs and on disk; `tiny` (one-entry
//! archives, one after another and 16 at a time); `memory` (peak RSS of the worker
//! and of the caller for the large case).
//!
//! Every timed extraction goes into a fresh, empty directory created before the
//! clock starts; it is checked (once per benchmark) and removed after the clock
//! stopped. Inputs are generated deterministically and cached under
//! `target/sandtar-bench/inputs`.

use std::cell::LazyCell as Lazy;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::runtime::Runtime;

/// Bump when a generator changes, so that cached inputs are rebuilt.
const GENERATOR_VERSION: u32 = 1;
/// A fixed modification time for every generated entry (2023-11-14).
const MTIME: u64 = 1_700_000_000;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Comp {
    Plain,
    Gzip,
    Zstd,
}

impl Comp {
    const ALL: [Comp; 3] = [Comp::Plain, Comp::Gzip, Comp::Zstd];

    fn name(self) -> &'static str {
        match self {
            Comp::Plain => "plain",
            Comp::Gzip => "gzip",
            Comp::Zstd => "zstd",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Comp::Plain => ".tar",
            Comp::Gzip => ".tar.gz",
            Comp::Zstd => ".tar.zst",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Impl {
    Sandtar,
    TarCrate,
    Astral,
    /// Not an extractor: decompressing the archive to nothing, in-process, with
    /// the decoders sandtar's worker uses (the bar for compressed input).
    Decode,
    /// sandtar, every report taken from the job as it comes (`Job::next`),
    /// with the lead unbounded (`None`) or bounded (`Options::max_lead`):
    /// the cost of a bounded lead (small case, plain, tmpfs only).
    Streamed(Option<u32>),
}

impl Impl {
    /// The extractors.
    const ALL: [Impl; 3] = [Impl::Sandtar, Impl::TarCrate, Impl::Astral];

    fn name(self) -> &'static str {
        match self {
            Impl::Sandtar => "sandtar",
            Impl::TarCrate => "tar-crate",
            Impl::Astral => "astral-tokio-tar",
            Impl::Decode => "decoding-alone",
            Impl::Streamed(None) => "sandtar-streamed",
            Impl::Streamed(Some(1)) => "sandtar-lead-1",
            Impl::Streamed(Some(_)) => "sandtar-lead-64",
        }
    }
}

/// A place where destinations are created.
#[derive(Debug)]
struct DestRoot {
    name: &'static str,
    root: PathBuf,
    /// Whether to `syncfs` after removing an extracted tree (disk only).
    sync: bool,
    counter: AtomicU64,
}

impl DestRoot {
    fn new(name: &'static str, root: PathBuf, sync: bool) -> io::Result<DestRoot> {
        fs::create_dir_all(&root)?;
        // Leftovers of an interrupted run.
        for entry in fs::read_dir(&root)? {
            let path = entry?.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("x-"))
            {
                let _ = fs::remove_dir_all(&path);
            }
        }
        Ok(DestRoot {
            name,
            root,
            sync,
            counter: AtomicU64::new(0),
        })
    }

    /// A new, empty directory (created now: call it before the clock starts).
    fn fresh(&self) -> PathBuf {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let path = self.root.join(format!("x-{}-{n}", std::process::id()));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        path
    }

    /// Removes extracted trees (call it after the clock stopped).
    fn remove(&self, paths: &[PathBuf]) {
        for path in paths {
            if let Err(e) = fs::remove_dir_all(path) {
                panic!("removing {}: {e}", path.display());
            }
        }
        if self.sync {
            if let Ok(dir) = File::open(&self.root) {
                let _ = rustix::fs::syncfs(&dir);
            }
        }
    }
}

#[derive(Debug)]
struct Config {
    quick: bool,
    full: bool,
    inputs: PathBuf,
    linux_dir: PathBuf,
    report_dir: PathBuf,
    dests: Vec<DestRoot>,
    filters: Vec<String>,
    list: bool,
}

impl Config {
    fn from_env() -> Config {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| manifest.join("target"));
        let bench_dir = target.join("sandtar-bench");
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
        let quick = flag("SANDTAR_BENCH_QUICK");
        let full = flag("SANDTAR_BENCH_FULL");
        let inputs = std::env::var_os("SANDTAR_BENCH_INPUTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| bench_dir.join("inputs"));
        let wanted_dests = std::env::var("SANDTAR_BENCH_DESTS").unwrap_or("tmpfs,disk".into());
        let mut dests = Vec::new();
        for name in wanted_dests.split(',').map(str::trim) {
            match name {
                "tmpfs" => {
                    let root = std::env::var_os("SANDTAR_BENCH_TMPFS")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("/dev/shm/sandtar-bench"));
                    if root.parent().is_some_and(|p| p.is_dir()) {
                        dests.push(DestRoot::new("tmpfs", root, false).expect("tmpfs destination"));
                    } else {
                        eprintln!(
                            "sandtar-bench: no tmpfs at {} (set SANDTAR_BENCH_TMPFS); skipping tmpfs destinations",
                            root.display()
                        );
                    }
                }
                "disk" => {
                    let root = std::env::var_os("SANDTAR_BENCH_DISK")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| PathBuf::from("/var/tmp/sandtar-bench"));
                    dests.push(DestRoot::new("disk", root, true).expect("disk destination"));
                }
                "" => {}
                other => panic!("SANDTAR_BENCH_DESTS: unknown destination {other:?}"),
            }
        }
        let (filters, list) = criterion_filters();
        Config {
            quick,
            full,
            inputs,
            linux_dir: manifest.join("benches").join("data"),
            report_dir: bench_dir,
            dests,
            filters,
            list,
        }
    }

    /// Whether a benchmark id is selected by the command line's filter. Criterion
    /// treats the filter as a regular expression; here it is split on `|` and each
    /// alternative matched as a substring, which agrees for plain words such as
    /// `small`, `gzip/tmpfs`, `sandtar` or `small|tiny` (use only such filters:
    /// inputs of cases that no alternative names are not generated).
    fn wanted(&self, id: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| id.contains(f.as_str()))
    }

    fn dest(&self, name: &str) -> Option<&DestRoot> {
        self.dests.iter().find(|d| d.name == name)
    }
}

/// The positional arguments criterion would take as filters, and whether `--list`
/// was given.
fn criterion_filters() -> (Vec<String>, bool) {
    const WITH_VALUE: &[&str] = &[
        "--save-baseline",
        "-s",
        "--baseline",
        "-b",
        "--baseline-lenient",
        "--load-baseline",
        "--profile-time",
        "--sample-size",
        "--warm-up-time",
        "--measurement-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--color",
        "-c",
        "--format",
        "--output-format",
        "--plotting-backend",
        "--exact",
    ];
    let mut filters = Vec::new();
    let mut list = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--list" {
            list = true;
        } else if arg == "--exact" {
            if let Some(f) = args.next() {
                filters.push(f);
            }
        } else if WITH_VALUE.contains(&arg.as_str()) {
            args.next();
        } else if !arg.starts_with('-') {
            // Criterion takes one regular expression; alternatives (`small|mixed`)
            // are understood here, each alternative as a plain substring.
            filters.extend(arg.split('|').filter(|f| !f.is_empty()).map(String::from));
        }
    }
    (filters, list)
}

// ---------------------------------------------------------------------------
// Deterministic input generation
// ---------------------------------------------------------------------------

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// `true` with probability `p` (in per mille).
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }

    /// Log-uniform in `lo..=hi`.
    fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo as f64).ln(), (hi as f64).ln());
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((l + (h - l) * u).exp() as u64).clamp(lo, hi)
    }
}

/// A reader of `len` deterministic bytes: text made of words from a fixed
/// vocabulary (compresses about 3:1 with gzip, like source code or logs), or
/// uniformly random bytes (incompressible, like media or already-compressed data).
struct Content {
    rng: Rng,
    left: u64,
    text: bool,
    pending: Vec<u8>,
}

const VOCABULARY: usize = 1024;

fn vocabulary() -> &'static [Vec<u8>] {
    static WORDS: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    WORDS.get_or_init(|| {
        let mut rng = Rng::new(0x005e_ed0f_70c4);
        (0..VOCABULARY)
            .map(|_| {
                let len = rng.range(2, 11) as usize;
                (0..len).map(|_| b'a' + (rng.next() % 26) as u8).collect()
            })
            .collect()
    })
}

impl Content {
    fn text(seed: u64, len: u64) -> Content {
        Content {
            rng: Rng::new(seed),
            left: len,
            text: true,
            pending: Vec::new(),
        }
    }

    fn random(seed: u64, len: u64) -> Content {
        Content {
            rng: Rng::new(seed),
            left: len,
            text: false,
            pending: Vec::new(),
        }
    }
}

impl Read for Content {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        let out = &mut buf[..n];
        if self.text {
            let words = vocabulary();
            let mut i = 0;
            while i < n {
                if self.pending.is_empty() {
                    let r = self.rng.next();
                    let word = &words[(r as usize) % VOCABULARY];
                    self.pending.extend_from_slice(word);
                    self.pending.push(match (r >> 32) % 12 {
                        0 => b'\n',
                        _ => b' ',
                    });
                    self.pending.reverse();
                }
                while i < n {
                    match self.pending.pop() {
                        Some(b) => {
                            out[i] = b;
                            i += 1;
                        }
                        None => break,
                    }
                }
            }
        } else {
            for chunk in out.chunks_mut(8) {
                let r = self.rng.next().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// What an extraction of an input must produce (checked once per benchmark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Manifest {
    /// Archive entries (each creates one path: no duplicates).
    entries: u64,
    /// Bytes of regular-file entries.
    file_bytes: u64,
    /// Bytes a walk of the tree sees in regular files (hard links count again).
    walk_bytes: u64,
    /// Uncompressed tar size.
    tar_bytes: u64,
}

impl Manifest {
    fn to_text(self) -> String {
        format!(
            "entries={}\nfile_bytes={}\nwalk_bytes={}\ntar_bytes={}\n",
            self.entries, self.file_bytes, self.walk_bytes, self.tar_bytes
        )
    }

    fn parse(text: &str) -> Option<Manifest> {
        let mut m = Manifest::default();
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            let v: u64 = v.parse().ok()?;
            match k {
                "entries" => m.entries = v,
                "file_bytes" => m.file_bytes = v,
                "walk_bytes" => m.walk_bytes = v,
                "tar_bytes" => m.tar_bytes = v,
                _ => return None,
            }
        }
        Some(m)
    }
}

/// Appends entries to a tar stream and keeps the manifest.
struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    manifest: Manifest,
    sizes: HashMap<String, u64>,
}

impl<W: Write> TarWriter<W> {
    fn new(w: W) -> Self {
        TarWriter {
            builder: tar::Builder::new(w),
            manifest: Manifest::default(),
            sizes: HashMap::new(),
        }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(MTIME);
        h.set_uid(1000);
        h.set_gid(1000);
        h
    }

    fn dir(&mut self, path: &str) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.builder.append_data(&mut h, path, io::empty())?;
        self.manifest.entries += 1;
        Ok(())
    }

    fn file(&mut self, path: &str, mode: u32, size: u64, data: impl Read) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Regular, mode, size);
        self.builder.append_data(&mut h, path, data)?;
        self.manifest.entries += 1;
        self.manifest.file_bytes += size;
        self.manifest.walk_bytes += size;
        self.sizes.insert(path.to_string(), size);
        Ok(())
    }

    fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder.append_link(&mut h, path, target)?;
        self.manifest.entries += 1;
        Ok(())
    }

    fn hardlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0);
        self.builder.append_link(&mut h, path, target)?;
        self.manifest.entries += 1;
        self.manifest.walk_bytes += self.sizes[target];
        Ok(())
    }

    fn finish(self) -> io::Result<Manifest> {
        let mut w = self.builder.into_inner()?;
        w.flush()?;
        Ok(self.manifest)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Small,
    Large,
    Mixed,
    Tiny,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Small => "small",
            Case::Large => "large",
            Case::Mixed => "mixed",
            Case::Tiny => "tiny",
        }
    }
}

struct Scale {
    small_files: u64,
    large_files: u64,
    large_bytes: u64,
    mixed_entries: u64,
}

impl Scale {
    fn of(cfg: &Config) -> Scale {
        if cfg.quick {
            Scale {
                small_files: 5_000,
                large_files: 2,
                large_bytes: 16 << 20,
                mixed_entries: 2_000,
            }
        } else {
            Scale {
                small_files: 100_000,
                large_files: 2,
                large_bytes: 256 << 20,
                mixed_entries: 20_000,
            }
        }
    }

    fn tag(&self, case: Case) -> String {
        let s = match case {
            Case::Small => format!("{}f", self.small_files),
            Case::Large => format!("{}x{}m", self.large_files, self.large_bytes >> 20),
            Case::Mixed => format!("{}e", self.mixed_entries),
            Case::Tiny => "1e".into(),
        };
        format!("{}-{s}-v{GENERATOR_VERSION}", case.name())
    }
}

/// `small`: `files` files of 1 KiB (text) in a three-level tree, 100 per leaf
/// directory, directories first as `tar -c` writes them.
fn gen_small<W: Write>(tw: &mut TarWriter<W>, files: u64) -> io::Result<()> {
    let leaves = files.div_ceil(100);
    // Fan-out per level so that fan^3 >= leaves.
    let mut fan = 1;
    while fan * fan * fan < leaves {
        fan += 1;
    }
    let mut left = files;
    let mut n = 0u64;
    tw.dir("small/")?;
    'outer: for a in 0..fan {
        tw.dir(&format!("small/d{a:02}/"))?;
        for b in 0..fan {
            tw.dir(&format!("small/d{a:02}/e{b:02}/"))?;
            for c in 0..fan {
                if left == 0 {
                    break 'outer;
                }
                let dir = format!("small/d{a:02}/e{b:02}/f{c:02}");
                tw.dir(&format!("{dir}/"))?;
                for i in 0..left.min(100) {
                    tw.file(
                        &format!("{dir}/file{i:03}.txt"),
                        0o644,
                        1024,
                        Content::text(n, 1024),
                    )?;
                    n += 1;
                }
                left -= left.min(100);
            }
        }
    }
    Ok(())
}

/// `large`: a few big files; the first is text, the second random, and so on.
fn gen_large<W: Write>(tw: &mut TarWriter<W>, count: u64, bytes: u64) -> io::Result<()> {
    tw.dir("large/")?;
    for i in 0..count {
        let (name, data) = if i % 2 == 0 {
            (format!("large/text{i}.log"), Content::text(i, bytes))
        } else {
            (format!("large/random{i}.bin"), Content::random(i, bytes))
        };
        tw.file(&name, 0o644, bytes, data)?;
    }
    Ok(())
}

/// `mixed`: a source-tree-like hierarchy of at most `budget` entries (at full
/// scale the tree's shape ends first, at 12,097): 8% directories, 84% files
/// (log-uniform sizes 64 B – 32 KiB, 0.5% from 256 KiB to 2 MiB, one in ten
/// random bytes, one in eight executable), 5% symlinks (to a sibling or into a
/// parent directory), 3% hard links (to an earlier file).
fn gen_mixed<W: Write>(tw: &mut TarWriter<W>, budget: u64) -> io::Result<()> {
    let mut rng = Rng::new(0x00c0_ffee);
    let mut files: Vec<String> = Vec::new();
    let mut stack: Vec<(String, u32)> = vec![("mixed".to_string(), 0)];
    let mut dir_count = 0u64;
    while let Some((dir, depth)) = stack.pop() {
        if tw.manifest.entries >= budget {
            break;
        }
        tw.dir(&format!("{dir}/"))?;
        dir_count += 1;
        let nfiles = rng.range(3, 20);
        let mut siblings: Vec<String> = Vec::new();
        for i in 0..nfiles {
            let roll = rng.next() % 1000;
            let name = format!("{dir}/n{i:02}");
            if roll < 65 && !siblings.is_empty() {
                let target = &siblings[(rng.next() as usize) % siblings.len()];
                let base = target.rsplit('/').next().unwrap_or(target);
                let link = if depth > 0 && rng.chance(300) {
                    // Into the parent directory (it exists: created earlier).
                    format!("../{}", dir.rsplit('/').next().unwrap_or("."))
                } else {
                    base.to_string()
                };
                tw.symlink(&format!("{name}.lnk"), &link)?;
            } else if roll < 90 && !files.is_empty() {
                let target = files[(rng.next() as usize) % files.len()].clone();
                tw.hardlink(&format!("{name}.hl"), &target)?;
            } else {
                let size = if rng.chance(5) {
                    rng.log_range(256 << 10, 2 << 20)
                } else {
                    rng.log_range(64, 32 << 10)
                };
                let exec = rng.chance(125);
                let (ext, data) = if rng.chance(100) {
                    (".bin", Content::random(rng.next(), size))
                } else {
                    (".c", Content::text(rng.next(), size))
                };
                let path = format!("{name}{ext}");
                tw.file(&path, if exec { 0o755 } else { 0o644 }, size, data)?;
                files.push(path.clone());
                siblings.push(path);
            }
        }
        let nsub = match depth {
            0 => 12,
            1 => rng.range(2, 8),
            2..=4 => rng.range(0, 4),
            5 => rng.range(0, 1),
            _ => 0,
        };
        for s in (0..nsub).rev() {
            stack.push((format!("{dir}/sub{s:02}"), depth + 1));
        }
    }
    let _ = dir_count;
    Ok(())
}

/// `tiny`: one file of 1 KiB.
fn gen_tiny<W: Write>(tw: &mut TarWriter<W>) -> io::Result<()> {
    tw.file("hello.txt", 0o644, 1024, Content::text(7, 1024))
}

/// A generated (or fetched) input, in the three compressions.
#[derive(Clone, Debug)]
struct Input {
    dir: PathBuf,
    stem: String,
    manifest: Manifest,
}

impl Input {
    fn path(&self, comp: Comp) -> PathBuf {
        self.dir.join(format!("{}{}", self.stem, comp.suffix()))
    }

    fn load(&self, comp: Comp) -> Vec<u8> {
        let path = self.path(comp);
        fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }
}

/// Returns the input for `case`, generating it (and its compressed forms) into
/// `dir` unless a complete copy is cached there.
fn input(dir: &Path, scale: &Scale, case: Case) -> Input {
    let stem = scale.tag(case);
    let manifest_path = dir.join(format!("{stem}.manifest"));
    let comps: &[Comp] = if case == Case::Tiny {
        &[Comp::Plain]
    } else {
        &Comp::ALL
    };
    let cached = fs::read_to_string(&manifest_path)
        .ok()
        .and_then(|t| Manifest::parse(&t));
    if let Some(manifest) = cached {
        if comps
            .iter()
            .all(|c| dir.join(format!("{stem}{}", c.suffix())).is_file())
        {
            return Input {
                dir: dir.into(),
                stem,
                manifest,
            };
        }
    }
    fs::create_dir_all(dir).expect("creating the inputs directory");
    let started = Instant::now();
    eprintln!("sandtar-bench: generating {stem} in {}", dir.display());
    let tar_path = dir.join(format!("{stem}.tar"));
    let tmp = tar_path.with_extension("tmp");
    let out = BufWriter::with_capacity(1 << 20, File::create(&tmp).expect("creating input"));
    let mut tw = TarWriter::new(out);
    match case {
        Case::Small => gen_small(&mut tw, scale.small_files),
        Case::Large => gen_large(&mut tw, scale.large_files, scale.large_bytes),
        Case::Mixed => gen_mixed(&mut tw, scale.mixed_entries),
        Case::Tiny => gen_tiny(&mut tw),
    }
    .expect("generating input");
    let mut manifest = tw.finish().expect("writing input");
    fs::rename(&tmp, &tar_path).expect("renaming input");
    manifest.tar_bytes = fs::metadata(&tar_path).expect("input metadata").len();
    for &comp in comps {
        compress(
            &tar_path,
            &dir.join(format!("{stem}{}", comp.suffix())),
            comp,
        );
    }
    fs::write(&manifest_path, manifest.to_text()).expect("writing manifest");
    eprintln!(
        "sandtar-bench: generated {stem} ({} entries, {} MiB of tar) in {:.1}s",
        manifest.entries,
        manifest.tar_bytes >> 20,
        started.elapsed().as_secs_f64()
    );
    Input {
        dir: dir.into(),
        stem,
        manifest,
    }
}

/// gzip at level 6 (gzip's default), zstd at level 3 (zstd's default).
fn compress(tar: &Path, out: &Path, comp: Comp) {
    if comp == Comp::Plain {
        return;
    }
    let tmp = out.with_extension("tmp");
    let mut src = BufReader::with_capacity(1 << 20, File::open(tar).expect("opening tar"));
    let dst = BufWriter::with_capacity(1 << 20, File::create(&tmp).expect("creating output"));
    match comp {
        Comp::Plain => unreachable!(),
        Comp::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(dst, flate2::Compression::new(6));
            io::copy(&mut src, &mut enc).expect("gzip");
            enc.finish().expect("gzip").flush().expect("gzip");
        }
        Comp::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(dst, 3).expect("zstd");
            io::copy(&mut src, &mut enc).expect("zstd");
            enc.finish().expect("zstd").flush().expect("zstd");
        }
    }
    fs::rename(&tmp, out).expect("renaming output");
}

/// The Linux source tree from `benches/fetch-linux.sh`, if it was fetched.
fn linux_input(dir: &Path) -> Option<Input> {
    let stem = "linux-source-6.1".to_string();
    let manifest =
        Manifest::parse(&fs::read_to_string(dir.join(format!("{stem}.manifest"))).ok()?)?;
    let input = Input {
        dir: dir.into(),
        stem,
        manifest,
    };
    Comp::ALL
        .iter()
        .all(|&c| input.path(c).is_file())
        .then_some(input)
}

/// Writes the manifest of a tar made elsewhere (used for the Linux tree): paths
/// are counted once, with the parent directories an archive may leave implicit.
fn manifest_of(tar_path: &Path) -> io::Result<Manifest> {
    let mut m = Manifest {
        tar_bytes: fs::metadata(tar_path)?.len(),
        ..Manifest::default()
    };
    let normalize = |p: &Path| -> PathBuf {
        p.components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .collect()
    };
    let mut archive = tar::Archive::new(BufReader::new(File::open(tar_path)?));
    let mut sizes: HashMap<PathBuf, u64> = HashMap::new();
    let mut paths = std::collections::HashSet::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let path = normalize(&entry.path()?);
        if path.as_os_str().is_empty() {
            continue;
        }
        for ancestor in path.ancestors().skip(1) {
            if !ancestor.as_os_str().is_empty() {
                paths.insert(ancestor.to_path_buf());
            }
        }
        paths.insert(path.clone());
        // A later entry for the same path replaces the earlier one.
        sizes.remove(&path);
        if kind.is_file() || kind.is_contiguous() {
            sizes.insert(path, entry.size());
        } else if kind.is_hard_link() {
            if let Some(target) = entry.link_name()? {
                let size = sizes.get(&normalize(&target)).copied().unwrap_or(0);
                sizes.insert(path, size);
            }
        }
    }
    m.entries = paths.len() as u64;
    m.walk_bytes = sizes.values().sum();
    m.file_bytes = m.walk_bytes;
    Ok(m)
}

/// Counts what an extraction produced: (entries below `root`, bytes in regular files).
fn walk(root: &Path) -> (u64, u64) {
    let mut entries = 0;
    let mut bytes = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("reading extracted tree") {
            let entry = entry.expect("reading extracted tree");
            let meta = entry.metadata().expect("stat");
            entries += 1;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                bytes += meta.len();
            }
        }
    }
    (entries, bytes)
}

// ---------------------------------------------------------------------------
// The three extractors
// ---------------------------------------------------------------------------

/// Runs a synchronous `Read` inside `poll_read`, as `async-compression` runs its
/// decoders: fine for in-memory sources and CPU-bound decoding.
struct Inline<R>(R);

impl<R: Read + Unpin> AsyncRead for Inline<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.0.read(buf.initialize_unfilled())?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

/// The decompressed stream, buffered (64 KiB) so that the tar parsers' small reads
/// (512-byte headers) do not each call into the decoder.
fn sync_reader<'a, R: Read + Send + 'a>(src: R, comp: Comp) -> Box<dyn Read + Send + 'a> {
    const BUF: usize = 64 << 10;
    match comp {
        Comp::Plain => Box::new(src),
        Comp::Gzip => Box::new(BufReader::with_capacity(
            BUF,
            flate2::read::GzDecoder::new(src),
        )),
        Comp::Zstd => Box::new(BufReader::with_capacity(
            BUF,
            zstd::stream::read::Decoder::new(src).expect("zstd decoder"),
        )),
    }
}

fn unpack_tar_crate(src: impl Read + Send, comp: Comp, dest: &Path) {
    tar::Archive::new(sync_reader(src, comp))
        .unpack(dest)
        .expect("tar crate: unpack");
}

async fn unpack_astral<R: AsyncRead + Unpin + Send>(src: R, dest: &Path) {
    tokio_tar::Archive::new(src)
        .unpack(dest)
        .await
        .expect("astral-tokio-tar: unpack");
}

async fn unpack_astral_from(data: &[u8], comp: Comp, dest: &Path) {
    match comp {
        Comp::Plain => unpack_astral(data, dest).await,
        _ => unpack_astral(Inline(sync_reader(data, comp)), dest).await,
    }
}

/// Decompresses `data` to nothing as sandtar's worker decodes it (`flate2`'s
/// `MultiGzDecoder` with zlib-rs, `zstd`'s streaming decoder, 256 KiB reads),
/// but in-process and on one thread; returns the decoded size.
fn decode_alone(data: &[u8], comp: Comp) -> u64 {
    let mut decoder: Box<dyn Read + '_> = match comp {
        Comp::Plain => Box::new(data),
        Comp::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(data)),
        Comp::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(data).expect("zstd decoder"))
        }
    };
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0;
    loop {
        match decoder.read(&mut buf).expect("decoding") {
            0 => return total,
            n => total += n as u64,
        }
    }
}

fn check_summary(summary: &sandtar::Summary, manifest: &Manifest, what: &str) {
    if summary.entries != manifest.entries || !summary.is_complete() {
        panic!(
            "sandtar did not extract {what} completely: expected {} entries, got {summary:?}",
            manifest.entries
        );
    }
}

/// One extraction of `data` into `dest` by `which`; returns how long it took.
fn extract_once(
    env: &Env,
    which: Impl,
    data: &[u8],
    comp: Comp,
    dest: &Path,
    manifest: &Manifest,
) -> Duration {
    match which {
        Impl::Sandtar => {
            let options = sandtar::Options::default();
            let started = Instant::now();
            let summary = env
                .rt
                .block_on(env.sandbox.extract(data, dest, &options))
                .expect("sandtar: extract");
            let elapsed = started.elapsed();
            check_summary(&summary, manifest, "the input");
            elapsed
        }
        Impl::TarCrate => {
            let started = Instant::now();
            unpack_tar_crate(data, comp, dest);
            started.elapsed()
        }
        Impl::Astral => {
            let started = Instant::now();
            env.rt.block_on(unpack_astral_from(data, comp, dest));
            started.elapsed()
        }
        Impl::Streamed(lead) => {
            let mut options = sandtar::Options::default();
            options.max_lead = lead;
            let started = Instant::now();
            let summary = env.rt.block_on(async {
                let mut job = env.sandbox.start(data, dest, &options).await?;
                while let Some(report) = job.next().await {
                    report?;
                }
                job.finish().await
            });
            let elapsed = started.elapsed();
            check_summary(&summary.expect("sandtar: streamed"), manifest, "the input");
            elapsed
        }
        Impl::Decode => {
            let started = Instant::now();
            let decoded = decode_alone(data, comp);
            let elapsed = started.elapsed();
            if manifest.tar_bytes > 0 {
                assert_eq!(decoded, manifest.tar_bytes, "decoded size");
            }
            elapsed
        }
    }
}

// ---------------------------------------------------------------------------
// Results kept for the summary table
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Record {
    /// Per-extraction times (throughput cases) or per-job latencies (tiny).
    times: Vec<Duration>,
    /// Jobs done and time spent, for jobs/s (tiny).
    jobs: u64,
    busy: Duration,
    /// Calls of the routine so far (the first one, criterion's warm-up, is not kept).
    calls: u64,
    entries: u64,
    bytes: u64,
}

static RESULTS: Mutex<BTreeMap<String, Record>> = Mutex::new(BTreeMap::new());

fn with_record<T>(id: &str, f: impl FnOnce(&mut Record) -> T) -> T {
    let mut results = RESULTS.lock().unwrap_or_else(|e| e.into_inner());
    f(results.entry(id.to_string()).or_default())
}

fn median(times: &mut [Duration]) -> Option<Duration> {
    percentile(times, 50.0)
}

fn percentile(times: &mut [Duration], p: f64) -> Option<Duration> {
    if times.is_empty() {
        return None;
    }
    times.sort();
    let rank = ((p / 100.0) * (times.len() as f64 - 1.0)).round() as usize;
    Some(times[rank.min(times.len() - 1)])
}

// ---------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------

struct Env {
    rt: Runtime,
    sandbox: sandtar::Sandbox,
    /// A second sandbox with 16 warm workers, for the concurrent tiny jobs.
    sandbox16: sandtar::Sandbox,
}

/// The (compression, destination, implementation) triples of a throughput case.
///
/// By default (a full run took under 15 minutes on 2 busy cores): everything on
/// tmpfs; on disk only `large` as plain tar (file creation on this machine's disk
/// costs about 0.5–1 ms for every implementation, GNU tar included, so the
/// metadata-heavy cases take tens of seconds per extraction there).
/// `SANDTAR_BENCH_FULL=1` runs every triple.
fn plan<'c>(cfg: &'c Config, case: &str) -> Vec<(Comp, &'c DestRoot, Impl)> {
    let mut out = Vec::new();
    // Decoding alone writes nothing: once per compressed input, with the first
    // destination's rows.
    let decode_dest = cfg.dest("tmpfs").or(cfg.dests.first()).map(|d| d.name);
    for dest in &cfg.dests {
        for comp in Comp::ALL {
            if comp != Comp::Plain && decode_dest == Some(dest.name) {
                out.push((comp, dest, Impl::Decode));
            }
            for which in Impl::ALL {
                let keep = cfg.full
                    || dest.name == "tmpfs"
                    || (comp == Comp::Plain && case.starts_with("large"));
                if keep {
                    out.push((comp, dest, which));
                }
            }
            if case.starts_with("small") && comp == Comp::Plain && dest.name == "tmpfs" {
                for lead in [None, Some(64), Some(1)] {
                    out.push((comp, dest, Impl::Streamed(lead)));
                }
            }
        }
    }
    out
}

fn throughput_case<F: FnOnce() -> Input>(
    c: &mut Criterion,
    cfg: &Config,
    env: &Env,
    group_name: &str,
    input: &Lazy<Input, F>,
    by_bytes: bool,
) {
    let id = |comp: Comp, dest: &DestRoot, which: Impl| {
        format!(
            "{group_name}/{}/{}/{}",
            which.name(),
            comp.name(),
            dest.name
        )
    };
    let plan: Vec<_> = plan(cfg, group_name)
        .into_iter()
        .filter(|&(comp, dest, which)| cfg.wanted(&id(comp, dest, which)))
        .collect();
    if plan.is_empty() {
        return;
    }
    let mut group = c.benchmark_group(group_name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(2))
        .sampling_mode(SamplingMode::Flat);
    let mut loaded: Option<(Comp, Vec<u8>)> = None;
    for (comp, dest, which) in plan {
        let id = id(comp, dest, which);
        {
            if cfg.list {
                group.bench_function(
                    BenchmarkId::new(which.name(), format!("{}/{}", comp.name(), dest.name)),
                    |b| b.iter(|| ()),
                );
                continue;
            }
            let input: &Input = input;
            if by_bytes {
                group.throughput(Throughput::Bytes(input.manifest.file_bytes));
            } else {
                group.throughput(Throughput::Elements(input.manifest.entries));
            }
            if loaded.as_ref().map(|(c, _)| *c) != Some(comp) {
                drop(loaded.take()); // free the previous input first
                loaded = Some((comp, input.load(comp)));
            }
            let data = &loaded.as_ref().expect("loaded").1;
            let manifest = input.manifest;
            with_record(&id, |r| {
                r.entries = manifest.entries;
                r.bytes = manifest.file_bytes;
            });
            let mut checked = false;
            group.bench_function(
                BenchmarkId::new(which.name(), format!("{}/{}", comp.name(), dest.name)),
                |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        let mut times = Vec::with_capacity(iters as usize);
                        for _ in 0..iters {
                            let dir = dest.fresh();
                            let t = extract_once(env, which, data, comp, &dir, &manifest);
                            total += t;
                            times.push(t);
                            if !checked && which != Impl::Decode {
                                let (entries, bytes) = walk(&dir);
                                assert_eq!(
                                    (entries, bytes),
                                    (manifest.entries, manifest.walk_bytes),
                                    "{id}: the extracted tree differs from the archive"
                                );
                                checked = true;
                            }
                            dest.remove(&[dir]);
                        }
                        with_record(&id, |r| {
                            if r.calls > 0 {
                                r.times.extend(times);
                            }
                            r.calls += 1;
                        });
                        total
                    })
                },
            );
        }
    }
    group.finish();
}

/// One-entry archives: one job after another (`seq`), and batches of 16 started
/// together (`conc16`, latency measured from the start of the batch).
fn tiny_case<F: FnOnce() -> Input>(
    c: &mut Criterion,
    cfg: &Config,
    env: &Env,
    group_name: &str,
    input: &Lazy<Input, F>,
) {
    const BATCH: usize = 16;
    let dests: Vec<&DestRoot> = cfg
        .dests
        .iter()
        .filter(|d| d.name == "tmpfs" || cfg.full || cfg.dests.len() == 1)
        .collect();
    let mut runs: Vec<(&'static str, &'static str, &DestRoot, String)> = Vec::new();
    for &dest in &dests {
        for mode in ["seq", "conc16"] {
            let mut who: Vec<&'static str> = Impl::ALL.iter().map(|i| i.name()).collect();
            if mode == "conc16" {
                who.insert(1, "sandtar-warm16");
            }
            for name in who {
                let id = format!("{group_name}/{name}/{mode}/{}", dest.name);
                if cfg.wanted(&id) {
                    runs.push((name, mode, dest, id));
                }
            }
        }
    }
    if runs.is_empty() {
        return;
    }
    let (data, manifest): (&'static [u8], Manifest) = if cfg.list {
        (&[], Manifest::default())
    } else {
        let data = Box::leak(input.load(Comp::Plain).into_boxed_slice());
        (data, input.manifest)
    };
    let mut group = c.benchmark_group(group_name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(2));
    for (name, mode, dest, id) in runs {
        let per_iter = if mode == "seq" { 1 } else { BATCH };
        group.throughput(Throughput::Elements(per_iter as u64));
        with_record(&id, |r| r.entries = 1);
        group.bench_function(
            BenchmarkId::new(name, format!("{mode}/{}", dest.name)),
            |b| {
                b.iter_custom(|iters| {
                    let dirs: Vec<PathBuf> = (0..iters as usize * per_iter)
                        .map(|_| dest.fresh())
                        .collect();
                    let mut latencies = Vec::with_capacity(dirs.len());
                    let mut total = Duration::ZERO;
                    for chunk in dirs.chunks(per_iter) {
                        let started = Instant::now();
                        if per_iter == 1 {
                            tiny_one(env, name, data, &chunk[0], &manifest);
                            latencies.push(started.elapsed());
                        } else {
                            latencies.extend(tiny_batch(env, name, data, chunk, &manifest));
                        }
                        total += started.elapsed();
                    }
                    // Spot check: the last job's file is there.
                    let last = dirs.last().expect("at least one job").join("hello.txt");
                    assert_eq!(
                        fs::metadata(&last).map(|m| m.len()).ok(),
                        Some(1024),
                        "{id}"
                    );
                    dest.remove(&dirs);
                    with_record(&id, |r| {
                        if r.calls > 0 {
                            r.times.extend(latencies);
                            r.jobs += iters * per_iter as u64;
                            r.busy += total;
                        }
                        r.calls += 1;
                    });
                    total
                })
            },
        );
    }
    group.finish();
}

fn tiny_one(env: &Env, name: &str, data: &'static [u8], dir: &Path, manifest: &Manifest) {
    match name {
        "sandtar" => {
            let s = env
                .rt
                .block_on(env.sandbox.extract(data, dir, &sandtar::Options::default()))
                .expect("sandtar: extract");
            check_summary(&s, manifest, "a tiny archive");
        }
        "tar-crate" => unpack_tar_crate(data, Comp::Plain, dir),
        "astral-tokio-tar" => env.rt.block_on(unpack_astral(data, dir)),
        other => unreachable!("{other}"),
    }
}

/// Starts one job per directory at once; returns each job's latency from the start.
fn tiny_batch(
    env: &Env,
    name: &str,
    data: &'static [u8],
    dirs: &[PathBuf],
    manifest: &Manifest,
) -> Vec<Duration> {
    let manifest = *manifest;
    env.rt.block_on(async {
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for dir in dirs {
            let dir = dir.clone();
            match name {
                "sandtar" | "sandtar-warm16" => {
                    let sandbox = if name == "sandtar" {
                        env.sandbox.clone()
                    } else {
                        env.sandbox16.clone()
                    };
                    set.spawn(async move {
                        let s = sandbox
                            .extract(data, &dir, &sandtar::Options::default())
                            .await
                            .expect("sandtar: extract");
                        check_summary(&s, &manifest, "a tiny archive");
                        started.elapsed()
                    });
                }
                "tar-crate" => {
                    set.spawn_blocking(move || {
                        unpack_tar_crate(data, Comp::Plain, &dir);
                        started.elapsed()
                    });
                }
                "astral-tokio-tar" => {
                    set.spawn(async move {
                        unpack_astral(data, &dir).await;
                        started.elapsed()
                    });
                }
                other => unreachable!("{other}"),
            }
        }
        let mut out = Vec::with_capacity(dirs.len());
        while let Some(r) = set.join_next().await {
            out.push(r.expect("job panicked"));
        }
        out
    })
}

// ---------------------------------------------------------------------------
// Memory: peak RSS of the worker and of the caller, large case
// ---------------------------------------------------------------------------

fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Returns free heap pages to the kernel (so that what a job allocates shows up as
/// RSS growth instead of reusing pages an earlier job left resident), then resets
/// this process's peak RSS (`VmHWM`) to its current RSS; returns that RSS.
fn reset_caller_peak() -> Option<u64> {
    // SAFETY: malloc_trim has no preconditions; it only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
    fs::write("/proc/self/clear_refs", "5").ok()?;
    status_kib("self", "VmRSS:")
}

/// Samples the worker's `VmHWM` every 2 ms until `stop`; returns the last value
/// (the high-water mark only grows, so the last sample is the largest).
fn watch_worker(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Option<u64>> {
    std::thread::spawn(move || {
        let pid = pid.to_string();
        let mut last = None;
        while !stop.load(Ordering::Relaxed) {
            match status_kib(&pid, "VmHWM:") {
                Some(v) => last = Some(v),
                None if last.is_some() => break, // exited (zombie status has no VmHWM)
                None => {}
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        last
    })
}

struct MemRow {
    id: String,
    worker_hwm: Option<u64>,
    caller_hwm: Option<u64>,
    caller_growth: Option<u64>,
    elapsed: Duration,
}

static MEMORY: Mutex<Vec<MemRow>> = Mutex::new(Vec::new());

/// One extraction per implementation and compression, streaming the archive from
/// its file (so the caller does not hold the input in memory).
fn memory_case<F: FnOnce() -> Input>(cfg: &Config, env: &Env, case: &str, input: &Lazy<Input, F>) {
    let dest = match cfg.dest("tmpfs").or(cfg.dests.first()) {
        Some(d) => d,
        None => return,
    };
    for comp in Comp::ALL {
        for which in Impl::ALL {
            let id = format!("memory/{case}/{}/{}", which.name(), comp.name());
            if !cfg.wanted(&id) || cfg.list {
                continue;
            }
            let input: &Input = input;
            let path = input.path(comp);
            let dir = dest.fresh();
            let before = reset_caller_peak();
            let mut worker_hwm = None;
            let started = Instant::now();
            match which {
                Impl::Sandtar => env.rt.block_on(async {
                    let file = tokio::fs::File::open(&path).await.expect("opening input");
                    let job = env
                        .sandbox
                        .start(file, &dir, &sandtar::Options::default())
                        .await
                        .expect("sandtar: start");
                    let stop = Arc::new(AtomicBool::new(false));
                    let watcher = watch_worker(job.worker_pid(), stop.clone());
                    let summary = job.finish().await.expect("sandtar: extract");
                    stop.store(true, Ordering::Relaxed);
                    worker_hwm = watcher.join().expect("watcher");
                    check_summary(&summary, &input.manifest, "the large input");
                }),
                Impl::TarCrate => {
                    let file = BufReader::new(File::open(&path).expect("opening input"));
                    unpack_tar_crate(file, comp, &dir);
                }
                Impl::Decode | Impl::Streamed(_) => {}
                Impl::Astral => env.rt.block_on(async {
                    match comp {
                        Comp::Plain => {
                            let file = tokio::fs::File::open(&path).await.expect("opening input");
                            unpack_astral(file, &dir).await
                        }
                        _ => {
                            let file = BufReader::new(File::open(&path).expect("opening input"));
                            unpack_astral(Inline(sync_reader(file, comp)), &dir).await
                        }
                    }
                }),
            }
            let elapsed = started.elapsed();
            let caller_hwm = status_kib("self", "VmHWM:");
            dest.remove(&[dir]);
            let row = MemRow {
                caller_growth: before.zip(caller_hwm).map(|(b, h)| h.saturating_sub(b)),
                id,
                worker_hwm,
                caller_hwm,
                elapsed,
            };
            eprintln!(
                "{}: worker peak {} KiB, caller peak {} KiB (+{} KiB during the job), {:.2}s",
                row.id,
                row.worker_hwm.map_or("-".into(), |v| v.to_string()),
                row.caller_hwm.map_or("-".into(), |v| v.to_string()),
                row.caller_growth.map_or("-".into(), |v| v.to_string()),
                row.elapsed.as_secs_f64()
            );
            MEMORY.lock().unwrap_or_else(|e| e.into_inner()).push(row);
        }
    }
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

fn fmt_dur(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.2} s")
    } else if s >= 1e-3 {
        format!("{:.1} ms", s * 1e3)
    } else {
        format!("{:.0} µs", s * 1e6)
    }
}

fn report(cfg: &Config) -> String {
    let mut results = RESULTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = String::new();
    let any_throughput = results
        .keys()
        .any(|id| !id.starts_with("tiny") && id.split('/').count() == 4);
    if any_throughput {
        let _ = writeln!(
            out,
            "## Throughput (median per extraction; ratio = sandtar time / baseline time, >1 means sandtar is slower)\n"
        );
        let _ = writeln!(
            out,
            "| case | input | dest | sandtar | tar crate | astral-tokio-tar | decoding alone | sandtar/tar | sandtar/astral | sandtar/decoding | sandtar rate | n |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    }
    // Group ids "case/impl/comp/dest" by (case, comp, dest).
    // (case, input, dest) -> implementation -> (median, runs, entries, bytes)
    type Row = HashMap<String, (Duration, usize, u64, u64)>;
    let mut rows: BTreeMap<(String, String, String), Row> = BTreeMap::new();
    for (id, r) in results.iter_mut() {
        let parts: Vec<&str> = id.split('/').collect();
        if parts.len() != 4 || parts[0].starts_with("tiny") {
            continue;
        }
        let n = r.times.len();
        if let Some(m) = median(&mut r.times) {
            rows.entry((parts[0].into(), parts[2].into(), parts[3].into()))
                .or_default()
                .insert(parts[1].into(), (m, n, r.entries, r.bytes));
        }
    }
    let case_order = |c: &str| {
        ["small", "mixed", "large", "linux"]
            .iter()
            .position(|x| *x == c.trim_end_matches("-quick"))
    };
    let mut keys: Vec<_> = rows.keys().cloned().collect();
    keys.sort_by_key(|(case, comp, dest)| {
        (
            case_order(case),
            dest.clone(),
            Comp::ALL.iter().position(|c| c.name() == comp),
        )
    });
    for key in keys {
        let row = &rows[&key];
        let get = |name: &str| row.get(name).map(|v| v.0);
        let cell = |name: &str| get(name).map_or("–".into(), fmt_dur);
        let ratio = |base: &str| match (get("sandtar"), get(base)) {
            (Some(s), Some(b)) => format!("{:.2}", s.as_secs_f64() / b.as_secs_f64()),
            _ => "–".into(),
        };
        let rate = row
            .get("sandtar")
            .map_or("–".into(), |&(m, _, entries, bytes)| {
                if key.0.starts_with("large") {
                    format!(
                        "{:.0} MiB/s",
                        bytes as f64 / (1 << 20) as f64 / m.as_secs_f64()
                    )
                } else {
                    format!("{:.0} entries/s", entries as f64 / m.as_secs_f64())
                }
            });
        let n = row.values().map(|v| v.1).min().unwrap_or(0);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            key.0,
            key.1,
            key.2,
            cell("sandtar"),
            cell("tar-crate"),
            cell("astral-tokio-tar"),
            cell("decoding-alone"),
            ratio("tar-crate"),
            ratio("astral-tokio-tar"),
            ratio("decoding-alone"),
            rate,
            n
        );
    }
    let leads: Vec<_> = ["sandtar-streamed", "sandtar-lead-64", "sandtar-lead-1"]
        .iter()
        .filter_map(|name| {
            let (id, r) = results
                .iter_mut()
                .find(|(id, _)| id.split('/').nth(1) == Some(*name))?;
            let n = r.times.len();
            Some((id.clone(), median(&mut r.times)?, n))
        })
        .collect();
    if !leads.is_empty() {
        let _ = writeln!(
            out,
            "\n## Bounded lead (every report taken with `Job::next`; ratio to unbounded)\n"
        );
        let _ = writeln!(out, "| id | median | ratio | n |");
        let _ = writeln!(out, "|---|---|---|---|");
        let base = leads[0].1.as_secs_f64();
        for (id, m, n) in &leads {
            let ratio = m.as_secs_f64() / base;
            let _ = writeln!(out, "| {id} | {} | {ratio:.2} | {n} |", fmt_dur(*m));
        }
    }
    let tiny: Vec<_> = results
        .iter_mut()
        .filter(|(id, _)| id.starts_with("tiny"))
        .collect();
    if !tiny.is_empty() {
        let _ = writeln!(
            out,
            "\n## Tiny jobs (one 1 KiB file per archive; latency from the call to the result)\n"
        );
        let _ = writeln!(out, "| id | jobs/s | p50 | p99 | jobs |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for (id, r) in tiny {
            let jobs_s = if r.busy.is_zero() {
                0.0
            } else {
                r.jobs as f64 / r.busy.as_secs_f64()
            };
            let p50 = percentile(&mut r.times, 50.0).map_or("–".into(), fmt_dur);
            let p99 = percentile(&mut r.times, 99.0).map_or("–".into(), fmt_dur);
            let _ = writeln!(out, "| {id} | {jobs_s:.0} | {p50} | {p99} | {} |", r.jobs);
        }
    }
    let memory = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    if !memory.is_empty() {
        let _ = writeln!(
            out,
            "\n## Peak memory, one extraction streamed from a file to {} (KiB)\n",
            cfg.dest("tmpfs")
                .or(cfg.dests.first())
                .map_or("-", |d| d.name)
        );
        let _ = writeln!(
            out,
            "| id | worker VmHWM | caller VmHWM | caller growth during the job | time |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for row in memory.iter() {
            let opt = |v: Option<u64>| v.map_or("–".into(), |v| v.to_string());
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                row.id,
                opt(row.worker_hwm),
                opt(row.caller_hwm),
                opt(row.caller_growth),
                fmt_dur(row.elapsed)
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------

fn main() {
    let cfg = Config::from_env();
    let scale = Scale::of(&cfg);

    // Only write the inputs (for benches/gnu-tar.sh), then stop.
    if let Some(dir) = std::env::var_os("SANDTAR_BENCH_WRITE_INPUTS").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        for case in [Case::Small, Case::Mixed, Case::Large, Case::Tiny] {
            let input = input(&cfg.inputs, &scale, case);
            fs::create_dir_all(&dir).expect("creating the output directory");
            let comps: &[Comp] = if case == Case::Tiny {
                &[Comp::Plain]
            } else {
                &Comp::ALL
            };
            for &comp in comps {
                let to = dir.join(format!("{}{}", case.name(), comp.suffix()));
                let _ = fs::remove_file(&to);
                if fs::hard_link(input.path(comp), &to).is_err() {
                    fs::copy(input.path(comp), &to).expect("copying an input");
                }
            }
            fs::write(
                dir.join(format!("{}.manifest", case.name())),
                input.manifest.to_text(),
            )
            .expect("writing a manifest");
        }
        if let Some(linux) = linux_input(&cfg.linux_dir) {
            eprintln!(
                "sandtar-bench: the linux input stays in {}",
                linux.dir.display()
            );
        }
        println!("{}", dir.display());
        return;
    }
    // Used by benches/fetch-linux.sh: write the manifest of a tar made elsewhere.
    if let Some(tar) = std::env::var_os("SANDTAR_BENCH_MANIFEST_OF").filter(|v| !v.is_empty()) {
        let tar = PathBuf::from(tar);
        let m = manifest_of(&tar).expect("reading the tar");
        let out = tar.with_extension("manifest");
        fs::write(&out, m.to_text()).expect("writing the manifest");
        println!("{}: {m:?}", out.display());
        return;
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // `SANDTAR_BENCH_RUNG=landlock` holds both sandboxes to that rung (the
    // default takes the strongest one this host allows).
    let rung = match std::env::var("SANDTAR_BENCH_RUNG").as_deref() {
        Ok("landlock") => Some(sandtar::Rung::Landlock),
        Ok("namespaces") => Some(sandtar::Rung::Namespaces),
        Ok("") | Err(_) => None,
        Ok(other) => panic!("SANDTAR_BENCH_RUNG={other}: namespaces or landlock"),
    };
    let (sandbox, sandbox16) = rt.block_on(async {
        let build = |warm: u32| {
            let builder = sandtar::Sandbox::builder().warm_workers(warm);
            let builder = match rung {
                Some(rung) => builder.only_rung(rung),
                None => builder,
            };
            builder.build()
        };
        let a = build(2).await.expect("sandtar sandbox");
        let b = build(16).await.expect("sandtar sandbox (16 warm workers)");
        (a, b)
    });
    eprintln!(
        "sandtar-bench: sandbox mode {:?}; destinations {}; scale {}",
        sandbox.mode(),
        cfg.dests
            .iter()
            .map(|d| format!("{}={}", d.name, d.root.display()))
            .collect::<Vec<_>>()
            .join(", "),
        if cfg.quick { "quick" } else { "full-size" }
    );
    let env = Env {
        rt,
        sandbox,
        sandbox16,
    };
    let mut c = Criterion::default().configure_from_args();
    // Quick-scale results get their own ids, so that criterion never compares them
    // with full-scale ones.
    let group = |case: &str| {
        if cfg.quick {
            format!("{case}-quick")
        } else {
            case.to_string()
        }
    };

    let tiny = Lazy::new(|| input(&cfg.inputs, &scale, Case::Tiny));
    tiny_case(&mut c, &cfg, &env, &group("tiny"), &tiny);
    let small = Lazy::new(|| input(&cfg.inputs, &scale, Case::Small));
    throughput_case(&mut c, &cfg, &env, &group("small"), &small, false);
    let mixed = Lazy::new(|| input(&cfg.inputs, &scale, Case::Mixed));
    throughput_case(&mut c, &cfg, &env, &group("mixed"), &mixed, false);
    let large = Lazy::new(|| input(&cfg.inputs, &scale, Case::Large));
    throughput_case(&mut c, &cfg, &env, &group("large"), &large, true);
    memory_case(&cfg, &env, "large", &large);
    if let Some(linux) = linux_input(&cfg.linux_dir) {
        let linux = Lazy::new(move || linux);
        throughput_case(&mut c, &cfg, &env, &group("linux"), &linux, false);
    }

    c.final_summary();
    if cfg.list {
        return;
    }
    let table = report(&cfg);
    if !table.trim().is_empty() {
        let _ = fs::create_dir_all(&cfg.report_dir);
        let path = cfg.report_dir.join("results.md");
        let _ = fs::write(&path, &table);
        println!("\n{table}\n(written to {})", path.display());
    }
    for dest in &cfg.dests {
        if dest.name == "tmpfs" {
            let _ = fs::remove_dir(&dest.root);
        }
    }
}
