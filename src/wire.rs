//! The wire between the caller's driver, the zygote and a worker.
//!
//! Job socket (one `SOCK_STREAM` socketpair per job, the worker is born with its end):
//!
//! ```text
//! worker → driver   Warm { awaits_clone }        (set-up done, waiting for a job)
//! driver → worker   "STR1" frame(JobHeader)      + SCM_RIGHTS(destination fd, or a clone
//!                                                 of its mount if the worker awaits one)
//! worker → driver   Confined | Failed            (confined, before any byte)
//! driver → worker   archive bytes ... shutdown(SHUT_WR)
//! worker → driver   (Reports(batch) | Corrections(list))* then Done | Failed
//! ```
//!
//! A frame is a little-endian `u32` length and a `postcard` payload. The driver
//! treats the worker as untrusted: frames longer than [`MAX_WORKER_FRAME`] or that
//! do not decode end the job with a protocol error.
//!
//! Control socket (`SOCK_SEQPACKET`, driver ↔ zygote): one message per datagram,
//! [`ZygoteRequest`] one way and [`ZygoteMsg`] (with the worker's pidfd and socket
//! attached) the other.

use crate::mode::SandboxMode;
use serde::{Deserialize, Serialize};

use crate::options::{Compression, Limit, Options};
use crate::report::{Divergence, EntryKind, Outcome};

/// Precedes the job header: the protocol's name and version.
pub(crate) const HEADER_MAGIC: [u8; 4] = *b"STR1";
/// The largest job header a worker accepts.
pub(crate) const MAX_HEADER_FRAME: usize = 64 * 1024;
/// The largest frame the driver accepts from a worker.
pub(crate) const MAX_WORKER_FRAME: usize = 1024 * 1024;
/// The worker flushes a batch of reports once it is this large.
pub(crate) const REPORT_BATCH_BYTES: usize = 32 * 1024;
/// The worker flushes a batch of reports once it has this many.
pub(crate) const REPORT_BATCH_ENTRIES: usize = 1024;
/// The most reports the driver accepts in one batch.
pub(crate) const MAX_BATCH_ENTRIES: usize = 4 * REPORT_BATCH_ENTRIES;
/// Longest path the worker puts into a report (longer ones are truncated; the
/// entry itself is rejected long before, by `PATH_MAX`).
pub(crate) const MAX_REPORTED_PATH: usize = 8 * 1024;
/// Most notes one report may carry (one of each [`Divergence`]).
pub(crate) const MAX_NOTES: usize = 16;
/// Largest control message (zygote ↔ driver).
pub(crate) const MAX_CONTROL_MESSAGE: usize = 4096;

/// What the driver sends a worker to start a job.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JobHeader {
    /// The destination's absolute path in the caller's mount namespace.
    pub dest: Vec<u8>,
    /// What the job may do.
    pub options: Options,
    /// A packing job: `dest` is the source, read-only (`options` then only
    /// say `list_only`).
    pub pack: Option<crate::pack::PackOptions>,
    /// A packing job whose archive the worker writes to a descriptor that
    /// comes with the header (`Sandbox::pack_into`), not in `Data` frames.
    pub pack_into: bool,
}

impl JobHeader {
    /// How many descriptors come with the header: the destination (or
    /// source), the lead channel with `max_lead`, a packing job's output.
    pub fn descriptors(&self) -> usize {
        1 + usize::from(self.options.max_lead.is_some()) + usize::from(self.pack_into)
    }
}

/// One entry's result as sent on the wire (the path as raw bytes).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WireReport {
    #[serde(with = "serde_bytes")]
    pub path: Vec<u8>,
    pub kind: EntryKind,
    pub size: u64,
    pub outcome: Outcome,
    /// How GNU-only readings shaped the entry (each at most once).
    pub notes: Vec<Divergence>,
}

/// What only the worker can count.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct WorkerTotals {
    pub tar_bytes: u64,
    /// `sha256:<hex>` of the tar stream, when asked for.
    pub diff_id: Option<String>,
    pub layer_size: u64,
    pub compression: Compression,
}

/// A fatal failure, as the worker reports it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WireError {
    /// Set-up or confinement failed (system call and error).
    Confinement(String),
    /// The mounted directory is not the caller's descriptor.
    DestinationChanged,
    /// The input is not a tar archive.
    NotTar(crate::error::NotTar),
    /// The archive or its compression is malformed.
    Malformed { offset: u64, message: String },
    /// An owner outside the id map.
    Unmapped { entry: Vec<u8>, message: String },
    /// A limit tripped.
    Limit {
        limit: Limit,
        value: u64,
        entry: Vec<u8>,
    },
    /// Writing failed fatally (ENOSPC, EROFS, EIO...).
    Write { entry: Vec<u8>, message: String },
    /// Anything else.
    Internal(String),
}

/// Longest message text the worker sends.
pub(crate) const MAX_MESSAGE: usize = 4096;

