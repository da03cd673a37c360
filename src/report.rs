//! What a job tells the caller: one report per entry, and a summary.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::mode::Rung;
use crate::options::Compression;

/// What kind of thing an archive entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum EntryKind {
    /// A regular file (including GNU sparse and contiguous files).
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier entry.
    #[serde(rename = "hardlink")]
    HardLink,
    /// A named pipe.
    Fifo,
    /// A character device node.
    CharDevice,
    /// A block device node.
    BlockDevice,
    /// An OCI whiteout (`.wh.NAME` or `.wh..wh..opq`) in layer mode: applied, not
    /// written as a file.
    Whiteout,
    /// Any other type flag (GNU volume labels, multi-volume continuations, unknown
    /// vendor types); always skipped. Carries the type flag byte.
    Other(u8),
}

impl EntryKind {
    /// A short lowercase name, as it serializes: `file`, `directory`,
    /// `symlink`, `hardlink`, `fifo`, `char-device`, `block-device`,
    /// `whiteout`, `other`.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Directory => "directory",
            EntryKind::Symlink => "symlink",
            EntryKind::HardLink => "hardlink",
            EntryKind::Fifo => "fifo",
            EntryKind::CharDevice => "char-device",
            EntryKind::BlockDevice => "block-device",
            EntryKind::Whiteout => "whiteout",
            EntryKind::Other(_) => "other",
        }
    }
}

/// What happened to one entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Outcome {
    /// The entry was created in the destination.
    Written,
    /// [`Options::list_only`](crate::Options::list_only): the entry passed every
    /// check and would have been written; nothing was.
    Listed,
    /// The entry was valid but the options (or the worker's privileges) do not
    /// allow it; nothing was created.
    Skipped(SkipReason),
    /// The entry was refused by the path policy; nothing was created.
    Rejected(RejectReason),
    /// Creating the entry failed (for example a hard link whose target does not
    /// exist); the message is the system error.
    Failed(String),
}

impl Outcome {
    /// `written`, `listed`, `skipped`, `rejected` or `failed` (as it
    /// serializes).
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Written => "written",
            Outcome::Listed => "listed",
            Outcome::Skipped(_) => "skipped",
            Outcome::Rejected(_) => "rejected",
            Outcome::Failed(_) => "failed",
        }
    }

    /// Why the entry was not written, in words; `None` when it was.
    pub fn reason(&self) -> Option<String> {
        match self {
            Outcome::Written | Outcome::Listed => None,
            Outcome::Skipped(r) => Some(r.to_string()),
            Outcome::Rejected(r) => Some(r.to_string()),
            Outcome::Failed(m) => Some(m.clone()),
        }
    }
}

/// How an entry's headers were read where tar readers read them differently
/// ([`Parsing::GnuTar`](crate::Parsing::GnuTar): as GNU tar does). Each is
/// one row of SECURITY.md's "Where tar readers disagree".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Divergence {
    /// More than one GNU long name, long link name or PAX header came before
    /// it: the last of each kind was used (the `tar` crate refuses this).
    RepeatedExtension,
    /// A directory, link, device or FIFO whose size field is not 0: read as
    /// carrying no data (the `tar` crate reads that many bytes as its data).
    SizeIgnored,
    /// The size field is one the `tar` crate reads otherwise (or not at
    /// all): read as GNU tar reads it (one leading NUL skipped, then white
    /// space; no digits: 0). Go reads the digits after the NULs.
    BlankSize,
    /// Its name or link target held a NUL byte: cut there.
    CutAtNul,
    /// An unparseable PAX time record: read for the number it starts with,
    /// or ignored (Go refuses the archive).
    BadPaxTime,
    /// An extension header came before a PAX global header: applied to this
    /// entry (the `tar` crate applies it to the global header).
    ExtensionAcrossGlobal,
    /// An extension header without a ustar or GNU magic, or Solaris's `X`
    /// header: read as an extension header (the `tar` crate reads a member).
    UnmarkedExtension,
    /// Its header's checksum matched only when summed as signed bytes, as
    /// some old tars wrote it (read in both presets: only the `tar` crate
    /// refuses it; noted with `GnuTar` only).
    SignedChecksum,
    /// A sparse file whose map ends before its recorded size: the file ends
    /// with its last chunk, as GNU tar makes it.
    SparseEndsWithMap,
}

