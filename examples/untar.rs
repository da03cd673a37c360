//! `untar`: extract a tar archive into a directory, inside a sandtar sandbox.
//!
//! ```text
//! cargo run --release --example untar                        # the built-in sample
//! cargo run --release --example untar -- site.tar.zst /srv/site
//! curl -s https://example.com/x.tgz | untar --json - out/
//! ```
//!
//! Run `untar --help` for the options. Exit status: 0 when every entry was
//! written, 1 when the archive was read to its end but some entries were skipped,
//! rejected or failed, 2 on a fatal error (bad usage, unreadable or malformed
//! archive, a limit exceeded, confinement unavailable).

use std::io::{IsTerminal, Write};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sandtar::{
    Compression, EntryKind, EntryReport, Limits, Options, Outcome, Overwrite, Sandbox, SandboxMode,
    SubordinateIds, Summary, WhiteoutFormat,
};
use serde_json::json;
use tokio::io::AsyncRead;

/// The archive extracted when `untar` is run without arguments.
const SAMPLE: &[u8] = include_bytes!("sample/sample.tar.gz");

/// Extract a tar archive inside a confined worker process.
///
/// The archive is decompressed, parsed and written by a separate process whose
/// root directory is DEST (a new mount namespace and pivot_root, plus a user
/// namespace when not run as root), so no entry can reach outside DEST: not
/// through `..`, absolute names, symlinks or hard links.
///
/// Without arguments, extracts a small built-in sample into a new temporary
/// directory and shows where each entry went.
#[derive(Parser, Debug)]
#[command(
    name = "untar",
    version,
    after_help = "\
Compression is recognised by its magic bytes (gzip, zstd, xz, bzip2, lz4 or none)
unless --compression says otherwise.

Without --full-fidelity the safe defaults apply, for archives from strangers:
files are owned by you, setuid/setgid/sticky and group/other write bits are
dropped (mode & 0755), device nodes are skipped, only user.* xattrs are kept.
Either way the archive is held to sandtar's default limits (number of entries,
entry and total size, name length and depth, compression ratio) unless
--no-limits is given.

Exit status:
  0  every entry was written
  1  the archive was read to its end, but some entries were skipped, rejected
     or failed (each one is listed on stderr, or in the --json output)
  2  fatal error: bad usage, unreadable or malformed archive, a limit
     exceeded, destination unusable, or no confinement possible (needs root
     or user namespaces)

Examples:
  untar                                 extract the built-in sample
  untar site.tar.zst /srv/site          extract a file into /srv/site
  curl -sL URL | untar --json - out     read stdin, one JSON object per entry"
)]
struct Cli {
    /// The archive to extract; `-` reads standard input. Without it, the
    /// built-in sample is extracted into a new temporary directory.
    #[arg(value_name = "ARCHIVE|-")]
    archive: Option<PathBuf>,

    /// The directory to extract into (created if missing) [default: .]
    #[arg(value_name = "DEST")]
    dest: Option<PathBuf>,

    /// Keep what the archive records: owners, device nodes, the setuid, setgid
    /// and sticky bits, xattrs (all but trusted.*). For trusted archives, as root.
    #[arg(long)]
    full_fidelity: bool,

    /// Not root: map your subordinate ids (/etc/subuid, /etc/subgid) with
    /// newuidmap/newgidmap, so that owners from the archive are kept (with
    /// --full-fidelity or --layer). Fails if they are not available.
    #[arg(long)]
    subordinate_ids: bool,

    /// Print one JSON object per line for each entry, then one for the summary.
    #[arg(long)]
    json: bool,

    /// Confine on this rung only: `namespaces` (fail where they cannot be
    /// had) or `landlock` (try what a container without namespaces gets).
    /// Default: the strongest rung the host offers.
    #[arg(long, value_enum, value_name = "RUNG")]
    only_rung: Option<RungArg>,

    /// List each confinement wall this host allows (user, mount and PID
    /// namespaces, Landlock, seccomp, capabilities) and why, then start a
    /// sandbox and say how it is confined; extract nothing.
    #[arg(long, conflicts_with_all = ["archive", "json"])]
    doctor: bool,

