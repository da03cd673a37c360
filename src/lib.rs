//! Extract untrusted tar archives from async Rust, inside a confined worker process.
//!
//! An archive from a stranger can name `../../etc/passwd`, plant a symlink and
//! then write through it, hard-link to a file outside, or race you with another
//! process that renames directories while you extract. sandtar does not try to
//! out-think those with path checks. Each extraction runs in a separate worker
//! process whose root directory *is* the destination (a new mount namespace,
//! a clone of the destination's mount as its root, and a user namespace when
//! not root), so the kernel resolves
//! every name, symlink and `..` inside it. The worker then drops the
//! capabilities its job does not need, sets `PR_SET_NO_NEW_PRIVS`, and installs
//! a seccomp allow-list (no `execve`, `socket`, `mount`, `ptrace`, ...).
//! Decompression (gzip, zstd, xz, bzip2, lz4) and tar parsing also run in the worker,
//! so a bug in a decoder is confined the same way.
//!
//! # The model
//!
//! ```text
//! your process (multi-threaded, tokio)             zygote: your binary re-executed,
//!                                                  caught before main, single-threaded
//! Sandbox::new() ──────── starts it, once ───────▶ ┌───────────────────────────────┐
//!                ◀─ warm workers (pidfd, socket) ─ │ forks workers ahead of demand │
//!                                                  └───────────────┬───────────────┘
//!                                                                  │ clone3(CLONE_NEWNS|NEWPID)
//!                                                                  ▼
//! sandbox.start(reader, dest, &options)            ┌───────────────────────────────┐
//!   dest's descriptor ──────── SCM_RIGHTS ───────▶ │ worker: one job, then exits   │
//!   AsyncRead ─────────────── archive bytes ─────▶ │ its root: a clone of dest     │
//!   Stream<EntryReport> ◀──── reports ──────────── │ decode ▶ parse tar ▶ write    │
//!   job.finish(): Summary ◀── summary or error ─── │ spare capabilities dropped,   │
//!                                                  │ no_new_privs, seccomp         │
//!                                                  └───────────────────────────────┘
//! ```
//!
//! A [`Sandbox`] starts a helper process, the *zygote*, once; the zygote forks
//! workers ahead of demand, and each worker has done its set-up before a job
//! arrives. [`Sandbox::start`] opens the destination, hands its descriptor to a
//! warm worker, and returns once the worker is confined to it; the archive bytes
//! then stream to the worker and one [`EntryReport`] per entry streams back.
//! A worker serves one job: it is killed as soon as the job's result is in
//! (whatever it said) and reaped before the job ends, so nothing changes in the
//! destination afterwards; dropping a [`Job`] kills it too.
//!
//! # A first example
//!
//! ```no_run
//! use sandtar::{Options, Sandbox};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Once per process (or per service); cheap to clone and share.
//!     let sandbox = Sandbox::new().await?;
//!
//!     let archive = tokio::fs::File::open("upload.tar.gz").await?;
//!     std::fs::create_dir_all("/srv/unpacked")?;
//!     let summary = sandbox
//!         .extract(archive, "/srv/unpacked", &Options::default())
//!         .await?;
//!     println!(
//!         "{} entries: {} written, {} skipped, {} rejected, {} failed",
//!         summary.entries, summary.written, summary.skipped, summary.rejected, summary.failed
//!     );
//!     Ok(())
//! }
//! ```
//!
//! The reader can be anything that implements [`tokio::io::AsyncRead`] and
//! `Unpin`: a file, a socket, a request body, `&[u8]`. The compression is
//! recognised by its magic bytes. The destination directory must exist.
//!
//! # Presets
//!
//! [`Options::default()`] is for archives from strangers (it follows Python's
//! `tarfile` "data" filter): files belong to the user who extracts them; modes
//! lose the setuid, setgid and sticky bits and the group and other write bits
//! (`mode & 0o755`, see [`ModePolicy::Safe`]); device nodes are skipped; FIFOs
//! are created; only `user.*` extended attributes are applied; modification
//! times are kept.
//!
//! [`Options::full_fidelity()`] is for trusted input such as image layers,
//! extracted as root: owners from the archive, device nodes, every mode bit,
//! extended attributes by an allow-list including `security.capability` and
//! ACLs (never `trusted.*`, see [`XattrPolicy::All`]). Extracted as root, its result matches what GNU
//! tar produces as root. Owners can be shifted by ranges on the way, for
//! example for a user-namespaced container, with [`Options::id_map`] (an
//! [`IdMap`]). Without root
//! (see [`SandboxMode::UserNamespace`]), owners cannot be kept and device
//! nodes are skipped with [`SkipReason::DevicesNotPermitted`] (on the
//! Landlock rung too, where symlinks also keep the worker's owner and the
//! time they were made); with
//! subordinate ids ([`SandboxBuilder::subordinate_ids`],
//! [`SandboxMode::SubordinateIds`]) owners within the caller's ranges are kept.
//!
//! Both presets hold the archive to the same finite [`Limits`]: number of
//! entries, size of one entry and of all of them, extension header size, name
//! length and depth, compression ratio, and the worker's CPU time. The first
//! limit exceeded stops the
//! job with [`Error::LimitExceeded`]. [`Limits::unlimited()`] lifts them all,
//! for archives you made.
//!
//! Every field of [`Options`] is public; start from a preset and change what
//! you need:
//!
//! ```
//! let mut options = sandtar::Options::default();
//! options.preserve_mtime = false;
//! options.compression = sandtar::Compression::Zstd; // do not sniff
//! options.limits.max_total_size = 1 << 30; // 1 GiB of file data at most
//! ```
//!
//! # Seeing each entry as it is handled
//!
//! [`Sandbox::start`] returns a [`Job`], which is a
//! [`Stream`](futures_core::Stream) of `Result<EntryReport>` in archive order,
//! and [`Job::finish`] returns the [`Summary`]. Reports arrive while the
//! archive streams in. Memory stays bounded whether you read them or not, and
//! [`Job::finish`] alone drains them. One exception to "one report per entry,
//! in archive order": a directory whose mode, owner or time could not be set at
//! the end gets a second report, [`Outcome::Failed`], after the last entry
//! (see [`EntryReport`]).
//!
//! ```no_run
//! # async fn demo(sandbox: &sandtar::Sandbox) -> sandtar::Result<()> {
//! use sandtar::{Options, Outcome};
//!
//! let archive: &[u8] = b""; // any tokio::io::AsyncRead + Unpin
//! let mut job = sandbox.start(archive, "/srv/unpacked", &Options::default()).await?;
//! while let Some(report) = job.next().await {
//!     let report = report?; // an error ends the stream; finish() returns it too
//!     match &report.outcome {
//!         Outcome::Written => {}
//!         other => eprintln!(
//!             "{}: {} ({})",
//!             report.shown_path(), // escaped: the archive chose the name
//!             other.name(),
//!             other.reason().unwrap_or_default()
//!         ),
//!     }
//! }
//! let summary = job.finish().await?;
//! if !summary.is_complete() {
//!     eprintln!("{} of {} entries were not written", summary.entries - summary.written, summary.entries);
//! }
//! # Ok(()) }
//! ```
//!
//! Problems with one entry are not errors. A name with a `..` component is
//! [`Outcome::Rejected`]; a device node the options do not allow is
//! [`Outcome::Skipped`]; a hard link whose target is missing is
//! [`Outcome::Failed`]. Extraction goes on after each of them. Leading `/` is
//! stripped from names, as GNU tar does. Check [`Summary::is_complete`], or the
//! counts, to know whether everything was written.
//!
//! # Errors and what to do about them
//!
//! An [`Error`] ends the job. Entries handled before it may already be in the
//! destination (complete, their directories with their modes and times; a file
//! cut short by the end of the archive or a full disk is removed): extract into
//! a new directory and move it into place once the job succeeded, if a partial
//! tree must never be seen.
//!
//! | Error | Meaning | What to do |
//! |---|---|---|
//! | [`Error::ConfinementUnavailable`] | neither root nor user namespaces are available | run as root, or enable unprivileged user namespaces (see the variant's docs); sandtar never extracts unconfined |
//! | [`Error::Zygote`] | the helper process could not start | `/proc` must be mounted and the executable runnable again through `/proc/self/exe` |
//! | [`Error::Destination`] | missing, not a directory, not accessible, read-only | fix the path; nothing was extracted |
//! | [`Error::DestinationChanged`] | the directory was replaced while the worker set up | someone renamed or mounted over it; retry if that was expected |
//! | [`Error::Read`] | your reader failed | as for any I/O error |
//! | [`Error::NotTar`] | the input is not a tar archive: [`NotTar`] says what it is (zip, 7-Zip, RAR, ar, cpio, an unknown compression, empty, or no tar header) | reject the upload; nothing was written |
//! | [`Error::MalformedArchive`] | the tar stream or its compression is corrupt or truncated | reject the upload; `offset` says where |
//! | [`Error::UnmappedId`] | an owner in the archive is outside [`Options::id_map`] | extend the map, or reject the archive |
//! | [`Error::LimitExceeded`] | the archive is larger, deeper or more compressed than [`Options::limits`] allow | reject it, or raise that limit if you trust the archive |
//! | [`Error::DigestMismatch`] | the archive's digest is not [`Options::expected_digest`] ([`DigestKind::Blob`], computed by the caller) or its `diff_id` not [`Options::expected_diff_id`] ([`DigestKind::DiffId`], computed by the worker) | discard the tree (it was applied); the archive is not the one you meant |
//! | [`Error::InvalidOption`] | an option's value cannot be used (a digest that is not a SHA-256 digest) | fix the option; nothing was started |
//! | [`Error::Write`] | the filesystem is full, read-only, or failing | free space, then retry |
//! | [`Error::WorkerDied`], [`Error::Protocol`], [`Error::Worker`] | the worker crashed or misbehaved | a bug or a hostile archive; the worker is gone and your process is unharmed; please report it |
//! | [`Error::Io`] | talking to the worker failed locally | descriptor limits (`ulimit -n`), or the runtime the call runs on is shutting down |
//!
//! # Image layers
//!
//! [`Sandbox::apply_layer`] with [`Options::layer()`] applies an OCI or Docker
//! layer onto an existing tree, in the same confinement: whiteouts remove what
//! they name (never following a symlink), opaque directories lose what lower
//! layers put there, and the [`Summary`] carries the layer's size and `diff_id`.
//! [`WhiteoutFormat::Overlay`] writes overlayfs whiteouts instead.
//!
//! Check a layer against its manifest with [`Options::expected_digest`], the
//! blob digest (of the bytes as downloaded, compressed or not): the caller
//! computes it from the bytes it sends to the worker, so no archive can forge
//! it. [`Options::expected_diff_id`] is checked too, but the `diff_id` is
//! computed by the worker, which decodes the archive: it catches a wrong or
//! corrupt layer, not a hostile one that took over the decoder.
//!
//! ```no_run
//! # async fn demo(sandbox: sandtar::Sandbox) -> sandtar::Result<()> {
//! let mut options = sandtar::Options::layer();
//! // From the image manifest's layer descriptor.
//! options.expected_digest = Some("sha256:...".into());
//! let blob = tokio::fs::File::open("blob").await.map_err(|e| sandtar::Error::Read(e.into()))?;
//! let summary = sandbox.apply_layer(blob, "/var/lib/rootfs", &options).await?;
//! println!("{} {:?}", summary.digest.unwrap_or_default(), summary.diff_id);
//! # Ok(()) }
//! ```
//!
//! # Observability
//!
//! sandtar emits [`tracing`](https://docs.rs/tracing) spans and events: a
//! `sandtar_job` span per job (id, destination, worker pid), an `info` event with
//! the outcome counts, bytes and duration when it ends (`warn` when it fails),
//! `trace` events per entry, and `debug`/`warn` events about the zygote. Nothing
//! is printed unless you install a subscriber.
//!
//! # Platform requirements
//!
//! - Linux 5.9 or later on x86_64 or aarch64, with glibc. sandtar uses
//!   `open_tree` and `move_mount` (5.2), `clone3` with `CLONE_PIDFD` (5.3),
//!   `waitid(P_PIDFD)` (5.4) and `close_range` (5.9); the namespace rung
//!   also `mount_setattr` (5.12), the Landlock rung Landlock (5.13).
//! - Either root (`CAP_SYS_ADMIN`; [`SandboxMode::Privileged`]) or unprivileged
//!   user namespaces ([`SandboxMode::UserNamespace`], or
//!   [`SandboxMode::SubordinateIds`] with `newuidmap`/`newgidmap` and ranges in
//!   `/etc/subuid` and `/etc/subgid`): the namespace [`Rung`]. Where namespaces
//!   are refused (root in a default Docker, Podman or Kubernetes container,
//!   whose seccomp profile forbids them; an ordinary user where user
//!   namespaces are disabled or restricted, as on Ubuntu 24.04), a kernel
//!   with Landlock: the Landlock rung ([`SandboxMode::Landlock`]), with
//!   `chroot` where the process holds `CAP_SYS_CHROOT`.
//!   Check with [`Sandbox::mode`] and [`SandboxMode::rung`]; pin a rung with
//!   [`SandboxBuilder::minimum_rung`]. Where neither works, see
//!   [`Error::ConfinementUnavailable`].
//! - `/proc` mounted, and a tokio runtime with the I/O driver enabled
//!   (`#[tokio::main]` has it).
//!
//! # How the worker is started
//!
//! Your process is multi-threaded, so it must not fork workers itself: a child
//! forked from a multi-threaded process may only run async-signal-safe code,
//! and `unshare(CLONE_NEWUSER)` fails in a multi-threaded process. So
//! [`Sandbox::new`] starts a clean, single-threaded copy of your program: it
//! re-executes `/proc/self/exe` with a control socket as standard input and an
//! empty environment but for `SANDTAR_ZYGOTE` (set to your process's pid) and,
//! if you have it, `LD_LIBRARY_PATH`: nothing else of your environment reaches
//! the zygote or the workers.
//!
//! sandtar puts a function in the executable's `.init_array`. The dynamic loader
//! runs it before `main` in every process of that executable; it returns at once
//! unless `SANDTAR_ZYGOTE` is set *and* standard input is a `SOCK_SEQPACKET`
//! socket. In the copy started by [`Sandbox::new`] it becomes the zygote and never
//! returns to `main`. Your `main`, your arguments and your runtime never run
//! there. The zygote enters a user namespace if needed and then forks workers with
//! `clone3(CLONE_NEWNS | CLONE_NEWPID | CLONE_PARENT | CLONE_PIDFD)`. The workers are your
//! process's children, watched and reaped through pidfds.
//!
//! This needs no code in your `main`, and works the same in binaries, examples,
//! `cargo test` and doctest binaries. What it asks of you:
//!
//! - `SANDTAR_ZYGOTE` is reserved: do not set it.
//! - The executable must be runnable again through `/proc/self/exe`: `/proc`
//!   mounted, and no seccomp or LSM policy that stops the process from executing
//!   its own binary. Replacing or deleting the file on disk is fine: the link
//!   points at the running inode.
//! - Constructors of other libraries (`.init_array` entries in C code, the
//!   `ctor` crate) also run in the zygote, possibly before sandtar's hook. Keep
//!   them free of side effects such as starting threads or writing files.
//! - Each [`Sandbox`] keeps one zygote and a few warm workers (see
//!   [`SandboxBuilder::warm_workers`]), each about 1 MiB. Create one sandbox and
//!   share it. Dropping the last clone stops the zygote and its idle workers.
//!
//! The zygote and the workers die with your process: each asks the kernel for
//! SIGKILL when its parent dies (`PR_SET_PDEATHSIG`). For the kernel that
//! parent is the thread that started the zygote, so sandtar starts it from a
//! thread of its own, `sandtar-spawner`, that lives as long as your process.
//! The zygote is also replaced by a fresh one (a new `exec`, so a new
//! address-space layout for its workers) every
//! [`SandboxBuilder::jobs_per_zygote`] jobs and after a worker ends abnormally.
#![deny(missing_docs)]
// `unsafe` lives in one module, `sys`, each block with its reason.
#![deny(unsafe_code)]