impl Divergence {
    /// A short kebab-case code, as it serializes: `repeated-extension`,
    /// `size-ignored`, `blank-size`, `cut-at-nul`, `bad-pax-time`,
    /// `extension-across-global`, `unmarked-extension`, `signed-checksum`,
    /// `sparse-ends-with-map`.
    pub fn code(&self) -> &'static str {
        match self {
            Divergence::RepeatedExtension => "repeated-extension",
            Divergence::SizeIgnored => "size-ignored",
            Divergence::BlankSize => "blank-size",
            Divergence::CutAtNul => "cut-at-nul",
            Divergence::BadPaxTime => "bad-pax-time",
            Divergence::ExtensionAcrossGlobal => "extension-across-global",
            Divergence::UnmarkedExtension => "unmarked-extension",
            Divergence::SignedChecksum => "signed-checksum",
            Divergence::SparseEndsWithMap => "sparse-ends-with-map",
        }
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Divergence::RepeatedExtension => "repeated extension headers: the last one was used",
            Divergence::SizeIgnored => "a size on a header-only entry: read as no data",
            Divergence::BlankSize => "an unusual size field: read as GNU tar reads it",
            Divergence::CutAtNul => "a NUL byte in the name or link target: cut there",
            Divergence::BadPaxTime => "an unparseable PAX time: its leading number used",
            Divergence::ExtensionAcrossGlobal => {
                "an extension header before a PAX global header: applied to this entry"
            }
            Divergence::UnmarkedExtension => {
                "an extension header without ustar magic (or Solaris 'X'): read as one"
            }
            Divergence::SignedChecksum => "a header checksum over signed bytes: accepted",
            Divergence::SparseEndsWithMap => {
                "a sparse map that ends before the file's size: the file ends with it"
            }
        })
    }
}

/// Why an entry was skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SkipReason {
    /// A device node, and [`Options::allow_devices`](crate::Options::allow_devices) is off.
    DevicesNotAllowed,
    /// A device node, but the worker may not create one (not root).
    DevicesNotPermitted,
    /// A FIFO, and [`Options::allow_fifos`](crate::Options::allow_fifos) is off.
    FifosNotAllowed,
    /// A type flag sandtar does not extract (carries the flag byte).
    UnsupportedType(u8),
    /// A `.wh..wh.*` name other than the opaque marker (layer mode): metadata of
    /// other tools, ignored.
    WhiteoutMetadata,
    /// Left out by [`Options::select`](crate::Options::select): its name or
    /// kind is not selected, or it is excluded.
    NotSelected,
    /// Nothing is left of its name after
    /// [`Selection::strip_components`](crate::Selection::strip_components).
    StrippedAway,
    /// Its name exists in the destination and
    /// [`Options::overwrite`](crate::Options::overwrite) keeps what is there.
    Exists,
}

impl SkipReason {
    /// A short kebab-case code, as it serializes: `devices-not-allowed`,
    /// `devices-not-permitted`, `fifos-not-allowed`, `unsupported-type`,
    /// `whiteout-metadata`, `not-selected`, `stripped-away`, `exists`.
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::DevicesNotAllowed => "devices-not-allowed",
            SkipReason::DevicesNotPermitted => "devices-not-permitted",
            SkipReason::FifosNotAllowed => "fifos-not-allowed",
            SkipReason::UnsupportedType(_) => "unsupported-type",
            SkipReason::WhiteoutMetadata => "whiteout-metadata",
            SkipReason::NotSelected => "not-selected",
            SkipReason::StrippedAway => "stripped-away",
            SkipReason::Exists => "exists",
        }
    }

    /// Whether the entry was left out by [`Options::select`](crate::Options::select).
    pub fn is_selection(&self) -> bool {
        matches!(self, SkipReason::NotSelected | SkipReason::StrippedAway)
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::DevicesNotAllowed => {
                f.write_str("device nodes are not allowed by the options")
            }
            SkipReason::DevicesNotPermitted => {
                f.write_str("device nodes need root outside a user namespace")
            }
            SkipReason::FifosNotAllowed => f.write_str("FIFOs are not allowed by the options"),
            SkipReason::WhiteoutMetadata => f.write_str("whiteout metadata entry, ignored"),
            SkipReason::NotSelected => f.write_str("not selected by the options"),
            SkipReason::Exists => f.write_str("exists in the destination, kept as it is"),
            SkipReason::StrippedAway => {
                f.write_str("no name left after stripping leading components")
            }
            SkipReason::UnsupportedType(t) => {
                write!(f, "unsupported entry type {:?}", char::from(*t))
            }
        }
    }
}

