//! What becomes of an entry, decided from its metadata and the options alone
//! (no system call): written, or skipped or rejected and why. Listing and
//! writing ask the same question here, so a listing says what extracting
//! would do. A new outcome of that kind is a rule here (and a variant of
//! [`SkipReason`] or [`RejectReason`]); failures of system calls are the
//! writer's.

use crate::options::Options;
use crate::report::{EntryKind, RejectReason, SkipReason};
use crate::worker::archive::Meta;
use crate::worker::names::normalize;

use super::layer::Whiteout;

/// What to do with an entry.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision<'a> {
    /// Write it (listing: report it listed).
    Write,
    /// Write a hard link to this target (normalised, not empty).
    HardLink(Vec<u8>),
    /// Apply this whiteout (layer mode).
    Whiteout(Whiteout<'a>),
    /// Leave it out, for this reason.
    Skip(SkipReason),
    /// Refuse it, for this reason.
    Reject(RejectReason),
}

/// Decides on the entry at `path` (normalised) with `meta`; `whiteout` is
/// what its name means in a layer. `privileged`: device nodes can be made
/// (real privilege, not a user namespace).
pub(crate) fn decide<'a>(
    path: &[u8],
    meta: &Meta,
    whiteout: Whiteout<'a>,
    options: &Options,
    privileged: bool,
) -> Decision<'a> {
    if path.is_empty() && meta.kind != EntryKind::Directory {
        return Decision::Reject(RejectReason::EmptyName);
    }
    let link = meta.link.as_deref();
    match meta.kind {
        EntryKind::Other(t) => Decision::Skip(SkipReason::UnsupportedType(t)),
        EntryKind::Fifo if !options.allow_fifos => Decision::Skip(SkipReason::FifosNotAllowed),
        EntryKind::CharDevice | EntryKind::BlockDevice if !options.allow_devices => {
            Decision::Skip(SkipReason::DevicesNotAllowed)
        }
        EntryKind::CharDevice | EntryKind::BlockDevice if !privileged => {
            Decision::Skip(SkipReason::DevicesNotPermitted)
        }
        EntryKind::Symlink if link.is_none_or(|t| t.is_empty() || t.contains(&0)) => {
            Decision::Reject(RejectReason::BadLinkTarget)
        }
        EntryKind::HardLink => match link.map(normalize) {
            Some(Ok(target)) if !target.is_empty() => Decision::HardLink(target),
            _ => Decision::Reject(RejectReason::BadLinkTarget),
        },
        EntryKind::Whiteout => match whiteout {
            Whiteout::Malformed => Decision::Reject(RejectReason::MalformedWhiteout),
            Whiteout::Ignored => Decision::Skip(SkipReason::WhiteoutMetadata),
            whiteout => Decision::Whiteout(whiteout),
        },
        _ => Decision::Write,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: EntryKind, link: Option<&[u8]>) -> Meta {
        Meta {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: None,
            link: link.map(<[u8]>::to_vec),
            device: (0, 0),
            xattrs: Vec::new(),
            size: 0,
            sparse: None,
            notes: Vec::new(),
        }
    }

    fn decide_default(path: &[u8], meta: &Meta) -> Decision<'static> {
        decide(path, meta, Whiteout::None, &Options::default(), false)
    }

    #[test]
    fn names_and_kinds() {
        let file = meta(EntryKind::File, None);
        assert_eq!(decide_default(b"a", &file), Decision::Write);
        assert_eq!(
            decide_default(b"", &file),
            Decision::Reject(RejectReason::EmptyName)
        );
        let root = meta(EntryKind::Directory, None);
        assert_eq!(decide_default(b"", &root), Decision::Write);
        assert_eq!(
            decide_default(b"a", &meta(EntryKind::Other(b'Y'), None)),
            Decision::Skip(SkipReason::UnsupportedType(b'Y'))
        );
    }

    #[test]
    fn links() {
        let bad = Decision::Reject(RejectReason::BadLinkTarget);
        for target in [None, Some(&b""[..]), Some(b"a\0b")] {
            assert_eq!(decide_default(b"l", &meta(EntryKind::Symlink, target)), bad);
        }
        let symlink = meta(EntryKind::Symlink, Some(b"../../etc"));
        assert_eq!(decide_default(b"l", &symlink), Decision::Write);
        for target in [None, Some(&b"/"[..]), Some(b"../x"), Some(b"a\0b")] {
            assert_eq!(
                decide_default(b"l", &meta(EntryKind::HardLink, target)),
                bad
            );
        }
        assert_eq!(
            decide_default(b"l", &meta(EntryKind::HardLink, Some(b"/a//b"))),
            Decision::HardLink(b"a/b".to_vec())
        );
    }

    #[test]
    fn nodes() {
        let fifo = meta(EntryKind::Fifo, None);
        let device = meta(EntryKind::CharDevice, None);
        let mut options = Options {
            allow_fifos: false,
            allow_devices: false,
            ..Options::default()
        };
        let decide_with =
            |m: &Meta, o: &Options, privileged| decide(b"n", m, Whiteout::None, o, privileged);
        assert_eq!(
            decide_with(&fifo, &options, true),
            Decision::Skip(SkipReason::FifosNotAllowed)
        );
        assert_eq!(
            decide_with(&device, &options, true),
            Decision::Skip(SkipReason::DevicesNotAllowed)
        );
        options.allow_fifos = true;
        options.allow_devices = true;
        assert_eq!(decide_with(&fifo, &options, false), Decision::Write);
        assert_eq!(
            decide_with(&device, &options, false),
            Decision::Skip(SkipReason::DevicesNotPermitted)
        );
        assert_eq!(decide_with(&device, &options, true), Decision::Write);
    }

    #[test]
    fn whiteouts() {
        let whiteout = meta(EntryKind::Whiteout, None);
        let options = Options::layer();
        let decide_as = |w| decide(b"d/.wh.x", &whiteout, w, &options, false);
        assert_eq!(
            decide_as(Whiteout::Malformed),
            Decision::Reject(RejectReason::MalformedWhiteout)
        );
        assert_eq!(
            decide_as(Whiteout::Ignored),
            Decision::Skip(SkipReason::WhiteoutMetadata)
        );
        assert_eq!(
            decide_as(Whiteout::Remove(b"x")),
            Decision::Whiteout(Whiteout::Remove(b"x"))
        );
        assert_eq!(
            decide_as(Whiteout::Opaque),
            Decision::Whiteout(Whiteout::Opaque)
        );
    }
}
