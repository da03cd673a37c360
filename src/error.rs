//! The errors a job can end with.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

/// Shorthand for `Result<T, sandtar::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an extraction could not start or did not finish.
///
/// Per-entry problems (a name with `..`, a device node the options do not allow,
/// a hard link whose target is missing) are *not* errors: they are reported as
/// [`Outcome`](crate::Outcome)s and the extraction goes on. An `Error` ends the job.
///
/// `Error` is cheap to clone (I/O causes are shared), so a job can hand the same
/// error to its entry stream and to [`Job::finish`](crate::Job::finish).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No confinement is possible here, so nothing was extracted.
    ///
    /// The first rung needs root (`CAP_SYS_ADMIN`) or unprivileged user
    /// namespaces: as an ordinary user, check `sysctl user.max_user_namespaces`
    /// (must be > 0) and, on Debian/Ubuntu, `kernel.unprivileged_userns_clone`
    /// and AppArmor's `kernel.apparmor_restrict_unprivileged_userns`. The
    /// second rung ([`SandboxMode::Landlock`](crate::SandboxMode::Landlock))
    /// needs Landlock (Linux 5.13 and later, allowed by the default seccomp
    /// profiles of Docker 20.10.18+, containerd and Podman); it may be disabled
    /// at boot (`lsm=` without `landlock`) or refused by an older profile. `reason` names what blocked each rung; `untar --doctor` lists the
    /// walls.
    #[error("confinement unavailable: {reason}; sandtar needs root, unprivileged user namespaces, or Landlock, and never extracts unconfined")]
    ConfinementUnavailable {
        /// What failed, with the system call and its error.
        reason: String,
    },

    /// The sandbox's helper process (the zygote) could not be started.
    #[error("cannot start the sandtar zygote process ({context}): {source}")]
    Zygote {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: Arc<io::Error>,
    },

    /// The destination cannot be used: missing, not a directory, not accessible.
    #[error("destination {path:?}: {problem}")]
    Destination {
        /// The path the caller gave.
        path: PathBuf,
        /// What is wrong with it, in words.
        problem: String,
    },

    /// The source of a packing job cannot be used: missing, not a directory,
    /// not accessible.
    #[error("source {path:?}: {problem}")]
    Source {
        /// The path the caller gave.
        path: PathBuf,
        /// What is wrong with it, in words.
        problem: String,
    },

    /// The destination was replaced by another directory between the moment the
    /// caller opened it and the moment the worker mounted it (a concurrent rename or
    /// mount). Nothing was extracted; retry if the change was expected.
    #[error("destination {path:?} changed while the sandbox was being set up (another process renamed or mounted over it); nothing was extracted")]
    DestinationChanged {
        /// The path the caller gave.
        path: PathBuf,
    },

    /// The caller's reader failed; the worker was stopped.
    #[error("reading the archive failed: {0}")]
    Read(#[source] Arc<io::Error>),

    /// The input is not a tar archive (or not one compressed in a way sandtar
    /// reads): nothing was written. The variant says what it looks like.
    #[error("not a tar archive: {0}")]
    NotTar(NotTar),

    /// The archive (or its compression) is malformed. Entries before this point
    /// may have been written (see the reports).
    #[error("malformed archive at byte {offset} of the uncompressed tar stream: {message}")]
    MalformedArchive {
        /// Offset in the uncompressed tar stream where the problem was found.
        offset: u64,
        /// What the parser or decompressor said.
        message: String,
    },

    /// Writing into the destination failed in a way that stops the job (the
    /// filesystem is full, read-only, or failing). Entries before it were written.
    #[error("writing {entry:?} failed: {message}; the job was stopped")]
    Write {
        /// The entry being written.
        entry: PathBuf,
        /// The system error.
        message: String,
    },

    /// The archive exceeded one of the [`Limits`](crate::Limits); the job stopped
    /// there. Entries before it were written.
    #[error("the archive exceeds the limit {limit} = {value} at entry {entry:?}; raise Options::limits.{limit} if the archive is trusted")]
    LimitExceeded {
        /// The field of [`Limits`](crate::Limits) that tripped.
        limit: crate::Limit,
        /// Its value.
        value: u64,
        /// The entry being read when it tripped (empty when its extension
        /// headers tripped `max_extension_size` before its own header was
        /// read, and for `max_cpu_time`, which the kernel enforces).
        entry: PathBuf,
    },

    /// An entry's owner is outside [`Options::id_map`](crate::Options::id_map);
    /// the job stopped there.
    #[error("entry {entry:?}: {message}; extend Options::id_map to cover it")]
    UnmappedId {
        /// The entry.
        entry: PathBuf,
        /// Which id, and its value.
        message: String,
    },

    /// A digest of the archive is not the expected one. The whole stream was
    /// read and its entries applied before the digest could be known.
    #[error(
        "the archive's {kind} is {actual}, not the expected {expected}; its entries were applied"
    )]
    DigestMismatch {
        /// Which digest: the caller's own of the bytes read
        /// ([`DigestKind::Blob`], [`Options::expected_digest`](crate::Options::expected_digest)),
        /// or the worker's of the tar stream ([`DigestKind::DiffId`],
        /// [`Options::expected_diff_id`](crate::Options::expected_diff_id)).
        kind: DigestKind,
        /// What the options said (as `sha256:` and 64 lowercase hex digits).
        expected: String,
        /// What the stream hashed to.
        actual: String,
    },

    /// An option has a value sandtar cannot use (a digest that is not one,
    /// say). Found before anything started: no worker was used, no byte read.
    #[error("invalid option {option}: {problem}")]
    InvalidOption {
        /// The field of [`Options`](crate::Options), e.g. `"expected_digest"`.
        option: &'static str,
        /// What is wrong with its value (the value itself is not repeated).
        problem: &'static str,
    },

    /// The worker process ended without finishing the job.
    #[error("the sandtar worker process (pid {pid}) died: {how}")]
    WorkerDied {
        /// The worker's pid (for logs; it may be reused by now).
        pid: u32,
        /// How it ended, for example "killed by signal 9 (SIGKILL)".
        how: String,
    },

    /// The worker sent something that is not a valid message. The worker was
    /// stopped. This indicates a bug, or a worker taken over by a hostile archive.
    #[error("protocol error from the sandtar worker: {0}; the worker was stopped")]
    Protocol(String),

    /// The worker hit an unexpected failure of its own.
    #[error("the sandtar worker failed: {0}")]
    Worker(String),

    /// A local I/O error while talking to the worker or the zygote.
    #[error("I/O error talking to the sandtar worker ({context}): {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: Arc<io::Error>,
    },
}

