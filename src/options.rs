//! What a job may do: presets and knobs.

use serde::{Deserialize, Serialize};

pub use crate::selection::Selection;

/// How an extraction treats what the archive asks for.
///
/// [`Options::default()`] is safe for untrusted input; [`Options::full_fidelity()`]
/// reproduces the archive as GNU tar run as root would, for trusted input.
/// Every field is public and documented with its default; change what you need:
///
/// ```
/// let mut options = sandtar::Options::default();
/// options.preserve_mtime = false;
/// assert!(!options.allow_devices);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Options {
    /// Give files the owner (numeric uid/gid) recorded in the archive.
    /// Default `false`: files are owned by the extracting user. Needs root; in a
    /// user namespace (unprivileged sandbox) it is ignored.
    pub preserve_owners: bool,
    /// Create character and block device nodes. Default `false`: they are reported
    /// as skipped. Needs root; in a user namespace they are skipped as not permitted.
    /// The worker cannot open what it makes (its mount of the destination is
    /// `nodev`), but the host's mount of it may not be: a node that names a
    /// host disk is then there for whoever its mode lets open it. For trusted
    /// archives, or a destination on a `nodev` filesystem.
    pub allow_devices: bool,
    /// Create FIFOs (named pipes). Default `true`.
    pub allow_fifos: bool,
    /// How permission bits from the archive are applied. Default [`ModePolicy::Safe`].
    pub mode: ModePolicy,
    /// Which extended attributes (PAX `SCHILY.xattr.*` records) are applied.
    /// Default [`XattrPolicy::User`].
    pub xattrs: XattrPolicy,
    /// How an archive that tar readers read differently is taken: refused
    /// ([`Parsing::Strict`], the default and the layer preset's), or read as
    /// GNU tar reads it ([`Parsing::GnuTar`], [`Options::full_fidelity()`]).
    pub parsing: Parsing,
    /// Set modification times from the archive. Default `true`.
    pub preserve_mtime: bool,
    /// The compression of the input. Default [`Compression::Auto`] (recognised by
    /// its magic bytes).
    pub compression: Compression,
    /// How owners recorded in the archive become owners on disk, when
    /// [`preserve_owners`](Options::preserve_owners) is on. Default: the identity.
    pub id_map: IdMap,
    /// Layer mode: apply OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) in this
    /// format instead of extracting them as files. Default `None` (plain
    /// extraction). [`Options::layer()`] sets [`WhiteoutFormat::Oci`].
    pub whiteouts: Option<WhiteoutFormat>,
    /// Compute the digests of the archive: the SHA-256 of the bytes read from
    /// the reader (an OCI blob's digest), by the caller, into
    /// [`Summary::digest`](crate::Summary::digest), and the SHA-256 of the
    /// uncompressed tar stream (an OCI layer's `diff_id`), by the worker, into
    /// [`Summary::diff_id`](crate::Summary::diff_id). Default `false` (each costs
    /// about a second per gigabyte); on in [`Options::layer()`].
    pub digest: bool,
    /// The expected digest of the bytes read from the reader, as they come
    /// (compressed or not: an OCI blob's digest, as a manifest names it):
    /// `sha256:` and 64 hex digits, or the 64 hex digits alone. Default `None`.
    ///
    /// The caller computes it from the bytes it sends to the worker, so a
    /// worker taken over by a hostile archive cannot forge it: this is the
    /// check to rely on. A different digest ends the job with
    /// [`Error::DigestMismatch`](crate::Error::DigestMismatch)
    /// ([`DigestKind::Blob`](crate::DigestKind::Blob)) once the worker has
    /// reported the end of the archive: its entries have been applied by then
    /// (extract to a scratch directory if a mismatch must leave nothing
    /// behind). A value that is not a SHA-256 digest fails the job with
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) before it starts.
    ///
    /// ```
    /// let mut options = sandtar::Options::layer();
    /// options.expected_digest = Some(
    ///     "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
    /// );
    /// ```
    pub expected_digest: Option<String>,
    /// The expected `diff_id`, the SHA-256 of the uncompressed tar stream:
    /// `sha256:` and 64 hex digits, or the 64 hex digits alone. When set, the
    /// worker computes it, and a different one ends the job with
    /// [`Error::DigestMismatch`](crate::Error::DigestMismatch)
    /// ([`DigestKind::DiffId`](crate::DigestKind::DiffId)) once the stream has
    /// been read: the entries have been applied by then (apply layers to a
    /// scratch copy if a mismatch must leave nothing behind); a worker that
    /// reports none ends it with [`Error::Protocol`](crate::Error::Protocol).
    /// A value that is not a SHA-256 digest fails the job with
    /// [`Error::InvalidOption`](crate::Error::InvalidOption) before it starts.
    /// Default `None`.
    ///
    /// The `diff_id` is attested by the worker, which runs the decoder: a
    /// decoder taken over by a hostile archive can report whatever value it
    /// likes. It catches accidents (a corrupt or wrong layer), not an attacker;
    /// [`expected_digest`](Options::expected_digest), computed by the caller
    /// from the bytes it reads, is the one an attacker cannot forge.
    pub expected_diff_id: Option<String>,
    /// Parse the archive in the sandbox and report every entry without writing
    /// anything: entries that would be written are [`Outcome::Listed`](crate::Outcome::Listed),
    /// the others rejected or skipped as usual. Default `false`.
    pub list_only: bool,
    /// Finite bounds on what an archive may make the worker do. Default
    /// [`Limits::default()`]; the same in both presets.
    pub limits: Limits,
    /// Which entries are written (include and exclude patterns, kinds,
    /// `--strip-components`). Default: every entry. Not with
    /// [`whiteouts`](Options::whiteouts): a layer is applied whole.
    pub select: Selection,
    /// What happens to what already exists at an entry's name. Default
    /// [`Overwrite::Replace`]; a layer ([`whiteouts`](Options::whiteouts))
    /// takes no other.
    pub overwrite: Overwrite,
    /// Create the destination directory (and its missing parents, mode 0755
    /// less the umask) if it does not exist, instead of failing with
    /// [`Error::Destination`](crate::Error::Destination). Done by the caller,
    /// before the job. Default `false`.
    pub create_destination: bool,
    /// At most this many entries applied ahead of the reports the caller has
    /// taken from the [`Job`](crate::Job) (at least 1). Default `None`: the
    /// worker runs ahead as fast as it can, and the reports wait for the
    /// caller. With a bound, a caller that looks at each report and drops the
    /// job stops the extraction within `max_lead` entries; 1 is lockstep.
    ///
    /// The cost is a wait whenever the worker is that far ahead, and one
    /// small message to the worker every `max_lead / 2` reports taken:
    /// BENCHMARKS.md measures it (lockstep costs a round trip per entry; 64
    /// costs close to nothing). [`Job::finish`](crate::Job::finish) lifts the
    /// bound, as does [`Sandbox::extract`](crate::Sandbox::extract), which
    /// takes no reports.
    ///
    /// With a bound, every entry is applied on the worker's applying thread
    /// (without one, and for plain input, most regular files are handed to
    /// a second thread, with the same effects in the same order): the bound
    /// is exact, and many small files cost about as much as GNU tar's again
    /// (BENCHMARKS.md).
    ///
    /// ```
    /// let mut options = sandtar::Options::default();
    /// options.max_lead = Some(16);
    /// ```
    pub max_lead: Option<u32>,
    /// Flush the destination's filesystem to its disk (`syncfs`) once every
    /// entry and every directory's metadata is written, before the job
    /// succeeds: when [`Job::finish`](crate::Job::finish) returns `Ok`, what
    /// the job wrote survives a crash or power loss (as after GNU tar and
    /// `sync -f DEST`). A failure to flush fails the job with
    /// [`Error::Write`](crate::Error::Write). Default `false`: the data is
    /// in the page cache, written back when the kernel sees fit. The cost is
    /// the disk's (BENCHMARKS.md measures it on ext4); on tmpfs none.
    ///
    /// ```
    /// let mut options = sandtar::Options::default();
    /// options.sync = true;
    /// ```
    pub sync: bool,
}

