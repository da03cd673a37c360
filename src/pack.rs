//! What a packing job is asked to do ([`Sandbox::pack`](crate::Sandbox::pack)):
//! [`PackOptions`].

use serde::{Deserialize, Serialize};

use crate::options::{Compression, IdMap, Selection, XattrPolicy};

/// How a tree is packed into an archive by a worker confined to it,
/// read-only. The archive is POSIX (ustar headers, PAX records for what does
/// not fit: long names and link targets, large sizes, ids and times), names
/// in sorted order, directories before their contents. A file with holes is
/// packed sparse, in GNU tar's PAX format 1.0 (its data regions only, found
/// with `SEEK_DATA`/`SEEK_HOLE`), as `tar --sparse --format=posix` packs it:
/// GNU tar and sandtar extract it with its holes (bsdtar, Go and Python's
/// `tarfile` know the format too).
///
/// ```
/// let mut options = sandtar::PackOptions::default();
/// options.compression = sandtar::Compression::Zstd;
/// options.select.exclude = vec!["*.o".into(), ".git".into()];
/// options.prefix = Some("release-1.2".into());
/// options.xattrs = sandtar::XattrPolicy::User;
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PackOptions {
    /// The archive's compression, done in the worker: [`Compression::None`]
    /// (the default), [`Compression::Gzip`] or [`Compression::Zstd`]; any
    /// other is [`Error::InvalidOption`](crate::Error::InvalidOption).
    pub compression: Compression,
    /// Which entries are packed, by their names relative to the source
    /// (include and exclude patterns, kinds; see [`Selection`]). A directory
    /// left out is left out with everything below it. `strip_components` is
    /// extraction's only: [`Error::InvalidOption`](crate::Error::InvalidOption).
    pub select: Selection,
    /// Rules in `.dockerignore` syntax, one per line as in the file (blank
    /// lines and `#` comments skipped), applied after `select` to names
    /// relative to the source: `*`, `?` and `[...]` within a component, `**`
    /// across any number of them; a rule matches a name or any of its
    /// ancestors; a rule starting with `!` re-includes; the last rule that
    /// matches decides, as Docker decides a build context. A directory left
    /// out is still walked when some rule re-includes, for the names below
    /// it that are (the directory itself is not recorded; extraction makes
    /// it). Default empty. With `select`'s patterns at most 16 KiB.
    ///
    /// Where it differs from Docker: patterns are shell globs (the `glob`
    /// crate), not moby's regular expressions, so a `\` is a literal
    /// character, not an escape (`\#x` matches `\#x`), and `[!a]` is a
    /// negated class (in moby it is `!` or `a`); a `!` rule re-includes
    /// below any ignored directory (moby walks into one only when an
    /// exception's text starts with that directory's name); forms moby
    /// accepts and this refuses (`a**b`, `a/../b`, `.`) are
    /// [`Error::InvalidOption`](crate::Error::InvalidOption), never a silent
    /// difference.
    ///
    /// ```
    /// let mut options = sandtar::PackOptions::default();
    /// let dockerignore = "# build output\ntarget\n**/*.log\n!target/release/app\n";
    /// options.ignore = dockerignore.lines().map(String::from).collect();
    /// ```
    pub ignore: Vec<String>,
    /// A name every entry is put under (`prefix/...`), as moby's
    /// `RebaseNames` renames the top; `None` (the default): names relative to
    /// the source. No `..` component, no leading `/`.
    pub prefix: Option<String>,
    /// The owners recorded. Default [`PackOwners::Numeric`].
    pub owners: PackOwners,
    /// Host ids mapped back to container ids (the reverse of extraction's
    /// [`Options::id_map`](crate::Options::id_map)); an id outside every
    /// range is recorded as it is. Default: the identity.
    pub id_map: IdMap,
    /// Modification times later than this (seconds since the epoch, such as
    /// `SOURCE_DATE_EPOCH`) are recorded as it. Default `None`.
    pub mtime_clamp: Option<i64>,
    /// The extended attributes recorded, as `SCHILY.xattr.NAME` PAX records
    /// (what GNU tar's `--xattrs` writes and reads): the names the policy
    /// allows, as extraction's [`Options::xattrs`](crate::Options::xattrs)
    /// ([`XattrPolicy::User`]: `user.*` but `user.overlay.*`;
    /// [`XattrPolicy::All`]: with file capabilities and POSIX ACLs), sorted
    /// by name. Those of regular files and directories only (symlinks,
    /// FIFOs and devices are never opened; a hard link's are its first
    /// name's), read through the worker's descriptors; at most 256 KiB of
    /// values per entry, and no name holding `=` or `%` (readers disagree
    /// on those): an attribute left out fails its entry, which is still
    /// packed. A filesystem without attributes has none.
    ///
    /// Default [`XattrPolicy::None`], as GNU tar records none without
    /// `--xattrs`: archives stay the same whatever attributes a tree picked
    /// up (a desktop's `user.xdg.*`, a scanner's marks), and the
    /// reproducible preset matches GNU tar's listing.
    pub xattrs: XattrPolicy,
    /// Compute the archive's digests: the SHA-256 of the uncompressed tar
    /// stream (an OCI layer's `diff_id`), by the worker, and of the bytes as
    /// read (the blob's), by the caller, into the summary's `diff_id` and
    /// `digest`. Default `false` (each costs about 0.6 s per gigabyte here).
    pub digest: bool,
}

/// The owners a packing job records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PackOwners {
    /// Each file's numeric uid and gid (through
    /// [`PackOptions::id_map`]); no user or group names. The ids are those
    /// the worker sees: on the host (`Privileged`, Landlock) the host's; in
    /// a user namespace of the caller's ids alone
    /// ([`SandboxMode::UserNamespace`](crate::SandboxMode::UserNamespace))
    /// the caller's own, and the overflow id 65534 for every other owner,
    /// which the kernel does not name there; with subordinate ids
    /// ([`SandboxMode::SubordinateIds`](crate::SandboxMode::SubordinateIds))
    /// the namespace's, the ids an extraction by the same sandbox gives back.
    #[default]
    Numeric,
    /// 0:0 for every entry (GNU tar's `--owner=0 --group=0`).
    Root,
}

impl Default for PackOptions {
    fn default() -> Self {
        PackOptions {
            compression: Compression::None,
            select: Selection::default(),
            ignore: Vec::new(),
            prefix: None,
            owners: PackOwners::Numeric,
            id_map: IdMap::default(),
            mtime_clamp: None,
            digest: false,
            xattrs: XattrPolicy::None,
        }
    }
}

impl PackOptions {
    /// The reproducible preset: owners 0:0, modification times clamped to
    /// `epoch` (`SOURCE_DATE_EPOCH`), as always sorted names and no access or
    /// change times: identical trees give byte-identical archives, listing
    /// the same as GNU tar's `--sort=name --mtime=@EPOCH --clamp-mtime
    /// --owner=0 --group=0 --numeric-owner --format=posix`. A file's holes
    /// are part of the tree here: the same bytes stored without holes (as
    /// `cp --sparse=never` leaves them) are packed whole, not sparse, and
    /// give another archive.
    ///
    /// ```
    /// let options = sandtar::PackOptions::reproducible(1_700_000_000);
    /// assert_eq!(options.owners, sandtar::PackOwners::Root);
    /// ```
    pub fn reproducible(epoch: i64) -> Self {
        PackOptions {
            owners: PackOwners::Root,
            mtime_clamp: Some(epoch),
            ..PackOptions::default()
        }
    }
}
