//! The worker: one process per job, forked warm by the zygote.
//!
//! Life of a worker: make `/` a recursive slave, build the seccomp filter and
//! start the (unprivileged, idle) decoding thread (warm set-up), and say `Warm`;
//! wait for the job header and the destination's descriptor; confine itself to
//! the destination ([`confine`]); say `Confined`; install the filter on both
//! threads; read the first bytes and parse and apply the archive on this thread
//! ([`apply`]), reading plain tar straight from the socket or compressed input
//! from the decoding thread ([`decode`]); stream reports ([`reporter`]); send
//! `Done` or `Failed`; exit.

pub(crate) mod apply;
pub(crate) mod archive;
mod confine;
mod input;
mod privileges;
mod reporter;

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use crate::mode::SandboxMode;
use crate::options::{Compression, Options};
use crate::sys;
use crate::wire::{
    decode as decode_msg, encode_frame, JobHeader, WireError, WireReport, WorkerMsg, WorkerTotals,
    HEADER_MAGIC, MAX_HEADER_FRAME,
};

use apply::Applier;
use reporter::Reporter;

/// The worker's whole life; never returns.
pub(crate) fn run(socket: OwnedFd, mode: SandboxMode) -> ! {
    let code = match std::panic::catch_unwind(move || serve(socket, mode)) {
        Ok(()) => 0,
        Err(_) => 101,
    };
    sys::exit_now(code)
}

fn send(socket: &mut UnixStream, msg: &WorkerMsg) -> io::Result<()> {
    socket.write_all(&encode_frame(msg))
}

fn serve(socket: OwnedFd, mode: SandboxMode) {
    // Nothing of the zygote's may stay open here: its control socket would let a
    // compromised worker ask for more workers.
    let closed = sys::close_other_fds(socket.as_fd())
        .map_err(|e| format!("close_range failed: {e} (Linux 5.9 or later is needed)"))
        .and_then(|()| {
            sys::replace_stdio_with_pipes()
                .map_err(|e| format!("replacing standard input and output failed: {e}"))
        });
    let mut socket = UnixStream::from(socket);
    if let Err(reason) = closed {
        let _ = send(
            &mut socket,
            &WorkerMsg::Failed(WireError::Confinement(reason)),
        );
        return;
    }
    let seccomp = match confine::prepare().and_then(|()| privileges::build_seccomp()) {
        Ok(program) => program,
        Err(reason) => {
            let _ = send(
                &mut socket,
                &WorkerMsg::Failed(WireError::Confinement(reason)),
            );
            return;
        }
    };
    // The decoding thread, started now so that a job does not wait for a new
    // thread to be scheduled; it drops every privilege at once.
    let decoder = match input::Decoder::spawn(privileges::shed_thread) {
        Ok(decoder) => decoder,
        Err(reason) => {
            let _ = send(
                &mut socket,
                &WorkerMsg::Failed(WireError::Confinement(reason)),
            );
            return;
        }
    };
    if send(&mut socket, &WorkerMsg::Warm).is_err() {
        return;
    }
    let (header, dest_fd) = match receive_job(&socket) {
        Ok(Some(job)) => job,
        Ok(None) => return, // the sandbox was dropped before a job came
        Err(e) => {
            let _ = send(
                &mut socket,
                &WorkerMsg::Failed(WireError::Internal(format!("bad job header: {e}"))),
            );
            return;
        }
    };
    rustix::process::umask(rustix::fs::Mode::empty());
    if let Err(e) = confine::enter(&header.dest, dest_fd) {
        let error = match e {
            confine::ConfineError::Changed => WireError::DestinationChanged,
            confine::ConfineError::Failed(reason) => WireError::Confinement(reason),
        };
        let _ = send(&mut socket, &WorkerMsg::Failed(error));
        return;
    }
    if let Err(reason) = privileges::shed(&header.options) {
        let _ = send(
            &mut socket,
            &WorkerMsg::Failed(WireError::Confinement(reason)),
        );
        return;
    }
    if send(&mut socket, &WorkerMsg::Confined).is_err() {
        return;
    }
    let reporter = match socket.try_clone() {
        Ok(s) => Rc::new(RefCell::new(Reporter::new(s))),
        Err(e) => {
            let _ = send(
                &mut socket,
                &WorkerMsg::Failed(WireError::Internal(e.to_string())),
            );
            return;
        }
    };
    let last = match extract(&socket, &reporter, header.options, mode, &seccomp, decoder) {
        Ok(totals) => WorkerMsg::Done(totals),
        Err(error) => WorkerMsg::Failed(error.bounded()),
    };
    // Reports of the entries handled before a failure still reach the caller.
    let _ = reporter.borrow_mut().finish(&last);
}