    /// The archive's compression, instead of recognising it.
    #[arg(long, value_enum, default_value_t = CompressionArg::Auto, value_name = "FORMAT")]
    compression: CompressionArg,

    /// Do not set modification times from the archive (files get the current time).
    #[arg(long)]
    no_mtime: bool,

    /// Lift the limits on entry count, sizes, name length and depth, and
    /// compression ratio (for archives you trust).
    #[arg(long)]
    no_limits: bool,

    /// Apply the archive as an image layer onto DEST: OCI whiteouts (.wh.NAME,
    /// .wh..wh..opq) are applied, everything else as with --full-fidelity, and
    /// the layer's diff_id (SHA-256 of the uncompressed tar) is printed.
    #[arg(long)]
    layer: bool,

    /// With --layer: write whiteouts for an overlay filesystem's upper
    /// directory (0:0 character devices, overlay.opaque attributes) instead.
    #[arg(long, requires = "layer")]
    overlay: bool,

    /// With --layer: fail unless the layer's diff_id is this (sha256:<hex>).
    #[arg(long, requires = "layer", value_name = "DIGEST")]
    diff_id: Option<String>,

    /// Stop after this many entries [default: 1000000].
    #[arg(long, value_name = "N")]
    max_entries: Option<u64>,

    /// Stop when the entries' sizes add up to more than this many bytes
    /// [default: 32 GiB].
    #[arg(long, value_name = "BYTES")]
    max_total_size: Option<u64>,

    /// Stop at an entry larger than this many bytes [default: 8 GiB].
    #[arg(long, value_name = "BYTES")]
    max_entry_size: Option<u64>,

    /// Parse the archive in the sandbox and list its entries and what would
    /// happen to each, without writing anything (DEST is not needed).
    #[arg(long)]
    list: bool,

    /// Drop this many leading components from every name (and hard-link
    /// target) before writing; entries with no name left are skipped.
    #[arg(long, value_name = "N", default_value_t = 0)]
    strip_components: u32,

    /// Write only entries at or below a name matching PATTERN (after
    /// --strip-components; shell-style, `*` also matches `/`). Repeatable.
    #[arg(long, value_name = "PATTERN")]
    include: Vec<String>,

    /// Skip entries matching PATTERN, and what is below them: without `/`,
    /// matched against each name component (`*.o`, `.git`); with `/`, against
    /// the name from its start. Repeatable; wins over --include.
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,

    /// Flush DEST's filesystem to its disk (syncfs) before reporting
    /// success: what was written survives a crash.
    #[arg(long)]
    sync: bool,

    /// Keep files that exist in DEST and skip their entries (GNU tar's
    /// --skip-old-files).
    #[arg(long, conflicts_with = "keep_old_files")]
    skip_old_files: bool,

    /// Fail the entries whose names exist in DEST and go on (GNU tar's
    /// --keep-old-files).
    #[arg(short = 'k', long)]
    keep_old_files: bool,

    /// Write only entries of this kind. Repeatable.
    #[arg(long, value_enum, value_name = "KIND")]
    kind: Vec<KindArg>,

    /// No progress bar and no summary; only errors (and --json lines).
    #[arg(short, long)]
    quiet: bool,