/// What happens when an entry's name already exists in the destination
/// (put there before the job, or by an earlier entry of the same archive).
/// Existing directories always take the contents of the archive's.
///
/// ```
/// let mut options = sandtar::Options::default();
/// options.overwrite = sandtar::Overwrite::Keep; // GNU tar's --skip-old-files
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Overwrite {
    /// Replace it, as GNU tar does by default: a file, symlink, FIFO, device
    /// node or empty directory is removed (never followed) and the entry
    /// made; a non-empty directory in the way of anything but a directory
    /// fails that entry. A directory entry over an existing directory takes
    /// its place in metadata (mode, owner, time, at the end).
    #[default]
    Replace,
    /// Keep what is there: the entry is skipped
    /// ([`SkipReason::Exists`](crate::SkipReason::Exists)), an existing
    /// directory keeps its own metadata (GNU tar's `--skip-old-files`).
    Keep,
    /// Refuse: an entry whose name exists fails
    /// ([`Outcome::Failed`](crate::Outcome::Failed)) and the job goes on; an
    /// existing directory is kept as with `Keep` (GNU tar's
    /// `--keep-old-files`).
    Refuse,
}

/// Bounds on an archive. Exceeding one stops the job at once with
/// [`Error::LimitExceeded`](crate::Error::LimitExceeded), naming the limit, its
/// value and the entry where it tripped.
///
/// ```
/// let mut options = sandtar::Options::default();
/// options.limits.max_entries = 10_000;
/// options.limits.max_total_size = 1 << 30; // 1 GiB
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// Most entries in the archive. Default 1,000,000.
    pub max_entries: u64,
    /// Largest size of one entry's data (a sparse file's data, without its
    /// holes). Default 8 GiB.
    pub max_entry_size: u64,
    /// Largest sum of the data sizes of all entries (sparse files' data,
    /// without their holes). Default 32 GiB.
    pub max_total_size: u64,
    /// Largest sum of the apparent sizes of the archive's sparse files, holes
    /// included (their data counts toward `max_entry_size` and
    /// `max_total_size` like any file's). Default 1 TiB: generous, as holes
    /// take no disk on the filesystems that have them (Go's test archives hold
    /// 60 GB sparse files of a few bytes), and bounded all the same (what a
    /// tool that copies the tree may have to read).
    pub max_sparse_size: u64,
    /// Largest PAX or GNU extension header (long names, PAX records) before one
    /// entry. Default 1 MiB. The worker's memory is also capped (`RLIMIT_DATA`,
    /// 1 GiB), so a larger header cannot exhaust memory while it is read.
    pub max_extension_size: u64,
    /// Longest entry name in bytes, after normalisation. Default 4,095
    /// (`PATH_MAX` less one).
    pub max_path_length: u64,
    /// Most components in an entry name. Default 256.
    pub max_path_depth: u64,
    /// Largest ratio of decompressed to compressed bytes, checked once 64 MiB
    /// have been decompressed (so small, very regular archives pass). Default 1,000
    /// (gzip cannot exceed about 1,030; zstd and xz can reach millions).
    pub max_compression_ratio: u64,
    /// Most CPU time, in seconds, a job's worker may use (both of its threads,
    /// user and system). Default 600. Enforced by the kernel (`RLIMIT_CPU`):
    /// the worker is stopped by `SIGXCPU` and the job fails with
    /// [`Limit::MaxCpuTime`]. Bounds the work any archive can cause, whatever
    /// the other limits (a symlink chain resolved once per entry, say).
    pub max_cpu_time: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1_000_000,
            max_entry_size: 8 << 30,
            max_total_size: 32 << 30,
            max_sparse_size: 1 << 40,
            max_extension_size: 1 << 20,
            max_path_length: 4095,
            max_path_depth: 256,
            max_compression_ratio: 1000,
            max_cpu_time: 600,
        }
    }
}

