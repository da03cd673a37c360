//! The driver's decoding and validation of frames from an (untrusted) worker.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sandtar::fuzzing::decode_worker_frames(data);
});