    /// List every entry, not only those that were not written.
    #[arg(short, long, conflicts_with = "json")]
    verbose: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum KindArg {
    File,
    Directory,
    Symlink,
    Hardlink,
    Fifo,
    CharDevice,
    BlockDevice,
}

impl From<KindArg> for EntryKind {
    fn from(kind: KindArg) -> EntryKind {
        match kind {
            KindArg::File => EntryKind::File,
            KindArg::Directory => EntryKind::Directory,
            KindArg::Symlink => EntryKind::Symlink,
            KindArg::Hardlink => EntryKind::HardLink,
            KindArg::Fifo => EntryKind::Fifo,
            KindArg::CharDevice => EntryKind::CharDevice,
            KindArg::BlockDevice => EntryKind::BlockDevice,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RungArg {
    Namespaces,
    Landlock,
}

impl From<RungArg> for sandtar::Rung {
    fn from(rung: RungArg) -> Self {
        match rung {
            RungArg::Namespaces => sandtar::Rung::Namespaces,
            RungArg::Landlock => sandtar::Rung::Landlock,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum CompressionArg {
    Auto,
    None,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
    Lz4,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Self {
        match c {
            CompressionArg::Auto => Compression::Auto,
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::Xz => Compression::Xz,
            CompressionArg::Bzip2 => Compression::Bzip2,
            CompressionArg::Lz4 => Compression::Lz4,
        }
    }
}

/// A fatal error: printed as one line, exit status 2.
struct Fatal(String);

impl From<sandtar::Error> for Fatal {
    fn from(e: sandtar::Error) -> Self {
        match e {
            sandtar::Error::LimitExceeded { .. } => {
                Fatal(format!("{e} (untar: --no-limits lifts every limit)"))
            }
            e => Fatal(e.to_string()),
        }
    }
}

/// Text from the archive (names, and parser messages that quote header bytes)
/// made safe for a terminal: control characters, bidirectional overrides and
/// line separators are escaped, so a hostile name cannot break lines, send
/// escape sequences or reorder what is shown.
fn printable(text: &str) -> String {
    sandtar::printable(text).into_owned()
}

/// A JSON line with every character unsafe to show written as `\uXXXX`:
/// `serde_json` escapes only C0 controls, and DEL, C1 controls (U+009B starts
/// an escape sequence on some terminals) or bidirectional overrides inside a
/// string would reach whoever reads the output raw. Outside strings JSON holds
/// none of them, so the whole line can be rewritten.
fn json_line(value: &serde_json::Value) -> String {
    let mut out = String::new();
    for c in value.to_string().chars() {
        if sandtar::is_unsafe_to_show(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An entry's name for human output.
fn shown(path: &Path) -> String {
    printable(&path.to_string_lossy())
}

/// How the run went, when it was not fatal.
enum Done {
    Complete,
    Incomplete,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            fatal(Fatal(format!("cannot start the tokio runtime: {e}")));
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(run(cli));
    let _ = std::io::stdout().flush();
    let code = match result {
        Ok(Done::Complete) => 0,
        Ok(Done::Incomplete) => 1,
        Err(e) => {
            fatal(e);
            2
        }
    };
    // Exit without waiting for the runtime: a read from standard input may still
    // be parked on a blocking thread after a fatal error.
    std::process::exit(code)
}

fn fatal(Fatal(message): Fatal) {
    eprintln!("untar: {}", printable(&message));
}

async fn run(cli: Cli) -> Result<Done, Fatal> {
    if cli.doctor {
        return doctor().await;
    }
    let mut options = if cli.layer {
        Options::layer()
    } else if cli.full_fidelity {
        Options::full_fidelity()
    } else {
        Options::default()
    };
    if cli.overlay {
        options.whiteouts = Some(WhiteoutFormat::Overlay);
    }
    options.expected_diff_id = cli.diff_id.clone();
    options.list_only = cli.list;
    options.compression = cli.compression.into();
    if cli.no_mtime {
        options.preserve_mtime = false;
    }
    if cli.no_limits {
        options.limits = Limits::unlimited();
    }
    if let Some(n) = cli.max_entries {
        options.limits.max_entries = n;
    }
    if let Some(n) = cli.max_total_size {
        options.limits.max_total_size = n;
    }
    if let Some(n) = cli.max_entry_size {
        options.limits.max_entry_size = n;
    }
    if cli.skip_old_files {
        options.overwrite = Overwrite::Keep;
    }
    if cli.keep_old_files {
        options.overwrite = Overwrite::Refuse;
    }
    options.sync = cli.sync;
    options.select.strip_components = cli.strip_components;
    options.select.include = cli.include.clone();
    options.select.exclude = cli.exclude.clone();
    options.select.kinds = cli.kind.iter().map(|&k| k.into()).collect();

    let Some(archive) = cli.archive.clone() else {
        return sample(&cli, &options).await;
    };
    // Open the archive first, so that a typo costs neither a directory nor a sandbox.
    let reader: Box<dyn AsyncRead + Unpin> = if archive.as_os_str() == "-" {
        if std::io::stdin().is_terminal() {
            return Err(Fatal(
                "refusing to read an archive from a terminal (pipe one in, or name a file)".into(),
            ));
        }
        Box::new(tokio::io::stdin())
    } else {
        let file = tokio::fs::File::open(&archive)
            .await
            .map_err(|e| Fatal(format!("cannot open {}: {e}", archive.display())))?;
        Box::new(file)
    };
    // Listing still parses in a sandbox, confined to an empty scratch directory.
    let scratch = match cli.list {
        true => Some(
            tempfile::tempdir()
                .map_err(|e| Fatal(format!("cannot create a temporary directory: {e}")))?,
        ),
        false => None,
    };
    let dest = match &scratch {
        Some(dir) => dir.path().to_path_buf(),
        None => cli.dest.clone().unwrap_or_else(|| PathBuf::from(".")),
    };
    if !dest.exists() {
        std::fs::create_dir_all(&dest)
            .map_err(|e| Fatal(format!("cannot create {}: {e}", dest.display())))?;
    }
    let sandbox = start_sandbox(&cli).await?;
    let size = std::fs::metadata(&archive)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let summary = extract(&cli, &sandbox, reader, &dest, &options, size).await?;
    if cli.json {
        print_json_summary(&summary, &dest, sandbox.mode());
    } else if !cli.quiet {
        print_summary(&summary, &dest);
    }
    Ok(outcome(&summary))
}

/// No arguments: extract the built-in sample into a new temporary directory,
/// kept so that it can be looked at, and say where everything went.
async fn sample(cli: &Cli, options: &Options) -> Result<Done, Fatal> {
    let dir = tempfile::Builder::new()
        .prefix("untar-sample-")
        .tempdir()
        .map_err(|e| Fatal(format!("cannot create a temporary directory: {e}")))?;
    let dest = dir.keep();
    let sandbox = start_sandbox(cli).await?;
    if !cli.json {
        println!(
            "No archive given: extracting the built-in sample ({} bytes, gzip)",
            SAMPLE.len()
        );
        println!("into {}", shown(&dest));
        println!("confined {}.", describe_mode(sandbox.mode()));
        println!();
    }
    let mut job = sandbox.start(SAMPLE, &dest, options).await?;
    while let Some(report) = job.next().await {
        let report = report?;
        if cli.json {
            print_json_entry(&report);
        } else {
            let size = match report.kind {
                sandtar::EntryKind::File => format!("{} B", report.size),
                _ => String::new(),
            };
            let whither = match &report.outcome {
                Outcome::Written => format!("-> {}", shown(&target_of(&dest, &report.path))),
                other => format!(
                    "not written: {}",
                    printable(&other.reason().unwrap_or_default())
                ),
            };
            println!(
                "  {:<8} {:<9} {:>6}  {:<28} {}",
                report.outcome.name(),
                report.kind.name(),
                size,
                shown(&report.path),
                whither
            );
        }
    }
    let summary = job.finish().await?;
    if cli.json {
        print_json_summary(&summary, &dest, sandbox.mode());
    } else {
        println!();
        print_summary(&summary, &dest);
        println!();
        println!("Have a look:  ls -lR {}", shown(&dest));
        println!("Clean up:     rm -r {}", shown(&dest));
        println!("Your own:     untar [OPTIONS] ARCHIVE|- [DEST]   (see untar --help)");
    }
    Ok(outcome(&summary))
}

async fn start_sandbox(cli: &Cli) -> Result<Sandbox, Fatal> {
    let subids = match cli.subordinate_ids {
        true => SubordinateIds::Required,
        false => SubordinateIds::Never,
    };
    let mut builder = Sandbox::builder().warm_workers(1).subordinate_ids(subids);
    if let Some(rung) = cli.only_rung {
        builder = builder.only_rung(rung.into());
    }
    let sandbox = builder.build().await?;
    if cli.full_fidelity && !sandbox.mode().can_keep_owners() {
        eprintln!(
            "untar: note: not running as root, so owners from the archive are not kept \
             and device nodes are skipped"
        );
    }
    Ok(sandbox)
}

/// Extracts one archive, printing each entry as it is handled.
async fn extract<R: AsyncRead + Unpin>(
    cli: &Cli,
    sandbox: &Sandbox,
    reader: R,
    dest: &Path,
    options: &Options,
    size: Option<u64>,
) -> Result<Summary, Fatal> {
    let mut job = sandbox.start(reader, dest, options).await?;
    let progress = progress_bar(cli, size);
    let mut entries = 0u64;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        // `Job::next` is cancel-safe: the tick only refreshes the byte count
        // while a large file is being written.
        let report = tokio::select! {
            report = job.next() => report,
            _ = tick.tick() => {
                progress.set_position(job.bytes_read());
                continue;
            }
        };
        let Some(report) = report else { break };
        let report = report?;
        entries += 1;
        progress.set_position(job.bytes_read());
        progress.set_message(format!("{entries} entries"));
        if cli.json {
            print_json_entry(&report);
        } else if cli.list {
            progress.suspend(|| {
                println!(
                    "{:<8} {:<12} {:>10}  {}{}",
                    report.outcome.name(),
                    report.kind.name(),
                    report.size,
                    shown(&report.path),
                    report
                        .outcome
                        .reason()
                        .map(|r| format!("  ({})", printable(&r)))
                        .unwrap_or_default()
                )
            });
        } else if report.outcome != Outcome::Written && !left_out(&report.outcome) {
            progress.suspend(|| {
                eprintln!(
                    "untar: {}: {} ({}): {}",
                    shown(&report.path),
                    report.outcome.name(),
                    report.kind.name(),
                    printable(&report.outcome.reason().unwrap_or_default())
                )
            });
        } else if cli.verbose {
            progress.suspend(|| println!("{}", shown(&report.path)));
        }
        if !cli.json && !report.notes.is_empty() {
            // Read as GNU tar reads it (--full-fidelity): where readers differ.
            let notes: Vec<String> = report.notes.iter().map(|n| n.to_string()).collect();
            progress.suspend(|| {
                eprintln!("untar: {}: note: {}", shown(&report.path), notes.join("; "))
            });
        }
    }
    let result = job.finish().await;
    progress.finish_and_clear();
    Ok(result?)
}

/// A progress bar on standard error when it is a terminal (hidden otherwise, and
/// with --json or --quiet): bytes read (of the file's size when known),
/// entries, throughput, elapsed time.
fn progress_bar(cli: &Cli, size: Option<u64>) -> ProgressBar {
    if cli.json || cli.quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let (bar, template) = match size {
        Some(len) => (
            ProgressBar::new(len),
            "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        ),
        None => (
            ProgressBar::no_length(),
            "{elapsed_precise} {spinner} {bytes} {bytes_per_sec} {msg}",
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}

/// Left out by --include, --exclude, --kind or --strip-components: what was
/// asked for, not a problem to print.
fn left_out(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Skipped(reason) if reason.is_selection())
}

fn outcome(summary: &Summary) -> Done {
    if summary.is_complete() {
        Done::Complete
    } else {
        Done::Incomplete
    }
}

/// Where an entry named `name` lands under `dest`: leading `/` and `.`
/// components dropped, as the extractor does.
fn target_of(dest: &Path, name: &Path) -> PathBuf {
    let mut target = dest.to_path_buf();
    for component in name.components() {
        if let Component::Normal(part) = component {
            target.push(part);
        }
    }
    target
}

/// `--doctor`: the walls, then the real probe.
async fn doctor() -> Result<Done, Fatal> {
    for check in sandtar::diagnose() {
        let yes = if check.available { "yes" } else { "no" };
        println!("{:32} {yes:3}  {}", check.wall, printable(&check.detail));
    }
    match Sandbox::new().await {
        Ok(sandbox) => {
            let mode = sandbox.mode();
            println!(
                "\nsandbox: confined {} (the {} rung)",
                describe_mode(mode),
                mode.rung()
            );
            Ok(Done::Complete)
        }
        Err(e) => Err(Fatal(format!("sandbox: {e}"))),
    }
}

fn describe_mode(mode: SandboxMode) -> String {
    match mode {
        SandboxMode::Privileged => "as root, in a new mount namespace".into(),
        SandboxMode::UserNamespace { uid, gid } => {
            format!("in a new user and mount namespace (uid {uid}, gid {gid} are root inside it)")
        }
        SandboxMode::SubordinateIds {
            uid,
            gid,
            uids,
            gids,
        } => format!(
            "in a new user and mount namespace (uid {uid}, gid {gid} are root inside it; \
             {} subordinate uids and {} gids mapped after them)",
            uids - 1,
            gids - 1
        ),
        SandboxMode::Landlock {
            uid,
            abi,
            chroot: true,
            ..
        } => format!(
            "by chroot and Landlock (ABI {abi}) in the destination, no namespaces (uid {uid})"
        ),
        SandboxMode::Landlock { uid, abi, .. } => format!(
            "by Landlock (ABI {abi}) in the destination, no namespaces, no chroot (uid {uid})"
        ),
        other => format!("{other:?}"),
    }
}

fn mode_name(mode: SandboxMode) -> &'static str {
    match mode {
        SandboxMode::Privileged => "privileged",
        SandboxMode::UserNamespace { .. } => "user-namespace",
        SandboxMode::SubordinateIds { .. } => "subordinate-ids",
        SandboxMode::Landlock { chroot: true, .. } => "landlock",
        SandboxMode::Landlock { .. } => "landlock-no-chroot",
        _ => "other",
    }
}

fn print_summary(s: &Summary, dest: &Path) {
    if s.listed > 0 {
        println!(
            "{} entries: {} would be written, {} skipped, {} rejected (nothing written)",
            s.entries, s.listed, s.skipped, s.rejected
        );
        return;
    }
    println!(
        "{} entries: {} written, {} skipped, {} rejected, {} failed",
        s.entries, s.written, s.skipped, s.rejected, s.failed
    );
    println!(
        "{} bytes of file data written to {} in {} ms (confined on the {} rung)",
        s.bytes_written,
        shown(dest),
        s.elapsed.as_millis(),
        s.rung
    );
    if let Some(diff_id) = &s.diff_id {
        println!("layer size {} bytes, diff_id {diff_id}", s.layer_size);
    }
    if s.compression == Compression::None {
        println!("(read {} bytes of plain tar)", s.tar_bytes);
    } else {
        println!(
            "(read {} bytes of {}, {} bytes of tar)",
            s.archive_bytes,
            s.compression.name(),
            s.tar_bytes
        );
    }
}

/// One entry as the library serializes it (`reason` a code, `message` in
/// words), control characters escaped.
fn print_json_entry(report: &EntryReport) {
    let line = serde_json::to_value(report).unwrap_or_default();
    println!("{}", json_line(&line));
}

/// The summary as the library serializes it, with where and how.
fn print_json_summary(s: &Summary, dest: &Path, mode: SandboxMode) {
    let mut line = serde_json::to_value(s).unwrap_or_default();
    line["dest"] = json!(dest.to_string_lossy());
    line["sandbox"] = json!(mode_name(mode));
    println!("{}", json_line(&line));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every class of character that could act on a terminal, in a name.
    const HOSTILE: &str =
        "a\u{1b}[2J\u{7f}\u{9b}31m\u{9d}0;x\u{7}\u{202e}hs.txt\u{2028}\u{2066}b\n";

    #[test]
    fn human_output_shows_no_control_character() {
        let shown = printable(HOSTILE);
        assert!(!shown.chars().any(sandtar::is_unsafe_to_show), "{shown:?}");
        assert!(shown.contains("\\u{202e}") && shown.contains("\\u{9b}"));
    }

    #[test]
    fn json_output_shows_no_control_character_and_still_parses() {
        let line = json_line(&json!({ "path": HOSTILE }));
        assert!(!line.chars().any(sandtar::is_unsafe_to_show), "{line:?}");
        assert!(line.contains("\\u202e") && line.contains("\\u009b") && line.contains("\\u007f"));
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["path"], HOSTILE);
    }
}