/// Reads the job header and the destination descriptor that comes with it.
/// `None` if the driver closed the socket instead.
fn receive_job(socket: &UnixStream) -> io::Result<Option<(JobHeader, OwnedFd)>> {
    let mut head = [0u8; 8];
    let (n, mut fds) = loop {
        match sys::recv_with_fds(socket.as_fd(), &mut head) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    (&*socket).read_exact(&mut head[n..])?;
    let header = read_header(&head, &mut &*socket)?;
    if fds.len() != 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "expected one destination descriptor",
        ));
    }
    Ok(Some((header, fds.remove(0))))
}

/// Checks the magic and length in `head`, then reads and decodes the header's
/// payload from `rest` (no more than the announced length).
pub(crate) fn read_header(head: &[u8; 8], rest: &mut dyn Read) -> io::Result<JobHeader> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
    if head[..4] != HEADER_MAGIC {
        return Err(invalid("wrong protocol magic or version".into()));
    }
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if len > MAX_HEADER_FRAME {
        return Err(invalid("job header too long".into()));
    }
    let mut payload = vec![0u8; len];
    rest.read_exact(&mut payload)?;
    decode_msg(&payload).map_err(invalid)
}

/// Decodes, parses and applies the archive; returns the totals or a fatal error.
fn extract(
    socket: &UnixStream,
    reporter: &Rc<RefCell<Reporter>>,
    options: Options,
    mode: SandboxMode,
    seccomp: &seccompiler::BpfProgram,
    mut decoder: input::Decoder,
) -> Result<WorkerTotals, WireError> {
    let internal = |e: io::Error| WireError::Internal(e.to_string());
    // Both threads exist (the decoder since the worker was warm): filter them
    // together before the first byte of the archive is read.
    decoder.ready().map_err(WireError::Confinement)?;
    privileges::install_seccomp(seccomp).map_err(WireError::Confinement)?;
    // Test-only attacker code (`--cfg sandtar_hostile`): tests/containment.rs.
    #[cfg(sandtar_hostile)]
    sys::hostile::run(socket);
    let limits = options.limits.clone();
    let digest = options.digest || options.expected_diff_id.is_some();
    let mut input = socket.try_clone().map_err(internal)?;
    let head = input::read_head(&mut input).map_err(|e| WireError::Malformed {
        offset: 0,
        message: e.to_string(),
    })?;
    let compression = match options.compression {
        Compression::Auto => Compression::sniff(&head),
        forced => forced,
    };
    let flush = {
        let reporter = reporter.clone();
        move || {
            if let Ok(mut r) = reporter.try_borrow_mut() {
                r.flush();
            }
        }
    };
    let (reader, ratio_exceeded, decoding): (Box<dyn Read>, _, _) = match compression {
        Compression::None | Compression::Auto => {
            // Plain tar: read on this thread; the decoder stays parked.
            let mut reader = input::PlainReader::new(input, head);
            reader.on_wait(flush);
            (
                Box::new(reader),
                std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
                None,
            )
        }
        compression => {
            let (mut reader, decoding) =
                decoder.start(input, head, compression, limits.max_compression_ratio);
            reader.on_wait(flush);
            let ratio_exceeded = reader.ratio_exceeded();
            (Box::new(reader), ratio_exceeded, Some(decoding))
        }
    };
    let root = rustix::fs::openat(
        rustix::fs::CWD,
        "/",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| internal(e.into()))?;
    let mut applier = Applier::new(options, mode, root);
    let mut sink = |report: WireReport| {
        let mut reporter = reporter.borrow_mut();
        reporter.push(report);
        !reporter.is_broken()
    };
    let run = match archive::run(
        reader,
        &mut applier,
        &limits,
        digest,
        &ratio_exceeded,
        &mut sink,
    ) {
        Ok(run) => run,
        Err(error) => {
            // The job stops, but the directories made so far still get their
            // modes and times (not left at the 0700 they were created with).
            let _ = applier.finish();
            return Err(error);
        }
    };
    if !run.corrections.is_empty() {
        let mut reporter = reporter.borrow_mut();
        reporter.flush();
        for batch in run.corrections.chunks(crate::wire::REPORT_BATCH_ENTRIES) {
            reporter.send(&WorkerMsg::Corrections(batch.to_vec()));
        }
    }
    let (input_bytes, compression) = match decoding {
        Some(decoding) => {
            let stats = decoding
                .join()
                .map_err(|_| WireError::Internal("the decoding thread panicked".into()))?;
            (stats.input_bytes, stats.compression)
        }
        // Plain: the parser read every byte that came.
        None => (run.tar_bytes, compression),
    };
    Ok(WorkerTotals {
        tar_bytes: run.tar_bytes,
        diff_id: run.diff_id,
        layer_size: run.layer_size,
        input_bytes,
        compression,
    })
}
