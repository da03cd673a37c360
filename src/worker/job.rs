//! One job, once the worker is confined: the input ([`input`]) parsed entry
//! by entry ([`archive`]), each entry applied ([`apply`](super::apply)) and
//! reported ([`reporter`](super::reporter)), then the directories' deferred
//! metadata and the totals.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;

use crate::error::NotTar;
use crate::mode::SandboxMode;
use crate::options::{Compression, Limits, Options, Parsing};
use crate::pack::PackOptions;
use crate::report::{EntryKind, Outcome};
use crate::wire::{self, WireError, WireReport, WorkerMsg, WorkerTotals, MAX_REPORTED_PATH};

use super::apply::layer::Whiteout;
use super::apply::writers::Writers;
use super::apply::{Applied, Applier, Fatal, Resolution, Settled};
use super::archive::{self, Entry, Meta, Stop, Visitor};
use super::lead::Lead;
use super::reporter::Reporter;
use super::{input, names, seccomp};

/// Decodes, parses and applies the archive from `socket`; returns the totals
/// or a fatal error.
pub(super) fn run(
    socket: &UnixStream,
    reporter: &Rc<RefCell<Reporter>>,
    options: Options,
    mode: SandboxMode,
    program: &seccompiler::BpfProgram,
    mut decoder: input::Decoder,
    mut lead: Option<Lead>,
) -> Result<WorkerTotals, WireError> {
    let internal = |e: std::io::Error| WireError::Internal(e.to_string());
    // Both threads exist (the decoder since the worker was warm): filter them
    // together before the first byte of the archive is read.
    decoder.ready().map_err(WireError::Confinement)?;
    seccomp::install(program).map_err(WireError::Confinement)?;
    // Test-only attacker code (`--cfg sandtar_hostile`): tests/containment.rs.
    #[cfg(sandtar_hostile)]
    crate::sys::hostile::run(socket);
    let limits = options.limits.clone();
    let parsing = options.parsing;
    let digest = options.digest || options.expected_diff_id.is_some();
    let sync = options.sync && !options.list_only;
    // Pending reports go out whenever the parser waits for input, so that a
    // slow archive still streams its results.
    let flush = {
        let reporter = reporter.clone();
        move || {
            if let Ok(mut r) = reporter.try_borrow_mut() {
                r.flush();
            }
        }
    };
    let socket = socket.try_clone().map_err(internal)?;
    let ratio = limits.max_compression_ratio;
    let mut input =
        input::open(socket, decoder, options.compression, ratio, flush).map_err(|e| {
            WireError::Malformed {
                offset: 0,
                message: e.to_string(),
            }
        })?;
    let root = open_root().map_err(internal)?;
    let resolution = match mode.chroots() {
        true => Resolution::ProcessRoot,
        false => Resolution::Walked,
    };
    // For plain input the decoding thread is idle: it writes files instead,
    // unless the caller takes each report before the next entry (a bounded
    // lead) or nothing is written. Compressed input keeps it decoding (a
    // second writer thread, started while warm, made one-file jobs 8–18%
    // slower; see BENCHMARKS.md).
    let spare = match lead.is_none() && !options.list_only {
        true => input.parked.take(),
        false => None,
    };
    let mut applier = Applier::new(options, mode, root, resolution)
        .map_err(|problem| WireError::Internal(format!("options: {problem}")))?;
    if let Some(thread) = spare {
        applier.write_on(Writers::start(thread));
    }
    let mut applied = 0u64;
    let mut sink = |report: WireReport| {
        let mut reporter = reporter.borrow_mut();
        reporter.push(report);
        applied += 1;
        let waited = match &mut lead {
            // The caller must take its reports before the next entry.
            Some(lead) => lead.after(applied, || reporter.flush()).is_ok(),
            None => true,
        };
        waited && !reporter.is_broken()
    };
    let ratio_exceeded = &input.ratio_exceeded;
    let compressed = input.compression != Compression::None;
    let done = extract(
        input.reader,
        &mut applier,
        &limits,
        parsing,
        digest,
        ratio_exceeded,
        &mut sink,
    )
    .map_err(|e| corrupt_rather_than_not_tar(e, compressed))?;
    send_corrections(&mut reporter.borrow_mut(), &done.corrections);
    if sync {
        sync_destination().map_err(|e| WireError::Write {
            entry: b".".to_vec(),
            message: format!("flushing the destination to its disk (syncfs) failed: {e}"),
        })?;
    }
    if let Some(decoding) = input.decoding {
        decoding
            .join()
            .map_err(|_| WireError::Internal("the decoding thread panicked".into()))?;
    }
    Ok(WorkerTotals {
        tar_bytes: done.tar_bytes,
        diff_id: done.diff_id,
        layer_size: done.layer_size,
        compression: input.compression,
    })
}