/// Cuts `text` to at most [`MAX_MESSAGE`] bytes, on a character boundary.
pub(crate) fn bounded_text(mut text: String) -> String {
    if text.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Cuts a path to at most [`MAX_REPORTED_PATH`] bytes.
pub(crate) fn bounded_path(mut path: Vec<u8>) -> Vec<u8> {
    path.truncate(MAX_REPORTED_PATH);
    path
}

impl WireError {
    /// The same error with its texts and paths cut to what a frame may carry.
    pub(crate) fn bounded(self) -> Self {
        match self {
            WireError::Confinement(m) => WireError::Confinement(bounded_text(m)),
            WireError::DestinationChanged => WireError::DestinationChanged,
            WireError::NotTar(what) => WireError::NotTar(what),
            WireError::Malformed { offset, message } => WireError::Malformed {
                offset,
                message: bounded_text(message),
            },
            WireError::Unmapped { entry, message } => WireError::Unmapped {
                entry: bounded_path(entry),
                message: bounded_text(message),
            },
            WireError::Limit {
                limit,
                value,
                entry,
            } => WireError::Limit {
                limit,
                value,
                entry: bounded_path(entry),
            },
            WireError::Write { entry, message } => WireError::Write {
                entry: bounded_path(entry),
                message: bounded_text(message),
            },
            WireError::Internal(m) => WireError::Internal(bounded_text(m)),
        }
    }
}

impl From<WireError> for crate::Error {
    /// A worker's failure as the caller's error, its texts made safe to log.
    ///
    /// The wire does not name the destination: a `DestinationChanged` gets an
    /// empty path here; the start of a job, which knows the path, builds that
    /// error itself.
    fn from(error: WireError) -> Self {
        use crate::Error;
        match error {
            WireError::NotTar(what) => Error::NotTar(what),
            WireError::Malformed { offset, message } => Error::MalformedArchive {
                offset,
                message: untrusted_text(message),
            },
            WireError::Write { entry, message } => Error::Write {
                entry: untrusted_path(entry),
                message: untrusted_text(message),
            },
            WireError::Confinement(reason) => Error::ConfinementUnavailable {
                reason: untrusted_text(reason),
            },
            WireError::DestinationChanged => Error::DestinationChanged {
                path: std::path::PathBuf::new(),
            },
            WireError::Limit {
                limit,
                value,
                entry,
            } => Error::LimitExceeded {
                limit,
                value,
                entry: untrusted_path(entry),
            },
            WireError::Unmapped { entry, message } => Error::UnmappedId {
                entry: untrusted_path(entry),
                message: untrusted_text(message),
            },
            WireError::Internal(message) => Error::Worker(untrusted_text(message)),
        }
    }
}

/// A message from the (untrusted) worker made safe to log: every character
/// [`is_unsafe_to_show`](crate::is_unsafe_to_show) (controls, bidirectional
/// overrides, line separators, which an archive can smuggle into parser
/// errors) escaped, and at most 1 KiB kept.
pub(crate) fn untrusted_text(message: String) -> String {
    const MAX: usize = 1024;
    let shown = crate::report::printable(&message);
    if shown.len() <= MAX {
        return shown.into_owned();
    }
    let mut end = MAX;
    while !shown.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &shown[..end])
}

/// A path from the wire (raw bytes) as the caller's path.
pub(crate) fn untrusted_path(bytes: Vec<u8>) -> std::path::PathBuf {
    use std::os::unix::ffi::OsStringExt;
    std::path::PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

/// Worker → driver messages on the job socket.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum WorkerMsg {
    /// Set up and waiting for a job. `awaits_clone`: the worker waits in an
    /// empty root and needs the caller to send a detached clone of the
    /// destination's mount (`open_tree`) instead of the directory.
    Warm {
        awaits_clone: bool,
    },
    Confined,
    Reports(Vec<WireReport>),
    /// Directories reported written whose metadata could not be set at the end:
    /// (raw name, message).
    Corrections(Vec<(Vec<u8>, String)>),
    Done(WorkerTotals),
    Failed(WireError),
    /// The next bytes of the archive a packing job makes (as one byte
    /// string: serde's default is a sequence of numbers, each visited).
    Data(#[serde(with = "serde_bytes")] Vec<u8>),
}

/// How the zygote's user namespace gets its id maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum IdMapping {
    /// The zygote maps its own uid and gid to 0 (and denies `setgroups`).
    Single,
    /// The driver wrote the maps with `newuidmap`/`newgidmap`: this many ids each.
    Written { uids: u32, gids: u32 },
}

/// Driver → zygote.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ZygoteRequest {
    /// Fork this many more workers.
    Spawn(u32),
    /// The answer to [`ZygoteMsg::Unshared`].
    MapIds(IdMapping),
}

/// Zygote → driver.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ZygoteMsg {
    /// The zygote is ready; all its workers will run in this mode.
    Hello(SandboxMode),
    /// The zygote cannot confine anything (and exits).
    Fatal(String),
    /// The zygote entered a user namespace and waits for [`ZygoteRequest::MapIds`].
    Unshared,
    /// A new worker; its pidfd and its end of the job socket are attached.
    Worker { pid: u32 },
    /// Forking a worker failed.
    SpawnFailed(String),
}