impl Limits {
    /// The value of one limit.
    ///
    /// ```
    /// use sandtar::{Limit, Limits};
    /// assert_eq!(Limits::default().get(Limit::MaxPathDepth), 256);
    /// ```
    pub fn get(&self, limit: Limit) -> u64 {
        match limit {
            Limit::MaxEntries => self.max_entries,
            Limit::MaxEntrySize => self.max_entry_size,
            Limit::MaxTotalSize => self.max_total_size,
            Limit::MaxSparseSize => self.max_sparse_size,
            Limit::MaxExtensionSize => self.max_extension_size,
            Limit::MaxPathLength => self.max_path_length,
            Limit::MaxPathDepth => self.max_path_depth,
            Limit::MaxCompressionRatio => self.max_compression_ratio,
            Limit::MaxCpuTime => self.max_cpu_time,
        }
    }

    /// No limits at all (every bound at its maximum): for archives you made.
    pub fn unlimited() -> Self {
        Limits {
            max_entries: u64::MAX,
            max_entry_size: u64::MAX,
            max_total_size: u64::MAX,
            max_sparse_size: u64::MAX,
            max_extension_size: u64::MAX,
            max_path_length: u64::MAX,
            max_path_depth: u64::MAX,
            max_compression_ratio: u64::MAX,
            max_cpu_time: u64::MAX,
        }
    }
}

