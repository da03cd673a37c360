//! Entry points for the fuzzing harness in `fuzz/` and its regression tests.
//! Not part of the API: no stability promise.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::options::Options;
use crate::wire::{decode, frame_at, WorkerMsg, MAX_WORKER_FRAME};

/// Runs the worker's parse-and-apply loop on a plain tar stream, writing below
/// `dir`, without a sandbox (every path resolves inside `dir`, walked as the
/// Landlock rung without `chroot` walks it). Returns the number of reports, or the error text.
pub fn extract_unconfined(archive: &[u8], dir: &Path, options: &Options) -> Result<usize, String> {
    let root = std::fs::File::open(dir).map_err(|e| e.to_string())?;
    let mut applier = crate::worker::apply::Applier::new(
        options.clone(),
        crate::mode::SandboxMode::UserNamespace { uid: 0, gid: 0 },
        root.into(),
        crate::worker::apply::Resolution::Walked,
    )?;
    let mut reports = 0;
    let mut sink = |_report| {
        reports += 1;
        true
    };
    let never = AtomicBool::new(false);
    crate::worker::job::extract(
        archive,
        &mut applier,
        &options.limits,
        options.parsing,
        options.digest,
        &never,
        &mut sink,
    )
    .map_err(|e| format!("{e:?}"))?;
    Ok(reports)
}

/// Runs the driver's decoding and validation of worker frames over `bytes`.
/// Returns how many frames were accepted before the first refusal (or the end).
pub fn decode_worker_frames(mut bytes: &[u8]) -> usize {
    let mut accepted = 0;
    while let Ok(Some(range)) = frame_at(bytes, MAX_WORKER_FRAME) {
        match decode::<WorkerMsg>(&bytes[range.clone()]) {
            Ok(WorkerMsg::Reports(batch)) => {
                if batch
                    .iter()
                    .any(|r| crate::caller::job::check_report(r).is_err())
                {
                    return accepted;
                }
            }
            Ok(_) => {}
            Err(_) => return accepted,
        }
        accepted += 1;
        bytes = &bytes[range.end..];
    }
    accepted
}

/// Runs the worker's decoding of a job header (magic, length, payload).
pub fn decode_job_header(bytes: &[u8]) -> Result<Options, String> {
    let Some(head) = bytes.get(..8) else {
        return Err("short".into());
    };
    let head: [u8; 8] = head.try_into().expect("eight bytes");
    let mut rest = &bytes[8..];
    crate::worker::read_header(&head, &mut rest)
        .map(|h| h.options)
        .map_err(|e| e.to_string())
}

/// The options the `extract` fuzz target (and its regression test) derives
/// from the selector byte in front of each input. Bit 0:
/// `Options::full_fidelity()` instead of `Options::default()`; bit 1: small
/// limits, so that every limit check is reached; bit 2: no modification times;
/// bit 3: the other `Parsing` than the preset's (full fidelity read strictly,
/// the default read as GNU tar reads).
pub fn options_from_selector(selector: u8) -> Options {
    let mut options = if selector & 1 != 0 {
        Options::full_fidelity()
    } else {
        Options::default()
    };
    if selector & 2 != 0 {
        let l = &mut options.limits;
        l.max_entries = 64;
        l.max_entry_size = 1 << 20;
        l.max_total_size = 4 << 20;
        l.max_extension_size = 8 << 10;
        l.max_path_length = 200;
        l.max_path_depth = 8;
    }
    if selector & 4 != 0 {
        options.preserve_mtime = false;
    }
    if selector & 8 != 0 {
        options.parsing = match options.parsing {
            crate::options::Parsing::Strict => crate::options::Parsing::GnuTar,
            _ => crate::options::Parsing::Strict,
        };
    }
    options
}
