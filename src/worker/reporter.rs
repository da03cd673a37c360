//! Batches entry reports into frames on the job socket.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;

use crate::wire::{
    encode_frame, WireReport, WorkerMsg, MAX_REPORTED_PATH, REPORT_BATCH_BYTES,
    REPORT_BATCH_ENTRIES,
};

/// Collects reports and writes them as one frame per batch: when the batch is
/// full, when the worker is about to wait for input, and before the last message.
pub(crate) struct Reporter {
    socket: UnixStream,
    batch: Vec<WireReport>,
    batch_bytes: usize,
    broken: bool,
}

impl Reporter {
    pub(crate) fn new(socket: UnixStream) -> Self {
        Reporter {
            socket,
            batch: Vec::new(),
            batch_bytes: 0,
            broken: false,
        }
    }

    /// Queues one report.
    pub(crate) fn push(&mut self, mut report: WireReport) {
        report.path.truncate(MAX_REPORTED_PATH);
        self.batch_bytes += report.path.len() + 24;
        self.batch.push(report);
        if self.batch_bytes >= REPORT_BATCH_BYTES || self.batch.len() >= REPORT_BATCH_ENTRIES {
            self.flush();
        }
    }

    /// Writes the pending batch. A failure (the driver is gone) is remembered.
    pub(crate) fn flush(&mut self) {
        if self.batch.is_empty() || self.broken {
            return;
        }
        let frame = encode_frame(&WorkerMsg::Reports(std::mem::take(&mut self.batch)));
        self.batch_bytes = 0;
        if self.socket.write_all(&frame).is_err() {
            self.broken = true;
        }
    }

    /// Sends one message now (after the pending batch). Failures are remembered.
    pub(crate) fn send(&mut self, msg: &WorkerMsg) {
        self.flush();
        if !self.broken && self.socket.write_all(&encode_frame(msg)).is_err() {
            self.broken = true;
        }
    }

    /// `true` once the driver stopped listening: the job should stop.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Flushes, then sends a final message.
    pub(crate) fn finish(&mut self, msg: &WorkerMsg) -> io::Result<()> {
        self.flush();
        self.socket.write_all(&encode_frame(msg))
    }
}