/// One of the [`Limits`], as [`Error::LimitExceeded`](crate::Error::LimitExceeded)
/// names it: match on it, or print it (it displays as the field's name,
/// `max_entries`).
///
/// ```
/// use sandtar::{Error, Limit};
/// fn too_big(e: &Error) -> bool {
///     matches!(e, Error::LimitExceeded { limit: Limit::MaxTotalSize | Limit::MaxEntrySize, .. })
/// }
/// assert_eq!(Limit::MaxEntries.to_string(), "max_entries");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Limit {
    /// [`Limits::max_entries`].
    MaxEntries,
    /// [`Limits::max_entry_size`].
    MaxEntrySize,
    /// [`Limits::max_total_size`].
    MaxTotalSize,
    /// [`Limits::max_sparse_size`].
    MaxSparseSize,
    /// [`Limits::max_extension_size`].
    MaxExtensionSize,
    /// [`Limits::max_path_length`].
    MaxPathLength,
    /// [`Limits::max_path_depth`].
    MaxPathDepth,
    /// [`Limits::max_compression_ratio`].
    MaxCompressionRatio,
    /// [`Limits::max_cpu_time`].
    MaxCpuTime,
}

impl Limit {
    /// The name of the [`Limits`] field, e.g. `"max_entries"`.
    pub fn name(self) -> &'static str {
        match self {
            Limit::MaxEntries => "max_entries",
            Limit::MaxEntrySize => "max_entry_size",
            Limit::MaxTotalSize => "max_total_size",
            Limit::MaxSparseSize => "max_sparse_size",
            Limit::MaxExtensionSize => "max_extension_size",
            Limit::MaxPathLength => "max_path_length",
            Limit::MaxPathDepth => "max_path_depth",
            Limit::MaxCompressionRatio => "max_compression_ratio",
            Limit::MaxCpuTime => "max_cpu_time",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Default for Options {
    /// The safe preset, for archives from strangers: no device nodes, no
    /// setuid/setgid/sticky bits and no group/other write bits, files owned by the
    /// extracting user, only `user.*` extended attributes, modification times kept.
    fn default() -> Self {
        Options {
            preserve_owners: false,
            allow_devices: false,
            allow_fifos: true,
            mode: ModePolicy::Safe,
            xattrs: XattrPolicy::User,
            parsing: Parsing::Strict,
            preserve_mtime: true,
            compression: Compression::Auto,
            id_map: IdMap::default(),
            whiteouts: None,
            digest: false,
            expected_digest: None,
            expected_diff_id: None,
            list_only: false,
            limits: Limits::default(),
            select: Selection::default(),
            overwrite: Overwrite::Replace,
            create_destination: false,
            max_lead: None,
            sync: false,
        }
    }
}

impl Options {
    /// The image-layer preset: [`Options::full_fidelity()`] with OCI whiteouts
    /// applied and the layer's `diff_id` computed, read strictly
    /// ([`Parsing::Strict`]: other tools read layers again). Used by
    /// [`Sandbox::apply_layer`](crate::Sandbox::apply_layer).
    ///
    /// ```
    /// let options = sandtar::Options::layer();
    /// assert_eq!(options.whiteouts, Some(sandtar::WhiteoutFormat::Oci));
    /// ```
    pub fn layer() -> Self {
        Options {
            whiteouts: Some(WhiteoutFormat::Oci),
            digest: true,
            // Layers come from registries and are read again by Go's
            // archive/tar (containerd, Docker): no GNU-only readings.
            parsing: Parsing::Strict,
            ..Options::full_fidelity()
        }
    }

    /// The full-fidelity preset, for trusted input extracted as root: owners,
    /// device nodes, every mode bit, the extended attributes of
    /// [`XattrPolicy::All`] (including `security.capability`), modification
    /// times, and archives read as GNU tar reads them ([`Parsing::GnuTar`]).
    ///
    /// ```
    /// let options = sandtar::Options::full_fidelity();
    /// assert!(options.preserve_owners && options.allow_devices);
    /// ```
    pub fn full_fidelity() -> Self {
        Options {
            preserve_owners: true,
            allow_devices: true,
            mode: ModePolicy::Exact,
            xattrs: XattrPolicy::All,
            parsing: Parsing::GnuTar,
            ..Options::default()
        }
    }
}

/// How the worker reads an archive that tar readers read differently
/// (SECURITY.md, "Where tar readers disagree", has every case).
///
/// Where readers disagree on which bytes belong to which member (a PAX
/// `size` that a reader splitting records at newlines reads otherwise, a
/// directory or link with a data size, a blank size field, an extension
/// header without magic, Solaris's `X` header), a tool that checked an
/// archive and the one that unpacks it may see different files: the
/// desync behind CVE-2025-62518. [`Parsing::Strict`] refuses those archives;
/// [`Parsing::GnuTar`] reads them as GNU tar 1.34 does and notes each such
/// entry in its report ([`EntryReport::notes`](crate::EntryReport::notes)).
/// Either way the kernel's walls are the same: this decides which files an
/// archive stands for, not where they can go.
///
/// ```
/// let mut options = sandtar::Options::default();
/// // Archives of your own, written by old or odd tools:
/// options.parsing = sandtar::Parsing::GnuTar;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Parsing {
    /// Refuse an archive that tar readers frame differently, or whose names
    /// or values they read differently, with
    /// [`Error::MalformedArchive`](crate::Error::MalformedArchive) (a name
    /// holding a NUL byte rejects that entry only). For archives from
    /// strangers, and for what other tools will read again.
    #[default]
    Strict,
    /// Read every archive as GNU tar does: the last of repeated extension
    /// headers wins, header-only entries carry no data whatever their size
    /// field says, a blank size is 0, names end at a NUL byte, an
    /// unparseable PAX time is read for the number it starts with, Solaris's
    /// `X` header is a PAX header. For archives you trust
    /// to mean what GNU tar makes of them.
    GnuTar,
}

/// How whiteouts of an image layer are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum WhiteoutFormat {
    /// Apply them: `.wh.NAME` removes `NAME`, `.wh..wh..opq` empties its
    /// directory of everything lower layers put there (Docker's `ApplyLayer`).
    Oci,
    /// Convert them for an overlay filesystem's upper directory: a whiteout
    /// becomes a 0:0 character device, an opaque directory gets the
    /// `trusted.overlay.opaque=y` attribute (`user.overlay.opaque` in a user
    /// namespace). The `trusted.*` mark needs `CAP_SYS_ADMIN`, which no worker
    /// holds: the caller sets it once the worker is gone, on a descriptor
    /// opened inside the destination without following any symlink.
    Overlay,
}