/// Packs the worker's root (the source, read-only) into an archive sent on
/// `socket` (or written to `output`), with each entry's report; the
/// compression, if any, runs on `decoder`'s thread.
pub(super) fn run_pack(
    socket: &UnixStream,
    options: &PackOptions,
    mode: SandboxMode,
    program: &seccompiler::BpfProgram,
    mut decoder: input::Decoder,
    output: Option<OwnedFd>,
) -> Result<WorkerTotals, WireError> {
    let internal = |e: std::io::Error| WireError::Internal(e.to_string());
    // The (parked) second thread is filtered with this one.
    decoder.ready().map_err(WireError::Confinement)?;
    seccomp::install(program).map_err(WireError::Confinement)?;
    // The caller says go (shuts its side) once it has read `Confined`, so
    // that the archive's first bytes never come with that message.
    let mut go = [0u8; 1];
    let _ = (&*socket).read(&mut go);
    // Test-only attacker code (`--cfg sandtar_hostile`): tests/containment.rs.
    #[cfg(sandtar_hostile)]
    crate::sys::hostile::run(socket);
    let socket = socket.try_clone().map_err(internal)?;
    super::pack::run(socket, options, mode, decoder, output)
}

/// Decompressed data whose first block is no tar header and no other known
/// format: more likely a corrupt compressed stream (whose decoder noticed
/// nothing yet) than a compressed non-tar; said as a malformed archive.
fn corrupt_rather_than_not_tar(error: WireError, compressed: bool) -> WireError {
    match error {
        WireError::NotTar(NotTar::NoTarHeader) if compressed => WireError::Malformed {
            offset: 0,
            message: "the decompressed data does not start with a tar header (its first \
                      block's checksum does not match): corrupt, or not a tar archive"
                .into(),
        },
        other => other,
    }
}

/// The destination (the worker's working directory, and on most rungs its
/// `/`), for the applier.
fn open_root() -> std::io::Result<OwnedFd> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    Ok(openat(CWD, ".", flags, Mode::empty())?)
}

/// `syncfs` of the destination's filesystem (`Options::sync`), through a
/// descriptor of the root opened for reading (`syncfs` takes no `O_PATH`
/// descriptor).
fn sync_destination() -> std::io::Result<()> {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let root = openat(CWD, ".", flags, Mode::empty())?;
    Ok(rustix::fs::syncfs(&root)?)
}

/// Directories whose deferred metadata failed, after the reports.
fn send_corrections(reporter: &mut Reporter, corrections: &[(Vec<u8>, String)]) {
    if corrections.is_empty() {
        return;
    }
    reporter.flush();
    for batch in corrections.chunks(wire::REPORT_BATCH_ENTRIES) {
        reporter.send(&WorkerMsg::Corrections(batch.to_vec()));
    }
}

/// What an extracted archive leaves behind.
pub(crate) struct Extracted {
    /// Bytes of the uncompressed tar stream, read to its end.
    pub tar_bytes: u64,
    /// `sha256:<hex>` of that stream, when asked for.
    pub diff_id: Option<String>,
    /// The sum of every entry's data size.
    pub layer_size: u64,
    /// Directories whose deferred metadata failed: (raw name, message).
    pub corrections: Vec<(Vec<u8>, String)>,
}

/// Parses the tar stream from `reader` (see [`archive::read`]), applies each
/// entry with `applier`, and hands its report to `sink` (which returns
/// `false` to stop). Shared by the worker and the fuzzing harness.
pub(crate) fn extract<R: Read>(
    reader: R,
    applier: &mut Applier,
    limits: &Limits,
    parsing: Parsing,
    digest: bool,
    ratio_exceeded: &AtomicBool,
    sink: &mut dyn FnMut(WireReport) -> bool,
) -> Result<Extracted, WireError> {
    let mut visitor = Apply {
        applier: &mut *applier,
        sink,
        waiting: VecDeque::new(),
        fatal: None,
    };
    let read = archive::read(
        reader,
        limits,
        parsing,
        digest,
        ratio_exceeded,
        &mut visitor,
    );
    // Every queued file written and reported, also before an error.
    let sent = visitor.send_ready(true);
    let end = match read.and_then(|end| sent.map(|()| end).map_err(stopped_after)) {
        Ok(end) => end,
        Err(error) => {
            // The job stops, but the directories made so far still get their
            // modes and times (not left at the 0700 they were created with).
            let _ = applier.finish();
            return Err(error);
        }
    };
    let corrections = applier
        .finish()
        .into_iter()
        .map(|(raw, message)| (reported_name(&raw), wire::bounded_text(message)))
        .collect();
    Ok(Extracted {
        tar_bytes: end.tar_bytes,
        diff_id: end.diff_id,
        layer_size: end.layer_size,
        corrections,
    })
}

