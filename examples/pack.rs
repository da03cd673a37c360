//! `pack`: pack a directory into a tar archive, inside a sandtar sandbox
//! confined to that directory, read-only (`untar`'s sibling).
//!
//! ```text
//! cargo run --release --example pack -- /srv/site site.tar.zst --zstd
//! pack --reproducible 1700000000 --exclude .git src/ - | sha256sum
//! pack --json build/ out.tar.gz --gzip
//! pack --ignore-file ctx/.dockerignore ctx/ - --zstd
//! pack --xattrs rootfs/ rootfs.tar          # with file capabilities and ACLs
//! ```
//!
//! Exit status: 0 when every entry was packed, 1 when the archive is complete
//! but some entries were skipped or could not be read, 2 on a fatal error.

use std::io::IsTerminal;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sandtar::{
    printable, Compression, EntryReport, Error, Outcome, Pack, PackInto, PackOptions, PackOwners,
    Sandbox, Summary, XattrPolicy,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Pack a directory into a tar archive inside a confined worker process.
///
/// The worker's root is SOURCE, mounted read-only (or held to it by Landlock,
/// read-only): no symlink, hard link or concurrent rename in SOURCE can make
/// it read anything outside. Names are sorted, relative to SOURCE.
#[derive(Parser, Debug)]
#[command(name = "pack", version)]
struct Cli {
    /// The directory to pack.
    source: PathBuf,
    /// Where the archive goes (`-`: standard output).
    out: PathBuf,
    /// Compress with gzip in the worker.
    #[arg(short = 'z', long, conflicts_with = "zstd")]
    gzip: bool,
    /// Compress with zstd in the worker.
    #[arg(long)]
    zstd: bool,
    /// Leave out names matching this shell pattern (and what is below them);
    /// a pattern without `/` is tried on every component. Repeatable.
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Pack only names at or below a match of this pattern. Repeatable.
    #[arg(long, value_name = "PATTERN")]
    include: Vec<String>,
    /// Leave out what the `.dockerignore`-syntax rules in FILE leave out
    /// (`!` re-includes; the last matching rule decides), as Docker does a
    /// build context's; e.g. `--ignore-file SOURCE/.dockerignore`.
    #[arg(long, value_name = "FILE")]
    ignore_file: Option<PathBuf>,
    /// Put every entry under this name (`NAME/...`).
    #[arg(long, value_name = "NAME")]
    prefix: Option<String>,
    /// Record owners as 0:0.
    #[arg(long)]
    owner_root: bool,
    /// Record extended attributes, as GNU tar's --xattrs: `all` (the
    /// default) is user.* (but user.overlay.*), file capabilities and POSIX
    /// ACLs; `user` is user.* only. Without it, none.
    #[arg(long, value_enum, value_name = "WHICH", num_args = 0..=1, require_equals = true, default_missing_value = "all")]
    xattrs: Option<XattrsArg>,
    /// Byte-identical archives for identical trees: owners 0:0, times after
    /// EPOCH recorded as EPOCH (default: $SOURCE_DATE_EPOCH).
    #[arg(long, value_name = "EPOCH", num_args = 0..=1, default_missing_value = "env")]
    reproducible: Option<String>,
    /// One JSON object per entry on standard error, then the summary.
    #[arg(long)]
    json: bool,
    /// No progress bar, no summary.
    #[arg(short, long)]
    quiet: bool,
}

/// The attributes `--xattrs` records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum XattrsArg {
    User,
    All,
}

fn options(cli: &Cli) -> Result<PackOptions, String> {
    let mut options = match &cli.reproducible {
        None => PackOptions::default(),
        Some(epoch) => {
            let epoch = match epoch.as_str() {
                "env" => std::env::var("SOURCE_DATE_EPOCH")
                    .map_err(|_| "--reproducible without EPOCH needs SOURCE_DATE_EPOCH")?,
                other => other.to_string(),
            };
            let epoch = epoch
                .parse()
                .map_err(|_| "the reproducible epoch is not a number of seconds")?;
            PackOptions::reproducible(epoch)
        }
    };
    options.compression = match (cli.gzip, cli.zstd) {
        (true, _) => Compression::Gzip,
        (_, true) => Compression::Zstd,
        _ => Compression::None,
    };
    options.select.exclude = cli.exclude.clone();
    options.select.include = cli.include.clone();
    if let Some(file) = &cli.ignore_file {
        let rules = std::fs::read_to_string(file)
            .map_err(|e| format!("{}: {e}", printable(&file.display().to_string())))?;
        options.ignore = rules.lines().map(String::from).collect();
    }
    options.prefix = cli.prefix.clone();
    if cli.owner_root {
        options.owners = PackOwners::Root;
    }
    options.xattrs = match cli.xattrs {
        None => XattrPolicy::None,
        Some(XattrsArg::User) => XattrPolicy::User,
        Some(XattrsArg::All) => XattrPolicy::All,
    };
    Ok(options)
}