/// Why an entry was refused by the path policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RejectReason {
    /// The name has a `..` component.
    ParentComponent,
    /// The name is empty (or only `/` and `.`), and the entry is not a directory.
    EmptyName,
    /// The name contains a NUL byte.
    NulInName,
    /// A hard link whose target has a `..` component, is empty, or contains NUL.
    BadLinkTarget,
    /// The name is longer than the kernel accepts (`PATH_MAX`).
    NameTooLong,
    /// A malformed whiteout (`.wh.`, `.wh..`, `.wh...`) in layer mode.
    MalformedWhiteout,
}

impl RejectReason {
    /// A short kebab-case code, as it serializes: `parent-component`,
    /// `empty-name`, `nul-in-name`, `bad-link-target`, `name-too-long`,
    /// `malformed-whiteout`.
    pub fn code(&self) -> &'static str {
        match self {
            RejectReason::ParentComponent => "parent-component",
            RejectReason::EmptyName => "empty-name",
            RejectReason::NulInName => "nul-in-name",
            RejectReason::BadLinkTarget => "bad-link-target",
            RejectReason::NameTooLong => "name-too-long",
            RejectReason::MalformedWhiteout => "malformed-whiteout",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RejectReason::ParentComponent => "name has a '..' component",
            RejectReason::EmptyName => "name is empty",
            RejectReason::NulInName => "name contains a NUL byte",
            RejectReason::BadLinkTarget => {
                "hard link target is empty, has a '..' component or contains NUL"
            }
            RejectReason::NameTooLong => "name is longer than PATH_MAX",
            RejectReason::MalformedWhiteout => "malformed whiteout name",
        })
    }
}

/// The result for one archive entry, in archive order.
///
/// One exception to "one report per entry": a directory's mode, owner, extended
/// attributes and time are applied at the end (deepest first, so that a read-only
/// directory does not block its own contents). If that fails, a second report for
/// the directory, [`Outcome::Failed`], follows the last entry, and the
/// [`Summary`] counts the directory once, as failed.
///
/// It serializes (with `serde`) flat, as `untar --json` prints it:
/// `{"path", "kind", "size", "outcome"}` and, when it was not written,
/// `"reason"` (a code: [`SkipReason::code`], [`RejectReason::code`]; none for a
/// failure) and `"message"` (in words). The path is text, bytes that are not
/// UTF-8 as U+FFFD: escape it before showing it ([`EntryReport::shown_path`]).
///
/// ```
/// # fn demo(report: &sandtar::EntryReport) -> serde_json::Result<()> {
/// let json = serde_json::to_string(report)?;
/// // {"path":"../x","kind":"file","size":3,"outcome":"rejected",
/// //  "reason":"parent-component","message":"name has a '..' component"}
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryReport {
    /// The entry's name as recorded in the archive (after PAX and GNU long-name
    /// records), before any leading `/` is stripped.
    pub path: PathBuf,
    /// What kind of entry it is.
    pub kind: EntryKind,
    /// The size of its data in bytes (0 for anything but files).
    pub size: u64,
    /// What happened to it.
    pub outcome: Outcome,
    /// Where the archive strays from what tar readers read alike, for this
    /// entry, and how it was read (only with
    /// [`Parsing::GnuTar`](crate::Parsing::GnuTar); otherwise such an
    /// archive is refused). Usually empty.
    pub notes: Vec<Divergence>,
}

impl EntryReport {
    /// The name made safe to print: the archive chose it, so control
    /// characters, bidirectional overrides and line separators are escaped
    /// (see [`printable`]), and bytes that are not UTF-8 shown as U+FFFD.
    ///
    /// ```
    /// # fn show(report: &sandtar::EntryReport) {
    /// eprintln!("{}: {}", report.shown_path(), report.outcome.name());
    /// # }
    /// ```
    pub fn shown_path(&self) -> String {
        printable(&self.path.to_string_lossy()).into_owned()
    }
}