/// Maps ids recorded in an archive (a container's) to ids on the host, by ranges,
/// like `/etc/subuid` and Docker's `IDMap`. An empty list maps that kind of id to
/// itself; with ranges, an id outside every range stops the job
/// ([`Error::UnmappedId`](crate::Error::UnmappedId)).
///
/// ```
/// use sandtar::{IdMap, IdRange};
/// // Container ids 0..65536 are host ids 100000..165536.
/// let range = IdRange { container: 0, host: 100_000, size: 65_536 };
/// let map = IdMap { uids: vec![range], gids: vec![range] };
/// let mut options = sandtar::Options::full_fidelity();
/// options.id_map = map;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    /// User id ranges.
    pub uids: Vec<IdRange>,
    /// Group id ranges.
    pub gids: Vec<IdRange>,
}

/// One range of an [`IdMap`]: `size` ids from `container` map to `host` onwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRange {
    /// First id as recorded in the archive.
    pub container: u32,
    /// The host id it becomes.
    pub host: u32,
    /// How many consecutive ids the range covers.
    pub size: u32,
}

impl IdMap {
    fn map(ranges: &[IdRange], id: u64) -> Option<u64> {
        if ranges.is_empty() {
            return Some(id);
        }
        ranges.iter().find_map(|r| {
            let offset = id.checked_sub(u64::from(r.container))?;
            (offset < u64::from(r.size)).then(|| u64::from(r.host) + offset)
        })
    }