async fn run(cli: Cli) -> Result<bool, String> {
    let options = options(&cli)?;
    let sandbox = Sandbox::new().await.map_err(|e| e.to_string())?;
    let bar = progress_bar(&cli);
    // A file, or standard output when it is a file or a pipe: the worker
    // writes the archive there itself. Anything else (a terminal, a
    // socket) is streamed through this process.
    let out: OwnedFd = match cli.out.to_str() {
        Some("-") => std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| format!("standard output: {e}"))?,
        _ => std::fs::File::create(&cli.out)
            .map_err(|e| format!("{}: {e}", printable(&cli.out.display().to_string())))?
            .into(),
    };
    let (complete, summary) = match sandbox.pack_into(&cli.source, &options, out).await {
        Ok(pack) => written_by_the_worker(pack, &cli, &bar).await?,
        Err(Error::InvalidOption { option: "out", .. }) => {
            let pack = sandbox.pack(&cli.source, &options).await;
            streamed(pack.map_err(|e| e.to_string())?, &cli, &bar).await?
        }
        Err(e) => return Err(e.to_string()),
    };
    bar.finish_and_clear();
    if cli.json {
        eprintln!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else if !cli.quiet {
        // A pipe's bytes are not counted by this side (the worker wrote them).
        let size = match summary.archive_bytes {
            0 => "to a pipe".to_string(),
            n => format!("{n} bytes"),
        };
        eprintln!(
            "pack: {} entries, {size} ({} uncompressed), {}, {:?}",
            summary.written,
            summary.tar_bytes,
            summary.diff_id.as_deref().unwrap_or("-"),
            summary.elapsed
        );
    }
    Ok(complete)
}

/// Packing into the output directly: only the reports come here.
async fn written_by_the_worker(
    mut pack: PackInto,
    cli: &Cli,
    bar: &ProgressBar,
) -> Result<(bool, Summary), String> {
    let mut complete = true;
    while let Some(report) = pack.next().await {
        bar.inc(report.size);
        complete &= show(&report, cli, bar);
    }
    let summary = pack.finish().await.map_err(|e| e.to_string())?;
    Ok((complete, summary))
}

/// Packing through this process, to standard output.
async fn streamed(mut pack: Pack, cli: &Cli, bar: &ProgressBar) -> Result<(bool, Summary), String> {
    let mut out = tokio::io::stdout();
    let mut buffer = vec![0u8; 256 << 10];
    let mut complete = true;
    loop {
        let n = pack.read(&mut buffer).await.map_err(|e| e.to_string())?;
        for report in pack.reports() {
            complete &= show(&report, cli, bar);
        }
        if n == 0 {
            break;
        }
        out.write_all(&buffer[..n])
            .await
            .map_err(|e| format!("writing the archive: {e}"))?;
        bar.inc(n as u64);
    }
    out.flush().await.map_err(|e| e.to_string())?;
    let summary = pack.finish().await.map_err(|e| e.to_string())?;
    Ok((complete, summary))
}

/// Prints `report` as asked; whether the entry was packed.
fn show(report: &EntryReport, cli: &Cli, bar: &ProgressBar) -> bool {
    if cli.json {
        let line = serde_json::to_string(report).unwrap_or_default();
        bar.suspend(|| eprintln!("{line}"));
    } else if report.outcome != Outcome::Written {
        let why = printable(&report.outcome.reason().unwrap_or_default()).into_owned();
        bar.suspend(|| eprintln!("pack: {}: {why}", report.shown_path()));
    }
    report.outcome == Outcome::Written
}

fn progress_bar(cli: &Cli) -> ProgressBar {
    if cli.json || cli.quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} {spinner} {bytes} {bytes_per_sec}")
    {
        bar.set_style(style);
    }
    bar
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pack: cannot start the tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pack: {}", printable(&e));
            ExitCode::from(2)
        }
    }
}