/// The totals of a finished job.
///
/// It serializes (with `serde`) with the field names below, `elapsed` as
/// `elapsed_ms` (whole milliseconds), `compression` and `rung` by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Summary {
    /// Entries seen (every outcome).
    pub entries: u64,
    /// Entries written.
    pub written: u64,
    /// Entries listed (with [`Options::list_only`](crate::Options::list_only)).
    pub listed: u64,
    /// Entries skipped by the options.
    pub skipped: u64,
    /// Of those, entries left out by [`Options::select`](crate::Options::select)
    /// (not selected, or stripped away): what the caller asked to leave out.
    pub not_selected: u64,
    /// Entries rejected by the path policy.
    pub rejected: u64,
    /// Entries that failed to be created.
    pub failed: u64,
    /// Sizes of the files written, added up (a sparse file counts its full
    /// size, holes included).
    pub bytes_written: u64,
    /// Bytes read from the caller's reader (compressed size).
    pub archive_bytes: u64,
    /// Bytes of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// The compression that was found (or forced).
    pub compression: Compression,
    /// Time from the start of the job to its summary.
    #[serde(rename = "elapsed_ms", serialize_with = "milliseconds")]
    pub elapsed: Duration,
    /// The SHA-256 of the uncompressed tar stream, `sha256:<hex>` (an OCI
    /// layer's `diff_id`), when [`Options::digest`](crate::Options::digest) or
    /// [`Options::expected_diff_id`](crate::Options::expected_diff_id) asked for it.
    /// Computed by the worker, which decodes the archive: trust it as far as
    /// you trust the archive (see [`Summary::digest`]).
    pub diff_id: Option<String>,
    /// The SHA-256 of the bytes read from the caller's reader, compressed or
    /// not, `sha256:<lowercase hex>` (an OCI blob's digest), when
    /// [`Options::digest`](crate::Options::digest) or
    /// [`Options::expected_digest`](crate::Options::expected_digest) asked for it.
    /// Computed by the caller itself, as the bytes went to the worker: no
    /// archive can forge it.
    pub digest: Option<String>,
    /// The sum of the data sizes of every entry (a layer's size, as Docker counts it).
    pub layer_size: u64,
    /// The rung of the confinement ladder the job's worker stood on.
    pub rung: Rung,
}

impl Summary {
    /// `true` when every entry was written (or, listing, would have been),
    /// but those [`Options::select`](crate::Options::select) left out.
    pub fn is_complete(&self) -> bool {
        self.written + self.listed + self.not_selected == self.entries
    }
}

/// Whether `c` must not reach a terminal or a log as it is: C0 and C1 control
/// characters and DEL (escape sequences, line breaks), the bidirectional
/// formatting characters (U+061C, U+200E, U+200F, U+202A–U+202E,
/// U+2066–U+2069: they reorder what follows: `evil`, U+202E, `hs.txt` reads
/// as `eviltxt.sh`), and the line and paragraph separators U+2028, U+2029.
pub fn is_unsafe_to_show(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// `text` (an entry's name, a message quoting the archive) made safe to show:
/// every character [`is_unsafe_to_show`] is escaped as `\u{…}` (`\n`, `\t`
/// and the like as themselves), the rest unchanged.
///
/// ```
/// assert_eq!(sandtar::printable("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
/// assert_eq!(sandtar::printable("evil\u{202e}hs.txt"), "evil\\u{202e}hs.txt");
/// assert_eq!(sandtar::printable("plain/name.txt"), "plain/name.txt");
/// ```
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_unsafe_to_show) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match is_unsafe_to_show(c) {
            true => out.extend(c.escape_default()),
            false => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

impl Serialize for EntryReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let (code, message) = match &self.outcome {
            Outcome::Written | Outcome::Listed => (None, None),
            Outcome::Skipped(r) => (Some(r.code()), Some(r.to_string())),
            Outcome::Rejected(r) => (Some(r.code()), Some(r.to_string())),
            Outcome::Failed(m) => (None, Some(m.clone())),
        };
        let fields = 4
            + usize::from(code.is_some())
            + usize::from(message.is_some())
            + usize::from(!self.notes.is_empty());
        let mut st = s.serialize_struct("EntryReport", fields)?;
        st.serialize_field("path", &self.path.to_string_lossy())?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("size", &self.size)?;
        st.serialize_field("outcome", self.outcome.name())?;
        if let Some(code) = code {
            st.serialize_field("reason", code)?;
        }
        if let Some(message) = message {
            st.serialize_field("message", &message)?;
        }
        if !self.notes.is_empty() {
            st.serialize_field("notes", &self.notes)?;
        }
        st.end()
    }
}

/// A duration in whole milliseconds.
fn milliseconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