    /// The host uid for an archive uid; `None` if no range covers it.
    pub fn map_uid(&self, id: u64) -> Option<u64> {
        Self::map(&self.uids, id)
    }

    /// The host gid for an archive gid; `None` if no range covers it.
    pub fn map_gid(&self, id: u64) -> Option<u64> {
        Self::map(&self.gids, id)
    }
}

/// How permission bits recorded in the archive become the modes of created files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ModePolicy {
    /// Keep the permission bits but drop setuid, setgid and sticky, and the group
    /// and other write bits (`mode & 0o755`), as Python's `tarfile` "data" filter
    /// does: nothing extracted is writable by other users or runs with raised
    /// privileges.
    Safe,
    /// Apply the archive's mode exactly, special bits included (`mode & 0o7777`).
    Exact,
}

impl ModePolicy {
    /// The mode a file recorded with `mode` gets under this policy.
    pub(crate) fn apply(self, mode: u32) -> u32 {
        match self {
            ModePolicy::Safe => mode & 0o755,
            ModePolicy::Exact => mode & 0o7777,
        }
    }
}

/// Which extended attributes are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum XattrPolicy {
    /// None at all.
    None,
    /// The `user.*` namespace, except `user.overlay.*` (overlayfs reads those as
    /// its own metadata on `userxattr` mounts: redirects, opaque markers).
    User,
    /// An explicit allow-list: what [`XattrPolicy::User`] allows, file
    /// capabilities (`security.capability`) and POSIX ACLs
    /// (`system.posix_acl_access`, `system.posix_acl_default`); needs root.
    /// Never `trusted.*` (overlayfs redirects and metacopy, among others) nor
    /// the other `security.*` attributes (SELinux labels, IMA and EVM
    /// signatures): they are dropped, as on a filesystem without them. The
    /// kernel refuses those anyway: they need `CAP_SYS_ADMIN`, which no worker
    /// holds.
    All,
}