#[cfg(not(target_os = "linux"))]
compile_error!(
    "sandtar runs on Linux only: its workers are confined by Linux namespaces, pivot_root and seccomp"
);

mod caller;
mod error;
/// Unconfined entry points for `fuzz/` and its regression tests: only in a
/// build with `--cfg fuzzing` (cargo-fuzz sets it), never in a dependent's.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing;
mod host;
mod ignore;
mod mode;
mod options;
mod pack;
mod report;
mod selection;
#[allow(unsafe_code)]
mod sys;
mod wire;
mod worker;
mod zygote;

pub use caller::job::Job;
pub use caller::pack::{Pack, PackInto};
pub use caller::sandbox::{Sandbox, SandboxBuilder};
pub use caller::subids::SubordinateIds;
pub use error::{DigestKind, Error, NotTar, Result};
pub use host::{diagnose, Check};
pub use mode::{Rung, SandboxMode};
pub use options::{
    Compression, IdMap, IdRange, Limit, Limits, ModePolicy, Options, Overwrite, Parsing, Selection,
    WhiteoutFormat, XattrPolicy,
};
pub use pack::{PackOptions, PackOwners};
pub use report::{
    is_unsafe_to_show, printable, Divergence, EntryKind, EntryReport, Outcome, RejectReason,
    SkipReason, Summary,
};
