//! Packing a tree: sandtar's `Sandbox::pack_into` (a worker confined to the
//! source, read-only, writing the archive to the file itself) and
//! `Sandbox::pack` (the archive streamed to the caller, who writes it to the
//! file) against GNU tar `c` and the `tar` crate's `Builder` (in-process,
//! unconfined), in one interleaved run, plain and zstd, to files on tmpfs.
//!
//! ```text
//! cargo bench --bench pack                    # the small tree (generated)
//! SANDTAR_BENCH_TREE=/path/to/tree cargo bench --bench pack
//! ```
//!
//! Prints the median of `SANDTAR_BENCH_RUNS` (default 5) runs of each and the
//! ratios of `pack_into` ("into") and `pack` ("streamed") to GNU tar, and of
//! `pack_into` to the tar crate; "paired": the median of the rounds' own
//! into/GNU ratios. Plain timing (no
//! criterion): whole runs of seconds, medians and ratios.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sandtar::{Compression, PackOptions, Sandbox};

/// What is timed.
#[derive(Clone, Copy, Debug)]
enum Impl {
    SandtarInto,
    Sandtar,
    GnuTar,
    TarCrate,
}

fn main() {
    // The zygote re-executes this binary: let it in before anything else.
    let runs: usize = std::env::var("SANDTAR_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let scratch = PathBuf::from(std::env::var("SANDTAR_BENCH_TMPFS").unwrap_or("/dev/shm".into()))
        .join(format!("sandtar-pack-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let (tree, name) = match std::env::var_os("SANDTAR_BENCH_TREE") {
        Some(tree) => (PathBuf::from(tree), "tree"),
        None => (small_tree(&scratch.join("small")), "small"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sandbox = rt.block_on(Sandbox::new()).expect("sandbox");
    println!("| case | compression | sandtar into | sandtar streamed | GNU tar | tar crate | into/GNU (paired) | streamed/GNU | into/tar crate | runs |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for compression in [Compression::None, Compression::Zstd] {
        let mut times: Vec<(Impl, Vec<Duration>)> = [
            Impl::SandtarInto,
            Impl::Sandtar,
            Impl::GnuTar,
            Impl::TarCrate,
        ]
        .into_iter()
        .map(|i| (i, Vec::new()))
        .collect();
        for run in 0..=runs {
            for (which, spent) in times.iter_mut() {
                let out = scratch.join("out.tar");
                let started = Instant::now();
                match which {
                    Impl::SandtarInto => rt.block_on(pack_into(&sandbox, &tree, &out, compression)),
                    Impl::Sandtar => rt.block_on(pack_sandtar(&sandbox, &tree, &out, compression)),
                    Impl::GnuTar => pack_gnu(&tree, &out, compression),
                    Impl::TarCrate => pack_tar_crate(&tree, &out, compression),
                }
                // The first round warms the page cache.
                if run > 0 {
                    spent.push(started.elapsed());
                }
                std::fs::remove_file(&out).unwrap();
            }
        }
        // Within each round: the machine's moods hit both alike.
        let paired = median(
            times[0]
                .1
                .iter()
                .zip(&times[2].1)
                .map(|(into, gnu)| into.as_secs_f64() / gnu.as_secs_f64())
                .collect(),
        );
        let m: Vec<f64> = times
            .iter_mut()
            .map(|(_, t)| {
                t.sort();
                t[t.len() / 2].as_secs_f64()
            })
            .collect();
        println!(
            "| {name} | {} | {:.3} s | {:.3} s | {:.3} s | {:.3} s | {:.2} ({paired:.2}) | {:.2} | {:.2} | {runs} |",
            compression.name(),
            m[0],
            m[1],
            m[2],
            m[3],
            m[0] / m[2],
            m[1] / m[2],
            m[0] / m[3]
        );
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn pack_into(sandbox: &Sandbox, tree: &Path, out: &Path, compression: Compression) {
    let mut options = PackOptions::default();
    options.compression = compression;
    let file = File::create(out).unwrap();
    let mut pack = sandbox
        .pack_into(tree, &options, file)
        .await
        .expect("pack_into");
    while pack.next().await.is_some() {}
    let summary = pack.finish().await.expect("summary");
    assert!(summary.is_complete(), "{summary:?}");
}

async fn pack_sandtar(sandbox: &Sandbox, tree: &Path, out: &Path, compression: Compression) {
    let mut options = PackOptions::default();
    options.compression = compression;
    let mut pack = sandbox.pack(tree, &options).await.expect("pack");
    // Written in the task, as GNU tar and the tar crate write: large
    // writes to a file on tmpfs (tokio's File would hand each one to a
    // blocking thread).
    let mut file = File::create(out).unwrap();
    let mut buffer = vec![0u8; 256 << 10];
    loop {
        let n = tokio::io::AsyncReadExt::read(&mut pack, &mut buffer)
            .await
            .expect("archive");
        if n == 0 {
            break;
        }
        file.write_all(&buffer[..n]).unwrap();
    }
    let summary = pack.finish().await.expect("summary");
    assert!(summary.is_complete(), "{summary:?}");
}

fn pack_gnu(tree: &Path, out: &Path, compression: Compression) {
    let mut cmd = Command::new("tar");
    cmd.arg("-C").arg(tree).arg("-cf").arg(out);
    if compression == Compression::Zstd {
        cmd.arg("--zstd");
    }
    let status = cmd.arg(".").status().expect("GNU tar");
    assert!(status.success());
}

fn pack_tar_crate(tree: &Path, out: &Path, compression: Compression) {
    let file = BufWriter::with_capacity(256 << 10, File::create(out).unwrap());
    match compression {
        Compression::Zstd => {
            let zstd = zstd::stream::write::Encoder::new(file, 3).unwrap();
            let mut builder = tar::Builder::new(zstd);
            builder.follow_symlinks(false);
            builder.append_dir_all(".", tree).unwrap();
            builder
                .into_inner()
                .unwrap()
                .finish()
                .unwrap()
                .flush()
                .unwrap();
        }
        _ => {
            let mut builder = tar::Builder::new(file);
            builder.follow_symlinks(false);
            builder.append_dir_all(".", tree).unwrap();
            builder.into_inner().unwrap().flush().unwrap();
        }
    }
}

/// 100 directories of 1,000 files of 1 KiB.
fn small_tree(root: &Path) -> PathBuf {
    let data = vec![b'x'; 1024];
    for d in 0..100 {
        let dir = root.join(format!("d{d:02}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            std::fs::write(dir.join(format!("f{f:04}")), &data).unwrap();
        }
    }
    root.to_path_buf()
}