/// The names [`XattrPolicy::All`] allows beyond `user.*`.
const PRIVILEGED_XATTRS: [&[u8]; 3] = [
    b"security.capability",
    b"system.posix_acl_access",
    b"system.posix_acl_default",
];

impl XattrPolicy {
    pub(crate) fn allows(self, name: &[u8]) -> bool {
        let user = name.starts_with(b"user.") && !name.starts_with(b"user.overlay.");
        match self {
            XattrPolicy::None => false,
            XattrPolicy::User => user,
            XattrPolicy::All => user || PRIVILEGED_XATTRS.contains(&name),
        }
    }
}

/// The compression of an archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Compression {
    /// Recognise it by its magic bytes (only valid in [`Options`]).
    Auto,
    /// A plain tar stream.
    None,
    /// gzip (including multi-member files, as `cat a.gz b.gz` makes).
    Gzip,
    /// Zstandard (including multi-frame files).
    Zstd,
    /// xz (including multi-stream files).
    Xz,
    /// bzip2 (including multi-stream files).
    Bzip2,
    /// lz4 frames (including concatenated frames).
    Lz4,
}

impl Compression {
    /// The name users know it by (`"gzip"`, `"zstd"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Compression::Auto => "auto",
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Bzip2 => "bzip2",
            Compression::Lz4 => "lz4",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattrs_by_allow_list_never_overlay_metadata() {
        let names: [&[u8]; 10] = [
            b"user.mime_type",
            b"user.overlay.redirect",
            b"user.overlay.opaque",
            b"trusted.overlay.redirect",
            b"trusted.overlay.metacopy",
            b"security.capability",
            b"security.ima",
            b"security.selinux",
            b"system.posix_acl_access",
            b"system.nfs4_acl",
        ];
        let allowed = |policy: XattrPolicy| -> Vec<&[u8]> {
            names.iter().copied().filter(|n| policy.allows(n)).collect()
        };
        assert!(allowed(XattrPolicy::None).is_empty());
        assert_eq!(allowed(XattrPolicy::User), [&b"user.mime_type"[..]]);
        assert_eq!(
            allowed(XattrPolicy::All),
            [
                &b"user.mime_type"[..],
                b"security.capability",
                b"system.posix_acl_access"
            ]
        );
        // Every preset.
        for options in [
            Options::default(),
            Options::full_fidelity(),
            Options::layer(),
        ] {
            assert!(!options.xattrs.allows(b"user.overlay.redirect"));
            assert!(!options.xattrs.allows(b"trusted.overlay.opaque"));
        }
    }

    #[test]
    fn safe_mode_drops_special_and_write_bits() {
        assert_eq!(ModePolicy::Safe.apply(0o104777), 0o755);
        assert_eq!(ModePolicy::Safe.apply(0o640), 0o640);
        assert_eq!(ModePolicy::Exact.apply(0o104777), 0o4777);
    }

    #[test]
    fn id_map_ranges() {
        let identity = IdMap::default();
        assert_eq!(identity.map_uid(1234), Some(1234));
        let r = IdRange {
            container: 0,
            host: 100_000,
            size: 65_536,
        };
        let map = IdMap {
            uids: vec![r],
            gids: vec![],
        };
        assert_eq!(map.map_uid(0), Some(100_000));
        assert_eq!(map.map_uid(65_535), Some(165_535));
        assert_eq!(map.map_uid(65_536), None);
        assert_eq!(map.map_gid(70_000), Some(70_000));
    }

    #[test]
    fn xattr_policy() {
        assert!(XattrPolicy::User.allows(b"user.mime"));
        assert!(!XattrPolicy::User.allows(b"security.capability"));
        assert!(XattrPolicy::All.allows(b"security.capability"));
        assert!(!XattrPolicy::None.allows(b"user.x"));
    }
}