/// Encodes `msg` as a frame: length prefix and payload.
pub(crate) fn encode_frame<T: Serialize>(msg: &T) -> Vec<u8> {
    // Serialising our own plain data types into a Vec cannot fail.
    let out = postcard::to_extend(msg, vec![0u8; 4]).expect("serialising to a Vec");
    finish_frame(out)
}

fn finish_frame(mut out: Vec<u8>) -> Vec<u8> {
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

/// The byte postcard writes for the variant `WorkerMsg::Data` (its index,
/// a one-byte varint).
pub(crate) fn data_tag() -> u8 {
    postcard::to_stdvec(&WorkerMsg::Data(Vec::new())).expect("serialising")[0]
}

/// The most bytes [`data_frame_head`] returns.
#[cfg(test)]
pub(crate) const DATA_HEAD_MAX: usize = 4 + 5 + 10;

/// The start of the frame of `WorkerMsg::Data` holding `len` bytes: what
/// [`encode_frame`] writes before them (its length, the variant, the byte
/// string's length), so that a packing job sends its chunks without copying
/// them into a frame.
pub(crate) fn data_frame_head(len: usize) -> Vec<u8> {
    // The variant as postcard writes it: `Data` of no bytes ends with the
    // length 0, one byte.
    let empty = postcard::to_stdvec(&WorkerMsg::Data(Vec::new())).expect("serialising");
    let mut head = vec![0u8; 4];
    head.extend_from_slice(&empty[..empty.len() - 1]);
    let mut n = len as u64;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        match n {
            0 => {
                head.push(byte);
                break;
            }
            _ => head.push(byte | 0x80),
        }
    }
    let body = (head.len() - 4 + len) as u32;
    head[..4].copy_from_slice(&body.to_le_bytes());
    head
}

/// Encodes a control message (no length prefix: a datagram is one message).
pub(crate) fn encode_message<T: Serialize>(msg: &T) -> Vec<u8> {
    postcard::to_stdvec(msg).unwrap_or_default()
}

/// Decodes a control message or a frame payload.
pub(crate) fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, String> {
    postcard::from_bytes(bytes).map_err(|e| format!("undecodable message: {e}"))
}

/// Splits one complete frame off the front of `buf`, if there is one.
///
/// Returns the payload range, or an error if the announced length exceeds `max`.
pub(crate) fn frame_at(buf: &[u8], max: usize) -> Result<Option<std::ops::Range<usize>>, String> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len > max {
        return Err(format!("frame of {len} bytes exceeds the limit of {max}"));
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    Ok(Some(4..4 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_frames_without_a_copy() {
        for len in [0usize, 1, 127, 128, 300, 256 << 10] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut ours = data_frame_head(len);
            assert!(ours.len() <= DATA_HEAD_MAX);
            ours.extend_from_slice(&bytes);
            assert_eq!(ours, encode_frame(&WorkerMsg::Data(bytes)), "{len}");
        }
    }

    #[test]
    fn frames_round_trip() {
        let msg = WorkerMsg::Reports(vec![WireReport {
            path: b"a/b".to_vec(),
            kind: EntryKind::File,
            size: 3,
            outcome: Outcome::Written,
            notes: Vec::new(),
        }]);
        let frame = encode_frame(&msg);
        let range = frame_at(&frame, MAX_WORKER_FRAME).unwrap().unwrap();
        assert_eq!(range.end, frame.len());
        match decode::<WorkerMsg>(&frame[range]).unwrap() {
            WorkerMsg::Reports(r) => assert_eq!(r[0].path, b"a/b"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn partial_and_oversized_frames() {
        let frame = encode_frame(&WorkerMsg::Warm {
            awaits_clone: false,
        });
        assert_eq!(frame_at(&frame[..frame.len() - 1], 100).unwrap(), None);
        assert_eq!(frame_at(&[1, 2], 100).unwrap(), None);
        let huge = (u32::MAX).to_le_bytes();
        assert!(frame_at(&huge, MAX_WORKER_FRAME).is_err());
    }

    #[test]
    fn worker_text_is_made_safe_to_log() {
        assert_eq!(untrusted_text("plain".into()), "plain");
        assert_eq!(untrusted_text("a\nb\x1b[31m".into()), "a\\nb\\u{1b}[31m");
        assert!(untrusted_text("x".repeat(5000)).chars().count() <= 1025);
        for hostile in [
            "\u{7f}", "\u{9b}", "\u{202e}", "\u{2028}", "\u{2069}", "\u{200f}",
        ] {
            let shown = untrusted_text(format!("a{hostile}b"));
            assert!(!shown.chars().any(crate::is_unsafe_to_show), "{shown:?}");
        }
    }

    #[test]
    fn garbage_does_not_decode() {
        assert!(decode::<WorkerMsg>(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode::<WorkerMsg>(&[]).is_err());
    }
}