/// Which digest of an archive [`Error::DigestMismatch`] is about.
///
/// ```
/// use sandtar::{DigestKind, Error};
/// fn wrong_blob(e: &Error) -> bool {
///     matches!(e, Error::DigestMismatch { kind: DigestKind::Blob, .. })
/// }
/// assert_eq!(DigestKind::DiffId.to_string(), "diff_id");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum DigestKind {
    /// The SHA-256 of the bytes read from the caller's reader, compressed or
    /// not (an OCI blob's digest), computed by the caller itself.
    #[serde(rename = "digest")]
    Blob,
    /// The SHA-256 of the uncompressed tar stream (an OCI layer's `diff_id`),
    /// computed by the worker, which decodes the archive: a worker taken over
    /// by a hostile archive can report any value.
    #[serde(rename = "diff_id")]
    DiffId,
}

impl DigestKind {
    /// `"digest"` or `"diff_id"`.
    pub fn name(self) -> &'static str {
        match self {
            DigestKind::Blob => "digest",
            DigestKind::DiffId => "diff_id",
        }
    }
}

impl std::fmt::Display for DigestKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Error {
    pub(crate) fn io(context: &'static str, source: io::Error) -> Self {
        Error::Io {
            context,
            source: Arc::new(source),
        }
    }

    pub(crate) fn zygote(context: &'static str, source: io::Error) -> Self {
        Error::Zygote {
            context,
            source: Arc::new(source),
        }
    }
}

/// What an input that is not a tar archive looks like, from its first bytes
/// (see [`Error::NotTar`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum NotTar {
    /// No bytes at all (after decompression, if the input was compressed).
    Empty,
    /// A zip archive (`PK\x03\x04`): sandtar reads tar only.
    Zip,
    /// A 7-Zip archive.
    SevenZip,
    /// A RAR archive.
    Rar,
    /// An `ar` archive, such as a Debian package (`!<arch>`).
    Ar,
    /// A cpio archive (as in RPM payloads and initramfs images).
    Cpio,
    /// A compression sandtar does not read (its name, such as `lzip`).
    Compression(String),
    /// None of the above, and its first block is not a tar header: the
    /// checksum does not match, or the header's fields are not numbers.
    NoTarHeader,
}

impl std::fmt::Display for NotTar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let formats = "plain tar, or tar compressed with gzip, zstd, xz, bzip2 or lz4";
        match self {
            NotTar::Empty => write!(f, "the input is empty"),
            NotTar::Zip => write!(f, "it is a zip archive; sandtar reads {formats}"),
            NotTar::SevenZip => write!(f, "it is a 7-Zip archive; sandtar reads {formats}"),
            NotTar::Rar => write!(f, "it is a RAR archive; sandtar reads {formats}"),
            NotTar::Ar => write!(f, "it is an ar archive (a .deb?); sandtar reads {formats}"),
            NotTar::Cpio => write!(f, "it is a cpio archive; sandtar reads {formats}"),
            NotTar::Compression(name) => {
                write!(f, "it is {name}-compressed; sandtar reads {formats}")
            }
            NotTar::NoTarHeader => write!(
                f,
                "the first header's checksum does not match (the input is neither tar nor a \
                 compression sandtar knows)"
            ),
        }
    }
}