/// A queued file's fatal error, met once the archive was read to its end.
fn stopped_after(stop: Stop) -> WireError {
    match stop {
        Stop::Data(message) => WireError::Malformed { offset: 0, message },
        Stop::Fatal(error) => error,
    }
}

/// The name a report carries: the archive's, unless it is too long to report
/// whole; then the name as written (`docs/././…/evil.sh` as `docs/evil.sh`), so
/// that padding cut at the limit never hides what was written. A name that
/// cannot be normalised (rejected) is cut.
fn reported_name(raw: &[u8]) -> Vec<u8> {
    if raw.len() > MAX_REPORTED_PATH {
        if let Ok(path) = names::normalize_lexically(raw) {
            if !path.is_empty() && path.len() <= MAX_REPORTED_PATH {
                return path;
            }
        }
    }
    wire::bounded_path(raw.to_vec())
}

/// Applies each entry the archive yields, then reports it. Reports go out
/// in archive order: one for a file still with a writer thread waits, and
/// so do those after it.
struct Apply<'a, 's> {
    applier: &'a mut Applier,
    sink: &'s mut dyn FnMut(WireReport) -> bool,
    /// Reports not sent yet: the entry's raw name, its report, and its
    /// place in the writers' queue when its outcome is still to come.
    waiting: VecDeque<(Vec<u8>, WireReport, Option<u64>)>,
    /// A queued file's error that ends the job, met while sending reports.
    fatal: Option<Stop>,
}

impl Apply<'_, '_> {
    /// Sends the reports whose outcomes are known, in order; with `wait`,
    /// all of them. A queued file's fatal error stops the job, once every
    /// entry applied before the writers stopped is reported: what is on
    /// disk is what was reported written.
    fn send_ready(&mut self, wait: bool) -> Result<(), Stop> {
        while let Some((_, _, queued)) = self.waiting.front() {
            if let Some(seq) = *queued {
                let wait = wait || self.fatal.is_some();
                let taken = self.applier.take(seq, wait);
                let (raw, report, _) = self.waiting.front_mut().expect("a front entry");
                match taken {
                    Some(Settled::Done(outcome)) => report.outcome = outcome,
                    Some(Settled::Fatal(fatal)) => {
                        let stopped = stop(fatal, raw);
                        self.fatal.get_or_insert(stopped);
                        self.waiting.pop_front();
                        continue;
                    }
                    Some(Settled::Dropped) => {
                        self.waiting.pop_front();
                        continue;
                    }
                    None if wait => {
                        return Err(Stop::Fatal(WireError::Internal(
                            "a writer thread ended before its file was written".into(),
                        )))
                    }
                    None => return Ok(()),
                }
            }
            let (_, report, _) = self.waiting.pop_front().expect("a front entry");
            if !(self.sink)(report) {
                return Err(Stop::Fatal(WireError::Internal(
                    "the driver stopped listening".into(),
                )));
            }
        }
        match self.fatal.take() {
            Some(stopped) => Err(stopped),
            None => Ok(()),
        }
    }
}

/// The error that ends the job for `fatal`, met applying the entry `raw`.
fn stop(fatal: Fatal, raw: &[u8]) -> Stop {
    match fatal {
        Fatal::Read(message) => Stop::Data(message),
        Fatal::Unmapped(message) => Stop::Fatal(WireError::Unmapped {
            entry: raw.to_vec(),
            message,
        }),
        Fatal::Write(message) => Stop::Fatal(WireError::Write {
            entry: raw.to_vec(),
            message,
        }),
    }
}

impl Visitor for Apply<'_, '_> {
    type Outcome = Applied;

    fn entry(&mut self, entry: &mut Entry<'_>) -> Result<Applied, Stop> {
        if self.applier.stopped() {
            // A queued file's error ends the job: its report comes first,
            // so this stops there, and nothing after it is written.
            self.send_ready(true)?;
        }
        let whiteout = self.applier.classify(&entry.name);
        if whiteout != Whiteout::None {
            entry.meta.kind = EntryKind::Whiteout;
        }
        self.applier
            .apply(&entry.name, &entry.meta, whiteout, entry.data)
            .map_err(|fatal| stop(fatal, &entry.name))
    }

    fn done(&mut self, name: &[u8], meta: &Meta, applied: Applied) -> Result<(), Stop> {
        let size = match meta.kind {
            EntryKind::File => meta.sparse.as_ref().map_or(meta.size, |s| s.real_size),
            _ => 0,
        };
        let (outcome, queued) = match applied {
            Applied::Now(outcome) => (outcome, None),
            // Filled in when the writer is done.
            Applied::Queued(seq) => (Outcome::Written, Some(seq)),
        };
        let report = WireReport {
            path: reported_name(name),
            kind: meta.kind,
            size,
            outcome,
            notes: meta.notes.clone(),
        };
        self.waiting.push_back((name.to_vec(), report, queued));
        self.send_ready(false)
    }
}
